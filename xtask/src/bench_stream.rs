//! `cargo xtask bench --stream` (or `--case stream`): 100k small items
//! streamed from a Python generator vs 100k separate calls, Python client and
//! Python server in two processes, over TCP and a Unix socket. The goal
//! (issue 12): streaming at least 10x faster. Writes
//! `target/bench/stream.md`.

use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::python;
use crate::util::step;

/// The items (and calls) per measurement.
const ITEMS: usize = 100_000;

/// The benchmark script: `server ADDR` serves; `client ADDR N` measures and
/// prints one line of JSON.
const SCRIPT: &str = r#"
import json, os, subprocess, sys, time
from pyrpc import Client, Server

class Bench(Server):
    def count(self, n):
        for i in range(n):
            yield i

    def echo(self, x):
        return x

def parse(a):
    if a.startswith("tcp:"):
        host, port = a[4:].rsplit(":", 1)
        return (host, int(port))
    return a

if sys.argv[1] == "server":
    Bench(address=parse(sys.argv[2])).start()
    sys.exit(0)

addr, n = parse(sys.argv[2]), int(sys.argv[3])
c = Client(address=addr)
deadline = time.monotonic() + 30
while not c.connected(0.2):
    if time.monotonic() > deadline:
        sys.exit("no server")
    time.sleep(0.05)
# The stream: best of 3. The calls (100x slower, steadier): one run.
best_stream = None
for _ in range(3):
    t = time.perf_counter()
    got = sum(1 for _ in c.count(n))
    s = time.perf_counter() - t
    assert got == n
    best_stream = s if best_stream is None else min(best_stream, s)
t = time.perf_counter()
for i in range(n):
    c.echo(i)
calls = time.perf_counter() - t
print(json.dumps({"stream_s": best_stream, "calls_s": calls}))
c.shutdown()
"#;

/// True when the options ask for this benchmark.
pub(crate) fn wanted(opts: &crate::bench::Options) -> bool {
    opts.stream
        || opts
            .case
            .as_ref()
            .is_some_and(|c| c.iter().any(|id| id == "stream"))
}

/// Runs the benchmark; fails if the goal is missed.
pub(crate) fn run(root: &Path) -> Result<()> {
    let venv = python::setup(root)?;
    let dir = root.join("target/bench");
    std::fs::create_dir_all(&dir)?;
    let script = dir.join("stream_bench.py");
    std::fs::write(&script, SCRIPT)?;
    let sock_dir = std::env::temp_dir().join(format!("pyrpc-bs-{}", std::process::id()));
    std::fs::create_dir_all(&sock_dir)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addrs = [
        ("tcp", format!("tcp:127.0.0.1:{port}")),
        ("unix", sock_dir.join("s").display().to_string()),
    ];
    let mut rows = Vec::new();
    let mut failed = false;
    for (name, addr) in &addrs {
        step(&format!("stream vs calls, {ITEMS} items, {name}"));
        let mut server = venv
            .command(venv.python())
            .arg(&script)
            .args(["server", addr])
            .spawn()
            .context("starting the bench server")?;
        let out = venv
            .command(venv.python())
            .arg(&script)
            .args(["client", addr, &ITEMS.to_string()])
            .output();
        // The client shuts the server down; make sure of it.
        let _ = server.kill();
        let _ = server.wait();
        let out = out.context("running the bench client")?;
        if !out.status.success() {
            bail!(
                "bench client failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let line = String::from_utf8_lossy(&out.stdout);
        let num = |key: &str| -> Result<f64> {
            let at = line
                .find(&format!("\"{key}\": "))
                .with_context(|| format!("no {key} in {line}"))?;
            let rest = &line[at + key.len() + 4..];
            let end = rest.find([',', '}']).unwrap_or(rest.len());
            Ok(rest[..end].trim().parse()?)
        };
        let (stream_s, calls_s) = (num("stream_s")?, num("calls_s")?);
        let speedup = calls_s / stream_s;
        failed |= speedup < 10.0;
        println!(
            "  {name:<5} streamed {:>9.0} items/s  calls {:>8.0} calls/s  speed-up {speedup:.1}x (goal >= 10x)",
            ITEMS as f64 / stream_s,
            ITEMS as f64 / calls_s
        );
        rows.push(format!(
            "| {name} | {:.3} s | {:.3} s | {speedup:.1}x | {} |",
            stream_s,
            calls_s,
            if speedup >= 10.0 { "met" } else { "MISSED" }
        ));
    }
    let _ = std::fs::remove_dir_all(&sock_dir);
    let md = format!(
        "# Streaming vs separate calls ({ITEMS} small items, Python client and server)\n\n\
         | transport | streamed | separate calls | speed-up | goal 10x |\n|---|---|---|---|---|\n{}\n",
        rows.join("\n")
    );
    std::fs::write(dir.join("stream.md"), md)?;
    if failed {
        bail!("streaming is less than 10x faster than separate calls");
    }
    Ok(())
}
