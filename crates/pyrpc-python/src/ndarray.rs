//! numpy arrays and scalars to and from [`NdArray`] (`Value.ndarray`,
//! decision 0090), with numpy optional.
//!
//! Nothing here imports numpy until an object whose type comes from the
//! `numpy` module is seen (then numpy is already imported by whoever made
//! it), or an array arrives. A receiver without numpy gets the elements as
//! nested lists of Python numbers (a scalar as its number).
//!
//! Sending reads the array's memory in place (its address from
//! `__array_interface__`): a C-contiguous little-endian array is copied
//! once, straight into the message. Other arrays are made so first
//! (Fortran order, strided views and big-endian arrays cost one more copy).
//! Receiving copies the elements once into a `bytearray` that the new array
//! is a view of (`numpy.frombuffer`), so it is writable.

use bytes::Bytes;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyByteArray, PyDict, PyTuple};
use pyrpc_proto::{Dtype, NdArray, Value};

use crate::convert::{ConvertError, Options};

/// `Value.ndarray`'s key byte pair: field 24, length-delimited.
const NDARRAY_KEY: [u8; 2] = [24 << 3 | 2 | 0x80, 1];

static NUMPY: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

fn numpy(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    NUMPY
        .get_or_try_init(py, || Ok(py.import("numpy")?.unbind()))
        .map(|m| m.bind(py))
}

/// Whether `obj`'s type is defined by numpy (`numpy.ndarray`,
/// `numpy.float64`, ...): the only objects this module looks at.
fn from_numpy(obj: &Bound<'_, PyAny>) -> bool {
    obj.get_type()
        .module()
        .is_ok_and(|m| m.to_cow().is_ok_and(|m| m == "numpy"))
}

/// An array ready to be sent: C-contiguous, little-endian, kept alive here
/// while its memory is read.
struct Parts<'py> {
    array: Bound<'py, PyAny>,
    dtype: Dtype,
    shape: Vec<u64>,
    scalar: bool,
    nbytes: usize,
}

impl Parts<'_> {
    /// The array's elements, in place.
    #[allow(unsafe_code)]
    fn data(&self) -> PyResult<&[u8]> {
        if self.nbytes == 0 {
            return Ok(&[]);
        }
        let iface = self.array.getattr("__array_interface__")?;
        let addr: usize = iface.get_item("data")?.get_item(0)?.extract()?;
        // SAFETY: `array` is a C-contiguous numpy array (made so in
        // `parts`) of `nbytes` bytes at `addr`, kept alive by `self.array`
        // for the lifetime of the returned slice; the GIL is held and no
        // Python code runs while the slice is read, so nothing frees or
        // resizes the memory meanwhile.
        Ok(unsafe { std::slice::from_raw_parts(addr as *const u8, self.nbytes) })
    }
}

/// The wire element type of a numpy dtype: by kind and size.
fn dtype_of(dt: &Bound<'_, PyAny>) -> PyResult<Option<Dtype>> {
    let kind: String = dt.getattr("kind")?.extract()?;
    let size: usize = dt.getattr("itemsize")?.extract()?;
    Ok(match (kind.as_str(), size) {
        ("b", 1) => Some(Dtype::Bool),
        ("i", 1) => Some(Dtype::Int8),
        ("i", 2) => Some(Dtype::Int16),
        ("i", 4) => Some(Dtype::Int32),
        ("i", 8) => Some(Dtype::Int64),
        ("u", 1) => Some(Dtype::Uint8),
        ("u", 2) => Some(Dtype::Uint16),
        ("u", 4) => Some(Dtype::Uint32),
        ("u", 8) => Some(Dtype::Uint64),
        ("f", 2) => Some(Dtype::Float16),
        ("f", 4) => Some(Dtype::Float32),
        ("f", 8) => Some(Dtype::Float64),
        ("c", 8) => Some(Dtype::Complex64),
        ("c", 16) => Some(Dtype::Complex128),
        _ => None,
    })
}

/// The parts of a numpy array or scalar; `None` for any other object.
fn parts<'py>(obj: &Bound<'py, PyAny>) -> Result<Option<Parts<'py>>, ConvertError> {
    if !from_numpy(obj) {
        return Ok(None);
    }
    let py = obj.py();
    let fail = |e: PyErr| ConvertError::new(obj, e.to_string());
    let np = numpy(py).map_err(fail)?;
    let ndarray = np.getattr("ndarray").map_err(fail)?;
    let generic = np.getattr("generic").map_err(fail)?;
    let scalar = if obj.is_instance(&ndarray).map_err(fail)? {
        false
    } else if obj.is_instance(&generic).map_err(fail)? {
        true
    } else {
        // Another numpy object (a dtype, a ufunc, ...).
        return Ok(None);
    };
    let dt = obj.getattr("dtype").map_err(fail)?;
    let Some(dtype) = dtype_of(&dt).map_err(fail)? else {
        return Err(ConvertError::new(
            obj,
            format!(
                "numpy arrays of dtype {} cannot be sent: only bool, int, uint, float \
                 (16, 32, 64 bits) and complex (64, 128 bits) arrays travel",
                dt.str().map_err(fail)?
            ),
        ));
    };
    // Little-endian, C order: `require` copies only when the array is not.
    let wanted = dt.call_method1("newbyteorder", ("<",)).map_err(fail)?;
    let kwargs = PyDict::new(py);
    kwargs.set_item("dtype", wanted).map_err(fail)?;
    kwargs.set_item("requirements", "C").map_err(fail)?;
    let array = np
        .getattr("require")
        .and_then(|r| r.call((obj,), Some(&kwargs)))
        .map_err(fail)?;
    let shape: Vec<u64> = array
        .getattr("shape")
        .and_then(|s| s.extract())
        .map_err(fail)?;
    let nbytes: usize = array
        .getattr("nbytes")
        .and_then(|n| n.extract())
        .map_err(fail)?;
    Ok(Some(Parts {
        array,
        dtype,
        shape,
        scalar,
        nbytes,
    }))
}

