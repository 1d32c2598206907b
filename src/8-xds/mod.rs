//! The ADS server: serves snapshots to Envoy over gRPC.
//!
//! The server never sees manifests: it reads the newest `Snapshot` from a
//! `watch` channel (latest wins, so a slow Envoy never holds others back) and
//! runs one `session` per stream, speaking state of the world (`sotw`) or
//! incremental (`delta`), both over the same snapshot and per-resource
//! versions (the SHA-256 of each resource's bytes, computed once per change
//! in `snapshot`). Which proxy an Envoy gets is
//! decided by `node` (Gloo's `node.metadata.role`). `registry` records what
//! each connected Envoy ACKed and NACKed, for the status API and logs.

pub mod authz;
pub mod body;
pub mod delta;
pub mod node;
pub mod per_type;
pub mod registry;
pub mod service;
pub mod session;
pub mod sotw;
pub mod wire;

use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tonic::{Status, Streaming};

pub use service::AdsService;

use crate::snapshot::Snapshot;
use registry::Registry;

/// The largest xDS message either side accepts: 256 MiB. gRPC's customary
/// 4 MiB is far below a RouteConfiguration of tens of thousands of routes;
/// `serve` raises its limits to this and `edgeplane bootstrap` gives Envoy
/// the same figure.
pub const MAX_XDS_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// The ADS variant a stream speaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum XdsMode {
    /// State of the world: every response carries every resource of a type.
    #[default]
    Sotw,
    /// Incremental: only changed and removed resources travel.
    Delta,
}

impl XdsMode {
    /// `sotw` or `delta`: the status API's `xdsMode`, log fields and metric
    /// labels.
    pub fn as_str(self) -> &'static str {
        match self {
            XdsMode::Sotw => "sotw",
            XdsMode::Delta => "delta",
        }
    }
}

impl std::fmt::Display for XdsMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The snapshot channel: `None` until the first valid config has loaded, so
/// no Envoy is ever told "no listeners, no clusters" by accident.
pub type SnapshotRx = watch::Receiver<Option<Arc<Snapshot>>>;

#[derive(Clone)]
pub struct AdsServer {
    snapshots: SnapshotRx,
    registry: Arc<Registry>,
    shutdown: watch::Receiver<bool>,
    limits: session::StreamLimits,
}

impl AdsServer {
    pub fn new(
        snapshots: SnapshotRx,
        registry: Arc<Registry>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        AdsServer {
            snapshots,
            registry,
            shutdown,
            limits: session::StreamLimits::default(),
        }
    }

    /// Per-stream bounds (`serve --max-subscribed-names`,
    /// `--max-node-bytes`); the defaults are `StreamLimits::default()`.
    pub fn with_limits(mut self, limits: session::StreamLimits) -> Self {
        self.limits = limits;
        self
    }
}

impl AdsServer {
    /// Starts a stream of protocol `P`; its responses come out of the
    /// returned receiver.
    fn open<P: session::Protocol>(
        &self,
        peer: String,
        access: Option<authz::Access>,
        inbound: Streaming<P::Request>,
    ) -> mpsc::Receiver<Result<Box<P::Response>, Status>> {
        let (tx, rx) = mpsc::channel(RESPONSE_QUEUE);
        let mut s = session::Session::new(
            peer,
            self.snapshots.clone(),
            self.registry.clone(),
            P::MODE,
            self.limits,
        );
        s.access = access;
        tokio::spawn(session::run::<P>(s, self.shutdown.clone(), inbound, tx));
        rx
    }
}

/// Responses queued per stream, boxed: tokio allocates a channel's slots
/// 32 at a time, and an inline response would cost every stream ~4 KiB
/// idle. Small on purpose: a stream whose Envoy
/// reads slowly waits on this queue instead of piling up old responses;
/// when it drains, the stream computes its next response from the newest
/// snapshot (latest wins), never from the versions it skipped.
const RESPONSE_QUEUE: usize = 4;

/// Who answers, in every response.
fn control_plane() -> envoy_types::pb::envoy::config::core::v3::ControlPlane {
    envoy_types::pb::envoy::config::core::v3::ControlPlane {
        identifier: format!("edgeplane {}", env!("CARGO_PKG_VERSION")),
    }
}

/// Resolves which proxy `node` gets from `snap`, logging and recording in
/// the registry when that changes. Shared by both protocol variants.
fn match_proxy(
    node: &node::NodeInfo,
    snap: &Snapshot,
    current: &mut Option<String>,
    registry: &Registry,
    id: u64,
) -> Option<String> {
    let proxy = node::resolve(node, snap);
    if proxy != *current {
        match &proxy {
            Some(p) => {
                tracing::info!(node = %node::describe(node), proxy = %p, "node matched to proxy")
            }
            None => tracing::warn!(
                node = %node::describe(node),
                proxies = ?snap.proxies.keys().collect::<Vec<_>>(),
                "Envoy node matches no proxy: it gets no config. Set node.metadata.role to <namespace>~<proxyName> of a Gateway's proxyNames"
            ),
        }
        current.clone_from(&proxy);
        let p = proxy.clone().unwrap_or_default();
        registry.update(id, |s| s.proxy = p);
    }
    proxy
}
