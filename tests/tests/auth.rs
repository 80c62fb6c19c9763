//! Shared-secret authentication: the right secret works both ways; a wrong,
//! missing or skipped answer is refused before any method runs; a client
//! with a secret refuses a server without one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use pyrpc_client::{CallError, Client, ClientConfig};
use pyrpc_framing::Codec;
use pyrpc_proto::auth::Secret;
use pyrpc_proto::{wire, Args, ErrorKind, Value};
use pyrpc_tests::{call_msg, spawn_server_with, Kind, KINDS};
use pyrpc_transport::{connect, Address};
use tokio_util::codec::Framed;

const T: Duration = Duration::from_secs(5);

fn client(addr: &Address, secret: Option<&str>) -> Client {
    Client::with_config(
        addr.clone(),
        ClientConfig {
            secret: secret.map(Secret::from),
            socket_connect_timeout: T,
            ..ClientConfig::default()
        },
    )
}

fn unauthenticated(e: &CallError) -> &str {
    match e.remote() {
        Some(r) if r.kind == ErrorKind::Unauthenticated => {
            assert_eq!(r.type_name, "PermissionError");
            &r.message
        }
        _ => panic!("expected an UNAUTHENTICATED error, got {e:?}"),
    }
}

#[tokio::test]
async fn the_right_secret_works_over_both_transports() {
    for kind in KINDS {
        let server = spawn_server_with(kind, |b| b.secret("s3cret")).await;
        let c = client(&server.addr, Some("s3cret"));
        let v = c.call("add", Args::new().arg(2).arg(3)).await.unwrap();
        assert_eq!(v, Value::from(5), "{kind:?}");
        assert_eq!(c.call("count", Args::new()).await.unwrap(), Value::from(1));
        server.stop().await;
    }
}

#[tokio::test]
async fn a_wrong_secret_is_refused_and_nothing_runs() {
    let server = spawn_server_with(Kind::Tcp, |b| b.secret("s3cret")).await;
    let c = client(&server.addr, Some("guess"));
    let e = c.call("count", Args::new()).await.unwrap_err();
    let msg = unauthenticated(&e);
    assert!(msg.contains("does not hold"), "{msg}");
    assert_eq!(server.service.counted.load(Ordering::SeqCst), 0);
    server.stop().await;
}

#[tokio::test]
async fn a_client_without_the_secret_is_told_it_needs_one() {
    let server = spawn_server_with(Kind::Unix, |b| b.secret("s3cret")).await;
    let c = client(&server.addr, None);
    let e = c.call("count", Args::new()).await.unwrap_err();
    let msg = unauthenticated(&e);
    assert!(msg.contains("requires authentication"), "{msg}");
    assert!(!c.connected(Duration::from_millis(500)).await);
    assert_eq!(server.service.counted.load(Ordering::SeqCst), 0);
    server.stop().await;
}

#[tokio::test]
async fn a_client_with_a_secret_refuses_a_server_without_one() {
    let server = spawn_server_with(Kind::Tcp, |b| b).await;
    let c = client(&server.addr, Some("s3cret"));
    let e = c.call("count", Args::new()).await.unwrap_err();
    let msg = unauthenticated(&e);
    assert!(msg.contains("does not authenticate"), "{msg}");
    assert_eq!(server.service.counted.load(Ordering::SeqCst), 0);
    server.stop().await;
}

type Raw = Framed<pyrpc_transport::Stream, Codec<wire::ServerFrame, wire::ClientFrame>>;

/// Connects, sends a hello (with a client nonce) and returns the server's.
async fn raw_hello(addr: &Address) -> (Raw, wire::ServerHello) {
    let stream = connect(addr, T).await.unwrap();
    let mut framed = Framed::new(stream, Codec::new());
    framed
        .send(wire::ClientFrame {
            kind: Some(wire::client_frame::Kind::Hello(wire::ClientHello {
                protocol_version: 1,
                auth_nonce: vec![7u8; 32].into(),
                ..Default::default()
            })),
        })
        .await
        .unwrap();
    let hello = match framed.next().await {
        Some(Ok(wire::ServerFrame {
            kind: Some(wire::server_frame::Kind::Hello(h)),
        })) => h,
        other => panic!("expected a hello, got {other:?}"),
    };
    (framed, hello)
}

