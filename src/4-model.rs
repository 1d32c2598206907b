//! The validated model: what the manifests mean, with Envoy nowhere in sight.
//!
//! Everything here is checked (references resolved or reported, durations
//! parsed, upgrade lists unique) and ordered (maps keyed by namespace/name),
//! so translation can be a plain, total, deterministic function of it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// `namespace/name` of a resource; sorts namespace first.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub namespace: String,
    pub name: String,
}

impl Key {
    /// Gloo's name for an Upstream's cluster, `<name>_<namespace>`: the
    /// translation's (`translate::names::cluster_name`), and what a manifest
    /// must write where it names a cluster itself (e.g. a gRPC access log's
    /// `staticClusterName`).
    pub fn upstream_cluster_name(&self) -> String {
        format!("{}_{}", self.name, self.namespace)
    }

    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Key {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.namespace, self.name)
    }
}

/// A protobuf-style duration (seconds + nanoseconds), non-negative.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration {
    pub seconds: i64,
    pub nanos: i32,
}

impl Duration {
    /// Parses Gloo's duration strings: proto-JSON `"1.5s"`, and for
    /// convenience `"250ms"`, `"2m"`, `"1h"`.
    pub fn parse(s: &str) -> Result<Duration, String> {
        let bad = || {
            format!(
                "invalid duration `{s}`: expected a number with a unit, e.g. `15s`, `1.5s`, `250ms`, `5m`"
            )
        };
        let s = s.trim();
        let (num, scale_nanos): (&str, u128) = if let Some(n) = s.strip_suffix("ms") {
            (n, 1_000_000)
        } else if let Some(n) = s.strip_suffix('s') {
            (n, 1_000_000_000)
        } else if let Some(n) = s.strip_suffix('m') {
            (n, 60_000_000_000)
        } else if let Some(n) = s.strip_suffix('h') {
            (n, 3_600_000_000_000)
        } else {
            return Err(bad());
        };
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        if int.is_empty() && frac.is_empty()
            || !int.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
            || frac.len() > 9
        {
            return Err(bad());
        }
        let int_v: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| bad())?
        };
        let frac_v: u128 = if frac.is_empty() {
            0
        } else {
            let padded = format!("{frac:0<9}");
            padded.parse().map_err(|_| bad())?
        };
        let total = int_v
            .checked_mul(scale_nanos)
            .and_then(|v| v.checked_add(frac_v * scale_nanos / 1_000_000_000))
            .ok_or_else(bad)?;
        let seconds = i64::try_from(total / 1_000_000_000).map_err(|_| bad())?;
        if seconds > 315_576_000_000 {
            return Err(format!(
                "duration `{s}` is longer than protobuf allows (10,000 years)"
            ));
        }
        Ok(Duration {
            seconds,
            nanos: (total % 1_000_000_000) as i32,
        })
    }
}

/// Upgrade types Gloo knows at both HCM and route level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum UpgradeKind {
    WebSocket,
    Connect,
    /// Route level only: Envoy terminates the CONNECT itself.
    ConnectTerminate,
}

impl UpgradeKind {
    /// The upgrade type as Gloo names it in its messages (`websocket`,
    /// `CONNECT`); the two CONNECT kinds are one type.
    pub fn name(self) -> &'static str {
        match self {
            UpgradeKind::WebSocket => "websocket",
            UpgradeKind::Connect | UpgradeKind::ConnectTerminate => "CONNECT",
        }
    }
}

/// One upgrade setting. `enabled: None` means Envoy's default (enabled).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Upgrade {
    pub kind: UpgradeKind,
    pub enabled: Option<bool>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Model {
    pub gateways: BTreeMap<Key, Gateway>,
    pub virtual_services: BTreeMap<Key, VirtualService>,
    pub upstreams: BTreeMap<Key, Upstream>,
    /// Valid TLS `Secret`s, whether or not any `sslConfig.secretRef` uses
    /// them (translation sends each proxy only those its listeners name).
    pub secrets: BTreeMap<Key, TlsSecret>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Gateway {
    pub key: Key,
    pub bind_address: String,
    pub bind_port: u32,
    pub proxy_names: Vec<String>,
    /// Which VirtualServices this gateway serves.
    pub selection: VsSelection,
    pub hcm: HcmSettings,
    /// `ssl: true`: serves only VirtualServices with `sslConfig`, over TLS;
    /// otherwise only those without.
    pub ssl: bool,
    /// `options.buffer.maxRequestBytes`: Gloo's listener buffer filter,
    /// which routes' `bufferPerRoute` tunes; `None`: no buffer filter.
    pub buffer_max_request_bytes: Option<u32>,
    /// The Gateway's `options` (Gloo's `ListenerOptions`), with
    /// `useProxyProto: true` folded into `proxy_protocol`.
    pub options: ListenerOptions,
    /// `httpGateway.options.connectionLimit` with a limit set.
    pub connection_limit: Option<ConnectionLimit>,
    /// `httpGateway.options.gzip`: Gloo's gzip plugin (a compressor filter).
    pub gzip: Option<Gzip>,
    /// `httpGateway.options.healthCheck.path`: Envoy answers it itself.
    pub health_check_path: Option<String>,
    /// `httpGateway.options.csrf`: the listener CSRF filter's policy;
    /// `None`: Gloo's default (enforced for 0% of requests).
    pub csrf: Option<Csrf>,
    /// Gloo installs the gRPC-Web filter on every HTTP listener unless
    /// `httpGateway.options.grpcWeb.disable` is true.
    pub grpc_web: bool,
    /// `httpGateway.options.extauth`: the external auth server (Gloo's
    /// extauth plugin); `None`: no `ext_authz` filter, and every
    /// virtual host's and route's `extauth` is ignored, as in Gloo.
    pub ext_authz: Option<ExtAuthz>,
    /// Which gateway type this is; the HTTP fields above are the
    /// `httpGateway`'s and mean nothing for the other kinds.
    pub kind: GatewayKind,
    /// Set on the HTTP gateways inside a hybrid gateway only: their
    /// matcher, which adds to their filter chains' match and names their
    /// route configuration (Gloo's `MatchedRouteConfigName`).
    pub matcher: Option<GatewayMatcher>,
}

/// The external auth server as Gloo's `GenerateEnvoyConfigForFilter`
/// (`plugins/extauth/config_generator.go`) reads `extauth.Settings`.
#[derive(Clone, Debug, PartialEq)]
pub struct ExtAuthz {
    /// The auth server's Upstream (cluster `<name>_<namespace>`).
    pub server: Key,
    pub service: ExtAuthzService,
    /// 200ms unless `requestTimeout` says otherwise.
    pub timeout: Duration,
    pub failure_mode_allow: bool,
    /// (maxRequestBytes, allowPartialMessage, packAsBytes), the size
    /// already defaulted to Gloo's 4 KiB.
    pub request_body: Option<(u32, bool, bool)>,
    pub clear_route_cache: bool,
    /// A code Envoy's `StatusCode` enum names; `None`: Envoy's 403.
    pub status_on_error: Option<u32>,
    pub stat_prefix: String,
}

/// gRPC (Gloo's default) or HTTP auth server.
#[derive(Clone, Debug, PartialEq)]
pub enum ExtAuthzService {
    Grpc {
        /// `grpcService.authority`; empty: Envoy's default.
        authority: String,
    },
    Http {
        /// The prefix with its trailing `/` trimmed, as Gloo does.
        path_prefix: String,
        /// `request` given at all (Gloo then sets `allowed_headers`).
        allowed_headers: Vec<String>,
        allowed_headers_regex: Vec<String>,
        headers_to_add: BTreeMap<String, String>,
        /// `response` given at all, and its three lists.
        response: Option<ExtAuthzResponse>,
    },
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExtAuthzResponse {
    pub allowed_upstream_headers: Vec<String>,
    pub allowed_client_headers: Vec<String>,
    pub allowed_upstream_headers_to_append: Vec<String>,
}

/// `extauth` on a virtual host or route (Gloo's `ExtAuthExtension`, the
/// open-source part).
#[derive(Clone, Debug, PartialEq)]
pub enum ExtAuth {
    /// `disable: true`.
    Disable,
    /// `customAuth`: its context extensions (sorted).
    Custom(BTreeMap<String, String>),
    /// Set but neither `disable: true` nor `customAuth` (for example
    /// `disable: false`): a virtual host is then disabled, a route
    /// inherits (Gloo's generators).
    Other,
}

/// `gzip` as Gloo's gzip plugin reads it; `None` and `false` leave Envoy's
/// defaults.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Gzip {
    pub memory_level: Option<u32>,
    pub compression_level: GzipLevel,
    pub compression_strategy: GzipStrategy,
    pub window_bits: Option<u32>,
    pub content_length: Option<u32>,
    pub content_type: Vec<String>,
    pub disable_on_etag_header: bool,
    pub remove_accept_encoding_header: bool,
}

/// Gloo's `Gzip.CompressionLevel.Enum`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GzipLevel {
    #[default]
    Default,
    Best,
    Speed,
}

