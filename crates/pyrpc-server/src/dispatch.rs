//! Turns one request into one response: builtins, argument conversion,
//! `synchronous`, deadlines, hooks, and the non-blocking requests.
//!
//! The reader of a connection hands every request to [`handle`] together with
//! an in-flight permit. Cheap requests (ping, release, submit, an immediate
//! fetch) are answered right there, and so are calls of the built-ins and of
//! methods the callee runs inline ([`Callee::runs_inline`]: the functions of
//! [`Methods::add`]) unless the server is `synchronous`. Other calls and
//! waiting fetches run as their own task, so the calls of one connection run
//! concurrently and are answered out of order. Every response goes into the
//! connection's reply queue.
//!
//! A request handled right there is fully handled (a `Submit` is registered
//! in the result store, its call started) before the reader reads the next
//! request of the connection; docs/PROTOCOL.md promises that ordering.
//!
//! [`Callee::runs_inline`]: crate::Callee::runs_inline
//! [`Methods::add`]: crate::Methods::add

use std::any::Any;
use std::collections::HashSet;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use pyrpc_proto::raw::{self, request, response};
use pyrpc_proto::wire;
use pyrpc_proto::{Args, ErrorKind, MethodInfo, RemoteError, Value};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::callee::CallContext;
use crate::config::RemoteShutdown;
use crate::hooks::CallRecord;
use crate::results::{CallId, Lookup, Submitted};
use crate::running::{Registration, RunningCalls};
use crate::server::Shared;
use crate::store::{self, StoreError};
use crate::stream::{self, StreamSlot, ValueStream};

/// The longest a `Fetch` may be held, whatever its `wait_ms` says.
const MAX_FETCH_WAIT: Duration = Duration::from_secs(24 * 3600);
/// The longest `Call.timeout_ms` taken into account; longer means no limit.
const MAX_TIMEOUT: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// What the request handlers of one connection share.
#[derive(Clone)]
pub(crate) struct ConnCtx {
    /// Who is on the other end, for logs and [`CallContext::peer`].
    pub(crate) peer: Arc<str>,
    /// The connection's reply queue, read by its writer task.
    pub(crate) tx: crate::connection::ReplyQueue,
    /// Cancelled when the connection closes: its running calls are dropped.
    pub(crate) stop: CancellationToken,
    /// Its spawned calls, for `Cancel`.
    pub(crate) running: Arc<RunningCalls>,
    /// The client proved the shared secret or presented a verified client
    /// certificate.
    pub(crate) authenticated: bool,
}

/// Why `conn` may not shut the server down, if it may not
/// ([`ServerConfig::remote_shutdown`](crate::ServerConfig::remote_shutdown)).
fn shutdown_refusal(shared: &Shared, conn: &ConnCtx) -> Option<RemoteError> {
    let why = match shared.config.remote_shutdown {
        RemoteShutdown::Allow => return None,
        RemoteShutdown::Refuse => {
            "remote shutdown refused: this server does not allow clients to shut it down \
             (remote_shutdown is off)"
        }
        RemoteShutdown::Auto => {
            if conn.authenticated || shared.local_only.load(Ordering::Relaxed) {
                return None;
            }
            "remote shutdown refused: this server listens on a network interface and \
             only clients that proved the shared secret or presented a client \
             certificate may shut it down (see remote_shutdown)"
        }
    };
    tracing::warn!(target: "pyrpc.auth", peer = %conn.peer, "{why}");
    Some(RemoteError::new(ErrorKind::Unauthenticated, why))
}

