//! Calls: a `Call` (or a `Submit`'s call) prepared (method name checked,
//! arguments converted), run on the callee with its deadline, cancellation
//! and `synchronous` turn, and answered (a value, an error, or a stream).

use crate::callee::CallContext;
use crate::hooks::CallRecord;
use crate::running::Registration;
use crate::server::Shared;
use crate::stream::{self, StreamSlot, ValueStream};
use futures::FutureExt;
use pyrpc_proto::raw::{self, response};
use pyrpc_proto::wire;
use pyrpc_proto::{Args, ErrorKind, RemoteError, Value};
use std::any::Any;
use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::*;

// ===== calls =====

/// A call as read, its method name taken apart (so that it is borrowed,
/// not copied, by everything that names the method) and its deadline
/// computed once.
pub(super) struct CallBody {
    pub(super) args: Vec<bytes::Bytes>,
    pub(super) kwargs: Vec<raw::Kwarg>,
    /// `Call.stream_window`: 0 takes no streamed reply.
    pub(super) window: u32,
    pub(super) deadline: Option<Instant>,
    /// When the request was read: the start of the call's latency.
    pub(super) received: Instant,
}

impl CallBody {
    pub(super) fn split(call: raw::Call, received: Instant) -> (String, CallBody) {
        let body = CallBody {
            args: call.args,
            kwargs: call.kwargs,
            window: call.stream_window,
            deadline: deadline_of(received, call.timeout_ms),
            received,
        };
        (call.method, body)
    }
}

/// A call whose arguments were converted and checked.
pub(super) struct Prepared {
    pub(super) args: Args,
    pub(super) deadline: Option<Instant>,
    /// When the request was read: the start of the call's latency.
    pub(super) received: Instant,
}

/// True when a call of `method` is answered on the reader's task: a
/// built-in, or a method the callee runs inline, outside `synchronous` mode
/// (where a call may wait for its turn, which must not stop the reader).
pub(super) fn runs_inline(shared: &Shared, method: &str) -> bool {
    is_builtin(method) || (!shared.config.synchronous && shared.callee.runs_inline(method))
}

/// True when calls go to the callee's [`Callee::call_then`] straight from
/// the reader (see `direct`): a callee that answers directly, outside
/// `synchronous` mode (a call waits for its turn on a task) and without
/// hooks (they see every call's arguments and result on the server's side).
///
/// [`Callee::call_then`]: crate::Callee::call_then
pub(crate) fn answers_directly(shared: &Shared) -> bool {
    shared.callee.answers_directly() && !shared.config.synchronous && !shared.hooks.any()
}

/// True when a call of `method` goes to the callee's
/// [`Callee::call_then`] (`direct`): the one rule for the reader
/// (`dispatch::handle`, which spells it out to look the method up once)
/// and for a worker that read the request itself
/// (`Direct::serve_next`).
///
/// [`Callee::call_then`]: crate::Callee::call_then
pub(super) fn goes_direct(shared: &Shared, method: &str) -> bool {
    !runs_inline(shared, method) && answers_directly(shared)
}

pub(super) fn spawn_call(
    shared: &Arc<Shared>,
    conn: &ConnCtx,
    id: u64,
    call: raw::Call,
    received: Instant,
    permit: OwnedSemaphorePermit,
) {
    let (shared, conn) = (Arc::clone(shared), conn.clone());
    let registration = conn.running.register(id, &conn.stop);
    let (method, body) = CallBody::split(call, received);
    let deadline = body.deadline;
    shared.clone().calls.spawn(async move {
        let mut permit = Some(permit);
        let resp = tokio::select! {
            r = call_response(&shared, &conn, id, &method, body, Some((&registration, &mut permit))) => r,
            // At its deadline the call is stopped as if cancelled: its caller
            // has given up (docs/PROTOCOL.md, "Deadlines").
            _ = sleep_until_some(deadline) => {
                // Work the handler left behind (a blocking thread, a task it
                // spawned) learns of it through its `CallContext`.
                registration.token().cancel();
                count(&shared, &method, received, true);
                error(id, RemoteError::new(
                    ErrorKind::DeadlineExceeded,
                    format!("{method}() was stopped at the caller's timeout"),
                ))
            }
            _ = registration.token().cancelled() => {
                // The call's future is dropped here, which stops it.
                if conn.stop.is_cancelled() {
                    // The connection closed: nobody to answer.
                    return;
                }
                count(&shared, &method, received, true);
                error(id, RemoteError::new(ErrorKind::Cancelled, "the call was cancelled by its caller"))
            }
        };
        drop(registration);
        reply(&conn, resp).await;
    });
}

