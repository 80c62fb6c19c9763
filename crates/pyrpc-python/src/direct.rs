//! Python objects straight to and from the protobuf bytes of a
//! `pyrpc.v1.Value`, without a [`pyrpc_proto::Value`] tree in between.
//!
//! The common shapes (`None`, `bool`, `int` within 64 bits, `float`, `str`,
//! `bytes`, and `list`, `tuple`, `dict`, `set`, `frozenset` of exactly those
//! types) are written and read here in one pass; every other object (the
//! standard kinds, records, big ints, subclasses, pickles) goes through
//! [`crate::convert`] for that one sub-value, so every behaviour of the
//! `Value` path is kept. The bytes are the same protobuf the generated code
//! writes, with two freedoms protobuf allows: a dict's `keys` and `values`
//! fields are interleaved (key, value, key, value), and lengths of nested
//! messages are back-patched.
//!
//! A value nested deeper than [`pyrpc_proto::NESTED_MAX_DEPTH`] is written by
//! the `Value` path, which picks the flat encoding for it (PROTOCOL.md §5).

use bytes::Bytes;
use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyBytes, PyDict, PyFloat, PyFrozenSet, PyInt, PyList, PySet, PyString, PyTuple,
};
use pyrpc_proto::raw::{self, RawArgs};
use pyrpc_proto::{ValueError, NESTED_MAX_DEPTH};

use crate::convert::{self, ConvertError, Options};

// ===== Python -> bytes =====

/// Why [`Encoder::value`] stopped.
enum Fail {
    /// The value cannot be sent.
    Convert(ConvertError),
    /// Nested deeper than nested messages go: encode it the flat way.
    Deep,
}

impl From<ConvertError> for Fail {
    fn from(e: ConvertError) -> Self {
        Fail::Convert(e)
    }
}

/// Encodes `obj` as the bytes of a `pyrpc.v1.Value` message.
///
/// # Errors
///
/// As [`convert::to_value`].
pub(crate) fn encode(obj: &Bound<'_, PyAny>, opts: Options) -> Result<Bytes, ConvertError> {
    let mut enc = Encoder {
        buf: Vec::with_capacity(64),
        opts,
    };
    match enc.value(obj, opts.max_depth, 1) {
        Ok(()) => Ok(Bytes::from(enc.buf)),
        Err(Fail::Convert(e)) => Err(e),
        Err(Fail::Deep) => Ok(raw::encode_value(convert::to_value(obj, opts)?)),
    }
}

/// Converts positional arguments (a tuple) and keyword arguments (a dict with
/// str keys) to encoded values.
///
/// # Errors
///
/// A `TypeError` naming the unsendable object's type and place.
pub(crate) fn encode_args(
    args: &Bound<'_, PyTuple>,
    kwargs: Option<&Bound<'_, PyDict>>,
    opts: Options,
) -> PyResult<RawArgs> {
    let mut out = RawArgs {
        args: Vec::with_capacity(args.len()),
        kwargs: Vec::new(),
    };
    for (i, a) in args.iter().enumerate() {
        let v = encode(&a, opts).map_err(|e| e.at(format!("[{i}]")).into_pyerr("args"))?;
        out.args.push(v);
    }
    if let Some(kwargs) = kwargs {
        out.kwargs.reserve(kwargs.len());
        for (k, v) in kwargs.iter() {
            let name: String = k
                .extract()
                .map_err(|_| PyTypeError::new_err("keyword argument names must be str"))?;
            let v = encode(&v, opts)
                .map_err(|e| e.at(convert::key_segment(&k)).into_pyerr("kwargs"))?;
            out.kwargs.push((name, v));
        }
    }
    Ok(out)
}

struct Encoder {
    buf: Vec<u8>,
    opts: Options,
}

