//! [`Connection`]: one connection to a server, carrying many concurrent requests.
//!
//! After the hello, a reader task reads every `Response` and hands it, by
//! request id, to the caller waiting for it (a oneshot in the pending map).
//! Callers write their own requests through a mutex-guarded sink. When the
//! connection breaks, every waiting caller gets the reason and the connection
//! is marked closed, so that the client makes a new one for the next call.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, Weak};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use prost::Message;
use pyrpc_framing::{Codec, FrameChunks, FrameError, WriterClosed, WriterConfig};
use pyrpc_proto::handshake::{ClientHandshake, ClientSettings, ClientStep};
// Values travel as their encoded bytes (see `pyrpc_proto::raw`): the
// Python binding converts them itself, Rust callers decode them.
use pyrpc_proto::raw::{self, client_frame, request, response, ClientFrame, Request, ServerFrame};
use pyrpc_proto::wire;
use pyrpc_transport::Address;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tracing::{debug, trace};

use crate::config::ClientConfig;
use crate::connector::Connector;
use crate::error::{CallError, ProtocolError, TimeoutStage};

/// The client side of the codec: reads `ServerFrame`s, writes `ClientFrame`s.
type ClientCodec = Codec<ServerFrame, ClientFrame>;

/// The write half of any stream, boxed so that [`Connection`] is not generic.
type BoxedWrite = Pin<Box<dyn AsyncWrite + Send>>;

/// What the reader task hands a waiting caller: the response's outcome (unset
/// if the server left it out), or why the connection broke.
type Reply = Result<Option<response::Kind>, Broken>;

mod dial;
mod info;
mod waiters;
mod writer;

use dial::{dial, handshake_error, handshake_frame, read_hello, unauthenticated};
pub(crate) use info::Broken;
pub use info::ServerInfo;
use waiters::{read_loop, Shared, CANCEL_SEND_TIMEOUT};
pub(crate) use waiters::{PendingReply, SharedHandle};
use writer::{write_alone, RequestWriter};

// ===== impl Connection =====

/// One connection to a server, shared by any number of concurrent callers.
///
/// Writes are combined rather than handed to a writer task fed by a
/// channel (the connection's [`SharedWriter`](pyrpc_framing::SharedWriter),
/// the server's design too): a caller encodes its frame into the writer's
/// outbox and, if no one is writing, writes *everything* queued, its own
/// frame and any queued by other callers meanwhile, in one (vectored)
/// write; a caller that finds a writer at work leaves its frame to it and
/// returns. A lone caller (the common ping-pong case) thus writes its own
/// frame with no hand-off to another task, while concurrent callers share
/// writes: with other requests in flight, a caller yields once before
/// writing so that callers woken with it can queue theirs first.
///
/// The time a caller spends writing is what `socket_send_timeout` bounds.
/// Frames are encoded whole before any byte is written, and a caller that
/// gives up mid-write hands the bytes not yet written to a task, so half a
/// frame is never left on the wire. A request whose send timed out may
/// still go out.
pub(crate) struct Connection {
    shared: Arc<Shared>,
    /// The write half, shared by the callers.
    writer: Arc<RequestWriter>,
    /// Stops a write under way (a task finishing a write whose caller gave
    /// up) when the connection closes.
    kill: CancellationToken,
    next_id: AtomicU64,
    /// The longest frame the server accepts.
    max_send_len: usize,
    info: ServerInfo,
    reader: AbortHandle,
}

impl Connection {
    /// Connects to `addr` (through `connector`, if given) and exchanges
    /// hellos, all before `deadline`.
    pub(crate) async fn open(
        addr: &Address,
        connector: Option<&dyn Connector>,
        config: &ClientConfig,
        deadline: Instant,
    ) -> Result<Connection, CallError> {
        // The dialed stream is not boxed: the common path stays static.
        let greeted = match connector {
            Some(c) => match tokio::time::timeout_at(deadline, c.connect()).await {
                Ok(Ok(s)) => tokio::time::timeout_at(deadline, Self::handshake(s, config)).await,
                Ok(Err(source)) => {
                    return Err(CallError::NoSocket {
                        addr: addr.to_string(),
                        source,
                    })
                }
                Err(_) => {
                    return Err(CallError::Timeout {
                        stage: TimeoutStage::Connect,
                    })
                }
            },
            None => {
                let s = dial(addr, config, deadline).await?;
                tokio::time::timeout_at(deadline, Self::handshake(s, config)).await
            }
        };
        match greeted {
            // `read_hello` does not know the address.
            Ok(Err(CallError::Tls { reason, .. })) => Err(CallError::Tls {
                addr: addr.to_string(),
                reason,
            }),
            Ok(result) => result,
            Err(_) => Err(CallError::Timeout {
                stage: TimeoutStage::Connect,
            }),
        }
    }

