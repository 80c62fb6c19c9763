//! Serde support for [`Value`]: [`to_value`] and [`from_value`], so Rust code
//! can send and receive its own types.
//!
//! The mapping follows Python's shapes:
//!
//! | Rust (serde data model)                   | [`Value`]                              |
//! |-------------------------------------------|----------------------------------------|
//! | `bool`                                    | `Bool`                                 |
//! | integers (`i128`/`u128`/`u64` included)   | `Int`, or `BigInt` outside `i64`       |
//! | `f32`, `f64`                              | `Float` (an `Int` is accepted as well) |
//! | `char`, `String`, `&str`                  | `Str`                                  |
//! | bytes (`serde_bytes`, `bytes::Bytes`)     | `Bytes` (`Vec<u8>` also reads `Bytes`) |
//! | `Option::None`, `()`, unit structs        | `None` (`()` also reads an empty tuple) |
//! | `Vec`, slices, sets, sequences            | `List` (reads `Tuple`/`Set`/`FrozenSet` too) |
//! | tuples, tuple structs                     | `Tuple` (reads `List` too)             |
//! | structs                                   | `Dict` with `str` keys                 |
//! | maps                                      | `Dict` (keys of any shape)             |
//! | unit enum variants                        | `Str` (the variant name)               |
//! | other enum variants                       | `{variant: payload}`                   |
//!
//! A [`Value`] inside a serde type passes through [`to_value`] and
//! [`from_value`] unchanged (sets, big ints and pickles included).
//!
//! Errors name the place that did not fit, as a path from the top: `.field`
//! for struct fields and `str` keys, `[i]` for items, `[key]` for other keys,
//! e.g. `at .points[1].x: expected int, got str`.

use std::fmt;

use bytes::Bytes;
use serde::de::{self, Deserialize, DeserializeOwned, Visitor};
use serde::ser::{self, Serialize};

use crate::value::Value;

/// A value that did not fit: where, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SerdeError {
    /// Where, from the top: `.field`, `[index]`, `[key]`; empty at the top.
    pub path: String,
    /// What did not fit.
    pub message: String,
}

impl SerdeError {
    fn new_display(e: impl fmt::Display) -> Self {
        SerdeError::new(e.to_string())
    }

    fn new(message: impl Into<String>) -> Self {
        SerdeError {
            path: String::new(),
            message: message.into(),
        }
    }

    /// Prefixes the path with one more step outwards.
    fn at(mut self, step: &Step<'_>) -> Self {
        self.path = format!("{step}{}", self.path);
        self
    }
}

impl fmt::Display for SerdeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "at {}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for SerdeError {}

impl ser::Error for SerdeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        SerdeError::new(msg.to_string())
    }
}

impl de::Error for SerdeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        SerdeError::new(msg.to_string())
    }
}

/// One step of a path.
enum Step<'a> {
    Index(usize),
    Key(&'a Value),
}

impl fmt::Display for Step<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Index(i) => write!(f, "[{i}]"),
            Step::Key(Value::Str(s))
                if !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || c == '_') =>
            {
                write!(f, ".{s}")
            }
            Step::Key(k) => write!(f, "[{k}]"),
        }
    }
}

/// Converts any serializable value to a [`Value`].
///
/// # Errors
///
/// When the type's `Serialize` implementation fails (e.g. a `Mutex` that is
/// poisoned); every shape of the serde data model has a [`Value`].
///
/// # Examples
///
/// ```
/// use pyrpc_proto::{to_value, Value};
///
/// #[derive(serde::Serialize)]
/// struct Point { x: i32, y: i32 }
///
/// let v = to_value(&(Point { x: 1, y: 2 }, "label", [1.5, 2.5])).unwrap();
/// assert_eq!(v.to_string(), "({'x': 1, 'y': 2}, 'label', (1.5, 2.5))");
/// ```
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value, SerdeError> {
    value.serialize(ValueSerializer)
}

/// Converts a [`Value`] to any deserializable type.
///
/// # Errors
///
/// A [`SerdeError`] naming the path of the part that did not fit.
///
/// # Examples
///
/// ```
/// use pyrpc_proto::{from_value, Value};
///
/// #[derive(serde::Deserialize, Debug, PartialEq)]
/// struct Point { x: i32, y: i32 }
///
/// let v = Value::dict([(Value::from("x"), Value::from(1)), (Value::from("y"), Value::from(2))]);
/// assert_eq!(from_value::<Point>(v).unwrap(), Point { x: 1, y: 2 });
///
/// let bad = Value::list([Value::dict([(Value::from("x"), Value::from("one"))])]);
/// let e = from_value::<Vec<Point>>(bad).unwrap_err();
/// assert_eq!(e.to_string(), "at [0].x: expected int, got str");
/// ```
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, SerdeError> {
    T::deserialize(value)
}

