// The shop (/): the catalogue, a cart, and the shopper's orders, live.
// /#orders is the shopper's dashboard: the same orders, each with its
// timeline of events. Admins signed in here follow every order.
import {
  $, el, money, clock, day, api, session, header, setLive, bindSignIn, whoAmI,
  OrderBook, Live, timeline, terminal, shortID,
} from "/assets/app.js";

const state = { cart: new Map(), cursor: "", ordersCursor: "" };
const book = new OrderBook(renderOrder);
const live = new Live({ scope: "mine", book, refresh: () => loadOrders(true) });

const dashboard = () => location.hash === "#orders";

function applyView() {
  document.body.classList.toggle("dash", dashboard());
  document.title = dashboard() ? "My orders · ordersaga" : "ordersaga shop";
  header(dashboard() ? "myorders" : "shop");
  for (const o of book.values()) renderOrder(o);
}

async function loadProducts(reset) {
  if (reset) { state.cursor = ""; $("products").replaceChildren(); }
  const p = new URLSearchParams({ limit: "24" });
  if ($("q").value) p.set("q", $("q").value);
  if ($("brand").value) p.set("brand", $("brand").value);
  if ($("instock").checked) p.set("in_stock", "true");
  if (state.cursor) p.set("cursor", state.cursor);
  const page = await api("GET", "/products?" + p);
  for (const pr of page.items) {
    const add = el("button", { textContent: "Add", disabled: pr.available < 1 });
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

// refreshStock updates the "left" counts of the products on the page.
async function refreshStock() {
  for (const card of $("products").children) {
    const pr = await api("GET", "/products/" + encodeURIComponent(card.id.slice(2))).catch(() => null);
    if (pr) card.querySelector(".left").textContent = pr.available + " left";
  }
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
    li = el("li", { id: "o-" + o.id });
    placeByTime(li, o);
  }
  const open = dashboard() || li.classList.contains("open");
  if (open) book.loadEvents(o);
  if (terminal.has(o.status) && o.stockShown !== o.status) { o.stockShown = o.status; refreshStock(); }

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

function placeByTime(li, o) {
  li.dataset.created = o.created_at || new Date().toISOString();
  const after = [...$("orders").children].find((x) => x.dataset.created < li.dataset.created);
  $("orders").insertBefore(li, after || null);
}

// loadOrders lists the latest orders. With keep, the orders already on
// the page stay (the socket resumes them from their last seq) and what
// the API says is merged in: orders placed or moved on meanwhile.
async function loadOrders(keep) {
  if (!keep) { $("orders").replaceChildren(); book.clear(); }
  const page = await api("GET", "/orders?limit=20");
  page.items.forEach((o) => book.put(o));
  if (!keep || !state.ordersCursor) state.ordersCursor = page.next_cursor || "";
  $("older").hidden = !state.ordersCursor;
  ordersNote();
}

async function olderOrders() {
  const page = await api("GET", "/orders?limit=20&cursor=" + encodeURIComponent(state.ordersCursor));
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
