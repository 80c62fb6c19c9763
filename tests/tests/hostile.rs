//! Hostile clients against a real server process (`pyrpc-test-server`), over
//! real sockets. After every attack an honest call on a new connection
//! succeeds promptly, the process is alive, and its resident memory stays
//! under [`RSS_BOUND_KIB`].
//!
//! The server runs with a 16 MiB frame limit, a 64 MiB budget for partial
//! frames, a 2 s idle timeout and a 1 s handshake timeout, so that every
//! limit is reached within the suite's time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bytes::BytesMut;
use prost::Message;
use pyrpc_framing::Codec;
use pyrpc_proto::{wire, Args, ErrorKind, Value};
use pyrpc_tests::process::{honest_call, ServerProcess};
use pyrpc_transport::{connect, Address, Stream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::{Decoder, Encoder};

const EXE: &str = env!("CARGO_BIN_EXE_pyrpc-test-server");
/// The most resident memory the server process may use after any attack.
const RSS_BOUND_KIB: u64 = 200 * 1024;
/// How long an honest call may take while (or after) the server is attacked.
const HONEST: Duration = Duration::from_secs(2);
/// A bound that only guards against a hang: a debug-build server receiving
/// and sizing a 64 MB frame takes seconds, and over 10 s on a loaded 2-core
/// machine.
const T: Duration = Duration::from_secs(60);

const OPTIONS: &[&str] = &[
    "--max-frame-len",
    "16777216",
    "--max-buffered",
    "67108864",
    "--idle-ms",
    "2000",
    "--handshake-ms",
    "1000",
];

/// The checks after each attack.
async fn still_serving(p: &mut ServerProcess, after: &str) {
    honest_call(&p.addr, HONEST).await;
    assert!(p.alive(), "the server died after {after}");
    let rss = p.rss_kib();
    eprintln!("after {after}: server RSS {rss} KiB");
    assert!(
        rss < RSS_BOUND_KIB,
        "after {after}: RSS {rss} KiB over {RSS_BOUND_KIB} KiB"
    );
}

fn encode(frame: wire::ClientFrame) -> Vec<u8> {
    let mut buf = BytesMut::new();
    Codec::<wire::ServerFrame, wire::ClientFrame>::new()
        .encode(frame, &mut buf)
        .unwrap();
    buf.to_vec()
}

fn hello() -> Vec<u8> {
    encode(wire::ClientFrame {
        kind: Some(wire::client_frame::Kind::Hello(wire::ClientHello {
            protocol_version: 1,
            peer_name: "hostile".into(),
            ..Default::default()
        })),
    })
}

fn request_body(id: u64, method: &str, args: Vec<wire::Value>) -> Vec<u8> {
    wire::ClientFrame {
        kind: Some(wire::client_frame::Kind::Request(wire::Request {
            id,
            kind: Some(wire::request::Kind::Call(wire::Call {
                method: method.into(),
                args,
                ..Default::default()
            })),
        })),
    }
    .encode_to_vec()
}

fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// Connects and, if `with_hello`, exchanges hellos (the server's is read).
async fn open(addr: &Address, with_hello: bool) -> Stream {
    let mut s = connect(addr, T).await.unwrap();
    if with_hello {
        s.write_all(&hello()).await.unwrap();
        let mut codec = Codec::<wire::ServerFrame, wire::ClientFrame>::new();
        let mut buf = BytesMut::new();
        loop {
            if let Some(f) = codec.decode(&mut buf).unwrap() {
                assert!(matches!(
                    f.kind,
                    Some(wire::server_frame::Kind::Hello(wire::ServerHello {
                        error: None,
                        ..
                    }))
                ));
                break;
            }
            assert!(
                s.read_buf(&mut buf).await.unwrap() > 0,
                "closed during hello"
            );
        }
    }
    s
}

/// Reads until the server closes the connection; fails after `within`.
async fn closed_by_server(s: &mut Stream, within: Duration) {
    let mut sink = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut sink)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(_)) => {}
            Err(_) => panic!("the server did not close the connection within {within:?}"),
        }
    }
}

