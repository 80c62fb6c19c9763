//! The Redis result store (cargo feature `redis`): non-blocking results
//! shared by every server that points at the same Redis database.
//!
//! # Keys
//!
//! For a call id `<hex>` (32 hex digits):
//!
//! ```text
//! pyrpc:nb:<hex>        "R:<keep_ms>"         running; expires lease + keep after the last renewal
//!                       "D" + Response bytes  done (the protobuf `Response` with its value or
//!                                             error); expires keep after the call finished
//! pyrpc:nb:<hex>:lease  <server id>           exists while the running server renews it
//! ```
//!
//! * `Submit` claims the id with `SET NX` (in one script with the lease), so
//!   of all the servers sharing the store exactly one runs it; the others see
//!   the key and start nothing.
//! * `Fetch` reads both keys in one transaction: a running entry without its
//!   lease is **lost** (its server died or lost Redis), reported as
//!   `CALL_LOST` until the entry expires `keep` later.
//! * `Release` deletes both keys. Keep-times are Redis expiries; there is
//!   nothing to reap.
//! * Completing a call also publishes its key on `pyrpc:nb:done`; a fetch
//!   waiting on another server wakes on that message (`redis/watch.rs`)
//!   instead of reading the store again and again.
//!
//! Connections: one multiplexed connection, made on first use and made again
//! after any error, with short connect and response timeouts, so an
//! unreachable Redis fails non-blocking requests quickly with
//! `STORE_UNAVAILABLE` and never holds up blocking calls.

mod watch;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pyrpc_proto::wire::{self, response};
use pyrpc_proto::{RemoteError, Value};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Script};
use tokio::time::Instant;

use super::{ResultStore, StoreError, StoreFuture};
use crate::results::{CallId, Lookup, Submitted, MAX_KEEP};

/// How long connecting to Redis may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one Redis command may take.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a waiting `Fetch` reads the store again while completions do
/// not arrive by message (the subscriber is down).
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Claims the id (KEYS[1]) and sets its lease (KEYS[2]).
/// ARGV: entry, entry ttl ms, server id, lease ms.
const SUBMIT: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
  return 1
end
return 0";

/// Replaces a running entry with its result, kept for the entry's keep-time;
/// drops the lease; publishes the key on the completions channel.
/// ARGV: the done entry, the channel.
const COMPLETE: &str = r"
local cur = redis.call('GET', KEYS[1])
redis.call('DEL', KEYS[2])
if not cur or string.sub(cur, 1, 1) ~= 'R' then return 0 end
local keep = tonumber(string.sub(cur, 3))
redis.call('SET', KEYS[1], ARGV[1], 'PX', keep)
redis.call('PUBLISH', ARGV[2], KEYS[1])
return 1";

/// Extends a running entry and its lease. ARGV: lease ms, server id.
const RENEW: &str = r"
local cur = redis.call('GET', KEYS[1])
if not cur or string.sub(cur, 1, 1) ~= 'R' then return 0 end
local keep = tonumber(string.sub(cur, 3))
redis.call('PEXPIRE', KEYS[1], keep + tonumber(ARGV[1]))
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[1])
return 1";

/// The Redis store.
pub(crate) struct RedisStore {
    client: redis::Client,
    /// The URL without its password, for error messages.
    shown_url: String,
    /// The connection, made on first use and dropped after an error.
    /// A tokio mutex: connecting awaits while holding it.
    conn: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    /// How long a running call's lease lasts without renewal.
    lease: Duration,
    /// Written into the lease key: which server runs the call (for people
    /// looking at Redis).
    server_id: String,
    /// Calls this server runs now, bounded by `max_running`.
    running: AtomicUsize,
    max_running: usize,
    submit: Script,
    complete: Script,
    renew: Script,
    /// Fetches waiting for calls that another server may finish.
    watchers: Arc<watch::Watchers>,
}

