//! One server of a [`MultiClient`](super::MultiClient): its client, whether
//! it refused connections lately (and until when it is skipped), and how
//! many calls it served.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::client::Client;

/// The first pause after a server refused a connection.
pub(crate) const BACKOFF_BASE: Duration = Duration::from_millis(100);
/// The longest pause: a server that came back is used again within this.
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(5);

pub(crate) struct Member {
    pub(crate) client: Client,
    /// Until when calls skip this server (`None`: it is up).
    down_until: Mutex<Option<Instant>>,
    /// Refusals in a row; the pause doubles with each.
    failures: AtomicU32,
    /// Calls (and non-blocking submits) this server answered.
    served: AtomicU64,
}

impl Member {
    pub(crate) fn new(client: Client) -> Member {
        Member {
            client,
            down_until: Mutex::new(None),
            failures: AtomicU32::new(0),
            served: AtomicU64::new(0),
        }
    }

    /// When the server is skipped until, if it is.
    pub(crate) fn down_until(&self, now: Instant) -> Option<Instant> {
        let until = *self
            .down_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        until.filter(|u| *u > now)
    }

    /// The server refused a connection (or did not answer the connect in
    /// time): skip it for a while, the pause doubling with each refusal in
    /// a row, capped, and jittered so that many clients do not come back in
    /// step.
    pub(crate) fn mark_down(&self) {
        let n = self.failures.fetch_add(1, Ordering::Relaxed).min(16);
        let pause = backoff(n, jitter());
        let until = Instant::now() + pause;
        *self
            .down_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(until);
        tracing::info!(target: "pyrpc.client", "{} refused; skipped for {:?}", self.client.address(), pause);
    }

    /// The server answered: use it normally again.
    pub(crate) fn mark_up(&self) {
        if self.failures.swap(0, Ordering::Relaxed) != 0 {
            *self
                .down_until
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = None;
        }
    }

    pub(crate) fn count_served(&self) {
        self.served.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }
}

/// A number in `[0, 1)` from the OS-seeded generator `uuid` already uses.
fn jitter() -> f64 {
    let bits = uuid::Uuid::new_v4().as_u128() as u64 >> 11;
    bits as f64 / (1u64 << 53) as f64
}

/// The pause after the `n`-th refusal in a row (0-based): `BACKOFF_BASE`
/// doubled `n` times, capped at `BACKOFF_MAX`, then scaled by
/// `0.5 + jitter/2` (so between half and all of it).
pub(crate) fn backoff(n: u32, jitter: f64) -> Duration {
    let full = BACKOFF_BASE
        .saturating_mul(1u32 << n.min(16))
        .min(BACKOFF_MAX);
    full.mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_is_capped_and_jittered_within_half() {
        assert_eq!(backoff(0, 1.0), BACKOFF_BASE);
        assert_eq!(backoff(1, 1.0), BACKOFF_BASE * 2);
        assert_eq!(backoff(30, 1.0), BACKOFF_MAX);
        assert_eq!(backoff(0, 0.0), BACKOFF_BASE / 2);
        for _ in 0..100 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j), "{j}");
        }
    }
}
