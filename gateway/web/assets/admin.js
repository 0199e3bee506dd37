// The admin dashboard (/admin): products and their stock, with the stock
// ledger's history (#products), and every order, live (#orders).
import {
  $, el, money, clock, day, api, config, adminPage, setLive, fieldErrors, clearErrors,
  OrderBook, Live, timeline, terminal, statuses, shortID, workflowURL, placeNewestFirst,
} from "/assets/app.js";

// The page keeps the newest orders: past this many (more once the admin
// asks for older ones), the oldest leave it, whatever their status; the
// status filter reads them again.
const keepOrders = 500;

const state = {
  productsCursor: "",
  selected: null, // the product in the editor; null: a new one
  mvCursor: "",
  ordersCursor: "",
  filter: "", // the status the order list shows; "": all
  keep: keepOrders,
  temporalUI: "",
};
const rows = new Map(); // each order's <tbody>, by order id
const book = new OrderBook(renderOrder);
const live = new Live({ scope: "all", book, refresh: () => loadOrders(), onEvent: productActivity });
const view = () => (location.hash === "#orders" ? "orders" : "products");
const sku = () => state.selected && state.selected.sku;
const path = (s) => "/products/" + encodeURIComponent(s);

const page = adminPage({
  current: view,
  async start(same) {
    state.temporalUI = (await config()).temporal_ui_url || "";
    if (!same) {
      book.clear();
      rows.forEach((tb) => tb.remove());
      rows.clear();
      state.keep = keepOrders;
      editProduct(null);
    }
    await Promise.all([loadProducts(true), loadOrders()]);
    if (state.selected) refreshSelected();
    await live.start();
  },
  stop() { live.stop("signed out"); },
});

function applyView() {
  $("productsView").hidden = view() !== "products";
  $("ordersView").hidden = view() !== "orders";
  document.title = (view() === "orders" ? "Orders" : "Products") + " · ordersaga admin";
  page.rerender();
  if (view() === "products" && state.selected && !$("app").hidden) refreshSelected();
}

// ---- Products ----------------------------------------------------------

async function loadProducts(reset) {
  const p = new URLSearchParams({ limit: "50" });
  if ($("pq").value.trim()) p.set("q", $("pq").value.trim());
  if (!reset && state.productsCursor) p.set("cursor", state.productsCursor);
  $("productListError").textContent = "";
  try {
    const page = await api("GET", "/products?" + p);
    if (reset) $("productRows").replaceChildren();
    for (const pr of page.items) $("productRows").append(productRow(pr));
    state.productsCursor = page.next_cursor || "";
    $("moreProducts").hidden = !state.productsCursor;
    productCount();
  } catch (e) {
    $("productListError").textContent = e.message;
  }
}

function productCount() {
  const n = $("productRows").children.length;
  $("productCount").textContent = n + (n === 1 ? " product" : " products") + (state.productsCursor ? " shown" : "");
}

function productRow(pr) {
  const tr = el("tr", { id: "pr-" + pr.sku, className: "clickable" + (sku() === pr.sku ? " selected" : "") },
    el("td", { className: "mono", textContent: pr.sku }),
    el("td", { textContent: pr.name }),
    el("td", { textContent: pr.brand }),
    el("td", { className: "num", textContent: money(pr.price_cents, pr.currency) }),
    el("td", { className: "num", textContent: pr.active ? String(pr.available) : "inactive" }));
  tr.onclick = () => openProduct(pr.sku);
  return tr;
}

// listed shows a product's changes in the list: a new one goes on top.
function listed(pr) {
  const row = productRow(pr);
  const old = $("pr-" + pr.sku);
  if (old) old.replaceWith(row);
  else $("productRows").prepend(row);
  productCount();
}

async function openProduct(s) {
  try {
    editProduct(await api("GET", path(s)));
  } catch (e) {
    $("productListError").textContent = e.status === 404 ? "No product " + s + "." : e.message;
  }
}

