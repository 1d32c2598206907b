//! Validation rules: delegation, selection, file layout, Gloo's texts.

use std::path::PathBuf;

use crate::model::{Action, Model, PathMatch, UpgradeKind};
use crate::pipeline::{Load, build};
use crate::source::SourceFile;

fn load_files(files: &[(&str, &str)]) -> Load {
    build(
        files
            .iter()
            .map(|(p, t)| SourceFile {
                path: PathBuf::from(p),
                text: t.to_string(),
            })
            .collect(),
        Vec::new(),
    )
}

fn load(docs: &[&str]) -> Load {
    let named: Vec<(String, &str)> = docs
        .iter()
        .enumerate()
        .map(|(i, d)| (format!("m{i}.yaml"), *d))
        .collect();
    let refs: Vec<(&str, &str)> = named.iter().map(|(p, d)| (p.as_str(), *d)).collect();
    load_files(&refs)
}

fn model(l: &Load) -> Model {
    let files = l.files.clone();
    let (docs, _) = crate::manifest::parse_files(&files);
    super::validate(&docs).model
}

const GW: &str = "apiVersion: gateway.solo.io/v1\nkind: Gateway\nmetadata: {name: gw}\nspec: {bindPort: 8080, httpGateway: {}}\n";
const UP: &str = "apiVersion: gloo.solo.io/v1\nkind: Upstream\nmetadata: {name: up}\nspec: {static: {hosts: [{addr: 127.0.0.1, port: 1}]}}\n";

fn vs(routes: &str) -> String {
    format!(
        "apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata: {{name: vs}}\nspec:\n  virtualHost:\n    routes: {routes}\n"
    )
}

fn rt(name: &str, labels: &str, weight: i32, routes: &str) -> String {
    format!(
        "apiVersion: gateway.solo.io/v1\nkind: RouteTable\nmetadata: {{name: {name}, labels: {{{labels}}}}}\nspec:\n  weight: {weight}\n  routes: {routes}\n"
    )
}

fn to_up(prefix: &str, extra: &str) -> String {
    format!(
        "{{matchers: [{{prefix: {prefix}}}], routeAction: {{single: {{upstream: {{name: up}}}}}}{extra}}}"
    )
}

fn paths(m: &Model) -> Vec<String> {
    m.virtual_services
        .values()
        .flat_map(|v| v.routes.iter())
        .map(|r| r.matchers[0].path.text().to_string())
        .collect()
}

fn messages(l: &Load) -> Vec<String> {
    l.diagnostics.iter().map(|d| d.message.clone()).collect()
}

#[test]
fn parent_upgrades_reach_children_that_set_none() {
    let l = load(&[
        GW,
        UP,
        &vs(
            "[{matchers: [{prefix: /api}], delegateAction: {ref: {name: a}}, options: {upgrades: [{websocket: {}}], timeout: 9s}}]",
        ),
        &rt(
            "a",
            "",
            0,
            &format!(
                "[{}, {}]",
                to_up("/api/ws", ""),
                to_up(
                    "/api/own",
                    ", options: {upgrades: [{websocket: {enabled: false}}], timeout: 1s}"
                )
            ),
        ),
    ]);
    assert!(!l.has_errors(), "{}", l.render_diagnostics());
    let m = model(&l);
    let routes = &m.virtual_services.values().next().expect("vs").routes;
    assert_eq!(routes.len(), 2);
    assert_eq!(routes[0].options.upgrades[0].kind, UpgradeKind::WebSocket);
    assert_eq!(routes[0].options.upgrades[0].enabled, None);
    assert_eq!(routes[0].options.timeout.map(|d| d.seconds), Some(9));
    // The child's own settings win.
    assert_eq!(routes[1].options.upgrades[0].enabled, Some(false));
    assert_eq!(routes[1].options.timeout.map(|d| d.seconds), Some(1));
}

#[test]
fn child_outside_parent_prefix_is_a_warning_that_drops_it() {
    let l = load(&[
        GW,
        UP,
        &vs("[{matchers: [{prefix: /api}], delegateAction: {ref: {name: a}}}]"),
        &rt(
            "a",
            "",
            0,
            &format!("[{}, {}]", to_up("/other", ""), to_up("/api/x", "")),
        ),
    ]);
    assert!(!l.has_errors(), "{}", l.render_diagnostics());
    let msgs = messages(&l);
    // Gloo's InvalidRouteTableForDelegatePrefixWarning, as eris prints it
    // (projects/gateway/pkg/translator/converter.go).
    assert!(msgs.iter().any(|m| m == "required prefix: /api, prefix: /other: invalid route: route table matchers must begin with the prefix of their parent route's matcher"), "{msgs:?}");
    let w = l
        .diagnostics
        .iter()
        .find(|d| d.message.contains("required prefix"))
        .expect("warning");
    assert_eq!(
        w.resource.as_ref().map(|r| r.kind.as_str()),
        Some("RouteTable")
    );
    assert_eq!(&*w.pos.file, std::path::Path::new("m3.yaml"));
    assert_eq!(paths(&model(&l)), ["/api/x"]);
}

#[test]
fn delegation_cycle_names_its_path() {
    let l = load(&[
        GW,
        UP,
        &vs("[{matchers: [{prefix: /}], delegateAction: {ref: {name: a}}}]"),
        &rt(
            "a",
            "",
            0,
            "[{matchers: [{prefix: /a}], delegateAction: {ref: {name: b}}}]",
        ),
        &rt(
            "b",
            "",
            0,
            "[{matchers: [{prefix: /a/b}], delegateAction: {ref: {name: a}}}]",
        ),
    ]);
    let msgs = messages(&l);
    assert!(
        msgs.iter().any(|m| m == "invalid route: delegation cycle detected: [gloo-system.a] -> [gloo-system.b] -> [gloo-system.a]"),
        "{msgs:?}"
    );
    assert!(l.has_errors());
}

#[test]
fn selectors_weights_and_specificity() {
    let l = load(&[
        GW,
        UP,
        &vs("[{matchers: [{prefix: /}], delegateAction: {selector: {labels: {team: x}}}}]"),
        &rt("heavy", "team: x", 10, &format!("[{}]", to_up("/z", ""))),
        &rt("light1", "team: x", 1, &format!("[{}]", to_up("/a", ""))),
        &rt(
            "light2",
            "team: x",
            1,
            &format!(
                "[{}, {{matchers: [{{exact: /a/exact}}], directResponseAction: {{status: 200}}}}]",
                to_up("/a/longer", "")
            ),
        ),
        &rt("other", "team: y", 0, &format!("[{}]", to_up("/nope", ""))),
    ]);
    assert!(!l.has_errors(), "{}", l.render_diagnostics());
    // Weight 1 first (two tables: re-sorted, exact then longer prefix), then 10.
    assert_eq!(paths(&model(&l)), ["/a/exact", "/a/longer", "/a", "/z"]);
}

/// Gloo's `SortRoutesByPath` (`projects/gloo/pkg/utils/sort_routes.go`,
/// `lessMatcher`) for route tables sharing a weight: more `methods` first,
/// then exact < regex < prefix, then the lexicographically greater path
/// first (not the longer one), each route keyed by its most specific
/// matcher.
#[test]
fn equal_weight_tables_sort_as_gloos_sort_routes_by_path() {
    let l = load(&[
        GW,
        UP,
        &vs("[{matchers: [{prefix: /}], delegateAction: {selector: {labels: {team: x}}}}]"),
        &rt(
            "a",
            "team: x",
            0,
            &format!(
                "[{}, {{matchers: [{{exact: /ab/x}}], directResponseAction: {{status: 200}}}}]",
                to_up("/ab", "")
            ),
        ),
        &rt(
            "b",
            "team: x",
            0,
            "[{matchers: [{prefix: /b}], directResponseAction: {status: 200}}, {matchers: [{prefix: /ac, methods: [GET]}], directResponseAction: {status: 200}}, {matchers: [{prefix: /z}, {exact: /aa}], directResponseAction: {status: 200}}]",
        ),
    ]);
    assert!(!l.has_errors(), "{}", l.render_diagnostics());
    // `/ac` has a method: first. Then the exact paths, greater first (the
    // last route is keyed by its exact `/aa`, not its first matcher
    // `/z`). Then the prefixes, `/b` > `/ab` byte-wise although shorter.
    assert_eq!(paths(&model(&l)), ["/ac", "/ab/x", "/z", "/b", "/ab"]);
}

