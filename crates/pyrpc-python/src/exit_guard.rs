//! Keeps the runtime's threads from being stuck in Python while the
//! interpreter exits.
//!
//! A `co_call` completes its asyncio future from a runtime thread with
//! `loop.call_soon_threadsafe`, which releases the GIL inside (it writes to
//! the loop's wake-up socket). If the main thread finishes the program in that
//! instant, the runtime thread cannot take the GIL back: CPython (before 3.14)
//! ends such a thread with `pthread_exit`, whose forced unwinding through the
//! Rust frames aborts the process (issue #12's exit crash; about one exit in
//! three after `co_` calls, on every CPython 3.9-3.13).
//!
//! So runtime threads enter Python through [`enter`], which counts them, and
//! an `atexit` hook ([`quiesce_at_exit`], registered when the module loads,
//! run before finalization starts) lets no new ones in and waits, with the
//! GIL released, for those inside to leave.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pyo3::prelude::*;

/// Set by the `atexit` hook: runtime threads stay out of Python from now on.
static EXITING: AtomicBool = AtomicBool::new(false);
/// Runtime threads inside Python now.
static INSIDE: AtomicUsize = AtomicUsize::new(0);

/// The longest the exit waits for runtime threads to leave Python.
const EXIT_WAIT: Duration = Duration::from_secs(2);

/// A runtime thread's stay in Python; leaving is dropping it.
pub(crate) struct Inside(());

impl Drop for Inside {
    fn drop(&mut self) {
        INSIDE.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Enters Python from a runtime thread (with the GIL held: `_py`), or `None`
/// once the interpreter is exiting: then leave without calling Python.
pub(crate) fn enter(_py: Python<'_>) -> Option<Inside> {
    INSIDE.fetch_add(1, Ordering::SeqCst);
    let inside = Inside(());
    if EXITING.load(Ordering::SeqCst) {
        return None;
    }
    Some(inside)
}

/// The `atexit` hook: no more runtime threads into Python; wait (GIL
/// released, at most [`EXIT_WAIT`]) for those inside to leave.
#[pyfunction]
fn quiesce_at_exit(py: Python<'_>) {
    EXITING.store(true, Ordering::SeqCst);
    py.detach(|| {
        let start = Instant::now();
        while INSIDE.load(Ordering::SeqCst) > 0 && start.elapsed() < EXIT_WAIT {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
}

/// Adds the hook to the module and registers it with `atexit`.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let hook = wrap_pyfunction!(quiesce_at_exit, m)?;
    // Not in `__all__`: private.
    m.setattr("_quiesce_at_exit", &hook)?;
    m.py().import("atexit")?.call_method1("register", (hook,))?;
    Ok(())
}
