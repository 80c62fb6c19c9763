//! One connection: the hello, then a reader that hands requests to
//! `dispatch` (at most `max_in_flight_per_connection` at a time), whose
//! replies reach the socket through the connection's one
//! [`SharedWriter`] (the same writer design as the client's).
//!
//! ```text
//!            +--------+   request + permit   +-------------------+
//!  socket -> | reader | -------------------> | dispatch / calls / |
//!            +--------+                      | worker threads     |
//!                                            +-------------------+
//!                                                      |  reply
//!            +--------------+  encoded into the outbox  v
//!  socket <- | SharedWriter | <--------------------------+
//!            +--------------+  written by whoever finds it free, with
//!                              everything queued (vectored writes; a large
//!                              `bytes` payload is never copied)
//! ```
//!
//! There is no writer task: a call's task, the reader (for an error it
//! answers itself) or a Python worker thread (`dispatch/direct.rs`) writes
//! its reply itself when no one else is writing, together with whatever
//! was queued meanwhile; a reply that finds a writer at work is left for
//! it. A worker thread writes without blocking, and hands what the socket
//! does not take now to a task ([`ReplyQueue::try_send`]), so in the common
//! case its reply reaches the socket with no hand-off at all.
//!
//! The reader's frames come from the connection's [`Linger`] slot: after a
//! Python worker answers a call, it may take the read side and wait (at
//! most a few milliseconds) for the connection's next request itself, so
//! that a sequential caller's request wakes that one thread and not the
//! runtime (`connection/linger.rs`, `connection/socket.rs`, decision 0074).
//!
//! Limits, all from [`ServerConfig`](crate::ServerConfig):
//!
//! * a partial frame beyond [`UNCHARGED`] bytes is charged to the server-wide
//!   [`ByteBudget`] before its bytes are read; a connection that would go
//!   over it is closed;
//! * replies queued and not yet written take at most
//!   `max_queued_reply_bytes`; while that room is full the reader reads
//!   nothing (backpressure reaches the client's socket);
//! * `idle_timeout`: a connection that sends nothing while none of its calls
//!   runs, or whose replies make no progress, is closed.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use pyrpc_framing::{Codec, FrameChunks, FrameError, SharedWriter, WriterConfig};
// Values travel as their encoded bytes (see `pyrpc_proto::raw`): decoded by
// the dispatcher for Rust callees, by the callee itself for the Python one.
use pyrpc_proto::raw::{self, client_frame, server_frame};
use pyrpc_proto::{ErrorKind, RemoteError};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Semaphore;

use crate::dispatch::{self, ConnCtx};
use crate::hello;
use crate::reader::{FrameReader, ReadError};
use crate::server::Shared;
use crate::warnlimit::limited_warn;

/// The bytes of a partial frame a connection holds without charging the
/// server-wide budget: requests this small never touch the shared counter.
pub(crate) const UNCHARGED: usize = 64 * 1024;

mod linger;
mod queue;
mod socket;

pub(crate) use linger::Linger;
use linger::{BoxedRead, ConnReader};
use queue::BoxedWrite;
pub(crate) use queue::{ReplyQueue, TrySend, WeakReplyQueue};
pub(crate) use socket::PlainSocket;

pub(crate) type ServerCodec = Codec<raw::ClientFrame, raw::ServerFrame>;

/// What was learnt about a connection before its hello.
#[derive(Debug, Default)]
pub(crate) struct Admission {
    /// Refuse the connection in the answer to its hello (e.g. a plain client
    /// of a TLS server).
    pub(crate) refusal: Option<RemoteError>,
    /// The client presented a certificate the server verified (mutual TLS).
    pub(crate) client_cert: bool,
}

