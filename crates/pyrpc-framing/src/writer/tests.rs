//! The shared writer on in-memory pipes: order, one writer at a time,
//! partial writes, the hand-off on would-block, the room bound, a stalled
//! peer, a writer dropped mid-write, and closing.

#![allow(clippy::unwrap_used)]

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use frames::collect_ids;
use pyrpc_proto::raw;
use tokio::io::{AsyncRead, AsyncReadExt, DuplexStream};

use super::*;
use crate::Codec;

type TestCodec = Codec<raw::Request, raw::Request>;
type TestWriter<W> = SharedWriter<W, TestCodec>;

/// A `Call` request `id` whose one argument is `pad` bytes.
fn frame(id: u64, pad: usize) -> raw::Request {
    raw::Request {
        id,
        kind: Some(raw::request::Kind::Call(raw::Call {
            method: "m".into(),
            args: vec![Bytes::from(vec![7u8; pad])],
            ..Default::default()
        })),
    }
}

async fn send<W: AsyncWrite + Send + Unpin + 'static>(
    w: &Arc<TestWriter<W>>,
    id: u64,
    pad: usize,
) -> Result<(), WriterClosed> {
    let f = frame(id, pad);
    let room = w.reserve(prost::Message::encoded_len(&f)).await?;
    w.send(room, |c, out| c.encode_chunks(&f, out).unwrap())
        .await
}

mod frames {
    use super::*;
    use tokio_util::codec::Decoder;

    /// Reads `n` frames from `rd` and returns their ids in order.
    pub(super) async fn collect_ids<R: AsyncRead + Unpin>(rd: &mut R, n: usize) -> Vec<u64> {
        let mut codec = TestCodec::new();
        let mut buf = bytes::BytesMut::new();
        let mut ids = Vec::new();
        while ids.len() < n {
            while let Some(req) = codec.decode(&mut buf).unwrap() {
                ids.push(req.id);
            }
            if ids.len() == n {
                break;
            }
            let got = rd.read_buf(&mut buf).await.unwrap();
            assert!(got > 0, "eof after {} frames", ids.len());
        }
        ids
    }
}

fn writer(near: DuplexStream, config: WriterConfig) -> Arc<TestWriter<DuplexStream>> {
    SharedWriter::new(near, TestCodec::new(), config)
}

