//! The typed configs of the HTTP filters and the tracing a Gateway's
//! `httpGateway.options` ask for, as Gloo's plugins build them:
//! `plugins/gzip/plugin.go` (`glooToEnvoyCompressor`),
//! `plugins/healthcheck/plugin.go`, `plugins/tracing/plugin.go` with
//! `pkg/utils/api_conversion/trace.go`. Where those plugins fill Envoy
//! fields that are deprecated (the compressor's top-level content fields,
//! the health check's `exact_match`), the same fields are filled here:
//! Envoy still honours them, and the bytes stay Gloo's.

use envoy_types::pb::envoy::config::core::v3::{GrpcService, TypedExtensionConfig, grpc_service};
use envoy_types::pb::envoy::config::route::v3::{HeaderMatcher, header_matcher};
use envoy_types::pb::envoy::config::trace::v3::{
    OpenTelemetryConfig, ZipkinConfig, tracing::Http as TracingHttp, tracing::http,
    zipkin_config,
};
use envoy_types::pb::envoy::extensions::compression::gzip::compressor::v3::{Gzip, gzip};
use envoy_types::pb::envoy::extensions::filters::http::compressor::v3::Compressor;
use envoy_types::pb::envoy::extensions::filters::http::health_check::v3::HealthCheck;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::Tracing;
use envoy_types::pb::envoy::r#type::tracing::v3::{CustomTag, custom_tag};
use envoy_types::pb::envoy::r#type::v3::Percent;

