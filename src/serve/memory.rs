//! Giving freed memory back to the operating system.
//!
//! A reload allocates a whole translation (tens of MB at 10,000 routes)
//! and frees most of it moments later. glibc's allocator keeps freed pages
//! in its arenas, so without a nudge the process's resident size settles at
//! its peak, not at what it holds. `release_free_memory` asks glibc to
//! return free pages; elsewhere it does nothing.
//!
//! When: after the first load (the largest transient: every file parsed),
//! then only once loads have paused for `TRIM_QUIET`. Returning pages
//! after every reload made the next reload fault them back in: at 10,000
//! routes ~2,000 page faults, milliseconds of a save's latency, plus the
//! trim's own CPU beside Envoy's while Envoy applies the update.

/// Returns free heap pages to the OS (glibc `malloc_trim(0)`).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only walks glibc's own free lists; it takes
        // no pointers from us and is safe to call from any thread at any
        // time.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

/// `release_free_memory` on the blocking pool, not awaited: the trim walks
/// every arena (milliseconds on a large heap), and the next load, which an
/// edit may start the moment this one is published, must not wait for it.
/// One at a time: while one runs, another is not started (it would find
/// little more to return).
pub fn release_free_memory_soon() {
    use std::sync::atomic::{AtomicBool, Ordering};
    static RUNNING: AtomicBool = AtomicBool::new(false);
    if RUNNING.swap(true, Ordering::AcqRel) {
        return;
    }
    tokio::task::spawn_blocking(|| {
        release_free_memory();
        RUNNING.store(false, Ordering::Release);
    });
}

/// How long loads must pause before free memory is returned (after the
/// first load, which returns it at once).
pub const TRIM_QUIET: std::time::Duration = std::time::Duration::from_secs(5);

/// Called after each load: `release_free_memory_soon` now for the first,
/// else once no load has followed for `TRIM_QUIET` (one timer at a time,
/// pushed back by every load).
pub fn release_free_memory_after_load() {
    use std::sync::LazyLock;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::{Duration, Instant};
    static FIRST_DONE: AtomicBool = AtomicBool::new(false);
    static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);
    static LAST_LOAD_MS: AtomicU64 = AtomicU64::new(0);
    static TIMER: AtomicBool = AtomicBool::new(false);
    let now_ms = || u64::try_from(EPOCH.elapsed().as_millis()).unwrap_or(u64::MAX);
    if !FIRST_DONE.swap(true, Ordering::AcqRel) {
        release_free_memory_soon();
        return;
    }
    LAST_LOAD_MS.store(now_ms(), Ordering::Release);
    if TIMER.swap(true, Ordering::AcqRel) {
        return;
    }
    tokio::spawn(async move {
        let quiet = u64::try_from(TRIM_QUIET.as_millis()).unwrap_or(u64::MAX);
        loop {
            let since = now_ms().saturating_sub(LAST_LOAD_MS.load(Ordering::Acquire));
            if since >= quiet {
                break;
            }
            tokio::time::sleep(Duration::from_millis(quiet - since)).await;
        }
        TIMER.store(false, Ordering::Release);
        release_free_memory_soon();
    });
}
