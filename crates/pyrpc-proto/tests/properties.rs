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
