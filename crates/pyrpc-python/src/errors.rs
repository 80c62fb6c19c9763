//! Every mapping between Rust errors, remote errors and Python exceptions.
//!
//! * Client side: [`call_error`] turns a [`CallError`] into the exception the
//!   caller sees: `Timeout`, `NoSocket`, `ProtocolError`, `AuthError`, `TlsError`, or the remote
//!   exception rebuilt by [`remote_to_py`].
//! * Server side: [`remote_from_py`] turns an exception raised by a served
//!   method into a [`RemoteError`] (type name, module, args, message,
//!   traceback).
//!
//! The exception classes live in `python/pyrpc/_errors.py`: `Timeout` and
//! `NoSocket` have two bases (`RpcError` and the builtin `TimeoutError` /
//! `ConnectionError`), which `create_exception!` cannot express.

use pyo3::exceptions::{PyAttributeError, PyException, PyTypeError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyString, PyTuple, PyType};
use pyrpc_client::{CallError, TimeoutStage};
use pyrpc_proto::{ErrorKind, RemoteError, Report, Value};

use crate::convert::{self, Options};

const ERRORS_MODULE: &str = "pyrpc._errors";

static TIMEOUT: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static NO_SOCKET: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static PROTOCOL_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static REMOTE_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static RPC_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static AUTH_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static TLS_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static FORMAT_EXCEPTION: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static REMOTE_TRACEBACK: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// Builds an instance of one of the `pyrpc._errors` classes.
fn make<'py>(
    py: Python<'py>,
    cell: &PyOnceLock<Py<PyType>>,
    name: &str,
    args: impl pyo3::call::PyCallArgs<'py>,
) -> PyErr {
    match cell
        .import(py, ERRORS_MODULE, name)
        .and_then(|cls| cls.call1(args))
    {
        Ok(exc) => PyErr::from_value(exc),
        Err(e) => e,
    }
}

fn stage_name(stage: TimeoutStage) -> &'static str {
    match stage {
        TimeoutStage::Connect => "connect",
        TimeoutStage::Send => "send",
        TimeoutStage::Reply => "reply",
        TimeoutStage::Nb => "nb",
        _ => "unknown",
    }
}

/// A `pyrpc.Timeout` for `stage`.
pub(crate) fn timeout(py: Python<'_>, stage: TimeoutStage, message: String) -> PyErr {
    make(py, &TIMEOUT, "Timeout", (message, stage_name(stage)))
}

/// A `pyrpc.RpcError` with `message`, for failures that fit no subclass.
pub(crate) fn rpc_error(py: Python<'_>, message: String) -> PyErr {
    make(py, &RPC_ERROR, "RpcError", (message,))
}

/// The exception a caller sees for a failed call.
///
/// `opts` converts the args of a remote exception (pickles are accepted only
/// when the client allows them).
pub(crate) fn call_error(py: Python<'_>, err: CallError, opts: Options) -> PyErr {
    // The message with its causes: each error's own text leaves them out.
    let message = Report(&err).to_string();
    let message = || message.clone();
    match err {
        CallError::Timeout { stage } => timeout(py, stage, message()),
        CallError::NoSocket { .. } => make(py, &NO_SOCKET, "NoSocket", (message(),)),
        CallError::Tls { .. } => make(py, &TLS_ERROR, "TlsError", (message(),)),
        CallError::Protocol(_) | CallError::Value(_) => {
            make(py, &PROTOCOL_ERROR, "ProtocolError", (message(),))
        }
        // The connection dropped (the server died, reset it, or closed it
        // mid-call): the same class as a server that cannot be reached, so
        // one `except ConnectionError` sees the first failure and the next.
        CallError::Closed => make(
            py,
            &NO_SOCKET,
            "NoSocket",
            ("connection closed before the reply arrived",),
        ),
        // Refused in the hello (either side): no call ran.
        CallError::Remote(remote) if remote.kind == ErrorKind::Unauthenticated => {
            // The Rust client names its own setting; name the Python one.
            let message = remote
                .message
                .replace("ClientConfig::secret", "Client.secret");
            make(py, &AUTH_ERROR, "AuthError", (message,))
        }
        CallError::Remote(remote) => remote_to_py(py, remote, opts),
        other => rpc_error(py, Report(&other).to_string()),
    }
}

