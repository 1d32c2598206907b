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
//! scrapers, not traffic. Bounded (`AdminLimits`): live connections
//! (`--admin-max-connections`; over it, the oldest connection still reading
//! its request is dropped for the next one, and if all are being answered
//! the next one waits in the listen backlog: slow clients cannot keep a
//! probe out), a
//! 16 KiB request head read within 10 s, a response written within 10 s,
//! back-off on accept errors. Responses built from the snapshot (`/status`,
//! `/config_dump`, `/routes`, `/metrics`) are built on the blocking pool.
//! A `Host` that is neither an IP address, `localhost` nor one of
//! `--admin-allowed-hosts` gets 421 (DNS rebinding).

mod config_dump;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

pub use config_dump::config_dump_json;

use super::metrics::Metrics;
use super::transport::{AcceptBackoff, Limits, RateLimited};
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

/// The admin server's limits (`--admin-max-connections`,
/// `--admin-allowed-hosts`; the rest are constants).
#[derive(Clone, Debug)]
pub struct AdminLimits {
    pub max_connections: usize,
    /// Host header values allowed besides IP literals and loopback names.
    pub allowed_hosts: Vec<String>,
    /// Largest request head (request line and headers).
    pub head_bytes: usize,
    /// Time to receive the request head.
    pub read_timeout: Duration,
    /// Time to send the response.
    pub write_timeout: Duration,
}

impl From<&Limits> for AdminLimits {
    fn from(l: &Limits) -> Self {
        AdminLimits {
            max_connections: l.admin_max_connections,
            allowed_hosts: l.admin_allowed_hosts.clone(),
            head_bytes: 16 << 10,
            read_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// The live connections, oldest first. When all are taken, the oldest one
/// still reading its request head after `EVICT_GRACE` (a slow or stalled
/// client: a normal one sends its head with the connection, and `run`
/// reads what is already there before admitting the next) is dropped for
/// the next connection; until one is, or if all are being answered, the
/// next connection waits in the listen backlog. So clients dribbling bytes on many connections cannot
/// keep a probe out.
#[derive(Clone)]
struct Slots {
    max: usize,
    live: Arc<Mutex<Vec<Arc<SlotState>>>>,
    freed: Arc<Notify>,
}

struct SlotState {
    /// When its connection was accepted (the slot is taken before the
    /// accept, which may wait: the grace starts with the connection).
    since: Mutex<std::time::Instant>,
    reading: AtomicBool,
    evict: Notify,
}

/// One admitted connection; leaves the table on drop.
struct Slot {
    state: Arc<SlotState>,
    live: Arc<Mutex<Vec<Arc<SlotState>>>>,
    freed: Arc<Notify>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut v) = self.live.lock() {
            v.retain(|s| !Arc::ptr_eq(s, &self.state));
        }
        self.freed.notify_one();
    }
}

/// How long a new connection may take to send its head before it can be
/// dropped for a newer one (while all are younger, new ones wait in the
/// backlog).
/// Short, so that a flood ahead of a probe in the listen backlog clears
/// at thousands of connections a second; counted from the accept.
const EVICT_GRACE: Duration = Duration::from_millis(20);

enum Admit {
    Now(Slot),
    /// The oldest reader can be dropped after this.
    RetryIn(Duration),
    /// Every connection is being answered: wait for one to end.
    WhenFreed,
}

impl Slots {
    fn new(max: usize) -> Self {
        Slots {
            max: max.max(1),
            live: Arc::default(),
            freed: Arc::default(),
        }
    }

    fn try_admit(&self) -> Admit {
        let Ok(mut v) = self.live.lock() else {
            return Admit::WhenFreed;
        };
        if v.len() >= self.max {
            let Some(i) = v.iter().position(|s| s.reading.load(Ordering::Relaxed)) else {
                return Admit::WhenFreed;
            };
            let age = v[i].since.lock().map_or(EVICT_GRACE, |t| t.elapsed());
            if age < EVICT_GRACE {
                return Admit::RetryIn(EVICT_GRACE - age);
            }
            let old = v.remove(i);
            old.evict.notify_one();
        }
        let state = Arc::new(SlotState {
            since: Mutex::new(std::time::Instant::now()),
            reading: AtomicBool::new(true),
            evict: Notify::new(),
        });
        v.push(state.clone());
        Admit::Now(Slot {
            state,
            live: self.live.clone(),
            freed: self.freed.clone(),
        })
    }

