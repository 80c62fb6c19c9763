//! The value kinds beyond Python's builtin containers: dates and times,
//! `Decimal`, `UUID`, `complex`, `Fraction` and typed records (decision 0010).
//!
//! The date and time payloads are the generated wire structs themselves
//! ([`DateTime`], [`Date`], [`Time`], [`TimeDelta`]): plain fields with
//! Python's meaning, documented in `proto/pyrpc/v1/rpc.proto`. They are checked
//! when a wire value is converted, so a [`crate::Value`] never holds month 13.

use std::fmt;

use bytes::Bytes;
use num_bigint::BigInt;
use num_traits::{One, Signed, Zero};

use crate::error::ValueError;
use crate::value::Value;
use crate::wire;

pub use crate::wire::{Date, DateTime, RecordKind, Time, TimeDelta};

/// An exact fraction (Python `fractions.Fraction`) in lowest terms with a
/// positive denominator.
///
/// # Examples
///
/// ```
/// use pyrpc_proto::{Fraction, Value};
///
/// let third = Fraction::new(2.into(), (-6).into()).unwrap();
/// assert_eq!(Value::Fraction(Box::new(third)).to_string(), "Fraction(-1, 3)");
/// assert!(Fraction::new(1.into(), 0.into()).is_none());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Fraction {
    /// The numerator, any sign.
    pub numerator: BigInt,
    /// The denominator, positive.
    pub denominator: BigInt,
}

impl Fraction {
    /// `numerator / denominator` reduced to lowest terms; `None` when the
    /// denominator is zero.
    pub fn new(numerator: BigInt, denominator: BigInt) -> Option<Fraction> {
        if denominator.is_zero() {
            return None;
        }
        let g = num_integer::Integer::gcd(&numerator, &denominator);
        let sign = if denominator.is_negative() {
            -BigInt::one()
        } else {
            BigInt::one()
        };
        Some(Fraction {
            numerator: &numerator / &g * &sign,
            denominator: &denominator / &g * &sign,
        })
    }
}

/// A value of a user type: a dataclass, a NamedTuple, an Enum member, or a
/// value of a type registered with `pyrpc.register_type`.
///
/// # Examples
///
/// ```
/// use pyrpc_proto::{Record, RecordKind, Value};
///
/// let point = Record::new("geo:Point", RecordKind::NamedTuple)
///     .field("x", 1)
///     .field("y", 2);
/// assert_eq!(point.get("y"), Some(&Value::from(2)));
/// assert_eq!(Value::from(point).to_string(), "geo:Point(x=1, y=2)");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// `"module:qualname"` of the sender's class, or the registered name.
    pub type_name: String,
    /// What kind of type it is, which fixes the receiver's fallback.
    pub kind: RecordKind,
    /// The fields by name, in order (one field for `Enum` and `Registered`).
    pub fields: Vec<(String, Value)>,
}

impl Record {
    /// A record of `type_name` with no fields yet.
    pub fn new(type_name: impl Into<String>, kind: RecordKind) -> Record {
        Record {
            type_name: type_name.into(),
            kind,
            fields: Vec::new(),
        }
    }

    /// Adds a field (builder style).
    #[must_use]
    pub fn field(mut self, name: impl Into<String>, value: impl Into<Value>) -> Record {
        self.fields.push((name.into(), value.into()));
        self
    }