/// The name of an error kind as the proto spells it (`NOT_NONBLOCKING`).
fn kind_name(kind: ErrorKind) -> &'static str {
    kind.as_str_name()
}

/// Rebuilds a remote error as a Python exception.
///
/// * `NO_SUCH_METHOD` → `AttributeError`, `BAD_ARGUMENTS` → `TypeError`.
/// * An exception of a builtin type comes back as that type with the same args.
/// * An exception of another type is rebuilt when its module is already
///   imported here (`sys.modules`; a module named by the network is never
///   imported), the class is an `Exception` subclass and `cls(*args)` works.
/// * Anything else is a `pyrpc.RemoteError` carrying what arrived.
///
/// The remote traceback text is set as `exc.traceback` on all of them, and
/// chained as `exc.__cause__` (a `pyrpc._traceback.RemoteTraceback`) so that
/// an uncaught one prints the server's traceback. The exception's instance
/// attributes that travelled are set on a rebuilt exception, and collected in
/// `exc.attributes` (a dict) on a `RemoteError`.
pub(crate) fn remote_to_py(py: Python<'_>, remote: RemoteError, opts: Options) -> PyErr {
    let rebuilt = match remote.kind {
        ErrorKind::NoSuchMethod => Some(PyAttributeError::new_err(remote.message.clone())),
        ErrorKind::BadArguments => Some(PyTypeError::new_err(remote.message.clone())),
        ErrorKind::Exception | ErrorKind::Unspecified => rebuild(py, &remote, opts),
        _ => None,
    };
    let is_rebuilt = rebuilt.is_some();
    let err = rebuilt.unwrap_or_else(|| {
        let args = remote_args(py, &remote, opts);
        make(
            py,
            &REMOTE_ERROR,
            "RemoteError",
            (
                remote.type_name.as_str(),
                remote.module.as_str(),
                args,
                remote.message.as_str(),
                remote.traceback.as_str(),
                kind_name(remote.kind),
            ),
        )
    });
    let exc = err.value(py);
    // Best effort: an exception type with __slots__ cannot take the attribute.
    set_attributes(py, exc, &remote, is_rebuilt, opts);
    let _ = exc.setattr("traceback", remote.traceback.as_str());
    if !remote.traceback.is_empty() {
        if let Ok(cause) = REMOTE_TRACEBACK
            .import(py, "pyrpc._traceback", "RemoteTraceback")
            .and_then(|cls| cls.call1((remote.traceback.as_str(),)))
        {
            err.set_cause(py, Some(PyErr::from_value(cause)));
        }
    }
    err
}

/// Sets the remote instance attributes on a rebuilt exception, or collects
/// them in `exc.attributes` on a `RemoteError`. Best effort: an attribute
/// that cannot be converted or set is left out.
fn set_attributes(
    py: Python<'_>,
    exc: &Bound<'_, pyo3::exceptions::PyBaseException>,
    remote: &RemoteError,
    rebuilt: bool,
    opts: Options,
) {
    let attrs = PyDict::new(py);
    for (name, v) in &remote.attributes {
        let Ok(value) = convert::to_python(py, v.clone(), opts) else {
            continue;
        };
        if rebuilt {
            let _ = exc.setattr(name.as_str(), value);
        } else {
            let _ = attrs.set_item(name.as_str(), value);
        }
    }
    if !rebuilt {
        let _ = exc.setattr("attributes", attrs);
    }
}

/// The instance attributes of `exc` (`vars(exc)`) that can be sent, dunder
/// names left out.
fn exception_attributes(exc: &Bound<'_, PyAny>, opts: Options) -> Vec<(String, Value)> {
    let Ok(dict) = exc.getattr("__dict__") else {
        return Vec::new();
    };
    let Ok(dict) = dict.cast_into::<PyDict>() else {
        return Vec::new();
    };
    dict.iter()
        .filter_map(|(k, v)| {
            let name: String = k.extract().ok()?;
            if name.starts_with("__") {
                return None;
            }
            Some((name, convert::to_value(&v, opts).ok()?))
        })
        .collect()
}

