//! `datetime.datetime`, `datetime.date` and `datetime.timedelta` straight to
//! and from their wire
//! messages, through CPython's datetime C API.
//!
//! The general path reads a datetime's fields by attribute and builds one by
//! calling the class with keyword arguments (`kinds.rs`, since the abi3
//! wheel has no typed access to them): 10k datetimes took 12.5 ms to encode
//! and 7 ms to decode, three to five times pickle. CPython publishes its
//! datetime constructors in the `datetime.datetime_CAPI` capsule (imported
//! through `PyCapsule_Import`, which is stable ABI), and the field layout of
//! its datetime objects is the one `datetime.h`'s accessor macros read, the
//! same in 3.9-3.13. Both are mirrored here and checked once per process on
//! objects of known fields; if the check fails, everything takes the general
//! path.
//!
//! Only the plain cases are handled: an exact `datetime` that is naive or in
//! `timezone.utc`, an exact `date`, an exact `timedelta`; on decode, a message in the canonical
//! field order whose fields are in range. Everything else (subclasses, other
//! time zones, odd or invalid messages) goes the general way, so errors and
//! results are exactly the general path's.

use std::ffi::{c_char, c_int};

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use super::packed::put_varint;
use super::wire::{unzigzag, varint, zigzag};

/// `Value.datetime` (field 15, length-delimited), as its one-byte key.
pub(super) const DATETIME: u8 = 15 << 3 | 2;
/// `Value.date` (field 16): its key as a varint is two bytes.
pub(super) const DATE_KEY: u64 = 16 << 3 | 2;
/// `Value.timedelta` (field 18), likewise.
pub(super) const TIMEDELTA_KEY: u64 = 18 << 3 | 2;

/// `PyDateTime_CAPI` (datetime.h), the part used here: the fields before
/// `DateTime_FromTimestamp` and the PEP 495 constructor after it.
#[repr(C)]
struct CApi {
    date_type: *mut ffi::PyTypeObject,
    datetime_type: *mut ffi::PyTypeObject,
    _time_type: *mut ffi::PyTypeObject,
    delta_type: *mut ffi::PyTypeObject,
    _tzinfo_type: *mut ffi::PyTypeObject,
    timezone_utc: *mut ffi::PyObject,
    date_from_date:
        unsafe extern "C" fn(c_int, c_int, c_int, *mut ffi::PyTypeObject) -> *mut ffi::PyObject,
    _datetime_from_date_and_time: *const (),
    _time_from_time: *const (),
    delta_from_delta: unsafe extern "C" fn(
        c_int,
        c_int,
        c_int,
        c_int,
        *mut ffi::PyTypeObject,
    ) -> *mut ffi::PyObject,
    _timezone_from_timezone:
        unsafe extern "C" fn(*mut ffi::PyObject, *mut ffi::PyObject) -> *mut ffi::PyObject,
    _datetime_from_timestamp: *const (),
    _date_from_timestamp: *const (),
    datetime_from_date_and_time_and_fold: unsafe extern "C" fn(
        c_int,
        c_int,
        c_int,
        c_int,
        c_int,
        c_int,
        c_int,
        *mut ffi::PyObject,
        c_int,
        *mut ffi::PyTypeObject,
    ) -> *mut ffi::PyObject,
}

/// `PyDateTime_Date`: `_PyTZINFO_HEAD` (spelled out: as a struct of its
/// own it would be padded, and `data` follows `hastzinfo` directly), then
/// the packed fields.
#[repr(C)]
struct DateObject {
    ob_base: ffi::PyObject,
    hashcode: ffi::Py_hash_t,
    hastzinfo: c_char,
    data: [u8; 4],
}

/// `PyDateTime_Delta`: normalised days, seconds and microseconds.
#[repr(C)]
struct DeltaObject {
    ob_base: ffi::PyObject,
    hashcode: ffi::Py_hash_t,
    days: c_int,
    seconds: c_int,
    microseconds: c_int,
}

/// `PyDateTime_DateTime`; `tzinfo` exists only when `hastzinfo` is set
/// (a naive datetime is allocated without it), `fold` always.
#[repr(C)]
struct DateTimeObject {
    ob_base: ffi::PyObject,
    hashcode: ffi::Py_hash_t,
    hastzinfo: c_char,
    data: [u8; 10],
    fold: u8,
    tzinfo: *mut ffi::PyObject,
}