    /// Sends our hello on `io`, waits for the server's, and starts the
    /// reader task (on the current runtime).
    pub(crate) async fn handshake<S>(io: S, config: &ClientConfig) -> Result<Connection, CallError>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (read, write) = tokio::io::split(io);
        let mut reader =
            FramedRead::new(read, ClientCodec::with_max_frame_len(config.max_frame_len));
        let mut write: BoxedWrite = Box::pin(write);
        let mut hello_codec = ClientCodec::with_max_frame_len(config.max_frame_len);

        let nonce = match &config.secret {
            Some(_) => Some(
                pyrpc_proto::auth::nonce()
                    .map_err(|e| unauthenticated(format!("no random nonce: {e}")))?,
            ),
            None => None,
        };
        let settings = ClientSettings::new(config.name.clone(), config.max_frame_len)
            .with_secret(config.secret.clone());
        let (mut machine, hello) = ClientHandshake::new(settings, nonce);
        let mut outgoing = hello;
        let done = loop {
            write_alone(&mut write, &mut hello_codec, &handshake_frame(outgoing))
                .await
                .map_err(|e| CallError::from(Broken::from_frame(e)))?;
            let frame = read_hello(&mut reader).await?;
            // The rules read generated frames; a frame whose values do not
            // decode is as much "not a hello" as an empty one.
            let frame: wire::ServerFrame = raw::transcode(&frame).unwrap_or_default();
            match machine.on_frame(frame).map_err(handshake_error)? {
                ClientStep::Send(answer) => outgoing = answer,
                ClientStep::Ready(done) => break done,
            }
        };
        trace!(server = %done.server.peer_name, authenticated = done.authenticated, "hello received");
        let info = ServerInfo::from_hello(&done.server);
        let max_send_len = done.max_send_len;
        let mut codec = ClientCodec::with_max_frame_len(config.max_frame_len);
        codec.set_max_encode_len(max_send_len);