// editProduct fills the editor with pr (null: a new product) and shows
// its stock and movements.
function editProduct(pr) {
  state.selected = pr;
  const f = $("productForm");
  clearErrors(f);
  $("saved").textContent = "";
  f.elements.sku.value = pr ? pr.sku : "";
  f.elements.sku.readOnly = !!pr;
  f.elements.name.value = pr ? pr.name : "";
  f.elements.brand.value = pr ? pr.brand : "";
  f.elements.description.value = pr ? pr.description : "";
  f.elements.price.value = pr ? (pr.price_cents / 100).toFixed(2) : "";
  f.elements.currency.value = pr ? pr.currency : "USD";
  f.elements.currency.readOnly = !!pr;
  $("editorTitle").textContent = pr ? pr.sku : "New product";
  $("save").textContent = pr ? "Save changes" : "Create product";
  clearErrors($("adjustForm"));
  $("adjusted").textContent = "";
  $("mvWarehouse").value = "";
  for (const tr of $("productRows").children) tr.classList.toggle("selected", !!pr && tr.id === "pr-" + pr.sku);
  showProduct(pr);
  if (pr) loadMovements(true);
  else f.elements.sku.focus();
}

// showProduct shows what the server says of the product (its state and
// stock) without touching what the admin is typing in the editor.
function showProduct(pr) {
  $("activeBadge").hidden = !pr;
  $("deactivate").hidden = !pr || !pr.active;
  $("reactivate").hidden = !pr || pr.active;
  $("stockBox").hidden = $("movementsBox").hidden = !pr;
  if (!pr) return;
  state.selected = pr;
  $("activeBadge").textContent = pr.active ? "active" : "inactive";
  $("activeBadge").className = "badge " + (pr.active ? "CONFIRMED" : "CANCELLED");
  $("stockRows").replaceChildren(...pr.stock.map((s) => el("tr", { dataset: { warehouse: s.warehouse } },
    el("td", { textContent: s.warehouse }),
    el("td", { className: "num", textContent: String(s.on_hand) }),
    el("td", { className: "num", textContent: String(s.reserved) }),
    el("td", { className: "num", textContent: String(s.available) }))));
  if (pr.stock.length === 0) $("stockRows").append(el("tr", {}, el("td", { colSpan: 4, className: "muted", textContent: "No stock yet: add some below." })));
  $("warehouses").replaceChildren(...pr.stock.map((s) => el("option", { value: s.warehouse })));
  const chosen = $("mvWarehouse").value;
  $("mvWarehouse").replaceChildren(el("option", { value: "", textContent: "all warehouses" }),
    ...pr.stock.map((s) => el("option", { value: s.warehouse, textContent: s.warehouse })));
  $("mvWarehouse").value = pr.stock.some((s) => s.warehouse === chosen) ? chosen : "";
}

async function refreshSelected() {
  const s = sku();
  if (!s) return;
  try {
    const pr = await api("GET", path(s));
    if (sku() !== s) return;
    showProduct(pr);
    if (pr.active) listed(pr);
    await loadMovements(true);
  } catch { /* shown on the next action */ }
}

// productActivity: an order moving (reserving, committing, releasing)
// changes the stock of its products; the open product is read again, at
// most once a second.
let activityTimer = 0;
function productActivity() {
  if (!sku() || view() !== "products" || activityTimer) return;
  activityTimer = setTimeout(() => { activityTimer = 0; refreshSelected(); }, 1000);
}

$("productForm").onsubmit = async (ev) => {
  ev.preventDefault();
  const f = ev.target;
  clearErrors(f);
  $("saved").textContent = "";
  const price = f.elements.price.value.trim();
  if ((price !== "" || state.selected) && !/^\d+(\.\d{1,2})?$/.test(price)) {
    fieldErrors(f, { field: "price", message: "Enter a price such as 129.00." });
    return;
  }
  const body = { name: f.elements.name.value, brand: f.elements.brand.value, description: f.elements.description.value };
  if (price !== "") body.price_cents = Math.round(parseFloat(price) * 100);
  $("save").disabled = true;
  try {
    let pr;
    if (state.selected) {
      pr = await api("PATCH", path(state.selected.sku), body);
    } else {
      body.sku = f.elements.sku.value.trim().toUpperCase();
      body.currency = f.elements.currency.value.trim().toUpperCase() || "USD";
      pr = await api("POST", "/products", body);
    }
    listed(pr);
    editProduct(pr);
    $("saved").textContent = "Saved at " + clock(new Date());
  } catch (e) {
    if (e.code === "conflict" && !state.selected) e.field = "sku"; // the sku is taken
    fieldErrors(f, e, { price_cents: "price", stock: "sku" });
  } finally {
    $("save").disabled = false;
  }
};

