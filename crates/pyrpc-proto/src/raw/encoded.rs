//! [`EncodedValue`]: the bytes of one encoded `pyrpc.v1.Value` in a reply,
//! held as a head and, for a large `bytes` or `bytearray` value, the
//! payload's own buffer after it, so that the payload is never copied on its
//! way to the socket (issue 10: a 100 MiB `bytes` return peaked the server
//! at twice the payload while the value was copied into one contiguous
//! buffer; decision 0022).
//!
//! ```text
//!   Value{bytes: <100 MiB>}  on the wire:  | 0x3a | len varint | payload ... |
//!   EncodedValue:                          [ head (copied)     ][ payload's own Bytes ]
//! ```
//!
//! Encoded as a field ([`EncodedValue::encode_field`]), it writes its pieces
//! with [`BufMut::put`], which the frame encoder
//! (`pyrpc_framing::FrameChunks`) turns into a chunk of its own for a large
//! piece, so the payload goes to `writev` from the buffer the method
//! returned. The bytes are the same as those of the value's generated
//! encoding (the tests compare them with prost's).

use bytes::{BufMut, Bytes};
use prost::encoding::{self, WireType};

use crate::Value;

/// `Value.bytes`: field 7, length-delimited.
const BYTES_KEY: u8 = 7 << 3 | 2;
/// `Value.bytearray`: field 14, length-delimited.
const BYTEARRAY_KEY: u8 = 14 << 3 | 2;

/// A `bytes` or `bytearray` value at least this long keeps its payload as a
/// piece of its own ([`EncodedValue::from_value`]); a shorter one is copied
/// after its head, which costs less than one more chunk to write. The same
/// as the frame encoder's zero-copy threshold
/// (`pyrpc_framing::ZERO_COPY_MIN`).
pub const SPLIT_MIN: usize = 64 * 1024;

/// The bytes of an encoded `pyrpc.v1.Value`, as one buffer, or as a small
/// head and a large payload that stays the buffer it came in (see the
/// module documentation).
///
/// A value decoded from a frame is always one buffer (a slice of the frame);
/// [`EncodedValue::into_bytes`] gives it back without a copy. Two values are
/// equal when their bytes are, however they are split.
///
/// # Examples
///
/// ```
/// use bytes::Bytes;
/// use prost::Message;
/// use pyrpc_proto::raw::{self, EncodedValue};
/// use pyrpc_proto::{wire, Value};
///
/// let payload = Bytes::from(vec![7u8; 1 << 20]);
/// let v = EncodedValue::from_value(Value::Bytes(payload.clone()));
/// // The payload is not copied ...
/// assert_eq!(v.payload().as_ptr(), payload.as_ptr());
/// // ... and the bytes are the generated encoding's.
/// let generated = wire::Value::from(Value::Bytes(payload)).encode_to_vec();
/// assert_eq!(v.to_vec(), generated);
/// ```
#[derive(Clone, Default)]
pub struct EncodedValue {
    /// The value's bytes, or those before `payload`.
    head: Bytes,
    /// The rest of the value's bytes, when split; empty otherwise.
    payload: Bytes,
}

impl EncodedValue {
    /// The encoding of `v`: a `bytes` or `bytearray` value of at least
    /// [`SPLIT_MIN`] bytes as a head and its own buffer, anything else as
    /// [`super::encode_value`] writes it (a [`Value::Encoded`] as it is).
    pub fn from_value(v: Value) -> EncodedValue {
        match v {
            Value::Bytes(b) if b.len() >= SPLIT_MIN => EncodedValue::split(BYTES_KEY, b),
            Value::ByteArray(b) if b.len() >= SPLIT_MIN => EncodedValue::split(BYTEARRAY_KEY, b),
            v => EncodedValue::from(super::encode_value(v)),
        }
    }

    /// The one-field message `key`, `payload.len()`, `payload`.
    fn split(key: u8, payload: Bytes) -> EncodedValue {
        let mut head = Vec::with_capacity(1 + encoding::encoded_len_varint(payload.len() as u64));
        head.push(key);
        encoding::encode_varint(payload.len() as u64, &mut head);
        EncodedValue {
            head: Bytes::from(head),
            payload,
        }
    }

    /// The length of the encoded value.
    pub fn len(&self) -> usize {
        self.head.len() + self.payload.len()
    }

    /// True for a value of no bytes (read as `None`).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes before [`payload`](Self::payload) (all of them when the
    /// value is not split).
    pub fn head(&self) -> &Bytes {
        &self.head
    }

    /// The payload kept as its own buffer; empty when the value is not
    /// split.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// The bytes as one buffer: the buffer itself when the value is not
    /// split (always so for a decoded value), else a copy of both pieces.
    pub fn into_bytes(self) -> Bytes {
        if self.payload.is_empty() {
            return self.head;
        }
        Bytes::from(self.to_vec())
    }

