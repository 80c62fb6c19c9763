//! [`FrameWriter`]: the write half of a connection, written by whichever
//! caller holds its lock (see [`Connection`](super::Connection)).

use pyrpc_framing::{FrameChunks, FrameError};
use pyrpc_proto::raw::ClientFrame;
use tokio::io::AsyncWriteExt;

use super::*;

// ===== FrameWriter =====

/// A small-piece buffer grown past this (by a large string) is given back
/// once written.
pub(super) const WRITE_BUF_KEEP: usize = 1024 * 1024;

/// Frames encoded by callers, waiting for a writer (see [`Connection`]).
pub(super) struct Outbox {
    pub(super) codec: ClientCodec,
    pub(super) frames: FrameChunks,
    /// How many frames were ever queued: a caller's ticket is the count
    /// right after its own frame.
    pub(super) queued: u64,
}

/// The write half of the connection and the frames not yet written.
///
/// Frames are encoded whole into `pending` before any byte is written, and
/// bytes not yet written stay there for the next write, so a caller that
/// gives up mid-write never leaves half a frame on the wire. A large `bytes`
/// field is a chunk of `pending` of its own, written from the caller's
/// buffer (vectored writes), never copied.
pub(super) struct FrameWriter {
    pub(super) io: BoxedWrite,
    /// Encodes the handshake's frames; requests are encoded by the outbox.
    pub(super) codec: ClientCodec,
    pub(super) pending: FrameChunks,
    /// How many queued frames (see [`Outbox::queued`]) are written.
    pub(super) written: u64,
}

impl FrameWriter {
    pub(super) fn new(io: BoxedWrite, max_frame_len: usize) -> Self {
        FrameWriter {
            io,
            codec: ClientCodec::with_max_frame_len(max_frame_len),
            pending: FrameChunks::new(),
            written: 0,
        }
    }

    /// Encodes `frame` after what is pending, then writes and flushes it all.
    pub(super) async fn send(&mut self, frame: &ClientFrame) -> Result<(), FrameError> {
        self.codec.encode_chunks(frame, &mut self.pending)?;
        self.write_pending().await
    }

    /// Writes and flushes everything pending.
    pub(super) async fn write_pending(&mut self) -> Result<(), FrameError> {
        self.io.write_all_buf(&mut self.pending).await?;
        self.io.flush().await?;
        if self.pending.buffer_capacity() > WRITE_BUF_KEEP {
            self.pending = FrameChunks::new();
        }
        Ok(())
    }
}
