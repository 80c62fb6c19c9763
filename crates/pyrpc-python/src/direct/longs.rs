//! An exact `int`'s value read from the object, without a call into
//! libpython, where the interpreter's layout is known and checked.
//!
//! Under the stable ABI every `int` sent costs a call to
//! `PyLong_AsLongLongAndOverflow` (and every `float` one to
//! `PyFloat_AsDouble`): for a list of a million ints, about a third of its
//! encode. CPython keeps an `int`'s magnitude as 30-bit digits right after
//! a 24-byte header in every version the abi3 wheel loads in; only the
//! header's last word differs:
//!
//! - 3.9-3.11: `ob_size`, the number of digits, negative for a negative int
//!   (0 for zero);
//! - 3.12-3.13: `lv_tag`, the number of digits shifted left by 3, its low
//!   two bits the sign (0 positive, 1 zero, 2 negative).
//!
//! Ints of one or two digits (magnitude below 2^60) are read from there;
//! anything larger goes through the call. The layout is not taken on trust:
//! the first use in a process reads ints of known values through it (and
//! checks `sys.int_info`), and takes the calls for good if anything differs,
//! or on a CPython this code does not know (decision 0021).

use std::sync::OnceLock;

use pyo3::ffi;
use pyo3::prelude::*;

/// How an exact `int`'s digits are found in this interpreter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Longs {
    /// `ob_size` holds the signed digit count (CPython 3.9-3.11).
    SignedSize,
    /// `lv_tag` holds the digit count and the sign (CPython 3.12-3.13).
    Tagged,
    /// `PyLong_AsLongLongAndOverflow`.
    Call,
}

/// Bytes before the first digit: `ob_refcnt`, `ob_type`, then `ob_size` or
/// `lv_tag`.
const DIGITS_AT: usize = 3 * std::mem::size_of::<usize>();
/// Bits per digit (`sys.int_info.bits_per_digit` on every 64-bit build
/// since 3.0 unless configured otherwise; checked).
const DIGIT_BITS: u32 = 30;
const DIGIT_MASK: u64 = (1 << DIGIT_BITS) - 1;

static MODE: OnceLock<Longs> = OnceLock::new();

impl Longs {
    /// The mode for the running interpreter (looked up and checked once).
    pub(super) fn get(py: Python<'_>) -> Longs {
        *MODE.get_or_init(|| {
            let mode = Longs::guess(py);
            if mode != Longs::Call && Longs::reads_right(py, mode) {
                mode
            } else {
                Longs::Call
            }
        })
    }

    fn guess(py: Python<'_>) -> Longs {
        let v = py.version_info();
        let info = py
            .import("sys")
            .and_then(|sys| sys.getattr("int_info"))
            .and_then(|i| {
                Ok((
                    i.getattr("bits_per_digit")?.extract::<u32>()?,
                    i.getattr("sizeof_digit")?.extract::<usize>()?,
                ))
            });
        if info.ok() != Some((DIGIT_BITS, 4)) || std::mem::size_of::<usize>() != 8 || v.major != 3 {
            return Longs::Call;
        }
        match v.minor {
            9..=11 => Longs::SignedSize,
            12 | 13 => Longs::Tagged,
            _ => Longs::Call,
        }
    }

    /// Whether ints of known values read back right through `mode`.
    #[allow(unsafe_code)]
    fn reads_right(py: Python<'_>, mode: Longs) -> bool {
        let mut values: Vec<i64> = vec![0, 1, -1, 5, -5, 255, 256, -257, 1 << 29];
        for bits in [30, 31, 45, 59] {
            values.extend([
                (1i64 << bits) - 1,
                1 << bits,
                -(1i64 << bits),
                -(1i64 << bits) + 1,
            ]);
        }
        values.extend([(1i64 << 60) - 1, -(1i64 << 60) + 1]);
        let floats_right = [0.0, -2.5, 1e300].iter().all(|&f| {
            let obj = pyo3::types::PyFloat::new(py, f);
            // SAFETY: a live exact float, read at the offset `mode` implies.
            unsafe { mode.float(obj.as_ptr()) }.to_bits() == f.to_bits()
        });
        floats_right
            && values.iter().all(|&v| {
                // SAFETY: a new int or NULL; read as `mode` says, only its
                // header and (for a magnitude below 2^60) its first two digits,
                // which an int of that magnitude has; then released.
                unsafe {
                    let obj = ffi::PyLong_FromLongLong(v);
                    if obj.is_null() {
                        drop(PyErr::fetch(py));
                        return false;
                    }
                    let got = mode.read(obj);
                    ffi::Py_DecRef(obj);
                    got == Some(v)
                }
            })
            && {
                // Ints too big for two digits are not read here.
                let big = (1u64 << 62) as i64;
                // SAFETY: as above.
                unsafe {
                    let obj = ffi::PyLong_FromLongLong(big);
                    let got = if obj.is_null() {
                        Some(0)
                    } else {
                        mode.read(obj)
                    };
                    if !obj.is_null() {
                        ffi::Py_DecRef(obj);
                    }
                    got.is_none()
                }
            }
    }