/// The remote args as a Python tuple; an arg that cannot be converted here
/// (an unhashable key from a foreign peer, a refused pickle) becomes its repr.
fn remote_args<'py>(py: Python<'py>, remote: &RemoteError, opts: Options) -> Bound<'py, PyTuple> {
    let items: Vec<Py<PyAny>> = remote
        .args
        .iter()
        .map(|v| {
            convert::to_python(py, v.clone(), opts)
                .unwrap_or_else(|_| PyString::new(py, &v.to_string()).into_any().unbind())
        })
        .collect();
    PyTuple::new(py, items).unwrap_or_else(|_| PyTuple::empty(py))
}

fn rebuild(py: Python<'_>, remote: &RemoteError, opts: Options) -> Option<PyErr> {
    let module = if remote.module.is_empty() {
        "builtins"
    } else {
        remote.module.as_str()
    };
    let modules = py.import("sys").ok()?.getattr("modules").ok()?;
    let modules = modules.cast::<PyDict>().ok()?;
    let mut obj = modules.get_item(module).ok()??;
    // A nested class travels as its qualified name, "Outer.Inner".
    for part in remote.type_name.split('.') {
        if part.is_empty() || part.starts_with('<') {
            return None;
        }
        obj = obj.getattr(part).ok()?;
    }
    let cls = obj.cast::<PyType>().ok()?;
    if !cls.is_subclass_of::<PyException>().unwrap_or(false) {
        return None;
    }
    let exc = cls.call1(remote_args(py, remote, opts)).ok()?;
    if !exc.is_instance_of::<PyException>() {
        return None;
    }
    Some(PyErr::from_value(exc))
}

/// Describes an exception raised by a served method, for the client.
///
/// The args are converted with `opts`; an arg that cannot be converted is
/// sent as its `repr`. The type name is the class's `__qualname__` (so nested
/// classes can be found again), the message is `str(exc)`, the traceback the
/// lines `traceback.format_exception` gives.
///
/// A `TypeError` raised by the call itself (no Python frame ran, e.g. a wrong
/// number of arguments) is sent as `BAD_ARGUMENTS`; the client raises a
/// `TypeError` for it either way.
pub(crate) fn remote_from_py(py: Python<'_>, err: &PyErr, opts: Options) -> RemoteError {
    let value = err.value(py);
    let cls = value.get_type();
    let type_name = cls
        .qualname()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "Exception".to_owned());
    let module = cls.module().map(|m| m.to_string()).unwrap_or_default();
    let args: Vec<Value> = value
        .getattr("args")
        .ok()
        .and_then(|a| a.cast_into::<PyTuple>().ok())
        .map(|t| {
            t.iter()
                .map(|a| {
                    convert::to_value(&a, opts).unwrap_or_else(|_| {
                        Value::Str(
                            a.repr()
                                .map(|r| r.to_string())
                                .unwrap_or_else(|_| "<unrepresentable>".to_owned()),
                        )
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let message = value
        .str()
        .map(|s| s.to_string())
        .unwrap_or_else(|_| String::new());
    let traceback = format_traceback(py, err);
    let bad_arguments = err.is_instance_of::<PyTypeError>(py)
        && err.traceback(py).is_none()
        && module == "builtins";
    let kind = if bad_arguments {
        ErrorKind::BadArguments
    } else {
        ErrorKind::Exception
    };
    RemoteError::from(pyrpc_proto::RemoteErrorInfo {
        kind,
        type_name,
        module,
        args,
        message,
        traceback,
        attributes: exception_attributes(value.as_any(), opts),
    })
}

/// `''.join(traceback.format_exception(type, value, tb))`, or `""` if even
/// that fails.
pub(crate) fn format_traceback(py: Python<'_>, err: &PyErr) -> String {
    let lines = FORMAT_EXCEPTION
        .import(py, "traceback", "format_exception")
        .and_then(|f| f.call1((err.get_type(py), err.value(py), err.traceback(py))));
    match lines {
        Ok(lines) => match lines.cast::<PyList>() {
            Ok(list) => list
                .iter()
                .map(|l| l.extract::<String>().unwrap_or_default())
                .collect(),
            Err(_) => String::new(),
        },
        Err(_) => String::new(),
    }
}

/// Why a server could not start: an `OSError` (address in use, permission
/// denied, not a socket), as Python's own servers raise.
pub(crate) fn server_error(err: pyrpc_server::ServerError) -> PyErr {
    pyo3::exceptions::PyOSError::new_err(Report(&err).to_string())
}
