//! The `Stats` counting rule of docs/PROTOCOL.md ("Introspection and
//! statistics"): every `Call`, and every `Submit` that registered a new call
//! or was refused for its call, counts once, except the built-ins; any error
//! counts as an error. And the deadline rules the counts depend on
//! ("Deadlines"): late outcomes and calls never started.

use std::time::Duration;

use pyrpc_proto::wire::{self, request, response};
use pyrpc_proto::{Args, ErrorKind, Value};
use pyrpc_server::ServerConfig;

use crate::peer::{call, fetch, nested, server, submit, Gate, Outcome, Peer};

/// (calls, errors) as the `Stats` request reports them.
async fn counts(p: &mut Peer) -> (u64, u64) {
    p.request(1000, request::Kind::Stats(wire::Stats {})).await;
    let frame = p.recv().await.expect("stats response");
    match frame.kind {
        Some(wire::server_frame::Kind::Response(wire::Response {
            kind: Some(response::Kind::Stats(s)),
            ..
        })) => (s.calls, s.errors),
        other => panic!("expected stats, got {other:?}"),
    }
}

/// Asks and checks the error kind.
async fn refused(p: &mut Peer, method: &str, args: Args, want: ErrorKind) {
    let e = p.call_wait(method, args).await.error();
    assert_eq!(e.kind, want, "{method}: {e:?}");
}

#[tokio::test]
async fn every_call_but_the_builtins_counts_and_every_error_is_an_error() {
    let gate = Gate::new();
    // A depth limit the over-deep cases below pass.
    let config = ServerConfig {
        nonblocking: true,
        max_value_depth: 32,
        ..ServerConfig::default()
    };
    let s = server(&gate, config);
    let mut p = Peer::connect(&s).await;
    assert_eq!(counts(&mut p).await, (0, 0));

    assert_eq!(
        p.call_wait("echo", Args::new()).await,
        Outcome::Value(Value::tuple([Value::tuple([]), Value::dict([])]))
    );
    assert_eq!(counts(&mut p).await, (1, 0));

    // The built-ins are the server's own and never count.
    assert_eq!(
        p.call_wait("connected", Args::new()).await,
        Outcome::Value(Value::Bool(true))
    );
    assert_eq!(counts(&mut p).await, (1, 0));

    // Refusals of the call count as a call and an error, whoever refuses.
    refused(&mut p, "nope", Args::new(), ErrorKind::NoSuchMethod).await;
    refused(&mut p, "_private", Args::new(), ErrorKind::NoSuchMethod).await;
    refused(&mut p, "add_one", Args::new(), ErrorKind::BadArguments).await;
    refused(
        &mut p,
        "echo",
        Args::new().arg(nested(40)),
        ErrorKind::UnsupportedValue,
    )
    .await;
    refused(
        &mut p,
        "deep",
        Args::new().arg(40),
        ErrorKind::UnsupportedValue,
    )
    .await;
    refused(&mut p, "fail", Args::new(), ErrorKind::Exception).await;
    assert_eq!(counts(&mut p).await, (7, 6));

    // A Submit counts once when its call has an outcome; a repeated Submit
    // of the same call id is not a new call.
    let id = [7u8; 16];
    for rid in [20, 21] {
        let ack = p.ask(rid, submit(id, "echo", Args::new(), 0)).await;
        assert_eq!(ack, Outcome::Ack);
    }
    assert!(matches!(
        p.ask(22, fetch(id, 1000)).await,
        Outcome::Value(_)
    ));
    assert_eq!(counts(&mut p).await, (8, 6));
    // A Submit refused for its call counts as a call and an error.
    let bad = p
        .ask(23, submit([8u8; 16], "_private", Args::new(), 0))
        .await;
    assert_eq!(bad.error().kind, ErrorKind::NoSuchMethod);
    assert_eq!(counts(&mut p).await, (9, 7));
    // A request refused as a request (a malformed call id) is no call.
    let bad = p
        .ask(
            24,
            request::Kind::Submit(wire::Submit {
                call_id: bytes::Bytes::from_static(b"abc"),
                call: Some(call("echo", Args::new(), 0)),
                keep_ms: 0,
            }),
        )
        .await;
    assert_eq!(bad.error().kind, ErrorKind::Protocol);
    assert_eq!(counts(&mut p).await, (9, 7));
}

#[tokio::test(start_paused = true)]
async fn calls_past_their_deadline_count_as_errors() {
    let gate = Gate::new();
    let s = server(&gate, ServerConfig::default());
    let mut p = Peer::connect(&s).await;
    // Ran, but finished after the caller's 100 ms.
    p.request(1, request::Kind::Call(call("gated", Args::new(), 100)))
        .await;
    gate.wait_reached(1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    gate.open(1);
    let (_, out) = p.response().await;
    let e = out.error();
    assert_eq!(e.kind, ErrorKind::DeadlineExceeded);
    assert!(e.message.contains("stopped at"), "{}", e.message);
    assert_eq!(counts(&mut p).await, (1, 1));
}

/// docs/PROTOCOL.md, "Deadlines": a call that waited for a thread of the
/// blocking pool past its deadline is answered `DEADLINE_EXCEEDED` and its
/// method never runs. (Real time: the check reads `CallContext::deadline`,
/// a std `Instant`. The outcome does not depend on timing: the deadline has
/// surely passed when the pool's thread is let go.)
#[test]
fn a_blocking_call_that_waited_past_its_deadline_does_not_run() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{mpsc, Arc, Mutex};

    // One blocking thread: a second blocking call waits for the first.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (entered_tx, mut entered_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let ran = Arc::new(AtomicBool::new(false));
    let marked = Arc::clone(&ran);
    let methods = pyrpc_server::Methods::new()
        .add_blocking("hold", move |_| {
            let _ = entered_tx.send(());
            let _ = release_rx.lock().unwrap().recv();
            Ok(Value::from("held"))
        })
        .add_blocking("mark", move |_| {
            marked.store(true, Ordering::SeqCst);
            Ok(Value::None)
        });
    rt.block_on(async {
        let s = pyrpc_server::Server::builder(methods).build();
        let mut p = Peer::connect(&s).await;
        p.request(1, request::Kind::Call(call("hold", Args::new(), 0)))
            .await;
        entered_rx.recv().await.unwrap();
        // The pool's one thread is taken; `mark` (50 ms to live) waits for it.
        p.request(2, request::Kind::Call(call("mark", Args::new(), 50)))
            .await;
        // Answered after request 2 was read: its deadline runs from before.
        assert_eq!(p.ping().await, Outcome::Ack);
        tokio::time::sleep(Duration::from_millis(100)).await;
        release_tx.send(()).unwrap();
        let mut got = [p.response().await, p.response().await];
        got.sort_by_key(|(id, _)| *id);
        assert_eq!(got[0], (1, Outcome::Value(Value::from("held"))));
        let e = match &got[1] {
            (2, Outcome::Error(e)) => e.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(e.kind, ErrorKind::DeadlineExceeded);
        // Answered at its deadline while it waited ("stopped at"), or when
        // the pool's thread came free ("did not run"): either way, below,
        // the method never ran.
        assert!(
            e.message.contains("did not run") || e.message.contains("stopped at"),
            "{}",
            e.message
        );
    });
    assert!(!ran.load(Ordering::SeqCst), "mark() ran after its deadline");
}
