//! The `Stats` counting rule of docs/PROTOCOL.md ("Introspection and
//! statistics"): every `Call`, and every `Submit` that registered a new call
//! or was refused for its call, counts once, except the built-ins; any error
//! counts as an error.

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
    let config = ServerConfig {
        nonblocking: true,
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
    assert!(e.message.contains("finished after"), "{}", e.message);
    assert_eq!(counts(&mut p).await, (1, 1));
}