#[test]
fn delegation_errors_and_warnings_use_gloos_texts() {
    let l = load(&[
        GW,
        UP,
        &vs(
            "[{matchers: [{exact: /x}], delegateAction: {ref: {name: a}}}, {matchers: [{prefix: /m}, {prefix: /n}], delegateAction: {ref: {name: a}}}, {matchers: [{prefix: /q}], delegateAction: {ref: {name: nope}}}, {matchers: [{prefix: /s}], delegateAction: {selector: {labels: {k: v}, expressions: [{key: k, operator: Exists}]}}}, {matchers: [{prefix: /t}], delegateAction: {selector: {labels: {none: here}}}}]",
        ),
        &rt("a", "", 0, &format!("[{}]", to_up("/x", ""))),
    ]);
    let msgs = messages(&l);
    for want in [
        "invalid route: routes with delegate actions must use a prefix matcher",
        "invalid route: routes with delegate actions must omit or specify a single matcher",
        "route table gloo-system.nope missing",
        "cannot use both labels and expressions within the same selector",
        "no route table matches the given selector",
    ] {
        assert!(
            msgs.iter().any(|m| m == want),
            "missing {want:?} in {msgs:?}"
        );
    }
}

#[test]
fn inheritable_matchers() {
    let l = load(&[
        GW,
        UP,
        &vs(
            "[{matchers: [{prefix: /p, headers: [{name: x-team, value: a}], methods: [GET]}], inheritableMatchers: true, inheritablePathMatchers: true, delegateAction: {ref: {name: a}}}]",
        ),
        &rt(
            "a",
            "",
            0,
            "[{matchers: [{headers: [{name: x-more}]}], routeAction: {single: {upstream: {name: up}}}}]",
        ),
    ]);
    assert!(!l.has_errors(), "{}", l.render_diagnostics());
    let m = model(&l);
    let r = &m.virtual_services.values().next().expect("vs").routes[0];
    let mt = &r.matchers[0];
    assert_eq!(mt.path, PathMatch::Prefix("/p".into()));
    let names: Vec<&str> = mt.headers.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["x-team", "x-more"]);
    assert_eq!(mt.methods, ["GET"]);
}

#[test]
fn gateway_selection_by_labels_and_namespaces() {
    let gw = "apiVersion: gateway.solo.io/v1\nkind: Gateway\nmetadata: {name: gw}\nspec: {bindPort: 8080, httpGateway: {virtualServiceSelector: {app: web}, virtualServiceNamespaces: [apps]}}\n";
    let mk = |name: &str, ns: &str, labels: &str, domain: &str| {
        format!(
            "apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata: {{name: {name}, namespace: {ns}, labels: {{{labels}}}}}\nspec: {{virtualHost: {{domains: [{domain}], routes: [{{matchers: [{{prefix: /}}], directResponseAction: {{status: 200}}}}]}}}}\n"
        )
    };
    let l = load(&[
        gw,
        &mk("yes", "apps", "app: web", "a.com"),
        &mk("wrong-label", "apps", "app: db", "b.com"),
        &mk("wrong-ns", "other", "app: web", "c.com"),
    ]);
    assert!(!l.has_errors(), "{}", l.render_diagnostics());
    let out = l.output.as_ref().expect("valid");
    let vhosts: Vec<String> = out["gloo-system~gateway-proxy"].route_configs[0]
        .proto()
        .virtual_hosts
        .into_iter()
        .map(|v| v.name)
        .collect();
    assert_eq!(vhosts, ["apps_yes"]);
}

#[test]
fn gloo_file_layout_is_read() {
    let l = load_files(&[
        (
            "cfg/gateways/gloo-system/gw.yaml",
            "metadata: {name: gw, namespace: gloo-system}\nbindAddress: '::'\nbindPort: 8080\nhttpGateway: {}\nproxyNames: [gateway-proxy]\nssl: false\n",
        ),
        (
            "cfg/upstreams/gloo-system/up.yaml",
            "metadata: {name: up}\nstatic: {hosts: [{addr: 127.0.0.1, port: 1}]}\nstatus: {state: 1}\n",
        ),
        (
            "cfg/virtualservices/gloo-system/vs.yaml",
            "metadata: {name: vs, namespace: gloo-system, resourceVersion: '3'}\nvirtualHost: {domains: ['*'], routes: [{matchers: [{prefix: /}], routeAction: {single: {upstream: {name: up}}}}]}\n",
        ),
    ]);
    assert!(!l.has_errors(), "{}", l.render_diagnostics());
    let out = l.output.as_ref().expect("valid");
    let p = &out["gloo-system~gateway-proxy"];
    assert_eq!(p.listeners[0].name, "listener-::-8080");
    assert_eq!(p.clusters[0].name, "up_gloo-system");
    // In the Kubernetes shape, metadata inside spec is refused.
    let l = load(&[
        "apiVersion: gloo.solo.io/v1\nkind: Upstream\nmetadata: {name: u}\nspec: {metadata: {}, static: {hosts: [{addr: 127.0.0.1, port: 1}]}}\n",
    ]);
    assert!(l.has_errors());
}

#[test]
fn unimplemented_gloo_features_are_rejected_by_name() {
    let l = load(&[
        GW,
        UP,
        &vs(
            "[{matchers: [{prefix: /}], routeAction: {single: {upstream: {name: up}}}, options: {jwt: {disable: true}}}]",
        ),
    ]);
    assert!(l.has_errors());
    let d = &l.diagnostics[0];
    assert_eq!(
        d.message,
        "`jwt` is a Gloo feature edgeplane does not implement here; VirtualService gloo-system.vs is rejected rather than served without it"
    );
    assert!(d.pos.line > 0);
}

#[test]
fn weighted_destinations_and_upstream_groups() {
    let ug = "apiVersion: gloo.solo.io/v1\nkind: UpstreamGroup\nmetadata: {name: g}\nspec: {destinations: [{destination: {upstream: {name: up}}, weight: 3}, {destination: {upstream: {name: up2}}, weight: 1}]}\n";
    let l = load(&[
        GW,
        UP,
        &UP.replace("name: up}", "name: up2}"),
        ug,
        &vs(
            "[{matchers: [{prefix: /g}], routeAction: {upstreamGroup: {name: g}}}, {matchers: [{prefix: /m}], routeAction: {multi: {destinations: [{destination: {upstream: {name: up}}, weight: 1}]}}}]",
        ),
    ]);
    assert!(!l.has_errors(), "{}", l.render_diagnostics());
    let m = model(&l);
    let routes = &m.virtual_services.values().next().expect("vs").routes;
    let Action::Weighted(w) = &routes[0].action else {
        panic!("weighted expected");
    };
    assert_eq!(
        w.iter()
            .map(|(k, w)| (k.name.as_str(), *w))
            .collect::<Vec<_>>(),
        [("up", 3), ("up2", 1)]
    );
    let l = load(&[
        GW,
        UP,
        &vs(
            "[{matchers: [{prefix: /m}], routeAction: {multi: {destinations: [{destination: {upstream: {name: up}}}]}}}]",
        ),
    ]);
    // Gloo's setWeightedClusters (projects/gloo/pkg/translator/route_config.go).
    assert!(
        messages(&l).contains(&"Incorrect configuration for Weighted Destination for route - Weighted Destinations require a total weight that is greater than or equal to 1".to_string()),
        "{:?}",
        messages(&l)
    );
    // Gloo's NoDestinationSpecifiedError and validateMultiDestination's
    // wrapping (projects/gloo/pkg/translator/route_config.go).
    let l = load(&[
        GW,
        UP,
        &vs(
            "[{matchers: [{prefix: /e}], routeAction: {multi: {destinations: []}}}, {matchers: [{prefix: /n}], routeAction: {multi: {destinations: [{destination: {upstream: {name: nope}}, weight: 1}]}}}]",
        ),
    ]);
    let msgs = messages(&l);
    assert!(
        msgs.contains(
            &"must specify at least one weighted destination for multi destination routes"
                .to_string()
        ),
        "{msgs:?}"
    );
    assert!(
        msgs.contains(
            &"invalid destination in weighted destination list: *v1.Upstream { gloo-system.nope } not found"
                .to_string()
        ),
        "{msgs:?}"
    );
}

