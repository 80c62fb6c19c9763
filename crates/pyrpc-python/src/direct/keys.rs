//! Dict keys shared between the records of one decoded value.

use pyo3::prelude::*;
use pyo3::types::PyString;

use super::refs::Refs;
use super::wire::STR;

/// Recently decoded dict keys that were short strings, by their encoded
/// bytes: a list of records repeats the same few keys, which then become one
/// `str` object each instead of one per record.
///
/// A key message of up to 16 bytes (a name of up to 14 ASCII characters) is
/// compared by its length and its first and last 8 bytes, two words already
/// loaded to pick its slot; a longer one is compared byte by byte as well.
///
/// Before that, a key is compared with the key at the same position of the
/// previous small dict ([`KeyCache::predicted`]): the records of a list
/// usually repeat their keys in the same order, and one comparison of a few
/// bytes is cheaper than the probe's hash and slot lookup.
pub(super) struct KeyCache<'py> {
    slots: Vec<Option<Slot<'py>>>,
    /// The keys of the last small dicts by their position (the key read
    /// `i`-th in its dict at `recent[i]`), each held by a reference of its
    /// own: the dict it came from may be gone by the next dict.
    recent: Vec<Slot<'py>>,
    refs: Refs,
}

struct Slot<'py> {
    probe: Probe,
    /// Where the cached key's message is in the buffer.
    at: (usize, usize),
    obj: Bound<'py, PyAny>,
}

/// A key message's slot and what identifies it there.
#[derive(Clone, Copy, PartialEq)]
pub(super) struct Probe {
    slot: usize,
    len: usize,
    first: u64,
    last: u64,
}

const KEY_CACHE_SLOTS: usize = 256;
const KEY_CACHE_MAX_LEN: usize = 64;
/// Messages up to this long are equal when their [`Probe`]s are.
const WORDS_COVER: usize = 16;
/// Keys remembered by position: records with more keys than this share
/// the rest through the slots only.
const RECENT_POSITIONS: usize = 16;

impl<'py> KeyCache<'py> {
    pub(super) fn new(refs: Refs) -> Self {
        KeyCache {
            slots: Vec::new(),
            recent: Vec::new(),
            refs,
        }
    }

