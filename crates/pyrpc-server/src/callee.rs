//! [`Callee`]: what the server dispatches calls to, and [`CallContext`]:
//! what a callee may know about the call it runs.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use pyrpc_proto::{Args, MethodInfo, RemoteError, Value};
use tokio_util::sync::CancellationToken;

use crate::stream::{StreamSlot, ValueStream};

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
/// itself (e.g. `tokio::task::spawn_blocking`), as [`Methods::add_blocking`](crate::Methods::add_blocking)
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
    /// methods); [`Methods`](crate::Methods) lists its table.
    fn methods(&self) -> Vec<MethodInfo> {
        Vec::new()
    }

    /// True when `call(.., method, ..)` does all its work inside `call`
    /// itself, never blocks, and returns a future that is ready at once.
    /// The server then runs such a call on the connection's reader task
    /// instead of spawning a task for it (no hand-off between tasks, which
    /// costs more than the call itself on a fast method).
    ///
    /// The default is false for every method; [`Methods`](crate::Methods)
    /// says true for the functions added with
    /// [`Methods::add`](crate::Methods::add) (and `add_typed`).
    fn runs_inline(&self, method: &str) -> bool {
        let _ = method;
        false
    }

    /// True when the callee converts values itself: its arguments then
    /// arrive as [`Value::Encoded`] (the bytes of each `pyrpc.v1.Value`,
    /// unchecked: the callee must refuse malformed, too deep or pickled
    /// values as the server would), and it may return a [`Value::Encoded`]
    /// result, sent as it is. The Python binding does, so that its values
    /// never become a [`Value`] tree. The default is false: the server
    /// decodes and checks every argument.
    fn takes_encoded(&self) -> bool {
        false
    }

    /// True when the callee, which [takes encoded](Self::takes_encoded)
    /// values, charges each value it decodes against the decoded-size
    /// budget (`pyrpc_proto::cost::decoded_budget` of the arguments'
    /// bytes, `DECODED_VALUE_BYTES` a value, as the server's scan counts
    /// them) and refuses the call with `UNSUPPORTED_VALUE` as soon as the
    /// total passes it. The server then counts only a request's top-level
    /// arguments before decoding its frame, not everything they hold
    /// (decision 0019). The Python binding does; the default is false: the
    /// server scans every request frame over 3 MiB in full first.
    fn bounds_decoded_size(&self) -> bool {
        false
    }

    /// True when the callee answers its calls through
    /// [`call_then`](Self::call_then) on the thread that ran them: the
    /// server then hands a call to it straight from the connection's
    /// reader, and the answer goes from `done` to the connection's writer,
    /// with no task of the server's in between (one hand-off each way). The
    /// server still answers a cancelled call, or one past its deadline,
    /// when that happens.
    ///
    /// The default is false: calls go through [`call`](Self::call) on a
    /// task of their own. The Python binding says true: its methods run on
    /// its own worker threads.
    fn answers_directly(&self) -> bool {
        false
    }

    /// Runs `method` and gives its outcome to `done`, from any thread; used
    /// instead of [`call`](Self::call) when
    /// [`answers_directly`](Self::answers_directly) is true. A `done`
    /// dropped unfinished answers the call with an error.
    ///
    /// The default runs [`call`](Self::call) on a task of its own and
    /// finishes `done` with its outcome.
    fn call_then(&self, ctx: CallContext, method: &str, args: Args, done: CallDone) {
        let fut = self.call(ctx, method, args);
        tokio::spawn(async move { done.finish(fut.await) });
    }
}

/// Where a callee that answers directly
/// ([`Callee::answers_directly`]) leaves the outcome of one call: the
/// server checks it, encodes the reply and queues it for the connection's
/// writer on the thread that calls [`finish`](Self::finish).
///
/// Dropped without [`finish`](Self::finish) (a worker that went away), it
/// answers the call with an error, so that no caller waits for nothing.
pub struct CallDone(Option<Answer>);

/// What a [`CallDone`] calls with the call's outcome.
type Answer = Box<dyn FnOnce(Result<Value, RemoteError>) + Send>;

impl CallDone {
    /// A `done` that hands the outcome to `f` (used by the server).
    pub(crate) fn new(f: impl FnOnce(Result<Value, RemoteError>) + Send + 'static) -> Self {
        CallDone(Some(Box::new(f)))
    }

    /// Answers the call with `outcome` (the value the method returned, or
    /// its error).
    ///
    /// # Examples
    ///
    /// ```
    /// use pyrpc_server::{Args, CallContext, CallDone, CallFuture, Callee, Value};
    ///
    /// /// Answers every call on a thread of its own.
    /// struct Threads;
    ///
    /// impl Callee for Threads {
    ///     fn call(&self, _ctx: CallContext, _method: &str, _args: Args) -> CallFuture {
    ///         Box::pin(async { Ok(Value::from("unused")) })
    ///     }
    ///     fn answers_directly(&self) -> bool {
    ///         true
    ///     }
    ///     fn call_then(&self, _ctx: CallContext, method: &str, _args: Args, done: CallDone) {
    ///         let name = method.to_owned();
    ///         std::thread::spawn(move || done.finish(Ok(Value::from(name))));
    ///     }
    /// }
    /// # let _ = Threads;
    /// ```
    pub fn finish(mut self, outcome: Result<Value, RemoteError>) {
        if let Some(f) = self.0.take() {
            f(outcome);
        }
    }
}

