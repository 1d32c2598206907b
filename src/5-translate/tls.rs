//! Downstream TLS for SSL gateways: one filter chain per distinct
//! `sslConfig` (VirtualServices differing only in SNI share one, as in
//! Gloo), matched by SNI, and the TLS inspector listener filter that reads
//! the SNI.
//!
//! Certificate files are referenced by path (`DataSource.filename`), as
//! Envoy sees them; nothing here reads them. Envoy watches those files
//! itself, so rotating a certificate on disk needs no xDS update.

use envoy_types::pb::envoy::config::core::v3::transport_socket;
use envoy_types::pb::envoy::config::core::v3::{DataSource, TransportSocket, data_source};
use envoy_types::pb::envoy::config::listener::v3::{
    Filter, FilterChain, FilterChainMatch, ListenerFilter, listener_filter,
};
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, DownstreamTlsContext, TlsCertificate,
    TlsParameters, common_tls_context, tls_parameters::TlsProtocol,
};

use super::proto::{self, TLS_INSPECTOR, TLS_TRANSPORT_SOCKET, bool_value};
use crate::model::{SslConfig, TlsParams, TlsVersion};

/// The listener filter that reads the ClientHello (SNI, ALPN) so filter
/// chains can match on `server_names`.
pub fn tls_inspector() -> ListenerFilter {
    ListenerFilter {
        name: TLS_INSPECTOR.to_string(),
        config_type: Some(listener_filter::ConfigType::TypedConfig(proto::any(
            TlsInspector::default(),
        ))),
        ..Default::default()
    }
}

/// One TLS filter chain of an SSL gateway, as Gloo's `newSslFilterChain`
/// builds it (`projects/gloo/pkg/translator/filter_chain.go`): unnamed,
/// matched by its SNI domains (none: any), terminating TLS with `ssl` (the
/// consolidated `sslConfig` of its VirtualServices), then `filters` (the
/// gateway's network filters ending in its connection manager, the same in
/// every chain). A VirtualService joining or leaving a chain whose SNI set
/// stays the same leaves the chain, and so its connections, untouched.
pub fn filter_chain(ssl: &SslConfig, filters: Vec<Filter>) -> FilterChain {
    FilterChain {
        filter_chain_match: Some(FilterChainMatch {
            server_names: ssl.sni_domains.clone(),
            ..Default::default()
        }),
        filters,
        transport_socket: Some(TransportSocket {
            name: TLS_TRANSPORT_SOCKET.to_string(),
            config_type: Some(transport_socket::ConfigType::TypedConfig(proto::any(
                downstream_tls_context(ssl),
            ))),
        }),
        ..Default::default()
    }
}

/// A file Envoy reads (and watches) itself.
pub(super) fn file(path: &str) -> DataSource {
    DataSource {
        specifier: Some(data_source::Specifier::Filename(path.to_string())),
        ..Default::default()
    }
}

fn downstream_tls_context(ssl: &SslConfig) -> DownstreamTlsContext {
    let validation = ssl.root_ca.as_deref().map(|ca| {
        common_tls_context::ValidationContextType::ValidationContext(CertificateValidationContext {
            trusted_ca: Some(file(ca)),
            ..Default::default()
        })
    });
    DownstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_params: tls_params(&ssl.params),
            tls_certificates: vec![TlsCertificate {
                certificate_chain: Some(file(&ssl.cert_chain)),
                private_key: Some(file(&ssl.private_key)),
                ..Default::default()
            }],
            alpn_protocols: ssl.alpn_protocols.clone(),
            validation_context_type: validation,
            ..Default::default()
        }),
        // Gloo: a root CA means mTLS unless `oneWayTls`.
        require_client_certificate: ssl.requires_client_cert().then(|| bool_value(true)),
        ..Default::default()
    }
}

fn tls_params(p: &TlsParams) -> Option<TlsParameters> {
    if p.is_empty() {
        return None;
    }
    Some(tls_parameters(p))
}

/// Gloo's `ResolveSslParamsConfig`: an unset version is `TLS_AUTO`.
pub(super) fn tls_parameters(p: &TlsParams) -> TlsParameters {
    let version = |v: Option<TlsVersion>| v.map_or(TlsProtocol::TlsAuto, protocol) as i32;
    TlsParameters {
        tls_minimum_protocol_version: version(p.min_version),
        tls_maximum_protocol_version: version(p.max_version),
        cipher_suites: p.cipher_suites.clone(),
        ecdh_curves: p.ecdh_curves.clone(),
        ..Default::default()
    }
}

fn protocol(v: TlsVersion) -> TlsProtocol {
    match v {
        TlsVersion::Auto => TlsProtocol::TlsAuto,
        TlsVersion::V1_0 => TlsProtocol::TlSv10,
        TlsVersion::V1_1 => TlsProtocol::TlSv11,
        TlsVersion::V1_2 => TlsProtocol::TlSv12,
        TlsVersion::V1_3 => TlsProtocol::TlSv13,
    }
}

#[cfg(test)]
mod tests;
