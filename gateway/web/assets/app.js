// What every page of the web app shares: the API client and the session,
// the header with its navigation, the sign-in form, orders and their
// timelines, and the live connection to the websocket hub.
//
// Plain ES modules, no build step: the gateway serves this file as it is.

export const $ = (id) => document.getElementById(id);

// el builds an element: el("li", {className: "x"}, child, "text", …).
export function el(tag, props, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === "dataset") Object.assign(e.dataset, v);
    else e[k] = v;
  }
  for (const k of kids) if (k !== null && k !== undefined && k !== false) e.append(k);
  return e;
}

export const money = (cents, currency) => (cents / 100).toFixed(2) + " " + (currency || "USD");

// clock is a time of day in the viewer's time zone; day adds the date.
export const clock = (t) => new Date(t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
export const day = (t) => new Date(t).toLocaleString([], { dateStyle: "medium", timeStyle: "medium" });

// ago says how long ago t was, in words a person reads at a glance.
export function ago(t, now) {
  const s = Math.max(0, Math.round(((now || Date.now()) - new Date(t).getTime()) / 1000));
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.floor(s / 60) + " min ago";
  return Math.floor(s / 3600) + " h ago";
}

export const statuses = ["PENDING", "RESERVED", "AUTHORIZED", "CONFIRMED", "REJECTED", "CANCELLED", "FAILED"];
export const terminal = new Set(["CONFIRMED", "REJECTED", "CANCELLED", "FAILED"]);
// rank orders statuses along the saga: an order only moves forward.
const rank = (s) => (terminal.has(s) ? 3 : Math.max(0, statuses.indexOf(s)));
export const shortID = (id) => id.slice(0, 8);

// ApiError is an answer in API.md's error shape (or no answer at all:
// status 0), with the field it names if any.
export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    Object.assign(this, { status, code, field });
  }
}

// session is who is signed in: the token (kept in localStorage, so that
// every page of the app shares it) and, once asked, the user.
export const session = {
  token: localStorage.getItem("token"),
  user: null, // who the token belongs to, once asked
  lastUser: null, // who was signed in before the session expired
  expiredHandlers: [],
  set(token) { this.token = token; localStorage.setItem("token", token); },
  clear() { this.token = null; localStorage.removeItem("token"); },
  // onExpired registers what the page does when the server refuses the
  // token: tokens cannot be refreshed without the password, so the page
  // asks for a new sign-in.
  onExpired(fn) { this.expiredHandlers.push(fn); },
  expire() {
    if (!this.token) return;
    this.clear();
    this.user = null;
    this.expiredHandlers.forEach((fn) => fn());
  },
};

// api calls the gateway. Errors throw ApiError; a 401 to a request that
// carried a token means the session has ended, and the page is told.
export async function api(method, path, body, headers) {
  const h = Object.assign({}, headers || {});
  if (body !== undefined) h["Content-Type"] = "application/json";
  const token = session.token;
  if (token) h.Authorization = "Bearer " + token;
  let res;
  try {
    res = await fetch("/api/v1" + path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, "unreachable", "The server does not answer; check the connection and retry.");
  }
  const data = res.status === 204 ? null : await res.json().catch(() => null);
  if (!res.ok) {
    const e = (data && data.error) || {};
    if (res.status === 401 && token && token === session.token) session.expire();
    throw new ApiError(res.status, e.code || "", e.message || res.statusText, e.field);
  }
  return data;
}

let configPromise = null;
// config is /api/v1/config (the hub's URL, the Temporal UI's), read once.
export function config() {
  configPromise = configPromise || api("GET", "/config").catch((e) => { configPromise = null; throw e; });
  return configPromise;
}

// workflowURL is the order's workflow in the Temporal UI. TEMPORAL_UI_URL
// is the UI's root or a page of one namespace (…/namespaces/NS/…), which
// names the namespace; a bare root means the default one.
export function workflowURL(ui, orderID) {
  let u;
  try { u = new URL(ui); } catch { return ""; }
  if (u.protocol !== "http:" && u.protocol !== "https:") return "";
  const m = u.pathname.match(/^(.*?)\/namespaces\/([^/]+)/);
  const root = u.origin + (m ? m[1] : u.pathname.replace(/\/+$/, ""));
  const ns = m ? decodeURIComponent(m[2]) : "default";
  return root + "/namespaces/" + encodeURIComponent(ns) + "/workflows/" + encodeURIComponent("order-" + orderID);
}

