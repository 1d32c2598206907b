//! The xDS port under a hostile client: thousands of streams on one HTTP/2
//! connection, more connections than allowed, an oversized request. The
//! hostile side speaks raw HTTP/2 frames where a well-behaved client
//! library would hide the refusal (tonic's client queues streams over the
//! server's SETTINGS_MAX_CONCURRENT_STREAMS instead of sending them).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

/// A manifests dir, edgeplane (with extra `serve` flags), the demo backend
/// and one real Envoy serving `GET /plain` through edgeplane's config.
pub(crate) struct Hostile {
    _tmp: tempfile::TempDir,
    pub dir: PathBuf,
    pub port: u16,
    pub backend: Backend,
    pub cp: ControlPlane,
    pub envoy: Envoy,
    edits: u32,
    /// One hostile test at a time: each measures latency and RSS, which
    /// the others' load would blur on a small machine.
    _alone: tokio::sync::MutexGuard<'static, ()>,
}

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl Hostile {
    pub async fn start(extra: &[&str]) -> Hostile {
        let alone = ONE_AT_A_TIME.lock().await;
        let port = free_port();
        let backend = Backend::start("b1").await;
        let (tmp, dir) = manifests_dir(&files(port, backend.port, &[]));
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let cp = ControlPlane::start_with_args(&dir, 0, tmp.path(), &extra).await;
        let envoy = Envoy::start(cp.xds_port, "test-node", tmp.path()).await;
        cp.wait_connected_in_mode("test-node").await;
        envoy.wait_serving(port, "/plain").await;
        Hostile {
            _tmp: tmp,
            dir,
            port,
            backend,
            cp,
            envoy,
            edits: 0,
            _alone: alone,
        }
    }

    /// Adds a route `/edit-N` and asserts the real Envoy serves it within
    /// one second of the write.
    pub async fn assert_edit_within_1s(&mut self) {
        self.edits += 1;
        let prefixes: Vec<String> = (1..=self.edits).map(|n| format!("/edit-{n}")).collect();
        let refs: Vec<&str> = prefixes.iter().map(String::as_str).collect();
        let path = format!("/edit-{}", self.edits);
        let started = Instant::now();
        for (name, text) in files(self.port, self.backend.port, &refs) {
            write_atomic(&self.dir, name, &text);
        }
        let port = self.port;
        let r = poll(
            &format!("Envoy serves {path} within 1 s of the edit"),
            Duration::from_secs(1),
            Duration::from_millis(10),
            || {
                let path = path.clone();
                async move { http_get(port, &path).await.filter(|(code, _)| *code == 200) }
            },
        )
        .await;
        if let Err(e) = r {
            panic!("{e} ({:?})\n{}", started.elapsed(), self.logs());
        }
    }

    /// edgeplane's resident memory (kB), from /proc.
    pub fn rss_kb(&self) -> u64 {
        let pid = edgeplane_pid(self.cp.admin_port).expect("edgeplane's pid");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .expect("VmRSS")
    }

    pub fn assert_rss_under_mib(&self, mib: u64, what: &str) {
        let kb = self.rss_kb();
        eprintln!("edgeplane VmRSS {kb} kB after {what} (bound {mib} MiB)");
        assert!(
            kb < mib * 1024,
            "edgeplane's RSS {} MiB is over {mib} MiB after {what}",
            kb / 1024
        );
    }

    pub fn logs(&self) -> String {
        self.cp.logs_with(&self.envoy.log_text())
    }
}

/// The process `edgeplane serve` whose admin address is on `admin_port`.
fn edgeplane_pid(admin_port: u16) -> Option<u32> {
    let want = format!("127.0.0.1:{admin_port}");
    std::fs::read_dir("/proc").ok()?.find_map(|e| {
        let e = e.ok()?;
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
        let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
        (args.contains(&&b"serve"[..]) && args.contains(&want.as_bytes())).then_some(pid)
    })
}

/// Gateway, upstream, and a VirtualService with `/plain` and `extra`
/// prefixes, all to the backend.
fn files(port: u16, backend_port: u16, extra: &[&str]) -> Vec<(&'static str, String)> {
    let mut routes = route("/plain", "backend", "");
    for p in extra {
        routes.push_str(&route(p, "backend", ""));
    }
    vec![
        ("gateway.yaml", gateway(port, "")),
        ("upstream.yaml", upstream("backend", &[backend_port])),
        ("vs.yaml", virtual_service(&routes)),
    ]
}

