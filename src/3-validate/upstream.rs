//! Upstream → `model::Upstream`; UpstreamGroup checks (its destinations are
//! resolved where a route uses it).

use serde_saphyr::Spanned;

use super::{Ctx, Index};
use crate::manifest::raw;
use crate::model::*;

pub(super) fn upstream(
    cx: &mut Ctx<'_>,
    key: Key,
    spec: &raw::UpstreamSpec,
    index: &Index<'_>,
) -> Option<Upstream> {
    let Some(st) = &spec.static_ else {
        cx.error(
            cx.doc_pos.clone(),
            "upstream has no `static` spec; kube, aws and other upstream types are not implemented by edgeplane yet",
        );
        return None;
    };
    if st.hosts.is_empty() {
        // Gloo's static plugin (`projects/gloo/pkg/plugins/static/plugin.go`, `Resolve`).
        cx.error(
            cx.doc_pos.clone(),
            "must provide at least 1 host in static spec",
        );
    }
    // Gloo: TLS when `useTls` says so, else when any host is on port 443.
    let use_tls = st
        .use_tls
        .unwrap_or_else(|| st.hosts.iter().any(|h| h.value.port == 443));
    let auto_sni = st.auto_sni_rewrite.unwrap_or(true);
    // An `sslConfig` means TLS whatever `useTls` says (Gloo's static plugin
    // keeps the transport socket it finds and sets per-host SNI on it).
    let tls_somehow = use_tls || spec.ssl_config.is_some();
    let mut hosts = Vec::new();
    for h in &st.hosts {
        let pos = cx.at(h);
        // Gloo's static plugin (`projects/gloo/pkg/plugins/static/plugin.go`,
        // `ProcessUpstream`) for an empty addr and a zero port.
        if h.value.addr.is_empty() {
            cx.error(pos.clone(), "addr cannot be empty for host");
        }
        if h.value.port == 0 {
            cx.error(pos.clone(), "port cannot be empty for host");
        } else if h.value.port > 65535 {
            cx.error(
                pos.clone(),
                format!("host port {} is not a valid port (1-65535)", h.value.port),
            );
        }
        let weight = h.value.load_balancing_weight.as_ref().and_then(|w| {
            if w.value == 0 {
                let p = cx.at(w);
                cx.error(
                    p,
                    "host loadBalancingWeight must be at least 1 (leave it out for the default weight)",
                );
                None
            } else {
                Some(w.value)
            }
        });
        let mut host = HostPort {
            addr: h.value.addr.clone(),
            port: h.value.port,
            weight,
            sni: None,
        };
        let sni_addr = h.value.sni_addr.as_ref().filter(|s| !s.value.is_empty());
        // Gloo's sniAddr (`projects/gloo/pkg/plugins/static/plugin.go`):
        // the host's own `sniAddr`, else its addr (IP or name) unless
        // `autoSniRewrite: false`; with or without TLS.
        host.sni = match sni_addr {
            Some(s) => Some(s.value.clone()),
            None if auto_sni && !host.addr.is_empty() => Some(host.addr.clone()),
            None => None,
        };
        if tls_somehow {
            if let Some(s) = sni_addr.filter(|s| s.value.len() > MAX_SNI_BYTES) {
                let p = cx.at(s);
                cx.error(
                    p,
                    format!(
                        "sniAddr is longer than {MAX_SNI_BYTES} bytes, the most TLS SNI allows"
                    ),
                );
            } else if !host.is_ip() && host.addr.len() > MAX_SNI_BYTES {
                // The addr may become the SNI (the cluster's, or its own).
                cx.error(
                    pos,
                    format!(
                        "host addr is longer than {MAX_SNI_BYTES} bytes, the most TLS SNI allows"
                    ),
                );
            }
        } else if let Some(s) = sni_addr {
            let p = cx.at(s);
            cx.warn(
                p,
                "sniAddr has no effect: this upstream does not use TLS (set `useTls: true` or use port 443)",
            );
        }
        hosts.push(host);
    }
    let tls = use_tls.then(|| UpstreamTls {
        // Gloo: the first hostname (not IP) is the cluster's SNI.
        sni: hosts
            .iter()
            .find(|h| !h.is_ip() && !h.addr.is_empty())
            .map(|h| h.addr.clone()),
    });
    let connection = spec
        .connection_config
        .as_ref()
        .map(|c| connection(cx, c))
        .unwrap_or_default();
    let circuit_breakers = spec.circuit_breakers.as_ref().map(|c| CircuitBreakers {
        max_connections: c.max_connections,
        max_pending_requests: c.max_pending_requests,
        max_requests: c.max_requests,
        max_retries: c.max_retries,
        track_remaining: c.track_remaining.unwrap_or(false),
    });
    let health_checks = spec
        .health_checks
        .iter()
        .enumerate()
        .filter_map(|(i, hc)| health_check(cx, i, hc))
        .collect();
    // Envoy (1.40) rejects several health checks on a cluster unless each
    // has a name, and Gloo's HealthCheck has no name to give them.
    for hc in spec.health_checks.iter().skip(1) {
        let pos = cx.at(hc);
        cx.error(
            pos,
            "edgeplane supports one health check per upstream: Envoy requires every one of several health checks to have a name, and Gloo's HealthCheck has none",
        );
    }
    let load_balancer = spec
        .load_balancer_config
        .as_ref()
        .and_then(|lb| load_balancer(cx, lb));
    let outlier_detection = spec
        .outlier_detection
        .as_ref()
        .and_then(|od| outlier_detection(cx, od));
    let ssl = spec
        .ssl_config
        .as_ref()
        .and_then(|c| upstream_ssl(cx, "sslConfig", c, index));
    let tunnel = tunnel(cx, spec, index);
    Some(Upstream {
        key,
        hosts,
        tls,
        use_http2: spec.use_http2.unwrap_or(false),
        connection,
        circuit_breakers,
        health_checks,
        load_balancer,
        outlier_detection,
        ssl,
        tunnel,
    })
}

