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

/// The TCP port process `pid` listens on, read from its own sockets: the
/// inodes of its file descriptors (`/proc/PID/fd`) looked up among the
/// listening sockets of `/proc/net/tcp{,6}`. `None` until it listens.
fn listening_port(pid: u32) -> Option<u16> {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|link| {
            let link = link.to_str()?;
            Some(link.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .find_map(|table| {
            let text = std::fs::read_to_string(table).ok()?;
            text.lines().skip(1).find_map(|line| {
                // sl local_address rem_address st ... inode (field 9); 0A = LISTEN.
                let f: Vec<&str> = line.split_whitespace().collect();
                if f.len() > 9 && f[3] == "0A" && inodes.contains(f[9]) {
                    u16::from_str_radix(f[1].rsplit(':').next()?, 16).ok()
                } else {
                    None
                }
            })
        })
}

impl ServerProcess {
    /// Starts `exe serve` on a fresh Unix socket path with `options`, and
    /// waits until it answers a ping.
    pub fn unix(exe: &str, options: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let addr = Address::unix(dir.path().join("server.sock"));
        Self::at(exe, addr, Some(dir), options)
    }

    /// Starts `exe serve` on 127.0.0.1, port 0 (the OS picks a free one as
    /// the server binds; [`ServerProcess::addr`] is then the real port).
    pub fn tcp(exe: &str, options: &[&str]) -> Self {
        Self::at(exe, Address::tcp("127.0.0.1", 0), None, options)
    }

    /// Starts `exe serve ADDR options` and waits (at most 10 s) until it
    /// accepts connections. With TCP port 0, the port it bound is found in
    /// its sockets.
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
            if let Address::Tcp { host, port: 0 } = &p.addr {
                if let Some(port) = listening_port(p.pid()) {
                    p.addr = Address::tcp(host.clone(), port);
                }
            }
            if !matches!(p.addr, Address::Tcp { port: 0, .. }) && p.accepts() {
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
