//! The Redis result store (`--features redis`), against a real
//! `redis-server`: `cargo xtask test` starts one and exports its URL as
//! `PYRPC_TEST_REDIS_URL` (and sets `PYRPC_REQUIRE_REDIS=1`, so a missing
//! Redis fails these tests instead of skipping them).
//!
//! Servers here share one Redis in one process; the tests with separate
//! server processes (one killed mid-run, Redis stopped mid-run) are in
//! `crates/pyrpc-python/tests/test_result_store.py`.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pyrpc_proto::{Args, ErrorKind, Value};
use pyrpc_server::{Methods, Server, ServerConfig};

use crate::peer::{fetch, release, server, submit, Gate, Outcome, Peer};

/// The test Redis, or `None` (test skipped) when none was given and none is
/// required.
fn redis_url() -> Option<String> {
    match std::env::var("PYRPC_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("PYRPC_REQUIRE_REDIS").is_some() => {
            panic!("PYRPC_REQUIRE_REDIS is set but PYRPC_TEST_REDIS_URL is not")
        }
        _ => {
            eprintln!("skipped: no PYRPC_TEST_REDIS_URL (cargo xtask test starts a Redis)");
            None
        }
    }
}

/// A call id no other test (or earlier run against the same Redis) uses.
fn fresh_id() -> [u8; 16] {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let n = N.fetch_add(1, Ordering::Relaxed);
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&(nanos ^ u64::from(std::process::id()) << 40).to_be_bytes());
    id[8..].copy_from_slice(&n.to_be_bytes());
    id
}

fn config(url: &str) -> ServerConfig {
    ServerConfig {
        nonblocking: true,
        result_store: Some(url.to_owned()),
        result_lease: Duration::from_millis(300),
        ..ServerConfig::default()
    }
}

#[tokio::test]
async fn submit_through_one_server_fetch_and_release_through_another() {
    let Some(url) = redis_url() else { return };
    let gate = Gate::new();
    let (a, b) = (server(&gate, config(&url)), server(&gate, config(&url)));
    let (mut pa, mut pb) = (Peer::connect(&a).await, Peer::connect(&b).await);
    let id = fresh_id();

    assert_eq!(
        pa.ask(1, submit(id, "gated", Args::new(), 0)).await,
        Outcome::Ack
    );
    gate.wait_reached(1).await;
    assert_eq!(pb.ask(2, fetch(id, 0)).await, Outcome::Pending);
    // the same id submitted to the other server: acknowledged, never run
    assert_eq!(
        pb.ask(3, submit(id, "gated", Args::new(), 0)).await,
        Outcome::Ack
    );

    // a waiting fetch on B sees the result A stores
    pb.request(4, fetch(id, 30_000)).await;
    gate.open(1);
    let (_, out) = pb.response().await;
    assert_eq!(out, Outcome::Value(Value::from("gated")));
    assert_eq!(gate.reached.available_permits(), 0, "ran a second time");

    assert_eq!(pb.ask(5, release(id)).await, Outcome::Ack);
    let e = pa.ask(6, fetch(id, 0)).await.error();
    assert_eq!(e.kind, ErrorKind::UnknownCall);
}

#[tokio::test]
async fn remote_exceptions_survive_the_store() {
    let Some(url) = redis_url() else { return };
    let gate = Gate::new();
    let (a, b) = (server(&gate, config(&url)), server(&gate, config(&url)));
    let (mut pa, mut pb) = (Peer::connect(&a).await, Peer::connect(&b).await);
    let id = fresh_id();
    assert_eq!(
        pa.ask(1, submit(id, "fail", Args::new(), 0)).await,
        Outcome::Ack
    );
    let e = pb.ask(2, fetch(id, 30_000)).await.error();
    assert_eq!(
        (e.kind, e.type_name.as_str()),
        (ErrorKind::Exception, "ValueError")
    );
    assert_eq!(e.args, vec![Value::from("bad")]);
}

#[tokio::test]
async fn concurrent_submits_of_the_same_ids_to_two_servers_run_each_once() {
    let Some(url) = redis_url() else { return };
    let runs = Arc::new(AtomicUsize::new(0));
    let make = || {
        let runs = Arc::clone(&runs);
        Server::builder(Methods::new().add("count", move |_| {
            Ok(Value::from(runs.fetch_add(1, Ordering::SeqCst) as i64))
        }))
        .config(config(&url))
        .build()
    };
    let (a, b) = (make(), make());
    let ids: Vec<[u8; 16]> = (0..50).map(|_| fresh_id()).collect();
    let send_all = |s: Server, ids: Vec<[u8; 16]>| async move {
        let mut p = Peer::connect(&s).await;
        for (n, id) in ids.iter().enumerate() {
            p.request(n as u64 + 1, submit(*id, "count", Args::new(), 0))
                .await;
        }
        for _ in &ids {
            assert_eq!(p.response().await.1, Outcome::Ack);
        }
        p
    };
    let (mut pa, _pb) = tokio::join!(send_all(a, ids.clone()), send_all(b, ids.clone()));
    for (n, id) in ids.iter().enumerate() {
        let out = pa.ask(1000 + n as u64, fetch(*id, 30_000)).await;
        assert!(matches!(out, Outcome::Value(_)), "{out:?}");
    }
    assert_eq!(runs.load(Ordering::SeqCst), 50);
}

