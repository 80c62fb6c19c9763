//! Graceful shutdown over real sockets.

use std::time::Duration;

use pyrpc_proto::wire::{self, request};
use pyrpc_proto::{Args, ErrorKind, Value};
use pyrpc_server::{Server, ServerConfig};
use pyrpc_transport::{connect, Address};

use crate::peer::{methods, server, Gate, Outcome, Peer};

const T: Duration = Duration::from_secs(5);

#[tokio::test]
async fn shutdown_request_drains_in_flight_calls_and_removes_the_socket_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.sock");
    let gate = Gate::new();
    let handle = server(&gate, ServerConfig::default())
        .bind(&Address::unix(&path))
        .await
        .unwrap();
    assert_eq!(handle.local_address(), &Address::unix(&path));
    assert!(path.exists());

    let mut p = Peer::new(connect(&Address::unix(&path), T).await.unwrap());
    p.hello(0).await;
    p.call(1, "gated", Args::new()).await;
    gate.wait_reached(1).await;

    // Shutdown is acknowledged; new requests are refused meanwhile
    assert_eq!(
        p.ask(2, request::Kind::Shutdown(wire::Shutdown {})).await,
        Outcome::Ack
    );
    let e = p.call_wait("echo", Args::new()).await.error();
    assert_eq!(e.kind, ErrorKind::ShuttingDown);
    assert!(!handle.is_finished());

    // the running call finishes and its reply is sent
    gate.open(1);
    let (id, out) = p.response().await;
    assert_eq!((id, out), (1, Outcome::Value(Value::from("gated"))));
    // then the connection closes and the server is done
    assert!(p.recv().await.is_none());
    tokio::time::timeout(T, handle.wait()).await.unwrap();
    assert!(handle.is_finished());
    assert!(!path.exists(), "socket file removed");
    assert!(connect(&Address::unix(&path), T).await.is_err());
}

#[tokio::test]
async fn handle_shutdown_over_tcp_and_call_of_shutdown() {
    let handle = Server::builder(methods(&Gate::new()))
        .build()
        .bind(&Address::tcp("127.0.0.1", 0))
        .await
        .unwrap();
    let addr = handle.local_address().clone();
    let mut p = Peer::new(connect(&addr, T).await.unwrap());
    p.hello(0).await;
    // the builtin `shutdown` method acts as the Shutdown request
    assert_eq!(
        p.call_wait("shutdown", Args::new()).await.value(),
        Value::None
    );
    tokio::time::timeout(T, handle.wait()).await.unwrap();
    assert!(p.recv().await.is_none());
    assert!(connect(&addr, T).await.is_err(), "no longer accepting");
}

#[tokio::test(start_paused = true)]
async fn calls_past_the_grace_period_are_dropped() {
    let gate = Gate::new();
    let config = ServerConfig {
        shutdown_grace: Duration::from_secs(2),
        ..ServerConfig::default()
    };
    let s = server(&gate, config);
    let mut p = Peer::connect(&s).await;
    p.call(1, "gated", Args::new()).await;
    gate.wait_reached(1).await;
    assert_eq!(
        p.ask(2, request::Kind::Shutdown(wire::Shutdown {})).await,
        Outcome::Ack
    );
    let start = tokio::time::Instant::now();
    // never opened: after the grace period the connection just closes
    assert!(p.recv().await.is_none());
    assert!(start.elapsed() >= Duration::from_secs(2));
}

#[tokio::test]
async fn bind_refuses_a_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("precious.txt");
    std::fs::write(&path, b"keep").unwrap();
    let err = server(&Gate::new(), ServerConfig::default())
        .bind(&Address::unix(&path))
        .await
        .unwrap_err();
    assert!(
        matches!(err, pyrpc_server::ServerError::Transport(_)),
        "{err}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"keep");
}

#[test]
fn start_blocks_on_its_own_runtime_until_a_shutdown_request() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("start.sock");
    let addr = Address::unix(&path);
    let server = server(&Gate::new(), ServerConfig::default());
    let a = addr.clone();
    let thread = std::thread::spawn(move || server.start(&a));

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // the server thread binds asynchronously: retry the connect briefly
        let mut tries = 0;
        let stream = loop {
            match connect(&addr, T).await {
                Ok(s) => break s,
                Err(_) if tries < 500 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => panic!("the server never listened: {e}"),
            }
        };
        let mut p = Peer::new(stream);
        p.hello(0).await;
        assert_eq!(
            p.call_wait("add_one", Args::new().arg(1)).await.value(),
            Value::from(2)
        );
        assert_eq!(
            p.ask(2, request::Kind::Shutdown(wire::Shutdown {})).await,
            Outcome::Ack
        );
    });
    assert!(thread.join().unwrap().is_ok());
    assert!(!path.exists(), "socket file removed");
}
