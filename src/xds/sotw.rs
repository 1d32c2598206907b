//! One state-of-the-world ADS stream.
//!
//! Per type it tracks what was last sent (version, nonce), what Envoy asked
//! for (RDS names) and what Envoy ACKed or NACKed. The rules (see the xDS
//! protocol notes in `ARCHITECTURE.md`):
//! - answer each type's first request on a stream, then only on change;
//! - LDS/CDS carry the full set, RDS the requested names;
//! - a request whose nonce is not the latest we sent for its type is stale
//!   and ignored;
//! - a NACK (`error_detail` set) is logged with node, type and Envoy's
//!   message, and the rejected version is never sent again: we only send
//!   when the version differs from the last one sent;
//! - when several types are due, clusters go first, then listeners, then
//!   routes (make before break).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use tokio::sync::{mpsc, watch};
use tonic::{Status, Streaming};

use super::SnapshotRx;
use super::node;
use super::registry::Registry;
use super::wire::SotwResponse;
use crate::snapshot::{Encoded, PUSH_ORDER, ResourceType, Snapshot, version_of};

#[derive(Debug, Default)]
struct TypeStream {
    /// Envoy has asked for this type on this stream.
    subscribed: bool,
    /// RDS: the names Envoy asked for.
    names: BTreeSet<String>,
    /// Last response sent: (version, nonce).
    sent: Option<(String, String)>,
    /// Envoy's request had no nonce: it wants an answer even if unchanged.
    force: bool,
}

pub struct SotwStream {
    peer: String,
    snapshots: SnapshotRx,
    registry: Arc<Registry>,
    shutdown: watch::Receiver<bool>,
    tx: mpsc::Sender<Result<SotwResponse, Status>>,
    node: Option<Node>,
    proxy: Option<String>,
    types: BTreeMap<ResourceType, TypeStream>,
    nonce: u64,
    id: u64,
}

impl SotwStream {
    pub fn new(
        peer: String,
        snapshots: SnapshotRx,
        registry: Arc<Registry>,
        shutdown: watch::Receiver<bool>,
        tx: mpsc::Sender<Result<SotwResponse, Status>>,
    ) -> Self {
        let id = registry.open("sotw");
        SotwStream {
            peer,
            snapshots,
            registry,
            shutdown,
            tx,
            node: None,
            proxy: None,
            types: BTreeMap::new(),
            nonce: 0,
            id,
        }
    }

    pub async fn run(mut self, inbound: Streaming<DiscoveryRequest>) {
        tracing::debug!(peer = %self.peer, "ADS stream opened");
        // Read requests on their own task: `Streaming::message` is not
        // documented cancel-safe, and `select!` below would cancel it.
        let (req_tx, mut req_rx) = mpsc::channel(4);
        let reader = tokio::spawn(super::read_requests(inbound, req_tx));
        loop {
            tokio::select! {
                req = req_rx.recv() => match req {
                    Some(req) => self.on_request(*req),
                    None => break,
                },
                changed = self.snapshots.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
                _ = self.shutdown.changed() => break,
            }
            if self.push().await.is_err() {
                break;
            }
        }
        reader.abort();
        self.registry.close(self.id);
        tracing::info!(peer = %self.peer, node = %self.node_desc(), "ADS stream closed");
    }

    fn node_desc(&self) -> String {
        self.node.as_ref().map(node::describe).unwrap_or_default()
    }

