//! The direct conversion against the `Value` path.

use bytes::Bytes;
use pyo3::prelude::*;
use pyrpc_proto::raw;
use pyrpc_proto::ValueError;

use super::{decode, encode, DecodeError};
use crate::convert::{self, Options};
use pyo3::ffi::c_str;
use pyrpc_proto::Value;

fn eval<'py>(py: Python<'py>, code: &std::ffi::CStr) -> Bound<'py, PyAny> {
    py.eval(code, None, None)
        .expect("test expression evaluates")
}

fn round_trip<'py>(py: Python<'py>, obj: &Bound<'py, PyAny>) -> Bound<'py, PyAny> {
    let bytes = encode(obj, Options::default()).expect("encodes");
    match decode(py, &bytes, Options::default()) {
        Ok(v) => v.into_bound(py),
        Err(_) => panic!("decodes"),
    }
}

#[test]
fn the_bytes_are_what_the_value_path_reads() {
    Python::initialize();
    Python::attach(|py| {
        let obj = eval(
            py,
            c_str!("[None, True, False, 0, -1, 2**63-1, -2**63, 2**70, 1.5, 'x', 'é', b'y', (1, 'a'), {1: {'a': frozenset({3})}}, {4}, (), [], {}, bytearray(b'z')]"),
        );
        let bytes = encode(&obj, Options::default()).expect("encodes");
        let via_value = convert::to_value(&obj, Options::default()).expect("convertible");
        assert_eq!(raw::decode_value(bytes.clone(), 1024), Ok(via_value));
        let back = round_trip(py, &obj);
        assert!(back.eq(&obj).expect("comparable"));
        let types = eval(py, c_str!("lambda t: [type(x).__name__ for x in t]"));
        let names: Vec<String> = types
            .call1((back,))
            .and_then(|n| n.extract())
            .expect("type names");
        assert_eq!(names[12], "tuple");
        assert_eq!(names[18], "bytearray");
    });
}

#[test]
fn reads_what_the_value_path_writes() {
    Python::initialize();
    Python::attach(|py| {
        let v = Value::list([
            Value::dict([(Value::from("k"), Value::from(2.5))]),
            Value::tuple([Value::from(1), Value::None]),
        ]);
        let obj = match decode(py, &raw::encode_value(v), Options::default()) {
            Ok(obj) => obj.into_bound(py),
            Err(_) => panic!("decodes"),
        };
        assert!(obj
            .eq(eval(py, c_str!("[{'k': 2.5}, (1, None)]")))
            .expect("comparable"));
    });
}

#[test]
fn deep_values_take_the_flat_encoding_and_too_deep_is_refused() {
    Python::initialize();
    Python::attach(|py| {
        let deep = eval(
            py,
            c_str!("__import__('functools').reduce(lambda a, _: [a], range(200), 1)"),
        );
        let bytes = encode(&deep, Options::default()).expect("encodes");
        let v = raw::decode_value(bytes, 1024).expect("decodes");
        assert!(v.check_depth(201).is_ok() && v.check_depth(200).is_err());
        assert!(round_trip(py, &deep).eq(&deep).expect("comparable"));
        let opts = Options {
            max_depth: 100,
            ..Options::default()
        };
        let err = encode(&deep, opts).expect_err("too deep");
        assert!(err
            .message("args[0]")
            .contains("nested deeper than 100 levels"));
        let bytes = encode(&deep, Options::default()).expect("encodes");
        assert!(matches!(
            decode(py, &bytes, opts),
            Err(DecodeError::Value(ValueError::TooDeep { max: 100 }))
        ));
    });
}

#[test]
fn errors_name_the_place_and_keys_are_shared() {
    Python::initialize();
    Python::attach(|py| {
        let obj = eval(py, c_str!("[1, {'x': (2, object())}]"));
        let err = encode(&obj, Options::default()).expect_err("refused");
        assert!(
            err.message("args[0]")
                .starts_with("cannot send object of type object at args[0][1]['x'][1]: "),
            "{}",
            err.message("args[0]")
        );
        let records = eval(py, c_str!("[{'name': i} for i in range(3)]"));
        let back = round_trip(py, &records);
        let same = eval(py, c_str!("lambda l: [next(iter(d)) for d in l]"))
            .call1((back,))
            .expect("keys");
        let ids = eval(py, c_str!("lambda ks: len({id(k) for k in ks})"))
            .call1((same,))
            .and_then(|n| n.extract::<usize>())
            .expect("ids");
        assert_eq!(ids, 1);
        assert!(decode(
            py,
            &Bytes::from_static(&[0x32, 0x05, b'a']),
            Options::default()
        )
        .is_err());
    });
}