#[test]
fn upstream_group_with_a_missing_upstream() {
    let ug = "apiVersion: gloo.solo.io/v1\nkind: UpstreamGroup\nmetadata: {name: g}\nspec: {destinations: [{destination: {upstream: {name: up}}, weight: 3}, {destination: {upstream: {name: nope}}, weight: 1}]}\n";
    let l = load(&[
        GW,
        UP,
        ug,
        &vs("[{matchers: [{prefix: /g}], routeAction: {upstreamGroup: {name: g}}}]"),
    ]);
    let of = |kind: &str| -> Vec<(bool, String)> {
        l.diagnostics
            .iter()
            .filter(|d| d.resource.as_ref().is_some_and(|r| r.kind == kind))
            .map(|d| (d.is_error(), d.message.clone()))
            .collect()
    };
    // The group's own report: an error, Gloo's verifyUpstreamGroups
    // (projects/gloo/pkg/translator/upstream_groups.go) wrapping
    // upstream.sk.go's `Find` text.
    assert_eq!(
        of("UpstreamGroup"),
        [(
            true,
            "destination # 2: upstream not found: list did not find upstream gloo-system.nope"
                .to_string()
        )],
        "{}",
        l.render_diagnostics()
    );
    // A destination with no upstream: Gloo's DestinationToUpstreamRef
    // (projects/gloo/pkg/upstreams/conversions.go), wrapped in a `multi` list
    // by validateMultiDestination (projects/gloo/pkg/translator/route_config.go).
    let l2 = load(&[
        GW,
        UP,
        &ug.replace("{upstream: {name: nope}}", "{}"),
        &vs(
            "[{matchers: [{prefix: /m}], routeAction: {multi: {destinations: [{destination: {}, weight: 1}]}}}]",
        ),
    ]);
    let msgs = messages(&l2);
    for want in [
        "no destination type specified; set upstream (kube and consul destinations are not implemented by edgeplane yet)",
        "invalid destination in weighted destination list: no destination type specified; set upstream (kube and consul destinations are not implemented by edgeplane yet)",
    ] {
        assert!(msgs.contains(&want.to_string()), "{msgs:?}");
    }
    // The route naming the group: a warning, as Gloo's validateUpstreamGroup
    // (projects/gloo/pkg/translator/route_config.go) wraps it.
    assert_eq!(
        of("VirtualService"),
        [(
            false,
            "invalid destination in weighted destination list: *v1.Upstream { gloo-system.nope } not found"
                .to_string()
        )],
        "{}",
        l.render_diagnostics()
    );
}

#[test]
fn re2_limits_are_checked_before_envoy_sees_them() {
    let l = load(&[
        GW,
        UP,
        &vs(
            "[{matchers: [{regex: '/a{1001}'}], routeAction: {single: {upstream: {name: up}}}}, {matchers: [{regex: '/b\\{1001\\}'}], routeAction: {single: {upstream: {name: up}}}}]",
        ),
    ]);
    let errs: Vec<_> = l.diagnostics.iter().filter(|d| d.is_error()).collect();
    assert_eq!(errs.len(), 1, "{}", l.render_diagnostics());
    assert!(errs[0].message.starts_with(
        "virtual service [gloo-system.vs] has a regex matcher with invalid regex, bad repetition operator: {1001}"
    ));
}

#[test]
fn remaining_gloo_texts() {
    let gw_ref = "apiVersion: gateway.solo.io/v1\nkind: Gateway\nmetadata: {name: gw}\nspec: {bindPort: 8080, httpGateway: {virtualServices: [{name: ghost}]}}\n";
    let l = load(&[gw_ref, UP]);
    assert!(
        messages(&l).contains(&"invalid virtual service ref gloo-system.ghost".to_string()),
        "{:?}",
        messages(&l)
    );

    let gw_h2 = "apiVersion: gateway.solo.io/v1\nkind: Gateway\nmetadata: {name: gw}\nspec: {bindPort: 8080, httpGateway: {options: {httpConnectionManagerSettings: {http2ProtocolOptions: {initialStreamWindowSize: 10, initialConnectionWindowSize: 20, maxConcurrentStreams: 0}, upgrades: [{}]}}}}\n";
    let msgs = messages(&load(&[gw_h2]));
    for want in [
        "Invalid Initial Stream Window Size: 10",
        "Invalid Initial Connection Window Size: 20",
        "Invalid Max Concurrent Streams Size: 0",
    ] {
        assert!(
            msgs.iter().any(|m| m == want),
            "missing {want:?} in {msgs:?}"
        );
    }
    assert!(
        msgs.iter()
            .any(|m| m.starts_with("unimplemented upgrade type")),
        "{msgs:?}"
    );

    let novh =
        "apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata: {name: bare}\nspec: {}\n";
    let empty_domain = "apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata: {name: dom}\nspec: {virtualHost: {domains: [a.com, '']}}\n";
    let msgs = messages(&load(&[GW, novh, empty_domain]));
    assert!(
        msgs.contains(
            &"virtual service [gloo-system.bare] does not specify a virtual host".to_string()
        ),
        "{msgs:?}"
    );
    assert!(
        msgs.contains(&"virtual host gloo-system_dom has an empty domain".to_string()),
        "{msgs:?}"
    );

    let mk = |name: &str, domains: &str| {
        format!(
            "apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata: {{name: {name}}}\nspec: {{virtualHost: {{domains: {domains}}}}}\n"
        )
    };
    let msgs = messages(&load(&[
        GW,
        &mk("a", "[x.com]"),
        &mk("b", "[x.com]"),
        &mk("c", "[]"),
        &mk("d", "[]"),
    ]));
    for want in [
        "domain conflict: the [x.com] domain is present in other virtual services that belong to the same Gateway as this one: [gloo-system.b]",
        "domain conflict: other virtual services that belong to the same Gateway as this one don't specify a domain (and thus default to '*'): [gloo-system.d]",
        "domain conflict: the following domains are present in more than one of the virtual services associated with this gateway: [EMPTY_DOMAIN x.com]",
    ] {
        assert!(
            msgs.iter().any(|m| m == want),
            "missing {want:?} in {msgs:?}"
        );
    }

    let l = load(&[
        GW,
        UP,
        &vs(
            "[{matchers: [{headers: [{name: a}]}], routeAction: {single: {upstream: {name: up}}}}]",
        ),
    ]);
    assert!(
        messages(&l)
            .iter()
            .any(|m| m.starts_with("invalid matcher: no path specifier provided")),
        "{:?}",
        messages(&l)
    );
}

#[test]
fn child_matcher_rules_beyond_the_prefix() {
    let parent = "[{matchers: [{prefix: /p, caseSensitive: true, headers: [{name: h, value: v}], queryParameters: [{name: q}], methods: [GET]}], delegateAction: {ref: {name: a}}}]";
    let child = |m: &str| {
        format!("[{{matchers: [{m}], routeAction: {{single: {{upstream: {{name: up}}}}}}}}]")
    };
    // Gloo's texts: InvalidPathMatchErr, InvalidHeaderErr,
    // InvalidQueryParamErr and InvalidMethodsErr wrapped with the methods
    // (projects/gateway/pkg/translator/converter.go).
    let cases = [
        (
            "{prefix: /p/x, headers: [{name: h, value: v}], queryParameters: [{name: q}], methods: [GET]}",
            "invalid route: route table matchers must have the same case sensitivity of their parent route's matcher",
        ),
        (
            "{prefix: /p/x, caseSensitive: true, queryParameters: [{name: q}], methods: [GET]}",
            "invalid route: route table matchers must have all headers that were specified on their parent route's matcher",
        ),
        (
            "{prefix: /p/x, caseSensitive: true, headers: [{name: h, value: v}], methods: [GET]}",
            "invalid route: route table matchers must have all query params that were specified on their parent route's matcher",
        ),
        (
            "{prefix: /p/x, caseSensitive: true, headers: [{name: h, value: v}], queryParameters: [{name: q}], methods: [POST]}",
            "required methods: [GET], methods: [POST]: invalid route: route table matchers must have all methods that were specified on their parent route's matcher",
        ),
    ];
    for (m, want) in cases {
        let l = load(&[GW, UP, &vs(parent), &rt("a", "", 0, &child(m))]);
        let msgs = messages(&l);
        assert!(msgs.iter().any(|x| x == want), "{want}: {msgs:?}");
        assert!(!l.has_errors(), "warnings only");
    }
}

#[test]
fn connect_terminate_is_route_level_only() {
    let gw = "apiVersion: gateway.solo.io/v1\nkind: Gateway\nmetadata: {name: gw}\nspec: {bindPort: 8080, httpGateway: {options: {httpConnectionManagerSettings: {upgrades: [{connectTerminate: {}}]}}}}\n";
    let msgs = messages(&load(&[gw]));
    assert!(msgs.contains(&"connect_terminate is not supported at HCM level; use 'connect' at HCM level and 'connect_terminate' at route level".to_string()), "{msgs:?}");

    let l = load(&[
        GW,
        UP,
        &vs(
            "[{matchers: [{prefix: /}], routeAction: {single: {upstream: {name: up}}}, options: {upgrades: [{connectTerminate: {}}, {websocket: {}}]}}]",
        ),
    ]);
    assert!(!l.has_errors(), "{}", l.render_diagnostics());
    let out = l.output.as_ref().expect("valid");
    let r = &out["gloo-system~gateway-proxy"].route_configs[0]
        .proto()
        .virtual_hosts[0]
        .routes[0];
    let Some(envoy_types::pb::envoy::config::route::v3::route::Action::Route(ra)) = &r.action
    else {
        panic!("route action");
    };
    assert_eq!(ra.upgrade_configs[0].upgrade_type, "CONNECT");
    assert!(ra.upgrade_configs[0].connect_config.is_some());
    assert!(ra.upgrade_configs[1].connect_config.is_none());
    // connect and connectTerminate are both CONNECT to Envoy: not unique.
    let l = load(&[
        GW,
        UP,
        &vs(
            "[{matchers: [{prefix: /}], routeAction: {single: {upstream: {name: up}}}, options: {upgrades: [{connect: {}}, {connectTerminate: {}}]}}]",
        ),
    ]);
    assert!(messages(&l).contains(&"upgrade config CONNECT is not unique".to_string()));
}

