//! The bytes of a `pyrpc.v1.Value` to Python objects.

use bytes::Bytes;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyFloat, PyFrozenSet, PySet};
use pyrpc_proto::{raw, ValueError};

use super::budget::Budget;
use super::clock;
use super::keys::KeyCache;
use super::packed;
use super::presize;
use super::refs::{bool_ptr, none_ptr, set_item, Refs};
use super::slots::NewList;
use super::wire::*;
use crate::convert::{self, Options};

pub(crate) use super::wire::DecodeError;

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
    decode_within(py, value, opts, &mut Budget::unlimited())
}

/// [`decode`], charging each value to `budget` before the memory for it is
/// taken (see `super::budget`): a Python `ValueError` naming the budget
/// as soon as the total passes it, with everything made so far freed.
pub(crate) fn decode_within(
    py: Python<'_>,
    value: &Bytes,
    opts: Options,
    budget: &mut Budget,
) -> Result<Py<PyAny>, DecodeError> {
    budget.values(1)?;
    crate::warm::moved(value.len());
    let refs = Refs::get(py);
    let mut dec = Decoder {
        py,
        buf: value,
        opts,
        keys: KeyCache::new(refs),
        refs,
        budget: *budget,
    };
    let out = dec.value(0, value.len(), opts.max_depth);
    *budget = dec.budget;
    Ok(out?.unbind())
}

/// The largest dict message (in bytes) whose short str keys go through the
/// [`KeyCache`].
const SMALL_DICT_BYTES: usize = 512;

