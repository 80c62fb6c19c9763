//! Packed lists (`Value.int_list`, `Value.float_list`; PROTOCOL.md §5,
//! "Packed lists"): a list of exact ints within 64 bits, or of exact floats,
//! as one run of varints or doubles instead of one `Value` message per item.
//!
//! Both directions work on the list's item pointers with CPython's own
//! functions (no per-item PyO3 wrapper, reference count or type lookup
//! beyond one exact-type check), and make the decoded list at its final size.

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyList;

use super::budget::Budget;
use super::longs::Longs;
use super::slots::{self, NewList};
use super::wire::{
    malformed, read_len, read_varint, truncated, unzigzag, varint, zigzag, DecodeError, ITEM,
};

/// `Value.int_list` (field 32, length-delimited) as its two key bytes.
pub(super) const INT_LIST: [u8; 2] = [0x82, 0x02];
/// `Value.float_list` (field 33, length-delimited).
pub(super) const FLOAT_LIST: [u8; 2] = [0x8a, 0x02];
/// The keys above as the varints the decoder reads.
pub(super) const INT_LIST_KEY: u64 = 32 << 3 | 2;
pub(super) const FLOAT_LIST_KEY: u64 = 33 << 3 | 2;

/// Which packed kind a list is written as.
#[derive(Clone, Copy, PartialEq, Debug)]
pub(super) enum Packed {
    Ints,
    Floats,
}

/// The packed kind `l` can be written as: non-empty, and every item an exact
/// `int` within 64 bits (`Ints`; a bool or an int subclass is not) or every
/// item an exact `float` (`Floats`). The ints are checked while they are
/// written ([`write_ints`] stops at the first that does not fit).
#[allow(unsafe_code)]
pub(super) fn kind_of(l: &Bound<'_, PyList>) -> Option<Packed> {
    let list = l.as_ptr();
    // SAFETY: `l` is a live list; no Python code runs while its items are
    // read, so it cannot change and the borrowed items stay alive.
    unsafe {
        let n = ffi::PyList_Size(list);
        if n <= 0 {
            return None;
        }
        let first = ffi::PyList_GetItem(list, 0);
        if ffi::PyLong_CheckExact(first) != 0 {
            return Some(Packed::Ints);
        }
        if ffi::PyFloat_CheckExact(first) == 0 {
            return None;
        }
        for i in 1..n {
            if ffi::PyFloat_CheckExact(ffi::PyList_GetItem(list, i)) == 0 {
                return None;
            }
        }
        Some(Packed::Floats)
    }
}

/// Appends the zigzag varints of `l`'s items to `out`; `false` (with `out`
/// partly written: the caller truncates it) at the first item that is not an
/// exact int within 64 bits.
#[allow(unsafe_code)]
pub(super) fn write_ints(l: &Bound<'_, PyList>, out: &mut Vec<u8>) -> bool {
    let list = l.as_ptr();
    let longs = Longs::get(l.py());
    // SAFETY: as in `kind_of`; an exact int's value is read without running
    // Python code (`Longs::value` reports overflow instead of raising), and
    // the item array is read only while nothing can resize the list.
    unsafe {
        if let Some(items) = slots::items_of(l.py(), list) {
            out.reserve(items.len() * 3);
            for &item in items {
                if !write_int(longs, item, out) {
                    return false;
                }
            }
            return true;
        }
        let n = ffi::PyList_Size(list);
        out.reserve(n as usize * 3);
        (0..n).all(|i| write_int(longs, ffi::PyList_GetItem(list, i), out))
    }
}

/// Appends the zigzag varint of `item` when it is an exact int within 64
/// bits; says whether it was.
///
/// # Safety
///
/// `item` is a live object and the GIL is held.
#[allow(unsafe_code)]
#[inline(always)]
unsafe fn write_int(longs: Longs, item: *mut ffi::PyObject, out: &mut Vec<u8>) -> bool {
    if ffi::PyLong_CheckExact(item) == 0 {
        return false;
    }
    let Some(v) = longs.value(item) else {
        return false;
    };
    put_varint(out, zigzag(v));
    true
}

