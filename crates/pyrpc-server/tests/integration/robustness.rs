//! Broken peers: garbage, oversize headers, zero lengths, huge results.
//! Only the offending connection closes; the server keeps serving the others.

use std::time::Duration;

use pyrpc_proto::{Args, ErrorKind, Value};
use pyrpc_server::ServerConfig;
use pyrpc_transport::{connect, Address};

use crate::peer::{server, Gate, Outcome, Peer};

const T: Duration = Duration::from_secs(5);

async fn bad_bytes_close_only_that_connection(bad: &[u8]) {
    let config = ServerConfig {
        max_frame_len: 64 * 1024,
        ..ServerConfig::default()
    };
    let handle = server(&Gate::new(), config)
        .bind(&Address::tcp("127.0.0.1", 0))
        .await
        .unwrap();
    let addr = handle.local_address().clone();

    let mut good = Peer::new(connect(&addr, T).await.unwrap());
    assert!(good.hello(0).await.error.is_none());
    let mut bad_peer = Peer::new(connect(&addr, T).await.unwrap());
    assert!(bad_peer.hello(0).await.error.is_none());

    bad_peer.send_bytes(bad).await;
    assert!(
        bad_peer.recv().await.is_none(),
        "the bad connection is closed"
    );

    let v = good
        .call_wait("echo", Args::new().arg("still here"))
        .await
        .value();
    assert_eq!(
        v,
        Value::tuple([Value::tuple([Value::from("still here")]), Value::dict([])])
    );
    // and new connections are accepted
    let mut another = Peer::new(connect(&addr, T).await.unwrap());
    assert!(another.hello(0).await.error.is_none());
    assert_eq!(another.ping().await, Outcome::Ack);

    handle.shutdown();
    handle.wait().await;
}

#[tokio::test]
async fn garbage_body_closes_the_connection() {
    bad_bytes_close_only_that_connection(&[0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff]).await;
}

#[tokio::test]
async fn oversize_header_closes_the_connection() {
    bad_bytes_close_only_that_connection(&[0x7f, 0xff, 0xff, 0xff]).await;
    // just over the limit, from the header alone
    bad_bytes_close_only_that_connection(&(64 * 1024 + 1u32).to_be_bytes()).await;
}

#[tokio::test]
async fn zero_length_frame_closes_the_connection() {
    bad_bytes_close_only_that_connection(&[0, 0, 0, 0]).await;
}

#[tokio::test]
async fn garbage_before_hello_closes_the_connection() {
    let s = server(&Gate::new(), ServerConfig::default());
    let mut p = Peer::raw(&s);
    p.send_bytes(b"GET / HTTP/1.1\r\n\r\n").await;
    assert!(p.recv().await.is_none());
    assert_eq!(Peer::connect(&s).await.ping().await, Outcome::Ack);
}

#[tokio::test]
async fn a_result_larger_than_the_client_accepts_is_frame_too_large() {
    let s = server(&Gate::new(), ServerConfig::default());
    let mut p = Peer::raw(&s);
    assert!(p.hello(1024).await.error.is_none());
    // fits
    assert!(matches!(
        p.call_wait("echo", Args::new().arg("x".repeat(50))).await,
        Outcome::Value(_)
    ));
    // does not fit in 1024 bytes (the smallest limit a client may announce)
    let e = p
        .call_wait("echo", Args::new().arg("x".repeat(1500)))
        .await
        .error();
    assert_eq!(e.kind, ErrorKind::FrameTooLarge);
    assert!(e.message.contains("1024"), "{}", e.message);
    assert_eq!(p.ping().await, Outcome::Ack);
}
