//! The ADS server: serves snapshots to Envoy over gRPC.
//!
//! The server never sees manifests: it reads the newest `Snapshot` from a
//! `watch` channel (latest wins, so a slow Envoy never holds others back) and
//! speaks the xDS protocol per stream (`sotw`). Which proxy an Envoy gets is
//! decided by `node` (Gloo's `node.metadata.role`). `registry` records what
//! each connected Envoy ACKed and NACKed, for the status API and logs.

pub mod node;
pub mod registry;
pub mod sotw;

use std::pin::Pin;
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryService;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use futures_util::Stream;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

pub use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryServiceServer;

use crate::snapshot::Snapshot;
use registry::Registry;

/// The snapshot channel: `None` until the first valid config has loaded, so
/// no Envoy is ever told "no listeners, no clusters" by accident.
pub type SnapshotRx = watch::Receiver<Option<Arc<Snapshot>>>;

#[derive(Clone)]
pub struct AdsServer {
    snapshots: SnapshotRx,
    registry: Arc<Registry>,
    shutdown: watch::Receiver<bool>,
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
        }
    }
}

type DeltaStream = Pin<Box<dyn Stream<Item = Result<DeltaDiscoveryResponse, Status>> + Send>>;

#[tonic::async_trait]
impl AggregatedDiscoveryService for AdsServer {
    type StreamAggregatedResourcesStream = ReceiverStream<Result<DiscoveryResponse, Status>>;
    type DeltaAggregatedResourcesStream = DeltaStream;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        let peer = request
            .remote_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let (tx, rx) = mpsc::channel(16);
        let stream = sotw::SotwStream::new(
            peer,
            self.snapshots.clone(),
            self.registry.clone(),
            self.shutdown.clone(),
            tx,
        );
        tokio::spawn(stream.run(request.into_inner()));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn delta_aggregated_resources(
        &self,
        _request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        Err(Status::unimplemented(
            "edgeplane serves state-of-the-world ADS; set ads_config.api_type: GRPC in the Envoy bootstrap",
        ))
    }
}
