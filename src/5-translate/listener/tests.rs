//! Gateway `options` (Gloo's `ListenerOptions`) and
//! `httpGateway.options.connectionLimit`: the Envoy protos Gloo's plugins
//! build, checked on whole manifests through the pure pipeline. The
//! expected shapes are those of Gloo's `projects/gloo/pkg/plugins/als/`
//! (`plugin.go`, `converter.go`; `grpcService` after
//! `projects/gloo/api/v1/options/als/als.proto`), `listener/plugin.go`,
//! `proxyprotocol/plugin.go` and `connection_limit/plugin.go`.

use std::path::PathBuf;

use envoy_types::pb::envoy::config::accesslog::v3::{access_log, access_log_filter};
use envoy_types::pb::envoy::config::core::v3::{
    data_source, socket_option, substitution_format_string,
};
use envoy_types::pb::envoy::config::listener::v3::{
    Listener, filter, listener::connection_balance_config, listener_filter,
};
use envoy_types::pb::envoy::extensions::access_loggers::file::v3::{
    FileAccessLog, file_access_log,
};
use envoy_types::pb::envoy::extensions::filters::listener::proxy_protocol::v3::ProxyProtocol;
use envoy_types::pb::envoy::extensions::filters::network::connection_limit::v3::ConnectionLimit;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use prost::Message;

use crate::pipeline::{Load, build};
use crate::source::SourceFile;

fn load(docs: &[&str]) -> Load {
    let files = docs
        .iter()
        .enumerate()
        .map(|(i, text)| SourceFile {
            path: PathBuf::from(format!("m{i}.yaml")),
            text: text.to_string(),
        })
        .collect();
    build(files, Vec::new())
}

/// A Gateway with `options` and `httpGateway` given as YAML flow text.
fn gateway(options: &str, http: &str) -> String {
    format!(
        "apiVersion: gateway.solo.io/v1\nkind: Gateway\nmetadata: {{name: gw, namespace: gloo-system}}\nspec:\n  bindAddress: '::'\n  bindPort: 8080\n  options: {options}\n  httpGateway: {http}\n"
    )
}

const REST: [&str; 2] = [
    "apiVersion: gloo.solo.io/v1\nkind: Upstream\nmetadata: {name: echo, namespace: gloo-system}\nspec: {static: {hosts: [{addr: 127.0.0.1, port: 8081}]}}\n",
    "apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata: {name: web, namespace: apps}\nspec:\n  virtualHost:\n    domains: ['*']\n    routes: [{matchers: [{prefix: /}], routeAction: {single: {upstream: {name: echo, namespace: gloo-system}}}}]\n",
];

fn listener(options: &str, http: &str) -> Listener {
    let gw = gateway(options, http);
    let l = load(&[&gw, REST[0], REST[1]]);
    assert!(!l.has_errors(), "{}", l.render_diagnostics());
    let out = l.output.as_ref().expect("valid config");
    out["gloo-system~gateway-proxy"].listeners[0].clone()
}

fn typed<M: Message + Default>(f: &filter::ConfigType) -> M {
    let filter::ConfigType::TypedConfig(any) = f else {
        panic!("not a typed config");
    };
    M::decode(any.value.as_slice()).expect("decodes")
}

fn hcm(l: &Listener) -> HttpConnectionManager {
    let chain = &l.filter_chains[0];
    let f = chain.filters.last().expect("a filter");
    assert_eq!(f.name, "envoy.filters.network.http_connection_manager");
    typed(f.config_type.as_ref().expect("config"))
}

fn errors(docs: &[&str]) -> Vec<String> {
    let l = load(docs);
    l.diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.message.clone())
        .collect()
}

