//! The protobuf code of the two raw messages whose value is an
//! [`EncodedValue`]: the oneof [`response::Kind`] and [`StreamItem`].
//!
//! prost's derive takes only `Vec<u8>` and `Bytes` for a `bytes` field (its
//! `BytesAdapter` is sealed), so this is what the derive would write, by
//! hand: the value as a length-delimited field (field 2 in both), the other
//! kinds as the messages they are. A decoded value is one slice of the frame,
//! as with a `Bytes` field (`encoding::bytes::merge`).

use bytes::{Buf, BufMut, Bytes};
use prost::encoding::{self, DecodeContext, WireType};
use prost::{DecodeError, Message};

use super::response::Kind;
use super::{EncodedValue, StreamItem};

/// Field 2 of `Response` (in its oneof) and of `StreamItem`.
const VALUE_TAG: u32 = 2;

/// Reads a length-delimited field into an [`EncodedValue`] (one slice of
/// the frame when `buf` is a `Bytes`).
fn merge_value(
    value: &mut EncodedValue,
    wire_type: WireType,
    buf: &mut impl Buf,
    ctx: DecodeContext,
) -> Result<(), DecodeError> {
    let mut b = Bytes::new();
    encoding::bytes::merge(wire_type, &mut b, buf, ctx)?;
    *value = EncodedValue::from(b);
    Ok(())
}

/// Merges message field `$tag` into the oneof `$field` as variant `$v`, as
/// the derive does: into the message already there when it is that variant,
/// else into a new one that replaces it.
macro_rules! merge_message {
    ($field:expr, $v:ident, $wire_type:expr, $buf:expr, $ctx:expr) => {
        if let Some(Kind::$v(m)) = $field {
            encoding::message::merge($wire_type, m, $buf, $ctx)
        } else {
            let mut m = Default::default();
            encoding::message::merge($wire_type, &mut m, $buf, $ctx)
                .map(|()| *$field = Some(Kind::$v(m)))
        }
    };
}

impl Kind {
    /// Encodes the oneof's field.
    pub fn encode(&self, buf: &mut impl BufMut) {
        match self {
            Kind::Value(v) => v.encode_field(VALUE_TAG, buf),
            Kind::Error(m) => encoding::message::encode(3, m, buf),
            Kind::Ack(m) => encoding::message::encode(4, m, buf),
            Kind::Pending(m) => encoding::message::encode(5, m, buf),
            Kind::Methods(m) => encoding::message::encode(6, m, buf),
            Kind::Stats(m) => encoding::message::encode(7, m, buf),
            Kind::StreamEnd(m) => encoding::message::encode(8, m, buf),
        }
    }

    /// Decodes field `tag` (one of the oneof's) into `field`.
    ///
    /// # Errors
    ///
    /// A [`DecodeError`] for a malformed field.
    ///
    /// # Panics
    ///
    /// For a tag not in the oneof (the caller, `Response::merge_field`,
    /// passes only the oneof's tags), as the derive's code does.
    pub fn merge(
        field: &mut Option<Kind>,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        match tag {
            VALUE_TAG => {
                let mut v = EncodedValue::default();
                merge_value(&mut v, wire_type, buf, ctx)?;
                *field = Some(Kind::Value(v));
                Ok(())
            }
            3 => merge_message!(field, Error, wire_type, buf, ctx),
            4 => merge_message!(field, Ack, wire_type, buf, ctx),
            5 => merge_message!(field, Pending, wire_type, buf, ctx),
            6 => merge_message!(field, Methods, wire_type, buf, ctx),
            7 => merge_message!(field, Stats, wire_type, buf, ctx),
            8 => merge_message!(field, StreamEnd, wire_type, buf, ctx),
            _ => unreachable!("invalid Kind tag: {tag}"),
        }
    }

    /// The encoded length of the oneof's field.
    pub fn encoded_len(&self) -> usize {
        match self {
            Kind::Value(v) => v.field_len(VALUE_TAG),
            Kind::Error(m) => encoding::message::encoded_len(3, m),
            Kind::Ack(m) => encoding::message::encoded_len(4, m),
            Kind::Pending(m) => encoding::message::encoded_len(5, m),
            Kind::Methods(m) => encoding::message::encoded_len(6, m),
            Kind::Stats(m) => encoding::message::encoded_len(7, m),
            Kind::StreamEnd(m) => encoding::message::encoded_len(8, m),
        }
    }
}