#[test]
fn homogeneous_lists_travel_packed_and_come_back_as_lists() {
    Python::initialize();
    Python::attach(|py| {
        let obj = eval(
            py,
            c_str!("[[1, -2, 300], [0.5, -1.5], [], [1, 2**64], [True, 1], [1, 1.5], [2**63-1, -2**63], list(range(1000))]"),
        );
        let bytes = encode(&obj, Options::default()).expect("encodes");
        // The same bytes as Rust's encoder writes for the same value.
        let via_value = convert::to_value(&obj, Options::default()).expect("convertible");
        assert_eq!(raw::encode_value(via_value.clone()), bytes);
        assert_eq!(raw::decode_value(bytes.clone(), 1024), Ok(via_value));
        // [1, -2, 300] as PROTOCOL.md shows it, inside the outer list's item.
        let example = [0x82, 0x02, 0x06, 0x0a, 0x04, 0x02, 0x03, 0xd8, 0x04];
        assert!(bytes.windows(example.len()).any(|w| w == example));
        let back = round_trip(py, &obj);
        assert!(back.eq(&obj).expect("comparable"));
        let types = eval(
            py,
            c_str!("lambda l: {type(x).__name__ for xs in l for x in xs} | {type(xs).__name__ for xs in l}"),
        );
        let names: std::collections::BTreeSet<String> = types
            .call1((back,))
            .and_then(|n| n.extract())
            .expect("type names");
        assert_eq!(
            names.into_iter().collect::<Vec<_>>(),
            ["bool", "float", "int", "list"]
        );
    });
}

#[test]
fn packed_lists_respect_the_depth_limit_and_refuse_bad_bytes() {
    Python::initialize();
    Python::attach(|py| {
        let one = Options {
            max_depth: 1,
            ..Options::default()
        };
        let ints = eval(py, c_str!("[1, 2]"));
        assert!(encode(&ints, one).is_err());
        let bytes = encode(&ints, Options::default()).expect("encodes");
        assert!(matches!(
            decode(py, &bytes, one),
            Err(DecodeError::Value(ValueError::TooDeep { max: 1 }))
        ));
        // A truncated varint, and floats that are not 8 bytes each.
        for bad in [
            &[0x82, 0x02, 0x03, 0x0a, 0x01, 0x80][..],
            &[0x8a, 0x02, 0x05, 0x0a, 0x03, 0, 0, 0][..],
        ] {
            assert!(matches!(
                decode(py, &Bytes::copy_from_slice(bad), Options::default()),
                Err(DecodeError::Value(_))
            ));
        }
        // Unpacked items (valid protobuf) go through the Value path.
        let unpacked = Bytes::from_static(&[0x82, 0x02, 0x04, 0x08, 0x02, 0x08, 0x03]);
        let Ok(obj) = decode(py, &unpacked, Options::default()) else {
            panic!("decodes");
        };
        let obj = obj.into_bound(py);
        assert!(obj.eq(eval(py, c_str!("[1, -2]"))).expect("comparable"));
    });
}

/// The decoder charges exactly what the server's scan counts for the same
/// value (one for the value, `cost::value_cost` for what it holds), and
/// refuses as soon as the total passes a budget, leaving none of the
/// objects it made behind.
#[test]
fn the_budget_is_charged_as_the_scan_counts() {
    use super::{decode_within, Budget};
    use pyrpc_proto::cost::{value_cost, DECODED_VALUE_BYTES};
    Python::initialize();
    Python::attach(|py| {
        let exprs = [
            c_str!("[None] * 1000"),
            c_str!("[{'a': i, 'b': 'x', 'c': 1.5, 'd': None} for i in range(300)]"),
            c_str!("{str(i): float(i) for i in range(3000)}"),
            c_str!("(list(range(1000)), [0.5] * 100, {1, 2}, frozenset({3}), [[[]]])"),
            c_str!("[__import__('datetime').date(2020, 1, i) for i in range(1, 20)]"),
        ];
        for expr in exprs {
            let obj = eval(py, expr);
            let bytes = encode(&obj, Options::default()).expect("encodes");
            let cost = value_cost(&bytes);
            let counted = (1 + cost.values) * DECODED_VALUE_BYTES + cost.array_bytes;
            let mut budget = Budget::with_limit(counted);
            let back = match decode_within(py, &bytes, Options::default(), &mut budget) {
                Ok(v) => v.into_bound(py),
                Err(_) => panic!("decodes within {counted} bytes: {expr:?}"),
            };
            assert!(back.eq(&obj).expect("comparable"), "{expr:?}");
            assert_eq!(budget.spent(), counted, "{expr:?}");
            let mut short = Budget::with_limit(counted - 1);
            match decode_within(py, &bytes, Options::default(), &mut short) {
                Err(DecodeError::Py(e)) => {
                    assert!(e.to_string().contains("budget"), "{e}");
                }
                _ => panic!("refused one byte short: {expr:?}"),
            }
        }
    });
}

