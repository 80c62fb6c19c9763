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
use serde::de::{self, Deserialize, DeserializeOwned, IntoDeserializer, Visitor};
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

/// Serializes into a [`Value`].
struct ValueSerializer;

/// Collects the items of a sequence, tuple or the payload of a variant.
struct SeqBuilder {
    items: Vec<Value>,
    tuple: bool,
    variant: Option<&'static str>,
}

impl SeqBuilder {
    fn finish(self) -> Value {
        let v = if self.tuple {
            Value::Tuple(self.items)
        } else {
            Value::List(self.items)
        };
        wrap_variant(self.variant, v)
    }
}

/// Collects the entries of a map or struct.
struct MapBuilder {
    entries: Vec<(Value, Value)>,
    key: Option<Value>,
    variant: Option<&'static str>,
}

fn wrap_variant(variant: Option<&'static str>, v: Value) -> Value {
    match variant {
        Some(name) => Value::Dict(vec![(Value::from(name), v)]),
        None => v,
    }
}

impl ser::Serializer for ValueSerializer {
    type Ok = Value;
    type Error = SerdeError;
    type SerializeSeq = SeqBuilder;
    type SerializeTuple = SeqBuilder;
    type SerializeTupleStruct = SeqBuilder;
    type SerializeTupleVariant = SeqBuilder;
    type SerializeMap = MapBuilder;
    type SerializeStruct = MapBuilder;
    type SerializeStructVariant = MapBuilder;

