//! Reference counts changed with a store instead of a call, where that is
//! what CPython's own headers do.
//!
//! Under the stable ABI PyO3 makes every reference count a call into
//! libpython (`Py_IncRef` / `Py_DecRef`). A C extension built for the stable
//! ABI of 3.9 compiles `Py_INCREF` to `ob_refcnt++` on the word at the start
//! of every object, and CPython 3.12 and 3.13 keep that working (an immortal
//! object's count has its low 32 bits all set; an increment from an old
//! extension only makes it mortal, with a count far from zero). The mode is
//! chosen once, from the running interpreter (decision 0017):
//!
//! - 3.9-3.11, release build: the count is a plain `Py_ssize_t`.
//! - 3.12-3.13, release build: the same word, but an object whose low 32
//!   bits read as negative is immortal and left alone (as CPython does).
//! - anything else (a debug build, which also counts all references; a
//!   free-threaded build, whose counts are split and atomic; a CPython newer
//!   than this code knows): the calls.
//!
//! A decrement that would reach zero always goes through `Py_DecRef`, which
//! deallocates.

use std::sync::OnceLock;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// How reference counts are changed in this interpreter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Refs {
    /// `ob_refcnt` is a plain count (CPython 3.9-3.11).
    Plain,
    /// `ob_refcnt`'s low 32 bits, when negative, mark an immortal object
    /// (CPython 3.12-3.13).
    Immortal,
    /// `Py_IncRef` / `Py_DecRef`.
    Call,
}

static MODE: OnceLock<Refs> = OnceLock::new();

impl Refs {
    /// The mode for the running interpreter (looked up once).
    pub(super) fn get(py: Python<'_>) -> Refs {
        *MODE.get_or_init(|| Refs::detect(py))
    }

    fn detect(py: Python<'_>) -> Refs {
        let v = py.version_info();
        // `sys.abiflags` is "" for a release build ("d": debug, "t":
        // free-threaded); it is missing where the build is not POSIX's.
        let release = py
            .import("sys")
            .and_then(|sys| sys.getattr("abiflags"))
            .and_then(|f| f.extract::<String>())
            .is_ok_and(|f| f.is_empty());
        if !release || v.major != 3 || std::mem::size_of::<usize>() != 8 {
            return Refs::Call;
        }
        match v.minor {
            9..=11 => Refs::Plain,
            12 | 13 => Refs::Immortal,
            _ => Refs::Call,
        }
    }

    /// Adds a reference to `op`.
    ///
    /// # Safety
    ///
    /// `op` is a live object and the GIL is held.
    #[allow(unsafe_code)]
    #[inline(always)]
    pub(super) unsafe fn incref(self, op: *mut ffi::PyObject) {
        let cnt = op.cast::<isize>();
        match self {
            Refs::Plain => *cnt += 1,
            Refs::Immortal => {
                if (*cnt as i32) >= 0 {
                    *cnt += 1;
                }
            }
            Refs::Call => ffi::Py_IncRef(op),
        }
    }

    /// Releases a reference to `op`, deallocating it (by `Py_DecRef`) when it
    /// was the last.
    ///
    /// # Safety
    ///
    /// `op` is a live object the caller owns a reference to, and the GIL is
    /// held.
    #[allow(unsafe_code)]
    #[inline(always)]
    pub(super) unsafe fn decref(self, op: *mut ffi::PyObject) {
        let cnt = op.cast::<isize>();
        match self {
            Refs::Plain if *cnt > 1 => *cnt -= 1,
            Refs::Immortal if (*cnt as i32) < 0 => {}
            Refs::Immortal if *cnt > 1 => *cnt -= 1,
            _ => ffi::Py_DecRef(op),
        }
    }
}

/// `dict[k] = v` with CPython's own function (no conversion of the
/// arguments on the way); our references to `k` and `v` are then released
/// (counted inline: the dict holds them now, so these are not the last).
#[allow(unsafe_code)]
#[inline]
pub(super) fn set_item<'py>(
    dict: &Bound<'py, PyDict>,
    k: Bound<'py, PyAny>,
    v: Bound<'py, PyAny>,
    refs: Refs,
) -> PyResult<()> {
    let (k, v) = (k.into_ptr(), v.into_ptr());
    // SAFETY: three live objects, the first a dict, the GIL held;
    // `PyDict_SetItem` takes its own references and returns -1 with an
    // exception set on failure (an unhashable key); the two references
    // released are the ones `into_ptr` gave up.
    unsafe {
        let r = ffi::PyDict_SetItem(dict.as_ptr(), k, v);
        refs.decref(k);
        refs.decref(v);
        if r < 0 {
            return Err(PyErr::fetch(dict.py()));
        }
    }
    Ok(())
}

/// `None` (borrowed).
#[allow(unsafe_code)]
#[inline(always)]
pub(super) fn none_ptr() -> *mut ffi::PyObject {
    // SAFETY: the address of the interpreter's `None`.
    unsafe { ffi::Py_None() }
}

/// `True` or `False` (borrowed).
#[allow(unsafe_code)]
#[inline(always)]
pub(super) fn bool_ptr(b: bool) -> *mut ffi::PyObject {
    // SAFETY: the addresses of the interpreter's `True` and `False`.
    unsafe {
        if b {
            ffi::Py_True()
        } else {
            ffi::Py_False()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(unsafe_code)]
    fn counts_move_as_the_interpreter_counts_them() {
        Python::initialize();
        Python::attach(|py| {
            let refs = Refs::get(py);
            let sys = py.import("sys").unwrap();
            let count = |o: &Bound<'_, PyAny>| -> i64 {
                sys.call_method1("getrefcount", (o,))
                    .unwrap()
                    .extract()
                    .unwrap()
            };
            let obj = pyo3::types::PySet::empty(py).unwrap().into_any();
            let before = count(&obj);
            // SAFETY: a live object, the GIL held; one reference added and
            // the same one released.
            unsafe { refs.incref(obj.as_ptr()) };
            assert_eq!(count(&obj), before + 1, "{refs:?}");
            unsafe { refs.decref(obj.as_ptr()) };
            assert_eq!(count(&obj), before, "{refs:?}");
            // The last reference: deallocated through Py_DecRef (a weakref
            // to it dies).
            let weak = py
                .import("weakref")
                .unwrap()
                .call_method1("ref", (obj.clone(),))
                .unwrap();
            let ptr = obj.into_ptr();
            unsafe { refs.decref(ptr) };
            assert!(weak.call0().unwrap().is_none(), "{refs:?}");
            // Immortal or not, None survives any balanced pair.
            let none = py.None();
            for _ in 0..3 {
                unsafe {
                    refs.incref(none.as_ptr());
                    refs.decref(none.as_ptr());
                }
            }
            assert!(none.bind(py).is_none());
        });
    }
}
