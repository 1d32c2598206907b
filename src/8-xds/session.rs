//! What both ADS variants share: one stream's session and its loop.
//!
//! A stream is a `Session` (who is connected, which proxy it gets, its
//! registry entry, its nonces) plus a `Protocol` (state of the world or
//! delta: how requests change the subscription, and which responses are
//! due). `run` drives both: it reads requests on their own task, wakes on
//! every new snapshot and on shutdown, asks the protocol what is due from
//! the newest snapshot, and sends it. The snapshot is released before any
//! send is awaited, so a stream blocked on a slow Envoy holds no old
//! snapshot and delays nobody else.

use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use tokio::sync::{mpsc, watch};
use tonic::{Status, Streaming};

use super::node;
use super::registry::Registry;
use super::{SnapshotRx, XdsMode};
use crate::snapshot::{ProxySnapshot, Snapshot};

/// One stream's connection-level state.
pub struct Session {
    pub peer: String,
    snapshots: SnapshotRx,
    pub registry: Arc<Registry>,
    /// The node, from the first request that names one.
    node: Option<Node>,
    /// The proxy the node was last matched to.
    proxy: Option<String>,
    nonce: u64,
    /// The stream's registry id.
    pub id: u64,
    /// mTLS identity and policy (`None`: no mTLS, any role).
    pub access: Option<super::authz::Access>,
    /// Set when the node's role was refused: the stream ends with it.
    denied: Option<Status>,
}

impl Session {
    pub fn new(
        peer: String,
        snapshots: SnapshotRx,
        registry: Arc<Registry>,
        mode: XdsMode,
    ) -> Self {
        let id = registry.open(mode);
        Session {
            peer,
            snapshots,
            registry,
            node: None,
            proxy: None,
            nonce: 0,
            id,
            access: None,
            denied: None,
        }
    }

    /// How to name the node in logs.
    pub fn node_desc(&self) -> String {
        self.node.as_ref().map(node::describe).unwrap_or_default()
    }

    pub fn node_id(&self) -> &str {
        self.node.as_ref().map(|n| n.id.as_str()).unwrap_or("")
    }

    /// The next response nonce (one counter for all types).
    pub fn next_nonce(&mut self) -> String {
        self.nonce += 1;
        self.nonce.to_string()
    }

    /// Records the node the first time a request carries one; refuses it
    /// when its identity may not claim its role (`authz`).
    fn note_node(&mut self, node: Option<&Node>, mode: XdsMode) -> Result<(), Status> {
        if self.node.is_some() {
            return Ok(());
        }
        if let Some(n) = node {
            if let Some(a) = &self.access {
                let claim = node::role(n).unwrap_or(n.cluster.as_str());
                a.check_role(&self.peer, "ADS stream", claim)?;
            }
            tracing::info!(peer = %self.peer, node = %node::describe(n), %mode, "Envoy connected");
            let (node_id, peer) = (n.id.clone(), self.peer.clone());
            self.registry.update(self.id, |s| {
                s.node_id = node_id;
                s.peer = peer;
            });
            self.node = Some(n.clone());
        }
        Ok(())
    }

    /// This node's resources in the newest snapshot: `None` before the
    /// first snapshot, before the node is known, or when it matches no
    /// proxy.
    fn current(&mut self) -> Option<Arc<ProxySnapshot>> {
        let snap: Arc<Snapshot> = self.snapshots.borrow_and_update().clone()?;
        let node = self.node.as_ref()?;
        let proxy = super::match_proxy(node, &snap, &mut self.proxy, &self.registry, self.id)?;
        // The proxy resolved (role, else cluster) must be one it may claim.
        if let Some(a) = &self.access
            && let Err(status) = a.check_role(&self.peer, "ADS stream", &proxy)
        {
            self.denied = Some(status);
            return None;
        }
        snap.proxies.get(&proxy).cloned()
    }
}

/// The protocol half of a stream.
pub trait Protocol: Default + Send + 'static {
    type Request: Send + 'static;
    type Response: Send + 'static;
    /// For the registry, logs and metrics.
    const MODE: XdsMode;

    fn node(req: &Self::Request) -> Option<&Node>;

    /// Applies one request (subscription change, ACK or NACK).
    fn on_request(&mut self, s: &mut Session, req: Self::Request);

    /// The responses due now for `ps`, recorded as sent.
    fn due(&mut self, s: &mut Session, ps: &ProxySnapshot) -> Vec<Self::Response>;
}

/// Runs one stream until Envoy hangs up, the response side closes, or the
/// server shuts down.
pub async fn run<P: Protocol>(
    mut s: Session,
    mut shutdown: watch::Receiver<bool>,
    inbound: Streaming<P::Request>,
    tx: mpsc::Sender<Result<P::Response, Status>>,
) {
    let mut proto = P::default();
    tracing::debug!(peer = %s.peer, mode = %P::MODE, "ADS stream opened");
    let (req_tx, mut req_rx) = mpsc::channel(4);
    let reader = tokio::spawn(super::read_requests(inbound, req_tx));
    'stream: loop {
        tokio::select! {
            req = req_rx.recv() => match req {
                Some(req) => {
                    if let Err(status) = s.note_node(P::node(&req), P::MODE) {
                        let _ = tx.send(Err(status)).await;
                        break;
                    }
                    proto.on_request(&mut s, *req);
                }
                None => break,
            },
            changed = s.snapshots.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            _ = shutdown.changed() => break,
        }
        let current = s.current();
        if let Some(status) = s.denied.take() {
            let _ = tx.send(Err(status)).await;
            break;
        }
        let due = match current {
            Some(ps) => proto.due(&mut s, &ps),
            None => Vec::new(),
        };
        for resp in due {
            if tx.send(Ok(resp)).await.is_err() {
                break 'stream;
            }
        }
    }
    reader.abort();
    s.registry.close(s.id);
    tracing::info!(peer = %s.peer, node = %s.node_desc(), mode = %P::MODE, "ADS stream closed");
}
