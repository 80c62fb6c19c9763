//! The pyrpc server: exposes the methods of a [`Callee`] to pyrpc clients
//! over TCP or Unix sockets.
//!
//! A [`Server`] answers `Call`s by dispatching them to its callee (a Rust
//! [`Methods`] table, or the Python binding's object), runs the calls of one
//! connection concurrently, keeps the results of non-blocking calls until they
//! are fetched and released (a reaper removes abandoned ones), and shuts down
//! gracefully. Failures of calls travel back as
//! [`RemoteError`] data; only failures to start
//! are [`ServerError`]s.
//!
//! # Layout
//!
//! * `config.rs` — [`ServerConfig`]: every knob, with its default.
//! * `callee.rs` — [`Callee`] (what calls go to), [`CallContext`] (and
//!   [`CallContext::current`], the context of the running call).
//! * `methods.rs` — [`Methods`] (a Rust method table: inline, blocking and
//!   async methods, typed or not).
//! * `typed.rs` — reading arguments as Rust types (a tuple is the argument
//!   list, another type the one argument, keywords bound by name).
//! * [`macro@service`] (from `pyrpc-macros`) — a typed service from a trait;
//!   `service.rs` is what its code calls.
//! * `server.rs` — [`Server`], [`ServerBuilder`], [`ServerHandle`]: binding,
//!   the accept loop and the shutdown sequence.
//! * `accept.rs` — a TLS client told from a plain one by its first byte,
//!   and the TLS handshake, on the connection's own task.
//! * `warnlimit.rs` — warnings about bad peers, rate-limited.
//! * `connection.rs` — one connection: the hello, a reader with bounded
//!   requests in flight, one writer task batching replies, the idle timeout
//!   and the reply queue bounded in bytes.
//! * `budget.rs` — the server-wide ceiling on bytes held for partial frames.
//! * `dispatch.rs` — one request to one response: builtins (`connected`,
//!   `shutdown`, names starting with `_` refused), argument checks,
//!   `synchronous`, deadlines, hooks, Submit/Fetch/Release.
//! * `results.rs` — the synchronous store of non-blocking results; it takes
//!   the time as an argument and is tested on a virtual clock.
//! * `reaper.rs` — the loop purging results past their keep-time, which also
//!   logs the server's statistics as a `tracing` event each round.
//! * `stats.rs` — call counters and a latency histogram (atomics only), read
//!   by the `Stats` request.
//! * `hooks.rs` — [`CallRecord`] and its one-line [`summary`](CallRecord::summary).
//! * `error.rs` — [`ServerError`].
//!
//! # Feature flags
//!
//! * `auth` (default): shared-secret authentication in the hello;
//!   `ServerConfig::secret` requires clients to prove a shared secret. Without it the `hmac` and `sha2` crates are not built and no
//!   `Secret` can be made.
//!
//! The library emits `tracing` events (an `rpc` span per call, `debug!` for
//! connection lifecycle, `trace!` per frame) and never installs a subscriber.
//!
//! # Examples
//!
//! ```
//! use pyrpc_proto::{Args, Value};
//! use pyrpc_server::{Methods, Server, ServerError};
//! use pyrpc_transport::Address;
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), ServerError> {
//! let methods = Methods::new().add("echo", |args: Args| {
//!     let (args, kwargs) = args.into_values();
//!     Ok(Value::tuple([args, kwargs]))
//! });
//! let server = Server::builder(methods).nonblocking(true).build();
//! // Port 0: the OS picks a free port; `local_address` says which.
//! let handle = server.bind(&Address::tcp("127.0.0.1", 0)).await?;
//! println!("listening on {}", handle.local_address());
//! // ... later, or from a client's `shutdown()`:
//! handle.shutdown();
//! handle.wait().await;
//! # Ok(()) }
//! ```

// The code `#[service]` writes names this crate `::pyrpc_server`, also
// in this crate's own doc tests.
extern crate self as pyrpc_server;

mod accept;
mod budget;
mod callee;
mod config;
mod connection;
mod dispatch;
mod error;
mod hello;
mod hooks;
mod idle;
mod methods;
mod reader;
mod reaper;
mod results;
mod running;
mod server;
mod stats;
mod store;
mod stream;
mod typed;

#[doc(hidden)]
pub mod __private {
    //! Used by the code `#[service]` and `#[derive(Exception)]` write.
    pub use crate::service::*;
}
mod service;

pub use callee::{CallContext, CallDone, CallFuture, Callee};
pub use dispatch::{lingering_thread, release_here, serve_next_here};
pub use methods::Methods;
pub use pyrpc_macros::{service, Exception};
pub use stream::ValueStream;
// What a server needs, so that `pyrpc-server` is its only pyrpc dependency.
pub use config::{RemoteShutdown, ServerConfig};
mod warnlimit;
pub use error::ServerError;
pub use hooks::CallRecord;
pub use pyrpc_proto::{
    from_value, to_value, Args, ErrorKind, Exception, MethodInfo, RemoteError, RemoteErrorInfo,
    SerdeError, Value,
};
pub use pyrpc_transport::{Address, Listener};
pub use server::{Server, ServerBuilder, ServerHandle};
