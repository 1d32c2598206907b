//! The HTTP filters a Gateway's `httpGateway.options` ask for (`gzip`,
//! `healthCheck`, `csrf`, `grpcWeb`) and the connection manager's
//! `tracing` → the model.
//!
//! Rules and messages are those of Gloo's plugins
//! (`projects/gloo/pkg/plugins/{gzip,healthcheck,csrf,grpcweb,tracing}/
//! plugin.go`), plus what Envoy's own proto validation would refuse (so an
//! accepted Gateway is never NACKed for them): Gloo runs Envoy's
//! `Validate()` on the gzip messages and leaves percentages to Envoy.
//! Tracing providers and tag sources edgeplane does not implement are
//! refused by name.

use serde_saphyr::Spanned;

use super::upstream::ref_key;
use super::{Ctx, Index};
use crate::diag::Diagnostic;
use crate::manifest::raw;
use crate::model::*;

/// What `httpGateway.options` adds to the listener's HTTP filters.
pub(super) struct HttpFilters {
    pub gzip: Option<Gzip>,
    pub health_check_path: Option<String>,
    pub csrf: Option<Csrf>,
    pub grpc_web: bool,
}

pub(super) fn http_filters(
    cx: &mut Ctx<'_>,
    key: &Key,
    o: Option<&raw::HttpListenerOptions>,
) -> HttpFilters {
    let gzip = o.and_then(|o| o.gzip.as_ref()).and_then(|g| gzip(cx, g));
    let health_check_path =
        o.and_then(|o| o.health_check.as_ref())
            .and_then(|h| match h.value.path.as_deref() {
                Some(p) if !p.is_empty() => Some(p.to_string()),
                // Gloo's healthcheck plugin's message.
                _ => {
                    let pos = cx.at(h);
                    cx.error(pos, "health check path cannot be \"\"");
                    None
                }
            });
    let csrf = o
        .and_then(|o| o.csrf.as_ref())
        .and_then(|c| super::routes::csrf(cx, key, c));
    // Gloo's grpcweb plugin: without `grpcWeb` the Settings decide, whose
    // default (`disableGrpcWeb` unset, `removeUnusedFilters` false) is on.
    let grpc_web = !o
        .and_then(|o| o.grpc_web.as_ref())
        .and_then(|g| g.disable)
        .unwrap_or(false);
    HttpFilters {
        gzip,
        health_check_path,
        csrf,
        grpc_web,
    }
}

/// A Gloo enum by name or number; Gloo's `invalid <Type> <n>` otherwise.
fn gloo_enum<T: Copy>(
    cx: &mut Ctx<'_>,
    field: &str,
    type_name: &str,
    v: &Option<Spanned<raw::EnumValue>>,
    values: &[(T, &str)],
) -> Option<T> {
    let Some(v) = v else {
        return values.first().map(|(t, _)| *t);
    };
    let found = match &v.value {
        raw::EnumValue::Number(n) => usize::try_from(*n).ok().and_then(|i| values.get(i)),
        raw::EnumValue::Name(s) => values.iter().find(|(_, name)| name == s),
    };
    if let Some((t, _)) = found {
        return Some(*t);
    }
    let shown = match &v.value {
        raw::EnumValue::Number(n) => n.to_string(),
        raw::EnumValue::Name(s) => s.clone(),
    };
    let names: Vec<&str> = values.iter().map(|(_, n)| *n).collect();
    let pos = cx.at(v);
    cx.error(
        pos,
        format!(
            "{field}: invalid {type_name} {shown}; expected one of {}",
            names.join(", ")
        ),
    );
    None
}

