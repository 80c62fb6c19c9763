//! [`Client`]: the async client.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use pyrpc_proto::raw::{self, request, response, RawArgs};
use pyrpc_proto::wire;
use pyrpc_proto::{Args, MethodInfo, ServerStats, Value};
use pyrpc_transport::Address;
use tokio::time::Instant;
use tracing::debug;

use crate::builder::ClientBuilder;
use crate::config::{CallOptions, ClientConfig, Timeouts};
use crate::connection::{Connection, ServerInfo};
use crate::connector::Connector;
use crate::error::{CallError, ProtocolError, TimeoutStage};
use crate::nonblocking::NbCall;

/// A pyrpc client: calls methods of the server at one address.
///
/// The client connects on first use and keeps the connection for later
/// calls. One connection carries any number of concurrent calls (the server
/// answers each by its request id, in any order), so clones of one client,
/// used from many tasks or threads, share it. When the connection breaks,
/// the calls waiting on it fail and the next call connects again.
///
/// `Client` is cheap to clone (an `Arc` inside), `Send` and `Sync`. Its
/// futures are `Send`. The connection's reader task runs on the runtime of
/// the call that connected.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use pyrpc_client::Client;
/// use pyrpc_proto::{Args, Value};
///
/// let client = Client::new("127.0.0.1:50300".parse()?);
/// let ret = client.call("echo", Args::new().arg(1).kwarg("foo", "foo")).await?;
/// assert_eq!(ret.to_string(), "((1,), {'foo': 'foo'})");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    addr: Address,
    /// Opens the streams, when the client does not dial `addr` itself.
    connector: Option<Arc<dyn Connector>>,
    config: ClientConfig,
    /// The connection calls use, if one was made. A `std` mutex: it is held
    /// only to clone or swap the `Arc`, never across an `.await`.
    current: Mutex<Option<Arc<Connection>>>,
    /// Taken while connecting, so that concurrent callers finding no open
    /// connection make one, not one each. A `tokio` mutex: it is held across
    /// the connect and the hello.
    connecting: tokio::sync::Mutex<()>,
    /// What the server said in the last hello.
    server_info: Mutex<Option<ServerInfo>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while these locks are held, so the data is intact.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `now + d`, or `None` (no deadline) when that is beyond what an `Instant`
/// can hold.
pub(crate) fn deadline_after(d: Duration) -> Option<Instant> {
    Instant::now().checked_add(d)
}

impl Client {
    /// A client of the server at `addr`, with the default [`ClientConfig`].
    ///
    /// Nothing is connected until the first call.
    pub fn new(addr: Address) -> Client {
        Client::with_config(addr, ClientConfig::default())
    }

    /// A builder of a client of the server at `addr`, to change settings
    /// one by one.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use pyrpc_client::{Address, Client};
    ///
    /// let client = Client::builder(Address::tcp("127.0.0.1", 50300))
    ///     .call_timeout(Duration::from_secs(5))
    ///     .build();
    /// assert_eq!(client.config().call_timeout, Some(Duration::from_secs(5)));
    /// ```
    pub fn builder(addr: Address) -> ClientBuilder {
        ClientBuilder::new(addr)
    }

    /// A client of the server at `addr`.
    ///
    /// Nothing is connected until the first call.
    pub fn with_config(addr: Address, config: ClientConfig) -> Client {
        Client::build(addr, None, config)
    }

    /// A client that gets each connection's byte stream from `connector`
    /// instead of dialing `addr` itself (`addr` then only names the server
    /// in logs and errors, and `config.tls` is not used: the connector
    /// makes the stream it wants). See [`Connector`] for an example.
    ///
    /// Nothing is connected until the first call.
    pub fn with_connector(
        addr: Address,
        config: ClientConfig,
        connector: impl Connector,
    ) -> Client {
        Client::build(addr, Some(Arc::new(connector)), config)
    }

    fn build(addr: Address, connector: Option<Arc<dyn Connector>>, config: ClientConfig) -> Client {
        Client {
            inner: Arc::new(Inner {
                addr,
                connector,
                config,
                current: Mutex::new(None),
                connecting: tokio::sync::Mutex::new(()),
                server_info: Mutex::new(None),
            }),
        }
    }

    /// The server's address.
    pub fn address(&self) -> &Address {
        &self.inner.addr
    }

    /// The client's settings.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// What the server announced in the last hello (its capabilities), or
    /// `None` before the first connection.
    pub fn server_info(&self) -> Option<ServerInfo> {
        lock(&self.inner.server_info).clone()
    }

