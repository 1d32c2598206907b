//! The xDS port's own HTTP/2 server: ADS, the status API and the stats
//! sink share it, as tonic services behind one tower stack.
//!
//! Why our own: a real Envoy holds one connection per proxy, and with
//! hyper/h2 each connection kept ~28 KiB of fixed buffers (a 16 KiB write
//! buffer, an 8 KiB read buffer, a 4 KiB HPACK buffer) plus a task per
//! stream, whose sizes hyper and tonic do not expose. `conn` keeps no
//! buffer at rest and polls its streams inline (see its docs for the
//! bounds it enforces). The services are unchanged: each request carries
//! tonic's connect info (`TcpConnectInfo`, or `TlsConnectInfo` under TLS)
//! as tonic's own server would.
//!
//! - `frame`: the wire format; `headers`: HPACK in and out; `body`: the
//!   request body and its flow control; `conn`: one connection.

pub mod body;
pub mod conn;
pub mod frame;
pub mod headers;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::{Request, Response};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tonic::transport::server::Connected;
use tower_service::Service;

pub use conn::Config;

use super::transport::LimitedIo;

type Resp = Response<tonic::body::Body>;

/// Serves the connections `incoming` yields (TLS first when `tls` is set)
/// until `shutdown` turns true; then every connection is sent GOAWAY, and
/// this returns once all have closed.
pub async fn serve<S>(
    mut incoming: mpsc::Receiver<LimitedIo>,
    service: S,
    config: Config,
    tls: Option<TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
) where
    S: Service<Request<tonic::body::Body>, Response = Resp, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let config = Arc::new(config);
    // Each connection holds a sender; all dropped = all closed.
    let (alive, mut all_closed) = mpsc::channel::<()>(1);
    loop {
        let io = tokio::select! {
            io = incoming.recv() => io,
            _ = shutdown.wait_for(|s| *s) => None,
        };
        let Some(io) = io else { break };
        let service = service.clone();
        let config = config.clone();
        let stop = on_shutdown(shutdown.clone());
        let alive = alive.clone();
        let peer = io.peer();
        // Two task types, so that a plaintext connection's task is not
        // sized for TLS state it never holds.
        match &tls {
            None => {
                tokio::spawn(async move {
                    let mut ext = http::Extensions::new();
                    ext.insert(io.connect_info());
                    let result = conn::serve(io, service, config, ext, stop).await;
                    ended(peer, result);
                    drop(alive);
                });
            }
            Some(acceptor) => {
                let accept = Box::pin(acceptor.accept(io));
                tokio::spawn(async move {
                    let handshake =
                        tokio::time::timeout(super::tls::HANDSHAKE_TIMEOUT, accept).await;
                    match handshake {
                        Ok(Ok(stream)) => {
                            let mut ext = http::Extensions::new();
                            ext.insert(stream.connect_info());
                            let stream = Box::pin(stream);
                            ended(peer, conn::serve(stream, service, config, ext, stop).await);
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "xDS TLS handshake failed");
                        }
                        Err(_) => tracing::debug!(%peer, "xDS TLS handshake timed out"),
                    }
                    drop(alive);
                });
            }
        }
    }
    drop(incoming);
    drop(alive);
    let _ = all_closed.recv().await;
}

fn ended(peer: std::net::SocketAddr, result: Result<(), conn::ConnError>) {
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "xDS connection ended");
    }
}

fn on_shutdown(mut stop: watch::Receiver<bool>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        if stop.wait_for(|s| *s).await.is_err() {
            // The sender is gone: nobody will ask this connection to stop.
            std::future::pending::<()>().await;
        }
    })
}
