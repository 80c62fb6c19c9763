//! Large `bytes` values without a second full copy, both ways.
//!
//! Sent ([`result_value`], decision 0022): a server's result, or a streamed
//! item, that is one large `bytes` object is handed to the server as a
//! [`Value::Bytes`] sharing the object's own buffer, which the server writes
//! to the socket from there; the encoder would copy it into the value's
//! bytes first (issue 10: a 100 MiB return peaked the Python server at 2x
//! the payload above idle).
//!
//! Received ([`take`], decision 0092): a large `bytes` result read into its
//! final object without holding two full copies (issue 10, point 7: a
//! 100 MiB return peaked the client at 2x the payload above idle; goal 1.3x).
//!
//! A reply's value arrives as a slice of its frame. When the value is one
//! `bytes` of at least [`THRESHOLD`] and this slice is the only owner of the
//! frame's memory, the `bytes` object is made uninitialised
//! (`PyBytes_FromStringAndSize(NULL, n)`) and filled chunk by chunk; after
//! each chunk is copied, the frame's pages under it are handed back to the
//! OS (`madvise(MADV_DONTNEED)`), so the resident total stays near one copy
//! plus a chunk. The frame is dropped right after, never read again.

use bytes::Bytes;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyByteArray, PyBytes};
use pyrpc_proto::{raw, Value};

use crate::convert::{ConvertError, Options};

/// A method's result, or a streamed item, as the value the server sends: an
/// exact `bytes` of at least [`raw::SPLIT_MIN`] as a [`Value::Bytes`] over
/// the object's buffer (no copy: `bytes` are immutable, and the value holds
/// a reference), an exact `bytearray` that long as a [`Value::ByteArray`] of
/// one copy (it may change after the method returned, so it is copied, but
/// once, not again into the encoded value); anything else encoded
/// ([`Value::Encoded`]).
///
/// The server splits such a value into a small head and the payload
/// (`raw::EncodedValue::from_value`), and the frame encoder writes the
/// payload from this buffer. The last reference to the `bytes` object may
/// go on a thread without the GIL (the connection's writer); PyO3 then
/// defers the decref to the next time one of our threads attaches, which a
/// worker does before it runs its next call, and `Server.start()`'s thread
/// every 50 ms (`runtime::SIGNAL_CHECK`).
///
/// # Errors
///
/// As [`crate::direct::encode`].
pub(crate) fn result_value(obj: &Bound<'_, PyAny>, opts: Options) -> Result<Value, ConvertError> {
    if let Ok(b) = obj.cast_exact::<PyBytes>() {
        if b.as_bytes().len() >= raw::SPLIT_MIN {
            crate::warm::moved(b.as_bytes().len());
            return Ok(Value::Bytes(Bytes::from_owner(PyBackedBytes::from(
                b.clone(),
            ))));
        }
    } else if let Ok(b) = obj.cast_exact::<PyByteArray>() {
        if b.len() >= raw::SPLIT_MIN {
            return Ok(Value::ByteArray(Bytes::from(b.to_vec())));
        }
    }
    crate::direct::encode(obj, opts).map(Value::Encoded)
}

/// Smaller values are copied the ordinary way (`direct::decode`).
const THRESHOLD: usize = 4 << 20;

/// Bytes copied before their source pages are released.
const CHUNK: usize = 1 << 20;

/// `Value.bytes`: field 7, length-delimited.
const BYTES_KEY: u8 = 7 << 3 | 2;

/// The start and length of the payload when `value` is exactly one
/// `Value.bytes` field.
fn payload(value: &[u8]) -> Option<(usize, usize)> {
    if value.first() != Some(&BYTES_KEY) {
        return None;
    }
    let mut len = 0u64;
    let mut pos = 1;
    for shift in (0..64).step_by(7) {
        let b = *value.get(pos)?;
        pos += 1;
        len |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            let len = usize::try_from(len).ok()?;
            return (pos.checked_add(len)? == value.len()).then_some((pos, len));
        }
    }
    None
}

