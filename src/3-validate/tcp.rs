//! `tcpGateway` and `hybridGateway` → the model's `TcpGateway` and
//! `MatchedGateway`s, with Gloo's rules and wording (`projects/gloo/pkg/
//! plugins/tcp/plugin.go`, `projects/gateway/pkg/translator/
//! hybrid_translator.go`, `ValidateTcpRouteDestinations` in
//! `projects/gloo/pkg/translator/route_config.go`).
//!
//! Where Gloo would translate something Envoy then rejects (two filter
//! chains with the same match NACK the whole listener), or something
//! upstream Envoy cannot express (matching on cipher suites), edgeplane
//! says so here instead, naming the field.

use std::collections::BTreeMap;

use serde_saphyr::Spanned;

use super::upstream::{Dests, ref_key, weighted};
use super::{Ctx, Index};
use crate::diag::{Diagnostic, Pos, ResourceId, Severity};
use crate::manifest::raw;
use crate::model::*;

/// A `tcpGateway` (or a hybrid gateway's matched one, whose matcher's
/// `sniDomains` are `matcher_sni`).
pub(super) fn tcp_gateway(
    cx: &mut Ctx<'_>,
    owner: &Key,
    t: &Spanned<raw::TcpGateway>,
    matcher_sni: Option<&[String]>,
    index: &Index<'_>,
) -> TcpGateway {
    let proxy = t
        .value
        .options
        .as_ref()
        .map(|o| tcp_options(cx, o))
        .unwrap_or_default();
    let mut hosts = Vec::new();
    let mut conflicting = Vec::new();
    for h in &t.value.tcp_hosts {
        let Some(host) = tcp_host(cx, owner, h, index) else {
            continue;
        };
        // Gloo's validateTcpHosts: with matcher sniDomains, a host may only
        // name domains among them.
        if let Some(allowed) = matcher_sni.filter(|a| !a.is_empty()) {
            for d in host.tls.sni_domains() {
                if !allowed.contains(d) {
                    conflicting.push(format!("{}:{d}", host.name));
                }
            }
        }
        hosts.push(host);
    }
    if !conflicting.is_empty() {
        let pos = cx.at(t);
        cx.error(
            pos,
            format!(
                "gateway has conflicting sni domains [{}]",
                conflicting.join(" ")
            ),
        );
    }
    TcpGateway { hosts, proxy }
}

fn tcp_options(cx: &mut Ctx<'_>, o: &raw::TcpListenerOptions) -> TcpProxySettings {
    for (field, pos) in [
        (
            "connectionLimit",
            o.connection_limit.as_ref().map(|v| cx.at(v)),
        ),
        (
            "localRatelimit",
            o.local_ratelimit.as_ref().map(|v| cx.at(v)),
        ),
    ] {
        if let Some(pos) = pos {
            cx.error(
                pos,
                format!("tcpGateway.options.{field} is not implemented by edgeplane yet"),
            );
        }
    }
    let Some(s) = &o.tcp_proxy_settings else {
        return TcpProxySettings::default();
    };
    let at = cx.at(s);
    let v = &s.value;
    if v.max_connect_attempts == Some(0) {
        // Envoy's `max_connect_attempts` is at least 1 (it would NACK).
        cx.error(
            at.clone(),
            "tcpProxySettings.maxConnectAttempts must be at least 1",
        );
    }
    let access_log_flush_interval = cx.duration(&v.access_log_flush_interval);
    if let Some(d) = access_log_flush_interval
        && d.seconds == 0
        && d.nanos < 1_000_000
    {
        let pos = v
            .access_log_flush_interval
            .as_ref()
            .map_or(at, |f| cx.at(f));
        cx.error(pos, "access log flush interval must have minimum of 1ms");
    }
    let tunneling = v.tunneling_config.as_ref().map(|t| {
        if t.value.hostname.is_empty() {
            let pos = cx.at(t);
            cx.error(
                pos,
                "tcpProxySettings.tunnelingConfig.hostname is empty: Envoy needs the host to tunnel to",
            );
        }
        Tunneling {
            hostname: t.value.hostname.clone(),
            headers_to_add: t
                .value
                .headers_to_add
                .iter()
                .map(|h| {
                    let (k, v) = h
                        .header
                        .as_ref()
                        .map(|h| (h.key.clone(), h.value.clone()))
                        .unwrap_or_default();
                    (k, v, h.append)
                })
                .collect(),
        }
    });
    if let Some(t) = &tunneling
        && t.headers_to_add.iter().any(|(k, _, _)| k.is_empty())
        && let Some(s) = &v.tunneling_config
    {
        let pos = cx.at(s);
        cx.error(
            pos,
            "tcpProxySettings.tunnelingConfig.headersToAdd has a header without a key",
        );
    }
    TcpProxySettings {
        max_connect_attempts: v.max_connect_attempts,
        idle_timeout: cx.duration(&v.idle_timeout),
        access_log_flush_interval,
        tunneling,
    }
}

