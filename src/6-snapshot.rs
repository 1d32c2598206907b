//! Snapshots: translated resources, encoded once, with content-hash versions.
//!
//! A `Snapshot` is immutable and shared (`Arc`) by every xDS stream. Each
//! resource is encoded to protobuf bytes once, here (RouteConfigurations
//! arrive encoded: translation splices them from each route's bytes,
//! `translate::route_memo`), and its version is the
//! SHA-256 of those bytes (`translate::canonical` sorts map entries, so the
//! bytes are canonical). A type's version is the hash of its resources'
//! names and hashes; the same manifests therefore give the same versions in
//! every process and on every replica, and a restart changes nothing in
//! Envoy.

use std::collections::BTreeMap;
use std::sync::Arc;

use std::collections::HashMap;

use envoy_types::pb::google::protobuf::Any;
use prost::{Message, Name};
use sha2::{Digest, Sha256};

use crate::translate::Output;
use crate::translate::canonical::length_delimited;

pub const LISTENER_TYPE: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
pub const ROUTE_TYPE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
pub const CLUSTER_TYPE: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
pub const SECRET_TYPE: &str =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";

/// The resource types edgeplane serves, in make-before-break push order:
/// clusters before the listeners that use them, listeners before routes
/// and secrets (Envoy asks for those by name once a listener names them;
/// when both change, the new secret is there before a listener wants it).
pub const PUSH_ORDER: [ResourceType; 4] = [
    ResourceType::Cluster,
    ResourceType::Listener,
    ResourceType::Route,
    ResourceType::Secret,
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResourceType {
    Cluster,
    Listener,
    Route,
    /// SDS: `secretRef` certificates (and their CAs).
    Secret,
}

impl ResourceType {
    pub fn type_url(self) -> &'static str {
        match self {
            ResourceType::Cluster => CLUSTER_TYPE,
            ResourceType::Listener => LISTENER_TYPE,
            ResourceType::Route => ROUTE_TYPE,
            ResourceType::Secret => SECRET_TYPE,
        }
    }

    pub fn from_type_url(url: &str) -> Option<Self> {
        PUSH_ORDER.into_iter().find(|t| t.type_url() == url)
    }

    /// LDS and CDS responses carry the full set; RDS and SDS carry what is
    /// asked (Envoy subscribes to them by name).
    pub fn is_full_state(self) -> bool {
        !matches!(self, ResourceType::Route | ResourceType::Secret)
    }

    pub fn short(self) -> &'static str {
        match self {
            ResourceType::Cluster => "CDS",
            ResourceType::Listener => "LDS",
            ResourceType::Route => "RDS",
            ResourceType::Secret => "SDS",
        }
    }
}

/// One encoded resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoded {
    /// Shared, not copied, by every delta stream that records Envoy holds
    /// this resource (`xds::delta`).
    pub name: Arc<str>,
    /// Hex SHA-256 of `bytes`.
    pub hash: String,
    pub type_url: String,
    /// The resource's protobuf encoding, held once and shared: every
    /// stream's gRPC frames point at it (`xds::wire`).
    pub bytes: prost::bytes::Bytes,
    /// For a RouteConfiguration: each virtual host's name and hash, so a
    /// NACK can be narrowed to the virtual hosts that changed.
    pub parts: Vec<(String, String)>,
}

impl Encoded {
    /// Takes `any`'s bytes without copying them.
    pub fn new(name: String, hash: String, any: Any, parts: Vec<(String, String)>) -> Self {
        Encoded {
            name: name.into(),
            hash,
            type_url: any.type_url,
            bytes: any.value.into(),
            parts,
        }
    }

    /// The resource as a `google.protobuf.Any` (a copy of its bytes).
    pub fn any(&self) -> Any {
        Any {
            type_url: self.type_url.clone(),
            value: self.bytes.to_vec(),
        }
    }
}