    fn on_request(&mut self, req: DiscoveryRequest) {
        if self.node.is_none() {
            if let Some(n) = &req.node {
                tracing::info!(peer = %self.peer, node = %node::describe(n), "Envoy connected");
                let node_id = n.id.clone();
                self.registry.update(self.id, |s| s.node_id = node_id);
            }
            self.node = req.node.clone();
        }
        let Some(t) = ResourceType::from_type_url(&req.type_url) else {
            tracing::debug!(type_url = %req.type_url, "request for a type edgeplane does not serve");
            return;
        };
        let st = self.types.entry(t).or_default();
        if !req.response_nonce.is_empty() {
            let latest = st.sent.as_ref().map(|(_, n)| n.as_str());
            if latest != Some(req.response_nonce.as_str()) {
                tracing::debug!(type_ = t.short(), nonce = %req.response_nonce, "stale request ignored");
                return;
            }
            let sent_version = st.sent.as_ref().map(|(v, _)| v.clone()).unwrap_or_default();
            if let Some(err) = &req.error_detail {
                tracing::warn!(
                    node = %self.node.as_ref().map(node::describe).unwrap_or_default(),
                    type_ = t.short(),
                    rejected_version = %sent_version,
                    kept_version = %req.version_info,
                    message = %err.message,
                    "Envoy rejected (NACKed) the config; it keeps its previous config, and this version will not be sent again"
                );
                self.registry.metrics().nack(t, "sotw");
                let msg = err.message.clone();
                self.registry
                    .update(self.id, |s| s.types.entry(t).or_default().record_nack(msg));
            } else {
                tracing::debug!(type_ = t.short(), version = %req.version_info, "ACK");
                self.registry.metrics().ack(t, "sotw");
                let v = req.version_info.clone();
                self.registry
                    .update(self.id, |s| s.types.entry(t).or_default().record_ack(v));
            }
        } else {
            st.force = true;
        }
        st.subscribed = true;
        if t == ResourceType::Route {
            st.names = req.resource_names.iter().cloned().collect();
        }
    }

    /// Sends every type whose desired content differs from what was sent.
    async fn push(&mut self) -> Result<(), ()> {
        for resp in self.due_responses() {
            if self.tx.send(Ok(resp)).await.is_err() {
                return Err(());
            }
        }
        Ok(())
    }

    /// Computes the responses due now from the newest snapshot and records
    /// them as sent. The snapshot is released before anything is awaited,
    /// so a stream blocked on a slow Envoy holds no old snapshot.
    fn due_responses(&mut self) -> Vec<SotwResponse> {
        let mut out = Vec::new();
        let snap: Option<Arc<Snapshot>> = self.snapshots.borrow_and_update().clone();
        let (Some(snap), Some(node)) = (snap, &self.node) else {
            return out;
        };
        let proxy = super::match_proxy(node, &snap, &mut self.proxy, &self.registry, self.id);
        let Some(ps) = proxy.and_then(|p| snap.proxies.get(&p).cloned()) else {
            return out;
        };
        for t in PUSH_ORDER {
            let Some(st) = self.types.get_mut(&t) else {
                continue;
            };
            if !st.subscribed {
                continue;
            }
            let resources: Vec<&Arc<Encoded>> = if t.is_full_state() {
                ps.resources(t).collect()
            } else {
                if st.names.is_empty() {
                    continue;
                }
                st.names.iter().filter_map(|n| ps.get(t, n)).collect()
            };
            let version = version_of(resources.iter().copied());
            let unchanged = st.sent.as_ref().is_some_and(|(v, _)| *v == version);
            if unchanged && !st.force {
                continue;
            }
            st.force = false;
            self.nonce += 1;
            let nonce = self.nonce.to_string();
            let resp = SotwResponse {
                version_info: version.clone(),
                resources: resources.iter().map(|e| Arc::clone(e)).collect(),
                type_url: t.type_url().to_string(),
                nonce: nonce.clone(),
                control_plane: Some(super::control_plane()),
            };
            tracing::info!(
                node = %self.node.as_ref().map(|n| n.id.as_str()).unwrap_or(""),
                type_ = t.short(),
                version = %version,
                resources = resources.len(),
                "push"
            );
            self.registry.metrics().push(t, "sotw");
            let sent_version = version.clone();
            st.sent = Some((version, nonce));
            let sent = super::registry::set_of(resources.iter().copied());
            self.registry.update(self.id, |s| {
                let ts = s.types.entry(t).or_default();
                ts.responses += 1;
                ts.sent = sent;
                ts.sent_version = sent_version;
            });
            out.push(resp);
        }
        out
    }
}
