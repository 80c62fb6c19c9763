//! Tests of [`Value`] and its wire form.

use super::*;
use crate::kinds::RecordKind;
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
fn a_complex_part_of_minus_zero_keeps_its_sign() {
    // `assert_eq!` on `Value` cannot tell -0.0 from +0.0: compare the bits.
    for (re, im) in [
        (-0.0, -0.0),
        (1.5, -0.0),
        (-0.0, 2.0),
        (0.0, 0.0),
        (f64::NAN, -1.0),
    ] {
        let Value::Complex { re: r, im: i } = roundtrip(Value::Complex { re, im }) else {
            panic!("not a complex");
        };
        assert_eq!((r.to_bits(), i.to_bits()), (re.to_bits(), im.to_bits()));
    }
    // A +0.0 part is not written, as before (and as an implicit-presence
    // field would have it): `complex(1.5)` is the bytes it always was.
    let bytes = wire::Value::from(Value::Complex { re: 1.5, im: 0.0 }).encode_to_vec();
    assert_eq!(
        bytes,
        [0xaa, 0x01, 0x09, 0x09, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f]
    );
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
    let buf =
        Bytes::from(wire::Value::from(Value::Bytes(Bytes::from(vec![7u8; 1024]))).encode_to_vec());
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

/// A value `depth` deep, lists and dicts in turn (the dict's value nests).
fn nested(depth: usize) -> Value {
    let mut v = Value::from(1);
    for i in 1..depth {
        v = if i % 2 == 0 {
            Value::list([v])
        } else {
            Value::Dict(vec![(Value::from(i as i64), v)])
        };
    }
    v
}

#[test]
fn decoding_stops_at_the_ceiling_whatever_the_limit_and_such_a_value_drops_on_a_small_stack() {
    let at_ceiling = wire::Value::from(nested(VALUE_DEPTH_CEILING));
    let deeper = wire::Value::from(nested(VALUE_DEPTH_CEILING + 1));
    // On a thread with a tokio worker's stack: the decode is iterative and
    // the decoded value's (recursive) drop fits.
    let decoded = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let v = Value::from_wire(at_ceiling, usize::MAX).expect("at the ceiling");
            let depth = v.depth();
            assert_eq!(v.check_depth(VALUE_DEPTH_CEILING), Ok(()));
            drop(v);
            (depth, Value::from_wire(deeper, usize::MAX))
        })
        .unwrap()
        .join()
        .expect("no stack overflow");
    assert_eq!(decoded.0, VALUE_DEPTH_CEILING);
    assert_eq!(
        decoded.1,
        Err(ValueError::TooDeep {
            max: VALUE_DEPTH_CEILING
        })
    );
}
