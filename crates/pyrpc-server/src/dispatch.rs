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

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use pyrpc_proto::raw::{self, request, response};
use pyrpc_proto::wire;
use pyrpc_proto::{ErrorKind, MethodInfo, RemoteError, Value};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::RemoteShutdown;
use crate::running::RunningCalls;
use crate::server::Shared;

mod call;
mod direct;
mod nonblocking;

use call::*;
pub(crate) use call::{answers_directly, not_started, panic_message, panicked};
pub(crate) use direct::Direct;
pub use direct::{lingering_thread, release_here, serve_next_here};
use nonblocking::*;

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
    /// The connection's read side, which a thread that answered a call may
    /// borrow to wait for the next request (`connection/linger.rs`).
    pub(crate) linger: Arc<crate::connection::Linger>,
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
            let found = conn.running.cancel_direct(c.id);
            tracing::debug!(peer = %conn.peer, call = c.id, found = found.is_some(), "cancel");
            if let Some(Some(direct)) = found {
                // A call its callee answers directly has no task to answer
                // the cancel: it is answered here.
                direct.cancelled().await;
            }
            reply(conn, ack(id)).await;
        }
        request::Kind::Shutdown(_) => {
            // Queue the Ack before shutting down: the writer sends everything
            // queued before the connection closes.
            reply(conn, ack(id)).await;
            shared.begin_shutdown();
        }
        // `goes_direct`'s rule, with the method looked up once.
        request::Kind::Call(call) if runs_inline(shared, &call.method) => {
            let (method, body) = CallBody::split(call, received);
            let resp = call_response(shared, conn, id, &method, body, None).await;
            reply(conn, resp).await;
            drop(permit);
        }
        request::Kind::Call(call) if answers_directly(shared) => {
            direct::direct_call(shared, conn, id, call, received, permit).await
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
pub(crate) const DECODED_FLOOR: u64 = pyrpc_proto::cost::DECODED_FLOOR;

/// Refuses a request frame whose values would take more memory decoded than
/// `max(4 x frame, DECODED_FLOOR)` (a 64 MB frame of empty values is 33M
/// values, gigabytes decoded), before anything is decoded.
pub(crate) fn decoded_size_check(body: &[u8]) -> Result<(), String> {
    // The estimate is at most `DECODED_VALUE_BYTES` per byte of the frame
    // (each value takes a byte or more: a packed int of one byte is one
    // value; array bytes count once), so a frame below a 1/88 of the floor
    // (3 MiB) cannot go over it and is not scanned.
    let most = (body.len() as u64).saturating_mul(pyrpc_proto::cost::DECODED_VALUE_BYTES);
    if most <= DECODED_FLOOR {
        return Ok(());
    }
    let cost = pyrpc_proto::cost::client_frame_cost(body);
    let values = cost.values;
    let estimate = cost.decoded_bytes();
    over_budget(body.len(), values, estimate)
}

/// [`decoded_size_check`] for a callee that charges each value against the
/// budget as it decodes it (`Callee::bounds_decoded_size`): only the
/// call's arguments are counted here (the server holds one entry for each
/// before the callee sees them), not what they hold (decision 0019).
pub(crate) fn arguments_check(body: &[u8]) -> Result<(), String> {
    let most = (body.len() as u64).saturating_mul(pyrpc_proto::cost::DECODED_VALUE_BYTES);
    if most <= DECODED_FLOOR {
        return Ok(());
    }
    let values = pyrpc_proto::cost::client_frame_arguments(body);
    over_budget(
        body.len(),
        values,
        values.saturating_mul(pyrpc_proto::cost::DECODED_VALUE_BYTES),
    )
}

/// The refusal of a frame of `len` bytes whose `values` take `estimate`
/// bytes decoded, if that is over its budget.
fn over_budget(len: usize, values: u64, estimate: u64) -> Result<(), String> {
    let budget = pyrpc_proto::cost::decoded_budget(len as u64);
    if estimate > budget {
        return Err(format!(
            "its {values} values would take about {} MiB decoded, more than the \
             server's budget of {} MiB for a {} MiB frame",
            estimate >> 20,
            budget >> 20,
            len >> 20
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
    response(id, response::Kind::Value(raw::EncodedValue::from_value(v)))
}

/// An error response.
pub(crate) fn error(id: u64, e: RemoteError) -> raw::Response {
    response(id, response::Kind::Error(e.into()))
}

#[cfg(test)]
mod tests;
