//! `cargo xtask bench [--quick] [--case a,b]`: issue 6's benchmark, every number next to
//! the peers it is judged against, measured in the same run.
//!
//! Each case is a server process and a client process (the binaries of the
//! `bench/` crate, built in release mode, and the scripts of `bench/python/`
//! run by `target/venv`'s Python with the release build of `pyrpc`). The
//! client prints one JSON line (calls, seconds, p50/p99, MB/s, its own peak
//! RSS); xtask reads the server's RSS from `/proc/<pid>/status` right after
//! it accepts connections (idle) and once the client is done (`VmHWM`, peak).
//! Cases are interleaved: repeat 1 of every case, then repeat 2, ..., and
//! the table shows medians, so a slow minute on this shared machine hurts
//! every case a little rather than one case a lot. Goals are ratios of
//! numbers from the same run.
//!
//! Full mode writes `bench/RESULTS.md`, `bench/results.json` and
//! `bench/results.png` (keeping the hand-written analysis section of
//! RESULTS.md); `--quick` runs every case once with tiny counts (under a
//! minute) and writes to `target/bench/` instead, as does `--case a,b`
//! (also spelled `--only`), which runs only the cases whose id contains one
//! of the comma-separated strings (e.g. `--case raw,rust-seq`). All exit
//! non-zero when a case failed to run; none judges the numbers by its exit
//! code.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::certs;
use crate::python::{self, Venv};
use crate::util::{cargo, free_port, run as sh, step, KillOnDrop, TempDir};

/// What the bench installs into the venv (grpcio, grpcio-tools, matplotlib).
const REQUIREMENTS: &str = "bench/python/requirements.txt";
/// How long a server may take to accept connections.
const READY_LIMIT: Duration = Duration::from_secs(30);
const MIB: u64 = 1024 * 1024;
/// Marks the hand-written part of RESULTS.md, kept across runs.
const ANALYSIS_START: &str = "<!-- analysis:start -->";
const ANALYSIS_END: &str = "<!-- analysis:end -->";

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Transport {
    Tcp,
    Unix,
    /// TCP with TLS (certificates from [`certs`], given to both processes
    /// as `PYRPC_BENCH_TLS_*`).
    Tls,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Unix => "unix",
            Transport::Tls => "tls",
        }
    }
}

/// Which server process a case starts.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ServerKind {
    RawEcho,
    RawBulk,
    Tonic,
    PyrpcRust,
    PyrpcPython,
    PyrpcPythonSync,
    Grpcio,
}

/// Which client process a case runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ClientKind {
    Raw,
    Tonic,
    PyrpcRust,
    PyrpcPython,
    Grpcio,
}

/// What a case's numbers mean, for the table and the chart.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// Calls per second of small calls.
    Rate,
    /// Latency of nb calls.
    Nb,
    /// Large-value throughput and memory.
    Big,
    /// Many connections or calls at once.
    Scale,
}

#[derive(Clone, Debug)]
struct Case {
    /// Stable key, e.g. `rust-seq`; goals look cases up by it.
    id: String,
    /// What the table says.
    name: String,
    transport: Transport,
    kind: Kind,
    server: ServerKind,
    client: ClientKind,
    /// Client verb and options (the address goes between them).
    verb: &'static str,
    args: Vec<String>,
    /// The client's time limit.
    limit: Duration,
}

