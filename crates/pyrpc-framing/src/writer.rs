//! [`SharedWriter`]: the write half of a connection, written by whichever
//! sender finds it free, shared by the client and the server.
//!
//! A sender encodes its frame into the writer's outbox under a short `std`
//! mutex. If no one is writing, it becomes the writer: it takes the write
//! half and everything queued, writes, and before it lets go takes whatever
//! was queued meanwhile and writes that too. A sender that finds a writer
//! at work leaves its frame for it. So there is at most one writer, no
//! frame is left without one, and frames go out in the order they were
//! queued; under load one write carries many frames.
//!
//! Two ways to write:
//!
//! * [`SharedWriter::send`], from a task: the write is awaited, each step
//!   bounded by the stall timeout.
//! * [`SharedWriter::send_now`], from any thread (a worker thread that is
//!   no task of the runtime): the frame is written at once with
//!   non-blocking writes while the socket takes it; only when the socket is
//!   full is the rest handed to a drain task on the runtime. In the common
//!   case, a reply reaches the socket with no hand-off at all.
//!
//! The room of the outbox is bounded in bytes when asked
//! ([`WriterConfig::room`]): a sender takes room for its frame first
//! ([`SharedWriter::reserve`] waits for it, [`SharedWriter::try_reserve`]
//! does not) and it is given back once the frame is written. A write that
//! fails, makes no progress for the stall timeout, or is cut short by the
//! kill token breaks the writer: queued frames are dropped, waiting senders
//! learn it, and the `broken` token is cancelled.
//!
//! A writer dropped mid-write (its future dropped) gives the write half
//! back, with the bytes not yet written in front of what is queued, so a
//! frame is never cut in half on the wire.
//!
//! # Examples
//!
//! ```
//! use pyrpc_framing::{Codec, SharedWriter, WriterConfig};
//! use pyrpc_proto::wire::{Ping, Request, request};
//! use tokio::io::AsyncReadExt;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let (near, mut far) = tokio::io::duplex(1024);
//! let codec: Codec<Request, Request> = Codec::new();
//! let writer = SharedWriter::new(near, codec, WriterConfig::default());
//! let req = Request { id: 7, kind: Some(request::Kind::Ping(Ping {})) };
//! let room = writer.reserve(0).await.unwrap();
//! writer.send(room, |codec, out| codec.encode_chunks(&req, out)).await.unwrap().unwrap();
//! let mut got = [0u8; 8];
//! far.read_exact(&mut got).await.unwrap();
//! // The length, then `id: 7` and an empty `ping` (field 6).
//! assert_eq!(got, [0, 0, 0, 4, 8, 7, 50, 0]);
//! # });
//! ```

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, Semaphore, TryAcquireError};
use tokio_util::sync::CancellationToken;

use crate::FrameChunks;

/// A small-piece buffer grown past this (by a large frame) is given back
/// once written.
const WRITE_BUF_KEEP: usize = 1024 * 1024;

/// How a [`SharedWriter`] bounds its outbox and its writes.
#[derive(Debug, Clone, Default)]
pub struct WriterConfig {
    /// The most bytes queued and not yet written; `None`: unbounded (the
    /// client, whose callers wait for their own writes). A frame larger
    /// than the whole room takes all of it and goes alone.
    pub room: Option<usize>,
    /// A write that makes no progress for this long fails with
    /// `TimedOut` (the peer stopped reading). `None`: no limit.
    pub stall: Option<Duration>,
    /// Cancelled: writing stops at once and the writer is broken.
    pub kill: CancellationToken,
    /// Cancelled by the writer when it breaks (a failed write, a stall,
    /// the kill token).
    pub broken: CancellationToken,
}

/// The writer is broken or closed: the frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the connection's writer is closed")]
pub struct WriterClosed;

/// Why [`SharedWriter::try_reserve`] gave no room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TryReserveError {
    /// The outbox is full now.
    #[error("the connection's outbox is full")]
    Full,
    /// The writer is broken or closed.
    #[error(transparent)]
    Closed(#[from] WriterClosed),
}

/// Room for one frame in a [`SharedWriter`]'s outbox, taken by
/// [`SharedWriter::reserve`]; given back when the frame is written (or
/// when dropped unused).
#[derive(Debug)]
pub struct Room {
    permits: u32,
    sem: Option<Arc<Semaphore>>,
}

impl Drop for Room {
    fn drop(&mut self) {
        if let Some(sem) = &self.sem {
            sem.add_permits(self.permits as usize);
        }
    }
}