impl Drop for CallDone {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            let why = if std::thread::panicking() {
                "the call panicked before it answered"
            } else {
                "the call ended without an answer (the thread running it went away)"
            };
            f(Err(RemoteError::new(
                pyrpc_proto::ErrorKind::Exception,
                why,
            )));
        }
    }
}

impl std::fmt::Debug for CallDone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallDone")
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

    fn takes_encoded(&self) -> bool {
        (**self).takes_encoded()
    }

    fn bounds_decoded_size(&self) -> bool {
        (**self).bounds_decoded_size()
    }

    fn answers_directly(&self) -> bool {
        (**self).answers_directly()
    }

    fn call_then(&self, ctx: CallContext, method: &str, args: Args, done: CallDone) {
        (**self).call_then(ctx, method, args, done)
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
    /// Cancelled when the caller cancels the call (`Cancel`), its deadline
    /// passes, or its connection closes.
    cancel: CancellationToken,
    /// Where [`CallContext::reply_stream`] leaves a stream; `None` when the
    /// call cannot stream.
    stream: Option<StreamSlot>,
}

tokio::task_local! {
    /// The context of the call running on this task (or blocking thread).
    static CURRENT: CallContext;
}

impl CallContext {
    /// A context for a call of `peer` (used by dispatch).
    pub(crate) fn new(
        peer: String,
        deadline: Option<Instant>,
        nonblocking: bool,
        cancel: CancellationToken,
        stream: Option<StreamSlot>,
    ) -> Self {
        CallContext {
            peer,
            deadline,
            nonblocking,
            cancel,
            stream,
        }
    }

    /// True once the call was cancelled: its caller sent `Cancel` (it gave
    /// up: a timeout, Ctrl-C, a cancelled task, a stream left early), its
    /// deadline passed, or its connection closed. A blocking handler can
    /// poll this to stop early; its result is not sent anyway.
    ///
    /// # Examples
    ///
    /// ```
    /// use pyrpc_server::{CallContext, Methods, Value};
    ///
    /// let methods = Methods::new().add_blocking("count", |_args| {
    ///     let ctx = CallContext::current().expect("inside a call");
    ///     let mut n = 0u64;
    ///     while !ctx.is_cancelled() && n < 1_000_000 {
    ///         n += 1;
    ///     }
    ///     Ok(Value::from(n as i64))
    /// });
    /// # let _ = methods;
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Completes when the call is cancelled (see [`is_cancelled`](Self::is_cancelled));
    /// never, for a call that runs to its end. An async handler's own
    /// future is dropped when its call is cancelled (which stops it at its
    /// current `.await`); work it hands to other tasks awaits this to stop
    /// with it.
    ///
    /// # Examples
    ///
    /// ```
    /// use pyrpc_server::{CallContext, Methods, Value};
    ///
    /// let methods = Methods::new().add_async("start", |_args| async {
    ///     let ctx = CallContext::current().expect("inside a call");
    ///     let worker = tokio::spawn(async move {
    ///         tokio::select! {
    ///             _ = ctx.cancelled() => "stopped",
    ///             _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => "done",
    ///         }
    ///     });
    ///     let outcome = worker.await.unwrap_or("failed");
    ///     Ok(Value::from(outcome))
    /// });
    /// # let _ = methods;
    /// ```
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await
    }

    /// Answers this call with a stream of items instead of the value the
    /// handler returns (which is then ignored): each `Ok` item is sent to
    /// the client as it is produced, at the pace the client's credit
    /// allows; an `Err` ends the stream with that error. The stream is
    /// dropped when the client leaves it (cancels) or disconnects.
    ///
    /// [`Methods::add_stream`](crate::Methods::add_stream) does this for
    /// you.
    ///
    /// # Errors
    ///
    /// `UNSUPPORTED_VALUE` when the call cannot stream: a non-blocking
    /// (`Submit`) call, or a client that does not take streamed replies.
    /// Its message reads after the method's name: "streams its reply, but
    /// ...".
    pub fn reply_stream(&self, stream: ValueStream) -> Result<(), RemoteError> {
        match &self.stream {
            Some(slot) => {
                slot.put(stream);
                Ok(())
            }
            None => Err(crate::stream::cannot_stream(self.nonblocking)),
        }
    }

    /// The context of the call being run, from inside any handler of a
    /// [`Methods`](crate::Methods) table (inline, blocking or async, typed or
    /// not) or of a `#[service]` implementation; `None` outside of one.
    ///
    /// # Examples
    ///
    /// ```
    /// use pyrpc_proto::{Args, Value};
    /// use pyrpc_server::{CallContext, Methods};
    ///
    /// let methods = Methods::new().add_typed("remaining_ms", |(): ()| {
    ///     let ctx = CallContext::current().expect("inside a call");
    ///     Ok(ctx.deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()).as_millis() as u64))
    /// });
    /// assert!(CallContext::current().is_none());
    /// # let _ = methods;
    /// ```
    pub fn current() -> Option<CallContext> {
        CURRENT.try_with(CallContext::clone).ok()
    }

    /// Runs `f` with `self` as [`CallContext::current`].
    pub(crate) fn sync_scope<R>(self, f: impl FnOnce() -> R) -> R {
        CURRENT.sync_scope(self, f)
    }

    /// `fut` with `self` as [`CallContext::current`] while it runs.
    pub(crate) fn scope<F: Future>(self, fut: F) -> impl Future<Output = F::Output> {
        CURRENT.scope(self, fut)
    }
}