async function setActive(active) {
  const f = $("productForm");
  clearErrors(f);
  const s = sku();
  try {
    if (active) await api("PATCH", path(s), { active: true });
    else await api("DELETE", path(s));
    const pr = await api("GET", path(s));
    showProduct(pr);
    if (pr.active) listed(pr);
    else if ($("pr-" + s)) $("pr-" + s).replaceWith(productRow(pr));
    $("saved").textContent = (active ? "Reactivated" : "Deactivated") + " at " + clock(new Date());
  } catch (e) {
    fieldErrors(f, e);
  }
}
$("deactivate").onclick = () => setActive(false);
$("reactivate").onclick = () => setActive(true);
$("newProduct").onclick = () => editProduct(null);
$("openSku").onsubmit = (ev) => {
  ev.preventDefault();
  const s = $("skuToOpen").value.trim().toUpperCase();
  if (s) openProduct(s);
};
let searchTimer = 0;
$("pq").oninput = () => { clearTimeout(searchTimer); searchTimer = setTimeout(() => loadProducts(true), 250); };
$("moreProducts").onclick = () => loadProducts(false);

$("adjustForm").onsubmit = async (ev) => {
  ev.preventDefault();
  const f = ev.target;
  clearErrors(f);
  $("adjusted").textContent = "";
  const remove = ev.submitter && ev.submitter.value === "remove";
  const units = f.elements.units.value.trim();
  // The API says what is wrong with the delta (missing, zero, too big).
  const delta = units === "" ? null : (remove ? -1 : 1) * Number(units);
  const s = sku();
  try {
    const pr = await api("POST", path(s) + "/stock", { warehouse: f.elements.warehouse.value.trim(), delta, reason: f.elements.reason.value });
    showProduct(pr);
    listed(pr);
    $("adjusted").textContent = (remove ? "Removed " : "Added ") + Math.abs(delta) + " at " + clock(new Date());
    f.elements.units.value = "";
    f.elements.reason.value = "";
    loadMovements(true);
  } catch (e) {
    fieldErrors(f, e, { delta: "units" });
  }
};

// ---- Movements (the stock ledger) --------------------------------------

async function loadMovements(reset) {
  const s = sku();
  if (!s) return;
  const p = new URLSearchParams({ limit: "50" });
  if ($("mvWarehouse").value) p.set("warehouse", $("mvWarehouse").value);
  if (!reset && state.mvCursor) p.set("cursor", state.mvCursor);
  try {
    const page = await api("GET", path(s) + "/movements?" + p);
    if (sku() !== s) return;
    if (reset) $("mvRows").replaceChildren();
    for (const m of page.items) $("mvRows").append(movementRow(m));
    if ($("mvRows").children.length === 0) $("mvRows").append(el("tr", {}, el("td", { colSpan: 7, className: "muted", textContent: "No movements." })));
    state.mvCursor = page.next_cursor || "";
    $("moreMovements").hidden = !state.mvCursor;
    $("movements").hidden = false;
    $("mvUnavailable").hidden = true;
  } catch (e) {
    if (e.status === 401 || sku() !== s) return;
    $("movements").hidden = true;
    $("moreMovements").hidden = true;
    $("mvUnavailable").hidden = false;
    // The product exists (it is open): a 404 means no movement route.
    $("mvUnavailable").textContent = "The movement history is unavailable: " +
      (e.status === 404 ? "this server does not provide it yet." : e.message);
  }
}

