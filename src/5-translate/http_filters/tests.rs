//! `httpGateway.options` `gzip`, `healthCheck`, `csrf`, `grpcWeb` and the
//! connection manager's `tracing`, on whole manifests through the pure
//! pipeline. The expected shapes are those of Gloo's
//! `projects/gloo/pkg/plugins/gzip/plugin.go`, `healthcheck/plugin.go`,
//! `csrf/plugin.go`, `grpcweb/plugin.go`, `tracing/plugin.go` (with
//! `pkg/utils/api_conversion/trace.go`) and of `plugins/staged_filters.go`
//! for the order.

use std::path::PathBuf;

use envoy_types::pb::envoy::config::core::v3::grpc_service::TargetSpecifier;
use envoy_types::pb::envoy::config::listener::v3::{Listener, filter};
use envoy_types::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier;
use envoy_types::pb::envoy::config::trace::v3::tracing::http;
use envoy_types::pb::envoy::config::trace::v3::{OpenTelemetryConfig, ZipkinConfig};
use envoy_types::pb::envoy::extensions::compression::gzip::compressor::v3::Gzip;
use envoy_types::pb::envoy::extensions::filters::http::compressor::v3::Compressor;
use envoy_types::pb::envoy::extensions::filters::http::csrf::v3::CsrfPolicy;
use envoy_types::pb::envoy::extensions::filters::http::health_check::v3::HealthCheck;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_filter,
};
use prost::Message;

use crate::pipeline::{Load, build};
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

/// A Gateway whose `httpGateway.options` are the YAML flow text `options`.
fn gateway(options: &str) -> String {
    format!(
        "apiVersion: gateway.solo.io/v1\nkind: Gateway\nmetadata: {{name: gw, namespace: gloo-system}}\nspec:\n  bindAddress: '::'\n  bindPort: 8080\n  httpGateway: {{options: {options}}}\n"
    )
}

const REST: [&str; 3] = [
    "apiVersion: gloo.solo.io/v1\nkind: Upstream\nmetadata: {name: echo, namespace: gloo-system}\nspec: {static: {hosts: [{addr: 127.0.0.1, port: 8081}]}}\n",
    "apiVersion: gloo.solo.io/v1\nkind: Upstream\nmetadata: {name: zipkin, namespace: tracing}\nspec: {static: {hosts: [{addr: 127.0.0.1, port: 9411}]}}\n",
    "apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata: {name: web, namespace: apps}\nspec:\n  virtualHost:\n    domains: ['*']\n    routes: [{matchers: [{prefix: /}], routeAction: {single: {upstream: {name: echo, namespace: gloo-system}}}}]\n",
];

fn hcm(options: &str) -> HttpConnectionManager {
    let gw = gateway(options);
    let l = load(&[&gw, REST[0], REST[1], REST[2]]);
    assert!(!l.has_errors(), "{}", l.render_diagnostics());
    let out = l.output.as_ref().expect("valid config");
    let listener: &Listener = &out["gloo-system~gateway-proxy"].listeners[0];
    let f = listener.filter_chains[0].filters.last().expect("a filter");
    let Some(filter::ConfigType::TypedConfig(any)) = &f.config_type else {
        panic!("no typed HCM config");
    };
    HttpConnectionManager::decode(any.value.as_slice()).expect("HCM decodes")
}

fn names(h: &HttpConnectionManager) -> Vec<&str> {
    h.http_filters.iter().map(|f| f.name.as_str()).collect()
}

fn config<M: Message + Default>(h: &HttpConnectionManager, name: &str) -> M {
    let f = h
        .http_filters
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no {name} filter"));
    let Some(http_filter::ConfigType::TypedConfig(any)) = &f.config_type else {
        panic!("{name}: no typed config");
    };
    M::decode(any.value.as_slice()).expect("filter config decodes")
}

fn errors(options: &str) -> Vec<String> {
    let gw = gateway(options);
    let l = load(&[&gw, REST[0], REST[1], REST[2]]);
    l.diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.message.clone())
        .collect()
}

