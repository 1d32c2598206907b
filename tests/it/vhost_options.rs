//! `virtualHost.options` and the VirtualHostOption / RouteOption kinds,
//! through real Envoy 1.40. The fixture `tests/fixtures/virtual-host-options/`
//! (every virtual host option, both option kinds, a delegated ref and an
//! inline override) loads without a NACK; then, on loopback: a virtual host
//! response header on every forwarding route, a RouteOption's fault abort
//! and header where a route references it, the route's inline fault over
//! the RouteOption's (Gloo's converter: inline options win), a live edit of
//! a referenced VirtualHostOption, a broken one keeping the last good
//! config with its error in `/status`, and a missing ref as a warning.

use crate::support::*;

/// A GET through Envoy: status and the whole response text (headers too).
async fn get(port: u16, path: &str) -> (u16, String) {
    let req = format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nconnection: close\r\n\r\n");
    let text = raw_request(port, &req).await;
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text.to_ascii_lowercase())
}

/// Envoy rejected none of what edgeplane sent.
async fn assert_no_nack(envoy: &Envoy, route_config: &str, logs: impl Fn() -> String) {
    for stat in [
        "listener_manager.lds.update_rejected".to_string(),
        "cluster_manager.cds.update_rejected".to_string(),
        format!("http.http.rds.{route_config}.update_rejected"),
    ] {
        assert_eq!(envoy.stat(&stat).await, Some(0), "{stat}\n{}", logs());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixture_loads_into_envoy_without_nack_and_shows_every_option() {
    let port = free_port();
    let files = fixture_files("virtual-host-options", port);
    let (tmp, dir) = manifests_dir(&files);
    let cp = ControlPlane::start(&dir, 0, tmp.path()).await;
    let envoy = Envoy::start(cp.xds_port, "test-node", tmp.path()).await;
    cp.wait_connected_in_mode("test-node").await;
    let route_config = format!("listener-127.0.0.1-{port}-routes");
    let dump = eventually("Envoy holds the fixture's routes", || async {
        let d = envoy.config_dump().await;
        d.to_string()
            .contains("gloo-system_vhost-options-route-3-matcher-0")
            .then_some(d)
    })
    .await;
    assert_no_nack(&envoy, &route_config, || cp.logs_with(&envoy.log_text())).await;
    let text = dump.to_string();
    for shown in [
        // Inline options.
        r#""key":"x-vhost","value":"from-vhost""#,
        r#""retry_on":"5xx,reset""#,
        r#""include_request_attempt_count":true"#,
        // From the first VirtualHostOption ref.
        r#""include_attempt_count_in_response":true"#,
        r#""max_request_bytes":4096"#,
        // From the second, for what neither sets.
        r#""@type":"type.googleapis.com/envoy.extensions.filters.http.csrf.v3.CsrfPolicy""#,
        // corsPolicyMergeSettings UNION on the route.
        r#""expose_headers":"x-vhost-exposed,x-route-exposed""#,
        // The RouteOption's abort, and the inline one over it.
        r#""http_status":418"#,
        r#""http_status":429"#,
    ] {
        assert!(text.contains(shown), "{shown} not in /config_dump: {text}");
    }
    assert!(
        !text.contains("gateway-error"),
        "the second ref's retries lose"
    );
}

fn vho(header: &str, extra: &str) -> String {
    format!(
        "apiVersion: gateway.solo.io/v1\nkind: VirtualHostOption\nmetadata:\n  name: vhost-opts\n  namespace: gloo-system\nspec:\n  options:\n    headerManipulation:\n      responseHeadersToAdd:\n        - header: {{key: x-vhost, value: {header}}}\n{extra}"
    )
}

const ROUTE_OPTIONS: &str = "apiVersion: gateway.solo.io/v1\nkind: RouteOption\nmetadata:\n  name: abort-418\n  namespace: gloo-system\nspec:\n  options:\n    faults:\n      abort: {percentage: 100, httpStatus: 418}\n---\napiVersion: gateway.solo.io/v1\nkind: RouteOption\nmetadata:\n  name: tag\n  namespace: gloo-system\nspec:\n  options:\n    headerManipulation:\n      responseHeadersToAdd:\n        - header: {key: x-route-option, value: tagged}\n";

/// A route to the demo backend referencing RouteOption resources.
fn route_with_refs(prefix: &str, options: &str, refs: &[&str]) -> String {
    let mut r = route(prefix, "app", options);
    r.push_str("  optionsConfigRefs:\n    delegateOptions:\n");
    for name in refs {
        r.push_str(&format!(
            "      - {{name: {name}, namespace: gloo-system}}\n"
        ));
    }
    r
}

fn vs_with_refs() -> String {
    let routes = [
        route_with_refs("/faulty", "", &["abort-418"]),
        route_with_refs(
            "/overridden",
            "faults:\n  abort: {percentage: 100, httpStatus: 429}\n",
            &["abort-418"],
        ),
        route_with_refs("/tagged", "", &["tag"]),
        route_with_refs("/missing", "", &["nope"]),
        route("/", "app", ""),
    ]
    .concat();
    virtual_service(&routes).replace(
        "    domains: ['*']\n",
        "    domains: ['*']\n    optionsConfigRefs:\n      delegateOptions:\n        - {name: vhost-opts, namespace: gloo-system}\n",
    )
}

/// The `/status` entry of `kind` `name`.
fn entry(status: &serde_json::Value, kind: &str, name: &str) -> Option<serde_json::Value> {
    status["resources"]
        .as_array()?
        .iter()
        .find(|r| r["kind"] == kind && r["name"] == name)
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn option_resources_apply_merge_and_keep_the_last_good_config() {
    let s = Stack::serving(|port, b1| {
        vec![
            ("gw.yaml", gateway(port, "")),
            ("app.yaml", upstream("app", &[b1])),
            ("vs.yaml", vs_with_refs()),
            ("vho.yaml", vho("v1", "")),
            ("ro.yaml", ROUTE_OPTIONS.to_string()),
        ]
    })
    .await;
    let port = s.port;
    let route_config = s.route_name();

    // The virtual host's response header on every forwarding route.
    for path in ["/plain", "/tagged", "/missing"] {
        let (status, text) = get(port, path).await;
        assert_eq!(status, 200, "{path}: {text}");
        assert!(text.contains("x-vhost: v1"), "{path}: {text}");
    }
    // A RouteOption's header where a route references it, and only there.
    assert!(
        get(port, "/tagged")
            .await
            .1
            .contains("x-route-option: tagged")
    );
    assert!(!get(port, "/plain").await.1.contains("x-route-option"));
    // A RouteOption's fault abort; the route's inline fault wins over it.
    assert_eq!(get(port, "/faulty").await.0, 418);
    assert_eq!(get(port, "/overridden").await.0, 429);
    // A missing ref is a warning naming it; the rest is served.
    let st = s.cp.status().await;
    let vs = entry(&st, "VirtualService", "vs").expect("VirtualService status");
    assert_eq!(vs["state"], "Warning", "{vs}");
    assert!(
        vs["reasons"]
            .to_string()
            .contains("list did not find routeOption gloo-system.nope"),
        "{vs}"
    );
    for (kind, name) in [
        ("VirtualHostOption", "vhost-opts"),
        ("RouteOption", "abort-418"),
        ("RouteOption", "tag"),
    ] {
        let e = entry(&st, kind, name).unwrap_or_else(|| panic!("no status for {name}: {st}"));
        assert_eq!(e["state"], "Accepted", "{e}");
        assert!(
            e["proxies"]
                .to_string()
                .contains("gloo-system~gateway-proxy"),
            "{e}"
        );
    }
    assert_no_nack(&s.envoy, &route_config, || s.logs()).await;

    // Editing the referenced VirtualHostOption changes what Envoy serves,
    // live.
    write_atomic(&s.dir, "vho.yaml", &vho("v2", ""));
    eventually("the edited VirtualHostOption is served", || async {
        get(port, "/plain")
            .await
            .1
            .contains("x-vhost: v2")
            .then_some(())
    })
    .await;

    // A broken VirtualHostOption: Rejected with its error in /status, the
    // last good config still served.
    let loads = s.cp.loads().await;
    write_atomic(
        &s.dir,
        "vho.yaml",
        &vho("v3", "    cors:\n      allowMethods: [GET]\n"),
    );
    let st = s.cp.wait_load_after(loads).await;
    let o = entry(&st, "VirtualHostOption", "vhost-opts").expect("option status");
    assert_eq!(
        (o["state"].as_str(), o["serving"].as_str()),
        (Some("Rejected"), Some("last-accepted")),
        "{o}"
    );
    assert!(
        o["reasons"].to_string().contains(
            "invalid cors config: must provide at least one of AllowOrigin or AllowOriginRegex"
        ),
        "{o}"
    );
    for path in ["/plain", "/tagged"] {
        let (status, text) = get(port, path).await;
        assert_eq!(status, 200, "{path}: {text}");
        assert!(text.contains("x-vhost: v2"), "{path}: {text}");
    }
    assert_eq!(get(port, "/faulty").await.0, 418);

    // Fixed: served again.
    write_atomic(&s.dir, "vho.yaml", &vho("v4", ""));
    eventually("the fixed VirtualHostOption is served", || async {
        get(port, "/plain")
            .await
            .1
            .contains("x-vhost: v4")
            .then_some(())
    })
    .await;
    assert_no_nack(&s.envoy, &route_config, || s.logs()).await;
}
