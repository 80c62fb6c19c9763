//! [`ClientConfig`] (a client's settings) and [`CallOptions`] (per-call overrides).

use std::time::Duration;

/// How long a non-blocking result is kept at least, whatever the fetch settings.
const MIN_NB_KEEP: Duration = Duration::from_secs(60);

/// The settings of a [`Client`](crate::Client).
///
/// The timeout names and defaults are those of the original Python pyrpc, so
/// that configurations written for it mean the same here. Every timeout except
/// [`call_timeout`](Self::call_timeout) is capped by `call_timeout` when that is
/// set: a stage never waits longer than the whole call may.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pyrpc_client::ClientConfig;
///
/// let config = ClientConfig {
///     call_timeout: Some(Duration::from_secs(5)),
///     ..ClientConfig::default()
/// };
/// assert_eq!(config.socket_connect_timeout, Duration::from_secs(10));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct ClientConfig {
    /// How long a call may take in all, from the moment it is made until its
    /// reply arrives; `None` waits as long as it takes. It also travels in the
    /// request (`Call.timeout_ms`) so the server can drop the work of a caller
    /// that gave up. For a non-blocking call it bounds the whole call,
    /// reconnections and polling included.
    ///
    /// The default value is `None` (no limit).
    pub call_timeout: Option<Duration>,
    /// How long connecting may take: opening the socket and exchanging the
    /// hello with the server. A server that accepts but never answers the
    /// hello is noticed after this long.
    ///
    /// The default value is 10 seconds.
    pub socket_connect_timeout: Duration,
    /// How long writing one request frame may take. Writing blocks only when
    /// the server stops reading (it is stuck or overloaded), so this bounds
    /// how long a caller waits on a server that does not drain its socket.
    ///
    /// The default value is 10 seconds.
    pub socket_send_timeout: Duration,
    /// Accepted for compatibility with the original pyrpc, where it was the
    /// timeout of each `recv` on the socket while a reply was awaited (the
    /// client looped on it until `call_timeout`). Here a background task reads
    /// replies as they arrive and [`call_timeout`](Self::call_timeout) alone
    /// bounds the wait, so this setting has **no effect**; it is kept so that
    /// configurations written for the original keep working.
    ///
    /// The default value is 100 milliseconds.
    pub socket_recv_timeout: Duration,
    /// How long the server may hold each `Fetch` of a non-blocking call
    /// before it answers "still pending" (`Fetch.wait_ms`). A finished call
    /// is reported as soon as it finishes, so this only sets how often an
    /// idle poll goes round.
    ///
    /// The default value is 1 second.
    pub nb_fetch_tick: Duration,
    /// How long past [`nb_fetch_tick`](Self::nb_fetch_tick) a `Fetch` (or a
    /// `Submit`) may wait for its answer before the connection is deemed dead,
    /// dropped and made again. This is what notices a connection that broke
    /// without a word (a peer that vanished from the network).
    ///
    /// The default value is 5 seconds.
    pub nb_fetch_timeout: Duration,
    /// The longest frame accepted from the server, in bytes, announced in the
    /// client's hello so the server never sends a longer one (it answers
    /// `FRAME_TOO_LARGE` instead). At least
    /// [`pyrpc_proto::MIN_MAX_FRAME_LEN`] (1,024): a server refuses the
    /// hello of a client announcing less, and the connection fails with
    /// that error.
    ///
    /// The default value is [`pyrpc_framing::DEFAULT_MAX_FRAME_LEN`] (640 MiB).
    pub max_frame_len: usize,
    /// The deepest nesting of values sent or accepted (a scalar has depth 1).
    /// Arguments nested deeper are refused before anything is sent; replies
    /// nested deeper are refused as they are decoded. The limit keeps the
    /// recursive conversions from exhausting the stack.
    ///
    /// The default value is [`pyrpc_proto::MAX_VALUE_DEPTH`] (1024). Rust
    /// values are decoded at most [`pyrpc_proto::VALUE_DEPTH_CEILING`]
    /// (10,000) deep whatever this says.
    pub max_value_depth: usize,
    /// The shared secret of a server that requires authentication. With it,
    /// the client answers the server's challenge (HMAC-SHA256, see
    /// docs/PROTOCOL.md) and checks the server's proof that it holds the
    /// secret too; a server without a secret is refused. Without it, a
    /// server that requires authentication is refused. Either refusal is a
    /// [`CallError::Remote`](crate::CallError::Remote) of kind
    /// `UNAUTHENTICATED`.
    ///
    /// The default value is `None`.
    pub secret: Option<pyrpc_proto::auth::Secret>,
    /// TLS for TCP addresses: the CAs the server's certificate is verified
    /// against (a PEM bundle or the system's roots), an optional server-name
    /// override, and an optional client certificate for servers that require
    /// one (mutual TLS). Composes with [`secret`](Self::secret). Not used for
    /// Unix sockets.
    ///
    /// The default value is `None`: no TLS.
    pub tls: Option<pyrpc_transport::ClientTls>,
    /// The name the client gives in its hello, for the server's logs.
    ///
    /// The default value is `"pyrpc-rust/<crate version>"`.
    pub name: String,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            call_timeout: None,
            socket_connect_timeout: Duration::from_secs(10),
            socket_send_timeout: Duration::from_secs(10),
            socket_recv_timeout: Duration::from_millis(100),
            nb_fetch_tick: Duration::from_secs(1),
            nb_fetch_timeout: Duration::from_secs(5),
            max_frame_len: pyrpc_framing::DEFAULT_MAX_FRAME_LEN,
            max_value_depth: pyrpc_proto::MAX_VALUE_DEPTH,
            secret: None,
            tls: None,
            name: concat!("pyrpc-rust/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

/// Overrides of [`ClientConfig`] for one call; `None` keeps the client's setting.
///
/// These are the original pyrpc's per-call keyword arguments
/// (`client.method(x, call_timeout=3)`).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pyrpc_client::CallOptions;
///
/// // This call waits at most 3 seconds, whatever the client's call_timeout.
/// let opts = CallOptions::new().call_timeout(Duration::from_secs(3));
/// assert_eq!(opts.call_timeout, Some(Some(Duration::from_secs(3))));
/// // This one as long as it takes.
/// let opts = CallOptions::new().no_call_timeout();
/// assert_eq!(opts.call_timeout, Some(None));
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CallOptions {
    /// Overrides [`ClientConfig::call_timeout`]: `Some(None)` lifts the limit
    /// for this call, `Some(Some(d))` sets it to `d`.
    pub call_timeout: Option<Option<Duration>>,
    /// Overrides [`ClientConfig::socket_connect_timeout`].
    pub socket_connect_timeout: Option<Duration>,
    /// Overrides [`ClientConfig::socket_send_timeout`].
    pub socket_send_timeout: Option<Duration>,
    /// Overrides [`ClientConfig::socket_recv_timeout`] (which has no effect).
    pub socket_recv_timeout: Option<Duration>,
    /// Overrides [`ClientConfig::nb_fetch_tick`].
    pub nb_fetch_tick: Option<Duration>,
    /// Overrides [`ClientConfig::nb_fetch_timeout`].
    pub nb_fetch_timeout: Option<Duration>,
}

impl CallOptions {
    /// No overrides: the client's settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// This call may take at most `timeout` (overrides
    /// [`ClientConfig::call_timeout`]).
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = Some(Some(timeout));
        self
    }

    /// This call may take as long as it takes, whatever the client's
    /// [`ClientConfig::call_timeout`].
    pub fn no_call_timeout(mut self) -> Self {
        self.call_timeout = Some(None);
        self
    }

    /// Overrides [`ClientConfig::socket_connect_timeout`].
    pub fn socket_connect_timeout(mut self, timeout: Duration) -> Self {
        self.socket_connect_timeout = Some(timeout);
        self
    }

    /// Overrides [`ClientConfig::socket_send_timeout`].
    pub fn socket_send_timeout(mut self, timeout: Duration) -> Self {
        self.socket_send_timeout = Some(timeout);
        self
    }

    /// Overrides [`ClientConfig::nb_fetch_tick`].
    pub fn nb_fetch_tick(mut self, tick: Duration) -> Self {
        self.nb_fetch_tick = Some(tick);
        self
    }

    /// Overrides [`ClientConfig::nb_fetch_timeout`].
    pub fn nb_fetch_timeout(mut self, timeout: Duration) -> Self {
        self.nb_fetch_timeout = Some(timeout);
        self
    }
}

