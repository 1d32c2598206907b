//! A tiny admin HTTP server for humans, probes and Prometheus.
//!
//! Endpoints: `/` (the status page: `ui/`, polling the JSON endpoints),
//! `/routes` (the served routing tables, JSON), `/healthz` (process up), `/readyz` (200 while the served
//! snapshot has something to serve, at least one accepted Gateway's proxy;
//! else 503 with the reason), `/status` (JSON: the same data as
//! the gRPC `StatusService`, plus `lastLoad`: the work of the most recent
//! load, files read vs reused, resources encoded vs reused, durations),
//! `/metrics` (Prometheus text format, `metrics.rs`), `/config_dump` (the
//! served snapshot: per proxy and type, the version and every resource's
//! name, hash and proto3 JSON; `?proxy=NAME` for one proxy). Plain
//! HTTP/1.1, one request per connection: it is for curl, probes and
//! scrapers, not traffic.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::api::current_status;
use crate::server::Shared;
use crate::snapshot::{PUSH_ORDER, ResourceType};

/// The status page: plain HTML, a script and a style sheet, compiled in
/// (no CDN, nothing to install).
const UI_HTML: &str = include_str!("ui/index.html");
const UI_JS: &str = include_str!("ui/app.js");
const UI_CSS: &str = include_str!("ui/app.css");
const UI_ICON: &str = include_str!("ui/icon.svg");

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";
const JSON: &str = "application/json";

enum Body {
    Static(&'static str),
    Owned(String),
}

impl Body {
    fn as_str(&self) -> &str {
        match self {
            Body::Static(s) => s,
            Body::Owned(s) => s,
        }
    }
}

pub async fn run(listener: TcpListener, shared: Shared) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let n = match tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf)).await {
                Ok(Ok(n)) => n,
                _ => return,
            };
            let req = String::from_utf8_lossy(&buf[..n]);
            let target = req.split_whitespace().nth(1).unwrap_or("/");
            let (path, query) = target.split_once('?').unwrap_or((target, ""));
            let (code, content_type, body) = match path {
                "/" | "/ui" | "/ui/" => (200, HTML, Body::Static(UI_HTML)),
                "/ui/app.js" => (200, JS, Body::Static(UI_JS)),
                "/ui/app.css" => (200, CSS, Body::Static(UI_CSS)),
                "/ui/icon.svg" | "/favicon.ico" => (200, SVG, Body::Static(UI_ICON)),
                "/metrics" => (
                    200,
                    crate::metrics::CONTENT_TYPE,
                    Body::Owned(shared.metrics.render()),
                ),
                "/config_dump" => {
                    let (code, body) = config_dump(&shared, query_param(query, "proxy"));
                    (code, JSON, Body::Owned(body))
                }
                "/routes" => (200, JSON, Body::Owned(served_routes(&shared))),
                _ => {
                    let (code, body) = respond(path, &shared);
                    (code, JSON, Body::Owned(body))
                }
            };
            let reason = match code {
                200 => "OK",
                404 => "Not Found",
                500 => "Internal Server Error",
                _ => "Service Unavailable",
            };
            // The page's script and styles are same-origin files, so the
            // policy can forbid everything else (inline script included).
            let csp = if content_type == HTML {
                "content-security-policy: default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'\r\n"
            } else {
                ""
            };
            let body = body.as_str();
            let resp = format!(
                "HTTP/1.1 {code} {reason}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\ncache-control: no-store\r\nx-content-type-options: nosniff\r\n{csp}connection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
        });
    }
}

