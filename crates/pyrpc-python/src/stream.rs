//! Streamed replies from Python: generator methods on a server, and the
//! iterators a client hands out for streamed replies.
//!
//! Server side: a served method that returns a generator streams its items
//! ([`stream_generator`]): the generator runs on the worker thread that
//! called the method, which pushes each item into a small bounded channel
//! the server's pump reads (at the client's credit; see
//! `pyrpc_server::ValueStream`). A full channel parks the worker with the
//! GIL released. An async generator ([`stream_async_generator`]) is driven
//! by `pyrpc._stream.drive` on the server's event loop, which waits for room
//! in the channel without blocking the loop. When the client leaves the
//! stream, the channel closes: the generator is closed (`GeneratorExit` at
//! its `yield`, its `finally` runs); an async generator's task is cancelled.
//!
//! Client side: [`StreamIter`] (a blocking `for` loop) and
//! [`AsyncStreamIter`] (`async for`) over a `pyrpc_client::ReplyStream`.
//! Dropping or closing one before its end cancels the call on the server.

use std::sync::{Arc, Mutex};

use pyo3::exceptions::PyStopIteration;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyrpc_proto::{ErrorKind, RemoteError, Value};
use pyrpc_server::{CallContext, ValueStream};
use tokio::sync::mpsc;

use crate::aio::{self, LoopSlot};
use crate::convert::Options;
use crate::runtime;

/// Items a generator may run ahead of the server's pump (on top of the
/// client's credit): enough to keep a fast generator from parking for
/// every item, little enough to bound memory.
pub(crate) const AHEAD: usize = 32;

type Item = Result<Value, RemoteError>;

static GENERATOR_TYPES: PyOnceLock<(Py<PyAny>, Py<PyAny>)> = PyOnceLock::new();

/// What kind of generator `ret` is, if any.
pub(crate) enum GenKind {
    /// `def` with `yield`.
    Plain,
    /// `async def` with `yield`.
    Async,
}

/// `Some` when `ret` (what a method returned) is a generator.
pub(crate) fn generator_kind(ret: &Bound<'_, PyAny>) -> Option<GenKind> {
    let py = ret.py();
    let (gen, agen) = GENERATOR_TYPES
        .get_or_try_init(py, || {
            let types = py.import("types")?;
            PyResult::Ok((
                types.getattr("GeneratorType")?.unbind(),
                types.getattr("AsyncGeneratorType")?.unbind(),
            ))
        })
        .ok()?;
    let t = ret.get_type();
    if t.is(gen.bind(py)) {
        Some(GenKind::Plain)
    } else if t.is(agen.bind(py)) {
        Some(GenKind::Async)
    } else {
        None
    }
}

/// A `ValueStream` reading `rx`, holding `guard` until dropped.
fn value_stream<G: Send + 'static>(mut rx: mpsc::Receiver<Item>, guard: G) -> ValueStream {
    Box::pin(futures::stream::poll_fn(move |cx| {
        let _keep = &guard;
        rx.poll_recv(cx)
    }))
}

/// Closes a generator (its `finally` runs); a failure is unraisable.
fn close(gen: &Bound<'_, PyAny>, method: &str) {
    if let Err(e) = gen.call_method0(if generator_is_async(gen) {
        "aclose"
    } else {
        "close"
    }) {
        e.write_unraisable(gen.py(), None);
    }
    tracing::debug!(method, "generator closed");
}

fn generator_is_async(gen: &Bound<'_, PyAny>) -> bool {
    matches!(generator_kind(gen), Some(GenKind::Async))
}

/// Offers `gen`'s items as the reply of the call of `ctx` and then runs the
/// generator on this (worker) thread until it ends, fails, or the client
/// leaves the stream. Returns the call's own outcome (sent before the
/// generator runs): `Ok(None)` once the stream is offered, or why the call
/// cannot stream (a non-blocking call).
pub(crate) fn stream_generator(
    py: Python<'_>,
    gen: Bound<'_, PyAny>,
    ctx: &CallContext,
    opts: Options,
    method: &str,
    answer: impl FnOnce(Item),
) {
    let tx = match open_stream(ctx, method, ()) {
        Ok(tx) => tx,
        Err(e) => {
            close(&gen, method);
            return answer(Err(e));
        }
    };
    answer(Ok(Value::None));
    let mut exhausted = false;
    loop {
        if tx.is_closed() {
            break;
        }
        let next = match gen.call_method0("__next__") {
            Ok(obj) => crate::bigbytes::result_value(&obj, opts).map_err(|e| {
                RemoteError::new(
                    ErrorKind::UnsupportedValue,
                    format!(
                        "an item of {method}() cannot be sent: {}",
                        e.message("item")
                    ),
                )
            }),
            Err(e) if e.is_instance_of::<PyStopIteration>(py) => {
                exhausted = true;
                break;
            }
            Err(e) => {
                exhausted = true;
                Err(crate::server::raised(py, &e, opts))
            }
        };
        let failed = next.is_err();
        let sent = match tx.try_send(next) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(item)) => {
                crate::exit::detach(py, || tx.blocking_send(item).is_ok())
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        };
        if failed || !sent {
            break;
        }
    }
    if !exhausted {
        // The client left (or an item could not be sent): stop the
        // generator now, so its `finally` runs.
        close(&gen, method);
    }
}

