//! The Python suite on every CPython from 3.9 to 3.13 on this machine, each
//! in its own virtualenv (`target/pyvenvs/3.X`) with the release wheel
//! installed, so the one abi3 wheel is proven on each version it claims.
//!
//! The interpreters are pyenv's (`$PYENV_ROOT/versions/3.X.Y`, or
//! `~/.pyenv`; the newest patch release of each minor version), else
//! `python3.X` on `PATH`. pip's and pytest's output go to
//! `target/pyvenvs/*.log`; one line per version is printed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use anyhow::{bail, Result};

use crate::python::{self, Venv};
use crate::util::{run, run_logged, step};

/// `cargo xtask python-test`: builds the wheel, installs it into
/// `target/venv` and runs the Python suite there with every check (mypy
/// cases, stubtest, the wheel's tag and contents, the CLI against the Rust
/// binary `cli`), then on every other CPython 3.9-3.13 found. Returns the
/// main venv.
pub(crate) fn test(root: &Path, cli: Option<&Path>) -> Result<Venv> {
    let (venv, built) = python::setup_with_wheel(root)?;
    // `cargo xtask test` started one already; `python-test` alone starts its own.
    let _redis = match std::env::var_os("PYRPC_TEST_REDIS_URL") {
        Some(_) => None,
        None => Some(crate::redis::TestRedis::start()?),
    };
    let mut envs = Vec::new();
    if let Some(cli) = cli {
        envs.push(("PYRPC_CLI_BIN", cli.display().to_string()));
    }
    step(
        "Python tests (pytest on the installed wheel; mypy --strict cases, stubtest, wheel checks)",
    );
    run(
        venv.command(venv.python())
            .args(["-m", "pytest", "-q", "-rfE", "crates/pyrpc-python/tests"])
            .envs(envs.iter().map(|(k, v)| (k, v)))
            .env("PYRPC_REQUIRE_MYPY", "1")
            .env("PYRPC_MYPY_CACHE", root.join("target/mypy-cache"))
            .env("PYRPC_WHEEL", &built.wheel)
            .env("PYRPC_SDIST", &built.sdist),
        root,
    )?;
    let main_version = version_of(&venv.python());
    run_suite_each(root, &built.wheel, main_version.as_deref(), &envs)?;
    Ok(venv)
}

/// The minor versions the package supports (`requires-python = ">=3.9"`).
const MINORS: &[u32] = &[9, 10, 11, 12, 13];

