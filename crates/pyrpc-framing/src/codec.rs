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
    /// Tried on each body before prost's decode (see [`Codec::set_fast_decode`]).
    fast: Option<FastDecode<In>>,
    _types: PhantomData<fn(Out) -> In>,
}

/// A check of a frame body before decoding: `Err(why)` refuses the frame
/// with [`FrameError::Refused`].
pub type Precheck = fn(&[u8]) -> Result<(), String>;

/// A decoder for the common shape of a frame body: `Some` only for a body
/// that prost decodes to the same message; `None` leaves the body to prost
/// (which then decides the message or the error).
pub type FastDecode<In> = fn(&Bytes) -> Option<In>;

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
            fast: None,
            _types: PhantomData,
        }
    }

    /// Checks every complete frame body with `check` before decoding it: a
    /// refused frame is answered with [`FrameError::Refused`] and its body
    /// kept for [`Codec::take_undecodable`]; the stream stays in step.
    pub fn set_precheck(&mut self, check: Precheck) {
        self.precheck = Some(check);
    }

    /// Decodes every complete body (after the precheck) with `decode` first,
    /// and with prost only when it gives `None`: a decoder that reads the
    /// most common frame in one walk (the server's calls,
    /// `pyrpc_proto::request::decode_call_frame`). It must give `Some` only
    /// for bodies prost decodes to the same message; every refusal stays
    /// prost's.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use prost::Message;
    /// use pyrpc_framing::Codec;
    /// use pyrpc_proto::{raw, request};
    /// use tokio_util::codec::Decoder;
    ///
    /// let mut codec: Codec<raw::ClientFrame, raw::ServerFrame> = Codec::new();
    /// codec.set_fast_decode(request::decode_call_frame);
    /// let call = raw::Call { method: "echo".into(), ..Default::default() };
    /// let frame = raw::ClientFrame {
    ///     kind: Some(raw::client_frame::Kind::Request(raw::Request {
    ///         id: 1,
    ///         kind: Some(raw::request::Kind::Call(call)),
    ///     })),
    /// };
    /// let body = frame.encode_to_vec();
    /// let mut buf = BytesMut::new();
    /// buf.extend_from_slice(&(body.len() as u32).to_be_bytes());
    /// buf.extend_from_slice(&body);
    /// assert_eq!(codec.decode(&mut buf).unwrap(), Some(frame));
    /// ```
    pub fn set_fast_decode(&mut self, decode: FastDecode<In>) {
        self.fast = Some(decode);
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
        if let Some(msg) = self.fast.and_then(|decode| decode(&frame)) {
            return Ok(Some(msg));
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
        self.put_chunks(item, len, dst)
    }

    /// [`Codec::encode_chunks`] for an `item` whose encoded length the
    /// caller has already computed (a queue that bounds its bytes has), so
    /// that it is not walked twice. `len` must be `item.encoded_len()`.
    ///
    /// # Errors
    ///
    /// As [`Codec::encode_chunks`].
    ///
    /// # Examples
    ///
    /// ```
    /// use prost::Message;
    /// use pyrpc_framing::{Codec, FrameChunks};
    /// use pyrpc_proto::wire::{request, Ping, Request};
    ///
    /// let ping = Request { id: 7, kind: Some(request::Kind::Ping(Ping {})) };
    /// let mut codec = Codec::<Request, Request>::new();
    /// let (mut once, mut twice) = (FrameChunks::default(), FrameChunks::default());
    /// codec.encode_chunks_sized(&ping, ping.encoded_len(), &mut once).unwrap();
    /// codec.encode_chunks(&ping, &mut twice).unwrap();
    /// assert_eq!(once.len(), 4 + ping.encoded_len());
    /// assert_eq!(once.len(), twice.len());
    /// ```
    pub fn encode_chunks_sized(
        &mut self,
        item: &Out,
        len: usize,
        dst: &mut FrameChunks,
    ) -> Result<(), FrameError> {
        debug_assert_eq!(len, item.encoded_len(), "encode_chunks_sized: wrong length");
        self.check_len(len)?;
        self.put_chunks(item, len, dst)
    }

    /// Writes the header and the body of a frame whose length was checked.
    fn put_chunks(
        &mut self,
        item: &Out,
        len: usize,
        dst: &mut FrameChunks,
    ) -> Result<(), FrameError> {
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
        self.check_len(len)?;
        Ok(len)
    }

    /// Checks a frame body's length against the limits.
    fn check_len(&self, len: usize) -> Result<(), FrameError> {
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
        Ok(())
    }
}

#[cfg(test)]
mod tests;