#[test]
fn star_and_no_domains_collide_and_retry_backoff_rules() {
    let mk = |name: &str, domains: &str| {
        format!(
            "apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata: {{name: {name}}}\nspec: {{virtualHost: {{domains: {domains}}}}}\n"
        )
    };
    let msgs = messages(&load(&[GW, &mk("a", "['*']"), &mk("b", "[]")]));
    assert!(
        msgs.contains(&"VirtualHost Error: DomainsNotUniqueError. Reason: domain * is shared by the following virtual hosts: [gloo-system_a gloo-system_b]".to_string()),
        "{msgs:?}"
    );
    let retry = |b: &str| {
        vs(&format!(
            "[{{matchers: [{{prefix: /}}], routeAction: {{single: {{upstream: {{name: up}}}}}}, options: {{retries: {{retryBackOff: {b}}}}}}}]"
        ))
    };
    // Gloo's texts: convertPolicy in projects/gloo/pkg/plugins/basicroute/plugin.go.
    for (backoff, want) in [
        (
            "{baseInterval: 2s, maxInterval: 1s}",
            "retries.retryBackOff: base interval: 2000 is > max interval: 1000",
        ),
        (
            "{maxInterval: 1s}",
            "retries.retryBackOff: max interval was defined, but the base interval was not",
        ),
        (
            "{baseInterval: 0s}",
            "retries.retryBackOff: base interval for retry backoff was <= than 0 | you provided: 0",
        ),
        (
            "{baseInterval: 1s, maxInterval: 0s}",
            "retries.retryBackOff: max interval for retry backoff was <= than 0 | you provided: 0",
        ),
    ] {
        let msgs = messages(&load(&[GW, UP, &retry(backoff)]));
        assert!(msgs.iter().any(|m| m == want), "{want}: {msgs:?}");
    }
}

#[test]
fn route_table_errors_are_copied_onto_the_virtual_service() {
    let l = load(&[
        GW,
        UP,
        &vs("[{matchers: [{prefix: /a}], delegateAction: {ref: {name: a}}}]"),
        &rt("a", "", 0, "[{matchers: [{prefix: /a/x}]}]"),
    ]);
    let on_vs = l
        .diagnostics
        .iter()
        .find(|d| {
            d.resource
                .as_ref()
                .is_some_and(|r| r.kind == "VirtualService")
        })
        .expect("error on the VirtualService");
    assert_eq!(
        on_vs.message,
        "on sub route table gloo-system.a: invalid route: route must specify an action"
    );
}

/// Gloo's header manipulation rules: request headers in
/// `pkg/utils/api_conversion/type.go` (`: -prefixed or host headers may not
/// be modified`), response headers in
/// `projects/gloo/pkg/plugins/headers/plugin.go` (CantSetPseudoHeaderError,
/// CantSetHostHeaderError). Removing `:`-prefixed or `Host` headers Gloo
/// passes on, and Envoy 1.40 then rejects the whole RouteConfiguration
/// ("may not be removed"), so edgeplane refuses it first.
#[test]
fn header_manipulation_refuses_pseudo_and_host_headers() {
    let with = |hm: &str| {
        let l = load(&[
            GW,
            UP,
            &vs(&format!(
                "[{}]",
                to_up("/", &format!(", options: {{headerManipulation: {hm}}}"))
            )),
        ]);
        messages(&l)
    };
    let cases = [
        (
            "{requestHeadersToAdd: [{header: {key: ':authority', value: a}}]}",
            ": -prefixed or host headers may not be modified. Received ':authority' header",
        ),
        (
            "{requestHeadersToAdd: [{header: {key: Host, value: a}}]}",
            ": -prefixed or host headers may not be modified. Received 'Host' header",
        ),
        (
            "{responseHeadersToAdd: [{header: {key: ':status', value: '200'}}]}",
            ":-prefixed headers cannot be set: ':status'",
        ),
        (
            "{responseHeadersToAdd: [{header: {key: Host, value: a}}]}",
            "cannot set Host header in response headers",
        ),
        (
            "{requestHeadersToRemove: [host]}",
            ":-prefixed or host headers may not be removed: 'host'",
        ),
        (
            "{responseHeadersToRemove: [':path']}",
            ":-prefixed or host headers may not be removed: ':path'",
        ),
        (
            "{responseHeadersToAdd: [{header: {key: '', value: a}}]}",
            "header key must not be empty",
        ),
    ];
    for (hm, want) in cases {
        let got = with(hm);
        assert!(got.iter().any(|m| m == want), "{hm}: {got:?}");
    }
    assert!(
        with("{requestHeadersToAdd: [{header: {key: x-a, value: a}}], responseHeadersToRemove: [x-b]}")
            .is_empty()
    );
}

/// Gloo's `ValidateRoutePath` and `ValidatePrefixRewrite`
/// (`projects/gloo/pkg/translator/route_config.go`), with Gloo's texts
/// (`the path is invalid: …`, `the rewrite is invalid: …`). Cases from
/// Gloo's own `route_config_test.go` table: `//`, `/./`, `/../`, `%2f`,
/// `#`, a trailing `/..`, characters outside RFC 3986.
#[test]
fn route_paths_are_validated_as_gloo_does() {
    let msgs = |route: &str| messages(&load(&[GW, UP, &vs(&format!("[{route}]"))]));
    let pattern = "^(?:([A-Za-z0-9/:@._~!$&'()*+,:=;-]*|[%][0-9a-fA-F]{2}))*$";
    let cases = [
        (
            to_up("/a//b", ""),
            "the path is invalid: /a//b: path [/a//b] cannot contain [//]".to_string(),
        ),
        (
            to_up("/a/./b", ""),
            "the path is invalid: /a/./b: path [/a/./b] cannot contain [/./]".into(),
        ),
        (
            to_up("/a/../b", ""),
            "the path is invalid: /a/../b: path [/a/../b] cannot contain [/../]".into(),
        ),
        (
            to_up("/a%2fb", ""),
            "the path is invalid: /a%2fb: path [/a%2fb] cannot contain [%2f]".into(),
        ),
        (
            to_up("/a/..", ""),
            "the path is invalid: /a/..: path [/a/..] cannot end with [/..]".into(),
        ),
        (
            to_up("'/a b'", ""),
            format!(
                "the path is invalid: /a b: must only contain valid characters matching pattern {pattern}"
            ),
        ),
        (
            to_up("/", ", options: {prefixRewrite: '/x//y'}"),
            "the rewrite is invalid: /x//y: path [/x//y] cannot contain [//]".into(),
        ),
        (
            to_up("/", ", options: {prefixRewrite: '/%zz'}"),
            "the rewrite is invalid: /%zz: parse \"/%zz\": invalid URL escape \"%zz\"".into(),
        ),
        (
            "{matchers: [{prefix: /}], redirectAction: {pathRedirect: '/a?b'}}".into(),
            format!(
                "the path is invalid: /a?b: must only contain valid characters matching pattern {pattern}"
            ),
        ),
    ];
    for (route, want) in cases {
        let got = msgs(&route);
        assert!(got.contains(&want), "{route}: {got:?}");
    }
    // A rewrite's query is not part of its path (Go's url.Parse), and escapes
    // that decode to valid characters are fine.
    assert!(
        msgs(&to_up(
            "/a%20b/c~d",
            ", options: {prefixRewrite: '/x?y=//'}"
        ))
        .is_empty()
    );
}

/// `cors` on a forwarding route needs an origin (Gloo's cors plugin,
/// `translateCommonUserCorsConfig`); a redirect cannot carry CORS at all
/// (InvalidRouteActionError). `projects/gloo/pkg/plugins/cors/plugin.go`.
#[test]
fn cors_needs_an_origin_and_a_forwarding_route() {
    let msgs = |route: &str| messages(&load(&[GW, UP, &vs(&format!("[{route}]"))]));
    assert_eq!(
        msgs(&to_up("/", ", options: {cors: {}}")),
        ["invalid cors config: must provide at least one of AllowOrigin or AllowOriginRegex"]
    );
    assert_eq!(
        msgs(
            "{matchers: [{prefix: /}], redirectAction: {hostRedirect: a.example}, options: {cors: {allowOrigin: [x]}}}"
        ),
        ["cannot use cors plugin on non-Route_Route route actions"]
    );
    assert!(msgs("{matchers: [{prefix: /}], directResponseAction: {status: 200}, options: {cors: {allowOrigin: [x]}}}").is_empty());
}

