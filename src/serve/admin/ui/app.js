// edgeplane status page: polls /status (and /routes when the served
// generation changes) and renders them. No framework, no CDN: this file is
// compiled into the binary. Every value from the server is inserted as text
// (never as HTML), so a manifest cannot inject markup into the page.
"use strict";

const POLL_MS = 1000;
const TYPE_NAMES = {
  "type.googleapis.com/envoy.config.cluster.v3.Cluster": "CDS",
  "type.googleapis.com/envoy.config.listener.v3.Listener": "LDS",
  "type.googleapis.com/envoy.config.route.v3.RouteConfiguration": "RDS",
  "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret": "SDS",
};

// el("td", {class: "x"}, "text", child, ...): a new element.
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null) node.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function table(headers, rows) {
  return el("table", {},
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows));
}

function where(file, line, column) {
  if (!file) return "";
  let s = file;
  if (line) s += ":" + line;
  if (line && column) s += ":" + column;
  return s;
}

function ago(nowMs, thenMs) {
  if (!thenMs) return "";
  const s = Math.max(0, Math.round((nowMs - thenMs) / 1000));
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  return Math.round(s / 3600) + " h ago";
}

// Replaces a section's content only when its data changed, so the page does
// not flicker or lose a text selection every second.
const rendered = {};
function update(id, data, render) {
  const key = JSON.stringify(data);
  if (rendered[id] === key) return;
  rendered[id] = key;
  const target = document.getElementById(id);
  target.replaceChildren(...[render(data)].flat());
}

function renderProblems(diags) {
  if (diags.length === 0) {
    return el("p", { class: "ok-text muted", "data-empty": "true" },
      "No problems: every manifest in the directory is valid.");
  }
  return el("ul", { class: "diags" }, diags.map((d) => {
    const resource = d.kind ? `${d.kind} ${d.namespace}.${d.name}` : "";
    return el("li", { class: "diag " + d.severity },
      el("span", { class: "where" }, where(d.file, d.line, d.column)),
      el("span", { class: "severity" }, d.severity + ": "),
      resource ? el("span", { class: "resource" }, resource + ": ") : null,
      el("span", { class: "message" }, d.message),
      d.hint ? el("span", { class: "hint muted" }, " (hint: " + d.hint + ")") : null);
  }));
}

function renderRoutes(routes) {
  if (routes.error) {
    return el("p", { class: "error" }, "Cannot explain the served routes: " + routes.error);
  }
  if (!routes.generation) {
    return el("p", { class: "muted" }, "Nothing is served yet: no valid configuration has been loaded.");
  }
  if (routes.listeners.length === 0) {
    return el("p", { class: "muted" },
      "No listener is served: no Gateway has a valid VirtualService (as in Gloo, a gateway without one gets no listener).");
  }
  return routes.listeners.map((l) => {
    // Group the rows by virtual host (one per VirtualService), in order.
    const groups = [];
    for (const r of l.routes) {
      const last = groups[groups.length - 1];
      if (last && last.vs === r.virtualService) last.rows.push(r);
      else groups.push({ vs: r.virtualService, domains: r.domains, rows: [r] });
    }
    return el("div", { class: "listener", "data-listener": l.listener },
      el("h3", {}, `Gateway ${l.gateway || "?"} · proxy ${l.proxy} · ${l.listener} · routes ${l.routeConfig} · WebSocket `,
        el("span", { class: l.websocketDefault ? "ws-on" : "ws-off" },
          l.websocketDefault ? "on" : "off"), " by default"),
      groups.length === 0 ? el("p", { class: "muted" }, "No virtual hosts.") : null,
      groups.map((g) => el("div", { class: "vhost" },
        el("h4", {}, `VirtualService ${g.vs} · domains ${g.domains.join(", ")}`),
        table(["matcher", "destination", "WebSocket", "source"], g.rows.map((r) =>
          el("tr", { class: "route", "data-route": r.name },
            el("td", { class: "mono" }, r.matcher),
            el("td", { class: "mono" }, r.destination),
            el("td", { class: "websocket " + (r.websocket ? "ws-on" : "ws-off") }, r.websocketReason),
            el("td", { class: "mono" }, where(r.file, r.line))))))));
  });
}

