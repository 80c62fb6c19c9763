//! [`RemoteError`] (a failure carried as data) and [`ValueError`] (a value that
//! cannot be converted).

use std::fmt;

use crate::value::Value;
use crate::wire;

/// Why a request failed; the wire enum `pyrpc.v1.ErrorKind`.
pub use crate::wire::ErrorKind;

/// A value that cannot be converted between its wire form and [`Value`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// The value nests deeper than the limit.
    #[error("value nested deeper than {max} levels")]
    TooDeep {
        /// The limit that was passed.
        max: usize,
    },
    /// A `big_int` with no bytes.
    #[error("big_int value with no bytes")]
    BadBigInt,
    /// A dict whose key and value lists differ in length.
    #[error("dict with {keys} keys but {values} values")]
    DictLengths {
        /// How many keys arrived.
        keys: usize,
        /// How many values arrived.
        values: usize,
    },
    /// A value of a typed kind whose fields are out of range or malformed
    /// (month 13, a 15-byte UUID, a fraction not in lowest terms, ...).
    #[error("malformed {kind} value: {reason}")]
    Malformed {
        /// The wire kind, e.g. `"datetime"`.
        kind: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Bytes that are not a protobuf `Value` message (a raw value, see
    /// [`crate::raw`]).
    #[error("undecodable value: {0}")]
    Undecodable(String),
}

/// A failure that travels as data: an exception raised by the remote method, or
/// a refusal by the remote runtime (no such method, overloaded, ...).
///
/// # Examples
///
/// ```
/// use pyrpc_proto::{ErrorKind, RemoteError, Value};
///
/// let e = RemoteError::exception("ValueError", "builtins", vec![Value::from("bad")]);
/// assert_eq!(e.kind, ErrorKind::Exception);
/// assert_eq!(e.to_string(), "ValueError: bad");
///
/// let e = RemoteError::no_such_method("nope");
/// assert_eq!(e.type_name, "AttributeError");
/// ```
///
/// Its fields ([`RemoteErrorInfo`]) are read and written through the error
/// as if they were its own (`e.kind`, `e.message = ...`); the error itself is
/// one pointer wide, so a `Result<T, RemoteError>` costs no more to return
/// than a `Result<T, Box<_>>`. Build one with the constructors below, or from
/// all of its fields with `RemoteError::from(RemoteErrorInfo { .. })`:
///
/// ```
/// use pyrpc_proto::{ErrorKind, RemoteError, RemoteErrorInfo};
///
/// let mut e = RemoteError::from(RemoteErrorInfo {
///     kind: ErrorKind::Exception,
///     type_name: "DiskFull".into(),
///     message: "disk full".into(),
///     ..Default::default()
/// });
/// e.module = "app.errors".into();
/// assert_eq!(e.to_string(), "DiskFull: disk full");
/// assert_eq!(e.into_info().module, "app.errors");
/// ```
#[derive(Clone, PartialEq, Default)]
pub struct RemoteError(Box<RemoteErrorInfo>);

/// The fields of a [`RemoteError`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RemoteErrorInfo {
    /// What failed.
    pub kind: ErrorKind,
    /// The exception's class name, e.g. `"ValueError"`.
    pub type_name: String,
    /// The module defining the class, e.g. `"builtins"`; empty when unknown.
    pub module: String,
    /// The exception's args (Python's `exc.args`).
    pub args: Vec<Value>,
    /// A one-line message (Python's `str(exc)`).
    pub message: String,
    /// The remote traceback text; empty when there is none.
    pub traceback: String,
    /// The exception's instance attributes that are values (Python's
    /// `vars(exc)`), by name.
    pub attributes: Vec<(String, Value)>,
}

