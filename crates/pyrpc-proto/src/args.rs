//! [`Args`]: the positional and keyword arguments of one call.

use crate::error::RemoteError;
use crate::value::Value;

/// The positional and keyword arguments of one call, in the caller's order.
///
/// # Examples
///
/// ```
/// use pyrpc_proto::{Args, Value};
///
/// let a = Args::new().arg(1).kwarg("foo", "foo");
/// assert_eq!(a.to_string(), "args=(1,), kwargs={'foo': 'foo'}");
/// assert_eq!(a.kwarg_value("foo"), Some(&Value::from("foo")));
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Args {
    /// Positional arguments.
    pub args: Vec<Value>,
    /// Keyword arguments; names are unique.
    pub kwargs: Vec<(String, Value)>,
}

impl Args {
    /// No arguments.
    pub fn new() -> Self {
        Self::default()
    }

    /// Positional arguments only.
    pub fn positional(args: impl IntoIterator<Item = Value>) -> Self {
        Args {
            args: args.into_iter().collect(),
            kwargs: Vec::new(),
        }
    }

    /// Adds a positional argument.
    pub fn arg(mut self, v: impl Into<Value>) -> Self {
        self.args.push(v.into());
        self
    }

    /// Adds (or replaces) a keyword argument.
    pub fn kwarg(mut self, name: impl Into<String>, v: impl Into<Value>) -> Self {
        let name = name.into();
        let v = v.into();
        match self.kwargs.iter_mut().find(|(k, _)| *k == name) {
            Some(slot) => slot.1 = v,
            None => self.kwargs.push((name, v)),
        }
        self
    }

    /// The keyword argument `name`, if given.
    pub fn kwarg_value(&self, name: &str) -> Option<&Value> {
        self.kwargs.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// Checks there are exactly `n` positional and no keyword arguments.
    ///
    /// # Errors
    ///
    /// A `BAD_ARGUMENTS` [`RemoteError`] worded like Python's `TypeError`.
    pub fn expect_exactly(&self, method: &str, n: usize) -> Result<(), RemoteError> {
        if let Some((k, _)) = self.kwargs.first() {
            return Err(RemoteError::bad_arguments(format!(
                "{method}() got an unexpected keyword argument '{k}'"
            )));
        }
        if self.args.len() != n {
            return Err(RemoteError::bad_arguments(format!(
                "{method}() takes {n} positional argument{} but {} were given",
                if n == 1 { "" } else { "s" },
                self.args.len()
            )));
        }
        Ok(())
    }

    /// The args as a tuple value and the kwargs as a dict value, the way a
    /// Python `echo(*args, **kwargs)` returning `(args, kwargs)` sees them.
    pub fn into_values(self) -> (Value, Value) {
        (
            Value::Tuple(self.args),
            Value::Dict(
                self.kwargs
                    .into_iter()
                    .map(|(k, v)| (Value::Str(k), v))
                    .collect(),
            ),
        )
    }
}

impl std::fmt::Display for Args {
    /// `args=(...), kwargs={...}`, as the original pyrpc's log lines.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (a, k) = self.clone().into_values();
        write!(f, "args={a}, kwargs={k}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn kwarg_replaces_same_name() {
        let a = Args::new().kwarg("x", 1).kwarg("x", 2);
        assert_eq!(a.kwargs, vec![("x".to_string(), Value::from(2))]);
    }

    #[test]
    fn expect_exactly_words_like_python() {
        let e = Args::new()
            .arg(1)
            .arg(2)
            .expect_exactly("f", 1)
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadArguments);
        assert_eq!(
            e.message,
            "f() takes 1 positional argument but 2 were given"
        );
        let e = Args::new()
            .kwarg("z", 1)
            .expect_exactly("f", 0)
            .unwrap_err();
        assert_eq!(e.message, "f() got an unexpected keyword argument 'z'");
        assert!(Args::new().arg(1).expect_exactly("f", 1).is_ok());
    }
}
