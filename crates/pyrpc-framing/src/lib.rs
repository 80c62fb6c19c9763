//! Length-prefixed protobuf frames.
//!
//! Every pyrpc message travels in one frame:
//!
//! ```text
//! +---------------------+--------------------------------+
//! | length N: u32, BE   | N bytes: one protobuf message  |
//! +---------------------+--------------------------------+
//! ```
//!
//! [`Codec`] is a `tokio_util::codec` [`Decoder`](tokio_util::codec::Decoder) and
//! [`Encoder`](tokio_util::codec::Encoder) for any [`prost::Message`]. It refuses
//! a zero length and a length above its `max_frame_len` from the header alone,
//! before any memory is set aside for the body, and it grows its buffer only
//! as body bytes actually arrive, so a peer that sends a 4-byte header claiming
//! a huge frame commits nothing. The limit is checked on encode as well.
//!
//! The default limit, [`DEFAULT_MAX_FRAME_LEN`], is 640 MiB: large enough for a
//! 500 MiB `bytes` payload with room for its envelope. Servers facing untrusted
//! peers should set a lower one.
//!
//! Decoding splits the frame off the read buffer as [`bytes::Bytes`] and decodes
//! from it, so `bytes` fields of the message (with prost's `bytes` option) are
//! slices of the frame, not copies.
//!
//! Encoding the other way round, [`Codec::encode_chunks`] appends a frame to
//! [`FrameChunks`] without copying any `bytes` field of [`ZERO_COPY_MIN`] or
//! more: the payload's own `Bytes` is written with vectored writes, so
//! sending a 500 MiB value takes no second 500 MiB.
//!
//! # Examples
//!
//! ```
//! use bytes::BytesMut;
//! use pyrpc_framing::Codec;
//! use pyrpc_proto::wire::{Ping, Request, request};
//! use tokio_util::codec::{Decoder, Encoder};
//!
//! let mut codec: Codec<Request, Request> = Codec::new();
//! let mut buf = BytesMut::new();
//! let req = Request { id: 7, kind: Some(request::Kind::Ping(Ping {})) };
//! codec.encode(req.clone(), &mut buf).unwrap();
//! assert_eq!(&buf[..4], &[0, 0, 0, 4]);
//! assert_eq!(codec.decode(&mut buf).unwrap(), Some(req));
//! ```

mod chunks;
mod codec;
mod error;
mod writer;

pub use chunks::{FrameChunks, ZERO_COPY_MIN};
pub use codec::{Codec, FastDecode, Precheck, DEFAULT_MAX_FRAME_LEN, HEADER_LEN};
pub use error::FrameError;
pub use writer::{Room, SharedWriter, TryReserveError, Turn, WriterClosed, WriterConfig};