impl RedisStore {
    /// A store on the Redis at `url`; nothing is connected yet.
    ///
    /// # Errors
    ///
    /// `url` is not a Redis URL.
    pub(crate) fn new(url: &str, lease: Duration, max_running: usize) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("result_store: {e}"))?;
        let shown_url = without_password(url);
        Ok(RedisStore {
            client,
            shown_url,
            conn: tokio::sync::Mutex::new(None),
            lease: lease.max(Duration::from_millis(30)),
            server_id: format!("pid {} on {}", std::process::id(), hostname()),
            running: AtomicUsize::new(0),
            max_running,
            submit: Script::new(SUBMIT),
            complete: Script::new(COMPLETE),
            renew: Script::new(RENEW),
            watchers: watch::Watchers::new(),
        })
    }

    fn unavailable(&self, reason: impl std::fmt::Display) -> StoreError {
        StoreError::Unavailable {
            url: self.shown_url.clone(),
            reason: reason.to_string(),
        }
    }

    /// The connection, made if there is none.
    async fn conn(&self) -> Result<MultiplexedConnection, StoreError> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(CONNECT_TIMEOUT)
            .set_response_timeout(RESPONSE_TIMEOUT);
        let made = tokio::time::timeout(
            CONNECT_TIMEOUT + Duration::from_millis(500),
            self.client
                .get_multiplexed_async_connection_with_config(&config),
        )
        .await
        .map_err(|_| self.unavailable("connect timed out"))?
        .map_err(|e| self.unavailable(e))?;
        tracing::debug!(url = %self.shown_url, "connected to the result store");
        *slot = Some(made.clone());
        Ok(made)
    }

    /// Runs `op` on the connection; on failure drops the connection so the
    /// next request connects again.
    async fn with_conn<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let conn = self.conn().await?;
        match tokio::time::timeout(RESPONSE_TIMEOUT + Duration::from_millis(500), op(conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                *self.conn.lock().await = None;
                Err(self.unavailable(e))
            }
            Err(_) => {
                *self.conn.lock().await = None;
                Err(self.unavailable("no answer in time"))
            }
        }
    }
}

impl ResultStore for RedisStore {
    fn submit(&self, id: CallId, keep: Duration) -> StoreFuture<'_, Submitted> {
        Box::pin(async move {
            if self.running.load(Ordering::Relaxed) >= self.max_running {
                return Ok(Submitted::Full);
            }
            let keep_ms = millis(keep.min(MAX_KEEP));
            let lease_ms = millis(self.lease);
            let (key, lease_key) = keys(&id);
            let claimed: i64 = self
                .with_conn(|mut c| async move {
                    self.submit
                        .key(&key)
                        .key(&lease_key)
                        .arg(format!("R:{keep_ms}"))
                        .arg(keep_ms + lease_ms)
                        .arg(&self.server_id)
                        .arg(lease_ms)
                        .invoke_async(&mut c)
                        .await
                })
                .await?;
            if claimed == 1 {
                self.running.fetch_add(1, Ordering::Relaxed);
                Ok(Submitted::New)
            } else {
                Ok(Submitted::Known)
            }
        })
    }

    fn complete(&self, id: CallId, result: Result<Value, RemoteError>) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            self.running.fetch_sub(1, Ordering::Relaxed);
            let entry = done_entry(result);
            let (key, lease_key) = keys(&id);
            let stored: i64 = self
                .with_conn(|mut c| async move {
                    self.complete
                        .key(&key)
                        .key(&lease_key)
                        .arg(entry)
                        .arg(watch::DONE_CHANNEL)
                        .invoke_async(&mut c)
                        .await
                })
                .await?;
            Ok(stored == 1)
        })
    }

    fn get(&self, id: CallId) -> StoreFuture<'_, Lookup> {
        Box::pin(async move {
            let (key, lease_key) = keys(&id);
            let (entry, leased): (Option<Vec<u8>>, bool) = self
                .with_conn(|mut c| async move {
                    redis::pipe()
                        .atomic()
                        .get(&key)
                        .exists(&lease_key)
                        .query_async(&mut c)
                        .await
                })
                .await?;
            match entry.as_deref() {
                None => Ok(Lookup::Unknown),
                Some([b'R', ..]) if leased => Ok(Lookup::Pending),
                Some([b'R', ..]) => Ok(Lookup::Lost),
                Some([b'D', bytes @ ..]) => Ok(Lookup::Done(read_done(bytes)?)),
                Some(_) => Err(StoreError::Corrupt(
                    "an entry starts with neither R nor D".into(),
                )),
            }
        })
    }

    fn release(&self, id: CallId) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            let (key, lease_key) = keys(&id);
            let removed: i64 = self
                .with_conn(|mut c| async move {
                    redis::cmd("DEL")
                        .arg(&key)
                        .arg(&lease_key)
                        .query_async(&mut c)
                        .await
                })
                .await?;
            Ok(removed > 0)
        })
    }

    fn renew(&self, id: CallId) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let (key, lease_key) = keys(&id);
            let lease_ms = millis(self.lease);
            let _: i64 = self
                .with_conn(|mut c| async move {
                    self.renew
                        .key(&key)
                        .key(&lease_key)
                        .arg(lease_ms)
                        .arg(&self.server_id)
                        .invoke_async(&mut c)
                        .await
                })
                .await?;
            Ok(())
        })
    }

    fn lease(&self) -> Option<Duration> {
        Some(self.lease)
    }

    fn poll_interval(&self) -> Option<Duration> {
        if self.watchers.subscribed() {
            // Completions wake the fetch; look only for a lost lease.
            Some((self.lease / 2).max(POLL_INTERVAL))
        } else {
            Some(POLL_INTERVAL)
        }
    }

    fn watch(&self, id: CallId) -> Option<Arc<tokio::sync::Notify>> {
        Some(self.watchers.watch(&keys(&id).0, &self.client))
    }

    fn purge_expired(&self, _: Instant) -> usize {
        0
    }

    fn len(&self) -> usize {
        self.running.load(Ordering::Relaxed)
    }
}