/// Appends the varint `z` to `out`: written in place when there is room for
/// the longest, one push a byte otherwise.
#[allow(unsafe_code)]
#[inline(always)]
pub(super) fn put_varint(out: &mut Vec<u8>, mut z: u64) {
    if z < 0x80 {
        out.push(z as u8);
        return;
    }
    out.reserve(10);
    let len = out.len();
    // SAFETY: at least 10 bytes are reserved past `len` and a varint takes
    // at most 10; the length is set to cover exactly the bytes written.
    unsafe {
        let mut p = out.as_mut_ptr().add(len);
        let start = p;
        while z >= 0x80 {
            *p = z as u8 | 0x80;
            p = p.add(1);
            z >>= 7;
        }
        *p = z as u8;
        out.set_len(len + p.offset_from(start) as usize + 1);
    }
}

/// Appends the little-endian doubles of `l`'s items (all exact floats, as
/// [`kind_of`] found) to `out`.
#[allow(unsafe_code)]
pub(super) fn write_floats(l: &Bound<'_, PyList>, out: &mut Vec<u8>) {
    let list = l.as_ptr();
    // SAFETY: as in `kind_of`; every item is an exact float, for which
    // `PyFloat_AsDouble` cannot fail.
    unsafe {
        if let Some(items) = slots::items_of(l.py(), list) {
            let longs = Longs::get(l.py());
            out.reserve(items.len() * 8);
            for &item in items {
                out.extend_from_slice(&longs.float(item).to_le_bytes());
            }
            return;
        }
        let n = ffi::PyList_Size(list);
        out.reserve(n as usize * 8);
        for i in 0..n {
            let f = ffi::PyFloat_AsDouble(ffi::PyList_GetItem(list, i));
            out.extend_from_slice(&f.to_le_bytes());
        }
    }
}

/// The payload of an `IntList` / `FloatList` message at `start..end` when it
/// is the one packed field pyrpc's encoders write (`0a`, length, items);
/// `None` for any other valid encoding (unpacked items, several fields),
/// which the caller reads through the `Value` path.
pub(super) fn payload(
    buf: &[u8],
    start: usize,
    end: usize,
) -> Result<Option<(usize, usize)>, DecodeError> {
    if start == end {
        return Ok(Some((start, start)));
    }
    let mut pos = start;
    if read_varint(buf, &mut pos, end)? != u64::from(ITEM) {
        return Ok(None);
    }
    let (s, e) = read_len(buf, &mut pos, end)?;
    Ok((e == end).then_some((s, e)))
}

/// Reads the varint at `data[*pos..]`: with one 8-byte load and no loop
/// when 8 bytes are left and the varint fits in them, else byte by byte.
#[inline(always)]
fn packed_varint(data: &[u8], pos: &mut usize) -> Option<u64> {
    if let Some(chunk) = data.get(*pos..*pos + 8) {
        let mut le = [0u8; 8];
        le.copy_from_slice(chunk);
        let word = u64::from_le_bytes(le);
        // The high bit of each byte is clear where a varint ends.
        let stops = !word & 0x8080_8080_8080_8080;
        if stops != 0 {
            // Every bit up to the first stop: the varint's bytes.
            let keep = stops ^ (stops - 1);
            let mut x = word & keep & 0x7f7f_7f7f_7f7f_7f7f;
            // Pack the 7-bit groups: pairs, then quads, then all eight.
            x = ((x & 0x7f00_7f00_7f00_7f00) >> 1) | (x & 0x007f_007f_007f_007f);
            x = ((x & 0x3fff_0000_3fff_0000) >> 2) | (x & 0x0000_3fff_0000_3fff);
            x = ((x & 0x0fff_ffff_0000_0000) >> 4) | (x & 0x0000_0000_0fff_ffff);
            *pos += (stops.trailing_zeros() as usize + 1) / 8;
            return Some(x);
        }
    }
    varint(data, pos, data.len())
}

/// How many varints `data` holds: one ends at each byte below 0x80 (counted
/// eight bytes at a time).
fn count_varints(data: &[u8]) -> usize {
    let words = data.chunks_exact(8);
    let tail = words.remainder().iter().filter(|&&b| b < 0x80).count();
    words.fold(tail, |n, w| {
        let mut le = [0u8; 8];
        le.copy_from_slice(w);
        n + (!u64::from_le_bytes(le) & 0x8080_8080_8080_8080).count_ones() as usize
    })
}

