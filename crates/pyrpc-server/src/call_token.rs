//! A call's cancellation, cheap for the calls nobody cancels (issue #11).
//!
//! A registered call used to get a child of its connection's
//! [`CancellationToken`]: making it locks the connection's token and links
//! the child into its tree, and every clone, drop and `is_cancelled` of it
//! locks the child's mutex (five clones and drops a call, then the unlink
//! from the parent). A [`CallToken`] of a call is one allocation whose
//! clones are reference counts; it holds the connection's token, a flag set
//! when the call itself is cancelled, and a child token made only when
//! someone waits for the cancellation ([`CallToken::cancelled`]).
//!
//! The meaning is the child token's: cancelled when the call is
//! ([`CallToken::cancel`]) or its parent is (the connection closes).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio_util::sync::CancellationToken;

/// A call's cancellation: cancelled by [`CallToken::cancel`] or with its
/// parent token. Clones share it.
#[derive(Clone, Debug)]
pub(crate) enum CallToken {
    /// A call without a cancellation of its own (run on the reader's task,
    /// or a non-blocking call): exactly its parent.
    Parent(CancellationToken),
    /// A registered call.
    Call(Arc<Own>),
}

/// The state of a registered call's token.
#[derive(Debug)]
pub(crate) struct Own {
    parent: CancellationToken,
    /// Set once the call itself is cancelled; read without a lock.
    cancelled: AtomicBool,
    /// A child of `parent`, made by the first wait and cancelled with the
    /// call. The lock orders a wait's making of it against `cancel`: one
    /// of them sees the other.
    waiter: Mutex<Option<CancellationToken>>,
}

impl CallToken {
    /// A call's own token, cancelled by [`CallToken::cancel`] or `parent`.
    pub(crate) fn child_of(parent: &CancellationToken) -> Self {
        CallToken::Call(Arc::new(Own {
            parent: parent.clone(),
            cancelled: AtomicBool::new(false),
            waiter: Mutex::new(None),
        }))
    }

    /// True once cancelled, by the call's own cancel or its parent's.
    pub(crate) fn is_cancelled(&self) -> bool {
        match self {
            CallToken::Parent(t) => t.is_cancelled(),
            CallToken::Call(own) => {
                own.cancelled.load(Ordering::Acquire) || own.parent.is_cancelled()
            }
        }
    }

    /// Cancels it (a `Parent` token cancels its parent: only the call's own
    /// tokens are cancelled by the server).
    pub(crate) fn cancel(&self) {
        match self {
            CallToken::Parent(t) => t.cancel(),
            CallToken::Call(own) => {
                let waiter = own.waiter.lock().unwrap_or_else(PoisonError::into_inner);
                own.cancelled.store(true, Ordering::Release);
                if let Some(w) = waiter.as_ref() {
                    w.cancel();
                }
            }
        }
    }

    /// Completes once cancelled.
    pub(crate) async fn cancelled(&self) {
        let waiter = match self {
            CallToken::Parent(t) => t.clone(),
            CallToken::Call(own) => {
                let mut waiter = own.waiter.lock().unwrap_or_else(PoisonError::into_inner);
                if own.cancelled.load(Ordering::Acquire) {
                    return;
                }
                waiter
                    .get_or_insert_with(|| own.parent.child_token())
                    .clone()
            }
        };
        waiter.cancelled().await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    async fn wakes(token: &CallToken) -> bool {
        tokio::time::timeout(Duration::from_secs(5), token.cancelled())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn its_own_cancel_reaches_every_clone_and_wakes_a_waiter() {
        let parent = CancellationToken::new();
        let token = CallToken::child_of(&parent);
        let (clone, waiting) = (token.clone(), token.clone());
        let waiter = tokio::spawn(async move { wakes(&waiting).await });
        tokio::task::yield_now().await;
        assert!(!clone.is_cancelled());
        token.cancel();
        assert!(clone.is_cancelled());
        assert!(waiter.await.expect("the waiter ran"), "the waiter woke");
        assert!(wakes(&clone).await, "a wait after the cancel ends at once");
        assert!(!parent.is_cancelled(), "the parent is left alone");
    }

    #[tokio::test]
    async fn the_parents_cancel_reaches_it_before_and_after_a_wait() {
        let parent = CancellationToken::new();
        let (unwaited, waited) = (CallToken::child_of(&parent), CallToken::child_of(&parent));
        let waiting = waited.clone();
        let waiter = tokio::spawn(async move { wakes(&waiting).await });
        tokio::task::yield_now().await;
        assert!(!unwaited.is_cancelled() && !waited.is_cancelled());
        parent.cancel();
        assert!(unwaited.is_cancelled() && waited.is_cancelled());
        assert!(waiter.await.expect("the waiter ran"), "the waiter woke");
        assert!(wakes(&unwaited).await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancel_racing_a_wait_always_wakes_it() {
        for _ in 0..200 {
            let parent = CancellationToken::new();
            let token = CallToken::child_of(&parent);
            let waiting = token.clone();
            let waiter = tokio::spawn(async move { wakes(&waiting).await });
            let cancelling = token.clone();
            let canceller = std::thread::spawn(move || cancelling.cancel());
            assert!(waiter.await.expect("the waiter ran"));
            canceller.join().expect("the canceller ran");
        }
    }

    #[test]
    fn a_parent_token_is_its_parent() {
        let parent = CancellationToken::new();
        let token = CallToken::Parent(parent.clone());
        assert!(!token.is_cancelled());
        parent.cancel();
        assert!(token.is_cancelled());
    }
}
