//! `model::AccessLog` → Envoy's `AccessLog` (`envoy.access_loggers.file`
//! or `envoy.access_loggers.http_grpc`), as Gloo's als plugin builds it
//! (`projects/gloo/pkg/plugins/als/plugin.go` and `converter.go`).
//!
//! A gRPC log (`copyGrpcSettings`) is an `HttpGrpcAccessLogConfig` with
//! the extra headers and trailers to log, and a `common_config` of the log
//! name, an Envoy gRPC client for the cluster, transport API V3 and the
//! filter state objects to log. Gloo uses this HTTP config on the
//! listener and on TCP proxies too, and so does edgeplane.
//!
//! A file log: the file path, the format (a text
//! format, or a JSON format), Gloo's two formatter extensions
//! (`envoy.formatter.req_without_query`, `envoy.formatter.metadata`) on
//! every format so `%REQ_WITHOUT_QUERY(…)%` and `%METADATA(…)%` work, and
//! the filter passed through field for field (Gloo's filter messages are
//! Envoy's).
//!
//! One deliberate difference: Gloo writes the text format into Envoy's
//! deprecated `text_format`; edgeplane writes the same string into
//! `text_format_source.inline_string`, its replacement, so Envoy counts no
//! deprecated field use. Envoy renders both the same way.
//!
//! The JSON format is a `google.protobuf.Struct`, whose generated Rust type
//! holds a `HashMap` and so encodes in a random order. A Listener's bytes
//! must not change from one build to the next (a changed Listener drains
//! connections), so the Struct is encoded here through mirror messages
//! whose maps are sorted: the same wire format, one byte order.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::accesslog::v3::{
    self as al, AccessLogFilter as EnvoyFilter, access_log, access_log_filter,
};
use envoy_types::pb::envoy::config::core::v3::{
    ApiVersion, DataSource, GrpcService, RuntimeUInt32, SubstitutionFormatString,
    TypedExtensionConfig, data_source, grpc_service, substitution_format_string,
};
use envoy_types::pb::envoy::config::route::v3::{HeaderMatcher, header_matcher};
use envoy_types::pb::envoy::extensions::access_loggers::file::v3::{
    FileAccessLog, file_access_log,
};
use envoy_types::pb::envoy::extensions::access_loggers::grpc::v3::{
    CommonGrpcAccessLogConfig, HttpGrpcAccessLogConfig,
};
use envoy_types::pb::envoy::extensions::formatter::metadata::v3::Metadata;
use envoy_types::pb::envoy::extensions::formatter::req_without_query::v3::ReqWithoutQuery;
use envoy_types::pb::envoy::r#type::matcher::v3::RegexMatcher;
use envoy_types::pb::envoy::r#type::v3::{FractionalPercent, Int64Range};
use envoy_types::pb::google::protobuf::Any;
use prost::{Message, Name};

use super::proto::{self, FILE_ACCESS_LOG, HTTP_GRPC_ACCESS_LOG};
use crate::model::{
    AccessLog, AccessLogFilter, Comparison, ComparisonOp, GrpcLog, LogFormat, LogHeaderMatch,
    LogHeaderMatchKind, LogSink, PercentDenominator,
};

/// Envoy's access logs for `logs`, in order.
pub fn access_logs(logs: &[AccessLog]) -> Vec<al::AccessLog> {
    logs.iter().map(access_log).collect()
}

fn access_log(log: &AccessLog) -> al::AccessLog {
    let (name, config) = match &log.sink {
        LogSink::File { path, format } => (FILE_ACCESS_LOG, file_config(path, format.as_ref())),
        LogSink::Grpc(g) => (HTTP_GRPC_ACCESS_LOG, proto::any(grpc_config(g))),
    };
    al::AccessLog {
        name: name.to_string(),
        filter: log.filter.as_ref().map(filter),
        config_type: Some(access_log::ConfigType::TypedConfig(config)),
    }
}

/// Gloo's `copyGrpcSettings`.
fn grpc_config(g: &GrpcLog) -> HttpGrpcAccessLogConfig {
    HttpGrpcAccessLogConfig {
        common_config: Some(CommonGrpcAccessLogConfig {
            log_name: g.log_name.clone(),
            grpc_service: Some(GrpcService {
                target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(
                    grpc_service::EnvoyGrpc {
                        cluster_name: g.cluster.clone(),
                        ..Default::default()
                    },
                )),
                ..Default::default()
            }),
            transport_api_version: ApiVersion::V3 as i32,
            filter_state_objects_to_log: g.filter_state_objects.clone(),
            ..Default::default()
        }),
        additional_request_headers_to_log: g.request_headers.clone(),
        additional_response_headers_to_log: g.response_headers.clone(),
        additional_response_trailers_to_log: g.response_trailers.clone(),
    }
}

/// Gloo's formatter extensions, added to every format it writes.
fn formatters() -> Vec<TypedExtensionConfig> {
    vec![
        TypedExtensionConfig {
            name: "envoy.formatter.req_without_query".to_string(),
            typed_config: Some(proto::any(ReqWithoutQuery {})),
        },
        TypedExtensionConfig {
            name: "envoy.formatter.metadata".to_string(),
            typed_config: Some(proto::any(Metadata {})),
        },
    ]
}