/// Gloo's `glooToEnvoyCompressor`: the enums mapped, the ranges Envoy's
/// gzip message validates (memory level 1-9, window bits 9-15) checked.
fn gzip(cx: &mut Ctx<'_>, g: &Spanned<raw::Gzip>) -> Option<Gzip> {
    let v = &g.value;
    let mut ok = true;
    let compression_level = gloo_enum(
        cx,
        "gzip.compressionLevel",
        "CompressionLevel",
        &v.compression_level,
        &[
            (GzipLevel::Default, "DEFAULT"),
            (GzipLevel::Best, "BEST"),
            (GzipLevel::Speed, "SPEED"),
        ],
    );
    let compression_strategy = gloo_enum(
        cx,
        "gzip.compressionStrategy",
        "CompressionStrategy",
        &v.compression_strategy,
        &[
            (GzipStrategy::Default, "DEFAULT"),
            (GzipStrategy::Filtered, "FILTERED"),
            (GzipStrategy::Huffman, "HUFFMAN"),
            (GzipStrategy::Rle, "RLE"),
        ],
    );
    for (field, value, range) in [
        ("MemoryLevel", &v.memory_level, 1..=9),
        ("WindowBits", &v.window_bits, 9..=15),
    ] {
        if let Some(n) = value
            && !range.contains(&n.value)
        {
            let pos = cx.at(n);
            // PGV's wording, which Gloo passes on.
            cx.error(
                pos,
                format!(
                    "converting gzip config: invalid Gzip.{field}: value must be inside range [{}, {}]",
                    range.start(),
                    range.end()
                ),
            );
            ok = false;
        }
    }
    if v.content_type.iter().any(String::is_empty) {
        let pos = cx.at(g);
        cx.error(pos, "gzip.contentType has an empty entry");
        ok = false;
    }
    Some(Gzip {
        memory_level: v.memory_level.as_ref().map(|n| n.value),
        compression_level: compression_level?,
        compression_strategy: compression_strategy?,
        window_bits: v.window_bits.as_ref().map(|n| n.value),
        content_length: v.content_length,
        content_type: v.content_type.clone(),
        disable_on_etag_header: v.disable_on_etag_header.unwrap_or(false),
        remove_accept_encoding_header: v.remove_accept_encoding_header.unwrap_or(false),
    })
    .filter(|_| ok)
}

/// `httpConnectionManagerSettings.tracing` (Gloo's
/// `tracing/plugin.go`, `ProcessHcmNetworkFilter`). The collector Upstream
/// must exist: Gloo's message, as an error (Gloo warns and drops the
/// tracing config; a Gateway served without the tracing it asked for would
/// go unnoticed, and Envoy refuses a tracer whose cluster it lacks).
pub(super) fn tracing(
    cx: &mut Ctx<'_>,
    gw: &Key,
    t: &Spanned<raw::ListenerTracing>,
    index: &Index<'_>,
) -> Option<Tracing> {
    let v = &t.value;
    let mut ok = true;
    for (field, what, set) in [
        ("datadogConfig", "the Datadog tracer", &v.datadog_config),
        (
            "openCensusConfig",
            "the OpenCensus tracer",
            &v.open_census_config,
        ),
        (
            "environmentVariablesForTags",
            "tags from environment variables",
            &v.environment_variables_for_tags,
        ),
        ("literalsForTags", "literal tags", &v.literals_for_tags),
        (
            "metadataForTags",
            "tags from metadata",
            &v.metadata_for_tags,
        ),
    ] {
        if let Some(s) = set {
            let pos = cx.at(s);
            cx.error(
                pos,
                format!(
                    "tracing.{field} ({what}) is a Gloo feature edgeplane does not implement; the Gateway is rejected rather than served without it (use zipkinConfig or openTelemetryConfig)"
                ),
            );
            ok = false;
        }
    }
    if v.zipkin_config.is_some() && v.open_telemetry_config.is_some() {
        let pos = cx.at(t);
        cx.error(
            pos,
            "tracing: set only one provider (zipkinConfig or openTelemetryConfig)",
        );
        ok = false;
    }
    let percentages = v.trace_percentages.clone().unwrap_or_default();
    let mut percent = |cx: &mut Ctx<'_>, field: &str, p: Option<f32>| -> f32 {
        let p = p.unwrap_or(100.0);
        let pos = cx.at(t);
        // Envoy's `type.v3.Percent` is 0-100; Gloo passes it through.
        ok &= super::routes::check_percentage(
            cx,
            &pos,
            &format!("tracing.tracePercentages.{field}"),
            p,
        );
        p
    };
    let percentages = [
        percent(
            cx,
            "clientSamplePercentage",
            percentages.client_sample_percentage,
        ),
        percent(
            cx,
            "randomSamplePercentage",
            percentages.random_sample_percentage,
        ),
        percent(
            cx,
            "overallSamplePercentage",
            percentages.overall_sample_percentage,
        ),
    ];
    for h in &v.request_headers_for_tags {
        if h.is_empty() {
            let pos = cx.at(t);
            cx.error(
                pos,
                "tracing.requestHeadersForTags has an empty header name",
            );
            ok = false;
        }
    }
    let provider = if let Some(z) = &v.zipkin_config {
        zipkin(cx, gw, z, index)
    } else if let Some(o) = &v.open_telemetry_config {
        open_telemetry(cx, gw, o, index)
    } else {
        Some(None)
    };
    let provider = provider?;
    ok.then(|| Tracing {
        request_headers_for_tags: v.request_headers_for_tags.clone(),
        verbose: v.verbose.unwrap_or(false),
        percentages,
        spawn_upstream_span: v.spawn_upstream_span.unwrap_or(false),
        provider,
    })
}