// when is a time of today, or a date and time before.
const when = (t) => (new Date(t).toDateString() === new Date().toDateString() ? clock(t)
  : new Date(t).toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" }));

const signed = (n) => el("td", { className: "num " + (n > 0 ? "plus" : n < 0 ? "minus" : "muted"), textContent: n > 0 ? "+" + n : n < 0 ? "−" + -n : "·" });

function movementRow(m) {
  let why = m.reason || "";
  let order = null;
  if (m.order_id) {
    order = el("a", { href: "#orders", textContent: "order " + shortID(m.order_id) });
    order.onclick = () => openOrder(m.order_id);
  }
  return el("tr", { dataset: { kind: m.kind, id: String(m.id) } },
    el("td", { className: "nowrap", title: day(m.at), textContent: when(m.at) }),
    el("td", { textContent: m.warehouse }),
    el("td", {}, el("span", { className: "step kind-" + m.kind, textContent: m.kind })),
    signed(m.on_hand_delta),
    signed(m.reserved_delta),
    el("td", {}, why, why && order ? " · " : "", order),
    el("td", { className: "muted", title: m.actor, textContent: m.actor.replace(/:([0-9a-f]{8})[0-9a-f-]{28}$/, ":$1…") }));
}
$("mvWarehouse").onchange = () => loadMovements(true);
$("moreMovements").onclick = () => loadMovements(false);

// ---- Orders ------------------------------------------------------------

for (const s of statuses) $("statusFilter").append(el("option", { value: s, textContent: s }));
$("statusFilter").onchange = () => {
  state.filter = $("statusFilter").value;
  for (const o of book.values()) renderOrder(o);
  loadOrders();
};
$("moreOrders").onclick = () => loadOrders(true);

// loadOrders reads the newest orders (of the status shown), or with
// older the next page, and merges them into the book.
async function loadOrders(older) {
  const p = new URLSearchParams({ limit: "50" });
  if (state.filter) p.set("status", state.filter);
  if (older && state.ordersCursor) p.set("cursor", state.ordersCursor);
  const page = await api("GET", "/orders?" + p);
  // The admin asked for these: the page keeps them too.
  if (older) state.keep = Math.max(state.keep, rows.size + page.items.length);
  page.items.forEach((o) => book.put(o));
  if (older || !state.ordersCursor || page.items.length === 0) state.ordersCursor = page.next_cursor || "";
  $("moreOrders").hidden = !state.ordersCursor;
  ordersNote();
}

// ordersNote counts the orders shown, at most ten times a second however
// many events arrive.
let noteTimer = 0;
function ordersNote() {
  if (!noteTimer) noteTimer = setTimeout(() => { noteTimer = 0; countOrders(); }, 100);
}

function countOrders() {
  const shown = [...$("ordersTable").tBodies].filter((tb) => !tb.hidden).length;
  $("ordersNote").textContent = shown === 0 ? "No orders" + (state.filter ? " are " + state.filter : "") + "." :
    shown + " order" + (shown === 1 ? "" : "s") + (state.filter ? " " + state.filter : "") + ", live.";
}

// renderOrder draws one order as a row of the table; opened, a second row
// shows its lines, its timeline, its workflow and a cancel button.
function renderOrder(o) {
  let tb = rows.get(o.id);
  const created = o.created_at || (tb ? tb.dataset.created : new Date().toISOString());
  if (!tb || tb.dataset.created !== created) {
    // New, or first heard of by its events: the API says when it was placed.
    if (!tb) {
      tb = el("tbody", { id: "ao-" + o.id, className: "order" });
      rows.set(o.id, tb);
    }
    tb.dataset.created = created;
    tb.hidden = !!state.filter && o.status !== state.filter;
    placeNewestFirst($("ordersTable"), $("ordersTable").tBodies, tb);
    forgetOldest();
    if (!rows.has(o.id)) return; // the oldest of all: not kept
  }
  tb.hidden = !!state.filter && o.status !== state.filter;
  tb.dataset.status = o.status || "";
  const open = tb.classList.contains("open");
  if (open) book.loadEvents(o);
  const lines = (o.items || []).map((i) => i.quantity + " × " + i.sku).join(", ");
  const head = el("tr", { className: "clickable" },
    el("td", { className: "mono", textContent: shortID(o.id) }),
    el("td", { title: o.created_at ? day(o.created_at) : "", textContent: o.created_at ? clock(o.created_at) : "" }),
    el("td", { className: "mono", title: o.customer_id || "", textContent: o.customer_id ? shortID(o.customer_id) : "" }),
    el("td", { textContent: lines }),
    el("td", { className: "num", textContent: o.total_cents !== undefined ? money(o.total_cents, o.currency) : "" }),
    el("td", {}, el("span", { className: "badge " + (o.status || ""), textContent: (o.status || "…") + (o.reason ? " · " + o.reason : "") })));
  head.onclick = () => { tb.classList.toggle("open"); renderOrder(o); };
  tb.replaceChildren(head);
  if (open) tb.append(el("tr", { className: "detail" }, el("td", { colSpan: 6 }, orderDetail(o))));
  ordersNote();
}

// forgetOldest drops the oldest orders past what the page keeps: first
// those the status filter hides, then any, except one the admin has
// opened. The page no longer follows them (see OrderBook.forget).
function forgetOldest() {
  const bodies = $("ordersTable").tBodies;
  for (const hiddenOnly of state.filter ? [true, false] : [false]) {
    for (let i = bodies.length - 1; i >= 0 && rows.size > state.keep; i--) {
      const tb = bodies[i];
      if (tb.classList.contains("open") || (hiddenOnly && !tb.hidden)) continue;
      const id = tb.id.slice(3);
      rows.delete(id);
      book.forget(id);
      tb.remove();
    }
  }
}

function orderDetail(o) {
  const link = workflowURL(state.temporalUI, o.id);
  const cancel = el("button", { className: "danger cancel", textContent: "Cancel order", hidden: !o.status || terminal.has(o.status) });
  cancel.onclick = async () => {
    cancel.disabled = true;
    o.cancelError = "";
    try { book.put(await api("POST", "/orders/" + o.id + "/cancel", {})); }
    catch (e) { o.cancelError = e.message; renderOrder(o); }
  };
  const lines = el("table", {},
    el("thead", {}, el("tr", {}, el("th", { textContent: "SKU" }), el("th", { textContent: "Name" }), el("th", { className: "num", textContent: "Qty" }),
      el("th", { className: "num", textContent: "Unit" }), el("th", { className: "num", textContent: "Line" }))),
    el("tbody", {}, ...(o.items || []).map((i) => el("tr", {},
      el("td", { className: "mono", textContent: i.sku }), el("td", { textContent: i.name }), el("td", { className: "num", textContent: String(i.quantity) }),
      el("td", { className: "num", textContent: money(i.unit_price_cents, o.currency) }), el("td", { className: "num", textContent: money(i.line_total_cents, o.currency) })))));
  return el("div", { className: "order-detail" },
    el("div", { className: "spread" },
      el("span", { className: "mono", textContent: o.id }),
      o.payment_method ? el("span", { className: "muted", textContent: "paid with " + o.payment_method }) : null,
      link ? el("a", { className: "temporal", href: link, target: "_blank", rel: "noopener noreferrer", textContent: "Workflow order-" + shortID(o.id) + "… in the Temporal UI ↗" })
        : el("span", { className: "muted", textContent: "No Temporal UI configured" }),
      el("span", { className: "grow" }, cancel)),
    o.cancelError ? el("div", { className: "error", textContent: o.cancelError }) : null,
    lines,
    timeline(o));
}

async function openOrder(id) {
  location.hash = "#orders";
  let o = book.get(id);
  if (!o || !o.created_at) {
    let read;
    try { read = await api("GET", "/orders/" + id); } catch { return; }
    if (!rows.has(id)) state.keep = Math.max(state.keep, rows.size + 1); // however old, it stays
    o = book.put(read);
  }
  const tb = rows.get(id);
  if (tb && !tb.classList.contains("open")) { tb.classList.add("open"); renderOrder(o); }
  if (tb) tb.scrollIntoView({ block: "center" });
}

window.addEventListener("hashchange", applyView);
applyView();
setLive("offline");
