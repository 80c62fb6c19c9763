//! One connection: the hello, then a reader that hands requests to
//! `dispatch` (at most `max_in_flight_per_connection` at a time) and one
//! writer task that sends the replies.
//!
//! ```text
//!            +--------+   request + permit   +-------------+
//!  socket -> | reader | -------------------> | dispatch /  |
//!            +--------+                      | call tasks  |
//!                                            +-------------+
//!            +--------+   mpsc (bounded)            |
//!  socket <- | writer | <---------------------------+
//!            +--------+  frames batched, flushed when the queue is empty
//! ```

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::BytesMut;
use pyrpc_framing::{Codec, FrameError};
use pyrpc_proto::wire::{self, client_frame, server_frame};
use pyrpc_proto::{ErrorKind, RemoteError, PROTOCOL_VERSION};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::codec::{Decoder, Encoder};
use tokio_util::sync::CancellationToken;

use crate::dispatch::{self, ConnCtx};
use crate::server::Shared;

/// How much the read buffer grows when it is full and no frame is pending.
const READ_CHUNK: usize = 8 * 1024;
/// Replies are gathered into one write up to about this many bytes.
const WRITE_BATCH: usize = 256 * 1024;
/// A write buffer grown past this (by a large reply) is given back afterwards.
const WRITE_BUF_KEEP: usize = 1024 * 1024;

type ServerCodec = Codec<wire::ClientFrame, wire::ServerFrame>;

/// Serves one connection until it closes.
pub(crate) async fn serve<S>(shared: Arc<Shared>, io: S, peer: String)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let _slot = Slot::take(&shared);
    let overloaded = _slot.open > shared.config.max_connections;
    tracing::debug!(%peer, "connection opened");
    let (rd, mut wr) = tokio::io::split(io);
    let mut reader = FrameReader::new(rd, shared.config.max_frame_len);

    // ----- hello -----
    let hello = tokio::select! {
        r = tokio::time::timeout(shared.config.handshake_timeout, reader.next()) => r,
        _ = shared.close.cancelled() => return,
    };
    let hello = match hello {
        Err(_) => {
            tracing::debug!(%peer, "no hello within the handshake timeout; closing");
            return;
        }
        Ok(Ok(Some(frame))) => frame,
        Ok(Ok(None)) => {
            tracing::debug!(%peer, "connection closed before the hello");
            return;
        }
        Ok(Err(e)) => {
            log_frame_error(&peer, &e);
            return;
        }
    };
    tracing::trace!(%peer, "hello received");
    let mut codec = ServerCodec::with_max_frame_len(shared.config.max_frame_len);
    let refusal = match hello.kind {
        Some(client_frame::Kind::Hello(h)) => {
            if h.max_frame_len > 0 {
                let theirs = usize::try_from(h.max_frame_len).unwrap_or(usize::MAX);
                codec.set_max_encode_len(theirs.min(shared.config.max_frame_len));
            }
            if h.protocol_version != PROTOCOL_VERSION {
                Some(RemoteError::new(
                    ErrorKind::Protocol,
                    format!(
                        "unsupported protocol version {}; this server speaks {PROTOCOL_VERSION}",
                        h.protocol_version
                    ),
                ))
            } else if overloaded {
                Some(RemoteError::new(
                    ErrorKind::Overloaded,
                    format!(
                        "the server already serves {} connections",
                        shared.config.max_connections
                    ),
                ))
            } else if shared.shutdown.is_cancelled() {
                Some(RemoteError::new(
                    ErrorKind::ShuttingDown,
                    "the server is shutting down",
                ))
            } else {
                tracing::debug!(%peer, client = %h.peer_name, "hello");
                None
            }
        }
        _ => Some(RemoteError::new(
            ErrorKind::Protocol,
            "the first frame of a connection must be a hello",
        )),
    };
    let refused = refusal.is_some();
    if let Some(e) = &refusal {
        tracing::debug!(%peer, error = %e, "refusing connection");
    }
    let frame = wire::ServerFrame {
        kind: Some(server_frame::Kind::Hello(server_hello(&shared, refusal))),
    };
    let mut buf = BytesMut::new();
    if let Err(e) = codec.encode(frame, &mut buf) {
        tracing::warn!(%peer, error = %e, "cannot encode the hello");
        return;
    }
    if let Err(e) = write_now(&mut wr, &buf).await {
        tracing::debug!(%peer, error = %e, "cannot send the hello");
        return;
    }
    if refused {
        let _ = wr.shutdown().await;
        return;
    }

    // ----- requests -----
    let stop = shared.close.child_token();
    let kill = shared.kill.child_token();
    let in_flight = shared.config.max_in_flight_per_connection.max(1);
    let (tx, rx) = mpsc::channel(in_flight);
    let writer = tokio::spawn(write_loop(
        wr,
        codec,
        rx,
        stop.clone(),
        kill.clone(),
        peer.clone(),
    ));
    let conn = ConnCtx {
        peer: Arc::from(peer.as_str()),
        tx,
        stop: stop.clone(),
    };
    let permits = Arc::new(Semaphore::new(in_flight));
    loop {
        // Take a permit before reading: with `in_flight` requests running,
        // stop reading (backpressure) rather than pile up tasks.
        let permit = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            p = Arc::clone(&permits).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let frame = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            f = reader.next() => f,
        };
        match frame {
            Ok(Some(wire::ClientFrame {
                kind: Some(client_frame::Kind::Request(req)),
            })) => {
                tracing::trace!(%peer, id = req.id, "request");
                dispatch::handle(&shared, &conn, req, permit).await;
            }
            Ok(Some(_)) => {
                tracing::warn!(%peer, "frame that is not a request after the hello; closing");
                stop.cancel();
                kill.cancel();
                break;
            }
            Ok(None) => {
                tracing::debug!(%peer, "peer closed the connection");
                break;
            }
            Err(e) => {
                log_frame_error(&peer, &e);
                stop.cancel();
                kill.cancel();
                break;
            }
        }
    }
    // The writer ends once every reply queued by running calls is sent (they
    // hold clones of the queue) or the connection is killed.
    drop(conn);
    let _ = writer.await;
    tracing::debug!(%peer, "connection closed");
}

