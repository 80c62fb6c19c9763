//! A throw-away `redis-server` for the tests of the shared result store
//! (issue 15): installed with apt-get when missing (Debian's package, as
//! root), started on a free loopback port with a temporary directory and no
//! persistence, announced to the tests through the environment, stopped when
//! dropped.
//!
//! The variables set for the test processes:
//! * `PYRPC_TEST_REDIS_URL` — `redis://127.0.0.1:<port>/0`, the shared Redis;
//! * `PYRPC_REDIS_SERVER` — the `redis-server` binary, for tests that start
//!   (and stop) a private one;
//! * `PYRPC_REQUIRE_REDIS=1` — the tests fail instead of skipping when Redis
//!   is missing (a skip is only for runs outside `cargo xtask test`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::util::{free_port, step, temp_dir, wait_until};

/// A running `redis-server`, stopped on drop.
pub(crate) struct TestRedis {
    child: Child,
    url: String,
    binary: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestRedis {
    /// Installs `redis-server` if needed, starts it and exports its URL to
    /// this process's environment (so every test command started after
    /// inherits it).
    pub(crate) fn start() -> Result<TestRedis> {
        let binary = ensure_installed()?;
        // A port picked free and released before redis-server binds it
        // (racy, unlike the demo's and the interop test's servers, which
        // bind port 0 and say which port they got): `--port 0` makes
        // redis-server listen on no TCP port at all, and the result store
        // the tests use is a `redis://host:port` URL.
        let port = free_port()?;
        let dir = temp_dir("pyrpc-test-redis")?;
        let child = Command::new(&binary)
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let redis = TestRedis {
            child,
            url: format!("redis://127.0.0.1:{port}/0"),
            binary,
            _dir: dir,
        };
        wait_until(Duration::from_secs(10), || ping(port))
            .context("redis-server did not answer PING")?;
        // xtask is single-threaded here: nothing reads the environment
        // concurrently.
        std::env::set_var("PYRPC_TEST_REDIS_URL", &redis.url);
        std::env::set_var("PYRPC_REDIS_SERVER", &redis.binary);
        std::env::set_var("PYRPC_REQUIRE_REDIS", "1");
        println!("redis-server for the tests at {}", redis.url);
        Ok(redis)
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::env::remove_var("PYRPC_TEST_REDIS_URL");
    }
}

/// True when a Redis on `port` answers `PING`.
fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let mut buf = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

/// The `redis-server` binary, installed with apt-get when missing.
fn ensure_installed() -> Result<PathBuf> {
    if let Some(p) = which("redis-server") {
        return Ok(p);
    }
    step("installing redis-server (apt-get; the result-store tests need it)");
    let root = Command::new("id").arg("-u").output().map(|o| o.stdout);
    let sudo = !matches!(root.as_deref(), Ok(b"0\n"));
    let apt = |args: &[&str]| -> Result<bool> {
        let mut cmd = if sudo {
            let mut c = Command::new("sudo");
            c.args(["-n", "apt-get"]);
            c
        } else {
            Command::new("apt-get")
        };
        let status = cmd
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .context("running apt-get")?;
        Ok(status.success())
    };
    if !apt(&["install", "-y", "redis-server"])? {
        // The package lists may be missing or stale.
        apt(&["update"])?;
        if !apt(&["install", "-y", "redis-server"])? {
            bail!("cannot install redis-server with apt-get (root or passwordless sudo needed)");
        }
    }
    which("redis-server").context("redis-server is not on PATH after installing it")
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/bin".into(), "/usr/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Starts and stops a real redis-server when one is installed (this test
    /// never installs one: `cargo xtask test` does, before the suites).
    #[test]
    fn starts_answers_and_stops() {
        if which("redis-server").is_none() {
            eprintln!("no redis-server installed; cargo xtask test installs it");
            return;
        }
        let redis = TestRedis::start().unwrap();
        let port: u16 = redis
            .url
            .rsplit(':')
            .next()
            .unwrap()
            .trim_end_matches("/0")
            .parse()
            .unwrap();
        assert!(ping(port));
        assert_eq!(
            std::env::var("PYRPC_TEST_REDIS_URL").ok().as_deref(),
            Some(redis.url.as_str())
        );
        drop(redis);
        assert!(!ping(port), "redis-server still answers after the drop");
    }
}
