//! Wake-ups for fetches waiting on calls that another server finishes.
//!
//! Every completion is published on [`DONE_CHANNEL`] with the call's key as
//! the message (in the same script that stores the result). Each store keeps
//! one subscriber connection, opened when a fetch first waits, and wakes the
//! fetches waiting on that key. While the subscriber is down, waiting
//! fetches fall back to reading the store every 20 ms; while it is up, only
//! every half lease (to see a call whose server died: its lease runs out
//! without any message).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::Notify;

/// The channel completions are published on.
pub(super) const DONE_CHANNEL: &str = "pyrpc:nb:done";

/// Above this many entries, dead ones are swept on the next watch.
const SWEEP_ABOVE: usize = 1024;
/// The pause before subscribing again after the subscriber failed.
const RESUBSCRIBE_PAUSE: Duration = Duration::from_millis(200);

/// The fetches waiting on keys, and the subscriber's state.
pub(super) struct Watchers {
    /// Key → the wake-up its waiting fetches hold (gone when they are).
    waiting: Mutex<HashMap<Vec<u8>, Weak<Notify>>>,
    /// The subscriber receives completions now.
    subscribed: AtomicBool,
    /// The subscriber task was started.
    started: AtomicBool,
}

impl Watchers {
    pub(super) fn new() -> Arc<Watchers> {
        Arc::new(Watchers {
            waiting: Mutex::new(HashMap::new()),
            subscribed: AtomicBool::new(false),
            started: AtomicBool::new(false),
        })
    }

    /// True while completions arrive by message.
    pub(super) fn subscribed(&self) -> bool {
        self.subscribed.load(Ordering::Acquire)
    }

    /// The wake-up of `key`, starting the subscriber (on the current tokio
    /// runtime) on first use.
    pub(super) fn watch(self: &Arc<Self>, key: &str, client: &redis::Client) -> Arc<Notify> {
        if !self.started.swap(true, Ordering::AcqRel) {
            tokio::spawn(listen(Arc::downgrade(self), client.clone()));
        }
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        if waiting.len() > SWEEP_ABOVE {
            waiting.retain(|_, w| w.strong_count() > 0);
        }
        let slot = waiting.entry(key.as_bytes().to_vec()).or_default();
        if let Some(n) = slot.upgrade() {
            return n;
        }
        let n = Arc::new(Notify::new());
        *slot = Arc::downgrade(&n);
        n
    }

    /// Wakes every waiting fetch.
    fn wake_all(&self) {
        let waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        for n in waiting.values().filter_map(Weak::upgrade) {
            n.notify_waiters();
        }
    }

    /// Wakes the fetches waiting on `key`.
    fn wake(&self, key: &[u8]) {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(w) = waiting.remove(key) {
            if let Some(n) = w.upgrade() {
                n.notify_waiters();
                // Still waited on (a fetch re-reads, then may wait again).
                waiting.insert(key.to_vec(), w);
            }
        }
    }
}

/// The subscriber: receives completions until the store is dropped,
/// subscribing again after any failure.
async fn listen(watchers: Weak<Watchers>, client: redis::Client) {
    loop {
        if watchers.strong_count() == 0 {
            return;
        }
        let connected =
            tokio::time::timeout(super::CONNECT_TIMEOUT, client.get_async_pubsub()).await;
        let mut pubsub = match connected {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "result store: cannot subscribe to completions");
                tokio::time::sleep(RESUBSCRIBE_PAUSE).await;
                continue;
            }
            Err(_) => {
                tokio::time::sleep(RESUBSCRIBE_PAUSE).await;
                continue;
            }
        };
        if let Err(e) = pubsub.subscribe(DONE_CHANNEL).await {
            tracing::debug!(error = %e, "result store: cannot subscribe to completions");
            tokio::time::sleep(RESUBSCRIBE_PAUSE).await;
            continue;
        }
        let Some(w) = watchers.upgrade() else { return };
        w.subscribed.store(true, Ordering::Release);
        // A call may have finished before the subscription took: every
        // waiting fetch reads the store once more.
        w.wake_all();
        drop(w);
        let mut messages = pubsub.into_on_message();
        loop {
            tokio::select! {
                msg = messages.next() => {
                    let Some(msg) = msg else { break };
                    let Some(w) = watchers.upgrade() else { return };
                    w.wake(msg.get_payload_bytes());
                }
                // Notice a dropped store even when nothing is published.
                () = tokio::time::sleep(Duration::from_secs(1)) => {
                    if watchers.strong_count() == 0 {
                        return;
                    }
                }
            }
        }
        if let Some(w) = watchers.upgrade() {
            w.subscribed.store(false, Ordering::Release);
        }
        tracing::debug!("result store: the completions subscription ended; subscribing again");
        tokio::time::sleep(RESUBSCRIBE_PAUSE).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wake_reaches_the_waiters_of_its_key_only() {
        let w = Watchers::new();
        // Not started: no subscriber is spawned for this unit test.
        w.started.store(true, Ordering::Relaxed);
        let client = redis::Client::open("redis://127.0.0.1:1/0").unwrap();
        let a = w.watch("pyrpc:nb:aa", &client);
        let b = w.watch("pyrpc:nb:bb", &client);
        assert!(Arc::ptr_eq(&a, &w.watch("pyrpc:nb:aa", &client)));
        let mut fa = Box::pin(a.notified());
        fa.as_mut().enable();
        let mut fb = Box::pin(b.notified());
        fb.as_mut().enable();
        w.wake(b"pyrpc:nb:aa");
        assert!(futures::poll!(fa.as_mut()).is_ready());
        assert!(futures::poll!(fb.as_mut()).is_pending());
        drop((fa, fb));
        drop((a, b));
        w.wake(b"pyrpc:nb:aa");
        assert!(w
            .waiting
            .lock()
            .unwrap()
            .get(b"pyrpc:nb:aa".as_slice())
            .is_none());
    }
}
