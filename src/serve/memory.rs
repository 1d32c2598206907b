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
