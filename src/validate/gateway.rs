//! Gateway → `model::Gateway`: bind address and port, proxies, which
//! VirtualServices it serves, and its HTTP connection manager settings.

use std::collections::BTreeSet;

use super::{Ctx, Index};
use crate::manifest::DEFAULT_PROXY_NAME;
use crate::manifest::model as raw;
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
    if let Some(ssl) = &spec.ssl
        && ssl.value
    {
        let pos = cx.at(ssl);
        cx.error(pos, "ssl gateways are not implemented by edgeplane yet");
    }
    let Some(http) = &spec.http_gateway else {
        cx.error(
            cx.doc_pos.clone(),
            "gateway has no httpGateway; tcpGateway and hybridGateway are not implemented by edgeplane yet",
        );
        return None;
    };
    let selection = selection(cx, &key, http, index);
    let empty = raw::HcmSettings::default();
    let h = http
        .options
        .as_ref()
        .and_then(|o| o.http_connection_manager_settings.as_ref())
        .unwrap_or(&empty);
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
            &["ALLOW", "REJECT_CLIENT_REQUEST", "DROP_HEADER"],
        ),
        server_header_transformation: enum_field(
            cx,
            "serverHeaderTransformation",
            &h.server_header_transformation,
            &["OVERWRITE", "APPEND_IF_ABSENT", "PASS_THROUGH"],
        ),
        path_with_escaped_slashes_action: enum_field(
            cx,
            "pathWithEscapedSlashesAction",
            &h.path_with_escaped_slashes_action,
            &[
                "IMPLEMENTATION_SPECIFIC_DEFAULT",
                "KEEP_UNCHANGED",
                "REJECT_REQUEST",
                "UNESCAPE_AND_REDIRECT",
                "UNESCAPE_AND_FORWARD",
            ],
        ),
        codec_type: enum_field(cx, "codecType", &h.codec_type, &["AUTO", "HTTP1", "HTTP2"]),
        forward_client_cert_details: enum_field(
            cx,
            "forwardClientCertDetails",
            &h.forward_client_cert_details,
            &[
                "SANITIZE",
                "FORWARD_ONLY",
                "APPEND_FORWARD",
                "SANITIZE_SET",
                "ALWAYS_FORWARD_ONLY",
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
    };
    if hcm.proper_case_header_key_format == Some(true)
        && hcm.preserve_case_header_key_format == Some(true)
    {
        cx.error(
            cx.doc_pos.clone(),
            "set only one of properCaseHeaderKeyFormat and preserveCaseHeaderKeyFormat",
        );
    }
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
    Some(Gateway {
        key,
        bind_address,
        bind_port: port,
        proxy_names,
        selection,
        hcm,
    })
}

/// Gloo's precedence: expressions, then the label selector, then refs.
fn selection(
    cx: &mut Ctx<'_>,
    key: &Key,
    http: &raw::HttpGateway,
    index: &Index<'_>,
) -> VsSelection {
    let namespaces = http.virtual_service_namespaces.clone();
    if let Some(e) = &http.virtual_service_expressions
        && !e.expressions.is_empty()
    {
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

/// A Gloo enum field given by name or number; `names[i]` is Envoy's value i.
fn enum_field(
    cx: &mut Ctx<'_>,
    field: &str,
    v: &Option<serde_saphyr::Spanned<raw::EnumValue>>,
    names: &[&str],
) -> Option<i32> {
    let v = v.as_ref()?;
    let found = match &v.value {
        raw::EnumValue::Number(n) => usize::try_from(*n).ok().filter(|n| *n < names.len()),
        raw::EnumValue::Name(s) => names.iter().position(|n| n == s),
    };
    match found {
        Some(i) => i32::try_from(i).ok(),
        None => {
            let pos = cx.at(v);
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
