//! Streamed replies at the edge of the client's credit: a raw client that
//! grants exactly what the items need (`Call.stream_window`, then one more
//! per item past it) and never more still gets the stream's end. The end
//! (`stream_end`, or a final error) is no item: it must not wait for credit
//! (docs/PROTOCOL.md, "Streamed replies"). Streams of 0, window-1, window
//! and window+1 items; small and large (1 and 4 MiB) items; over a duplex
//! pipe and TCP; on a fresh connection and on one busy with other calls
//! and a stalled stream. A hang turns into a failure after [`T`].

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use pyrpc_proto::wire::{self, client_frame, request, response, server_frame};
use pyrpc_proto::{Args, ErrorKind, RemoteError, Value};
use pyrpc_server::{Methods, Server, ServerConfig};
use pyrpc_transport::{connect, Address};

use crate::peer::{call, outcome, Outcome, Peer};

/// How long a test waits for any one frame before calling it a hang.
const T: Duration = Duration::from_secs(10);

/// The window the raw client offers.
const W: u32 = 3;

const MIB: usize = 1024 * 1024;

/// `items(n, size)`: n items of `size` bytes each (item i is all `i`),
/// produced asynchronously, so the end is not known before it is polled.
/// `items_then_fail(n)`: n small items, then an error. `endless()`: items
/// for ever. `echo(x)`: x.
fn methods() -> Methods {
    Methods::new()
        .add_stream("items", |args: Args| {
            let n = args.args.first().and_then(Value::as_i64).unwrap_or(0);
            let size = args.args.get(1).and_then(Value::as_i64).unwrap_or(0);
            let size = usize::try_from(size).unwrap_or(0);
            futures::stream::unfold(0i64, move |i| async move {
                tokio::task::yield_now().await;
                (i < n).then(|| (Ok(Value::Bytes(Bytes::from(vec![i as u8; size]))), i + 1))
            })
        })
        .add_stream("items_then_fail", |args: Args| {
            let n = args.args.first().and_then(Value::as_i64).unwrap_or(0);
            futures::stream::iter(0..=n).map(move |i| {
                if i < n {
                    Ok(Value::from(i))
                } else {
                    Err(RemoteError::exception(
                        "ValueError",
                        "builtins",
                        vec![Value::from("after the items")],
                    ))
                }
            })
        })
        .add_stream("endless", |_args: Args| {
            futures::stream::iter(0..).map(|i: i64| Ok(Value::from(i)))
        })
        .add("echo", |args: Args| {
            Ok(args.args.into_iter().next().unwrap_or_default())
        })
}

fn server(config: ServerConfig) -> Server {
    Server::builder(methods()).config(config).build()
}

/// How the raw client reaches the server.
#[derive(Clone, Copy, Debug)]
enum Via {
    Duplex,
    Tcp,
}

/// A connected raw client (hello done) and, for TCP, the server's handle.
async fn open(via: Via, config: ServerConfig) -> (Peer, Option<pyrpc_server::ServerHandle>) {
    match via {
        Via::Duplex => (Peer::connect(&server(config)).await, None),
        Via::Tcp => {
            let handle = server(config)
                .bind(&Address::tcp("127.0.0.1", 0))
                .await
                .unwrap();
            let mut p = Peer::new(connect(handle.local_address(), T).await.unwrap());
            assert!(p.hello(0).await.error.is_none());
            (p, Some(handle))
        }
    }
}

/// The next frame, or a clear failure naming what was awaited.
async fn next_frame(p: &mut Peer, awaiting: &str) -> wire::ServerFrame {
    match tokio::time::timeout(T, p.recv()).await {
        Ok(Some(f)) => f,
        Ok(None) => panic!("the server closed the connection; awaiting {awaiting}"),
        Err(_) => panic!("no frame within {T:?}; awaiting {awaiting}: the server hangs"),
    }
}

