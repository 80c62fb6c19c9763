//! Opening a connection: dialing TCP or a Unix socket (with TLS if
//! configured) and the I/O side of the hello (the rules are
//! `pyrpc_proto::handshake`'s).

use futures::StreamExt;
use pyrpc_framing::FrameError;
use pyrpc_proto::handshake::ClientHandshakeError;
use pyrpc_proto::raw::{client_frame, ClientFrame, ServerFrame};
use pyrpc_proto::wire;
use pyrpc_transport::{Address, TransportError};
use tokio::io::AsyncRead;
use tokio::time::Instant;
use tokio_util::codec::FramedRead;

use super::*;
use crate::config::ClientConfig;
use crate::error::{CallError, ProtocolError, TimeoutStage};

/// Connects to `addr` over TCP or a Unix socket, with TLS if configured.
pub(super) async fn dial(
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

/// A frame of the handshake (a hello or an answer to the challenge, all
/// that [`ClientHandshake`] sends) as the frame type the codec writes.
pub(super) fn handshake_frame(frame: wire::ClientFrame) -> ClientFrame {
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
pub(super) async fn read_hello<R: AsyncRead + Unpin>(
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
pub(super) fn handshake_error(e: ClientHandshakeError) -> CallError {
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
pub(super) fn unauthenticated(message: String) -> CallError {
    CallError::Remote(pyrpc_proto::RemoteError::new(
        pyrpc_proto::ErrorKind::Unauthenticated,
        message,
    ))
}