// The pages of the app, as the header lists them for each role.
const pages = {
  visitor: [["shop", "Shop", "/#shop"], ["myorders", "My orders", "/#orders"]],
  customer: [["shop", "Shop", "/#shop"], ["myorders", "My orders", "/#orders"]],
  admin: [["shop", "Shop", "/"], ["products", "Products", "/admin#products"], ["orders", "Orders", "/admin#orders"], ["system", "System", "/admin/system"]],
};

// header fills the navigation for the signed-in user's role, with the
// current page marked, and shows who is signed in.
export function header(current) {
  const role = session.user ? session.user.role : "visitor";
  $("nav").replaceChildren(...(pages[role] || pages.visitor).map(([id, label, href]) =>
    el("a", { href, textContent: label, className: id === current ? "current" : "", dataset: { page: id } })));
  $("who").textContent = session.user ? session.user.name + " (" + session.user.role + ")" : "";
  $("logout").hidden = !session.user;
}

// setLive shows the state of the live connection in the header.
export function setLive(text) {
  $("live").textContent = text;
  $("live").classList.toggle("on", text === "live");
}

// bindSignIn wires the page's sign-in form (#login: #email, #password,
// and on the shop #name and #register) and the header's sign-out button.
export function bindSignIn(onSignedIn) {
  const fail = (e) => { $("authError").textContent = e.message; };
  $("login").onsubmit = async (ev) => {
    ev.preventDefault();
    $("authError").textContent = "";
    try {
      const r = await api("POST", "/auth/login", { email: $("email").value, password: $("password").value });
      session.set(r.token);
      $("password").value = "";
      await onSignedIn();
    } catch (e) { fail(e); }
  };
  if ($("register")) {
    $("register").onclick = async () => {
      $("authError").textContent = "";
      try {
        await api("POST", "/auth/register", { email: $("email").value, password: $("password").value, name: $("name").value || $("email").value });
        $("login").requestSubmit();
      } catch (e) { fail(e); }
    };
  }
  $("logout").onclick = () => { session.clear(); location.reload(); };
}

// whoAmI asks who the token belongs to. The previous user is returned
// too, so that a page signed in again as the same user keeps its state.
export async function whoAmI() {
  const before = session.lastUser;
  session.user = session.lastUser = await api("GET", "/me");
  return { user: session.user, same: !!before && before.id === session.user.id };
}

// fieldErrors shows an API error next to the field it names: each input
// of the form has a name and is followed by <div class="field-error"
// data-for="NAME">. The API's field names may differ from the inputs'
// (alias maps one to the other); an error that names no field of the
// form goes to the form's own error line.
export function fieldErrors(form, err, alias) {
  clearErrors(form);
  const field = err && err.field ? (alias && alias[err.field]) || err.field : "";
  const slot = field && form.querySelector(`.field-error[data-for="${CSS.escape(field)}"]`);
  if (slot) {
    slot.textContent = err.message;
    const input = form.elements[field];
    if (input) { input.classList.add("invalid"); input.focus(); }
  } else {
    form.querySelector(".form-error").textContent = err.message;
  }
}

export function clearErrors(form) {
  form.querySelectorAll(".field-error, .form-error").forEach((e) => { e.textContent = ""; });
  form.querySelectorAll(".invalid").forEach((e) => e.classList.remove("invalid"));
}

// OrderBook holds the orders a page shows, each with its events, and
// merges what the API lists and what the hub pushes: an order's status
// only moves forward in seq, and each event appears once in its timeline.
export class OrderBook {
  constructor(changed) {
    this.byID = new Map();
    this.changed = changed; // called with an order whenever it changes
    // The orders the page has let go of (past what it keeps), whose
    // events it ignores; the oldest are forgotten past a bound.
    this.forgotten = new Set();
    this.unread = new Set(); // announced orders waiting to be read whole
    this.byIDLater = new Set(); // those of them to read one by one
    this.readTimer = 0;
  }

  get(id) { return this.byID.get(id); }
  has(id) { return this.byID.has(id); }
  get size() { return this.byID.size; }
  values() { return this.byID.values(); }
  clear() { [this.byID, this.forgotten, this.unread, this.byIDLater].forEach((c) => c.clear()); }

