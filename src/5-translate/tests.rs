//! Translation rules, checked on whole manifests through the pure pipeline.

use std::path::PathBuf;

use envoy_types::pb::envoy::config::listener::v3::filter;
use envoy_types::pb::envoy::config::route::v3::route;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use prost::Message;

use crate::pipeline::{Load, build};
use crate::snapshot::ResourceType;
use crate::source::SourceFile;

fn load(docs: &[&str]) -> Load {
    let files = docs
        .iter()
        .enumerate()
        .map(|(i, text)| SourceFile {
            path: PathBuf::from(format!("m{i}.yaml")),
            text: text.to_string(),
        })
        .collect();
    build(files, Vec::new())
}

fn gateway(hcm: &str) -> String {
    let opts = if hcm.is_empty() {
        "{}".to_string()
    } else {
        format!("{{options: {{httpConnectionManagerSettings: {hcm}}}}}")
    };
    format!(
        "apiVersion: gateway.solo.io/v1\nkind: Gateway\nmetadata: {{name: gw, namespace: gloo-system}}\nspec:\n  bindAddress: '::'\n  bindPort: 8080\n  httpGateway: {opts}\n"
    )
}

const UPSTREAM: &str = "apiVersion: gloo.solo.io/v1\nkind: Upstream\nmetadata: {name: echo, namespace: gloo-system}\nspec: {static: {hosts: [{addr: 127.0.0.1, port: 8081}]}}\n";

fn vs(routes: &str) -> String {
    format!(
        "apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata: {{name: web, namespace: apps}}\nspec:\n  virtualHost:\n    domains: ['*']\n    routes: {routes}\n"
    )
}

const PLAIN_ROUTE: &str = "[{matchers: [{prefix: /}], routeAction: {single: {upstream: {name: echo, namespace: gloo-system}}}}]";

fn hcm_of(l: &Load) -> HttpConnectionManager {
    let out = l.output.as_ref().expect("valid config");
    let listener = &out["gloo-system~gateway-proxy"].listeners[0];
    let Some(filter::ConfigType::TypedConfig(any)) =
        &listener.filter_chains[0].filters[0].config_type
    else {
        panic!("listener without a typed HCM");
    };
    HttpConnectionManager::decode(any.value.as_slice()).expect("HCM decodes")
}

fn upgrades(h: &HttpConnectionManager) -> Vec<(String, Option<bool>)> {
    h.upgrade_configs
        .iter()
        .map(|u| (u.upgrade_type.clone(), u.enabled.map(|b| b.value)))
        .collect()
}

