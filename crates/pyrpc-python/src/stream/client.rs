//! The client's side of a streamed reply: [`StreamIter`] (blocking) and
//! [`AsyncStreamIter`] (asyncio).

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use pyo3::exceptions::{PyStopAsyncIteration, PyStopIteration, PyValueError};
use pyo3::prelude::*;
use pyrpc_client::{CallError, ReplyStream};

use crate::convert::Options;
use crate::errors;
use crate::runtime::{self, Local, LocalRt};

/// A blocking iterator over a streamed reply (`for item in client.m()`).
#[pyclass(module = "pyrpc._pyrpc", name = "StreamIterator", frozen)]
pub(crate) struct StreamIter {
    stream: Mutex<Option<ReplyStream>>,
    /// Set by `close()`: a `next()` waiting for an item stops waiting.
    closed: tokio::sync::watch::Sender<bool>,
    /// The current-thread runtime the stream's connection lives on (kept
    /// running while the stream is: it is dropped after the stream).
    rt: LocalRt,
    opts: Options,
}

impl StreamIter {
    pub(crate) fn new(stream: ReplyStream, rt: LocalRt, opts: Options) -> Self {
        StreamIter {
            stream: Mutex::new(Some(stream)),
            closed: tokio::sync::watch::Sender::new(false),
            rt,
            opts,
        }
    }
}

/// What one step of a stream gave, as Python sees it.
fn step(
    py: Python<'_>,
    got: Option<Result<Bytes, CallError>>,
    opts: Options,
) -> PyResult<Option<Py<PyAny>>> {
    match got {
        Some(Ok(v)) => crate::client::decoded(py, v, opts).map(Some),
        Some(Err(e)) => Err(errors::call_error(py, e, opts)),
        None => Ok(None),
    }
}

#[pymethods]
impl StreamIter {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        // Not `lock()`: a thread waiting for it would hold the GIL that the
        // iterating thread needs to hand over its item.
        let mut slot = match self.stream.try_lock() {
            Ok(slot) => slot,
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                return Err(PyValueError::new_err(
                    "the stream is being iterated by another thread",
                ))
            }
        };
        let Some(stream) = slot.as_mut() else {
            return Err(PyStopIteration::new_err(()));
        };
        if *self.closed.borrow() {
            // `close()` from another thread: it takes the stream next.
            return Err(PyStopIteration::new_err(()));
        }
        // An item already here is taken without a trip through the runtime.
        let got = match futures::FutureExt::now_or_never(stream.next_raw()) {
            Some(got) => got,
            None => {
                let mut closed = self.closed.subscribe();
                let waited = runtime::block_on_local(py, &self.rt, async {
                    tokio::select! {
                        biased;
                        _ = closed.wait_for(|c| *c) => None,
                        got = stream.next_raw() => Some(got),
                    }
                })?;
                match waited {
                    Some(got) => got,
                    // Closed while waiting: the stream is left for `close()`
                    // to drop (and to send its `Cancel`).
                    None => return Err(PyStopIteration::new_err(())),
                }
            }
        };
        match step(py, got, self.opts) {
            Ok(Some(v)) => Ok(v),
            Ok(None) => {
                slot.take();
                Err(PyStopIteration::new_err(()))
            }
            Err(e) => {
                slot.take();
                Err(e)
            }
        }
    }

    /// Stops the stream: the server closes the generator. Idempotent. A
    /// `next()` waiting for an item in another thread stops waiting and
    /// raises `StopIteration`.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.closed.send_replace(true);
        // Waits without the GIL: the iterating thread holds the lock until
        // its `next()` returns, and may need the GIL to hand over an item
        // that arrived first.
        let taken = crate::exit::detach(py, || {
            self.stream.lock().unwrap_or_else(|e| e.into_inner()).take()
        });
        if taken.is_some() {
            drop(taken);
            flush_local(py, &self.rt);
        }
        Ok(())
    }
}

