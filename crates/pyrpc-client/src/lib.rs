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
//! * [`Client`] — the async client (`client.rs`); cheap to clone, shareable.
//! * [`blocking::Client`] — the same, blocking, owning a small runtime.
//! * [`ClientConfig`], [`CallOptions`] — settings, with the original pyrpc's
//!   names and defaults, and their per-call overrides (`config.rs`).
//! * [`CallError`], [`TimeoutStage`] — why a call failed (`error.rs`).
//! * [`ServerInfo`] — the capabilities the server announced.
//! * `connection.rs` — one connection: hello, the reader task routing
//!   responses by id, and the pending map.
//! * `nonblocking.rs` — submit, fetch and release for non-blocking calls.
//!
//! # Examples
//!
//! ```no_run
//! use std::time::Duration;
//! use pyrpc_client::{CallError, Client, ClientConfig, TimeoutStage};
//! use pyrpc_proto::{Args, Value};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = ClientConfig {
//!     call_timeout: Some(Duration::from_secs(5)),
//!     ..ClientConfig::default()
//! };
//! let client = Client::with_config("127.0.0.1:50300".parse()?, config);
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

// `CallError::Remote` carries a `RemoteError` by value, as the API contract
// (docs/decisions/0001) has it, which makes `CallError` large; errors are the
// rare path, and boxing would change the contract's shape for every user.
#![allow(clippy::result_large_err)]

pub mod blocking;
mod client;
mod config;
mod connection;
mod error;
mod nonblocking;

pub use client::Client;
pub use config::{CallOptions, ClientConfig};
pub use connection::ServerInfo;
pub use error::{CallError, TimeoutStage};
