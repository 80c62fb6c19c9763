//! Streamed replies over real sockets (TCP and Unix): items in order as
//! produced, the end of the stream, an error mid-stream, credit bounding a
//! stalled consumer, dropping the stream stopping the method, and the
//! call's cancellation as Rust handlers see it (`CallContext`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use pyrpc_client::{CallError, CallOptions, Client, Reply, STREAM_WINDOW};
use pyrpc_proto::{Args, ErrorKind, RemoteError, Value};
use pyrpc_server::{CallContext, Methods, Server, ServerHandle};
use pyrpc_transport::Address;
use tokio::sync::Notify;

fn addresses() -> Vec<(Address, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().expect("a temp dir");
    let unix = Address::unix(dir.path().join("s"));
    vec![(Address::tcp("127.0.0.1", 0), None), (unix, Some(dir))]
}

/// Notifies when dropped: tells the test the stream is gone.
struct OnDrop(Arc<Notify>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        self.0.notify_one();
    }
}

struct Fixture {
    handle: ServerHandle,
    /// Items the `endless` stream produced.
    produced: Arc<AtomicU64>,
    /// Notified when an `endless` stream is dropped.
    dropped: Arc<Notify>,
    /// Notified when `watch` saw its cancellation.
    saw_cancel: Arc<Notify>,
}

async fn server(addr: Address) -> Fixture {
    let produced = Arc::new(AtomicU64::new(0));
    let dropped = Arc::new(Notify::new());
    let saw_cancel = Arc::new(Notify::new());
    let (p, d, s, s2) = (
        produced.clone(),
        dropped.clone(),
        saw_cancel.clone(),
        saw_cancel.clone(),
    );
    let methods = Methods::new()
        .add_stream("count", |args: Args| {
            let n = args.args.first().and_then(Value::as_i64).unwrap_or(0);
            futures::stream::iter(0..n).map(|i| Ok(Value::from(i)))
        })
        .add_stream("fail_after", |args: Args| {
            let n = args.args.first().and_then(Value::as_i64).unwrap_or(0);
            futures::stream::iter(0..=n).map(move |i| {
                if i == n {
                    Err(RemoteError::exception(
                        "ValueError",
                        "builtins",
                        vec!["boom".into()],
                    ))
                } else {
                    Ok(Value::from(i))
                }
            })
        })
        .add_stream("endless", move |_args: Args| {
            let guard = Arc::new(OnDrop(d.clone()));
            let p = p.clone();
            futures::stream::iter(0..).map(move |i: i64| {
                let _keep = &guard;
                p.fetch_add(1, Ordering::SeqCst);
                Ok(Value::from(i))
            })
        })
        .add_stream("blobs", |args: Args| {
            let n = args.args.first().and_then(Value::as_i64).unwrap_or(0);
            let size = args.args.get(1).and_then(Value::as_i64).unwrap_or(0);
            let size = usize::try_from(size).unwrap_or(0);
            futures::stream::unfold(0i64, move |i| async move {
                tokio::task::yield_now().await;
                (i < n).then(|| (Ok(Value::Bytes(vec![i as u8; size].into())), i + 1))
            })
        })
        .add("plain", |_args| Ok(Value::from("value")))
        .add_async("watch", move |_args: Args| {
            let s = s.clone();
            async move {
                let ctx = CallContext::current().expect("in a call");
                assert!(!ctx.is_cancelled());
                // The handler's own future is dropped when the call is
                // cancelled; work it spawned learns of it here.
                tokio::spawn(async move {
                    ctx.cancelled().await;
                    assert!(ctx.is_cancelled());
                    s.notify_one();
                });
                std::future::pending::<()>().await;
                Ok(Value::None)
            }
        })
        .add_blocking("watch_blocking", move |_args: Args| {
            let ctx = CallContext::current().expect("in a call");
            while !ctx.is_cancelled() {
                std::thread::sleep(Duration::from_millis(5));
            }
            s2.notify_one();
            Ok(Value::None)
        });
    let handle = Server::builder(methods)
        .build()
        .bind(&addr)
        .await
        .expect("the server binds");
    Fixture {
        handle,
        produced,
        dropped,
        saw_cancel,
    }
}

async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("in time")
}

#[tokio::test]
async fn items_arrive_in_order_then_the_stream_ends() {
    for (addr, _dir) in addresses() {
        let f = server(addr).await;
        let client = Client::new(f.handle.local_address().clone());
        let Reply::Stream(s) = client
            .call_streaming("count", Args::new().arg(1000))
            .await
            .unwrap()
        else {
            panic!("a stream")
        };
        let items: Vec<Value> = within(s.map(|r| r.unwrap()).collect()).await;
        assert_eq!(items, (0..1000).map(Value::from).collect::<Vec<_>>());
        // An empty stream is a stream too, not a value.
        let reply = client
            .call_streaming("count", Args::new().arg(0))
            .await
            .unwrap();
        assert!(matches!(&reply, Reply::Stream(_)), "{reply:?}");
        assert_eq!(reply.into_stream().count().await, 0);
        // A plain method answers a value.
        let reply = client.call_streaming("plain", Args::new()).await.unwrap();
        assert!(matches!(&reply, Reply::Value(v) if *v == Value::from("value")));
        f.handle.shutdown();
        f.handle.wait().await;
    }
}

