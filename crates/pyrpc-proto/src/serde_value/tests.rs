//! Tests of [`to_value`] and [`from_value`].

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
    let t: (f64, String) = from_value(Value::list([Value::from(1), Value::from("x")])).expect("t");
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