fn call_frame(id: u64, method: &str) -> wire::ClientFrame {
    wire::ClientFrame {
        kind: Some(wire::client_frame::Kind::Request(wire::Request {
            id,
            kind: Some(wire::request::Kind::Call(call_msg(method))),
        })),
    }
}

/// The server's answer after the challenge: a refusing hello, then the end.
async fn expect_refusal(framed: &mut Raw) -> String {
    let refusal = match tokio::time::timeout(T, framed.next()).await.unwrap() {
        Some(Ok(wire::ServerFrame {
            kind: Some(wire::server_frame::Kind::Hello(h)),
        })) => h.error.expect("a refusal"),
        other => panic!("expected a refusing hello, got {other:?}"),
    };
    assert_eq!(refusal.kind, ErrorKind::Unauthenticated as i32);
    assert!(
        tokio::time::timeout(T, framed.next())
            .await
            .unwrap()
            .is_none(),
        "the connection closes"
    );
    refusal.message
}

#[tokio::test]
async fn requests_before_authenticating_never_run() {
    let server = spawn_server_with(Kind::Tcp, |b| b.secret("s3cret")).await;
    // Skips the challenge and calls at once.
    let (mut framed, hello) = raw_hello(&server.addr).await;
    assert_eq!(hello.auth_challenge.len(), 32);
    assert!(hello.error.is_none());
    framed.send(call_frame(1, "count")).await.unwrap();
    let msg = expect_refusal(&mut framed).await;
    assert!(msg.contains("authentication required"), "{msg}");

    // A wrong answer with calls pipelined behind it.
    let (mut framed, hello) = raw_hello(&server.addr).await;
    let mac = Secret::from("nope").client_mac(&hello.auth_challenge, &[7u8; 32]);
    framed
        .send(wire::ClientFrame {
            kind: Some(wire::client_frame::Kind::Auth(wire::AuthResponse {
                mac: mac.into(),
            })),
        })
        .await
        .unwrap();
    for id in 0..10 {
        // The server may already have closed: a failed send is fine.
        let _ = framed.send(call_frame(id, "count")).await;
    }
    expect_refusal(&mut framed).await;

    // A replayed answer from another connection (its challenge differs).
    let (mut first, hello1) = raw_hello(&server.addr).await;
    let good = Secret::from("s3cret").client_mac(&hello1.auth_challenge, &[7u8; 32]);
    let (mut second, hello2) = raw_hello(&server.addr).await;
    assert_ne!(
        hello1.auth_challenge, hello2.auth_challenge,
        "fresh challenges"
    );
    second
        .send(wire::ClientFrame {
            kind: Some(wire::client_frame::Kind::Auth(wire::AuthResponse {
                mac: good.clone().into(),
            })),
        })
        .await
        .unwrap();
    expect_refusal(&mut second).await;
    // The right answer on its own connection works, and proves the server.
    first
        .send(wire::ClientFrame {
            kind: Some(wire::client_frame::Kind::Auth(wire::AuthResponse {
                mac: good.into(),
            })),
        })
        .await
        .unwrap();
    match first.next().await {
        Some(Ok(wire::ServerFrame {
            kind: Some(wire::server_frame::Kind::Hello(h)),
        })) => {
            assert!(h.error.is_none(), "{:?}", h.error);
            assert!(Secret::from("s3cret").verify_server(
                &hello1.auth_challenge,
                &[7u8; 32],
                &h.auth_proof
            ));
        }
        other => panic!("expected the second hello, got {other:?}"),
    }
    assert_eq!(server.service.counted.load(Ordering::SeqCst), 0);
    first.send(call_frame(5, "count")).await.unwrap();
    match first.next().await {
        Some(Ok(wire::ServerFrame {
            kind: Some(wire::server_frame::Kind::Response(r)),
        })) => assert_eq!(r.id, 5),
        other => panic!("expected a response, got {other:?}"),
    }
    assert_eq!(server.service.counted.load(Ordering::SeqCst), 1);
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_never_answers_the_challenge_is_dropped() {
    let server = spawn_server_with(Kind::Tcp, |b| {
        b.config(pyrpc_server::ServerConfig {
            handshake_timeout: Duration::from_millis(300),
            ..Default::default()
        })
        .secret("s3cret")
    })
    .await;
    let (mut framed, _hello) = raw_hello(&server.addr).await;
    let msg = expect_refusal(&mut framed).await;
    assert!(msg.contains("handshake timeout"), "{msg}");
    server.stop().await;
}
