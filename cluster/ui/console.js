// raftlock web console. Plain JavaScript, no dependencies, no build step.
//
// Everything comes through the node's API with the user's bearer token (kept
// in sessionStorage, sent as an Authorization header):
//   - the lock table, the key pages and the charts from one LockService/Watch
//     stream (Connect protocol, JSON): a snapshot, then events in log order;
//     on a break the stream resumes after the last index it saw;
//   - the members from GET /ui/members (each member's own Status), polled;
//   - ForceRelease on a key page (the server accepts it only from an admin
//     token; the page shows the server's answer).
// A token limited to key prefixes must watch under one of them: the header
// has a field for the watch's prefix (kept in sessionStorage too).
// The DOM is built with textContent only: keys and owners are user data.
"use strict";

const TOKEN_KEY = "raftlock.token";
const PREFIX_KEY = "raftlock.prefix"; // the watch's key prefix: a token limited to prefixes must name one
const MAX_ROWS = 500; // lock table rows drawn at once
const MAX_EVENTS = 200; // recent events kept for the page
const MAX_KEY_HISTORY = 50; // events kept per key
const MAX_JOINS = 100000; // waiter join times kept for the wait chart
const CHART_SECONDS = 60;
const MEMBERS_EVERY_MS = 2000;

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

function headers(extra) {
  const h = Object.assign({}, extra);
  if (token()) h["Authorization"] = "Bearer " + token();
  return h;
}

function showError(msg) {
  const e = $("error");
  e.textContent = msg;
  e.hidden = !msg;
}

// seconds parses a protobuf Duration in JSON ("1.5s"); absent: null.
function seconds(d) { return d === undefined || d === null ? null : parseFloat(d); }

function fmtLeft(at) {
  if (at === null) return "never expires";
  const s = Math.max(0, (at - Date.now()) / 1000);
  return s >= 120 ? Math.round(s / 60) + " min" : s.toFixed(1) + " s";
}

// unary calls a Connect unary procedure with JSON.
async function unary(proc, body) {
  const resp = await fetch("/" + proc, {
    method: "POST",
    headers: headers({ "Content-Type": "application/json", "Connect-Protocol-Version": "1" }),
    body: JSON.stringify(body || {}),
  });
  const text = await resp.text();
  let msg = {};
  try { msg = text ? JSON.parse(text) : {}; } catch (e) { msg = { message: text }; }
  if (!resp.ok) throw new Error((msg.code ? msg.code + ": " : "") + (msg.message || resp.statusText));
  return msg;
}

// ---- state from the watch stream ----

const state = {
  keys: new Map(), // key -> {holders: Map(owner -> {token, mode, expiresAt}), waiters: [{owner, requestId, mode, permits}], history: []}
  events: [], // recent events, newest last
  index: 0, // last applied index seen (resume point)
  joins: new Map(), // requestId/key -> cluster seconds it joined a queue
  grants: new Map(), // browser second -> grants
  waits: new Map(), // browser second -> [sum, count] of waits ended by a hand-off
  depth: [], // [browser second, waiters queued]
  snapshot: null, // keys of a snapshot that comes in several messages
};

function keyState(key) {
  let k = state.keys.get(key);
  if (!k) {
    k = { holders: new Map(), waiters: [], history: [] };
    state.keys.set(key, k);
  }
  return k;
}

function dropIfIdle(key) {
  const k = state.keys.get(key);
  if (k && k.holders.size === 0 && k.waiters.length === 0) state.keys.delete(key);
}

function expiresAt(d) {
  const s = seconds(d);
  return s === null ? null : Date.now() + s * 1000;
}

function loadSnapshot(snap) {
  if (!state.snapshot) state.snapshot = new Map();
  for (const wk of snap.keys || []) {
    const k = { holders: new Map(), waiters: [], history: (state.keys.get(wk.key) || { history: [] }).history };
    const l = wk.lock;
    if (l) {
      if (l.holders && l.holders.length) {
        for (const h of l.holders) k.holders.set(h.ownerId || "", { token: h.fencingToken || "0", mode: l.mode, expiresAt: expiresAt(h.expiresIn) });
      } else {
        k.holders.set(l.ownerId || "", { token: l.fencingToken || "0", mode: l.mode, expiresAt: expiresAt(l.expiresIn) });
      }
    }
    for (const w of wk.waiters || []) k.waiters.push({ owner: w.ownerId || "", requestId: w.requestId || "", mode: w.mode, permits: w.permits });
    state.snapshot.set(wk.key, k);
  }
  if (!snap.more) {
    state.keys = state.snapshot;
    state.snapshot = null;
    state.index = Number(snap.index || 0);
  }
}