// Value fields: key bytes (field number << 3 | wire type).
const NONE: u8 = 1 << 3 | 2;
const BOOL: u8 = 2 << 3;
const INT: u8 = 3 << 3;
const FLOAT: u8 = 5 << 3 | 1;
const STR: u8 = 6 << 3 | 2;
const BYTES: u8 = 7 << 3 | 2;
const LIST: u8 = 8 << 3 | 2;
const TUPLE: u8 = 9 << 3 | 2;
const SET: u8 = 10 << 3 | 2;
const FROZENSET: u8 = 11 << 3 | 2;
const DICT: u8 = 12 << 3 | 2;
/// `Items.items`, `Dict.keys`.
const ITEM: u8 = 1 << 3 | 2;
/// `Dict.values`.
const DICT_VALUE: u8 = 2 << 3 | 2;

impl Encoder {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    fn len_delimited(&mut self, key: u8, data: &[u8]) {
        self.buf.push(key);
        self.varint(data.len() as u64);
        self.buf.extend_from_slice(data);
    }

    /// Writes `key`, then what `body` writes, as a length-delimited field:
    /// one byte is set aside for the length and the body moved when the
    /// length needs more.
    fn nested(
        &mut self,
        key: u8,
        body: impl FnOnce(&mut Self) -> Result<(), Fail>,
    ) -> Result<(), Fail> {
        self.buf.push(key);
        let at = self.buf.len();
        self.buf.push(0);
        body(self)?;
        let len = self.buf.len() - at - 1;
        if len < 0x80 {
            self.buf[at] = len as u8;
        } else {
            let mut head = [0u8; 10];
            let mut n = 0;
            let mut v = len as u64;
            while v >= 0x80 {
                head[n] = v as u8 | 0x80;
                v >>= 7;
                n += 1;
            }
            head[n] = v as u8;
            n += 1;
            self.buf.splice(at..at + 1, head[..n].iter().copied());
        }
        Ok(())
    }

    /// Writes the fields of one `Value` message for `obj`; `left` levels
    /// are allowed from here, `level` is this value's depth.
    fn value(&mut self, obj: &Bound<'_, PyAny>, left: usize, level: usize) -> Result<(), Fail> {
        if left == 0 {
            return Err(ConvertError::new(
                obj,
                format!("value nested deeper than {} levels", self.opts.max_depth),
            )
            .into());
        }
        if level > NESTED_MAX_DEPTH {
            return Err(Fail::Deep);
        }
        if obj.is_none() {
            self.buf.extend_from_slice(&[NONE, 0]);
        } else if obj.is_exact_instance_of::<PyBool>() {
            self.buf
                .extend_from_slice(&[BOOL, u8::from(obj.is_truthy().unwrap_or(false))]);
        } else if obj.is_exact_instance_of::<PyInt>() {
            match small_int(obj) {
                Some(i) => {
                    self.buf.push(INT);
                    self.varint(((i << 1) ^ (i >> 63)) as u64);
                }
                None => self.other(obj, left, level)?,
            }
        } else if let Ok(f) = obj.cast_exact::<PyFloat>() {
            self.buf.push(FLOAT);
            self.buf.extend_from_slice(&f.value().to_le_bytes());
        } else if let Ok(s) = obj.cast_exact::<PyString>() {
            let text = utf8(s).map_err(|e| ConvertError::new(obj, e.to_string()))?;
            self.len_delimited(STR, text);
        } else if let Ok(b) = obj.cast_exact::<PyBytes>() {
            self.len_delimited(BYTES, b.as_bytes());
        } else if let Ok(l) = obj.cast_exact::<PyList>() {
            self.nested(LIST, |e| e.items(l.iter(), left, level))?;
        } else if let Ok(t) = obj.cast_exact::<PyTuple>() {
            self.nested(TUPLE, |e| e.items(t.iter(), left, level))?;
        } else if let Ok(d) = obj.cast_exact::<PyDict>() {
            self.nested(DICT, |e| e.dict(d, left, level))?;
        } else if let Ok(s) = obj.cast_exact::<PySet>() {
            self.nested(SET, |e| e.items(s.iter(), left, level))?;
        } else if let Ok(s) = obj.cast_exact::<PyFrozenSet>() {
            self.nested(FROZENSET, |e| e.items(s.iter(), left, level))?;
        } else {
            self.other(obj, left, level)?;
        }
        Ok(())
    }