/// `virtualServiceExpressions` present with no expressions selects every
/// VirtualService and wins over refs and labels
/// (`HttpGatewayContainsVirtualService`,
/// `projects/gateway/pkg/translator/virtual_service_translator.go`).
#[test]
fn empty_expressions_select_every_virtual_service() {
    let gw = "apiVersion: gateway.solo.io/v1\nkind: Gateway\nmetadata: {name: gw}\nspec: {bindPort: 8080, httpGateway: {virtualServiceExpressions: {expressions: []}, virtualServices: [{name: a}]}}\n";
    let mk = |name: &str, domain: &str| {
        format!(
            "apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata: {{name: {name}}}\nspec: {{virtualHost: {{domains: [{domain}], routes: [{{matchers: [{{prefix: /}}], directResponseAction: {{status: 200}}}}]}}}}\n"
        )
    };
    let l = load(&[gw, &mk("a", "a.com"), &mk("b", "b.com")]);
    assert!(!l.has_errors(), "{}", l.render_diagnostics());
    let out = l.output.as_ref().expect("valid");
    let vhosts: Vec<String> = out["gloo-system~gateway-proxy"].route_configs[0]
        .proto()
        .virtual_hosts
        .into_iter()
        .map(|v| v.name)
        .collect();
    assert_eq!(vhosts, ["gloo-system_a", "gloo-system_b"]);
}

/// Gloo's own table for `ValidateRoutePath` and `ValidatePrefixRewrite`
/// (`projects/gloo/pkg/translator/route_config_test.go`), case for case.
#[test]
fn gloos_route_path_table() {
    use super::routes::{go_url_path, route_path_problem};
    let paths = [
        ("%af", true),
        ("%Af", true),
        ("%00", true),
        ("%11", true),
        ("%af801&*", true),
        ("801&*%af", true),
        ("801&*%af719$@!", true),
        ("%0", false),
        ("ƒ©", false),
        ("¥¨˚∫", false),
        ("hello/something//", false),
        ("hello/something/./", false),
        ("hello/something/../", false),
        ("hello/something%2F", false),
        ("hello/something%2f", false),
        ("hello/something#", false),
        ("hello/../something", false),
        ("hello/./something", false),
    ];
    for (p, ok) in paths {
        assert_eq!(route_path_problem(p).is_none(), ok, "{p}");
    }
    let singles = ('a'..='z')
        .chain('A'..='Z')
        .chain('0'..='9')
        .chain("-._~!$&'()*+,;=:@".chars());
    for c in singles {
        assert!(route_path_problem(&c.to_string()).is_none(), "{c}");
    }
    for c in "<>?\\|[]{}\"^%#".chars() {
        assert!(route_path_problem(&c.to_string()).is_some(), "{c}");
    }
    let rewrites = [
        ("some/site?a=data&b=location&c=searchterm", true),
        ("some/site#framgentedinfo", true),
        ("some/site<hello", false),
        ("some/site{hello", false),
        ("some/site}hello", false),
        ("some/site[hello", false),
    ];
    for (r, ok) in rewrites {
        let problem = match go_url_path(r) {
            Ok(p) => route_path_problem(&p),
            Err(e) => Some(e),
        };
        assert_eq!(problem.is_none(), ok, "{r}: {problem:?}");
    }
}

/// The errors (message, line) of one route with `options`.
fn option_errors(options: &str) -> Vec<(String, u32)> {
    let l = load(&[
        GW,
        UP,
        &vs(&format!(
            "\n      - matchers: [{{prefix: /}}]\n        routeAction: {{single: {{upstream: {{name: up}}}}}}\n        options: {options}"
        )),
    ]);
    l.diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| (d.message.clone(), d.pos.line))
        .collect()
}

/// Gloo's checks for the route options it translates (`plugins/shadowing`,
/// `plugins/faultinjection`, `plugins/loadbalancer`, `plugins/buffer`),
/// plus what Envoy would NACK; every error points at the route's options.
#[test]
fn gloo_route_option_errors() {
    let cases: [(&str, &str); 13] = [
        (
            "{shadowing: {upstream: {name: nope}, percentage: 10}}",
            "shadowing upstream *v1.Upstream { gloo-system.nope } not found",
        ),
        (
            "{shadowing: {percentage: 10}}",
            // Gloo's UnspecifiedUpstreamError (plugins/shadowing/plugin.go).
            "shadowing: invalid plugin spec: must specify an upstream ref",
        ),
        (
            "{shadowing: {upstream: {name: up}, percentage: 101}}",
            "shadow percentage must be between 0 and 100, received 101",
        ),
        (
            "{faults: {abort: {percentage: 10, httpStatus: 600}}}",
            "invalid abort status code '600', must be in range of [200,600)",
        ),
        (
            "{faults: {abort: {percentage: 10}}}",
            "invalid abort status code '0', must be in range of [200,600)",
        ),
        (
            "{faults: {delay: {percentage: 10, fixedDelay: 500ms}}}",
            // Gloo's toEnvoyDelay (plugins/faultinjection/plugin.go).
            "invalid delay duration '500ms', must be greater than 0; Gloo counts whole seconds: use at least 1s",
        ),
        (
            "{faults: {delay: {percentage: 10}}}",
            "invalid delay duration '<nil>', must be greater than 0; set faults.delay.fixedDelay",
        ),
        (
            "{faults: {delay: {percentage: -1, fixedDelay: 1s}}}",
            "faults.delay.percentage must be between 0 and 100, received -1",
        ),
        (
            "{lbHash: {hashPolicies: [{terminal: true}]}}",
            "lbHash hash policy must set exactly one of header, cookie and sourceIp",
        ),
        (
            "{lbHash: {hashPolicies: [{header: x, sourceIp: true}]}}",
            "lbHash hash policy must set exactly one of header, cookie and sourceIp",
        ),
        (
            "{bufferPerRoute: {buffer: {maxRequestBytes: 0}}}",
            "bufferPerRoute.buffer.maxRequestBytes must be greater than 0",
        ),
        (
            "{csrf: {filterEnabled: {defaultValue: {numerator: 1, denominator: THOUSAND}}}}",
            "csrf.filterEnabled.defaultValue.denominator `THOUSAND` is not one of HUNDRED, TEN_THOUSAND, MILLION",
        ),
        (
            "{envoyMetadata: {io.solo: 3}}",
            "envoyMetadata.io.solo must be a mapping (a google.protobuf.Struct)",
        ),
    ];
    for (options, want) in cases {
        let errs = option_errors(options);
        assert!(
            errs.iter().any(|(m, line)| m == want && *line >= 6),
            "{options}: want {want:?} at the options line, got {errs:?}"
        );
    }
    // Valid ones are accepted.
    for ok in [
        "{shadowing: {upstream: {name: up}, percentage: 100}}",
        "{faults: {abort: {percentage: 100, httpStatus: 503}, delay: {percentage: 0, fixedDelay: 1.5s}}}",
        "{lbHash: {hashPolicies: [{cookie: {name: c, ttl: 10s}}]}}",
        "{bufferPerRoute: {disabled: true}, csrf: {additionalOrigins: [{prefix: https://}]}, envoyMetadata: {a: {b: [1, {c: null}]}}}",
    ] {
        assert_eq!(option_errors(ok), Vec::<(String, u32)>::new(), "{ok}");
    }
}

/// Gloo's shadowing and lbhash plugins refuse redirects and direct
/// responses ("cannot use … plugin on non-Route_Route route actions").
#[test]
fn shadowing_and_lb_hash_need_a_route_action() {
    for (opt, plugin) in [
        (
            "shadowing: {upstream: {name: up}, percentage: 1}",
            "shadowing",
        ),
        ("lbHash: {hashPolicies: [{sourceIp: true}]}", "lbhash"),
    ] {
        let l = load(&[
            GW,
            UP,
            &vs(&format!(
                "[{{matchers: [{{prefix: /}}], directResponseAction: {{status: 200}}, options: {{{opt}}}}}]"
            )),
        ]);
        assert!(
            messages(&l).contains(&format!(
                "cannot use {plugin} plugin on non-Route_Route route actions"
            )),
            "{:?}",
            messages(&l)
        );
    }
}