/// Gloo's stage order (`staged_filters.go`: stage, weight, then name):
/// compressor and fault in `FaultStage` ("compressor" < "fault"), CORS,
/// gRPC-Web and health check after `AuthZStage` ("grpc_web" <
/// "health_check"), buffer and CSRF in `RouteStage`, the router last.
/// Without options gRPC-Web is still there: Gloo's grpcweb plugin
/// installs it unless disabled.
#[test]
fn filters_sit_at_gloos_stages() {
    assert_eq!(
        names(&hcm("{}")),
        [
            "envoy.filters.http.fault",
            "envoy.filters.http.cors",
            "envoy.filters.http.grpc_web",
            "envoy.filters.http.csrf",
            "envoy.filters.http.router"
        ]
    );
    assert_eq!(
        names(&hcm(
            "{gzip: {}, healthCheck: {path: /healthz}, buffer: {maxRequestBytes: 1024}, csrf: {}}"
        )),
        [
            "envoy.filters.http.compressor",
            "envoy.filters.http.fault",
            "envoy.filters.http.cors",
            "envoy.filters.http.grpc_web",
            "envoy.filters.http.health_check",
            "envoy.filters.http.buffer",
            "envoy.filters.http.csrf",
            "envoy.filters.http.router"
        ]
    );
    // `grpcWeb: {disable: true}` drops it; `disable: false` keeps it.
    assert!(!names(&hcm("{grpcWeb: {disable: true}}")).contains(&"envoy.filters.http.grpc_web"));
    assert!(names(&hcm("{grpcWeb: {disable: false}}")).contains(&"envoy.filters.http.grpc_web"));
}

/// `glooToEnvoyCompressor`: the gzip library under Gloo's name with the
/// levels mapped (BEST → 9, SPEED → BEST_SPEED, HUFFMAN → HUFFMAN_ONLY),
/// the content fields on the compressor; an empty `gzip` sets nothing but
/// the library.
#[test]
fn gzip_maps_gloos_fields() {
    let h = hcm(
        "{gzip: {memoryLevel: 9, compressionLevel: BEST, compressionStrategy: HUFFMAN, windowBits: 10,
                 contentLength: 10, contentType: [text/plain, application/json],
                 disableOnEtagHeader: true, removeAcceptEncodingHeader: true}}",
    );
    let c: Compressor = config(&h, "envoy.filters.http.compressor");
    let lib = c.compressor_library.as_ref().expect("library");
    assert_eq!(lib.name, "envoy.compression.gzip.compressor");
    let g = Gzip::decode(lib.typed_config.as_ref().expect("typed").value.as_slice())
        .expect("gzip decodes");
    assert_eq!(g.memory_level.map(|v| v.value), Some(9));
    assert_eq!(g.compression_level, 9);
    assert_eq!(g.compression_strategy, 2);
    assert_eq!(g.window_bits.map(|v| v.value), Some(10));
    assert_eq!(g.chunk_size, None);
    #[allow(deprecated)]
    {
        assert_eq!(c.content_length.map(|v| v.value), Some(10));
        assert_eq!(c.content_type, ["text/plain", "application/json"]);
        assert!(c.disable_on_etag_header && c.remove_accept_encoding_header);
    }
    let c: Compressor = config(
        &hcm("{gzip: {compressionLevel: SPEED}}"),
        "envoy.filters.http.compressor",
    );
    let lib = c.compressor_library.expect("library");
    let g = Gzip::decode(lib.typed_config.expect("typed").value.as_slice()).expect("gzip");
    assert_eq!((g.compression_level, g.memory_level), (1, None));
    #[allow(deprecated)]
    {
        assert_eq!(c.content_length, None);
        assert!(c.content_type.is_empty());
    }
}

