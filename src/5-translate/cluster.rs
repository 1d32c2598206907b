//! Upstream → Cluster with its endpoints inlined (no EDS, so a cluster
//! update never waits on a second resource to warm).
//!
//! Gloo's static-upstream rules: all IP hosts → STATIC, any hostname →
//! STRICT_DNS (IPv4 lookups); TLS with the first hostname as SNI, and each
//! host with its own SNI (`sniAddr`, or its addr under `autoSniRewrite`)
//! picked out by a `transport_socket_matches` entry on endpoint metadata;
//! each endpoint's health-check hostname is its addr or the health check's
//! Host. HTTP
//! protocol settings go in the typed `HttpProtocolOptions` extension only
//! (never the deprecated cluster fields), as its map's single entry.

use std::collections::HashMap;

use envoy_types::pb::envoy::config::cluster::v3::{
    CircuitBreakers, Cluster, OutlierDetection, UpstreamConnectionOptions, circuit_breakers,
    cluster,
};
use envoy_types::pb::envoy::config::core::v3::{
    self as core, Address, HealthCheck, Metadata, SocketAddress, TransportSocket, address,
    health_check, socket_address, transport_socket,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, endpoint, lb_endpoint,
};
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    HttpProtocolOptions, http_protocol_options,
};
use envoy_types::pb::envoy::r#type::v3::Percent;
use envoy_types::pb::google::protobuf::{Duration, Struct, UInt64Value, Value, value};

use super::names;
use super::proto::{self, HTTP_PROTOCOL_OPTIONS, TLS_TRANSPORT_SOCKET, duration};
use crate::model::{self, HealthChecker, Key, LbPolicy, TlsSecret, Upstream};

/// The TLS Secrets served, by key.
pub type Secrets = std::collections::BTreeMap<Key, TlsSecret>;

/// Gloo's default upstream connect timeout.
const CONNECT_TIMEOUT_SECS: i64 = 5;

/// The endpoint metadata namespace `transport_socket_matches` look in.
const SOCKET_MATCH_NS: &str = "envoy.transport_socket_match";

