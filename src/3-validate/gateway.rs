//! Gateway → `model::Gateway`: bind address and port, proxies, which
//! VirtualServices it serves, and its HTTP connection manager settings;
//! its listener `options` are read by `listener_options`.
//!
//! SSL gateways live here too: a VirtualService's `sslConfig` (parsed into
//! the model by `ssl_config`, called from `routes::virtual_service`) and the
//! cross-resource check that the VirtualServices of one SSL gateway can be
//! told apart by SNI (`check_sni_conflicts`).

use std::collections::{BTreeMap, BTreeSet};

use serde_saphyr::Spanned;

use super::{Ctx, Index};
use crate::diag::{Diagnostic, Pos, ResourceId};
use crate::manifest::DEFAULT_PROXY_NAME;
use crate::manifest::raw;
use crate::model::*;

pub(super) fn gateway(
    cx: &mut Ctx<'_>,
    key: Key,
    spec: &raw::GatewaySpec,
    index: &Index<'_>,
) -> Option<Gateway> {
    let port = spec.bind_port.value;
    if port == 0 || port > 65535 {
        let pos = cx.at(&spec.bind_port);
        cx.error(
            pos,
            format!("bindPort {port} is not a valid port (1-65535)"),
        );
    }
    let ssl = spec.ssl.as_ref().is_some_and(|s| s.value);
    // Gloo's proxyprotocol plugin: `useProxyProto: true` asks for the same
    // PROXY protocol listener filter as `options.proxyProtocol`.
    let use_proxy_proto = spec.use_proxy_proto.as_ref().is_some_and(|p| p.value);
    let options = super::listener_options::listener_options(
        cx,
        spec.options.as_ref(),
        use_proxy_proto,
        index,
    );
    let proxy_names = if spec.proxy_names.is_empty() {
        vec![DEFAULT_PROXY_NAME.to_string()]
    } else {
        let mut names = spec.proxy_names.clone();
        names.sort();
        names.dedup();
        names
    };
    let bind_address = spec
        .bind_address
        .clone()
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| "::".to_string());
    let types = [
        spec.http_gateway.is_some(),
        spec.tcp_gateway.is_some(),
        spec.hybrid_gateway.is_some(),
    ];
    if types.iter().filter(|t| **t).count() != 1 {
        // Gloo's MissingGatewayTypeErr (`gatewayType` is a oneof there, so
        // two of them cannot even be written).
        let msg = if types.contains(&true) {
            "invalid gateway: set only one of httpGateway, tcpGateway and hybridGateway"
        } else {
            "invalid gateway: gateway must contain gatewayType (httpGateway, tcpGateway or hybridGateway)"
        };
        cx.error(cx.doc_pos.clone(), msg);
        // Still read the others, so their own problems are named too.
        if let Some(t) = &spec.tcp_gateway {
            super::tcp::tcp_gateway(cx, &key, t, None, index);
        }
        if let Some(h) = &spec.hybrid_gateway {
            super::tcp::hybrid_gateway(cx, &key, spec, h, &options, index);
        }
        return None;
    }
    if spec.http_gateway.is_none() {
        let kind = if let Some(t) = &spec.tcp_gateway {
            GatewayKind::Tcp(super::tcp::tcp_gateway(cx, &key, t, None, index))
        } else {
            let h = spec.hybrid_gateway.as_ref()?;
            GatewayKind::Hybrid(super::tcp::hybrid_gateway(
                cx, &key, spec, h, &options, index,
            ))
        };
        return Some(Gateway {
            key,
            bind_address,
            bind_port: port,
            proxy_names,
            selection: VsSelection::All {
                namespaces: Vec::new(),
            },
            hcm: HcmSettings::default(),
            ssl: false,
            buffer_max_request_bytes: None,
            options,
            connection_limit: None,
            gzip: None,
            health_check_path: None,
            csrf: None,
            grpc_web: false,
            ext_authz: None,
            kind,
            matcher: None,
        });
    }
    let http = spec.http_gateway.as_ref()?;
    let selection = selection(cx, &key, http, index);
    let buffer_max_request_bytes = http
        .options
        .as_ref()
        .and_then(|o| o.buffer.as_ref())
        .and_then(|b| match b.value.max_request_bytes {
            Some(n) if n > 0 => Some(n),
            _ => {
                let pos = cx.at(b);
                cx.error(pos, "options.buffer.maxRequestBytes must be greater than 0");
                None
            }
        });
    let connection_limit = http
        .options
        .as_ref()
        .and_then(|o| o.connection_limit.as_ref())
        .and_then(|c| super::listener_options::connection_limit(cx, c));
    let filters = super::http_options::http_filters(cx, &key, http.options.as_ref());
    let empty = raw::HcmSettings::default();
    let h = http
        .options
        .as_ref()
        .and_then(|o| o.http_connection_manager_settings.as_ref())
        .unwrap_or(&empty);
    if h.max_headers_count == Some(0) {
        // Envoy's HttpProtocolOptions.max_headers_count: at least 1.
        let pos = cx.doc_pos.clone();
        cx.error(
            pos,
            "httpConnectionManagerSettings.maxHeadersCount must be at least 1 (leave it out for Envoy's default of 100)",
        );
    }
    for (field, v) in [("serverName", &h.server_name), ("via", &h.via)] {
        if let Some(v) = v.as_ref().filter(|v| !super::routes::header_value_ok(v)) {
            // Envoy takes both as header values: no NUL, CR or LF.
            let pos = cx.doc_pos.clone();
            cx.error(
                pos,
                format!("httpConnectionManagerSettings.{field} {v:?} holds a NUL, CR or LF, which Envoy refuses in a header value"),
            );
        }
    }
    if let Some(kb) = h
        .max_request_headers_kb
        .filter(|kb| !(1..=8192).contains(kb))
    {
        // Envoy's range for max_request_headers_kb: (0, 8192].
        let pos = cx.doc_pos.clone();
        cx.error(
            pos,
            format!("httpConnectionManagerSettings.maxRequestHeadersKb {kb} is outside Envoy's range 1-8192"),
        );
    }
    let hcm = HcmSettings {
        upgrades: cx.upgrades(&h.upgrades),
        stream_idle_timeout: cx.duration(&h.stream_idle_timeout),
        idle_timeout: cx.duration(&h.idle_timeout),
        request_timeout: cx.duration(&h.request_timeout),
        request_headers_timeout: cx.duration(&h.request_headers_timeout),
        drain_timeout: cx.duration(&h.drain_timeout),
        delayed_close_timeout: cx.duration(&h.delayed_close_timeout),
        use_remote_address: h.use_remote_address,
        server_name: h.server_name.clone(),
        skip_xff_append: h.skip_xff_append,
        via: h.via.clone(),
        xff_num_trusted_hops: h.xff_num_trusted_hops,
        generate_request_id: h.generate_request_id,
        proxy_100_continue: h.proxy_100_continue,
        max_request_headers_kb: h.max_request_headers_kb,
        normalize_path: h.normalize_path,
        merge_slashes: h.merge_slashes,
        preserve_external_request_id: h.preserve_external_request_id,
        max_connection_duration: cx.duration(&h.max_connection_duration),
        max_stream_duration: cx.duration(&h.max_stream_duration),
        max_headers_count: h.max_headers_count,
        max_requests_per_connection: h.max_requests_per_connection,
        headers_with_underscores_action: enum_field(
            cx,
            "headersWithUnderscoresAction",
            &h.headers_with_underscores_action,
            &[
                (HeadersWithUnderscores::Allow, "ALLOW"),
                (
                    HeadersWithUnderscores::RejectRequest,
                    "REJECT_CLIENT_REQUEST",
                ),
                (HeadersWithUnderscores::DropHeader, "DROP_HEADER"),
            ],
        ),
        server_header_transformation: enum_field(
            cx,
            "serverHeaderTransformation",
            &h.server_header_transformation,
            &[
                (ServerHeaderTransformation::Overwrite, "OVERWRITE"),
                (
                    ServerHeaderTransformation::AppendIfAbsent,
                    "APPEND_IF_ABSENT",
                ),
                (ServerHeaderTransformation::PassThrough, "PASS_THROUGH"),
            ],
        ),
        path_with_escaped_slashes_action: enum_field(
            cx,
            "pathWithEscapedSlashesAction",
            &h.path_with_escaped_slashes_action,
            &[
                (
                    EscapedSlashesAction::ImplementationSpecificDefault,
                    "IMPLEMENTATION_SPECIFIC_DEFAULT",
                ),
                (EscapedSlashesAction::KeepUnchanged, "KEEP_UNCHANGED"),
                (EscapedSlashesAction::RejectRequest, "REJECT_REQUEST"),
                (
                    EscapedSlashesAction::UnescapeAndRedirect,
                    "UNESCAPE_AND_REDIRECT",
                ),
                (
                    EscapedSlashesAction::UnescapeAndForward,
                    "UNESCAPE_AND_FORWARD",
                ),
            ],
        ),
        codec_type: enum_field(
            cx,
            "codecType",
            &h.codec_type,
            &[
                (CodecType::Auto, "AUTO"),
                (CodecType::Http1, "HTTP1"),
                (CodecType::Http2, "HTTP2"),
            ],
        ),
        forward_client_cert_details: enum_field(
            cx,
            "forwardClientCertDetails",
            &h.forward_client_cert_details,
            &[
                (ForwardClientCertDetails::Sanitize, "SANITIZE"),
                (ForwardClientCertDetails::ForwardOnly, "FORWARD_ONLY"),
                (ForwardClientCertDetails::AppendForward, "APPEND_FORWARD"),
                (ForwardClientCertDetails::SanitizeSet, "SANITIZE_SET"),
                (
                    ForwardClientCertDetails::AlwaysForwardOnly,
                    "ALWAYS_FORWARD_ONLY",
                ),
            ],
        ),
        set_current_client_cert_details: h
            .set_current_client_cert_details
            .as_ref()
            .map(|d| [d.subject, d.cert, d.chain, d.dns, d.uri].map(|b| b.unwrap_or(false))),
        accept_http_10: h.accept_http10,
        default_host_for_http_10: h.default_host_for_http10.clone(),
        allow_chunked_length: h.allow_chunked_length,
        enable_trailers: h.enable_trailers,
        proper_case_header_key_format: h.proper_case_header_key_format,
        preserve_case_header_key_format: h.preserve_case_header_key_format,
        strip_any_host_port: h.strip_any_host_port,
        append_x_forwarded_port: h.append_x_forwarded_port,
        uuid_request_id_config: h
            .uuid_request_id_config
            .as_ref()
            .map(|u| (u.pack_trace_reason, u.use_request_id_for_trace_sampling)),
        http2: h.http2_protocol_options.as_ref().and_then(|o| http2(cx, o)),
        internal_address_config: h.internal_address_config.as_ref().and_then(|c| {
            let mut ranges = Vec::new();
            for r in &c.cidr_ranges {
                if r.address_prefix.parse::<std::net::IpAddr>().is_err() {
                    cx.error(
                        cx.doc_pos.clone(),
                        format!("invalid CIDR address prefix `{}`", r.address_prefix),
                    );
                    return None;
                }
                ranges.push((r.address_prefix.clone(), r.prefix_len.unwrap_or(0)));
            }
            Some((c.unix_sockets.unwrap_or(false), ranges))
        }),
        tracing: h
            .tracing
            .as_ref()
            .and_then(|t| super::http_options::tracing(cx, &key, t, index)),
    };
    if hcm.proper_case_header_key_format == Some(true)
        && hcm.preserve_case_header_key_format == Some(true)
    {
        cx.error(
            cx.doc_pos.clone(),
            "set only one of properCaseHeaderKeyFormat and preserveCaseHeaderKeyFormat",
        );
    }
    let ext_authz = http
        .options
        .as_ref()
        .and_then(|o| o.extauth.as_ref())
        .and_then(|e| super::http_options::ext_authz(cx, &key, e, index));
    Some(Gateway {
        key,
        bind_address,
        bind_port: port,
        proxy_names,
        selection,
        hcm,
        ssl,
        buffer_max_request_bytes,
        options,
        connection_limit,
        gzip: filters.gzip,
        health_check_path: filters.health_check_path,
        csrf: filters.csrf,
        grpc_web: filters.grpc_web,
        ext_authz,
        kind: GatewayKind::Http,
        matcher: None,
    })
}