/// Gloo's `Gzip.CompressionStrategy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GzipStrategy {
    #[default]
    Default,
    Filtered,
    Huffman,
    Rle,
}

/// `httpConnectionManagerSettings.tracing` (Gloo's tracing plugin).
#[derive(Clone, Debug, PartialEq)]
pub struct Tracing {
    pub request_headers_for_tags: Vec<String>,
    pub verbose: bool,
    /// client, random, overall: Gloo's 100 where unset, in single
    /// precision as Gloo's `FloatValue` carries them.
    pub percentages: [f32; 3],
    pub spawn_upstream_span: bool,
    /// `None`: no provider (Gloo then sets sampling only).
    pub provider: Option<TracingProvider>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum TracingProvider {
    Zipkin {
        /// The collector Upstream (its cluster is `<name>_<namespace>`).
        collector: Key,
        collector_endpoint: String,
        trace_id_128bit: bool,
        shared_span_context: Option<bool>,
        /// `HTTP_PROTO`; otherwise Gloo sends `HTTP_JSON`.
        http_proto: bool,
    },
    OpenTelemetry {
        collector: Key,
        /// Gloo's default: the Gateway's name.
        service_name: String,
        authority: String,
        max_cache_size: Option<u32>,
    },
}

/// A Gateway's type (`httpGateway`, `tcpGateway`, `hybridGateway`).
#[derive(Clone, Debug, PartialEq)]
pub enum GatewayKind {
    /// `httpGateway`: the HTTP fields of `Gateway`.
    Http,
    Tcp(TcpGateway),
    /// `hybridGateway.matchedGateways`, in order.
    Hybrid(Vec<MatchedGateway>),
}

/// One `matchedGateways` entry.
#[derive(Clone, Debug, PartialEq)]
pub enum MatchedGateway {
    /// An HTTP gateway of its own (same key, bind address and listener
    /// options as its hybrid gateway; `matcher` set; `ssl` true when the
    /// matcher has an `sslConfig`).
    Http(Box<Gateway>),
    Tcp {
        matcher: GatewayMatcher,
        tcp: TcpGateway,
    },
}

/// A matched gateway's `matcher`, kept as written: Gloo hashes it (wrapper
/// fields set or not) into the route configuration's name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GatewayMatcher {
    pub source_prefix_ranges: Vec<CidrRange>,
    /// `sslConfig` given: its `sniDomains` (the only field edgeplane
    /// takes there), possibly empty.
    pub ssl_sni_domains: Option<Vec<String>>,
}

/// An address range; `prefix_len` as written (`None`: not given).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct CidrRange {
    pub address_prefix: String,
    pub prefix_len: Option<u32>,
}

/// `tcpGateway` (or a hybrid gateway's matched one).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TcpGateway {
    pub hosts: Vec<TcpHost>,
    pub proxy: TcpProxySettings,
}

/// `options.tcpProxySettings`, copied onto every host's TCP proxy.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TcpProxySettings {
    pub max_connect_attempts: Option<u32>,
    pub idle_timeout: Option<Duration>,
    pub access_log_flush_interval: Option<Duration>,
    pub tunneling: Option<Tunneling>,
}

/// `tunnelingConfig`: hostname and headers (key, value, append).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tunneling {
    pub hostname: String,
    pub headers_to_add: Vec<(String, String, Option<bool>)>,
}

/// One TCP host: one filter chain.
#[derive(Clone, Debug, PartialEq)]
pub struct TcpHost {
    pub name: String,
    pub destination: TcpDestination,
    pub tls: TcpHostTls,
}

#[derive(Clone, Debug, PartialEq)]
pub enum TcpDestination {
    Upstream(Key),
    /// `multi` or an UpstreamGroup: upstreams and weights.
    Weighted(Vec<(Key, u32)>),
    /// `forwardSniClusterName`: the cluster named by the client's SNI.
    ForwardSni,
}

