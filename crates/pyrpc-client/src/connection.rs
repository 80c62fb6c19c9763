//! [`Connection`]: one connection to a server, carrying many concurrent requests.
//!
//! After the hello, a reader task reads every `Response` and hands it, by
//! request id, to the caller waiting for it (a oneshot in the pending map).
//! Callers write their own requests through a mutex-guarded sink. When the
//! connection breaks, every waiting caller gets the reason and the connection
//! is marked closed, so that the client makes a new one for the next call.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use prost::Message;
use pyrpc_framing::{Codec, FrameChunks, FrameError};
use pyrpc_proto::handshake::{ClientHandshake, ClientHandshakeError, ClientSettings, ClientStep};
// Values travel as their encoded bytes (see `pyrpc_proto::raw`): the
// Python binding converts them itself, Rust callers decode them.
use pyrpc_proto::raw::{
    self, client_frame, request, response, server_frame, ClientFrame, Request, ServerFrame,
};
use pyrpc_proto::wire;
use pyrpc_transport::{Address, TransportError};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tokio_util::codec::FramedRead;
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

/// What the server announced in its hello.
///
/// Returned by [`Client::server_info`](crate::Client::server_info).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerInfo {
    /// The protocol version the server speaks.
    pub protocol_version: u32,
    /// The server's self-description, e.g. `"pyrpc-rust/0.1.0"`.
    pub name: String,
    /// True when the server accepts non-blocking calls (`nb_call`).
    pub nonblocking: bool,
    /// The longest frame the server accepts, in bytes (0 if it did not say).
    pub max_frame_len: u64,
    /// The deepest value nesting the server accepts (0 if it did not say).
    pub max_value_depth: u32,
    /// True when the server accepts pickled values.
    pub pickle: bool,
    /// How many requests of one connection the server runs at once (0 if it
    /// did not say).
    pub max_in_flight_per_connection: u32,
}

impl ServerInfo {
    fn from_hello(hello: &wire::ServerHello) -> Self {
        let caps = hello.capabilities.unwrap_or_default();
        ServerInfo {
            protocol_version: hello.protocol_version,
            name: hello.peer_name.clone(),
            nonblocking: caps.nonblocking,
            max_frame_len: caps.max_frame_len,
            max_value_depth: caps.max_value_depth,
            pickle: caps.pickle,
            max_in_flight_per_connection: caps.max_in_flight_per_connection,
        }
    }
}

/// Why a connection stopped carrying requests.
#[derive(Clone, Debug)]
pub(crate) enum Broken {
    /// The server closed it, or the socket failed.
    Closed,
    /// The server sent something that breaks the protocol.
    Protocol(ProtocolError),
}

impl From<Broken> for CallError {
    fn from(b: Broken) -> Self {
        match b {
            Broken::Closed => CallError::Closed,
            Broken::Protocol(m) => CallError::Protocol(m),
        }
    }
}

impl Broken {
    /// Why a frame error breaks the connection: an I/O failure closes it,
    /// anything else is the server's fault.
    fn from_frame(e: FrameError) -> Self {
        if e.is_io() {
            debug!(error = %pyrpc_proto::Report(&e), "connection failed");
            Broken::Closed
        } else {
            Broken::Protocol(ProtocolError::BadFrame(Arc::new(e)))
        }
    }
}

// ===== impl Shared =====

/// The state shared by the callers and the reader task.
struct Shared {
    /// Callers waiting for replies, by request id.
    ///
    /// A `std` mutex around a `HashMap` rather than a `DashMap`: it is held
    /// for a map operation only, never across an `.await`, and closing the
    /// connection must atomically drain the map *and* refuse new entries, or
    /// a caller registering during the drain would wait forever.
    pending: Mutex<Pending>,
    /// False once the connection broke; read without the lock on every call.
    open: AtomicBool,
    /// Request ids of calls whose callers went away before the reply (their
    /// [`PendingReply`] was dropped), for the [`cancel_loop`] to cancel.
    /// Bounded by [`MAX_QUEUED_CANCELS`]: past it, a call is left to finish.
    cancels: Mutex<Vec<u64>>,
    /// `Credit`s for streamed replies, (request id, items), for the
    /// [`cancel_loop`] to send. One entry per stream at most: a new grant
    /// for the same id adds to it.
    credits: Mutex<Vec<(u64, u32)>>,
    /// Wakes the [`cancel_loop`]: cancels or credits queued, or the
    /// connection broke.
    cancel_wake: Notify,
}