#[tokio::test]
async fn frames_arrive_whole_and_in_order_through_partial_writes() {
    // 64-byte pipe: every frame of 1000 bytes takes many partial writes.
    let (near, mut far) = tokio::io::duplex(64);
    let w = writer(near, WriterConfig::default());
    let sender = {
        let w = Arc::clone(&w);
        tokio::spawn(async move {
            for id in 1..=50 {
                send(&w, id, 1000).await.unwrap();
            }
        })
    };
    let ids = collect_ids(&mut far, 50).await;
    sender.await.unwrap();
    assert_eq!(ids, (1..=50).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_senders_keep_their_own_order() {
    let (near, mut far) = tokio::io::duplex(256);
    let w = writer(near, WriterConfig::default());
    let mut tasks = Vec::new();
    for s in 0..4u64 {
        let w = Arc::clone(&w);
        tasks.push(tokio::spawn(async move {
            for i in 0..100u64 {
                send(&w, s * 1000 + i, (i as usize * 37) % 300)
                    .await
                    .unwrap();
            }
        }));
    }
    let ids = collect_ids(&mut far, 400).await;
    for t in tasks {
        t.await.unwrap();
    }
    for s in 0..4u64 {
        let mine: Vec<u64> = ids.iter().copied().filter(|id| id / 1000 == s).collect();
        assert_eq!(mine, (0..100).map(|i| s * 1000 + i).collect::<Vec<_>>());
    }
}

/// A write half that counts how many writers are inside it at once.
struct Counting {
    inner: DuplexStream,
    inside: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
}

impl AsyncWrite for Counting {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let now = self.inside.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        std::thread::yield_now();
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.inside.fetch_sub(1, Ordering::SeqCst);
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_and_tasks_write_one_at_a_time_and_nothing_is_lost() {
    let (near, mut far) = tokio::io::duplex(128);
    let (inside, most) = (Arc::default(), Arc::new(AtomicUsize::new(0)));
    let io = Counting {
        inner: near,
        inside: Arc::clone(&inside),
        most: Arc::clone(&most),
    };
    let w = SharedWriter::new(io, TestCodec::new(), WriterConfig::default());
    let handle = tokio::runtime::Handle::current();
    let mut threads = Vec::new();
    for t in 0..3u64 {
        let (w, handle) = (Arc::clone(&w), handle.clone());
        // Plain threads, as the Python binding's workers: `send_now`.
        threads.push(std::thread::spawn(move || {
            for i in 0..100u64 {
                let f = frame(t * 1000 + i, 100);
                let room = w.try_reserve(0).unwrap();
                w.send_now(room, &handle, |c, out| c.encode_chunks(&f, out).unwrap())
                    .unwrap();
            }
        }));
    }
    let task = {
        let w = Arc::clone(&w);
        tokio::spawn(async move {
            for i in 0..100u64 {
                send(&w, 3000 + i, 50).await.unwrap();
            }
        })
    };
    let ids = collect_ids(&mut far, 400).await;
    for t in threads {
        t.join().unwrap();
    }
    task.await.unwrap();
    assert_eq!(most.load(Ordering::SeqCst), 1, "two writers at once");
    for s in 0..4u64 {
        let mine: Vec<u64> = ids.iter().copied().filter(|id| id / 1000 == s).collect();
        assert_eq!(mine, (0..100).map(|i| s * 1000 + i).collect::<Vec<_>>());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_now_writes_at_once_with_room_and_hands_off_when_full() {
    let (near, mut far) = tokio::io::duplex(4096);
    let w = writer(near, WriterConfig::default());
    let handle = tokio::runtime::Handle::current();
    // Room in the pipe: the frame is in it when `send_now` returns, with no
    // task involved.
    let small = frame(1, 10);
    let w2 = Arc::clone(&w);
    let h2 = handle.clone();
    std::thread::spawn(move || {
        let room = w2.try_reserve(0).unwrap();
        w2.send_now(room, &h2, |c, out| c.encode_chunks(&small, out).unwrap())
            .unwrap();
    })
    .join()
    .unwrap();
    assert!(!w.lock().writing, "a writer left after a write that fit");
    let mut now = vec![0u8; 4 + prost::Message::encoded_len(&frame(1, 10))];
    far.read_exact(&mut now).await.unwrap();
    // No room: `send_now` returns at once, and a drain task finishes once
    // the peer reads.
    let big = frame(2, 100_000);
    let w2 = Arc::clone(&w);
    std::thread::spawn(move || {
        let room = w2.try_reserve(0).unwrap();
        w2.send_now(room, &handle, |c, out| c.encode_chunks(&big, out).unwrap())
            .unwrap();
    })
    .join()
    .unwrap();
    assert!(w.lock().writing, "the rest is with a drain task");
    send(&w, 3, 10).await.unwrap();
    assert_eq!(collect_ids(&mut far, 2).await, vec![2, 3]);
}

#[tokio::test]
async fn the_room_is_bounded_in_bytes_and_given_back_once_written() {
    let (near, mut far) = tokio::io::duplex(16);
    let w = writer(
        near,
        WriterConfig {
            room: Some(1000),
            ..Default::default()
        },
    );
    let first = w.try_reserve(600).unwrap();
    assert_eq!(w.try_reserve(600).unwrap_err(), TryReserveError::Full);
    let f = frame(1, 590);
    let sending = {
        let w = Arc::clone(&w);
        tokio::spawn(async move {
            w.send(first, |c, out| c.encode_chunks(&f, out).unwrap())
                .await
        })
    };
    // Still queued or being written: the room is still taken.
    tokio::task::yield_now().await;
    assert_eq!(w.try_reserve(600).unwrap_err(), TryReserveError::Full);
    assert_eq!(collect_ids(&mut far, 1).await, vec![1]);
    sending.await.unwrap().unwrap();
    // Written: the room is back.
    let again = w.try_reserve(1000).unwrap();
    drop(again);
    // Larger than the whole room: takes all of it, and goes.
    let huge = w.try_reserve(5000).unwrap();
    assert_eq!(w.try_reserve(1).unwrap_err(), TryReserveError::Full);
    drop(huge);
    assert!(w.try_reserve(1000).is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_reads_nothing_breaks_the_writer_after_the_stall_timeout() {
    let (near, _far) = tokio::io::duplex(64);
    let broken = CancellationToken::new();
    let w = writer(
        near,
        WriterConfig {
            room: Some(1 << 20),
            stall: Some(Duration::from_secs(5)),
            broken: broken.clone(),
            ..Default::default()
        },
    );
    let started = tokio::time::Instant::now();
    assert_eq!(send(&w, 1, 10_000).await, Err(WriterClosed));
    assert!(started.elapsed() >= Duration::from_secs(5));
    assert!(broken.is_cancelled());
    assert!(w.is_closed());
    assert!(matches!(w.reserve(10).await, Err(WriterClosed)));
}

#[tokio::test]
async fn the_kill_token_stops_a_blocked_writer() {
    let (near, _far) = tokio::io::duplex(64);
    let kill = CancellationToken::new();
    let w = writer(
        near,
        WriterConfig {
            kill: kill.clone(),
            ..Default::default()
        },
    );
    let sending = {
        let w = Arc::clone(&w);
        tokio::spawn(async move { send(&w, 1, 10_000).await })
    };
    tokio::task::yield_now().await;
    kill.cancel();
    assert_eq!(sending.await.unwrap(), Err(WriterClosed));
    assert!(w.is_closed());
}

#[tokio::test]
async fn a_writer_dropped_mid_write_leaves_no_half_frame() {
    let (near, mut far) = tokio::io::duplex(64);
    let w = writer(near, WriterConfig::default());
    {
        // Gives up after the pipe took part of the frame.
        let f = send(&w, 1, 1000);
        let r = tokio::time::timeout(Duration::from_millis(20), f).await;
        assert!(r.is_err(), "a 1000-byte frame fit a 64-byte pipe");
    }
    // The rest goes out (by a task that took over), then the next frame.
    send(&w, 2, 10).await.unwrap();
    assert_eq!(collect_ids(&mut far, 2).await, vec![1, 2]);
}

#[tokio::test]
async fn close_waits_for_queued_frames_then_shuts_the_write_half() {
    let (near, mut far) = tokio::io::duplex(64);
    let w = writer(near, WriterConfig::default());
    let sending = {
        let w = Arc::clone(&w);
        tokio::spawn(async move { send(&w, 1, 5000).await })
    };
    tokio::task::yield_now().await;
    let closing = {
        let w = Arc::clone(&w);
        tokio::spawn(async move { w.close().await })
    };
    assert_eq!(collect_ids(&mut far, 1).await, vec![1]);
    sending.await.unwrap().unwrap();
    closing.await.unwrap();
    let mut rest = Vec::new();
    far.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "bytes after the last frame");
    assert_eq!(send(&w, 2, 1).await, Err(WriterClosed));
}

#[test]
fn a_runtime_shut_down_under_a_drain_task_drops_it_quietly() {
    // The drain task (from a writer that gave up mid-write) is dropped with
    // its runtime: it gives the write half back and starts nothing new.
    let (near, _far) = tokio::io::duplex(64);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let w = rt.block_on(async {
        let w = writer(near, WriterConfig::default());
        let r = tokio::time::timeout(Duration::from_millis(10), send(&w, 1, 1000)).await;
        assert!(r.is_err(), "a 1000-byte frame fit a 64-byte pipe");
        assert!(w.lock().writing, "no drain task took over");
        w
    });
    drop(rt);
    let st = w.lock();
    assert!(!st.writing && st.io.is_some(), "the write half was lost");
    assert!(!st.frames.is_empty(), "the unwritten rest was lost");
}
