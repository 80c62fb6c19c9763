//! How much memory a request frame takes once decoded, estimated from its
//! bytes before anything is decoded (issue 10, item 7).
//!
//! An empty `Value` is two bytes on the wire but tens of bytes decoded (a
//! prost `wire::Value`, then a [`crate::Value`], then a Python object), so a
//! 64 MB frame of empty values would take gigabytes. [`client_frame_values`]
//! counts the `Value` messages of a `ClientFrame` with a schema-aware scan of
//! its protobuf bytes (an explicit stack, no recursion, nothing allocated per
//! value), so a receiver can refuse such a frame before decoding it.

/// Bytes one decoded value takes at most on the way to the callee: a
/// `wire::Value` (48) and a [`crate::Value`] (40), both alive at once.
pub const DECODED_VALUE_BYTES: u64 = 88;

/// The least decoded size a receiver allows any request: ordinary requests
/// of small frames (a million ints in 5 MB) are never refused.
pub const DECODED_FLOOR: u64 = 256 * 1024 * 1024;

/// The memory the values of a request whose frame (or whose arguments'
/// bytes) is `frame_len` long may take decoded: `max(4 x frame_len,`
/// [`DECODED_FLOOR`]`)`.
///
/// # Examples
///
/// ```
/// use pyrpc_proto::cost::{decoded_budget, DECODED_FLOOR};
///
/// assert_eq!(decoded_budget(1000), DECODED_FLOOR);
/// assert_eq!(decoded_budget(100 << 20), 400 << 20);
/// ```
pub fn decoded_budget(frame_len: u64) -> u64 {
    frame_len.saturating_mul(4).max(DECODED_FLOOR)
}

/// The messages whose fields the scan follows.
#[derive(Clone, Copy, PartialEq)]
enum Msg {
    ClientFrame,
    Request,
    Submit,
    Call,
    Kwarg,
    Value,
    /// `Items`, `Flat` (field 1) and `Dict` (fields 1, 2): repeated values.
    Values,
    Record,
    /// `NdArray`: its `data` (field 3) counts in bytes.
    NdArray,
    /// `IntList`, `FloatList`: each item is one value decoded.
    IntList,
    FloatList,
}

/// Which message field `field` of `msg` holds, if the scan follows it.
fn child(msg: Msg, field: u64) -> Option<Msg> {
    use Msg::*;
    match (msg, field) {
        (ClientFrame, 2) => Some(Request),
        (Request, 2) | (Submit, 2) => Some(Call),
        (Request, 3) => Some(Submit),
        (Call, 2) | (Kwarg, 2) | (Values, 1 | 2) | (Record, 4) => Some(Value),
        (Call, 3) => Some(Kwarg),
        // list, tuple, set, frozenset, dict, flat
        (Value, 8..=12 | 25) => Some(Values),
        (Value, 23) => Some(Record),
        (Value, 24) => Some(NdArray),
        (Value, 32) => Some(IntList),
        (Value, 33) => Some(FloatList),
        _ => None,
    }
}

