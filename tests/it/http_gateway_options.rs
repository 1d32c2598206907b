//! `httpGateway.options` `gzip`, `healthCheck`, `csrf`, `grpcWeb` and the
//! connection manager's `tracing`, through real Envoy, without a NACK:
//!
//! - gzip (`projects/gloo/pkg/plugins/gzip/plugin.go`: Envoy's compressor
//!   with the gzip library): a large text response is gzip-encoded for a
//!   client that accepts it, and decodes to the original bytes; a client
//!   that does not gets it as is.
//! - healthCheck (`projects/gloo/pkg/plugins/healthcheck/plugin.go`: no
//!   pass-through, exact `:path`): Envoy answers 200 itself, the backend
//!   never sees the path, Envoy's `health_check` stats count it.
//! - csrf (`projects/gloo/pkg/plugins/csrf/plugin.go`, `HttpFilters`): the
//!   listener's filter enforces the Gateway's policy, a cross-origin POST is
//!   refused 403.
//! - grpcWeb (`projects/gloo/pkg/plugins/grpcweb/plugin.go`): on by
//!   default, so Envoy holds the filter.
//! - tracing (`projects/gloo/pkg/plugins/tracing/plugin.go`): Zipkin to a
//!   collector Upstream; a request's span is POSTed to
//!   `/api/v2/spans` of a loopback collector the test runs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::*;

/// One request a `Tiny` server answered: method, path, body.
type Seen = Arc<Mutex<Vec<(String, String, Vec<u8>)>>>;

/// A loopback HTTP/1.1 server answering every request with `status`, a
/// fixed `text/plain` body, recording what it was asked (keep-alive, as
/// Envoy's upstream connections are).
struct Tiny {
    port: u16,
    seen: Seen,
    task: tokio::task::JoinHandle<()>,
}

impl Tiny {
    async fn start(status: &'static str, body: Arc<Vec<u8>>) -> Tiny {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind tiny");
        let port = l.local_addr().expect("tiny addr").port();
        let seen: Seen = Arc::default();
        let rec = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = l.accept().await {
                tokio::spawn(serve(sock, status, body.clone(), rec.clone()));
            }
        });
        Tiny { port, seen, task }
    }

    fn paths(&self) -> Vec<(String, String, Vec<u8>)> {
        self.seen.lock().expect("seen lock").clone()
    }
}

impl Drop for Tiny {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut sock: TcpStream, status: &'static str, body: Arc<Vec<u8>>, seen: Seen) {
    let mut buf = Vec::new();
    loop {
        let Some((head, req_body, used)) = (loop {
            if let Some(r) = parse_request(&buf) {
                break Some(r);
            }
            let mut chunk = [0u8; 16 * 1024];
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => break None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }) else {
            return;
        };
        buf.drain(..used);
        let mut first = head.lines().next().unwrap_or("").split_whitespace();
        let method = first.next().unwrap_or("").to_string();
        let path = first.next().unwrap_or("").to_string();
        seen.lock()
            .expect("seen lock")
            .push((method, path, req_body));
        let resp = format!(
            "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        if sock.write_all(resp.as_bytes()).await.is_err() || sock.write_all(&body).await.is_err() {
            return;
        }
    }
}

/// A whole request in `buf`: (head, body, bytes used); `None` until it is
/// complete. Bodies by `content-length` or chunked.
fn parse_request(buf: &[u8]) -> Option<(String, Vec<u8>, usize)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let lower = head.to_ascii_lowercase();
    let rest = &buf[end..];
    if let Some(len) = lower.lines().find_map(|l| {
        l.strip_prefix("content-length:")?
            .trim()
            .parse::<usize>()
            .ok()
    }) {
        return (rest.len() >= len).then(|| (head, rest[..len].to_vec(), end + len));
    }
    if lower.contains("transfer-encoding: chunked") {
        let (body, used) = dechunk(rest)?;
        return Some((head, body, end + used));
    }
    Some((head, Vec::new(), end))
}