impl Room {
    /// The permits, now owned by the outbox.
    fn take(mut self) -> usize {
        std::mem::take(&mut self.permits) as usize
    }
}

/// The write half and the bytes taken from the outbox but not yet written.
struct Io<W> {
    wr: W,
    pending: FrameChunks,
    /// The room `pending` holds.
    permits: usize,
}

struct State<W, C> {
    codec: C,
    /// Frames queued and not yet taken by a writer.
    frames: FrameChunks,
    /// The room `frames` holds.
    permits: usize,
    /// The write half, while no one writes. `None` while a writer has it,
    /// and once the writer is broken or closed.
    io: Option<Io<W>>,
    /// A writer has the write half.
    writing: bool,
    /// Broken or closed: nothing more is queued.
    done: bool,
}

/// The write half of a connection shared by all its senders: see the
/// module documentation.
pub struct SharedWriter<W, C> {
    state: Mutex<State<W, C>>,
    room: Option<(Arc<Semaphore>, u32)>,
    /// Notified when the last writer lets go of the write half.
    idle: Notify,
    config: WriterConfig,
}

impl<W, C> std::fmt::Debug for Turn<W, C>
where
    W: AsyncWrite + Send + Unpin + 'static,
    C: Send + 'static,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Turn").finish_non_exhaustive()
    }
}

impl<W, C> std::fmt::Debug for SharedWriter<W, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedWriter")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The write half, owned by the one writer: returned by
/// [`SharedWriter::enqueue`] to the sender that found no one writing, who
/// must then write ([`Turn::write`] or [`Turn::write_now`]). Given back
/// when dropped (what is left to write goes on from a task).
pub struct Turn<W: AsyncWrite + Send + Unpin + 'static, C: Send + 'static> {
    writer: Arc<SharedWriter<W, C>>,
    io: Option<Io<W>>,
    /// The turn of a drain task: dropped unfinished (its runtime shutting
    /// down), it gives the write half back and starts no other task.
    drain: bool,
}

