//! The test service of `pyrpc-tests` as a real server process, for the
//! hostile-client and fault tests (`tests/tests/hostile.rs`, `faults.rs`),
//! and a one-call client process.
//!
//! ```text
//! pyrpc-test-server serve ADDR [--max-frame-len N] [--max-buffered N] [--queue-bytes N]
//!                              [--idle-ms N] [--handshake-ms N] [--max-connections N]
//!                              [--grace-ms N] [--secret S]
//!                              [--tls-cert PEM --tls-key PEM [--tls-client-ca PEM]]
//! pyrpc-test-server call ADDR METHOD [FLOAT_ARG...]
//! ```
//!
//! `serve` runs `Server::start` (Ctrl-C and SIGTERM shut it down) with the
//! test service plus `hold(secs, mib)` (keeps `mib` MiB for `secs` seconds,
//! counted by `live()` while it runs) and `live()`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use pyrpc_proto::{Args, Value};
use pyrpc_server::{Server, ServerConfig};
use pyrpc_transport::Address;

/// Counts `hold` calls running; a call dropped by the server (its client
/// went away) is counted out too.
struct Live(Arc<AtomicUsize>);

impl Live {
    fn enter(n: &Arc<AtomicUsize>) -> Self {
        n.fetch_add(1, Ordering::SeqCst);
        Live(Arc::clone(n))
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn main() -> Result<()> {
    pyrpc_tests::trace_init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => serve(&args[1..]),
        Some("call") => call(&args[1..]),
        _ => bail!("usage: pyrpc-test-server serve ADDR [OPTIONS] | call ADDR METHOD [ARGS]"),
    }
}

fn serve(args: &[String]) -> Result<()> {
    let addr: Address = args.first().context("ADDR")?.parse()?;
    let mut config = ServerConfig {
        nonblocking: true,
        ..ServerConfig::default()
    };
    let (mut tls_cert, mut tls_key, mut tls_ca) = (None, None, None);
    let mut rest = args[1..].iter();
    while let Some(flag) = rest.next() {
        let value = rest
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        let n = || {
            value
                .parse::<u64>()
                .with_context(|| format!("{flag} {value}"))
        };
        match flag.as_str() {
            "--max-frame-len" => config.max_frame_len = n()? as usize,
            "--max-buffered" => config.max_buffered_bytes = n()? as usize,
            "--queue-bytes" => config.max_queued_reply_bytes = n()? as usize,
            "--idle-ms" => config.idle_timeout = Some(Duration::from_millis(n()?)),
            "--handshake-ms" => config.handshake_timeout = Duration::from_millis(n()?),
            "--max-connections" => config.max_connections = n()? as usize,
            "--grace-ms" => config.shutdown_grace = Duration::from_millis(n()?),
            "--secret" => config.secret = Some(value.as_str().into()),
            "--tls-cert" => tls_cert = Some(value.clone()),
            "--tls-key" => tls_key = Some(value.clone()),
            "--tls-client-ca" => tls_ca = Some(std::path::PathBuf::from(value)),
            other => bail!("unknown option {other}"),
        }
    }
    if let (Some(cert), Some(key)) = (tls_cert, tls_key) {
        config.tls = Some(pyrpc_transport::ServerTls::from_pem_files(
            cert,
            key,
            tls_ca.as_deref(),
        )?);
    }
    let live = Arc::new(AtomicUsize::new(0));
    let (l1, l2) = (Arc::clone(&live), live);
    let methods = pyrpc_tests::methods(Arc::default())
        .add_async("hold", move |args: Args| {
            let live = Arc::clone(&l1);
            async move {
                let _live = Live::enter(&live);
                let secs = args.args.first().and_then(Value::as_f64).unwrap_or(0.0);
                let mib = args.args.get(1).and_then(Value::as_f64).unwrap_or(0.0);
                // Touched, so it is resident.
                let held = vec![1u8; (mib * 1024.0 * 1024.0) as usize];
                tokio::time::sleep(Duration::from_secs_f64(secs)).await;
                Ok(Value::from(held.len() as i64))
            }
        })
        .add("live", move |_| {
            Ok(Value::from(l2.load(Ordering::SeqCst) as i64))
        });
    let server = Server::builder(methods).config(config).build();
    println!("serving {addr} as pid {}", std::process::id());
    server.start(&addr)?;
    println!("shut down cleanly");
    Ok(())
}

fn call(args: &[String]) -> Result<()> {
    let addr: Address = args.first().context("ADDR")?.parse()?;
    let method = args.get(1).context("METHOD")?;
    let mut call_args = Args::new();
    for a in &args[2..] {
        call_args = call_args.arg(a.parse::<f64>()?);
    }
    let client = pyrpc_client::blocking::Client::new(addr)?;
    let v = client.call(method, call_args)?;
    println!("{v}");
    Ok(())
}
