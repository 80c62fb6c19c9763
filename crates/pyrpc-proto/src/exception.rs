//! [`Exception`]: a Rust error type that travels as a remote exception, and
//! comes back as itself.

use crate::error::RemoteError;

/// A Rust error that a method returns and a caller gets back: it maps to a
/// [`RemoteError`] (what travels, and what a Python client raises) and back.
///
/// Derive it with `#[derive(Exception)]` (re-exported by `pyrpc-server` and
/// `pyrpc-client`): each variant of an enum is an exception type named after
/// the variant, its fields are the exception's args, in order. Attributes
/// rename the type (`#[exception(name = "ValueError")]` on a variant, so a
/// Python client raises a builtin `ValueError`: a renamed type is in module
/// `builtins` unless it says otherwise) and set the module
/// (`#[exception(module = "bank")]` on the enum, so a Python client that has
/// imported a module `bank` with that class raises it).
///
/// [`RemoteError`] itself implements it, for methods that build their errors
/// by hand.
///
/// # Examples
///
/// By hand (the derive writes the same):
///
/// ```
/// use pyrpc_proto::{Exception, RemoteError, Value};
///
/// #[derive(Debug, PartialEq)]
/// struct Overdrawn(i64);
///
/// impl Exception for Overdrawn {
///     fn into_remote(self) -> RemoteError {
///         RemoteError::exception("Overdrawn", "", vec![Value::from(self.0)])
///     }
///     fn from_remote(e: RemoteError) -> Result<Self, RemoteError> {
///         match (e.type_name.as_str(), e.args.as_slice()) {
///             ("Overdrawn", [v]) if v.as_i64().is_some() => Ok(Overdrawn(v.as_i64().unwrap_or(0))),
///             _ => Err(e),
///         }
///     }
/// }
///
/// let e = Overdrawn(5).into_remote();
/// assert_eq!(e.to_string(), "Overdrawn: 5");
/// assert_eq!(Overdrawn::from_remote(e), Ok(Overdrawn(5)));
/// assert!(Overdrawn::from_remote(RemoteError::no_such_method("m")).is_err());
/// ```
pub trait Exception: Sized {
    /// The remote exception this error travels as.
    fn into_remote(self) -> RemoteError;

    /// This error back from a remote exception, or the remote exception
    /// itself when it is not one of ours (another type, a runtime refusal).
    ///
    /// # Errors
    ///
    /// `e`, unchanged, when it does not map to `Self`.
    fn from_remote(e: RemoteError) -> Result<Self, RemoteError>;
}

impl Exception for RemoteError {
    fn into_remote(self) -> RemoteError {
        self
    }

    fn from_remote(e: RemoteError) -> Result<Self, RemoteError> {
        Ok(e)
    }
}

/// Helpers for the code `#[derive(Exception)]` writes; not a public API.
#[doc(hidden)]
pub mod derive_support {
    use crate::error::{ErrorKind, RemoteError};
    use crate::serde_value::{from_value, to_value};
    use crate::value::Value;

    /// The arg of a field, or its `repr`-like text when it cannot convert.
    pub fn arg<T: serde::Serialize + ?Sized>(v: &T) -> Value {
        to_value(v).unwrap_or_else(|e| Value::Str(format!("<unconvertible: {e}>")))
    }

    /// True when `e` is an exception of type `name` with `n` args.
    pub fn is(e: &RemoteError, name: &str, n: usize) -> bool {
        e.kind == ErrorKind::Exception && e.type_name == name && e.args.len() == n
    }

    /// The field at `i` of `e.args`, or `None` when it does not fit.
    pub fn field<T: serde::de::DeserializeOwned>(e: &RemoteError, i: usize) -> Option<T> {
        from_value(e.args.get(i)?.clone()).ok()
    }
}
