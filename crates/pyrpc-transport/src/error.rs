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
    #[error("cannot connect to {addr}")]
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
    #[error("cannot listen on {addr}")]
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
    #[error("accept failed")]
    Accept(#[source] std::io::Error),
}

/// Why TLS could not be set up, or a TLS handshake failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read.
    #[error("cannot read the {what} {path:?}")]
    Read {
        /// What the file should hold.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// PEM text holds nothing usable (no certificate, no key, garbage).
    #[error("invalid {what}: {reason}")]
    Pem {
        /// What the text should hold.
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A client certificate without its key, or a key without its certificate.
    #[error("a client certificate needs both the certificate chain and its key")]
    Incomplete,
    /// rustls refused the configuration (e.g. a key that does not match the
    /// certificate).
    #[error("TLS configuration refused")]
    Config(#[source] rustls::Error),
    /// No CA bundle was given and the system has no root certificates.
    #[error("no CA bundle given and no system root certificates found ({errors:?})")]
    NoSystemRoots {
        /// What went wrong while loading them.
        errors: Vec<String>,
    },
    /// The name to verify the server's certificate against is neither a DNS
    /// name nor an IP address.
    #[error("{name:?} is not a valid TLS server name")]
    ServerName {
        /// The name.
        name: String,
    },
    /// TLS runs over TCP only.
    #[error("TLS is for TCP connections only, not Unix sockets")]
    NotTcp,
    /// The handshake failed; `reason` says why.
    #[error("TLS handshake with the {peer} failed: {reason}")]
    Handshake {
        /// "server" or "client": the other end.
        peer: &'static str,
        /// What went wrong, in words.
        reason: String,
    },
}