const KIND = (s) => (s || "").replace("WATCH_EVENT_KIND_", "").toLowerCase();

function applyEvent(ev) {
  const kind = KIND(ev.kind);
  const owner = ev.ownerId || "";
  const k = keyState(ev.key);
  const now = Math.floor(Date.now() / 1000);
  const joinID = (ev.requestId || "") + "/" + ev.key;
  switch (kind) {
    case "acquired":
    case "handed_off": {
      const prev = k.holders.get(owner);
      k.holders.set(owner, { token: ev.fencingToken || (prev && prev.token) || "0", mode: ev.mode, expiresAt: expiresAt(ev.expire) });
      k.waiters = k.waiters.filter((w) => w.requestId !== ev.requestId || !ev.requestId);
      if (!prev || kind === "handed_off") state.grants.set(now, (state.grants.get(now) || 0) + 1);
      if (kind === "handed_off" && state.joins.has(joinID)) {
        const w = seconds(ev.clusterTime) - state.joins.get(joinID);
        const agg = state.waits.get(now) || [0, 0];
        state.waits.set(now, [agg[0] + w, agg[1] + 1]);
      }
      state.joins.delete(joinID);
      break;
    }
    case "released":
    case "expired":
    case "force_released":
      k.holders.delete(owner);
      break;
    case "refreshed": {
      const h = k.holders.get(owner);
      if (h) h.expiresAt = expiresAt(ev.expire);
      break;
    }
    case "waiter_joined":
      k.waiters.push({ owner, requestId: ev.requestId || "", mode: ev.mode, permits: ev.permits });
      if (state.joins.size < MAX_JOINS) state.joins.set(joinID, seconds(ev.clusterTime));
      break;
    case "waiter_left":
      k.waiters = k.waiters.filter((w) => w.requestId !== ev.requestId);
      state.joins.delete(joinID);
      break;
  }
  const line = { index: Number(ev.index), kind, key: ev.key, owner, token: ev.fencingToken || "", reason: (ev.reason || "").replace("WAITER_LEFT_REASON_", "").toLowerCase(), at: new Date() };
  k.history.push(line);
  if (k.history.length > MAX_KEY_HISTORY) k.history.shift();
  state.events.push(line);
  if (state.events.length > MAX_EVENTS) state.events.shift();
  state.index = Math.max(state.index, line.index);
  dropIfIdle(ev.key);
}

// ---- the watch stream (Connect streaming, JSON envelopes) ----

function envelope(obj) {
  const body = new TextEncoder().encode(JSON.stringify(obj));
  const out = new Uint8Array(5 + body.length);
  new DataView(out.buffer).setUint32(1, body.length);
  out.set(body, 5);
  return out;
}

function setStream(text, cls) {
  const b = $("stream");
  b.textContent = text;
  b.className = "badge " + (cls || "");
}

async function watchOnce() {
  const resp = await fetch("/raftlock.v1.LockService/Watch", {
    method: "POST",
    headers: headers({ "Content-Type": "application/connect+json" }),
    body: envelope({ fromIndex: String(state.index), prefix: sessionStorage.getItem(PREFIX_KEY) || "" }),
  });
  if (!resp.ok) {
    let msg = resp.statusText;
    try { const j = await resp.json(); msg = (j.code ? j.code + ": " : "") + (j.message || msg); } catch (e) { /* keep the status */ }
    throw new Error(msg);
  }
  setStream("live", "live");
  showError("");
  const reader = resp.body.getReader();
  let buf = new Uint8Array(0);
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error("the watch stream ended");
    const joined = new Uint8Array(buf.length + value.length);
    joined.set(buf);
    joined.set(value, buf.length);
    buf = joined;
    while (buf.length >= 5) {
      const flags = buf[0];
      const len = new DataView(buf.buffer, buf.byteOffset).getUint32(1);
      if (buf.length < 5 + len) break;
      const msg = JSON.parse(new TextDecoder().decode(buf.subarray(5, 5 + len)));
      buf = buf.slice(5 + len);
      if (flags & 2) { // end of stream
        throw new Error(msg.error ? msg.error.code + ": " + msg.error.message : "the watch stream ended");
      }
      if (msg.snapshot) loadSnapshot(msg.snapshot);
      if (msg.events) for (const ev of msg.events.events || []) applyEvent(ev);
      if (msg.heartbeat) state.index = Math.max(state.index, Number(msg.heartbeat.index || 0));
      scheduleRender();
    }
  }
}

