//! The gRPC `StatusService` (`proto/edgeplane/v1/status.proto`): a thin
//! adapter over `status::view`. `WatchStatus` sends the report again
//! whenever a load completes, an Envoy ACKs, NACKs, connects or leaves, or
//! its connection counts change, and only when the report differs.

use tonic::{Request, Response, Status};

use crate::status::State;
use crate::status::api::{GetStatusRequest, GetStatusResponse, status_service_server};
use crate::status::view::current_status;

pub struct StatusApi {
    state: State,
    /// Ends `WatchStatus` streams on shutdown, so they never hold the
    /// server open.
    shutdown: tokio::sync::watch::Receiver<bool>,
}

impl StatusApi {
    pub fn new(state: State, shutdown: tokio::sync::watch::Receiver<bool>) -> Self {
        StatusApi { state, shutdown }
    }
}

type StatusStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<GetStatusResponse, Status>> + Send>>;

#[tonic::async_trait]
impl status_service_server::StatusService for StatusApi {
    async fn get_status(
        &self,
        _request: Request<GetStatusRequest>,
    ) -> Result<Response<GetStatusResponse>, Status> {
        Ok(Response::new(current_status(&self.state)))
    }

    type WatchStatusStream = StatusStream;

    async fn watch_status(
        &self,
        _request: Request<GetStatusRequest>,
    ) -> Result<Response<Self::WatchStatusStream>, Status> {
        let state = self.state.clone();
        let mut shutdown = self.shutdown.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            let mut loads = state.loads.clone();
            let mut reg = state.registry.subscribe();
            let mut stats = state.envoy_stats.subscribe();
            let mut last: Option<GetStatusResponse> = None;
            loop {
                let now = current_status(&state);
                if last.as_ref() != Some(&now) {
                    if tx.send(Ok(now.clone())).await.is_err() {
                        return;
                    }
                    last = Some(now);
                }
                tokio::select! {
                    r = loads.changed() => if r.is_err() { return },
                    r = reg.changed() => if r.is_err() { return },
                    r = stats.changed() => if r.is_err() { return },
                    _ = tx.closed() => return,
                    _ = shutdown.wait_for(|stop| *stop) => return,
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}
