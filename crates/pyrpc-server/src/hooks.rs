//! [`CallRecord`]: what the call and exception hooks are told about a call
//! (the original pyrpc's `get_call_logging_func` / `get_exception_logging_func`).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use pyrpc_proto::{Args, RemoteError, Value};

/// The longest `method(args=..., kwargs=...)` part of a summary, in chars.
const PREFIX_MAX: usize = 60;
/// The longest summary line, in chars (before the prefix's `...)` marker).
const LINE_MAX: usize = 120;

/// One finished call, as given to the hooks.
///
/// Built only when a hook is set, so the arguments are cloned only then.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct CallRecord {
    /// The method called.
    pub method: String,
    /// Its arguments.
    pub args: Args,
    /// What it returned, or the error it raised.
    pub result: Result<Value, RemoteError>,
    /// How long the call ran (from the start of the method to its result;
    /// waiting for a turn under `synchronous` is not counted).
    pub elapsed: Duration,
}

impl CallRecord {
    /// A record of a call.
    pub fn new(
        method: impl Into<String>,
        args: Args,
        result: Result<Value, RemoteError>,
        elapsed: Duration,
    ) -> Self {
        CallRecord {
            method: method.into(),
            args,
            result,
            elapsed,
        }
    }

    /// The original pyrpc's one-line log of a call:
    /// `method(args=(...), kwargs={...}) -> result`, with the call part cut to
    /// 60 characters (then ending in `...)`) and the whole line to about 120.
    /// A failed call shows the exception as Python's `repr` does,
    /// e.g. `ValueError('bad')`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use pyrpc_proto::{Args, Value};
    /// use pyrpc_server::CallRecord;
    ///
    /// let r = CallRecord::new("echo", Args::new().arg(1).kwarg("foo", "foo"),
    ///     Ok(Value::from(2)), Duration::ZERO);
    /// assert_eq!(r.summary(), "echo(args=(1,), kwargs={'foo': 'foo'}) -> 2");
    /// ```
    pub fn summary(&self) -> String {
        let (args, kwargs) = self.args.clone().into_values();
        let mut prefix = format!("{}(args={args}, kwargs={kwargs})", self.method);
        let mut prefix_len = prefix.chars().count();
        if prefix_len > PREFIX_MAX {
            prefix = prefix.chars().take(PREFIX_MAX).collect::<String>() + "...)";
            prefix_len = PREFIX_MAX + 4;
        }
        let suffix = match &self.result {
            Ok(v) => format!(" -> {v}"),
            Err(e) => format!(" -> {}", ExceptionRepr(e)),
        };
        let room = LINE_MAX.saturating_sub(prefix_len);
        prefix.extend(suffix.chars().take(room));
        prefix
    }
}

/// Python's `repr()` of an exception: `TypeName(arg, ...)`.
struct ExceptionRepr<'a>(&'a RemoteError);

impl fmt::Display for ExceptionRepr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}(", self.0.type_name)?;
        for (i, a) in self.0.args.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{a}")?;
        }
        f.write_str(")")
    }
}

/// Called after each successful call.
pub(crate) type OnCall = Arc<dyn Fn(&CallRecord) + Send + Sync>;
/// Called after each failed call.
pub(crate) type OnException = Arc<dyn Fn(&CallRecord, &RemoteError) + Send + Sync>;

/// The hooks a server was built with.
#[derive(Clone, Default)]
pub(crate) struct Hooks {
    pub(crate) on_call: Option<OnCall>,
    pub(crate) on_exception: Option<OnException>,
}

impl Hooks {
    /// True when any hook is set, i.e. when arguments must be kept for a record.
    pub(crate) fn any(&self) -> bool {
        self.on_call.is_some() || self.on_exception.is_some()
    }

    /// Runs the hook matching the outcome, if it is set.
    pub(crate) fn run(&self, record: &CallRecord) {
        match &record.result {
            Ok(_) => {
                if let Some(h) = &self.on_call {
                    h(record);
                }
            }
            Err(e) => {
                if let Some(h) = &self.on_exception {
                    h(record, e);
                }
            }
        }
    }
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks")
            .field("on_call", &self.on_call.is_some())
            .field("on_exception", &self.on_exception.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(method: &str, args: Args, result: Result<Value, RemoteError>) -> CallRecord {
        CallRecord::new(method, args, result, Duration::from_millis(1))
    }

    #[test]
    fn short_call_is_shown_whole() {
        let r = record(
            "echo",
            Args::new().arg(1).kwarg("foo", "foo"),
            Ok(Value::tuple([
                Value::tuple([Value::from(1)]),
                Value::dict([(Value::from("foo"), Value::from("foo"))]),
            ])),
        );
        assert_eq!(
            r.summary(),
            "echo(args=(1,), kwargs={'foo': 'foo'}) -> ((1,), {'foo': 'foo'})"
        );
    }

    #[test]
    fn long_arguments_are_cut_at_60_chars() {
        let r = record("f", Args::new().arg("x".repeat(100)), Ok(Value::None));
        let s = r.summary();
        let want_prefix = format!("f(args=('{}...)", "x".repeat(60 - "f(args=('".len()));
        assert!(s.starts_with(&want_prefix), "{s}");
        assert_eq!(s, format!("{want_prefix} -> None"));
    }

    #[test]
    fn long_result_fills_the_line_to_120_chars() {
        let r = record("f", Args::new(), Ok(Value::from("y".repeat(500))));
        let s = r.summary();
        assert_eq!(s.chars().count(), 120);
        assert!(s.starts_with("f(args=(), kwargs={}) -> 'yyy"), "{s}");

        // with a cut prefix (64 chars), 56 are left for the result
        let r = record(
            "f",
            Args::new().arg("x".repeat(100)),
            Ok(Value::from("y".repeat(500))),
        );
        let s = r.summary();
        assert_eq!(s.chars().count(), 120);
        assert!(s.ends_with(&format!(" -> '{}", "y".repeat(56 - 5))), "{s}");
    }

    #[test]
    fn counts_chars_not_bytes() {
        let r = record("f", Args::new().arg("é".repeat(100)), Ok(Value::None));
        let s = r.summary();
        assert_eq!(s.chars().count(), 64 + " -> None".len());
    }

    #[test]
    fn exception_is_shown_as_python_repr() {
        let e = RemoteError::exception("ValueError", "builtins", vec![Value::from("bad")]);
        let r = record("f", Args::new(), Err(e));
        assert_eq!(r.summary(), "f(args=(), kwargs={}) -> ValueError('bad')");
    }

    #[test]
    fn hooks_run_by_outcome() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let calls = Arc::new(AtomicUsize::new(0));
        let excs = Arc::new(AtomicUsize::new(0));
        let (c, x) = (Arc::clone(&calls), Arc::clone(&excs));
        let hooks = Hooks {
            on_call: Some(Arc::new(move |_| {
                c.fetch_add(1, Ordering::SeqCst);
            })),
            on_exception: Some(Arc::new(move |_, e| {
                assert_eq!(e.type_name, "E");
                x.fetch_add(1, Ordering::SeqCst);
            })),
        };
        assert!(hooks.any());
        assert!(!Hooks::default().any());
        hooks.run(&record("f", Args::new(), Ok(Value::None)));
        hooks.run(&record(
            "f",
            Args::new(),
            Err(RemoteError::exception("E", "m", vec![])),
        ));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(excs.load(Ordering::SeqCst), 1);
    }
}