/// The next response on `s`, read with a fresh decoder.
async fn response(s: &mut Stream) -> wire::Response {
    let mut codec = Codec::<wire::ServerFrame, wire::ClientFrame>::new();
    let mut buf = BytesMut::new();
    loop {
        if let Some(f) = codec.decode(&mut buf).unwrap() {
            match f.kind {
                Some(wire::server_frame::Kind::Response(r)) => return r,
                other => panic!("expected a response, got {other:?}"),
            }
        }
        let n = tokio::time::timeout(T, s.read_buf(&mut buf))
            .await
            .expect("a response in time")
            .unwrap();
        assert!(n > 0, "closed instead of answering");
    }
}

/// A tiny deterministic generator (xorshift64*), so failures replay.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn varint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// The bytes of a `wire::Value` that is a list nested `depth` deep, built by
/// hand (building it with prost types would recurse as deep).
fn nested_list(depth: usize) -> Vec<u8> {
    let mut v = Vec::new(); // the innermost: an empty Value (None)
    for _ in 0..depth {
        // Items { items: [v] } then Value { list: items }
        let mut items = vec![0x0a];
        varint(v.len() as u64, &mut items);
        items.extend_from_slice(&v);
        let mut value = vec![0x42];
        varint(items.len() as u64, &mut value);
        value.extend_from_slice(&items);
        v = value;
    }
    v
}

/// A request body calling `echo` with one argument given as raw Value bytes.
/// The bytes of a `wire::Value` that is a list nested `depth` deep in the
/// flat encoding: `depth` one-item list headers, then an int.
fn flat_list(depth: usize) -> Vec<u8> {
    use prost::Message;
    use wire::value::Kind;
    let node = |kind| wire::Value { kind: Some(kind) };
    let mut nodes = vec![node(Kind::ListLen(1)); depth];
    nodes.push(node(Kind::Int(1)));
    node(Kind::Flat(wire::Flat { nodes })).encode_to_vec()
}

fn echo_raw_arg(id: u64, value: &[u8]) -> Vec<u8> {
    // Call { method = "echo" (1), args = [value] (2) }
    let mut call = vec![0x0a, 4];
    call.extend_from_slice(b"echo");
    call.push(0x12);
    varint(value.len() as u64, &mut call);
    call.extend_from_slice(value);
    // Request { id (1), call (2) }
    let mut req = vec![0x08];
    varint(id, &mut req);
    req.push(0x12);
    varint(call.len() as u64, &mut req);
    req.extend_from_slice(&call);
    // ClientFrame { request (2) }
    let mut frame = vec![0x12];
    varint(req.len() as u64, &mut frame);
    frame.extend_from_slice(&req);
    frame
}

