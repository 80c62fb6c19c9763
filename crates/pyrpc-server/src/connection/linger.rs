//! [`Linger`]: the read side of a connection, shared by its reader task and
//! the thread that answered its last call, so that a sequential caller's
//! next request wakes one thread (decision 0074).
//!
//! The [`FrameReader`] (socket read half, buffer, codec, idle timer) lives
//! in a slot. Normally the reader task polls it there. When a thread that
//! answered a call directly (a Python worker) finds the connection with no
//! other call running, it may take the reader out of the slot and wait
//! itself, blocking in `poll(2)` on the socket for at most [`LINGER_WAIT`]:
//!
//! * a request arrives: the thread reads it (plain `recv`), puts the reader
//!   back and *arms* it with the reader task's waker (polls it once with
//!   that waker: the task is not woken, but a `Cancel` frame or the idle
//!   timer will wake it as if it had polled itself), then runs the call;
//! * anything that is not a call it may run (a `Cancel`, a ping, a bad
//!   frame, the peer's end) is left in the slot for the reader task, which
//!   is woken for it;
//! * nothing arrives in time, or the connection is closing: the reader is
//!   put back and armed.
//!
//! While the thread waits, the reader task sleeps on the slot; the
//! connection's other waits (its end, the kill token) still wake it, and
//! the thread looks at the connection's `stop` token at least every
//! [`LINGER_WAIT`]. Only plain TCP and Unix sockets linger (the thread
//! reads the raw socket); TLS connections keep the reader task's reads.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pyrpc_proto::raw;
use tokio::io::AsyncRead;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::socket::{sys, PlainSocket, WeakSocket};
use crate::reader::{FrameReader, ReadError};

/// The longest a thread waits for its connection's next request before it
/// gives the read side back to the reader task.
pub(crate) const LINGER_WAIT: Duration = Duration::from_millis(3);

/// The read half of any stream, boxed so that [`Linger`] is not generic.
pub(crate) type BoxedRead = Pin<Box<dyn AsyncRead + Send>>;

/// The connection's frame reader.
pub(crate) type ConnReader = FrameReader<BoxedRead>;

/// A frame read (or why none could be), with the body of an undecodable
/// one for an error answer.
pub(crate) type Read = (Result<Option<raw::ClientFrame>, ReadError>, Option<Bytes>);

/// The read side of one connection (see the module docs).
pub(crate) struct Linger {
    /// The socket, when a thread may wait on it (plain TCP and Unix).
    socket: Option<WeakSocket>,
    slot: Mutex<Slot>,
    idle: Option<Duration>,
    /// The connection's in-flight permits: the reader task holds one while
    /// it waits; any other is a running call.
    permits: Arc<Semaphore>,
    in_flight: usize,
}

struct Slot {
    /// `None` while a thread waits with it, and after `close`.
    reader: Option<ConnReader>,
    /// A frame a thread read and left for the reader task.
    frame: Option<Read>,
    /// The reader task's waker, from its latest poll.
    waker: Option<Waker>,
    closed: bool,
}

