//! Between accepting a socket and reading its hello: telling a TLS client
//! from a plain one by its first byte, and the TLS handshake, on the
//! connection's own task (a slow or hostile handshake holds up no one else)
//! and within [`ServerConfig::handshake_timeout`](crate::ServerConfig).
//!
//! | server \ first byte | TLS record (`0x16`)     | anything else                  |
//! |---------------------|-------------------------|--------------------------------|
//! | with TLS            | handshake, then serve   | hello answered with a refusal  |
//! | without TLS         | closed (logged)         | serve                          |
//!
//! A plain client of a TLS server thus gets a clear pyrpc error ("this server
//! requires TLS"); a TLS client of a plain server sees the connection close
//! during its handshake, which it reports as "the server may not speak TLS".

use std::os::fd::OwnedFd;
use std::sync::Arc;

use pyrpc_proto::{ErrorKind, RemoteError};
use pyrpc_transport::Stream;

use crate::connection::{self, Admission, PlainSocket, Slot};
use crate::server::Shared;
use crate::warnlimit::limited_warn;

/// The refusal a plain connection to a TLS server gets in answer to its hello.
pub(crate) fn tls_required() -> RemoteError {
    RemoteError::new(
        ErrorKind::Protocol,
        "this server requires TLS: connect with TLS (give the client the CA \
         bundle that signed the server's certificate, e.g. tls_ca)",
    )
}

/// Serves a plain TCP or Unix connection on a [`PlainSocket`], which a
/// thread that answered a call may wait on for the next request
/// (`connection/linger.rs`).
async fn serve_plain(
    shared: Arc<Shared>,
    stream: Stream,
    peer: String,
    slot: Slot,
    admission: Admission,
) {
    // Only where a thread may wait on it: other servers keep tokio's
    // sockets.
    if !crate::dispatch::answers_directly(&shared) {
        return connection::serve(shared, stream, peer, slot, admission, None).await;
    }
    let fd: std::io::Result<OwnedFd> = match stream {
        Stream::Tcp(s) => s.into_std().map(OwnedFd::from),
        Stream::Unix(s) => s.into_std().map(OwnedFd::from),
        tls => return connection::serve(shared, tls, peer, slot, admission, None).await,
    };
    match fd {
        Ok(fd) => {
            let socket = PlainSocket::new(fd);
            connection::serve(shared, socket.clone(), peer, slot, admission, Some(socket)).await
        }
        Err(e) => {
            tracing::debug!(%peer, error = %pyrpc_proto::Report(&e), "connection failed before its hello");
        }
    }
}

/// Serves one accepted connection, TLS first if the server has it.
pub(crate) async fn serve_accepted(shared: Arc<Shared>, stream: Stream, peer: String) {
    let slot = Slot::take(&shared);
    if matches!(stream, Stream::Unix(_)) {
        return serve_plain(shared, stream, peer, slot, Admission::default()).await;
    }
    let deadline = tokio::time::Instant::now() + shared.config.handshake_timeout;
    let first = tokio::select! {
        r = tokio::time::timeout_at(deadline, stream.starts_with_tls_handshake()) => r,
        _ = shared.close.cancelled() => return,
    };
    let tls_first = match first {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %pyrpc_proto::Report(&e), "connection failed before its first byte");
            return;
        }
        Err(_) => {
            limited_warn!(shared.warn_limit, target: "pyrpc.server",
                %peer, "nothing received within the handshake timeout; closing"
            );
            return;
        }
    };
    match (&shared.config.tls, tls_first) {
        (None, false) => {
            serve_plain(shared, stream, peer, slot, Admission::default()).await;
        }
        (None, true) => {
            limited_warn!(shared.warn_limit, target: "pyrpc.auth",
                %peer,
                "a client started a TLS handshake but this server has no TLS; closing"
            );
        }
        (Some(_), false) => {
            // Logged (rate-limited) with the refusal once the hello is read.
            let admission = Admission {
                refusal: Some(tls_required()),
                ..Admission::default()
            };
            connection::serve(shared, stream, peer, slot, admission, None).await;
        }
        (Some(tls), true) => {
            let tls = tls.clone();
            let handshake = tokio::select! {
                r = tokio::time::timeout_at(deadline, tls.accept(stream)) => r,
                _ = shared.close.cancelled() => return,
            };
            match handshake {
                Ok(Ok(stream)) => {
                    tracing::debug!(%peer, client_cert = tls.requires_client_cert(), "TLS handshake done");
                    let admission = Admission {
                        client_cert: tls.requires_client_cert(),
                        ..Admission::default()
                    };
                    connection::serve(shared, stream, peer, slot, admission, None).await;
                }
                Ok(Err(e)) => {
                    limited_warn!(shared.warn_limit, target: "pyrpc.auth",
                        %peer, error = %pyrpc_proto::Report(&e), "TLS handshake failed"
                    );
                }
                Err(_) => {
                    limited_warn!(shared.warn_limit, target: "pyrpc.auth",
                        %peer, "TLS handshake not finished within the handshake timeout; closing"
                    );
                }
            }
        }
    }
}
