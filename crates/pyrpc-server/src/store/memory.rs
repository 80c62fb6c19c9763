//! The default result store: a [`ResultTable`] behind a mutex, private to
//! this server process. Results are lost with the process; the reaper purges
//! them past their keep-time.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use pyrpc_proto::{RemoteError, Value};
use tokio::time::Instant;

use super::{ResultStore, StoreFuture};
use crate::results::{CallId, Lookup, ResultTable, Submitted};

/// The in-memory store. A std mutex, not tokio's: it is held for a few map
/// operations and never across an `.await`.
pub(crate) struct MemoryStore {
    table: Mutex<ResultTable>,
}

impl MemoryStore {
    /// An empty store holding at most `max_entries` calls.
    pub(crate) fn new(max_entries: usize) -> Self {
        MemoryStore {
            table: Mutex::new(ResultTable::new(max_entries)),
        }
    }

    /// The table, locked. A poisoned lock is taken over: the table's methods
    /// leave it consistent even if a caller panicked.
    fn table(&self) -> MutexGuard<'_, ResultTable> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ResultStore for MemoryStore {
    fn submit(&self, id: CallId, keep: Duration) -> StoreFuture<'_, Submitted> {
        let r = self.table().submit(id, keep);
        Box::pin(async move { Ok(r) })
    }

    fn complete(&self, id: CallId, result: Result<Value, RemoteError>) -> StoreFuture<'_, bool> {
        let r = self.table().complete(id, result, Instant::now());
        Box::pin(async move { Ok(r) })
    }

    fn get(&self, id: CallId) -> StoreFuture<'_, Lookup> {
        let r = self.table().get(&id);
        Box::pin(async move { Ok(r) })
    }

    fn release(&self, id: CallId) -> StoreFuture<'_, bool> {
        let r = self.table().release(&id);
        Box::pin(async move { Ok(r) })
    }

    fn renew(&self, _: CallId) -> StoreFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }

    fn lease(&self) -> Option<Duration> {
        None
    }

    fn poll_interval(&self) -> Option<Duration> {
        None
    }

    fn purge_expired(&self, now: Instant) -> usize {
        self.table().purge_expired(now)
    }

    fn len(&self) -> usize {
        self.table().len()
    }
}