impl Drop for StreamIter {
    fn drop(&mut self) {
        let taken = self
            .stream
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if taken.is_some() {
            drop(taken);
            // The `Cancel` goes out on the current-thread runtime, which only
            // runs while someone waits on it: give it a few turns now.
            if tokio::runtime::Handle::try_current().is_err() {
                let rt = &self.rt;
                crate::exit::attach(|py| flush_local(py, rt));
            }
        }
    }
}

/// Gives the current-thread runtime a few turns, so what a dropped stream
/// queued (its `Cancel`, credits) goes out now.
fn flush_local(py: Python<'_>, rt: &Local) {
    crate::exit::detach(py, || {
        rt.runtime().block_on(async {
            for _ in 0..16 {
                tokio::task::yield_now().await;
            }
        })
    });
}

/// An async iterator over a streamed reply (`async for item in client.co_m()`).
#[pyclass(module = "pyrpc._pyrpc", name = "AsyncStreamIterator", frozen)]
pub(crate) struct AsyncStreamIter {
    stream: Arc<tokio::sync::Mutex<Option<ReplyStream>>>,
    opts: Options,
}

impl AsyncStreamIter {
    pub(crate) fn new(stream: ReplyStream, opts: Options) -> Self {
        AsyncStreamIter {
            stream: Arc::new(tokio::sync::Mutex::new(Some(stream))),
            opts,
        }
    }
}

#[pymethods]
impl AsyncStreamIter {
    /// The next item if one is here already: `(True, item)`; `(False,
    /// None)` when none is; raises `StopAsyncIteration` at the end, or the
    /// error that ended the stream.
    fn try_next(&self, py: Python<'_>) -> PyResult<(bool, Py<PyAny>)> {
        let Ok(mut slot) = self.stream.try_lock() else {
            return Ok((false, py.None()));
        };
        let Some(stream) = slot.as_mut() else {
            return Err(PyStopAsyncIteration::new_err(()));
        };
        let Some(got) = futures::FutureExt::now_or_never(stream.next_raw()) else {
            return Ok((false, py.None()));
        };
        match step(py, got, self.opts) {
            Ok(Some(v)) => Ok((true, v)),
            Ok(None) => {
                slot.take();
                Err(PyStopAsyncIteration::new_err(()))
            }
            Err(e) => {
                slot.take();
                Err(e)
            }
        }
    }

    /// An asyncio future of `loop` completed with the next item, or with
    /// `StopAsyncIteration` at the end, or the error that ended the stream.
    fn next_future<'py>(&self, event_loop: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let future = event_loop.call_method0("create_future")?;
        let stream = Arc::clone(&self.stream);
        let opts = self.opts;
        let loop_ref = event_loop.clone().unbind();
        let future_ref = future.clone().unbind();
        runtime::get()?.spawn(async move {
            let got = {
                let mut slot = stream.lock().await;
                match slot.as_mut() {
                    Some(s) => {
                        let got = s.next_raw().await;
                        if !matches!(got, Some(Ok(_))) {
                            slot.take();
                        }
                        got
                    }
                    None => None,
                }
            };
            crate::exit::attach(|py| {
                let (exc, value) = match step(py, got, opts) {
                    Ok(Some(v)) => (py.None(), v),
                    Ok(None) => (
                        PyStopAsyncIteration::new_err(()).into_value(py).into_any(),
                        py.None(),
                    ),
                    Err(e) => (e.into_value(py).into_any(), py.None()),
                };
                let done = crate::client::resolver(py).and_then(|resolve| {
                    loop_ref.call_method1(
                        py,
                        "call_soon_threadsafe",
                        (resolve, future_ref, exc, value),
                    )
                });
                drop(done);
            });
        });
        Ok(future)
    }

    /// Stops the stream: the server cancels the generator. Idempotent.
    fn close(&self) {
        if let Ok(mut slot) = self.stream.try_lock() {
            slot.take();
        } else {
            // A `next_future` holds it: drop it once that step is done.
            let stream = Arc::clone(&self.stream);
            if let Ok(rt) = runtime::get() {
                rt.spawn(async move {
                    stream.lock().await.take();
                });
            }
        }
    }
}
