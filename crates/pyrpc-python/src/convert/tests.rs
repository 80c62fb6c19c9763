use super::*;
use pyo3::ffi::c_str;

fn eval<'py>(py: Python<'py>, code: &std::ffi::CStr) -> Bound<'py, PyAny> {
    py.eval(code, None, None)
        .expect("test expression evaluates")
}

#[test]
fn round_trips_keep_shapes() {
    Python::initialize();
    Python::attach(|py| {
        let obj = eval(
            py,
            c_str!("(None, True, 1, 2**70, -2**64, 1.5, 'x', b'y', [1, (2,)], {1: {'a': frozenset({3})}}, {4}, ())"),
        );
        let v = to_value(&obj, Options::default()).expect("convertible");
        let back = to_python(py, v, Options::default()).expect("back to Python");
        assert!(back.bind(py).eq(&obj).expect("comparable"));
        let types = eval(py, c_str!("lambda t: [type(x).__name__ for x in t]"));
        let names: Vec<String> = types
            .call1((back,))
            .and_then(|n| n.extract())
            .expect("type names");
        assert_eq!(
            names,
            [
                "NoneType", "bool", "int", "int", "int", "float", "str", "bytes", "list", "dict",
                "set", "tuple"
            ]
        );
    });
}

#[test]
fn bool_is_not_int_and_big_ints_are_canonical() {
    Python::initialize();
    Python::attach(|py| {
        let v = |code| to_value(&eval(py, code), Options::default()).expect("convertible");
        assert_eq!(v(c_str!("True")), Value::Bool(true));
        assert_eq!(v(c_str!("1")), Value::Int(1));
        assert_eq!(v(c_str!("2**63 - 1")), Value::Int(i64::MAX));
        assert!(matches!(v(c_str!("2**63")), Value::BigInt(_)));
        assert_eq!(
            v(c_str!("bytearray(b'ab')")),
            Value::ByteArray(Bytes::from_static(b"ab"))
        );
    });
}

#[test]
fn errors_name_the_type_and_the_place() {
    Python::initialize();
    Python::attach(|py| {
        let obj = eval(py, c_str!("[1, {'x': (2, object())}]"));
        let err = to_value(&obj, Options::default()).expect_err("object() is refused");
        assert!(
            err.message("args[0]")
                .starts_with("cannot send object of type object at args[0][1]['x'][1]: "),
            "{}",
            err.message("args[0]")
        );
        let deep = eval(py, c_str!("[[[[1]]]]"));
        let opts = Options {
            max_depth: 3,
            ..Options::default()
        };
        let err = to_value(&deep, opts).expect_err("too deep");
        assert!(err
            .message("result")
            .contains("nested deeper than 3 levels"));
    });
}

#[test]
fn pickles_are_refused_unless_allowed() {
    Python::initialize();
    Python::attach(|py| {
        let frac = eval(py, c_str!("__import__('collections').deque([1, 3])"));
        assert!(to_value(&frac, Options::default()).is_err());
        let allow = Options {
            allow_pickle: true,
            ..Options::default()
        };
        let v = to_value(&frac, allow).expect("pickled");
        assert!(matches!(v, Value::Pickle(_)));
        assert!(to_python(py, v.clone(), Options::default()).is_err());
        let back = to_python(py, v, allow).expect("unpickled");
        assert!(back.bind(py).eq(&frac).expect("comparable"));
    });
}
