//! The connection limits: idle timeout, the server-wide budget for partial
//! frames, and the bounded reply queue (backpressure on a client that does
//! not read).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pyrpc_proto::{wire, Args, Value};
use pyrpc_server::ServerConfig;
use pyrpc_transport::{connect, Address};
use tokio::time::Instant;

use crate::peer::{server, Gate, Outcome, Peer};

const T: Duration = Duration::from_secs(5);

fn idle_config(idle: Duration) -> ServerConfig {
    ServerConfig {
        idle_timeout: Some(idle),
        ..ServerConfig::default()
    }
}

#[tokio::test(start_paused = true)]
async fn a_silent_connection_is_closed_after_the_idle_timeout() {
    let s = server(&Gate::new(), idle_config(Duration::from_secs(60)));
    let mut p = Peer::connect(&s).await;
    assert_eq!(p.ping().await, Outcome::Ack);
    let start = Instant::now();
    assert!(p.recv().await.is_none(), "closed by the server");
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(60) && waited < Duration::from_secs(62),
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_connection_with_a_running_call_is_never_idle() {
    let gate = Gate::new();
    let s = server(&gate, idle_config(Duration::from_secs(60)));
    let mut p = Peer::connect(&s).await;
    p.call(7, "gated", Args::new()).await;
    gate.wait_reached(1).await;
    // Ten idle timeouts pass while the call runs.
    tokio::time::sleep(Duration::from_secs(600)).await;
    gate.open(1);
    let (id, out) = p.response().await;
    assert_eq!((id, out), (7, Outcome::Value(Value::from("gated"))));
    // Once nothing runs, the timeout applies again.
    assert!(p.recv().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn bytes_arriving_keep_a_connection_open() {
    let s = server(&Gate::new(), idle_config(Duration::from_secs(60)));
    let mut p = Peer::connect(&s).await;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_secs(50)).await;
        assert_eq!(p.ping().await, Outcome::Ack);
    }
}

#[tokio::test]
async fn partial_frames_beyond_the_budget_close_the_connection_that_goes_over() {
    let config = ServerConfig {
        max_frame_len: 1024 * 1024,
        max_buffered_bytes: 256 * 1024,
        ..ServerConfig::default()
    };
    let handle = server(&Gate::new(), config)
        .bind(&Address::tcp("127.0.0.1", 0))
        .await
        .unwrap();
    let addr = handle.local_address().clone();
    // A header claiming 1 MiB, then 200 KiB of it.
    let mut bytes = (1024 * 1024u32).to_be_bytes().to_vec();
    bytes.extend(std::iter::repeat_n(0u8, 200 * 1024));
    let mut a = Peer::new(connect(&addr, T).await.unwrap());
    assert!(a.hello(0).await.error.is_none());
    a.send_bytes(&bytes).await;
    // `a` holds ~136 KiB of the budget once the server has read its bytes;
    // `b` cannot hold as much again: the server closes `b`.
    let mut b = Peer::new(connect(&addr, T).await.unwrap());
    assert!(b.hello(0).await.error.is_none());
    b.send_bytes(&bytes).await;
    assert!(
        tokio::time::timeout(T, b.recv()).await.unwrap().is_none(),
        "the connection over the budget is closed"
    );
    // Small requests need no budget: they still work.
    let mut c = Peer::new(connect(&addr, T).await.unwrap());
    assert!(c.hello(0).await.error.is_none());
    assert_eq!(c.ping().await, Outcome::Ack);
    // When `a` goes, its share comes back: a 200 KiB request fits again.
    drop(a);
    let big = "x".repeat(200 * 1024);
    let deadline = Instant::now() + T;
    loop {
        let mut d = Peer::new(connect(&addr, T).await.unwrap());
        assert!(d.hello(0).await.error.is_none());
        d.call(1, "echo", Args::new().arg(big.as_str())).await;
        match tokio::time::timeout(T, d.recv()).await.unwrap() {
            Some(_) => break,
            // The server may not have noticed `a` close yet.
            None => assert!(Instant::now() < deadline, "budget never given back"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    handle.shutdown();
    handle.wait().await;
}

#[tokio::test]
async fn a_client_that_never_reads_makes_the_server_stop_reading() {
    let config = ServerConfig {
        max_queued_reply_bytes: 256 * 1024,
        ..ServerConfig::default()
    };
    let s = server(&Gate::new(), config);
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let _task = s.serve_stream(theirs, "never reads".into());
    let (rd, wr) = tokio::io::split(ours);
    // The hello goes out by hand; the server's is read off `rd` later.
    let mut p = Peer::new(tokio::io::join(tokio::io::empty(), wr));
    let payload = "y".repeat(32 * 1024);
    const N: usize = 300;
    let sent = Arc::new(AtomicUsize::new(0));
    let sender = {
        let sent = Arc::clone(&sent);
        tokio::spawn(async move {
            p.send(wire::ClientFrame {
                kind: Some(wire::client_frame::Kind::Hello(wire::ClientHello {
                    protocol_version: 1,
                    ..Default::default()
                })),
            })
            .await;
            for id in 0..N as u64 {
                p.call(id, "echo", Args::new().arg(payload.as_str())).await;
                sent.fetch_add(1, Ordering::SeqCst);
            }
            p
        })
    };
    // Wait until the sender makes no progress for a while.
    let mut last = usize::MAX;
    let deadline = Instant::now() + T;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = sent.load(Ordering::SeqCst);
        if now == last {
            break;
        }
        assert!(Instant::now() < deadline, "the sender never stalled");
        last = now;
    }
    // ~10 MiB were offered; the server took what fits its queue, its
    // writer's batch, one call waiting and the two pipes' buffers.
    assert!(last < 40, "server read {last} requests of 32 KiB");
    // Reading the replies lets everything through, in full.
    let mut reader = Peer::new(tokio::io::join(rd, tokio::io::sink()));
    let mut ids = Vec::new();
    let _hello = reader.recv().await.expect("hello");
    for _ in 0..N {
        let (id, out) = tokio::time::timeout(T, reader.response()).await.unwrap();
        assert!(matches!(out, Outcome::Value(_)), "{out:?}");
        ids.push(id);
    }
    ids.sort_unstable();
    assert_eq!(ids, (0..N as u64).collect::<Vec<_>>());
    sender.await.unwrap();
}