fn file_config(path: &str, format: Option<&LogFormat>) -> Any {
    match format {
        None => proto::any(FileAccessLog {
            path: path.to_string(),
            access_log_format: None,
        }),
        Some(LogFormat::Text(text)) => proto::any(FileAccessLog {
            path: path.to_string(),
            access_log_format: Some(file_access_log::AccessLogFormat::LogFormat(
                SubstitutionFormatString {
                    format: Some(substitution_format_string::Format::TextFormatSource(
                        DataSource {
                            specifier: Some(data_source::Specifier::InlineString(text.clone())),
                            ..Default::default()
                        },
                    )),
                    formatters: formatters(),
                    ..Default::default()
                },
            )),
        }),
        Some(LogFormat::Json(map)) => Any {
            type_url: FileAccessLog::type_url(),
            value: SortedFileAccessLog {
                path: path.to_string(),
                log_format: Some(SortedJsonFormat {
                    json_format: Some(sorted_struct(map)),
                    formatters: formatters(),
                }),
            }
            .encode_to_vec(),
        },
    }
}

fn filter(f: &AccessLogFilter) -> EnvoyFilter {
    use access_log_filter::FilterSpecifier as S;
    let spec = match f {
        AccessLogFilter::StatusCode(c) => S::StatusCodeFilter(al::StatusCodeFilter {
            comparison: Some(comparison(c)),
        }),
        AccessLogFilter::Duration(c) => S::DurationFilter(al::DurationFilter {
            comparison: Some(comparison(c)),
        }),
        AccessLogFilter::NotHealthCheck => S::NotHealthCheckFilter(al::NotHealthCheckFilter {}),
        AccessLogFilter::Traceable => S::TraceableFilter(al::TraceableFilter {}),
        AccessLogFilter::Runtime {
            runtime_key,
            percent,
            use_independent_randomness,
        } => S::RuntimeFilter(al::RuntimeFilter {
            runtime_key: runtime_key.clone(),
            percent_sampled: percent.map(|(numerator, d)| FractionalPercent {
                numerator,
                denominator: denominator(d),
            }),
            use_independent_randomness: *use_independent_randomness,
        }),
        AccessLogFilter::And(list) => S::AndFilter(al::AndFilter {
            filters: list.iter().map(filter).collect(),
        }),
        AccessLogFilter::Or(list) => S::OrFilter(al::OrFilter {
            filters: list.iter().map(filter).collect(),
        }),
        AccessLogFilter::Header(h) => S::HeaderFilter(al::HeaderFilter {
            header: Some(header_matcher(h)),
        }),
        AccessLogFilter::ResponseFlag(flags) => S::ResponseFlagFilter(al::ResponseFlagFilter {
            flags: flags.clone(),
        }),
        AccessLogFilter::GrpcStatus { statuses, exclude } => {
            S::GrpcStatusFilter(al::GrpcStatusFilter {
                // Gloo's status numbers are Envoy's.
                statuses: statuses.iter().map(|s| *s as i32).collect(),
                exclude: *exclude,
            })
        }
    };
    EnvoyFilter {
        filter_specifier: Some(spec),
    }
}

fn comparison(c: &Comparison) -> al::ComparisonFilter {
    use al::comparison_filter::Op;
    al::ComparisonFilter {
        op: (match c.op {
            ComparisonOp::Eq => Op::Eq,
            ComparisonOp::Ge => Op::Ge,
            ComparisonOp::Le => Op::Le,
        }) as i32,
        value: Some(RuntimeUInt32 {
            default_value: c.default,
            runtime_key: c.runtime_key.clone(),
        }),
    }
}

fn denominator(d: PercentDenominator) -> i32 {
    use envoy_types::pb::envoy::r#type::v3::fractional_percent::DenominatorType as D;
    (match d {
        PercentDenominator::Hundred => D::Hundred,
        PercentDenominator::TenThousand => D::TenThousand,
        PercentDenominator::Million => D::Million,
    }) as i32
}

/// The matcher Gloo passes through: the same (deprecated in Envoy, still
/// honoured) specifier fields the user wrote.
#[allow(deprecated)]
fn header_matcher(h: &LogHeaderMatch) -> HeaderMatcher {
    use header_matcher::HeaderMatchSpecifier as M;
    let spec = match &h.kind {
        LogHeaderMatchKind::Exact(s) => M::ExactMatch(s.clone()),
        LogHeaderMatchKind::Regex(re) => M::SafeRegexMatch(RegexMatcher {
            regex: re.clone(),
            ..Default::default()
        }),
        LogHeaderMatchKind::Range { start, end } => M::RangeMatch(Int64Range {
            start: *start,
            end: *end,
        }),
        LogHeaderMatchKind::Present(b) => M::PresentMatch(*b),
        LogHeaderMatchKind::Prefix(s) => M::PrefixMatch(s.clone()),
        LogHeaderMatchKind::Suffix(s) => M::SuffixMatch(s.clone()),
    };
    HeaderMatcher {
        name: h.name.clone(),
        invert_match: h.invert,
        header_match_specifier: Some(spec),
        ..Default::default()
    }
}

