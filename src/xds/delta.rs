//! One incremental (delta) ADS stream.
//!
//! Per type the stream keeps what Envoy subscribed to (wildcard and/or
//! names) and what Envoy holds: name → version, seeded from
//! `initial_resource_versions` on reconnect and updated when a response is
//! sent. A response carries only resources whose version differs from what
//! Envoy holds, and `removed_resources` for names Envoy holds that no longer
//! exist or are no longer subscribed. The rules, after the xDS protocol
//! (notes in `ARCHITECTURE.md`):
//! - subscription changes always count, whatever the nonce; every newly
//!   subscribed name gets an answer (the resource, or a removal when it does
//!   not exist, so Envoy need not wait for its fetch timeout), unless Envoy
//!   already holds exactly our version;
//! - the first request of a type with empty lists is a (legacy) wildcard;
//! - versions are recorded when sent, not when ACKed, so a NACKed resource
//!   is never sent again until it changes; the NACK is logged and reported
//!   with the resources it concerns;
//! - several types due at once go clusters, listeners, routes (make before
//!   break), as in state of the world.
//!
//! A resource's version is the SHA-256 of its bytes, the same in every
//! process: a reconnect to a restarted or other replica with the same
//! manifests sends nothing new.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryRequest;
use tokio::sync::{mpsc, watch};
use tonic::{Status, Streaming};

use super::SnapshotRx;
use super::node;
use super::registry::{Registry, ResourceSet};
use super::wire::DeltaResponse;
use crate::snapshot::{Encoded, PUSH_ORDER, ResourceType, Snapshot, version_of};

const WILDCARD: &str = "*";

/// What Envoy holds of one resource.
#[derive(Debug)]
enum Held {
    /// What this stream sent: a pointer into the snapshot, not a copy of
    /// its version string.
    Sent(Arc<Encoded>),
    /// A version Envoy named in `initial_resource_versions`.
    Claimed(String),
}

impl Held {
    fn version(&self) -> &str {
        match self {
            Held::Sent(e) => &e.hash,
            Held::Claimed(v) => v,
        }
    }
}

#[derive(Debug, Default)]
struct TypeStream {
    /// Envoy has sent a request for this type on this stream.
    seen: bool,
    /// Subscribed to every resource of the type.
    wildcard: bool,
    /// Names subscribed explicitly.
    names: BTreeSet<String>,
    /// What Envoy holds, as far as we know: name → version.
    held: BTreeMap<String, Held>,
    /// Names that must be answered in the next response even when Envoy
    /// seems to hold them (new subscriptions).
    answer: BTreeSet<String>,
    /// Send a response even if it would be empty (a subscription request
    /// whose names all turned out current): Envoy counts the type as
    /// fetched only when answered.
    must_answer: bool,
    /// Nonce of the last response sent for this type.
    last_nonce: Option<String>,
}

impl TypeStream {
    fn subscribed(&self, name: &str) -> bool {
        self.wildcard || self.names.contains(name)
    }
}

pub struct DeltaStream {
    peer: String,
    snapshots: SnapshotRx,
    registry: Arc<Registry>,
    shutdown: watch::Receiver<bool>,
    tx: mpsc::Sender<Result<DeltaResponse, Status>>,
    node: Option<Node>,
    proxy: Option<String>,
    types: BTreeMap<ResourceType, TypeStream>,
    nonce: u64,
    id: u64,
}

