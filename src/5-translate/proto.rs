//! Small builders every Envoy resource builder shares, and Envoy's
//! well-known extension names, so no builder spells a wrapper type or a
//! filter name of its own (Contour's `protobuf/helpers.go` and `wellknown`).

use envoy_types::pb::envoy::config::core::v3::http_protocol_options::HeadersWithUnderscoresAction;
use envoy_types::pb::envoy::r#type::v3::{FractionalPercent, fractional_percent};
use envoy_types::pb::google::protobuf::{BoolValue, Duration, UInt32Value};

pub use envoy_types::util::pack_any as any;

use crate::model;

/// The HTTP connection manager network filter.
pub const HCM_FILTER: &str = "envoy.filters.network.http_connection_manager";
/// The router, always the last HTTP filter.
pub const ROUTER_FILTER: &str = "envoy.filters.http.router";
/// The CORS HTTP filter (and its per-route config key).
pub const CORS_FILTER: &str = "envoy.filters.http.cors";
/// The fault injection HTTP filter (and its per-route config key).
pub const FAULT_FILTER: &str = "envoy.filters.http.fault";
/// The buffer HTTP filter (and its per-route config key).
pub const BUFFER_FILTER: &str = "envoy.filters.http.buffer";
/// The CSRF HTTP filter (and its per-route config key).
pub const CSRF_FILTER: &str = "envoy.filters.http.csrf";
/// The external authorization HTTP filter (Gloo's extauth plugin) and its
/// per-route config key.
pub const EXT_AUTHZ_FILTER: &str = "envoy.filters.http.ext_authz";
/// The JWT filter's metadata namespace, which Gloo always passes to the
/// auth server (`JWTFilterName` in `plugins/extauth/config_generator.go`).
pub const JWT_AUTHN_FILTER: &str = "envoy.filters.http.jwt_authn";
/// The compressor HTTP filter (Gloo's gzip plugin), and its gzip library.
pub const COMPRESSOR_FILTER: &str = "envoy.filters.http.compressor";
pub const GZIP_COMPRESSOR_LIBRARY: &str = "envoy.compression.gzip.compressor";
/// The health check HTTP filter (Gloo's healthcheck plugin).
pub const HEALTH_CHECK_FILTER: &str = "envoy.filters.http.health_check";
/// The gRPC-Web HTTP filter (Gloo's grpcweb plugin, on by default).
pub const GRPC_WEB_FILTER: &str = "envoy.filters.http.grpc_web";
/// The HTTP connection manager's tracers (Gloo's tracing plugin).
pub const ZIPKIN_TRACER: &str = "envoy.tracers.zipkin";
pub const OPENTELEMETRY_TRACER: &str = "envoy.tracers.opentelemetry";
/// The listener filter that reads SNI, for SSL gateways.
pub const TLS_INSPECTOR: &str = "envoy.filters.listener.tls_inspector";
/// The TLS transport socket, downstream and upstream.
pub const TLS_TRANSPORT_SOCKET: &str = "envoy.transport_sockets.tls";
/// The file access logger.
pub const FILE_ACCESS_LOG: &str = "envoy.access_loggers.file";
/// The gRPC access log service client for HTTP entries (Gloo's
/// `wellknown.HTTPGRPCAccessLog`).
pub const HTTP_GRPC_ACCESS_LOG: &str = "envoy.access_loggers.http_grpc";
/// The listener filter that reads a PROXY protocol header.
pub const PROXY_PROTOCOL: &str = "envoy.filters.listener.proxy_protocol";
/// The connection limit network filter, under the name Gloo gives it (its
/// `connection_limit` plugin's `ExtensionName`; Envoy goes by the type).
pub const CONNECTION_LIMIT_FILTER: &str =
    "envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit";
/// Gloo's stat prefix for it: Envoy's stats are
/// `connection_limit.connection_limit.*`.
pub const CONNECTION_LIMIT_STAT_PREFIX: &str = "connection_limit";
/// The cluster's `typed_extension_protocol_options` key for HTTP options.
pub const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// Gloo's `ToEnvoyPercentage` (`plugins/internal/common`): a float
/// percentage as parts per million, multiplied in single precision and
/// truncated as Go's `uint32(percentage * 10000)` does.
pub fn percent_per_million(percentage: f32) -> FractionalPercent {
    FractionalPercent {
        numerator: (percentage * 10000.0_f32) as u32,
        denominator: fractional_percent::DenominatorType::Million as i32,
    }
}

pub fn u32(value: u32) -> UInt32Value {
    UInt32Value { value }
}

pub fn bool_value(value: bool) -> BoolValue {
    BoolValue { value }
}

pub fn duration(d: model::Duration) -> Duration {
    Duration {
        seconds: d.seconds,
        nanos: d.nanos,
    }
}

/// Envoy's number for a headers-with-underscores action (the HCM's and a
/// cluster's common HTTP options share the enum).
pub fn headers_with_underscores(a: model::HeadersWithUnderscores) -> i32 {
    (match a {
        model::HeadersWithUnderscores::Allow => HeadersWithUnderscoresAction::Allow,
        model::HeadersWithUnderscores::RejectRequest => HeadersWithUnderscoresAction::RejectRequest,
        model::HeadersWithUnderscores::DropHeader => HeadersWithUnderscoresAction::DropHeader,
    }) as i32
}