/// Envoy's gzip ranges (which Gloo checks with `Validate()`) and Gloo's
/// enum errors; an empty health check path (Gloo's own message).
#[test]
fn bad_gzip_and_health_check_are_refused_with_gloos_words() {
    let e = errors("{gzip: {memoryLevel: 10, windowBits: 8}}");
    assert!(
        e.iter()
            .any(|m| m.contains("invalid Gzip.MemoryLevel: value must be inside range [1, 9]")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|m| m.contains("invalid Gzip.WindowBits: value must be inside range [9, 15]")),
        "{e:?}"
    );
    let e = errors("{gzip: {compressionLevel: 3}}");
    assert!(
        e.iter().any(|m| m.contains("invalid CompressionLevel 3")),
        "{e:?}"
    );
    let e = errors("{gzip: {compressionStrategy: FIXED}}");
    assert!(
        e.iter()
            .any(|m| m.contains("invalid CompressionStrategy FIXED")),
        "{e:?}"
    );
    let e = errors("{healthCheck: {path: ''}}");
    assert_eq!(e, ["health check path cannot be \"\""]);
    let e = errors("{healthCheck: {}}");
    assert_eq!(e, ["health check path cannot be \"\""]);
}

/// Gloo's healthcheck plugin: no pass-through, `:path` matched exactly.
#[test]
#[allow(deprecated)]
fn health_check_answers_its_exact_path() {
    let hc: HealthCheck = config(
        &hcm("{healthCheck: {path: /healthz}}"),
        "envoy.filters.http.health_check",
    );
    assert_eq!(hc.pass_through_mode.map(|b| b.value), Some(false));
    assert_eq!(hc.headers.len(), 1);
    assert_eq!(hc.headers[0].name, ":path");
    assert_eq!(
        hc.headers[0].header_match_specifier,
        Some(HeaderMatchSpecifier::ExactMatch("/healthz".into()))
    );
}

/// Listener-level `csrf` replaces the 0% default with the policy given;
/// an unset `filterEnabled` is still Gloo's explicit 0%.
#[test]
fn listener_csrf_policy_replaces_the_default() {
    let c: CsrfPolicy = config(
        &hcm(
            "{csrf: {filterEnabled: {defaultValue: {numerator: 100}}, additionalOrigins: [{exact: example.com}]}}",
        ),
        "envoy.filters.http.csrf",
    );
    let fe = c
        .filter_enabled
        .and_then(|f| f.default_value)
        .expect("filterEnabled");
    assert_eq!((fe.numerator, fe.denominator), (100, 0));
    assert_eq!(c.additional_origins.len(), 1);
    let c: CsrfPolicy = config(
        &hcm(
            "{csrf: {shadowEnabled: {defaultValue: {numerator: 5, denominator: TEN_THOUSAND}, runtimeKey: csrf.shadow}}}",
        ),
        "envoy.filters.http.csrf",
    );
    let fe = c
        .filter_enabled
        .and_then(|f| f.default_value)
        .expect("explicit 0%");
    assert_eq!((fe.numerator, fe.denominator), (0, 0));
    let sh = c.shadow_enabled.expect("shadow");
    assert_eq!(sh.runtime_key, "csrf.shadow");
    assert_eq!(
        sh.default_value.map(|d| (d.numerator, d.denominator)),
        Some((5, 1))
    );
}

fn tracing_of(tracing: &str) -> envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::Tracing{
    hcm(&format!(
        "{{httpConnectionManagerSettings: {{tracing: {tracing}}}}}"
    ))
    .tracing
    .expect("tracing set")
}

/// Gloo's tracing plugin: 100% samplings when `tracePercentages` is unset,
/// `spawn_upstream_span` always set, no provider without one.
#[test]
fn tracing_without_provider_sets_gloos_defaults() {
    let t = tracing_of("{}");
    for p in [&t.client_sampling, &t.random_sampling, &t.overall_sampling] {
        assert_eq!(p.as_ref().map(|p| p.value), Some(100.0));
    }
    assert_eq!(t.spawn_upstream_span.map(|b| b.value), Some(false));
    assert!(!t.verbose);
    assert!(t.provider.is_none());
    assert!(t.custom_tags.is_empty());
    assert!(hcm("{}").tracing.is_none(), "no tracing unless asked");
}

