//! Unit tests of `codec` (moved out of `codec.rs` to keep that file to its job).

use super::*;
use pyrpc_proto::wire::{self, request, Ping, Request};

fn ping(id: u64) -> Request {
    Request {
        id,
        kind: Some(request::Kind::Ping(Ping {})),
    }
}

fn frame(msg: &Request) -> Vec<u8> {
    let mut buf = BytesMut::new();
    Codec::<Request, Request>::new()
        .encode(msg.clone(), &mut buf)
        .unwrap();
    buf.to_vec()
}

#[test]
fn write_puts_big_endian_length_then_body() {
    let bytes = frame(&ping(300));
    assert_eq!(bytes, vec![0, 0, 0, 5, 8, 0xac, 0x02, 0x32, 0x00]);
}

#[test]
fn read_one_byte_at_a_time() {
    let bytes = frame(&ping(42));
    let mut codec = Codec::<Request, Request>::new();
    let mut buf = BytesMut::new();
    for (i, b) in bytes.iter().enumerate() {
        buf.put_u8(*b);
        let out = codec.decode(&mut buf).unwrap();
        if i + 1 < bytes.len() {
            assert_eq!(out, None, "decoded early at byte {i}");
        } else {
            assert_eq!(out, Some(ping(42)));
        }
    }
    assert!(buf.is_empty());
}

#[test]
fn read_many_frames_from_one_buffer() {
    let mut buf = BytesMut::new();
    for id in 0..100 {
        buf.extend_from_slice(&frame(&ping(id)));
    }
    let mut codec = Codec::<Request, Request>::new();
    for id in 0..100 {
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(ping(id)));
    }
    assert_eq!(codec.decode(&mut buf).unwrap(), None);
}

#[test]
fn read_zero_length_is_an_error() {
    let mut buf = BytesMut::from(&[0u8, 0, 0, 0, 1, 2][..]);
    let err = Codec::<Request, Request>::new()
        .decode(&mut buf)
        .unwrap_err();
    assert!(matches!(err, FrameError::Empty), "{err}");
}

#[test]
fn read_oversize_header_is_refused_without_allocating() {
    let mut buf = BytesMut::from(&[0xffu8, 0xff, 0xff, 0xff][..]);
    let cap_before = buf.capacity();
    let err = Codec::<Request, Request>::with_max_frame_len(1024)
        .decode(&mut buf)
        .unwrap_err();
    assert!(
        matches!(
            err,
            FrameError::TooLarge {
                len: 0xffff_ffff,
                max: 1024
            }
        ),
        "{err}"
    );
    assert_eq!(buf.capacity(), cap_before);
}

#[test]
fn read_limit_boundaries() {
    let body_len = frame(&ping(1)).len() - HEADER_LEN;
    // at the limit: accepted
    let mut buf = BytesMut::from(frame(&ping(1)).as_slice());
    let mut codec = Codec::<Request, Request>::with_max_frame_len(body_len);
    assert_eq!(codec.decode(&mut buf).unwrap(), Some(ping(1)));
    // one over: refused
    let mut buf = BytesMut::from(frame(&ping(1)).as_slice());
    let mut codec = Codec::<Request, Request>::with_max_frame_len(body_len - 1);
    assert!(matches!(
        codec.decode(&mut buf),
        Err(FrameError::TooLarge { .. })
    ));
}

#[test]
fn write_limit_boundaries() {
    let body_len = frame(&ping(1)).len() - HEADER_LEN;
    let mut buf = BytesMut::new();
    let mut at = Codec::<Request, Request>::with_max_frame_len(body_len);
    assert!(at.encode(ping(1), &mut buf).is_ok());
    let mut over = Codec::<Request, Request>::with_max_frame_len(body_len - 1);
    let mut buf = BytesMut::new();
    assert!(matches!(
        over.encode(ping(1), &mut buf),
        Err(FrameError::TooLarge { .. })
    ));
    assert!(buf.is_empty(), "nothing is written for a refused frame");
}