/// Gloo's precedence: expressions, then the label selector, then refs.
/// `virtualServiceExpressions` given at all wins, even with no expressions:
/// it then selects every VirtualService of the namespaces
/// (`HttpGatewayContainsVirtualService`,
/// `projects/gateway/pkg/translator/virtual_service_translator.go`).
fn selection(
    cx: &mut Ctx<'_>,
    key: &Key,
    http: &raw::HttpGateway,
    index: &Index<'_>,
) -> VsSelection {
    let namespaces = http.virtual_service_namespaces.clone();
    if let Some(e) = &http.virtual_service_expressions {
        let pos = cx.doc_pos.clone();
        let expressions = cx.expressions(&pos, &e.expressions);
        return VsSelection::Expressions {
            expressions,
            namespaces,
        };
    }
    if !http.virtual_service_selector.is_empty() {
        return VsSelection::Labels {
            labels: http.virtual_service_selector.clone(),
            namespaces,
        };
    }
    if http.virtual_services.is_empty() {
        return VsSelection::All { namespaces };
    }
    let mut set = BTreeSet::new();
    for r in &http.virtual_services {
        let k = Key::new(
            r.value
                .namespace
                .clone()
                .unwrap_or_else(|| key.namespace.clone()),
            &r.value.name,
        );
        if !index.virtual_services.contains(&k) {
            let pos = cx.at(r);
            cx.error(pos, format!("invalid virtual service ref {k}"));
        }
        set.insert(k);
    }
    VsSelection::Refs(set)
}

