//! Gateway → Listener with one HTTP connection manager taking routes by RDS.
//!
//! A plain gateway's Listener has one filter chain and depends only on the
//! Gateway. An SSL gateway's Listener has one TLS filter chain per attached
//! VirtualService (see `tls`), each with the same connection manager and
//! the same RDS route config, so it also depends on which VirtualServices
//! are attached and on their `sslConfig`, but still never on their routes or
//! domains: route edits travel by RDS only and leave open sockets alone.

use envoy_types::pb::envoy::config::core::v3::Address;
use envoy_types::pb::envoy::config::core::v3::RuntimeFractionalPercent;
use envoy_types::pb::envoy::config::core::v3::{
    AggregatedConfigSource, ApiVersion, CidrRange, ConfigSource, Http1ProtocolOptions,
    Http2ProtocolOptions, HttpProtocolOptions, SocketAddress, TypedExtensionConfig, address,
    config_source, http1_protocol_options, socket_address,
};
use envoy_types::pb::envoy::config::core::v3::{SocketOption, socket_option};
use envoy_types::pb::envoy::config::listener::v3::{
    Filter, FilterChain, Listener, ListenerFilter, filter, listener, listener_filter,
};
use envoy_types::pb::envoy::extensions::filters::http::buffer::v3::Buffer;
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::Cors;
use envoy_types::pb::envoy::extensions::filters::http::csrf::v3::CsrfPolicy;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use envoy_types::pb::envoy::extensions::filters::http::grpc_web::v3::GrpcWeb;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::listener::proxy_protocol::v3 as pp;
use envoy_types::pb::envoy::extensions::filters::network::connection_limit::v3::ConnectionLimit;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds, RequestIdExtension, http_connection_manager,
    http_filter,
};
use envoy_types::pb::envoy::extensions::http::header_formatters::preserve_case::v3::PreserveCaseFormatterConfig;
use envoy_types::pb::envoy::extensions::request_id::uuid::v3::UuidRequestIdConfig;
use envoy_types::pb::envoy::r#type::v3::FractionalPercent;

use super::proto::{
    self, BUFFER_FILTER, COMPRESSOR_FILTER, CONNECTION_LIMIT_FILTER, CONNECTION_LIMIT_STAT_PREFIX,
    CORS_FILTER, CSRF_FILTER, EXT_AUTHZ_FILTER, FAULT_FILTER, GRPC_WEB_FILTER, HCM_FILTER,
    HEALTH_CHECK_FILTER, PROXY_PROTOCOL, ROUTER_FILTER, bool_value, duration,
};
use super::{access_log, http_filters as hf, names, tcp, tls};
use crate::model::{
    CodecType, EscapedSlashesAction, ForwardClientCertDetails, Gateway, GatewayKind,
    GatewayMatcher, HeadersWithUnderscores, MatchedGateway, Model, ProxyProtocol,
    ServerHeaderTransformation, SocketState, SocketValue, Upgrade, UpgradeKind, VirtualService,
};

