//! Connecting, losing the connection and reconnecting, `connected()`,
//! `ping()` and `shutdown()`.

mod support;

use std::time::{Duration, Instant};

use pyrpc_client::{CallError, Client, ClientConfig, TimeoutStage};
use pyrpc_proto::wire::request;
use pyrpc_proto::{Args, Value};
use pyrpc_transport::Address;
use support::{ack, echo_script, next, report, FakeServer, Net, Peer, PIPE};

/// A TCP address nobody listens on: a port that was just free.
fn closed_port() -> Address {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    drop(l);
    Address::tcp("127.0.0.1", port)
}

#[tokio::test]
async fn nothing_listening_on_tcp_is_no_socket() {
    let addr = closed_port();
    let client = Client::new(addr.clone());
    match client.call("echo", Args::new()).await {
        Err(CallError::NoSocket { addr: a, source }) => {
            assert_eq!(a, addr.to_string());
            assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused);
        }
        other => panic!("expected NoSocket, got {other:?}"),
    }
}

#[tokio::test]
async fn missing_unix_socket_is_no_socket() {
    let dir = tempfile::tempdir().expect("tempdir");
    let client = Client::new(Address::unix(dir.path().join("nobody.sock")));
    let err = client.ping().await.expect_err("no socket");
    assert!(matches!(err, CallError::NoSocket { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with("cannot connect to unix:"),
        "{err}"
    );
}

/// A peer that reads the hello and never answers it.
async fn silent(mut peer: Peer) {
    peer.read_hello().await;
    std::future::pending::<()>().await;
}

#[tokio::test(start_paused = true)]
async fn unanswered_hello_is_a_connect_timeout() {
    let server = FakeServer::start(PIPE, silent).await;
    let config = ClientConfig {
        socket_connect_timeout: Duration::from_millis(150),
        ..ClientConfig::default()
    };
    let client = server.client(config);
    let started = tokio::time::Instant::now();
    let err = client
        .call("echo", Args::new())
        .await
        .expect_err("times out");
    assert_eq!(err.timeout_stage(), Some(TimeoutStage::Connect), "{err}");
    // On the paused clock: exactly the connect timeout, no more, no less.
    assert_eq!(started.elapsed(), Duration::from_millis(150));
    assert_eq!(server.accepted(), 1);
}

#[tokio::test(start_paused = true)]
async fn connect_timeout_is_capped_by_the_call_timeout() {
    let server = FakeServer::start(PIPE, silent).await;
    let config = ClientConfig {
        call_timeout: Some(Duration::from_millis(100)),
        // Left at 10 s: the call timeout must cap it.
        ..ClientConfig::default()
    };
    let client = server.client(config);
    let started = tokio::time::Instant::now();
    let err = client.ping().await.expect_err("times out");
    assert_eq!(err.timeout_stage(), Some(TimeoutStage::Connect), "{err}");
    assert_eq!(started.elapsed(), Duration::from_millis(100));
}

#[tokio::test(start_paused = true)]
async fn a_connector_that_fails_is_no_socket_naming_the_address() {
    let refuse = || async {
        Err::<tokio::io::DuplexStream, _>(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        ))
    };
    let client = Client::with_connector(Address::unix("memory"), ClientConfig::default(), refuse);
    match client.ping().await {
        Err(CallError::NoSocket { addr, source }) => {
            assert_eq!(addr, "unix:memory");
            assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused);
        }
        other => panic!("expected NoSocket, got {other:?}"),
    }
}

#[tokio::test]
async fn connected_is_true_for_a_live_server_and_false_quickly_otherwise() {
    let server = FakeServer::start(Net::Unix, echo_script).await;
    let client = Client::new(server.addr.clone());
    assert!(client.connected(Duration::from_secs(2)).await);

    let started = Instant::now();
    assert!(
        !Client::new(closed_port())
            .connected(Duration::from_secs(2))
            .await
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "refused is quick"
    );

    // A server that never answers the hello: false after the timeout.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let started = Instant::now();
    let silent = Client::new(Address::tcp("127.0.0.1", port));
    assert!(!silent.connected(Duration::from_millis(100)).await);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "{took:?}");
    drop(listener);
}