/// Sends the items of a call's stream (see [`stream::pump`]); the number of
/// items sent, or the error that ended the stream. The call's in-flight
/// permit is given back first (a stalled stream must not stop the reader,
/// which reads the client's `Credit`s); the connection's open streams are
/// bounded by [`RunningCalls::open_stream`] instead.
#[allow(clippy::too_many_arguments)]
pub(super) async fn stream_reply(
    shared: &Arc<Shared>,
    conn: &ConnCtx,
    id: u64,
    method: &str,
    stream: ValueStream,
    window: u32,
    reg: &Registration,
    permit: &mut Option<OwnedSemaphorePermit>,
) -> Result<u64, RemoteError> {
    let Some(_open) = conn.running.open_stream() else {
        return Err(RemoteError::new(
            ErrorKind::Overloaded,
            format!(
                "{method}() streams, and this connection already has {} streams open",
                crate::running::MAX_STREAMS
            ),
        ));
    };
    drop(permit.take());
    stream::grant(reg.credit(), window);
    tracing::debug!(id, window, "streaming reply");
    stream::pump(id, stream, Arc::clone(reg.credit()), conn, |v| {
        check_result(shared, method, v)
    })
    .await
}

impl stream::AsyncSend for &ConnCtx {
    async fn send(&self, item: raw::StreamItem) -> bool {
        self.tx.send_item(item).await.is_ok()
    }
}

/// Sleeps until `deadline`; never wakes for `None`.
pub(super) async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// A spawned call's registration (its cancellation and stream credit) and
/// its in-flight permit, which it gives back once its reply turns into a
/// stream.
pub(super) type Spawned<'a> = (&'a Registration, &'a mut Option<OwnedSemaphorePermit>);

/// Runs a call and makes its response. A spawned call (`spawned` is set)
/// whose client offered a stream window may answer with a stream: its items
/// are queued here, and the response returned ends the stream.
pub(super) async fn call_response(
    shared: &Arc<Shared>,
    conn: &ConnCtx,
    id: u64,
    method: &str,
    call: CallBody,
    spawned: Option<Spawned<'_>>,
) -> raw::Response {
    let span = tracing::info_span!("rpc", id, method = %method);
    async move {
        let (deadline, window, received) = (call.deadline, call.window, call.received);
        let slot = (spawned.is_some() && window > 0).then(StreamSlot::default);
        // A call run on the reader's task has no registration (a `Cancel`
        // is read only after it): its context is cancelled with the
        // connection (a clone, where a token of its own cost an allocation
        // per call).
        let cancel = match &spawned {
            Some((r, _)) => r.token().clone(),
            None => conn.stop.clone(),
        };
        let result = match prepare(shared, method, call) {
            Ok(p) => run_prepared(shared, &conn.peer, method, p, false, cancel, slot.clone()).await,
            Err(e) => Err(e),
        };
        let streamed = match (&result, slot.as_ref().and_then(StreamSlot::take), spawned) {
            (Ok(_), Some(stream), Some((reg, permit))) => {
                Some(stream_reply(shared, conn, id, method, stream, window, reg, permit).await)
            }
            _ => None,
        };
        let result = match streamed {
            Some(Ok(items)) => {
                let late = deadline.is_some_and(|d| Instant::now() > d);
                count(shared, method, received, late);
                if late {
                    return error(
                        id,
                        RemoteError::new(
                            ErrorKind::DeadlineExceeded,
                            format!("{method}() finished its stream after the caller's timeout"),
                        ),
                    );
                }
                return response(id, response::Kind::StreamEnd(wire::StreamEnd { items }));
            }
            Some(Err(e)) => Err(e),
            None => result,
        };
        answer(shared, id, method, deadline, received, result)
    }
    .instrument(span)
    .await
}