/// Answers one request, now or from a task of its own. `permit` is held
/// until the response is queued, bounding the connection's work in flight.
pub(crate) async fn handle(
    shared: &Arc<Shared>,
    conn: &ConnCtx,
    req: raw::Request,
    permit: OwnedSemaphorePermit,
) {
    // A call's deadline and its latency both start here, when the request
    // has been read (docs/PROTOCOL.md, "Deadlines").
    let received = Instant::now();
    let id = req.id;
    if shared.shutdown.is_cancelled() {
        let e = RemoteError::new(
            ErrorKind::ShuttingDown,
            "the server is shutting down and takes no new requests",
        );
        return reply(conn, error(id, e)).await;
    }
    let Some(kind) = req.kind else {
        let e = RemoteError::new(ErrorKind::Protocol, "request with no kind set");
        return reply(conn, error(id, e)).await;
    };
    let wants_shutdown = match &kind {
        request::Kind::Shutdown(_) => true,
        request::Kind::Call(c) => c.method == "shutdown",
        request::Kind::Submit(s) => s.call.as_ref().is_some_and(|c| c.method == "shutdown"),
        _ => false,
    };
    if wants_shutdown {
        if let Some(e) = shutdown_refusal(shared, conn) {
            return reply(conn, error(id, e)).await;
        }
    }
    match kind {
        request::Kind::Ping(_) => reply(conn, ack(id)).await,
        request::Kind::Cancel(c) => {
            let found = conn.running.cancel(c.id);
            tracing::debug!(peer = %conn.peer, call = c.id, found, "cancel");
            reply(conn, ack(id)).await;
        }
        request::Kind::Shutdown(_) => {
            // Queue the Ack before shutting down: the writer sends everything
            // queued before the connection closes.
            reply(conn, ack(id)).await;
            shared.begin_shutdown();
        }
        request::Kind::Call(call) if runs_inline(shared, &call.method) => {
            let resp = call_response(shared, conn, id, call, received, None).await;
            reply(conn, resp).await;
            drop(permit);
        }
        request::Kind::Call(call) => spawn_call(shared, conn, id, call, received, permit),
        request::Kind::Submit(s) => {
            let resp = match submit(shared, conn, id, s, received).await {
                Ok(()) => ack(id),
                Err(e) => error(id, e),
            };
            reply(conn, resp).await;
        }
        request::Kind::Fetch(f) => match nb_call_id(shared, &f.call_id) {
            Err(e) => reply(conn, error(id, e)).await,
            Ok(call_id) if f.wait_ms == 0 => {
                let lookup = shared.store().get(call_id).await;
                reply(conn, fetched(id, lookup)).await;
            }
            Ok(call_id) => {
                let (shared, conn) = (Arc::clone(shared), conn.clone());
                let wait = Duration::from_millis(f.wait_ms).min(MAX_FETCH_WAIT);
                shared.clone().calls.spawn(async move {
                    let _permit = permit;
                    tokio::select! {
                        lookup = wait_for_result(&shared, call_id, wait) => {
                            reply(&conn, fetched(id, lookup)).await;
                        }
                        _ = conn.stop.cancelled() => {}
                    }
                });
            }
        },
        request::Kind::ListMethods(_) => {
            let (shared, conn) = (Arc::clone(shared), conn.clone());
            shared.clone().calls.spawn(async move {
                let _permit = permit;
                let resp = match list_methods(&shared).await {
                    Ok(list) => response(id, response::Kind::Methods(list)),
                    Err(e) => error(id, e),
                };
                reply(&conn, resp).await;
            });
        }
        request::Kind::Stats(_) => {
            let stats = shared.stats_snapshot();
            reply(conn, response(id, response::Kind::Stats(stats.into()))).await;
        }
        request::Kind::Release(r) => {
            let resp = match nb_call_id(shared, &r.call_id) {
                Ok(call_id) => match shared.store().release(call_id).await {
                    Ok(_) => ack(id),
                    Err(e) => error(id, e.to_remote()),
                },
                Err(e) => error(id, e),
            };
            reply(conn, resp).await;
        }
    }
}

/// Answers a request whose frame could not be decoded (a body that is not a
/// valid `ClientFrame`, or values nested past protobuf's recursion limit),
/// when its id can still be read: the frame had a valid length, so the
/// connection is still in step and only this request fails.
///
/// Returns false when not even an id could be read; the caller then closes
/// the connection.
pub(crate) async fn answer_undecodable(conn: &ConnCtx, body: &[u8], why: &str) -> bool {
    let Some(id) = undecodable_request_id(body) else {
        return false;
    };
    let e = RemoteError::new(
        ErrorKind::Protocol,
        format!("request {id} could not be decoded ({why}); values deeper than 32 levels must use the flat encoding"),
    );
    reply(conn, error(id, e)).await;
    true
}

/// The id of a request frame, read without decoding anything else: prost
/// skips the other fields without recursing into them.
/// The memory a request may take once decoded: 4 times its frame, and never
/// less than this (so ordinary requests of small frames, a million ints in
/// 5 MB, are never refused).
pub(crate) const DECODED_FLOOR: u64 = 256 * 1024 * 1024;

