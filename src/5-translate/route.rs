//! Gateway + its VirtualServices → one RouteConfiguration.
//!
//! Route options (timeouts, rewrites, retries, upgrades…) apply only to
//! routes that forward to upstreams, as in Gloo's basic-route plugin;
//! redirects and direct responses ignore them. Header manipulation, CSRF,
//! `bufferPerRoute` and `envoyMetadata` apply to every route, as Gloo's
//! plugins set them on the route whatever its action.
//!
//! A route may carry several per-filter configs (and metadata namespaces):
//! protobuf maps, which prost encodes in hash order; the snapshot encodes
//! them canonically (`canonical`), so bytes stay deterministic.

use envoy_types::pb::envoy::config::core::v3::Metadata;
use envoy_types::pb::envoy::config::core::v3::RuntimeFractionalPercent;
use envoy_types::pb::envoy::config::core::v3::{
    DataSource, HeaderValue, HeaderValueOption, data_source, header_value_option,
};
use envoy_types::pb::envoy::config::route::v3::{
    DirectResponseAction, HeaderMatcher, QueryParameterMatcher, RedirectAction, RetryPolicy, Route,
    RouteAction, RouteConfiguration, RouteMatch, VirtualHost, WeightedCluster, header_matcher,
    query_parameter_matcher, redirect_action, retry_policy, route, route_action, route_match,
    weighted_cluster,
};
use envoy_types::pb::envoy::extensions::filters::common::fault::v3::{FaultDelay, fault_delay};
use envoy_types::pb::envoy::extensions::filters::http::buffer::v3::{
    Buffer, BufferPerRoute, buffer_per_route,
};
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy;
use envoy_types::pb::envoy::extensions::filters::http::csrf::v3::CsrfPolicy;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{
    FaultAbort, HttpFault, fault_abort,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{
    RegexMatchAndSubstitute, RegexMatcher, StringMatcher, string_matcher,
};
use envoy_types::pb::envoy::r#type::v3::FractionalPercent;
use envoy_types::pb::envoy::r#type::v3::fractional_percent::DenominatorType;
use envoy_types::pb::google::protobuf::{
    Any, ListValue, NullValue, Struct, UInt32Value, Value as ProtoValue, value,
};

use super::http_filters as hf;
use super::names;
use super::proto::{
    self, BUFFER_FILTER, CORS_FILTER, CSRF_FILTER, EXT_AUTHZ_FILTER, FAULT_FILTER, bool_value,
    duration,
};
use super::route_memo::{self, Build, RouteConfig, Unnamed};

/// `m` packed with its map entries in canonical order: an
/// `ExtAuthzPerRoute`'s context extensions are a protobuf map, and the
/// snapshot's canonical encoding does not look inside `Any`.
fn canonical_any<M: prost::Message + prost::Name>(m: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: super::canonical::encode(m),
    }
}
use crate::model::{self, Action, Gateway, Model, PathMatch, UpgradeKind};

/// The RouteConfiguration `proxy` gets from `gw`, encoded. The proxy
/// matters only to route names: Gloo names a named route after its gateway
/// and proxy. Routes equal to ones `build`'s memo holds take their encoding.
pub(super) fn route_configuration(
    gw: &Gateway,
    proxy: &str,
    model: &Model,
    build: &mut Build<'_>,
) -> RouteConfig {
    let head = format!("vs:{}_{proxy}_", gw.key.name);
    let ext_authz = gw.ext_authz.is_some();
    let mut hosts: Vec<(String, Vec<u8>)> = model
        .virtual_services
        .values()
        .filter(|vs| gw.selects(vs))
        .map(|vs| virtual_host(vs, &head, ext_authz, build))
        .collect();
    hosts.sort_by(|a, b| a.0.cmp(&b.0));
    let mut children = Vec::with_capacity(hosts.iter().map(|(_, b)| b.len() + 8).sum());
    for (_, body) in &hosts {
        route_memo::write_field(VIRTUAL_HOSTS, body, &mut children);
    }
    let name = names::route_config_name(gw);
    let shell = super::canonical::encode(&RouteConfiguration {
        name: name.clone(),
        ..Default::default()
    });
    RouteConfig {
        name,
        bytes: route_memo::splice::<RouteConfiguration>(&shell, VIRTUAL_HOSTS, &children).into(),
    }
}