/// Zipkin to an Upstream: the cluster `<name>_<namespace>`, the endpoint,
/// HTTP_JSON unless HTTP_PROTO; request-header tags named after their
/// header; percentages widened from single precision as Gloo does.
#[test]
fn zipkin_tracing_to_a_collector_upstream() {
    let t = tracing_of(
        "{verbose: true, requestHeadersForTags: [x-user, x-tenant],
          tracePercentages: {clientSamplePercentage: 33.3, overallSamplePercentage: 0},
          zipkinConfig: {collectorUpstreamRef: {name: zipkin, namespace: tracing},
                         collectorEndpoint: /api/v2/spans, traceId128bit: true, sharedSpanContext: false}}",
    );
    assert!(t.verbose);
    assert_eq!(
        t.client_sampling.map(|p| p.value),
        Some(f64::from(33.3_f32))
    );
    assert_eq!(t.random_sampling.map(|p| p.value), Some(100.0));
    assert_eq!(t.overall_sampling.map(|p| p.value), Some(0.0));
    let tags: Vec<(&str, String)> = t
        .custom_tags
        .iter()
        .map(|c| {
            let Some(envoy_types::pb::envoy::r#type::tracing::v3::custom_tag::Type::RequestHeader(
                h,
            )) = &c.r#type
            else {
                panic!("not a request header tag");
            };
            (c.tag.as_str(), h.name.clone())
        })
        .collect();
    assert_eq!(
        tags,
        [("x-user", "x-user".into()), ("x-tenant", "x-tenant".into())]
    );
    let p = t.provider.expect("provider");
    assert_eq!(p.name, "envoy.tracers.zipkin");
    let Some(http::ConfigType::TypedConfig(any)) = p.config_type else {
        panic!("typed zipkin config");
    };
    let z = ZipkinConfig::decode(any.value.as_slice()).expect("zipkin");
    assert_eq!(z.collector_cluster, "zipkin_tracing");
    assert_eq!(z.collector_endpoint, "/api/v2/spans");
    assert!(z.trace_id_128bit);
    assert_eq!(z.shared_span_context.map(|b| b.value), Some(false));
    assert_eq!(z.collector_endpoint_version, 1, "HTTP_JSON");
}

/// OpenTelemetry: an Envoy gRPC service on the collector's cluster; the
/// service name defaults to the Gateway's name (Gloo's
/// `GetGatewayNameFromParent`).
#[test]
fn open_telemetry_tracing_defaults_its_service_name_to_the_gateway() {
    let t = tracing_of(
        "{openTelemetryConfig: {collectorUpstreamRef: {name: zipkin, namespace: tracing}, grpcService: {authority: otel.example}, maxCacheSize: 64}}",
    );
    let p = t.provider.expect("provider");
    assert_eq!(p.name, "envoy.tracers.opentelemetry");
    let Some(http::ConfigType::TypedConfig(any)) = p.config_type else {
        panic!("typed otel config");
    };
    let o = OpenTelemetryConfig::decode(any.value.as_slice()).expect("otel");
    assert_eq!(o.service_name, "gw");
    assert_eq!(o.max_cache_size.map(|v| v.value), Some(64));
    let Some(TargetSpecifier::EnvoyGrpc(g)) = o.grpc_service.and_then(|g| g.target_specifier)
    else {
        panic!("envoy grpc");
    };
    assert_eq!(
        (g.cluster_name.as_str(), g.authority.as_str()),
        ("zipkin_tracing", "otel.example")
    );
}

