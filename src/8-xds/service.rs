//! The ADS gRPC service, written out rather than generated.
//!
//! Same service name and methods as Envoy's
//! `envoy.service.discovery.v3.AggregatedDiscoveryService`, so Envoy cannot
//! tell the difference. Requests are decoded by tonic; responses
//! (`wire::SotwResponse` / `wire::DeltaResponse`, which point at the
//! snapshot's encoded bytes) are framed by `body::AdsBody`, one buffer per
//! response, so a stream holds no memory between responses.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::codegen::{Body, BoxFuture, StdError, http};
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tonic::{Status, Streaming};
use tonic_prost::ProstCodec;

use super::AdsServer;
use super::authz::{Access, Identity, Policy};
use super::body::AdsBody;

const SOTW_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
const DELTA_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources";

/// The tower service tonic's router calls for ADS.
#[derive(Clone)]
pub struct AdsService {
    ads: AdsServer,
    max_message: usize,
    max_request: usize,
    /// Under mTLS: which certificate identity may claim which role.
    policy: Option<Arc<Policy>>,
}

impl AdsService {
    /// `max_request` caps decoded requests, `max_message` encoded
    /// responses (bytes).
    pub fn new(ads: AdsServer, max_request: usize, max_message: usize) -> Self {
        AdsService {
            ads,
            max_message,
            max_request,
            policy: None,
        }
    }

    /// Checks every stream's role claim against `policy` with the peer's
    /// client certificate (the xDS port must require one: mTLS).
    pub fn with_policy(mut self, policy: Arc<Policy>) -> Self {
        self.policy = Some(policy);
        self
    }
}

/// The identity of a request's TLS peer (its leaf certificate's SANs):
/// `None` when the connection is not TLS or has no client certificate, or
/// the certificate does not parse (logged).
pub fn peer_identity<B>(req: &http::Request<B>) -> Option<Arc<Identity>> {
    let info = req.extensions().get::<TlsConnectInfo<TcpConnectInfo>>()?;
    let certs = info.peer_certs();
    match Identity::from_chain(certs.as_deref().map(Vec::as_slice))? {
        Ok(id) => Some(Arc::new(id)),
        Err(e) => {
            tracing::warn!(peer = ?info.get_ref().remote_addr(), error = %e, "client certificate unreadable");
            None
        }
    }
}

/// The peer address of a request (plaintext or TLS), `ip:port`.
pub fn peer_addr<B>(req: &http::Request<B>) -> Option<std::net::SocketAddr> {
    let ext = req.extensions();
    ext.get::<TcpConnectInfo>()
        .and_then(|c| c.remote_addr())
        .or_else(|| {
            ext.get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|c| c.get_ref().remote_addr())
        })
}

impl tonic::server::NamedService for AdsService {
    const NAME: &'static str = "envoy.service.discovery.v3.AggregatedDiscoveryService";
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
        let max = self.max_message;
        let max_request = self.max_request;
        let path = req.uri().path().to_string();
        if path != SOTW_PATH && path != DELTA_PATH {
            let status = Status::unimplemented(format!(
                "edgeplane serves ADS only (StreamAggregatedResources, DeltaAggregatedResources), not {path}"
            ));
            return Box::pin(async move { Ok(status.into_http()) });
        }
        if let Some(enc) = req.headers().get("grpc-encoding")
            && enc.as_bytes() != b"identity"
        {
            let status = Status::unimplemented(
                "edgeplane takes uncompressed xDS requests (grpc-encoding: identity)",
            );
            return Box::pin(async move { Ok(status.into_http()) });
        }
        let peer = peer_addr(&req).map(|a| a.to_string()).unwrap_or_default();
        let access = self.policy.as_ref().map(|policy| Access {
            identity: peer_identity(&req),
            policy: policy.clone(),
        });
        let body = req.into_body();
        let response = if path == SOTW_PATH {
            let decoder =
                SmallBuffer(ProstCodec::<DiscoveryRequest, DiscoveryRequest>::default().decoder());
            let inbound = Streaming::new_request(decoder, body, None, Some(max_request));
            grpc_response(AdsBody::new(
                ads.open::<super::sotw::Sotw>(peer, access, inbound),
                max,
            ))
        } else {
            let decoder = SmallBuffer(
                ProstCodec::<DeltaDiscoveryRequest, DeltaDiscoveryRequest>::default().decoder(),
            );
            let inbound = Streaming::new_request(decoder, body, None, Some(max_request));
            grpc_response(AdsBody::new(
                ads.open::<super::delta::Delta>(peer, access, inbound),
                max,
            ))
        };
        Box::pin(async move { Ok(response) })
    }
}

/// A decoder whose stream starts with a small read buffer. tonic's default
/// is 8 KiB per stream, kept for the stream's life; an Envoy's requests
/// after the first are ACKs of a few hundred bytes, and with one stream per
/// Envoy that default was a third of what a stream costs. The buffer still
/// grows to fit any request (up to `max_request`).
struct SmallBuffer<D>(D);

/// Initial read buffer of a stream (bytes): an ACK fits.
const REQUEST_BUFFER: usize = 1024;

impl<D: Decoder> Decoder for SmallBuffer<D> {
    type Item = D::Item;
    type Error = D::Error;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Self::Error> {
        self.0.decode(src)
    }

    fn buffer_settings(&self) -> BufferSettings {
        // 32 KiB: tonic's documented default yield threshold (an encoder
        // setting; decoding does not read it).
        BufferSettings::new(REQUEST_BUFFER, 32 * 1024)
    }
}

/// A gRPC response whose body is the stream's frames.
fn grpc_response<M: super::wire::WireResponse + Unpin + 'static>(
    body: AdsBody<M>,
) -> http::Response<tonic::body::Body> {
    let mut resp = http::Response::new(tonic::body::Body::new(body));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    resp
}
