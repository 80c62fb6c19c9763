//! `cargo xtask test`: every check, in the order that fails fastest.

use std::path::Path;
use std::time::Instant;

use anyhow::Result;

use crate::util::{cargo, run as sh, step};
use crate::{bench, codegen, fuzz, interop, pythons, redis, standalone};

/// After this long, `test` leaves out the benchmark smoke run, which would
/// take the command past 30 minutes on a 2-core machine.
const SMOKE_BENCH_BEFORE: std::time::Duration = std::time::Duration::from_secs(20 * 60);

/// Runs formatting, codegen, clippy, the Rust tests, the Python suite (on the
/// release wheel, on every CPython 3.9-3.13 found) and the interop matrix.
pub(crate) fn run(root: &Path) -> Result<()> {
    let start = Instant::now();
    step("cargo fmt --check");
    sh(cargo().args(["fmt", "--all", "--", "--check"]), root)?;

    step("generated code is up to date with proto/");
    codegen::run(root, true)?;

    step("clippy (whole workspace, all targets, warnings are errors)");
    sh(
        cargo().args([
            "clippy",
            "--quiet",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
        root,
    )?;

    // A real Redis for the shared result store's tests, Rust and Python
    // (stopped when this function returns).
    let _redis = redis::TestRedis::start()?;

    step("Rust tests (unit, integration, doc tests)");
    sh(cargo().args(["test", "--quiet"]), root)?;

    step("pyrpc-server's Redis result store against a real redis-server");
    sh(
        cargo().args([
            "test",
            "--quiet",
            "-p",
            "pyrpc-server",
            "--features",
            "redis",
            "--test",
            "integration",
            "redis_store",
        ]),
        root,
    )?;

    standalone::run_checks(root)?;

    // `cargo install --path crates/pyrpc-cli` works. A debug build into the
    // workspace's target dir reuses what `cargo test` built (about a second);
    // a real install builds in release, which takes minutes and shows nothing
    // more about whether the package installs.
    step("cargo install --path crates/pyrpc-cli (debug, into target/cli-install)");
    let install_root = root.join("target/cli-install");
    sh(
        cargo()
            .env("CARGO_TARGET_DIR", root.join("target"))
            .args([
                "install", "--quiet", "--debug", "--locked", "--force", "--path",
            ])
            .arg(root.join("crates/pyrpc-cli"))
            .arg("--root")
            .arg(&install_root),
        root,
    )?;
    sh(
        std::process::Command::new(install_root.join("bin/pyrpc")).arg("--version"),
        root,
    )?;

    // A short bounded run; `cargo xtask fuzz 300` for a longer one
    // (docs/RELIABILITY.md).
    step("fuzzing (every cargo-fuzz target, 10 s each)");
    fuzz::run_targets(root, 10)?;

    // The package is built once, as the release wheel users get, and that
    // wheel is what every Python run tests.
    let cli = install_root.join("bin/pyrpc");
    let venv = pythons::test(root, Some(&cli))?;

    step("interop test (cargo xtask interop-test)");
    interop::run_with(
        root,
        venv,
        &interop::Options {
            jobs: 2,
            ..Default::default()
        },
    )?;

    // The smoke run needs a release build of the bench binaries (minutes on
    // two cores): it runs only while the whole command stays within its
    // 30-minute budget, and says so when it does not.
    if start.elapsed() < SMOKE_BENCH_BEFORE {
        step(
            "benchmark smoke run (cargo xtask bench --quick: every case runs, numbers not judged)",
        );
        bench::run(
            root,
            &bench::Options {
                quick: true,
                ..Default::default()
            },
        )?;
    } else {
        step("benchmark smoke run SKIPPED: the checks above took over 20 minutes; run `cargo xtask bench --quick` on its own");
    }

    println!("\nall checks passed in {:.0?}", start.elapsed());
    Ok(())
}
