// The shop (/): the catalogue, a cart, and the shopper's orders, live.
// /#orders is the shopper's dashboard: the same orders, each with its
// timeline of events. Admins signed in here follow every order.
import {
  $, el, money, clock, day, api, session, header, setLive, bindSignIn, whoAmI,
  OrderBook, Live, timeline, terminal, shortID, placeNewestFirst,
} from "/assets/app.js";

// The page keeps the newest orders: past this many (more once the shopper
// asks for older ones), the oldest leave it. An admin here follows every
// order of the shop.
const keepOrders = 200;

const state = {
  cart: new Map(),
  listed: "", // the filters of the product list on the page
  cursor: "",
  ordersCursor: "",
  keep: keepOrders,
};
const book = new OrderBook(renderOrder);
const live = new Live({
  scope: "mine", book, refresh: () => loadOrders(true),
  // An order that ends has committed or released its stock.
  onEvent: (e) => { if (terminal.has(e.status)) stockLater(); },
});

const dashboard = () => location.hash === "#orders";

function applyView() {
  document.body.classList.toggle("dash", dashboard());
  document.title = dashboard() ? "My orders · ordersaga" : "ordersaga shop";
  header(dashboard() ? "myorders" : "shop");
  for (const o of book.values()) renderOrder(o);
}

async function loadProducts(reset) {
  if (reset) {
    const f = new URLSearchParams();
    if ($("q").value) f.set("q", $("q").value);
    if ($("brand").value) f.set("brand", $("brand").value);
    if ($("instock").checked) f.set("in_stock", "true");
    state.listed = f.toString();
    state.cursor = "";
    $("products").replaceChildren();
  }
  const p = new URLSearchParams(state.listed);
  p.set("limit", "24");
  if (state.cursor) p.set("cursor", state.cursor);
  const page = await api("GET", "/products?" + p);
  for (const pr of page.items) {
    const add = el("button", { className: "add", textContent: "Add", disabled: pr.available < 1 });
    add.onclick = () => {
      const line = state.cart.get(pr.sku) || { sku: pr.sku, name: pr.name, price: pr.price_cents, currency: pr.currency, qty: 0 };
      line.qty++;
      state.cart.set(pr.sku, line);
      renderCart();
    };
    $("products").append(el("div", { className: "card", id: "p-" + pr.sku },
      el("strong", { textContent: pr.name }),
      el("span", { className: "brand", textContent: pr.brand + " · " + pr.sku }),
      el("span", { className: "muted desc", textContent: pr.description }),
      el("div", { className: "row" },
        el("span", { className: "price", textContent: money(pr.price_cents, pr.currency) }),
        el("span", { className: "muted left", textContent: pr.available + " left" }), add)));
  }
  state.cursor = page.next_cursor || "";
  $("more").hidden = !state.cursor;
  const n = $("products").children.length;
  $("count").textContent = n + (n === 1 ? " product" : " products") + (state.cursor ? " shown" : "");
}

// stockLater has the stock on the page read again soon: at most once
// every half second however many orders end meanwhile.
let stockTimer = 0;
function stockLater() {
  if (!stockTimer) stockTimer = setTimeout(() => { stockTimer = 0; refreshStock().catch(() => {}); }, 500);
}

// refreshStock updates the "left" counts of the products on the page. The
// cards are the first of the list with its filters, in sku order: one read
// of that many (or one per 200) finds them, where a read per card would
// send dozens of requests. The few cards the list no longer has (sold out
// under "in stock", deactivated) are read one by one.
async function refreshStock() {
  const cards = new Map([...$("products").children].map((c) => [c.id.slice(2), c]));
  const p = new URLSearchParams(state.listed);
  for (let pages = Math.ceil(cards.size / 200), cursor = ""; pages > 0; pages--) {
    p.set("limit", String(Math.min(200, cards.size)));
    if (cursor) p.set("cursor", cursor);
    const page = await api("GET", "/products?" + p);
    for (const pr of page.items) {
      const card = cards.get(pr.sku);
      if (card) { showStock(card, pr); cards.delete(pr.sku); }
    }
    cursor = page.next_cursor;
    if (!cursor || cards.size === 0) break;
  }
  for (const [sku, card] of [...cards].slice(0, 8)) {
    const pr = await api("GET", "/products/" + encodeURIComponent(sku)).catch(() => null);
    if (pr) showStock(card, pr);
  }
}

