//! The exit gate: no thread of ours takes the GIL while the interpreter
//! finalizes.
//!
//! On CPython 3.9-3.13, a thread that asks for the GIL once finalization has
//! begun is ended with `pthread_exit`. Its forced unwind runs into a Rust
//! `catch_unwind` (tokio's task harness, PyO3's trampolines) and the process
//! aborts: "done" printed, exit status 134. That happened in 3-12% of runs of a
//! script that made `co_` calls: a runtime thread completing an asyncio future
//! (`loop.call_soon_threadsafe` writes to the loop's self-pipe with the GIL
//! released) was still inside Python when the main thread finished and began
//! to finalize.
//!
//! So every place where a thread of ours (re)takes the GIL goes through this
//! gate, and an `atexit` hook ([`prepare_exit`], registered when the module is
//! imported; `atexit` runs before finalization begins) closes it:
//!
//! * [`attach`] is for threads that Python did not make (tokio's workers and
//!   blocking pool, the server's workers): once the gate is closed it refuses,
//!   and the caller drops its work as if the interpreter had gone.
//! * [`detach`] is for Python threads that wait in Rust with the GIL released
//!   (a blocking call, `Server.start()` in a daemon thread): if the gate closed
//!   meanwhile, the thread parks for good instead of taking the GIL back (what
//!   CPython 3.14 does with such threads), unless it is the thread that is
//!   finalizing, which may always take it.
//! * [`prepare_exit`] closes the gate and waits, with the GIL released, for the
//!   threads already inside to leave, at most [`EXIT_WAIT`]: a method of an
//!   in-process server that is still running at exit gets that long to finish.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use pyo3::prelude::*;

/// How long [`prepare_exit`] waits for threads inside the gate (a running
/// method of an in-process server, a future being completed) to leave.
pub(crate) const EXIT_WAIT: Duration = Duration::from_secs(2);

/// The gate's state.
struct Gate {
    /// The process this state belongs to: a child forked while another
    /// thread was inside starts with an empty gate (that thread is not there).
    pid: u32,
    /// Set by [`prepare_exit`]; never cleared (the interpreter is going).
    closed: bool,
    /// The thread that ran [`prepare_exit`]: the finalizing thread, which may
    /// always take the GIL.
    closer: Option<ThreadId>,
    /// Threads between entering and leaving the gate.
    inside: usize,
}

static GATE: Mutex<Gate> = Mutex::new(Gate {
    pid: 0,
    closed: false,
    closer: None,
    inside: 0,
});

/// Signalled when the last thread leaves the gate.
static LEFT: Condvar = Condvar::new();

fn gate() -> MutexGuard<'static, Gate> {
    // A poisoned lock means a panic while changing two integers: still sound.
    let mut g = GATE.lock().unwrap_or_else(|e| e.into_inner());
    let pid = crate::runtime::current_pid();
    if g.pid != pid {
        *g = Gate {
            pid,
            closed: false,
            closer: None,
            inside: 0,
        };
    }
    g
}

/// A thread inside the gate; leaving is dropping it.
pub(crate) struct Inside(());

impl Drop for Inside {
    fn drop(&mut self) {
        let mut g = gate();
        g.inside = g.inside.saturating_sub(1);
        // Only `prepare_exit` waits, and only once the gate is closed: a
        // notify is a `futex` system call even with nobody waiting (it was
        // one per blocking call, measured with `strace`).
        if g.inside == 0 && g.closed {
            LEFT.notify_all();
        }
    }
}

/// Enters the gate, unless it is closed (the interpreter is exiting).
pub(crate) fn enter() -> Option<Inside> {
    let mut g = gate();
    if g.closed {
        return None;
    }
    g.inside += 1;
    Some(Inside(()))
}

/// True once the interpreter is exiting (the gate closed).
pub(crate) fn closed() -> bool {
    gate().closed
}

/// Runs `f` with the GIL on a thread that Python did not make, unless the
/// interpreter is exiting or gone (then `None`, and `f` does not run).
pub(crate) fn attach<R>(f: impl FnOnce(Python<'_>) -> R) -> Option<R> {
    let _inside = enter()?;
    Python::try_attach(f)
}

/// `py.detach(f)` for a Python thread: runs `f` with the GIL released, then
/// takes the GIL back only if the interpreter is not exiting; otherwise the
/// thread parks until the process ends.
pub(crate) fn detach<T, F>(py: Python<'_>, f: F) -> T
where
    F: Send + FnOnce() -> T,
    T: Send,
{
    let (out, inside) = py.detach(|| {
        let out = f();
        (out, enter_or_park())
    });
    drop(inside);
    out
}

/// Enters the gate; a closed gate parks the calling thread for good, unless
/// it is the finalizing thread itself.
fn enter_or_park() -> Option<Inside> {
    let me = std::thread::current().id();
    {
        let mut g = gate();
        if !g.closed {
            g.inside += 1;
            return Some(Inside(()));
        }
        if g.closer == Some(me) {
            return None;
        }
    }
    loop {
        std::thread::park();
    }
}

/// The `atexit` hook: closes the gate and waits (GIL released) for the
/// threads inside to leave, at most [`EXIT_WAIT`].
#[pyfunction]
pub(crate) fn prepare_exit(py: Python<'_>) {
    let me = std::thread::current().id();
    py.detach(|| {
        let mut g = gate();
        g.closed = true;
        g.closer = Some(me);
        let deadline = Instant::now() + EXIT_WAIT;
        while g.inside > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                // Let finalization go on; a thread still inside may then be
                // ended by CPython, as it would be without us.
                break;
            }
            g = LEFT
                .wait_timeout(g, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    });
}

/// Registers [`prepare_exit`] with `atexit`.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // Not added to the module: it is nobody's to call but `atexit`'s.
    let hook = wrap_pyfunction!(prepare_exit, m)?;
    m.py().import("atexit")?.call_method1("register", (hook,))?;
    Ok(())
}