/// `secrets`: the TLS Secrets served (for `sslConfig.secretRef`: which of
/// a Secret's certificate and CA exist).
pub fn cluster(up: &Upstream, secrets: &Secrets) -> Cluster {
    let name = names::cluster_name(&up.key);
    let all_ips = up.hosts.iter().all(model::HostPort::is_ip);
    // Gloo: all IPs → STATIC; any hostname → STRICT_DNS, IPv4 lookups.
    let (kind, family) = if all_ips {
        (
            cluster::DiscoveryType::Static,
            cluster::DnsLookupFamily::Auto,
        )
    } else {
        (
            cluster::DiscoveryType::StrictDns,
            cluster::DnsLookupFamily::V4Only,
        )
    };
    // Gloo's static plugin (`projects/gloo/pkg/plugins/static/plugin.go`):
    // every host with an SNI carries the match key `<sni>;<addr>:<port>` in
    // its metadata, and with TLS gets a transport socket match of that name
    // with its own SNI, in host order.
    let match_name = |h: &model::HostPort| -> Option<String> {
        h.sni
            .as_ref()
            .map(|sni| format!("{sni};{}:{}", h.addr, h.port))
    };
    // Gloo: a health check's Host wins over the host's own addr.
    let hc_host = up.health_checks.first().and_then(|hc| match &hc.checker {
        HealthChecker::Http { host, .. } => host.clone().filter(|h| !h.is_empty()),
        HealthChecker::Tcp => None,
    });
    let lb_endpoints = up
        .hosts
        .iter()
        .map(|h| LbEndpoint {
            host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                address: Some(Address {
                    address: Some(address::Address::SocketAddress(SocketAddress {
                        address: h.addr.clone(),
                        port_specifier: Some(socket_address::PortSpecifier::PortValue(h.port)),
                        ..Default::default()
                    })),
                }),
                hostname: h.addr.clone(),
                health_check_config: Some(endpoint::HealthCheckConfig {
                    hostname: hc_host.clone().unwrap_or_else(|| h.addr.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            })),
            load_balancing_weight: h.weight.map(proto::u32),
            metadata: match_name(h).map(|m| Metadata {
                filter_metadata: single(SOCKET_MATCH_NS, match_struct(&m)),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect();
    // The cluster's TLS: `sslConfig` first (Gloo sets it before the static
    // plugin runs, which then keeps it), else `useTls`. Either way each
    // host with an SNI gets a copy with its own SNI.
    let tls = upstream_tls_context(up, secrets);
    let transport_socket_matches = match &tls {
        None => Vec::new(),
        Some(ctx) => up
            .hosts
            .iter()
            .filter_map(|h| Some((h.sni.as_deref()?, match_name(h)?)))
            .map(|(sni, name)| cluster::TransportSocketMatch {
                r#match: Some(match_struct(&name)),
                name,
                transport_socket: Some(tls_socket(UpstreamTlsContext {
                    sni: sni.to_string(),
                    ..ctx.clone()
                })),
            })
            .collect(),
    };
    let conn = &up.connection;
    let (lb_policy, lb_config) = lb_policy(up.load_balancer.as_ref());
    Cluster {
        name: name.clone(),
        connect_timeout: Some(conn.connect_timeout.map(duration).unwrap_or(Duration {
            seconds: CONNECT_TIMEOUT_SECS,
            nanos: 0,
        })),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(kind as i32)),
        dns_lookup_family: family as i32,
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: name,
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints,
                ..Default::default()
            }],
            ..Default::default()
        }),
        transport_socket: tls.map(tls_socket),
        transport_socket_matches,
        typed_extension_protocol_options: http_options(up)
            .map(|o| single(HTTP_PROTOCOL_OPTIONS, proto::any(o)))
            .unwrap_or_default(),
        upstream_connection_options: conn.tcp_keepalive.as_ref().map(|k| {
            UpstreamConnectionOptions {
                tcp_keepalive: Some(core::TcpKeepalive {
                    keepalive_probes: k.probes.map(proto::u32),
                    keepalive_time: k.time_secs.map(proto::u32),
                    keepalive_interval: k.interval_secs.map(proto::u32),
                }),
                ..Default::default()
            }
        }),
        per_connection_buffer_limit_bytes: conn.per_connection_buffer_limit_bytes.map(proto::u32),
        circuit_breakers: up.circuit_breakers.as_ref().map(|c| CircuitBreakers {
            thresholds: vec![circuit_breakers::Thresholds {
                priority: core::RoutingPriority::Default as i32,
                max_connections: c.max_connections.map(proto::u32),
                max_pending_requests: c.max_pending_requests.map(proto::u32),
                max_requests: c.max_requests.map(proto::u32),
                max_retries: c.max_retries.map(proto::u32),
                track_remaining: c.track_remaining,
                ..Default::default()
            }],
            ..Default::default()
        }),
        health_checks: up.health_checks.iter().map(health_check).collect(),
        lb_policy: lb_policy as i32,
        lb_config,
        common_lb_config: up.load_balancer.as_ref().and_then(|lb| {
            (lb.healthy_panic_threshold.is_some() || lb.update_merge_window.is_some()).then(|| {
                cluster::CommonLbConfig {
                    healthy_panic_threshold: lb
                        .healthy_panic_threshold
                        .map(|value| Percent { value }),
                    update_merge_window: lb.update_merge_window.map(duration),
                    ..Default::default()
                }
            })
        }),
        outlier_detection: up.outlier_detection.as_ref().map(|o| OutlierDetection {
            consecutive_5xx: o.consecutive_5xx.map(proto::u32),
            interval: Some(duration(o.interval)),
            base_ejection_time: o.base_ejection_time.map(duration),
            max_ejection_percent: o.max_ejection_percent.map(proto::u32),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The typed HTTP protocol options, when the upstream sets any: HTTP/2 for
/// `useHttp2`, else explicit HTTP/1.1 (Envoy's own default, so an HTTP/1
/// backend keeps getting HTTP/1.1 and WebSocket upgrades whatever protocol
/// the downstream spoke), plus the common options.
fn http_options(up: &Upstream) -> Option<HttpProtocolOptions> {
    let conn = &up.connection;
    let common = conn.common_http.as_ref();
    if !up.use_http2 && conn.max_requests_per_connection.is_none() && common.is_none() {
        return None;
    }
    use http_protocol_options::explicit_http_config::ProtocolConfig;
    let protocol = if up.use_http2 {
        ProtocolConfig::Http2ProtocolOptions(core::Http2ProtocolOptions::default())
    } else {
        ProtocolConfig::HttpProtocolOptions(core::Http1ProtocolOptions::default())
    };
    let common_http_protocol_options = (conn.max_requests_per_connection.is_some()
        || common.is_some())
    .then(|| core::HttpProtocolOptions {
        idle_timeout: common.and_then(|c| c.idle_timeout).map(duration),
        max_headers_count: common.and_then(|c| c.max_headers_count).map(proto::u32),
        max_stream_duration: common.and_then(|c| c.max_stream_duration).map(duration),
        headers_with_underscores_action: common
            .and_then(|c| c.headers_with_underscores)
            .map(proto::headers_with_underscores)
            .unwrap_or_default(),
        max_requests_per_connection: conn.max_requests_per_connection.map(proto::u32),
        ..Default::default()
    });
    Some(HttpProtocolOptions {
        common_http_protocol_options,
        upstream_protocol_options: Some(
            http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(
                http_protocol_options::ExplicitHttpConfig {
                    protocol_config: Some(protocol),
                },
            ),
        ),
        ..Default::default()
    })
}

fn lb_policy(lb: Option<&model::LoadBalancer>) -> (cluster::LbPolicy, Option<cluster::LbConfig>) {
    match lb.and_then(|lb| lb.policy.as_ref()) {
        None | Some(LbPolicy::RoundRobin) => (cluster::LbPolicy::RoundRobin, None),
        Some(LbPolicy::LeastRequest { choice_count }) => (
            cluster::LbPolicy::LeastRequest,
            choice_count.map(|n| {
                cluster::LbConfig::LeastRequestLbConfig(cluster::LeastRequestLbConfig {
                    choice_count: Some(proto::u32(n)),
                    ..Default::default()
                })
            }),
        ),
        Some(LbPolicy::Random) => (cluster::LbPolicy::Random, None),
        Some(LbPolicy::RingHash {
            minimum_ring_size,
            maximum_ring_size,
        }) => (
            cluster::LbPolicy::RingHash,
            (minimum_ring_size.is_some() || maximum_ring_size.is_some()).then(|| {
                cluster::LbConfig::RingHashLbConfig(cluster::RingHashLbConfig {
                    minimum_ring_size: minimum_ring_size.map(|value| UInt64Value { value }),
                    maximum_ring_size: maximum_ring_size.map(|value| UInt64Value { value }),
                    ..Default::default()
                })
            }),
        ),
        Some(LbPolicy::Maglev) => (cluster::LbPolicy::Maglev, None),
    }
}

fn health_check(hc: &model::HealthCheck) -> HealthCheck {
    let checker = match &hc.checker {
        HealthChecker::Http { path, host } => {
            health_check::HealthChecker::HttpHealthCheck(health_check::HttpHealthCheck {
                path: path.clone(),
                host: host.clone().unwrap_or_default(),
                ..Default::default()
            })
        }
        HealthChecker::Tcp => {
            health_check::HealthChecker::TcpHealthCheck(health_check::TcpHealthCheck::default())
        }
    };
    HealthCheck {
        timeout: Some(duration(hc.timeout)),
        interval: Some(duration(hc.interval)),
        healthy_threshold: Some(proto::u32(hc.healthy_threshold)),
        unhealthy_threshold: Some(proto::u32(hc.unhealthy_threshold)),
        no_traffic_interval: hc.no_traffic_interval.map(duration),
        health_checker: Some(checker),
        ..Default::default()
    }
}

/// The cluster's `UpstreamTlsContext`: from `sslConfig` when given, else
/// `useTls` (no certificates, the first hostname as SNI), else none.
fn upstream_tls_context(up: &Upstream, secrets: &Secrets) -> Option<UpstreamTlsContext> {
    match (&up.ssl, &up.tls) {
        (Some(ssl), _) => Some(ssl_context(ssl, secrets)),
        (None, Some(t)) => Some(UpstreamTlsContext {
            sni: t.sni.clone().unwrap_or_default(),
            ..Default::default()
        }),
        (None, None) => None,
    }
}

/// An `UpstreamSslConfig` as Gloo's `ResolveUpstreamSslConfig` builds it
/// (`projects/gloo/pkg/utils/ssl.go`): files by path, the root CA as the
/// validation context, TLS parameters only when `parameters` was given.
///
/// Gloo puts `verifySubjectAltName` in the deprecated
/// `match_subject_alt_names` (exact matchers, no SAN type), which Envoy
/// expands to one typed matcher per SAN type, DNS, URI, EMAIL and
/// IP_ADDRESS, in that order (`getSubjectAltNameMatchers`). Written here
/// already expanded: the same check, without the deprecated field.
fn ssl_context(ssl: &model::UpstreamSsl, secrets: &Secrets) -> UpstreamTlsContext {
    use common_tls_context::ValidationContextType as Vc;
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
        CertificateValidationContext, CommonTlsContext, SubjectAltNameMatcher, TlsCertificate,
        common_tls_context, subject_alt_name_matcher::SanType,
    };
    use envoy_types::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher};
    let sans: Vec<SubjectAltNameMatcher> = ssl
        .verify_subject_alt_names
        .iter()
        .flat_map(|san| {
            [
                SanType::Dns,
                SanType::Uri,
                SanType::Email,
                SanType::IpAddress,
            ]
            .map(|t| SubjectAltNameMatcher {
                san_type: t as i32,
                matcher: Some(StringMatcher {
                    match_pattern: Some(string_matcher::MatchPattern::Exact(san.clone())),
                    ..Default::default()
                }),
                ..Default::default()
            })
        })
        .collect();
    let mut common = CommonTlsContext {
        tls_params: ssl.params.as_ref().map(super::tls::tls_parameters),
        alpn_protocols: ssl.alpn_protocols.clone(),
        ..Default::default()
    };
    match &ssl.secret {
        None => {
            common.tls_certificates = ssl
                .client_cert
                .iter()
                .map(|(cert, key)| TlsCertificate {
                    certificate_chain: Some(super::tls::file(cert)),
                    private_key: Some(super::tls::file(key)),
                    ..Default::default()
                })
                .collect();
            common.validation_context_type = ssl.root_ca.as_deref().map(|ca| {
                Vc::ValidationContext(CertificateValidationContext {
                    trusted_ca: Some(super::tls::file(ca)),
                    match_typed_subject_alt_names: sans,
                    ..Default::default()
                })
            });
        }
        // Only names: rotating the Secret changes SDS resources, never
        // this cluster. The parts named are those of the Secret served.
        Some(s) => {
            let served = secrets.get(&s.key);
            if s.client_cert && served.is_some_and(TlsSecret::has_cert) {
                common.tls_certificate_sds_secret_configs =
                    vec![super::tls::sds(names::secret_cert_name(&s.key))];
            }
            let ca = served
                .is_some_and(|t| t.root_ca.is_some())
                .then(|| super::tls::sds(names::secret_ca_name(&s.key)));
            common.validation_context_type = match (ca, sans.is_empty()) {
                (Some(ca), true) => Some(Vc::ValidationContextSdsSecretConfig(ca)),
                // The SANs stay in the cluster, the CA comes over SDS.
                (Some(ca), false) => Some(Vc::CombinedValidationContext(
                    common_tls_context::CombinedCertificateValidationContext {
                        default_validation_context: Some(CertificateValidationContext {
                            match_typed_subject_alt_names: sans,
                            ..Default::default()
                        }),
                        validation_context_sds_secret_config: Some(ca),
                        ..Default::default()
                    },
                )),
                (None, _) => None,
            };
        }
    }
    UpstreamTlsContext {
        common_tls_context: Some(common),
        sni: ssl.sni.clone(),
        allow_renegotiation: ssl.allow_renegotiation,
        ..Default::default()
    }
}

fn tls_socket(ctx: UpstreamTlsContext) -> TransportSocket {
    TransportSocket {
        name: TLS_TRANSPORT_SOCKET.to_string(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(proto::any(ctx))),
    }
}

/// HTTP CONNECT tunnelling, as Gloo's tunneling plugin
/// (`projects/gloo/pkg/plugins/tunneling/plugin.go`) rewrites an
/// Upstream's finished cluster `base`:
///
/// - `base` is renamed `<cluster>_original` (its load assignment keeps the
///   old name, which Envoy ignores for inline endpoints); it still reaches
///   the hosts, which are the proxy, now over `httpConnectSslConfig`'s TLS
///   or plain TCP, and loses its per-host transport socket matches;
/// - a STATIC cluster under the Upstream's own name (what routes use)
///   sends to the abstract unix socket `@/<cluster>`, with `base`'s TLS, so
///   the TLS of `sslConfig` runs end to end inside the tunnel;
/// - the listener `solo_io_generated_self_listener_<cluster>` on that
///   socket is a TCP proxy to `<cluster>_original` that opens the tunnel
///   with `CONNECT <httpProxyHostname>` and the `httpConnectHeaders`.
///
/// Gloo writes the headers with the deprecated `append: false`; here the
/// same meaning is `append_action: OVERWRITE_IF_EXISTS_OR_ADD`. Being an
/// abstract socket (Linux), it is one per network namespace: two Envoys
/// sharing one cannot both serve the same tunnelled Upstream, as in Gloo.
pub fn tunnel(
    mut base: Cluster,
    t: &model::HttpTunnel,
    secrets: &Secrets,
) -> (Vec<Cluster>, Listener) {
    use envoy_types::pb::envoy::config::core::v3::{
        HeaderValue, HeaderValueOption, Pipe, header_value_option,
    };
    use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, filter};
    use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{
        TcpProxy, tcp_proxy,
    };
    let name = base.name.clone();
    let original = names::tunnel_original_cluster(&name);
    let pipe = || Address {
        address: Some(address::Address::Pipe(Pipe {
            path: names::tunnel_pipe(&name),
            ..Default::default()
        })),
    };
    let end_to_end = base.transport_socket.take();
    base.transport_socket = t
        .proxy_ssl
        .as_ref()
        .map(|ssl| tls_socket(ssl_context(ssl, secrets)));
    base.transport_socket_matches.clear();
    base.name = original.clone();
    let forwarding = Cluster {
        name: name.clone(),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Static as i32,
        )),
        connect_timeout: Some(Duration {
            seconds: CONNECT_TIMEOUT_SECS,
            nanos: 0,
        }),
        transport_socket: end_to_end,
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: name.clone(),
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: vec![LbEndpoint {
                    host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                        address: Some(pipe()),
                        ..Default::default()
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    let tcp = TcpProxy {
        stat_prefix: names::tunnel_stat_prefix(&name),
        tunneling_config: Some(tcp_proxy::TunnelingConfig {
            hostname: t.hostname.clone(),
            headers_to_add: t
                .headers
                .iter()
                .map(|(k, v)| HeaderValueOption {
                    header: Some(HeaderValue {
                        key: k.clone(),
                        value: v.clone(),
                        ..Default::default()
                    }),
                    append_action: header_value_option::HeaderAppendAction::OverwriteIfExistsOrAdd
                        as i32,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
        cluster_specifier: Some(tcp_proxy::ClusterSpecifier::Cluster(original)),
        ..Default::default()
    };
    let listener = Listener {
        name: names::tunnel_listener(&name),
        address: Some(pipe()),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                // Gloo's name for it; Envoy picks the filter by its type.
                name: "tcp".to_string(),
                config_type: Some(filter::ConfigType::TypedConfig(proto::any(tcp))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    // Gloo appends the generated cluster after the Upstream's own.
    (vec![base, forwarding], listener)
}

/// `{<name>: true}`: a host's socket-match metadata and its match criterion.
fn match_struct(name: &str) -> Struct {
    Struct {
        fields: single(
            name,
            Value {
                kind: Some(value::Kind::BoolValue(true)),
            },
        ),
    }
}

/// A one-entry map: the only shape of protobuf map that encodes
/// deterministically.
fn single<V>(key: &str, v: V) -> HashMap<String, V> {
    HashMap::from([(key.to_string(), v)])
}

#[cfg(test)]
mod tests;