use envoy_types::pb::envoy::config::core::v3::{HeaderValue, HttpUri, http_uri};
use envoy_types::pb::envoy::extensions::filters::http::ext_authz::v3::{
    AuthorizationRequest, AuthorizationResponse, BufferSettings, CheckSettings, ExtAuthz,
    ExtAuthzPerRoute, HttpService, ext_authz, ext_authz_per_route,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{
    ListStringMatcher, RegexMatcher, StringMatcher, string_matcher,
};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;

use super::names;
use super::proto::{
    self, GZIP_COMPRESSOR_LIBRARY, OPENTELEMETRY_TRACER, ZIPKIN_TRACER, bool_value,
};
use crate::model::{self, GzipLevel, GzipStrategy, TracingProvider};

/// Gloo's `glooToEnvoyCompressor`: the gzip library's settings, then the
/// content fields on the compressor itself.
pub fn compressor(g: &model::Gzip) -> Compressor {
    use gzip::{CompressionLevel as L, CompressionStrategy as S};
    let library = Gzip {
        memory_level: g.memory_level.map(proto::u32),
        compression_level: (match g.compression_level {
            GzipLevel::Default => L::DefaultCompression,
            // BEST_COMPRESSION, an alias of 9 that prost does not name.
            GzipLevel::Best => L::CompressionLevel9,
            GzipLevel::Speed => L::BestSpeed,
        }) as i32,
        compression_strategy: (match g.compression_strategy {
            GzipStrategy::Default => S::DefaultStrategy,
            GzipStrategy::Filtered => S::Filtered,
            GzipStrategy::Huffman => S::HuffmanOnly,
            GzipStrategy::Rle => S::Rle,
        }) as i32,
        window_bits: g.window_bits.map(proto::u32),
        // Gloo never sets the chunk size.
        chunk_size: None,
    };
    #[allow(deprecated)]
    Compressor {
        compressor_library: Some(TypedExtensionConfig {
            name: GZIP_COMPRESSOR_LIBRARY.to_string(),
            typed_config: Some(proto::any(library)),
        }),
        content_length: g.content_length.map(proto::u32),
        content_type: g.content_type.clone(),
        disable_on_etag_header: g.disable_on_etag_header,
        remove_accept_encoding_header: g.remove_accept_encoding_header,
        ..Default::default()
    }
}

/// Gloo's healthcheck plugin: Envoy answers the path itself (no pass
/// through), matched exactly on `:path`.
#[allow(deprecated)]
pub fn health_check(path: &str) -> HealthCheck {
    HealthCheck {
        pass_through_mode: Some(bool_value(false)),
        headers: vec![HeaderMatcher {
            name: ":path".to_string(),
            header_match_specifier: Some(header_matcher::HeaderMatchSpecifier::ExactMatch(
                path.to_string(),
            )),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Gloo's `ProcessHcmNetworkFilter` (tracing plugin): request-header tags
/// (tag and header share the name), verbose, the three samplings (100%
/// where unset), `spawn_upstream_span` always set, and the provider.
pub fn tracing(t: &model::Tracing) -> Tracing {
    // Gloo widens its single-precision FloatValue to a double.
    let percent = |p: f32| Percent {
        value: f64::from(p),
    };
    let [client, random, overall] = t.percentages;
    Tracing {
        custom_tags: t
            .request_headers_for_tags
            .iter()
            .map(|h| CustomTag {
                tag: h.clone(),
                r#type: Some(custom_tag::Type::RequestHeader(custom_tag::Header {
                    name: h.clone(),
                    ..Default::default()
                })),
            })
            .collect(),
        verbose: t.verbose,
        client_sampling: Some(percent(client)),
        random_sampling: Some(percent(random)),
        overall_sampling: Some(percent(overall)),
        spawn_upstream_span: Some(bool_value(t.spawn_upstream_span)),
        provider: t.provider.as_ref().map(provider),
        ..Default::default()
    }
}

fn provider(p: &TracingProvider) -> TracingHttp {
    let (name, config) = match p {
        TracingProvider::Zipkin {
            collector,
            collector_endpoint,
            trace_id_128bit,
            shared_span_context,
            http_proto,
        } => (
            ZIPKIN_TRACER,
            proto::any(ZipkinConfig {
                collector_cluster: names::cluster_name(collector),
                collector_endpoint: collector_endpoint.clone(),
                trace_id_128bit: *trace_id_128bit,
                shared_span_context: shared_span_context.map(bool_value),
                collector_endpoint_version: (if *http_proto {
                    zipkin_config::CollectorEndpointVersion::HttpProto
                } else {
                    zipkin_config::CollectorEndpointVersion::HttpJson
                }) as i32,
                ..Default::default()
            }),
        ),
        TracingProvider::OpenTelemetry {
            collector,
            service_name,
            authority,
            max_cache_size,
        } => (
            OPENTELEMETRY_TRACER,
            proto::any(OpenTelemetryConfig {
                grpc_service: Some(GrpcService {
                    target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(
                        grpc_service::EnvoyGrpc {
                            cluster_name: names::cluster_name(collector),
                            authority: authority.clone(),
                            ..Default::default()
                        },
                    )),
                    ..Default::default()
                }),
                service_name: service_name.clone(),
                max_cache_size: max_cache_size.map(proto::u32),
                ..Default::default()
            }),
        ),
    };
    TracingHttp {
        name: name.to_string(),
        config_type: Some(http::ConfigType::TypedConfig(config)),
    }
}

/// Gloo's placeholder URI for an HTTP auth server (`HttpServerUri`):
/// Envoy requires one, but sends to the cluster.
const EXT_AUTHZ_HTTP_URI: &str = "http://not-used.example.com/";

/// Gloo's `GenerateEnvoyConfigForFilter` (`plugins/extauth/
/// config_generator.go`), with one deliberate difference: the HTTP
/// server's allowed request headers go to Envoy's top-level
/// `ExtAuthz.allowed_headers`, because the field Gloo fills
/// (`authorization_request.allowed_headers`) is deprecated in Envoy 1.40
/// and behaves the same (`websocket-auth.md` §4). Gloo's `ApiVersion` has
/// only `V3` (its zero value), so `transport_api_version` is always V3.
pub fn ext_authz(e: &model::ExtAuthz) -> ExtAuthz {
    let cluster = names::cluster_name(&e.server);
    let timeout = Some(proto::duration(e.timeout));
    let exact = |v: &[String]| -> Option<ListStringMatcher> {
        (!v.is_empty()).then(|| ListStringMatcher {
            patterns: v
                .iter()
                .map(|h| StringMatcher {
                    match_pattern: Some(string_matcher::MatchPattern::Exact(h.clone())),
                    ..Default::default()
                })
                .collect(),
        })
    };
    let mut allowed_headers = None;
    let services = match &e.service {
        model::ExtAuthzService::Grpc { authority } => {
            ext_authz::Services::GrpcService(GrpcService {
                target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(
                    grpc_service::EnvoyGrpc {
                        cluster_name: cluster,
                        authority: authority.clone(),
                        ..Default::default()
                    },
                )),
                timeout,
                ..Default::default()
            })
        }
        model::ExtAuthzService::Http {
            path_prefix,
            allowed_headers: exact_names,
            allowed_headers_regex,
            headers_to_add,
            response,
        } => {
            let mut patterns = exact(exact_names).map(|l| l.patterns).unwrap_or_default();
            patterns.extend(allowed_headers_regex.iter().map(|re| StringMatcher {
                match_pattern: Some(string_matcher::MatchPattern::SafeRegex(RegexMatcher {
                    regex: re.clone(),
                    ..Default::default()
                })),
                ..Default::default()
            }));
            // Envoy's ListStringMatcher needs at least one pattern.
            if !patterns.is_empty() {
                allowed_headers = Some(ListStringMatcher { patterns });
            }
            #[allow(deprecated)]
            let authorization_request =
                (!headers_to_add.is_empty()).then(|| AuthorizationRequest {
                    headers_to_add: headers_to_add
                        .iter()
                        .map(|(k, v)| HeaderValue {
                            key: k.clone(),
                            value: v.clone(),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                });
            ext_authz::Services::HttpService(HttpService {
                server_uri: Some(HttpUri {
                    uri: EXT_AUTHZ_HTTP_URI.to_string(),
                    timeout,
                    http_upstream_type: Some(http_uri::HttpUpstreamType::Cluster(cluster)),
                }),
                path_prefix: path_prefix.clone(),
                authorization_request,
                authorization_response: response.as_ref().map(|r| AuthorizationResponse {
                    allowed_upstream_headers: exact(&r.allowed_upstream_headers),
                    allowed_client_headers: exact(&r.allowed_client_headers),
                    allowed_upstream_headers_to_append: exact(
                        &r.allowed_upstream_headers_to_append,
                    ),
                    ..Default::default()
                }),
                ..Default::default()
            })
        }
    };
    ExtAuthz {
        services: Some(services),
        transport_api_version: envoy_types::pb::envoy::config::core::v3::ApiVersion::V3 as i32,
        failure_mode_allow: e.failure_mode_allow,
        with_request_body: e.request_body.map(|(max, partial, bytes)| BufferSettings {
            max_request_bytes: max,
            allow_partial_message: partial,
            pack_as_bytes: bytes,
        }),
        clear_route_cache: e.clear_route_cache,
        status_on_error: e.status_on_error.map(|c| HttpStatus {
            code: i32::try_from(c).unwrap_or_default(),
        }),
        stat_prefix: e.stat_prefix.clone(),
        metadata_context_namespaces: vec![proto::JWT_AUTHN_FILTER.to_string()],
        allowed_headers,
        ..Default::default()
    }
}

/// Gloo's per-route ext_authz config (`GenerateVirtualHostExtAuthzConfig`
/// and `GenerateRouteExtAuthzConfig`), only when the Gateway has an auth
/// server. A virtual host opts in: anything but `customAuth` (nothing,
/// `disable`, or an empty extension) disables the filter for it. A route
/// without `disable` or `customAuth` gets nothing and inherits.
pub fn ext_authz_per_route(a: Option<&model::ExtAuth>, vhost: bool) -> Option<ExtAuthzPerRoute> {
    let disabled = || ExtAuthzPerRoute {
        r#override: Some(ext_authz_per_route::Override::Disabled(true)),
    };
    match a {
        Some(model::ExtAuth::Custom(ext)) => Some(ExtAuthzPerRoute {
            r#override: Some(ext_authz_per_route::Override::CheckSettings(
                CheckSettings {
                    context_extensions: ext.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                    ..Default::default()
                },
            )),
        }),
        Some(model::ExtAuth::Disable) => Some(disabled()),
        None | Some(model::ExtAuth::Other) => vhost.then(disabled),
    }
}

#[cfg(test)]
mod tests;