async fn stream_call(p: &mut Peer, id: u64, method: &str, args: Args, window: u32) {
    let mut c = call(method, args, 0);
    c.stream_window = window;
    p.request(id, request::Kind::Call(c)).await;
}

async fn credit(p: &mut Peer, id: u64, items: u32) {
    p.send(wire::ClientFrame {
        kind: Some(client_frame::Kind::Credit(wire::Credit { id, items })),
    })
    .await;
}

/// The raw client's side of a connection: the frames it read for requests
/// other than the one it waits for, counted per request.
#[derive(Default)]
struct Others {
    /// Items seen per request id.
    items: HashMap<u64, u32>,
    /// Responses seen, by request id.
    responses: HashMap<u64, wire::Response>,
}

impl Others {
    fn keep(&mut self, f: wire::ServerFrame) {
        match f.kind {
            Some(server_frame::Kind::Item(i)) => *self.items.entry(i.id).or_default() += 1,
            Some(server_frame::Kind::Response(r)) => {
                self.responses.insert(r.id, r);
            }
            other => panic!("an unexpected frame: {other:?}"),
        }
    }
}

/// Reads the stream of request `id`, which the client opened with window
/// `W` and which the method means to fill with `expect` items: grants one
/// more item only once every granted item came and more are expected
/// (never for the end), checks no item comes past the credit, and returns
/// the items and the response that ended the stream.
async fn read_stream(
    p: &mut Peer,
    others: &mut Others,
    id: u64,
    expect: usize,
) -> (Vec<Value>, wire::Response) {
    let mut granted = W as usize;
    let mut items = Vec::new();
    loop {
        let awaiting = format!(
            "request {id}'s item {} or its end ({expect} items expected, {granted} granted)",
            items.len() + 1
        );
        let f = next_frame(p, &awaiting).await;
        match f.kind {
            Some(server_frame::Kind::Item(i)) if i.id == id => {
                assert!(
                    items.len() < granted,
                    "item {} of request {id} beyond the {granted} granted",
                    items.len() + 1
                );
                items.push(Value::try_from(i.value.unwrap()).unwrap());
                if items.len() == granted && items.len() < expect {
                    credit(p, id, 1).await;
                    granted += 1;
                }
            }
            Some(server_frame::Kind::Response(r)) if r.id == id => return (items, r),
            _ => others.keep(f),
        }
    }
}

fn assert_items(items: &[Value], n: usize, size: usize) {
    assert_eq!(items.len(), n, "items");
    for (i, v) in items.iter().enumerate() {
        match v {
            Value::Bytes(b) => {
                assert_eq!(b.len(), size, "item {i}'s size");
                assert!(b.iter().all(|&x| x == i as u8), "item {i}'s bytes");
            }
            other => panic!("item {i} is {other:?}"),
        }
    }
}

fn assert_stream_end(r: &wire::Response, n: usize) {
    match &r.kind {
        Some(response::Kind::StreamEnd(e)) => assert_eq!(e.items, n as u64),
        other => panic!("expected stream_end {{items: {n}}}, got {other:?}"),
    }
}

/// Other work on the connection before the stream under test: a call, a
/// whole stream of two large items at window 3 (the reported case), a
/// stream left stalled at its window (request 50), a ping.
async fn keep_busy(p: &mut Peer, others: &mut Others) {
    assert_eq!(
        p.call_wait("echo", Args::new().arg("before")).await.value(),
        Value::from("before")
    );
    stream_call(p, 2, "items", Args::new().arg(2).arg(MIB as i64), W).await;
    let (items, end) = read_stream(p, others, 2, 2).await;
    assert_items(&items, 2, MIB);
    assert_stream_end(&end, 2);
    stream_call(p, 50, "endless", Args::new(), W).await;
    p.request(99, request::Kind::Ping(wire::Ping {})).await;
    loop {
        let f = next_frame(p, "the ping's answer").await;
        match f.kind {
            Some(server_frame::Kind::Response(r)) if r.id == 99 => break,
            _ => others.keep(f),
        }
    }
}

