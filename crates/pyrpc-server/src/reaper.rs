//! The reaper: a thin async loop that removes non-blocking results past their
//! keep-time, every `request_clean_interval`, until the server closes.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};

use crate::server::Shared;

/// Runs until the server closes (the end of its shutdown grace period).
pub(crate) async fn run(shared: Arc<Shared>) {
    let period = shared
        .config
        .request_clean_interval
        .max(Duration::from_millis(1));
    let mut ticks = tokio::time::interval_at(Instant::now() + period, period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shared.close.cancelled() => break,
        }
        let (reaped, kept) = {
            let mut store = shared.store();
            (store.purge_expired(Instant::now()), store.len())
        };
        if reaped > 0 {
            tracing::debug!(reaped, kept, "reaped expired non-blocking results");
        }
    }
    tracing::debug!("reaper stopped");
}
