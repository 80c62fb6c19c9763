//! [`FrameError`]: why a frame could not be read or written.
//!
//! Like every pyrpc error, its `Display` says what failed and leaves the
//! cause to `source()`: print the whole chain with `pyrpc_proto::Report`.

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The frame is longer than the limit. On decode this is seen from the
    /// header alone; on encode, before anything is written.
    #[error("frame of {len} bytes is larger than the limit of {max} bytes")]
    TooLarge {
        /// The frame's length.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// A header announcing a frame of zero bytes, which the protocol forbids.
    #[error("frame with zero length")]
    Empty,
    /// The body is not a valid protobuf message of the expected type.
    #[error("frame body is not a valid message")]
    Decode(#[from] prost::DecodeError),
    /// The message could not be encoded (a buffer without room: a bug).
    #[error("cannot encode the frame")]
    Encode(#[from] prost::EncodeError),
    /// The receiver's check refused the frame before decoding it (see
    /// `Codec::set_precheck`), e.g. because it would decode to more memory
    /// than a budget allows. The body is kept, as for [`FrameError::Decode`].
    #[error("frame refused before decoding: {0}")]
    Refused(String),
    /// The underlying stream failed.
    #[error("i/o error")]
    Io(#[from] std::io::Error),
}

impl FrameError {
    /// True when the error came from the stream rather than from the bytes on it.
    pub fn is_io(&self) -> bool {
        matches!(self, FrameError::Io(_))
    }
}
