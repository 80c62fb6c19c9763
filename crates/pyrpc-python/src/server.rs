//! `ServerCore`: the Rust half of `pyrpc.Server`, and [`PyCallee`], a
//! [`Callee`] that calls methods of a Python object.
//!
//! Each call runs on one of the server's Python worker threads ([`Pool`]:
//! threads that keep their Python thread state between calls; tokio's
//! blocking pool when they are all busy) and holds the GIL only while Python
//! runs: looking the method up on the callee (per call, so
//! `server.echo = echo` after construction is served), converting the
//! arguments, calling, converting the result, and calling the Python
//! server's `log_call` / `log_exception` hooks. Concurrency (and
//! `synchronous=True`, one call at a time) is the server crate's business.

// `Result<Value, RemoteError>` is what `Callee` returns (the server crate's
// contract); boxing the error here would only add a conversion.
#![allow(clippy::result_large_err)]

use std::collections::{HashSet, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Condvar, Mutex};

use pyo3::exceptions::{PyAttributeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyModule, PyTuple};
use pyrpc_proto::{Args, ErrorKind, MethodInfo, RemoteError, Value};
use pyrpc_server::{CallContext, CallFuture, Callee, Server, ServerConfig, ServerHandle};
use pyrpc_transport::Address;

use crate::client::{address as parse_address, address_to_py, seconds, secret as parse_secret};
use crate::convert::{self, Options};
use crate::errors;
use crate::runtime;

/// The Python objects a call needs.
struct Refs {
    /// The `pyrpc.Server` instance; its `log_call` / `log_exception` are
    /// called after each call.
    server: Py<PyAny>,
    /// The object whose methods are served (`Server.callee`).
    callee: Py<PyAny>,
}

/// What a call needs from Python: the served object and the server (for the
/// logging hooks), and how to serve.
///
/// The Python objects are let go once the server stopped
/// ([`Target::release`]). The Python server holds its `ServerCore`, which
/// holds this; while the server runs, this reference keeps the Python server
/// alive (a server started with `start_in_thread()` serves on even when
/// nothing else refers to it). Kept after the stop, it would make a cycle
/// through Rust that Python's garbage collector cannot see, and a stopped
/// server would never be freed.
struct Target {
    /// The Python objects; `None` once the server stopped.
    refs: Mutex<Option<Refs>>,
    /// Names never served even though the callee has them: the `pyrpc.Server`
    /// machinery (`start`, `log_call`, ...) when the callee is the server.
    reserved: HashSet<String>,
    /// How values convert (pickles only if the server allows them).
    opts: Options,
}

impl Target {
    /// New references to the server and the callee, unless released.
    fn refs(&self, py: Python<'_>) -> Option<Refs> {
        let slot = self.refs.lock().unwrap_or_else(|e| e.into_inner());
        slot.as_ref().map(|r| Refs {
            server: r.server.clone_ref(py),
            callee: r.callee.clone_ref(py),
        })
    }

    /// Lets go of the Python objects (the server stopped). Calls still
    /// running hold their own references. Takes `Python` to drop them with
    /// the GIL held (and the lock released: a `__del__` may run).
    fn release(&self, _py: Python<'_>) {
        let taken = self.refs.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(taken);
    }