/// Serves one connection until it closes; `slot` counts it as open.
pub(crate) async fn serve<S>(
    shared: Arc<Shared>,
    io: S,
    peer: String,
    slot: Slot,
    admission: Admission,
    socket: Option<PlainSocket>,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let _slot = slot;
    let overloaded = _slot.open > shared.config.max_connections;
    tracing::debug!(%peer, "connection opened");
    let (rd, mut wr) = tokio::io::split(io);
    let mut reader: ConnReader = FrameReader::new(
        Box::pin(rd) as BoxedRead,
        shared.config.max_frame_len,
        Arc::clone(&shared.buffered),
    );
    if shared.callee.bounds_decoded_size() {
        reader.codec.set_precheck(dispatch::arguments_check);
    }

    // ----- hello (and authentication) -----
    let greeted =
        hello::exchange(&shared, &mut reader, &mut wr, &peer, overloaded, admission).await;
    let Some(hello::Greeted {
        codec,
        authenticated,
    }) = greeted
    else {
        return;
    };

    // ----- requests -----
    let stop = shared.close.child_token();
    let kill = shared.kill.child_token();
    let in_flight = shared.config.max_in_flight_per_connection.max(1);
    let writer = SharedWriter::new(
        Box::pin(wr) as BoxedWrite,
        codec,
        WriterConfig {
            room: Some(shared.config.max_queued_reply_bytes),
            stall: shared.config.idle_timeout,
            kill: kill.clone(),
            // A write that fails or stalls ends the connection.
            broken: stop.clone(),
        },
    );
    let peer_name: Arc<str> = Arc::from(peer.as_str());
    let (queue, replies_queued) = ReplyQueue::new(Arc::clone(&writer), Arc::clone(&peer_name));
    let permits = Arc::new(Semaphore::new(in_flight));
    // While the reader waits for a frame it holds one permit; any other
    // permit taken is a call (or a waiting fetch) of this connection.
    // A thread that answered a call directly may wait for the next request
    // itself (`linger`): only on a plain socket, for a callee that answers
    // directly.
    let socket = socket.filter(|_| dispatch::answers_directly(&shared));
    let linger = Arc::new(Linger::new(
        reader,
        socket.as_ref(),
        shared.config.idle_timeout,
        Arc::clone(&permits),
        in_flight,
    ));
    let conn = ConnCtx {
        peer: peer_name,
        tx: queue.clone(),
        stop: stop.clone(),
        running: Arc::default(),
        authenticated,
        linger: Arc::clone(&linger),
    };
    let reading = async {
        // One wait for the connection's end, registered once and raced with
        // every wait below (a fresh one per select registered and removed a
        // waiter each time: six lock round trips per request).
        let stopped = stop.clone().cancelled_owned();
        tokio::pin!(stopped);
        loop {
            if stop.is_cancelled() {
                break;
            }
            // Take a permit before reading: with `in_flight` requests running,
            // stop reading (backpressure) rather than pile up tasks.
            let permit = match Arc::clone(&permits).try_acquire_owned() {
                Ok(p) => p,
                Err(_) => tokio::select! {
                    biased;
                    _ = &mut stopped => break,
                    p = Arc::clone(&permits).acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                },
            };
            // Neither read while the client leaves its replies unread.
            if !queue.has_room() {
                tokio::select! {
                    biased;
                    _ = &mut stopped => break,
                    _ = queue.wait_for_room() => {}
                }
            }
            let (frame, undecodable) = tokio::select! {
                biased;
                _ = &mut stopped => break,
                f = linger.next() => f,
            };
            match frame {
                Ok(Some(raw::ClientFrame {
                    kind: Some(client_frame::Kind::Request(req)),
                })) => {
                    tracing::trace!(%peer, id = req.id, "request");
                    dispatch::handle(&shared, &conn, req, permit).await;
                }
                Ok(Some(raw::ClientFrame {
                    kind: Some(client_frame::Kind::Credit(c)),
                })) => {
                    // Takes no permit: it starts no work and is not answered.
                    drop(permit);
                    let found = conn.running.credit(c.id, c.items);
                    tracing::trace!(%peer, id = c.id, items = c.items, found, "credit");
                }
                Ok(Some(_)) => {
                    limited_warn!(shared.warn_limit, target: "pyrpc.server",
                        %peer, "frame that is not a request after the hello; closing");
                    stop.cancel();
                    kill.cancel();
                    break;
                }
                Ok(None) => {
                    // A client that closed its end is gone (killed, or done):
                    // its running calls are dropped, freeing what they hold,
                    // rather than run on for nobody. Replies already queued
                    // are still sent, for a client that only half-closed.
                    tracing::debug!(%peer, "peer closed the connection");
                    stop.cancel();
                    break;
                }
                Err(ReadError::Frame(FrameError::Refused(why))) => {
                    let body = undecodable.unwrap_or_default();
                    if dispatch::answer_refused(&conn, &body, &why).await {
                        tracing::debug!(%peer, %why, "request refused before decoding");
                        continue;
                    }
                    tracing::warn!(%peer, %why, "frame refused before decoding; closing");
                    stop.cancel();
                    kill.cancel();
                    break;
                }
                Err(ReadError::Frame(FrameError::Decode(e))) => {
                    let body = undecodable.unwrap_or_default();
                    if dispatch::answer_undecodable(&conn, &body, &e.to_string()).await {
                        tracing::debug!(%peer, error = %pyrpc_proto::Report(&e), "undecodable request answered with an error");
                        continue;
                    }
                    ReadError::Frame(FrameError::Decode(e)).log(&shared, &peer);
                    stop.cancel();
                    kill.cancel();
                    break;
                }
                Err(ReadError::Idle) => {
                    tracing::debug!(%peer, "connection idle for too long; closing");
                    // What is queued is still sent, then the connection closes.
                    stop.cancel();
                    break;
                }
                Err(e) => {
                    e.log(&shared, &peer);
                    stop.cancel();
                    kill.cancel();
                    break;
                }
            }
        }
        linger.close();
        drop(conn);
        drop(queue);
    };
    // The connection ends once every running call has sent its reply (they
    // hold clones of the queue) and the writer has written them all, or
    // once it is killed.
    reading.await;
    tokio::select! {
        _ = replies_queued => {}
        _ = kill.cancelled() => {}
    }
    writer.close().await;
    tracing::debug!(%peer, "connection closed");
}