  // forget lets go of an order the page no longer shows. The hub's events
  // for it are ignored from then on, so that orders the page has dropped
  // do not come back one event (and one read) at a time; reading it from
  // the API again (put) brings it back.
  forget(id) {
    this.byID.delete(id);
    this.unread.delete(id);
    this.byIDLater.delete(id);
    this.forgotten.add(id);
    if (this.forgotten.size > forgetBound) this.forgotten.delete(this.forgotten.values().next().value);
  }

  entry(id) {
    let o = this.byID.get(id);
    // seq is the last event the page has of the order, heard its status;
    // status may be newer, read from the API.
    if (!o) { o = { id, seq: 0, heard: "", events: new Map(), eventsLoaded: false }; this.byID.set(id, o); }
    return o;
  }

  // resumable lists the orders to follow again after a reconnect, each
  // with the seq to resume after: those whose last event the page has is
  // not terminal (even if the API says the order has ended since: the
  // page must still hear how), and those it has no event of, if open.
  resumable() {
    return [...this.byID.values()].filter((o) => (o.seq > 0 ? !terminal.has(o.heard) : !terminal.has(o.status)));
  }

  // put merges an Order read from the API. The API's answer is as fresh
  // as its read: a status the hub has already moved past is kept.
  put(order) {
    this.forgotten.delete(order.id);
    const o = this.entry(order.id);
    const { status, reason, seq, heard } = o;
    Object.assign(o, order);
    o.seq = Math.max(seq, order.seq || 0);
    o.heard = o.seq > seq ? order.status : heard;
    if (status && rank(status) > rank(order.status)) Object.assign(o, { status, reason });
    this.changed(o);
    return o;
  }

  // event applies one OrderEvent from the hub. An order the page has not
  // seen (placed while it was offline, or by someone else for an admin) is
  // read whole from the API.
  event(e) {
    if (this.forgotten.has(e.order_id)) return;
    const known = this.byID.has(e.order_id);
    const o = this.entry(e.order_id);
    const gap = o.eventsLoaded && e.seq > o.seq + 1;
    o.events.set(e.seq, e);
    if (e.seq > o.seq) {
      // Resumed events catch up on a status the API may have read already:
      // the page hears them, but what it shows does not step back.
      const { status, reason } = o;
      Object.assign(o, { seq: e.seq, heard: e.status, status: e.status, reason: e.reason, total_cents: e.total_cents, customer_id: e.customer_id, updated_at: e.occurred_at });
      if (status && rank(status) > rank(e.status)) Object.assign(o, { status, reason });
    }
    if (!known) {
      o.created_at = o.created_at || e.occurred_at;
      this.readLater(o.id);
    }
    // The timeline misses events: the page reads it again when it shows it.
    if (gap) Object.assign(o, { eventsLoaded: false, eventsError: "" });
    this.changed(o);
  }

  // readLater reads orders the hub announced whole (lines, payment),
  // gathered over a quarter of a second, so that a busy shop does not
  // make an admin's page send a request per order.
  readLater(id) {
    this.unread.add(id);
    this.readSoon(250);
  }

  readSoon(after) {
    if (this.readTimer) return;
    this.readTimer = setTimeout(() => {
      this.readTimer = 0;
      this.readUnread().catch(() => {}); // the rows keep what the events said
    }, after);
  }

