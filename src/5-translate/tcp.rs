//! TCP hosts → filter chains, as Gloo's tcp plugin builds them
//! (`projects/gloo/pkg/plugins/tcp/plugin.go`) and its
//! `tcpFilterChainTranslator` places them (`projects/gloo/pkg/translator/
//! filter_chain.go`): per host, in order, one chain of [`sni_cluster` (for
//! `forwardSniClusterName`), `tcp_proxy`] with stat prefix `tcp`; matched
//! by the host's SNI domains; TLS terminated when the host has a
//! certificate, passed through untouched when it has only `sniDomains`.
//! Inside a hybrid gateway the matcher adds its source ranges, and its
//! `sniDomains` stand in for a host's own when the host has none.

use envoy_types::pb::envoy::config::core::v3::{
    CidrRange, HeaderValue, HeaderValueOption, header_value_option,
};
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, FilterChainMatch, filter};
use envoy_types::pb::envoy::extensions::filters::network::sni_cluster::v3::SniCluster;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{TcpProxy, tcp_proxy};

use super::proto::{self, duration};
use super::{access_log, names, tls};
use crate::model::{
    Gateway, GatewayMatcher, TcpDestination, TcpGateway, TcpHost, TcpHostTls, TcpProxySettings,
};

/// Envoy's TCP proxy network filter.
pub const TCP_PROXY_FILTER: &str = "envoy.filters.network.tcp_proxy";
/// Envoy's filter that sets the upstream cluster to the SNI name (Gloo's
/// `SniFilter`).
pub const SNI_CLUSTER_FILTER: &str = "envoy.filters.network.sni_cluster";
/// Gloo's `DefaultTcpStatPrefix` (a gateway's TCP listener has no
/// `statPrefix` of its own).
const STAT_PREFIX: &str = "tcp";

/// The filter chains of a TCP gateway, one per host in order.
pub fn filter_chains(
    gw: &Gateway,
    t: &TcpGateway,
    matcher: Option<&GatewayMatcher>,
    secrets: &std::collections::BTreeMap<crate::model::Key, crate::model::TlsSecret>,
) -> Vec<FilterChain> {
    t.hosts
        .iter()
        .map(|h| {
            let mut chain = host_chain(gw, &t.proxy, h, secrets);
            if let Some(m) = matcher {
                apply_matcher(&mut chain, m, true);
            }
            chain
        })
        .collect()
}

/// Gloo's tls_inspector plugin for TCP listeners: any host with an
/// `sslConfig` or `forwardSniClusterName` needs the SNI read.
pub fn needs_tls_inspector(t: &TcpGateway) -> bool {
    t.hosts
        .iter()
        .any(|h| h.tls != TcpHostTls::None || matches!(h.destination, TcpDestination::ForwardSni))
}

/// A hybrid matcher on a chain: for TCP chains its SNI domains when the
/// chain has none (Gloo's `defaultSslConfig`, which also makes the match
/// present, if empty); for every chain its source ranges.
pub fn apply_matcher(chain: &mut FilterChain, m: &GatewayMatcher, tcp: bool) {
    if tcp && let Some(sni) = &m.ssl_sni_domains {
        let fcm = chain
            .filter_chain_match
            .get_or_insert_with(Default::default);
        if fcm.server_names.is_empty() {
            fcm.server_names = sni.clone();
        }
    }
    if !m.source_prefix_ranges.is_empty() {
        let fcm = chain
            .filter_chain_match
            .get_or_insert_with(Default::default);
        fcm.source_prefix_ranges = m
            .source_prefix_ranges
            .iter()
            .map(|r| CidrRange {
                address_prefix: r.address_prefix.clone(),
                prefix_len: r.prefix_len.map(proto::u32),
            })
            .collect();
    }
}

fn host_chain(
    gw: &Gateway,
    s: &TcpProxySettings,
    h: &TcpHost,
    secrets: &std::collections::BTreeMap<crate::model::Key, crate::model::TlsSecret>,
) -> FilterChain {
    let mut filters = Vec::new();
    let cluster_specifier = match &h.destination {
        TcpDestination::Upstream(k) => tcp_proxy::ClusterSpecifier::Cluster(names::cluster_name(k)),
        TcpDestination::Weighted(list) => {
            tcp_proxy::ClusterSpecifier::WeightedClusters(tcp_proxy::WeightedCluster {
                clusters: list
                    .iter()
                    .map(|(k, w)| tcp_proxy::weighted_cluster::ClusterWeight {
                        name: names::cluster_name(k),
                        weight: *w,
                        ..Default::default()
                    })
                    .collect(),
            })
        }
        TcpDestination::ForwardSni => {
            // The cluster is left empty: `sni_cluster` sets it per
            // connection from the SNI.
            filters.push(Filter {
                name: SNI_CLUSTER_FILTER.to_string(),
                config_type: Some(filter::ConfigType::TypedConfig(proto::any(SniCluster {}))),
            });
            tcp_proxy::ClusterSpecifier::Cluster(String::new())
        }
    };
    let config = TcpProxy {
        stat_prefix: STAT_PREFIX.to_string(),
        cluster_specifier: Some(cluster_specifier),
        max_connect_attempts: s.max_connect_attempts.map(proto::u32),
        idle_timeout: s.idle_timeout.map(duration),
        tunneling_config: s.tunneling.as_ref().map(|t| tcp_proxy::TunnelingConfig {
            hostname: t.hostname.clone(),
            headers_to_add: t
                .headers_to_add
                .iter()
                .map(|(k, v, append)| HeaderValueOption {
                    header: Some(HeaderValue {
                        key: k.clone(),
                        value: v.clone(),
                        ..Default::default()
                    }),
                    // Gloo sets the deprecated `append`; its action
                    // equivalent: unset or true appends, false overwrites.
                    append_action: if *append == Some(false) {
                        header_value_option::HeaderAppendAction::OverwriteIfExistsOrAdd as i32
                    } else {
                        0
                    },
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
        // Gloo's als plugin: the listener's `accessLoggingService` logs
        // each TCP connection too.
        access_log: access_log::access_logs(&gw.options.access_logs),
        // Gloo sets the deprecated top-level field; this is its
        // replacement.
        access_log_options: s
            .access_log_flush_interval
            .map(|d| tcp_proxy::TcpAccessLogOptions {
                access_log_flush_interval: Some(duration(d)),
                ..Default::default()
            }),
        ..Default::default()
    };
    filters.push(Filter {
        name: TCP_PROXY_FILTER.to_string(),
        config_type: Some(filter::ConfigType::TypedConfig(proto::any(config))),
    });
    match &h.tls {
        TcpHostTls::None => FilterChain {
            filters,
            ..Default::default()
        },
        TcpHostTls::Passthrough(sni) => FilterChain {
            filter_chain_match: Some(FilterChainMatch {
                server_names: sni.clone(),
                ..Default::default()
            }),
            filters,
            ..Default::default()
        },
        TcpHostTls::Terminate(ssl) => tls::filter_chain(ssl, secrets, filters),
    }
}
