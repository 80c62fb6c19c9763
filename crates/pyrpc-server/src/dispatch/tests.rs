//! Unit tests of `dispatch` (moved out of `dispatch.rs` to keep that file to its job).

use super::*;
use bytes::Bytes;
use futures::FutureExt;
use std::panic::AssertUnwindSafe;

#[test]
fn finds_nested_pickles() {
    assert!(!contains_pickle(&Value::from(1)));
    assert!(contains_pickle(&Value::Pickle(Bytes::new())));
    assert!(contains_pickle(&Value::list([Value::tuple([
        Value::Pickle(Bytes::new())
    ])])));
    assert!(contains_pickle(&Value::dict([(
        Value::from("k"),
        Value::Pickle(Bytes::new())
    )])));
    assert!(!contains_pickle(&Value::dict([(
        Value::from("k"),
        Value::from("v")
    )])));
    let record = pyrpc_proto::Record::new("m:T", pyrpc_proto::RecordKind::Dataclass)
        .field("x", Value::Pickle(Bytes::new()));
    assert!(contains_pickle(&Value::from(record)));
}

#[test]
fn catch_unwind_turns_a_panic_into_an_error() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let fut: crate::CallFuture = Box::pin(async { panic!("boom") });
    // As `run_call` does: a panic while polling is an `Err` with its payload.
    let out = rt.block_on(AssertUnwindSafe(fut).catch_unwind());
    let msg = panic_message(out.expect_err("panicked"));
    assert_eq!(msg, "boom");
}

/// The densest frame there is (a packed list of one-byte ints) at the size
/// below which `decoded_size_check` skips its scan: its estimate is still
/// within the floor, so the skip refuses nothing the scan would have.
#[test]
fn frames_the_budget_check_skips_cannot_pass_the_floor() {
    use prost::Message;
    use pyrpc_proto::{cost, wire};
    let limit = (DECODED_FLOOR / cost::DECODED_VALUE_BYTES) as usize;
    let call = |n: usize| {
        wire::ClientFrame {
            kind: Some(wire::client_frame::Kind::Request(wire::Request {
                id: 1,
                kind: Some(wire::request::Kind::Call(wire::Call {
                    method: "m".into(),
                    args: vec![wire::Value {
                        kind: Some(wire::value::Kind::IntList(wire::IntList {
                            items: vec![1; n],
                        })),
                    }],
                    ..Default::default()
                })),
            })),
        }
        .encode_to_vec()
    };
    // One byte per item, the framing, the packed field's key and longer lengths.
    let overhead = call(0).len() + 32;
    let n = limit - overhead;
    let body = call(n);
    assert!(
        body.len() <= limit && body.len() + 64 > limit,
        "{} vs {limit}",
        body.len()
    );
    let c = cost::client_frame_cost(&body);
    assert!(c.values as usize >= n, "every item counts");
    assert!(c.decoded_bytes() <= DECODED_FLOOR);
    assert!(decoded_size_check(&body).is_ok());
}

/// For a callee that charges values as it decodes them, the server counts
/// only the arguments: a frame of 3.2M empty arguments is refused as the
/// full scan refuses it; one argument holding 3.2M empty values is left to
/// the callee (which the full scan refuses).
#[test]
fn the_arguments_check_counts_arguments_only() {
    let n = 3_200_000;
    let frame = |call: Vec<u8>| {
        let mut req = vec![0x08, 7, 0x12];
        varint_into(call.len() as u64, &mut req);
        req.extend_from_slice(&call);
        let mut body = vec![0x12];
        varint_into(req.len() as u64, &mut body);
        body.extend_from_slice(&req);
        body
    };
    let mut many = vec![0x0a, 1, b'm'];
    many.extend_from_slice(&[0x12, 0x00].repeat(n));
    let many = frame(many);
    let why = arguments_check(&many).expect_err("3.2M arguments are over the budget");
    assert!(why.contains("3200000 values"), "{why}");

    // Value { list (8) { items (1): n empty values } }
    let items = [0x0a, 0x00].repeat(n);
    let mut value = vec![0x42];
    varint_into(items.len() as u64, &mut value);
    value.extend_from_slice(&items);
    let mut one = vec![0x0a, 1, b'm', 0x12];
    varint_into(value.len() as u64, &mut one);
    one.extend_from_slice(&value);
    let one = frame(one);
    assert!(arguments_check(&one).is_ok());
    assert!(decoded_size_check(&one).is_err());
}

fn varint_into(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}