#[tokio::test]
async fn broken_frames_close_only_their_connection() {
    let mut p = ServerProcess::unix(EXE, OPTIONS);
    let addr = p.addr.clone();
    still_serving(&mut p, "start").await;

    // Random garbage, before and after a hello, in 200 connections.
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for i in 0..200 {
        let mut s = open(&addr, i % 2 == 0).await;
        let len = (rng.next() % 4096) as usize + 1;
        let garbage: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let _ = s.write_all(&garbage).await;
        // Garbage may be a plausible but unfinished frame: then the server
        // waits for the rest; closing our end is all it gets.
        drop(s);
    }
    still_serving(&mut p, "random garbage").await;

    for (what, bytes) in [
        ("a length header 0xFFFFFFFF", vec![0xff, 0xff, 0xff, 0xff]),
        ("a zero length", vec![0, 0, 0, 0, 1, 2, 3]),
        (
            "a valid length with a non-protobuf body",
            framed(&[0xff; 64]),
        ),
    ] {
        let mut s = open(&addr, true).await;
        s.write_all(&bytes).await.unwrap();
        closed_by_server(&mut s, T).await;
        still_serving(&mut p, what).await;
    }

    // Frames of a valid length whose request cannot be decoded, but whose id
    // can: that request is answered with a PROTOCOL error and the connection
    // stays in step and usable.
    for (what, bytes) in [
        (
            "a list claiming 2^60 bytes",
            // Value.list with a length prefix far past the frame's end.
            framed(&echo_raw_arg(
                7,
                &[0x42, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10],
            )),
        ),
        (
            "a value nested 5000 deep",
            framed(&echo_raw_arg(7, &nested_list(5000))),
        ),
    ] {
        let mut s = open(&addr, true).await;
        s.write_all(&bytes).await.unwrap();
        let r = response(&mut s).await;
        assert_eq!(r.id, 7, "{what}");
        match r.kind {
            Some(wire::response::Kind::Error(e)) => {
                assert_eq!(e.kind, ErrorKind::Protocol as i32, "{what}");
                assert!(
                    e.message.contains("could not be decoded"),
                    "{what}: {}",
                    e.message
                );
            }
            other => panic!("{what}: expected an error, got {other:?}"),
        }
        s.write_all(&framed(&request_body(
            8,
            "add",
            vec![Value::from(1).into(), Value::from(2).into()],
        )))
        .await
        .unwrap();
        assert_eq!(response(&mut s).await.id, 8, "{what}");
        still_serving(&mut p, what).await;
    }

    // A truncated frame, then close.
    let mut s = open(&addr, true).await;
    let body = request_body(1, "echo", vec![Value::from("x".repeat(100)).into()]);
    let frame = framed(&body);
    s.write_all(&frame[..frame.len() / 2]).await.unwrap();
    drop(s);
    still_serving(&mut p, "a truncated frame then close").await;

    // Nested deeper than the server's limit (1024), in the flat encoding that
    // protobuf decodes at any depth: a clear UNSUPPORTED_VALUE error, and the
    // connection stays usable.
    let mut s = open(&addr, true).await;
    s.write_all(&framed(&echo_raw_arg(9, &flat_list(100_000))))
        .await
        .unwrap();
    let r = response(&mut s).await;
    assert_eq!(r.id, 9);
    match r.kind {
        Some(wire::response::Kind::Error(e)) => {
            assert_eq!(e.kind, ErrorKind::UnsupportedValue as i32);
            assert!(e.message.contains("deep"), "{}", e.message);
        }
        other => panic!("expected an error, got {other:?}"),
    }
    s.write_all(&framed(&request_body(
        10,
        "add",
        vec![Value::from(1).into(), Value::from(2).into()],
    )))
    .await
    .unwrap();
    assert_eq!(response(&mut s).await.id, 10);
    still_serving(&mut p, "a value nested 100,000 deep").await;
}

#[tokio::test]
async fn a_million_tiny_values_cost_bounded_memory() {
    let mut p = ServerProcess::unix(EXE, OPTIONS);
    let addr = p.addr.clone();
    // 1M empty Values (2 bytes each on the wire) in one 2 MB frame: each is
    // tens of bytes once decoded. `count` ignores its arguments.
    let args = vec![wire::Value::default(); 1_000_000];
    let body = request_body(1, "count", args);
    assert!(body.len() < 3 * 1024 * 1024);
    for round in 0..3 {
        let mut s = open(&addr, true).await;
        s.write_all(&framed(&body)).await.unwrap();
        let r = response(&mut s).await;
        assert!(
            matches!(r.kind, Some(wire::response::Kind::Value(_))),
            "round {round}: {:?}",
            r.kind
        );
    }
    still_serving(&mut p, "three requests of a million tiny values").await;
}

