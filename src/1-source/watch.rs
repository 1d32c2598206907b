//! Tells when the config directory should be read again.
//!
//! File events (notify: inotify on Linux) are coalesced: after the first
//! event we wait until the directory has been quiet for `quiet`, but never
//! longer than `max_delay`, so an editor's save storm (write temp file,
//! rename over, chmod) becomes one reload. Once a save is visibly complete
//! (a manifest renamed into place or closed after writing, and no manifest
//! open for writing) the quiet period shrinks to `quiet_complete`: long
//! enough to gather the rest of a burst (a `git checkout`, a `cp -r`, whose
//! events come microseconds apart), short enough that a save is served in
//! milliseconds rather than after a fixed delay. Unless the last settle ran
//! into `max_delay` (a bulk write still going), a complete save also starts
//! the reload at once (`Trigger::Early`), the quiet period running
//! alongside it: that reload publishes only if no other event came while
//! it read and built (`Activity` counts them); else the settled trigger
//! that follows reads again and that load publishes, so a multi-file save
//! is still served as one change. Rather than trusting individual
//! events (renames, deletes and directory moves arrive in many shapes), each
//! reload re-reads the whole directory. An optional poll interval re-reads
//! periodically for filesystems that deliver no events (some Docker Desktop
//! mounts); unchanged content is detected later and costs no push.
//!
//! A manifest written in place (not saved by rename) may be read half
//! written. So while a `*.yaml`/`*.yml` has been written to and its writer
//! has not closed it yet, the reload waits for the close, up to
//! `writer_wait`. Linked directories are not watched, as they are not read
//! (`source::fs`): a link to `/` must not cost a watch on every directory of
//! the machine.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
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
    /// The quiet period once a save is visibly complete.
    pub quiet_complete: Duration,
    pub max_delay: Duration,
    /// How long a manifest still open for writing may hold a reload back
    /// (at least `max_delay`).
    pub writer_wait: Duration,
    pub poll: Option<Duration>,
}

impl Default for Debounce {
    fn default() -> Self {
        Debounce {
            quiet: Duration::from_millis(50),
            quiet_complete: Duration::from_millis(5),
            max_delay: Duration::from_millis(500),
            writer_wait: Duration::from_secs(2),
            poll: None,
        }
    }
}

/// Why the directory should be read again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// A save just completed (and no bulk write is going on): read now, but
    /// publish only if no other event comes before the load is built
    /// (`Activity`); if one does, the `Settled` trigger that follows reads
    /// again.
    Early,
    /// The events have settled (quiet period, maximum delay or writers).
    Settled,
    /// No event says so: a poll tick, or the directory was armed anew (it
    /// came back, or another one took its path).
    Forced,
}

/// How many file events that may change what a reload reads have been
/// seen, counted as they arrive (before the debouncer sees them). A reload
/// notes the count before it reads: if the count is the same later, the
/// read saw everything since.
#[derive(Clone, Debug, Default)]
pub struct Activity(Arc<AtomicU64>);

