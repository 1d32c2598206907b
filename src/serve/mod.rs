//! `edgeplane serve`, the daemon and composition root: checks the
//! directory and binds its ports before anything else, then wires the
//! watcher and the reload loop (`reload`) to the ADS server (`xds`), the
//! gRPC status API (`grpc`), Envoy's stats stream (`stats_sink`), the admin
//! HTTP server (`admin`) and the metrics (`metrics`). Every edge reads one
//! `status::State`; nothing outside `cli` imports this module.

pub mod admin;
pub mod drains;
pub mod grpc;
pub mod http2;
pub mod memory;
pub mod metrics;
pub mod reload;
pub mod replicas;
pub mod stats_sink;
pub mod tls;
pub mod transport;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use self::metrics::Metrics;
use self::reload::Input;
use crate::snapshot::Snapshot;
use crate::source::watch::{Debounce, Trigger, watch_dir};
use crate::status::api::status_service_server::StatusServiceServer;
use crate::status::{SourceConnection, SourceInfo, State};
use crate::xds::registry::Registry;
use crate::xds::{AdsServer, AdsService, MAX_XDS_MESSAGE_BYTES};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "--config-dir {}: no such directory (edgeplane reads the manifests from a directory; nothing was started)",
        .dir.display()
    )]
    ConfigDir { dir: PathBuf },
    #[error("cannot bind the xDS server on {addr} (choose another address with --xds-address)")]
    BindXds {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot bind the admin server on {addr} (choose another address with --admin-address)")]
    BindAdmin {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Watch(#[from] crate::source::watch::WatchError),
    #[error("etcd source")]
    Etcd(#[from] crate::source::etcd::StoreError),
}

/// Where the manifests come from.
pub enum Source {
    /// A directory, read and watched.
    Dir(PathBuf),
    /// Keys below a prefix in etcd, listed and watched.
    Etcd(crate::source::etcd::EtcdConfig),
}

pub struct ServeConfig {
    pub source: Source,
    pub xds_address: SocketAddr,
    pub admin_address: Option<SocketAddr>,
    pub debounce: Debounce,
    /// TLS (or mutual TLS) on the xDS port, checked by
    /// `tls::XdsTlsFiles::load`; `None`: plaintext.
    pub xds_tls: Option<tls::ServerTls>,
    /// Under mTLS, who may claim which role and read the status API
    /// (`tls::load_policy`); `None` without mTLS.
    pub authz_policy: Option<Arc<crate::xds::authz::Policy>>,
    /// Connection, stream and request limits of both ports.
    pub limits: transport::Limits,
    /// Per-ADS-stream bounds (`--max-subscribed-names`, `--max-node-bytes`).
    pub stream_limits: crate::xds::session::StreamLimits,
}

pub async fn serve(cfg: ServeConfig) -> Result<(), ServeError> {
    // Everything that can fail at start fails before a port is bound or a
    // file read: a wrong directory or a taken port leaves nothing behind.
    let started = match &cfg.source {
        Source::Dir(dir) => {
            if !dir.is_dir() {
                return Err(ServeError::ConfigDir { dir: dir.clone() });
            }
            // Armed before the first read: an edit made while it runs is seen.
            Started::Dir(dir.clone(), watch_dir(dir, cfg.debounce)?)
        }
        Source::Etcd(e) => Started::Etcd(e.clone(), Box::new(crate::source::etcd::Store::new(e)?)),
    };
    let admin_listener = match cfg.admin_address {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| ServeError::BindAdmin { addr, source })?,
        ),
        None => None,
    };
    let xds_listener =
        transport::bind_xds(cfg.xds_address).map_err(|source| ServeError::BindXds {
            addr: cfg.xds_address,
            source,
        })?;

    let (snap_tx, snap_rx) = watch::channel::<Option<Arc<Snapshot>>>(None);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut stopping = shutdown_rx.clone();
    let shutdown_rx_server = shutdown_rx.clone();
    let (loads_tx, loads_rx) = watch::channel(0u64);
    let metrics = Arc::new(Metrics::new());
    let (conn_tx, conn_rx) = watch::channel(crate::source::etcd::Connection::default());
    let shown_connection = Arc::new(std::sync::Mutex::new(SourceConnection::default()));
    let source_info = match &cfg.source {
        Source::Dir(d) => SourceInfo::Dir(d.clone()),
        Source::Etcd(e) => SourceInfo::Etcd {
            endpoints: e.endpoints.clone(),
            prefix: e.prefix.clone(),
            connection: shown_connection.clone(),
        },
    };
    let state = State {
        snapshots: snap_rx.clone(),
        load: Arc::default(),
        registry: Arc::new(Registry::with_observer(metrics.clone())),
        loads: loads_rx,
        envoy_stats: Arc::default(),
        drains: Arc::default(),
        source: source_info,
        peers: Arc::default(),
    };
    // The etcd source shares what it accepted (the writer starts below).
    let (accepted_tx, accepted_rx) = watch::channel(Arc::new(reload::Accepted::new()));
    let publisher = reload::Publisher {
        snapshots: snap_tx,
        state: state.clone(),
        metrics: metrics.clone(),
        accepted: matches!(cfg.source, Source::Etcd(_)).then_some(accepted_tx),
    };

    let mut loader = reload::Loader::default();
    // The etcd replica-status publisher, awaited at shutdown so that it
    // revokes its lease before the process exits.
    let mut publisher_task: Option<tokio::task::JoinHandle<()>> = None;
    let watcher = match started {
        Started::Dir(dir, dir_watch) => {
            metrics.set_source(true, 0);
            let activity = dir_watch.activity();
            // The event count when the last read began: a trigger for
            // nothing newer (the events a read already saw) reads nothing new.
            let mut read_at = activity.count();
            reload::reload_guarded(Input::Dir(dir.clone()), &mut loader, &publisher, None).await;
            loads_tx.send_modify(|n| *n += 1);
            let (reload_tx, mut reload_rx) = mpsc::channel(1);
            let watcher = tokio::spawn(dir_watch.run(reload_tx));
            tokio::spawn(async move {
                while let Some(trigger) = reload_rx.recv().await {
                    let now = activity.count();
                    if trigger != Trigger::Forced && now == read_at {
                        continue;
                    }
                    read_at = now;
                    let early = (trigger == Trigger::Early).then(|| reload::Early {
                        activity: activity.clone(),
                        read_at: now,
                    });
                    if reload::reload_guarded(
                        Input::Dir(dir.clone()),
                        &mut loader,
                        &publisher,
                        early,
                    )
                    .await
                    {
                        loads_tx.send_modify(|n| *n += 1);
                    }
                }
            });
            watcher
        }
        Started::Etcd(e, store) => {
            tracing::info!(endpoints = %e.endpoints.join(","), prefix = %e.prefix, "reading manifests from etcd");
            tokio::spawn(accepted_writer(
                crate::source::etcd::Store::new(&e)?,
                e.prefix.clone(),
                accepted_rx,
            ));
            // This replica's Envoys, published for the others; theirs, merged
            // into this one's status.
            let id = replicas::replica_id();
            tracing::info!(replica = %id, "publishing this replica's status under {}/", replicas::root(&e.prefix));
            publisher_task = Some(tokio::spawn(replicas::publish(
                crate::source::etcd::Store::new(&e)?,
                e.prefix.clone(),
                id.clone(),
                state.clone(),
                conn_rx.clone(),
                shutdown_rx.clone(),
            )));
            tokio::spawn(replicas::follow(
                crate::source::etcd::Store::new(&e)?,
                e.prefix.clone(),
                id,
                state.clone(),
            ));
            let (updates_tx, mut updates_rx) = watch::channel(None);
            tokio::spawn(crate::source::etcd::watch::run(
                *store,
                e.prefix.clone(),
                crate::source::etcd::watch::Outputs {
                    updates: updates_tx,
                    connection: conn_tx,
                },
            ));
            // `/status` and the gauges follow the connection.
            let m = metrics.clone();
            let mut conn = conn_rx.clone();
            tokio::spawn(async move {
                loop {
                    let c = conn.borrow_and_update().clone();
                    m.set_source(c.connected, c.revision);
                    m.set_source_totals(c.lists, c.watches, c.events);
                    *shown_connection
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = SourceConnection {
                        connected: c.connected,
                        since: Some(c.since),
                        revision: c.revision,
                        endpoint: c.endpoint,
                        error: c.error,
                    };
                    if conn.changed().await.is_err() {
                        return;
                    }
                }
            });
            // Latest wins: a reload reads the newest state, however many
            // watch responses arrived while the one before ran.
            tokio::spawn(async move {
                while updates_rx.changed().await.is_ok() {
                    let update = updates_rx.borrow_and_update().clone();
                    if let Some(u) = update {
                        reload::reload_guarded(Input::Etcd(u), &mut loader, &publisher, None).await;
                        loads_tx.send_modify(|n| *n += 1);
                    }
                }
            });
            tokio::spawn(std::future::pending::<
                Result<(), crate::source::watch::WatchError>,
            >())
        }
    };

    if let Some(listener) = admin_listener {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, "admin HTTP listening (/, /healthz, /readyz, /status, /routes, /metrics, /config_dump)");
        }
        tokio::spawn(admin::run(
            listener,
            admin::Admin::new(state.clone(), metrics.clone()),
            admin::AdminLimits::from(&cfg.limits),
        ));
    }

    let security = cfg
        .xds_tls
        .as_ref()
        .map_or(tls::XdsSecurity::Plaintext, |t| t.security);
    let source = match &cfg.source {
        Source::Dir(d) => d.display().to_string(),
        Source::Etcd(e) => format!("etcd {} (prefix {})", e.endpoints.join(","), e.prefix),
    };
    tracing::info!(addr = %cfg.xds_address, %source, %security, "xDS (ADS) listening");
    if let Some(p) = &cfg.authz_policy {
        if p.is_allow_all() {
            tracing::warn!(
                "mTLS without --xds-authz-policy: any client certificate the CA signed may claim any proxy role (read its config, report its stats) and read the status API"
            );
        } else {
            tracing::info!(policy = %p.source, "xDS authorization policy loaded");
        }
    }
    let status = grpc::StatusApi::new(state.clone(), shutdown_rx.clone())
        .with_policy(cfg.authz_policy.clone());
    let ads = AdsServer::new(snap_rx, state.registry.clone(), shutdown_rx);
    let limits = &cfg.limits;
    let conns = transport::Conns::default();
    let incoming = transport::incoming(xds_listener, limits, conns.clone());
    let max_request = limits.max_request_bytes;
    let mut ads_service = AdsService::new(ads, max_request, MAX_XDS_MESSAGE_BYTES);
    if let Some(p) = &cfg.authz_policy {
        ads_service = ads_service.with_policy(p.clone());
    }
    let routes = tonic::service::Routes::new(ads_service)
        .add_service(StatusServiceServer::new(status).max_decoding_message_size(max_request))
        // Envoy's stats (the bootstrap's metrics service sink), for drains.
        .add_service(
            stats_sink::StatsSinkService::new(
                state.envoy_stats.clone(),
                metrics.clone(),
                max_request,
                shutdown_tx.subscribe(),
            )
            .with_binding(state.registry.clone(), cfg.authz_policy.clone()),
        )
        .prepare();
    let service = tower_layer::Layer::layer(
        &transport::GuardLayer::new(max_request, limits.max_streams_per_connection, conns),
        routes,
    );
    let http2 = http2::Config {
        max_streams: limits.max_streams_per_connection,
        keepalive_interval: limits.http2_keepalive_interval,
        keepalive_timeout: limits.http2_keepalive_timeout,
        // A client that keeps opening streams over the limit (each
        // refused) or resetting streams before they are served (rapid
        // reset) gets GOAWAY ENHANCE_YOUR_CALM.
        max_local_resets: MAX_LOCAL_ERROR_RESETS,
        max_pending_resets: MAX_PENDING_ACCEPT_RESETS,
        max_header_list: MAX_HEADER_LIST,
    };
    let acceptor = cfg.xds_tls.as_ref().map(|t| t.acceptor.clone());
    let server = http2::serve(incoming, service, http2, acceptor, shutdown_rx_server);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: closing xDS streams (Envoy keeps its config)");
        let _ = shutdown_tx.send(true);
    });
    tokio::select! {
        () = server => {}
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
    if let Some(task) = publisher_task {
        // It saw the shutdown too; give its lease revoke a bounded moment.
        let within = replicas::REVOKE_WITHIN + std::time::Duration::from_millis(200);
        let _ = tokio::time::timeout(within, task).await;
    }
    Ok(())
}

