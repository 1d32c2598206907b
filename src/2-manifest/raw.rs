//! Serde shapes of the Gloo resources edgeplane reads, field for field as
//! Gloo names them (camelCase, proto-JSON style).
//!
//! These are raw: they say what the user wrote. Meaning (defaults, reference
//! resolution, uniqueness) is given by `crate::validate`. Values that later
//! checks may point at carry their source span (`Spanned`).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_saphyr::Spanned;

/// A Kubernetes-shaped object: `apiVersion`, `kind`, `metadata`, `spec`.
/// `status` (as written by Gloo or kubectl) is accepted and ignored.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Envelope<S> {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: S,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub status: Option<IgnoredAny>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    // Written by Kubernetes/Gloo; carried in exported manifests (`kubectl get
    // -o yaml`), meaningless here: accepted and ignored.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub resource_version: Option<IgnoredAny>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub generation: Option<IgnoredAny>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub uid: Option<IgnoredAny>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub creation_timestamp: Option<IgnoredAny>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub self_link: Option<IgnoredAny>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub owner_references: Option<IgnoredAny>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub managed_fields: Option<IgnoredAny>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub finalizers: Option<IgnoredAny>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub deletion_timestamp: Option<IgnoredAny>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub deletion_grace_period_seconds: Option<IgnoredAny>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub generate_name: Option<IgnoredAny>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub cluster_name: Option<IgnoredAny>,
}

/// A reference to another resource; namespace defaults to the referrer's.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceRef {
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
}

// === Gateway (gateway.solo.io/v1) ===

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewaySpec {
    #[serde(default)]
    pub bind_address: Option<String>,
    #[schemars(with = "u32")]
    pub bind_port: Spanned<u32>,
    #[serde(default)]
    pub proxy_names: Vec<String>,
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub ssl: Option<Spanned<bool>>,
    #[serde(default)]
    pub http_gateway: Option<HttpGateway>,
    /// `tcpGateway`: one filter chain per TCP host proxying raw bytes.
    #[serde(default)]
    #[schemars(with = "Option<TcpGateway>")]
    pub tcp_gateway: Option<Spanned<TcpGateway>>,
    /// `hybridGateway`: HTTP and TCP gateways on one listener, told apart
    /// by their matchers (source address, SNI).
    #[serde(default)]
    #[schemars(with = "Option<HybridGateway>")]
    pub hybrid_gateway: Option<Spanned<HybridGateway>>,
    /// `true`: the listener expects the PROXY protocol (Gloo's proxyprotocol
    /// plugin; `options.proxyProtocol` configures the same filter).
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub use_proxy_proto: Option<Spanned<bool>>,
    /// Listener-level options (Gloo's `ListenerOptions`).
    #[serde(default)]
    pub options: Option<ListenerOptions>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub metadata: Option<IgnoredAny>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub status: Option<IgnoredAny>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpGateway {
    #[serde(default)]
    #[schemars(with = "Vec<ResourceRef>")]
    pub virtual_services: Vec<Spanned<ResourceRef>>,
    #[serde(default)]
    pub virtual_service_selector: BTreeMap<String, String>,
    #[serde(default)]
    pub virtual_service_expressions: Option<Expressions>,
    #[serde(default)]
    pub virtual_service_namespaces: Vec<String>,
    #[serde(default)]
    pub options: Option<HttpListenerOptions>,
}

/// `tcpGateway` (Gloo's `TcpGateway`): hosts in order, each a filter chain.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpGateway {
    #[serde(default)]
    #[schemars(with = "Vec<TcpHost>")]
    pub tcp_hosts: Vec<Spanned<TcpHost>>,
    #[serde(default)]
    pub options: Option<TcpListenerOptions>,
}

/// One `tcpHosts` entry (Gloo's `TcpHost`): where its connections go and,
/// with `sslConfig`, which SNI names it answers (TLS passthrough when the
/// config has `sniDomains` and no certificate, else TLS termination).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpHost {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    #[schemars(with = "Option<TcpSslConfig>")]
    pub ssl_config: Option<Spanned<TcpSslConfig>>,
    #[serde(default)]
    #[schemars(with = "Option<TcpAction>")]
    pub destination: Option<Spanned<TcpAction>>,
}

/// A TCP host's `destination` (Gloo's `TcpHost.TcpAction`): exactly one.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpAction {
    #[serde(default)]
    pub single: Option<Destination>,
    #[serde(default)]
    pub multi: Option<MultiDestination>,
    #[serde(default)]
    #[schemars(with = "Option<ResourceRef>")]
    pub upstream_group: Option<Spanned<ResourceRef>>,
    /// `{}`: the cluster is the SNI name the client sent (Envoy's
    /// `sni_cluster` filter).
    #[serde(default)]
    #[schemars(with = "Option<EmptyMessage>")]
    pub forward_sni_cluster_name: Option<Spanned<EmptyMessage>>,
}

/// `google.protobuf.Empty`: `{}`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmptyMessage {}

/// A TCP host's `sslConfig` (Gloo's `SslConfig`): with only `sniDomains`,
/// TLS passthrough matched by SNI; with `sslFiles`, TLS terminated by
/// Envoy. The same fields as a VirtualService's `sslConfig`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpSslConfig {
    #[serde(default)]
    #[schemars(with = "Option<SslFiles>")]
    pub ssl_files: Option<Spanned<SslFiles>>,
    #[serde(default)]
    #[schemars(with = "Option<ResourceRef>")]
    pub secret_ref: Option<Spanned<ResourceRef>>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub sds: Option<Spanned<IgnoredAny>>,
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub sni_domains: Vec<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub alpn_protocols: Vec<Spanned<String>>,
    #[serde(default)]
    pub one_way_tls: Option<bool>,
    #[serde(default)]
    pub parameters: Option<SslParameters>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub verify_subject_alt_name: Option<Spanned<IgnoredAny>>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub disable_tls_session_resumption: Option<Spanned<IgnoredAny>>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub transport_socket_connect_timeout: Option<Spanned<IgnoredAny>>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub ocsp_staple_policy: Option<Spanned<IgnoredAny>>,
}

impl TcpSslConfig {
    /// The same config as a VirtualService's, so one validation reads both.
    pub fn to_ssl_config(&self) -> SslConfig {
        SslConfig {
            ssl_files: self.ssl_files.clone(),
            secret_ref: self.secret_ref.clone(),
            sds: self.sds.clone(),
            sni_domains: self.sni_domains.clone(),
            alpn_protocols: self.alpn_protocols.clone(),
            one_way_tls: self.one_way_tls,
            parameters: self.parameters.clone(),
            verify_subject_alt_name: self.verify_subject_alt_name.clone(),
            disable_tls_session_resumption: self.disable_tls_session_resumption.clone(),
            transport_socket_connect_timeout: self.transport_socket_connect_timeout.clone(),
            ocsp_staple_policy: self.ocsp_staple_policy.clone(),
        }
    }
}

/// A hybrid matcher's `sslConfig`: only its `sniDomains` mean something
/// here (certificates go on the VirtualServices or TCP hosts).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MatcherSslConfig {
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub sni_domains: Vec<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub ssl_files: Option<Spanned<IgnoredAny>>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub secret_ref: Option<Spanned<IgnoredAny>>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub sds: Option<Spanned<IgnoredAny>>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub alpn_protocols: Option<Spanned<IgnoredAny>>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub one_way_tls: Option<Spanned<IgnoredAny>>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub parameters: Option<Spanned<IgnoredAny>>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub verify_subject_alt_name: Option<Spanned<IgnoredAny>>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub disable_tls_session_resumption: Option<Spanned<IgnoredAny>>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub transport_socket_connect_timeout: Option<Spanned<IgnoredAny>>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub ocsp_staple_policy: Option<Spanned<IgnoredAny>>,
}