/// `accessLoggingService` goes on the HTTP connection manager (Gloo's als
/// plugin, `ProcessHcmNetworkFilter`): one `envoy.access_loggers.file` per
/// entry, Gloo's two formatter extensions on each format, the filter as
/// given.
#[test]
fn access_logs_on_the_connection_manager() {
    let l = listener(
        "{accessLoggingService: {accessLog: [
            {fileSink: {path: /dev/stdout, stringFormat: \"%REQ(:METHOD)% %RESPONSE_CODE%\\n\"},
             filter: {statusCodeFilter: {comparison: {op: GE, value: {defaultValue: 400, runtimeKey: al.min}}}}},
            {fileSink: {path: /tmp/a.json, jsonFormat: {code: '%RESPONSE_CODE%', path: '%REQ(:PATH)%'}}},
            {fileSink: {path: /tmp/default.log}}]}}",
        "{}",
    );
    assert!(l.access_log.is_empty(), "nothing on the listener itself");
    let logs = hcm(&l).access_log;
    assert_eq!(logs.len(), 3);
    let files: Vec<FileAccessLog> = logs
        .iter()
        .map(|a| {
            assert_eq!(a.name, "envoy.access_loggers.file");
            let Some(access_log::ConfigType::TypedConfig(any)) = &a.config_type else {
                panic!("no typed config");
            };
            FileAccessLog::decode(any.value.as_slice()).expect("FileAccessLog")
        })
        .collect();
    assert_eq!(files[0].path, "/dev/stdout");
    let Some(file_access_log::AccessLogFormat::LogFormat(text)) = &files[0].access_log_format
    else {
        panic!("no log_format");
    };
    let Some(substitution_format_string::Format::TextFormatSource(src)) = &text.format else {
        panic!("not a text format");
    };
    assert_eq!(
        src.specifier,
        Some(data_source::Specifier::InlineString(
            "%REQ(:METHOD)% %RESPONSE_CODE%\n".into()
        ))
    );
    let names: Vec<&str> = text.formatters.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "envoy.formatter.req_without_query",
            "envoy.formatter.metadata"
        ]
    );
    let Some(access_log_filter::FilterSpecifier::StatusCodeFilter(sc)) = logs[0]
        .filter
        .as_ref()
        .and_then(|f| f.filter_specifier.clone())
    else {
        panic!("no status code filter");
    };
    let cmp = sc.comparison.expect("comparison");
    assert_eq!(cmp.op, 1, "GE");
    let v = cmp.value.expect("value");
    assert_eq!((v.default_value, v.runtime_key.as_str()), (400, "al.min"));

    let Some(file_access_log::AccessLogFormat::LogFormat(json)) = &files[1].access_log_format
    else {
        panic!("no log_format");
    };
    let Some(substitution_format_string::Format::JsonFormat(s)) = &json.format else {
        panic!("not a JSON format");
    };
    let mut keys: Vec<&String> = s.fields.keys().collect();
    keys.sort();
    assert_eq!(keys, ["code", "path"]);
    assert_eq!(json.formatters.len(), 2);
    // No format: Envoy's default line, as Gloo leaves it.
    assert_eq!(files[2].access_log_format, None);
}

