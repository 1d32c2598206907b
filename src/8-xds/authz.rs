//! Who may claim which proxy role: client identities from mTLS certificates
//! bound to `namespace~proxy` roles by a small YAML policy
//! (`serve --xds-authz-policy FILE`).
//!
//! An identity is the leaf certificate's subject alternative names: DNS
//! names and URIs (a SPIFFE ID is a URI SAN, `spiffe://trust-domain/…`).
//! The policy file:
//!
//! ```yaml
//! rules:                      # any rule may grant a role
//!   - identities: ["spiffe://prod.example/ns/gloo-system/sa/gateway-proxy"]
//!     roles: ["gloo-system~gateway-proxy"]
//!   - identities: ["*.edge.example.org"]
//!     roles: ["edge~*"]
//! statusReaders:              # optional: who may call the status API
//!   - "spiffe://prod.example/ops/*"
//! ```
//!
//! Patterns are exact strings where `*` stands for any run of characters
//! (`/`, `.` and `~` included). An identity may claim a role when one of
//! its names matches an `identities` pattern of a rule and the role matches
//! one of that rule's `roles`. Without `statusReaders` any authenticated
//! client may read the status API; with it, only those identities. Without
//! a policy file (`Policy::allow_all`) any client the CA signed may claim
//! any role: `serve` says so in a WARN at startup.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tonic::Status;

/// The policy file is small: refuse anything bigger before parsing.
const MAX_POLICY_BYTES: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum AuthzError {
    #[error("--xds-authz-policy {}: cannot read it", .file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--xds-authz-policy {}: {size} bytes; a policy is at most {MAX_POLICY_BYTES}", .file.display())]
    TooLarge { file: PathBuf, size: u64 },
    #[error("--xds-authz-policy {}:{line}:{column}: {message}", .file.display())]
    Parse {
        file: PathBuf,
        line: u64,
        column: u64,
        message: String,
    },
    #[error("--xds-authz-policy {}: {message}", .file.display())]
    Invalid { file: PathBuf, message: String },
    #[error("client certificate: {0}")]
    Certificate(String),
}

/// A client's identity: the DNS and URI subject alternative names of its
/// certificate, in the certificate's order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    pub names: Vec<String>,
}

impl Identity {
    /// The identity of a DER leaf certificate (already verified by the TLS
    /// handshake against the client CA).
    pub fn from_leaf_der(der: &[u8]) -> Result<Identity, AuthzError> {
        let der = rustls::pki_types::CertificateDer::from(der);
        let cert = webpki::EndEntityCert::try_from(&der)
            .map_err(|e| AuthzError::Certificate(format!("cannot parse: {e}")))?;
        let mut names: Vec<String> = cert.valid_dns_names().map(str::to_string).collect();
        names.extend(cert.valid_uri_names().map(str::to_string));
        Ok(Identity { names })
    }

    /// The identity of a TLS peer's chain (leaf first); `None` without one.
    pub fn from_chain(
        chain: Option<&[rustls::pki_types::CertificateDer<'static>]>,
    ) -> Option<Result<Identity, AuthzError>> {
        chain?
            .first()
            .map(|leaf| Identity::from_leaf_der(leaf.as_ref()))
    }

    /// For logs: the names, comma-separated (`<none>` when it has none).
    pub fn describe(&self) -> String {
        if self.names.is_empty() {
            "<no DNS or URI SAN>".to_string()
        } else {
            self.names.join(",")
        }
    }
}

/// A pattern: literal text where `*` matches any run of characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Glob(String);

impl Glob {
    pub fn new(p: &str) -> Glob {
        Glob(p.to_string())
    }