/// The `bytes` object for `value` when it is one large `bytes` value whose
/// memory this slice alone owns; `Err(value)` untouched otherwise.
#[allow(unsafe_code)]
pub(crate) fn take(py: Python<'_>, value: Bytes) -> Result<PyResult<Py<PyAny>>, Bytes> {
    let Some((start, len)) = payload(&value).filter(|&(_, n)| n >= THRESHOLD) else {
        return Err(value);
    };
    let mut owned = value.try_into_mut()?;
    let Ok(size) = ffi::Py_ssize_t::try_from(len) else {
        return Err(owned.freeze());
    };
    // SAFETY: with a NULL source, PyBytes_FromStringAndSize makes a new
    // bytes object of `size` uninitialised bytes (documented, limited API);
    // the GIL is held.
    let obj = unsafe { ffi::PyBytes_FromStringAndSize(std::ptr::null(), size) };
    if obj.is_null() {
        return Ok(Err(PyErr::fetch(py)));
    }
    // SAFETY: `obj` is a new bytes object we own the only reference to.
    let obj = unsafe { Bound::from_owned_ptr(py, obj) };
    // SAFETY: `obj` is a bytes object: PyBytes_AsString returns its buffer of
    // `len` bytes (plus a NUL), which nothing else references yet.
    let dst = unsafe { ffi::PyBytes_AsString(obj.as_ptr()) }.cast::<u8>();
    let src = owned[start..].as_mut_ptr();
    let page = page_size();
    for off in (0..len).step_by(CHUNK) {
        let n = CHUNK.min(len - off);
        // SAFETY: both ranges are within their buffers (`off + n <= len`)
        // and do not overlap (different allocations).
        unsafe { std::ptr::copy_nonoverlapping(src.add(off), dst.add(off), n) };
        // The copied source pages: only whole pages inside the range.
        let from = (src as usize + off).next_multiple_of(page);
        let to = (src as usize + off + n) / page * page;
        if to > from {
            // SAFETY: [from, to) lies inside `owned`, which this function
            // owns alone (try_into_mut succeeded) and drops without reading
            // it again; MADV_DONTNEED only makes those pages read as zeros.
            unsafe {
                libc::madvise(from as *mut libc::c_void, to - from, libc::MADV_DONTNEED);
            }
        }
    }
    drop(owned);
    Ok(Ok(obj.unbind()))
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    #[allow(unsafe_code)]
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).ok().filter(|&n| n > 0).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_lone_bytes_value_is_a_payload() {
        assert_eq!(payload(&[BYTES_KEY, 3, 1, 2, 3]), Some((2, 3)));
        assert_eq!(payload(&[BYTES_KEY, 0x80, 0x01]), None); // 128 claimed, none there
        assert_eq!(payload(&[BYTES_KEY, 2, 1, 2, 3]), None); // something after it
        assert_eq!(payload(&[6 << 3 | 2, 1, b'a']), None); // a str
        assert_eq!(payload(&[]), None);
    }

    #[test]
    fn a_large_unique_payload_becomes_its_bytes_and_shared_ones_are_left() {
        Python::initialize();
        Python::attach(|py| {
            let n = THRESHOLD + 12345;
            let mut v = vec![BYTES_KEY];
            let mut len = n as u64;
            while len >= 0x80 {
                v.push(len as u8 | 0x80);
                len >>= 7;
            }
            v.push(len as u8);
            let start = v.len();
            v.extend((0..n).map(|i| (i % 251) as u8));
            let frame = Bytes::from(v);
            // Shared: left alone.
            let other = frame.clone();
            let frame = take(py, frame).unwrap_err();
            drop(other);
            let obj = take(py, frame.clone()).unwrap_err(); // still shared with `frame`
            drop(obj);
            let want: Vec<u8> = frame[start..].to_vec();
            let got = take(py, frame).unwrap().unwrap();
            let got: Vec<u8> = got.bind(py).extract().unwrap();
            assert!(got == want);
        });
    }
}