/// The Gateway's Listener; `None` for an SSL gateway that serves no
/// VirtualService (Gloo drops listeners without filter chains, and Envoy
/// would reject one).
pub fn listener(gw: &Gateway, model: &Model) -> Option<Listener> {
    let (filter_chains, listener_filters) = match &gw.kind {
        GatewayKind::Http => http_chains(gw, model)?,
        GatewayKind::Tcp(t) => {
            let inspector = tcp::needs_tls_inspector(t).then(tls::tls_inspector);
            (
                tcp::filter_chains(gw, t, None, &model.secrets),
                inspector.into_iter().collect(),
            )
        }
        GatewayKind::Hybrid(list) => {
            // Gloo's hybrid listener: each matched gateway's chains in
            // order, its matcher added to their match.
            let mut chains = Vec::new();
            let mut inspector = false;
            for m in list {
                match m {
                    MatchedGateway::Http(h) => {
                        // Gloo skips HTTP matched gateways when there is no
                        // VirtualService at all.
                        if model.virtual_services.is_empty() {
                            continue;
                        }
                        let Some(matcher) = &h.matcher else { continue };
                        inspector |= matcher.ssl_sni_domains.is_some();
                        chains.extend(matched_http_chains(h, matcher, model));
                    }
                    MatchedGateway::Tcp { matcher, tcp: t } => {
                        inspector |=
                            matcher.ssl_sni_domains.is_some() || tcp::needs_tls_inspector(t);
                        chains.extend(tcp::filter_chains(gw, t, Some(matcher), &model.secrets));
                    }
                }
            }
            (
                chains,
                inspector.then(tls::tls_inspector).into_iter().collect(),
            )
        }
    };
    // Envoy rejects a listener without filter chains; Gloo drops it.
    if filter_chains.is_empty() {
        return None;
    }
    // The PROXY protocol header comes first on the wire, before any TLS
    // ClientHello, so its filter runs before the TLS inspector.
    let listener_filters: Vec<ListenerFilter> = gw
        .options
        .proxy_protocol
        .as_ref()
        .map(proxy_protocol)
        .into_iter()
        .chain(listener_filters)
        .collect();
    let o = &gw.options;
    let ipv4 = gw.bind_address.parse::<std::net::Ipv4Addr>().is_ok();
    Some(Listener {
        name: names::listener_name(gw),
        address: Some(Address {
            address: Some(address::Address::SocketAddress(SocketAddress {
                address: gw.bind_address.clone(),
                port_specifier: Some(socket_address::PortSpecifier::PortValue(gw.bind_port)),
                // As Gloo: `::` also accepts IPv4 clients.
                ipv4_compat: !ipv4,
                ..Default::default()
            })),
        }),
        filter_chains,
        listener_filters,
        // Gloo's listener plugin: these three sit on the Listener itself.
        per_connection_buffer_limit_bytes: o.per_connection_buffer_limit_bytes.map(proto::u32),
        socket_options: o.socket_options.iter().map(socket_option).collect(),
        connection_balance_config: o
            .exact_balance
            .then_some(listener::ConnectionBalanceConfig {
                balance_type: Some(
                    listener::connection_balance_config::BalanceType::ExactBalance(
                        listener::connection_balance_config::ExactBalance {},
                    ),
                ),
            }),
        // `listenerAccessLoggingService` (Gloo's als plugin, ProcessListener).
        access_log: access_log::access_logs(&o.listener_access_logs),
        ..Default::default()
    })
}

/// An HTTP gateway's filter chains and listener filters; `None` for an SSL
/// gateway that serves no VirtualService.
fn http_chains(gw: &Gateway, model: &Model) -> Option<(Vec<FilterChain>, Vec<ListenerFilter>)> {
    let network_filters = http_network_filters(gw);
    Some(if gw.ssl {
        // Only sslConfig and the set of attached VirtualServices shape these
        // chains (never routes or domains), so only editing those, or the
        // Gateway, changes this Listener and drains its connections.
        let mut attached: Vec<&VirtualService> = model
            .virtual_services
            .values()
            .filter(|vs| gw.selects(vs))
            .collect();
        attached.sort_by_key(|vs| names::vhost_name(vs));
        let chains: Vec<FilterChain> = crate::model::consolidate_ssl(attached)
            .iter()
            .map(|g| tls::filter_chain(&g.ssl, &model.secrets, network_filters.clone()))
            .collect();
        if chains.is_empty() {
            return None;
        }
        (chains, vec![tls::tls_inspector()])
    } else {
        let chain = FilterChain {
            filters: network_filters,
            ..Default::default()
        };
        (vec![chain], Vec::new())
    })
}

/// An HTTP gateway's network filters: Gloo's connection_limit plugin stages
/// its filter before every other network filter, so a connection over the
/// limit is closed before any HTTP work: [connection_limit,
/// http_connection_manager].
fn http_network_filters(gw: &Gateway) -> Vec<Filter> {
    let hcm = Filter {
        name: HCM_FILTER.to_string(),
        config_type: Some(filter::ConfigType::TypedConfig(proto::any(hcm(gw)))),
    };
    connection_limit(gw).into_iter().chain([hcm]).collect()
}

