//! The kinds edgeplane reads, in one place: name, API group, the plural
//! Gloo's file layout names directories after, and how a path in that
//! layout implies a kind. The parser, the schemas and the status code all
//! ask this enum; none keeps a table of its own.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

pub const GATEWAY_API: &str = "gateway.solo.io/v1";
pub const GLOO_API: &str = "gloo.solo.io/v1";

/// A kind of manifest edgeplane parses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Gateway,
    VirtualService,
    RouteTable,
    Upstream,
    UpstreamGroup,
    VirtualHostOption,
    RouteOption,
    /// Gloo's `Secret` (`gloo.solo.io/v1`): only its `tls` kind is served,
    /// to Envoy over SDS. It has no `spec`: like Gloo's proto, its fields
    /// sit beside `metadata` in both forms.
    Secret,
}

impl Kind {
    /// Every kind, in the order documentation lists them.
    pub const ALL: [Kind; 8] = [
        Kind::Gateway,
        Kind::VirtualService,
        Kind::RouteTable,
        Kind::VirtualHostOption,
        Kind::RouteOption,
        Kind::Upstream,
        Kind::UpstreamGroup,
        Kind::Secret,
    ];

    /// The name written in `kind:` (and shown in diagnostics and status).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Gateway => "Gateway",
            Kind::VirtualService => "VirtualService",
            Kind::RouteTable => "RouteTable",
            Kind::Upstream => "Upstream",
            Kind::UpstreamGroup => "UpstreamGroup",
            Kind::VirtualHostOption => "VirtualHostOption",
            Kind::RouteOption => "RouteOption",
            Kind::Secret => "Secret",
        }
    }

    /// The `apiVersion` that serves the kind.
    pub fn api_version(self) -> &'static str {
        match self {
            Kind::Gateway
            | Kind::VirtualService
            | Kind::RouteTable
            | Kind::VirtualHostOption
            | Kind::RouteOption => GATEWAY_API,
            Kind::Upstream | Kind::UpstreamGroup | Kind::Secret => GLOO_API,
        }
    }

    /// The directory Gloo's file layout keeps the kind in
    /// (`<plural>/<namespace>/<name>.yaml`).
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Gateway => "gateways",
            Kind::VirtualService => "virtualservices",
            Kind::RouteTable => "routetables",
            Kind::Upstream => "upstreams",
            Kind::UpstreamGroup => "upstreamgroups",
            Kind::VirtualHostOption => "virtualhostoptions",
            Kind::RouteOption => "routeoptions",
            // Gloo's compose layout keeps them apart from the config, in
            // `secret/secrets/<namespace>/`; below the config directory
            // `secrets/<namespace>/` is found the same way.
            Kind::Secret => "secrets",
        }
    }

    /// The kind and namespace Gloo's file layout implies for `path`
    /// (`…/<plural>/<namespace>/<file>`), where documents are written
    /// without `kind` and with the spec's fields at the top level.
    pub fn of_flat_path(path: &Path) -> Option<(Kind, String)> {
        let namespace = path.parent()?;
        let plural = namespace.parent()?.file_name()?.to_str()?;
        let kind = Kind::ALL.into_iter().find(|k| k.plural() == plural)?;
        Some((kind, namespace.file_name()?.to_string_lossy().into_owned()))
    }

    /// The kind, namespace and name an etcd key's path names
    /// (`etcd:<prefix>/<group>/<version>/<Kind>/<namespace>/<name>`, see
    /// `source::etcd::layout`), when `<group>/<version>` serves `<Kind>`.
    pub fn of_key_path(path: &Path) -> Option<(Kind, String, String)> {
        let k = crate::source::etcd::layout::key_of_path(path)?;
        let kind = Kind::ALL.into_iter().find(|x| x.as_str() == k.kind)?;
        (kind.api_version() == format!("{}/{}", k.group, k.version))
            .then(|| (kind, k.namespace.to_string(), k.name.to_string()))
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a kind edgeplane parses.
#[derive(Debug, thiserror::Error)]
#[error("unknown kind `{0}`")]
pub struct UnknownKind(pub String);

impl FromStr for Kind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Kind, UnknownKind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownKind(s.to_string()))
    }
}

/// Kinds Gloo has that edgeplane does not serve (yet): named in the error,
/// so a user knows it is not a typo.
pub const UNIMPLEMENTED_KINDS: &[&str] = &[
    "MatchableHttpGateway",
    "MatchableTcpGateway",
    "HttpGateway",
    "TcpGateway",
    "Settings",
    "Proxy",
    "AuthConfig",
    "RateLimitConfig",
    "GraphQLApi",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_flat_paths_imply_kind_and_namespace() {
        for k in Kind::ALL {
            assert_eq!(k.as_str().parse::<Kind>().ok(), Some(k));
        }
        assert!("ConfigMap".parse::<Kind>().is_err());
        assert_eq!(
            Kind::of_flat_path(Path::new("cfg/virtualservices/web/default.yaml")),
            Some((Kind::VirtualService, "web".to_string()))
        );
        assert_eq!(
            Kind::of_flat_path(Path::new("upstreams/gloo-system/u.yaml")),
            Some((Kind::Upstream, "gloo-system".to_string()))
        );
        assert_eq!(
            Kind::of_flat_path(Path::new("cfg/virtualhostoptions/web/o.yaml")),
            Some((Kind::VirtualHostOption, "web".to_string()))
        );
        assert_eq!(
            Kind::of_flat_path(Path::new("routeoptions/gloo-system/o.yaml")),
            Some((Kind::RouteOption, "gloo-system".to_string()))
        );
        assert_eq!(
            Kind::of_flat_path(Path::new("cfg/secret/secrets/gloo-system/tls.yaml")),
            Some((Kind::Secret, "gloo-system".to_string()))
        );
        assert_eq!(Kind::of_flat_path(Path::new("web/default.yaml")), None);
        assert_eq!(
            Kind::of_key_path(Path::new(
                "etcd:edgeplane/gateway.solo.io/v1/VirtualService/web/default"
            )),
            Some((Kind::VirtualService, "web".into(), "default".into()))
        );
        // The group must serve the kind; directory paths are no keys.
        assert_eq!(
            Kind::of_key_path(Path::new(
                "etcd:edgeplane/gloo.solo.io/v1/VirtualService/web/d"
            )),
            None
        );
        assert_eq!(
            Kind::of_key_path(Path::new("cfg/gateway.solo.io/v1/VirtualService/web/d")),
            None
        );
        assert_eq!(Kind::of_flat_path(Path::new("x/web/default.yaml")), None);
    }
}
