//! `ClientCore`: the Rust half of `pyrpc.Client`.
//!
//! The Python class `pyrpc.Client` (in `python/pyrpc/__init__.py`) owns the
//! original API: class attributes, `__getattr__` relays, per-call keyword
//! stripping and the logging hooks. It hands each call to a `ClientCore` with
//! the options already resolved. `ClientCore` converts the arguments, runs the
//! call on its own current-thread runtime ([`runtime::Local`]) with the GIL
//! released, and maps the outcome back.
//!
//! One `ClientCore` is shared by every thread using the `Client`: it holds one
//! [`pyrpc_client::Client`], which multiplexes concurrent calls over one
//! connection. The Rust client is tagged with the pid that made it; after a
//! `fork()` the child makes its own (the parent's connection and tasks do not
//! exist in the child) and the parent's is forgotten, never dropped, there.

use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use pyrpc_client::ClientConfig;
use pyrpc_transport::Address;

use crate::convert::Options;
use crate::direct;
use crate::errors;
use crate::resolve::{self, PyCallOptions};
use crate::runtime::{self, LocalRt};
use pyrpc_client::RawReply;

mod futures;
mod settings;

pub(crate) use futures::{resolver, CancelOnDone};
use settings::parse_address;
pub(crate) use settings::{address, address_to_py, client_config, frame_limit, seconds, secret};

/// The Rust half of `pyrpc.Client`: one connection, shared by threads and
/// tasks, re-made after `fork()`.
#[pyclass(module = "pyrpc._pyrpc", frozen)]
pub(crate) struct ClientCore {
    /// Where the server is.
    address: Address,
    /// The defaults of every call; the Python class passes resolved options
    /// with each call anyway.
    config: ClientConfig,
    /// Whether this side sends other objects pickled and unpickles received
    /// pickles (`Client.allow_pickle`).
    allow_pickle: bool,
    /// The Rust client of the blocking calls, the current-thread runtime
    /// its connection lives on (this client's own, driven by the calling
    /// threads), and the pid that made them. A std mutex: it is held only
    /// to clone two `Arc`s, never across an await.
    inner: Mutex<Option<(u32, LocalRt, pyrpc_client::Client)>>,
    /// The Rust client of `co_call` (its own connection, on the
    /// multi-thread runtime, which runs it in the background); made on the
    /// first `co_call`.
    async_inner: Mutex<Option<(u32, pyrpc_client::Client)>>,
}

impl ClientCore {
    /// The Rust client of this process for blocking calls and the runtime
    /// to run them on, made on first use and after a fork.
    fn client(&self) -> PyResult<(LocalRt, pyrpc_client::Client)> {
        let pid = runtime::current_pid();
        let mut slot = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((owner, rt, client)) = &*slot {
            if *owner == pid {
                return Ok((LocalRt::clone(rt), client.clone()));
            }
        }
        // Made by the parent before a fork: its connection and tasks do not
        // exist here, and dropping them could touch the parent's dead
        // runtime. Forget them.
        if let Some(stale) = slot.take() {
            std::mem::forget(stale);
        }
        let rt = runtime::new_local()?;
        let client = {
            let _entered = rt.runtime().enter();
            pyrpc_client::Client::with_config(self.address.clone(), self.config.clone())
        };
        *slot = Some((pid, LocalRt::clone(&rt), client.clone()));
        Ok((rt, client))
    }

    /// The Rust client of this process for `co_call`.
    fn async_client(&self) -> PyResult<pyrpc_client::Client> {
        let rt = runtime::get()?;
        let pid = runtime::current_pid();
        let mut slot = self.async_inner.lock().unwrap_or_else(|e| e.into_inner());
        match slot.take() {
            Some((owner, client)) if owner == pid => {
                *slot = Some((owner, client.clone()));
                return Ok(client);
            }
            // Made by the parent before a fork: see `client`.
            Some((_, stale)) => std::mem::forget(stale),
            None => {}
        }
        let _entered = rt.enter();
        let client = pyrpc_client::Client::with_config(self.address.clone(), self.config.clone());
        *slot = Some((pid, client.clone()));
        Ok(client)
    }