/// What a TCP host does with TLS.
#[derive(Clone, Debug, PartialEq)]
pub enum TcpHostTls {
    /// No `sslConfig`: plain bytes, any client.
    None,
    /// `sslConfig` with `sniDomains` and no certificate: matched by SNI,
    /// the TLS bytes proxied untouched.
    Passthrough(Vec<String>),
    /// `sslConfig` with a certificate: TLS terminated here.
    Terminate(SslConfig),
}

impl TcpHostTls {
    /// The SNI names the host's chain matches (empty: any).
    pub fn sni_domains(&self) -> &[String] {
        match self {
            TcpHostTls::None => &[],
            TcpHostTls::Passthrough(d) => d,
            TcpHostTls::Terminate(s) => &s.sni_domains,
        }
    }
}

impl Gateway {
    /// True when this gateway serves `vs`. Gloo applies the `ssl` filter
    /// first: an SSL gateway takes only VirtualServices with `sslConfig`, a
    /// plain one only those without; then the selection decides.
    /// A TCP or hybrid gateway selects nothing itself (a hybrid one's HTTP
    /// gateways do, see `http_parts`).
    pub fn selects(&self, vs: &VirtualService) -> bool {
        self.kind == GatewayKind::Http
            && vs.ssl.is_some() == self.ssl
            && self.selection.selects(&self.key.namespace, vs)
    }

    /// The HTTP gateways this Gateway is made of: itself for an
    /// `httpGateway`, the HTTP matched gateways of a hybrid one, none for
    /// a `tcpGateway`. Each has its own VirtualServices and routes.
    pub fn http_parts(&self) -> Vec<&Gateway> {
        match &self.kind {
            GatewayKind::Http => vec![self],
            GatewayKind::Tcp(_) => Vec::new(),
            GatewayKind::Hybrid(m) => m
                .iter()
                .filter_map(|g| match g {
                    MatchedGateway::Http(h) => Some(h.as_ref()),
                    MatchedGateway::Tcp { .. } => None,
                })
                .collect(),
        }
    }
}

/// Gloo's VirtualService selection for an HTTP gateway, in Gloo's order of
/// precedence: expressions, then labels, then refs; none of them selects
/// every VirtualService in `namespaces` (all namespaces when empty).
#[derive(Clone, Debug, PartialEq)]
pub enum VsSelection {
    Refs(BTreeSet<Key>),
    Labels {
        labels: BTreeMap<String, String>,
        namespaces: Vec<String>,
    },
    Expressions {
        expressions: Vec<LabelExpression>,
        namespaces: Vec<String>,
    },
    All {
        namespaces: Vec<String>,
    },
}

impl VsSelection {
    pub fn selects(&self, gateway_ns: &str, vs: &VirtualService) -> bool {
        let in_ns = |namespaces: &Vec<String>| {
            namespace_selected(namespaces, gateway_ns, &vs.key.namespace, true)
        };
        match self {
            VsSelection::Refs(set) => set.contains(&vs.key),
            VsSelection::Labels { labels, namespaces } => {
                in_ns(namespaces) && labels.iter().all(|(k, v)| vs.labels.get(k) == Some(v))
            }
            VsSelection::Expressions {
                expressions,
                namespaces,
            } => in_ns(namespaces) && expressions.iter().all(|e| e.matches(&vs.labels)),
            VsSelection::All { namespaces } => in_ns(namespaces),
        }
    }
}

/// Gloo's namespace lists: `*` is every namespace; an empty list means every
/// namespace when `empty_is_all`, else only the owner's.
pub fn namespace_selected(list: &[String], owner_ns: &str, ns: &str, empty_is_all: bool) -> bool {
    if list.is_empty() {
        return empty_is_all || ns == owner_ns;
    }
    list.iter().any(|n| n == "*" || n == ns)
}

/// A label expression (Kubernetes-style selector requirement, Gloo's
/// operator names).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelExpression {
    pub key: String,
    pub op: LabelOp,
    pub values: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelOp {
    Equals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

impl LabelOp {
    pub fn parse(s: &str) -> Option<LabelOp> {
        Some(match s {
            "Equals" | "=" | "DoubleEquals" | "==" => LabelOp::Equals,
            "NotEquals" | "!=" => LabelOp::NotEquals,
            "In" | "in" => LabelOp::In,
            "NotIn" | "notin" => LabelOp::NotIn,
            "Exists" | "exists" => LabelOp::Exists,
            "DoesNotExist" | "!" => LabelOp::DoesNotExist,
            "GreaterThan" | "gt" => LabelOp::GreaterThan,
            "LessThan" | "lt" => LabelOp::LessThan,
            _ => return None,
        })
    }
}

impl LabelExpression {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let v = labels.get(&self.key);
        let num = |s: &str| s.parse::<i64>().ok();
        match self.op {
            LabelOp::Equals => v.is_some_and(|v| self.values.first() == Some(v)),
            LabelOp::NotEquals => v.is_none_or(|v| self.values.first() != Some(v)),
            LabelOp::In => v.is_some_and(|v| self.values.contains(v)),
            LabelOp::NotIn => v.is_none_or(|v| !self.values.contains(v)),
            LabelOp::Exists => v.is_some(),
            LabelOp::DoesNotExist => v.is_none(),
            LabelOp::GreaterThan => match (
                v.and_then(|v| num(v)),
                self.values.first().and_then(|x| num(x)),
            ) {
                (Some(a), Some(b)) => a > b,
                _ => false,
            },
            LabelOp::LessThan => match (
                v.and_then(|v| num(v)),
                self.values.first().and_then(|x| num(x)),
            ) {
                (Some(a), Some(b)) => a < b,
                _ => false,
            },
        }
    }
}