    /// Runs one call with the GIL held.
    fn run(&self, py: Python<'_>, method: &str, args: Args) -> Result<Value, RemoteError> {
        if method.starts_with('_') || self.reserved.contains(method) {
            return Err(RemoteError::no_such_method(method));
        }
        let Some(Refs { server, callee }) = self.refs(py) else {
            return Err(RemoteError::new(
                ErrorKind::ShuttingDown,
                "the server has stopped",
            ));
        };
        let server = server.bind(py);
        let callee = callee.bind(py);
        if is_property(callee, method) {
            return Err(RemoteError::no_such_method(method));
        }
        let func = match callee.getattr(method) {
            Ok(f) if f.is_callable() && module_serves(callee, method, &f) => f,
            Ok(_) => return Err(RemoteError::no_such_method(method)),
            Err(e) if e.is_instance_of::<PyAttributeError>(py) => {
                return Err(RemoteError::no_such_method(method))
            }
            // A dynamic `__getattr__` that raised: the callee's own failure.
            Err(e) => return Err(errors::remote_from_py(py, &e, self.opts)),
        };
        let (pargs, pkwargs) = convert::from_args(py, args, self.opts).map_err(|e| {
            RemoteError::new(
                ErrorKind::UnsupportedValue,
                format!("cannot accept the arguments of {method}(): {e}"),
            )
        })?;
        match func.call(&pargs, Some(&pkwargs)) {
            Ok(ret) => match convert::to_value(&ret, self.opts) {
                Ok(v) => {
                    log(server, "log_call", &ret, method, &pargs, &pkwargs);
                    Ok(v)
                }
                Err(e) => {
                    let err = PyTypeError::new_err(e.message("result"));
                    log(
                        server,
                        "log_exception",
                        err.value(py),
                        method,
                        &pargs,
                        &pkwargs,
                    );
                    Err(errors::remote_from_py(py, &err, self.opts))
                }
            },
            Err(err) => {
                log(
                    server,
                    "log_exception",
                    err.value(py),
                    method,
                    &pargs,
                    &pkwargs,
                );
                Err(errors::remote_from_py(py, &err, self.opts))
            }
        }
    }

    /// The methods a client may call, as `ListMethods` reports them: the
    /// public callable attributes of the callee that [`Target::run`] would
    /// serve, with `inspect.signature` (a bound method's without `self`)
    /// and `inspect.getdoc`. Properties are left out (and not run), as are
    /// attributes that fail to load and signatures `inspect` cannot tell.
    fn describe(&self, py: Python<'_>) -> PyResult<Vec<MethodInfo>> {
        let Some(Refs { callee, .. }) = self.refs(py) else {
            return Ok(Vec::new());
        };
        let callee = callee.bind(py);
        let inspect = py.import("inspect")?;
        let mut out = Vec::new();
        for name in callee.dir()? {
            let name: String = name.extract()?;
            if name.starts_with('_') || self.reserved.contains(&name) || is_property(callee, &name)
            {
                continue;
            }
            let Ok(func) = callee.getattr(name.as_str()) else {
                continue;
            };
            if !func.is_callable() || !module_serves(callee, &name, &func) {
                continue;
            }
            let mut info = MethodInfo::new(name);
            if let Ok(sig) = inspect.call_method1("signature", (&func,)) {
                info.signature = sig.str().ok().map(|s| s.to_string());
            }
            if let Ok(doc) = inspect.call_method1("getdoc", (&func,)) {
                info.doc = doc.extract::<Option<String>>().ok().flatten();
            }
            out.push(info);
        }
        Ok(out)
    }
}

static PROPERTY_TYPES: PyOnceLock<Py<PyTuple>> = PyOnceLock::new();

/// When the callee is a module, only what the module itself offers is served:
/// the names in its `__all__` if it has one, else the functions and classes
/// defined in it (`attr.__module__` is the module's name). What it merely
/// imported (`from os import system`, `from subprocess import run`) is not a
/// remote method. Any other callee: always true.
fn module_serves(callee: &Bound<'_, PyAny>, name: &str, attr: &Bound<'_, PyAny>) -> bool {
    if !callee.is_instance_of::<PyModule>() {
        return true;
    }
    if let Ok(all) = callee.getattr("__all__") {
        return all.contains(name).unwrap_or(false);
    }
    match (callee.getattr("__name__"), attr.getattr("__module__")) {
        (Ok(module), Ok(defined_in)) => module.eq(defined_in).unwrap_or(false),
        _ => false,
    }
}