/// Gloo's errors from `ResolveCommonSslConfig` (`projects/gloo/pkg/utils/
/// ssl.go`), in its words.
const CERT_AND_KEY: &str = "both or none of cert chain and private key must be provided";
const ROOT_CA_FOR_SAN: &str = "a root_ca must be provided if verify_subject_alt_name is not empty";

/// An `UpstreamSslConfig` (`sslConfig` or `httpConnectSslConfig`, named by
/// `field`) → `UpstreamSsl`, as Gloo's `ResolveUpstreamSslConfig`: empty
/// strings count as unset, a client certificate needs both files and is
/// dropped under `oneWayTls`, SAN verification needs a root CA.
///
/// Files are passed to Envoy by path, as for a VirtualService's `sslFiles`.
/// (Gloo at HEAD runs its key-pair check on the `sslFiles` strings
/// themselves, which are paths, not PEM; edgeplane leaves reading them to
/// Envoy.)
///
/// `secretRef` names a TLS Secret whose certificate (unless `oneWayTls`)
/// and `rootCa` Envoy gets over SDS, so rotating it never replaces the
/// cluster. Gloo inlines the Secret's PEM into the cluster instead; the
/// TLS Envoy speaks is the same. A Secret holding only a `rootCa` is
/// enough here (Gloo's `ResolveCommonSslConfig` with `mustHaveCert`
/// false). `sds` (an external SDS server) is refused.
fn upstream_ssl(
    cx: &mut Ctx<'_>,
    field: &str,
    sc: &Spanned<raw::UpstreamSslConfig>,
    index: &Index<'_>,
) -> Option<UpstreamSsl> {
    let at = cx.at(sc);
    let c = &sc.value;
    let mut ok = true;
    if let Some(v) = &c.sds {
        let p = cx.at(v);
        cx.error(
            p,
            format!("{field}.sds (an external SDS server) is not implemented by edgeplane yet; name a TLS Secret with {field}.secretRef, or give the files with {field}.sslFiles"),
        );
        ok = false;
    }
    if let (Some(_), Some(r)) = (&c.ssl_files, &c.secret_ref) {
        // Gloo's `sslSecrets` is a oneof.
        let p = cx.at(r);
        cx.error(
            p,
            format!("{field} sets both secretRef and sslFiles; Gloo takes one source of certificates: keep one"),
        );
        ok = false;
    }
    let mut secret_has_ca = false;
    let secret = match &c.secret_ref {
        None => None,
        Some(r) => match super::gateway::secret_ref(cx, field, r, index, false) {
            Some(key) => {
                secret_has_ca = index.secrets.get(&key).is_some_and(|i| i.has_root_ca);
                Some(UpstreamSecret {
                    key,
                    client_cert: !c.one_way_tls.unwrap_or(false),
                })
            }
            None => {
                ok = false;
                None
            }
        },
    };
    let set = |p: &Option<Spanned<String>>| {
        p.as_ref()
            .map(|s| s.value.clone())
            .filter(|s| !s.trim().is_empty())
    };
    let (mut client_cert, mut root_ca) = (None, None);
    if let Some(f) = &c.ssl_files {
        if let Some(o) = &f.value.ocsp_staple {
            let p = cx.at(o);
            cx.error(
                p,
                format!("{field}.sslFiles.ocspStaple is not implemented by edgeplane yet"),
            );
            ok = false;
        }
        match (set(&f.value.tls_cert), set(&f.value.tls_key)) {
            (Some(cert), Some(key)) => client_cert = Some((cert, key)),
            (None, None) => {}
            _ => {
                let p = cx.at(f);
                cx.error(p, format!("{field}.sslFiles: {CERT_AND_KEY}"));
                ok = false;
            }
        }
        root_ca = set(&f.value.root_ca);
    }
    let mut sans = Vec::new();
    for s in &c.verify_subject_alt_name {
        if s.value.is_empty() {
            let p = cx.at(s);
            cx.error(p, format!("{field}.verifySubjectAltName has an empty name"));
            ok = false;
        } else {
            sans.push(s.value.clone());
        }
    }
    if !sans.is_empty() && root_ca.is_none() && !secret_has_ca {
        cx.error(at.clone(), format!("{field}: {ROOT_CA_FOR_SAN}"));
        ok = false;
    }
    let sni = c.sni.as_ref().map(|s| s.value.clone()).unwrap_or_default();
    if sni.len() > MAX_SNI_BYTES
        && let Some(s) = &c.sni
    {
        let p = cx.at(s);
        cx.error(
            p,
            format!("{field}.sni is longer than {MAX_SNI_BYTES} bytes, the most TLS SNI allows"),
        );
        ok = false;
    }
    let mut alpn_protocols = Vec::new();
    for a in &c.alpn_protocols {
        if a.value.is_empty() {
            let p = cx.at(a);
            cx.error(p, format!("{field}.alpnProtocols has an empty protocol"));
            ok = false;
        } else {
            alpn_protocols.push(a.value.clone());
        }
    }
    let params = match &c.parameters {
        None => None,
        Some(p) => Some(super::gateway::ssl_parameters(cx, field, &at, p)?),
    };
    if c.one_way_tls.unwrap_or(false) {
        // Gloo: one-way TLS keeps verifying the server, presents no
        // client certificate.
        client_cert = None;
    }
    ok.then(|| UpstreamSsl {
        sni,
        secret,
        client_cert,
        root_ca,
        verify_subject_alt_names: sans,
        alpn_protocols,
        allow_renegotiation: c.allow_renegotiation.unwrap_or(false),
        params,
    })
}