/// A 64 MB frame of 32M empty values (gigabytes once decoded) is refused
/// before decoding by the decoded-size budget: a clear UNSUPPORTED_VALUE
/// reply, the server's memory grows by less than 4x the frame, and it keeps
/// serving on that connection.
#[tokio::test]
async fn a_frame_of_empty_values_is_refused_within_four_times_its_size() {
    let mut p = ServerProcess::unix(
        EXE,
        &[
            "--max-frame-len",
            "100000000",
            "--max-buffered",
            "200000000",
        ],
    );
    let addr = p.addr.clone();
    still_serving(&mut p, "before").await;
    let idle_kib = p.rss_kib();
    let n = 32_000_000;
    // Call { method = "count", args = [Value {}] * n }, built as bytes.
    let mut call = vec![0x0a, 5];
    call.extend_from_slice(b"count");
    call.reserve(2 * n);
    for _ in 0..n {
        call.extend_from_slice(&[0x12, 0x00]);
    }
    let mut req = vec![0x08, 21, 0x12];
    varint(call.len() as u64, &mut req);
    req.extend_from_slice(&call);
    drop(call);
    let mut body = vec![0x12];
    varint(req.len() as u64, &mut body);
    body.extend_from_slice(&req);
    drop(req);
    let frame_len = body.len() as u64;
    let mut s = open(&addr, true).await;
    s.write_all(&framed(&body)).await.unwrap();
    drop(body);
    let r = response(&mut s).await;
    assert_eq!(r.id, 21);
    match r.kind {
        Some(wire::response::Kind::Error(e)) => {
            assert_eq!(e.kind, ErrorKind::UnsupportedValue as i32);
            assert!(e.message.contains("budget"), "{}", e.message);
        }
        other => panic!("expected an error, got {other:?}"),
    }
    let grown = (p.peak_rss_kib().saturating_sub(idle_kib)) * 1024;
    assert!(
        grown <= 4 * frame_len,
        "the server grew by {} MiB for a {} MiB frame",
        grown >> 20,
        frame_len >> 20
    );
    // The same connection still answers.
    s.write_all(&framed(&request_body(
        22,
        "add",
        vec![Value::from(1).into(), Value::from(2).into()],
    )))
    .await
    .unwrap();
    assert_eq!(response(&mut s).await.id, 22);
    still_serving(&mut p, "a 64 MB frame of empty values").await;
}

/// A packed int list is one byte an item on the wire but one value an item
/// decoded: 12M of them (a 12 MB frame, 1 GB estimated decoded) are refused
/// by the decoded-size budget like 12M separate values, and the connection
/// keeps serving.
#[tokio::test]
async fn each_item_of_a_packed_list_counts_against_the_budget() {
    let mut p = ServerProcess::unix(EXE, OPTIONS);
    let addr = p.addr.clone();
    still_serving(&mut p, "before").await;
    let idle_kib = p.rss_kib();
    let n = 12_000_000;
    // Value { int_list (32) { items (1): n zero varints, packed } }
    let mut list = vec![0x0a];
    varint(n as u64, &mut list);
    list.resize(list.len() + n, 0);
    let mut value = vec![0x82, 0x02];
    varint(list.len() as u64, &mut value);
    value.extend_from_slice(&list);
    drop(list);
    let body = echo_raw_arg(31, &value);
    drop(value);
    let frame_len = body.len() as u64;
    let mut s = open(&addr, true).await;
    s.write_all(&framed(&body)).await.unwrap();
    drop(body);
    let r = response(&mut s).await;
    assert_eq!(r.id, 31);
    match r.kind {
        Some(wire::response::Kind::Error(e)) => {
            assert_eq!(e.kind, ErrorKind::UnsupportedValue as i32);
            assert!(e.message.contains("12000001 values"), "{}", e.message);
        }
        other => panic!("expected an error, got {other:?}"),
    }
    let grown = (p.peak_rss_kib().saturating_sub(idle_kib)) * 1024;
    assert!(
        grown <= 4 * frame_len,
        "the server grew by {} MiB for a {} MiB frame",
        grown >> 20,
        frame_len >> 20
    );
    // A packed list within the budget is echoed.
    let small = pyrpc_proto::raw::encode_value(Value::list((0..1000).map(Value::from)));
    s.write_all(&framed(&echo_raw_arg(32, &small)))
        .await
        .unwrap();
    let r = response(&mut s).await;
    assert_eq!(r.id, 32);
    let Some(wire::response::Kind::Value(v)) = r.kind else {
        panic!("expected a value, got {:?}", r.kind);
    };
    let list = Value::list((0..1000).map(Value::from));
    assert_eq!(
        Value::try_from(v).unwrap(),
        Value::tuple([Value::tuple([list]), Value::dict([])])
    );
    still_serving(&mut p, "a 12 MB packed list").await;
}

