//! Upstream → Cluster rules, checked on whole manifests through the pure
//! pipeline.

use std::path::PathBuf;

use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::core::v3::{
    RoutingPriority, health_check, http_protocol_options::HeadersWithUnderscoresAction,
    transport_socket,
};
use envoy_types::pb::envoy::config::endpoint::v3::{LbEndpoint, lb_endpoint};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    HttpProtocolOptions, http_protocol_options,
};
use envoy_types::pb::google::protobuf::value;
use prost::Message;

use crate::pipeline::{Load, build};
use crate::source::SourceFile;

const GATEWAY: &str = "apiVersion: gateway.solo.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: gloo-system}\nspec: {bindPort: 8080, httpGateway: {}}\n";

/// An Upstream `us` in `gloo-system` whose spec is `spec` (YAML flow).
fn upstream(spec: &str) -> String {
    format!(
        "apiVersion: gloo.solo.io/v1\nkind: Upstream\nmetadata: {{name: us, namespace: gloo-system}}\nspec: {spec}\n"
    )
}

fn load(spec: &str) -> Load {
    let files = [GATEWAY.to_string(), upstream(spec)]
        .into_iter()
        .enumerate()
        .map(|(i, text)| SourceFile {
            path: PathBuf::from(format!("m{i}.yaml")),
            text,
        })
        .collect();
    build(files, Vec::new())
}

/// The cluster of a valid upstream spec.
fn cluster_of(spec: &str) -> Cluster {
    let l = load(spec);
    assert!(!l.has_errors(), "{}", l.render_diagnostics());
    let out = l.output.expect("valid config");
    let c = out["gloo-system~gateway-proxy"].clusters[0].clone();
    assert_eq!(c.name, "us_gloo-system");
    c
}

/// The error messages of an invalid upstream spec.
fn errors_of(spec: &str) -> Vec<String> {
    let l = load(spec);
    assert!(l.snapshot.is_none(), "expected errors for {spec}");
    l.diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| {
            assert!(d.pos.line > 0, "error without a position: {}", d.message);
            d.message.clone()
        })
        .collect()
}

fn tls_of(
    ts: &Option<envoy_types::pb::envoy::config::core::v3::TransportSocket>,
) -> UpstreamTlsContext {
    let ts = ts.as_ref().expect("a transport socket");
    assert_eq!(ts.name, "envoy.transport_sockets.tls");
    let Some(transport_socket::ConfigType::TypedConfig(any)) = &ts.config_type else {
        panic!("transport socket without typed config");
    };
    assert_eq!(
        any.type_url,
        "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
    );
    UpstreamTlsContext::decode(any.value.as_slice()).expect("UpstreamTlsContext decodes")
}

fn http_options_of(c: &Cluster) -> HttpProtocolOptions {
    assert_eq!(c.typed_extension_protocol_options.len(), 1);
    let any = &c.typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
    assert_eq!(
        any.type_url,
        "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    );
    HttpProtocolOptions::decode(any.value.as_slice()).expect("HttpProtocolOptions decodes")
}

fn endpoints(c: &Cluster) -> &[LbEndpoint] {
    &c.load_assignment
        .as_ref()
        .expect("inline endpoints")
        .endpoints[0]
        .lb_endpoints
}

/// The transport socket match key a host's endpoint metadata carries.
fn endpoint_match(e: &LbEndpoint) -> Option<String> {
    let s = e
        .metadata
        .as_ref()?
        .filter_metadata
        .get("envoy.transport_socket_match")?;
    assert_eq!(s.fields.len(), 1);
    let (k, v) = s.fields.iter().next()?;
    assert_eq!(v.kind, Some(value::Kind::BoolValue(true)));
    Some(k.clone())
}

fn explicit_protocol(
    o: &HttpProtocolOptions,
) -> &http_protocol_options::explicit_http_config::ProtocolConfig {
    match &o.upstream_protocol_options {
        Some(http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(e)) => {
            e.protocol_config.as_ref().expect("a protocol")
        }
        other => panic!("expected explicit_http_config, got {other:?}"),
    }
}

#[test]
fn plain_static_upstream_keeps_defaults() {
    let c = cluster_of("{static: {hosts: [{addr: 127.0.0.1, port: 8081}]}}");
    assert_eq!(
        c.cluster_discovery_type,
        Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Static as i32
        ))
    );
    assert_eq!(
        c.connect_timeout.map(|d| (d.seconds, d.nanos)),
        Some((5, 0))
    );
    assert!(c.transport_socket.is_none());
    assert!(c.transport_socket_matches.is_empty());
    assert!(c.typed_extension_protocol_options.is_empty());
    assert!(c.circuit_breakers.is_none());
    assert!(c.health_checks.is_empty());
    assert!(c.outlier_detection.is_none());
    assert!(c.common_lb_config.is_none());
    assert!(c.upstream_connection_options.is_none());
    assert_eq!(c.lb_policy, cluster::LbPolicy::RoundRobin as i32);
    let e = &endpoints(&c)[0];
    assert!(e.load_balancing_weight.is_none());
    // Gloo marks every host with its socket-match key, TLS or not.
    assert_eq!(
        endpoint_match(e).as_deref(),
        Some("127.0.0.1;127.0.0.1:8081")
    );
}

#[test]
fn port_443_turns_tls_on_unless_use_tls_is_false() {
    // A hostname on 443: TLS, SNI = the hostname, STRICT_DNS.
    let c = cluster_of("{static: {hosts: [{addr: api.example.com, port: 443}]}}");
    assert_eq!(tls_of(&c.transport_socket).sni, "api.example.com");
    assert_eq!(
        c.cluster_discovery_type,
        Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::StrictDns as i32
        ))
    );
    assert_eq!(c.dns_lookup_family, cluster::DnsLookupFamily::V4Only as i32);
    // Gloo gives the host its own match even when its SNI is the cluster's.
    assert_eq!(c.transport_socket_matches.len(), 1);

    // useTls: false wins over port 443.
    let c = cluster_of("{static: {useTls: false, hosts: [{addr: api.example.com, port: 443}]}}");
    assert!(c.transport_socket.is_none());
    assert!(c.transport_socket_matches.is_empty());

    // useTls: true without 443; IP hosts only: TLS without SNI.
    let c = cluster_of("{static: {useTls: true, hosts: [{addr: 10.0.0.1, port: 8443}]}}");
    assert_eq!(tls_of(&c.transport_socket).sni, "");

    // No 443 and useTls unset: plain text.
    let c = cluster_of("{static: {hosts: [{addr: api.example.com, port: 8443}]}}");
    assert!(c.transport_socket.is_none());

    // Any one host on 443 turns TLS on for the cluster; the SNI is the
    // first hostname, even when the 443 host is an IP.
    let c = cluster_of(
        "{static: {hosts: [{addr: 10.0.0.1, port: 443}, {addr: b.example.com, port: 8443}]}}",
    );
    assert_eq!(tls_of(&c.transport_socket).sni, "b.example.com");
}

