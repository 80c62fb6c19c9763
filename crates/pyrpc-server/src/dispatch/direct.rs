//! Calls answered directly by their callee ([`Callee::answers_directly`]:
//! the Python binding): the connection's reader hands the call to the
//! callee, and the thread that ran it checks the outcome, encodes the reply
//! and writes it to the socket itself when no one else is writing (the
//! connection's `SharedWriter`). No task of the server's sits between the
//! reader and the callee's thread, or between that thread and the socket:
//! one hand-off on the way in, none on the way out while the socket has
//! room (decision 0071).
//!
//! Whoever answers first takes the call's [`Held`] (its in-flight permit,
//! its registration, its place among the running calls): the callee's
//! `done`, a `Cancel` from the caller (answered by the reader), or the
//! deadline (a watcher task, only for a call that has one). The others then
//! find nothing to answer. A streamed reply is pumped by a task of its own,
//! as a spawned call's is.
//!
//! [`Callee::answers_directly`]: crate::Callee::answers_directly

use std::cell::Cell;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, PoisonError};

use pyrpc_proto::raw::{self, response};
use pyrpc_proto::wire;
use pyrpc_proto::{ErrorKind, RemoteError, Value};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::task_tracker::TaskTrackerToken;

use super::call::{
    answer, check_result, count, goes_direct, not_started, panic_message, panicked, prepare,
    sleep_until_some, stream_reply, CallBody,
};
use super::{error, reply, response as make_response, ConnCtx};
use crate::callee::{CallContext, CallDone};
use crate::connection::{Linger, ReplyQueue, TrySend, WeakReplyQueue};
use crate::running::{Registration, RunningCalls};
use crate::server::Shared;
use crate::stream::{StreamSlot, ValueStream};

thread_local! {
    /// This thread waits for the next request of the connection whose call
    /// it answered ([`lingering_thread`]).
    static LINGERS: Cell<bool> = const { Cell::new(false) };
    /// The call this thread answered last, for [`serve_next_here`].
    static NEXT: Cell<Option<Arc<Direct>>> = const { Cell::new(None) };
    /// The connection whose call this thread read and left unarmed
    /// (`Linger::give_back_unarmed`), armed when this thread turns to
    /// other work ([`release_here`]).
    static UNARMED: Cell<Option<Arc<Linger>>> = const { Cell::new(None) };
}

/// Marks the calling thread as one that calls [`serve_next_here`] after
/// each call it answers through [`CallDone`]: a thread of the callee's own
/// pool that runs one call at a time (the Python binding's workers).
///
/// # Examples
///
/// ```
/// // A worker thread of a callee that answers directly:
/// std::thread::spawn(|| {
///     pyrpc_server::lingering_thread();
///     // ... run a call, `done.finish(outcome)`, then:
///     let started = pyrpc_server::serve_next_here();
///     assert!(!started, "no call was answered on this thread");
/// })
/// .join()
/// .unwrap();
/// ```
pub fn lingering_thread() {
    LINGERS.set(true);
}

/// After a call answered on this thread ([`CallDone::finish`]): waits a
/// few milliseconds, blocking, for the next request of the same
/// connection, and when it is a call for the callee, hands it to
/// [`Callee::call_then`] from this thread (the callee may then run it here,
/// so that a caller making one call after another wakes one thread per
/// call). Returns true when a call was handed over. Does nothing (false)
/// unless [`lingering_thread`] was called on this thread, the connection is
/// a plain TCP or Unix socket, and no other call of it runs.
///
/// [`Callee::call_then`]: crate::Callee::call_then
pub fn serve_next_here() -> bool {
    let unarmed = UNARMED.take();
    let served = match NEXT.take() {
        Some(direct) => direct.serve_next(),
        None => false,
    };
    if let Some(linger) = unarmed {
        // The call read last ended here; its read side is armed unless
        // this thread took it again (waited for the next request).
        let again = UNARMED.take();
        if !again.as_ref().is_some_and(|l| Arc::ptr_eq(l, &linger)) {
            linger.arm();
        }
        UNARMED.set(again);
    }
    served
}

/// Arms the read side of the connection whose call this thread read
/// itself and ran ([`serve_next_here`] returned true), if it is still
/// unarmed: call it when the thread turns to other work than that
/// connection's next request. (A call left unarmed is armed anyway once it
/// has run for a moment, by a watcher thread; this only makes it sooner.)
///
/// # Examples
///
/// ```
/// std::thread::spawn(|| {
///     pyrpc_server::lingering_thread();
///     // ... after a job: serve_next_here(), and when no job came of it:
///     pyrpc_server::release_here();
/// })
/// .join()
/// .unwrap();
/// ```
pub fn release_here() {
    if let Some(linger) = UNARMED.take() {
        linger.arm();
    }
}