/// The byte ranges of a RouteConfiguration's virtual hosts (field 2) in its
/// encoding, each the encoding of that `VirtualHost`, in order. Empty if
/// the bytes do not parse (they always do: translation wrote them).
fn virtual_host_ranges(rc: &[u8]) -> Vec<std::ops::Range<usize>> {
    length_delimited(rc, 2).unwrap_or_default()
}

/// A `VirtualHost`'s name (field 1) read off its encoding, without decoding
/// its routes (a RouteConfiguration of 10,000 routes would otherwise be
/// decoded whole again, tens of MiB, at every build).
fn virtual_host_name(vh: &[u8]) -> String {
    length_delimited(vh, 1)
        .and_then(|r| r.last().cloned())
        .and_then(|r| std::str::from_utf8(&vh[r]).ok().map(str::to_string))
        .unwrap_or_default()
}

/// Each virtual host's name and hash, read off the RouteConfiguration's
/// bytes. A virtual host whose bytes equal those of the same-named one in
/// `prev` (the last encoding of this RouteConfiguration) keeps that hash.
fn virtual_host_parts(rc: &[u8], prev: Option<&Encoded>) -> Vec<(String, String)> {
    let known: HashMap<&str, (&[u8], &str)> = prev
        .map(|p| {
            let bytes: &[u8] = &p.bytes;
            virtual_host_ranges(bytes)
                .into_iter()
                .zip(&p.parts)
                .map(|(r, (name, hash))| (name.as_str(), (&bytes[r], hash.as_str())))
                .collect()
        })
        .unwrap_or_default();
    virtual_host_ranges(rc)
        .into_iter()
        .map(|r| {
            let body = &rc[r];
            let name = virtual_host_name(body);
            let hash = match known.get(name.as_str()) {
                Some((old, hash)) if *old == body => (*hash).to_string(),
                _ => hex(&Sha256::digest(body)),
            };
            (name, hash)
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The version of a set of resources: a hash over their names and hashes
/// (in name order), shortened for readability.
pub fn version_of<'a>(items: impl IntoIterator<Item = &'a Arc<Encoded>>) -> String {
    let mut h = Sha256::new();
    for e in items {
        h.update(e.name.as_bytes());
        h.update([0]);
        h.update(e.hash.as_bytes());
        h.update([0]);
    }
    hex(&h.finalize()[..8])
}

/// One proxy's resources by type, each map keyed (and so ordered) by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxySnapshot {
    pub types: BTreeMap<ResourceType, BTreeMap<String, Arc<Encoded>>>,
}

impl ProxySnapshot {
    pub fn resources(&self, t: ResourceType) -> impl Iterator<Item = &Arc<Encoded>> {
        self.types.get(&t).into_iter().flat_map(|m| m.values())
    }

    pub fn get(&self, t: ResourceType, name: &str) -> Option<&Arc<Encoded>> {
        self.types.get(&t).and_then(|m| m.get(name))
    }

    /// Version of the whole set of one type.
    pub fn version(&self, t: ResourceType) -> String {
        version_of(self.resources(t))
    }
}

/// Every proxy's encoded resources. Immutable once built.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub proxies: BTreeMap<String, Arc<ProxySnapshot>>,
}

impl Snapshot {
    pub fn from_output(out: &Output) -> Snapshot {
        Self::from_output_reusing(out, None).0
    }