/// Gloo's static plugin (`projects/gloo/pkg/plugins/static/plugin.go`,
/// and its `plugin_test.go` "should have sni per host (by default)"): every
/// host gets a transport socket match named `<sni>;<addr>:<port>`, in host
/// order, whose SNI is its `sniAddr` or else its addr, IPs included; its
/// endpoint metadata carries `{<that name>: true}`.
#[test]
fn per_host_sni_is_gloos_transport_socket_match() {
    let spec = "{static: {hosts: [{addr: a.example.com, port: 443}, {addr: 1.2.3.5, port: 443}, {addr: c.example.com, port: 443, sniAddr: test}]}}";
    let c = cluster_of(spec);
    assert_eq!(tls_of(&c.transport_socket).sni, "a.example.com");
    let names: Vec<&str> = c
        .transport_socket_matches
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "a.example.com;a.example.com:443",
            "1.2.3.5;1.2.3.5:443",
            "test;c.example.com:443"
        ]
    );
    let snis: Vec<String> = c
        .transport_socket_matches
        .iter()
        .map(|m| tls_of(&m.transport_socket).sni.clone())
        .collect();
    assert_eq!(snis, ["a.example.com", "1.2.3.5", "test"]);
    for m in &c.transport_socket_matches {
        let crit = m.r#match.as_ref().expect("match criteria");
        assert_eq!(crit.fields.len(), 1);
        assert_eq!(
            crit.fields[&m.name].kind,
            Some(value::Kind::BoolValue(true))
        );
    }
    let keys: Vec<Option<String>> = endpoints(&c).iter().map(endpoint_match).collect();
    let want: Vec<Option<String>> = names.iter().map(|n| Some(n.to_string())).collect();
    assert_eq!(keys, want);

    // autoSniRewrite: false: only explicit sniAddr hosts get one.
    let c = cluster_of(
        "{static: {autoSniRewrite: false, hosts: [{addr: a.example.com, port: 443}, {addr: b.example.com, port: 443}, {addr: c.example.com, port: 443, sniAddr: s.example.com}]}}",
    );
    let names: Vec<&str> = c
        .transport_socket_matches
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(names, ["s.example.com;c.example.com:443"]);
    let keys: Vec<Option<String>> = endpoints(&c).iter().map(endpoint_match).collect();
    assert_eq!(
        keys,
        [
            None,
            None,
            Some("s.example.com;c.example.com:443".to_string())
        ]
    );
}

/// Gloo's static plugin sets each endpoint's health-check hostname to its
/// addr, or to the first HTTP health check's `host` when it has one
/// (`plugin_test.go`: "health check config gets propagated", "Should prefer
/// top-level health-check hostnames, when available").
#[test]
fn endpoints_carry_gloos_health_check_hostname() {
    let hostname = |c: &Cluster| -> Vec<String> {
        endpoints(c)
            .iter()
            .map(|e| match &e.host_identifier {
                Some(lb_endpoint::HostIdentifier::Endpoint(ep)) => ep
                    .health_check_config
                    .as_ref()
                    .map(|h| h.hostname.clone())
                    .unwrap_or_default(),
                _ => String::new(),
            })
            .collect()
    };
    let c = cluster_of(
        "{static: {hosts: [{addr: 1.2.3.4, port: 1234}, {addr: '2603:3005:b0b:1d00::b7aa', port: 1234}]}}",
    );
    assert_eq!(hostname(&c), ["1.2.3.4", "2603:3005:b0b:1d00::b7aa"]);
    let c = cluster_of(
        "{static: {hosts: [{addr: 1.2.3.4, port: 1234}]}, healthChecks: [{timeout: 1s, interval: 1s, unhealthyThreshold: 1, healthyThreshold: 1, httpHealthCheck: {path: /h, host: test.host.path}}]}",
    );
    assert_eq!(hostname(&c), ["test.host.path"]);
}

#[test]
fn sni_addr_without_tls_warns() {
    let l = load("{static: {hosts: [{addr: 127.0.0.1, port: 80, sniAddr: x.example.com}]}}");
    assert!(!l.has_errors(), "{}", l.render_diagnostics());
    assert_eq!(l.diagnostics.len(), 1);
    assert!(
        l.diagnostics[0]
            .message
            .starts_with("sniAddr has no effect"),
        "{}",
        l.diagnostics[0].message
    );
    let c = &l.output.expect("valid")["gloo-system~gateway-proxy"].clusters[0];
    assert!(c.transport_socket.is_none() && c.transport_socket_matches.is_empty());
    assert_eq!(
        endpoint_match(&endpoints(c)[0]).as_deref(),
        Some("x.example.com;127.0.0.1:80")
    );
}

#[test]
fn load_balancing_weight() {
    let c = cluster_of(
        "{static: {hosts: [{addr: 127.0.0.1, port: 1, loadBalancingWeight: 3}, {addr: 127.0.0.2, port: 1}]}}",
    );
    let w: Vec<Option<u32>> = endpoints(&c)
        .iter()
        .map(|e| e.load_balancing_weight.map(|w| w.value))
        .collect();
    assert_eq!(w, [Some(3), None]);

    let errs = errors_of("{static: {hosts: [{addr: 127.0.0.1, port: 1, loadBalancingWeight: 0}]}}");
    assert_eq!(
        errs,
        ["host loadBalancingWeight must be at least 1 (leave it out for the default weight)"]
    );
}

#[test]
fn use_http2_is_the_typed_extension_only() {
    let c = cluster_of("{useHttp2: true, static: {hosts: [{addr: 127.0.0.1, port: 1}]}}");
    #[allow(deprecated)]
    {
        assert!(c.http2_protocol_options.is_none());
        assert!(c.http_protocol_options.is_none());
        assert!(c.common_http_protocol_options.is_none());
        assert!(c.max_requests_per_connection.is_none());
    }
    let o = http_options_of(&c);
    assert!(matches!(
        explicit_protocol(&o),
        http_protocol_options::explicit_http_config::ProtocolConfig::Http2ProtocolOptions(_)
    ));
    assert!(o.common_http_protocol_options.is_none());

    // useHttp2: false is the default: nothing.
    let c = cluster_of("{useHttp2: false, static: {hosts: [{addr: 127.0.0.1, port: 1}]}}");
    assert!(c.typed_extension_protocol_options.is_empty());
}