impl DeltaStream {
    pub fn new(
        peer: String,
        snapshots: SnapshotRx,
        registry: Arc<Registry>,
        shutdown: watch::Receiver<bool>,
        tx: mpsc::Sender<Result<DeltaResponse, Status>>,
    ) -> Self {
        let id = registry.open("delta");
        DeltaStream {
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

    pub async fn run(mut self, inbound: Streaming<DeltaDiscoveryRequest>) {
        tracing::debug!(peer = %self.peer, "delta ADS stream opened");
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
        tracing::info!(peer = %self.peer, node = %self.node_desc(), "delta ADS stream closed");
    }

    fn node_desc(&self) -> String {
        self.node.as_ref().map(node::describe).unwrap_or_default()
    }

    fn on_request(&mut self, req: DeltaDiscoveryRequest) {
        if self.node.is_none() {
            if let Some(n) = &req.node {
                tracing::info!(peer = %self.peer, node = %node::describe(n), "Envoy connected (delta)");
                let node_id = n.id.clone();
                self.registry.update(self.id, |s| s.node_id = node_id);
            }
            self.node = req.node.clone();
        }
        let Some(t) = ResourceType::from_type_url(&req.type_url) else {
            tracing::debug!(type_url = %req.type_url, "delta request for a type edgeplane does not serve");
            return;
        };
        let node_desc = self.node_desc();
        let st = self.types.entry(t).or_default();
        if !req.response_nonce.is_empty() {
            on_ack_or_nack(st, t, &req, &node_desc, &self.registry, self.id);
        }
        let first = !st.seen;
        st.seen = true;
        if first {
            st.held = req
                .initial_resource_versions
                .iter()
                .map(|(n, v)| (n.clone(), Held::Claimed(v.clone())))
                .collect();
            // Legacy wildcard: a first request naming nothing.
            if req.resource_names_subscribe.is_empty() && req.resource_names_unsubscribe.is_empty()
            {
                st.wildcard = true;
                st.must_answer = true;
            }
        }
        for name in &req.resource_names_subscribe {
            st.must_answer = true;
            if name == WILDCARD {
                st.wildcard = true;
            } else {
                st.names.insert(name.clone());
                st.answer.insert(name.clone());
            }
        }
        for name in &req.resource_names_unsubscribe {
            if name == WILDCARD {
                st.wildcard = false;
            } else {
                st.names.remove(name);
                st.answer.remove(name);
            }
        }
        if !req.resource_names_unsubscribe.is_empty() {
            // Envoy dropped these; forget what it held, except what a
            // wildcard still covers (it stays held and current).
            let wildcard = st.wildcard;
            let names = &st.names;
            st.held.retain(|n, _| wildcard || names.contains(n));
        }
    }

    /// Sends, per type, what changed since what Envoy holds.
    async fn push(&mut self) -> Result<(), ()> {
        let responses = self.due_responses();
        for resp in responses {
            if self.tx.send(Ok(resp)).await.is_err() {
                return Err(());
            }
        }
        Ok(())
    }

    /// Computes the responses due now, from the newest snapshot, and
    /// records them as sent. The snapshot is released before anything is
    /// awaited, so a stream blocked on a slow Envoy holds no old snapshot.
    fn due_responses(&mut self) -> Vec<DeltaResponse> {
        let snap: Option<Arc<Snapshot>> = self.snapshots.borrow_and_update().clone();
        let (Some(snap), Some(node)) = (snap, &self.node) else {
            return Vec::new();
        };
        let proxy = super::match_proxy(node, &snap, &mut self.proxy, &self.registry, self.id);
        let Some(ps) = proxy.and_then(|p| snap.proxies.get(&p).cloned()) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for t in PUSH_ORDER {
            let Some(st) = self.types.get_mut(&t) else {
                continue;
            };
            if !st.seen {
                continue;
            }
            // Everything Envoy should hold now, and what it lacks.
            let wanted: Vec<&Arc<Encoded>> =
                ps.resources(t).filter(|e| st.subscribed(&e.name)).collect();
            let changed: Vec<&Arc<Encoded>> = wanted
                .iter()
                .copied()
                .filter(|e| {
                    st.held.get(&e.name).map(Held::version) != Some(e.hash.as_str())
                        || (st.answer.contains(&e.name) && !st.held.contains_key(&e.name))
                })
                .collect();
            let mut removed: BTreeSet<String> = st
                .held
                .keys()
                .filter(|n| !st.subscribed(n) || ps.get(t, n).is_none())
                .cloned()
                .collect();
            // Subscribed names that do not exist: say so at once.
            removed.extend(st.answer.iter().filter(|n| ps.get(t, n).is_none()).cloned());
            if changed.is_empty() && removed.is_empty() && !st.must_answer {
                continue;
            }
            st.must_answer = false;
            st.answer.clear();
            self.nonce += 1;
            let nonce = self.nonce.to_string();
            let system_version = version_of(wanted.iter().copied());
            for e in &changed {
                st.held.insert(e.name.clone(), Held::Sent(Arc::clone(e)));
            }
            for n in &removed {
                st.held.remove(n);
            }
            st.last_nonce = Some(nonce.clone());
            tracing::info!(
                node = %node.id,
                type_ = t.short(),
                version = %system_version,
                changed = changed.len(),
                removed = removed.len(),
                "delta push"
            );
            self.registry.metrics().push(t, "delta");
            let sent: ResourceSet = super::registry::set_of(wanted.iter().copied());
            let sent_version = system_version.clone();
            self.registry.update(self.id, |s| {
                let ts = s.types.entry(t).or_default();
                ts.responses += 1;
                ts.sent = sent;
                ts.sent_version = sent_version;
            });
            out.push(DeltaResponse {
                system_version_info: system_version,
                resources: changed.iter().map(|e| Arc::clone(e)).collect(),
                type_url: t.type_url().to_string(),
                removed_resources: removed.into_iter().collect(),
                nonce,
                control_plane: Some(super::control_plane()),
            });
        }
        out
    }
}

/// Records Envoy's answer to one of our responses. Only an answer to the
/// latest response of the type moves the reported state; answers to older
/// ones are superseded.
fn on_ack_or_nack(
    st: &TypeStream,
    t: ResourceType,
    req: &DeltaDiscoveryRequest,
    node_desc: &str,
    registry: &Registry,
    id: u64,
) {
    if st.last_nonce.as_deref() != Some(req.response_nonce.as_str()) {
        tracing::debug!(type_ = t.short(), nonce = %req.response_nonce, "answer to a superseded delta response");
        return;
    }
    if let Some(err) = &req.error_detail {
        tracing::warn!(
            node = %node_desc,
            type_ = t.short(),
            nonce = %req.response_nonce,
            message = %err.message,
            "Envoy rejected (NACKed) the config; it keeps its previous resources, and these versions will not be sent again"
        );
        registry.metrics().nack(t, "delta");
        let msg = err.message.clone();
        registry.update(id, |s| s.types.entry(t).or_default().record_nack(msg));
    } else {
        tracing::debug!(type_ = t.short(), nonce = %req.response_nonce, "delta ACK");
        registry.metrics().ack(t, "delta");
        registry.update(id, |s| {
            let ts = s.types.entry(t).or_default();
            let v = ts.sent_version.clone();
            ts.record_ack(v);
        });
    }
}