    /// The value of the field `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

impl From<Record> for Value {
    fn from(r: Record) -> Value {
        Value::Record(Box::new(r))
    }
}

fn malformed(kind: &'static str, reason: impl Into<String>) -> ValueError {
    ValueError::Malformed {
        kind,
        reason: reason.into(),
    }
}

const DAY_US: i64 = 86_400_000_000;

fn check_offset(kind: &'static str, offset: Option<i64>) -> Result<(), ValueError> {
    match offset {
        Some(o) if o.abs() >= DAY_US => Err(malformed(kind, "UTC offset of 24 hours or more")),
        _ => Ok(()),
    }
}

fn check_clock(
    kind: &'static str,
    h: u32,
    m: u32,
    s: u32,
    us: u32,
    fold: u32,
) -> Result<(), ValueError> {
    if h > 23 || m > 59 || s > 59 || us > 999_999 || fold > 1 {
        return Err(malformed(
            kind,
            format!("time {h}:{m}:{s}.{us} fold {fold} out of range"),
        ));
    }
    Ok(())
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn check_date(kind: &'static str, y: i32, m: u32, d: u32) -> Result<(), ValueError> {
    if !(1..=9999).contains(&y) || !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return Err(malformed(kind, format!("date {y}-{m}-{d} out of range")));
    }
    Ok(())
}

/// Checks a datetime's fields against Python's ranges.
pub(crate) fn check_datetime(v: &DateTime) -> Result<(), ValueError> {
    check_date("datetime", v.year, v.month, v.day)?;
    check_clock(
        "datetime",
        v.hour,
        v.minute,
        v.second,
        v.microsecond,
        v.fold,
    )?;
    check_offset("datetime", v.utc_offset_us)
}

/// Checks a time's fields against Python's ranges.
pub(crate) fn check_time(v: &Time) -> Result<(), ValueError> {
    check_clock("time", v.hour, v.minute, v.second, v.microsecond, v.fold)?;
    check_offset("time", v.utc_offset_us)
}

/// Checks a date's fields against Python's ranges.
pub(crate) fn check_date_value(v: &Date) -> Result<(), ValueError> {
    check_date("date", v.year, v.month, v.day)
}

/// Checks a timedelta's normalisation and Python's ±999999999 days.
pub(crate) fn check_timedelta(v: &TimeDelta) -> Result<(), ValueError> {
    if v.days.abs() > 999_999_999 || v.seconds >= 86_400 || v.microseconds >= 1_000_000 {
        return Err(malformed("timedelta", "not normalised or out of range"));
    }
    Ok(())
}

/// Checks a decimal's text: digits with an optional point and exponent, or
/// one of the special values, all optionally signed.
pub(crate) fn check_decimal(s: &str) -> Result<(), ValueError> {
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    let lower = body.to_ascii_lowercase();
    let special = ["inf", "infinity"].contains(&lower.as_str())
        || ["nan", "snan"].iter().any(|p| {
            lower
                .strip_prefix(p)
                .is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_digit()))
        });
    if special {
        return Ok(());
    }
    let (mantissa, exponent) = match lower.split_once('e') {
        Some((m, e)) => (m, Some(e)),
        None => (lower.as_str(), None),
    };
    let digits: String = mantissa.chars().filter(|&c| c != '.').collect();
    let ok_mantissa = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && mantissa.matches('.').count() <= 1;
    let ok_exponent = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit())
    });
    if ok_mantissa && ok_exponent {
        Ok(())
    } else {
        Err(malformed(
            "decimal",
            format!("{s:?} is not a decimal number"),
        ))
    }
}

/// A wire integer (two's complement, big-endian, at least one byte).
fn big_from_bytes(kind: &'static str, b: &[u8]) -> Result<BigInt, ValueError> {
    if b.is_empty() {
        return Err(malformed(kind, "integer with no bytes"));
    }
    Ok(BigInt::from_signed_bytes_be(b))
}

/// A fraction from the wire, checked to be in lowest terms.
pub(crate) fn fraction_from_wire(f: wire::Fraction) -> Result<Fraction, ValueError> {
    let n = big_from_bytes("fraction", &f.numerator)?;
    let d = big_from_bytes("fraction", &f.denominator)?;
    if !d.is_positive() {
        return Err(malformed("fraction", "denominator not positive"));
    }
    let reduced = Fraction::new(n.clone(), d.clone()).ok_or_else(|| malformed("fraction", "/0"))?;
    if reduced.numerator != n {
        return Err(malformed("fraction", "not in lowest terms"));
    }
    Ok(reduced)
}

/// A fraction for the wire.
pub(crate) fn fraction_to_wire(f: &Fraction) -> wire::Fraction {
    wire::Fraction {
        numerator: Bytes::from(f.numerator.to_signed_bytes_be()),
        denominator: Bytes::from(f.denominator.to_signed_bytes_be()),
    }
}

/// A UUID from its wire bytes.
pub(crate) fn uuid_from_wire(b: &[u8]) -> Result<[u8; 16], ValueError> {
    b.try_into()
        .map_err(|_| malformed("uuid", format!("{} bytes, not 16", b.len())))
}

// ===== Python reprs =====

/// Python's repr of a fixed-offset zone: `datetime.timezone.utc` or
/// `datetime.timezone(datetime.timedelta(...))`.
fn write_offset(f: &mut fmt::Formatter<'_>, offset_us: i64) -> fmt::Result {
    if offset_us == 0 {
        return f.write_str("datetime.timezone.utc");
    }
    let delta = TimeDelta {
        days: offset_us.div_euclid(DAY_US),
        seconds: (offset_us.rem_euclid(DAY_US) / 1_000_000) as u32,
        microseconds: (offset_us.rem_euclid(1_000_000)) as u32,
    };
    f.write_str("datetime.timezone(")?;
    fmt_timedelta(f, &delta)?;
    f.write_str(")")
}

