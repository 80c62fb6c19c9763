//! Python objects to the bytes of a `pyrpc.v1.Value`.

use bytes::Bytes;
use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyFrozenSet, PyInt, PyList, PySet, PyString, PyTuple};
use pyrpc_proto::raw::{self, RawArgs};
use pyrpc_proto::NESTED_MAX_DEPTH;

use super::clock;
use super::longs::Longs;
use super::packed::{self, Packed};
use super::recent_keys::RecentKey;
use super::wire::*;
use crate::convert::{self, ConvertError, Options};

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
        recent_keys: Vec::new(),
        longs: Longs::get(obj.py()),
    };
    match enc.value(obj, opts.max_depth, 1) {
        Ok(()) => {
            crate::warm::moved(enc.buf.len());
            Ok(Bytes::from(enc.buf))
        }
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

pub(super) struct Encoder {
    pub(super) buf: Vec<u8>,
    opts: Options,
    /// The str keys of the last dicts by their position, with the field
    /// each was written as ([`RecentKey`]).
    pub(super) recent_keys: Vec<RecentKey>,
    /// How an exact int's value is read ([`Longs`]).
    longs: Longs,
}

impl Encoder {
    fn varint(&mut self, v: u64) {
        packed::put_varint(&mut self.buf, v);
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
        key: &[u8],
        body: impl FnOnce(&mut Self) -> Result<(), Fail>,
    ) -> Result<(), Fail> {
        self.buf.extend_from_slice(key);
        let at = self.buf.len();
        self.buf.push(0);
        body(self)?;
        self.close_len(at);
        Ok(())
    }

    /// Writes the length of what follows the one byte set aside at `at`,
    /// moving it when the length needs more than that byte.
    #[inline(always)]
    fn close_len(&mut self, at: usize) {
        let len = self.buf.len() - at - 1;
        if len < 0x80 {
            self.buf[at] = len as u8;
        } else {
            self.close_long_len(at, len);
        }
    }

    /// [`Encoder::close_len`] for a length of two bytes or more.
    #[cold]
    #[inline(never)]
    fn close_long_len(&mut self, at: usize, len: usize) {
        {
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
    }

    /// Writes the fields of one `Value` message for `obj`; `left` levels
    /// are allowed from here, `level` is this value's depth.
    #[allow(unsafe_code)]
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
        // SAFETY: `obj` is a live object and the GIL is held.
        if unsafe { self.scalar(obj.as_ptr()) } {
            // None, or an exact bool, int within 64 bits, float or str.
        } else if obj.is_exact_instance_of::<PyInt>() {
            // Beyond 64 bits.
            self.other(obj, left, level)?;
        } else if let Ok(s) = obj.cast_exact::<PyString>() {
            // Not UTF-8 (lone surrogates): the error names it.
            let text = utf8(s).map_err(|e| ConvertError::new(obj, e.to_string()))?;
            self.len_delimited(STR, text);
        } else if let Ok(b) = obj.cast_exact::<PyBytes>() {
            self.len_delimited(BYTES, b.as_bytes());
        } else if let Ok(l) = obj.cast_exact::<PyList>() {
            self.list(l, left, level)?;
        } else if let Ok(t) = obj.cast_exact::<PyTuple>() {
            self.nested(&[TUPLE], |e| {
                e.seq_items(t.as_any(), &TUPLE_ITEMS, left, level)
            })?;
        } else if let Ok(d) = obj.cast_exact::<PyDict>() {
            self.nested(&[DICT], |e| e.dict(d, left, level))?;
        } else if let Ok(s) = obj.cast_exact::<PySet>() {
            self.nested(&[SET], |e| e.items(s.iter(), left, level))?;
        } else if let Ok(s) = obj.cast_exact::<PyFrozenSet>() {
            self.nested(&[FROZENSET], |e| e.items(s.iter(), left, level))?;
        } else {
            self.other(obj, left, level)?;
        }
        Ok(())
    }

    /// A list: packed when its items allow it (and fit the depth limits),
    /// as `Items` otherwise.
    #[inline(never)]
    fn list(&mut self, l: &Bound<'_, PyList>, left: usize, level: usize) -> Result<(), Fail> {
        if left > 1 && level < NESTED_MAX_DEPTH {
            match packed::kind_of(l) {
                Some(Packed::Ints) => {
                    let mark = self.buf.len();
                    let mut fits = false;
                    self.nested(&packed::INT_LIST, |e| {
                        e.nested(&[ITEM], |e| {
                            fits = packed::write_ints(l, &mut e.buf);
                            Ok(())
                        })
                    })?;
                    if fits {
                        return Ok(());
                    }
                    // An item that is not an int within 64 bits.
                    self.buf.truncate(mark);
                }
                Some(Packed::Floats) => {
                    return self.nested(&packed::FLOAT_LIST, |e| {
                        e.nested(&[ITEM], |e| {
                            packed::write_floats(l, &mut e.buf);
                            Ok(())
                        })
                    });
                }
                None => {}
            }
        }
        self.nested(&[LIST], |e| {
            e.seq_items(l.as_any(), &LIST_ITEMS, left, level)
        })
    }

    /// The items of a list or tuple (`of` says which), each as an `ITEM`.
    /// Exact scalars are written from the sequence's own (borrowed)
    /// references; anything else is held while it is written, since writing
    /// it may run Python code that changes a list (the next item is then
    /// looked up afresh).
    #[allow(unsafe_code)]
    #[inline(never)]
    fn seq_items(
        &mut self,
        seq: &Bound<'_, PyAny>,
        of: &SeqFns,
        left: usize,
        level: usize,
    ) -> Result<(), Fail> {
        let plain_ok = left > 1 && level < NESTED_MAX_DEPTH;
        let mut i = 0;
        loop {
            // SAFETY: `seq` is a live list or tuple, as `of` says; `get`
            // returns a borrowed reference (NULL past the end, which
            // `i < len` rules out), and nothing runs Python code before it
            // is used or taken.
            let item = unsafe {
                if i as ffi::Py_ssize_t >= (of.len)(seq.as_ptr()) {
                    return Ok(());
                }
                (of.get)(seq.as_ptr(), i as ffi::Py_ssize_t)
            };
            // SAFETY: as above.
            if plain_ok && unsafe { self.plain_as(ITEM, item) } {
                i += 1;
                continue;
            }
            // SAFETY: a live borrowed reference, taken before any Python
            // code can run.
            let item = unsafe { Bound::from_borrowed_ptr(seq.py(), item) };
            self.nested(&[ITEM], |e| e.value(&item, left - 1, level + 1))
                .map_err(|f| at(f, || format!("[{i}]")))?;
            i += 1;
        }
    }

    /// Writes `obj` as the field `key` (`ITEM` or `DICT_VALUE`) when it is
    /// `None` or an exact `bool`, `int` within 64 bits, `float` or `str`
    /// whose UTF-8 CPython can give, and says whether it did (writing
    /// nothing otherwise: the caller then takes the general path, which
    /// reports errors). Runs no Python code, so `obj` may be a reference
    /// borrowed from a container.
    ///
    /// # Safety
    ///
    /// `obj` must be a live object, with the GIL held.
    #[allow(unsafe_code)]
    #[inline]
    pub(super) unsafe fn plain_as(&mut self, key: u8, obj: *mut ffi::PyObject) -> bool {
        let mark = self.buf.len();
        self.buf.extend_from_slice(&[key, 0]);
        if !self.scalar(obj) {
            self.buf.truncate(mark);
            return false;
        }
        self.close_len(mark + 1);
        true
    }

    /// Writes the fields of `obj`'s `Value` when it is one of the scalars
    /// [`Encoder::plain_as`] names, and says whether it did (writing nothing
    /// otherwise). Runs no Python code.
    ///
    /// # Safety
    ///
    /// As [`Encoder::plain_as`].
    #[allow(unsafe_code)]
    #[inline]
    unsafe fn scalar(&mut self, obj: *mut ffi::PyObject) -> bool {
        let ty = ffi::Py_TYPE(obj);
        if obj == ffi::Py_None() {
            self.buf.extend_from_slice(&[NONE, 0]);
        } else if ty == std::ptr::addr_of_mut!(ffi::PyBool_Type) {
            self.buf
                .extend_from_slice(&[BOOL, u8::from(obj == ffi::Py_True())]);
        } else if ty == std::ptr::addr_of_mut!(ffi::PyFloat_Type) {
            self.buf.push(FLOAT);
            self.buf
                .extend_from_slice(&self.longs.float(obj).to_le_bytes());
        } else if ty == std::ptr::addr_of_mut!(ffi::PyLong_Type) {
            let Some(v) = self.longs.value(obj) else {
                return false;
            };
            self.buf.push(INT);
            packed::put_varint(&mut self.buf, zigzag(v));
        } else if ty == std::ptr::addr_of_mut!(ffi::PyUnicode_Type) {
            let mut size: ffi::Py_ssize_t = 0;
            let data = utf8_ffi::PyUnicode_AsUTF8AndSize(obj, &mut size);
            if data.is_null() {
                // Lone surrogates: the general path raises the error.
                ffi::PyErr_Clear();
                return false;
            }
            let text = std::slice::from_raw_parts(data.cast::<u8>(), size as usize);
            self.len_delimited(STR, text);
        } else {
            return false;
        }
        true
    }

    #[inline(never)]
    fn items<'py>(
        &mut self,
        iter: impl Iterator<Item = Bound<'py, PyAny>>,
        left: usize,
        level: usize,
    ) -> Result<(), Fail> {
        for (i, item) in iter.enumerate() {
            self.nested(&[ITEM], |e| e.value(&item, left - 1, level + 1))
                .map_err(|f| at(f, || format!("[{i}]")))?;
        }
        Ok(())
    }

    /// A dict's keys and values, interleaved. A pair of exact scalars is
    /// written from the dict's own (borrowed) references; any other pair is
    /// held while it is written, since writing it may run Python code, and
    /// the dict must not change size meanwhile.
    #[allow(unsafe_code)]
    #[inline(never)]
    fn dict(&mut self, d: &Bound<'_, PyDict>, left: usize, level: usize) -> Result<(), Fail> {
        let py = d.py();
        let plain_ok = left > 1 && level < NESTED_MAX_DEPTH;
        let size = d.len();
        let mut pos: ffi::Py_ssize_t = 0;
        let mut k: *mut ffi::PyObject = std::ptr::null_mut();
        let mut v: *mut ffi::PyObject = std::ptr::null_mut();
        let mut position = 0;
        // SAFETY: `d` is a live dict; `PyDict_Next` gives borrowed
        // references, used before any Python code runs or taken first.
        while unsafe { ffi::PyDict_Next(d.as_ptr(), &mut pos, &mut k, &mut v) } != 0 {
            let place = position;
            position += 1;
            // SAFETY: live borrowed references (above).
            if plain_ok && unsafe { is_plain(k) && is_plain(v) } {
                let mark = self.buf.len();
                // SAFETY: as above; none of these calls runs Python code.
                if unsafe { self.key_as_before(place, k) || self.plain_key(py, place, k) }
                    && unsafe { self.plain_as(DICT_VALUE, v) }
                {
                    continue;
                }
                self.buf.truncate(mark);
            }
            // SAFETY: live borrowed references, taken before any Python
            // code can run.
            let (k, v) = unsafe {
                (
                    Bound::from_borrowed_ptr(py, k),
                    Bound::from_borrowed_ptr(py, v),
                )
            };
            self.nested(&[ITEM], |e| e.value(&k, left - 1, level + 1))
                .map_err(|f| at(f, || format!("{} (a key)", convert::key_segment(&k))))?;
            self.nested(&[DICT_VALUE], |e| e.value(&v, left - 1, level + 1))
                .map_err(|f| at(f, || convert::key_segment(&k)))?;
            if d.len() != size {
                return Err(ConvertError::new(
                    d.as_any(),
                    "dict changed size while it was being sent".to_string(),
                )
                .into());
            }
        }
        Ok(())
    }

    /// Anything but the common shapes, through the `Value` path.
    #[inline(never)]
    fn other(&mut self, obj: &Bound<'_, PyAny>, left: usize, level: usize) -> Result<(), Fail> {
        // A naive or UTC datetime, a date: their fields read in place.
        if clock::encode(obj, &mut self.buf) {
            return Ok(());
        }
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

/// How [`Encoder::seq_items`] reads a list or a tuple.
struct SeqFns {
    len: unsafe extern "C" fn(*mut ffi::PyObject) -> ffi::Py_ssize_t,
    get: unsafe extern "C" fn(*mut ffi::PyObject, ffi::Py_ssize_t) -> *mut ffi::PyObject,
}

const LIST_ITEMS: SeqFns = SeqFns {
    len: ffi::PyList_Size,
    get: ffi::PyList_GetItem,
};

const TUPLE_ITEMS: SeqFns = SeqFns {
    len: ffi::PyTuple_Size,
    get: ffi::PyTuple_GetItem,
};

/// Whether [`Encoder::plain`] may write `obj`: `None` or an exact `bool`,
/// `int`, `float` or `str` (an int or str it then cannot write sends the
/// pair the general way).
///
/// # Safety
///
/// `obj` must be a live object.
#[allow(unsafe_code)]
#[inline]
unsafe fn is_plain(obj: *mut ffi::PyObject) -> bool {
    let ty = ffi::Py_TYPE(obj);
    obj == ffi::Py_None()
        || ty == std::ptr::addr_of_mut!(ffi::PyBool_Type)
        || ty == std::ptr::addr_of_mut!(ffi::PyFloat_Type)
        || ty == std::ptr::addr_of_mut!(ffi::PyLong_Type)
        || ty == std::ptr::addr_of_mut!(ffi::PyUnicode_Type)
}

/// Adds a path segment to a conversion error.
fn at(f: Fail, segment: impl FnOnce() -> String) -> Fail {
    match f {
        Fail::Convert(e) => Fail::Convert(e.at(segment())),
        deep => deep,
    }
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