/// `(version, interpreter)` for each supported minor version found.
pub(crate) fn find() -> Vec<(String, PathBuf)> {
    let home = std::env::var("HOME").unwrap_or_default();
    let pyenv = std::env::var("PYENV_ROOT").unwrap_or_else(|_| format!("{home}/.pyenv"));
    let versions: Vec<String> = std::fs::read_dir(Path::new(&pyenv).join("versions"))
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let mut found = Vec::new();
    for minor in MINORS {
        let prefix = format!("3.{minor}.");
        let best = versions
            .iter()
            .filter_map(|v| {
                let patch: u32 = v.strip_prefix(&prefix)?.parse().ok()?;
                Some((patch, v))
            })
            .max();
        let python = match best {
            Some((_, v)) => Some(
                Path::new(&pyenv)
                    .join("versions")
                    .join(v)
                    .join("bin/python3"),
            ),
            None => which(&format!("python3.{minor}")),
        };
        if let Some(python) = python.filter(|p| p.exists()) {
            found.push((format!("3.{minor}"), python));
        }
    }
    found
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The `3.X` version of `python`.
pub(crate) fn version_of(python: &Path) -> Option<String> {
    let out = Command::new(python)
        .args(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// How many CPython suites run at once: a suite spends much of its time
/// waiting on its servers and subprocesses, so two share a 2-core machine
/// well. `PYRPC_SUITE_JOBS=1` runs them one by one.
fn suite_jobs() -> usize {
    std::env::var("PYRPC_SUITE_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(2)
}

/// Installs `wheel` into a venv per found version (but `skip`, the version
/// the main suite ran on) and runs the Python suite there with `envs`, up to
/// [`suite_jobs`] versions at once.
pub(crate) fn run_suite_each(
    root: &Path,
    wheel: &Path,
    skip: Option<&str>,
    envs: &[(&'static str, String)],
) -> Result<()> {
    let found = find();
    let names: Vec<&str> = found.iter().map(|(v, _)| v.as_str()).collect();
    step(&format!(
        "the Python suite on each CPython found ({}; {} ran above)",
        names.join(", "),
        skip.unwrap_or("none")
    ));
    let logs = root.join("target/pyvenvs");
    // Set-up one by one (pip's downloads and output), then the suites.
    let mut ready = Vec::new();
    for (version, python) in &found {
        if Some(version.as_str()) == skip {
            continue;
        }
        let venv = Venv::create(root, python, logs.join(version))?;
        venv.install_requirements(
            root,
            "crates/pyrpc-python/requirements-test-each.txt",
            ".pyrpc-test-reqs",
            &format!("installing the test requirements for {version}"),
        )?;
        venv.install_wheel(root, wheel, &logs.join(format!("pip-{version}.log")))?;
        ready.push((version.clone(), venv));
    }
    let jobs = suite_jobs().min(ready.len());
    step(&format!(
        "the suites of CPython {}, {jobs} at a time",
        ready
            .iter()
            .map(|(v, _)| v.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let next = AtomicUsize::new(0);
    let failed = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                while let Some((version, venv)) = ready.get(next.fetch_add(1, Ordering::Relaxed)) {
                    if !suite(root, version, venv, &logs, envs) {
                        failed
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(version.clone());
                    }
                }
            });
        }
    });
    let mut failed = failed.into_inner().unwrap_or_else(PoisonError::into_inner);
    failed.sort();
    if !failed.is_empty() {
        bail!("the Python suite failed on CPython {}", failed.join(", "));
    }
    Ok(())
}

/// Runs the Python suite in `venv` with its output in
/// `logs/pytest-{version}.log`, prints one line, and says whether it passed.
fn suite(
    root: &Path,
    version: &str,
    venv: &Venv,
    logs: &Path,
    envs: &[(&'static str, String)],
) -> bool {
    let start = Instant::now();
    let log = logs.join(format!("pytest-{version}.log"));
    let mut cmd = venv.command(venv.python());
    cmd.args([
        "-m",
        "pytest",
        "-q",
        // Skips, failures and errors each get a line in the short summary.
        "-rsfE",
        "-p",
        "no:cacheprovider",
        "crates/pyrpc-python/tests",
    ]);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    // The exit stress runs 120 times per script in target/venv; on each
    // other CPython a shorter run keeps CI's time in bounds.
    cmd.env("PYRPC_EXIT_RUNS", "40");
    let outcome = run_logged(&mut cmd, root, &log);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let summary = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    println!(
        "CPython {version}: {} ({:.0?}, log {})",
        summary.trim_matches(|c| c == '=' || c == ' '),
        start.elapsed(),
        log.display()
    );
    // The log stays on the machine: what failed is named here, so that CI's
    // own output says which test to look at.
    for line in failures(&text) {
        println!("    CPython {version}: {line}");
    }
    outcome.is_ok()
}

/// The short summary's `FAILED` and `ERROR` lines of a pytest log.
fn failures(log: &str) -> impl Iterator<Item = &str> {
    log.lines()
        .filter(|l| l.starts_with("FAILED ") || l.starts_with("ERROR "))
}

#[cfg(test)]
mod tests {
    use super::failures;

    #[test]
    fn failures_are_the_short_summarys_failed_and_error_lines() {
        let log = "..F.E\n___ test_b ___\n    FAILED in a traceback\n\
                   =========================== short test summary info ===\n\
                   SKIPPED [1] t.py:3: TCP only\n\
                   FAILED t.py::test_b - RuntimeError: did not come up\n\
                   ERROR t.py::test_c - OSError\n\
                   1 failed, 1 error, 3 passed in 1.0s\n";
        assert_eq!(
            failures(log).collect::<Vec<_>>(),
            [
                "FAILED t.py::test_b - RuntimeError: did not come up",
                "ERROR t.py::test_c - OSError"
            ]
        );
    }
}