/// A Gloo enum field, written as a name or as its number (the index in
/// `values`, which lists the values in their proto order).
pub(super) fn enum_field<T: Copy>(
    cx: &mut Ctx<'_>,
    field: &str,
    v: &Option<serde_saphyr::Spanned<raw::EnumValue>>,
    values: &[(T, &str)],
) -> Option<T> {
    let v = v.as_ref()?;
    let found = match &v.value {
        raw::EnumValue::Number(n) => usize::try_from(*n).ok().and_then(|i| values.get(i)),
        raw::EnumValue::Name(s) => values.iter().find(|(_, name)| name == s),
    };
    match found {
        Some((value, _)) => Some(*value),
        None => {
            let pos = cx.at(v);
            let names: Vec<&str> = values.iter().map(|(_, n)| *n).collect();
            cx.error(
                pos,
                format!("{field}: expected one of {}", names.join(", ")),
            );
            None
        }
    }
}

/// Gloo range-checks the HTTP/2 window sizes and stream count.
fn http2(cx: &mut Ctx<'_>, o: &serde_saphyr::Spanned<raw::Http2Options>) -> Option<Http2Settings> {
    let pos = cx.at(o);
    let v = &o.value;
    const MAX: u32 = 2_147_483_647;
    let mut ok = true;
    if let Some(n) = v.initial_stream_window_size
        && !(65_535..=MAX).contains(&n)
    {
        cx.error(
            pos.clone(),
            format!("Invalid Initial Stream Window Size: {n}"),
        );
        ok = false;
    }
    if let Some(n) = v.initial_connection_window_size
        && !(65_535..=MAX).contains(&n)
    {
        cx.error(
            pos.clone(),
            format!("Invalid Initial Connection Window Size: {n}"),
        );
        ok = false;
    }
    if let Some(n) = v.max_concurrent_streams
        && !(1..=MAX).contains(&n)
    {
        cx.error(pos, format!("Invalid Max Concurrent Streams Size: {n}"));
        ok = false;
    }
    ok.then_some(Http2Settings {
        initial_stream_window_size: v.initial_stream_window_size,
        initial_connection_window_size: v.initial_connection_window_size,
        max_concurrent_streams: v.max_concurrent_streams,
        override_stream_error_on_invalid_http_message: v
            .override_stream_error_on_invalid_http_message,
    })
}

