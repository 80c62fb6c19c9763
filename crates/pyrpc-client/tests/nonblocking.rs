//! Non-blocking calls: submit, fetch across reconnections, release,
//! unknown calls and the overall timeout.

mod support;

use std::time::Duration;

use bytes::Bytes;
use pyrpc_client::{CallOptions, Client, ClientConfig, TimeoutStage};
use pyrpc_proto::wire::{self, request};
use pyrpc_proto::{Args, ErrorKind, RemoteError, Value};
use support::{ack, error, next, pending, report, value, FakeServer, Net, Peer, PIPE};

/// What a script saw: the connection index and the request kind.
type Seen = (usize, request::Kind);

fn fast_polling() -> ClientConfig {
    ClientConfig {
        nb_fetch_tick: Duration::from_millis(20),
        nb_fetch_timeout: Duration::from_millis(200),
        ..ClientConfig::default()
    }
}

fn call_id(kind: &request::Kind) -> Bytes {
    match kind {
        request::Kind::Submit(s) => s.call_id.clone(),
        request::Kind::Fetch(f) => f.call_id.clone(),
        request::Kind::Release(r) => r.call_id.clone(),
        other => panic!("not a non-blocking request: {other:?}"),
    }
}

#[tokio::test]
async fn nb_call_survives_a_dropped_connection_and_releases_the_result() {
    let (tx, mut seen) = report::<Seen>();
    let server = FakeServer::start(Net::Tcp, move |mut peer: Peer| {
        let tx = tx.clone();
        async move {
            peer.hello().await;
            let mut fetches = 0;
            while let Some(req) = peer.recv().await {
                let kind = req.kind.clone().expect("a kind");
                let _ = tx.send((peer.conn, kind.clone()));
                match kind {
                    request::Kind::Submit(_) => peer.reply(req.id, ack()).await,
                    request::Kind::Fetch(_) if peer.conn == 0 => {
                        fetches += 1;
                        if fetches == 3 {
                            // Cut the connection while the client waits.
                            return;
                        }
                        peer.reply(req.id, pending()).await;
                    }
                    request::Kind::Fetch(_) => peer.reply(req.id, value(42)).await,
                    request::Kind::Release(_) => peer.reply(req.id, ack()).await,
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
    })
    .await;
    let client = Client::with_config(server.addr.clone(), fast_polling());
    let ret = client
        .nb_call("long", Args::new().arg("x"))
        .await
        .expect("nb call");
    assert_eq!(ret, Value::from(42));

    let mut log = Vec::new();
    // Submit, 3 fetches, (cut) Submit, fetch, release.
    for _ in 0..7 {
        log.push(next(&mut seen).await);
    }
    let names: Vec<_> = log
        .iter()
        .map(|(conn, kind)| {
            let name = match kind {
                request::Kind::Submit(_) => "submit",
                request::Kind::Fetch(_) => "fetch",
                request::Kind::Release(_) => "release",
                _ => "other",
            };
            (*conn, name)
        })
        .collect();
    assert_eq!(
        names,
        vec![
            (0, "submit"),
            (0, "fetch"),
            (0, "fetch"),
            (0, "fetch"),
            (1, "submit"),
            (1, "fetch"),
            (1, "release"),
        ]
    );
    let id = call_id(&log[0].1);
    assert_eq!(id.len(), 16, "a 16-byte call id");
    for (_, kind) in &log {
        assert_eq!(call_id(kind), id, "one call id throughout");
    }
    match &log[0].1 {
        request::Kind::Submit(s) => {
            assert_eq!(s.keep_ms, 60_000);
            let call = s.call.as_ref().expect("the call");
            assert_eq!(call.method, "long");
            assert_eq!(call.args, vec![wire::Value::from(Value::from("x"))]);
        }
        other => panic!("{other:?}"),
    }
    match &log[1].1 {
        request::Kind::Fetch(f) => assert_eq!(f.wait_ms, 20),
        other => panic!("{other:?}"),
    }
    assert_eq!(server.accepted(), 2);
}

#[tokio::test(start_paused = true)]
async fn unanswered_fetch_drops_the_connection_and_polls_on_a_new_one() {
    let server = FakeServer::start(PIPE, |mut peer: Peer| async move {
        peer.hello().await;
        while let Some(req) = peer.recv().await {
            match req.kind {
                Some(request::Kind::Submit(_)) => peer.reply(req.id, ack()).await,
                // The first connection goes silent on fetches.
                Some(request::Kind::Fetch(_)) if peer.conn == 0 => {}
                Some(request::Kind::Fetch(_)) => peer.reply(req.id, value("done")).await,
                _ => peer.reply(req.id, ack()).await,
            }
        }
    })
    .await;
    let client = server.client(fast_polling());
    let started = tokio::time::Instant::now();
    let ret = client.nb_call("long", Args::new()).await.expect("nb call");
    assert_eq!(ret, Value::from("done"));
    // One fetch waited tick + nb_fetch_timeout before the reconnection.
    assert!(started.elapsed() >= Duration::from_millis(220));
    assert_eq!(server.accepted(), 2);
}

#[tokio::test]
async fn remote_exception_of_a_finished_call_is_returned_and_released() {
    let (tx, mut seen) = report::<Seen>();
    let server = FakeServer::start(Net::Tcp, move |mut peer: Peer| {
        let tx = tx.clone();
        async move {
            peer.hello().await;
            while let Some(req) = peer.recv().await {
                let kind = req.kind.clone().expect("a kind");
                let _ = tx.send((peer.conn, kind.clone()));
                let answer = match kind {
                    request::Kind::Fetch(_) => error(RemoteError::exception(
                        "ValueError",
                        "builtins",
                        vec![Value::from("bad")],
                    )),
                    _ => ack(),
                };
                peer.reply(req.id, answer).await;
            }
        }
    })
    .await;
    let client = Client::with_config(server.addr.clone(), fast_polling());
    let err = client.nb_call("f", Args::new()).await.expect_err("raised");
    let remote = err.remote().expect("a remote error");
    assert_eq!(remote.type_name, "ValueError");
    assert_eq!(remote.message, "bad");
    let mut kinds = Vec::new();
    for _ in 0..3 {
        kinds.push(next(&mut seen).await.1);
    }
    assert!(matches!(kinds[2], request::Kind::Release(_)), "{kinds:?}");
}

#[tokio::test]
async fn unknown_call_is_a_clear_error() {
    let server = FakeServer::start(Net::Tcp, |mut peer: Peer| async move {
        peer.hello().await;
        while let Some(req) = peer.recv().await {
            let answer = match req.kind {
                Some(request::Kind::Fetch(_)) => {
                    error(RemoteError::new(ErrorKind::UnknownCall, "unknown call id"))
                }
                _ => ack(),
            };
            peer.reply(req.id, answer).await;
        }
    })
    .await;
    let client = Client::with_config(server.addr.clone(), fast_polling());
    let err = client.nb_call("f", Args::new()).await.expect_err("unknown");
    let remote = err.remote().expect("a remote error");
    assert_eq!(remote.kind, ErrorKind::UnknownCall);
    assert!(
        remote
            .message
            .contains("reaped or released, or the server restarted"),
        "{}",
        remote.message
    );
    assert!(
        remote.message.contains("unknown call id"),
        "{}",
        remote.message
    );
    assert_eq!(remote.args, vec![Value::from(remote.message.clone())]);
}

#[tokio::test]
async fn not_nonblocking_server_refuses_the_submit() {
    let server = FakeServer::start(Net::Tcp, |mut peer: Peer| async move {
        peer.hello().await;
        while let Some(req) = peer.recv().await {
            let e = RemoteError::new(ErrorKind::NotNonblocking, "not a non-blocking server");
            peer.reply(req.id, error(e)).await;
        }
    })
    .await;
    let client = Client::new(server.addr.clone());
    let err = client.nb_call("f", Args::new()).await.expect_err("refused");
    assert_eq!(
        err.remote().map(|e| e.kind),
        Some(ErrorKind::NotNonblocking)
    );
}

#[tokio::test(start_paused = true)]
async fn nb_call_timeout_bounds_the_whole_call() {
    let server = FakeServer::start(PIPE, |mut peer: Peer| async move {
        peer.hello().await;
        while let Some(req) = peer.recv().await {
            match req.kind {
                Some(request::Kind::Fetch(f)) => {
                    // Hold the fetch as a server would, then: still running.
                    tokio::time::sleep(Duration::from_millis(f.wait_ms)).await;
                    peer.reply(req.id, pending()).await;
                }
                _ => peer.reply(req.id, ack()).await,
            }
        }
    })
    .await;
    let client = server.client(fast_polling());
    let opts = CallOptions {
        call_timeout: Some(Some(Duration::from_millis(250))),
        ..CallOptions::default()
    };
    let started = tokio::time::Instant::now();
    let err = client
        .nb_call_with("forever", Args::new(), &opts)
        .await
        .expect_err("times out");
    let took = started.elapsed();
    assert_eq!(err.timeout_stage(), Some(TimeoutStage::Nb), "{err}");
    // On the paused clock: exactly the call timeout.
    assert_eq!(took, Duration::from_millis(250));
    assert_eq!(client.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn nb_call_keeps_trying_to_connect_until_its_timeout() {
    let tries = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = std::sync::Arc::clone(&tries);
    let refuse = move || {
        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async {
            Err::<tokio::io::DuplexStream, _>(std::io::Error::from(
                std::io::ErrorKind::ConnectionRefused,
            ))
        }
    };
    let config = ClientConfig {
        call_timeout: Some(Duration::from_millis(150)),
        ..fast_polling()
    };
    let client = Client::with_connector(pyrpc_transport::Address::unix("nobody"), config, refuse);
    let started = tokio::time::Instant::now();
    let err = client
        .nb_call("f", Args::new())
        .await
        .expect_err("nobody there");
    assert_eq!(err.timeout_stage(), Some(TimeoutStage::Nb), "{err}");
    assert_eq!(started.elapsed(), Duration::from_millis(150));
    assert!(
        tries.load(std::sync::atomic::Ordering::SeqCst) > 1,
        "it tried again"
    );
}

/// The first `Fetch` follows its `Submit` at once, before the submit's ack:
/// a server that reads both before answering either sees them in that order,
/// and the fast call is done in one round trip (then a `Release`).
#[tokio::test]
async fn first_fetch_is_pipelined_behind_the_submit() {
    let (tx, mut seen) = report::<Vec<&'static str>>();
    let server = FakeServer::start(Net::Tcp, move |mut peer: Peer| {
        let tx = tx.clone();
        async move {
            peer.hello().await;
            // Read two requests before answering anything.
            let submit = peer.expect().await;
            let fetch = peer.expect().await;
            let name = |r: &wire::Request| match r.kind {
                Some(request::Kind::Submit(_)) => "submit",
                Some(request::Kind::Fetch(_)) => "fetch",
                _ => "other",
            };
            let _ = tx.send(vec![name(&submit), name(&fetch)]);
            peer.reply(submit.id, ack()).await;
            peer.reply(fetch.id, value(7)).await;
            let release = peer.expect().await;
            assert!(matches!(release.kind, Some(request::Kind::Release(_))));
            peer.echo_until_closed().await;
        }
    })
    .await;
    let client = Client::with_config(server.addr.clone(), fast_polling());
    let ret = client.nb_call("fast", Args::new()).await.expect("nb call");
    assert_eq!(ret, Value::from(7));
    assert_eq!(next(&mut seen).await, vec!["submit", "fetch"]);
}

/// A server from before the ordering guarantee may run the pipelined fetch
/// ahead of the submit it acknowledged: UNKNOWN_CALL then means "ask again".
#[tokio::test]
async fn unknown_call_on_the_pipelined_fetch_is_fetched_again() {
    let server = FakeServer::start(Net::Tcp, move |mut peer: Peer| async move {
        peer.hello().await;
        let submit = peer.expect().await;
        let fetch = peer.expect().await;
        peer.reply(submit.id, ack()).await;
        peer.reply(
            fetch.id,
            error(RemoteError::new(ErrorKind::UnknownCall, "not yet")),
        )
        .await;
        let again = peer.expect().await;
        assert!(matches!(again.kind, Some(request::Kind::Fetch(_))));
        peer.reply(again.id, value(8)).await;
        peer.echo_until_closed().await;
    })
    .await;
    let client = Client::with_config(server.addr.clone(), fast_polling());
    let ret = client.nb_call("fast", Args::new()).await.expect("nb call");
    assert_eq!(ret, Value::from(8));
}