#[tokio::test]
async fn idle_connections_and_a_slowloris_leave_honest_calls_fast() {
    let mut p = ServerProcess::tcp(EXE, OPTIONS);
    let addr = p.addr.clone();
    // 300 idle connections: half said hello, half never will.
    let mut idle = Vec::new();
    for i in 0..300 {
        idle.push(open(&addr, i % 2 == 0).await);
    }
    // One client dribbles a Ping a byte at a time, 25 ms apart.
    let ping = encode(wire::ClientFrame {
        kind: Some(wire::client_frame::Kind::Request(wire::Request {
            id: 77,
            kind: Some(wire::request::Kind::Ping(wire::Ping {})),
        })),
    });
    let slow = {
        let addr = addr.clone();
        tokio::spawn(async move {
            let mut s = open(&addr, true).await;
            for b in ping {
                s.write_all(&[b]).await.unwrap();
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            response(&mut s).await
        })
    };
    // Meanwhile, honest calls on one connection keep normal latency.
    let client = pyrpc_tests::process::quick_client(&addr);
    let mut worst = Duration::ZERO;
    for i in 0..40i64 {
        let started = Instant::now();
        let v = client.call("add", Args::new().arg(i).arg(1)).await.unwrap();
        assert_eq!(v, Value::from(i + 1));
        worst = worst.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!("worst honest latency under 300 idle connections and a slowloris: {worst:?}");
    assert!(worst < Duration::from_millis(500), "{worst:?}");
    // The slow ping is answered too: slow is not refused, only bounded.
    assert_eq!(slow.await.unwrap().id, 77);
    // Every idle connection is closed by the server (handshake timeout 1 s
    // for those without a hello, idle timeout 2 s for the others).
    let started = Instant::now();
    for s in &mut idle {
        closed_by_server(s, Duration::from_secs(6)).await;
    }
    eprintln!(
        "all idle connections closed {:?} after the calls",
        started.elapsed()
    );
    still_serving(&mut p, "300 idle connections and a slowloris").await;
}

#[tokio::test]
async fn a_client_pipelining_calls_without_reading_is_held_back() {
    let mut p = ServerProcess::unix(EXE, OPTIONS);
    let addr = p.addr.clone();
    let mut s = open(&addr, true).await;
    // Each call asks for a 256 KiB reply; 4000 of them would be 1 GiB.
    let mut sent = 0usize;
    let started = Instant::now();
    for id in 0..4000u64 {
        let frame = framed(&request_body(
            id,
            "big",
            vec![Value::from(256 * 1024).into()],
        ));
        match tokio::time::timeout(Duration::from_millis(500), s.write_all(&frame)).await {
            Ok(Ok(())) => sent += 1,
            Ok(Err(e)) => panic!("write failed: {e}"),
            Err(_) => break, // the server stopped reading: backpressure
        }
        assert!(started.elapsed() < T, "no backpressure after {sent} calls");
    }
    eprintln!("server read about {sent} pipelined calls before it stopped reading");
    assert!(sent < 4000, "the server read every request");
    still_serving(&mut p, "a client that pipelines calls and never reads").await;
    drop(s);
    still_serving(&mut p, "the pipelining client left").await;
}

#[tokio::test]
async fn abandoned_large_replies_are_freed() {
    let mut p = ServerProcess::tcp(EXE, OPTIONS);
    let addr = p.addr.clone();
    still_serving(&mut p, "before").await;
    let idle_kib = p.rss_kib();
    for _ in 0..10 {
        let mut s = open(&addr, true).await;
        // A 12 MiB reply that nobody reads.
        s.write_all(&framed(&request_body(
            1,
            "big",
            vec![Value::from(12 << 20).into()],
        )))
        .await
        .unwrap();
        drop(s);
    }
    // 120 MiB of replies were asked for; once the server notices the closed
    // connections, what it holds must fall back to well under half of that
    // above idle. Polled, failing after `T`.
    let bound = idle_kib + 48 * 1024;
    let deadline = Instant::now() + T;
    let rss = loop {
        let rss = p.rss_kib();
        if rss < bound || Instant::now() > deadline {
            break rss;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!("RSS idle {idle_kib} KiB, after 10 abandoned 12 MiB replies {rss} KiB");
    assert!(
        rss < bound,
        "the server still holds {} KiB above idle after {T:?}",
        rss - idle_kib
    );
    still_serving(&mut p, "ten abandoned 12 MiB replies").await;
}
