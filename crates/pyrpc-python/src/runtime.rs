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
//! lets the owners of such things notice (a cached pid,
//! refreshed by a `pthread_atfork` child handler).
//!
//! Blocking calls run on current-thread runtimes ([`Local`]) driven by the
//! calling threads: one per `ClientCore` ([`new_local`]), so that threads
//! with clients of their own each wait in their own `epoll` for their own
//! replies, and a shared one ([`local`]) for the clients over several
//! servers.
//!
//! Waiting from Python goes through [`block_on`], which releases the GIL and
//! wakes every [`SIGNAL_CHECK`] to look for Ctrl-C.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once, OnceLock};
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use tokio::runtime::Runtime;

/// How often a blocked wait wakes up to let Python handle signals (Ctrl-C).
pub(crate) const SIGNAL_CHECK: Duration = Duration::from_millis(50);

/// A runtime with the pid it was made in.
type Slot = Mutex<Option<(u32, &'static Runtime)>>;

/// The runtime of this process, with the pid it was made in.
static RUNTIME: Slot = Mutex::new(None);

/// The shared current-thread runtime of the blocking calls of the clients
/// over several servers (see [`Local`]).
static LOCAL: Mutex<Option<(u32, LocalRt)>> = Mutex::new(None);

/// A current-thread runtime that blocking (`Client.call`) calls run on: the
/// calling thread itself drives the connection (writes the request, waits in
/// `epoll` for the reply, reads it), with no hand-over to a runtime worker
/// and back. Threads sharing a client take turns driving it (tokio lets one
/// `block_on` at a time own the scheduler; the others wait for their own
/// future, or for the scheduler to be free).
///
/// Each `ClientCore` has its own ([`new_local`]): with one runtime for every
/// client of the process, eight threads with a client each took turns too,
/// and a thread whose reply came was woken by whichever thread owned the
/// scheduler (about two context switches and five futex calls per call
/// instead of one wake-up). Its connection's tasks live there, so dropping
/// it (when the client and its streams are gone) closes the connection.
/// Made before a `fork()`, it is forgotten in the child, never dropped
/// (see the module docs).
pub(crate) struct Local {
    rt: Option<Runtime>,
    pid: u32,
    /// Counted in [`OWN_RUNTIMES`] (a client's own, not the shared one).
    counted: bool,
    /// When a thread last stopped driving it ([`block_on_local`] returned),
    /// in µs since [`epoch`]; [`NEVER`] before the first time. A call that
    /// starts within [`CATCH_UP_AFTER`] of it skips [`catch_up`].
    left_at: AtomicU64,
}

/// [`Local::left_at`] before anyone drove the runtime.
const NEVER: u64 = u64::MAX;

/// How long a [`Local`] runtime may go undriven before a blocking call first
/// lets it read what came meanwhile ([`catch_up`]). A server closes an idle
/// connection after its `idle_timeout` (300 s by default) of silence from
/// the client, counted from the last frame; a call that starts within this
/// much of the previous one's end cannot find its connection closed for
/// idleness (unless the server's idle timeout is shorter still), and a
/// sequential caller (thousands of calls a second) never pays the two
/// scheduler turns and `epoll_wait`s of the catch-up.
pub(crate) const CATCH_UP_AFTER: Duration = Duration::from_millis(1);

/// The process's reference instant for [`Local::left_at`].
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Microseconds from [`epoch`] to now.
fn now_us() -> u64 {
    u64::try_from(epoch().elapsed().as_micros()).unwrap_or(NEVER - 1)
}

/// The most clients with runtimes of their own at once; the clients made
/// past it share [`local`]. A runtime holds four descriptors (its `epoll`,
/// an event fd, the signal driver's): without a bound, a process with a few
/// hundred clients would run out of descriptors.
pub(crate) const MAX_OWN_RUNTIMES: usize = 64;

/// Clients' own runtimes alive in this process.
static OWN_RUNTIMES: AtomicUsize = AtomicUsize::new(0);

/// A shared [`Local`].
pub(crate) type LocalRt = Arc<Local>;

impl Local {
    /// The runtime.
    pub(crate) fn runtime(&self) -> &Runtime {
        self.rt.as_ref().expect("taken only when dropped")
    }

    /// True for the shared runtime ([`local`]), which outlives its clients.
    pub(crate) fn is_shared(&self) -> bool {
        !self.counted
    }

    /// A new `Local` around `rt`, never driven yet.
    fn new(rt: Runtime, counted: bool) -> Local {
        Local {
            rt: Some(rt),
            pid: current_pid(),
            counted,
            left_at: AtomicU64::new(NEVER),
        }
    }

    /// True unless a thread stopped driving the runtime less than
    /// [`CATCH_UP_AFTER`] ago.
    fn needs_catch_up(&self) -> bool {
        let left = self.left_at.load(Ordering::Relaxed);
        left == NEVER || now_us().saturating_sub(left) >= CATCH_UP_AFTER.as_micros() as u64
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        // A parent's runtime is not counted in a child (the count starts
        // at 0 there: see `after_fork_in_child`).
        if self.counted && self.pid == current_pid() {
            OWN_RUNTIMES.fetch_sub(1, Ordering::AcqRel);
        }
        let Some(rt) = self.rt.take() else { return };
        if self.pid != current_pid() {
            // The parent's: its epoll and tasks are not ours to touch.
            std::mem::forget(rt);
        } else if tokio::runtime::Handle::try_current().is_ok() {
            // On a thread of another runtime (the last reference dropped
            // in a task): shutting down there is refused; do it beside.
            let spawned = std::thread::Builder::new()
                .name("pyrpc-drop".into())
                .spawn(move || rt.shutdown_background());
            if let Err(e) = spawned {
                tracing::debug!(error = %e, "no thread to drop a client runtime; leaked");
            }
        } else {
            // Drops its tasks (closing the connection) without waiting for
            // blocking-pool threads (a DNS lookup).
            rt.shutdown_background();
        }
    }
}

/// A new current-thread runtime for one client's blocking calls, or the
/// shared one ([`local`]) when [`MAX_OWN_RUNTIMES`] clients have their own.
///
/// # Errors
///
/// As [`get`].
pub(crate) fn new_local() -> PyResult<LocalRt> {
    if OWN_RUNTIMES.fetch_add(1, Ordering::AcqRel) >= MAX_OWN_RUNTIMES {
        OWN_RUNTIMES.fetch_sub(1, Ordering::AcqRel);
        return local();
    }
    // Counted from here: the `Local` (or the error path) gives it back.
    let rt = match build_local() {
        Ok(rt) => rt,
        Err(e) => {
            OWN_RUNTIMES.fetch_sub(1, Ordering::AcqRel);
            return Err(no_runtime(e));
        }
    };
    Ok(Arc::new(Local::new(rt, true)))
}

/// A runtime for [`local`]'s slot, never counted.
fn new_shared_local() -> PyResult<LocalRt> {
    Ok(Arc::new(Local::new(
        build_local().map_err(no_runtime)?,
        false,
    )))
}

fn build_local() -> std::io::Result<Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

fn no_runtime(e: std::io::Error) -> PyErr {
    pyo3::exceptions::PyRuntimeError::new_err(format!("cannot start the pyrpc runtime: {e}"))
}

/// The pid of this process, as last stored: 0 before the first
/// [`current_pid`], then set there and again in every forked child by the
/// `pthread_atfork` child handler ([`after_fork_in_child`]).
static PID: AtomicU32 = AtomicU32::new(0);

/// Registers [`after_fork_in_child`] once per process image.
static AT_FORK: Once = Once::new();

/// The pid of this process, without a system call on every use: every call
/// of the binding asked for it (up to three `getpid`s per call, measured
/// with `strace -c`), to notice a `fork()`.
///
/// The pid is read once and cached; a `pthread_atfork` child handler stores
/// the child's pid right after every `fork()` (Python's `os.fork`,
/// `multiprocessing`'s fork start method, or C code calling `fork`), before
/// any Python code of the child runs. A process image made by `exec` starts
/// with the cache empty again.
pub(crate) fn current_pid() -> u32 {
    let pid = PID.load(Ordering::Acquire);
    if pid != 0 {
        return pid;
    }
    AT_FORK.call_once(register_at_fork);
    let pid = std::process::id();
    if !NO_CACHE.load(Ordering::Acquire) {
        PID.store(pid, Ordering::Release);
    }
    pid
}

/// Installs [`after_fork_in_child`] as a `pthread_atfork` child handler.
/// Should that fail (it only can for lack of memory), the cache is never
/// filled and [`current_pid`] asks the kernel every time, as it used to.
fn register_at_fork() {
    // SAFETY: `after_fork_in_child` is an `extern "C"` function that only
    // makes a system call and stores into an atomic (async-signal-safe, as
    // a child handler must be); registering it has no other effect.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
    if rc != 0 {
        // Not logged: this runs under the exit gate's lock (its first
        // caller is often `exit::gate`), and a log line takes that lock.
        // Nothing is lost but speed: the pid is read on every call.
        NO_CACHE.store(true, Ordering::Release);
    }
}

/// Set when the fork handler could not be installed: the cache stays empty.
static NO_CACHE: AtomicBool = AtomicBool::new(false);

/// Runs in the child after every `fork()`: stores the child's pid, so that
/// the owners of things made before the fork notice at their next use.
extern "C" fn after_fork_in_child() {
    let pid = std::process::id();
    PID.store(pid, Ordering::Release);
    // The parent's clients' runtimes are forgotten here, never dropped.
    OWN_RUNTIMES.store(0, Ordering::Release);
    // The parent's servers do not run here: keep no memory for them.
    crate::warm::after_fork_in_child();
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
            // A server's frames are read on these threads: their arenas keep
            // what they free until the server goes quiet (decision 0025).
            .on_thread_unpark(crate::warm::arm)
            .build()
    })
}

