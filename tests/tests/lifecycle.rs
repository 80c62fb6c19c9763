//! connected(), shutdown and the socket file, many concurrent calls on one client.

use std::time::Duration;

use pyrpc_client::Client;
use pyrpc_proto::{Args, Value};
use pyrpc_tests::{spawn_server, Kind, KINDS};

#[tokio::test]
async fn connected_is_true_then_false_after_shutdown() {
    for kind in KINDS {
        let server = spawn_server(kind).await;
        let client = Client::new(server.addr.clone());
        assert!(client.connected(Duration::from_secs(5)).await, "{kind:?}");
        client.shutdown().await.unwrap();
        server.handle.wait().await;
        assert!(
            !client.connected(Duration::from_millis(500)).await,
            "{kind:?}"
        );
    }
}

#[tokio::test]
async fn shutdown_removes_the_socket_file() {
    let server = spawn_server(Kind::Unix).await;
    let pyrpc_transport::Address::Unix(path) = server.addr.clone() else {
        panic!("unix expected")
    };
    assert!(path.exists());
    server.stop().await;
    assert!(!path.exists(), "socket file left behind");
}

#[tokio::test]
async fn shutdown_lets_an_in_flight_call_finish() {
    let server = spawn_server(Kind::Tcp).await;
    let client = Client::new(server.addr.clone());
    let call = {
        let client = client.clone();
        tokio::spawn(async move { client.call("gated", Args::new()).await })
    };
    server.service.gate_entered.notified().await;
    server.handle.shutdown();
    server.service.gate_open.notify_one();
    assert_eq!(call.await.unwrap().unwrap(), Value::from("done"));
    server.handle.wait().await;
}

#[tokio::test]
async fn many_concurrent_calls_on_one_client() {
    for kind in KINDS {
        let server = spawn_server(kind).await;
        let client = Client::new(server.addr.clone());
        let calls: Vec<_> = (0..500i64)
            .map(|i| {
                let client = client.clone();
                tokio::spawn(async move {
                    // a mix of slow and fast calls, so replies come back out of order
                    if i % 10 == 0 {
                        client.call("sleep", Args::new().arg(0.05)).await.unwrap();
                    }
                    client.call("add", Args::new().arg(i).arg(i)).await.unwrap()
                })
            })
            .collect();
        for (i, c) in calls.into_iter().enumerate() {
            assert_eq!(c.await.unwrap(), Value::from(2 * i as i64));
        }
        server.stop().await;
    }
}

#[test]
fn blocking_client_works_from_threads() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(spawn_server(Kind::Unix));
    let client = pyrpc_client::blocking::Client::new(server.addr.clone()).unwrap();
    std::thread::scope(|s| {
        for t in 0..8i64 {
            let client = &client;
            s.spawn(move || {
                for i in 0..50 {
                    let r = client.call("add", Args::new().arg(t).arg(i)).unwrap();
                    assert_eq!(r, Value::from(t + i));
                }
            });
        }
    });
    rt.block_on(server.stop());
}
