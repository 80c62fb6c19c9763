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
//! * the call it read runs on the thread *unarmed*: the reader is back in
//!   the slot but nothing watches the socket, so the reply and the next
//!   request wake nobody else. A call that runs longer than a moment is
//!   armed then by the re-arm watcher ([`rearm`], within
//!   `2 * rearm::TICK`), so that a `Cancel`, the peer's close or the idle
//!   timer is seen while a long call runs, as before; a call that ends
//!   sooner is never armed, and what came meanwhile is read by the next
//!   wait (decision 0077).
//!
//! While the thread waits, the reader task sleeps on the slot; the
//! connection's other waits (its end, the kill token) still wake it, and
//! the thread looks at the connection's `stop` token at least every
//! [`LINGER_WAIT`]. Only plain TCP and Unix sockets linger (the thread
//! reads the raw socket); TLS connections keep the reader task's reads.

use std::panic::AssertUnwindSafe;
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

mod rearm;

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
    /// The reader is in the slot but not armed: a call a thread read runs,
    /// and nothing watches the socket until the call ends or the re-arm
    /// watcher arms it.
    unarmed: bool,
    /// How many calls were left unarmed, and the count the watcher saw at
    /// its last look: the same unarmed call at two looks gets armed.
    calls: u64,
    seen: u64,
    /// On the watcher's list, and its looks since the last unarmed call.
    listed: bool,
    quiet: u32,
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
                unarmed: false,
                calls: 0,
                seen: 0,
                listed: false,
                quiet: 0,
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
        // Polled here: armed with this task's waker.
        slot.unarmed = false;
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
            slot.unarmed = false;
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
            let reader = slot.reader.take()?;
            slot.unarmed = false;
            reader
        };
        // Nothing that arrives now wakes the runtime: only this thread. (A
        // no-op when the reader was not armed since this thread's last
        // wait: the usual case.)
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
    pub(crate) fn give_back(&self, reader: ConnReader, frame: Option<Read>) {
        let mut slot = self.lock();
        if slot.closed {
            drop(slot);
            return drop(reader);
        }
        slot.reader = Some(reader);
        slot.unarmed = false;
        let waker = match frame {
            Some(read) => {
                slot.frame = Some(read);
                slot.waker.clone()
            }
            None => self.arm_locked(&mut slot),
        };
        drop(slot);
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Puts the reader back *unarmed* while the call this thread read runs
    /// on it (see the module docs): the re-arm watcher arms it if the call
    /// runs longer than a moment; [`arm`](Self::arm) arms it sooner.
    pub(crate) fn give_back_unarmed(self: &Arc<Self>, reader: ConnReader) {
        let mut slot = self.lock();
        if slot.closed {
            drop(slot);
            return drop(reader);
        }
        slot.reader = Some(reader);
        slot.unarmed = true;
        slot.calls = slot.calls.wrapping_add(1);
        slot.quiet = 0;
        let list = !std::mem::replace(&mut slot.listed, true);
        drop(slot);
        if list && !rearm::watch(Arc::downgrade(self)) {
            // No watcher (its thread could not start): armed now.
            self.lock().listed = false;
            self.arm();
        }
    }

    /// Arms the reader when it was left unarmed (nothing otherwise): the
    /// socket, the idle timer and the reader task's waker watch again.
    pub(crate) fn arm(&self) {
        let socket = self.socket.as_ref().and_then(WeakSocket::upgrade);
        let _entered = socket.as_ref().map(PlainSocket::enter);
        let mut slot = self.lock();
        if !slot.unarmed || slot.closed {
            return;
        }
        slot.unarmed = false;
        let waker = self.arm_locked(&mut slot);
        drop(slot);
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// The re-arm watcher's look ([`rearm`]): arms a call left unarmed
    /// that was already running at the previous look. False when the
    /// connection can leave the watcher's list (closed, or no unarmed call
    /// for a while).
    fn look(&self) -> bool {
        let mut slot = self.lock();
        if slot.closed {
            slot.listed = false;
            return false;
        }
        if !slot.unarmed {
            slot.quiet = slot.quiet.saturating_add(1);
            if slot.quiet >= rearm::DELIST_AFTER {
                slot.listed = false;
                return false;
            }
            return true;
        }
        slot.quiet = 0;
        if slot.seen != slot.calls {
            slot.seen = slot.calls;
            return true;
        }
        drop(slot);
        tracing::trace!("a long call's connection armed for its reads");
        self.arm();
        true
    }

    /// Polls the reader in the slot once with the reader task's waker:
    /// `Pending` leaves that waker with the socket and the idle timer,
    /// without waking it; a frame read now is left in the slot, and the
    /// waker to wake for it is returned. Needs the runtime entered.
    fn arm_locked(&self, slot: &mut Slot) -> Option<Waker> {
        // The task has not waited yet: it polls the reader itself.
        let waker = slot.waker.clone()?;
        let reader = slot.reader.as_mut()?;
        let busy = || self.busy();
        let polled = std::panic::catch_unwind(AssertUnwindSafe(|| {
            reader.poll_next(&mut Context::from_waker(&waker), self.idle, &busy)
        }));
        match polled {
            Ok(Poll::Ready(r)) => {
                slot.frame = Some(with_body(reader, r));
                Some(waker)
            }
            Ok(Poll::Pending) => None,
            Err(_) => {
                // The server's runtime is shut down (an abandoned call that
                // ended after it, on a thread of the callee's): its timer
                // and poller panic when polled. Nobody reads this
                // connection any more; its read side goes now.
                tracing::debug!("a connection's reads given back after its runtime shut down");
                slot.closed = true;
                slot.frame = None;
                slot.unarmed = false;
                slot.reader = None;
                None
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::ByteBudget;
    use crate::reader::tests::ping_frame;
    use std::io::Write;
    use std::os::fd::OwnedFd;
    use std::os::unix::net::UnixStream;

    /// Polls `cond` until it holds (at most 10 s).
    async fn eventually(what: &str, cond: impl Fn() -> bool) {
        let until = Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(Instant::now() < until, "{what}");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// On a real socket pair: a request read by a thread and left unarmed
    /// while its call runs registers nothing with the runtime; once the
    /// call has run longer than the watcher's moment, its read is
    /// registered again, and what the peer sends then (a `Cancel`, its
    /// close) wakes the reader task.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_call_read_by_a_thread_is_armed_only_once_it_runs_long() {
        let (ours, mut peer) = UnixStream::pair().expect("pair");
        ours.set_nonblocking(true).expect("nonblocking");
        let sock = PlainSocket::new(OwnedFd::from(ours));
        let read: BoxedRead = Box::pin(sock.clone());
        let reader = FrameReader::new(read, 1 << 20, Arc::new(ByteBudget::new(1 << 20)));
        let permits = Arc::new(Semaphore::new(4));
        let linger = Arc::new(Linger::new(reader, Some(&sock), None, permits, 4));
        let l = Arc::clone(&linger);
        let task = tokio::spawn(async move { l.next().await.0.map(|f| f.is_some()) });
        eventually("the reader task registers its read", || {
            sock.reads_registered()
        })
        .await;

        let (l, s) = (Arc::clone(&linger), sock.clone());
        let (short, mut peer) = tokio::task::spawn_blocking(move || {
            // As a worker's wait: the reader out of the task's hands and
            // the socket unregistered before the request comes.
            let reader = l.lock().reader.take().expect("the reader is in the slot");
            s.unregister_reads();
            peer.write_all(&ping_frame(1)).expect("writes");
            l.lock().reader = Some(reader);
            let (reader, read) = l.wait_next(&CancellationToken::new()).expect("a frame");
            assert!(matches!(read.0, Ok(Some(_))), "the request is read here");
            l.give_back_unarmed(reader);
            (s.reads_registered(), peer)
        })
        .await
        .expect("joins");
        assert!(!short, "a call left unarmed registers nothing");

        eventually("the watcher arms a call that runs long", || {
            sock.reads_registered()
        })
        .await;
        peer.write_all(&ping_frame(2)).expect("writes");
        let got = tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the reader task is woken")
            .expect("joins");
        assert!(got.expect("reads"), "the reader task reads the next frame");
    }

    /// A call a thread read ends after the server's runtime was shut down
    /// (abandoned by a shutdown that stopped waiting for it): giving the
    /// read side back polls the socket (and the idle timer) without a live
    /// runtime. The thread carries on, and the read side ends: dropped (a
    /// poll that panicked, as tokio's timer does once its driver is shut
    /// down) or with the runtime's error left for the (gone) reader task.
    /// On a plain socket the read's error comes first, so this does not
    /// reach the timer's panic; the guard is for the race where it does.
    #[test]
    fn a_reader_given_back_after_its_runtime_shut_down_ends_its_reads() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let handle = rt.handle().clone();
        let (ours, _peer) = UnixStream::pair().expect("pair");
        ours.set_nonblocking(true).expect("nonblocking");
        let linger = rt.block_on(async {
            let sock = PlainSocket::new(OwnedFd::from(ours));
            let read: BoxedRead = Box::pin(sock.clone());
            let reader = FrameReader::new(read, 1 << 20, Arc::new(ByteBudget::new(1 << 20)));
            let permits = Arc::new(Semaphore::new(4));
            let idle = Some(Duration::from_secs(60));
            Arc::new(Linger::new(reader, Some(&sock), idle, permits, 4))
        });
        // The reader task polls once (its waker and idle timer are set),
        // then a thread takes the read side, as a lingering worker does.
        let l = Arc::clone(&linger);
        let polled = rt.block_on(async move {
            let mut next = Box::pin(l.next());
            futures::poll!(next.as_mut()).is_pending()
        });
        assert!(polled, "nothing to read yet");
        let reader = linger
            .lock()
            .reader
            .take()
            .expect("the reader is in the slot");
        rt.shutdown_timeout(Duration::from_secs(10));
        let _entered = handle.enter();
        let given = std::panic::catch_unwind(AssertUnwindSafe(|| linger.give_back(reader, None)));
        assert!(given.is_ok(), "giving the reader back does not panic");
        let slot = linger.lock();
        let ended = (slot.closed && slot.reader.is_none())
            || matches!(slot.frame, Some((Err(ReadError::Frame(_)), _)));
        assert!(ended, "the read side ends");
    }
}
