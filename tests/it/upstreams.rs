//! Upstream features through real Envoy 1.40: one upstream with every
//! plain-text feature at once still serves HTTP and WebSockets (its health
//! checks pass against the demo backend); TLS, per-host SNI, HTTP/2 and the
//! other load-balancing policies sit on upstreams no route needs to reach.
//! Envoy accepts every cluster: no CDS rejection, no NACK in edgeplane.

use crate::support::*;
use serde_json::Value;

const RICH: &str = "rich";

/// Every feature that an HTTP/1 plain-text backend can serve: two weighted
/// hosts (the same demo backend), explicit `useTls: false`, connection
/// settings, circuit breakers, an HTTP health check, least request with
/// panic threshold and merge window, outlier detection. (One health check:
/// Envoy wants names on several, which Gloo's shape cannot give.)
fn rich_upstream(backend: u16) -> String {
    format!(
        "apiVersion: gloo.solo.io/v1
kind: Upstream
metadata:
  name: {RICH}
  namespace: gloo-system
spec:
  static:
    useTls: false
    autoSniRewrite: true
    hosts:
    - addr: 127.0.0.1
      port: {backend}
      loadBalancingWeight: 3
    - addr: 127.0.0.1
      port: {backend}
      loadBalancingWeight: 1
  connectionConfig:
    maxRequestsPerConnection: 100
    connectTimeout: 2s
    tcpKeepalive:
      keepaliveProbes: 3
      keepaliveTime: 60s
      keepaliveInterval: 10s
    perConnectionBufferLimitBytes: 65536
    commonHttpProtocolOptions:
      idleTimeout: 30s
      maxHeadersCount: 100
      maxStreamDuration: 1h
      headersWithUnderscoresAction: DROP_HEADER
  circuitBreakers:
    maxConnections: 257
    maxPendingRequests: 258
    maxRequests: 259
    maxRetries: 7
    trackRemaining: true
  healthChecks:
  - timeout: 1s
    interval: 1s
    healthyThreshold: 1
    unhealthyThreshold: 3
    noTrafficInterval: 1s
    httpHealthCheck:
      path: /healthz
      host: health.local
  loadBalancerConfig:
    healthyPanicThreshold: 10
    updateMergeWindow: 1s
    leastRequest:
      choiceCount: 3
  outlierDetection:
    consecutive5xx: 5
    interval: 10s
    baseEjectionTime: 30s
    maxEjectionPercent: 50
"
    )
}

/// TLS by the port-443 rule, SNI from the first hostname, per-host SNI
/// (`sniAddr` and `autoSniRewrite`), HTTP/2 with common options, ring hash.
/// Nothing listens on 443: Envoy must accept it, no route uses it.
const TLS_UPSTREAM: &str = "apiVersion: gloo.solo.io/v1
kind: Upstream
metadata:
  name: tls
  namespace: gloo-system
spec:
  useHttp2: true
  static:
    autoSniRewrite: true
    hosts:
    - addr: localhost
      port: 443
      loadBalancingWeight: 2
    - addr: 127.0.0.2
      port: 443
      sniAddr: other.example.com
    - addr: 127.0.0.3
      port: 443
      sniAddr: third.example.com
  connectionConfig:
    maxRequestsPerConnection: 10
    commonHttpProtocolOptions:
      idleTimeout: 10s
  circuitBreakers:
    maxConnections: 11
  loadBalancerConfig:
    ringHash:
      ringHashConfig:
        minimumRingSize: 1024
        maximumRingSize: '2048'
";

/// Explicit `useTls: true` on IP hosts (no SNI), no auto SNI, maglev.
const TLS_EXPLICIT_UPSTREAM: &str = "apiVersion: gloo.solo.io/v1
kind: Upstream
metadata:
  name: tls-explicit
  namespace: gloo-system
