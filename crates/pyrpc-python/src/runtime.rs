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

/// A runtime with the pid it was made in.
type Slot = Mutex<Option<(u32, &'static Runtime)>>;

/// The runtime of this process, with the pid it was made in.
static RUNTIME: Slot = Mutex::new(None);

/// The current-thread runtime the blocking (`Client.call`) path runs on: the
/// calling thread itself drives the connection (writes the request, waits in
/// `epoll` for the reply, reads it), with no hand-over to a runtime worker
/// and back. Threads sharing a client take turns driving it (tokio lets one
/// `block_on` at a time own the scheduler; the others wait for their own
/// future or for the scheduler to be free).
static LOCAL: Slot = Mutex::new(None);

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
    get_or_build(&RUNTIME, || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("pyrpc")
            .build()
    })
}

/// The current-thread runtime of this process ([`LOCAL`]), built on first
/// use and again after a `fork()`.
///
/// # Errors
///
/// As [`get`].
pub(crate) fn local() -> PyResult<&'static Runtime> {
    get_or_build(&LOCAL, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    })
}

fn get_or_build(
    slot: &Slot,
    build: impl FnOnce() -> std::io::Result<Runtime>,
) -> PyResult<&'static Runtime> {
    let pid = current_pid();
    // A poisoned lock only means another thread panicked while swapping two
    // plain values; the data is still consistent.
    let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((owner, rt)) = *slot {
        if owner == pid {
            return Ok(rt);
        }
    }
    let rt = build().map_err(|e| {
        pyo3::exceptions::PyRuntimeError::new_err(format!("cannot start the pyrpc runtime: {e}"))
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
    block_on_in(py, get()?, fut)
}

/// [`block_on`] on the current-thread runtime ([`local`]): for futures
/// whose connections live there.
///
/// # Errors
///
/// As [`block_on`].
pub(crate) fn block_on_local<F>(py: Python<'_>, fut: F) -> PyResult<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    block_on_in(py, local()?, fut)
}

fn block_on_in<F>(py: Python<'_>, rt: &'static Runtime, fut: F) -> PyResult<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    let mut fut = pin!(fut);
    loop {
        let step = crate::exit::detach(py, || {
            rt.block_on(async { tokio::time::timeout(SIGNAL_CHECK, fut.as_mut()).await })
        });
        match step {
            Ok(out) => return Ok(out),
            Err(_elapsed) => py.check_signals()?,
        }
    }
}
