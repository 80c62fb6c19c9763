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

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use pyo3::exceptions::{PyAttributeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyModule, PyTuple};
use pyrpc_proto::{Args, ErrorKind, MethodInfo, RemoteError, Value};
use pyrpc_server::{CallContext, CallFuture, Callee, Server, ServerConfig, ServerHandle};
use pyrpc_transport::Address;

use crate::aio::{self, LoopSlot};
use crate::client::{address as parse_address, address_to_py, seconds, secret as parse_secret};
use crate::convert::{self, Options};
use crate::errors;
use crate::pool::{Job, Pool};
use crate::runtime;
use crate::stream;

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
    /// The asyncio loop `async def` methods run on (see `aio`).
    event_loop: LoopSlot,
}

/// What running a method gave.
enum Ran {
    /// The call's outcome.
    Done(Result<Value, RemoteError>),
    /// An `async def` method's coroutine, still to run on the event loop,
    /// and how to finish the call with its outcome.
    Coroutine(Py<PyAny>, Finish),
    /// A generator or async generator: the method streams its reply (see
    /// `stream`).
    Generator(Py<PyAny>),
}

/// The end of a call once the method returned or raised: the result
/// converted, the logging hook called.
struct Finish {
    server: Py<PyAny>,
    method: String,
    args: Py<PyTuple>,
    kwargs: Py<PyDict>,
    opts: Options,
}

impl Finish {
    /// Converts what the method returned (or raised) into the call's
    /// outcome, calling `log_call` or `log_exception`.
    fn complete(
        self,
        py: Python<'_>,
        outcome: PyResult<Bound<'_, PyAny>>,
    ) -> Result<Value, RemoteError> {
        let server = self.server.bind(py);
        let (pargs, pkwargs) = (self.args.bind(py), self.kwargs.bind(py));
        let method = self.method.as_str();
        match outcome {
            // Written straight into its encoded form, sent as it is.
            Ok(ret) => match crate::direct::encode(&ret, self.opts) {
                Ok(v) => {
                    log(server, "log_call", &ret, method, pargs, pkwargs);
                    Ok(Value::Encoded(v))
                }
                Err(e) => {
                    // Logged as the TypeError it is here; answered as the
                    // Rust server answers a result it cannot send:
                    // UNSUPPORTED_VALUE (docs/PROTOCOL.md, "Errors").
                    let message = e.message("result");
                    let err = PyTypeError::new_err(message.clone());
                    log(
                        server,
                        "log_exception",
                        err.value(py),
                        method,
                        pargs,
                        pkwargs,
                    );
                    Err(RemoteError::new(
                        ErrorKind::UnsupportedValue,
                        format!("the result of {method}() cannot be sent: {message}"),
                    ))
                }
            },
            Err(err) => {
                log(
                    server,
                    "log_exception",
                    err.value(py),
                    method,
                    pargs,
                    pkwargs,
                );
                Err(raised(py, &err, self.opts))
            }
        }
    }
}