/// HCM settings as given; `None` leaves Envoy's (or Gloo's) default.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HcmSettings {
    /// The user's upgrade list, in order, unique by type.
    pub upgrades: Vec<Upgrade>,
    pub stream_idle_timeout: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    pub request_timeout: Option<Duration>,
    pub request_headers_timeout: Option<Duration>,
    pub drain_timeout: Option<Duration>,
    pub delayed_close_timeout: Option<Duration>,
    pub use_remote_address: Option<bool>,
    pub server_name: Option<String>,
    pub skip_xff_append: Option<bool>,
    pub via: Option<String>,
    pub xff_num_trusted_hops: Option<u32>,
    pub generate_request_id: Option<bool>,
    pub proxy_100_continue: Option<bool>,
    pub max_request_headers_kb: Option<u32>,
    pub normalize_path: Option<bool>,
    pub merge_slashes: Option<bool>,
    pub preserve_external_request_id: Option<bool>,
    pub max_connection_duration: Option<Duration>,
    pub max_stream_duration: Option<Duration>,
    pub max_headers_count: Option<u32>,
    pub max_requests_per_connection: Option<u32>,
    pub headers_with_underscores_action: Option<HeadersWithUnderscores>,
    pub server_header_transformation: Option<ServerHeaderTransformation>,
    pub path_with_escaped_slashes_action: Option<EscapedSlashesAction>,
    pub codec_type: Option<CodecType>,
    pub forward_client_cert_details: Option<ForwardClientCertDetails>,
    /// subject, cert, chain, dns, uri
    pub set_current_client_cert_details: Option<[bool; 5]>,
    pub accept_http_10: Option<bool>,
    pub default_host_for_http_10: Option<String>,
    pub allow_chunked_length: Option<bool>,
    pub enable_trailers: Option<bool>,
    pub proper_case_header_key_format: Option<bool>,
    pub preserve_case_header_key_format: Option<bool>,
    pub strip_any_host_port: Option<bool>,
    pub append_x_forwarded_port: Option<bool>,
    /// (pack_trace_reason, use_request_id_for_trace_sampling)
    pub uuid_request_id_config: Option<(Option<bool>, Option<bool>)>,
    pub http2: Option<Http2Settings>,
    /// (unix_sockets, [(prefix, len)])
    pub internal_address_config: Option<(bool, Vec<(String, u32)>)>,
    pub tracing: Option<Tracing>,
}

/// What the listener does with the `server` response header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerHeaderTransformation {
    Overwrite,
    AppendIfAbsent,
    PassThrough,
}

/// What the listener does with escaped slashes (`%2F`, `%5C`) in paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EscapedSlashesAction {
    ImplementationSpecificDefault,
    KeepUnchanged,
    RejectRequest,
    UnescapeAndRedirect,
    UnescapeAndForward,
}

/// The HTTP codec the listener speaks downstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodecType {
    Auto,
    Http1,
    Http2,
}

/// How the listener handles `x-forwarded-client-cert`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForwardClientCertDetails {
    Sanitize,
    ForwardOnly,
    AppendForward,
    SanitizeSet,
    AlwaysForwardOnly,
}

/// Listener-level options, validated. Empty means Envoy's defaults.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ListenerOptions {
    /// `accessLoggingService`: logs written by each HTTP connection manager.
    pub access_logs: Vec<AccessLog>,
    /// `listenerAccessLoggingService`: logs written by the listener itself
    /// (connections no HTTP connection manager took, e.g. no filter chain).
    pub listener_access_logs: Vec<AccessLog>,
    /// Non-zero only: Gloo leaves 0 to Envoy's default (1 MiB).
    pub per_connection_buffer_limit_bytes: Option<u32>,
    pub socket_options: Vec<SocketOption>,
    pub proxy_protocol: Option<ProxyProtocol>,
    /// `connectionBalanceConfig.exactBalance`.
    pub exact_balance: bool,
}