fn tcp_host(
    cx: &mut Ctx<'_>,
    owner: &Key,
    h: &Spanned<raw::TcpHost>,
    index: &Index<'_>,
) -> Option<TcpHost> {
    let at = cx.at(h);
    let name = h.value.name.clone();
    let tls = match &h.value.ssl_config {
        None => TcpHostTls::None,
        Some(sc) => {
            let c = &sc.value;
            let has_cert = c.ssl_files.is_some() || c.secret_ref.is_some() || c.sds.is_some();
            if !has_cert && !c.sni_domains.is_empty() {
                // Gloo's computeTcpFilterChain: SNI domains and no secret
                // mean passthrough, matched by SNI, no TLS here.
                TcpHostTls::Passthrough(sni_domains(cx, &c.sni_domains))
            } else {
                let sc = Spanned {
                    value: c.to_ssl_config(),
                    referenced: sc.referenced,
                    defined: sc.defined,
                };
                TcpHostTls::Terminate(super::gateway::ssl_config(cx, &sc, index)?)
            }
        }
    };
    let Some(d) = &h.value.destination else {
        cx.error(
            at,
            format!("no destination type was specified for tcp host {name}"),
        );
        return None;
    };
    let dpos = cx.at(d);
    let a = &d.value;
    let set = super::count_set(&[
        a.single.is_some(),
        a.multi.is_some(),
        a.upstream_group.is_some(),
        a.forward_sni_cluster_name.is_some(),
    ]);
    if set == 0 {
        // Gloo's `ValidateTcpRouteDestinations`
        // (`projects/gloo/pkg/translator/route_config.go`).
        cx.error(
            dpos,
            format!(
                "tcp host {name}: must specify either 'singleDestination', 'multipleDestinations', 'upstreamGroup' or 'forwardSniClusterName' for action; the fields are single, multi, upstreamGroup and forwardSniClusterName"
            ),
        );
        return None;
    }
    if set > 1 {
        cx.error(
            dpos,
            format!(
                "tcp host {name}: destination must set exactly one of single, multi, upstreamGroup and forwardSniClusterName"
            ),
        );
        return None;
    }
    let destination = if let Some(single) = &a.single {
        let Some(up) = &single.upstream else {
            // Gloo's `DestinationToUpstreamRef` (`projects/gloo/pkg/upstreams/conversions.go`).
            cx.error(
                dpos,
                format!(
                    "tcp host {name}: no destination type specified; set destination.single.upstream (kube and consul destinations are not implemented by edgeplane yet)"
                ),
            );
            return None;
        };
        let k = ref_key(&up.value, &owner.namespace);
        let pos = cx.at(up);
        require_upstream(cx, index, pos, &k);
        TcpDestination::Upstream(k)
    } else if let Some(multi) = &a.multi {
        TcpDestination::Weighted(tcp_weighted(
            cx,
            owner,
            &multi.destinations,
            index,
            Dests::Multi,
        )?)
    } else if let Some(group) = &a.upstream_group {
        let k = ref_key(&group.value, &owner.namespace);
        let Some((doc, spec)) = index.upstream_groups.get(&k) else {
            let p = cx.at(group);
            cx.error(p, format!("*v1.UpstreamGroup {{ {k} }} not found"));
            return None;
        };
        let mut gcx = Ctx::new(doc);
        let dests = tcp_weighted(&mut gcx, &k, &spec.destinations, index, Dests::Group);
        if !gcx.ok() {
            cx.error(dpos, format!("upstream group {k} is invalid"));
        }
        cx.diags.extend(gcx.diags);
        TcpDestination::Weighted(dests?)
    } else {
        TcpDestination::ForwardSni
    };
    Some(TcpHost {
        name,
        destination,
        tls,
    })
}