/// A list of the ints packed in `buf[start..end]`, each charged to
/// `budget` before the list is made.
#[allow(unsafe_code)]
pub(super) fn read_ints<'py>(
    py: Python<'py>,
    buf: &[u8],
    start: usize,
    end: usize,
    budget: &mut Budget,
) -> Result<Bound<'py, PyAny>, DecodeError> {
    let data = &buf[start..end];
    let n = count_varints(data);
    if data.last().is_some_and(|&b| b >= 0x80) {
        return Err(malformed("truncated packed int"));
    }
    budget.values(n as u64)?;
    let list = NewList::new(py, n)?;
    let mut pos = 0;
    for i in 0..n {
        let z = packed_varint(data, &mut pos).ok_or_else(truncated)?;
        let v = unzigzag(z);
        // SAFETY: a new int or NULL with an exception set; `i < n`, each
        // slot once, and the reference is stolen by the list.
        unsafe {
            let int = ffi::PyLong_FromLongLong(v);
            if int.is_null() {
                return Err(PyErr::fetch(py).into());
            }
            list.set(i, int);
        }
    }
    Ok(list.into_any())
}

/// A list of the doubles packed in `buf[start..end]`, charged as
/// [`read_ints`] does.
#[allow(unsafe_code)]
pub(super) fn read_floats<'py>(
    py: Python<'py>,
    buf: &[u8],
    start: usize,
    end: usize,
    budget: &mut Budget,
) -> Result<Bound<'py, PyAny>, DecodeError> {
    let data = &buf[start..end];
    if data.len() % 8 != 0 {
        return Err(malformed("packed floats not a multiple of 8 bytes"));
    }
    let n = data.len() / 8;
    budget.values(n as u64)?;
    let list = NewList::new(py, n)?;
    for (i, chunk) in data.chunks_exact(8).enumerate() {
        let mut le = [0u8; 8];
        le.copy_from_slice(chunk);
        // SAFETY: as in `read_ints`.
        unsafe {
            let f = ffi::PyFloat_FromDouble(f64::from_le_bytes(le));
            if f.is_null() {
                return Err(PyErr::fetch(py).into());
            }
            list.set(i, f);
        }
    }
    Ok(list.into_any())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(mut z: u64, out: &mut Vec<u8>) {
        while z >= 0x80 {
            out.push(z as u8 | 0x80);
            z >>= 7;
        }
        out.push(z as u8);
    }

    #[test]
    fn put_varint_writes_what_the_byte_loop_writes() {
        let mut values = vec![0, 1, 127, 128, 300, 16_383, 16_384, u64::MAX, u64::MAX - 1];
        for bits in 1..64 {
            values.extend([(1u64 << bits) - 1, 1u64 << bits, (1u64 << bits) + 1]);
        }
        let (mut fast, mut slow) = (Vec::new(), Vec::new());
        for &v in &values {
            put_varint(&mut fast, v);
            put(v, &mut slow);
            assert_eq!(fast, slow, "{v}");
        }
    }

    #[test]
    fn packed_varint_reads_what_the_byte_loop_reads() {
        let mut values = vec![0, 1, 127, 128, 300, 16_383, 16_384, u64::MAX, u64::MAX - 1];
        for bits in 1..64 {
            values.extend([(1u64 << bits) - 1, 1u64 << bits, (1u64 << bits) + 1]);
        }
        let mut data = Vec::new();
        for &v in &values {
            put(v, &mut data);
        }
        // Every varint read both ways, including the last ones, where fewer
        // than 8 bytes are left.
        let (mut fast, mut slow) = (0, 0);
        for &v in &values {
            assert_eq!(packed_varint(&data, &mut fast), Some(v));
            assert_eq!(varint(&data, &mut slow, data.len()), Some(v));
            assert_eq!(fast, slow);
        }
        assert_eq!(fast, data.len());
        assert_eq!(count_varints(&data), values.len());
        for cut in 0..data.len().min(40) {
            let part = &data[cut..];
            let slow = part.iter().filter(|&&b| b < 0x80).count();
            assert_eq!(count_varints(part), slow);
        }
        // Truncated: a continuation byte at the very end.
        let mut pos = 0;
        assert_eq!(packed_varint(&[0x80, 0x80], &mut pos), None);
    }
}