/// One call answered directly by its callee.
pub(crate) struct Direct {
    shared: Arc<Shared>,
    /// The connection's reply queue, without keeping its writer alive: a
    /// call that ends after its connection stopped reading is not answered
    /// (a spawned call is dropped then).
    queue: WeakReplyQueue,
    peer: Arc<str>,
    stop: CancellationToken,
    running: Arc<RunningCalls>,
    authenticated: bool,
    /// The connection's read side, for the next request.
    linger: Arc<Linger>,
    /// The server's runtime, for what cannot be done on the callee's
    /// thread (a full reply queue, a streamed reply).
    handle: tokio::runtime::Handle,
    id: u64,
    method: String,
    deadline: Option<Instant>,
    received: Instant,
    window: u32,
    slot: Option<StreamSlot>,
    /// The call's registration token: cancelled by `Cancel`, the deadline
    /// or the connection's close.
    cancel: CancellationToken,
    /// Taken by whoever answers the call first.
    held: Mutex<Option<Held>>,
    /// Cancelled once the call is answered, for a call with a deadline: it
    /// ends the deadline's watcher.
    answered: Option<CancellationToken>,
}

/// What a running call holds until it is answered.
struct Held {
    shared: Arc<Shared>,
    /// The connection's in-flight permit, given back once the reply is
    /// queued (or, for a stream, once the stream starts).
    permit: Option<OwnedSemaphorePermit>,
    registration: Registration,
    /// Counts the call among the server's running calls, so that a
    /// graceful shutdown waits for it.
    _tracked: TaskTrackerToken,
    /// The call has left the server's in-flight count.
    left: bool,
}

impl Held {
    /// Takes the call out of the in-flight count, once. Done before its
    /// reply is queued, so that a caller who reads the stats after the
    /// reply never counts it as running.
    fn leave(&mut self) {
        if !std::mem::replace(&mut self.left, true) {
            self.shared.stats.leave();
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.leave();
    }
}

/// Hands a call to a callee that answers directly. The caller has checked
/// that the server is not `synchronous` and runs no hooks.
pub(super) async fn direct_call(
    shared: &Arc<Shared>,
    conn: &ConnCtx,
    id: u64,
    call: raw::Call,
    received: Instant,
    permit: OwnedSemaphorePermit,
) {
    if let Some(resp) = start(shared, conn, id, call, received, permit) {
        reply(conn, resp).await;
    }
}

/// [`direct_call`] up to its answer: the error reply when the call could
/// not be handed to the callee, `None` when it was.
fn start(
    shared: &Arc<Shared>,
    conn: &ConnCtx,
    id: u64,
    call: raw::Call,
    received: Instant,
    permit: OwnedSemaphorePermit,
) -> Option<raw::Response> {
    let (method, body) = CallBody::split(call, received);
    let (deadline, window) = (body.deadline, body.window);
    let prepared = prepare(shared, &method, body).and_then(|p| match p.deadline {
        Some(d) if Instant::now() >= d => Err(not_started(&method)),
        _ => Ok(p),
    });
    let args = match prepared {
        Ok(p) => p.args,
        Err(e) => {
            count(shared, &method, received, true);
            return Some(error(id, e));
        }
    };
    let slot = (window > 0).then(StreamSlot::default);
    let direct = Arc::new_cyclic(|me| {
        let registration = conn
            .running
            .register_answered(id, &conn.stop, Some(me.clone()));
        shared.stats.enter_detached();
        Direct {
            shared: Arc::clone(shared),
            queue: conn.tx.downgrade(),
            peer: Arc::clone(&conn.peer),
            stop: conn.stop.clone(),
            running: Arc::clone(&conn.running),
            authenticated: conn.authenticated,
            linger: Arc::clone(&conn.linger),
            handle: tokio::runtime::Handle::current(),
            id,
            method,
            deadline,
            received,
            window,
            slot: slot.clone(),
            cancel: registration.token().clone(),
            held: Mutex::new(Some(Held {
                shared: Arc::clone(shared),
                permit: Some(permit),
                registration,
                _tracked: shared.calls.token(),
                left: false,
            })),
            answered: deadline.map(|_| CancellationToken::new()),
        }
    });
    if let (Some(deadline), Some(answered)) = (deadline, direct.answered.clone()) {
        let watched = Arc::clone(&direct);
        shared.calls.spawn(async move {
            tokio::select! {
                _ = answered.cancelled() => {}
                _ = tokio::time::sleep_until(deadline) => watched.expire().await,
            }
        });
    }
    let ctx = CallContext::new(
        conn.peer.to_string(),
        deadline.map(Instant::into_std),
        false,
        direct.cancel.clone(),
        slot,
    );
    let answering = Arc::clone(&direct);
    let done = CallDone::new(move |outcome| answering.finish(outcome));
    let callee = &shared.callee;
    let method = direct.method.as_str();
    if let Err(p) = std::panic::catch_unwind(AssertUnwindSafe(|| {
        callee.call_then(ctx, method, args, done)
    })) {
        // `done` was dropped on the way out, answering the call (see
        // `CallDone`'s drop); the message goes to the log.
        let e = panicked(method, panic_message(p));
        tracing::warn!(error = %e.message, "callee panicked");
    }
    None
}

impl Direct {
    /// The call's [`Held`], for whoever answers it first; `None` after.
    fn claim(&self) -> Option<Held> {
        let held = self
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if held.is_some() {
            if let Some(answered) = &self.answered {
                answered.cancel();
            }
        }
        held
    }