/// `listenerAccessLoggingService` goes on the Listener (Gloo's als plugin,
/// `ProcessListener`); and/or/header/response-flag filters pass through.
#[test]
fn listener_access_logs_and_composite_filters() {
    let l = listener(
        "{listenerAccessLoggingService: {accessLog: [{fileSink: {path: /dev/stdout, stringFormat: 'x'},
           filter: {orFilter: {filters: [
             {andFilter: {filters: [{notHealthCheckFilter: {}}, {durationFilter: {comparison: {op: LE, value: {defaultValue: 5, runtimeKey: k}}}}]}},
             {headerFilter: {header: {name: x-debug, exactMatch: '1', invertMatch: true}}},
             {responseFlagFilter: {flags: [UH, NR]}},
             {grpcStatusFilter: {statuses: [UNAVAILABLE, 4], exclude: true}},
             {runtimeFilter: {runtimeKey: r, percentSampled: {numerator: 5, denominator: TEN_THOUSAND}}},
             {traceableFilter: {}}]}}}]}}",
        "{}",
    );
    assert!(hcm(&l).access_log.is_empty());
    assert_eq!(l.access_log.len(), 1);
    let f = l.access_log[0].filter.clone().expect("filter");
    let Some(access_log_filter::FilterSpecifier::OrFilter(or)) = f.filter_specifier else {
        panic!("not an or filter");
    };
    let kinds: Vec<&'static str> = or
        .filters
        .iter()
        .map(|f| match f.filter_specifier.as_ref().expect("specifier") {
            access_log_filter::FilterSpecifier::AndFilter(a) => {
                assert_eq!(a.filters.len(), 2);
                "and"
            }
            access_log_filter::FilterSpecifier::HeaderFilter(h) => {
                let m = h.header.as_ref().expect("matcher");
                assert_eq!(m.name, "x-debug");
                assert!(m.invert_match);
                "header"
            }
            access_log_filter::FilterSpecifier::ResponseFlagFilter(r) => {
                assert_eq!(r.flags, ["UH", "NR"]);
                "flags"
            }
            access_log_filter::FilterSpecifier::GrpcStatusFilter(g) => {
                assert_eq!(g.statuses, [14, 4]);
                assert!(g.exclude);
                "grpc"
            }
            access_log_filter::FilterSpecifier::RuntimeFilter(r) => {
                let p = r.percent_sampled.expect("percent");
                assert_eq!((p.numerator, p.denominator), (5, 1));
                "runtime"
            }
            access_log_filter::FilterSpecifier::TraceableFilter(_) => "traceable",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        ["and", "header", "flags", "grpc", "runtime", "traceable"]
    );
}

/// Gloo's listener plugin sets these on the Listener; 0 buffer bytes means
/// Envoy's default (unset).
#[test]
fn listener_fields() {
    let l = listener(
        "{perConnectionBufferLimitBytes: 4096, connectionBalanceConfig: {exactBalance: {}},
          socketOptions: [{description: keepalive, level: 1, name: 9, intValue: 1, state: STATE_LISTENING},
                          {level: 6, name: 13, bufValue: AQAAAA==}]}",
        "{}",
    );
    assert_eq!(
        l.per_connection_buffer_limit_bytes.map(|v| v.value),
        Some(4096)
    );
    assert!(matches!(
        l.connection_balance_config.and_then(|c| c.balance_type),
        Some(connection_balance_config::BalanceType::ExactBalance(_))
    ));
    assert_eq!(l.socket_options.len(), 2);
    let s = &l.socket_options[0];
    assert_eq!(
        (s.description.as_str(), s.level, s.name, s.state),
        ("keepalive", 1, 9, 2)
    );
    assert_eq!(s.value, Some(socket_option::Value::IntValue(1)));
    assert_eq!(l.socket_options[1].state, 0, "STATE_PREBIND by default");
    assert_eq!(
        l.socket_options[1].value,
        Some(socket_option::Value::BufValue(vec![1, 0, 0, 0]))
    );
    let zero = listener("{perConnectionBufferLimitBytes: 0}", "{}");
    assert_eq!(zero.per_connection_buffer_limit_bytes, None);
}

/// Gloo's proxyprotocol plugin: `useProxyProto: true` alone adds the
/// filter with an empty config; `options.proxyProtocol` configures it.
#[test]
fn proxy_protocol_listener_filter() {
    let gw = gateway("{}", "{}").replace("  options: {}\n", "  useProxyProto: true\n");
    let l = load(&[&gw, REST[0], REST[1]]);
    assert!(!l.has_errors(), "{}", l.render_diagnostics());
    let lis = &l.output.as_ref().expect("valid")["gloo-system~gateway-proxy"].listeners[0];
    assert_eq!(lis.listener_filters.len(), 1);
    assert_eq!(
        lis.listener_filters[0].name,
        "envoy.filters.listener.proxy_protocol"
    );
    let Some(listener_filter::ConfigType::TypedConfig(any)) = &lis.listener_filters[0].config_type
    else {
        panic!("no config");
    };
    assert_eq!(
        ProxyProtocol::decode(any.value.as_slice()).expect("decodes"),
        ProxyProtocol::default()
    );

    let l = listener(
        "{proxyProtocol: {allowRequestsWithoutProxyProtocol: true, rules: [{tlvType: 2, onTlvPresent: {metadataNamespace: ns, key: authority}}]}}",
        "{}",
    );
    let Some(listener_filter::ConfigType::TypedConfig(any)) = &l.listener_filters[0].config_type
    else {
        panic!("no config");
    };
    let pp = ProxyProtocol::decode(any.value.as_slice()).expect("decodes");
    assert!(pp.allow_requests_without_proxy_protocol);
    assert_eq!(pp.rules.len(), 1);
    assert_eq!(pp.rules[0].tlv_type, 2);
    let kv = pp.rules[0].on_tlv_present.as_ref().expect("kv");
    assert_eq!(
        (kv.metadata_namespace.as_str(), kv.key.as_str()),
        ("ns", "authority")
    );
}