impl Message for StreamItem {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        if self.id != 0 {
            encoding::uint64::encode(1, &self.id, buf);
        }
        if !self.value.is_empty() {
            self.value.encode_field(VALUE_TAG, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        match tag {
            1 => encoding::uint64::merge(wire_type, &mut self.id, buf, ctx).map_err(|mut e| {
                e.push("StreamItem", "id");
                e
            }),
            VALUE_TAG => merge_value(&mut self.value, wire_type, buf, ctx).map_err(|mut e| {
                e.push("StreamItem", "value");
                e
            }),
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        let id = if self.id != 0 {
            encoding::uint64::encoded_len(1, &self.id)
        } else {
            0
        };
        let value = if self.value.is_empty() {
            0
        } else {
            self.value.field_len(VALUE_TAG)
        };
        id + value
    }

    fn clear(&mut self) {
        *self = StreamItem::default();
    }
}

#[cfg(test)]
mod tests {
    use super::super::{server_frame, Response, ServerFrame};
    use super::*;
    use crate::{wire, RemoteError, Value};

    fn generated_frames(v: &Value) -> Vec<wire::ServerFrame> {
        let value = || Some(wire::Value::from(v.clone()));
        let frame = |kind| wire::ServerFrame { kind: Some(kind) };
        let response = |id, kind| {
            frame(wire::server_frame::Kind::Response(wire::Response {
                id,
                kind: Some(kind),
            }))
        };
        vec![
            response(3, wire::response::Kind::Value(value().expect("set"))),
            response(0, wire::response::Kind::Value(value().expect("set"))),
            response(
                4,
                wire::response::Kind::Error(
                    RemoteError::exception("KeyError", "builtins", vec![Value::from("k")]).into(),
                ),
            ),
            response(5, wire::response::Kind::Ack(wire::Ack {})),
            response(6, wire::response::Kind::Pending(wire::Pending {})),
            response(
                7,
                wire::response::Kind::StreamEnd(wire::StreamEnd { items: 12 }),
            ),
            frame(wire::server_frame::Kind::Item(wire::StreamItem {
                id: 8,
                value: value(),
            })),
            frame(wire::server_frame::Kind::Item(wire::StreamItem {
                id: 0,
                value: value(),
            })),
        ]
    }

    /// Every kind, decoded from prost's bytes into the raw frame, encodes
    /// to the same bytes; a value made with `from_value` (split when large)
    /// does too.
    #[test]
    fn raw_frames_read_and_write_prosts_bytes() {
        for v in [
            Value::None,
            Value::from(5),
            Value::Bytes(Bytes::from(vec![1u8; 10])),
            Value::Bytes(Bytes::from(vec![2u8; super::super::SPLIT_MIN + 3])),
            Value::ByteArray(Bytes::from(vec![3u8; 1 << 20])),
        ] {
            for generated in generated_frames(&v) {
                let bytes = generated.encode_to_vec();
                let raw = ServerFrame::decode(bytes.as_slice()).expect("decodes");
                assert_eq!(raw.encoded_len(), bytes.len());
                assert!(raw.encode_to_vec() == bytes, "{generated:?}");
                // The same frame with the value made here.
                let mut made = raw.clone();
                match &mut made.kind {
                    Some(server_frame::Kind::Response(Response {
                        kind: Some(Kind::Value(e)),
                        ..
                    }))
                    | Some(server_frame::Kind::Item(StreamItem { value: e, .. })) => {
                        *e = EncodedValue::from_value(v.clone());
                    }
                    _ => {}
                }
                assert_eq!(made, raw);
                assert_eq!(made.encoded_len(), bytes.len());
                assert!(made.encode_to_vec() == bytes, "{generated:?}");
            }
        }
    }

    #[test]
    fn a_decoded_value_is_a_slice_of_the_frame() {
        let v = Value::Bytes(Bytes::from(vec![6u8; 1 << 20]));
        let frame = Bytes::from(generated_frames(&v)[0].encode_to_vec());
        let raw = ServerFrame::decode(frame.clone()).expect("decodes");
        let Some(server_frame::Kind::Response(Response {
            kind: Some(Kind::Value(e)),
            ..
        })) = raw.kind
        else {
            panic!("not a value: {raw:?}");
        };
        assert!(e.payload().is_empty());
        let b = e.into_bytes();
        let at = b.as_ptr() as usize - frame.as_ptr() as usize;
        assert!(at < 16, "a slice of the frame, {at} bytes in");
    }

    #[test]
    fn a_malformed_value_field_is_an_error() {
        // StreamItem{id: 1, value: <claims 5 bytes, has 1>}
        let frame = [0x1a, 0x05, 0x08, 0x01, 0x12, 0x05, 0x00];
        assert!(ServerFrame::decode(&frame[..]).is_err());
        // Response{id: 1, value given as a varint}
        let frame = [0x12, 0x04, 0x08, 0x01, 0x10, 0x01];
        assert!(ServerFrame::decode(&frame[..]).is_err());
    }
}
