//! Rust `tracing` events to Python `logging`, so that what the Rust core
//! logs (the startup line, failed TLS handshakes, authentication failures,
//! protocol errors, connections, client reconnects) reaches the loggers an
//! application configures: `pyrpc.server`, `pyrpc.client`, `pyrpc.auth`
//! and `pyrpc.transport`.
//!
//! A small [`Layer`] rather than `pyo3-log`: the core logs with `tracing`,
//! not `log`, and its targets are mapped to loggers by concern here. Cost
//! when a logger is off: the effective level of each logger is cached for a
//! second, so a disabled event is an atomic load, without the GIL. TRACE
//! events and spans are never forwarded (they are per frame and per call).
//! The cache is dropped whenever Python's logging clears its own level cache
//! (`Logger.setLevel`, `logging.disable`, `basicConfig`, `dictConfig` all do,
//! through `logging.Manager._clear_cache`, which is wrapped for it), so a
//! level change is seen at once. Forwarding stops at interpreter exit
//! (`atexit`), so runtime threads never take the GIL of a finalizing
//! interpreter.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

/// The loggers, by concern.
const LOGGERS: [&str; 5] = [
    "pyrpc.server",
    "pyrpc.client",
    "pyrpc.auth",
    "pyrpc.transport",
    "pyrpc",
];
/// How long a logger's cached level is trusted, in milliseconds.
const LEVEL_TTL_MS: u64 = 1000;

struct Cached {
    /// Python's effective level (10 DEBUG ... 50 CRITICAL); -1 unknown.
    level: AtomicI64,
    /// When it was read, in ms since `epoch()`; 0 never.
    read_at: AtomicU64,
    logger: PyOnceLock<Py<PyAny>>,
}

#[allow(clippy::declare_interior_mutable_const)]
const CACHED: Cached = Cached {
    level: AtomicI64::new(-1),
    read_at: AtomicU64::new(0),
    logger: PyOnceLock::new(),
};
static CACHE: [Cached; 5] = [CACHED, CACHED, CACHED, CACHED, CACHED];

fn epoch_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let ms = EPOCH.get_or_init(Instant::now).elapsed().as_millis();
    u64::try_from(ms).unwrap_or(u64::MAX).saturating_add(1)
}

/// The logger (index into [`LOGGERS`]) for a tracing target, if it is ours.
fn logger_index(target: &str) -> Option<usize> {
    if let Some(i) = LOGGERS.iter().position(|l| *l == target) {
        return Some(i);
    }
    let krate = target.split("::").next().unwrap_or(target);
    match krate {
        "pyrpc_server" => Some(0),
        "pyrpc_client" => Some(1),
        "pyrpc_transport" | "pyrpc_framing" => Some(3),
        "pyrpc_python" | "_pyrpc" => Some(4),
        _ => None,
    }
}

fn py_level(level: &Level) -> i64 {
    match *level {
        Level::ERROR => 40,
        Level::WARN => 30,
        Level::INFO => 20,
        Level::DEBUG => 10,
        Level::TRACE => 5,
    }
}

fn logger<'py>(py: Python<'py>, i: usize) -> PyResult<&'py Bound<'py, PyAny>> {
    CACHE[i]
        .logger
        .get_or_try_init(py, || {
            py.import("logging")?
                .call_method1("getLogger", (LOGGERS[i],))
                .map(Bound::unbind)
        })
        .map(|l| l.bind(py))
}

/// True when the logger would handle `level` (from the cache when fresh).
fn level_enabled(i: usize, level: i64) -> bool {
    if crate::exit::closed() {
        return false;
    }
    let c = &CACHE[i];
    let now = epoch_ms();
    let read_at = c.read_at.load(Ordering::Relaxed);
    if read_at == 0 || now.saturating_sub(read_at) > LEVEL_TTL_MS {
        let fresh = with_gil(|py| {
            logger(py, i)?
                .call_method0("getEffectiveLevel")?
                .extract::<i64>()
        });
        match fresh {
            Some(Ok(l)) => c.level.store(l, Ordering::Relaxed),
            Some(Err(_)) => c.level.store(30, Ordering::Relaxed),
            None => return false,
        }
        c.read_at.store(now, Ordering::Relaxed);
    }
    level >= c.level.load(Ordering::Relaxed)
}

/// Runs `f` with the GIL, unless the interpreter is exiting (`None`): the
/// one place this module takes the GIL, through the exit gate.
fn with_gil<R>(f: impl FnOnce(Python<'_>) -> R) -> Option<R> {
    crate::exit::attach(f)
}

/// Forwards pyrpc's DEBUG and higher events to Python `logging`.
struct PyLogLayer;

impl<S: Subscriber> Layer<S> for PyLogLayer {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> tracing::subscriber::Interest {
        if meta.is_event() && *meta.level() <= Level::DEBUG && logger_index(meta.target()).is_some()
        {
            tracing::subscriber::Interest::sometimes()
        } else {
            tracing::subscriber::Interest::never()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        meta.is_event()
            && logger_index(meta.target()).is_some_and(|i| level_enabled(i, py_level(meta.level())))
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let Some(i) = logger_index(meta.target()) else {
            return;
        };
        let mut text = Text::default();
        event.record(&mut text);
        let line = if text.fields.is_empty() {
            text.message
        } else {
            format!("{} ({})", text.message, text.fields)
        };
        let level = py_level(meta.level());
        with_gil(|py| {
            if let Ok(l) = logger(py, i) {
                // A failing handler must not take the server down.
                if l.call_method1("log", (level, "%s", line)).is_err() {
                    PyErr::take(py);
                }
            }
        });
    }
}

/// An event's message and its other fields as `key=value`.
#[derive(Default)]
struct Text {
    message: String,
    fields: String,
}

impl Visit for Text {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.sep();
            let _ = write!(self.fields, "{}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.sep();
            let _ = write!(self.fields, "{}={value:?}", field.name());
        }
    }
}

impl Text {
    fn sep(&mut self) {
        if !self.fields.is_empty() {
            self.fields.push_str(", ");
        }
    }
}

/// Forgets the cached levels (called by the wrapped
/// `logging.Manager._clear_cache`).
#[pyfunction]
fn _logging_levels_changed() {
    for c in &CACHE {
        c.read_at.store(0, Ordering::Relaxed);
    }
}

/// Wraps `logging.Manager._clear_cache` so that level changes reach the
/// cache at once. Without that private method (a future Python), the
/// cache still expires after [`LEVEL_TTL_MS`].
const WRAP_CLEAR_CACHE: &std::ffi::CStr = c"
def _wrap(logging, changed):
    manager = logging.Manager
    original = getattr(manager, '_clear_cache', None)
    if original is None or getattr(original, '_pyrpc_wrapped', False):
        return
    def _clear_cache(self, *args, **kwargs):
        changed()
        return original(self, *args, **kwargs)
    _clear_cache._pyrpc_wrapped = True
    manager._clear_cache = _clear_cache
";

/// Installs the bridge as the global `tracing` subscriber (unless the
/// embedding program installed one) and stops forwarding once the exit gate closes (see `exit`).
pub(crate) fn install(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let changed = wrap_pyfunction!(_logging_levels_changed, m)?;
    let code = PyModule::from_code(
        py,
        WRAP_CLEAR_CACHE,
        c"_pyrpc_logbridge.py",
        c"_pyrpc_logbridge",
    )?;
    code.getattr("_wrap")?
        .call1((py.import("logging")?, changed))?;
    let _ =
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(PyLogLayer));
    Ok(())
}
