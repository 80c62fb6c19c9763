//! `MultiClient`: one client over several (fake, TCP) servers: spreading,
//! skipping a dead server, at-most-once blocking calls, and non-blocking
//! calls followed to another server.

mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use pyrpc_client::{Address, CallError, CallOptions, ClientConfig, MultiClient, Retry};
use pyrpc_proto::wire::request;
use pyrpc_proto::{Args, ErrorKind, RemoteError, Value};
use support::{ack, error, pending, value, FakeServer, Net, Peer};

fn config() -> ClientConfig {
    ClientConfig {
        call_timeout: Some(Duration::from_secs(10)),
        nb_fetch_tick: Duration::from_millis(20),
        nb_fetch_timeout: Duration::from_millis(300),
        ..ClientConfig::default()
    }
}

/// A server answering every call with its own number (counting them) and
/// pings with an ack.
async fn numbered(n: i64, calls: Arc<AtomicUsize>) -> FakeServer {
    FakeServer::start(Net::Tcp, move |mut peer: Peer| {
        let calls = Arc::clone(&calls);
        async move {
            peer.hello().await;
            while let Some(req) = peer.recv().await {
                if let Some(request::Kind::Ping(_)) = req.kind {
                    peer.reply(req.id, ack()).await;
                    continue;
                }
                calls.fetch_add(1, Ordering::SeqCst);
                peer.reply(req.id, value(n)).await;
            }
        }
    })
    .await
}

/// An address nothing listens on.
async fn dead_address() -> Address {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("ok");
    let port = l.local_addr().expect("local address").port();
    drop(l);
    Address::tcp("127.0.0.1", port)
}

#[tokio::test]
async fn calls_spread_over_three_servers() {
    let counts: Vec<_> = (0..3).map(|_| Arc::new(AtomicUsize::new(0))).collect();
    let mut servers = Vec::new();
    for (n, c) in counts.iter().enumerate() {
        servers.push(numbered(n as i64, Arc::clone(c)).await);
    }
    let client = MultiClient::new(servers.iter().map(|s| s.addr.clone()), config()).expect("ok");
    let mut seen = HashSet::new();
    for _ in 0..30 {
        seen.insert(client.call("who", Args::new()).await.expect("ok").as_i64());
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
    for c in &counts {
        assert_eq!(c.load(Ordering::SeqCst), 10, "ties are taken in turn");
    }
    assert_eq!(client.served(), vec![10, 10, 10]);
    assert!(client.connected(Duration::from_secs(2)).await);
}

#[tokio::test]
async fn a_server_down_from_the_start_is_skipped_and_all_down_is_no_socket() {
    let calls = Arc::new(AtomicUsize::new(0));
    let live = numbered(7, Arc::clone(&calls)).await;
    let dead = dead_address().await;
    let client = MultiClient::new([dead.clone(), live.addr.clone()], config()).expect("ok");
    for _ in 0..10 {
        assert_eq!(
            client.call("who", Args::new()).await.expect("ok"),
            Value::from(7)
        );
    }
    assert_eq!(client.served(), vec![0, 10]);
    // Only the first refusal tried the dead server: then it was skipped.
    assert_eq!(calls.load(Ordering::SeqCst), 10);

    let none = MultiClient::new([dead, dead_address().await], config()).expect("ok");
    let e = none.call("who", Args::new()).await.expect_err("an error");
    assert!(matches!(e, CallError::NoSocket { .. }), "{e:?}");
    assert!(!none.connected(Duration::from_millis(500)).await);
}

/// A server that reads a call, counts it and drops the connection without
/// answering (as a server dying mid-call).
async fn dying(calls: Arc<AtomicUsize>) -> FakeServer {
    FakeServer::start(Net::Tcp, move |mut peer: Peer| {
        let calls = Arc::clone(&calls);
        async move {
            peer.hello().await;
            if peer.recv().await.is_some() {
                calls.fetch_add(1, Ordering::SeqCst);
            }
        }
    })
    .await
}

#[tokio::test]
async fn a_blocking_call_is_retried_elsewhere_only_when_marked_safe() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (a, b) = (
        dying(Arc::clone(&calls)).await,
        dying(Arc::clone(&calls)).await,
    );
    let client = MultiClient::new([a.addr.clone(), b.addr.clone()], config()).expect("ok");

    let e = client
        .call("once", Args::new())
        .await
        .expect_err("an error");
    assert!(matches!(e, CallError::Closed), "{e:?}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "retried although not marked safe"
    );

    let e = client
        .call_retry_with("twice", Args::new(), &CallOptions::new(), Retry::Safe)
        .await
        .expect_err("an error");
    assert!(matches!(e, CallError::Closed), "{e:?}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "a safe call tries each server once"
    );
}

