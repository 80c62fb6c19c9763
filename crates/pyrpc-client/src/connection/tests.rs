//! Unit tests of `connection` (moved out of `connection.rs` to keep that file to its job).

use super::*;
use futures::{SinkExt, StreamExt};
use pyrpc_proto::raw::server_frame;
use pyrpc_proto::PROTOCOL_VERSION;

#[test]
fn fail_all_wakes_every_waiter_and_refuses_new_ones() {
    let shared = Shared::new();
    let mut a = shared.register(1).expect("open");
    let mut b = shared.register(2).expect("open");
    shared.fail_all(Broken::Protocol(ProtocolError::NoOutcome));
    shared.fail_all(Broken::Closed);
    for rx in [&mut a, &mut b] {
        match rx.try_recv() {
            Ok(Err(Broken::Protocol(ProtocolError::NoOutcome))) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(matches!(shared.register(3), Err(Broken::Protocol(_))));
    assert_eq!(shared.len(), 0);
    assert!(!shared.open.load(Ordering::Acquire));
}

#[test]
fn complete_routes_by_id_and_ignores_unknown_ids() {
    let shared = Shared::new();
    let mut a = shared.register(7).expect("open");
    let mut b = shared.register(8).expect("open");
    shared.complete(8, Some(response::Kind::Ack(wire::Ack {})));
    shared.complete(99, None);
    assert!(a.try_recv().is_err(), "7 has no answer yet");
    assert!(matches!(b.try_recv(), Ok(Ok(Some(response::Kind::Ack(_))))));
    assert_eq!(shared.len(), 1);
    shared.remove(7);
    assert_eq!(shared.len(), 0);
}

/// Counts the writes made to the inner stream.
struct CountWrites<S> {
    inner: S,
    writes: Arc<std::sync::atomic::AtomicUsize>,
}

impl<S: AsyncRead + Unpin> AsyncRead for CountWrites<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CountWrites<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[tokio::test]
async fn concurrent_requests_share_writes_and_a_lone_one_writes_at_once() {
    use tokio_util::codec::Framed;
    let (ours, theirs) = tokio::io::duplex(1 << 20);
    let writes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let io = CountWrites {
        inner: ours,
        writes: Arc::clone(&writes),
    };
    // A server answering every request with an Ack.
    tokio::spawn(async move {
        let mut framed = Framed::new(theirs, Codec::<ClientFrame, ServerFrame>::new());
        let hello = ServerFrame {
            kind: Some(server_frame::Kind::Hello(wire::ServerHello {
                protocol_version: PROTOCOL_VERSION,
                ..Default::default()
            })),
        };
        let _ = framed.next().await;
        framed.send(hello).await.expect("hello");
        while let Some(Ok(f)) = framed.next().await {
            if let Some(client_frame::Kind::Request(r)) = f.kind {
                let ack = ServerFrame {
                    kind: Some(server_frame::Kind::Response(pyrpc_proto::raw::Response {
                        id: r.id,
                        kind: Some(response::Kind::Ack(wire::Ack {})),
                    })),
                };
                framed.send(ack).await.expect("ack");
            }
        }
    });
    let conn = Connection::handshake(io, &ClientConfig::default())
        .await
        .expect("handshake");
    let ping = || request::Kind::Ping(wire::Ping {});
    let soon = Duration::from_secs(5);

    let before = writes.load(Ordering::Relaxed);
    let lone = conn.send(ping(), soon).await.expect("sent");
    assert_eq!(
        writes.load(Ordering::Relaxed) - before,
        1,
        "written at once"
    );
    assert!(matches!(lone.wait(None).await, Ok(response::Kind::Ack(_))));

    let before = writes.load(Ordering::Relaxed);
    let calls = (0..64).map(|_| async {
        let reply = conn.send(ping(), soon).await?;
        reply.wait(None).await
    });
    let answers = futures::future::join_all(calls).await;
    assert!(answers
        .iter()
        .all(|a| matches!(a, Ok(response::Kind::Ack(_)))));
    let n = writes.load(Ordering::Relaxed) - before;
    assert!(n <= 4, "64 concurrent requests took {n} writes");
}