static COROUTINE_TYPE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// True when `ret` is a coroutine (what calling an `async def` gives).
fn is_coroutine(ret: &Bound<'_, PyAny>) -> bool {
    let py = ret.py();
    COROUTINE_TYPE
        .get_or_try_init(py, || {
            PyResult::Ok(py.import("types")?.getattr("CoroutineType")?.unbind())
        })
        .map(|t| ret.get_type().is(t.bind(py)))
        .unwrap_or(false)
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
    fn release(&self, py: Python<'_>) {
        let taken = self.refs.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(taken);
        if let Some(event_loop) = self.event_loop.take() {
            event_loop.stop(py);
        }
    }

    /// Runs one call with the GIL held; an `async def` method gives its
    /// coroutine back, to run on the event loop.
    fn run(&self, py: Python<'_>, method: &str, args: Args) -> Ran {
        match self.start(py, method, args) {
            Ok(ran) => ran,
            Err(e) => Ran::Done(Err(e)),
        }
    }

    /// [`Target::run`], with the failures before the method runs as `Err`.
    fn start(&self, py: Python<'_>, method: &str, args: Args) -> Result<Ran, RemoteError> {
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
            Err(e) => return Err(raised(py, &e, self.opts)),
        };
        let (pargs, pkwargs) = convert::from_args(py, args, self.opts).map_err(|e| {
            RemoteError::new(
                ErrorKind::UnsupportedValue,
                format!("cannot accept the arguments of {method}(): {e}"),
            )
        })?;
        let outcome = func.call(&pargs, Some(&pkwargs));
        let finish = Finish {
            server: server.clone().unbind(),
            method: method.to_owned(),
            args: pargs.unbind(),
            kwargs: pkwargs.unbind(),
            opts: self.opts,
        };
        Ok(match outcome {
            Ok(ret) if is_coroutine(&ret) => Ran::Coroutine(ret.unbind(), finish),
            Ok(ret) if stream::generator_kind(&ret).is_some() => Ran::Generator(ret.unbind()),
            other => Ran::Done(finish.complete(py, other)),
        })
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

/// The `RemoteError` for an exception raised while calling: `EXCEPTION`
/// with its traceback, or `BAD_ARGUMENTS` (the call itself did not fit),
/// which as every refusal carries no traceback (docs/PROTOCOL.md, "Errors").
pub(crate) fn raised(py: Python<'_>, err: &PyErr, opts: Options) -> RemoteError {
    let mut e = errors::remote_from_py(py, err, opts);
    if e.kind != ErrorKind::Exception {
        e.traceback.clear();
    }
    e
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
    /// Arguments and results are converted straight between Python objects
    /// and their encoded bytes (`crate::direct`).
    fn takes_encoded(&self) -> bool {
        true
    }

    fn call(&self, ctx: CallContext, method: &str, args: Args) -> CallFuture {
        let target = Arc::clone(&self.target);
        let method = method.to_owned();
        let deadline = ctx.deadline;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let ctx = ctx.clone();
        let running = aio::Running::default();
        let cancel = aio::CancelOnDrop::new(Arc::clone(&running));
        let job: Job = Box::new(move |py: Python<'_>| {
            // The call may have waited for a worker and the GIL: one whose
            // caller has given up meanwhile is not started
            // (docs/PROTOCOL.md, "Deadlines").
            if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                let _ = tx.send(Err(RemoteError::new(
                    ErrorKind::DeadlineExceeded,
                    format!(
                        "{method}() did not run: the caller's timeout passed before it could start"
                    ),
                )));
                return;
            }
            // Cancelled while it waited for a worker: never started.
            if running.is_cancelled() {
                let _ = tx.send(Err(RemoteError::new(
                    ErrorKind::Cancelled,
                    format!("{method}() did not run: it was cancelled before it could start"),
                )));
                return;
            }
            match aio::with_current(&running, || target.run(py, &method, args)) {
                Ran::Done(outcome) => {
                    let _ = tx.send(outcome);
                }
                Ran::Coroutine(coro, finish) => {
                    let complete: aio::Complete = Box::new(move |py, out| finish.complete(py, out));
                    aio::schedule(
                        py,
                        &target.event_loop,
                        coro.into_bound(py),
                        complete,
                        tx,
                        &running,
                    );
                }
                Ran::Generator(gen) => {
                    let gen = gen.into_bound(py);
                    let answer = move |item| drop(tx.send(item));
                    let opts = target.opts;
                    match stream::generator_kind(&gen) {
                        Some(stream::GenKind::Async) => stream::stream_async_generator(
                            py,
                            gen,
                            &ctx,
                            opts,
                            &method,
                            &target.event_loop,
                            answer,
                        ),
                        _ => stream::stream_generator(py, gen, &ctx, opts, &method, answer),
                    }
                }
            }
        });
        // `cancel` goes with the reply's future: dropped unfinished (the
        // client went away), it cancels an `async def` method's coroutine.
        match self.pool.submit(job) {
            Ok(()) => Box::pin(async move {
                let outcome = rx.await.unwrap_or_else(|_| Err(finalizing()));
                cancel.finished();
                outcome
            }),
            Err(job) => Box::pin(async move {
                // Every worker is busy: a blocking-pool thread, attached for
                // this call only.
                let joined = tokio::task::spawn_blocking(move || {
                    let _ = crate::exit::attach(job);
                })
                .await;
                match joined {
                    Ok(()) => {
                        let outcome = rx.await.unwrap_or_else(|_| Err(finalizing()));
                        cancel.finished();
                        outcome
                    }
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
        crate::exit::attach(|py| {
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
        tls_client_ca = None, allow_remote_shutdown = None, result_store = None,
        result_lease = None))]
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
            result_store,
            result_lease: secs("result_lease", result_lease, d.result_lease)?,
            name: format!("pyrpc-python/{}", env!("CARGO_PKG_VERSION")),
            ..d
        };
        Ok(ServerCore {
            target: Arc::new(Target {
                refs: Mutex::new(Some(Refs { server, callee })),
                reserved: reserved.unwrap_or_default(),
                opts: Options {
                    allow_pickle,
                    max_depth: config.max_value_depth,
                },
                event_loop: LoopSlot::default(),
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
    /// With `listener_on_stdin`, the server does not bind: it serves the
    /// listening socket found on file descriptor 0 (put there by
    /// `pyrpc._processes` in a worker process; taking it from stdin is how
    /// Rust takes a descriptor over without `unsafe`).
    #[pyo3(signature = (event_loop = None, listener_on_stdin = false))]
    fn bind(
        &self,
        py: Python<'_>,
        event_loop: Option<Py<PyAny>>,
        listener_on_stdin: bool,
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
        let handle = if listener_on_stdin {
            let inherited = inherited_listener(addr)?;
            runtime::block_on(py, async move {
                let listener = match inherited {
                    Inherited::Tcp(l) => pyrpc_server::Listener::from_std_tcp(l),
                    Inherited::Unix(l) => pyrpc_server::Listener::from_std_unix(l),
                }
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
        runtime::get()?.spawn(async move {
            stopped.wait().await;
            pool.close();
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

/// A listening socket taken from file descriptor 0.
enum Inherited {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

/// Duplicates file descriptor 0 (a listening socket a parent process put
/// there) as a listener of `addr`'s kind.
fn inherited_listener(addr: &Address) -> PyResult<Inherited> {
    use std::os::fd::AsFd;
    let fd = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| pyo3::exceptions::PyOSError::new_err(format!("no listener on stdin: {e}")))?;
    Ok(match addr {
        Address::Tcp { .. } => Inherited::Tcp(std::net::TcpListener::from(fd)),
        Address::Unix(_) => Inherited::Unix(std::os::unix::net::UnixListener::from(fd)),
    })
}
