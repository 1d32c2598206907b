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
    let rc = &p.route_configs[0].proto();
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
    let vh = &out["gloo-system~gateway-proxy"].route_configs[0]
        .proto()
        .virtual_hosts[0];
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

/// Gloo (`projects/gloo/pkg/translator/route_config.go`, `pluginutils.
/// NewUpstreamGroupNotFoundErr`): a route to a missing UpstreamGroup is a
/// warning and the route stays, pointing at no cluster. Gloo's `""` would
/// be refused by Envoy; a cluster name nothing has gives the same 503.
#[test]
fn missing_upstream_group_warns_and_keeps_the_route() {
    let l = load(&[
        &gateway(""),
        &vs("[{matchers: [{prefix: /}], routeAction: {upstreamGroup: {name: gone}}}]"),
    ]);
    assert!(!l.has_errors(), "{}", l.render_diagnostics());
    let msgs: Vec<&str> = l.diagnostics.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(msgs, ["*v1.UpstreamGroup { apps.gone } not found"]);
    let out = l.output.as_ref().expect("valid");
    let vh = &out["gloo-system~gateway-proxy"].route_configs[0]
        .proto()
        .virtual_hosts[0];
    let Some(route::Action::Route(ra)) = &vh.routes[0].action else {
        panic!("route action expected");
    };
    assert_eq!(
        ra.cluster_specifier,
        Some(
            envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier::Cluster(
                "upstream-group-not-found:gone_apps".into()
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
    let vh = &out["gloo-system~gateway-proxy"].route_configs[0]
        .proto()
        .virtual_hosts[0];
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
        out[&format!("gloo-system~{proxy}")].route_configs[0]
            .proto()
            .virtual_hosts[0]
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

// === Gloo route options: shadowing, faults, lbHash, bufferPerRoute, csrf,
// envoyMetadata ===

const SHADOW_UPSTREAM: &str = "apiVersion: gloo.solo.io/v1\nkind: Upstream\nmetadata: {name: shadow, namespace: gloo-system}\nspec: {static: {hosts: [{addr: 127.0.0.1, port: 8082}]}}\n";

/// The first virtual host's routes of `routes` served with both upstreams.
fn routes_of(gw: &str, routes: &str) -> Vec<envoy_types::pb::envoy::config::route::v3::Route> {
    let l = load(&[gw, UPSTREAM, SHADOW_UPSTREAM, &vs(routes)]);
    assert!(!l.has_errors(), "{}", l.render_diagnostics());
    let out = l.output.expect("valid config");
    out["gloo-system~gateway-proxy"].route_configs[0]
        .proto()
        .virtual_hosts[0]
        .routes
        .clone()
}

fn route_with(options: &str) -> envoy_types::pb::envoy::config::route::v3::Route {
    let r = format!(
        "[{{matchers: [{{prefix: /}}], routeAction: {{single: {{upstream: {{name: echo, namespace: gloo-system}}}}}}, options: {options}}}]"
    );
    routes_of(&gateway(""), &r).remove(0)
}

fn action(
    r: &envoy_types::pb::envoy::config::route::v3::Route,
) -> &envoy_types::pb::envoy::config::route::v3::RouteAction {
    match &r.action {
        Some(route::Action::Route(ra)) => ra,
        other => panic!("not a route action: {other:?}"),
    }
}

fn per_filter<M: Message + Default>(
    r: &envoy_types::pb::envoy::config::route::v3::Route,
    filter: &str,
) -> M {
    let any = r
        .typed_per_filter_config
        .get(filter)
        .unwrap_or_else(|| panic!("no {filter} config on {}", r.name));
    M::decode(any.value.as_slice()).expect("per-filter config decodes")
}

/// Gloo `projects/gloo/pkg/plugins/shadowing/plugin.go`: one mirror policy,
/// cluster `<name>_<namespace>`, runtime fraction from
/// `common.ToEnvoyPercentage` (percentage × 10000 per million).
#[test]
fn shadowing_is_a_request_mirror_policy() {
    let r = route_with(
        "{shadowing: {upstream: {name: shadow, namespace: gloo-system}, percentage: 12.5}}",
    );
    let m = &action(&r).request_mirror_policies;
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].cluster, "shadow_gloo-system");
    let f = m[0]
        .runtime_fraction
        .as_ref()
        .and_then(|f| f.default_value)
        .expect("default value");
    assert_eq!((f.numerator, f.denominator), (125_000, 2));
    assert_eq!(
        m[0].runtime_fraction
            .as_ref()
            .map(|f| f.runtime_key.as_str()),
        Some("")
    );
}

/// Gloo `projects/gloo/pkg/plugins/faultinjection/plugin.go`: an HTTPFault
/// per route (single destination) and, on a multi-destination route, per
/// weighted cluster; percentages per million.
#[test]
fn faults_are_per_route_fault_filter_configs() {
    use envoy_types::pb::envoy::extensions::filters::common::fault::v3::fault_delay;
    use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{HttpFault, fault_abort};
    let r = route_with(
        "{faults: {abort: {percentage: 50, httpStatus: 503}, delay: {percentage: 100, fixedDelay: 2s}}}",
    );
    let f: HttpFault = per_filter(&r, "envoy.filters.http.fault");
    let abort = f.abort.expect("abort");
    assert_eq!(
        abort.percentage.map(|p| (p.numerator, p.denominator)),
        Some((500_000, 2))
    );
    assert_eq!(
        abort.error_type,
        Some(fault_abort::ErrorType::HttpStatus(503))
    );
    let delay = f.delay.expect("delay");
    assert_eq!(delay.percentage.map(|p| p.numerator), Some(1_000_000));
    assert!(matches!(
        delay.fault_delay_secifier,
        Some(fault_delay::FaultDelaySecifier::FixedDelay(d)) if d.seconds == 2
    ));
    // Multi destination: on each weighted cluster, not on the route.
    let multi = "[{matchers: [{prefix: /}], routeAction: {multi: {destinations: [{weight: 1, destination: {upstream: {name: echo, namespace: gloo-system}}}, {weight: 1, destination: {upstream: {name: shadow, namespace: gloo-system}}}]}}, options: {faults: {abort: {percentage: 100, httpStatus: 418}}}}]";
    let r = routes_of(&gateway(""), multi).remove(0);
    assert!(
        !r.typed_per_filter_config
            .contains_key("envoy.filters.http.fault")
    );
    let Some(
        envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier::WeightedClusters(
            w,
        ),
    ) = &action(&r).cluster_specifier
    else {
        panic!("weighted clusters");
    };
    for c in &w.clusters {
        let any = &c.typed_per_filter_config["envoy.filters.http.fault"];
        let f = HttpFault::decode(any.value.as_slice()).expect("decodes");
        assert_eq!(
            f.abort.and_then(|a| a.error_type),
            Some(fault_abort::ErrorType::HttpStatus(418))
        );
    }
}

/// Gloo adds the fault filter first and CSRF (0% enforced) in its
/// RouteStage, before the router, on every listener
/// (`plugins/faultinjection`, `plugins/csrf`); the buffer filter only with
/// the Gateway's `options.buffer` (`plugins/buffer`).
#[test]
fn hcm_filters_follow_gloos_stages() {
    use envoy_types::pb::envoy::extensions::filters::http::csrf::v3::CsrfPolicy;
    let names = |h: &HttpConnectionManager| -> Vec<String> {
        h.http_filters.iter().map(|f| f.name.clone()).collect()
    };
    let l = load(&[&gateway(""), UPSTREAM, &vs(PLAIN_ROUTE)]);
    let h = hcm_of(&l);
    assert_eq!(
        names(&h),
        [
            "envoy.filters.http.fault",
            "envoy.filters.http.cors",
            "envoy.filters.http.grpc_web",
            "envoy.filters.http.csrf",
            "envoy.filters.http.router"
        ]
    );
    let Some(envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter::ConfigType::TypedConfig(any)) =
        &h.http_filters[3].config_type
    else {
        panic!("typed csrf config");
    };
    let c = CsrfPolicy::decode(any.value.as_slice()).expect("csrf decodes");
    let fe = c
        .filter_enabled
        .and_then(|f| f.default_value)
        .expect("explicit 0%");
    assert_eq!((fe.numerator, fe.denominator), (0, 0));
    let gw = "apiVersion: gateway.solo.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: gloo-system}\nspec:\n  bindAddress: '::'\n  bindPort: 8080\n  httpGateway: {options: {buffer: {maxRequestBytes: 1024}}}\n";
    let l = load(&[gw, UPSTREAM, &vs(PLAIN_ROUTE)]);
    assert_eq!(
        names(&hcm_of(&l)),
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

/// Gloo `projects/gloo/pkg/plugins/loadbalancer/plugin.go`
/// (`getHashPoliciesFromSpec`): header, cookie (name, ttl, path) and
/// source IP as `connection_properties`, each with `terminal`.
#[test]
fn lb_hash_policies_become_hash_policy() {
    use envoy_types::pb::envoy::config::route::v3::route_action::hash_policy::PolicySpecifier;
    let r = route_with(
        "{lbHash: {hashPolicies: [{header: x-user, terminal: true}, {cookie: {name: session, ttl: 1h, path: /app}}, {sourceIp: true}]}}",
    );
    let hp = &action(&r).hash_policy;
    assert_eq!(hp.len(), 3);
    assert!(hp[0].terminal && !hp[1].terminal && !hp[2].terminal);
    assert!(
        matches!(&hp[0].policy_specifier, Some(PolicySpecifier::Header(h)) if h.header_name == "x-user")
    );
    assert!(
        matches!(&hp[1].policy_specifier, Some(PolicySpecifier::Cookie(c))
        if c.name == "session" && c.path == "/app" && c.ttl.map(|d| d.seconds) == Some(3600))
    );
    assert!(
        matches!(&hp[2].policy_specifier, Some(PolicySpecifier::ConnectionProperties(c)) if c.source_ip)
    );
}

/// Gloo `projects/gloo/pkg/plugins/buffer/plugin.go`, `plugins/csrf/
/// plugin.go` and `plugins/metadata/plugin.go`: per-route buffer override,
/// CSRF policy (unset `filterEnabled` → explicit 0%), route metadata.
#[test]
fn buffer_csrf_and_metadata_per_route() {
    use envoy_types::pb::envoy::extensions::filters::http::buffer::v3::{
        BufferPerRoute, buffer_per_route,
    };
    use envoy_types::pb::envoy::extensions::filters::http::csrf::v3::CsrfPolicy;
    use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
    let r = route_with(
        "{bufferPerRoute: {buffer: {maxRequestBytes: 64}}, csrf: {filterEnabled: {defaultValue: {numerator: 100}}, shadowEnabled: {defaultValue: {numerator: 5, denominator: TEN_THOUSAND}, runtimeKey: csrf.shadow}, additionalOrigins: [{exact: a.example, ignoreCase: true}, {suffix: .example.org}, {safeRegex: {regex: 'https://.*\\.test', googleRe2: {}}, ignoreCase: true}]}, envoyMetadata: {io.solo.team: {owner: web, tier: 2, tags: [a, b], on: true}, z.other: {}}}",
    );
    let b: BufferPerRoute = per_filter(&r, "envoy.filters.http.buffer");
    assert!(
        matches!(b.r#override, Some(buffer_per_route::Override::Buffer(x)) if x.max_request_bytes.map(|v| v.value) == Some(64))
    );
    let c: CsrfPolicy = per_filter(&r, "envoy.filters.http.csrf");
    let fe = c
        .filter_enabled
        .and_then(|f| f.default_value)
        .expect("enabled");
    assert_eq!((fe.numerator, fe.denominator), (100, 0));
    let se = c.shadow_enabled.expect("shadow");
    assert_eq!(se.runtime_key, "csrf.shadow");
    assert_eq!(
        se.default_value.map(|d| (d.numerator, d.denominator)),
        Some((5, 1))
    );
    assert_eq!(c.additional_origins.len(), 3);
    assert!(c.additional_origins[0].ignore_case);
    assert!(
        matches!(&c.additional_origins[1].match_pattern, Some(MatchPattern::Suffix(s)) if s == ".example.org")
    );
    // Gloo drops ignoreCase on regexes.
    assert!(!c.additional_origins[2].ignore_case);
    assert!(
        matches!(&c.additional_origins[2].match_pattern, Some(MatchPattern::SafeRegex(re)) if re.regex == "https://.*\\.test")
    );
    let md = r.metadata.expect("metadata").filter_metadata;
    assert_eq!(md.len(), 2);
    let team = &md["io.solo.team"].fields;
    use envoy_types::pb::google::protobuf::value::Kind;
    assert_eq!(team["owner"].kind, Some(Kind::StringValue("web".into())));
    assert_eq!(team["tier"].kind, Some(Kind::NumberValue(2.0)));
    assert_eq!(team["on"].kind, Some(Kind::BoolValue(true)));
    assert!(matches!(&team["tags"].kind, Some(Kind::ListValue(l)) if l.values.len() == 2));
    // CSRF and the buffer override apply to redirects too (Gloo sets them
    // on the route whatever its action); disabled buffering.
    let rd = "[{matchers: [{prefix: /}], redirectAction: {hostRedirect: x.example}, options: {bufferPerRoute: {disabled: true}, csrf: {}}}]";
    let r = routes_of(&gateway(""), rd).remove(0);
    let b: BufferPerRoute = per_filter(&r, "envoy.filters.http.buffer");
    assert_eq!(
        b.r#override,
        Some(buffer_per_route::Override::Disabled(true))
    );
    let c: CsrfPolicy = per_filter(&r, "envoy.filters.http.csrf");
    assert_eq!(
        c.filter_enabled
            .and_then(|f| f.default_value)
            .map(|d| d.numerator),
        Some(0)
    );
}

/// Several per-filter configs and metadata namespaces: the snapshot's bytes
/// do not depend on HashMap order (`canonical`).
#[test]
fn routes_with_several_per_filter_configs_hash_the_same_every_build() {
    let r = "[{matchers: [{prefix: /}], routeAction: {single: {upstream: {name: echo, namespace: gloo-system}}}, options: {cors: {allowOrigin: [x]}, faults: {abort: {percentage: 1, httpStatus: 503}}, bufferPerRoute: {disabled: true}, csrf: {}, envoyMetadata: {a: {x: 1, y: 2, z: 3}, b: {k: v}, c: {}}}}]";
    let g = gateway("");
    let v = vs(r);
    let docs = [g.as_str(), UPSTREAM, SHADOW_UPSTREAM, v.as_str()];
    let first = load(&docs).snapshot.expect("valid");
    for _ in 0..10 {
        let again = load(&docs).snapshot.expect("valid");
        assert_eq!(
            first.proxies["gloo-system~gateway-proxy"].version(ResourceType::Route),
            again.proxies["gloo-system~gateway-proxy"].version(ResourceType::Route)
        );
    }
}

fn vs_with_vhost_options(options: &str, routes: &str) -> String {
    format!(
        "apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata: {{name: web, namespace: apps}}\nspec:\n  virtualHost:\n    domains: ['*']\n    options: {options}\n    routes: {routes}\n"
    )
}

/// `virtualHost.options` land where Gloo's vhost plugins put them
/// (`projects/gloo/pkg/plugins/{headers,cors,csrf,buffer,basicroute,
/// virtualhost}/plugin.go`): headers and retries on the VirtualHost, CORS,
/// CSRF and buffer as its per-filter configs; with
/// `corsPolicyMergeSettings.exposeHeaders: UNION` a route's CORS policy
/// takes the virtual host's expose headers first (`mergeCors`).
#[test]
fn virtual_host_options_follow_gloos_vhost_plugins() {
    use envoy_types::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy;
    let opts = "{headerManipulation: {requestHeadersToAdd: [{header: {key: x-vh, value: a}, append: false}], requestHeadersToRemove: [x-drop], responseHeadersToAdd: [{header: {key: x-vh-resp, value: b}}], responseHeadersToRemove: [server]}, cors: {allowOrigin: ['https://a.example'], exposeHeaders: [x-one, x-two]}, corsPolicyMergeSettings: {exposeHeaders: UNION}, retries: {retryOn: 5xx, numRetries: 3, perTryTimeout: 2s}, csrf: {filterEnabled: {defaultValue: {numerator: 100}}}, bufferPerRoute: {disabled: true}, includeRequestAttemptCount: true, includeAttemptCountInResponse: false}";
    let routes = "[{matchers: [{prefix: /}], routeAction: {single: {upstream: {name: echo, namespace: gloo-system}}}, options: {cors: {allowOrigin: ['https://b.example'], exposeHeaders: [x-two, x-three]}}}]";
    let l = load(&[&gateway(""), UPSTREAM, &vs_with_vhost_options(opts, routes)]);
    assert!(l.diagnostics.is_empty(), "{:?}", l.diagnostics);
    let out = l.output.as_ref().expect("valid config");
    let vh = &out["gloo-system~gateway-proxy"].route_configs[0]
        .proto()
        .virtual_hosts[0];
    let adds: Vec<(&str, &str, i32)> = vh
        .request_headers_to_add
        .iter()
        .filter_map(|h| {
            let hv = h.header.as_ref()?;
            Some((hv.key.as_str(), hv.value.as_str(), h.append_action))
        })
        .collect();
    assert_eq!(
        adds,
        [("x-vh", "a", 2)],
        "append: false: OverwriteIfExistsOrAdd"
    );
    assert_eq!(vh.request_headers_to_remove, ["x-drop"]);
    assert_eq!(vh.response_headers_to_add.len(), 1);
    assert_eq!(vh.response_headers_to_remove, ["server"]);
    let rp = vh.retry_policy.as_ref().expect("vhost retry policy");
    assert_eq!(rp.retry_on, "5xx");
    assert_eq!(rp.num_retries.map(|n| n.value), Some(3));
    assert!(vh.include_request_attempt_count);
    assert!(!vh.include_attempt_count_in_response);
    let mut keys: Vec<&str> = vh
        .typed_per_filter_config
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "envoy.filters.http.buffer",
            "envoy.filters.http.cors",
            "envoy.filters.http.csrf"
        ]
    );
    let vh_cors = CorsPolicy::decode(
        vh.typed_per_filter_config["envoy.filters.http.cors"]
            .value
            .as_slice(),
    )
    .expect("cors decodes");
    assert_eq!(vh_cors.expose_headers, "x-one,x-two");
    assert!(vh_cors.filter_enabled.is_none(), "route-only setting");
    let route_cors = CorsPolicy::decode(
        vh.routes[0].typed_per_filter_config["envoy.filters.http.cors"]
            .value
            .as_slice(),
    )
    .expect("cors decodes");
    assert_eq!(route_cors.expose_headers, "x-one,x-two,x-three");

    // DEFAULT (or no merge settings): the route's list alone.
    let l = load(&[
        &gateway(""),
        UPSTREAM,
        &vs_with_vhost_options(&opts.replace("UNION", "DEFAULT"), routes),
    ]);
    let out = l.output.as_ref().expect("valid config");
    let vh = &out["gloo-system~gateway-proxy"].route_configs[0]
        .proto()
        .virtual_hosts[0];
    let route_cors = CorsPolicy::decode(
        vh.routes[0].typed_per_filter_config["envoy.filters.http.cors"]
            .value
            .as_slice(),
    )
    .expect("cors decodes");
    assert_eq!(route_cors.expose_headers, "x-two,x-three");
}

/// A virtual host CORS policy needs an origin (Gloo's cors plugin);
/// `disableForRoute` there is only a warning; header rules are the route
/// options' own; enterprise options stay refused by name.
#[test]
fn virtual_host_options_are_checked_like_route_options() {
    let cases = [
        (
            "{cors: {allowMethods: [GET]}}",
            "invalid cors config: must provide at least one of AllowOrigin or AllowOriginRegex",
        ),
        (
            "{headerManipulation: {requestHeadersToAdd: [{header: {key: ':path', value: x}}]}}",
            ": -prefixed or host headers may not be modified. Received ':path' header",
        ),
        (
            "{retries: {retryBackOff: {baseInterval: 2s, maxInterval: 1s}}}",
            // Gloo's convertPolicy (projects/gloo/pkg/plugins/basicroute/plugin.go).
            "retries.retryBackOff: base interval: 2000 is > max interval: 1000",
        ),
        (
            "{corsPolicyMergeSettings: {exposeHeaders: MERGE}}",
            "corsPolicyMergeSettings.exposeHeaders `MERGE` is not one of DEFAULT, UNION",
        ),
        ("{jwt: {disable: true}}", "`jwt` is a Gloo feature"),
        ("{ratelimitBasic: {}}", "`ratelimitBasic` is a Gloo feature"),
        ("{stats: {}}", "`stats` is a Gloo feature"),
    ];
    for (opts, want) in cases {
        let l = load(&[
            &gateway(""),
            UPSTREAM,
            &vs_with_vhost_options(opts, PLAIN_ROUTE),
        ]);
        assert!(
            l.diagnostics
                .iter()
                .any(|d| d.is_error() && d.message.starts_with(want)),
            "{opts}: {:?}",
            l.diagnostics
        );
    }
    let l = load(&[
        &gateway(""),
        UPSTREAM,
        &vs_with_vhost_options(
            "{cors: {allowOrigin: [x], disableForRoute: true}}",
            PLAIN_ROUTE,
        ),
    ]);
    assert!(l.output.is_some());
    assert_eq!(
        l.diagnostics
            .iter()
            .map(|d| (d.is_error(), d.message.as_str()))
            .collect::<Vec<_>>(),
        [(
            false,
            "invalid virtual host cors policy: DisableForRoute only pertains to cors policies on routes"
        )]
    );
}
