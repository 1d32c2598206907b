//! TLS on the xDS port: `serve --xds-tls-cert/--xds-tls-key` (TLS) and
//! `--xds-tls-client-ca` (mutual TLS: every client must present a
//! certificate signed by that CA, or the handshake fails), and the client
//! side for `edgeplane status --tls-*`.
//!
//! rustls on ring. Every PEM file is read and checked here, before the
//! server starts, so a missing file, a file without a certificate, a key
//! that does not belong to its certificate or an unusable CA is an error
//! naming the file, not a refused handshake later. The xDS port's server
//! (`serve::http2`) puts every accepted connection through the resulting
//! acceptor, ADS and the status API alike, since both share the port.
//!
//! Certificates are read once at start: rotating them needs a restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

/// A TLS handshake that has not finished in this time is dropped, so a
/// client that connects and sends nothing holds no task for long.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {}: {source}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} {}: not a PEM certificate file: {reason}", path.display())]
    BadCertificatePem {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("{what} {}: not a usable certificate: {reason}", path.display())]
    BadCertificate {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("{what} {}: no PEM certificate (BEGIN CERTIFICATE) in it", path.display())]
    NoCertificate { what: &'static str, path: PathBuf },
    #[error(
        "{what} {}: no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {reason}",
        path.display()
    )]
    BadKey {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("private key {} does not belong to certificate {}: {reason}", key.display(), cert.display())]
    KeyMismatch {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error("{what} {}: not a usable CA certificate: {reason}", path.display())]
    BadCa {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("{cert_flag} and {key_flag} go together: give both or neither")]
    CertKeyPair {
        cert_flag: &'static str,
        key_flag: &'static str,
    },
    #[error("{0} needs a server certificate: give --xds-tls-cert and --xds-tls-key too")]
    ClientCaWithoutCert(&'static str),
    #[error(
        "--xds-authz-policy needs mutual TLS (--xds-tls-cert, --xds-tls-key and --xds-tls-client-ca): without client certificates there is no identity to check"
    )]
    PolicyWithoutMtls,
    #[error(transparent)]
    Authz(#[from] crate::xds::authz::AuthzError),
    #[error("cannot set up TLS: {0}")]
    Config(String),
}

/// How the xDS port is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdsSecurity {
    Plaintext,
    /// TLS: the server proves its identity; clients are not asked for one.
    Tls,
    /// Mutual TLS: clients without a certificate from the client CA are
    /// refused in the handshake.
    MutualTls,
}

impl std::fmt::Display for XdsSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            XdsSecurity::Plaintext => "plaintext",
            XdsSecurity::Tls => "tls",
            XdsSecurity::MutualTls => "mtls",
        })
    }
}

/// The `serve --xds-tls-*` flags: paths to PEM files.
#[derive(Clone, Debug, Default)]
pub struct XdsTlsFiles {
    /// The server's certificate chain (leaf first).
    pub cert: Option<PathBuf>,
    /// The server certificate's private key.
    pub key: Option<PathBuf>,
    /// CA certificate(s) that client certificates must chain to; when set,
    /// a client certificate is required.
    pub client_ca: Option<PathBuf>,
}

/// A checked server TLS setup: the acceptor every xDS connection goes
/// through (ALPN `h2`).
#[derive(Clone)]
pub struct ServerTls {
    pub acceptor: tokio_rustls::TlsAcceptor,
    pub security: XdsSecurity,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("security", &self.security)
            .finish_non_exhaustive()
    }
}

impl XdsTlsFiles {
    /// What the flags ask for, before any file is read.
    pub fn security(&self) -> XdsSecurity {
        match (&self.cert, &self.client_ca) {
            (None, _) => XdsSecurity::Plaintext,
            (Some(_), None) => XdsSecurity::Tls,
            (Some(_), Some(_)) => XdsSecurity::MutualTls,
        }
    }