    /// The callee's outcome (on the callee's thread): checked, encoded and
    /// queued for the writer, or its stream started.
    fn finish(self: &Arc<Self>, outcome: Result<Value, RemoteError>) {
        let Some(held) = self.claim() else {
            return;
        };
        if self.stop.is_cancelled() {
            // The connection closed: nobody to answer.
            return;
        }
        if outcome.is_ok() {
            if let Some(stream) = self.slot.as_ref().and_then(StreamSlot::take) {
                return self.stream(held, stream);
            }
        }
        let outcome = outcome.and_then(|v| check_result(&self.shared, &self.method, v));
        let resp = answer(
            &self.shared,
            self.id,
            &self.method,
            self.deadline,
            self.received,
            outcome,
        );
        self.send(resp, held);
        if LINGERS.get() {
            NEXT.set(Some(Arc::clone(self)));
        }
    }

    /// Waits on this thread for the connection's next request (see
    /// `connection/linger.rs`) and hands it to the callee from here; true
    /// when a call was handed over.
    fn serve_next(&self) -> bool {
        let linger = &self.linger;
        if self.stop.is_cancelled() || !linger.is_quiet() {
            return false;
        }
        let Some(tx) = self.queue.upgrade() else {
            return false;
        };
        if !tx.has_room() {
            return false;
        }
        let _entered = self.handle.enter();
        let Some((reader, read)) = linger.wait_next(&self.stop) else {
            return false;
        };
        let received = Instant::now();
        let req = match read {
            (
                Ok(Some(raw::ClientFrame {
                    kind: Some(raw::client_frame::Kind::Request(req)),
                })),
                _,
            ) if self.may_start(&req) => req,
            other => {
                linger.give_back(reader, Some(other));
                return false;
            }
        };
        let Ok(permit) = Arc::clone(linger.permits()).try_acquire_owned() else {
            let frame = raw::ClientFrame {
                kind: Some(raw::client_frame::Kind::Request(req)),
            };
            linger.give_back(reader, Some((Ok(Some(frame)), None)));
            return false;
        };
        let Some(raw::request::Kind::Call(call)) = req.kind else {
            linger.give_back(reader, None);
            return false;
        };
        // Back unarmed while the call runs on this thread: nothing watches
        // the socket for a short call (no registration to make and drop);
        // one that runs longer than a moment is armed by the re-arm watcher,
        // so its `Cancel` is still seen (`connection/linger.rs`).
        linger.give_back_unarmed(reader);
        if let Some(old) = UNARMED.replace(Some(Arc::clone(linger))) {
            old.arm();
        }
        tracing::trace!(peer = %self.peer, id = req.id, "request (read by the answering thread)");
        let conn = self.conn(tx);
        if let Some(resp) = start(&self.shared, &conn, req.id, call, received, permit) {
            // Not started (answered with an error): nothing runs here.
            release_here();
            if let Err(TrySend::Full(frame)) = conn.tx.try_send(resp) {
                let tx = conn.tx.clone();
                self.handle.spawn(async move {
                    let _ = tx.send_frame(frame).await;
                });
            }
        }
        true
    }

