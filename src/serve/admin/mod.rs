//! A tiny admin HTTP server for humans, probes and Prometheus. Endpoints:
//!
//! - `/`: the status page (`ui/`), which polls the JSON endpoints;
//! - `/status`: the status report the gRPC `StatusService` sends
//!   (`status::view`), plus the served generation, the server's clock and
//!   `lastLoad` (files read vs reused, resources encoded vs reused,
//!   durations);
//! - `/routes`: the served routing tables (`status::explain`);
//! - `/healthz`: the process is up;
//! - `/readyz`: 200 while the served snapshot has something to serve (at
//!   least one accepted Gateway's proxy), else 503 with the reason;
//! - `/metrics`: Prometheus text format (`serve::metrics`);
//! - `/config_dump`: the served snapshot, per proxy and type, the version
//!   and every resource's name, hash and proto3 JSON; `?proxy=NAME` for one
//!   proxy (`config_dump`).
//!
//! Plain HTTP/1.1, one request per connection: it is for curl, probes and
//! scrapers, not traffic.

mod config_dump;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

pub use config_dump::config_dump_json;

use super::metrics::Metrics;
use crate::status::State;
use crate::status::view::status_document;

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

/// What the admin server serves: the status state and the metrics, nothing
/// else.
#[derive(Clone)]
pub struct Admin {
    state: State,
    metrics: Arc<Metrics>,
}

impl Admin {
    pub fn new(state: State, metrics: Arc<Metrics>) -> Self {
        Admin { state, metrics }
    }
}

pub async fn run(listener: TcpListener, admin: Admin) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            continue;
        };
        let admin = admin.clone();
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
                    super::metrics::CONTENT_TYPE,
                    Body::Owned({
                        admin.metrics.set_websockets(
                            &crate::status::view::current_status(&admin.state).nodes,
                        );
                        admin.metrics.render()
                    }),
                ),
                "/config_dump" => {
                    let (code, body) =
                        config_dump::config_dump(&admin.state, query_param(query, "proxy"));
                    (code, JSON, Body::Owned(body))
                }
                "/routes" => {
                    let (code, body) = served_routes(&admin.state);
                    (code, JSON, Body::Owned(body))
                }
                _ => {
                    let (code, body) = respond(path, &admin);
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

fn respond(path: &str, admin: &Admin) -> (u16, String) {
    match path {
        "/healthz" => (200, "{\"status\":\"ok\"}".into()),
        "/readyz" => match readiness(&admin.state) {
            Ok(proxies) => (200, json!({"ready": true, "proxies": proxies}).to_string()),
            Err(reason) => (503, json!({"ready": false, "reason": reason}).to_string()),
        },
        "/status" => json_body(&status_document(&admin.state)),
        _ => (404, "{\"error\":\"not found\"}".into()),
    }
}

/// `value` as a 200 JSON body (500 with the reason if it cannot be
/// serialized).
fn json_body<T: serde::Serialize>(value: &T) -> (u16, String) {
    match serde_json::to_string(value) {
        Ok(body) => (200, body),
        Err(e) => (
            500,
            json!({"error": format!("cannot render JSON: {e}")}).to_string(),
        ),
    }
}

/// `/routes`: the routing tables of the served config (`crate::status::explain`):
/// per listener, each route's matcher, destination, WebSocket state and
/// reason, and source.
fn served_routes(state: &State) -> (u16, String) {
    let routes = state.load().routes.clone();
    json_body(&*routes)
}

/// Ready once a valid configuration with something to serve (at least one
/// proxy, i.e. an accepted Gateway) is published: `Ok(proxies)`, else the
/// reason.
fn readiness(state: &State) -> Result<usize, String> {
    if let Some(snap) = state.snapshots.borrow().as_ref()
        && !snap.proxies.is_empty()
    {
        return Ok(snap.proxies.len());
    }
    let (loads, errors) = {
        let l = state.load();
        let errors = l.diagnostics.iter().filter(|d| d.is_error()).count();
        (l.loads, errors)
    };
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
