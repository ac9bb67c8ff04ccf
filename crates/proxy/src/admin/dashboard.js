// redis-ha dashboard: refreshes the tables from /api/status and draws the
// last 15 minutes from /api/history as inline SVG, once a second. The page
// is complete without it (the server fills in every table).
"use strict";
const SPAN_MS = 15 * 60 * 1000;
const W = 600, H = 170, L = 44, R = 8, T = 8, B = 20;
const COLORS = ["#1a73e8", "#e8710a", "#188038", "#9334e6", "#d01884", "#12b5cb", "#b3261e", "#5f6368", "#f9ab00"];
const STEPS = ["odown_ms", "promoted_ms", "adopted_ms", "first_write_ms", "switch_master_ms", "ended_ms"];
const e = s => String(s ?? "").replace(/[&<>"]/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;" })[c]);
let names = {};
let samples = [];
let failovers = [];
let now = Date.now();

const node = a => a == null ? "?" : (names[a] ? `<b class="name">${e(names[a])}</b> ${e(a)}` : e(a));
const clock = ms => new Date(ms).toISOString().slice(11, 19) + " UTC";
const byId = id => document.getElementById(id);

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}
const fmt = v => v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v >= 1 ? v.toFixed(2) : v.toPrecision(2).replace(/\.?0+$/, "");

// series: [{name, values: [[t, v|null], ...]}]
function chart(id, series) {
  const svg = byId(id);
  if (!svg) return;
  const t0 = now - SPAN_MS;
  const x = t => L + (t - t0) / SPAN_MS * (W - L - R);
  let max = 0;
  for (const s of series) for (const [, v] of s.values) if (v != null && v > max) max = v;
  max = niceMax(max * 1.05);
  const y = v => H - B - v / max * (H - T - B);
  let out = "";
  for (const f of [0, 0.5, 1]) {
    const yy = y(max * f).toFixed(1);
    out += `<line class="grid" x1="${L}" x2="${W - R}" y1="${yy}" y2="${yy}"/><text x="${L - 4}" y="${+yy + 4}" text-anchor="end">${fmt(max * f)}</text>`;
  }
  for (const m of [15, 10, 5, 0]) {
    const xx = x(now - m * 60000).toFixed(1);
    out += `<text x="${xx}" y="${H - 5}" text-anchor="${m ? "middle" : "end"}">${m ? "-" + m + " min" : "now"}</text>`;
  }
  out += `<line class="axis" x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}"/>`;
  // Failovers: shaded from the fault seen to the adoption (or now), a
  // dashed line at the adoption.
  for (const f of failovers) {
    const a = f.at_unix_ms, adopted = f.adopted_ms != null ? a + f.adopted_ms : null;
    const end = adopted ?? (f.ended_ms != null ? a + f.ended_ms : now);
    if (end < t0) continue;
    const x1 = Math.max(x(a), L), x2 = Math.max(x(end), x1 + 1.5);
    const what = `failover ${clock(a)}: ${e(names[f.old_master] ?? f.old_master ?? "?")} → ${e(names[f.new_master] ?? f.new_master ?? "?")}, ${e(f.outcome)}`;
    out += `<rect class="failover-band" x="${x1.toFixed(1)}" y="${T}" width="${(x2 - x1).toFixed(1)}" height="${H - T - B}"><title>${what}</title></rect>`;
    const xm = x(adopted ?? end).toFixed(1);
    out += `<line class="failover-marker" data-at="${a}" x1="${xm}" x2="${xm}" y1="${T}" y2="${H - B}"><title>${what}</title></line>`;
  }
  series.forEach((s, i) => {
    s.color = COLORS[i % COLORS.length];
    // A gap (no value) breaks the line.
    let pts = [];
    const flush = () => {
      if (pts.length) out += `<polyline data-series="${e(s.name)}" stroke="${s.color}" points="${pts.join(" ")}"/>`;
      pts = [];
    };
    for (const [t, v] of s.values) {
      if (v == null || t < t0) { flush(); continue; }
      pts.push(`${x(t).toFixed(1)},${y(v).toFixed(1)}`);
    }
    if (pts.length === 1) pts.push(pts[0]);
    flush();
  });
  svg.innerHTML = out;
  const legend = byId(id.replace("chart-", "legend-"));
  if (legend) {
    legend.innerHTML = series.length ? series.map(s => {
      const last = [...s.values].reverse().find(([, v]) => v != null);
      return `<span><i style="background:${s.color}"></i>${e(s.name)} ${last ? fmt(last[1]) : "-"}</span>`;
    }).join("") : `<span class="muted">none in the last 15 minutes</span>`;
  }
}

