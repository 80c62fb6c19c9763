//! Calls of a callee that answers directly (`Callee::answers_directly`, as
//! the Python binding does): answered from the callee's own thread, and
//! still cancelled, stopped at their deadline and answered when the thread
//! drops its `done` or the callee panics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pyrpc_proto::wire::{self, request, response};
use pyrpc_proto::{Args, ErrorKind, Value};
use pyrpc_server::{CallContext, CallDone, CallFuture, Callee, Server, ServerConfig};

use crate::peer::{call, Outcome, Peer};

/// Runs every call on a thread of its own and answers from there.
struct Threads;

/// Waits (on a callee thread) until `ctx` is cancelled, for at most 10 s;
/// true when it was.
fn wait_cancelled(ctx: &CallContext) -> bool {
    let until = Instant::now() + Duration::from_secs(10);
    while !ctx.is_cancelled() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(2));
    }
    ctx.is_cancelled()
}

impl Callee for Threads {
    fn call(&self, _ctx: CallContext, _method: &str, _args: Args) -> CallFuture {
        Box::pin(async { panic!("a callee that answers directly is never called so") })
    }

    fn answers_directly(&self) -> bool {
        true
    }

    fn call_then(&self, ctx: CallContext, method: &str, args: Args, done: CallDone) {
        let method = method.to_owned();
        if method == "panic" {
            panic!("call_then panicked");
        }
        std::thread::spawn(move || match method.as_str() {
            "echo" => done.finish(Ok(Value::List(args.args))),
            "big" => done.finish(Ok(Value::Bytes(vec![7u8; 64 * 1024].into()))),
            // Answers once cancelled, with what it saw (never sent: the
            // server has answered the call already).
            "wait" => {
                let seen = wait_cancelled(&ctx);
                done.finish(Ok(Value::Bool(seen)));
            }
            "drop" => drop(done),
            other => done.finish(Err(pyrpc_proto::RemoteError::no_such_method(other))),
        });
    }
}

/// (calls, errors, in flight) as the `Stats` request reports them.
async fn counts(p: &mut Peer) -> (u64, u64, u64) {
    p.request(1000, request::Kind::Stats(wire::Stats {})).await;
    match p.recv().await.expect("stats response").kind {
        Some(wire::server_frame::Kind::Response(wire::Response {
            kind: Some(response::Kind::Stats(s)),
            ..
        })) => (s.calls, s.errors, s.in_flight),
        other => panic!("expected stats, got {other:?}"),
    }
}

fn server(config: ServerConfig) -> Server {
    Server::builder(Arc::new(Threads)).config(config).build()
}

#[tokio::test]
async fn answered_from_the_callee_thread() {
    let s = server(ServerConfig::default());
    let mut p = Peer::connect(&s).await;
    let v = p
        .call_wait("echo", Args::new().arg(1).arg("x"))
        .await
        .value();
    assert_eq!(v, Value::List(vec![Value::from(1), Value::from("x")]));
    let e = p.call_wait("nope", Args::new()).await.error();
    assert_eq!(e.kind, ErrorKind::NoSuchMethod);
    let e = p.call_wait("_private", Args::new()).await.error();
    assert_eq!(e.kind, ErrorKind::NoSuchMethod);
    assert_eq!(counts(&mut p).await, (3, 2, 0));
}

#[tokio::test]
async fn a_dropped_done_or_a_panic_answers_and_the_server_keeps_serving() {
    let s = server(ServerConfig::default());
    let mut p = Peer::connect(&s).await;
    let e = p.call_wait("drop", Args::new()).await.error();
    assert_eq!(e.kind, ErrorKind::Exception);
    assert!(e.message.contains("without an answer"), "{}", e.message);
    let e = p.call_wait("panic", Args::new()).await.error();
    assert_eq!(e.kind, ErrorKind::Exception);
    assert!(e.message.contains("panicked"), "{}", e.message);
    let v = p.call_wait("echo", Args::new().arg(2)).await.value();
    assert_eq!(v, Value::List(vec![Value::from(2)]));
}

#[tokio::test]
async fn cancel_answers_at_once_and_reaches_the_thread() {
    let s = server(ServerConfig::default());
    let mut p = Peer::connect(&s).await;
    p.call(1, "wait", Args::new()).await;
    p.request(2, request::Kind::Cancel(wire::Cancel { id: 1 }))
        .await;
    let mut got = Vec::new();
    for _ in 0..2 {
        got.push(p.response().await);
    }
    got.sort_by_key(|(id, _)| *id);
    match &got[0] {
        (1, Outcome::Error(e)) => assert_eq!(e.kind, ErrorKind::Cancelled),
        other => panic!("expected the call cancelled, got {other:?}"),
    }
    assert!(matches!(got[1], (2, Outcome::Ack)), "{:?}", got[1]);
    // The connection goes on; the cancelled call's late answer is not sent.
    let v = p.call_wait("echo", Args::new()).await.value();
    assert_eq!(v, Value::List(vec![]));
    assert_eq!(counts(&mut p).await, (2, 1, 0));
}

#[tokio::test]
async fn the_deadline_answers_while_the_thread_still_runs() {
    let s = server(ServerConfig::default());
    let mut p = Peer::connect(&s).await;
    let started = Instant::now();
    let out = p
        .ask(1, request::Kind::Call(call("wait", Args::new(), 200)))
        .await;
    match out {
        Outcome::Error(e) => assert_eq!(e.kind, ErrorKind::DeadlineExceeded, "{}", e.message),
        other => panic!("expected DEADLINE_EXCEEDED, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    let v = p.call_wait("echo", Args::new()).await.value();
    assert_eq!(v, Value::List(vec![]));
}

#[tokio::test]
async fn replies_past_a_full_queue_wait_for_room_in_order_of_room() {
    // Room for one 64 KiB reply at a time: the rest wait on the runtime.
    let config = ServerConfig {
        max_queued_reply_bytes: 80 * 1024,
        ..ServerConfig::default()
    };
    let s = server(config);
    let mut p = Peer::connect(&s).await;
    let reqs = (1..=20)
        .map(|id| (id, request::Kind::Call(call("big", Args::new(), 0))))
        .collect();
    p.requests(reqs).await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        let (id, out) = p.response().await;
        assert_eq!(out.value(), Value::Bytes(vec![7u8; 64 * 1024].into()));
        ids.push(id);
    }
    ids.sort_unstable();
    assert_eq!(ids, (1..=20).collect::<Vec<_>>());
    assert_eq!(counts(&mut p).await, (20, 0, 0));
}
