//! Streamed replies against a scripted server that breaks the flow control.

mod support;

use futures::StreamExt;
use pyrpc_client::{Args, CallError, ClientConfig, STREAM_WINDOW};
use pyrpc_proto::wire::{self, client_frame, request, server_frame, ServerFrame};
use pyrpc_proto::{ErrorKind, Value};
use support::{call_of, next, report, FakeServer, PIPE};

/// A server that sends one item more than the window it was offered gets
/// its stream cut after the granted items, with a `PROTOCOL` error, and
/// the call is cancelled: the client never queues more than it granted.
#[tokio::test]
async fn a_server_sending_past_its_credit_has_the_stream_cut_and_cancelled() {
    let (tx, mut seen) = report();
    let server = FakeServer::start(PIPE, move |mut peer| {
        let tx = tx.clone();
        async move {
            peer.hello().await;
            let req = peer.expect().await;
            let window = call_of(&req).stream_window;
            tx.send(format!("window {window}")).ok();
            for i in 0..=u64::from(window) {
                peer.send(ServerFrame {
                    kind: Some(server_frame::Kind::Item(wire::StreamItem {
                        id: req.id,
                        value: Some(Value::from(i as i64).into()),
                    })),
                })
                .await;
            }
            // The caller reads nothing until the cancel came, so no credit
            // was granted: the next frame is the cancel.
            let frame = peer.next_frame().await;
            let cancelled = matches!(
                frame.and_then(|f| f.kind),
                Some(client_frame::Kind::Request(wire::Request {
                    id: _,
                    kind: Some(request::Kind::Cancel(c)),
                })) if c.id == req.id
            );
            tx.send(format!("cancelled {cancelled}")).ok();
        }
    })
    .await;
    let client = server.client(ClientConfig::default());
    let mut items = client
        .call_streaming("count", Args::new())
        .await
        .expect("the stream starts")
        .into_stream();
    assert_eq!(next(&mut seen).await, format!("window {STREAM_WINDOW}"));
    assert_eq!(next(&mut seen).await, "cancelled true");
    let mut got = Vec::new();
    let err = loop {
        match items.next().await {
            Some(Ok(v)) => got.push(v),
            Some(Err(e)) => break e,
            None => panic!(
                "the stream ended without an error after {} items",
                got.len()
            ),
        }
    };
    let want: Vec<Value> = (0..i64::from(STREAM_WINDOW)).map(Value::from).collect();
    assert_eq!(got, want, "exactly the granted items arrive");
    match err {
        CallError::Remote(e) => {
            assert_eq!(e.kind, ErrorKind::Protocol);
            assert!(e.message.contains("more stream items"), "{}", e.message);
        }
        other => panic!("expected a protocol error, got {other:?}"),
    }
    assert!(items.next().await.is_none());
}