/// The capsule's pointer, once per process when it checked out.
struct Api(&'static CApi);
// SAFETY: the capsule lives as long as the `datetime` module, which the
// interpreter never unloads; only used with the GIL held.
#[allow(unsafe_code)]
unsafe impl Send for Api {}
#[allow(unsafe_code)]
unsafe impl Sync for Api {}

/// A `PyOnceLock`, not a `std` one: importing `datetime` can let another
/// thread take the GIL, which would then wait on a `std` lock that the
/// importing thread cannot finish without the GIL.
static API: PyOnceLock<Option<Api>> = PyOnceLock::new();

#[allow(unsafe_code)]
fn api(py: Python<'_>) -> Option<&'static CApi> {
    API.get_or_init(py, || {
        // SAFETY: the GIL is held; a non-NULL result is the capsule's
        // `PyDateTime_CAPI`, which lives as long as the module.
        let p = unsafe { ffi::PyCapsule_Import(c"datetime.datetime_CAPI".as_ptr(), 0) };
        if p.is_null() {
            // SAFETY: the GIL is held; the import's error is not ours to raise.
            unsafe { ffi::PyErr_Clear() };
            return None;
        }
        // SAFETY: see above.
        let api = unsafe { &*(p as *const CApi) };
        checks_out(py, api).then_some(Api(api))
    })
    .as_ref()
    .map(|a| a.0)
}

/// Builds a datetime, a UTC one and a date of known fields through the
/// capsule and reads them back through the mirrored layout.
fn checks_out(py: Python<'_>, api: &CApi) -> bool {
    let fields = Fields {
        year: 2021,
        month: 3,
        day: 4,
        hour: 5,
        minute: 6,
        second: 7,
        microsecond: 80_910,
        utc: false,
        fold: 1,
    };
    let utc = Fields {
        utc: true,
        fold: 0,
        ..fields
    };
    let Some(naive) = new_datetime(py, api, &fields) else {
        return false;
    };
    let Some(aware) = new_datetime(py, api, &utc) else {
        return false;
    };
    let date = new_date(py, api, 1999, 12, 31);
    let text = naive.str().map(|s| s.to_string()).unwrap_or_default();
    let delta = new_delta(py, api, -3, 4, 5);
    read_datetime(api, &naive) == Some(fields)
        && read_datetime(api, &aware) == Some(utc)
        && date.is_some_and(|d| read_date(api, &d) == Some((1999, 12, 31)))
        && delta.is_some_and(|d| read_delta(api, &d) == Some((-3, 4, 5)))
        && text == "2021-03-04 05:06:07.080910"
}

/// A datetime's fields, as the wire carries them (offset 0 or none).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Fields {
    year: u32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    microsecond: u32,
    utc: bool,
    fold: u32,
}

/// An exact `datetime` that is naive or in `timezone.utc`.
#[allow(unsafe_code)]
fn read_datetime(api: &CApi, obj: &Bound<'_, PyAny>) -> Option<Fields> {
    let p = obj.as_ptr();
    // SAFETY: a live object; its type is read through the stable ABI.
    if unsafe { ffi::Py_TYPE(p) } != api.datetime_type {
        return None;
    }
    // SAFETY: an exact datetime has this layout (checked once per process);
    // `tzinfo` is read only when `hastzinfo` says it exists.
    let dt = unsafe { &*(p as *const DateTimeObject) };
    let utc = if dt.hastzinfo != 0 {
        if dt.tzinfo != api.timezone_utc {
            return None;
        }
        true
    } else {
        false
    };
    let d = dt.data;
    Some(Fields {
        year: u32::from(d[0]) << 8 | u32::from(d[1]),
        month: u32::from(d[2]),
        day: u32::from(d[3]),
        hour: u32::from(d[4]),
        minute: u32::from(d[5]),
        second: u32::from(d[6]),
        microsecond: u32::from(d[7]) << 16 | u32::from(d[8]) << 8 | u32::from(d[9]),
        utc,
        fold: u32::from(dt.fold),
    })
}

/// An exact `date`: (year, month, day).
#[allow(unsafe_code)]
fn read_date(api: &CApi, obj: &Bound<'_, PyAny>) -> Option<(u32, u32, u32)> {
    let p = obj.as_ptr();
    // SAFETY: as in `read_datetime`.
    if unsafe { ffi::Py_TYPE(p) } != api.date_type {
        return None;
    }
    // SAFETY: an exact date has this layout (checked once per process).
    let d = unsafe { &*(p as *const DateObject) }.data;
    Some((
        u32::from(d[0]) << 8 | u32::from(d[1]),
        u32::from(d[2]),
        u32::from(d[3]),
    ))
}

/// An exact `timedelta`: (days, seconds, microseconds), normalised.
#[allow(unsafe_code)]
fn read_delta(api: &CApi, obj: &Bound<'_, PyAny>) -> Option<(i64, u32, u32)> {
    let p = obj.as_ptr();
    // SAFETY: as in `read_datetime`.
    if unsafe { ffi::Py_TYPE(p) } != api.delta_type {
        return None;
    }
    // SAFETY: an exact timedelta has this layout (checked once per process).
    let d = unsafe { &*(p as *const DeltaObject) };
    Some((
        i64::from(d.days),
        u32::try_from(d.seconds).ok()?,
        u32::try_from(d.microseconds).ok()?,
    ))
}

#[allow(unsafe_code)]
fn new_delta<'py>(
    py: Python<'py>,
    api: &CApi,
    days: i64,
    s: u32,
    us: u32,
) -> Option<Bound<'py, PyAny>> {
    let days = c_int::try_from(days).ok()?;
    let int = |v: u32| c_int::try_from(v).unwrap_or(c_int::MAX);
    // SAFETY: as in `new_datetime`; normalise = 1, as `timedelta(d, s, us)`.
    let p = unsafe { (api.delta_from_delta)(days, int(s), int(us), 1, api.delta_type) };
    owned(py, p)
}