// === sslConfig (VirtualService) ===

/// Gloo's ALPN default for HTTP filter chains, and its opt-out value.
const DEFAULT_ALPN: [&str; 2] = ["h2", "http/1.1"];
const ALPN_ALLOW_EMPTY: &str = "allow_empty";

/// A VirtualService's `sslConfig` → `model::SslConfig`. Paths are checked
/// for presence only: they name files as Envoy sees them (maybe in another
/// container), so they are never read here.
pub(super) fn ssl_config(
    cx: &mut Ctx<'_>,
    sc: &Spanned<raw::SslConfig>,
    index: &Index<'_>,
) -> Option<SslConfig> {
    let at = cx.at(sc);
    let c = &sc.value;
    let unimplemented: [(&str, Option<Pos>); 5] = [
        ("sds", c.sds.as_ref().map(|v| cx.at(v))),
        (
            "verifySubjectAltName",
            c.verify_subject_alt_name.as_ref().map(|v| cx.at(v)),
        ),
        (
            "disableTlsSessionResumption",
            c.disable_tls_session_resumption.as_ref().map(|v| cx.at(v)),
        ),
        (
            "transportSocketConnectTimeout",
            c.transport_socket_connect_timeout
                .as_ref()
                .map(|v| cx.at(v)),
        ),
        (
            "ocspStaplePolicy",
            c.ocsp_staple_policy.as_ref().map(|v| cx.at(v)),
        ),
    ];
    for (field, pos) in unimplemented {
        if let Some(pos) = pos {
            let hint = if field == "sds" {
                "; give the certificate and key as a Secret (secretRef) or as files (sslFiles)"
            } else {
                ""
            };
            cx.error(
                pos,
                format!("sslConfig.{field} is not implemented by edgeplane yet{hint}"),
            );
        }
    }

    let certs = match (&c.ssl_files, &c.secret_ref) {
        (Some(_), Some(r)) => {
            let pos = cx.at(r);
            cx.error(
                pos,
                "sslConfig sets both secretRef and sslFiles; Gloo takes one source of certificates: keep one",
            );
            None
        }
        (Some(f), None) => {
            ssl_files(cx, f).map(|(cert_chain, private_key, root_ca)| CertSource::Files {
                cert_chain,
                private_key,
                root_ca,
            })
        }
        (None, Some(r)) => secret_ref(cx, "sslConfig", r, index, true).map(CertSource::Secret),
        (None, None) => {
            if c.sds.is_none() {
                cx.error(
                    at.clone(),
                    "sslConfig has no sslFiles or secretRef: set sslFiles.tlsCert and sslFiles.tlsKey, or name a TLS Secret with secretRef",
                );
            }
            None
        }
    };

    let mut sni_domains: Vec<String> = Vec::new();
    for d in &c.sni_domains {
        let pos = cx.at(d);
        if d.value.is_empty() {
            cx.error(pos, "sslConfig.sniDomains has an empty domain");
        } else if sni_domains.contains(&d.value) {
            cx.error(
                pos,
                format!("sslConfig.sniDomains lists `{}` more than once", d.value),
            );
        } else {
            sni_domains.push(d.value.clone());
        }
    }

    let alpn_protocols = match c.alpn_protocols.as_slice() {
        [] => DEFAULT_ALPN.map(String::from).to_vec(),
        [only] if only.value == ALPN_ALLOW_EMPTY => Vec::new(),
        list => {
            let mut out = Vec::new();
            for p in list {
                if p.value == ALPN_ALLOW_EMPTY {
                    let pos = cx.at(p);
                    cx.error(
                        pos,
                        "sslConfig.alpnProtocols: `allow_empty` must be the only entry (it means: offer no ALPN)",
                    );
                } else if p.value.is_empty() {
                    let pos = cx.at(p);
                    cx.error(pos, "sslConfig.alpnProtocols has an empty protocol");
                } else {
                    out.push(p.value.clone());
                }
            }
            out
        }
    };

    let params = match &c.parameters {
        None => TlsParams::default(),
        Some(p) => ssl_parameters(cx, "sslConfig", &at, p).unwrap_or_default(),
    };

    Some(SslConfig {
        certs: certs?,
        sni_domains,
        alpn_protocols,
        one_way_tls: c.one_way_tls.unwrap_or(false),
        params,
    })
}

