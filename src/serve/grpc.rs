//! The gRPC `StatusService` (`proto/edgeplane/v1/status.proto`): a thin,
//! read-only adapter over `status::view`. `WatchStatus` sends the report
//! again whenever a load completes, an Envoy ACKs, NACKs, connects or
//! leaves, or its connection counts change, and only when the report
//! differs.
//!
//! Bounds: under mTLS with a policy naming `statusReaders`, only those
//! identities may call it (`PERMISSION_DENIED` otherwise). Each watcher
//! rebuilds its report at most once per `WATCH_MIN_INTERVAL` however
//! often things change, building it on the blocking pool, and at most
//! `MAX_WATCHERS` watch at once (`RESOURCE_EXHAUSTED` beyond).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tonic::{Request, Response, Status};

use crate::status::State;
use crate::status::api::{GetStatusRequest, GetStatusResponse, status_service_server};
use crate::status::view::current_status;
use crate::xds::authz::{Identity, Policy};

/// Concurrent `WatchStatus` streams.
pub const MAX_WATCHERS: usize = 64;

/// A watcher's report is rebuilt at most this often.
pub const WATCH_MIN_INTERVAL: Duration = Duration::from_millis(100);

pub struct StatusApi {
    state: State,
    /// Ends `WatchStatus` streams on shutdown, so they never hold the
    /// server open.
    shutdown: tokio::sync::watch::Receiver<bool>,
    /// Under mTLS: who may read.
    policy: Option<Arc<Policy>>,
    watchers: Arc<AtomicUsize>,
}

impl StatusApi {
    pub fn new(state: State, shutdown: tokio::sync::watch::Receiver<bool>) -> Self {
        StatusApi {
            state,
            shutdown,
            policy: None,
            watchers: Arc::default(),
        }
    }

    /// Limits readers to the policy's `statusReaders` (mTLS only).
    pub fn with_policy(mut self, policy: Option<Arc<Policy>>) -> Self {
        self.policy = policy;
        self
    }

    fn authorize<T>(&self, req: &Request<T>) -> Result<(), Status> {
        let Some(policy) = &self.policy else {
            return Ok(());
        };
        let peer = req.remote_addr().map(|a| a.to_string()).unwrap_or_default();
        let id = req
            .peer_certs()
            .and_then(|c| Identity::from_chain(Some(c.as_slice())))
            .and_then(Result::ok);
        match id {
            Some(id) if policy.may_read_status(&id) => Ok(()),
            id => {
                let who = id.map(|i| i.describe()).unwrap_or_default();
                tracing::warn!(%peer, identity = %who, "status API refused: identity not in statusReaders");
                Err(Status::permission_denied(format!(
                    "edgeplane: identity {who} may not read the status API (statusReaders of --xds-authz-policy)"
                )))
            }
        }
    }
}

/// The report, built on the blocking pool (it walks every resource and
/// node); on a join failure, on the caller's thread.
async fn build(state: &State) -> GetStatusResponse {
    let s = state.clone();
    match tokio::task::spawn_blocking(move || current_status(&s)).await {
        Ok(r) => r,
        Err(_) => current_status(state),
    }
}

/// Releases a watcher slot when the watch ends.
struct WatcherSlot(Arc<AtomicUsize>);

impl Drop for WatcherSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

type StatusStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<GetStatusResponse, Status>> + Send>>;

#[tonic::async_trait]
impl status_service_server::StatusService for StatusApi {
    async fn get_status(
        &self,
        request: Request<GetStatusRequest>,
    ) -> Result<Response<GetStatusResponse>, Status> {
        self.authorize(&request)?;
        Ok(Response::new(build(&self.state).await))
    }

    type WatchStatusStream = StatusStream;

    async fn watch_status(
        &self,
        request: Request<GetStatusRequest>,
    ) -> Result<Response<Self::WatchStatusStream>, Status> {
        self.authorize(&request)?;
        let prev = self.watchers.fetch_add(1, Ordering::AcqRel);
        let slot = WatcherSlot(self.watchers.clone());
        if prev >= MAX_WATCHERS {
            let peer = request
                .remote_addr()
                .map(|a| a.to_string())
                .unwrap_or_default();
            tracing::warn!(%peer, max = MAX_WATCHERS, "WatchStatus refused: too many watchers");
            return Err(Status::resource_exhausted(format!(
                "edgeplane: at most {MAX_WATCHERS} WatchStatus streams at once"
            )));
        }
        let state = self.state.clone();
        let mut shutdown = self.shutdown.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            let _slot = slot;
            let mut loads = state.loads.clone();
            let mut reg = state.registry.subscribe();
            let mut stats = state.envoy_stats.subscribe();
            let mut last: Option<GetStatusResponse> = None;
            loop {
                let built = tokio::time::Instant::now();
                let now = build(&state).await;
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
                // Coalesce: whatever else changes meanwhile goes into the
                // next build, at most one per WATCH_MIN_INTERVAL.
                tokio::select! {
                    () = tokio::time::sleep_until(built + WATCH_MIN_INTERVAL) => {}
                    _ = tx.closed() => return,
                    _ = shutdown.wait_for(|stop| *stop) => return,
                }
                loads.borrow_and_update();
                reg.borrow_and_update();
                stats.borrow_and_update();
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}
