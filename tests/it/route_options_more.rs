//! Gloo route options beyond the basics, through real Envoy 1.40:
//! `shadowing`, `faults`, `lbHash`, `bufferPerRoute` (with the Gateway's
//! buffer filter), `csrf`, `envoyMetadata`. The fixture
//! `tests/fixtures/route-options-gloo/` (every option at once) loads without
//! a NACK and shows in `/config_dump`; each behaviour is then checked with
//! requests on loopback. Expected values come from Gloo's plugins (cited per
//! test) and Envoy's filters.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

/// A request over a fresh connection: `method path`, extra header lines
/// (each ending in `\r\n`) and a body; returns status and body.
async fn request(port: u16, method: &str, path: &str, headers: &str, body: &str) -> (u16, String) {
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let text = raw_request(port, &req).await;
    parse_response(text.as_bytes()).unwrap_or_else(|| panic!("unparsable response: {text}"))
}

/// A Gateway on `port`, with Gloo's listener buffer filter when `buffer`.
fn gateway_with(port: u16, buffer: Option<u32>) -> String {
    match buffer {
        None => gateway(port, ""),
        Some(n) => format!(
            "apiVersion: gateway.solo.io/v1\nkind: Gateway\nmetadata:\n  name: gw\n  namespace: gloo-system\nspec:\n  bindAddress: 127.0.0.1\n  bindPort: {port}\n  httpGateway:\n    options:\n      buffer:\n        maxRequestBytes: {n}\n"
        ),
    }
}

/// The stack's routes: `routes` (list items), then `/` to the demo backend
/// (`b1`, upstream `app`), which `Stack::serving` waits on.
async fn stack(buffer: Option<u32>, routes: String, extra: Vec<(&'static str, String)>) -> Stack {
    Stack::serving(move |port, b1| {
        let mut files = vec![
            ("gw.yaml", gateway_with(port, buffer)),
            ("app.yaml", upstream("app", &[b1])),
            (
                "vs.yaml",
                virtual_service(&format!("{routes}{}", route("/", "app", ""))),
            ),
        ];
        files.extend(extra);
        files
    })
    .await
}

/// Envoy rejected none of what edgeplane sent.
async fn assert_no_nack(s: &Stack) {
    for stat in [
        "listener_manager.lds.update_rejected".to_string(),
        "cluster_manager.cds.update_rejected".to_string(),
        s.rds_stat("update_rejected"),
    ] {
        assert_eq!(s.envoy.stat(&stat).await, Some(0), "{stat}\n{}", s.logs());
    }
}

// === the fixture ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixture_loads_into_envoy_without_nack_and_shows_every_option() {
    let port = free_port();
    let files = fixture_files("route-options-gloo", port);
    let (tmp, dir) = manifests_dir(&files);
    let cp = ControlPlane::start(&dir, 0, tmp.path()).await;
    let envoy = Envoy::start(cp.xds_port, "test-node", tmp.path()).await;
    cp.wait_connected_in_mode("test-node").await;
    let route_config = format!("listener-127.0.0.1-{port}-routes");
    let dump = eventually("Envoy holds the fixture's routes", || async {
        let d = envoy.config_dump().await;
        d.to_string()
            .contains("gloo-system_gloo-options-route-5-matcher-0")
            .then_some(d)
    })
    .await;
    for stat in [
        "listener_manager.lds.update_rejected".to_string(),
        "cluster_manager.cds.update_rejected".to_string(),
        format!("http.http.rds.{route_config}.update_rejected"),
    ] {
        assert_eq!(
            envoy.stat(&stat).await,
            Some(0),
            "{stat}\n{}",
            cp.logs_with(&envoy.log_text())
        );
    }
    assert!(
        envoy
            .stat(&format!("http.http.rds.{route_config}.update_success"))
            .await
            >= Some(1)
    );
    let text = dump.to_string();
    for shown in [
        r#""request_mirror_policies":[{"cluster":"shadow_gloo-system""#,
        r#""numerator":125000"#,
        r#""http_status":503"#,
        r#""fixed_delay":"1s""#,
        r#""header_name":"x-user""#,
        r#""source_ip":true"#,
        r#""max_request_bytes":1024"#,
        r#""runtime_key":"csrf.upload.shadow""#,
        r#""suffix":".example.org""#,
        r#""io.solo.edgeplane":{"#,
        r#""owners":["ana","bo"]"#,
    ] {
        assert!(text.contains(shown), "config_dump lacks {shown}");
    }
    // The listener's HCM filters, in Gloo's stage order.
    fn http_filters(v: &serde_json::Value, out: &mut Vec<Vec<String>>) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(serde_json::Value::Array(fs)) = m.get("http_filters") {
                    out.push(
                        fs.iter()
                            .map(|f| f["name"].as_str().unwrap_or("").to_string())
                            .collect(),
                    );
                }
                m.values().for_each(|x| http_filters(x, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| http_filters(x, out)),
            _ => {}
        }
    }
    let mut chains = Vec::new();
    http_filters(&dump, &mut chains);
    assert!(!chains.is_empty(), "no HCM in config_dump");
    for chain in chains {
        assert_eq!(
            chain,
            [
                "envoy.filters.http.fault",
                "envoy.filters.http.cors",
                "envoy.filters.http.grpc_web",
                "envoy.filters.http.buffer",
                "envoy.filters.http.csrf",
                "envoy.filters.http.router"
            ]
        );
    }
}