// === raw HTTP/2 ===

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const SOTW_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// HPACK, literal and uncompressed: a gRPC POST to `path`.
fn grpc_headers(path: &str) -> Vec<u8> {
    let mut h = vec![0x83, 0x86]; // :method POST, :scheme http (static table)
    h.push(0x04); // :path, literal without indexing, name index 4
    h.push(path.len() as u8);
    h.extend_from_slice(path.as_bytes());
    h.push(0x01); // :authority, name index 1
    h.push(9);
    h.extend_from_slice(b"localhost");
    h.extend_from_slice(&[0x0f, 0x10]); // content-type, name index 31
    h.push(16);
    h.extend_from_slice(b"application/grpc");
    h.push(0x00); // te: trailers, new name
    h.push(2);
    h.extend_from_slice(b"te");
    h.push(8);
    h.extend_from_slice(b"trailers");
    h
}

/// What the server sent on a raw HTTP/2 connection.
#[derive(Debug, Default)]
struct Seen {
    /// RST_STREAM frames with REFUSED_STREAM.
    refused: u32,
    /// SETTINGS_MAX_CONCURRENT_STREAMS, if announced.
    max_streams: Option<u32>,
    /// GOAWAY's error code.
    goaway: Option<u32>,
}

/// Reads frames until `stop` says so, a GOAWAY, EOF, or nothing arrives
/// for `quiet`; never longer than `within`.
async fn read_frames(
    sock: &mut TcpStream,
    quiet: Duration,
    within: Duration,
    mut stop: impl FnMut(&Seen) -> bool,
) -> Seen {
    let mut buf = Vec::new();
    let mut seen = Seen::default();
    let end = Instant::now() + within;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        while buf.len() >= 9 {
            let len =
                (usize::from(buf[0]) << 16) | (usize::from(buf[1]) << 8) | usize::from(buf[2]);
            if buf.len() < 9 + len {
                break;
            }
            let kind = buf[3];
            let payload = &buf[9..9 + len];
            let word = |at: usize| {
                payload
                    .get(at..at + 4)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            };
            match kind {
                3 if word(0) == Some(7) => seen.refused += 1,
                4 if buf[4] & 1 == 0 => {
                    for s in payload.chunks_exact(6) {
                        if u16::from_be_bytes([s[0], s[1]]) == 3 {
                            seen.max_streams = Some(u32::from_be_bytes([s[2], s[3], s[4], s[5]]));
                        }
                    }
                }
                7 => seen.goaway = word(4),
                _ => {}
            }
            buf.drain(..9 + len);
        }
        if stop(&seen) || seen.goaway.is_some() || Instant::now() >= end {
            return seen;
        }
        match tokio::time::timeout(quiet, sock.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return seen,
        }
    }
}

/// A raw connection that sent `streams` ADS stream openings at once,
/// without waiting for the server's SETTINGS: a client that ignores the
/// limit.
async fn open_streams(port: u16, streams: u32) -> TcpStream {
    let mut sock = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let mut out = PREFACE.to_vec();
    out.extend(frame(4, 0, 0, &[])); // SETTINGS
    let headers = grpc_headers(SOTW_PATH);
    for i in 0..streams {
        out.extend(frame(1, 0x4, 1 + 2 * i, &headers)); // HEADERS, END_HEADERS
    }
    sock.write_all(&out).await.expect("send streams");
    sock
}