#[test]
fn connection_config_maps_to_cluster_and_http_options() {
    let c = cluster_of(
        "{static: {hosts: [{addr: 127.0.0.1, port: 1}]}, connectionConfig: {maxRequestsPerConnection: 100, connectTimeout: 1.5s, tcpKeepalive: {keepaliveProbes: 3, keepaliveTime: 60s, keepaliveInterval: 10s}, perConnectionBufferLimitBytes: 32768, commonHttpProtocolOptions: {idleTimeout: 30s, maxHeadersCount: 50, maxStreamDuration: 1m, headersWithUnderscoresAction: REJECT_REQUEST}}}",
    );
    assert_eq!(
        c.connect_timeout.map(|d| (d.seconds, d.nanos)),
        Some((1, 500_000_000))
    );
    let k = c
        .upstream_connection_options
        .as_ref()
        .and_then(|o| o.tcp_keepalive.as_ref())
        .expect("tcp keepalive");
    assert_eq!(k.keepalive_probes.map(|v| v.value), Some(3));
    assert_eq!(k.keepalive_time.map(|v| v.value), Some(60));
    assert_eq!(k.keepalive_interval.map(|v| v.value), Some(10));
    assert_eq!(
        c.per_connection_buffer_limit_bytes.map(|v| v.value),
        Some(32768)
    );
    #[allow(deprecated)]
    {
        assert!(c.max_requests_per_connection.is_none());
        assert!(c.common_http_protocol_options.is_none());
    }
    let o = http_options_of(&c);
    // Without useHttp2: explicit HTTP/1.1, so WebSocket upgrades reach an
    // HTTP/1 backend whatever the downstream protocol.
    assert!(matches!(
        explicit_protocol(&o),
        http_protocol_options::explicit_http_config::ProtocolConfig::HttpProtocolOptions(_)
    ));
    let common = o.common_http_protocol_options.expect("common options");
    assert_eq!(
        common.max_requests_per_connection.map(|v| v.value),
        Some(100)
    );
    assert_eq!(common.idle_timeout.map(|d| d.seconds), Some(30));
    assert_eq!(common.max_headers_count.map(|v| v.value), Some(50));
    assert_eq!(common.max_stream_duration.map(|d| d.seconds), Some(60));
    assert_eq!(
        common.headers_with_underscores_action,
        HeadersWithUnderscoresAction::RejectRequest as i32
    );

    // With useHttp2 too: one entry, HTTP/2, the same common options.
    let c = cluster_of(
        "{useHttp2: true, static: {hosts: [{addr: 127.0.0.1, port: 1}]}, connectionConfig: {maxRequestsPerConnection: 7}}",
    );
    let o = http_options_of(&c);
    assert!(matches!(
        explicit_protocol(&o),
        http_protocol_options::explicit_http_config::ProtocolConfig::Http2ProtocolOptions(_)
    ));
    assert_eq!(
        o.common_http_protocol_options
            .and_then(|c| c.max_requests_per_connection)
            .map(|v| v.value),
        Some(7)
    );

    // Only cluster-level settings: no HTTP options at all.
    let c = cluster_of(
        "{static: {hosts: [{addr: 127.0.0.1, port: 1}]}, connectionConfig: {connectTimeout: 2s}}",
    );
    assert!(c.typed_extension_protocol_options.is_empty());
    assert_eq!(c.connect_timeout.map(|d| d.seconds), Some(2));
}

#[test]
fn connection_config_errors() {
    let errs = errors_of(
        "{static: {hosts: [{addr: 127.0.0.1, port: 1}]}, connectionConfig: {connectTimeout: 0s, tcpKeepalive: {keepaliveTime: 1.5s}, commonHttpProtocolOptions: {headersWithUnderscoresAction: NOPE}}}",
    );
    assert_eq!(errs.len(), 3, "{errs:?}");
    assert!(errs.contains(&"connectTimeout must be greater than 0s".to_string()));
    assert!(
        errs.iter()
            .any(|e| e.starts_with("tcpKeepalive.keepaliveTime must be a whole number of seconds"))
    );
    assert!(
        errs.iter()
            // Gloo's upstreamconn plugin (projects/gloo/pkg/plugins/upstreamconn/plugin.go).
            .any(|e| e == "connectionConfig.commonHttpProtocolOptions.headersWithUnderscoresAction: invalid HeadersWithUnderscoresAction NOPE in CommonHttpProtocolOptions; expected one of ALLOW, REJECT_REQUEST, DROP_HEADER")
    );
}

#[test]
fn circuit_breakers_are_the_default_priority_thresholds() {
    let c = cluster_of(
        "{static: {hosts: [{addr: 127.0.0.1, port: 1}]}, circuitBreakers: {maxConnections: 10, maxPendingRequests: 11, maxRequests: 12, maxRetries: 0, trackRemaining: true}}",
    );
    let cb = c.circuit_breakers.expect("circuit breakers");
    assert_eq!(cb.thresholds.len(), 1);
    let t = &cb.thresholds[0];
    assert_eq!(t.priority, RoutingPriority::Default as i32);
    assert_eq!(t.max_connections.map(|v| v.value), Some(10));
    assert_eq!(t.max_pending_requests.map(|v| v.value), Some(11));
    assert_eq!(t.max_requests.map(|v| v.value), Some(12));
    assert_eq!(t.max_retries.map(|v| v.value), Some(0));
    assert!(t.track_remaining);

    // Unset thresholds stay Envoy's defaults.
    let c = cluster_of(
        "{static: {hosts: [{addr: 127.0.0.1, port: 1}]}, circuitBreakers: {maxRequests: 5}}",
    );
    let t = &c.circuit_breakers.expect("circuit breakers").thresholds[0];
    assert!(t.max_connections.is_none() && t.max_retries.is_none());
    assert!(!t.track_remaining);
}

