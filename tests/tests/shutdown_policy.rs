//! Who may shut a server down (`ServerConfig::remote_shutdown`): by default
//! anyone on a Unix socket or a loopback bind, and on other interfaces only a
//! client that proved the shared secret or a client certificate. A refused
//! shutdown is a clear `UNAUTHENTICATED` error and the server keeps serving.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use pyrpc_client::{CallError, Client, ClientConfig};
use pyrpc_proto::{Args, ErrorKind, Value};
use pyrpc_server::{RemoteShutdown, Server, ServerBuilder, ServerHandle};
use pyrpc_tests::certs::TestPki;
use pyrpc_tests::{methods, spawn_server_with, Kind};
use pyrpc_transport::Address;

const T: Duration = Duration::from_secs(5);

/// A server bound to all interfaces (reached over loopback).
async fn on_all_interfaces(
    tune: impl FnOnce(ServerBuilder) -> ServerBuilder,
) -> (ServerHandle, Address) {
    let builder = tune(Server::builder(methods(Default::default())));
    let handle = builder
        .build()
        .bind(&Address::tcp("0.0.0.0", 0))
        .await
        .unwrap();
    let Address::Tcp { port, .. } = handle.local_address() else {
        unreachable!()
    };
    let addr = Address::tcp("127.0.0.1", *port);
    (handle, addr)
}

fn client(addr: &Address, config: ClientConfig) -> Client {
    Client::with_config(addr.clone(), config)
}

fn assert_refused(e: &CallError) {
    let r = e
        .remote()
        .unwrap_or_else(|| panic!("expected a remote error, got {e:?}"));
    assert_eq!(r.kind, ErrorKind::Unauthenticated, "{r:?}");
    assert!(r.message.contains("remote shutdown refused"), "{r:?}");
}

async fn assert_serving(c: &Client, handle: &ServerHandle) {
    assert_eq!(
        c.call("add", Args::new().arg(1).arg(2)).await.unwrap(),
        Value::from(3)
    );
    assert!(!handle.is_finished());
}

async fn assert_shuts_down(handle: &ServerHandle) {
    tokio::time::timeout(T, handle.wait())
        .await
        .expect("the server shut down");
}

#[tokio::test]
async fn default_allows_loopback_and_unix() {
    for kind in [Kind::Tcp, Kind::Unix] {
        let server = spawn_server_with(kind, |b| b).await;
        let c = client(&server.addr, ClientConfig::default());
        c.shutdown().await.unwrap();
        assert_shuts_down(&server.handle).await;
    }
}

#[tokio::test]
async fn default_refuses_an_anonymous_client_on_all_interfaces() {
    let (handle, addr) = on_all_interfaces(|b| b).await;
    let c = client(&addr, ClientConfig::default());
    assert_refused(&c.shutdown().await.unwrap_err());
    // The `shutdown` method (the original's spelling) is refused too.
    assert_refused(&c.call("shutdown", Args::new()).await.unwrap_err());
    assert_serving(&c, &handle).await;
    handle.shutdown();
    handle.wait().await;
}

#[tokio::test]
async fn default_allows_a_client_that_proved_the_secret() {
    let (handle, addr) = on_all_interfaces(|b| b.secret("s3cret")).await;
    let c = client(
        &addr,
        ClientConfig {
            secret: Some("s3cret".into()),
            ..ClientConfig::default()
        },
    );
    assert_serving(&c, &handle).await;
    c.shutdown().await.unwrap();
    assert_shuts_down(&handle).await;
}

#[tokio::test]
async fn default_allows_a_client_certificate_but_not_plain_tls() {
    let pki = TestPki::new();
    let (handle, addr) = on_all_interfaces(|b| b.tls(pki.server_tls(false))).await;
    let c = client(
        &addr,
        ClientConfig {
            tls: Some(pki.client_tls(false)),
            ..ClientConfig::default()
        },
    );
    assert_refused(&c.shutdown().await.unwrap_err());
    assert_serving(&c, &handle).await;
    handle.shutdown();
    handle.wait().await;

    let (handle, addr) = on_all_interfaces(|b| b.tls(pki.server_tls(true))).await;
    let c = client(
        &addr,
        ClientConfig {
            tls: Some(pki.client_tls(true)),
            ..ClientConfig::default()
        },
    );
    c.shutdown().await.unwrap();
    assert_shuts_down(&handle).await;
}

#[tokio::test]
async fn refuse_holds_even_on_a_unix_socket_and_allow_opens_all_interfaces() {
    let server = spawn_server_with(Kind::Unix, |b| b.remote_shutdown(RemoteShutdown::Refuse)).await;
    let c = client(&server.addr, ClientConfig::default());
    assert_refused(&c.shutdown().await.unwrap_err());
    assert_serving(&c, &server.handle).await;
    server.stop().await;

    let (handle, addr) = on_all_interfaces(|b| b.remote_shutdown(RemoteShutdown::Allow)).await;
    client(&addr, ClientConfig::default())
        .shutdown()
        .await
        .unwrap();
    assert_shuts_down(&handle).await;
}
