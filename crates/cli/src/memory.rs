//! Allocator tuning. A training step frees and reallocates the same activation buffers every
//! step. By default glibc's malloc hands freed memory back to the OS and then page-faults it in
//! (and zeroes it) again on the next step: a tenth of a step on the default config, a fifth at
//! nanoGPT's batch of 64 (docs/performance.md). Keeping it removes that cost.

/// Tells glibc's malloc to keep freed memory for reuse. Call once, in `main`, before any
/// thread starts.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn keep_freed_memory() {
    // SAFETY: mallopt only changes malloc's tuning parameters, and runs before any thread exists.
    unsafe {
        // One arena for every thread. A thread's own arena grows in heaps of at most 64 MiB and
        // maps any bigger block (an attention pattern at batch 64 is 100 MB) on its own, even
        // with M_MMAP_MAX at 0, then unmaps it when freed.
        libc::mallopt(libc::M_ARENA_MAX, 1);
        // No block gets its own mapping, so no block is unmapped on free.
        libc::mallopt(libc::M_MMAP_MAX, 0);
        // Never shrink the heap (-1 turns trimming off; any positive threshold, even 2 GiB, is
        // crossed at the end of a big step).
        libc::mallopt(libc::M_TRIM_THRESHOLD, -1);
        // Grow the heap in big steps: fewer system calls while the first step finds its size.
        libc::mallopt(libc::M_TOP_PAD, 256 << 20);
    }
}

/// Other allocators manage freed memory well enough on their own.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn keep_freed_memory() {}

/// This process's minor page faults so far and its peak resident memory in bytes.
#[cfg(target_os = "linux")]
pub fn usage() -> Option<(u64, u64)> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a `rusage` into the pointer it is given, which is valid.
    let usage = unsafe {
        if libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) != 0 {
            return None;
        }
        usage.assume_init()
    };
    // Linux reports the peak in KiB.
    Some((usage.ru_minflt as u64, usage.ru_maxrss as u64 * 1024))
}

/// Not measured off Linux.
#[cfg(not(target_os = "linux"))]
pub fn usage() -> Option<(u64, u64)> {
    None
}
