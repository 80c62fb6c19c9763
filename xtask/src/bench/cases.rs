//! The cases: what each runs (server and client processes, transport) and
//! the counts of a full or `--quick` run ([`Plan`]). Other benches add their
//! cases in [`Plan::cases`].

use super::*;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(super) enum Transport {
    Tcp,
    Unix,
    /// TCP with TLS (certificates from [`certs`], given to both processes
    /// as `PYRPC_BENCH_TLS_*`).
    Tls,
}

impl Transport {
    pub(super) fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Unix => "unix",
            Transport::Tls => "tls",
        }
    }
}

/// Which server process a case starts.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum ServerKind {
    RawEcho,
    /// `bench/python/raw_echo.py`: the raw ping-pong in plain Python, the
    /// yardstick of a Python server's CPU time per call.
    RawPython,
    RawBulk,
    Tonic,
    PyrpcRust,
    PyrpcPython,
    PyrpcPythonSync,
    Grpcio,
}

/// Which client process a case runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum ClientKind {
    Raw,
    Tonic,
    PyrpcRust,
    PyrpcPython,
    Grpcio,
}

/// What a case's numbers mean, for the table and the chart.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Kind {
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
pub(super) struct Case {
    /// Stable key, e.g. `rust-seq`; goals look cases up by it.
    pub(super) id: String,
    /// What the table says.
    pub(super) name: String,
    pub(super) transport: Transport,
    pub(super) kind: Kind,
    pub(super) server: ServerKind,
    pub(super) client: ClientKind,
    /// Client verb and options (the address goes between them).
    pub(super) verb: &'static str,
    pub(super) args: Vec<String>,
    /// The client's time limit.
    pub(super) limit: Duration,
}

/// Counts and limits of one mode.
pub(super) struct Plan {
    pub(super) quick: bool,
    pub(super) repeats: usize,
    pub(super) secs: f64,
    pub(super) warmup: usize,
    pub(super) sizes: [u64; 2],
    pub(super) big_counts: [usize; 2],
    pub(super) nb_slow_count: usize,
    pub(super) conns: usize,
    pub(super) nb_many: usize,
}

impl Plan {
    pub(super) fn new(quick: bool) -> Plan {
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

    pub(super) fn cases(&self) -> Vec<Case> {
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
                "py-raw",
                "raw Python ping-pong server (CPU yardstick)",
                Kind::Rate,
                S::RawPython,
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
    pub(super) fn tls_cases(&self, cases: &mut Vec<Case>, rate: &[String], limit: Duration) {
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
