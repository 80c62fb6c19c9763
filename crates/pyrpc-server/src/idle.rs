//! Gives memory back to the operating system when the server goes idle
//! after load (issue 10, point 7; decision 0091).
//!
//! glibc's malloc keeps freed memory in its arenas: after a burst of calls
//! carrying megabytes each, a server's resident size stayed several times
//! its idle size before the burst, although nothing was in use. Once a
//! second has passed without a call finishing and none is running,
//! `malloc_trim(0)` returns the free pages of every arena. That costs a few
//! milliseconds, once per burst, never while calls are served.

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
