//! Project tasks, run as `cargo xtask <task>` (see `.cargo/config.toml`).
//!
//! * `demo` — the README's main job: a server and a client in separate processes,
//!   Rust and Python, talking over TCP and a Unix socket.
//! * `test` — everything the README's test command runs: formatting, codegen
//!   check, clippy, the Rust tests, the Python suite and the examples.
//! * `interop-test` — every client × server pairing (Rust, Python, an
//!   independent protobuf peer) over TCP and Unix sockets, in separate
//!   processes, plus the golden vectors checked by the Python protobuf runtime.
//! * `bench [--quick] [--case a,b]` — issue 6's benchmark: pyrpc next to a raw ping-pong,
//!   tonic and grpcio, in separate processes; writes `bench/RESULTS.md`.
//! * `python-setup` — create `target/venv` with maturin, pytest and mypy, and
//!   install the `pyrpc` Python package into it from the release wheel.
//! * `python-test` — the Python part of `test`: the wheel, the suite on it in
//!   `target/venv`, then on every other CPython 3.9-3.13 found.
//! * `wheel` — the release abi3 wheel (manylinux2014, stripped) and sdist of
//!   the Python package, in `target/wheels`.
//! * `fuzz [SECONDS]` — a bounded run of every cargo-fuzz target in `fuzz/`.
//! * `codegen [--check]` — regenerate (or check) the prost code from `proto/`.
//!
//! xtask has no async runtime and few dependencies; it shells out to `cargo`,
//! `python3`, `pip` and `maturin` and says what it runs.

use anyhow::{bail, Result};

mod bench;
mod bench_stream;
mod certs;
mod codegen;
mod demo;
mod fuzz;
mod interop;
mod python;
mod pythons;
mod standalone;
mod test;
mod util;
mod wheel;

const HELP: &str = "\
cargo xtask <task>

  demo                a Rust and a Python server, each called by a client in another process
  test                every check: fmt, codegen, clippy, Rust tests, Python tests, examples
  fuzz [SECONDS]      run every fuzz target for SECONDS (default 20; installs cargo-fuzz)
  interop-test        every client x server (rust, python, independent) x (tcp, unix), in processes
      [--jobs N] [--client PEER] [--server PEER] [--transport tcp|unix]
  bench [--quick]     issue 6's benchmark: every case and its peers, table, bench/RESULTS.md, chart
      [--case ID,..]  only the cases whose id contains one of these (results to target/bench/)
  python-setup        create target/venv (maturin, pytest, mypy) and install the pyrpc wheel into it
  python-test         the wheel, then the Python suite on it in target/venv and on each CPython 3.9-3.13
  wheel               build the release wheel (abi3, manylinux2014, stripped) and sdist in target/wheels
  codegen [--check]   regenerate (or check) crates/pyrpc-proto/src/generated from proto/
  standalone          crates using pyrpc-client alone (no default features) or pyrpc-server
                      alone build, with #[service]; part of `test`
";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = util::project_root();
    let flag = |name: &str| args.iter().any(|a| a == name);
    match args.first().map(String::as_str) {
        Some("codegen") => codegen::run(&root, flag("--check")),
        Some("demo") => demo::run(&root),
        Some("test") => test::run(&root),
        Some("fuzz") => {
            let secs = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(20);
            fuzz::run_targets(&root, secs)
        }
        Some("bench") => bench::run(&root, &args[1..]),
        Some("interop-test") => interop::run(&root, &args[1..]),
        Some("python-setup") => python::setup(&root).map(|_| ()),
        Some("standalone") => standalone::run_checks(&root),
        Some("python-test") => {
            let cli = root.join("target/debug/pyrpc");
            pythons::test(&root, cli.exists().then_some(cli.as_path())).map(|_| ())
        }
        Some("wheel") => python::venv(&root)
            .and_then(|venv| wheel::build(&root, &venv))
            .map(|_| ()),
        Some("help") | Some("--help") | Some("-h") | None => {
            print!("{HELP}");
            Ok(())
        }
        Some(other) => bail!("unknown task `{other}`\n\n{HELP}"),
    }
}