    /// A slot for the next connection, waiting (not accepting) while none
    /// can be had.
    async fn admit(&self) -> Slot {
        loop {
            match self.try_admit() {
                Admit::Now(slot) => return slot,
                Admit::RetryIn(d) => {
                    tokio::select! {
                        () = tokio::time::sleep(d) => {}
                        () = self.freed.notified() => {}
                    }
                }
                Admit::WhenFreed => self.freed.notified().await,
            }
        }
    }
}

pub async fn run(listener: TcpListener, admin: Admin, limits: AdminLimits) {
    let slots = Slots::new(limits.max_connections);
    let limits = Arc::new(limits);
    let warn = Arc::new(RateLimited::per_second());
    let mut backoff = AcceptBackoff::new();
    loop {
        // The slot first: while none is free, connections wait in the
        // listen backlog rather than in memory.
        let slot = slots.admit().await;
        let (sock, peer) = super::transport::accept(&listener, &mut backoff, "admin").await;
        if let Ok(mut t) = slot.state.since.lock() {
            *t = std::time::Instant::now();
        }
        // What the client sent with the connection, read before the next
        // one is admitted: a whole head means this one is not a candidate
        // for eviction, however late its task runs.
        let mut first = vec![0u8; 4096];
        let n = sock.try_read(&mut first).unwrap_or(0);
        first.truncate(n);
        if head_complete(&first) {
            slot.state.reading.store(false, Ordering::Relaxed);
        }
        let admin = admin.clone();
        let limits = limits.clone();
        let warn = warn.clone();
        tokio::spawn(async move {
            connection(sock, first, peer, slot, admin, &limits, &warn).await;
        });
    }
}

#[derive(Debug)]
enum HeadError {
    TooLarge,
    Io,
}

/// Reads up to the end of the request head (`\r\n\r\n`), at most `max`
/// bytes; a head cut short by EOF is taken as it is.
fn head_complete(buf: &[u8]) -> bool {
    buf.windows(4).any(|w| w == b"\r\n\r\n")
}

/// Reads up to the end of the request head after `buf`, what was already
/// read.
async fn read_head(
    sock: &mut TcpStream,
    mut buf: Vec<u8>,
    max: usize,
) -> Result<Vec<u8>, HeadError> {
    if head_complete(&buf) {
        return Ok(buf);
    }
    let mut chunk = [0u8; 2048];
    loop {
        let n = sock.read(&mut chunk).await.map_err(|_| HeadError::Io)?;
        if n == 0 {
            return if buf.is_empty() {
                Err(HeadError::Io)
            } else {
                Ok(buf)
            };
        }
        let from = buf.len().saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        if buf[from..].windows(4).any(|w| w == b"\r\n\r\n") {
            return Ok(buf);
        }
        if buf.len() >= max {
            return Err(HeadError::TooLarge);
        }
    }
}

async fn connection(
    mut sock: TcpStream,
    first: Vec<u8>,
    peer: std::net::SocketAddr,
    slot: Slot,
    admin: Admin,
    limits: &AdminLimits,
    warn: &RateLimited,
) {
    let head = tokio::select! {
        r = tokio::time::timeout(limits.read_timeout, read_head(&mut sock, first, limits.head_bytes)) => r,
        () = slot.state.evict.notified() => {
            if let Some(skipped) = warn.allow() {
                tracing::warn!(%peer, max_connections = limits.max_connections, dropped_since_last_warning = skipped,
                    "admin connection still reading its request dropped for a new one (--admin-max-connections reached)");
            }
            return;
        }
    };
    slot.state.reading.store(false, Ordering::Relaxed);
    let head = match head {
        Ok(Ok(head)) => head,
        Ok(Err(HeadError::TooLarge)) => {
            if let Some(skipped) = warn.allow() {
                tracing::warn!(%peer, limit = limits.head_bytes, refused_since_last_warning = skipped, "admin request head too large");
            }
            let body = json!({"error": format!("request head over {} bytes", limits.head_bytes)})
                .to_string();
            write_response(&mut sock, limits, 431, JSON, &body).await;
            return;
        }
        Ok(Err(HeadError::Io)) => return,
        Err(_elapsed) => {
            if let Some(skipped) = warn.allow() {
                tracing::warn!(%peer, timeout_s = limits.read_timeout.as_secs(), refused_since_last_warning = skipped,
                    "admin request head not received in time; connection closed");
            }
            return;
        }
    };
    let req = String::from_utf8_lossy(&head);
    if let Some(host) = host_header(&req)
        && !host_allowed(host, &limits.allowed_hosts)
    {
        if let Some(skipped) = warn.allow() {
            tracing::warn!(%peer, host = %host.escape_debug(), refused_since_last_warning = skipped,
                "admin request refused: Host not allowed (--admin-allowed-hosts)");
        }
        let body = json!({"error": format!(
            "Host {host:?} is not allowed: the admin server answers IP addresses, localhost and the names given with --admin-allowed-hosts (protection against DNS rebinding)"
        )})
        .to_string();
        write_response(&mut sock, limits, 421, JSON, &body).await;
        return;
    }
    let target = req.split_whitespace().nth(1).unwrap_or("/").to_string();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target.clone(), String::new()),
    };
    let (code, content_type, body) = match static_route(&path) {
        Some(r) => r,
        // Status, dumps and metrics are built from the whole snapshot: off
        // the async workers, so a large one holds no other connection up.
        None => match tokio::task::spawn_blocking(move || route(&path, &query, &admin)).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "admin handler panicked");
                (500, JSON, Body::Static("{\"error\":\"internal error\"}"))
            }
        },
    };
    write_response(&mut sock, limits, code, content_type, body.as_str()).await;
}