async function watchForever() {
  for (;;) {
    try {
      await watchOnce();
    } catch (e) {
      setStream("reconnecting", "down");
      showError("watch: " + e.message);
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

// ---- members ----

async function pollMembers() {
  try {
    const resp = await fetch("/ui/members", { headers: headers() });
    const j = await resp.json();
    if (!resp.ok) throw new Error((j.code ? j.code + ": " : "") + (j.message || resp.statusText));
    $("node").textContent = "node " + j.node;
    const rows = j.members.map((m) => {
      const s = m.status || {};
      const health = m.error ? "unreachable" : s.ready ? "ready" : "not ready";
      return el("tr", { class: s.role === "leader" ? "leader" : "", "data-member": m.member.id },
        el("td", {}, m.member.id), el("td", {}, m.member.address), el("td", {}, s.role || "?"),
        el("td", {}, s.term || "0"), el("td", {}, s.appliedIndex || "0"), el("td", {}, s.commitIndex || "0"),
        el("td", {}, s.locks || "0"), el("td", {}, s.waiters || "0"),
        el("td", { class: health === "ready" ? "ok" : "bad", title: m.error || "" }, health));
    });
    $("members").tBodies[0].replaceChildren(...rows);
  } catch (e) {
    showError("members: " + e.message);
  }
}

// ---- charts (SVG drawn by hand) ----

function drawChart(svg, values, fmt) {
  const W = 300, H = 80, pad = 14;
  const max = Math.max(1e-9, ...values);
  const x = (i) => pad + (i * (W - pad - 2)) / Math.max(1, values.length - 1);
  const y = (v) => H - pad - (v / max) * (H - 2 * pad);
  const pts = values.map((v, i) => x(i).toFixed(1) + "," + y(v).toFixed(1)).join(" ");
  const ns = "http://www.w3.org/2000/svg";
  const mk = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  };
  svg.replaceChildren(
    mk("line", { class: "axis", x1: pad, y1: H - pad, x2: W, y2: H - pad }),
    mk("polygon", { class: "area", points: x(0) + "," + (H - pad) + " " + pts + " " + x(values.length - 1) + "," + (H - pad) }),
    mk("polyline", { class: "line", points: pts }),
    mk("text", { x: 0, y: pad - 4 }, fmt(max)),
    mk("text", { x: 0, y: H - 2 }, CHART_SECONDS + " s ago"),
    mk("text", { x: W - 22, y: H - 2 }, "now"),
  );
}

function drawCharts() {
  const now = Math.floor(Date.now() / 1000);
  let queued = 0;
  for (const k of state.keys.values()) queued += k.waiters.length;
  if (!state.depth.length || state.depth[state.depth.length - 1][0] !== now) state.depth.push([now, queued]);
  else state.depth[state.depth.length - 1][1] = queued;
  while (state.depth.length && state.depth[0][0] <= now - CHART_SECONDS) state.depth.shift();
  for (const m of [state.grants, state.waits]) for (const s of m.keys()) if (s <= now - CHART_SECONDS) m.delete(s);
  const grants = [], waits = [], depth = [];
  const depthAt = new Map(state.depth);
  let lastDepth = 0;
  for (let s = now - CHART_SECONDS + 1; s <= now; s++) {
    grants.push(state.grants.get(s) || 0);
    const w = state.waits.get(s);
    waits.push(w ? w[0] / w[1] : 0);
    if (depthAt.has(s)) lastDepth = depthAt.get(s);
    depth.push(lastDepth);
  }
  drawChart($("c-grants"), grants, (v) => v.toFixed(0));
  drawChart($("c-wait"), waits, (v) => v.toFixed(2) + " s");
  drawChart($("c-depth"), depth, (v) => v.toFixed(0));
  $("c-grants-now").textContent = "(" + (grants[grants.length - 2] || 0) + " last second)";
  $("c-depth-now").textContent = "(" + queued + " now)";
}

// ---- views ----

function holderSummary(k) {
  const hs = [...k.holders.entries()];
  if (hs.length === 0) return { owner: "(free)", token: "", left: "" };
  if (hs.length === 1) return { owner: hs[0][0] || "(anonymous)", token: hs[0][1].token, left: fmtLeft(hs[0][1].expiresAt) };
  const soonest = hs.map(([, h]) => h.expiresAt).reduce((a, b) => (a === null ? b : b === null ? a : Math.min(a, b)));
  return { owner: hs.length + " holders: " + hs.map(([o]) => o).join(", "), token: hs.map(([, h]) => h.token).join(", "), left: fmtLeft(soonest) };
}

function eventLine(e) {
  let text = "#" + e.index + " " + e.at.toLocaleTimeString() + " " + e.key + " " + e.kind + " " + (e.owner || "(anonymous)");
  if (e.token && e.token !== "0") text += " token " + e.token;
  if (e.reason) text += " (" + e.reason + ")";
  return el("li", { class: "kind-" + e.kind }, text);
}

function renderOverview() {
  const q = $("search").value.trim().toLowerCase();
  const keys = [...state.keys.keys()].sort();
  const rows = [];
  let shown = 0;
  for (const key of keys) {
    const k = state.keys.get(key);
    if (q && !key.toLowerCase().includes(q) && ![...k.holders.keys()].some((o) => o.toLowerCase().includes(q))) continue;
    shown++;
    if (rows.length >= MAX_ROWS) continue;
    const s = holderSummary(k);
    rows.push(el("tr", { "data-key": key },
      el("td", {}, el("a", { href: "#/key/" + encodeURIComponent(key) }, key)),
      el("td", { class: "owner" }, s.owner), el("td", {}, s.token), el("td", {}, s.left),
      el("td", { class: "waiters" }, String(k.waiters.length))));
  }
  $("locks").tBodies[0].replaceChildren(...rows);
  $("lock-count").textContent = "(" + shown + (q ? " matching" : "") + ")";
  const more = $("locks-more");
  more.hidden = shown <= MAX_ROWS;
  more.textContent = "showing the first " + MAX_ROWS + " of " + shown + "; narrow the filter to see the rest";
  $("events").replaceChildren(...state.events.slice().reverse().map(eventLine));
  drawCharts();
}

function renderKey(key) {
  $("k-name").textContent = key;
  const k = state.keys.get(key);
  const dl = $("k-holder");
  if (!k || k.holders.size === 0) {
    dl.replaceChildren(el("dt", {}, "holder"), el("dd", {}, "none: the key is free"));
  } else {
    const items = [];
    for (const [owner, h] of k.holders) {
      items.push(el("dt", {}, "holder"), el("dd", { class: "holder" }, owner || "(anonymous)"),
        el("dt", {}, "fencing token"), el("dd", {}, h.token),
        el("dt", {}, "time left"), el("dd", {}, fmtLeft(h.expiresAt)));
    }
    dl.replaceChildren(...items);
  }
  const waiters = k ? k.waiters : [];
  $("k-queue").replaceChildren(...(waiters.length ? waiters.map((w) => el("li", { class: "waiter" }, (w.owner || "(anonymous)") + "  request " + w.requestId)) : [el("li", {}, "nobody waits")]));
  const hist = k ? k.history : (state.events.filter((e) => e.key === key));
  $("k-history").replaceChildren(...hist.slice().reverse().map(eventLine));
}

function currentKey() {
  const m = location.hash.match(/^#\/key\/(.*)$/);
  return m ? decodeURIComponent(m[1]) : null;
}

function render() {
  const key = currentKey();
  $("overview").hidden = key !== null;
  $("keypage").hidden = key === null;
  if (key === null) renderOverview();
  else renderKey(key);
}

let pending = false;
function scheduleRender() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => { pending = false; render(); });
}

// forceRelease asks for a second click before it frees the key.
let forceArmed = null;
async function forceRelease() {
  const key = currentKey();
  const btn = $("k-force");
  if (key === null) return;
  if (forceArmed !== key) {
    forceArmed = key;
    btn.textContent = "Click again to force release " + key;
    return;
  }
  forceArmed = null;
  btn.textContent = "Force release";
  try {
    const rid = "ui-" + Date.now() + "-" + Math.random().toString(36).slice(2);
    const r = await unary("raftlock.v1.LockService/ForceRelease", { keys: [key], requestId: rid });
    showError("");
    $("k-status").textContent = "force released " + (r.releasedCount || 0) + " lock(s)";
  } catch (e) {
    $("k-status").textContent = "";
    showError("force release: " + e.message);
  }
}

function start() {
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    if ($("token").value.trim()) sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    sessionStorage.setItem(PREFIX_KEY, $("prefix").value);
    $("token").value = "";
    location.reload();
  });
  $("token-clear").addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); sessionStorage.removeItem(PREFIX_KEY); location.reload(); });
  $("prefix").value = sessionStorage.getItem(PREFIX_KEY) || "";
  $("token").placeholder = token() ? "a token is set for this tab" : "bearer token (kept in this tab)";
  $("search").addEventListener("input", scheduleRender);
  $("k-force").addEventListener("click", forceRelease);
  window.addEventListener("hashchange", () => { forceArmed = null; $("k-force").textContent = "Force release"; $("k-status").textContent = ""; scheduleRender(); });
  setInterval(scheduleRender, 500); // times left count down
  pollMembers();
  setInterval(pollMembers, MEMBERS_EVERY_MS);
  watchForever();
}

document.addEventListener("DOMContentLoaded", start);
