//! A slow method called non-blocking, as in the original pyrpc README.
//!
//! ```text
//! cargo run -p pyrpc-examples --example nb_echo            # echo sleeps 3 s
//! cargo run -p pyrpc-examples --example nb_echo -- 0.5     # or as long as you say
//! ```
//!
//! Starts a non-blocking server on a Unix socket in this process, then calls its
//! slow `echo` with `nb_call`: the client submits the call, then polls for the
//! result every `nb_fetch_tick` (500 ms here). A dropped connection between
//! polls loses nothing: the result waits on the server until fetched.

use std::time::Duration;

use pyrpc_client::{CallOptions, Client};
use pyrpc_proto::{Args, Value};
use pyrpc_server::{Methods, Server};
use pyrpc_transport::Address;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let secs: f64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(3.0);
    let dir = std::env::temp_dir().join(format!("pyrpc-nb-echo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let addr = Address::unix(dir.join("echo_server_socket"));

    let methods = Methods::new().add_async("echo", move |args: Args| async move {
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        let (args, kwargs) = args.into_values();
        Ok(Value::tuple([args, kwargs]))
    });
    let server = Server::builder(methods)
        .nonblocking(true)
        .build()
        .bind(&addr)
        .await?;

    let client = Client::new(addr);
    let options = CallOptions {
        nb_fetch_tick: Some(Duration::from_millis(500)),
        ..CallOptions::default()
    };
    println!("calling echo(1, foo='foo') non-blocking; it takes {secs} s");
    let ret = client
        .nb_call_with("echo", Args::new().arg(1).kwarg("foo", "foo"), &options)
        .await?;
    println!("{ret}");

    server.shutdown();
    server.wait().await;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