/// An access log: where it goes, and which requests it logs.
#[derive(Clone, Debug, PartialEq)]
pub struct AccessLog {
    pub sink: LogSink,
    pub filter: Option<AccessLogFilter>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum LogSink {
    /// `fileSink`: a file Envoy writes.
    File {
        path: String,
        /// `None`: Envoy's default line format.
        format: Option<LogFormat>,
    },
    /// `grpcService`: Envoy's gRPC access log service client.
    Grpc(GrpcLog),
}

/// `grpcService`, validated: a non-empty log name and the cluster (one
/// edgeplane serves) Envoy streams the entries to.
#[derive(Clone, Debug, PartialEq)]
pub struct GrpcLog {
    pub log_name: String,
    pub cluster: String,
    pub request_headers: Vec<String>,
    pub response_headers: Vec<String>,
    pub response_trailers: Vec<String>,
    pub filter_state_objects: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum LogFormat {
    /// `stringFormat`: one line per request, command operators substituted.
    Text(String),
    /// `jsonFormat`: a JSON object per request; string values hold
    /// command operators. Keys sorted, so the encoding is deterministic.
    Json(BTreeMap<String, serde_json::Value>),
}

/// Envoy's access-log filters, as Gloo passes them through.
#[derive(Clone, Debug, PartialEq)]
pub enum AccessLogFilter {
    StatusCode(Comparison),
    Duration(Comparison),
    NotHealthCheck,
    Traceable,
    Runtime {
        runtime_key: String,
        percent: Option<(u32, PercentDenominator)>,
        use_independent_randomness: bool,
    },
    And(Vec<AccessLogFilter>),
    Or(Vec<AccessLogFilter>),
    Header(LogHeaderMatch),
    ResponseFlag(Vec<String>),
    GrpcStatus {
        /// Envoy's (and Gloo's) gRPC status numbers.
        statuses: Vec<u32>,
        exclude: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ComparisonOp {
    Eq,
    Ge,
    Le,
}

/// `op` against a runtime value (`runtime_key`, falling back to `default`).
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub op: ComparisonOp,
    pub default: u32,
    pub runtime_key: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PercentDenominator {
    Hundred,
    TenThousand,
    Million,
}

/// A header matcher of an access-log `headerFilter`.
#[derive(Clone, Debug, PartialEq)]
pub struct LogHeaderMatch {
    pub name: String,
    pub kind: LogHeaderMatchKind,
    pub invert: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum LogHeaderMatchKind {
    Exact(String),
    Regex(String),
    Range { start: i64, end: i64 },
    Present(bool),
    Prefix(String),
    Suffix(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketState {
    Prebind,
    Bound,
    Listening,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SocketOption {
    pub description: String,
    pub level: i64,
    pub name: i64,
    pub value: SocketValue,
    pub state: SocketState,
}

#[derive(Clone, Debug, PartialEq)]
pub enum SocketValue {
    Int(i64),
    Buf(Vec<u8>),
}

/// The PROXY protocol listener filter.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProxyProtocol {
    /// (TLV type, metadata namespace, key): copy that TLV into metadata.
    pub rules: Vec<(u32, String, String)>,
    pub allow_requests_without_proxy_protocol: bool,
}

/// `connectionLimit`: at most `max` open connections per listener.
#[derive(Clone, Debug, PartialEq)]
pub struct ConnectionLimit {
    pub max: u64,
    pub delay: Option<Duration>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Http2Settings {
    pub initial_stream_window_size: Option<u32>,
    pub initial_connection_window_size: Option<u32>,
    pub max_concurrent_streams: Option<u32>,
    pub override_stream_error_on_invalid_http_message: Option<bool>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct VirtualService {
    pub key: Key,
    pub labels: BTreeMap<String, String>,
    /// Empty means `*`.
    pub domains: Vec<String>,
    pub routes: Vec<Route>,
    /// `sslConfig`: TLS termination on SSL gateways (and only there).
    pub ssl: Option<SslConfig>,
    /// `virtualHost.options`, with what referenced VirtualHostOption
    /// resources add already merged in.
    pub options: VirtualHostOptions,
    /// The VirtualHostOption and RouteOption resources merged into this
    /// virtual host and its routes (those found), sorted: their statuses
    /// name this VirtualService's proxies, and Envoy's NACKs of the virtual
    /// host name them too. Never translated.
    pub vhost_option_refs: Vec<Key>,
    pub route_option_refs: Vec<Key>,
}

/// Gloo's `VirtualHostOptions`, the part open source Envoy expresses. The
/// message types are the route options' own, validated by the same code.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VirtualHostOptions {
    pub header_manipulation: Option<HeaderManipulation>,
    pub cors: Option<Cors>,
    pub cors_merge: Option<CorsMergeSettings>,
    pub retries: Option<Retries>,
    pub csrf: Option<Csrf>,
    pub buffer_per_route: Option<BufferPerRoute>,
    pub include_request_attempt_count: Option<bool>,
    pub include_attempt_count_in_response: Option<bool>,
    pub extauth: Option<ExtAuth>,
}

/// `corsPolicyMergeSettings`: how a route's CORS policy takes the virtual
/// host's (Gloo's `mergeCors`, `projects/gloo/pkg/plugins/cors/plugin.go`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CorsMergeSettings {
    /// `exposeHeaders: UNION`: the virtual host's list, then the route's,
    /// without repeats (when both are non-empty); otherwise the route's.
    pub union_expose_headers: bool,
}

impl VirtualHostOptions {
    /// Gloo's `ShallowMergeVirtualHostOptions` (`projects/gloo/pkg/utils/
    /// merge.go`): every top-level field left unset here is taken from
    /// `other`; a set field (even an empty message or `false` wrapper)
    /// wins.
    pub fn inherit(&mut self, other: &VirtualHostOptions) {
        fn fill<T: Clone>(c: &mut Option<T>, p: &Option<T>) {
            if c.is_none() {
                c.clone_from(p);
            }
        }
        fill(&mut self.header_manipulation, &other.header_manipulation);
        fill(&mut self.cors, &other.cors);
        fill(&mut self.cors_merge, &other.cors_merge);
        fill(&mut self.retries, &other.retries);
        fill(&mut self.csrf, &other.csrf);
        fill(&mut self.buffer_per_route, &other.buffer_per_route);
        fill(
            &mut self.include_request_attempt_count,
            &other.include_request_attempt_count,
        );
        fill(
            &mut self.include_attempt_count_in_response,
            &other.include_attempt_count_in_response,
        );
        fill(&mut self.extauth, &other.extauth);
    }
}

/// A VirtualService's downstream TLS.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SslConfig {
    /// Where the certificate comes from.
    pub certs: CertSource,
    /// SNI names this config answers; empty: any (the catch-all chain).
    pub sni_domains: Vec<String>,
    /// ALPN to offer, Gloo's default already applied (`h2`, `http/1.1`
    /// when none given; none for `[allow_empty]`).
    pub alpn_protocols: Vec<String>,
    /// Client certificates are required when a root CA is set, unless this.
    pub one_way_tls: bool,
    pub params: TlsParams,
}

/// `sslFiles` or `secretRef`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CertSource {
    /// Paths as the proxy sees them (possibly another container): never
    /// read here. Envoy watches the files itself.
    Files {
        /// PEM certificate chain file (`sslFiles.tlsCert`).
        cert_chain: String,
        /// PEM private key file (`sslFiles.tlsKey`).
        private_key: String,
        /// PEM CA bundle to verify client certificates against (`rootCa`).
        root_ca: Option<String>,
    },
    /// A TLS `Secret` (`secretRef`), served to Envoy over SDS so that a
    /// new certificate changes the Secret resource and not the listener.
    /// The secret is in `Model::secrets` (validation makes sure).
    Secret(Key),
}

impl SslConfig {
    /// mTLS: a root CA is given (`has_root_ca`: in the files, or in the
    /// secret) and one-way TLS is not asked for (Gloo).
    pub fn requires_client_cert(&self, has_root_ca: bool) -> bool {
        has_root_ca && !self.one_way_tls
    }
}

/// A Gloo TLS `Secret`, checked: the chain and key parse as PEM and the
/// key is the leaf certificate's. `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsSecret {
    /// PEM certificate chain, leaf first.
    pub cert_chain: String,
    /// PEM private key.
    pub private_key: String,
    /// PEM CA bundle for client certificates.
    pub root_ca: Option<String>,
}

impl TlsSecret {
    /// A certificate and key, not only a `rootCa` (enough for an
    /// Upstream's `secretRef`, never for a listener's).
    pub fn has_cert(&self) -> bool {
        !self.cert_chain.is_empty()
    }
}

impl std::fmt::Debug for TlsSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSecret")
            .field(
                "cert_chain",
                &format_args!("{} bytes", self.cert_chain.len()),
            )
            .field("private_key", &format_args!("[redacted]"))
            .field("root_ca", &self.root_ca.as_ref().map(String::len))
            .finish()
    }
}

/// One TLS filter chain of an SSL gateway: an `sslConfig` and the
/// VirtualServices it serves.
#[derive(Clone, Debug, PartialEq)]
pub struct SslGroup<'a> {
    pub ssl: SslConfig,
    pub members: Vec<&'a Key>,
}

/// Gloo's `ConsolidateSslConfigurations`
/// (`projects/gloo/pkg/translator/ssl_configuration.go`): VirtualServices
/// whose `sslConfig`s differ only in `sniDomains` share one filter chain,
/// whose SNI domains are the union (in first-seen order), or none at all
/// (match any) when one of them has none. Groups keep the order of their
/// first VirtualService. This is how several VirtualServices on one
/// certificate, without `sniDomains`, are served side by side.
pub fn consolidate_ssl<'a>(vss: impl IntoIterator<Item = &'a VirtualService>) -> Vec<SslGroup<'a>> {
    let mut groups: Vec<SslGroup<'a>> = Vec::new();
    let mut index: std::collections::HashMap<SslConfig, usize> = std::collections::HashMap::new();
    for vs in vss {
        let Some(ssl) = &vs.ssl else { continue };
        let mut bare = ssl.clone();
        bare.sni_domains.clear();
        match index.get(&bare) {
            Some(&i) => {
                let g = &mut groups[i];
                if g.ssl.sni_domains.is_empty() || ssl.sni_domains.is_empty() {
                    g.ssl.sni_domains.clear();
                } else {
                    for d in &ssl.sni_domains {
                        if !g.ssl.sni_domains.contains(d) {
                            g.ssl.sni_domains.push(d.clone());
                        }
                    }
                }
                g.members.push(&vs.key);
            }
            None => {
                index.insert(bare, groups.len());
                groups.push(SslGroup {
                    ssl: ssl.clone(),
                    members: vec![&vs.key],
                });
            }
        }
    }
    groups
}