/// Python's repr of a datetime, e.g. `datetime.datetime(2024, 1, 2, 3, 4, 5)`.
pub(crate) fn fmt_datetime(f: &mut fmt::Formatter<'_>, v: &DateTime) -> fmt::Result {
    write!(
        f,
        "datetime.datetime({}, {}, {}, {}, {}",
        v.year, v.month, v.day, v.hour, v.minute
    )?;
    if v.second != 0 || v.microsecond != 0 {
        write!(f, ", {}", v.second)?;
    }
    if v.microsecond != 0 {
        write!(f, ", {}", v.microsecond)?;
    }
    if v.fold != 0 {
        write!(f, ", fold={}", v.fold)?;
    }
    if let Some(o) = v.utc_offset_us {
        f.write_str(", tzinfo=")?;
        write_offset(f, o)?;
    }
    f.write_str(")")
}

/// Python's repr of a time, e.g. `datetime.time(3, 4, 5)`.
pub(crate) fn fmt_time(f: &mut fmt::Formatter<'_>, v: &Time) -> fmt::Result {
    write!(f, "datetime.time({}, {}", v.hour, v.minute)?;
    if v.second != 0 || v.microsecond != 0 {
        write!(f, ", {}", v.second)?;
    }
    if v.microsecond != 0 {
        write!(f, ", {}", v.microsecond)?;
    }
    if v.fold != 0 {
        write!(f, ", fold={}", v.fold)?;
    }
    if let Some(o) = v.utc_offset_us {
        f.write_str(", tzinfo=")?;
        write_offset(f, o)?;
    }
    f.write_str(")")
}

/// Python's repr of a timedelta, e.g. `datetime.timedelta(days=-1, seconds=86399)`.
pub(crate) fn fmt_timedelta(f: &mut fmt::Formatter<'_>, v: &TimeDelta) -> fmt::Result {
    let mut parts = Vec::new();
    if v.days != 0 {
        parts.push(format!("days={}", v.days));
    }
    if v.seconds != 0 {
        parts.push(format!("seconds={}", v.seconds));
    }
    if v.microseconds != 0 {
        parts.push(format!("microseconds={}", v.microseconds));
    }
    if parts.is_empty() {
        return f.write_str("datetime.timedelta(0)");
    }
    write!(f, "datetime.timedelta({})", parts.join(", "))
}

/// Python's repr of a UUID, e.g. `UUID('12345678-1234-5678-1234-567812345678')`.
pub(crate) fn fmt_uuid(f: &mut fmt::Formatter<'_>, b: &[u8; 16]) -> fmt::Result {
    f.write_str("UUID('")?;
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            f.write_str("-")?;
        }
        write!(f, "{byte:02x}")?;
    }
    f.write_str("')")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_checked() {
        for ok in [
            "1.50",
            "-0",
            "1E+999999999999",
            "NaN",
            "-sNaN12",
            "Infinity",
            "-inf",
            "0.000",
            "5e-3",
        ] {
            assert!(check_decimal(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1.2.3", "e5", "1e", "NaNx", "0x10", " 1"] {
            assert!(check_decimal(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dates_are_checked() {
        assert!(check_date("date", 2024, 2, 29).is_ok());
        assert!(check_date("date", 2023, 2, 29).is_err());
        assert!(check_date("date", 0, 1, 1).is_err());
        assert!(check_date("date", 2024, 13, 1).is_err());
        assert!(check_clock("time", 23, 59, 59, 999_999, 1).is_ok());
        assert!(check_clock("time", 24, 0, 0, 0, 0).is_err());
        assert!(check_offset("time", Some(-DAY_US)).is_err());
    }

    #[test]
    fn fractions_are_reduced_and_checked() {
        let f = Fraction::new(BigInt::from(4), BigInt::from(-6)).unwrap();
        assert_eq!(
            (f.numerator.clone(), f.denominator.clone()),
            (BigInt::from(-2), BigInt::from(3))
        );
        assert_eq!(fraction_from_wire(fraction_to_wire(&f)), Ok(f));
        let unreduced = wire::Fraction {
            numerator: Bytes::from_static(&[2]),
            denominator: Bytes::from_static(&[4]),
        };
        assert!(fraction_from_wire(unreduced).is_err());
    }
}
