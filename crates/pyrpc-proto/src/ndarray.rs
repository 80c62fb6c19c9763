//! n-dimensional arrays of numbers ([`Value::NdArray`], `Value.ndarray`,
//! field 24): an element type, a shape and the raw elements in C order,
//! little-endian (decision 0090).
//!
//! This is how a numpy `ndarray` (or a numpy scalar) travels. The bytes are
//! kept as they arrived ([`Bytes`], a slice of the frame), so a receiver that
//! only forwards an array never copies it; [`NdArray::to_nested`] reads the
//! elements into plain values (nested lists) for Rust code and serde.
//!
//! # Examples
//!
//! ```
//! use pyrpc_proto::{Dtype, NdArray, Value};
//!
//! // A 2 x 2 float64 array, as numpy's `np.array([[1.0, 2.0], [3.0, 4.0]])`.
//! let data: Vec<u8> = [1.0f64, 2.0, 3.0, 4.0].iter().flat_map(|f| f.to_le_bytes()).collect();
//! let a = NdArray::new(Dtype::Float64, vec![2, 2], data.into()).unwrap();
//! assert_eq!(a.len(), 4);
//! assert_eq!(
//!     a.to_nested().to_string(),
//!     "[[1.0, 2.0], [3.0, 4.0]]"
//! );
//! // A shape that does not match the data is refused.
//! assert!(NdArray::new(Dtype::Float64, vec![3], vec![0u8; 8].into()).is_err());
//! let v = Value::from(a);
//! assert_eq!(v.type_name(), "ndarray");
//! ```

use bytes::Bytes;

use crate::error::ValueError;
use crate::value::Value;

pub use crate::wire::{Dtype, NdArray};

/// The most dimensions an array may have (numpy 2 allows 64).
pub const MAX_NDIM: usize = 64;

// ===== impl Dtype =====

impl Dtype {
    /// The size of one element in bytes; `None` for
    /// [`Dtype::Unspecified`] (an element type this crate does not know).
    pub fn item_size(self) -> Option<usize> {
        Some(match self {
            Dtype::Unspecified => return None,
            Dtype::Bool | Dtype::Int8 | Dtype::Uint8 => 1,
            Dtype::Int16 | Dtype::Uint16 | Dtype::Float16 => 2,
            Dtype::Int32 | Dtype::Uint32 | Dtype::Float32 => 4,
            Dtype::Int64 | Dtype::Uint64 | Dtype::Float64 | Dtype::Complex64 => 8,
            Dtype::Complex128 => 16,
        })
    }

    /// numpy's name of the type (`"float64"`); `"unspecified"` for
    /// [`Dtype::Unspecified`].
    pub fn numpy_name(self) -> &'static str {
        match self {
            Dtype::Unspecified => "unspecified",
            Dtype::Bool => "bool",
            Dtype::Int8 => "int8",
            Dtype::Int16 => "int16",
            Dtype::Int32 => "int32",
            Dtype::Int64 => "int64",
            Dtype::Uint8 => "uint8",
            Dtype::Uint16 => "uint16",
            Dtype::Uint32 => "uint32",
            Dtype::Uint64 => "uint64",
            Dtype::Float16 => "float16",
            Dtype::Float32 => "float32",
            Dtype::Float64 => "float64",
            Dtype::Complex64 => "complex64",
            Dtype::Complex128 => "complex128",
        }
    }

    /// The type numpy calls `name` (`"float64"`, `"int8"`, ...), if it is one
    /// of the types the wire carries.
    pub fn from_numpy_name(name: &str) -> Option<Dtype> {
        use Dtype::*;
        [
            Bool, Int8, Int16, Int32, Int64, Uint8, Uint16, Uint32, Uint64, Float16, Float32,
            Float64, Complex64, Complex128,
        ]
        .into_iter()
        .find(|d| d.numpy_name() == name)
    }
}

// ===== impl NdArray =====

/// The malformed-array error.
fn malformed(reason: impl Into<String>) -> ValueError {
    ValueError::Malformed {
        kind: "ndarray",
        reason: reason.into(),
    }
}