#[test]
fn health_checks_map_and_thresholds_are_required() {
    let c = cluster_of(
        "{static: {hosts: [{addr: 127.0.0.1, port: 1}]}, healthChecks: [{timeout: 1s, interval: 2s, healthyThreshold: 1, unhealthyThreshold: 3, noTrafficInterval: 5s, httpHealthCheck: {path: /healthz, host: probe.local}}]}",
    );
    assert_eq!(c.health_checks.len(), 1);
    let h = &c.health_checks[0];
    assert_eq!(h.timeout.map(|d| d.seconds), Some(1));
    assert_eq!(h.interval.map(|d| d.seconds), Some(2));
    assert_eq!(h.healthy_threshold.map(|v| v.value), Some(1));
    assert_eq!(h.unhealthy_threshold.map(|v| v.value), Some(3));
    assert_eq!(h.no_traffic_interval.map(|d| d.seconds), Some(5));
    let Some(health_check::HealthChecker::HttpHealthCheck(http)) = &h.health_checker else {
        panic!("http health check expected");
    };
    assert_eq!(
        (http.path.as_str(), http.host.as_str()),
        ("/healthz", "probe.local")
    );

    let c = cluster_of(
        "{static: {hosts: [{addr: 127.0.0.1, port: 1}]}, healthChecks: [{timeout: 500ms, interval: 10s, healthyThreshold: 2, unhealthyThreshold: 2, tcpHealthCheck: {}}]}",
    );
    let t = &c.health_checks[0];
    assert_eq!(t.timeout.map(|d| d.nanos), Some(500_000_000));
    assert!(t.no_traffic_interval.is_none());
    assert!(matches!(
        t.health_checker,
        Some(health_check::HealthChecker::TcpHealthCheck(_))
    ));

    // Gloo's texts for the missing required fields.
    let errs = errors_of(
        "{static: {hosts: [{addr: 127.0.0.1, port: 1}]}, healthChecks: [{timeout: 1s, interval: 1s, tcpHealthCheck: {}}]}",
    );
    assert_eq!(
        errs,
        [
            "The field HealthCheck[0].HealthyThreshold cannot be nil",
            "The field HealthCheck[0].UnhealthyThreshold cannot be nil",
        ]
    );
    let errs = errors_of(
        "{static: {hosts: [{addr: 127.0.0.1, port: 1}]}, healthChecks: [{timeout: 1s, interval: 1s, unhealthyThreshold: 1, tcpHealthCheck: {}}]}",
    );
    assert_eq!(
        errs,
        ["The field HealthCheck[0].HealthyThreshold cannot be nil"]
    );
    let errs = errors_of(
        "{static: {hosts: [{addr: 127.0.0.1, port: 1}]}, healthChecks: [{healthyThreshold: 1, unhealthyThreshold: 1}]}",
    );
    assert_eq!(
        errs,
        // Sorted, as every load's diagnostics are.
        [
            "The field HealthCheck[0].HealthChecker cannot be nil",
            "The field HealthCheck[0].Interval cannot be nil",
            "The field HealthCheck[0].Timeout cannot be nil",
        ]
    );
    let errs = errors_of(
        "{static: {hosts: [{addr: 127.0.0.1, port: 1}]}, healthChecks: [{timeout: 1s, interval: 0s, healthyThreshold: 1, unhealthyThreshold: 1, httpHealthCheck: {host: x}}]}",
    );
    assert_eq!(
        errs,
        [
            "HealthCheck[0].Interval must be greater than 0s",
            "HealthCheck[0].HttpHealthCheck: path must not be empty",
        ]
    );
    // Checker fields beyond path/host are not implemented: an error.
    let errs = errors_of(
        "{static: {hosts: [{addr: 127.0.0.1, port: 1}]}, healthChecks: [{timeout: 1s, interval: 1s, healthyThreshold: 1, unhealthyThreshold: 1, httpHealthCheck: {path: /, expectedStatuses: [{start: 200, end: 300}]}}]}",
    );
    assert!(
        errs[0].contains("unknown field `expectedStatuses`"),
        "{errs:?}"
    );
    // A second health check would need a name Gloo's shape cannot give.
    let errs = errors_of(
        "{static: {hosts: [{addr: 127.0.0.1, port: 1}]}, healthChecks: [{timeout: 1s, interval: 1s, healthyThreshold: 1, unhealthyThreshold: 1, tcpHealthCheck: {}}, {timeout: 1s, interval: 1s, healthyThreshold: 1, unhealthyThreshold: 1, tcpHealthCheck: {}}]}",
    );
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("edgeplane supports one health check per upstream"),
        "{errs:?}"
    );
}

#[test]
fn load_balancer_config() {
    let base = "static: {hosts: [{addr: 127.0.0.1, port: 1}]}";
    let c = cluster_of(&format!(
        "{{{base}, loadBalancerConfig: {{healthyPanicThreshold: 25, updateMergeWindow: 2s, leastRequest: {{choiceCount: 3}}}}}}"
    ));
    assert_eq!(c.lb_policy, cluster::LbPolicy::LeastRequest as i32);
    let Some(cluster::LbConfig::LeastRequestLbConfig(lr)) = &c.lb_config else {
        panic!("least request config expected");
    };
    assert_eq!(lr.choice_count.map(|v| v.value), Some(3));
    let common = c.common_lb_config.expect("common lb config");
    assert_eq!(common.healthy_panic_threshold.map(|p| p.value), Some(25.0));
    assert_eq!(common.update_merge_window.map(|d| d.seconds), Some(2));

    let c = cluster_of(&format!(
        "{{{base}, loadBalancerConfig: {{ringHash: {{ringHashConfig: {{minimumRingSize: 2048, maximumRingSize: '4096'}}}}}}}}"
    ));
    assert_eq!(c.lb_policy, cluster::LbPolicy::RingHash as i32);
    let Some(cluster::LbConfig::RingHashLbConfig(rh)) = &c.lb_config else {
        panic!("ring hash config expected");
    };
    assert_eq!(rh.minimum_ring_size.map(|v| v.value), Some(2048));
    assert_eq!(rh.maximum_ring_size.map(|v| v.value), Some(4096));
    assert!(c.common_lb_config.is_none());

    for (policy, want) in [
        ("roundRobin: {}", cluster::LbPolicy::RoundRobin),
        ("random: {}", cluster::LbPolicy::Random),
        ("maglev: {}", cluster::LbPolicy::Maglev),
        ("leastRequest: {}", cluster::LbPolicy::LeastRequest),
        ("ringHash: {}", cluster::LbPolicy::RingHash),
    ] {
        let c = cluster_of(&format!("{{{base}, loadBalancerConfig: {{{policy}}}}}"));
        assert_eq!(c.lb_policy, want as i32, "{policy}");
        assert!(c.lb_config.is_none(), "{policy}");
    }

    let errs = errors_of(&format!(
        "{{{base}, loadBalancerConfig: {{random: {{}}, maglev: {{}}}}}}"
    ));
    assert!(
        errs[0].starts_with("loadBalancerConfig sets more than one policy"),
        "{errs:?}"
    );
    let errs = errors_of(&format!(
        "{{{base}, loadBalancerConfig: {{leastRequest: {{choiceCount: 1}}, healthyPanicThreshold: 101}}}}"
    ));
    assert_eq!(errs.len(), 2, "{errs:?}");
    let errs = errors_of(&format!(
        "{{{base}, loadBalancerConfig: {{ringHash: {{ringHashConfig: {{maximumRingSize: 10}}}}}}}}"
    ));
    assert_eq!(
        errs,
        ["ringHashConfig: minimumRingSize (1024) is greater than maximumRingSize (10)"]
    );
}