/// `tcpGateway.options` (Gloo's `TcpListenerOptions`).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpListenerOptions {
    #[serde(default)]
    #[schemars(with = "Option<TcpProxySettings>")]
    pub tcp_proxy_settings: Option<Spanned<TcpProxySettings>>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub connection_limit: Option<Spanned<IgnoredAny>>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub local_ratelimit: Option<Spanned<IgnoredAny>>,
}

/// Gloo's `TcpProxySettings`, copied onto every host's `tcp_proxy`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpProxySettings {
    #[serde(default)]
    pub max_connect_attempts: Option<u32>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub idle_timeout: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<TunnelingConfig>")]
    pub tunneling_config: Option<Spanned<TunnelingConfig>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub access_log_flush_interval: Option<Spanned<String>>,
}

/// `tunnelingConfig`: the TCP stream goes upstream inside an HTTP CONNECT
/// (or POST) to `hostname`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TunnelingConfig {
    #[serde(default)]
    pub hostname: String,
    #[serde(default)]
    pub headers_to_add: Vec<TcpHeaderValueOption>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpHeaderValueOption {
    #[serde(default)]
    pub header: Option<TcpHeaderValue>,
    #[serde(default)]
    pub append: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpHeaderValue {
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub value: String,
}

/// `hybridGateway` (Gloo's `HybridGateway`).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HybridGateway {
    #[serde(default)]
    #[schemars(with = "Vec<MatchedGateway>")]
    pub matched_gateways: Vec<Spanned<MatchedGateway>>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub delegated_http_gateways: Option<Spanned<IgnoredAny>>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub delegated_tcp_gateways: Option<Spanned<IgnoredAny>>,
}

/// One `matchedGateways` entry: a matcher and exactly one gateway.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MatchedGateway {
    #[serde(default)]
    #[schemars(with = "Option<GatewayMatcher>")]
    pub matcher: Option<Spanned<GatewayMatcher>>,
    #[serde(default)]
    pub http_gateway: Option<HttpGateway>,
    #[serde(default)]
    #[schemars(with = "Option<TcpGateway>")]
    pub tcp_gateway: Option<Spanned<TcpGateway>>,
}

/// A matched gateway's `matcher` (Gloo's gateway `Matcher`).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewayMatcher {
    #[serde(default)]
    #[schemars(with = "Option<MatcherSslConfig>")]
    pub ssl_config: Option<Spanned<MatcherSslConfig>>,
    #[serde(default)]
    #[schemars(with = "Vec<CidrRange>")]
    pub source_prefix_ranges: Vec<Spanned<CidrRange>>,
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub passthrough_cipher_suites: Vec<Spanned<String>>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Expressions {
    #[serde(default)]
    pub expressions: Vec<Expression>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpListenerOptions {
    #[serde(default)]
    pub http_connection_manager_settings: Option<HcmSettings>,
    /// Gloo's listener buffer filter; `bufferPerRoute` tunes or disables
    /// it per route.
    #[serde(default)]
    #[schemars(with = "Option<BufferConfig>")]
    pub buffer: Option<Spanned<BufferConfig>>,
    /// Gloo keeps the connection limit on the HTTP listener's options (its
    /// `connection_limit` plugin reads `HttpListenerOptions`), not on the
    /// Gateway's `options`.
    #[serde(default)]
    #[schemars(with = "Option<ConnectionLimit>")]
    pub connection_limit: Option<Spanned<ConnectionLimit>>,
    /// Gloo's gzip plugin: Envoy's compressor filter with the gzip library.
    #[serde(default)]
    #[schemars(with = "Option<Gzip>")]
    pub gzip: Option<Spanned<Gzip>>,
    /// Gloo's healthcheck plugin: Envoy answers this path itself.
    #[serde(default)]
    #[schemars(with = "Option<ListenerHealthCheck>")]
    pub health_check: Option<Spanned<ListenerHealthCheck>>,
    /// Gloo's csrf plugin at listener level: the policy of the listener's
    /// CSRF filter (routes and weighted destinations override it).
    #[serde(default)]
    #[schemars(with = "Option<CsrfPolicy>")]
    pub csrf: Option<Spanned<CsrfPolicy>>,
    /// Gloo's grpcweb plugin: the filter is on unless `disable: true`.
    #[serde(default)]
    pub grpc_web: Option<GrpcWeb>,
    /// Gloo's extauth plugin: the external auth server every virtual host
    /// that opts in (`customAuth`) is checked against.
    #[serde(default)]
    #[schemars(with = "Option<ExtAuthSettings>")]
    pub extauth: Option<Spanned<ExtAuthSettings>>,
}

/// `httpGateway.options.extauth` (Gloo's `enterprise.gloo.solo.io`
/// `extauth.v1.Settings`, which open-source Gloo translates into Envoy's
/// `ext_authz` filter: `plugins/extauth/config_generator.go`).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExtAuthSettings {
    /// The Upstream of the auth server; it must exist.
    #[serde(default)]
    #[schemars(with = "Option<ResourceRef>")]
    pub extauthz_server_ref: Option<Spanned<ResourceRef>>,
    /// An HTTP auth server; without it (or with `grpcService`) gRPC.
    #[serde(default)]
    #[schemars(with = "Option<ExtAuthHttpService>")]
    pub http_service: Option<Spanned<ExtAuthHttpService>>,
    #[serde(default)]
    #[schemars(with = "Option<ExtAuthGrpcService>")]
    pub grpc_service: Option<Spanned<ExtAuthGrpcService>>,
    /// Read by Gloo's own ext-auth service only; Envoy has no such field.
    #[serde(default)]
    pub user_id_header: Option<String>,
    /// Default 200ms (Gloo's `DefaultTimeout`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub request_timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub failure_mode_allow: Option<bool>,
    #[serde(default)]
    pub request_body: Option<ExtAuthBufferSettings>,
    #[serde(default)]
    pub clear_route_cache: Option<bool>,
    /// An HTTP status code Envoy's `StatusCode` enum names; 0: Envoy's
    /// default (403).
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub status_on_error: Option<Spanned<u32>>,
    /// Gloo's `ApiVersion` has only `V3` (0).
    #[serde(default)]
    #[schemars(with = "Option<EnumValue>")]
    pub transport_api_version: Option<Spanned<EnumValue>>,
    #[serde(default)]
    pub stat_prefix: Option<String>,
}

/// `extauth.httpService`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExtAuthHttpService {
    #[serde(default)]
    pub path_prefix: Option<String>,
    #[serde(default)]
    pub request: Option<ExtAuthHttpRequest>,
    #[serde(default)]
    pub response: Option<ExtAuthHttpResponse>,
}

/// `extauth.httpService.request`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExtAuthHttpRequest {
    #[serde(default)]
    pub allowed_headers: Vec<String>,
    #[serde(default)]
    pub headers_to_add: BTreeMap<String, String>,
    #[serde(default)]
    pub allowed_headers_regex: Vec<String>,
}

/// `extauth.httpService.response`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExtAuthHttpResponse {
    #[serde(default)]
    pub allowed_upstream_headers: Vec<String>,
    #[serde(default)]
    pub allowed_client_headers: Vec<String>,
    #[serde(default)]
    pub allowed_upstream_headers_to_append: Vec<String>,
}

/// `extauth.grpcService`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExtAuthGrpcService {
    #[serde(default)]
    pub authority: Option<String>,
}

/// `extauth.requestBody` (Gloo's `BufferSettings`).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExtAuthBufferSettings {
    #[serde(default)]
    pub max_request_bytes: Option<u32>,
    #[serde(default)]
    pub allow_partial_message: Option<bool>,
    #[serde(default)]
    pub pack_as_bytes: Option<bool>,
}

/// `options.extauth` on a virtual host or route (Gloo's
/// `ExtAuthExtension`, a oneof). `configRef` (an `AuthConfig`) and
/// `customAuth.name` (named servers) are read only to be refused with
/// Gloo's enterprise-only message.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExtAuthExtension {
    #[serde(default)]
    pub disable: Option<bool>,
    /// Read only to be refused (an `AuthConfig`: Gloo Enterprise).
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub config_ref: Option<Spanned<IgnoredAny>>,
    #[serde(default)]
    #[schemars(with = "Option<CustomAuth>")]
    pub custom_auth: Option<Spanned<CustomAuth>>,
}