impl Activity {
    pub fn count(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    fn note(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// What one file event means to the debouncer.
#[derive(Debug, Default)]
struct Seen {
    /// Whether the event may have changed what a reload reads.
    change: bool,
    /// Manifests written to (and so, until closed, possibly half written).
    writing: Vec<PathBuf>,
    /// Manifests whose writer closed them, or that are gone.
    done: Vec<PathBuf>,
    /// Events may have been lost: forget the open writers.
    rescan: bool,
    /// A manifest is complete: renamed into place, or closed by its writer.
    complete: bool,
}

fn manifests(paths: &[PathBuf]) -> Vec<PathBuf> {
    paths
        .iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(super::fs::is_manifest_name)
        })
        .cloned()
        .collect()
}

fn classify(res: &notify::Result<notify::Event>) -> Option<Seen> {
    let ev = match res {
        Ok(ev) => ev,
        // Errors (e.g. queue overflow) mean "re-read": we may have missed
        // events.
        Err(e) => {
            tracing::warn!(error = %e, "file watcher error; re-reading the directory");
            return Some(Seen {
                change: true,
                rescan: true,
                ..Seen::default()
            });
        }
    };
    let seen = match ev.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => Seen {
            done: manifests(&ev.paths),
            complete: !manifests(&ev.paths).is_empty(),
            ..Seen::default()
        },
        // Opens and reads change nothing, and our own reload opens every
        // file: reacting to them would reload forever.
        EventKind::Access(_) => return None,
        // The pair of a rename's `From` and `To`, which come as events of
        // their own just before it: nothing new, and counted as activity
        // it would supersede the early load its `To` started.
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => return None,
        EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any) => Seen {
            change: true,
            writing: manifests(&ev.paths),
            ..Seen::default()
        },
        EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_)) => Seen {
            change: true,
            done: manifests(&ev.paths),
            complete: !manifests(&ev.paths).is_empty(),
            ..Seen::default()
        },
        _ => Seen {
            change: true,
            ..Seen::default()
        },
    };
    Some(Seen {
        rescan: ev.need_rescan(),
        ..seen
    })
}

/// Files written to and not closed yet.
#[derive(Default)]
struct Writers(BTreeSet<PathBuf>);

impl Writers {
    fn apply(&mut self, seen: &Seen) {
        if seen.rescan {
            self.0.clear();
        }
        self.0.extend(seen.writing.iter().cloned());
        for p in &seen.done {
            self.0.remove(p);
        }
    }
}

/// A directory watch, armed: every change from the moment `watch_dir`
/// returns is seen, so a caller that arms it before its first read of the
/// directory misses no edit made after that read began.
pub struct DirWatch {
    dir: PathBuf,
    debounce: Debounce,
    watcher: RecommendedWatcher,
    events: mpsc::UnboundedReceiver<Seen>,
    activity: Activity,
}

/// Arms a watch on `dir` (`DirWatch::run` then reports its changes).
pub fn watch_dir(dir: &Path, debounce: Debounce) -> Result<DirWatch, WatchError> {
    let (ev_tx, events) = mpsc::unbounded_channel::<Seen>();
    let activity = Activity::default();
    let counter = activity.clone();
    let handler = move |res: notify::Result<notify::Event>| {
        if let Some(seen) = classify(&res) {
            if seen.change {
                counter.note();
            }
            let _ = ev_tx.send(seen);
        }
    };
    let config = notify::Config::default().with_follow_symlinks(false);
    let mut watcher =
        RecommendedWatcher::new(handler, config).map_err(|source| WatchError::Watch {
            path: dir.to_path_buf(),
            source,
        })?;
    arm(&mut watcher, dir)?;
    Ok(DirWatch {
        dir: dir.to_path_buf(),
        debounce,
        watcher,
        events,
        activity,
    })
}

impl DirWatch {
    /// The count of change events, shared with the reloads.
    pub fn activity(&self) -> Activity {
        self.activity.clone()
    }

