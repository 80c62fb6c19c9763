//! [`Codec`]: the length-prefixed frame encoder and decoder.

use std::fmt;
use std::marker::PhantomData;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::chunks::FrameChunks;
use crate::error::FrameError;

/// The length of a frame header: a big-endian `u32`.
pub const HEADER_LEN: usize = 4;

/// The default largest frame, in bytes (640 MiB): a 500 MiB payload fits.
pub const DEFAULT_MAX_FRAME_LEN: usize = 640 * 1024 * 1024;

/// A decoded frame at least this long does not leave its allocation behind
/// in the read buffer (see [`Codec::decode`]'s body).
const RELEASE_LARGE_FRAME: usize = 1024 * 1024;

/// How much the read buffer may grow ahead of the bytes that arrived, at least.
///
/// While a frame's body arrives, the buffer grows by at most the larger of
/// this and the bytes already buffered (so it at most doubles), never by the
/// length the header claims.
const MIN_GROWTH: usize = 64 * 1024;

/// Encodes `Out` messages and decodes `In` messages as length-prefixed frames.
///
/// A server uses `Codec<ClientFrame, ServerFrame>`, a client the reverse.
///
/// The decode limit applies to frames the peer sends; the encode limit to
/// frames we send (set it to what the peer announced it accepts). Both default
/// to [`DEFAULT_MAX_FRAME_LEN`].
pub struct Codec<In, Out> {
    /// Frames longer than this are refused on decode.
    max_decode_len: usize,
    /// Frames longer than this are refused on encode.
    max_encode_len: usize,
    /// The length of the frame whose header was read and whose body is awaited.
    body_len: Option<usize>,
    /// The body of the last frame that was not a valid message, kept so the
    /// receiver can still find out what it was (e.g. its request id).
    undecodable: Option<Bytes>,
    /// Runs on each complete body before it is decoded; an `Err` refuses it.
    precheck: Option<Precheck>,
    _types: PhantomData<fn(Out) -> In>,
}

/// A check of a frame body before decoding: `Err(why)` refuses the frame
/// with [`FrameError::Refused`].
pub type Precheck = fn(&[u8]) -> Result<(), String>;

// ===== impl Codec =====

impl<In, Out> Codec<In, Out> {
    /// A codec with the default limit, [`DEFAULT_MAX_FRAME_LEN`], both ways.
    pub fn new() -> Self {
        Self::with_max_frame_len(DEFAULT_MAX_FRAME_LEN)
    }

    /// A codec refusing frames longer than `max` bytes, both ways.
    pub fn with_max_frame_len(max: usize) -> Self {
        Codec {
            max_decode_len: max,
            max_encode_len: max,
            body_len: None,
            undecodable: None,
            precheck: None,
            _types: PhantomData,
        }
    }

    /// Checks every complete frame body with `check` before decoding it: a
    /// refused frame is answered with [`FrameError::Refused`] and its body
    /// kept for [`Codec::take_undecodable`]; the stream stays in step.
    pub fn set_precheck(&mut self, check: Precheck) {
        self.precheck = Some(check);
    }

    /// The decode limit: the longest frame accepted from the peer.
    pub fn max_decode_len(&self) -> usize {
        self.max_decode_len
    }

    /// The encode limit: the longest frame sent to the peer.
    pub fn max_encode_len(&self) -> usize {
        self.max_encode_len
    }

    /// Takes the body of the last frame whose decoding failed with
    /// [`FrameError::Decode`] or was refused ([`FrameError::Refused`]).
    ///
    /// Such a frame had a valid length, so the stream is still in step after
    /// it: a receiver may look into the body (e.g. decode only a request id,
    /// which never recurses) to answer that one request with an error instead
    /// of closing the connection.
    pub fn take_undecodable(&mut self) -> Option<Bytes> {
        self.undecodable.take()
    }

    /// Sets the decode limit.
    pub fn set_max_decode_len(&mut self, max: usize) {
        self.max_decode_len = max;
    }

    /// Sets the encode limit (e.g. to what the peer announced in its hello).
    pub fn set_max_encode_len(&mut self, max: usize) {
        self.max_encode_len = max;
    }
}

