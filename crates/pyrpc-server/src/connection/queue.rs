//! [`ReplyQueue`]: the replies of one connection on their way to its
//! writer, bounded in count and in bytes.

use std::sync::Arc;

use prost::Message;
use pyrpc_proto::raw::{self, server_frame};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

/// The replies of one connection waiting for its writer: bounded in count
/// (the channel) and in bytes (`room`, one permit per byte of encoded reply).
#[derive(Clone)]
pub(crate) struct ReplyQueue {
    tx: mpsc::Sender<Queued>,
    room: Arc<Semaphore>,
    /// The most permits one reply takes: a reply larger than the whole
    /// queue takes all of it and goes alone.
    max: u32,
}

/// A reply and the room it takes in the queue until written.
pub(super) struct Queued {
    pub(super) frame: raw::ServerFrame,
    /// `frame.encoded_len()`, computed once (for the room it takes).
    pub(super) len: usize,
    pub(super) room: OwnedSemaphorePermit,
}

/// A [`ReplyQueue`] that does not keep the writer alive (see
/// [`ReplyQueue::downgrade`]).
#[derive(Clone)]
pub(crate) struct WeakReplyQueue {
    tx: mpsc::WeakSender<Queued>,
    room: Arc<Semaphore>,
    max: u32,
}

impl WeakReplyQueue {
    /// The queue, while the connection's writer still runs.
    pub(crate) fn upgrade(&self) -> Option<ReplyQueue> {
        Some(ReplyQueue {
            tx: self.tx.upgrade()?,
            room: Arc::clone(&self.room),
            max: self.max,
        })
    }
}

/// Why [`ReplyQueue::try_send`] did not queue a reply.
pub(crate) enum TrySend {
    /// No room now: the reply's frame, to queue with
    /// [`ReplyQueue::send_frame`].
    Full(Box<raw::ServerFrame>),
    /// The connection is gone.
    Closed,
}

/// The connection is gone; the reply was dropped.
#[derive(Debug)]
pub(crate) struct QueueClosed;

impl ReplyQueue {
    pub(super) fn new(count: usize, bytes: usize) -> (Self, mpsc::Receiver<Queued>) {
        let max = bytes.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        let (tx, rx) = mpsc::channel(count.max(1));
        let queue = ReplyQueue {
            tx,
            room: Arc::new(Semaphore::new(max)),
            max: u32::try_from(max).unwrap_or(u32::MAX),
        };
        (queue, rx)
    }

    pub(super) fn room(&self) -> Arc<Semaphore> {
        Arc::clone(&self.room)
    }

    /// Queues a reply, waiting while the queue is full.
    ///
    /// # Errors
    ///
    /// [`QueueClosed`] when the connection is gone.
    pub(crate) async fn send(&self, resp: raw::Response) -> Result<(), QueueClosed> {
        self.send_kind(server_frame::Kind::Response(resp)).await
    }

    /// Queues one item of a streamed reply, as [`ReplyQueue::send`].
    ///
    /// # Errors
    ///
    /// [`QueueClosed`] when the connection is gone.
    pub(crate) async fn send_item(&self, item: raw::StreamItem) -> Result<(), QueueClosed> {
        self.send_kind(server_frame::Kind::Item(item)).await
    }

    async fn send_kind(&self, resp: server_frame::Kind) -> Result<(), QueueClosed> {
        let frame = raw::ServerFrame { kind: Some(resp) };
        // Computed once: the writer encodes with it.
        let len = frame.encoded_len();
        let permits = u32::try_from(len).unwrap_or(u32::MAX);
        let room = Arc::clone(&self.room)
            .acquire_many_owned(permits.clamp(1, self.max))
            .await
            .map_err(|_| QueueClosed)?;
        self.tx
            .send(Queued { frame, len, room })
            .await
            .map_err(|_| QueueClosed)
    }

    /// Queues a reply at once, from any thread, when the queue has room for
    /// it; gives it back when the queue is full (the caller then waits with
    /// [`ReplyQueue::send`] on a task).
    ///
    /// # Errors
    ///
    /// [`TrySend::Full`] with the reply, or [`TrySend::Closed`] when the
    /// connection is gone.
    pub(crate) fn try_send(&self, resp: raw::Response) -> Result<(), TrySend> {
        let frame = raw::ServerFrame {
            kind: Some(server_frame::Kind::Response(resp)),
        };
        let len = frame.encoded_len();
        let permits = u32::try_from(len).unwrap_or(u32::MAX).clamp(1, self.max);
        let room = match Arc::clone(&self.room).try_acquire_many_owned(permits) {
            Ok(room) => room,
            Err(tokio::sync::TryAcquireError::Closed) => return Err(TrySend::Closed),
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                return Err(TrySend::Full(Box::new(frame)))
            }
        };
        match self.tx.try_send(Queued { frame, len, room }) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(q)) => Err(TrySend::Full(Box::new(q.frame))),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(TrySend::Closed),
        }
    }

    /// Queues a reply frame given back by [`ReplyQueue::try_send`], waiting
    /// while the queue is full.
    ///
    /// # Errors
    ///
    /// [`QueueClosed`] when the connection is gone.
    pub(crate) async fn send_frame(&self, frame: Box<raw::ServerFrame>) -> Result<(), QueueClosed> {
        match frame.kind {
            Some(kind) => self.send_kind(kind).await,
            None => Ok(()),
        }
    }

    /// A handle that does not keep the connection's writer alive: a reply
    /// queued through it after the connection stopped reading is dropped.
    pub(crate) fn downgrade(&self) -> WeakReplyQueue {
        WeakReplyQueue {
            tx: self.tx.downgrade(),
            room: Arc::clone(&self.room),
            max: self.max,
        }
    }

    /// Waits until the queue has room (or the connection is gone).
    pub(super) async fn wait_for_room(&self) {
        // Fair: this waits behind replies already waiting for room.
        drop(self.room.acquire().await);
    }
}
