//! A typed service: one Rust trait is the contract of the server and the
//! client, and Python peers call it, or serve it, with the same names.
//!
//! ```text
//! cargo run -p pyrpc-examples --example greeter                          # both, in one process
//! cargo run -p pyrpc-examples --example greeter -- serve 127.0.0.1:50301 # a server, until shut down
//! cargo run -p pyrpc-examples --example greeter -- call 127.0.0.1:50301  # calls, then shuts it down
//! ```
//!
//! `examples/python/greeter_server.py` serves the same methods from Python,
//! `examples/python/greeter_client.py` calls them from Python; every pair
//! runs in `crates/pyrpc-python/tests/test_typed_rust.py`. This file is shown
//! in docs/guide-rust.md as it is.

use std::time::Duration;

use pyrpc_client::{CallOptions, ServiceError};
use pyrpc_server::{Address, Exception, Server};
use serde::{Deserialize, Serialize};

/// What `summarize` returns; a Python peer sees a dict.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub struct Summary {
    /// How many values there were.
    pub count: usize,
    /// Their mean.
    pub mean: f64,
}

/// The errors of the service, as the exceptions a Python peer raises.
#[derive(Debug, PartialEq, thiserror::Error, Exception)]
pub enum MathError {
    /// Python's builtin `ZeroDivisionError(message)`.
    #[error("division by zero: {0}")]
    #[exception(name = "ZeroDivisionError")]
    DivisionByZero(String),
    /// Python's builtin `ValueError(message)`.
    #[error("invalid: {0}")]
    #[exception(name = "ValueError")]
    Invalid(String),
}

/// The contract: names, argument and result types, errors.
#[pyrpc_server::service]
pub trait Greeter {
    /// Greets `name`, with `greeting` or "Hello".
    async fn greet(&self, name: String, greeting: Option<String>) -> String;
    /// Returns `a / b`.
    async fn divide(&self, a: f64, b: f64) -> Result<f64, MathError>;
    /// Counts `values` and averages them.
    async fn summarize(&self, values: Vec<f64>) -> Result<Summary, MathError>;
}

/// The Rust implementation.
struct MyGreeter;

impl Greeter for MyGreeter {
    async fn greet(&self, name: String, greeting: Option<String>) -> String {
        format!("{}, {name}!", greeting.as_deref().unwrap_or("Hello"))
    }

    async fn divide(&self, a: f64, b: f64) -> Result<f64, MathError> {
        if b == 0.0 {
            return Err(MathError::DivisionByZero("float division by zero".into()));
        }
        Ok(a / b)
    }

    async fn summarize(&self, values: Vec<f64>) -> Result<Summary, MathError> {
        if values.is_empty() {
            return Err(MathError::Invalid("mean of no values".into()));
        }
        let count = values.len();
        let mean = values.iter().sum::<f64>() / count as f64;
        Ok(Summary { count, mean })
    }
}

/// Serves `MyGreeter` at `address` until a client shuts the server down.
async fn serve(address: Address) -> anyhow::Result<()> {
    let server = Server::builder(GreeterServer::new(MyGreeter))
        .nonblocking(true)
        .build();
    let handle = server.bind(&address).await?;
    println!("serving on {}", handle.local_address());
    handle.wait().await;
    Ok(())
}

/// Calls every method of the server at `address` (Rust or Python), checks
/// the answers, then shuts the server down.
async fn call(address: Address) -> anyhow::Result<()> {
    let c = GreeterClient::new(address);
    assert_eq!(c.greet("Rust".into(), None).await?, "Hello, Rust!");
    assert_eq!(
        c.greet("Rust".into(), Some("Hi".into())).await?,
        "Hi, Rust!"
    );
    assert_eq!(c.divide(1.0, 4.0).await?, 0.25);
    let summary = c.summarize(vec![1.0, 2.0, 6.0]).await?;
    assert_eq!(
        summary,
        Summary {
            count: 3,
            mean: 3.0
        }
    );

    // The service's errors come back as themselves...
    match c.divide(1.0, 0.0).await {
        Err(ServiceError::Service(MathError::DivisionByZero(m))) => assert!(m.contains("zero")),
        other => anyhow::bail!("expected DivisionByZero, got {other:?}"),
    }
    let e = c.summarize(vec![]).await.expect_err("no values");
    assert!(
        matches!(e, ServiceError::Service(MathError::Invalid(_))),
        "{e:?}"
    );

    // ...with per-call options, and as non-blocking calls.
    let patient = c.with_options(CallOptions::new().call_timeout(Duration::from_secs(10)));
    assert_eq!(patient.nb_divide(9.0, 3.0).await?, 3.0);

    c.client().shutdown().await?;
    println!("all calls returned what they should");
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    match (args.next().as_deref(), args.next()) {
        (Some("serve"), Some(address)) => serve(address.parse()?).await,
        (Some("call"), Some(address)) => call(address.parse()?).await,
        (None, _) => {
            // Both sides in this process, on a port the OS picks.
            let server = Server::builder(GreeterServer::new(MyGreeter))
                .nonblocking(true)
                .build();
            let handle = server.bind(&Address::tcp("127.0.0.1", 0)).await?;
            call(handle.local_address().clone()).await?;
            handle.wait().await;
            Ok(())
        }
        _ => anyhow::bail!("usage: greeter [serve ADDRESS | call ADDRESS]"),
    }
}
