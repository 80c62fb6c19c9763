//! What a connection knows of its server ([`ServerInfo`]) and why it
//! stops ([`Broken`]).

use std::sync::Arc;

use pyrpc_framing::FrameError;
use pyrpc_proto::wire;
use tracing::debug;

use crate::error::{CallError, ProtocolError};

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
    pub(super) fn from_hello(hello: &wire::ServerHello) -> Self {
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
    pub(super) fn from_frame(e: FrameError) -> Self {
        if e.is_io() {
            debug!(error = %pyrpc_proto::Report(&e), "connection failed");
            Broken::Closed
        } else {
            Broken::Protocol(ProtocolError::BadFrame(Arc::new(e)))
        }
    }
}
