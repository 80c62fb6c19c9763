//! The deserializer: a [`Value`] into any `Deserialize` type.

use serde::de::{self, IntoDeserializer, Visitor};

use super::{SerdeError, Step, WHOLE};
use crate::value::Value;

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
