//! `async def` methods: a coroutine returned by a served method runs on an
//! asyncio event loop, and its caller's reply waits for it without holding a
//! worker thread.
//!
//! The loop is the server's own ([`EventLoop::Owned`]: a `pyrpc._aio.LoopThread`
//! started at the first coroutine and stopped with the server) or the caller's
//! when the server runs inside asyncio (`await server.serve()`,
//! [`EventLoop::Borrowed`]). A coroutine is handed to it with
//! `asyncio.run_coroutine_threadsafe`; the resulting
//! `concurrent.futures.Future` completes the call through [`Done`], its done
//! callback. If the call is dropped before that (its client closed the
//! connection), [`CancelOnDrop`] cancels the future, so the coroutine gets
//! `CancelledError` at its current `await` and its `finally` blocks run.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use pyrpc_proto::{RemoteError, Value};
use tokio::sync::oneshot;

/// The loop a server's coroutines run on.
pub(crate) enum EventLoop {
    /// Started by the server (a `pyrpc._aio.LoopThread`), stopped with it.
    Owned(Py<PyAny>),
    /// The loop of `await server.serve()`: the caller's, never stopped by us.
    Borrowed(Py<PyAny>),
}

impl EventLoop {
    /// The asyncio loop object.
    fn asyncio_loop(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match self {
            EventLoop::Owned(thread) => Ok(thread.getattr(py, "loop")?),
            EventLoop::Borrowed(event_loop) => Ok(event_loop.clone_ref(py)),
        }
    }

    /// Stops an owned loop (its running coroutines are cancelled); leaves a
    /// borrowed one alone.
    pub(crate) fn stop(self, py: Python<'_>) {
        if let EventLoop::Owned(thread) = self {
            if let Err(e) = thread.call_method0(py, "stop") {
                e.write_unraisable(py, None);
            }
        }
    }
}

/// Where a server keeps its loop: empty until the first coroutine (or set by
/// `serve()` before the server binds).
#[derive(Default)]
pub(crate) struct LoopSlot(Mutex<Option<EventLoop>>);

impl LoopSlot {
    /// Makes `event_loop` (the caller's) the loop of this server.
    pub(crate) fn borrow(&self, event_loop: Py<PyAny>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(EventLoop::Borrowed(event_loop));
    }

    /// The loop, starting an owned one if there is none yet.
    fn get(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        if let Some(l) = &*self.0.lock().unwrap_or_else(|e| e.into_inner()) {
            return l.asyncio_loop(py);
        }
        // Started without the lock held: starting waits for the thread, with
        // the GIL released, and another worker may need the lock meanwhile.
        let thread = py
            .import("pyrpc._aio")?
            .getattr("LoopThread")?
            .call0()?
            .unbind();
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match &*slot {
            // Another call started one first: ours is not needed.
            Some(l) => {
                let chosen = l.asyncio_loop(py);
                drop(slot);
                EventLoop::Owned(thread).stop(py);
                chosen
            }
            None => {
                let l = slot.insert(EventLoop::Owned(thread));
                l.asyncio_loop(py)
            }
        }
    }

    /// Takes the loop out (the server stopped); the caller stops it.
    pub(crate) fn take(&self) -> Option<EventLoop> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Turns what the coroutine returned or raised into the call's outcome
/// (conversion, logging hooks): [`crate::server`]'s `Finish`.
pub(crate) type Complete =
    Box<dyn FnOnce(Python<'_>, PyResult<Bound<'_, PyAny>>) -> Result<Value, RemoteError> + Send>;

/// What a call's cancellation reaches: an `async def` method's future on the
/// loop, and a flag that a plain method reads with `pyrpc.cancelled()`.
pub(crate) type Running = Arc<CallState>;

/// See [`Running`].
#[derive(Default)]
pub(crate) struct CallState {
    /// The coroutine's `concurrent.futures.Future`, once scheduled.
    future: Mutex<Option<Py<PyAny>>>,
    /// Set when the call was dropped unfinished (cancelled by its caller,
    /// stopped at its deadline, its connection closed).
    cancelled: AtomicBool,
    /// The call's context, whose cancellation says the same for a call the
    /// server answers directly (no future of it is ever dropped).
    context: Option<pyrpc_server::CallContext>,
}

impl CallState {
    /// The state of a call with `context`.
    pub(crate) fn new(context: pyrpc_server::CallContext) -> Running {
        Arc::new(CallState {
            context: Some(context),
            ..CallState::default()
        })
    }