/// `RouteConfiguration.virtual_hosts` and `VirtualHost.routes`.
const VIRTUAL_HOSTS: u32 = 2;
const ROUTES: u32 = 3;

/// `n` in decimal, appended to `s` (no formatting machinery).
fn push_decimal(s: &mut String, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[at..] {
        s.push(char::from(d));
    }
}

/// `head` is `vs:<gateway>_<proxy>_`, the start of Gloo's converter name of
/// a named route (`model::Route::name` holds the rest). `ext_authz`: the
/// Gateway has an auth server, so Gloo's extauth plugin configures the
/// virtual host and its routes (and does nothing otherwise). Returns the
/// virtual host's name and encoding.
fn virtual_host(
    vs: &model::VirtualService,
    head: &str,
    ext_authz: bool,
    build: &mut Build<'_>,
) -> (String, Vec<u8>) {
    let name = names::vhost_name(vs);
    let pieces = build.host(vs, ext_authz, |r| {
        r.matchers
            .iter()
            .map(|m| Unnamed::encode(&envoy_route(String::new(), m, r, &vs.options, ext_authz)))
            .collect()
    });
    let mut routes = Vec::with_capacity(
        pieces
            .iter()
            .flat_map(|p| p.iter())
            .map(|u| u.len() + name.len() + head.len() + 64)
            .sum(),
    );
    let mut rname = String::new();
    for (i, (r, p)) in vs.routes.iter().zip(pieces.iter()).enumerate() {
        for (j, u) in p.iter().enumerate() {
            // Gloo's route_config.go: `<vhost>-route-<i>[-<name>]-matcher-<j>`.
            // Built by hand: `format!` was a twentieth of a 10,000-route reload.
            rname.clear();
            rname.push_str(&name);
            rname.push_str("-route-");
            push_decimal(&mut rname, i);
            rname.push('-');
            if let Some(n) = &r.name {
                rname.push_str(head);
                rname.push_str(n);
                rname.push('-');
            }
            rname.push_str("matcher-");
            push_decimal(&mut rname, j);
            u.write_named(ROUTES, &rname, &mut routes);
        }
    }
    let shell = super::canonical::encode(&virtual_host_shell(vs, name.clone(), ext_authz));
    let body = route_memo::splice::<VirtualHost>(&shell, ROUTES, &routes);
    (name, body)
}

/// A virtual host without its routes.
fn virtual_host_shell(vs: &model::VirtualService, name: String, ext_authz: bool) -> VirtualHost {
    let domains = if vs.domains.is_empty() {
        vec!["*".to_string()]
    } else {
        vs.domains.clone()
    };
    let o = &vs.options;
    let hm = o.header_manipulation.clone().unwrap_or_default();
    // Gloo's vhost plugins: cors (no `filter_enabled`, that is
    // route-specific), csrf and buffer as per-filter configs.
    let mut per_filter: Vec<(&str, Any)> = Vec::new();
    if let Some(c) = &o.cors {
        per_filter.push((CORS_FILTER, proto::any(cors_policy(c))));
    }
    if let Some(c) = &o.csrf {
        per_filter.push((CSRF_FILTER, proto::any(csrf_policy(c))));
    }
    if let Some(b) = &o.buffer_per_route {
        per_filter.push((BUFFER_FILTER, proto::any(buffer_per_route(b))));
    }
    if ext_authz && let Some(a) = hf::ext_authz_per_route(o.extauth.as_ref(), true) {
        per_filter.push((EXT_AUTHZ_FILTER, canonical_any(&a)));
    }
    VirtualHost {
        name,
        domains,
        request_headers_to_add: header_options(&hm.request_headers_to_add),
        request_headers_to_remove: hm.request_headers_to_remove,
        response_headers_to_add: header_options(&hm.response_headers_to_add),
        response_headers_to_remove: hm.response_headers_to_remove,
        typed_per_filter_config: per_filter
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        retry_policy: o.retries.as_ref().map(retry_policy),
        include_request_attempt_count: o.include_request_attempt_count.unwrap_or(false),
        include_attempt_count_in_response: o.include_attempt_count_in_response.unwrap_or(false),
        ..Default::default()
    }
}

