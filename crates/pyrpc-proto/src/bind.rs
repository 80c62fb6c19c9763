//! Binding a call's positional and keyword arguments to named parameters,
//! the way Python binds a call to `def f(a, b)`: what typed services use to
//! accept `greet("Py")` and `greet(name="Py")` alike.

use serde::de::DeserializeOwned;

use crate::args::Args;
use crate::error::RemoteError;
use crate::value::Value;

/// Puts each argument of `args` in the slot of its parameter in `params`:
/// positional ones in order, keyword ones by name. A slot left `None` was
/// not given (see [`take_arg`] for what that means).
///
/// # Errors
///
/// `BAD_ARGUMENTS`, worded like Python's `TypeError`: too many positional
/// arguments, an unknown keyword, a parameter given twice.
///
/// # Examples
///
/// ```
/// use pyrpc_proto::{bind_args, Args, Value};
///
/// let slots = bind_args("greet", &["name", "greeting"], Args::new().kwarg("name", "Py"))?;
/// assert_eq!(slots, vec![Some(Value::from("Py")), None]);
/// let e = bind_args("greet", &["name"], Args::new().arg(1).kwarg("name", "Py")).unwrap_err();
/// assert_eq!(e.message, "greet() got multiple values for argument 'name'");
/// # Ok::<(), pyrpc_proto::RemoteError>(())
/// ```
pub fn bind_args(
    method: &str,
    params: &[&str],
    args: Args,
) -> Result<Vec<Option<Value>>, RemoteError> {
    if args.args.len() > params.len() {
        let n = params.len();
        return Err(RemoteError::bad_arguments(format!(
            "{method}() takes {n} positional argument{} but {} were given",
            if n == 1 { "" } else { "s" },
            args.args.len()
        )));
    }
    let mut slots: Vec<Option<Value>> = vec![None; params.len()];
    for (slot, v) in slots.iter_mut().zip(args.args) {
        *slot = Some(v);
    }
    for (name, v) in args.kwargs {
        let Some(i) = params.iter().position(|p| *p == name) else {
            return Err(RemoteError::bad_arguments(format!(
                "{method}() got an unexpected keyword argument '{name}'"
            )));
        };
        if slots[i].is_some() {
            return Err(RemoteError::bad_arguments(format!(
                "{method}() got multiple values for argument '{name}'"
            )));
        }
        slots[i] = Some(v);
    }
    Ok(slots)
}

/// Reads the slot of parameter `index` (named `name`) of `method` as `T`.
/// A parameter that was not given reads as `None`, so an `Option` parameter
/// may be left out and any other is missing.
///
/// # Errors
///
/// `BAD_ARGUMENTS` naming the argument and the part that did not fit
/// (`greet(): argument 1 (name): expected str, got int`), or the missing
/// argument (`greet() missing required argument 'name'`).
///
/// # Examples
///
/// ```
/// use pyrpc_proto::{take_arg, Value};
///
/// let n: i64 = take_arg("f", 0, "n", Some(Value::from(3)))?;
/// assert_eq!(n, 3);
/// let opt: Option<i64> = take_arg("f", 1, "opt", None)?;
/// assert_eq!(opt, None);
/// let e = take_arg::<String>("f", 0, "name", None).unwrap_err();
/// assert_eq!(e.message, "f() missing required argument 'name'");
/// # Ok::<(), pyrpc_proto::RemoteError>(())
/// ```
pub fn take_arg<T: DeserializeOwned>(
    method: &str,
    index: usize,
    name: &str,
    slot: Option<Value>,
) -> Result<T, RemoteError> {
    let given = slot.is_some();
    crate::from_value(slot.unwrap_or(Value::None)).map_err(|e| {
        if !given {
            return RemoteError::bad_arguments(format!(
                "{method}() missing required argument '{name}'"
            ));
        }
        let n = index + 1;
        let which = if name.is_empty() {
            format!("argument {n}")
        } else {
            format!("argument {n} ({name})")
        };
        RemoteError::bad_arguments(if e.path.is_empty() {
            format!("{method}(): {which}: {}", e.message)
        } else {
            format!("{method}(): {which} at {}: {}", e.path, e.message)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn binds_like_python() {
        let p = ["a", "b"];
        let slots = bind_args("f", &p, Args::new().arg(1).kwarg("b", 2)).expect("bind");
        assert_eq!(slots, vec![Some(Value::from(1)), Some(Value::from(2))]);

        let e = bind_args("f", &p, Args::new().arg(1).arg(2).arg(3)).unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadArguments);
        assert_eq!(
            e.message,
            "f() takes 2 positional arguments but 3 were given"
        );
        let e = bind_args("f", &p, Args::new().kwarg("c", 1)).unwrap_err();
        assert_eq!(e.message, "f() got an unexpected keyword argument 'c'");
    }

    #[test]
    fn take_arg_names_the_argument_and_the_field() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct P {
            x: i64,
        }
        let bad = Value::dict([(Value::from("x"), Value::from("s"))]);
        let e = take_arg::<P>("f", 1, "p", Some(bad)).unwrap_err();
        assert_eq!(
            e.message,
            "f(): argument 2 (p) at .x: expected int, got str"
        );
        let e = take_arg::<i64>("f", 0, "n", Some(Value::from("s"))).unwrap_err();
        assert_eq!(e.message, "f(): argument 1 (n): expected int, got str");
    }
}