// === shadowing ===

/// A backend that records the `Host` and path of each request it answers.
struct Recorder {
    port: u16,
    seen: Arc<Mutex<Vec<(String, String)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    async fn start() -> Recorder {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind recorder");
        let port = l.local_addr().expect("addr").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut sock, _)) = l.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tokio::time::timeout(Duration::from_secs(5), sock.read(&mut chunk))
                            .await
                        {
                            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                            _ => return,
                        }
                    }
                    let head = String::from_utf8_lossy(&buf).into_owned();
                    let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                    let host = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("host").then(|| v.trim().to_string())
                        })
                        .unwrap_or_default();
                    log.lock().expect("recorder lock").push((host, path));
                    let _ = sock
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\nconnection: close\r\n\r\nshadow")
                        .await;
                });
            }
        });
        Recorder { port, seen, task }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Gloo `projects/gloo/pkg/plugins/shadowing/plugin.go`: percentage 100
/// mirrors every request to `<name>_<namespace>`; Envoy sends the copy with
/// `-shadow` appended to the host, and the client gets the primary's answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadowed_requests_reach_the_shadow_upstream() {
    let rec = Recorder::start().await;
    let opts =
        "shadowing:\n  upstream: {name: shadow, namespace: gloo-system}\n  percentage: 100\n";
    let s = stack(
        None,
        route("/mirror", "app", opts),
        vec![("shadow.yaml", upstream("shadow", &[rec.port]))],
    )
    .await;
    let (status, body) = request(s.port, "GET", "/mirror/one", "", "").await;
    assert_eq!(
        (status, body.as_str()),
        (200, "b1 GET /mirror/one\n"),
        "{}",
        s.logs()
    );
    let seen = eventually("the shadow backend sees the mirrored request", || async {
        let v = rec.seen.lock().expect("recorder lock").clone();
        (!v.is_empty()).then_some(v)
    })
    .await;
    assert_eq!(seen[0].1, "/mirror/one");
    assert_eq!(seen[0].0, format!("127.0.0.1-shadow:{}", s.port));
    assert_no_nack(&s).await;
}

// === faults ===

/// Gloo `projects/gloo/pkg/plugins/faultinjection/plugin.go`: an abort at
/// 100% answers its status without reaching the backend; a fixed delay at
/// 100% holds the request at least that long (Gloo takes whole seconds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_abort_answers_its_status_and_delay_delays() {
    let routes = format!(
        "{}{}",
        route(
            "/abort",
            "app",
            "faults:\n  abort: {percentage: 100, httpStatus: 418}\n"
        ),
        route(
            "/delay",
            "app",
            "faults:\n  delay: {percentage: 100, fixedDelay: 1s}\n"
        ),
    );
    let s = stack(None, routes, Vec::new()).await;
    let (status, body) = request(s.port, "GET", "/abort", "", "").await;
    assert_eq!(status, 418, "{body}\n{}", s.logs());
    assert!(!body.contains("b1"), "the backend answered: {body}");
    let start = Instant::now();
    let (status, body) = request(s.port, "GET", "/delay", "", "").await;
    let took = start.elapsed();
    assert_eq!((status, body.as_str()), (200, "b1 GET /delay\n"));
    assert!(
        took >= Duration::from_millis(950),
        "answered after {took:?}"
    );
    // Routes without faults are untouched by the always-present filter.
    assert_eq!(request(s.port, "GET", "/plain", "", "").await.0, 200);
    assert_no_nack(&s).await;
}

// === lbHash ===