/// `httpProxyHostname` with its `httpConnectHeaders` and
/// `httpConnectSslConfig`. Empty or unset: no tunnel (Gloo's tunneling
/// plugin skips the upstream), and the other two then do nothing.
fn tunnel(cx: &mut Ctx<'_>, spec: &raw::UpstreamSpec, index: &Index<'_>) -> Option<HttpTunnel> {
    let hostname = spec
        .http_proxy_hostname
        .as_ref()
        .map(|h| h.value.clone())
        .filter(|h| !h.is_empty());
    let Some(hostname) = hostname else {
        // Still checked: a refused field is refused wherever it is.
        if let Some(c) = &spec.http_connect_ssl_config {
            let _ = upstream_ssl(cx, "httpConnectSslConfig", c, index);
        }
        let unused = [
            (
                "httpConnectSslConfig",
                spec.http_connect_ssl_config.as_ref().map(|s| cx.at(s)),
            ),
            (
                "httpConnectHeaders",
                spec.http_connect_headers.first().map(|h| cx.at(h)),
            ),
        ];
        for (name, pos) in unused {
            if let Some(pos) = pos {
                cx.warn(
                    pos,
                    format!("{name} has no effect without httpProxyHostname"),
                );
            }
        }
        return None;
    };
    let mut headers = Vec::new();
    for h in &spec.http_connect_headers {
        if h.value.key.is_empty() {
            let p = cx.at(h);
            cx.error(p, "httpConnectHeaders has a header with an empty key");
        } else {
            headers.push((h.value.key.clone(), h.value.value.clone()));
        }
    }
    let proxy_ssl = match &spec.http_connect_ssl_config {
        None => None,
        Some(c) => Some(upstream_ssl(cx, "httpConnectSslConfig", c, index)?),
    };
    Some(HttpTunnel {
        hostname,
        headers,
        proxy_ssl,
    })
}