#[tokio::test]
async fn a_running_call_keeps_its_lease_and_a_call_without_one_is_lost() {
    let Some(url) = redis_url() else { return };
    let gate = Gate::new();
    let a = server(&gate, config(&url));
    let mut p = Peer::connect(&a).await;
    let id = fresh_id();
    assert_eq!(
        p.ask(1, submit(id, "gated", Args::new(), 0)).await,
        Outcome::Ack
    );
    gate.wait_reached(1).await;
    // Several lease times (300 ms) pass; the running server renews it.
    // Redis keeps real time, so this waits for real.
    let out = p.ask(2, fetch(id, 1_500)).await;
    assert_eq!(out, Outcome::Pending);
    gate.open(1);
    assert_eq!(
        p.ask(3, fetch(id, 30_000)).await,
        Outcome::Value(Value::from("gated"))
    );

    // An entry left running by a server that is gone (no lease key).
    let lost = fresh_id();
    let hex: String = lost.iter().map(|b| format!("{b:02x}")).collect();
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SET")
        .arg(format!("pyrpc:nb:{hex}"))
        .arg("R:60000")
        .arg("PX")
        .arg(60_000)
        .query_async(&mut c)
        .await
        .unwrap();
    let e = p.ask(4, fetch(lost, 0)).await.error();
    assert_eq!(e.kind, ErrorKind::CallLost, "{e:?}");
    assert!(e.message.contains("lost"), "{}", e.message);
    // and submitting it again does not run it
    assert_eq!(
        p.ask(5, submit(lost, "gated", Args::new(), 0)).await,
        Outcome::Ack
    );
    assert_eq!(gate.reached.available_permits(), 0);
}

/// Needs no Redis: nobody listens on port 1.
#[tokio::test]
async fn unreachable_redis_fails_nb_requests_clearly_and_blocking_calls_still_work() {
    let gate = Gate::new();
    let s = server(&gate, config("redis://127.0.0.1:1/0"));
    let mut p = Peer::connect(&s).await;
    let id = fresh_id();
    for (n, kind) in [
        submit(id, "echo", Args::new(), 0),
        fetch(id, 0),
        fetch(id, 5_000),
        release(id),
    ]
    .into_iter()
    .enumerate()
    {
        let e = p.ask(n as u64 + 1, kind).await.error();
        assert_eq!(e.kind, ErrorKind::StoreUnavailable, "{e:?}");
        assert!(e.message.contains("redis://127.0.0.1:1/0"), "{}", e.message);
    }
    let out = p.call_wait("add_one", Args::new().arg(41)).await;
    assert_eq!(out, Outcome::Value(Value::from(42)));
}

#[tokio::test]
async fn a_bad_store_url_is_refused_at_bind() {
    let s = server(&Gate::new(), config("memcached://x"));
    let addr: pyrpc_server::Address = "127.0.0.1:0".parse().unwrap();
    let e = s.bind(&addr).await.unwrap_err();
    assert!(e.to_string().contains("result store"), "{e}");
}

#[tokio::test]
async fn a_waiting_fetch_on_another_server_wakes_when_the_result_lands() {
    let Some(url) = redis_url() else { return };
    let gate = Gate::new();
    // A long lease: between wake-ups the store is read only every half
    // lease (15 s), so an answer well before that came from the wake-up.
    let config = || ServerConfig {
        result_lease: Duration::from_secs(30),
        ..config(&url)
    };
    let (a, b) = (server(&gate, config()), server(&gate, config()));
    let (mut pa, mut pb) = (Peer::connect(&a).await, Peer::connect(&b).await);
    let id = fresh_id();
    assert_eq!(
        pa.ask(1, submit(id, "gated", Args::new(), 0)).await,
        Outcome::Ack
    );
    gate.wait_reached(1).await;
    // The first fetch on B subscribes B to completions.
    assert_eq!(pb.ask(2, fetch(id, 0)).await, Outcome::Pending);
    pb.request(3, fetch(id, 20_000)).await;
    let opened = std::time::Instant::now();
    gate.open(1);
    let (_, out) = pb.response().await;
    assert_eq!(out, Outcome::Value(Value::from("gated")));
    assert!(
        opened.elapsed() < Duration::from_secs(7),
        "the fetch on B was not woken by A's completion ({:?})",
        opened.elapsed()
    );
}
