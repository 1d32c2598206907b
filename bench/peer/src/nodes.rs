//! Every node gets the same snapshot.
//!
//! `rust_control_plane::cache::Cache` (0.1.2) keys snapshots by the node id
//! and has no node-hash hook (`hash_id` is private and returns `node.id`), so
//! the peer calls `Cache::set_snapshot(node_id, ..)` once per node id, the
//! first time that id shows up, and again for every known id on `load`.
//!
//! The crate's `Service` only ever sees a decoded request stream, so the id
//! is read beside it: [`NodeHook`] wraps the generated ADS server (a tower
//! service) and sniffs the node out of the first gRPC frame of each
//! `StreamAggregatedResources` request body as the bytes pass through,
//! without delaying them or the response headers. Ordering does not matter
//! to the crate: if its `create_watch` runs before our `set_snapshot`, it
//! parks a "no snapshot" watch that `set_snapshot` then answers; both run
//! under the cache's mutex.

use std::collections::HashSet;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use data_plane_api::envoy::service::discovery::v3::DiscoveryRequest;
use futures::StreamExt;
use prost::Message;
use rust_control_plane::cache::Cache;
use rust_control_plane::snapshot::Snapshot;
use tokio::sync::Mutex;
use tonic::body::BoxBody;
use tonic::server::NamedService;
use tower_service::Service;

use crate::common::FirstMessage;

const SOTW_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
const DELTA_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources";

/// The current snapshot and every node id that has connected.
pub struct Nodes {
    cache: Arc<Cache>,
    state: Mutex<State>,
}

struct State {
    snapshot: Snapshot,
    known: HashSet<String>,
}

impl Nodes {
    pub fn new(cache: Arc<Cache>, snapshot: Snapshot) -> Self {
        Nodes {
            cache,
            state: Mutex::new(State {
                snapshot,
                known: HashSet::new(),
            }),
        }
    }

    /// Gives `id` the current snapshot, unless it already has it.
    pub async fn ensure(&self, id: String) {
        let mut st = self.state.lock().await;
        if st.known.insert(id.clone()) {
            set(&self.cache, id, st.snapshot.clone()).await;
        }
    }

    /// Replaces the snapshot of every known node (and of nodes yet to come).
    /// Returns how many nodes were updated.
    pub async fn replace(&self, snapshot: Snapshot) -> usize {
        let mut st = self.state.lock().await;
        st.snapshot = snapshot;
        for id in &st.known {
            set(&self.cache, id.clone(), st.snapshot.clone()).await;
        }
        st.known.len()
    }
}

/// `Cache::set_snapshot` in its own task: the crate `unwrap()`s the send to a
/// watch whose stream task has gone (a disconnected client whose watches are
/// not cancelled yet), and that panic must not take the caller down.
async fn set(cache: &Arc<Cache>, id: String, snapshot: Snapshot) {
    let cache = cache.clone();
    let node = id.clone();
    let r = tokio::spawn(async move { cache.set_snapshot(&node, snapshot).await }).await;
    if let Err(e) = r {
        eprintln!("peer: set_snapshot for node {id:?} panicked inside rust-control-plane: {e}");
    }
}

/// Tower middleware around the generated ADS server; see the module docs.
#[derive(Clone)]
pub struct NodeHook<S> {
    inner: S,
    nodes: Arc<Nodes>,
}

impl<S> NodeHook<S> {
    pub fn new(inner: S, nodes: Arc<Nodes>) -> Self {
        NodeHook { inner, nodes }
    }
}

impl<S: NamedService> NamedService for NodeHook<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<hyper::Body>> for NodeHook<S>
where
    S: Service<http::Request<hyper::Body>, Response = http::Response<BoxBody>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<BoxBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<hyper::Body>) -> Self::Future {
        // The usual tower dance: call the instance that was polled ready.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if req.uri().path() == DELTA_PATH {
            // rust-control-plane 0.1.2's `delta_aggregated_resources` is
            // `unimplemented!()`: it would panic and reset the HTTP/2 stream.
            // Say the same thing the gRPC way.
            let status = tonic::Status::unimplemented(
                "delta xDS: not implemented by rust-control-plane 0.1.2",
            );
            return Box::pin(async move { Ok(status.to_http()) });
        }
        if req.uri().path() != SOTW_PATH {
            return Box::pin(inner.call(req));
        }
        let nodes = self.nodes.clone();
        let (parts, body) = req.into_parts();
        let mut sniffer = FirstMessage::default();
        let body = hyper::Body::wrap_stream(body.inspect(move |chunk| {
            if let Ok(bytes) = chunk
                && let Some(frame) = sniffer.push(bytes)
            {
                match DiscoveryRequest::decode(&frame[..]) {
                    Ok(r) => {
                        let id = r.node.map(|n| n.id).unwrap_or_default();
                        let nodes = nodes.clone();
                        tokio::spawn(async move { nodes.ensure(id).await });
                    }
                    Err(e) => eprintln!("peer: first ADS request undecodable: {e}"),
                }
            }
        }));
        Box::pin(inner.call(http::Request::from_parts(parts, body)))
    }
}
