//! Protobuf wire details shared by the encoder and the decoder: the keys of
//! the `Value` fields they write and read, and bounds-checked readers.

use pyo3::PyErr;
use pyrpc_proto::ValueError;

// Value fields: key bytes (field number << 3 | wire type).
pub(super) const NONE: u8 = 1 << 3 | 2;
pub(super) const BOOL: u8 = 2 << 3;
pub(super) const INT: u8 = 3 << 3;
pub(super) const FLOAT: u8 = 5 << 3 | 1;
pub(super) const STR: u8 = 6 << 3 | 2;
pub(super) const BYTES: u8 = 7 << 3 | 2;
pub(super) const LIST: u8 = 8 << 3 | 2;
pub(super) const TUPLE: u8 = 9 << 3 | 2;
pub(super) const SET: u8 = 10 << 3 | 2;
pub(super) const FROZENSET: u8 = 11 << 3 | 2;
pub(super) const DICT: u8 = 12 << 3 | 2;
/// `Items.items`, `Dict.keys`.
pub(super) const ITEM: u8 = 1 << 3 | 2;
/// `Dict.values`.
pub(super) const DICT_VALUE: u8 = 2 << 3 | 2;

/// How far past the item being decoded a list's bytes are asked for
/// ahead of time: a few records on.
pub(super) const PREFETCH_AHEAD: usize = 256;

/// Asks the processor to load the cache line of `buf[at]` (if in bounds)
/// ahead of its use: decoding a record makes objects between reads of the
/// input, which leaves each read waiting for memory otherwise.
#[allow(unsafe_code, unused_unsafe)]
#[inline(always)]
pub(super) fn prefetch(buf: &[u8], at: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(p) = buf.get(at) {
        // SAFETY: a hint for an address inside `buf`; it reads nothing.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                std::ptr::from_ref(p).cast::<i8>(),
            );
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (buf, at);
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

impl DecodeError {
    /// The Python exception for this error: Python's own, or a
    /// `ValueError` saying what was wrong with the bytes.
    pub(crate) fn into_pyerr(self) -> PyErr {
        match self {
            DecodeError::Py(e) => e,
            DecodeError::Value(e) => pyo3::exceptions::PyValueError::new_err(e.to_string()),
        }
    }
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
pub(super) fn malformed(why: &str) -> DecodeError {
    DecodeError::Value(ValueError::Undecodable(why.to_owned()))
}

/// An `sint64`'s zigzag form: small magnitudes of either sign stay small
/// (0, -1, 1, -2 ... become 0, 1, 2, 3 ...).
#[inline(always)]
pub(super) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// The `sint64` of a zigzag varint ([`zigzag`]'s inverse).
#[inline(always)]
pub(super) fn unzigzag(z: u64) -> i64 {
    (z >> 1) as i64 ^ -((z & 1) as i64)
}

/// Reads a varint at `*pos`, before `end`; `None` when truncated or too long.
#[inline(always)]
pub(super) fn varint(buf: &[u8], pos: &mut usize, end: usize) -> Option<u64> {
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
pub(super) fn varint_long(buf: &[u8], pos: &mut usize, end: usize) -> Option<u64> {
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
pub(super) fn len_range(buf: &[u8], pos: &mut usize, end: usize) -> Option<(usize, usize)> {
    let len = varint(buf, pos, end)?;
    let start = *pos;
    if len > (end - start) as u64 {
        return None;
    }
    *pos = start + len as usize;
    Some((start, *pos))
}

#[cold]
pub(super) fn truncated() -> DecodeError {
    malformed("truncated or overlong field")
}

/// Reads a varint at `*pos`, before `end`.
#[inline(always)]
pub(super) fn read_varint(buf: &[u8], pos: &mut usize, end: usize) -> Result<u64, DecodeError> {
    varint(buf, pos, end).ok_or_else(truncated)
}

/// Reads a length and returns the range it covers.
#[inline(always)]
pub(super) fn read_len(
    buf: &[u8],
    pos: &mut usize,
    end: usize,
) -> Result<(usize, usize), DecodeError> {
    len_range(buf, pos, end).ok_or_else(truncated)
}

/// Skips one field of wire type `wt`.
#[inline(always)]
pub(super) fn skip(buf: &[u8], pos: &mut usize, end: usize, wt: u64) -> Result<(), DecodeError> {
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

#[cfg(test)]
mod tests {
    use super::{unzigzag, zigzag};

    #[test]
    fn zigzag_is_protobufs_sint64_and_round_trips() {
        for (v, z) in [
            (0, 0),
            (-1, 1),
            (1, 2),
            (-2, 3),
            (i64::MAX, u64::MAX - 1),
            (i64::MIN, u64::MAX),
        ] {
            assert_eq!(zigzag(v), z, "{v}");
            assert_eq!(unzigzag(z), v, "{z}");
        }
    }
}