    /// The key at position `i` of the previous small dict, when its message
    /// is the same bytes as `buf[s..e]` (a new reference, counted inline).
    /// Equal bytes decode to an equal `str`, and only exact `str` keys are
    /// remembered ([`KeyCache::remember`]).
    #[allow(unsafe_code)]
    #[inline]
    pub(super) fn predicted(
        &self,
        buf: &[u8],
        i: usize,
        s: usize,
        e: usize,
    ) -> Option<Bound<'py, PyAny>> {
        let slot = self.recent.get(i)?;
        let (ps, pe) = slot.at;
        if pe - ps != e - s || !same_bytes(buf, ps, s, e - s) {
            return None;
        }
        let obj = slot.obj.as_ptr();
        // SAFETY: a live object the slot holds a reference to; the GIL is
        // held (`'py`); the added reference is the result's.
        unsafe {
            self.refs.incref(obj);
            Some(Bound::from_owned_ptr(slot.obj.py(), obj))
        }
    }

    /// Remembers `obj`, decoded from the message `buf[s..e]` (of `probe`),
    /// as the key at position `i` of the small dict being decoded, when it
    /// is an exact `str`.
    pub(super) fn remember(
        &mut self,
        i: usize,
        s: usize,
        e: usize,
        probe: Probe,
        obj: &Bound<'py, PyAny>,
    ) {
        if i > self.recent.len() || i >= RECENT_POSITIONS || !obj.is_exact_instance_of::<PyString>()
        {
            return;
        }
        let slot = Slot {
            probe,
            at: (s, e),
            obj: obj.clone(),
        };
        if i == self.recent.len() {
            self.recent.push(slot);
        } else {
            self.recent[i] = slot;
        }
    }

    /// The probe of a key message `buf[s..e]`, if it is a cacheable str:
    /// a hash of its length and its first and last 8 bytes picks the slot.
    #[inline]
    pub(super) fn probe(buf: &[u8], s: usize, e: usize) -> Option<Probe> {
        let msg = &buf[s..e];
        let len = msg.len();
        if !(2..=KEY_CACHE_MAX_LEN + 2).contains(&len) || msg[0] != STR {
            return None;
        }
        // Up to 8 bytes of the message from `at`, zero-padded: one unaligned
        // load masked to the message where the buffer has 8 bytes there. (A
        // copy of a variable length was a `memcpy` call per word, and its
        // byte stores stalled the 8-byte load that followed.)
        let word = |at: usize| {
            let take = (len - at).min(8);
            let whole = buf
                .get(s + at..s + at + 8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok());
            match whole {
                Some(b) if take == 8 => u64::from_le_bytes(b),
                Some(b) => u64::from_le_bytes(b) & ((1u64 << (take * 8)) - 1),
                None => {
                    let mut w = [0u8; 8];
                    w[..take].copy_from_slice(&msg[at..at + take]);
                    u64::from_le_bytes(w)
                }
            }
        };
        let (first, last) = (word(0), word(len.saturating_sub(8)));
        let h = (first ^ last.rotate_left(29) ^ len as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        Some(Probe {
            slot: (h >> 56) as usize % KEY_CACHE_SLOTS,
            len,
            first,
            last,
        })
    }

    /// The cached key for the message `buf[s..e]` that gave `probe` (a new
    /// reference, counted inline).
    #[allow(unsafe_code)]
    #[inline]
    pub(super) fn get(
        &self,
        buf: &[u8],
        s: usize,
        e: usize,
        probe: Probe,
    ) -> Option<Bound<'py, PyAny>> {
        match self.slots.get(probe.slot)? {
            Some(slot)
                if slot.probe == probe
                    && (probe.len <= WORDS_COVER || buf[slot.at.0..slot.at.1] == buf[s..e]) =>
            {
                let obj = slot.obj.as_ptr();
                // SAFETY: a live object the slot holds a reference to; the
                // GIL is held (`'py`); the added reference is the result's.
                unsafe {
                    self.refs.incref(obj);
                    Some(Bound::from_owned_ptr(slot.obj.py(), obj))
                }
            }
            _ => None,
        }
    }

    pub(super) fn put(&mut self, s: usize, e: usize, probe: Probe, obj: &Bound<'py, PyAny>) {
        if !obj.is_exact_instance_of::<PyString>() {
            return;
        }
        if self.slots.is_empty() {
            self.slots.resize_with(KEY_CACHE_SLOTS, || None);
        }
        self.slots[probe.slot] = Some(Slot {
            probe,
            at: (s, e),
            obj: obj.clone(),
        });
    }
}

/// Whether `buf[a..a + len]` and `buf[b..b + len]` hold the same bytes
/// (both in bounds): a short key message (4 to 16 bytes, most keys) is
/// compared as two overlapping words, without a call to `memcmp`.
#[inline(always)]
fn same_bytes(buf: &[u8], a: usize, b: usize, len: usize) -> bool {
    let x = &buf[a..a + len];
    let y = &buf[b..b + len];
    let word4 = |s: &[u8], at: usize| u32::from_le_bytes([s[at], s[at + 1], s[at + 2], s[at + 3]]);
    let word8 = |s: &[u8], at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&s[at..at + 8]);
        u64::from_le_bytes(w)
    };
    match len {
        4..=7 => word4(x, 0) == word4(y, 0) && word4(x, len - 4) == word4(y, len - 4),
        8..=16 => word8(x, 0) == word8(y, 0) && word8(x, len - 8) == word8(y, len - 8),
        _ => x == y,
    }
}

#[cfg(test)]
mod tests {
    use super::same_bytes;

    #[test]
    fn same_bytes_is_slice_equality() {
        let buf: Vec<u8> = (0..64u8).chain(0..64u8).collect();
        for len in 0..40 {
            for a in 0..20 {
                for b in [a, a + 1, a + 64, 70] {
                    if b + len > buf.len() || a + len > buf.len() {
                        continue;
                    }
                    let want = buf[a..a + len] == buf[b..b + len];
                    assert_eq!(same_bytes(&buf, a, b, len), want, "{a} {b} {len}");
                }
            }
        }
    }
}
