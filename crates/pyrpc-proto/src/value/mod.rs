//! [`Value`]: a Rust value with Python's shapes, and its wire form.

use bytes::Bytes;
use num_bigint::BigInt;

use crate::error::ValueError;
use crate::kinds::{Date, DateTime, Fraction, Record, Time, TimeDelta};
use crate::wire;

/// The deepest nesting of values pyrpc sends or accepts by default.
///
/// A scalar has depth 1, a list of scalars depth 2, and so on: 1024 lets a
/// list nested 1,000 deep through. Values deeper than
/// [`crate::NESTED_MAX_DEPTH`] travel in the flat encoding, which is decoded
/// without recursion; the limit bounds the recursion of the code that walks a
/// decoded value (conversion to Python objects, drop), so hostile input is
/// refused with [`ValueError::TooDeep`] instead of exhausting a stack.
pub const MAX_VALUE_DEPTH: usize = 1024;

/// The deepest [`Value`] decoded whatever the configured limit: a larger
/// `max_depth` given to [`Value::from_wire`] (and so to every decoder of
/// Rust values, e.g. a Rust server's or client's `max_value_depth`) counts
/// as this one.
///
/// A `Value` is dropped by the compiler's recursive drop, one stack frame
/// or so per level, as `serde_json::Value` is: 10,000 levels drop within a
/// 2 MiB thread stack (a tokio worker's) even in a debug build, so a hostile
/// frame cannot crash a process whose limit was raised. Clone, equality,
/// `Debug` and `Display` use explicit stacks and have no such bound. A
/// value built by hand deeper than this is the builder's to drop on a stack
/// large enough (decision 0015). Python peers decode into Python objects,
/// not `Value`s, and are not bound by it.
pub const VALUE_DEPTH_CEILING: usize = 10_000;

/// A value with Python's shapes.
///
/// The variants map one to one onto Python types: `None`, `bool`, `int` (any
/// size), `float`, `str`, `bytes`, `list`, `tuple`, `set`, `frozenset`, `dict`,
/// `bytearray`, `datetime`, `date`, `time`, `timedelta`, `Decimal`, `UUID`,
/// `complex`, `Fraction`, typed records (dataclasses, NamedTuples, Enums,
/// registered types), plus an opaque pickled object that peers refuse unless
/// they opted in.
///
/// Ints are kept canonical: a value that fits in `i64` is always
/// [`Value::Int`], never [`Value::BigInt`]; the `From` conversions and the wire
/// decoder see to that, so equality works as expected.
///
/// # Examples
///
/// ```
/// use pyrpc_proto::Value;
///
/// let args = Value::tuple([Value::from(1)]);
/// let kwargs = Value::dict([(Value::from("foo"), Value::from("foo"))]);
/// let ret = Value::tuple([args, kwargs]);
/// assert_eq!(ret.to_string(), "((1,), {'foo': 'foo'})");
/// ```
#[derive(Default)]
pub enum Value {
    /// Python `None`.
    #[default]
    None,
    /// Python `bool`.
    Bool(bool),
    /// Python `int` within the `i64` range.
    Int(i64),
    /// Python `int` outside the `i64` range.
    BigInt(BigInt),
    /// Python `float`.
    Float(f64),
    /// Python `str`.
    Str(String),
    /// Python `bytes`.
    Bytes(Bytes),
    /// Python `list`.
    List(Vec<Value>),
    /// Python `tuple`.
    Tuple(Vec<Value>),
    /// Python `set`; items are hashable.
    Set(Vec<Value>),
    /// Python `frozenset`; items are hashable.
    FrozenSet(Vec<Value>),
    /// Python `dict` as (key, value) pairs in insertion order; keys are hashable.
    Dict(Vec<(Value, Value)>),
    /// A pickled Python object, refused unless both peers opted in.
    Pickle(Bytes),
    /// Python `bytearray`.
    ByteArray(Bytes),
    /// Python `datetime.datetime`, naive or with a UTC offset.
    DateTime(Box<DateTime>),
    /// Python `datetime.date`.
    Date(Date),
    /// Python `datetime.time`, naive or with a UTC offset.
    Time(Box<Time>),
    /// Python `datetime.timedelta`.
    TimeDelta(TimeDelta),
    /// Python `decimal.Decimal`, as its exact text (`"1.50"`, `"-0"`, `"NaN"`).
    Decimal(String),
    /// Python `uuid.UUID`, its 16 bytes (`u.bytes`).
    Uuid([u8; 16]),
    /// Python `complex`.
    Complex {
        /// The real part.
        re: f64,
        /// The imaginary part.
        im: f64,
    },
    /// Python `fractions.Fraction`.
    Fraction(Box<Fraction>),
    /// A dataclass, NamedTuple, Enum member or registered type.
    Record(Box<Record>),
    /// An n-dimensional array of numbers (a numpy `ndarray` or scalar):
    /// element type, shape and the raw little-endian elements in C order.
    /// See [`NdArray`](crate::NdArray).
    NdArray(Box<crate::NdArray>),
    /// A value still in its encoded form: the bytes of a `pyrpc.v1.Value`
    /// message. A callee that converts values itself (the Python binding,
    /// see [`crate::raw`]) receives its arguments and returns its result
    /// this way, so the server never builds a tree for them; anything that
    /// needs the value's shape calls [`Value::decoded`] first. Encoding it
    /// writes the bytes as they are; its depth counts as 1 (the encoder
    /// that made it checked the real depth).
    Encoded(Bytes),
}

