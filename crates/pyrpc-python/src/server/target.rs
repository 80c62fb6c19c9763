//! The served Python object: method lookup (per call, so
//! `server.echo = echo` after construction is served), argument and result
//! conversion, `async def` and generator methods, and the `log_call` /
//! `log_exception` hooks. Runs with the GIL held, on a worker thread
//! (`callee.rs`).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use pyo3::exceptions::{PyAttributeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyModule, PyString, PyTuple};
use pyrpc_proto::{Args, ErrorKind, MethodInfo, RemoteError, Value};

pub(super) use super::call_log::CallLog;
use crate::aio::LoopSlot;
use crate::convert::{self, Options};
use crate::errors;
use crate::stream;

/// The Python objects a call needs.
pub(super) struct Refs {
    /// The `pyrpc.Server` instance; its `log_call` / `log_exception` are
    /// called after each call.
    pub(super) server: Py<PyAny>,
    /// The object whose methods are served (`Server.callee`).
    pub(super) callee: Py<PyAny>,
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
pub(super) struct Target {
    /// The Python objects; `None` once the server stopped.
    pub(super) refs: Mutex<Option<Refs>>,
    /// Names never served even though the callee has them: the `pyrpc.Server`
    /// machinery (`start`, `log_call`, ...) when the callee is the server.
    pub(super) reserved: HashSet<String>,
    /// How values convert (pickles only if the server allows them).
    pub(super) opts: Options,
    /// The asyncio loop `async def` methods run on (see `aio`).
    pub(super) event_loop: LoopSlot,
    /// Whether `log_call` needs calling after a call that returned.
    pub(super) call_log: CallLog,
    /// The names of methods served so far, as Python strings
    /// ([`Target::name`]).
    pub(super) names: MethodNames,
}

/// Python strings of the method names served so far, so that each call of
/// a method looks it up with the same string object: CPython's type
/// attribute cache is keyed by the name object's address, so a new string
/// per call misses it and walks the class's MRO for the property check and
/// again for `getattr`. Only names that turned out to be served methods are
/// kept, at most [`MethodNames::MAX`].
#[derive(Default)]
pub(super) struct MethodNames(Mutex<HashMap<Box<str>, Py<PyString>>>);

impl MethodNames {
    /// At most this many names are kept; others get a new string per call.
    const MAX: usize = 1024;

    fn get(&self, py: Python<'_>, method: &str) -> Option<Py<PyString>> {
        let names = self.0.lock().unwrap_or_else(|e| e.into_inner());
        names.get(method).map(|n| n.clone_ref(py))
    }

    fn keep(&self, method: &str, name: &Bound<'_, PyString>) {
        let mut names = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if names.len() < Self::MAX && !names.contains_key(method) {
            names.insert(method.into(), name.clone().unbind());
        }
    }
}

/// What running a method gave.
pub(super) enum Ran {
    /// The call's outcome, and the call's Python objects, to let go of
    /// once the reply is on its way.
    Done(Result<Value, RemoteError>, Option<Leftovers>),
    /// An `async def` method's coroutine, still to run on the event loop,
    /// and how to finish the call with its outcome.
    Coroutine(Py<PyAny>, Finish),
    /// A generator or async generator: the method streams its reply (see
    /// `stream`).
    Generator(Py<PyAny>),
}

/// The end of a call once the method returned or raised: the result
/// converted, the logging hook called.
pub(super) struct Finish {
    pub(super) server: Py<PyAny>,
    pub(super) method: String,
    pub(super) args: Py<PyTuple>,
    pub(super) kwargs: Py<PyDict>,
    pub(super) opts: Options,
    pub(super) call_log: CallLog,
}

/// A finished call's arguments and what its method returned or raised,
/// held until the reply is on its way: freeing a big value takes about as
/// long as making it, and the caller need not wait for that.
pub(super) struct Leftovers {
    _finish: Finish,
    _outcome: PyResult<Py<PyAny>>,
}

impl Finish {
    /// Converts what the method returned (or raised) into the call's
    /// outcome, calling `log_call` or `log_exception`.
    pub(super) fn complete(
        self,
        py: Python<'_>,
        outcome: PyResult<Bound<'_, PyAny>>,
    ) -> Result<Value, RemoteError> {
        self.outcome(py, &outcome)
    }

    /// [`Finish::complete`], keeping the call's objects: the caller lets go
    /// of them once the reply is sent ([`Leftovers`]).
    fn complete_keeping(
        self,
        py: Python<'_>,
        outcome: PyResult<Bound<'_, PyAny>>,
    ) -> (Result<Value, RemoteError>, Leftovers) {
        let answer = self.outcome(py, &outcome);
        let leftovers = Leftovers {
            _finish: self,
            _outcome: outcome.map(Bound::unbind),
        };
        (answer, leftovers)
    }