/// The shared current-thread runtime of this process ([`LOCAL`]), built on
/// first use and again after a `fork()`.
///
/// # Errors
///
/// As [`get`].
pub(crate) fn local() -> PyResult<LocalRt> {
    let pid = current_pid();
    let mut slot = LOCAL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((owner, rt)) = &*slot {
        if *owner == pid {
            return Ok(Arc::clone(rt));
        }
    }
    // The parent's, if any, is forgotten by its `Drop`.
    let rt = new_shared_local()?;
    *slot = Some((pid, Arc::clone(&rt)));
    Ok(rt)
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
    let rt = build().map_err(no_runtime)?;
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

/// [`block_on`] on a current-thread runtime ([`Local`]): for futures whose
/// connections live there.
///
/// # Errors
///
/// As [`block_on`].
pub(crate) fn block_on_local<F>(py: Python<'_>, rt: &Local, fut: F) -> PyResult<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    let catch = rt.needs_catch_up();
    let out = block_on_in(py, rt.runtime(), async move {
        if catch {
            catch_up().await;
        }
        fut.await
    });
    rt.left_at.store(now_us(), Ordering::Relaxed);
    out
}

/// Lets a runtime that nobody drove for a while ([`CATCH_UP_AFTER`]) read
/// what came meanwhile before a new call starts: above all a connection the server
/// closed (its idle timeout, a restart). The reader task then marks it
/// closed and the call opens a new one, instead of sending into the closed
/// one and failing with "connection closed before the reply arrived".
///
/// The first yield lets the scheduler poll the I/O driver (without
/// waiting), which wakes the reader task; the second lets it run.
async fn catch_up() {
    tokio::task::yield_now().await;
    tokio::task::yield_now().await;
}

fn block_on_in<F>(py: Python<'_>, rt: &Runtime, fut: F) -> PyResult<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    let out = wait_interruptibly(py, rt, fut);
    if out.is_err() {
        // Interrupted: the future is dropped by now. Give the runtime's tasks
        // a few turns, so what the drop set in motion goes out (a `Cancel`
        // for the server, on a current-thread runtime nobody else drives).
        crate::exit::detach(py, || {
            rt.block_on(async {
                for _ in 0..8 {
                    tokio::task::yield_now().await;
                }
            })
        });
    }
    out
}

/// [`block_on_in`]'s loop: waits for `fut`, dropping it when a signal
/// handler raises.
fn wait_interruptibly<F>(py: Python<'_>, rt: &Runtime, fut: F) -> PyResult<F::Output>
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
