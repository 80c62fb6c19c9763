//! [`Connector`]: how a client opens a byte stream to its server — the
//! seam between the client and its transport.
//!
//! A client made with [`Client::new`](crate::Client::new) dials its address
//! (TCP or Unix, TLS if configured). One made with
//! [`Client::with_connector`](crate::Client::with_connector) asks its
//! connector for each new connection instead: any `AsyncRead + AsyncWrite`
//! stream will do, so tests run the client over `tokio::io::duplex` pairs,
//! on a paused clock, and a program can tunnel pyrpc through a stream of its
//! own.

use std::future::Future;
use std::pin::Pin;

use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::io::{AsyncRead, AsyncWrite};

/// A byte stream a client can carry pyrpc frames on.
pub trait ByteStream: AsyncRead + AsyncWrite + Send + 'static {}

impl<S: AsyncRead + AsyncWrite + Send + 'static> ByteStream for S {}

/// A boxed [`ByteStream`], as a [`Connector`] returns it.
pub type BoxStream = Pin<Box<dyn ByteStream>>;

/// Opens a new stream to the server, each time the client needs a
/// connection (the first call, and after a connection broke).
///
/// Implemented for every `Fn() -> impl Future<Output = io::Result<S>>` whose
/// stream `S` is `AsyncRead + AsyncWrite + Send`.
///
/// # Examples
///
/// A client over an in-memory pipe (here to a peer that hangs up at once):
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use pyrpc_client::{Address, CallError, Client, ClientConfig};
///
/// let connector = || async {
///     let (ours, theirs) = tokio::io::duplex(64 * 1024);
///     drop(theirs);
///     Ok(ours)
/// };
/// let client = Client::with_connector(Address::unix("memory"), ClientConfig::default(), connector);
/// assert!(matches!(client.ping().await, Err(CallError::Closed)));
/// # }
/// ```
pub trait Connector: Send + Sync + 'static {
    /// A new stream to the server.
    fn connect(&self) -> BoxFuture<'static, std::io::Result<BoxStream>>;
}

impl<F, Fut, S> Connector for F
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::io::Result<S>> + Send + 'static,
    S: ByteStream,
{
    fn connect(&self) -> BoxFuture<'static, std::io::Result<BoxStream>> {
        self().map(|r| r.map(|s| Box::pin(s) as BoxStream)).boxed()
    }
}
