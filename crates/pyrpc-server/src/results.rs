//! [`ResultTable`]: the in-memory results of non-blocking calls, kept until
//! released or past their keep-time (the core of `store::memory`).
//!
//! The store is synchronous and never reads the clock: every method that needs
//! the time takes `now` as an argument, so it is tested on a virtual clock with
//! no runtime (as quinn-proto does). The async parts (waiting for a result,
//! the reaper) live in `dispatch.rs` and `reaper.rs`.

use std::collections::HashMap;
use std::time::Duration;

use pyrpc_proto::{RemoteError, Value};
use tokio::time::Instant;

/// The longest keep-time honoured; longer ones are cut to it (and keep-until
/// stays far from the end of `Instant`'s range).
pub(crate) const MAX_KEEP: Duration = Duration::from_secs(365 * 24 * 3600);

/// A non-blocking call's id: 16 bytes chosen by the client.
pub(crate) type CallId = [u8; 16];

/// What became of a `Submit`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Submitted {
    /// A new call id: the caller must start the call.
    New,
    /// The id is already known (running or finished): start nothing.
    Known,
    /// The store holds its maximum number of entries.
    Full,
}

/// The state of a call id.
#[derive(Debug, PartialEq)]
pub(crate) enum Lookup {
    /// Submitted and still running.
    Pending,
    /// Finished with this outcome (a copy; the entry stays until released).
    Done(Result<Value, RemoteError>),
    /// Never submitted, released, or reaped.
    Unknown,
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    /// Submitted, but the server running it stopped renewing its lease (it
    /// died): it will never finish. Only a shared store reports this.
    Lost,
}

#[derive(Debug)]
enum Entry {
    /// Running; `keep` applies from the moment it finishes.
    Running { keep: Duration },
    /// Finished; removed by the reaper once `now > keep_until`.
    Done {
        result: Result<Value, RemoteError>,
        keep_until: Instant,
    },
}

/// The results of non-blocking calls, keyed by call id.
#[derive(Debug)]
pub(crate) struct ResultTable {
    entries: HashMap<CallId, Entry>,
    max_entries: usize,
}

impl ResultTable {
    /// An empty store holding at most `max_entries` calls, running or done.
    pub(crate) fn new(max_entries: usize) -> Self {
        ResultTable {
            entries: HashMap::new(),
            max_entries,
        }
    }

    /// Registers a submitted call, to be kept for `keep` after it finishes.
    pub(crate) fn submit(&mut self, id: CallId, keep: Duration) -> Submitted {
        if self.entries.contains_key(&id) {
            return Submitted::Known;
        }
        if self.entries.len() >= self.max_entries {
            return Submitted::Full;
        }
        let keep = keep.min(MAX_KEEP);
        self.entries.insert(id, Entry::Running { keep });
        Submitted::New
    }

    /// Records the outcome of a running call that finished at `now`.
    ///
    /// Returns false (and drops the result) when the id was released while
    /// the call ran: nobody will fetch it.
    pub(crate) fn complete(
        &mut self,
        id: CallId,
        result: Result<Value, RemoteError>,
        now: Instant,
    ) -> bool {
        match self.entries.get_mut(&id) {
            Some(entry) => match *entry {
                Entry::Running { keep } => {
                    *entry = Entry::Done {
                        result,
                        keep_until: now + keep,
                    };
                    true
                }
                Entry::Done { .. } => false,
            },
            None => false,
        }
    }

    /// The state of `id`; a finished result is copied and stays in the store,
    /// so a fetch whose reply was lost can be repeated.
    pub(crate) fn get(&self, id: &CallId) -> Lookup {
        match self.entries.get(id) {
            None => Lookup::Unknown,
            Some(Entry::Running { .. }) => Lookup::Pending,
            Some(Entry::Done { result, .. }) => Lookup::Done(result.clone()),
        }
    }

    /// Forgets `id`; true if it was known. A running call keeps running, but
    /// its result is dropped when it finishes.
    pub(crate) fn release(&mut self, id: &CallId) -> bool {
        self.entries.remove(id).is_some()
    }

    /// Removes the finished entries whose keep-time passed before `now`
    /// (never running ones) and returns how many were removed.
    pub(crate) fn purge_expired(&mut self, now: Instant) -> usize {
        let before = self.entries.len();
        self.entries.retain(|_, e| match e {
            Entry::Running { .. } => true,
            Entry::Done { keep_until, .. } => *keep_until >= now,
        });
        before - self.entries.len()
    }

    /// How many calls are kept, running or finished.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEEP: Duration = Duration::from_secs(10);

    fn id(n: u8) -> CallId {
        [n; 16]
    }

