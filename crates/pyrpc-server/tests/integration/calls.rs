//! Calls: dispatch, builtins, argument checks, values, concurrency,
//! `synchronous`, deadlines.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pyrpc_proto::wire::{self, request};
use pyrpc_proto::{Args, ErrorKind, Value};
use pyrpc_server::{CallContext, CallFuture, Callee, Methods, Server, ServerConfig};

use crate::peer::{call, nested, server, Gate, Outcome, Peer};

fn default_server() -> (Server, Gate) {
    let gate = Gate::new();
    (server(&gate, ServerConfig::default()), gate)
}

#[tokio::test]
async fn echo_keeps_tuples_and_kwargs() {
    let (s, _) = default_server();
    let mut p = Peer::connect(&s).await;
    let v = p
        .call_wait("echo", Args::new().arg(1).kwarg("foo", "foo"))
        .await
        .value();
    assert_eq!(v.to_string(), "((1,), {'foo': 'foo'})");
}

#[tokio::test]
async fn unknown_method_is_no_such_method() {
    let (s, _) = default_server();
    let mut p = Peer::connect(&s).await;
    let e = p.call_wait("nope", Args::new()).await.error();
    assert_eq!(e.kind, ErrorKind::NoSuchMethod);
    assert_eq!(e.type_name, "AttributeError");
}

/// Counts how often it is consulted.
struct Counting(AtomicUsize);

impl Callee for Counting {
    fn call(&self, _ctx: CallContext, _method: &str, _args: Args) -> CallFuture {
        self.0.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Ok(Value::None) })
    }
}