/// Each configuration here was accepted by edgeplane and refused by Envoy
/// 1.40 (found by the never-NACK oracle, `tests/it/never_nack.rs`); each is
/// now refused first, with Envoy's reason in edgeplane's words.
#[test]
fn what_envoy_refuses_is_refused_first() {
    let route = |m: &str, extra: &str| {
        format!("{{matchers: [{m}], routeAction: {{single: {{upstream: {{name: up}}}}}}{extra}}}")
    };
    let cases: Vec<(String, &str)> = vec![
        // QueryParameterMatcherValidationError.Name: length >= 1
        (
            route("{prefix: /, queryParameters: [{name: '', value: a}]}", ""),
            "a queryParameters matcher needs a name",
        ),
        // RegexMatcherValidationError.Regex: length >= 1
        (
            route(
                "{prefix: /, headers: [{name: x, value: '', regex: true}]}",
                "",
            ),
            "empty regex",
        ),
        // an empty method becomes an empty `:method` regex
        (
            route("{prefix: /, methods: ['']}", ""),
            "is not an HTTP method name",
        ),
        // RE2: "bad repetition operator: **"
        (route("{regex: 'a**'}", ""), "bad repetition operator: **"),
        // "Specify only one of prefix_rewrite, regex_rewrite or path_rewrite_policy"
        (
            route(
                "{prefix: /}",
                ", options: {prefixRewrite: /x, regexRewrite: {pattern: {regex: a}, substitution: b}}",
            ),
            "set only one of prefixRewrite and regexRewrite",
        ),
        // MetadataValidationError.FilterMetadata: key length >= 1
        (
            route("{prefix: /}", ", options: {envoyMetadata: {'': {k: v}}}"),
            "namespace name must not be empty",
        ),
        // "Incorrect configuration: 100%. Couldn't find valid command at position 3"
        (
            route(
                "{prefix: /}",
                ", options: {headerManipulation: {responseHeadersToAdd: [{header: {key: x, value: '100%'}}]}}",
            ),
            "is not a valid Envoy header format",
        ),
        // "Not supported field in StreamInfo: BOGUS"
        (
            route(
                "{prefix: /}",
                ", options: {headerManipulation: {requestHeadersToAdd: [{header: {key: x, value: '%BOGUS%'}}]}}",
            ),
            "is not a valid Envoy header format",
        ),
    ];
    for (r, want) in cases {
        let got = messages(&load(&[GW, UP, &vs(&format!("[{r}]"))]));
        assert!(got.iter().any(|m| m.contains(want)), "{r}: {got:?}");
    }
    // VirtualHostValidationError.Domains: no NUL, CR or LF
    let vs_nl = vs(&format!("[{}]", route("{prefix: /}", ""))).replace(
        "  virtualHost:\n",
        "  virtualHost:\n    domains: [\"a.com\", \"x\\ny\"]\n",
    );
    let got = messages(&load(&[GW, UP, &vs_nl]));
    assert!(
        got.iter()
            .any(|m| m.contains("has a domain with a NUL, CR or LF")),
        "{got:?}"
    );
    // HttpConnectionManagerValidationError.Via / ServerName: header values
    for field in ["via", "serverName"] {
        let gw = format!(
            "apiVersion: gateway.solo.io/v1\nkind: Gateway\nmetadata: {{name: gw}}\nspec: {{bindPort: 8080, httpGateway: {{options: {{httpConnectionManagerSettings: {{{field}: \"a\\nb\"}}}}}}}}\n"
        );
        let got = messages(&load(&[
            &gw,
            UP,
            &vs(&format!("[{}]", route("{prefix: /}", ""))),
        ]));
        assert!(
            got.iter().any(|m| m.contains("holds a NUL, CR or LF")),
            "{field}: {got:?}"
        );
    }
    // HttpProtocolOptionsValidationError.MaxHeadersCount: >= 1
    let gw = "apiVersion: gateway.solo.io/v1\nkind: Gateway\nmetadata: {name: gw}\nspec: {bindPort: 8080, httpGateway: {options: {httpConnectionManagerSettings: {maxHeadersCount: 0}}}}\n";
    let got = messages(&load(&[
        gw,
        UP,
        &vs(&format!("[{}]", route("{prefix: /}", ""))),
    ]));
    assert!(
        got.iter()
            .any(|m| m.contains("maxHeadersCount must be at least 1")),
        "{got:?}"
    );
    // HttpConnectionManagerValidationError.MaxRequestHeadersKb: (0, 8192]
    for kb in [0, 8193] {
        let gw = format!(
            "apiVersion: gateway.solo.io/v1\nkind: Gateway\nmetadata: {{name: gw}}\nspec: {{bindPort: 8080, httpGateway: {{options: {{httpConnectionManagerSettings: {{maxRequestHeadersKb: {kb}}}}}}}}}\n"
        );
        let got = messages(&load(&[
            &gw,
            UP,
            &vs(&format!("[{}]", route("{prefix: /}", ""))),
        ]));
        assert!(
            got.iter()
                .any(|m| m.contains("outside Envoy's range 1-8192")),
            "{kb}: {got:?}"
        );
    }
    // What Envoy takes stays accepted.
    let fine = route(
        "{prefix: /, methods: [GET, PATCH], queryParameters: [{name: q}]}",
        ", options: {headerManipulation: {responseHeadersToAdd: [{header: {key: x, value: '100%% %REQ(x-a)%'}}]}}",
    );
    assert!(messages(&load(&[GW, UP, &vs(&format!("[{fine}]"))])).is_empty());
}

fn vho(name: &str, options: &str) -> String {
    format!(
        "apiVersion: gateway.solo.io/v1\nkind: VirtualHostOption\nmetadata: {{name: {name}, namespace: gloo-system}}\nspec:\n  options: {options}\n"
    )
}

fn route_option(name: &str, options: &str) -> String {
    format!(
        "apiVersion: gateway.solo.io/v1\nkind: RouteOption\nmetadata: {{name: {name}, namespace: gloo-system}}\nspec:\n  options: {options}\n"
    )
}

fn vs_vhost(options: &str, refs: &str, routes: &str) -> String {
    format!(
        "apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata: {{name: vs}}\nspec:\n  virtualHost:\n    options: {options}\n    optionsConfigRefs: {{delegateOptions: {refs}}}\n    routes: {routes}\n"
    )
}

/// Gloo's `mergeDelegatedVirtualHostOptions`
/// (`projects/gateway/pkg/translator/virtual_service_translator.go`) with
/// `ShallowMergeVirtualHostOptions` (`projects/gloo/pkg/utils/merge.go`):
/// the VirtualService's own options win, then refs in order (an earlier
/// ref wins over a later one), field by top-level field.
#[test]
fn virtual_host_option_refs_merge_as_gloo_does() {
    let l = load(&[
        GW,
        UP,
        &vho(
            "first",
            "{retries: {numRetries: 7}, includeRequestAttemptCount: false}",
        ),
        &vho(
            "second",
            "{retries: {numRetries: 9}, headerManipulation: {requestHeadersToRemove: [x-second]}, includeRequestAttemptCount: true, includeAttemptCountInResponse: true}",
        ),
        &vs_vhost(
            "{headerManipulation: {requestHeadersToRemove: [x-own]}}",
            "[{name: first, namespace: gloo-system}, {name: second, namespace: gloo-system}]",
            &format!("[{}]", to_up("/", "")),
        ),
    ]);
    assert!(l.diagnostics.is_empty(), "{:?}", l.diagnostics);
    let m = model(&l);
    let vs = m.virtual_services.values().next().expect("vs");
    let o = &vs.options;
    // Own options win.
    assert_eq!(
        o.header_manipulation
            .as_ref()
            .map(|h| h.request_headers_to_remove.clone()),
        Some(vec!["x-own".to_string()])
    );
    // The first ref wins over the second.
    assert_eq!(o.retries.as_ref().map(|r| r.num_retries), Some(7));
    // A wrapper set to false is set (Go's isEmptyValue on a pointer).
    assert_eq!(o.include_request_attempt_count, Some(false));
    // What neither the VirtualService nor the first ref sets comes from the
    // second.
    assert_eq!(o.include_attempt_count_in_response, Some(true));
    assert_eq!(
        vs.vhost_option_refs
            .iter()
            .map(|k| k.to_string())
            .collect::<Vec<_>>(),
        ["gloo-system.first", "gloo-system.second"]
    );
}