#[test]
fn listener_upgrades_follow_gloo() {
    type Expected = Vec<(&'static str, Option<bool>)>;
    let cases: [(&str, Expected); 4] = [
        ("", vec![("websocket", None)]),
        (
            "{upgrades: [{websocket: {enabled: false}}]}",
            vec![("websocket", Some(false))],
        ),
        ("{upgrades: [{websocket: {}}]}", vec![("websocket", None)]),
        (
            "{upgrades: [{connect: {}}]}",
            vec![("CONNECT", None), ("websocket", None)],
        ),
    ];
    for (hcm, want) in cases {
        let l = load(&[&gateway(hcm), UPSTREAM, &vs(PLAIN_ROUTE)]);
        assert!(!l.has_errors(), "{}", l.render_diagnostics());
        let got = upgrades(&hcm_of(&l));
        let want: Vec<(String, Option<bool>)> =
            want.into_iter().map(|(t, e)| (t.to_string(), e)).collect();
        assert_eq!(got, want, "for {hcm:?}");
    }
}

#[test]
fn duplicate_upgrade_types_are_rejected_where_written() {
    let l = load(&[
        &gateway("{upgrades: [{websocket: {}}, {websocket: {enabled: false}}]}"),
        UPSTREAM,
        &vs(
            "[{matchers: [{prefix: /}], routeAction: {single: {upstream: {name: echo, namespace: gloo-system}}}, options: {upgrades: [{websocket: {}}, {websocket: {}}]}}]",
        ),
    ]);
    let errors: Vec<_> = l.diagnostics.iter().filter(|d| d.is_error()).collect();
    assert_eq!(errors.len(), 2, "{}", l.render_diagnostics());
    for (e, kind) in errors.iter().zip(["Gateway", "VirtualService"]) {
        assert_eq!(e.message, "upgrade config websocket is not unique");
        assert_eq!(e.resource.as_ref().map(|r| r.kind.as_str()), Some(kind));
        assert!(e.pos.line > 0 && e.pos.column > 0);
    }
    assert!(l.snapshot.is_none());
}

#[test]
fn gloo_names_and_route_settings() {
    let l = load(&[
        &gateway("{streamIdleTimeout: 10m, useRemoteAddress: true, serverName: edge}"),
        UPSTREAM,
        &vs(
            "[{matchers: [{prefix: /ws}, {exact: /live}], routeAction: {single: {upstream: {name: echo, namespace: gloo-system}}}, options: {upgrades: [{websocket: {}}], timeout: 30s, idleTimeout: 0s, prefixRewrite: /}}, {matchers: [{regex: '/r/[0-9]+'}], directResponseAction: {status: 204}, options: {upgrades: [{websocket: {enabled: false}}]}}]",
        ),
    ]);
    assert!(!l.has_errors(), "{}", l.render_diagnostics());
    let out = l.output.as_ref().expect("valid");
    let p = &out["gloo-system~gateway-proxy"];
    assert_eq!(p.listeners[0].name, "listener-::-8080");
    assert_eq!(p.clusters[0].name, "echo_gloo-system");
    let rc = &p.route_configs[0];
    assert_eq!(rc.name, "listener-::-8080-routes");
    let vh = &rc.virtual_hosts[0];
    assert_eq!(vh.name, "apps_web");
    let names: Vec<&str> = vh.routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "apps_web-route-0-matcher-0",
            "apps_web-route-0-matcher-1",
            "apps_web-route-1-matcher-0"
        ]
    );
    let Some(route::Action::Route(ra)) = &vh.routes[1].action else {
        panic!("route action expected");
    };
    assert_eq!(ra.upgrade_configs.len(), 1);
    assert_eq!(ra.upgrade_configs[0].upgrade_type, "websocket");
    assert_eq!(ra.upgrade_configs[0].enabled, None);
    assert_eq!(ra.timeout.map(|d| d.seconds), Some(30));
    assert_eq!(ra.idle_timeout.map(|d| d.seconds), Some(0));
    assert_eq!(ra.prefix_rewrite, "/");
    // Gloo ignores upgrades on direct-response routes.
    assert!(matches!(
        vh.routes[2].action,
        Some(route::Action::DirectResponse(_))
    ));
    let h = hcm_of(&l);
    assert_eq!(h.stat_prefix, "http");
    assert_eq!(h.stream_idle_timeout.map(|d| d.seconds), Some(600));
    assert_eq!(h.use_remote_address.map(|b| b.value), Some(true));
    assert_eq!(h.server_name, "edge");
    assert_eq!(h.normalize_path.map(|b| b.value), Some(true));
    assert_eq!(
        h.http_filters.last().map(|f| f.name.as_str()),
        Some("envoy.filters.http.router")
    );
}