/// `edgeplane_xds_streams` summed over modes, from `/metrics`.
async fn open_ads_streams(cp: &ControlPlane) -> u64 {
    let (_, text) = cp.admin_get("/metrics").await.expect("/metrics");
    text.lines()
        .filter(|l| l.starts_with("edgeplane_xds_streams{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_streams_on_one_connection_are_refused_over_the_limit() {
    let mut h = Hostile::start(&[]).await;
    let before = open_ads_streams(&h.cp).await;
    // 1000 streams: 100 run, 900 are refused, the connection stays.
    let mut sock = open_streams(h.cp.xds_port, 1000).await;
    let seen = read_frames(
        &mut sock,
        Duration::from_secs(2),
        Duration::from_secs(20),
        |s| s.refused >= 900,
    )
    .await;
    assert_eq!(
        seen.max_streams,
        Some(100),
        "the server announces --max-streams-per-connection"
    );
    assert_eq!(seen.goaway, None, "900 refusals do not end the connection");
    assert_eq!(
        seen.refused, 900,
        "every stream over 100 is refused (REFUSED_STREAM)"
    );
    let open = eventually("the 100 accepted streams open sessions", || async {
        let n = open_ads_streams(&h.cp).await;
        (n >= before + 100).then_some(n)
    })
    .await;
    assert_eq!(
        open,
        before + 100,
        "no more than 100 streams run on the connection"
    );
    h.assert_edit_within_1s().await;

    // 3000 more on a second connection: after 1024 refusals the client is
    // told to calm down (GOAWAY ENHANCE_YOUR_CALM) and the connection ends.
    let mut second = open_streams(h.cp.xds_port, 3000).await;
    let seen = read_frames(
        &mut second,
        Duration::from_secs(2),
        Duration::from_secs(20),
        |_| false,
    )
    .await;
    assert_eq!(seen.goaway, Some(11), "GOAWAY ENHANCE_YOUR_CALM: {seen:?}");
    assert!(
        (900..=1024).contains(&seen.refused),
        "refused until the budget ran out: {seen:?}"
    );
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), second.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the connection is closed after GOAWAY");
    h.assert_rss_under_mib(80, "4000 streams on two connections");
    h.assert_edit_within_1s().await;
    drop(sock);
    h.assert_edit_within_1s().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_max_connections_are_closed_at_once() {
    // Envoy holds one connection; 50 in all.
    let mut h = Hostile::start(&["--max-connections", "50"]).await;
    let mut socks = Vec::new();
    let (mut kept, mut closed) = (0u32, 0u32);
    for _ in 0..300 {
        let mut s = TcpStream::connect(("127.0.0.1", h.cp.xds_port))
            .await
            .expect("the kernel accepts the TCP connection");
        let mut out = PREFACE.to_vec();
        out.extend(frame(4, 0, 0, &[]));
        let _ = s.write_all(&out).await;
        // An accepted connection gets the server's SETTINGS; a refused one
        // is closed at once (EOF or reset).
        let mut first = [0u8; 9];
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut first)).await {
            Ok(Ok(n)) if n > 0 => {
                kept += 1;
                socks.push(s);
            }
            Ok(_) => closed += 1,
            Err(_) => panic!("neither served nor closed within 5 s\n{}", h.logs()),
        }
    }
    // Envoy holds one or two (ADS, stats sink) of the 50.
    assert!(
        (47..=49).contains(&kept),
        "{kept} hostile connections kept next to Envoy's"
    );
    assert_eq!(closed, 300 - kept);
    let log = h.cp.log_text();
    assert!(
        log.contains("xDS connection refused: --max-connections reached")
            && log.contains("peer=127.0.0.1:"),
        "a WARN naming the peer\n{log}"
    );
    h.assert_rss_under_mib(80, "300 connections");
    h.assert_edit_within_1s().await;
    // Closing them gives the room back: a real ADS client connects.
    drop(socks);
    let url = format!("http://127.0.0.1:{}", h.cp.xds_port);
    eventually("an ADS client connects once the hostile ones left", || {
        let url = url.clone();
        async move { AggregatedDiscoveryServiceClient::connect(url).await.ok() }
    })
    .await;
    h.assert_edit_within_1s().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_request_gets_resource_exhausted() {
    let mut h = Hostile::start(&[]).await;
    let url = format!("http://127.0.0.1:{}", h.cp.xds_port);
    let mut client = AggregatedDiscoveryServiceClient::connect(url)
        .await
        .expect("connect")
        .max_encoding_message_size(usize::MAX);
    // A 16 MiB node id, over the default 4 MiB, ten times on ten streams.
    for _ in 0..10 {
        let req = DiscoveryRequest {
            node: Some(Node {
                id: "x".repeat(16 << 20),
                ..Node::default()
            }),
            type_url: "type.googleapis.com/envoy.config.cluster.v3.Cluster".into(),
            ..DiscoveryRequest::default()
        };
        let outbound = tokio_stream::iter(vec![req]);
        let r = tokio::time::timeout(Duration::from_secs(10), async {
            let mut inbound = client
                .stream_aggregated_resources(outbound)
                .await?
                .into_inner();
            loop {
                if inbound.message().await?.is_none() {
                    return Ok::<(), tonic::Status>(());
                }
            }
        })
        .await
        .expect("answered within 10 s");
        let status = r.expect_err("an oversized request is refused");
        assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
        assert!(
            status.message().contains("--max-request-bytes"),
            "{status:?}"
        );
    }
    let log = h.cp.log_text();
    assert!(
        log.contains("gRPC request over --max-request-bytes refused")
            && log.contains("peer=127.0.0.1:"),
        "a WARN naming the peer\n{log}"
    );
    // Ten 16 MiB requests would be 160 MiB buffered (twice that decoded);
    // edgeplane idles at about 40 MiB.
    h.assert_rss_under_mib(80, "ten 16 MiB requests");
    h.assert_edit_within_1s().await;
}

/// The status API (unary) and the stats sink (client streaming) refuse an
/// oversized message the same way ADS does; the message's own type does
/// not matter, the refusal comes from the gRPC frame header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_api_and_stats_sink_refuse_oversized_requests() {
    let mut h = Hostile::start(&["--max-request-bytes", "1MiB"]).await;
    let url = format!("http://127.0.0.1:{}", h.cp.xds_port);
    let big = || DiscoveryRequest {
        node: Some(Node {
            id: "x".repeat(2 << 20),
            ..Node::default()
        }),
        ..DiscoveryRequest::default()
    };
    let channel = tonic::transport::Endpoint::from_shared(url)
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let codec = || tonic_prost::ProstCodec::<DiscoveryRequest, DiscoveryRequest>::default();
    for path in [
        "/edgeplane.v1.StatusService/GetStatus",
        "/envoy.service.metrics.v3.MetricsService/StreamMetrics",
    ] {
        let mut grpc =
            tonic::client::Grpc::new(channel.clone()).max_encoding_message_size(usize::MAX);
        grpc.ready().await.expect("ready");
        let path = http::uri::PathAndQuery::from_static(path);
        let r = tokio::time::timeout(Duration::from_secs(10), async {
            if path.path().ends_with("GetStatus") {
                grpc.unary(tonic::Request::new(big()), path.clone(), codec())
                    .await
                    .map(|_| ())
            } else {
                let msgs = tokio_stream::iter(vec![big()]);
                grpc.client_streaming(tonic::Request::new(msgs), path.clone(), codec())
                    .await
                    .map(|_| ())
            }
        })
        .await
        .expect("answered within 10 s");
        let status = r.expect_err("refused");
        assert_eq!(
            status.code(),
            tonic::Code::ResourceExhausted,
            "{path}: {status:?}"
        );
    }
    h.assert_rss_under_mib(80, "oversized status and stats requests");
    h.assert_edit_within_1s().await;
}

/// A connection that never opens a stream is closed after `--idle-timeout`;
/// Envoy's, which has its ADS stream, stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_without_streams_is_closed_after_the_idle_timeout() {
    let mut h = Hostile::start(&["--idle-timeout", "1s"]).await;
    let mut socks = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(("127.0.0.1", h.cp.xds_port))
            .await
            .expect("connect");
        let mut out = PREFACE.to_vec();
        out.extend(frame(4, 0, 0, &[]));
        s.write_all(&out).await.expect("preface");
        socks.push(s);
    }
    let started = Instant::now();
    for s in &mut socks {
        // The server's SETTINGS and ACK, then the close: read to EOF.
        let mut sink = Vec::new();
        let r = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut sink)).await;
        assert!(r.is_ok(), "closed within 5 s\n{}", h.logs());
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(500),
        "closed by the idle timeout, not at once: {took:?}"
    );
    assert!(
        h.cp.log_text()
            .contains("no stream opened within --idle-timeout"),
        "a WARN\n{}",
        h.logs()
    );
    h.assert_edit_within_1s().await;
}