/// A missing collector Upstream is an error with Gloo's words (and the
/// field); providers and tag sources edgeplane lacks are refused by name;
/// percentages outside 0-100 (Envoy's `Percent`) are refused.
#[test]
fn tracing_errors_name_the_ref_and_the_refused_fields() {
    let t = |s: &str| {
        errors(&format!(
            "{{httpConnectionManagerSettings: {{tracing: {s}}}}}"
        ))
    };
    let e = t(
        "{zipkinConfig: {collectorUpstreamRef: {name: zipkn, namespace: tracing}, collectorEndpoint: /api/v2/spans}}",
    );
    assert_eq!(
        e,
        ["tracing.zipkinConfig.collectorUpstreamRef: *v1.Upstream { tracing.zipkn } not found"]
    );
    let e = t("{zipkinConfig: {collectorUpstreamRef: {name: zipkin, namespace: tracing}}}");
    assert!(
        e.iter()
            .any(|m| m.contains("collectorEndpoint is required")),
        "{e:?}"
    );
    let e = t("{zipkinConfig: {clusterName: zipkin, collectorEndpoint: /api/v2/spans}}");
    assert!(e.iter().any(|m| m.contains("clusterName")), "{e:?}");
    for field in [
        "datadogConfig",
        "openCensusConfig",
        "literalsForTags",
        "environmentVariablesForTags",
        "metadataForTags",
    ] {
        let e = t(&format!("{{{field}: {{}}}}"));
        assert!(
            e.iter().any(
                |m| m.contains(&format!("tracing.{field}")) && m.contains("does not implement")
            ),
            "{field}: {e:?}"
        );
    }
    let e = t("{tracePercentages: {randomSamplePercentage: 101}}");
    assert!(
        e.iter()
            .any(|m| m.contains("randomSamplePercentage must be between 0 and 100")),
        "{e:?}"
    );
}

// === extauth (open-source Gloo's `plugins/extauth/config_generator.go`
// and `plugin.go`) ===

use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::filters::http::ext_authz::v3::{
    ExtAuthz, ExtAuthzPerRoute, ext_authz, ext_authz_per_route,
};
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;

const EXT_AUTHZ: &str = "envoy.filters.http.ext_authz";
const SERVER: &str = "extauthzServerRef: {name: echo, namespace: gloo-system}";

/// The Gateway with `extauth` options `ext` (empty: none) and one
/// VirtualService whose virtual host options are `vh_opts` and whose
/// routes (`/a`, `/b`, `/c`) carry `route_opts` in order.
fn auth_routes(ext: &str, vh_opts: &str, route_opts: [&str; 3]) -> RouteConfiguration {
    let gw = if ext.is_empty() {
        gateway("{}")
    } else {
        gateway(&format!("{{extauth: {ext}}}"))
    };
    let routes: Vec<String> = ["/a", "/b", "/c"]
        .iter()
        .zip(route_opts)
        .map(|(p, o)| {
            format!(
                "{{matchers: [{{prefix: {p}}}], routeAction: {{single: {{upstream: {{name: echo, namespace: gloo-system}}}}}}, options: {o}}}"
            )
        })
        .collect();
    let vs = format!(
        "apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata: {{name: web, namespace: apps}}\nspec:\n  virtualHost:\n    domains: ['*']\n    options: {vh_opts}\n    routes: [{}]\n",
        routes.join(", ")
    );
    let l = load(&[&gw, REST[0], &vs]);
    assert!(!l.has_errors(), "{}", l.render_diagnostics());
    let out = l.output.as_ref().expect("valid config");
    out["gloo-system~gateway-proxy"].route_configs[0].proto()
}

fn per_route(
    m: &std::collections::HashMap<String, envoy_types::pb::google::protobuf::Any>,
) -> Option<ext_authz_per_route::Override> {
    m.get(EXT_AUTHZ).map(|a| {
        ExtAuthzPerRoute::decode(a.value.as_slice())
            .expect("ExtAuthzPerRoute decodes")
            .r#override
            .expect("an override")
    })
}

