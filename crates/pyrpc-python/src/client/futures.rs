//! Completing asyncio futures from the runtime: [`resolver`] and
//! [`CancelOnDone`].

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

/// Completes an asyncio future unless it was cancelled meanwhile. Runs on the
/// event loop's thread (scheduled with `call_soon_threadsafe`).
#[pyfunction]
fn resolve_future(
    future: &Bound<'_, PyAny>,
    exc: &Bound<'_, PyAny>,
    value: &Bound<'_, PyAny>,
) -> PyResult<()> {
    if future.call_method0("done")?.is_truthy()? {
        return Ok(());
    }
    if exc.is_none() {
        future.call_method1("set_result", (value,))?;
    } else if let Err(refused) = future.call_method1("set_exception", (exc,)) {
        // asyncio refuses some exceptions (a remote StopIteration): pass on
        // why, rather than leave the future pending forever.
        future.call_method1("set_exception", (refused.into_value(future.py()),))?;
    }
    Ok(())
}

static RESOLVER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// `resolve_future` as a Python callable, for `call_soon_threadsafe`.
pub(crate) fn resolver(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    RESOLVER
        .get_or_try_init(py, || {
            Ok::<_, PyErr>(wrap_pyfunction!(resolve_future, py)?.into_any().unbind())
        })
        .map(|f| f.bind(py))
}

/// An asyncio done-callback that aborts the call's task when the future was
/// cancelled (`asyncio.wait_for` timing out, a cancelled task).
#[pyclass(module = "pyrpc._pyrpc", frozen)]
pub(crate) struct CancelOnDone {
    pub(crate) task: tokio::task::JoinHandle<()>,
}

#[pymethods]
impl CancelOnDone {
    fn __call__(&self, future: &Bound<'_, PyAny>) -> PyResult<()> {
        if future.call_method0("cancelled")?.is_truthy()? {
            self.task.abort();
        }
        Ok(())
    }
}
