//! [`Callee`]: what the server dispatches calls to, and [`Methods`], a Rust
//! method table implementing it.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use pyrpc_proto::{Args, MethodInfo, RemoteError, Value};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The future a [`Callee`] returns for one call.
pub type CallFuture = Pin<Box<dyn Future<Output = Result<Value, RemoteError>> + Send + 'static>>;

/// What the server dispatches to (the original pyrpc's `callee`).
///
/// The server has already refused names starting with `_` and answered the
/// built-in `connected` and `shutdown` before a callee sees a call.
///
/// A callee returns a boxed future rather than being an `async fn` so that it
/// can be a trait object (the Python binding implements it for a Python
/// object). A callee whose work blocks must move it off the async runtime
/// itself (e.g. `tokio::task::spawn_blocking`), as [`Methods::add_blocking`]
/// does.
pub trait Callee: Send + Sync + 'static {
    /// Runs `method`. Unknown names answer
    /// `Err(RemoteError::no_such_method(method))`.
    fn call(&self, ctx: CallContext, method: &str, args: Args) -> CallFuture;

    /// The methods a client may call, for the `ListMethods` request, with
    /// their signatures and docstrings where known. The server drops names
    /// starting with `_`, sorts the rest and adds the built-ins.
    ///
    /// The default lists nothing (a callee that cannot enumerate its
    /// methods); [`Methods`] lists its table.
    fn methods(&self) -> Vec<MethodInfo> {
        Vec::new()
    }

    /// True when `call(.., method, ..)` does all its work inside `call`
    /// itself, never blocks, and returns a future that is ready at once.
    /// The server then runs such a call on the connection's reader task
    /// instead of spawning a task for it (no hand-off between tasks, which
    /// costs more than the call itself on a fast method).
    ///
    /// The default is false for every method; [`Methods`] says true for
    /// the functions added with [`Methods::add`] (and `add_typed`).
    fn runs_inline(&self, method: &str) -> bool {
        let _ = method;
        false
    }
}

impl<T: Callee + ?Sized> Callee for Arc<T> {
    fn call(&self, ctx: CallContext, method: &str, args: Args) -> CallFuture {
        (**self).call(ctx, method, args)
    }

    fn methods(&self) -> Vec<MethodInfo> {
        (**self).methods()
    }

    fn runs_inline(&self, method: &str) -> bool {
        (**self).runs_inline(method)
    }
}

/// What a callee may want to know about the call it runs.
#[derive(Clone, Debug)]
pub struct CallContext {
    /// Who called, for logs: the TCP peer address, `"unix peer"`, or the name
    /// given to [`Server::serve_stream`](crate::Server::serve_stream).
    pub peer: String,
    /// When the caller stops waiting, if it said (`Call.timeout_ms`); a callee
    /// may give up on work past it.
    pub deadline: Option<Instant>,
    /// True for a non-blocking call (`Submit`): nobody waits on the
    /// connection, the result is kept for a later `Fetch`.
    pub nonblocking: bool,
}

// ===== impl Methods =====

type SyncFn = Arc<dyn Fn(Args) -> Result<Value, RemoteError> + Send + Sync>;
type AsyncFn = Arc<dyn Fn(Args) -> CallFuture + Send + Sync>;

#[derive(Clone)]
enum Handler {
    /// Runs on the task that handles the request.
    Inline(SyncFn),
    /// Runs on tokio's blocking pool.
    Blocking(SyncFn),
    /// A future, awaited on the request's task.
    Async(AsyncFn),
}

/// A Rust method table: a [`Callee`] mapping names to functions.
///
/// # Examples
///
/// ```
/// use pyrpc_proto::{Args, RemoteError, Value};
/// use pyrpc_server::Methods;
///
/// let methods = Methods::new()
///     // cheap: runs inline on the reactor, must not block
///     .add("echo", |args: Args| {
///         let (a, k) = args.into_values();
///         Ok(Value::tuple([a, k]))
///     })
///     // blocks: runs on tokio's blocking pool
///     .add_blocking("sleep", |args: Args| {
///         args.expect_exactly("sleep", 1)?;
///         let secs = args.args[0].as_f64().unwrap_or(0.0);
///         std::thread::sleep(std::time::Duration::from_secs_f64(secs));
///         Ok(Value::None)
///     })
///     // async: awaited
///     .add_async("fail", |_args: Args| async {
///         Err::<Value, _>(RemoteError::exception("ValueError", "builtins", vec!["bad".into()]))
///     });
/// assert!(methods.contains("echo"));
/// ```
#[derive(Clone, Default)]
pub struct Methods {
    handlers: HashMap<String, Handler>,
    /// Signatures and docstrings given with [`Methods::describe`], by name.
    described: HashMap<String, (Option<String>, Option<String>)>,
}

