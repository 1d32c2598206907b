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
use prost::Message;
use tokio::sync::{mpsc, watch};
use tonic::{Status, Streaming};

use super::node::{self, NodeInfo};
use super::registry::Registry;
use super::{SnapshotRx, XdsMode};
use crate::snapshot::{ProxySnapshot, ResourceType, Snapshot};

/// The default of `serve --max-subscribed-names`.
pub const DEFAULT_MAX_SUBSCRIBED_NAMES: usize = 50_000;
/// The default of `serve --max-node-bytes`: 256 KiB.
pub const DEFAULT_MAX_NODE_BYTES: usize = 256 * 1024;

/// What one stream may make edgeplane keep. A request over a limit ends
/// the stream with `RESOURCE_EXHAUSTED`; other streams never notice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamLimits {
    /// Names a stream may subscribe to, per type and in total: SotW
    /// `resource_names`, delta `resource_names_subscribe` and
    /// `initial_resource_versions`.
    pub max_subscribed_names: usize,
    /// The largest `Node` (encoded bytes) a request may carry.
    pub max_node_bytes: usize,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            max_subscribed_names: DEFAULT_MAX_SUBSCRIBED_NAMES,
            max_node_bytes: DEFAULT_MAX_NODE_BYTES,
        }
    }
}

/// Why a stream was ended: a request over one of its `StreamLimits`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverLimit {
    #[error(
        "{count} {what} for {type_} on this stream, over the limit of {limit} per type (--max-subscribed-names)"
    )]
    PerType {
        what: &'static str,
        type_: &'static str,
        count: usize,
        limit: usize,
    },
    #[error(
        "{count} subscribed names and initial resource versions in total on this stream, over the limit of {limit} (--max-subscribed-names)"
    )]
    Total { count: usize, limit: usize },
    #[error("the node is {bytes} bytes encoded, over the limit of {limit} (--max-node-bytes)")]
    Node { bytes: usize, limit: usize },
}

/// One stream's connection-level state.
pub struct Session {
    pub peer: String,
    snapshots: SnapshotRx,
    pub registry: Arc<Registry>,
    /// What the stream keeps of the node, from the first request that
    /// names one.
    node: Option<NodeInfo>,
    /// The proxy the node was last matched to.
    proxy: Option<String>,
    nonce: u64,
    /// The stream's registry id.
    pub id: u64,
    pub limits: StreamLimits,
}

impl Session {
    /// A stream's session, registered in `registry` at once. `serve` makes
    /// one per ADS stream (`AdsServer`); it needs no network peer, so tests
    /// and the `ads_session` fuzz target drive `Protocol::on_request` and
    /// `Protocol::due` on one directly (`peer` is only a log field).
    pub fn new(
        peer: String,
        snapshots: SnapshotRx,
        registry: Arc<Registry>,
        mode: XdsMode,
        limits: StreamLimits,
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
            limits,
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

    /// Checks the size of any node a request carries, and records the
    /// first one (only its id, cluster and role).
    pub fn note_node(&mut self, node: Option<&Node>, mode: XdsMode) -> Result<(), OverLimit> {
        let Some(n) = node else {
            return Ok(());
        };
        let bytes = n.encoded_len();
        if bytes > self.limits.max_node_bytes {
            return Err(OverLimit::Node {
                bytes,
                limit: self.limits.max_node_bytes,
            });
        }
        if self.node.is_some() {
            return Ok(());
        }
        let info = NodeInfo::of(n);
        tracing::info!(peer = %self.peer, node = %node::describe(&info), %mode, "Envoy connected");
        let node_id = info.id.clone();
        self.registry.update(self.id, |s| s.node_id = node_id);
        self.node = Some(info);
        Ok(())
    }

    /// Counts and logs (at debug) an ACK/NACK whose nonce is not the
    /// latest unanswered response of its type: it changes nothing.
    pub fn stale_nonce(&self, t: ResourceType, mode: XdsMode, nonce: &str, why: &'static str) {
        tracing::debug!(
            peer = %self.peer,
            node = %self.node_desc(),
            type_ = t.short(),
            nonce = %super::registry::clean_message(nonce),
            %mode,
            why,
            "ACK/NACK for a response this stream did not send or already had answered: ignored"
        );
        self.registry.observer().stale_nonce(t, mode);
    }

    /// This node's resources in the newest snapshot: `None` before the
    /// first snapshot, before the node is known, or when it matches no
    /// proxy.
    fn current(&mut self) -> Option<Arc<ProxySnapshot>> {
        let snap: Arc<Snapshot> = self.snapshots.borrow_and_update().clone()?;
        let node = self.node.as_ref()?;
        let proxy = super::match_proxy(node, &snap, &mut self.proxy, &self.registry, self.id)?;
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

    /// Applies one request (subscription change, ACK or NACK); a request
    /// over the stream's limits is refused (the stream then ends).
    fn on_request(&mut self, s: &mut Session, req: Self::Request) -> Result<(), OverLimit>;

    /// How many client-chosen names the stream keeps, as counted against
    /// `StreamLimits::max_subscribed_names` (for tests and fuzzing).
    fn names_kept(&self) -> usize;

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
                    let applied = s
                        .note_node(P::node(&req), P::MODE)
                        .and_then(|()| proto.on_request(&mut s, *req));
                    if let Err(e) = applied {
                        tracing::warn!(
                            peer = %s.peer,
                            node = %s.node_desc(),
                            mode = %P::MODE,
                            error = %e,
                            "ADS request over a limit: ending the stream with RESOURCE_EXHAUSTED"
                        );
                        let status = Status::resource_exhausted(format!("edgeplane: {e}"));
                        if tx.send(Err(status)).await.is_err() {
                            tracing::debug!(peer = %s.peer, "stream gone before its RESOURCE_EXHAUSTED");
                        }
                        break;
                    }
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
        let due = match s.current() {
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
