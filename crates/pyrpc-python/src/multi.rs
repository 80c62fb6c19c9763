//! `MultiClientCore`: the Rust half of `pyrpc.Client(address=[a, b, c])`,
//! a [`pyrpc_client::MultiClient`] made per process (as `ClientCore` does
//! with its client: the parent's is forgotten after a `fork()`).

use std::sync::Mutex;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use pyrpc_client::{ClientConfig, MultiClient, RawReply, Retry};
use pyrpc_transport::Address;

use crate::client::{address, address_to_py, client_config, seconds};
use crate::convert::Options;
use crate::direct;
use crate::errors;
use crate::resolve::{self, PyCallOptions};
use crate::runtime::{self, LocalRt};

type Slot = Mutex<Option<(u32, MultiClient)>>;

/// A method as `list_methods` returns it: `(name, signature, doc)`.
type MethodTuple = (String, Option<String>, Option<String>);

/// The Rust half of a `pyrpc.Client` over several servers.
#[pyclass(module = "pyrpc._pyrpc", frozen)]
pub(crate) struct MultiClientCore {
    addresses: Vec<Address>,
    config: ClientConfig,
    allow_pickle: bool,
    /// The client of blocking calls (on the current-thread runtime) and the
    /// pid that made it.
    inner: Slot,
    /// The client of `co_call` (on the multi-thread runtime).
    async_inner: Slot,
}

impl MultiClientCore {
    /// The client of blocking calls and the (shared) runtime it lives on.
    fn client(&self) -> PyResult<(LocalRt, MultiClient)> {
        let rt = runtime::local()?;
        let client = self.client_in(&self.inner, rt.runtime())?;
        Ok((rt, client))
    }

    fn async_client(&self) -> PyResult<MultiClient> {
        self.client_in(&self.async_inner, runtime::get()?)
    }

    fn client_in(&self, slot: &Slot, rt: &tokio::runtime::Runtime) -> PyResult<MultiClient> {
        let pid = runtime::current_pid();
        let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
        match slot.take() {
            Some((owner, client)) if owner == pid => {
                *slot = Some((owner, client.clone()));
                return Ok(client);
            }
            // Made by the parent before a fork: see `ClientCore::client_in`.
            Some((_, stale)) => std::mem::forget(stale),
            None => {}
        }
        let _entered = rt.enter();
        let client = MultiClient::new(self.addresses.clone(), self.config.clone())
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        *slot = Some((pid, client.clone()));
        Ok(client)
    }

    /// As `ClientCore::send_options`, against the strictest server met.
    fn send_options(&self, client: &MultiClient) -> Options {
        let info = client.server_info();
        let server_refuses = info.as_ref().is_some_and(|info| !info.pickle);
        let mut max_depth = self.config.max_value_depth;
        if let Some(theirs) = info.map(|i| i.max_value_depth as usize) {
            if theirs != 0 {
                max_depth = max_depth.min(theirs);
            }
        }
        Options {
            allow_pickle: self.allow_pickle && !server_refuses,
            max_depth,
        }
    }

    fn recv_options(&self) -> Options {
        Options {
            allow_pickle: self.allow_pickle,
            max_depth: self.config.max_value_depth,
        }
    }
}

impl Drop for MultiClientCore {
    fn drop(&mut self) {
        let pid = runtime::current_pid();
        for slot in [&mut self.inner, &mut self.async_inner] {
            match slot.get_mut().unwrap_or_else(|e| e.into_inner()).take() {
                Some((owner, client)) if owner == pid => drop(client),
                Some((_, stale)) => std::mem::forget(stale),
                None => {}
            }
        }
    }
}

