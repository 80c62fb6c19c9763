//! The original pyrpc README's echo server, in Rust.
//!
//! ```text
//! cargo run -p pyrpc-examples --example echo_server -- 127.0.0.1:50300
//! cargo run -p pyrpc-examples --example echo_server -- unix:/tmp/echo_server_socket
//! ```
//!
//! Serves `echo(*args, **kwargs) -> (args, kwargs)`, `sleep(seconds)` and
//! `fail(*args)` (raises `ValueError(*args)`), non-blocking calls included,
//! until Ctrl-C, SIGTERM or a client's `shutdown()`. Any pyrpc client can call
//! it: `python examples/python/echo_client.py 127.0.0.1:50300` or the
//! `echo_client` example.
//!
//! Once bound it prints `listening on ADDRESS`, the address it got: with
//! port 0 (`127.0.0.1:0`) the OS picks a free port and that line tells which
//! (`cargo xtask demo` starts it so).

use std::time::Duration;

use pyrpc_proto::{Args, RemoteError, Value};
use pyrpc_server::{Methods, Server, ServerHandle};
use pyrpc_transport::Address;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let addr: Address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:50300".into())
        .parse()?;

    let methods = Methods::new()
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
            Ok(Value::from(secs))
        })
        .add("fail", |args: Args| {
            Err(RemoteError::exception("ValueError", "builtins", args.args))
        });

    let server = Server::builder(methods)
        .nonblocking(true)
        .build()
        .bind(&addr)
        .await?;
    // Flushed at once: stdout is line-buffered even when it is a pipe.
    println!("listening on {}", server.local_address());
    serve_until_stopped(&server).await?;
    println!("echo server stopped");
    Ok(())
}

/// Serves until a client's `shutdown()`, or Ctrl-C or SIGTERM (then shuts
/// down gracefully: running calls get their grace period).
async fn serve_until_stopped(server: &ServerHandle) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = server.wait() => return Ok(()),
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    server.shutdown();
    server.wait().await;
    Ok(())
}
