//! The standard-library types beyond the builtin containers, to and from
//! [`Value`]: `datetime`, `date`, `time`, `timedelta`, `Decimal`, `UUID`,
//! `complex`, `Fraction` (decision 0010).
//!
//! The package is built for the stable ABI (abi3), where PyO3 has no typed
//! access to `datetime` objects, so fields are read by attribute and objects
//! built by calling the classes, which are looked up once per interpreter.

use num_bigint::BigInt;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyComplex, PyDict, PyType};
use pyrpc_proto::{Date, DateTime, Fraction, Time, TimeDelta, Value};

/// The classes this module converts, imported once.
struct Classes {
    datetime: Py<PyType>,
    date: Py<PyType>,
    time: Py<PyType>,
    timedelta: Py<PyType>,
    timezone: Py<PyType>,
    decimal: Py<PyType>,
    uuid: Py<PyType>,
    fraction: Py<PyType>,
}

static CLASSES: PyOnceLock<Classes> = PyOnceLock::new();

fn classes(py: Python<'_>) -> PyResult<&Classes> {
    CLASSES.get_or_try_init(py, || {
        let class = |module: &str, name: &str| -> PyResult<Py<PyType>> {
            Ok(py
                .import(module)?
                .getattr(name)?
                .cast_into::<PyType>()?
                .unbind())
        };
        Ok(Classes {
            datetime: class("datetime", "datetime")?,
            date: class("datetime", "date")?,
            time: class("datetime", "time")?,
            timedelta: class("datetime", "timedelta")?,
            timezone: class("datetime", "timezone")?,
            decimal: class("decimal", "Decimal")?,
            uuid: class("uuid", "UUID")?,
            fraction: class("fractions", "Fraction")?,
        })
    })
}

fn attr<'py, T: pyo3::conversion::FromPyObjectOwned<'py>>(
    obj: &Bound<'py, PyAny>,
    name: &str,
) -> PyResult<T> {
    obj.getattr(name)?.extract().map_err(Into::into)
}

/// The UTC offset of an aware datetime or time in microseconds, `None` when
/// naive.
fn utc_offset_us(obj: &Bound<'_, PyAny>) -> PyResult<Option<i64>> {
    let offset = obj.call_method0("utcoffset")?;
    if offset.is_none() {
        return Ok(None);
    }
    let days: i64 = attr(&offset, "days")?;
    let seconds: i64 = attr(&offset, "seconds")?;
    let micros: i64 = attr(&offset, "microseconds")?;
    Ok(Some((days * 86_400 + seconds) * 1_000_000 + micros))
}

fn time_fields(obj: &Bound<'_, PyAny>) -> PyResult<(u32, u32, u32, u32, u32)> {
    Ok((
        attr(obj, "hour")?,
        attr(obj, "minute")?,
        attr(obj, "second")?,
        attr(obj, "microsecond")?,
        attr(obj, "fold")?,
    ))
}

