//! pyrpc's Rust side under measurement: a server, and the Rust client's modes.
//!
//! ```text
//! bench-pyrpc serve ADDR [--synchronous 1]
//! bench-pyrpc seq ADDR [--secs S] [--max N]          # echo(1, foo='foo'), one at a time
//! bench-pyrpc blocking-seq ADDR [--secs S] [--max N] # the same through blocking::Client
//! bench-pyrpc inflight ADDR --conc 64 [--secs S]     # 64 tasks sharing one Client
//! bench-pyrpc nb-fast ADDR [--secs S]                # blocking echo, then nb_echo: both p50s
//! bench-pyrpc nb-slow ADDR --sleep 0.2 --tick 1 --count N
//! bench-pyrpc big ADDR --size BYTES --count N        # a method returning BYTES bytes
//! bench-pyrpc conns ADDR --n 1000 --calls 10 --server-pid PID
//! bench-pyrpc nb-many ADDR --n 10000 --sleep 0.5 --tick 1
//! bench-pyrpc tls-flood ADDR [--secs S] [--flooders 12]  # honest TLS calls under junk handshakes
//! ```
//!
//! With `PYRPC_BENCH_TLS_CA`, `PYRPC_BENCH_TLS_CERT` and `PYRPC_BENCH_TLS_KEY`
//! set (the bench's `tls` cases), the server speaks TLS and clients verify it
//! against that CA (`pyrpc_bench::tls`).
//!
//! The server serves `echo(*args, **kwargs) -> (args, kwargs)` (inline),
//! `sleep(seconds)` (async) and `big(n) -> bytes` (a fresh buffer per call),
//! with non-blocking calls enabled.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use futures::future::join_all;
use pyrpc_bench::tls::new_client;
use pyrpc_bench::{client_runtime, proc_status_kb, Latencies, Opts, Report, FILL};
use pyrpc_client::{CallOptions, Client};
use pyrpc_proto::{Args, RemoteError, Value};
use pyrpc_server::{Methods, Server};
use pyrpc_transport::Address;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (verb, addr) = match args.as_slice() {
        [verb, addr, ..] => (verb.clone(), addr.parse::<Address>()?),
        _ => bail!("usage: bench-pyrpc serve|seq|... ADDR [--opts]"),
    };
    let opts = Opts::parse(&args[2..])?;
    if verb == "serve" {
        return serve(&addr, &opts);
    }
    if verb == "blocking-seq" {
        return blocking_seq(addr, &opts);
    }
    let mut report = Report::new(&verb);
    let result = client_runtime()?.block_on(async {
        match verb.as_str() {
            "seq" => seq(addr, &opts, &mut report).await,
            "inflight" => inflight(addr, &opts, &mut report).await,
            "nb-fast" => nb_fast(addr, &opts, &mut report).await,
            "nb-slow" => nb_slow(addr, &opts, &mut report).await,
            "big" => big(addr, &opts, &mut report).await,
            "conns" => conns(addr, &opts, &mut report).await,
            "nb-many" => nb_many(addr, &opts, &mut report).await,
            "tls-flood" => pyrpc_bench::tls::flood(addr, &opts, &mut report).await,
            other => bail!("unknown verb `{other}`"),
        }
    });
    if let Err(e) = result {
        report.fail(&format!("{e:#}"));
    }
    report.print();
    Ok(())
}

// ===== server =====

fn serve(addr: &Address, opts: &Opts) -> Result<()> {
    let methods = Methods::new()
        .add("echo", |args: Args| {
            let (args, kwargs) = args.into_values();
            Ok(Value::tuple([args, kwargs]))
        })
        .add_async("sleep", |args: Args| async move {
            let secs = args
                .args
                .first()
                .and_then(Value::as_f64)
                .ok_or_else(|| RemoteError::bad_arguments("sleep(seconds)"))?;
            tokio::time::sleep(Duration::from_secs_f64(secs.clamp(0.0, 60.0))).await;
            Ok(Value::from(secs))
        })
        .add("big", |args: Args| {
            let n = args
                .args
                .first()
                .and_then(Value::as_i64)
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| RemoteError::bad_arguments("big(n)"))?;
            Ok(Value::Bytes(Bytes::from(vec![FILL; n])))
        });
    let mut builder = Server::builder(methods)
        .nonblocking(true)
        .synchronous(opts.get("synchronous", 0)? != 0);
    if let Some(tls) = pyrpc_bench::tls::server_tls()? {
        builder = builder.tls(tls);
    }
    builder.build().start(addr)?;
    Ok(())
}

// ===== clients =====

fn echo_args() -> Args {
    Args::new().arg(1).kwarg("foo", "foo")
}