    /// Sends a `Trigger` on `out` whenever the directory should be re-read.
    /// Returns when `out` is closed.
    pub async fn run(self, out: mpsc::Sender<Trigger>) -> Result<(), WatchError> {
        let DirWatch {
            dir,
            debounce,
            mut watcher,
            events: mut ev_rx,
            activity: _,
        } = self;
        let dir = dir.as_path();
        let mut armed = true;
        let mut poll = debounce.poll.map(tokio::time::interval);
        // While the directory is missing (deleted, or moved away and not yet
        // back) there is nothing to watch: retry arming once a second.
        let mut rearm = tokio::time::interval(Duration::from_secs(1));
        let mut writers = Writers::default();
        // The last settle ran into its maximum delay: events kept coming
        // (a bulk write). Then no early trigger until a settle ends in
        // quiet: in the middle of a bulk write an early load would be
        // superseded again and again.
        let mut burst = false;
        // Which directory the watch is on (device, inode).
        let mut armed_id = dir_identity(dir);
        loop {
            let mut trigger = Trigger::Forced;
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
                    let Some(seen) = ev else {
                        return Ok(());
                    };
                    writers.apply(&seen);
                    if !seen.change {
                        // A close after a reload already read the writes.
                        continue;
                    }
                    let early = (!burst).then_some(&out);
                    let started = Instant::now();
                    if !settle(&mut ev_rx, &debounce, &mut writers, seen.complete, early).await {
                        return Ok(());
                    }
                    burst = started.elapsed() >= debounce.max_delay;
                    trigger = Trigger::Settled;
                }
                _ = tick => {}
                _ = retry => {
                    if !dir.is_dir() {
                        continue;
                    }
                }
            }
            // The directory itself may have been replaced (deleted and made
            // again, another moved in): then the watch is on the old one, and
            // the new one is armed. Only then: between unwatching and arming,
            // events are not delivered, so a re-arm must be followed by a
            // read that no earlier read stands for (`Forced`); re-arming
            // after every settle would lose an edit made in that window once
            // its early load had been read.
            let id = dir_identity(dir);
            if !armed || id.is_none() || id != armed_id {
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
                armed_id = id;
                trigger = Trigger::Forced;
            }
            if out.send(trigger).await.is_err() {
                return Ok(());
            }
        }
    }
}

/// Waits after a change until the directory has been quiet for
/// `debounce.quiet` (`quiet_complete` once a save has completed and no
/// manifest is open for writing), but no longer than `debounce.max_delay`,
/// or, while a manifest is still open for writing, until its writer closes
/// it, up to `debounce.writer_wait`. With `early`, a `Trigger::Early` goes
/// out on it the moment a save is complete and no manifest is open for
/// writing, and again for a later complete save, at most `MAX_EARLY`
/// times (if a trigger is already queued, that one will do). False when
/// the event source is gone.
async fn settle(
    ev_rx: &mut mpsc::UnboundedReceiver<Seen>,
    debounce: &Debounce,
    writers: &mut Writers,
    mut complete: bool,
    early: Option<&mpsc::Sender<Trigger>>,
) -> bool {
    // Early loads per settle: a few saves in a row each start one; a
    // `cp -r` of a hundred files does not start a hundred.
    const MAX_EARLY: usize = 4;
    let mut early_left = MAX_EARLY;
    let mut armed = true;
    let start = Instant::now();
    let deadline = start + debounce.max_delay;
    let hard = start + debounce.writer_wait.max(debounce.max_delay);
    loop {
        let limit = if writers.0.is_empty() { deadline } else { hard };
        let now = Instant::now();
        if now >= limit {
            break;
        }
        let quiet = if complete && writers.0.is_empty() {
            if armed
                && early_left > 0
                && let Some(out) = early
            {
                // Full: a trigger is queued, and it will read this too.
                let _ = out.try_send(Trigger::Early);
                armed = false;
                early_left -= 1;
            }
            debounce.quiet_complete
        } else {
            debounce.quiet
        };
        match tokio::time::timeout_at((now + quiet).min(limit), ev_rx.recv()).await {
            Ok(Some(seen)) => {
                writers.apply(&seen);
                complete |= seen.complete;
                // Another save completed (the next edit, or the next file
                // of a multi-file save): it may start a load of its own,
                // which supersedes one still building.
                armed |= seen.complete;
            }
            Ok(None) => return false,
            // Quiet, and no writer holds a manifest open.
            Err(_) if writers.0.is_empty() => break,
            Err(_) => {}
        }
    }
    if !writers.0.is_empty() {
        tracing::debug!(files = ?writers.0, "reading manifests still open for writing");
    }
    // What the reload reads now is what counts; later writes come as events.
    writers.0.clear();
    true
}

/// The directory's device and inode: a different value is a different
/// directory at the same path. `None` where unknown (then every settle
/// re-arms, as if the directory had been replaced).
fn dir_identity(dir: &Path) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(dir).ok().map(|m| (m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        None
    }
}