/// Reads a varint at `*pos`; `None` at the end or on a malformed one.
#[inline(always)]
fn varint(b: &[u8], pos: &mut usize) -> Option<u64> {
    // Tags and most lengths are one byte: that case first, without a loop.
    let first = *b.get(*pos)?;
    *pos += 1;
    if first < 0x80 {
        return Some(u64::from(first));
    }
    let mut v = u64::from(first & 0x7f);
    for shift in (7..64).step_by(7) {
        let byte = *b.get(*pos)?;
        *pos += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// The number of `Value` messages in the body of a `ClientFrame` (values,
/// and the nodes of flat values, at any depth). Malformed bytes end the count
/// early: the decoder refuses them anyway.
///
/// # Examples
///
/// ```
/// use prost::Message;
/// use pyrpc_proto::{cost, wire, Value};
///
/// let call = wire::ClientFrame {
///     kind: Some(wire::client_frame::Kind::Request(wire::Request {
///         id: 1,
///         kind: Some(wire::request::Kind::Call(wire::Call {
///             method: "echo".into(),
///             args: vec![Value::list([Value::from(1), Value::None]).into()],
///             ..Default::default()
///         })),
///     })),
/// };
/// assert_eq!(cost::client_frame_values(&call.encode_to_vec()), 3);
/// ```
pub fn client_frame_values(body: &[u8]) -> u64 {
    client_frame_cost(body).values
}

/// What the values of a request frame take decoded, counted from its bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameCost {
    /// The number of `Value` messages (as [`client_frame_values`]).
    pub values: u64,
    /// The bytes of array elements (`NdArray.data`): a receiver that makes
    /// arrays of them (numpy) holds a copy of each.
    pub array_bytes: u64,
}

impl FrameCost {
    /// The estimated decoded size in bytes:
    /// `values * DECODED_VALUE_BYTES + array_bytes`.
    pub fn decoded_bytes(&self) -> u64 {
        self.values
            .saturating_mul(DECODED_VALUE_BYTES)
            .saturating_add(self.array_bytes)
    }
}

/// The [`FrameCost`] of the body of a `ClientFrame`, in one scan like
/// [`client_frame_values`].
///
/// # Examples
///
/// ```
/// use prost::Message;
/// use pyrpc_proto::{cost, wire, Dtype, NdArray, Value};
///
/// let a = NdArray::new(Dtype::Uint8, vec![1000], vec![7u8; 1000].into()).unwrap();
/// let call = wire::ClientFrame {
///     kind: Some(wire::client_frame::Kind::Request(wire::Request {
///         id: 1,
///         kind: Some(wire::request::Kind::Call(wire::Call {
///             method: "echo".into(),
///             args: vec![Value::from(a).into()],
///             ..Default::default()
///         })),
///     })),
/// };
/// let c = cost::client_frame_cost(&call.encode_to_vec());
/// assert_eq!((c.values, c.array_bytes), (1, 1000));
/// ```
pub fn client_frame_cost(body: &[u8]) -> FrameCost {
    scan::<true>(body, Msg::ClientFrame)
}

/// The number of argument values (positional and keyword) of the body of a
/// `ClientFrame`, each counted once without looking inside it: what a
/// receiver that charges each value as it decodes it (the Python server)
/// allocates for the frame before decoding any value.
///
/// # Examples
///
/// ```
/// use prost::Message;
/// use pyrpc_proto::{cost, wire, Value};
///
/// let call = wire::ClientFrame {
///     kind: Some(wire::client_frame::Kind::Request(wire::Request {
///         id: 1,
///         kind: Some(wire::request::Kind::Call(wire::Call {
///             method: "echo".into(),
///             args: vec![Value::list([Value::from(1), Value::None]).into(), Value::None.into()],
///             ..Default::default()
///         })),
///     })),
/// };
/// assert_eq!(cost::client_frame_arguments(&call.encode_to_vec()), 2);
/// ```
pub fn client_frame_arguments(body: &[u8]) -> u64 {
    scan::<false>(body, Msg::ClientFrame).values
}

/// The [`FrameCost`] of what one encoded `Value` message holds: the values
/// nested in it (not itself) and its array bytes.
///
/// # Examples
///
/// ```
/// use pyrpc_proto::{cost, raw, Value};
///
/// let v = raw::encode_value(Value::list([Value::from(1), Value::list([Value::None])]));
/// assert_eq!(cost::value_cost(&v).values, 3);
/// ```
pub fn value_cost(value: &[u8]) -> FrameCost {
    scan::<true>(value, Msg::Value)
}

/// The scan from `root`, the message `body` holds; with `DEEP` false, a
/// `Value` is counted and passed over without looking inside.
#[inline(always)]
fn scan<const DEEP: bool>(body: &[u8], root: Msg) -> FrameCost {
    // Deeper nesting than this is refused by prost (100 messages) anyway.
    const MAX_NESTING: usize = 128;
    let mut count = 0u64;
    let mut array_bytes = 0u64;
    // (message, end of its bytes); the scan position is shared.
    let mut stack: Vec<(Msg, usize)> = vec![(root, body.len())];
    let mut pos = 0usize;
    while let Some(&(msg, end)) = stack.last() {
        if pos >= end {
            stack.pop();
            continue;
        }
        if msg == Msg::Values && stack.len() < MAX_NESTING {
            // A list's or dict's items in a loop of their own; a container
            // item gets its stack entry, anything else is read below.
            match items_run(body, &mut pos, end, &mut count) {
                Run::End => continue,
                Run::Container(field_end) => {
                    stack.push((Msg::Value, field_end));
                    continue;
                }
                Run::Other => {}
            }
        }
        let Some(tag) = varint(body, &mut pos) else {
            return FrameCost {
                values: count,
                array_bytes,
            };
        };
        let skip = match tag & 7 {
            0 => varint(body, &mut pos).map(|_| 0),
            1 => Some(8),
            5 => Some(4),
            2 => varint(body, &mut pos),
            _ => None,
        };
        let Some(skip) = skip.and_then(|s| usize::try_from(s).ok()) else {
            return FrameCost {
                values: count,
                array_bytes,
            };
        };
        let Some(field_end) = pos.checked_add(skip).filter(|&e| e <= end) else {
            return FrameCost {
                values: count,
                array_bytes,
            };
        };
        if matches!(msg, Msg::IntList | Msg::FloatList) {
            count = count.saturating_add(packed_items(msg, tag, &body[pos..field_end]));
            pos = field_end;
            continue;
        }
        match child(msg, tag >> 3) {
            Some(inner) if tag & 7 == 2 && stack.len() < MAX_NESTING => {
                if inner == Msg::Value {
                    count += 1;
                    // Most values are scalars: passed over whole, without
                    // a stack entry and the loop's rounds for it.
                    if !DEEP || is_leaf_value(body, pos, field_end) {
                        pos = field_end;
                        continue;
                    }
                }
                stack.push((inner, field_end));
            }
            _ => {
                if msg == Msg::NdArray && tag == (3 << 3 | 2) {
                    array_bytes = array_bytes.saturating_add(skip as u64);
                }
                pos = field_end;
            }
        }
    }
    FrameCost {
        values: count,
        array_bytes,
    }
}

/// Where [`items_run`] stopped.
enum Run {
    /// At the end of the message.
    End,
    /// After the key and length of an item that is a container, which ends
    /// here.
    Container(usize),
    /// Before a field that is not an item, or is malformed.
    Other,
}

/// Counts the items (`Value` fields 1 and 2) of the `Values` message that
/// ends at `end`, from `*pos`, passing over the scalar ones whole.
#[inline(always)]
fn items_run(body: &[u8], pos: &mut usize, end: usize, count: &mut u64) -> Run {
    while *pos < end {
        let at = *pos;
        let item = match body.get(at) {
            Some(&(ITEM | DICT_VALUE)) => {
                *pos += 1;
                varint(body, pos)
                    .and_then(|n| usize::try_from(n).ok())
                    .and_then(|n| pos.checked_add(n))
                    .filter(|&e| e <= end)
            }
            _ => None,
        };
        let Some(field_end) = item else {
            *pos = at;
            return Run::Other;
        };
        *count += 1;
        if !is_leaf_value(body, *pos, field_end) {
            return Run::Container(field_end);
        }
        *pos = field_end;
    }
    Run::End
}

/// `Items.items` / `Dict.keys` and `Dict.values`: field 1 and 2, length-
/// delimited.
const ITEM: u8 = 1 << 3 | 2;
const DICT_VALUE: u8 = 2 << 3 | 2;

/// Whether the `Value` message `body[pos..end]` has no field the scan
/// follows (a `None`, `bool`, `int`, `float`, `str`, `bytes`, ...), so that
/// [`client_frame_cost`] can pass over it whole. `false` for a container and
/// for malformed bytes, which the scan's loop then reads as before (and
/// stops at).
#[inline(always)]
fn is_leaf_value(body: &[u8], mut pos: usize, end: usize) -> bool {
    while pos < end {
        let Some(tag) = varint(body, &mut pos) else {
            return false;
        };
        let skip = match tag & 7 {
            0 => match varint(body, &mut pos) {
                Some(_) => 0,
                None => return false,
            },
            1 => 8,
            5 => 4,
            2 if child(Msg::Value, tag >> 3).is_none() => match varint(body, &mut pos) {
                Some(n) => n,
                None => return false,
            },
            _ => return false,
        };
        match usize::try_from(skip)
            .ok()
            .and_then(|s| pos.checked_add(s))
            .filter(|&e| e <= end)
        {
            Some(next) => pos = next,
            None => return false,
        }
    }
    true
}

/// The items of one field of an `IntList` or `FloatList` (`tag`, with
/// `data` the bytes after its key for a packed field, or of its one value).
fn packed_items(msg: Msg, tag: u64, data: &[u8]) -> u64 {
    match (tag >> 3, tag & 7) {
        // Packed: one varint ends at each byte below 0x80; doubles are 8 bytes.
        (1, 2) if msg == Msg::IntList => data.iter().filter(|&&b| b < 0x80).count() as u64,
        (1, 2) => data.len() as u64 / 8,
        // Unpacked: one item per field.
        (1, 0 | 1) => 1,
        _ => 0,
    }
}

#[cfg(test)]
mod tests;
