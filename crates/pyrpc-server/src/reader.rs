//! [`FrameReader`]: reads a connection's frames, charging large partial
//! frames to the server-wide byte budget, and [`ReadError`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use pyrpc_framing::FrameError;
use pyrpc_proto::raw;
use tokio::io::AsyncRead;
use tokio::time::{Instant, Sleep};
use tokio_util::codec::Decoder;

use crate::budget::ByteBudget;
use crate::connection::{ServerCodec, UNCHARGED};
use crate::dispatch;
use crate::server::Shared;
use crate::warnlimit::limited_warn;

/// How much the read buffer grows when it is full and no frame is pending.
const READ_CHUNK: usize = 8 * 1024;
/// The most bytes read from a socket at once, so a charge to the budget is
/// never much more than what arrives.
const MAX_READ: usize = 64 * 1024;

/// Why no frame could be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// A bad frame, or the socket failed.
    Frame(FrameError),
    /// Nothing arrived for the idle timeout while nothing ran.
    Idle,
    /// The partial frame would take the server over `max_buffered_bytes`.
    Budget { buffered: usize },
}

impl From<FrameError> for ReadError {
    fn from(e: FrameError) -> Self {
        ReadError::Frame(e)
    }
}

impl From<std::io::Error> for ReadError {
    fn from(e: std::io::Error) -> Self {
        ReadError::Frame(FrameError::Io(e))
    }
}

impl ReadError {
    /// Logs why the connection ends: I/O failures at DEBUG, protocol
    /// errors and limits at WARNING (rate-limited).
    pub(crate) fn log(&self, shared: &Shared, peer: &str) {
        match self {
            ReadError::Frame(e) if e.is_io() => {
                tracing::debug!(%peer, error = %pyrpc_proto::Report(&e), "connection failed");
            }
            ReadError::Frame(e) => {
                limited_warn!(shared.warn_limit, target: "pyrpc.server",
                    %peer, error = %pyrpc_proto::Report(&e), "bad frame from peer; closing its connection");
            }
            ReadError::Idle => tracing::debug!(%peer, "connection idle for too long; closing"),
            ReadError::Budget { buffered } => {
                limited_warn!(shared.warn_limit, target: "pyrpc.server",
                    %peer,
                    buffered,
                    "partial frames of all connections at max_buffered_bytes; closing this one"
                );
            }
        }
    }
}

/// Reads frames off a byte stream with the codec. The codec refuses
/// oversize and empty frames from the header alone and grows the buffer only
/// as bytes arrive; the reader charges a partial frame beyond [`UNCHARGED`]
/// bytes to the server-wide budget before reading more of it.
pub(crate) struct FrameReader<R> {
    io: R,
    pub(crate) codec: ServerCodec,
    buf: BytesMut,
    budget: Arc<ByteBudget>,
    /// What this reader has taken from `budget`.
    charged: usize,
    /// The idle timer, made at the first read with an idle timeout. It is
    /// moved on only when it fires (to `idle` after the reader last
    /// started to wait, if it waited since), so a read registers nothing with the runtime's timer wheel:
    /// a `timeout` around each read did, twice per request.
    idle_timer: Option<Pin<Box<Sleep>>>,
    /// When the reader last started to wait for bytes: the idle time
    /// counts from there, as it did from the start of each timed read.
    waiting_since: Instant,
    /// The reader is waiting for bytes (since `waiting_since`).
    waiting: bool,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub(crate) fn new(io: R, max_frame_len: usize, budget: Arc<ByteBudget>) -> Self {
        let mut codec = ServerCodec::with_max_frame_len(max_frame_len);
        codec.set_precheck(dispatch::decoded_size_check);
        // A call's frame in one walk; anything else (and every error) as
        // prost decodes it (decision 0078).
        codec.set_fast_decode(pyrpc_proto::request::decode_call_frame);
        FrameReader {
            io,
            codec,
            buf: BytesMut::new(),
            budget,
            charged: 0,
            idle_timer: None,
            waiting_since: Instant::now(),
            waiting: false,
        }
    }

    /// The next frame; `None` when the peer closed the stream.
    ///
    /// With `idle` set, fails with [`ReadError::Idle`] when no byte arrives
    /// for that long and `busy()` (some call of the connection runs) is
    /// false; while `busy()` is true, it keeps waiting.
    pub(crate) async fn next(
        &mut self,
        idle: Option<Duration>,
        busy: &(dyn Fn() -> bool + Sync),
    ) -> Result<Option<raw::ClientFrame>, ReadError> {
        std::future::poll_fn(|cx| self.poll_next(cx, idle, busy)).await
    }