/// The entry's key and its lease's key.
fn keys(id: &CallId) -> (String, String) {
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    (format!("pyrpc:nb:{hex}"), format!("pyrpc:nb:{hex}:lease"))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// "D" followed by the protobuf `Response` carrying the outcome.
fn done_entry(result: Result<Value, RemoteError>) -> Vec<u8> {
    let kind = match result {
        Ok(v) => response::Kind::Value(v.into()),
        Err(e) => response::Kind::Error(e.into()),
    };
    let resp = wire::Response {
        id: 0,
        kind: Some(kind),
    };
    let mut out = Vec::with_capacity(1 + prost::Message::encoded_len(&resp));
    out.push(b'D');
    prost::Message::encode(&resp, &mut out).unwrap_or_default();
    out
}

fn read_done(bytes: &[u8]) -> Result<Result<Value, RemoteError>, StoreError> {
    let resp: wire::Response = prost::Message::decode(bytes)
        .map_err(|e| StoreError::Corrupt(format!("cannot decode a stored result: {e}")))?;
    match resp.kind {
        Some(response::Kind::Value(v)) => Value::try_from(v)
            .map(Ok)
            .map_err(|e| StoreError::Corrupt(format!("stored value: {e}"))),
        Some(response::Kind::Error(e)) => Ok(Err(RemoteError::from(e))),
        _ => Err(StoreError::Corrupt(
            "stored result has no value or error".into(),
        )),
    }
}

/// `url` with any password replaced by `***`.
fn without_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            without_password("redis://:secret@127.0.0.1:6379/0"),
            "redis://:***@127.0.0.1:6379/0"
        );
        assert_eq!(
            without_password("redis://127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
    }

    #[test]
    fn done_entries_round_trip() {
        let ok = done_entry(Ok(Value::list([Value::from(1), Value::from("x")])));
        assert_eq!(ok[0], b'D');
        assert_eq!(
            read_done(&ok[1..]).ok(),
            Some(Ok(Value::list([Value::from(1), Value::from("x")])))
        );
        let e = RemoteError::exception("KeyError", "builtins", vec![Value::from("k")]);
        let err = done_entry(Err(e.clone()));
        assert_eq!(read_done(&err[1..]).ok(), Some(Err(e)));
        assert!(read_done(b"\xff\xff").is_err());
    }
}
