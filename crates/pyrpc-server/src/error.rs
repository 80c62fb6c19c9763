//! [`ServerError`]: why a server could not start or run.
//!
//! Failures of single calls are not here: they travel to the client as
//! [`RemoteError`](pyrpc_proto::RemoteError) data.

/// Why a server could not start or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The address could not be bound (in use, not a socket, permission denied).
    #[error(transparent)]
    Transport(#[from] pyrpc_transport::TransportError),
    /// [`Server::start`](crate::Server::start) could not build its tokio runtime.
    #[error("cannot start the tokio runtime")]
    Runtime(#[source] std::io::Error),
    /// [`Server::start`](crate::Server::start) could not listen for SIGTERM.
    #[error("cannot install the signal handler")]
    Signal(#[source] std::io::Error),
    /// [`ServerConfig::result_store`](crate::ServerConfig::result_store)
    /// names a store this build cannot use.
    #[error("cannot use the result store: {0}")]
    ResultStore(String),
}