/// `extauth.customAuth`: context extensions for the auth server.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomAuth {
    #[serde(default)]
    pub context_extensions: BTreeMap<String, String>,
    /// Read only to be refused (named auth servers: Gloo Enterprise).
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub name: Option<Spanned<IgnoredAny>>,
}

/// `gzip` (Gloo's `solo.io.envoy.config.filter.http.gzip.v2.Gzip`).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Gzip {
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub memory_level: Option<Spanned<u32>>,
    #[serde(default)]
    pub content_length: Option<u32>,
    /// `DEFAULT`, `BEST` or `SPEED` (or 0-2).
    #[serde(default)]
    #[schemars(with = "Option<EnumValue>")]
    pub compression_level: Option<Spanned<EnumValue>>,
    /// `DEFAULT`, `FILTERED`, `HUFFMAN` or `RLE` (or 0-3).
    #[serde(default)]
    #[schemars(with = "Option<EnumValue>")]
    pub compression_strategy: Option<Spanned<EnumValue>>,
    #[serde(default)]
    pub content_type: Vec<String>,
    #[serde(default)]
    pub disable_on_etag_header: Option<bool>,
    #[serde(default)]
    pub remove_accept_encoding_header: Option<bool>,
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub window_bits: Option<Spanned<u32>>,
}

/// `healthCheck` (Gloo's `healthcheck.options.gloo.solo.io.HealthCheck`).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListenerHealthCheck {
    #[serde(default)]
    pub path: Option<String>,
}

/// `grpcWeb` (Gloo's `grpc_web.options.gloo.solo.io.GrpcWeb`).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcWeb {
    #[serde(default)]
    pub disable: Option<bool>,
}

/// `connectionLimit` (Gloo's `connection_limit.options.gloo.solo.io`).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectionLimit {
    #[serde(default)]
    #[schemars(with = "Option<u64>")]
    pub max_active_connections: Option<Spanned<u64>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub delay_before_close: Option<Spanned<String>>,
}

/// A Gateway's `options`: Gloo's `ListenerOptions`. `extensions` and
/// `tcpStats` are read only so validation can refuse them by name.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListenerOptions {
    #[serde(default)]
    pub access_logging_service: Option<AccessLoggingService>,
    #[serde(default)]
    pub listener_access_logging_service: Option<AccessLoggingService>,
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub per_connection_buffer_limit_bytes: Option<Spanned<u32>>,
    #[serde(default)]
    #[schemars(with = "Vec<SocketOption>")]
    pub socket_options: Vec<Spanned<SocketOption>>,
    #[serde(default)]
    #[schemars(with = "Option<ProxyProtocol>")]
    pub proxy_protocol: Option<Spanned<ProxyProtocol>>,
    #[serde(default)]
    #[schemars(with = "Option<ConnectionBalanceConfig>")]
    pub connection_balance_config: Option<Spanned<ConnectionBalanceConfig>>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub extensions: Option<Spanned<IgnoredAny>>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub tcp_stats: Option<Spanned<IgnoredAny>>,
}

/// `accessLoggingService` (Gloo's `als.options.gloo.solo.io`).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessLoggingService {
    #[serde(default)]
    #[schemars(with = "Vec<AccessLog>")]
    pub access_log: Vec<Spanned<AccessLog>>,
}

/// One access log: an output (`fileSink` or `grpcService`;
/// `openTelemetryService` is refused) and an optional filter.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessLog {
    #[serde(default)]
    #[schemars(with = "Option<FileSink>")]
    pub file_sink: Option<Spanned<FileSink>>,
    #[serde(default)]
    #[schemars(with = "Option<GrpcService>")]
    pub grpc_service: Option<Spanned<GrpcService>>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub open_telemetry_service: Option<Spanned<IgnoredAny>>,
    #[serde(default)]
    #[schemars(with = "Option<AccessLogFilter>")]
    pub filter: Option<Spanned<AccessLogFilter>>,
}

/// `grpcService`: Gloo's `als.options.gloo.solo.io.GrpcService`, sent to
/// Envoy's gRPC access log service client (`envoy.access_loggers.http_grpc`).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcService {
    /// The log stream's name, sent with every batch of entries.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub log_name: Option<Spanned<String>>,
    /// The cluster Envoy streams the logs to: an Upstream's cluster,
    /// `<name>_<namespace>`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub static_cluster_name: Option<Spanned<String>>,
    #[serde(default)]
    pub additional_request_headers_to_log: Vec<String>,
    #[serde(default)]
    pub additional_response_headers_to_log: Vec<String>,
    #[serde(default)]
    pub additional_response_trailers_to_log: Vec<String>,
    #[serde(default)]
    pub filter_state_objects_to_log: Vec<String>,
}

/// `fileSink`: a path as Envoy sees it, and at most one format.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileSink {
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub path: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub string_format: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub json_format: Option<Spanned<serde_json::Value>>,
}

/// Gloo's `AccessLogFilter`: exactly one of these is set (Envoy's own
/// filter messages, field for field).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessLogFilter {
    #[serde(default)]
    pub status_code_filter: Option<ComparisonFilterHolder>,
    #[serde(default)]
    pub duration_filter: Option<ComparisonFilterHolder>,
    #[serde(default)]
    pub not_health_check_filter: Option<Empty>,
    #[serde(default)]
    pub traceable_filter: Option<Empty>,
    #[serde(default)]
    pub runtime_filter: Option<RuntimeFilter>,
    #[serde(default)]
    pub and_filter: Option<FilterList>,
    #[serde(default)]
    pub or_filter: Option<FilterList>,
    #[serde(default)]
    pub header_filter: Option<HeaderFilter>,
    #[serde(default)]
    pub response_flag_filter: Option<ResponseFlagFilter>,
    #[serde(default)]
    pub grpc_status_filter: Option<GrpcStatusFilter>,
}

/// `statusCodeFilter` / `durationFilter`: `{comparison: {op, value}}`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ComparisonFilterHolder {
    #[serde(default)]
    pub comparison: Option<ComparisonFilter>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ComparisonFilter {
    #[serde(default)]
    #[schemars(with = "Option<EnumValue>")]
    pub op: Option<Spanned<EnumValue>>,
    #[serde(default)]
    pub value: Option<RuntimeUInt32>,
}

/// Envoy's `RuntimeUInt32`: a default and the runtime key that may
/// override it.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuntimeUInt32 {
    #[serde(default)]
    pub default_value: Option<u32>,
    #[serde(default)]
    pub runtime_key: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuntimeFilter {
    #[serde(default)]
    pub runtime_key: Option<String>,
    #[serde(default)]
    pub percent_sampled: Option<FractionalPercent>,
    #[serde(default)]
    pub use_independent_randomness: Option<bool>,
}

/// `andFilter` / `orFilter`: two or more filters.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FilterList {
    #[serde(default)]
    #[schemars(with = "Vec<AccessLogFilter>")]
    pub filters: Vec<Spanned<AccessLogFilter>>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderFilter {
    #[serde(default)]
    pub header: Option<EnvoyHeaderMatcher>,
}