    #[inline(never)]
    fn items<'py>(
        &mut self,
        iter: impl Iterator<Item = Bound<'py, PyAny>>,
        left: usize,
        level: usize,
    ) -> Result<(), Fail> {
        for (i, item) in iter.enumerate() {
            self.nested(ITEM, |e| e.value(&item, left - 1, level + 1))
                .map_err(|f| at(f, || format!("[{i}]")))?;
        }
        Ok(())
    }

    #[inline(never)]
    fn dict(&mut self, d: &Bound<'_, PyDict>, left: usize, level: usize) -> Result<(), Fail> {
        for (k, v) in d.iter() {
            self.nested(ITEM, |e| e.value(&k, left - 1, level + 1))
                .map_err(|f| at(f, || format!("{} (a key)", convert::key_segment(&k))))?;
            self.nested(DICT_VALUE, |e| e.value(&v, left - 1, level + 1))
                .map_err(|f| at(f, || convert::key_segment(&k)))?;
        }
        Ok(())
    }

    /// Anything but the common shapes, through the `Value` path.
    #[inline(never)]
    fn other(&mut self, obj: &Bound<'_, PyAny>, left: usize, level: usize) -> Result<(), Fail> {
        // numpy arrays and scalars: their elements copied once, in place.
        if crate::ndarray::encode_into(obj, &mut self.buf)? {
            return Ok(());
        }
        let opts = Options {
            max_depth: left,
            ..self.opts
        };
        let v = convert::to_value(obj, opts).map_err(|e| e.with_limit(self.opts.max_depth))?;
        if v.check_depth(NESTED_MAX_DEPTH + 1 - level).is_err() {
            return Err(Fail::Deep);
        }
        self.buf.extend_from_slice(&raw::encode_value(v));
        Ok(())
    }
}

/// Adds a path segment to a conversion error.
fn at(f: Fail, segment: impl FnOnce() -> String) -> Fail {
    match f {
        Fail::Convert(e) => Fail::Convert(e.at(segment())),
        deep => deep,
    }
}

/// The value of an exact `int` that fits in 64 bits.
#[allow(unsafe_code)]
fn small_int(obj: &Bound<'_, PyAny>) -> Option<i64> {
    let mut overflow = 0;
    // SAFETY: `obj` is a live `int`; the call sets `overflow` instead of
    // raising when the value does not fit, and cannot fail otherwise.
    let v = unsafe { ffi::PyLong_AsLongLongAndOverflow(obj.as_ptr(), &mut overflow) };
    (overflow == 0).then_some(v)
}

#[allow(unsafe_code)]
mod utf8_ffi {
    use pyo3::ffi;
    extern "C" {
        // In the stable ABI only from 3.10, but exported by every CPython 3.x.
        pub(super) fn PyUnicode_AsUTF8AndSize(
            unicode: *mut ffi::PyObject,
            size: *mut ffi::Py_ssize_t,
        ) -> *const std::os::raw::c_char;
    }
}

/// The UTF-8 of a `str`, cached in the object by CPython (no copy).
#[allow(unsafe_code)]
fn utf8<'a>(s: &'a Bound<'_, PyString>) -> PyResult<&'a [u8]> {
    let mut size: ffi::Py_ssize_t = 0;
    // SAFETY: `s` is a live `str`; the returned buffer lives as long as the
    // object, which `s` borrows for 'a.
    let data = unsafe { utf8_ffi::PyUnicode_AsUTF8AndSize(s.as_ptr(), &mut size) };
    if data.is_null() {
        // Lone surrogates cannot be UTF-8.
        return Err(PyErr::fetch(s.py()));
    }
    // SAFETY: CPython returns `size` valid bytes at `data`.
    Ok(unsafe { std::slice::from_raw_parts(data.cast::<u8>(), size as usize) })
}

/// `_pyrpc._dumps(obj)`: the bytes of `obj` as a `pyrpc.v1.Value` message,
/// as a call sends it (for tests and benchmarks; pickles refused).
#[pyfunction]
pub(crate) fn _dumps<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    let bytes = encode(obj, Options::default()).map_err(|e| e.into_pyerr("value"))?;
    Ok(PyBytes::new(obj.py(), &bytes))
}

