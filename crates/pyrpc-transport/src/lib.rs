//! pyrpc transports: where a server listens and a client connects.
//!
//! # Layout
//!
//! * [`Address`] — TCP (`host:port`, `tcp://host:port`) or Unix socket
//!   (`unix:/path`, `/path`), parsed from and displayed as text. An empty host
//!   means all interfaces for a listener and the local host for a connector,
//!   as in the original pyrpc's `('', port)`.
//! * [`Listener`] — binds an address; for a Unix socket it replaces a stale
//!   socket file (one nobody listens on) but never any other file, sets the
//!   file's mode if asked, and removes the file it created when dropped.
//! * [`connect`] — connects with a timeout.
//! * [`Balancer`] — a supervisor process accepts and hands each connection
//!   to the worker process with the fewest open ones;
//!   [`Listener::from_handoff`] is the worker's side.
//! * [`Stream`] — one stream type for both kinds, `AsyncRead + AsyncWrite`.
//! * [`ServerTls`], [`ClientTls`] — TLS over TCP (rustls with `ring`): the
//!   [`Stream::Tls`] variant comes out of their handshakes.
//!
//! The server and client crates accept any `AsyncRead + AsyncWrite` stream, so
//! `tokio::io::duplex` serves as an in-memory transport in tests (the client
//! through `Client::with_connector`). Framing is `pyrpc-framing`'s job: this
//! crate moves bytes.
//!
//! # Examples
//!
//! ```no_run
//! # async fn demo() -> Result<(), pyrpc_transport::TransportError> {
//! use std::time::Duration;
//! use pyrpc_transport::{connect, Address, Listener};
//!
//! let addr: Address = "127.0.0.1:0".parse()?;
//! let listener = Listener::bind(&addr).await?;
//! let bound = listener.local_address()?;
//! let client = connect(&bound, Duration::from_secs(1)).await?;
//! let (server_side, peer) = listener.accept().await?;
//! println!("{peer} connected");
//! # Ok(()) }
//! ```

mod address;
mod connect;
mod error;
mod handoff;
mod listener;
mod stream;
mod tls;

pub use address::Address;
pub use connect::connect;
pub use error::{TlsError, TransportError};
pub use handoff::{Balancer, CloseReport, CLOSED, READY};
pub use listener::{Listener, ListenerOptions};
pub use stream::{PeerInfo, Stream};
pub use tls::{describe_handshake_error, tls_failure, ClientTls, ServerTls, Side, ALPN};
