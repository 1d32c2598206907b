//! Gloo `Secret` → `model::TlsSecret`, and what an `sslConfig.secretRef`
//! (a VirtualService's, a TCP host's or an Upstream's) may point at.
//!
//! The PEM is checked here, before Envoy sees it, as Gloo's SSL translator
//! does (`tls.X509KeyPair` in `projects/gloo/pkg/utils/ssl.go`): the chain
//! parses into certificates, the key parses and is the leaf's, the CA (if
//! any) parses. Envoy would otherwise reject the Secret (a NACK the user
//! only sees in Envoy's log), and a listener waiting for it would never
//! leave warming.
//!
//! No message here ever quotes the secret's text: parser errors that could
//! (a PEM line, a base64 fragment) are replaced by fixed wording.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_saphyr::Spanned;

use super::Ctx;
use crate::manifest::raw;
use crate::model::{Key, TlsSecret};

/// What a `secretRef` needs to know of a Secret document, before (and
/// whether or not) it validates.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SecretInfo {
    /// The kind of secret it holds (`tls`, `aws`, …), `None` when empty.
    pub kind: Option<&'static str>,
    /// `tls.certChain` and `tls.privateKey` are both given.
    pub has_cert: bool,
    /// `tls.rootCa` is given.
    pub has_root_ca: bool,
}

impl SecretInfo {
    pub fn of(spec: &raw::SecretSpec) -> SecretInfo {
        let has = |s: &Option<Spanned<String>>| s.as_ref().is_some_and(|s| !s.value.is_empty());
        SecretInfo {
            kind: secret_kind(spec),
            has_cert: spec
                .tls
                .as_ref()
                .is_some_and(|t| has(&t.value.cert_chain) && has(&t.value.private_key)),
            has_root_ca: spec.tls.as_ref().is_some_and(|t| has(&t.value.root_ca)),
        }
    }
}

/// The kind of secret a document holds, by Gloo's field name (the
/// `oneof kind` of Gloo's `Secret`): the first one set.
fn secret_kind(spec: &raw::SecretSpec) -> Option<&'static str> {
    kinds_set(spec).into_iter().next()
}

