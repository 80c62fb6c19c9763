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

mod budget;
mod clock;
mod decode;
mod encode;
mod keys;
mod longs;
mod packed;
mod presize;
mod recent_keys;
mod refs;
mod slots;
#[cfg(test)]
mod tests;
mod wire;

use bytes::Bytes;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::convert::Options;

pub(crate) use budget::Budget;
pub(crate) use decode::{decode, decode_within, DecodeError};
pub(crate) use encode::{encode, encode_args};

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
    decode(py, &Bytes::copy_from_slice(data), Options::default()).map_err(DecodeError::into_pyerr)
}