  // readUnread reads the announced orders the page still holds: when many,
  // from pages of the newest orders, where a burst of new ones is; the few
  // others and those not found there (older orders that moved on) by id,
  // readAtOnce at a time and at most readBatch per round, the rest in the
  // next round, a second later.
  async readUnread() {
    const fresh = [...this.unread].filter((id) => this.byID.has(id));
    this.unread.clear();
    const missing = new Set(fresh);
    if (missing.size > 5) {
      let cursor = "";
      for (let n = 0; n < listPages && missing.size > 0; n++) {
        const page = await api("GET", "/orders?limit=200" + (cursor ? "&cursor=" + encodeURIComponent(cursor) : "")).catch(() => null);
        for (const o of (page && page.items) || []) {
          if (missing.delete(o.id) && this.byID.has(o.id)) this.put(o);
        }
        cursor = page && page.next_cursor;
        if (!cursor) break;
      }
    }
    for (const id of missing) this.byIDLater.add(id);
    const queue = [];
    for (const id of this.byIDLater) {
      if (queue.length === readBatch) break;
      this.byIDLater.delete(id);
      if (this.byID.has(id)) queue.push(id);
    }
    const reader = async () => {
      for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
        const o = await api("GET", "/orders/" + id).catch(() => null);
        if (o && this.byID.has(o.id)) this.put(o);
      }
    };
    await Promise.all(Array.from({ length: readAtOnce }, reader));
    if (this.byIDLater.size > 0) this.readSoon(1000);
  }

  // loadEvents reads the order's timeline from the API, once (or again
  // with force, to fill a gap).
  async loadEvents(o, force) {
    if ((!force && (o.eventsLoaded || o.eventsError)) || o.loadingEvents) return;
    o.loadingEvents = true;
    try {
      const page = await api("GET", "/orders/" + o.id + "/events");
      for (const e of page.items) o.events.set(e.seq, e);
      const last = page.items[page.items.length - 1];
      if (last && last.seq > o.seq) Object.assign(o, { seq: last.seq, heard: last.status, status: last.status, reason: last.reason });
      o.eventsLoaded = true;
      o.eventsError = "";
    } catch (e) {
      o.eventsError = "The timeline could not be read: " + e.message;
    } finally {
      o.loadingEvents = false;
      this.changed(o);
    }
  }
}

// How the book reads announced orders: up to listPages pages of the
// newest orders, then up to readBatch orders by id per round, readAtOnce
// at a time. It remembers up to forgetBound orders it has let go of.
const listPages = 5, readBatch = 50, readAtOnce = 4, forgetBound = 20000;

// placeNewestFirst puts row (an order's element, with data-created) among
// rows (the container's order elements, newest first) where its time puts
// it: a binary search, since new orders may arrive by the hundred.
export function placeNewestFirst(container, rows, row) {
  if (row.parentNode) row.remove();
  const t = createdAt(row);
  let lo = 0, hi = rows.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (createdAt(rows[mid]) >= t) lo = mid + 1;
    else hi = mid;
  }
  container.insertBefore(row, rows[lo] || null);
}

// createdAt is a row's data-created as a number: API times and the
// browser's differ in their fractions of a second, which breaks a
// comparison of strings.
const createdAt = (row) => Date.parse(row.dataset.created) || 0;

// timeline draws an order's events in seq order, each with its time and
// how long after the order was placed it happened.
export function timeline(o) {
  const ol = el("ol", { className: "timeline" });
  const events = [...o.events.values()].sort((a, b) => a.seq - b.seq);
  if (events.length === 0) {
    ol.append(el("li", { className: "muted", textContent: o.eventsError || "Loading the timeline…" }));
    return ol;
  }
  const start = new Date(events[0].occurred_at).getTime();
  for (const e of events) {
    const after = (new Date(e.occurred_at).getTime() - start) / 1000;
    ol.append(el("li", { className: terminal.has(e.status) ? "terminal" : "", dataset: { seq: String(e.seq) } },
      el("span", { className: "seq", textContent: "#" + e.seq }),
      el("span", { className: "step " + e.status, textContent: e.status }),
      e.reason ? el("span", { className: "muted", textContent: e.reason.replaceAll("_", " ") }) : null,
      el("time", { dateTime: e.occurred_at, title: day(e.occurred_at), textContent: clock(e.occurred_at) + (e.seq > 1 ? " (+" + after.toFixed(1) + " s)" : "") })));
  }
  if (o.eventsError) ol.append(el("li", { className: "error", textContent: o.eventsError }));
  return ol;
}

// Live follows orders over the websocket hub: a scope ("mine" or "all")
// for what happens from now on, and each open order resumed after the
// last seq the page has, so that nothing is missed across a reconnect.
// After a close it reconnects by itself (1001: the hub restarts; 1006:
// the network; 4001: the page could not keep up); 4401 (the token has
// ended) ends the session instead.
//
// The pause before a reconnect is drawn at random up to a ceiling that
// doubles with each failure ("full jitter"), so that the pages a hub
// restart closes all at once do not come back all at once. The ceiling
// falls back only once a connection has stayed up for a while: a hub that
// accepts and then drops the page at once must not make it reconnect,
// and read its orders again, every second. After 4001 the page waits
// longer still: the hub has just shed it for falling behind.
export class Live {
  constructor({ scope, book, refresh, onEvent }) {
    this.scope = scope;
    this.book = book;
    this.onEvent = onEvent || (() => {}); // called after the book has the event
    this.refresh = refresh || (async () => {}); // what to read again before a reconnect
    this.ws = null;
    this.failures = 0; // closes since the last connection that lasted
    this.slow = false; // the hub shed the page (4001) since then
    this.timer = 0;
    this.steady = 0; // the timer that declares the connection lasting
    this.stopped = true;
  }

