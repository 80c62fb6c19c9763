//! A large `bytes` reply goes to the socket from the buffer the method
//! returned, never copied (issue 10, decision 0022): over a real TCP socket,
//! the process makes no allocation of even half the payload while the reply
//! is encoded and written, for each way a value leaves the server (an inline
//! method, a blocking one, a stored non-blocking result fetched twice, a
//! `bytearray`; the items of a streamed reply: `stream.rs`'s tests).
//!
//! The client reads each frame through a small buffer, so any large
//! allocation counted is the server's. Its own binary: the allocator that
//! counts is global, and the cases run one at a time.

#![allow(unreachable_pub, clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pyrpc_framing::Codec;
use pyrpc_proto::wire::{self, client_frame, request, server_frame};
use pyrpc_proto::{Args, Value};
use pyrpc_server::{Methods, Server, ServerConfig};
use pyrpc_transport::{connect, Address, Stream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::{Decoder, Encoder};

/// The payload of every reply here.
const N: usize = 16 << 20;
const FILL: u8 = 0x5a;
/// An allocation at least this large is counted: a copy of the payload.
const LARGE: usize = N / 2;

/// The system allocator, counting the allocations of at least [`LARGE`].
struct Counting;

static LARGE_ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed to the system allocator unchanged.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= LARGE {
            LARGE_ALLOCS.fetch_add(1, Ordering::SeqCst);
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= LARGE {
            LARGE_ALLOCS.fetch_add(1, Ordering::SeqCst);
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size >= LARGE {
            LARGE_ALLOCS.fetch_add(1, Ordering::SeqCst);
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const T: Duration = Duration::from_secs(30);

fn payload() -> Bytes {
    static PAYLOAD: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();
    PAYLOAD.get_or_init(|| Bytes::from(vec![FILL; N])).clone()
}

fn methods() -> Methods {
    Methods::new()
        .add("big", |_| Ok(Value::Bytes(payload())))
        .add_blocking("big_blocking", |_| Ok(Value::Bytes(payload())))
        .add("big_bytearray", |_| Ok(Value::ByteArray(payload())))
}

/// A client that writes whole frames and reads them through a small buffer.
struct Client {
    io: Stream,
    codec: Codec<wire::ServerFrame, wire::ClientFrame>,
}

/// What a frame read by [`Client::read_frame`] held.
#[derive(Debug, PartialEq)]
enum Frame {
    /// A response carrying one `bytes`/`bytearray` value of
    /// `len` bytes, all [`FILL`]: (server frame field, request id, value
    /// field, len).
    Payload(u32, u64, u32, usize),
    /// Anything else, decoded.
    Other(Box<wire::ServerFrame>),
}

impl Client {
    async fn connect(addr: &Address) -> Client {
        let mut c = Client {
            io: connect(addr, T).await.unwrap(),
            codec: Codec::new(),
        };
        c.send(client_frame::Kind::Hello(wire::ClientHello {
            protocol_version: 1,
            peer_name: "big-reply-test".into(),
            ..Default::default()
        }))
        .await;
        match c.read_frame().await {
            Frame::Other(f) => match f.kind {
                Some(server_frame::Kind::Hello(h)) => {
                    assert!(h.error.is_none(), "{:?}", h.error);
                }
                other => panic!("expected a hello, got {other:?}"),
            },
            other => panic!("expected a hello, got {other:?}"),
        }
        c
    }

    async fn send(&mut self, kind: client_frame::Kind) {
        let mut buf = BytesMut::new();
        let frame = wire::ClientFrame { kind: Some(kind) };
        self.codec.encode(frame, &mut buf).unwrap();
        self.io.write_all(&buf).await.unwrap();
        self.io.flush().await.unwrap();
    }

    async fn request(&mut self, id: u64, kind: request::Kind) {
        self.send(client_frame::Kind::Request(wire::Request {
            id,
            kind: Some(kind),
        }))
        .await;
    }

    /// Reads one frame: a small one decoded, a large one checked as it
    /// streams by in 64 KiB reads.
    async fn read_frame(&mut self) -> Frame {
        let mut len = [0u8; 4];
        self.io.read_exact(&mut len).await.unwrap();
        let len = u32::from_be_bytes(len) as usize;
        if len < 1 << 20 {
            let mut body = vec![0u8; len];
            self.io.read_exact(&mut body).await.unwrap();
            let mut framed = BytesMut::from(&(len as u32).to_be_bytes()[..]);
            framed.extend_from_slice(&body);
            return Frame::Other(Box::new(self.codec.decode(&mut framed).unwrap().unwrap()));
        }
        // ServerFrame{response: {1: id, 2: Value{field: payload}}}: four keys,
        // each followed by a varint (a length, or the id).
        let mut read = 0;
        let mut fields = Vec::new();
        for _ in 0..4 {
            let key = self.byte(&mut read).await;
            let mut n = 0u64;
            for shift in (0..64).step_by(7) {
                let b = self.byte(&mut read).await;
                n |= u64::from(b & 0x7f) << shift;
                if b & 0x80 == 0 {
                    break;
                }
            }
            fields.push((u32::from(key >> 3), n));
        }
        let mut rest = len - read;
        let [(frame_field, frame_len), (1, id), (2, value_len), (value_field, n)] = fields[..]
        else {
            panic!("unexpected frame head {fields:?}");
        };
        assert_eq!(frame_len as usize, len - 1 - varint_len(frame_len));
        assert_eq!(value_len as usize, n as usize + 1 + varint_len(n));
        assert_eq!(rest, n as usize, "the payload is the rest of the frame");
        let mut buf = vec![0u8; 64 * 1024];
        let fill = vec![FILL; buf.len()];
        while rest > 0 {
            let k = rest.min(buf.len());
            self.io.read_exact(&mut buf[..k]).await.unwrap();
            assert!(buf[..k] == fill[..k], "payload bytes");
            rest -= k;
        }
        Frame::Payload(frame_field, id, value_field, n as usize)
    }

    async fn byte(&mut self, read: &mut usize) -> u8 {
        *read += 1;
        self.io.read_u8().await.unwrap()
    }
}

fn varint_len(n: u64) -> usize {
    (64 - (n | 1).leading_zeros() as usize).div_ceil(7)
}

fn call(method: &str, stream_window: u32) -> wire::Call {
    wire::Call {
        method: method.into(),
        args: Args::new().args.into_iter().map(Into::into).collect(),
        stream_window,
        ..Default::default()
    }
}

/// `Response` as a field of `ServerFrame`; `Value.bytes`
/// and `Value.bytearray`.
const RESPONSE: u32 = 2;
const BYTES: u32 = 7;
const BYTEARRAY: u32 = 14;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_reply_is_never_copied() {
    let config = ServerConfig {
        nonblocking: true,
        max_frame_len: 2 * N,
        ..ServerConfig::default()
    };
    let handle = Server::builder(methods())
        .config(config)
        .build()
        .bind(&Address::tcp("127.0.0.1", 0))
        .await
        .unwrap();
    let mut c = Client::connect(handle.local_address()).await;
    let _ = payload();

    let mut copies = Vec::new();
    let mut count = |what: &str, before: usize| {
        copies.push((
            what.to_owned(),
            LARGE_ALLOCS.load(Ordering::SeqCst) - before,
        ));
    };

    for (id, method, field) in [
        (1, "big", BYTES),
        (2, "big_blocking", BYTES),
        (3, "big_bytearray", BYTEARRAY),
    ] {
        let before = LARGE_ALLOCS.load(Ordering::SeqCst);
        c.request(id, request::Kind::Call(call(method, 0))).await;
        assert_eq!(c.read_frame().await, Frame::Payload(RESPONSE, id, field, N));
        count(method, before);
    }

    // Non-blocking: the stored result, fetched twice.
    let call_id = Bytes::from_static(b"0123456789abcdef");
    let before = LARGE_ALLOCS.load(Ordering::SeqCst);
    c.request(
        10,
        request::Kind::Submit(wire::Submit {
            call_id: call_id.clone(),
            call: Some(call("big", 0)),
            keep_ms: 60_000,
        }),
    )
    .await;
    assert!(matches!(c.read_frame().await, Frame::Other(_)), "the ack");
    for id in [11, 12] {
        c.request(
            id,
            request::Kind::Fetch(wire::Fetch {
                call_id: call_id.clone(),
                wait_ms: 10_000,
            }),
        )
        .await;
        assert_eq!(c.read_frame().await, Frame::Payload(RESPONSE, id, BYTES, N));
    }
    count("nb_big fetched twice", before);

    for (what, n) in &copies {
        assert_eq!(
            *n, 0,
            "{what}: {n} allocations of {LARGE}+ bytes: {copies:?}"
        );
    }
    handle.shutdown();
    handle.wait().await;
}
