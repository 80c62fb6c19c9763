//! Callee redirection: the server dispatches calls to an object of yours.
//!
//! ```text
//! cargo run -p pyrpc-examples --example callee
//! ```
//!
//! The original pyrpc's `Server(callee=obj)` sends every call to `obj`'s
//! methods. In Rust, anything implementing [`pyrpc_server::Callee`] can be the
//! callee: here a counter that keeps state between calls, with its own routing.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use pyrpc_client::Client;
use pyrpc_proto::{Args, RemoteError, Value};
use pyrpc_server::{CallContext, CallFuture, Callee, Server};
use pyrpc_transport::Address;

/// The object calls are redirected to.
#[derive(Default)]
struct Counter {
    total: AtomicI64,
}

impl Callee for Counter {
    fn call(&self, _ctx: CallContext, method: &str, args: Args) -> CallFuture {
        let result = match method {
            "add" => args.expect_exactly("add", 1).and_then(|()| {
                let n = args.args[0]
                    .as_i64()
                    .ok_or_else(|| RemoteError::bad_arguments("add() takes an int"))?;
                Ok(Value::from(self.total.fetch_add(n, Ordering::SeqCst) + n))
            }),
            "total" => Ok(Value::from(self.total.load(Ordering::SeqCst))),
            other => Err(RemoteError::no_such_method(other)),
        };
        Box::pin(async move { result })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let counter = Arc::new(Counter::default());
    let server = Server::builder(counter.clone())
        .build()
        .bind(&Address::tcp("127.0.0.1", 0))
        .await?;
    let client = Client::new(server.local_address().clone());

    for n in [1, 2, 3] {
        println!(
            "add({n}) -> {}",
            client.call("add", Args::new().arg(n)).await?
        );
    }
    println!("total() -> {}", client.call("total", Args::new()).await?);
    match client.call("missing", Args::new()).await {
        Err(e) => println!("missing() -> {e}"),
        Ok(v) => println!("missing() unexpectedly returned {v}"),
    }
    assert_eq!(counter.total.load(Ordering::SeqCst), 6);

    server.shutdown();
    server.wait().await;
    Ok(())
}
