//! Gateway → Listener with one HTTP connection manager taking routes by RDS.

use envoy_types::pb::envoy::config::core::v3::Address;
use envoy_types::pb::envoy::config::core::v3::{
    AggregatedConfigSource, ApiVersion, ConfigSource, HttpProtocolOptions, SocketAddress, address,
    config_source, socket_address,
};
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener, filter};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds, http_connection_manager, http_filter,
};
use envoy_types::pb::google::protobuf::UInt32Value;
use envoy_types::util::pack_any;

use super::{bool_value, duration};
use crate::model::{Gateway, Upgrade, UpgradeKind};

pub const HCM_FILTER: &str = "envoy.filters.network.http_connection_manager";
pub const ROUTER_FILTER: &str = "envoy.filters.http.router";

pub fn listener(gw: &Gateway) -> Listener {
    let hcm = hcm(gw);
    let ipv4 = gw.bind_address.parse::<std::net::Ipv4Addr>().is_ok();
    Listener {
        name: gw.listener_name(),
        address: Some(Address {
            address: Some(address::Address::SocketAddress(SocketAddress {
                address: gw.bind_address.clone(),
                port_specifier: Some(socket_address::PortSpecifier::PortValue(gw.bind_port)),
                // As Gloo: `::` also accepts IPv4 clients.
                ipv4_compat: !ipv4,
                ..Default::default()
            })),
        }),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: HCM_FILTER.to_string(),
                config_type: Some(filter::ConfigType::TypedConfig(pack_any(hcm))),
            }],
            ..Default::default()
        }],
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
            upgrade_type: u.kind.envoy_name().to_string(),
            enabled: u.enabled.map(bool_value),
            ..Default::default()
        })
        .collect();
    let common = s.idle_timeout.map(|d| HttpProtocolOptions {
        idle_timeout: Some(duration(d)),
        ..Default::default()
    });
    HttpConnectionManager {
        codec_type: http_connection_manager::CodecType::Auto as i32,
        stat_prefix: "http".to_string(),
        route_specifier: Some(http_connection_manager::RouteSpecifier::Rds(Rds {
            config_source: Some(ConfigSource {
                resource_api_version: ApiVersion::V3 as i32,
                config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
                    AggregatedConfigSource {},
                )),
                ..Default::default()
            }),
            route_config_name: gw.route_config_name(),
        })),
        // The router is always the last filter.
        http_filters: vec![HttpFilter {
            name: ROUTER_FILTER.to_string(),
            config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(
                Router::default(),
            ))),
            ..Default::default()
        }],
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
        use_remote_address: s.use_remote_address.map(bool_value),
        server_name: s.server_name.clone().unwrap_or_default(),
        skip_xff_append: s.skip_xff_append.unwrap_or(false),
        via: s.via.clone().unwrap_or_default(),
        xff_num_trusted_hops: s.xff_num_trusted_hops.unwrap_or(0),
        generate_request_id: s.generate_request_id.map(bool_value),
        proxy_100_continue: s.proxy_100_continue.unwrap_or(false),
        max_request_headers_kb: s.max_request_headers_kb.map(|v| UInt32Value { value: v }),
        preserve_external_request_id: s.preserve_external_request_id.unwrap_or(false),
        ..Default::default()
    }
}
