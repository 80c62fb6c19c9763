//! The requests of a connection awaiting their replies: [`Shared`] (the
//! waiters by request id, the queued `Cancel`s and `Credit`s), the reader
//! task that hands each response to its waiter, and [`PendingReply`], what a
//! caller waits on.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use pyrpc_proto::raw::{self, response, server_frame, ServerFrame};
use tokio::io::AsyncRead;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::time::Instant;
use tokio_util::codec::FramedRead;
use tracing::{debug, trace};

use super::*;
use crate::error::{CallError, ProtocolError, TimeoutStage};

// ===== impl Shared =====

/// The state shared by the callers and the reader task.
pub(super) struct Shared {
    /// Callers waiting for replies, by request id.
    ///
    /// A `std` mutex around a `HashMap` rather than a `DashMap`: it is held
    /// for a map operation only, never across an `.await`, and closing the
    /// connection must atomically drain the map *and* refuse new entries, or
    /// a caller registering during the drain would wait forever.
    pub(super) pending: Mutex<Pending>,
    /// False once the connection broke; read without the lock on every call.
    pub(super) open: AtomicBool,
    /// Request ids of calls whose callers went away before the reply (their
    /// [`PendingReply`] was dropped), for the [`cancel_loop`] to cancel.
    /// Bounded by [`MAX_QUEUED_CANCELS`]: past it, a call is left to finish.
    pub(super) cancels: Mutex<Vec<u64>>,
    /// `Credit`s for streamed replies, (request id, items), for the
    /// [`cancel_loop`] to send. One entry per stream at most: a new grant
    /// for the same id adds to it.
    pub(super) credits: Mutex<Vec<(u64, u32)>>,
    /// Wakes the [`cancel_loop`]: cancels or credits queued, or the
    /// connection broke.
    pub(super) cancel_wake: Notify,
}

/// The most `Cancel`s waiting to be sent on one connection.
pub(super) const MAX_QUEUED_CANCELS: usize = 1024;

/// How long sending a `Cancel` may wait for the connection's writer.
pub(super) const CANCEL_SEND_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Default)]
pub(super) struct Pending {
    pub(super) waiters: HashMap<u64, oneshot::Sender<Reply>>,
    /// The item channels of calls that take a streamed reply, by request id.
    /// Unbounded, but bounded by what the client granted: a server sending
    /// more items than the window and its credits has its stream cut.
    pub(super) items: HashMap<u64, ItemSink>,
    /// Set when the connection broke; no new waiter is accepted after that.
    pub(super) broken: Option<Broken>,
}

/// Where the items of one streamed reply go, and how many more the server
/// may send (`Call.stream_window` plus the credits queued since, less the
/// items received).
pub(super) struct ItemSink {
    tx: mpsc::UnboundedSender<Bytes>,
    allowed: u64,
}

