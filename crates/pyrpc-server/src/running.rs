//! The running calls of one connection, by request id, so that a `Cancel`
//! from their caller can stop them.
//!
//! Each spawned call registers a [`CancellationToken`] (a child of the
//! connection's own, so closing the connection cancels it too) and holds the
//! [`Registration`] until its answer is made; dropping the registration takes
//! the entry out. The map is bounded by the connection's in-flight limit: a
//! call only registers while it holds one of the connection's permits.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::dispatch::Direct;

/// One registered call: its registration number, its token, the credit
/// of its streamed reply (none until the client grants some), and, for a
/// call answered directly by its callee, what answers it when cancelled.
type Entry = (u64, CancellationToken, Arc<Semaphore>, Option<Weak<Direct>>);

/// The most streamed replies one connection may have open at once.
pub(crate) const MAX_STREAMS: usize = 256;

/// The cancellable calls of one connection.
pub(crate) struct RunningCalls {
    /// Request id to (registration number, token). Two outstanding requests
    /// with the same id (a client's mistake) both run; a `Cancel` of that id
    /// reaches the later one.
    map: Mutex<HashMap<u64, Entry>>,
    /// Numbers registrations, so that an older one never removes a newer
    /// entry of the same id.
    next: AtomicU64,
    /// One permit per open streamed reply (see [`RunningCalls::open_stream`]).
    streams: Arc<Semaphore>,
}

impl Default for RunningCalls {
    fn default() -> Self {
        RunningCalls {
            map: Mutex::default(),
            next: AtomicU64::new(0),
            streams: Arc::new(Semaphore::new(MAX_STREAMS)),
        }
    }
}

impl RunningCalls {
    /// Registers the call with request `id`; its token is cancelled by
    /// [`RunningCalls::cancel`] or when `parent` is.
    pub(crate) fn register(self: &Arc<Self>, id: u64, parent: &CancellationToken) -> Registration {
        self.register_answered(id, parent, None)
    }

    /// [`RunningCalls::register`] for a call answered directly by its
    /// callee: [`RunningCalls::cancel_direct`] finds `direct`.
    pub(crate) fn register_answered(
        self: &Arc<Self>,
        id: u64,
        parent: &CancellationToken,
        direct: Option<Weak<Direct>>,
    ) -> Registration {
        let token = parent.child_token();
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        let credit = Arc::new(Semaphore::new(0));
        self.lock()
            .insert(id, (seq, token.clone(), Arc::clone(&credit), direct));
        Registration {
            calls: Arc::clone(self),
            id,
            seq,
            token,
            credit,
        }
    }

    /// Room for one more open stream on this connection, held while the
    /// stream is sent; `None` when [`MAX_STREAMS`] are open.
    pub(crate) fn open_stream(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        Arc::clone(&self.streams).try_acquire_owned().ok()
    }

    /// Cancels the running call with request `id`; false when none runs.
    #[cfg(test)]
    pub(crate) fn cancel(&self, id: u64) -> bool {
        self.cancel_direct(id).is_some()
    }

    /// [`RunningCalls::cancel`], which also gives the call's [`Direct`]
    /// answer when it has one (for the canceller to answer the call):
    /// `None` when no call runs under `id`.
    pub(crate) fn cancel_direct(&self, id: u64) -> Option<Option<Arc<Direct>>> {
        let map = self.lock();
        let (_, token, _, direct) = map.get(&id)?;
        token.cancel();
        Some(direct.as_ref().and_then(Weak::upgrade))
    }

    /// Grants the streamed reply of request `id` room for `items` more
    /// items (a `Credit`); false when no call runs under `id`.
    pub(crate) fn credit(&self, id: u64, items: u32) -> bool {
        match self.lock().get(&id) {
            Some((_, _, credit, _)) => {
                crate::stream::grant(credit, items);
                true
            }
            None => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Entry>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A registered call; dropping it forgets the call.
pub(crate) struct Registration {
    calls: Arc<RunningCalls>,
    id: u64,
    seq: u64,
    token: CancellationToken,
    credit: Arc<Semaphore>,
}

impl Registration {
    /// Cancelled when the caller cancels the call or the connection closes.
    pub(crate) fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// The credit of the call's streamed reply.
    pub(crate) fn credit(&self) -> &Arc<Semaphore> {
        &self.credit
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut map = self.calls.lock();
        if map
            .get(&self.id)
            .is_some_and(|(seq, _, _, _)| *seq == self.seq)
        {
            map.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_reaches_the_registered_call_and_only_while_registered() {
        let calls = Arc::new(RunningCalls::default());
        let conn = CancellationToken::new();
        let a = calls.register(7, &conn);
        assert!(!a.token().is_cancelled());
        assert!(!calls.cancel(8), "nothing runs under id 8");
        assert!(calls.cancel(7));
        assert!(a.token().is_cancelled());
        drop(a);
        assert!(!calls.cancel(7), "a finished call is forgotten");
    }

    #[test]
    fn closing_the_connection_cancels_every_call() {
        let calls = Arc::new(RunningCalls::default());
        let conn = CancellationToken::new();
        let (a, b) = (calls.register(1, &conn), calls.register(2, &conn));
        conn.cancel();
        assert!(a.token().is_cancelled() && b.token().is_cancelled());
    }

    #[test]
    fn an_older_registration_of_the_same_id_leaves_the_newer_one() {
        let calls = Arc::new(RunningCalls::default());
        let conn = CancellationToken::new();
        let old = calls.register(3, &conn);
        let new = calls.register(3, &conn);
        drop(old);
        assert!(calls.cancel(3));
        assert!(new.token().is_cancelled());
    }

    #[test]
    fn credit_reaches_the_registered_call() {
        let calls = Arc::new(RunningCalls::default());
        let conn = CancellationToken::new();
        let a = calls.register(4, &conn);
        assert!(calls.credit(4, 3));
        assert!(!calls.credit(5, 3), "nothing runs under id 5");
        assert_eq!(a.credit().available_permits(), 3);
    }
}
