//! [`ServerConfig`]: every knob of a server, with documented defaults.

use std::time::Duration;

/// How a [`Server`](crate::Server) behaves.
///
/// Plain public fields with a [`Default`]; change what you need:
///
/// ```
/// use std::time::Duration;
/// use pyrpc_server::ServerConfig;
///
/// let config = ServerConfig {
///     nonblocking: true,
///     shutdown_grace: Duration::from_secs(2),
///     ..ServerConfig::default()
/// };
/// assert_eq!(config.max_connections, 10_000);
/// ```
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Accept non-blocking calls (`Submit`/`Fetch`/`Release`), keeping their
    /// results until released or reaped. Off, those requests are answered
    /// `NOT_NONBLOCKING`, as the original pyrpc did for servers started without
    /// `nonblocking=True`.
    ///
    /// The default value is `false`.
    pub nonblocking: bool,
    /// Run one call at a time across the whole server, as the original
    /// `synchronous=True` did, for callees that are not safe to call
    /// concurrently. Calls wait their turn; a call whose deadline passes while
    /// it waits is answered `DEADLINE_EXCEEDED`.
    ///
    /// The default value is `false`.
    pub synchronous: bool,
    /// How often the reaper looks for non-blocking results past their
    /// keep-time. Shorter frees memory sooner; longer wakes the server less.
    /// Values below one millisecond count as one millisecond.
    ///
    /// The default value is 60 seconds.
    pub request_clean_interval: Duration,
    /// How long the result of a non-blocking call is kept after the call
    /// finished, when its `Submit` did not say (`keep_ms == 0`): long enough
    /// for a client to reconnect and fetch it, short enough that abandoned
    /// results do not pile up.
    ///
    /// The default value is 600 seconds.
    pub result_keep: Duration,
    /// The most non-blocking calls (running or finished, not yet released or
    /// reaped) kept at once. A `Submit` beyond it is answered `OVERLOADED`, so
    /// the store never grows without bound.
    ///
    /// The default value is 100 000.
    pub max_kept_results: usize,
    /// Where non-blocking results live: `None` (or `"memory"`) keeps them in
    /// this process; `"redis://host:port/db"` keeps them in Redis (cargo
    /// feature `redis`), shared by every server using the same database:
    /// `Submit` is then idempotent across all of them and any of them
    /// answers `Fetch` and `Release`. With Redis, `max_kept_results` bounds
    /// the calls this server runs, keep-times are Redis expiries, and an
    /// unreachable Redis fails non-blocking requests with `STORE_UNAVAILABLE`
    /// (blocking calls are not affected).
    ///
    /// The default value is `None`.
    pub result_store: Option<String>,
    /// With a shared result store: how long a running non-blocking call's
    /// lease lasts. The running server renews it every third of this; a call
    /// whose lease ran out (its server died) is answered `CALL_LOST`.
    /// Shorter notices a dead server sooner; longer tolerates longer stalls.
    ///
    /// The default value is 10 seconds.
    pub result_lease: Duration,
    /// The longest frame accepted from a client, in bytes; a longer one closes
    /// the connection (seen from the frame header, before anything is
    /// allocated). Announced in the hello. Frames sent are capped by this and
    /// by the client's own limit; a result that does not fit is answered
    /// `FRAME_TOO_LARGE`. At least [`pyrpc_proto::MIN_MAX_FRAME_LEN`]
    /// (1,024): clients refuse a server announcing less.
    ///
    /// The default value is [`pyrpc_framing::DEFAULT_MAX_FRAME_LEN`] (640 MiB).
    pub max_frame_len: usize,
    /// The deepest nesting of values accepted in arguments (and sent in
    /// results); deeper values are answered `UNSUPPORTED_VALUE`. Bounds the
    /// recursion of value conversion on hostile input.
    ///
    /// The default value is [`pyrpc_proto::MAX_VALUE_DEPTH`] (1024). Rust
    /// values are decoded at most [`pyrpc_proto::VALUE_DEPTH_CEILING`]
    /// (10,000) deep whatever this says; a Python server is not bound by it.
    pub max_value_depth: usize,
    /// The most connections served at once; one more is answered with a hello
    /// carrying an `OVERLOADED` error and closed, so a flood of connections
    /// cannot exhaust file descriptors and memory.
    ///
    /// The default value is 10 000.
    pub max_connections: usize,
    /// The most requests of one connection running at once. When a connection
    /// has this many, the server stops reading from it until one finishes
    /// (backpressure, not unbounded task spawning). Announced in the hello.
    /// Values below 1 count as 1.
    ///
    /// The default value is 256.
    pub max_in_flight_per_connection: usize,
    /// How long running calls may take to finish after a shutdown was asked
    /// for; their replies are still sent. Calls still running after it are
    /// dropped and their connections closed.
    ///
    /// The default value is 10 seconds.
    pub shutdown_grace: Duration,
    /// How long a new connection may take to send its hello, so connections
    /// that never speak do not hold a slot forever.
    ///
    /// The default value is 10 seconds.
    pub handshake_timeout: Duration,
    /// How long a connection may stay silent before the server closes it:
    /// no byte arrives from the client for this long while none of the
    /// connection's calls is running (a call that runs for hours keeps its
    /// connection). The same limit applies to a client that stops reading:
    /// a reply write that makes no progress for this long closes the
    /// connection and frees the replies queued for it. `None` never closes.
    ///
    /// The default value is 5 minutes.
    pub idle_timeout: Option<Duration>,
    /// The most bytes all connections together may hold for frames that
    /// are still arriving (a long frame is buffered until its last byte).
    /// Each connection holds up to 64 KiB of a partial frame outside this
    /// budget, so small requests never touch it; a connection whose frame
    /// would take the total over it is closed. This bounds what slow or
    /// huge uploads can make the server hold, however many connections
    /// they use (docs/decisions/0002-server-memory-limits.md). Keep it at
    /// least [`max_frame_len`](Self::max_frame_len), or frames that long are
    /// always refused.
    ///
    /// The default value is 1 GiB.
    pub max_buffered_bytes: usize,
    /// The most bytes of replies queued for one connection and not yet
    /// written to it. When a client does not read its replies, the queue
    /// fills, the connection's calls wait to queue theirs, and the server
    /// stops reading that connection's requests (backpressure) instead of
    /// buffering without limit. A single reply larger than this is still
    /// sent, alone.
    ///
    /// The default value is 8 MiB.
    pub max_queued_reply_bytes: usize,
    /// Accept pickled values (`Value::Pickle`) in arguments and send them in
    /// results. Unpickling runs arbitrary code, so it must be opted in to.
    ///
    /// The default value is `false`.
    pub allow_pickle: bool,
    /// The permission bits of the Unix socket file (e.g. `0o600`: only the
    /// owner may connect). Ignored for TCP.
    ///
    /// The default value is `None`: the process umask decides.
    pub unix_mode: Option<u32>,
    /// A shared secret clients must prove they hold (HMAC-SHA256
    /// challenge-response in the hello, docs/PROTOCOL.md) before the server
    /// reads any of their requests; a client without it is refused with
    /// `UNAUTHENTICATED` and no method runs. The server proves it holds the
    /// secret too. Set it on every server reachable over a network: a TCP
    /// server bound to all interfaces without one logs a warning.
    ///
    /// The default value is `None`: no authentication.
    pub secret: Option<pyrpc_proto::auth::Secret>,
    /// TLS for TCP connections: the server's certificate chain and key, and
    /// optionally the CA that client certificates must be signed by (mutual
    /// TLS). A client that does not start TLS is refused with a clear error
    /// ("this server requires TLS"). Composes with
    /// [`secret`](Self::secret): both may be set. Not used for Unix sockets.
    ///
    /// The default value is `None`: no TLS.
    pub tls: Option<pyrpc_transport::ServerTls>,
    /// Who may shut the server down remotely (`shutdown()` from a client).
    ///
    /// The default value is [`RemoteShutdown::Auto`].
    pub remote_shutdown: RemoteShutdown,
    /// The name announced in the server's hello, for the client's logs.
    ///
    /// The default value is `"pyrpc-rust/<version of this crate>"`.
    pub name: String,
}