/// The timeouts in force for one call: the config with the call's overrides
/// applied and the socket timeouts capped by the call timeout.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Timeouts {
    /// The whole call; `None` for no limit.
    pub(crate) call: Option<Duration>,
    /// Connect and hello.
    pub(crate) connect: Duration,
    /// Writing one request frame.
    pub(crate) send: Duration,
    /// `Fetch.wait_ms`.
    pub(crate) nb_tick: Duration,
    /// How long past the tick a fetch may wait for its answer.
    pub(crate) nb_fetch: Duration,
}

impl Timeouts {
    /// Resolves `config` with `opts`.
    pub(crate) fn new(config: &ClientConfig, opts: &CallOptions) -> Self {
        let call = opts.call_timeout.unwrap_or(config.call_timeout);
        // As in the original: a stage never waits longer than the whole call.
        let cap = |d: Duration| call.map_or(d, |c| c.min(d));
        Timeouts {
            call,
            connect: cap(opts
                .socket_connect_timeout
                .unwrap_or(config.socket_connect_timeout)),
            send: cap(opts
                .socket_send_timeout
                .unwrap_or(config.socket_send_timeout)),
            nb_tick: opts.nb_fetch_tick.unwrap_or(config.nb_fetch_tick),
            nb_fetch: opts.nb_fetch_timeout.unwrap_or(config.nb_fetch_timeout),
        }
    }

