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
//! * `aio` — `async def` methods: their coroutines run on an asyncio loop.
//! * `convert` — Python objects to and from `pyrpc_proto::Value`.
//! * `direct` — Python objects straight to and from encoded values (the
//!   call path), falling back on `convert` for the rarer kinds.
//! * `errors` — every mapping between Rust errors, remote errors and Python
//!   exceptions.
//! * `exit` — the exit gate: no thread of ours takes the GIL while the
//!   interpreter finalizes.
//! * `runtime` — the tokio runtime, re-made after `fork()`, and the
//!   GIL-releasing, Ctrl-C-aware `block_on`.
//! * `client` — `ClientCore`, the Rust half of `pyrpc.Client`.
//! * `multi` — `MultiClientCore`, the same over several servers
//!   (`Client(address=[a, b, c])`).
//! * `pool` — the Python worker threads a server's calls run on.
//! * `logbridge` — Rust `tracing` events to Python `logging` (`pyrpc.server`,
//!   `pyrpc.client`, `pyrpc.auth`, `pyrpc.transport`).
//! * `tls` — the TLS and remote-shutdown settings, Python to Rust.
//! * `server` — `ServerCore`, the Rust half of `pyrpc.Server`, and the
//!   `Callee` that calls Python methods.
//! * `cli` — `cli_main`, the `pyrpc` command of the `pyrpc-cli` crate, for
//!   `python -m pyrpc` and the wheel's `pyrpc` script.

use pyo3::prelude::*;

mod aio;
mod balancer;
mod bigbytes;
mod cli;
mod client;
mod convert;
mod direct;
mod errors;
mod exit;
mod kinds;
mod logbridge;
mod multi;
mod ndarray;
mod pool;
mod resolve;
mod runtime;
mod server;
mod stream;
mod tls;
mod warm;

/// The Rust core of the pyrpc package; use `pyrpc.Client` and `pyrpc.Server`.
#[pymodule]
fn _pyrpc(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    client::register(m)?;
    server::register(m)?;
    balancer::register(m)?;
    stream::register(m)?;
    exit::register(m)?;
    logbridge::install(m)?;
    cli::register(m)?;
    m.add_function(wrap_pyfunction!(direct::_dumps, m)?)?;
    m.add_function(wrap_pyfunction!(direct::_loads, m)?)?;
    Ok(())
}
