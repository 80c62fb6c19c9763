//! One walk from a `pyrpc.v1.Value`'s bytes to a [`Value`], for the kinds
//! an ordinary call carries: `None`, `bool`, `int`, `float`, `str`,
//! `bytes`, `list`, `tuple` and `dict` (decision 0075).
//!
//! [`crate::raw::decode_value`] used to decode every value twice over: into
//! prost's generated `wire::Value` tree (one allocation per node) and then
//! into a `Value` tree ([`Value::from_wire`]). This reader builds the `Value`
//! straight from the bytes. It takes no decision of its own: anything it
//! does not read exactly as the generated path would (another kind, an
//! unknown field, a kind given twice, which protobuf merges, a wire type
//! that does not match, bad UTF-8, a malformed varint, a dict whose keys and
//! values differ in number, nesting at the depth limit or beyond
//! [`DIRECT_MAX_NESTING`]) gives up, and the caller decodes the same bytes
//! the generated way, whose answer (a value or its error) is the answer.
//!
//! [`encode`] is the same idea the other way: a value made of those kinds
//! only, nested no deeper than [`crate::NESTED_MAX_DEPTH`], is written
//! straight to bytes, byte for byte what prost writes for its
//! `wire::Value` (packed lists as `int_list` / `float_list`, PROTOCOL.md
//! §5); any other value is left to the generated encoder.

use bytes::Bytes;

use super::Value;

/// The deepest nesting read here; deeper values go the generated way
/// (prost's recursion limit of 100 messages is two per level of a
/// container, so its errors stay its own).
pub(crate) const DIRECT_MAX_NESTING: usize = 32;

/// `src` read as a value nested at most `left` levels, or `None` when the
/// generated decoder must decide (see the module documentation).
pub(crate) fn decode(src: &Bytes, left: usize) -> Option<Value> {
    let mut r = Reader { src, pos: 0 };
    let v = r.value(src.len(), left, DIRECT_MAX_NESTING)?;
    (r.pos == src.len()).then_some(v)
}

struct Reader<'a> {
    src: &'a Bytes,
    pos: usize,
}

/// Protobuf wire types.
const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const LEN: u64 = 2;

