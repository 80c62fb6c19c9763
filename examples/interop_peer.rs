//! The Rust peer of the interop test (`cargo xtask interop-test`).
//!
//! ```text
//! cargo run -p pyrpc-examples --example interop_peer -- serve 127.0.0.1:50300
//! cargo run -p pyrpc-examples --example interop_peer -- check 127.0.0.1:50300
//! ```
//!
//! `serve ADDRESS` serves the interop test service with non-blocking calls
//! enabled until a client shuts it down: `echo(*args, **kwargs) -> (args,
//! kwargs)`, `sleep(seconds) -> seconds`, `raise_(type_name, *args)` (raises
//! that exception), `big(n) -> b'1' * n`. Once bound it prints `listening on
//! ADDRESS`, the address it got (with port 0, the port the OS chose).
//!
//! `check ADDRESS` runs the interop checks against a server serving that
//! service, one line per check (`PASS name (time) detail` or `FAIL ...`), and
//! exits with 0 only if all pass. The last check shuts the server down. The
//! same service and checks are implemented by `tests/interop/pyrpc_peer.py`
//! (the `pyrpc` Python package) and `tests/interop/independent_peer.py` (the
//! protocol alone).
//!
//! With `PYRPC_INTEROP_TLS_CA`, `PYRPC_INTEROP_TLS_CERT` and
//! `PYRPC_INTEROP_TLS_KEY` set (the interop test's `tls` cells), the server
//! speaks TLS with that certificate and key, and the client verifies it
//! against that CA.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use futures::StreamExt;
use pyrpc_client::{CallError, CallOptions, Client, ClientConfig};
use pyrpc_proto::{Args, ErrorKind, RemoteError, Value};
use pyrpc_server::{Methods, Server};
use pyrpc_transport::{Address, ClientTls, ServerTls};

/// The TLS files from the environment, if the interop test gave them.
fn tls_env() -> Option<(String, String, String)> {
    let var = |n| std::env::var(n).ok();
    Some((
        var("PYRPC_INTEROP_TLS_CA")?,
        var("PYRPC_INTEROP_TLS_CERT")?,
        var("PYRPC_INTEROP_TLS_KEY")?,
    ))
}

/// A client of `addr`, with TLS when the environment says so.
fn make_client(addr: Address) -> Result<Client> {
    let tls = match tls_env() {
        Some((ca, _, _)) => Some(ClientTls::from_pem_files(Some(ca.as_ref()), None, None)?),
        None => None,
    };
    Ok(Client::with_config(
        addr,
        ClientConfig {
            tls,
            ..ClientConfig::default()
        },
    ))
}

fn main() -> Result<()> {
    let mut argv = std::env::args().skip(1);
    let (Some(command), Some(address)) = (argv.next(), argv.next()) else {
        bail!("usage: interop_peer serve|check ADDRESS");
    };
    let addr: Address = address
        .parse()
        .with_context(|| format!("bad address {address:?}"))?;
    match command.as_str() {
        "serve" => serve(&addr),
        "check" => {
            let rt = tokio::runtime::Runtime::new()?;
            if rt.block_on(check(addr)) {
                Ok(())
            } else {
                std::process::exit(1)
            }
        }
        other => bail!("unknown command {other:?}: use serve or check"),
    }
}

// ===== serve =====

fn service() -> Methods {
    Methods::new()
        .add("echo", |args: Args| {
            let (args, kwargs) = args.into_values();
            Ok(Value::tuple([args, kwargs]))
        })
        .add_async("sleep", |args: Args| async move {
            args.expect_exactly("sleep", 1)?;
            let secs = args.args[0]
                .as_f64()
                .ok_or_else(|| RemoteError::bad_arguments("sleep() takes a number of seconds"))?;
            tokio::time::sleep(Duration::from_secs_f64(secs.clamp(0.0, 3600.0))).await;
            Ok(args.args[0].clone())
        })
        .add("raise_", |args: Args| {
            let mut args = args.args.into_iter();
            let type_name = match args.next() {
                Some(Value::Str(s)) => s,
                _ => {
                    return Err(RemoteError::bad_arguments(
                        "raise_() takes a type name first",
                    ))
                }
            };
            Err(RemoteError::exception(
                type_name,
                "builtins",
                args.collect(),
            ))
        })
        .add_stream("count", |args: Args| {
            let n = args.args.first().and_then(Value::as_i64).unwrap_or(0);
            futures::stream::iter(0..n).map(|i| Ok(Value::from(i)))
        })
        .add("big", |args: Args| {
            args.expect_exactly("big", 1)?;
            let n = args.args[0]
                .as_i64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| RemoteError::bad_arguments("big() takes a size in bytes"))?;
            Ok(Value::Bytes(vec![b'1'; n].into()))
        })
}