    /// A request this thread may start itself: a call that `dispatch::handle`
    /// would hand to the callee directly.
    fn may_start(&self, req: &raw::Request) -> bool {
        match &req.kind {
            Some(raw::request::Kind::Call(c)) => {
                !self.shared.shutdown.is_cancelled() && goes_direct(&self.shared, &c.method)
            }
            _ => false,
        }
    }

    /// Writes `resp` from this thread when the queue has room (what the
    /// socket does not take now goes on from a task), else sends it from a
    /// task that waits for room; `held` goes once it is queued.
    fn send(&self, resp: raw::Response, mut held: Held) {
        let Some(queue) = self.queue.upgrade() else {
            return;
        };
        held.leave();
        match queue.try_send(resp) {
            Ok(()) | Err(TrySend::Closed) => drop(held),
            Err(TrySend::Full(frame)) => {
                self.handle.spawn(async move {
                    let _ = queue.send_frame(frame).await;
                    drop(held);
                });
            }
        }
    }

    /// The caller cancelled the call (its token is cancelled already):
    /// answered with `CANCELLED` unless it was answered already.
    pub(super) async fn cancelled(&self) {
        let Some(held) = self.claim() else {
            return;
        };
        self.answer_now(
            held,
            RemoteError::new(ErrorKind::Cancelled, "the call was cancelled by its caller"),
        )
        .await;
    }

    /// The call's deadline passed: stopped as if cancelled, and answered
    /// with `DEADLINE_EXCEEDED` unless it was answered already.
    async fn expire(&self) {
        let Some(held) = self.claim() else {
            return;
        };
        // Work the callee left behind learns of it through its context.
        self.cancel.cancel();
        let e = RemoteError::new(
            ErrorKind::DeadlineExceeded,
            format!("{}() was stopped at the caller's timeout", self.method),
        );
        self.answer_now(held, e).await;
    }

    async fn answer_now(&self, mut held: Held, e: RemoteError) {
        if self.stop.is_cancelled() {
            return;
        }
        count(&self.shared, &self.method, self.received, true);
        held.leave();
        if let Some(queue) = self.queue.upgrade() {
            let _ = queue.send(error(self.id, e)).await;
        }
        drop(held);
    }

    /// The connection as the stream pump wants it, while it is open.
    fn conn(&self, tx: ReplyQueue) -> ConnCtx {
        ConnCtx {
            peer: Arc::clone(&self.peer),
            tx,
            stop: self.stop.clone(),
            running: Arc::clone(&self.running),
            authenticated: self.authenticated,
            linger: Arc::clone(&self.linger),
        }
    }

    /// Sends a streamed reply from a task of its own, with the deadline and
    /// cancellation of a spawned call.
    fn stream(self: &Arc<Self>, mut held: Held, stream: ValueStream) {
        let Some(tx) = self.queue.upgrade() else {
            return;
        };
        let conn = self.conn(tx);
        let this = Arc::clone(self);
        self.handle.spawn(async move {
            let (id, method) = (this.id, this.method.as_str());
            let (shared, deadline, received) = (&this.shared, this.deadline, this.received);
            let token = held.registration.token().clone();
            let resp = tokio::select! {
                r = stream_reply(shared, &conn, id, method, stream, this.window, &held.registration, &mut held.permit) => match r {
                    Ok(_) if deadline.is_some_and(|d| Instant::now() > d) => {
                        count(shared, method, received, true);
                        error(id, RemoteError::new(
                            ErrorKind::DeadlineExceeded,
                            format!("{method}() finished its stream after the caller's timeout"),
                        ))
                    }
                    Ok(items) => {
                        count(shared, method, received, false);
                        make_response(id, response::Kind::StreamEnd(wire::StreamEnd { items }))
                    }
                    Err(e) => answer(shared, id, method, deadline, received, Err(e)),
                },
                _ = sleep_until_some(deadline) => {
                    token.cancel();
                    count(shared, method, received, true);
                    error(id, RemoteError::new(
                        ErrorKind::DeadlineExceeded,
                        format!("{method}() was stopped at the caller's timeout"),
                    ))
                }
                _ = token.cancelled() => {
                    if conn.stop.is_cancelled() {
                        return;
                    }
                    count(shared, method, received, true);
                    error(id, RemoteError::new(ErrorKind::Cancelled, "the call was cancelled by its caller"))
                }
            };
            reply(&conn, resp).await;
            drop(held);
        });
    }
}
