//! `Clone` and `PartialEq` for [`Value`] without recursion (issue 10, item
//! 5): a value as deep as a decoder accepts (and deeper, if a user raises the
//! limit) is cloned and compared with an explicit stack on the heap, never
//! one stack frame per level.

use crate::{Record, Value};

/// The child values of a container, in order (a dict's key, value, key,
/// value, ...; a record's field values); `None` for a value without any.
pub(crate) fn children(v: &Value) -> Option<Box<dyn Iterator<Item = &Value> + '_>> {
    match v {
        Value::List(items) | Value::Tuple(items) | Value::Set(items) | Value::FrozenSet(items) => {
            Some(Box::new(items.iter()))
        }
        Value::Dict(entries) => Some(Box::new(entries.iter().flat_map(|(k, v)| [k, v]))),
        Value::Record(r) => Some(Box::new(r.fields.iter().map(|(_, v)| v))),
        _ => None,
    }
}

/// How many child values [`children`] yields.
fn child_count(v: &Value) -> usize {
    match v {
        Value::List(items) | Value::Tuple(items) | Value::Set(items) | Value::FrozenSet(items) => {
            items.len()
        }
        Value::Dict(entries) => 2 * entries.len(),
        Value::Record(r) => r.fields.len(),
        _ => 0,
    }
}

/// A copy of a value that has no children.
fn clone_leaf(v: &Value) -> Value {
    match v {
        Value::None => Value::None,
        Value::Bool(b) => Value::Bool(*b),
        Value::Int(i) => Value::Int(*i),
        Value::BigInt(b) => Value::BigInt(b.clone()),
        Value::Float(f) => Value::Float(*f),
        Value::Str(s) => Value::Str(s.clone()),
        Value::Bytes(b) => Value::Bytes(b.clone()),
        Value::Pickle(b) => Value::Pickle(b.clone()),
        Value::ByteArray(b) => Value::ByteArray(b.clone()),
        Value::DateTime(d) => Value::DateTime(d.clone()),
        Value::Date(d) => Value::Date(*d),
        Value::Time(t) => Value::Time(t.clone()),
        Value::TimeDelta(t) => Value::TimeDelta(*t),
        Value::Decimal(d) => Value::Decimal(d.clone()),
        Value::Uuid(u) => Value::Uuid(*u),
        Value::Complex { re, im } => Value::Complex { re: *re, im: *im },
        Value::Fraction(f) => Value::Fraction(f.clone()),
        Value::Encoded(b) => Value::Encoded(b.clone()),
        Value::NdArray(a) => Value::NdArray(a.clone()),
        Value::List(_) => Value::List(Vec::new()),
        Value::Tuple(_) => Value::Tuple(Vec::new()),
        Value::Set(_) => Value::Set(Vec::new()),
        Value::FrozenSet(_) => Value::FrozenSet(Vec::new()),
        Value::Dict(_) => Value::Dict(Vec::new()),
        Value::Record(r) => Value::Record(Box::new(Record {
            type_name: r.type_name.clone(),
            kind: r.kind,
            fields: Vec::new(),
        })),
    }
}

/// `like`'s container kind holding `items` (copied children, in
/// [`children`]'s order).
fn rebuild(like: &Value, items: Vec<Value>) -> Value {
    match like {
        Value::List(_) => Value::List(items),
        Value::Tuple(_) => Value::Tuple(items),
        Value::Set(_) => Value::Set(items),
        Value::FrozenSet(_) => Value::FrozenSet(items),
        Value::Dict(_) => {
            let mut entries = Vec::with_capacity(items.len() / 2);
            let mut it = items.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                entries.push((k, v));
            }
            Value::Dict(entries)
        }
        Value::Record(r) => Value::Record(Box::new(Record {
            type_name: r.type_name.clone(),
            kind: r.kind,
            fields: r
                .fields
                .iter()
                .map(|(name, _)| name.clone())
                .zip(items)
                .collect(),
        })),
        leaf => clone_leaf(leaf),
    }
}

