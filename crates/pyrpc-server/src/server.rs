//! [`Server`], its [`ServerBuilder`], and the [`ServerHandle`] of a running
//! server: binding, the accept loop, and graceful shutdown.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pyrpc_proto::RemoteError;
use pyrpc_transport::{Address, Listener, ListenerOptions};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::accept;
use crate::budget::ByteBudget;
use crate::callee::Callee;
use crate::config::ServerConfig;
use crate::connection;
use crate::error::ServerError;
use crate::hooks::{CallRecord, Hooks};
use crate::reaper;
use crate::stats::Stats;
use crate::store::ResultStore;

/// How long the accept loop pauses after the OS refused a connection (e.g.
/// out of file descriptors), so it does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A pyrpc server: a [`Callee`] and a [`ServerConfig`], ready to serve.
///
/// Build one with [`Server::builder`], then [`bind`](Server::bind) it (and
/// keep the [`ServerHandle`]), [`serve`](Server::serve) until shut down, or
/// [`start`](Server::start) it on a runtime of its own.
pub struct Server {
    shared: Arc<Shared>,
}

/// Builds a [`Server`]; see [`Server::builder`].
pub struct ServerBuilder {
    callee: Arc<dyn Callee>,
    config: ServerConfig,
    hooks: Hooks,
}

/// A running server: its address, and the means to stop it and wait for it.
///
/// Cloning gives another handle to the same server. Dropping every handle
/// does not stop the server.
#[derive(Clone)]
pub struct ServerHandle {
    shared: Arc<Shared>,
    address: Address,
    finished: watch::Receiver<bool>,
}

/// What the accept loop, the connections, the calls and the reaper share.
pub(crate) struct Shared {
    pub(crate) callee: Arc<dyn Callee>,
    pub(crate) config: ServerConfig,
    pub(crate) hooks: Hooks,
    /// The non-blocking results: in memory, or shared (`store.rs`).
    store: Box<dyn ResultStore>,
    /// Why `config.result_store` could not be opened; `bind` refuses to
    /// serve then.
    store_error: Option<String>,
    /// Woken whenever a non-blocking call finishes, for fetches that wait.
    pub(crate) store_changed: Notify,
    /// One permit: held for a whole call when `synchronous` is on.
    pub(crate) sync_lock: Semaphore,
    /// Shutdown was asked for: stop accepting, refuse new requests.
    pub(crate) shutdown: CancellationToken,
    /// The grace period is over: connections stop reading and close, calls
    /// still running are dropped, the reaper stops.
    pub(crate) close: CancellationToken,
    /// Connections that still have not closed are dropped without flushing.
    pub(crate) kill: CancellationToken,
    /// Running calls (including non-blocking ones and waiting fetches).
    pub(crate) calls: TaskTracker,
    /// The accept loop and the connection tasks.
    pub(crate) conns: TaskTracker,
    /// How many connections are open, for `max_connections`.
    pub(crate) connections: AtomicUsize,
    /// Bytes held for partial frames by all connections, for
    /// `max_buffered_bytes`.
    pub(crate) buffered: Arc<ByteBudget>,
    /// Call counters and latencies, for the `Stats` request and the reaper.
    pub(crate) stats: Stats,
    /// Warnings about bad peers (failed handshakes, authentication
    /// failures, protocol errors), rate-limited.
    pub(crate) warn_limit: crate::warnlimit::WarnLimit,
    /// The server listens on a Unix socket or loopback TCP addresses only
    /// (for [`RemoteShutdown::Auto`](crate::RemoteShutdown::Auto)); set by
    /// `bind`, true for streams given to `serve_stream`.
    pub(crate) local_only: AtomicBool,
    /// Whether the lifecycle task (reaper + shutdown sequence) runs.
    started: AtomicBool,
    /// Set once shutdown is complete.
    finished: watch::Sender<bool>,
}

// ===== impl Server =====