/// Counts and limits of one mode.
struct Plan {
    quick: bool,
    repeats: usize,
    secs: f64,
    warmup: usize,
    sizes: [u64; 2],
    big_counts: [usize; 2],
    nb_slow_count: usize,
    conns: usize,
    nb_many: usize,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                quick,
                repeats: 1,
                secs: 0.15,
                warmup: 10,
                sizes: [MIB, 4 * MIB],
                big_counts: [2, 1],
                nb_slow_count: 1,
                conns: 50,
                nb_many: 200,
            }
        } else {
            Plan {
                quick,
                repeats: 3,
                secs: 2.0,
                warmup: 200,
                sizes: [100 * MIB, 500 * MIB],
                big_counts: [5, 2],
                nb_slow_count: 5,
                conns: 1000,
                nb_many: 10_000,
            }
        }
    }

    fn cases(&self) -> Vec<Case> {
        use ClientKind as C;
        use ServerKind as S;
        let rate = [
            "--secs".to_owned(),
            self.secs.to_string(),
            "--warmup".to_owned(),
            self.warmup.to_string(),
        ];
        let with = |extra: &[&str]| -> Vec<String> {
            rate.iter()
                .cloned()
                .chain(extra.iter().map(|s| s.to_string()))
                .collect()
        };
        let limit = Duration::from_secs(if self.quick { 30 } else { 120 });
        let mut cases = Vec::new();
        for t in [Transport::Tcp, Transport::Unix] {
            let mut add = |id: &str, name: &str, kind, server, client, verb, args: Vec<String>| {
                cases.push(Case {
                    id: id.to_owned(),
                    name: name.to_owned(),
                    transport: t,
                    kind,
                    server,
                    client,
                    verb,
                    args,
                    limit,
                })
            };
            let nb_slow = [
                "--sleep".to_owned(),
                "0.2".to_owned(),
                "--tick".to_owned(),
                "1".to_owned(),
                "--count".to_owned(),
                self.nb_slow_count.to_string(),
            ];
            add(
                "raw",
                "raw Rust ping-pong (limit)",
                Kind::Rate,
                S::RawEcho,
                C::Raw,
                "pingpong",
                with(&[]),
            );
            add(
                "tonic",
                "tonic unary echo (Rust gRPC)",
                Kind::Rate,
                S::Tonic,
                C::Tonic,
                "echo",
                with(&[]),
            );
            add(
                "rust-seq",
                "pyrpc Rust seq echo",
                Kind::Rate,
                S::PyrpcRust,
                C::PyrpcRust,
                "seq",
                with(&[]),
            );
            add(
                "rust-blocking-seq",
                "pyrpc Rust blocking::Client seq echo",
                Kind::Rate,
                S::PyrpcRust,
                C::PyrpcRust,
                "blocking-seq",
                with(&[]),
            );
            add(
                "rust-inflight64",
                "pyrpc Rust 64 in flight",
                Kind::Rate,
                S::PyrpcRust,
                C::PyrpcRust,
                "inflight",
                with(&["--conc", "64"]),
            );
            add(
                "grpcio",
                "grpcio unary echo (Python gRPC)",
                Kind::Rate,
                S::Grpcio,
                C::Grpcio,
                "echo",
                with(&[]),
            );
            add(
                "py-seq",
                "pyrpc Python seq echo(1, foo='foo')",
                Kind::Rate,
                S::PyrpcPython,
                C::PyrpcPython,
                "seq",
                with(&[]),
            );
            add(
                "py-seq-sync",
                "pyrpc Python seq echo, synchronous=True server",
                Kind::Rate,
                S::PyrpcPythonSync,
                C::PyrpcPython,
                "seq",
                with(&[]),
            );
            add(
                "py-threads8",
                "pyrpc Python 8 threads, one Client",
                Kind::Rate,
                S::PyrpcPython,
                C::PyrpcPython,
                "threads",
                with(&["--threads", "8"]),
            );
            add(
                "rust-nb-fast",
                "pyrpc Rust nb_echo (p50 vs echo p50)",
                Kind::Nb,
                S::PyrpcRust,
                C::PyrpcRust,
                "nb-fast",
                with(&[]),
            );
            add(
                "py-nb-fast",
                "pyrpc Python nb_echo (p50 vs echo p50)",
                Kind::Nb,
                S::PyrpcPython,
                C::PyrpcPython,
                "nb-fast",
                with(&[]),
            );
            add(
                "rust-nb-200ms",
                "pyrpc Rust nb 200 ms call, tick 1 s",
                Kind::Nb,
                S::PyrpcRust,
                C::PyrpcRust,
                "nb-slow",
                nb_slow.to_vec(),
            );
            add(
                "py-nb-200ms",
                "pyrpc Python nb 200 ms call, tick 1 s",
                Kind::Nb,
                S::PyrpcPython,
                C::PyrpcPython,
                "nb-slow",
                nb_slow.to_vec(),
            );
            for (size, count) in self.sizes.iter().zip(self.big_counts) {
                let label = format!("{} MiB", size / MIB);
                let args = vec![
                    "--size".to_owned(),
                    size.to_string(),
                    "--count".to_owned(),
                    count.to_string(),
                ];
                for (id, name, server, client, verb) in [
                    (
                        "raw-bulk",
                        "raw Rust transfer (limit)",
                        S::RawBulk,
                        C::Raw,
                        "bulk",
                    ),
                    (
                        "rust-big",
                        "pyrpc Rust bytes return",
                        S::PyrpcRust,
                        C::PyrpcRust,
                        "big",
                    ),
                    (
                        "py-big",
                        "pyrpc Python bytes return",
                        S::PyrpcPython,
                        C::PyrpcPython,
                        "big",
                    ),
                ] {
                    cases.push(Case {
                        id: format!("{id}-{}", size / MIB),
                        name: format!("{name}, {label}"),
                        transport: t,
                        kind: Kind::Big,
                        server,
                        client,
                        verb,
                        args: args.clone(),
                        limit,
                    });
                }
            }
        }
        self.tls_cases(&mut cases, &with(&[]), limit);
        let n = self.conns.to_string();
        let conns = vec!["--n".to_owned(), n, "--calls".to_owned(), "10".to_owned()];
        for (id, name, server) in [
            ("rust-conns", "pyrpc Rust server", S::PyrpcRust),
            ("py-conns", "pyrpc Python server", S::PyrpcPython),
        ] {
            cases.push(Case {
                id: id.to_owned(),
                name: format!("{} Rust clients at once -> {name}", self.conns),
                transport: Transport::Tcp,
                kind: Kind::Scale,
                server,
                client: C::PyrpcRust,
                verb: "conns",
                args: conns.clone(),
                limit,
            });
        }
        cases.push(Case {
            id: "rust-nb-many".to_owned(),
            name: format!("{} nb calls in flight (sleep 0.5 s), Rust", self.nb_many),
            transport: Transport::Tcp,
            kind: Kind::Scale,
            server: S::PyrpcRust,
            client: C::PyrpcRust,
            verb: "nb-many",
            args: vec![
                "--n".to_owned(),
                self.nb_many.to_string(),
                "--sleep".to_owned(),
                if self.quick { "0.1" } else { "0.5" }.to_owned(),
            ],
            limit,
        });
        cases
    }
}

