//! The resources file (a sequence of length-delimited `google.protobuf.Any`)
//! → a `nebucloud_xds` `Snapshot` of opaque resources, with per-type
//! versions that move only when that type's content moves.
//!
//! The crate's `Resource` trait is implemented here by [`Encoded`], which
//! holds the file's `Any` as it is and hands out a copy of it from
//! `encode()`: the crate serves the file's bytes, never a re-encoding. (The
//! crate has such a type itself, `AnyResource`, but 0.1.0 does not export it;
//! its docs invite implementing `Resource` for one's own types.) Only the
//! resource's name is decoded, from field 1 of the message, which is `name`
//! in Cluster, Listener and RouteConfiguration alike.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use nebucloud_xds::cache::Snapshot;
use nebucloud_xds::core::{BoxResource, Resource, TypeUrl};
use prost::Message;
use prost_types::Any;

/// The three types the benchmark serves, in push order.
pub const TYPES: [&str; 3] = [TypeUrl::CLUSTER, TypeUrl::LISTENER, TypeUrl::ROUTE];

/// One resource as the file has it.
#[derive(Debug)]
pub struct Encoded {
    name: String,
    any: Any,
}

impl Resource for Encoded {
    fn type_url(&self) -> &str {
        &self.any.type_url
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn encode(&self) -> std::result::Result<Any, Box<dyn std::error::Error + Send + Sync>> {
        Ok(self.any.clone())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// Field 1 of a resource message: its name. prost skips the other fields.
#[derive(Clone, PartialEq, Message)]
struct NameField {
    #[prost(string, tag = "1")]
    name: String,
}

/// Per type URL: name → resource.
pub type ByType = HashMap<&'static str, BTreeMap<String, Arc<Encoded>>>;

/// Reads `path`: every resource by type and name.
pub fn read(path: &Path) -> Result<ByType> {
    let bytes = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    parse(&bytes).with_context(|| format!("{}", path.display()))
}

fn parse(mut buf: &[u8]) -> Result<ByType> {
    let mut by_type: ByType = TYPES.iter().map(|t| (*t, BTreeMap::new())).collect();
    while !buf.is_empty() {
        let any = Any::decode_length_delimited(&mut buf).context("decode length-delimited Any")?;
        let Some(ty) = TYPES.iter().copied().find(|t| *t == any.type_url) else {
            bail!(
                "unsupported type_url {:?} (want Cluster, Listener or RouteConfiguration)",
                any.type_url
            );
        };
        let name = NameField::decode(any.value.as_slice())
            .with_context(|| format!("decode a {ty}"))?
            .name;
        let items = by_type.entry(ty).or_default();
        if items.contains_key(&name) {
            bail!("duplicate {ty} named {name:?}");
        }
        items.insert(name.clone(), Arc::new(Encoded { name, any }));
    }
    Ok(by_type)
}

/// Versions across loads. The crate versions each type separately (SotW
/// answers a request whose `version_info` differs from the type's version;
/// delta gives every resource its type's version). A type's version is the
/// generation (1 for `--resources`, +1 per `load`) in which its content last
/// changed, so every response a load causes carries `version_info` == the
/// generation printed by `loaded`.
#[derive(Default)]
pub struct Versions {
    generation: u64,
    /// Type URL → (version, resources) last built.
    last: HashMap<&'static str, (String, BTreeMap<String, Arc<Encoded>>)>,
}

impl Versions {
    /// Builds the next snapshot; returns it with its generation.
    pub fn next(&mut self, mut by_type: ByType) -> (Snapshot, u64) {
        self.generation += 1;
        let generation = self.generation.to_string();
        let mut builder = Snapshot::builder().version(generation.clone());
        for t in TYPES {
            let items = by_type.remove(t).unwrap_or_default();
            let version = match self.last.get(t) {
                Some((v, old)) if same(old, &items) => v.clone(),
                _ => generation.clone(),
            };
            // Every type is present, even when empty: the crate answers
            // nothing for a type the snapshot lacks.
            let resources: Vec<BoxResource> =
                items.values().map(|r| r.clone() as BoxResource).collect();
            builder = builder.resources_with_version(TypeUrl::new(t), version.clone(), resources);
            self.last.insert(t, (version, items));
        }
        (builder.build(), self.generation)
    }
}

fn same(a: &BTreeMap<String, Arc<Encoded>>, b: &BTreeMap<String, Arc<Encoded>>) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((na, ra), (nb, rb))| na == nb && ra.any.value == rb.any.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any(type_url: &str, name: &str, extra: &[u8]) -> Any {
        let mut value = NameField {
            name: name.to_string(),
        }
        .encode_to_vec();
        value.extend_from_slice(extra);
        Any {
            type_url: type_url.to_string(),
            value,
        }
    }

    fn file(anys: &[Any]) -> Vec<u8> {
        let mut buf = Vec::new();
        for a in anys {
            a.encode_length_delimited(&mut buf).unwrap();
        }
        buf
    }

    #[test]
    fn serves_the_file_bytes() {
        // Field 7 (varint 1) stands for fields the name decoder skips.
        let c = any(TypeUrl::CLUSTER, "c1", &[0x38, 0x01]);
        let by = parse(&file(std::slice::from_ref(&c))).unwrap();
        let r = &by[TypeUrl::CLUSTER]["c1"];
        assert_eq!(r.encode().unwrap(), c);
    }

    #[test]
    fn rejects_duplicates_and_unknown_types() {
        let c = any(TypeUrl::CLUSTER, "c1", &[]);
        assert!(parse(&file(&[c.clone(), c])).is_err());
        assert!(parse(&file(&[any("type.googleapis.com/x.Y", "a", &[])])).is_err());
    }

    #[test]
    fn versions_move_per_type() {
        let mut v = Versions::default();
        let c = any(TypeUrl::CLUSTER, "c1", &[]);
        let r1 = any(TypeUrl::ROUTE, "r", &[]);
        let r2 = any(TypeUrl::ROUTE, "r", &[0x38, 0x01]);
        let (s1, g1) = v.next(parse(&file(&[c.clone(), r1])).unwrap());
        let (s2, g2) = v.next(parse(&file(&[c, r2])).unwrap());
        assert_eq!((g1, g2), (1, 2));
        let ver = |s: &Snapshot, t: &str| s.get_version(TypeUrl::new(t)).map(str::to_string);
        assert_eq!(ver(&s1, TypeUrl::CLUSTER).as_deref(), Some("1"));
        assert_eq!(ver(&s2, TypeUrl::CLUSTER).as_deref(), Some("1"));
        assert_eq!(ver(&s2, TypeUrl::ROUTE).as_deref(), Some("2"));
        assert_eq!(ver(&s2, TypeUrl::LISTENER).as_deref(), Some("1"));
    }
}
