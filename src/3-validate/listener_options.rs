//! A Gateway's `options` (Gloo's `ListenerOptions`) and
//! `httpGateway.options.connectionLimit` → `model::ListenerOptions` and
//! `model::ConnectionLimit`.
//!
//! The rules and messages are those of Gloo's plugins (`als`, `listener`,
//! `proxyprotocol`, `connection_limit` under `projects/gloo/pkg/plugins/`),
//! plus what Envoy's own validation would refuse, so a Gateway accepted here
//! is never NACKed for its options: access-log format strings are parsed as
//! Envoy parses them (`format.rs`), and every proto constraint Envoy checks
//! (non-empty path, runtime key, header name, TLV type below 256, …) is
//! checked here first. What Gloo has and edgeplane does not implement
//! (`openTelemetryService` logs, `extensions`, `tcpStats`) is refused by
//! name.

use serde_saphyr::Spanned;

use super::format;
use super::gateway::enum_field;
use super::{Ctx, Index};
use crate::diag::Pos;
use crate::manifest::raw;
use crate::model::*;

/// Gloo's `ListenerOptions`; `use_proxy_proto` is the Gateway's
/// `useProxyProto`, which asks for the same PROXY protocol filter.
pub(super) fn listener_options(
    cx: &mut Ctx<'_>,
    options: Option<&raw::ListenerOptions>,
    use_proxy_proto: bool,
    index: &Index<'_>,
) -> ListenerOptions {
    let empty = raw::ListenerOptions::default();
    let o = options.unwrap_or(&empty);
    for (field, v) in [("extensions", &o.extensions), ("tcpStats", &o.tcp_stats)] {
        if let Some(v) = v {
            let pos = cx.at(v);
            cx.error(
                pos,
                format!(
                    "options.{field} is a Gloo feature edgeplane does not implement; the Gateway is rejected rather than served without it"
                ),
            );
        }
    }
    let access_logs = o
        .access_logging_service
        .as_ref()
        .map(|s| access_log_list(cx, "accessLoggingService", s, index))
        .unwrap_or_default();
    let listener_access_logs = o
        .listener_access_logging_service
        .as_ref()
        .map(|s| access_log_list(cx, "listenerAccessLoggingService", s, index))
        .unwrap_or_default();
    // Gloo's listener plugin: 0 means "Envoy's default", so nothing is set.
    let per_connection_buffer_limit_bytes = o
        .per_connection_buffer_limit_bytes
        .as_ref()
        .map(|v| v.value)
        .filter(|v| *v != 0);
    let socket_options = o
        .socket_options
        .iter()
        .enumerate()
        .filter_map(|(i, s)| socket_option(cx, i, s))
        .collect();
    // Gloo's proxyprotocol plugin adds the filter for either field; the
    // options, when given, configure it.
    let proxy_protocol = match &o.proxy_protocol {
        Some(p) => proxy_protocol(cx, p),
        None => use_proxy_proto.then(ProxyProtocol::default),
    };
    let exact_balance = match &o.connection_balance_config {
        None => false,
        Some(c) if c.value.exact_balance.is_some() => true,
        Some(c) => {
            let pos = cx.at(c);
            // Gloo's listener plugin's message.
            cx.error(
                pos,
                "options.connectionBalanceConfig: connection balancer does not specify balancer type (set exactBalance: {})",
            );
            false
        }
    };
    ListenerOptions {
        access_logs,
        listener_access_logs,
        per_connection_buffer_limit_bytes,
        socket_options,
        proxy_protocol,
        exact_balance,
    }
}

/// `httpGateway.options.connectionLimit`: no limit without
/// `maxActiveConnections` (as Gloo: no filter), and at least 1.
pub(super) fn connection_limit(
    cx: &mut Ctx<'_>,
    c: &Spanned<raw::ConnectionLimit>,
) -> Option<ConnectionLimit> {
    let delay = cx.duration(&c.value.delay_before_close);
    let max = c.value.max_active_connections.as_ref()?;
    if max.value < 1 {
        let pos = cx.at(max);
        cx.error(
            pos,
            format!(
                "connectionLimit: MaxActiveConnections must be greater than or equal to 1. Current value : {}",
                max.value
            ),
        );
        return None;
    }
    Some(ConnectionLimit {
        max: max.value,
        delay,
    })
}