/// A numpy array or scalar as a [`Value::NdArray`]; `Ok(None)` for any
/// other object.
///
/// # Errors
///
/// A [`ConvertError`] for arrays of other dtypes (object, str, structured,
/// datetime, ...).
pub(crate) fn to_value(obj: &Bound<'_, PyAny>) -> Result<Option<Value>, ConvertError> {
    let Some(p) = parts(obj)? else {
        return Ok(None);
    };
    let data = p
        .data()
        .map_err(|e| ConvertError::new(obj, e.to_string()))?;
    Ok(Some(Value::NdArray(Box::new(NdArray {
        dtype: p.dtype as i32,
        shape: p.shape.clone(),
        data: Bytes::copy_from_slice(data),
        scalar: p.scalar,
    }))))
}

/// Appends the `Value.ndarray` field for a numpy array or scalar to `buf`,
/// copying its elements once; `Ok(false)` (nothing written) for any other
/// object. The bytes are what prost writes for the same message.
///
/// # Errors
///
/// As [`to_value`].
pub(crate) fn encode_into(obj: &Bound<'_, PyAny>, buf: &mut Vec<u8>) -> Result<bool, ConvertError> {
    let Some(p) = parts(obj)? else {
        return Ok(false);
    };
    let data = p
        .data()
        .map_err(|e| ConvertError::new(obj, e.to_string()))?;
    let mut head = Vec::with_capacity(32);
    head.push(1 << 3);
    varint(&mut head, p.dtype as u64);
    if !p.shape.is_empty() {
        let mut packed = Vec::with_capacity(p.shape.len() * 2);
        for &d in &p.shape {
            varint(&mut packed, d);
        }
        head.push(2 << 3 | 2);
        varint(&mut head, packed.len() as u64);
        head.extend_from_slice(&packed);
    }
    let mut len = head.len();
    if !data.is_empty() {
        len += 1 + varint_len(data.len() as u64) + data.len();
    }
    if p.scalar {
        len += 2;
    }
    buf.reserve(NDARRAY_KEY.len() + 10 + len);
    buf.extend_from_slice(&NDARRAY_KEY);
    varint(buf, len as u64);
    buf.extend_from_slice(&head);
    if !data.is_empty() {
        buf.push(3 << 3 | 2);
        varint(buf, data.len() as u64);
        buf.extend_from_slice(data);
    }
    if p.scalar {
        buf.extend_from_slice(&[4 << 3, 1]);
    }
    Ok(true)
}

fn varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push(v as u8 | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn varint_len(v: u64) -> usize {
    (64 - v.max(1).leading_zeros() as usize).div_ceil(7)
}

/// A received array as a numpy array (a numpy scalar when it was sent as
/// one); without numpy installed, its elements as nested lists.
///
/// # Errors
///
/// A `TypeError` when the array is malformed (decoded values are checked
/// already), or what numpy raises.
pub(crate) fn to_python(py: Python<'_>, a: &NdArray, opts: Options) -> PyResult<Py<PyAny>> {
    a.check().map_err(|e| PyTypeError::new_err(e.to_string()))?;
    let np = match numpy(py) {
        Ok(np) => np,
        Err(e) if e.is_instance_of::<pyo3::exceptions::PyImportError>(py) => {
            return crate::convert::to_python(py, a.to_nested(), opts);
        }
        Err(e) => return Err(e),
    };
    let dtype = Dtype::try_from(a.dtype).unwrap_or_default();
    let code = match dtype {
        Dtype::Bool => "|b1".to_string(),
        Dtype::Int8 => "|i1".to_string(),
        Dtype::Uint8 => "|u1".to_string(),
        d => format!(
            "<{}{}",
            match d {
                Dtype::Float16 | Dtype::Float32 | Dtype::Float64 => 'f',
                Dtype::Complex64 | Dtype::Complex128 => 'c',
                Dtype::Uint16 | Dtype::Uint32 | Dtype::Uint64 => 'u',
                _ => 'i',
            },
            d.item_size().unwrap_or(1)
        ),
    };
    // One copy, into memory the array owns (through the bytearray) and may
    // write to.
    let data = PyByteArray::new(py, &a.data);
    let flat = np.getattr("frombuffer")?.call1((data, code))?;
    let shape = PyTuple::new(py, &a.shape)?;
    let array = flat.call_method1("reshape", (shape,))?;
    if a.scalar {
        return Ok(array.get_item(PyTuple::empty(py))?.unbind());
    }
    Ok(array.unbind())
}
