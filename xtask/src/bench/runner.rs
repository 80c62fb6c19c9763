//! Running one repeat of one case ([`Env::run_case`]): the server and
//! client processes, readiness, the client's JSON line, and what xtask
//! reads from `/proc` about the server (RSS, CPU time). The record of one
//! run is a [`Sample`].

use super::*;

// ===== running cases =====

/// What one run of one case measured: the client's fields plus the server's
/// `server_idle_kb` and `server_peak_kb`.
pub(super) type Sample = BTreeMap<String, f64>;

pub(super) struct Env {
    pub(super) root: PathBuf,
    pub(super) venv: Venv,
    pub(super) bin: PathBuf,
    pub(super) gen: PathBuf,
    pub(super) tmp: PathBuf,
    /// Certificates of the `tls` cases.
    pub(super) tls: certs::Files,
}

/// Removes the run's socket directory however the run ends.
impl Env {
    pub(super) fn python(&self, script: &str) -> Command {
        let mut c = self.venv.command(self.venv.python());
        c.arg(self.root.join("bench/python").join(script))
            .current_dir(self.root.join("bench/python"));
        c
    }

    pub(super) fn server_command(&self, kind: ServerKind, addr: &str) -> Command {
        let mut c = match kind {
            ServerKind::RawEcho | ServerKind::RawBulk => {
                let mut c = Command::new(self.bin.join("bench-raw"));
                c.arg(if kind == ServerKind::RawBulk {
                    "serve-bulk"
                } else {
                    "serve"
                });
                c
            }
            ServerKind::Tonic => {
                let mut c = Command::new(self.bin.join("bench-tonic"));
                c.arg("serve");
                c
            }
            ServerKind::PyrpcRust => {
                let mut c = Command::new(self.bin.join("bench-pyrpc"));
                c.arg("serve");
                c
            }
            ServerKind::PyrpcPython | ServerKind::PyrpcPythonSync => {
                let mut c = self.python("pyrpc_bench.py");
                c.arg("serve");
                c
            }
            ServerKind::Grpcio => {
                let mut c = self.python("grpc_echo.py");
                c.arg("serve");
                c
            }
            ServerKind::RawPython => {
                let mut c = self.python("raw_echo.py");
                c.arg("serve");
                c
            }
        };
        c.arg(addr);
        match kind {
            ServerKind::PyrpcPythonSync => {
                c.arg("--synchronous");
            }
            ServerKind::Grpcio => {
                c.arg("--gen").arg(&self.gen);
            }
            _ => {}
        }
        c
    }

    pub(super) fn client_command(&self, case: &Case, addr: &str) -> Command {
        let mut c = match case.client {
            ClientKind::Raw => Command::new(self.bin.join("bench-raw")),
            ClientKind::Tonic => Command::new(self.bin.join("bench-tonic")),
            ClientKind::PyrpcRust => Command::new(self.bin.join("bench-pyrpc")),
            ClientKind::PyrpcPython => self.python("pyrpc_bench.py"),
            ClientKind::Grpcio => self.python("grpc_echo.py"),
        };
        c.arg(case.verb).arg(addr).args(&case.args);
        if case.client == ClientKind::Grpcio {
            c.arg("--gen").arg(&self.gen);
        }
        c
    }