#[test]
fn outlier_detection_needs_an_interval() {
    let c = cluster_of(
        "{static: {hosts: [{addr: 127.0.0.1, port: 1}]}, outlierDetection: {consecutive5xx: 4, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 50}}",
    );
    let o = c.outlier_detection.expect("outlier detection");
    assert_eq!(o.consecutive_5xx.map(|v| v.value), Some(4));
    assert_eq!(o.interval.map(|d| d.seconds), Some(10));
    assert_eq!(o.base_ejection_time.map(|d| d.seconds), Some(30));
    assert_eq!(o.max_ejection_percent.map(|v| v.value), Some(50));

    let errs = errors_of(
        "{static: {hosts: [{addr: 127.0.0.1, port: 1}]}, outlierDetection: {consecutive5xx: 4}}",
    );
    // Gloo's createOutlierDetectionConfig (projects/gloo/pkg/translator/clusters.go).
    assert_eq!(
        errs,
        ["The field OutlierDetection.HealthChecker.Interval cannot be nil"]
    );
}

#[test]
fn unimplemented_upstream_fields_are_named() {
    for field in [
        "failover: {}",
        "dnsRefreshRate: 1s",
        "protocolSelection: USE_DOWNSTREAM_PROTOCOL",
    ] {
        let errs = errors_of(&format!(
            "{{static: {{hosts: [{{addr: 127.0.0.1, port: 1}}]}}, {field}}}"
        ));
        let name = field.split(':').next().unwrap_or_default();
        assert_eq!(
            errs,
            [format!(
                "`{name}` is a Gloo feature edgeplane does not implement here; Upstream gloo-system.us is rejected rather than served without it"
            )],
        );
    }
    let errs = errors_of("{static: {serviceSpec: {}, hosts: [{addr: 127.0.0.1, port: 1}]}}");
    assert!(
        errs[0].starts_with("`serviceSpec` is a Gloo feature"),
        "{errs:?}"
    );
    let errs = errors_of(
        "{static: {hosts: [{addr: 127.0.0.1, port: 1}]}, circuitBreakers: {maxConnectionz: 1}}",
    );
    assert!(
        errs[0].contains("unknown field `maxConnectionz`"),
        "{errs:?}"
    );
}

#[test]
fn feature_rich_cluster_bytes_are_deterministic() {
    let spec = "{useHttp2: true, static: {hosts: [{addr: a.example.com, port: 443, loadBalancingWeight: 2}, {addr: b.example.com, port: 443}, {addr: 10.0.0.1, port: 443, sniAddr: c.example.com}]}, connectionConfig: {maxRequestsPerConnection: 3, commonHttpProtocolOptions: {idleTimeout: 1s}}, circuitBreakers: {maxRequests: 1}, healthChecks: [{timeout: 1s, interval: 1s, healthyThreshold: 1, unhealthyThreshold: 1, tcpHealthCheck: {}}], loadBalancerConfig: {maglev: {}}, outlierDetection: {interval: 1s}}";
    let first = cluster_of(spec).encode_to_vec();
    for _ in 0..5 {
        assert_eq!(cluster_of(spec).encode_to_vec(), first);
    }
}

// === sslConfig (Gloo's `ResolveUpstreamSslConfig`, projects/gloo/pkg/utils/ssl.go) ===

/// Every field of an `UpstreamSslConfig` lands where Gloo puts it: files
/// by path, the root CA as the validation context with the SANs (Envoy's
/// expansion of Gloo's untyped matchers: DNS, URI, EMAIL, IP_ADDRESS),
/// ALPN, renegotiation, parameters; `sni` on the cluster's socket.
#[test]
fn ssl_config_is_gloos_upstream_tls_context() {
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
        common_tls_context::ValidationContextType, subject_alt_name_matcher::SanType,
        tls_parameters::TlsProtocol,
    };
    use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
    let c = cluster_of(
        "{static: {autoSniRewrite: false, hosts: [{addr: 127.0.0.1, port: 8443}]}, sslConfig: {sni: backend.example, sslFiles: {tlsCert: /c/tls.crt, tlsKey: /c/tls.key, rootCa: /c/ca.crt}, verifySubjectAltName: [backend.example, spiffe://x], alpnProtocols: [h2, http/1.1], allowRenegotiation: true, parameters: {minimumProtocolVersion: TLSv1_2, cipherSuites: [ECDHE-RSA-AES128-GCM-SHA256], ecdhCurves: [X25519]}}}",
    );
    let t = tls_of(&c.transport_socket);
    assert_eq!(t.sni, "backend.example");
    assert!(t.allow_renegotiation);
    let common = t.common_tls_context.expect("common context");
    assert_eq!(common.alpn_protocols, ["h2", "http/1.1"]);
    let cert = &common.tls_certificates[0];
    assert_eq!(common.tls_certificates.len(), 1);
    let file = |d: &Option<envoy_types::pb::envoy::config::core::v3::DataSource>| {
        use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
        match d.as_ref().and_then(|d| d.specifier.as_ref()) {
            Some(Specifier::Filename(f)) => f.clone(),
            other => panic!("not a file: {other:?}"),
        }
    };
    assert_eq!(file(&cert.certificate_chain), "/c/tls.crt");
    assert_eq!(file(&cert.private_key), "/c/tls.key");
    let Some(ValidationContextType::ValidationContext(v)) = &common.validation_context_type else {
        panic!("no validation context");
    };
    assert_eq!(file(&v.trusted_ca), "/c/ca.crt");
    let sans: Vec<(i32, String)> = v
        .match_typed_subject_alt_names
        .iter()
        .map(|m| {
            let Some(MatchPattern::Exact(e)) =
                m.matcher.as_ref().and_then(|m| m.match_pattern.as_ref())
            else {
                panic!("not exact: {m:?}");
            };
            (m.san_type, e.clone())
        })
        .collect();
    let types = [
        SanType::Dns,
        SanType::Uri,
        SanType::Email,
        SanType::IpAddress,
    ];
    let want: Vec<(i32, String)> = ["backend.example", "spiffe://x"]
        .iter()
        .flat_map(|s| types.map(|t| (t as i32, s.to_string())))
        .collect();
    assert_eq!(sans, want);
    let p = common.tls_params.expect("tls params");
    assert_eq!(p.tls_minimum_protocol_version, TlsProtocol::TlSv12 as i32);
    assert_eq!(p.tls_maximum_protocol_version, TlsProtocol::TlsAuto as i32);
    assert_eq!(p.cipher_suites, ["ECDHE-RSA-AES128-GCM-SHA256"]);
    assert_eq!(p.ecdh_curves, ["X25519"]);
    // autoSniRewrite: false and no sniAddr: no per-host socket.
    assert!(c.transport_socket_matches.is_empty());
}

