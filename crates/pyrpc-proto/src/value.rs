//! [`Value`]: a Rust value with Python's shapes, and its wire form.

use bytes::Bytes;
use num_bigint::BigInt;

use crate::error::ValueError;
use crate::kinds::{self, Date, DateTime, Fraction, Record, RecordKind, Time, TimeDelta};
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
#[derive(Debug, Default)]
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
    /// more than the deepest item otherwise.
    pub fn depth(&self) -> usize {
        let children = match self {
            Value::List(v) | Value::Tuple(v) | Value::Set(v) | Value::FrozenSet(v) => {
                v.iter().map(Value::depth).max().unwrap_or(0)
            }
            Value::Dict(entries) => entries
                .iter()
                .map(|(k, v)| k.depth().max(v.depth()))
                .max()
                .unwrap_or(0),
            Value::Record(r) => r.fields.iter().map(|(_, v)| v.depth()).max().unwrap_or(0),
            _ => 0,
        };
        1 + children
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
        fn walk(v: &Value, left: usize, max: usize) -> Result<(), ValueError> {
            if left == 0 {
                return Err(ValueError::TooDeep { max });
            }
            match v {
                Value::List(items)
                | Value::Tuple(items)
                | Value::Set(items)
                | Value::FrozenSet(items) => items.iter().try_for_each(|i| walk(i, left - 1, max)),
                Value::Dict(entries) => entries.iter().try_for_each(|(k, v)| {
                    walk(k, left - 1, max)?;
                    walk(v, left - 1, max)
                }),
                Value::Record(r) => r
                    .fields
                    .iter()
                    .try_for_each(|(_, v)| walk(v, left - 1, max)),
                _ => Ok(()),
            }
        }
        walk(self, max_depth, max_depth)
    }

    /// Converts a wire value, refusing anything nested deeper than `max_depth`.
    ///
    /// # Errors
    ///
    /// [`ValueError`] for a value nested too deep, a malformed big int, or a
    /// dict whose key and value lists differ in length.
    pub fn from_wire(value: wire::Value, max_depth: usize) -> Result<Value, ValueError> {
        from_wire(value, max_depth, max_depth)
    }
}

