//! [`Pool`]: the Python worker threads a server's calls run on.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use pyo3::prelude::*;

/// One call for a [`Pool`] worker: runs with the GIL held.
pub(crate) type Job = Box<dyn FnOnce(Python<'_>) + Send>;

/// A worker's slot for a call handed to it while it waits for its
/// connection's next request ([`run_here`]).
enum Here {
    Closed,
    Open,
    Job(Job),
}

thread_local! {
    static HERE: std::cell::Cell<Here> = const { std::cell::Cell::new(Here::Closed) };
}

/// Runs `job` on this thread next, when this thread is a worker waiting
/// for its connection's next request (`pyrpc_server::serve_next_here`);
/// gives the job back otherwise.
pub(crate) fn run_here(job: Job) -> Result<(), Job> {
    match HERE.replace(Here::Closed) {
        Here::Open => {
            HERE.set(Here::Job(job));
            Ok(())
        }
        other => {
            HERE.set(other);
            Err(job)
        }
    }
}

/// What the workers of a [`Pool`] share.
struct Shared {
    /// Jobs, handed from [`Pool::submit`] to a worker waiting for one: a
    /// zero-capacity (rendezvous) channel, so a job is taken only by a
    /// worker that is waiting at that moment, never queued behind a busy
    /// one.
    jobs: Receiver<Job>,
    /// Disconnected when the pool closes, which wakes every waiting worker.
    closing: Receiver<()>,
    /// Workers alive.
    threads: AtomicUsize,
}

/// Python worker threads that keep their Python thread state between calls.
///
/// Attaching to the interpreter from a thread that has no Python thread state
/// (a tokio blocking-pool thread) makes CPython create one, with its frame
/// stack (an `mmap`), and destroy it when the call is done: per call. A worker
/// attaches once for its whole life and detaches between calls, so each call
/// only re-takes the GIL. Workers start on demand, up to `max` (the Python
/// server's `workers`); a call that finds them all busy runs on tokio's
/// blocking pool as before, so calls never wait for each other here (how many
/// run at once is bounded by the server's in-flight limits). Closing the
/// pool (the server stopped) lets the workers exit once they are done.
///
/// The hand-off is `crossbeam-channel`'s rendezvous channel: `try_send`
/// succeeds exactly when a worker is waiting in `recv`, which is the
/// "idle worker, or a new one, or give the job back" decision in one step.
///
/// Workers are plain OS threads, not `threading` threads: they never hold up
/// the interpreter's exit. A pool belongs to one `bind()`, so a server bound
/// again in a forked child gets a new one.
pub(crate) struct Pool {
    shared: Arc<Shared>,
    jobs: Sender<Job>,
    /// Dropped by [`Pool::close`].
    closing: Mutex<Option<Sender<()>>>,
    closed: AtomicBool,
    max: usize,
}

impl Pool {
    pub(crate) fn new(max: usize) -> Pool {
        let (jobs, jobs_rx) = crossbeam_channel::bounded(0);
        let (closing, closing_rx) = crossbeam_channel::bounded(0);
        Pool {
            shared: Arc::new(Shared {
                jobs: jobs_rx,
                closing: closing_rx,
                threads: AtomicUsize::new(0),
            }),
            jobs,
            closing: Mutex::new(Some(closing)),
            closed: AtomicBool::new(false),
            max,
        }
    }

    /// Hands `job` to an idle worker (or a new one); gives it back when every
    /// worker is busy, or the pool is closed.
    pub(crate) fn submit(&self, job: Job) -> Result<(), Job> {
        if self.closed.load(Ordering::Acquire) {
            return Err(job);
        }
        let job = match self.jobs.try_send(job) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => job,
        };
        let counted = self
            .shared
            .threads
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            });
        if counted.is_err() {
            return Err(job);
        }
        let shared = Arc::clone(&self.shared);
        let spawned = std::thread::Builder::new()
            .name("pyrpc-python".into())
            .spawn(move || worker(&shared, job));
        if spawned.is_err() {
            self.shared.threads.fetch_sub(1, Ordering::AcqRel);
            // The closure (and the job in it) is gone with the failed
            // spawn; its caller sees the dropped reply channel.
        }
        Ok(())
    }

    /// Lets the workers exit once they are done; later calls run on the
    /// blocking pool.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let closing = self
            .closing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        drop(closing);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.close();
    }
}