#[allow(unsafe_code)]
fn new_datetime<'py>(py: Python<'py>, api: &CApi, f: &Fields) -> Option<Bound<'py, PyAny>> {
    let tz = if f.utc {
        api.timezone_utc
    } else {
        // SAFETY: the interpreter's `None`, borrowed for the call.
        unsafe { ffi::Py_None() }
    };
    let int = |v: u32| c_int::try_from(v).unwrap_or(c_int::MAX);
    // SAFETY: the GIL is held; the constructor checks its fields and returns
    // a new reference or NULL with an exception set.
    let p = unsafe {
        (api.datetime_from_date_and_time_and_fold)(
            int(f.year),
            int(f.month),
            int(f.day),
            int(f.hour),
            int(f.minute),
            int(f.second),
            int(f.microsecond),
            tz,
            int(f.fold),
            api.datetime_type,
        )
    };
    owned(py, p)
}

#[allow(unsafe_code)]
fn new_date<'py>(py: Python<'py>, api: &CApi, y: u32, m: u32, d: u32) -> Option<Bound<'py, PyAny>> {
    let int = |v: u32| c_int::try_from(v).unwrap_or(c_int::MAX);
    // SAFETY: as in `new_datetime`.
    let p = unsafe { (api.date_from_date)(int(y), int(m), int(d), api.date_type) };
    owned(py, p)
}

/// A new reference, or `None` with the exception cleared (the general path
/// then raises it again, in its own words).
#[allow(unsafe_code)]
fn owned(py: Python<'_>, p: *mut ffi::PyObject) -> Option<Bound<'_, PyAny>> {
    if p.is_null() {
        let _ = PyErr::take(py);
        return None;
    }
    // SAFETY: a new reference the constructor returned.
    Some(unsafe { Bound::from_owned_ptr(py, p) })
}

/// Writes `obj` as a `Value` message when it is one of the plain cases;
/// false (nothing written) otherwise.
pub(super) fn encode(obj: &Bound<'_, PyAny>, buf: &mut Vec<u8>) -> bool {
    let Some(api) = api(obj.py()) else {
        return false;
    };
    // prost's order and defaults: zero fields left out, the offset written
    // whenever it is present.
    if let Some(f) = read_datetime(api, obj) {
        let v = |x: u32| (u64::from(x), x != 0);
        put_message(
            buf,
            &[DATETIME],
            &[
                (1, (zigzag(i64::from(f.year)), true)),
                (2, v(f.month)),
                (3, v(f.day)),
                (4, v(f.hour)),
                (5, v(f.minute)),
                (6, v(f.second)),
                (7, v(f.microsecond)),
                (8, (0, f.utc)),
                (9, v(f.fold)),
            ],
        );
    } else if let Some((y, m, d)) = read_date(api, obj) {
        let date = [
            (1, (zigzag(i64::from(y)), true)),
            (2, (u64::from(m), true)),
            (3, (u64::from(d), true)),
        ];
        put_message(buf, &[0x82, 0x01], &date);
    } else if let Some((days, seconds, micros)) = read_delta(api, obj) {
        let delta = [
            (1, (zigzag(days), days != 0)),
            (2, (u64::from(seconds), seconds != 0)),
            (3, (u64::from(micros), micros != 0)),
        ];
        put_message(buf, &[0x92, 0x01], &delta);
    } else {
        return false;
    }
    true
}

/// Writes a `Value` field (`key`) holding a message of varint fields
/// (tag, (value, present)). Every such message is under 128 bytes, so its
/// length is one byte, set once the fields are written.
fn put_message(buf: &mut Vec<u8>, key: &[u8], fields: &[(u8, (u64, bool))]) {
    buf.extend_from_slice(key);
    let len_at = buf.len();
    buf.push(0);
    for &(tag, (v, present)) in fields {
        if present {
            buf.push(tag << 3);
            put_varint(buf, v);
        }
    }
    buf[len_at] = (buf.len() - len_at - 1) as u8;
}

/// The `DateTime` message at `s..e` as a datetime, when it is a plain case.
pub(super) fn decode_datetime<'py>(
    py: Python<'py>,
    buf: &[u8],
    s: usize,
    e: usize,
) -> Option<Bound<'py, PyAny>> {
    let api = api(py)?;
    let (v, present) = varint_fields::<10>(buf, s, e)?;
    let year = unzigzag(v[1]);
    // The offset is `optional`: written (even as 0) only when present.
    let offset = (present & 1 << 8 != 0).then(|| unzigzag(v[8]));
    let small = |x: u64, max: u64| (x <= max).then_some(x as u32);
    let f = Fields {
        year: u32::try_from(year)
            .ok()
            .filter(|y| (1..=9999).contains(y))?,
        month: small(v[2], 12)?,
        day: small(v[3], 31)?,
        hour: small(v[4], 23)?,
        minute: small(v[5], 59)?,
        second: small(v[6], 59)?,
        microsecond: small(v[7], 999_999)?,
        utc: match offset {
            None => false,
            Some(0) => true,
            Some(_) => return None,
        },
        fold: small(v[9], 1)?,
    };
    new_datetime(py, api, &f)
}