impl Plan {
    /// Issue 13's cases: Rust seq echo and the first large return over TLS
    /// (their goals compare them with the same cases over plain TCP), and
    /// honest TLS calls during a flood of junk TLS handshakes.
    fn tls_cases(&self, cases: &mut Vec<Case>, rate: &[String], limit: Duration) {
        let case = |id: String, name: String, kind, verb, args: Vec<String>| Case {
            id,
            name,
            transport: Transport::Tls,
            kind,
            server: ServerKind::PyrpcRust,
            client: ClientKind::PyrpcRust,
            verb,
            args,
            limit,
        };
        cases.push(case(
            "rust-seq".into(),
            "pyrpc Rust seq echo".into(),
            Kind::Rate,
            "seq",
            rate.to_vec(),
        ));
        let (size, count) = (self.sizes[0], self.big_counts[0]);
        cases.push(case(
            format!("rust-big-{}", size / MIB),
            format!("pyrpc Rust bytes return, {} MiB", size / MIB),
            Kind::Big,
            "big",
            vec![
                "--size".into(),
                size.to_string(),
                "--count".into(),
                count.to_string(),
            ],
        ));
        cases.push(case(
            "rust-tls-flood".into(),
            "pyrpc Rust echo during a junk TLS handshake flood (12 flooders)".into(),
            Kind::Scale,
            "tls-flood",
            vec!["--secs".into(), self.secs.max(1.0).to_string()],
        ));
    }
}

/// Issue 13's goals: TLS against plain TCP, and the flood's p99.
fn tls_goals(summaries: &[Summary], plan: &Plan, out: &mut Vec<Goal>) {
    let find = |id: &str, t: Transport| {
        summaries
            .iter()
            .find(|s| s.case.id == id && s.case.transport == t && s.ok > 0)
    };
    // Paired per repeat as in `goals`, across transports.
    let cross = |id: &str, key: &str| -> (Option<f64>, String) {
        let (Some(tls), Some(tcp)) = (find(id, Transport::Tls), find(id, Transport::Tcp)) else {
            return (None, "did not run".into());
        };
        let ratios: Vec<f64> = tls
            .per_rep
            .iter()
            .zip(&tcp.per_rep)
            .filter_map(|(x, y)| {
                let (x, y) = (x.as_ref()?.get(key)?, y.as_ref()?.get(key)?);
                (*y > 0.0).then(|| x / y)
            })
            .collect();
        let detail = format!(
            "{id} {key} tls / tcp: per repeat {}; medians {} / {}",
            ratios
                .iter()
                .map(|r| fmt_num(*r))
                .collect::<Vec<_>>()
                .join(", "),
            tls.get(key).map_or("-".into(), fmt_num),
            tcp.get(key).map_or("-".into(), fmt_num)
        );
        ((!ratios.is_empty()).then(|| median(ratios)), detail)
    };
    let (value, detail) = cross("rust-seq", "rate");
    out.push(Goal {
        name: "Rust TLS seq echo >= 0.7x plain TCP".into(),
        detail,
        value,
        target: 0.7,
        higher_is_better: true,
    });
    let mib = plan.sizes[0] / MIB;
    let (value, detail) = cross(&format!("rust-big-{mib}"), "mbps");
    out.push(Goal {
        name: format!("Rust {mib} MiB return over TLS >= 0.5x plain TCP MB/s"),
        detail,
        value,
        target: 0.5,
        higher_is_better: true,
    });
    let flood = find("rust-tls-flood", Transport::Tls);
    let p99 = flood.and_then(|s| s.get("p99_us")).map(|us| us / 1000.0);
    out.push(Goal {
        name: "honest TLS calls' p99 <= 100 ms during a junk TLS handshake flood".into(),
        detail: flood.map_or("did not run".into(), |s| {
            format!(
                "p50 {} ms, p99 {} ms, {} junk handshakes",
                s.get("p50_us").map_or("-".into(), |v| fmt_num(v / 1000.0)),
                p99.map_or("-".into(), fmt_num),
                s.get("junk_handshakes").map_or("-".into(), fmt_num)
            )
        }),
        value: p99,
        target: 100.0,
        higher_is_better: false,
    });
}

// ===== a flat JSON object =====

#[derive(Clone, Debug, PartialEq)]
enum Json {
    Num(f64),
    Bool(bool),
    Str(String),
    Null,
}