fn respond(path: &str, shared: &Shared) -> (u16, String) {
    match path {
        "/healthz" => (200, "{\"status\":\"ok\"}".into()),
        "/readyz" => match readiness(shared) {
            Ok(proxies) => (200, json!({"ready": true, "proxies": proxies}).to_string()),
            Err(reason) => (503, json!({"ready": false, "reason": reason}).to_string()),
        },
        "/status" => {
            let s = current_status(shared);
            let last_load = last_load(shared);
            let generation = shared
                .snapshots
                .borrow()
                .as_ref()
                .map(|s| s.generation().to_string());
            let now_unix_ms = crate::xds::registry::now_unix_ms();
            let body = json!({
                "generation": generation,
                "nowUnixMs": now_unix_ms,
                "lastLoad": last_load,
                "serving": s.serving,
                "lastLoadFailed": s.last_load_failed,
                "loads": s.loads,
                "proxies": s.proxies.iter().map(|p| json!({
                    "key": p.key,
                    "types": p.types.iter().map(|t| json!({
                        "typeUrl": t.type_url, "version": t.version, "resources": t.resource_names,
                    })).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
                "diagnostics": s.diagnostics.iter().map(|d| json!({
                    "severity": crate::api::severity_name(d.severity),
                    "file": d.file, "line": d.line, "column": d.column,
                    "kind": d.kind, "namespace": d.namespace, "name": d.name, "message": d.message,
                })).collect::<Vec<_>>(),
                "resources": crate::api::resources_json(&s.resources),
                "drains": s.drains.iter().map(|d| json!({
                    "listener": d.listener, "proxy": d.proxy, "nodeId": d.node_id,
                    "change": d.change, "filterChains": d.filter_chains,
                    "activeConnections": d.active_connections,
                    "atUnixMs": d.at_unix_ms, "version": d.version,
                })).collect::<Vec<_>>(),
                "nodes": s.nodes.iter().map(|n| json!({
                    "nodeId": n.node_id, "proxy": n.proxy, "xdsMode": n.xds_mode,
                    "statsReported": n.stats_reported,
                    "listeners": n.listeners.iter().map(|l| json!({
                        "listener": l.listener, "activeConnections": l.active_connections,
                    })).collect::<Vec<_>>(),
                    "types": n.types.iter().map(|t| json!({
                        "typeUrl": t.type_url, "ackedVersion": t.acked_version,
                        "nackedVersion": t.nacked_version, "nackMessage": t.nack_message,
                        "responses": t.responses,
                        "lastAckUnixMs": t.last_ack_unix_ms,
                        "lastNackUnixMs": t.last_nack_unix_ms,
                    })).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            });
            (200, body.to_string())
        }
        _ => (404, "{\"error\":\"not found\"}".into()),
    }
}

/// `/routes`: the routing tables of the served config (`crate::explain`):
/// per listener, each route's matcher, destination, WebSocket state and
/// reason, and source.
fn served_routes(shared: &Shared) -> String {
    let routes = shared
        .load
        .lock()
        .map(|l| l.routes.clone())
        .unwrap_or_default();
    serde_json::to_string(&*routes)
        .unwrap_or_else(|e| json!({"error": format!("cannot render the routes: {e}")}).to_string())
}

/// Ready once a valid configuration with something to serve (at least one
/// proxy, i.e. an accepted Gateway) is published: `Ok(proxies)`, else the
/// reason.
fn readiness(shared: &Shared) -> Result<usize, String> {
    if let Some(snap) = shared.snapshots.borrow().as_ref()
        && !snap.proxies.is_empty()
    {
        return Ok(snap.proxies.len());
    }
    let (loads, errors) = shared
        .load
        .lock()
        .map(|l| {
            let errors = l.diagnostics.iter().filter(|d| d.is_error()).count();
            (l.loads, errors)
        })
        .unwrap_or_default();
    Err(if loads == 0 {
        "the manifests directory has not been loaded yet".to_string()
    } else if errors > 0 {
        format!(
            "nothing to serve: no valid Gateway; the last load found {errors} error(s) (see /status)"
        )
    } else {
        "nothing to serve: the manifests define no Gateway".to_string()
    })
}

/// The work of the most recent load, with the number of that load.
fn last_load(shared: &Shared) -> serde_json::Value {
    let Ok(l) = shared.load.lock() else {
        return serde_json::Value::Null;
    };
    let w = &l.work;
    let by_type = |m: &std::collections::BTreeMap<ResourceType, usize>| {
        PUSH_ORDER
            .iter()
            .map(|t| (t.short().to_string(), json!(m.get(t).copied().unwrap_or(0))))
            .collect::<serde_json::Map<_, _>>()
    };
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    json!({
        "load": l.loads,
        "filesRead": w.files_read,
        "filesReused": w.files_reused,
        "filesParsed": w.files_parsed,
        "parsesReused": w.parses_reused,
        "resourcesEncoded": by_type(&w.encode.encoded),
        "resourcesReused": by_type(&w.encode.reused),
        "readMs": ms(w.read),
        "buildMs": ms(w.build),
        "durationMs": ms(w.total),
    })
}

/// The value of `name` in a query string (no percent-decoding beyond `+`
/// and `%7E`: proxy keys are `<namespace>~<name>`).
fn query_param<'a>(query: &'a str, name: &str) -> Option<std::borrow::Cow<'a, str>> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| {
            if v.contains(['%', '+']) {
                std::borrow::Cow::Owned(v.replace("%7E", "~").replace("%7e", "~").replace('+', " "))
            } else {
                std::borrow::Cow::Borrowed(v)
            }
        })
    })
}

