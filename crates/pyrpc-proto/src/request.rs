//! A direct decoder for the frame a server reads most: a `ClientFrame`
//! holding a `Request` whose kind is a `Call` (decision 0078).
//!
//! [`decode_call_frame`] reads the request id, the method's name, the
//! arguments (as zero-copy slices of the frame, as [`raw`] keeps them), the
//! timeout and the stream window in one walk over the frame's bytes, without
//! prost's generic merge (a nested length check, a loop and a dispatch per
//! field, per message). It only answers for the plain shape of a call:
//! each field of `ClientFrame`, `Request`, `Call` and `Kwarg` known, with
//! its own wire type, and each field that is not repeated at most once.
//! Anything else (another kind of request, an unknown or repeated field, a
//! bad length, a varint prost refuses, a name that is not UTF-8) gives
//! `None`, and the caller decodes the frame the generated way, which
//! decides the frame or the error: a frame this decoder reads decodes to
//! the same [`raw::ClientFrame`] through prost (the fuzz target
//! `request_frame` checks both on arbitrary bytes), and every refusal stays
//! prost's.
//!
//! # Examples
//!
//! ```
//! use bytes::Bytes;
//! use prost::Message;
//! use pyrpc_proto::{raw, request};
//!
//! let call = raw::Call { method: "echo".into(), args: vec![Bytes::from_static(b"\x08\x01")], ..Default::default() };
//! let frame = raw::ClientFrame {
//!     kind: Some(raw::client_frame::Kind::Request(raw::Request {
//!         id: 7,
//!         kind: Some(raw::request::Kind::Call(call)),
//!     })),
//! };
//! let bytes = Bytes::from(frame.encode_to_vec());
//! assert_eq!(request::decode_call_frame(&bytes), Some(frame));
//! // Not a call: left to prost.
//! assert_eq!(request::decode_call_frame(&Bytes::from_static(b"\x12\x02\x32\x00")), None);
//! ```

use bytes::Bytes;

use crate::raw;

/// Wire type of a varint field.
const VARINT: u8 = 0;
/// Wire type of a length-delimited field.
const LEN: u8 = 2;

/// The `ClientFrame` in `frame` when it is a `Request` whose kind is a
/// `Call` in the plain shape the module docs describe; `None` otherwise
/// (decode it with prost then).
pub fn decode_call_frame(frame: &Bytes) -> Option<raw::ClientFrame> {
    let mut r = Reader { buf: frame, pos: 0 };
    // ClientFrame: field 2 (request), and nothing else.
    let (tag, wire) = r.key()?;
    if (tag, wire) != (2, LEN) {
        return None;
    }
    let (start, end) = r.len()?;
    if end != frame.len() {
        return None;
    }
    let request = decode_request(
        &mut Reader {
            buf: frame,
            pos: start,
        },
        end,
    )?;
    Some(raw::ClientFrame {
        kind: Some(raw::client_frame::Kind::Request(request)),
    })
}

/// A `Request` between the reader's position and `end`: its id (field 1,
/// at most once) and a `Call` (field 2, once).
fn decode_request(r: &mut Reader<'_>, end: usize) -> Option<raw::Request> {
    let mut id = None;
    let mut call = None;
    while r.pos < end {
        match r.key()? {
            (1, VARINT) if id.is_none() => id = Some(r.varint(end)?),
            (2, LEN) if call.is_none() => call = Some(r.message(end, decode_call)?),
            _ => return None,
        }
    }
    if r.pos != end {
        return None;
    }
    Some(raw::Request {
        id: id.unwrap_or(0),
        kind: Some(raw::request::Kind::Call(call?)),
    })
}

/// A `Call` between the reader's position and `end`.
fn decode_call(r: &mut Reader<'_>, end: usize) -> Option<raw::Call> {
    let mut method = None;
    let mut timeout_ms = None;
    let mut stream_window = None;
    let mut args = Vec::new();
    let mut kwargs = Vec::new();
    while r.pos < end {
        match r.key()? {
            (1, LEN) if method.is_none() => method = Some(r.string(end)?),
            (2, LEN) => args.push(r.bytes(end)?),
            (3, LEN) => kwargs.push(r.message(end, decode_kwarg)?),
            (4, VARINT) if timeout_ms.is_none() => timeout_ms = Some(r.varint(end)?),
            // prost reads a `uint32` as a 64-bit varint, truncated.
            (5, VARINT) if stream_window.is_none() => stream_window = Some(r.varint(end)? as u32),
            _ => return None,
        }
    }
    if r.pos != end {
        return None;
    }
    Some(raw::Call {
        method: method.unwrap_or_default(),
        args,
        kwargs,
        timeout_ms: timeout_ms.unwrap_or(0),
        stream_window: stream_window.unwrap_or(0),
    })
}

/// A `Kwarg` between the reader's position and `end`.
fn decode_kwarg(r: &mut Reader<'_>, end: usize) -> Option<raw::Kwarg> {
    let mut name = None;
    let mut value = None;
    while r.pos < end {
        match r.key()? {
            (1, LEN) if name.is_none() => name = Some(r.string(end)?),
            (2, LEN) if value.is_none() => value = Some(r.bytes(end)?),
            _ => return None,
        }
    }
    if r.pos != end {
        return None;
    }
    Some(raw::Kwarg {
        name: name.unwrap_or_default(),
        value: value.unwrap_or_default(),
    })
}

/// A position in the frame's bytes.
struct Reader<'a> {
    buf: &'a Bytes,
    pos: usize,
}