impl Methods {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) `name`, run inline on the request's task.
    ///
    /// Use it for cheap functions only: it runs on the async runtime, so a
    /// function that blocks stalls other calls. It avoids a thread hand-off,
    /// which costs more than a whole round trip on loopback.
    pub fn add<F>(mut self, name: impl Into<String>, f: F) -> Self
    where
        F: Fn(Args) -> Result<Value, RemoteError> + Send + Sync + 'static,
    {
        self.handlers
            .insert(name.into(), Handler::Inline(Arc::new(f)));
        self
    }

    /// Adds (or replaces) `name`, run on tokio's blocking thread pool
    /// (`spawn_blocking`): for functions that block or compute for long.
    pub fn add_blocking<F>(mut self, name: impl Into<String>, f: F) -> Self
    where
        F: Fn(Args) -> Result<Value, RemoteError> + Send + Sync + 'static,
    {
        self.handlers
            .insert(name.into(), Handler::Blocking(Arc::new(f)));
        self
    }

    /// Adds (or replaces) `name`, an async function whose future is awaited.
    pub fn add_async<F, Fut>(mut self, name: impl Into<String>, f: F) -> Self
    where
        F: Fn(Args) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, RemoteError>> + Send + 'static,
    {
        let f: AsyncFn = Arc::new(move |args| Box::pin(f(args)) as CallFuture);
        self.handlers.insert(name.into(), Handler::Async(f));
        self
    }

    /// Adds (or replaces) `name` as a typed function, run inline like
    /// [`Methods::add`]: the positional arguments are read as the tuple `A`
    /// with [`pyrpc_proto::from_value`] (so `A` is a tuple: `(Point,)` for a
    /// method of one argument, `()` for none), and the returned `R` is sent
    /// with [`pyrpc_proto::to_value`].
    ///
    /// Arguments that do not fit are answered `BAD_ARGUMENTS` naming the
    /// argument and the field, e.g. `shift(): argument 1 at .x: expected int,
    /// got str`; keyword arguments are refused.
    ///
    /// # Examples
    ///
    /// ```
    /// use serde::{Deserialize, Serialize};
    /// use pyrpc_server::Methods;
    ///
    /// #[derive(Deserialize, Serialize)]
    /// struct Point { x: i64, y: i64 }
    ///
    /// let methods = Methods::new().add_typed("shift", |(p, dx): (Point, i64)| {
    ///     Ok(Point { x: p.x + dx, y: p.y })
    /// });
    /// assert!(methods.contains("shift"));
    /// ```
    pub fn add_typed<A, R, F>(self, name: impl Into<String>, f: F) -> Self
    where
        A: DeserializeOwned,
        R: Serialize,
        F: Fn(A) -> Result<R, RemoteError> + Send + Sync + 'static,
    {
        let name = name.into();
        let method = name.clone();
        self.add(name, move |args: Args| {
            let a = typed_args::<A>(&method, args)?;
            let r = f(a)?;
            pyrpc_proto::to_value(&r).map_err(|e| {
                RemoteError::new(
                    pyrpc_proto::ErrorKind::UnsupportedValue,
                    format!("the result of {method}() cannot be sent: {e}"),
                )
            })
        })
    }

    /// Gives `name` a signature (as Python writes it, e.g. `"(a, b=1)"`)
    /// and a docstring, reported by the `ListMethods` request. It may be
    /// called before or after the method is added; a description of a name
    /// that is never added is not listed.
    ///
    /// # Examples
    ///
    /// ```
    /// use pyrpc_proto::{Args, Value};
    /// use pyrpc_server::{Callee, Methods};
    ///
    /// let m = Methods::new()
    ///     .add("add", |args: Args| Ok(Value::None))
    ///     .describe("add", "(a, b)", "Returns a + b.");
    /// let listed = m.methods();
    /// assert_eq!(listed[0].to_string(), "add(a, b)");
    /// assert_eq!(listed[0].doc.as_deref(), Some("Returns a + b."));
    /// ```
    pub fn describe(
        mut self,
        name: impl Into<String>,
        signature: impl Into<String>,
        doc: impl Into<String>,
    ) -> Self {
        let non_empty = |s: String| (!s.is_empty()).then_some(s);
        self.described.insert(
            name.into(),
            (non_empty(signature.into()), non_empty(doc.into())),
        );
        self
    }

    /// True when `name` is in the table.
    pub fn contains(&self, name: &str) -> bool {
        self.handlers.contains_key(name)
    }

    /// The names in the table, in no particular order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.handlers.keys().map(String::as_str)
    }
}

