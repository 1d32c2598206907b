//! Giving freed memory back to the operating system.
//!
//! A reload allocates a whole translation (tens of MB at 10,000 routes)
//! and frees most of it moments later. glibc's allocator keeps freed pages
//! in its arenas, so without a nudge the process's resident size settles at
//! its peak, not at what it holds. `release_free_memory` asks glibc to
//! return free pages after each reload; elsewhere it does nothing.

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
