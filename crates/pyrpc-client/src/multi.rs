//! [`MultiClient`]: one client over several servers.
//!
//! Each server has its own [`Client`] (its own connection, made lazily).
//! A call goes to the server with the fewest calls waiting on it, ties
//! taken in turn; a server that refuses a connection is skipped for a
//! jittered, doubling pause (`member.rs`). A blocking call moves to another
//! server only when nothing was sent (the connection was refused), when the
//! server refused it unrun (`SHUTTING_DOWN`, `OVERLOADED`), or when the
//! caller marked it safe to run twice ([`Retry::Safe`]). A non-blocking
//! call follows its call id to any server that knows it (`nb.rs`).
//! docs/decisions/0082-multi-server-client.md says why.

mod member;
mod nb;

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pyrpc_proto::raw::RawArgs;
use pyrpc_proto::{Args, ErrorKind, MethodInfo, ServerStats, Value};
use pyrpc_transport::Address;
use tokio::time::Instant;

use crate::client::{deadline_after, wire_call, Client};
use crate::config::{CallOptions, ClientConfig, Timeouts};
use crate::connection::ServerInfo;
use crate::error::{CallError, TimeoutStage};
use crate::stream::RawReply;
use member::Member;

/// Whether a blocking call may run again on another server when the one it
/// was sent to fails before answering.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Retry {
    /// At most once (the default): once the call may have reached a server,
    /// a broken connection is the caller's error ([`CallError::Closed`]);
    /// the call is tried elsewhere only if it surely did not run there (the
    /// connection was refused, or the server answered `SHUTTING_DOWN` or
    /// `OVERLOADED`).
    #[default]
    Never,
    /// The method is safe to run twice (idempotent): after a broken
    /// connection the call is sent to the next server.
    Safe,
}

/// [`MultiClient::new`] was given no address.
#[derive(Debug, thiserror::Error)]
#[error("a client over several servers needs at least one address")]
pub struct NoAddresses;

/// A client over several servers: spreads calls over those that answer,
/// skips one that refuses connections (with a bounded, jittered backoff),
/// and follows a non-blocking call to whichever server can answer it.
///
/// * **Blocking calls** go to the server with the fewest calls waiting on
///   this client's connection to it (ties in turn, from a random first
///   server). They run **at most
///   once**: see [`Retry`] for when one moves to another server.
/// * **Non-blocking calls** ([`MultiClient::nb_call`]) are submitted to one
///   server; when it stops answering, the client asks the others for the
///   call id. With a shared result store (Redis) any of them knows it, so
///   the call's result (or `CALL_LOST`, if its server died running it)
///   comes from another server, and the call never runs twice. When no
///   other server knows it (separate stores) and its server stays
///   unreachable for `nb_fetch_tick + nb_fetch_timeout`, the call fails
///   with a `CALL_LOST` error saying so.
/// * [`MultiClient::connected`] is true when **any** server answers.
///
/// Cheap to clone; `Send` and `Sync`.
///
/// # Examples
///
/// ```no_run
/// use pyrpc_client::{Address, Args, ClientConfig, MultiClient, Retry, CallOptions};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let client = MultiClient::new(
///     [Address::tcp("10.0.0.1", 50300), Address::tcp("10.0.0.2", 50300)],
///     ClientConfig::default(),
/// )?;
/// let v = client.call("echo", Args::new().arg(1)).await?;
/// // Safe to run twice: moves to the next server if the first one dies mid-call.
/// let w = client
///     .call_retry_with("lookup", Args::new().arg("k"), &CallOptions::new(), Retry::Safe)
///     .await?;
/// // Non-blocking: followed across servers sharing a result store.
/// let x = client.nb_call("long_job", Args::new()).await?;
/// # let _ = (v, w, x);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct MultiClient {
    inner: Arc<Inner>,
}

struct Inner {
    members: Vec<Member>,
    /// Where the next tie-break turn starts.
    next: AtomicUsize,
    config: ClientConfig,
}

impl MultiClient {
    /// A client over the servers at `addrs` (in any order; duplicates are
    /// kept, giving that server a larger share of ties). Nothing connects
    /// until the first call.
    ///
    /// # Errors
    ///
    /// [`NoAddresses`] when `addrs` is empty.
    ///
    /// # Examples
    ///
    /// ```
    /// use pyrpc_client::{Address, ClientConfig, MultiClient};
    ///
    /// let c = MultiClient::new(
    ///     [Address::tcp("127.0.0.1", 50300), Address::unix("/tmp/b.sock")],
    ///     ClientConfig::default(),
    /// )
    /// .unwrap();
    /// assert_eq!(c.addresses().len(), 2);
    /// assert!(MultiClient::new([], ClientConfig::default()).is_err());
    /// ```
    pub fn new(
        addrs: impl IntoIterator<Item = Address>,
        config: ClientConfig,
    ) -> Result<MultiClient, NoAddresses> {
        let members: Vec<Member> = addrs
            .into_iter()
            .map(|a| Member::new(Client::with_config(a, config.clone())))
            .collect();
        if members.is_empty() {
            return Err(NoAddresses);
        }
        Ok(MultiClient {
            inner: Arc::new(Inner {
                // A random first turn: many short-lived clients do not all
                // start on the first server.
                next: AtomicUsize::new(uuid::Uuid::new_v4().as_u128() as usize % members.len()),
                members,
                config,
            }),
        })
    }

