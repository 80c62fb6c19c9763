//! What `ClientCore` and `MultiClientCore` share once a call is made: its
//! per-call options from Python's keywords, its reply as a Python object
//! (a value or a stream iterator), and, for `co_call`, the asyncio future
//! completed from the pyrpc runtime.

use std::future::Future;

use pyo3::prelude::*;
use pyrpc_client::{CallError, CallOptions, RawReply};

use crate::client::{decoded, resolver, seconds, CancelOnDone};
use crate::convert::Options;
use crate::errors;
use crate::runtime::{self, LocalRt};
use crate::stream::{AsyncStreamIter, StreamIter};

/// The per-call options, as Python passes them (seconds as floats).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PyCallOptions {
    pub(crate) call_timeout: Option<f64>,
    pub(crate) socket_connect_timeout: Option<f64>,
    pub(crate) socket_send_timeout: Option<f64>,
    pub(crate) socket_recv_timeout: Option<f64>,
    pub(crate) nb_fetch_tick: Option<f64>,
    pub(crate) nb_fetch_timeout: Option<f64>,
}

impl PyCallOptions {
    /// As [`CallOptions`]. A `call_timeout` of `None` (or 0, as in the
    /// original) means no limit; the other `None`s keep the client's setting.
    pub(crate) fn resolve(self) -> PyResult<CallOptions> {
        let opt = |name, v: Option<f64>| v.map(|s| seconds(name, s)).transpose();
        let call_timeout = match self.call_timeout {
            None => None,
            Some(0.0) => None,
            Some(s) => Some(seconds("call_timeout", s)?),
        };
        Ok(CallOptions {
            call_timeout: Some(call_timeout),
            socket_connect_timeout: opt("socket_connect_timeout", self.socket_connect_timeout)?,
            socket_send_timeout: opt("socket_send_timeout", self.socket_send_timeout)?,
            socket_recv_timeout: opt("socket_recv_timeout", self.socket_recv_timeout)?,
            nb_fetch_tick: opt("nb_fetch_tick", self.nb_fetch_tick)?,
            nb_fetch_timeout: opt("nb_fetch_timeout", self.nb_fetch_timeout)?,
        })
    }
}

/// A blocking call's reply as Python sees it: the value, a
/// `StreamIterator` for a streamed reply, or the call's exception.
/// A stream's items come through `rt`, the runtime its connection lives on.
pub(crate) fn reply(
    py: Python<'_>,
    rt: &LocalRt,
    result: Result<RawReply, CallError>,
    recv: Options,
) -> PyResult<Py<PyAny>> {
    match result {
        Ok(RawReply::Value(value)) => decoded(py, value, recv),
        Ok(RawReply::Stream(s)) => {
            Ok(Py::new(py, StreamIter::new(*s, LocalRt::clone(rt), recv))?.into_any())
        }
        Err(e) => Err(errors::call_error(py, e, recv)),
    }
}

/// Runs `call` on the pyrpc runtime and returns an `asyncio.Future` of
/// `event_loop` completed (through `call_soon_threadsafe`) with its value,
/// an `AsyncStreamIterator` for a streamed reply, or its exception.
/// Cancelling the future cancels the call.
pub(crate) fn co_future<'py, F>(
    event_loop: &Bound<'py, PyAny>,
    recv: Options,
    call: F,
) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = Result<RawReply, CallError>> + Send + 'static,
{
    let future = event_loop.call_method0("create_future")?;
    let rt = runtime::get()?;
    let loop_ref = event_loop.clone().unbind();
    let future_ref = future.clone().unbind();
    let task = rt.spawn(async move {
        let result = call.await;
        // The interpreter may be exiting or gone by now; then nobody waits
        // (and this thread must not take the GIL: see `exit`).
        crate::exit::attach(|py| {
            let outcome = match result {
                Ok(RawReply::Value(value)) => decoded(py, value, recv),
                // The Python side tells the two apart (`_stream.CoCall`).
                Ok(RawReply::Stream(s)) => {
                    Py::new(py, AsyncStreamIter::new(*s, recv)).map(Py::into_any)
                }
                Err(e) => Err(errors::call_error(py, e, recv)),
            };
            let (exc, value) = match outcome {
                Ok(v) => (py.None(), v),
                Err(e) => (e.into_value(py).into_any(), py.None()),
            };
            let done = resolver(py).and_then(|resolve| {
                loop_ref.call_method1(
                    py,
                    "call_soon_threadsafe",
                    (resolve, future_ref, exc, value),
                )
            });
            // A closed loop: the caller is gone, nothing to tell.
            drop(done);
        });
    });
    future.call_method1("add_done_callback", (CancelOnDone { task },))?;
    Ok(future)
}
