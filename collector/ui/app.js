// net-gazer web UI: one page, five views, all data from the collector's
// query API (/api/v1/...). The view and its filters live in the URL's
// fragment (#graph?window=1h&port=443), so a view can be shared.
// No build step and nothing fetched from the internet: the only library is
// force-graph (bundled, /ui/force-graph.min.js).
"use strict";

const WINDOWS = { "15m": 9e8, "1h": 3.6e9, "6h": 2.16e10, "24h": 8.64e10, "7d": 6.048e11, "30d": 2.592e12, all: null };
const FILTERS = ["window", "sensor", "direction", "port", "outcome"];
const REFRESH_MS = 15000;
const VIEWS = { graph: viewGraph, map: viewMap, inbound: viewInbound, internal: viewInternal, rtt: viewRtt };

// What tests and benchmarks read (the graph is drawn on a canvas).
const netGazer = (window.netGazer = { view: null, graph: null, rendered: null, errors: [] });

const $ = (sel, root = document) => root.querySelector(sel);
const el = (tag, attrs = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  return e;
};
const SVG = "http://www.w3.org/2000/svg";
const svg = (tag, attrs = {}) => {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined) e.setAttribute(k, v);
  return e;
};

// ---- state in the URL ----

function readState() {
  const [view, query] = location.hash.replace(/^#/, "").split("?");
  const p = new URLSearchParams(query || "");
  return { view: VIEWS[view] ? view : "graph", params: p };
}

function writeState(view, params) {
  for (const [k, v] of [...params]) if (v === "") params.delete(k);
  const q = params.toString();
  const hash = "#" + view + (q ? "?" + q : "");
  if (location.hash !== hash) history.replaceState(null, "", hash);
}

function setParams(values) {
  const { view, params } = readState();
  for (const [key, value] of Object.entries(values)) {
    if (value === null || value === "") params.delete(key);
    else params.set(key, value);
  }
  writeState(view, params);
  render();
}
const setParam = (key, value) => setParams({ [key]: value });

// Opens a host's panel (in the URL too) without redrawing the view.
function selectNode(id) {
  const { view, params } = readState();
  params.set("node", id);
  writeState(view, params);
  showHost(id, params);
}

// The query string for the API: the filters of the page plus `extra`.
function apiQuery(params, extra = {}) {
  const q = new URLSearchParams();
  const win = WINDOWS[params.get("window") || "24h"];
  if (win) q.set("since_us", String(Math.floor(Date.now() * 1000 - win)));
  for (const k of ["sensor", "direction", "port", "outcome"]) if (params.get(k)) q.set(k, params.get(k));
  for (const [k, v] of Object.entries(extra)) if (v !== null && v !== undefined && v !== "") q.set(k, v);
  return q.toString();
}

async function api(path, params, extra) {
  const r = await fetch("/api/v1/" + path + "?" + apiQuery(params, extra));
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error || r.status + " " + r.statusText);
  return body;
}

// ---- formatting and colours ----

