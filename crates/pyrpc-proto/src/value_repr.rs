//! `Display` for [`Value`]: Python's `repr()`.

use std::fmt;

use crate::kinds;
use crate::value::Value;

/// One step of [`Value`]'s `Display`: text to write, or a value to format.
enum Step<'a> {
    Text(&'static str),
    /// A record field's name, written as `name=`.
    Field(&'a str),
    Value(&'a Value),
}

impl fmt::Display for Value {
    /// Formats the value as Python's `repr()` would, with an explicit stack
    /// of steps on the heap (a value of any depth formats without
    /// recursion).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut steps = vec![Step::Value(self)];
        while let Some(step) = steps.pop() {
            match step {
                Step::Text(s) => f.write_str(s)?,
                Step::Field(name) => {
                    f.write_str(name)?;
                    f.write_str("=")?;
                }
                Step::Value(v) => open(f, v, &mut steps)?,
            }
        }
        Ok(())
    }
}

/// Pushes `items` (in order, comma-separated) and then `close` onto `steps`.
fn push_items<'a>(steps: &mut Vec<Step<'a>>, items: &'a [Value], close: &'static str) {
    steps.push(Step::Text(close));
    for (i, item) in items.iter().enumerate().rev() {
        steps.push(Step::Value(item));
        if i > 0 {
            steps.push(Step::Text(", "));
        }
    }
}

/// Writes a leaf value, or a container's opening and pushes the steps of
/// its items and closing.
fn open<'a>(f: &mut fmt::Formatter<'_>, v: &'a Value, steps: &mut Vec<Step<'a>>) -> fmt::Result {
    match v {
        Value::List(items) => {
            f.write_str("[")?;
            push_items(steps, items, "]");
        }
        Value::Tuple(items) => {
            f.write_str("(")?;
            push_items(steps, items, if items.len() == 1 { ",)" } else { ")" });
        }
        Value::Set(items) if items.is_empty() => f.write_str("set()")?,
        Value::Set(items) => {
            f.write_str("{")?;
            push_items(steps, items, "}");
        }
        Value::FrozenSet(items) if items.is_empty() => f.write_str("frozenset()")?,
        Value::FrozenSet(items) => {
            f.write_str("frozenset({")?;
            push_items(steps, items, "})");
        }
        Value::Dict(entries) => {
            f.write_str("{")?;
            steps.push(Step::Text("}"));
            for (i, (k, v)) in entries.iter().enumerate().rev() {
                steps.push(Step::Value(v));
                steps.push(Step::Text(": "));
                steps.push(Step::Value(k));
                if i > 0 {
                    steps.push(Step::Text(", "));
                }
            }
        }
        Value::Record(r) => {
            write!(f, "{}(", r.type_name)?;
            steps.push(Step::Text(")"));
            for (i, (name, v)) in r.fields.iter().enumerate().rev() {
                steps.push(Step::Value(v));
                steps.push(Step::Field(name));
                if i > 0 {
                    steps.push(Step::Text(", "));
                }
            }
        }
        leaf => write_leaf(f, leaf)?,
    }
    Ok(())
}

/// A value without children, as Python's `repr()`.
fn write_leaf(f: &mut fmt::Formatter<'_>, v: &Value) -> fmt::Result {
    match v {
        Value::None => f.write_str("None"),
        Value::Bool(true) => f.write_str("True"),
        Value::Bool(false) => f.write_str("False"),
        Value::Int(i) => write!(f, "{i}"),
        Value::BigInt(b) => write!(f, "{b}"),
        Value::Float(x) => write_float(f, *x),
        Value::Str(s) => write_str_repr(f, s),
        Value::Bytes(b) => write_bytes_repr(f, b),
        Value::Pickle(p) => write!(f, "<pickled object, {} bytes>", p.len()),
        Value::ByteArray(b) => {
            f.write_str("bytearray(")?;
            write_bytes_repr(f, b)?;
            f.write_str(")")
        }
        Value::DateTime(d) => kinds::fmt_datetime(f, d),
        Value::Date(d) => write!(f, "datetime.date({}, {}, {})", d.year, d.month, d.day),
        Value::Time(t) => kinds::fmt_time(f, t),
        Value::TimeDelta(t) => kinds::fmt_timedelta(f, t),
        Value::Decimal(d) => write!(f, "Decimal('{d}')"),
        Value::Uuid(u) => kinds::fmt_uuid(f, u),
        Value::Complex { re, im } => {
            f.write_str("complex(")?;
            write_float(f, *re)?;
            f.write_str(", ")?;
            write_float(f, *im)?;
            f.write_str(")")
        }
        Value::Fraction(fr) => write!(f, "Fraction({}, {})", fr.numerator, fr.denominator),
        Value::NdArray(a) => {
            let dtype = crate::Dtype::try_from(a.dtype).unwrap_or_default();
            if a.len() <= 100 {
                write!(f, "array({}, dtype={})", a.to_nested(), dtype.numpy_name())
            } else {
                write!(
                    f,
                    "array(<shape {:?}>, dtype={})",
                    a.shape,
                    dtype.numpy_name()
                )
            }
        }
        Value::Encoded(b) => match crate::raw::decode_value(b.clone(), crate::MAX_VALUE_DEPTH) {
            Ok(v) => write!(f, "{v}"),
            Err(e) => write!(f, "<{e}>"),
        },
        // Containers are written by `open`.
        Value::List(_)
        | Value::Tuple(_)
        | Value::Set(_)
        | Value::FrozenSet(_)
        | Value::Dict(_)
        | Value::Record(_) => Ok(()),
    }
}

fn write_float(f: &mut fmt::Formatter<'_>, x: f64) -> fmt::Result {
    if x.is_nan() {
        f.write_str("nan")
    } else if x.is_infinite() {
        f.write_str(if x > 0.0 { "inf" } else { "-inf" })
    } else if x == x.trunc() && x.abs() < 1e16 {
        write!(f, "{x:.1}")
    } else {
        write!(f, "{x}")
    }
}

fn write_str_repr(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    write!(f, "{quote}")?;
    for c in s.chars() {
        match c {
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if c == quote => write!(f, "\\{c}")?,
            c if (c as u32) < 0x20 || c as u32 == 0x7f => write!(f, "\\x{:02x}", c as u32)?,
            c => write!(f, "{c}")?,
        }
    }
    write!(f, "{quote}")
}

fn write_bytes_repr(f: &mut fmt::Formatter<'_>, b: &[u8]) -> fmt::Result {
    let quote = if b.contains(&b'\'') && !b.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    write!(f, "b{}", quote as char)?;
    for &c in b {
        match c {
            b'\\' => f.write_str("\\\\")?,
            b'\n' => f.write_str("\\n")?,
            b'\r' => f.write_str("\\r")?,
            b'\t' => f.write_str("\\t")?,
            c if c == quote => write!(f, "\\{}", c as char)?,
            0x20..=0x7e => write!(f, "{}", c as char)?,
            c => write!(f, "\\x{c:02x}")?,
        }
    }
    write!(f, "{}", quote as char)
}