/// The chains of an HTTP gateway inside a hybrid gateway, as Gloo's
/// `httpFilterChainTranslator` makes them: with a matcher `sslConfig`, one
/// TLS chain per consolidated `sslConfig` of its VirtualServices, whose
/// empty `sniDomains` take the matcher's (Gloo's `MergeSslConfig`), or one
/// plain chain when none has one; without, one plain chain. Every chain
/// gets the matcher's source ranges.
fn matched_http_chains(h: &Gateway, m: &GatewayMatcher, model: &Model) -> Vec<FilterChain> {
    let filters = http_network_filters(h);
    let mut chains = Vec::new();
    if h.ssl {
        let mut attached: Vec<&VirtualService> = model
            .virtual_services
            .values()
            .filter(|vs| h.selects(vs))
            .collect();
        attached.sort_by_key(|vs| names::vhost_name(vs));
        for g in crate::model::consolidate_ssl(attached) {
            let mut ssl = g.ssl;
            if ssl.sni_domains.is_empty() {
                ssl.sni_domains = m.ssl_sni_domains.clone().unwrap_or_default();
            }
            chains.push(tls::filter_chain(&ssl, &model.secrets, filters.clone()));
        }
    }
    if chains.is_empty() {
        chains.push(FilterChain {
            filters,
            ..Default::default()
        });
    }
    for c in &mut chains {
        tcp::apply_matcher(c, m, false);
    }
    chains
}

/// Gloo's proxyprotocol plugin: Envoy's filter with the user's rules; an
/// empty config for `useProxyProto: true` alone.
fn proxy_protocol(p: &ProxyProtocol) -> ListenerFilter {
    let config = pp::ProxyProtocol {
        rules: p
            .rules
            .iter()
            .map(|(tlv_type, namespace, key)| pp::proxy_protocol::Rule {
                tlv_type: *tlv_type,
                on_tlv_present: Some(pp::proxy_protocol::KeyValuePair {
                    metadata_namespace: namespace.clone(),
                    key: key.clone(),
                    ..Default::default()
                }),
            })
            .collect(),
        allow_requests_without_proxy_protocol: p.allow_requests_without_proxy_protocol,
        ..Default::default()
    };
    ListenerFilter {
        name: PROXY_PROTOCOL.to_string(),
        config_type: Some(listener_filter::ConfigType::TypedConfig(proto::any(config))),
        ..Default::default()
    }
}

/// Gloo's connection_limit plugin: `max_connections`, the delay, and its
/// stat prefix.
fn connection_limit(gw: &Gateway) -> Option<Filter> {
    let c = gw.connection_limit.as_ref()?;
    let config = ConnectionLimit {
        stat_prefix: CONNECTION_LIMIT_STAT_PREFIX.to_string(),
        max_connections: Some(envoy_types::pb::google::protobuf::UInt64Value { value: c.max }),
        delay: c.delay.map(duration),
        ..Default::default()
    };
    Some(Filter {
        name: CONNECTION_LIMIT_FILTER.to_string(),
        config_type: Some(filter::ConfigType::TypedConfig(proto::any(config))),
    })
}

/// Gloo's `translateSocketOption`: every field copied, state by name.
fn socket_option(s: &crate::model::SocketOption) -> SocketOption {
    use socket_option::SocketState as S;
    SocketOption {
        description: s.description.clone(),
        level: s.level,
        name: s.name,
        state: (match s.state {
            SocketState::Prebind => S::StatePrebind,
            SocketState::Bound => S::StateBound,
            SocketState::Listening => S::StateListening,
        }) as i32,
        value: Some(match &s.value {
            SocketValue::Int(n) => socket_option::Value::IntValue(*n),
            SocketValue::Buf(b) => socket_option::Value::BufValue(b.clone()),
        }),
        ..Default::default()
    }
}

/// Gloo's listener upgrade rule: the user's entries in order, then a plain
/// websocket entry appended when the user gave none (upgrades on by default).
pub fn listener_upgrades(user: &[Upgrade]) -> Vec<Upgrade> {
    let mut out = user.to_vec();
    if !out.iter().any(|u| u.kind == UpgradeKind::WebSocket) {
        out.push(Upgrade {
            kind: UpgradeKind::WebSocket,
            enabled: None,
        });
    }
    out
}