    /// Conversion options for this call's arguments: pickles only when this
    /// client allows them and the server did not say it refuses them.
    /// How arguments are converted: pickles only when both sides allow
    /// them, nested no deeper than this client and the server (when known)
    /// accept.
    fn send_options(&self, client: &pyrpc_client::Client) -> Options {
        // Read in place, not copied: this runs on every call.
        let (server_refuses, theirs) = client.with_server_info(|info| {
            (
                info.is_some_and(|info| !info.pickle),
                info.map_or(0, |i| i.max_value_depth as usize),
            )
        });
        let mut max_depth = client.config().max_value_depth;
        if theirs != 0 {
            max_depth = max_depth.min(theirs);
        }
        Options {
            allow_pickle: self.allow_pickle && !server_refuses,
            max_depth,
        }
    }

    fn recv_options(&self) -> Options {
        Options {
            allow_pickle: self.allow_pickle,
            ..Options::default()
        }
    }

    /// How a call's result is converted: nested no deeper than this client
    /// accepts.
    fn result_options(&self, client: &pyrpc_client::Client) -> Options {
        Options {
            max_depth: client.config().max_value_depth,
            ..self.recv_options()
        }
    }
}

impl Drop for ClientCore {
    /// Closes the connections. The blocking one closes with its runtime
    /// (dropped here unless a stream of it is still being read), which
    /// drops the connection's tasks.
    fn drop(&mut self) {
        let pid = runtime::current_pid();
        match self
            .inner
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            // The client first: its runtime's tasks end with the runtime.
            Some((owner, rt, client)) if owner == pid => {
                drop(client);
                if rt.is_shared() {
                    flush(&rt);
                }
                drop(rt);
            }
            // Made before a fork: see `client`.
            Some(stale) => std::mem::forget(stale),
            None => {}
        }
        match self
            .async_inner
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            Some((owner, client)) if owner == pid => drop(client),
            Some(stale) => std::mem::forget(stale),
            None => {}
        }
    }
}

/// Gives the shared runtime (which runs only while some thread waits in a
/// call) a few turns, so that a dropped client's reader task ends (freeing
/// its buffer) and its socket closes now, not at the process's next call.
/// Not from inside a runtime (a garbage collection on one of its threads):
/// `block_on` is refused there, and the next call runs it then.
fn flush(rt: &runtime::Local) {
    if tokio::runtime::Handle::try_current().is_ok() {
        return;
    }
    crate::exit::attach(|py| {
        crate::exit::detach(py, || {
            rt.runtime().block_on(async {
                for _ in 0..4 {
                    tokio::task::yield_now().await;
                }
            });
        });
    });
}

/// A method as `ClientCore.list_methods` returns it: `(name, signature, doc)`.
type MethodTuple = (String, Option<String>, Option<String>);