    fn serialize_bool(self, v: bool) -> Result<Value, SerdeError> {
        Ok(Value::Bool(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Value, SerdeError> {
        Ok(Value::from(v))
    }
    fn serialize_i16(self, v: i16) -> Result<Value, SerdeError> {
        Ok(Value::from(v))
    }
    fn serialize_i32(self, v: i32) -> Result<Value, SerdeError> {
        Ok(Value::from(v))
    }
    fn serialize_i64(self, v: i64) -> Result<Value, SerdeError> {
        Ok(Value::from(v))
    }
    fn serialize_i128(self, v: i128) -> Result<Value, SerdeError> {
        Ok(Value::from(v))
    }
    fn serialize_u8(self, v: u8) -> Result<Value, SerdeError> {
        Ok(Value::from(v))
    }
    fn serialize_u16(self, v: u16) -> Result<Value, SerdeError> {
        Ok(Value::from(v))
    }
    fn serialize_u32(self, v: u32) -> Result<Value, SerdeError> {
        Ok(Value::from(v))
    }
    fn serialize_u64(self, v: u64) -> Result<Value, SerdeError> {
        Ok(Value::from(v))
    }
    fn serialize_u128(self, v: u128) -> Result<Value, SerdeError> {
        Ok(Value::from(v))
    }
    fn serialize_f32(self, v: f32) -> Result<Value, SerdeError> {
        Ok(Value::from(v))
    }
    fn serialize_f64(self, v: f64) -> Result<Value, SerdeError> {
        Ok(Value::from(v))
    }
    fn serialize_char(self, v: char) -> Result<Value, SerdeError> {
        Ok(Value::Str(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> Result<Value, SerdeError> {
        Ok(Value::from(v))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Value, SerdeError> {
        Ok(Value::Bytes(Bytes::copy_from_slice(v)))
    }
    fn serialize_none(self) -> Result<Value, SerdeError> {
        Ok(Value::None)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Value, SerdeError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Value, SerdeError> {
        Ok(Value::None)
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<Value, SerdeError> {
        Ok(Value::None)
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<Value, SerdeError> {
        Ok(Value::from(variant))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<Value, SerdeError> {
        let inner = value.serialize(self)?;
        // The shapes serde has no word for, marked by `impl Serialize for Value`.
        Ok(match (name, inner) {
            (SET, Value::List(items)) => Value::Set(items),
            (FROZENSET, Value::List(items)) => Value::FrozenSet(items),
            (BIG_INT, Value::Str(digits)) => match digits.parse::<num_bigint::BigInt>() {
                Ok(b) => Value::from(b),
                Err(_) => Value::Str(digits),
            },
            (PICKLE, Value::Bytes(b)) => Value::Pickle(b),
            (WIRE, Value::Bytes(b)) => {
                use prost::Message;
                let w = crate::wire::Value::decode(b).map_err(SerdeError::new_display)?;
                Value::try_from(w).map_err(SerdeError::new_display)?
            }
            (_, inner) => inner,
        })
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Value, SerdeError> {
        Ok(wrap_variant(Some(variant), value.serialize(self)?))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<SeqBuilder, SerdeError> {
        Ok(SeqBuilder {
            items: Vec::with_capacity(len.unwrap_or(0).min(4096)),
            tuple: false,
            variant: None,
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<SeqBuilder, SerdeError> {
        Ok(SeqBuilder {
            items: Vec::with_capacity(len),
            tuple: true,
            variant: None,
        })
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<SeqBuilder, SerdeError> {
        self.serialize_tuple(len)
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<SeqBuilder, SerdeError> {
        Ok(SeqBuilder {
            items: Vec::with_capacity(len),
            tuple: true,
            variant: Some(variant),
        })
    }
    fn serialize_map(self, len: Option<usize>) -> Result<MapBuilder, SerdeError> {
        Ok(MapBuilder {
            entries: Vec::with_capacity(len.unwrap_or(0).min(4096)),
            key: None,
            variant: None,
        })
    }
    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<MapBuilder, SerdeError> {
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<MapBuilder, SerdeError> {
        Ok(MapBuilder {
            entries: Vec::with_capacity(len),
            key: None,
            variant: Some(variant),
        })
    }
}

impl ser::SerializeSeq for SeqBuilder {
    type Ok = Value;
    type Error = SerdeError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerdeError> {
        let i = self.items.len();
        let v = value
            .serialize(ValueSerializer)
            .map_err(|e| e.at(&Step::Index(i)))?;
        self.items.push(v);
        Ok(())
    }
    fn end(self) -> Result<Value, SerdeError> {
        Ok(self.finish())
    }
}

impl ser::SerializeTuple for SeqBuilder {
    type Ok = Value;
    type Error = SerdeError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerdeError> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<Value, SerdeError> {
        Ok(self.finish())
    }
}

impl ser::SerializeTupleStruct for SeqBuilder {
    type Ok = Value;
    type Error = SerdeError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerdeError> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<Value, SerdeError> {
        Ok(self.finish())
    }
}

impl ser::SerializeTupleVariant for SeqBuilder {
    type Ok = Value;
    type Error = SerdeError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerdeError> {
        ser::SerializeSeq::serialize_element(self, value)
    }
    fn end(self) -> Result<Value, SerdeError> {
        Ok(self.finish())
    }
}

impl ser::SerializeMap for MapBuilder {
    type Ok = Value;
    type Error = SerdeError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), SerdeError> {
        self.key = Some(key.serialize(ValueSerializer)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SerdeError> {
        let key = self
            .key
            .take()
            .ok_or_else(|| SerdeError::new("a map value came before its key"))?;
        let v = value
            .serialize(ValueSerializer)
            .map_err(|e| e.at(&Step::Key(&key)))?;
        self.entries.push((key, v));
        Ok(())
    }
    fn end(self) -> Result<Value, SerdeError> {
        Ok(wrap_variant(self.variant, Value::Dict(self.entries)))
    }
}

impl ser::SerializeStruct for MapBuilder {
    type Ok = Value;
    type Error = SerdeError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        name: &'static str,
        value: &T,
    ) -> Result<(), SerdeError> {
        let key = Value::from(name);
        let v = value
            .serialize(ValueSerializer)
            .map_err(|e| e.at(&Step::Key(&key)))?;
        self.entries.push((key, v));
        Ok(())
    }
    fn end(self) -> Result<Value, SerdeError> {
        Ok(wrap_variant(self.variant, Value::Dict(self.entries)))
    }
}

impl ser::SerializeStructVariant for MapBuilder {
    type Ok = Value;
    type Error = SerdeError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        name: &'static str,
        value: &T,
    ) -> Result<(), SerdeError> {
        ser::SerializeStruct::serialize_field(self, name, value)
    }
    fn end(self) -> Result<Value, SerdeError> {
        ser::SerializeStruct::end(self)
    }
}

// ===== Deserializer =====

/// "expected {what}, got {type of v}".
fn expected(what: &str, v: &Value) -> SerdeError {
    SerdeError::new(format!("expected {what}, got {}", v.type_name()))
}

/// Visits an int with the narrowest visit method that holds it (`u64` before
/// `i128`, since the standard visitors for `u64` take no `i128`).
fn visit_int<'de, V: Visitor<'de>>(v: Value, visitor: V) -> Result<V::Value, SerdeError> {
    match v {
        Value::Int(i) => visitor.visit_i64(i),
        // A numpy scalar (or 0-d array) of integers.
        Value::NdArray(a) if a.shape.is_empty() => visit_int(a.to_nested(), visitor),
        Value::BigInt(b) => {
            if let Ok(u) = u64::try_from(&b) {
                visitor.visit_u64(u)
            } else if let Ok(i) = i128::try_from(&b) {
                visitor.visit_i128(i)
            } else if let Ok(u) = u128::try_from(&b) {
                visitor.visit_u128(u)
            } else {
                Err(SerdeError::new(format!("int {b} does not fit in 128 bits")))
            }
        }
        v => Err(expected("int", &v)),
    }
}

/// Items of a sequence, fed to a visitor; errors are located by index.
struct Items {
    iter: std::vec::IntoIter<Value>,
    next: usize,
}

impl Items {
    fn new(items: Vec<Value>) -> Self {
        Items {
            iter: items.into_iter(),
            next: 0,
        }
    }
}

impl<'de> de::SeqAccess<'de> for Items {
    type Error = SerdeError;
    fn next_element_seed<T: de::DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, SerdeError> {
        let Some(v) = self.iter.next() else {
            return Ok(None);
        };
        let i = self.next;
        self.next += 1;
        seed.deserialize(v)
            .map(Some)
            .map_err(|e| e.at(&Step::Index(i)))
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

/// Visits `items` as a sequence of exactly `len` items when `len` is given.
fn visit_items<'de, V: Visitor<'de>>(
    items: Vec<Value>,
    len: Option<usize>,
    visitor: V,
) -> Result<V::Value, SerdeError> {
    let n = items.len();
    if let Some(len) = len {
        if n != len {
            return Err(SerdeError::new(format!(
                "expected {len} item{}, got {n}",
                if len == 1 { "" } else { "s" }
            )));
        }
    }
    let mut access = Items::new(items);
    let out = visitor.visit_seq(&mut access)?;
    match access.iter.len() {
        0 => Ok(out),
        left => Err(SerdeError::new(format!(
            "expected {} items, got {n}",
            n - left
        ))),
    }
}

/// Entries of a dict, fed to a visitor; value errors are located by key.
struct Entries {
    iter: std::vec::IntoIter<(Value, Value)>,
    value: Option<(Value, Value)>,
}

impl<'de> de::MapAccess<'de> for Entries {
    type Error = SerdeError;
    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, SerdeError> {
        let Some((k, v)) = self.iter.next() else {
            return Ok(None);
        };
        let key = seed
            .deserialize(k.clone())
            .map_err(|e| e.at(&Step::Key(&k)))?;
        self.value = Some((k, v));
        Ok(Some(key))
    }
    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, SerdeError> {
        let (k, v) = self
            .value
            .take()
            .ok_or_else(|| SerdeError::new("a dict value was asked for before its key"))?;
        seed.deserialize(v).map_err(|e| e.at(&Step::Key(&k)))
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

fn visit_dict<'de, V: Visitor<'de>>(
    entries: Vec<(Value, Value)>,
    visitor: V,
) -> Result<V::Value, SerdeError> {
    visitor.visit_map(Entries {
        iter: entries.into_iter(),
        value: None,
    })
}

/// An enum: a `str` (unit variant) or a one-entry dict `{variant: payload}`.
struct Variant {
    name: Value,
    payload: Option<Value>,
}

impl<'de> de::EnumAccess<'de> for Variant {
    type Error = SerdeError;
    type Variant = Payload;
    fn variant_seed<V: de::DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Payload), SerdeError> {
        let name = seed.deserialize(self.name.clone())?;
        Ok((
            name,
            Payload {
                name: self.name,
                value: self.payload,
            },
        ))
    }
}

struct Payload {
    name: Value,
    value: Option<Value>,
}

impl Payload {
    fn take(self) -> Result<(Value, Value), SerdeError> {
        match self.value {
            Some(v) => Ok((self.name, v)),
            None => Err(SerdeError::new(format!(
                "variant {} needs a payload: send {{{}: ...}}",
                self.name, self.name
            ))),
        }
    }
}

impl<'de> de::VariantAccess<'de> for Payload {
    type Error = SerdeError;
    fn unit_variant(self) -> Result<(), SerdeError> {
        match self.value {
            None | Some(Value::None) => Ok(()),
            Some(v) => Err(expected("None", &v).at(&Step::Key(&self.name))),
        }
    }
    fn newtype_variant_seed<T: de::DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, SerdeError> {
        let (k, v) = self.take()?;
        seed.deserialize(v).map_err(|e| e.at(&Step::Key(&k)))
    }
    fn tuple_variant<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        let (k, v) = self.take()?;
        de::Deserializer::deserialize_tuple(v, len, visitor).map_err(|e| e.at(&Step::Key(&k)))
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        let (k, v) = self.take()?;
        de::Deserializer::deserialize_struct(v, "", fields, visitor)
            .map_err(|e| e.at(&Step::Key(&k)))
    }
}

impl<'de> IntoDeserializer<'de, SerdeError> for Value {
    type Deserializer = Value;
    fn into_deserializer(self) -> Value {
        self
    }
}

impl<'de> de::Deserializer<'de> for Value {
    type Error = SerdeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        match self {
            Value::None => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            v @ (Value::Int(_) | Value::BigInt(_)) => visit_int(v, visitor),
            Value::Float(f) => visitor.visit_f64(f),
            Value::Str(s) => visitor.visit_string(s),
            Value::Bytes(b) => visitor.visit_byte_buf(b.to_vec()),
            Value::List(v) | Value::Tuple(v) | Value::Set(v) | Value::FrozenSet(v) => {
                visit_items(v, None, visitor)
            }
            Value::Dict(d) => visit_dict(d, visitor),
            v @ Value::Pickle(_) => Err(SerdeError::new(format!(
                "a pickled value cannot be read into a Rust type ({})",
                v
            ))),
            Value::ByteArray(b) => visitor.visit_byte_buf(b.to_vec()),
            Value::Decimal(d) => visitor.visit_string(d),
            Value::Uuid(u) => visitor.visit_bytes(&u),
            Value::Complex { re, im } => {
                visit_items(vec![Value::Float(re), Value::Float(im)], None, visitor)
            }
            Value::Fraction(f) => visit_items(
                vec![Value::from(f.numerator), Value::from(f.denominator)],
                None,
                visitor,
            ),
            // An array reads as its elements, nested in lists along its shape.
            Value::NdArray(a) => a.to_nested().deserialize_any(visitor),
            Value::Encoded(b) => crate::raw::decode_value(b, crate::MAX_VALUE_DEPTH)
                .map_err(|e| SerdeError::new(e.to_string()))?
                .deserialize_any(visitor),
            // A record reads as the dict of its fields, so a Rust struct can
            // receive a dataclass or NamedTuple.
            Value::Record(r) => visit_dict(
                r.fields
                    .into_iter()
                    .map(|(k, v)| (Value::Str(k), v))
                    .collect(),
                visitor,
            ),
            v @ (Value::DateTime(_) | Value::Date(_) | Value::Time(_) | Value::TimeDelta(_)) => {
                Err(SerdeError::new(format!(
                    "a {} is read only into pyrpc_proto::Value ({v})",
                    v.type_name()
                )))
            }
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        match self {
            Value::Bool(b) => visitor.visit_bool(b),
            Value::NdArray(a) if a.shape.is_empty() => a.to_nested().deserialize_bool(visitor),
            v => Err(expected("bool", &v)),
        }
    }

    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        visit_int(self, visitor)
    }
    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        visit_int(self, visitor)
    }
    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        visit_int(self, visitor)
    }
    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        visit_int(self, visitor)
    }
    fn deserialize_i128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        visit_int(self, visitor)
    }
    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        visit_int(self, visitor)
    }
    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        visit_int(self, visitor)
    }
    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        visit_int(self, visitor)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        visit_int(self, visitor)
    }
    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        visit_int(self, visitor)
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        self.deserialize_f64(visitor)
    }
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        match self {
            Value::Float(f) => visitor.visit_f64(f),
            // Python passes 1 where 1.0 is meant; so do we.
            Value::Int(i) => visitor.visit_f64(i as f64),
            Value::NdArray(a) if a.shape.is_empty() => a.to_nested().deserialize_f64(visitor),
            v => Err(expected("float", &v)),
        }
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        match self {
            Value::Str(s) => {
                let mut chars = s.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => visitor.visit_char(c),
                    _ => Err(SerdeError::new(format!(
                        "expected a str of one character, got {}",
                        Value::Str(s)
                    ))),
                }
            }
            v => Err(expected("str", &v)),
        }
    }
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        match self {
            Value::Str(s) | Value::Decimal(s) => visitor.visit_string(s),
            v => Err(expected("str", &v)),
        }
    }
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        match self {
            Value::Bytes(b) | Value::ByteArray(b) => visitor.visit_byte_buf(b.to_vec()),
            Value::Uuid(u) => visitor.visit_bytes(&u),
            v => Err(expected("bytes", &v)),
        }
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        match self {
            Value::None => visitor.visit_none(),
            v => visitor.visit_some(v),
        }
    }
    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        match self {
            // `()` is also the empty tuple: no positional arguments.
            Value::None => visitor.visit_unit(),
            Value::Tuple(items) if items.is_empty() => visitor.visit_unit(),
            v => Err(expected("None", &v)),
        }
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        self.deserialize_unit(visitor)
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        if name == WHOLE {
            // A `Value` is asked for: hand it over whole (see `WHOLE`).
            use prost::Message;
            return visitor.visit_byte_buf(crate::wire::Value::from(self).encode_to_vec());
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        match self {
            Value::List(v) | Value::Tuple(v) | Value::Set(v) | Value::FrozenSet(v) => {
                visit_items(v, None, visitor)
            }
            // A `Vec<u8>` without serde_bytes reads Python bytes.
            Value::Bytes(b) => {
                visit_items(b.iter().map(|&x| Value::from(x)).collect(), None, visitor)
            }
            // An array reads as its elements, nested in lists along its shape.
            Value::NdArray(a) if !a.shape.is_empty() => a.to_nested().deserialize_seq(visitor),
            v => Err(expected("list", &v)),
        }
    }
    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        match self {
            Value::Tuple(v) | Value::List(v) => visit_items(v, Some(len), visitor),
            Value::NdArray(a) if !a.shape.is_empty() => {
                a.to_nested().deserialize_tuple(len, visitor)
            }
            v => Err(expected("tuple", &v)),
        }
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        match self {
            Value::Dict(d) => visit_dict(d, visitor),
            Value::Record(r) if r.kind != crate::RecordKind::Enum => {
                Value::Record(r).deserialize_any(visitor)
            }
            v => Err(expected("dict", &v)),
        }
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, SerdeError> {
        match self {
            name @ Value::Str(_) => visitor.visit_enum(Variant {
                name,
                payload: None,
            }),
            Value::Dict(mut d) if d.len() == 1 => {
                let (name, payload) = d.remove(0);
                visitor.visit_enum(Variant {
                    name,
                    payload: Some(payload),
                })
            }
            v => Err(expected("a variant name or a {variant: payload} dict", &v)),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        match self {
            Value::Str(s) => visitor.visit_string(s),
            v => Err(expected("str", &v)),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, SerdeError> {
        visitor.visit_unit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use num_bigint::BigInt;
    use serde::{Deserialize, Serialize};
    use std::collections::BTreeMap;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Point {
        x: i32,
        y: i32,
    }

    #[test]
    fn new_kinds_pass_through_serde_and_records_read_as_structs() {
        use crate::{Date, Record, RecordKind};
        let values = vec![
            Value::Decimal("-0".into()),
            Value::from(Date {
                year: 2024,
                month: 5,
                day: 6,
            }),
            Value::Uuid([1; 16]),
            Value::from(Record::new("geo:Point", RecordKind::Dataclass).field("x", 1)),
        ];
        let v = to_value(&values).unwrap();
        assert_eq!(v, Value::List(values.clone()));
        let back: Vec<Value> = from_value(v).unwrap();
        assert_eq!(back, values);
        let rec = Record::new("geo:Point", RecordKind::Dataclass)
            .field("x", 1)
            .field("y", -2);
        let p: Point = from_value(Value::from(rec)).unwrap();
        assert_eq!(p, Point { x: 1, y: -2 });
        let d: String = from_value(Value::Decimal("1.50".into())).unwrap();
        assert_eq!(d, "1.50");
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Shape {
        name: String,
        points: Vec<Point>,
        closed: Option<bool>,
        #[serde(with = "serde_bytes")]
        tag: Vec<u8>,
        kind: Kind,
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    enum Kind {
        Polygon,
        Circle { r: f64 },
        Scaled(f64, f64),
        Named(String),
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Pair(i64, String);

    fn round_trip<T>(v: &T) -> T
    where
        T: Serialize + DeserializeOwned,
    {
        from_value(to_value(v).expect("to_value")).expect("from_value")
    }

    #[test]
    fn shapes_map_to_python_shapes() {
        let s = Shape {
            name: "tri".into(),
            points: vec![Point { x: 0, y: 0 }, Point { x: 1, y: 2 }],
            closed: None,
            tag: vec![0, 255],
            kind: Kind::Polygon,
        };
        let v = to_value(&s).expect("to_value");
        assert_eq!(
            v.to_string(),
            "{'name': 'tri', 'points': [{'x': 0, 'y': 0}, {'x': 1, 'y': 2}], \
             'closed': None, 'tag': b'\\x00\\xff', 'kind': 'Polygon'}"
        );
        assert_eq!(round_trip(&s), s);
        assert_eq!(
            to_value(&Pair(1, "a".into())).expect("v").to_string(),
            "(1, 'a')"
        );
        assert_eq!(round_trip(&Pair(1, "a".into())), Pair(1, "a".into()));
        assert_eq!(
            to_value(&Kind::Circle { r: 1.0 }).expect("v").to_string(),
            "{'Circle': {'r': 1.0}}"
        );
        for k in [
            Kind::Polygon,
            Kind::Circle { r: 2.5 },
            Kind::Scaled(1.0, 2.0),
            Kind::Named("n".into()),
        ] {
            assert_eq!(round_trip(&k), k);
        }
    }

    #[test]
    fn big_ints_use_big_int_only_outside_i64() {
        assert_eq!(to_value(&5u128).expect("v"), Value::Int(5));
        assert!(matches!(to_value(&u128::MAX).expect("v"), Value::BigInt(_)));
        assert_eq!(round_trip(&u128::MAX), u128::MAX);
        assert_eq!(round_trip(&i128::MIN), i128::MIN);
        assert_eq!(round_trip(&u64::MAX), u64::MAX);
        let e = from_value::<u8>(Value::from(300)).expect_err("too big");
        assert!(e.message.contains("300"), "{e}");
        let huge = Value::from(BigInt::from(2).pow(200));
        assert_eq!(
            from_value::<i128>(huge).expect_err("huge").to_string(),
            format!("int {} does not fit in 128 bits", BigInt::from(2).pow(200))
        );
    }

    #[test]
    fn maps_keep_keys_of_any_shape() {
        let mut m = BTreeMap::new();
        m.insert((1, 2), "a");
        let v = to_value(&m).expect("v");
        assert_eq!(v.to_string(), "{(1, 2): 'a'}");
        let back: BTreeMap<(i32, i32), String> = from_value(v).expect("back");
        assert_eq!(back[&(1, 2)], "a");
    }

    #[test]
    fn reading_is_lenient_where_python_is() {
        // A list where a tuple is expected, an int where a float is.
        let t: (f64, String) =
            from_value(Value::list([Value::from(1), Value::from("x")])).expect("t");
        assert_eq!(t, (1.0, "x".to_owned()));
        // A set or tuple where a Vec is expected; bytes into Vec<u8>.
        let v: Vec<i32> = from_value(Value::Set(vec![Value::from(3)])).expect("v");
        assert_eq!(v, vec![3]);
        let b: Vec<u8> = from_value(Value::Bytes(Bytes::from_static(b"hi"))).expect("b");
        assert_eq!(b, b"hi");
    }

    #[test]
    fn values_inside_serde_types_keep_every_shape() {
        let v = Value::tuple([
            Value::Set(vec![Value::from(1)]),
            Value::FrozenSet(vec![Value::from("a")]),
            Value::from(BigInt::from(2).pow(300)),
            Value::Pickle(Bytes::from_static(b"p")),
            Value::dict([(Value::tuple([Value::from(1)]), Value::Bytes(Bytes::new()))]),
            Value::None,
        ]);
        let wrapped = (v.clone(), vec![v.clone()]);
        let back: (Value, Vec<Value>) = round_trip(&wrapped);
        assert_eq!(back, wrapped);
        assert_eq!(to_value(&v).expect("v"), v);
    }

    proptest::proptest! {
        #[test]
        fn rust_values_round_trip(
            a: i64, b: u128, c: i128, d: String, e: Option<bool>,
            f: Vec<(u8, char)>, g: BTreeMap<String, Vec<i32>>,
        ) {
            let t = (a, b, c, d, e, f, g);
            proptest::prop_assert_eq!(round_trip(&t), t);
        }
    }

    #[test]
    fn errors_name_the_path() {
        let v = Value::dict([
            (Value::from("name"), Value::from("s")),
            (
                Value::from("points"),
                Value::list([
                    Value::dict([
                        (Value::from("x"), Value::from(1)),
                        (Value::from("y"), Value::from(1)),
                    ]),
                    Value::dict([
                        (Value::from("x"), Value::from("one")),
                        (Value::from("y"), Value::from(1)),
                    ]),
                ]),
            ),
        ]);
        let e = from_value::<Shape>(v).expect_err("bad x");
        assert_eq!(e.path, ".points[1].x");
        assert_eq!(e.to_string(), "at .points[1].x: expected int, got str");

        let e = from_value::<Point>(Value::dict([(Value::from("x"), Value::from(1))]))
            .expect_err("missing y");
        assert_eq!(e.to_string(), "missing field `y`");

        let e = from_value::<(i32, i32)>(Value::tuple([Value::from(1)])).expect_err("short");
        assert_eq!(e.to_string(), "expected 2 items, got 1");

        let e = from_value::<BTreeMap<i32, bool>>(Value::dict([(Value::from(7), Value::from(1))]))
            .expect_err("bad value");
        assert_eq!(e.to_string(), "at [7]: expected bool, got int");

        let e = from_value::<Kind>(Value::from("Hexagon")).expect_err("variant");
        assert!(e.message.contains("unknown variant `Hexagon`"), "{e}");
    }
}