function renderResources(resources) {
  if (resources.length === 0) return el("p", { class: "muted" }, "No resources.");
  return table(["kind", "resource", "state", "served", "source", "reasons"],
    resources.map((r) => el("tr", { class: "resource", "data-state": r.state },
      el("td", {}, r.kind),
      el("td", { class: "mono" }, `${r.namespace}.${r.name}`),
      el("td", { class: "state-" + r.state }, r.state),
      el("td", {}, r.serving),
      el("td", { class: "mono" }, where(r.file, r.line)),
      el("td", { class: "reasons" }, r.reasons.map((d) => el("div", { class: d.severity },
        el("span", { class: "where" }, where(d.file, d.line, d.column)), d.message)),
        r.proxies.filter((p) => p.reason).map((p) =>
          el("div", { class: "error" }, `${p.proxy}: ${p.reason}`))))));
}

function renderNodes(s) {
  if (s.nodes.length === 0) {
    return el("p", { class: "muted" }, "No Envoy is connected.");
  }
  return s.nodes.map((n) => el("div", { class: "node", "data-node": n.nodeId },
    el("h3", {}, `${n.nodeId} · proxy ${n.proxy} · ${n.xdsMode} ADS`,
      n.replica ? ` · on replica ${n.replica}` : "",
      n.listeners.length ? " · connections: " +
        n.listeners.map((l) => `${l.listener} ${l.activeConnections}`).join(", ") : "",
      n.statsReported ? ` · WebSockets: ${n.upgradesActive} open, ${n.upgradesTotal} since Envoy started` : ""),
    n.statsReported && n.listeners.length ?
      table(["listener", "active connections", "WebSockets open", "WebSockets since start"],
        n.listeners.map((l) => el("tr", { class: "websockets", "data-listener": l.listener },
          el("td", { class: "mono" }, l.listener),
          el("td", {}, l.activeConnections),
          el("td", { class: "ws-active" }, l.upgradesActive + (l.upgradesShared ? " (shared)" : "")),
          el("td", {}, l.upgradesTotal + (l.upgradesShared ? " (shared)" : ""))))) : "",
    table(["type", "ACKed version", "last ACK", "NACKed version", "last NACK", "NACK message", "responses"],
      n.types.map((t) => el("tr", { class: t.nackedVersion ? "nacked" : "acked" },
        el("td", {}, TYPE_NAMES[t.typeUrl] || t.typeUrl),
        el("td", { class: "mono" }, t.ackedVersion),
        el("td", {}, ago(s.nowUnixMs, t.lastAckUnixMs)),
        el("td", { class: "mono error" }, t.nackedVersion),
        el("td", {}, ago(s.nowUnixMs, t.lastNackUnixMs)),
        el("td", { class: "error" }, t.nackMessage),
        el("td", {}, t.responses))))));
}

function renderDrains(drains) {
  if (drains.length === 0) return el("p", { class: "muted" }, "No listener has been drained.");
  return table(["when", "listener", "node", "change", "active connections"],
    drains.map((d) => el("tr", {},
      el("td", {}, new Date(d.atUnixMs).toLocaleTimeString()),
      el("td", { class: "mono" }, d.listener),
      el("td", { class: "mono" }, d.nodeId),
      el("td", {}, d.change),
      el("td", {}, d.activeConnections))));
}

// The generation the routes section shows; `undefined` until first fetched
// (`/status` and `/routes` say `null` while nothing is served).
let routesGeneration;
let lastOk = 0;

async function getJson(path) {
  const resp = await fetch(path, { cache: "no-store" });
  if (!resp.ok && resp.status !== 503) throw new Error(`${path}: HTTP ${resp.status}`);
  return resp.json();
}

async function poll() {
  try {
    const s = await getJson("/status");
    if (s.generation !== routesGeneration) {
      const routes = await getJson("/routes");
      routesGeneration = routes.generation;
      update("routes", routes, renderRoutes);
    }
    const serving = document.getElementById("serving");
    serving.textContent = s.serving
      ? (s.lastLoadFailed ? "serving what is valid; see the errors" : "serving")
      : "not serving";
    serving.className = "badge " + (s.serving && !s.lastLoadFailed ? "ok" : "bad");
    const ll = s.lastLoad || {};
    document.getElementById("summary").textContent =
      `generation ${s.generation || "–"} · load ${s.loads} took ${(ll.durationMs || 0).toFixed(1)} ms`;
    update("problems", s.diagnostics, renderProblems);
    update("resources", s.resources, renderResources);
    update("nodes", { nodes: s.nodes, nowUnixMs: Math.floor(s.nowUnixMs / 1000) * 1000 }, renderNodes);
    update("drains", s.drains, renderDrains);
    lastOk = Date.now();
    const live = document.getElementById("live");
    live.textContent = "live · updated " + new Date(lastOk).toLocaleTimeString();
    live.className = "live";
  } catch (e) {
    const live = document.getElementById("live");
    live.textContent = "cannot reach edgeplane (" + e.message + "); retrying";
    live.className = "live down";
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

poll();