/// Keeps the shared accepted record (`source::etcd::accepted`) up to date
/// with what this replica accepts: each document newer than the record is
/// written (compare-and-swap, so replicas never fight). A failure moves to
/// the next member and retries on the next load or after a pause.
async fn accepted_writer(
    mut store: crate::source::etcd::Store,
    prefix: String,
    mut rx: watch::Receiver<Arc<reload::Accepted>>,
) {
    use crate::source::etcd::accepted;
    // Manifest key → the revision recorded (by this replica or found newer).
    let mut done: std::collections::BTreeMap<String, i64> = std::collections::BTreeMap::new();
    // The records as last read or written (None: read them first).
    let mut stored: Option<std::collections::BTreeMap<String, accepted::Stored>> = None;
    let mut failing = false;
    loop {
        let changed = if failing {
            tokio::time::timeout(Duration::from_secs(1), rx.changed())
                .await
                .unwrap_or(Ok(()))
        } else {
            rx.changed().await
        };
        if changed.is_err() {
            return;
        }
        let current = rx.borrow_and_update().clone();
        let r = record_accepted(&mut store, &prefix, &current, &mut done, &mut stored).await;
        if let Err(e) = r {
            if !failing {
                tracing::warn!(error = %e, "etcd: cannot write the shared accepted record; retrying");
            }
            store.fail_over();
            // Read them again: another replica may have moved some.
            stored = None;
        } else if failing {
            tracing::info!("etcd: the shared accepted record is written again");
        }
        failing = failed_now(&done, &current);
    }
}