/// Converts one wire value with `left` levels of room (the root of the value
/// at hand takes one); `max` is the limit named in errors.
pub(crate) fn from_wire(value: wire::Value, left: usize, max: usize) -> Result<Value, ValueError> {
    use wire::value::Kind;
    if left == 0 {
        return Err(ValueError::TooDeep { max });
    }
    let items = |items: wire::Items| -> Result<Vec<Value>, ValueError> {
        items
            .items
            .into_iter()
            .map(|v| from_wire(v, left - 1, max))
            .collect()
    };
    Ok(match value.kind {
        None | Some(Kind::None(_)) => Value::None,
        Some(Kind::Bool(b)) => Value::Bool(b),
        Some(Kind::Int(i)) => Value::Int(i),
        Some(Kind::BigInt(b)) => {
            if b.is_empty() {
                return Err(ValueError::BadBigInt);
            }
            Value::from(BigInt::from_signed_bytes_be(&b))
        }
        Some(Kind::Float(f)) => Value::Float(f),
        Some(Kind::Str(s)) => Value::Str(s),
        Some(Kind::Bytes(b)) => Value::Bytes(b),
        Some(Kind::List(i)) => Value::List(items(i)?),
        // Packed lists: items are one level below the list, as in `list`.
        Some(Kind::IntList(l)) if left > 1 || l.items.is_empty() => {
            Value::List(l.items.into_iter().map(Value::Int).collect())
        }
        Some(Kind::FloatList(l)) if left > 1 || l.items.is_empty() => {
            Value::List(l.items.into_iter().map(Value::Float).collect())
        }
        Some(Kind::IntList(_) | Kind::FloatList(_)) => return Err(ValueError::TooDeep { max }),
        Some(Kind::Tuple(i)) => Value::Tuple(items(i)?),
        Some(Kind::Set(i)) => Value::Set(items(i)?),
        Some(Kind::Frozenset(i)) => Value::FrozenSet(items(i)?),
        Some(Kind::Dict(d)) => {
            if d.keys.len() != d.values.len() {
                return Err(ValueError::DictLengths {
                    keys: d.keys.len(),
                    values: d.values.len(),
                });
            }
            let mut entries = Vec::with_capacity(d.keys.len());
            for (k, v) in d.keys.into_iter().zip(d.values) {
                entries.push((from_wire(k, left - 1, max)?, from_wire(v, left - 1, max)?));
            }
            Value::Dict(entries)
        }
        Some(Kind::Pickle(p)) => Value::Pickle(p),
        Some(Kind::Flat(f)) => crate::flat::decode(f.nodes, left, max)?,
        Some(
            Kind::ListLen(_)
            | Kind::TupleLen(_)
            | Kind::SetLen(_)
            | Kind::FrozensetLen(_)
            | Kind::DictLen(_)
            | Kind::RecordHeader(_),
        ) => {
            return Err(ValueError::Malformed {
                kind: "flat",
                reason: "a container header outside a flat value".into(),
            })
        }
        Some(Kind::Bytearray(b)) => Value::ByteArray(b),
        Some(Kind::Datetime(d)) => {
            kinds::check_datetime(&d)?;
            Value::DateTime(d)
        }
        Some(Kind::Date(d)) => {
            kinds::check_date_value(&d)?;
            Value::Date(d)
        }
        Some(Kind::Time(t)) => {
            kinds::check_time(&t)?;
            Value::Time(t)
        }
        Some(Kind::Timedelta(t)) => {
            kinds::check_timedelta(&t)?;
            Value::TimeDelta(t)
        }
        Some(Kind::Decimal(d)) => {
            kinds::check_decimal(&d)?;
            Value::Decimal(d)
        }
        Some(Kind::Uuid(u)) => Value::Uuid(kinds::uuid_from_wire(&u)?),
        Some(Kind::Complex(c)) => Value::Complex {
            re: c.real,
            im: c.imag,
        },
        Some(Kind::Fraction(f)) => Value::Fraction(Box::new(kinds::fraction_from_wire(*f)?)),
        Some(Kind::Ndarray(a)) => {
            a.check()?;
            Value::NdArray(Box::new(a))
        }
        Some(Kind::Record(r)) => {
            if r.field_names.len() != r.fields.len() {
                return Err(ValueError::Malformed {
                    kind: "record",
                    reason: format!(
                        "{} field names but {} fields",
                        r.field_names.len(),
                        r.fields.len()
                    ),
                });
            }
            let kind = RecordKind::try_from(r.kind).unwrap_or(RecordKind::Unspecified);
            let mut fields = Vec::with_capacity(r.fields.len());
            for (name, v) in r.field_names.into_iter().zip(r.fields) {
                fields.push((name, from_wire(v, left - 1, max)?));
            }
            Value::Record(Box::new(Record {
                type_name: r.type_name,
                kind,
                fields,
            }))
        }
    })
}

impl TryFrom<wire::Value> for Value {
    type Error = ValueError;

    /// Converts with the default depth limit, [`MAX_VALUE_DEPTH`].
    fn try_from(value: wire::Value) -> Result<Self, Self::Error> {
        Value::from_wire(value, MAX_VALUE_DEPTH)
    }
}

impl From<Value> for wire::Value {
    /// Nested messages for a value up to [`crate::NESTED_MAX_DEPTH`] levels
    /// deep, the flat encoding (`Value.flat`) for a deeper one.
    fn from(value: Value) -> Self {
        if let Value::Encoded(b) = value {
            return encoded_to_wire(b);
        }
        if crate::flat::deeper_than(&value, crate::NESTED_MAX_DEPTH) {
            crate::flat::encode(value)
        } else {
            nested(value)
        }
    }
}

/// The wire form of [`Value::Encoded`] bytes; bytes that are not a value
/// (never made by pyrpc's encoders) read as `None`.
pub(crate) fn encoded_to_wire(b: Bytes) -> wire::Value {
    use prost::Message;
    wire::Value::decode(b).unwrap_or_default()
}

