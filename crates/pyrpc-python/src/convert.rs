//! Python objects to and from [`pyrpc_proto::Value`].
//!
//! Exact builtin types take a fast path; then the standard types of
//! [`crate::kinds`] (`datetime`, `Decimal`, `UUID`, ...), then typed records
//! (registered types, dataclasses, NamedTuples, Enums: `pyrpc._types`); other
//! instances of subclasses of the builtins (an `OrderedDict`) are sent as
//! their builtin base shape, or pickled when pickling is allowed so that the
//! class survives. `bool` is
//! checked before `int` (it is a subclass of `int` in Python), so `True` stays
//! `True`. Anything else is refused with a `TypeError` naming the type and where
//! it sits in the call, e.g. `args[0]['x']`.
//!
//! Both directions recurse, bounded by the depth limit the peers agreed on
//! ([`pyrpc_proto::MAX_VALUE_DEPTH`] by default), so a self-referencing list
//! fails with a clear error. Each level runs under [`stacker::maybe_grow`],
//! which moves the recursion to a fresh heap segment when the thread's stack
//! runs low, so a value at the limit converts on any thread (a worker's 2 MiB
//! stack, a debug build's large frames).

use bytes::Bytes;
use num_bigint::BigInt;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyFrozenSet, PyInt, PyList, PySet, PyString,
    PyTuple,
};
use pyrpc_proto::{Record, RecordKind, Value};

use crate::kinds;

/// How a conversion behaves.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Options {
    /// Pickle objects of other types (and subclasses of the builtin ones)
    /// instead of refusing them; unpickle received pickles instead of refusing.
    pub(crate) allow_pickle: bool,
    /// The deepest nesting allowed; a scalar has depth 1.
    pub(crate) max_depth: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            allow_pickle: false,
            max_depth: pyrpc_proto::MAX_VALUE_DEPTH,
        }
    }
}

/// A Python object that cannot be sent, and where it sits.
#[derive(Debug)]
pub(crate) struct ConvertError {
    /// The type of the offending object (`Foo`), or of the container too deep.
    type_name: String,
    /// Path segments from the innermost outwards (`['x']`, `[0]`); reversed
    /// when displayed. Built only on the error path, as the error unwinds.
    path_rev: Vec<String>,
    /// Why it cannot be sent.
    reason: String,
}

impl ConvertError {
    pub(crate) fn new(obj: &Bound<'_, PyAny>, reason: impl Into<String>) -> Self {
        ConvertError {
            type_name: type_name(obj),
            path_rev: Vec::new(),
            reason: reason.into(),
        }
    }

    pub(crate) fn at(mut self, segment: String) -> Self {
        self.path_rev.push(segment);
        self
    }

    /// The error, with a depth limit it reports (a sub-value converted with
    /// the levels left) replaced by the whole value's limit.
    pub(crate) fn with_limit(mut self, max: usize) -> Self {
        if self.reason.starts_with("value nested deeper than ") {
            self.reason = format!("value nested deeper than {max} levels");
        }
        self
    }

    /// The message, with `root` (`args`, `kwargs`, `result`) as the start of
    /// the path: "cannot send object of type Foo at args[0]['x']: ...".
    pub(crate) fn message(&self, root: &str) -> String {
        let mut path = String::from(root);
        // A path through a deep value keeps its first and last steps.
        let n = self.path_rev.len();
        for (i, seg) in self.path_rev.iter().rev().enumerate() {
            if n > 16 && i == 8 {
                path.push_str(&format!("...({} levels)...", n - 16));
            }
            if n <= 16 || i < 8 || i >= n - 8 {
                path.push_str(seg);
            }
        }
        format!(
            "cannot send object of type {} at {}: {}",
            self.type_name, path, self.reason
        )
    }

    /// The message as a Python `TypeError`.
    pub(crate) fn into_pyerr(self, root: &str) -> PyErr {
        PyTypeError::new_err(self.message(root))
    }
}

const UNSUPPORTED: &str = "pyrpc sends None, bool, int, float, str, bytes, bytearray, list, \
     tuple, dict, set, frozenset, datetime, date, time, timedelta, Decimal, UUID, complex, \
     Fraction, dataclasses, NamedTuples, Enums and types registered with \
     pyrpc.register_type (other objects only when both client and server set \
     allow_pickle=True)";

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .qualname()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".to_owned())
}