/// Records what `current` holds that is newer than the records: read once
/// (a restarted replica rewrites nothing already there), then in batches
/// of `accepted::BATCH` per transaction; a batch whose keys moved since
/// they were read (another replica wrote) falls back to one
/// compare-and-swap per record, and the records are read again next time.
async fn record_accepted(
    store: &mut crate::source::etcd::Store,
    prefix: &str,
    current: &reload::Accepted,
    done: &mut std::collections::BTreeMap<String, i64>,
    stored: &mut Option<std::collections::BTreeMap<String, crate::source::etcd::accepted::Stored>>,
) -> Result<(), crate::source::etcd::StoreError> {
    use crate::source::etcd::accepted;
    let mut records = match stored.take() {
        Some(s) => s,
        None => accepted::read_stored(store, prefix).await?,
    };
    done.retain(|k, _| current.contains_key(k));
    let mut todo: Vec<(&str, &accepted::Record)> = Vec::new();
    for (key, rec) in current.iter() {
        let recorded = records.get(key.as_str()).map(|s| s.record.revision);
        match done.get(key.as_str()).copied().max(recorded) {
            Some(r) if r >= rec.revision => {
                done.insert(key.clone(), r);
            }
            _ => todo.push((key.as_str(), rec)),
        }
    }
    let mut stale = false;
    for batch in todo.chunks(accepted::BATCH) {
        if !accepted::write_batch(store, prefix, batch, &mut records).await? {
            stale = true;
            for (key, rec) in batch {
                if accepted::write(store, prefix, key, rec).await? {
                    tracing::debug!(%key, revision = rec.revision, "etcd: recorded the accepted document");
                }
            }
        }
        for (key, rec) in batch {
            done.insert((*key).to_string(), rec.revision);
        }
    }
    if !todo.is_empty() {
        tracing::debug!(records = todo.len(), "etcd: recorded accepted documents");
    }
    if !stale {
        *stored = Some(records);
    }
    Ok(())
}

/// Whether some accepted document is not recorded yet.
fn failed_now(done: &std::collections::BTreeMap<String, i64>, current: &reload::Accepted) -> bool {
    current
        .iter()
        .any(|(k, r)| done.get(k).is_none_or(|d| *d < r.revision))
}

/// Streams the xDS port may refuse or reset on one connection because of
/// the client's errors before it ends the connection (h2's default, kept).
const MAX_LOCAL_ERROR_RESETS: usize = 1024;
/// Streams reset by the client before edgeplane answered them, net of
/// those answered since, on one connection (h2's default, kept).
const MAX_PENDING_ACCEPT_RESETS: usize = 20;
/// SETTINGS_MAX_HEADER_LIST_SIZE on the xDS port (hyper's default, kept).
const MAX_HEADER_LIST: usize = 16 * 1024;
/// A source checked and armed, before the first load.
enum Started {
    Dir(PathBuf, crate::source::watch::DirWatch),
    Etcd(
        crate::source::etcd::EtcdConfig,
        Box<crate::source::etcd::Store>,
    ),
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