/// The response to a call that ended with `result` (checked already), and
/// the call counted. An outcome known only after the deadline is not sent:
/// the caller has given up (and a result may be hundreds of MiB to encode).
pub(super) fn answer(
    shared: &Shared,
    id: u64,
    method: &str,
    deadline: Option<Instant>,
    received: Instant,
    result: Result<Value, RemoteError>,
) -> raw::Response {
    let late = deadline.is_some_and(|d| Instant::now() > d);
    let result = match result {
        Err(e) if e.kind == ErrorKind::DeadlineExceeded => Err(e),
        _ if late => Err(RemoteError::new(
            ErrorKind::DeadlineExceeded,
            format!("{method}() finished after the caller's timeout"),
        )),
        other => other,
    };
    count(shared, method, received, result.is_err());
    match result {
        Ok(v) => value(id, v),
        Err(e) => error(id, e),
    }
}

/// Counts the outcome of a call in the server's stats (docs/PROTOCOL.md,
/// "Introspection and statistics"): every `Call`, and every `Submit` that
/// registered a new call or was refused for its call, except the built-ins;
/// an error of any kind counts as an error. The latency runs from
/// `received` (the request was read) to now.
pub(super) fn count(shared: &Shared, method: &str, received: Instant, failed: bool) {
    if is_builtin(method) {
        return;
    }
    shared.stats.record(received.elapsed(), failed);
}

/// The methods every server answers itself, never counted in the stats.
pub(super) fn is_builtin(method: &str) -> bool {
    matches!(method, "connected" | "shutdown")
}

/// Checks the method name and converts the arguments.
pub(super) fn prepare(
    shared: &Shared,
    method: &str,
    call: CallBody,
) -> Result<Prepared, RemoteError> {
    if method.starts_with('_') {
        return Err(RemoteError::no_such_method(method));
    }
    let max_depth = shared.config.max_value_depth;
    // A callee that converts values itself gets them as they came.
    let encoded = shared.callee.takes_encoded();
    let convert = |v: bytes::Bytes, what: &dyn Fn() -> String| -> Result<Value, RemoteError> {
        if encoded {
            return Ok(Value::Encoded(v));
        }
        let v = raw::decode_value(v, max_depth).map_err(|e| match e {
            // Bytes that are not a value (values arrive undecoded, see
            // `pyrpc_proto::raw`): the request could not be decoded.
            pyrpc_proto::ValueError::Undecodable(why) => RemoteError::new(
                ErrorKind::Protocol,
                format!(
                    "the {} of {method}() could not be decoded ({why}); values deeper \
                     than 32 levels must use the flat encoding",
                    what()
                ),
            ),
            e => RemoteError::new(
                ErrorKind::UnsupportedValue,
                format!("{} of {method}(): {e}", what()),
            ),
        })?;
        if !shared.config.allow_pickle && contains_pickle(&v) {
            return Err(pickle_refused(&format!("{} of {method}()", what())));
        }
        Ok(v)
    };
    let mut args = Args::new();
    args.args.reserve(call.args.len());
    for (i, v) in call.args.into_iter().enumerate() {
        args.args
            .push(convert(v, &|| format!("argument {}", i + 1))?);
    }
    // A few keywords are checked against each other in place; a set (an
    // allocation and a copy of each name) only for many.
    let mut seen =
        (call.kwargs.len() > FEW_KWARGS).then(|| HashSet::with_capacity(call.kwargs.len()));
    for kw in call.kwargs {
        let repeated = match &mut seen {
            Some(seen) => !seen.insert(kw.name.clone()),
            None => args.kwargs.iter().any(|(name, _)| *name == kw.name),
        };
        if repeated {
            return Err(RemoteError::bad_arguments(format!(
                "{method}() got multiple values for keyword argument '{}'",
                kw.name
            )));
        }
        let v = convert(kw.value, &|| format!("keyword argument '{}'", kw.name))?;
        args.kwargs.push((kw.name, v));
    }
    Ok(Prepared {
        args,
        deadline: call.deadline,
        received: call.received,
    })
}

/// Up to this many keyword arguments are checked for repeats without a set.
const FEW_KWARGS: usize = 8;

/// When a call received at `received` with `timeout_ms` (0 = none) stops
/// being waited for.
pub(super) fn deadline_of(received: Instant, timeout_ms: u64) -> Option<Instant> {
    match timeout_ms {
        0 => None,
        ms => received.checked_add(Duration::from_millis(ms).min(MAX_TIMEOUT)),
    }
}

