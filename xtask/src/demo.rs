//! `cargo xtask demo`: servers and clients in separate processes, Rust and
//! Python, over a Unix socket and TCP.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::python::{self, Venv};
use crate::util::{cargo, free_port, run as sh, step, temp_dir, wait_until, KillOnDrop};

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
    wait_unix(&sock)?;
    sh(Command::new(bin("echo_client")).arg(&unix), root)?;
    drop(server);

    let port = free_port()?;
    let tcp = format!("127.0.0.1:{port}");
    step(&format!("Python server on {tcp}  <-  Rust client"));
    let server = spawn(
        venv.command(venv.python())
            .arg(root.join("examples/python/echo_server.py"))
            .arg(&tcp),
    )?;
    wait_tcp(port)?;
    sh(Command::new(bin("echo_client")).arg(&tcp), root)?;
    drop(server);

    let port = free_port()?;
    let tcp = format!("127.0.0.1:{port}");
    step(&format!("Rust server on {tcp}  <-  Python client"));
    let server = spawn(Command::new(bin("echo_server")).arg(&tcp))?;
    wait_tcp(port)?;
    sh(
        venv.command(venv.python())
            .arg(root.join("examples/python/echo_client.py"))
            .arg(&tcp),
        root,
    )?;
    drop(server);
    Ok(())
}

fn spawn(cmd: &mut Command) -> Result<KillOnDrop> {
    println!("$ {} &", crate::util::describe(cmd));
    let child = cmd
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {}", crate::util::describe(cmd)))?;
    Ok(KillOnDrop(child))
}

fn wait_unix(path: &Path) -> Result<()> {
    wait_until(Duration::from_secs(30), || {
        std::os::unix::net::UnixStream::connect(path).is_ok()
    })
    .with_context(|| format!("server did not listen on {}", path.display()))
}

fn wait_tcp(port: u16) -> Result<()> {
    wait_until(Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
    .with_context(|| format!("server did not listen on port {port}"))
}
