//! What the code written by `#[service]` calls: not a public API (the
//! macro's output is its only user), so it may change with the macro.

use std::future::Future;

pub use pyrpc_proto::__private::derive_support;
pub use pyrpc_proto::{bind_args, take_arg};
use pyrpc_proto::{Exception, MethodInfo, RemoteError, Value};
use serde::Serialize;

use crate::callee::{CallContext, CallFuture};

/// Runs a method's future with its [`CallContext`] reachable.
pub fn run<F>(ctx: CallContext, fut: F) -> CallFuture
where
    F: Future<Output = Result<Value, RemoteError>> + Send + 'static,
{
    Box::pin(ctx.scope(fut))
}

/// The reply of a method returning a plain value.
pub fn reply_value<T: Serialize>(method: &str, out: T) -> Result<Value, RemoteError> {
    crate::typed::typed_reply(method, out)
}

/// The reply of a method returning `Result<T, E>`: the value, or `E` as the
/// remote exception it travels as.
pub fn reply_result<T: Serialize, E: Exception>(
    method: &str,
    out: Result<T, E>,
) -> Result<Value, RemoteError> {
    match out {
        Ok(v) => crate::typed::typed_reply(method, v),
        Err(e) => Err(e.into_remote()),
    }
}

/// The answer for a name the trait does not have.
pub fn no_such_method(method: &str) -> CallFuture {
    let err = RemoteError::no_such_method(method);
    Box::pin(async move { Err(err) })
}

/// A method's listing.
pub fn method_info(name: &str, signature: &str, doc: &str) -> MethodInfo {
    let m = MethodInfo::new(name).signature(signature);
    if doc.is_empty() {
        m
    } else {
        m.doc(doc)
    }
}
