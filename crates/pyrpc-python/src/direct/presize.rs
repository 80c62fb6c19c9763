//! Big dicts made at their final size.
//!
//! A dict filled one item at a time grows by doubling: a 100k-item dict is
//! rebuilt some fifteen times on the way, about a third of what its decode
//! costs. CPython's `_PyDict_NewPresized(n)` makes it at its final size, but
//! it is not part of the stable ABI, so the abi3 wheel cannot link to it.
//! It is looked up once, by name, among the symbols the interpreter exports
//! (`dlsym`), on the CPython versions whose function is known (3.9-3.13: the
//! same signature in each, and it caps the size it makes itself); where it
//! is not found (an interpreter embedded without exporting its symbols, a
//! newer CPython), dicts are made by `PyDict_New` as before (decision 0018).

use std::sync::OnceLock;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::wire::{read_varint, skip, DecodeError, ITEM};

/// `PyObject *_PyDict_NewPresized(Py_ssize_t minused)`.
type NewPresized = unsafe extern "C" fn(ffi::Py_ssize_t) -> *mut ffi::PyObject;

static PRESIZED: OnceLock<Option<NewPresized>> = OnceLock::new();

/// The interpreter's `_PyDict_NewPresized`, if it has a known one.
#[allow(unsafe_code)]
fn presized(py: Python<'_>) -> Option<NewPresized> {
    *PRESIZED.get_or_init(|| {
        let v = py.version_info();
        if v.major != 3 || !(9..=13).contains(&v.minor) {
            return None;
        }
        #[cfg(unix)]
        {
            // SAFETY: a NUL-terminated name looked up in the global scope;
            // a non-NULL result is the address of that function, whose
            // signature is the same in CPython 3.9-3.13.
            let f = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"_PyDict_NewPresized".as_ptr()) };
            if f.is_null() {
                return None;
            }
            Some(unsafe { std::mem::transmute::<*mut libc::c_void, NewPresized>(f) })
        }
        #[cfg(not(unix))]
        None
    })
}

/// A new empty dict with room for `n` items (at the interpreter's own cap).
#[allow(unsafe_code)]
pub(super) fn new_dict(py: Python<'_>, n: usize) -> PyResult<Bound<'_, PyDict>> {
    let Some(f) = presized(py) else {
        return Ok(PyDict::new(py));
    };
    let n = ffi::Py_ssize_t::try_from(n).unwrap_or(ffi::Py_ssize_t::MAX);
    // SAFETY: the GIL is held; the result is a new dict or NULL with an
    // exception set.
    unsafe { Ok(Bound::from_owned_ptr_or_err(py, f(n))?.cast_into_unchecked()) }
}

/// The number of keys (field 1) of the `Dict` message at `start..end`.
pub(super) fn count_keys(buf: &[u8], start: usize, end: usize) -> Result<usize, DecodeError> {
    let mut n = 0;
    let mut pos = start;
    while pos < end {
        let key = read_varint(buf, &mut pos, end)?;
        skip(buf, &mut pos, end, key & 7)?;
        n += usize::from(key == u64::from(ITEM));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_presized_dict_is_an_ordinary_empty_dict() {
        Python::initialize();
        Python::attach(|py| {
            assert!(
                presized(py).is_some(),
                "_PyDict_NewPresized not found: big dicts grow step by step"
            );
            for n in [0, 5, 1000, 1 << 20] {
                let d = new_dict(py, n).unwrap();
                assert!(d.is_empty());
                for i in 0..100 {
                    d.set_item(i, i).unwrap();
                }
                assert_eq!(d.len(), 100);
            }
        });
    }
}
