// The system page (/admin/system): each service's health, read every
// 2.5 s from /api/v1/system/status, and the monitoring charts of the last
// 15 minutes, read every 5 s from /api/v1/system/metrics and drawn with
// uPlot (vendored; see gateway/web/vendor/README.md). Charts are drawn
// from what the server sends, whatever charts and series it has.
import { $, el, api, adminPage, setLive, ago, clock, day } from "/assets/app.js";

const statusEvery = 2500;
const metricsEvery = 5000;
const chartHeight = 190;
const palette = ["#3b5bdb", "#2b8a3e", "#e8590c", "#c92a2a", "#7048e8", "#1098ad", "#d6336c", "#5c940d", "#868e96", "#f08c00"];

const state = { running: false, statusTimer: 0, metricsTimer: 0, statusOK: 0, charts: new Map() };

adminPage({
  current: () => "system",
  async start() {
    stop();
    state.running = true;
    poll("statusTimer", statusEvery, readStatus);
    poll("metricsTimer", metricsEvery, readMetrics);
  },
  stop() { stop(); setLive("signed out"); },
});

function stop() {
  state.running = false;
  clearTimeout(state.statusTimer);
  clearTimeout(state.metricsTimer);
}

// poll calls read now and then every ms after each answer, so that a slow
// server never has two of the page's reads waiting at once.
function poll(timer, ms, read) {
  const tick = async () => {
    if (!state.running) return;
    await read();
    if (state.running) state[timer] = setTimeout(tick, ms);
  };
  tick();
}

// ---- Health ------------------------------------------------------------

async function readStatus() {
  try {
    const st = await api("GET", "/system/status");
    state.statusOK = Date.now();
    renderStatus(st);
    $("healthError").hidden = true;
    setLive("live");
  } catch (e) {
    if (e.status === 401) return; // the session has ended: the sign-in is back
    setLive("offline");
    $("healthError").hidden = false;
    $("healthError").textContent = "No status from the gateway" + (state.statusOK ? " since " + clock(state.statusOK) : "") + ": " + e.message +
      " What is shown below is from then.";
    for (const c of $("components").children) c.classList.add("stale");
  }
}

const count = (n, one, many) => n + " " + (n === 1 ? one : many || one + "s");

function renderStatus(st) {
  const now = Date.now();
  $("healthAt").textContent = "updated " + clock(now) + " · every " + statusEvery / 1000 + " s";
  $("components").replaceChildren(...st.components.map((c) => el("div", { className: "component " + (c.up ? "up" : "down"), dataset: { name: c.name } },
    el("div", { className: "row" },
      el("strong", { textContent: c.name }),
      el("span", { className: "state", textContent: c.up ? "up" : "down" })),
    el("div", { className: "muted seen", title: c.last_seen ? day(c.last_seen) : "" ,
      textContent: c.last_seen ? "last seen " + ago(c.last_seen, now) + " (" + clock(c.last_seen) + ")" : "never seen" }),
    c.backlog != null ? el("div", { className: "fig", textContent: "task-queue backlog " + c.backlog }) : null,
    c.kafka_consumer_lag != null ? el("div", { className: "fig", textContent: "Kafka consumer lag " + c.kafka_consumer_lag }) : null,
    c.connections != null ? el("div", { className: "fig", textContent: count(c.connections, "connection") }) : null,
    c.detail ? el("div", { className: "detail", textContent: c.detail }) : null)));

  // The figures an operator scans first: what is waiting, and where.
  const hub = st.components.find((c) => c.kafka_consumer_lag != null);
  const queues = st.components.filter((c) => c.backlog != null);
  const tile = (label, value, sub, bad) => el("div", { className: "figure" + (bad ? " bad" : ""), dataset: { figure: label } },
    el("div", { className: "muted", textContent: label }), el("div", { className: "value", textContent: value }), el("div", { className: "muted", textContent: sub }));
  const tiles = [];
  if (st.outbox) {
    tiles.push(tile("Outbox lag", count(st.outbox.unpublished, "event"), st.outbox.unpublished ? "oldest " + st.outbox.oldest_age_seconds.toFixed(1) + " s" : "all published",
      st.outbox.oldest_age_seconds > 10));
  } else {
    tiles.push(tile("Outbox lag", "unknown", "the orders database does not answer", true));
  }
  tiles.push(hub ? tile("Kafka consumer lag", count(hub.kafka_consumer_lag, "record"), "the hub's, behind the topic", hub.kafka_consumer_lag > 1000)
    : tile("Kafka consumer lag", "unknown", "the hub does not answer", true));
  tiles.push(tile("Task-queue backlog", count(queues.reduce((n, c) => n + c.backlog, 0), "task"),
    queues.map((c) => c.name.replace(/ worker$/, "") + " " + c.backlog).join(" · ") || "no queue answers"));
  $("figures").replaceChildren(...tiles);
}

// ---- Monitoring --------------------------------------------------------

async function readMetrics() {
  try {
    const m = await api("GET", "/system/metrics");
    renderMetrics(m);
    $("metricsUnavailable").hidden = true;
  } catch (e) {
    if (e.status === 401) return;
    $("metricsUnavailable").hidden = false;
    $("metricsUnavailable").textContent = "Monitoring is unavailable: " +
      (e.status === 404 ? "this server does not provide /api/v1/system/metrics yet." : e.message) +
      (state.charts.size ? " The charts show the last figures read." : "");
  }
}