/// `<field>.secretRef` → the Secret's key, with Gloo's errors when it
/// does not exist, is not a TLS secret or (`must_have_cert`: a listener's
/// certificate; an Upstream's Secret may hold only a `rootCa`) has no
/// certificate. A Secret document that exists but is invalid passes here
/// (its own errors reject it; the reconciler then serves its last accepted
/// version, or drops it and this check fails on the next pass).
pub(super) fn secret_ref(
    cx: &mut Ctx<'_>,
    field: &str,
    r: &Spanned<raw::ResourceRef>,
    index: &Index<'_>,
    must_have_cert: bool,
) -> Option<Key> {
    let pos = cx.at(r);
    if r.value.name.is_empty() {
        cx.error(pos, format!("{field}.secretRef.name is empty"));
        return None;
    }
    let key = super::upstream::ref_key(&r.value, &cx.id.namespace);
    let Some(info) = index.secrets.get(&key) else {
        // Gloo: utils.SslSecretNotFoundError wrapping SecretList.Find's error.
        let mut d = Diagnostic::error(
            pos,
            Some(cx.id.clone()),
            format!("SSL secret not found: list did not find secret {key}"),
        );
        let known: BTreeSet<Key> = index.secrets.keys().cloned().collect();
        if let Some(near) = index.suggest.closest(&key, &known) {
            d = d.with_hint(format!("did you mean `{near}`?"));
        }
        cx.diags.push(d);
        return None;
    };
    if info.kind != Some("tls") {
        cx.error(pos, format!("{key} is not a TLS secret"));
        return None;
    }
    if must_have_cert && !info.has_cert {
        // Gloo: NoCertificateFoundError (a CA alone cannot serve TLS).
        cx.error(
            pos,
            format!("no certificate information found: secret {key} has no tls.certChain and tls.privateKey"),
        );
        return None;
    }
    Some(key)
}