#[test]
fn route_and_upstream_edits_never_change_listener_bytes() {
    let a = load(&[&gateway(""), UPSTREAM, &vs(PLAIN_ROUTE)]);
    let b = load(&[
        &gateway(""),
        &UPSTREAM.replace("8081", "9090"),
        &vs(
            "[{matchers: [{prefix: /x}], routeAction: {single: {upstream: {name: echo, namespace: gloo-system}}}, options: {timeout: 5s, upgrades: [{websocket: {enabled: false}}]}}]",
        ),
    ]);
    let (sa, sb) = (a.snapshot.expect("a valid"), b.snapshot.expect("b valid"));
    let (pa, pb) = (
        &sa.proxies["gloo-system~gateway-proxy"],
        &sb.proxies["gloo-system~gateway-proxy"],
    );
    assert_eq!(
        pa.types[&ResourceType::Listener],
        pb.types[&ResourceType::Listener]
    );
    assert_ne!(
        pa.version(ResourceType::Route),
        pb.version(ResourceType::Route)
    );
    assert_ne!(
        pa.version(ResourceType::Cluster),
        pb.version(ResourceType::Cluster)
    );
}

#[test]
fn translation_is_deterministic() {
    let docs = [
        gateway("{idleTimeout: 1h}"),
        UPSTREAM.to_string(),
        vs(PLAIN_ROUTE),
    ];
    let docs: Vec<&str> = docs.iter().map(String::as_str).collect();
    let a = load(&docs).snapshot.expect("valid");
    for _ in 0..5 {
        let b = load(&docs).snapshot.expect("valid");
        assert_eq!(a, b);
        assert_eq!(a.generation(), b.generation());
    }
}

#[test]
fn no_virtual_service_means_no_listener_and_missing_upstream_warns() {
    let l = load(&[&gateway(""), UPSTREAM]);
    let out = l.output.as_ref().expect("valid");
    let p = &out["gloo-system~gateway-proxy"];
    assert!(p.listeners.is_empty());
    assert_eq!(p.clusters.len(), 1);

    let l = load(&[
        &gateway(""),
        &vs("[{matchers: [{prefix: /}], routeAction: {single: {upstream: {name: gone}}}}]"),
    ]);
    assert!(!l.has_errors());
    assert_eq!(l.diagnostics.len(), 1);
    assert_eq!(
        l.diagnostics[0].message,
        "*v1.Upstream { apps.gone } not found"
    );
    let out = l.output.as_ref().expect("valid");
    let vh = &out["gloo-system~gateway-proxy"].route_configs[0].virtual_hosts[0];
    let Some(route::Action::Route(ra)) = &vh.routes[0].action else {
        panic!("route action expected");
    };
    assert_eq!(
        ra.cluster_specifier,
        Some(
            envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier::Cluster(
                "gone_apps".into()
            )
        )
    );
}

#[test]
fn bad_regex_duration_and_refs_are_errors() {
    let l = load(&[
        &gateway("{streamIdleTimeout: 5m}"),
        &vs(
            "[{matchers: [{regex: '/a(('}], routeAction: {single: {upstream: {name: echo, namespace: gloo-system}}}}, {matchers: [{prefix: /}]}, {matchers: [{prefix: /t}], directResponseAction: {status: 200}, options: {timeout: soon}}]",
        ),
        &gateway("").replace("name: gw", "name: gw2"),
    ]);
    let msgs: Vec<&str> = l.diagnostics.iter().map(|d| d.message.as_str()).collect();
    assert!(
        msgs.iter()
            .any(|m| m.starts_with("invalid duration `soon`")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m
                .starts_with("virtual service [apps.web] has a regex matcher with invalid regex")),
        "{msgs:?}"
    );
    assert!(
        msgs.contains(&"invalid route: route must specify an action"),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.starts_with("bind-address :::8080 is not unique in a proxy")),
        "{msgs:?}"
    );
}

/// Gloo names a virtual host `<namespace>.<name>` and makes every `.` an
/// `_` for Envoy (`SanitizeForEnvoy`, `projects/gloo/pkg/utils/sanitize.go`),
/// dots inside the VirtualService's own name included.
#[test]
fn virtual_host_names_have_no_dots() {
    let dotted = vs(PLAIN_ROUTE).replace("name: web,", "name: shop.v2,");
    let l = load(&[&gateway(""), UPSTREAM, &dotted]);
    assert!(!l.has_errors(), "{}", l.render_diagnostics());
    let out = l.output.as_ref().expect("valid config");
    let vh = &out["gloo-system~gateway-proxy"].route_configs[0].virtual_hosts[0];
    assert_eq!(vh.name, "apps_shop_v2");
}

