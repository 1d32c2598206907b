//! `edgeplane serve`: wires the pipeline, the watcher, the ADS server, the
//! status API and the admin endpoints together.
//!
//! The reload loop owns a `Reconciler`, which applies the last-known-good
//! rule per resource: every diagnostic is logged (file, line, column,
//! resource), a rejected resource keeps its last accepted version, and
//! every valid edit elsewhere goes out. A load whose snapshot equals the
//! served one publishes nothing, so Envoy sees no response at all.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use crate::api;
use crate::diag::{Diagnostic, Severity};
use crate::reconcile::Reconciler;
use crate::snapshot::{EncodeStats, PUSH_ORDER, Snapshot};
use crate::source::FileCache;
use crate::source::watch::{Debounce, watch_dir};
use crate::xds::registry::Registry;
use crate::xds::{AdsServer, AdsService};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot bind the xDS server on {addr}: {source}")]
    BindXds {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot bind the admin server on {addr}: {source}")]
    BindAdmin {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("xDS server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error(transparent)]
    Watch(#[from] crate::source::watch::WatchError),
}

pub struct ServeConfig {
    pub config_dir: PathBuf,
    pub xds_address: SocketAddr,
    pub admin_address: Option<SocketAddr>,
    pub debounce: Debounce,
    /// TLS (or mutual TLS) on the xDS port, checked by
    /// `xds_tls::XdsTlsFiles::load`; `None`: plaintext.
    pub xds_tls: Option<crate::xds_tls::ServerTls>,
}

/// What the most recent load found; read by the status API and admin.
#[derive(Clone, Debug, Default)]
pub struct LoadState {
    pub diagnostics: Vec<Diagnostic>,
    pub last_load_failed: bool,
    /// Loads completed since start, valid or not.
    pub loads: u64,
    /// Every resource's status from the most recent load.
    pub statuses: Vec<crate::reconcile::ResourceStatus>,
    /// Envoy resource → owning manifests, for NACK attribution.
    pub owners: crate::reconcile::Owners,
    /// What the most recent load read, parsed and encoded, what it carried
    /// over from the one before, and how long it took.
    pub work: LoadWork,
    /// The routing tables of the served config (`crate::explain`), for the
    /// status page; computed after each build is published.
    pub routes: Arc<ServedRoutes>,
}

/// The effective routing tables of what is served.
#[derive(Clone, Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServedRoutes {
    /// The snapshot generation the tables describe (`None` before the
    /// first valid load, as `/status` says).
    pub generation: Option<String>,
    pub listeners: Vec<crate::explain::ListenerRoutes>,
    /// Set when the tables could not be read back from the translation.
    pub error: Option<String>,
}

/// The work of one load. A one-file edit reads and parses that file only
/// and encodes only the resources whose content changed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadWork {
    /// Manifests read from disk (new, changed, or changed too recently to
    /// trust their timestamps).
    pub files_read: usize,
    /// Manifests whose file was unchanged: their text was not read again.
    pub files_reused: usize,
    /// Manifests parsed, and those whose text was unchanged so their
    /// documents were kept.
    pub files_parsed: usize,
    pub parses_reused: usize,
    /// Envoy resources encoded, and those equal to the last build's that
    /// kept its bytes and version, by type (empty when nothing was built).
    pub encode: EncodeStats,
    /// Listing and reading the directory.
    pub read: Duration,
    /// Parse, validate, translate, encode (the reconcile).
    pub build: Duration,
    /// From the start of the load until its snapshot was ready.
    pub total: Duration,
}

/// What the reload loop keeps between loads: the files' texts, the last
/// accepted resources and the last build.
#[derive(Default)]
pub struct Loader {
    pub files: FileCache,
    pub reconciler: Reconciler,
}

#[derive(Clone)]
pub struct Shared {
    pub snapshots: watch::Receiver<Option<Arc<Snapshot>>>,
    pub load: Arc<Mutex<LoadState>>,
    pub registry: Arc<Registry>,
    /// Counts completed loads; status watchers wait on it.
    pub loads: watch::Receiver<u64>,
    /// `/metrics` (also reachable as `registry.metrics()`).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Listener connection counts the Envoys stream to us (`stats_sink`).
    pub envoy_stats: Arc<crate::drain::EnvoyStats>,
    /// The most recent listener drains.
    pub drains: Arc<crate::drain::DrainLog>,
}

pub async fn serve(cfg: ServeConfig) -> Result<(), ServeError> {
    let (snap_tx, snap_rx) = watch::channel::<Option<Arc<Snapshot>>>(None);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut stopping = shutdown_rx.clone();
    let (loads_tx, loads_rx) = watch::channel(0u64);
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let shared = Shared {
        snapshots: snap_rx.clone(),
        load: Arc::new(Mutex::new(LoadState::default())),
        registry: Arc::new(Registry::with_metrics(metrics.clone())),
        loads: loads_rx,
        metrics,
        envoy_stats: Arc::default(),
        drains: Arc::default(),
    };

    let mut loader = Loader::default();
    reload(&cfg.config_dir, &mut loader, &snap_tx, &shared).await;
    loads_tx.send_modify(|n| *n += 1);

    let (reload_tx, mut reload_rx) = mpsc::channel(1);
    let dir = cfg.config_dir.clone();
    let debounce = cfg.debounce;
    let watcher = tokio::spawn(async move { watch_dir(&dir, debounce, reload_tx).await });
    let dir = cfg.config_dir.clone();
    let reload_shared = shared.clone();
    tokio::spawn(async move {
        while reload_rx.recv().await.is_some() {
            reload(&dir, &mut loader, &snap_tx, &reload_shared).await;
            loads_tx.send_modify(|n| *n += 1);
        }
    });

    if let Some(addr) = cfg.admin_address {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::BindAdmin { addr, source })?;
        tracing::info!(%addr, "admin HTTP listening (/healthz, /readyz, /status, /metrics, /config_dump)");
        tokio::spawn(crate::admin::run(listener, shared.clone()));
    }

    let listener = tokio::net::TcpListener::bind(cfg.xds_address)
        .await
        .map_err(|source| ServeError::BindXds {
            addr: cfg.xds_address,
            source,
        })?;
    let security = cfg
        .xds_tls
        .as_ref()
        .map_or(crate::xds_tls::XdsSecurity::Plaintext, |t| t.security);
    tracing::info!(addr = %cfg.xds_address, dir = %cfg.config_dir.display(), %security, "xDS (ADS) listening");
    let status = api::StatusApi::new(shared.clone(), shutdown_rx.clone());
    let ads = AdsServer::new(snap_rx, shared.registry.clone(), shutdown_rx);
    // TCP_NODELAY: without it, Nagle holds the tail of a response just past
    // a segment boundary until Envoy's delayed ACK (40 ms on Linux), which
    // measurably delayed pushes of mid-sized RouteConfigurations.
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = &cfg.xds_tls {
        // Applied by tonic to every accepted connection, before HTTP/2.
        builder = builder.tls_config(tls.config.clone())?;
    }
    let server = builder
        .add_service(AdsService::new(
            ads,
            crate::bootstrap::MAX_XDS_MESSAGE_BYTES,
        ))
        .add_service(api::status_service_server::StatusServiceServer::new(status))
        // Envoy's stats (the bootstrap's metrics service sink), for drains.
        .add_service(crate::stats_sink::StatsSinkService::new(
            shared.envoy_stats.clone(),
            shared.metrics.clone(),
            crate::bootstrap::MAX_XDS_MESSAGE_BYTES,
            shutdown_tx.subscribe(),
        ))
        .serve_with_incoming_shutdown(incoming, async move {
            shutdown_signal().await;
            tracing::info!("shutting down: closing xDS streams (Envoy keeps its config)");
            let _ = shutdown_tx.send(true);
        });
    tokio::select! {
        r = server => r?,
        r = watcher => {
            if let Ok(Err(e)) = r {
                return Err(e.into());
            }
        }
        // A graceful shutdown waits for every open stream to end, and some
        // never do on their own (`status --watch`, Envoy's stats stream):
        // give them SHUTDOWN_GRACE, then exit anyway.
        () = async {
            if stopping.wait_for(|s| *s).await.is_ok() {
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            } else {
                std::future::pending::<()>().await;
            }
        } => {
            tracing::warn!(
                grace_ms = SHUTDOWN_GRACE.as_millis() as u64,
                "streams still open after the shutdown grace period; exiting"
            );
        }
    }
    Ok(())
}