// === a FileAccessLog with a JSON format, encoded in one byte order ===

/// `FileAccessLog` with only the fields used here (same tags).
#[derive(Clone, PartialEq, Message)]
struct SortedFileAccessLog {
    #[prost(string, tag = "1")]
    path: String,
    /// `log_format`.
    #[prost(message, optional, tag = "5")]
    log_format: Option<SortedJsonFormat>,
}

/// `SubstitutionFormatString` with `json_format` (tag 2) and `formatters`
/// (tag 6).
#[derive(Clone, PartialEq, Message)]
struct SortedJsonFormat {
    #[prost(message, optional, tag = "2")]
    json_format: Option<SortedStruct>,
    #[prost(message, repeated, tag = "6")]
    formatters: Vec<TypedExtensionConfig>,
}

/// `google.protobuf.Struct` with a sorted map.
#[derive(Clone, PartialEq, Message)]
struct SortedStruct {
    #[prost(btree_map = "string, message", tag = "1")]
    fields: BTreeMap<String, SortedValue>,
}

/// `google.protobuf.Value`.
#[derive(Clone, PartialEq, Message)]
struct SortedValue {
    #[prost(oneof = "Kind", tags = "1, 2, 3, 4, 5, 6")]
    kind: Option<Kind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum Kind {
    /// `NullValue.NULL_VALUE` is 0.
    #[prost(int32, tag = "1")]
    Null(i32),
    #[prost(double, tag = "2")]
    Number(f64),
    #[prost(string, tag = "3")]
    String(String),
    #[prost(bool, tag = "4")]
    Bool(bool),
    #[prost(message, tag = "5")]
    Struct(SortedStruct),
    #[prost(message, tag = "6")]
    List(SortedList),
}

/// `google.protobuf.ListValue`.
#[derive(Clone, PartialEq, Message)]
struct SortedList {
    #[prost(message, repeated, tag = "1")]
    values: Vec<SortedValue>,
}

fn sorted_struct(map: &BTreeMap<String, serde_json::Value>) -> SortedStruct {
    SortedStruct {
        fields: map
            .iter()
            .map(|(k, v)| (k.clone(), sorted_value(v)))
            .collect(),
    }
}

fn sorted_value(v: &serde_json::Value) -> SortedValue {
    use serde_json::Value as J;
    let kind = match v {
        J::Null => Kind::Null(0),
        J::Bool(b) => Kind::Bool(*b),
        J::Number(n) => Kind::Number(n.as_f64().unwrap_or(0.0)),
        J::String(s) => Kind::String(s.clone()),
        J::Array(a) => Kind::List(SortedList {
            values: a.iter().map(sorted_value).collect(),
        }),
        J::Object(m) => Kind::Struct(SortedStruct {
            fields: m
                .iter()
                .map(|(k, v)| (k.clone(), sorted_value(v)))
                .collect(),
        }),
    };
    SortedValue { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::google::protobuf::{Struct, value};

    /// The mirror messages decode as Envoy's own types, nested values
    /// included, and encode the same way every time.
    #[test]
    fn json_format_is_envoys_struct_in_one_order() {
        let json: serde_json::Value = serde_json::json!({
            "b": "%RESPONSE_CODE%", "a": 1.5, "n": null, "t": true,
            "nested": {"z": "%PROTOCOL%", "y": ["%DURATION%", 2]}
        });
        let map: BTreeMap<String, serde_json::Value> = json
            .as_object()
            .expect("object")
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let format = Some(LogFormat::Json(map));
        let any = file_config("/dev/stdout", format.as_ref());
        assert_eq!(any, file_config("/dev/stdout", format.as_ref()));
        let decoded = FileAccessLog::decode(any.value.as_slice()).expect("decodes");
        assert_eq!(decoded.path, "/dev/stdout");
        let Some(file_access_log::AccessLogFormat::LogFormat(sfs)) = decoded.access_log_format
        else {
            panic!("no log_format");
        };
        assert_eq!(sfs.formatters, formatters());
        let Some(substitution_format_string::Format::JsonFormat(s)) = sfs.format else {
            panic!("no json_format");
        };
        let get = |s: &Struct, k: &str| s.fields[k].kind.clone();
        assert_eq!(
            get(&s, "b"),
            Some(value::Kind::StringValue("%RESPONSE_CODE%".into()))
        );
        assert_eq!(get(&s, "a"), Some(value::Kind::NumberValue(1.5)));
        assert_eq!(get(&s, "n"), Some(value::Kind::NullValue(0)));
        assert_eq!(get(&s, "t"), Some(value::Kind::BoolValue(true)));
        let Some(value::Kind::StructValue(nested)) = get(&s, "nested") else {
            panic!("nested is not a struct");
        };
        assert_eq!(
            get(&nested, "z"),
            Some(value::Kind::StringValue("%PROTOCOL%".into()))
        );
        let Some(value::Kind::ListValue(list)) = get(&nested, "y") else {
            panic!("y is not a list");
        };
        assert_eq!(list.values.len(), 2);
    }
}