/// `GenerateEnvoyConfigForFilter` with only a server: gRPC to the
/// Upstream's cluster, the 200ms default timeout, the JWT metadata
/// namespace; the filter sits in `AuthNStage`, after CORS and before
/// gRPC-Web (`FilterStage = DuringStage(AuthNStage)`).
#[test]
fn extauth_server_is_one_grpc_ext_authz_filter_at_the_authn_stage() {
    let h = hcm(&format!(
        "{{extauth: {{{SERVER}, grpcService: {{authority: a.example}}}}}}"
    ));
    assert_eq!(
        names(&h),
        [
            "envoy.filters.http.fault",
            "envoy.filters.http.cors",
            EXT_AUTHZ,
            "envoy.filters.http.grpc_web",
            "envoy.filters.http.csrf",
            "envoy.filters.http.router"
        ]
    );
    let e: ExtAuthz = config(&h, EXT_AUTHZ);
    assert_eq!(
        e.metadata_context_namespaces,
        ["envoy.filters.http.jwt_authn"]
    );
    // Gloo's `ApiVersion` enum has only V3 (0), so Gloo always sets it.
    assert_eq!(e.transport_api_version, 2);
    assert!(!e.failure_mode_allow);
    assert!(e.status_on_error.is_none());
    assert!(e.with_request_body.is_none());
    let Some(ext_authz::Services::GrpcService(g)) = &e.services else {
        panic!("gRPC service expected: {e:?}");
    };
    assert_eq!(g.timeout.map(|d| d.nanos), Some(200_000_000));
    let Some(TargetSpecifier::EnvoyGrpc(eg)) = &g.target_specifier else {
        panic!("envoy_grpc expected");
    };
    assert_eq!(eg.cluster_name, "echo_gloo-system");
    assert_eq!(eg.authority, "a.example");
    // No server: no filter.
    assert!(!names(&hcm("{}")).contains(&EXT_AUTHZ));
}

/// The HTTP server: Gloo's placeholder URI, the path prefix's trailing
/// `/` trimmed, response lists as exact matchers, body buffering at 4 KiB
/// when `maxRequestBytes` is 0, `statusOnError` as Envoy's HttpStatus.
/// Allowed request headers (exact, then regex, as Gloo combines them) go
/// to the non-deprecated top-level `allowed_headers`.
#[test]
fn extauth_http_service_shape() {
    let h = hcm(&format!(
        "{{extauth: {{{SERVER}, requestTimeout: 1s, failureModeAllow: true, clearRouteCache: true, statusOnError: 503, statPrefix: sp, requestBody: {{maxRequestBytes: 0, packAsBytes: true}}, httpService: {{pathPrefix: /check/, request: {{allowedHeaders: [x-ticket], allowedHeadersRegex: ['x-a-.*'], headersToAdd: {{x-b: '2', x-a: '1'}}}}, response: {{allowedClientHeaders: [x-deny]}}}}}}}}"
    ));
    let e: ExtAuthz = config(&h, EXT_AUTHZ);
    assert!(e.failure_mode_allow && e.clear_route_cache);
    assert_eq!(e.stat_prefix, "sp");
    assert_eq!(e.status_on_error.map(|s| s.code), Some(503));
    let body = e.with_request_body.expect("request body");
    assert_eq!(
        (
            body.max_request_bytes,
            body.pack_as_bytes,
            body.allow_partial_message
        ),
        (4096, true, false)
    );
    let patterns: Vec<MatchPattern> = e
        .allowed_headers
        .expect("allowed headers")
        .patterns
        .into_iter()
        .filter_map(|p| p.match_pattern)
        .collect();
    assert!(matches!(&patterns[0], MatchPattern::Exact(s) if s == "x-ticket"));
    assert!(matches!(&patterns[1], MatchPattern::SafeRegex(r) if r.regex == "x-a-.*"));
    let Some(ext_authz::Services::HttpService(s)) = e.services else {
        panic!("HTTP service expected");
    };
    assert_eq!(s.path_prefix, "/check");
    let uri = s.server_uri.expect("server uri");
    assert_eq!(uri.uri, "http://not-used.example.com/");
    assert_eq!(uri.timeout.map(|d| d.seconds), Some(1));
    #[allow(deprecated)]
    let req = s.authorization_request.expect("request");
    #[allow(deprecated)]
    let deprecated = req.allowed_headers.is_none();
    assert!(deprecated);
    let added: Vec<(&str, &str)> = req
        .headers_to_add
        .iter()
        .map(|h| (h.key.as_str(), h.value.as_str()))
        .collect();
    assert_eq!(added, [("x-a", "1"), ("x-b", "2")]);
    let resp = s.authorization_response.expect("response");
    assert!(resp.allowed_upstream_headers.is_none());
    assert_eq!(
        resp.allowed_client_headers.map(|l| l.patterns.len()),
        Some(1)
    );
}

