//! The ADS session against a hostile client (issue 15: "Bounded" per
//! stream, "Unforgeable"). Each test runs edgeplane with its default limits
//! (`--max-subscribed-names 50000`, `--max-node-bytes 256KiB`) and a real
//! Envoy on this run's ADS variant, then plays a client on both SotW and
//! delta streams that claims the real Envoy's role:
//! - a NACK flood (thousands) with unknown and replayed nonces leaves the
//!   VirtualService Accepted, counts in `edgeplane_xds_stale_nonces_total`
//!   and adds a handful of log lines;
//! - 100k subscribed names (SotW, delta subscribe, delta
//!   `initial_resource_versions`) end the stream with RESOURCE_EXHAUSTED;
//! - a 1 MiB node ends the stream with RESOURCE_EXHAUSTED.
//!
//! After each: edgeplane's RSS grew by less than `RSS_GROWTH_BOUND_KB`, one
//! WARN per refused stream names the peer, and an edit reaches the real
//! Envoy within one second.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::protobuf::{Struct, Value as PbValue, value::Kind};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_stream::wrappers::ReceiverStream;

use crate::support::*;

const ROUTE_TYPE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
const LISTENER_TYPE: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
/// The role `edgeplane bootstrap` gives the real Envoy (its defaults).
const ROLE: &str = "gloo-system~gateway-proxy";
const STEP: Duration = Duration::from_secs(10);
/// How much edgeplane's resident memory may grow over a hostile episode.
const RSS_GROWTH_BOUND_KB: u64 = 64 * 1024;
/// NACKs in a flood.
const FLOOD: usize = 3000;

fn node(id: &str, filler: usize) -> Node {
    let mut fields = HashMap::new();
    fields.insert(
        "role".to_string(),
        PbValue {
            kind: Some(Kind::StringValue(ROLE.into())),
        },
    );
    if filler > 0 {
        fields.insert(
            "filler".to_string(),
            PbValue {
                kind: Some(Kind::StringValue("x".repeat(filler))),
            },
        );
    }
    Node {
        id: id.into(),
        cluster: "gateway".into(),
        metadata: Some(Struct {
            fields: fields.into_iter().collect(),
        }),
        ..Node::default()
    }
}

fn nack(message: &str) -> Option<RpcStatus> {
    Some(RpcStatus {
        code: 3,
        message: message.into(),
        details: Vec::new(),
    })
}

async fn client(port: u16) -> AggregatedDiscoveryServiceClient<tonic::transport::Channel> {
    let url = format!("http://127.0.0.1:{port}");
    timeout(STEP, AggregatedDiscoveryServiceClient::connect(url.clone()))
        .await
        .unwrap_or_else(|_| panic!("connecting to {url} took over {STEP:?}"))
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"))
        .max_decoding_message_size(64 * 1024 * 1024)
}

struct Sotw {
    tx: mpsc::Sender<DiscoveryRequest>,
    rx: tonic::Streaming<DiscoveryResponse>,
}

impl Sotw {
    async fn open(port: u16) -> Sotw {
        let (tx, rx) = mpsc::channel(64);
        let rx = timeout(
            STEP,
            client(port)
                .await
                .stream_aggregated_resources(ReceiverStream::new(rx)),
        )
        .await
        .expect("opening a SotW stream in time")
        .expect("SotW stream opens")
        .into_inner();
        Sotw { tx, rx }
    }
    async fn send(&self, r: DiscoveryRequest) -> bool {
        matches!(timeout(STEP, self.tx.send(r)).await, Ok(Ok(())))
    }
    async fn recv(&mut self) -> Result<DiscoveryResponse, tonic::Status> {
        match timeout(STEP, self.rx.message()).await {
            Ok(Ok(Some(r))) => Ok(r),
            Ok(Ok(None)) => Err(tonic::Status::ok("stream ended")),
            Ok(Err(s)) => Err(s),
            Err(_) => panic!("no SotW response or status within {STEP:?}"),
        }
    }
}

struct Delta {
    tx: mpsc::Sender<DeltaDiscoveryRequest>,
    rx: tonic::Streaming<DeltaDiscoveryResponse>,
}