function showStock(card, pr) {
  card.querySelector(".left").textContent = pr.available + " left";
  card.querySelector("button.add").disabled = pr.available < 1;
}

function renderCart() {
  $("cart").replaceChildren(...[...state.cart.values()].map((it) => {
    const rm = el("button", { textContent: "−", title: "One less" });
    rm.onclick = () => { it.qty--; if (it.qty < 1) state.cart.delete(it.sku); renderCart(); };
    return el("li", { className: "row" }, el("span", { textContent: it.qty + " × " + it.name }),
      el("span", { textContent: money(it.qty * it.price, it.currency) }), rm);
  }));
  $("cartEmpty").hidden = state.cart.size > 0;
  $("order").disabled = !session.token || state.cart.size === 0 || (session.user && session.user.role !== "customer");
  $("order").title = session.user && session.user.role !== "customer" ? "Only customers place orders" : "";
}

// renderOrder draws one order where it belongs in the list (newest
// first): its status, total, lines, and its timeline (in the dashboard,
// or when opened).
function renderOrder(o) {
  let li = $("o-" + o.id);
  if (!li) {
    li = el("li", { id: "o-" + o.id, dataset: { created: o.created_at || new Date().toISOString() } });
    placeNewestFirst($("orders"), $("orders").children, li);
    forgetOldest();
    if (!book.has(o.id)) return; // the oldest of all: not kept
  } else if (o.created_at && o.created_at !== li.dataset.created) {
    // An order first heard of by its events: the API says when it was placed.
    li.dataset.created = o.created_at;
    placeNewestFirst($("orders"), $("orders").children, li);
    forgetOldest();
    if (!book.has(o.id)) return;
  }
  const open = dashboard() || li.classList.contains("open");
  if (open) book.loadEvents(o);

  const cancel = el("button", { className: "danger", textContent: "Cancel", hidden: !o.status || terminal.has(o.status) });
  cancel.onclick = async () => {
    cancel.disabled = true;
    o.cancelError = "";
    try { book.put(await api("POST", "/orders/" + o.id + "/cancel", {})); }
    catch (e) { o.cancelError = e.message; renderOrder(o); }
  };
  const toggle = el("button", { className: "link toggle", textContent: li.classList.contains("open") ? "Hide timeline" : "Timeline" });
  toggle.onclick = () => { li.classList.toggle("open"); renderOrder(o); };
  const lines = (o.items || []).map((i) => i.quantity + " × " + (i.name || i.sku)).join(", ");
  li.replaceChildren(...[
    el("div", { className: "row" },
      el("span", { className: "badge " + (o.status || ""), textContent: (o.status || "…") + (o.reason ? " · " + o.reason : "") }),
      el("span", { className: "muted", textContent: o.total_cents !== undefined ? money(o.total_cents, o.currency) : "" }),
      cancel),
    el("div", { className: "muted", textContent: lines || "order " + shortID(o.id) }),
    el("div", { className: "order-meta muted" },
      el("span", { className: "mono", textContent: shortID(o.id) }),
      o.created_at ? el("span", { title: day(o.created_at), textContent: "placed " + clock(o.created_at) }) : null,
      o.payment_method ? el("span", { textContent: o.payment_method }) : null,
      toggle),
    o.cancelError ? el("div", { className: "error", textContent: o.cancelError }) : null,
    timeline(o)].filter(Boolean));
  ordersNote();
}

