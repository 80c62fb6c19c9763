//! `ServerCore`: the Rust half of `pyrpc.Server`: binds, serves on the
//! pyrpc runtime, and stops.
//!
//! Each call runs on one of the server's Python worker threads ([`Pool`]:
//! threads that keep their Python thread state between calls; tokio's
//! blocking pool when they are all busy) and holds the GIL only while Python
//! runs (`callee.rs`): looking the method up on the callee, converting the
//! arguments, calling, converting the result, and calling the Python
//! server's `log_call` / `log_exception` hooks (`target.rs`). Concurrency
//! (and `synchronous=True`, one call at a time) is the server crate's
//! business.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyModule};
use pyrpc_server::{Server, ServerConfig, ServerHandle};
use pyrpc_transport::Address;

use crate::aio::{self, LoopSlot};
use crate::client::{address as parse_address, address_to_py, seconds, secret as parse_secret};
use crate::convert::Options;
use crate::errors;
use crate::pool::Pool;
use crate::runtime;

mod call_log;
mod callee;
mod target;

use callee::PyCallee;
pub(crate) use target::raised;
use target::{CallLog, Refs, Target};

/// The Rust half of `pyrpc.Server`: binds, serves on the pyrpc runtime, and
/// stops.
#[pyclass(module = "pyrpc._pyrpc", frozen)]
pub(crate) struct ServerCore {
    target: Arc<Target>,
    address: Address,
    config: ServerConfig,
    /// Python worker threads kept per bound server (see [`Pool`]).
    workers: usize,
    /// The running server and the pid it runs in; a server bound before a
    /// `fork()` does not run in the child.
    handle: Mutex<Option<(u32, ServerHandle)>>,
}

impl ServerCore {
    /// The handle, if the server was bound in this process.
    fn handle(&self) -> Option<ServerHandle> {
        let slot = self.handle.lock().unwrap_or_else(|e| e.into_inner());
        match &*slot {
            Some((pid, h)) if *pid == runtime::current_pid() => Some(h.clone()),
            _ => None,
        }
    }
}