impl Server {
    /// Starts building a server that dispatches to `callee`.
    ///
    /// # Examples
    ///
    /// ```
    /// use pyrpc_server::{Methods, Server};
    ///
    /// let server = Server::builder(Methods::new().add("ping", |_| Ok("pong".into())))
    ///     .nonblocking(true)
    ///     .build();
    /// assert!(server.config().nonblocking);
    /// ```
    pub fn builder(callee: impl Callee) -> ServerBuilder {
        ServerBuilder {
            callee: Arc::new(callee),
            config: ServerConfig::default(),
            hooks: Hooks::default(),
        }
    }

    /// The configuration the server was built with.
    pub fn config(&self) -> &ServerConfig {
        &self.shared.config
    }

    /// Binds `addr` and serves it on the current tokio runtime, returning at
    /// once with a handle to stop and await the server.
    ///
    /// # Errors
    ///
    /// [`ServerError::Transport`] when the address cannot be bound (in use,
    /// not a socket file, permission denied); [`ServerError::ResultStore`]
    /// when [`ServerConfig::result_store`] names a store this build cannot
    /// use.
    pub async fn bind(self, addr: &Address) -> Result<ServerHandle, ServerError> {
        if let Some(e) = &self.shared.store_error {
            return Err(ServerError::ResultStore(e.clone()));
        }
        let mut options = ListenerOptions::default();
        if let Some(mode) = self.shared.config.unix_mode {
            options = options.unix_mode(mode);
        }
        let listener = Listener::bind_with(addr, &options).await?;
        self.bind_listener(listener)
    }

    /// Serves a listener bound elsewhere (a socket taken over with
    /// [`Listener::from_std_tcp`](pyrpc_transport::Listener::from_std_tcp),
    /// or the connections a supervisor process hands to this worker,
    /// [`Listener::from_handoff`](pyrpc_transport::Listener::from_handoff)),
    /// returning at once with a handle. Must be called inside a tokio
    /// runtime.
    ///
    /// # Errors
    ///
    /// [`ServerError::Transport`] when the listener's address cannot be
    /// read; [`ServerError::ResultStore`] as for [`Server::bind`].
    pub fn bind_listener(self, listener: Listener) -> Result<ServerHandle, ServerError> {
        if let Some(e) = &self.shared.store_error {
            return Err(ServerError::ResultStore(e.clone()));
        }
        let address = listener.local_address()?;
        let config = &self.shared.config;
        let tls = match &config.tls {
            Some(t) if !address.is_unix() && t.requires_client_cert() => {
                "on, client certificates required"
            }
            Some(_) if !address.is_unix() => "on",
            _ => "off",
        };
        let auth = if config.secret.is_some() { "on" } else { "off" };
        let nonblocking = if config.nonblocking { "on" } else { "off" };
        tracing::info!(
            target: "pyrpc.server",
            %address,
            tls,
            auth,
            nonblocking,
            "pyrpc server listening on {address} (TLS {tls}, auth {auth}, nonblocking {nonblocking})"
        );
        self.shared
            .local_only
            .store(is_local_only(&address), Ordering::Relaxed);
        let client_certs = config
            .tls
            .as_ref()
            .is_some_and(|t| t.requires_client_cert());
        if binds_all_interfaces(&address) && config.secret.is_none() && !client_certs {
            tracing::warn!(
                %address,
                "this server listens on all network interfaces without a shared secret: \
                 anyone who can reach the port can call its methods; \
                 set a secret (ServerConfig::secret), TLS with client certificates, \
                 or bind 127.0.0.1"
            );
        }
        self.shared.ensure_started();
        self.shared
            .conns
            .spawn(accept_loop(Arc::clone(&self.shared), listener));
        Ok(ServerHandle {
            finished: self.shared.finished.subscribe(),
            shared: self.shared,
            address,
        })
    }

