//! Traffic through Envoy for the soak and resilience tests: WebSocket
//! clients that each send a message on a fixed period and wait for its
//! echo, and keep-alive HTTP/1.1 clients at a fixed total request rate.
//! Every failure is counted, none is retried: a WebSocket that closes, errs,
//! times out or echoes the wrong text is finished (and counted), an HTTP
//! request that fails, times out, answers non-2xx or reaches the wrong path
//! is counted.
//!
//! `Load::start` opens every WebSocket first (an upgrade that fails is a
//! setup error), then runs until `Load::stop`, which lets each client finish
//! the exchange in flight, closes the WebSockets from the client side (not
//! counted as a close) and returns the `LoadReport`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use super::Ws;

/// How long one echo or one HTTP request may take before it counts as
/// failed.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// What to run.
#[derive(Clone, Debug)]
pub struct LoadSpec {
    /// Envoy's listener port.
    pub port: u16,
    /// WebSocket clients; each connects to `<ws_path>/<n>`.
    pub ws_clients: usize,
    pub ws_path: String,
    /// Each client sends one message per period (and waits for its echo).
    pub ws_period: Duration,
    /// Keep-alive HTTP/1.1 connections, sharing `http_rate` requests/s.
    pub http_conns: usize,
    pub http_rate: f64,
    /// Paths requested in turn, each with `/<n>` appended; the backend
    /// answers `<name> GET <path>`, which is checked.
    pub http_paths: Vec<String>,
}

/// Live counters, readable while the load runs.
#[derive(Debug, Default)]
pub struct Counters {
    /// WebSockets currently open (connected and not failed).
    pub ws_open: AtomicU64,
    pub echoes_sent: AtomicU64,
    pub echoes_answered: AtomicU64,
    /// Close frame or end of stream from the server side.
    pub ws_closed: AtomicU64,
    /// Protocol or I/O errors on a WebSocket.
    pub ws_errors: AtomicU64,
    pub echo_timeouts: AtomicU64,
    pub echo_mismatches: AtomicU64,
    pub http_ok: AtomicU64,
    pub http_non2xx: AtomicU64,
    /// Connect, I/O, parse or timeout failures, and 2xx answers from the
    /// wrong path.
    pub http_failed: AtomicU64,
    /// Keep-alive connections the server closed (`connection: close` or
    /// end of stream after a response): not a failed request, but a sign
    /// of a drained listener.
    pub http_conn_closed: AtomicU64,
}

impl Counters {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Running load; `stop` ends it and reports.
pub struct Load {
    spec: LoadSpec,
    counters: Arc<Counters>,
    stop: watch::Sender<bool>,
    ws: Vec<JoinHandle<Vec<u32>>>,
    http: Vec<JoinHandle<HttpResult>>,
    started: Instant,
}

#[derive(Default)]
struct HttpResult {
    latencies_us: Vec<u32>,
    /// The first few non-2xx or failed requests, for the report.
    examples: Vec<String>,
}

/// What a run did. Durations in microseconds.
#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    pub duration: Duration,
    pub ws_clients: usize,
    pub ws_period: Duration,
    pub echoes_sent: u64,
    pub echoes_answered: u64,
    pub ws_closed: u64,
    pub ws_errors: u64,
    pub echo_timeouts: u64,
    pub echo_mismatches: u64,
    pub echo_p50_us: u32,
    pub echo_p99_us: u32,
    pub echo_max_us: u32,
    pub http_conns: usize,
    pub http_target_rate: f64,
    pub http_requests: u64,
    pub http_ok: u64,
    pub http_non2xx: u64,
    pub http_failed: u64,
    pub http_conn_closed: u64,
    pub http_p50_us: u32,
    pub http_p99_us: u32,
    pub http_max_us: u32,
    pub http_examples: Vec<String>,
}

impl LoadReport {
    /// Requests per second achieved over the whole run.
    pub fn http_rate(&self) -> f64 {
        self.http_requests as f64 / self.duration.as_secs_f64().max(1e-9)
    }

