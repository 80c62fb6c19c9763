//! [`Value`] to and from its generated protobuf message, [`wire::Value`].

use bytes::Bytes;
use num_bigint::BigInt;

use super::{Value, MAX_VALUE_DEPTH};
use crate::error::ValueError;
use crate::kinds::{self, Record, RecordKind};
use crate::wire;

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
            re: c.real.unwrap_or(0.0),
            im: c.imag.unwrap_or(0.0),
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
fn encoded_to_wire(b: Bytes) -> wire::Value {
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
            Value::Complex { re, im } => Kind::Complex(wire::Complex {
                real: complex_part(re),
                imag: complex_part(im),
            }),
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

/// A complex number's part as written: absent when it is +0.0 (what an
/// implicit-presence field would skip), present otherwise, so -0.0 keeps its
/// sign on the wire.
fn complex_part(x: f64) -> Option<f64> {
    (x.to_bits() != 0).then_some(x)
}
