//! Upstream → Cluster with its endpoints inlined (no EDS, so a cluster
//! update never waits on a second resource to warm).

use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress, address, socket_address};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::google::protobuf::Duration;

use crate::model::Upstream;

/// Gloo's default upstream connect timeout.
const CONNECT_TIMEOUT_SECS: i64 = 5;

pub fn cluster(up: &Upstream) -> Cluster {
    let name = up.cluster_name();
    let all_ips = up
        .hosts
        .iter()
        .all(|h| h.addr.parse::<std::net::IpAddr>().is_ok());
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
                ..Default::default()
            })),
            ..Default::default()
        })
        .collect();
    Cluster {
        name: name.clone(),
        connect_timeout: Some(Duration {
            seconds: CONNECT_TIMEOUT_SECS,
            nanos: 0,
        }),
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
        ..Default::default()
    }
}
