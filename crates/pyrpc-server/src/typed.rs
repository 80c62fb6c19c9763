//! Reading a call's arguments as a Rust type and sending a Rust value back:
//! what the typed handlers of [`Methods`](crate::Methods) and the
//! `#[service]` adapters share.

use pyrpc_proto::{bind_args, take_arg, Args, ErrorKind, RemoteError, Shape, Value};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Reads the arguments of `method` as `A`: a tuple is the argument list,
/// `()` is none, anything else is the one argument ([`Shape`]). With
/// parameter names (`params`, may be empty) keyword arguments are bound to
/// them the way Python binds a call; without, they are refused.
pub(crate) fn typed_args<A: DeserializeOwned>(
    method: &str,
    params: &[String],
    args: Args,
) -> Result<A, RemoteError> {
    let shape = Shape::of_type::<A>();
    let expected = match shape {
        Shape::Unit => 0,
        Shape::One => 1,
        Shape::Tuple => args.args.len().max(params.len()),
    };
    if params.is_empty() {
        args.expect_exactly(method, expected).or_else(|e| {
            if shape == Shape::Tuple {
                Ok(())
            } else {
                Err(e)
            }
        })?;
        if let Some((k, _)) = args.kwargs.first() {
            return Err(RemoteError::bad_arguments(format!(
                "{method}() got an unexpected keyword argument '{k}'"
            )));
        }
    }
    match shape {
        Shape::Unit => {
            let names: Vec<&str> = params.iter().map(String::as_str).collect();
            bind_args(method, &names, args)?;
            pyrpc_proto::from_value(Value::None)
                .map_err(|e| RemoteError::bad_arguments(e.to_string()))
        }
        Shape::One => {
            let name = params.first().map_or("", String::as_str);
            let mut slots = bind_args(method, &[name], args)?;
            take_arg(method, 0, name, slots.pop().flatten())
        }
        Shape::Tuple if params.is_empty() => tuple(method, args.args),
        Shape::Tuple => {
            let names: Vec<&str> = params.iter().map(String::as_str).collect();
            let slots = bind_args(method, &names, args)?;
            let missing: Vec<bool> = slots.iter().map(Option::is_none).collect();
            let items = slots
                .into_iter()
                .map(|s| s.unwrap_or(Value::None))
                .collect();
            tuple(method, items).map_err(|e| missing_named(e, method, &names, &missing))
        }
    }
}

/// Reads `items` as the tuple `A`, naming the argument that did not fit.
fn tuple<A: DeserializeOwned>(method: &str, items: Vec<Value>) -> Result<A, RemoteError> {
    pyrpc_proto::from_value(Value::Tuple(items)).map_err(|e| {
        // "[0].x" -> "argument 1 at .x": the first step is the argument.
        let located = e
            .path
            .strip_prefix('[')
            .and_then(|p| p.split_once(']'))
            .and_then(|(i, rest)| Some((i.parse::<usize>().ok()? + 1, rest)));
        RemoteError::bad_arguments(match located {
            Some((n, "")) => format!("{method}(): argument {n}: {}", e.message),
            Some((n, rest)) => format!("{method}(): argument {n} at {rest}: {}", e.message),
            None => format!("{method}(): {e}"),
        })
    })
}

/// A failure on an argument that was not given is a missing argument.
fn missing_named(e: RemoteError, method: &str, names: &[&str], missing: &[bool]) -> RemoteError {
    let prefix = format!("{method}(): argument ");
    let n = e
        .message
        .strip_prefix(&prefix)
        .and_then(|rest| rest.split([':', ' ']).next())
        .and_then(|n| n.parse::<usize>().ok());
    match n {
        Some(n) if n >= 1 && missing.get(n - 1) == Some(&true) => RemoteError::bad_arguments(
            format!("{method}() missing required argument '{}'", names[n - 1]),
        ),
        _ => e,
    }
}

/// The value of a typed result, or why it cannot be sent.
pub(crate) fn typed_reply<R: Serialize>(method: &str, r: R) -> Result<Value, RemoteError> {
    pyrpc_proto::to_value(&r).map_err(|e| {
        RemoteError::new(
            ErrorKind::UnsupportedValue,
            format!("the result of {method}() cannot be sent: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn tuples_name_the_argument_and_field() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct P {
            x: i64,
        }
        let bad = Args::new()
            .arg(1)
            .arg(Value::dict([(Value::from("x"), Value::from("s"))]));
        let e = typed_args::<(i64, P)>("f", &[], bad).expect_err("bad x");
        assert_eq!(e.kind, ErrorKind::BadArguments);
        assert_eq!(e.message, "f(): argument 2 at .x: expected int, got str");

        let e = typed_args::<(i64,)>("f", &[], Args::new().arg("a")).expect_err("bad");
        assert_eq!(e.message, "f(): argument 1: expected int, got str");

        let e = typed_args::<(i64,)>("f", &[], Args::new()).expect_err("few");
        assert_eq!(e.message, "f(): expected 1 item, got 0");

        let e = typed_args::<(i64,)>("f", &[], Args::new().arg(1).kwarg("k", 2)).expect_err("kw");
        assert_eq!(e.message, "f() got an unexpected keyword argument 'k'");

        let ok: (i64, String) = typed_args("f", &[], Args::new().arg(1).arg("a")).expect("ok");
        assert_eq!(ok, (1, "a".to_owned()));
    }

    #[test]
    fn a_type_that_is_no_tuple_is_the_one_argument() {
        let s: String = typed_args("greet", &[], Args::new().arg("Py")).expect("one str");
        assert_eq!(s, "Py");
        let v: Vec<i64> =
            typed_args("f", &[], Args::new().arg(vec![Value::from(1)])).expect("list");
        assert_eq!(v, [1]);
        let e = typed_args::<String>("greet", &[], Args::new().arg("a").arg("b")).unwrap_err();
        assert_eq!(
            e.message,
            "greet() takes 1 positional argument but 2 were given"
        );
        let e = typed_args::<String>("greet", &[], Args::new().arg(1)).unwrap_err();
        assert_eq!(e.message, "greet(): argument 1: expected str, got int");
        let (): () = typed_args("f", &[], Args::new()).expect("none");
        assert!(typed_args::<()>("f", &[], Args::new().arg(1)).is_err());
    }

    #[test]
    fn named_parameters_take_keyword_arguments() {
        let p = names(&["name"]);
        let s: String = typed_args("greet", &p, Args::new().kwarg("name", "Py")).expect("kw");
        assert_eq!(s, "Py");
        let e = typed_args::<String>("greet", &p, Args::new()).unwrap_err();
        assert_eq!(e.message, "greet() missing required argument 'name'");

        let p = names(&["a", "b"]);
        let t: (i64, Option<i64>) = typed_args("f", &p, Args::new().kwarg("a", 1)).expect("opt");
        assert_eq!(t, (1, None));
        let t: (i64, i64) = typed_args("f", &p, Args::new().kwarg("b", 2).arg(1)).expect("mixed");
        assert_eq!(t, (1, 2));
        let e = typed_args::<(i64, i64)>("f", &p, Args::new().kwarg("a", 1)).unwrap_err();
        assert_eq!(e.message, "f() missing required argument 'b'");
    }
}