/// `sslConfig.parameters`; empty means the proxy's defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TlsParams {
    pub min_version: Option<TlsVersion>,
    pub max_version: Option<TlsVersion>,
    pub cipher_suites: Vec<String>,
    pub ecdh_curves: Vec<String>,
}

impl TlsParams {
    pub fn is_empty(&self) -> bool {
        *self == TlsParams::default()
    }
}

/// Gloo's `SslParameters.ProtocolVersion`, in its (and Envoy's) order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TlsVersion {
    Auto,
    V1_0,
    V1_1,
    V1_2,
    V1_3,
}

/// A route of a virtual host: what translation reads (`RouteBody`, shared)
/// and where it was written. The body is an `Arc` so that a load after a
/// one-route edit of a big VirtualService takes every other route's body
/// from the last load (`validate::ValidateMemo`) and translation sees it
/// is the same by pointer.
#[derive(Clone, Debug, PartialEq)]
pub struct Route {
    pub body: Arc<RouteBody>,
    /// Where the route came from (for `edgeplane routes`); never translated.
    pub origin: RouteOrigin,
}

impl std::ops::Deref for Route {
    type Target = RouteBody;
    fn deref(&self) -> &RouteBody {
        &self.body
    }
}

/// Everything of a route that translation reads.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteBody {
    /// Gloo's converter name of the route without its `vs:<gateway>_<proxy>_`
    /// head, which translation adds per proxy: `<ns>_<vs>_route:<name>`, then
    /// `_rt:<ns>_<table>_route:<name>` per delegation (`<unnamed-<i>>` for an
    /// unnamed route). `None` when no route on the branch is named: Gloo then
    /// drops the name.
    pub name: Option<String>,
    pub matchers: Vec<Matcher>,
    pub action: Action,
    /// Shared: most routes have no options, and an inline `RouteOptions`
    /// is most of a route's size (~900 of ~1,100 bytes); every route
    /// without options points at one empty value (`RouteOptions::shared`).
    pub options: Arc<RouteOptions>,
}

/// Provenance of a flattened route: where it is written and, when its
/// `upgrades` option was inherited through delegation, the delegating route
/// that set it. Only reported; translation ignores it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RouteOrigin {
    /// The route's file and line.
    pub pos: Option<crate::diag::Pos>,
    /// The delegating route whose `upgrades` this route took (it set none):
    /// `<namespace>.<name>/<index>` of that route in its VirtualService or
    /// RouteTable.
    pub upgrades_from: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum PathMatch {
    Prefix(String),
    Exact(String),
    Regex(String),
}