/// True when `name` is a property (or `functools.cached_property`) of the
/// callee's class: never served, and never run to find out whether its value
/// is callable (a getter may have side effects).
fn is_property(callee: &Bound<'_, PyAny>, name: &str) -> bool {
    let py = callee.py();
    let types = PROPERTY_TYPES.get_or_try_init(py, || {
        let property = py.import("builtins")?.getattr("property")?;
        let cached = py.import("functools")?.getattr("cached_property")?;
        PyResult::Ok(PyTuple::new(py, [property, cached])?.unbind())
    });
    let Ok(types) = types else {
        return false;
    };
    // On the class the descriptor itself comes back: nothing runs.
    match callee.get_type().getattr(name) {
        Ok(attr) => attr.is_instance(types.bind(py)).unwrap_or(false),
        Err(_) => false,
    }
}

/// Calls the server's logging hook `hook(ret_or_exc, method, args, kwargs)`;
/// a hook that raises is reported as unraisable, never to the client.
fn log(
    server: &Bound<'_, PyAny>,
    hook: &str,
    ret_or_exc: &Bound<'_, PyAny>,
    method: &str,
    args: &Bound<'_, PyTuple>,
    kwargs: &Bound<'_, PyDict>,
) {
    if let Err(e) = server.call_method1(hook, (ret_or_exc, method, args, kwargs)) {
        e.write_unraisable(server.py(), Some(server));
    }
}

/// One call for a [`Pool`] worker: runs with the GIL held.
type Job = Box<dyn FnOnce(Python<'_>) + Send>;

/// What the workers of a [`Pool`] share.
struct Shared {
    state: Mutex<PoolState>,
    /// Signalled when a job is queued or the pool closes.
    ready: Condvar,
}

struct PoolState {
    queue: VecDeque<Job>,
    /// Workers waiting for a job.
    idle: usize,
    /// Workers alive.
    threads: usize,
    /// Set when the pool's owner is gone: workers finish the queue and exit.
    closed: bool,
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
/// run at once is bounded by the server's in-flight limits). Dropping the
/// pool (the server stopped) lets the workers exit once they are done.
///
/// Workers are plain OS threads, not `threading` threads: they never hold up
/// the interpreter's exit. A pool belongs to one `bind()`, so a server bound
/// again in a forked child gets a new one.
struct Pool {
    shared: Arc<Shared>,
    max: usize,
}

impl Pool {
    fn new(max: usize) -> Pool {
        Pool {
            shared: Arc::new(Shared {
                state: Mutex::new(PoolState {
                    queue: VecDeque::new(),
                    idle: 0,
                    threads: 0,
                    closed: false,
                }),
                ready: Condvar::new(),
            }),
            max,
        }
    }

    /// Hands `job` to an idle worker (or a new one); gives it back when every
    /// worker is busy.
    fn submit(&self, job: Job) -> Result<(), Job> {
        let mut st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.closed {
            return Err(job);
        }
        if st.idle > st.queue.len() {
            st.queue.push_back(job);
            drop(st);
            self.shared.ready.notify_one();
            return Ok(());
        }
        if st.threads >= self.max {
            return Err(job);
        }
        st.threads += 1;
        drop(st);
        let shared = Arc::clone(&self.shared);
        let spawned = std::thread::Builder::new()
            .name("pyrpc-python".into())
            .spawn(move || worker(&shared, job));
        match spawned {
            Ok(_) => Ok(()),
            Err(_) => {
                let mut st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
                st.threads -= 1;
                // The closure (and the job in it) is gone with the failed
                // spawn; its caller sees the dropped reply channel.
                Ok(())
            }
        }
    }
}

impl Pool {
    /// Lets the workers exit once the queue is empty; later calls run on the
    /// blocking pool.
    fn close(&self) {
        let mut st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        st.closed = true;
        drop(st);
        self.shared.ready.notify_all();
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
    let attached = Python::try_attach(|py| {
        py.detach(|| {
            let mut job = Some(first);
            loop {
                if let Some(j) = job.take() {
                    // `None` when the interpreter is finalizing: the job is
                    // dropped and its caller told the server is going away.
                    let _ = Python::try_attach(|py| {
                        // A panic is the call's alone: its caller sees the
                        // dropped reply channel, the worker carries on.
                        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| j(py)));
                    });
                }
                let mut st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    if let Some(j) = st.queue.pop_front() {
                        job = Some(j);
                        break;
                    }
                    if st.closed {
                        st.threads -= 1;
                        return;
                    }
                    st.idle += 1;
                    st = shared.ready.wait(st).unwrap_or_else(|e| e.into_inner());
                    st.idle -= 1;
                }
            }
        })
    });
    if attached.is_none() {
        let mut st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        st.threads -= 1;
    }
}