/// What needs no state: the page's files and `/healthz`.
fn static_route(path: &str) -> Option<(u16, &'static str, Body)> {
    Some(match path {
        "/" | "/ui" | "/ui/" => (200, HTML, Body::Static(UI_HTML)),
        "/ui/app.js" => (200, JS, Body::Static(UI_JS)),
        "/ui/app.css" => (200, CSS, Body::Static(UI_CSS)),
        "/ui/icon.svg" | "/favicon.ico" => (200, SVG, Body::Static(UI_ICON)),
        "/healthz" => (200, JSON, Body::Static("{\"status\":\"ok\"}")),
        _ => return None,
    })
}

fn route(path: &str, query: &str, admin: &Admin) -> (u16, &'static str, Body) {
    match path {
        "/metrics" => (
            200,
            super::metrics::CONTENT_TYPE,
            Body::Owned({
                // This replica's own Envoys only (not its peers').
                let mut nodes = crate::status::view::current_status(&admin.state).nodes;
                nodes.retain(|n| n.replica.is_empty());
                admin.metrics.set_websockets(&nodes);
                admin.metrics.render()
            }),
        ),
        "/config_dump" => {
            let (code, body) = config_dump::config_dump(&admin.state, query_param(query, "proxy"));
            (code, JSON, Body::Owned(body))
        }
        "/routes" => {
            let (code, body) = served_routes(&admin.state);
            (code, JSON, Body::Owned(body))
        }
        _ => {
            let (code, body) = respond(path, admin);
            (code, JSON, Body::Owned(body))
        }
    }
}