/// How long SIGTERM waits for open gRPC streams (status watchers, stats
/// streams) to end after the ADS streams were closed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Loads the directory once and publishes the snapshot if it is valid and
/// different from the one served.
async fn reload(
    dir: &std::path::Path,
    loader: &mut Loader,
    snap_tx: &watch::Sender<Option<Arc<Snapshot>>>,
    shared: &Shared,
) {
    let state = &shared.load;
    let started = Instant::now();
    let d = dir.to_path_buf();
    // Reading is blocking I/O and a large config takes a while to build:
    // both run off the async workers. The loader moves in and back out.
    let mut l = std::mem::take(loader);
    let job = tokio::task::spawn_blocking(move || {
        let read = crate::source::load_dir_cached(&d, &mut l.files);
        let read_time = started.elapsed();
        let mut load = l.reconciler.reconcile(read.files, read.diagnostics);
        // Kept only to explain the routes once the snapshot is published.
        let built = load.output.take().zip(load.model.take());
        (l, read.stats, read_time, load, built)
    });
    let (l, read_stats, read_time, mut load, built) = match job.await {
        Ok(r) => r,
        Err(e) => {
            // The caches and last accepted versions went with the panic;
            // the next load starts afresh.
            tracing::error!(error = %e, "manifest load panicked; keeping the served config");
            return;
        }
    };
    *loader = l;
    let total = started.elapsed();
    let work = LoadWork {
        files_read: read_stats.read,
        files_reused: read_stats.reused,
        files_parsed: load.work.parse.parsed,
        parses_reused: load.work.parse.reused,
        encode: load.work.encode.clone(),
        read: read_time,
        build: total.saturating_sub(read_time),
        total,
    };
    for d in &load.diagnostics {
        let resource = d
            .resource
            .as_ref()
            .map(|r| r.to_string())
            .unwrap_or_default();
        let file = d.pos.file.display().to_string();
        match d.severity {
            Severity::Error => tracing::error!(
                file = %file, line = d.pos.line, column = d.pos.column, resource = %resource,
                "{}", d.message
            ),
            Severity::Warning => tracing::warn!(
                file = %file, line = d.pos.line, column = d.pos.column, resource = %resource,
                "{}", d.message
            ),
        }
    }
    for st in load
        .statuses
        .iter()
        .filter(|s| s.state == crate::reconcile::State::Rejected)
    {
        let serving = match st.serving {
            crate::reconcile::Serving::LastAccepted => "its last accepted version stays served",
            crate::reconcile::Serving::Nothing => "it is not served",
            crate::reconcile::Serving::Current => "served",
        };
        tracing::warn!(resource = %st.id, file = %st.file.display(), "rejected; {serving}");
    }
    let failed = load.has_errors();
    let errors = load.diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = load.diagnostics.len() - errors;
    if let Ok(mut s) = state.lock() {
        // Moved, not copied: nothing below needs them, and the owners
        // index of a large config is big.
        s.diagnostics = std::mem::take(&mut load.diagnostics);
        s.statuses = std::mem::take(&mut load.statuses);
        if load.snapshot.is_some() {
            s.owners = std::mem::take(&mut load.owners);
        }
        s.last_load_failed = failed;
        s.loads += 1;
        s.work = work.clone();
    }
    let Some(snapshot) = load.snapshot else {
        shared.metrics.record_load(
            crate::metrics::ReloadResult::Rejected,
            errors,
            warnings,
            work.build,
        );
        let serving = snap_tx.borrow().is_some();
        tracing::error!(
            errors,
            "manifests rejected; {}",
            if serving {
                "the last good config stays served"
            } else {
                "nothing is served until the manifests are valid"
            }
        );
        return;
    };
    let generation = snapshot.generation();
    let mut previous = None;
    let changed = snap_tx.send_if_modified(|cur| {
        if cur.as_deref() == Some(&snapshot) {
            return false;
        }
        previous = cur.replace(Arc::new(snapshot.clone()));
        true
    });
    shared.metrics.record_load(
        if failed {
            crate::metrics::ReloadResult::Rejected
        } else if changed {
            crate::metrics::ReloadResult::Published
        } else {
            crate::metrics::ReloadResult::Unchanged
        },
        errors,
        warnings,
        work.build,
    );
    if changed {
        shared.metrics.record_publish(&snapshot);
        // Gateway-level edits drain: say which listeners, on which Envoys,
        // with how many connections.
        if let Some(previous) = previous {
            crate::drain::report(
                &previous,
                &snapshot,
                &shared.registry.list(),
                &shared.envoy_stats,
                &shared.drains,
                &shared.metrics,
            );
        }
        for (key, p) in &snapshot.proxies {
            let versions: Vec<String> = PUSH_ORDER
                .iter()
                .map(|t| format!("{}={}", t.short(), p.version(*t)))
                .collect();
            tracing::info!(proxy = %key, versions = %versions.join(" "), "proxy config");
        }
        tracing::info!(
            %generation,
            files = load.files.len(),
            files_read = work.files_read,
            resources_encoded = work.encode.encoded_total(),
            resources_reused = work.encode.reused_total(),
            build_ms = work.build.as_millis() as u64,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "config loaded and published"
        );
    } else {
        tracing::debug!(%generation, "manifests changed nothing that is served; no push");
    }
    explain_served(built, generation.to_string(), shared).await;
}

/// Reads the routing tables back from what was just published (off the
/// async workers: a large config takes a while), then gives what the build
/// allocated back to the OS now rather than at the next peak.
async fn explain_served(
    built: Option<(Arc<crate::translate::Output>, crate::model::Model)>,
    generation: String,
    shared: &Shared,
) {
    let job = tokio::task::spawn_blocking(move || {
        let routes = built.map(|(output, model)| {
            let (listeners, error) = match crate::explain::routes(&output, &model, None) {
                Ok(listeners) => (listeners, None),
                Err(e) => (Vec::new(), Some(e.to_string())),
            };
            ServedRoutes {
                generation: Some(generation),
                listeners,
                error,
            }
        });
        crate::memory::release_free_memory();
        routes
    });
    match job.await {
        Ok(Some(routes)) => {
            if let Some(e) = &routes.error {
                tracing::warn!(error = %e, "cannot explain the served routes");
            }
            if let Ok(mut s) = shared.load.lock() {
                s.routes = Arc::new(routes);
            }
        }
        Ok(None) => {}
        Err(e) => tracing::error!(error = %e, "explaining the served routes panicked"),
    }
}