// === access logs ===

fn access_log_list(
    cx: &mut Ctx<'_>,
    field: &str,
    svc: &raw::AccessLoggingService,
    index: &Index<'_>,
) -> Vec<AccessLog> {
    let mut out = Vec::new();
    for (i, al) in svc.access_log.iter().enumerate() {
        let label = format!("options.{field}.accessLog[{i}]");
        let pos = cx.at(al);
        let v = &al.value;
        if let Some(s) = &v.open_telemetry_service {
            let at = cx.at(s);
            cx.error(
                at,
                format!(
                    "{label}.openTelemetryService (OpenTelemetry access log service) is a Gloo feature edgeplane does not implement; the Gateway is rejected rather than served without it (use fileSink or grpcService)"
                ),
            );
        }
        let filter = v
            .filter
            .as_ref()
            .and_then(|f| access_log_filter(cx, &format!("{label}.filter"), f));
        // Gloo's `OutputDestination` is a oneof: one output per entry.
        let outputs = [
            v.file_sink.is_some(),
            v.grpc_service.is_some(),
            v.open_telemetry_service.is_some(),
        ];
        match outputs.iter().filter(|o| **o).count() {
            0 => {
                cx.error(
                    pos,
                    format!("{label} has no output: set fileSink or grpcService"),
                );
                continue;
            }
            1 => {}
            _ => {
                cx.error(
                    pos,
                    format!(
                        "{label} sets more than one output (fileSink, grpcService, openTelemetryService are a oneof): use one entry per output"
                    ),
                );
                continue;
            }
        }
        let sink = match (&v.file_sink, &v.grpc_service) {
            (Some(f), _) => file_sink(cx, &label, f),
            (_, Some(g)) => grpc_service(cx, &label, g, index),
            _ => None,
        };
        if let Some(sink) = sink {
            out.push(AccessLog { sink, filter });
        }
    }
    out
}

/// `grpcService` as Gloo's als plugin copies it (`copyGrpcSettings`):
/// Envoy's `HttpGrpcAccessLogConfig`, whose proto rules Gloo checks
/// (`cfg.Validate()`) and whose messages are quoted here. `staticClusterName`
/// must name a cluster edgeplane serves (an Upstream's `<name>_<namespace>`):
/// Envoy accepts a logger for a cluster it does not have and then drops
/// every entry.
fn grpc_service(
    cx: &mut Ctx<'_>,
    label: &str,
    g: &Spanned<raw::GrpcService>,
    index: &Index<'_>,
) -> Option<LogSink> {
    let at = cx.at(g);
    let s = &g.value;
    let log_name = match &s.log_name {
        Some(n) if !n.value.is_empty() => Some(n.value.clone()),
        other => {
            let pos = other.as_ref().map_or(at.clone(), |n| cx.at(n));
            cx.error(
                pos,
                format!(
                    "{label}.grpcService.logName: invalid HttpGrpcAccessLogConfig.CommonConfig: embedded message failed validation | caused by: invalid CommonGrpcAccessLogConfig.LogName: value length must be at least 1 runes"
                ),
            );
            None
        }
    };
    let cluster = match &s.static_cluster_name {
        Some(c) if !c.value.is_empty() => {
            let pos = cx.at(c);
            served_cluster(cx, pos, label, &c.value, index)
        }
        other => {
            let pos = other.as_ref().map_or(at, |c| cx.at(c));
            cx.error(
                pos,
                format!(
                    "{label}.grpcService.staticClusterName: invalid HttpGrpcAccessLogConfig.CommonConfig: embedded message failed validation | caused by: invalid CommonGrpcAccessLogConfig.GrpcService: embedded message failed validation | caused by: invalid GrpcService.EnvoyGrpc: embedded message failed validation | caused by: invalid GrpcService_EnvoyGrpc.ClusterName: value length must be at least 1 runes (name the Upstream's cluster, `<name>_<namespace>`)"
                ),
            );
            None
        }
    };
    Some(LogSink::Grpc(GrpcLog {
        log_name: log_name?,
        cluster: cluster?,
        request_headers: s.additional_request_headers_to_log.clone(),
        response_headers: s.additional_response_headers_to_log.clone(),
        response_trailers: s.additional_response_trailers_to_log.clone(),
        filter_state_objects: s.filter_state_objects_to_log.clone(),
    }))
}