    /// Binds `addr` and serves until the server is shut down (by a `Shutdown`
    /// request or a call of `shutdown`) and the shutdown is complete.
    ///
    /// # Errors
    ///
    /// As [`Server::bind`].
    pub async fn serve(self, addr: &Address) -> Result<(), ServerError> {
        let handle = self.bind(addr).await?;
        handle.wait().await;
        Ok(())
    }

    /// Serves `addr` on a multi-thread tokio runtime of its own, blocking the
    /// calling thread until the server is shut down, by a request or by
    /// Ctrl-C (SIGINT) or SIGTERM.
    ///
    /// # Errors
    ///
    /// As [`Server::bind`], plus [`ServerError::Runtime`] and
    /// [`ServerError::Signal`] when the runtime or the signal handlers cannot
    /// be set up.
    pub fn start(self, addr: &Address) -> Result<(), ServerError> {
        use tokio::signal::unix::{signal, SignalKind};
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("pyrpc-server")
            .build()
            .map_err(ServerError::Runtime)?;
        let result = rt.block_on(async move {
            let mut interrupt = signal(SignalKind::interrupt()).map_err(ServerError::Signal)?;
            let mut terminate = signal(SignalKind::terminate()).map_err(ServerError::Signal)?;
            let handle = self.bind(addr).await?;
            tokio::select! {
                _ = handle.wait() => return Ok(()),
                _ = interrupt.recv() => tracing::info!("SIGINT: shutting down"),
                _ = terminate.recv() => tracing::info!("SIGTERM: shutting down"),
            }
            handle.shutdown();
            handle.wait().await;
            Ok(())
        });
        // Blocking methods still running past the grace period are abandoned,
        // not waited for.
        rt.shutdown_background();
        result
    }

    /// Serves one already-connected stream (any `AsyncRead + AsyncWrite`,
    /// e.g. one end of `tokio::io::duplex` in tests) as a connection of this
    /// server, on the current tokio runtime. `peer` names the other end in
    /// logs and [`CallContext::peer`](crate::CallContext::peer).
    ///
    /// The returned task ends when the connection closes.
    ///
    /// The stream is served as given, so it goes through the server's
    /// connection limit, hello and secret but not through TLS: on a server
    /// configured with TLS, the stream's hello is refused ("this server
    /// requires TLS"), as a plain client's is. Serve TLS connections through
    /// [`Server::bind`] or [`Server::bind_listener`].
    ///
    /// # Panics
    ///
    /// When called outside a tokio runtime.
    pub fn serve_stream<S>(&self, io: S, peer: String) -> JoinHandle<()>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        self.shared.ensure_started();
        let slot = connection::Slot::take(&self.shared);
        self.shared.conns.spawn(connection::serve(
            Arc::clone(&self.shared),
            io,
            peer,
            slot,
            connection::Admission {
                refusal: self
                    .shared
                    .config
                    .tls
                    .as_ref()
                    .map(|_| crate::accept::tls_required()),
                ..connection::Admission::default()
            },
            None,
        ))
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

// ===== impl ServerHandle =====

impl ServerHandle {
    /// The address the server listens on (with the port the OS chose when
    /// bound to port 0).
    pub fn local_address(&self) -> &Address {
        &self.address
    }

    /// Starts a graceful shutdown and returns at once: the server stops
    /// accepting, answers new requests `SHUTTING_DOWN`, lets running calls
    /// finish within [`ServerConfig::shutdown_grace`] and sends their replies,
    /// then closes connections, stops the reaper and removes its Unix socket
    /// file. Await [`ServerHandle::wait`] for the end.
    pub fn shutdown(&self) {
        self.shared.begin_shutdown();
    }

    /// Waits until the server has shut down completely (see
    /// [`ServerHandle::shutdown`]).
    pub async fn wait(&self) {
        let mut finished = self.finished.clone();
        // An error means the sender is gone, which only happens with the server.
        let _ = finished.wait_for(|done| *done).await;
    }

    /// True once the server has shut down completely.
    pub fn is_finished(&self) -> bool {
        *self.finished.borrow()
    }
}

impl fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandle")
            .field("address", &self.address)
            .field("finished", &self.is_finished())
            .finish()
    }
}

