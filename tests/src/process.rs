//! A pyrpc server in a process of its own (the `pyrpc-test-server` binary),
//! for tests that attack it, kill it or signal it, and read its memory use.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use pyrpc_client::{Client, ClientConfig};
use pyrpc_proto::{Args, Value};
use pyrpc_transport::Address;

/// A running `pyrpc-test-server serve` process; killed when dropped.
pub struct ServerProcess {
    pub child: Child,
    pub addr: Address,
    /// The temporary directory of a Unix socket address.
    pub dir: Option<tempfile::TempDir>,
}

/// A free TCP port on 127.0.0.1 (the OS picks it; it may be taken again
/// before the server binds it, which the caller notices as a failed start).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

impl ServerProcess {
    /// Starts `exe serve` on a fresh Unix socket path with `options`, and
    /// waits until it answers a ping.
    pub fn unix(exe: &str, options: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let addr = Address::unix(dir.path().join("server.sock"));
        Self::at(exe, addr, Some(dir), options)
    }

    /// Starts `exe serve` on 127.0.0.1 (a free port) with `options`.
    pub fn tcp(exe: &str, options: &[&str]) -> Self {
        Self::at(exe, Address::tcp("127.0.0.1", free_port()), None, options)
    }

    /// Starts `exe serve ADDR options` and waits (at most 10 s) until it
    /// answers a ping.
    pub fn at(exe: &str, addr: Address, dir: Option<tempfile::TempDir>, options: &[&str]) -> Self {
        let child = Command::new(exe)
            .arg("serve")
            .arg(addr.to_string())
            .args(options)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut p = ServerProcess { child, addr, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            assert!(p.alive(), "the server process exited while starting");
            if p.accepts() {
                return p;
            }
            assert!(Instant::now() < deadline, "the server never listened");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// True when a connection to the server's address is accepted.
    fn accepts(&self) -> bool {
        match &self.addr {
            Address::Unix(path) => std::os::unix::net::UnixStream::connect(path).is_ok(),
            Address::Tcp { host, port } => {
                std::net::TcpStream::connect((host.as_str(), *port)).is_ok()
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The resident memory of the process, in KiB (`VmRSS` of /proc/PID/status).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// The peak resident memory of the process so far, in KiB (`VmHWM`).
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/PID/status")
    }

    /// Sends `signal` (e.g. "TERM", "INT", "KILL") with kill(1).
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args(["-s", signal, &self.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -s {signal} failed");
    }

    /// Waits at most `limit` for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the process did not exit in {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The Unix socket path, if any.
    pub fn socket_path(&self) -> Option<PathBuf> {
        match &self.addr {
            Address::Unix(p) => Some(p.clone()),
            Address::Tcp { .. } => None,
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client with short timeouts (5 s for everything).
pub fn quick_client(addr: &Address) -> Client {
    Client::with_config(
        addr.clone(),
        ClientConfig {
            call_timeout: Some(Duration::from_secs(5)),
            socket_connect_timeout: Duration::from_secs(5),
            ..ClientConfig::default()
        },
    )
}

/// An honest call on a fresh connection: `add(20, 22)` must answer 42
/// within `limit`; returns how long it took.
pub async fn honest_call(addr: &Address, limit: Duration) -> Duration {
    let started = Instant::now();
    let v = quick_client(addr)
        .call("add", Args::new().arg(20).arg(22))
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(v, Value::from(42));
    assert!(took < limit, "an honest call took {took:?}");
    took
}
