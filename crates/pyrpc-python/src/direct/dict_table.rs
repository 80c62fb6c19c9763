//! Where a str key will land in a dict's hash table, read from the dict
//! object, so that the table's memory can be asked for ahead of the insert.
//!
//! Inserting 100k new keys into a 100k-slot table is mostly waiting for
//! memory: the profile of the str->float dict's decode had `_Py_dict_lookup`
//! at 35% of its samples, nearly all on two loads, the index slot the key's
//! hash picks and (when that slot is taken) the entry it points to (decision
//! 0023). Both addresses follow from the key's hash and the table's layout,
//! so the big-dict decoder (`super::big_dict`) asks for them a few pairs
//! before it inserts each key. A prefetch is only a hint: an address that is
//! wrong costs time, never memory safety; but the words read to find the
//! table (the dict's `ma_keys`, the table's size fields, an index slot) are
//! real loads, so the layout is checked once on a dict of known contents
//! and, where it does not read back right (or on a CPython this code does
//! not know), no hints are given at all.
//!
//! The layouts (`Include/cpython/dictobject.h`, `Objects/dict-common.h` or
//! `Include/internal/pycore_dict.h` of each version):
//!
//! - every version: `PyDictObject { ob_base (16), ma_used, ma_version_tag,
//!   ma_keys, ... }`, `ma_keys` at byte 32;
//! - 3.9-3.10: `PyDictKeysObject { dk_refcnt, dk_size, dk_lookup,
//!   dk_usable, dk_nentries, dk_indices[] }`, indices at byte 40, each 1, 2,
//!   4 or 8 bytes by `dk_size`, then 24-byte entries `{ hash, key, value }`;
//! - 3.11-3.13: `{ dk_refcnt, dk_log2_size: u8, dk_log2_index_bytes: u8,
//!   dk_kind: u8, dk_version: u32, dk_usable, dk_nentries, dk_indices[] }`,
//!   indices at byte 32, then entries of 24 bytes (`dk_kind` 0, general) or
//!   16 (`{ key, value }`, kind 1, str keys only); a split table (kind 2,
//!   an instance's `__dict__`) gets no hints.

use std::sync::OnceLock;

use pyo3::ffi;
use pyo3::prelude::*;

/// How a dict's table is found in this interpreter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Layout {
    /// CPython 3.9-3.10: `dk_size` as a word.
    Sized,
    /// CPython 3.11-3.13: `dk_log2_size`, `dk_log2_index_bytes`, `dk_kind`.
    Log2,
}

/// `PyDictObject.ma_keys`.
const MA_KEYS_AT: usize = 32;

/// A dict's table as found at one moment (it moves when the dict grows).
#[derive(Clone, Copy)]
pub(super) struct Table {
    indices: *const u8,
    mask: usize,
    /// log2 of an index slot's bytes (0-3).
    width: u32,
    entries: *const u8,
    entry_size: usize,
    /// Whether an entry starts with the key's hash (24-byte entries).
    has_hash: bool,
}

static LAYOUT: OnceLock<Option<Layout>> = OnceLock::new();

impl Layout {
    /// The layout for the running interpreter, checked once; `None` where it
    /// is unknown or did not read back right.
    pub(super) fn get(py: Python<'_>) -> Option<Layout> {
        *LAYOUT.get_or_init(|| {
            let v = py.version_info();
            if v.major != 3 || std::mem::size_of::<usize>() != 8 || !release_build(py) {
                return None;
            }
            let layout = match v.minor {
                9 | 10 => Layout::Sized,
                11..=13 => Layout::Log2,
                _ => return None,
            };
            reads_right(py, layout).then_some(layout)
        })
    }

    /// The table of `dict` now.
    ///
    /// # Safety
    ///
    /// `dict` is a live exact dict, the GIL is held, and `self` came from
    /// [`Layout::get`] (checked against this interpreter).
    #[allow(unsafe_code)]
    #[inline(always)]
    pub(super) unsafe fn table(self, dict: *mut ffi::PyObject) -> Option<Table> {
        let keys = *dict.cast::<u8>().add(MA_KEYS_AT).cast::<*const u8>();
        match self {
            Layout::Sized => {
                let size = *keys.add(8).cast::<usize>();
                let width = match size {
                    0..=0xff => 0,
                    0x100..=0xffff => 1,
                    0x1_0000..=0xffff_ffff => 2,
                    _ => 3,
                };
                let indices = keys.add(40);
                Some(Table {
                    indices,
                    mask: size.wrapping_sub(1),
                    width,
                    entries: indices.add(size << width),
                    entry_size: 24,
                    has_hash: true,
                })
            }
            Layout::Log2 => {
                let log2_size = u32::from(*keys.add(8));
                let log2_index_bytes = u32::from(*keys.add(9));
                let kind = *keys.add(10);
                let width = log2_index_bytes.checked_sub(log2_size)?;
                if kind > 1 || width > 3 || log2_size >= 48 {
                    return None;
                }
                let indices = keys.add(32);
                Some(Table {
                    indices,
                    mask: (1usize << log2_size) - 1,
                    width,
                    entries: indices.add(1usize << log2_index_bytes),
                    entry_size: if kind == 0 { 24 } else { 16 },
                    has_hash: kind == 0,
                })
            }
        }
    }
}