/// The `TimeDelta` message at `s..e` as a timedelta, when it is a plain case.
pub(super) fn decode_timedelta<'py>(
    py: Python<'py>,
    buf: &[u8],
    s: usize,
    e: usize,
) -> Option<Bound<'py, PyAny>> {
    let api = api(py)?;
    let (v, _) = varint_fields::<4>(buf, s, e)?;
    let days = unzigzag(v[1]);
    if days.abs() > 999_999_999 || v[2] >= 86_400 || v[3] >= 1_000_000 {
        return None;
    }
    new_delta(py, api, days, v[2] as u32, v[3] as u32)
}

/// The fields 1..N-1 of a message of varint fields in increasing order (0
/// when absent), and which were present (bit `tag`); `None` for anything
/// else.
fn varint_fields<const N: usize>(buf: &[u8], s: usize, e: usize) -> Option<([u64; N], u32)> {
    let mut v = [0u64; N];
    let mut present = 0u32;
    let mut pos = s;
    let mut last = 0;
    while pos < e {
        let key = varint(buf, &mut pos, e)?;
        let tag = (key >> 3) as usize;
        if key & 7 != 0 || !(1..N).contains(&tag) || tag <= last {
            return None;
        }
        v[tag] = varint(buf, &mut pos, e)?;
        present |= 1 << tag;
        last = tag;
    }
    Some((v, present))
}

/// The `Date` message at `s..e` as a date, when it is a plain case.
pub(super) fn decode_date<'py>(
    py: Python<'py>,
    buf: &[u8],
    s: usize,
    e: usize,
) -> Option<Bound<'py, PyAny>> {
    let api = api(py)?;
    let (v, _) = varint_fields::<4>(buf, s, e)?;
    let year = u32::try_from(unzigzag(v[1]))
        .ok()
        .filter(|y| (1..=9999).contains(y))?;
    let small = |x: u64, max: u64| (x <= max).then_some(x as u32);
    new_date(py, api, year, small(v[2], 12)?, small(v[3], 31)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_capsule_and_the_layout_check_out_on_this_interpreter() {
        Python::initialize();
        Python::attach(|py| {
            let api = api(py).expect("datetime's C API checked out");
            let dt = py
                .eval(
                    c"__import__('datetime').datetime(2024, 2, 29, 23, 59, 58, 123456, fold=1)",
                    None,
                    None,
                )
                .expect("a datetime");
            let f = read_datetime(api, &dt).expect("an exact naive datetime");
            assert_eq!(
                (
                    f.year,
                    f.month,
                    f.day,
                    f.hour,
                    f.minute,
                    f.second,
                    f.microsecond,
                    f.fold
                ),
                (2024, 2, 29, 23, 59, 58, 123_456, 1)
            );
        });
    }
}