/// The collector's Upstream: by `collectorUpstreamRef`, which must exist.
/// `clusterName` (a cluster from Envoy's bootstrap) is refused: edgeplane
/// serves only clusters of Upstreams, so it cannot know one exists.
fn collector(
    cx: &mut Ctx<'_>,
    gw: &Key,
    provider: &str,
    at: crate::diag::Pos,
    upstream_ref: &Option<Spanned<raw::ResourceRef>>,
    cluster_name: &Option<Spanned<String>>,
    index: &Index<'_>,
) -> Option<Key> {
    if let Some(c) = cluster_name {
        let pos = cx.at(c);
        cx.error(
            pos,
            format!(
                "tracing.{provider}.clusterName (a static cluster of Envoy's bootstrap) is not implemented by edgeplane; name the collector's Upstream with collectorUpstreamRef"
            ),
        );
        return None;
    }
    let Some(r) = upstream_ref else {
        cx.error(
            at,
            format!("tracing.{provider}: Invalid CollectorUpstreamRef (nil ref provided)"),
        );
        return None;
    };
    let k = ref_key(&r.value, &gw.namespace);
    if !index.upstreams.contains(&k) {
        // Gloo's `NewUpstreamNotFoundErr`.
        let mut d = Diagnostic::error(
            cx.at(r),
            Some(cx.id.clone()),
            format!("tracing.{provider}.collectorUpstreamRef: *v1.Upstream {{ {k} }} not found"),
        );
        if let Some(near) = index.suggest.closest(&k, &index.upstreams) {
            d = d.with_hint(format!("did you mean `{near}`?"));
        }
        cx.diags.push(d);
        return None;
    }
    Some(k)
}