  async start() {
    this.stopped = false;
    clearTimeout(this.timer);
    this.failures = 0;
    this.slow = false;
    await this.connect();
  }

  stop(text) {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.steady);
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close(1000);
    setLive(text || "offline");
  }

  async connect() {
    const cfg = await config();
    if (this.stopped || !session.token) return;
    if (this.ws) { const old = this.ws; this.ws = null; old.close(1000); }
    const ws = new WebSocket(cfg.ws_url + "?token=" + encodeURIComponent(session.token));
    this.ws = ws;
    ws.onopen = () => {
      setLive("live");
      clearTimeout(this.steady);
      this.steady = setTimeout(() => { if (this.ws === ws) { this.failures = 0; this.slow = false; } }, backoff.steady);
      ws.send(JSON.stringify({ type: "subscribe", scope: this.scope }));
      for (const o of this.book.resumable()) {
        ws.send(JSON.stringify({ type: "subscribe", order_id: o.id, after_seq: o.seq }));
      }
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return; // replaced or stopped
      this.ws = null;
      clearTimeout(this.steady);
      if (ev.code === 4401) { session.expire(); return; }
      if (ev.code === 4001) this.slow = true;
      setLive("reconnecting");
      this.later();
    };
    ws.onmessage = (m) => {
      let e;
      try { e = JSON.parse(m.data); } catch { return; }
      if (e.type !== "order.status_changed") return;
      this.book.event(e);
      this.onEvent(e);
    };
  }

  // pause is how long to wait before the next reconnect.
  pause() {
    const b = this.slow ? backoff.slow : backoff.normal;
    const ceiling = Math.min(b.max, b.first * 2 ** Math.min(this.failures, 16));
    this.failures++;
    return b.min + Math.random() * ceiling;
  }

  later() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.reconnect(), this.pause());
  }

  async reconnect() {
    if (this.stopped || !session.token) return;
    try {
      await this.refresh();
      await this.connect();
    } catch (e) {
      if (e.status !== 401) this.later(); // a 401 has ended the session
    }
  }
}

// backoff is how Live paces its reconnects, in milliseconds: a pause of
// min plus a random share of a ceiling that starts at first and doubles
// up to max; the ceiling starts over once a connection has lasted steady.
const backoff = {
  normal: { min: 0, first: 1000, max: 10000 },
  slow: { min: 5000, first: 10000, max: 60000 },
  steady: 30000,
};

// adminPage runs a page for admins. The page itself is public; its data
// needs an admin's token. A visitor sees the sign-in, a customer a notice
// that the page is for admins only, an admin the page (#app), which
// start(same) fills; same is true when the admin signed in again after
// their session ended, so that the page can keep its state. When the
// session ends, stop() halts the page's live updates and the sign-in
// comes back.
export function adminPage({ current, start, stop }) {
  const show = (what) => {
    $("gate").hidden = what === "app";
    $("app").hidden = what !== "app";
    $("auth").hidden = what !== "signin";
    $("forbidden").hidden = what !== "forbidden";
  };
  async function enter() {
    try {
      const { user, same } = await whoAmI();
      header(current());
      if (user.role !== "admin") {
        $("forbiddenWho").textContent = user.name + " (" + user.role + ")";
        show("forbidden");
        return;
      }
      show("app");
      await start(same);
    } catch (e) {
      if (e.status === 401) return; // the session handler shows the sign-in
      show("signin");
      $("authError").textContent = e.message;
    }
  }
  session.onExpired(() => {
    stop();
    header(current());
    show("signin");
    $("authError").textContent = "Your session has expired: sign in again.";
  });
  bindSignIn(enter);
  header(current());
  if (session.token) enter();
  else show("signin");
  return { rerender: () => header(current()) };
}
