//! [`Methods`]: a Rust method table, the ready-made [`Callee`].

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use pyrpc_proto::{Args, MethodInfo, RemoteError, Value};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::callee::{CallContext, CallFuture, Callee};
use crate::typed::{typed_args, typed_reply};

/// The parameter names given with [`Methods::params`] (empty when none
/// were), handed to each call so typed handlers can bind keyword arguments.
type Params = Arc<[String]>;
type SyncFn = Arc<dyn Fn(&[String], Args) -> Result<Value, RemoteError> + Send + Sync>;
type AsyncFn = Arc<dyn Fn(&[String], Args) -> CallFuture + Send + Sync>;

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
/// Each function runs one of three ways: inline on the request's task
/// (`add`, `add_typed`: cheap work only), on tokio's blocking pool
/// (`add_blocking`, `add_typed_blocking`), or as a future (`add_async`,
/// `add_typed_async`). Every one of them can read the call's
/// [`CallContext::current`] (the caller's deadline, the peer).
///
/// The `*_typed*` variants read the arguments with serde: a tuple type is
/// the argument list (`|(a, b): (i64, i64)|`), `()` is none, and any other
/// type is the one argument (`|name: String|`). They take keyword arguments
/// once the method's parameter names are given with [`Methods::params`].
///
/// For a whole typed service, the `#[service]` macro (`pyrpc_server::service`)
/// writes the table from a trait.
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
///     // typed, one argument; `greet(name="Py")` works too, given the name
///     .add_typed("greet", |name: String| Ok(format!("Hello, {name}!")))
///     .params("greet", ["name"])
///     // blocks: runs on tokio's blocking pool
///     .add_typed_blocking("sleep", |secs: f64| {
///         std::thread::sleep(std::time::Duration::from_secs_f64(secs));
///         Ok(())
///     })
///     // async: awaited
///     .add_async("fail", |_args: Args| async {
///         Err::<Value, _>(RemoteError::exception("ValueError", "builtins", vec!["bad".into()]))
///     });
/// assert!(methods.contains("greet"));
/// ```
#[derive(Clone, Default)]
pub struct Methods {
    handlers: HashMap<String, Handler>,
    /// Signatures and docstrings given with [`Methods::describe`], by name.
    described: HashMap<String, (Option<String>, Option<String>)>,
    /// Parameter names given with [`Methods::params`], by name.
    params: HashMap<String, Params>,
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
        let f: SyncFn = Arc::new(move |_: &[String], args| f(args));
        self.handlers.insert(name.into(), Handler::Inline(f));
        self
    }

    /// Adds (or replaces) `name`, run on tokio's blocking thread pool
    /// (`spawn_blocking`): for functions that block or compute for long.
    pub fn add_blocking<F>(mut self, name: impl Into<String>, f: F) -> Self
    where
        F: Fn(Args) -> Result<Value, RemoteError> + Send + Sync + 'static,
    {
        let f: SyncFn = Arc::new(move |_: &[String], args| f(args));
        self.handlers.insert(name.into(), Handler::Blocking(f));
        self
    }

    /// Adds (or replaces) `name`, an async function whose future is awaited.
    pub fn add_async<F, Fut>(mut self, name: impl Into<String>, f: F) -> Self
    where
        F: Fn(Args) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, RemoteError>> + Send + 'static,
    {
        let f: AsyncFn = Arc::new(move |_: &[String], args| Box::pin(f(args)) as CallFuture);
        self.handlers.insert(name.into(), Handler::Async(f));
        self
    }

    /// Adds (or replaces) `name`, a streaming method: `f` returns a
    /// [`Stream`](futures::Stream) of items, each sent to the client as it
    /// is produced, no faster than the client's credit allows
    /// ([`CallContext::reply_stream`]). The stream is dropped (it stops)
    /// when the client leaves it early or disconnects; an `Err` item ends
    /// it with that error.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures::StreamExt;
    /// use pyrpc_server::{Args, Methods, Value};
    ///
    /// let methods = Methods::new().add_stream("count", |args: Args| {
    ///     let n = args.args.first().and_then(Value::as_i64).unwrap_or(0);
    ///     futures::stream::iter(0..n).map(|i| Ok(Value::from(i)))
    /// });
    /// assert!(methods.contains("count"));
    /// ```
    pub fn add_stream<F, S>(mut self, name: impl Into<String>, f: F) -> Self
    where
        F: Fn(Args) -> S + Send + Sync + 'static,
        S: futures::Stream<Item = Result<Value, RemoteError>> + Send + 'static,
    {
        let name: String = name.into();
        let method = name.clone();
        let f: AsyncFn = Arc::new(move |_: &[String], args| {
            let stream: crate::ValueStream = Box::pin(f(args));
            // Called inside the call's context (see `Callee::call` below).
            let offered = match CallContext::current() {
                Some(ctx) => ctx.reply_stream(stream),
                None => Err(crate::stream::cannot_stream(false)),
            }
            .map_err(|e| RemoteError::new(e.kind, format!("{method}() {}", e.message)));
            Box::pin(async move { offered.map(|()| Value::None) }) as CallFuture
        });
        self.handlers.insert(name, Handler::Async(f));
        self
    }

    /// Adds (or replaces) `name` as a typed function, run inline like
    /// [`Methods::add`]: the arguments are read as `A` with
    /// [`pyrpc_proto::from_value`] and the returned `R` is sent with
    /// [`pyrpc_proto::to_value`].
    ///
    /// `A` is a tuple for a list of arguments (`(Point, i64)`), `()` for
    /// none, and any other type for exactly one argument (`String`, a struct
    /// travelling as a dict, an `Option` that may be left out). Keyword
    /// arguments are accepted when [`Methods::params`] names the parameters,
    /// refused otherwise.
    ///
    /// Arguments that do not fit are answered `BAD_ARGUMENTS` naming the
    /// argument and the field, e.g. `shift(): argument 1 at .x: expected int,
    /// got str`.
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
    /// let methods = Methods::new()
    ///     .add_typed("shift", |(p, dx): (Point, i64)| Ok(Point { x: p.x + dx, y: p.y }))
    ///     .add_typed("norm1", |p: Point| Ok(p.x.abs() + p.y.abs()));
    /// assert!(methods.contains("shift"));
    /// ```
    pub fn add_typed<A, R, F>(mut self, name: impl Into<String>, f: F) -> Self
    where
        A: DeserializeOwned,
        R: Serialize,
        F: Fn(A) -> Result<R, RemoteError> + Send + Sync + 'static,
    {
        let name = name.into();
        let f = typed_sync(name.clone(), f);
        self.handlers.insert(name, Handler::Inline(f));
        self
    }

    /// [`Methods::add_typed`], run on tokio's blocking thread pool like
    /// [`Methods::add_blocking`].
    pub fn add_typed_blocking<A, R, F>(mut self, name: impl Into<String>, f: F) -> Self
    where
        A: DeserializeOwned,
        R: Serialize,
        F: Fn(A) -> Result<R, RemoteError> + Send + Sync + 'static,
    {
        let name = name.into();
        let f = typed_sync(name.clone(), f);
        self.handlers.insert(name, Handler::Blocking(f));
        self
    }

    /// [`Methods::add_typed`] for an async function, awaited like
    /// [`Methods::add_async`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use pyrpc_server::Methods;
    ///
    /// let methods = Methods::new().add_typed_async("wait", |secs: f64| async move {
    ///     tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    ///     Ok(secs)
    /// });
    /// assert!(methods.contains("wait"));
    /// ```
    pub fn add_typed_async<A, R, F, Fut>(mut self, name: impl Into<String>, f: F) -> Self
    where
        A: DeserializeOwned,
        R: Serialize,
        F: Fn(A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, RemoteError>> + Send + 'static,
    {
        let name = name.into();
        let method = name.clone();
        let f: AsyncFn = Arc::new(move |params: &[String], args| {
            let fut = typed_args::<A>(&method, params, args).map(&f);
            let method = method.clone();
            Box::pin(async move { typed_reply(&method, fut?.await?) }) as CallFuture
        });
        self.handlers.insert(name, Handler::Async(f));
        self
    }

    /// Names the parameters of `name`, so that its typed handler accepts
    /// keyword arguments (`greet(name="Py")`) as well as positional ones,
    /// the way Python binds a call; an `Option` parameter may then be left
    /// out. The names are also the signature `list_methods` reports, unless
    /// [`Methods::describe`] gives one. It may be called before or after the
    /// method is added; untyped handlers get their [`Args`] as sent.
    ///
    /// # Examples
    ///
    /// ```
    /// use pyrpc_server::{Callee, Methods};
    ///
    /// let m = Methods::new()
    ///     .add_typed("greet", |(name, greeting): (String, Option<String>)| {
    ///         Ok(format!("{}, {name}!", greeting.as_deref().unwrap_or("Hello")))
    ///     })
    ///     .params("greet", ["name", "greeting"]);
    /// assert_eq!(m.methods()[0].to_string(), "greet(name, greeting)");
    /// ```
    pub fn params<S: Into<String>>(
        mut self,
        name: impl Into<String>,
        params: impl IntoIterator<Item = S>,
    ) -> Self {
        let params: Params = params.into_iter().map(Into::into).collect();
        self.params.insert(name.into(), params);
        self
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

/// A typed function as a [`SyncFn`].
fn typed_sync<A, R, F>(method: String, f: F) -> SyncFn
where
    A: DeserializeOwned,
    R: Serialize,
    F: Fn(A) -> Result<R, RemoteError> + Send + Sync + 'static,
{
    Arc::new(move |params: &[String], args| {
        let a = typed_args::<A>(&method, params, args)?;
        typed_reply(&method, f(a)?)
    })
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
        let Some(handler) = self.handlers.get(method) else {
            let err = RemoteError::no_such_method(method);
            return Box::pin(async move { Err(err) });
        };
        // Most methods have no parameter names: nothing is allocated for them.
        let params = self.params.get(method);
        let names: &[String] = params.map_or(&[], |p| p);
        match handler {
            Handler::Inline(f) => {
                // Runs now, on the caller's task; the server catches panics.
                let result = ctx.sync_scope(|| f(names, args));
                Box::pin(async move { result })
            }
            Handler::Blocking(f) => {
                let f = Arc::clone(f);
                let method = method.to_owned();
                let params = params.cloned();
                let deadline = ctx.deadline;
                Box::pin(async move {
                    let name = method.clone();
                    let run = move || {
                        // It may have waited for a pool thread: a call whose
                        // caller gave up meanwhile is not started.
                        if deadline.is_some_and(|d| Instant::now() >= d) {
                            return Err(crate::dispatch::not_started(&name));
                        }
                        let names: &[String] = params.as_deref().unwrap_or(&[]);
                        ctx.sync_scope(|| f(names, args))
                    };
                    match tokio::task::spawn_blocking(run).await {
                        Ok(result) => result,
                        Err(e) => Err(crate::dispatch::panicked(&method, e.into_panic_message())),
                    }
                })
            }
            Handler::Async(f) => {
                // Building the future may run code too (a typed handler
                // reads its arguments there): it sees the context as well.
                let fut = ctx.clone().sync_scope(|| f(names, args));
                Box::pin(ctx.scope(fut))
            }
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
                if let Some(params) = self.params.get(name) {
                    m.signature = Some(format!("({})", params.join(", ")));
                }
                if let Some((sig, doc)) = self.described.get(name) {
                    if sig.is_some() {
                        m.signature.clone_from(sig);
                    }
                    m.doc.clone_from(doc);
                }
                m
            })
            .collect();
        out.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        out
    }
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
