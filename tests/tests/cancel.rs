//! Cancellation: a caller that gives up (its timeout passes, its future is
//! dropped) tells the server with `Cancel`, and the server stops the call.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use pyrpc_client::{CallError, CallOptions, Client};
use pyrpc_framing::Codec;
use pyrpc_proto::{wire, Args, ErrorKind, Value};
use pyrpc_server::{Methods, Server, ServerHandle};
use pyrpc_transport::{connect, Address};
use tokio::sync::Notify;
use tokio_util::codec::Framed;

/// Notifies when dropped: tells the test the handler's future is gone.
struct OnDrop(Arc<Notify>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        self.0.notify_one();
    }
}

/// A server whose `wait` never returns by itself; `dropped` is notified when
/// a `wait` call is stopped, `entered` when one starts.
async fn server(addr: Address) -> (ServerHandle, Arc<Notify>, Arc<Notify>) {
    let (dropped, entered) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let (d, e) = (dropped.clone(), entered.clone());
    let methods = Methods::new().add_async("wait", move |_args: Args| {
        let guard = OnDrop(d.clone());
        let entered = e.clone();
        async move {
            let _guard = guard;
            entered.notify_one();
            std::future::pending::<()>().await;
            Ok(Value::None)
        }
    });
    let handle = Server::builder(methods)
        .build()
        .bind(&addr)
        .await
        .expect("the server binds");
    (handle, dropped, entered)
}

fn addresses() -> Vec<(Address, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().expect("a temp dir");
    let unix = Address::unix(dir.path().join("s"));
    vec![(Address::tcp("127.0.0.1", 0), None), (unix, Some(dir))]
}

async fn stopped(dropped: &Notify) -> bool {
    tokio::time::timeout(Duration::from_secs(10), dropped.notified())
        .await
        .is_ok()
}

#[tokio::test]
async fn a_call_timeout_cancels_the_call_on_the_server() {
    for (addr, _dir) in addresses() {
        let (handle, dropped, _) = server(addr).await;
        let client = Client::new(handle.local_address().clone());
        let opts = CallOptions {
            call_timeout: Some(Some(Duration::from_millis(200))),
            ..Default::default()
        };
        let e = client
            .call_with("wait", Args::new(), &opts)
            .await
            .unwrap_err();
        assert!(matches!(e, CallError::Timeout { .. }), "{e:?}");
        // The client (and its connection) is still here: only a Cancel can
        // have stopped the handler.
        assert!(stopped(&dropped).await, "the handler still runs");
        assert!(client.connected(Duration::from_secs(5)).await);
        handle.shutdown();
    }
}

#[tokio::test]
async fn a_dropped_call_future_cancels_the_call_on_the_server() {
    for (addr, _dir) in addresses() {
        let (handle, dropped, entered) = server(addr).await;
        let client = Client::new(handle.local_address().clone());
        tokio::select! {
            r = client.call("wait", Args::new()) => panic!("wait returned {r:?}"),
            _ = entered.notified() => {} // the call runs: drop it
        }
        assert!(stopped(&dropped).await, "the handler still runs");
        assert!(client.connected(Duration::from_secs(5)).await);
        handle.shutdown();
    }
}

fn request(id: u64, kind: wire::request::Kind) -> wire::ClientFrame {
    wire::ClientFrame {
        kind: Some(wire::client_frame::Kind::Request(wire::Request {
            id,
            kind: Some(kind),
        })),
    }
}

#[tokio::test]
async fn cancel_is_acked_and_the_call_answers_cancelled() {
    for (addr, _dir) in addresses() {
        let (handle, dropped, entered) = server(addr).await;
        let stream = connect(handle.local_address(), Duration::from_secs(5))
            .await
            .unwrap();
        let mut framed: Framed<_, Codec<wire::ServerFrame, wire::ClientFrame>> =
            Framed::new(stream, Codec::new());
        let hello = wire::ClientHello {
            protocol_version: pyrpc_proto::PROTOCOL_VERSION,
            peer_name: "cancel test".into(),
            ..Default::default()
        };
        framed
            .send(wire::ClientFrame {
                kind: Some(wire::client_frame::Kind::Hello(hello)),
            })
            .await
            .unwrap();
        assert!(framed.next().await.is_some(), "server hello");
        let call = wire::Call {
            method: "wait".into(),
            ..Default::default()
        };
        framed
            .send(request(1, wire::request::Kind::Call(call)))
            .await
            .unwrap();
        entered.notified().await;
        // An id that names nothing running is acked all the same.
        framed
            .send(request(
                2,
                wire::request::Kind::Cancel(wire::Cancel { id: 99 }),
            ))
            .await
            .unwrap();
        framed
            .send(request(
                3,
                wire::request::Kind::Cancel(wire::Cancel { id: 1 }),
            ))
            .await
            .unwrap();
        let mut answers = std::collections::BTreeMap::new();
        while answers.len() < 3 {
            match framed.next().await {
                Some(Ok(wire::ServerFrame {
                    kind: Some(wire::server_frame::Kind::Response(r)),
                })) => {
                    answers.insert(r.id, r.kind.expect("a response kind"));
                }
                other => panic!("expected a response, got {other:?}"),
            }
        }
        assert!(matches!(answers[&2], wire::response::Kind::Ack(_)));
        assert!(matches!(answers[&3], wire::response::Kind::Ack(_)));
        match &answers[&1] {
            wire::response::Kind::Error(e) => {
                assert_eq!(e.kind, ErrorKind::Cancelled as i32, "{e:?}");
                assert_eq!(e.type_name, "CancelledError");
            }
            other => panic!("expected CANCELLED, got {other:?}"),
        }
        assert!(stopped(&dropped).await);
        handle.shutdown();
    }
}

#[tokio::test]
async fn a_call_running_at_its_deadline_is_stopped_and_answered_deadline_exceeded() {
    // A raw peer that never sends Cancel: the server's own deadline stops it.
    for (addr, _dir) in addresses() {
        let (handle, dropped, _) = server(addr).await;
        let mut peer = pyrpc_tests::RawPeer::connect(handle.local_address()).await;
        let call = wire::Call {
            method: "wait".into(),
            timeout_ms: 200,
            stream_window: 0,
            ..Default::default()
        };
        match peer.request(wire::request::Kind::Call(call)).await {
            wire::response::Kind::Error(e) => {
                assert_eq!(e.kind, ErrorKind::DeadlineExceeded as i32, "{e:?}")
            }
            other => panic!("expected DEADLINE_EXCEEDED, got {other:?}"),
        }
        assert!(stopped(&dropped).await, "the handler still runs");
        handle.shutdown();
    }
}