pub(crate) fn key_segment(key: &Bound<'_, PyAny>) -> String {
    let repr = key
        .repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| "?".to_owned());
    // Keep error messages readable when a key is huge.
    let short: String = repr.chars().take(40).collect();
    if short.len() < repr.len() {
        format!("[{short}...]")
    } else {
        format!("[{short}]")
    }
}

// ===== Python -> Value =====

/// Converts a Python object to a [`Value`].
///
/// # Errors
///
/// A [`ConvertError`] for an object of an unsupported type (unless pickling is
/// allowed), a container nested too deep, or a pickling failure.
pub(crate) fn to_value(obj: &Bound<'_, PyAny>, opts: Options) -> Result<Value, ConvertError> {
    to_value_at(obj, opts, opts.max_depth)
}

/// Stack kept free before recursing one level deeper, and the size of a new
/// segment when less is left.
const RED_ZONE: usize = 128 * 1024;
const NEW_SEGMENT: usize = 4 * 1024 * 1024;

fn to_value_at(obj: &Bound<'_, PyAny>, opts: Options, left: usize) -> Result<Value, ConvertError> {
    stacker::maybe_grow(RED_ZONE, NEW_SEGMENT, || to_value_level(obj, opts, left))
}

fn to_value_level(
    obj: &Bound<'_, PyAny>,
    opts: Options,
    left: usize,
) -> Result<Value, ConvertError> {
    if left == 0 {
        return Err(ConvertError::new(
            obj,
            format!("value nested deeper than {} levels", opts.max_depth),
        ));
    }
    if obj.is_none() {
        return Ok(Value::None);
    }
    // Exact types first: the common case, and the only one that never pickles.
    if let Ok(b) = obj.cast_exact::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if obj.is_exact_instance_of::<PyInt>() {
        return int_value(obj);
    }
    if let Ok(f) = obj.cast_exact::<PyFloat>() {
        return Ok(Value::Float(f.value()));
    }
    if let Ok(s) = obj.cast_exact::<PyString>() {
        return str_value(obj, s);
    }
    if let Ok(b) = obj.cast_exact::<PyBytes>() {
        return Ok(bytes_value(b));
    }
    if let Ok(t) = obj.cast_exact::<PyTuple>() {
        return Ok(Value::Tuple(items(t.iter(), opts, left)?));
    }
    if let Ok(l) = obj.cast_exact::<PyList>() {
        return Ok(Value::List(items(l.iter(), opts, left)?));
    }
    if let Ok(d) = obj.cast_exact::<PyDict>() {
        return dict_value(d, opts, left);
    }
    if let Ok(s) = obj.cast_exact::<PySet>() {
        return Ok(Value::Set(items(s.iter(), opts, left)?));
    }
    if let Ok(s) = obj.cast_exact::<PyFrozenSet>() {
        return Ok(Value::FrozenSet(items(s.iter(), opts, left)?));
    }
    if let Ok(b) = obj.cast_exact::<PyByteArray>() {
        return Ok(Value::ByteArray(Bytes::from(b.to_vec())));
    }
    // numpy arrays and scalars (np.float64 is a float subclass: before kinds).
    if let Some(v) = crate::ndarray::to_value(obj)? {
        return Ok(v);
    }
    if let Some(v) = kinds::to_value(obj).map_err(|e| ConvertError::new(obj, e.to_string()))? {
        return Ok(v);
    }
    if let Some(v) = record_value(obj, opts, left)? {
        return Ok(v);
    }
    if opts.allow_pickle {
        return pickle(obj);
    }
    // Subclasses of the builtin types travel as their base shape.
    if obj.is_instance_of::<PyInt>() {
        return int_value(obj);
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Ok(Value::Float(f.value()));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return str_value(obj, s);
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(bytes_value(b));
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return Ok(Value::ByteArray(Bytes::from(b.to_vec())));
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        return Ok(Value::Tuple(items(t.iter(), opts, left)?));
    }
    if let Ok(l) = obj.cast::<PyList>() {
        return Ok(Value::List(items(l.iter(), opts, left)?));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        return dict_value(d, opts, left);
    }
    if let Ok(s) = obj.cast::<PySet>() {
        return Ok(Value::Set(items(s.iter(), opts, left)?));
    }
    if let Ok(s) = obj.cast::<PyFrozenSet>() {
        return Ok(Value::FrozenSet(items(s.iter(), opts, left)?));
    }
    Err(ConvertError::new(obj, UNSUPPORTED))
}