/// Envoy's `HeaderMatcher` as Gloo's access-log filter carries it (not the
/// route matcher's `{name, value, regex}` shape).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvoyHeaderMatcher {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub exact_match: Option<String>,
    #[serde(default)]
    pub safe_regex_match: Option<SafeRegex>,
    #[serde(default)]
    pub range_match: Option<Int64Range>,
    #[serde(default)]
    pub present_match: Option<bool>,
    #[serde(default)]
    pub prefix_match: Option<String>,
    #[serde(default)]
    pub suffix_match: Option<String>,
    #[serde(default)]
    pub invert_match: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Int64Range {
    #[serde(default)]
    pub start: Option<i64>,
    #[serde(default)]
    pub end: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResponseFlagFilter {
    #[serde(default)]
    pub flags: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcStatusFilter {
    #[serde(default)]
    #[schemars(with = "Vec<EnumValue>")]
    pub statuses: Vec<Spanned<EnumValue>>,
    #[serde(default)]
    pub exclude: Option<bool>,
}

/// One of `socketOptions` (Envoy's `SocketOption`, as Gloo's API has it).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SocketOption {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub level: Option<i64>,
    #[serde(default)]
    pub name: Option<i64>,
    #[serde(default)]
    pub int_value: Option<i64>,
    /// Bytes, base64 as in proto JSON.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub buf_value: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<EnumValue>")]
    pub state: Option<Spanned<EnumValue>>,
}

/// `proxyProtocol` (Gloo's `proxy_protocol.options.gloo.solo.io`).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyProtocol {
    #[serde(default)]
    #[schemars(with = "Vec<ProxyProtocolRule>")]
    pub rules: Vec<Spanned<ProxyProtocolRule>>,
    #[serde(default)]
    pub allow_requests_without_proxy_protocol: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyProtocolRule {
    #[serde(default)]
    pub tlv_type: Option<u32>,
    #[serde(default)]
    pub on_tlv_present: Option<TlvKeyValuePair>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlvKeyValuePair {
    #[serde(default)]
    pub metadata_namespace: Option<String>,
    #[serde(default)]
    pub key: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectionBalanceConfig {
    #[serde(default)]
    pub exact_balance: Option<Empty>,
}

/// `httpConnectionManagerSettings`: the subset edgeplane implements.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HcmSettings {
    #[serde(default)]
    #[schemars(with = "Vec<UpgradeEntry>")]
    pub upgrades: Vec<Spanned<UpgradeEntry>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub stream_idle_timeout: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub idle_timeout: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub request_timeout: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub request_headers_timeout: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub drain_timeout: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub delayed_close_timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub use_remote_address: Option<bool>,
    #[serde(default)]
    pub server_name: Option<String>,
    #[serde(default)]
    pub skip_xff_append: Option<bool>,
    #[serde(default)]
    pub via: Option<String>,
    #[serde(default)]
    pub xff_num_trusted_hops: Option<u32>,
    #[serde(default)]
    pub generate_request_id: Option<bool>,
    #[serde(default, rename = "proxy100Continue")]
    pub proxy_100_continue: Option<bool>,
    #[serde(default)]
    pub max_request_headers_kb: Option<u32>,
    #[serde(default)]
    pub normalize_path: Option<bool>,
    #[serde(default)]
    pub merge_slashes: Option<bool>,
    #[serde(default)]
    pub preserve_external_request_id: Option<bool>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub max_connection_duration: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub max_stream_duration: Option<Spanned<String>>,
    #[serde(default)]
    pub max_headers_count: Option<u32>,
    #[serde(default)]
    pub max_requests_per_connection: Option<u32>,
    #[serde(default)]
    #[schemars(with = "Option<EnumValue>")]
    pub headers_with_underscores_action: Option<Spanned<EnumValue>>,
    #[serde(default)]
    #[schemars(with = "Option<EnumValue>")]
    pub server_header_transformation: Option<Spanned<EnumValue>>,
    #[serde(default)]
    #[schemars(with = "Option<EnumValue>")]
    pub path_with_escaped_slashes_action: Option<Spanned<EnumValue>>,
    #[serde(default)]
    #[schemars(with = "Option<EnumValue>")]
    pub codec_type: Option<Spanned<EnumValue>>,
    #[serde(default)]
    #[schemars(with = "Option<EnumValue>")]
    pub forward_client_cert_details: Option<Spanned<EnumValue>>,
    #[serde(default)]
    pub set_current_client_cert_details: Option<ClientCertDetails>,
    #[serde(default)]
    pub accept_http10: Option<bool>,
    #[serde(default)]
    pub default_host_for_http10: Option<String>,
    #[serde(default)]
    pub allow_chunked_length: Option<bool>,
    #[serde(default)]
    pub enable_trailers: Option<bool>,
    #[serde(default)]
    pub proper_case_header_key_format: Option<bool>,
    #[serde(default)]
    pub preserve_case_header_key_format: Option<bool>,
    #[serde(default)]
    pub strip_any_host_port: Option<bool>,
    #[serde(default)]
    pub append_x_forwarded_port: Option<bool>,
    #[serde(default)]
    pub uuid_request_id_config: Option<UuidRequestIdConfig>,
    #[serde(default)]
    #[schemars(with = "Option<Http2Options>")]
    pub http2_protocol_options: Option<Spanned<Http2Options>>,
    #[serde(default)]
    pub internal_address_config: Option<InternalAddressConfig>,
    /// Gloo's tracing plugin (`ListenerTracingSettings`).
    #[serde(default)]
    #[schemars(with = "Option<ListenerTracing>")]
    pub tracing: Option<Spanned<ListenerTracing>>,
}

/// `tracing` (Gloo's `tracing.options.gloo.solo.io.ListenerTracingSettings`).
/// The providers and tag sources edgeplane does not implement are read
/// only so validation can refuse them by name.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListenerTracing {
    #[serde(default)]
    pub request_headers_for_tags: Vec<String>,
    #[serde(default)]
    pub verbose: Option<bool>,
    #[serde(default)]
    pub trace_percentages: Option<TracePercentages>,
    #[serde(default)]
    #[schemars(with = "Option<ZipkinConfig>")]
    pub zipkin_config: Option<Spanned<ZipkinConfig>>,
    #[serde(default)]
    #[schemars(with = "Option<OpenTelemetryConfig>")]
    pub open_telemetry_config: Option<Spanned<OpenTelemetryConfig>>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub datadog_config: Option<Spanned<IgnoredAny>>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub open_census_config: Option<Spanned<IgnoredAny>>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub environment_variables_for_tags: Option<Spanned<IgnoredAny>>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub literals_for_tags: Option<Spanned<IgnoredAny>>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub metadata_for_tags: Option<Spanned<IgnoredAny>>,
    #[serde(default)]
    pub spawn_upstream_span: Option<bool>,
}

/// `tracePercentages`: each 0-100, 100 when unset.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TracePercentages {
    #[serde(default)]
    pub client_sample_percentage: Option<f32>,
    #[serde(default)]
    pub random_sample_percentage: Option<f32>,
    #[serde(default)]
    pub overall_sample_percentage: Option<f32>,
}

/// `zipkinConfig` (Gloo's `solo.io.envoy.config.trace.v3.ZipkinConfig`).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ZipkinConfig {
    #[serde(default)]
    #[schemars(with = "Option<ResourceRef>")]
    pub collector_upstream_ref: Option<Spanned<ResourceRef>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub cluster_name: Option<Spanned<String>>,
    #[serde(default)]
    pub collector_endpoint: Option<String>,
    #[serde(default, rename = "traceId128bit")]
    pub trace_id_128bit: Option<bool>,
    #[serde(default)]
    pub shared_span_context: Option<bool>,
    /// `HTTP_JSON` or `HTTP_PROTO` (or 1-2).
    #[serde(default)]
    #[schemars(with = "Option<EnumValue>")]
    pub collector_endpoint_version: Option<Spanned<EnumValue>>,
}