/// `_pyrpc._loads(data)`: the object a `pyrpc.v1.Value` message's bytes
/// decode to, as a call's result does (for tests and benchmarks).
#[pyfunction]
pub(crate) fn _loads(py: Python<'_>, data: &[u8]) -> PyResult<Py<PyAny>> {
    decode(py, &Bytes::copy_from_slice(data), Options::default()).map_err(|e| match e {
        DecodeError::Py(e) => e,
        DecodeError::Value(e) => pyo3::exceptions::PyValueError::new_err(e.to_string()),
    })
}

// ===== bytes -> Python =====

/// Why decoding stopped: a Python error (an unhashable key), or bytes that
/// are not a valid value.
pub(crate) enum DecodeError {
    /// Raised by Python.
    Py(PyErr),
    /// Malformed or too deep.
    Value(ValueError),
}

impl From<PyErr> for DecodeError {
    fn from(e: PyErr) -> Self {
        DecodeError::Py(e)
    }
}

impl From<ValueError> for DecodeError {
    fn from(e: ValueError) -> Self {
        DecodeError::Value(e)
    }
}

#[cold]
fn malformed(why: &str) -> DecodeError {
    DecodeError::Value(ValueError::Undecodable(why.to_owned()))
}

/// Decodes the bytes of a `pyrpc.v1.Value` message into a Python object.
///
/// # Errors
///
/// [`DecodeError::Value`] for bytes that are not a value or nest deeper than
/// `opts.max_depth`; [`DecodeError::Py`] for what Python refuses (an
/// unhashable set item or dict key, a pickle when pickling is not allowed).
pub(crate) fn decode(
    py: Python<'_>,
    value: &Bytes,
    opts: Options,
) -> Result<Py<PyAny>, DecodeError> {
    let mut dec = Decoder {
        py,
        buf: value,
        opts,
        keys: KeyCache::new(),
    };
    Ok(dec.value(0, value.len(), opts.max_depth)?.unbind())
}

struct Decoder<'a, 'py> {
    py: Python<'py>,
    buf: &'a Bytes,
    opts: Options,
    keys: KeyCache<'py>,
}

/// Reads a varint at `*pos`, before `end`; `None` when truncated or too long.
#[inline(always)]
fn varint(buf: &[u8], pos: &mut usize, end: usize) -> Option<u64> {
    if *pos < end {
        let b = *buf.get(*pos)?;
        if b < 0x80 {
            *pos += 1;
            return Some(u64::from(b));
        }
    }
    varint_long(buf, pos, end)
}

#[inline(never)]
fn varint_long(buf: &[u8], pos: &mut usize, end: usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        if *pos >= end {
            return None;
        }
        let b = *buf.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(v);
        }
    }
    None
}

/// Reads a length and returns the range it covers.
#[inline(always)]
fn len_range(buf: &[u8], pos: &mut usize, end: usize) -> Option<(usize, usize)> {
    let len = varint(buf, pos, end)?;
    let start = *pos;
    if len > (end - start) as u64 {
        return None;
    }
    *pos = start + len as usize;
    Some((start, *pos))
}

#[cold]
fn truncated() -> DecodeError {
    malformed("truncated or overlong field")
}

/// Reads a varint at `*pos`, before `end`.
#[inline(always)]
fn read_varint(buf: &[u8], pos: &mut usize, end: usize) -> Result<u64, DecodeError> {
    varint(buf, pos, end).ok_or_else(truncated)
}

/// Reads a length and returns the range it covers.
#[inline(always)]
fn read_len(buf: &[u8], pos: &mut usize, end: usize) -> Result<(usize, usize), DecodeError> {
    len_range(buf, pos, end).ok_or_else(truncated)
}

/// Skips one field of wire type `wt`.
#[inline(always)]
fn skip(buf: &[u8], pos: &mut usize, end: usize, wt: u64) -> Result<(), DecodeError> {
    let ok = match wt {
        0 => varint(buf, pos, end).is_some(),
        1 | 5 => {
            let n = if wt == 1 { 8 } else { 4 };
            let fits = end - *pos >= n;
            if fits {
                *pos += n;
            }
            fits
        }
        2 => len_range(buf, pos, end).is_some(),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(truncated())
    }
}