impl Shared {
    pub(super) fn new() -> Self {
        Shared {
            pending: Mutex::new(Pending::default()),
            open: AtomicBool::new(true),
            cancels: Mutex::new(Vec::new()),
            credits: Mutex::new(Vec::new()),
            cancel_wake: Notify::new(),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Pending> {
        // Nothing panics while holding the lock, so a poisoned map is intact.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a waiter for `id`, unless the connection is broken.
    pub(super) fn register(&self, id: u64) -> Result<oneshot::Receiver<Reply>, Broken> {
        let mut pending = self.lock();
        if let Some(why) = &pending.broken {
            return Err(why.clone());
        }
        let (tx, rx) = oneshot::channel();
        pending.waiters.insert(id, tx);
        Ok(rx)
    }

    /// Adds a waiter for `id` that also takes streamed items, unless the
    /// connection is broken.
    pub(super) fn register_stream(
        &self,
        id: u64,
        window: u32,
    ) -> Result<(oneshot::Receiver<Reply>, mpsc::UnboundedReceiver<Bytes>), Broken> {
        let mut pending = self.lock();
        if let Some(why) = &pending.broken {
            return Err(why.clone());
        }
        let (tx, rx) = oneshot::channel();
        pending.waiters.insert(id, tx);
        let (itx, irx) = mpsc::unbounded_channel();
        pending.items.insert(
            id,
            ItemSink {
                tx: itx,
                allowed: u64::from(window),
            },
        );
        Ok((rx, irx))
    }

    /// Hands a stream item to the call waiting for it; an item nobody
    /// waits for is dropped. An item past what the client granted ends that
    /// call with a `PROTOCOL` error after the items before it, and cancels
    /// it on the server: the client never holds more than it granted.
    pub(super) fn item(&self, item: raw::StreamItem) {
        let id = item.id;
        let mut pending = self.lock();
        let Some(sink) = pending.items.get_mut(&id) else {
            trace!(id, "stream item nobody waits for; ignored");
            return;
        };
        if sink.allowed > 0 {
            sink.allowed -= 1;
            let _ = sink.tx.send(item.value.into_bytes());
            return;
        }
        pending.items.remove(&id);
        let waiter = pending.waiters.remove(&id);
        drop(pending);
        debug!(
            id,
            "the server sent more stream items than granted; stream cut"
        );
        if let Some(tx) = waiter {
            let e = pyrpc_proto::RemoteError::new(
                pyrpc_proto::ErrorKind::Protocol,
                "the server sent more stream items than the client granted \
                 (Call.stream_window and its Credits); the stream was cut and the call cancelled",
            );
            let _ = tx.send(Ok(Some(response::Kind::Error(e.into()))));
        }
        self.queue_cancel(id);
    }

    /// Queues a `Credit` of `items` for the stream of request `id`.
    pub(crate) fn queue_credit(&self, id: u64, items: u32) {
        if !self.open.load(Ordering::Acquire) {
            return;
        }
        // The server may send these as soon as it sees them.
        if let Some(sink) = self.lock().items.get_mut(&id) {
            sink.allowed = sink.allowed.saturating_add(u64::from(items));
        }
        let mut credits = self.credits.lock().unwrap_or_else(PoisonError::into_inner);
        match credits.iter_mut().find(|(i, _)| *i == id) {
            Some((_, n)) => *n = n.saturating_add(items),
            None => credits.push((id, items)),
        }
        drop(credits);
        self.cancel_wake.notify_one();
    }

    /// Hands a response to its waiter; a response nobody waits for (its
    /// caller timed out or went away) is dropped.
    pub(super) fn complete(&self, id: u64, outcome: Option<response::Kind>) {
        let waiter = {
            let mut pending = self.lock();
            // The response ends the stream: items came before it.
            pending.items.remove(&id);
            pending.waiters.remove(&id)
        };
        match waiter {
            // The caller may have given up just now; that is fine.
            Some(tx) => drop(tx.send(Ok(outcome))),
            None => trace!(id, "reply for a request nobody waits for; ignored"),
        }
    }

    /// Forgets the waiter of `id`; true if it was still waiting (no reply
    /// had come).
    pub(super) fn remove(&self, id: u64) -> bool {
        let mut pending = self.lock();
        pending.items.remove(&id);
        pending.waiters.remove(&id).is_some()
    }

    /// Queues a `Cancel` of request `id` for the [`cancel_loop`].
    pub(super) fn queue_cancel(&self, id: u64) {
        if !self.open.load(Ordering::Acquire) {
            return;
        }
        let mut cancels = self.cancels.lock().unwrap_or_else(PoisonError::into_inner);
        if cancels.len() < MAX_QUEUED_CANCELS {
            cancels.push(id);
            drop(cancels);
            self.cancel_wake.notify_one();
        }
    }

    pub(super) fn len(&self) -> usize {
        self.lock().waiters.len()
    }

    /// Marks the connection broken and fails every waiter with `why`. The
    /// first reason sticks.
    pub(super) fn fail_all(&self, why: Broken) {
        self.open.store(false, Ordering::Release);
        let waiters = {
            let mut pending = self.lock();
            let why = pending.broken.get_or_insert(why).clone();
            pending.items.clear();
            std::mem::take(&mut pending.waiters)
                .into_values()
                .map(move |tx| (tx, why.clone()))
                .collect::<Vec<_>>()
        };
        for (tx, why) in waiters {
            let _ = tx.send(Err(why));
        }
        self.cancel_wake.notify_one();
    }
}

/// Reads responses until the connection ends, then fails every waiter.
pub(super) async fn read_loop<R: AsyncRead + Unpin>(
    mut reader: FramedRead<R, ClientCodec>,
    shared: Arc<Shared>,
) {
    let why = loop {
        match reader.next().await {
            Some(Ok(ServerFrame {
                kind: Some(server_frame::Kind::Response(r)),
            })) => {
                trace!(id = r.id, "response received");
                shared.complete(r.id, r.kind);
            }
            Some(Ok(ServerFrame {
                kind: Some(server_frame::Kind::Item(item)),
            })) => shared.item(item),
            Some(Ok(ServerFrame {
                kind: Some(server_frame::Kind::Hello(_)),
            })) => break Broken::Protocol(ProtocolError::SecondHello),
            Some(Ok(ServerFrame { kind: None })) => {
                break Broken::Protocol(ProtocolError::UnknownFrame)
            }
            Some(Err(e)) => break Broken::from_frame(e),
            None => break Broken::Closed,
        }
    };
    debug!(reason = ?why, "connection to the server ended");
    shared.fail_all(why);
}

/// The connection's shared state, as a streamed reply holds it: enough to
/// queue its `Credit`s and `Cancel`, without keeping the connection open.
#[derive(Clone)]
pub(crate) struct SharedHandle(pub(super) Arc<Shared>);

impl SharedHandle {
    /// Queues a `Credit` (see [`Shared::queue_credit`]).
    pub(crate) fn queue_credit(&self, id: u64, items: u32) {
        self.0.queue_credit(id, items);
    }

    /// Queues a `Cancel` of request `id`.
    pub(crate) fn queue_cancel(&self, id: u64) {
        self.0.queue_cancel(id);
    }
}

// ===== impl PendingReply =====

/// A request that was sent and awaits its answer. Dropping it forgets the
/// request: a late answer is ignored, and a `Call` still unanswered is
/// cancelled on the server (its caller went away: an asyncio task
/// cancelled, Ctrl-C, a dropped future).
pub(crate) struct PendingReply {
    pub(super) shared: Arc<Shared>,
    pub(crate) id: u64,
    pub(super) rx: oneshot::Receiver<Reply>,
    /// A `Call`: tell the server when dropped unanswered. Cleared when
    /// [`PendingReply::wait`] times out, whose caller cancels it itself.
    pub(super) cancel_on_drop: bool,
}

impl PendingReply {
    /// Waits for the answer until `deadline` (`None`: as long as it takes).
    ///
    /// # Errors
    ///
    /// `Timeout { Reply }` when the deadline passes, [`CallError::Protocol`]
    /// for a response with no outcome, or why the connection broke.
    pub(crate) async fn wait(
        mut self,
        deadline: Option<Instant>,
    ) -> Result<response::Kind, CallError> {
        let got = match deadline {
            Some(d) => match tokio::time::timeout_at(d, &mut self.rx).await {
                Ok(got) => got,
                Err(_) => {
                    trace!(id = self.id, "no reply in time");
                    // The caller cancels it with `Connection::cancel`.
                    self.cancel_on_drop = false;
                    return Err(CallError::Timeout {
                        stage: TimeoutStage::Reply,
                    });
                }
            },
            None => (&mut self.rx).await,
        };
        match got {
            Ok(Ok(Some(kind))) => Ok(kind),
            Ok(Ok(None)) => Err(ProtocolError::NoOutcome.into()),
            Ok(Err(why)) => Err(why.into()),
            // The connection went away without a word for us.
            Err(_) => Err(CallError::Closed),
        }
    }
}

impl Drop for PendingReply {
    fn drop(&mut self) {
        if self.shared.remove(self.id) && self.cancel_on_drop {
            self.shared.queue_cancel(self.id);
        }
    }
}