#[tokio::test]
async fn private_names_never_reach_the_callee() {
    let callee = Arc::new(Counting(AtomicUsize::new(0)));
    let s = Server::builder(Arc::clone(&callee)).build();
    let mut p = Peer::connect(&s).await;
    for name in ["_private", "__init__", "_"] {
        let e = p.call_wait(name, Args::new()).await.error();
        assert_eq!(e.kind, ErrorKind::NoSuchMethod, "{name}");
    }
    assert_eq!(callee.0.load(Ordering::SeqCst), 0);
    // a public name does reach it
    assert_eq!(
        p.call_wait("public", Args::new()).await.value(),
        Value::None
    );
    assert_eq!(callee.0.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn builtins_connected_and_ping() {
    let callee = Arc::new(Counting(AtomicUsize::new(0)));
    let s = Server::builder(Arc::clone(&callee)).build();
    let mut p = Peer::connect(&s).await;
    assert_eq!(
        p.call_wait("connected", Args::new()).await.value(),
        Value::Bool(true)
    );
    assert_eq!(p.ping().await, Outcome::Ack);
    assert_eq!(callee.0.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn request_without_kind_is_a_protocol_error_for_that_id() {
    let (s, _) = default_server();
    let mut p = Peer::connect(&s).await;
    p.send(wire::ClientFrame {
        kind: Some(wire::client_frame::Kind::Request(wire::Request {
            id: 7,
            kind: None,
        })),
    })
    .await;
    let (id, out) = p.response().await;
    assert_eq!(id, 7);
    assert_eq!(out.error().kind, ErrorKind::Protocol);
    assert_eq!(p.ping().await, Outcome::Ack);
}

#[tokio::test]
async fn bad_arguments() {
    let (s, _) = default_server();
    let mut p = Peer::connect(&s).await;
    let e = p
        .call_wait("add_one", Args::new().arg(1).arg(2))
        .await
        .error();
    assert_eq!(e.kind, ErrorKind::BadArguments);
    assert_eq!(e.type_name, "TypeError");
    assert_eq!(
        e.message,
        "add_one() takes 1 positional argument but 2 were given"
    );
    assert_eq!(
        p.call_wait("add_one", Args::new().arg(41)).await.value(),
        Value::from(42)
    );
}

#[tokio::test]
async fn duplicate_kwargs_are_bad_arguments() {
    let (s, _) = default_server();
    let mut p = Peer::connect(&s).await;
    let mut c = call("echo", Args::new().kwarg("x", 1), 0);
    c.kwargs.push(c.kwargs[0].clone());
    let e = p.ask(1, request::Kind::Call(c)).await.error();
    assert_eq!(e.kind, ErrorKind::BadArguments);
    assert!(
        e.message
            .contains("multiple values for keyword argument 'x'"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn remote_exception_keeps_its_data() {
    let (s, _) = default_server();
    let mut p = Peer::connect(&s).await;
    let e = p.call_wait("fail", Args::new()).await.error();
    assert_eq!(e.kind, ErrorKind::Exception);
    assert_eq!(e.type_name, "ValueError");
    assert_eq!(e.module, "builtins");
    assert_eq!(e.args, vec![Value::from("bad")]);
    assert_eq!(e.message, "bad");
    assert!(e.traceback.starts_with("Traceback"), "{}", e.traceback);
}

#[tokio::test]
async fn a_panicking_method_is_answered_and_the_server_survives() {
    let (s, _) = default_server();
    let mut p = Peer::connect(&s).await;
    let e = p.call_wait("panic", Args::new()).await.error();
    assert_eq!(e.kind, ErrorKind::Exception);
    assert!(e.message.contains("kaboom"), "{}", e.message);
    assert_eq!(p.ping().await, Outcome::Ack);
}

#[tokio::test]
async fn blocking_methods_run_on_the_blocking_pool() {
    let (s, _) = default_server();
    let mut p = Peer::connect(&s).await;
    assert_eq!(
        p.call_wait("blocking", Args::new().arg("x")).await.value(),
        Value::from("x")
    );
}

#[tokio::test]
async fn pickles_are_refused_unless_allowed() {
    let pickle = Value::list([Value::Pickle(Bytes::from_static(b"\x80\x04N."))]);
    let (s, _) = default_server();
    let mut p = Peer::connect(&s).await;
    let e = p
        .call_wait("echo", Args::new().arg(pickle.clone()))
        .await
        .error();
    assert_eq!(e.kind, ErrorKind::UnsupportedValue);
    assert!(
        e.message.starts_with("pickled values are refused: "),
        "{}",
        e.message
    );
    // nor sent back in a result
    let e = p.call_wait("pickle", Args::new()).await.error();
    assert_eq!(e.kind, ErrorKind::UnsupportedValue);

    let gate = Gate::new();
    let s = Server::builder(crate::peer::methods(&gate))
        .allow_pickle(true)
        .build();
    let mut p = Peer::connect(&s).await;
    let v = p
        .call_wait("echo", Args::new().arg(pickle.clone()))
        .await
        .value();
    assert_eq!(v, Value::tuple([Value::tuple([pickle]), Value::dict([])]));
}

#[tokio::test]
async fn too_deep_arguments_are_refused_and_the_connection_keeps_working() {
    let config = ServerConfig {
        max_value_depth: 5,
        ..ServerConfig::default()
    };
    let s = server(&Gate::new(), config);
    let mut p = Peer::connect(&s).await;
    // the args tuple itself is not counted: an argument of depth 5 is fine
    // (`blocking` returns its argument)
    assert_eq!(
        p.call_wait("blocking", Args::new().arg(nested(5))).await,
        Outcome::Value(nested(5))
    );
    let e = p
        .call_wait("echo", Args::new().arg(nested(6)))
        .await
        .error();
    assert_eq!(e.kind, ErrorKind::UnsupportedValue);
    assert!(e.message.contains("argument 1 of echo()"), "{}", e.message);
    let e = p
        .call_wait("echo", Args::new().kwarg("k", nested(6)))
        .await
        .error();
    assert_eq!(e.kind, ErrorKind::UnsupportedValue);
    // a result nested too deep is refused as well
    let e = p.call_wait("deep", Args::new().arg(10)).await.error();
    assert_eq!(e.kind, ErrorKind::UnsupportedValue);
    assert_eq!(p.ping().await, Outcome::Ack);
}

#[tokio::test]
async fn calls_of_one_connection_run_concurrently_and_reply_out_of_order() {
    let (s, gate) = default_server();
    let mut p = Peer::connect(&s).await;
    p.call(1, "gated", Args::new()).await;
    gate.wait_reached(1).await;
    p.call(2, "echo", Args::new().arg(2)).await;
    p.call(3, "add_one", Args::new().arg(3)).await;
    let (a, _) = p.response().await;
    let (b, _) = p.response().await;
    assert_eq!(
        [a, b],
        [2, 3],
        "fast calls answered while the slow one runs"
    );
    gate.open(1);
    let (id, out) = p.response().await;
    assert_eq!((id, out.value()), (1, Value::from("gated")));
}

/// Inline methods (`Methods::add`) and built-ins run on the connection's
/// reader: pipelined, they are answered in order, and a slow call of the same
/// connection (its own task) does not hold them up.
#[tokio::test]
async fn inline_calls_are_answered_in_order_next_to_a_slow_call() {
    let (s, gate) = default_server();
    let mut p = Peer::connect(&s).await;
    let mut reqs = vec![(0, request::Kind::Call(call("gated", Args::new(), 0)))];
    for i in 1..100u64 {
        let kind = match i % 3 {
            0 => request::Kind::Call(call("connected", Args::new(), 0)),
            1 => request::Kind::Call(call("add_one", Args::new().arg(i as i64), 0)),
            _ => request::Kind::Ping(wire::Ping {}),
        };
        reqs.push((i, kind));
    }
    p.requests(reqs).await;
    for i in 1..100u64 {
        let (id, out) = p.response().await;
        assert_eq!(id, i, "inline answers come in request order");
        match i % 3 {
            0 => assert_eq!(out, Outcome::Value(Value::Bool(true))),
            1 => assert_eq!(out, Outcome::Value(Value::from(i as i64 + 1))),
            _ => assert_eq!(out, Outcome::Ack),
        }
    }
    gate.open(1);
    assert_eq!(
        p.response().await,
        (0, Outcome::Value(Value::from("gated")))
    );
}

#[test]
fn methods_say_which_functions_run_inline() {
    let m = Methods::new()
        .add("inline", |_| Ok(Value::None))
        .add_blocking("blocking", |_| Ok(Value::None))
        .add_async("async", |_| async { Ok(Value::None) });
    assert!(m.runs_inline("inline"));
    assert!(!m.runs_inline("blocking"));
    assert!(!m.runs_inline("async"));
    assert!(!m.runs_inline("missing"));
}

#[tokio::test(start_paused = true)]
async fn in_flight_limit_stops_reading() {
    let config = ServerConfig {
        max_in_flight_per_connection: 2,
        ..ServerConfig::default()
    };
    let gate = Gate::new();
    let s = server(&gate, config);
    let mut p = Peer::connect(&s).await;
    p.call(1, "gated", Args::new()).await;
    p.call(2, "gated", Args::new()).await;
    gate.wait_reached(2).await;
    p.request(3, request::Kind::Ping(wire::Ping {})).await;
    // With two calls running the server does not read the ping: with the clock
    // paused, this times out only when nothing else can happen.
    let waited = tokio::time::timeout(Duration::from_secs(5), p.response()).await;
    assert!(waited.is_err(), "the third request was read: {waited:?}");
    gate.open(1);
    let mut ids = vec![p.response().await.0, p.response().await.0];
    ids.sort();
    assert!(ids == [1, 3] || ids == [2, 3], "{ids:?}");
    gate.open(1);
    assert!([1, 2].contains(&p.response().await.0));
}

/// A method recording the most calls it saw running at once.
fn concurrency_probe(config: ServerConfig) -> (Server, Arc<AtomicUsize>) {
    let running = Arc::new(AtomicUsize::new(0));
    let max = Arc::new(AtomicUsize::new(0));
    let m = Arc::clone(&max);
    let methods = Methods::new().add_async("probe", move |_| {
        let (running, max) = (Arc::clone(&running), Arc::clone(&m));
        async move {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            max.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(10)).await;
            running.fetch_sub(1, Ordering::SeqCst);
            Ok(Value::None)
        }
    });
    (Server::builder(methods).config(config).build(), max)
}

async fn run_probes(s: &Server, n: u64) {
    let mut p = Peer::connect(s).await;
    for id in 0..n {
        p.call(id, "probe", Args::new()).await;
    }
    for _ in 0..n {
        assert_eq!(p.response().await.1, Outcome::Value(Value::None));
    }
}

#[tokio::test(start_paused = true)]
async fn synchronous_runs_one_call_at_a_time() {
    let (s, max) = concurrency_probe(ServerConfig {
        synchronous: true,
        ..ServerConfig::default()
    });
    run_probes(&s, 5).await;
    assert_eq!(max.load(Ordering::SeqCst), 1);

    // the same probe does see concurrency without it
    let (s, max) = concurrency_probe(ServerConfig::default());
    run_probes(&s, 5).await;
    assert_eq!(max.load(Ordering::SeqCst), 5);
}

#[tokio::test(start_paused = true)]
async fn deadline_passed_while_queued_is_deadline_exceeded() {
    let gate = Gate::new();
    let s = Server::builder(crate::peer::methods(&gate))
        .synchronous(true)
        .build();
    let mut p = Peer::connect(&s).await;
    p.call(1, "gated", Args::new()).await;
    gate.wait_reached(1).await;
    // queued behind the running call, with 100 ms to live
    p.request(2, request::Kind::Call(call("echo", Args::new(), 100)))
        .await;
    // and one with plenty of time
    p.request(3, request::Kind::Call(call("echo", Args::new(), 60_000)))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    gate.open(1);
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(p.response().await);
    }
    got.sort_by_key(|(id, _)| *id);
    assert_eq!(got[0].1, Outcome::Value(Value::from("gated")));
    let e = match &got[1].1 {
        Outcome::Error(e) => e.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(e.kind, ErrorKind::DeadlineExceeded);
    assert!(matches!(got[2].1, Outcome::Value(_)), "{:?}", got[2].1);
}

#[tokio::test(start_paused = true)]
async fn result_finished_after_the_deadline_is_not_sent() {
    let gate = Gate::new();
    let s = Server::builder(crate::peer::methods(&gate)).build();
    let mut p = Peer::connect(&s).await;
    // the caller waits 100 ms; the method finishes after 500 ms
    p.request(1, request::Kind::Call(call("gated", Args::new(), 100)))
        .await;
    gate.wait_reached(1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    gate.open(1);
    let (id, outcome) = p.response().await;
    assert_eq!(id, 1);
    let e = match outcome {
        Outcome::Error(e) => e,
        other => panic!("{other:?}"),
    };
    assert_eq!(e.kind, ErrorKind::DeadlineExceeded);
    // Stopped at its deadline (docs/PROTOCOL.md, "Deadlines"), not sent late.
    assert!(
        e.message.contains("stopped at the caller's timeout"),
        "{}",
        e.message
    );
    // a call that finishes in time still gets its value
    p.request(2, request::Kind::Call(call("echo", Args::new(), 60_000)))
        .await;
    assert!(matches!(p.response().await, (2, Outcome::Value(_))));
}

#[tokio::test]
async fn context_tells_peer_deadline_and_mode() {
    struct Ctx;
    impl Callee for Ctx {
        fn call(&self, ctx: CallContext, _m: &str, _a: Args) -> CallFuture {
            Box::pin(async move {
                Ok(Value::tuple([
                    Value::from(ctx.peer),
                    Value::from(ctx.deadline.is_some()),
                    Value::from(ctx.nonblocking),
                ]))
            })
        }
    }
    let s = Server::builder(Ctx).build();
    let mut p = Peer::connect(&s).await;
    let v = p
        .ask(1, request::Kind::Call(call("m", Args::new(), 5_000)))
        .await
        .value();
    assert_eq!(
        v,
        Value::tuple([
            Value::from("test peer"),
            Value::from(true),
            Value::from(false)
        ])
    );
}

/// A keyword given twice is refused, whether the call has a few keywords
/// (checked by a scan) or many (checked with a set); distinct ones pass.
#[tokio::test]
async fn a_repeated_keyword_is_bad_arguments_with_few_or_many_keywords() {
    let (s, _) = default_server();
    let mut p = Peer::connect(&s).await;
    for n in [2usize, 8, 9, 20] {
        let mut args = Args::new();
        for i in 0..n {
            args = args.kwarg(format!("k{i}"), i as i64);
        }
        let distinct = call("echo", args.clone(), 0);
        let v = p.ask(1, request::Kind::Call(distinct)).await.value();
        assert!(
            v.to_string().contains(&format!("'k{}': {}", n - 1, n - 1)),
            "{n}: {v}"
        );
        let mut repeated = call("echo", args, 0);
        repeated.kwargs[n - 1].name = "k0".into();
        let e = p.ask(2, request::Kind::Call(repeated)).await.error();
        assert_eq!(e.kind, ErrorKind::BadArguments, "{n} keywords");
        assert!(
            e.message
                .contains("multiple values for keyword argument 'k0'"),
            "{}",
            e.message
        );
    }
}