struct Decoder<'a, 'py> {
    py: Python<'py>,
    buf: &'a Bytes,
    opts: Options,
    keys: KeyCache<'py>,
    /// How reference counts are changed ([`Refs`]).
    refs: Refs,
    /// What is left of the decoded-size budget.
    budget: Budget,
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
                    self.singleton(none_ptr())
                }
                k if k == u64::from(BOOL) => {
                    let b = read_varint(buf, &mut pos, end)? != 0;
                    self.singleton(bool_ptr(b))
                }
                k if k == u64::from(INT) => {
                    let z = read_varint(buf, &mut pos, end)?;
                    let i = unzigzag(z);
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
                packed::INT_LIST_KEY | packed::FLOAT_LIST_KEY => {
                    let (s, e) = read_len(buf, &mut pos, end)?;
                    let Some((s, e)) = packed::payload(buf, s, e)? else {
                        return self.other(start, end, left);
                    };
                    if left == 1 && s < e {
                        return Err(ValueError::TooDeep {
                            max: self.opts.max_depth,
                        }
                        .into());
                    }
                    if key == packed::INT_LIST_KEY {
                        packed::read_ints(py, buf, s, e, &mut self.budget)?
                    } else {
                        packed::read_floats(py, buf, s, e, &mut self.budget)?
                    }
                }
                k if k == u64::from(clock::DATETIME)
                    || k == clock::DATE_KEY
                    || k == clock::TIMEDELTA_KEY =>
                {
                    let (s, e) = read_len(buf, &mut pos, end)?;
                    let plain = match k {
                        clock::DATE_KEY => clock::decode_date(py, buf, s, e),
                        clock::TIMEDELTA_KEY => clock::decode_timedelta(py, buf, s, e),
                        _ => clock::decode_datetime(py, buf, s, e),
                    };
                    match plain {
                        Some(obj) => {
                            self.charge_as_scanned(start, end)?;
                            obj
                        }
                        None => return self.other(start, end, left),
                    }
                }
                // Every other kind (and anything odd) through the Value path.
                _ => return self.other(start, end, left),
            };
            out = Some(obj);
        }
        Ok(out.unwrap_or_else(|| self.singleton(none_ptr())))
    }

    /// A new reference to `None`, `True` or `False` (counted inline).
    #[allow(unsafe_code)]
    #[inline(always)]
    fn singleton(&self, obj: *mut ffi::PyObject) -> Bound<'py, PyAny> {
        // SAFETY: one of the interpreter's singletons, alive for as long as
        // it runs; the GIL is held; the added reference is the result's.
        unsafe {
            self.refs.incref(obj);
            Bound::from_owned_ptr(self.py, obj)
        }
    }

    /// An item of a container (a list's or tuple's item, a dict's key or
    /// value) whose `Value` message is at `s..e`, inside a container with
    /// `left` levels left. A message of one `None`, `bool`, `int`, `float`,
    /// `str` or `dict` field (what pyrpc's encoders write for one) is read
    /// here without [`Decoder::value`]'s loop; anything else (and anything
    /// malformed, for its error) goes there.
    #[allow(unsafe_code)]
    #[inline(always)]
    fn item(&mut self, s: usize, e: usize, left: usize) -> Result<Bound<'py, PyAny>, DecodeError> {
        let buf: &[u8] = self.buf;
        // One level down must be allowed at all (`value` checks it there).
        if left > 1 && e - s >= 2 {
            let tag = buf[s];
            let py = self.py;
            match tag {
                INT => {
                    let mut pos = s + 1;
                    if let Some(z) = varint(buf, &mut pos, e).filter(|_| pos == e) {
                        let i = unzigzag(z);
                        let Ok(int) = i.into_pyobject(py);
                        return Ok(int.into_any());
                    }
                }
                FLOAT if e - s == 9 => {
                    let mut le = [0u8; 8];
                    le.copy_from_slice(&buf[s + 1..e]);
                    return Ok(PyFloat::new(py, f64::from_le_bytes(le)).into_any());
                }
                BOOL if e - s == 2 && buf[s + 1] < 0x80 => {
                    return Ok(self.singleton(bool_ptr(buf[s + 1] != 0)));
                }
                NONE if e - s == 2 && buf[s + 1] == 0 => {
                    return Ok(self.singleton(none_ptr()));
                }
                STR => {
                    let mut pos = s + 1;
                    if let Some((ts, te)) = len_range(buf, &mut pos, e).filter(|_| pos == e) {
                        return self.str(ts, te);
                    }
                }
                // A record (a dict in a list): straight to its fields.
                DICT => {
                    let mut pos = s + 1;
                    if let Some((ds, de)) = len_range(buf, &mut pos, e).filter(|_| pos == e) {
                        return self.dict(ds, de, left - 1);
                    }
                }
                _ => {}
            }
        }
        self.value(s, e, left - 1)
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
        // Its items charged before their slots are made.
        self.budget.values(n as u64)?;
        // A list or tuple of `n` empty slots; a slot left empty by an error
        // below is NULL, which their deallocators allow.
        let seq = match kind {
            Sequence::List => Filling::List(NewList::new(self.py, n)?),
            // SAFETY: a new tuple or NULL with an exception set.
            Sequence::Tuple => Filling::Tuple(unsafe {
                Bound::from_owned_ptr_or_err(self.py, ffi::PyTuple_New(n as ffi::Py_ssize_t))?
            }),
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
            prefetch(buf, e + PREFETCH_AHEAD);
            let item = self.item(s, e, left)?;
            // SAFETY: `i < n` (the same fields were counted above); the
            // SetItem functions steal the item's reference, fill an empty
            // slot of a sequence nobody else has seen, and cannot fail for
            // an index in range.
            unsafe {
                match &seq {
                    Filling::List(list) => list.set(i, item.into_ptr()),
                    Filling::Tuple(t) => {
                        ffi::PyTuple_SetItem(t.as_ptr(), i as ffi::Py_ssize_t, item.into_ptr());
                    }
                }
            }
            i += 1;
        }
        Ok(match seq {
            Filling::List(list) => list.into_any(),
            Filling::Tuple(t) => t,
        })
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
                self.budget.values(1)?;
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
        // Only small dicts (records) share their keys: a big dict's keys are
        // all different, and looking them up would only cost time. A big
        // one is made at its final size instead.
        let cached = end - start <= SMALL_DICT_BYTES;
        let dict = if cached {
            PyDict::new(self.py)
        } else {
            // Its keys charged before its table is made; its values as
            // they come.
            let n = presize::count_keys(buf, start, end)?;
            self.budget.values(n as u64)?;
            presize::new_dict(self.py, n)?
        };
        // Keys and values interleaved (what pyrpc's encoders write) go in
        // as they come; otherwise they wait here and are paired at the end.
        // A small dict's keys and values are charged together once it is
        // made (one charge a record, not one an item): what it holds
        // before then is bounded by its 512 bytes.
        let mut fields: u64 = 0;
        // How many keys came before this one (its position, for
        // [`KeyCache::predicted`]).
        let mut position: usize = 0;
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
            if cached {
                fields += 1;
            } else {
                prefetch(buf, e + PREFETCH_AHEAD);
                if !is_key {
                    self.budget.values(1)?;
                }
            }
            if is_key {
                let k = if cached {
                    let at = position;
                    position += 1;
                    self.small_dict_key(s, e, at, left)?
                } else {
                    self.item(s, e, left)?
                };
                if let Some(earlier) = pending.replace(k) {
                    keys.push(earlier);
                }
            } else {
                let v = self.item(s, e, left)?;
                match pending.take() {
                    Some(k) if keys.is_empty() && values.is_empty() => {
                        set_item(&dict, k, v, self.refs)?;
                    }
                    other => {
                        keys.extend(other);
                        values.push(v);
                    }
                }
            }
        }
        self.budget.values(fields)?;
        keys.extend(pending);
        if keys.len() != values.len() {
            return Err(ValueError::DictLengths {
                keys: keys.len(),
                values: values.len(),
            }
            .into());
        }
        for (k, v) in keys.into_iter().zip(values) {
            set_item(&dict, k, v, self.refs)?;
        }
        Ok(dict.into_any())
    }

    /// The key at `s..e`, the `at`-th of a small dict: the key at the same
    /// position of the previous small dict when it is the same bytes, else
    /// a cached one, else a new one (then cached and remembered).
    #[inline(always)]
    fn small_dict_key(
        &mut self,
        s: usize,
        e: usize,
        at: usize,
        left: usize,
    ) -> Result<Bound<'py, PyAny>, DecodeError> {
        let buf: &[u8] = self.buf;
        if let Some(k) = self.keys.predicted(buf, at, s, e) {
            return Ok(k);
        }
        let Some(probe) = KeyCache::probe(buf, s, e) else {
            return self.item(s, e, left);
        };
        let k = match self.keys.get(buf, s, e, probe) {
            Some(k) => k,
            None => {
                let k = self.item(s, e, left)?;
                self.keys.put(s, e, probe, &k);
                k
            }
        };
        self.keys.remember(at, s, e, probe, &k);
        Ok(k)
    }

    /// Charges what the `Value` message at `start..end` and the objects made
    /// from it take, as the server's scan counts it before it is made.
    fn charge_as_scanned(&mut self, start: usize, end: usize) -> Result<(), DecodeError> {
        let cost = pyrpc_proto::cost::value_cost(&self.buf[start..end]);
        self.budget.values(cost.values)?;
        self.budget.bytes_of(cost.array_bytes)
    }

    /// A value of another kind: decoded and converted by the `Value` path.
    #[inline(never)]
    fn other(
        &mut self,
        start: usize,
        end: usize,
        left: usize,
    ) -> Result<Bound<'py, PyAny>, DecodeError> {
        self.charge_as_scanned(start, end)?;
        let value = raw::decode_value(self.buf.slice(start..end), left).map_err(|e| match e {
            ValueError::TooDeep { .. } => ValueError::TooDeep {
                max: self.opts.max_depth,
            },
            e => e,
        })?;
        Ok(convert::to_python(self.py, value, self.opts)?.into_bound(self.py))
    }
}

/// The sequence [`Decoder::sequence`] is filling.
enum Filling<'py> {
    List(NewList<'py>),
    Tuple(Bound<'py, PyAny>),
}

/// Which sequence [`Decoder::sequence`] makes.
#[derive(Clone, Copy)]
enum Sequence {
    List,
    Tuple,
}