/// A TCP connection has no 503 to fall back on: where Gloo drops the
/// host's filter chain with a warning, edgeplane rejects the Gateway (its
/// last accepted version stays), so the Listener never depends on which
/// Upstreams exist.
fn require_upstream(cx: &mut Ctx<'_>, index: &Index<'_>, pos: Pos, k: &Key) {
    if index.upstreams.contains(k) {
        return;
    }
    let mut d = Diagnostic::error(
        pos,
        Some(cx.id.clone()),
        format!("*v1.Upstream {{ {k} }} not found"),
    );
    if let Some(near) = index.suggest.closest(k, &index.upstreams) {
        d = d.with_hint(format!("did you mean `{near}`?"));
    }
    cx.diags.push(d);
}

/// `multi` / an UpstreamGroup's destinations for `tcp_proxy`: every
/// upstream must exist (see `require_upstream`) and every weight be at
/// least 1 (Envoy's rule for TCP weighted clusters).
fn tcp_weighted(
    cx: &mut Ctx<'_>,
    owner: &Key,
    dests: &[Spanned<raw::WeightedDestination>],
    index: &Index<'_>,
    mode: Dests,
) -> Option<Vec<(Key, u32)>> {
    let before = cx.diags.len();
    let out = weighted(cx, owner, dests, index, mode);
    for d in &mut cx.diags[before..] {
        if d.severity == Severity::Warning && d.message.ends_with("} not found") {
            d.severity = Severity::Error;
        }
    }
    for d in dests {
        if d.value.weight.unwrap_or(0) == 0 {
            let pos = cx.at(d);
            cx.error(
                pos,
                "a TCP destination's weight must be at least 1 (Envoy rejects a zero weight)",
            );
        }
    }
    out
}

fn sni_domains(cx: &mut Ctx<'_>, list: &[Spanned<String>]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for d in list {
        let pos = cx.at(d);
        if d.value.is_empty() {
            cx.error(pos, "sslConfig.sniDomains has an empty domain");
        } else if out.contains(&d.value) {
            cx.error(
                pos,
                format!("sslConfig.sniDomains lists `{}` more than once", d.value),
            );
        } else {
            out.push(d.value.clone());
        }
    }
    out
}

/// A `hybridGateway`'s matched gateways, in order. An HTTP one is validated
/// as an HTTP Gateway of its own (`spec` with only that `httpGateway`), then
/// given the hybrid gateway's listener options and its matcher.
pub(super) fn hybrid_gateway(
    cx: &mut Ctx<'_>,
    key: &Key,
    spec: &raw::GatewaySpec,
    h: &Spanned<raw::HybridGateway>,
    options: &ListenerOptions,
    index: &Index<'_>,
) -> Vec<MatchedGateway> {
    let v = &h.value;
    for (field, pos) in [
        (
            "delegatedHttpGateways",
            v.delegated_http_gateways.as_ref().map(|d| cx.at(d)),
        ),
        (
            "delegatedTcpGateways",
            v.delegated_tcp_gateways.as_ref().map(|d| cx.at(d)),
        ),
    ] {
        if let Some(pos) = pos {
            cx.error(
                pos,
                format!(
                    "hybridGateway.{field} is not implemented by edgeplane yet (MatchableHttpGateway and MatchableTcpGateway are not read); list the gateways inline in matchedGateways"
                ),
            );
        }
    }
    if v.matched_gateways.is_empty() {
        if v.delegated_http_gateways.is_none() && v.delegated_tcp_gateways.is_none() {
            let pos = cx.at(h);
            cx.error(
                pos,
                "hybrid gateway does not have any populated matched gateways",
            );
        }
        return Vec::new();
    }
    let mut out = Vec::new();
    for m in &v.matched_gateways {
        let mpos = cx.at(m);
        let matcher = m
            .value
            .matcher
            .as_ref()
            .map(|mt| matcher(cx, mt))
            .unwrap_or_default();
        match (&m.value.http_gateway, &m.value.tcp_gateway) {
            (Some(http), None) => {
                let mut inner_spec = spec.clone();
                inner_spec.http_gateway = Some(http.clone());
                inner_spec.tcp_gateway = None;
                inner_spec.hybrid_gateway = None;
                // Listener-level settings are the hybrid gateway's, read
                // once already.
                inner_spec.options = None;
                inner_spec.use_proxy_proto = None;
                inner_spec.ssl = None;
                inner_spec.bind_port.value = 1;
                if let Some(mut g) = super::gateway::gateway(cx, key.clone(), &inner_spec, index) {
                    g.bind_port = spec.bind_port.value;
                    g.ssl = matcher.ssl_sni_domains.is_some();
                    g.options = options.clone();
                    g.matcher = Some(matcher);
                    out.push(MatchedGateway::Http(Box::new(g)));
                }
            }
            (None, Some(tcp)) => {
                let sni = matcher.ssl_sni_domains.clone();
                let tcp = tcp_gateway(cx, key, tcp, sni.as_deref(), index);
                out.push(MatchedGateway::Tcp { matcher, tcp });
            }
            _ => cx.error(
                mpos,
                "a matched gateway must set exactly one of httpGateway and tcpGateway",
            ),
        }
    }
    out
}

