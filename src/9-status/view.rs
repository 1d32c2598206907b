//! The status report: the translation's resource statuses merged with what
//! the connected Envoys said (a NACK makes the resources it concerns
//! Rejected on that proxy), the served versions, the connected nodes with
//! their connection counts, and the recent drains.
//!
//! `current_status` builds the one typed report (`api::GetStatusResponse`);
//! `StatusDocument` is `/status`: that report plus the served generation,
//! the server's clock and the work of the last load.

use std::collections::BTreeMap;

use serde::Serialize;

use super::State;
use super::api::{
    ConnectedNode, GetStatusResponse, ListenerConnections, ListenerDrain, NodeTypeState,
    ProxySnapshot, ProxyStatus, ResourceStatus, TypeVersion,
};
use crate::pipeline::reconcile;
use crate::snapshot::{PUSH_ORDER, ResourceType};
use crate::status::drain;

/// `/status`: the report, with what only the admin page needs beside it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusDocument {
    /// The served snapshot's generation (`None` before the first valid
    /// load).
    pub generation: Option<String>,
    /// The server's clock, so a page can show how old a time is.
    pub now_unix_ms: u64,
    pub last_load: LastLoad,
    #[serde(flatten)]
    pub report: GetStatusResponse,
}

/// The work of the most recent load, with the number of that load.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LastLoad {
    pub load: u64,
    pub files_read: usize,
    pub files_reused: usize,
    pub files_parsed: usize,
    pub parses_reused: usize,
    pub routes_reused: usize,
    /// Envoy routes encoded by the translation, and taken from the last.
    pub envoy_routes_encoded: usize,
    pub envoy_routes_reused: usize,
    /// Per type (`lds`, `rds`, `cds`).
    pub resources_encoded: BTreeMap<&'static str, usize>,
    pub resources_reused: BTreeMap<&'static str, usize>,
    pub read_ms: f64,
    pub build_ms: f64,
    pub duration_ms: f64,
}

/// The whole `/status` document, from one read of the served snapshot and
/// the load state.
pub fn status_document(state: &State) -> StatusDocument {
    let snap = state.snapshots.borrow().clone();
    let load = state.load();
    let report = report(state, snap.as_deref(), &load);
    let generation = snap.as_ref().map(|s| s.generation().to_string());
    let w = &load.work;
    let by_type = |m: &BTreeMap<ResourceType, usize>| {
        PUSH_ORDER
            .iter()
            .map(|t| (t.short(), m.get(t).copied().unwrap_or(0)))
            .collect()
    };
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    let last_load = LastLoad {
        load: load.loads,
        files_read: w.files_read,
        files_reused: w.files_reused,
        files_parsed: w.files_parsed,
        parses_reused: w.parses_reused,
        routes_reused: w.routes_reused,
        envoy_routes_encoded: w.envoy_routes.encoded,
        envoy_routes_reused: w.envoy_routes.reused,
        resources_encoded: by_type(&w.encode.encoded),
        resources_reused: by_type(&w.encode.reused),
        read_ms: ms(w.read),
        build_ms: ms(w.build),
        duration_ms: ms(w.total),
    };
    drop(load);
    StatusDocument {
        generation,
        now_unix_ms: crate::xds::registry::now_unix_ms(),
        last_load,
        report,
    }
}

/// The status report, as the gRPC API sends it.
pub fn current_status(state: &State) -> GetStatusResponse {
    let snap = state.snapshots.borrow().clone();
    report(state, snap.as_deref(), &state.load())
}