/// Gloo's connection_limit plugin: its filter first in the chain, named
/// by Gloo's `ExtensionName`, stat prefix `connection_limit`.
#[test]
fn connection_limit_filter_first() {
    let l = listener(
        "{}",
        "{options: {connectionLimit: {maxActiveConnections: 9, delayBeforeClose: 10s}}}",
    );
    let filters = &l.filter_chains[0].filters;
    assert_eq!(filters.len(), 2);
    assert_eq!(
        filters[0].name,
        "envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit"
    );
    let c: ConnectionLimit = typed(filters[0].config_type.as_ref().expect("config"));
    assert_eq!(c.stat_prefix, "connection_limit");
    assert_eq!(c.max_connections.map(|v| v.value), Some(9));
    assert_eq!(c.delay.map(|d| d.seconds), Some(10));
    // No limit given: no filter (Gloo's "does nothing when fields are not
    // specified").
    let l = listener("{}", "{options: {connectionLimit: {}}}");
    assert_eq!(l.filter_chains[0].filters.len(), 1);
}

/// `grpcService` as Gloo's als plugin builds it (`projects/gloo/pkg/
/// plugins/als/converter.go`, `copyGrpcSettings`): an
/// `envoy.access_loggers.http_grpc` logger whose `HttpGrpcAccessLogConfig`
/// carries the extra headers and trailers, and whose `common_config` holds
/// the log name, an Envoy gRPC client for `staticClusterName`, transport
/// API V3 and the filter state objects. The same HTTP config goes on the
/// listener (`ProcessListener`), and filters apply as on file sinks.
#[test]
fn grpc_access_logs_on_the_connection_manager_and_the_listener() {
    use envoy_types::pb::envoy::config::core::v3::{ApiVersion, grpc_service};
    use envoy_types::pb::envoy::extensions::access_loggers::grpc::v3::HttpGrpcAccessLogConfig;
    let grpc = |log: &envoy_types::pb::envoy::config::accesslog::v3::AccessLog| {
        assert_eq!(log.name, "envoy.access_loggers.http_grpc");
        let Some(access_log::ConfigType::TypedConfig(any)) = &log.config_type else {
            panic!("no typed config");
        };
        assert_eq!(
            any.type_url,
            "type.googleapis.com/envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig"
        );
        HttpGrpcAccessLogConfig::decode(any.value.as_slice()).expect("HttpGrpcAccessLogConfig")
    };
    let l = listener(
        "{accessLoggingService: {accessLog: [
            {grpcService: {logName: edge, staticClusterName: echo_gloo-system,
               additionalRequestHeadersToLog: [x-request-id], additionalResponseHeadersToLog: [x-upstream],
               additionalResponseTrailersToLog: [grpc-status], filterStateObjectsToLog: [envoy.network.upstream_server_name]},
             filter: {statusCodeFilter: {comparison: {op: GE, value: {defaultValue: 500, runtimeKey: al.min}}}}},
            {fileSink: {path: /dev/stdout}}]},
          listenerAccessLoggingService: {accessLog: [{grpcService: {logName: conn, staticClusterName: echo_gloo-system}}]}}",
        "{}",
    );
    let logs = hcm(&l).access_log;
    assert_eq!(logs.len(), 2);
    let c = grpc(&logs[0]);
    assert_eq!(c.additional_request_headers_to_log, ["x-request-id"]);
    assert_eq!(c.additional_response_headers_to_log, ["x-upstream"]);
    assert_eq!(c.additional_response_trailers_to_log, ["grpc-status"]);
    let common = c.common_config.expect("common_config");
    assert_eq!(common.log_name, "edge");
    assert_eq!(common.transport_api_version, ApiVersion::V3 as i32);
    assert_eq!(
        common.filter_state_objects_to_log,
        ["envoy.network.upstream_server_name"]
    );
    let Some(grpc_service::TargetSpecifier::EnvoyGrpc(e)) =
        common.grpc_service.and_then(|g| g.target_specifier)
    else {
        panic!("not an Envoy gRPC client");
    };
    assert_eq!(e.cluster_name, "echo_gloo-system");
    assert!(matches!(
        logs[0]
            .filter
            .as_ref()
            .and_then(|f| f.filter_specifier.as_ref()),
        Some(access_log_filter::FilterSpecifier::StatusCodeFilter(_))
    ));
    assert_eq!(logs[1].name, "envoy.access_loggers.file");
    // The listener's own log: the same HTTP config (Gloo uses no TCP one).
    assert_eq!(l.access_log.len(), 1);
    let c = grpc(&l.access_log[0]);
    assert_eq!(c.common_config.expect("common").log_name, "conn");
}