    /// The servers' addresses, in the order given.
    pub fn addresses(&self) -> Vec<Address> {
        self.inner
            .members
            .iter()
            .map(|m| m.client.address().clone())
            .collect()
    }

    /// The settings every server's client uses.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// How many calls each server answered (blocking calls with an outcome,
    /// non-blocking calls whose outcome it gave), in the order of
    /// [`MultiClient::addresses`].
    pub fn served(&self) -> Vec<u64> {
        self.inner.members.iter().map(Member::served).collect()
    }

    /// What a server announced in its last hello: the first server (in
    /// address order) this client has met, or `None` before any.
    pub fn server_info(&self) -> Option<ServerInfo> {
        self.inner
            .members
            .iter()
            .find_map(|m| m.client.server_info())
    }

    /// The servers in the order a call tries them: those not skipped, the
    /// fewest waiting calls first (ties in turn), then the skipped ones, the
    /// soonest back first (a call tries every server before it fails).
    fn order(&self) -> Vec<usize> {
        let members = &self.inner.members;
        let n = members.len();
        let start = self.inner.next.fetch_add(1, Ordering::Relaxed) % n;
        let now = Instant::now();
        let mut up = Vec::with_capacity(n);
        let mut down = Vec::new();
        for k in 0..n {
            let i = (start + k) % n;
            match members[i].down_until(now) {
                None => up.push((members[i].client.in_flight(), k, i)),
                Some(until) => down.push((until, i)),
            }
        }
        up.sort_unstable();
        down.sort_unstable();
        up.into_iter()
            .map(|(_, _, i)| i)
            .chain(down.into_iter().map(|(_, i)| i))
            .collect()
    }

    fn member(&self, i: usize) -> &Member {
        &self.inner.members[i]
    }

    /// Runs `f` on the servers in [`MultiClient::order`] until one answers,
    /// moving on only as `retry` allows; the whole bounded by the call
    /// timeout.
    async fn on_some_server<T, F, Fut>(
        &self,
        opts: &CallOptions,
        retry: Retry,
        mut f: F,
    ) -> Result<T, CallError>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<T, CallError>>,
    {
        let t = Timeouts::new(&self.inner.config, opts);
        let attempts = async {
            let mut last = None;
            for i in self.order() {
                let m = self.member(i);
                // Connect first: a failure here means nothing was sent.
                let outcome = match m.client.connection(t.connect).await {
                    Ok(_) => f(m.client.clone()).await,
                    Err(e) => Err(e),
                };
                match outcome {
                    Ok(v) => {
                        m.mark_up();
                        m.count_served();
                        return Ok(v);
                    }
                    Err(e) if not_sent(&e) => {
                        m.mark_down();
                        last = Some(e);
                    }
                    Err(e) if refused_unrun(&e) => last = Some(e),
                    Err(e) if retry == Retry::Safe && e.is_connection_error() => {
                        tracing::info!(target: "pyrpc.client", "{} failed mid-call; retrying elsewhere: {}",
                            m.client.address(), pyrpc_proto::Report(&e));
                        last = Some(e);
                    }
                    Err(e) => return Err(e),
                }
            }
            // Every server was tried; `last` is set (there is at least one).
            Err(last.unwrap_or(CallError::Closed))
        };
        match t.call.and_then(deadline_after) {
            Some(d) => {
                tokio::time::timeout_at(d, attempts)
                    .await
                    .unwrap_or(Err(CallError::Timeout {
                        stage: TimeoutStage::Reply,
                    }))
            }
            None => attempts.await,
        }
    }

    /// Calls `method` on one of the servers, at most once.
    ///
    /// # Errors
    ///
    /// As [`Client::call`]; when every server refused the connection, the
    /// last refusal ([`CallError::NoSocket`]).
    pub async fn call(&self, method: &str, args: Args) -> Result<Value, CallError> {
        self.call_retry_with(method, args, &CallOptions::default(), Retry::Never)
            .await
    }

    /// [`MultiClient::call`] with `opts` overriding the settings.
    ///
    /// # Errors
    ///
    /// As [`MultiClient::call`].
    pub async fn call_with(
        &self,
        method: &str,
        args: Args,
        opts: &CallOptions,
    ) -> Result<Value, CallError> {
        self.call_retry_with(method, args, opts, Retry::Never).await
    }

    /// [`MultiClient::call_with`], moving to the next server after a broken
    /// connection when `retry` is [`Retry::Safe`].
    ///
    /// # Errors
    ///
    /// As [`MultiClient::call`].
    pub async fn call_retry_with(
        &self,
        method: &str,
        args: Args,
        opts: &CallOptions,
        retry: Retry,
    ) -> Result<Value, CallError> {
        self.on_some_server(opts, retry, |c| {
            let args = args.clone();
            async move { c.call_with(method, args, opts).await }
        })
        .await
    }