impl<W, C> SharedWriter<W, C>
where
    W: AsyncWrite + Send + Unpin + 'static,
    C: Send + 'static,
{
    /// A writer over `wr`; `codec` is handed to every sender's encoder.
    pub fn new(wr: W, codec: C, config: WriterConfig) -> Arc<Self> {
        let room = config.room.map(|bytes| {
            let max = bytes.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
            (Arc::new(Semaphore::new(max)), max as u32)
        });
        Arc::new(SharedWriter {
            state: Mutex::new(State {
                codec,
                frames: FrameChunks::new(),
                permits: 0,
                io: Some(Io {
                    wr,
                    pending: FrameChunks::new(),
                    permits: 0,
                }),
                writing: false,
                done: false,
            }),
            room,
            idle: Notify::new(),
            config,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State<W, C>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn permits_for(&self, bytes: usize) -> u32 {
        match &self.room {
            Some((_, max)) => u32::try_from(bytes).unwrap_or(u32::MAX).clamp(1, *max),
            None => 0,
        }
    }

    /// Room for a frame of `bytes`, waiting while the outbox is full
    /// (fairly: behind senders already waiting).
    ///
    /// # Errors
    ///
    /// [`WriterClosed`] when the writer is broken or closed.
    pub async fn reserve(&self, bytes: usize) -> Result<Room, WriterClosed> {
        let Some((sem, _)) = &self.room else {
            return Ok(Room {
                permits: 0,
                sem: None,
            });
        };
        let permits = self.permits_for(bytes);
        sem.acquire_many(permits)
            .await
            .map_err(|_| WriterClosed)?
            .forget();
        Ok(Room {
            permits,
            sem: Some(Arc::clone(sem)),
        })
    }

    /// Room for a frame of `bytes` if the outbox has it now.
    ///
    /// # Errors
    ///
    /// [`TryReserveError::Full`], or `Closed` when the writer is broken or
    /// closed.
    pub fn try_reserve(&self, bytes: usize) -> Result<Room, TryReserveError> {
        let Some((sem, _)) = &self.room else {
            return Ok(Room {
                permits: 0,
                sem: None,
            });
        };
        let permits = self.permits_for(bytes);
        match sem.try_acquire_many(permits) {
            Ok(p) => p.forget(),
            Err(TryAcquireError::NoPermits) => return Err(TryReserveError::Full),
            Err(TryAcquireError::Closed) => return Err(WriterClosed.into()),
        }
        Ok(Room {
            permits,
            sem: Some(Arc::clone(sem)),
        })
    }

    /// Waits until the outbox has some room (or the writer is closed).
    pub async fn wait_for_room(&self) {
        if self.has_room() {
            return;
        }
        if let Some((sem, _)) = &self.room {
            drop(sem.acquire().await);
        }
    }

    /// True when a byte of room is free now, or the writer has no bound
    /// (what [`SharedWriter::wait_for_room`] would not wait for), without
    /// taking it.
    pub fn has_room(&self) -> bool {
        self.room
            .as_ref()
            .is_none_or(|(sem, _)| sem.available_permits() > 0)
    }

    /// Encodes a frame with `encode` into the outbox; if no one writes,
    /// the caller is the writer from here on: it gets the [`Turn`] and
    /// writes with it (after letting others queue theirs, if it likes).
    /// [`SharedWriter::send`] and [`SharedWriter::send_now`] do both.
    ///
    /// # Errors
    ///
    /// [`WriterClosed`] when the writer is broken or closed.
    pub fn enqueue<R>(
        self: &Arc<Self>,
        room: Room,
        encode: impl FnOnce(&mut C, &mut FrameChunks) -> R,
    ) -> Result<(R, Option<Turn<W, C>>), WriterClosed> {
        let mut st = self.lock();
        if st.done {
            return Err(WriterClosed);
        }
        let st = &mut *st;
        let r = encode(&mut st.codec, &mut st.frames);
        st.permits += room.take();
        if st.writing || st.frames.is_empty() {
            return Ok((r, None));
        }
        st.writing = true;
        let io = st.io.take();
        Ok((
            r,
            Some(Turn {
                writer: Arc::clone(self),
                io,
                drain: false,
            }),
        ))
    }

    /// Queues a frame (encoded by `encode` with the writer's codec, into
    /// the outbox) and, if no one is writing, writes everything queued,
    /// awaiting the socket. Returns what `encode` returned once the frame
    /// is queued and, if this caller wrote, written.
    ///
    /// # Errors
    ///
    /// [`WriterClosed`] when the writer is broken or closed (before or
    /// during this caller's write).
    pub async fn send<R>(
        self: &Arc<Self>,
        room: Room,
        encode: impl FnOnce(&mut C, &mut FrameChunks) -> R,
    ) -> Result<R, WriterClosed> {
        let (r, turn) = self.enqueue(room, encode)?;
        if let Some(turn) = turn {
            turn.write().await?;
        }
        Ok(r)
    }

    /// [`SharedWriter::send`] from any thread, without waiting: writes
    /// what the socket takes now, and hands the rest to a drain task on
    /// `handle`'s runtime.
    ///
    /// # Errors
    ///
    /// [`WriterClosed`] when the writer is broken or closed.
    pub fn send_now<R>(
        self: &Arc<Self>,
        room: Room,
        handle: &tokio::runtime::Handle,
        encode: impl FnOnce(&mut C, &mut FrameChunks) -> R,
    ) -> Result<R, WriterClosed> {
        let (r, turn) = self.enqueue(room, encode)?;
        if let Some(turn) = turn {
            turn.write_now(handle);
        }
        Ok(r)
    }

    /// Waits until everything queued is written and no one writes, then
    /// shuts the write half down (bounded by the stall timeout and the
    /// kill token). Nothing is queued after.
    pub async fn close(&self) {
        let io = loop {
            let idle = self.idle.notified();
            {
                let mut st = self.lock();
                if st.done {
                    return;
                }
                if !st.writing && st.frames.is_empty() {
                    st.done = true;
                    break st.io.take();
                }
            }
            tokio::select! {
                _ = idle => {}
                _ = self.config.kill.cancelled() => return self.fail(),
            }
        };
        if let Some((sem, _)) = &self.room {
            sem.close();
        }
        let Some(mut io) = io else { return };
        let shut = io.wr.shutdown();
        tokio::select! {
            _ = sleep_some(self.config.stall) => {}
            _ = shut => {}
            _ = self.config.kill.cancelled() => {}
        }
    }

    /// Breaks the writer: queued frames are dropped, senders waiting for
    /// room learn it, `broken` is cancelled.
    fn fail(&self) {
        {
            let mut st = self.lock();
            st.done = true;
            st.frames.clear();
            st.permits = 0;
            st.io = None;
        }
        if let Some((sem, _)) = &self.room {
            sem.close();
        }
        self.config.broken.cancel();
        self.idle.notify_waiters();
    }

    /// True once the writer is broken or closed.
    pub fn is_closed(&self) -> bool {
        self.lock().done
    }
}

mod turn;

use turn::sleep_some;

#[cfg(test)]
mod tests;