impl Linger {
    pub(crate) fn new(
        reader: ConnReader,
        socket: Option<&PlainSocket>,
        idle: Option<Duration>,
        permits: Arc<Semaphore>,
        in_flight: usize,
    ) -> Self {
        Linger {
            socket: socket.map(PlainSocket::downgrade),
            slot: Mutex::new(Slot {
                reader: Some(reader),
                frame: None,
                waker: None,
                closed: false,
            }),
            idle,
            permits,
            in_flight,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Some call of the connection runs (the reader's idle timer waits on).
    fn busy(&self) -> bool {
        self.permits.available_permits() + 1 < self.in_flight
    }

    /// The reader task's next frame.
    pub(crate) async fn next(&self) -> Read {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    fn poll_next(&self, cx: &mut Context<'_>) -> Poll<Read> {
        let mut slot = self.lock();
        if let Some(read) = slot.frame.take() {
            return Poll::Ready(read);
        }
        match &slot.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => slot.waker = Some(cx.waker().clone()),
        }
        let Some(reader) = slot.reader.as_mut() else {
            // A thread waits with it; it wakes this task when it is back
            // (armed) or leaves a frame.
            return Poll::Pending;
        };
        let busy = || self.busy();
        reader
            .poll_next(cx, self.idle, &busy)
            .map(|r| with_body(reader, r))
    }

    /// Ends the connection's reads: the reader (and the socket's read half)
    /// is dropped now, or by the thread that waits with it when it is done.
    pub(crate) fn close(&self) {
        let reader = {
            let mut slot = self.lock();
            slot.closed = true;
            slot.frame = None;
            slot.reader.take()
        };
        drop(reader);
    }

    /// The connection's in-flight permits.
    pub(crate) fn permits(&self) -> &Arc<Semaphore> {
        &self.permits
    }

    /// A plain socket, and no call of the connection runs (the caller's own
    /// is answered).
    pub(crate) fn is_quiet(&self) -> bool {
        self.socket.is_some() && !self.busy()
    }

    /// Waits (blocking, at most [`LINGER_WAIT`]) for the connection's next
    /// frame on this thread. `None` when the read side is not free, the
    /// connection stops or nothing came in time (the reader is back then).
    /// Otherwise the caller holds the reader and must give it back with
    /// [`give_back`](Self::give_back).
    pub(crate) fn wait_next(&self, stop: &CancellationToken) -> Option<(ConnReader, Read)> {
        let socket = self.socket.as_ref()?.upgrade()?;
        let fd = socket.fd();
        let mut reader = {
            let mut slot = self.lock();
            if slot.closed || slot.frame.is_some() {
                return None;
            }
            slot.reader.take()?
        };
        // Nothing that arrives now wakes the runtime: only this thread.
        socket.unregister_reads();
        let until = Instant::now() + LINGER_WAIT;
        let read = loop {
            if let Some(decoded) = reader.try_decode() {
                break with_body(&mut reader, decoded);
            }
            let now = Instant::now();
            if now >= until || stop.is_cancelled() {
                self.give_back(reader, None);
                return None;
            }
            match sys::wait_readable(fd, until - now) {
                Ok(false) => continue,
                Ok(true) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => break (Err(e.into()), None),
            }
            match reader.read_with(|dst| sys::recv(fd, dst)) {
                Ok(0) => break (Ok(None), None),
                Ok(_) => {}
                Err(ReadError::Frame(pyrpc_framing::FrameError::Io(e)))
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => break (Err(e), None),
            }
        };
        Some((reader, read))
    }

    /// Puts the reader back for the reader task, with `frame` for it to
    /// handle (it is woken), or armed with its waker.
    pub(crate) fn give_back(&self, mut reader: ConnReader, frame: Option<Read>) {
        let mut slot = self.lock();
        if slot.closed {
            drop(slot);
            return drop(reader);
        }
        let waker = slot.waker.clone();
        let frame = match frame {
            Some(read) => Some(read),
            None => match &waker {
                // Polled with the task's waker: `Pending` leaves that waker
                // with the socket and the idle timer, without waking it.
                Some(w) => {
                    let busy = || self.busy();
                    match reader.poll_next(&mut Context::from_waker(w), self.idle, &busy) {
                        Poll::Ready(r) => Some(with_body(&mut reader, r)),
                        Poll::Pending => None,
                    }
                }
                // The task has not waited yet: it polls the reader itself.
                None => None,
            },
        };
        slot.reader = Some(reader);
        let wake = frame.is_some();
        slot.frame = frame;
        drop(slot);
        if wake {
            if let Some(w) = waker {
                w.wake();
            }
        }
    }
}

/// A read's result, with the undecodable frame's body when it failed.
fn with_body(reader: &mut ConnReader, r: Result<Option<raw::ClientFrame>, ReadError>) -> Read {
    let body = match &r {
        Err(ReadError::Frame(
            pyrpc_framing::FrameError::Refused(_) | pyrpc_framing::FrameError::Decode(_),
        )) => reader.codec.take_undecodable(),
        _ => None,
    };
    (r, body)
}