/// `name` if it is the cluster of an Upstream (`<name>_<namespace>`), else
/// an error with the closest Upstream's cluster as a hint.
fn served_cluster(
    cx: &mut Ctx<'_>,
    pos: Pos,
    label: &str,
    name: &str,
    index: &Index<'_>,
) -> Option<String> {
    if index.upstreams.iter().any(|k| upstream_cluster(k) == name) {
        return Some(name.to_string());
    }
    let mut msg = format!(
        "{label}.grpcService.staticClusterName: cluster `{name}` is not one edgeplane serves: name an Upstream's cluster, `<name>_<namespace>` (Envoy would accept the logger and drop every entry)"
    );
    // Upstream names and namespaces have no `_`: the first one splits.
    if let Some((n, ns)) = name.split_once('_')
        && let Some(near) = index.suggest.closest(&Key::new(ns, n), &index.upstreams)
    {
        msg.push_str(&format!("; did you mean `{}`?", upstream_cluster(near)));
    }
    cx.error(pos, msg);
    None
}

/// An Upstream's cluster name (Gloo's `<name>_<namespace>`).
pub(super) fn upstream_cluster(k: &Key) -> String {
    k.upstream_cluster_name()
}

fn file_sink(cx: &mut Ctx<'_>, label: &str, sink: &Spanned<raw::FileSink>) -> Option<LogSink> {
    let at = cx.at(sink);
    let s = &sink.value;
    let path = match &s.path {
        Some(p) if !p.value.trim().is_empty() => Some(p.value.clone()),
        Some(p) => {
            let pos = cx.at(p);
            cx.error(
                pos,
                format!("{label}.fileSink.path is empty: Envoy needs the file to write"),
            );
            None
        }
        None => {
            cx.error(
                at.clone(),
                format!("{label}.fileSink.path is missing: Envoy needs the file to write"),
            );
            None
        }
    };
    let format = match (&s.string_format, &s.json_format) {
        (Some(_), Some(j)) => {
            let pos = cx.at(j);
            cx.error(
                pos,
                format!("{label}.fileSink: set only one of stringFormat and jsonFormat"),
            );
            None
        }
        // Gloo sets no format for an empty string: Envoy's default line.
        (Some(t), None) if t.value.is_empty() => None,
        (Some(t), None) => {
            let pos = cx.at(t);
            match format::check(&t.value) {
                Ok(()) => Some(LogFormat::Text(t.value.clone())),
                Err(e) => {
                    cx.error(pos, format!("{label}.fileSink.stringFormat: {e}"));
                    None
                }
            }
        }
        (None, Some(j)) => json_format(cx, label, j),
        (None, None) => None,
    };
    Some(LogSink::File {
        path: path?,
        format,
    })
}

/// `jsonFormat`: an object; every string in it (at any depth) is a format
/// string Envoy parses.
fn json_format(cx: &mut Ctx<'_>, label: &str, j: &Spanned<serde_json::Value>) -> Option<LogFormat> {
    let pos = cx.at(j);
    let serde_json::Value::Object(map) = &j.value else {
        cx.error(
            pos,
            format!("{label}.fileSink.jsonFormat must be an object of log keys to format strings"),
        );
        return None;
    };
    let mut ok = true;
    let mut stack: Vec<(String, &serde_json::Value)> =
        map.iter().map(|(k, v)| (k.clone(), v)).collect();
    while let Some((key, v)) = stack.pop() {
        match v {
            serde_json::Value::String(s) => {
                if let Err(e) = format::check(s) {
                    cx.error(
                        pos.clone(),
                        format!("{label}.fileSink.jsonFormat.{key}: {e}"),
                    );
                    ok = false;
                }
            }
            serde_json::Value::Object(m) => {
                stack.extend(m.iter().map(|(k, v)| (format!("{key}.{k}"), v)));
            }
            serde_json::Value::Array(a) => {
                stack.extend(
                    a.iter()
                        .enumerate()
                        .map(|(i, v)| (format!("{key}[{i}]"), v)),
                );
            }
            _ => {}
        }
    }
    ok.then(|| LogFormat::Json(map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()))
}