fn check_echo(v: &Value) -> Result<()> {
    match v {
        Value::Tuple(t) if t.len() == 2 => Ok(()),
        other => bail!("echo returned {other}"),
    }
}

async fn echo_once(c: &Client) -> Result<()> {
    check_echo(&c.call("echo", echo_args()).await?)
}

async fn seq(addr: Address, opts: &Opts, report: &mut Report) -> Result<()> {
    let client = new_client(addr);
    let (mut lat, secs) = pyrpc_bench::sequential(opts.budget()?, || {
        let c = client.clone();
        async move { echo_once(&c).await }
    })
    .await?;
    report.rate(&mut lat, secs);
    Ok(())
}

fn blocking_seq(addr: Address, opts: &Opts) -> Result<()> {
    let budget = opts.budget()?;
    let mut report = Report::new("blocking-seq");
    let client = pyrpc_client::blocking::Client::new(addr)?;
    let mut run = || -> Result<()> {
        for _ in 0..budget.warmup {
            check_echo(&client.call("echo", echo_args())?)?;
        }
        let mut lat = Latencies::with_capacity(budget.max.min(1 << 20));
        let start = Instant::now();
        while budget.more(lat.len(), start) {
            let t = Instant::now();
            check_echo(&client.call("echo", echo_args())?)?;
            lat.push(t.elapsed());
        }
        report.rate(&mut lat, start.elapsed().as_secs_f64());
        Ok(())
    };
    if let Err(e) = run() {
        report.fail(&format!("{e:#}"));
    }
    report.print();
    Ok(())
}