/// Gloo: no `parameters` → no `tls_params`; `oneWayTls` drops the client
/// certificate but keeps verifying the server; a root CA alone is fine.
#[test]
fn ssl_config_defaults_and_one_way_tls() {
    let c = cluster_of(
        "{static: {hosts: [{addr: 127.0.0.1, port: 80}]}, sslConfig: {oneWayTls: true, sslFiles: {tlsCert: /c, tlsKey: /k, rootCa: /ca}}}",
    );
    let t = tls_of(&c.transport_socket);
    assert_eq!(t.sni, "");
    assert!(!t.allow_renegotiation);
    let common = t.common_tls_context.expect("common context");
    assert!(common.tls_certificates.is_empty());
    assert!(common.validation_context_type.is_some());
    assert!(common.tls_params.is_none());
    assert!(common.alpn_protocols.is_empty());
    // No files at all: TLS with nothing to verify (Gloo allows it).
    let c = cluster_of("{static: {hosts: [{addr: 127.0.0.1, port: 80}]}, sslConfig: {sni: x}}");
    let t = tls_of(&c.transport_socket);
    assert_eq!(t.sni, "x");
    let common = t.common_tls_context.expect("common context");
    assert!(common.tls_certificates.is_empty() && common.validation_context_type.is_none());
}

/// Gloo's static plugin (`projects/gloo/pkg/plugins/static/plugin.go`)
/// keeps the transport socket `sslConfig` set, even with `useTls: false`,
/// and adds one match per host with an SNI: the whole context with only
/// its SNI changed.
#[test]
fn ssl_config_with_per_host_sni_copies_the_context() {
    let c = cluster_of(
        "{static: {useTls: false, hosts: [{addr: a.example.com, port: 8443}, {addr: 10.0.0.2, port: 8443, sniAddr: two.example}]}, sslConfig: {sni: main.example, sslFiles: {rootCa: /ca}, verifySubjectAltName: [main.example]}}",
    );
    let top = tls_of(&c.transport_socket);
    assert_eq!(top.sni, "main.example");
    let names: Vec<&str> = c
        .transport_socket_matches
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "a.example.com;a.example.com:8443",
            "two.example;10.0.0.2:8443"
        ]
    );
    for (m, sni) in c
        .transport_socket_matches
        .iter()
        .zip(["a.example.com", "two.example"])
    {
        let t = tls_of(&m.transport_socket);
        assert_eq!(t.sni, sni);
        assert_eq!(t.common_tls_context, top.common_tls_context);
    }
}

/// Gloo's errors (`ResolveCommonSslConfig`) and edgeplane's refusals, each
/// at its field.
#[test]
fn ssl_config_errors() {
    let base = "static: {hosts: [{addr: 127.0.0.1, port: 80}]}";
    for (ssl, want) in [
        (
            "{sslFiles: {tlsCert: /c}}",
            "sslConfig.sslFiles: both or none of cert chain and private key must be provided",
        ),
        (
            "{verifySubjectAltName: [a]}",
            "sslConfig: a root_ca must be provided if verify_subject_alt_name is not empty",
        ),
        (
            // Gloo: utils.SslSecretNotFoundError wrapping SecretList.Find's.
            "{secretRef: {name: s, namespace: n}}",
            "SSL secret not found: list did not find secret n.s",
        ),
        (
            "{sds: {targetUri: x}}",
            "sslConfig.sds (an external SDS server) is not implemented by edgeplane yet; name a TLS Secret with sslConfig.secretRef, or give the files with sslConfig.sslFiles",
        ),
        (
            "{sslFiles: {rootCa: /ca, ocspStaple: /o}}",
            "sslConfig.sslFiles.ocspStaple is not implemented by edgeplane yet",
        ),
        (
            "{parameters: {minimumProtocolVersion: TLSv1_3, maximumProtocolVersion: TLSv1_2}}",
            "sslConfig.parameters: minimumProtocolVersion TLSv1_3 is above maximumProtocolVersion TLSv1_2",
        ),
        (
            "{alpnProtocols: ['']}",
            "sslConfig.alpnProtocols has an empty protocol",
        ),
    ] {
        let errs = errors_of(&format!("{{{base}, sslConfig: {ssl}}}"));
        assert_eq!(errs, [want], "{ssl}");
    }
    let errs = errors_of(&format!(
        "{{{base}, sslConfig: {{sslFiles: {{rootCa: /ca}}, parameters: {{minimumProtocolVersion: TLSv9}}}}}}"
    ));
    assert!(
        errs[0].starts_with("sslConfig.parameters.minimumProtocolVersion"),
        "{errs:?}"
    );
}

// === httpProxyHostname (Gloo's tunneling plugin, projects/gloo/pkg/plugins/tunneling/plugin.go) ===

fn proxy_output(spec: &str) -> crate::translate::ProxyResources {
    let l = load(spec);
    assert!(!l.has_errors(), "{}", l.render_diagnostics());
    let out = l.output.expect("valid config");
    out["gloo-system~gateway-proxy"].clone()
}