fn serve(addr: &Address) -> Result<()> {
    let mut builder = Server::builder(service()).nonblocking(true);
    if let Some((_, cert, key)) = tls_env() {
        builder = builder.tls(ServerTls::from_pem_files(cert, key, None)?);
    }
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let server = builder.build().bind(addr).await?;
        // The address bound (with the port the OS chose for port 0), for
        // `cargo xtask interop-test`; stdout is line-buffered, so it is
        // flushed at once.
        println!("listening on {}", server.local_address());
        server.wait().await;
        anyhow::Ok(())
    })?;
    // Blocking methods still running past the grace period are abandoned,
    // not waited for (as `Server::start` does).
    rt.shutdown_background();
    println!("rust interop server stopped");
    Ok(())
}

// ===== check =====

/// The nested value of the echo check: the same as `NESTED_ARGS` /
/// `NESTED_KWARGS` of the Python peers.
fn nested() -> Args {
    let args = vec![
        Value::list([
            Value::tuple([Value::from(1), Value::from("a")]),
            Value::tuple([]),
        ]),
        Value::dict([
            (
                Value::from("k"),
                Value::tuple([Value::from(1), Value::from(2)]),
            ),
            (
                Value::tuple([
                    Value::from(1),
                    Value::tuple([Value::from(2), Value::from(3)]),
                ]),
                Value::from("tuple key"),
            ),
            (Value::from(7), Value::None),
        ]),
        Value::from(1u128 << 70),
        Value::from(-(1i128 << 65)),
        Value::from(&b"\x00\xffbytes"[..]),
        Value::Set(vec![Value::from(1), Value::from(2), Value::from("x")]),
        Value::FrozenSet(vec![
            Value::from(3),
            Value::tuple([Value::from(4), Value::from(5)]),
        ]),
        Value::None,
        Value::from(1.5),
        Value::from(true),
        Value::from(false),
        Value::from(0),
        Value::from("h\u{e9}llo"),
    ];
    let mut out = Args::positional(args);
    out = out.kwarg("foo", "foo");
    out.kwarg(
        "nested",
        Value::dict([(
            Value::from("a"),
            Value::list([
                Value::from(1),
                Value::tuple([Value::from(2)]),
                Value::Set(vec![Value::from(&b"b"[..])]),
            ]),
        )]),
    )
}