// ===== impl Value =====

impl Value {
    /// A tuple of the given items.
    pub fn tuple(items: impl IntoIterator<Item = Value>) -> Value {
        Value::Tuple(items.into_iter().collect())
    }

    /// A list of the given items.
    pub fn list(items: impl IntoIterator<Item = Value>) -> Value {
        Value::List(items.into_iter().collect())
    }

    /// A dict of the given (key, value) pairs, in order.
    pub fn dict(entries: impl IntoIterator<Item = (Value, Value)>) -> Value {
        Value::Dict(entries.into_iter().collect())
    }

    /// The Python type name of this value (`"int"`, `"tuple"`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::None => "NoneType",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::BigInt(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::List(_) => "list",
            Value::Tuple(_) => "tuple",
            Value::Set(_) => "set",
            Value::FrozenSet(_) => "frozenset",
            Value::Dict(_) => "dict",
            Value::Pickle(_) => "pickle",
            Value::ByteArray(_) => "bytearray",
            Value::DateTime(_) => "datetime",
            Value::Date(_) => "date",
            Value::Time(_) => "time",
            Value::TimeDelta(_) => "timedelta",
            Value::Decimal(_) => "Decimal",
            Value::Uuid(_) => "UUID",
            Value::Complex { .. } => "complex",
            Value::Fraction(_) => "Fraction",
            Value::Record(_) => "record",
            Value::NdArray(_) => "ndarray",
            Value::Encoded(_) => "encoded",
        }
    }

    /// The value with an [`Value::Encoded`] form decoded (refusing values
    /// nested deeper than `max_depth`); any other value as it is.
    ///
    /// # Errors
    ///
    /// A [`ValueError`] when the bytes are not a valid value.
    ///
    /// # Examples
    ///
    /// ```
    /// use pyrpc_proto::{raw, Value};
    ///
    /// let encoded = Value::Encoded(raw::encode_value(Value::from(5)));
    /// assert_eq!(encoded.decoded(10).unwrap(), Value::from(5));
    /// ```
    pub fn decoded(self, max_depth: usize) -> Result<Value, ValueError> {
        match self {
            Value::Encoded(b) => crate::raw::decode_value(b, max_depth),
            other => Ok(other),
        }
    }

    /// How deeply this value nests: 1 for a scalar or an empty container, one
    /// more than the deepest item otherwise. Walks with an explicit stack, so
    /// any depth is measured.
    pub fn depth(&self) -> usize {
        self.depth_up_to(usize::MAX)
    }

    /// The depth (see [`Value::depth`]), or the first level found past
    /// `stop`, whichever is smaller: the walk stops there.
    fn depth_up_to(&self, stop: usize) -> usize {
        // One iterator per open container: memory grows with the depth, not
        // with the number of items.
        let mut deepest = 1;
        let mut open: Vec<_> = crate::value_ops::children(self).into_iter().collect();
        while let Some(items) = open.last_mut() {
            let Some(v) = items.next() else {
                open.pop();
                continue;
            };
            // `v` sits one level below the innermost open container.
            let level = open.len() + 1;
            deepest = deepest.max(level);
            if level > stop {
                break;
            }
            if let Some(children) = crate::value_ops::children(v) {
                open.push(children);
            }
        }
        deepest
    }

    /// The value as an `i64`, if it is an int that fits.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The value as an `f64`, if it is a float or an int.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(*f),
            Value::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    /// The value as a `bool`, if it is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The value as a `&str`, if it is a str.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as bytes, if it is a bytes value.
    pub fn as_bytes(&self) -> Option<&Bytes> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The items, if the value is a list, tuple, set or frozenset.
    pub fn as_items(&self) -> Option<&[Value]> {
        match self {
            Value::List(v) | Value::Tuple(v) | Value::Set(v) | Value::FrozenSet(v) => Some(v),
            _ => None,
        }
    }

    /// The entries, if the value is a dict.
    pub fn as_dict(&self) -> Option<&[(Value, Value)]> {
        match self {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// The value of `key` in a dict whose keys are strs.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_dict()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// True for `None`.
    pub fn is_none(&self) -> bool {
        matches!(self, Value::None)
    }

    /// Checks that the value nests no deeper than `max_depth`.
    ///
    /// # Errors
    ///
    /// [`ValueError::TooDeep`] when it does.
    pub fn check_depth(&self, max_depth: usize) -> Result<(), ValueError> {
        if self.depth_up_to(max_depth) > max_depth {
            return Err(ValueError::TooDeep { max: max_depth });
        }
        Ok(())
    }

    /// Converts a wire value, refusing anything nested deeper than `max_depth`.
    ///
    /// # Errors
    ///
    /// [`ValueError`] for a value nested too deep, a malformed big int, or a
    /// dict whose key and value lists differ in length.
    ///
    /// A `max_depth` above [`VALUE_DEPTH_CEILING`] counts as the ceiling.
    pub fn from_wire(value: wire::Value, max_depth: usize) -> Result<Value, ValueError> {
        let max_depth = max_depth.min(VALUE_DEPTH_CEILING);
        from_wire(value, max_depth, max_depth)
    }
}

pub(crate) mod direct;
#[cfg(test)]
mod tests;
mod to_wire;

pub(crate) use to_wire::from_wire;