function drawCharts() {
  const col = k => samples.map(s => [s.t, s[k] ?? null]);
  chart("chart-ops", [{ name: "write", values: col("write_ops") }, { name: "read", values: col("read_ops") }]);
  chart("chart-latency", [
    { name: "write p50", values: col("write_p50_ms") }, { name: "write p99", values: col("write_p99_ms") },
    { name: "read p50", values: col("read_p50_ms") }, { name: "read p99", values: col("read_p99_ms") },
  ]);
  const kinds = [...new Set(samples.flatMap(s => Object.keys(s.errors || {})))].sort();
  chart("chart-errors", kinds.map(k => ({ name: k, values: samples.map(s => [s.t, (s.errors || {})[k] ?? 0]) })));
  chart("chart-held", [{ name: "held", values: col("held") }]);
}

function tables(v) {
  const s = v.status, c = v.counters;
  names = v.names || {};
  byId("master").innerHTML = s.master != null ? node(s.master) : "none (" + e(s.closed ?? "holding writes: failover in progress?") + ")";
  byId("epoch").textContent = s.epoch;
  const p = x => x == null ? "-" : x.toFixed(2);
  const set = { wc: c.write_clients, rc: c.read_clients, wops: c.write_ops_per_sec, rops: c.read_ops_per_sec,
    wp99: p(c.write_p99_ms), rp99: p(c.read_p99_ms), errors: c.errors, retried: c.retried, held: c.held, nfo: c.failovers,
    bytes: `${c.received_bytes} in · ${c.sent_bytes} out`,
    errors_by_kind: Object.entries(c.errors_by_kind || {}).map(([k, n]) => ` · ${k} ${n}`).join("") };
  for (const [id, val] of Object.entries(set)) byId(id).textContent = val;
  byId("replicas").innerHTML = s.replicas.map(r =>
    `<tr><td>${node(r.addr)}</td><td class="${r.healthy ? "ok" : "bad"}">${r.healthy ? "in rotation" : e(r.reason ?? "out")}</td><td>${r.lag_seconds != null ? r.lag_seconds + " s" : ""}</td><td>${r.lag_bytes != null ? r.lag_bytes + " B" : ""}</td></tr>`).join("");
  byId("sentinels").innerHTML = s.sentinels.map(x =>
    `<tr><td>${node(x.addr)}</td><td>${x.master != null ? node(x.master) : "-"}</td><td>${e(x.flags)}</td><td>${x.config_epoch}</td><td class="${x.error ? "bad" : "ok"}">${x.error ? e(x.error) : (x.subscribed ? "reachable, subscribed" : "reachable")}</td></tr>`).join("");
  byId("failovers").innerHTML = s.failovers.length ? s.failovers.map(f =>
    `<tr class="failover"><td>${clock(f.at_unix_ms)}</td><td>${e(f.trigger)}</td><td>${node(f.old_master)} → ${node(f.new_master)}</td>` +
    STEPS.map(k => `<td>${f[k] != null ? "+" + Math.round(f[k]) + " ms" : "-"}</td>`).join("") +
    `<td>${e(f.outcome)}</td></tr>`).join("")
    : `<tr class="none"><td colspan="${4 + STEPS.length}">none since the proxy started</td></tr>`;
}

// The admin token, when the page was opened as /?token=TOKEN
// (--admin-token-file): sent on with each request, never stored.
const TOKEN = new URLSearchParams(location.search).get("token");
const api = path => fetch(path, TOKEN ? { headers: { Authorization: "Bearer " + TOKEN } } : {});
// The page's links to /metrics, /api/... carry it too, or they would get 401.
if (TOKEN) {
  for (const a of document.querySelectorAll('a[href^="/"]')) {
    a.href = a.getAttribute("href") + "?token=" + encodeURIComponent(TOKEN);
  }
}

async function tick() {
  try {
    const since = samples.length ? samples[samples.length - 1].t : 0;
    const [st, h] = await Promise.all([
      api("/api/status").then(r => r.json()),
      api("/api/history?since=" + since).then(r => r.json()),
    ]);
    now = h.now;
    failovers = h.failovers;
    samples = samples.concat(h.samples).filter(s => s.t > now - SPAN_MS).slice(-h.capacity);
    tables(st);
    drawCharts();
  } catch (err) {
    byId("master").textContent = "proxy unreachable";
  }
}
tick();
setInterval(tick, 1000);
