//! Which proxy an Envoy node is: Gloo's convention first
//! (`node.metadata.role` = `<namespace>~<proxyName>`), else `node.cluster`.

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::value::Kind;

use crate::snapshot::Snapshot;

/// The `role` string from the node's metadata, if set.
pub fn role(node: &Node) -> Option<&str> {
    let fields = &node.metadata.as_ref()?.fields;
    match fields.get("role")?.kind.as_ref()? {
        Kind::StringValue(s) => Some(s.as_str()),
        _ => None,
    }
}

/// The proxy key this node gets, or `None` when it matches no proxy.
pub fn resolve(node: &Node, snapshot: &Snapshot) -> Option<String> {
    if let Some(role) = role(node)
        && snapshot.proxies.contains_key(role)
    {
        return Some(role.to_string());
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

/// How to name the node in logs: its id, role and cluster.
pub fn describe(node: &Node) -> String {
    format!(
        "id={:?} role={:?} cluster={:?}",
        node.id,
        role(node).unwrap_or(""),
        node.cluster
    )
}