fn matcher(cx: &mut Ctx<'_>, m: &Spanned<raw::GatewayMatcher>) -> GatewayMatcher {
    let v = &m.value;
    if let Some(p) = v.passthrough_cipher_suites.first() {
        let pos = cx.at(p);
        cx.error(
            pos,
            "matcher.passthroughCipherSuites is not implemented by edgeplane: upstream Envoy cannot match filter chains on cipher suites",
        );
    }
    let mut ranges = Vec::new();
    for r in &v.source_prefix_ranges {
        let pos = cx.at(r);
        let ip = r.value.address_prefix.parse::<std::net::IpAddr>();
        let max = match ip {
            Ok(std::net::IpAddr::V4(_)) => 32,
            Ok(std::net::IpAddr::V6(_)) => 128,
            Err(_) => {
                cx.error(
                    pos,
                    format!(
                        "matcher.sourcePrefixRanges: invalid CIDR address prefix `{}`",
                        r.value.address_prefix
                    ),
                );
                continue;
            }
        };
        if r.value.prefix_len.is_some_and(|l| l > max) {
            cx.error(
                pos,
                format!(
                    "matcher.sourcePrefixRanges: prefixLen {} is longer than the address ({max} bits)",
                    r.value.prefix_len.unwrap_or(0)
                ),
            );
            continue;
        }
        ranges.push(CidrRange {
            address_prefix: r.value.address_prefix.clone(),
            prefix_len: r.value.prefix_len,
        });
    }
    let ssl_sni_domains = v.ssl_config.as_ref().map(|sc| {
        let c = &sc.value;
        let others: [(&str, bool); 10] = [
            ("sslFiles", c.ssl_files.is_some()),
            ("secretRef", c.secret_ref.is_some()),
            ("sds", c.sds.is_some()),
            ("alpnProtocols", c.alpn_protocols.is_some()),
            ("oneWayTls", c.one_way_tls.is_some()),
            ("parameters", c.parameters.is_some()),
            ("verifySubjectAltName", c.verify_subject_alt_name.is_some()),
            (
                "disableTlsSessionResumption",
                c.disable_tls_session_resumption.is_some(),
            ),
            (
                "transportSocketConnectTimeout",
                c.transport_socket_connect_timeout.is_some(),
            ),
            ("ocspStaplePolicy", c.ocsp_staple_policy.is_some()),
        ];
        for (field, set) in others {
            if set {
                let pos = cx.at(sc);
                cx.error(
                    pos,
                    format!(
                        "matcher.sslConfig.{field} is not implemented by edgeplane yet: a matcher's sslConfig may only give sniDomains (certificates go on the VirtualServices or TCP hosts)"
                    ),
                );
            }
        }
        sni_domains(cx, &c.sni_domains)
    });
    GatewayMatcher {
        source_prefix_ranges: ranges,
        ssl_sni_domains,
    }
}

/// One filter chain's match as the translation builds it, for the
/// duplicate check.
struct ChainMatch {
    what: String,
    server_names: Vec<String>,
    source_ranges: Vec<String>,
}