/// A chunked body from the start of `b`: (body, bytes used), `None` while
/// incomplete.
fn dechunk(b: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        let line_end = at + b[at..].windows(2).position(|w| w == b"\r\n")?;
        let size_text = String::from_utf8_lossy(&b[at..line_end]).to_string();
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        at = line_end + 2;
        if size == 0 {
            // The last chunk, then (no trailers) the final CRLF.
            return (b.len() >= at + 2).then_some((out, at + 2));
        }
        if b.len() < at + size + 2 {
            return None;
        }
        out.extend_from_slice(&b[at..at + size]);
        at += size + 2;
    }
}

/// Sends `req` (with `connection: close`) and reads the whole response:
/// (status, lowercased head, body bytes with chunking undone). Bounded.
async fn request(port: u16, req: &str) -> Result<(u16, String, Vec<u8>)> {
    let io = async {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
        s.write_all(req.as_bytes()).await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        anyhow::Ok(buf)
    };
    let buf = tokio::time::timeout(Duration::from_secs(10), io)
        .await
        .context("response within 10 s")??;
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("a response head")?
        + 4;
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("a status")?;
    let body = if head.contains("transfer-encoding: chunked") {
        dechunk(&buf[end..]).context("a whole chunked body")?.0
    } else {
        buf[end..].to_vec()
    };
    Ok((status, head, body))
}