impl fmt::Debug for Methods {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&str> = self.names().collect();
        names.sort_unstable();
        f.debug_struct("Methods").field("names", &names).finish()
    }
}

impl Callee for Methods {
    fn call(&self, ctx: CallContext, method: &str, args: Args) -> CallFuture {
        match self.handlers.get(method) {
            None => {
                let err = RemoteError::no_such_method(method);
                Box::pin(async move { Err(err) })
            }
            Some(Handler::Inline(f)) => {
                // Runs now, on the caller's task; the server catches panics.
                let result = f(args);
                Box::pin(async move { result })
            }
            Some(Handler::Blocking(f)) => {
                let f = Arc::clone(f);
                let method = method.to_owned();
                let deadline = ctx.deadline;
                Box::pin(async move {
                    let name = method.clone();
                    let run = move || {
                        // It may have waited for a pool thread: a call whose
                        // caller gave up meanwhile is not started.
                        if deadline.is_some_and(|d| Instant::now() >= d) {
                            return Err(crate::dispatch::not_started(&name));
                        }
                        f(args)
                    };
                    match tokio::task::spawn_blocking(run).await {
                        Ok(result) => result,
                        Err(e) => Err(crate::dispatch::panicked(&method, e.into_panic_message())),
                    }
                })
            }
            Some(Handler::Async(f)) => f(args),
        }
    }

    fn runs_inline(&self, method: &str) -> bool {
        matches!(self.handlers.get(method), Some(Handler::Inline(_)))
    }

    fn methods(&self) -> Vec<MethodInfo> {
        let mut out: Vec<MethodInfo> = self
            .names()
            .map(|name| {
                let mut m = MethodInfo::new(name);
                if let Some((sig, doc)) = self.described.get(name) {
                    m.signature.clone_from(sig);
                    m.doc.clone_from(doc);
                }
                m
            })
            .collect();
        out.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        out
    }
}

/// Reads the positional arguments of `method` as the tuple `A`.
fn typed_args<A: DeserializeOwned>(method: &str, args: Args) -> Result<A, RemoteError> {
    if let Some((k, _)) = args.kwargs.first() {
        return Err(RemoteError::bad_arguments(format!(
            "{method}() got an unexpected keyword argument '{k}'"
        )));
    }
    pyrpc_proto::from_value(Value::Tuple(args.args)).map_err(|e| {
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

/// The message of a panic out of a `spawn_blocking` task.
trait JoinErrorExt {
    fn into_panic_message(self) -> String;
}

impl JoinErrorExt for tokio::task::JoinError {
    fn into_panic_message(self) -> String {
        if self.is_panic() {
            crate::dispatch::panic_message(self.into_panic())
        } else {
            "the blocking task was cancelled".to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_args_name_the_argument_and_field() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct P {
            x: i64,
        }
        let bad = Args::new()
            .arg(1)
            .arg(Value::dict([(Value::from("x"), Value::from("s"))]));
        let e = typed_args::<(i64, P)>("f", bad).expect_err("bad x");
        assert_eq!(e.kind, pyrpc_proto::ErrorKind::BadArguments);
        assert_eq!(e.message, "f(): argument 2 at .x: expected int, got str");

        let e = typed_args::<(i64,)>("f", Args::new().arg("a")).expect_err("bad");
        assert_eq!(e.message, "f(): argument 1: expected int, got str");

        let e = typed_args::<(i64,)>("f", Args::new()).expect_err("few");
        assert_eq!(e.message, "f(): expected 1 item, got 0");

        let e = typed_args::<(i64,)>("f", Args::new().arg(1).kwarg("k", 2)).expect_err("kw");
        assert_eq!(e.message, "f() got an unexpected keyword argument 'k'");

        let ok: (i64, String) = typed_args("f", Args::new().arg(1).arg("a")).expect("ok");
        assert_eq!(ok, (1, "a".to_owned()));
    }
}
