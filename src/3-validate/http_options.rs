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
