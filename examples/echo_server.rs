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

use std::time::Duration;

use pyrpc_proto::{Args, RemoteError, Value};
use pyrpc_server::{Methods, Server};
use pyrpc_transport::Address;

fn main() -> anyhow::Result<()> {
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

    println!("echo server listening on {addr} (Ctrl-C stops it)");
    Server::builder(methods)
        .nonblocking(true)
        .build()
        .start(&addr)?;
    println!("echo server stopped");
    Ok(())
}
