//! Every node gets the same snapshot.
//!
//! `nebucloud_xds`'s `ShardedCache` (0.1.0) keys snapshots by
//! `NodeHash::from_id(node.id)`, and its ADS handlers look up exactly that
//! hash: `NodeHash::wildcard()` exists but no lookup falls back to it, so a
//! snapshot set for the wildcard serves nobody. The peer therefore sets the
//! snapshot for every node id the first time it shows up, and again for every
//! known id on `load`.
//!
//! The crate's handlers answer a request only from a snapshot that is already
//! there (a node without one gets no answer, and no later one: nothing
//! watches the cache), so the snapshot must be set before the crate sees the
//! node's first request. [`NodeHook`] wraps the crate's generated ADS server
//! (a tower service) and reads the node out of the first gRPC message of each
//! ADS request body as the bytes pass through on their way to tonic's
//! decoder; the `set_snapshot` happens right there, synchronously, before the
//! frame is handed on.

use std::collections::HashSet;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use http_body_util::BodyExt;
use nebucloud_xds::cache::{Cache, ShardedCache, Snapshot};
use nebucloud_xds::core::NodeHash;
use nebucloud_xds::types::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DiscoveryRequest,
};
use prost::Message;
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
    cache: Arc<ShardedCache>,
    state: Mutex<State>,
}

struct State {
    snapshot: Snapshot,
    known: HashSet<String>,
}

impl Nodes {
    pub fn new(cache: Arc<ShardedCache>, snapshot: Snapshot) -> Self {
        Nodes {
            cache,
            state: Mutex::new(State {
                snapshot,
                known: HashSet::new(),
            }),
        }
    }

    /// Gives `id` the current snapshot, unless it has it already.
    pub fn ensure(&self, id: &str) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if !st.known.contains(id) {
            st.known.insert(id.to_string());
            self.cache
                .set_snapshot(NodeHash::from_id(id), st.snapshot.clone());
        }
    }

    /// Replaces the snapshot of every known node (and of nodes yet to come);
    /// returns how many nodes were updated.
    pub fn replace(&self, snapshot: Snapshot) -> usize {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.snapshot = snapshot;
        for id in &st.known {
            self.cache
                .set_snapshot(NodeHash::from_id(id), st.snapshot.clone());
        }
        st.known.len()
    }
}

/// Which ADS method a request body belongs to.
#[derive(Clone, Copy)]
enum Method {
    Sotw,
    Delta,
}

impl Method {
    /// The node id of a first request, if it names one.
    fn node_id(self, message: &[u8]) -> Result<Option<String>, prost::DecodeError> {
        Ok(match self {
            Method::Sotw => DiscoveryRequest::decode(message)?.node.map(|n| n.id),
            Method::Delta => DeltaDiscoveryRequest::decode(message)?.node.map(|n| n.id),
        })
    }
}

/// Tower middleware around the crate's ADS server; see the module docs.
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

impl<S> Service<http::Request<BoxBody>> for NodeHook<S>
where
    S: Service<http::Request<BoxBody>, Response = http::Response<BoxBody>, Error = Infallible>
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

    fn call(&mut self, req: http::Request<BoxBody>) -> Self::Future {
        // Call the instance that was polled ready; keep a fresh clone.
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        let method = match req.uri().path() {
            SOTW_PATH => Method::Sotw,
            DELTA_PATH => Method::Delta,
            _ => return Box::pin(inner.call(req)),
        };
        let nodes = self.nodes.clone();
        let (parts, body) = req.into_parts();
        let mut first = FirstMessage::default();
        let body = body
            .map_frame(move |frame| {
                if let Some(data) = frame.data_ref()
                    && let Some(message) = first.push(data)
                {
                    match method.node_id(&message) {
                        Ok(Some(id)) => nodes.ensure(&id),
                        Ok(None) => eprintln!("peer-nebucloud: first ADS request without a node"),
                        Err(e) => eprintln!("peer-nebucloud: first ADS request undecodable: {e}"),
                    }
                }
                frame
            })
            .boxed_unsync();
        Box::pin(inner.call(http::Request::from_parts(parts, body)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_gets_the_snapshot() {
        let cache = Arc::new(ShardedCache::new());
        let nodes = Nodes::new(cache.clone(), Snapshot::builder().version("1").build());
        nodes.ensure("a");
        nodes.ensure("a");
        nodes.ensure("b");
        let version = |id: &str| {
            cache
                .get_snapshot(NodeHash::from_id(id))
                .map(|s| s.version().to_string())
        };
        assert_eq!(version("a").as_deref(), Some("1"));
        assert_eq!(nodes.replace(Snapshot::builder().version("2").build()), 2);
        assert_eq!(version("b").as_deref(), Some("2"));
        assert_eq!(version("c"), None);
    }
}