/// The server's hello, with `error` set when the connection is refused.
fn server_hello(shared: &Shared, error: Option<RemoteError>) -> wire::ServerHello {
    let c = &shared.config;
    wire::ServerHello {
        protocol_version: PROTOCOL_VERSION,
        peer_name: c.name.clone(),
        capabilities: Some(wire::Capabilities {
            nonblocking: c.nonblocking,
            max_frame_len: c.max_frame_len as u64,
            max_value_depth: u32::try_from(c.max_value_depth).unwrap_or(u32::MAX),
            pickle: c.allow_pickle,
            max_in_flight_per_connection: u32::try_from(c.max_in_flight_per_connection.max(1))
                .unwrap_or(u32::MAX),
        }),
        error: error.map(Into::into),
    }
}

fn log_frame_error(peer: &str, e: &FrameError) {
    if e.is_io() {
        tracing::debug!(%peer, error = %e, "connection failed");
    } else {
        tracing::warn!(%peer, error = %e, "bad frame from peer; closing its connection");
    }
}

async fn write_now<W: AsyncWrite + Unpin>(wr: &mut W, buf: &[u8]) -> std::io::Result<()> {
    wr.write_all(buf).await?;
    wr.flush().await
}

/// Sends queued replies: encodes all that are queued into one buffer, writes
/// and flushes it, and repeats, so replies are batched under load.
async fn write_loop<W: AsyncWrite + Unpin>(
    mut wr: W,
    mut codec: ServerCodec,
    mut rx: mpsc::Receiver<wire::Response>,
    stop: CancellationToken,
    kill: CancellationToken,
    peer: String,
) {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        let first = tokio::select! {
            r = rx.recv() => r,
            _ = kill.cancelled() => return,
        };
        let Some(first) = first else { break };
        encode_response(&mut codec, first, &mut buf, &peer);
        while buf.len() < WRITE_BATCH {
            match rx.try_recv() {
                Ok(resp) => encode_response(&mut codec, resp, &mut buf, &peer),
                Err(_) => break,
            }
        }
        let written = tokio::select! {
            r = write_now(&mut wr, &buf) => r,
            _ = kill.cancelled() => return,
        };
        if let Err(e) = written {
            tracing::debug!(%peer, error = %e, "write failed; closing the connection");
            stop.cancel();
            return;
        }
        buf.clear();
        if buf.capacity() > WRITE_BUF_KEEP {
            buf = BytesMut::with_capacity(READ_CHUNK);
        }
    }
    tokio::select! {
        _ = wr.shutdown() => {}
        _ = kill.cancelled() => {}
    }
}

/// Appends one reply frame; a reply larger than the peer accepts becomes a
/// `FRAME_TOO_LARGE` error for the same request.
fn encode_response(codec: &mut ServerCodec, resp: wire::Response, buf: &mut BytesMut, peer: &str) {
    let id = resp.id;
    tracing::trace!(%peer, id, "response");
    let frame = |resp| wire::ServerFrame {
        kind: Some(server_frame::Kind::Response(resp)),
    };
    match codec.encode(frame(resp), buf) {
        Ok(()) => {}
        Err(FrameError::TooLarge { len, max }) => {
            let e = RemoteError::new(
                ErrorKind::FrameTooLarge,
                format!("the reply of {len} bytes is larger than the limit of {max} bytes"),
            );
            if let Err(e) = codec.encode(frame(dispatch::error(id, e)), buf) {
                tracing::warn!(%peer, id, error = %e, "cannot encode a reply");
            }
        }
        Err(e) => tracing::warn!(%peer, id, error = %e, "cannot encode a reply"),
    }
}

// ===== FrameReader =====

/// Reads frames off a byte stream with the codec. The codec refuses
/// oversize and empty frames from the header alone and grows the buffer only
/// as bytes arrive.
struct FrameReader<R> {
    io: R,
    codec: ServerCodec,
    buf: BytesMut,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    fn new(io: R, max_frame_len: usize) -> Self {
        FrameReader {
            io,
            codec: ServerCodec::with_max_frame_len(max_frame_len),
            buf: BytesMut::new(),
        }
    }

    /// The next frame; `None` when the peer closed the stream.
    async fn next(&mut self) -> Result<Option<wire::ClientFrame>, FrameError> {
        loop {
            if let Some(frame) = self.codec.decode(&mut self.buf)? {
                return Ok(Some(frame));
            }
            if self.buf.capacity() == self.buf.len() {
                self.buf.reserve(READ_CHUNK);
            }
            if self.io.read_buf(&mut self.buf).await? == 0 {
                return Ok(None);
            }
        }
    }
}

// ===== Slot =====

/// Counts an open connection while alive.
struct Slot<'a> {
    shared: &'a Shared,
    /// Open connections, this one included.
    open: usize,
}

impl<'a> Slot<'a> {
    fn take(shared: &'a Shared) -> Self {
        let open = shared.connections.fetch_add(1, Ordering::SeqCst) + 1;
        Slot { shared, open }
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.shared.connections.fetch_sub(1, Ordering::SeqCst);
    }
}
