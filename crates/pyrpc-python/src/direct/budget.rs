//! The decoded-size budget, charged while decoding (decision 0019): the
//! Python server decodes a request's arguments here instead of having the
//! server scan the whole frame first, so each value is charged as the
//! decoder meets it, before the memory for it is taken.
//!
//! The charges are the server scan's (`pyrpc_proto::cost`): each `Value`
//! message [`DECODED_VALUE_BYTES`], each packed item as one value, array
//! bytes once; and the limit is the scan's, [`decoded_budget`] of the
//! arguments' bytes. A container charges for all its items when it has
//! counted them (before it allocates its slots), so what is allocated is
//! never more than what was charged, but for the items of one dict of at
//! most 512 bytes (a record), charged together once it is made.

use pyrpc_proto::cost::{decoded_budget, DECODED_VALUE_BYTES};

use super::wire::DecodeError;

/// What is left of a budget in bytes, and what it was.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Budget {
    left: u64,
    limit: u64,
    /// The bytes the budget was made for (for the error message).
    bytes: u64,
}

impl Budget {
    /// No limit (a client's result: the server bounds what it sends).
    pub(crate) fn unlimited() -> Self {
        Budget {
            left: u64::MAX,
            limit: u64::MAX,
            bytes: 0,
        }
    }

    /// The budget for arguments whose encoded values are `bytes` long.
    pub(crate) fn for_arguments(bytes: u64) -> Self {
        let limit = decoded_budget(bytes);
        Budget {
            left: limit,
            limit,
            bytes,
        }
    }

    /// A budget of `limit` bytes (for tests of a small one).
    #[cfg(test)]
    pub(super) fn with_limit(limit: u64) -> Self {
        Budget {
            left: limit,
            limit,
            bytes: 0,
        }
    }

    /// What has been charged.
    #[cfg(test)]
    pub(super) fn spent(&self) -> u64 {
        self.limit - self.left
    }

    /// Charges `values` values.
    #[inline(always)]
    pub(super) fn values(&mut self, values: u64) -> Result<(), DecodeError> {
        self.bytes_of(values.saturating_mul(DECODED_VALUE_BYTES))
    }

    /// Charges `cost` bytes.
    #[inline(always)]
    pub(super) fn bytes_of(&mut self, cost: u64) -> Result<(), DecodeError> {
        match self.left.checked_sub(cost) {
            Some(left) => {
                self.left = left;
                Ok(())
            }
            None => Err(self.over()),
        }
    }

    #[cold]
    #[inline(never)]
    fn over(&self) -> DecodeError {
        DecodeError::Py(pyo3::exceptions::PyValueError::new_err(format!(
            "their values would take more than the server's budget of {} MiB \
             decoded, for {} MiB of arguments",
            self.limit >> 20,
            self.bytes >> 20
        )))
    }
}