fn zipkin(
    cx: &mut Ctx<'_>,
    gw: &Key,
    z: &Spanned<raw::ZipkinConfig>,
    index: &Index<'_>,
) -> Option<Option<TracingProvider>> {
    let at = cx.at(z);
    let v = &z.value;
    let collector = collector(
        cx,
        gw,
        "zipkinConfig",
        at.clone(),
        &v.collector_upstream_ref,
        &v.cluster_name,
        index,
    );
    // Gloo's proto: `collector_endpoint` has min_len 1.
    let endpoint = match v.collector_endpoint.as_deref() {
        Some(e) if !e.is_empty() => Some(e.to_string()),
        _ => {
            cx.error(
                at,
                "tracing.zipkinConfig.collectorEndpoint is required (e.g. /api/v2/spans)",
            );
            None
        }
    };
    // Gloo maps anything but HTTP_PROTO to HTTP_JSON
    // (`ToEnvoyZipkinCollectorEndpointVersion`); the deprecated 0 is Gloo's
    // enum default.
    let version = v.collector_endpoint_version.as_ref().map(|ver| {
        (
            match &ver.value {
                raw::EnumValue::Number(n) => match n {
                    0 | 1 => Some(false),
                    2 => Some(true),
                    _ => None,
                },
                raw::EnumValue::Name(s) => match s.as_str() {
                    "DEPRECATED_AND_UNAVAILABLE_DO_NOT_USE" | "HTTP_JSON" => Some(false),
                    "HTTP_PROTO" => Some(true),
                    _ => None,
                },
            },
            ver,
        )
    });
    let http_proto = match version {
        None => false,
        Some((Some(p), _)) => p,
        Some((None, ver)) => {
            let pos = cx.at(ver);
            cx.error(
                pos,
                "tracing.zipkinConfig.collectorEndpointVersion: expected one of HTTP_JSON, HTTP_PROTO",
            );
            return None;
        }
    };
    Some(Some(TracingProvider::Zipkin {
        collector: collector?,
        collector_endpoint: endpoint?,
        trace_id_128bit: v.trace_id_128bit.unwrap_or(false),
        shared_span_context: v.shared_span_context,
        http_proto,
    }))
}

fn open_telemetry(
    cx: &mut Ctx<'_>,
    gw: &Key,
    o: &Spanned<raw::OpenTelemetryConfig>,
    index: &Index<'_>,
) -> Option<Option<TracingProvider>> {
    let at = cx.at(o);
    let v = &o.value;
    let collector = collector(
        cx,
        gw,
        "openTelemetryConfig",
        at,
        &v.collector_upstream_ref,
        &v.cluster_name,
        index,
    )?;
    Some(Some(TracingProvider::OpenTelemetry {
        collector,
        // Gloo's `GetGatewayNameFromParent`: the Gateway's name.
        service_name: v
            .service_name
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| gw.name.clone()),
        authority: v
            .grpc_service
            .as_ref()
            .and_then(|g| g.authority.clone())
            .unwrap_or_default(),
        max_cache_size: v.max_cache_size,
    }))
}

/// Gloo's enterprise-only message (`syncer/extauth/
/// extauth_translator_syncer.go`, `ErrEnterpriseOnly`), for the parts of
/// the extauth API only Gloo Enterprise's own auth service serves.
pub(super) const EXTAUTH_ENTERPRISE_ONLY: &str = "The Gloo Advanced Extauth API is an enterprise-only feature, please upgrade or use the Envoy Extauth API instead";

