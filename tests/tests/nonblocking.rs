//! Non-blocking calls survive dropped connections, run once, and unfetched
//! results are reaped.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pyrpc_client::{CallOptions, Client};
use pyrpc_proto::{wire, Args, Value};
use pyrpc_tests::{call_msg, spawn_server, spawn_server_with, Kind, Proxy, RawPeer};

#[tokio::test]
async fn nb_call_survives_connection_cuts_and_runs_once() {
    pyrpc_tests::trace_init();
    let server = spawn_server(Kind::Tcp).await;
    let proxy = Proxy::start(server.addr.clone()).await;
    let client = Client::new(proxy.addr.clone());
    let opts = CallOptions {
        nb_fetch_tick: Some(Duration::from_millis(50)),
        ..Default::default()
    };
    let call = {
        let client = client.clone();
        tokio::spawn(async move { client.nb_call_with("gated", Args::new(), &opts).await })
    };
    // The call is running on the server: cut the client's connection twice,
    // waiting each time until the client has reconnected and polls again.
    server.service.gate_entered.notified().await;
    for _ in 0..2 {
        let before = proxy.accepted();
        proxy.cut();
        proxy.wait_accepted_more_than(before).await;
    }
    server.service.gate_open.notify_one();
    let ret = call.await.unwrap().unwrap();
    assert_eq!(ret, Value::from("done"));
    assert_eq!(
        server.service.counted.load(Ordering::SeqCst),
        1,
        "ran exactly once"
    );
    assert!(proxy.accepted() >= 3);
    server.stop().await;
}

#[tokio::test]
async fn nb_call_spanning_several_polls_returns_its_value() {
    let server = spawn_server(Kind::Unix).await;
    let client = Client::new(server.addr.clone());
    let opts = CallOptions {
        nb_fetch_tick: Some(Duration::from_millis(20)),
        ..Default::default()
    };
    let ret = client
        .nb_call_with("sleep", Args::new().arg(0.2), &opts)
        .await
        .unwrap();
    assert_eq!(ret, Value::from(0.2));
    server.stop().await;
}

#[tokio::test]
async fn unfetched_results_are_reaped_after_their_keep_time() {
    let server = spawn_server_with(Kind::Tcp, |b| {
        b.nonblocking(true)
            .request_clean_interval(Duration::from_millis(20))
    })
    .await;
    let mut peer = RawPeer::connect(&server.addr).await;
    assert!(peer.hello.capabilities.as_ref().unwrap().nonblocking);
    let call_id = Bytes::copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    let submitted = peer
        .request(wire::request::Kind::Submit(wire::Submit {
            call_id: call_id.clone(),
            call: Some(call_msg("count")),
            keep_ms: 100,
        }))
        .await;
    assert!(
        matches!(submitted, wire::response::Kind::Ack(_)),
        "{submitted:?}"
    );
    // The result is there (waiting up to 5 s for the call to finish)...
    let fetched = peer
        .request(wire::request::Kind::Fetch(wire::Fetch {
            call_id: call_id.clone(),
            wait_ms: 5000,
        }))
        .await;
    assert!(
        matches!(fetched, wire::response::Kind::Value(_)),
        "{fetched:?}"
    );
    // ...and, never released, it is gone once its keep-time has passed.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = peer
            .request(wire::request::Kind::Fetch(wire::Fetch {
                call_id: call_id.clone(),
                wait_ms: 0,
            }))
            .await;
        match r {
            wire::response::Kind::Error(e)
                if e.kind == pyrpc_proto::ErrorKind::UnknownCall as i32 =>
            {
                break
            }
            wire::response::Kind::Value(_) => {
                assert!(Instant::now() < deadline, "result never reaped");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    server.stop().await;
}