/// `openTelemetryConfig` (Gloo's
/// `solo.io.envoy.config.trace.v3.OpenTelemetryConfig`).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OpenTelemetryConfig {
    #[serde(default)]
    #[schemars(with = "Option<ResourceRef>")]
    pub collector_upstream_ref: Option<Spanned<ResourceRef>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub cluster_name: Option<Spanned<String>>,
    #[serde(default)]
    pub service_name: Option<String>,
    #[serde(default)]
    pub grpc_service: Option<OtelGrpcService>,
    #[serde(default)]
    pub max_cache_size: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OtelGrpcService {
    #[serde(default)]
    pub authority: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientCertDetails {
    #[serde(default)]
    pub subject: Option<bool>,
    #[serde(default)]
    pub cert: Option<bool>,
    #[serde(default)]
    pub chain: Option<bool>,
    #[serde(default)]
    pub dns: Option<bool>,
    #[serde(default)]
    pub uri: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UuidRequestIdConfig {
    #[serde(default)]
    pub pack_trace_reason: Option<bool>,
    #[serde(default)]
    pub use_request_id_for_trace_sampling: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Http2Options {
    #[serde(default)]
    pub initial_stream_window_size: Option<u32>,
    #[serde(default)]
    pub initial_connection_window_size: Option<u32>,
    #[serde(default)]
    pub max_concurrent_streams: Option<u32>,
    #[serde(default)]
    pub override_stream_error_on_invalid_http_message: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InternalAddressConfig {
    #[serde(default)]
    pub unix_sockets: Option<bool>,
    #[serde(default)]
    pub cidr_ranges: Vec<CidrRange>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CidrRange {
    pub address_prefix: String,
    #[serde(default)]
    pub prefix_len: Option<u32>,
}

/// One entry of an `upgrades` list: exactly one upgrade type is set.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpgradeEntry {
    #[serde(default)]
    pub websocket: Option<UpgradeSpec>,
    #[serde(default)]
    pub connect: Option<UpgradeSpec>,
    #[serde(default)]
    pub connect_terminate: Option<UpgradeSpec>,
}

/// `enabled` unset means enabled (Envoy's default), as in Gloo.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpgradeSpec {
    #[serde(default)]
    pub enabled: Option<bool>,
}

// === VirtualService (gateway.solo.io/v1) ===

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VirtualServiceSpec {
    #[serde(default)]
    pub virtual_host: Option<VirtualHost>,
    /// A VirtualService's downstream `sslConfig`; an Upstream's has its
    /// own shape (`UpstreamSslConfig`).
    /// Boxed: it is large, and `DocumentBody` holds this spec unboxed.
    #[serde(default)]
    #[schemars(with = "Option<SslConfig>")]
    pub ssl_config: Option<Box<Spanned<SslConfig>>>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub metadata: Option<IgnoredAny>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub status: Option<IgnoredAny>,
}

/// A VirtualService's `sslConfig` (Gloo's `SslConfig`): TLS termination
/// for the VirtualService on an SSL Gateway. Fields Gloo has and edgeplane
/// does not implement are read (so the error can name them) and rejected by
/// validation.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SslConfig {
    #[serde(default)]
    #[schemars(with = "Option<SslFiles>")]
    pub ssl_files: Option<Spanned<SslFiles>>,
    /// A Gloo `Secret` with a `tls` certificate; served to Envoy over SDS.
    #[serde(default)]
    #[schemars(with = "Option<ResourceRef>")]
    pub secret_ref: Option<Spanned<ResourceRef>>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub sds: Option<Spanned<IgnoredAny>>,
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub sni_domains: Vec<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub alpn_protocols: Vec<Spanned<String>>,
    #[serde(default)]
    pub one_way_tls: Option<bool>,
    #[serde(default)]
    pub parameters: Option<SslParameters>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub verify_subject_alt_name: Option<Spanned<IgnoredAny>>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub disable_tls_session_resumption: Option<Spanned<IgnoredAny>>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub transport_socket_connect_timeout: Option<Spanned<IgnoredAny>>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub ocsp_staple_policy: Option<Spanned<IgnoredAny>>,
}

/// `sslFiles`: paths as the proxy (Envoy) sees them.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SslFiles {
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub tls_cert: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub tls_key: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub root_ca: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub ocsp_staple: Option<Spanned<IgnoredAny>>,
}

/// `parameters`: Gloo's `SslParameters`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SslParameters {
    #[serde(default)]
    #[schemars(with = "Option<EnumValue>")]
    pub minimum_protocol_version: Option<Spanned<EnumValue>>,
    #[serde(default)]
    #[schemars(with = "Option<EnumValue>")]
    pub maximum_protocol_version: Option<Spanned<EnumValue>>,
    #[serde(default)]
    pub cipher_suites: Vec<String>,
    #[serde(default)]
    pub ecdh_curves: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VirtualHost {
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub domains: Vec<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Vec<Route>")]
    pub routes: Vec<Spanned<Route>>,
    /// Boxed: it is large, and `DocumentBody` holds the spec unboxed.
    #[serde(default)]
    #[schemars(with = "Option<VirtualHostOptions>")]
    pub options: Option<Box<VirtualHostOptions>>,
    /// VirtualHostOption resources whose options fill what `options`
    /// leaves unset, earlier refs first (Gloo's
    /// `mergeDelegatedVirtualHostOptions`).
    #[serde(default)]
    pub options_config_refs: Option<DelegateOptionsRefs>,
}

/// `optionsConfigRefs`: Gloo's `DelegateOptionsRefs`. As in Gloo, a ref's
/// namespace is not defaulted: one without it finds nothing.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DelegateOptionsRefs {
    #[serde(default)]
    #[schemars(with = "Vec<OptionsRef>")]
    pub delegate_options: Vec<Spanned<OptionsRef>>,
}

/// A reference to a VirtualHostOption or RouteOption. Unlike other
/// references, its namespace is not defaulted (as in Gloo): without one it
/// finds nothing.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OptionsRef {
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
}

/// `virtualHost.options` (Gloo's `VirtualHostOptions`): the subset open
/// source Envoy expresses. Enterprise options (jwt, rbac, rate
/// limits, waf, dlp, transformations, extProc) are refused by name.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VirtualHostOptions {
    #[serde(default)]
    pub header_manipulation: Option<HeaderManipulation>,
    #[serde(default)]
    #[schemars(with = "Option<CorsPolicy>")]
    pub cors: Option<Spanned<CorsPolicy>>,
    #[serde(default)]
    #[schemars(with = "Option<CorsPolicyMergeSettings>")]
    pub cors_policy_merge_settings: Option<Spanned<CorsPolicyMergeSettings>>,
    #[serde(default)]
    #[schemars(with = "Option<Retries>")]
    pub retries: Option<Spanned<Retries>>,
    #[serde(default)]
    #[schemars(with = "Option<CsrfPolicy>")]
    pub csrf: Option<Spanned<CsrfPolicy>>,
    #[serde(default)]
    #[schemars(with = "Option<BufferPerRoute>")]
    pub buffer_per_route: Option<Spanned<BufferPerRoute>>,
    #[serde(default)]
    pub include_request_attempt_count: Option<bool>,
    #[serde(default)]
    pub include_attempt_count_in_response: Option<bool>,
    /// Gloo's extauth plugin: virtual hosts opt in with `customAuth`.
    #[serde(default)]
    #[schemars(with = "Option<ExtAuthExtension>")]
    pub extauth: Option<Spanned<ExtAuthExtension>>,
}

/// `corsPolicyMergeSettings`: how a route's CORS policy takes the virtual
/// host's. `exposeHeaders`: `DEFAULT` (the route's list) or `UNION`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CorsPolicyMergeSettings {
    #[serde(default)]
    #[schemars(with = "Option<EnumValue>")]
    pub expose_headers: Option<Spanned<EnumValue>>,
}

/// One route of a VirtualService or RouteTable: its fields, shared, and
/// where its positions are. Shared because a route whose text did not
/// change is taken from the file's previous parse (`cache`, `route_cut`):
/// with the fields behind an `Arc` that is a reference count, not a deep
/// copy of every string and matcher, and dropping the old parse is as cheap.
/// The line shift is the route's own (its place in the file moves when a
/// route is added above it), so it is not shared.
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "RouteFields")]
pub struct Route {
    fields: std::sync::Arc<RouteFields>,
    /// Lines to add to every position inside this route: a route parsed
    /// on its own (`route_cut`) has positions relative to its own text.
    pub line_shift: usize,
}

impl From<RouteFields> for Route {
    fn from(fields: RouteFields) -> Self {
        Route {
            fields: std::sync::Arc::new(fields),
            line_shift: 0,
        }
    }
}