impl NdArray {
    /// An array of `dtype` elements with this `shape`, whose little-endian
    /// elements in C order are `data`.
    ///
    /// # Errors
    ///
    /// [`ValueError::Malformed`] when `data` is not exactly the product of
    /// `shape` times the element size, or `dtype` is unspecified.
    pub fn new(dtype: Dtype, shape: Vec<u64>, data: Bytes) -> Result<NdArray, ValueError> {
        let a = NdArray {
            dtype: dtype as i32,
            shape,
            data,
            scalar: false,
        };
        a.check()?;
        Ok(a)
    }

    /// A numpy scalar (`numpy.float64(1.5)`): one element, no shape.
    ///
    /// # Errors
    ///
    /// As [`NdArray::new`].
    pub fn scalar(dtype: Dtype, data: Bytes) -> Result<NdArray, ValueError> {
        let mut a = NdArray::new(dtype, Vec::new(), data)?;
        a.scalar = true;
        Ok(a)
    }

    /// The number of elements: the product of the shape (1 for no shape).
    pub fn len(&self) -> u64 {
        if self.shape.contains(&0) {
            return 0;
        }
        self.shape
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d))
            .unwrap_or(u64::MAX)
    }

    /// Whether the array has no elements (a dimension of length 0).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks what a receiver must check before using an array: a known
    /// element type, a data length of exactly the shape's product times the
    /// element size (computed without overflow), and `scalar` only with an
    /// empty shape.
    ///
    /// # Errors
    ///
    /// [`ValueError::Malformed`] saying what is wrong.
    pub fn check(&self) -> Result<(), ValueError> {
        let dtype = Dtype::try_from(self.dtype)
            .ok()
            .filter(|d| *d != Dtype::Unspecified)
            .ok_or_else(|| malformed(format!("unknown element type {}", self.dtype)))?;
        if self.shape.len() > MAX_NDIM {
            return Err(malformed(format!(
                "{} dimensions, more than {MAX_NDIM}",
                self.shape.len()
            )));
        }
        let item = dtype.item_size().unwrap_or(1) as u64;
        let want = if self.shape.contains(&0) {
            0
        } else {
            self.shape
                .iter()
                .try_fold(item, |n, &d| n.checked_mul(d))
                .ok_or_else(|| malformed(format!("shape {:?} overflows", self.shape)))?
        };
        if want != self.data.len() as u64 {
            return Err(malformed(format!(
                "shape {:?} of {} needs {want} bytes of data, not {}",
                self.shape,
                dtype.numpy_name(),
                self.data.len()
            )));
        }
        if self.scalar && !self.shape.is_empty() {
            return Err(malformed("a scalar with a shape"));
        }
        Ok(())
    }

    /// The elements as plain values, nested in lists along the shape
    /// (`[[1.0, 2.0], [3.0, 4.0]]`); a 0-d array or scalar is its single
    /// element. bool elements are [`Value::Bool`], integers [`Value::Int`]
    /// (or [`Value::BigInt`] for uint64 above `i64::MAX`), floats
    /// [`Value::Float`] and complex numbers [`Value::Complex`].
    ///
    /// Call it on a checked array ([`NdArray::check`]; decoded values always
    /// are): missing bytes read as zeros.
    pub fn to_nested(&self) -> Value {
        let dtype = Dtype::try_from(self.dtype).unwrap_or(Dtype::Unspecified);
        let size = dtype.item_size().unwrap_or(1);
        let mut elements = self
            .data
            .chunks(size)
            .map(|b| element(dtype, b))
            .collect::<Vec<_>>();
        elements.resize(usize::try_from(self.len()).unwrap_or(0), Value::Float(0.0));
        if self.shape.is_empty() {
            return elements.pop().unwrap_or(Value::None);
        }
        if self.is_empty() {
            return empty_nested(&self.shape);
        }
        // Group from the innermost dimension out.
        for &dim in self.shape[1..].iter().rev() {
            let dim = usize::try_from(dim).unwrap_or(usize::MAX);
            let mut grouped = Vec::with_capacity(elements.len() / dim);
            let mut rest = elements.into_iter().peekable();
            while rest.peek().is_some() {
                grouped.push(Value::List(rest.by_ref().take(dim).collect()));
            }
            elements = grouped;
        }
        Value::List(elements)
    }
}