fn hcm(gw: &Gateway) -> HttpConnectionManager {
    let s = &gw.hcm;
    let upgrade_configs = listener_upgrades(&s.upgrades)
        .into_iter()
        .map(|u| http_connection_manager::UpgradeConfig {
            upgrade_type: names::upgrade_type(u.kind).to_string(),
            enabled: u.enabled.map(bool_value),
            ..Default::default()
        })
        .collect();
    let has_common = s.idle_timeout.is_some()
        || s.max_connection_duration.is_some()
        || s.max_stream_duration.is_some()
        || s.max_headers_count.is_some()
        || s.max_requests_per_connection.is_some()
        // Gloo only sets the action when it is not the default (ALLOW).
        || s
            .headers_with_underscores_action
            .is_some_and(|a| a != HeadersWithUnderscores::Allow);
    let common = has_common.then(|| HttpProtocolOptions {
        idle_timeout: s.idle_timeout.map(duration),
        max_connection_duration: s.max_connection_duration.map(duration),
        max_stream_duration: s.max_stream_duration.map(duration),
        max_headers_count: s.max_headers_count.map(proto::u32),
        max_requests_per_connection: s.max_requests_per_connection.map(proto::u32),
        headers_with_underscores_action: s
            .headers_with_underscores_action
            .map_or(0, proto::headers_with_underscores),
        ..Default::default()
    });
    let header_key_format = if s.proper_case_header_key_format == Some(true) {
        Some(http1_protocol_options::HeaderKeyFormat {
            header_format: Some(
                http1_protocol_options::header_key_format::HeaderFormat::ProperCaseWords(
                    http1_protocol_options::header_key_format::ProperCaseWords {},
                ),
            ),
        })
    } else if s.preserve_case_header_key_format == Some(true) {
        Some(http1_protocol_options::HeaderKeyFormat {
            header_format: Some(
                http1_protocol_options::header_key_format::HeaderFormat::StatefulFormatter(
                    TypedExtensionConfig {
                        name: "envoy.http.stateful_header_formatters.preserve_case".to_string(),
                        typed_config: Some(proto::any(PreserveCaseFormatterConfig::default())),
                    },
                ),
            ),
        })
    } else {
        None
    };
    let has_http1 = s.accept_http_10.is_some()
        || s.default_host_for_http_10.is_some()
        || s.allow_chunked_length.is_some()
        || s.enable_trailers.is_some()
        || header_key_format.is_some();
    let http1 = has_http1.then(|| Http1ProtocolOptions {
        accept_http_10: s.accept_http_10.unwrap_or(false),
        default_host_for_http_10: s.default_host_for_http_10.clone().unwrap_or_default(),
        allow_chunked_length: s.allow_chunked_length.unwrap_or(false),
        enable_trailers: s.enable_trailers.unwrap_or(false),
        header_key_format,
        ..Default::default()
    });
    let http2 = s.http2.as_ref().map(|h| Http2ProtocolOptions {
        initial_stream_window_size: h.initial_stream_window_size.map(proto::u32),
        initial_connection_window_size: h.initial_connection_window_size.map(proto::u32),
        max_concurrent_streams: h.max_concurrent_streams.map(proto::u32),
        override_stream_error_on_invalid_http_message: h
            .override_stream_error_on_invalid_http_message
            .map(bool_value),
        ..Default::default()
    });
    HttpConnectionManager {
        codec_type: codec_type(s.codec_type.unwrap_or(CodecType::Auto)),
        stat_prefix: "http".to_string(),
        route_specifier: Some(http_connection_manager::RouteSpecifier::Rds(Rds {
            config_source: Some(ConfigSource {
                resource_api_version: ApiVersion::V3 as i32,
                config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
                    AggregatedConfigSource {},
                )),
                ..Default::default()
            }),
            route_config_name: names::route_config_name(gw),
        })),
        http_filters: http_filters(gw),
        upgrade_configs,
        // Gloo forces path normalisation on unless the user says otherwise.
        normalize_path: Some(bool_value(s.normalize_path.unwrap_or(true))),
        merge_slashes: s.merge_slashes.unwrap_or(false),
        stream_idle_timeout: s.stream_idle_timeout.map(duration),
        request_timeout: s.request_timeout.map(duration),
        request_headers_timeout: s.request_headers_timeout.map(duration),
        drain_timeout: s.drain_timeout.map(duration),
        delayed_close_timeout: s.delayed_close_timeout.map(duration),
        common_http_protocol_options: common,
        http_protocol_options: http1,
        http2_protocol_options: http2,
        use_remote_address: s.use_remote_address.map(bool_value),
        server_name: s.server_name.clone().unwrap_or_default(),
        server_header_transformation: s
            .server_header_transformation
            .map_or(0, server_header_transformation),
        path_with_escaped_slashes_action: s
            .path_with_escaped_slashes_action
            .map_or(0, escaped_slashes),
        forward_client_cert_details: s
            .forward_client_cert_details
            .map_or(0, forward_client_cert_details),
        set_current_client_cert_details: s.set_current_client_cert_details.map(
            |[subject, cert, chain, dns, uri]| {
                http_connection_manager::SetCurrentClientCertDetails {
                    subject: Some(bool_value(subject)),
                    cert,
                    chain,
                    dns,
                    uri,
                    ..Default::default()
                }
            },
        ),
        strip_port_mode: s
            .strip_any_host_port
            .filter(|b| *b)
            .map(http_connection_manager::StripPortMode::StripAnyHostPort),
        append_x_forwarded_port: s.append_x_forwarded_port.unwrap_or(false),
        request_id_extension: s
            .uuid_request_id_config
            .map(|(pack, sampling)| RequestIdExtension {
                typed_config: Some(proto::any(UuidRequestIdConfig {
                    pack_trace_reason: pack.map(bool_value),
                    use_request_id_for_trace_sampling: sampling.map(bool_value),
                })),
            }),
        internal_address_config: s.internal_address_config.as_ref().map(|(unix, ranges)| {
            http_connection_manager::InternalAddressConfig {
                unix_sockets: *unix,
                cidr_ranges: ranges
                    .iter()
                    .map(|(p, l)| CidrRange {
                        address_prefix: p.clone(),
                        prefix_len: Some(proto::u32(*l)),
                    })
                    .collect(),
            }
        }),
        skip_xff_append: s.skip_xff_append.unwrap_or(false),
        via: s.via.clone().unwrap_or_default(),
        xff_num_trusted_hops: s.xff_num_trusted_hops.unwrap_or(0),
        generate_request_id: s.generate_request_id.map(bool_value),
        proxy_100_continue: s.proxy_100_continue.unwrap_or(false),
        max_request_headers_kb: s.max_request_headers_kb.map(proto::u32),
        preserve_external_request_id: s.preserve_external_request_id.unwrap_or(false),
        // `accessLoggingService`: Gloo's als plugin puts these on every HTTP
        // connection manager of the listener.
        access_log: access_log::access_logs(&gw.options.access_logs),
        tracing: s.tracing.as_ref().map(hf::tracing),
        ..Default::default()
    }
}