/// `v` with the items of every set in a canonical order, so values compare
/// regardless of the order a peer iterated its sets in.
fn canonical(v: &Value) -> Value {
    let sorted = |items: &[Value]| {
        let mut items: Vec<Value> = items.iter().map(canonical).collect();
        items.sort_by_key(|i| format!("{i:?}"));
        items
    };
    match v {
        Value::List(items) => Value::List(items.iter().map(canonical).collect()),
        Value::Tuple(items) => Value::Tuple(items.iter().map(canonical).collect()),
        Value::Set(items) => Value::Set(sorted(items)),
        Value::FrozenSet(items) => Value::FrozenSet(sorted(items)),
        Value::Dict(entries) => Value::Dict(
            entries
                .iter()
                .map(|(k, v)| (canonical(k), canonical(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// An address of the same kind as `addr` where nobody listens.
fn nowhere(addr: &Address) -> Result<Address> {
    Ok(match addr {
        Address::Unix(path) => {
            let mut p = path.clone().into_os_string();
            p.push(".nobody");
            Address::unix(p)
        }
        _ => {
            let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
            Address::tcp("127.0.0.1", probe.local_addr()?.port())
        }
    })
}

/// Runs every check, printing one line each; true if all passed.
async fn check(addr: Address) -> bool {
    let client = match make_client(addr.clone()) {
        Ok(c) => c,
        Err(e) => {
            println!("FAIL setup {e:#}");
            return false;
        }
    };
    let mut all = true;
    macro_rules! run {
        ($name:expr, $body:expr) => {{
            let start = Instant::now();
            let outcome: Result<String> = $body.await;
            let secs = start.elapsed().as_secs_f64();
            match outcome {
                Ok(detail) => println!("PASS {} ({secs:.2}s) {detail}", $name),
                Err(e) => {
                    all = false;
                    println!("FAIL {} ({secs:.2}s) {e:#}", $name);
                }
            }
        }};
    }
    run!("connected", async {
        ensure!(
            client.connected(Duration::from_secs(1)).await,
            "connected() is false"
        );
        let info = client.server_info().context("no server hello recorded")?;
        ensure!(info.nonblocking, "server did not announce nonblocking");
        let other = make_client(nowhere(&addr)?)?;
        ensure!(
            !other.connected(Duration::from_millis(500)).await,
            "connected() to an address nobody listens on is true"
        );
        Ok(format!("server {:?}", info.name))
    });
    run!("timeout", async {
        let start = Instant::now();
        let options = CallOptions {
            call_timeout: Some(Some(Duration::from_millis(200))),
            ..CallOptions::default()
        };
        match client
            .call_with("sleep", Args::new().arg(2.0), &options)
            .await
        {
            Err(CallError::Timeout { stage }) => {
                let elapsed = start.elapsed();
                ensure!(
                    elapsed < Duration::from_millis(1500),
                    "timed out only after {elapsed:?}"
                );
                Ok(format!("timed out ({stage}) after {elapsed:.2?}"))
            }
            other => bail!("sleep(2) with a 0.2 s timeout gave {other:?}"),
        }
    });
    run!("echo", async {
        let args = nested();
        let (want_args, want_kwargs) = args.clone().into_values();
        let want = Value::tuple([want_args, want_kwargs]);
        let got = client.call("echo", args).await?;
        ensure!(
            canonical(&got) == canonical(&want),
            "echo returned\n  {got}\nnot\n  {want}"
        );
        Ok(String::new())
    });
    run!("exception", async {
        match client
            .call("raise_", Args::new().arg("KeyError").arg("k"))
            .await
        {
            Err(CallError::Remote(e)) => {
                let got = (e.kind, e.type_name.as_str(), e.module.as_str(), &e.args[..]);
                let want_args = [Value::from("k")];
                let want = (ErrorKind::Exception, "KeyError", "builtins", &want_args[..]);
                ensure!(got == want, "got {got:?}, not {want:?}");
                // str(KeyError('k')) is the repr of the key (docs/PROTOCOL.md, "Errors").
                ensure!(e.message == "'k'", "message {:?}, not \"'k'\"", e.message);
                let args: Vec<String> = e.args.iter().map(Value::to_string).collect();
                Ok(format!("{}({})", e.type_name, args.join(", ")))
            }
            other => bail!("raise_ gave {other:?}"),
        }
    });
    run!("big", async {
        let n = 3 * 1024 * 1024;
        let got = client.call("big", Args::new().arg(n as i64)).await?;
        match got.as_bytes() {
            Some(b) if b.len() == n && b.iter().all(|&c| c == b'1') => Ok(String::new()),
            _ => bail!(
                "big({n}) returned a {} that is not {n} b'1's",
                got.type_name()
            ),
        }
    });
    run!("nb", async {
        let start = Instant::now();
        let options = CallOptions {
            nb_fetch_tick: Some(Duration::from_millis(100)),
            ..CallOptions::default()
        };
        let got = client
            .nb_call_with("sleep", Args::new().arg(0.6), &options)
            .await?;
        let elapsed = start.elapsed();
        ensure!(got == Value::from(0.6), "returned {got}");
        ensure!(
            elapsed >= Duration::from_millis(600),
            "returned after {elapsed:?}, before the call could end"
        );
        Ok(format!("returned after {elapsed:.2?}"))
    });
    run!("stream", async {
        let items: Vec<Value> = client
            .call_streaming("count", Args::new().arg(300))
            .await?
            .into_stream()
            .map(|item| item.map_err(anyhow::Error::from))
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_>>()?;
        ensure!(
            items == (0..300).map(Value::from).collect::<Vec<_>>(),
            "count(300) streamed {} items, not 0..299",
            items.len()
        );
        // Leaving early (dropping the stream) cancels it on the server.
        let mut endless = client
            .call_streaming("count", Args::new().arg(1_000_000_000))
            .await?
            .into_stream();
        ensure!(endless.next().await.transpose()? == Some(Value::from(0)));
        drop(endless);
        ensure!(client.connected(Duration::from_secs(5)).await);
        Ok("300 items, one stream left early".to_owned())
    });
    run!("shutdown", async {
        client.shutdown().await?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let probe = make_client(addr.clone())?;
            if !probe.connected(Duration::from_millis(500)).await {
                return Ok("acked, server gone".to_owned());
            }
            ensure!(
                Instant::now() < deadline,
                "the server still answers 10 s after shutdown"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    all
}