/// An Upstream that exists but is rejected has no cluster: a gRPC log to
/// it rejects the Gateway too.
#[test]
fn a_grpc_log_to_a_rejected_upstream_is_an_error() {
    let gw = gateway(
        "{accessLoggingService: {accessLog: [{grpcService: {logName: x, staticClusterName: als_gloo-system}}]}}",
        "{}",
    );
    let bad = "apiVersion: gloo.solo.io/v1\nkind: Upstream\nmetadata: {name: als, namespace: gloo-system}\nspec: {static: {hosts: []}}\n";
    let l = load(&[&gw, REST[0], REST[1], bad]);
    let errs: Vec<String> = l
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.message.clone())
        .collect();
    assert!(
        errs.iter().any(|e| e.contains("als_gloo-system")),
        "{errs:?}"
    );
}

/// A TCP gateway's logs use the same HTTP gRPC config (Gloo's tcp plugin
/// calls the als plugin's `ProcessAccessLogPlugins`,
/// `projects/gloo/pkg/plugins/tcp/plugin.go`).
#[test]
fn grpc_access_logs_on_a_tcp_proxy() {
    use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
    let gw = "apiVersion: gateway.solo.io/v1\nkind: Gateway\nmetadata: {name: tcp, namespace: gloo-system}\nspec:\n  bindAddress: '::'\n  bindPort: 9000\n  options: {accessLoggingService: {accessLog: [{grpcService: {logName: tcp, staticClusterName: echo_gloo-system}}]}}\n  tcpGateway: {tcpHosts: [{name: t, destination: {single: {upstream: {name: echo, namespace: gloo-system}}}}]}\n";
    let l = load(&[gw, REST[0]]);
    assert!(!l.has_errors(), "{}", l.render_diagnostics());
    let out = l.output.as_ref().expect("valid config");
    let listener = &out["gloo-system~gateway-proxy"].listeners[0];
    let f = listener.filter_chains[0].filters.last().expect("a filter");
    let t: TcpProxy = typed(f.config_type.as_ref().expect("config"));
    assert_eq!(t.access_log.len(), 1);
    assert_eq!(t.access_log[0].name, "envoy.access_loggers.http_grpc");
}