/// Route names of delegated routes are Gloo's converter names inside Gloo's
/// Envoy route names. Expected values are those of Gloo's own tests
/// (`projects/gateway/pkg/translator/converter_test.go`, "builds correct
/// route name when the parent route is named / unnamed") wrapped as
/// `projects/gloo/pkg/translator/route_config.go` wraps them:
/// `<vhost>-route-<i>-<name>-matcher-<j>`, or without the name when no
/// route on the branch is named.
#[test]
fn route_names_are_gloo_converter_names() {
    let gw = "apiVersion: gateway.solo.io/v1\nkind: Gateway\nmetadata: {name: gw1, namespace: gloo-system}\nspec: {bindPort: 8080, proxyNames: [proxy1, proxy2], httpGateway: {}}\n";
    let vs = |parent_name: &str| {
        format!(
            "apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata: {{name: vs1, namespace: vs-ns}}\nspec:\n  virtualHost:\n    routes: [{{{parent_name}matchers: [{{}}], delegateAction: {{ref: {{name: any, namespace: ns}}}}}}]\n"
        )
    };
    let rt = |names: [&str; 3]| {
        let [a, b, c] = names.map(|n| {
            if n.is_empty() {
                String::new()
            } else {
                format!("name: {n}, ")
            }
        });
        format!(
            "apiVersion: gateway.solo.io/v1\nkind: RouteTable\nmetadata: {{name: any, namespace: ns}}\nspec:\n  routes:\n  - {{{a}directResponseAction: {{status: 200}}}}\n  - {{{b}redirectAction: {{hostRedirect: example.com}}}}\n  - {{{c}routeAction: {{single: {{upstream: {{name: echo, namespace: gloo-system}}}}}}}}\n"
        )
    };
    let names = |l: &Load, proxy: &str| -> Vec<String> {
        assert!(!l.has_errors(), "{}", l.render_diagnostics());
        let out = l.output.as_ref().expect("valid config");
        out[&format!("gloo-system~{proxy}")].route_configs[0].virtual_hosts[0]
            .routes
            .iter()
            .map(|r| r.name.clone())
            .collect()
    };

    let named_parent = load(&[
        gw,
        UPSTREAM,
        &vs("name: route1, "),
        &rt(["", "redirectAction", "routeAction1"]),
    ]);
    let head = "vs:gw1_proxy1_vs-ns_vs1_route:route1_rt:ns_any_route:";
    assert_eq!(
        names(&named_parent, "proxy1"),
        [
            format!("vs-ns_vs1-route-0-{head}<unnamed-0>-matcher-0"),
            format!("vs-ns_vs1-route-1-{head}redirectAction-matcher-0"),
            format!("vs-ns_vs1-route-2-{head}routeAction1-matcher-0"),
        ]
    );
    // Each proxy of the gateway has its own name in the route names.
    assert_eq!(
        names(&named_parent, "proxy2")[2],
        "vs-ns_vs1-route-2-vs:gw1_proxy2_vs-ns_vs1_route:route1_rt:ns_any_route:routeAction1-matcher-0"
    );

    let unnamed_parent = load(&[
        gw,
        UPSTREAM,
        &vs(""),
        &rt(["directResponseAction", "", "routeAction"]),
    ]);
    let head = "vs:gw1_proxy1_vs-ns_vs1_route:<unnamed-0>_rt:ns_any_route:";
    assert_eq!(
        names(&unnamed_parent, "proxy1"),
        [
            format!("vs-ns_vs1-route-0-{head}directResponseAction-matcher-0"),
            "vs-ns_vs1-route-1-matcher-0".to_string(),
            format!("vs-ns_vs1-route-2-{head}routeAction-matcher-0"),
        ]
    );
}