impl Clone for Value {
    /// A deep copy, made with an explicit stack.
    ///
    /// ```
    /// use pyrpc_proto::Value;
    ///
    /// let v = Value::list([Value::dict([(Value::from("k"), Value::from(1))])]);
    /// assert_eq!(v.clone(), v);
    /// ```
    fn clone(&self) -> Value {
        if child_count(self) == 0 {
            return clone_leaf(self);
        }
        enum Task<'a> {
            Visit(&'a Value),
            Build(&'a Value),
        }
        let mut tasks = vec![Task::Visit(self)];
        let mut done: Vec<Value> = Vec::new();
        while let Some(task) = tasks.pop() {
            match task {
                Task::Visit(v) => match children(v) {
                    Some(items) if child_count(v) > 0 => {
                        tasks.push(Task::Build(v));
                        let at = tasks.len();
                        tasks.extend(items.map(Task::Visit));
                        tasks[at..].reverse();
                    }
                    _ => done.push(clone_leaf(v)),
                },
                Task::Build(v) => {
                    let items = done.split_off(done.len() - child_count(v));
                    done.push(rebuild(v, items));
                }
            }
        }
        done.pop().unwrap_or_default()
    }
}

/// Whether two values are equal apart from their children (same kind, same
/// scalar contents, same number of children, same record names).
fn shallow_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::None, Value::None) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::BigInt(x), Value::BigInt(y)) => x == y,
        (Value::Float(x), Value::Float(y)) => x == y,
        (Value::Str(x), Value::Str(y)) | (Value::Decimal(x), Value::Decimal(y)) => x == y,
        (Value::Bytes(x), Value::Bytes(y))
        | (Value::Pickle(x), Value::Pickle(y))
        | (Value::ByteArray(x), Value::ByteArray(y))
        | (Value::Encoded(x), Value::Encoded(y)) => x == y,
        (Value::DateTime(x), Value::DateTime(y)) => x == y,
        (Value::Date(x), Value::Date(y)) => x == y,
        (Value::Time(x), Value::Time(y)) => x == y,
        (Value::TimeDelta(x), Value::TimeDelta(y)) => x == y,
        (Value::Uuid(x), Value::Uuid(y)) => x == y,
        (Value::Complex { re: a, im: b }, Value::Complex { re: c, im: d }) => a == c && b == d,
        (Value::Fraction(x), Value::Fraction(y)) => x == y,
        (Value::NdArray(x), Value::NdArray(y)) => x == y,
        (Value::List(x), Value::List(y))
        | (Value::Tuple(x), Value::Tuple(y))
        | (Value::Set(x), Value::Set(y))
        | (Value::FrozenSet(x), Value::FrozenSet(y)) => x.len() == y.len(),
        (Value::Dict(x), Value::Dict(y)) => x.len() == y.len(),
        (Value::Record(x), Value::Record(y)) => {
            x.type_name == y.type_name
                && x.kind == y.kind
                && x.fields.len() == y.fields.len()
                && x.fields.iter().zip(&y.fields).all(|(f, g)| f.0 == g.0)
        }
        _ => false,
    }
}

impl PartialEq for Value {
    /// Structural equality (floats as `f64`: NaN differs from itself),
    /// compared with an explicit stack.
    fn eq(&self, other: &Value) -> bool {
        let mut pairs = vec![(self, other)];
        while let Some((a, b)) = pairs.pop() {
            if !shallow_eq(a, b) {
                return false;
            }
            if let (Some(x), Some(y)) = (children(a), children(b)) {
                pairs.extend(x.zip(y));
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RecordKind;

    /// `levels` lists around a dict holding a record, built iteratively.
    fn deep(levels: usize) -> Value {
        deep_with(levels, 1.5)
    }

    /// As [`deep`], with `leaf` as the record's field at the bottom.
    fn deep_with(levels: usize, leaf: f64) -> Value {
        let mut record = Record::new("m:R", RecordKind::Dataclass);
        record.fields.push(("x".into(), Value::from(leaf)));
        let mut v = Value::dict([(Value::from("k"), Value::Record(Box::new(record)))]);
        for i in 0..levels {
            v = if i % 2 == 0 {
                Value::list([v, Value::from(i as i64)])
            } else {
                Value::tuple([v])
            };
        }
        v
    }

    /// Takes a deep value apart level by level (the derived drop recurses).
    fn dismantle(mut v: Value) {
        loop {
            let next = match &mut v {
                Value::List(items) | Value::Tuple(items) if !items.is_empty() => {
                    items.swap_remove(0)
                }
                _ => break,
            };
            v = next;
        }
    }

    /// Deep enough that one stack frame per level would overflow the 256 KiB
    /// stack many times over (a million takes 20 s in a debug build).
    const LEVELS: usize = 300_000;

    #[test]
    fn deep_values_clone_and_compare_on_a_small_stack() {
        std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(|| {
                let a = deep(LEVELS);
                let b = a.clone();
                assert!(a == b);
                // Differs only at the bottom: compared all the way down.
                let c = deep_with(LEVELS, 2.5);
                assert!(a != c);
                dismantle(a);
                dismantle(b);
                dismantle(c);
            })
            .expect("spawns")
            .join()
            .expect("no stack overflow");
    }

    #[test]
    fn equality_is_structural() {
        let v = deep(3);
        assert!(v.clone() == v);
        assert!(deep(3) != deep(4));
        assert!(Value::from(f64::NAN) != Value::from(f64::NAN));
        assert!(Value::list([Value::from(1)]) != Value::tuple([Value::from(1)]));
        assert!(Value::dict([(Value::from(1), Value::None)]) != Value::dict([]));
        let mut r = Record::new("m:R", RecordKind::Dataclass);
        r.fields.push(("x".into(), Value::None));
        let mut s = r.clone();
        s.fields[0].0 = "y".into();
        assert!(Value::Record(Box::new(r)) != Value::Record(Box::new(s)));
    }
}
