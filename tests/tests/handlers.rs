//! The untyped API without traps: typed handlers of one argument, keyword
//! arguments, typed inline/blocking/async handlers, the call's context from
//! every kind of handler, and the client and per-call option builders; over
//! a real socket.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use pyrpc_client::{Args, CallOptions, Client, ErrorKind, Value};
use pyrpc_server::{Address, CallContext, Methods, RemoteError, Server};
use pyrpc_tests::trace_init;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Point {
    x: i64,
    y: i64,
}

/// Milliseconds to the caller's deadline as this handler sees it, or -1
/// without a deadline, or an error outside of a call.
fn ms_left() -> Result<i64, RemoteError> {
    let ctx = CallContext::current()
        .ok_or_else(|| RemoteError::exception("RuntimeError", "", vec!["no context".into()]))?;
    Ok(ctx.deadline.map_or(-1, |d| {
        d.saturating_duration_since(Instant::now()).as_millis() as i64
    }))
}

fn methods() -> Methods {
    Methods::new()
        .add_typed("greet", |name: String| Ok(format!("Hello, {name}!")))
        .params("greet", ["name"])
        .add_typed("norm1", |p: Point| Ok(p.x.abs() + p.y.abs()))
        .add_typed("maybe", |v: Option<i64>| Ok(v.unwrap_or(-1)))
        .add_typed("pair", |(a, b): (i64, Option<i64>)| Ok(a + b.unwrap_or(0)))
        .params("pair", ["a", "b"])
        .add_typed("nothing", |(): ()| Ok("none"))
        .add_typed_blocking("slow_double", |n: i64| {
            std::thread::sleep(Duration::from_millis(10));
            Ok(n * 2)
        })
        .add_typed_async("later", |n: i64| async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            Ok(n + 1)
        })
        // The context, from each kind of handler.
        .add("ctx_inline", |_a: Args| ms_left().map(Value::from))
        .add_blocking("ctx_blocking", |_a: Args| ms_left().map(Value::from))
        .add_async("ctx_async", |_a: Args| async move {
            tokio::task::yield_now().await;
            ms_left().map(Value::from)
        })
        .add_typed("ctx_typed", |(): ()| ms_left())
        .add_typed_blocking("ctx_typed_blocking", |(): ()| ms_left())
        .add_typed_async("ctx_typed_async", |(): ()| async move { ms_left() })
}

async fn serve() -> (pyrpc_server::ServerHandle, Address) {
    let handle = Server::builder(methods())
        .build()
        .bind(&Address::tcp("127.0.0.1", 0))
        .await
        .unwrap();
    let addr = handle.local_address().clone();
    (handle, addr)
}

#[tokio::test]
async fn one_argument_handlers_and_calls_do_what_they_say() {
    trace_init();
    let (handle, addr) = serve().await;
    let c = Client::new(addr);
    // One argument: no 1-tuple to write on either side.
    let s: String = c.call_typed("greet", "Py").await.unwrap();
    assert_eq!(s, "Hello, Py!");
    let v = c.call("greet", Args::new().arg("Py")).await.unwrap();
    assert_eq!(v, Value::from("Hello, Py!"));
    let n: i64 = c.call_typed("norm1", Point { x: -1, y: 2 }).await.unwrap();
    assert_eq!(n, 3);
    // `None` is one argument, not "no arguments".
    let n: i64 = c.call_typed("maybe", None::<i64>).await.unwrap();
    assert_eq!(n, -1);
    let s: String = c.call_typed("nothing", ()).await.unwrap();
    assert_eq!(s, "none");
    let e = c
        .call("greet", Args::new().arg("a").arg("b"))
        .await
        .unwrap_err();
    assert_eq!(
        e.remote().unwrap().message,
        "greet() takes 1 positional argument but 2 were given"
    );
    // Typed blocking and async handlers, and typed non-blocking-free calls
    // with options.
    let opts = CallOptions::new().call_timeout(Duration::from_secs(5));
    let n: i64 = c.call_typed_with("slow_double", 21, &opts).await.unwrap();
    assert_eq!(n, 42);
    let n: i64 = c.call_typed("later", 41).await.unwrap();
    assert_eq!(n, 42);
    handle.shutdown();
    handle.wait().await;
}

#[tokio::test]
async fn keyword_arguments_bind_to_named_parameters() {
    let (handle, addr) = serve().await;
    let c = Client::new(addr);
    let v = c
        .call("greet", Args::new().kwarg("name", "Py"))
        .await
        .unwrap();
    assert_eq!(v, Value::from("Hello, Py!"));
    let v = c.call("pair", Args::new().kwarg("a", 1)).await.unwrap();
    assert_eq!(v, Value::from(1));
    let v = c
        .call("pair", Args::new().kwarg("b", 2).kwarg("a", 1))
        .await
        .unwrap();
    assert_eq!(v, Value::from(3));
    let e = c
        .call("greet", Args::new().kwarg("nme", "Py"))
        .await
        .unwrap_err();
    let e = e.remote().unwrap();
    assert_eq!(e.kind, ErrorKind::BadArguments);
    assert_eq!(
        e.message,
        "greet() got an unexpected keyword argument 'nme'"
    );
    // Without named parameters, keywords are refused.
    let e = c
        .call("norm1", Args::new().kwarg("p", 1))
        .await
        .unwrap_err();
    assert_eq!(
        e.remote().unwrap().message,
        "norm1() got an unexpected keyword argument 'p'"
    );
    let listed = c.list_methods().await.unwrap();
    let pair = listed.iter().find(|m| m.name == "pair").unwrap();
    assert_eq!(pair.to_string(), "pair(a, b)");
    handle.shutdown();
    handle.wait().await;
}

#[tokio::test]
async fn every_kind_of_handler_sees_the_calls_context() {
    let (handle, addr) = serve().await;
    // The client's timeout (from the builder) travels as the deadline;
    // a per-call option overrides it.
    let c = Client::builder(addr)
        .call_timeout(Duration::from_secs(20))
        .build();
    for method in [
        "ctx_inline",
        "ctx_blocking",
        "ctx_async",
        "ctx_typed",
        "ctx_typed_blocking",
        "ctx_typed_async",
    ] {
        let left = c.call(method, Args::new()).await.unwrap();
        let left = left.as_i64().unwrap();
        assert!(left > 10_000 && left <= 20_000, "{method}: {left}");
        let opts = CallOptions::new().no_call_timeout();
        let none = c.call_with(method, Args::new(), &opts).await.unwrap();
        assert_eq!(none, Value::from(-1), "{method}");
    }
    assert!(CallContext::current().is_none());
    handle.shutdown();
    handle.wait().await;
}
