//! `cli_main`: the `pyrpc` command (the `pyrpc-cli` crate's [`pyrpc_cli::run`])
//! inside the Python package, so `python -m pyrpc` and the wheel's `pyrpc`
//! script are the Rust command itself, not a second implementation.

use pyo3::prelude::*;

/// Runs the `pyrpc` command with `argv` (the program name first) and returns
/// its exit code. Prints straight to the process's stdout and stderr; the GIL
/// is released meanwhile.
#[pyfunction]
fn cli_main(py: Python<'_>, argv: Vec<String>) -> u8 {
    py.detach(|| pyrpc_cli::run(argv))
}

/// Registers `cli_main` in the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(cli_main, m)?)
}
