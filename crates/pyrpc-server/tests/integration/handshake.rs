//! The hello: capabilities, refusals, timeouts.

use std::time::Duration;

use pyrpc_proto::{ErrorKind, RemoteError};
use pyrpc_server::ServerConfig;

use crate::peer::{server, Gate, Peer};

#[tokio::test]
async fn hello_announces_capabilities() {
    let config = ServerConfig {
        nonblocking: true,
        allow_pickle: true,
        max_frame_len: 1 << 20,
        max_value_depth: 7,
        max_in_flight_per_connection: 3,
        name: "test-server".into(),
        ..ServerConfig::default()
    };
    let s = server(&Gate::new(), config);
    let mut p = Peer::raw(&s);
    let hello = p.hello(0).await;
    assert_eq!(hello.protocol_version, 1);
    assert_eq!(hello.peer_name, "test-server");
    assert!(hello.error.is_none());
    let caps = hello.capabilities.unwrap();
    assert!(caps.nonblocking);
    assert!(caps.pickle);
    assert_eq!(caps.max_frame_len, 1 << 20);
    assert_eq!(caps.max_value_depth, 7);
    assert_eq!(caps.max_in_flight_per_connection, 3);
}

#[tokio::test]
async fn default_hello_names_the_crate() {
    let s = server(&Gate::new(), ServerConfig::default());
    let hello = Peer::raw(&s).hello(0).await;
    assert!(
        hello.peer_name.starts_with("pyrpc-rust/"),
        "{}",
        hello.peer_name
    );
    let caps = hello.capabilities.unwrap();
    assert!(!caps.nonblocking);
    assert!(!caps.pickle);
}

#[tokio::test]
async fn unsupported_version_is_refused_and_closed() {
    let s = server(&Gate::new(), ServerConfig::default());
    let mut p = Peer::raw(&s);
    let hello = p.hello_version(2, 0).await;
    let e = RemoteError::from(hello.error.unwrap());
    assert_eq!(e.kind, ErrorKind::Protocol);
    assert!(e.message.contains("version 2"), "{}", e.message);
    assert!(p.recv().await.is_none(), "connection must close");
}

#[tokio::test]
async fn a_frame_limit_under_the_minimum_is_refused_and_closed() {
    let s = server(&Gate::new(), ServerConfig::default());
    let mut p = Peer::raw(&s);
    let hello = p.hello(100).await;
    let e = RemoteError::from(hello.error.expect("refused"));
    assert_eq!(e.kind, ErrorKind::Protocol);
    assert!(e.message.contains("minimum of 1024"), "{}", e.message);
    assert!(p.recv().await.is_none(), "connection must close");
    assert!(Peer::raw(&s).hello(1024).await.error.is_none());
}

#[tokio::test]
async fn request_before_hello_is_refused() {
    let s = server(&Gate::new(), ServerConfig::default());
    let mut p = Peer::raw(&s);
    p.call(1, "echo", Default::default()).await;
    let frame = p.recv().await.unwrap();
    let Some(pyrpc_proto::wire::server_frame::Kind::Hello(h)) = frame.kind else {
        panic!("expected a hello, got {frame:?}");
    };
    assert_eq!(
        RemoteError::from(h.error.unwrap()).kind,
        ErrorKind::Protocol
    );
    assert!(p.recv().await.is_none());
}

#[tokio::test]
async fn too_many_connections_are_refused_as_overloaded() {
    let config = ServerConfig {
        max_connections: 1,
        ..ServerConfig::default()
    };
    let s = server(&Gate::new(), config);
    let mut first = Peer::connect(&s).await;
    let mut second = Peer::raw(&s);
    let hello = second.hello(0).await;
    assert_eq!(
        RemoteError::from(hello.error.unwrap()).kind,
        ErrorKind::Overloaded
    );
    assert!(second.recv().await.is_none());
    // the first one is unaffected, and its slot frees when it goes
    assert_eq!(first.ping().await, crate::peer::Outcome::Ack);
    let task = first.task.take().unwrap();
    drop(first);
    task.await.unwrap();
    let mut third = Peer::raw(&s);
    assert!(third.hello(0).await.error.is_none());
}

#[tokio::test(start_paused = true)]
async fn silent_connection_is_closed_after_the_handshake_timeout() {
    let config = ServerConfig {
        handshake_timeout: Duration::from_secs(3),
        ..ServerConfig::default()
    };
    let s = server(&Gate::new(), config);
    let mut p = Peer::raw(&s);
    let start = tokio::time::Instant::now();
    assert!(p.recv().await.is_none());
    assert!(start.elapsed() >= Duration::from_secs(3));
}
