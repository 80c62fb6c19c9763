//! Dict keys shared between the records of one decoded value.

use pyo3::prelude::*;
use pyo3::types::PyString;

use super::wire::STR;

/// Recently decoded dict keys that were short strings, by their encoded
/// bytes: a list of records repeats the same few keys, which then become one
/// `str` object each instead of one per record.
pub(super) struct KeyCache<'py> {
    slots: Vec<Option<(usize, usize, Bound<'py, PyAny>)>>,
}

const KEY_CACHE_SLOTS: usize = 256;
const KEY_CACHE_MAX_LEN: usize = 64;

impl<'py> KeyCache<'py> {
    pub(super) fn new() -> Self {
        KeyCache { slots: Vec::new() }
    }

    /// The slot of a key message `buf[s..e]`, if it is a cacheable str:
    /// a hash of its length and its first and last 8 bytes (a collision
    /// only costs a miss: [`KeyCache::get`] compares the whole message).
    #[inline]
    fn slot(buf: &[u8], s: usize, e: usize) -> Option<usize> {
        let msg = &buf[s..e];
        let n = msg.len();
        if !(2..=KEY_CACHE_MAX_LEN + 2).contains(&n) || msg[0] != STR {
            return None;
        }
        let word = |at: usize| {
            let mut w = [0u8; 8];
            let take = (n - at).min(8);
            w[..take].copy_from_slice(&msg[at..at + take]);
            u64::from_le_bytes(w)
        };
        let h = (word(0) ^ word(n.saturating_sub(8)).rotate_left(29) ^ n as u64)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        Some((h >> 56) as usize % KEY_CACHE_SLOTS)
    }

    pub(super) fn get(&self, buf: &[u8], s: usize, e: usize) -> Option<Bound<'py, PyAny>> {
        let slot = Self::slot(buf, s, e)?;
        match self.slots.get(slot)? {
            Some((cs, ce, obj)) if buf[*cs..*ce] == buf[s..e] => Some(obj.clone()),
            _ => None,
        }
    }

    pub(super) fn put(&mut self, buf: &[u8], s: usize, e: usize, obj: &Bound<'py, PyAny>) {
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