#[pymethods]
impl ClientCore {
    /// Makes a client core for `address`; it connects on first use.
    #[new]
    #[pyo3(signature = (address, *, allow_pickle = false, name = None, max_frame_len = None,
        secret = None, tls_ca = None, tls_cert = None, tls_key = None, tls_server_name = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        address: &Bound<'_, PyAny>,
        allow_pickle: bool,
        name: Option<String>,
        max_frame_len: Option<usize>,
        secret: Option<&Bound<'_, PyAny>>,
        tls_ca: Option<&Bound<'_, PyAny>>,
        tls_cert: Option<std::path::PathBuf>,
        tls_key: Option<std::path::PathBuf>,
        tls_server_name: Option<String>,
    ) -> PyResult<Self> {
        let config = client_config(
            name,
            max_frame_len,
            secret,
            tls_ca,
            tls_cert,
            tls_key,
            tls_server_name,
        )?;
        Ok(ClientCore {
            address: self::address(address)?,
            config,
            allow_pickle,
            inner: Mutex::new(None),
            async_inner: Mutex::new(None),
        })
    }

    /// The limits in force, as a dict (`max_frame_len`).
    fn limits<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("max_frame_len", self.config.max_frame_len)?;
        Ok(d)
    }

    /// The address, in Python's form.
    #[getter]
    fn address(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        address_to_py(py, &self.address)
    }

    /// Calls `method(*args, **kwargs)` on the server and returns its result.
    ///
    /// Every parameter may be given by position: `pyrpc.Client` passes them
    /// so on every call, which PyO3 takes without matching ten keyword
    /// names.
    #[pyo3(signature = (method, args, kwargs = None, nonblocking = false,
        call_timeout = None, socket_connect_timeout = None, socket_send_timeout = None,
        socket_recv_timeout = None, nb_fetch_tick = None, nb_fetch_timeout = None))]
    #[allow(clippy::too_many_arguments)]
    fn call(
        &self,
        py: Python<'_>,
        method: &str,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
        nonblocking: bool,
        call_timeout: Option<f64>,
        socket_connect_timeout: Option<f64>,
        socket_send_timeout: Option<f64>,
        socket_recv_timeout: Option<f64>,
        nb_fetch_tick: Option<f64>,
        nb_fetch_timeout: Option<f64>,
    ) -> PyResult<Py<PyAny>> {
        let opts = PyCallOptions {
            call_timeout,
            socket_connect_timeout,
            socket_send_timeout,
            socket_recv_timeout,
            nb_fetch_tick,
            nb_fetch_timeout,
        }
        .resolve()?;
        let (rt, client) = self.client()?;
        let call_args = direct::encode_args(args, kwargs, self.send_options(&client))?;
        let result = runtime::block_on_local(py, &rt, async {
            if nonblocking {
                client
                    .nb_call_raw_with(method, call_args, &opts)
                    .await
                    .map(RawReply::Value)
            } else {
                client
                    .call_streaming_raw_with(method, call_args, &opts)
                    .await
            }
        })?;
        resolve::reply(py, &rt, result, self.result_options(&client))
    }

    /// Starts `method(*args, **kwargs)` and returns an `asyncio.Future` of
    /// `loop` that completes with its result. The call runs on the pyrpc
    /// runtime; the future is completed through `loop.call_soon_threadsafe`.
    /// Cancelling the future cancels the call.
    #[pyo3(signature = (event_loop, method, args, kwargs = None, *, nonblocking = false,
        call_timeout = None, socket_connect_timeout = None, socket_send_timeout = None,
        socket_recv_timeout = None, nb_fetch_tick = None, nb_fetch_timeout = None))]
    #[allow(clippy::too_many_arguments)]
    fn co_call<'py>(
        &self,
        event_loop: &Bound<'py, PyAny>,
        method: &str,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
        nonblocking: bool,
        call_timeout: Option<f64>,
        socket_connect_timeout: Option<f64>,
        socket_send_timeout: Option<f64>,
        socket_recv_timeout: Option<f64>,
        nb_fetch_tick: Option<f64>,
        nb_fetch_timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let opts = PyCallOptions {
            call_timeout,
            socket_connect_timeout,
            socket_send_timeout,
            socket_recv_timeout,
            nb_fetch_tick,
            nb_fetch_timeout,
        }
        .resolve()?;
        let client = self.async_client()?;
        let call_args = direct::encode_args(args, kwargs, self.send_options(&client))?;
        let recv = self.result_options(&client);
        let method = method.to_owned();
        resolve::co_future(event_loop, recv, async move {
            if nonblocking {
                client
                    .nb_call_raw_with(&method, call_args, &opts)
                    .await
                    .map(RawReply::Value)
            } else {
                client
                    .call_streaming_raw_with(&method, call_args, &opts)
                    .await
            }
        })
    }

    /// True when the server answers a ping within `timeout` seconds.
    #[pyo3(signature = (timeout = 0.1))]
    fn connected(&self, py: Python<'_>, timeout: f64) -> PyResult<bool> {
        let timeout = seconds("timeout", timeout)?;
        let (rt, client) = self.client()?;
        runtime::block_on_local(py, &rt, async { client.connected(timeout).await })
    }

    /// Asks the server to shut down; returns once it acknowledged.
    fn shutdown(&self, py: Python<'_>) -> PyResult<()> {
        let (rt, client) = self.client()?;
        match runtime::block_on_local(py, &rt, async { client.shutdown().await })? {
            Ok(()) => Ok(()),
            Err(e) => Err(errors::call_error(py, e, self.recv_options())),
        }
    }

    /// The server's methods (`ListMethods`), as `(name, signature, doc)`
    /// tuples sorted by name, the built-ins `connected` and `shutdown` last.
    fn list_methods(&self, py: Python<'_>) -> PyResult<Vec<MethodTuple>> {
        let (rt, client) = self.client()?;
        match runtime::block_on_local(py, &rt, async { client.list_methods().await })? {
            Ok(methods) => Ok(methods
                .into_iter()
                .map(|m| (m.name, m.signature, m.doc))
                .collect()),
            Err(e) => Err(errors::call_error(py, e, self.recv_options())),
        }
    }

    /// The server's statistics (`Stats`) as a dict; durations in seconds.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (rt, client) = self.client()?;
        let s = match runtime::block_on_local(py, &rt, async { client.stats().await })? {
            Ok(s) => s,
            Err(e) => return Err(errors::call_error(py, e, self.recv_options())),
        };
        let d = PyDict::new(py);
        d.set_item("calls", s.calls)?;
        d.set_item("errors", s.errors)?;
        d.set_item("in_flight", s.in_flight)?;
        d.set_item("kept_results", s.kept_results)?;
        d.set_item("connections", s.connections)?;
        d.set_item("uptime", s.uptime.as_secs_f64())?;
        d.set_item("latency_p50", s.latency.p50.as_secs_f64())?;
        d.set_item("latency_p90", s.latency.p90.as_secs_f64())?;
        d.set_item("latency_p99", s.latency.p99.as_secs_f64())?;
        d.set_item("latency_max", s.latency.max.as_secs_f64())?;
        Ok(d)
    }

    /// What the server announced in its last hello, as a dict, or `None`
    /// before the first connection.
    fn server_info<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        // The blocking calls' connection, else `co_call`'s if only that one
        // has met the server.
        let async_info = || {
            let pid = runtime::current_pid();
            let slot = self.async_inner.lock().unwrap_or_else(|e| e.into_inner());
            match &*slot {
                Some((owner, c)) if *owner == pid => c.server_info(),
                _ => None,
            }
        };
        let Some(info) = self.client()?.1.server_info().or_else(async_info) else {
            return Ok(None);
        };
        let d = PyDict::new(py);
        d.set_item("protocol_version", info.protocol_version)?;
        d.set_item("name", info.name)?;
        d.set_item("nonblocking", info.nonblocking)?;
        d.set_item("max_frame_len", info.max_frame_len)?;
        d.set_item("max_value_depth", info.max_value_depth)?;
        d.set_item("pickle", info.pickle)?;
        d.set_item(
            "max_in_flight_per_connection",
            info.max_in_flight_per_connection,
        )?;
        Ok(Some(d))
    }
}

/// Registers the client classes in the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ClientCore>()?;
    m.add_class::<crate::multi::MultiClientCore>()?;
    m.add_function(wrap_pyfunction!(parse_address, m)?)?;
    Ok(())
}

/// A call's encoded result as a Python object; a malformed or too deep
/// value is the `ProtocolError` it was before values were decoded here.
pub(crate) fn decoded(py: Python<'_>, value: bytes::Bytes, opts: Options) -> PyResult<Py<PyAny>> {
    // A large `bytes` result: into its final object without a second copy.
    let value = match crate::bigbytes::take(py, value) {
        Ok(obj) => return obj,
        Err(value) => value,
    };
    direct::decode(py, &value, opts).map_err(|e| match e {
        direct::DecodeError::Py(e) => e,
        direct::DecodeError::Value(e) => {
            errors::call_error(py, pyrpc_client::CallError::Value(e), opts)
        }
    })
}