/// The filter chains of a TCP or hybrid gateway's listener, in order (an
/// HTTP gateway's chains are checked by `check_sni_conflicts`).
fn chain_matches(gw: &Gateway, model: &Model) -> Vec<ChainMatch> {
    let ranges = |m: &GatewayMatcher| -> Vec<String> {
        m.source_prefix_ranges
            .iter()
            .map(|r| format!("{}/{}", r.address_prefix, r.prefix_len.unwrap_or(0)))
            .collect()
    };
    let tcp = |out: &mut Vec<ChainMatch>, t: &TcpGateway, m: Option<&GatewayMatcher>| {
        for h in &t.hosts {
            let mut sni = h.tls.sni_domains().to_vec();
            if sni.is_empty()
                && let Some(d) = m.and_then(|m| m.ssl_sni_domains.as_ref())
            {
                sni = d.clone();
            }
            out.push(ChainMatch {
                what: format!("tcp host {}", h.name),
                server_names: sni,
                source_ranges: m.map(ranges).unwrap_or_default(),
            });
        }
    };
    let mut out = Vec::new();
    match &gw.kind {
        GatewayKind::Http => {}
        GatewayKind::Tcp(t) => tcp(&mut out, t, None),
        GatewayKind::Hybrid(list) => {
            for (i, g) in list.iter().enumerate() {
                match g {
                    MatchedGateway::Tcp { matcher, tcp: t } => tcp(&mut out, t, Some(matcher)),
                    MatchedGateway::Http(h) => {
                        let Some(m) = &h.matcher else { continue };
                        let what = format!("matched httpGateway #{}", i + 1);
                        let source_ranges = ranges(m);
                        let groups = if h.ssl {
                            crate::model::consolidate_ssl(
                                model.virtual_services.values().filter(|v| h.selects(v)),
                            )
                        } else {
                            Vec::new()
                        };
                        if groups.is_empty() {
                            out.push(ChainMatch {
                                what,
                                server_names: Vec::new(),
                                source_ranges,
                            });
                            continue;
                        }
                        for g in groups {
                            let mut sni = g.ssl.sni_domains.clone();
                            if sni.is_empty() {
                                sni = m.ssl_sni_domains.clone().unwrap_or_default();
                            }
                            out.push(ChainMatch {
                                what: what.clone(),
                                server_names: sni,
                                source_ranges: source_ranges.clone(),
                            });
                        }
                    }
                }
            }
        }
    }
    out
}

/// Envoy refuses a listener where two filter chains match the same
/// connections (same server name, or both none, and same source range, or
/// both none): the whole listener would be NACKed. Gloo translates such
/// gateways anyway; edgeplane reports them.
pub(super) fn check_filter_chain_matches(
    model: &Model,
    gw_pos: &BTreeMap<Key, (Pos, ResourceId)>,
    diags: &mut Vec<Diagnostic>,
) {
    for gw in model.gateways.values() {
        let chains = chain_matches(gw, model);
        let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
        let mut reported = std::collections::BTreeSet::new();
        for (i, c) in chains.iter().enumerate() {
            let any = vec![String::new()];
            let names = if c.server_names.is_empty() {
                &any
            } else {
                &c.server_names
            };
            let srcs = if c.source_ranges.is_empty() {
                &any
            } else {
                &c.source_ranges
            };
            for n in names {
                for s in srcs {
                    let Some(&j) = seen.get(&(n.clone(), s.clone())) else {
                        seen.insert((n.clone(), s.clone()), i);
                        continue;
                    };
                    if j == i || !reported.insert((j, i)) {
                        continue;
                    }
                    let sni = if n.is_empty() {
                        "any server name".to_string()
                    } else {
                        format!("server name {n}")
                    };
                    let src = if s.is_empty() {
                        "any source".to_string()
                    } else {
                        format!("source {s}")
                    };
                    if let Some((p, id)) = gw_pos.get(&gw.key) {
                        diags.push(Diagnostic::error(
                            p.clone(),
                            Some(id.clone()),
                            format!(
                                "the filter chains of {} and {} both match {sni} from {src}: Envoy rejects a listener whose filter chains have the same match (give them different sslConfig.sniDomains or matchers)",
                                chains[j].what, c.what
                            ),
                        ));
                    }
                }
            }
        }
    }
}