/// TLS server names are at most 255 bytes (Envoy's limit on `sni`).
const MAX_SNI_BYTES: usize = 255;

/// Envoy's ring hash size limit (8M entries).
const MAX_RING_SIZE: u64 = 8_388_608;
/// Envoy's default minimum ring size.
const DEFAULT_MIN_RING_SIZE: u64 = 1024;

/// Gloo's text for a required field that is missing.
fn nil_field(field: &str) -> String {
    format!("The field {field} cannot be nil")
}

/// A duration that must be greater than zero (Envoy rejects 0s there).
fn positive_duration(
    cx: &mut Ctx<'_>,
    field: &str,
    s: &Option<Spanned<String>>,
) -> Option<Duration> {
    let d = cx.duration(s)?;
    if d.seconds == 0 && d.nanos == 0 {
        let pos = s
            .as_ref()
            .map(|s| cx.at(s))
            .unwrap_or_else(|| cx.doc_pos.clone());
        cx.error(pos, format!("{field} must be greater than 0s"));
        return None;
    }
    Some(d)
}

/// A duration Envoy takes in whole seconds (TCP keepalive socket options).
fn whole_seconds(cx: &mut Ctx<'_>, field: &str, s: &Option<Spanned<String>>) -> Option<u32> {
    let d = cx.duration(s)?;
    let secs = u32::try_from(d.seconds).ok().filter(|s| *s >= 1);
    match secs {
        Some(secs) if d.nanos == 0 => Some(secs),
        _ => {
            let pos = s
                .as_ref()
                .map(|s| cx.at(s))
                .unwrap_or_else(|| cx.doc_pos.clone());
            cx.error(
                pos,
                format!("{field} must be a whole number of seconds, at least 1s (the socket option takes seconds)"),
            );
            None
        }
    }
}

