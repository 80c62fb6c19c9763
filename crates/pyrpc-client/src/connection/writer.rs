//! The write half of a connection: the hello's frames, written before the
//! connection is shared, then the connection's [`SharedWriter`] (the same
//! writer design as the server's, decision 0071), written by whichever
//! caller finds it free (see [`Connection`](super::Connection)).

use pyrpc_framing::{FrameChunks, FrameError, SharedWriter};
use pyrpc_proto::raw::ClientFrame;
use tokio::io::AsyncWriteExt;

use super::*;

/// The connection's writer, shared by its callers.
pub(super) type RequestWriter = SharedWriter<BoxedWrite, ClientCodec>;

/// Encodes `frame` and writes and flushes it, on a write half not yet
/// shared (the hello and the authentication).
pub(super) async fn write_alone(
    io: &mut BoxedWrite,
    codec: &mut ClientCodec,
    frame: &ClientFrame,
) -> Result<(), FrameError> {
    let mut buf = FrameChunks::new();
    codec.encode_chunks(frame, &mut buf)?;
    io.write_all_buf(&mut buf).await?;
    io.flush().await?;
    Ok(())
}