/// `httpGateway.options.extauth` (Gloo's `GenerateEnvoyConfigForFilter`,
/// `plugins/extauth/config_generator.go`): the server Upstream must exist,
/// `statusOnError` must be a code Envoy's `StatusCode` enum names, and
/// what Envoy's own validation would refuse (header names and values,
/// RE2 regexes, a path prefix not starting with `/`) is refused here so
/// the listener is never NACKed.
pub(super) fn ext_authz(
    cx: &mut Ctx<'_>,
    gw: &Key,
    s: &Spanned<raw::ExtAuthSettings>,
    index: &Index<'_>,
) -> Option<ExtAuthz> {
    let at = cx.at(s);
    let v = &s.value;
    let mut ok = true;
    let server = match &v.extauthz_server_ref {
        None => {
            cx.error(
                at.clone(),
                "extauth: no extauth server reference configured",
            );
            None
        }
        Some(r) => {
            let k = ref_key(&r.value, &gw.namespace);
            if index.upstreams.contains(&k) {
                Some(k)
            } else {
                // Gloo's `NewUpstreamNotFoundErr`.
                let mut d = Diagnostic::error(
                    cx.at(r),
                    Some(cx.id.clone()),
                    format!("extauth.extauthzServerRef: *v1.Upstream {{ {k} }} not found"),
                );
                if let Some(near) = index.suggest.closest(&k, &index.upstreams) {
                    d = d.with_hint(format!("did you mean `{near}`?"));
                }
                cx.diags.push(d);
                None
            }
        }
    };
    if let (Some(_), Some(g)) = (&v.http_service, &v.grpc_service) {
        let pos = cx.at(g);
        cx.error(
            pos,
            "extauth: set only one of httpService and grpcService (a oneof in Gloo's Settings)",
        );
        ok = false;
    }
    let timeout = cx.duration(&v.request_timeout).unwrap_or(Duration {
        seconds: 0,
        nanos: 200_000_000,
    });
    let status_on_error = match &v.status_on_error {
        None | Some(Spanned { value: 0, .. }) => None,
        Some(code) => {
            let known = i32::try_from(code.value).ok().is_some_and(|c| {
                envoy_types::pb::envoy::r#type::v3::StatusCode::try_from(c).is_ok()
            });
            if !known {
                // Gloo's `InvalidStatusOnErrorErr`.
                let pos = cx.at(code);
                cx.error(
                    pos,
                    format!("extauth: invalid statusOnError code: {}", code.value),
                );
                ok = false;
            }
            Some(code.value)
        }
    };
    if let Some(t) = &v.transport_api_version {
        let v3 = matches!(&t.value, raw::EnumValue::Number(0))
            || matches!(&t.value, raw::EnumValue::Name(n) if n == "V3");
        if !v3 {
            let pos = cx.at(t);
            cx.error(
                pos,
                "extauth.transportApiVersion: Gloo's ApiVersion has only V3",
            );
            ok = false;
        }
    }
    let service = match &v.http_service {
        None => ExtAuthzService::Grpc {
            authority: v
                .grpc_service
                .as_ref()
                .and_then(|g| g.value.authority.clone())
                .unwrap_or_default(),
        },
        Some(h) => {
            let pos = cx.at(h);
            let hv = &h.value;
            let prefix = hv.path_prefix.clone().unwrap_or_default();
            let path_prefix = prefix.strip_suffix('/').unwrap_or(&prefix).to_string();
            // Envoy's HTTP ext_authz client refuses a prefix without a
            // leading `/`.
            if !path_prefix.is_empty() && !path_prefix.starts_with('/') {
                cx.error(
                    pos.clone(),
                    format!("extauth.httpService.pathPrefix `{prefix}` must start with `/`"),
                );
                ok = false;
            }
            let req = hv.request.clone().unwrap_or_default();
            let resp = hv.response.clone();
            let names = req
                .allowed_headers
                .iter()
                .chain(req.headers_to_add.keys())
                .chain(resp.iter().flat_map(|r| {
                    r.allowed_upstream_headers
                        .iter()
                        .chain(&r.allowed_client_headers)
                        .chain(&r.allowed_upstream_headers_to_append)
                }));
            for n in names {
                if !super::routes::header_name_ok(n) {
                    cx.error(
                        pos.clone(),
                        format!("extauth.httpService: invalid header name {n:?}"),
                    );
                    ok = false;
                }
            }
            for (k, val) in &req.headers_to_add {
                if !super::routes::header_value_ok(val) {
                    cx.error(
                        pos.clone(),
                        format!(
                            "extauth.httpService.request.headersToAdd: the value of `{k}` holds a NUL, CR or LF"
                        ),
                    );
                    ok = false;
                }
            }
            for re in &req.allowed_headers_regex {
                // The route regex checks, reworded for this field.
                let from = cx.diags.len();
                ok &= super::routes::check_regex(cx, gw, pos.clone(), re);
                let was = format!("virtual service [{gw}] has a regex matcher with ");
                for d in cx.diags.iter_mut().skip(from) {
                    if let Some(rest) = d.message.strip_prefix(&was) {
                        d.message =
                            format!("extauth.httpService.request.allowedHeadersRegex: {rest}");
                    }
                }
            }
            ExtAuthzService::Http {
                path_prefix,
                allowed_headers: req.allowed_headers,
                allowed_headers_regex: req.allowed_headers_regex,
                headers_to_add: req.headers_to_add,
                response: resp.map(|r| ExtAuthzResponse {
                    allowed_upstream_headers: r.allowed_upstream_headers,
                    allowed_client_headers: r.allowed_client_headers,
                    allowed_upstream_headers_to_append: r.allowed_upstream_headers_to_append,
                }),
            }
        }
    };
    let request_body = v.request_body.as_ref().map(|b| {
        (
            // Gloo's `translateRequestBody`: 0 means 4 KiB.
            b.max_request_bytes.filter(|n| *n > 0).unwrap_or(4 * 1024),
            b.allow_partial_message.unwrap_or(false),
            b.pack_as_bytes.unwrap_or(false),
        )
    });
    let server = server?;
    ok.then(|| ExtAuthz {
        server,
        service,
        timeout,
        failure_mode_allow: v.failure_mode_allow.unwrap_or(false),
        request_body,
        clear_route_cache: v.clear_route_cache.unwrap_or(false),
        status_on_error,
        stat_prefix: v.stat_prefix.clone().unwrap_or_default(),
    })
}

