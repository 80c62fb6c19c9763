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
use std::sync::{Arc, Mutex, PoisonError};

use tokio_util::sync::CancellationToken;

/// The cancellable calls of one connection.
#[derive(Default)]
pub(crate) struct RunningCalls {
    /// Request id to (registration number, token). Two outstanding requests
    /// with the same id (a client's mistake) both run; a `Cancel` of that id
    /// reaches the later one.
    map: Mutex<HashMap<u64, (u64, CancellationToken)>>,
    /// Numbers registrations, so that an older one never removes a newer
    /// entry of the same id.
    next: AtomicU64,
}

impl RunningCalls {
    /// Registers the call with request `id`; its token is cancelled by
    /// [`RunningCalls::cancel`] or when `parent` is.
    pub(crate) fn register(self: &Arc<Self>, id: u64, parent: &CancellationToken) -> Registration {
        let token = parent.child_token();
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, (seq, token.clone()));
        Registration {
            calls: Arc::clone(self),
            id,
            seq,
            token,
        }
    }

    /// Cancels the running call with request `id`; false when none runs.
    pub(crate) fn cancel(&self, id: u64) -> bool {
        match self.lock().get(&id) {
            Some((_, token)) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (u64, CancellationToken)>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A registered call; dropping it forgets the call.
pub(crate) struct Registration {
    calls: Arc<RunningCalls>,
    id: u64,
    seq: u64,
    token: CancellationToken,
}

impl Registration {
    /// Cancelled when the caller cancels the call or the connection closes.
    pub(crate) fn token(&self) -> &CancellationToken {
        &self.token
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut map = self.calls.lock();
        if map.get(&self.id).is_some_and(|(seq, _)| *seq == self.seq) {
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
}