    /// Runs `f` on what the server announced in the last hello (`None`
    /// before the first connection), without copying it: for a caller that
    /// reads a capability on every call.
    ///
    /// # Examples
    ///
    /// ```
    /// use pyrpc_client::{Address, Client};
    ///
    /// let client = Client::new(Address::tcp("127.0.0.1", 50300));
    /// // Not connected yet: nothing announced.
    /// assert!(!client.with_server_info(|info| info.is_some_and(|i| i.pickle)));
    /// ```
    pub fn with_server_info<R>(&self, f: impl FnOnce(Option<&ServerInfo>) -> R) -> R {
        f(lock(&self.inner.server_info).as_ref())
    }

    /// How many requests await their replies on the current connection.
    ///
    /// A call that times out or is dropped stops waiting at once, so this
    /// counts only calls that are still waiting.
    pub fn in_flight(&self) -> usize {
        lock(&self.inner.current)
            .as_ref()
            .map_or(0, |c| c.in_flight())
    }

    /// Calls `method` with `args` and returns its result.
    ///
    /// # Errors
    ///
    /// [`CallError::Remote`] when the method raised (or the server refused
    /// the call); otherwise why no answer came back: see [`CallError`].
    pub async fn call(&self, method: &str, args: Args) -> Result<Value, CallError> {
        self.call_with(method, args, &CallOptions::default()).await
    }

    /// Calls `method` with `args`, with `opts` overriding the client's
    /// settings for this call.
    ///
    /// # Errors
    ///
    /// As [`Client::call`].
    pub async fn call_with(
        &self,
        method: &str,
        args: Args,
        opts: &CallOptions,
    ) -> Result<Value, CallError> {
        let t = Timeouts::new(&self.inner.config, opts);
        let conn = self.prepare(&args, t.connect).await?;
        let call = wire_call(method, args, t.call_timeout_ms());
        let value = self.call_on(&conn, call, &t).await?;
        self.decode(value)
    }

    /// [`Client::call_with`] with the arguments and the result as encoded
    /// `pyrpc.v1.Value` messages ([`pyrpc_proto::raw`]): for a caller that
    /// converts values itself (the Python binding). The arguments are not
    /// checked against the depth limit here: the encoder must.
    ///
    /// # Errors
    ///
    /// As [`Client::call`].
    pub async fn call_raw_with(
        &self,
        method: &str,
        args: RawArgs,
        opts: &CallOptions,
    ) -> Result<Bytes, CallError> {
        let t = Timeouts::new(&self.inner.config, opts);
        let conn = self.connection(t.connect).await?;
        let call = args.into_call(method, t.call_timeout_ms());
        self.call_on(&conn, call, &t).await
    }

    /// Sends `call` on `conn` and waits for its encoded result.
    async fn call_on(
        &self,
        conn: &Arc<Connection>,
        call: raw::Call,
        t: &Timeouts,
    ) -> Result<Bytes, CallError> {
        let deadline = t.call.and_then(deadline_after);
        let reply = conn.send(request::Kind::Call(call), t.send).await?;
        let id = reply.id;
        let outcome = match reply.wait(deadline).await {
            Err(e @ CallError::Timeout { .. }) => {
                // We stop waiting: so should the server.
                conn.cancel(id).await;
                return Err(e);
            }
            other => other?,
        };
        match raw_value_of(outcome, "call") {
            // The server stopped the call at the deadline we sent it, which
            // can reach us just as our own timer fires: one timeout, whoever
            // noticed first.
            Err(CallError::Remote(e))
                if deadline.is_some() && e.kind == pyrpc_proto::ErrorKind::DeadlineExceeded =>
            {
                Err(CallError::Timeout {
                    stage: TimeoutStage::Reply,
                })
            }
            other => other,
        }
    }

    /// Calls `method` as a non-blocking call: the server runs it and keeps
    /// the result, and the client polls for it, reconnecting as often as
    /// needed, so a dropped connection loses nothing.
    ///
    /// The call is submitted under a random 16-byte call id, then fetched
    /// every [`nb_fetch_tick`](ClientConfig::nb_fetch_tick) (the server holds
    /// each fetch that long, and answers as soon as the call finishes). A
    /// fetch unanswered for `nb_fetch_tick + nb_fetch_timeout` drops the
    /// connection. After any connection failure the client connects again
    /// and resubmits under the same call id, which starts nothing on a
    /// server that knows the id. When the result arrives it is released.
    /// [`call_timeout`](ClientConfig::call_timeout), if set, bounds the whole.
    ///
    /// # Errors
    ///
    /// `Timeout { stage: Nb }` when the call timeout passes; a
    /// [`CallError::Remote`] when the method raised, when the server is not
    /// non-blocking (`NOT_NONBLOCKING`), or when it no longer knows the call
    /// (`UNKNOWN_CALL`: the result was reaped); a [`CallError::Protocol`]
    /// when the server breaks the protocol.
    pub async fn nb_call(&self, method: &str, args: Args) -> Result<Value, CallError> {
        self.nb_call_with(method, args, &CallOptions::default())
            .await
    }

