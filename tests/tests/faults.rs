//! Faults with real processes: the server killed during a call, the server
//! restarted under a connected client, a client process killed mid-call,
//! SIGTERM and SIGINT during a call.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pyrpc_proto::{Args, Value};
use pyrpc_tests::process::{honest_call, quick_client, ServerProcess};
use pyrpc_transport::Address;

const EXE: &str = env!("CARGO_BIN_EXE_pyrpc-test-server");
const T: Duration = Duration::from_secs(10);

/// Polls `live()` until it equals `want`; fails after `T`.
async fn wait_live(addr: &Address, want: i64) {
    let client = quick_client(addr);
    let deadline = Instant::now() + T;
    loop {
        let live = client.call("live", Args::new()).await.unwrap();
        if live == Value::from(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "live() stayed {live}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The server's RSS once `ok` holds for it; fails after `T`.
async fn wait_rss(p: &ServerProcess, ok: impl Fn(u64) -> bool) -> u64 {
    let deadline = Instant::now() + T;
    loop {
        let kib = p.rss_kib();
        if ok(kib) {
            return kib;
        }
        assert!(Instant::now() < deadline, "RSS stayed at {kib} KiB");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn server_killed_during_a_call_fails_the_call_quickly() {
    let p = ServerProcess::unix(EXE, &[]);
    let client = pyrpc_client::Client::new(p.addr.clone()); // no call timeout
    let call = {
        let client = client.clone();
        tokio::spawn(async move { client.call("hold", Args::new().arg(60.0).arg(0.0)).await })
    };
    wait_live(&p.addr, 1).await;
    let killed = Instant::now();
    p.signal("KILL");
    let err = tokio::time::timeout(Duration::from_secs(2), call)
        .await
        .expect("the call ended within 2 s of the kill")
        .unwrap()
        .unwrap_err();
    eprintln!("call failed {:?} after SIGKILL: {err}", killed.elapsed());
    assert!(err.is_connection_error(), "{err:?}");
    // The next call says the server is gone, without hanging either.
    let err = tokio::time::timeout(Duration::from_secs(2), client.call("count", Args::new()))
        .await
        .unwrap()
        .unwrap_err();
    assert!(err.is_connection_error(), "{err:?}");
}

#[tokio::test]
async fn a_restarted_server_is_reached_by_the_next_call() {
    for tcp in [false, true] {
        let mut p = if tcp {
            ServerProcess::tcp(EXE, &[])
        } else {
            ServerProcess::unix(EXE, &[])
        };
        let client = quick_client(&p.addr);
        assert_eq!(
            client.call("count", Args::new()).await.unwrap(),
            Value::from(1)
        );
        // Stopped while the client holds its connection, then started again
        // at the same address.
        p.signal("TERM");
        assert!(p.wait_exit(T).success());
        let dir = p.dir.take();
        let again = ServerProcess::at(EXE, p.addr.clone(), dir, &[]);
        // A fresh process: its counter starts over, so 1 again.
        let deadline = Instant::now() + T;
        loop {
            match client.call("count", Args::new()).await {
                Ok(v) => {
                    assert_eq!(v, Value::from(1));
                    break;
                }
                // The first call may still find the old, closed connection.
                Err(e) if e.is_connection_error() && Instant::now() < deadline => {}
                Err(e) => panic!("after the restart: {e:?}"),
            }
        }
        drop(again);
    }
}

#[tokio::test]
async fn a_killed_client_process_frees_its_call() {
    let mut p = ServerProcess::unix(EXE, &[]);
    let baseline = p.rss_kib();
    // A client process calls hold(60 s, 64 MiB) and is killed mid-call.
    let mut client = Command::new(EXE)
        .args(["call", &p.addr.to_string(), "hold", "60", "64"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_live(&p.addr, 1).await;
    // The call counts as live as it starts, a moment before its 64 MiB are
    // allocated and touched.
    let holding = wait_rss(&p, |kib| kib > baseline + 60 * 1024).await;
    client.kill().unwrap();
    client.wait().unwrap();
    // The server drops the call when the connection goes: live() is 0 and
    // the 64 MiB are given back, long before the 60 s.
    wait_live(&p.addr, 0).await;
    let after = wait_rss(&p, |kib| kib < baseline + 16 * 1024).await;
    eprintln!("RSS: {baseline} KiB, {holding} KiB while held, {after} KiB after the kill");
    assert!(after < baseline + 16 * 1024, "{after} KiB");
    honest_call(&p.addr, Duration::from_secs(2)).await;
    assert!(p.alive());
}

async fn graceful_on(signal: &str) {
    let mut p = ServerProcess::unix(EXE, &["--grace-ms", "5000"]);
    let path = p.socket_path().unwrap();
    assert!(path.exists());
    let client = quick_client(&p.addr);
    let call = {
        let client = client.clone();
        tokio::spawn(async move { client.call("hold", Args::new().arg(0.5).arg(1.0)).await })
    };
    wait_live(&p.addr, 1).await;
    p.signal(signal);
    // The call in flight completes...
    let v = call.await.unwrap().unwrap();
    assert_eq!(v, Value::from(1024 * 1024));
    // ...then the process exits cleanly and removes its socket file.
    let status = p.wait_exit(T);
    assert!(status.success(), "SIG{signal}: exit {status:?}");
    assert!(!path.exists(), "SIG{signal}: socket file left behind");
}

#[tokio::test]
async fn sigterm_shuts_down_gracefully() {
    graceful_on("TERM").await;
}

#[tokio::test]
async fn sigint_shuts_down_gracefully() {
    graceful_on("INT").await;
}