    /// The bytes, copied into one vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len());
        v.extend_from_slice(&self.head);
        v.extend_from_slice(&self.payload);
        v
    }

    /// Writes the value as length-delimited field `tag` of a message, as
    /// prost writes a `bytes` field: each piece through [`BufMut::put`], so
    /// that a frame encoder that keeps large buffers as chunks of their own
    /// keeps the payload (and a large unsplit value) uncopied.
    pub fn encode_field(&self, tag: u32, buf: &mut impl BufMut) {
        encoding::encode_key(tag, WireType::LengthDelimited, buf);
        encoding::encode_varint(self.len() as u64, buf);
        buf.put(self.head.clone());
        if !self.payload.is_empty() {
            buf.put(self.payload.clone());
        }
    }

    /// The size of [`encode_field`](Self::encode_field)'s output.
    pub fn field_len(&self, tag: u32) -> usize {
        encoding::key_len(tag) + encoding::encoded_len_varint(self.len() as u64) + self.len()
    }
}

impl From<Bytes> for EncodedValue {
    /// An encoded value in one buffer.
    fn from(head: Bytes) -> Self {
        EncodedValue {
            head,
            payload: Bytes::new(),
        }
    }
}

impl From<Vec<u8>> for EncodedValue {
    fn from(v: Vec<u8>) -> Self {
        EncodedValue::from(Bytes::from(v))
    }
}

impl From<EncodedValue> for Bytes {
    fn from(v: EncodedValue) -> Self {
        v.into_bytes()
    }
}

impl PartialEq for EncodedValue {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self
                .head
                .iter()
                .chain(self.payload.iter())
                .eq(other.head.iter().chain(other.payload.iter()))
    }
}

impl PartialEq<Bytes> for EncodedValue {
    fn eq(&self, other: &Bytes) -> bool {
        self.len() == other.len()
            && self.head == other[..self.head.len()]
            && self.payload == other[self.head.len()..]
    }
}

impl std::fmt::Debug for EncodedValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.payload.is_empty() {
            return self.head.fmt(f);
        }
        f.debug_struct("EncodedValue")
            .field("head", &self.head)
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire;
    use prost::Message;

    fn prost_bytes(v: &Value) -> Vec<u8> {
        wire::Value::from(v.clone()).encode_to_vec()
    }

    #[test]
    fn a_large_bytes_or_bytearray_is_split_and_byte_for_byte_prosts_encoding() {
        for n in [SPLIT_MIN, SPLIT_MIN + 1, 300_000, 3 << 20] {
            let payload = Bytes::from((0..n).map(|i| (i % 251) as u8).collect::<Vec<_>>());
            for v in [
                Value::Bytes(payload.clone()),
                Value::ByteArray(payload.clone()),
            ] {
                let want = prost_bytes(&v);
                let e = EncodedValue::from_value(v.clone());
                assert_eq!(e.payload().as_ptr(), payload.as_ptr(), "not copied");
                assert_eq!(e.payload().len(), n);
                assert_eq!(e.len(), want.len());
                assert!(e.to_vec() == want, "{} bytes", n);
                assert_eq!(e.clone().into_bytes(), Bytes::from(want.clone()));
                // Read back as the same value.
                assert_eq!(
                    super::super::decode_value(e.into_bytes(), 10).expect("decodes"),
                    v
                );
            }
        }
    }

    #[test]
    fn small_and_other_values_are_one_buffer() {
        for v in [
            Value::Bytes(Bytes::from(vec![1u8; SPLIT_MIN - 1])),
            Value::ByteArray(Bytes::new()),
            Value::from("x".repeat(SPLIT_MIN)),
            Value::tuple([Value::Bytes(Bytes::from(vec![2u8; SPLIT_MIN]))]),
            Value::None,
        ] {
            let e = EncodedValue::from_value(v.clone());
            assert!(e.payload().is_empty());
            assert!(e.to_vec() == prost_bytes(&v));
        }
        let encoded = super::super::encode_value(Value::from(5));
        let e = EncodedValue::from_value(Value::Encoded(encoded.clone()));
        assert_eq!(e.head().as_ptr(), encoded.as_ptr());
        assert_eq!(e.into_bytes().as_ptr(), encoded.as_ptr(), "not copied");
    }

    #[test]
    fn equality_is_by_bytes_however_split() {
        let payload = Bytes::from(vec![9u8; SPLIT_MIN]);
        let split = EncodedValue::from_value(Value::Bytes(payload));
        let whole = EncodedValue::from(split.to_vec());
        assert_eq!(split, whole);
        assert_eq!(split, Bytes::from(whole.to_vec()));
        let mut other = whole.to_vec();
        *other.last_mut().expect("not empty") = 8;
        assert_ne!(split, EncodedValue::from(other.clone()));
        assert_ne!(split, Bytes::from(other));
        assert_ne!(split, Bytes::new());
    }

    #[test]
    fn the_field_is_prosts_bytes_field() {
        let payload = Bytes::from(vec![4u8; SPLIT_MIN * 2]);
        let e = EncodedValue::from_value(Value::Bytes(payload));
        let mut ours = Vec::new();
        e.encode_field(2, &mut ours);
        let mut theirs = Vec::new();
        encoding::bytes::encode(2, &Bytes::from(e.to_vec()), &mut theirs);
        assert!(ours == theirs);
        assert_eq!(e.field_len(2), ours.len());
    }
}
