//! Gives memory back to the operating system when the server goes idle
//! after load (issue 10, point 7; decision 0091).
//!
//! glibc's malloc kept memory after load: freeing a large `mmap`ed buffer
//! raises its mmap threshold (up to 32 MiB) and its trim threshold to twice
//! that, so later megabyte buffers come from the thread arenas, whose free
//! tops of up to 64 MiB are never given back (`malloc_trim` does not shrink
//! a thread arena's top). A server that had served 1-8 MiB payloads stayed
//! at several times its idle size. Two measures:
//!
//! * [`tune_allocator`], once per process when a server starts: a fixed
//!   mmap threshold of 1 MiB (which also turns off the dynamic thresholds),
//!   so buffers of a megabyte or more are mapped and unmapped on their own
//!   and arenas trim their tops past glibc's default 128 KiB.
//! * [`run`]: once a second has passed without a call finishing and none is
//!   running, `malloc_trim(0)` returns the free pages inside every arena
//!   (fragmentation the load left). A few milliseconds, once per burst,
//!   never while calls are served.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::MissedTickBehavior;

use crate::server::Shared;

/// How long the server must be quiet before memory is given back.
pub(crate) const IDLE_AFTER: Duration = Duration::from_secs(1);

/// Runs until the server closes.
pub(crate) async fn run(shared: Arc<Shared>) {
    let mut ticks = tokio::time::interval(IDLE_AFTER);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut seen = shared.stats.calls();
    let mut busy = false;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shared.close.cancelled() => break,
        }
        let calls = shared.stats.calls();
        if calls != seen || shared.stats.in_flight() > 0 {
            seen = calls;
            busy = true;
        } else if busy {
            busy = false;
            let freed = tokio::task::spawn_blocking(release_free_memory)
                .await
                .unwrap_or(false);
            tracing::debug!(freed, "idle after load: gave free memory back");
        }
    }
}

/// Fixes glibc's mmap threshold at [`MMAP_THRESHOLD`], once per process.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub(crate) fn tune_allocator() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: mallopt only changes allocator parameters (under its own
        // lock); M_MMAP_THRESHOLD with a value below the 32 MiB maximum is
        // accepted on every glibc.
        let ok = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) } == 1;
        tracing::debug!(ok, "malloc: mmap threshold fixed at 1 MiB");
    });
}

/// Other allocators: nothing to tune.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn tune_allocator() {}

/// Allocations of at least this many bytes are mapped on their own and
/// unmapped when freed.
#[cfg_attr(not(all(target_os = "linux", target_env = "gnu")), allow(dead_code))]
const MMAP_THRESHOLD: i32 = 1 << 20;

/// Returns the allocator's free memory to the OS; whether any was.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub(crate) fn release_free_memory() -> bool {
    // SAFETY: malloc_trim has no preconditions; it takes the arena locks
    // itself and only releases pages no allocation uses.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Other allocators give memory back by themselves (or not at all).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn release_free_memory() -> bool {
    false
}