    /// Every way the run fell short of "nothing lost"; empty when clean.
    pub fn failures(&self) -> Vec<String> {
        let mut f = Vec::new();
        let mut check = |n: u64, what: &str| {
            if n > 0 {
                f.push(format!("{n} {what}"));
            }
        };
        check(self.ws_closed, "WebSockets closed by the server side");
        check(self.ws_errors, "WebSocket errors");
        check(self.echo_timeouts, "echoes timed out");
        check(self.echo_mismatches, "echoes with the wrong text");
        check(
            self.echoes_sent.saturating_sub(self.echoes_answered),
            "echoes unanswered",
        );
        check(self.http_non2xx, "non-2xx HTTP answers");
        check(self.http_failed, "failed HTTP requests");
        check(
            self.http_conn_closed,
            "keep-alive connections closed by Envoy",
        );
        if !self.http_examples.is_empty() {
            f.push(format!("examples: {:?}", self.http_examples));
        }
        f
    }

    /// One paragraph for the test output.
    pub fn summary(&self) -> String {
        format!(
            "{:.1} s: {} WebSockets every {} ms: {} echoes sent, {} answered (p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms), \
             {} closed, {} errors, {} timeouts, {} mismatches; HTTP over {} keep-alive connections: {} requests \
             ({:.0}/s, target {:.0}/s), {} 2xx, {} non-2xx, {} failed, {} connections closed by Envoy \
             (p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms)",
            self.duration.as_secs_f64(),
            self.ws_clients,
            self.ws_period.as_millis(),
            self.echoes_sent,
            self.echoes_answered,
            ms(self.echo_p50_us),
            ms(self.echo_p99_us),
            ms(self.echo_max_us),
            self.ws_closed,
            self.ws_errors,
            self.echo_timeouts,
            self.echo_mismatches,
            self.http_conns,
            self.http_requests,
            self.http_rate(),
            self.http_target_rate,
            self.http_ok,
            self.http_non2xx,
            self.http_failed,
            self.http_conn_closed,
            ms(self.http_p50_us),
            ms(self.http_p99_us),
            ms(self.http_max_us),
        )
    }
}

pub fn ms(us: u32) -> f64 {
    f64::from(us) / 1000.0
}

/// The `p`-th percentile (0..=100) of `v`, which it sorts; 0 when empty.
pub fn percentile(v: &mut [u32], p: f64) -> u32 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    let rank = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[rank.min(v.len() - 1)]
}

