//! The result-store seam: where the results of non-blocking calls live.
//!
//! [`ResultStore`] is what `dispatch.rs` and the reaper use for
//! `Submit`/`Fetch`/`Release`. Two stores implement it:
//!
//! * `memory` (the default): a [`ResultTable`](crate::results::ResultTable)
//!   behind a mutex, private to one server process.
//! * `redis` (cargo feature `redis`, chosen with
//!   [`ServerConfig::result_store`](crate::ServerConfig::result_store) =
//!   `"redis://host:port/db"`): shared by every server pointing at the same
//!   Redis, so `Submit` is idempotent across all of them, any of them answers
//!   `Fetch` and `Release`, and a call whose server died is reported lost (a
//!   lease the running server renews).
//!
//! The methods are async and may fail (a shared store can be unreachable); a
//! failure is answered to the client as `STORE_UNAVAILABLE` and never touches
//! blocking calls.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use pyrpc_proto::{ErrorKind, RemoteError, Value};
use tokio::time::Instant;

use crate::results::{CallId, Lookup, Submitted};

pub(crate) mod memory;
#[cfg(feature = "redis")]
pub(crate) mod redis;

/// What the store methods return: boxed, so the trait stays object-safe.
pub(crate) type StoreFuture<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Why a store could not answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// The shared store could not be reached or did not answer in time.
    #[error("the result store {url} is unavailable: {reason}")]
    Unavailable {
        /// The store's URL, without a password.
        url: String,
        /// What went wrong.
        reason: String,
    },
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    /// An entry in the store could not be read back.
    #[error("the result store holds an unreadable entry: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// The error answered to the client.
    pub(crate) fn to_remote(&self) -> RemoteError {
        RemoteError::new(ErrorKind::StoreUnavailable, self.to_string())
    }
}

/// The results of non-blocking calls, keyed by call id.
pub(crate) trait ResultStore: Send + Sync + 'static {
    /// Registers a submitted call, to be kept for `keep` after it finishes.
    /// `New` means this server claimed it and must run it.
    fn submit(&self, id: CallId, keep: Duration) -> StoreFuture<'_, Submitted>;

    /// Records the outcome of a call this server ran. False when the id was
    /// released meanwhile (the result is dropped).
    fn complete(&self, id: CallId, result: Result<Value, RemoteError>) -> StoreFuture<'_, bool>;

    /// The state of `id`; a finished result stays until released.
    fn get(&self, id: CallId) -> StoreFuture<'_, Lookup>;

    /// Forgets `id`; true if it was known.
    fn release(&self, id: CallId) -> StoreFuture<'_, bool>;

    /// Renews the lease of a call this server is running. Only called when
    /// [`ResultStore::lease`] is `Some`.
    fn renew(&self, id: CallId) -> StoreFuture<'_, ()>;

    /// How long a running call's lease lasts without renewal; `None` for a
    /// store that lives and dies with this server (no lease needed).
    fn lease(&self) -> Option<Duration>;

    /// How often a waiting `Fetch` looks again: `Some` for a shared store,
    /// where another server may finish the call without waking this one.
    fn poll_interval(&self) -> Option<Duration>;

    /// A wake-up a waiting `Fetch` of `id` also waits on: notified when the
    /// call finishes on another server sharing the store. `None` (the
    /// default) for a store that cannot tell; then only `poll_interval`
    /// and this server's own completions wake it.
    fn watch(&self, _id: CallId) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        None
    }

    /// Removes results past their keep-time (a store with its own expiry,
    /// like Redis, does nothing) and returns how many.
    fn purge_expired(&self, now: Instant) -> usize;

    /// How many calls this server keeps (memory) or runs (shared store).
    fn len(&self) -> usize;
}