// ===== impl Shared =====

impl Shared {
    /// The result store.
    pub(crate) fn store(&self) -> &dyn ResultStore {
        &*self.store
    }

    /// The server's statistics now.
    pub(crate) fn stats_snapshot(&self) -> pyrpc_proto::ServerStats {
        let kept = self.store().len() as u64;
        pyrpc_proto::ServerStats::new(
            self.stats.calls(),
            self.stats.errors(),
            self.stats.in_flight(),
            kept,
            self.connections.load(Ordering::Relaxed) as u64,
            self.stats.uptime(),
            self.stats.latency(),
        )
    }

    /// Asks for a graceful shutdown (idempotent).
    pub(crate) fn begin_shutdown(&self) {
        if !self.shutdown.is_cancelled() {
            tracing::info!("shutdown requested");
        }
        self.shutdown.cancel();
    }

    /// Spawns the reaper and the shutdown sequence, once.
    fn ensure_started(self: &Arc<Self>) {
        if !self.started.swap(true, Ordering::SeqCst) {
            crate::idle::tune_allocator();
            tokio::spawn(lifecycle(Arc::clone(self)));
        }
    }
}

/// Runs the reaper, then, once shutdown is asked for, the shutdown sequence.
async fn lifecycle(shared: Arc<Shared>) {
    let reaper = tokio::spawn(reaper::run(Arc::clone(&shared)));
    let idle = tokio::spawn(crate::idle::run(Arc::clone(&shared)));
    shared.shutdown.cancelled().await;
    let grace = shared.config.shutdown_grace;

    // 1. Running calls get the grace period to finish (their replies are queued).
    shared.calls.close();
    if tokio::time::timeout(grace, shared.calls.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            calls = shared.calls.len(),
            "calls still running after the shutdown grace period; dropping them"
        );
    }

    // 2. Connections stop reading, send what is queued, and close; the accept
    //    loop has already ended (dropping the listener removes a Unix socket file).
    shared.close.cancel();
    shared.conns.close();
    if tokio::time::timeout(grace, shared.conns.wait())
        .await
        .is_err()
    {
        tracing::warn!("connections not closed after the grace period; dropping them");
        shared.kill.cancel();
        shared.conns.wait().await;
    }

    // 3. The reaper stopped on `close`.
    let _ = reaper.await;
    let _ = idle.await;
    tracing::info!("pyrpc server shut down");
    shared.finished.send_replace(true);
}

/// True for a TCP address on every interface: an empty host, `0.0.0.0`
/// or `::`.
fn binds_all_interfaces(addr: &Address) -> bool {
    match addr {
        Address::Tcp { host, .. } => host
            .parse::<std::net::IpAddr>()
            .map_or(host.is_empty(), |ip| ip.is_unspecified()),
        Address::Unix(_) => false,
    }
}

/// True for a Unix socket and a TCP address on a loopback interface.
fn is_local_only(addr: &Address) -> bool {
    match addr {
        Address::Tcp { host, .. } => host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        Address::Unix(_) => true,
    }
}

/// Accepts connections until shutdown; then drops the listener.
async fn accept_loop(shared: Arc<Shared>, listener: Listener) {
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    // A connection handed over by a supervisor process is
                    // reported closed to it when served (`Balancer`).
                    let report = listener.close_report();
                    let serve = accept::serve_accepted(Arc::clone(&shared), stream, peer.to_string());
                    shared.conns.spawn(async move {
                        serve.await;
                        drop(report);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %pyrpc_proto::Report(&e), "accept failed");
                    tokio::select! {
                        _ = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                        _ = shared.shutdown.cancelled() => break,
                    }
                }
            },
        }
    }
    // Stop accepting now; for a Unix socket this also removes the file.
    drop(listener);
    tracing::debug!("stopped accepting connections");
}

mod builder;

#[cfg(test)]
mod tests;
