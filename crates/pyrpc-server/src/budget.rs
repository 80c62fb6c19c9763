//! [`ByteBudget`]: a server-wide count of bytes held for partially received
//! frames, with a ceiling.
//!
//! Each connection charges the bytes it buffers for a frame still arriving
//! (beyond a small allowance of its own) before it reads them, and gives them
//! back when the frame is complete or the connection closes. A charge that
//! would take the total over the ceiling fails, and the server closes that
//! connection: no amount of slow or huge uploads across any number of
//! connections makes the server hold more than the ceiling (plus the
//! allowances). See docs/decisions/0002-server-memory-limits.md.

use std::sync::atomic::{AtomicUsize, Ordering};

/// A ceiling on bytes held by all connections together.
#[derive(Debug)]
pub(crate) struct ByteBudget {
    used: AtomicUsize,
    max: usize,
}

impl ByteBudget {
    pub(crate) fn new(max: usize) -> Self {
        ByteBudget {
            used: AtomicUsize::new(0),
            max,
        }
    }

    /// Takes `n` bytes from the budget; false (and nothing taken) when that
    /// would go over the ceiling.
    pub(crate) fn try_charge(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|&total| total <= self.max)
            })
            .is_ok()
    }

    /// Gives back `n` bytes taken before.
    pub(crate) fn release(&self, n: usize) {
        if n > 0 {
            self.used.fetch_sub(n, Ordering::AcqRel);
        }
    }

    /// The bytes charged now.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_up_to_the_ceiling_and_no_further() {
        let b = ByteBudget::new(100);
        assert!(b.try_charge(60));
        assert!(b.try_charge(40), "exactly at the ceiling is allowed");
        assert!(!b.try_charge(1), "one over is refused");
        assert_eq!(b.used(), 100, "a refused charge takes nothing");
        b.release(50);
        assert!(!b.try_charge(51));
        assert!(b.try_charge(50));
        b.release(100);
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn a_huge_charge_does_not_overflow() {
        let b = ByteBudget::new(usize::MAX - 1);
        assert!(b.try_charge(10));
        assert!(!b.try_charge(usize::MAX));
        assert_eq!(b.used(), 10);
    }
}