// forgetOldest drops the oldest orders past what the page keeps, except
// one whose timeline the shopper has opened.
function forgetOldest() {
  const rows = $("orders").children;
  for (let i = rows.length - 1; i >= 0 && rows.length > state.keep; i--) {
    if (rows[i].classList.contains("open")) continue;
    book.forget(rows[i].id.slice(2));
    rows[i].remove();
  }
}

// loadOrders lists the latest orders. With keep, the orders already on
// the page stay (the socket resumes them from their last seq) and what
// the API says is merged in: orders placed or moved on meanwhile.
async function loadOrders(keep) {
  if (!keep) { $("orders").replaceChildren(); book.clear(); state.keep = keepOrders; }
  const page = await api("GET", "/orders?limit=20");
  page.items.forEach((o) => book.put(o));
  if (!keep || !state.ordersCursor) state.ordersCursor = page.next_cursor || "";
  $("older").hidden = !state.ordersCursor;
  ordersNote();
}

async function olderOrders() {
  const page = await api("GET", "/orders?limit=20&cursor=" + encodeURIComponent(state.ordersCursor));
  // The shopper asked for these: the page keeps them too.
  state.keep = Math.max(state.keep, $("orders").children.length + page.items.length);
  page.items.forEach((o) => book.put(o));
  state.ordersCursor = page.next_cursor || "";
  $("older").hidden = !state.ordersCursor;
}

function ordersNote() {
  const n = $("orders").children.length;
  $("ordersNote").hidden = !!session.user && n > 0;
  $("ordersNote").textContent = !session.user ? "Sign in to follow your orders live." : "No orders yet.";
}

async function signedIn() {
  const { user, same } = await whoAmI();
  const admin = user.role === "admin";
  header(dashboard() ? "myorders" : "shop");
  $("auth").hidden = true;
  $("authError").textContent = "";
  $("ordersTitle").textContent = admin ? "All orders" : "My orders";
  $("ordersLink").href = admin ? "/admin#orders" : "#orders";
  live.scope = admin ? "all" : "mine";
  renderCart();
  // After an expired session the same user keeps the page's orders (and
  // resumes them); anyone else starts from their own.
  await loadOrders(same);
  await live.start();
}

// The session has ended (the hub closed with 4401, or the API refused
// the token): ask for a new sign-in. The orders stay on the page, frozen,
// and resume where they were when the same shopper signs in again.
session.onExpired(() => {
  live.stop("signed out");
  header(dashboard() ? "myorders" : "shop");
  $("auth").hidden = false;
  $("authError").textContent = "Your session has expired: sign in again to follow your orders live.";
  renderCart();
});

bindSignIn(signedIn);
window.addEventListener("hashchange", applyView);
$("search").onclick = () => loadProducts(true).catch((e) => { $("count").textContent = e.message; });
$("q").onkeydown = (e) => { if (e.key === "Enter") $("search").click(); };
$("more").onclick = () => loadProducts(false).catch((e) => { $("count").textContent = e.message; });
$("older").onclick = () => olderOrders().catch((e) => { $("ordersNote").hidden = false; $("ordersNote").textContent = e.message; });
$("order").onclick = async () => {
  $("orderError").textContent = "";
  $("order").disabled = true;
  try {
    const items = [...state.cart.values()].map((i) => ({ sku: i.sku, quantity: i.qty }));
    const o = await api("POST", "/orders", { items, payment_method: $("token").value }, { "Idempotency-Key": crypto.randomUUID() });
    state.cart.clear();
    book.put(Object.assign(o, { seq: 1 })); // the answer is the PENDING event's state
    ordersNote();
  } catch (e) { $("orderError").textContent = e.message; }
  renderCart();
};

applyView();
renderCart();
loadProducts(true).catch((e) => { $("count").textContent = e.message; });
if (session.token) {
  signedIn().catch((e) => {
    if (e.status === 401) return; // the session handler has asked for a sign-in
    $("authError").textContent = e.message;
    setLive("offline");
  });
}
