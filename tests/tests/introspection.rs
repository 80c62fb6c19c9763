//! `ListMethods` and `Stats` between a real Rust client and server.

use std::time::Duration;

use pyrpc_client::Client;
use pyrpc_proto::{Args, MethodInfo, Value};
use pyrpc_server::{CallContext, CallFuture, Callee, Methods, Server};
use pyrpc_tests::{spawn_server, spawn_server_with, trace_init, Kind, KINDS};
use pyrpc_transport::Address;

#[tokio::test]
async fn list_methods_names_the_table_sorted_then_the_builtins() {
    trace_init();
    for kind in KINDS {
        let server = spawn_server(kind).await;
        let client = Client::new(server.addr.clone());
        let names: Vec<String> = client
            .list_methods()
            .await
            .expect("list")
            .into_iter()
            .map(|m| m.name)
            .collect();
        assert_eq!(
            names,
            [
                "add",
                "big",
                "count",
                "echo",
                "gated",
                "raise_",
                "sleep",
                "connected",
                "shutdown"
            ],
            "{kind:?}"
        );
        server.stop().await;
    }
}

/// A callee listing private names, duplicates and a builtin's name: the
/// server filters them.
struct Odd;

impl Callee for Odd {
    fn call(&self, _ctx: CallContext, method: &str, _args: Args) -> CallFuture {
        let e = pyrpc_proto::RemoteError::no_such_method(method);
        Box::pin(async move { Err(e) })
    }

    fn methods(&self) -> Vec<MethodInfo> {
        vec![
            MethodInfo::new("zeta").signature("(x, /, y=2)").doc("Z."),
            MethodInfo::new("_hidden"),
            MethodInfo::new("__init__"),
            MethodInfo::new("connected").doc("a shadow"),
            MethodInfo::new("alpha"),
            MethodInfo::new("alpha"),
        ]
    }
}

#[tokio::test]
async fn list_methods_drops_private_and_duplicate_names_and_keeps_docs() {
    trace_init();
    let handle = Server::builder(Odd)
        .build()
        .bind(&Address::tcp("127.0.0.1", 0))
        .await
        .expect("bind");
    let client = Client::new(handle.local_address().clone());
    let listed = client.list_methods().await.expect("list");
    let shown: Vec<String> = listed.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        ["alpha(...)", "zeta(x, /, y=2)", "connected()", "shutdown()"]
    );
    assert_eq!(listed[1].doc.as_deref(), Some("Z."));
    assert_eq!(
        listed[2].doc.as_deref(),
        Some("Built in: returns True (the server is up).")
    );
    handle.shutdown();
    handle.wait().await;
}

#[test]
fn the_blocking_client_lists_methods_and_stats_too() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let methods = Methods::new()
        .add("echo", |a: Args| Ok(Value::Tuple(a.args)))
        .describe("echo", "(*args)", "Returns its positional arguments.");
    let handle = rt
        .block_on(
            Server::builder(methods)
                .build()
                .bind(&Address::tcp("127.0.0.1", 0)),
        )
        .expect("bind");
    let client =
        pyrpc_client::blocking::Client::new(handle.local_address().clone()).expect("client");
    let listed = client.list_methods().expect("list");
    assert_eq!(listed[0].to_string(), "echo(*args)");
    assert_eq!(
        listed[0].doc.as_deref(),
        Some("Returns its positional arguments.")
    );
    client.call("echo", Args::new().arg(1)).expect("echo");
    let stats = client.stats().expect("stats");
    assert_eq!((stats.calls, stats.errors), (1, 0));
    handle.shutdown();
    rt.block_on(handle.wait());
}

#[tokio::test]
async fn stats_count_calls_errors_in_flight_and_kept_results() {
    trace_init();
    let server = spawn_server_with(Kind::Tcp, |b| b.nonblocking(true)).await;
    let client = Client::new(server.addr.clone());

    let fresh = client.stats().await.expect("stats");
    assert_eq!((fresh.calls, fresh.errors, fresh.in_flight), (0, 0, 0));
    assert_eq!(fresh.connections, 1, "this client's connection");
    assert_eq!(fresh.latency.max, Duration::ZERO);

    for i in 0..5 {
        client
            .call("add", Args::new().arg(i).arg(1))
            .await
            .expect("add");
    }
    let e = client
        .call("raise_", Args::new().arg("ValueError").arg("bad"))
        .await;
    assert!(e.is_err());
    // Built-ins never reach the callee and are not counted.
    assert!(client
        .call("connected", Args::new())
        .await
        .expect("connected")
        .as_bool()
        .unwrap_or(false));

    // One call held open is in flight.
    let gated = tokio::spawn({
        let client = client.clone();
        async move { client.call("gated", Args::new()).await }
    });
    server.service.gate_entered.notified().await;
    let mid = client.stats().await.expect("stats");
    assert_eq!(mid.in_flight, 1);
    assert_eq!((mid.calls, mid.errors), (6, 1));
    assert!(mid.latency.p50 > Duration::ZERO);
    assert!(mid.latency.p50 <= mid.latency.p99 && mid.latency.p99 <= mid.latency.max);
    server.service.gate_open.notify_one();
    gated.await.expect("join").expect("gated");

    client.nb_call("echo", Args::new()).await.expect("nb");
    let end = client.stats().await.expect("stats");
    assert_eq!((end.calls, end.in_flight), (8, 0));
    // nb_call releases its result once fetched.
    assert_eq!(end.kept_results, 0);
    assert!(end.uptime > Duration::ZERO);
    server.stop().await;
}
