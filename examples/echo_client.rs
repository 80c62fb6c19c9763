//! The original pyrpc README's echo client, in Rust.
//!
//! ```text
//! cargo run -p pyrpc-examples --example echo_client -- 127.0.0.1:50300
//! ```
//!
//! Calls `echo(1, foo='foo')` on the server at the given address (start one
//! with the `echo_server` example or `examples/python/echo_server.py`) and
//! prints the reply, `((1,), {'foo': 'foo'})`.

use pyrpc_client::Client;
use pyrpc_proto::Args;
use pyrpc_transport::Address;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr: Address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:50300".into())
        .parse()?;
    let client = Client::new(addr);
    let ret = client
        .call("echo", Args::new().arg(1).kwarg("foo", "foo"))
        .await?;
    println!("{ret}");
    Ok(())
}