/// The report for the served snapshot `snap` and the load state `load`,
/// read in place (a clone would copy every diagnostic, status and the
/// owners index).
fn report(
    state: &State,
    snap: Option<&crate::snapshot::Snapshot>,
    load: &super::LoadState,
) -> GetStatusResponse {
    // One copy of the registry serves both the nodes and the NACK
    // attribution, so they agree.
    let registered = state.registry.list();
    let proxies = snap
        .map(|s| {
            s.proxies
                .iter()
                .map(|(key, p)| ProxySnapshot {
                    key: key.clone(),
                    // SDS only where there are secrets: Envoy subscribes
                    // to secrets by name, so a proxy without any never
                    // ACKs the type, and "synced" means every type listed.
                    types: PUSH_ORDER
                        .iter()
                        .filter(|t| {
                            **t != ResourceType::Secret || p.resources(**t).next().is_some()
                        })
                        .map(|t| TypeVersion {
                            type_url: t.type_url().to_string(),
                            version: p.version(*t),
                            resource_names: p.resources(*t).map(|e| e.name.to_string()).collect(),
                        })
                        .collect(),
                })
                .collect()
        })
        .unwrap_or_default();
    let diagnostics = load.diagnostics.iter().map(Into::into).collect();
    // Each proxy's listeners with their Envoy stats scope, decoded once.
    let mut prefixes = ListenerPrefixes::new();
    let resources = resource_statuses(load, &registered);
    let mut nodes: Vec<ConnectedNode> = registered
        .into_iter()
        .map(|n| {
            let (listeners, upgrades) =
                listener_connections(state, snap, &n.node_id, &n.proxy, &mut prefixes);
            ConnectedNode {
                stats_reported: state.envoy_stats.get(&n.node_id).is_some(),
                listeners,
                upgrades_active: upgrades.active,
                upgrades_total: upgrades.total,
                node_id: n.node_id,
                proxy: n.proxy,
                replica: String::new(),
                xds_mode: n.mode.to_string(),
                types: n
                    .types
                    .into_iter()
                    .map(|(t, s)| NodeTypeState {
                        type_url: t.type_url().to_string(),
                        acked_version: s.acked_version,
                        nacked_version: s.nacked_version,
                        nack_message: s.nack_message,
                        responses: s.responses,
                        last_ack_unix_ms: s.last_ack_unix_ms,
                        last_nack_unix_ms: s.last_nack_unix_ms,
                    })
                    .collect(),
            }
        })
        .collect();
    // The Envoys of the other replicas on the same store.
    nodes.extend(state.peers.nodes());
    GetStatusResponse {
        serving: snap.is_some(),
        last_load_failed: load.last_load_failed,
        proxies,
        diagnostics,
        nodes,
        loads: load.loads,
        resources,
        drains: own_drains(state)
            .into_iter()
            .chain(state.peers.drains())
            .collect(),
        source: Some(source_msg(&state.source)),
    }
}

fn source_msg(s: &super::SourceInfo) -> super::api::ManifestSource {
    match s {
        super::SourceInfo::Dir(d) => super::api::ManifestSource {
            kind: "directory".into(),
            dir: d.display().to_string(),
            connected: true,
            ..Default::default()
        },
        super::SourceInfo::Etcd {
            endpoints,
            prefix,
            connection,
        } => {
            let c = connection
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            super::api::ManifestSource {
                kind: "etcd".into(),
                endpoints: endpoints.clone(),
                prefix: prefix.clone(),
                endpoint: c.endpoint,
                revision: c.revision,
                connected: c.connected,
                since_unix_ms: c
                    .since
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
                error: c.error.unwrap_or_default(),
                ..Default::default()
            }
        }
    }
}

/// One listener's Envoy stats scopes: its name, its listener stat prefix,
/// its HCMs' stat prefixes.
type ListenerScopes = (String, Option<String>, Vec<String>);

/// Proxy → its listeners' scopes.
type ListenerPrefixes = std::collections::BTreeMap<String, Vec<ListenerScopes>>;

/// Active connections and upgrades per listener of `proxy` on `node_id`,
/// with the node's upgrades (each HCM stat prefix counted once), from the
/// stats that Envoy streams; empty and zero when it streams none.
fn listener_connections(
    state: &State,
    snap: Option<&crate::snapshot::Snapshot>,
    node_id: &str,
    proxy: &str,
    prefixes: &mut ListenerPrefixes,
) -> (Vec<ListenerConnections>, drain::Upgrades) {
    let (Some(stats), Some(ps)) = (
        state.envoy_stats.get(node_id),
        snap.and_then(|s| s.proxies.get(proxy)),
    ) else {
        return (Vec::new(), drain::Upgrades::default());
    };
    let listeners = prefixes.entry(proxy.to_string()).or_insert_with(|| {
        ps.resources(ResourceType::Listener)
            .map(|e| {
                (
                    e.name.to_string(),
                    drain::encoded_stat_prefix(e),
                    drain::encoded_hcm_stat_prefixes(e),
                )
            })
            .collect()
    });
    connections(&stats, listeners)
}

/// `listener_connections` on one node's stats and its proxy's listeners.
fn connections(
    stats: &drain::NodeStats,
    listeners: &[ListenerScopes],
) -> (Vec<ListenerConnections>, drain::Upgrades) {
    // HCM stat prefix → how many listeners use it.
    let mut users: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, _, hcms) in listeners {
        for h in hcms {
            *users.entry(h.as_str()).or_default() += 1;
        }
    }
    let upgrades = |h: &str| stats.upgrades.get(h).copied().unwrap_or_default();
    let node = users
        .keys()
        .fold(drain::Upgrades::default(), |acc, h| drain::Upgrades {
            active: acc.active + upgrades(h).active,
            total: acc.total + upgrades(h).total,
        });
    let per_listener = listeners
        .iter()
        .map(|(name, prefix, hcms)| ListenerConnections {
            listener: name.clone(),
            active_connections: prefix
                .as_ref()
                .and_then(|p| stats.active.get(p).copied())
                .unwrap_or(0),
            upgrades_active: hcms.iter().map(|h| upgrades(h).active).sum(),
            upgrades_total: hcms.iter().map(|h| upgrades(h).total).sum(),
            upgrades_shared: hcms
                .iter()
                .any(|h| users.get(h.as_str()).copied().unwrap_or(0) > 1),
        })
        .collect();
    (per_listener, node)
}

