//! The flat encoding of deep values (`Value.flat`, decision 0010): one value as
//! a pre-order list of nodes, where a container is a header node (`list_len`,
//! `dict_len`, `record_header`, ...) followed by its items.
//!
//! Protobuf decoders follow nested messages recursively and stop at 100
//! levels; a `Flat` is three levels deep whatever the value's depth, and
//! [`decode`] rebuilds the tree with an explicit stack, so depth is limited
//! only by the configured `max_depth`, never by the call stack.

use crate::error::ValueError;
use crate::kinds::{Record, RecordKind};
use crate::value::{from_wire, Value};
use crate::wire;
use crate::wire::value::Kind;

/// Values nested deeper than this are sent flat; shallower ones as nested
/// messages, which every protobuf runtime reads without help.
pub const NESTED_MAX_DEPTH: usize = 32;

fn malformed(reason: impl Into<String>) -> ValueError {
    ValueError::Malformed {
        kind: "flat",
        reason: reason.into(),
    }
}

/// True when `v` nests deeper than `limit` (walks at most `limit + 1` levels).
pub(crate) fn deeper_than(v: &Value, limit: usize) -> bool {
    if limit == 0 {
        return true;
    }
    match v {
        Value::List(items) | Value::Tuple(items) | Value::Set(items) | Value::FrozenSet(items) => {
            items.iter().any(|i| deeper_than(i, limit - 1))
        }
        Value::Dict(entries) => entries
            .iter()
            .any(|(k, v)| deeper_than(k, limit - 1) || deeper_than(v, limit - 1)),
        Value::Record(r) => r.fields.iter().any(|(_, v)| deeper_than(v, limit - 1)),
        _ => false,
    }
}

// ===== encode =====

/// Writes `v` as a `Flat` value, without recursion.
pub(crate) fn encode(v: Value) -> wire::Value {
    let mut nodes = Vec::new();
    // Pending items, innermost container last; each iterator yields the
    // remaining items of one container in order.
    let mut stack: Vec<std::vec::IntoIter<Value>> = vec![vec![v].into_iter()];
    while let Some(top) = stack.last_mut() {
        let Some(v) = top.next() else {
            stack.pop();
            continue;
        };
        let header = |kind: Kind| wire::Value { kind: Some(kind) };
        let len = |n: usize| n as u64;
        match v {
            Value::List(items) => {
                nodes.push(header(Kind::ListLen(len(items.len()))));
                stack.push(items.into_iter());
            }
            Value::Tuple(items) => {
                nodes.push(header(Kind::TupleLen(len(items.len()))));
                stack.push(items.into_iter());
            }
            Value::Set(items) => {
                nodes.push(header(Kind::SetLen(len(items.len()))));
                stack.push(items.into_iter());
            }
            Value::FrozenSet(items) => {
                nodes.push(header(Kind::FrozensetLen(len(items.len()))));
                stack.push(items.into_iter());
            }
            Value::Dict(entries) => {
                nodes.push(header(Kind::DictLen(len(entries.len()))));
                let mut items = Vec::with_capacity(entries.len() * 2);
                for (k, v) in entries {
                    items.push(k);
                    items.push(v);
                }
                stack.push(items.into_iter());
            }
            Value::Record(r) => {
                let Record {
                    type_name,
                    kind,
                    fields,
                } = *r;
                let (field_names, values): (Vec<String>, Vec<Value>) = fields.into_iter().unzip();
                nodes.push(header(Kind::RecordHeader(Box::new(wire::RecordHeader {
                    type_name,
                    kind: kind as i32,
                    field_names,
                }))));
                stack.push(values.into_iter());
            }
            scalar => nodes.push(wire::Value::from(scalar)),
        }
    }
    wire::Value {
        kind: Some(Kind::Flat(wire::Flat { nodes })),
    }
}

// ===== decode =====

/// A container being rebuilt: what it is, its items so far, how many remain.
enum Open {
    Seq {
        kind: fn(Vec<Value>) -> Value,
        items: Vec<Value>,
        left: u64,
    },
    Dict {
        entries: Vec<(Value, Value)>,
        key: Option<Value>,
        left: u64,
    },
    Record {
        record: Record,
        names: std::vec::IntoIter<String>,
        left: usize,
    },
}

