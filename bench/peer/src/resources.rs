//! The resources file (a sequence of length-delimited `google.protobuf.Any`)
//! → a `rust_control_plane` `Snapshot`, with per-type versions that move only
//! when that type's content moves.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{Context, Result, bail};
use data_plane_api::envoy::config::cluster::v3::Cluster;
use data_plane_api::envoy::config::listener::v3::Listener;
use data_plane_api::envoy::config::route::v3::RouteConfiguration;
use data_plane_api::google::protobuf::Any;
use prost::Message;
use rust_control_plane::snapshot::type_url::{CLUSTER, LISTENER, ROUTE};
use rust_control_plane::snapshot::{Resource, Resources, Snapshot};

/// The three types the benchmark serves, in push order.
pub const TYPES: [&str; 3] = [CLUSTER, LISTENER, ROUTE];

/// One type's resources from one file: name → (decoded resource, the bytes
/// the file had, which decide whether the type changed).
type Decoded = BTreeMap<String, (Resource, Vec<u8>)>;

/// Reads and decodes `path`. With `check`, also returns the resources the
/// crate would not serve byte for byte as the file has them: it re-encodes
/// what it decoded (`Resource::into_any`), and prost keeps no unknown fields,
/// so fields that `data-plane-api` 0.1.1's (2022) Envoy protos lack are
/// dropped. The check costs an encode per resource, so `load` skips it.
pub fn read(path: &Path, check: bool) -> Result<(HashMap<&'static str, Decoded>, Vec<String>)> {
    let bytes = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    let mut buf = &bytes[..];
    let mut by_type: HashMap<&'static str, Decoded> =
        TYPES.iter().map(|t| (*t, Decoded::new())).collect();
    let mut altered = Vec::new();
    while !buf.is_empty() {
        let any = Any::decode_length_delimited(&mut buf)
            .with_context(|| format!("{}: decode length-delimited Any", path.display()))?;
        let (type_url, name, resource) = decode_one(&any)
            .with_context(|| format!("{}: decode {}", path.display(), any.type_url))?;
        if check {
            let served = resource.into_any().value;
            if served != any.value {
                altered.push(format!(
                    "{name} ({} bytes in, {} served)",
                    any.value.len(),
                    served.len()
                ));
            }
        }
        let Some(items) = by_type.get_mut(type_url) else {
            bail!("unexpected type {type_url}");
        };
        if items.insert(name.clone(), (resource, any.value)).is_some() {
            bail!("{}: duplicate {type_url} named {name:?}", path.display());
        }
    }
    Ok((by_type, altered))
}

fn decode_one(any: &Any) -> Result<(&'static str, String, Resource)> {
    let v = &any.value[..];
    match any.type_url.as_str() {
        t if t == CLUSTER => {
            let c = Cluster::decode(v)?;
            Ok((CLUSTER, c.name.clone(), Resource::Cluster(c)))
        }
        t if t == LISTENER => {
            let l = Listener::decode(v)?;
            Ok((LISTENER, l.name.clone(), Resource::Listener(l)))
        }
        t if t == ROUTE => {
            let r = RouteConfiguration::decode(v)?;
            Ok((ROUTE, r.name.clone(), Resource::Route(r)))
        }
        other => {
            bail!("unsupported type_url {other:?} (want Cluster, Listener or RouteConfiguration)")
        }
    }
}

/// Versions across loads. The crate versions each type separately
/// (`Resources::version`) and pushes a type to a stream when its version
/// differs from what the stream last ACKed. A type's version is the
/// generation (1 for `--resources`, +1 per `load`) in which its content last
/// changed, so a load pushes only the types it changes, and every response it
/// causes carries `version_info` == the generation printed by `loaded`.
#[derive(Default)]
pub struct Versions {
    generation: u64,
    /// type URL → (version, name → bytes) last served.
    last: HashMap<&'static str, (String, BTreeMap<String, Vec<u8>>)>,
}

impl Versions {
    /// Builds the next snapshot from a decoded file; returns it with its
    /// generation.
    pub fn next(&mut self, mut decoded: HashMap<&'static str, Decoded>) -> (Snapshot, u64) {
        self.generation += 1;
        let generation = self.generation.to_string();
        let mut snapshot = Snapshot::new();
        for t in TYPES {
            let items = decoded.remove(t).unwrap_or_default();
            let content: BTreeMap<String, Vec<u8>> = items
                .iter()
                .map(|(name, (_, bytes))| (name.clone(), bytes.clone()))
                .collect();
            let version = match self.last.get(t) {
                Some((v, old)) if *old == content => v.clone(),
                _ => generation.clone(),
            };
            // Every type is present, even when empty, so a stream that asks
            // for it gets an (empty) answer instead of waiting forever.
            let mut resources = Resources::new(version.clone());
            resources.items = items.into_iter().map(|(n, (r, _))| (n, r)).collect();
            snapshot.insert(t.to_string(), resources);
            self.last.insert(t, (version, content));
        }
        (snapshot, self.generation)
    }
}
