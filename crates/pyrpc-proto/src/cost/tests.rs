//! Unit tests of `cost`.

use super::*;
use crate::{wire, Value};
use prost::Message;

fn call(args: Vec<wire::Value>) -> Vec<u8> {
    wire::ClientFrame {
        kind: Some(wire::client_frame::Kind::Request(wire::Request {
            id: 3,
            kind: Some(wire::request::Kind::Call(wire::Call {
                method: "m".into(),
                args,
                kwargs: vec![wire::Kwarg {
                    name: "k".into(),
                    value: Some(Value::dict([(Value::from(1), Value::from(2))]).into()),
                }],
                timeout_ms: 5,
                stream_window: 0,
            })),
        })),
    }
    .encode_to_vec()
}

#[test]
fn counts_every_value_nested_or_flat() {
    let mut deep = Value::from(1);
    for _ in 0..40 {
        deep = Value::list([deep]); // flat: 40 headers + 1 int
    }
    let args = vec![
        wire::Value::default(),
        Value::Bytes(bytes::Bytes::from(vec![0x12; 1000])).into(),
        Value::tuple([Value::from("x"), Value::None]).into(),
        deep.into(),
    ];
    // 1 + 1 + 3 + (1 flat + 41 nodes) + kwarg dict (1 + 2)
    assert_eq!(client_frame_values(&call(args)), 50);
}

#[test]
fn each_item_of_a_packed_list_counts() {
    let ints = Value::list((0..1000).map(Value::from));
    let floats = Value::list((0..10).map(|i| Value::from(f64::from(i))));
    let w: wire::Value = ints.into();
    assert!(matches!(w.kind, Some(wire::value::Kind::IntList(_))));
    // 1000 + 1, 10 + 1, and the kwarg dict (3)
    assert_eq!(client_frame_values(&call(vec![w, floats.into()])), 1015);
}

/// The scan as it was before scalar values were passed over whole: one
/// stack entry per message.
fn stepwise_cost(body: &[u8]) -> FrameCost {
    let mut c = FrameCost::default();
    let mut stack: Vec<(Msg, usize)> = vec![(Msg::ClientFrame, body.len())];
    let mut pos = 0usize;
    while let Some(&(msg, end)) = stack.last() {
        if pos >= end {
            stack.pop();
            continue;
        }
        let Some(tag) = varint(body, &mut pos) else {
            return c;
        };
        let skip = match tag & 7 {
            0 => varint(body, &mut pos).map(|_| 0),
            1 => Some(8),
            5 => Some(4),
            2 => varint(body, &mut pos),
            _ => None,
        };
        let Some(field_end) = skip
            .and_then(|s| usize::try_from(s).ok())
            .and_then(|s| pos.checked_add(s))
            .filter(|&e| e <= end)
        else {
            return c;
        };
        if matches!(msg, Msg::IntList | Msg::FloatList) {
            c.values += packed_items(msg, tag, &body[pos..field_end]);
            pos = field_end;
            continue;
        }
        match child(msg, tag >> 3) {
            Some(inner) if tag & 7 == 2 && stack.len() < 128 => {
                c.values += u64::from(inner == Msg::Value);
                stack.push((inner, field_end));
            }
            _ => {
                if msg == Msg::NdArray && tag == (3 << 3 | 2) {
                    c.array_bytes += skip.unwrap_or(0);
                }
                pos = field_end;
            }
        }
    }
    c
}

