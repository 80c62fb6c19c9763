//! [`ServerBuilder`]: a [`Server`] put together.

use super::*;

impl ServerBuilder {
    /// Replaces the whole configuration; call it before the setters below,
    /// which change single fields.
    pub fn config(mut self, config: ServerConfig) -> Self {
        self.config = config;
        self
    }

    /// Sets [`ServerConfig::nonblocking`].
    pub fn nonblocking(mut self, on: bool) -> Self {
        self.config.nonblocking = on;
        self
    }

    /// Keeps non-blocking results in a shared store, e.g.
    /// `"redis://127.0.0.1:6379/0"` (cargo feature `redis`); sets
    /// [`ServerConfig::result_store`].
    ///
    /// # Examples
    ///
    /// ```
    /// use pyrpc_server::{Methods, Server};
    ///
    /// let server = Server::builder(Methods::new())
    ///     .nonblocking(true)
    ///     .result_store("redis://127.0.0.1:6379/0")
    ///     .build();
    /// assert!(server.config().result_store.is_some());
    /// ```
    pub fn result_store(mut self, url: impl Into<String>) -> Self {
        self.config.result_store = Some(url.into());
        self
    }

    /// Sets [`ServerConfig::synchronous`].
    pub fn synchronous(mut self, on: bool) -> Self {
        self.config.synchronous = on;
        self
    }

    /// Sets [`ServerConfig::request_clean_interval`].
    pub fn request_clean_interval(mut self, every: Duration) -> Self {
        self.config.request_clean_interval = every;
        self
    }

    /// Sets [`ServerConfig::allow_pickle`].
    pub fn allow_pickle(mut self, on: bool) -> Self {
        self.config.allow_pickle = on;
        self
    }

    /// Sets [`ServerConfig::secret`]: clients must prove they hold it.
    pub fn secret(mut self, secret: impl Into<pyrpc_proto::auth::Secret>) -> Self {
        self.config.secret = Some(secret.into());
        self
    }

    /// Sets [`ServerConfig::tls`]: the server speaks TLS on TCP.
    pub fn tls(mut self, tls: pyrpc_transport::ServerTls) -> Self {
        self.config.tls = Some(tls);
        self
    }

    /// Sets [`ServerConfig::remote_shutdown`].
    pub fn remote_shutdown(mut self, policy: crate::RemoteShutdown) -> Self {
        self.config.remote_shutdown = policy;
        self
    }

    /// Sets [`ServerConfig::unix_mode`].
    pub fn unix_mode(mut self, mode: u32) -> Self {
        self.config.unix_mode = Some(mode);
        self
    }

    /// Calls `hook` after each call that returned, with its [`CallRecord`]
    /// (the original pyrpc's call logging function). Runs on the call's task:
    /// keep it quick.
    pub fn on_call<F>(mut self, hook: F) -> Self
    where
        F: Fn(&CallRecord) + Send + Sync + 'static,
    {
        self.hooks.on_call = Some(Arc::new(hook));
        self
    }

    /// Calls `hook` after each call that failed, with its [`CallRecord`] and
    /// the error (the original pyrpc's exception logging function).
    pub fn on_exception<F>(mut self, hook: F) -> Self
    where
        F: Fn(&CallRecord, &RemoteError) + Send + Sync + 'static,
    {
        self.hooks.on_exception = Some(Arc::new(hook));
        self
    }

    /// The server.
    pub fn build(self) -> Server {
        let (finished, _) = watch::channel(false);
        let (store, store_error): (Box<dyn ResultStore>, _) = match crate::store::open(&self.config)
        {
            Ok(store) => (store, None),
            Err(e) => (Box::new(crate::store::BrokenStore(e.clone())), Some(e)),
        };
        Server {
            shared: Arc::new(Shared {
                store,
                store_error,
                buffered: Arc::new(ByteBudget::new(self.config.max_buffered_bytes)),
                callee: self.callee,
                config: self.config,
                hooks: self.hooks,
                store_changed: Notify::new(),
                sync_lock: Semaphore::new(1),
                shutdown: CancellationToken::new(),
                close: CancellationToken::new(),
                kill: CancellationToken::new(),
                calls: TaskTracker::new(),
                conns: TaskTracker::new(),
                connections: AtomicUsize::new(0),
                stats: Stats::new(),
                warn_limit: crate::warnlimit::WarnLimit::new(),
                local_only: AtomicBool::new(true),
                started: AtomicBool::new(false),
                finished,
            }),
        }
    }
}

impl fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("config", &self.config)
            .field("hooks", &self.hooks)
            .finish_non_exhaustive()
    }
}
