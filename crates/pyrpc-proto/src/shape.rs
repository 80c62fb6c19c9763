//! [`Shape`]: how a Rust type lays out a call's arguments, found by asking
//! serde rather than guessing from the value.
//!
//! A typed call or handler takes its positional arguments as one Rust value.
//! A tuple `(a, b)` is the argument list itself, `()` is no arguments, and
//! anything else (a `String`, a struct, a `Vec`, an `Option`) is the *one*
//! argument: `|name: String|` handles `greet("Py")`, and
//! `call_typed("f", None::<i64>)` sends one `None`. The shape comes from the
//! first serde method the type calls, so a value never changes its meaning.
//! serde writes fixed-size arrays (`[T; N]`) as tuples too, so they are an
//! argument list as well; a `Vec` is one argument (a list).

use std::fmt;

use serde::de::{self, Deserialize, Visitor};
use serde::ser::{self, Impossible, Serialize};

/// How a type lays out a call's positional arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// `()`: no arguments.
    Unit,
    /// A tuple (or a fixed-size array): each element is one argument.
    Tuple,
    /// Anything else: the value is the only argument.
    One,
}

impl Shape {
    /// The shape of a value about to be sent.
    ///
    /// # Examples
    ///
    /// ```
    /// use pyrpc_proto::Shape;
    ///
    /// assert_eq!(Shape::of(&()), Shape::Unit);
    /// assert_eq!(Shape::of(&(1, "a")), Shape::Tuple);
    /// assert_eq!(Shape::of(&"a"), Shape::One);
    /// assert_eq!(Shape::of(&None::<i64>), Shape::One);
    /// ```
    pub fn of<T: Serialize + ?Sized>(value: &T) -> Shape {
        match value.serialize(SerProbe) {
            Err(Found(shape)) => shape,
            Ok(never) => match never {},
        }
    }

    /// The shape of a type about to be received.
    ///
    /// # Examples
    ///
    /// ```
    /// use pyrpc_proto::Shape;
    ///
    /// assert_eq!(Shape::of_type::<()>(), Shape::Unit);
    /// assert_eq!(Shape::of_type::<(String,)>(), Shape::Tuple);
    /// assert_eq!(Shape::of_type::<String>(), Shape::One);
    /// assert_eq!(Shape::of_type::<Vec<i64>>(), Shape::One);
    /// ```
    pub fn of_type<'de, T: Deserialize<'de>>() -> Shape {
        match T::deserialize(DeProbe) {
            Err(Found(shape)) => shape,
            // A type that deserializes without asking for anything is no
            // tuple: take it as one argument.
            Ok(_) => Shape::One,
        }
    }
}

/// The probes' "error": the shape they found.
#[derive(Debug)]
struct Found(Shape);

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "shape {:?}", self.0)
    }
}

impl std::error::Error for Found {}

impl ser::Error for Found {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        Found(Shape::One)
    }
}

impl de::Error for Found {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        Found(Shape::One)
    }
}

/// The uninhabited output of [`SerProbe`]: it always stops at the first call.
enum Never {}

// ===== impl SerProbe =====

struct SerProbe;

macro_rules! one {
    ($($name:ident($($arg:ty),*);)*) => {
        $(fn $name(self, $(_: $arg),*) -> Result<Never, Found> { Err(Found(Shape::One)) })*
    };
}

impl ser::Serializer for SerProbe {
    type Ok = Never;
    type Error = Found;
    type SerializeSeq = Impossible<Never, Found>;
    type SerializeTuple = Impossible<Never, Found>;
    type SerializeTupleStruct = Impossible<Never, Found>;
    type SerializeTupleVariant = Impossible<Never, Found>;
    type SerializeMap = Impossible<Never, Found>;
    type SerializeStruct = Impossible<Never, Found>;
    type SerializeStructVariant = Impossible<Never, Found>;

    one! {
        serialize_bool(bool); serialize_i8(i8); serialize_i16(i16); serialize_i32(i32);
        serialize_i64(i64); serialize_i128(i128); serialize_u8(u8); serialize_u16(u16);
        serialize_u32(u32); serialize_u64(u64); serialize_u128(u128); serialize_f32(f32);
        serialize_f64(f64); serialize_char(char); serialize_str(&str); serialize_bytes(&[u8]);
        serialize_none(); serialize_unit_struct(&'static str);
        serialize_unit_variant(&'static str, u32, &'static str);
    }

    fn serialize_unit(self) -> Result<Never, Found> {
        Err(Found(Shape::Unit))
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<Never, Found> {
        Err(Found(Shape::One))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<Never, Found> {
        Err(Found(Shape::One))
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<Never, Found> {
        Err(Found(Shape::One))
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Found> {
        Err(Found(Shape::One))
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Found> {
        Err(Found(Shape::Tuple))
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Found> {
        Err(Found(Shape::One))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Found> {
        Err(Found(Shape::One))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Found> {
        Err(Found(Shape::One))
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Found> {
        Err(Found(Shape::One))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Found> {
        Err(Found(Shape::One))
    }
}

// ===== impl DeProbe =====

struct DeProbe;

impl<'de> de::Deserializer<'de> for DeProbe {
    type Error = Found;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Found> {
        Err(Found(Shape::One))
    }

    fn deserialize_unit<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Found> {
        Err(Found(Shape::Unit))
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, _: V) -> Result<V::Value, Found> {
        Err(Found(Shape::Tuple))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit_struct newtype_struct seq
        tuple_struct map struct enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Point {
        x: i64,
    }

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Pair(i64, i64);

    #[test]
    fn tuples_are_argument_lists_and_everything_else_is_one_argument() {
        assert_eq!(Shape::of(&(Point { x: 1 },)), Shape::Tuple);
        assert_eq!(Shape::of(&Point { x: 1 }), Shape::One);
        assert_eq!(Shape::of(&Pair(1, 2)), Shape::One);
        assert_eq!(Shape::of(&vec![1, 2]), Shape::One);
        assert_eq!(Shape::of(&Some(1)), Shape::One);
        assert_eq!(Shape::of_type::<(Point, i64)>(), Shape::Tuple);
        assert_eq!(Shape::of_type::<Point>(), Shape::One);
        assert_eq!(Shape::of_type::<Pair>(), Shape::One);
        assert_eq!(Shape::of_type::<Option<i64>>(), Shape::One);
        assert_eq!(
            Shape::of_type::<std::collections::HashMap<String, i64>>(),
            Shape::One
        );
        assert_eq!(Shape::of_type::<()>(), Shape::Unit);
    }
}
