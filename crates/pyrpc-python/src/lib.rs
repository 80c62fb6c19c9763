//! `pyrpc._pyrpc`: the Rust core of the `pyrpc` Python package.
//!
//! A thin binding over the pure-Rust crates: it converts types, releases the
//! GIL while waiting, owns a fork-aware tokio runtime and maps errors. The
//! public classes (`pyrpc.Client`, `pyrpc.Server`) are written in Python on
//! top of it (`python/pyrpc/__init__.py`), so they can be subclassed with
//! class attributes as in the original pyrpc.
//!
//! # Layout
//!
//! * `convert` — Python objects to and from `pyrpc_proto::Value`.
//! * `errors` — every mapping between Rust errors, remote errors and Python
//!   exceptions.
//! * `runtime` — the tokio runtime, re-made after `fork()`, and the
//!   GIL-releasing, Ctrl-C-aware `block_on`.
//! * `client` — `ClientCore`, the Rust half of `pyrpc.Client`.
//! * `server` — `ServerCore`, the Rust half of `pyrpc.Server`, and the
//!   `Callee` that calls Python methods.
//! * `exit_guard` — keeps runtime threads out of Python while the interpreter
//!   exits (the `co_call` exit crash).
//! * `cli` — `cli_main`, the `pyrpc` command of the `pyrpc-cli` crate, for
//!   `python -m pyrpc` and the wheel's `pyrpc` script.

use pyo3::prelude::*;

mod cli;
mod client;
mod convert;
mod errors;
mod exit_guard;
mod runtime;
mod server;

/// The Rust core of the pyrpc package; use `pyrpc.Client` and `pyrpc.Server`.
#[pymodule]
fn _pyrpc(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    client::register(m)?;
    server::register(m)?;
    cli::register(m)?;
    exit_guard::register(m)?;
    Ok(())
}