fn connection(cx: &mut Ctx<'_>, c: &raw::ConnectionConfig) -> ConnectionSettings {
    let tcp_keepalive = c.tcp_keepalive.as_ref().map(|k| TcpKeepalive {
        // Gloo's plain uint32: 0 means unset.
        probes: k.keepalive_probes.filter(|p| *p > 0),
        time_secs: whole_seconds(cx, "tcpKeepalive.keepaliveTime", &k.keepalive_time),
        interval_secs: whole_seconds(cx, "tcpKeepalive.keepaliveInterval", &k.keepalive_interval),
    });
    let common_http = c.common_http_protocol_options.as_ref().map(|o| {
        let headers_with_underscores = o.headers_with_underscores_action.as_ref().and_then(|v| {
            const VALUES: [(HeadersWithUnderscores, &str); 3] = [
                (HeadersWithUnderscores::Allow, "ALLOW"),
                (HeadersWithUnderscores::RejectRequest, "REJECT_REQUEST"),
                (HeadersWithUnderscores::DropHeader, "DROP_HEADER"),
            ];
            let (found, shown) = match &v.value {
                raw::EnumValue::Number(n) => (
                    usize::try_from(*n).ok().and_then(|i| VALUES.get(i)),
                    n.to_string(),
                ),
                raw::EnumValue::Name(s) => (VALUES.iter().find(|(_, n)| n == s), s.clone()),
            };
            if found.is_none() {
                // Gloo's upstreamconn plugin
                // (`projects/gloo/pkg/plugins/upstreamconn/plugin.go`).
                let p = cx.at(v);
                cx.error(
                    p,
                    format!(
                        "connectionConfig.commonHttpProtocolOptions.headersWithUnderscoresAction: invalid HeadersWithUnderscoresAction {shown} in CommonHttpProtocolOptions; expected one of ALLOW, REJECT_REQUEST, DROP_HEADER"
                    ),
                );
            }
            found.map(|(h, _)| *h)
        });
        CommonHttpOptions {
            idle_timeout: cx.duration(&o.idle_timeout),
            // Gloo's plain uint32: 0 means unset (Envoy needs at least 1).
            max_headers_count: o.max_headers_count.filter(|n| *n > 0),
            max_stream_duration: cx.duration(&o.max_stream_duration),
            headers_with_underscores,
        }
    });
    ConnectionSettings {
        max_requests_per_connection: c.max_requests_per_connection.filter(|n| *n > 0),
        connect_timeout: positive_duration(cx, "connectTimeout", &c.connect_timeout),
        tcp_keepalive,
        per_connection_buffer_limit_bytes: c.per_connection_buffer_limit_bytes,
        common_http,
    }
}

/// One `healthChecks` entry. Gloo requires both thresholds and a checker;
/// Envoy also requires the timeout and interval.
fn health_check(cx: &mut Ctx<'_>, i: usize, s: &Spanned<raw::HealthCheck>) -> Option<HealthCheck> {
    let pos = cx.at(s);
    let hc = &s.value;
    let field = |name: &str| format!("HealthCheck[{i}].{name}");
    let mut ok = true;
    if hc.healthy_threshold.is_none() {
        cx.error(pos.clone(), nil_field(&field("HealthyThreshold")));
        ok = false;
    }
    if hc.unhealthy_threshold.is_none() {
        cx.error(pos.clone(), nil_field(&field("UnhealthyThreshold")));
        ok = false;
    }
    if hc.timeout.is_none() {
        cx.error(pos.clone(), nil_field(&field("Timeout")));
        ok = false;
    }
    if hc.interval.is_none() {
        cx.error(pos.clone(), nil_field(&field("Interval")));
        ok = false;
    }
    let timeout = positive_duration(cx, &field("Timeout"), &hc.timeout);
    let interval = positive_duration(cx, &field("Interval"), &hc.interval);
    let no_traffic_interval =
        positive_duration(cx, &field("NoTrafficInterval"), &hc.no_traffic_interval);
    let checker = match (&hc.http_health_check, &hc.tcp_health_check) {
        (Some(h), None) => {
            let path = h.value.path.clone().unwrap_or_default();
            if path.is_empty() {
                let p = cx.at(h);
                cx.error(
                    p,
                    format!("{}: path must not be empty", field("HttpHealthCheck")),
                );
                None
            } else {
                Some(HealthChecker::Http {
                    path,
                    host: h.value.host.clone().filter(|h| !h.is_empty()),
                })
            }
        }
        (None, Some(_)) => Some(HealthChecker::Tcp),
        (None, None) => {
            cx.error(pos.clone(), nil_field(&field("HealthChecker")));
            None
        }
        (Some(_), Some(_)) => {
            cx.error(
                pos.clone(),
                format!(
                    "{} sets more than one health checker; use exactly one of httpHealthCheck, tcpHealthCheck",
                    field("HealthChecker")
                ),
            );
            None
        }
    };
    if !ok {
        return None;
    }
    Some(HealthCheck {
        timeout: timeout?,
        interval: interval?,
        healthy_threshold: hc.healthy_threshold?,
        unhealthy_threshold: hc.unhealthy_threshold?,
        no_traffic_interval,
        checker: checker?,
    })
}

