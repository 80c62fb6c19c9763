//! Builds `Value.flat` node lists from arbitrary bytes, up to 131,071 nested
//! headers deep, with every kind of leaf node the decoder treats apart (packed
//! int and float lists, fields 32 and 33, and numpy arrays, field 24, of
//! sizes that fit their dtype or not), and converts them: the decoder must refuse what is too deep
//! or malformed with an error, never panic or overflow the stack, and what it
//! accepts must re-encode and convert back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use pyrpc_proto::wire::value::Kind;
use pyrpc_proto::{wire, Value, MAX_VALUE_DEPTH};

fn node(kind: Kind) -> wire::Value {
    wire::Value { kind: Some(kind) }
}

fuzz_target!(|data: &[u8]| {
    // Two bytes: how many `list_len: 1` headers open the list (0..131071).
    let Some((head, ops)) = data.split_at_checked(2) else {
        return;
    };
    let opening = usize::from(u16::from_le_bytes([head[0], head[1]])) * 2;
    let mut nodes = vec![node(Kind::ListLen(1)); opening];
    for &op in ops {
        let n = u64::from(op >> 3);
        nodes.push(node(match op & 7 {
            0 => Kind::ListLen(n),
            1 => Kind::TupleLen(n),
            2 => Kind::DictLen(n),
            3 => Kind::SetLen(n),
            4 => Kind::Int(i64::from(op)),
            5 => Kind::Str("s".into()),
            6 => Kind::RecordHeader(Box::new(wire::RecordHeader {
                type_name: "m:T".into(),
                kind: 1,
                field_names: (0..n).map(|i| i.to_string()).collect(),
            })),
            // Op 7 (n = 0) stays `None`, as the seed corpus was written.
            _ => match n % 4 {
                0 => Kind::None(wire::NoneValue {}),
                1 => Kind::IntList(wire::IntList {
                    items: (0..n / 4).map(|i| (i as i64) << (8 * (i % 8))).collect(),
                }),
                2 => Kind::FloatList(wire::FloatList {
                    items: (0..n / 4).map(|i| i as f64 * -0.5).collect(),
                }),
                // bool, uint8, float64 and an unknown dtype (0), as a scalar
                // or a 2-item array; with n / 4 >= 4 the data is a byte short.
                _ => {
                    let (dtype, size) = [(1, 1), (6, 1), (12, 8), (0, 1)][(n / 4 % 4) as usize];
                    let count = if n & 4 != 0 { 2 } else { 1 };
                    let short = usize::from(n / 4 >= 4);
                    Kind::Ndarray(wire::NdArray {
                        dtype,
                        shape: if n & 4 != 0 { vec![2] } else { vec![] },
                        data: vec![op; size * count - short].into(),
                        scalar: n & 4 == 0,
                    })
                }
            },
        }));
    }
    let flat = node(Kind::Flat(wire::Flat { nodes }));
    // Through bytes, as a frame would bring it.
    let Ok(decoded) = wire::Value::decode(flat.encode_to_vec().as_slice()) else {
        return;
    };
    if let Ok(v) = Value::from_wire(decoded, MAX_VALUE_DEPTH) {
        let again = Value::from_wire(wire::Value::from(v.clone()), MAX_VALUE_DEPTH);
        assert_eq!(again.as_ref(), Ok(&v));
    }
});