#[test]
fn passing_over_scalars_counts_as_the_stepwise_scan_does() {
    let records = Value::list((0..50).map(|i| {
        Value::dict([
            (Value::from("id"), Value::from(i)),
            (Value::from("name"), Value::from(format!("n{i}"))),
            (Value::from("score"), Value::from(f64::from(i) * 1.5)),
            (Value::from("ok"), Value::from(i % 2 == 0)),
            (Value::from("none"), Value::None),
            (Value::from("b"), Value::Bytes(vec![1u8; 3].into())),
        ])
    }));
    let mut deep = Value::from(1);
    for _ in 0..40 {
        deep = Value::list([deep, Value::from("x")]);
    }
    let array = crate::NdArray::new(crate::Dtype::Uint8, vec![9], vec![7u8; 9].into())
        .unwrap_or_else(|e| panic!("{e}"));
    // Nested past the scan's 128 levels, by hand (prost would not).
    let field = |tag: u8, inner: Vec<u8>| {
        let mut out = vec![tag];
        let mut n = inner.len();
        while n >= 0x80 {
            out.push(n as u8 | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
        out.extend(inner);
        out
    };
    let mut v = vec![0x18, 0x02];
    for i in 0..140 {
        let mut items = field(0x0a, v);
        items.extend(field(0x0a, vec![0x18, i]));
        v = field(0x42, items);
    }
    let mut call_msg = field(0x0a, b"m".to_vec());
    call_msg.extend(field(0x12, v));
    let too_deep = field(0x12, [vec![0x08, 0x01], field(0x12, call_msg)].concat());
    let frames = [
        too_deep,
        call(vec![records.into()]),
        call(vec![deep.into(), Value::from(array).into()]),
        call(vec![Value::list((0..300).map(Value::from)).into()]),
        call(vec![wire::Value::default(), Value::from(-5).into()]),
    ];
    // The cap is reached: fewer than the 281 values are counted.
    let deep_count = client_frame_cost(&frames[0]).values;
    assert!((100..281).contains(&deep_count), "{deep_count}");
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for frame in &frames {
        assert_eq!(client_frame_cost(frame), stepwise_cost(frame));
        // Every cut, and bytes changed at random: malformed frames end
        // both counts at the same place.
        for cut in 0..frame.len() {
            let part = &frame[..cut];
            assert_eq!(client_frame_cost(part), stepwise_cost(part), "cut {cut}");
        }
        for _ in 0..2000 {
            let mut bent = frame.clone();
            for _ in 0..3 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let at = (seed >> 8) as usize % bent.len();
                bent[at] = seed as u8;
            }
            assert_eq!(client_frame_cost(&bent), stepwise_cost(&bent), "{bent:?}");
        }
    }
}

#[test]
fn malformed_bytes_end_the_count() {
    let body = call(vec![Value::from(1).into(); 10]);
    for cut in 0..body.len() {
        assert!(client_frame_values(&body[..cut]) <= 10);
    }
    assert_eq!(client_frame_values(&[0xff; 20]), 0);
}

#[test]
fn arguments_are_counted_without_what_they_hold() {
    let nested = Value::list((0..100).map(|i| Value::list([Value::from(i), Value::None])));
    let body = call(vec![nested.clone().into(), Value::from(1).into()]);
    // Two positional arguments and the keyword `k`.
    assert_eq!(client_frame_arguments(&body), 3);
    assert!(client_frame_values(&body) > 300);
    for cut in 0..body.len() {
        assert!(client_frame_arguments(&body[..cut]) <= 3);
    }
}

/// A frame's cost is its arguments' plus what each holds: what the Python
/// server charges, argument by argument, adds up to the server's scan.
#[test]
fn value_cost_adds_up_to_the_frame_cost() {
    let a =
        crate::NdArray::new(crate::Dtype::Uint8, vec![100], vec![1u8; 100].into()).expect("array");
    let args = [
        Value::list((0..100).map(|i| Value::list([Value::from(i), Value::None]))),
        Value::dict([(Value::from("k"), Value::from(a))]),
        Value::list((0..50).map(Value::from)),
        Value::None,
    ];
    let body = call(args.iter().cloned().map(Into::into).collect());
    let kwarg = Value::dict([(Value::from(1), Value::from(2))]);
    let mut total = FrameCost::default();
    for v in args.iter().chain([&kwarg]) {
        let c = value_cost(&crate::raw::encode_value(v.clone()));
        total.values += 1 + c.values;
        total.array_bytes += c.array_bytes;
    }
    assert_eq!(total, client_frame_cost(&body));
    assert_eq!(total.array_bytes, 100);
}
