//! Shared pieces of the benchmark binaries driven by `cargo xtask bench`.
//!
//! # Layout
//!
//! * `src/bin/bench-raw.rs` — the limit: a raw length-prefixed ping-pong
//!   (4-byte big-endian length + 32-byte body, one persistent connection) and a
//!   raw bulk transfer of N bytes, over TCP and Unix sockets.
//! * `src/bin/bench-tonic.rs` — the Rust gRPC peer: a tonic unary echo.
//! * `src/bin/bench-pyrpc.rs` — a pyrpc server and the Rust client's bench
//!   modes (sequential echo, calls in flight, nb calls, big values, scale).
//! * `python/` — the Python client and server modes and the grpcio peer.
//!
//! Every client prints exactly one JSON object on one line of stdout, with
//! flat number/bool/string fields (see [`Report`]); `xtask` reads the last such
//! line. Every loop is bounded both in count and in time.
//!
//! Addresses are `host:port` (TCP) or `unix:/path` (a Unix socket), as pyrpc
//! writes them.

pub mod tls;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The tonic echo service generated from `proto/echo.proto`.
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod echo_proto {
    tonic::include_proto!("bench.v1");
}

/// Where a peer listens or connects.
#[derive(Clone, Debug)]
pub enum Addr {
    /// `host:port`.
    Tcp(String),
    /// A Unix socket path.
    Unix(std::path::PathBuf),
}

impl Addr {
    /// Parses `unix:/path` or `host:port`.
    ///
    /// # Errors
    ///
    /// When a TCP address has no port.
    pub fn parse(s: &str) -> Result<Addr> {
        if let Some(path) = s.strip_prefix("unix:") {
            return Ok(Addr::Unix(path.into()));
        }
        if !s.contains(':') {
            bail!("address `{s}` is neither host:port nor unix:/path");
        }
        Ok(Addr::Tcp(s.to_owned()))
    }
}

/// `--name value` options after the positional arguments.
pub struct Opts {
    pairs: Vec<(String, String)>,
}

impl Opts {
    /// Reads `--name value` pairs from `args`.
    ///
    /// # Errors
    ///
    /// When an option has no value or an argument is not an option.
    pub fn parse(args: &[String]) -> Result<Opts> {
        let mut pairs = Vec::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let name = a
                .strip_prefix("--")
                .with_context(|| format!("expected --option, got `{a}`"))?;
            let value = it
                .next()
                .with_context(|| format!("--{name} needs a value"))?;
            pairs.push((name.to_owned(), value.clone()));
        }
        Ok(Opts { pairs })
    }

    /// The value of `--name` parsed as `T`, or `default`.
    ///
    /// # Errors
    ///
    /// When the value does not parse.
    pub fn get<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T> {
        match self.pairs.iter().rev().find(|(n, _)| n == name) {
            None => Ok(default),
            Some((_, v)) => v
                .parse()
                .map_err(|_| anyhow::anyhow!("--{name}: cannot parse `{v}`")),
        }
    }

    /// `--secs` and `--max`: how long and how many calls a rate loop may run.
    ///
    /// # Errors
    ///
    /// When a value does not parse.
    pub fn budget(&self) -> Result<Budget> {
        Ok(Budget {
            time: Duration::from_secs_f64(self.get("secs", 2.0)?),
            max: self.get("max", 1_000_000)?,
            warmup: self.get("warmup", 200)?,
        })
    }
}

/// How long, and how many times at most, a measured loop runs.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Stop after this long.
    pub time: Duration,
    /// Stop after this many calls.
    pub max: usize,
    /// Calls made before measuring.
    pub warmup: usize,
}

impl Budget {
    /// True while a loop that made `done` calls since `start` may go on.
    pub fn more(&self, done: usize, start: Instant) -> bool {
        done < self.max && start.elapsed() < self.time
    }
}

/// Latencies of one measured loop.
#[derive(Default)]
pub struct Latencies {
    nanos: Vec<u64>,
}

impl Latencies {
    /// An empty set with room for `n`.
    pub fn with_capacity(n: usize) -> Self {
        Latencies {
            nanos: Vec::with_capacity(n),
        }
    }