async fn write_response(
    sock: &mut TcpStream,
    limits: &AdminLimits,
    code: u16,
    content_type: &str,
    body: &str,
) {
    let reason = match code {
        200 => "OK",
        404 => "Not Found",
        421 => "Misdirected Request",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        _ => "Service Unavailable",
    };
    // The page's script and styles are same-origin files, so the policy
    // can forbid everything else (inline script included).
    let csp = if content_type == HTML {
        "content-security-policy: default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'\r\n"
    } else {
        ""
    };
    let head = format!(
        "HTTP/1.1 {code} {reason}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\ncache-control: no-store\r\nx-content-type-options: nosniff\r\n{csp}connection: close\r\n\r\n",
        body.len()
    );
    let write = async {
        sock.write_all(head.as_bytes()).await?;
        sock.write_all(body.as_bytes()).await
    };
    let _ = tokio::time::timeout(limits.write_timeout, write).await;
}

/// The Host header's value, if any.
fn host_header(req: &str) -> Option<&str> {
    req.split("\r\n").skip(1).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("host")
            .then(|| value.trim())
    })
}

/// A Host a DNS-rebinding page cannot send: an IP literal (the page's
/// origin is then that address itself), `localhost` or a name under it,
/// or one of `allowed` (with or without its port).
fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        match rest.split_once(']') {
            Some((v6, _)) => v6,
            None => return false,
        }
    } else {
        match host.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => host,
        }
    };
    let lower = name.to_ascii_lowercase();
    let lower = lower.trim_end_matches('.');
    lower.parse::<std::net::IpAddr>().is_ok()
        || lower == "localhost"
        || lower.ends_with(".localhost")
        || allowed
            .iter()
            .any(|a| a.eq_ignore_ascii_case(host) || a.eq_ignore_ascii_case(lower))
}

fn respond(path: &str, admin: &Admin) -> (u16, String) {
    match path {
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
    let tables = routes.get();
    if let Some(e) = &tables.error {
        tracing::warn!(error = %e, "cannot explain the served routes");
    }
    json_body(&*tables)
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

#[cfg(test)]
mod limit_tests {
    use super::*;

    #[test]
    fn hosts() {
        let allowed = vec!["edgeplane.example.com".to_string(), "ops:9091".to_string()];
        for ok in [
            "127.0.0.1",
            "127.0.0.1:9091",
            "[::1]:9091",
            "10.1.2.3:9091",
            "localhost",
            "LOCALHOST:9091",
            "app.localhost:1",
            "edgeplane.example.com:9091",
            "ops:9091",
        ] {
            assert!(host_allowed(ok, &allowed), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:9091",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "ops:9092",
            "[::1",
        ] {
            assert!(!host_allowed(bad, &allowed), "{bad}");
        }
    }

    #[test]
    fn host_header_is_found_case_insensitively() {
        assert_eq!(
            host_header("GET / HTTP/1.1\r\nhOsT:  a.b:1 \r\n\r\n"),
            Some("a.b:1")
        );
        assert_eq!(host_header("GET / HTTP/1.0\r\n\r\n"), None);
    }

    fn now(a: Admit) -> Slot {
        match a {
            Admit::Now(s) => s,
            Admit::RetryIn(d) => panic!("retry in {d:?}"),
            Admit::WhenFreed => panic!("when freed"),
        }
    }

    #[tokio::test]
    async fn slots_evict_the_oldest_connection_still_reading() {
        let slots = Slots::new(2);
        let a = now(slots.try_admit());
        let b = now(slots.try_admit());
        a.state.reading.store(false, Ordering::Relaxed);
        // Full, and b is young: the next one waits.
        assert!(matches!(slots.try_admit(), Admit::RetryIn(d) if d <= EVICT_GRACE));
        tokio::time::sleep(EVICT_GRACE).await;
        // b has been reading for longer than the grace: it makes room.
        let c = now(slots.try_admit());
        assert_eq!(slots.live.lock().unwrap().len(), 2);
        let woke = b.state.evict.notified();
        tokio::pin!(woke);
        assert!(woke.as_mut().enable(), "b was told to go");
        // All answering: wait until one ends.
        c.state.reading.store(false, Ordering::Relaxed);
        assert!(matches!(slots.try_admit(), Admit::WhenFreed));
        drop(a);
        let d = tokio::time::timeout(Duration::from_secs(1), slots.admit()).await;
        assert!(d.is_ok());
    }
}
