//! A big dict's pairs inserted a few pairs behind their decode, with the
//! hash table's memory asked for in between (decision 0023).
//!
//! Each pair whose key is an exact `str` is decoded, its key hashed (CPython
//! keeps the hash in the `str`, so the insert does not hash it again), and
//! the index slot that hash picks is prefetched; the pair then waits in a
//! short queue. [`AHEAD`] pairs later it is inserted, and by then the slot,
//! and the entry the slot points to ([`MIDWAY`] pairs before the insert),
//! are in the cache instead of being waited for inside `PyDict_SetItem`.
//!
//! What the dict holds, its order and every error are as if each pair went
//! in as it came: the pairs go in in order, a `str` key's hash cannot fail
//! or run Python code, and a pair with any other key (whose hash or
//! comparison may raise or run code) first empties the queue and then goes
//! in at once, as before.

use std::collections::VecDeque;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::decode::Decoder;
use super::dict_table::Layout;
use super::refs::set_item;
use super::wire::{len_range, prefetch, varint, DecodeError, DICT_VALUE, ITEM, PREFETCH_AHEAD};

/// How many pairs are decoded ahead of the insert.
const AHEAD: usize = 8;
/// How many pairs before its insert a key's entry is asked for (its index
/// slot having been asked for `AHEAD - MIDWAY` pairs before that).
const MIDWAY: usize = 4;

/// A decoded pair waiting for its insert, and its key's hash.
struct Waiting<'py> {
    key: Bound<'py, PyAny>,
    value: Bound<'py, PyAny>,
    hash: ffi::Py_hash_t,
}

impl<'py> Decoder<'_, 'py> {
    /// Inserts into `dict` (new, nobody else's) the pairs of the `Dict`
    /// message at `start..end` for as long as its fields come as key, value,
    /// key, value (what pyrpc's encoders write), and returns where they
    /// stopped doing so (`end` when they all did): the caller reads on from
    /// there as it would have from `start`.
    ///
    /// Charges each value to the budget before decoding it, as
    /// `Decoder::dict` does.
    #[allow(unsafe_code)]
    pub(super) fn interleaved_pairs(
        &mut self,
        dict: &Bound<'py, PyDict>,
        start: usize,
        end: usize,
        left: usize,
    ) -> Result<usize, DecodeError> {
        let Some(layout) = Layout::get(self.py) else {
            return Ok(start);
        };
        let buf: &[u8] = self.buf;
        let mut queue: VecDeque<Waiting<'py>> = VecDeque::with_capacity(AHEAD + 1);
        let mut pos = start;
        while pos < end {
            // The next two fields must be a key and a value; anything else
            // (or anything malformed) is left to the caller from here.
            let mut at = pos;
            let Some((ks, ke)) = field(buf, &mut at, end, ITEM) else {
                break;
            };
            let Some((vs, ve)) = field(buf, &mut at, end, DICT_VALUE) else {
                break;
            };
            pos = at;
            prefetch(buf, ve + PREFETCH_AHEAD);
            let key = self.item(ks, ke, left)?;
            self.budget.values(1)?;
            let value = self.item(vs, ve, left)?;
            // SAFETY: a live object, the GIL held.
            if unsafe { ffi::PyUnicode_CheckExact(key.as_ptr()) } == 0 {
                // Hashing it may raise or run code: in its turn, as before.
                self.insert_all(dict, &mut queue)?;
                set_item(dict, key, value, self.refs)?;
                continue;
            }
            // SAFETY: an exact str: its hash is computed (or read) by
            // CPython, cannot fail, runs no Python code, and is kept in it.
            let hash = unsafe { ffi::PyObject_Hash(key.as_ptr()) };
            // SAFETY: `dict` is a live exact dict and the layout was checked
            // for this interpreter.
            if let Some(table) = unsafe { layout.table(dict.as_ptr()) } {
                table.prefetch_slot(hash);
                if let Some(soon) = queue.get(queue.len().saturating_sub(MIDWAY)) {
                    // SAFETY: as above; the table was read just now.
                    unsafe { table.prefetch_entry(soon.hash) };
                }
            }
            queue.push_back(Waiting { key, value, hash });
            if queue.len() > AHEAD {
                if let Some(w) = queue.pop_front() {
                    set_item(dict, w.key, w.value, self.refs)?;
                }
            }
        }
        self.insert_all(dict, &mut queue)?;
        Ok(pos)
    }

    /// Inserts every waiting pair, in order.
    fn insert_all(
        &self,
        dict: &Bound<'py, PyDict>,
        queue: &mut VecDeque<Waiting<'py>>,
    ) -> Result<(), DecodeError> {
        while let Some(w) = queue.pop_front() {
            set_item(dict, w.key, w.value, self.refs)?;
        }
        Ok(())
    }
}

/// The range of a length-delimited field with the one-byte key `want` at
/// `*pos`, moving past it; `None` (with `*pos` wherever it got) when the
/// field there is another or malformed.
#[inline(always)]
fn field(buf: &[u8], pos: &mut usize, end: usize, want: u8) -> Option<(usize, usize)> {
    if varint(buf, pos, end)? != u64::from(want) {
        return None;
    }
    len_range(buf, pos, end)
}