/// Nested empty lists for a shape with a zero in it.
fn empty_nested(shape: &[u64]) -> Value {
    match shape.split_first() {
        None | Some((0, _)) => Value::List(Vec::new()),
        Some((&n, rest)) => Value::List(vec![empty_nested(rest); usize::try_from(n).unwrap_or(0)]),
    }
}

/// One little-endian element.
fn element(dtype: Dtype, b: &[u8]) -> Value {
    fn le<const N: usize>(b: &[u8]) -> [u8; N] {
        let mut a = [0u8; N];
        let n = b.len().min(N);
        a[..n].copy_from_slice(&b[..n]);
        a
    }
    match dtype {
        Dtype::Bool => Value::Bool(b.first().is_some_and(|&x| x != 0)),
        Dtype::Int8 => Value::Int(i8::from_le_bytes(le(b)).into()),
        Dtype::Int16 => Value::Int(i16::from_le_bytes(le(b)).into()),
        Dtype::Int32 => Value::Int(i32::from_le_bytes(le(b)).into()),
        Dtype::Int64 => Value::Int(i64::from_le_bytes(le(b))),
        Dtype::Uint8 => Value::Int(u8::from_le_bytes(le(b)).into()),
        Dtype::Uint16 => Value::Int(u16::from_le_bytes(le(b)).into()),
        Dtype::Uint32 => Value::Int(u32::from_le_bytes(le(b)).into()),
        Dtype::Uint64 => Value::from(u64::from_le_bytes(le(b))),
        Dtype::Float16 => Value::Float(f16_to_f64(u16::from_le_bytes(le(b)))),
        Dtype::Float32 => Value::Float(f32::from_le_bytes(le(b)).into()),
        Dtype::Float64 => Value::Float(f64::from_le_bytes(le(b))),
        Dtype::Complex64 => Value::Complex {
            re: f32::from_le_bytes(le(b)).into(),
            im: f32::from_le_bytes(le(b.get(4..).unwrap_or_default())).into(),
        },
        Dtype::Complex128 => Value::Complex {
            re: f64::from_le_bytes(le(b)),
            im: f64::from_le_bytes(le(b.get(8..).unwrap_or_default())),
        },
        Dtype::Unspecified => Value::None,
    }
}

/// An IEEE 754 binary16 as a double (exact: every half is a double).
fn f16_to_f64(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((h >> 10) & 0x1f);
    let frac = f64::from(h & 0x3ff);
    sign * match exp {
        0 => frac * 2f64.powi(-24),
        31 if frac == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        e => (1.0 + frac / 1024.0) * 2f64.powi(e - 15),
    }
}

