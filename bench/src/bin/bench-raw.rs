//! The limit every pyrpc number is compared with: raw length-prefixed frames
//! on one persistent connection, no protocol, no serialisation.
//!
//! ```text
//! bench-raw serve ADDR                       # echoes each frame back
//! bench-raw serve-bulk ADDR                  # answers an 8-byte N with N bytes
//! bench-raw pingpong ADDR [--secs S] [--max N] [--warmup N]
//! bench-raw bulk ADDR --size BYTES [--count N]
//! ```
//!
//! A ping-pong frame is a 4-byte big-endian length and a 32-byte body, written
//! with one `write` each way. The bulk server makes a fresh `N`-byte buffer per
//! request (as a method returning a new value would) and the client reads it
//! into a buffer of its own, so both ends hold the payload as a pyrpc peer must.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use pyrpc_bench::{client_runtime, Addr, Latencies, Opts, Report, FILL};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

/// Body size of one ping-pong frame.
const BODY: usize = 32;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (verb, addr) = match args.as_slice() {
        [verb, addr, ..] => (verb.as_str(), Addr::parse(addr)?),
        _ => bail!("usage: bench-raw serve|serve-bulk|pingpong|bulk ADDR [--opts]"),
    };
    let opts = Opts::parse(&args[2..])?;
    match verb {
        "serve" => serve(addr, false),
        "serve-bulk" => serve(addr, true),
        "pingpong" => client_runtime()?.block_on(pingpong(addr, opts)),
        "bulk" => client_runtime()?.block_on(bulk(addr, opts)),
        other => bail!("unknown verb `{other}`"),
    }
}

// ===== server =====

fn serve(addr: Addr, bulk: bool) -> Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        match addr {
            Addr::Tcp(a) => {
                let l = TcpListener::bind(&a).await?;
                loop {
                    let (s, _) = l.accept().await?;
                    s.set_nodelay(true)?;
                    tokio::spawn(connection(s, bulk));
                }
            }
            Addr::Unix(p) => {
                let _ = std::fs::remove_file(&p);
                let l = UnixListener::bind(&p)?;
                loop {
                    let (s, _) = l.accept().await?;
                    tokio::spawn(connection(s, bulk));
                }
            }
        }
    })
}

async fn connection<S: AsyncRead + AsyncWrite + Unpin>(s: S, bulk: bool) {
    let _ = if bulk {
        bulk_conn(s).await
    } else {
        echo_conn(s).await
    };
}

async fn echo_conn<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) -> Result<()> {
    let mut frame = Vec::with_capacity(4 + BODY);
    loop {
        let mut head = [0u8; 4];
        s.read_exact(&mut head).await?;
        let n = u32::from_be_bytes(head) as usize;
        if n > 1 << 20 {
            bail!("frame of {n} bytes");
        }
        frame.clear();
        frame.extend_from_slice(&head);
        frame.resize(4 + n, 0);
        s.read_exact(&mut frame[4..]).await?;
        s.write_all(&frame).await?;
    }
}

async fn bulk_conn<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) -> Result<()> {
    loop {
        let n = usize::try_from(s.read_u64().await?)?;
        let payload = vec![FILL; n];
        s.write_all(&payload).await?;
    }
}

// ===== clients =====

enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

async fn connect(addr: &Addr) -> Result<Conn> {
    Ok(match addr {
        Addr::Tcp(a) => {
            let s = TcpStream::connect(a).await.context("connect")?;
            s.set_nodelay(true)?;
            Conn::Tcp(s)
        }
        Addr::Unix(p) => Conn::Unix(UnixStream::connect(p).await.context("connect")?),
    })
}

async fn pingpong(addr: Addr, opts: Opts) -> Result<()> {
    let budget = opts.budget()?;
    let mut report = Report::new("pingpong");
    let result = match connect(&addr).await? {
        Conn::Tcp(s) => pingpong_on(s, budget).await,
        Conn::Unix(s) => pingpong_on(s, budget).await,
    };
    match result {
        Ok((mut lat, secs)) => report.rate(&mut lat, secs),
        Err(e) => report.fail(&format!("{e:#}")),
    };
    report.print();
    Ok(())
}

async fn pingpong_on<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    budget: pyrpc_bench::Budget,
) -> Result<(Latencies, f64)> {
    let mut msg = Vec::with_capacity(4 + BODY);
    msg.extend_from_slice(&(BODY as u32).to_be_bytes());
    msg.extend_from_slice(&[7u8; BODY]);
    let mut back = vec![0u8; 4 + BODY];
    for _ in 0..budget.warmup {
        s.write_all(&msg).await?;
        s.read_exact(&mut back).await?;
    }
    let mut lat = Latencies::with_capacity(budget.max.min(1 << 20));
    let start = Instant::now();
    while budget.more(lat.len(), start) {
        let t = Instant::now();
        s.write_all(&msg).await?;
        s.read_exact(&mut back).await?;
        lat.push(t.elapsed());
        if back != msg {
            bail!("echo differs");
        }
    }
    Ok((lat, start.elapsed().as_secs_f64()))
}

async fn bulk(addr: Addr, opts: Opts) -> Result<()> {
    let size: usize = opts.get("size", 1 << 20)?;
    let count: usize = opts.get("count", 3)?;
    let mut report = Report::new("bulk");
    let result = match connect(&addr).await? {
        Conn::Tcp(s) => bulk_on(s, size, count, &mut report).await,
        Conn::Unix(s) => bulk_on(s, size, count, &mut report).await,
    };
    if let Err(e) = result {
        report.fail(&format!("{e:#}"));
    }
    report.print();
    Ok(())
}

async fn bulk_on<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    size: usize,
    count: usize,
    report: &mut Report,
) -> Result<()> {
    report.num(
        "rss_idle_kb",
        pyrpc_bench::proc_status_kb(None, "VmRSS") as f64,
    );
    let mut lat = Latencies::default();
    let start = Instant::now();
    for _ in 0..count {
        let t = Instant::now();
        s.write_u64(size as u64).await?;
        let mut got = Vec::with_capacity(size);
        (&mut s).take(size as u64).read_to_end(&mut got).await?;
        if got.len() != size || got.first().is_some_and(|&b| b != FILL) {
            bail!("got {} bytes, expected {size}", got.len());
        }
        drop(got);
        lat.push(t.elapsed());
    }
    let secs = start.elapsed().as_secs_f64();
    report
        .rate(&mut lat, secs)
        .num("bytes", size as f64)
        .num("mbps", (size * count) as f64 / secs / 1e6);
    Ok(())
}
