//! `Debug` for [`Value`] without recursion (issue 10, item 5): the derived
//! layout (`List([Int(1), Str("a")])`), written with an explicit stack on the
//! heap so a value of any depth formats without one stack frame per level.
//! With `{:#?}` each item of a container goes on its own line, indented by
//! its depth.

use std::fmt::{self, Write};

use crate::Value;

/// One step of the walk.
enum Step<'a> {
    Text(&'static str),
    /// Anything else with a `Debug` of its own (names, record kinds).
    Other(&'a dyn fmt::Debug),
    Value(&'a Value),
    /// Opens a container: writes the text, one level deeper.
    Open(&'static str),
    /// Between two items of the innermost open container.
    Sep,
    /// Closes the innermost open container with the text.
    Close(&'static str),
}

struct Walk<'f, 'g> {
    f: &'f mut fmt::Formatter<'g>,
    pretty: bool,
    depth: usize,
}

impl Walk<'_, '_> {
    fn newline(&mut self) -> fmt::Result {
        self.f.write_char('\n')?;
        for _ in 0..self.depth {
            self.f.write_str("    ")?;
        }
        Ok(())
    }

    /// Writes `d` in the formatter's mode, indented to the current depth.
    fn other(&mut self, d: &dyn fmt::Debug) -> fmt::Result {
        if !self.pretty {
            return write!(self.f, "{d:?}");
        }
        let text = format!("{d:#?}");
        for (i, line) in text.split('\n').enumerate() {
            if i > 0 {
                self.newline()?;
            }
            self.f.write_str(line)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Value {
    /// ```
    /// use pyrpc_proto::Value;
    ///
    /// let v = Value::list([Value::from(1), Value::dict([(Value::from("k"), Value::None)])]);
    /// assert_eq!(format!("{v:?}"), r#"List([Int(1), Dict([(Str("k"), None)])])"#);
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pretty = f.alternate();
        let mut w = Walk {
            f,
            pretty,
            depth: 0,
        };
        let mut steps = vec![Step::Value(self)];
        while let Some(step) = steps.pop() {
            match step {
                Step::Text(s) => w.f.write_str(s)?,
                Step::Other(d) => w.other(d)?,
                Step::Open(s) => {
                    w.f.write_str(s)?;
                    w.depth += 1;
                    if w.pretty {
                        w.newline()?;
                    }
                }
                Step::Sep if w.pretty => {
                    w.f.write_char(',')?;
                    w.newline()?;
                }
                Step::Sep => w.f.write_str(", ")?,
                Step::Close(s) => {
                    w.depth -= 1;
                    if w.pretty {
                        w.f.write_char(',')?;
                        w.newline()?;
                    }
                    w.f.write_str(s)?;
                }
                Step::Value(v) => push(&mut w, v, &mut steps)?,
            }
        }
        Ok(())
    }
}

/// Pushes the steps of `items` (separated) between `open` and `close`.
fn push_seq<'a>(
    steps: &mut Vec<Step<'a>>,
    open: &'static str,
    close: &'static str,
    items: impl DoubleEndedIterator<Item = Vec<Step<'a>>> + ExactSizeIterator,
) {
    steps.push(Step::Close(close));
    let n = items.len();
    for (i, item) in items.rev().enumerate() {
        steps.extend(item.into_iter().rev());
        if i + 1 < n {
            steps.push(Step::Sep);
        }
    }
    steps.push(Step::Open(open));
}

/// Writes a value without children, or pushes a container's steps.
fn push<'a>(w: &mut Walk<'_, '_>, v: &'a Value, steps: &mut Vec<Step<'a>>) -> fmt::Result {
    let (name, items) = match v {
        Value::List(items) => ("List", items),
        Value::Tuple(items) => ("Tuple", items),
        Value::Set(items) => ("Set", items),
        Value::FrozenSet(items) => ("FrozenSet", items),
        Value::Dict(entries) if entries.is_empty() => return w.f.write_str("Dict([])"),
        Value::Dict(entries) => {
            let pairs = entries.iter().map(|(k, v)| {
                vec![
                    Step::Text("("),
                    Step::Value(k),
                    Step::Text(", "),
                    Step::Value(v),
                    Step::Text(")"),
                ]
            });
            push_seq(steps, "Dict([", "])", pairs);
            return Ok(());
        }
        Value::Record(r) => {
            steps.push(Step::Text(" })"));
            if r.fields.is_empty() {
                steps.push(Step::Text("[]"));
            } else {
                let fields = r.fields.iter().map(|(name, v)| {
                    vec![
                        Step::Text("("),
                        Step::Other(name),
                        Step::Text(", "),
                        Step::Value(v),
                        Step::Text(")"),
                    ]
                });
                push_seq(steps, "[", "]", fields);
            }
            steps.extend([
                Step::Text(", fields: "),
                Step::Other(&r.kind),
                Step::Text(", kind: "),
                Step::Other(&r.type_name),
                Step::Text("Record(Record { type_name: "),
            ]);
            return Ok(());
        }
        leaf => return leaf_debug(w, leaf),
    };
    if items.is_empty() {
        return write!(w.f, "{name}([])");
    }
    let open = match name {
        "List" => "List([",
        "Tuple" => "Tuple([",
        "Set" => "Set([",
        _ => "FrozenSet([",
    };
    push_seq(
        steps,
        open,
        "])",
        items.iter().map(|v| vec![Step::Value(v)]),
    );
    Ok(())
}

/// The derived layout of a value without children.
fn leaf_debug(w: &mut Walk<'_, '_>, v: &Value) -> fmt::Result {
    /// `Name(payload)`.
    struct Tuple<'a>(&'static str, &'a dyn fmt::Debug);
    impl fmt::Debug for Tuple<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_tuple(self.0).field(self.1).finish()
        }
    }
    /// `Complex { re, im }`.
    struct Complex(f64, f64);
    impl fmt::Debug for Complex {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("Complex")
                .field("re", &self.0)
                .field("im", &self.1)
                .finish()
        }
    }
    match v {
        Value::None => w.f.write_str("None"),
        Value::Bool(b) => w.other(&Tuple("Bool", b)),
        Value::Int(i) => w.other(&Tuple("Int", i)),
        Value::BigInt(b) => w.other(&Tuple("BigInt", b)),
        Value::Float(x) => w.other(&Tuple("Float", x)),
        Value::Str(s) => w.other(&Tuple("Str", s)),
        Value::Bytes(b) => w.other(&Tuple("Bytes", b)),
        Value::Pickle(b) => w.other(&Tuple("Pickle", b)),
        Value::ByteArray(b) => w.other(&Tuple("ByteArray", b)),
        Value::DateTime(d) => w.other(&Tuple("DateTime", d)),
        Value::Date(d) => w.other(&Tuple("Date", d)),
        Value::Time(t) => w.other(&Tuple("Time", t)),
        Value::TimeDelta(t) => w.other(&Tuple("TimeDelta", t)),
        Value::Decimal(d) => w.other(&Tuple("Decimal", d)),
        Value::Uuid(u) => w.other(&Tuple("Uuid", u)),
        Value::Complex { re, im } => w.other(&Complex(*re, *im)),
        Value::Fraction(fr) => w.other(&Tuple("Fraction", fr)),
        Value::NdArray(a) => w.other(&Tuple("NdArray", a)),
        Value::Encoded(b) => w.other(&Tuple("Encoded", b)),
        // Containers are pushed by `push`.
        Value::List(_)
        | Value::Tuple(_)
        | Value::Set(_)
        | Value::FrozenSet(_)
        | Value::Dict(_)
        | Value::Record(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use crate::{Record, RecordKind, Value};

    /// A list nested `depth` levels around `leaf`, built without recursion.
    fn deep(depth: usize, leaf: Value) -> Value {
        let mut v = leaf;
        for _ in 0..depth {
            v = Value::list([v]);
        }
        v
    }

    /// Takes a nested list apart level by level (the default drop recurses).
    fn dismantle(mut v: Value) {
        while let Value::List(mut items) = v {
            v = items.pop().unwrap_or(Value::None);
        }
    }

    #[test]
    fn the_derived_layout() {
        let r = Record::new("m:T", RecordKind::Dataclass).field("x", 1);
        let v = Value::tuple([
            Value::dict([(Value::from("k"), Value::list([]))]),
            Value::from(r),
            Value::Complex { re: 1.0, im: -0.5 },
            Value::Set(vec![]),
        ]);
        assert_eq!(
            format!("{v:?}"),
            "Tuple([Dict([(Str(\"k\"), List([]))]), \
             Record(Record { type_name: \"m:T\", kind: Dataclass, fields: [(\"x\", Int(1))] }), \
             Complex { re: 1.0, im: -0.5 }, Set([])])"
        );
        assert_eq!(
            format!(
                "{:#?}",
                Value::list([Value::from(1), Value::list([Value::None])])
            ),
            "List([\n    Int(\n        1,\n    ),\n    List([\n        None,\n    ]),\n])"
        );
    }

    #[test]
    fn a_million_levels_format_on_a_small_stack() {
        std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(|| {
                let v = deep(1_000_000, Value::from(7));
                let debug = format!("{v:?}");
                assert_eq!(debug.len(), 8 * 1_000_000 + "Int(7)".len());
                assert_eq!(&debug[6_000_000..6_000_008], "Int(7)])");
                let repr = v.to_string();
                assert_eq!(repr.len(), 2 * 1_000_000 + 1);
                assert_eq!(&repr[999_998..1_000_003], "[[7]]");
                dismantle(v);
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