impl RemoteError {
    /// A runtime refusal of the given kind, with the closest Python builtin type.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        let message = message.into();
        let type_name = match kind {
            ErrorKind::NoSuchMethod => "AttributeError",
            ErrorKind::BadArguments => "TypeError",
            ErrorKind::DeadlineExceeded => "TimeoutError",
            ErrorKind::Unauthenticated => "PermissionError",
            ErrorKind::Cancelled => "CancelledError",
            _ => "RuntimeError",
        };
        // asyncio's CancelledError is the one builtin-like type not in builtins.
        let module = match kind {
            ErrorKind::Cancelled => "asyncio",
            _ => "builtins",
        };
        RemoteError::from(RemoteErrorInfo {
            kind,
            type_name: type_name.to_owned(),
            module: module.to_owned(),
            args: vec![Value::Str(message.clone())],
            message,
            traceback: String::new(),
            attributes: Vec::new(),
        })
    }

    /// An exception raised by the method: its type name, module and args. The
    /// message is the args joined the way Python's `str(exc)` does (for a
    /// builtin `KeyError` of one argument, that argument's repr).
    ///
    /// # Examples
    ///
    /// ```
    /// use pyrpc_proto::{RemoteError, Value};
    ///
    /// let e = RemoteError::exception("ValueError", "builtins", vec![Value::from("bad")]);
    /// assert_eq!(e.message, "bad");
    /// let e = RemoteError::exception("KeyError", "builtins", vec![Value::from("k")]);
    /// assert_eq!(e.message, "'k'");
    /// ```
    pub fn exception(
        type_name: impl Into<String>,
        module: impl Into<String>,
        args: Vec<Value>,
    ) -> Self {
        let (type_name, module) = (type_name.into(), module.into());
        let key_error = type_name == "KeyError" && module == "builtins";
        let message = match args.as_slice() {
            [] => String::new(),
            // KeyError.__str__ is the repr of its one argument.
            [one] if key_error => one.to_string(),
            [Value::Str(s)] => s.clone(),
            [one] => one.to_string(),
            many => Value::Tuple(many.to_vec()).to_string(),
        };
        RemoteError::from(RemoteErrorInfo {
            kind: ErrorKind::Exception,
            type_name,
            module,
            args,
            message,
            traceback: String::new(),
            attributes: Vec::new(),
        })
    }

    /// `NO_SUCH_METHOD` for `method`.
    pub fn no_such_method(method: &str) -> Self {
        Self::new(
            ErrorKind::NoSuchMethod,
            format!("no callable public method named {method:?}"),
        )
    }

    /// `BAD_ARGUMENTS` with a message saying what did not fit.
    pub fn bad_arguments(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadArguments, message)
    }

    /// Adds an instance attribute (builder style).
    #[must_use]
    pub fn with_attribute(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.attributes.push((name.into(), value.into()));
        self
    }

    /// Sets the traceback text.
    pub fn with_traceback(mut self, traceback: impl Into<String>) -> Self {
        self.traceback = traceback.into();
        self
    }

    /// Converts from the wire form. Args that cannot be converted are dropped
    /// (the message still says what happened).
    pub fn from_wire(e: wire::RemoteError) -> Self {
        let kind = ErrorKind::try_from(e.kind).unwrap_or(ErrorKind::Exception);
        RemoteError::from(RemoteErrorInfo {
            kind,
            type_name: e.type_name,
            module: e.module,
            args: e
                .args
                .into_iter()
                .filter_map(|v| Value::try_from(v).ok())
                .collect(),
            message: e.message,
            traceback: e.traceback,
            attributes: e
                .attributes
                .into_iter()
                .filter_map(|a| Some((a.name, Value::try_from(a.value?).ok()?)))
                .collect(),
        })
    }
}

impl RemoteError {
    /// Its fields, moved out.
    pub fn into_info(self) -> RemoteErrorInfo {
        *self.0
    }
}

impl From<RemoteErrorInfo> for RemoteError {
    fn from(info: RemoteErrorInfo) -> Self {
        RemoteError(Box::new(info))
    }
}

impl std::ops::Deref for RemoteError {
    type Target = RemoteErrorInfo;

    fn deref(&self) -> &RemoteErrorInfo {
        &self.0
    }
}

impl std::ops::DerefMut for RemoteError {
    fn deref_mut(&mut self) -> &mut RemoteErrorInfo {
        &mut self.0
    }
}

impl fmt::Debug for RemoteError {
    /// As its fields, under the error's name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let RemoteErrorInfo {
            kind,
            type_name,
            module,
            args,
            message,
            traceback,
            attributes,
        } = &**self;
        f.debug_struct("RemoteError")
            .field("kind", kind)
            .field("type_name", type_name)
            .field("module", module)
            .field("args", args)
            .field("message", message)
            .field("traceback", traceback)
            .field("attributes", attributes)
            .finish()
    }
}

impl From<wire::RemoteError> for RemoteError {
    fn from(e: wire::RemoteError) -> Self {
        RemoteError::from_wire(e)
    }
}

impl From<RemoteError> for wire::RemoteError {
    fn from(e: RemoteError) -> Self {
        let e = e.into_info();
        wire::RemoteError {
            kind: e.kind as i32,
            type_name: e.type_name,
            module: e.module,
            args: e.args.into_iter().map(wire::Value::from).collect(),
            message: e.message,
            traceback: e.traceback,
            attributes: e
                .attributes
                .into_iter()
                .map(|(name, v)| wire::Kwarg {
                    name,
                    value: Some(v.into()),
                })
                .collect(),
        }
    }
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            f.write_str(&self.type_name)
        } else {
            write!(f, "{}: {}", self.type_name, self.message)
        }
    }
}

impl std::error::Error for RemoteError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_the_wire() {
        let e = RemoteError::exception("KeyError", "builtins", vec![Value::from("k")])
            .with_traceback("Traceback ...")
            .with_attribute("code", 28);
        assert_eq!(RemoteError::from(wire::RemoteError::from(e.clone())), e);
    }

    #[test]
    fn unknown_kind_from_a_newer_peer_reads_as_exception() {
        let w = wire::RemoteError {
            kind: 999,
            type_name: "X".into(),
            ..Default::default()
        };
        assert_eq!(RemoteError::from(w).kind, ErrorKind::Exception);
    }

    #[test]
    fn message_follows_python_str() {
        assert_eq!(RemoteError::exception("E", "m", vec![]).message, "");
        assert_eq!(
            RemoteError::exception("E", "m", vec![Value::from(1), Value::from("a")]).message,
            "(1, 'a')"
        );
        assert_eq!(
            RemoteError::exception("E", "m", vec![Value::from(3)]).message,
            "3"
        );
    }
}