impl Table {
    /// The index slot `i` (masked to the table), read as CPython stores it:
    /// the entry's number, or negative when the slot is empty or a dummy.
    ///
    /// # Safety
    ///
    /// The table was read by [`Layout::table`] of a live dict that has not
    /// changed since.
    #[allow(unsafe_code)]
    #[inline(always)]
    unsafe fn index(&self, i: usize) -> i64 {
        let i = i & self.mask;
        let at = self.indices.add(i << self.width);
        match self.width {
            0 => i64::from(*at.cast::<i8>()),
            1 => i64::from(at.cast::<i16>().read_unaligned()),
            2 => i64::from(at.cast::<i32>().read_unaligned()),
            _ => at.cast::<i64>().read_unaligned(),
        }
    }

    /// Asks for the index slot a key of `hash` is looked up at first.
    #[inline(always)]
    pub(super) fn prefetch_slot(&self, hash: ffi::Py_hash_t) {
        let i = hash as usize & self.mask;
        prefetch(self.indices.wrapping_add(i << self.width));
    }

    /// Asks for the entry that the slot of a key of `hash` points to, when
    /// it points to one (the entry a lookup compares first).
    ///
    /// # Safety
    ///
    /// As [`Table::index`].
    #[allow(unsafe_code)]
    #[inline(always)]
    pub(super) unsafe fn prefetch_entry(&self, hash: ffi::Py_hash_t) {
        let ix = self.index(hash as usize);
        if ix >= 0 {
            prefetch(self.entries.wrapping_add(ix as usize * self.entry_size));
        }
    }
}

/// A hint to load the cache line at `p` (never a fault, whatever `p` is).
#[allow(unsafe_code, unused_unsafe)]
#[inline(always)]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing and cannot fault.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Whether this is a release build (`sys.abiflags` empty): a debug build's
/// objects carry two more words in front.
fn release_build(py: Python<'_>) -> bool {
    py.import("sys")
        .and_then(|sys| sys.getattr("abiflags"))
        .and_then(|f| f.extract::<String>())
        .is_ok_and(|f| f.is_empty())
}

/// Whether every key of dicts of known contents is found through `layout`
/// where CPython's own probe sequence puts it, in a small dict and in a
/// presized one, with str keys and with int keys (general entries).
#[allow(unsafe_code)]
fn reads_right(py: Python<'_>, layout: Layout) -> bool {
    let dicts = [
        super::presize::new_dict(py, 1000).ok(),
        Some(pyo3::types::PyDict::new(py)),
    ];
    dicts.into_iter().all(|d| {
        let Some(d) = d else { return false };
        let keys: Vec<Bound<'_, PyAny>> = (0..300)
            .map(|i| {
                if i % 7 == 6 {
                    let Ok(k) = (i * 1_000_003i64).into_pyobject(py);
                    k.into_any()
                } else {
                    pyo3::types::PyString::new(py, &format!("k{i}")).into_any()
                }
            })
            .collect();
        // Str keys first (a kind-1 table in 3.11+ while it has only
        // them), checked, then the ints (the table turns general).
        let (strs, ints): (Vec<_>, Vec<_>) = keys
            .iter()
            .partition(|k| k.is_exact_instance_of::<pyo3::types::PyString>());
        let mut inserted: Vec<&Bound<'_, PyAny>> = Vec::new();
        for group in [strs, ints] {
            for k in group {
                if d.set_item(k, k).is_err() {
                    return false;
                }
                inserted.push(k);
            }
            // SAFETY: a live exact dict, the GIL held; the layout's reads
            // are of the dict object and of its table as the layout
            // describes it; every index read is masked to the table.
            let found = unsafe { all_found(py, layout, d.as_ptr(), &inserted) };
            if !found {
                return false;
            }
        }
        true
    })
}

/// Whether each of `keys` (inserted in this order into the fresh `dict`,
/// nothing removed) is found through `layout`: its entry number in its probe
/// sequence, and that entry holding the key (and its hash, when entries
/// have it).
#[allow(unsafe_code)]
unsafe fn all_found(
    py: Python<'_>,
    layout: Layout,
    dict: *mut ffi::PyObject,
    keys: &[&Bound<'_, PyAny>],
) -> bool {
    let Some(t) = layout.table(dict) else {
        return false;
    };
    if t.mask < 7 || t.mask > 1 << 20 || (t.mask + 1) * 2 < keys.len() * 3 {
        return false;
    }
    keys.iter().enumerate().all(|(n, k)| {
        let hash = ffi::PyObject_Hash(k.as_ptr());
        if hash == -1 {
            drop(PyErr::fetch(py));
            return false;
        }
        let mut perturb = hash as usize;
        let mut i = hash as usize & t.mask;
        for _ in 0..=t.mask {
            let ix = t.index(i);
            if ix == n as i64 {
                let entry = t.entries.add(n * t.entry_size);
                let (key_at, hash_ok) = if t.has_hash {
                    (8, *entry.cast::<isize>() == hash)
                } else {
                    (0, true)
                };
                return hash_ok && *entry.add(key_at).cast::<*mut ffi::PyObject>() == k.as_ptr();
            }
            if ix == -1 || ix < 0 && ix != -2 {
                return false;
            }
            perturb >>= 5;
            i = (i * 5 + perturb + 1) & t.mask;
        }
        false
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_layout_reads_back_right_here() {
        Python::initialize();
        Python::attach(|py| {
            assert!(
                Layout::get(py).is_some(),
                "the dict table layout check failed: no prefetch hints"
            );
        });
    }
}