/// A route's CORS policy as Gloo's cors plugin makes it before translating
/// (`mergeCors`): with the virtual host's `corsPolicyMergeSettings` and a
/// virtual host policy, `exposeHeaders: UNION` joins both lists (the
/// virtual host's first, repeats dropped) when both are non-empty; every
/// other field stays the route's.
fn merged_cors(route: &model::Cors, vh: &model::VirtualHostOptions) -> model::Cors {
    let mut out = route.clone();
    if let (Some(merge), Some(vc)) = (vh.cors_merge, &vh.cors)
        && merge.union_expose_headers
        && !vc.expose_headers.is_empty()
        && !route.expose_headers.is_empty()
    {
        let mut seen = std::collections::BTreeSet::new();
        out.expose_headers = vc
            .expose_headers
            .iter()
            .chain(&route.expose_headers)
            .filter(|h| seen.insert(h.as_str()))
            .cloned()
            .collect();
    }
    out
}

fn regex(re: &str) -> RegexMatcher {
    RegexMatcher {
        regex: re.to_string(),
        ..Default::default()
    }
}

fn string_match(value: &str, regex_: bool) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(if regex_ {
            string_matcher::MatchPattern::SafeRegex(regex(value))
        } else {
            string_matcher::MatchPattern::Exact(value.to_string())
        }),
        ..Default::default()
    }
}

fn route_match(m: &model::Matcher) -> RouteMatch {
    let path_specifier = match &m.path {
        PathMatch::Prefix(p) => route_match::PathSpecifier::Prefix(p.clone()),
        PathMatch::Exact(p) => route_match::PathSpecifier::Path(p.clone()),
        PathMatch::Regex(re) => route_match::PathSpecifier::SafeRegex(regex(re)),
    };
    let mut headers: Vec<HeaderMatcher> = m
        .headers
        .iter()
        .map(|h| HeaderMatcher {
            name: h.name.clone(),
            invert_match: h.invert,
            header_match_specifier: Some(match &h.value {
                None => header_matcher::HeaderMatchSpecifier::PresentMatch(true),
                Some(v) => {
                    header_matcher::HeaderMatchSpecifier::StringMatch(string_match(v, h.regex))
                }
            }),
            ..Default::default()
        })
        .collect();
    // Gloo renders methods as a `:method` regex alternation.
    if !m.methods.is_empty() {
        headers.push(HeaderMatcher {
            name: ":method".to_string(),
            header_match_specifier: Some(header_matcher::HeaderMatchSpecifier::StringMatch(
                string_match(&m.methods.join("|"), true),
            )),
            ..Default::default()
        });
    }
    let query_parameters = m
        .query_parameters
        .iter()
        .map(|q| QueryParameterMatcher {
            name: q.name.clone(),
            query_parameter_match_specifier: Some(match &q.value {
                None => query_parameter_matcher::QueryParameterMatchSpecifier::PresentMatch(true),
                Some(v) => query_parameter_matcher::QueryParameterMatchSpecifier::StringMatch(
                    string_match(v, q.regex),
                ),
            }),
        })
        .collect();
    RouteMatch {
        path_specifier: Some(path_specifier),
        case_sensitive: m.case_sensitive.map(bool_value),
        headers,
        query_parameters,
        ..Default::default()
    }
}

fn header_options(adds: &[(String, String, bool)]) -> Vec<HeaderValueOption> {
    adds.iter()
        .map(|(k, v, append)| HeaderValueOption {
            header: Some(HeaderValue {
                key: k.clone(),
                value: v.clone(),
                ..Default::default()
            }),
            append_action: if *append {
                header_value_option::HeaderAppendAction::AppendIfExistsOrAdd
            } else {
                header_value_option::HeaderAppendAction::OverwriteIfExistsOrAdd
            } as i32,
            ..Default::default()
        })
        .collect()
}

