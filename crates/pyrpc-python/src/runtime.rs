//! The tokio runtime the binding runs everything on, re-created after `fork()`.
//!
//! A runtime made in a parent process is useless in a child forked from it: its
//! worker threads were not copied (a multi-thread runtime then hangs forever)
//! and its epoll instance is shared with the parent. So the runtime is kept as
//! `(pid, &'static Runtime)` behind a mutex held only to read or swap it; when
//! [`std::process::id`] differs from the stored pid, a new runtime is built.
//! The old one is leaked, never dropped: dropping waits for worker threads that
//! do not exist in the child. Everything else made on the old runtime
//! (connections, servers, tasks) is dead in the child too; [`current_pid`]
//! lets the owners of such things notice.
//!
//! Waiting from Python goes through [`block_on`], which releases the GIL and
//! wakes every [`SIGNAL_CHECK`] to look for Ctrl-C.

use std::future::Future;
use std::pin::pin;
use std::sync::Mutex;
use std::time::Duration;

use pyo3::prelude::*;
use tokio::runtime::Runtime;

/// How often a blocked wait wakes up to let Python handle signals (Ctrl-C).
pub(crate) const SIGNAL_CHECK: Duration = Duration::from_millis(50);

/// The runtime of this process, with the pid it was made in.
static RUNTIME: Mutex<Option<(u32, &'static Runtime)>> = Mutex::new(None);

/// The pid of this process.
pub(crate) fn current_pid() -> u32 {
    std::process::id()
}

/// The runtime of the current process, built on first use and again after a
/// `fork()`.
///
/// # Errors
///
/// A `RuntimeError` if tokio cannot build a runtime (out of threads or fds).
pub(crate) fn get() -> PyResult<&'static Runtime> {
    let pid = current_pid();
    // A poisoned lock only means another thread panicked while swapping two
    // plain values; the data is still consistent.
    let mut slot = RUNTIME.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((owner, rt)) = *slot {
        if owner == pid {
            return Ok(rt);
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("pyrpc")
        .build()
        .map_err(|e| {
            pyo3::exceptions::PyRuntimeError::new_err(format!(
                "cannot start the pyrpc runtime: {e}"
            ))
        })?;
    // Leaked on purpose: see the module docs.
    let rt: &'static Runtime = Box::leak(Box::new(rt));
    *slot = Some((pid, rt));
    Ok(rt)
}

/// Runs `fut` to completion on the runtime with the GIL released, waking every
/// [`SIGNAL_CHECK`] to run Python's signal handlers.
///
/// # Errors
///
/// Whatever a signal handler raises (`KeyboardInterrupt` for Ctrl-C); the
/// future is dropped then, which cancels it.
pub(crate) fn block_on<F>(py: Python<'_>, fut: F) -> PyResult<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    let rt = get()?;
    let mut fut = pin!(fut);
    loop {
        let step = py.detach(|| {
            rt.block_on(async { tokio::time::timeout(SIGNAL_CHECK, fut.as_mut()).await })
        });
        match step {
            Ok(out) => return Ok(out),
            Err(_elapsed) => py.check_signals()?,
        }
    }
}
