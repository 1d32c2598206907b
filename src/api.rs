//! edgeplane's own gRPC API (`proto/edgeplane/v1/status.proto`): what is
//! served, what the last load found, which Envoys are connected.

use tonic::{Request, Response, Status};

use crate::diag::Severity;
use crate::server::Shared;
use crate::snapshot::PUSH_ORDER;

tonic::include_proto!("edgeplane.v1");

pub struct StatusApi {
    shared: Shared,
    /// Ends `WatchStatus` streams on shutdown, so they never hold the
    /// server open.
    shutdown: tokio::sync::watch::Receiver<bool>,
}

impl StatusApi {
    pub fn new(shared: Shared, shutdown: tokio::sync::watch::Receiver<bool>) -> Self {
        StatusApi { shared, shutdown }
    }
}

/// `"error"` or `"warning"`, for a `Diagnostic.severity`.
pub fn severity_name(severity: i32) -> &'static str {
    if severity == diagnostic::Severity::Error as i32 {
        "error"
    } else {
        "warning"
    }
}

/// The resource statuses as JSON, as the admin `/status` and `edgeplane
/// status --output json` print them.
pub fn resources_json(resources: &[ResourceStatus]) -> serde_json::Value {
    use serde_json::json;
    resources
        .iter()
        .map(|r| {
            json!({
                "kind": r.kind, "namespace": r.namespace, "name": r.name,
                "state": r.state, "serving": r.serving, "file": r.file, "line": r.line,
                "reasons": r.reasons.iter().map(|d| json!({
                    "severity": severity_name(d.severity),
                    "file": d.file, "line": d.line, "column": d.column, "message": d.message,
                })).collect::<Vec<_>>(),
                "proxies": r.proxies.iter().map(|p| json!({
                    "proxy": p.proxy, "state": p.state, "reason": p.reason,
                })).collect::<Vec<_>>(),
            })
        })
        .collect()
}

/// Builds the status message from the shared state; also used by the admin
/// endpoint.
pub fn current_status(shared: &Shared) -> GetStatusResponse {
    let snap = shared.snapshots.borrow().clone();
    // One copy of the registry serves both the nodes and the NACK
    // attribution, so they agree; the load state is read in place (a
    // clone would copy every diagnostic, status and the owners index).
    let registered = shared.registry.list();
    let load = shared
        .load
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let proxies = snap
        .as_ref()
        .map(|s| {
            s.proxies
                .iter()
                .map(|(key, p)| ProxySnapshot {
                    key: key.clone(),
                    types: PUSH_ORDER
                        .iter()
                        .map(|t| TypeVersion {
                            type_url: t.type_url().to_string(),
                            version: p.version(*t),
                            resource_names: p.resources(*t).map(|e| e.name.clone()).collect(),
                        })
                        .collect(),
                })
                .collect()
        })
        .unwrap_or_default();
    let diagnostics = load.diagnostics.iter().map(diag_msg).collect();
    // Each proxy's listeners with their Envoy stats scope, decoded once.
    let mut prefixes = ListenerPrefixes::new();
    let resources = resource_statuses(&load, &registered);
    let nodes = registered
        .into_iter()
        .map(|n| ConnectedNode {
            stats_reported: shared.envoy_stats.get(&n.node_id).is_some(),
            listeners: listener_connections(
                shared,
                snap.as_deref(),
                &n.node_id,
                &n.proxy,
                &mut prefixes,
            ),
            node_id: n.node_id,
            proxy: n.proxy,
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
        })
        .collect();
    GetStatusResponse {
        serving: snap.is_some(),
        last_load_failed: load.last_load_failed,
        proxies,
        diagnostics,
        nodes,
        loads: load.loads,
        resources,
        drains: shared.drains.list().iter().map(drain_msg).collect(),
    }
}

/// Proxy → its listeners' (name, Envoy stats scope).
type ListenerPrefixes = std::collections::BTreeMap<String, Vec<(String, Option<String>)>>;