/// A `bytes` object as [`Bytes`] without copying: the buffer stays the Python
/// object's, kept alive by a reference (Python's `bytes` are immutable). A
/// 500 MiB result is then never duplicated before it is encoded.
fn bytes_value(b: &Bound<'_, PyBytes>) -> Value {
    Value::Bytes(Bytes::from_owner(PyBackedBytes::from(b.clone())))
}

fn int_value(obj: &Bound<'_, PyAny>) -> Result<Value, ConvertError> {
    if let Ok(i) = obj.extract::<i64>() {
        return Ok(Value::Int(i));
    }
    obj.extract::<BigInt>()
        .map(Value::from)
        .map_err(|e| ConvertError::new(obj, e.to_string()))
}

fn str_value(obj: &Bound<'_, PyAny>, s: &Bound<'_, PyString>) -> Result<Value, ConvertError> {
    s.to_cow()
        .map(|s| Value::Str(s.into_owned()))
        // Lone surrogates cannot be UTF-8.
        .map_err(|e| ConvertError::new(obj, e.to_string()))
}

fn items<'py>(
    iter: impl Iterator<Item = Bound<'py, PyAny>>,
    opts: Options,
    left: usize,
) -> Result<Vec<Value>, ConvertError> {
    iter.enumerate()
        .map(|(i, item)| to_value_at(&item, opts, left - 1).map_err(|e| e.at(format!("[{i}]"))))
        .collect()
}

fn dict_value(d: &Bound<'_, PyDict>, opts: Options, left: usize) -> Result<Value, ConvertError> {
    let mut entries = Vec::with_capacity(d.len());
    for (k, v) in d.iter() {
        let key = to_value_at(&k, opts, left - 1)
            .map_err(|e| e.at(format!("{} (a key)", key_segment(&k))))?;
        let value = to_value_at(&v, opts, left - 1).map_err(|e| e.at(key_segment(&k)))?;
        entries.push((key, value));
    }
    Ok(Value::Dict(entries))
}