impl<'py> Decoder<'_, 'py> {
    /// The `Value` message at `start..end`.
    fn value(
        &mut self,
        start: usize,
        end: usize,
        left: usize,
    ) -> Result<Bound<'py, PyAny>, DecodeError> {
        if left == 0 {
            return Err(ValueError::TooDeep {
                max: self.opts.max_depth,
            }
            .into());
        }
        let buf: &[u8] = self.buf;
        let py = self.py;
        let mut pos = start;
        let mut out = None;
        while pos < end {
            let key = read_varint(buf, &mut pos, end)?;
            let obj = match key {
                k if k == u64::from(NONE) => {
                    read_len(buf, &mut pos, end)?;
                    py.None().into_bound(py)
                }
                k if k == u64::from(BOOL) => {
                    let b = read_varint(buf, &mut pos, end)? != 0;
                    PyBool::new(py, b).to_owned().into_any()
                }
                k if k == u64::from(INT) => {
                    let z = read_varint(buf, &mut pos, end)?;
                    let i = (z >> 1) as i64 ^ -((z & 1) as i64);
                    let Ok(int) = i.into_pyobject(py);
                    int.into_any()
                }
                k if k == u64::from(FLOAT) => {
                    let Some(bytes) = buf.get(pos..pos + 8).filter(|_| pos + 8 <= end) else {
                        return Err(malformed("truncated float"));
                    };
                    pos += 8;
                    let mut le = [0u8; 8];
                    le.copy_from_slice(bytes);
                    PyFloat::new(py, f64::from_le_bytes(le)).into_any()
                }
                k if k == u64::from(STR) => {
                    let (s, e) = read_len(buf, &mut pos, end)?;
                    self.str(s, e)?
                }
                k if k == u64::from(BYTES) => {
                    let (s, e) = read_len(buf, &mut pos, end)?;
                    PyBytes::new(py, &buf[s..e]).into_any()
                }
                k if k == u64::from(LIST) => {
                    let (s, e) = read_len(buf, &mut pos, end)?;
                    self.sequence(s, e, left, Sequence::List)?
                }
                k if k == u64::from(TUPLE) => {
                    let (s, e) = read_len(buf, &mut pos, end)?;
                    self.sequence(s, e, left, Sequence::Tuple)?
                }
                k if k == u64::from(SET) => {
                    let (s, e) = read_len(buf, &mut pos, end)?;
                    self.set(s, e, left, false)?
                }
                k if k == u64::from(FROZENSET) => {
                    let (s, e) = read_len(buf, &mut pos, end)?;
                    self.set(s, e, left, true)?
                }
                k if k == u64::from(DICT) => {
                    let (s, e) = read_len(buf, &mut pos, end)?;
                    self.dict(s, e, left)?
                }
                // Every other kind (and anything odd) through the Value path.
                _ => return self.other(start, end, left),
            };
            out = Some(obj);
        }
        Ok(out.unwrap_or_else(|| py.None().into_bound(py)))
    }

    /// A `str` from UTF-8 that CPython checks as it decodes.
    #[allow(unsafe_code)]
    #[inline(never)]
    fn str(&mut self, start: usize, end: usize) -> Result<Bound<'py, PyAny>, DecodeError> {
        let text = &self.buf[start..end];
        // SAFETY: a pointer and length of live bytes; the result is a new
        // reference or NULL with an exception set.
        let obj = unsafe {
            ffi::PyUnicode_DecodeUTF8(
                text.as_ptr().cast(),
                text.len() as ffi::Py_ssize_t,
                c"strict".as_ptr(),
            )
        };
        if obj.is_null() {
            drop(PyErr::fetch(self.py));
            return Err(malformed("str value that is not UTF-8"));
        }
        // SAFETY: a new, non-NULL reference.
        Ok(unsafe { Bound::from_owned_ptr(self.py, obj) })
    }

    /// A list or tuple of the items of the `Items` message at
    /// `start..end`, made at its final size (the items are counted first)
    /// and filled in place.
    #[allow(unsafe_code)]
    #[inline(never)]
    fn sequence(
        &mut self,
        start: usize,
        end: usize,
        left: usize,
        kind: Sequence,
    ) -> Result<Bound<'py, PyAny>, DecodeError> {
        let buf: &[u8] = self.buf;
        let mut n: usize = 0;
        let mut pos = start;
        while pos < end {
            let key = read_varint(buf, &mut pos, end)?;
            skip(buf, &mut pos, end, key & 7)?;
            if key == u64::from(ITEM) {
                n += 1;
            }
        }
        // SAFETY: creating a list or tuple of `n` empty slots; a slot left
        // empty by an error below is NULL, which their deallocators allow.
        let seq = unsafe {
            let ptr = match kind {
                Sequence::List => ffi::PyList_New(n as ffi::Py_ssize_t),
                Sequence::Tuple => ffi::PyTuple_New(n as ffi::Py_ssize_t),
            };
            Bound::from_owned_ptr_or_err(self.py, ptr)?
        };
        let mut i: usize = 0;
        pos = start;
        while pos < end {
            let key = read_varint(buf, &mut pos, end)?;
            if key != u64::from(ITEM) {
                skip(buf, &mut pos, end, key & 7)?;
                continue;
            }
            let (s, e) = read_len(buf, &mut pos, end)?;
            let item = self.value(s, e, left - 1)?;
            // SAFETY: `i < n` (the same fields were counted above); the
            // SetItem functions steal the item's reference, fill an empty
            // slot of a sequence nobody else has seen, and cannot fail for
            // an index in range.
            unsafe {
                let at = i as ffi::Py_ssize_t;
                match kind {
                    Sequence::List => ffi::PyList_SetItem(seq.as_ptr(), at, item.into_ptr()),
                    Sequence::Tuple => ffi::PyTuple_SetItem(seq.as_ptr(), at, item.into_ptr()),
                };
            }
            i += 1;
        }
        Ok(seq)
    }

    /// A set or frozenset of the items of an `Items` message.
    #[inline(never)]
    fn set(
        &mut self,
        start: usize,
        end: usize,
        left: usize,
        frozen: bool,
    ) -> Result<Bound<'py, PyAny>, DecodeError> {
        let items = self.items(start, end, left)?;
        Ok(if frozen {
            PyFrozenSet::new(self.py, items)?.into_any()
        } else {
            PySet::new(self.py, items)?.into_any()
        })
    }

    /// The items of an `Items` message.
    fn items(
        &mut self,
        start: usize,
        end: usize,
        left: usize,
    ) -> Result<Vec<Bound<'py, PyAny>>, DecodeError> {
        let buf: &[u8] = self.buf;
        let mut out = Vec::new();
        let mut pos = start;
        while pos < end {
            let key = read_varint(buf, &mut pos, end)?;
            if key == u64::from(ITEM) {
                let (s, e) = read_len(buf, &mut pos, end)?;
                out.push(self.value(s, e, left - 1)?);
            } else {
                skip(buf, &mut pos, end, key & 7)?;
            }
        }
        Ok(out)
    }

    /// A `Dict` message: its keys and values, in whatever order they come.
    #[inline(never)]
    fn dict(
        &mut self,
        start: usize,
        end: usize,
        left: usize,
    ) -> Result<Bound<'py, PyAny>, DecodeError> {
        let buf: &[u8] = self.buf;
        let dict = PyDict::new(self.py);
        // Keys and values interleaved (what pyrpc's encoders write) go in
        // as they come; otherwise they wait here and are paired at the end.
        let mut pending: Option<Bound<'py, PyAny>> = None;
        let mut keys: Vec<Bound<'py, PyAny>> = Vec::new();
        let mut values: Vec<Bound<'py, PyAny>> = Vec::new();
        let mut pos = start;
        while pos < end {
            let key = read_varint(buf, &mut pos, end)?;
            let is_key = key == u64::from(ITEM);
            if !is_key && key != u64::from(DICT_VALUE) {
                skip(buf, &mut pos, end, key & 7)?;
                continue;
            }
            let (s, e) = read_len(buf, &mut pos, end)?;
            if is_key {
                let k = match self.keys.get(buf, s, e) {
                    Some(k) => k,
                    None => {
                        let k = self.value(s, e, left - 1)?;
                        self.keys.put(buf, s, e, &k);
                        k
                    }
                };
                if let Some(earlier) = pending.replace(k) {
                    keys.push(earlier);
                }
            } else {
                let v = self.value(s, e, left - 1)?;
                match pending.take() {
                    Some(k) if keys.is_empty() && values.is_empty() => dict.set_item(k, v)?,
                    other => {
                        keys.extend(other);
                        values.push(v);
                    }
                }
            }
        }
        keys.extend(pending);
        if keys.len() != values.len() {
            return Err(ValueError::DictLengths {
                keys: keys.len(),
                values: values.len(),
            }
            .into());
        }
        for (k, v) in keys.into_iter().zip(values) {
            dict.set_item(k, v)?;
        }
        Ok(dict.into_any())
    }

    /// A value of another kind: decoded and converted by the `Value` path.
    #[inline(never)]
    fn other(
        &mut self,
        start: usize,
        end: usize,
        left: usize,
    ) -> Result<Bound<'py, PyAny>, DecodeError> {
        let value = raw::decode_value(self.buf.slice(start..end), left).map_err(|e| match e {
            ValueError::TooDeep { .. } => ValueError::TooDeep {
                max: self.opts.max_depth,
            },
            e => e,
        })?;
        Ok(convert::to_python(self.py, value, self.opts)?.into_bound(self.py))
    }
}

