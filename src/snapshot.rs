//! Snapshots: translated resources, encoded once, with content-hash versions.
//!
//! A `Snapshot` is immutable and shared (`Arc`) by every xDS stream. Each
//! resource is encoded to protobuf bytes once, here, and its version is the
//! SHA-256 of those bytes (translation emits no multi-entry maps, so the
//! bytes are canonical). A type's version is the hash of its resources'
//! names and hashes; the same manifests therefore give the same versions in
//! every process and on every replica, and a restart changes nothing in
//! Envoy.

use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::google::protobuf::Any;
use prost::{Message, Name};
use sha2::{Digest, Sha256};

use crate::translate::{Output, ProxyResources};

pub const LISTENER_TYPE: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
pub const ROUTE_TYPE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
pub const CLUSTER_TYPE: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";

/// The resource types edgeplane serves, in make-before-break push order:
/// clusters before the listeners that use them, listeners before routes.
pub const PUSH_ORDER: [ResourceType; 3] = [
    ResourceType::Cluster,
    ResourceType::Listener,
    ResourceType::Route,
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResourceType {
    Cluster,
    Listener,
    Route,
}

impl ResourceType {
    pub fn type_url(self) -> &'static str {
        match self {
            ResourceType::Cluster => CLUSTER_TYPE,
            ResourceType::Listener => LISTENER_TYPE,
            ResourceType::Route => ROUTE_TYPE,
        }
    }

    pub fn from_type_url(url: &str) -> Option<Self> {
        PUSH_ORDER.into_iter().find(|t| t.type_url() == url)
    }

    /// LDS and CDS responses carry the full set; RDS carries what is asked.
    pub fn is_full_state(self) -> bool {
        !matches!(self, ResourceType::Route)
    }

    pub fn short(self) -> &'static str {
        match self {
            ResourceType::Cluster => "CDS",
            ResourceType::Listener => "LDS",
            ResourceType::Route => "RDS",
        }
    }
}

/// One encoded resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoded {
    pub name: String,
    /// Hex SHA-256 of `any.value`.
    pub hash: String,
    pub any: Any,
    /// For a RouteConfiguration: each virtual host's name and hash, so a
    /// NACK can be narrowed to the virtual hosts that changed.
    pub parts: Vec<(String, String)>,
}

fn encode<M: Message + Name>(name: &str, msg: &M) -> Arc<Encoded> {
    let value = msg.encode_to_vec();
    let hash = hex(&Sha256::digest(&value));
    Arc::new(Encoded {
        name: name.to_string(),
        hash,
        any: Any {
            type_url: M::type_url(),
            value,
        },
        parts: Vec::new(),
    })
}

fn encode_routes(
    rc: &envoy_types::pb::envoy::config::route::v3::RouteConfiguration,
) -> Arc<Encoded> {
    let mut e = encode(&rc.name, rc);
    if let Some(inner) = Arc::get_mut(&mut e) {
        inner.parts = rc
            .virtual_hosts
            .iter()
            .map(|vh| (vh.name.clone(), hex(&Sha256::digest(vh.encode_to_vec()))))
            .collect();
    }
    e
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
        let proxies = out
            .iter()
            .map(|(key, res)| (key.clone(), Arc::new(proxy_snapshot(res))))
            .collect();
        Snapshot { proxies }
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

fn proxy_snapshot(res: &ProxyResources) -> ProxySnapshot {
    let mut types = BTreeMap::new();
    types.insert(
        ResourceType::Cluster,
        res.clusters
            .iter()
            .map(|c| (c.name.clone(), encode(&c.name, c)))
            .collect(),
    );
    types.insert(
        ResourceType::Listener,
        res.listeners
            .iter()
            .map(|l| (l.name.clone(), encode(&l.name, l)))
            .collect(),
    );
    types.insert(
        ResourceType::Route,
        res.route_configs
            .iter()
            .map(|r| (r.name.clone(), encode_routes(r)))
            .collect(),
    );
    ProxySnapshot { types }
}
