//! Small helpers: the project root, running commands loudly, temporary paths.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The workspace root (the parent of this crate's directory).
pub(crate) fn project_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The cargo that runs us (so `cargo +toolchain xtask` stays on that toolchain).
pub(crate) fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// The steps begun so far, with when each began, for [`print_step_times`].
static STEPS: Mutex<Vec<(String, Instant)>> = Mutex::new(Vec::new());

/// Prints a step heading (and notes when the step began).
pub(crate) fn step(what: &str) {
    if let Ok(mut steps) = STEPS.lock() {
        steps.push((what.to_owned(), Instant::now()));
    }
    println!("\n==> {what}");
}

/// Prints how long each step took, a step lasting until the next began, so
/// a slow run shows where its time went.
pub(crate) fn print_step_times() {
    let Ok(steps) = STEPS.lock() else { return };
    if steps.is_empty() {
        return;
    }
    let end = Instant::now();
    println!("\ntime per step:");
    for (i, (what, began)) in steps.iter().enumerate() {
        let until = steps.get(i + 1).map_or(end, |next| next.1);
        let what: String = what.chars().take(90).collect();
        println!("  {:>5.0}s  {what}", (until - *began).as_secs_f64());
    }
}

/// Runs `cmd` in `dir`, echoing it, and fails if it fails.
pub(crate) fn run(cmd: &mut Command, dir: &Path) -> Result<()> {
    println!("$ {}", describe(cmd));
    let status = cmd
        .current_dir(dir)
        .status()
        .with_context(|| format!("cannot start {}", describe(cmd)))?;
    if !status.success() {
        bail!("`{}` failed with {status}", describe(cmd));
    }
    Ok(())
}

/// The command as a shell-like line, for logs.
pub(crate) fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// A child process that is killed (and reaped) when dropped, so a failing
/// task never leaves servers behind.
pub(crate) struct KillOnDrop(pub(crate) Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until `ready()` is true, polling every 20 ms, for at most `limit`.
pub(crate) fn wait_until(limit: Duration, mut ready: impl FnMut() -> bool) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if ready() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("not ready after {limit:?}")
}

/// A free TCP port on 127.0.0.1, bound and released: another process may
/// take it before the caller's server binds it. Only for `redis-server`
/// (see [`crate::redis`]), which cannot be told to bind port 0; pyrpc servers
/// bind port 0 and say which port they got ([`crate::announce`]).
pub(crate) fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// A fresh directory under the system temp dir (short paths: a Unix
/// socket's must fit in 108 bytes), `<prefix>-XXXXXX`, removed with
/// everything in it when dropped (also when a task fails half-way).
pub(crate) fn temp_dir(prefix: &str) -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(&format!("{prefix}-"))
        .tempdir()
        .with_context(|| format!("cannot create a temporary directory {prefix}-*"))
}

/// Runs `cmd` in `dir` with its stdout and stderr going to `log` (tools'
/// chatter stays out of the CI output); on failure, shows the log's last
/// lines.
pub(crate) fn run_logged(cmd: &mut Command, dir: &Path, log: &Path) -> Result<()> {
    println!("$ {}  (output: {})", describe(cmd), log.display());
    if let Some(parent) = log.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let out = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let status = cmd
        .current_dir(dir)
        .stdout(out.try_clone()?)
        .stderr(out)
        .status()
        .with_context(|| format!("cannot start {}", describe(cmd)))?;
    if !status.success() {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        for line in tail.iter().rev() {
            eprintln!("    {line}");
        }
        bail!(
            "`{}` failed with {status} (log: {})",
            describe(cmd),
            log.display()
        );
    }
    Ok(())
}