impl Reader<'_> {
    /// A field's key as (field number, wire type): only the small field
    /// numbers and the two wire types the call's messages use (a one-byte
    /// key); anything else is left to prost.
    fn key(&mut self) -> Option<(u8, u8)> {
        let b = *self.buf.get(self.pos)?;
        if b & 0x80 != 0 {
            return None;
        }
        self.pos += 1;
        let (tag, wire) = (b >> 3, b & 7);
        if tag == 0 {
            return None;
        }
        Some((tag, wire))
    }

    /// A varint that ends before `end`, decoded as prost decodes one: at
    /// most ten bytes, the tenth at most 1.
    fn varint(&mut self, end: usize) -> Option<u64> {
        let mut value = 0u64;
        for i in 0..10 {
            if self.pos >= end {
                return None;
            }
            let b = self.buf[self.pos];
            self.pos += 1;
            if i == 9 && b > 1 {
                return None;
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    /// A length prefix and the span it covers, within the whole frame.
    fn len(&mut self) -> Option<(usize, usize)> {
        self.len_within(self.buf.len())
    }

    /// A length prefix and the span it covers, which must end by `end`.
    fn len_within(&mut self, end: usize) -> Option<(usize, usize)> {
        let len = self.varint(end)?;
        let start = self.pos;
        let stop = start.checked_add(usize::try_from(len).ok()?)?;
        if stop > end {
            return None;
        }
        Some((start, stop))
    }

    /// A length-delimited embedded message that ends by `end`, read by
    /// `read` from its first byte to its last; the reader then stands after it.
    fn message<T>(
        &mut self,
        end: usize,
        read: impl FnOnce(&mut Reader<'_>, usize) -> Option<T>,
    ) -> Option<T> {
        let (start, stop) = self.len_within(end)?;
        let value = read(
            &mut Reader {
                buf: self.buf,
                pos: start,
            },
            stop,
        )?;
        self.pos = stop;
        Some(value)
    }

    /// A length-delimited field's bytes, as a slice of the frame.
    fn bytes(&mut self, end: usize) -> Option<Bytes> {
        let (start, stop) = self.len_within(end)?;
        self.pos = stop;
        Some(self.buf.slice(start..stop))
    }

    /// A length-delimited field's bytes as a string (UTF-8, as prost checks).
    fn string(&mut self, end: usize) -> Option<String> {
        let (start, stop) = self.len_within(end)?;
        self.pos = stop;
        std::str::from_utf8(&self.buf[start..stop])
            .ok()
            .map(str::to_owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn frame(call: raw::Call, id: u64) -> raw::ClientFrame {
        raw::ClientFrame {
            kind: Some(raw::client_frame::Kind::Request(raw::Request {
                id,
                kind: Some(raw::request::Kind::Call(call)),
            })),
        }
    }

    #[test]
    fn read_a_call_as_prost_does() {
        let call = raw::Call {
            method: "échø".into(),
            args: vec![Bytes::from_static(b"\x08\x01"), Bytes::new()],
            kwargs: vec![
                raw::Kwarg {
                    name: "foo".into(),
                    value: Bytes::from_static(b"\x2a\x03foo"),
                },
                raw::Kwarg::default(),
            ],
            timeout_ms: u64::MAX,
            stream_window: 16,
        };
        for id in [0, 1, u64::MAX] {
            let f = frame(call.clone(), id);
            let bytes = Bytes::from(f.encode_to_vec());
            assert_eq!(decode_call_frame(&bytes), Some(f));
        }
        let empty = frame(raw::Call::default(), 0);
        let bytes = Bytes::from(empty.encode_to_vec());
        assert_eq!(decode_call_frame(&bytes), Some(empty));
    }

    #[test]
    fn read_fields_in_any_order_as_prost_does() {
        // Call{timeout_ms: 5, method: "m"} written backwards, id after the call.
        let call = [0x20, 0x05, 0x0a, 0x01, b'm'];
        let mut request = vec![0x12, call.len() as u8];
        request.extend_from_slice(&call);
        request.extend_from_slice(&[0x08, 0x09]);
        let mut bytes = vec![0x12, request.len() as u8];
        bytes.extend_from_slice(&request);
        let bytes = Bytes::from(bytes);
        let ours = decode_call_frame(&bytes).expect("a plain call");
        assert_eq!(Some(ours), raw::ClientFrame::decode(bytes).ok());
    }

    #[test]
    fn read_leaves_everything_else_to_prost() {
        let ok = Bytes::from(frame(raw::Call::default(), 3).encode_to_vec());
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", vec![]),
            ("a ping", vec![0x12, 0x02, 0x32, 0x00]),
            ("a hello", vec![0x0a, 0x00]),
            ("a trailing byte", [&ok[..], &[0x00]].concat()),
            ("a truncated frame", ok[..ok.len() - 1].to_vec()),
            // Request{id: 1, id: 2, call{}}: a repeated scalar.
            (
                "a repeated id",
                vec![0x12, 0x06, 0x08, 0x01, 0x08, 0x02, 0x12, 0x00],
            ),
            // Call{method: invalid UTF-8}.
            (
                "a non-UTF-8 name",
                vec![0x12, 0x05, 0x12, 0x03, 0x0a, 0x01, 0xff],
            ),
            // Call{field 6: varint}: unknown to this decoder.
            ("an unknown field", vec![0x12, 0x04, 0x12, 0x02, 0x30, 0x01]),
            // Request{id: an 11-byte varint}.
            (
                "a long varint",
                [&[0x12, 0x0e, 0x08][..], &[0xff; 10], &[0x01, 0x12, 0x00]].concat(),
            ),
        ];
        for (what, bytes) in cases {
            let bytes = Bytes::from(bytes);
            assert_eq!(decode_call_frame(&bytes), None, "{what}");
        }
    }
}
