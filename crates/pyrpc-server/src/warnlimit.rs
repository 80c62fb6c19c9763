//! [`WarnLimit`]: at most a few warnings per window, so that a flood of bad
//! handshakes or junk connections cannot flood the log.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Warnings let through per window.
const PER_WINDOW: u32 = 10;
/// The window.
const WINDOW: Duration = Duration::from_secs(10);

/// Lets [`PER_WINDOW`] warnings through per [`WINDOW`] and counts the rest.
#[derive(Debug)]
pub(crate) struct WarnLimit {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    window_start: Instant,
    logged: u32,
    suppressed: u64,
}

/// What to do with one warning.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Log it; `suppressed` warnings were dropped since the last one logged.
    Log { suppressed: u64 },
    /// Drop it.
    Drop,
}

impl WarnLimit {
    pub(crate) fn new() -> Self {
        WarnLimit {
            state: Mutex::new(State {
                window_start: Instant::now(),
                logged: 0,
                suppressed: 0,
            }),
        }
    }

    /// Whether a warning at `now` may be logged.
    pub(crate) fn check(&self, now: Instant) -> Verdict {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if now.saturating_duration_since(s.window_start) >= WINDOW {
            s.window_start = now;
            s.logged = 0;
        }
        if s.logged < PER_WINDOW {
            s.logged += 1;
            let suppressed = std::mem::take(&mut s.suppressed);
            Verdict::Log { suppressed }
        } else {
            s.suppressed += 1;
            Verdict::Drop
        }
    }
}

/// Logs a warning through the server's [`WarnLimit`], adding how many were
/// dropped before it.
macro_rules! limited_warn {
    ($limit:expr, target: $target:expr, $($rest:tt)+) => {
        match $limit.check(std::time::Instant::now()) {
            $crate::warnlimit::Verdict::Log { suppressed: 0 } => {
                tracing::warn!(target: $target, $($rest)+);
            }
            $crate::warnlimit::Verdict::Log { suppressed } => {
                tracing::warn!(target: $target, suppressed, $($rest)+);
            }
            $crate::warnlimit::Verdict::Drop => {}
        }
    };
}
pub(crate) use limited_warn;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lets_a_few_through_per_window_and_counts_the_rest() {
        let limit = WarnLimit::new();
        let t0 = Instant::now();
        for _ in 0..PER_WINDOW {
            assert_eq!(limit.check(t0), Verdict::Log { suppressed: 0 });
        }
        for _ in 0..1000 {
            assert_eq!(limit.check(t0), Verdict::Drop);
        }
        assert_eq!(
            limit.check(t0 + WINDOW),
            Verdict::Log { suppressed: 1000 },
            "the next window says how many were dropped"
        );
        assert_eq!(limit.check(t0 + WINDOW), Verdict::Log { suppressed: 0 });
    }
}