impl PathMatch {
    /// The path text, whatever its kind (Gloo's delegation prefix check
    /// compares this string).
    pub fn text(&self) -> &str {
        match self {
            PathMatch::Prefix(s) | PathMatch::Exact(s) | PathMatch::Regex(s) => s,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Matcher {
    pub path: PathMatch,
    pub case_sensitive: Option<bool>,
    pub headers: Vec<HeaderMatch>,
    pub query_parameters: Vec<QueryMatch>,
    /// HTTP methods; empty = any.
    pub methods: Vec<String>,
}

impl Matcher {
    pub fn path(path: PathMatch) -> Matcher {
        Matcher {
            path,
            case_sensitive: None,
            headers: Vec::new(),
            query_parameters: Vec::new(),
            methods: Vec::new(),
        }
    }
}

/// A header condition. No value: the header must be present.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderMatch {
    pub name: String,
    pub value: Option<String>,
    pub regex: bool,
    pub invert: bool,
}

/// A query parameter condition. No value: the parameter must be present.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryMatch {
    pub name: String,
    pub value: Option<String>,
    pub regex: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Forward to an upstream's cluster (which may be missing: Envoy 503s).
    Upstream(Key),
    /// Split between upstreams by weight (`multi` or an UpstreamGroup).
    Weighted(Vec<(Key, u32)>),
    /// A route to an UpstreamGroup that does not exist: kept, as in Gloo,
    /// pointing at no cluster (Envoy answers 503).
    UpstreamGroupNotFound(Key),
    Redirect(Redirect),
    DirectResponse {
        status: u32,
        body: Option<String>,
    },
}

impl Action {
    /// A route action (towards upstreams), not a redirect or direct
    /// response: route options about forwarding apply.
    pub fn forwards(&self) -> bool {
        matches!(
            self,
            Action::Upstream(_) | Action::Weighted(_) | Action::UpstreamGroupNotFound(_)
        )
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Redirect {
    pub host: Option<String>,
    pub path: Option<String>,
    pub prefix_rewrite: Option<String>,
    pub response_code: RedirectCode,
    pub https: bool,
    pub strip_query: bool,
    pub port: Option<u32>,
}

/// The status of a redirect.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RedirectCode {
    /// 301, Gloo's default.
    #[default]
    MovedPermanently,
    /// 302.
    Found,
    /// 303.
    SeeOther,
    /// 307.
    TemporaryRedirect,
    /// 308.
    PermanentRedirect,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct RouteOptions {
    pub upgrades: Vec<Upgrade>,
    pub timeout: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    pub prefix_rewrite: Option<String>,
    /// (pattern, substitution)
    pub regex_rewrite: Option<(String, String)>,
    pub host_rewrite: Option<String>,
    pub auto_host_rewrite: Option<bool>,
    pub max_stream_duration: Option<MaxStreamDuration>,
    pub retries: Option<Retries>,
    pub header_manipulation: Option<HeaderManipulation>,
    pub cors: Option<Cors>,
    pub shadowing: Option<Shadowing>,
    pub faults: Option<Faults>,
    /// Hash keys for ring hash / maglev upstreams, in order; empty: none.
    pub hash_policies: Vec<HashPolicy>,
    pub buffer_per_route: Option<BufferPerRoute>,
    pub csrf: Option<Csrf>,
    pub extauth: Option<ExtAuth>,
    /// Route metadata per filter namespace (each value a JSON object),
    /// sorted by namespace; empty: none.
    pub envoy_metadata: BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
}

/// Mirror a share of the route's requests to another upstream.
#[derive(Clone, Debug, PartialEq)]
pub struct Shadowing {
    pub upstream: Key,
    /// 0-100, as Gloo's float `percentage`.
    pub percentage: f32,
}

/// Injected faults; at least one of `abort` and `delay` is set.
#[derive(Clone, Debug, PartialEq)]
pub struct Faults {
    /// (percentage 0-100, HTTP status 200-599)
    pub abort: Option<(f32, u32)>,
    /// (percentage 0-100, a delay of at least a second)
    pub delay: Option<(f32, Duration)>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct HashPolicy {
    pub key: HashKey,
    pub terminal: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum HashKey {
    Header(String),
    Cookie {
        name: String,
        ttl: Option<Duration>,
        path: Option<String>,
    },
    SourceIp(bool),
}

#[derive(Clone, Debug, PartialEq)]
pub enum BufferPerRoute {
    Disabled,
    MaxRequestBytes(u32),
}

/// A CSRF policy as Gloo passes it to Envoy.
#[derive(Clone, Debug, PartialEq)]
pub struct Csrf {
    /// `None`: Gloo's default, enforced for 0% of requests.
    pub filter_enabled: Option<RuntimePercent>,
    pub shadow_enabled: Option<RuntimePercent>,
    pub additional_origins: Vec<OriginMatch>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RuntimePercent {
    pub numerator: u32,
    pub denominator: Denominator,
    pub runtime_key: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Denominator {
    #[default]
    Hundred,
    TenThousand,
    Million,
}

#[derive(Clone, Debug, PartialEq)]
pub enum OriginMatch {
    Exact { value: String, ignore_case: bool },
    Prefix { value: String, ignore_case: bool },
    Suffix { value: String, ignore_case: bool },
    Regex(String),
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cors {
    pub allow_origin: Vec<String>,
    pub allow_origin_regex: Vec<String>,
    pub allow_methods: Vec<String>,
    pub allow_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub max_age: Option<String>,
    pub allow_credentials: Option<bool>,
    pub disable_for_route: bool,
}

impl RouteOptions {
    /// `self` for a model route: the one shared empty value when `self`
    /// sets nothing, else its own allocation.
    pub fn shared(self) -> Arc<RouteOptions> {
        if self == *Self::empty() {
            Self::empty()
        } else {
            Arc::new(self)
        }
    }

    /// The one shared empty value.
    pub fn empty() -> Arc<RouteOptions> {
        static EMPTY: std::sync::LazyLock<Arc<RouteOptions>> =
            std::sync::LazyLock::new(|| Arc::new(RouteOptions::default()));
        Arc::clone(&EMPTY)
    }

    /// Gloo's delegation merge: every field the child leaves empty is taken
    /// from the parent; the child wins otherwise.
    pub fn inherit(&mut self, parent: &RouteOptions) {
        if self.upgrades.is_empty() {
            self.upgrades = parent.upgrades.clone();
        }
        fn fill<T: Clone>(c: &mut Option<T>, p: &Option<T>) {
            if c.is_none() {
                c.clone_from(p);
            }
        }
        fill(&mut self.timeout, &parent.timeout);
        fill(&mut self.idle_timeout, &parent.idle_timeout);
        fill(&mut self.prefix_rewrite, &parent.prefix_rewrite);
        fill(&mut self.regex_rewrite, &parent.regex_rewrite);
        fill(&mut self.host_rewrite, &parent.host_rewrite);
        fill(&mut self.auto_host_rewrite, &parent.auto_host_rewrite);
        fill(&mut self.max_stream_duration, &parent.max_stream_duration);
        fill(&mut self.retries, &parent.retries);
        fill(&mut self.header_manipulation, &parent.header_manipulation);
        fill(&mut self.cors, &parent.cors);
        fill(&mut self.shadowing, &parent.shadowing);
        fill(&mut self.faults, &parent.faults);
        if self.hash_policies.is_empty() {
            self.hash_policies = parent.hash_policies.clone();
        }
        fill(&mut self.buffer_per_route, &parent.buffer_per_route);
        fill(&mut self.csrf, &parent.csrf);
        fill(&mut self.extauth, &parent.extauth);
        if self.envoy_metadata.is_empty() {
            self.envoy_metadata = parent.envoy_metadata.clone();
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct MaxStreamDuration {
    pub max_stream_duration: Option<Duration>,
    pub grpc_timeout_header_max: Option<Duration>,
    pub grpc_timeout_header_offset: Option<Duration>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Retries {
    pub retry_on: String,
    pub num_retries: u32,
    pub per_try_timeout: Option<Duration>,
    pub base_interval: Option<Duration>,
    pub max_interval: Option<Duration>,
    pub retriable_status_codes: Vec<u32>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct HeaderManipulation {
    /// (name, value, append)
    pub request_headers_to_add: Vec<(String, String, bool)>,
    pub request_headers_to_remove: Vec<String>,
    pub response_headers_to_add: Vec<(String, String, bool)>,
    pub response_headers_to_remove: Vec<String>,
}

/// An upstream: where its hosts are and how Envoy talks to them. Every
/// `Option` left `None` keeps Envoy's (or Gloo's) default.
#[derive(Clone, Debug, PartialEq)]
pub struct Upstream {
    pub key: Key,
    pub hosts: Vec<HostPort>,
    /// TLS toward the hosts: `useTls: true`, or `useTls` unset and some
    /// host on port 443 (Gloo's rule).
    pub tls: Option<UpstreamTls>,
    /// Speak HTTP/2 (cleartext or over TLS) to the hosts.
    pub use_http2: bool,
    pub connection: ConnectionSettings,
    pub circuit_breakers: Option<CircuitBreakers>,
    pub health_checks: Vec<HealthCheck>,
    pub load_balancer: Option<LoadBalancer>,
    pub outlier_detection: Option<OutlierDetection>,
    /// `sslConfig`: TLS with the given certificates, SNI and verification.
    /// It takes the place of `tls` (Gloo's static plugin keeps a transport
    /// socket already set), per-host SNI still applying on top.
    pub ssl: Option<UpstreamSsl>,
    /// `httpProxyHostname`: the hosts are an HTTP CONNECT proxy.
    pub tunnel: Option<HttpTunnel>,
}

impl Upstream {
    /// An upstream with only hosts, every setting at its default.
    pub fn with_hosts(key: Key, hosts: Vec<HostPort>) -> Upstream {
        Upstream {
            key,
            hosts,
            tls: None,
            use_http2: false,
            connection: ConnectionSettings::default(),
            circuit_breakers: None,
            health_checks: Vec::new(),
            load_balancer: None,
            outlier_detection: None,
            ssl: None,
            tunnel: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct HostPort {
    pub addr: String,
    pub port: u32,
    /// Relative weight (≥ 1) among the upstream's hosts.
    pub weight: Option<u32>,
    /// Gloo's per-host SNI: `sniAddr`, else the addr (an IP too) unless
    /// `autoSniRewrite: false`. It names the host's transport socket match.
    pub sni: Option<String>,
}

impl HostPort {
    /// True when `addr` is an IP literal (not a name to resolve).
    pub fn is_ip(&self) -> bool {
        self.addr.parse::<std::net::IpAddr>().is_ok()
    }
}

/// Upstream TLS (no certificates: the server is not verified, as in Gloo
/// without `sslConfig`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpstreamTls {
    /// The SNI for hosts without their own: the first hostname, if any.
    pub sni: Option<String>,
}

/// An Upstream's `sslConfig` (or `httpConnectSslConfig`), resolved as
/// Gloo's `ResolveUpstreamSslConfig` does (`projects/gloo/pkg/utils/
/// ssl.go`): `oneWayTls` already applied (no client certificate). Paths
/// are as the proxy sees them: never read here.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpstreamSsl {
    /// Empty: no SNI (unless a host's own SNI applies).
    pub sni: String,
    /// `secretRef`: the client certificate and CA come from this Secret
    /// (in `Model::secrets`), over SDS, instead of files.
    pub secret: Option<UpstreamSecret>,
    /// Client certificate chain and key files, both or neither.
    pub client_cert: Option<(String, String)>,
    /// CA bundle file the server's certificate must chain to.
    pub root_ca: Option<String>,
    /// The server certificate must carry one of these SANs (needs `root_ca`).
    pub verify_subject_alt_names: Vec<String>,
    pub alpn_protocols: Vec<String>,
    pub allow_renegotiation: bool,
    /// `parameters`; `None` when not given (Envoy's defaults), as Gloo.
    pub params: Option<TlsParams>,
}

/// An Upstream's `sslConfig.secretRef`. Which parts of the Secret Envoy
/// is pointed at is decided when translating, from the Secret actually
/// served (its last accepted version), so the cluster never names an SDS
/// resource that is not sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamSecret {
    pub key: Key,
    /// Present the Secret's certificate, if it has one (`false` under
    /// `oneWayTls`, as Gloo drops the client certificate then).
    pub client_cert: bool,
}

/// HTTP CONNECT tunnelling (`httpProxyHostname`): the upstream's hosts are
/// a proxy asked to `CONNECT hostname`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpTunnel {
    pub hostname: String,
    /// `httpConnectHeaders`: (name, value), sent with the CONNECT request.
    pub headers: Vec<(String, String)>,
    /// `httpConnectSslConfig`: TLS toward the proxy itself.
    pub proxy_ssl: Option<UpstreamSsl>,
}

/// `connectionConfig`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConnectionSettings {
    pub max_requests_per_connection: Option<u32>,
    pub connect_timeout: Option<Duration>,
    pub tcp_keepalive: Option<TcpKeepalive>,
    pub per_connection_buffer_limit_bytes: Option<u32>,
    pub common_http: Option<CommonHttpOptions>,
}

/// TCP keepalive, times in whole seconds (what the socket options take).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TcpKeepalive {
    pub probes: Option<u32>,
    pub time_secs: Option<u32>,
    pub interval_secs: Option<u32>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct CommonHttpOptions {
    pub idle_timeout: Option<Duration>,
    pub max_headers_count: Option<u32>,
    pub max_stream_duration: Option<Duration>,
    pub headers_with_underscores: Option<HeadersWithUnderscores>,
}

/// What to do with request headers whose names contain underscores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadersWithUnderscores {
    Allow,
    RejectRequest,
    DropHeader,
}

/// Circuit breaker thresholds for the default priority; `None` keeps
/// Envoy's default for that threshold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CircuitBreakers {
    pub max_connections: Option<u32>,
    pub max_pending_requests: Option<u32>,
    pub max_requests: Option<u32>,
    pub max_retries: Option<u32>,
    pub track_remaining: bool,
}

/// An active health check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    pub timeout: Duration,
    pub interval: Duration,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
    pub no_traffic_interval: Option<Duration>,
    pub checker: HealthChecker,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HealthChecker {
    /// GET `path`; `host` is the Host header (default: the cluster name).
    Http { path: String, host: Option<String> },
    /// Connect only.
    Tcp,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadBalancer {
    /// Percent (0–100) of healthy hosts below which all hosts are used.
    pub healthy_panic_threshold: Option<f64>,
    pub update_merge_window: Option<Duration>,
    /// `None`: Envoy's default (round robin).
    pub policy: Option<LbPolicy>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LbPolicy {
    RoundRobin,
    LeastRequest {
        choice_count: Option<u32>,
    },
    Random,
    RingHash {
        minimum_ring_size: Option<u64>,
        maximum_ring_size: Option<u64>,
    },
    Maglev,
}

/// Passive health checking (ejection of failing hosts).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutlierDetection {
    pub consecutive_5xx: Option<u32>,
    pub interval: Duration,
    pub base_ejection_time: Option<Duration>,
    pub max_ejection_percent: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let d = |s| Duration::parse(s);
        assert_eq!(
            d("15s"),
            Ok(Duration {
                seconds: 15,
                nanos: 0
            })
        );
        assert_eq!(
            d("1.5s"),
            Ok(Duration {
                seconds: 1,
                nanos: 500_000_000
            })
        );
        assert_eq!(
            d("250ms"),
            Ok(Duration {
                seconds: 0,
                nanos: 250_000_000
            })
        );
        assert_eq!(
            d("0s"),
            Ok(Duration {
                seconds: 0,
                nanos: 0
            })
        );
        assert_eq!(
            d("2m"),
            Ok(Duration {
                seconds: 120,
                nanos: 0
            })
        );
        assert!(d("15").is_err());
        assert!(d("-1s").is_err());
        assert!(d("s").is_err());
        assert!(d("1.2.3s").is_err());
    }
}