impl Open {
    fn is_full(&self) -> bool {
        match self {
            Open::Seq { left, .. } | Open::Dict { left, .. } => *left == 0,
            Open::Record { left, .. } => *left == 0,
        }
    }

    /// Adds one item; true when the container is now complete.
    fn push(&mut self, v: Value) -> bool {
        match self {
            Open::Seq { items, left, .. } => {
                items.push(v);
                *left -= 1;
            }
            Open::Dict { entries, key, left } => match key.take() {
                None => *key = Some(v),
                Some(k) => {
                    entries.push((k, v));
                    *left -= 1;
                }
            },
            Open::Record {
                record,
                names,
                left,
            } => {
                let name = names.next().unwrap_or_default();
                record.fields.push((name, v));
                *left -= 1;
            }
        }
        self.is_full()
    }

    fn finish(self) -> Value {
        match self {
            Open::Seq { kind, items, .. } => kind(items),
            Open::Dict { entries, .. } => Value::Dict(entries),
            Open::Record { record, .. } => Value::Record(Box::new(record)),
        }
    }
}

/// Rebuilds the value of a `Flat`, refusing anything nested deeper than
/// `left` levels (`max` is the limit named in the error).
///
/// # Errors
///
/// [`ValueError::TooDeep`] past the limit; [`ValueError::Malformed`] for a
/// truncated list, trailing nodes, a nested `flat`, or a header whose item
/// count cannot fit in the nodes that follow it.
pub(crate) fn decode(
    nodes: Vec<wire::Value>,
    left: usize,
    max: usize,
) -> Result<Value, ValueError> {
    let total = nodes.len();
    let mut stack: Vec<Open> = Vec::new();
    let mut root = None;
    for (i, node) in nodes.into_iter().enumerate() {
        if root.is_some() {
            return Err(malformed("nodes after the end of the value"));
        }
        // This node sits at level stack.len() + 1.
        let room = left
            .checked_sub(stack.len())
            .filter(|&r| r > 0)
            .ok_or(ValueError::TooDeep { max })?;
        // Items a header may announce: no more than the nodes left (a dict
        // entry takes two), so no capacity is reserved for absent items.
        let remaining = (total - i - 1) as u64;
        let seq = |kind: fn(Vec<Value>) -> Value, n: u64| -> Result<Open, ValueError> {
            if n > remaining {
                return Err(malformed(format!(
                    "a header of {n} items with {remaining} nodes after it"
                )));
            }
            Ok(Open::Seq {
                kind,
                items: Vec::with_capacity(n as usize),
                left: n,
            })
        };
        let open = match node.kind {
            Some(Kind::ListLen(n)) => seq(Value::List, n)?,
            Some(Kind::TupleLen(n)) => seq(Value::Tuple, n)?,
            Some(Kind::SetLen(n)) => seq(Value::Set, n)?,
            Some(Kind::FrozensetLen(n)) => seq(Value::FrozenSet, n)?,
            Some(Kind::DictLen(n)) => {
                if n.saturating_mul(2) > remaining {
                    return Err(malformed(format!(
                        "a dict of {n} entries with {remaining} nodes after it"
                    )));
                }
                Open::Dict {
                    entries: Vec::with_capacity(n as usize),
                    key: None,
                    left: n,
                }
            }
            Some(Kind::RecordHeader(h)) => {
                let n = h.field_names.len();
                if n as u64 > remaining {
                    return Err(malformed("a record with more fields than nodes"));
                }
                Open::Record {
                    record: Record {
                        type_name: h.type_name,
                        kind: RecordKind::try_from(h.kind).unwrap_or(RecordKind::Unspecified),
                        fields: Vec::with_capacity(n),
                    },
                    names: h.field_names.into_iter(),
                    left: n,
                }
            }
            Some(Kind::Flat(_)) => return Err(malformed("a flat value inside a flat value")),
            kind => {
                let v = from_wire(wire::Value { kind }, room, max)?;
                complete(&mut stack, &mut root, v);
                continue;
            }
        };
        if open.is_full() {
            complete(&mut stack, &mut root, open.finish());
        } else {
            stack.push(open);
        }
    }
    match root {
        Some(v) if stack.is_empty() => Ok(v),
        _ => Err(malformed("the node list ends inside a container")),
    }
}