    /// Runs one repeat of `case`: server, readiness, client, RSS, kill.
    pub(super) fn run_case(&self, case: &Case, rep: usize) -> Result<Sample> {
        let tag = format!("{}-{}-{rep}", case.id, case.transport.name());
        // A TCP server binds port 0 and the port is read back from the
        // server's own sockets (`listening_port`) once it listens: no port
        // is chosen here that another process could take meanwhile.
        let (mut addr, mut probe) = match case.transport {
            Transport::Tcp | Transport::Tls => ("127.0.0.1:0".to_owned(), Probe::Tcp(0)),
            Transport::Unix => {
                let path = self.tmp.join(format!("{tag}.sock"));
                (format!("unix:{}", path.display()), Probe::Unix(path))
            }
        };
        let server_log = self.tmp.join(format!("{tag}.server.log"));
        let mut server = self.server_command(case.server, &addr);
        if case.transport == Transport::Tls {
            self.tls.set_env(&mut server, "PYRPC_BENCH_TLS");
        }
        server
            .stdin(Stdio::null())
            .stdout(File::create(&server_log)?)
            .stderr(File::create(server_log.with_extension("err"))?);
        let mut server = KillOnDrop(server.spawn().context("cannot start the server")?);
        let pid = server.0.id();
        let start = Instant::now();
        loop {
            if let Some(status) = server.0.try_wait()? {
                bail!(
                    "server exited with {status} before accepting connections\n{}",
                    tail(&server_log.with_extension("err"))
                );
            }
            if let Probe::Tcp(0) = probe {
                if let Some(port) = listening_port(pid) {
                    addr = format!("127.0.0.1:{port}");
                    probe = Probe::Tcp(port);
                }
            }
            if probe.connects() {
                break;
            }
            if start.elapsed() > READY_LIMIT {
                bail!("server not accepting connections after {READY_LIMIT:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(100));
        let server_idle = proc_status_kb(pid, "VmRSS");

        let out = self.tmp.join(format!("{tag}.client.out"));
        let err = self.tmp.join(format!("{tag}.client.err"));
        let mut client = self.client_command(case, &addr);
        if case.transport == Transport::Tls {
            self.tls.set_env(&mut client, "PYRPC_BENCH_TLS");
        }
        if case.verb == "conns" {
            client.arg("--server-pid").arg(pid.to_string());
        }
        client
            .stdin(Stdio::null())
            .stdout(File::create(&out)?)
            .stderr(File::create(&err)?);
        let cpu_before = proc_cpu_secs(pid);
        let mut client = KillOnDrop(client.spawn().context("cannot start the client")?);
        let start = Instant::now();
        let status = loop {
            if let Some(status) = client.0.try_wait()? {
                break status;
            }
            if start.elapsed() > case.limit {
                bail!(
                    "client still running after {:?}\n{}",
                    case.limit,
                    tail(&err)
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let server_peak = proc_status_kb(pid, "VmHWM");
        let server_cpu = proc_cpu_secs(pid).zip(cpu_before).map(|(a, b)| a - b);
        let server_alive = server.0.try_wait()?.is_none();
        drop(server);

        let text = std::fs::read_to_string(&out)?;
        let line = text
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with('{'))
            .with_context(|| format!("client ({status}) printed no result\n{}", tail(&err)))?;
        let fields: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(line).with_context(|| format!("client printed `{line}`"))?;
        if fields.get("ok") != Some(&serde_json::Value::Bool(true)) {
            let why = fields
                .get("error")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("no reason given");
            bail!("client reported failure: {why}\n{}", tail(&err));
        }
        if !status.success() {
            bail!("client exited with {status}\n{}", tail(&err));
        }
        if !server_alive {
            bail!(
                "server died during the case\n{}",
                tail(&server_log.with_extension("err"))
            );
        }
        let mut sample: Sample = fields
            .into_iter()
            .filter_map(|(k, v)| Some((k, v.as_f64()?)))
            .collect();
        sample.insert("server_idle_kb".into(), server_idle as f64);
        sample.insert("server_peak_kb".into(), server_peak as f64);
        if let Some(cpu) = server_cpu {
            sample.insert("server_cpu_s".into(), cpu);
            // Warm-up calls and the connection are counted too: a slight
            // overestimate, the same for every case.
            if let Some(calls) = sample.get("calls").copied().filter(|n| *n > 0.0) {
                sample.insert("server_cpu_us_per_call".into(), cpu * 1e6 / calls);
            }
        }
        Ok(sample)
    }
}

pub(super) enum Probe {
    Tcp(u16),
    Unix(PathBuf),
}

impl Probe {
    pub(super) fn connects(&self) -> bool {
        match self {
            // Port 0: the server's port is not known yet.
            Probe::Tcp(0) => false,
            Probe::Tcp(port) => std::net::TcpStream::connect_timeout(
                &std::net::SocketAddr::from(([127, 0, 0, 1], *port)),
                Duration::from_millis(200),
            )
            .is_ok(),
            Probe::Unix(p) => std::os::unix::net::UnixStream::connect(p).is_ok(),
        }
    }
}

/// The port of a TCP socket process `pid` listens on (the first found), from
/// `/proc`: the inodes of its open sockets (`/proc/<pid>/fd`) matched against
/// its network namespace's listening sockets (`/proc/<pid>/net/tcp{,6}`).
pub(super) fn listening_port(pid: u32) -> Option<u16> {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|target| {
            let t = target.to_string_lossy();
            Some(t.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    ["tcp", "tcp6"].iter().find_map(|table| {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).ok()?;
        text.lines().skip(1).find_map(|line| {
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            let f: Vec<&str> = line.split_whitespace().collect();
            let listening = f.get(3) == Some(&"0A");
            if !listening || !f.get(9).is_some_and(|i| inodes.contains(*i)) {
                return None;
            }
            let port = f.get(1)?.rsplit(':').next()?;
            u16::from_str_radix(port, 16).ok()
        })
    })
}

pub(super) fn proc_status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
                .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// The CPU time (user + system) process `pid` has used so far, in seconds,
/// from its own counters in `/proc/<pid>/stat`.
pub(super) fn proc_cpu_secs(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    cpu_secs_of_stat(&text, clock_ticks())
}

/// User + system seconds from the text of a `/proc/<pid>/stat`: fields 14
/// and 15, counted after the command name (which may hold spaces and
/// parentheses, so it is skipped up to its last `)`).
pub(super) fn cpu_secs_of_stat(stat: &str, ticks_per_sec: f64) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After the name: state is field 3, so utime (14) is the 12th here.
    let utime: f64 = fields.nth(11)?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / ticks_per_sec)
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux if that fails).
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// The last lines of a log, for error messages.
pub(super) fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(15);
    lines[from..].join("\n")
}