#[test]
fn datetimes_and_dates_are_the_value_paths_bytes_both_ways() {
    Python::initialize();
    Python::attach(|py| {
        // Plain cases (read in place) and others (the Value path), side by side.
        let obj = eval(
            py,
            c_str!(
                "(lambda dt: [dt.datetime(2021, 3, 4, 5, 6, 7, 80910), dt.datetime(1, 1, 1), \
                 dt.datetime(9999, 12, 31, 23, 59, 59, 999999), dt.datetime(2020, 2, 29, fold=1), \
                 dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc), \
                 dt.datetime(2000, 1, 1, 0, 0, 0, 1, tzinfo=dt.timezone(dt.timedelta(hours=-3))), \
                 dt.date(1, 1, 1), dt.date(9999, 12, 31), dt.date(2024, 2, 29), \
                 type('D', (dt.datetime,), {})(2001, 1, 1), dt.time(1, 2), dt.timedelta(3), \
                 dt.timedelta(0), dt.timedelta(-1, 5, 7), dt.timedelta.max, dt.timedelta.min, \
                 dt.timedelta(microseconds=1), type('T', (dt.timedelta,), {})(2)])\
                 (__import__('datetime'))"
            ),
        );
        let list = obj.cast::<pyo3::types::PyList>().expect("a list");
        for item in list.iter() {
            let bytes = encode(&item, Options::default()).expect("encodes");
            let via_value = convert::to_value(&item, Options::default()).expect("convertible");
            assert_eq!(
                bytes,
                raw::encode_value(via_value.clone()),
                "the bytes of {item}"
            );
            let back = round_trip(py, &item);
            assert!(
                back.eq(&item).expect("comparable"),
                "{item} came back as {back}"
            );
            assert!(
                back.get_type().is(item.get_type())
                    || item.get_type().name().is_ok_and(|n| n == "D" || n == "T"),
                "{item}'s type"
            );
            let offset = |o: &Bound<'_, PyAny>| o.call_method0("utcoffset").map(|u| u.to_string());
            if item.hasattr("utcoffset").unwrap_or(false)
                && !item.get_type().name().is_ok_and(|n| n == "time")
            {
                assert_eq!(offset(&back).ok(), offset(&item).ok(), "{item}'s offset");
            }
            let fold =
                |o: &Bound<'_, PyAny>| o.getattr("fold").and_then(|f| f.extract::<u32>()).ok();
            assert_eq!(fold(&back), fold(&item), "{item}'s fold");
        }
        // Messages the plain decode leaves to the Value path: an invalid day
        // (the same error), fields out of order, an unknown field.
        for (msg, ok) in [
            (&[0x7a, 0x06, 0x08, 0xa0, 0x1f, 0x10, 0x02, 0x18][..], false), // truncated
            (
                &[0x7a, 0x07, 0x08, 0xa0, 0x1f, 0x10, 0x02, 0x18, 0x1e][..],
                false,
            ), // Feb 30
            (
                &[0x7a, 0x07, 0x10, 0x02, 0x08, 0xa0, 0x1f, 0x18, 0x01][..],
                true,
            ), // out of order
            (
                &[
                    0x7a, 0x09, 0x08, 0xa0, 0x1f, 0x10, 0x02, 0x18, 0x01, 0x60, 0x05,
                ][..],
                true,
            ), // field 12
            (
                &[
                    0x7a, 0x09, 0x08, 0xa0, 0x1f, 0x10, 0x02, 0x18, 0x01, 0x40, 0x02,
                ][..],
                true,
            ), // +1 us offset
            (&[0x92, 0x01, 0x04, 0x10, 0x80, 0xa3, 0x05][..], false),       // timedelta, 86400 s
            (&[0x92, 0x01, 0x04, 0x10, 0x05, 0x08, 0x02][..], true), // timedelta, out of order
        ] {
            let direct = decode(py, &Bytes::copy_from_slice(msg), Options::default());
            let general = raw::decode_value(Bytes::copy_from_slice(msg), 64);
            assert_eq!(direct.is_ok(), ok, "{msg:?}");
            assert_eq!(general.is_ok(), ok, "{msg:?}");
            if let (Ok(d), Ok(g)) = (direct, general) {
                let g = convert::to_python(py, g, Options::default()).expect("converts");
                assert!(d.bind(py).eq(g.bind(py)).expect("comparable"), "{msg:?}");
            }
        }
    });
}