impl Delta {
    async fn open(port: u16) -> Delta {
        let (tx, rx) = mpsc::channel(64);
        let rx = timeout(
            STEP,
            client(port)
                .await
                .delta_aggregated_resources(ReceiverStream::new(rx)),
        )
        .await
        .expect("opening a delta stream in time")
        .expect("delta stream opens")
        .into_inner();
        Delta { tx, rx }
    }
    async fn send(&self, r: DeltaDiscoveryRequest) -> bool {
        matches!(timeout(STEP, self.tx.send(r)).await, Ok(Ok(())))
    }
    async fn recv(&mut self) -> Result<DeltaDiscoveryResponse, tonic::Status> {
        match timeout(STEP, self.rx.message()).await {
            Ok(Ok(Some(r))) => Ok(r),
            Ok(Ok(None)) => Err(tonic::Status::ok("stream ended")),
            Ok(Err(s)) => Err(s),
            Err(_) => panic!("no delta response or status within {STEP:?}"),
        }
    }
}

/// edgeplane's resident set (kB), from /proc.
fn rss_kb(cp: &ControlPlane) -> u64 {
    let pid = cp.pid().expect("edgeplane runs");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

/// A stack serving one VirtualService `vs` through a real Envoy.
async fn stack() -> Stack {
    Stack::serving(|port, bport| {
        vec![
            ("gateway.yaml", gateway(port, "")),
            ("upstream.yaml", upstream("backend", &[bport])),
            ("vs.yaml", virtual_service(&route("/plain", "backend", ""))),
        ]
    })
    .await
}

/// Edits the VirtualService (a new prefix) and requires the real Envoy to
/// have it within one second.
async fn edit_reaches_envoy_within_1s(s: &Stack, n: usize) {
    let prefix = format!("/edited-{n}");
    let routes = format!(
        "{}{}",
        route(&prefix, "backend", ""),
        route("/plain", "backend", "")
    );
    let start = Instant::now();
    write_atomic(&s.dir, "vs.yaml", &virtual_service(&routes));
    loop {
        if s.envoy.config_dump().await.to_string().contains(&prefix) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "the real Envoy did not get the edit {prefix} within 1 s\n{}",
            s.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The metric's value in edgeplane's /metrics (fails when it is missing).
async fn metric(s: &Stack, series: &str) -> f64 {
    let (code, body) = s.cp.admin_get("/metrics").await.expect("/metrics");
    assert_eq!(code, 200);
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{series} not exported:\n{body}"))
}

fn vs_state(st: &serde_json::Value) -> String {
    status_entry(st, "resources", "name", "vs")
        .map(|r| r["state"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nack_floods_with_unknown_and_replayed_nonces_change_nothing() {
    let s = stack().await;
    let route_name = s.route_name();
    let rss_before = rss_kb(&s.cp);
    let log_before = s.cp.log_text().lines().count();
    let forged = format!(
        "\u{1b}[2J\u{1b}[31mforged rejection {}",
        "z".repeat(64 * 1024)
    );

    // SotW: subscribe to the real route config, ACK it like Envoy, then
    // flood NACKs: the ACKed nonce (replayed), made-up nonces, the LDS nonce.
    let stale_sotw = r#"edgeplane_xds_stale_nonces_total{type="RDS",mode="sotw"}"#;
    let stale_sotw_before = metric(&s, stale_sotw).await;
    let mut c = Sotw::open(s.cp.xds_port).await;
    assert!(
        c.send(DiscoveryRequest {
            node: Some(node("intruder-sotw", 0)),
            type_url: ROUTE_TYPE.into(),
            resource_names: vec![route_name.clone()],
            ..DiscoveryRequest::default()
        })
        .await
    );
    let r = c.recv().await.expect("the RDS response");
    assert_eq!(r.resources.len(), 1, "the intruder gets the route config");
    let ack = DiscoveryRequest {
        type_url: ROUTE_TYPE.into(),
        resource_names: vec![route_name.clone()],
        version_info: r.version_info.clone(),
        response_nonce: r.nonce.clone(),
        ..DiscoveryRequest::default()
    };
    assert!(c.send(ack.clone()).await);
    for i in 0..FLOOD {
        let nonce = match i % 3 {
            0 => r.nonce.clone(),
            1 => format!("{}", 1_000_000 + i),
            _ => "0".into(),
        };
        assert!(
            c.send(DiscoveryRequest {
                response_nonce: nonce,
                error_detail: nack(&forged),
                ..ack.clone()
            })
            .await,
            "the flood is read"
        );
    }

    // Delta: the same against a delta stream.
    let stale_delta = r#"edgeplane_xds_stale_nonces_total{type="RDS",mode="delta"}"#;
    let stale_delta_before = metric(&s, stale_delta).await;
    let mut d = Delta::open(s.cp.xds_port).await;
    assert!(
        d.send(DeltaDiscoveryRequest {
            node: Some(node("intruder-delta", 0)),
            type_url: ROUTE_TYPE.into(),
            resource_names_subscribe: vec![route_name.clone()],
            ..DeltaDiscoveryRequest::default()
        })
        .await
    );
    let dr = d.recv().await.expect("the delta RDS response");
    assert_eq!(dr.resources.len(), 1);
    assert!(
        d.send(DeltaDiscoveryRequest {
            type_url: ROUTE_TYPE.into(),
            response_nonce: dr.nonce.clone(),
            ..DeltaDiscoveryRequest::default()
        })
        .await
    );
    for i in 0..FLOOD {
        let nonce = match i % 2 {
            0 => dr.nonce.clone(),
            _ => format!("{}", 2_000_000 + i),
        };
        assert!(
            d.send(DeltaDiscoveryRequest {
                type_url: ROUTE_TYPE.into(),
                response_nonce: nonce,
                error_detail: nack(&forged),
                ..DeltaDiscoveryRequest::default()
            })
            .await
        );
    }

    // Every forged NACK is counted as stale, none as a NACK.
    let want_sotw = stale_sotw_before + FLOOD as f64;
    let want_delta = stale_delta_before + FLOOD as f64;
    let deadline = Instant::now() + STEP;
    loop {
        let (a, b) = (metric(&s, stale_sotw).await, metric(&s, stale_delta).await);
        if a == want_sotw && b == want_delta {
            break;
        }
        assert!(
            Instant::now() < deadline && a <= want_sotw && b <= want_delta,
            "stale nonces counted: sotw {a} (want {want_sotw}), delta {b} (want {want_delta})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for mode in ["sotw", "delta"] {
        let nacks = format!("edgeplane_xds_nacks_total{{type=\"RDS\",mode=\"{mode}\"}}");
        assert_eq!(metric(&s, &nacks).await, 0.0, "{nacks}");
    }

    // The VirtualService stays Accepted; no intruder entry holds a NACK.
    let st = s.cp.status().await;
    assert_eq!(vs_state(&st), "Accepted", "{st}");
    for id in ["intruder-sotw", "intruder-delta"] {
        let n = status_node(&st, id).unwrap_or_else(|| panic!("{id} connected: {st}"));
        for t in n["types"].as_array().into_iter().flatten() {
            assert_eq!(t["nackMessage"], "", "{id}: {t}");
        }
    }

    // A handful of log lines for 6000 forged NACKs (debug logs at powers of
    // two per stream), none of them a NACK WARN or the forged text.
    let log = s.cp.log_text();
    let added: Vec<&str> = log.lines().skip(log_before).collect();
    assert!(
        added.len() <= 60,
        "{} log lines after the flood:\n{}",
        added.len(),
        added.join("\n")
    );
    assert!(!log.contains("NACKed"), "{log}");
    assert!(!log.contains('\u{1b}'), "raw escape in the log");

    let rss_after = rss_kb(&s.cp);
    eprintln!("edgeplane VmRSS {rss_before} kB before, {rss_after} kB after");
    assert!(
        rss_after < rss_before + RSS_GROWTH_BOUND_KB,
        "RSS {rss_after} kB, before {rss_before} kB"
    );
    edit_reaches_envoy_within_1s(&s, 1).await;
    drop((c, d));
}

/// Waits for the stream's end and returns its status.
async fn sotw_refused(mut c: Sotw) -> tonic::Status {
    loop {
        match c.recv().await {
            Ok(_) => continue,
            Err(st) => return st,
        }
    }
}

async fn delta_refused(mut d: Delta) -> tonic::Status {
    loop {
        match d.recv().await {
            Ok(_) => continue,
            Err(st) => return st,
        }
    }
}

fn assert_exhausted(st: &tonic::Status, flag: &str) {
    assert_eq!(st.code(), tonic::Code::ResourceExhausted, "{st:?}");
    assert!(st.message().contains(flag), "{st:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribed_names_and_node_size_are_bounded_per_stream() {
    let s = stack().await;
    let rss_before = rss_kb(&s.cp);
    let names: Vec<String> = (0..100_000).map(|i| format!("hostile-route-{i}")).collect();

    // SotW: 100k RDS names.
    let c = Sotw::open(s.cp.xds_port).await;
    c.send(DiscoveryRequest {
        node: Some(node("names-sotw", 0)),
        type_url: ROUTE_TYPE.into(),
        resource_names: names.clone(),
        ..DiscoveryRequest::default()
    })
    .await;
    assert_exhausted(&sotw_refused(c).await, "--max-subscribed-names");

    // Delta: 100k subscriptions, then 100k initial_resource_versions.
    let d = Delta::open(s.cp.xds_port).await;
    d.send(DeltaDiscoveryRequest {
        node: Some(node("names-delta", 0)),
        type_url: ROUTE_TYPE.into(),
        resource_names_subscribe: names.clone(),
        ..DeltaDiscoveryRequest::default()
    })
    .await;
    assert_exhausted(&delta_refused(d).await, "--max-subscribed-names");
    let d = Delta::open(s.cp.xds_port).await;
    d.send(DeltaDiscoveryRequest {
        node: Some(node("versions-delta", 0)),
        type_url: LISTENER_TYPE.into(),
        initial_resource_versions: names.iter().map(|n| (n.clone(), "v1".into())).collect(),
        ..DeltaDiscoveryRequest::default()
    })
    .await;
    assert_exhausted(&delta_refused(d).await, "--max-subscribed-names");

    // A 1 MiB node on either variant.
    let c = Sotw::open(s.cp.xds_port).await;
    c.send(DiscoveryRequest {
        node: Some(node("big-node-sotw", 1024 * 1024)),
        type_url: LISTENER_TYPE.into(),
        ..DiscoveryRequest::default()
    })
    .await;
    assert_exhausted(&sotw_refused(c).await, "--max-node-bytes");
    let d = Delta::open(s.cp.xds_port).await;
    d.send(DeltaDiscoveryRequest {
        node: Some(node("big-node-delta", 1024 * 1024)),
        type_url: LISTENER_TYPE.into(),
        ..DeltaDiscoveryRequest::default()
    })
    .await;
    assert_exhausted(&delta_refused(d).await, "--max-node-bytes");

    // One WARN per refused stream, naming its peer.
    let log = s.cp.log_text();
    let warns: Vec<&str> = log.lines().filter(|l| l.contains("over a limit")).collect();
    assert_eq!(warns.len(), 5, "{}", warns.join("\n"));
    assert!(
        warns
            .iter()
            .all(|l| l.contains("WARN") && l.contains("peer=127.0.0.1:")),
        "{}",
        warns.join("\n")
    );
    // A refused node is never recorded.
    let st = s.cp.status().await;
    assert!(status_node(&st, "big-node-sotw").is_none(), "{st}");
    assert!(status_node(&st, "big-node-delta").is_none(), "{st}");
    // The real Envoy is untouched.
    assert!(node_synced(&st, "test-node"), "{st}");
    let rss_after = rss_kb(&s.cp);
    eprintln!("edgeplane VmRSS {rss_before} kB before, {rss_after} kB after");
    assert!(
        rss_after < rss_before + RSS_GROWTH_BOUND_KB,
        "RSS {rss_after} kB, before {rss_before} kB"
    );
    edit_reaches_envoy_within_1s(&s, 2).await;
}