static RECORD_ENCODE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static RECORD_DECODE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// A dataclass, NamedTuple, Enum member or registered type as a record, by
/// `pyrpc._types._encode`; `None` for any other object.
fn record_value(
    obj: &Bound<'_, PyAny>,
    opts: Options,
    left: usize,
) -> Result<Option<Value>, ConvertError> {
    let py = obj.py();
    let fail = |e: PyErr| ConvertError::new(obj, e.to_string());
    // Without the Python half of the package (Rust unit tests embed a bare
    // interpreter) there are no records.
    let Ok(encode) = RECORD_ENCODE.import(py, "pyrpc._types", "_encode") else {
        return Ok(None);
    };
    let encoded = encode.call1((obj,)).map_err(fail)?;
    if encoded.is_none() {
        return Ok(None);
    }
    let (type_name, kind, names, values): (String, i32, Vec<String>, Bound<'_, PyTuple>) =
        encoded.extract().map_err(fail)?;
    let mut record = Record::new(
        type_name,
        RecordKind::try_from(kind).unwrap_or(RecordKind::Unspecified),
    );
    for (name, v) in names.into_iter().zip(values.iter()) {
        let value = to_value_at(&v, opts, left - 1).map_err(|e| e.at(format!(".{name}")))?;
        record.fields.push((name, value));
    }
    Ok(Some(Value::from(record)))
}

static PICKLE_DUMPS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static PICKLE_LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn pickle(obj: &Bound<'_, PyAny>) -> Result<Value, ConvertError> {
    let py = obj.py();
    let pickled = PICKLE_DUMPS
        .import(py, "pickle", "dumps")
        .and_then(|dumps| dumps.call1((obj,)))
        .map_err(|e| ConvertError::new(obj, format!("cannot pickle it: {e}")))?;
    let bytes = pickled
        .cast::<PyBytes>()
        .map_err(|e| ConvertError::new(obj, e.to_string()))?;
    Ok(Value::Pickle(Bytes::copy_from_slice(bytes.as_bytes())))
}

// ===== Value -> Python =====

/// Converts a [`Value`] to a Python object.
///
/// # Errors
///
/// `TypeError` for a set item or dict key Python cannot hash (a peer in
/// another language may send one), or for a pickle when pickling is not
/// allowed; whatever `pickle.loads` raises otherwise.
pub(crate) fn to_python(py: Python<'_>, value: Value, opts: Options) -> PyResult<Py<PyAny>> {
    stacker::maybe_grow(RED_ZONE, NEW_SEGMENT, || to_python_level(py, value, opts))
}

fn to_python_level(py: Python<'_>, value: Value, opts: Options) -> PyResult<Py<PyAny>> {
    Ok(match value {
        Value::None => py.None(),
        Value::Bool(b) => PyBool::new(py, b).to_owned().into_any().unbind(),
        Value::Int(i) => i.into_pyobject(py)?.into_any().unbind(),
        Value::BigInt(b) => b.into_pyobject(py)?.into_any().unbind(),
        Value::Float(f) => PyFloat::new(py, f).into_any().unbind(),
        Value::Str(s) => PyString::new(py, &s).into_any().unbind(),
        Value::Bytes(b) => PyBytes::new(py, &b).into_any().unbind(),
        Value::List(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_python(py, item, opts)?)?;
            }
            list.into_any().unbind()
        }
        Value::Tuple(items) => {
            let items = items
                .into_iter()
                .map(|v| to_python(py, v, opts))
                .collect::<PyResult<Vec<_>>>()?;
            PyTuple::new(py, items)?.into_any().unbind()
        }
        Value::Set(items) => {
            let set = PySet::empty(py)?;
            for item in items {
                set.add(to_python(py, item, opts)?)?;
            }
            set.into_any().unbind()
        }
        Value::FrozenSet(items) => {
            let items = items
                .into_iter()
                .map(|v| to_python(py, v, opts))
                .collect::<PyResult<Vec<_>>>()?;
            PyFrozenSet::new(py, items)?.into_any().unbind()
        }
        Value::Dict(entries) => {
            let dict = PyDict::new(py);
            for (k, v) in entries {
                dict.set_item(to_python(py, k, opts)?, to_python(py, v, opts)?)?;
            }
            dict.into_any().unbind()
        }
        Value::ByteArray(b) => PyByteArray::new(py, &b).into_any().unbind(),
        Value::NdArray(a) => crate::ndarray::to_python(py, &a, opts)?,
        Value::Encoded(b) => {
            crate::direct::decode(py, &b, opts).map_err(crate::direct::DecodeError::into_pyerr)?
        }
        Value::Record(r) => {
            let Record {
                type_name,
                kind,
                fields,
            } = *r;
            let mut names = Vec::with_capacity(fields.len());
            let mut values = Vec::with_capacity(fields.len());
            for (name, v) in fields {
                names.push(name);
                values.push(to_python(py, v, opts)?);
            }
            RECORD_DECODE
                .import(py, "pyrpc._types", "_decode")?
                .call1((
                    type_name,
                    kind as i32,
                    PyTuple::new(py, names)?,
                    PyTuple::new(py, values)?,
                ))?
                .unbind()
        }
        Value::Pickle(p) => {
            if !opts.allow_pickle {
                return Err(PyTypeError::new_err(
                    "received a pickled object but allow_pickle is False here",
                ));
            }
            PICKLE_LOADS
                .import(py, "pickle", "loads")?
                .call1((PyBytes::new(py, &p),))?
                .unbind()
        }
        other => match kinds::to_python(py, &other)? {
            Some(obj) => obj,
            None => {
                return Err(PyTypeError::new_err(format!(
                    "cannot convert a {} value",
                    other.type_name()
                )))
            }
        },
    })
}

/// Converts [`pyrpc_proto::Args`] to a Python `(tuple, dict)`.
///
/// # Errors
///
/// As [`to_python`].
pub(crate) fn from_args<'py>(
    py: Python<'py>,
    args: pyrpc_proto::Args,
    opts: Options,
) -> PyResult<(Bound<'py, PyTuple>, Bound<'py, PyDict>)> {
    // Encoded arguments (the server's) are decoded within one budget for
    // them all (decision 0019): the server counted only the arguments.
    let encoded: u64 = args
        .args
        .iter()
        .chain(args.kwargs.iter().map(|(_, v)| v))
        .map(|v| match v {
            Value::Encoded(b) => b.len() as u64,
            _ => 0,
        })
        .sum();
    let mut budget = crate::direct::Budget::for_arguments(encoded);
    let mut one = |v: Value| match v {
        Value::Encoded(b) => crate::direct::decode_within(py, &b, opts, &mut budget)
            .map_err(crate::direct::DecodeError::into_pyerr),
        v => to_python(py, v, opts),
    };
    let positional = args
        .args
        .into_iter()
        .map(&mut one)
        .collect::<PyResult<Vec<_>>>()?;
    let kwargs = PyDict::new(py);
    for (k, v) in args.kwargs {
        kwargs.set_item(k, one(v)?)?;
    }
    Ok((PyTuple::new(py, positional)?, kwargs))
}

#[cfg(test)]
mod tests;