/// Every kind the document sets; Gloo's `oneof` allows one.
fn kinds_set(spec: &raw::SecretSpec) -> Vec<&'static str> {
    [
        ("tls", spec.tls.is_some()),
        ("aws", spec.aws.is_some()),
        ("azure", spec.azure.is_some()),
        ("oauth", spec.oauth.is_some()),
        ("apiKey", spec.api_key.is_some()),
        ("header", spec.header.is_some()),
        ("credentials", spec.credentials.is_some()),
        ("encryption", spec.encryption.is_some()),
        ("extensions", spec.extensions.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect()
}

/// Validates one Secret. A TLS secret that checks out is returned; any
/// other kind is accepted with a warning (Gloo uses them for features
/// edgeplane does not implement) and not served.
pub(super) fn secret(cx: &mut Ctx<'_>, key: &Key, spec: &raw::SecretSpec) -> Option<TlsSecret> {
    let kinds = kinds_set(spec);
    if kinds.len() > 1 {
        let pos = cx.doc_pos.clone();
        cx.error(
            pos,
            format!(
                "secret {key} sets more than one kind of secret (`{}`); a Gloo Secret holds exactly one",
                kinds.join("`, `")
            ),
        );
        return None;
    }
    let Some(tls) = &spec.tls else {
        let pos = cx.doc_pos.clone();
        match secret_kind(spec) {
            Some(kind) => cx.warn(
                pos,
                format!(
                    "secret {key} is a `{kind}` secret; edgeplane uses only TLS secrets (`tls`), so it is not served"
                ),
            ),
            None => cx.error(
                pos,
                format!(
                    "secret {key} holds no secret: set `tls: {{certChain, privateKey, rootCa}}`"
                ),
            ),
        }
        return None;
    };
    let at = cx.at(tls);
    let t = &tls.value;
    if let Some(o) = &t.ocsp_staple {
        let pos = cx.at(o);
        cx.error(pos, "tls.ocspStaple is not implemented by edgeplane yet");
    }
    let invalid = |why: &str| format!("{key} is not a valid TLS secret: {why}");
    let (cert, private_key) = (text(&t.cert_chain), text(&t.private_key));
    let mut ok = true;
    let chain = match cert {
        None => None,
        Some(pem) => match certificates(pem) {
            Ok(c) => Some(c),
            Err(why) => {
                let pos = t.cert_chain.as_ref().map_or(at.clone(), |s| cx.at(s));
                cx.error(pos, invalid(&format!("tls.certChain {why}")));
                ok = false;
                None
            }
        },
    };
    let key_der = match private_key {
        None => None,
        // The parser's own error may quote the offending line: not shown.
        Some(pem) => match PrivateKeyDer::from_pem_slice(pem.as_bytes()) {
            Ok(k) => Some(k),
            Err(_) => {
                let pos = t.private_key.as_ref().map_or(at.clone(), |s| cx.at(s));
                cx.error(
                    pos,
                    invalid("tls.privateKey is not a PEM private key (PKCS#8, PKCS#1 or SEC1)"),
                );
                ok = false;
                None
            }
        },
    };
    match (cert.is_some(), private_key.is_some()) {
        (true, false) | (false, true) => {
            cx.error(
                at.clone(),
                invalid("both or none of cert chain and private key must be provided"),
            );
            ok = false;
        }
        (false, false) if text(&t.root_ca).is_none() => {
            cx.error(at.clone(), invalid("no certificate information found"));
            ok = false;
        }
        _ => {}
    }
    if let (Some(chain), Some(k)) = (chain, key_der) {
        let provider = rustls::crypto::ring::default_provider();
        match rustls::sign::CertifiedKey::from_der(chain, k, &provider) {
            Ok(_) => {}
            Err(rustls::Error::InconsistentKeys(_)) => {
                cx.error(
                    at.clone(),
                    invalid("tls: private key does not match public key"),
                );
                ok = false;
            }
            Err(rustls::Error::InvalidCertificate(_)) => {
                let pos = t.cert_chain.as_ref().map_or(at.clone(), |s| cx.at(s));
                cx.error(
                    pos,
                    invalid("tls.certChain: the leaf certificate cannot be parsed"),
                );
                ok = false;
            }
            Err(_) => {
                let pos = t.private_key.as_ref().map_or(at.clone(), |s| cx.at(s));
                cx.error(
                    pos,
                    invalid("tls.privateKey is not a key of a supported type (RSA, ECDSA P-256/P-384, Ed25519)"),
                );
                ok = false;
            }
        }
    }
    let root_ca = match (&t.root_ca, text(&t.root_ca)) {
        (Some(s), None) => {
            let pos = cx.at(s);
            cx.error(
                pos,
                invalid(
                    "tls.rootCa is empty (leave it out for no client certificate verification)",
                ),
            );
            ok = false;
            None
        }
        (_, Some(pem)) => {
            if let Err(why) = certificates(pem) {
                let pos = t.root_ca.as_ref().map_or(at.clone(), |s| cx.at(s));
                cx.error(pos, invalid(&format!("tls.rootCa {why}")));
                ok = false;
            }
            Some(pem.to_string())
        }
        (None, None) => None,
    };
    if !ok {
        return None;
    }
    Some(TlsSecret {
        cert_chain: cert.unwrap_or_default().to_string(),
        private_key: private_key.unwrap_or_default().to_string(),
        root_ca,
    })
}

/// A PEM field's text, `None` when absent or blank.
fn text(s: &Option<Spanned<String>>) -> Option<&str> {
    s.as_ref()
        .map(|s| s.value.as_str())
        .filter(|v| !v.trim().is_empty())
}

/// Every certificate of a PEM bundle; at least one, and nothing that
/// looks like PEM but is not.
fn certificates(pem: &str) -> Result<Vec<CertificateDer<'static>>, &'static str> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| "is not valid PEM (a BEGIN/END CERTIFICATE block is broken)")?;
    if certs.is_empty() {
        return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)");
    }
    Ok(certs)
}

#[cfg(test)]
mod tests;