    /// Reads and checks the files; `None` when no TLS flag is given.
    pub fn load(&self) -> Result<Option<ServerTls>, TlsError> {
        let (cert, key) = match (&self.cert, &self.key) {
            (None, None) => {
                if self.client_ca.is_some() {
                    return Err(TlsError::ClientCaWithoutCert("--xds-tls-client-ca"));
                }
                return Ok(None);
            }
            (Some(c), Some(k)) => (c, k),
            _ => {
                return Err(TlsError::CertKeyPair {
                    cert_flag: "--xds-tls-cert",
                    key_flag: "--xds-tls-key",
                });
            }
        };
        let provider = provider();
        let id = load_identity(cert, key, &provider, SERVER)?;
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::BadKey {
                what: SERVER.1,
                path: key.clone(),
                reason: e.to_string(),
            })?;
        let builder = match &self.client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let what = "client CA";
                let (_, roots) = load_roots(ca, what)?;
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider.clone(),
                )
                .build()
                .map_err(|e| TlsError::BadCa {
                    what,
                    path: ca.clone(),
                    reason: e.to_string(),
                })?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config =
            builder
                .with_single_cert(id.chain, id.key)
                .map_err(|e| TlsError::KeyMismatch {
                    cert: cert.clone(),
                    key: key.clone(),
                    reason: e.to_string(),
                })?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        install_default_provider();
        Ok(Some(ServerTls {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            security: self.security(),
        }))
    }
}

/// The authorization policy for `serve`: the file's under mTLS, the
/// allow-all default under mTLS without one (`serve` WARNs), none without
/// mTLS (where a policy file is an error: there is no identity to check).
pub fn load_policy(
    security: XdsSecurity,
    file: Option<&Path>,
) -> Result<Option<Arc<crate::xds::authz::Policy>>, TlsError> {
    use crate::xds::authz::Policy;
    match (security, file) {
        (XdsSecurity::MutualTls, Some(f)) => Ok(Some(Arc::new(Policy::load(f)?))),
        (XdsSecurity::MutualTls, None) => Ok(Some(Arc::new(Policy::allow_all()))),
        (_, Some(_)) => Err(TlsError::PolicyWithoutMtls),
        (_, None) => Ok(None),
    }
}

/// The `status --tls-*` flags: trust `ca` for the server, optionally
/// present `cert`/`key`.
#[derive(Clone, Debug, Default)]
pub struct ClientTlsFiles {
    pub ca: PathBuf,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// The name to check the server certificate against; default the host
    /// of the address dialled (a DNS name or an IP address).
    pub server_name: Option<String>,
}

impl ClientTlsFiles {
    /// Reads and checks the files into a tonic client config. No system or
    /// bundled roots: the server must chain to `ca`.
    pub fn load(&self) -> Result<ClientTlsConfig, TlsError> {
        let (ca_pem, _) = load_roots(&self.ca, "CA")?;
        let mut config = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(ca_pem))
            .timeout(HANDSHAKE_TIMEOUT);
        match (&self.cert, &self.key) {
            (None, None) => {}
            (Some(cert), Some(key)) => {
                let id = load_identity(cert, key, &provider(), CLIENT)?;
                config = config.identity(Identity::from_pem(id.cert_pem, id.key_pem));
            }
            _ => {
                return Err(TlsError::CertKeyPair {
                    cert_flag: "--tls-cert",
                    key_flag: "--tls-key",
                });
            }
        }
        if let Some(name) = &self.server_name {
            config = config.domain_name(name.clone());
        }
        Ok(config)
    }
}

const SERVER: (&str, &str) = ("server certificate", "server key");
const CLIENT: (&str, &str) = ("client certificate", "client key");

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// tonic's server builds its rustls config with the process default
/// provider; make that ring (a no-op when one is installed already).
fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