/// Streams of counts around the client's window (and its half, where it
/// grants more), small and large items, on a connection used before: each
/// ends with every item, in time (a stream of exactly the credit's items
/// used to wait for one more credit before its end; decision 0064).
#[tokio::test]
async fn streams_around_the_window_end_with_every_item() {
    let w = i64::from(STREAM_WINDOW);
    for (addr, _dir) in addresses() {
        let f = server(addr).await;
        let client = Client::new(f.handle.local_address().clone());
        let cases = [
            (0, 16),
            (1, 16),
            (w / 2 - 1, 16),
            (w / 2, 16),
            (w / 2 + 1, 16),
            (w - 1, 16),
            (w, 16),
            (w + 1, 16),
            (2 * w, 16),
            (2, 4 << 20),
            (w, 256 << 10),
        ];
        for (n, size) in cases {
            // Other calls on the same connection first.
            let reply = client.call_streaming("plain", Args::new()).await.unwrap();
            assert!(matches!(&reply, Reply::Value(v) if *v == Value::from("value")));
            let s = client
                .call_streaming("blobs", Args::new().arg(n).arg(size))
                .await
                .unwrap()
                .into_stream();
            let items: Vec<Value> =
                tokio::time::timeout(Duration::from_secs(20), s.map(|r| r.unwrap()).collect())
                    .await
                    .unwrap_or_else(|_| panic!("{n} items of {size} bytes: no end within 20 s"));
            assert_eq!(items.len(), n as usize, "{n} items of {size} bytes");
            for (i, v) in items.iter().enumerate() {
                match v {
                    Value::Bytes(b) => {
                        assert_eq!(b.len(), size as usize);
                        assert!(b.iter().all(|&x| x == i as u8), "item {i}");
                    }
                    other => panic!("item {i} is {other:?}"),
                }
            }
        }
        f.handle.shutdown();
        f.handle.wait().await;
    }
}

#[tokio::test]
async fn an_error_mid_stream_comes_after_the_items_before_it() {
    for (addr, _dir) in addresses() {
        let f = server(addr).await;
        let client = Client::new(f.handle.local_address().clone());
        let mut s = client
            .call_streaming("fail_after", Args::new().arg(3))
            .await
            .unwrap()
            .into_stream();
        for i in 0..3 {
            assert_eq!(within(s.next()).await.unwrap().unwrap(), Value::from(i));
        }
        match within(s.next()).await {
            Some(Err(CallError::Remote(e))) => assert_eq!(e.type_name, "ValueError"),
            other => panic!("{other:?}"),
        }
        assert!(s.next().await.is_none());
        f.handle.shutdown();
        f.handle.wait().await;
    }
}

#[tokio::test]
async fn a_stalled_consumer_stops_the_method_at_the_window_and_dropping_stops_it() {
    for (addr, _dir) in addresses() {
        let f = server(addr).await;
        let client = Client::new(f.handle.local_address().clone());
        let mut s = client
            .call_streaming("endless", Args::new())
            .await
            .unwrap()
            .into_stream();
        assert_eq!(within(s.next()).await.unwrap().unwrap(), Value::from(0));
        // Stop reading. The server may produce the window, and one more
        // item (which it polls to learn whether the stream ended, and holds
        // until credit comes; decision 0064), and no more: wait until it
        // has, then check it stays there while the client (which answers
        // pings meanwhile) holds the rest unread.
        let most = u64::from(STREAM_WINDOW) + 1;
        within(async {
            while f.produced.load(Ordering::SeqCst) < most {
                tokio::task::yield_now().await;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await;
        for _ in 0..20 {
            assert!(client.connected(Duration::from_secs(5)).await);
        }
        assert_eq!(f.produced.load(Ordering::SeqCst), most);
        // Reading on grants more.
        for i in 1..1000 {
            assert_eq!(within(s.next()).await.unwrap().unwrap(), Value::from(i));
        }
        assert!(f.produced.load(Ordering::SeqCst) >= 1000);
        // Dropping the stream cancels the call: the server drops its stream.
        drop(s);
        within(f.dropped.notified()).await;
        assert!(client.connected(Duration::from_secs(5)).await);
        f.handle.shutdown();
        f.handle.wait().await;
    }
}

#[tokio::test]
async fn handlers_see_their_call_cancelled() {
    for (addr, _dir) in addresses() {
        let f = server(addr).await;
        let client = Client::new(f.handle.local_address().clone());
        for method in ["watch", "watch_blocking"] {
            let opts = CallOptions {
                call_timeout: Some(Some(Duration::from_millis(100))),
                ..Default::default()
            };
            let e = client
                .call_with(method, Args::new(), &opts)
                .await
                .unwrap_err();
            assert!(matches!(e, CallError::Timeout { .. }), "{e:?}");
            within(f.saw_cancel.notified()).await;
        }
        f.handle.shutdown();
        f.handle.wait().await;
    }
}

#[tokio::test]
async fn a_client_that_takes_no_streams_is_refused_clearly() {
    for (addr, _dir) in addresses() {
        let f = server(addr).await;
        let client = Client::new(f.handle.local_address().clone());
        match client.call("count", Args::new().arg(3)).await {
            Err(CallError::Remote(e)) => {
                assert_eq!(e.kind, ErrorKind::UnsupportedValue);
                assert!(e.message.contains("stream"), "{}", e.message);
            }
            other => panic!("{other:?}"),
        }
        assert!(client.connected(Duration::from_secs(5)).await);
        f.handle.shutdown();
        f.handle.wait().await;
    }
}