/// The Upstream's cluster becomes `<cluster>_original` (to the proxy, with
/// `httpConnectSslConfig`'s TLS, no socket matches), a STATIC cluster under
/// the Upstream's name sends to `@/<cluster>` with the `sslConfig` TLS, and
/// the listener on that socket tunnels with `CONNECT <hostname>`.
#[test]
fn http_proxy_hostname_is_gloos_self_listener_and_cluster_pair() {
    use envoy_types::pb::envoy::config::core::v3::{address, header_value_option};
    use envoy_types::pb::envoy::config::listener::v3::filter;
    use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{
        TcpProxy, tcp_proxy,
    };
    let res = proxy_output(
        "{static: {hosts: [{addr: proxy.example, port: 3128}]}, sslConfig: {sni: backend.example, sslFiles: {rootCa: /ca}}, httpProxyHostname: 'backend.example:443', httpConnectHeaders: [{key: proxy-authorization, value: basic x}], httpConnectSslConfig: {sni: proxy.example}}",
    );
    let names: Vec<&str> = res.clusters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["us_gloo-system_original", "us_gloo-system"]);
    let (original, fwd) = (&res.clusters[0], &res.clusters[1]);
    assert_eq!(tls_of(&original.transport_socket).sni, "proxy.example");
    assert!(original.transport_socket_matches.is_empty());
    assert_eq!(
        original.cluster_discovery_type,
        Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::StrictDns as i32
        ))
    );
    assert_eq!(tls_of(&fwd.transport_socket).sni, "backend.example");
    assert_eq!(
        fwd.cluster_discovery_type,
        Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Static as i32
        ))
    );
    let pipe_of = |a: &Option<envoy_types::pb::envoy::config::core::v3::Address>| match a
        .as_ref()
        .and_then(|a| a.address.as_ref())
    {
        Some(address::Address::Pipe(p)) => p.path.clone(),
        other => panic!("not a pipe: {other:?}"),
    };
    let Some(lb_endpoint::HostIdentifier::Endpoint(e)) = &endpoints(fwd)[0].host_identifier else {
        panic!("no endpoint");
    };
    assert_eq!(pipe_of(&e.address), "@/us_gloo-system");

    let l = res
        .listeners
        .iter()
        .find(|l| l.name == "solo_io_generated_self_listener_us_gloo-system")
        .expect("tunnel listener");
    assert_eq!(pipe_of(&l.address), "@/us_gloo-system");
    let f = &l.filter_chains[0].filters[0];
    assert_eq!(f.name, "tcp");
    let Some(filter::ConfigType::TypedConfig(any)) = &f.config_type else {
        panic!("no typed config");
    };
    let tcp = TcpProxy::decode(any.value.as_slice()).expect("TcpProxy decodes");
    assert_eq!(tcp.stat_prefix, "soloioTcpStatsus_gloo-system");
    assert_eq!(
        tcp.cluster_specifier,
        Some(tcp_proxy::ClusterSpecifier::Cluster(
            "us_gloo-system_original".to_string()
        ))
    );
    let t = tcp.tunneling_config.expect("tunneling config");
    assert_eq!(t.hostname, "backend.example:443");
    let h = &t.headers_to_add[0];
    let hv = h.header.as_ref().expect("header");
    assert_eq!(
        (hv.key.as_str(), hv.value.as_str()),
        ("proxy-authorization", "basic x")
    );
    assert_eq!(
        h.append_action,
        header_value_option::HeaderAppendAction::OverwriteIfExistsOrAdd as i32
    );

    // Without httpConnectSslConfig the proxy is reached in plain TCP, and
    // without sslConfig the tunnel carries plain bytes.
    let res = proxy_output(
        "{static: {hosts: [{addr: 127.0.0.1, port: 3128}]}, httpProxyHostname: 'b:80'}",
    );
    assert!(res.clusters.iter().all(|c| c.transport_socket.is_none()));
}

/// Gloo skips an empty `httpProxyHostname`; the CONNECT settings then do
/// nothing, which is said.
#[test]
fn tunnel_settings_without_hostname_warn() {
    let l = load(
        "{static: {hosts: [{addr: 127.0.0.1, port: 1}]}, httpProxyHostname: '', httpConnectHeaders: [{key: a, value: b}]}",
    );
    assert!(!l.has_errors(), "{}", l.render_diagnostics());
    let warnings: Vec<&str> = l.diagnostics.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        warnings,
        ["httpConnectHeaders has no effect without httpProxyHostname"]
    );
    let out = l.output.expect("valid");
    let res = &out["gloo-system~gateway-proxy"];
    assert_eq!(res.clusters.len(), 1);
    assert!(res.listeners.is_empty());
}

// === sslConfig.secretRef: the Secret over SDS ===

/// `us` with `ssl` as its sslConfig, plus `extra` documents.
fn load_with(ssl: &str, extra: &[String]) -> Load {
    let mut texts = vec![
        GATEWAY.to_string(),
        upstream(&format!(
            "{{static: {{hosts: [{{addr: 127.0.0.1, port: 8443}}]}}, sslConfig: {ssl}}}"
        )),
    ];
    texts.extend(extra.iter().cloned());
    let files = texts
        .into_iter()
        .enumerate()
        .map(|(i, text)| SourceFile {
            path: PathBuf::from(format!("m{i}.yaml")),
            text,
        })
        .collect();
    build(files, Vec::new())
}

/// A Secret holding only a `rootCa` (Gloo allows it for upstreams:
/// `ResolveCommonSslConfig` with `mustHaveCert` false).
fn ca_only_secret(name: &str, ca: &str) -> String {
    let lines: String = ca.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        "apiVersion: gloo.solo.io/v1\nkind: Secret\nmetadata: {{name: {name}, namespace: gloo-system}}\ntls:\n  rootCa: |\n{lines}"
    )
}

/// The proxy's (only) cluster.
fn first_cluster(l: &Load) -> Cluster {
    l.output.as_ref().expect("output")["gloo-system~gateway-proxy"].clusters[0].clone()
}

fn secret_names(l: &Load) -> Vec<String> {
    l.output.as_ref().expect("output")["gloo-system~gateway-proxy"]
        .secrets
        .iter()
        .map(|s| s.name.clone())
        .collect()
}