async fn inflight(addr: Address, opts: &Opts, report: &mut Report) -> Result<()> {
    let conc: usize = opts.get("conc", 64)?;
    let budget = opts.budget()?;
    let client = new_client(addr);
    echo_once(&client).await?;
    let start = Instant::now();
    let tasks = (0..conc).map(|_| {
        let c = client.clone();
        async move {
            let mut lat = Latencies::default();
            // Each task stops at the time limit or at its share of `max`.
            while budget.more(lat.len() * conc, start) {
                let t = Instant::now();
                echo_once(&c).await?;
                lat.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(lat)
        }
    });
    let mut all = Latencies::default();
    for r in join_all(tasks).await {
        all.extend(r?);
    }
    report.rate(&mut all, start.elapsed().as_secs_f64());
    report.num("concurrency", conc as f64);
    Ok(())
}

async fn nb_fast(addr: Address, opts: &Opts, report: &mut Report) -> Result<()> {
    let budget = opts.budget()?;
    let client = new_client(addr);
    let (mut blocking, _) = pyrpc_bench::sequential(budget, || {
        let c = client.clone();
        async move { echo_once(&c).await }
    })
    .await?;
    let (mut nb, secs) = pyrpc_bench::sequential(budget, || {
        let c = client.clone();
        async move { check_echo(&c.nb_call("echo", echo_args()).await?) }
    })
    .await?;
    let echo_p50 = blocking.quantile_us(0.5);
    report.rate(&mut nb, secs);
    report.num("echo_p50_us", echo_p50);
    Ok(())
}

async fn nb_slow(addr: Address, opts: &Opts, report: &mut Report) -> Result<()> {
    let sleep: f64 = opts.get("sleep", 0.2)?;
    let tick: f64 = opts.get("tick", 1.0)?;
    let count: usize = opts.get("count", 5)?;
    let client = new_client(addr);
    echo_once(&client).await?;
    let call_opts = CallOptions {
        nb_fetch_tick: Some(Duration::from_secs_f64(tick)),
        call_timeout: Some(Some(Duration::from_secs(30))),
        ..CallOptions::default()
    };
    let mut lat = Latencies::default();
    let start = Instant::now();
    for _ in 0..count {
        let t = Instant::now();
        client
            .nb_call_with("sleep", Args::new().arg(sleep), &call_opts)
            .await?;
        lat.push(t.elapsed());
    }
    let secs = start.elapsed().as_secs_f64();
    let worst_ms = lat.quantile_us(1.0) / 1000.0;
    report
        .rate(&mut lat, secs)
        .num("sleep_ms", sleep * 1000.0)
        .num("overshoot_ms", worst_ms - sleep * 1000.0);
    Ok(())
}

async fn big(addr: Address, opts: &Opts, report: &mut Report) -> Result<()> {
    let size: usize = opts.get("size", 1 << 20)?;
    let count: usize = opts.get("count", 3)?;
    let client = new_client(addr);
    echo_once(&client).await?;
    report.num("rss_idle_kb", proc_status_kb(None, "VmRSS") as f64);
    let mut lat = Latencies::default();
    let start = Instant::now();
    for _ in 0..count {
        let t = Instant::now();
        let v = client
            .call("big", Args::new().arg(i64::try_from(size)?))
            .await?;
        let b = v.as_bytes().context("big returned no bytes")?;
        if b.len() != size || b.first().is_some_and(|&x| x != FILL) {
            bail!("big returned {} bytes, expected {size}", b.len());
        }
        drop(v);
        lat.push(t.elapsed());
    }
    let secs = start.elapsed().as_secs_f64();
    report
        .rate(&mut lat, secs)
        .num("bytes", size as f64)
        .num("mbps", (size * count) as f64 / secs / 1e6);
    Ok(())
}

async fn conns(addr: Address, opts: &Opts, report: &mut Report) -> Result<()> {
    let n: usize = opts.get("n", 1000)?;
    let calls: usize = opts.get("calls", 10)?;
    let server_pid: u32 = opts.get("server-pid", 0)?;
    let server = || proc_status_kb(Some(server_pid), "VmRSS") as f64;
    let clients: Vec<Client> = (0..n).map(|_| new_client(addr.clone())).collect();
    // A first call from one client, so both sides have paid for their
    // one-time setup before the idle baseline.
    echo_once(&clients[0]).await?;
    let (server_idle, self_idle) = (server(), proc_status_kb(None, "VmRSS") as f64);
    let start = Instant::now();
    let pings = join_all(clients.iter().skip(1).map(|c| c.ping())).await;
    let connect_errors = pings.iter().filter(|r| r.is_err()).count();
    let connect_secs = start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (server_conn, self_conn) = (server(), proc_status_kb(None, "VmRSS") as f64);
    let per = |a: f64, b: f64| (b - a) / (n as f64 - 1.0).max(1.0);
    let start = Instant::now();
    let results = join_all(clients.iter().map(|c| async move {
        let mut lat = Latencies::default();
        for _ in 0..calls {
            let t = Instant::now();
            echo_once(c).await?;
            lat.push(t.elapsed());
        }
        Ok::<_, anyhow::Error>(lat)
    }))
    .await;
    let secs = start.elapsed().as_secs_f64();
    let mut all = Latencies::default();
    let mut call_errors = 0;
    let mut first_error = None;
    for r in results {
        match r {
            Ok(l) => all.extend(l),
            Err(e) => {
                call_errors += 1;
                first_error.get_or_insert(format!("{e:#}"));
            }
        }
    }
    report
        .rate(&mut all, secs)
        .num("connections", n as f64)
        .num("connect_secs", connect_secs)
        .num("connect_errors", connect_errors as f64)
        .num("call_errors", call_errors as f64)
        .num("server_kb_per_conn", per(server_idle, server_conn))
        .num("client_kb_per_conn", per(self_idle, self_conn));
    if connect_errors + call_errors > 0 {
        report.fail(&format!(
            "{connect_errors} connects and {call_errors} clients failed; first: {}",
            first_error.unwrap_or_default()
        ));
    }
    Ok(())
}

async fn nb_many(addr: Address, opts: &Opts, report: &mut Report) -> Result<()> {
    let n: usize = opts.get("n", 10_000)?;
    let sleep: f64 = opts.get("sleep", 0.5)?;
    let tick: f64 = opts.get("tick", 1.0)?;
    let client = new_client(addr);
    echo_once(&client).await?;
    report.num("rss_idle_kb", proc_status_kb(None, "VmRSS") as f64);
    let call_opts = Arc::new(CallOptions {
        nb_fetch_tick: Some(Duration::from_secs_f64(tick)),
        call_timeout: Some(Some(Duration::from_secs(120))),
        ..CallOptions::default()
    });
    let start = Instant::now();
    let results = join_all((0..n).map(|_| {
        let c = client.clone();
        let o = call_opts.clone();
        async move {
            let t = Instant::now();
            c.nb_call_with("sleep", Args::new().arg(sleep), &o).await?;
            Ok::<_, anyhow::Error>(t.elapsed())
        }
    }))
    .await;
    let secs = start.elapsed().as_secs_f64();
    let mut lat = Latencies::default();
    let mut errors = 0;
    let mut first_error = None;
    for r in results {
        match r {
            Ok(d) => lat.push(d),
            Err(e) => {
                errors += 1;
                first_error.get_or_insert(format!("{e:#}"));
            }
        }
    }
    report
        .rate(&mut lat, secs)
        .num("in_flight", n as f64)
        .num("errors", errors as f64);
    if errors > 0 {
        report.fail(&format!(
            "{errors} of {n} nb calls failed; first: {}",
            first_error.unwrap_or_default()
        ));
    }
    Ok(())
}