/// A list's wire form: `int_list` / `float_list` when its items are all
/// ints / all floats (PROTOCOL.md §5, "Packed lists"), `list` otherwise.
fn packed(v: Vec<Value>) -> wire::value::Kind {
    use wire::value::Kind;
    match v.first() {
        Some(Value::Int(_)) if v.iter().all(|x| matches!(x, Value::Int(_))) => {
            Kind::IntList(wire::IntList {
                items: v.iter().filter_map(Value::as_i64).collect(),
            })
        }
        Some(Value::Float(_)) if v.iter().all(|x| matches!(x, Value::Float(_))) => {
            Kind::FloatList(wire::FloatList {
                items: v.iter().filter_map(Value::as_f64).collect(),
            })
        }
        _ => Kind::List(wire::Items {
            items: v.into_iter().map(nested).collect(),
        }),
    }
}

/// The nested-message form of a value (recursive: only for shallow values).
fn nested(value: Value) -> wire::Value {
    {
        use wire::value::Kind;
        fn items(v: Vec<Value>) -> wire::Items {
            wire::Items {
                items: v.into_iter().map(nested).collect(),
            }
        }
        let kind = match value {
            Value::None => Kind::None(wire::NoneValue {}),
            Value::Bool(b) => Kind::Bool(b),
            Value::Int(i) => Kind::Int(i),
            Value::BigInt(b) => match i64::try_from(&b) {
                Ok(i) => Kind::Int(i),
                Err(_) => Kind::BigInt(Bytes::from(b.to_signed_bytes_be())),
            },
            Value::Float(f) => Kind::Float(f),
            Value::Str(s) => Kind::Str(s),
            Value::Bytes(b) => Kind::Bytes(b),
            Value::List(v) => packed(v),
            Value::Tuple(v) => Kind::Tuple(items(v)),
            Value::Set(v) => Kind::Set(items(v)),
            Value::FrozenSet(v) => Kind::Frozenset(items(v)),
            Value::Dict(entries) => {
                let (keys, values) = entries
                    .into_iter()
                    .map(|(k, v)| (nested(k), nested(v)))
                    .unzip();
                Kind::Dict(wire::Dict { keys, values })
            }
            Value::Pickle(p) => Kind::Pickle(p),
            Value::ByteArray(b) => Kind::Bytearray(b),
            Value::DateTime(d) => Kind::Datetime(d),
            Value::Date(d) => Kind::Date(d),
            Value::Time(t) => Kind::Time(t),
            Value::TimeDelta(t) => Kind::Timedelta(t),
            Value::Decimal(d) => Kind::Decimal(d),
            Value::Uuid(u) => Kind::Uuid(Bytes::copy_from_slice(&u)),
            Value::Complex { re, im } => Kind::Complex(wire::Complex { real: re, imag: im }),
            Value::Fraction(f) => Kind::Fraction(Box::new(kinds::fraction_to_wire(&f))),
            Value::Record(r) => {
                let (field_names, fields) =
                    r.fields.into_iter().map(|(n, v)| (n, nested(v))).unzip();
                Kind::Record(Box::new(wire::Record {
                    type_name: r.type_name,
                    kind: r.kind as i32,
                    field_names,
                    fields,
                }))
            }
            Value::NdArray(a) => Kind::Ndarray(*a),
            Value::Encoded(b) => return encoded_to_wire(b),
        };
        wire::Value { kind: Some(kind) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn roundtrip(v: Value) -> Value {
        let bytes = wire::Value::from(v).encode_to_vec();
        let decoded = wire::Value::decode(bytes.as_slice()).unwrap();
        Value::try_from(decoded).unwrap()
    }

    #[test]
    fn shapes_survive_the_wire() {
        let v = Value::tuple([
            Value::tuple([Value::from(1)]),
            Value::dict([
                (Value::from("foo"), Value::from("foo")),
                (Value::tuple([Value::from(1), Value::from(2)]), Value::None),
            ]),
            Value::Set(vec![Value::from(1)]),
            Value::FrozenSet(vec![Value::from("x")]),
            Value::list([
                Value::from(1.5),
                Value::from(true),
                Value::Bytes(Bytes::from_static(b"\x00\xff")),
            ]),
        ]);
        assert_eq!(roundtrip(v.clone()), v);
    }

    #[test]
    fn ints_of_any_size_round_trip_and_stay_canonical() {
        for v in [
            Value::from(0),
            Value::from(i64::MIN),
            Value::from(i64::MAX),
            Value::from(u64::MAX),
            Value::from(i128::MIN),
            Value::from(u128::MAX),
            Value::from(BigInt::from(2).pow(1000)),
            Value::from(-BigInt::from(2).pow(1000)),
        ] {
            assert_eq!(roundtrip(v.clone()), v);
        }
        assert_eq!(Value::from(5u64), Value::Int(5));
        assert_eq!(Value::from(BigInt::from(-7)), Value::Int(-7));
        assert!(matches!(Value::from(u64::MAX), Value::BigInt(_)));
    }

    #[test]
    fn new_kinds_round_trip() {
        let dt = DateTime {
            year: 2024,
            month: 2,
            day: 29,
            hour: 23,
            minute: 59,
            second: 58,
            microsecond: 123_456,
            utc_offset_us: Some(-19_800_000_000),
            fold: 1,
        };
        let record = Record::new("app:Point", RecordKind::Dataclass)
            .field("x", 1)
            .field("tags", Value::list([Value::from("a")]));
        for v in [
            Value::from(dt),
            Value::from(Date {
                year: 1,
                month: 1,
                day: 1,
            }),
            Value::from(Time {
                hour: 1,
                minute: 2,
                second: 3,
                microsecond: 4,
                utc_offset_us: None,
                fold: 0,
            }),
            Value::from(TimeDelta {
                days: -1,
                seconds: 86_399,
                microseconds: 999_999,
            }),
            Value::Decimal("-0".into()),
            Value::Decimal("1E+999999999999".into()),
            Value::Uuid([7; 16]),
            Value::Complex { re: 1.5, im: -0.0 },
            Value::from(Fraction::new(BigInt::from(-2).pow(100), BigInt::from(3)).unwrap()),
            Value::ByteArray(Bytes::from_static(b"ab")),
            Value::from(record),
        ] {
            assert_eq!(roundtrip(v.clone()), v);
        }
    }

    #[test]
    fn malformed_new_kinds_are_errors() {
        use wire::value::Kind;
        let bad = [
            Kind::Uuid(Bytes::from_static(&[1; 15])),
            Kind::Decimal("1.2.3".into()),
            Kind::Date(Date {
                year: 2023,
                month: 2,
                day: 29,
            }),
            Kind::Record(Box::new(wire::Record {
                type_name: "a:B".into(),
                kind: 1,
                field_names: vec!["x".into()],
                fields: vec![],
            })),
        ];
        for kind in bad {
            let err = Value::try_from(wire::Value { kind: Some(kind) }).unwrap_err();
            assert!(matches!(err, ValueError::Malformed { .. }), "{err}");
        }
    }

    #[test]
    fn big_int_that_fits_decodes_as_int() {
        let w = wire::Value {
            kind: Some(wire::value::Kind::BigInt(Bytes::from_static(&[0x01, 0x00]))),
        };
        assert_eq!(Value::try_from(w).unwrap(), Value::Int(256));
    }

    #[test]
    fn empty_big_int_is_an_error() {
        let w = wire::Value {
            kind: Some(wire::value::Kind::BigInt(Bytes::new())),
        };
        assert_eq!(Value::try_from(w), Err(ValueError::BadBigInt));
    }

    #[test]
    fn dict_with_uneven_keys_and_values_is_an_error() {
        let w = wire::Value {
            kind: Some(wire::value::Kind::Dict(wire::Dict {
                keys: vec![wire::Value::from(Value::from(1))],
                values: vec![],
            })),
        };
        assert_eq!(
            Value::try_from(w),
            Err(ValueError::DictLengths { keys: 1, values: 0 })
        );
    }

    #[test]
    fn packed_lists_read_as_lists_packed_or_not() {
        use prost::Message;
        let ints = Value::list([Value::from(1), Value::from(-2)]);
        assert_eq!(roundtrip(ints.clone()), ints);
        let floats = Value::list([Value::from(0.5)]);
        assert_eq!(roundtrip(floats.clone()), floats);
        // `IntList.items` unpacked (two varint fields), as protobuf allows.
        let w = wire::Value::decode(&[0x82, 0x02, 0x04, 0x08, 0x02, 0x08, 0x03][..]).unwrap();
        assert_eq!(Value::from_wire(w.clone(), 2), Ok(ints));
        // The items are one level below the list.
        assert_eq!(Value::from_wire(w, 1), Err(ValueError::TooDeep { max: 1 }));
    }

    #[test]
    fn depth_is_bounded_both_ways() {
        let mut v = Value::from(1);
        for _ in 0..MAX_VALUE_DEPTH - 1 {
            v = Value::list([v]);
        }
        assert_eq!(v.depth(), MAX_VALUE_DEPTH);
        assert!(v.check_depth(MAX_VALUE_DEPTH).is_ok());
        assert_eq!(roundtrip(v.clone()), v);
        let deeper = Value::list([v]);
        assert_eq!(
            deeper.check_depth(MAX_VALUE_DEPTH),
            Err(ValueError::TooDeep {
                max: MAX_VALUE_DEPTH
            })
        );
        assert_eq!(
            Value::try_from(wire::Value::from(deeper)),
            Err(ValueError::TooDeep {
                max: MAX_VALUE_DEPTH
            })
        );
    }

    #[test]
    fn missing_kind_reads_as_none() {
        assert_eq!(
            Value::try_from(wire::Value { kind: None }).unwrap(),
            Value::None
        );
    }

    #[test]
    fn bytes_decode_without_copying() {
        let buf = Bytes::from(
            wire::Value::from(Value::Bytes(Bytes::from(vec![7u8; 1024]))).encode_to_vec(),
        );
        let decoded = wire::Value::decode(buf.clone()).unwrap();
        let Some(wire::value::Kind::Bytes(b)) = decoded.kind else {
            panic!("expected bytes")
        };
        let inside = buf.as_ptr_range();
        assert!(
            inside.contains(&b.as_ptr()),
            "payload was copied out of the frame buffer"
        );
    }

    #[test]
    fn display_is_python_repr() {
        let cases = [
            (Value::None, "None"),
            (Value::from(true), "True"),
            (Value::from(1.0), "1.0"),
            (Value::from(f64::NAN), "nan"),
            (Value::from("it's"), "\"it's\""),
            (Value::from("a\nb"), "'a\\nb'"),
            (Value::Bytes(Bytes::from_static(b"a\x00")), "b'a\\x00'"),
            (Value::tuple([]), "()"),
            (Value::tuple([Value::from(1)]), "(1,)"),
            (Value::Set(vec![]), "set()"),
            (Value::FrozenSet(vec![Value::from(1)]), "frozenset({1})"),
            (Value::from((1, "x")), "(1, 'x')"),
            (
                Value::from(TimeDelta {
                    days: -1,
                    seconds: 86_399,
                    microseconds: 0,
                }),
                "datetime.timedelta(days=-1, seconds=86399)",
            ),
            (
                Value::Uuid([0x12; 16]),
                "UUID('12121212-1212-1212-1212-121212121212')",
            ),
            (Value::Complex { re: 1.0, im: -2.5 }, "complex(1.0, -2.5)"),
            (Value::Decimal("1.50".into()), "Decimal('1.50')"),
        ];
        for (v, repr) in cases {
            assert_eq!(v.to_string(), repr);
        }
    }

    #[test]
    fn accessors() {
        let d = Value::dict([(Value::from("a"), Value::from(1))]);
        assert_eq!(d.get("a").and_then(Value::as_i64), Some(1));
        assert_eq!(d.get("b"), None);
        assert_eq!(
            Value::from(vec![1, 2]).as_items().map(<[Value]>::len),
            Some(2)
        );
        assert_eq!(Value::from(Some("x")).as_str(), Some("x"));
        assert!(Value::from(None::<i32>).is_none());
    }
}