#[test]
fn read_huge_claim_grows_only_with_arriving_bytes() {
    // A header claiming 100 MiB, then 10 bytes: the buffer must not jump to 100 MiB.
    let mut buf = BytesMut::new();
    buf.put_u32(100 * 1024 * 1024);
    buf.extend_from_slice(&[0u8; 10]);
    let mut codec = Codec::<Request, Request>::new();
    assert_eq!(codec.decode(&mut buf).unwrap(), None);
    assert!(
        buf.capacity() <= 2 * MIN_GROWTH,
        "capacity {}",
        buf.capacity()
    );
}

#[test]
fn read_body_that_is_not_protobuf() {
    let mut buf = BytesMut::new();
    buf.put_u32(3);
    buf.extend_from_slice(&[0xff, 0xff, 0xff]);
    let mut codec = Codec::<Request, Request>::new();
    let err = codec.decode(&mut buf).unwrap_err();
    assert!(matches!(err, FrameError::Decode(_)), "{err}");
    // the body is kept for the receiver, and the stream is still in step
    assert_eq!(
        codec.take_undecodable().as_deref(),
        Some(&[0xffu8, 0xff, 0xff][..])
    );
    assert_eq!(codec.take_undecodable(), None);
    buf.extend_from_slice(&frame(&ping(5)));
    assert_eq!(codec.decode(&mut buf).unwrap(), Some(ping(5)));
}

#[test]
fn read_large_frame_leaves_no_allocation_in_the_buffer() {
    let big = Request {
        id: 1,
        kind: Some(request::Kind::Call(wire::Call {
            method: "m".repeat(2 * RELEASE_LARGE_FRAME),
            ..Default::default()
        })),
    };
    let mut buf = BytesMut::from(frame(&big).as_slice());
    buf.extend_from_slice(&frame(&ping(2))[..3]); // part of the next frame
    let mut codec = Codec::<Request, Request>::new();
    assert_eq!(codec.decode(&mut buf).unwrap(), Some(big));
    assert_eq!(buf.len(), 3, "the bytes after the frame are kept");
    assert!(buf.capacity() < 1024, "capacity {}", buf.capacity());
    buf.extend_from_slice(&frame(&ping(2))[3..]);
    assert_eq!(codec.decode(&mut buf).unwrap(), Some(ping(2)));
}

#[test]
fn read_truncated_frame_waits() {
    let bytes = frame(&ping(9));
    let mut buf = BytesMut::from(&bytes[..bytes.len() - 1]);
    let mut codec = Codec::<Request, Request>::new();
    assert_eq!(codec.decode(&mut buf).unwrap(), None);
    buf.put_u8(bytes[bytes.len() - 1]);
    assert_eq!(codec.decode(&mut buf).unwrap(), Some(ping(9)));
}

#[test]
fn write_empty_message_is_refused() {
    let mut buf = BytesMut::new();
    let err = Codec::<wire::Ack, wire::Ack>::new()
        .encode(wire::Ack {}, &mut buf)
        .unwrap_err();
    assert!(matches!(err, FrameError::Empty));
}

// ----- encode_chunks: the same bytes as prost, large payloads not copied -----

use crate::{FrameChunks, ZERO_COPY_MIN};
use proptest::prelude::*;
use pyrpc_proto::Value;

type ServerCodec = Codec<wire::ServerFrame, wire::ServerFrame>;

fn reply(id: u64, v: Value) -> wire::ServerFrame {
    wire::ServerFrame {
        kind: Some(wire::server_frame::Kind::Response(wire::Response {
            id,
            kind: Some(wire::response::Kind::Value(v.into())),
        })),
    }
}

