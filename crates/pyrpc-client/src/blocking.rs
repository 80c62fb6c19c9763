//! [`blocking::Client`](Client): the same client for code without an async
//! runtime, in the manner of `reqwest::blocking`.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use pyrpc_proto::{Args, MethodInfo, ServerStats, Value};
use pyrpc_transport::Address;
use tokio::runtime::Runtime;

use crate::config::{CallOptions, ClientConfig};
use crate::connection::ServerInfo;
use crate::error::CallError;

/// A blocking pyrpc client: each method waits for its answer.
///
/// It owns a small tokio runtime (one worker thread, which reads the
/// connection's replies); each call runs on the calling thread with
/// [`Runtime::block_on`]. It is cheap to clone, `Send` and `Sync`, and any
/// number of threads may call through it at once: their calls share one
/// connection, as with the async [`crate::Client`].
///
/// # Panics
///
/// Every method panics when called from within an async runtime (blocking
/// there would stall it); use the async [`crate::Client`] there.
///
/// # Examples
///
/// ```no_run
/// # fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use pyrpc_client::blocking::Client;
/// use pyrpc_proto::Args;
///
/// let client = Client::new("/tmp/echo_server_socket".parse()?)?;
/// let ret = client.call("echo", Args::new().arg(1))?;
/// println!("{ret}");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: crate::Client,
    runtime: Arc<OwnedRuntime>,
}

/// The runtime, shut down without waiting when the last client goes away, so
/// that dropping a client never blocks (nor panics inside an async context).
struct OwnedRuntime(Option<Runtime>);

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl Client {
    /// A client of the server at `addr`, with the default [`ClientConfig`].
    /// Nothing is connected until the first call.
    ///
    /// # Errors
    ///
    /// When the runtime cannot be started (the OS refuses a thread or an
    /// event queue).
    pub fn new(addr: Address) -> std::io::Result<Client> {
        Client::with_config(addr, ClientConfig::default())
    }

    /// A client of the server at `addr`. Nothing is connected until the
    /// first call.
    ///
    /// # Errors
    ///
    /// As [`Client::new`].
    pub fn with_config(addr: Address, config: ClientConfig) -> std::io::Result<Client> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("pyrpc-client")
            .enable_all()
            .build()?;
        Ok(Client {
            inner: crate::Client::with_config(addr, config),
            runtime: Arc::new(OwnedRuntime(Some(runtime))),
        })
    }

    pub(crate) fn block_on<F: Future>(&self, f: F) -> F::Output {
        match &self.runtime.0 {
            Some(rt) => rt.block_on(f),
            // Only `Drop` takes the runtime, and it needs `&mut`.
            None => unreachable!("the runtime lives as long as the client"),
        }
    }

    /// The async client this one drives.
    pub fn as_async(&self) -> &crate::Client {
        &self.inner
    }

    /// The server's address.
    pub fn address(&self) -> &Address {
        self.inner.address()
    }

    /// The client's settings.
    pub fn config(&self) -> &ClientConfig {
        self.inner.config()
    }

    /// See [`crate::Client::server_info`].
    pub fn server_info(&self) -> Option<ServerInfo> {
        self.inner.server_info()
    }

    /// See [`crate::Client::in_flight`].
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight()
    }

    /// Calls `method` with `args` and returns its result.
    ///
    /// # Errors
    ///
    /// As [`crate::Client::call`].
    pub fn call(&self, method: &str, args: Args) -> Result<Value, CallError> {
        self.block_on(self.inner.call(method, args))
    }

    /// [`Client::call`] with per-call overrides.
    ///
    /// # Errors
    ///
    /// As [`crate::Client::call`].
    pub fn call_with(
        &self,
        method: &str,
        args: Args,
        opts: &CallOptions,
    ) -> Result<Value, CallError> {
        self.block_on(self.inner.call_with(method, args, opts))
    }

    /// A typed call; see [`crate::Client::call_typed`].
    ///
    /// # Errors
    ///
    /// As [`crate::Client::call_typed`].
    pub fn call_typed<A, R>(&self, method: &str, args: A) -> Result<R, CallError>
    where
        A: serde::Serialize,
        R: serde::de::DeserializeOwned,
    {
        self.block_on(self.inner.call_typed(method, args))
    }

    /// A typed call with per-call overrides; see
    /// [`crate::Client::call_typed_with`].
    ///
    /// # Errors
    ///
    /// As [`crate::Client::call_typed`].
    pub fn call_typed_with<A, R>(
        &self,
        method: &str,
        args: A,
        opts: &CallOptions,
    ) -> Result<R, CallError>
    where
        A: serde::Serialize,
        R: serde::de::DeserializeOwned,
    {
        self.block_on(self.inner.call_typed_with(method, args, opts))
    }

    /// A typed non-blocking call; see [`crate::Client::nb_call_typed`].
    ///
    /// # Errors
    ///
    /// As [`crate::Client::nb_call_typed`].
    pub fn nb_call_typed<A, R>(&self, method: &str, args: A) -> Result<R, CallError>
    where
        A: serde::Serialize,
        R: serde::de::DeserializeOwned,
    {
        self.block_on(self.inner.nb_call_typed(method, args))
    }

    /// A non-blocking call; see [`crate::Client::nb_call`].
    ///
    /// # Errors
    ///
    /// As [`crate::Client::nb_call`].
    pub fn nb_call(&self, method: &str, args: Args) -> Result<Value, CallError> {
        self.block_on(self.inner.nb_call(method, args))
    }

    /// [`Client::nb_call`] with per-call overrides.
    ///
    /// # Errors
    ///
    /// As [`crate::Client::nb_call`].
    pub fn nb_call_with(
        &self,
        method: &str,
        args: Args,
        opts: &CallOptions,
    ) -> Result<Value, CallError> {
        self.block_on(self.inner.nb_call_with(method, args, opts))
    }

    /// True when the server answers a ping within `timeout`; see
    /// [`crate::Client::connected`].
    pub fn connected(&self, timeout: Duration) -> bool {
        self.block_on(self.inner.connected(timeout))
    }

    /// Pings the server.
    ///
    /// # Errors
    ///
    /// As [`crate::Client::ping`].
    pub fn ping(&self) -> Result<(), CallError> {
        self.block_on(self.inner.ping())
    }

    /// The server's methods; see [`crate::Client::list_methods`].
    ///
    /// # Errors
    ///
    /// As [`crate::Client::call`].
    pub fn list_methods(&self) -> Result<Vec<MethodInfo>, CallError> {
        self.block_on(self.inner.list_methods())
    }

    /// The server's statistics; see [`crate::Client::stats`].
    ///
    /// # Errors
    ///
    /// As [`crate::Client::call`].
    pub fn stats(&self) -> Result<ServerStats, CallError> {
        self.block_on(self.inner.stats())
    }

    /// Asks the server to shut down; see [`crate::Client::shutdown`].
    ///
    /// # Errors
    ///
    /// As [`crate::Client::shutdown`].
    pub fn shutdown(&self) -> Result<(), CallError> {
        self.block_on(self.inner.shutdown())
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("blocking::Client")
            .field(&self.inner)
            .finish()
    }
}