    /// [`Client::nb_call`] with `opts` overriding the client's settings.
    ///
    /// # Errors
    ///
    /// As [`Client::nb_call`].
    pub async fn nb_call_with(
        &self,
        method: &str,
        args: Args,
        opts: &CallOptions,
    ) -> Result<Value, CallError> {
        check_depth(&args, self.inner.config.max_value_depth)?;
        let t = Timeouts::new(&self.inner.config, opts);
        let call = wire_call(method, args, t.call_timeout_ms());
        let value = self.nb_call_on(call, t).await?;
        self.decode(value)
    }

    /// [`Client::nb_call_with`] with raw values, as [`Client::call_raw_with`].
    ///
    /// # Errors
    ///
    /// As [`Client::nb_call`].
    pub async fn nb_call_raw_with(
        &self,
        method: &str,
        args: RawArgs,
        opts: &CallOptions,
    ) -> Result<Bytes, CallError> {
        let t = Timeouts::new(&self.inner.config, opts);
        let call = args.into_call(method, t.call_timeout_ms());
        self.nb_call_on(call, t).await
    }

    async fn nb_call_on(&self, call: raw::Call, t: Timeouts) -> Result<Bytes, CallError> {
        let deadline = t.call.and_then(deadline_after);
        let nb = NbCall::new(self, call, t);
        match deadline {
            Some(d) => {
                tokio::time::timeout_at(d, nb.run())
                    .await
                    .unwrap_or(Err(CallError::Timeout {
                        stage: TimeoutStage::Nb,
                    }))
            }
            None => nb.run().await,
        }
    }

    // ----- internals shared with the non-blocking poller -----

    /// Checks `args` against the value depth limits and returns the
    /// connection to send them on.
    pub(crate) async fn prepare(
        &self,
        args: &Args,
        connect: Duration,
    ) -> Result<Arc<Connection>, CallError> {
        let ours = self.inner.config.max_value_depth;
        // Refuse before touching the network.
        check_depth(args, ours)?;
        let conn = self.connection(connect).await?;
        let theirs = conn.info().max_value_depth as usize;
        if theirs != 0 && theirs < ours {
            check_depth(args, theirs)?;
        }
        Ok(conn)
    }

    /// Sends a request expecting `Ack`.
    async fn ack_request(
        &self,
        kind: request::Kind,
        t: &Timeouts,
        what: &str,
    ) -> Result<(), CallError> {
        let deadline = t.call.and_then(deadline_after);
        let conn = self.connection(t.connect).await?;
        let outcome = conn.send(kind, t.send).await?.wait(deadline).await?;
        expect_ack(outcome, what)
    }

    /// A reply's encoded value, decoded with the client's depth limit.
    fn decode(&self, value: Bytes) -> Result<Value, CallError> {
        Ok(raw::decode_value(value, self.inner.config.max_value_depth)?)
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("addr", &self.inner.addr)
            .field("connected", &self.current_open().is_some())
            .finish_non_exhaustive()
    }
}

/// Checks every argument against `max` levels of nesting.
fn check_depth(args: &Args, max: usize) -> Result<(), CallError> {
    for v in args.args.iter().chain(args.kwargs.iter().map(|(_, v)| v)) {
        v.check_depth(max)?;
    }
    Ok(())
}

/// The wire form of a call.
pub(crate) fn wire_call(method: &str, args: Args, timeout_ms: u64) -> raw::Call {
    RawArgs::from(args).into_call(method, timeout_ms)
}

/// A reply's encoded value; the remote error, or a protocol error, otherwise.
pub(crate) fn raw_value_of(outcome: response::Kind, what: &str) -> Result<Bytes, CallError> {
    match outcome {
        response::Kind::Value(v) => Ok(v.into_bytes()),
        response::Kind::Error(e) => Err(CallError::Remote(e.into())),
        other => Err(unexpected(&other, what)),
    }
}

/// `Ok` for an `Ack`; the remote error, or a protocol error, otherwise.
pub(crate) fn expect_ack(outcome: response::Kind, what: &str) -> Result<(), CallError> {
    match outcome {
        response::Kind::Ack(_) => Ok(()),
        response::Kind::Error(e) => Err(CallError::Remote(e.into())),
        other => Err(unexpected(&other, what)),
    }
}

/// The protocol error for an answer of the wrong kind.
pub(crate) fn unexpected(outcome: &response::Kind, what: &str) -> CallError {
    let kind = match outcome {
        response::Kind::Value(_) => "a value",
        response::Kind::Error(_) => "an error",
        response::Kind::Ack(_) => "an ack",
        response::Kind::Pending(_) => "pending",
        response::Kind::Methods(_) => "a method list",
        response::Kind::Stats(_) => "stats",
        response::Kind::StreamEnd(_) => "the end of a stream",
    };
    ProtocolError::UnexpectedAnswer {
        request: what.to_owned(),
        answer: kind,
    }
    .into()
}

mod admin;
mod connect;

#[cfg(test)]
mod tests;