impl Reader<'_> {
    fn varint(&mut self, end: usize) -> Option<u64> {
        let mut out = 0u64;
        for i in 0..10 {
            let b = *self.src.get(self.pos).filter(|_| self.pos < end)?;
            self.pos += 1;
            // The tenth byte may hold only the top bit (prost refuses more).
            if i == 9 && b > 1 {
                return None;
            }
            out |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Some(out);
            }
        }
        None
    }

    /// A field's key: (field number, wire type).
    fn key(&mut self, end: usize) -> Option<(u64, u64)> {
        let key = self.varint(end)?;
        let field = key >> 3;
        if key > u64::from(u32::MAX) || field == 0 {
            return None;
        }
        Some((field, key & 7))
    }

    /// The end of a length-delimited field starting here.
    fn len_end(&mut self, end: usize) -> Option<usize> {
        let len = usize::try_from(self.varint(end)?).ok()?;
        let to = self.pos.checked_add(len)?;
        (to <= end).then_some(to)
    }

    /// A `Value` message occupying `pos..end`.
    fn value(&mut self, end: usize, left: usize, nesting: usize) -> Option<Value> {
        if left == 0 || nesting == 0 {
            return None;
        }
        let mut out = None;
        while self.pos < end {
            let (field, wire) = self.key(end)?;
            let v = match (field, wire) {
                // `NoneValue`: an empty message.
                (1, LEN) => {
                    let to = self.len_end(end)?;
                    if to != self.pos {
                        return None;
                    }
                    Value::None
                }
                (2, VARINT) => Value::Bool(self.varint(end)? != 0),
                (3, VARINT) => Value::Int(self.sint64(end)?),
                (5, FIXED64) => Value::Float(self.double(end)?),
                (6, LEN) => {
                    let to = self.len_end(end)?;
                    let s = std::str::from_utf8(&self.src[self.pos..to]).ok()?;
                    let s = s.to_owned();
                    self.pos = to;
                    Value::Str(s)
                }
                (7, LEN) => {
                    let to = self.len_end(end)?;
                    let b = self.src.slice(self.pos..to);
                    self.pos = to;
                    Value::Bytes(b)
                }
                (8, LEN) => Value::List(self.items(end, left, nesting)?),
                (9, LEN) => Value::Tuple(self.items(end, left, nesting)?),
                (12, LEN) => self.dict(end, left, nesting)?,
                (32, LEN) => Value::List(self.packed(end, left, false)?),
                (33, LEN) => Value::List(self.packed(end, left, true)?),
                _ => return None,
            };
            // A kind given twice is merged by protobuf's rules: not here.
            if out.replace(v).is_some() {
                return None;
            }
        }
        (self.pos == end).then(|| out.unwrap_or(Value::None))
    }

    fn sint64(&mut self, end: usize) -> Option<i64> {
        let n = self.varint(end)?;
        Some(((n >> 1) as i64) ^ -((n & 1) as i64))
    }

    fn double(&mut self, end: usize) -> Option<f64> {
        let to = self.pos.checked_add(8).filter(|&to| to <= end)?;
        let bits: [u8; 8] = self.src[self.pos..to].try_into().ok()?;
        self.pos = to;
        Some(f64::from_le_bytes(bits))
    }

    /// An `IntList` or a `FloatList` (field 1: repeated `sint64` or
    /// `double`, packed or not). Its items are one level below it.
    fn packed(&mut self, end: usize, left: usize, float: bool) -> Option<Vec<Value>> {
        let to = self.len_end(end)?;
        let mut items = Vec::new();
        let mut one = |r: &mut Self, end: usize| -> Option<()> {
            items.push(if float {
                Value::Float(r.double(end)?)
            } else {
                Value::Int(r.sint64(end)?)
            });
            Some(())
        };
        while self.pos < to {
            match self.key(to)? {
                (1, LEN) => {
                    let run = self.len_end(to)?;
                    while self.pos < run {
                        one(self, run)?;
                    }
                }
                (1, VARINT) if !float => one(self, to)?,
                (1, FIXED64) if float => one(self, to)?,
                _ => return None,
            }
        }
        if left <= 1 && !items.is_empty() {
            return None;
        }
        Some(items)
    }

    /// An `Items` message (field 1: repeated `Value`).
    fn items(&mut self, end: usize, left: usize, nesting: usize) -> Option<Vec<Value>> {
        let to = self.len_end(end)?;
        let mut items = Vec::new();
        while self.pos < to {
            match self.key(to)? {
                (1, LEN) => {
                    let item_end = self.len_end(to)?;
                    items.push(self.value(item_end, left - 1, nesting - 1)?);
                }
                _ => return None,
            }
        }
        Some(items)
    }

    /// A `Dict` message (field 1: keys, field 2: values, in step).
    fn dict(&mut self, end: usize, left: usize, nesting: usize) -> Option<Value> {
        let to = self.len_end(end)?;
        let (mut keys, mut values) = (Vec::new(), Vec::new());
        while self.pos < to {
            let (field, wire) = self.key(to)?;
            let item_end = match wire {
                LEN => self.len_end(to)?,
                _ => return None,
            };
            let v = self.value(item_end, left - 1, nesting - 1)?;
            match field {
                1 => keys.push(v),
                2 => values.push(v),
                _ => return None,
            }
        }
        if keys.len() != values.len() {
            return None;
        }
        Some(Value::Dict(keys.into_iter().zip(values).collect()))
    }
}

// ===== encoding =====

/// The bytes of `v` as a `pyrpc.v1.Value`, or `None` when a kind or the
/// nesting is not one written here (see the module documentation).
pub(crate) fn encode(v: &Value) -> Option<Bytes> {
    let len = body_len(v, crate::NESTED_MAX_DEPTH)?;
    let mut out = Vec::with_capacity(len);
    write_body(v, &mut out);
    debug_assert_eq!(out.len(), len);
    Some(Bytes::from(out))
}

fn varint_len(n: u64) -> usize {
    // 1 byte per 7 bits, at least one.
    (64 - (n | 1).leading_zeros() as usize).div_ceil(7)
}

