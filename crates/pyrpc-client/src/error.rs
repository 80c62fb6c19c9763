//! [`CallError`]: why a call did not return a value, [`ProtocolError`] and
//! [`TimeoutStage`].
//!
//! `Display` says what failed and leaves the cause to `source()`, so that a
//! chain never says a thing twice; [`Report`](pyrpc_proto::Report) prints
//! the whole chain.

use std::fmt;
use std::sync::Arc;

use pyrpc_framing::FrameError;
use pyrpc_proto::handshake::ClientHandshakeError;
use pyrpc_proto::{RemoteError, SerdeError, ValueError};

/// Why a call did not return a value.
///
/// A failure of the remote method (or a refusal by the remote runtime) is
/// data, [`CallError::Remote`]; everything else happened on this side or on
/// the way.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// A timeout passed; `stage` says which one.
    #[error("timed out {stage}")]
    Timeout {
        /// What was being waited for.
        stage: TimeoutStage,
    },
    /// The server could not be reached: the connection was refused, the
    /// socket file does not exist, the host is unreachable.
    #[error("cannot connect to {addr}")]
    NoSocket {
        /// The address tried.
        addr: String,
        /// Why the connection failed.
        #[source]
        source: std::io::Error,
    },
    /// TLS failed: the handshake (an expired or untrusted certificate, a
    /// missing client certificate, a server that does not speak TLS), or
    /// the TLS settings themselves. The message says which. Trying again
    /// does not help, so this is not a connection error.
    #[error("TLS with {addr} failed: {reason}")]
    Tls {
        /// The address.
        addr: String,
        /// What went wrong, in words.
        reason: String,
    },
    /// The server broke the protocol (a frame that does not decode, an
    /// unexpected message), or a request could not be framed (larger than
    /// the server accepts): [`ProtocolError`] says which.
    #[error("protocol error")]
    Protocol(#[from] ProtocolError),
    /// The remote method raised, or the server refused the request (no such
    /// method, overloaded, unknown non-blocking call, ...).
    #[error("remote error")]
    Remote(#[source] RemoteError),
    /// A value could not be sent or accepted (nested too deep, malformed).
    #[error("invalid value")]
    Value(#[from] ValueError),
    /// The connection closed before the reply arrived. The next call
    /// connects again.
    #[error("connection closed")]
    Closed,
    /// A typed call ([`Client::call_typed`](crate::Client::call_typed)):
    /// the arguments could not be converted to values, or the reply did not
    /// fit the expected type; the message names the path of the part that
    /// did not fit.
    #[error("typed call")]
    Typed(#[from] SerdeError),
}

/// How the protocol was broken, or why a request could not be framed.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A frame from the server that does not decode (or is too large).
    #[error("bad frame from the server")]
    BadFrame(#[source] Arc<FrameError>),
    /// The hello exchange failed on this side's checks (the server's own
    /// refusals are [`CallError::Remote`]).
    #[error("the handshake failed")]
    Handshake(#[source] ClientHandshakeError),
    /// The server sent a second hello after the handshake.
    #[error("the server sent a second hello")]
    SecondHello,
    /// The server sent a frame of no known kind.
    #[error("the server sent a frame of no known kind")]
    UnknownFrame,
    /// A response carried no outcome.
    #[error("the server sent a response with no outcome")]
    NoOutcome,
    /// A response of the wrong kind for its request.
    #[error("the server answered a {request} with {answer}")]
    UnexpectedAnswer {
        /// The request, e.g. `"ping"`.
        request: String,
        /// What came back, e.g. `"a value"`.
        answer: &'static str,
    },
    /// The request is larger than the server accepts; nothing was sent.
    #[error("request of {len} bytes is larger than the server's limit of {max} bytes")]
    RequestTooLarge {
        /// The encoded request's length.
        len: usize,
        /// The server's limit.
        max: usize,
    },
    /// The request could not be framed (nothing was sent).
    #[error("cannot send the request")]
    Encode(#[source] Arc<FrameError>),
}

impl CallError {
    /// The timeout stage, if this is a [`CallError::Timeout`].
    pub fn timeout_stage(&self) -> Option<TimeoutStage> {
        match self {
            CallError::Timeout { stage } => Some(*stage),
            _ => None,
        }
    }

    /// The remote error, if this is a [`CallError::Remote`].
    pub fn remote(&self) -> Option<&RemoteError> {
        match self {
            CallError::Remote(e) => Some(e),
            _ => None,
        }
    }

    /// True when the failure lies in reaching the server or in the
    /// connection to it, so that trying again on a new connection may work:
    /// [`NoSocket`](CallError::NoSocket), [`Closed`](CallError::Closed) and
    /// the connect timeout.
    ///
    /// A reply or send timeout is not one: the connection was up and the
    /// server (or the method) was slow, which a retry does not cure.
    pub fn is_connection_error(&self) -> bool {
        matches!(
            self,
            CallError::NoSocket { .. }
                | CallError::Closed
                | CallError::Timeout {
                    stage: TimeoutStage::Connect
                }
        )
    }

    /// True when a non-blocking call should drop its connection and go on
    /// on a new one: a connection error, or a submit or fetch that went
    /// unanswered (a connection that died without a word looks like that).
    pub(crate) fn is_nb_retryable(&self) -> bool {
        self.is_connection_error()
            || matches!(
                self,
                CallError::Timeout {
                    stage: TimeoutStage::Send | TimeoutStage::Reply
                }
            )
    }
}

impl From<RemoteError> for CallError {
    fn from(e: RemoteError) -> Self {
        CallError::Remote(e)
    }
}

/// Which timeout passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimeoutStage {
    /// Connecting and exchanging hellos took longer than
    /// `socket_connect_timeout` (capped by `call_timeout`).
    Connect,
    /// Writing the request took longer than `socket_send_timeout` (capped
    /// by `call_timeout`): the server is not reading.
    Send,
    /// No reply arrived within `call_timeout`.
    Reply,
    /// A non-blocking call did not finish within its `call_timeout`.
    Nb,
}

impl fmt::Display for TimeoutStage {
    /// The stage as the tail of "timed out ...".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeoutStage::Connect => "connecting to the server (socket_connect_timeout)",
            TimeoutStage::Send => "sending the request (socket_send_timeout)",
            TimeoutStage::Reply => "waiting for the reply (call_timeout)",
            TimeoutStage::Nb => "waiting for the non-blocking call (call_timeout)",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_messages_name_the_stage_and_the_setting() {
        let e = CallError::Timeout {
            stage: TimeoutStage::Reply,
        };
        assert_eq!(
            e.to_string(),
            "timed out waiting for the reply (call_timeout)"
        );
        let e = CallError::Timeout {
            stage: TimeoutStage::Connect,
        };
        assert_eq!(
            e.to_string(),
            "timed out connecting to the server (socket_connect_timeout)"
        );
        assert_eq!(e.timeout_stage(), Some(TimeoutStage::Connect));
    }

    #[test]
    fn connection_errors_are_told_apart() {
        assert!(CallError::Closed.is_connection_error());
        assert!(!CallError::Protocol(ProtocolError::NoOutcome).is_connection_error());
        assert!(!CallError::Timeout {
            stage: TimeoutStage::Nb
        }
        .is_connection_error());
        assert!(!CallError::Remote(RemoteError::no_such_method("m")).is_connection_error());
        // A slow method is no connection failure; a missing server is.
        let slow = CallError::Timeout {
            stage: TimeoutStage::Reply,
        };
        assert!(!slow.is_connection_error());
        assert!(slow.is_nb_retryable());
        assert!(CallError::Timeout {
            stage: TimeoutStage::Connect
        }
        .is_connection_error());
    }

    #[test]
    fn display_leaves_the_cause_to_source_and_report_shows_the_chain() {
        use pyrpc_proto::Report;
        use std::error::Error as _;
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let e = CallError::NoSocket {
            addr: "unix:/x".into(),
            source: io,
        };
        assert_eq!(e.to_string(), "cannot connect to unix:/x");
        assert_eq!(
            Report(&e).to_string(),
            "cannot connect to unix:/x: connection refused"
        );
        let e = CallError::from(ProtocolError::BadFrame(Arc::new(FrameError::Empty)));
        assert_eq!(e.to_string(), "protocol error");
        let bad = e.source().expect("the protocol error");
        assert!(bad.downcast_ref::<ProtocolError>().is_some());
        assert_eq!(
            Report(&e).to_string(),
            "protocol error: bad frame from the server: frame with zero length"
        );
    }

    #[test]
    fn a_remote_error_is_the_source() {
        use std::error::Error as _;
        let e = CallError::Remote(RemoteError::no_such_method("m"));
        let source = e.source().expect("a source");
        assert_eq!(
            source.to_string(),
            RemoteError::no_such_method("m").to_string()
        );
        assert!(source.downcast_ref::<RemoteError>().is_some());
    }
}