/// Refuses a request frame whose values would take more memory decoded than
/// `max(4 x frame, DECODED_FLOOR)` (a 64 MB frame of empty values is 33M
/// values, gigabytes decoded), before anything is decoded.
pub(crate) fn decoded_size_check(body: &[u8]) -> Result<(), String> {
    let cost = pyrpc_proto::cost::client_frame_cost(body);
    let values = cost.values;
    let estimate = cost.decoded_bytes();
    let budget = (body.len() as u64).saturating_mul(4).max(DECODED_FLOOR);
    if estimate > budget {
        return Err(format!(
            "its {values} values would take about {} MiB decoded, more than the \
             server's budget of {} MiB for a {} MiB frame",
            estimate >> 20,
            budget >> 20,
            body.len() >> 20
        ));
    }
    Ok(())
}

/// Answers a request refused before decoding (see [`decoded_size_check`])
/// with `UNSUPPORTED_VALUE`, when its id can be read.
pub(crate) async fn answer_refused(conn: &ConnCtx, body: &[u8], why: &str) -> bool {
    let Some(id) = undecodable_request_id(body) else {
        return false;
    };
    let e = RemoteError::new(
        ErrorKind::UnsupportedValue,
        format!("request {id} refused: {why}"),
    );
    reply(conn, error(id, e)).await;
    true
}

fn undecodable_request_id(body: &[u8]) -> Option<u64> {
    /// `ClientFrame` with only its `request` field.
    #[derive(Clone, PartialEq, prost::Message)]
    struct FrameHead {
        #[prost(message, optional, tag = "2")]
        request: Option<RequestHead>,
    }
    /// `Request` with only its `id` field.
    #[derive(Clone, PartialEq, prost::Message)]
    struct RequestHead {
        #[prost(uint64, tag = "1")]
        id: u64,
    }
    <FrameHead as prost::Message>::decode(body)
        .ok()?
        .request
        .map(|r| r.id)
}

/// Queues a response; a closed queue means the connection is gone.
async fn reply(conn: &ConnCtx, resp: raw::Response) {
    let _ = conn.tx.send(resp).await;
}

// ===== calls =====

/// A call whose arguments were converted and checked.
struct Prepared {
    method: String,
    args: Args,
    deadline: Option<Instant>,
    /// When the request was read: the start of the call's latency.
    received: Instant,
}

/// True when a call of `method` is answered on the reader's task: a
/// built-in, or a method the callee runs inline, outside `synchronous` mode
/// (where a call may wait for its turn, which must not stop the reader).
fn runs_inline(shared: &Shared, method: &str) -> bool {
    is_builtin(method) || (!shared.config.synchronous && shared.callee.runs_inline(method))
}