fn load_balancer(cx: &mut Ctx<'_>, s: &Spanned<raw::LoadBalancerConfig>) -> Option<LoadBalancer> {
    let pos = cx.at(s);
    let lb = &s.value;
    let healthy_panic_threshold = lb.healthy_panic_threshold.as_ref().and_then(|t| {
        if (0.0..=100.0).contains(&t.value) {
            Some(t.value)
        } else {
            let p = cx.at(t);
            cx.error(
                p,
                format!(
                    "healthyPanicThreshold {} is not a percentage (0-100)",
                    t.value
                ),
            );
            None
        }
    });
    let update_merge_window = cx.duration(&lb.update_merge_window);
    let mut policies = Vec::new();
    if lb.round_robin.is_some() {
        policies.push(LbPolicy::RoundRobin);
    }
    if let Some(lr) = &lb.least_request {
        let choice_count = match lr.value.choice_count {
            // Gloo's plain uint32: 0 means unset (Envoy's default, 2).
            None | Some(0) => None,
            Some(1) => {
                let p = cx.at(lr);
                cx.error(p, "leastRequest.choiceCount must be at least 2");
                None
            }
            Some(n) => Some(n),
        };
        policies.push(LbPolicy::LeastRequest { choice_count });
    }
    if lb.random.is_some() {
        policies.push(LbPolicy::Random);
    }
    if let Some(rh) = &lb.ring_hash {
        let p = cx.at(rh);
        let cfg = rh.value.ring_hash_config.as_ref();
        let mut size = |name: &str, v: Option<&raw::U64Value>| -> Option<u64> {
            let n = match v? {
                raw::U64Value::Number(n) => Some(*n),
                raw::U64Value::Text(t) => t.trim().parse::<u64>().ok(),
            };
            match n {
                Some(n) if n <= MAX_RING_SIZE => Some(n),
                _ => {
                    cx.error(
                        p.clone(),
                        format!("ringHashConfig.{name} must be a number from 0 to {MAX_RING_SIZE}"),
                    );
                    None
                }
            }
        };
        let minimum_ring_size = size(
            "minimumRingSize",
            cfg.and_then(|c| c.minimum_ring_size.as_ref()),
        );
        let maximum_ring_size = size(
            "maximumRingSize",
            cfg.and_then(|c| c.maximum_ring_size.as_ref()),
        );
        let (lo, hi) = (
            minimum_ring_size.unwrap_or(DEFAULT_MIN_RING_SIZE),
            maximum_ring_size.unwrap_or(MAX_RING_SIZE),
        );
        if lo > hi {
            cx.error(
                p.clone(),
                format!(
                    "ringHashConfig: minimumRingSize ({lo}) is greater than maximumRingSize ({hi})"
                ),
            );
        }
        policies.push(LbPolicy::RingHash {
            minimum_ring_size,
            maximum_ring_size,
        });
    }
    if lb.maglev.is_some() {
        policies.push(LbPolicy::Maglev);
    }
    if policies.len() > 1 {
        cx.error(
            pos,
            "loadBalancerConfig sets more than one policy; use at most one of roundRobin, leastRequest, random, ringHash, maglev",
        );
        return None;
    }
    Some(LoadBalancer {
        healthy_panic_threshold,
        update_merge_window,
        policy: policies.pop(),
    })
}

fn outlier_detection(
    cx: &mut Ctx<'_>,
    s: &Spanned<raw::OutlierDetection>,
) -> Option<OutlierDetection> {
    let pos = cx.at(s);
    let od = &s.value;
    if od.interval.is_none() {
        // Gloo's field name, as `createOutlierDetectionConfig`
        // (`projects/gloo/pkg/translator/clusters.go`) spells it.
        cx.error(
            pos.clone(),
            nil_field("OutlierDetection.HealthChecker.Interval"),
        );
    }
    let interval = positive_duration(cx, "OutlierDetection.Interval", &od.interval);
    let base_ejection_time = positive_duration(
        cx,
        "OutlierDetection.BaseEjectionTime",
        &od.base_ejection_time,
    );
    if od.max_ejection_percent.is_some_and(|p| p > 100) {
        cx.error(
            pos,
            "outlierDetection.maxEjectionPercent must be a percentage (0-100)",
        );
        return None;
    }
    Some(OutlierDetection {
        consecutive_5xx: od.consecutive_5xx,
        interval: interval?,
        base_ejection_time,
        max_ejection_percent: od.max_ejection_percent,
    })
}