/// A [`Callee`] calling methods of a Python object on the [`Pool`]'s
/// workers (or, when they are all busy, on tokio's blocking pool).
#[derive(Clone)]
struct PyCallee {
    target: Arc<Target>,
    pool: Arc<Pool>,
}

/// The error of a call whose interpreter went away before it ran.
fn finalizing() -> RemoteError {
    RemoteError::new(
        ErrorKind::ShuttingDown,
        "the server's Python interpreter is shutting down",
    )
}

impl Callee for PyCallee {
    fn call(&self, _ctx: CallContext, method: &str, args: Args) -> CallFuture {
        let target = Arc::clone(&self.target);
        let method = method.to_owned();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |py: Python<'_>| {
            let _ = tx.send(target.run(py, &method, args));
        });
        match self.pool.submit(job) {
            Ok(()) => Box::pin(async move { rx.await.unwrap_or_else(|_| Err(finalizing())) }),
            Err(job) => Box::pin(async move {
                // Every worker is busy: a blocking-pool thread, attached for
                // this call only.
                let joined = tokio::task::spawn_blocking(move || {
                    let _ = Python::try_attach(job);
                })
                .await;
                match joined {
                    Ok(()) => rx.await.unwrap_or_else(|_| Err(finalizing())),
                    Err(e) => Err(RemoteError::new(
                        ErrorKind::Exception,
                        format!("the call did not finish: {e}"),
                    )),
                }
            }),
        }
    }

    fn methods(&self) -> Vec<MethodInfo> {
        // Called on the blocking pool by the server. A failure (`dir()` that
        // raises) is reported as unraisable and lists nothing.
        Python::try_attach(|py| {
            self.target.describe(py).unwrap_or_else(|e| {
                e.write_unraisable(py, None);
                Vec::new()
            })
        })
        .unwrap_or_default()
    }
}

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
        tls_client_ca = None, allow_remote_shutdown = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
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
            max_frame_len: positive("max_frame_len", max_frame_len, d.max_frame_len)?,
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
            name: format!("pyrpc-python/{}", env!("CARGO_PKG_VERSION")),
            ..d
        };
        Ok(ServerCore {
            target: Arc::new(Target {
                refs: Mutex::new(Some(Refs { server, callee })),
                reserved: reserved.unwrap_or_default(),
                opts: Options {
                    allow_pickle,
                    ..Options::default()
                },
            }),
            address: parse_address(address)?,
            config,
            workers,
            handle: Mutex::new(None),
        })
    }

    /// Binds the address and starts serving in the background; returns once
    /// the socket listens.
    fn bind(&self, py: Python<'_>) -> PyResult<()> {
        if self.handle().is_some_and(|h| !h.is_finished()) {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(
                "the server is already running",
            ));
        }
        let pool = Arc::new(Pool::new(self.workers));
        let server = Server::builder(PyCallee {
            target: Arc::clone(&self.target),
            pool: Arc::clone(&pool),
        })
        .config(self.config.clone())
        .build();
        let addr = &self.address;
        let handle = runtime::block_on(py, async move { server.bind(addr).await })?
            .map_err(errors::server_error)?;
        // However the server stops (a client's `shutdown`, `shutdown()`,
        // Ctrl-C), let go of the Python objects once it has.
        let target = Arc::clone(&self.target);
        let stopped = handle.clone();
        runtime::get()?.spawn(async move {
            stopped.wait().await;
            pool.close();
            let _ = tokio::task::spawn_blocking(move || {
                Python::try_attach(|py| target.release(py));
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
    Ok(())
}