fn http_filter<M: prost::Name>(name: &str, config: M) -> HttpFilter {
    HttpFilter {
        name: name.to_string(),
        config_type: Some(http_filter::ConfigType::TypedConfig(proto::any(config))),
        ..Default::default()
    }
}

/// Gloo's HTTP filters in Gloo's stage order (`plugins/staged_filters.go`:
/// by stage, then weight, then filter name): `FaultStage` (the gzip
/// compressor, then fault: "compressor" sorts first, so it is also the
/// last to touch a response), `CorsStage`, `AuthNStage` (ext_authz, when
/// the Gateway names an auth server), after `AuthZStage` (gRPC-Web,
/// then health check), `RouteStage` (buffer, then CSRF), the router last.
/// Fault, CORS and CSRF are always in the chain, as Gloo installs them
/// (`plugins/faultinjection`, `plugins/cors`, `plugins/csrf`, unless its
/// `removeUnusedFilters`), configured to do nothing until a route's
/// per-filter config says otherwise: adding them only when some route
/// uses them would make the Listener depend on routes, and a Listener
/// change drains sockets. gRPC-Web is there unless the Gateway disables it
/// (`plugins/grpcweb`); buffer, gzip and health check only when the
/// Gateway asks (`plugins/buffer`, `plugins/gzip`, `plugins/healthcheck`).
fn http_filters(gw: &Gateway) -> Vec<HttpFilter> {
    let mut filters = Vec::new();
    if let Some(g) = &gw.gzip {
        filters.push(http_filter(COMPRESSOR_FILTER, hf::compressor(g)));
    }
    filters.push(http_filter(FAULT_FILTER, HttpFault::default()));
    filters.push(http_filter(CORS_FILTER, Cors {}));
    // Gloo's extauth plugin: `DuringStage(AuthNStage)`, after CORS (and
    // WAF, which edgeplane refuses), before gRPC-Web and health check.
    if let Some(e) = &gw.ext_authz {
        filters.push(http_filter(EXT_AUTHZ_FILTER, hf::ext_authz(e)));
    }
    if gw.grpc_web {
        filters.push(http_filter(GRPC_WEB_FILTER, GrpcWeb {}));
    }
    if let Some(path) = &gw.health_check_path {
        filters.push(http_filter(HEALTH_CHECK_FILTER, hf::health_check(path)));
    }
    if let Some(n) = gw.buffer_max_request_bytes {
        filters.push(http_filter(
            BUFFER_FILTER,
            Buffer {
                max_request_bytes: Some(proto::u32(n)),
            },
        ));
    }
    // The Gateway's listener-level policy, else Gloo's default: enforced
    // for 0% of requests (an explicit zero; Envoy reads a missing default
    // as 100%).
    let csrf = match &gw.csrf {
        Some(c) => super::route::csrf_policy(c),
        None => CsrfPolicy {
            filter_enabled: Some(RuntimeFractionalPercent {
                default_value: Some(FractionalPercent::default()),
                ..Default::default()
            }),
            ..Default::default()
        },
    };
    filters.push(http_filter(CSRF_FILTER, csrf));
    filters.push(http_filter(ROUTER_FILTER, Router::default()));
    filters
}

