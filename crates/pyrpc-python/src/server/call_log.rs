//! [`CallLog`]: whether `log_call` runs after a call that returned,
//! decided once per server and asked cheaply per call.

use pyo3::prelude::*;
use pyo3::types::PyDict;

/// How a call that returned is logged: decided once, when the server is
/// made, so that a server without a hook does not run Python's `log_call`
/// (a method lookup and two Python calls) on every call.
pub(crate) enum CallLog {
    /// The server overrides `log_call` or `get_call_logging_func` (in its
    /// class or on the instance): `server.log_call(...)` runs after every
    /// call.
    Hook,
    /// `pyrpc.Server`'s own `log_call`, which only logs at DEBUG on the
    /// `pyrpc` logger: that logger's `isEnabledFor` (cached by `logging`)
    /// is asked first, and `log_call` runs only when it would log. The
    /// level is asked per call, so raising it later still works.
    IfDebug(Py<PyAny>, Option<Py<PyDict>>),
}

impl CallLog {
    /// The mode for `server` ([`CallLog::Hook`] when in doubt).
    pub(super) fn of(server: &Bound<'_, PyAny>) -> CallLog {
        Self::find(server).unwrap_or(CallLog::Hook)
    }

    pub(super) fn find(server: &Bound<'_, PyAny>) -> PyResult<CallLog> {
        let module = server.py().import("pyrpc._server")?;
        let base = module.getattr("Server")?;
        let class = server.get_type();
        let own = server.getattr("__dict__").ok();
        for name in ["log_call", "get_call_logging_func"] {
            let overridden = !class.getattr(name)?.is(&base.getattr(name)?)
                || own
                    .as_ref()
                    .is_some_and(|d| d.contains(name).unwrap_or(true));
            if overridden {
                return Ok(CallLog::Hook);
            }
        }
        let logger = module.getattr("logger")?;
        // `isEnabledFor`'s own cache (`Logger._cache`, level -> answer,
        // cleared in place whenever a level changes): read first, so that
        // a server with DEBUG off makes no Python call per call to learn
        // it. Without it (another `logging`), the method is called.
        let cache = logger
            .getattr("_cache")
            .ok()
            .and_then(|c| c.cast_into::<PyDict>().ok())
            .map(Bound::unbind);
        Ok(CallLog::IfDebug(
            logger.getattr("isEnabledFor")?.unbind(),
            cache,
        ))
    }

    pub(super) fn clone_ref(&self, py: Python<'_>) -> CallLog {
        match self {
            CallLog::Hook => CallLog::Hook,
            CallLog::IfDebug(f, c) => {
                CallLog::IfDebug(f.clone_ref(py), c.as_ref().map(|c| c.clone_ref(py)))
            }
        }
    }

    /// True when `log_call` must run for this call.
    pub(super) fn wanted(&self, py: Python<'_>) -> bool {
        /// `logging.DEBUG`.
        const DEBUG: u8 = 10;
        match self {
            CallLog::Hook => true,
            CallLog::IfDebug(enabled, cache) => {
                // A cached "no" is the answer (a disabled logger says no
                // too); anything else asks `isEnabledFor`.
                let cached_no = cache.as_ref().is_some_and(|c| {
                    matches!(c.bind(py).get_item(DEBUG), Ok(Some(v)) if matches!(v.is_truthy(), Ok(false)))
                });
                !cached_no
                    && enabled
                        .call1(py, (DEBUG,))
                        .and_then(|r| r.is_truthy(py))
                        .unwrap_or(true)
            }
        }
    }
}