/// Offers `agen`'s items as the reply of the call of `ctx`, driven by
/// `pyrpc._stream.drive` on the server's event loop. Returns the call's own
/// outcome as [`stream_generator`] does.
pub(crate) fn stream_async_generator(
    py: Python<'_>,
    agen: Bound<'_, PyAny>,
    ctx: &CallContext,
    opts: Options,
    method: &str,
    event_loop: &LoopSlot,
    answer: impl FnOnce(Item),
) {
    let running = aio::Running::default();
    // Dropping the stream (the client left) cancels the driving task.
    let guard = aio::CancelOnDrop::new(Arc::clone(&running));
    let tx = match open_stream(ctx, method, guard) {
        Ok(tx) => tx,
        Err(e) => {
            close_async(py, &agen);
            return answer(Err(e));
        }
    };
    let feed = Feed {
        tx: Mutex::new(Some(tx)),
        opts,
        method: method.to_owned(),
    };
    let drive = py
        .import("pyrpc._stream")
        .and_then(|m| m.getattr("drive"))
        .and_then(|d| d.call1((&agen, feed)));
    let coro = match drive {
        Ok(c) => c,
        Err(e) => {
            close_async(py, &agen);
            answer(Err(crate::server::raised(py, &e, opts)));
            return;
        }
    };
    answer(Ok(Value::None));
    // The outcome of `drive` itself goes nowhere: it reports through `feed`.
    let (done_tx, _done_rx) = tokio::sync::oneshot::channel();
    let complete: aio::Complete = Box::new(|_py, _out| Ok(Value::None));
    aio::schedule(py, event_loop, coro, complete, done_tx, &running);
}

/// The start both kinds of generator share: a bounded channel whose
/// receiving end is offered (with `guard`, dropped with the stream) as the
/// reply of the call of `ctx`. The error says why the call cannot stream
/// (e.g. its client took no streamed reply).
fn open_stream<G: Send + 'static>(
    ctx: &CallContext,
    method: &str,
    guard: G,
) -> Result<mpsc::Sender<Item>, RemoteError> {
    let (tx, rx) = mpsc::channel::<Item>(AHEAD);
    ctx.reply_stream(value_stream(rx, guard))
        .map_err(|e| RemoteError::new(e.kind, format!("{method}() {}", e.message)))?;
    Ok(tx)
}

/// Closes an async generator that never ran (its `aclose()` coroutine is
/// itself closed: a never-started async generator has nothing to clean up).
fn close_async(py: Python<'_>, agen: &Bound<'_, PyAny>) {
    if let Ok(c) = agen.call_method0("aclose") {
        let _ = c.call_method0("close");
    }
    let _ = py;
}

/// The sending end of an async generator's stream, for
/// `pyrpc._stream.drive`.
#[pyclass(module = "pyrpc._pyrpc", frozen)]
pub(crate) struct Feed {
    tx: Mutex<Option<mpsc::Sender<Item>>>,
    opts: Options,
    method: String,
}

impl Feed {
    fn sender(&self) -> Option<mpsc::Sender<Item>> {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// 1: sent; 0: no room now; -1: the stream is gone.
    fn offer(&self, item: Item) -> i32 {
        let Some(tx) = self.sender() else { return -1 };
        match tx.try_send(item) {
            Ok(()) => 1,
            Err(mpsc::error::TrySendError::Full(_)) => 0,
            Err(mpsc::error::TrySendError::Closed(_)) => -1,
        }
    }
}

#[pymethods]
impl Feed {
    /// Sends one item: 1 when sent, 0 when there is no room yet (call
    /// `when_room`, then again), -1 when the client left the stream.
    fn push(&self, item: &Bound<'_, PyAny>) -> i32 {
        let v = crate::bigbytes::result_value(item, self.opts).map_err(|e| {
            RemoteError::new(
                ErrorKind::UnsupportedValue,
                format!(
                    "an item of {}() cannot be sent: {}",
                    self.method,
                    e.message("item")
                ),
            )
        });
        let failed = v.is_err();
        match self.offer(v) {
            1 if failed => -1,
            n => n,
        }
    }

    /// Ends the stream with the exception `exc`: as `push`.
    fn fail(&self, exc: &Bound<'_, PyAny>) -> i32 {
        let err = PyErr::from_value(exc.clone());
        self.offer(Err(crate::server::raised(exc.py(), &err, self.opts)))
    }

    /// Calls `callback()` (thread-safely, through `loop`) once there is
    /// room for an item, or the stream is gone.
    fn when_room(&self, event_loop: Py<PyAny>, callback: Py<PyAny>) -> PyResult<()> {
        let tx = self.sender();
        runtime::get()?.spawn(async move {
            if let Some(tx) = tx {
                // The permit is given back at once: the one producer pushes
                // next, so the room is still there.
                drop(tx.reserve().await);
            }
            crate::exit::attach(|py| {
                let _ = event_loop.call_method1(py, "call_soon_threadsafe", (callback,));
            });
        });
        Ok(())
    }

    /// Ends the stream (the generator finished).
    fn close(&self) {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

mod client;

pub(crate) use client::{AsyncStreamIter, StreamIter};

/// Registers the stream classes in the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<StreamIter>()?;
    m.add_class::<AsyncStreamIter>()?;
    m.add_class::<Feed>()?;
    Ok(())
}
