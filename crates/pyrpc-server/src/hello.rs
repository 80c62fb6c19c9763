//! The server's side of the hello and authentication: carries out what
//! [`ServerHandshake`] (the rules, in `pyrpc_proto::handshake`) asks, over
//! the connection's reader and writer, within the handshake timeout.

use bytes::BytesMut;
use pyrpc_proto::handshake::{
    Admission as Verdict, RefusalCause, ServerHandshake, ServerSettings, ServerStep,
};
use pyrpc_proto::{raw, wire};
use pyrpc_proto::{ErrorKind, RemoteError};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::Encoder;

use crate::connection::{Admission, ServerCodec};
use crate::reader::FrameReader;
use crate::server::Shared;
use crate::warnlimit::limited_warn;

/// A connection that passed the handshake.
pub(crate) struct Greeted {
    /// The codec for the replies, limited to what the client accepts.
    pub(crate) codec: ServerCodec,
    /// The client proved it holds the secret, or presented a verified
    /// certificate.
    pub(crate) authenticated: bool,
}

/// The handshake's settings, from the server's configuration.
fn settings(shared: &Shared) -> ServerSettings {
    let c = &shared.config;
    let capabilities = wire::Capabilities {
        nonblocking: c.nonblocking,
        max_frame_len: c.max_frame_len as u64,
        max_value_depth: u32::try_from(c.max_value_depth).unwrap_or(u32::MAX),
        pickle: c.allow_pickle,
        max_in_flight_per_connection: u32::try_from(c.max_in_flight_per_connection.max(1))
            .unwrap_or(u32::MAX),
    };
    ServerSettings::new(c.name.clone(), capabilities, c.max_frame_len).with_secret(c.secret.clone())
}

/// Exchanges hellos (and authenticates) with the client; `None` when the
/// connection ends here (refused, closed, timed out, or the server closes).
pub(crate) async fn exchange<R, W>(
    shared: &Shared,
    reader: &mut FrameReader<R>,
    wr: &mut W,
    peer: &str,
    overloaded: bool,
    mut admission: Admission,
) -> Option<Greeted>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let deadline = tokio::time::Instant::now() + shared.config.handshake_timeout;
    let challenge = match &shared.config.secret {
        None => None,
        Some(_) => match pyrpc_proto::auth::nonce() {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::error!(%peer, error = %pyrpc_proto::Report(&e), "no random nonce for the challenge");
                None
            }
        },
    };
    let mut machine = ServerHandshake::new(settings(shared), challenge);
    let tls_refusal = admission.refusal.is_some();
    let mut codec = ServerCodec::with_max_frame_len(shared.config.max_frame_len);
    loop {
        let read = tokio::select! {
            r = tokio::time::timeout_at(deadline, reader.next(None, &|| false)) => r,
            _ = shared.close.cancelled() => return None,
        };
        let step = match read {
            Err(_) => match machine.on_timeout() {
                Some(step) => step,
                None => {
                    limited_warn!(shared.warn_limit, target: "pyrpc.server",
                        %peer, "no hello within the handshake timeout; closing");
                    return None;
                }
            },
            Ok(Ok(Some(frame))) => {
                let verdict = if let Some(refusal) = admission.refusal.take() {
                    Verdict::Refuse(refusal)
                } else if overloaded {
                    Verdict::Refuse(RemoteError::new(
                        ErrorKind::Overloaded,
                        format!(
                            "the server already serves {} connections",
                            shared.config.max_connections
                        ),
                    ))
                } else if shared.shutdown.is_cancelled() {
                    Verdict::Refuse(RemoteError::new(
                        ErrorKind::ShuttingDown,
                        "the server is shutting down",
                    ))
                } else {
                    Verdict::Admit
                };
                // The rules read generated frames; a request whose values
                // do not decode is as much "not a hello" as any request.
                let frame: wire::ClientFrame = raw::transcode(&frame).unwrap_or_default();
                machine.on_frame(frame, verdict)
            }
            Ok(Ok(None)) => {
                tracing::debug!(%peer, waiting_for = machine.waiting_for(),
                    "connection closed during the handshake");
                return None;
            }
            Ok(Err(e)) => {
                e.log(shared, peer);
                return None;
            }
        };
        let frame = raw::ServerFrame {
            kind: Some(raw::server_frame::Kind::Hello(step.hello().clone())),
        };
        match step {
            ServerStep::Send(_) => {
                if !send_hello(wr, &mut codec, frame, peer).await {
                    let _ = wr.shutdown().await;
                    return None;
                }
            }
            ServerStep::Refuse { cause, error, .. } => {
                log_refusal(shared, peer, cause, &error, tls_refusal);
                send_hello(wr, &mut codec, frame, peer).await;
                let _ = wr.shutdown().await;
                return None;
            }
            ServerStep::Ready { established, .. } => {
                if let Some(theirs) = established.max_encode_len {
                    codec.set_max_encode_len(theirs);
                }
                if established.authenticated {
                    tracing::debug!(target: "pyrpc.auth", %peer, "client authenticated");
                } else {
                    tracing::debug!(%peer, client = %established.client_name, "hello");
                }
                if !send_hello(wr, &mut codec, frame, peer).await {
                    let _ = wr.shutdown().await;
                    return None;
                }
                return Some(Greeted {
                    codec,
                    authenticated: established.authenticated || admission.client_cert,
                });
            }
        }
    }
}

/// Logs a refusal: a broken protocol or a failed authentication at WARNING
/// (rate-limited), the rest (overload, shutdown) at DEBUG.
fn log_refusal(
    shared: &Shared,
    peer: &str,
    cause: RefusalCause,
    error: &RemoteError,
    tls_refusal: bool,
) {
    match cause {
        RefusalCause::Admission if tls_refusal => {
            limited_warn!(shared.warn_limit, target: "pyrpc.auth",
                %peer, "refusing a client: {}", error.message);
        }
        RefusalCause::NotHello | RefusalCause::Version | RefusalCause::FrameLimit => {
            limited_warn!(shared.warn_limit, target: "pyrpc.server",
                %peer, error = %error, "refusing connection");
        }
        RefusalCause::BadAnswer | RefusalCause::NoAnswer | RefusalCause::Timeout => {
            limited_warn!(shared.warn_limit, target: "pyrpc.auth",
                %peer, "refusing connection: {}", error.message);
        }
        _ => tracing::debug!(%peer, error = %error, "refusing connection"),
    }
}

/// Encodes and sends a hello; false (logged) when that failed.
async fn send_hello<W: AsyncWrite + Unpin>(
    wr: &mut W,
    codec: &mut ServerCodec,
    frame: raw::ServerFrame,
    peer: &str,
) -> bool {
    let mut buf = BytesMut::new();
    if let Err(e) = codec.encode(frame, &mut buf) {
        tracing::warn!(%peer, error = %pyrpc_proto::Report(&e), "cannot encode the hello");
        return false;
    }
    let sent = async {
        wr.write_all(&buf).await?;
        wr.flush().await
    };
    if let Err(e) = sent.await {
        tracing::debug!(%peer, error = %pyrpc_proto::Report(&e), "cannot send the hello");
        return false;
    }
    true
}