impl Load {
    /// Opens every WebSocket, then starts all clients.
    pub async fn start(spec: LoadSpec) -> Result<Load> {
        let counters = Arc::new(Counters::default());
        let (stop, stop_rx) = watch::channel(false);
        let mut sockets = Vec::with_capacity(spec.ws_clients);
        for i in 0..spec.ws_clients {
            let url = format!("ws://127.0.0.1:{}{}/{i}", spec.port, spec.ws_path);
            let (ws, _) = tokio::time::timeout(IO_TIMEOUT, tokio_tungstenite::connect_async(&url))
                .await
                .with_context(|| format!("WebSocket upgrade of {url} timed out"))?
                .with_context(|| format!("WebSocket upgrade of {url}"))?;
            sockets.push(ws);
        }
        let n = spec.ws_clients.max(1) as u32;
        let ws = sockets
            .into_iter()
            .enumerate()
            .map(|(i, ws)| {
                bump(&counters.ws_open);
                // Spread the clients over the period.
                let offset = spec.ws_period * i as u32 / n;
                tokio::spawn(ws_client(
                    i,
                    ws,
                    spec.ws_period,
                    offset,
                    counters.clone(),
                    stop_rx.clone(),
                ))
            })
            .collect();
        let per_conn = spec.http_rate / spec.http_conns.max(1) as f64;
        let http = if per_conn > 0.0 && !spec.http_paths.is_empty() {
            let period = Duration::from_secs_f64(1.0 / per_conn);
            (0..spec.http_conns)
                .map(|i| {
                    tokio::spawn(http_client(
                        i,
                        spec.port,
                        spec.http_paths.clone(),
                        period,
                        period * i as u32 / spec.http_conns as u32,
                        counters.clone(),
                        stop_rx.clone(),
                    ))
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok(Load {
            spec,
            counters,
            stop,
            ws,
            http,
            started: Instant::now(),
        })
    }

    /// Waits (bounded by `within`) until as many echoes as there are
    /// WebSockets have been answered (the clients are spread over one
    /// period) and `min_http` HTTP requests succeeded.
    pub async fn warm_up(&self, min_http: u64, within: Duration) -> Result<()> {
        let want = self.spec.ws_clients as u64;
        self.wait_for(within, "the load to warm up", |c| {
            Counters::get(&c.echoes_answered) >= want && Counters::get(&c.http_ok) >= min_http
        })
        .await
    }

    /// Waits until `more` echoes beyond those answered now have been
    /// answered (e.g. clients × periods: traffic kept flowing for that
    /// long), bounded by `within`.
    pub async fn wait_echoes(&self, more: u64, within: Duration) -> Result<()> {
        let target = Counters::get(&self.counters.echoes_answered) + more;
        self.wait_for(within, &format!("{more} more echoes"), |c| {
            Counters::get(&c.echoes_answered) >= target
        })
        .await
    }

    /// Echoes answered so far.
    pub fn echoes_answered(&self) -> u64 {
        Counters::get(&self.counters.echoes_answered)
    }

    /// Keeps the load running until `until` (the length of an
    /// experiment, not a wait for readiness).
    pub async fn run_until(&self, until: Instant) {
        while Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls `done`; fails at `within`, or at once when a WebSocket has
    /// failed (its echoes will never come).
    async fn wait_for(
        &self,
        within: Duration,
        what: &str,
        done: impl Fn(&Counters) -> bool,
    ) -> Result<()> {
        let end = Instant::now() + within;
        loop {
            if done(&self.counters) {
                return Ok(());
            }
            let open = Counters::get(&self.counters.ws_open);
            if open < self.spec.ws_clients as u64 && !*self.stop.borrow() {
                bail!(
                    "{} of {} WebSockets failed while waiting for {what}: {:?}",
                    self.spec.ws_clients as u64 - open,
                    self.spec.ws_clients,
                    self.counters
                );
            }
            if Instant::now() >= end {
                bail!(
                    "timed out after {within:?} waiting for {what}: {:?}",
                    self.counters
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops every client after its exchange in flight and reports.
    pub async fn stop(mut self) -> Result<LoadReport> {
        let _ = self.stop.send(true);
        let duration = self.started.elapsed();
        let mut echo = Vec::new();
        for h in std::mem::take(&mut self.ws) {
            echo.extend(
                tokio::time::timeout(IO_TIMEOUT * 2, h)
                    .await
                    .context("a WebSocket client did not stop")?
                    .context("a WebSocket client panicked")?,
            );
        }
        let mut http = Vec::new();
        let mut examples = Vec::new();
        for h in std::mem::take(&mut self.http) {
            let r = tokio::time::timeout(IO_TIMEOUT * 2, h)
                .await
                .context("an HTTP client did not stop")?
                .context("an HTTP client panicked")?;
            http.extend(r.latencies_us);
            examples.extend(r.examples);
        }
        examples.truncate(5);
        let c = &self.counters;
        let g = Counters::get;
        let ok = g(&c.http_ok);
        let non2xx = g(&c.http_non2xx);
        let failed = g(&c.http_failed);
        Ok(LoadReport {
            duration,
            ws_clients: self.spec.ws_clients,
            ws_period: self.spec.ws_period,
            echoes_sent: g(&c.echoes_sent),
            echoes_answered: g(&c.echoes_answered),
            ws_closed: g(&c.ws_closed),
            ws_errors: g(&c.ws_errors),
            echo_timeouts: g(&c.echo_timeouts),
            echo_mismatches: g(&c.echo_mismatches),
            echo_p50_us: percentile(&mut echo, 50.0),
            echo_p99_us: percentile(&mut echo, 99.0),
            echo_max_us: percentile(&mut echo, 100.0),
            http_conns: self.spec.http_conns,
            http_target_rate: self.spec.http_rate,
            http_requests: ok + non2xx + failed,
            http_ok: ok,
            http_non2xx: non2xx,
            http_failed: failed,
            http_conn_closed: g(&c.http_conn_closed),
            http_p50_us: percentile(&mut http, 50.0),
            http_p99_us: percentile(&mut http, 99.0),
            http_max_us: percentile(&mut http, 100.0),
            http_examples: examples,
        })
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        for h in &self.ws {
            h.abort();
        }
        for h in &self.http {
            h.abort();
        }
    }
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

enum Echo {
    Text(String),
    Closed,
    Error,
}

/// The next text message (pings and pongs are skipped).
async fn next_text(ws: &mut Ws) -> Echo {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return Echo::Text(t.as_str().to_string()),
            Some(Ok(Message::Close(_))) | None => return Echo::Closed,
            Some(Ok(_)) => {}
            Some(Err(_)) => return Echo::Error,
        }
    }
}

/// One WebSocket: a message every `period` (after `offset`), each waited
/// for; returns the round trips in µs.
async fn ws_client(
    id: usize,
    mut ws: Ws,
    period: Duration,
    offset: Duration,
    c: Arc<Counters>,
    mut stop: watch::Receiver<bool>,
) -> Vec<u32> {
    let mut lat = Vec::new();
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq = 0u64;
    let failed = loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break None,
        }
        if *stop.borrow() {
            break None;
        }
        let text = format!("client {id} message {seq}");
        seq += 1;
        bump(&c.echoes_sent);
        let t = Instant::now();
        if ws.send(Message::text(text.clone())).await.is_err() {
            break Some(&c.ws_errors);
        }
        match tokio::time::timeout(IO_TIMEOUT, next_text(&mut ws)).await {
            Err(_) => break Some(&c.echo_timeouts),
            Ok(Echo::Closed) => break Some(&c.ws_closed),
            Ok(Echo::Error) => break Some(&c.ws_errors),
            Ok(Echo::Text(got)) if got != text => break Some(&c.echo_mismatches),
            Ok(Echo::Text(_)) => {
                bump(&c.echoes_answered);
                lat.push(micros(t.elapsed()));
            }
        }
    };
    c.ws_open.fetch_sub(1, Ordering::Relaxed);
    match failed {
        Some(counter) => bump(counter),
        None => {
            // Our own close: not counted.
            let _ = tokio::time::timeout(IO_TIMEOUT, ws.close(None)).await;
        }
    }
    lat
}

/// A keep-alive HTTP/1.1 connection and what it has read ahead.
struct Conn {
    sock: TcpStream,
    buf: Vec<u8>,
}

enum Outcome {
    /// Status, body, and whether the server closes the connection.
    Response(u16, String, bool),
    Failed(String),
}

impl Conn {
    async fn open(port: u16) -> std::io::Result<Conn> {
        let sock = TcpStream::connect(("127.0.0.1", port)).await?;
        sock.set_nodelay(true)?;
        Ok(Conn {
            sock,
            buf: Vec::with_capacity(4096),
        })
    }

    async fn fill(&mut self) -> std::io::Result<bool> {
        let mut chunk = [0u8; 4096];
        let n = self.sock.read(&mut chunk).await?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    async fn get(&mut self, path: &str) -> Outcome {
        let req = format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n");
        if let Err(e) = self.sock.write_all(req.as_bytes()).await {
            return Outcome::Failed(format!("write: {e}"));
        }
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match self.fill().await {
                Ok(true) => {}
                Ok(false) => return Outcome::Failed("connection closed before a response".into()),
                Err(e) => return Outcome::Failed(format!("read: {e}")),
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        self.buf.drain(..head_end);
        let Some(status) = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
        else {
            return Outcome::Failed(format!("bad status line: {head:?}"));
        };
        let header = |name: &str| {
            head.lines().skip(1).find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_ascii_lowercase())
            })
        };
        let close = header("connection").is_some_and(|v| v == "close");
        let body = if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            match self.read_chunked().await {
                Ok(b) => b,
                Err(e) => return Outcome::Failed(e),
            }
        } else {
            let len = header("content-length")
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            while self.buf.len() < len {
                match self.fill().await {
                    Ok(true) => {}
                    Ok(false) => return Outcome::Failed("connection closed in a body".into()),
                    Err(e) => return Outcome::Failed(format!("read: {e}")),
                }
            }
            self.buf.drain(..len).collect()
        };
        Outcome::Response(status, String::from_utf8_lossy(&body).into_owned(), close)
    }

    async fn read_chunked(&mut self) -> Result<Vec<u8>, String> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                    break i;
                }
                if !self.fill().await.map_err(|e| format!("read: {e}"))? {
                    return Err("connection closed in a chunk".into());
                }
            };
            let line = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| format!("bad chunk size {line:?}"))?;
            self.buf.drain(..line_end + 2);
            // The chunk and its CRLF (for the last chunk: the final CRLF,
            // no trailers expected).
            while self.buf.len() < size + 2 {
                if !self.fill().await.map_err(|e| format!("read: {e}"))? {
                    return Err("connection closed in a chunk".into());
                }
            }
            body.extend(self.buf.drain(..size));
            self.buf.drain(..2);
            if size == 0 {
                return Ok(body);
            }
        }
    }
}