/// `GenerateVirtualHostExtAuthzConfig`: a virtual host opts in; without
/// `extauth`, with `disable: true`, or with neither `customAuth` nor
/// `disable` it gets `disabled: true`. `GenerateRouteExtAuthzConfig`: a
/// route's `disable` disables, `customAuth` sets context extensions, and
/// nothing (or `disable: false`) inherits: no per-route config.
#[test]
fn extauth_virtual_hosts_opt_in_and_routes_inherit() {
    use ext_authz_per_route::Override;
    let disabled = Some(Override::Disabled(true));
    for vh in [
        "{}",
        "{extauth: {disable: true}}",
        "{extauth: {disable: false}}",
    ] {
        let rc = auth_routes(&format!("{{{SERVER}}}"), vh, ["{}", "{}", "{}"]);
        assert_eq!(
            per_route(&rc.virtual_hosts[0].typed_per_filter_config),
            disabled,
            "{vh}"
        );
    }
    let rc = auth_routes(
        &format!("{{{SERVER}}}"),
        "{extauth: {customAuth: {contextExtensions: {tenant: acme}}}}",
        [
            "{extauth: {disable: true}}",
            "{extauth: {customAuth: {contextExtensions: {role: admin}}}}",
            "{extauth: {disable: false}}",
        ],
    );
    let vh = &rc.virtual_hosts[0];
    let Some(Override::CheckSettings(cs)) = per_route(&vh.typed_per_filter_config) else {
        panic!("check settings expected");
    };
    assert_eq!(
        cs.context_extensions.get("tenant").map(String::as_str),
        Some("acme")
    );
    assert_eq!(per_route(&vh.routes[0].typed_per_filter_config), disabled);
    let Some(Override::CheckSettings(cs)) = per_route(&vh.routes[1].typed_per_filter_config) else {
        panic!("route check settings expected");
    };
    assert_eq!(
        cs.context_extensions.get("role").map(String::as_str),
        Some("admin")
    );
    assert_eq!(per_route(&vh.routes[2].typed_per_filter_config), None);
    // Without a server Gloo's plugin does nothing at all
    // (`isExtAuthzFilterConfigured`).
    let rc = auth_routes(
        "",
        "{extauth: {customAuth: {}}}",
        ["{extauth: {disable: true}}", "{}", "{}"],
    );
    assert_eq!(
        per_route(&rc.virtual_hosts[0].typed_per_filter_config),
        None
    );
    assert_eq!(
        per_route(&rc.virtual_hosts[0].routes[0].typed_per_filter_config),
        None
    );
}

/// Context extensions are a protobuf map inside an `Any`: their bytes
/// must not depend on hash order, or every run would re-version the
/// RouteConfiguration.
#[test]
fn extauth_context_extensions_encode_deterministically() {
    let exts =
        "{extauth: {customAuth: {contextExtensions: {a: '1', b: '2', c: '3', d: '4', e: '5'}}}}";
    let first = auth_routes(&format!("{{{SERVER}}}"), exts, ["{}", "{}", "{}"]);
    let bytes = |rc: &RouteConfiguration| {
        rc.virtual_hosts[0].typed_per_filter_config[EXT_AUTHZ]
            .value
            .clone()
    };
    for _ in 0..5 {
        let again = auth_routes(&format!("{{{SERVER}}}"), exts, ["{}", "{}", "{}"]);
        assert_eq!(bytes(&first), bytes(&again));
    }
}

