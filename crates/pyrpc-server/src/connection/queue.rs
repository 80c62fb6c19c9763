//! [`ReplyQueue`]: how the replies of one connection reach its socket,
//! through the connection's [`SharedWriter`] (decision 0071): whoever
//! answers writes, when no one else is writing; the room of replies queued
//! and not yet written is bounded in bytes.

use std::pin::Pin;
use std::sync::{Arc, Weak};

use prost::Message;
use pyrpc_framing::{SharedWriter, TryReserveError};
use pyrpc_proto::raw::{self, server_frame};
use tokio::io::AsyncWrite;
use tokio::sync::oneshot;

use super::{encode_response, ServerCodec};

/// The write half of any stream, boxed so that [`ReplyQueue`] is not generic.
pub(super) type BoxedWrite = Pin<Box<dyn AsyncWrite + Send>>;

/// The connection's writer.
pub(super) type ReplyWriter = SharedWriter<BoxedWrite, ServerCodec>;

/// A handle on a connection's writer held by its reader and its running
/// calls. The connection ends once the last one is gone and the writer has
/// written everything (see [`Alive`]).
#[derive(Clone)]
pub(crate) struct ReplyQueue {
    writer: Arc<ReplyWriter>,
    alive: Arc<Alive>,
    peer: Arc<str>,
    /// The server's runtime: a reply written from a thread that is no task
    /// of it hands what the socket does not take now to a task there.
    handle: tokio::runtime::Handle,
}

/// Dropped with the last [`ReplyQueue`]: tells `serve` the connection's
/// replies are all queued.
struct Alive {
    _gone: oneshot::Sender<()>,
}

/// A [`ReplyQueue`] that does not keep the connection open (see
/// [`ReplyQueue::downgrade`]).
#[derive(Clone)]
pub(crate) struct WeakReplyQueue {
    writer: Arc<ReplyWriter>,
    alive: Weak<Alive>,
    peer: Arc<str>,
    handle: tokio::runtime::Handle,
}

impl WeakReplyQueue {
    /// The queue, while the connection is still open.
    pub(crate) fn upgrade(&self) -> Option<ReplyQueue> {
        Some(ReplyQueue {
            writer: Arc::clone(&self.writer),
            alive: self.alive.upgrade()?,
            peer: Arc::clone(&self.peer),
            handle: self.handle.clone(),
        })
    }
}

/// Why [`ReplyQueue::try_send`] did not send a reply.
pub(crate) enum TrySend {
    /// No room now: the reply's frame, to send with
    /// [`ReplyQueue::send_frame`].
    Full(Box<raw::ServerFrame>),
    /// The connection is gone.
    Closed,
}

/// The connection is gone; the reply was dropped.
#[derive(Debug)]
pub(crate) struct QueueClosed;

impl ReplyQueue {
    /// A queue on `writer`; the receiver completes once the last clone of
    /// the queue is dropped.
    pub(super) fn new(writer: Arc<ReplyWriter>, peer: Arc<str>) -> (Self, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        let queue = ReplyQueue {
            writer,
            alive: Arc::new(Alive { _gone: tx }),
            peer,
            handle: tokio::runtime::Handle::current(),
        };
        (queue, rx)
    }

    /// Sends a reply, waiting while the queue is full and, when no one else
    /// is writing, while it is written.
    ///
    /// # Errors
    ///
    /// [`QueueClosed`] when the connection is gone.
    pub(crate) async fn send(&self, resp: raw::Response) -> Result<(), QueueClosed> {
        self.send_kind(server_frame::Kind::Response(resp)).await
    }

    /// Sends one item of a streamed reply, as [`ReplyQueue::send`].
    ///
    /// # Errors
    ///
    /// [`QueueClosed`] when the connection is gone.
    pub(crate) async fn send_item(&self, item: raw::StreamItem) -> Result<(), QueueClosed> {
        self.send_kind(server_frame::Kind::Item(item)).await
    }

    async fn send_kind(&self, resp: server_frame::Kind) -> Result<(), QueueClosed> {
        let frame = raw::ServerFrame { kind: Some(resp) };
        // Computed once: the encoder uses it.
        let len = frame.encoded_len();
        let room = self.writer.reserve(len).await.map_err(|_| QueueClosed)?;
        let peer = &self.peer;
        let unsent = self
            .writer
            .send(room, |codec, out| {
                encode_response(codec, frame, len, out, peer)
            })
            .await
            .map_err(|_| QueueClosed)?;
        if let Some(unsent) = unsent {
            unsent.log(peer);
        }
        Ok(())
    }

    /// Sends a reply at once, from any thread, when the queue has room for
    /// it: written by this thread if no one else is writing and the socket
    /// takes it (the rest, if any, by a task); gives it back when the queue
    /// is full (the caller then waits with [`ReplyQueue::send_frame`] on a
    /// task).
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
        let room = match self.writer.try_reserve(len) {
            Ok(room) => room,
            Err(TryReserveError::Full) => return Err(TrySend::Full(Box::new(frame))),
            Err(TryReserveError::Closed(_)) => return Err(TrySend::Closed),
        };
        let peer = &self.peer;
        let unsent = self
            .writer
            .send_now(room, &self.handle, |codec, out| {
                encode_response(codec, frame, len, out, peer)
            })
            .map_err(|_| TrySend::Closed)?;
        if let Some(unsent) = unsent {
            unsent.log(peer);
        }
        Ok(())
    }

    /// Sends a reply frame given back by [`ReplyQueue::try_send`], waiting
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

    /// A handle that does not keep the connection open: a reply sent
    /// through it after the connection stopped reading and its other
    /// replies went out is dropped.
    pub(crate) fn downgrade(&self) -> WeakReplyQueue {
        WeakReplyQueue {
            writer: Arc::clone(&self.writer),
            alive: Arc::downgrade(&self.alive),
            peer: Arc::clone(&self.peer),
            handle: self.handle.clone(),
        }
    }

    /// Waits until the queue has room (or the connection is gone).
    /// True when a reply could be queued now without waiting for room.
    pub(crate) fn has_room(&self) -> bool {
        self.writer.has_room()
    }

    pub(super) async fn wait_for_room(&self) {
        self.writer.wait_for_room().await;
    }
}