#[tokio::test]
async fn broken_connection_fails_pending_calls_and_the_next_call_reconnects() {
    let server = FakeServer::start(Net::Tcp, |mut peer: Peer| async move {
        peer.hello().await;
        if peer.conn == 0 {
            // Take three calls, then hang up without answering.
            for _ in 0..3 {
                peer.expect().await;
            }
            return;
        }
        peer.echo_until_closed().await;
    })
    .await;
    let client = Client::new(server.addr.clone());
    let calls = (0..3).map(|i| {
        let client = client.clone();
        tokio::spawn(async move { client.call("echo", Args::new().arg(i)).await })
    });
    for handle in futures::future::join_all(calls).await {
        let err = handle.expect("task").expect_err("the server hung up");
        assert!(matches!(err, CallError::Closed), "{err:?}");
    }
    assert_eq!(client.in_flight(), 0);

    let ret = client
        .call("echo", Args::new().arg(9))
        .await
        .expect("reconnected");
    assert_eq!(ret, Value::tuple([Value::from(9)]));
    assert_eq!(server.accepted(), 2);
}

#[tokio::test]
async fn calls_after_an_idle_disconnect_reconnect() {
    let (tx, mut seen) = report();
    let server = FakeServer::start(Net::Tcp, move |mut peer: Peer| {
        let tx = tx.clone();
        async move {
            peer.hello().await;
            if peer.conn == 0 {
                let req = peer.expect().await;
                peer.reply(req.id, ack()).await;
                // Hang up while the client is idle.
                drop(peer);
                let _ = tx.send(());
                return;
            }
            peer.echo_until_closed().await;
        }
    })
    .await;
    let client = Client::new(server.addr.clone());
    client.ping().await.expect("first ping");
    next(&mut seen).await;
    // Whether or not the client noticed the hang-up yet, a ping must work
    // within one retry: a ping on the dead connection fails Closed at worst.
    let first = client.ping().await;
    if first.is_err() {
        assert!(matches!(first, Err(CallError::Closed)), "{first:?}");
        client.ping().await.expect("ping after reconnecting");
    }
    assert_eq!(server.accepted(), 2);
}

#[tokio::test]
async fn shutdown_returns_after_the_ack() {
    let (tx, mut seen) = report();
    let server = FakeServer::start(Net::Tcp, move |mut peer: Peer| {
        let tx = tx.clone();
        async move {
            peer.hello().await;
            let req = peer.expect().await;
            let is_shutdown = matches!(req.kind, Some(request::Kind::Shutdown(_)));
            let _ = tx.send(is_shutdown);
            peer.reply(req.id, ack()).await;
        }
    })
    .await;
    let client = Client::new(server.addr.clone());
    client.shutdown().await.expect("shutdown");
    assert!(next(&mut seen).await, "a Shutdown request was sent");
}

#[tokio::test]
async fn shutdown_succeeds_when_the_server_closes_right_after_the_request() {
    let server = FakeServer::start(Net::Tcp, |mut peer: Peer| async move {
        peer.hello().await;
        let _ = peer.expect().await;
        // Gone without an ack.
    })
    .await;
    let client = Client::new(server.addr.clone());
    client.shutdown().await.expect("closing counts as done");
}

#[tokio::test]
async fn ping_maps_remote_refusal() {
    let server = FakeServer::start(Net::Tcp, |mut peer: Peer| async move {
        peer.hello().await;
        let req = peer.expect().await;
        let e = pyrpc_proto::RemoteError::new(pyrpc_proto::ErrorKind::ShuttingDown, "bye");
        peer.reply(req.id, support::error(e)).await;
        peer.echo_until_closed().await;
    })
    .await;
    let client = Client::new(server.addr.clone());
    let err = client.ping().await.expect_err("refused");
    assert_eq!(
        err.remote().map(|e| e.kind),
        Some(pyrpc_proto::ErrorKind::ShuttingDown)
    );
}