fn arm(w: &mut RecommendedWatcher, dir: &Path) -> Result<(), WatchError> {
    w.watch(dir, RecursiveMode::Recursive)
        .map_err(|source| WatchError::Watch {
            path: dir.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(p: &str) -> Seen {
        Seen {
            change: true,
            writing: vec![PathBuf::from(p)],
            ..Seen::default()
        }
    }

    fn closed(p: &str) -> Seen {
        Seen {
            done: vec![PathBuf::from(p)],
            complete: true,
            ..Seen::default()
        }
    }

    /// `n` completed saves 2 ms apart, then silence (the sender kept open).
    fn saves_every_2ms(tx: mpsc::UnboundedSender<Seen>, n: usize) {
        tokio::spawn(async move {
            for _ in 0..n {
                tokio::time::sleep(Duration::from_millis(2)).await;
                let _ = tx.send(Seen {
                    change: true,
                    complete: true,
                    ..Seen::default()
                });
            }
            tokio::time::sleep(Duration::from_secs(60)).await;
        });
    }

    #[test]
    fn events_are_classified() {
        use notify::event::{CreateKind, DataChange};
        let ev = |kind, p: &str| Ok(notify::Event::new(kind).add_path(PathBuf::from(p)));
        let modify = EventKind::Modify(ModifyKind::Data(DataChange::Content));
        let s = classify(&ev(modify, "/d/vs.yaml")).expect("a write counts");
        assert!(s.change);
        assert_eq!(s.writing, vec![PathBuf::from("/d/vs.yaml")]);
        // Writes to editor temp files are no manifests being written.
        let s = classify(&ev(modify, "/d/.vs.yaml.tmp")).expect("a write counts");
        assert!(s.change && s.writing.is_empty());
        let close = EventKind::Access(AccessKind::Close(AccessMode::Write));
        let s = classify(&ev(close, "/d/vs.yaml")).expect("a close is seen");
        assert!(!s.change && s.complete);
        assert_eq!(s.done, vec![PathBuf::from("/d/vs.yaml")]);
        let rename = EventKind::Modify(ModifyKind::Name(notify::event::RenameMode::To));
        let s = classify(&ev(rename, "/d/vs.yaml")).expect("a rename counts");
        assert!(s.change && s.complete);
        let s = classify(&ev(rename, "/d/.vs.yaml.tmp")).expect("a rename counts");
        assert!(
            s.change && !s.complete,
            "a temp file is no complete manifest"
        );
        // A rename's pair event repeats its `From` and `To`.
        let both = EventKind::Modify(ModifyKind::Name(RenameMode::Both));
        assert!(classify(&ev(both, "/d/vs.yaml")).is_none());
        let open = EventKind::Access(AccessKind::Open(AccessMode::Any));
        assert!(classify(&ev(open, "/d/vs.yaml")).is_none());
        let create = EventKind::Create(CreateKind::File);
        assert!(classify(&ev(create, "/d/x.yaml")).is_some_and(|s| s.change));
        let err = Err(notify::Error::generic("queue overflow"));
        assert!(classify(&err).is_some_and(|s| s.change && s.rescan));
    }

    #[tokio::test(start_paused = true)]
    async fn quiet_directory_reloads_after_the_quiet_period() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let d = Debounce::default();
        let mut w = Writers::default();
        let start = Instant::now();
        assert!(settle(&mut rx, &d, &mut w, false, None).await);
        assert_eq!(start.elapsed(), d.quiet);
        drop(tx);
    }

    #[tokio::test(start_paused = true)]
    async fn a_completed_save_reloads_after_the_short_quiet_period() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let d = Debounce::default();
        let mut w = Writers::default();
        let start = Instant::now();
        assert!(settle(&mut rx, &d, &mut w, true, None).await);
        assert_eq!(start.elapsed(), d.quiet_complete);
        // A burst after the completed save is still gathered: each event
        // restarts the (short) quiet period.
        let start = Instant::now();
        saves_every_2ms(tx, 3);
        assert!(settle(&mut rx, &d, &mut w, true, None).await);
        assert_eq!(start.elapsed(), Duration::from_millis(6) + d.quiet_complete);
    }

    #[tokio::test(start_paused = true)]
    async fn a_completed_save_triggers_an_early_load_at_once_then_settles() {
        let (_tx, mut rx) = mpsc::unbounded_channel();
        let (out, mut triggers) = mpsc::channel(1);
        let d = Debounce::default();
        let mut w = Writers::default();
        let start = Instant::now();
        let settled =
            tokio::spawn(async move { settle(&mut rx, &d, &mut w, true, Some(&out)).await });
        assert_eq!(triggers.recv().await, Some(Trigger::Early));
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "the early trigger waits for nothing"
        );
        assert!(matches!(settled.await, Ok(true)));
        assert_eq!(
            start.elapsed(),
            d.quiet_complete,
            "the settle still waits its quiet period"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_unfinished_write_triggers_no_early_load_until_its_close() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (out, mut triggers) = mpsc::channel(1);
        let d = Debounce::default();
        let mut w = Writers::default();
        w.apply(&written("/d/vs.yaml"));
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let _ = tx.send(closed("/d/vs.yaml"));
            tokio::time::sleep(Duration::from_secs(60)).await;
        });
        let start = Instant::now();
        let settled =
            tokio::spawn(async move { settle(&mut rx, &d, &mut w, false, Some(&out)).await });
        assert_eq!(triggers.recv().await, Some(Trigger::Early));
        assert_eq!(
            start.elapsed(),
            Duration::from_millis(20),
            "early once the writer closed"
        );
        assert!(matches!(settled.await, Ok(true)));
        assert!(triggers.try_recv().is_err(), "one early trigger per save");
    }

    #[tokio::test(start_paused = true)]
    async fn each_save_of_a_quick_series_triggers_an_early_load_up_to_a_bound() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (out, mut triggers) = mpsc::channel(1);
        let d = Debounce::default();
        let mut w = Writers::default();
        saves_every_2ms(tx, 10);
        let settled =
            tokio::spawn(async move { settle(&mut rx, &d, &mut w, true, Some(&out)).await });
        let mut early = 0;
        while let Some(t) = triggers.recv().await {
            assert_eq!(t, Trigger::Early);
            early += 1;
        }
        assert!(matches!(settled.await, Ok(true)));
        assert_eq!(
            early, 4,
            "the first save and the next three; the rest wait for the settle"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_completed_save_with_another_manifest_open_waits_for_it() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let d = Debounce::default();
        let mut w = Writers::default();
        w.apply(&written("/d/other.yaml"));
        let start = Instant::now();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let _ = tx.send(closed("/d/other.yaml"));
            tokio::time::sleep(Duration::from_secs(60)).await;
        });
        assert!(settle(&mut rx, &d, &mut w, true, None).await);
        assert_eq!(
            start.elapsed(),
            Duration::from_millis(300) + d.quiet_complete
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_writer_holds_the_reload_until_it_closes() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let d = Debounce::default();
        let mut w = Writers::default();
        w.apply(&written("/d/vs.yaml"));
        let start = Instant::now();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1200)).await;
            let _ = tx.send(written("/d/vs.yaml"));
            let _ = tx.send(closed("/d/vs.yaml"));
            tokio::time::sleep(Duration::from_secs(60)).await;
        });
        assert!(settle(&mut rx, &d, &mut w, false, None).await);
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(1200) && took < Duration::from_millis(1300),
            "{took:?}"
        );
        assert!(w.0.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_writer_that_never_closes_delays_at_most_writer_wait() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let d = Debounce::default();
        let mut w = Writers::default();
        w.apply(&written("/d/vs.yaml"));
        let start = Instant::now();
        assert!(settle(&mut rx, &d, &mut w, false, None).await);
        assert_eq!(start.elapsed(), d.writer_wait);
        // A lost close (queue overflow) forgets the writer too.
        w.apply(&written("/d/vs.yaml"));
        w.apply(&Seen {
            change: true,
            rescan: true,
            ..Seen::default()
        });
        assert!(w.0.is_empty());
        drop(tx);
    }
}
