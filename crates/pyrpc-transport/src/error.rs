//! [`TransportError`]: why an address could not be parsed, bound or reached.

use std::path::PathBuf;

/// Why an address could not be parsed, bound or reached.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The text is not an address.
    #[error("invalid address {text:?}: {reason}")]
    InvalidAddress {
        /// The text given.
        text: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Connecting failed (refused, no such socket file, unreachable).
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address.
        addr: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Connecting took longer than the timeout.
    #[error("connecting to {addr} timed out")]
    ConnectTimeout {
        /// The address.
        addr: String,
    },
    /// Binding failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file that is not a socket sits at the Unix socket path; pyrpc never
    /// deletes it.
    #[error("{path:?} exists and is not a socket; refusing to replace it")]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// Another server listens on the Unix socket path.
    #[error("another process is listening on {path:?}")]
    InUse {
        /// The path.
        path: PathBuf,
    },
    /// Accepting a connection failed.
    #[error("accept failed: {0}")]
    Accept(#[source] std::io::Error),
}
