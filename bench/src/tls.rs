//! TLS for the bench's `tls` cases: the server's and clients' settings from
//! `PYRPC_BENCH_TLS_*` (written by `cargo xtask bench`), and the
//! `tls-flood` mode: honest TLS calls timed while flooders open junk TLS
//! handshakes (garbage after a handshake record header, real handshakes
//! the flooder then aborts, and stalled ones the server times out).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use pyrpc_client::{Client, ClientConfig};
use pyrpc_proto::Args;
use pyrpc_transport::{Address, ClientTls, ServerTls, Stream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{Latencies, Opts, Report};

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The server's TLS, when the bench gave certificates.
///
/// # Errors
///
/// When the files cannot be read or parsed.
pub fn server_tls() -> Result<Option<ServerTls>> {
    match (var("PYRPC_BENCH_TLS_CERT"), var("PYRPC_BENCH_TLS_KEY")) {
        (Some(cert), Some(key)) => Ok(Some(ServerTls::from_pem_files(cert, key, None)?)),
        _ => Ok(None),
    }
}

fn client_tls() -> Option<ClientTls> {
    let ca = var("PYRPC_BENCH_TLS_CA")?;
    ClientTls::from_pem_files(Some(ca.as_ref()), None, None).ok()
}

/// A client of `addr`, over TLS when the bench gave a CA.
pub fn new_client(addr: Address) -> Client {
    Client::with_config(
        addr,
        ClientConfig {
            tls: client_tls(),
            ..ClientConfig::default()
        },
    )
}

async fn junk(addr: &Address, kind: usize, aborting: &ClientTls, seed: &mut u64) {
    let Ok(stream) = pyrpc_transport::connect(addr, Duration::from_secs(2)).await else {
        return;
    };
    let mut sink = [0u8; 64];
    match (kind % 3, stream) {
        (0, Stream::Tcp(mut tcp)) => {
            let mut bytes = vec![0x16, 0x03, 0x01, 0x02, 0x00];
            for _ in 0..512 {
                *seed ^= *seed << 13;
                *seed ^= *seed >> 7;
                *seed ^= *seed << 17;
                bytes.push(*seed as u8);
            }
            let _ = tcp.write_all(&bytes).await;
            let _ = tokio::time::timeout(Duration::from_secs(2), tcp.read(&mut sink)).await;
        }
        (1, stream) => {
            // A full handshake the client then refuses (wrong name).
            let _ = aborting.connect(addr, stream).await;
        }
        (_, Stream::Tcp(mut tcp)) => {
            let _ = tcp.write_all(&[0x16]).await;
            let _ = tokio::time::timeout(Duration::from_secs(3), tcp.read(&mut sink)).await;
        }
        _ => {}
    }
}

/// `tls-flood`: for `--secs` (at least 1 s), `--flooders` tasks (12) send
/// junk handshakes while honest calls alternate between a kept connection
/// and a fresh one (a full handshake each). Reports the honest calls'
/// `p50_us`/`p99_us` and `junk_handshakes`.
///
/// # Errors
///
/// When an honest call fails or no CA was given.
pub async fn flood(addr: Address, opts: &Opts, report: &mut Report) -> Result<()> {
    let secs: f64 = opts.get("secs", 2.0)?;
    let flooders: usize = opts.get("flooders", 12)?;
    let tls = client_tls().ok_or_else(|| anyhow::anyhow!("tls-flood needs PYRPC_BENCH_TLS_CA"))?;
    let aborting = tls.clone().with_server_name("not-the-server.invalid");
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..flooders)
        .map(|i| {
            let (addr, aborting) = (addr.clone(), aborting.clone());
            let (stop, sent) = (Arc::clone(&stop), Arc::clone(&sent));
            tokio::spawn(async move {
                let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ i as u64;
                while !stop.load(Ordering::Relaxed) {
                    junk(&addr, i, &aborting, &mut seed).await;
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let kept = new_client(addr.clone());
    kept.call("echo", Args::new().arg(0)).await?;
    let mut lat = Latencies::default();
    let start = Instant::now();
    let mut i = 0i64;
    while start.elapsed().as_secs_f64() < secs.max(1.0) {
        let fresh;
        let c = if i % 2 == 0 {
            &kept
        } else {
            fresh = new_client(addr.clone());
            &fresh
        };
        let t = Instant::now();
        c.call("echo", Args::new().arg(i)).await?;
        lat.push(t.elapsed());
        i += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    report
        .rate(&mut lat, elapsed)
        .num("junk_handshakes", sent.load(Ordering::Relaxed) as f64)
        .num("flooders", flooders as f64);
    Ok(())
}