/// One keep-alive connection at a fixed request period: paths in turn.
async fn http_client(
    id: usize,
    port: u16,
    paths: Vec<String>,
    period: Duration,
    offset: Duration,
    c: Arc<Counters>,
    mut stop: watch::Receiver<bool>,
) -> HttpResult {
    let mut out = HttpResult::default();
    let mut conn: Option<Conn> = None;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
    // An open-loop rate: late ticks are caught up.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut n = 0usize;
    let fail = |out: &mut HttpResult, counter: &AtomicU64, what: String| {
        bump(counter);
        if out.examples.len() < 5 {
            out.examples.push(what);
        }
    };
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
        let path = format!("{}/{id}-{n}", paths[n % paths.len()]);
        n += 1;
        let t = Instant::now();
        let result = tokio::time::timeout(IO_TIMEOUT, async {
            if conn.is_none() {
                conn = Some(
                    Conn::open(port)
                        .await
                        .map_err(|e| format!("connect: {e}"))?,
                );
            }
            match conn.as_mut() {
                Some(cn) => Ok(cn.get(&path).await),
                None => Err("no connection".to_string()),
            }
        })
        .await;
        let outcome = match result {
            Err(_) => Outcome::Failed(format!("timed out after {IO_TIMEOUT:?}")),
            Ok(Err(e)) => Outcome::Failed(e),
            Ok(Ok(o)) => o,
        };
        match outcome {
            Outcome::Failed(e) => {
                conn = None;
                fail(&mut out, &c.http_failed, format!("GET {path}: {e}"));
            }
            Outcome::Response(status, body, close) => {
                out.latencies_us.push(micros(t.elapsed()));
                if close {
                    conn = None;
                    bump(&c.http_conn_closed);
                }
                let want = format!(" GET {path}\n");
                if !(200..300).contains(&status) {
                    fail(
                        &mut out,
                        &c.http_non2xx,
                        format!("GET {path}: {status} {body:?}"),
                    );
                } else if !body.ends_with(&want) {
                    fail(
                        &mut out,
                        &c.http_failed,
                        format!("GET {path}: {status} from the wrong place: {body:?}"),
                    );
                } else {
                    bump(&c.http_ok);
                }
            }
        }
    }
    out
}