    /// The value of the exact `int` `obj` when it has at most two digits
    /// and the layout is known; `None` otherwise (the caller then asks
    /// CPython).
    ///
    /// # Safety
    ///
    /// `obj` is a live exact `int` and the GIL is held.
    #[allow(unsafe_code)]
    #[inline(always)]
    pub(super) unsafe fn read(self, obj: *mut ffi::PyObject) -> Option<i64> {
        let base = obj.cast::<u8>();
        let word = *base.add(DIGITS_AT - 8).cast::<isize>();
        let (ndigits, negative) = match self {
            Longs::SignedSize => (word.unsigned_abs(), word < 0),
            Longs::Tagged => {
                let tag = word as usize;
                if tag & 3 == 1 {
                    return Some(0);
                }
                (tag >> 3, tag & 3 == 2)
            }
            Longs::Call => return None,
        };
        let digits = base.add(DIGITS_AT).cast::<u32>();
        let magnitude = match ndigits {
            0 => 0,
            1 => u64::from(*digits) & DIGIT_MASK,
            2 => {
                (u64::from(*digits) & DIGIT_MASK)
                    | (u64::from(*digits.add(1)) & DIGIT_MASK) << DIGIT_BITS
            }
            _ => return None,
        } as i64;
        Some(if negative { -magnitude } else { magnitude })
    }

    /// The value of the exact `int` `obj` within 64 bits, `None` when it
    /// does not fit (no exception left set).
    ///
    /// # Safety
    ///
    /// As [`Longs::read`].
    #[allow(unsafe_code)]
    #[inline(always)]
    pub(super) unsafe fn value(self, obj: *mut ffi::PyObject) -> Option<i64> {
        if let Some(v) = self.read(obj) {
            return Some(v);
        }
        let mut overflow = 0;
        let v = ffi::PyLong_AsLongLongAndOverflow(obj, &mut overflow);
        (overflow == 0).then_some(v)
    }
}

impl Longs {
    /// The value of an exact `float`: `PyFloatObject`'s `ob_fval`, right
    /// after the 16-byte object header in every CPython since 2.x, where the
    /// int layout was found as expected (which places that header); else
    /// `PyFloat_AsDouble`.
    ///
    /// # Safety
    ///
    /// `obj` is a live exact `float` and the GIL is held.
    #[allow(unsafe_code)]
    #[inline(always)]
    pub(super) unsafe fn float(self, obj: *mut ffi::PyObject) -> f64 {
        match self {
            Longs::Call => ffi::PyFloat_AsDouble(obj),
            _ => *obj.cast::<u8>().add(DIGITS_AT - 8).cast::<f64>(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(unsafe_code)]
    fn ints_and_floats_read_as_the_interpreter_reads_them() {
        Python::initialize();
        Python::attach(|py| {
            let mode = Longs::get(py);
            assert_ne!(
                mode,
                Longs::Call,
                "the int layout check failed: calls taken"
            );
            let mut values: Vec<i64> = vec![0, 1, -1, i64::MAX, i64::MIN, 7 << 40];
            for bits in 0..63 {
                values.extend([1i64 << bits, -(1i64 << bits), (1i64 << bits) - 1]);
            }
            for v in values {
                let Ok(obj) = v.into_pyobject(py);
                // SAFETY: a live exact int, the GIL held.
                assert_eq!(unsafe { mode.value(obj.as_ptr()) }, Some(v), "{v}");
            }
            let big = py.eval(c"2**64", None, None).unwrap();
            // SAFETY: as above.
            assert_eq!(unsafe { mode.value(big.as_ptr()) }, None);
            for f in [0.0, -0.0, 1.5, f64::INFINITY, f64::MIN_POSITIVE, -1e300] {
                let obj = pyo3::types::PyFloat::new(py, f);
                // SAFETY: a live exact float.
                let got = unsafe { mode.float(obj.as_ptr()) };
                assert_eq!(got.to_bits(), f.to_bits());
            }
        });
    }
}
