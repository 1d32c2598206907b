//! Which proxy an Envoy node is: Gloo's convention first
//! (`node.metadata.role` = `<namespace>~<proxyName>`), else `node.cluster`.
//!
//! A stream keeps only `NodeInfo` (id, cluster, role) of the node Envoy
//! sends, never the whole `Node`: metadata, extensions and build details can
//! be large and edgeplane needs none of them after the first request.

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::value::Kind;

use crate::snapshot::Snapshot;

/// What a stream keeps of its node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: String,
    pub cluster: String,
    /// `node.metadata.role`, empty when unset or not a string.
    pub role: String,
}

impl NodeInfo {
    pub fn of(node: &Node) -> Self {
        NodeInfo {
            id: node.id.clone(),
            cluster: node.cluster.clone(),
            role: role(node).unwrap_or("").to_string(),
        }
    }
}

/// The `role` string from the node's metadata, if set.
pub fn role(node: &Node) -> Option<&str> {
    let fields = &node.metadata.as_ref()?.fields;
    match fields.get("role")?.kind.as_ref()? {
        Kind::StringValue(s) => Some(s.as_str()),
        _ => None,
    }
}

/// The proxy key this node gets, or `None` when it matches no proxy.
pub fn resolve(node: &NodeInfo, snapshot: &Snapshot) -> Option<String> {
    if !node.role.is_empty() && snapshot.proxies.contains_key(&node.role) {
        return Some(node.role.clone());
    }
    let cluster = node.cluster.as_str();
    if cluster.is_empty() {
        return None;
    }
    if snapshot.proxies.contains_key(cluster) {
        return Some(cluster.to_string());
    }
    // `node.cluster` may be just the proxy name; accept it when unambiguous.
    let mut matches = snapshot
        .proxies
        .keys()
        .filter(|k| k.split_once('~').is_some_and(|(_, name)| name == cluster));
    match (matches.next(), matches.next()) {
        (Some(k), None) => Some(k.clone()),
        _ => None,
    }
}

/// How much of each node field a log line shows.
const DESCRIBE_FIELD_BYTES: usize = 256;

/// How to name the node in logs: its id, role and cluster, each escaped
/// and cut at 256 bytes (they are the client's to choose).
pub fn describe(node: &NodeInfo) -> String {
    let f = |s: &str| super::registry::clean_capped(s, DESCRIBE_FIELD_BYTES);
    format!(
        "id=\"{}\" role=\"{}\" cluster=\"{}\"",
        f(&node.id),
        f(&node.role),
        f(&node.cluster)
    )
}