/// Hands a finished value to the innermost open container, closing every
/// container it completes; the last one closed becomes the root.
fn complete(stack: &mut Vec<Open>, root: &mut Option<Value>, mut v: Value) {
    loop {
        let Some(top) = stack.last_mut() else {
            *root = Some(v);
            return;
        };
        if !top.push(v) {
            return;
        }
        let Some(done) = stack.pop() else { return };
        v = done.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn deep(levels: usize) -> Value {
        let mut v = Value::from(1);
        for i in 0..levels {
            v = match i % 4 {
                0 => Value::list([v]),
                1 => Value::dict([(Value::from(i), v)]),
                2 => Value::tuple([Value::None, v]),
                _ => Value::from(Record::new("m:R", RecordKind::Dataclass).field("f", v)),
            };
        }
        v
    }

    #[test]
    fn flat_round_trips_any_shape() {
        let v = Value::tuple([
            Value::list([]),
            Value::dict([(Value::tuple([Value::from(1)]), Value::Set(vec![]))]),
            Value::FrozenSet(vec![Value::from("x")]),
            deep(50),
        ]);
        let w = encode(v.clone());
        let bytes = w.encode_to_vec();
        let back = Value::from_wire(wire::Value::decode(bytes.as_slice()).unwrap(), 100).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn the_example_of_the_proto_file() {
        let v = Value::list([Value::from(1), Value::list([Value::from("a")])]);
        let Some(Kind::Flat(f)) = encode(v).kind else {
            panic!("not flat")
        };
        let kinds: Vec<_> = f.nodes.into_iter().map(|n| n.kind).collect();
        assert_eq!(
            kinds,
            vec![
                Some(Kind::ListLen(2)),
                Some(Kind::Int(1)),
                Some(Kind::ListLen(1)),
                Some(Kind::Str("a".into()))
            ]
        );
    }

    #[test]
    fn depth_is_exact_and_never_recursive() {
        let v = deep(1023);
        assert_eq!(Value::from_wire(encode(v.clone()), 1024).unwrap(), v);
        assert_eq!(
            Value::from_wire(encode(v), 1023),
            Err(ValueError::TooDeep { max: 1023 })
        );
        // 100k open lists: refused at the limit, no stack used per level.
        let nodes = vec![
            wire::Value {
                kind: Some(Kind::ListLen(1)),
            };
            100_000
        ];
        let w = wire::Value {
            kind: Some(Kind::Flat(wire::Flat { nodes })),
        };
        assert_eq!(
            Value::from_wire(w, 2000),
            Err(ValueError::TooDeep { max: 2000 })
        );
    }

    #[test]
    fn malformed_lists_are_errors() {
        let node = |k| wire::Value { kind: Some(k) };
        for nodes in [
            vec![],
            vec![node(Kind::ListLen(2)), node(Kind::Int(1))],
            vec![node(Kind::Int(1)), node(Kind::Int(2))],
            vec![node(Kind::DictLen(u64::MAX))],
            vec![node(Kind::ListLen(u64::MAX)), node(Kind::Int(1))],
            vec![node(Kind::Flat(wire::Flat { nodes: vec![] }))],
        ] {
            let w = wire::Value {
                kind: Some(Kind::Flat(wire::Flat { nodes })),
            };
            let err = Value::from_wire(w, 100).unwrap_err();
            assert!(matches!(err, ValueError::Malformed { .. }), "{err}");
        }
        // A header outside a flat value.
        let err = Value::from_wire(node(Kind::ListLen(0)), 100).unwrap_err();
        assert!(matches!(err, ValueError::Malformed { .. }), "{err}");
    }
}