    #[test]
    fn submit_is_idempotent() {
        let mut s = ResultTable::new(10);
        assert_eq!(s.submit(id(1), KEEP), Submitted::New);
        assert_eq!(s.submit(id(1), KEEP), Submitted::Known);
        assert_eq!(s.len(), 1);
        // still known after it finished
        assert!(s.complete(id(1), Ok(Value::from(1)), Instant::now()));
        assert_eq!(s.submit(id(1), KEEP), Submitted::Known);
    }

    #[test]
    fn full_store_refuses_new_ids_but_not_known_ones() {
        let mut s = ResultTable::new(2);
        assert_eq!(s.submit(id(1), KEEP), Submitted::New);
        assert_eq!(s.submit(id(2), KEEP), Submitted::New);
        assert_eq!(s.submit(id(3), KEEP), Submitted::Full);
        assert_eq!(s.submit(id(1), KEEP), Submitted::Known);
        assert!(s.release(&id(1)));
        assert_eq!(s.submit(id(3), KEEP), Submitted::New);
    }

    #[test]
    fn lifecycle_pending_done_released() {
        let now = Instant::now();
        let mut s = ResultTable::new(10);
        assert_eq!(s.get(&id(1)), Lookup::Unknown);
        s.submit(id(1), KEEP);
        assert_eq!(s.get(&id(1)), Lookup::Pending);
        assert!(s.complete(id(1), Ok(Value::from("x")), now));
        assert_eq!(s.get(&id(1)), Lookup::Done(Ok(Value::from("x"))));
        // fetch does not consume
        assert_eq!(s.get(&id(1)), Lookup::Done(Ok(Value::from("x"))));
        assert!(s.release(&id(1)));
        assert_eq!(s.get(&id(1)), Lookup::Unknown);
        assert!(!s.release(&id(1)));
    }

    #[test]
    fn errors_are_kept_like_values() {
        let mut s = ResultTable::new(10);
        s.submit(id(1), KEEP);
        let e = RemoteError::exception("KeyError", "builtins", vec![Value::from("k")]);
        s.complete(id(1), Err(e.clone()), Instant::now());
        assert_eq!(s.get(&id(1)), Lookup::Done(Err(e)));
    }

    #[test]
    fn result_of_a_released_running_call_is_dropped() {
        let mut s = ResultTable::new(10);
        s.submit(id(1), KEEP);
        assert!(s.release(&id(1)));
        assert!(!s.complete(id(1), Ok(Value::None), Instant::now()));
        assert_eq!(s.get(&id(1)), Lookup::Unknown);
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn complete_twice_keeps_the_first_result() {
        let now = Instant::now();
        let mut s = ResultTable::new(10);
        s.submit(id(1), KEEP);
        assert!(s.complete(id(1), Ok(Value::from(1)), now));
        assert!(!s.complete(id(1), Ok(Value::from(2)), now));
        assert_eq!(s.get(&id(1)), Lookup::Done(Ok(Value::from(1))));
    }

    #[test]
    fn purge_removes_only_finished_entries_past_keep_time() {
        let t0 = Instant::now();
        let mut s = ResultTable::new(10);
        s.submit(id(1), Duration::from_secs(5)); // finishes at t0, kept until t0+5
        s.submit(id(2), Duration::from_secs(20)); // finishes at t0, kept until t0+20
        s.submit(id(3), Duration::from_secs(1)); // keeps running
        s.complete(id(1), Ok(Value::None), t0);
        s.complete(id(2), Ok(Value::None), t0);

        // exactly at keep-until: still kept
        assert_eq!(s.purge_expired(t0 + Duration::from_secs(5)), 0);
        assert_eq!(s.purge_expired(t0 + Duration::from_secs(6)), 1);
        assert_eq!(s.get(&id(1)), Lookup::Unknown);
        assert_eq!(s.get(&id(2)), Lookup::Done(Ok(Value::None)));

        // a running call is never reaped, however late
        assert_eq!(s.purge_expired(t0 + Duration::from_secs(3600)), 1);
        assert_eq!(s.get(&id(3)), Lookup::Pending);
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn huge_keep_time_is_capped() {
        let t0 = Instant::now();
        let mut s = ResultTable::new(10);
        s.submit(id(1), Duration::from_millis(u64::MAX));
        s.complete(id(1), Ok(Value::None), t0);
        assert_eq!(s.purge_expired(t0 + MAX_KEEP), 0);
        assert_eq!(s.purge_expired(t0 + MAX_KEEP + Duration::from_secs(1)), 1);
    }

    #[test]
    fn keep_time_counts_from_the_finish_not_the_submit() {
        let t0 = Instant::now();
        let mut s = ResultTable::new(10);
        s.submit(id(1), Duration::from_secs(5));
        // ran for 100 s, finished at t0+100
        s.complete(id(1), Ok(Value::None), t0 + Duration::from_secs(100));
        assert_eq!(s.purge_expired(t0 + Duration::from_secs(104)), 0);
        assert_eq!(s.purge_expired(t0 + Duration::from_secs(106)), 1);
    }
}