/// Gloo's converter (`projects/gateway/pkg/translator/converter.go`):
/// RouteOption refs fill what a route's own options leave unset, earlier
/// refs first, and only then does a delegating parent's options fill the
/// rest (`ShallowMergeRouteOptions(child, parent)`).
#[test]
fn route_option_refs_merge_before_parent_options() {
    let parent = "{matchers: [{prefix: /a}], delegateAction: {ref: {name: child}}, options: {timeout: 9s, idleTimeout: 9s, prefixRewrite: /parent}}";
    let child_route = to_up(
        "/a",
        ", options: {timeout: 1s}, optionsConfigRefs: {delegateOptions: [{name: one, namespace: gloo-system}, {name: two, namespace: gloo-system}]}",
    );
    let l = load(&[
        GW,
        UP,
        &route_option("one", "{timeout: 2s, idleTimeout: 2s}"),
        &route_option(
            "two",
            "{idleTimeout: 3s, retries: {numRetries: 3}, prefixRewrite: /two}",
        ),
        &vs(&format!("[{parent}]")),
        &rt("child", "", 0, &format!("[{child_route}]")),
    ]);
    assert!(l.diagnostics.is_empty(), "{:?}", l.diagnostics);
    let m = model(&l);
    let vs = m.virtual_services.values().next().expect("vs");
    let o = &vs.routes[0].options;
    let secs = |d: Option<crate::model::Duration>| d.map(|d| d.seconds);
    assert_eq!(secs(o.timeout), Some(1), "inline wins");
    assert_eq!(secs(o.idle_timeout), Some(2), "earlier ref wins");
    assert_eq!(o.retries.as_ref().map(|r| r.num_retries), Some(3));
    assert_eq!(
        o.prefix_rewrite.as_deref(),
        Some("/two"),
        "refs win over the parent"
    );
    assert_eq!(
        vs.route_option_refs
            .iter()
            .map(|k| k.to_string())
            .collect::<Vec<_>>(),
        ["gloo-system.one", "gloo-system.two"]
    );
}

/// A missing ref is only a warning with Gloo's text (the generated
/// `Find` of `projects/gateway/pkg/api/v1/*.sk.go`); the namespace is not
/// defaulted, as in Gloo. An invalid option resource is rejected with its
/// own error and rejects its referrers; `targetRefs` is refused by name.
#[test]
fn option_refs_missing_invalid_and_refused() {
    let l = load(&[
        GW,
        UP,
        &vho("present", "{includeRequestAttemptCount: true}"),
        &vs_vhost(
            "{}",
            "[{name: nope, namespace: gloo-system}, {name: present}]",
            &format!(
                "[{}]",
                to_up(
                    "/",
                    ", optionsConfigRefs: {delegateOptions: [{name: gone, namespace: gloo-system}]}"
                )
            ),
        ),
    ]);
    assert!(l.output.is_some(), "warnings only: {:?}", l.diagnostics);
    let warnings: Vec<(bool, String)> = l
        .diagnostics
        .iter()
        .map(|d| (d.is_error(), d.message.clone()))
        .collect();
    assert_eq!(
        warnings,
        [
            (
                false,
                "list did not find virtualHostOption gloo-system.nope".to_string()
            ),
            (
                false,
                "list did not find virtualHostOption .present".to_string()
            ),
            (
                false,
                "list did not find routeOption gloo-system.gone".to_string()
            ),
        ]
    );
    assert!(
        l.diagnostics.iter().any(|d| d
            .hint
            .as_deref()
            .is_some_and(|h| h.contains("namespace: gloo-system"))),
        "{:?}",
        l.diagnostics
    );

    let l = load(&[
        GW,
        UP,
        &vho("bad", "{cors: {allowMethods: [GET]}}"),
        &vs_vhost(
            "{}",
            "[{name: bad, namespace: gloo-system}]",
            &format!("[{}]", to_up("/", "")),
        ),
    ]);
    let errors: Vec<(String, String)> = l
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| {
            (
                d.resource
                    .as_ref()
                    .map(|r| r.kind.clone())
                    .unwrap_or_default(),
                d.message.clone(),
            )
        })
        .collect();
    assert_eq!(
        errors,
        [
            (
                "VirtualHostOption".to_string(),
                "invalid cors config: must provide at least one of AllowOrigin or AllowOriginRegex".to_string()
            ),
            (
                "VirtualService".to_string(),
                "on VirtualHostOption gloo-system.bad: invalid cors config: must provide at least one of AllowOrigin or AllowOriginRegex".to_string()
            ),
        ]
    );

    for doc in [
        vho("t", "{}")
            + "  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]\n",
        route_option("t", "{}")
            + "  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]\n",
    ] {
        let l = load(&[GW, UP, &doc]);
        assert!(
            messages(&l)
                .iter()
                .any(|m| m
                    .starts_with("`targetRefs` is a Gloo feature edgeplane does not implement")),
            "{:?}",
            l.diagnostics
        );
    }
}

/// Gloo's file layout keeps the option kinds under their plurals.
#[test]
fn option_kinds_in_gloos_file_layout() {
    let l = load_files(&[
        (
            "gateways/gloo-system/gw.yaml",
            "metadata: {name: gw}\nbindPort: 8080\nhttpGateway: {}\n",
        ),
        (
            "upstreams/gloo-system/up.yaml",
            "metadata: {name: up}\nstatic: {hosts: [{addr: 127.0.0.1, port: 1}]}\n",
        ),
        (
            "virtualhostoptions/gloo-system/vho.yaml",
            "metadata: {name: vho}\noptions: {includeAttemptCountInResponse: true}\n",
        ),
        (
            "routeoptions/gloo-system/ro.yaml",
            "metadata: {name: ro}\noptions: {timeout: 4s}\n",
        ),
        (
            "virtualservices/gloo-system/vs.yaml",
            "metadata: {name: vs}\nvirtualHost:\n  optionsConfigRefs: {delegateOptions: [{name: vho, namespace: gloo-system}]}\n  routes:\n  - matchers: [{prefix: /}]\n    routeAction: {single: {upstream: {name: up}}}\n    optionsConfigRefs: {delegateOptions: [{name: ro, namespace: gloo-system}]}\n",
        ),
    ]);
    assert!(l.diagnostics.is_empty(), "{:?}", l.diagnostics);
    let m = model(&l);
    let vs = m.virtual_services.values().next().expect("vs");
    assert_eq!(vs.options.include_attempt_count_in_response, Some(true));
    assert_eq!(vs.routes[0].options.timeout.map(|d| d.seconds), Some(4));
}

// === tcpGateway / hybridGateway ===

fn tcp_gw(hosts: &str) -> String {
    format!(
        "apiVersion: gateway.solo.io/v1\nkind: Gateway\nmetadata: {{name: tcp}}\nspec:\n  bindPort: 9000\n  tcpGateway:\n    tcpHosts:\n{hosts}"
    )
}

#[test]
fn tcp_hosts_model_passthrough_termination_and_destinations() {
    use crate::model::{GatewayKind, Key, TcpDestination, TcpHostTls};
    let hosts = "    - {name: pass, sslConfig: {sniDomains: [a.test]}, destination: {single: {upstream: {name: up}}}}\n    - {name: sni, sslConfig: {sniDomains: [b.test]}, destination: {forwardSniClusterName: {}}}\n    - {name: plain, destination: {multi: {destinations: [{destination: {upstream: {name: up}}, weight: 2}]}}}\n";
    let l = load(&[&tcp_gw(hosts), UP]);
    assert!(!l.has_errors(), "{}", l.render_diagnostics());
    let m = model(&l);
    let gw = m.gateways.values().next().expect("gateway");
    let GatewayKind::Tcp(t) = &gw.kind else {
        panic!("tcp gateway expected")
    };
    assert_eq!(
        t.hosts[0].tls,
        TcpHostTls::Passthrough(vec!["a.test".into()])
    );
    assert_eq!(t.hosts[1].destination, TcpDestination::ForwardSni);
    assert_eq!(
        t.hosts[2].destination,
        TcpDestination::Weighted(vec![(Key::new("gloo-system", "up"), 2)])
    );
    // A TCP gateway selects no VirtualService and has no routes.
    assert!(gw.http_parts().is_empty());
}

#[test]
fn tcp_host_needs_an_existing_upstream_and_distinct_matches() {
    let hosts = "    - name: a\n      destination: {single: {upstream: {name: nope}}}\n    - name: b\n      destination: {single: {upstream: {name: up}}}\n";
    let l = load(&[&tcp_gw(hosts), UP]);
    let text = l.render_diagnostics();
    assert!(
        text.contains("*v1.Upstream { gloo-system.nope } not found"),
        "{text}"
    );
    // Reported where the reference is (line 9 of the document).
    assert!(text.contains(":9:"), "{text}");
    let hosts = "    - name: a\n      destination: {single: {upstream: {name: up}}}\n    - name: b\n      destination: {single: {upstream: {name: up}}}\n";
    let l = load(&[&tcp_gw(hosts), UP]);
    let text = l.render_diagnostics();
    assert!(
        text.contains("the filter chains of tcp host a and tcp host b both match any server name from any source"),
        "{text}"
    );
    let l = load(&[&tcp_gw("    - name: a\n"), UP]);
    assert!(
        l.render_diagnostics()
            .contains("no destination type was specified for tcp host a"),
        "{}",
        l.render_diagnostics()
    );
    // A single destination without an upstream: Gloo's DestinationToUpstreamRef
    // (projects/gloo/pkg/upstreams/conversions.go).
    let l = load(&[
        &tcp_gw("    - name: a\n      destination: {single: {}}\n"),
        UP,
    ]);
    assert!(
        l.render_diagnostics()
            .contains("tcp host a: no destination type specified; set destination.single.upstream"),
        "{}",
        l.render_diagnostics()
    );
}