    /// True once the call was dropped unfinished, or its context cancelled.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
            || self.context.as_ref().is_some_and(|c| c.is_cancelled())
    }
}

thread_local! {
    /// The state of the plain method this thread is running, for
    /// [`call_cancelled`].
    static CURRENT: RefCell<Option<Running>> = const { RefCell::new(None) };
}

/// Runs `f` (a plain method's call) with `state` as this thread's current call.
pub(crate) fn with_current<R>(state: &Running, f: impl FnOnce() -> R) -> R {
    let previous = CURRENT.with(|c| c.replace(Some(Arc::clone(state))));
    let out = f();
    CURRENT.with(|c| *c.borrow_mut() = previous);
    out
}

/// `pyrpc.cancelled()`: True when the call the current thread is running
/// (a plain method of a server) was cancelled by its caller, passed its
/// deadline, or lost its client; False otherwise (and outside a call).
#[pyfunction]
pub(crate) fn call_cancelled() -> bool {
    CURRENT.with(|c| c.borrow().as_ref().is_some_and(|s| s.is_cancelled()))
}

/// Schedules `coro` on the server's loop; `complete` turns its outcome into
/// the reply sent on `tx`. The `concurrent.futures.Future` is stored in
/// `running` so the call can be cancelled. When the loop cannot be started
/// or refuses the coroutine (closed), the coroutine is closed (it never runs)
/// and the failure is the call's outcome.
pub(crate) fn schedule(
    py: Python<'_>,
    slot: &LoopSlot,
    coro: Bound<'_, PyAny>,
    complete: Complete,
    tx: oneshot::Sender<Result<Value, RemoteError>>,
    running: &Running,
) {
    let scheduled = slot.get(py).and_then(|event_loop| {
        py.import("asyncio")?
            .call_method1("run_coroutine_threadsafe", (&coro, event_loop))
    });
    let future = match scheduled {
        Ok(f) => f,
        Err(e) => {
            // Never awaited: close it, or Python warns about it.
            let _ = coro.call_method0("close");
            let _ = tx.send(complete(py, Err(e)));
            return;
        }
    };
    *running.future.lock().unwrap_or_else(|e| e.into_inner()) = Some(future.clone().unbind());
    let done = Done {
        reply: Mutex::new(Some((complete, tx))),
    };
    if let Err(e) = future.call_method1("add_done_callback", (done,)) {
        // Not expected of a concurrent.futures.Future; the call's reply
        // channel is dropped with `done`, so its caller hears of it.
        e.write_unraisable(py, Some(&future));
    }
}

/// The done callback of a coroutine's future: completes the call.
#[pyclass(module = "pyrpc._pyrpc", frozen)]
struct Done {
    /// Taken by the one call of `__call__`.
    #[allow(clippy::type_complexity)]
    reply: Mutex<Option<(Complete, oneshot::Sender<Result<Value, RemoteError>>)>>,
}

#[pymethods]
impl Done {
    fn __call__(&self, future: &Bound<'_, PyAny>) {
        let taken = self.reply.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some((complete, tx)) = taken else { return };
        // `result()` returns the value, or raises what the coroutine raised
        // (`CancelledError` when it was cancelled).
        let outcome = future.call_method0("result");
        let _ = tx.send(complete(future.py(), outcome));
    }
}

/// Cancels a call's coroutine when the call is dropped before it finished
/// (its client went away); [`CancelOnDrop::finished`] disarms it.
pub(crate) struct CancelOnDrop {
    running: Running,
    armed: bool,
}

impl CancelOnDrop {
    /// Watches `running` (filled once the call turns out to be a coroutine).
    pub(crate) fn new(running: Running) -> CancelOnDrop {
        CancelOnDrop {
            running,
            armed: true,
        }
    }

    /// The call finished: nothing to cancel.
    pub(crate) fn finished(mut self) {
        self.armed = false;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        self.running.cancelled.store(true, Ordering::SeqCst);
        let future = self
            .running
            .future
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(future) = future {
            crate::exit::attach(|py| {
                // `cancel()` on a concurrent future of run_coroutine_threadsafe
                // cancels the task on its loop (thread-safely).
                if let Err(e) = future.call_method0(py, "cancel") {
                    e.write_unraisable(py, None);
                }
            });
        }
    }
}