/// This replica's own recent drains (not its peers').
pub fn own_drains(state: &State) -> Vec<ListenerDrain> {
    state.drains.list().iter().map(drain_msg).collect()
}

fn drain_msg(d: &drain::DrainRecord) -> ListenerDrain {
    ListenerDrain {
        listener: d.listener.clone(),
        proxy: d.proxy.clone(),
        node_id: d.node_id.clone(),
        change: d.change.as_str().to_string(),
        filter_chains: match &d.change {
            drain::Change::Modified { filter_chains } => filter_chains.clone(),
            drain::Change::Removed => Vec::new(),
        },
        active_connections: d.active_connections,
        at_unix_ms: i64::try_from(d.at_unix_ms).unwrap_or(i64::MAX),
        version: d.version.clone(),
    }
}

/// Translation statuses merged with what the connected Envoys said: a NACK
/// makes every resource it concerns Rejected on that proxy (and overall)
/// until the next ACK of that type.
fn resource_statuses(
    load: &super::LoadState,
    nodes: &[crate::xds::registry::NodeState],
) -> Vec<ResourceStatus> {
    // (resource, proxy) -> rejection reason
    let mut nacks: BTreeMap<(crate::diag::ResourceId, String), String> = BTreeMap::new();
    for n in nodes {
        for (t, ts) in &n.types {
            for name in &ts.nacked_names {
                for id in load.owners.get(&(*t, name.clone())).into_iter().flatten() {
                    nacks
                        .entry((id.clone(), n.proxy.clone()))
                        .or_insert_with(|| {
                            format!(
                                "Envoy node {:?} rejected {} version {}: {}",
                                n.node_id,
                                t.short(),
                                ts.nacked_version,
                                ts.nack_message
                            )
                        });
                }
            }
        }
    }
    load.statuses
        .iter()
        .map(|st| {
            let mut state = st.state;
            let proxies = st
                .proxies
                .iter()
                .map(|p| match nacks.get(&(st.id.clone(), p.clone())) {
                    Some(reason) => {
                        state = reconcile::State::Rejected;
                        ProxyStatus {
                            proxy: p.clone(),
                            state: "Rejected".into(),
                            reason: reason.clone(),
                        }
                    }
                    None => ProxyStatus {
                        proxy: p.clone(),
                        state: "Accepted".into(),
                        reason: String::new(),
                    },
                })
                .collect();
            ResourceStatus {
                kind: st.id.kind.clone(),
                namespace: st.id.namespace.clone(),
                name: st.id.name.clone(),
                state: state.as_str().to_string(),
                serving: st.serving.as_str().to_string(),
                file: st.file.display().to_string(),
                line: st.line,
                reasons: st.reasons.iter().map(Into::into).collect(),
                proxies,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrades_go_to_listeners_by_hcm_prefix_and_count_once_per_node() {
        let mut stats = drain::NodeStats::default();
        stats.active.insert("127.0.0.1_1".into(), 3);
        let u = |active, total| drain::Upgrades { active, total };
        stats.upgrades.insert("http".into(), u(2, 5));
        stats.upgrades.insert("own".into(), u(1, 1));
        let scopes = |name: &str, prefix: &str, hcms: &[&str]| -> ListenerScopes {
            (
                name.into(),
                Some(prefix.into()),
                hcms.iter().map(|h| h.to_string()).collect(),
            )
        };
        let listeners = [
            scopes("a", "127.0.0.1_1", &["http"]),
            scopes("b", "127.0.0.1_2", &["http"]),
            scopes("c", "127.0.0.1_3", &["own"]),
            scopes("tcp", "127.0.0.1_4", &[]),
        ];
        let (ls, node) = connections(&stats, &listeners);
        // The shared `http` scope counts once for the node.
        assert_eq!(node, u(3, 6));
        let got: Vec<_> = ls
            .iter()
            .map(|l| {
                (
                    l.listener.as_str(),
                    l.active_connections,
                    l.upgrades_active,
                    l.upgrades_total,
                    l.upgrades_shared,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("a", 3, 2, 5, true),
                ("b", 0, 2, 5, true),
                ("c", 0, 1, 1, false),
                ("tcp", 0, 0, 0, false),
            ]
        );
    }
}