fn spawn_call(
    shared: &Arc<Shared>,
    conn: &ConnCtx,
    id: u64,
    call: raw::Call,
    received: Instant,
    permit: OwnedSemaphorePermit,
) {
    let (shared, conn) = (Arc::clone(shared), conn.clone());
    let registration = conn.running.register(id, &conn.stop);
    // For the stats, should the call be stopped.
    let method = call.method.clone();
    let deadline = deadline_of(received, call.timeout_ms);
    shared.clone().calls.spawn(async move {
        let mut permit = Some(permit);
        let resp = tokio::select! {
            r = call_response(&shared, &conn, id, call, received, Some((&registration, &mut permit))) => r,
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
async fn stream_reply(
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
async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// A spawned call's registration (its cancellation and stream credit) and
/// its in-flight permit, which it gives back once its reply turns into a
/// stream.
type Spawned<'a> = (&'a Registration, &'a mut Option<OwnedSemaphorePermit>);

/// Runs a call and makes its response. A spawned call (`spawned` is set)
/// whose client offered a stream window may answer with a stream: its items
/// are queued here, and the response returned ends the stream.
async fn call_response(
    shared: &Arc<Shared>,
    conn: &ConnCtx,
    id: u64,
    call: raw::Call,
    received: Instant,
    spawned: Option<Spawned<'_>>,
) -> raw::Response {
    let span = tracing::info_span!("rpc", id, method = %call.method);
    async move {
        let method = call.method.clone();
        let deadline = deadline_of(received, call.timeout_ms);
        let window = call.stream_window;
        let slot = (spawned.is_some() && window > 0).then(StreamSlot::default);
        let cancel = spawned
            .as_ref()
            .map(|(r, _)| r.token().clone())
            .unwrap_or_default();
        let result = match prepare(shared, call, received) {
            Ok(p) => run_prepared(shared, &conn.peer, p, false, cancel, slot.clone()).await,
            Err(e) => Err(e),
        };
        let streamed = match (&result, slot.as_ref().and_then(StreamSlot::take), spawned) {
            (Ok(_), Some(stream), Some((reg, permit))) => {
                Some(stream_reply(shared, conn, id, &method, stream, window, reg, permit).await)
            }
            _ => None,
        };
        let result = match streamed {
            Some(Ok(items)) => {
                let late = deadline.is_some_and(|d| Instant::now() > d);
                count(shared, &method, received, late);
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
        // An outcome known only after the deadline is not sent: the caller
        // has given up (and a result may be hundreds of MiB to encode).
        let late = deadline.is_some_and(|d| Instant::now() > d);
        let result = match result {
            Err(e) if e.kind == ErrorKind::DeadlineExceeded => Err(e),
            _ if late => Err(RemoteError::new(
                ErrorKind::DeadlineExceeded,
                format!("{method}() finished after the caller's timeout"),
            )),
            other => other,
        };
        count(shared, &method, received, result.is_err());
        match result {
            Ok(v) => value(id, v),
            Err(e) => error(id, e),
        }
    }
    .instrument(span)
    .await
}

/// Counts the outcome of a call in the server's stats (docs/PROTOCOL.md,
/// "Introspection and statistics"): every `Call`, and every `Submit` that
/// registered a new call or was refused for its call, except the built-ins;
/// an error of any kind counts as an error. The latency runs from
/// `received` (the request was read) to now.
fn count(shared: &Shared, method: &str, received: Instant, failed: bool) {
    if is_builtin(method) {
        return;
    }
    shared.stats.record(received.elapsed(), failed);
}

/// The methods every server answers itself, never counted in the stats.
fn is_builtin(method: &str) -> bool {
    matches!(method, "connected" | "shutdown")
}

/// Checks the method name and converts the arguments.
fn prepare(shared: &Shared, call: raw::Call, received: Instant) -> Result<Prepared, RemoteError> {
    let method = call.method;
    if method.starts_with('_') {
        return Err(RemoteError::no_such_method(&method));
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
    let mut seen = HashSet::with_capacity(call.kwargs.len());
    for kw in call.kwargs {
        if !seen.insert(kw.name.clone()) {
            return Err(RemoteError::bad_arguments(format!(
                "{method}() got multiple values for keyword argument '{}'",
                kw.name
            )));
        }
        let v = convert(kw.value, &|| format!("keyword argument '{}'", kw.name))?;
        args.kwargs.push((kw.name, v));
    }
    let deadline = deadline_of(received, call.timeout_ms);
    Ok(Prepared {
        method,
        args,
        deadline,
        received,
    })
}

/// When a call received at `received` with `timeout_ms` (0 = none) stops
/// being waited for.
fn deadline_of(received: Instant, timeout_ms: u64) -> Option<Instant> {
    match timeout_ms {
        0 => None,
        ms => received.checked_add(Duration::from_millis(ms).min(MAX_TIMEOUT)),
    }
}

/// Runs a prepared call: builtins, `synchronous`, the deadline, the callee
/// (panics caught), the result checks and the hooks. The caller counts the
/// outcome ([`count`]).
async fn run_prepared(
    shared: &Arc<Shared>,
    peer: &str,
    p: Prepared,
    nonblocking: bool,
    cancel: CancellationToken,
    stream: Option<StreamSlot>,
) -> Result<Value, RemoteError> {
    match p.method.as_str() {
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
            return Err(not_started(&p.method));
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
    let method = p.method.as_str();
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
        let record = CallRecord::new(p.method, args, result, elapsed);
        shared.hooks.run(&record);
        return record.result;
    }
    result
}

/// Refuses a result the client could not take.
fn check_result(shared: &Shared, method: &str, v: Value) -> Result<Value, RemoteError> {
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

fn pickle_refused(what: &str) -> RemoteError {
    RemoteError::new(
        ErrorKind::UnsupportedValue,
        format!(
            "pickled values are refused: {what} holds one and this server does not allow pickle"
        ),
    )
}

/// True when `v` is or holds a pickled value. Only called on values whose
/// depth was checked, so the recursion is bounded.
fn contains_pickle(v: &Value) -> bool {
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

// ===== introspection =====

/// The built-in methods every server answers, as `ListMethods` lists them.
fn builtins() -> [MethodInfo; 2] {
    [
        MethodInfo::new("connected")
            .signature("()")
            .doc("Built in: returns True (the server is up)."),
        MethodInfo::new("shutdown")
            .signature("()")
            .doc("Built in: shuts the server down gracefully."),
    ]
}

/// The callee's public methods, sorted, then the built-ins. The callee is
/// asked on the blocking pool: a Python callee takes the GIL to answer.
async fn list_methods(shared: &Arc<Shared>) -> Result<wire::MethodList, RemoteError> {
    let callee = Arc::clone(&shared.callee);
    let mut methods = tokio::task::spawn_blocking(move || callee.methods())
        .await
        .map_err(|e| {
            let why = if e.is_panic() {
                panic_message(e.into_panic())
            } else {
                "cancelled".to_owned()
            };
            RemoteError::new(
                ErrorKind::Exception,
                format!("listing methods failed: {why}"),
            )
        })?;
    methods.retain(|m| {
        !m.name.starts_with('_') && !matches!(m.name.as_str(), "connected" | "shutdown")
    });
    methods.sort_by(|a, b| a.name.cmp(&b.name));
    methods.dedup_by(|a, b| a.name == b.name);
    methods.extend(builtins());
    Ok(wire::MethodList {
        methods: methods.into_iter().map(wire::MethodInfo::from).collect(),
    })
}

// ===== non-blocking =====

/// The call id of a Submit/Fetch/Release, if this server takes them.
fn nb_call_id(shared: &Shared, raw: &[u8]) -> Result<CallId, RemoteError> {
    if !shared.config.nonblocking {
        return Err(RemoteError::new(
            ErrorKind::NotNonblocking,
            "this server was not started with nonblocking=True",
        ));
    }
    CallId::try_from(raw).map_err(|_| {
        RemoteError::new(
            ErrorKind::Protocol,
            format!("call id must be 16 bytes, got {}", raw.len()),
        )
    })
}

/// Registers a submitted call and starts it, detached from the connection.
/// A call the reader runs inline ([`runs_inline`]) is run right here, so a
/// `Fetch` right behind the `Submit` finds it done.
async fn submit(
    shared: &Arc<Shared>,
    conn: &ConnCtx,
    id: u64,
    s: raw::Submit,
    received: Instant,
) -> Result<(), RemoteError> {
    let call_id = nb_call_id(shared, &s.call_id)?;
    let call = s
        .call
        .ok_or_else(|| RemoteError::new(ErrorKind::Protocol, "submit without a call"))?;
    let method = call.method.clone();
    let prepared = prepare(shared, call, received).inspect_err(|_| {
        count(shared, &method, received, true);
    })?;
    let keep = match s.keep_ms {
        0 => shared.config.result_keep,
        ms => Duration::from_millis(ms),
    };
    match shared.store().submit(call_id, keep).await {
        Err(e) => {
            count(shared, &method, received, true);
            return Err(e.to_remote());
        }
        Ok(Submitted::Known) => return Ok(()),
        Ok(Submitted::Full) => {
            return Err(RemoteError::new(
                ErrorKind::Overloaded,
                format!(
                    "the server already keeps {} non-blocking calls; release some or retry later",
                    shared.config.max_kept_results
                ),
            ))
        }
        Ok(Submitted::New) => {}
    }
    let span = tracing::info_span!("rpc", id, method = %prepared.method, nonblocking = true);
    if runs_inline(shared, &prepared.method) {
        let (method, received) = (prepared.method.clone(), prepared.received);
        let work = run_prepared(shared, &conn.peer, prepared, true, Default::default(), None);
        let result = store::run_holding_lease(shared.store(), call_id, work)
            .instrument(span)
            .await;
        count(shared, &method, received, result.is_err());
        store_result(shared, call_id, result).await;
        return Ok(());
    }
    let shared2 = Arc::clone(shared);
    let peer = Arc::clone(&conn.peer);
    // Not tied to the connection: the result must survive it being dropped.
    shared.calls.spawn(
        async move {
            let shared = shared2;
            let (method, received) = (prepared.method.clone(), prepared.received);
            let cancel = shared.close.child_token();
            let work = run_prepared(&shared, &peer, prepared, true, cancel, None);
            let result = tokio::select! {
                r = store::run_holding_lease(shared.store(), call_id, work) => r,
                _ = shared.close.cancelled() => return,
            };
            count(&shared, &method, received, result.is_err());
            store_result(&shared, call_id, result).await;
        }
        .instrument(span),
    );
    Ok(())
}

/// Stores the outcome of a non-blocking call this server ran and wakes the
/// fetches waiting for it. A store that fails loses the result: the call's
/// lease runs out and fetches are answered `CALL_LOST`.
async fn store_result(shared: &Shared, call_id: CallId, result: Result<Value, RemoteError>) {
    match shared.store().complete(call_id, result).await {
        Ok(true) => shared.store_changed.notify_waiters(),
        Ok(false) => {}
        Err(e) => tracing::error!(error = %e, "cannot store a non-blocking result; it is lost"),
    }
}

/// The state of `call_id`, waiting up to `wait` for a running call to finish
/// (or until the server shuts down). A shared store wakes it through
/// `watch` when another server finishes the call, and is read again every
/// `poll_interval` (a lost lease sends no message).
async fn wait_for_result(
    shared: &Shared,
    call_id: CallId,
    wait: Duration,
) -> Result<Lookup, StoreError> {
    let deadline = Instant::now() + wait;
    let watch = shared.store().watch(call_id);
    loop {
        // Register for the wake-ups before looking, so a completion between
        // the look and the wait is not missed.
        let notified = shared.store_changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let mut elsewhere = watch.as_deref().map(|n| Box::pin(n.notified()));
        if let Some(f) = elsewhere.as_mut() {
            f.as_mut().enable();
        }
        match shared.store().get(call_id).await? {
            Lookup::Pending if Instant::now() < deadline && !shared.shutdown.is_cancelled() => {}
            other => return Ok(other),
        }
        let next = match shared.store().poll_interval() {
            Some(every) => deadline.min(Instant::now() + every),
            None => deadline,
        };
        let finished_elsewhere = async {
            match elsewhere {
                Some(f) => f.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = notified => {}
            () = finished_elsewhere => {}
            _ = tokio::time::sleep_until(next) => {}
            _ = shared.shutdown.cancelled() => {}
        }
    }
}

fn fetched(id: u64, lookup: Result<Lookup, StoreError>) -> raw::Response {
    let lookup = match lookup {
        Ok(lookup) => lookup,
        Err(e) => return error(id, e.to_remote()),
    };
    match lookup {
        Lookup::Lost => error(
            id,
            RemoteError::new(
                ErrorKind::CallLost,
                "the call was lost: the server running it stopped renewing its lease \
                 (it died or lost the result store); it may have run partly and will not run again",
            ),
        ),
        Lookup::Done(Ok(v)) => value(id, v),
        Lookup::Done(Err(e)) => error(id, e),
        Lookup::Pending => response(id, response::Kind::Pending(wire::Pending {})),
        Lookup::Unknown => error(
            id,
            RemoteError::new(
                ErrorKind::UnknownCall,
                "unknown call id (never submitted, released, or past its keep-time)",
            ),
        ),
    }
}

// ===== responses =====

fn response(id: u64, kind: response::Kind) -> raw::Response {
    raw::Response {
        id,
        kind: Some(kind),
    }
}

fn ack(id: u64) -> raw::Response {
    response(id, response::Kind::Ack(wire::Ack {}))
}

fn value(id: u64, v: Value) -> raw::Response {
    response(id, response::Kind::Value(raw::encode_value(v)))
}

/// An error response.
pub(crate) fn error(id: u64, e: RemoteError) -> raw::Response {
    response(id, response::Kind::Error(e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn finds_nested_pickles() {
        assert!(!contains_pickle(&Value::from(1)));
        assert!(contains_pickle(&Value::Pickle(Bytes::new())));
        assert!(contains_pickle(&Value::list([Value::tuple([
            Value::Pickle(Bytes::new())
        ])])));
        assert!(contains_pickle(&Value::dict([(
            Value::from("k"),
            Value::Pickle(Bytes::new())
        )])));
        assert!(!contains_pickle(&Value::dict([(
            Value::from("k"),
            Value::from("v")
        )])));
        let record = pyrpc_proto::Record::new("m:T", pyrpc_proto::RecordKind::Dataclass)
            .field("x", Value::Pickle(Bytes::new()));
        assert!(contains_pickle(&Value::from(record)));
    }

    #[test]
    fn catch_unwind_turns_a_panic_into_an_error() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let fut: crate::CallFuture = Box::pin(async { panic!("boom") });
        // As `run_call` does: a panic while polling is an `Err` with its payload.
        let out = rt.block_on(AssertUnwindSafe(fut).catch_unwind());
        let msg = panic_message(out.expect_err("panicked"));
        assert_eq!(msg, "boom");
    }
}
