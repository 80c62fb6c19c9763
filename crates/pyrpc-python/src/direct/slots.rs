//! Filling a new list's slots with a store instead of a function call.
//!
//! Under the stable ABI (the wheel is `abi3`) `PyList_SET_ITEM` is not
//! available and every item goes in through `PyList_SetItem`, a call that
//! checks the type, the index and the old item each time. A list made by
//! `PyList_New(n)` is laid out as `PyListObject { ob_base, ob_item,
//! allocated }` in every CPython the wheel can load in (3.9 onwards without
//! the free-threaded build, which cannot load abi3 extensions): the same
//! three fields since Python 2. That layout is checked once, at run time,
//! on a list whose items were set by `PyList_SetItem`; should a future
//! CPython lay lists out differently, [`NewList`] falls back to
//! `PyList_SetItem` (decision 0014).

use std::sync::OnceLock;

use pyo3::ffi;
use pyo3::prelude::*;

/// CPython's `PyListObject`, as `Include/cpython/listobject.h` declares it.
#[repr(C)]
struct ListLayout {
    ob_base: ffi::PyVarObject,
    ob_item: *mut *mut ffi::PyObject,
    allocated: ffi::Py_ssize_t,
}

/// Whether lists are laid out as [`ListLayout`] in this interpreter.
static LAYOUT_OK: OnceLock<bool> = OnceLock::new();

/// Checks [`ListLayout`] against a list filled by `PyList_SetItem`.
#[allow(unsafe_code)]
fn layout_ok(py: Python<'_>) -> bool {
    *LAYOUT_OK.get_or_init(|| {
        let (a, b) = (py.None(), py.Ellipsis());
        // The stable ABI hides `PyTypeObject`; Python tells the size.
        let size = py
            .get_type::<pyo3::types::PyList>()
            .getattr("__basicsize__")
            .and_then(|s| s.extract::<usize>())
            .unwrap_or(0);
        if size < std::mem::size_of::<ListLayout>() {
            return false;
        }
        // SAFETY: a new list of two slots, filled with two new references
        // (stolen by `PyList_SetItem`), read through the assumed layout only
        // within the object's size, then released.
        unsafe {
            let list = ffi::PyList_New(2);
            if list.is_null() {
                drop(PyErr::fetch(py));
                return false;
            }
            ffi::PyList_SetItem(list, 0, a.clone_ref(py).into_ptr());
            ffi::PyList_SetItem(list, 1, b.clone_ref(py).into_ptr());
            let l = list.cast::<ListLayout>();
            let items = (*l).ob_item;
            let ok = (*l).ob_base.ob_size == 2
                && (*l).allocated >= 2
                && !items.is_null()
                && *items == a.as_ptr()
                && *items.add(1) == b.as_ptr();
            ffi::Py_DecRef(list);
            ok
        }
    })
}

/// The items of the live list `list` as a slice of its item array, when
/// lists are laid out as [`ListLayout`]; `None` otherwise (the caller then
/// goes through `PyList_GetItem`).
///
/// # Safety
///
/// `list` is a live `list` and the GIL is held; the slice may only be used
/// while no Python code runs (which could resize the list).
#[allow(unsafe_code)]
#[inline]
pub(super) unsafe fn items_of<'a>(
    py: Python<'_>,
    list: *mut ffi::PyObject,
) -> Option<&'a [*mut ffi::PyObject]> {
    if !layout_ok(py) {
        return None;
    }
    let l = list.cast::<ListLayout>();
    let n = usize::try_from((*l).ob_base.ob_size).ok()?;
    if n == 0 {
        return Some(&[]);
    }
    Some(std::slice::from_raw_parts((*l).ob_item, n))
}

/// A list made at its final length whose empty slots are filled in order.
///
/// The item array is looked up again for every item, and a slot is stored
/// into only while it is in range and still empty: decoding an item can run
/// Python code (a record's constructor, a `gc` callback), which could reach
/// the half-built list through `gc.get_objects()` and resize it. Anything
/// unexpected goes through `PyList_SetItem`, which checks for itself.
pub(super) struct NewList<'py> {
    list: Bound<'py, PyAny>,
    /// Whether lists are laid out as [`ListLayout`] ([`layout_ok`]).
    fast: bool,
}

impl<'py> NewList<'py> {
    /// A new list of `n` empty (NULL) slots, untracked by the garbage
    /// collector until [`into_any`](Self::into_any): the collections that
    /// the objects made for its items set off do not walk it again and
    /// again (as CPython's own builders leave a container untracked until
    /// it is complete), and no Python code can reach it half-built.
    #[allow(unsafe_code)]
    pub(super) fn new(py: Python<'py>, n: usize) -> PyResult<Self> {
        let fast = layout_ok(py);
        // SAFETY: a new list or NULL with an exception set; its empty slots
        // are NULL, which its deallocator allows if some stay empty. A new
        // list is tracked; untracking it is allowed (its deallocator
        // untracks only a tracked object), and nothing but `into_any`
        // tracks it again.
        let list = unsafe {
            let list = Bound::from_owned_ptr_or_err(py, ffi::PyList_New(n as ffi::Py_ssize_t))?;
            ffi::PyObject_GC_UnTrack(list.as_ptr().cast());
            list
        };
        Ok(NewList { list, fast })
    }

    /// Puts `obj` (a new reference, stolen) into slot `i`, which the caller
    /// has not filled yet.
    ///
    /// # Safety
    ///
    /// `i` is below the length given to [`NewList::new`], each `i` is given
    /// once, and `obj` is a valid owned reference.
    #[allow(unsafe_code)]
    #[inline(always)]
    pub(super) unsafe fn set(&self, i: usize, obj: *mut ffi::PyObject) {
        let list = self.list.as_ptr();
        if self.fast {
            let l = list.cast::<ListLayout>();
            if i < (*l).ob_base.ob_size as usize {
                let slot = (*l).ob_item.add(i);
                if (*slot).is_null() {
                    *slot = obj;
                    return;
                }
            }
        }
        ffi::PyList_SetItem(list, i as ffi::Py_ssize_t, obj);
    }

    /// The list, complete and tracked by the garbage collector again.
    #[allow(unsafe_code)]
    pub(super) fn into_any(self) -> Bound<'py, PyAny> {
        // SAFETY: the list was untracked by `new` and nothing else tracks
        // it; the GIL is held.
        unsafe { ffi::PyObject_GC_Track(self.list.as_ptr().cast()) };
        self.list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_layout_is_the_one_assumed() {
        Python::initialize();
        Python::attach(|py| {
            assert!(
                layout_ok(py),
                "PyListObject's layout differs: the slow path is taken"
            );
            let list = NewList::new(py, 3).unwrap();
            for i in 0..3 {
                let Ok(int) = (i as i64 * 1000).into_pyobject(py);
                // SAFETY: `i < 3`, each slot once, a new reference.
                #[allow(unsafe_code)]
                unsafe {
                    list.set(i, int.into_ptr())
                };
            }
            let gc = py.import("gc").unwrap();
            let tracked = |l: &Bound<'_, PyAny>| {
                gc.call_method1("is_tracked", (l,))
                    .unwrap()
                    .extract::<bool>()
                    .unwrap()
            };
            assert!(!tracked(&list.list), "untracked while it is filled");
            let list = list.into_any();
            assert!(tracked(&list), "tracked once complete");
            assert_eq!(list.extract::<Vec<i64>>().unwrap(), vec![0, 1000, 2000]);
        });
    }
}