/// `/config_dump`: what edgeplane serves, per proxy and type.
fn config_dump(shared: &Shared, proxy: Option<std::borrow::Cow<'_, str>>) -> (u16, String) {
    let Some(snap) = shared.snapshots.borrow().clone() else {
        let body = json!({"error": "no valid configuration has been loaded yet (see /readyz)"});
        return (503, body.to_string());
    };
    match config_dump_json(&snap, proxy.as_deref()) {
        Ok(v) => (200, v.to_string()),
        Err(crate::json::JsonError::UnknownProxy { given, known }) => (
            404,
            json!({"error": format!("unknown proxy `{given}`"), "proxies": known}).to_string(),
        ),
        Err(e @ crate::json::JsonError::AmbiguousProxy { .. }) => {
            (404, json!({"error": e.to_string()}).to_string())
        }
        Err(e) => (500, json!({"error": e.to_string()}).to_string()),
    }
}

/// The snapshot as JSON: `{"generation", "proxies": {KEY: {"clusters" |
/// "listeners" | "routeConfigs": {"typeUrl", "version", "resources":
/// [{"name", "hash", "resource": <proto3 JSON>}]}}}}`. The resources are
/// decoded from the bytes served and rendered as `edgeplane translate`
/// renders them (`json.rs`).
pub fn config_dump_json(
    snap: &crate::snapshot::Snapshot,
    proxy: Option<&str>,
) -> Result<serde_json::Value, crate::json::JsonError> {
    use crate::translate::{Output, ProxyResources};
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use envoy_types::pb::envoy::config::listener::v3::Listener;
    use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
    use prost::Message;

    fn decode_all<M: Message + Default>(
        p: &crate::snapshot::ProxySnapshot,
        key: &str,
        t: ResourceType,
    ) -> Result<Vec<M>, crate::json::JsonError> {
        p.resources(t)
            .map(|e| {
                M::decode(&e.bytes[..]).map_err(|err| crate::json::JsonError::Resource {
                    proxy: key.to_string(),
                    kind: t.short(),
                    name: e.name.clone(),
                    message: format!("cannot decode the served bytes: {err}"),
                })
            })
            .collect()
    }

    let mut output = Output::new();
    for (key, p) in &snap.proxies {
        output.insert(
            key.clone(),
            ProxyResources {
                listeners: decode_all::<Listener>(p, key, ResourceType::Listener)?,
                route_configs: decode_all::<RouteConfiguration>(p, key, ResourceType::Route)?,
                clusters: decode_all::<Cluster>(p, key, ResourceType::Cluster)?,
            },
        );
    }
    let rendered = crate::json::resources_json(&output, proxy)?;
    let mut proxies = serde_json::Map::new();
    for (key, by_kind) in rendered.as_object().into_iter().flatten() {
        let Some(p) = snap.proxies.get(key) else {
            continue;
        };
        let mut kinds = serde_json::Map::new();
        for (kind, t) in [
            ("clusters", ResourceType::Cluster),
            ("listeners", ResourceType::Listener),
            ("routeConfigs", ResourceType::Route),
        ] {
            let json_items = by_kind[kind].as_array().cloned().unwrap_or_default();
            // Both in name order: the snapshot's maps and the vectors
            // built from them.
            let resources: Vec<serde_json::Value> = p
                .resources(t)
                .zip(json_items)
                .map(|(e, resource)| json!({"name": e.name, "hash": e.hash, "resource": resource}))
                .collect();
            kinds.insert(
                kind.to_string(),
                json!({"typeUrl": t.type_url(), "version": p.version(t), "resources": resources}),
            );
        }
        proxies.insert(key.clone(), serde_json::Value::Object(kinds));
    }
    Ok(json!({"generation": snap.generation(), "proxies": proxies}))
}
