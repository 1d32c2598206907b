//! Tells when the config directory should be read again.
//!
//! File events (notify: inotify on Linux) are coalesced: after the first
//! event we wait until the directory has been quiet for `quiet`, but never
//! longer than `max_delay`, so an editor's save storm (write temp file,
//! rename over, chmod) becomes one reload. Rather than trusting individual
//! events (renames, deletes and directory moves arrive in many shapes), each
//! reload re-reads the whole directory. An optional poll interval re-reads
//! periodically for filesystems that deliver no events (some Docker Desktop
//! mounts); unchanged content is detected later and costs no push.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot watch {path}: {source}")]
    Watch {
        path: PathBuf,
        #[source]
        source: notify::Error,
    },
}

/// Debounce settings.
#[derive(Clone, Copy, Debug)]
pub struct Debounce {
    pub quiet: Duration,
    pub max_delay: Duration,
    pub poll: Option<Duration>,
}

impl Default for Debounce {
    fn default() -> Self {
        Debounce {
            quiet: Duration::from_millis(50),
            max_delay: Duration::from_millis(500),
            poll: None,
        }
    }
}

/// Watches `dir`; sends `()` on `out` whenever it should be re-read.
/// Returns when `out` is closed.
pub async fn watch_dir(
    dir: &Path,
    debounce: Debounce,
    out: mpsc::Sender<()>,
) -> Result<(), WatchError> {
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        match &res {
            // Opens and reads change nothing, and our own reload opens every
            // file: reacting to them would reload forever.
            Ok(ev) if matches!(ev.kind, notify::EventKind::Access(_)) => return,
            Ok(_) => {}
            // Errors (e.g. queue overflow) mean "re-read": we may have missed
            // events.
            Err(e) => tracing::warn!(error = %e, "file watcher error; re-reading the directory"),
        }
        let _ = ev_tx.send(());
    })
    .map_err(|source| WatchError::Watch {
        path: dir.to_path_buf(),
        source,
    })?;
    arm(&mut watcher, dir)?;
    let mut armed = true;
    let mut poll = debounce.poll.map(tokio::time::interval);
    // While the directory is missing (deleted, or moved away and not yet
    // back) there is nothing to watch: retry arming once a second.
    let mut rearm = tokio::time::interval(Duration::from_secs(1));
    loop {
        let tick = async {
            match poll.as_mut() {
                Some(p) => {
                    p.tick().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        let retry = async {
            if armed {
                std::future::pending::<()>().await
            } else {
                rearm.tick().await;
            }
        };
        tokio::select! {
            ev = ev_rx.recv() => {
                if ev.is_none() {
                    return Ok(());
                }
                let deadline = Instant::now() + debounce.max_delay;
                // Drain until quiet or the deadline.
                loop {
                    let quiet_until = (Instant::now() + debounce.quiet).min(deadline);
                    match tokio::time::timeout_at(quiet_until, ev_rx.recv()).await {
                        Ok(Some(())) if Instant::now() < deadline => continue,
                        _ => break,
                    }
                }
            }
            _ = tick => {}
            _ = retry => {
                if !dir.is_dir() {
                    continue;
                }
            }
        }
        // The directory itself may have been replaced (moved away and back):
        // re-arming is cheap and makes sure the new one is watched.
        let _ = watcher.unwatch(dir);
        match arm(&mut watcher, dir) {
            Ok(()) => {
                if !armed {
                    tracing::info!(dir = %dir.display(), "config directory is back; watching it again");
                }
                armed = true;
            }
            Err(e) => {
                if armed {
                    tracing::warn!(error = %e, "config directory not watchable; retrying every second");
                }
                armed = false;
            }
        }
        if out.send(()).await.is_err() {
            return Ok(());
        }
    }
}

fn arm(w: &mut RecommendedWatcher, dir: &Path) -> Result<(), WatchError> {
    w.watch(dir, RecursiveMode::Recursive)
        .map_err(|source| WatchError::Watch {
            path: dir.to_path_buf(),
            source,
        })
}