/// Gloo's `AccessLogFilter`: exactly one filter, checked as Gloo's als
/// plugin (`validateFilterEnums`) and Envoy's proto rules check it.
fn access_log_filter(
    cx: &mut Ctx<'_>,
    label: &str,
    f: &Spanned<raw::AccessLogFilter>,
) -> Option<AccessLogFilter> {
    let pos = cx.at(f);
    let v = &f.value;
    let set: Vec<&str> = [
        ("statusCodeFilter", v.status_code_filter.is_some()),
        ("durationFilter", v.duration_filter.is_some()),
        ("notHealthCheckFilter", v.not_health_check_filter.is_some()),
        ("traceableFilter", v.traceable_filter.is_some()),
        ("runtimeFilter", v.runtime_filter.is_some()),
        ("andFilter", v.and_filter.is_some()),
        ("orFilter", v.or_filter.is_some()),
        ("headerFilter", v.header_filter.is_some()),
        ("responseFlagFilter", v.response_flag_filter.is_some()),
        ("grpcStatusFilter", v.grpc_status_filter.is_some()),
    ]
    .into_iter()
    .filter_map(|(n, s)| s.then_some(n))
    .collect();
    match set.as_slice() {
        [] => {
            cx.error(
                pos,
                format!("{label} sets no filter: give one of statusCodeFilter, durationFilter, notHealthCheckFilter, traceableFilter, runtimeFilter, andFilter, orFilter, headerFilter, responseFlagFilter, grpcStatusFilter"),
            );
            return None;
        }
        [_] => {}
        many => {
            cx.error(
                pos,
                format!(
                    "{label} sets {}: a filter is exactly one of them (combine them with andFilter or orFilter)",
                    many.join(" and ")
                ),
            );
            return None;
        }
    }
    if let Some(c) = &v.status_code_filter {
        return comparison(cx, &pos, label, "StatusCodeFilter", c).map(AccessLogFilter::StatusCode);
    }
    if let Some(c) = &v.duration_filter {
        return comparison(cx, &pos, label, "DurationFilter", c).map(AccessLogFilter::Duration);
    }
    if v.not_health_check_filter.is_some() {
        return Some(AccessLogFilter::NotHealthCheck);
    }
    if v.traceable_filter.is_some() {
        return Some(AccessLogFilter::Traceable);
    }
    if let Some(r) = &v.runtime_filter {
        return runtime_filter(cx, &pos, label, r);
    }
    if let Some(l) = &v.and_filter {
        return filter_list(cx, &pos, &format!("{label}.andFilter"), l).map(AccessLogFilter::And);
    }
    if let Some(l) = &v.or_filter {
        return filter_list(cx, &pos, &format!("{label}.orFilter"), l).map(AccessLogFilter::Or);
    }
    if let Some(h) = &v.header_filter {
        return header_filter(cx, &pos, label, h).map(AccessLogFilter::Header);
    }
    if let Some(r) = &v.response_flag_filter {
        return response_flags(cx, &pos, label, r).map(AccessLogFilter::ResponseFlag);
    }
    if let Some(g) = &v.grpc_status_filter {
        return grpc_status(cx, label, g);
    }
    None
}

/// An enum of an access log filter, refused in the words of Gloo's als
/// converter (`projects/gloo/pkg/plugins/als/converter.go`,
/// `InvalidEnumValueError`), after edgeplane's path to the field.
fn als_enum<T: Copy>(
    cx: &mut Ctx<'_>,
    path: &str,
    (filter, field): (&str, &str),
    v: &Option<Spanned<raw::EnumValue>>,
    values: &[(T, &str)],
) -> Option<T> {
    let v = v.as_ref()?;
    let found = match &v.value {
        raw::EnumValue::Number(n) => usize::try_from(*n).ok().and_then(|i| values.get(i)),
        raw::EnumValue::Name(s) => values.iter().find(|(_, name)| name == s),
    };
    if let Some((value, _)) = found {
        return Some(*value);
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
            "{path}: Invalid value of {shown} in Enum field {field} of {filter}; expected one of {}",
            names.join(", ")
        ),
    );
    None
}