#[test]
fn hybrid_refusals_are_named() {
    let gw = "apiVersion: gateway.solo.io/v1\nkind: Gateway\nmetadata: {name: h}\nspec:\n  bindPort: 9000\n  hybridGateway:\n    delegatedHttpGateways: {ref: {name: x}}\n";
    let text = load(&[gw]).render_diagnostics();
    assert!(
        text.contains("hybridGateway.delegatedHttpGateways is not implemented by edgeplane yet"),
        "{text}"
    );
    let gw = "apiVersion: gateway.solo.io/v1\nkind: Gateway\nmetadata: {name: h}\nspec:\n  bindPort: 9000\n  hybridGateway:\n    matchedGateways:\n    - matcher: {passthroughCipherSuites: [AES128-SHA]}\n      tcpGateway: {tcpHosts: [{name: a, destination: {single: {upstream: {name: up}}}}]}\n";
    let text = load(&[gw, UP]).render_diagnostics();
    assert!(
        text.contains("matcher.passthroughCipherSuites is not implemented by edgeplane"),
        "{text}"
    );
    let gw = "apiVersion: gateway.solo.io/v1\nkind: Gateway\nmetadata: {name: h}\nspec:\n  bindPort: 9000\n  hybridGateway:\n    matchedGateways:\n    - matcher: {sslConfig: {sniDomains: [a.test]}}\n      tcpGateway: {tcpHosts: [{name: x, sslConfig: {sniDomains: [b.test]}, destination: {single: {upstream: {name: up}}}}]}\n";
    let text = load(&[gw, UP]).render_diagnostics();
    assert!(
        text.contains("gateway has conflicting sni domains [x:b.test]"),
        "{text}"
    );
    let gw = "apiVersion: gateway.solo.io/v1\nkind: Gateway\nmetadata: {name: h}\nspec: {bindPort: 9000}\n";
    let text = load(&[gw]).render_diagnostics();
    assert!(text.contains("gateway must contain gatewayType"), "{text}");
}

#[test]
fn destination_and_delegation_errors_use_gloos_words() {
    // Gloo's ValidateRouteDestinations
    // (projects/gloo/pkg/translator/route_config.go).
    let msgs = messages(&load(&[
        GW,
        &vs("[{matchers: [{prefix: /}], routeAction: {}}]"),
    ]));
    assert!(
        msgs.iter().any(|m| m.starts_with("routeAction: must specify either 'singleDestination', 'multipleDestinations', 'upstreamGroup', 'clusterHeader', or 'dynamicForwardProxy' for action;")),
        "{msgs:?}"
    );
    // Gloo's MissingRefAndSelectorWarning
    // (projects/gateway/pkg/translator/route_table_selector.go).
    let msgs = messages(&load(&[
        GW,
        &vs("[{matchers: [{prefix: /}], delegateAction: {}}]"),
    ]));
    assert!(
        msgs.contains(&"cannot determine delegation target: you must specify a route table either via a resource reference or a selector".to_string()),
        "{msgs:?}"
    );
    // Gloo's ValidateTcpRouteDestinations
    // (projects/gloo/pkg/translator/route_config.go).
    let msgs = messages(&load(&[
        &tcp_gw("    - name: a\n      destination: {}\n"),
        UP,
    ]));
    assert!(
        msgs.iter().any(|m| m.starts_with("tcp host a: must specify either 'singleDestination', 'multipleDestinations', 'upstreamGroup' or 'forwardSniClusterName' for action;")),
        "{msgs:?}"
    );
    // Gloo's ResolveCommonSslConfig (projects/gloo/pkg/utils/ssl.go).
    let ssl_vs = "apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata: {name: vs}\nspec:\n  sslConfig: {sslFiles: {tlsCert: /c.pem}}\n  virtualHost:\n    routes: [{matchers: [{prefix: /}], routeAction: {single: {upstream: {name: up}}}}]\n";
    let ssl_gw = "apiVersion: gateway.solo.io/v1\nkind: Gateway\nmetadata: {name: gws}\nspec: {bindPort: 8443, ssl: true, httpGateway: {}}\n";
    let msgs = messages(&load(&[ssl_gw, UP, ssl_vs]));
    assert!(
        msgs.contains(&"sslConfig.sslFiles: both or none of cert chain and private key must be provided; set tlsCert and tlsKey".to_string()),
        "{msgs:?}"
    );
}

/// `validate_reusing` (the reload's path) gives exactly what a fresh
/// validation gives, through edits that shift routes, remove what a route
/// refers to and rename its VirtualService; and it does reuse: an
/// unchanged route's body is the last load's allocation.
#[test]
fn validation_reusing_route_bodies_equals_a_fresh_one() {
    use std::sync::Arc;

    use crate::manifest::ParseCache;

    let up2 = UP.replace("name: up}", "name: up2}");
    let route = |prefix: &str, up: &str| {
        format!(
            "    - matchers:\n      - prefix: {prefix}\n      routeAction:\n        single:\n          upstream: {{name: {up}}}\n"
        )
    };
    let vs_of = |name: &str, routes: &[String]| {
        format!(
            "apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata: {{name: {name}}}\nspec:\n  virtualHost:\n    domains: ['*']\n    routes:\n{}",
            routes.concat()
        )
    };
    let base = vec![
        route("/a", "up"),
        route("/b", "up2"),
        route("/c", "nowhere"),
        "    - name: named\n      matchers: [{prefix: /d}]\n      directResponseAction: {status: 200}\n".to_string(),
        "    - matchers: [{exact: /e}]\n      options: {prefixRewrite: /x}\n      routeAction: {single: {upstream: {name: up}}}\n".to_string(),
    ];
    let mut shifted = vec![route("/new", "up")];
    shifted.extend(base.iter().cloned());
    let mut edited = shifted.clone();
    edited[3] = route("/c", "up");
    let mut edited2 = edited.clone();
    edited2[0] = route("/new2", "up");
    // (whether Upstream up2 exists, the VirtualService's name, its routes)
    let steps = [
        (true, "vs", &base),
        (true, "vs", &shifted),
        // up2 gone: the route to it now has a warning.
        (false, "vs", &shifted),
        (true, "vs", &edited),
        (true, "vs", &edited2),
        (true, "renamed", &edited2),
    ];
    let mut cache = ParseCache::default();
    let mut memo = super::ValidateMemo::default();
    let mut last: Option<Model> = None;
    let mut shared_with_last = Vec::new();
    for (i, (with_up2, name, routes)) in steps.into_iter().enumerate() {
        let mut files = vec![("gw.yaml", GW.to_string()), ("up.yaml", UP.to_string())];
        if with_up2 {
            files.push(("up2.yaml", up2.clone()));
        }
        files.push(("vs.yaml", vs_of(name, routes)));
        let files: Vec<SourceFile> = files
            .into_iter()
            .map(|(p, text)| SourceFile {
                path: PathBuf::from(p),
                text,
            })
            .collect();
        let (docs, parse_diags, _) = cache.parse(&files);
        assert!(parse_diags.is_empty(), "step {i}: {parse_diags:?}");
        let (reused, _) = super::validate_reusing(&docs, &mut memo);
        let fresh = super::validate_refs(&docs.iter().map(Arc::as_ref).collect::<Vec<_>>());
        assert_eq!(reused.model, fresh.model, "step {i}");
        assert_eq!(reused.diagnostics, fresh.diagnostics, "step {i}");
        let warned = reused.diagnostics.iter().any(|d| d.message.contains("up2"));
        assert_eq!(warned, i == 2, "step {i}: {:?}", reused.diagnostics);
        if let Some(prev) = &last {
            let bodies = |m: &Model| -> Vec<Arc<crate::model::RouteBody>> {
                m.virtual_services
                    .values()
                    .flat_map(|v| v.routes.iter().map(|r| r.body.clone()))
                    .collect()
            };
            let (old, new) = (bodies(prev), bodies(&reused.model));
            shared_with_last.push(
                new.iter()
                    .filter(|b| old.iter().any(|o| Arc::ptr_eq(o, b)))
                    .count(),
            );
        }
        last = Some(reused.model);
    }
    // Step 1 inserted a route ahead of the others: the three plain routes
    // without a diagnostic (/a, /b, named) kept their bodies; the one with
    // options and the one with a warning were validated again. Steps 2 and
    // 3 changed an Upstream: nothing is taken. Step 4 changed one route of
    // the VirtualService only: its four other plain routes are taken (/c
    // has no warning since step 3). Step 5 renamed it: nothing is taken.
    assert_eq!(
        shared_with_last,
        vec![3, 0, 0, 4, 0],
        "bodies taken per step"
    );
}