/// Parses one flat JSON object (the clients print nothing nested).
fn parse_flat_json(line: &str) -> Result<BTreeMap<String, Json>> {
    let mut chars = line.trim().chars().peekable();
    let mut out = BTreeMap::new();
    let skip_ws = |c: &mut std::iter::Peekable<std::str::Chars<'_>>| {
        while c.peek().is_some_and(|ch| ch.is_whitespace()) {
            c.next();
        }
    };
    fn string(c: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<String> {
        if c.next() != Some('"') {
            bail!("expected a string");
        }
        let mut s = String::new();
        loop {
            match c.next() {
                None => bail!("unterminated string"),
                Some('"') => return Ok(s),
                Some('\\') => match c.next() {
                    Some('n') => s.push('\n'),
                    Some('t') => s.push('\t'),
                    Some('r') => s.push('\r'),
                    Some('u') => {
                        let hex: String = c.by_ref().take(4).collect();
                        let code = u32::from_str_radix(&hex, 16)?;
                        s.push(char::from_u32(code).unwrap_or('?'));
                    }
                    Some(other) => s.push(other),
                    None => bail!("unterminated escape"),
                },
                Some(ch) => s.push(ch),
            }
        }
    }
    if chars.next() != Some('{') {
        bail!("not a JSON object");
    }
    loop {
        skip_ws(&mut chars);
        match chars.peek() {
            Some('}') => break,
            Some(',') => {
                chars.next();
                continue;
            }
            _ => {}
        }
        let key = string(&mut chars)?;
        skip_ws(&mut chars);
        if chars.next() != Some(':') {
            bail!("expected `:` after {key}");
        }
        skip_ws(&mut chars);
        let value = if chars.peek() == Some(&'"') {
            Json::Str(string(&mut chars)?)
        } else {
            let mut word = String::new();
            while let Some(&ch) = chars.peek() {
                if ch == ',' || ch == '}' || ch.is_whitespace() {
                    break;
                }
                word.push(ch);
                chars.next();
            }
            match word.as_str() {
                "true" => Json::Bool(true),
                "false" => Json::Bool(false),
                "null" | "NaN" | "Infinity" | "-Infinity" => Json::Null,
                w => Json::Num(w.parse().with_context(|| format!("bad number `{w}`"))?),
            }
        };
        out.insert(key, value);
    }
    Ok(out)
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// ===== running cases =====

/// What one run of one case measured: the client's fields plus the server's
/// `server_idle_kb` and `server_peak_kb`.
type Sample = BTreeMap<String, f64>;

struct Env {
    root: PathBuf,
    venv: Venv,
    bin: PathBuf,
    gen: PathBuf,
    tmp: PathBuf,
    /// Certificates of the `tls` cases.
    tls: certs::Files,
}

/// Removes the run's socket directory however the run ends.
impl Env {
    fn python(&self, script: &str) -> Command {
        let mut c = self.venv.command(self.venv.python());
        c.arg(self.root.join("bench/python").join(script))
            .current_dir(self.root.join("bench/python"));
        c
    }

    fn server_command(&self, kind: ServerKind, addr: &str) -> Command {
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

    fn client_command(&self, case: &Case, addr: &str) -> Command {
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
    fn run_case(&self, case: &Case, rep: usize) -> Result<Sample> {
        let tag = format!("{}-{}-{rep}", case.id, case.transport.name());
        let (addr, probe) = match case.transport {
            Transport::Tcp | Transport::Tls => {
                let port = free_port()?;
                (format!("127.0.0.1:{port}"), Probe::Tcp(port))
            }
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
        let server_alive = server.0.try_wait()?.is_none();
        drop(server);

        let text = std::fs::read_to_string(&out)?;
        let line = text
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with('{'))
            .with_context(|| format!("client ({status}) printed no result\n{}", tail(&err)))?;
        let fields = parse_flat_json(line)?;
        if fields.get("ok") != Some(&Json::Bool(true)) {
            let why = match fields.get("error") {
                Some(Json::Str(s)) => s.clone(),
                _ => "no reason given".to_owned(),
            };
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
            .filter_map(|(k, v)| match v {
                Json::Num(n) => Some((k, n)),
                _ => None,
            })
            .collect();
        sample.insert("server_idle_kb".into(), server_idle as f64);
        sample.insert("server_peak_kb".into(), server_peak as f64);
        Ok(sample)
    }
}

enum Probe {
    Tcp(u16),
    Unix(PathBuf),
}

impl Probe {
    fn connects(&self) -> bool {
        match self {
            Probe::Tcp(port) => std::net::TcpStream::connect_timeout(
                &std::net::SocketAddr::from(([127, 0, 0, 1], *port)),
                Duration::from_millis(200),
            )
            .is_ok(),
            Probe::Unix(p) => std::os::unix::net::UnixStream::connect(p).is_ok(),
        }
    }
}

fn proc_status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
                .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// The last lines of a log, for error messages.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(15);
    lines[from..].join("\n")
}

// ===== results =====

/// The medians of one case's successful repeats.
struct Summary {
    case: Case,
    runs: usize,
    ok: usize,
    errors: Vec<String>,
    median: Sample,
    /// Smallest and largest `rate` of the repeats.
    rate_range: (f64, f64),
    /// Each repeat's sample (`None` where it failed), for ratios paired
    /// within a repeat.
    per_rep: Vec<Option<Sample>>,
}

impl Summary {
    fn get(&self, k: &str) -> Option<f64> {
        self.median.get(k).copied()
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn summarize(case: Case, samples: &[Result<Sample, String>]) -> Summary {
    let ok: Vec<&Sample> = samples.iter().filter_map(|s| s.as_ref().ok()).collect();
    let mut keys: Vec<&String> = ok.iter().flat_map(|s| s.keys()).collect();
    keys.sort();
    keys.dedup();
    let median = keys
        .into_iter()
        .map(|k| {
            let vals = ok.iter().filter_map(|s| s.get(k).copied()).collect();
            (k.clone(), median(vals))
        })
        .collect();
    let rates: Vec<f64> = ok.iter().filter_map(|s| s.get("rate").copied()).collect();
    let rate_range = (
        rates.iter().copied().fold(f64::INFINITY, f64::min),
        rates.iter().copied().fold(0.0, f64::max),
    );
    Summary {
        case,
        runs: samples.len(),
        ok: ok.len(),
        errors: samples
            .iter()
            .filter_map(|s| s.as_ref().err().cloned())
            .collect(),
        median,
        rate_range,
        per_rep: samples.iter().map(|s| s.as_ref().ok().cloned()).collect(),
    }
}

/// One goal of issue 6, judged on this run's medians.
struct Goal {
    name: String,
    /// How the value was computed, with the numbers.
    detail: String,
    /// The measured value (a ratio, or milliseconds) and its target.
    value: Option<f64>,
    target: f64,
    higher_is_better: bool,
}

impl Goal {
    fn met(&self) -> Option<bool> {
        let v = self.value?;
        Some(if self.higher_is_better {
            v >= self.target
        } else {
            v <= self.target
        })
    }

    /// measured / target, oriented so that >= 1 is met (for the chart).
    fn score(&self) -> Option<f64> {
        let v = self.value?;
        Some(if self.higher_is_better {
            v / self.target
        } else if v <= 0.0 {
            10.0
        } else {
            self.target / v
        })
    }
}

fn goals(summaries: &[Summary], plan: &Plan) -> Vec<Goal> {
    let find = |id: &str, t: Transport| {
        summaries
            .iter()
            .find(|s| s.case.id == id && s.case.transport == t && s.ok > 0)
    };
    let val = |id: &str, t: Transport, k: &str| find(id, t).and_then(|s| s.get(k));
    let mut out = Vec::new();
    // A ratio of two cases is taken within each repeat (the two ran a few
    // seconds apart) and the median of those is judged, so a burst of load
    // from elsewhere on the machine skews one pair, not the verdict.
    let paired = |a: (&str, &str), b: (&str, &str), t: Transport| -> (Option<f64>, String) {
        let (Some(sa), Some(sb)) = (find(a.0, t), find(b.0, t)) else {
            return (None, "did not run".into());
        };
        let ratios: Vec<f64> = sa
            .per_rep
            .iter()
            .zip(&sb.per_rep)
            .filter_map(|(x, y)| {
                let (x, y) = (x.as_ref()?.get(a.1)?, y.as_ref()?.get(b.1)?);
                (*y > 0.0).then(|| x / y)
            })
            .collect();
        let detail = format!(
            "{} {} / {} {}: per repeat {}; medians {} / {}",
            a.0,
            a.1,
            b.0,
            b.1,
            ratios
                .iter()
                .map(|r| fmt_num(*r))
                .collect::<Vec<_>>()
                .join(", "),
            sa.get(a.1).map_or("-".into(), fmt_num),
            sb.get(b.1).map_or("-".into(), fmt_num)
        );
        ((!ratios.is_empty()).then(|| median(ratios)), detail)
    };
    let mut ratio = |name: String, a: (&str, &str), b: (&str, &str), t: Transport, target: f64| {
        let (value, detail) = paired(a, b, t);
        out.push(Goal {
            name,
            detail,
            value,
            target,
            higher_is_better: true,
        });
    };
    for t in [Transport::Tcp, Transport::Unix] {
        let tn = t.name();
        ratio(
            format!("Rust seq >= 0.85x raw ({tn})"),
            ("rust-seq", "rate"),
            ("raw", "rate"),
            t,
            0.85,
        );
        ratio(
            format!("Rust seq >= 2x tonic ({tn})"),
            ("rust-seq", "rate"),
            ("tonic", "rate"),
            t,
            2.0,
        );
        ratio(
            format!("Python seq >= 0.7x raw ({tn})"),
            ("py-seq", "rate"),
            ("raw", "rate"),
            t,
            0.7,
        );
        ratio(
            format!("Python seq >= 4x grpcio ({tn})"),
            ("py-seq", "rate"),
            ("grpcio", "rate"),
            t,
            4.0,
        );
        ratio(
            format!("Rust 64 in flight >= 4x seq ({tn})"),
            ("rust-inflight64", "rate"),
            ("rust-seq", "rate"),
            t,
            4.0,
        );
        ratio(
            format!("Python 8 threads >= 2x seq ({tn})"),
            ("py-threads8", "rate"),
            ("py-seq", "rate"),
            t,
            2.0,
        );
    }
    for t in [Transport::Tcp, Transport::Unix] {
        let tn = t.name();
        for (id, who) in [("rust-nb-fast", "Rust"), ("py-nb-fast", "Python")] {
            let (nb, echo) = (val(id, t, "p50_us"), val(id, t, "echo_p50_us"));
            out.push(Goal {
                name: format!("{who} nb_ fast p50 <= 3x echo p50 ({tn})"),
                detail: format!(
                    "nb p50 {} us / echo p50 {} us",
                    nb.map_or("-".into(), fmt_num),
                    echo.map_or("-".into(), fmt_num)
                ),
                value: nb.zip(echo).filter(|(_, e)| *e > 0.0).map(|(n, e)| n / e),
                target: 3.0,
                higher_is_better: false,
            });
        }
        for (id, who) in [("rust-nb-200ms", "Rust"), ("py-nb-200ms", "Python")] {
            let over = val(id, t, "overshoot_ms");
            out.push(Goal {
                name: format!("{who} nb 200 ms call (tick 1 s) done within 10 ms ({tn})"),
                detail: format!(
                    "worst of {} calls: {} ms after the 200 ms",
                    plan.nb_slow_count,
                    over.map_or("-".into(), fmt_num)
                ),
                value: over,
                target: 10.0,
                higher_is_better: false,
            });
        }
    }
    for t in [Transport::Tcp, Transport::Unix] {
        let tn = t.name();
        for size in plan.sizes {
            let mib = size / MIB;
            for (prefix, who) in [("rust-big", "Rust"), ("py-big", "Python")] {
                let id = format!("{prefix}-{mib}");
                let raw_id = format!("raw-bulk-{mib}");
                let (value, detail) = paired((&id, "mbps"), (&raw_id, "mbps"), t);
                out.push(Goal {
                    name: format!("{who} {mib} MiB return >= 0.7x raw MB/s ({tn})"),
                    detail,
                    value,
                    target: 0.7,
                    higher_is_better: true,
                });
                let payload_kb = size as f64 / 1024.0;
                for (side, peak, idle) in [
                    ("client", "rss_peak_kb", "rss_idle_kb"),
                    ("server", "server_peak_kb", "server_idle_kb"),
                ] {
                    let (p, i) = (val(&id, t, peak), val(&id, t, idle));
                    out.push(Goal {
                        name: format!(
                            "{who} {mib} MiB {side} peak RSS above idle <= 1.5x payload ({tn})"
                        ),
                        detail: format!(
                            "({} - {} MiB) / {} MiB",
                            p.map_or("-".into(), |v| fmt_num(v / 1024.0)),
                            i.map_or("-".into(), |v| fmt_num(v / 1024.0)),
                            mib
                        ),
                        value: p.zip(i).map(|(p, i)| (p - i) / payload_kb),
                        target: 1.5,
                        higher_is_better: false,
                    });
                }
            }
        }
    }
    for id in ["rust-conns", "py-conns"] {
        let s = find(id, Transport::Tcp);
        out.push(Goal {
            name: format!(
                "{} connections calling at once all succeed ({id})",
                plan.conns
            ),
            detail: s.map_or("did not run".into(), |s| {
                format!(
                    "{}/{} repeats ok; idle memory per connection: server {} KiB, client {} KiB",
                    s.ok,
                    s.runs,
                    s.get("server_kb_per_conn").map_or("-".into(), fmt_num),
                    s.get("client_kb_per_conn").map_or("-".into(), fmt_num)
                )
            }),
            value: s.map(|s| if s.ok == s.runs { 1.0 } else { 0.0 }),
            target: 1.0,
            higher_is_better: true,
        });
    }
    // "Bounded": at most 16 KiB per call in flight on either side, i.e. the
    // memory grows with the calls by a small constant and nothing else.
    let s = find("rust-nb-many", Transport::Tcp);
    let per_call = s.and_then(|s| {
        let n = s.get("in_flight")?;
        let client = s.get("rss_peak_kb")? - s.get("rss_idle_kb")?;
        let server = s.get("server_peak_kb")? - s.get("server_idle_kb")?;
        Some((client / n, server / n, s.ok == s.runs))
    });
    out.push(Goal {
        name: format!(
            "{} nb calls in flight, <= 16 KiB per call each side",
            plan.nb_many
        ),
        detail: per_call.map_or("did not run".into(), |(c, sv, all)| {
            format!(
                "all ok: {all}; peak above idle per call: client {} KiB, server {} KiB",
                fmt_num(c),
                fmt_num(sv)
            )
        }),
        value: per_call.map(|(c, sv, all)| if all { c.max(sv) } else { f64::INFINITY }),
        target: 16.0,
        higher_is_better: false,
    });
    tls_goals(summaries, plan, &mut out);
    out
}

fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn opt(v: Option<f64>, scale: f64) -> String {
    v.map_or("".into(), |v| fmt_num(v / scale))
}

fn table(summaries: &[Summary]) -> String {
    let mut s = String::new();
    s.push_str("| case | transport | calls/s | rate min-max | p50 µs | p99 µs | MB/s | client peak MiB | server idle MiB | server peak MiB | runs ok |\n");
    s.push_str("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
    for x in summaries {
        let rate = x.get("rate");
        let range = if x.ok > 0 {
            format!("{}-{}", fmt_num(x.rate_range.0), fmt_num(x.rate_range.1))
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {}/{} |",
            x.case.name,
            x.case.transport.name(),
            opt(rate, 1.0),
            range,
            opt(x.get("p50_us"), 1.0),
            opt(x.get("p99_us"), 1.0),
            opt(x.get("mbps"), 1.0),
            opt(x.get("rss_peak_kb"), 1024.0),
            opt(x.get("server_idle_kb"), 1024.0),
            opt(x.get("server_peak_kb"), 1024.0),
            x.ok,
            x.runs
        );
    }
    s
}

fn goals_table(goals: &[Goal]) -> String {
    let mut s =
        String::from("| goal | measured | value | target | verdict |\n|---|---|--:|--:|---|\n");
    for g in goals {
        let verdict = match g.met() {
            Some(true) => "PASS",
            Some(false) => "MISS",
            None => "NOT RUN",
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} {} | {verdict} |",
            g.name,
            g.detail,
            g.value.map_or("-".into(), fmt_num),
            if g.higher_is_better { ">=" } else { "<=" },
            fmt_num(g.target)
        );
    }
    s
}

fn results_json(title: &str, summaries: &[Summary], goals: &[Goal]) -> String {
    let mut s = format!("{{\"title\": {},\n\"cases\": [\n", json_str(title));
    for (i, x) in summaries.iter().enumerate() {
        let kind = match x.case.kind {
            Kind::Rate => "rate",
            Kind::Nb => "nb",
            Kind::Big => "big",
            Kind::Scale => "scale",
        };
        let _ = write!(
            s,
            "{{\"id\": {}, \"name\": {}, \"transport\": {}, \"kind\": {}, \"ok\": {}",
            json_str(&x.case.id),
            json_str(&x.case.name),
            json_str(x.case.transport.name()),
            json_str(kind),
            x.ok == x.runs && x.ok > 0
        );
        for (k, v) in &x.median {
            let _ = write!(
                s,
                ", {}: {}",
                json_str(k),
                if v.is_finite() { *v } else { 0.0 }
            );
        }
        s.push('}');
        s.push_str(if i + 1 < summaries.len() { ",\n" } else { "\n" });
    }
    s.push_str("],\n\"goals\": [\n");
    for (i, g) in goals.iter().enumerate() {
        let _ = write!(
            s,
            "{{\"name\": {}, \"detail\": {}, \"value\": {}, \"target\": {}, \"higher_is_better\": {}, \"met\": {}, \"score\": {}}}",
            json_str(&g.name),
            json_str(&g.detail),
            g.value.filter(|v| v.is_finite()).map_or("null".into(), |v| v.to_string()),
            g.target,
            g.higher_is_better,
            g.met().unwrap_or(false),
            g.score().filter(|v| v.is_finite()).map_or("null".into(), |v| v.to_string()),
        );
        s.push_str(if i + 1 < goals.len() { ",\n" } else { "\n" });
    }
    s.push_str("]}\n");
    s
}

/// One line about the machine and the tree, for the report's header.
fn describe_run(root: &Path, plan: &Plan, load_before: &str, elapsed: Duration) -> String {
    let out = |cmd: &mut Command| {
        cmd.current_dir(root)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    let date = out(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]));
    let rev = out(Command::new("git").args(["describe", "--always", "--dirty"]));
    let kernel = out(Command::new("uname").arg("-r"));
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("model name")?
                    .split(':')
                    .nth(1)
                    .map(|s| s.trim().to_owned())
            })
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load_after = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!(
        "{date}, tree {rev}, {cores} cores ({cpu}), Linux {kernel}; {} repeat(s) per case, interleaved, {} s per rate loop; load average before {} / after {}; took {:.0?}",
        plan.repeats,
        plan.secs,
        load_before.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        load_after.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        elapsed
    )
}

/// The hand-written section of an existing RESULTS.md, markers included.
fn kept_analysis(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    match (text.find(ANALYSIS_START), text.find(ANALYSIS_END)) {
        (Some(a), Some(b)) if a < b => text[a..b + ANALYSIS_END.len()].to_owned(),
        _ => format!(
            "{ANALYSIS_START}\n## Analysis\n\n(Hand-written: what limits each miss and what would fix it. \
             `cargo xtask bench` keeps this section when it rewrites the file.)\n{ANALYSIS_END}"
        ),
    }
}

// ===== the task =====

/// `cargo xtask bench [--quick]`.
pub(crate) fn run(root: &Path, args: &[String]) -> Result<()> {
    if crate::bench_stream::wanted(args) {
        return crate::bench_stream::run(root);
    }
    let quick = args.iter().any(|a| a == "--quick");
    // `--case a,b` (or `--only a,b`): run only the cases whose id contains
    // one of the comma-separated strings; the results then go to
    // `target/bench/`, never over `bench/RESULTS.md`.
    let only: Option<Vec<String>> = args
        .iter()
        .position(|a| a == "--only" || a == "--case")
        .and_then(|i| args.get(i + 1))
        .map(|s| s.split(',').map(str::to_owned).collect());
    let plan = Plan::new(quick);
    let started = Instant::now();

    step("building the bench binaries (release)");
    sh(
        cargo().args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "pyrpc-bench",
            "--bins",
        ]),
        root,
    )?;
    let mut cases = plan.cases();
    if let Some(only) = &only {
        cases.retain(|c| only.iter().any(|o| c.id.contains(o.as_str())));
    }
    // A run of Rust cases only (`--case rust-seq`) needs no Python at all.
    let needs_python = cases.iter().any(|c| {
        matches!(
            c.server,
            ServerKind::PyrpcPython | ServerKind::PyrpcPythonSync | ServerKind::Grpcio
        ) || matches!(c.client, ClientKind::PyrpcPython | ClientKind::Grpcio)
    });
    let venv = if needs_python {
        let venv = python::setup(root)?;
        venv.install_requirements(
            root,
            REQUIREMENTS,
            ".bench-installed",
            "installing grpcio, grpcio-tools and matplotlib into target/venv",
        )?;
        venv
    } else {
        python::Venv::existing(root)
    };
    let out_dir = if quick || only.is_some() {
        root.join("target/bench")
    } else {
        root.join("bench")
    };
    let gen = root.join("target/bench/gen");
    std::fs::create_dir_all(&gen)?;
    std::fs::create_dir_all(&out_dir)?;
    if needs_python {
        step("generating the grpcio echo stubs from bench/proto/echo.proto");
        sh(
            venv.command(venv.python())
                .args(["-m", "grpc_tools.protoc", "-Ibench/proto"])
                .arg(format!("--python_out={}", gen.display()))
                .arg(format!("--grpc_python_out={}", gen.display()))
                .arg("bench/proto/echo.proto"),
            root,
        )?;
    }

    // Short paths: a Unix socket path must fit in 108 bytes.
    let _tmp_guard = TempDir::new("pyrpc-bench")?;
    let tmp = _tmp_guard.path().to_path_buf();
    let tls = certs::write(&tmp.join("tls"))?;
    let env = Env {
        root: root.to_path_buf(),
        venv,
        bin: root.join("target/release"),
        gen,
        tmp,
        tls,
    };

    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut samples: Vec<Vec<Result<Sample, String>>> = vec![Vec::new(); cases.len()];
    for rep in 0..plan.repeats {
        step(&format!(
            "repeat {}/{} of {} cases",
            rep + 1,
            plan.repeats,
            cases.len()
        ));
        for (i, case) in cases.iter().enumerate() {
            let t = Instant::now();
            let r = env.run_case(case, rep).map_err(|e| format!("{e:#}"));
            match &r {
                Ok(s) => println!(
                    "  {:<58} {:<4} {:>10} calls/s {:>9} MB/s  ({:.1?})",
                    case.name,
                    case.transport.name(),
                    s.get("rate").map_or("-".into(), |v| fmt_num(*v)),
                    s.get("mbps").map_or("-".into(), |v| fmt_num(*v)),
                    t.elapsed()
                ),
                Err(e) => println!(
                    "  {:<58} {:<4} FAILED: {}",
                    case.name,
                    case.transport.name(),
                    e.lines().next().unwrap_or("")
                ),
            }
            samples[i].push(r);
        }
    }

    let summaries: Vec<Summary> = cases
        .into_iter()
        .zip(&samples)
        .map(|(c, s)| summarize(c, s))
        .collect();
    let goals = goals(&summaries, &plan);
    let failed: Vec<&Summary> = summaries.iter().filter(|s| s.ok < s.runs).collect();

    let header = describe_run(root, &plan, &load_before, started.elapsed());
    let cases_md = table(&summaries);
    let goals_md = goals_table(&goals);
    step("results");
    println!("{header}\n\n{cases_md}\n{goals_md}");
    let met = goals.iter().filter(|g| g.met() == Some(true)).count();
    println!("{met} of {} goals met", goals.len());

    let json_path = out_dir.join("results.json");
    let png_path = out_dir.join("results.png");
    let title = if quick {
        "pyrpc bench --quick (smoke run; numbers mean nothing)".to_owned()
    } else {
        format!("pyrpc bench: {}", header.split(',').next().unwrap_or(""))
    };
    std::fs::write(&json_path, results_json(&title, &summaries, &goals))?;
    if needs_python {
        step("drawing the chart");
        sh(env.python("chart.py").arg(&json_path).arg(&png_path), root)?;
    }

    let md_path = out_dir.join("RESULTS.md");
    let mut md = String::new();
    let _ =
        writeln!(
        md,
        "# pyrpc benchmark results{}\n\nWritten by `cargo xtask bench{}` (issue 6). {header}.\n\n\
         Every case runs its server and its client in separate processes on this machine \
         (loopback TCP or a Unix socket); numbers are medians of the repeats. Rust clients run \
         on a current-thread tokio runtime; servers on their default runtimes. \"peak\" is \
         `VmHWM`, \"idle\" is `VmRSS` before the measured calls (the server's right after it \
         accepts connections). A goal comparing two cases takes their ratio within each repeat \
         and judges the median of those. Chart: `results.png`; raw medians: `results.json`.\n",
        if quick { " (quick smoke run: the numbers mean nothing)" } else { "" },
        if quick { " --quick" } else { "" }
    );
    let _ = writeln!(
        md,
        "## Goals\n\n{met} of {} met in this run.\n\n{goals_md}",
        goals.len()
    );
    let _ = writeln!(md, "## Cases\n\n{cases_md}");
    if !failed.is_empty() {
        md.push_str("## Failed runs\n\n");
        for f in &failed {
            for e in &f.errors {
                let _ = writeln!(
                    md,
                    "- {} ({}): {}",
                    f.case.name,
                    f.case.transport.name(),
                    e.lines().next().unwrap_or("")
                );
            }
        }
        md.push('\n');
    }
    md.push_str(&kept_analysis(&md_path));
    md.push('\n');
    std::fs::write(&md_path, md)?;
    println!(
        "\nwrote {}, {} and {}",
        md_path.display(),
        json_path.display(),
        png_path.display()
    );

    if !failed.is_empty() {
        for f in &failed {
            for e in &f.errors {
                eprintln!(
                    "\n{} ({}) failed:\n{e}",
                    f.case.name,
                    f.case.transport.name()
                );
            }
        }
        bail!(
            "{} of {} cases failed to run",
            failed.len(),
            summaries.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_clients_json_lines() -> Result<()> {
        let r = parse_flat_json(
            r#"{"mode": "seq", "ok": true, "rate": 1.5e3, "error": "a \"b\"\n", "x": -2}"#,
        )?;
        assert_eq!(r["mode"], Json::Str("seq".into()));
        assert_eq!(r["ok"], Json::Bool(true));
        assert_eq!(r["rate"], Json::Num(1500.0));
        assert_eq!(r["error"], Json::Str("a \"b\"\n".into()));
        assert_eq!(r["x"], Json::Num(-2.0));
        Ok(())
    }

    #[test]
    fn quick_plan_runs_every_full_case() {
        let ids = |p: Plan| -> Vec<(String, Transport)> {
            p.cases()
                .into_iter()
                .map(|c| {
                    (
                        c.id.split('-').take(2).collect::<Vec<_>>().join("-"),
                        c.transport,
                    )
                })
                .collect()
        };
        assert_eq!(ids(Plan::new(true)), ids(Plan::new(false)));
    }
}