fn zigzag(i: i64) -> u64 {
    ((i << 1) ^ (i >> 63)) as u64
}

/// A length-delimited field's size after its key: the length and the body.
fn delimited(len: usize) -> usize {
    varint_len(len as u64) + len
}

/// The packed list `v` would be written as, if any: all ints, or all floats.
fn packed_kind(v: &[Value]) -> Option<bool> {
    match v.first() {
        Some(Value::Int(_)) if v.iter().all(|x| matches!(x, Value::Int(_))) => Some(false),
        Some(Value::Float(_)) if v.iter().all(|x| matches!(x, Value::Float(_))) => Some(true),
        _ => None,
    }
}

fn packed_payload(v: &[Value]) -> usize {
    v.iter()
        .map(|x| match x {
            Value::Int(i) => varint_len(zigzag(*i)),
            _ => 8,
        })
        .sum()
}

/// The size of an `Items` body, or of a `Dict` body's keys and values.
fn items_len<'a>(items: impl Iterator<Item = &'a Value>, left: usize) -> Option<usize> {
    let mut len = 0;
    for v in items {
        len += 1 + delimited(body_len(v, left)?);
    }
    Some(len)
}

/// The size of `v`'s `Value` message, if it is written here; `left` is
/// the nesting it may still take (as `flat::deeper_than` counts it).
fn body_len(v: &Value, left: usize) -> Option<usize> {
    if left == 0 {
        return None;
    }
    Some(match v {
        Value::None => 2,
        Value::Bool(_) => 2,
        Value::Int(i) => 1 + varint_len(zigzag(*i)),
        Value::Float(_) => 9,
        Value::Str(s) => 1 + delimited(s.len()),
        Value::Bytes(b) => 1 + delimited(b.len()),
        Value::List(items) => match packed_kind(items) {
            Some(_) if left < 2 => return None,
            // Key 32 or 33 takes two bytes; the list's one field, packed.
            Some(_) => 2 + delimited(1 + delimited(packed_payload(items))),
            None => 1 + delimited(items_len(items.iter(), left - 1)?),
        },
        Value::Tuple(items) => 1 + delimited(items_len(items.iter(), left - 1)?),
        Value::Dict(entries) => {
            let keys = items_len(entries.iter().map(|(k, _)| k), left - 1)?;
            let values = items_len(entries.iter().map(|(_, v)| v), left - 1)?;
            1 + delimited(keys + values)
        }
        _ => return None,
    })
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Writes a value `body_len` accepted (with any `left`).
fn write_body(v: &Value, out: &mut Vec<u8>) {
    // Keys: field << 3 | wire type.
    match v {
        Value::None => out.extend_from_slice(&[0x0a, 0x00]),
        Value::Bool(b) => out.extend_from_slice(&[0x10, u8::from(*b)]),
        Value::Int(i) => {
            out.push(0x18);
            put_varint(out, zigzag(*i));
        }
        Value::Float(f) => {
            out.push(0x29);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Value::Str(s) => {
            out.push(0x32);
            put_varint(out, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        Value::Bytes(b) => {
            out.push(0x3a);
            put_varint(out, b.len() as u64);
            out.extend_from_slice(b);
        }
        Value::List(items) => match packed_kind(items) {
            Some(float) => {
                // Field 32 (`int_list`) or 33 (`float_list`), length-delimited.
                out.extend_from_slice(if float { &[0x8a, 0x02] } else { &[0x82, 0x02] });
                let payload = packed_payload(items);
                put_varint(out, delimited(payload) as u64 + 1);
                out.push(0x0a);
                put_varint(out, payload as u64);
                for x in items {
                    match x {
                        Value::Int(i) => put_varint(out, zigzag(*i)),
                        Value::Float(f) => out.extend_from_slice(&f.to_le_bytes()),
                        _ => {}
                    }
                }
            }
            None => write_items(0x42, items.iter(), items.iter(), 0x0a, out),
        },
        Value::Tuple(items) => write_items(0x4a, items.iter(), items.iter(), 0x0a, out),
        Value::Dict(entries) => {
            out.push(0x62);
            let keys = entries.iter().map(|(k, _)| k);
            let values = entries.iter().map(|(_, v)| v);
            let len = sum_fields(keys.clone()) + sum_fields(values.clone());
            put_varint(out, len as u64);
            for k in keys {
                write_field(0x0a, k, out);
            }
            for v in values {
                write_field(0x12, v, out);
            }
        }
        _ => {}
    }
}

/// The size of repeated `Value` fields (key, length, body each).
fn sum_fields<'a>(items: impl Iterator<Item = &'a Value>) -> usize {
    items
        .map(|v| 1 + delimited(body_len(v, usize::MAX).unwrap_or(0)))
        .sum()
}

fn write_field(key: u8, v: &Value, out: &mut Vec<u8>) {
    out.push(key);
    put_varint(out, body_len(v, usize::MAX).unwrap_or(0) as u64);
    write_body(v, out);
}

/// An `Items` message as field `key` of a `Value`.
fn write_items<'a>(
    key: u8,
    sizes: impl Iterator<Item = &'a Value>,
    items: impl Iterator<Item = &'a Value>,
    item_key: u8,
    out: &mut Vec<u8>,
) {
    out.push(key);
    put_varint(out, sum_fields(sizes) as u64);
    for v in items {
        write_field(item_key, v, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raw;
    use crate::wire;
    use prost::Message;

    /// The generated path, which the direct reader must agree with.
    fn generated(bytes: &Bytes, max: usize) -> Result<Value, crate::ValueError> {
        let w = wire::Value::decode(bytes.clone())
            .map_err(|e| crate::ValueError::Undecodable(e.to_string()))?;
        Value::from_wire(w, max)
    }

    fn samples() -> Vec<Value> {
        vec![
            Value::None,
            Value::Bool(true),
            Value::Bool(false),
            Value::Int(0),
            Value::Int(-1),
            Value::Int(i64::MIN),
            Value::Int(i64::MAX),
            Value::Float(-0.0),
            Value::Float(f64::INFINITY),
            Value::Float(1.5e300),
            Value::from("héllo"),
            Value::from(""),
            Value::Bytes(Bytes::from_static(b"\x00\xff")),
            Value::tuple([
                Value::List(vec![Value::Int(1)]),
                Value::Dict(vec![(Value::from("foo"), Value::from("foo"))]),
            ]),
            Value::List(vec![]),
            Value::Dict(vec![]),
            Value::List(vec![Value::Set(vec![Value::Int(1)])]),
            Value::List(vec![Value::Float(0.5), Value::None, Value::List(vec![])]),
            Value::List(vec![Value::Int(-3), Value::Int(1 << 40)]),
            Value::List(vec![Value::Float(0.25), Value::Float(-1.0)]),
        ]
    }

    /// Every kind it reads comes out as the generated decoder's; the kinds
    /// it leaves (a set inside a list) go the generated way.
    #[test]
    fn reads_what_the_generated_decoder_reads() {
        for v in samples() {
            let bytes = raw::encode_value(v.clone());
            assert_eq!(raw::decode_value(bytes.clone(), 64).as_ref(), Ok(&v));
            assert_eq!(generated(&bytes, 64).as_ref(), Ok(&v));
            let direct = decode(&bytes, 64);
            if let Some(d) = &direct {
                assert_eq!(d, &v);
            }
            let plain = !matches!(&v, Value::List(items) if items.iter().any(|i| matches!(i, Value::Set(_))));
            assert_eq!(direct.is_some(), plain, "{v:?}");
        }
    }

    /// What it writes is what prost writes for the same value, and a value
    /// it does not write (a set, a value deeper than the nested limit) is
    /// left to prost.
    #[test]
    fn writes_what_the_generated_encoder_writes() {
        let mut values = samples();
        values.push(Value::Str("x".repeat(300)));
        values.push(Value::List(vec![Value::Int(i64::MIN); 200]));
        values.push(Value::Dict(vec![(
            Value::Int(1),
            Value::List(vec![Value::from("a"); 70]),
        )]));
        for v in values {
            let prost = Bytes::from(wire::Value::from(v.clone()).encode_to_vec());
            match encode(&v) {
                Some(direct) => assert_eq!(direct, prost, "{v:?}"),
                None => assert!(
                    matches!(&v, Value::List(items) if items.iter().any(|i| matches!(i, Value::Set(_)))),
                    "{v:?} left to prost"
                ),
            }
            assert_eq!(raw::encode_value(v.clone()), prost);
        }
        for depth in [30, 31, 32, 33, 40] {
            let mut v = Value::List(vec![Value::Int(1), Value::from("x")]);
            let mut packed = Value::List(vec![Value::Int(1)]);
            for _ in 1..depth - 1 {
                v = Value::Tuple(vec![v]);
                packed = Value::Tuple(vec![packed]);
            }
            for v in [v, packed] {
                let prost = Bytes::from(wire::Value::from(v.clone()).encode_to_vec());
                assert_eq!(raw::encode_value(v.clone()), prost, "depth {depth}");
                assert_eq!(
                    encode(&v).is_some(),
                    depth <= crate::NESTED_MAX_DEPTH,
                    "depth {depth}"
                );
            }
        }
    }

    /// At and past the depth limit, the answer (and the error) is the
    /// generated decoder's.
    #[test]
    fn depth_limits_stay_the_generated_decoders() {
        let mut v = Value::Int(1);
        for _ in 0..40 {
            v = Value::List(vec![v]);
        }
        let bytes = raw::encode_value(v.clone());
        // 41 levels: past the direct reader's nesting, fine for the limit.
        assert!(decode(&bytes, 64).is_none());
        assert_eq!(raw::decode_value(bytes.clone(), 64), Ok(v));
        for max in [1, 2, 10, 41, 42] {
            assert_eq!(
                raw::decode_value(bytes.clone(), max),
                generated(&bytes, max),
                "max {max}"
            );
        }
        let small = raw::encode_value(Value::List(vec![Value::List(vec![Value::Int(1)])]));
        for max in 1..5 {
            assert_eq!(
                raw::decode_value(small.clone(), max),
                generated(&small, max),
                "max {max}"
            );
        }
    }

    /// Bytes that are not what the encoder writes (a kind given twice,
    /// unknown fields, truncations, every single-byte change of an encoded
    /// value) decode exactly as the generated decoder decodes them, error
    /// or value.
    #[test]
    fn odd_bytes_decode_as_the_generated_decoder_decodes_them() {
        let mut cases: Vec<Vec<u8>> = vec![
            // int 1 then int 2: last wins in protobuf.
            vec![0x18, 0x02, 0x18, 0x04],
            // a list given twice: protobuf merges the two.
            vec![0x42, 0x02, 0x0a, 0x00, 0x42, 0x02, 0x0a, 0x00],
            // an unknown field 100 (varint).
            vec![0xa0, 0x06, 0x01, 0x18, 0x02],
            // a NoneValue with an unknown field inside.
            vec![0x0a, 0x02, 0x08, 0x01],
            // bad UTF-8 in a str.
            vec![0x32, 0x01, 0xff],
            // an overlong varint.
            vec![
                0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
            ],
            // a dict with one key and no value.
            vec![0x62, 0x02, 0x0a, 0x00],
            // field 0.
            vec![0x00, 0x01],
            vec![],
        ];
        for v in samples() {
            let bytes = raw::encode_value(v).to_vec();
            for cut in 0..bytes.len() {
                cases.push(bytes[..cut].to_vec());
            }
            for i in 0..bytes.len() {
                for b in [0x00, 0x01, 0x02, 0x07, 0x0a, 0x7f, 0x80, 0xff] {
                    let mut c = bytes.clone();
                    c[i] = b;
                    cases.push(c);
                }
            }
        }
        for case in cases {
            let bytes = Bytes::from(case);
            // Compared as text: a changed float may be a NaN.
            assert_eq!(
                format!("{:?}", raw::decode_value(bytes.clone(), 64)),
                format!("{:?}", generated(&bytes, 64)),
                "{:02x?}",
                &bytes[..]
            );
        }
    }
}
