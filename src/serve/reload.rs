//! The reload loop's one step: read the directory (only changed files) or
//! take what the etcd source listed,
//! reconcile (parse, validate, keep each rejected resource's last accepted
//! version, translate, encode only what changed), log every diagnostic
//! with file, line, column and resource, record the result in the status
//! state, and publish the snapshot when it differs from the one served
//! (a load that changes nothing served sends Envoy nothing at all). After
//! a publish: the drains it causes, and the routing tables of `/routes`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;

use super::metrics::{Metrics, ReloadResult};
use crate::diag::Severity;
use crate::pipeline::reconcile::{self, Reconciler, Serving};
use crate::snapshot::{PUSH_ORDER, Snapshot};
use crate::source::FileCache;
use crate::status::{LazyRoutes, LoadWork, State};

/// What the reload loop keeps between loads: the files' texts, the last
/// accepted resources and the last build.
#[derive(Default)]
pub struct Loader {
    pub files: FileCache,
    pub reconciler: Reconciler,
}

/// Where a load's results go.
pub(super) struct Publisher {
    pub snapshots: watch::Sender<Option<Arc<Snapshot>>>,
    pub state: State,
    pub metrics: Arc<Metrics>,
    /// etcd source only: the documents this load accepted, by manifest key,
    /// for the shared accepted record (`accepted_writer`).
    pub accepted: Option<watch::Sender<Arc<Accepted>>>,
}

/// What one load accepted: manifest key → the text and its mod_revision.
pub(super) type Accepted =
    std::collections::BTreeMap<String, crate::source::etcd::accepted::Record>;

/// What a load reads.
#[derive(Clone)]
pub(super) enum Input {
    /// The config directory (only changed files are read).
    Dir(PathBuf),
    /// The manifests the etcd source listed and watched.
    Etcd(Arc<crate::source::etcd::Update>),
}

/// Loads the manifests once and publishes the snapshot if it is valid and
/// different from the one served.
/// A load started early (`watch::Trigger::Early`): it publishes only if no
/// file event came after `read_at` while it read and built.
pub(super) struct Early {
    pub activity: crate::source::watch::Activity,
    pub read_at: u64,
}