/// Gloo `projects/gloo/pkg/plugins/loadbalancer/plugin.go`: `lbHash` header
/// policies become the route's `hash_policy`; with the Upstream's ring hash
/// (`loadBalancerConfig.ringHash`), one header value always reaches one
/// host, while different values spread over both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lb_hash_header_keeps_a_client_on_one_host() {
    let b2 = Backend::start("b2").await;
    let b2_port = b2.port;
    let opts = "lbHash:\n  hashPolicies:\n  - header: x-user\n";
    let s = Stack::serving(move |port, b1| {
        let ring = format!(
            "{}  loadBalancerConfig:\n    ringHash: {{}}\n",
            upstream("ring", &[b1, b2_port])
        );
        vec![
            ("gw.yaml", gateway(port, "")),
            ("app.yaml", upstream("app", &[b1])),
            ("ring.yaml", ring),
            (
                "vs.yaml",
                virtual_service(&format!(
                    "{}{}",
                    route("/sticky", "ring", opts),
                    route("/", "app", "")
                )),
            ),
        ]
    })
    .await;
    // Both hosts must be in the ring before counting.
    let backend_of = |body: &str| body.split_whitespace().next().unwrap_or("").to_string();
    eventually("the ring spreads users over both hosts", || async {
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..40 {
            let (st, body) = request(
                s.port,
                "GET",
                "/sticky",
                &format!("x-user: user-{i}\r\n"),
                "",
            )
            .await;
            if st == 200 {
                seen.insert(backend_of(&body));
            }
        }
        (seen.len() == 2).then_some(())
    })
    .await;
    for user in ["alice", "bob", "carol"] {
        let mut hosts = std::collections::BTreeSet::new();
        for _ in 0..20 {
            let (st, body) =
                request(s.port, "GET", "/sticky", &format!("x-user: {user}\r\n"), "").await;
            assert_eq!(st, 200, "{body}");
            hosts.insert(backend_of(&body));
        }
        assert_eq!(hosts.len(), 1, "{user} reached {hosts:?}");
    }
    drop(b2);
    assert_no_nack(&s).await;
}

// === bufferPerRoute ===

/// Gloo `projects/gloo/pkg/plugins/buffer/plugin.go`: the Gateway's
/// `options.buffer` installs Envoy's buffer filter; a route's
/// `bufferPerRoute.buffer.maxRequestBytes` lowers the limit there (a bigger
/// body gets Envoy's 413), `disabled: true` turns buffering off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffer_per_route_limits_request_bodies() {
    let routes = format!(
        "{}{}",
        route(
            "/upload",
            "app",
            "bufferPerRoute:\n  buffer: {maxRequestBytes: 16}\n"
        ),
        route("/stream", "app", "bufferPerRoute: {disabled: true}\n"),
    );
    let s = stack(Some(1 << 20), routes, Vec::new()).await;
    let big = "x".repeat(100);
    let (status, body) = request(s.port, "POST", "/upload", "", &big).await;
    assert_eq!(status, 413, "{body}\n{}", s.logs());
    assert_eq!(request(s.port, "POST", "/upload", "", "small").await.0, 200);
    assert_eq!(request(s.port, "POST", "/stream", "", &big).await.0, 200);
    assert_eq!(request(s.port, "POST", "/plain", "", &big).await.0, 200);
    assert_no_nack(&s).await;
}

// === csrf ===

/// Gloo `projects/gloo/pkg/plugins/csrf/plugin.go`: the listener's CSRF
/// filter enforces 0% by default; a route's policy with `filterEnabled`
/// 100% refuses a cross-origin POST with 403, and lets an origin from
/// `additionalOrigins` (and safe methods) through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csrf_refuses_cross_origin_posts() {
    let opts = "csrf:\n  filterEnabled:\n    defaultValue: {numerator: 100, denominator: HUNDRED}\n  additionalOrigins:\n  - exact: trusted.example\n";
    let s = stack(None, route("/form", "app", opts), Vec::new()).await;
    let evil = "origin: http://evil.example\r\n";
    let (status, body) = request(s.port, "POST", "/form", evil, "a=1").await;
    assert_eq!(status, 403, "{body}\n{}", s.logs());
    let trusted = "origin: http://trusted.example\r\n";
    assert_eq!(
        request(s.port, "POST", "/form", trusted, "a=1").await.0,
        200
    );
    let same = format!("origin: http://127.0.0.1:{}\r\n", s.port);
    assert_eq!(request(s.port, "POST", "/form", &same, "a=1").await.0, 200);
    assert_eq!(request(s.port, "GET", "/form", evil, "").await.0, 200);
    // No policy on the route: Gloo's listener default enforces nothing.
    assert_eq!(request(s.port, "POST", "/plain", evil, "a=1").await.0, 200);
    assert_no_nack(&s).await;
}
