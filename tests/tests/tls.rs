//! TLS over real TCP sockets: calls work (with and without client
//! certificates, with the shared secret on top), and every misconfiguration
//! fails fast with an error that says which: a plain client of a TLS server,
//! a TLS client of a plain server, a wrong CA, an expired certificate, mutual
//! TLS without a client certificate. The server keeps serving after each.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use pyrpc_client::{CallError, Client, ClientConfig};
use pyrpc_proto::{Args, ErrorKind, Value};
use pyrpc_tests::certs::TestPki;
use pyrpc_tests::{spawn_server_with, Kind};
use pyrpc_transport::{Address, ClientTls, ServerTls};

/// "Fast": well under the 10 s connect and handshake timeouts.
const FAST: Duration = Duration::from_secs(3);

fn client(addr: &Address, tls: Option<ClientTls>) -> Client {
    Client::with_config(
        addr.clone(),
        ClientConfig {
            tls,
            ..ClientConfig::default()
        },
    )
}

/// Calls `add` and returns the error, checking that it came fast.
async fn failing_call(c: &Client) -> CallError {
    let start = Instant::now();
    let e = c
        .call("add", Args::new().arg(1).arg(2))
        .await
        .expect_err("the call should fail");
    assert!(start.elapsed() < FAST, "took {:?}: {e}", start.elapsed());
    e
}

fn tls_reason(e: &CallError) -> &str {
    match e {
        CallError::Tls { reason, .. } => reason,
        other => panic!("expected a TLS error, got {other:?}"),
    }
}

async fn still_serves(addr: &Address, tls: ClientTls) {
    let good = client(addr, Some(tls));
    let v = good.call("add", Args::new().arg(2).arg(3)).await.unwrap();
    assert_eq!(v, Value::from(5));
}

#[tokio::test]
async fn calls_work_over_tls_and_the_client_connects_by_name_or_address() {
    let pki = TestPki::new();
    let server = spawn_server_with(Kind::Tcp, |b| b.tls(pki.server_tls(false))).await;
    // By IP address (the certificate names 127.0.0.1).
    still_serves(&server.addr, pki.client_tls(false)).await;
    // By host name, and with the server-name override.
    let Address::Tcp { port, .. } = server.addr else {
        unreachable!()
    };
    still_serves(&Address::tcp("localhost", port), pki.client_tls(false)).await;
    let named = pki.client_tls(false).with_server_name("localhost");
    still_serves(&server.addr, named).await;
    // A large value crosses intact.
    let c = client(&server.addr, Some(pki.client_tls(false)));
    let big = Value::Bytes(vec![7u8; 3 << 20].into());
    let back = c.call("echo", Args::new().arg(big.clone())).await.unwrap();
    assert!(
        format!("{back:?}").len() > 3 << 20,
        "echo returned the bytes"
    );
    server.stop().await;
}