    pub fn matches(&self, s: &str) -> bool {
        let mut parts = self.0.split('*');
        let first = parts.next().unwrap_or("");
        let Some(mut rest) = s.strip_prefix(first) else {
            return false;
        };
        let parts: Vec<&str> = parts.collect();
        let Some((last, middle)) = parts.split_last() else {
            return rest.is_empty(); // no `*`: exact
        };
        for p in middle {
            match rest.find(p) {
                Some(i) => rest = &rest[i + p.len()..],
                None => return false,
            }
        }
        rest.len() >= last.len() && rest.ends_with(last)
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawPolicy {
    #[serde(default)]
    rules: Vec<RawRule>,
    #[serde(default)]
    status_readers: Option<Vec<String>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    identities: Vec<String>,
    roles: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Rule {
    identities: Vec<Glob>,
    roles: Vec<Glob>,
}

/// Which identities may claim which roles and read the status API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// `None`: any identity may claim any role (no policy file).
    rules: Option<Vec<Rule>>,
    /// `None`: any authenticated client may read the status API.
    status_readers: Option<Vec<Glob>>,
    /// Where it came from, for logs.
    pub source: String,
}

impl Policy {
    /// The default without a policy file: any authenticated client may
    /// claim any role and read the status API.
    pub fn allow_all() -> Policy {
        Policy {
            rules: None,
            status_readers: None,
            source: "default (no --xds-authz-policy): any client certificate may claim any role"
                .to_string(),
        }
    }

    /// Whether this is the allow-all default.
    pub fn is_allow_all(&self) -> bool {
        self.rules.is_none() && self.status_readers.is_none()
    }

    pub fn load(file: &Path) -> Result<Policy, AuthzError> {
        let read = |source| AuthzError::Read {
            file: file.to_path_buf(),
            source,
        };
        let size = std::fs::metadata(file).map_err(read)?.len();
        if size > MAX_POLICY_BYTES {
            return Err(AuthzError::TooLarge {
                file: file.to_path_buf(),
                size,
            });
        }
        let text = std::fs::read_to_string(file).map_err(read)?;
        Policy::parse(file, &text)
    }

    pub fn parse(file: &Path, text: &str) -> Result<Policy, AuthzError> {
        let raw: RawPolicy = serde_saphyr::from_str(text).map_err(|e| {
            let (line, column) = e
                .location()
                .filter(|l| l.line() > 0)
                .map_or((1, 1), |l| (l.line(), l.column()));
            let msg = e.without_snippet().to_string();
            let first = msg.lines().next().unwrap_or("invalid YAML").trim();
            let first = first.rfind(" at line ").map_or(first, |i| &first[..i]);
            AuthzError::Parse {
                file: file.to_path_buf(),
                line,
                column,
                message: first.to_string(),
            }
        })?;
        let invalid = |message: String| AuthzError::Invalid {
            file: file.to_path_buf(),
            message,
        };
        let mut rules = Vec::new();
        for (i, r) in raw.rules.iter().enumerate() {
            if r.identities.is_empty() || r.roles.is_empty() {
                return Err(invalid(format!(
                    "rules[{i}] needs at least one identity and one role"
                )));
            }
            if let Some(p) = r.identities.iter().chain(&r.roles).find(|p| p.is_empty()) {
                return Err(invalid(format!("rules[{i}]: empty pattern {p:?}")));
            }
            rules.push(Rule {
                identities: r.identities.iter().map(|p| Glob::new(p)).collect(),
                roles: r.roles.iter().map(|p| Glob::new(p)).collect(),
            });
        }
        Ok(Policy {
            rules: Some(rules),
            status_readers: raw
                .status_readers
                .map(|v| v.iter().map(|p| Glob::new(p)).collect()),
            source: file.display().to_string(),
        })
    }

    /// May `id` claim `role` (a `namespace~proxy` key, or whatever string
    /// the node claims)?
    pub fn allows(&self, id: &Identity, role: &str) -> bool {
        let Some(rules) = &self.rules else {
            return true;
        };
        rules.iter().any(|r| {
            r.roles.iter().any(|g| g.matches(role))
                && id
                    .names
                    .iter()
                    .any(|n| r.identities.iter().any(|g| g.matches(n)))
        })
    }

    /// May `id` read the status API?
    pub fn may_read_status(&self, id: &Identity) -> bool {
        match &self.status_readers {
            None => true,
            Some(g) => id.names.iter().any(|n| g.iter().any(|p| p.matches(n))),
        }
    }
}

/// A stream's client, as far as authorization goes: its identity (when
/// the xDS port runs mTLS) and the policy. `None` identity with a policy
/// means the client presented no usable certificate.
#[derive(Clone, Debug)]
pub struct Access {
    pub identity: Option<Arc<Identity>>,
    pub policy: Arc<Policy>,
}

impl Access {
    /// `Ok` when this client may claim `role`; else the status to end the
    /// stream with (and a WARN naming peer and identity).
    pub fn check_role(&self, peer: &str, what: &str, role: &str) -> Result<(), Status> {
        let Some(id) = &self.identity else {
            tracing::warn!(%peer, %role, "{what} refused: the client certificate carries no identity edgeplane can read");
            return Err(Status::permission_denied(format!(
                "edgeplane: no client certificate identity; role {role:?} refused"
            )));
        };
        if self.policy.allows(id, role) {
            return Ok(());
        }
        tracing::warn!(%peer, identity = %id.describe(), %role, policy = %self.policy.source, "{what} refused: the identity may not claim this role");
        Err(Status::permission_denied(format!(
            "edgeplane: identity {} may not claim role {role:?} (--xds-authz-policy)",
            id.describe()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let g = Glob::new;
        assert!(g("a~b").matches("a~b"));
        assert!(!g("a~b").matches("a~bc"));
        assert!(g("*").matches(""));
        assert!(g("gloo-system~*").matches("gloo-system~gateway-proxy"));
        assert!(!g("gloo-system~*").matches("other~gateway-proxy"));
        assert!(g("*.edge.example.org").matches("a.b.edge.example.org"));
        assert!(!g("*.edge.example.org").matches("edge.example.org"));
        assert!(g("spiffe://td/*/sa/*").matches("spiffe://td/ns/x/sa/gw"));
        assert!(!g("spiffe://td/*/sa/*").matches("spiffe://td/ns/x/gw"));
        assert!(!g("a*a").matches("a"));
        assert!(g("a*a").matches("aa"));
    }

    const POLICY: &str = "rules:\n  - identities: [\"spiffe://td/ns/gloo-system/sa/gw\", \"gw.example.org\"]\n    roles: [\"gloo-system~gateway-proxy\"]\n  - identities: [\"*.edge.example.org\"]\n    roles: [\"edge~*\"]\nstatusReaders: [\"spiffe://td/ops/*\"]\n";

    fn id(names: &[&str]) -> Identity {
        Identity {
            names: names.iter().map(|n| n.to_string()).collect(),
        }
    }

    #[test]
    fn policy_binds_identities_to_roles() {
        let p = Policy::parse(Path::new("p.yaml"), POLICY).expect("parses");
        let gw = id(&["spiffe://td/ns/gloo-system/sa/gw"]);
        assert!(p.allows(&gw, "gloo-system~gateway-proxy"));
        assert!(!p.allows(&gw, "gloo-system~other"));
        assert!(!p.allows(&gw, "edge~a"));
        let edge = id(&["x.edge.example.org"]);
        assert!(p.allows(&edge, "edge~a"));
        assert!(!p.allows(&edge, "gloo-system~gateway-proxy"));
        assert!(!p.allows(&id(&[]), "edge~a"));
        assert!(p.may_read_status(&id(&["spiffe://td/ops/alice"])));
        assert!(!p.may_read_status(&gw));
        let all = Policy::allow_all();
        assert!(all.allows(&id(&[]), "anything"));
        assert!(all.may_read_status(&id(&[])));
        // No statusReaders: any authenticated client.
        let p = Policy::parse(Path::new("p.yaml"), "rules: []\n").expect("parses");
        assert!(p.may_read_status(&gw));
        assert!(!p.allows(&gw, "gloo-system~gateway-proxy"));
    }

    #[test]
    fn policy_errors_name_file_line_and_column() {
        let e = Policy::parse(
            Path::new("/etc/p.yaml"),
            "rules:\n  - identities: [a]\n    role: [b]\n",
        )
        .expect_err("unknown field");
        let s = e.to_string();
        assert!(s.starts_with("--xds-authz-policy /etc/p.yaml:3:"), "{s}");
        assert!(s.contains("role"), "{s}");
        let e = Policy::parse(
            Path::new("p.yaml"),
            "rules:\n  - identities: []\n    roles: [b]\n",
        )
        .expect_err("empty identities");
        assert!(e.to_string().contains("rules[0]"), "{e}");
    }

    #[test]
    fn identity_reads_dns_uri_and_spiffe_sans() {
        let mut params =
            rcgen::CertificateParams::new(vec!["gw.example.org".to_string()]).expect("params");
        params.subject_alt_names.push(rcgen::SanType::URI(
            rcgen::string::Ia5String::try_from("spiffe://td/ns/gloo-system/sa/gw").expect("uri"),
        ));
        params.subject_alt_names.push(rcgen::SanType::IpAddress(
            std::net::Ipv4Addr::LOCALHOST.into(),
        ));
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("cert");
        let id = Identity::from_leaf_der(cert.der()).expect("identity");
        assert_eq!(
            id.names,
            vec!["gw.example.org", "spiffe://td/ns/gloo-system/sa/gw"]
        );
        assert!(Identity::from_leaf_der(b"not a certificate").is_err());
        assert!(Identity::from_chain(None).is_none());
    }
}
