//! The blocking client, from many threads at once.

mod support;

use std::sync::mpsc;
use std::time::Duration;

use pyrpc_client::{blocking, CallError, ClientConfig, TimeoutStage};
use pyrpc_proto::{Args, Value};
use support::{echo_script, FakeServer, Net, Peer};

/// Runs a fake server on its own runtime thread; returns its address and a
/// guard that stops it when dropped.
fn server_thread<F, Fut>(script: F) -> (pyrpc_transport::Address, tokio::sync::oneshot::Sender<()>)
where
    F: Fn(Peer) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (addr_tx, addr_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let server = FakeServer::start(Net::Tcp, script).await;
            addr_tx.send(server.addr.clone()).expect("send address");
            let _ = stop_rx.await;
        });
    });
    let addr = addr_rx
        .recv_timeout(support::SOON)
        .expect("the server started");
    (addr, stop_tx)
}

#[test]
fn blocking_client_serves_many_threads_on_one_connection() {
    let (addr, _stop) = server_thread(echo_script);
    let client = blocking::Client::new(addr).expect("client");
    assert!(client.connected(Duration::from_secs(2)));
    let threads: Vec<_> = (0..8i64)
        .map(|t| {
            let client = client.clone();
            std::thread::spawn(move || {
                for i in 0..25i64 {
                    let n = t * 1000 + i;
                    let ret = client.call("echo", Args::new().arg(n)).expect("call");
                    assert_eq!(ret, Value::tuple([Value::from(n)]));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    assert_eq!(client.in_flight(), 0);
    let info = client.server_info().expect("connected");
    assert_eq!(info.name, "fake-server/1");
}

#[test]
fn blocking_client_reports_timeouts_and_no_socket() {
    let (addr, _stop) = server_thread(|mut peer: Peer| async move {
        peer.hello().await;
        while peer.recv().await.is_some() {}
    });
    let config = ClientConfig {
        call_timeout: Some(Duration::from_millis(100)),
        ..ClientConfig::default()
    };
    let client = blocking::Client::with_config(addr, config).expect("client");
    let err = client.call("slow", Args::new()).expect_err("times out");
    assert_eq!(err.timeout_stage(), Some(TimeoutStage::Reply), "{err}");

    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    drop(l);
    let nobody =
        blocking::Client::new(pyrpc_transport::Address::tcp("127.0.0.1", port)).expect("client");
    assert!(matches!(nobody.ping(), Err(CallError::NoSocket { .. })));
    assert!(!nobody.connected(Duration::from_millis(100)));
}

#[tokio::test]
async fn dropping_a_blocking_client_inside_a_runtime_does_not_panic() {
    let client =
        blocking::Client::new(pyrpc_transport::Address::tcp("127.0.0.1", 1)).expect("client");
    drop(client);
}
