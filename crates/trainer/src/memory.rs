//! Allocator tuning. A training step frees and reallocates the same activation buffers every
//! step. By default glibc's malloc gives freed memory at the top of the heap back to the OS and
//! then page-faults it in (and zeroes it) again on the next step: about a tenth of a step in the
//! profile (docs/performance.md). Keeping it, with headroom, removes that cost.

/// Tells glibc's malloc to keep freed memory for reuse. Call once, at the start of `main`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn keep_freed_memory() {
    // SAFETY: mallopt only changes malloc's tuning parameters, and runs before any thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TOP_PAD, 256 << 20);
    }
}

/// Other allocators manage freed memory well enough on their own.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn keep_freed_memory() {}
