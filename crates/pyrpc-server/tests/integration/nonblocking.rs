//! Non-blocking calls: Submit / Fetch / Release, idempotency, limits, reaper.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pyrpc_proto::wire::{self, request};
use pyrpc_proto::{Args, ErrorKind, Value};
use pyrpc_server::{Methods, Server, ServerConfig};

use crate::peer::{fetch, release, server, submit, Gate, Outcome, Peer};

const ID: [u8; 16] = *b"0123456789abcdef";

fn nb_server(gate: &Gate) -> Server {
    server(
        gate,
        ServerConfig {
            nonblocking: true,
            ..ServerConfig::default()
        },
    )
}

#[tokio::test]
async fn nb_requests_need_a_nonblocking_server() {
    let s = server(&Gate::new(), ServerConfig::default());
    let mut p = Peer::connect(&s).await;
    for kind in [
        submit(ID, "echo", Args::new(), 0),
        fetch(ID, 0),
        release(ID),
    ] {
        let e = p.ask(1, kind).await.error();
        assert_eq!(e.kind, ErrorKind::NotNonblocking);
    }
}

#[tokio::test]
async fn submit_fetch_pending_then_done_then_release() {
    let gate = Gate::new();
    let s = nb_server(&gate);
    let mut p = Peer::connect(&s).await;
    assert_eq!(
        p.ask(1, submit(ID, "gated", Args::new(), 0)).await,
        Outcome::Ack
    );
    gate.wait_reached(1).await;
    assert_eq!(p.ask(2, fetch(ID, 0)).await, Outcome::Pending);

    // a waiting fetch is answered as soon as the call finishes
    p.request(3, fetch(ID, 60_000)).await;
    gate.open(1);
    let (id, out) = p.response().await;
    assert_eq!((id, out), (3, Outcome::Value(Value::from("gated"))));

    // the result stays until released (a lost reply can be fetched again)
    assert_eq!(
        p.ask(4, fetch(ID, 0)).await,
        Outcome::Value(Value::from("gated"))
    );
    assert_eq!(p.ask(5, release(ID)).await, Outcome::Ack);
    let e = p.ask(6, fetch(ID, 0)).await.error();
    assert_eq!(e.kind, ErrorKind::UnknownCall);
    // releasing an unknown id is fine too
    assert_eq!(p.ask(7, release(ID)).await, Outcome::Ack);
}

/// docs/PROTOCOL.md promises that a `Submit` is fully handled before the
/// next request of its connection is read, so a client may send `Fetch`
/// right behind it without waiting for the `Ack`: the `Fetch` never finds
/// the call unknown. Here both travel in one write, many times over, with a
/// waiting and an immediate fetch.
#[tokio::test]
async fn fetch_pipelined_right_behind_its_submit_finds_the_call() {
    let s = nb_server(&Gate::new());
    let mut p = Peer::connect(&s).await;
    for i in 0..64u64 {
        let mut call_id = ID;
        call_id[0] = i as u8;
        let id = 10 * i;
        p.requests(vec![
            (id, submit(call_id, "echo", Args::new().arg(i as i64), 0)),
            (id + 1, fetch(call_id, 0)),
            (id + 2, fetch(call_id, 60_000)),
        ])
        .await;
        let mut got = [p.response().await, p.response().await, p.response().await];
        got.sort_by_key(|(id, _)| *id);
        let want = Value::tuple([Value::tuple([Value::from(i as i64)]), Value::dict([])]);
        assert_eq!(got[0], (id, Outcome::Ack));
        assert!(
            matches!(&got[1], (_, Outcome::Pending)) || got[1].1 == Outcome::Value(want.clone()),
            "an immediate fetch right behind its submit: {:?}",
            got[1]
        );
        assert_eq!(got[2], (id + 2, Outcome::Value(want)));
        p.request(id + 3, release(call_id)).await;
        assert_eq!(p.response().await, (id + 3, Outcome::Ack));
    }
}

#[tokio::test(start_paused = true)]
async fn fetch_waits_at_most_wait_ms_then_answers_pending() {
    let gate = Gate::new();
    let s = nb_server(&gate);
    let mut p = Peer::connect(&s).await;
    p.ask(1, submit(ID, "gated", Args::new(), 0)).await;
    let start = tokio::time::Instant::now();
    assert_eq!(p.ask(2, fetch(ID, 250)).await, Outcome::Pending);
    assert!(start.elapsed() >= Duration::from_millis(250));
    gate.open(1);
}

#[tokio::test]
async fn failed_nb_call_keeps_its_error() {
    let s = nb_server(&Gate::new());
    let mut p = Peer::connect(&s).await;
    p.ask(1, submit(ID, "fail", Args::new(), 0)).await;
    let e = p.ask(2, fetch(ID, 60_000)).await.error();
    assert_eq!(e.type_name, "ValueError");
    assert_eq!(e.args, vec![Value::from("bad")]);
}

#[tokio::test]
async fn unknown_call_and_bad_call_ids() {
    let s = nb_server(&Gate::new());
    let mut p = Peer::connect(&s).await;
    assert_eq!(
        p.ask(1, fetch(ID, 0)).await.error().kind,
        ErrorKind::UnknownCall
    );
    let short = request::Kind::Fetch(wire::Fetch {
        call_id: Bytes::from_static(b"abc"),
        wait_ms: 0,
    });
    assert_eq!(p.ask(2, short).await.error().kind, ErrorKind::Protocol);
    let no_call = request::Kind::Submit(wire::Submit {
        call_id: Bytes::copy_from_slice(&ID),
        call: None,
        keep_ms: 0,
    });
    assert_eq!(p.ask(3, no_call).await.error().kind, ErrorKind::Protocol);
    // refused arguments are refused at submit time, nothing is kept
    let e = p
        .ask(4, submit(ID, "_private", Args::new(), 0))
        .await
        .error();
    assert_eq!(e.kind, ErrorKind::NoSuchMethod);
    assert_eq!(
        p.ask(5, fetch(ID, 0)).await.error().kind,
        ErrorKind::UnknownCall
    );
}

