//! The hand-off with real sockets, supervisor and workers in one process.

use super::*;
use crate::address::Address;
use crate::connect::connect;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const T: Duration = Duration::from_secs(5);

/// A balancer accepting on a fresh TCP or Unix listener, stopped on drop.
struct Running {
    balancer: Balancer,
    address: Address,
    _stop: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

async fn running(unix: bool, n: usize) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let addr = if unix {
        Address::unix(dir.path().join("s"))
    } else {
        Address::tcp("127.0.0.1", 0)
    };
    let listener = Listener::bind(&addr).await.unwrap();
    let address = listener.local_address().unwrap();
    let balancer = Balancer::new(n);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(balancer.clone().run(listener, async move {
        let _ = stopped.await;
    }));
    Running {
        balancer,
        address,
        _stop: stop,
        _dir: dir,
    }
}

impl Running {
    fn worker(&self, i: usize) -> Listener {
        let channel = self.balancer.attach(i).unwrap();
        Listener::from_handoff(channel, self.address.clone()).unwrap()
    }

    /// Makes `n` connections, one after the other without waiting.
    async fn connect(&self, n: usize) -> Vec<Stream> {
        let mut clients = Vec::new();
        for _ in 0..n {
            clients.push(connect(&self.address, T).await.unwrap());
        }
        clients
    }
}

/// Accepts `n` connections from `worker` and checks each is live.
async fn accept_n(worker: &Listener, n: usize) -> Vec<Stream> {
    let mut out = Vec::new();
    for _ in 0..n {
        let (s, _) = tokio::time::timeout(T, worker.accept())
            .await
            .expect("a connection was handed over")
            .unwrap();
        out.push(s);
    }
    out
}

/// Checks that the handed sockets are the clients' own connections, each
/// served once: every client writes its index, every served socket reads one.
async fn assert_each_served_once(clients: &mut [Stream], served: &mut [Stream]) {
    for (i, c) in clients.iter_mut().enumerate() {
        c.write_all(&[i as u8]).await.unwrap();
    }
    let mut seen = Vec::new();
    for s in served.iter_mut() {
        let mut got = [0u8; 1];
        s.read_exact(&mut got).await.unwrap();
        seen.push(got[0]);
    }
    seen.sort_unstable();
    let all: Vec<u8> = (0..clients.len()).map(|i| i as u8).collect();
    assert_eq!(seen, all);
}

async fn burst_splits_evenly(unix: bool) {
    let r = running(unix, 2).await;
    let workers = [r.worker(0), r.worker(1)];
    let mut clients = r.connect(8).await;
    let mut served = accept_n(&workers[0], 4).await;
    served.extend(accept_n(&workers[1], 4).await);
    assert_eq!(r.balancer.open_counts(), vec![Some(4), Some(4)]);
    assert_each_served_once(&mut clients, &mut served).await;
}

#[tokio::test]
async fn eight_connections_at_once_split_four_four_over_tcp() {
    burst_splits_evenly(false).await;
}

#[tokio::test]
async fn eight_connections_at_once_split_four_four_over_unix() {
    burst_splits_evenly(true).await;
}

#[tokio::test]
async fn a_closed_connection_frees_its_place() {
    let r = running(false, 2).await;
    let workers = [r.worker(0), r.worker(1)];
    let _clients = r.connect(2).await;
    let mut a = accept_n(&workers[0], 1).await;
    let _b = accept_n(&workers[1], 1).await;
    // Worker 0 serves its connection to the end and reports the close.
    let report = workers[0].close_report();
    drop(a.pop());
    drop(report);
    let _more = r.connect(1).await;
    let _again = accept_n(&workers[0], 1).await;
    assert_eq!(r.balancer.open_counts(), vec![Some(1), Some(1)]);
}

#[tokio::test]
async fn connections_made_one_after_the_other_alternate() {
    let r = running(false, 2).await;
    let workers = [r.worker(0), r.worker(1)];
    for i in 0..4 {
        let _client = r.connect(1).await;
        let mut served = accept_n(&workers[i % 2], 1).await;
        // Served and closed before the next one comes.
        let report = workers[i % 2].close_report();
        drop(served.pop());
        drop(report);
    }
    assert_eq!(r.balancer.open_counts(), vec![Some(0), Some(0)]);
}

#[tokio::test]
async fn a_replaced_worker_gets_the_next_connections() {
    let r = running(true, 2).await;
    let first = r.worker(0);
    let other = r.worker(1);
    let _clients = r.connect(4).await;
    let _a = accept_n(&first, 2).await;
    let _b = accept_n(&other, 2).await;
    // Worker 0 dies (its channel closes) and a new one takes its place.
    drop(first);
    let replaced = r.worker(0);
    let _more = r.connect(2).await;
    let _c = accept_n(&replaced, 2).await;
    assert_eq!(r.balancer.open_counts(), vec![Some(2), Some(2)]);
}

#[tokio::test]
async fn a_starting_worker_gets_its_share_once_it_serves() {
    let r = running(false, 2).await;
    let ready = r.worker(0);
    // Worker 1 is attached but has not started serving yet.
    let starting = r.balancer.attach(1).unwrap();
    let _clients = r.connect(4).await;
    let _a = accept_n(&ready, 2).await;
    assert_eq!(r.balancer.open_counts(), vec![Some(2), None]);
    // Its two wait in its channel until it serves.
    let late = Listener::from_handoff(starting, r.address.clone()).unwrap();
    let _b = accept_n(&late, 2).await;
    assert_eq!(r.balancer.open_counts(), vec![Some(2), Some(2)]);
}

#[tokio::test]
async fn a_dead_worker_is_skipped() {
    let r = running(false, 2).await;
    let alive = r.worker(0);
    drop(r.worker(1));
    let _clients = r.connect(2).await;
    let _a = accept_n(&alive, 2).await;
    assert_eq!(r.balancer.open_counts(), vec![Some(2), None]);
}

#[tokio::test]
async fn a_worker_whose_channel_is_full_is_skipped_and_nothing_is_lost() {
    const N: usize = 40;
    let r = running(false, 2).await;
    let serving = r.worker(0);
    // Worker 1 is attached but not reading yet, and its channel is made as
    // small as the OS allows, so it fills after a few connections.
    let starting = r.balancer.attach(1).unwrap();
    {
        let slots = r.balancer.slots();
        let slot = slots[1].as_ref().unwrap();
        rustix::net::sockopt::set_socket_send_buffer_size(&slot.channel, 1).unwrap();
    }
    let mut clients = r.connect(N).await;
    let mut served = accept_n(&serving, 1).await;
    // Every connection was handed to someone: none was closed.
    let handed = async {
        loop {
            let open: Vec<usize> = r
                .balancer
                .slots()
                .iter()
                .flatten()
                .map(|s| s.open)
                .collect();
            if open.iter().sum::<usize>() == N {
                return open[1];
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let waiting = tokio::time::timeout(T, handed)
        .await
        .expect("all connections handed over");
    assert!(
        (1..N / 2).contains(&waiting),
        "the full channel should have been skipped: {waiting} of {N} wait for worker 1"
    );
    served.extend(accept_n(&serving, N - waiting - 1).await);
    let late = Listener::from_handoff(starting, r.address.clone()).unwrap();
    served.extend(accept_n(&late, waiting).await);
    assert_each_served_once(&mut clients, &mut served).await;
}