    /// Records one call that took `d`.
    pub fn push(&mut self, d: Duration) {
        self.nanos
            .push(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Adds another set.
    pub fn extend(&mut self, other: Latencies) {
        self.nanos.extend(other.nanos);
    }

    /// How many calls were recorded.
    pub fn len(&self) -> usize {
        self.nanos.len()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.nanos.is_empty()
    }

    /// The `q` quantile (0..=1) in microseconds (nearest rank), 0 when empty.
    pub fn quantile_us(&mut self, q: f64) -> f64 {
        if self.nanos.is_empty() {
            return 0.0;
        }
        self.nanos.sort_unstable();
        let rank = ((q * self.nanos.len() as f64).ceil() as usize).clamp(1, self.nanos.len());
        self.nanos[rank - 1] as f64 / 1000.0
    }
}

/// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`), 0 if unknown.
pub fn proc_status_kb(pid: Option<u32>, field: &str) -> u64 {
    let path = match pid {
        Some(p) => format!("/proc/{p}/status"),
        None => "/proc/self/status".to_owned(),
    };
    let Ok(text) = std::fs::read_to_string(path) else {
        return 0;
    };
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// One client's result: a flat JSON object printed on one line.
#[derive(Default)]
pub struct Report {
    fields: Vec<(String, String)>,
}

impl Report {
    /// A report for `mode`, with `ok` set to true until [`Report::fail`].
    pub fn new(mode: &str) -> Self {
        let mut r = Report::default();
        r.str("mode", mode);
        r.bool("ok", true);
        r
    }

    fn set(&mut self, k: &str, v: String) -> &mut Self {
        self.fields.retain(|(n, _)| n != k);
        self.fields.push((k.to_owned(), v));
        self
    }

    /// Sets a number (non-finite numbers become 0).
    pub fn num(&mut self, k: &str, v: f64) -> &mut Self {
        let v = if v.is_finite() { v } else { 0.0 };
        self.set(k, format!("{v}"))
    }

    /// Sets a boolean.
    pub fn bool(&mut self, k: &str, v: bool) -> &mut Self {
        self.set(k, v.to_string())
    }

    /// Sets a string.
    pub fn str(&mut self, k: &str, v: &str) -> &mut Self {
        let escaped: String = v
            .chars()
            .map(|c| match c {
                '"' | '\\' => format!("\\{c}"),
                c if (c as u32) < 0x20 => format!("\\u{:04x}", c as u32),
                c => c.to_string(),
            })
            .collect();
        self.set(k, format!("\"{escaped}\""))
    }

    /// Marks the run as failed with `why`.
    pub fn fail(&mut self, why: &str) -> &mut Self {
        self.bool("ok", false);
        self.str("error", why)
    }

    /// Sets `calls`, `secs`, `rate`, `p50_us`, `p99_us` from a measured loop.
    pub fn rate(&mut self, lat: &mut Latencies, secs: f64) -> &mut Self {
        let n = lat.len() as f64;
        self.num("calls", n)
            .num("secs", secs)
            .num("rate", if secs > 0.0 { n / secs } else { 0.0 })
            .num("p50_us", lat.quantile_us(0.5))
            .num("p99_us", lat.quantile_us(0.99))
    }

    /// Adds this process's peak and current RSS (`rss_peak_kb`, `rss_now_kb`)
    /// and prints the report as one JSON line.
    pub fn print(&mut self) {
        let peak = proc_status_kb(None, "VmHWM") as f64;
        let now = proc_status_kb(None, "VmRSS") as f64;
        self.num("rss_peak_kb", peak).num("rss_now_kb", now);
        let mut line = String::from("{");
        for (i, (k, v)) in self.fields.iter().enumerate() {
            if i > 0 {
                line.push_str(", ");
            }
            let _ = write!(line, "\"{k}\": {v}");
        }
        line.push('}');
        println!("{line}");
    }
}

/// Runs `call` until the budget is spent, recording each call's latency.
///
/// # Errors
///
/// The first failed call.
pub async fn sequential<F, Fut>(budget: Budget, mut call: F) -> Result<(Latencies, f64)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    for _ in 0..budget.warmup {
        call().await?;
    }
    let mut lat = Latencies::with_capacity(budget.max.min(1 << 20));
    let start = Instant::now();
    while budget.more(lat.len(), start) {
        let t = Instant::now();
        call().await?;
        lat.push(t.elapsed());
    }
    Ok((lat, start.elapsed().as_secs_f64()))
}

/// The payload byte every big-value peer sends, so receivers can spot-check it.
pub const FILL: u8 = 0x5a;

/// A current-thread runtime, the flavour every bench client runs on.
///
/// # Errors
///
/// When the OS refuses the runtime's resources.
pub fn client_runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let mut l = Latencies::default();
        for us in 1..=100 {
            l.push(Duration::from_micros(us));
        }
        assert_eq!(l.quantile_us(0.5), 50.0);
        assert_eq!(l.quantile_us(0.99), 99.0);
    }

    #[test]
    fn opts_read_name_value_pairs() -> Result<()> {
        let o = Opts::parse(&["--secs".into(), "0.5".into()])?;
        assert_eq!(o.get("secs", 2.0)?, 0.5);
        assert_eq!(o.get("max", 7)?, 7);
        Ok(())
    }
}