    /// [`next`](Self::next) as a poll: all of its state (the buffer, the
    /// idle timer, when the wait began) lives in the reader, so it may be
    /// polled by different tasks or threads in turn (`connection/linger.rs`
    /// polls it with the reader task's waker from a worker thread).
    pub(crate) fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        idle: Option<Duration>,
        busy: &(dyn Fn() -> bool + Sync),
    ) -> Poll<Result<Option<raw::ClientFrame>, ReadError>> {
        loop {
            if let Some(decoded) = self.try_decode() {
                return Poll::Ready(decoded);
            }
            let spare = match self.make_room() {
                Ok(spare) => spare,
                Err(e) => return Poll::Ready(Err(e)),
            };
            let mut limited = (&mut self.buf).limit(spare);
            match tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut limited) {
                Poll::Ready(read) => {
                    self.waiting = false;
                    self.settle();
                    match read {
                        Ok(0) => return Poll::Ready(Ok(None)),
                        Ok(_) => {}
                        Err(e) => return Poll::Ready(Err(e.into())),
                    }
                }
                Poll::Pending => {
                    self.settle();
                    let Some(idle) = idle else {
                        return Poll::Pending;
                    };
                    if !std::mem::replace(&mut self.waiting, true) {
                        self.waiting_since = Instant::now();
                    }
                    let timer = self
                        .idle_timer
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                    loop {
                        if timer.as_mut().poll(cx).is_pending() {
                            return Poll::Pending;
                        }
                        let now = Instant::now();
                        let due = self.waiting_since + idle;
                        if due > now {
                            timer.as_mut().reset(due);
                        } else if busy() {
                            timer.as_mut().reset(now + idle);
                        } else {
                            return Poll::Ready(Err(ReadError::Idle));
                        }
                    }
                }
            }
        }
    }

    /// A whole frame already in the buffer (or the error decoding it), if
    /// there is one.
    pub(crate) fn try_decode(&mut self) -> Option<Result<Option<raw::ClientFrame>, ReadError>> {
        let decoded = self.codec.decode(&mut self.buf);
        if matches!(decoded, Ok(None)) {
            return None;
        }
        self.settle();
        Some(decoded.map_err(ReadError::from))
    }

    /// Grows the buffer for a read and charges the budget for what it may
    /// hold after it; the most bytes the read may take.
    fn make_room(&mut self) -> Result<usize, ReadError> {
        if self.buf.capacity() == self.buf.len() {
            self.buf.reserve(READ_CHUNK);
        }
        let spare = (self.buf.capacity() - self.buf.len()).min(MAX_READ);
        // Charge what the buffer may hold after this read, before reading.
        let want = (self.buf.len() + spare).saturating_sub(UNCHARGED);
        if want > self.charged {
            if !self.budget.try_charge(want - self.charged) {
                return Err(ReadError::Budget {
                    buffered: self.budget.used(),
                });
            }
            self.charged = want;
        }
        Ok(spare)
    }

    /// Reads what `read` gives into the buffer (a worker thread's read of
    /// the raw socket, `connection/linger.rs`); `Ok(0)` is the peer's end.
    pub(crate) fn read_with(
        &mut self,
        read: impl FnOnce(&mut [std::mem::MaybeUninit<u8>]) -> std::io::Result<usize>,
    ) -> Result<usize, ReadError> {
        let spare = self.make_room()?;
        let dst = &mut self.buf.spare_capacity_mut()[..spare];
        let n = read(dst);
        let n = match n {
            Ok(n) => n.min(spare),
            Err(e) => {
                self.settle();
                return Err(e.into());
            }
        };
        // SAFETY: `read` initialised the first `n` bytes of the spare room
        // (`sys::recv` writes at most the length it is given).
        #[allow(unsafe_code)]
        unsafe {
            self.buf.set_len(self.buf.len() + n);
        }
        self.settle();
        Ok(n)
    }

    /// Gives back what the buffer no longer holds.
    fn settle(&mut self) {
        let need = self.buf.len().saturating_sub(UNCHARGED);
        if need < self.charged {
            self.budget.release(self.charged - need);
            self.charged = need;
        }
    }
}

impl<R> Drop for FrameReader<R> {
    fn drop(&mut self) {
        self.budget.release(self.charged);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use pyrpc_proto::raw::{client_frame, ClientFrame, Request};
    use tokio::io::AsyncWriteExt;
    use tokio_util::codec::Encoder;

    /// A `Ping` request's frame, as a client sends it.
    pub(crate) fn ping_frame(id: u64) -> BytesMut {
        let mut codec: pyrpc_framing::Codec<raw::ServerFrame, ClientFrame> =
            pyrpc_framing::Codec::with_max_frame_len(1 << 20);
        let frame = ClientFrame {
            kind: Some(client_frame::Kind::Request(Request {
                id,
                kind: Some(raw::request::Kind::Ping(Default::default())),
            })),
        };
        let mut buf = BytesMut::new();
        codec.encode(frame, &mut buf).expect("encodes");
        buf
    }

    /// The idle timer, made once and moved only when it fires, still counts
    /// from the start of each wait: traffic every 150 ms keeps a 200 ms idle
    /// timeout from firing (as does a busy connection), and 200 ms of silence
    /// then ends the connection.
    #[tokio::test(start_paused = true)]
    async fn the_idle_timeout_counts_from_each_wait() {
        let (mut client, server) = tokio::io::duplex(4096);
        let budget = Arc::new(ByteBudget::new(1 << 20));
        let mut reader = FrameReader::new(server, 1 << 20, budget);
        let idle = Some(Duration::from_millis(200));
        let start = Instant::now();
        for id in 0..10u64 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            client.write_all(&ping_frame(id)).await.expect("writes");
            let frame = reader.next(idle, &|| false).await.expect("no idle timeout");
            assert!(frame.is_some(), "frame {id}");
        }
        // A wait that starts long after the last byte (a call ran inline on
        // the reader meanwhile) gets its full timeout.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let waited = Instant::now();
        let busy_until = waited + Duration::from_millis(300);
        let busy = move || Instant::now() < busy_until;
        match reader.next(idle, &busy).await {
            Err(ReadError::Idle) => {}
            other => panic!("expected the idle timeout, got {other:?}"),
        }
        let idle_for = Instant::now() - waited;
        assert!(
            idle_for >= Duration::from_millis(400) && idle_for <= Duration::from_millis(450),
            "busy for 300 ms, then 200 ms idle: closed after {idle_for:?}"
        );
        assert!(start.elapsed() >= Duration::from_millis(1500));
    }
}