function renderMetrics(m) {
  $("metricsAt").textContent = "updated " + clock(Date.now()) + " · every " + metricsEvery / 1000 + " s";
  const shown = new Set();
  for (const c of m.charts) {
    shown.add(c.id);
    drawChart(c, m.timestamps);
  }
  for (const [id, ch] of state.charts) {
    if (!shown.has(id)) { if (ch.plot) ch.plot.destroy(); ch.card.remove(); state.charts.delete(id); }
  }
  $("slowRows").replaceChildren(...(m.slow_statements || []).map((s) => el("tr", {},
    el("td", {}, el("code", { className: "statement", title: s.query, textContent: s.query })),
    el("td", { className: "num", textContent: String(s.calls) }),
    el("td", { className: "num", textContent: duration(s.mean_ms / 1000) }),
    el("td", { className: "num", textContent: duration(s.total_ms / 1000) }))));
  if (!(m.slow_statements || []).length) $("slowRows").append(el("tr", {}, el("td", { colSpan: 4, className: "muted", textContent: "None known." })));
  $("notes").replaceChildren(...(m.notes || []).map((n) => el("li", { className: "muted", textContent: n })));
}

// drawChart draws one chart, or gives an existing one its new data; a
// chart whose series changed (a new rejection reason, say) is drawn anew.
function drawChart(c, timestamps) {
  const names = c.series.map((s) => s.name).join("\n");
  const data = [timestamps, ...c.series.map((s) => s.values)];
  let ch = state.charts.get(c.id);
  if (ch && ch.plot && ch.names === names) {
    ch.plot.setData(data);
    return;
  }
  if (!ch) {
    const plot = el("div", { className: "plot" });
    const card = el("div", { className: "chart", id: "chart-" + c.id, dataset: { chart: c.id } },
      el("div", { className: "row" }, el("h3", { textContent: c.title }), el("span", { className: "muted", textContent: c.unit })), plot);
    $("charts").append(card);
    ch = { card, at: plot };
    state.charts.set(c.id, ch);
  } else if (ch.plot) {
    ch.plot.destroy();
    ch.plot = null;
  }
  const fmt = formatter(c.unit, true);
  const tick = formatter(c.unit, false);
  const opts = {
    width: Math.max(ch.at.clientWidth, 280),
    height: chartHeight,
    cursor: { drag: { setScale: false } },
    scales: { y: { range: (u, min, max) => [0, max > 0 ? max * 1.15 : 1] } },
    // The y axis is as wide as its longest label.
    axes: [{}, { values: (u, splits) => splits.map(tick), size: (u, values) => 16 + 7 * Math.max(3, ...(values || []).map((v) => v.length)) }],
    series: [
      {},
      ...c.series.map((s, i) => ({
        label: s.name,
        stroke: palette[i % palette.length],
        width: 1.5,
        // A line needs two values in a row: a lone value is drawn as a dot.
        points: { show: false, size: 6, filter: lone },
        // The legend shows, per series, the value under the cursor (or the
        // latest) and the peak of the 15 minutes.
        values: (u, si, idx) => {
          const vals = (u.data && u.data[si]) || []; // none yet while uPlot sets up the legend
          return { value: fmt(idx == null ? latest(vals) : vals[idx]), peak: fmt(peak(vals)) };
        },
      })),
    ],
  };
  ch.plot = new window.uPlot(opts, data, ch.at);
  ch.names = names;
}

// Charts follow their cards' width.
new ResizeObserver(() => {
  for (const ch of state.charts.values()) if (ch.plot) ch.plot.setSize({ width: Math.max(ch.at.clientWidth, 280), height: chartHeight });
}).observe($("charts"));

// lone lists the indexes of a series' values that have no neighbour.
function lone(u, si) {
  const v = u.data[si] || [];
  const out = [];
  for (let i = 0; i < v.length; i++) if (v[i] != null && v[i - 1] == null && v[i + 1] == null) out.push(i);
  return out.length ? out : null;
}

const latest = (vals) => { for (let i = vals.length - 1; i >= 0; i--) if (vals[i] != null) return vals[i]; return null; };
const peak = (vals) => vals.reduce((m, v) => (v != null && (m == null || v > m) ? v : m), null);

// formatter formats a chart's values for its unit: durations for
// seconds, binary multiples for bytes, plain numbers with the unit else
// (withUnit; an axis has the unit in its chart's title).
function formatter(unit, withUnit) {
  const u = (unit || "").trim();
  const perSecond = /\/s$/.test(u);
  const base = perSecond ? u.slice(0, -2) : u;
  let f;
  if (/^(bytes?|B)$/i.test(base)) f = (v) => bytes(v) + (perSecond && withUnit ? "/s" : "");
  else if (/^(seconds?|s)$/i.test(u)) f = duration;
  else f = (v) => number(v) + (withUnit && u ? " " + u : "");
  return (v) => (v == null || Number.isNaN(v) ? "–" : f(v));
}

function number(v) {
  const a = Math.abs(v);
  if (a >= 1e9) return trim(v / 1e9) + "G";
  if (a >= 1e6) return trim(v / 1e6) + "M";
  if (a >= 1e4) return trim(v / 1e3) + "k";
  return trim(v);
}

function trim(v) {
  const a = Math.abs(v);
  const s = a >= 100 || Number.isInteger(v) ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : v.toFixed(2);
  return s.includes(".") ? s.replace(/\.?0+$/, "") : s;
}

function duration(sec) {
  if (sec == null) return "–";
  if (sec === 0) return "0";
  if (sec < 0.001) return trim(sec * 1e6) + " µs";
  if (sec < 1) return trim(sec * 1000) + " ms";
  return trim(sec) + " s";
}

function bytes(v) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return trim(v) + " " + units[i];
}