/// Runs a prepared call: builtins, `synchronous`, the deadline, the callee
/// (panics caught), the result checks and the hooks. The caller counts the
/// outcome ([`count`]).
pub(super) async fn run_prepared(
    shared: &Arc<Shared>,
    peer: &str,
    method: &str,
    p: Prepared,
    nonblocking: bool,
    cancel: CancellationToken,
    stream: Option<StreamSlot>,
) -> Result<Value, RemoteError> {
    match method {
        "connected" => return Ok(Value::Bool(true)),
        "shutdown" => {
            shared.begin_shutdown();
            return Ok(Value::None);
        }
        _ => {}
    }
    // Counts the call as in flight until this function returns or is dropped.
    let _in_flight = shared.stats.enter();
    // Held for the whole call: one call at a time across the server.
    let _turn = if shared.config.synchronous {
        Some(shared.sync_lock.acquire().await.map_err(|_| {
            RemoteError::new(ErrorKind::ShuttingDown, "the server is shutting down")
        })?)
    } else {
        None
    };
    if let Some(deadline) = p.deadline {
        if Instant::now() >= deadline {
            return Err(not_started(method));
        }
    }
    let record_args = shared.hooks.any().then(|| p.args.clone());
    let ctx = CallContext::new(
        peer.to_owned(),
        p.deadline.map(Instant::into_std),
        nonblocking,
        cancel,
        stream,
    );
    let started = Instant::now();
    let callee = &shared.callee;
    let args = p.args;
    let result = match std::panic::catch_unwind(AssertUnwindSafe(|| callee.call(ctx, method, args)))
    {
        Ok(fut) => AssertUnwindSafe(fut)
            .catch_unwind()
            .await
            .unwrap_or_else(|p| Err(panicked(method, panic_message(p)))),
        Err(p) => Err(panicked(method, panic_message(p))),
    };
    let elapsed = started.elapsed();
    let result = result.and_then(|v| check_result(shared, method, v));
    drop(_turn);
    match &result {
        Ok(_) => tracing::debug!(?elapsed, "call returned"),
        Err(e) => tracing::debug!(?elapsed, error = %pyrpc_proto::Report(&e), "call failed"),
    }
    if let Some(args) = record_args {
        let record = CallRecord::new(method, args, result, elapsed);
        shared.hooks.run(&record);
        return record.result;
    }
    result
}

/// Refuses a result the client could not take.
pub(super) fn check_result(shared: &Shared, method: &str, v: Value) -> Result<Value, RemoteError> {
    let max = shared.config.max_value_depth;
    if v.check_depth(max).is_err() {
        return Err(RemoteError::new(
            ErrorKind::UnsupportedValue,
            format!("the result of {method}() is nested deeper than {max} levels"),
        ));
    }
    if !shared.config.allow_pickle && contains_pickle(&v) {
        return Err(pickle_refused(&format!("the result of {method}()")));
    }
    Ok(v)
}

pub(super) fn pickle_refused(what: &str) -> RemoteError {
    RemoteError::new(
        ErrorKind::UnsupportedValue,
        format!(
            "pickled values are refused: {what} holds one and this server does not allow pickle"
        ),
    )
}

/// True when `v` is or holds a pickled value. Only called on values whose
/// depth was checked, so the recursion is bounded.
pub(super) fn contains_pickle(v: &Value) -> bool {
    match v {
        Value::Pickle(_) => true,
        Value::List(items) | Value::Tuple(items) | Value::Set(items) | Value::FrozenSet(items) => {
            items.iter().any(contains_pickle)
        }
        Value::Dict(entries) => entries
            .iter()
            .any(|(k, v)| contains_pickle(k) || contains_pickle(v)),
        Value::Record(r) => r.fields.iter().any(|(_, v)| contains_pickle(v)),
        _ => false,
    }
}

/// `DEADLINE_EXCEEDED` for a call that was not started because its
/// deadline had passed.
pub(crate) fn not_started(method: &str) -> RemoteError {
    RemoteError::new(
        ErrorKind::DeadlineExceeded,
        format!("{method}() did not run: the caller's timeout passed before it could start"),
    )
}

/// The error for a method that panicked.
pub(crate) fn panicked(method: &str, message: String) -> RemoteError {
    RemoteError::new(
        ErrorKind::Exception,
        format!("{method}() panicked: {message}"),
    )
}

/// The text of a panic payload.
pub(crate) fn panic_message(payload: Box<dyn Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_owned()
    }
}