    /// `Call.timeout_ms`: the call timeout in whole milliseconds, rounded up
    /// (so a sub-millisecond limit does not turn into 0, "no limit").
    pub(crate) fn call_timeout_ms(&self) -> u64 {
        self.call.map_or(0, duration_ms_ceil)
    }

    /// How long a `Fetch` (or `Submit`) may wait for its answer.
    pub(crate) fn nb_request_timeout(&self) -> Duration {
        self.nb_tick.saturating_add(self.nb_fetch)
    }

    /// `Submit.keep_ms`: long enough for the client to come back after a
    /// failed fetch and a reconnection, and never under a minute.
    pub(crate) fn nb_keep(&self) -> Duration {
        MIN_NB_KEEP.max(self.nb_tick.saturating_mul(2).saturating_add(self.nb_fetch))
    }
}

/// `d` in milliseconds, rounded up, saturating.
pub(crate) fn duration_ms_ceil(d: Duration) -> u64 {
    let ms = d.as_nanos().div_ceil(1_000_000);
    u64::try_from(ms).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_original_pyrpc_ones() {
        let c = ClientConfig::default();
        assert_eq!(c.call_timeout, None);
        assert_eq!(c.socket_connect_timeout, Duration::from_secs(10));
        assert_eq!(c.socket_send_timeout, Duration::from_secs(10));
        assert_eq!(c.socket_recv_timeout, Duration::from_millis(100));
        assert_eq!(c.nb_fetch_tick, Duration::from_secs(1));
        assert_eq!(c.nb_fetch_timeout, Duration::from_secs(5));
        assert_eq!(c.max_frame_len, pyrpc_framing::DEFAULT_MAX_FRAME_LEN);
        assert_eq!(c.max_value_depth, pyrpc_proto::MAX_VALUE_DEPTH);
        assert!(c.name.starts_with("pyrpc-rust/"), "{}", c.name);
        assert!(c.secret.is_none());
        assert!(c.tls.is_none());
    }

    #[test]
    fn socket_timeouts_are_capped_by_the_call_timeout() {
        let config = ClientConfig {
            call_timeout: Some(Duration::from_secs(2)),
            ..ClientConfig::default()
        };
        let t = Timeouts::new(&config, &CallOptions::default());
        assert_eq!(t.connect, Duration::from_secs(2));
        assert_eq!(t.send, Duration::from_secs(2));
        assert_eq!(t.call_timeout_ms(), 2000);

        let t = Timeouts::new(&ClientConfig::default(), &CallOptions::default());
        assert_eq!(t.connect, Duration::from_secs(10));
        assert_eq!(t.call_timeout_ms(), 0, "no limit travels as 0");
    }

    #[test]
    fn call_options_override_the_config() {
        let config = ClientConfig {
            call_timeout: Some(Duration::from_secs(2)),
            ..ClientConfig::default()
        };
        let lifted = CallOptions {
            call_timeout: Some(None),
            socket_send_timeout: Some(Duration::from_secs(30)),
            ..CallOptions::default()
        };
        let t = Timeouts::new(&config, &lifted);
        assert_eq!(t.call, None);
        assert_eq!(t.send, Duration::from_secs(30));
        assert_eq!(t.connect, Duration::from_secs(10));
    }

    #[test]
    fn sub_millisecond_timeout_is_not_sent_as_no_limit() {
        assert_eq!(duration_ms_ceil(Duration::from_micros(1)), 1);
        assert_eq!(duration_ms_ceil(Duration::from_millis(7)), 7);
        assert_eq!(duration_ms_ceil(Duration::MAX), u64::MAX);
    }

    #[test]
    fn keep_time_covers_a_missed_poll_and_is_at_least_a_minute() {
        let t = Timeouts::new(&ClientConfig::default(), &CallOptions::default());
        assert_eq!(t.nb_keep(), Duration::from_secs(60));
        assert_eq!(t.nb_request_timeout(), Duration::from_secs(6));
        let slow = CallOptions {
            nb_fetch_tick: Some(Duration::from_secs(30)),
            nb_fetch_timeout: Some(Duration::from_secs(10)),
            ..CallOptions::default()
        };
        let t = Timeouts::new(&ClientConfig::default(), &slow);
        assert_eq!(t.nb_keep(), Duration::from_secs(70));
    }
}