fn prost_frame<M: prost::Message>(m: &M) -> Vec<u8> {
    let body = m.encode_to_vec();
    let mut v = (body.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(&body);
    v
}

/// Bytes around the threshold, some far above it (cheap: one fill).
fn arb_bytes() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        (0usize..16).prop_map(|n| Bytes::from(vec![0xab; n])),
        (ZERO_COPY_MIN - 2..ZERO_COPY_MIN + 2).prop_map(|n| Bytes::from(vec![1; n])),
        (ZERO_COPY_MIN..4 * ZERO_COPY_MIN).prop_map(|n| Bytes::from(vec![2; n])),
    ]
}

fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::None),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        any::<f64>().prop_map(Value::Float),
        ".{0,8}".prop_map(Value::Str),
        arb_bytes().prop_map(Value::Bytes),
        arb_bytes().prop_map(Value::Pickle),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::List),
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Tuple),
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Set),
            prop::collection::vec((inner.clone(), inner), 0..3).prop_map(Value::Dict),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn write_chunks_is_prost_encoding(id: u64, v in arb_value(), w in arb_value()) {
        let (a, b) = (reply(id, v), reply(id ^ 1, w));
        let mut codec = ServerCodec::new();
        let mut chunks = FrameChunks::new();
        codec.encode_chunks(&a, &mut chunks).unwrap();
        codec.encode_chunks(&b, &mut chunks).unwrap();
        let mut want = prost_frame(&a);
        want.extend_from_slice(&prost_frame(&b));
        prop_assert_eq!(chunks.len(), want.len());
        prop_assert!(chunks.to_vec() == want, "chunked bytes differ from prost's");
        // and it reads back
        let mut buf = BytesMut::from(&want[..]);
        prop_assert_eq!(codec.decode(&mut buf).unwrap(), Some(a));
        prop_assert_eq!(codec.decode(&mut buf).unwrap(), Some(b));
    }
}

#[test]
fn write_chunks_references_a_large_payload() {
    let payload = Bytes::from(vec![9u8; 1 << 20]);
    let frame = reply(3, Value::Bytes(payload.clone()));
    let mut chunks = FrameChunks::new();
    ServerCodec::new()
        .encode_chunks(&frame, &mut chunks)
        .unwrap();
    assert_eq!(chunks.chunk_count(), 2, "envelope, then the payload itself");
    assert!(
        chunks.buffer_capacity() < 1024,
        "the payload was not copied"
    );
    let mut slices = [std::io::IoSlice::new(&[]); 4];
    assert_eq!(chunks.chunks_vectored(&mut slices), 2);
    assert_eq!(slices[1].as_ptr(), payload.as_ptr());
    assert_eq!(chunks.to_vec(), prost_frame(&frame));
    // in a list, after other values, the same
    let frame = reply(
        4,
        Value::List(vec![
            Value::from(1),
            Value::Bytes(payload.clone()),
            Value::from("x"),
        ]),
    );
    let mut chunks = FrameChunks::new();
    ServerCodec::new()
        .encode_chunks(&frame, &mut chunks)
        .unwrap();
    assert_eq!(chunks.chunk_count(), 3);
    assert_eq!(chunks.to_vec(), prost_frame(&frame));
}

#[test]
fn write_chunks_limit_boundaries() {
    let frame = reply(1, Value::Bytes(Bytes::from(vec![0u8; ZERO_COPY_MIN])));
    let body_len = prost::Message::encoded_len(&frame);
    let mut chunks = FrameChunks::new();
    let mut at = ServerCodec::with_max_frame_len(body_len);
    assert!(at.encode_chunks(&frame, &mut chunks).is_ok());
    let mut over = ServerCodec::with_max_frame_len(body_len - 1);
    let mut chunks = FrameChunks::new();
    assert!(matches!(
        over.encode_chunks(&frame, &mut chunks),
        Err(FrameError::TooLarge { .. })
    ));
    assert!(chunks.is_empty(), "nothing is written for a refused frame");
    let err = Codec::<wire::Ack, wire::Ack>::new()
        .encode_chunks(&wire::Ack {}, &mut chunks)
        .unwrap_err();
    assert!(matches!(err, FrameError::Empty));
}
