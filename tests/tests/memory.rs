//! Memory given back after load (issue 10, point 7): a server that served
//! megabyte payloads on several connections at once returns to within 2x
//! its idle size once the calls stop (it trims the allocator when idle; see
//! crates/pyrpc-server/src/idle.rs). The longer soak of both servers is a
//! case of `cargo xtask bench` (bench/python/memory_and_arrays.py).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use pyrpc_proto::{Args, Value};
use pyrpc_tests::process::{quick_client, ServerProcess};

const EXE: &str = env!("CARGO_BIN_EXE_pyrpc-test-server");

#[tokio::test]
async fn idle_rss_after_a_burst_of_large_calls_returns_within_2x_of_before() {
    let p = ServerProcess::unix(EXE, &[]);
    let client = quick_client(&p.addr);
    client.call("echo", Args::new().arg(1)).await.unwrap();
    let before = p.rss_kib();
    // 8 connections, each echoing 12 payloads of 1 to 8 MiB, at once.
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..8usize {
        let addr = p.addr.clone();
        tasks.spawn(async move {
            let client = quick_client(&addr);
            for i in 0..12usize {
                let n = ((c + i) % 8 + 1) << 20;
                let got = client
                    .call("echo", Args::new().arg(Value::Bytes(vec![7u8; n].into())))
                    .await
                    .unwrap();
                let Value::Tuple(parts) = got else {
                    panic!("echo returned {got}")
                };
                let Value::Tuple(args) = &parts[0] else {
                    panic!("echo returned args {}", parts[0])
                };
                assert!(matches!(&args[0], Value::Bytes(b) if b.len() == n));
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let peak = p.peak_rss_kib();
    assert!(
        peak > before + 32 * 1024,
        "the load did not show: {before} -> {peak} KiB"
    );
    // Idle now: within a few seconds the server is back under 2x.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut after = p.rss_kib();
    while after > 2 * before {
        assert!(
            Instant::now() < deadline,
            "idle RSS stayed at {after} KiB, more than 2x the {before} KiB before the load \
             (peak {peak} KiB)"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        after = p.rss_kib();
    }
    eprintln!("RSS: {before} KiB idle, {peak} KiB peak, {after} KiB idle after the load");
    // Still serving.
    assert_eq!(
        client
            .call("add", Args::new().arg(20).arg(22))
            .await
            .unwrap(),
        Value::from(42)
    );
}