fn codec_type(c: CodecType) -> i32 {
    use http_connection_manager::CodecType as E;
    (match c {
        CodecType::Auto => E::Auto,
        CodecType::Http1 => E::Http1,
        CodecType::Http2 => E::Http2,
    }) as i32
}

fn server_header_transformation(t: ServerHeaderTransformation) -> i32 {
    use http_connection_manager::ServerHeaderTransformation as E;
    (match t {
        ServerHeaderTransformation::Overwrite => E::Overwrite,
        ServerHeaderTransformation::AppendIfAbsent => E::AppendIfAbsent,
        ServerHeaderTransformation::PassThrough => E::PassThrough,
    }) as i32
}

fn escaped_slashes(a: EscapedSlashesAction) -> i32 {
    use http_connection_manager::PathWithEscapedSlashesAction as E;
    (match a {
        EscapedSlashesAction::ImplementationSpecificDefault => E::ImplementationSpecificDefault,
        EscapedSlashesAction::KeepUnchanged => E::KeepUnchanged,
        EscapedSlashesAction::RejectRequest => E::RejectRequest,
        EscapedSlashesAction::UnescapeAndRedirect => E::UnescapeAndRedirect,
        EscapedSlashesAction::UnescapeAndForward => E::UnescapeAndForward,
    }) as i32
}

fn forward_client_cert_details(d: ForwardClientCertDetails) -> i32 {
    use http_connection_manager::ForwardClientCertDetails as E;
    (match d {
        ForwardClientCertDetails::Sanitize => E::Sanitize,
        ForwardClientCertDetails::ForwardOnly => E::ForwardOnly,
        ForwardClientCertDetails::AppendForward => E::AppendForward,
        ForwardClientCertDetails::SanitizeSet => E::SanitizeSet,
        ForwardClientCertDetails::AlwaysForwardOnly => E::AlwaysForwardOnly,
    }) as i32
}

#[cfg(test)]
mod tests;