/// The most `Cancel`s waiting to be sent on one connection.
const MAX_QUEUED_CANCELS: usize = 1024;

/// How long sending a `Cancel` may wait for the connection's writer.
const CANCEL_SEND_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Pending {
    waiters: HashMap<u64, oneshot::Sender<Reply>>,
    /// The item channels of calls that take a streamed reply, by request id.
    /// Unbounded, but the server sends no more items than the client
    /// granted (`Call.stream_window` and its `Credit`s).
    items: HashMap<u64, mpsc::UnboundedSender<Bytes>>,
    /// Set when the connection broke; no new waiter is accepted after that.
    broken: Option<Broken>,
}

impl Shared {
    fn new() -> Self {
        Shared {
            pending: Mutex::new(Pending::default()),
            open: AtomicBool::new(true),
            cancels: Mutex::new(Vec::new()),
            credits: Mutex::new(Vec::new()),
            cancel_wake: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        // Nothing panics while holding the lock, so a poisoned map is intact.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a waiter for `id`, unless the connection is broken.
    fn register(&self, id: u64) -> Result<oneshot::Receiver<Reply>, Broken> {
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
    fn register_stream(
        &self,
        id: u64,
    ) -> Result<(oneshot::Receiver<Reply>, mpsc::UnboundedReceiver<Bytes>), Broken> {
        let mut pending = self.lock();
        if let Some(why) = &pending.broken {
            return Err(why.clone());
        }
        let (tx, rx) = oneshot::channel();
        pending.waiters.insert(id, tx);
        let (itx, irx) = mpsc::unbounded_channel();
        pending.items.insert(id, itx);
        Ok((rx, irx))
    }

    /// Hands a stream item to the call waiting for it; an item nobody
    /// waits for is dropped.
    fn item(&self, item: raw::StreamItem) {
        let pending = self.lock();
        match pending.items.get(&item.id) {
            Some(tx) => drop(tx.send(item.value)),
            None => trace!(id = item.id, "stream item nobody waits for; ignored"),
        }
    }

    /// Queues a `Credit` of `items` for the stream of request `id`.
    pub(crate) fn queue_credit(&self, id: u64, items: u32) {
        if !self.open.load(Ordering::Acquire) {
            return;
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
    fn complete(&self, id: u64, outcome: Option<response::Kind>) {
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
    fn remove(&self, id: u64) -> bool {
        let mut pending = self.lock();
        pending.items.remove(&id);
        pending.waiters.remove(&id).is_some()
    }

    /// Queues a `Cancel` of request `id` for the [`cancel_loop`].
    fn queue_cancel(&self, id: u64) {
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

    fn len(&self) -> usize {
        self.lock().waiters.len()
    }

    /// Marks the connection broken and fails every waiter with `why`. The
    /// first reason sticks.
    fn fail_all(&self, why: Broken) {
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

// ===== impl Connection =====

/// One connection to a server, shared by any number of concurrent callers.
///
/// Writes are combined rather than handed to a writer task fed by a
/// channel: a caller encodes its frame into the `outbox`, then takes the
/// writer lock and writes *everything* in the outbox, its own frame and any
/// queued by other callers meanwhile, in one (vectored) write; a caller
/// that gets the lock after its frame went out with someone else's returns
/// at once. A lone caller (the common ping-pong case) thus writes its own
/// frame with no hand-off to another task, while concurrent callers share
/// writes: with other requests in flight, a caller yields once before
/// writing so that callers woken with it can queue theirs first.
///
/// The time spent waiting for the lock and writing is what
/// `socket_send_timeout` bounds. Frames are encoded whole before any byte is
/// written, and bytes not yet written stay in the writer for the next write,
/// so a caller that gives up mid-write never leaves half a frame on the
/// wire. A request whose send timed out may still go out with a later write.
pub(crate) struct Connection {
    shared: Arc<Shared>,
    /// Frames encoded by callers and not yet taken by a writer. A `std`
    /// mutex: held only to encode or take frames, never across an `.await`.
    outbox: Mutex<Outbox>,
    /// A `tokio` mutex: it is held across the write's `.await`.
    writer: tokio::sync::Mutex<FrameWriter>,
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
        let mut writer = FrameWriter::new(Box::pin(write), config.max_frame_len);

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
            writer
                .send(&handshake_frame(outgoing))
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

        let shared = Arc::new(Shared::new());
        let task = tokio::spawn(read_loop(reader, Arc::clone(&shared)));
        Ok(Connection {
            shared,
            outbox: Mutex::new(Outbox {
                codec,
                frames: FrameChunks::new(),
                queued: 0,
            }),
            writer: tokio::sync::Mutex::new(writer),
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
        let ticket = {
            let mut out = self.outbox.lock().unwrap_or_else(PoisonError::into_inner);
            let out = &mut *out;
            if let Err(e) = out.codec.encode_chunks(&frame, &mut out.frames) {
                debug!(id, error = %e, "credit not encoded");
                return;
            }
            out.queued += 1;
            out.queued
        };
        match self.write_through(ticket, CANCEL_SEND_TIMEOUT).await {
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
        let (reply, ticket, items) = self.enqueue_with(request::Kind::Call(call), true)?;
        self.write_through(ticket, send_timeout).await?;
        trace!(id = reply.id, "streaming request sent");
        Ok((reply, items.expect("registered with items")))
    }

    /// Breaks the connection: every waiting caller gets [`CallError::Closed`].
    pub(crate) fn close(&self) {
        self.shared.fail_all(Broken::Closed);
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
        let (reply, ticket) = self.enqueue(kind)?;
        self.write_through(ticket, send_timeout).await?;
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
        let (a, _) = self.enqueue(first)?;
        let (b, ticket) = self.enqueue(second)?;
        self.write_through(ticket, send_timeout).await?;
        trace!(first = a.id, second = b.id, "requests sent");
        Ok((a, b))
    }

    /// Registers a request's waiter and encodes the request into the
    /// outbox; returns the waiter and the request's ticket.
    fn enqueue(&self, kind: request::Kind) -> Result<(PendingReply, u64), CallError> {
        let (reply, ticket, _) = self.enqueue_with(kind, false)?;
        Ok((reply, ticket))
    }

    /// [`Connection::enqueue`], registering an item channel too when
    /// `streaming`.
    #[allow(clippy::type_complexity)]
    fn enqueue_with(
        &self,
        kind: request::Kind,
        streaming: bool,
    ) -> Result<(PendingReply, u64, Option<mpsc::UnboundedReceiver<Bytes>>), CallError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let cancellable = matches!(kind, request::Kind::Call(_));
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
            let (rx, items) = self.shared.register_stream(id)?;
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
        let mut out = self.outbox.lock().unwrap_or_else(PoisonError::into_inner);
        let out = &mut *out;
        if let Err(e) = out.codec.encode_chunks(&frame, &mut out.frames) {
            return Err(ProtocolError::Encode(Arc::new(e)).into());
        }
        out.queued += 1;
        Ok((reply, out.queued, items))
    }

    /// Waits until the request with `ticket` is written (by this caller,
    /// along with everything queued, or by another), for at most
    /// `send_timeout`.
    async fn write_through(&self, ticket: u64, send_timeout: Duration) -> Result<(), CallError> {
        let write = async {
            if self.shared.len() > 1 {
                // Others are in flight: let those woken with us queue their
                // frames, so one write carries them all.
                tokio::task::yield_now().await;
            }
            let mut writer = self.writer.lock().await;
            if writer.written >= ticket {
                return Ok(());
            }
            let upto = {
                let mut out = self.outbox.lock().unwrap_or_else(PoisonError::into_inner);
                writer.pending.append(&mut out.frames);
                out.queued
            };
            writer.write_pending().await?;
            writer.written = upto;
            Ok::<(), FrameError>(())
        };
        match tokio::time::timeout(send_timeout, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) if e.is_io() => {
                debug!(error = %pyrpc_proto::Report(&e), "writing to the server failed");
                self.close();
                Err(CallError::Closed)
            }
            Ok(Err(e)) => Err(ProtocolError::Encode(Arc::new(e)).into()),
            Err(_) => Err(CallError::Timeout {
                stage: TimeoutStage::Send,
            }),
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // Callers still waiting hold only `Shared`: tell them, then stop reading.
        self.close();
    }
}

/// Connects to `addr` over TCP or a Unix socket, with TLS if configured.
async fn dial(
    addr: &Address,
    config: &ClientConfig,
    deadline: Instant,
) -> Result<pyrpc_transport::Stream, CallError> {
    let timeout = deadline.saturating_duration_since(Instant::now());
    let stream = pyrpc_transport::connect(addr, timeout)
        .await
        .map_err(|e| match e {
            TransportError::ConnectTimeout { .. } => CallError::Timeout {
                stage: TimeoutStage::Connect,
            },
            TransportError::Connect { addr, source } => CallError::NoSocket { addr, source },
            other => CallError::NoSocket {
                addr: addr.to_string(),
                source: std::io::Error::other(pyrpc_proto::Report(&other).to_string()),
            },
        })?;
    match &config.tls {
        Some(tls) if !addr.is_unix() => {
            match tokio::time::timeout_at(deadline, tls.connect(addr, stream)).await {
                Ok(Ok(s)) => Ok(s),
                Ok(Err(e)) => {
                    let reason = match e {
                        pyrpc_transport::TlsError::Handshake { reason, .. } => reason,
                        other => other.to_string(),
                    };
                    Err(CallError::Tls {
                        addr: addr.to_string(),
                        reason,
                    })
                }
                Err(_) => Err(CallError::Timeout {
                    stage: TimeoutStage::Connect,
                }),
            }
        }
        _ => Ok(stream),
    }
}

// ===== FrameWriter =====

/// A small-piece buffer grown past this (by a large string) is given back
/// once written.
const WRITE_BUF_KEEP: usize = 1024 * 1024;

/// Frames encoded by callers, waiting for a writer (see [`Connection`]).
struct Outbox {
    codec: ClientCodec,
    frames: FrameChunks,
    /// How many frames were ever queued: a caller's ticket is the count
    /// right after its own frame.
    queued: u64,
}

/// The write half of the connection and the frames not yet written.
///
/// Frames are encoded whole into `pending` before any byte is written, and
/// bytes not yet written stay there for the next write, so a caller that
/// gives up mid-write never leaves half a frame on the wire. A large `bytes`
/// field is a chunk of `pending` of its own, written from the caller's
/// buffer (vectored writes), never copied.
struct FrameWriter {
    io: BoxedWrite,
    /// Encodes the handshake's frames; requests are encoded by the outbox.
    codec: ClientCodec,
    pending: FrameChunks,
    /// How many queued frames (see [`Outbox::queued`]) are written.
    written: u64,
}

impl FrameWriter {
    fn new(io: BoxedWrite, max_frame_len: usize) -> Self {
        FrameWriter {
            io,
            codec: ClientCodec::with_max_frame_len(max_frame_len),
            pending: FrameChunks::new(),
            written: 0,
        }
    }

    /// Encodes `frame` after what is pending, then writes and flushes it all.
    async fn send(&mut self, frame: &ClientFrame) -> Result<(), FrameError> {
        self.codec.encode_chunks(frame, &mut self.pending)?;
        self.write_pending().await
    }

    /// Writes and flushes everything pending.
    async fn write_pending(&mut self) -> Result<(), FrameError> {
        self.io.write_all_buf(&mut self.pending).await?;
        self.io.flush().await?;
        if self.pending.buffer_capacity() > WRITE_BUF_KEEP {
            self.pending = FrameChunks::new();
        }
        Ok(())
    }
}

/// A frame of the handshake (a hello or an answer to the challenge, all
/// that [`ClientHandshake`] sends) as the frame type the codec writes.
fn handshake_frame(frame: wire::ClientFrame) -> ClientFrame {
    ClientFrame {
        kind: match frame.kind {
            Some(wire::client_frame::Kind::Hello(h)) => Some(client_frame::Kind::Hello(h)),
            Some(wire::client_frame::Kind::Auth(a)) => Some(client_frame::Kind::Auth(a)),
            Some(wire::client_frame::Kind::Request(_) | wire::client_frame::Kind::Credit(_))
            | None => None,
        },
    }
}

/// Reads the server's next frame during the handshake.
async fn read_hello<R: AsyncRead + Unpin>(
    reader: &mut FramedRead<R, ClientCodec>,
) -> Result<ServerFrame, CallError> {
    match reader.next().await {
        Some(Ok(frame)) => Ok(frame),
        // With mutual TLS 1.3, a server that refuses our certificate (or
        // its absence) says so after the handshake, in an alert read here.
        Some(Err(FrameError::Io(e))) => {
            match pyrpc_transport::tls_failure(&e, pyrpc_transport::Side::Client) {
                Some(reason) => Err(CallError::Tls {
                    addr: String::new(),
                    reason,
                }),
                None => Err(Broken::from_frame(FrameError::Io(e)).into()),
            }
        }
        Some(Err(e)) => Err(Broken::from_frame(e).into()),
        None => Err(CallError::Closed),
    }
}

/// The caller's error for a failed handshake.
fn handshake_error(e: ClientHandshakeError) -> CallError {
    match e {
        ClientHandshakeError::TlsRequired(reason) => CallError::Tls {
            addr: String::new(),
            reason,
        },
        // The server refused us (version, overload, authentication) and closes now.
        ClientHandshakeError::Refused(e) => CallError::Remote(e),
        e if e.is_authentication() => unauthenticated(e.to_string()),
        e => ProtocolError::Handshake(e).into(),
    }
}

/// An authentication failure found on this side, reported like the server's
/// own refusal (kind `UNAUTHENTICATED`, type `PermissionError`).
fn unauthenticated(message: String) -> CallError {
    CallError::Remote(pyrpc_proto::RemoteError::new(
        pyrpc_proto::ErrorKind::Unauthenticated,
        message,
    ))
}

/// Reads responses until the connection ends, then fails every waiter.
async fn read_loop<R: AsyncRead + Unpin>(
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

/// The connection's shared state, as a streamed reply holds it: enough to
/// queue its `Credit`s and `Cancel`, without keeping the connection open.
#[derive(Clone)]
pub(crate) struct SharedHandle(Arc<Shared>);

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
    shared: Arc<Shared>,
    pub(crate) id: u64,
    rx: oneshot::Receiver<Reply>,
    /// A `Call`: tell the server when dropped unanswered. Cleared when
    /// [`PendingReply::wait`] times out, whose caller cancels it itself.
    cancel_on_drop: bool,
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

#[cfg(test)]
mod tests {
    use super::*;
    use futures::SinkExt;
    use pyrpc_proto::PROTOCOL_VERSION;

    #[test]
    fn fail_all_wakes_every_waiter_and_refuses_new_ones() {
        let shared = Shared::new();
        let mut a = shared.register(1).expect("open");
        let mut b = shared.register(2).expect("open");
        shared.fail_all(Broken::Protocol(ProtocolError::NoOutcome));
        shared.fail_all(Broken::Closed);
        for rx in [&mut a, &mut b] {
            match rx.try_recv() {
                Ok(Err(Broken::Protocol(ProtocolError::NoOutcome))) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(matches!(shared.register(3), Err(Broken::Protocol(_))));
        assert_eq!(shared.len(), 0);
        assert!(!shared.open.load(Ordering::Acquire));
    }

    #[test]
    fn complete_routes_by_id_and_ignores_unknown_ids() {
        let shared = Shared::new();
        let mut a = shared.register(7).expect("open");
        let mut b = shared.register(8).expect("open");
        shared.complete(8, Some(response::Kind::Ack(wire::Ack {})));
        shared.complete(99, None);
        assert!(a.try_recv().is_err(), "7 has no answer yet");
        assert!(matches!(b.try_recv(), Ok(Ok(Some(response::Kind::Ack(_))))));
        assert_eq!(shared.len(), 1);
        shared.remove(7);
        assert_eq!(shared.len(), 0);
    }

    /// Counts the writes made to the inner stream.
    struct CountWrites<S> {
        inner: S,
        writes: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl<S: AsyncRead + Unpin> AsyncRead for CountWrites<S> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_read(cx, buf)
        }
    }

    impl<S: AsyncWrite + Unpin> AsyncWrite for CountWrites<S> {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            self.writes.fetch_add(1, Ordering::Relaxed);
            Pin::new(&mut self.inner).poll_write(cx, buf)
        }

        fn poll_flush(
            mut self: Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_flush(cx)
        }

        fn poll_shutdown(
            mut self: Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    #[tokio::test]
    async fn concurrent_requests_share_writes_and_a_lone_one_writes_at_once() {
        use tokio_util::codec::Framed;
        let (ours, theirs) = tokio::io::duplex(1 << 20);
        let writes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let io = CountWrites {
            inner: ours,
            writes: Arc::clone(&writes),
        };
        // A server answering every request with an Ack.
        tokio::spawn(async move {
            let mut framed = Framed::new(theirs, Codec::<ClientFrame, ServerFrame>::new());
            let hello = ServerFrame {
                kind: Some(server_frame::Kind::Hello(wire::ServerHello {
                    protocol_version: PROTOCOL_VERSION,
                    ..Default::default()
                })),
            };
            let _ = framed.next().await;
            framed.send(hello).await.expect("hello");
            while let Some(Ok(f)) = framed.next().await {
                if let Some(client_frame::Kind::Request(r)) = f.kind {
                    let ack = ServerFrame {
                        kind: Some(server_frame::Kind::Response(pyrpc_proto::raw::Response {
                            id: r.id,
                            kind: Some(response::Kind::Ack(wire::Ack {})),
                        })),
                    };
                    framed.send(ack).await.expect("ack");
                }
            }
        });
        let conn = Connection::handshake(io, &ClientConfig::default())
            .await
            .expect("handshake");
        let ping = || request::Kind::Ping(wire::Ping {});
        let soon = Duration::from_secs(5);

        let before = writes.load(Ordering::Relaxed);
        let lone = conn.send(ping(), soon).await.expect("sent");
        assert_eq!(
            writes.load(Ordering::Relaxed) - before,
            1,
            "written at once"
        );
        assert!(matches!(lone.wait(None).await, Ok(response::Kind::Ack(_))));

        let before = writes.load(Ordering::Relaxed);
        let calls = (0..64).map(|_| async {
            let reply = conn.send(ping(), soon).await?;
            reply.wait(None).await
        });
        let answers = futures::future::join_all(calls).await;
        assert!(answers
            .iter()
            .all(|a| matches!(a, Ok(response::Kind::Ack(_)))));
        let n = writes.load(Ordering::Relaxed) - before;
        assert!(n <= 4, "64 concurrent requests took {n} writes");
    }
}