#[pymethods]
impl ServerCore {
    /// Prepares a server for `callee` at `address`; [`ServerCore::bind`]
    /// starts it.
    #[new]
    #[pyo3(signature = (server, callee, address, *, nonblocking = false, synchronous = false,
        request_clean_interval = 60.0, allow_pickle = false, unix_mode = None, reserved = None,
        max_frame_len = None, max_connections = None, max_in_flight_per_connection = None,
        max_kept_results = None, idle_timeout = None, shutdown_grace = None,
        handshake_timeout = None, secret = None, workers = 16, tls_cert = None, tls_key = None,
        tls_client_ca = None, allow_remote_shutdown = None, result_store = None,
        result_lease = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        server: Py<PyAny>,
        callee: Py<PyAny>,
        address: &Bound<'_, PyAny>,
        nonblocking: bool,
        synchronous: bool,
        request_clean_interval: f64,
        allow_pickle: bool,
        unix_mode: Option<u32>,
        reserved: Option<HashSet<String>>,
        max_frame_len: Option<usize>,
        max_connections: Option<usize>,
        max_in_flight_per_connection: Option<usize>,
        max_kept_results: Option<usize>,
        idle_timeout: Option<f64>,
        shutdown_grace: Option<f64>,
        handshake_timeout: Option<f64>,
        secret: Option<&Bound<'_, PyAny>>,
        workers: usize,
        tls_cert: Option<std::path::PathBuf>,
        tls_key: Option<std::path::PathBuf>,
        tls_client_ca: Option<std::path::PathBuf>,
        allow_remote_shutdown: Option<bool>,
        result_store: Option<String>,
        result_lease: Option<f64>,
    ) -> PyResult<Self> {
        let d = ServerConfig::default();
        let secs = |name, v: Option<f64>, default| v.map_or(Ok(default), |s| seconds(name, s));
        let positive = |name, v: Option<usize>, default| match v {
            None => Ok(default),
            Some(0) => Err(PyValueError::new_err(format!("{name} must be at least 1"))),
            Some(n) => Ok(n),
        };
        let config = ServerConfig {
            nonblocking,
            synchronous,
            request_clean_interval: seconds("request_clean_interval", request_clean_interval)?,
            allow_pickle,
            unix_mode,
            max_frame_len: crate::client::frame_limit(max_frame_len, d.max_frame_len)?,
            max_connections: positive("max_connections", max_connections, d.max_connections)?,
            max_in_flight_per_connection: positive(
                "max_in_flight_per_connection",
                max_in_flight_per_connection,
                d.max_in_flight_per_connection,
            )?,
            max_kept_results: positive("max_kept_results", max_kept_results, d.max_kept_results)?,
            // As the original's timeouts: 0 means none.
            idle_timeout: match idle_timeout {
                None => d.idle_timeout,
                Some(0.0) => None,
                Some(s) => Some(seconds("idle_timeout", s)?),
            },
            shutdown_grace: secs("shutdown_grace", shutdown_grace, d.shutdown_grace)?,
            handshake_timeout: secs("handshake_timeout", handshake_timeout, d.handshake_timeout)?,
            secret: parse_secret(secret)?,
            tls: crate::tls::server_tls(tls_cert, tls_key, tls_client_ca)?,
            remote_shutdown: crate::tls::remote_shutdown(allow_remote_shutdown),
            result_store,
            result_lease: secs("result_lease", result_lease, d.result_lease)?,
            name: format!("pyrpc-python/{}", env!("CARGO_PKG_VERSION")),
            ..d
        };
        let call_log = CallLog::of(server.bind(py));
        Ok(ServerCore {
            target: Arc::new(Target {
                call_log,
                refs: Mutex::new(Some(Refs { server, callee })),
                reserved: reserved.unwrap_or_default(),
                opts: Options {
                    allow_pickle,
                    max_depth: config.max_value_depth,
                },
                event_loop: LoopSlot::default(),
                names: Default::default(),
            }),
            address: parse_address(address)?,
            config,
            workers,
            handle: Mutex::new(None),
        })
    }

    /// Binds the address and starts serving in the background; returns once
    /// the socket listens. `async def` methods run on `event_loop` when
    /// given (`await Server.serve()`), else on a loop the server starts.
    ///
    /// With `handoff_on_stdin` (the address a supervisor listens on), the
    /// server does not bind: it serves the connections that supervisor
    /// accepts and hands over through the channel found on file descriptor
    /// 0 (put there by `pyrpc._processes` in a worker process; taking it
    /// from stdin is how Rust takes a descriptor over without `unsafe`).
    #[pyo3(signature = (event_loop = None, handoff_on_stdin = None))]
    fn bind(
        &self,
        py: Python<'_>,
        event_loop: Option<Py<PyAny>>,
        handoff_on_stdin: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        if self.handle().is_some_and(|h| !h.is_finished()) {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(
                "the server is already running",
            ));
        }
        if let Some(event_loop) = event_loop {
            self.target.event_loop.borrow(event_loop);
        }
        let pool = Arc::new(Pool::new(self.workers));
        let server = Server::builder(PyCallee {
            target: Arc::clone(&self.target),
            pool: Arc::clone(&pool),
        })
        .config(self.config.clone())
        .build();
        let addr = &self.address;
        let handle = if let Some(local) = handoff_on_stdin {
            let local = parse_address(local)?;
            let channel = inherited_channel()?;
            runtime::block_on(py, async move {
                let listener = pyrpc_server::Listener::from_handoff(channel, local)
                    .map_err(pyrpc_server::ServerError::from)?;
                server.bind_listener(listener)
            })?
        } else {
            runtime::block_on(py, async move { server.bind(addr).await })?
        }
        .map_err(errors::server_error)?;
        // However the server stops (a client's `shutdown`, `shutdown()`,
        // Ctrl-C), let go of the Python objects once it has.
        let target = Arc::clone(&self.target);
        let stopped = handle.clone();
        let serving = crate::warm::serve(py)?;
        runtime::get()?.spawn(async move {
            stopped.wait().await;
            pool.close();
            drop(serving);
            let _ = tokio::task::spawn_blocking(move || {
                crate::exit::attach(|py| target.release(py));
            })
            .await;
        });
        let mut slot = self.handle.lock().unwrap_or_else(|e| e.into_inner());
        *slot = Some((runtime::current_pid(), handle));
        Ok(())
    }

    /// Blocks until the server has stopped. On Ctrl-C (or any exception a
    /// signal handler raises) the server is shut down gracefully first, then
    /// the exception propagates.
    fn wait(&self, py: Python<'_>) -> PyResult<()> {
        let Some(handle) = self.handle() else {
            return Ok(());
        };
        match runtime::block_on(py, handle.wait()) {
            Ok(()) => {
                self.target.release(py);
                Ok(())
            }
            Err(interrupted) => {
                handle.shutdown();
                // A second Ctrl-C stops waiting for the graceful end.
                runtime::block_on(py, handle.wait())?;
                self.target.release(py);
                Err(interrupted)
            }
        }
    }

    /// An `asyncio.Future` of `event_loop` that completes (with None) once
    /// the server stopped: what `await Server.serve()` waits for.
    fn wait_async<'py>(&self, event_loop: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let future = event_loop.call_method0("create_future")?;
        let Some(handle) = self.handle() else {
            future.call_method1("set_result", (event_loop.py().None(),))?;
            return Ok(future);
        };
        let target = Arc::clone(&self.target);
        let loop_ref = event_loop.clone().unbind();
        let future_ref = future.clone().unbind();
        runtime::get()?.spawn(async move {
            handle.wait().await;
            crate::exit::attach(|py| {
                target.release(py);
                let done = crate::client::resolver(py).and_then(|resolve| {
                    loop_ref.call_method1(
                        py,
                        "call_soon_threadsafe",
                        (resolve, future_ref, py.None(), py.None()),
                    )
                });
                // A closed loop: nobody is waiting any more.
                drop(done);
            });
        });
        Ok(future)
    }

    /// Starts a graceful shutdown and returns at once.
    fn shutdown(&self) {
        if let Some(h) = self.handle() {
            h.shutdown();
        }
    }

    /// Shuts down and returns once the server stopped (and removed its Unix
    /// socket file).
    fn shutdown_sync(&self, py: Python<'_>) -> PyResult<()> {
        if let Some(h) = self.handle() {
            h.shutdown();
            runtime::block_on(py, h.wait())?;
            self.target.release(py);
        }
        Ok(())
    }

    /// The limits in force, as a dict: sizes and counts as ints, durations
    /// in seconds (`idle_timeout` None for none).
    fn limits<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let c = &self.config;
        let d = PyDict::new(py);
        d.set_item("max_frame_len", c.max_frame_len)?;
        d.set_item("max_connections", c.max_connections)?;
        d.set_item(
            "max_in_flight_per_connection",
            c.max_in_flight_per_connection,
        )?;
        d.set_item("max_kept_results", c.max_kept_results)?;
        d.set_item("idle_timeout", c.idle_timeout.map(|t| t.as_secs_f64()))?;
        d.set_item("shutdown_grace", c.shutdown_grace.as_secs_f64())?;
        d.set_item("handshake_timeout", c.handshake_timeout.as_secs_f64())?;
        d.set_item(
            "request_clean_interval",
            c.request_clean_interval.as_secs_f64(),
        )?;
        Ok(d)
    }

    /// True while the server runs in this process.
    fn running(&self) -> bool {
        self.handle().is_some_and(|h| !h.is_finished())
    }

    /// The address the server listens on (the real port when bound to port
    /// 0), or None before `bind`.
    fn local_address(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        self.handle()
            .map(|h| address_to_py(py, h.local_address()))
            .transpose()
    }
}

/// Registers the server classes in the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ServerCore>()?;
    m.add_function(wrap_pyfunction!(aio::call_cancelled, m)?)?;
    Ok(())
}

/// Duplicates file descriptor 0: the worker's end of a hand-off channel
/// that `pyrpc._processes` put there.
fn inherited_channel() -> PyResult<std::os::unix::net::UnixStream> {
    use std::os::fd::AsFd;
    let fd = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| pyo3::exceptions::PyOSError::new_err(format!("no channel on stdin: {e}")))?;
    Ok(std::os::unix::net::UnixStream::from(fd))
}
