//! The re-arm watcher: one thread per process that arms the read side of a
//! connection whose call, read by a lingering thread, runs longer than a
//! moment (decision 0077).
//!
//! A call read by the thread that runs it is left *unarmed* (nothing
//! watches its socket), which saves the two `epoll_ctl`s and the
//! registration per call of arming it at once. The watcher looks at the
//! connections with such calls every [`TICK`]; a call that is still the
//! same unarmed call at two looks in a row (it has run for at least one
//! `TICK`, at most two) gets armed, so that its `Cancel`, the peer's close
//! and the idle timer are seen while it runs. The watcher sleeps for good
//! while no connection has had an unarmed call for [`DELIST_AFTER`] looks;
//! a connection's first unarmed call after that wakes it (one condvar
//! notify, not one per call).

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use super::Linger;

/// How often the watcher looks while it has connections to watch.
pub(super) const TICK: Duration = Duration::from_millis(2);

/// Looks without an unarmed call after which a connection leaves the list.
pub(super) const DELIST_AFTER: u32 = 100;

struct Watcher {
    /// The process the watcher's thread runs in (a forked child has none).
    pid: u32,
    list: Mutex<Vec<Weak<Linger>>>,
    /// Notified when the list stops being empty.
    wake: Condvar,
}

static WATCHER: Mutex<Option<Arc<Watcher>>> = Mutex::new(None);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Puts `linger` on the watcher's list (starting the watcher's thread in
/// this process if needed). False when the thread could not start.
pub(super) fn watch(linger: Weak<Linger>) -> bool {
    let Some(watcher) = watcher() else {
        return false;
    };
    let mut list = lock(&watcher.list);
    let was_empty = list.is_empty();
    list.push(linger);
    drop(list);
    if was_empty {
        watcher.wake.notify_one();
    }
    true
}

/// This process's watcher, started on first use.
fn watcher() -> Option<Arc<Watcher>> {
    let pid = std::process::id();
    let mut slot = lock(&WATCHER);
    if let Some(w) = slot.as_ref().filter(|w| w.pid == pid) {
        return Some(Arc::clone(w));
    }
    let w = Arc::new(Watcher {
        pid,
        list: Mutex::new(Vec::new()),
        wake: Condvar::new(),
    });
    let run = Arc::clone(&w);
    let spawned = std::thread::Builder::new()
        .name("pyrpc-rearm".into())
        .spawn(move || run.run());
    match spawned {
        Ok(_) => {
            *slot = Some(Arc::clone(&w));
            Some(w)
        }
        Err(e) => {
            tracing::warn!(error = %e, "the re-arm watcher's thread did not start");
            None
        }
    }
}

impl Watcher {
    fn run(&self) {
        let mut list = lock(&self.list);
        loop {
            while list.is_empty() {
                list = self.wake.wait(list).unwrap_or_else(PoisonError::into_inner);
            }
            drop(list);
            std::thread::sleep(TICK);
            list = lock(&self.list);
            // A look that panics (a reader polled after its runtime shut
            // down) drops that connection from the list, not the watcher.
            list.retain(|l| {
                l.upgrade().is_some_and(|l| {
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| l.look()))
                        .unwrap_or(false)
                })
            });
        }
    }
}