/// A client certificate and CA from a Secret: the cluster names both over
/// ADS (SDS), keeps the SANs beside the CA in a combined validation
/// context, and the proxy gets both SDS resources. Gloo inlines the same
/// PEM instead (`getSslSecrets`); Envoy verifies and presents the same.
#[test]
fn secret_ref_names_the_certificate_and_ca_over_sds() {
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::common_tls_context::ValidationContextType;
    let (cert, key) = crate::translate::tls::sds_tests::self_signed("client");
    let (ca, _) = crate::translate::tls::sds_tests::self_signed("ca");
    let l = load_with(
        "{sni: backend.example, secretRef: {name: client}, verifySubjectAltName: [backend.example]}",
        &[crate::translate::tls::sds_tests::secret_doc(
            "client",
            &cert,
            &key,
            Some(&ca),
        )],
    );
    assert!(!l.has_errors(), "{}", l.render_diagnostics());
    let c = first_cluster(&l);
    let t = tls_of(&c.transport_socket);
    assert_eq!(t.sni, "backend.example");
    let common = t.common_tls_context.expect("common");
    assert!(common.tls_certificates.is_empty(), "nothing inlined");
    let names: Vec<&str> = common
        .tls_certificate_sds_secret_configs
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(names, ["client_gloo-system"]);
    let Some(ValidationContextType::CombinedValidationContext(v)) = &common.validation_context_type
    else {
        panic!("not combined: {:?}", common.validation_context_type);
    };
    let sds = v
        .validation_context_sds_secret_config
        .as_ref()
        .expect("sds");
    assert_eq!(sds.name, "client_gloo-system_root-ca");
    let default = v.default_validation_context.as_ref().expect("default");
    assert_eq!(
        default.match_typed_subject_alt_names.len(),
        4,
        "DNS, URI, EMAIL, IP"
    );
    assert!(default.trusted_ca.is_none(), "the CA comes over SDS");
    assert_eq!(
        secret_names(&l),
        ["client_gloo-system", "client_gloo-system_root-ca"]
    );
    let bytes = c.encode_to_vec();
    let needle = b"PRIVATE KEY";
    assert!(!bytes.windows(needle.len()).any(|w| w == needle));
}

/// A CA-only Secret verifies the server and presents nothing; `oneWayTls`
/// drops a Secret's client certificate (Gloo: `TlsCertificates = nil`).
#[test]
fn secret_ref_ca_only_and_one_way_tls() {
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::common_tls_context::ValidationContextType;
    let (ca, _) = crate::translate::tls::sds_tests::self_signed("ca");
    let l = load_with("{secretRef: {name: ca}}", &[ca_only_secret("ca", &ca)]);
    assert!(!l.has_errors(), "{}", l.render_diagnostics());
    let c = first_cluster(&l);
    let common = tls_of(&c.transport_socket)
        .common_tls_context
        .expect("common");
    assert!(common.tls_certificate_sds_secret_configs.is_empty());
    let Some(ValidationContextType::ValidationContextSdsSecretConfig(v)) =
        &common.validation_context_type
    else {
        panic!(
            "no SDS validation context: {:?}",
            common.validation_context_type
        );
    };
    assert_eq!(v.name, "ca_gloo-system_root-ca");
    assert_eq!(
        secret_names(&l),
        ["ca_gloo-system_root-ca"],
        "no empty certificate"
    );

    let (cert, key) = crate::translate::tls::sds_tests::self_signed("client");
    let l = load_with(
        "{secretRef: {name: client}, oneWayTls: true}",
        &[crate::translate::tls::sds_tests::secret_doc(
            "client",
            &cert,
            &key,
            Some(&ca),
        )],
    );
    assert!(!l.has_errors(), "{}", l.render_diagnostics());
    let c = first_cluster(&l);
    let common = tls_of(&c.transport_socket)
        .common_tls_context
        .expect("common");
    assert!(common.tls_certificate_sds_secret_configs.is_empty());
    assert!(common.validation_context_type.is_some());
}

/// A new certificate in the Secret changes the SDS resource only: the
/// cluster's bytes and version stay, so Envoy keeps the cluster (and its
/// connections).
#[test]
fn rotating_an_upstream_secret_leaves_the_cluster_alone() {
    use crate::snapshot::ResourceType;
    let (ca, _) = crate::translate::tls::sds_tests::self_signed("ca");
    let snap = |cn: &str| {
        let (cert, key) = crate::translate::tls::sds_tests::self_signed(cn);
        let l = load_with(
            "{secretRef: {name: client}}",
            &[crate::translate::tls::sds_tests::secret_doc(
                "client",
                &cert,
                &key,
                Some(&ca),
            )],
        );
        assert!(!l.has_errors(), "{}", l.render_diagnostics());
        l.snapshot.expect("snapshot")
    };
    let (a, b) = (snap("one"), snap("two"));
    let (pa, pb) = (
        &a.proxies["gloo-system~gateway-proxy"],
        &b.proxies["gloo-system~gateway-proxy"],
    );
    assert_eq!(
        pa.version(ResourceType::Cluster),
        pb.version(ResourceType::Cluster)
    );
    assert_ne!(
        pa.version(ResourceType::Secret),
        pb.version(ResourceType::Secret)
    );
}

/// Gloo's errors for a bad `secretRef`, each at the field.
#[test]
fn secret_ref_errors() {
    let (cert, key) = crate::translate::tls::sds_tests::self_signed("client");
    let with_cert = crate::translate::tls::sds_tests::secret_doc("client", &cert, &key, None);
    for (ssl, want) in [
        (
            "{secretRef: {name: client}, verifySubjectAltName: [a]}",
            "sslConfig: a root_ca must be provided if verify_subject_alt_name is not empty",
        ),
        (
            "{secretRef: {name: client}, sslFiles: {rootCa: /ca}}",
            "sslConfig sets both secretRef and sslFiles; Gloo takes one source of certificates: keep one",
        ),
        (
            "{secretRef: {name: ''}}",
            "sslConfig.secretRef.name is empty",
        ),
    ] {
        let l = load_with(ssl, std::slice::from_ref(&with_cert));
        let errs: Vec<String> = l
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.message.clone())
            .collect();
        assert_eq!(errs, [want], "{ssl}");
    }
}

#[test]
fn static_hosts_errors_use_gloos_words() {
    // Gloo's static plugin (projects/gloo/pkg/plugins/static/plugin.go):
    // `Resolve` for no hosts, `ProcessUpstream` for an empty addr or port.
    assert_eq!(
        errors_of("{static: {hosts: []}}"),
        ["must provide at least 1 host in static spec"]
    );
    assert_eq!(
        errors_of("{static: {hosts: [{addr: '', port: 1}]}}"),
        ["addr cannot be empty for host"]
    );
    assert_eq!(
        errors_of("{static: {hosts: [{addr: 127.0.0.1, port: 0}]}}"),
        ["port cannot be empty for host"]
    );
}
