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