pub(super) fn upstream_group(
    cx: &mut Ctx<'_>,
    key: &Key,
    spec: &raw::UpstreamGroupSpec,
    index: &Index<'_>,
) {
    let _ = weighted(cx, key, &spec.destinations, index, Dests::Group);
}

/// Whose weighted destinations `weighted` checks, which decides how a
/// missing upstream is reported.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Dests {
    /// A route's `multi` list: a warning on the route, wrapped as Gloo's
    /// `validateMultiDestination` wraps it.
    Multi,
    /// An UpstreamGroup's own report: an error, in the words of Gloo's
    /// `verifyUpstreamGroups` (`projects/gloo/pkg/translator/upstream_groups.go`).
    Group,
    /// An UpstreamGroup seen from a route that names it: missing upstreams
    /// are left to the caller (the group's own report has them).
    GroupFromRoute,
}

/// Resolves weighted destinations (`multi` or an UpstreamGroup's list).
/// In a route's `multi`, missing upstreams are warnings (Envoy answers
/// 503), as in Gloo; in an UpstreamGroup's own report they are errors, as
/// in Gloo's `verifyUpstreamGroups`. No destination, or a total weight
/// below 1, is an error. The texts are those of Gloo's
/// `projects/gloo/pkg/translator/route_config.go`
/// (`NoDestinationSpecifiedError`, `setWeightedClusters`, and for a `multi`
/// list, `validateMultiDestination`'s wrapping) and `upstream_groups.go`.
pub(super) fn weighted(
    cx: &mut Ctx<'_>,
    owner: &Key,
    dests: &[serde_saphyr::Spanned<raw::WeightedDestination>],
    index: &Index<'_>,
    mode: Dests,
) -> Option<Vec<(Key, u32)>> {
    if dests.is_empty() {
        cx.error(
            cx.doc_pos.clone(),
            "must specify at least one weighted destination for multi destination routes",
        );
        return None;
    }
    let mut out = Vec::new();
    for (i, d) in dests.iter().enumerate() {
        let pos = cx.at(d);
        let Some(up) = &d.value.destination.upstream else {
            // Gloo's `DestinationToUpstreamRef`
            // (`projects/gloo/pkg/upstreams/conversions.go`), wrapped in a
            // route's list as `validateMultiDestination` wraps it.
            let wrap = if mode == Dests::Multi {
                "invalid destination in weighted destination list: "
            } else {
                ""
            };
            cx.error(
                pos,
                format!("{wrap}no destination type specified; set upstream (kube and consul destinations are not implemented by edgeplane yet)"),
            );
            continue;
        };
        let k = ref_key(&up.value, &owner.namespace);
        if !index.upstreams.contains(&k) {
            let p = cx.at(up);
            match mode {
                Dests::Multi => {
                    let before = cx.diags.len();
                    index.missing_upstream(cx, p, &k);
                    for d in &mut cx.diags[before..] {
                        d.message = format!(
                            "invalid destination in weighted destination list: {}",
                            d.message
                        );
                    }
                }
                Dests::Group => index.missing_group_upstream(cx, p, i + 1, &k),
                Dests::GroupFromRoute => {}
            }
        }
        out.push((k, d.value.weight.unwrap_or(0)));
    }
    let total: u64 = out.iter().map(|(_, w)| u64::from(*w)).sum();
    if total < 1 {
        cx.error(
            cx.doc_pos.clone(),
            "Incorrect configuration for Weighted Destination for route - Weighted Destinations require a total weight that is greater than or equal to 1",
        );
        return None;
    }
    Some(out)
}

/// A reference's key; the namespace defaults to the referrer's.
pub(super) fn ref_key(r: &raw::ResourceRef, owner_ns: &str) -> Key {
    Key::new(
        r.namespace.clone().unwrap_or_else(|| owner_ns.to_string()),
        &r.name,
    )
}