spec:
  static:
    useTls: true
    autoSniRewrite: false
    hosts:
    - addr: 127.0.0.4
      port: 8443
  loadBalancerConfig:
    maglev: {}
";

/// An upstream whose only settings are a load-balancing policy and a TCP
/// health check, on `port` of 127.0.0.1.
fn policy_upstream(name: &str, policy: &str, port: u16) -> String {
    format!(
        "apiVersion: gloo.solo.io/v1\nkind: Upstream\nmetadata:\n  name: {name}\n  namespace: gloo-system\nspec:\n  static:\n    hosts:\n    - addr: 127.0.0.1\n      port: {port}\n  loadBalancerConfig:\n    {policy}: {{}}\n  healthChecks:\n  - timeout: 1s\n    interval: 1s\n    healthyThreshold: 1\n    unhealthyThreshold: 2\n    tcpHealthCheck: {{}}\n"
    )
}

/// The dumped cluster named `name` (active or warming).
fn dumped_cluster(dump: &Value, name: &str) -> Option<Value> {
    dump["configs"]
        .as_array()?
        .iter()
        .filter(|c| {
            c["@type"]
                .as_str()
                .unwrap_or("")
                .ends_with("ClustersConfigDump")
        })
        .flat_map(|c| {
            ["dynamic_active_clusters", "dynamic_warming_clusters"]
                .into_iter()
                .flat_map(move |k| c[k].as_array().cloned().unwrap_or_default())
        })
        .map(|c| c["cluster"].clone())
        .find(|c| c["name"] == name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_upstream_feature_is_accepted_by_envoy_and_serves() {
    let port = free_port();
    let be = Backend::start("rich").await;
    let bport = be.port;
    let files = vec![
        ("gateway.yaml", gateway(port, "")),
        ("rich.yaml", rich_upstream(bport)),
        ("tls.yaml", TLS_UPSTREAM.to_string()),
        ("tls-explicit.yaml", TLS_EXPLICIT_UPSTREAM.to_string()),
        ("random.yaml", policy_upstream("random", "random", bport)),
        (
            "round-robin.yaml",
            policy_upstream("round-robin", "roundRobin", bport),
        ),
        ("vs.yaml", virtual_service(&route("/", RICH, ""))),
    ];
    let s = Stack::start(port, be, &files).await;

    // Traffic through the feature-rich upstream (health checks must have
    // passed for the cluster to take traffic).
    let body = s.envoy.wait_serving(port, "/hello").await;
    assert_eq!(body, "rich GET /hello\n", "{}", s.logs());

    // Envoy rejected nothing, and edgeplane saw only ACKs.
    assert_eq!(
        s.envoy
            .stat("cluster_manager.cds.update_rejected")
            .await
            .unwrap_or(0),
        0,
        "{}",
        s.logs()
    );
    let status = eventually("edgeplane records the CDS ACK", || async {
        let st = s.cp.status().await;
        let acked = st["nodes"].as_array()?.iter().any(|n| {
            n["types"].as_array().into_iter().flatten().any(|t| {
                t["typeUrl"].as_str().unwrap_or("").ends_with("Cluster")
                    && !t["ackedVersion"].as_str().unwrap_or("").is_empty()
            })
        });
        acked.then_some(st)
    })
    .await;
    let nodes = status["nodes"].as_array().expect("nodes");
    assert!(!nodes.is_empty(), "{status}");
    for n in nodes {
        for t in n["types"].as_array().into_iter().flatten() {
            assert_eq!(
                t["nackMessage"].as_str().unwrap_or(""),
                "",
                "{} NACKed: {status}\n{}",
                t["typeUrl"],
                s.logs()
            );
        }
    }

    // Every cluster is in Envoy, with its settings in force.
    let dump = s.envoy.config_dump().await;
    for name in [
        "rich_gloo-system",
        "tls_gloo-system",
        "tls-explicit_gloo-system",
        "random_gloo-system",
        "round-robin_gloo-system",
    ] {
        assert!(
            dumped_cluster(&dump, name).is_some(),
            "{name} not in Envoy's config_dump"
        );
    }
    let rich = dumped_cluster(&dump, "rich_gloo-system").expect("rich cluster");
    let t = &rich["circuit_breakers"]["thresholds"][0];
    assert_eq!(t["max_connections"], 257, "{rich}");
    assert_eq!(t["max_pending_requests"], 258, "{rich}");
    assert_eq!(t["max_requests"], 259, "{rich}");
    assert_eq!(t["max_retries"], 7, "{rich}");
    assert_eq!(t["track_remaining"], true, "{rich}");
    assert_eq!(rich["lb_policy"], "LEAST_REQUEST", "{rich}");
    assert_eq!(rich["least_request_lb_config"]["choice_count"], 3, "{rich}");
    assert_eq!(rich["connect_timeout"], "2s", "{rich}");
    assert_eq!(rich["health_checks"].as_array().map(Vec::len), Some(1));
    assert_eq!(rich["outlier_detection"]["interval"], "10s", "{rich}");
    assert_eq!(
        rich["common_lb_config"]["healthy_panic_threshold"]["value"], 10.0,
        "{rich}"
    );
    let http = &rich["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
    assert!(
        http["explicit_http_config"]["http_protocol_options"].is_object(),
        "{rich}"
    );
    assert_eq!(
        http["common_http_protocol_options"]["max_requests_per_connection"], 100,
        "{rich}"
    );
    // trackRemaining: Envoy publishes the remaining-capacity gauges.
    assert!(
        s.envoy
            .stat("cluster.rich_gloo-system.circuit_breakers.default.remaining_cx")
            .await
            .is_some(),
        "{}",
        s.logs()
    );

    let tls = dumped_cluster(&dump, "tls_gloo-system").expect("tls cluster");
    assert_eq!(
        tls["transport_socket"]["typed_config"]["sni"], "localhost",
        "{tls}"
    );
    let matches: Vec<&str> = tls["transport_socket_matches"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["name"].as_str())
        .collect();
    // Gloo's static plugin: one match per host, `<sni>;<addr>:<port>`.
    assert_eq!(
        matches,
        [
            "localhost;localhost:443",
            "other.example.com;127.0.0.2:443",
            "third.example.com;127.0.0.3:443"
        ],
        "{tls}"
    );
    assert_eq!(tls["lb_policy"], "RING_HASH", "{tls}");
    assert!(
        tls["typed_extension_protocol_options"]
            ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]["explicit_http_config"]
            ["http2_protocol_options"]
            .is_object(),
        "{tls}"
    );

    // The HTTP health check passes against the demo backend (both rich
    // hosts healthy), and so does the TCP one of the round-robin upstream.
    for (cluster, hosts) in [("rich_gloo-system", 2), ("round-robin_gloo-system", 1)] {
        eventually(
            &format!("{cluster} hosts pass their health checks"),
            || async {
                let (_, clusters) = s.envoy.get("/clusters").await?;
                let prefix = format!("{cluster}::127.0.0.1:");
                let healthy = clusters
                    .lines()
                    .filter(|l| l.starts_with(&prefix) && l.contains("::health_flags::"))
                    .filter(|l| l.ends_with("::healthy"))
                    .count();
                (healthy == hosts).then_some(())
            },
        )
        .await;
    }

    // Plain traffic and a WebSocket through the feature-rich upstream.
    for i in 0..5 {
        let path = format!("/again/{i}");
        assert_eq!(
            http_get(port, &path).await,
            Some((200, format!("rich GET {path}\n"))),
            "{}",
            s.logs()
        );
    }
    let mut ws = ws_connect(port, "/chat").await.unwrap_or_else(|code| {
        panic!("expected 101, got {code}\n{}", s.logs());
    });
    echo(&mut ws, "through the feature-rich upstream").await;
    echo(&mut ws, "and again").await;
}