/// After the stream under test: the stalled stream (if any) took no more
/// than its window and is cancelled cleanly, and the connection still
/// answers calls.
async fn still_serving(p: &mut Peer, others: &mut Others, busy: bool) {
    if busy {
        p.request(51, request::Kind::Cancel(wire::Cancel { id: 50 }))
            .await;
        while !others.responses.contains_key(&50) || !others.responses.contains_key(&51) {
            let f = next_frame(p, "the stalled stream's cancellation").await;
            others.keep(f);
        }
        assert!(others.items.get(&50).copied().unwrap_or(0) <= W);
        assert_eq!(outcome(others.responses.remove(&51).unwrap()), Outcome::Ack);
        let e = outcome(others.responses.remove(&50).unwrap()).error();
        assert_eq!(e.kind, ErrorKind::Cancelled);
    }
    p.request(
        1,
        request::Kind::Call(call("echo", Args::new().arg("after"), 0)),
    )
    .await;
    loop {
        let f = next_frame(p, "the last call's answer").await;
        match f.kind {
            Some(server_frame::Kind::Response(r)) if r.id == 1 => {
                assert_eq!(outcome(r).value(), Value::from("after"));
                return;
            }
            _ => others.keep(f),
        }
    }
}

/// One stream of `n` items of `size` bytes under the stingy client.
async fn one_stream(via: Via, config: ServerConfig, busy: bool, n: usize, size: usize) {
    let (mut p, handle) = open(via, config).await;
    let mut others = Others::default();
    if busy {
        keep_busy(&mut p, &mut others).await;
    }
    stream_call(
        &mut p,
        7,
        "items",
        Args::new().arg(n as i64).arg(size as i64),
        W,
    )
    .await;
    let (items, end) = read_stream(&mut p, &mut others, 7, n).await;
    assert_items(&items, n, size);
    assert_stream_end(&end, n);
    still_serving(&mut p, &mut others, busy).await;
    if let Some(h) = handle {
        h.shutdown();
        h.wait().await;
    }
}

/// Every count around the window, every size, fresh and busy, on `via`
/// with `config`.
async fn every_case(via: Via, config: &ServerConfig) {
    let w = W as usize;
    for busy in [false, true] {
        for size in [16, MIB, 4 * MIB] {
            for n in [0, w - 1, w, w + 1] {
                eprintln!("{via:?} busy={busy} size={size} items={n}");
                one_stream(via, config.clone(), busy, n, size).await;
            }
        }
    }
}

#[tokio::test]
async fn the_end_of_a_stream_needs_no_credit_over_a_pipe() {
    every_case(Via::Duplex, &ServerConfig::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_end_of_a_stream_needs_no_credit_over_tcp() {
    every_case(Via::Tcp, &ServerConfig::default()).await;
}

/// A reply queue smaller than one item: each large item goes alone, and the
/// end still follows the last one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_end_of_a_stream_needs_no_credit_with_a_small_reply_queue() {
    let config = ServerConfig {
        max_queued_reply_bytes: 64 * 1024,
        ..ServerConfig::default()
    };
    every_case(Via::Tcp, &config).await;
    every_case(Via::Duplex, &config).await;
}

/// A method that raises after exactly the window's items: the error ends
/// the stream without waiting for credit.
#[tokio::test]
async fn a_final_error_needs_no_credit() {
    for n in [0, W - 1, W] {
        let (mut p, _) = open(Via::Duplex, ServerConfig::default()).await;
        let mut others = Others::default();
        stream_call(
            &mut p,
            7,
            "items_then_fail",
            Args::new().arg(i64::from(n)),
            W,
        )
        .await;
        let (items, end) = read_stream(&mut p, &mut others, 7, n as usize).await;
        assert_eq!(
            items,
            (0..i64::from(n)).map(Value::from).collect::<Vec<_>>()
        );
        let e = outcome(end).error();
        assert_eq!(e.type_name, "ValueError", "{e:?}");
        still_serving(&mut p, &mut others, false).await;
    }
}
