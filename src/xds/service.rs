//! The ADS gRPC service, written out rather than generated.
//!
//! Same service name and methods as Envoy's
//! `envoy.service.discovery.v3.AggregatedDiscoveryService`, so Envoy cannot
//! tell the difference; the one change from the generated server is the
//! response type: `wire::SotwResponse` / `wire::DeltaResponse`, which share
//! the snapshot's encoded bytes instead of owning copies (see `wire`).

use std::convert::Infallible;
use std::task::{Context, Poll};

use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::{Body, BoxFuture, StdError, http};
use tonic::{Request, Response, Status, Streaming};

use super::AdsServer;
use super::wire::{DeltaResponse, SotwResponse};

const SOTW_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
const DELTA_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources";

/// The tower service tonic's router calls for ADS.
#[derive(Clone)]
pub struct AdsService {
    ads: AdsServer,
    max_message: usize,
}

impl AdsService {
    /// `max_message` caps decoded requests and encoded responses (bytes).
    pub fn new(ads: AdsServer, max_message: usize) -> Self {
        AdsService { ads, max_message }
    }
}

impl tonic::server::NamedService for AdsService {
    const NAME: &'static str = "envoy.service.discovery.v3.AggregatedDiscoveryService";
}

struct Sotw(AdsServer);
struct Delta(AdsServer);

impl tonic::server::StreamingService<DiscoveryRequest> for Sotw {
    type Response = SotwResponse;
    type ResponseStream = ReceiverStream<Result<SotwResponse, Status>>;
    type Future = BoxFuture<Response<Self::ResponseStream>, Status>;

    fn call(&mut self, request: Request<Streaming<DiscoveryRequest>>) -> Self::Future {
        let stream = self.0.open_sotw(request);
        Box::pin(async move { Ok(stream) })
    }
}

impl tonic::server::StreamingService<DeltaDiscoveryRequest> for Delta {
    type Response = DeltaResponse;
    type ResponseStream = ReceiverStream<Result<DeltaResponse, Status>>;
    type Future = BoxFuture<Response<Self::ResponseStream>, Status>;

    fn call(&mut self, request: Request<Streaming<DeltaDiscoveryRequest>>) -> Self::Future {
        let stream = self.0.open_delta(request);
        Box::pin(async move { Ok(stream) })
    }
}

impl<B> tonic::codegen::Service<http::Request<B>> for AdsService
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let ads = self.ads.clone();
        let max = Some(self.max_message);
        match req.uri().path() {
            SOTW_PATH => Box::pin(async move {
                let codec = tonic_prost::ProstCodec::<SotwResponse, DiscoveryRequest>::default();
                let mut grpc =
                    tonic::server::Grpc::new(codec).apply_max_message_size_config(max, max);
                Ok(grpc.streaming(Sotw(ads), req).await)
            }),
            DELTA_PATH => Box::pin(async move {
                let codec =
                    tonic_prost::ProstCodec::<DeltaResponse, DeltaDiscoveryRequest>::default();
                let mut grpc =
                    tonic::server::Grpc::new(codec).apply_max_message_size_config(max, max);
                Ok(grpc.streaming(Delta(ads), req).await)
            }),
            other => {
                let status = Status::unimplemented(format!(
                    "edgeplane serves ADS only (StreamAggregatedResources, DeltaAggregatedResources), not {other}"
                ));
                Box::pin(async move { Ok(status.into_http()) })
            }
        }
    }
}