impl From<NdArray> for Value {
    fn from(a: NdArray) -> Self {
        Value::NdArray(Box::new(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn le_f64(v: &[f64]) -> Bytes {
        v.iter()
            .flat_map(|f| f.to_le_bytes())
            .collect::<Vec<_>>()
            .into()
    }

    #[test]
    fn shape_times_item_size_must_be_the_data_length() {
        assert!(NdArray::new(Dtype::Float64, vec![2, 3], le_f64(&[0.0; 6])).is_ok());
        for (shape, n) in [(vec![2, 3], 5), (vec![2, 3], 7), (vec![], 2), (vec![0], 1)] {
            let e = NdArray::new(Dtype::Float64, shape, le_f64(&vec![0.0; n])).unwrap_err();
            assert!(e.to_string().contains("bytes of data"), "{e}");
        }
        // A hostile shape whose product overflows u64.
        let e = NdArray::new(Dtype::Uint8, vec![u64::MAX, 2], Bytes::new()).unwrap_err();
        assert!(e.to_string().contains("overflows"), "{e}");
        // A zero dimension makes any product zero: empty data is right.
        assert!(NdArray::new(Dtype::Int64, vec![u64::MAX, 0], Bytes::new()).is_ok());
        let unknown = NdArray {
            dtype: 99,
            shape: vec![],
            data: Bytes::new(),
            scalar: false,
        };
        assert!(unknown
            .check()
            .unwrap_err()
            .to_string()
            .contains("unknown element type 99"));
        let scalar_with_shape = NdArray {
            scalar: true,
            ..NdArray::new(Dtype::Float64, vec![1], le_f64(&[1.0])).unwrap()
        };
        assert!(scalar_with_shape.check().is_err());
        let e = NdArray::new(Dtype::Uint8, vec![1; 65], vec![7].into()).unwrap_err();
        assert!(e.to_string().contains("65 dimensions"), "{e}");
    }

    #[test]
    fn nested_values_follow_the_shape() {
        let a = NdArray::new(
            Dtype::Float64,
            vec![2, 3],
            le_f64(&[1., 2., 3., 4., 5., 6.]),
        )
        .unwrap();
        assert_eq!(
            a.to_nested().to_string(),
            "[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]"
        );
        let s = NdArray::scalar(Dtype::Int32, (-7i32).to_le_bytes().to_vec().into()).unwrap();
        assert_eq!(s.to_nested(), Value::Int(-7));
        let u = NdArray::new(
            Dtype::Uint64,
            vec![1],
            u64::MAX.to_le_bytes().to_vec().into(),
        )
        .unwrap();
        assert_eq!(u.to_nested(), Value::List(vec![Value::from(u64::MAX)]));
        let b = NdArray::new(Dtype::Bool, vec![3], vec![1, 0, 1].into()).unwrap();
        assert_eq!(b.to_nested().to_string(), "[True, False, True]");
        let h = NdArray::new(
            Dtype::Float16,
            vec![3],
            vec![0x00, 0x3c, 0x00, 0xc0, 0x00, 0x7c].into(),
        )
        .unwrap();
        assert_eq!(h.to_nested().to_string(), "[1.0, -2.0, inf]");
        let c = NdArray::new(
            Dtype::Complex64,
            vec![1],
            [1.5f32, -2.0]
                .iter()
                .flat_map(|f| f.to_le_bytes())
                .collect::<Vec<_>>()
                .into(),
        )
        .unwrap();
        assert_eq!(
            c.to_nested(),
            Value::List(vec![Value::Complex { re: 1.5, im: -2.0 }])
        );
        let empty = NdArray::new(Dtype::Int8, vec![2, 0, 3], Bytes::new()).unwrap();
        assert_eq!(empty.to_nested().to_string(), "[[], []]");
    }

    #[test]
    fn serde_reads_arrays_as_nested_sequences_and_scalars_as_numbers() {
        let a = NdArray::new(Dtype::Float64, vec![2, 2], le_f64(&[1., 2., 3., 4.])).unwrap();
        let rows: Vec<Vec<f64>> = crate::from_value(Value::from(a.clone())).unwrap();
        assert_eq!(rows, vec![vec![1.0, 2.0], vec![3.0, 4.0]]);
        let pair: (Vec<f64>, [f64; 2]) = crate::from_value(Value::from(a)).unwrap();
        assert_eq!(pair, (vec![1.0, 2.0], [3.0, 4.0]));
        let s = NdArray::scalar(Dtype::Int16, (-2i16).to_le_bytes().to_vec().into()).unwrap();
        assert_eq!(
            crate::from_value::<i32>(Value::from(s.clone())).unwrap(),
            -2
        );
        assert_eq!(crate::from_value::<f64>(Value::from(s)).unwrap(), -2.0);
        let b = NdArray::scalar(Dtype::Bool, vec![1].into()).unwrap();
        assert!(crate::from_value::<bool>(Value::from(b)).unwrap());
        let u = NdArray::new(Dtype::Uint8, vec![3], vec![1, 2, 3].into()).unwrap();
        assert_eq!(
            crate::from_value::<Vec<u8>>(Value::from(u)).unwrap(),
            vec![1, 2, 3]
        );
    }

    #[test]
    fn numpy_names_round_trip() {
        for d in (1..=14).map(|i| Dtype::try_from(i).unwrap()) {
            assert_eq!(Dtype::from_numpy_name(d.numpy_name()), Some(d));
        }
        assert_eq!(Dtype::from_numpy_name("object"), None);
    }
}
