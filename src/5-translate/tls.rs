//! Downstream TLS for SSL gateways: one filter chain per distinct
//! `sslConfig` (VirtualServices differing only in SNI share one, as in
//! Gloo), matched by SNI, and the TLS inspector listener filter that reads
//! the SNI; and the SDS `Secret` resources of `secretRef` certificates.
//!
//! `sslFiles` certificates are referenced by path (`DataSource.filename`),
//! as Envoy sees them; nothing here reads them. Envoy watches those files
//! itself, so rotating a certificate on disk needs no xDS update.
//!
//! `secretRef` certificates are referenced by name over SDS on the ADS
//! stream (`sds_config: {ads: {}}`), never inlined as Gloo does: the
//! listener then holds only the secret's name, so a new certificate
//! changes the Secret resource alone and Envoy swaps it under the running
//! listener, without draining its connections. The `rootCa` becomes a
//! second SDS secret (a validation context), as Gloo makes it the
//! listener's `trusted_ca`.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::core::v3::transport_socket;
use envoy_types::pb::envoy::config::core::v3::{
    AggregatedConfigSource, ApiVersion, ConfigSource, DataSource, TransportSocket, config_source,
    data_source,
};
use envoy_types::pb::envoy::config::listener::v3::{
    Filter, FilterChain, FilterChainMatch, ListenerFilter, listener_filter,
};
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, DownstreamTlsContext, SdsSecretConfig, Secret,
    TlsCertificate, TlsParameters, common_tls_context, secret, tls_parameters::TlsProtocol,
};

use super::names;
use super::proto::{self, TLS_INSPECTOR, TLS_TRANSPORT_SOCKET, bool_value};
use crate::model::{CertSource, Key, SslConfig, TlsParams, TlsSecret, TlsVersion};

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
pub fn filter_chain(
    ssl: &SslConfig,
    secrets: &BTreeMap<Key, TlsSecret>,
    filters: Vec<Filter>,
) -> FilterChain {
    FilterChain {
        filter_chain_match: Some(FilterChainMatch {
            server_names: ssl.sni_domains.clone(),
            ..Default::default()
        }),
        filters,
        transport_socket: Some(TransportSocket {
            name: TLS_TRANSPORT_SOCKET.to_string(),
            config_type: Some(transport_socket::ConfigType::TypedConfig(proto::any(
                downstream_tls_context(ssl, secrets),
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

fn inline(text: &str) -> DataSource {
    DataSource {
        specifier: Some(data_source::Specifier::InlineString(text.to_string())),
        ..Default::default()
    }
}

/// A secret by name over SDS on the ADS stream itself.
pub(super) fn sds(name: String) -> SdsSecretConfig {
    SdsSecretConfig {
        name,
        sds_config: Some(ConfigSource {
            resource_api_version: ApiVersion::V3 as i32,
            config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
                AggregatedConfigSource::default(),
            )),
            ..Default::default()
        }),
    }
}

fn downstream_tls_context(
    ssl: &SslConfig,
    secrets: &BTreeMap<Key, TlsSecret>,
) -> DownstreamTlsContext {
    let mut common = CommonTlsContext {
        tls_params: tls_params(&ssl.params),
        alpn_protocols: ssl.alpn_protocols.clone(),
        ..Default::default()
    };
    let has_root_ca = match &ssl.certs {
        CertSource::Files {
            cert_chain,
            private_key,
            root_ca,
        } => {
            common.tls_certificates = vec![TlsCertificate {
                certificate_chain: Some(file(cert_chain)),
                private_key: Some(file(private_key)),
                ..Default::default()
            }];
            common.validation_context_type = root_ca.as_deref().map(|ca| {
                common_tls_context::ValidationContextType::ValidationContext(
                    CertificateValidationContext {
                        trusted_ca: Some(file(ca)),
                        ..Default::default()
                    },
                )
            });
            root_ca.is_some()
        }
        CertSource::Secret(key) => {
            // Only the names: the listener's bytes never depend on the
            // certificate, so rotating it does not touch the listener.
            common.tls_certificate_sds_secret_configs = vec![sds(names::secret_cert_name(key))];
            let has_ca = secrets.get(key).is_some_and(|s| s.root_ca.is_some());
            if has_ca {
                common.validation_context_type = Some(
                    common_tls_context::ValidationContextType::ValidationContextSdsSecretConfig(
                        sds(names::secret_ca_name(key)),
                    ),
                );
            }
            has_ca
        }
    };
    DownstreamTlsContext {
        common_tls_context: Some(common),
        // Gloo: a root CA means mTLS unless `oneWayTls`.
        require_client_certificate: ssl
            .requires_client_cert(has_root_ca)
            .then(|| bool_value(true)),
        ..Default::default()
    }
}

/// The SDS resources of one Secret: its certificate and key, and its CA
/// bundle (when it has one) as a validation context; names from `names`.
pub fn secrets(key: &Key, s: &TlsSecret) -> Vec<Secret> {
    let mut out = Vec::new();
    // A CA-only Secret (an Upstream's `rootCa`) has no certificate to send.
    if s.has_cert() {
        out.push(Secret {
            name: names::secret_cert_name(key),
            r#type: Some(secret::Type::TlsCertificate(TlsCertificate {
                certificate_chain: Some(inline(&s.cert_chain)),
                private_key: Some(inline(&s.private_key)),
                ..Default::default()
            })),
        });
    }
    if let Some(ca) = &s.root_ca {
        out.push(Secret {
            name: names::secret_ca_name(key),
            r#type: Some(secret::Type::ValidationContext(
                CertificateValidationContext {
                    trusted_ca: Some(inline(ca)),
                    ..Default::default()
                },
            )),
        });
    }
    out
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

// Named `tests.rs` like every unit-test file (tests/it/layers.rs lets
// those build whole pipelines); shared with `validate::secret`'s tests.
#[cfg(test)]
#[path = "tls/sds/tests.rs"]
pub(crate) mod sds_tests;
#[cfg(test)]
mod tests;
