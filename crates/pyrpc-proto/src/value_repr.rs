//! `Display` for [`Value`]: Python's `repr()`.

use std::fmt;

use crate::kinds;
use crate::value::Value;

impl fmt::Display for Value {
    /// Formats the value as Python's `repr()` would.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn seq(f: &mut fmt::Formatter<'_>, items: &[Value]) -> fmt::Result {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{item}")?;
            }
            Ok(())
        }
        match self {
            Value::None => f.write_str("None"),
            Value::Bool(true) => f.write_str("True"),
            Value::Bool(false) => f.write_str("False"),
            Value::Int(i) => write!(f, "{i}"),
            Value::BigInt(b) => write!(f, "{b}"),
            Value::Float(x) => write_float(f, *x),
            Value::Str(s) => write_str_repr(f, s),
            Value::Bytes(b) => write_bytes_repr(f, b),
            Value::List(v) => {
                f.write_str("[")?;
                seq(f, v)?;
                f.write_str("]")
            }
            Value::Tuple(v) => {
                f.write_str("(")?;
                seq(f, v)?;
                if v.len() == 1 {
                    f.write_str(",")?;
                }
                f.write_str(")")
            }
            Value::Set(v) if v.is_empty() => f.write_str("set()"),
            Value::Set(v) => {
                f.write_str("{")?;
                seq(f, v)?;
                f.write_str("}")
            }
            Value::FrozenSet(v) if v.is_empty() => f.write_str("frozenset()"),
            Value::FrozenSet(v) => {
                f.write_str("frozenset({")?;
                seq(f, v)?;
                f.write_str("})")
            }
            Value::Dict(entries) => {
                f.write_str("{")?;
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}: {v}")?;
                }
                f.write_str("}")
            }
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
            Value::Encoded(b) => {
                match crate::raw::decode_value(b.clone(), crate::MAX_VALUE_DEPTH) {
                    Ok(v) => write!(f, "{v}"),
                    Err(e) => write!(f, "<{e}>"),
                }
            }
            Value::Record(r) => {
                write!(f, "{}(", r.type_name)?;
                for (i, (name, v)) in r.fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{name}={v}")?;
                }
                f.write_str(")")
            }
        }
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
