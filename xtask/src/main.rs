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
//! xtask has no async runtime and few dependencies (clap for its command
//! line, serde_json for the bench's JSON); it shells out to `cargo`,
//! `python3`, `pip` and `maturin` and says what it runs.

use anyhow::Result;
use clap::{Parser, Subcommand};

mod announce;
mod bench;
mod bench_memory;
mod bench_scale;
mod bench_stream;
mod bench_values;
mod certs;
mod codegen;
mod demo;
mod fuzz;
mod interop;
mod python;
mod pythons;
mod raw_mirror;
mod redis;
mod standalone;
mod test;
mod util;
mod wheel;

/// pyrpc's project tasks.
#[derive(Parser)]
#[command(name = "xtask", bin_name = "cargo xtask", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// A Rust and a Python server, each called by a client in another process.
    Demo,
    /// Every check: fmt, codegen, clippy, Rust tests, Python tests, examples.
    Test,
    /// Run every fuzz target for SECONDS (installs cargo-fuzz).
    Fuzz {
        /// How long each target runs.
        #[arg(default_value_t = 20)]
        seconds: u64,
    },
    /// Every client x server (rust, python, independent) x (tcp, unix, tls), in processes.
    InteropTest(interop::Options),
    /// Issue 6's benchmark: every case and its peers, table, bench/RESULTS.md, chart.
    Bench(bench::Options),
    /// Create target/venv (maturin, pytest, mypy) and install the pyrpc wheel into it.
    PythonSetup,
    /// The wheel, then the Python suite on it in target/venv and on each CPython 3.9-3.13.
    PythonTest,
    /// Build the release wheel (abi3, manylinux2014, stripped) and sdist in target/wheels.
    Wheel,
    /// Regenerate (or check) crates/pyrpc-proto/src/generated from proto/.
    Codegen {
        /// Only check that the committed code is up to date.
        #[arg(long)]
        check: bool,
    },
    /// Crates using pyrpc-client alone (no default features) or pyrpc-server alone build.
    Standalone,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let root = util::project_root();
    match cli.task {
        Task::Codegen { check } => codegen::run(&root, check),
        Task::Demo => demo::run(&root),
        Task::Test => {
            let outcome = test::run(&root);
            util::print_step_times();
            outcome
        }
        Task::Fuzz { seconds } => fuzz::run_targets(&root, seconds),
        Task::Bench(opts) => bench::run(&root, &opts),
        Task::InteropTest(opts) => interop::run(&root, &opts),
        Task::PythonSetup => python::setup(&root).map(|_| ()),
        Task::Standalone => standalone::run_checks(&root),
        Task::PythonTest => {
            let cli = root.join("target/debug/pyrpc");
            pythons::test(&root, cli.exists().then_some(cli.as_path())).map(|_| ())
        }
        Task::Wheel => python::venv(&root)
            .and_then(|venv| wheel::build(&root, &venv))
            .map(|_| ()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent_and_parses_the_readme_forms() {
        Cli::command().debug_assert();
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("xtask").chain(args.iter().copied()))
        };
        let Ok(Cli {
            task: Task::Bench(b),
        }) = parse(&["bench", "--quick", "--case", "raw,rust-seq"])
        else {
            panic!("bench parses")
        };
        assert!(b.quick);
        assert_eq!(b.case, Some(vec!["raw".to_owned(), "rust-seq".to_owned()]));
        assert!(matches!(
            parse(&["bench", "--only", "py"]),
            Ok(Cli {
                task: Task::Bench(_)
            })
        ));
        let Ok(Cli {
            task: Task::InteropTest(i),
        }) = parse(&["interop-test", "--jobs", "3", "--transport", "unix"])
        else {
            panic!("interop-test parses")
        };
        assert_eq!((i.jobs, i.transport.as_deref()), (3, Some("unix")));
        assert!(parse(&["interop-test", "--jobs", "0"]).is_err(), "jobs > 0");
        assert!(matches!(
            parse(&["fuzz"]),
            Ok(Cli {
                task: Task::Fuzz { seconds: 20 }
            })
        ));
        assert!(matches!(
            parse(&["codegen", "--check"]),
            Ok(Cli {
                task: Task::Codegen { check: true }
            })
        ));
        assert!(parse(&["nonsense"]).is_err());
    }
}