/// Whether clients may shut a server down (the `Shutdown` request and the
/// `shutdown` method). A refused shutdown is answered with an
/// `UNAUTHENTICATED` error (a `PermissionError` in Python) saying why, and the
/// server keeps serving.
///
/// # Examples
///
/// ```
/// use pyrpc_server::{RemoteShutdown, ServerConfig};
///
/// let config = ServerConfig {
///     remote_shutdown: RemoteShutdown::Refuse,
///     ..ServerConfig::default()
/// };
/// assert_eq!(ServerConfig::default().remote_shutdown, RemoteShutdown::Auto);
/// # let _ = config;
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RemoteShutdown {
    /// Allowed on Unix sockets and on TCP servers bound to loopback
    /// addresses only (the original pyrpc's behaviour); on a server bound to
    /// other interfaces, allowed only to a client that proved the shared
    /// secret or presented a verified client certificate.
    #[default]
    Auto,
    /// Any client may shut the server down.
    Allow,
    /// No client may; only the process itself (a handle, a signal).
    Refuse,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            nonblocking: false,
            synchronous: false,
            request_clean_interval: Duration::from_secs(60),
            result_keep: Duration::from_secs(600),
            max_kept_results: 100_000,
            result_store: None,
            result_lease: Duration::from_secs(10),
            max_frame_len: pyrpc_framing::DEFAULT_MAX_FRAME_LEN,
            max_value_depth: pyrpc_proto::MAX_VALUE_DEPTH,
            max_connections: 10_000,
            max_in_flight_per_connection: 256,
            shutdown_grace: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Some(Duration::from_secs(300)),
            max_buffered_bytes: 1024 * 1024 * 1024,
            max_queued_reply_bytes: 8 * 1024 * 1024,
            allow_pickle: false,
            unix_mode: None,
            secret: None,
            tls: None,
            remote_shutdown: RemoteShutdown::Auto,
            name: concat!("pyrpc-rust/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documentation() {
        let c = ServerConfig::default();
        assert!(!c.nonblocking);
        assert!(!c.synchronous);
        assert_eq!(c.request_clean_interval, Duration::from_secs(60));
        assert_eq!(c.result_keep, Duration::from_secs(600));
        assert_eq!(c.max_kept_results, 100_000);
        assert_eq!(c.max_frame_len, 640 * 1024 * 1024);
        assert_eq!(c.max_value_depth, 1024);
        assert_eq!(c.max_connections, 10_000);
        assert_eq!(c.max_in_flight_per_connection, 256);
        assert_eq!(c.shutdown_grace, Duration::from_secs(10));
        assert_eq!(c.handshake_timeout, Duration::from_secs(10));
        assert_eq!(c.idle_timeout, Some(Duration::from_secs(300)));
        assert_eq!(c.max_buffered_bytes, 1 << 30);
        assert_eq!(c.max_queued_reply_bytes, 8 << 20);
        assert!(!c.allow_pickle);
        assert_eq!(c.unix_mode, None);
        assert!(c.secret.is_none());
        assert!(c.tls.is_none());
        assert_eq!(c.remote_shutdown, RemoteShutdown::Auto);
        assert_eq!(c.name, format!("pyrpc-rust/{}", env!("CARGO_PKG_VERSION")));
    }
}