/// Gloo's errors (`NoServerRefErr`, `NewUpstreamNotFoundErr`,
/// `InvalidStatusOnErrorErr`) and what Envoy would NACK.
#[test]
fn extauth_server_errors() {
    let cases = [
        (
            "{extauth: {}}",
            "extauth: no extauth server reference configured",
        ),
        (
            "{extauth: {extauthzServerRef: {name: nope, namespace: gloo-system}}}",
            "extauth.extauthzServerRef: *v1.Upstream { gloo-system.nope } not found",
        ),
        (
            &format!("{{extauth: {{{SERVER}, statusOnError: 999}}}}"),
            "extauth: invalid statusOnError code: 999",
        ),
        (
            &format!("{{extauth: {{{SERVER}, httpService: {{pathPrefix: check}}}}}}"),
            "extauth.httpService.pathPrefix `check` must start with `/`",
        ),
        (
            &format!(
                "{{extauth: {{{SERVER}, httpService: {{request: {{allowedHeadersRegex: ['(']}}}}}}}}"
            ),
            "extauth.httpService.request.allowedHeadersRegex: invalid regex",
        ),
        (
            &format!(
                "{{extauth: {{{SERVER}, httpService: {{request: {{allowedHeaders: [\"a\\nb\"]}}}}}}}}"
            ),
            "extauth.httpService: invalid header name",
        ),
        (
            &format!("{{extauth: {{{SERVER}, httpService: {{}}, grpcService: {{}}}}}}"),
            "extauth: set only one of httpService and grpcService",
        ),
        (
            &format!("{{extauth: {{{SERVER}, transportApiVersion: V2}}}}"),
            "extauth.transportApiVersion: Gloo's ApiVersion has only V3",
        ),
    ];
    for (opts, want) in cases {
        let errs = errors(opts);
        assert!(errs.iter().any(|e| e.starts_with(want)), "{opts}: {errs:?}");
    }
}

/// `configRef` and `customAuth.name` are Gloo Enterprise's: refused with
/// Gloo's `ErrEnterpriseOnly` text (`syncer/extauth/
/// extauth_translator_syncer.go`), on virtual hosts and routes alike.
#[test]
fn extauth_enterprise_parts_are_refused_with_gloos_wording() {
    const MSG: &str = "The Gloo Advanced Extauth API is an enterprise-only feature, please upgrade or use the Envoy Extauth API instead";
    for (vh, route) in [
        ("{extauth: {configRef: {name: ac, namespace: x}}}", "{}"),
        ("{}", "{extauth: {customAuth: {name: other}}}"),
    ] {
        let vs = format!(
            "apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata: {{name: web, namespace: apps}}\nspec:\n  virtualHost:\n    options: {vh}\n    routes: [{{matchers: [{{prefix: /}}], routeAction: {{single: {{upstream: {{name: echo, namespace: gloo-system}}}}}}, options: {route}}}]\n"
        );
        let gw = gateway(&format!("{{extauth: {{{SERVER}}}}}"));
        let l = load(&[&gw, REST[0], &vs]);
        let d = l
            .diagnostics
            .iter()
            .find(|d| d.is_error() && d.message.ends_with(MSG))
            .unwrap_or_else(|| panic!("{vh} {route}: {}", l.render_diagnostics()));
        assert!(d.pos.line > 0 && d.resource.is_some(), "{d:?}");
    }
}

/// Context extensions with an HTTP auth server are translated (as Gloo
/// does) but warned about: Envoy's HTTP check request cannot carry them.
#[test]
fn extauth_context_extensions_with_an_http_server_are_warned_about() {
    let vs = "apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata: {name: web, namespace: apps}\nspec:\n  virtualHost:\n    options: {extauth: {customAuth: {contextExtensions: {t: a}}}}\n    routes: [{matchers: [{prefix: /}], routeAction: {single: {upstream: {name: echo, namespace: gloo-system}}}}]\n";
    let warned = |server: &str| {
        let gw = gateway(&format!("{{extauth: {{{SERVER}{server}}}}}"));
        let l = load(&[&gw, REST[0], vs]);
        assert!(!l.has_errors(), "{}", l.render_diagnostics());
        l.diagnostics
            .iter()
            .any(|d| d.message.contains("reach gRPC auth servers only"))
    };
    assert!(warned(", httpService: {}"));
    assert!(!warned(""));
}
