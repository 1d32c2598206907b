//! The key layout: `<prefix>/<group>/<version>/<Kind>/<namespace>/<name>`,
//! Gloo's Consul layout below a configurable root (`gloo` gives Gloo's
//! exactly). One YAML document per key. A key is shown to the rest of
//! edgeplane as the path `etcd:<key>`, so diagnostics read
//! `etcd:<key>:<line>:<col>`.
//!
//! This module only splits strings: which kinds exist and which API group
//! serves them is the manifest stage's business (`Kind::of_key_path`).

use std::path::{Path, PathBuf};

/// What a key's path starts with.
pub const PATH_SCHEME: &str = "etcd:";
/// The default root (`--etcd-prefix`).
pub const DEFAULT_PREFIX: &str = "edgeplane";

/// A key's parts below the root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyParts<'a> {
    pub group: &'a str,
    pub version: &'a str,
    pub kind: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
}

/// Why a key under the root is not a manifest's key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("key is not below the prefix `{prefix}/`")]
    OutsidePrefix { prefix: String },
    #[error(
        "key has {found} parts below the prefix; expected <group>/<version>/<Kind>/<namespace>/<name>"
    )]
    Shape { found: usize },
    #[error("key has an empty part; expected <group>/<version>/<Kind>/<namespace>/<name>")]
    EmptyPart,
}

/// The root as given (`--etcd-prefix`), without trailing slashes.
pub fn normalize_prefix(prefix: &str) -> String {
    prefix.trim_end_matches('/').to_string()
}

/// The range every manifest key starts with: `<prefix>/`.
pub fn range_start(prefix: &str) -> String {
    format!("{}/", normalize_prefix(prefix))
}

/// Splits `key` (a full key) below `prefix`.
pub fn parse_key<'a>(prefix: &str, key: &'a str) -> Result<KeyParts<'a>, KeyError> {
    let start = range_start(prefix);
    let rest = key
        .strip_prefix(start.as_str())
        .ok_or(KeyError::OutsidePrefix {
            prefix: normalize_prefix(prefix),
        })?;
    split_tail(rest)
}

/// Splits `<group>/<version>/<Kind>/<namespace>/<name>`.
fn split_tail(rest: &str) -> Result<KeyParts<'_>, KeyError> {
    let parts: Vec<&str> = rest.split('/').collect();
    let [group, version, kind, namespace, name] = parts[..] else {
        return Err(KeyError::Shape { found: parts.len() });
    };
    if parts.iter().any(|p| p.is_empty()) {
        return Err(KeyError::EmptyPart);
    }
    Ok(KeyParts {
        group,
        version,
        kind,
        namespace,
        name,
    })
}

/// The key of a resource: `api_version` is `<group>/<version>`.
pub fn key_for(prefix: &str, api_version: &str, kind: &str, namespace: &str, name: &str) -> String {
    format!(
        "{}{api_version}/{kind}/{namespace}/{name}",
        range_start(prefix)
    )
}

/// The path a key is shown as: `etcd:<key>`.
pub fn path_of_key(key: &str) -> PathBuf {
    PathBuf::from(format!("{PATH_SCHEME}{key}"))
}

/// The key parts a source path names, when it is a key's path
/// (`etcd:…/<group>/<version>/<Kind>/<namespace>/<name>`; the prefix may
/// itself hold slashes, so the last five parts are taken).
pub fn key_of_path(path: &Path) -> Option<KeyParts<'_>> {
    let s = path.to_str()?.strip_prefix(PATH_SCHEME)?;
    let mut it = s.rsplitn(6, '/');
    let name = it.next()?;
    let namespace = it.next()?;
    let kind = it.next()?;
    let version = it.next()?;
    let group = it.next()?;
    // The prefix: at least one part before the group.
    it.next().filter(|p| !p.is_empty())?;
    let parts = KeyParts {
        group,
        version,
        kind,
        namespace,
        name,
    };
    [group, version, kind, namespace, name]
        .iter()
        .all(|p| !p.is_empty())
        .then_some(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_below_the_prefix() {
        let k = parse_key(
            "edgeplane",
            "edgeplane/gateway.solo.io/v1/VirtualService/gloo-system/default",
        )
        .expect("a manifest key");
        assert_eq!(
            (k.group, k.version, k.kind, k.namespace, k.name),
            (
                "gateway.solo.io",
                "v1",
                "VirtualService",
                "gloo-system",
                "default"
            )
        );
        // A trailing slash on the prefix changes nothing; prefixes may nest.
        assert!(parse_key("a/b/", "a/b/gloo.solo.io/v1/Upstream/ns/u").is_ok());
        assert_eq!(
            parse_key("edgeplane", "other/gloo.solo.io/v1/Upstream/ns/u"),
            Err(KeyError::OutsidePrefix {
                prefix: "edgeplane".into()
            })
        );
        // `edgeplane-status/…` is not below `edgeplane/`.
        assert!(parse_key("edgeplane", "edgeplane-status/x/y/z/a/b").is_err());
        assert_eq!(
            parse_key("edgeplane", "edgeplane/gloo.solo.io/v1/Upstream/u"),
            Err(KeyError::Shape { found: 4 })
        );
        assert_eq!(
            parse_key("edgeplane", "edgeplane/gloo.solo.io/v1/Upstream/ns/u/x"),
            Err(KeyError::Shape { found: 6 })
        );
        assert_eq!(
            parse_key("edgeplane", "edgeplane/gloo.solo.io/v1/Upstream//u"),
            Err(KeyError::EmptyPart)
        );
    }

    #[test]
    fn keys_round_trip_through_paths() {
        let key = key_for("gloo", "gateway.solo.io/v1", "Gateway", "gloo-system", "gw");
        assert_eq!(key, "gloo/gateway.solo.io/v1/Gateway/gloo-system/gw");
        let path = path_of_key(&key);
        assert_eq!(
            path.display().to_string(),
            "etcd:gloo/gateway.solo.io/v1/Gateway/gloo-system/gw"
        );
        let k = key_of_path(&path).expect("a key path");
        assert_eq!(
            (k.kind, k.namespace, k.name),
            ("Gateway", "gloo-system", "gw")
        );
        let nested = path_of_key("a/b/gloo.solo.io/v1/Upstream/ns/u");
        assert_eq!(key_of_path(&nested).map(|k| k.group), Some("gloo.solo.io"));
        // Directory paths and short keys are no key paths.
        assert!(key_of_path(Path::new("cfg/virtualservices/ns/vs.yaml")).is_none());
        assert!(key_of_path(Path::new("etcd:gloo.solo.io/v1/Upstream/ns/u")).is_none());
    }
}