/// A worker's life: attached to the interpreter throughout (so it keeps its
/// thread state), detached while it waits.
fn worker(shared: &Shared, first: Job) {
    let inside = crate::exit::enter();
    let attached =
        inside.and_then(|inside| Python::try_attach(|py| worker_loop(py, shared, first, inside)));
    if attached.is_none() {
        shared.threads.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What a worker does after waiting (detached) for work.
enum Next {
    /// Runs this job, inside the exit gate (entered before the GIL is
    /// taken back, left once the job is done).
    Job(Job, crate::exit::Inside),
    /// The pool closed: the worker exits (inside the gate while it lets go
    /// of the interpreter).
    Exit(crate::exit::Inside),
}

/// The attached worker's loop: runs each job with the GIL held, then
/// releases the GIL while it waits for the next one, and takes it back
/// (`PyEval_SaveThread` / `PyEval_RestoreThread` on the thread state it
/// keeps, one each per call) rather than attaching afresh per job
/// (`PyGILState_Ensure` / `Release` around each, as it did before: the
/// same GIL round trip plus the interpreter's thread-state lookups,
/// decision 0078). Jobs run inside the exit gate; once the interpreter is
/// exiting, a job still to run is dropped (its caller told the server is
/// going away) and the thread parks for good rather than take the GIL back
/// (see `exit`).
fn worker_loop(py: Python<'_>, shared: &Shared, first: Job, inside: crate::exit::Inside) {
    pyrpc_server::lingering_thread();
    let (mut job, mut inside) = (first, inside);
    loop {
        // A panic is the call's alone: its caller sees the dropped reply
        // channel, the worker carries on.
        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| job(py)));
        drop(inside);
        match py.detach(|| next_job(shared)) {
            Next::Job(j, i) => (job, inside) = (j, i),
            Next::Exit(i) => {
                drop(i);
                return;
            }
        }
    }
}

/// Waits (GIL released) for the worker's next job: first the connection of
/// the call just answered, which may send its next request within a few
/// milliseconds (waited for and run here: one thread woken per call, see
/// `pyrpc_server::serve_next_here`), then the pool's queue. Enters the exit
/// gate before returning; parks for good when it is closed.
fn next_job(shared: &Shared) -> Next {
    let mut job = None;
    HERE.set(Here::Open);
    pyrpc_server::serve_next_here();
    if let Here::Job(next) = HERE.replace(Here::Closed) {
        job = Some(next);
    } else {
        // Off to other work: the connection read here last is watched by
        // its reader task again.
        pyrpc_server::release_here();
    }
    loop {
        let Some(j) = job.take().or_else(|| queued(shared)) else {
            let Some(inside) = crate::exit::enter() else {
                park_for_good();
            };
            return Next::Exit(inside);
        };
        match crate::exit::enter() {
            Some(inside) => return Next::Job(j, inside),
            // The interpreter is exiting: the job is dropped (answering
            // its call), and so is every queued one until the pool closes.
            None => drop(j),
        }
    }
}

/// The next job, waiting for one; `None` once the pool is closed (the
/// worker is no longer counted then).
fn queued(shared: &Shared) -> Option<Job> {
    let job = crossbeam_channel::select_biased! {
        recv(shared.jobs) -> job => job.ok(),
        recv(shared.closing) -> _ => None,
    };
    if job.is_none() {
        shared.threads.fetch_sub(1, Ordering::AcqRel);
    }
    job
}

/// Never takes the GIL back: the interpreter is exiting (see `exit`).
fn park_for_good() -> ! {
    loop {
        std::thread::park();
    }
}

#[cfg(test)]
mod tests;
