//! Property tests: any `Value` survives the wire unchanged, and decoding
//! arbitrary bytes never panics.

use bytes::Bytes;
use num_bigint::BigInt;
use proptest::prelude::*;
use prost::Message;
use pyrpc_proto::{wire, Value, MAX_VALUE_DEPTH};

/// Leaves: every scalar kind, ints across the i64 boundary included.
fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::None),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<i128>().prop_map(Value::from),
        (any::<u128>(), any::<u64>(), any::<bool>()).prop_map(|(a, b, neg)| {
            let n: BigInt = (BigInt::from(a) << 64u32) + BigInt::from(b);
            Value::from(if neg { -n } else { n })
        }),
        any::<f64>()
            .prop_filter("NaN is not equal to itself", |f| !f.is_nan())
            .prop_map(Value::from),
        ".{0,20}".prop_map(Value::from),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(|b| Value::Bytes(Bytes::from(b))),
    ]
}

/// Hashable keys: leaves, or tuples of leaves.
fn key() -> impl Strategy<Value = Value> {
    prop_oneof![
        leaf(),
        proptest::collection::vec(leaf(), 0..3).prop_map(Value::Tuple),
    ]
}

/// Nested values of every container kind.
fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::List),
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Tuple),
            proptest::collection::vec(key(), 0..4).prop_map(Value::Set),
            proptest::collection::vec(key(), 0..4).prop_map(Value::FrozenSet),
            proptest::collection::vec((key(), inner), 0..4).prop_map(Value::Dict),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn encode_then_decode_is_identity(v in value()) {
        let bytes = wire::Value::from(v.clone()).encode_to_vec();
        let decoded = wire::Value::decode(Bytes::from(bytes)).expect("decodes");
        prop_assert_eq!(Value::try_from(decoded).expect("converts"), v);
    }

    #[test]
    fn depth_limit_is_exact(depth in 1usize..=MAX_VALUE_DEPTH + 3) {
        let mut v = Value::from(0);
        for _ in 1..depth {
            v = Value::list([v]);
        }
        prop_assert_eq!(v.depth(), depth);
        let converted = Value::try_from(wire::Value::from(v));
        prop_assert_eq!(converted.is_ok(), depth <= MAX_VALUE_DEPTH);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let bytes = Bytes::from(bytes);
        if let Ok(v) = wire::Value::decode(bytes.clone()) {
            let _ = Value::try_from(v);
        }
        let _ = wire::ClientFrame::decode(bytes.clone());
        let _ = wire::ServerFrame::decode(bytes);
    }
}

/// A flat node list of arbitrary headers and scalars, behind `opening`
/// nested one-item lists.
fn flat_nodes(opening: usize, ops: &[u8]) -> wire::Value {
    use wire::value::Kind;
    let node = |kind| wire::Value { kind: Some(kind) };
    let mut nodes = vec![node(Kind::ListLen(1)); opening];
    for &op in ops {
        let n = u64::from(op >> 3);
        nodes.push(node(match op & 7 {
            0 => Kind::ListLen(n),
            1 => Kind::TupleLen(n),
            2 => Kind::DictLen(n),
            3 => Kind::FrozensetLen(n),
            4 => Kind::Int(i64::from(op)),
            5 => Kind::Str("s".into()),
            6 => Kind::RecordHeader(Box::new(wire::RecordHeader {
                type_name: "m:T".into(),
                kind: 1,
                field_names: (0..n).map(|i| i.to_string()).collect(),
            })),
            _ => Kind::None(wire::NoneValue {}),
        }));
    }
    node(Kind::Flat(wire::Flat { nodes }))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Arbitrary flat node lists, up to 100k levels deep, through bytes:
    /// an error or a value that re-encodes to itself, never a panic or a
    /// stack overflow. One case in twenty is 100k deep (about 25 runs): each
    /// costs ~100 ms in a debug build, and the shallow ones cover the shapes.
    #[test]
    fn flat_lists_of_any_shape_and_depth_are_safe(
        opening in prop_oneof![19 => 0usize..2000, 1 => 99_000usize..100_001],
        ops in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let bytes = flat_nodes(opening, &ops).encode_to_vec();
        let decoded = wire::Value::decode(Bytes::from(bytes)).expect("a flat value is 3 levels deep");
        match Value::from_wire(decoded, MAX_VALUE_DEPTH) {
            Ok(v) => {
                prop_assert!(opening < MAX_VALUE_DEPTH);
                let again = Value::from_wire(wire::Value::from(v.clone()), MAX_VALUE_DEPTH);
                prop_assert_eq!(again, Ok(v));
            }
            Err(e) if opening >= MAX_VALUE_DEPTH => {
                prop_assert!(matches!(e, pyrpc_proto::ValueError::TooDeep { .. }), "{}", e);
            }
            Err(_) => {}
        }
    }
}

#[test]
fn a_call_100k_deep_is_refused_without_recursion() {
    let call = wire::ClientFrame {
        kind: Some(wire::client_frame::Kind::Request(wire::Request {
            id: 1,
            kind: Some(wire::request::Kind::Call(wire::Call {
                method: "echo".into(),
                args: vec![flat_nodes(100_000, &[4])],
                ..Default::default()
            })),
        })),
    };
    let bytes = call.encode_to_vec();
    let Some(wire::client_frame::Kind::Request(r)) = wire::ClientFrame::decode(bytes.as_slice())
        .expect("decodes")
        .kind
    else {
        panic!("not a request")
    };
    let Some(wire::request::Kind::Call(c)) = r.kind else {
        panic!("not a call")
    };
    let arg = c.args.into_iter().next().expect("one arg");
    assert_eq!(
        Value::from_wire(arg, MAX_VALUE_DEPTH),
        Err(pyrpc_proto::ValueError::TooDeep {
            max: MAX_VALUE_DEPTH
        })
    );
}