    /// As `from_output`, but every resource whose bytes equal those of the
    /// same-named resource in `prev` (the last snapshot), or of one already
    /// encoded for another proxy of this build, takes that `Arc<Encoded>`:
    /// the same bytes, hash and version, shared, with no hashing. Only
    /// bytes are compared, so nothing of the previous translation is kept
    /// alive (encoding is cheap; hashing and memory are not). A changed
    /// RouteConfiguration keeps the hashes of its unchanged virtual hosts.
    /// The result equals `from_output(out)`.
    pub fn from_output_reusing(out: &Output, prev: Option<&Snapshot>) -> (Snapshot, EncodeStats) {
        let mut stats = EncodeStats::default();
        let mut shared = Shared::default();
        let mut proxies = BTreeMap::new();
        for (key, res) in out {
            let prev_snap = prev.and_then(|s| s.proxies.get(key)).map(Arc::as_ref);
            let mut b = Batch {
                prev_snap,
                stats: &mut stats,
                shared: &mut shared,
            };
            let mut types = BTreeMap::new();
            types.insert(
                ResourceType::Cluster,
                b.encode_all(ResourceType::Cluster, &res.clusters, |c| &c.name),
            );
            types.insert(
                ResourceType::Listener,
                b.encode_all(ResourceType::Listener, &res.listeners, |l| &l.name),
            );
            types.insert(
                ResourceType::Route,
                res.route_configs
                    .iter()
                    .map(|r| {
                        b.add(
                            ResourceType::Route,
                            &r.name,
                            ROUTE_TYPE.to_string(),
                            r.bytes.clone(),
                        )
                    })
                    .collect(),
            );
            types.insert(
                ResourceType::Secret,
                b.encode_all(ResourceType::Secret, &res.secrets, |s| &s.name),
            );
            proxies.insert(key.clone(), Arc::new(ProxySnapshot { types }));
        }
        (Snapshot { proxies }, stats)
    }

    /// A digest of the whole snapshot, for "did anything change" checks and
    /// logs.
    pub fn generation(&self) -> String {
        let mut h = Sha256::new();
        for (key, p) in &self.proxies {
            h.update(key.as_bytes());
            for t in PUSH_ORDER {
                h.update(p.version(t).as_bytes());
            }
        }
        hex(&h.finalize()[..8])
    }
}

/// How much of a snapshot was encoded, and how much was taken unchanged
/// from the previous one (or from another proxy of the same build).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EncodeStats {
    pub encoded: BTreeMap<ResourceType, usize>,
    pub reused: BTreeMap<ResourceType, usize>,
}

impl EncodeStats {
    pub fn encoded_total(&self) -> usize {
        self.encoded.values().sum()
    }

    pub fn reused_total(&self) -> usize {
        self.reused.values().sum()
    }
}

/// Resources encoded in this build, by type and name, for the proxies
/// that follow.
type Shared = HashMap<(ResourceType, String), Vec<Arc<Encoded>>>;

/// One proxy's part of a build.
struct Batch<'p, 's> {
    prev_snap: Option<&'p ProxySnapshot>,
    stats: &'s mut EncodeStats,
    shared: &'s mut Shared,
}

impl Batch<'_, '_> {
    /// Encodes `msgs` (one type of one proxy), reusing what it can.
    fn encode_all<M: Message + Name>(
        &mut self,
        t: ResourceType,
        msgs: &[M],
        name_of: fn(&M) -> &str,
    ) -> BTreeMap<String, Arc<Encoded>> {
        msgs.iter()
            .map(|m| {
                // Map entries sorted: prost writes them in hash order.
                let value = crate::translate::canonical::encode(m);
                self.add(t, name_of(m), M::type_url(), value.into())
            })
            .collect()
    }