#[tokio::test]
async fn submit_is_idempotent_and_survives_the_connection() {
    let runs = Arc::new(AtomicUsize::new(0));
    let r = Arc::clone(&runs);
    let gate = Gate::new();
    let g = gate.clone();
    let methods = Methods::new().add_async("count", move |_| {
        r.fetch_add(1, Ordering::SeqCst);
        let g = g.clone();
        async move {
            g.pass().await;
            Ok(Value::from("done"))
        }
    });
    let s = Server::builder(methods).nonblocking(true).build();

    let mut first = Peer::connect(&s).await;
    assert_eq!(
        first.ask(1, submit(ID, "count", Args::new(), 0)).await,
        Outcome::Ack
    );
    gate.wait_reached(1).await;
    // the connection drops while the call runs
    let task = first.task.take().unwrap();
    drop(first);
    task.await.unwrap();

    // the client resends on a new connection: nothing new starts
    let mut second = Peer::connect(&s).await;
    assert_eq!(
        second.ask(1, submit(ID, "count", Args::new(), 0)).await,
        Outcome::Ack
    );
    gate.open(1);
    assert_eq!(
        second.ask(2, fetch(ID, 60_000)).await,
        Outcome::Value(Value::from("done"))
    );
    // and once finished, a resend still starts nothing
    assert_eq!(
        second.ask(3, submit(ID, "count", Args::new(), 0)).await,
        Outcome::Ack
    );
    assert_eq!(
        second.ask(4, fetch(ID, 0)).await,
        Outcome::Value(Value::from("done"))
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn full_store_is_overloaded() {
    let config = ServerConfig {
        nonblocking: true,
        max_kept_results: 2,
        ..ServerConfig::default()
    };
    let s = server(&Gate::new(), config);
    let mut p = Peer::connect(&s).await;
    assert_eq!(
        p.ask(1, submit([1; 16], "echo", Args::new(), 0)).await,
        Outcome::Ack
    );
    assert_eq!(
        p.ask(2, submit([2; 16], "echo", Args::new(), 0)).await,
        Outcome::Ack
    );
    let e = p
        .ask(3, submit([3; 16], "echo", Args::new(), 0))
        .await
        .error();
    assert_eq!(e.kind, ErrorKind::Overloaded);
    // releasing one makes room
    assert_eq!(p.ask(4, release([1; 16])).await, Outcome::Ack);
    assert_eq!(
        p.ask(5, submit([3; 16], "echo", Args::new(), 0)).await,
        Outcome::Ack
    );
}

#[tokio::test(start_paused = true)]
async fn reaper_removes_results_after_their_keep_time() {
    let config = ServerConfig {
        nonblocking: true,
        request_clean_interval: Duration::from_secs(1),
        result_keep: Duration::from_secs(30),
        ..ServerConfig::default()
    };
    let s = server(&Gate::new(), config);
    let mut p = Peer::connect(&s).await;
    // kept 10 s (keep_ms), and one with the server's default of 30 s
    p.ask(1, submit([1; 16], "echo", Args::new().arg(1), 10_000))
        .await;
    p.ask(2, submit([2; 16], "echo", Args::new().arg(2), 0))
        .await;
    assert!(matches!(
        p.ask(3, fetch([1; 16], 60_000)).await,
        Outcome::Value(_)
    ));
    assert!(matches!(
        p.ask(4, fetch([2; 16], 60_000)).await,
        Outcome::Value(_)
    ));

    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(matches!(
        p.ask(5, fetch([1; 16], 0)).await,
        Outcome::Value(_)
    ));

    tokio::time::sleep(Duration::from_secs(10)).await; // t = 15 s
    assert_eq!(
        p.ask(6, fetch([1; 16], 0)).await.error().kind,
        ErrorKind::UnknownCall
    );
    assert!(matches!(
        p.ask(7, fetch([2; 16], 0)).await,
        Outcome::Value(_)
    ));

    tokio::time::sleep(Duration::from_secs(20)).await; // t = 35 s
    assert_eq!(
        p.ask(8, fetch([2; 16], 0)).await.error().kind,
        ErrorKind::UnknownCall
    );
}

#[tokio::test(start_paused = true)]
async fn reaper_never_removes_a_running_call() {
    let gate = Gate::new();
    let config = ServerConfig {
        nonblocking: true,
        request_clean_interval: Duration::from_secs(1),
        // The connection stays silent for the hour below.
        idle_timeout: None,
        ..ServerConfig::default()
    };
    let s = server(&gate, config);
    let mut p = Peer::connect(&s).await;
    p.ask(1, submit(ID, "gated", Args::new(), 1)).await;
    gate.wait_reached(1).await;
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(p.ask(2, fetch(ID, 0)).await, Outcome::Pending);
    gate.open(1);
    assert_eq!(
        p.ask(3, fetch(ID, 60_000)).await,
        Outcome::Value(Value::from("gated"))
    );
}