/// `extauth` on a virtual host or route (Gloo's `ExtAuthExtension`):
/// `disable` and `customAuth` as open-source Gloo translates them;
/// `configRef` and `customAuth.name` refused with Gloo's enterprise-only
/// message, as its extauth syncer refuses them.
pub(super) fn ext_auth_extension(
    cx: &mut Ctx<'_>,
    e: &Spanned<raw::ExtAuthExtension>,
) -> Option<ExtAuth> {
    let v = &e.value;
    let set = super::count_set(&[
        v.disable.is_some(),
        v.config_ref.is_some(),
        v.custom_auth.is_some(),
    ]);
    if set > 1 {
        let pos = cx.at(e);
        cx.error(
            pos,
            "extauth: set only one of disable, configRef and customAuth (a oneof in Gloo's ExtAuthExtension)",
        );
        return None;
    }
    if let Some(c) = &v.config_ref {
        let pos = cx.at(c);
        cx.error(pos, format!("extauth.configRef: {EXTAUTH_ENTERPRISE_ONLY}"));
        return None;
    }
    if let Some(c) = &v.custom_auth {
        if let Some(n) = &c.value.name {
            let pos = cx.at(n);
            cx.error(
                pos,
                format!("extauth.customAuth.name: {EXTAUTH_ENTERPRISE_ONLY}"),
            );
            return None;
        }
        return Some(ExtAuth::Custom(c.value.context_extensions.clone()));
    }
    Some(if v.disable == Some(true) {
        ExtAuth::Disable
    } else {
        ExtAuth::Other
    })
}

/// Context extensions reach a gRPC auth server only: Envoy's HTTP check
/// request has nowhere to carry them (`websocket-auth.md` §4). Gloo
/// translates them anyway, and so does edgeplane; a VirtualService whose
/// virtual host or routes set some, on a Gateway whose server is an
/// `httpService`, gets a warning saying they are dropped.
pub(super) fn warn_http_context_extensions(
    model: &Model,
    vs_pos: &std::collections::BTreeMap<Key, (crate::diag::Pos, crate::diag::ResourceId)>,
    diags: &mut Vec<Diagnostic>,
) {
    let has = |e: &Option<ExtAuth>| matches!(e, Some(ExtAuth::Custom(m)) if !m.is_empty());
    for gw in model.gateways.values().flat_map(|g| g.http_parts()) {
        let Some(ExtAuthz {
            service: ExtAuthzService::Http { .. },
            ..
        }) = &gw.ext_authz
        else {
            continue;
        };
        for (k, vs) in model.virtual_services.iter().filter(|(_, v)| gw.selects(v)) {
            if !(has(&vs.options.extauth) || vs.routes.iter().any(|r| has(&r.options.extauth))) {
                continue;
            }
            if let Some((p, id)) = vs_pos.get(k) {
                diags.push(Diagnostic::warning(
                    p.clone(),
                    Some(id.clone()),
                    format!(
                        "extauth.customAuth.contextExtensions reach gRPC auth servers only; Gateway {}'s extauth server is an httpService, so they are not sent",
                        gw.key
                    ),
                ));
            }
        }
    }
}