const ms = (us) => (us === null || us === undefined ? "–" : (us / 1000).toFixed(us < 10000 ? 2 : 1) + " ms");
const when = (us) => (us ? new Date(us / 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z") : "–");
const RTT_SCALE = [
  [10, "#2a9d8f", "< 10 ms"],
  [50, "#8ab17d", "10–50 ms"],
  [100, "#d4a72c", "50–100 ms"],
  [200, "#f4a261", "100–200 ms"],
  [Infinity, "#d1495b", "≥ 200 ms"],
];
function rttColor(us) {
  if (us === null || us === undefined) return "#9aa3ad";
  const m = us / 1000;
  return RTT_SCALE.find(([max]) => m < max)[1];
}
function hashColor(key) {
  if (key === null || key === undefined || key === "") return "#9aa3ad";
  let h = 0;
  for (const c of String(key)) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return `hsl(${h % 360}, 62%, ${38 + (h >> 9) % 18}%)`;
}
const KIND_COLOR = { local: "#1d3557", sensor: "#000000" };

function rttLegend() {
  return el("div", { class: "legend", "aria-label": "RTT colours" }, "RTT:",
    RTT_SCALE.map(([, c, label]) => el("span", {}, el("span", { class: "swatch", style: `background:${c}` }), label)));
}

function empty(text) {
  return el("p", { class: "empty" }, text);
}

// ---- the page ----

let refreshTimer = null;
let graphInstances = [];
let renderSeq = 0;
let shownKey = null;

// Draws the view of the URL. A live refresh (`refresh`) keeps what is on
// screen (layout, zoom, open panel) when the data has not changed.
async function render({ refresh = false } = {}) {
  const { view, params } = readState();
  const seq = ++renderSeq;
  for (const a of document.querySelectorAll("nav a")) {
    if (a.dataset.view === view) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
    // Other views keep the filters, not this view's own settings.
    const shared = new URLSearchParams([...params].filter(([k]) => FILTERS.includes(k)));
    a.href = "#" + a.dataset.view + (shared.toString() ? "?" + shared.toString() : "");
  }
  const form = $("#filters");
  for (const k of FILTERS) form.elements[k].value = params.get(k) || (k === "window" ? "24h" : "");
  document.title = "net-gazer · " + $(`nav a[data-view="${view}"]`).textContent;
  const root = $("#view");
  const dropGraphs = () => {
    for (const g of graphInstances) g._destructor && g._destructor();
    graphInstances = [];
  };
  if (!refresh) {
    dropGraphs();
    root.replaceChildren(empty("Loading…"));
    netGazer.view = null;
  }
  try {
    const content = await VIEWS[view](params);
    // A newer render took over (and drops what is on screen).
    if (seq !== renderSeq) return;
    if (refresh && content.key !== undefined && content.key === shownKey) {
      scheduleRefresh(params);
      return;
    }
    if (refresh) dropGraphs();
    shownKey = content.key;
    root.replaceChildren(...content.nodes);
    if (content.mounted) content.mounted();
    netGazer.view = view;
    root.dataset.view = view;
  } catch (e) {
    if (seq !== renderSeq) return;
    root.replaceChildren(el("p", { class: "error", role: "alert" }, "Could not load: " + e.message));
    netGazer.view = view;
  }
  const node = params.get("node");
  if (node) showHost(node, params);
  else $("#panel").hidden = true;
  scheduleRefresh(params);
}

const refresh = () => render({ refresh: true });

function scheduleRefresh(params) {
  clearTimeout(refreshTimer);
  const live = (params.get("window") || "24h") !== "all" && params.get("live") !== "0";
  $("#live").textContent = live ? "live · refreshed " + new Date().toLocaleTimeString() : "";
  if (live) refreshTimer = setTimeout(refresh, REFRESH_MS);
}

async function loadSensors() {
  try {
    const r = await fetch("/api/v1/sensors");
    const { sensors, location } = await r.json();
    netGazer.sensors = sensors;
    netGazer.home = location;
    const sel = $("#filters").elements.sensor;
    for (const s of sensors) sel.append(el("option", { value: s.id }, s.id));
    sel.value = readState().params.get("sensor") || "";
  } catch (e) {
    netGazer.sensors = [];
  }
}

// ---- paths graph ----

function graphWidget(container, data, { color, onClick, linkColor, linkWidth, label, onFrame }) {
  const g = ForceGraph()(container)
    .width(container.clientWidth)
    .height(container.clientHeight)
    .graphData(data)
    .nodeId("id")
    .nodeVal(nodeVal)
    .nodeRelSize(NODE_REL_SIZE)
    .nodeColor(color)
    .nodeLabel(label)
    .linkColor(linkColor)
    .linkWidth(linkWidth)
    .linkDirectionalArrowLength(0)
    .cooldownTime(8000)
    .d3AlphaDecay(0.04)
    .onNodeClick(onClick);
  const big = data.nodes.length > BIG_GRAPH;
  if (big) {
    // force-graph finds what is under the pointer by painting every node
    // and link in its own colour on a hidden canvas, link by link: seconds
    // per frame with tens of thousands of links. Big graphs pick the
    // nearest node themselves instead (no node dragging there).
    g.d3VelocityDecay(0.5).cooldownTime(5000).enablePointerInteraction(false);
    pickNearest(g, container, data, { onClick, label });
    // Measured in headless Chromium without a GPU (docs/benchmarks.md),
    // 5,000 nodes: the layout's tick took 26 ms a frame; a coarser
    // many-body force halves it. Nodes are filled a colour at a time, not
    // one by one (paintNodes).
    g.d3Force("charge").theta(1.5).distanceMax(300);
    g.nodeVisibility(false);
  }
  let running = true;
  g.onEngineStop(() => { running = false; });
  g.settled = () => !running;
  // Once the layout is still, a big graph's last frame is kept as a
  // bitmap, and zooming or panning shows that bitmap moved and scaled
  // until the gesture ends, then draws the graph again. A software canvas
  // takes ~35 ms to draw 5,000 nodes and 14,000 links, which made zooming
  // 23 frames/s; one bitmap takes a few.
  let snapshot = null;
  let moving = false;
  let stillTimer = 0;
  const visible = () => () => !(moving && snapshot);
  if (big) {
    // A gesture ends 200 ms after its last zoom event (d3-zoom ends every
    // step of an animated zoom on its own).
    const still = () => {
      moving = false;
      g.linkVisibility(visible()); // a new value: draws again, in full
    };
    g.linkVisibility(visible())
      .onZoom(() => {
        if (running) return;
        moving = true;
        clearTimeout(stillTimer);
        stillTimer = setTimeout(still, 200);
      })
      .onRenderFramePre((ctx) => {
        if (!(moving && snapshot)) return;
        ctx.save();
        ctx.setTransform(ctx.getTransform().multiply(snapshot.inverse));
        ctx.drawImage(snapshot.canvas, 0, 0);
        ctx.restore();
      });
  }
  g.onRenderFramePost((ctx) => {
    if (big && !(moving && snapshot)) {
      paintNodes(ctx, data.nodes, color);
      if (!running) snapshot = takeSnapshot(ctx, snapshot);
    }
    if (onFrame) onFrame();
  });
  graphInstances.push(g);
  new ResizeObserver(() => g.width(container.clientWidth).height(container.clientHeight)).observe(container);
  return g;
}

// Above this many nodes, graphs do their own pointer picking and painting.
const BIG_GRAPH = 1500;

// Node size by handshakes: force-graph's radius is sqrt(val) × rel size.
const NODE_REL_SIZE = 3;
const nodeVal = (n) => (n.count ? 1 + Math.sqrt(n.count) : 1);
const nodeRadius = (n) => Math.sqrt(nodeVal(n)) * NODE_REL_SIZE;

// A copy of the canvas behind `ctx`, with the inverse of the transform
// it was drawn with (reusing the previous copy's canvas).
function takeSnapshot(ctx, previous) {
  const source = ctx.canvas;
  const canvas = previous ? previous.canvas : document.createElement("canvas");
  canvas.width = source.width;
  canvas.height = source.height;
  canvas.getContext("2d").drawImage(source, 0, 0);
  return { canvas, inverse: ctx.getTransform().inverse() };
}

// Every node, one path and one fill per colour.
function paintNodes(ctx, nodes, color) {
  const byColor = new Map();
  for (const n of nodes) {
    if (n.x === undefined) continue;
    const c = color(n);
    let list = byColor.get(c);
    if (!list) byColor.set(c, (list = []));
    list.push(n);
  }
  for (const [c, list] of byColor) {
    ctx.beginPath();
    for (const n of list) {
      const r = nodeRadius(n);
      ctx.moveTo(n.x + r, n.y);
      ctx.arc(n.x, n.y, r, 0, 2 * Math.PI);
    }
    ctx.fillStyle = c;
    ctx.fill();
  }
}

function pickNearest(g, container, data, { onClick, label }) {
  const nearest = (e) => {
    const r = container.getBoundingClientRect();
    const p = g.screen2GraphCoords(e.clientX - r.left, e.clientY - r.top);
    let best = null;
    let bestD = Infinity;
    for (const n of data.nodes) {
      const d = (n.x - p.x) ** 2 + (n.y - p.y) ** 2;
      if (d < bestD) { bestD = d; best = n; }
    }
    const radius = best ? nodeRadius(best) + 4 / g.zoom() : 0;
    return best && Math.sqrt(bestD) <= radius ? best : null;
  };
  container.addEventListener("click", (e) => { const n = nearest(e); if (n) onClick(n); });
  let last = 0;
  container.addEventListener("pointermove", (e) => {
    if (e.timeStamp - last < 100) return;
    last = e.timeStamp;
    const n = nearest(e);
    container.title = n ? label(n) : "";
    container.style.cursor = n ? "pointer" : "";
  });
}

async function viewGraph(params) {
  const started = performance.now();
  const data = await api("graph", params);
  const key = JSON.stringify(data) + [...params].join();
  const colorBy = params.get("color") || "asn";
  const search = params.get("q") || "";
  const stats = el("div", { class: "stats", "data-nodes": data.nodes.length, "data-links": data.links.length },
    el("span", {}, el("b", {}, data.nodes.length), " nodes"),
    el("span", {}, el("b", {}, data.links.length), " links"),
    el("span", {}, el("b", {}, data.nodes.filter((n) => n.kind === "remote").length), " remote hosts"),
    el("span", {}, el("b", {}, data.nodes.filter((n) => n.kind === "hop").length), " hops"));
  const toolbar = el("div", { class: "toolbar" },
    el("label", {}, "Colour by ",
      el("select", { name: "color", onchange: (e) => setParam("color", e.target.value) },
        el("option", { value: "asn", selected: colorBy === "asn" }, "ASN"),
        el("option", { value: "country", selected: colorBy === "country" }, "country"))),
    el("label", {}, "Find ",
      el("input", { type: "search", name: "q", value: search, placeholder: "address, AS number or name",
        onchange: (e) => setParam("q", e.target.value.trim()) })),
    stats);
  if (!data.nodes.length) {
    return { nodes: [toolbar, empty("No handshakes in this window. Widen the window or change the filters.")] };
  }
  const container = el("div", { class: "canvas", id: "graph-canvas", role: "img",
    "aria-label": `Graph of ${data.nodes.length} hosts and hops` });
  const bigNote = data.nodes.length > BIG_GRAPH ? el("span", {}, "(large graph: click or point at a node; dragging nodes is off)") : null;
  const legend = el("div", { class: "legend" },
    el("span", {}, el("span", { class: "swatch", style: `background:${KIND_COLOR.sensor}` }), "sensor"),
    el("span", {}, el("span", { class: "swatch", style: `background:${KIND_COLOR.local}` }), "local host"),
    el("span", {}, `remote hosts and hops coloured by ${colorBy === "asn" ? "ASN" : "country"}; size by handshakes; the slowest link of each path is thicker`),
    bigNote);
  // The commonest ASNs or countries with their colours (the rest: hover).
  const keyOf = (n) => (colorBy === "asn" ? n.asn : n.country);
  const common = new Map();
  for (const n of data.nodes) {
    if (n.kind === "remote" || n.kind === "hop") common.set(keyOf(n) ?? null, (common.get(keyOf(n) ?? null) || 0) + 1);
  }
  const top = [...common].sort((a, b) => b[1] - a[1]).slice(0, 10);
  const orgOf = new Map(data.nodes.filter((n) => n.asn && n.org).map((n) => [n.asn, n.org]));
  const keys = el("div", { class: "legend", "data-legend": colorBy }, top.map(([k, count]) =>
    el("span", {}, el("span", { class: "swatch", style: `background:${hashColor(k)}` }),
      k === null ? "unknown" : colorBy === "asn" ? `AS${k}${orgOf.has(k) ? " " + orgOf.get(k) : ""}` : k, ` (${count})`)));
  const match = matcher(search);
  const color = (n) => {
    if (match && match(n)) return "#ff006e";
    if (KIND_COLOR[n.kind]) return KIND_COLOR[n.kind];
    return hashColor(colorBy === "asn" ? n.asn : n.country);
  };
  const label = (n) => `${n.kind} ${n.id}` + (n.asn ? ` · AS${n.asn}` : "") + (n.org ? ` ${n.org}` : "")
    + (n.country ? ` · ${n.country}` : "") + (n.count ? ` · ${n.count} handshakes` : "");
  const linkColor = (l) => (l.kind === "path" ? rttColor(l.rtt_avg_us) : l.failures ? "rgba(209,73,91,.55)" : "rgba(90,100,115,.3)");
  const linkWidth = (l) => (l.slowest ? 4 : l.kind === "path" ? 1.5 : 0.6);
  return {
    key,
    nodes: [toolbar, legend, keys, rttLegend(), container],
    mounted() {
      netGazer.frames = 0;
      const g = graphWidget(container, data, {
        color, label, linkColor, linkWidth,
        onClick: (n) => selectNode(n.id),
        onFrame: () => {
          netGazer.frames += 1;
          if (netGazer.frames > 1) return;
          netGazer.rendered = { nodes: data.nodes.length, links: data.links.length, ms: performance.now() - started };
        },
      });
      netGazer.graph = {
        data,
        // Where a node is on the screen (tests click there).
        screenPosition(id) {
          const n = data.nodes.find((x) => x.id === id);
          if (!n || n.x === undefined) return null;
          const p = g.graph2ScreenCoords(n.x, n.y);
          const r = container.getBoundingClientRect();
          return { x: r.left + p.x, y: r.top + p.y };
        },
        // Stops the layout where it is (tests and screenshots).
        freeze() { g.cooldownTicks(0); },
        zoomToFit() { g.zoomToFit(0, 30); },
        // Zooms by `k` over `ms` (the benchmark counts its frames).
        zoomBy(k, ms) { g.zoom(g.zoom() * k, ms); },
        settled() { return g.settled(); },
      };
      const hit = match && data.nodes.find(match);
      if (hit) setTimeout(() => { g.centerAt(hit.x, hit.y, 400); g.zoom(4, 400); }, 1500);
      else setTimeout(() => g.zoomToFit(400, 30), 2500);
    },
  };
}

function matcher(search) {
  const s = search.trim().toLowerCase();
  if (!s) return null;
  const asn = /^as(\d+)$/.exec(s);
  return (n) => (asn ? String(n.asn) === asn[1]
    : n.id.toLowerCase().startsWith(s) || (n.org || "").toLowerCase().includes(s) || String(n.asn) === s);
}

// ---- host panel ----

async function showHost(ip, params) {
  const panel = $("#panel");
  const body = $("#panel-body");
  panel.hidden = false;
  panel.dataset.ip = ip;
  body.replaceChildren(el("h2", {}, ip), empty("Loading…"));
  const node = netGazer.graph && netGazer.graph.data.nodes.find((n) => n.id === ip);
  let detail = null;
  let host = null;
  try {
    [detail, host] = await Promise.all([
      fetch("/api/v1/hosts/" + encodeURIComponent(ip) + "?" + apiQuery(params)).then((r) => r.json()),
      api("hosts", params).then((h) => h.hosts.find((x) => x.ip === ip)),
    ]);
  } catch (e) {
    body.replaceChildren(el("h2", {}, ip), el("p", { class: "error" }, e.message));
    return;
  }
  if (panel.dataset.ip !== ip) return;
  const geo = (host && host.geo) || {};
  const asn = geo.asn || (node && node.asn);
  const dl = el("dl", {},
    el("dt", {}, "Address"), el("dd", { "data-field": "ip" }, ip),
    el("dt", {}, "Role"), el("dd", {}, node ? node.kind : host ? "remote" : "–"),
    el("dt", {}, "Reverse DNS"), el("dd", {}, "not known (sensors do not resolve names)"),
    el("dt", {}, "Country"), el("dd", { "data-field": "country" }, geo.country || (node && node.country) || "–"),
    el("dt", {}, "City"), el("dd", {}, geo.city || "–"),
    el("dt", {}, "Location"), el("dd", {}, geo.lat !== null && geo.lat !== undefined ? `${geo.lat}, ${geo.lon}` : "–"),
    el("dt", {}, "ASN"), el("dd", { "data-field": "asn" }, asn ? "AS" + asn : "–"),
    el("dt", {}, "Organisation"), el("dd", {}, geo.org || (node && node.org) || "–"),
    el("dt", {}, "Ports"), el("dd", { "data-field": "ports" }, (detail.ports || []).join(", ") || "–"));
  const summary = host ? el("p", { class: "stats" },
    el("span", {}, el("b", {}, host.attempts), " attempts"),
    el("span", {}, el("b", {}, host.refused), " refused"),
    el("span", {}, el("b", {}, host.unanswered), " unanswered"),
    el("span", {}, "p50 ", el("b", {}, ms(host.rtt_p50_us))),
    el("span", {}, "p95 ", el("b", {}, ms(host.rtt_p95_us)))) : null;
  const rtts = detail.rtt || [];
  const points = rtts.filter((p) => p.rtt_us !== null).map((p) => ({ t: p.ts_us, v: p.rtt_us }));
  const failed = rtts.filter((p) => p.outcome !== "established").map((p) => ({ t: p.ts_us, n: 1 }));
  const routes = (detail.routes || []).map((r) => {
    const slowest = slowestHop(r.hops);
    return el("div", { class: "route" + (r.changed ? " changed" : ""), "data-route": r.ts_us },
      el("div", {}, when(r.ts_us), " · ", r.protocol || "", r.reached ? " · reached" : " · not reached",
        r.changed ? el("b", {}, " · route changed") : null),
      el("ol", {}, r.hops.map((h) => el("li", { value: h.ttl, class: h === slowest ? "hop-slowest" : null },
        h.addr || "* (no answer)", " ", h.addr ? ms(h.rtt_avg_us) : ""))));
  });
  body.replaceChildren(...[
    el("h2", {}, ip), dl, summary,
    el("h3", {}, "RTT over time"),
    rtts.length ? lineChart([{ points, color: "#1d3557", label: "RTT" }], { small: true, failures: failed })
      : empty("No handshakes in the window."),
    flowQuality(detail.flows),
    el("h3", {}, `Routes (${routes.length})`),
    routes.length ? el("div", {}, routes) : empty("Not traced yet.")].filter(Boolean));
}

// Flow quality (sensors in capture mode `quality`): what was lost each way.
// Loss of data sent by the server shows as its retransmissions with the
// client's duplicate ACKs and SACK blocks (docs/events.md).
function flowQuality(flows) {
  if (!flows || !flows.count) return null;
  const row = (label, c2s, s2c) => el("tr", {}, el("th", {}, label), el("td", {}, c2s), el("td", {}, s2c));
  const ends = Object.entries(flows.end_reasons || {}).map(([k, n]) => `${k} ${n}`).join(", ");
  return el("div", { "data-field": "flows" },
    el("h3", {}, `Flow quality (${flows.count} flows)`),
    el("table", { class: "flows" },
      el("thead", {}, el("tr", {}, el("th", {}, ""), el("th", {}, "client → server"), el("th", {}, "server → client"))),
      el("tbody", {},
        row("Packets", flows.packets_c2s, flows.packets_s2c),
        row("Bytes", flows.bytes_c2s, flows.bytes_s2c),
        row("Retransmitted", flows.retrans_c2s, flows.retrans_s2c),
        row("Duplicate ACKs", flows.dup_acks_c2s, flows.dup_acks_s2c),
        row("SACK blocks", flows.sack_blocks_c2s, flows.sack_blocks_s2c),
        row("Zero windows", flows.zero_window_c2s, flows.zero_window_s2c))),
    el("p", { class: "stats" }, "Ended: ", ends || "–"));
}

function slowestHop(hops) {
  let prev = 0;
  let best = null;
  let bestDelta = 0;
  for (const h of hops) {
    if (h.rtt_avg_us === null || h.rtt_avg_us === undefined) continue;
    const d = h.rtt_avg_us - prev;
    if (d > bestDelta) { bestDelta = d; best = h; }
    prev = h.rtt_avg_us;
  }
  return best;
}

function closePanel() {
  $("#panel").hidden = true;
  $("#panel").dataset.ip = "";
  const { view, params } = readState();
  params.delete("node");
  writeState(view, params);
}

// ---- map ----

let land = null;
async function loadLand() {
  if (land) return land;
  const topo = await (await fetch("/ui/land-110m.json")).json();
  land = topoRings(topo, topo.objects.land);
  return land;
}

// TopoJSON → rings of [lon, lat] (quantised, delta-encoded arcs).
function topoRings(topo, object) {
  const [sx, sy] = topo.transform.scale;
  const [tx, ty] = topo.transform.translate;
  const arcs = topo.arcs.map((arc) => {
    let x = 0, y = 0;
    return arc.map(([dx, dy]) => { x += dx; y += dy; return [x * sx + tx, y * sy + ty]; });
  });
  const ring = (ids) => {
    const out = [];
    for (const id of ids) {
      const a = id < 0 ? arcs[~id].slice().reverse() : arcs[id];
      out.push(...(out.length ? a.slice(1) : a));
    }
    return out;
  };
  const rings = [];
  for (const geom of object.geometries) {
    const polys = geom.type === "Polygon" ? [geom.arcs] : geom.type === "MultiPolygon" ? geom.arcs : [];
    for (const poly of polys) for (const r of poly) rings.push(ring(r));
  }
  return rings;
}

const MAP_W = 1000, MAP_H = 500;

// An SVG path of a ring; a jump across the antimeridian starts a new
// subpath instead of a line across the whole map.
function ringPath(ring) {
  let d = "";
  let prev = null;
  for (const p of ring) {
    const [x, y] = project(p);
    d += (prev === null || Math.abs(p[0] - prev) > 180 ? "M" : "L") + x.toFixed(1) + "," + y.toFixed(1);
    prev = p[0];
  }
  return d;
}
const project = ([lon, lat]) => [((lon + 180) / 360) * MAP_W, ((90 - lat) / 180) * MAP_H];

async function viewMap(params) {
  const [rings, hosts, graph] = await Promise.all([loadLand(), api("hosts", params), api("graph", params)]);
  const map = svg("svg", { class: "map", viewBox: `0 0 ${MAP_W} ${MAP_H}`, role: "img", "aria-label": "World map of remote hosts and hops" });
  const d = rings.map(ringPath).join("");
  map.append(svg("path", { class: "land", d }));
  const home = sensorHome(params);
  const placed = hosts.hosts.filter((h) => h.geo && typeof h.geo.lat === "number" && typeof h.geo.lon === "number");
  if (home) {
    const [x0, y0] = project([home[1], home[0]]);
    for (const h of placed) {
      const [x1, y1] = project([h.geo.lon, h.geo.lat]);
      const mx = (x0 + x1) / 2, my = (y0 + y1) / 2 - Math.hypot(x1 - x0, y1 - y0) * 0.2;
      map.append(svg("path", { class: "arc", d: `M${x0},${y0}Q${mx},${my} ${x1},${y1}`, stroke: rttColor(h.rtt_p50_us), "data-ip": h.ip }));
    }
    map.append(svg("rect", { x: x0 - 4, y: y0 - 4, width: 8, height: 8, fill: "#000", "data-kind": "sensor" }));
  }
  const hops = graph.nodes.filter((n) => n.kind === "hop" && typeof n.lat === "number" && typeof n.lon === "number");
  for (const n of hops) {
    const [x, y] = project([n.lon, n.lat]);
    const r = svg("rect", { x: x - 2.5, y: y - 2.5, width: 5, height: 5, fill: hashColor(n.asn), "data-ip": n.id, "data-kind": "hop", tabindex: 0 });
    r.appendChild(svg("title")).textContent = `hop ${n.id}` + (n.asn ? ` AS${n.asn}` : "");
    r.addEventListener("click", () => selectNode(n.id));
    map.append(r);
  }
  for (const h of placed) {
    const [x, y] = project([h.geo.lon, h.geo.lat]);
    const c = svg("circle", { cx: x, cy: y, r: 3 + Math.min(6, Math.log2(1 + h.attempts)), fill: rttColor(h.rtt_p50_us),
      "data-ip": h.ip, "data-kind": "remote", tabindex: 0 });
    c.appendChild(svg("title")).textContent = `${h.ip} · ${h.geo.city || h.geo.country || ""} · p50 ${ms(h.rtt_p50_us)} · ${h.attempts} attempts`;
    c.addEventListener("click", () => selectNode(h.ip));
    map.append(c);
  }
  zoomable(map);
  const unplaced = hosts.hosts.length - placed.length;
  const stats = el("div", { class: "stats", "data-points": placed.length, "data-hops": hops.length },
    el("span", {}, el("b", {}, placed.length), " remote hosts placed"),
    el("span", {}, el("b", {}, hops.length), " hops placed"),
    el("span", {}, el("b", {}, unplaced), " without a location (private, or no GeoIP data)"),
    home ? el("span", {}, "arcs from the sensor at ", el("b", {}, home.join(", "))) : el("span", {}, "set `location` in the collector's configuration to draw arcs"));
  return { nodes: [stats, rttLegend(), map] };
}

function sensorHome(params) {
  const id = params.get("sensor");
  const s = (netGazer.sensors || []).find((x) => x.id === id) || (netGazer.sensors || []).find((x) => x.location);
  return (s && s.location) || netGazer.home || null;
}

// Wheel to zoom, drag to pan (the SVG's viewBox).
function zoomable(map) {
  let [vx, vy, vw, vh] = [0, 0, MAP_W, MAP_H];
  const apply = () => map.setAttribute("viewBox", `${vx} ${vy} ${vw} ${vh}`);
  map.addEventListener("wheel", (e) => {
    e.preventDefault();
    const r = map.getBoundingClientRect();
    const px = vx + ((e.clientX - r.left) / r.width) * vw, py = vy + ((e.clientY - r.top) / r.height) * vh;
    const k = e.deltaY < 0 ? 0.8 : 1.25;
    vw = Math.min(MAP_W, Math.max(40, vw * k));
    vh = vw / 2;
    vx = px - ((e.clientX - r.left) / r.width) * vw;
    vy = py - ((e.clientY - r.top) / r.height) * vh;
    apply();
  }, { passive: false });
  let drag = null;
  map.addEventListener("pointerdown", (e) => { drag = { x: e.clientX, y: e.clientY, vx, vy }; });
  map.addEventListener("pointermove", (e) => {
    if (!drag) return;
    const r = map.getBoundingClientRect();
    vx = drag.vx - ((e.clientX - drag.x) / r.width) * vw;
    vy = drag.vy - ((e.clientY - drag.y) / r.height) * vh;
    apply();
  });
  window.addEventListener("pointerup", () => { drag = null; });
}

// ---- inbound attempts ----

async function viewInbound(params) {
  const { sources } = await api("inbound", params);
  if (!sources.length) return { nodes: [empty("No refused or unanswered inbound attempts and no scans in this window.")] };
  const rows = sources.map((s) => el("tr", { "data-ip": s.ip, onclick: () => selectNode(s.ip) },
    el("td", {}, s.ip),
    el("td", {}, s.country || "–", s.asn ? " · AS" + s.asn : ""),
    el("td", { class: "num" }, s.attempts),
    el("td", { class: "num" }, s.refused),
    el("td", { class: "num" }, s.unanswered),
    el("td", {}, s.scans.map((x) => el("span", { class: "tag" }, `${x.scan_type.replace("_", " ")} ${x.phase}` + (x.distinct ? ` (${x.distinct})` : "")))),
    el("td", {}, s.targets.slice(0, 8).map((t) => el("span", { class: "tag " + t.outcome }, `${t.ip}:${t.port} ×${t.count}`)),
      s.targets.length > 8 ? `+${s.targets.length - 8}` : null),
    el("td", {}, when(s.first_us)), el("td", {}, when(s.last_us))));
  const table = el("table", { id: "inbound-table" },
    el("thead", {}, el("tr", {}, ["Source", "Geo", "Attempts", "Refused", "Unanswered", "Scans", "Targets (address:port ×count)", "First", "Last"]
      .map((h, i) => el("th", { scope: "col", class: i >= 2 && i <= 4 ? "num" : null }, h)))),
    el("tbody", {}, rows));
  const nodes = new Map();
  const links = [];
  for (const s of sources) {
    nodes.set(s.ip, { id: s.ip, kind: "source", count: s.attempts || s.scans.length, asn: s.asn, country: s.country });
    for (const t of s.targets) {
      if (!nodes.has(t.ip)) nodes.set(t.ip, { id: t.ip, kind: "local", count: 0 });
      nodes.get(t.ip).count += t.count;
      links.push({ source: s.ip, target: t.ip, count: t.count, outcome: t.outcome });
    }
    for (const x of s.scans) if (x.target_ip && !links.some((l) => l.source === s.ip && l.target === x.target_ip)) {
      if (!nodes.has(x.target_ip)) nodes.set(x.target_ip, { id: x.target_ip, kind: "local", count: 1 });
      links.push({ source: s.ip, target: x.target_ip, count: 1, outcome: "scan" });
    }
  }
  const data = { nodes: [...nodes.values()], links };
  const container = el("div", { class: "canvas", id: "inbound-canvas", style: "min-height:320px", role: "img",
    "aria-label": `Graph of ${sources.length} sources and their local targets`, "data-nodes": data.nodes.length });
  return {
    nodes: [el("div", { class: "stats" }, el("span", {}, el("b", {}, sources.length), " sources")), table,
      el("div", { class: "legend" },
        el("span", {}, el("span", { class: "swatch", style: "background:#d1495b" }), "source"),
        el("span", {}, el("span", { class: "swatch", style: `background:${KIND_COLOR.local}` }), "local target")),
      container],
    mounted() {
      graphWidget(container, data, {
        color: (n) => (n.kind === "source" ? "#d1495b" : KIND_COLOR.local),
        label: (n) => `${n.kind} ${n.id}` + (n.count ? ` · ${n.count}` : ""),
        linkColor: (l) => (l.outcome === "scan" ? "rgba(244,162,97,.8)" : "rgba(209,73,91,.5)"),
        linkWidth: (l) => Math.min(6, 0.6 + Math.log2(1 + l.count)),
        onClick: (n) => selectNode(n.id),
      });
    },
  };
}

// ---- internal communication ----

async function viewInternal(params) {
  const { links } = await api("internal", params);
  if (!links.length) return { nodes: [empty("No connections between local hosts in this window.")] };
  const nodes = new Map();
  const glinks = [];
  for (const l of links) {
    for (const ip of [l.client, l.server]) {
      if (!nodes.has(ip)) nodes.set(ip, { id: ip, kind: "local", count: 0 });
      nodes.get(ip).count += l.count;
    }
    glinks.push({ source: l.client, target: l.server, count: l.count, failures: l.failures, rtt: l.rtt_min_us });
  }
  const data = { nodes: [...nodes.values()], links: glinks };
  const container = el("div", { class: "canvas", id: "internal-canvas", role: "img",
    "aria-label": `Graph of ${nodes.size} local hosts`, "data-nodes": nodes.size });
  const table = el("table", { id: "internal-table" },
    el("thead", {}, el("tr", {}, ["Client", "Server", "Port", "Count", "Failures", "RTT min", "Last"]
      .map((h, i) => el("th", { scope: "col", class: i >= 2 && i <= 5 ? "num" : null }, h)))),
    el("tbody", {}, links.map((l) => el("tr", { "data-client": l.client, "data-server": l.server },
      el("td", {}, l.client), el("td", {}, l.server), el("td", { class: "num" }, l.port),
      el("td", { class: "num" }, l.count), el("td", { class: "num" }, l.failures),
      el("td", { class: "num" }, ms(l.rtt_min_us)), el("td", {}, when(l.last_us))))));
  return {
    nodes: [el("div", { class: "stats" }, el("span", {}, el("b", {}, nodes.size), " local hosts"),
      el("span", {}, el("b", {}, links.length), " client–server–port links")), rttLegend(), container, table],
    mounted() {
      graphWidget(container, data, {
        color: () => KIND_COLOR.local,
        label: (n) => `${n.id} · ${n.count} handshakes`,
        linkColor: (l) => (l.failures ? "#d1495b" : rttColor(l.rtt)),
        linkWidth: (l) => Math.min(6, 0.6 + Math.log2(1 + l.count)),
        onClick: () => {},
      });
    },
  };
}

// ---- RTT over time ----

async function viewRtt(params) {
  const by = params.get("by") || "all";
  const key = params.get("key") || "";
  const extra = { buckets: 60 };
  if (by !== "all" && key) extra[by === "network" ? "network" : by] = key;
  const [series, hosts] = await Promise.all([api("rtt", params, extra), api("hosts", params)]);
  const toolbar = el("div", { class: "toolbar" },
    el("label", {}, "Per ",
      el("select", { name: "by", onchange: (e) => setParam("by", e.target.value) },
        ["all", "host", "network", "asn", "country"].map((b) => el("option", { value: b, selected: b === by }, b === "all" ? "everything" : b)))),
    by === "all" ? null : el("label", {}, by === "network" ? "CIDR " : by + " ",
      el("input", { name: "key", value: key, placeholder: { host: "192.0.2.7", network: "192.0.2.0/24", asn: "15169", country: "GB" }[by],
        onchange: (e) => setParam("key", e.target.value.trim()) })));
  const pts = series.points;
  const p50 = pts.filter((p) => p.rtt_p50_us !== null).map((p) => ({ t: p.start_us, v: p.rtt_p50_us }));
  const p95 = pts.filter((p) => p.rtt_p95_us !== null).map((p) => ({ t: p.start_us, v: p.rtt_p95_us }));
  const failures = pts.filter((p) => p.failures > 0).map((p) => ({ t: p.start_us, n: p.failures }));
  const chart = pts.length
    ? lineChart([{ points: p95, color: "#f4a261", label: "p95" }, { points: p50, color: "#1d3557", label: "p50" }],
      { failures, bars: true, bucket: series.bucket_us })
    : empty("No handshakes for this selection in the window.");
  const totals = el("div", { class: "stats", "data-buckets": pts.length },
    el("span", {}, el("b", {}, pts.reduce((a, p) => a + p.attempts, 0)), " attempts"),
    el("span", {}, el("b", {}, pts.reduce((a, p) => a + p.failures, 0)), " failures (refused, unanswered, incomplete)"),
    el("span", {}, "buckets of ", el("b", {}, (series.bucket_us / 6e7).toFixed(1)), " min"));
  const top = hosts.hosts.slice(0, 25).map((h) => el("tr", { "data-ip": h.ip, onclick: () => setParams({ by: "host", key: h.ip }) },
    el("td", {}, h.ip), el("td", {}, h.geo && h.geo.country || "–", h.geo && h.geo.asn ? " · AS" + h.geo.asn : ""),
    el("td", { class: "num" }, h.attempts), el("td", { class: "num" }, h.refused + h.unanswered),
    el("td", { class: "num" }, ms(h.rtt_p50_us)), el("td", { class: "num" }, ms(h.rtt_p95_us))));
  const table = el("table", { id: "rtt-hosts" },
    el("thead", {}, el("tr", {}, ["Remote host", "Geo", "Attempts", "Failures", "p50", "p95"].map((h, i) => el("th", { scope: "col", class: i >= 2 ? "num" : null }, h)))),
    el("tbody", {}, top));
  return { nodes: [toolbar, totals, chart, el("h3", {}, "Busiest remote hosts"), table] };
}

// An SVG line chart over time; failures as red marks on the same axis.
function lineChart(series, { small = false, failures = [], bars = false, bucket = 0 } = {}) {
  const W = 800, H = small ? 160 : 260, L = 56, R = 12, T = 10, B = 24;
  const all = series.flatMap((s) => s.points);
  const ts = all.map((p) => p.t).concat(failures.map((f) => f.t));
  let t0 = Math.min(...ts), t1 = Math.max(...ts) + (bucket || 0);
  if (t1 === t0) { t0 -= 6e7; t1 += 6e7; }
  const vmax = Math.max(1, ...all.map((p) => p.v || 0)) * 1.1;
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
  const y = (v) => T + (1 - v / vmax) * (H - T - B);
  const chart = svg("svg", { class: "chart" + (small ? " small" : ""), viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img", "aria-label": "RTT over time" });
  for (let i = 0; i <= 4; i++) {
    const v = (vmax / 4) * i;
    chart.append(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#e6e8eb" }));
    const t = svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" });
    t.textContent = ms(v);
    chart.append(t);
  }
  for (const [tt, anchor] of [[t0, "start"], [t1, "end"]]) {
    const t = svg("text", { x: x(tt), y: H - 6, "text-anchor": anchor });
    t.textContent = when(tt);
    chart.append(t);
  }
  const fmax = Math.max(1, ...failures.map((f) => f.n || 1));
  for (const f of failures) {
    const h = bars ? ((f.n || 1) / fmax) * (H - T - B) * 0.3 : 8;
    chart.append(svg("rect", { x: x(f.t) - 2, y: H - B - h, width: 4, height: h, fill: "#d1495b", "data-failures": f.n || 1 }));
  }
  for (const s of series) {
    if (!s.points.length) continue;
    const d = s.points.map((p, i) => (i ? "L" : "M") + x(p.t).toFixed(1) + "," + y(p.v).toFixed(1)).join("");
    chart.append(svg("path", { d, fill: "none", stroke: s.color, "stroke-width": 1.5, "vector-effect": "non-scaling-stroke" }));
    for (const p of s.points) {
      const c = svg("circle", { cx: x(p.t), cy: y(p.v), r: 2.2, fill: s.color, "data-series": s.label, "data-t": p.t, "data-v": p.v });
      c.appendChild(svg("title")).textContent = `${s.label} ${ms(p.v)} at ${when(p.t)}`;
      chart.append(c);
    }
  }
  const legend = el("div", { class: "legend" }, series.map((s) => el("span", {}, el("span", { class: "swatch", style: `background:${s.color}` }), s.label)),
    failures.length ? el("span", {}, el("span", { class: "swatch", style: "background:#d1495b" }), "failures") : null);
  return el("figure", { style: "margin:0" }, chart, legend);
}

// ---- start ----

window.addEventListener("error", (e) => netGazer.errors.push(String(e.message)));
window.addEventListener("unhandledrejection", (e) => netGazer.errors.push(String(e.reason && e.reason.stack || e.reason)));
window.addEventListener("hashchange", () => render());
$("#filters").addEventListener("change", (e) => {
  if (FILTERS.includes(e.target.name)) setParam(e.target.name, e.target.value);
});
$("#filters").addEventListener("submit", (e) => e.preventDefault());
$("#panel-close").addEventListener("click", closePanel);
document.addEventListener("keydown", (e) => { if (e.key === "Escape") closePanel(); });
loadSensors().then(() => render());