        let kill = CancellationToken::new();
        let writer = RequestWriter::new(
            write,
            codec,
            WriterConfig {
                kill: kill.clone(),
                ..WriterConfig::default()
            },
        );
        let shared = Arc::new(Shared::new());
        let task = tokio::spawn(read_loop(reader, Arc::clone(&shared)));
        Ok(Connection {
            shared,
            writer,
            kill,
            next_id: AtomicU64::new(1),
            max_send_len,
            info,
            reader: task.abort_handle(),
        })
    }

    /// What the server said in its hello.
    pub(crate) fn info(&self) -> &ServerInfo {
        &self.info
    }

    /// False once the connection broke.
    pub(crate) fn is_open(&self) -> bool {
        self.shared.open.load(Ordering::Acquire)
    }

    /// How many requests await their replies.
    pub(crate) fn in_flight(&self) -> usize {
        self.shared.len()
    }

    /// Starts the task that sends a `Cancel` for each call whose caller went
    /// away before its reply (see [`PendingReply`]), on the current runtime.
    /// It ends when the connection does.
    pub(crate) fn start_canceller(self: &Arc<Self>) {
        tokio::spawn(cancel_loop(Arc::clone(&self.shared), Arc::downgrade(self)));
    }

    /// Tells the server that the caller of request `id` (a `Call`) stopped
    /// waiting, so it stops the call. Best effort: the `Ack` is not waited
    /// for, and a failure to send only means the call runs to its end.
    pub(crate) async fn cancel(&self, id: u64) {
        let kind = request::Kind::Cancel(wire::Cancel { id });
        match self.send(kind, CANCEL_SEND_TIMEOUT).await {
            Ok(_ack) => trace!(id, "cancel sent"),
            Err(e) => debug!(id, error = %pyrpc_proto::Report(&e), "cancel not sent"),
        }
    }

    /// Grants the streamed reply of request `id` room for `items` more
    /// items. Best effort, as [`Connection::cancel`].
    pub(crate) async fn credit(&self, id: u64, items: u32) {
        let frame = ClientFrame {
            kind: Some(client_frame::Kind::Credit(wire::Credit { id, items })),
        };
        let encode =
            move |codec: &mut ClientCodec, out: &mut FrameChunks| codec.encode_chunks(&frame, out);
        match self.write_through(encode, CANCEL_SEND_TIMEOUT).await {
            Ok(()) => trace!(id, items, "credit sent"),
            Err(e) => debug!(id, error = %e, "credit not sent"),
        }
    }

    /// The shared state, for a [`crate::stream::ReplyStream`].
    pub(crate) fn shared_handle(&self) -> SharedHandle {
        SharedHandle(Arc::clone(&self.shared))
    }

    /// Sends a `Call` that takes a streamed reply (its `stream_window` set),
    /// as [`Connection::send`]; also returns the channel its items arrive
    /// on.
    ///
    /// # Errors
    ///
    /// As [`Connection::send`].
    pub(crate) async fn send_streaming(
        &self,
        call: raw::Call,
        send_timeout: Duration,
    ) -> Result<(PendingReply, mpsc::UnboundedReceiver<Bytes>), CallError> {
        let (reply, frame, items) = self.register(request::Kind::Call(call), true)?;
        self.write_through(frame.encoder(), send_timeout).await?;
        trace!(id = reply.id, "streaming request sent");
        Ok((reply, items.expect("registered with items")))
    }

    /// Breaks the connection: every waiting caller gets [`CallError::Closed`].
    pub(crate) fn close(&self) {
        self.shared.fail_all(Broken::Closed);
        self.kill.cancel();
        self.reader.abort();
    }

    /// Sends one request, waiting at most `send_timeout` for the write. The
    /// returned [`PendingReply`] waits for the answer.
    ///
    /// # Errors
    ///
    /// [`CallError::Protocol`] for a request larger than the server accepts
    /// (nothing is sent and the connection stays up), `Timeout { Send }`, or
    /// the reason the connection is broken.
    pub(crate) async fn send(
        &self,
        kind: request::Kind,
        send_timeout: Duration,
    ) -> Result<PendingReply, CallError> {
        let (reply, frame, _) = self.register(kind, false)?;
        self.write_through(frame.encoder(), send_timeout).await?;
        trace!(id = reply.id, "request sent");
        Ok(reply)
    }

    /// Sends two requests in one write, `first` ahead of `second` (e.g. a
    /// `Submit` and the `Fetch` right behind it).
    ///
    /// # Errors
    ///
    /// As [`Connection::send`].
    pub(crate) async fn send_pair(
        &self,
        first: request::Kind,
        second: request::Kind,
        send_timeout: Duration,
    ) -> Result<(PendingReply, PendingReply), CallError> {
        let (a, first, _) = self.register(first, false)?;
        let (b, second, _) = self.register(second, false)?;
        let encode = move |codec: &mut ClientCodec, out: &mut FrameChunks| {
            first.encoder()(codec, out)?;
            second.encoder()(codec, out)
        };
        self.write_through(encode, send_timeout).await?;
        trace!(first = a.id, second = b.id, "requests sent");
        Ok((a, b))
    }

    /// Registers a request's waiter (with an item channel too when
    /// `streaming`); returns the waiter and the frame to send.
    #[allow(clippy::type_complexity)]
    fn register(
        &self,
        kind: request::Kind,
        streaming: bool,
    ) -> Result<
        (
            PendingReply,
            SizedFrame,
            Option<mpsc::UnboundedReceiver<Bytes>>,
        ),
        CallError,
    > {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let cancellable = matches!(kind, request::Kind::Call(_));
        let window = match &kind {
            request::Kind::Call(c) => c.stream_window,
            _ => 0,
        };
        let frame = ClientFrame {
            kind: Some(client_frame::Kind::Request(Request {
                id,
                kind: Some(kind),
            })),
        };
        let len = frame.encoded_len();
        if len > self.max_send_len {
            return Err(ProtocolError::RequestTooLarge {
                len,
                max: self.max_send_len,
            }
            .into());
        }
        let (rx, items) = if streaming {
            let (rx, items) = self.shared.register_stream(id, window)?;
            (rx, Some(items))
        } else {
            (self.shared.register(id)?, None)
        };
        // From here on, dropping `reply` (on any error, a timeout, or the
        // caller going away) removes the pending entry.
        let reply = PendingReply {
            shared: Arc::clone(&self.shared),
            id,
            rx,
            cancel_on_drop: cancellable,
        };
        Ok((reply, SizedFrame { frame, len }, items))
    }

    /// Queues the frames `encode` writes into the outbox and, if no one
    /// else is writing, writes everything queued, for at most
    /// `send_timeout`.
    async fn write_through(
        &self,
        encode: impl FnOnce(&mut ClientCodec, &mut FrameChunks) -> Result<(), FrameError>,
        send_timeout: Duration,
    ) -> Result<(), CallError> {
        let write = async {
            // The client bounds its outbox by its callers' timeouts, not
            // by room: this never waits.
            let room = self.writer.reserve(0).await?;
            let (encoded, turn) = self.writer.enqueue(room, encode)?;
            if let Err(e) = encoded {
                // Nothing of it was queued (a dropped turn still writes
                // what others queued).
                return Ok(Err(e));
            }
            if let Some(turn) = turn {
                if self.shared.len() > 1 {
                    // Others are in flight: let those woken with us queue
                    // their frames, so one write carries them all.
                    tokio::task::yield_now().await;
                }
                turn.write().await?;
            }
            Ok(Ok(()))
        };
        // Most writes are done on their first poll (the socket has room):
        // those need no timer (no clock read, no timer entry). The timer
        // starts at the first poll that waits. (Not `timeout` around a
        // polled-once future: it would poll it again at once, cutting the
        // yield that lets concurrent callers share a write.)
        let mut write = std::pin::pin!(write);
        let mut timer: Option<Pin<Box<tokio::time::Sleep>>> = None;
        let written = std::future::poll_fn(|cx| {
            if let Poll::Ready(done) = write.as_mut().poll(cx) {
                return Poll::Ready(Some(done));
            }
            let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(send_timeout)));
            timer.as_mut().poll(cx).map(|()| None)
        })
        .await;
        match written {
            Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(ProtocolError::Encode(Arc::new(e)).into()),
            Some(Err(WriterClosed)) => {
                debug!("writing to the server failed");
                self.close();
                Err(CallError::Closed)
            }
            None => Err(CallError::Timeout {
                stage: TimeoutStage::Send,
            }),
        }
    }
}

/// A request frame and its encoded length (computed once, to check it
/// against the server's limit).
struct SizedFrame {
    frame: ClientFrame,
    len: usize,
}

impl SizedFrame {
    /// Encodes the frame into the outbox (`len` is not walked again).
    fn encoder(self) -> impl FnOnce(&mut ClientCodec, &mut FrameChunks) -> Result<(), FrameError> {
        move |codec, out| codec.encode_chunks_sized(&self.frame, self.len, out)
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // Callers still waiting hold only `Shared`: tell them, then stop reading.
        self.close();
    }
}

/// Sends the `Cancel`s queued by dropped [`PendingReply`]s, until the
/// connection is gone.
async fn cancel_loop(shared: Arc<Shared>, conn: Weak<Connection>) {
    loop {
        shared.cancel_wake.notified().await;
        if !shared.open.load(Ordering::Acquire) {
            return;
        }
        let ids = std::mem::take(
            &mut *shared
                .cancels
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let credits = std::mem::take(
            &mut *shared
                .credits
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let Some(conn) = conn.upgrade() else { return };
        for id in ids {
            conn.cancel(id).await;
        }
        for (id, items) in credits {
            conn.credit(id, items).await;
        }
    }
}

#[cfg(test)]
mod tests;
