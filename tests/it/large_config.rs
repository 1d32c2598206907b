//! A RouteConfiguration larger than gRPC's default 4 MiB message limit,
//! served by a real `edgeplane serve` to a real Envoy: edgeplane's xDS
//! server and the bootstrap it generates both raise the limit, so Envoy
//! takes the whole table (no rejection) and routes a request that only the
//! end of the table matches.

use std::time::{Duration, Instant};

use crate::support::*;
use anyhow::Context;
use edgeplane::snapshot::ResourceType;
use edgeplane::source::SourceFile;

/// gRPC's default maximum message size (tonic's and Envoy's).
const GRPC_DEFAULT_LIMIT: usize = 4 * 1024 * 1024;
const ROUTES: usize = 20_000;
/// Long prefixes keep the route count (and so the parse and Envoy's
/// route-table build) down for a given size.
const PAD: usize = 160;

fn prefix(i: usize) -> String {
    format!("/{i:05}/{}", "p".repeat(PAD))
}

/// A YAML document may hold at most 250,000 nodes (edgeplane's parser
/// budget against alias bombs), about 17,800 routes of this shape: the
/// routes are split over `VIRTUAL_SERVICES` VirtualServices, which become
/// virtual hosts of the one RouteConfiguration.
const VIRTUAL_SERVICES: usize = 2;

/// VirtualService `k` of `VIRTUAL_SERVICES`, with its share of the routes
/// in flow style, each its own prefix to the upstream `be`. The last one
/// (the last virtual host) has domain `*`; the others `big-<k>.test`.
fn big_virtual_service(k: usize) -> String {
    let domain = if k + 1 == VIRTUAL_SERVICES {
        "'*'".to_string()
    } else {
        format!("big-{k}.test")
    };
    let mut s = format!(
        "apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata:\n  name: big-{k}\n  namespace: gloo-system\nspec:\n  virtualHost:\n    domains: [{domain}]\n    routes:\n",
    );
    let per = ROUTES.div_ceil(VIRTUAL_SERVICES);
    for i in k * per..((k + 1) * per).min(ROUTES) {
        s.push_str(&format!(
            "    - {{matchers: [{{prefix: '{}'}}], routeAction: {{single: {{upstream: {{name: be}}}}}}}}\n",
            prefix(i)
        ));
    }
    s
}

/// How often the waits below poll.
const EVERY: Duration = Duration::from_millis(50);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_configuration_above_4_mib_reaches_envoy() -> anyhow::Result<()> {
    let started = Instant::now();
    let port = free_port();
    let backend = Backend::start("b1").await;
    let mut files = vec![
        ("gateway.yaml".to_string(), gateway(port, "")),
        ("upstream.yaml".to_string(), upstream("be", &[backend.port])),
    ];
    for k in 0..VIRTUAL_SERVICES {
        files.push((format!("vs-{k}.yaml"), big_virtual_service(k)));
    }

    // The encoded RouteConfiguration, from the library: above the default.
    let t = Instant::now();
    let load = edgeplane::pipeline::build(
        files
            .iter()
            .map(|(name, text)| SourceFile {
                path: name.as_str().into(),
                text: text.clone(),
            })
            .collect(),
        Vec::new(),
    );
    anyhow::ensure!(!load.has_errors(), "{}", load.render_diagnostics());
    let route_name = format!("listener-127.0.0.1-{port}-routes");
    let proxy = load
        .snapshot
        .as_ref()
        .and_then(|s| s.proxies.get("gloo-system~gateway-proxy"))
        .context("the proxy is in the snapshot")?;
    let rc = proxy
        .get(ResourceType::Route, &route_name)
        .context("the RouteConfiguration is in the snapshot")?;
    let size = rc.bytes.len();
    // The version Envoy will show for it: the type's version (SotW), the
    // resource's own (delta). Builds are deterministic, so the served one
    // is the same.
    let want_version = if delta_mode() {
        rc.hash.clone()
    } else {
        proxy.version(ResourceType::Route)
    };
    eprintln!(
        "RouteConfiguration: {ROUTES} routes, {size} bytes encoded ({:.2} MiB), {} bytes of YAML; built in {:?}",
        size as f64 / 1048576.0,
        files.iter().map(|(_, t)| t.len()).sum::<usize>(),
        t.elapsed()
    );
    assert!(size > GRPC_DEFAULT_LIMIT, "{size} bytes is not above 4 MiB");
    drop(load);

    let (tmp, dir) = manifests_dir(&files);
    let cp = ControlPlane::start(&dir, 0, tmp.path()).await;
    let t = Instant::now();
    let status = poll(
        "edgeplane serves the config",
        Duration::from_secs(60),
        EVERY,
        || async {
            let s = cp.status().await;
            (s["serving"] == true).then_some(s)
        },
    )
    .await?;
    eprintln!("edgeplane's first load: {}", status["lastLoad"]);
    let envoy = Envoy::start(cp.xds_port, "test-node", tmp.path()).await;
    let logs = || cp.logs_with(&envoy.log_text());
    cp.wait_connected_in_mode("test-node").await;

    // Envoy accepted the RouteConfiguration: an RDS update succeeded, none
    // was rejected, and its version is the one served.
    let rds = |stat: &str| format!("http.http.rds.{route_name}.{stat}");
    let ok = poll(
        "Envoy's RDS update_success",
        Duration::from_secs(60),
        EVERY,
        || async { envoy.stat(&rds("update_success")).await.filter(|n| *n >= 1) },
    )
    .await
    .with_context(logs)?;
    eprintln!(
        "Envoy started, connected and applied the RouteConfiguration {:?} after edgeplane served it",
        t.elapsed()
    );
    assert!(ok >= 1);
    assert_eq!(
        envoy.stat(&rds("update_rejected")).await.unwrap_or(0),
        0,
        "{}",
        logs()
    );
    let (_, _, rds_version) = envoy.versions(&route_name).await;
    assert_eq!(
        rds_version, want_version,
        "Envoy holds the served RouteConfiguration"
    );

    // A request only the last routes match reaches the demo backend.
    for i in [ROUTES - 1, ROUTES - 2] {
        let path = format!("{}/tail", prefix(i));
        let body = poll(
            &format!("Envoy routes {path}"),
            Duration::from_secs(20),
            EVERY,
            || {
                let path = path.clone();
                async move { http_get(port, &path).await.filter(|(s, _)| *s == 200) }
            },
        )
        .await
        .with_context(logs)?
        .1;
        assert!(body.contains("b1"), "{body}");
    }
    // And one no route matches does not.
    let (code, _) = http_get(port, "/no-such-route")
        .await
        .context("request through Envoy")?;
    assert_eq!(code, 404);
    eprintln!("whole test: {:?}", started.elapsed());
    Ok(())
}
