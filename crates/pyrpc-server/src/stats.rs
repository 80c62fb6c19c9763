//! [`Stats`]: call counters and a latency histogram, cheap enough for the
//! hot path (a few relaxed atomic adds per call, no lock, no allocation).
//!
//! Latencies go into a log-linear histogram of atomic counters: 8 buckets per
//! power of two of nanoseconds, so every bucket spans at most 12.5% of its
//! values, and 496 buckets cover everything up to `u64::MAX` ns. Percentiles
//! are read by walking the buckets, only when someone asks (the `Stats`
//! request, the reaper's periodic event).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use pyrpc_proto::Latency;
use tokio::time::Instant;

/// Sub-buckets per power of two: 2^3 = 8, so a bucket is at most 1/8 wide.
const SUB_BITS: u32 = 3;
const SUB: u64 = 1 << SUB_BITS;
/// Values below 2 * SUB get a bucket each; then SUB buckets per power of two.
const BUCKETS: usize = ((64 - SUB_BITS as usize) + 1) * SUB as usize;

/// The counters of one server.
pub(crate) struct Stats {
    started: Instant,
    calls: AtomicU64,
    errors: AtomicU64,
    in_flight: AtomicU64,
    max_ns: AtomicU64,
    buckets: Box<[AtomicU64]>,
}

/// Counts one call as in flight until dropped (also when the call's future is
/// dropped because its connection closed).
pub(crate) struct InFlight<'a>(&'a Stats);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

/// The histogram bucket of `ns`.
fn bucket(ns: u64) -> usize {
    if ns < 2 * SUB {
        return ns as usize;
    }
    let msb = 63 - ns.leading_zeros(); // >= SUB_BITS + 1
    let shift = msb - SUB_BITS;
    let sub = (ns >> shift) & (SUB - 1);
    ((shift as u64 + 1) * SUB + sub) as usize
}

/// The largest value that falls into bucket `i`.
fn bucket_high(i: usize) -> u64 {
    let i = i as u64;
    if i < 2 * SUB {
        return i;
    }
    let shift = i / SUB - 1;
    let sub = i % SUB;
    // (SUB + sub + 1) << shift, minus one, without overflowing at the top.
    ((SUB + sub) << shift) + ((1u64 << shift) - 1)
}

impl Stats {
    pub(crate) fn new() -> Self {
        Stats {
            started: Instant::now(),
            calls: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            max_ns: AtomicU64::new(0),
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// A call starts; it counts as in flight while the guard lives.
    pub(crate) fn enter(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Relaxed);
        InFlight(self)
    }

    /// A call starts and counts as in flight until [`Stats::leave`]: for a
    /// call whose end is not in one scope (answered from another thread).
    pub(crate) fn enter_detached(&self) {
        self.in_flight.fetch_add(1, Relaxed);
    }

    /// A call counted by [`Stats::enter_detached`] ends.
    pub(crate) fn leave(&self) {
        self.in_flight.fetch_sub(1, Relaxed);
    }

    /// A call finished after `elapsed`, failed or not.
    pub(crate) fn record(&self, elapsed: Duration, failed: bool) {
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.calls.fetch_add(1, Relaxed);
        if failed {
            self.errors.fetch_add(1, Relaxed);
        }
        self.buckets[bucket(ns)].fetch_add(1, Relaxed);
        self.max_ns.fetch_max(ns, Relaxed);
    }

    pub(crate) fn calls(&self) -> u64 {
        self.calls.load(Relaxed)
    }

    pub(crate) fn errors(&self) -> u64 {
        self.errors.load(Relaxed)
    }

    pub(crate) fn in_flight(&self) -> u64 {
        self.in_flight.load(Relaxed)
    }

    pub(crate) fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// The latency percentiles so far. Each percentile is the top of its
    /// bucket, capped by the largest latency seen, so it never understates.
    pub(crate) fn latency(&self) -> Latency {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        let max = self.max_ns.load(Relaxed);
        let at = |q: f64| -> Duration {
            if total == 0 {
                return Duration::ZERO;
            }
            // The rank of the q-quantile, 1-based: ceil(q * total).
            let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    return Duration::from_nanos(bucket_high(i).min(max));
                }
            }
            Duration::from_nanos(max)
        };
        Latency::new(at(0.50), at(0.90), at(0.99), Duration::from_nanos(max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_at_most_an_eighth_wide() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(15), 15);
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
        assert_eq!(bucket_high(BUCKETS - 1), u64::MAX);
        let mut low = 0u64;
        for i in 0..BUCKETS {
            let high = bucket_high(i);
            assert_eq!(bucket(low), i, "low end of bucket {i}");
            assert_eq!(bucket(high), i, "high end of bucket {i}");
            assert!(high - low <= low / 8, "bucket {i} [{low}, {high}] too wide");
            if i + 1 < BUCKETS {
                low = high + 1;
            }
        }
    }

    #[test]
    fn percentiles_follow_the_recorded_latencies() {
        let s = Stats::new();
        assert_eq!(s.latency(), Latency::default());
        for us in 1..=100u64 {
            s.record(Duration::from_micros(us), us % 10 == 0);
        }
        assert_eq!((s.calls(), s.errors()), (100, 10));
        let l = s.latency();
        let within = |d: Duration, want_us: u64| {
            let got = d.as_nanos() as f64 / 1000.0;
            let want = want_us as f64;
            assert!(
                got >= want && got <= want * 1.125,
                "got {got} us, want {want} us"
            );
        };
        within(l.p50, 50);
        within(l.p90, 90);
        within(l.p99, 99);
        assert_eq!(l.max, Duration::from_micros(100));
    }

    #[test]
    fn in_flight_counts_live_guards() {
        let s = Stats::new();
        let a = s.enter();
        let b = s.enter();
        assert_eq!(s.in_flight(), 2);
        drop(a);
        assert_eq!(s.in_flight(), 1);
        drop(b);
        assert_eq!(s.in_flight(), 0);
    }
}