impl Route {
    /// Its fields' allocation: a route kept from an earlier parse of its
    /// file (`ParseCache`) has the same one, so later stages can tell it is
    /// unchanged by pointer (`validate::ValidateMemo`).
    pub fn shared_fields(&self) -> &std::sync::Arc<RouteFields> {
        &self.fields
    }
}

impl std::ops::Deref for Route {
    type Target = RouteFields;
    fn deref(&self) -> &RouteFields {
        &self.fields
    }
}

/// The schema is the fields' (a route in YAML is a plain mapping).
impl JsonSchema for Route {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        RouteFields::schema_name()
    }
    fn schema_id() -> std::borrow::Cow<'static, str> {
        RouteFields::schema_id()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        RouteFields::json_schema(generator)
    }
    fn inline_schema() -> bool {
        RouteFields::inline_schema()
    }
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(rename = "Route")]
pub struct RouteFields {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "exact_vec")]
    #[schemars(with = "Vec<Matcher>")]
    pub matchers: Vec<Spanned<Matcher>>,
    #[serde(default)]
    pub inheritable_matchers: Option<bool>,
    #[serde(default)]
    pub inheritable_path_matchers: Option<bool>,
    #[serde(default)]
    pub route_action: Option<RouteAction>,
    #[serde(default)]
    pub redirect_action: Option<RedirectAction>,
    #[serde(default)]
    pub direct_response_action: Option<DirectResponseAction>,
    #[serde(default)]
    #[schemars(with = "Option<DelegateAction>")]
    pub delegate_action: Option<Spanned<DelegateAction>>,
    // Boxed: the options are most of a route's size (2.5 KiB inline), and
    // most routes have none. (Not a doc comment: it would reach the schema.)
    #[serde(default)]
    #[schemars(with = "Option<RouteOptions>")]
    pub options: Option<Box<RouteOptions>>,
    /// RouteOption resources whose options fill what `options` leaves
    /// unset, earlier refs first (Gloo's converter).
    #[serde(default)]
    pub options_config_refs: Option<DelegateOptionsRefs>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Matcher {
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub exact: Option<String>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub regex: Option<Spanned<String>>,
    #[serde(default)]
    pub case_sensitive: Option<bool>,
    #[serde(default)]
    #[schemars(with = "Vec<HeaderMatcher>")]
    pub headers: Vec<Spanned<HeaderMatcher>>,
    #[serde(default)]
    #[schemars(with = "Vec<QueryParameterMatcher>")]
    pub query_parameters: Vec<Spanned<QueryParameterMatcher>>,
    #[serde(default)]
    pub methods: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderMatcher {
    pub name: String,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub regex: Option<bool>,
    #[serde(default)]
    pub invert_match: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QueryParameterMatcher {
    pub name: String,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub regex: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteAction {
    #[serde(default)]
    pub single: Option<Destination>,
    #[serde(default)]
    pub multi: Option<MultiDestination>,
    #[serde(default)]
    #[schemars(with = "Option<ResourceRef>")]
    pub upstream_group: Option<Spanned<ResourceRef>>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Destination {
    #[serde(default)]
    #[schemars(with = "Option<ResourceRef>")]
    pub upstream: Option<Spanned<ResourceRef>>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MultiDestination {
    #[serde(default)]
    #[schemars(with = "Vec<WeightedDestination>")]
    pub destinations: Vec<Spanned<WeightedDestination>>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WeightedDestination {
    pub destination: Destination,
    #[serde(default)]
    pub weight: Option<u32>,
}

/// `responseCode` as Gloo writes it: the enum name or its number.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum EnumValue {
    Number(u32),
    Name(String),
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RedirectAction {
    #[serde(default)]
    pub host_redirect: Option<String>,
    #[serde(default)]
    pub path_redirect: Option<String>,
    #[serde(default)]
    pub prefix_rewrite: Option<String>,
    #[serde(default)]
    pub response_code: Option<EnumValue>,
    #[serde(default)]
    pub https_redirect: Option<bool>,
    #[serde(default)]
    pub strip_query: Option<bool>,
    #[serde(default)]
    pub port_redirect: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DirectResponseAction {
    #[serde(default)]
    pub status: u32,
    #[serde(default)]
    pub body: Option<String>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DelegateAction {
    #[serde(default, rename = "ref")]
    pub reference: Option<ResourceRef>,
    #[serde(default)]
    pub selector: Option<RouteTableSelector>,
    /// Deprecated Gloo form of `ref`; takes precedence when set.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteTableSelector {
    #[serde(default)]
    pub namespaces: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub expressions: Vec<Expression>,
}

/// A label expression: `key`, `operator` (Gloo's names), `values`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Expression {
    pub key: String,
    pub operator: String,
    #[serde(default)]
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteOptions {
    #[serde(default)]
    #[schemars(with = "Vec<UpgradeEntry>")]
    pub upgrades: Vec<Spanned<UpgradeEntry>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub idle_timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub prefix_rewrite: Option<String>,
    #[serde(default)]
    #[schemars(with = "Option<RegexRewrite>")]
    pub regex_rewrite: Option<Spanned<RegexRewrite>>,
    #[serde(default)]
    pub host_rewrite: Option<String>,
    #[serde(default)]
    pub auto_host_rewrite: Option<bool>,
    #[serde(default)]
    pub max_stream_duration: Option<MaxStreamDuration>,
    #[serde(default)]
    #[schemars(with = "Option<Retries>")]
    pub retries: Option<Spanned<Retries>>,
    #[serde(default)]
    pub header_manipulation: Option<HeaderManipulation>,
    #[serde(default)]
    #[schemars(with = "Option<CorsPolicy>")]
    pub cors: Option<Spanned<CorsPolicy>>,
    #[serde(default)]
    #[schemars(with = "Option<RouteShadowing>")]
    pub shadowing: Option<Spanned<RouteShadowing>>,
    #[serde(default)]
    #[schemars(with = "Option<RouteFaults>")]
    pub faults: Option<Spanned<RouteFaults>>,
    #[serde(default)]
    #[schemars(with = "Option<RouteActionHashConfig>")]
    pub lb_hash: Option<Spanned<RouteActionHashConfig>>,
    #[serde(default)]
    #[schemars(with = "Option<BufferPerRoute>")]
    pub buffer_per_route: Option<Spanned<BufferPerRoute>>,
    #[serde(default)]
    #[schemars(with = "Option<CsrfPolicy>")]
    pub csrf: Option<Spanned<CsrfPolicy>>,
    /// Gloo's extauth plugin: `disable`, or `customAuth` context
    /// extensions; unset inherits the virtual host's.
    #[serde(default)]
    #[schemars(with = "Option<ExtAuthExtension>")]
    pub extauth: Option<Spanned<ExtAuthExtension>>,
    /// Gloo's `map<string, google.protobuf.Struct>`: any YAML mapping per
    /// filter namespace.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, BTreeMap<String, serde_json::Value>>")]
    pub envoy_metadata: Option<Spanned<BTreeMap<String, serde_json::Value>>>,
}

/// `options.shadowing` (Gloo's `shadowing.RouteShadowing`).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteShadowing {
    #[serde(default)]
    #[schemars(with = "Option<ResourceRef>")]
    pub upstream: Option<Spanned<ResourceRef>>,
    #[serde(default)]
    pub percentage: f32,
}

/// `options.faults` (Gloo's `faultinjection.RouteFaults`).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteFaults {
    #[serde(default)]
    #[schemars(with = "Option<RouteAbort>")]
    pub abort: Option<Spanned<RouteAbort>>,
    #[serde(default)]
    #[schemars(with = "Option<RouteDelay>")]
    pub delay: Option<Spanned<RouteDelay>>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteAbort {
    #[serde(default)]
    pub percentage: f32,
    #[serde(default)]
    pub http_status: u32,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteDelay {
    #[serde(default)]
    pub percentage: f32,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub fixed_delay: Option<Spanned<String>>,
}

/// `options.lbHash` (Gloo's `lbhash.RouteActionHashConfig`).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteActionHashConfig {
    #[serde(default)]
    #[schemars(with = "Vec<HashPolicy>")]
    pub hash_policies: Vec<Spanned<HashPolicy>>,
}

/// One hash key: exactly one of `header`, `cookie`, `sourceIp`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HashPolicy {
    #[serde(default)]
    pub header: Option<String>,
    #[serde(default)]
    pub cookie: Option<HashCookie>,
    #[serde(default)]
    pub source_ip: Option<bool>,
    #[serde(default)]
    pub terminal: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HashCookie {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub ttl: Option<Spanned<String>>,
    #[serde(default)]
    pub path: Option<String>,
}

/// `options.bufferPerRoute`: `disabled` or `buffer`, not both.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BufferPerRoute {
    #[serde(default)]
    pub disabled: Option<bool>,
    #[serde(default)]
    pub buffer: Option<BufferConfig>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BufferConfig {
    #[serde(default)]
    pub max_request_bytes: Option<u32>,
}

/// `options.csrf` (Envoy's CSRF policy as Gloo re-exports it).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CsrfPolicy {
    #[serde(default)]
    pub filter_enabled: Option<RuntimeFractionalPercent>,
    #[serde(default)]
    pub shadow_enabled: Option<RuntimeFractionalPercent>,
    #[serde(default)]
    pub additional_origins: Vec<OriginMatcher>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuntimeFractionalPercent {
    #[serde(default)]
    pub default_value: Option<FractionalPercent>,
    #[serde(default)]
    pub runtime_key: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FractionalPercent {
    #[serde(default)]
    pub numerator: u32,
    /// `HUNDRED` (default), `TEN_THOUSAND` or `MILLION`, or 0-2.
    #[serde(default)]
    #[schemars(with = "Option<EnumValue>")]
    pub denominator: Option<Spanned<EnumValue>>,
}

/// A string matcher: exactly one of `exact`, `prefix`, `suffix`,
/// `safeRegex`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OriginMatcher {
    #[serde(default)]
    pub exact: Option<String>,
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub suffix: Option<String>,
    #[serde(default)]
    pub safe_regex: Option<SafeRegex>,
    #[serde(default)]
    pub ignore_case: Option<bool>,
}

/// Envoy's `RegexMatcher` as Gloo users write it; `googleRe2` (RE2 is the
/// only engine) is accepted and changes nothing.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SafeRegex {
    pub regex: String,
    #[serde(default)]
    #[schemars(with = "Option<BTreeMap<String, serde_json::Value>>")]
    pub google_re2: Option<IgnoredAny>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CorsPolicy {
    #[serde(default)]
    pub allow_origin: Vec<String>,
    #[serde(default)]
    pub allow_origin_regex: Vec<String>,
    #[serde(default)]
    pub allow_methods: Vec<String>,
    #[serde(default)]
    pub allow_headers: Vec<String>,
    #[serde(default)]
    pub expose_headers: Vec<String>,
    #[serde(default)]
    pub max_age: Option<String>,
    #[serde(default)]
    pub allow_credentials: Option<bool>,
    #[serde(default)]
    pub disable_for_route: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegexRewrite {
    pub pattern: RegexPattern,
    #[serde(default)]
    pub substitution: String,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegexPattern {
    pub regex: String,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MaxStreamDuration {
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub max_stream_duration: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub grpc_timeout_header_max: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub grpc_timeout_header_offset: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Retries {
    #[serde(default)]
    pub retry_on: Option<String>,
    #[serde(default)]
    pub num_retries: Option<u32>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub per_try_timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub retry_back_off: Option<RetryBackOff>,
    #[serde(default)]
    pub retriable_status_codes: Vec<u32>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryBackOff {
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub base_interval: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub max_interval: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderManipulation {
    #[serde(default)]
    #[schemars(with = "Vec<HeaderValueOption>")]
    pub request_headers_to_add: Vec<Spanned<HeaderValueOption>>,
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub request_headers_to_remove: Vec<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Vec<HeaderValueOption>")]
    pub response_headers_to_add: Vec<Spanned<HeaderValueOption>>,
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub response_headers_to_remove: Vec<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderValueOption {
    pub header: HeaderValue,
    #[serde(default)]
    pub append: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderValue {
    pub key: String,
    #[serde(default)]
    pub value: String,
}

// === RouteTable (gateway.solo.io/v1) ===

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteTableSpec {
    #[serde(default)]
    #[schemars(with = "Vec<Route>")]
    pub routes: Vec<Spanned<Route>>,
    #[serde(default)]
    pub weight: Option<i32>,
    // Present only in Gloo's flat file layout, where metadata sits beside
    // the spec fields; `parse` rejects them in the Kubernetes shape.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub metadata: Option<IgnoredAny>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub status: Option<IgnoredAny>,
}

// === VirtualHostOption, RouteOption (gateway.solo.io/v1) ===

/// A VirtualHostOption: virtual host options kept apart, for
/// VirtualServices to reference (`virtualHost.optionsConfigRefs`).
/// `targetRefs` (Kubernetes Gateway API only) is refused by name.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VirtualHostOptionSpec {
    #[serde(default)]
    #[schemars(with = "Option<VirtualHostOptions>")]
    pub options: Option<Box<VirtualHostOptions>>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub metadata: Option<IgnoredAny>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub status: Option<IgnoredAny>,
}

/// A RouteOption: route options kept apart, for routes to reference
/// (`optionsConfigRefs`). `targetRefs` is refused by name.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteOptionSpec {
    #[serde(default)]
    pub options: Option<RouteOptions>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub metadata: Option<IgnoredAny>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub status: Option<IgnoredAny>,
}

// === UpstreamGroup (gloo.solo.io/v1) ===

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpstreamGroupSpec {
    #[serde(default)]
    #[schemars(with = "Vec<WeightedDestination>")]
    pub destinations: Vec<Spanned<WeightedDestination>>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub metadata: Option<IgnoredAny>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub status: Option<IgnoredAny>,
}

// === Upstream (gloo.solo.io/v1) ===

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpstreamSpec {
    #[serde(default, rename = "static")]
    pub static_: Option<StaticSpec>,
    #[serde(default)]
    pub use_http2: Option<bool>,
    #[serde(default)]
    pub connection_config: Option<ConnectionConfig>,
    #[serde(default)]
    pub circuit_breakers: Option<CircuitBreakerConfig>,
    #[serde(default)]
    #[schemars(with = "Vec<HealthCheck>")]
    pub health_checks: Vec<Spanned<HealthCheck>>,
    #[serde(default)]
    #[schemars(with = "Option<LoadBalancerConfig>")]
    pub load_balancer_config: Option<Spanned<LoadBalancerConfig>>,
    #[serde(default)]
    #[schemars(with = "Option<OutlierDetection>")]
    pub outlier_detection: Option<Spanned<OutlierDetection>>,
    /// TLS toward the hosts (Gloo's `UpstreamSslConfig`).
    #[serde(default)]
    #[schemars(with = "Option<UpstreamSslConfig>")]
    pub ssl_config: Option<Spanned<UpstreamSslConfig>>,
    /// The hosts are an HTTP CONNECT proxy; this is the tunnel's target.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub http_proxy_hostname: Option<Spanned<String>>,
    /// TLS toward the HTTP CONNECT proxy itself.
    #[serde(default)]
    #[schemars(with = "Option<UpstreamSslConfig>")]
    pub http_connect_ssl_config: Option<Spanned<UpstreamSslConfig>>,
    /// Headers sent with the CONNECT request.
    #[serde(default)]
    #[schemars(with = "Vec<HeaderValue>")]
    pub http_connect_headers: Vec<Spanned<HeaderValue>>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub metadata: Option<IgnoredAny>,
    /// Written by Gloo's discovery (function names, labels): accepted and
    /// ignored, as edgeplane discovers nothing.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub discovery_metadata: Option<IgnoredAny>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub status: Option<IgnoredAny>,
}

/// An Upstream's `sslConfig` (and `httpConnectSslConfig`): Gloo's
/// `UpstreamSslConfig`. `sds` is read so validation can name it when it
/// refuses it.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpstreamSslConfig {
    #[serde(default)]
    #[schemars(with = "Option<SslFiles>")]
    pub ssl_files: Option<Spanned<SslFiles>>,
    /// A Gloo `Secret` with a `tls` client certificate and/or `rootCa`;
    /// served to Envoy over SDS.
    #[serde(default)]
    #[schemars(with = "Option<ResourceRef>")]
    pub secret_ref: Option<Spanned<ResourceRef>>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub sds: Option<Spanned<IgnoredAny>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub sni: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub verify_subject_alt_name: Vec<Spanned<String>>,
    #[serde(default)]
    pub parameters: Option<SslParameters>,
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub alpn_protocols: Vec<Spanned<String>>,
    #[serde(default)]
    pub allow_renegotiation: Option<bool>,
    #[serde(default)]
    pub one_way_tls: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StaticSpec {
    #[serde(default)]
    #[schemars(with = "Vec<Host>")]
    pub hosts: Vec<Spanned<Host>>,
    #[serde(default)]
    pub use_tls: Option<bool>,
    #[serde(default)]
    pub auto_sni_rewrite: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Host {
    pub addr: String,
    pub port: u32,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub sni_addr: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub load_balancing_weight: Option<Spanned<u32>>,
}

/// An empty message (`roundRobin: {}`, `tcpHealthCheck: {}`): any field in
/// it is one edgeplane does not implement.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// A uint64 as proto-JSON writes it: a number or a decimal string.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum U64Value {
    Number(u64),
    Text(String),
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectionConfig {
    #[serde(default)]
    pub max_requests_per_connection: Option<u32>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub connect_timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub tcp_keepalive: Option<TcpKeepalive>,
    #[serde(default)]
    pub per_connection_buffer_limit_bytes: Option<u32>,
    #[serde(default)]
    pub common_http_protocol_options: Option<CommonHttpProtocolOptions>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpKeepalive {
    #[serde(default)]
    pub keepalive_probes: Option<u32>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub keepalive_time: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub keepalive_interval: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CommonHttpProtocolOptions {
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub idle_timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub max_headers_count: Option<u32>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub max_stream_duration: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<EnumValue>")]
    pub headers_with_underscores_action: Option<Spanned<EnumValue>>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CircuitBreakerConfig {
    #[serde(default)]
    pub max_connections: Option<u32>,
    #[serde(default)]
    pub max_pending_requests: Option<u32>,
    #[serde(default)]
    pub max_requests: Option<u32>,
    #[serde(default)]
    pub max_retries: Option<u32>,
    #[serde(default)]
    pub track_remaining: Option<bool>,
}

/// Gloo's (Envoy v2-shaped) HealthCheck: the subset edgeplane implements.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheck {
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub interval: Option<Spanned<String>>,
    #[serde(default)]
    pub healthy_threshold: Option<u32>,
    #[serde(default)]
    pub unhealthy_threshold: Option<u32>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub no_traffic_interval: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<HttpHealthCheck>")]
    pub http_health_check: Option<Spanned<HttpHealthCheck>>,
    #[serde(default)]
    pub tcp_health_check: Option<Empty>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpHealthCheck {
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub host: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadBalancerConfig {
    #[serde(default)]
    #[schemars(with = "Option<f64>")]
    pub healthy_panic_threshold: Option<Spanned<f64>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub update_merge_window: Option<Spanned<String>>,
    #[serde(default)]
    pub round_robin: Option<Empty>,
    #[serde(default)]
    #[schemars(with = "Option<LeastRequest>")]
    pub least_request: Option<Spanned<LeastRequest>>,
    #[serde(default)]
    pub random: Option<Empty>,
    #[serde(default)]
    #[schemars(with = "Option<RingHash>")]
    pub ring_hash: Option<Spanned<RingHash>>,
    #[serde(default)]
    pub maglev: Option<Empty>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LeastRequest {
    #[serde(default)]
    pub choice_count: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RingHash {
    #[serde(default)]
    pub ring_hash_config: Option<RingHashConfig>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RingHashConfig {
    #[serde(default)]
    pub minimum_ring_size: Option<U64Value>,
    #[serde(default)]
    pub maximum_ring_size: Option<U64Value>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutlierDetection {
    #[serde(default, rename = "consecutive5xx")]
    pub consecutive_5xx: Option<u32>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub interval: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub base_ejection_time: Option<Spanned<String>>,
    #[serde(default)]
    pub max_ejection_percent: Option<u32>,
}

// === Secret (gloo.solo.io/v1) ===

/// Gloo's `Secret` as its file mode stores it: `metadata` and one kind of
/// secret (`tls`, `aws`, …) at the top level, no `spec` (Gloo's proto has
/// none). The same struct reads the form with `apiVersion`/`kind` (which
/// the parser checks from its first pass) and the flat form of
/// `secrets/<namespace>/<name>.yaml`. Only `tls` is used (served over SDS);
/// the other kinds are read so they can be named, and are not served.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretSpec {
    #[serde(default)]
    pub api_version: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    /// Read by the parser's first pass, as for every kind.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub metadata: Option<IgnoredAny>,
    /// A TLS certificate, its key and an optional CA (Gloo's `TlsSecret`).
    #[serde(default)]
    #[schemars(with = "Option<TlsSecret>")]
    pub tls: Option<Spanned<TlsSecret>>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub aws: Option<Spanned<IgnoredAny>>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub azure: Option<Spanned<IgnoredAny>>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub oauth: Option<Spanned<IgnoredAny>>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub api_key: Option<Spanned<IgnoredAny>>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub header: Option<Spanned<IgnoredAny>>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub credentials: Option<Spanned<IgnoredAny>>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub encryption: Option<Spanned<IgnoredAny>>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub extensions: Option<Spanned<IgnoredAny>>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub status: Option<IgnoredAny>,
}

/// Gloo's `TlsSecret`: PEM text, not paths. `Debug` never shows the key.
#[derive(Clone, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsSecret {
    /// PEM certificate chain, leaf first.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub cert_chain: Option<Spanned<String>>,
    /// PEM private key of the leaf certificate.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub private_key: Option<Spanned<String>>,
    /// PEM CA bundle: client certificates must chain to it (mTLS).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub root_ca: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub ocsp_staple: Option<Spanned<IgnoredAny>>,
}

impl std::fmt::Debug for TlsSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSecret")
            .field(
                "cert_chain",
                &self.cert_chain.as_ref().map(|s| s.value.len()),
            )
            .field(
                "private_key",
                &self.private_key.as_ref().map(|_| "[redacted]"),
            )
            .field("root_ca", &self.root_ca.as_ref().map(|s| s.value.len()))
            .finish()
    }
}

/// Specs that, in Gloo's flat file layout, carry `metadata`/`status` beside
/// their fields. In the Kubernetes shape those must not appear in `spec`.
pub trait FlatFields {
    fn has_flat_fields(&self) -> bool;
}

macro_rules! flat_fields {
    ($($t:ty),*) => {$(
        impl FlatFields for $t {
            fn has_flat_fields(&self) -> bool {
                self.metadata.is_some() || self.status.is_some()
            }
        }
    )*};
}

flat_fields!(
    GatewaySpec,
    VirtualServiceSpec,
    RouteTableSpec,
    UpstreamSpec,
    UpstreamGroupSpec,
    VirtualHostOptionSpec,
    RouteOptionSpec
);

/// A list kept at its length: serde grows a `Vec` from room for four, and
/// a route's one matcher (~260 bytes with its positions) would keep room
/// for four, ~1 KiB per route of a big VirtualService.
fn exact_vec<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    let mut v = Vec::<T>::deserialize(d)?;
    v.shrink_to_fit();
    Ok(v)
}
