//! The reaper: a thin async loop that removes non-blocking results past their
//! keep-time, every `request_clean_interval`, until the server closes. Each
//! round it also emits the server's statistics as a `debug` event with target
//! `pyrpc_server::stats` (see it with `RUST_LOG=pyrpc_server::stats=debug`).

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
        let store = shared.store();
        let (reaped, kept) = (store.purge_expired(Instant::now()), store.len());
        if reaped > 0 {
            tracing::debug!(reaped, kept, "reaped expired non-blocking results");
        }
        let s = shared.stats_snapshot();
        tracing::debug!(
            target: "pyrpc_server::stats",
            calls = s.calls,
            errors = s.errors,
            in_flight = s.in_flight,
            kept_results = s.kept_results,
            connections = s.connections,
            p50_us = s.latency.p50.as_micros() as u64,
            p90_us = s.latency.p90.as_micros() as u64,
            p99_us = s.latency.p99.as_micros() as u64,
            max_us = s.latency.max.as_micros() as u64,
            "server stats"
        );
    }
    tracing::debug!("reaper stopped");
}