#[pymethods]
impl MultiClientCore {
    /// A client core over `addresses` (a list); connects on first use.
    #[new]
    #[pyo3(signature = (addresses, *, allow_pickle = false, name = None, max_frame_len = None,
        secret = None, tls_ca = None, tls_cert = None, tls_key = None, tls_server_name = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        addresses: &Bound<'_, PyList>,
        allow_pickle: bool,
        name: Option<String>,
        max_frame_len: Option<usize>,
        secret: Option<&Bound<'_, PyAny>>,
        tls_ca: Option<&Bound<'_, PyAny>>,
        tls_cert: Option<std::path::PathBuf>,
        tls_key: Option<std::path::PathBuf>,
        tls_server_name: Option<String>,
    ) -> PyResult<Self> {
        let addresses = addresses
            .iter()
            .map(|a| address(&a))
            .collect::<PyResult<Vec<_>>>()?;
        if addresses.is_empty() {
            return Err(PyValueError::new_err("the list of addresses is empty"));
        }
        let config = client_config(
            name,
            max_frame_len,
            secret,
            tls_ca,
            tls_cert,
            tls_key,
            tls_server_name,
        )?;
        Ok(MultiClientCore {
            addresses,
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

    /// The addresses, in Python's form, as a list.
    #[getter]
    fn address(&self, py: Python<'_>) -> PyResult<Vec<Py<PyAny>>> {
        self.addresses
            .iter()
            .map(|a| address_to_py(py, a))
            .collect()
    }

    /// How many calls each server answered, in address order.
    fn served(&self) -> PyResult<Vec<u64>> {
        Ok(self.client()?.1.served())
    }

    /// Calls `method(*args, **kwargs)` on one of the servers.
    ///
    /// Every parameter may be given by position, in `ClientCore.call`'s
    /// order (`idempotent` last): `pyrpc.Client` passes them so on every
    /// call, which PyO3 takes without matching keyword names.
    #[pyo3(signature = (method, args, kwargs = None, nonblocking = false,
        call_timeout = None, socket_connect_timeout = None, socket_send_timeout = None,
        socket_recv_timeout = None, nb_fetch_tick = None, nb_fetch_timeout = None,
        idempotent = false))]
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
        idempotent: bool,
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
        let retry = if idempotent {
            Retry::Safe
        } else {
            Retry::Never
        };
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
                    .call_streaming_raw_with(method, call_args, &opts, retry)
                    .await
            }
        })?;
        resolve::reply(py, &rt, result, self.recv_options())
    }

    /// As `ClientCore.co_call`, on one of the servers.
    #[pyo3(signature = (event_loop, method, args, kwargs = None, *, nonblocking = false,
        idempotent = false, call_timeout = None, socket_connect_timeout = None,
        socket_send_timeout = None, socket_recv_timeout = None, nb_fetch_tick = None,
        nb_fetch_timeout = None))]
    #[allow(clippy::too_many_arguments)]
    fn co_call<'py>(
        &self,
        event_loop: &Bound<'py, PyAny>,
        method: &str,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
        nonblocking: bool,
        idempotent: bool,
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
        let retry = if idempotent {
            Retry::Safe
        } else {
            Retry::Never
        };
        let client = self.async_client()?;
        let call_args = direct::encode_args(args, kwargs, self.send_options(&client))?;
        let method = method.to_owned();
        resolve::co_future(event_loop, self.recv_options(), async move {
            if nonblocking {
                client
                    .nb_call_raw_with(&method, call_args, &opts)
                    .await
                    .map(RawReply::Value)
            } else {
                client
                    .call_streaming_raw_with(&method, call_args, &opts, retry)
                    .await
            }
        })
    }

    /// True when any server answers a ping within `timeout` seconds.
    #[pyo3(signature = (timeout = 0.1))]
    fn connected(&self, py: Python<'_>, timeout: f64) -> PyResult<bool> {
        let timeout = seconds("timeout", timeout)?;
        let (rt, client) = self.client()?;
        runtime::block_on_local(py, &rt, async { client.connected(timeout).await })
    }

    /// Asks every server to shut down.
    fn shutdown(&self, py: Python<'_>) -> PyResult<()> {
        let (rt, client) = self.client()?;
        match runtime::block_on_local(py, &rt, async { client.shutdown().await })? {
            Ok(()) => Ok(()),
            Err(e) => Err(errors::call_error(py, e, self.recv_options())),
        }
    }

    /// The methods of one server that answers.
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

    /// The statistics of one server that answers, as a dict.
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

    /// What the first server met announced, as a dict, or `None`.
    fn server_info<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(info) = self.client()?.1.server_info() else {
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
