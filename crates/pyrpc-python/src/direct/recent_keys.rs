//! Dict keys written again as the bytes written for them last time.
//!
//! A list of records repeats the same key objects in the same order: the
//! encoder remembers, per position in a dict, the last key object there and
//! the `ITEM` field it was written as, and a dict whose key at that position
//! is the very same object gets those bytes copied (decision 0021).

use pyo3::ffi;
use pyo3::prelude::*;

use super::encode::Encoder;
use super::wire::ITEM;

/// A dict key written before, at some position of its dict: a dict whose
/// key at that position is the same object is given the same bytes again.
/// The key is held (one reference) so that its address cannot be taken by
/// another object while it is remembered; a `str` does not change.
pub(super) struct RecentKey {
    key: Py<PyAny>,
    /// The whole `ITEM` field the key was written as.
    field: [u8; RECENT_KEY_BYTES],
    len: u8,
}

/// The longest key field remembered (a key of up to 28 bytes of UTF-8).
const RECENT_KEY_BYTES: usize = 32;
/// Keys remembered by position: keys past it are written each time.
const RECENT_KEY_POSITIONS: usize = 16;

impl Encoder {
    /// Writes the `ITEM` field of the key `k`, the `at`-th of its dict, as
    /// the same bytes as last time when `k` is the very key remembered at
    /// that position; says whether it did.
    ///
    /// # Safety
    ///
    /// `k` must be a live object.
    #[allow(unsafe_code)]
    #[inline(always)]
    pub(super) unsafe fn key_as_before(&mut self, at: usize, k: *mut ffi::PyObject) -> bool {
        match self.recent_keys.get(at) {
            Some(r) if r.key.as_ptr() == k => {
                // The whole fixed-size field copied (no `memmove` call for a
                // few bytes), the length then cut to the key's.
                let len = self.buf.len();
                self.buf.reserve(RECENT_KEY_BYTES);
                // SAFETY: `RECENT_KEY_BYTES` bytes are reserved past `len`;
                // the length covers only the `r.len` bytes of the field.
                unsafe {
                    let dst = self.buf.as_mut_ptr().add(len);
                    dst.cast::<[u8; RECENT_KEY_BYTES]>()
                        .write_unaligned(r.field);
                    self.buf.set_len(len + usize::from(r.len));
                }
                true
            }
            _ => false,
        }
    }

    /// Writes the key `k` (the `at`-th of its dict) as [`Encoder::plain_as`]
    /// does, remembering the field when `k` is a short exact `str`.
    ///
    /// # Safety
    ///
    /// As [`Encoder::plain_as`].
    #[allow(unsafe_code)]
    #[inline(never)]
    pub(super) unsafe fn plain_key(
        &mut self,
        py: Python<'_>,
        at: usize,
        k: *mut ffi::PyObject,
    ) -> bool {
        let mark = self.buf.len();
        if !self.plain_as(ITEM, k) {
            return false;
        }
        let written = &self.buf[mark..];
        if at <= self.recent_keys.len()
            && at < RECENT_KEY_POSITIONS
            && written.len() <= RECENT_KEY_BYTES
            && ffi::PyUnicode_CheckExact(k) != 0
        {
            let mut field = [0u8; RECENT_KEY_BYTES];
            field[..written.len()].copy_from_slice(written);
            let recent = RecentKey {
                // SAFETY: a live object (the caller's promise); the new
                // reference is the entry's.
                key: Bound::from_borrowed_ptr(py, k).unbind(),
                field,
                len: written.len() as u8,
            };
            if at == self.recent_keys.len() {
                self.recent_keys.push(recent);
            } else {
                self.recent_keys[at] = recent;
            }
        }
        true
    }
}
