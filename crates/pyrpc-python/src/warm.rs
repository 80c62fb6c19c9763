//! Memory kept warm while a Python server runs, and given back when it goes
//! quiet (issue 10, decision 0025).
//!
//! A server sees the same shapes of values call after call, and each big one
//! used to be built in memory fresh from the kernel: the interpreter unmaps
//! its object arenas as soon as they empty, and glibc unmaps or trims its
//! megabyte buffers (list item arrays, dict tables, frames) when they are
//! freed (decision 0091 made it do so, for memory after load). The next call
//! faulted all of it in again: for a million-int echo, 13,000 page faults
//! and a third of the server's CPU. While a server runs, both allocators
//! keep what they free ([`arenas`], [`heap`]).
//!
//! The load this is for is big values, so that is what is watched: values
//! of [`BIG`] bytes or more decoded or encoded, and arenas reused ([`moved`]).
//! Once a whole second passes without any, after some, everything kept is
//! given back ([`release`]), however many small calls (health checks) still
//! come in; and when the last server stops. So 0091's idle-memory goal
//! still holds.

mod arenas;
mod heap;

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use pyo3::prelude::*;

/// Values at least this big count as the load warm memory is kept for.
pub(crate) const BIG: usize = 64 << 10;

/// How long without big values before kept memory is given back.
const QUIET: Duration = Duration::from_secs(1);

/// Servers running in this process.
static SERVING: AtomicUsize = AtomicUsize::new(0);

/// Bytes of big values moved (and arenas reused) since the process started.
static MOVED: AtomicU64 = AtomicU64::new(0);

/// The process whose watcher runs (a forked child starts its own).
static WATCHER_PID: AtomicU32 = AtomicU32::new(0);

/// A running server's claim on warm memory: taken when it starts, dropped
/// when it stops (the last one gives everything back).
pub(crate) struct Serving(());

/// Counts a server in; the first one starts keeping memory. Call with the
/// GIL held, after the server is bound (its allocator tuning, 0091, is done
/// by then, and this overrides it while servers run).
///
/// # Errors
///
/// As [`crate::runtime::get`] (the watcher runs on the shared runtime).
pub(crate) fn serve(py: Python<'_>) -> PyResult<Serving> {
    let pid = crate::runtime::current_pid();
    if WATCHER_PID.swap(pid, Ordering::AcqRel) != pid {
        crate::runtime::get()?.spawn(watch());
    }
    if SERVING.fetch_add(1, Ordering::AcqRel) == 0 {
        let arenas = arenas::keep(py);
        let heap = heap::start();
        tracing::debug!(arenas, heap, "memory kept warm while the server runs");
    }
    Ok(Serving(()))
}

impl Drop for Serving {
    fn drop(&mut self) {
        if SERVING.fetch_sub(1, Ordering::AcqRel) == 1 {
            arenas::stop();
            heap::stop();
        }
    }
}

/// In a child just forked (from `runtime`'s `pthread_atfork` handler): the
/// parent's servers are not running here, so nothing is kept for them (a
/// `multiprocessing` child of a server process would otherwise hold its
/// freed memory for good, with no watcher to give it back). Atomics and
/// `mallopt` only: glibc has made its allocator usable in the child before
/// fork handlers run.
pub(crate) fn after_fork_in_child() {
    if SERVING.swap(0, Ordering::AcqRel) > 0 {
        arenas::stop_keeping();
        heap::forget();
    }
    WATCHER_PID.store(0, Ordering::Release);
}

/// Counts `n` bytes of a value decoded or encoded (only big ones count).
#[inline]
pub(crate) fn moved(n: usize) {
    if n >= BIG {
        MOVED.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Gives back everything kept: the arenas, the arenas' tops, and (through
/// `malloc_trim`) the free pages inside every arena.
pub(crate) fn release() {
    arenas::release();
    heap::trim();
}

/// Once a second: after a second with big values, a second without any
/// gives kept memory back. One per process, for its life.
async fn watch() {
    let mut ticks = tokio::time::interval(QUIET);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen = MOVED.load(Ordering::Relaxed);
    let mut busy = false;
    loop {
        ticks.tick().await;
        let now = MOVED.load(Ordering::Relaxed);
        if now != seen {
            seen = now;
            busy = true;
        } else if busy {
            busy = false;
            let _ = tokio::task::spawn_blocking(release).await;
            tracing::debug!("no big values for a second: kept memory given back");
        }
    }
}

/// Called by a thread before it does a server's work: lets the heap's idle
/// step reach this thread's arena (see [`heap`]). A few nanoseconds.
pub(crate) fn arm() {
    heap::arm();
}