    /// One resource of type `t` named `name`, encoded as `value`: the
    /// encoding of an equal one of this build or the last if there is one.
    fn add(
        &mut self,
        t: ResourceType,
        name: &str,
        type_url: String,
        value: prost::bytes::Bytes,
    ) -> (String, Arc<Encoded>) {
        let key = (t, name.to_string());
        let same_build = self
            .shared
            .get(&key)
            .and_then(|v| v.iter().find(|e| e.bytes == value))
            .cloned();
        let old = self.prev_snap.and_then(|p| p.get(t, name));
        let e = match same_build.or_else(|| old.filter(|e| e.bytes == value).cloned()) {
            Some(e) => {
                *self.stats.reused.entry(t).or_default() += 1;
                e
            }
            None => {
                *self.stats.encoded.entry(t).or_default() += 1;
                let parts = if t == ResourceType::Route {
                    virtual_host_parts(&value, old.map(Arc::as_ref))
                } else {
                    Vec::new()
                };
                Arc::new(Encoded {
                    name: name.into(),
                    hash: hex(&Sha256::digest(&value)),
                    type_url,
                    bytes: value,
                    parts,
                })
            }
        };
        self.shared.entry(key).or_default().push(e.clone());
        (name.to_string(), e)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::pipeline;
    use crate::source::SourceFile;

    const GW: &str = "apiVersion: gateway.solo.io/v1\nkind: Gateway\nmetadata: {name: gw}\nspec: {bindPort: 8080, httpGateway: {}}\n";

    fn up(name: &str, port: u16) -> String {
        format!(
            "apiVersion: gloo.solo.io/v1\nkind: Upstream\nmetadata: {{name: {name}}}\nspec: {{static: {{hosts: [{{addr: 127.0.0.1, port: {port}}}]}}}}\n"
        )
    }

    fn vs(name: &str, prefix: &str) -> String {
        format!(
            "apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata: {{name: {name}}}\nspec: {{virtualHost: {{domains: [{name}.com], routes: [{{matchers: [{{prefix: {prefix}}}], routeAction: {{single: {{upstream: {{name: a}}}}}}}}]}}}}\n"
        )
    }

    fn output(files: &[(&str, String)]) -> Output {
        let files = files
            .iter()
            .map(|(p, t)| SourceFile {
                path: PathBuf::from(p),
                text: t.clone(),
            })
            .collect();
        let load = pipeline::build(files, Vec::new());
        assert!(!load.has_errors(), "{}", load.render_diagnostics());
        load.output.unwrap_or_default()
    }

    fn counts(m: &BTreeMap<ResourceType, usize>) -> [usize; 4] {
        PUSH_ORDER.map(|t| m.get(&t).copied().unwrap_or(0))
    }

    const PROXY: &str = "gloo-system~gateway-proxy";

    #[test]
    fn reusing_encodings_gives_the_bytes_and_versions_of_a_fresh_build() {
        let first = output(&[
            ("gw.yaml", GW.to_string()),
            ("up.yaml", format!("{}---\n{}", up("a", 1), up("b", 2))),
            ("v1.yaml", vs("v1", "/one")),
            ("v2.yaml", vs("v2", "/two")),
        ]);
        let (s1, st1) = Snapshot::from_output_reusing(&first, None);
        assert_eq!(s1, Snapshot::from_output(&first));
        assert_eq!(counts(&st1.encoded), [2, 1, 1, 0]);
        assert_eq!(st1.reused_total(), 0);

        // One VirtualService edited: only the RouteConfiguration changes.
        let second = output(&[
            ("gw.yaml", GW.to_string()),
            ("up.yaml", format!("{}---\n{}", up("a", 1), up("b", 2))),
            ("v1.yaml", vs("v1", "/one-edited")),
            ("v2.yaml", vs("v2", "/two")),
        ]);
        let (s2, st2) = Snapshot::from_output_reusing(&second, Some(&s1));
        let fresh = Snapshot::from_output(&second);
        assert_eq!(s2, fresh, "byte-identical to a fresh build, parts included");
        assert_eq!(counts(&st2.encoded), [0, 0, 1, 0]);
        assert_eq!(counts(&st2.reused), [2, 1, 0, 0]);
        for t in PUSH_ORDER {
            assert_eq!(
                s2.proxies[PROXY].version(t),
                fresh.proxies[PROXY].version(t)
            );
        }
        assert_ne!(
            s2.proxies[PROXY].version(ResourceType::Route),
            s1.proxies[PROXY].version(ResourceType::Route)
        );
        // Unchanged resources are the very same encodings.
        for (t, name) in [
            (ResourceType::Cluster, "a_gloo-system"),
            (ResourceType::Listener, "listener-::-8080"),
        ] {
            let (old, new) = (
                s1.proxies[PROXY].get(t, name),
                s2.proxies[PROXY].get(t, name),
            );
            assert!(
                matches!((old, new), (Some(o), Some(n)) if Arc::ptr_eq(o, n)),
                "{t:?} {name}: {:?}",
                s2.proxies[PROXY].types[&t].keys().collect::<Vec<_>>()
            );
        }

        // An upstream's port changes: one cluster encoded; the others and
        // the routes reused.
        let third = output(&[
            ("gw.yaml", GW.to_string()),
            ("up.yaml", format!("{}---\n{}", up("a", 1), up("b", 3))),
            ("v1.yaml", vs("v1", "/one-edited")),
            ("v2.yaml", vs("v2", "/two")),
        ]);
        let (s3, st3) = Snapshot::from_output_reusing(&third, Some(&s2));
        assert_eq!(s3, Snapshot::from_output(&third));
        assert_eq!(counts(&st3.encoded), [1, 0, 0, 0]);
        assert_eq!(counts(&st3.reused), [1, 1, 1, 0]);
    }

    #[test]
    fn proxies_share_equal_resources_within_one_build() {
        let gw2 = "apiVersion: gateway.solo.io/v1\nkind: Gateway\nmetadata: {name: gw2}\nspec: {bindPort: 8081, proxyNames: [other], httpGateway: {}}\n";
        let out = output(&[
            ("gw.yaml", format!("{GW}---\n{gw2}")),
            ("up.yaml", up("a", 1)),
            ("v1.yaml", vs("v1", "/one")),
        ]);
        assert_eq!(out.len(), 2);
        let (s, st) = Snapshot::from_output_reusing(&out, None);
        assert_eq!(s, Snapshot::from_output(&out));
        // The cluster is encoded once for both proxies.
        assert_eq!(counts(&st.encoded)[0], 1);
        assert_eq!(counts(&st.reused)[0], 1);
    }

    #[test]
    fn a_changed_route_configuration_reuses_the_hashes_of_unchanged_virtual_hosts() {
        let a = output(&[
            ("gw.yaml", GW.to_string()),
            ("up.yaml", up("a", 1)),
            ("v1.yaml", vs("v1", "/one")),
            ("v2.yaml", vs("v2", "/two")),
        ]);
        let b = output(&[
            ("gw.yaml", GW.to_string()),
            ("up.yaml", up("a", 1)),
            ("v1.yaml", vs("v1", "/one")),
            ("v2.yaml", vs("v2", "/two-b")),
        ]);
        let sa = Snapshot::from_output(&a);
        let (sb, _) = Snapshot::from_output_reusing(&b, Some(&sa));
        let parts = |s: &Snapshot| {
            s.proxies[PROXY]
                .resources(ResourceType::Route)
                .flat_map(|e| e.parts.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(parts(&sb), parts(&Snapshot::from_output(&b)));
        let (pa, pb) = (parts(&sa), parts(&sb));
        assert_eq!(pa.len(), 2);
        assert_eq!(pa[0], pb[0]);
        assert_ne!(pa[1], pb[1]);
    }

    #[test]
    fn a_virtual_hosts_name_is_read_off_its_bytes_as_prost_decodes_it() {
        use envoy_types::pb::envoy::config::route::v3::{Route, VirtualHost};
        let vh = VirtualHost {
            name: "gloo-system_big".into(),
            domains: vec!["*".into()],
            routes: (0..50)
                .map(|i| Route {
                    name: format!("r{i}"),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let bytes = vh.encode_to_vec();
        assert_eq!(virtual_host_name(&bytes), "gloo-system_big");
        // The last occurrence of a non-repeated field wins, as in prost.
        let mut twice = bytes.clone();
        twice.extend(
            VirtualHost {
                name: "later".into(),
                ..Default::default()
            }
            .encode_to_vec(),
        );
        let decoded = VirtualHost::decode(twice.as_slice()).map(|v| v.name);
        assert_eq!(decoded.as_deref().ok(), Some("later"));
        assert_eq!(virtual_host_name(&twice), "later");
        assert_eq!(virtual_host_name(&[0xff]), "");
    }
}
