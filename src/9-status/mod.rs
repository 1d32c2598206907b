//! The read model every edge renders: what the most recent load found,
//! what is served, which Envoys hold it, and what they said about it.
//!
//! `State` is the one handle the reload loop writes and the edges (the gRPC
//! status API, the admin HTTP server) read. `view` turns it into the status
//! report (`api::GetStatusResponse`): the translation's statuses merged with
//! the connected Envoys' ACKs and NACKs. That one typed report is what the
//! gRPC API sends, what `/status` serializes and what `edgeplane status
//! --output json` prints, so the three cannot disagree. `explain` reads the
//! routing tables back from a translation; `drain` diffs listeners and keeps
//! what the Envoys report about their connections.
//!
//! This module imports the pipeline and `xds`, never `serve` or `cli`.

pub mod api;
pub mod drain;
pub mod explain;
pub mod view;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;

use crate::diag::Diagnostic;
use crate::pipeline::reconcile::{Owners, ResourceStatus};
use crate::snapshot::{EncodeStats, Snapshot};
use crate::xds::registry::Registry;

/// What the most recent load found.
#[derive(Clone, Debug, Default)]
pub struct LoadState {
    pub diagnostics: Vec<Diagnostic>,
    pub last_load_failed: bool,
    /// Loads completed since start, valid or not.
    pub loads: u64,
    /// Every resource's status from the most recent load.
    pub statuses: Vec<ResourceStatus>,
    /// Envoy resource → owning manifests, for NACK attribution.
    pub owners: Owners,
    /// What the most recent load read, parsed and encoded, what it carried
    /// over from the one before, and how long it took.
    pub work: LoadWork,
    /// The routing tables of the served config (`explain`), for the status
    /// page and `/routes`: read back from the translation when first asked
    /// for, not at each reload (with 10,000 routes that is a decoding of the
    /// whole RouteConfiguration, which would compete for the cores with the
    /// Envoys taking the new config).
    pub routes: Arc<LazyRoutes>,
}

/// The routing tables of one published build, computed once, on demand.
#[derive(Debug, Default)]
pub struct LazyRoutes {
    generation: Option<String>,
    built: Option<(Arc<crate::translate::Output>, Arc<crate::model::Model>)>,
    tables: std::sync::OnceLock<Arc<ServedRoutes>>,
}

impl LazyRoutes {
    /// The tables of the build `generation` was published from (`None`:
    /// nothing valid published yet).
    pub fn new(
        generation: Option<String>,
        built: Option<(Arc<crate::translate::Output>, Arc<crate::model::Model>)>,
    ) -> Self {
        LazyRoutes {
            generation,
            built,
            tables: std::sync::OnceLock::new(),
        }
    }

    /// The tables, computed on the first call (a while for a large config:
    /// call it off the async workers).
    pub fn get(&self) -> Arc<ServedRoutes> {
        self.tables
            .get_or_init(|| {
                let Some((output, model)) = &self.built else {
                    return Arc::new(ServedRoutes::default());
                };
                let (listeners, error) = match explain::routes(output, model, None) {
                    Ok(listeners) => (listeners, None),
                    Err(e) => (Vec::new(), Some(e.to_string())),
                };
                Arc::new(ServedRoutes {
                    generation: self.generation.clone(),
                    listeners,
                    error,
                })
            })
            .clone()
    }
}

/// The effective routing tables of what is served.
#[derive(Clone, Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServedRoutes {
    /// The snapshot generation the tables describe (`None` before the
    /// first valid load, as `/status` says).
    pub generation: Option<String>,
    pub listeners: Vec<explain::ListenerRoutes>,
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
    /// Routes of parsed files taken from their file's previous parse
    /// (their text unchanged) rather than parsed again.
    pub routes_reused: usize,
    /// Envoy routes encoded by the translation, and those equal to one of
    /// the last translation whose encoding it took.
    pub envoy_routes: crate::translate::route_memo::MemoStats,
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

/// The state every edge reads; cheap to clone (handles only).
#[derive(Clone)]
pub struct State {
    /// The served snapshot (`None` before the first valid load).
    pub snapshots: watch::Receiver<Option<Arc<Snapshot>>>,
    pub load: Arc<Mutex<LoadState>>,
    /// The connected Envoys and what they ACKed and NACKed.
    pub registry: Arc<Registry>,
    /// Counts completed loads; status watchers wait on it.
    pub loads: watch::Receiver<u64>,
    /// Listener connection counts the Envoys stream to edgeplane.
    pub envoy_stats: Arc<drain::EnvoyStats>,
    /// The most recent listener drains.
    pub drains: Arc<drain::DrainLog>,
    /// Where the manifests come from.
    pub source: SourceInfo,
    /// The other replicas' published views (etcd source), by replica id.
    pub peers: Arc<Peers>,
}

/// Other replicas' nodes, kept current by the daemon (empty with a
/// directory source).
#[derive(Debug, Default)]
pub struct Peers(Mutex<std::collections::BTreeMap<String, api::ReplicaStatus>>);

impl Peers {
    /// Replaces every peer's view.
    pub fn set_all(&self, all: std::collections::BTreeMap<String, api::ReplicaStatus>) {
        *self.lock() = all;
    }

    /// Sets (`Some`) or removes (`None`) one peer's view.
    pub fn set(&self, id: &str, status: Option<api::ReplicaStatus>) {
        let mut g = self.lock();
        match status {
            Some(s) => {
                g.insert(id.to_string(), s);
            }
            None => {
                g.remove(id);
            }
        }
    }

    /// Every peer's nodes, each marked with its replica id.
    pub fn nodes(&self) -> Vec<api::ConnectedNode> {
        self.lock()
            .iter()
            .flat_map(|(id, s)| {
                s.nodes.iter().cloned().map(move |mut n| {
                    n.replica = id.clone();
                    n
                })
            })
            .collect()
    }

    /// Every peer's recent drains (their node ids name their Envoys).
    pub fn drains(&self) -> Vec<api::ListenerDrain> {
        self.lock()
            .values()
            .flat_map(|s| s.drains.iter().cloned())
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, std::collections::BTreeMap<String, api::ReplicaStatus>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The manifest source, as `/status` shows it.
#[derive(Clone, Debug)]
pub enum SourceInfo {
    Dir(std::path::PathBuf),
    Etcd {
        endpoints: Vec<String>,
        prefix: String,
        /// Kept current by the daemon from the etcd source's reports.
        connection: Arc<Mutex<SourceConnection>>,
    },
}

/// Whether the etcd source reaches etcd, and how far it has read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceConnection {
    pub connected: bool,
    /// When `connected` last changed.
    pub since: Option<std::time::SystemTime>,
    /// The store revision the served manifests were read at.
    pub revision: i64,
    /// The member in use (or last tried).
    pub endpoint: String,
    /// Why it is not connected.
    pub error: Option<String>,
}

impl State {
    /// The load state. A writer that panicked mid-update leaves a state
    /// that is still whole (every write replaces fields), so a poisoned
    /// lock is recovered, never skipped: the one policy for this lock.
    pub fn load(&self) -> MutexGuard<'_, LoadState> {
        self.load
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