/// Appends one reply frame (a response or a stream item); a reply larger
/// than the peer accepts becomes a `FRAME_TOO_LARGE` error for the same
/// request (for a stream item, that error ends the stream on the client).
pub(super) fn encode_response(
    codec: &mut ServerCodec,
    reply: raw::ServerFrame,
    len: usize,
    buf: &mut FrameChunks,
    peer: &str,
) -> Option<Unsent> {
    let id = match &reply.kind {
        Some(server_frame::Kind::Response(r)) => r.id,
        Some(server_frame::Kind::Item(i)) => i.id,
        Some(server_frame::Kind::Hello(_)) | None => 0,
    };
    tracing::trace!(%peer, id, "response");
    let frame = |kind| raw::ServerFrame { kind: Some(kind) };
    let error = match codec.encode_chunks_sized(&reply, len, buf) {
        Ok(()) => return None,
        Err(FrameError::TooLarge { len, max }) => {
            let e = RemoteError::new(
                ErrorKind::FrameTooLarge,
                format!("the reply of {len} bytes is larger than the limit of {max} bytes"),
            );
            let err = server_frame::Kind::Response(dispatch::error(id, e));
            codec.encode_chunks(&frame(err), buf).err()?
        }
        Err(e) => e,
    };
    Some(Unsent { id, error })
}

/// A reply [`encode_response`] could not encode, not even as an error. It
/// runs under the writer's lock, so the caller logs this after letting go
/// of it: a log line may wait for another lock (the GIL, in a Python
/// server) whose holder may be waiting for the writer.
#[must_use]
pub(super) struct Unsent {
    id: u64,
    error: FrameError,
}

impl Unsent {
    pub(super) fn log(&self, peer: &str) {
        let Unsent { id, error } = self;
        tracing::warn!(%peer, id, error = %pyrpc_proto::Report(error), "cannot encode a reply");
    }
}

// ===== Slot =====

/// Counts an open connection while alive (from its accept, TLS handshake
/// included, to its close).
pub(crate) struct Slot {
    shared: Arc<Shared>,
    /// Open connections, this one included.
    open: usize,
}

impl Slot {
    pub(crate) fn take(shared: &Arc<Shared>) -> Self {
        let open = shared.connections.fetch_add(1, Ordering::SeqCst) + 1;
        Slot {
            shared: Arc::clone(shared),
            open,
        }
    }
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot").field("open", &self.open).finish()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.shared.connections.fetch_sub(1, Ordering::SeqCst);
    }
}