/// A fake pair of servers sharing a "store" (the set of submitted ids): the
/// one that took the submit answers `pending` twice, then drops the
/// connection for good; the other answers fetches of known ids with 42.
async fn store_pair(
    submits: Arc<AtomicUsize>,
    store: Arc<Mutex<HashSet<Bytes>>>,
) -> (FakeServer, FakeServer) {
    let script = move |me: usize| {
        let submits = Arc::clone(&submits);
        let store = Arc::clone(&store);
        // Ids this server took the submit of.
        let mine = Arc::new(Mutex::new(HashSet::<Bytes>::new()));
        move |mut peer: Peer| {
            let (submits, store, mine) =
                (Arc::clone(&submits), Arc::clone(&store), Arc::clone(&mine));
            async move {
                peer.hello().await;
                let mut polls = 0;
                while let Some(req) = peer.recv().await {
                    match req.kind.clone().expect("a kind") {
                        request::Kind::Submit(s) => {
                            submits.fetch_add(1, Ordering::SeqCst);
                            store.lock().expect("lock").insert(s.call_id.clone());
                            mine.lock().expect("lock").insert(s.call_id);
                            peer.reply(req.id, ack()).await;
                        }
                        request::Kind::Fetch(f)
                            if mine.lock().expect("lock").contains(&f.call_id) =>
                        {
                            polls += 1;
                            if polls > 2 {
                                return; // this server "dies"
                            }
                            peer.reply(req.id, pending()).await;
                        }
                        request::Kind::Fetch(f) => {
                            let known = store.lock().expect("lock").contains(&f.call_id);
                            let answer = if known {
                                value(42)
                            } else {
                                error(RemoteError::new(ErrorKind::UnknownCall, "unknown"))
                            };
                            peer.reply(req.id, answer).await;
                        }
                        request::Kind::Release(_) => peer.reply(req.id, ack()).await,
                        other => panic!("server {me}: unexpected {other:?}"),
                    }
                }
            }
        }
    };
    (
        FakeServer::start(Net::Tcp, script(0)).await,
        FakeServer::start(Net::Tcp, script(1)).await,
    )
}

#[tokio::test]
async fn a_non_blocking_call_is_followed_to_a_server_sharing_the_store() {
    let submits = Arc::new(AtomicUsize::new(0));
    let store = Arc::new(Mutex::new(HashSet::new()));
    let (a, b) = store_pair(Arc::clone(&submits), Arc::clone(&store)).await;
    let client = MultiClient::new([a.addr.clone(), b.addr.clone()], config()).expect("ok");
    for _ in 0..4 {
        let v = client.nb_call("job", Args::new()).await.expect("ok");
        assert_eq!(v, Value::from(42));
    }
    assert_eq!(
        submits.load(Ordering::SeqCst),
        4,
        "a call was submitted twice"
    );
}

#[tokio::test]
async fn a_non_blocking_call_nobody_else_knows_ends_lost_without_running_twice() {
    // X takes the submit, answers one poll, then "dies": every later
    // connection closes right after the hello. Y has a store of its own:
    // it refuses submits (overloaded) and knows no call id.
    let ran = Arc::new(AtomicUsize::new(0));
    let x = FakeServer::start(Net::Tcp, {
        let ran = Arc::clone(&ran);
        move |mut peer: Peer| {
            let ran = Arc::clone(&ran);
            async move {
                peer.hello().await;
                if peer.conn > 0 {
                    return;
                }
                while let Some(req) = peer.recv().await {
                    match req.kind.clone().expect("a kind") {
                        request::Kind::Submit(_) => {
                            ran.fetch_add(1, Ordering::SeqCst);
                            peer.reply(req.id, ack()).await;
                        }
                        request::Kind::Fetch(_) if ran.load(Ordering::SeqCst) == 1 => {
                            peer.reply(req.id, pending()).await;
                            ran.fetch_add(10, Ordering::SeqCst);
                        }
                        _ => return,
                    }
                }
            }
        }
    })
    .await;
    let y_submits = Arc::new(AtomicUsize::new(0));
    let y = FakeServer::start(Net::Tcp, {
        let y_submits = Arc::clone(&y_submits);
        move |mut peer: Peer| {
            let y_submits = Arc::clone(&y_submits);
            async move {
                peer.hello().await;
                while let Some(req) = peer.recv().await {
                    let answer = match req.kind.clone().expect("a kind") {
                        request::Kind::Submit(_) => {
                            y_submits.fetch_add(1, Ordering::SeqCst);
                            error(RemoteError::new(ErrorKind::Overloaded, "full"))
                        }
                        _ => error(RemoteError::new(ErrorKind::UnknownCall, "unknown")),
                    };
                    peer.reply(req.id, answer).await;
                }
            }
        }
    })
    .await;
    let client = MultiClient::new([x.addr.clone(), y.addr.clone()], config()).expect("ok");
    let outcome = tokio::time::timeout(Duration::from_secs(20), client.nb_call("job", Args::new()))
        .await
        .expect("the call ended");
    match outcome {
        Err(CallError::Remote(r)) => {
            assert_eq!(r.kind, ErrorKind::CallLost, "{r:?}");
            assert!(r.message.contains("no other server knows"), "{}", r.message);
        }
        other => panic!("{other:?}"),
    }
    // X took it once (and answered one poll); Y never ran it.
    assert_eq!(ran.load(Ordering::SeqCst), 11);
    assert!(y_submits.load(Ordering::SeqCst) <= 1);
}