/// Awaits `work` (a non-blocking call this server runs), renewing its lease
/// every third of the lease time meanwhile. A failed renewal is logged: the
/// call keeps running, and is reported lost if the lease runs out.
pub(crate) async fn run_holding_lease<F: Future>(
    store: &dyn ResultStore,
    id: CallId,
    work: F,
) -> F::Output {
    let Some(lease) = store.lease() else {
        return work.await;
    };
    let every = (lease / 3).max(Duration::from_millis(10));
    tokio::pin!(work);
    let mut ticks = tokio::time::interval_at(Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            out = &mut work => return out,
            _ = ticks.tick() => {
                if let Err(e) = store.renew(id).await {
                    tracing::warn!(error = %e, "cannot renew the lease of a running non-blocking call");
                }
            }
        }
    }
}

/// The store [`ServerConfig::result_store`](crate::ServerConfig::result_store)
/// names: `None` is the in-memory store.
///
/// # Errors
///
/// A URL this build cannot use (bad syntax, an unknown scheme, or `redis://`
/// without the `redis` feature).
pub(crate) fn open(config: &crate::ServerConfig) -> Result<Box<dyn ResultStore>, String> {
    match config.result_store.as_deref() {
        None | Some("") | Some("memory") | Some("memory://") => {
            Ok(Box::new(memory::MemoryStore::new(config.max_kept_results)))
        }
        Some(url) if url.starts_with("redis://") || url.starts_with("rediss://") => {
            open_redis(url, config)
        }
        Some(url) => Err(format!(
            "result_store {url:?}: expected \"memory\" or a redis://host:port/db URL"
        )),
    }
}

#[cfg(feature = "redis")]
fn open_redis(url: &str, config: &crate::ServerConfig) -> Result<Box<dyn ResultStore>, String> {
    let store = redis::RedisStore::new(url, config.result_lease, config.max_kept_results)?;
    Ok(Box::new(store))
}

#[cfg(not(feature = "redis"))]
fn open_redis(url: &str, _: &crate::ServerConfig) -> Result<Box<dyn ResultStore>, String> {
    Err(format!(
        "result_store {url:?}: this build of pyrpc-server has no Redis support (cargo feature \"redis\")"
    ))
}

/// A store that answers every request with the reason it could not be
/// opened: what [`open`] gives way to in `ServerBuilder::build`, which cannot
/// fail (`bind` refuses such a configuration before serving).
pub(crate) struct BrokenStore(pub(crate) String);

impl BrokenStore {
    fn fail<T>(&self) -> StoreFuture<'_, T> {
        let e = StoreError::Unavailable {
            url: String::new(),
            reason: self.0.clone(),
        };
        Box::pin(async move { Err(e) })
    }
}

impl ResultStore for BrokenStore {
    fn submit(&self, _: CallId, _: Duration) -> StoreFuture<'_, Submitted> {
        self.fail()
    }
    fn complete(&self, _: CallId, _: Result<Value, RemoteError>) -> StoreFuture<'_, bool> {
        self.fail()
    }
    fn get(&self, _: CallId) -> StoreFuture<'_, Lookup> {
        self.fail()
    }
    fn release(&self, _: CallId) -> StoreFuture<'_, bool> {
        self.fail()
    }
    fn renew(&self, _: CallId) -> StoreFuture<'_, ()> {
        self.fail()
    }
    fn lease(&self) -> Option<Duration> {
        None
    }
    fn poll_interval(&self) -> Option<Duration> {
        None
    }
    fn purge_expired(&self, _: Instant) -> usize {
        0
    }
    fn len(&self) -> usize {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_the_default_and_unknown_schemes_are_refused() {
        let mut c = crate::ServerConfig::default();
        assert!(open(&c).is_ok());
        c.result_store = Some("memory".into());
        assert!(open(&c).is_ok());
        c.result_store = Some("mongodb://x".into());
        let e = open(&c).err().unwrap_or_default();
        assert!(e.contains("expected"), "{e}");
    }

    #[cfg(feature = "redis")]
    #[test]
    fn a_bad_redis_url_is_refused() {
        let c = crate::ServerConfig {
            result_store: Some("redis://[::1".into()),
            ..crate::ServerConfig::default()
        };
        assert!(open(&c).is_err());
    }
}
