//! What both ADS variants share: one stream's session and its loop.
//!
//! A stream is a `Session` (who is connected, which proxy it gets, its
//! registry entry, its nonces) plus a `Protocol` (state of the world or
//! delta: how requests change the subscription, and which responses are
//! due). `run` drives both: it reads requests, wakes on
//! every new snapshot and on shutdown, asks the protocol what is due from
//! the newest snapshot, and sends it. The snapshot is released before any
//! send is awaited, so a stream blocked on a slow Envoy holds no old
//! snapshot and delays nobody else.

use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use prost::Message;
use tokio::sync::{mpsc, watch};
use tokio_stream::StreamExt;
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
    /// mTLS identity and policy (`None`: no mTLS, any role).
    pub access: Option<super::authz::Access>,
    /// Set when the node's role was refused: the stream ends with it.
    denied: Option<Status>,
    pub limits: StreamLimits,
    /// ACKs/NACKs ignored for their nonce on this stream.
    stale: u64,
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
            access: None,
            denied: None,
            limits,
            stale: 0,
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
    /// first one (only its id, cluster and role). A node whose identity may
    /// not claim its role (`authz`) is not recorded: `denied` ends the
    /// stream with `PERMISSION_DENIED`.
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
        if self.node.is_some() || self.denied.is_some() {
            return Ok(());
        }
        let info = NodeInfo::of(n);
        if let Some(a) = &self.access {
            let claim = if info.role.is_empty() {
                info.cluster.as_str()
            } else {
                info.role.as_str()
            };
            if let Err(status) = a.check_role(&self.peer, "ADS stream", claim) {
                self.denied = Some(status);
                return Ok(());
            }
        }
        tracing::info!(peer = %self.peer, node = %node::describe(&info), %mode, "Envoy connected");
        let (node_id, peer) = (info.id.clone(), self.peer.clone());
        self.registry.update(self.id, |s| {
            s.node_id = node_id;
            s.peer = peer;
        });
        self.node = Some(info);
        Ok(())
    }

    /// Counts (`StreamObserver::stale_nonce`) an ACK/NACK whose nonce is not
    /// the latest unanswered response of its type: it changes nothing. Logged
    /// at debug the 1st, 2nd, 4th, 8th... time on a stream, so a flood costs
    /// a few lines.
    pub fn stale_nonce(&mut self, t: ResourceType, mode: XdsMode, nonce: &str, why: &'static str) {
        self.registry.observer().stale_nonce(t, mode);
        self.stale += 1;
        if !self.stale.is_power_of_two() {
            return;
        }
        tracing::debug!(
            stale_on_stream = self.stale,
            peer = %self.peer,
            node = %self.node_desc(),
            type_ = t.short(),
            nonce = %super::registry::clean_message(nonce),
            %mode,
            why,
            "ACK/NACK for a response this stream did not send or already had answered: ignored"
        );
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
    tx: mpsc::Sender<Result<Box<P::Response>, Status>>,
) {
    let mut proto = P::default();
    let mut inbound = inbound;
    tracing::debug!(peer = %s.peer, mode = %P::MODE, "ADS stream opened");
    'stream: loop {
        tokio::select! {
            // `Streaming` keeps its partial message in itself, so polling
            // it through `next()` is cancel-safe: no reader task needed.
            req = inbound.next() => match req {
                Some(Ok(req)) => {
                    let applied = s
                        .note_node(P::node(&req), P::MODE)
                        .and_then(|()| proto.on_request(&mut s, req));
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
                Some(Err(e)) => {
                    tracing::debug!(peer = %s.peer, error = %e, "ADS stream ended with an error");
                    break;
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
            if tx.send(Ok(Box::new(resp))).await.is_err() {
                break 'stream;
            }
        }
    }
    s.registry.close(s.id);
    tracing::info!(peer = %s.peer, node = %s.node_desc(), mode = %P::MODE, "ADS stream closed");
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};
    use envoy_types::pb::google::protobuf::{Any, Struct, Value, value::Kind};
    use envoy_types::pb::google::rpc::Status as RpcStatus;

    use super::*;
    use crate::snapshot::Encoded;
    use crate::xds::delta::Delta;
    use crate::xds::registry::NACK_MESSAGE_MAX_BYTES;
    use crate::xds::sotw::Sotw;

    type Counts = crate::xds::registry::AnswerCounts;

    fn session(mode: XdsMode, limits: StreamLimits) -> (Session, Arc<Counts>) {
        let counts = Arc::new(Counts::default());
        let registry = Arc::new(Registry::with_observer(counts.clone()));
        let (_tx, rx) = watch::channel(None);
        (
            Session::new("test".into(), rx, registry, mode, limits),
            counts,
        )
    }

    fn snapshot() -> ProxySnapshot {
        let mut ps = ProxySnapshot::default();
        for (t, name) in [(ResourceType::Route, "r0"), (ResourceType::Cluster, "c0")] {
            let e = Encoded::new(
                name.into(),
                format!("hash-{name}"),
                Any {
                    type_url: t.type_url().into(),
                    value: name.as_bytes().to_vec(),
                },
                Vec::new(),
            );
            ps.types
                .entry(t)
                .or_default()
                .insert(name.into(), Arc::new(e));
        }
        ps
    }

    fn nack(msg: &str) -> Option<RpcStatus> {
        Some(RpcStatus {
            code: 3,
            message: msg.into(),
            details: Vec::new(),
        })
    }

    fn sotw(names: &[&str], nonce: &str, error: Option<RpcStatus>) -> DiscoveryRequest {
        DiscoveryRequest {
            type_url: ResourceType::Route.type_url().into(),
            resource_names: names.iter().map(|n| n.to_string()).collect(),
            response_nonce: nonce.into(),
            error_detail: error,
            ..DiscoveryRequest::default()
        }
    }

    fn rds_state(s: &Session) -> crate::xds::registry::TypeState {
        s.registry.list()[0]
            .types
            .get(&ResourceType::Route)
            .cloned()
            .unwrap_or_default()
    }

    #[test]
    fn sotw_nack_counts_once_and_unknown_or_replayed_nonces_change_nothing() {
        let (mut s, counts) = session(XdsMode::Sotw, StreamLimits::default());
        let mut p = Sotw::default();
        let ps = snapshot();
        p.on_request(&mut s, sotw(&["r0"], "", None)).unwrap();
        let sent = p.due(&mut s, &ps);
        assert_eq!(sent.len(), 1);
        let nonce = sent[0].nonce.clone();

        // Unknown nonce: nothing recorded.
        p.on_request(&mut s, sotw(&["r0"], "999", nack("forged")))
            .unwrap();
        assert_eq!(counts.get(), (0, 0, 1));
        assert_eq!(rds_state(&s).nack_message, "");

        // The real NACK counts once...
        p.on_request(&mut s, sotw(&["r0"], &nonce, nack("bad route")))
            .unwrap();
        assert_eq!(counts.get(), (0, 1, 1));
        assert_eq!(rds_state(&s).nack_message, "bad route");
        // ...and its replays (any message) are stale.
        for _ in 0..100 {
            p.on_request(&mut s, sotw(&["r0"], &nonce, nack("replayed")))
                .unwrap();
        }
        assert_eq!(counts.get(), (0, 1, 101));
        assert_eq!(rds_state(&s).nack_message, "bad route");
        // The same nonce without error_detail is a subscription update
        // (Envoy re-requests with its latest nonce), not an ACK.
        p.on_request(&mut s, sotw(&["r0", "r1"], &nonce, None))
            .unwrap();
        assert_eq!(counts.get(), (0, 1, 101));
        assert!(p.due(&mut s, &ps).is_empty(), "r1 does not exist: same set");
        assert_eq!(p.names_kept(), 2);
    }

    #[test]
    fn sotw_ack_counts_once_and_records_the_version_sent() {
        let (mut s, counts) = session(XdsMode::Sotw, StreamLimits::default());
        let mut p = Sotw::default();
        let ps = snapshot();
        p.on_request(&mut s, sotw(&["r0"], "", None)).unwrap();
        let sent = p.due(&mut s, &ps);
        let (nonce, version) = (sent[0].nonce.clone(), sent[0].version_info.clone());
        let mut ack = sotw(&["r0"], &nonce, None);
        ack.version_info = "forged-version".into();
        p.on_request(&mut s, ack.clone()).unwrap();
        p.on_request(&mut s, ack).unwrap();
        assert_eq!(counts.get(), (1, 0, 0));
        assert_eq!(rds_state(&s).acked_version, version);
        // A NACK of an answered nonce is stale.
        p.on_request(&mut s, sotw(&["r0"], &nonce, nack("late")))
            .unwrap();
        assert_eq!(counts.get(), (1, 0, 1));
        assert_eq!(rds_state(&s).nack_message, "");
    }

    fn delta(subscribe: &[&str], nonce: &str, error: Option<RpcStatus>) -> DeltaDiscoveryRequest {
        DeltaDiscoveryRequest {
            type_url: ResourceType::Route.type_url().into(),
            resource_names_subscribe: subscribe.iter().map(|n| n.to_string()).collect(),
            response_nonce: nonce.into(),
            error_detail: error,
            ..DeltaDiscoveryRequest::default()
        }
    }

    #[test]
    fn delta_nack_counts_once_and_unknown_or_replayed_nonces_change_nothing() {
        let (mut s, counts) = session(XdsMode::Delta, StreamLimits::default());
        let mut p = Delta::default();
        let ps = snapshot();
        p.on_request(&mut s, delta(&["r0"], "", None)).unwrap();
        let sent = p.due(&mut s, &ps);
        assert_eq!(sent.len(), 1);
        let nonce = sent[0].nonce.clone();
        p.on_request(&mut s, delta(&[], "12345", nack("forged")))
            .unwrap();
        assert_eq!(counts.get(), (0, 0, 1));
        p.on_request(&mut s, delta(&[], &nonce, nack("bad route")))
            .unwrap();
        for _ in 0..50 {
            p.on_request(&mut s, delta(&[], &nonce, nack("replayed")))
                .unwrap();
            p.on_request(&mut s, delta(&[], &nonce, None)).unwrap();
        }
        assert_eq!(counts.get(), (0, 1, 101));
        assert_eq!(rds_state(&s).nack_message, "bad route");
        // Subscriptions still count whatever the nonce.
        p.on_request(&mut s, delta(&["r9"], "777", None)).unwrap();
        assert_eq!(p.names_kept(), 2);
    }

    #[test]
    fn nack_messages_are_escaped_and_capped() {
        let (mut s, _counts) = session(XdsMode::Sotw, StreamLimits::default());
        let mut p = Sotw::default();
        p.on_request(&mut s, sotw(&["r0"], "", None)).unwrap();
        let nonce = p.due(&mut s, &snapshot())[0].nonce.clone();
        let raw = format!("\u{1b}[2J\u{1b}[31mforged\r\n{}", "é".repeat(10_000));
        p.on_request(&mut s, sotw(&["r0"], &nonce, nack(&raw)))
            .unwrap();
        let kept = rds_state(&s).nack_message;
        assert!(
            kept.starts_with("\\u001b[2J\\u001b[31mforged\\u000d\\u000a"),
            "{kept}"
        );
        assert!(!kept.chars().any(char::is_control));
        assert!(kept.len() <= NACK_MESSAGE_MAX_BYTES + 40, "{}", kept.len());
        assert!(kept.ends_with("more bytes cut]"), "{kept}");
    }

    #[test]
    fn sotw_names_are_bounded_per_type_and_in_total() {
        let limits = StreamLimits {
            max_subscribed_names: 10,
            ..StreamLimits::default()
        };
        let (mut s, _) = session(XdsMode::Sotw, limits);
        let mut p = Sotw::default();
        let eleven: Vec<String> = (0..11).map(|i| format!("r{i}")).collect();
        let names: Vec<&str> = eleven.iter().map(String::as_str).collect();
        let e = p.on_request(&mut s, sotw(&names, "", None)).unwrap_err();
        assert!(
            matches!(
                e,
                OverLimit::PerType {
                    count: 11,
                    limit: 10,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("--max-subscribed-names"));
        p.on_request(&mut s, sotw(&names[..6], "", None)).unwrap();
        let mut sds = sotw(&names[..5], "", None);
        sds.type_url = ResourceType::Secret.type_url().into();
        let e = p.on_request(&mut s, sds).unwrap_err();
        assert_eq!(
            e,
            OverLimit::Total {
                count: 11,
                limit: 10
            }
        );
        assert_eq!(p.names_kept(), 6);
    }

    #[test]
    fn delta_names_and_initial_versions_are_bounded() {
        let limits = StreamLimits {
            max_subscribed_names: 10,
            ..StreamLimits::default()
        };
        let (mut s, _) = session(XdsMode::Delta, limits);
        let mut p = Delta::default();
        let mut first = delta(&[], "", None);
        first.initial_resource_versions = (0..11).map(|i| (format!("r{i}"), "v".into())).collect();
        let e = p.on_request(&mut s, first.clone()).unwrap_err();
        assert!(matches!(e, OverLimit::PerType { count: 11, .. }), "{e}");
        first.initial_resource_versions.remove("r10");
        p.on_request(&mut s, first).unwrap();
        // Names overlapping the claimed ones count once.
        let names: Vec<String> = (0..10).map(|i| format!("r{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        p.on_request(&mut s, delta(&names, "", None)).unwrap();
        assert_eq!(p.names_kept(), 10);
        let e = p
            .on_request(&mut s, delta(&["extra"], "", None))
            .unwrap_err();
        assert!(matches!(e, OverLimit::PerType { count: 11, .. }), "{e}");
        let mut cds = delta(&["c0"], "", None);
        cds.type_url = ResourceType::Cluster.type_url().into();
        let e = p.on_request(&mut s, cds).unwrap_err();
        assert_eq!(
            e,
            OverLimit::Total {
                count: 11,
                limit: 10
            }
        );
    }

    #[test]
    fn an_oversized_node_is_refused_and_only_id_cluster_role_are_kept() {
        let limits = StreamLimits {
            max_node_bytes: 1024,
            ..StreamLimits::default()
        };
        let (mut s, _) = session(XdsMode::Sotw, limits);
        let node = |filler: usize| {
            let mut fields = BTreeMap::new();
            fields.insert(
                "role".to_string(),
                Value {
                    kind: Some(Kind::StringValue("gloo-system~gateway-proxy".into())),
                },
            );
            fields.insert(
                "filler".to_string(),
                Value {
                    kind: Some(Kind::StringValue("x".repeat(filler))),
                },
            );
            Node {
                id: "envoy-1".into(),
                cluster: "gateway".into(),
                metadata: Some(Struct {
                    fields: fields.into_iter().collect(),
                }),
                ..Node::default()
            }
        };
        let e = s.note_node(Some(&node(2000)), XdsMode::Sotw).unwrap_err();
        assert!(matches!(e, OverLimit::Node { limit: 1024, .. }), "{e}");
        assert!(e.to_string().contains("--max-node-bytes"));
        assert_eq!(s.node_id(), "");
        s.note_node(Some(&node(500)), XdsMode::Sotw).unwrap();
        assert_eq!(
            s.node,
            Some(NodeInfo {
                id: "envoy-1".into(),
                cluster: "gateway".into(),
                role: "gloo-system~gateway-proxy".into(),
            })
        );
        assert_eq!(s.registry.list()[0].node_id, "envoy-1");
        // Logs show at most 256 bytes of each client-chosen field, escaped.
        let long = NodeInfo {
            id: "\u{1b}".repeat(10_000),
            ..NodeInfo::default()
        };
        let d = node::describe(&long);
        assert!(d.len() < 400 && !d.contains('\u{1b}'), "{d}");
    }
}