/// `sslFiles` → (tlsCert, tlsKey, rootCa); `None` after reporting a
/// missing or empty path.
fn ssl_files(
    cx: &mut Ctx<'_>,
    f: &Spanned<raw::SslFiles>,
) -> Option<(String, String, Option<String>)> {
    let at = cx.at(f);
    let v = &f.value;
    if let Some(o) = &v.ocsp_staple {
        let pos = cx.at(o);
        cx.error(
            pos,
            "sslConfig.sslFiles.ocspStaple is not implemented by edgeplane yet",
        );
    }
    let mut path = |field: &str, p: &Option<Spanned<String>>, required: bool| -> Option<String> {
        match p {
            None => {
                if required {
                    cx.error(
                        at.clone(),
                        format!(
                            "sslConfig.sslFiles.{field} is missing: Envoy needs the path of the {}",
                            what(field)
                        ),
                    );
                }
                None
            }
            Some(s) if s.value.trim().is_empty() => {
                let pos = cx.at(s);
                let hint = if required {
                    ""
                } else {
                    " (leave it out for no client certificate verification)"
                };
                cx.error(
                    pos,
                    format!("sslConfig.sslFiles.{field} is an empty path{hint}"),
                );
                None
            }
            Some(s) => Some(s.value.clone()),
        }
    };
    // Gloo's `ResolveCommonSslConfig` (`projects/gloo/pkg/utils/ssl.go`)
    // when only one of the two is given.
    let one_only = v.tls_cert.is_some() != v.tls_key.is_some();
    let cert = path("tlsCert", &v.tls_cert, !one_only);
    let key = path("tlsKey", &v.tls_key, !one_only);
    let root_ca = path("rootCa", &v.root_ca, false);
    if one_only {
        cx.error(
            at.clone(),
            "sslConfig.sslFiles: both or none of cert chain and private key must be provided; set tlsCert and tlsKey",
        );
    }
    let root_ca_bad = v.root_ca.is_some() && root_ca.is_none();
    match (cert, key, root_ca_bad) {
        (Some(c), Some(k), false) => Some((c, k, root_ca)),
        _ => None,
    }
}

fn what(field: &str) -> &'static str {
    match field {
        "tlsCert" => "PEM certificate chain",
        "tlsKey" => "PEM private key",
        _ => "PEM CA bundle",
    }
}

/// A protocol version by Gloo's name or number.
pub(super) fn tls_version(
    cx: &mut Ctx<'_>,
    field: &str,
    v: &Option<Spanned<raw::EnumValue>>,
) -> Option<TlsVersion> {
    enum_field(
        cx,
        &format!("sslConfig.parameters.{field}"),
        v,
        &TLS_VERSIONS,
    )
}

/// Gloo's protocol version names, in their enum's order.
const TLS_VERSIONS: [(TlsVersion, &str); 5] = [
    (TlsVersion::Auto, "TLS_AUTO"),
    (TlsVersion::V1_0, "TLSv1_0"),
    (TlsVersion::V1_1, "TLSv1_1"),
    (TlsVersion::V1_2, "TLSv1_2"),
    (TlsVersion::V1_3, "TLSv1_3"),
];

pub(super) fn tls_version_name(v: TlsVersion) -> &'static str {
    TLS_VERSIONS
        .iter()
        .find(|(t, _)| *t == v)
        .map_or("?", |(_, name)| name)
}