/// Which sequence [`Decoder::sequence`] makes.
#[derive(Clone, Copy)]
enum Sequence {
    List,
    Tuple,
}

/// Recently decoded dict keys that were short strings, by their encoded
/// bytes: a list of records repeats the same few keys, which then become one
/// `str` object each instead of one per record.
struct KeyCache<'py> {
    slots: Vec<Option<(usize, usize, Bound<'py, PyAny>)>>,
}

const KEY_CACHE_SLOTS: usize = 256;
const KEY_CACHE_MAX_LEN: usize = 64;

impl<'py> KeyCache<'py> {
    fn new() -> Self {
        KeyCache { slots: Vec::new() }
    }

    /// The slot of a key message `buf[s..e]`, if it is a cacheable str.
    fn slot(buf: &[u8], s: usize, e: usize) -> Option<usize> {
        let msg = &buf[s..e];
        if msg.len() > KEY_CACHE_MAX_LEN + 2 || msg.len() < 2 || msg[0] != STR {
            return None;
        }
        let mut h: u32 = 0x811c_9dc5;
        for &b in msg {
            h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
        }
        Some(h as usize % KEY_CACHE_SLOTS)
    }

    fn get(&self, buf: &[u8], s: usize, e: usize) -> Option<Bound<'py, PyAny>> {
        let slot = Self::slot(buf, s, e)?;
        match self.slots.get(slot)? {
            Some((cs, ce, obj)) if buf[*cs..*ce] == buf[s..e] => Some(obj.clone()),
            _ => None,
        }
    }

    fn put(&mut self, buf: &[u8], s: usize, e: usize, obj: &Bound<'py, PyAny>) {
        let Some(slot) = Self::slot(buf, s, e) else {
            return;
        };
        if !obj.is_exact_instance_of::<PyString>() {
            return;
        }
        if self.slots.is_empty() {
            self.slots.resize_with(KEY_CACHE_SLOTS, || None);
        }
        self.slots[slot] = Some((s, e, obj.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyo3::ffi::c_str;
    use pyrpc_proto::Value;

    fn eval<'py>(py: Python<'py>, code: &std::ffi::CStr) -> Bound<'py, PyAny> {
        py.eval(code, None, None)
            .expect("test expression evaluates")
    }

    fn round_trip<'py>(py: Python<'py>, obj: &Bound<'py, PyAny>) -> Bound<'py, PyAny> {
        let bytes = encode(obj, Options::default()).expect("encodes");
        match decode(py, &bytes, Options::default()) {
            Ok(v) => v.into_bound(py),
            Err(_) => panic!("decodes"),
        }
    }

    #[test]
    fn the_bytes_are_what_the_value_path_reads() {
        Python::initialize();
        Python::attach(|py| {
            let obj = eval(
                py,
                c_str!("[None, True, False, 0, -1, 2**63-1, -2**63, 2**70, 1.5, 'x', 'é', b'y', (1, 'a'), {1: {'a': frozenset({3})}}, {4}, (), [], {}, bytearray(b'z')]"),
            );
            let bytes = encode(&obj, Options::default()).expect("encodes");
            let via_value = convert::to_value(&obj, Options::default()).expect("convertible");
            assert_eq!(raw::decode_value(bytes.clone(), 1024), Ok(via_value));
            let back = round_trip(py, &obj);
            assert!(back.eq(&obj).expect("comparable"));
            let types = eval(py, c_str!("lambda t: [type(x).__name__ for x in t]"));
            let names: Vec<String> = types
                .call1((back,))
                .and_then(|n| n.extract())
                .expect("type names");
            assert_eq!(names[12], "tuple");
            assert_eq!(names[18], "bytearray");
        });
    }

    #[test]
    fn reads_what_the_value_path_writes() {
        Python::initialize();
        Python::attach(|py| {
            let v = Value::list([
                Value::dict([(Value::from("k"), Value::from(2.5))]),
                Value::tuple([Value::from(1), Value::None]),
            ]);
            let obj = match decode(py, &raw::encode_value(v), Options::default()) {
                Ok(obj) => obj.into_bound(py),
                Err(_) => panic!("decodes"),
            };
            assert!(obj
                .eq(eval(py, c_str!("[{'k': 2.5}, (1, None)]")))
                .expect("comparable"));
        });
    }

    #[test]
    fn deep_values_take_the_flat_encoding_and_too_deep_is_refused() {
        Python::initialize();
        Python::attach(|py| {
            let deep = eval(
                py,
                c_str!("__import__('functools').reduce(lambda a, _: [a], range(200), 1)"),
            );
            let bytes = encode(&deep, Options::default()).expect("encodes");
            let v = raw::decode_value(bytes, 1024).expect("decodes");
            assert!(v.check_depth(201).is_ok() && v.check_depth(200).is_err());
            assert!(round_trip(py, &deep).eq(&deep).expect("comparable"));
            let opts = Options {
                max_depth: 100,
                ..Options::default()
            };
            let err = encode(&deep, opts).expect_err("too deep");
            assert!(err
                .message("args[0]")
                .contains("nested deeper than 100 levels"));
            let bytes = encode(&deep, Options::default()).expect("encodes");
            assert!(matches!(
                decode(py, &bytes, opts),
                Err(DecodeError::Value(ValueError::TooDeep { max: 100 }))
            ));
        });
    }

    #[test]
    fn errors_name_the_place_and_keys_are_shared() {
        Python::initialize();
        Python::attach(|py| {
            let obj = eval(py, c_str!("[1, {'x': (2, object())}]"));
            let err = encode(&obj, Options::default()).expect_err("refused");
            assert!(
                err.message("args[0]")
                    .starts_with("cannot send object of type object at args[0][1]['x'][1]: "),
                "{}",
                err.message("args[0]")
            );
            let records = eval(py, c_str!("[{'name': i} for i in range(3)]"));
            let back = round_trip(py, &records);
            let same = eval(py, c_str!("lambda l: [next(iter(d)) for d in l]"))
                .call1((back,))
                .expect("keys");
            let ids = eval(py, c_str!("lambda ks: len({id(k) for k in ks})"))
                .call1((same,))
                .and_then(|n| n.extract::<usize>())
                .expect("ids");
            assert_eq!(ids, 1);
            assert!(decode(
                py,
                &Bytes::from_static(&[0x32, 0x05, b'a']),
                Options::default()
            )
            .is_err());
        });
    }
}