// ===== Serialize and Deserialize for Value =====

/// Newtype names marking the shapes serde has no word for, so that a
/// [`Value`] inside a serde type survives [`to_value`] unchanged. Other
/// serializers see plain newtypes: a set as a sequence, a big int as its
/// decimal string, a pickle as bytes.
const SET: &str = "$pyrpc::set";
const FROZENSET: &str = "$pyrpc::frozenset";
const BIG_INT: &str = "$pyrpc::big_int";
const PICKLE: &str = "$pyrpc::pickle";
/// The kinds beyond the builtin containers (dates, Decimal, records, ...):
/// their protobuf encoding as bytes, which [`to_value`] decodes back.
const WIRE: &str = "$pyrpc::wire";
/// Asked for by `impl Deserialize for Value`: our deserializer answers with
/// the protobuf encoding of the whole value, so tuples and sets keep their
/// shape; other deserializers see a plain newtype.
const WHOLE: &str = "$pyrpc::value";

/// Items as a serde sequence.
struct SeqOf<'a>(&'a [Value]);

impl Serialize for SeqOf<'_> {
    fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0)
    }
}

impl Serialize for Value {
    /// Through [`to_value`], every value comes back as itself. Other
    /// serializers (e.g. JSON) see a tuple as a sequence, a set as a
    /// sequence, an int beyond 128 bits as its decimal string and a dict as
    /// a map.
    fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use ser::SerializeTuple;
        match self {
            Value::None => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::BigInt(b) => {
                if let Ok(i) = i128::try_from(b) {
                    s.serialize_i128(i)
                } else if let Ok(u) = u128::try_from(b) {
                    s.serialize_u128(u)
                } else {
                    s.serialize_newtype_struct(BIG_INT, &b.to_string())
                }
            }
            Value::Float(f) => s.serialize_f64(*f),
            Value::Str(v) => s.serialize_str(v),
            Value::Bytes(b) => s.serialize_bytes(b),
            Value::List(items) => s.collect_seq(items),
            Value::Tuple(items) => {
                let mut t = s.serialize_tuple(items.len())?;
                for item in items {
                    t.serialize_element(item)?;
                }
                t.end()
            }
            Value::Set(items) => s.serialize_newtype_struct(SET, &SeqOf(items)),
            Value::FrozenSet(items) => s.serialize_newtype_struct(FROZENSET, &SeqOf(items)),
            Value::Dict(entries) => s.collect_map(entries.iter().map(|(k, v)| (k, v))),
            Value::Pickle(p) => s.serialize_newtype_struct(PICKLE, &serde_bytes_ref(p)),
            other => {
                use prost::Message;
                let encoded = crate::wire::Value::from(other.clone()).encode_to_vec();
                let bytes = serde_bytes_ref(&encoded);
                s.serialize_newtype_struct(WIRE, &bytes)
            }
        }
    }
}

/// Bytes serialized as bytes (not as a sequence of ints).
fn serde_bytes_ref(b: &[u8]) -> impl Serialize + '_ {
    struct B<'a>(&'a [u8]);
    impl Serialize for B<'_> {
        fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }
    B(b)
}

impl<'de> de::Deserialize<'de> for Value {
    /// Through [`from_value`], every value comes back as itself. From other
    /// deserializers: unit is `None`, sequences are lists, maps are dicts.
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        d.deserialize_newtype_struct(WHOLE, AnyValue { whole: true })
    }
}

/// Builds a [`Value`] from whatever a deserializer offers.
struct AnyValue {
    /// True at the top, where our deserializer answers with the encoded value.
    whole: bool,
}

impl<'de> Visitor<'de> for AnyValue {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_newtype_struct<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(AnyValue { whole: false })
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::None)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::None)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(AnyValue { whole: false })
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u128<E>(self, v: u128) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Value, E> {
        if self.whole {
            use prost::Message;
            let w = crate::wire::Value::decode(v).map_err(E::custom)?;
            return Value::try_from(w).map_err(E::custom);
        }
        Ok(Value::Bytes(Bytes::copy_from_slice(v)))
    }
    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Value, E> {
        if self.whole {
            return self.visit_bytes(&v);
        }
        Ok(Value::Bytes(Bytes::from(v)))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(v) = seq.next_element_seed(AnySeed)? {
            items.push(v);
        }
        Ok(Value::List(items))
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(4096));
        while let Some(k) = map.next_key_seed(AnySeed)? {
            let v = map.next_value_seed(AnySeed)?;
            entries.push((k, v));
        }
        Ok(Value::Dict(entries))
    }
}

/// Deserializes a nested [`Value`].
struct AnySeed;

impl<'de> de::DeserializeSeed<'de> for AnySeed {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
}

// ===== Serializer =====

mod deserializer;
mod serializer;
#[cfg(test)]
mod tests;

use serializer::ValueSerializer;