    fn outcome(
        &self,
        py: Python<'_>,
        outcome: &PyResult<Bound<'_, PyAny>>,
    ) -> Result<Value, RemoteError> {
        let server = self.server.bind(py);
        let (pargs, pkwargs) = (self.args.bind(py), self.kwargs.bind(py));
        let method = self.method.as_str();
        match outcome {
            // Written straight into its encoded form, sent as it is.
            // (A large `bytes` is sent from its own buffer: bigbytes.rs.)
            Ok(ret) => match crate::bigbytes::result_value(ret, self.opts) {
                Ok(v) => {
                    if self.call_log.wanted(py) {
                        log(server, "log_call", ret, method, pargs, pkwargs);
                    }
                    Ok(v)
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
                Err(raised(py, err, self.opts))
            }
        }
    }
}

pub(super) static COROUTINE_TYPE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// True when `ret` is a coroutine (what calling an `async def` gives).
pub(super) fn is_coroutine(ret: &Bound<'_, PyAny>) -> bool {
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
    pub(super) fn refs(&self, py: Python<'_>) -> Option<Refs> {
        let slot = self.refs.lock().unwrap_or_else(|e| e.into_inner());
        slot.as_ref().map(|r| Refs {
            server: r.server.clone_ref(py),
            callee: r.callee.clone_ref(py),
        })
    }

    /// Lets go of the Python objects (the server stopped). Calls still
    /// running hold their own references. Takes `Python` to drop them with
    /// the GIL held (and the lock released: a `__del__` may run).
    pub(super) fn release(&self, py: Python<'_>) {
        let taken = self.refs.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(taken);
        if let Some(event_loop) = self.event_loop.take() {
            event_loop.stop(py);
        }
    }

    /// Runs one call with the GIL held; an `async def` method gives its
    /// coroutine back, to run on the event loop.
    pub(super) fn run(&self, py: Python<'_>, method: &str, args: Args) -> Ran {
        match self.start(py, method, args) {
            Ok(ran) => ran,
            Err(e) => Ran::Done(Err(e), None),
        }
    }

    /// [`Target::run`], with the failures before the method runs as `Err`.
    pub(super) fn start(
        &self,
        py: Python<'_>,
        method: &str,
        args: Args,
    ) -> Result<Ran, RemoteError> {
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
        // One Python string for both lookups, the same one for every call
        // of a method served before (`MethodNames`).
        let kept = self.names.get(py, method);
        let name = match &kept {
            Some(n) => n.bind(py).clone(),
            None => PyString::new(py, method),
        };
        if is_property(callee, &name) {
            return Err(RemoteError::no_such_method(method));
        }
        let func = match callee.getattr(&name) {
            Ok(f) if f.is_callable() && module_serves(callee, method, &f) => {
                if kept.is_none() {
                    self.names.keep(method, &name);
                }
                f
            }
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
            call_log: self.call_log.clone_ref(py),
        };
        Ok(match outcome {
            Ok(ret) if is_coroutine(&ret) => Ran::Coroutine(ret.unbind(), finish),
            Ok(ret) if stream::generator_kind(&ret).is_some() => Ran::Generator(ret.unbind()),
            other => {
                let (answer, leftovers) = finish.complete_keeping(py, other);
                Ran::Done(answer, Some(leftovers))
            }
        })
    }

    /// The methods a client may call, as `ListMethods` reports them: the
    /// public callable attributes of the callee that [`Target::run`] would
    /// serve, with `inspect.signature` (a bound method's without `self`)
    /// and `inspect.getdoc`. Properties are left out (and not run), as are
    /// attributes that fail to load and signatures `inspect` cannot tell.
    pub(super) fn describe(&self, py: Python<'_>) -> PyResult<Vec<MethodInfo>> {
        let Some(Refs { callee, .. }) = self.refs(py) else {
            return Ok(Vec::new());
        };
        let callee = callee.bind(py);
        let inspect = py.import("inspect")?;
        let mut out = Vec::new();
        for name in callee.dir()? {
            let name: String = name.extract()?;
            if name.starts_with('_')
                || self.reserved.contains(&name)
                || is_property(callee, &PyString::new(py, &name))
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

pub(super) static PROPERTY_TYPES: PyOnceLock<Py<PyTuple>> = PyOnceLock::new();

/// `types.FunctionType`, once per interpreter.
static FUNCTION_TYPE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// `attr` is exactly a Python function (not a subclass: there are none).
fn is_function(attr: &Bound<'_, PyAny>) -> bool {
    let py = attr.py();
    FUNCTION_TYPE
        .get_or_try_init(py, || {
            PyResult::Ok(py.import("types")?.getattr("FunctionType")?.unbind())
        })
        .map(|t| attr.get_type().is(t.bind(py)))
        .unwrap_or(false)
}

/// When the callee is a module, only what the module itself offers is served:
/// the names in its `__all__` if it has one, else the functions and classes
/// defined in it (`attr.__module__` is the module's name). What it merely
/// imported (`from os import system`, `from subprocess import run`) is not a
/// remote method. Any other callee: always true.
pub(super) fn module_serves(
    callee: &Bound<'_, PyAny>,
    name: &str,
    attr: &Bound<'_, PyAny>,
) -> bool {
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
pub(super) fn is_property(callee: &Bound<'_, PyAny>, name: &Bound<'_, PyString>) -> bool {
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
        // A plain function (the usual method) is no property; asked first,
        // as `isinstance` against the two types costs a call of each one's
        // `__instancecheck__`.
        Ok(attr) if is_function(&attr) => false,
        Ok(attr) => attr.is_instance(types.bind(py)).unwrap_or(false),
        Err(_) => false,
    }
}

/// Calls the server's logging hook `hook(ret_or_exc, method, args, kwargs)`;
/// a hook that raises is reported as unraisable, never to the client.
pub(super) fn log(
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