fn comparison(
    cx: &mut Ctx<'_>,
    pos: &Pos,
    label: &str,
    filter: &str,
    c: &raw::ComparisonFilterHolder,
) -> Option<Comparison> {
    let field = if filter == "StatusCodeFilter" {
        "statusCodeFilter"
    } else {
        "durationFilter"
    };
    let Some(cmp) = &c.comparison else {
        cx.error(
            pos.clone(),
            format!("{label}.{field}.comparison is missing (op and value)"),
        );
        return None;
    };
    let op = match &cmp.op {
        None => Some(ComparisonOp::Eq),
        Some(_) => als_enum(
            cx,
            &format!("{label}.{field}.comparison.op"),
            (filter, "ComparisonFilter.Op"),
            &cmp.op,
            &[
                (ComparisonOp::Eq, "EQ"),
                (ComparisonOp::Ge, "GE"),
                (ComparisonOp::Le, "LE"),
            ],
        ),
    };
    // Gloo's messages (its als converter's NoValueError).
    let Some(value) = &cmp.value else {
        cx.error(
            pos.clone(),
            format!("{label}: No value found for field ComparisonFilter.Value of {filter}"),
        );
        return None;
    };
    let runtime_key = value.runtime_key.clone().unwrap_or_default();
    if runtime_key.is_empty() {
        cx.error(
            pos.clone(),
            format!(
                "{label}: No value found for field ComparisonFilter.Value.RuntimeKey of {filter} (Gloo requires one; any name will do, e.g. access_log.{field})"
            ),
        );
        return None;
    }
    Some(Comparison {
        op: op?,
        default: value.default_value.unwrap_or(0),
        runtime_key,
    })
}

fn runtime_filter(
    cx: &mut Ctx<'_>,
    pos: &Pos,
    label: &str,
    r: &raw::RuntimeFilter,
) -> Option<AccessLogFilter> {
    let runtime_key = r.runtime_key.clone().unwrap_or_default();
    if runtime_key.is_empty() {
        cx.error(
            pos.clone(),
            format!(
                "{label}: No value found for field FractionalPercent.RuntimeKey of RuntimeFilter"
            ),
        );
        return None;
    }
    let percent = match &r.percent_sampled {
        None => None,
        Some(p) => {
            let denominator = match &p.denominator {
                None => PercentDenominator::Hundred,
                Some(_) => als_enum(
                    cx,
                    &format!("{label}.runtimeFilter.percentSampled.denominator"),
                    ("RuntimeFilter", "FractionalPercent.Denominator"),
                    &p.denominator,
                    &[
                        (PercentDenominator::Hundred, "HUNDRED"),
                        (PercentDenominator::TenThousand, "TEN_THOUSAND"),
                        (PercentDenominator::Million, "MILLION"),
                    ],
                )?,
            };
            Some((p.numerator, denominator))
        }
    };
    Some(AccessLogFilter::Runtime {
        runtime_key,
        percent,
        use_independent_randomness: r.use_independent_randomness.unwrap_or(false),
    })
}