impl<In, Out> Default for Codec<In, Out> {
    fn default() -> Self {
        Self::new()
    }
}

impl<In, Out> fmt::Debug for Codec<In, Out> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Codec")
            .field("max_decode_len", &self.max_decode_len)
            .field("max_encode_len", &self.max_encode_len)
            .field("body_len", &self.body_len)
            .finish()
    }
}

impl<In: prost::Message + Default, Out> Decoder for Codec<In, Out> {
    type Item = In;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<In>, FrameError> {
        let len = match self.body_len {
            Some(len) => len,
            None => {
                if src.len() < HEADER_LEN {
                    return Ok(None);
                }
                let len = u32::from_be_bytes([src[0], src[1], src[2], src[3]]);
                if len == 0 {
                    return Err(FrameError::Empty);
                }
                let len = len as usize;
                if len > self.max_decode_len {
                    return Err(FrameError::TooLarge {
                        len: len as u64,
                        max: self.max_decode_len,
                    });
                }
                src.advance(HEADER_LEN);
                self.body_len = Some(len);
                len
            }
        };
        if src.len() < len {
            // Grow as the bytes arrive: never set aside what the header only claims.
            let missing = len - src.len();
            let growth = missing.min(src.len().max(MIN_GROWTH));
            src.reserve(growth);
            return Ok(None);
        }
        self.body_len = None;
        let frame = src.split_to(len).freeze();
        if len >= RELEASE_LARGE_FRAME {
            // The frame shares its allocation with `src`: give `src` a fresh
            // one (copying only the few bytes that follow the frame), so the
            // frame's memory is freed with the frame, not kept by the read
            // buffer until the connection closes.
            *src = BytesMut::from(&src[..]);
        }
        if let Some(check) = self.precheck {
            if let Err(why) = check(&frame) {
                self.undecodable = Some(frame);
                return Err(FrameError::Refused(why));
            }
        }
        match In::decode(frame.clone()) {
            Ok(msg) => Ok(Some(msg)),
            Err(e) => {
                self.undecodable = Some(frame);
                Err(e.into())
            }
        }
    }
}

impl<In, Out: prost::Message> Encoder<Out> for Codec<In, Out> {
    type Error = FrameError;

    fn encode(&mut self, item: Out, dst: &mut BytesMut) -> Result<(), FrameError> {
        let len = self.check_encode_len(&item)?;
        dst.reserve(HEADER_LEN + len);
        dst.put_u32(len as u32);
        // Cannot fail: the buffer was reserved to fit.
        item.encode(dst)?;
        Ok(())
    }
}

impl<In, Out: prost::Message> Codec<In, Out> {
    /// Appends one frame to `dst` like [`Encoder::encode`], but a `bytes`
    /// field of at least [`ZERO_COPY_MIN`](crate::ZERO_COPY_MIN) bytes is not
    /// copied: its `Bytes` becomes a chunk of `dst` of its own (see
    /// [`FrameChunks`]). The bytes are the same as `encode`'s.
    ///
    /// # Errors
    ///
    /// [`FrameError::TooLarge`] above the encode limit and
    /// [`FrameError::Empty`] for a message that encodes to nothing; then
    /// nothing is appended.
    pub fn encode_chunks(&mut self, item: &Out, dst: &mut FrameChunks) -> Result<(), FrameError> {
        let len = self.check_encode_len(item)?;
        let mut w = dst.writer();
        w.put_u32(len as u32);
        // Cannot fail: the writer has no limit (`remaining_mut` is about
        // `usize::MAX`), and the length was checked above.
        item.encode(&mut w)?;
        Ok(())
    }

    /// The encoded length of `item`, checked against the limits.
    fn check_encode_len(&self, item: &Out) -> Result<usize, FrameError> {
        let len = item.encoded_len();
        if len > self.max_encode_len || len > u32::MAX as usize {
            return Err(FrameError::TooLarge {
                len: len as u64,
                max: self.max_encode_len,
            });
        }
        if len == 0 {
            // An empty message encodes to nothing, which the protocol forbids;
            // every pyrpc envelope sets a oneof, so this is a caller's mistake.
            return Err(FrameError::Empty);
        }
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
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
}