/// gRPC needs HTTP/2: a log service Upstream without `useHttp2` is
/// served, with a warning.
#[test]
fn a_grpc_log_to_an_http1_upstream_is_a_warning() {
    let gw = gateway(
        "{accessLoggingService: {accessLog: [{grpcService: {logName: x, staticClusterName: echo_gloo-system}}]}}",
        "{}",
    );
    let l = load(&[&gw, REST[0], REST[1]]);
    assert!(!l.has_errors(), "{}", l.render_diagnostics());
    assert!(
        l.diagnostics
            .iter()
            .any(|d| !d.is_error() && d.message.contains("does not set useHttp2: true")),
        "{}",
        l.render_diagnostics()
    );
}

#[test]
fn what_envoy_or_gloo_would_refuse_is_an_error() {
    let cases: [(&str, &str, &str); 20] = [
        (
            "{accessLoggingService: {accessLog: [{grpcService: {logName: x, staticClusterName: ecko_gloo-system}}]}}",
            "{}",
            "options.accessLoggingService.accessLog[0].grpcService.staticClusterName: cluster `ecko_gloo-system` is not one edgeplane serves: name an Upstream's cluster, `<name>_<namespace>` (Envoy would accept the logger and drop every entry); did you mean `echo_gloo-system`?",
        ),
        (
            "{listenerAccessLoggingService: {accessLog: [{grpcService: {staticClusterName: echo_gloo-system}}]}}",
            "{}",
            "options.listenerAccessLoggingService.accessLog[0].grpcService.logName: invalid HttpGrpcAccessLogConfig.CommonConfig: embedded message failed validation | caused by: invalid CommonGrpcAccessLogConfig.LogName: value length must be at least 1 runes",
        ),
        (
            "{accessLoggingService: {accessLog: [{grpcService: {logName: x, staticClusterName: ''}}]}}",
            "{}",
            "options.accessLoggingService.accessLog[0].grpcService.staticClusterName: invalid HttpGrpcAccessLogConfig.CommonConfig: embedded message failed validation | caused by: invalid CommonGrpcAccessLogConfig.GrpcService: embedded message failed validation | caused by: invalid GrpcService.EnvoyGrpc: embedded message failed validation | caused by: invalid GrpcService_EnvoyGrpc.ClusterName: value length must be at least 1 runes",
        ),
        (
            "{accessLoggingService: {accessLog: [{fileSink: {path: /x}, grpcService: {logName: x, staticClusterName: echo_gloo-system}}]}}",
            "{}",
            "options.accessLoggingService.accessLog[0] sets more than one output",
        ),
        (
            "{accessLoggingService: {accessLog: [{openTelemetryService: {logName: x}}]}}",
            "{}",
            "options.accessLoggingService.accessLog[0].openTelemetryService (OpenTelemetry access log service) is a Gloo feature edgeplane does not implement",
        ),
        (
            "{extensions: {configs: {}}}",
            "{}",
            "options.extensions is a Gloo feature edgeplane does not implement",
        ),
        (
            "{tcpStats: true}",
            "{}",
            "options.tcpStats is a Gloo feature edgeplane does not implement",
        ),
        (
            "{accessLoggingService: {accessLog: [{fileSink: {path: /x, stringFormat: '%FOO%'}}]}}",
            "{}",
            "options.accessLoggingService.accessLog[0].fileSink.stringFormat: %FOO% is not a command operator Envoy knows",
        ),
        (
            "{accessLoggingService: {accessLog: [{fileSink: {path: /x, jsonFormat: {a: {b: '100%'}}}}]}}",
            "{}",
            "options.accessLoggingService.accessLog[0].fileSink.jsonFormat.a.b: no valid command operator at position 3",
        ),
        (
            "{accessLoggingService: {accessLog: [{fileSink: {path: '', stringFormat: x}}]}}",
            "{}",
            "options.accessLoggingService.accessLog[0].fileSink.path is empty",
        ),
        (
            "{accessLoggingService: {accessLog: [{fileSink: {path: /x}, filter: {statusCodeFilter: {comparison: {op: GE, value: {defaultValue: 400}}}}}]}}",
            "{}",
            "options.accessLoggingService.accessLog[0].filter: No value found for field ComparisonFilter.Value.RuntimeKey of StatusCodeFilter",
        ),
        // Gloo's als converter's InvalidEnumValueError
        // (projects/gloo/pkg/plugins/als/converter.go).
        (
            "{accessLoggingService: {accessLog: [{fileSink: {path: /x}, filter: {statusCodeFilter: {comparison: {op: 7, value: {defaultValue: 400, runtimeKey: k}}}}}]}}",
            "{}",
            "options.accessLoggingService.accessLog[0].filter.statusCodeFilter.comparison.op: Invalid value of 7 in Enum field ComparisonFilter.Op of StatusCodeFilter; expected one of EQ, GE, LE",
        ),
        (
            "{accessLoggingService: {accessLog: [{fileSink: {path: /x}, filter: {runtimeFilter: {runtimeKey: k, percentSampled: {numerator: 1, denominator: 9}}}}]}}",
            "{}",
            "options.accessLoggingService.accessLog[0].filter.runtimeFilter.percentSampled.denominator: Invalid value of 9 in Enum field FractionalPercent.Denominator of RuntimeFilter",
        ),
        (
            "{accessLoggingService: {accessLog: [{fileSink: {path: /x}, filter: {grpcStatusFilter: {statuses: [OK, NOPE]}}}]}}",
            "{}",
            "options.accessLoggingService.accessLog[0].filter.grpcStatusFilter.statuses: Invalid value of NOPE in Enum field Status of GrpcStatusFilter",
        ),
        (
            "{accessLoggingService: {accessLog: [{fileSink: {path: /x}, filter: {notHealthCheckFilter: {}, traceableFilter: {}}}]}}",
            "{}",
            "options.accessLoggingService.accessLog[0].filter sets notHealthCheckFilter and traceableFilter",
        ),
        (
            "{accessLoggingService: {accessLog: [{fileSink: {path: /x}, filter: {andFilter: {filters: [{traceableFilter: {}}]}}}]}}",
            "{}",
            "options.accessLoggingService.accessLog[0].filter.andFilter.filters needs at least 2 filters",
        ),
        (
            "{connectionBalanceConfig: {}}",
            "{}",
            "options.connectionBalanceConfig: connection balancer does not specify balancer type",
        ),
        (
            "{socketOptions: [{level: 1, name: 9}]}",
            "{}",
            "options.socketOptions[0] has no value: set intValue or bufValue",
        ),
        (
            "{proxyProtocol: {rules: [{tlvType: 256, onTlvPresent: {key: k}}]}}",
            "{}",
            "options.proxyProtocol.rules[0].tlvType 256 is not a TLV type (0-255)",
        ),
        (
            "{}",
            "{options: {connectionLimit: {maxActiveConnections: 0}}}",
            "connectionLimit: MaxActiveConnections must be greater than or equal to 1. Current value : 0",
        ),
    ];
    for (options, http, want) in cases {
        let gw = gateway(options, http);
        let errs = errors(&[&gw, REST[0], REST[1]]);
        assert!(
            errs.iter().any(|e| e.starts_with(want)),
            "{options} {http}: want {want:?}, got {errs:?}"
        );
    }
}

#[test]
fn hybrid_route_config_names_hash_the_matcher() {
    use crate::model::{CidrRange, GatewayMatcher};
    // Gloo's MatchedRouteConfigName: a set `prefixLen` and an unset one hash
    // differently, and an `sslConfig` changes the name too.
    let a = GatewayMatcher {
        source_prefix_ranges: vec![CidrRange {
            address_prefix: "127.0.0.1".into(),
            prefix_len: Some(32),
        }],
        ssl_sni_domains: None,
    };
    let mut b = a.clone();
    b.source_prefix_ranges[0].prefix_len = None;
    let mut c = a.clone();
    c.ssl_sni_domains = Some(vec!["x.test".into()]);
    let hashes = [a, b, c].map(|m| crate::translate::names::matcher_hash(&m));
    assert_ne!(hashes[0], hashes[1]);
    assert_ne!(hashes[0], hashes[2]);
    assert_ne!(hashes[1], hashes[2]);
}