/// Reads, builds and publishes; false when the load was early and
/// superseded (more events came: the settled trigger reads again), which
/// then changed nothing served or shown.
pub(super) async fn reload(
    input: Input,
    loader: &mut Loader,
    publish: &Publisher,
    early: Option<Early>,
) -> bool {
    let Publisher {
        snapshots: snap_tx,
        state,
        metrics,
        accepted: accepted_tx,
    } = publish;
    let started = Instant::now();
    // Reading is blocking I/O and a large config takes a while to build:
    // both run off the async workers. The loader moves in and back out.
    // What a panic must not lose: the last accepted version of every
    // resource (a later load with a broken resource serves it) and the
    // last build; the loader itself is lost with the job.
    let keep = loader.reconciler.checkpoint();
    let mut l = std::mem::take(loader);
    let job = tokio::task::spawn_blocking(move || {
        let mut revisions = None;
        let read = match input {
            Input::Dir(d) => crate::source::load_dir_cached(&d, &mut l.files),
            Input::Etcd(u) => {
                // Another replica's last-known-good, for resources this one
                // never accepted itself.
                let adopted = l.reconciler.adopt(&u.priors);
                if adopted > 0 {
                    tracing::info!(
                        adopted,
                        "took last accepted versions from the shared accepted record"
                    );
                }
                revisions = Some(u.clone());
                crate::source::DirRead {
                    files: u.files.clone(),
                    diagnostics: u.diagnostics.clone(),
                    stats: crate::source::ReadStats {
                        read: u.changed,
                        reused: u.files.len().saturating_sub(u.changed),
                    },
                }
            }
        };
        let read_time = started.elapsed();
        let mut load = l.reconciler.reconcile(read.files, read.diagnostics);
        #[cfg(test)]
        test_hook::maybe_panic();
        // Kept only to explain the routes once the snapshot is published.
        let built = load.output.take().zip(load.model.take());
        let accepted = revisions.map(|u| accepted_of(&u, &load));
        (l, read.stats, read_time, load, built, accepted)
    });
    let (l, read_stats, read_time, mut load, built, accepted) = match job.await {
        Ok(r) => r,
        Err(e) => {
            // The caches went with the panic; the next load re-reads.
            *loader = Loader {
                files: FileCache::default(),
                reconciler: keep,
            };
            metrics.record_panic();
            tracing::error!(error = %e, "manifest load panicked; the served config and every resource's last accepted version are kept");
            return true;
        }
    };
    *loader = l;
    if let Some(e) = early
        && e.activity.count() != e.read_at
    {
        // Its caches keep what it read and parsed (content-keyed: the next
        // load reuses them); what it built is dropped unpublished.
        tracing::debug!(
            took_ms = started.elapsed().as_millis() as u64,
            "early load superseded by more file events; the settled load publishes"
        );
        return false;
    }
    if let (Some(tx), Some(a)) = (accepted_tx, accepted)
        && load.snapshot.is_some()
    {
        tx.send_replace(Arc::new(a));
    }
    let total = started.elapsed();
    let work = LoadWork {
        files_read: read_stats.read,
        files_reused: read_stats.reused,
        files_parsed: load.work.parse.parsed,
        parses_reused: load.work.parse.reused,
        routes_reused: load.work.parse.routes_reused,
        envoy_routes: load.work.routes,
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
        .filter(|s| s.state == reconcile::State::Rejected)
    {
        let serving = match st.serving {
            Serving::LastAccepted => "its last accepted version stays served",
            Serving::Nothing => "it is not served",
            Serving::Current => "served",
        };
        tracing::warn!(resource = %st.id, file = %st.file.display(), "rejected; {serving}");
    }
    let failed = load.has_errors();
    let errors = load.diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = load.diagnostics.len() - errors;
    // What this load replaces is freed once it is published (a large
    // config's owners index, model and route encodings take a millisecond
    // or more to free), off the async workers.
    let replaced = {
        let mut s = state.load();
        // Moved, not copied: nothing below needs them, and the owners
        // index of a large config is big.
        let diagnostics =
            std::mem::replace(&mut s.diagnostics, std::mem::take(&mut load.diagnostics));
        let statuses = std::mem::replace(&mut s.statuses, std::mem::take(&mut load.statuses));
        let owners = load
            .snapshot
            .is_some()
            .then(|| std::mem::replace(&mut s.owners, std::mem::take(&mut load.owners)));
        s.last_load_failed = failed;
        s.loads += 1;
        s.work = work.clone();
        (
            diagnostics,
            statuses,
            owners,
            std::mem::take(&mut load.retired),
        )
    };
    let Some(snapshot) = load.snapshot else {
        metrics.record_load(ReloadResult::Rejected, errors, warnings, work.build);
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
        return true;
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
    metrics.record_load(
        if failed {
            ReloadResult::Rejected
        } else if changed {
            ReloadResult::Published
        } else {
            ReloadResult::Unchanged
        },
        errors,
        warnings,
        work.build,
    );
    if changed {
        metrics.record_publish(&snapshot);
        // Gateway-level edits drain: say which listeners, on which Envoys,
        // with how many connections.
        if let Some(previous) = previous {
            super::drains::report(
                &previous,
                &snapshot,
                &state.registry.list(),
                &state.envoy_stats,
                &state.drains,
                metrics,
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
    explain_served(built, generation.to_string(), state).await;
    tokio::task::spawn_blocking(move || drop(replaced));
    super::memory::release_free_memory_after_load();
    true
}

/// The documents of `u` this load accepted and serves as they are in the
/// store, with their keys' mod_revisions.
fn accepted_of(u: &crate::source::etcd::Update, load: &reconcile::Reconciled) -> Accepted {
    use crate::source::etcd::accepted::Record;
    let texts: std::collections::BTreeMap<&std::path::Path, &str> = u
        .files
        .iter()
        .map(|f| (f.path.as_path(), f.text.as_str()))
        .collect();
    load.statuses
        .iter()
        .filter(|s| {
            matches!(
                s.state,
                reconcile::State::Accepted | reconcile::State::Warning
            ) && s.serving == Serving::Current
        })
        .filter_map(|s| {
            let key = s
                .file
                .to_str()?
                .strip_prefix(crate::source::etcd::layout::PATH_SCHEME)?;
            let revision = *u.revisions.get(&s.file)?;
            let text = texts.get(s.file.as_path())?;
            Some((
                key.to_string(),
                Record {
                    revision,
                    text: (*text).to_string(),
                },
            ))
        })
        .collect()
}

/// `reload`, surviving a panic in its async part too (publishing,
/// reporting): the loader is then already the new one, so nothing is
/// lost; the panic is logged and counted, and the loop goes on. False
/// only for an early load that was superseded (see `reload`).
pub(super) async fn reload_guarded(
    input: Input,
    loader: &mut Loader,
    publish: &Publisher,
    early: Option<Early>,
) -> bool {
    use futures_util::FutureExt;
    let r = std::panic::AssertUnwindSafe(reload(input, loader, publish, early))
        .catch_unwind()
        .await;
    match r {
        Ok(counted) => counted,
        Err(_) => {
            publish.metrics.record_panic();
            tracing::error!("publishing a load panicked; serving on");
            true
        }
    }
}

/// Records the published build for its routing tables (read back when
/// first asked for, `status::LazyRoutes`), then gives what the build
/// allocated back to the OS now rather than at the next peak (off the async
/// workers).
async fn explain_served(
    built: Option<(Arc<crate::translate::Output>, Arc<crate::model::Model>)>,
    generation: String,
    state: &State,
) {
    let job = tokio::task::spawn_blocking(move || {
        // The tables need the listeners and the routes only: the clusters
        // (one per Upstream) and secrets are let go now.
        built.map(|(output, model)| {
            let slim: crate::translate::Output = output
                .iter()
                .map(|(proxy, res)| {
                    let res = crate::translate::ProxyResources {
                        listeners: res.listeners.clone(),
                        route_configs: res.route_configs.clone(),
                        ..Default::default()
                    };
                    (proxy.clone(), res)
                })
                .collect();
            drop(output);
            (Arc::new(slim), model)
        })
    });
    match job.await {
        Ok(Some(kept)) => {
            state.load().routes = Arc::new(LazyRoutes::new(Some(generation), Some(kept)));
        }
        Ok(None) => {}
        Err(e) => tracing::error!(error = %e, "keeping the served routes panicked"),
    }
}

#[cfg(test)]
mod test_hook {
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Set by a test: the next load panics after reconciling (so the
    /// reconciler has already changed).
    pub static PANIC_IN_NEXT_LOAD: AtomicBool = AtomicBool::new(false);

    pub fn maybe_panic() {
        if PANIC_IN_NEXT_LOAD.swap(false, Ordering::SeqCst) {
            panic!("injected reload panic (test)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    const GATEWAY: &str = "apiVersion: gateway.solo.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: gloo-system}\nspec:\n  bindAddress: '::'\n  bindPort: 8080\n  httpGateway: {}\n";
    const UPSTREAM: &str = "apiVersion: gloo.solo.io/v1\nkind: Upstream\nmetadata: {name: be, namespace: gloo-system}\nspec:\n  static:\n    hosts: [{addr: 127.0.0.1, port: 9000}]\n";

    fn vs(prefix: &str) -> String {
        format!(
            "apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata: {{name: app, namespace: gloo-system}}\nspec:\n  virtualHost:\n    domains: ['*']\n    routes:\n    - matchers: [{{prefix: {prefix}}}]\n      routeAction: {{single: {{upstream: {{name: be, namespace: gloo-system}}}}}}\n"
        )
    }

    fn publisher() -> Publisher {
        let (snapshots, snap_rx) = watch::channel(None);
        let (_loads_tx, loads) = watch::channel(0u64);
        let metrics = Arc::new(Metrics::new());
        Publisher {
            snapshots,
            state: State {
                snapshots: snap_rx,
                load: Arc::default(),
                registry: Arc::default(),
                loads,
                envoy_stats: Arc::default(),
                drains: Arc::default(),
                source: crate::status::SourceInfo::Dir(std::path::PathBuf::new()),
                peers: Arc::default(),
            },
            metrics,
            accepted: None,
        }
    }

    #[tokio::test]
    async fn a_panicking_load_keeps_the_served_config_and_last_accepted_versions() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write("gw.yaml", GATEWAY);
        write("up.yaml", UPSTREAM);
        write("vs.yaml", &vs("/one"));
        let p = publisher();
        let mut loader = Loader::default();
        reload(Input::Dir(dir.path().to_path_buf()), &mut loader, &p, None).await;
        let good = p.snapshots.borrow().clone().expect("first load publishes");
        assert!(!good.proxies.is_empty());

        // An edit whose load panics: nothing changes, the panic is counted.
        write("vs.yaml", &vs("/two"));
        test_hook::PANIC_IN_NEXT_LOAD.store(true, Ordering::SeqCst);
        reload_guarded(Input::Dir(dir.path().to_path_buf()), &mut loader, &p, None).await;
        assert_eq!(p.snapshots.borrow().as_deref(), Some(&*good));
        assert!(
            p.metrics
                .render()
                .contains("edgeplane_reloads_total{result=\"panicked\"} 1"),
            "{}",
            p.metrics.render()
        );

        // Now the VirtualService is broken: its last accepted version (from
        // before the panic) is still the one served.
        write("vs.yaml", &vs("/two").replace("upstream:", "upstreamm:"));
        reload_guarded(Input::Dir(dir.path().to_path_buf()), &mut loader, &p, None).await;
        let now = p.snapshots.borrow().clone().expect("still serving");
        assert_eq!(
            &*now, &*good,
            "the rejected VirtualService's last good version is served"
        );
        let statuses = p.state.load().statuses.clone();
        let app = statuses
            .iter()
            .find(|s| s.id.to_string().contains("app"))
            .expect("a status for the VirtualService");
        assert_eq!(app.state, reconcile::State::Rejected);
        assert!(
            matches!(app.serving, Serving::LastAccepted),
            "{:?}",
            app.serving
        );

        // And a good edit after all that publishes.
        write("vs.yaml", &vs("/three"));
        reload_guarded(Input::Dir(dir.path().to_path_buf()), &mut loader, &p, None).await;
        assert_ne!(p.snapshots.borrow().as_deref(), Some(&*good));
    }
}
