//! [`ClientBuilder`]: a [`Client`] with its settings changed one by one.

use std::time::Duration;

use pyrpc_transport::Address;

use crate::client::Client;
use crate::config::ClientConfig;

/// Builds a [`Client`]; made by [`Client::builder`].
///
/// Each method sets one field of the [`ClientConfig`] (whose docs say what
/// it does and its default); [`ClientBuilder::config`] starts from a whole
/// config instead.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pyrpc_client::{Address, Client};
///
/// let client = Client::builder(Address::unix("/tmp/svc.sock"))
///     .call_timeout(Duration::from_secs(3))
///     .socket_connect_timeout(Duration::from_secs(1))
///     .name("billing")
///     .build();
/// assert_eq!(client.config().name, "billing");
/// ```
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until `build`"]
pub struct ClientBuilder {
    addr: Address,
    config: ClientConfig,
}

impl ClientBuilder {
    /// A builder with the default settings.
    pub fn new(addr: Address) -> Self {
        ClientBuilder {
            addr,
            config: ClientConfig::default(),
        }
    }

    /// Replaces every setting with `config`.
    pub fn config(mut self, config: ClientConfig) -> Self {
        self.config = config;
        self
    }

    /// Sets [`ClientConfig::call_timeout`].
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.config.call_timeout = Some(timeout);
        self
    }

    /// Sets [`ClientConfig::socket_connect_timeout`].
    pub fn socket_connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.socket_connect_timeout = timeout;
        self
    }

    /// Sets [`ClientConfig::socket_send_timeout`].
    pub fn socket_send_timeout(mut self, timeout: Duration) -> Self {
        self.config.socket_send_timeout = timeout;
        self
    }

    /// Sets [`ClientConfig::nb_fetch_tick`].
    pub fn nb_fetch_tick(mut self, tick: Duration) -> Self {
        self.config.nb_fetch_tick = tick;
        self
    }

    /// Sets [`ClientConfig::nb_fetch_timeout`].
    pub fn nb_fetch_timeout(mut self, timeout: Duration) -> Self {
        self.config.nb_fetch_timeout = timeout;
        self
    }

    /// Sets [`ClientConfig::max_frame_len`].
    pub fn max_frame_len(mut self, len: usize) -> Self {
        self.config.max_frame_len = len;
        self
    }

    /// Sets [`ClientConfig::max_value_depth`].
    pub fn max_value_depth(mut self, depth: usize) -> Self {
        self.config.max_value_depth = depth;
        self
    }

    /// Sets [`ClientConfig::secret`].
    pub fn secret(mut self, secret: pyrpc_proto::auth::Secret) -> Self {
        self.config.secret = Some(secret);
        self
    }

    /// Sets [`ClientConfig::name`].
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = name.into();
        self
    }

    /// The client (nothing is connected until the first call).
    pub fn build(self) -> Client {
        Client::with_config(self.addr, self.config)
    }

    /// The blocking client; see [`crate::blocking::Client`].
    ///
    /// # Errors
    ///
    /// When its runtime cannot be started.
    pub fn build_blocking(self) -> std::io::Result<crate::blocking::Client> {
        crate::blocking::Client::with_config(self.addr, self.config)
    }
}