/// The VirtualServices of one SSL gateway become filter chains matched by
/// SNI, one per distinct `sslConfig` (Gloo's ConsolidateSslConfigurations:
/// configs differing only in `sniDomains` share a chain). Envoy refuses two
/// chains with the same match (it would NACK the whole listener), so two
/// *different* configs may not both leave `sniDomains` empty, nor name the
/// same domain. Each VirtualService involved gets an error.
pub(super) fn check_sni_conflicts(
    model: &Model,
    vs_pos: &BTreeMap<Key, (Pos, ResourceId)>,
    diags: &mut Vec<Diagnostic>,
) {
    // A hybrid gateway's HTTP gateways are SSL gateways of their own.
    let http = model.gateways.values().flat_map(|g| g.http_parts());
    for gw in http.filter(|g| g.ssl) {
        // Grouping does not depend on order, only the SNI lists' order does.
        let attached = model.virtual_services.values().filter(|v| gw.selects(v));
        let mut by_sni: BTreeMap<&str, Vec<&Key>> = BTreeMap::new();
        let groups = crate::model::consolidate_ssl(attached);
        for g in &groups {
            let mut members = g.members.clone();
            if g.ssl.sni_domains.is_empty() {
                by_sni.entry("").or_default().append(&mut members);
                continue;
            }
            for d in &g.ssl.sni_domains {
                by_sni.entry(d.as_str()).or_default().extend(&g.members);
            }
        }
        // Keys of one group share their chain: only keys from two or more
        // groups on one match conflict.
        let group: std::collections::HashMap<&Key, usize> = groups
            .iter()
            .enumerate()
            .flat_map(|(i, g)| g.members.iter().map(move |k| (*k, i)))
            .collect();
        let group_of = |k: &Key| group.get(k).copied();
        for (sni, keys) in by_sni.iter().filter(|(_, ks)| {
            let first = ks.first().and_then(|k| group_of(k));
            ks.iter().any(|k| group_of(k) != first)
        }) {
            for k in keys {
                // At most ten names each: n VirtualServices on one SNI
                // must not cost n² text.
                let others = super::others_list(keys, k);
                let msg = if sni.is_empty() {
                    format!(
                        "ssl conflict: other virtual services on the same SSL Gateway {} as this one don't specify sniDomains either, with a different sslConfig: [{others}]; only VirtualServices whose sslConfigs are the same may all leave sniDomains empty",
                        gw.key,
                    )
                } else {
                    format!(
                        "ssl conflict: the [{sni}] SNI domain is in the sniDomains of other virtual services with a different sslConfig on the same SSL Gateway {} as this one: [{others}]",
                        gw.key,
                    )
                };
                if let Some((p, id)) = vs_pos.get(*k) {
                    diags.push(Diagnostic::error(p.clone(), Some(id.clone()), msg));
                }
            }
        }
    }
}

/// `parameters`: protocol versions by Gloo's names, min not above max
/// (Envoy would refuse the cluster or listener), no empty list entries.
pub(super) fn ssl_parameters(
    cx: &mut Ctx<'_>,
    field: &str,
    at: &Pos,
    p: &raw::SslParameters,
) -> Option<TlsParams> {
    let before = cx.diags.len();
    let min_version = tls_version(cx, "minimumProtocolVersion", &p.minimum_protocol_version);
    let max_version = tls_version(cx, "maximumProtocolVersion", &p.maximum_protocol_version);
    if let (Some(min), Some(max)) = (min_version, max_version)
        && min != TlsVersion::Auto
        && max != TlsVersion::Auto
        && min > max
    {
        cx.error(
            at.clone(),
            format!(
                "{field}.parameters: minimumProtocolVersion {} is above maximumProtocolVersion {}",
                tls_version_name(min),
                tls_version_name(max)
            ),
        );
    }
    for (name, list) in [
        ("cipherSuites", &p.cipher_suites),
        ("ecdhCurves", &p.ecdh_curves),
    ] {
        if list.iter().any(String::is_empty) {
            cx.error(
                at.clone(),
                format!("{field}.parameters.{name} has an empty entry"),
            );
        }
    }
    (cx.diags.len() == before).then(|| TlsParams {
        min_version,
        max_version,
        cipher_suites: p.cipher_suites.clone(),
        ecdh_curves: p.ecdh_curves.clone(),
    })
}
