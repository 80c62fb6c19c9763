//! The pyrpc client: call methods of a pyrpc server by name, with positional
//! and keyword arguments, and get the return value, or the remote exception,
//! back.
//!
//! The client connects lazily, reuses one connection for all its calls (many
//! at once: replies are matched by request id), and reconnects on the next
//! call after the connection broke. Calls can time out at each stage
//! ([`TimeoutStage`]), and long calls can run *non-blocking*
//! ([`Client::nb_call`]): the server keeps the result and the client polls
//! for it, so a dropped connection loses nothing.
//!
//! # Layout
//!
//! * [`Client`] — the async client (`client.rs`); cheap to clone, shareable;
//!   [`ClientBuilder`] (`builder.rs`); typed calls through serde (`typed.rs`).
//! * [`macro@service`] — a typed client (and server) from a Rust trait;
//!   [`ServiceError`] and what the macro's code calls are in `service.rs`.
//! * [`blocking::Client`] — the same, blocking, owning a small runtime.
//! * [`ClientConfig`], [`CallOptions`] — settings, with the original pyrpc's
//!   names and defaults, and their per-call overrides (`config.rs`).
//! * [`CallError`], [`TimeoutStage`] — why a call failed (`error.rs`).
//! * [`ServerInfo`] — the capabilities the server announced.
//! * [`Connector`] — the transport seam: a client over any byte stream
//!   ([`Client::with_connector`]), e.g. an in-memory pipe in tests.
//! * `connection.rs` — one connection: hello, the reader task routing
//!   responses by id, and the pending map.
//! * `nonblocking.rs` — submit, fetch and release for non-blocking calls.
//! * [`MultiClient`] — one client over several servers (`multi.rs`,
//!   `multi/member.rs` for backoff, `multi/nb.rs` for following a
//!   non-blocking call across servers); [`Retry`] marks a call safe to run
//!   twice.
//!
//! # Feature flags
//!
//! * `auth` (default): shared-secret authentication in the hello;
//!   `ClientConfig::secret` answers a server that requires a shared secret. Without it the `hmac` and `sha2` crates are not built and no
//!   `Secret` can be made.
//!
//! # Examples
//!
//! ```no_run
//! use std::time::Duration;
//! use pyrpc_client::{Args, CallError, Client, TimeoutStage, Value};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::builder("127.0.0.1:50300".parse()?)
//!     .call_timeout(Duration::from_secs(5))
//!     .build();
//!
//! let ret = client.call("echo", Args::new().arg(1).kwarg("foo", "foo")).await?;
//! assert_eq!(ret.to_string(), "((1,), {'foo': 'foo'})");
//!
//! match client.nb_call("long_computation", Args::new()).await {
//!     Ok(v) => println!("done: {v}"),
//!     Err(CallError::Timeout { stage: TimeoutStage::Nb }) => println!("gave up"),
//!     Err(CallError::Remote(e)) => println!("it raised {e}\n{}", e.traceback),
//!     Err(e) => return Err(e.into()),
//! }
//! # Ok(()) }
//! ```

// The code `#[service]` writes names this crate `::pyrpc_client`, also in
// this crate's own doc tests.
extern crate self as pyrpc_client;

pub mod blocking;
mod builder;
mod client;
mod config;
mod connection;
mod connector;
mod error;
mod multi;
mod nonblocking;
mod service;
mod stream;
mod typed;

#[doc(hidden)]
pub mod __private {
    //! Used by the code `#[service]` and `#[derive(Exception)]` write.
    pub use crate::service::{arg, BlockingServiceClient, ServiceClient};
    pub use pyrpc_proto::__private::derive_support;
}

pub use builder::ClientBuilder;
pub use client::Client;
pub use config::{CallOptions, ClientConfig};
pub use connection::ServerInfo;
pub use connector::{BoxStream, ByteStream, Connector};
pub use error::{CallError, ProtocolError, TimeoutStage};
pub use multi::{MultiClient, NoAddresses, Retry};
pub use pyrpc_macros::{service, Exception};
pub use service::ServiceError;
pub use stream::{RawReply, Reply, ReplyStream, STREAM_WINDOW};
// What a client needs, so that `pyrpc-client` is its only pyrpc dependency.
pub use pyrpc_proto::handshake::ClientHandshakeError;
pub use pyrpc_proto::{
    from_value, to_value, Args, ErrorKind, Exception, MethodInfo, RemoteError, RemoteErrorInfo,
    Report, SerdeError, ServerStats, Value,
};
pub use pyrpc_transport::Address;