fn filter_list(
    cx: &mut Ctx<'_>,
    pos: &Pos,
    label: &str,
    l: &raw::FilterList,
) -> Option<Vec<AccessLogFilter>> {
    if l.filters.len() < 2 {
        cx.error(
            pos.clone(),
            format!("{label}.filters needs at least 2 filters"),
        );
        return None;
    }
    let mut out = Vec::new();
    let mut ok = true;
    for (i, f) in l.filters.iter().enumerate() {
        match access_log_filter(cx, &format!("{label}.filters[{i}]"), f) {
            Some(f) => out.push(f),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn header_filter(
    cx: &mut Ctx<'_>,
    pos: &Pos,
    label: &str,
    h: &raw::HeaderFilter,
) -> Option<LogHeaderMatch> {
    let label = format!("{label}.headerFilter.header");
    let Some(m) = &h.header else {
        cx.error(pos.clone(), format!("{label} is missing"));
        return None;
    };
    let name = m.name.clone().unwrap_or_default();
    if !super::routes::header_name_ok(&name) {
        cx.error(
            pos.clone(),
            format!("{label}.name must be a header name (non-empty, no control characters)"),
        );
        return None;
    }
    let mut kinds: Vec<LogHeaderMatchKind> = Vec::new();
    if let Some(s) = &m.exact_match {
        kinds.push(LogHeaderMatchKind::Exact(s.clone()));
    }
    if let Some(r) = &m.safe_regex_match {
        let re = r.regex.clone();
        if let Err(e) = check_re2(&re) {
            cx.error(pos.clone(), format!("{label}.safeRegexMatch: {e}"));
            return None;
        }
        kinds.push(LogHeaderMatchKind::Regex(re));
    }
    if let Some(r) = &m.range_match {
        kinds.push(LogHeaderMatchKind::Range {
            start: r.start.unwrap_or(0),
            end: r.end.unwrap_or(0),
        });
    }
    if let Some(b) = m.present_match {
        kinds.push(LogHeaderMatchKind::Present(b));
    }
    for (field, v, make) in [
        (
            "prefixMatch",
            &m.prefix_match,
            LogHeaderMatchKind::Prefix as fn(String) -> LogHeaderMatchKind,
        ),
        ("suffixMatch", &m.suffix_match, LogHeaderMatchKind::Suffix),
    ] {
        if let Some(s) = v {
            if s.is_empty() {
                // Envoy's rule: an empty prefix or suffix is refused.
                cx.error(
                    pos.clone(),
                    format!("{label}.{field} is empty (use presentMatch: true to match any value)"),
                );
                return None;
            }
            kinds.push(make(s.clone()));
        }
    }
    let kind = match kinds.len() {
        0 => {
            cx.error(
                pos.clone(),
                format!("{label} has no match: set one of exactMatch, safeRegexMatch, rangeMatch, presentMatch, prefixMatch, suffixMatch"),
            );
            return None;
        }
        1 => kinds.pop()?,
        _ => {
            cx.error(
                pos.clone(),
                format!("{label} sets more than one of exactMatch, safeRegexMatch, rangeMatch, presentMatch, prefixMatch, suffixMatch"),
            );
            return None;
        }
    };
    Some(LogHeaderMatch {
        name,
        kind,
        invert: m.invert_match.unwrap_or(false),
    })
}

/// RE2 (Envoy's engine) as the route matchers check it: the `regex`
/// crate's syntax, and RE2's repetition limit.
fn check_re2(re: &str) -> Result<(), String> {
    if re.is_empty() {
        return Err("regex is empty".into());
    }
    if let Some(n) = super::routes::re2_repetition_over_limit(re) {
        return Err(format!(
            "invalid regex, bad repetition operator: {{{n}}} (RE2 allows at most 1000)"
        ));
    }
    regex::Regex::new(re).map(|_| ()).map_err(|e| {
        let text = e.to_string();
        format!(
            "invalid regex, {}",
            text.lines().last().unwrap_or("").trim()
        )
    })
}

/// The response flags Gloo's `ResponseFlagFilter` accepts (its proto's
/// `in` rule, `projects/gloo/api/v1/options/als/als.proto`); Envoy accepts
/// each of them.
const RESPONSE_FLAGS: [&str; 26] = [
    "LH", "UH", "UT", "LR", "UR", "UF", "UC", "UO", "NR", "DI", "FI", "RL", "UAEX", "RLSE", "DC",
    "URX", "SI", "IH", "DPE", "UMSDR", "RFCF", "NFCF", "DT", "UPE", "NC", "OM",
];

fn response_flags(
    cx: &mut Ctx<'_>,
    pos: &Pos,
    label: &str,
    r: &raw::ResponseFlagFilter,
) -> Option<Vec<String>> {
    let bad: Vec<&str> = r
        .flags
        .iter()
        .map(String::as_str)
        .filter(|f| !RESPONSE_FLAGS.contains(f))
        .collect();
    if !bad.is_empty() {
        cx.error(
            pos.clone(),
            format!(
                "{label}.responseFlagFilter.flags: unknown flag {}; expected some of {}",
                bad.join(", "),
                RESPONSE_FLAGS.join(", ")
            ),
        );
        return None;
    }
    Some(r.flags.clone())
}

/// Gloo's (and Envoy's) gRPC status names, in their enum's order.
const GRPC_STATUSES: [&str; 17] = [
    "OK",
    "CANCELED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

fn grpc_status(
    cx: &mut Ctx<'_>,
    label: &str,
    g: &raw::GrpcStatusFilter,
) -> Option<AccessLogFilter> {
    let values: Vec<(u32, &str)> = GRPC_STATUSES
        .iter()
        .enumerate()
        .map(|(i, n)| (i as u32, *n))
        .collect();
    let mut statuses = Vec::new();
    let mut ok = true;
    for s in &g.statuses {
        match als_enum(
            cx,
            &format!("{label}.grpcStatusFilter.statuses"),
            ("GrpcStatusFilter", "Status"),
            &Some(s.clone()),
            &values,
        ) {
            Some(n) => statuses.push(n),
            None => ok = false,
        }
    }
    ok.then_some(AccessLogFilter::GrpcStatus {
        statuses,
        exclude: g.exclude.unwrap_or(false),
    })
}

// === listener fields ===

fn socket_option(
    cx: &mut Ctx<'_>,
    i: usize,
    s: &Spanned<raw::SocketOption>,
) -> Option<SocketOption> {
    let pos = cx.at(s);
    let label = format!("options.socketOptions[{i}]");
    let v = &s.value;
    let state = match &v.state {
        None => Some(SocketState::Prebind),
        Some(_) => enum_field(
            cx,
            &format!("{label}.state"),
            &v.state,
            &[
                (SocketState::Prebind, "STATE_PREBIND"),
                (SocketState::Bound, "STATE_BOUND"),
                (SocketState::Listening, "STATE_LISTENING"),
            ],
        ),
    };
    let value = match (v.int_value, &v.buf_value) {
        (Some(n), None) => Some(SocketValue::Int(n)),
        (None, Some(b)) => match base64_decode(&b.value) {
            Some(bytes) => Some(SocketValue::Buf(bytes)),
            None => {
                let at = cx.at(b);
                cx.error(
                    at,
                    format!("{label}.bufValue is not base64 (proto JSON bytes)"),
                );
                None
            }
        },
        (Some(_), Some(_)) => {
            cx.error(
                pos,
                format!("{label}: set only one of intValue and bufValue"),
            );
            None
        }
        (None, None) => {
            // Envoy requires a value (its `value` oneof is required).
            cx.error(
                pos,
                format!("{label} has no value: set intValue or bufValue"),
            );
            None
        }
    };
    Some(SocketOption {
        description: v.description.clone().unwrap_or_default(),
        level: v.level.unwrap_or(0),
        name: v.name.unwrap_or(0),
        value: value?,
        state: state?,
    })
}

fn proxy_protocol(cx: &mut Ctx<'_>, p: &Spanned<raw::ProxyProtocol>) -> Option<ProxyProtocol> {
    let mut rules = Vec::new();
    let mut ok = true;
    for (i, r) in p.value.rules.iter().enumerate() {
        let pos = cx.at(r);
        let label = format!("options.proxyProtocol.rules[{i}]");
        let tlv = r.value.tlv_type.unwrap_or(0);
        if tlv > 255 {
            cx.error(
                pos.clone(),
                format!("{label}.tlvType {tlv} is not a TLV type (0-255)"),
            );
            ok = false;
        }
        match &r.value.on_tlv_present {
            Some(kv) if kv.key.as_deref().is_some_and(|k| !k.is_empty()) => rules.push((
                tlv,
                kv.metadata_namespace.clone().unwrap_or_default(),
                kv.key.clone().unwrap_or_default(),
            )),
            _ => {
                cx.error(
                    pos,
                    format!(
                        "{label}.onTlvPresent.key is missing: the metadata key the TLV is copied to"
                    ),
                );
                ok = false;
            }
        }
    }
    ok.then(|| ProxyProtocol {
        rules,
        allow_requests_without_proxy_protocol: p
            .value
            .allow_requests_without_proxy_protocol
            .unwrap_or(false),
    })
}

/// Standard base64 (with or without padding) as proto JSON writes bytes;
/// the URL-safe alphabet is accepted too, as protobuf's JSON parsers do.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut acc: u32 = 0;
    let mut bits = 0;
    let body = s.trim_end_matches('=');
    for c in body.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // A lone 6-bit group cannot end a base64 text.
    (bits < 6).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::base64_decode;

    #[test]
    fn base64_as_proto_json_writes_bytes() {
        assert_eq!(
            base64_decode("AQAAAA==").as_deref(),
            Some(&[1u8, 0, 0, 0][..])
        );
        assert_eq!(base64_decode("aGk").as_deref(), Some(&b"hi"[..]));
        assert_eq!(base64_decode("").as_deref(), Some(&[][..]));
        assert_eq!(base64_decode("a"), None);
        assert_eq!(base64_decode("a*b="), None);
    }
}
