//! `cargo xtask demo`: servers and clients in separate processes, Rust and
//! Python, over a Unix socket and TCP.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Result;

use crate::announce::{spawn_announced, Announced, Output};
use crate::python::{self, Venv};
use crate::util::{cargo, run as sh, step, temp_dir};

/// How long an example server may take to say where it listens.
const READY_LIMIT: Duration = Duration::from_secs(30);

/// Builds the examples and the Python package, then runs three pairings.
pub(crate) fn run(root: &Path) -> Result<()> {
    step("building the Rust examples");
    sh(
        cargo().args(["build", "--quiet", "-p", "pyrpc-examples", "--examples"]),
        root,
    )?;
    let venv = python::setup(root)?;
    let bin = |name: &str| root.join("target/debug/examples").join(name);
    let tmp = temp_dir("pyrpc-demo")?;
    pairings(root, &venv, &bin, tmp.path())?;
    println!("\ndemo finished: every client got its answer");
    Ok(())
}

fn pairings(root: &Path, venv: &Venv, bin: &dyn Fn(&str) -> PathBuf, tmp: &Path) -> Result<()> {
    let sock = tmp.join("echo.sock");
    let unix = format!("unix:{}", sock.display());

    step(&format!("Rust server on {unix}  <-  Rust client"));
    let server = spawn(Command::new(bin("echo_server")).arg(&unix))?;
    sh(Command::new(bin("echo_client")).arg(&server.address), root)?;
    drop(server);

    // Port 0: the OS picks a free port when the server binds, and the
    // server says which (`listening on 127.0.0.1:PORT`).
    step("Python server on 127.0.0.1:0  <-  Rust client");
    let server = spawn(
        venv.command(venv.python())
            .arg(root.join("examples/python/echo_server.py"))
            .arg("127.0.0.1:0")
            .env("PYTHONUNBUFFERED", "1"),
    )?;
    sh(Command::new(bin("echo_client")).arg(&server.address), root)?;
    drop(server);

    step("Rust server on 127.0.0.1:0  <-  Python client");
    let server = spawn(Command::new(bin("echo_server")).arg("127.0.0.1:0"))?;
    sh(
        venv.command(venv.python())
            .arg(root.join("examples/python/echo_client.py"))
            .arg(&server.address),
        root,
    )?;
    drop(server);
    Ok(())
}

/// Starts an example server (its output shown) and waits until it says
/// where it listens.
fn spawn(cmd: &mut Command) -> Result<Announced> {
    spawn_announced(cmd, Output::Inherit, READY_LIMIT)
}