/// gunzip by the system's `gzip -dc` (no inflate crate in the tree).
fn gunzip(data: &[u8]) -> Result<Vec<u8>> {
    use std::io::Write;
    let mut child = std::process::Command::new("gzip")
        .arg("-dc")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("run gzip -dc")?;
    child.stdin.take().context("gzip stdin")?.write_all(data)?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("gzip -dc failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(out.stdout)
}

fn gateway(port: u16) -> String {
    format!(
        "apiVersion: gateway.solo.io/v1
kind: Gateway
metadata:
  name: gw
  namespace: gloo-system
spec:
  bindAddress: 127.0.0.1
  bindPort: {port}
  httpGateway:
    options:
      gzip:
        compressionLevel: SPEED
      healthCheck:
        path: /healthz
      csrf:
        filterEnabled:
          defaultValue:
            numerator: 100
      httpConnectionManagerSettings:
        tracing:
          requestHeadersForTags: [x-user]
          zipkinConfig:
            collectorUpstreamRef:
              name: zipkin
              namespace: gloo-system
            collectorEndpoint: /api/v2/spans
            collectorEndpointVersion: HTTP_JSON
"
    )
}

fn routes() -> String {
    format!("{}{}", route("/plain", "b1", ""), route("/", "big", ""))
}

/// Every option at once on one Gateway; each checked by what Envoy does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_health_check_csrf_and_zipkin_tracing_through_envoy() -> Result<()> {
    // Compressible and large: far above the compressor's 30-byte minimum.
    let text: Vec<u8> = (0..4000)
        .flat_map(|i| {
            format!("line {i}: the quick brown fox jumps over the lazy dog\n").into_bytes()
        })
        .collect();
    let big = Tiny::start("200 OK", Arc::new(text.clone())).await;
    let collector = Tiny::start("202 Accepted", Arc::new(Vec::new())).await;
    let (big_port, collector_port) = (big.port, collector.port);
    let s = Stack::serving(|port, backend| {
        vec![
            ("gw.yaml", gateway(port)),
            ("b1.yaml", upstream("b1", &[backend])),
            ("big.yaml", upstream("big", &[big_port])),
            ("zipkin.yaml", upstream("zipkin", &[collector_port])),
            ("vs.yaml", virtual_service(&routes())),
        ]
    })
    .await;
    assert_eq!(
        s.envoy.stat("listener_manager.lds.update_rejected").await,
        Some(0),
        "{}",
        s.logs()
    );
    assert_eq!(
        s.envoy
            .stat("cluster_manager.cds.update_rejected")
            .await
            .unwrap_or(0),
        0
    );
    assert_eq!(
        s.envoy
            .stat(&s.rds_stat("update_rejected"))
            .await
            .unwrap_or(0),
        0
    );

    // Envoy holds Gloo's filters, gRPC-Web among them (on by default).
    let dump = s.envoy.config_dump().await.to_string();
    for f in [
        "envoy.filters.http.compressor",
        "envoy.filters.http.grpc_web",
        "envoy.filters.http.health_check",
        "envoy.tracers.zipkin",
    ] {
        assert!(dump.contains(f), "config_dump lacks {f}");
    }

    // gzip: encoded for a client that accepts it, and the same bytes back.
    let (code, head, body) = request(
        s.port,
        "GET /big HTTP/1.1\r\nhost: 127.0.0.1\r\naccept-encoding: gzip\r\nconnection: close\r\n\r\n",
    )
    .await?;
    assert_eq!(code, 200, "{head}");
    assert!(head.contains("content-encoding: gzip"), "{head}");
    assert!(
        body.len() < text.len() / 4,
        "compressed to {} bytes",
        body.len()
    );
    assert_eq!(gunzip(&body)?, text, "gzip body decodes to the original");
    // Not without `accept-encoding: gzip`.
    let (code, head, body) = request(
        s.port,
        "GET /big HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n",
    )
    .await?;
    assert_eq!(code, 200);
    assert!(!head.contains("content-encoding"), "{head}");
    assert_eq!(body, text);

    // healthCheck: Envoy answers itself; the `/` route would have sent it on.
    let before = big.paths().len();
    let (code, head, _) = request(
        s.port,
        "GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n",
    )
    .await?;
    assert_eq!(code, 200, "{head}");
    assert!(
        !big.paths().iter().any(|(_, p, _)| p == "/healthz"),
        "the health check reached the backend"
    );
    assert_eq!(big.paths().len(), before);
    let hc = eventually("health_check request_total counts it", || async {
        s.envoy
            .stat("http.http.health_check.request_total")
            .await
            .filter(|n| *n >= 1)
    })
    .await;
    assert!(hc >= 1);
    // A neighbour of the path is not the health check (exact match).
    let (code, _, _) = request(
        s.port,
        "GET /healthz/more HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n",
    )
    .await?;
    assert_eq!(code, 200);
    assert!(big.paths().iter().any(|(_, p, _)| p == "/healthz/more"));

    // csrf: the listener's policy (100%) refuses a cross-origin POST...
    let (code, head, body) = request(
        s.port,
        "POST /big HTTP/1.1\r\nhost: 127.0.0.1\r\norigin: http://evil.example\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    )
    .await?;
    assert_eq!(code, 403, "{head}{}", String::from_utf8_lossy(&body));
    assert!(!big.paths().iter().any(|(m, _, _)| m == "POST"));
    // ...and lets a same-origin one through.
    let (code, _, _) = request(
        s.port,
        &format!(
            "POST /big HTTP/1.1\r\nhost: 127.0.0.1:{p}\r\norigin: http://127.0.0.1:{p}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            p = s.port
        ),
    )
    .await?;
    assert_eq!(code, 200);

    // tracing: a traced request's span reaches the collector (Envoy's
    // Zipkin tracer flushes on a timer, 5 s by default).
    let (code, _, _) = request(
        s.port,
        "GET /plain/traced HTTP/1.1\r\nhost: 127.0.0.1\r\nx-user: ana\r\nconnection: close\r\n\r\n",
    )
    .await?;
    assert_eq!(code, 200);
    let spans = eventually("a span POSTed to /api/v2/spans", || async {
        collector
            .paths()
            .into_iter()
            .filter(|(m, p, _)| m == "POST" && p == "/api/v2/spans")
            .map(|(_, _, b)| String::from_utf8_lossy(&b).to_string())
            .find(|b| b.contains("/plain/traced"))
    })
    .await;
    let json: serde_json::Value =
        serde_json::from_str(&spans).with_context(|| format!("Zipkin v2 JSON: {spans}"))?;
    let span = json
        .as_array()
        .into_iter()
        .flatten()
        .find(|sp| sp.to_string().contains("/plain/traced"))
        .context("the traced request's span")?;
    // requestHeadersForTags: the header's value under its name.
    assert_eq!(span["tags"]["x-user"], "ana", "{span}");
    Ok(())
}