#[tokio::test]
async fn tls_and_the_shared_secret_compose() {
    let pki = TestPki::new();
    let server =
        spawn_server_with(Kind::Tcp, |b| b.tls(pki.server_tls(true)).secret("s3cret")).await;
    let c = Client::with_config(
        server.addr.clone(),
        ClientConfig {
            tls: Some(pki.client_tls(true)),
            secret: Some("s3cret".into()),
            ..ClientConfig::default()
        },
    );
    assert_eq!(
        c.call("add", Args::new().arg(1).arg(1)).await.unwrap(),
        Value::from(2)
    );
    // TLS alone is not enough when the server also holds a secret.
    let no_secret = client(&server.addr, Some(pki.client_tls(true)));
    let e = failing_call(&no_secret).await;
    assert_eq!(
        e.remote().map(|r| r.kind),
        Some(ErrorKind::Unauthenticated),
        "{e}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_plain_client_of_a_tls_server_is_told_the_server_requires_tls() {
    let pki = TestPki::new();
    let server = spawn_server_with(Kind::Tcp, |b| b.tls(pki.server_tls(false))).await;
    let e = failing_call(&client(&server.addr, None)).await;
    assert!(tls_reason(&e).contains("this server requires TLS"), "{e}");
    still_serves(&server.addr, pki.client_tls(false)).await;
    server.stop().await;
}

#[tokio::test]
async fn a_tls_client_of_a_plain_server_is_told_the_server_may_not_speak_tls() {
    let pki = TestPki::new();
    let server = spawn_server_with(Kind::Tcp, |b| b).await;
    let e = failing_call(&client(&server.addr, Some(pki.client_tls(false)))).await;
    assert!(tls_reason(&e).contains("may not speak TLS"), "{e}");
    let plain = client(&server.addr, None);
    assert_eq!(
        plain.call("add", Args::new().arg(1).arg(1)).await.unwrap(),
        Value::from(2)
    );
    server.stop().await;
}

#[tokio::test]
async fn a_wrong_ca_is_named() {
    let pki = TestPki::new();
    let server = spawn_server_with(Kind::Tcp, |b| b.tls(pki.server_tls(false))).await;
    let wrong = ClientTls::from_pem(Some(pki.other_ca.as_bytes()), None).unwrap();
    let e = failing_call(&client(&server.addr, Some(wrong))).await;
    assert!(
        tls_reason(&e).contains("not signed by a CA this client trusts"),
        "{e}"
    );
    still_serves(&server.addr, pki.client_tls(false)).await;
    server.stop().await;
}

#[tokio::test]
async fn an_expired_certificate_is_named() {
    let pki = TestPki::new();
    let expired = ServerTls::from_pem(
        pki.expired_server.cert.as_bytes(),
        pki.expired_server.key.as_bytes(),
        None,
    )
    .unwrap();
    let server = spawn_server_with(Kind::Tcp, |b| b.tls(expired)).await;
    let e = failing_call(&client(&server.addr, Some(pki.client_tls(false)))).await;
    assert!(tls_reason(&e).contains("certificate has expired"), "{e}");
    server.stop().await;
}

#[tokio::test]
async fn mutual_tls_without_a_client_certificate_is_named() {
    let pki = TestPki::new();
    let server = spawn_server_with(Kind::Tcp, |b| b.tls(pki.server_tls(true))).await;
    let e = failing_call(&client(&server.addr, Some(pki.client_tls(false)))).await;
    assert!(
        tls_reason(&e).contains("requires a client certificate"),
        "{e}"
    );
    // A certificate from another CA is refused too.
    let other = TestPki::new();
    let stranger = ClientTls::from_pem(
        Some(pki.ca.as_bytes()),
        Some((other.client.cert.as_bytes(), other.client.key.as_bytes())),
    )
    .unwrap();
    let e = failing_call(&client(&server.addr, Some(stranger))).await;
    let reason = tls_reason(&e);
    assert!(
        reason.contains("does not trust this client's certificate")
            || reason.contains("not signed by a CA"),
        "{e}"
    );
    still_serves(&server.addr, pki.client_tls(true)).await;
    server.stop().await;
}

#[tokio::test]
async fn a_wrong_server_name_is_named() {
    let pki = TestPki::new();
    let server = spawn_server_with(Kind::Tcp, |b| b.tls(pki.server_tls(false))).await;
    let tls = pki
        .client_tls(false)
        .with_server_name("not-the-server.example");
    let e = failing_call(&client(&server.addr, Some(tls))).await;
    assert!(tls_reason(&e).contains("not valid for the name"), "{e}");
    server.stop().await;
}

#[test]
fn bad_pem_and_missing_files_are_clear_errors() {
    let pki = TestPki::new();
    let e = ServerTls::from_pem(b"junk", pki.server.key.as_bytes(), None).unwrap_err();
    assert!(e.to_string().contains("server certificate chain"), "{e}");
    let e = ServerTls::from_pem(pki.server.cert.as_bytes(), b"", None).unwrap_err();
    assert!(e.to_string().contains("server private key"), "{e}");
    // A key that is not the certificate's.
    let e = ServerTls::from_pem(pki.server.cert.as_bytes(), pki.client.key.as_bytes(), None)
        .unwrap_err();
    assert!(e.to_string().contains("TLS configuration refused"), "{e}");
    let e = ServerTls::from_pem_files("/nonexistent/cert.pem", "/nonexistent/key.pem", None)
        .unwrap_err();
    assert!(e.to_string().contains("/nonexistent/cert.pem"), "{e}");
    let e = ClientTls::from_pem_files(None, Some("/x.pem".as_ref()), None).unwrap_err();
    assert!(e.to_string().contains("needs both"), "{e}");
}

#[tokio::test]
async fn pem_files_on_disk_work() {
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    pki.write_to(dir.path()).unwrap();
    let p = |n: &str| dir.path().join(n);
    let stls =
        ServerTls::from_pem_files(p("server.pem"), p("server.key"), Some(&p("ca.pem"))).unwrap();
    assert!(stls.requires_client_cert());
    let server = spawn_server_with(Kind::Tcp, |b| b.tls(stls)).await;
    let ctls = ClientTls::from_pem_files(
        Some(&p("ca.pem")),
        Some(&p("client.pem")),
        Some(&p("client.key")),
    )
    .unwrap();
    still_serves(&server.addr, ctls).await;
    server.stop().await;
}

#[tokio::test]
async fn a_stream_served_by_hand_on_a_tls_server_is_refused_like_a_plain_client() {
    // `serve_stream` cannot know whether a stream it is given is encrypted:
    // on a TLS server it must refuse it, not serve it in the clear.
    let pki = TestPki::new();
    let service = std::sync::Arc::new(pyrpc_tests::Service::default());
    let server = pyrpc_server::Server::builder(pyrpc_tests::methods(service))
        .tls(pki.server_tls(false))
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let serving = tokio::spawn(async move {
        let (stream, peer) = listener.accept().await.unwrap();
        server.serve_stream(stream, peer.to_string()).await.unwrap();
    });
    let e = failing_call(&client(&Address::tcp("127.0.0.1", port), None)).await;
    assert!(tls_reason(&e).contains("this server requires TLS"), "{e}");
    tokio::time::timeout(FAST, serving)
        .await
        .expect("the refused connection ends")
        .unwrap();
}