fn parse_certs(
    pem: &[u8],
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadCertificatePem {
            what,
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            what,
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// A certificate chain and its key, as read (PEM, for tonic's client) and
/// parsed (DER, for rustls' server).
struct LoadedIdentity {
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

/// Reads a certificate chain and its key; checks that the key parses and
/// matches the leaf certificate.
fn load_identity(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
    (cert_what, key_what): (&'static str, &'static str),
) -> Result<LoadedIdentity, TlsError> {
    let cert_pem = read(cert, cert_what)?;
    let chain = parse_certs(&cert_pem, cert, cert_what)?;
    let key_pem = read(key, key_what)?;
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::BadKey {
        what: key_what,
        path: key.to_path_buf(),
        reason: e.to_string(),
    })?;
    match rustls::sign::CertifiedKey::from_der(chain.clone(), key_der.clone_key(), provider) {
        Ok(_) => Ok(LoadedIdentity {
            cert_pem,
            key_pem,
            chain,
            key: key_der,
        }),
        Err(e @ rustls::Error::InconsistentKeys(_)) => Err(TlsError::KeyMismatch {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            reason: e.to_string(),
        }),
        Err(rustls::Error::InvalidCertificate(e)) => {
            let mut reason = format!("{e:?}");
            if reason.contains("UnsupportedCertVersion") {
                reason.push_str(" (an X.509 v1 certificate; v3, with subjectAltName, is needed)");
            }
            Err(TlsError::BadCertificate {
                what: cert_what,
                path: cert.to_path_buf(),
                reason,
            })
        }
        Err(e) => Err(TlsError::BadKey {
            what: key_what,
            path: key.to_path_buf(),
            reason: e.to_string(),
        }),
    }
}

/// Reads CA certificates; every one must be usable as a trust anchor.
fn load_roots(path: &Path, what: &'static str) -> Result<(Vec<u8>, RootCertStore), TlsError> {
    let pem = read(path, what)?;
    let mut roots = RootCertStore::empty();
    for cert in parse_certs(&pem, path, what)? {
        roots.add(cert).map_err(|e| TlsError::BadCa {
            what,
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    }
    Ok((pem, roots))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A policy needs mTLS; mTLS without one allows everything.
    #[test]
    fn policy_needs_mtls_and_defaults_to_allow_all() {
        let f = Path::new("policy.yaml");
        assert!(matches!(
            load_policy(XdsSecurity::Tls, Some(f)),
            Err(TlsError::PolicyWithoutMtls)
        ));
        assert!(matches!(
            load_policy(XdsSecurity::Plaintext, Some(f)),
            Err(TlsError::PolicyWithoutMtls)
        ));
        assert!(matches!(
            load_policy(XdsSecurity::Plaintext, None),
            Ok(None)
        ));
        let p = load_policy(XdsSecurity::MutualTls, None);
        assert!(matches!(p, Ok(Some(p)) if p.is_allow_all()));
    }

    struct Files {
        dir: tempfile::TempDir,
    }

    impl Files {
        fn new() -> Files {
            Files {
                dir: tempfile::tempdir().expect("tempdir"),
            }
        }
        fn write(&self, name: &str, text: &str) -> PathBuf {
            let p = self.dir.path().join(name);
            std::fs::write(&p, text).expect("write");
            p
        }
    }

    fn err(f: &XdsTlsFiles) -> String {
        match f.load() {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn no_flags_is_plaintext() {
        let f = XdsTlsFiles::default();
        assert_eq!(f.security(), XdsSecurity::Plaintext);
        assert!(matches!(f.load(), Ok(None)));
    }

    #[test]
    fn cert_and_key_go_together_and_client_ca_needs_them() {
        let only_cert = XdsTlsFiles {
            cert: Some("c.pem".into()),
            ..Default::default()
        };
        assert_eq!(
            err(&only_cert),
            "--xds-tls-cert and --xds-tls-key go together: give both or neither"
        );
        let only_key = XdsTlsFiles {
            key: Some("k.pem".into()),
            ..Default::default()
        };
        assert!(err(&only_key).contains("go together"));
        let only_ca = XdsTlsFiles {
            client_ca: Some("ca.pem".into()),
            ..Default::default()
        };
        assert!(err(&only_ca).starts_with("--xds-tls-client-ca needs a server certificate"));
    }

    #[test]
    fn errors_name_the_file() {
        let files = Files::new();
        let missing = files.dir.path().join("missing.pem");
        let f = XdsTlsFiles {
            cert: Some(missing.clone()),
            key: Some(missing.clone()),
            client_ca: None,
        };
        let e = err(&f);
        assert!(
            e.starts_with(&format!(
                "cannot read server certificate {}:",
                missing.display()
            )),
            "{e}"
        );

        let garbage = files.write("garbage.pem", "not a certificate\n");
        let f = XdsTlsFiles {
            cert: Some(garbage.clone()),
            key: Some(garbage.clone()),
            client_ca: None,
        };
        let e = err(&f);
        assert_eq!(
            e,
            format!(
                "server certificate {}: no PEM certificate (BEGIN CERTIFICATE) in it",
                garbage.display()
            )
        );

        let broken = files.write(
            "broken.pem",
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        );
        let f = XdsTlsFiles {
            cert: Some(broken.clone()),
            key: Some(broken.clone()),
            client_ca: None,
        };
        let e = err(&f);
        assert!(
            e.starts_with(&format!(
                "server certificate {}: not a PEM certificate file",
                broken.display()
            )),
            "{e}"
        );
    }

    /// A CA and a leaf signed by it, as PEM: (ca, cert, key).
    fn pki() -> (String, String, String) {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("CA key"))
            .expect("CA certificate");
        let leaf = CertificateParams::new(vec!["localhost".to_string()]).expect("leaf params");
        let key = KeyPair::generate().expect("leaf key");
        let cert = leaf.signed_by(&key, &ca).expect("leaf certificate");
        (ca.pem(), cert.pem(), key.serialize_pem())
    }

    #[test]
    fn valid_files_give_tls_or_mtls() {
        let files = Files::new();
        let (ca, cert, key) = pki();
        let mut f = XdsTlsFiles {
            cert: Some(files.write("tls.crt", &cert)),
            key: Some(files.write("tls.key", &key)),
            client_ca: None,
        };
        let tls = f.load().expect("TLS").expect("some");
        assert_eq!(tls.security, XdsSecurity::Tls);
        f.client_ca = Some(files.write("ca.crt", &ca));
        let tls = f.load().expect("mTLS").expect("some");
        assert_eq!(tls.security, XdsSecurity::MutualTls);
        assert_eq!(tls.security.to_string(), "mtls");
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let files = Files::new();
        let (_, cert, _) = pki();
        let (_, _, other_key) = pki();
        let cert = files.write("tls.crt", &cert);
        let key = files.write("other.key", &other_key);
        let f = XdsTlsFiles {
            cert: Some(cert.clone()),
            key: Some(key.clone()),
            client_ca: None,
        };
        let e = err(&f);
        assert!(
            e.starts_with(&format!(
                "private key {} does not belong to certificate {}",
                key.display(),
                cert.display()
            )),
            "{e}"
        );
        // A certificate file given as the key.
        let f = XdsTlsFiles {
            cert: Some(cert.clone()),
            key: Some(cert.clone()),
            client_ca: None,
        };
        let e = err(&f);
        assert!(
            e.starts_with(&format!(
                "server key {}: no usable PEM private key",
                cert.display()
            )),
            "{e}"
        );
    }

    #[test]
    fn status_client_flags_pair_and_name_files() {
        let c = ClientTlsFiles {
            ca: "/nonexistent/ca.pem".into(),
            ..Default::default()
        };
        let e = c.load().map(|_| ()).err().map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|e| e.starts_with("cannot read CA /nonexistent/ca.pem:")),
            "{e:?}"
        );
    }
}