fn envoy_route(
    name: String,
    m: &model::Matcher,
    r: &model::Route,
    vh: &model::VirtualHostOptions,
    ext_authz: bool,
) -> Route {
    let o = &r.options;
    let cors = o.cors.as_ref().map(|c| merged_cors(c, vh));
    let action = match &r.action {
        Action::Upstream(key) => route::Action::Route(route_action(
            route_action::ClusterSpecifier::Cluster(names::cluster_name(key)),
            o,
        )),
        Action::UpstreamGroupNotFound(key) => route::Action::Route(route_action(
            route_action::ClusterSpecifier::Cluster(names::missing_upstream_group_cluster(key)),
            o,
        )),
        Action::Weighted(dests) => route::Action::Route(route_action(
            route_action::ClusterSpecifier::WeightedClusters(WeightedCluster {
                clusters: dests
                    .iter()
                    .map(|(k, w)| weighted_cluster::ClusterWeight {
                        name: names::cluster_name(k),
                        weight: Some(proto::u32(*w)),
                        // Gloo (`pluginutils.MarkPerFilterConfig`) puts a
                        // multi-destination route's faults on each
                        // destination, not on the route.
                        typed_per_filter_config: o
                            .faults
                            .as_ref()
                            .map(|f| (FAULT_FILTER.to_string(), proto::any(http_fault(f))))
                            .into_iter()
                            .collect(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }),
            o,
        )),
        Action::Redirect(rd) => route::Action::Redirect(RedirectAction {
            host_redirect: rd.host.clone().unwrap_or_default(),
            port_redirect: rd.port.unwrap_or(0),
            response_code: redirect_code(rd.response_code),
            strip_query: rd.strip_query,
            scheme_rewrite_specifier: rd
                .https
                .then_some(redirect_action::SchemeRewriteSpecifier::HttpsRedirect(true)),
            path_rewrite_specifier: match (&rd.path, &rd.prefix_rewrite) {
                (Some(p), _) => Some(redirect_action::PathRewriteSpecifier::PathRedirect(
                    p.clone(),
                )),
                (None, Some(p)) => Some(redirect_action::PathRewriteSpecifier::PrefixRewrite(
                    p.clone(),
                )),
                (None, None) => None,
            },
        }),
        Action::DirectResponse { status, body } => {
            route::Action::DirectResponse(DirectResponseAction {
                status: *status,
                body: body.as_ref().map(|b| DataSource {
                    specifier: Some(data_source::Specifier::InlineString(b.clone())),
                    ..Default::default()
                }),
                ..Default::default()
            })
        }
    };
    let hm = o.header_manipulation.clone().unwrap_or_default();
    let mut per_filter: Vec<(&str, Any)> = Vec::new();
    let forwards = r.action.forwards();
    if let (true, Some(c)) = (forwards, &cors) {
        per_filter.push((CORS_FILTER, proto::any(cors_policy(c))));
    }
    // Gloo's fault plugin configures single-destination routes here (and
    // nothing for redirects and direct responses).
    if let (Action::Upstream(_), Some(f)) = (&r.action, &o.faults) {
        per_filter.push((FAULT_FILTER, proto::any(http_fault(f))));
    }
    if let Some(b) = &o.buffer_per_route {
        per_filter.push((BUFFER_FILTER, proto::any(buffer_per_route(b))));
    }
    if let Some(c) = &o.csrf {
        per_filter.push((CSRF_FILTER, proto::any(csrf_policy(c))));
    }
    if ext_authz && let Some(a) = hf::ext_authz_per_route(o.extauth.as_ref(), false) {
        per_filter.push((EXT_AUTHZ_FILTER, canonical_any(&a)));
    }
    // Gloo's metadata plugin: set only when some namespace is given.
    let metadata = (!o.envoy_metadata.is_empty()).then(|| Metadata {
        filter_metadata: o
            .envoy_metadata
            .iter()
            .map(|(ns, fields)| (ns.clone(), proto_struct(fields)))
            .collect(),
        ..Default::default()
    });
    Route {
        typed_per_filter_config: per_filter
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        metadata,
        name,
        r#match: Some(route_match(m)),
        action: Some(action),
        request_headers_to_add: header_options(&hm.request_headers_to_add),
        request_headers_to_remove: hm.request_headers_to_remove,
        response_headers_to_add: {
            let mut h = header_options(&hm.response_headers_to_add);
            if let (Action::DirectResponse { .. }, Some(c)) = (&r.action, &cors) {
                h.extend(cors_response_headers(c));
            }
            h
        },
        response_headers_to_remove: hm.response_headers_to_remove,
        ..Default::default()
    }
}

fn route_action(cluster: route_action::ClusterSpecifier, o: &model::RouteOptions) -> RouteAction {
    RouteAction {
        cluster_specifier: Some(cluster),
        timeout: o.timeout.map(duration),
        idle_timeout: o.idle_timeout.map(duration),
        prefix_rewrite: o.prefix_rewrite.clone().unwrap_or_default(),
        regex_rewrite: o.regex_rewrite.as_ref().map(|(pattern, substitution)| {
            RegexMatchAndSubstitute {
                pattern: Some(regex(pattern)),
                substitution: substitution.clone(),
            }
        }),
        host_rewrite_specifier: match (&o.host_rewrite, o.auto_host_rewrite) {
            (Some(h), _) => Some(route_action::HostRewriteSpecifier::HostRewriteLiteral(
                h.clone(),
            )),
            (None, Some(b)) => Some(route_action::HostRewriteSpecifier::AutoHostRewrite(
                bool_value(b),
            )),
            (None, None) => None,
        },
        max_stream_duration: o.max_stream_duration.as_ref().map(|m| {
            route_action::MaxStreamDuration {
                max_stream_duration: m.max_stream_duration.map(duration),
                grpc_timeout_header_max: m.grpc_timeout_header_max.map(duration),
                grpc_timeout_header_offset: m.grpc_timeout_header_offset.map(duration),
            }
        }),
        retry_policy: o.retries.as_ref().map(retry_policy),
        upgrade_configs: o
            .upgrades
            .iter()
            .map(|u| route_action::UpgradeConfig {
                upgrade_type: names::upgrade_type(u.kind).to_string(),
                enabled: u.enabled.map(bool_value),
                connect_config: (u.kind == UpgradeKind::ConnectTerminate)
                    .then(route_action::upgrade_config::ConnectConfig::default),
            })
            .collect(),
        // Gloo's shadowing plugin: one mirror, its share as Gloo's
        // `ToEnvoyPercentage` gives it.
        request_mirror_policies: o
            .shadowing
            .iter()
            .map(|sh| route_action::RequestMirrorPolicy {
                cluster: names::cluster_name(&sh.upstream),
                runtime_fraction: Some(RuntimeFractionalPercent {
                    default_value: Some(proto::percent_per_million(sh.percentage)),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect(),
        hash_policy: o.hash_policies.iter().map(hash_policy).collect(),
        ..Default::default()
    }
}

/// Gloo's `convertPolicy` (basicroute plugin), for routes and virtual
/// hosts alike.
fn retry_policy(r: &model::Retries) -> RetryPolicy {
    RetryPolicy {
        retry_on: r.retry_on.clone(),
        num_retries: Some(UInt32Value {
            value: r.num_retries,
        }),
        per_try_timeout: r.per_try_timeout.map(duration),
        retriable_status_codes: r.retriable_status_codes.clone(),
        retry_back_off: r.base_interval.map(|b| retry_policy::RetryBackOff {
            base_interval: Some(duration(b)),
            max_interval: r.max_interval.map(duration),
        }),
        ..Default::default()
    }
}

/// Gloo's lbhash plugin: header, cookie (name, ttl, path) or source IP.
fn hash_policy(p: &model::HashPolicy) -> route_action::HashPolicy {
    use route_action::hash_policy::{self, PolicySpecifier};
    let spec = match &p.key {
        model::HashKey::Header(h) => PolicySpecifier::Header(hash_policy::Header {
            header_name: h.clone(),
            ..Default::default()
        }),
        model::HashKey::Cookie { name, ttl, path } => {
            PolicySpecifier::Cookie(hash_policy::Cookie {
                name: name.clone(),
                ttl: ttl.map(duration),
                path: path.clone().unwrap_or_default(),
                ..Default::default()
            })
        }
        model::HashKey::SourceIp(on) => {
            PolicySpecifier::ConnectionProperties(hash_policy::ConnectionProperties {
                source_ip: *on,
            })
        }
    };
    route_action::HashPolicy {
        policy_specifier: Some(spec),
        terminal: p.terminal,
    }
}

/// Gloo's fault plugin: abort with an HTTP status and/or a fixed delay,
/// each for a share of requests (`ToEnvoyPercentage`).
fn http_fault(f: &model::Faults) -> HttpFault {
    HttpFault {
        abort: f.abort.map(|(pct, status)| FaultAbort {
            percentage: Some(proto::percent_per_million(pct)),
            error_type: Some(fault_abort::ErrorType::HttpStatus(status)),
            ..Default::default()
        }),
        delay: f.delay.map(|(pct, d)| FaultDelay {
            percentage: Some(proto::percent_per_million(pct)),
            fault_delay_secifier: Some(fault_delay::FaultDelaySecifier::FixedDelay(duration(d))),
        }),
        ..Default::default()
    }
}

/// Gloo's buffer plugin, per route: off, or a request size limit.
fn buffer_per_route(b: &model::BufferPerRoute) -> BufferPerRoute {
    BufferPerRoute {
        r#override: Some(match b {
            model::BufferPerRoute::Disabled => buffer_per_route::Override::Disabled(true),
            model::BufferPerRoute::MaxRequestBytes(n) => {
                buffer_per_route::Override::Buffer(Buffer {
                    max_request_bytes: Some(proto::u32(*n)),
                })
            }
        }),
    }
}

/// Gloo's CSRF plugin (`translateCsrfConfig`): an unset `filterEnabled`
/// becomes an explicit 0% (Envoy would read a missing default as 100%).
pub(super) fn csrf_policy(c: &model::Csrf) -> CsrfPolicy {
    let rfp = |r: &model::RuntimePercent| RuntimeFractionalPercent {
        default_value: Some(FractionalPercent {
            numerator: r.numerator,
            denominator: match r.denominator {
                model::Denominator::Hundred => DenominatorType::Hundred,
                model::Denominator::TenThousand => DenominatorType::TenThousand,
                model::Denominator::Million => DenominatorType::Million,
            } as i32,
        }),
        runtime_key: r.runtime_key.clone(),
    };
    CsrfPolicy {
        filter_enabled: Some(c.filter_enabled.as_ref().map_or_else(
            || RuntimeFractionalPercent {
                default_value: Some(FractionalPercent::default()),
                ..Default::default()
            },
            rfp,
        )),
        shadow_enabled: c.shadow_enabled.as_ref().map(rfp),
        additional_origins: c
            .additional_origins
            .iter()
            .map(|o| {
                let (pattern, ignore_case) = match o {
                    model::OriginMatch::Exact { value, ignore_case } => (
                        string_matcher::MatchPattern::Exact(value.clone()),
                        *ignore_case,
                    ),
                    model::OriginMatch::Prefix { value, ignore_case } => (
                        string_matcher::MatchPattern::Prefix(value.clone()),
                        *ignore_case,
                    ),
                    model::OriginMatch::Suffix { value, ignore_case } => (
                        string_matcher::MatchPattern::Suffix(value.clone()),
                        *ignore_case,
                    ),
                    // Gloo drops ignoreCase for regexes.
                    model::OriginMatch::Regex(re) => {
                        (string_matcher::MatchPattern::SafeRegex(regex(re)), false)
                    }
                };
                StringMatcher {
                    match_pattern: Some(pattern),
                    ignore_case,
                }
            })
            .collect(),
    }
}

/// A JSON object as a `google.protobuf.Struct`.
fn proto_struct(fields: &serde_json::Map<String, serde_json::Value>) -> Struct {
    Struct {
        fields: fields
            .iter()
            .map(|(k, v)| (k.clone(), proto_value(v)))
            .collect(),
    }
}

fn proto_value(v: &serde_json::Value) -> ProtoValue {
    use serde_json::Value as J;
    let kind = match v {
        J::Null => value::Kind::NullValue(NullValue::NullValue as i32),
        J::Bool(b) => value::Kind::BoolValue(*b),
        J::Number(n) => value::Kind::NumberValue(n.as_f64().unwrap_or_default()),
        J::String(s) => value::Kind::StringValue(s.clone()),
        J::Array(items) => value::Kind::ListValue(ListValue {
            values: items.iter().map(proto_value).collect(),
        }),
        J::Object(fields) => value::Kind::StructValue(proto_struct(fields)),
    };
    ProtoValue { kind: Some(kind) }
}

fn cors_policy(c: &model::Cors) -> CorsPolicy {
    let origins = c
        .allow_origin
        .iter()
        .map(|o| string_match(o, false))
        .chain(c.allow_origin_regex.iter().map(|o| string_match(o, true)))
        .collect();
    CorsPolicy {
        allow_origin_string_match: origins,
        allow_methods: c.allow_methods.join(","),
        allow_headers: c.allow_headers.join(","),
        expose_headers: c.expose_headers.join(","),
        max_age: c.max_age.clone().unwrap_or_default(),
        allow_credentials: c.allow_credentials.map(bool_value),
        // Gloo's translateRouteSpecificCorsConfig: 0 of HUNDRED under the
        // runtime key `gloo.routeplugin.cors`.
        filter_enabled: c.disable_for_route.then(|| RuntimeFractionalPercent {
            default_value: Some(FractionalPercent {
                numerator: 0,
                denominator: 0,
            }),
            runtime_key: "gloo.routeplugin.cors".to_string(),
        }),
        ..Default::default()
    }
}

/// The CORS filter does not answer for a direct response, so Gloo writes a
/// direct-response route's CORS policy as response headers
/// (`getCorsResponseHeadersFromPolicy`, `projects/gloo/pkg/plugins/cors/
/// plugin.go`). Origins are deduplicated; Gloo's order comes from a Go map
/// and so varies, edgeplane's is sorted so it stays deterministic.
fn cors_response_headers(c: &model::Cors) -> Vec<HeaderValueOption> {
    let origins: std::collections::BTreeSet<&str> = c
        .allow_origin
        .iter()
        .chain(&c.allow_origin_regex)
        .map(String::as_str)
        .collect();
    let origins: Vec<&str> = origins.into_iter().collect();
    [
        ("Access-Control-Allow-Origin", origins.join(",")),
        ("Access-Control-Allow-Methods", c.allow_methods.join(",")),
        ("Access-Control-Allow-Headers", c.allow_headers.join(",")),
        ("Access-Control-Expose-Headers", c.expose_headers.join(",")),
        (
            "Access-Control-Max-Age",
            c.max_age.clone().unwrap_or_default(),
        ),
        (
            "Access-Control-Allow-Credentials",
            c.allow_credentials.unwrap_or(false).to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| HeaderValueOption {
        header: Some(HeaderValue {
            key: k.to_string(),
            value: v,
            ..Default::default()
        }),
        ..Default::default()
    })
    .collect()
}

fn redirect_code(c: model::RedirectCode) -> i32 {
    use redirect_action::RedirectResponseCode as E;
    (match c {
        model::RedirectCode::MovedPermanently => E::MovedPermanently,
        model::RedirectCode::Found => E::Found,
        model::RedirectCode::SeeOther => E::SeeOther,
        model::RedirectCode::TemporaryRedirect => E::TemporaryRedirect,
        model::RedirectCode::PermanentRedirect => E::PermanentRedirect,
    }) as i32
}

#[cfg(test)]
mod tests {
    #[test]
    fn push_decimal_writes_what_display_writes() {
        for n in [0, 7, 10, 99, 12_345, usize::MAX] {
            let mut s = String::from("x");
            super::push_decimal(&mut s, n);
            assert_eq!(s, format!("x{n}"));
        }
    }
}