    /// [`MultiClient::call_retry_with`] with encoded arguments, returning the
    /// encoded value or a stream (as [`Client::call_streaming_raw_with`]).
    ///
    /// # Errors
    ///
    /// As [`MultiClient::call`].
    pub async fn call_streaming_raw_with(
        &self,
        method: &str,
        args: RawArgs,
        opts: &CallOptions,
        retry: Retry,
    ) -> Result<RawReply, CallError> {
        self.on_some_server(opts, retry, |c| {
            let args = args.clone();
            async move { c.call_streaming_raw_with(method, args, opts).await }
        })
        .await
    }

    /// Calls `method` as a non-blocking call: submitted to one server and
    /// followed to any server that knows its call id (see the type's docs).
    ///
    /// # Errors
    ///
    /// As [`Client::nb_call`]; `CALL_LOST` ([`CallError::Remote`]) when the
    /// call's server died running it, or went away and no other server
    /// knows the call.
    pub async fn nb_call(&self, method: &str, args: Args) -> Result<Value, CallError> {
        self.nb_call_with(method, args, &CallOptions::default())
            .await
    }

    /// [`MultiClient::nb_call`] with `opts` overriding the settings.
    ///
    /// # Errors
    ///
    /// As [`MultiClient::nb_call`].
    pub async fn nb_call_with(
        &self,
        method: &str,
        args: Args,
        opts: &CallOptions,
    ) -> Result<Value, CallError> {
        for v in args.args.iter().chain(args.kwargs.iter().map(|(_, v)| v)) {
            v.check_depth(self.inner.config.max_value_depth)?;
        }
        let t = Timeouts::new(&self.inner.config, opts);
        let call = wire_call(method, args, t.call_timeout_ms());
        let value = self.nb_run(call, t).await?;
        Ok(pyrpc_proto::raw::decode_value(
            value,
            self.inner.config.max_value_depth,
        )?)
    }

    /// [`MultiClient::nb_call_with`] with encoded arguments and result.
    ///
    /// # Errors
    ///
    /// As [`MultiClient::nb_call`].
    pub async fn nb_call_raw_with(
        &self,
        method: &str,
        args: RawArgs,
        opts: &CallOptions,
    ) -> Result<Bytes, CallError> {
        let t = Timeouts::new(&self.inner.config, opts);
        let call = args.into_call(method, t.call_timeout_ms());
        self.nb_run(call, t).await
    }

    async fn nb_run(&self, call: pyrpc_proto::raw::Call, t: Timeouts) -> Result<Bytes, CallError> {
        let run = nb::MultiNb::new(self, call, t).run();
        match t.call.and_then(deadline_after) {
            Some(d) => tokio::time::timeout_at(d, run)
                .await
                .unwrap_or(Err(CallError::Timeout {
                    stage: TimeoutStage::Nb,
                })),
            None => run.await,
        }
    }

    /// True when any server answers a ping within `timeout` (all are
    /// pinged at once). Never fails.
    pub async fn connected(&self, timeout: Duration) -> bool {
        let (tx, mut rx) = tokio::sync::mpsc::channel(self.inner.members.len());
        for m in &self.inner.members {
            let c = m.client.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let _ = tx.send(c.connected(timeout).await).await;
            });
        }
        drop(tx);
        while let Some(up) = rx.recv().await {
            if up {
                return true;
            }
        }
        false
    }

    /// Asks every server to shut down.
    ///
    /// # Errors
    ///
    /// The first failure, after every server was asked.
    pub async fn shutdown(&self) -> Result<(), CallError> {
        let mut first = Ok(());
        for m in &self.inner.members {
            if let Err(e) = m.client.shutdown().await {
                if first.is_ok() {
                    first = Err(e);
                }
            }
        }
        first
    }

    /// The methods of one server that answers (all are expected to serve
    /// the same).
    ///
    /// # Errors
    ///
    /// As [`Client::list_methods`], from the last server tried.
    pub async fn list_methods(&self) -> Result<Vec<MethodInfo>, CallError> {
        self.on_some_server(&CallOptions::default(), Retry::Safe, |c| async move {
            c.list_methods().await
        })
        .await
    }

    /// The statistics of one server that answers.
    ///
    /// # Errors
    ///
    /// As [`Client::stats`], from the last server tried.
    pub async fn stats(&self) -> Result<ServerStats, CallError> {
        self.on_some_server(&CallOptions::default(), Retry::Safe, |c| async move {
            c.stats().await
        })
        .await
    }
}

impl fmt::Debug for MultiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultiClient")
            .field("addresses", &self.addresses())
            .finish_non_exhaustive()
    }
}

/// Nothing of the request reached the server: it could not be connected to.
pub(crate) fn not_sent(e: &CallError) -> bool {
    matches!(
        e,
        CallError::NoSocket { .. }
            | CallError::Timeout {
                stage: TimeoutStage::Connect
            }
    )
}

/// The server refused the request without running it.
pub(crate) fn refused_unrun(e: &CallError) -> bool {
    e.remote()
        .is_some_and(|r| matches!(r.kind, ErrorKind::ShuttingDown | ErrorKind::Overloaded))
}

#[cfg(test)]
mod tests;