/// Active connections per listener of `proxy` on `node_id`, from the stats
/// that Envoy streams; empty when it streams none.
fn listener_connections(
    shared: &Shared,
    snap: Option<&crate::snapshot::Snapshot>,
    node_id: &str,
    proxy: &str,
    prefixes: &mut ListenerPrefixes,
) -> Vec<ListenerConnections> {
    let (Some(stats), Some(ps)) = (
        shared.envoy_stats.get(node_id),
        snap.and_then(|s| s.proxies.get(proxy)),
    ) else {
        return Vec::new();
    };
    let listeners = prefixes.entry(proxy.to_string()).or_insert_with(|| {
        ps.resources(crate::snapshot::ResourceType::Listener)
            .map(|e| (e.name.clone(), crate::drain::encoded_stat_prefix(e)))
            .collect()
    });
    listeners
        .iter()
        .map(|(name, prefix)| ListenerConnections {
            listener: name.clone(),
            active_connections: prefix
                .as_ref()
                .and_then(|p| stats.active.get(p).copied())
                .unwrap_or(0),
        })
        .collect()
}

fn drain_msg(d: &crate::drain::DrainRecord) -> ListenerDrain {
    ListenerDrain {
        listener: d.listener.clone(),
        proxy: d.proxy.clone(),
        node_id: d.node_id.clone(),
        change: d.change.as_str().to_string(),
        filter_chains: match &d.change {
            crate::drain::Change::Modified { filter_chains } => filter_chains.clone(),
            crate::drain::Change::Removed => Vec::new(),
        },
        active_connections: d.active_connections,
        at_unix_ms: d.at_unix_ms,
        version: d.version.clone(),
    }
}

fn diag_msg(d: &crate::diag::Diagnostic) -> Diagnostic {
    Diagnostic {
        severity: match d.severity {
            Severity::Error => diagnostic::Severity::Error as i32,
            Severity::Warning => diagnostic::Severity::Warning as i32,
        },
        file: d.pos.file.display().to_string(),
        line: d.pos.line,
        column: d.pos.column,
        kind: d
            .resource
            .as_ref()
            .map(|r| r.kind.clone())
            .unwrap_or_default(),
        namespace: d
            .resource
            .as_ref()
            .map(|r| r.namespace.clone())
            .unwrap_or_default(),
        name: d
            .resource
            .as_ref()
            .map(|r| r.name.clone())
            .unwrap_or_default(),
        message: d.message.clone(),
    }
}

/// Translation statuses merged with what the connected Envoys said: a NACK
/// makes every resource it concerns Rejected on that proxy (and overall)
/// until the next ACK of that type.
fn resource_statuses(
    load: &crate::server::LoadState,
    nodes: &[crate::xds::registry::NodeState],
) -> Vec<ResourceStatus> {
    use std::collections::BTreeMap;
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
                        state = crate::reconcile::State::Rejected;
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
                serving: match st.serving {
                    crate::reconcile::Serving::Current => "current",
                    crate::reconcile::Serving::LastAccepted => "last-accepted",
                    crate::reconcile::Serving::Nothing => "none",
                }
                .to_string(),
                file: st.file.display().to_string(),
                line: st.line,
                reasons: st.reasons.iter().map(diag_msg).collect(),
                proxies,
            }
        })
        .collect()
}

type StatusStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<GetStatusResponse, Status>> + Send>>;

#[tonic::async_trait]
impl status_service_server::StatusService for StatusApi {
    async fn get_status(
        &self,
        _request: Request<GetStatusRequest>,
    ) -> Result<Response<GetStatusResponse>, Status> {
        Ok(Response::new(current_status(&self.shared)))
    }

    type WatchStatusStream = StatusStream;

    async fn watch_status(
        &self,
        _request: Request<GetStatusRequest>,
    ) -> Result<Response<Self::WatchStatusStream>, Status> {
        let shared = self.shared.clone();
        let mut shutdown = self.shutdown.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            let mut loads = shared.loads.clone();
            let mut reg = shared.registry.subscribe();
            let mut stats = shared.envoy_stats.subscribe();
            let mut last: Option<GetStatusResponse> = None;
            loop {
                let now = current_status(&shared);
                if last.as_ref() != Some(&now) {
                    if tx.send(Ok(now.clone())).await.is_err() {
                        return;
                    }
                    last = Some(now);
                }
                tokio::select! {
                    r = loads.changed() => if r.is_err() { return },
                    r = reg.changed() => if r.is_err() { return },
                    r = stats.changed() => if r.is_err() { return },
                    _ = tx.closed() => return,
                    _ = shutdown.wait_for(|stop| *stop) => return,
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}