/// Converts `obj` when it is one of the standard types (subclasses
/// included, e.g. a pandas `Timestamp` travels as a datetime); `Ok(None)`
/// when it is not.
///
/// # Errors
///
/// Whatever reading the object's fields raises.
pub(crate) fn to_value(obj: &Bound<'_, PyAny>) -> PyResult<Option<Value>> {
    let py = obj.py();
    let c = classes(py)?;
    let ty = obj.get_type();
    let is = |class: &Py<PyType>| -> PyResult<bool> {
        let class = class.bind(py);
        Ok(ty.is(class) || ty.is_subclass(class)?)
    };
    // datetime before date: a datetime is a date.
    if is(&c.datetime)? {
        let (hour, minute, second, microsecond, fold) = time_fields(obj)?;
        return Ok(Some(Value::from(DateTime {
            year: attr(obj, "year")?,
            month: attr(obj, "month")?,
            day: attr(obj, "day")?,
            hour,
            minute,
            second,
            microsecond,
            utc_offset_us: utc_offset_us(obj)?,
            fold,
        })));
    }
    if is(&c.date)? {
        return Ok(Some(Value::Date(Date {
            year: attr(obj, "year")?,
            month: attr(obj, "month")?,
            day: attr(obj, "day")?,
        })));
    }
    if is(&c.time)? {
        let (hour, minute, second, microsecond, fold) = time_fields(obj)?;
        return Ok(Some(Value::from(Time {
            hour,
            minute,
            second,
            microsecond,
            utc_offset_us: utc_offset_us(obj)?,
            fold,
        })));
    }
    if is(&c.timedelta)? {
        return Ok(Some(Value::TimeDelta(TimeDelta {
            days: attr(obj, "days")?,
            seconds: attr(obj, "seconds")?,
            microseconds: attr(obj, "microseconds")?,
        })));
    }
    if is(&c.decimal)? {
        return Ok(Some(Value::Decimal(obj.str()?.to_string())));
    }
    if is(&c.uuid)? {
        let raw: Vec<u8> = attr(obj, "bytes")?;
        let raw: [u8; 16] = raw
            .try_into()
            .map_err(|_| pyo3::exceptions::PyValueError::new_err("UUID.bytes is not 16 bytes"))?;
        return Ok(Some(Value::Uuid(raw)));
    }
    if let Ok(c) = obj.cast::<PyComplex>() {
        return Ok(Some(Value::Complex {
            re: c.real(),
            im: c.imag(),
        }));
    }
    if is(&c.fraction)? {
        let fraction = Fraction {
            numerator: attr::<BigInt>(obj, "numerator")?,
            denominator: attr::<BigInt>(obj, "denominator")?,
        };
        return Ok(Some(Value::from(fraction)));
    }
    Ok(None)
}

fn tzinfo<'py>(py: Python<'py>, c: &Classes, offset: Option<i64>) -> PyResult<Bound<'py, PyAny>> {
    match offset {
        None => Ok(py.None().into_bound(py)),
        Some(0) => c.timezone.bind(py).getattr("utc"),
        Some(us) => {
            let kwargs = PyDict::new(py);
            kwargs.set_item("microseconds", us)?;
            let delta = c.timedelta.bind(py).call((), Some(&kwargs))?;
            c.timezone.bind(py).call1((delta,))
        }
    }
}

/// Builds the Python object of a standard-type value; `Ok(None)` for any
/// other value.
///
/// # Errors
///
/// Whatever the class raises (the fields were range-checked on decode).
pub(crate) fn to_python(py: Python<'_>, value: &Value) -> PyResult<Option<Py<PyAny>>> {
    let c = classes(py)?;
    let obj = match value {
        Value::DateTime(d) => {
            let kwargs = PyDict::new(py);
            kwargs.set_item("tzinfo", tzinfo(py, c, d.utc_offset_us)?)?;
            kwargs.set_item("fold", d.fold)?;
            c.datetime.bind(py).call(
                (
                    d.year,
                    d.month,
                    d.day,
                    d.hour,
                    d.minute,
                    d.second,
                    d.microsecond,
                ),
                Some(&kwargs),
            )?
        }
        Value::Date(d) => c.date.bind(py).call1((d.year, d.month, d.day))?,
        Value::Time(t) => {
            let kwargs = PyDict::new(py);
            kwargs.set_item("tzinfo", tzinfo(py, c, t.utc_offset_us)?)?;
            kwargs.set_item("fold", t.fold)?;
            c.time
                .bind(py)
                .call((t.hour, t.minute, t.second, t.microsecond), Some(&kwargs))?
        }
        Value::TimeDelta(t) => c
            .timedelta
            .bind(py)
            .call1((t.days, t.seconds, t.microseconds))?,
        Value::Decimal(d) => c.decimal.bind(py).call1((d.as_str(),))?,
        Value::Uuid(u) => {
            let kwargs = PyDict::new(py);
            kwargs.set_item("bytes", PyBytes::new(py, u))?;
            c.uuid.bind(py).call((), Some(&kwargs))?
        }
        Value::Complex { re, im } => PyComplex::from_doubles(py, *re, *im).into_any(),
        Value::Fraction(f) => c
            .fraction
            .bind(py)
            .call1((f.numerator.clone(), f.denominator.clone()))?,
        _ => return Ok(None),
    };
    Ok(Some(obj.unbind()))
}
