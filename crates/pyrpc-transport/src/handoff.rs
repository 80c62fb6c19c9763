//! Connections accepted by one process and served by others: the
//! [`Balancer`] of a supervisor hands each accepted socket to the worker
//! process with the fewest open connections, and a worker takes them with
//! [`Listener::from_handoff`](crate::Listener::from_handoff), a listener
//! like any other (so TLS, limits and the hello go through the worker's
//! usual admission).
//!
//! Each worker has a channel: one end of a Unix stream socket pair. The
//! supervisor sends one byte per connection with the socket attached
//! (`SCM_RIGHTS`); the worker sends back [`READY`] once it serves, and
//! [`CLOSED`] each time a handed connection closes, which keeps the
//! supervisor's counts of open connections true.

use std::io::{self, ErrorKind, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use tokio::io::Interest;
use tokio::net::UnixStream;

use crate::address::Address;
use crate::error::TransportError;
use crate::listener::Listener;
use crate::stream::{PeerInfo, Stream};

/// The byte a worker sends once its listener takes connections.
pub const READY: u8 = b'r';
/// The byte a worker sends each time a handed connection closes.
pub const CLOSED: u8 = b'c';
/// The byte each handed connection travels with.
const CONNECTION: u8 = b'C';

/// A supervisor's side of the hand-off: accepts on one listener and hands
/// each connection to the worker (a channel made by [`Balancer::attach`])
/// with the fewest open connections (ties in turn), preferring workers that
/// said they are ready. Cloning gives another handle to the same balancer.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use pyrpc_transport::{connect, Address, Balancer, Listener};
///
/// let listener = Listener::bind(&Address::tcp("127.0.0.1", 0)).await?;
/// let address = listener.local_address()?;
/// let balancer = Balancer::new(2);
/// let channels = [balancer.attach(0)?, balancer.attach(1)?];
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// let running = tokio::spawn(balancer.clone().run(listener, async move {
///     let _ = stopped.await;
/// }));
/// // In each worker process (here: in this one).
/// let [a, b] = channels;
/// let workers = [
///     Listener::from_handoff(a, address.clone())?,
///     Listener::from_handoff(b, address.clone())?,
/// ];
/// let _c1 = connect(&address, Duration::from_secs(5)).await?;
/// let _c2 = connect(&address, Duration::from_secs(5)).await?;
/// // One connection each: both workers were ready with none open.
/// let (_s1, _) = workers[0].accept().await?;
/// let (_s2, _) = workers[1].accept().await?;
/// assert_eq!(balancer.open_counts(), vec![Some(1), Some(1)]);
/// let _ = stop.send(());
/// running.await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default)]
pub struct Balancer {
    slots: Arc<Mutex<Vec<Option<Slot>>>>,
    /// The worker after the last one chosen: ties go to the next in turn,
    /// so connections made one after the other (each closed before the
    /// next) alternate too.
    turn: Arc<AtomicUsize>,
}

/// The supervisor's view of one worker.
#[derive(Debug)]
struct Slot {
    channel: StdUnixStream,
    open: usize,
    ready: bool,
    /// The worker's end closed (it exited) or refused a connection.
    gone: bool,
}

impl Balancer {
    /// A balancer for `n` workers, none attached yet.
    pub fn new(n: usize) -> Balancer {
        let slots = (0..n).map(|_| None).collect();
        Balancer {
            slots: Arc::new(Mutex::new(slots)),
            turn: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn slots(&self) -> MutexGuard<'_, Vec<Option<Slot>>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes a new channel for worker `i` (replacing the one of a worker
    /// that died: its count starts again at zero) and returns the worker's
    /// end, to give to the worker process.
    ///
    /// # Errors
    ///
    /// The OS refused a socket pair, or `i` is out of range.
    pub fn attach(&self, i: usize) -> io::Result<StdUnixStream> {
        let (ours, theirs) = StdUnixStream::pair()?;
        ours.set_nonblocking(true)?;
        let mut slots = self.slots();
        let slot = slots
            .get_mut(i)
            .ok_or_else(|| io::Error::new(ErrorKind::InvalidInput, "no such worker"))?;
        *slot = Some(Slot {
            channel: ours,
            open: 0,
            ready: false,
            gone: false,
        });
        Ok(theirs)
    }

    /// How many handed connections each worker has open (as last reported),
    /// `None` for a worker not attached, not ready yet, or gone.
    pub fn open_counts(&self) -> Vec<Option<usize>> {
        let mut slots = self.slots();
        slots
            .iter_mut()
            .map(|s| match s {
                Some(s) => {
                    s.read_reports();
                    (s.ready && !s.gone).then_some(s.open)
                }
                None => None,
            })
            .collect()
    }

    /// Accepts on `listener` and hands each connection over until `stop`
    /// completes; then drops the listener (which removes a Unix socket file
    /// it created).
    pub async fn run(self, listener: Listener, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => self.hand_over(&stream, &peer),
                    Err(e) => {
                        tracing::warn!(error = ?e, "accept failed");
                        tokio::select! {
                            _ = &mut stop => break,
                            _ = tokio::time::sleep(std::time::Duration::from_millis(100)) => {}
                        }
                    }
                },
            }
        }
        tracing::debug!("balancer stopped accepting");
    }

    /// Hands `stream` to the ready worker with the fewest open connections
    /// (any live worker if none is ready yet: it queues in its channel).
    /// Our copy of the socket closes when `stream` is dropped.
    fn hand_over(&self, stream: &Stream, peer: &PeerInfo) {
        let fd = match stream {
            Stream::Tcp(s) => s.as_fd(),
            Stream::Unix(s) => s.as_fd(),
            Stream::Tls(_) => return,
        };
        let mut slots = self.slots();
        for slot in slots.iter_mut().flatten() {
            slot.read_reports();
        }
        let n = slots.len().max(1);
        let turn = self.turn.load(Ordering::Relaxed) % n;
        loop {
            let best = slots
                .iter_mut()
                .enumerate()
                .filter_map(|(i, s)| s.as_mut().map(|s| (i, s)))
                .filter(|(_, s)| !s.gone)
                .min_by_key(|(i, s)| (!s.ready, s.open, (i + n - turn) % n));
            let Some((i, slot)) = best else {
                tracing::warn!(%peer, "no worker to hand the connection to; closing it");
                return;
            };
            match send_fd(&slot.channel, fd) {
                Ok(()) => {
                    slot.open += 1;
                    self.turn.store(i + 1, Ordering::Relaxed);
                    return;
                }
                Err(e) => {
                    // Its channel is full or closed: a worker that stopped
                    // taking connections gets no more until replaced.
                    tracing::warn!(%peer, error = %e, "a worker refused a connection");
                    slot.gone = true;
                }
            }
        }
    }
}

impl Slot {
    /// Reads what the worker reported since last time.
    fn read_reports(&mut self) {
        let mut buf = [0u8; 256];
        loop {
            match rustix::net::recv(&self.channel, &mut buf, RecvFlags::DONTWAIT) {
                Ok((0, _)) => {
                    self.gone = true;
                    return;
                }
                Ok((n, _)) => {
                    for b in &buf[..n] {
                        match *b {
                            READY => self.ready = true,
                            CLOSED => self.open = self.open.saturating_sub(1),
                            _ => {}
                        }
                    }
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(_) => return,
            }
        }
    }
}

/// Sends one connection's socket over `channel`, without waiting.
fn send_fd(channel: &StdUnixStream, fd: std::os::fd::BorrowedFd<'_>) -> io::Result<()> {
    let fds = [fd];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(io::Error::other("no room for the descriptor"));
    }
    let n = rustix::net::sendmsg(
        channel,
        &[IoSlice::new(&[CONNECTION])],
        &mut control,
        SendFlags::DONTWAIT | SendFlags::NOSIGNAL,
    )?;
    if n == 1 {
        Ok(())
    } else {
        Err(io::Error::new(ErrorKind::WriteZero, "nothing sent"))
    }
}

/// Writes one report byte on a worker's channel, without waiting.
fn report(channel: &StdUnixStream, byte: u8) -> io::Result<()> {
    rustix::net::send(channel, &[byte], SendFlags::DONTWAIT | SendFlags::NOSIGNAL)?;
    Ok(())
}

/// Receives one connection's socket from `channel`: `Ok(None)` when the
/// supervisor's end closed.
fn recv_fd(channel: &UnixStream) -> io::Result<Option<OwnedFd>> {
    let mut byte = [0u8; 1];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let got = rustix::net::recvmsg(
        channel,
        &mut [IoSliceMut::new(&mut byte)],
        &mut control,
        RecvFlags::DONTWAIT | RecvFlags::CMSG_CLOEXEC,
    )?;
    if got.bytes == 0 {
        return Ok(None);
    }
    let mut received = None;
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = message {
            for fd in fds {
                // One per message; any extra closes here.
                received.get_or_insert(fd);
            }
        }
    }
    received
        .map(Some)
        .ok_or_else(|| io::Error::new(ErrorKind::InvalidData, "a hand-off without a socket"))
}

/// A worker's end of a hand-off channel, inside a [`Listener`].
#[derive(Debug)]
pub(crate) struct Handoff {
    /// Received from, on the runtime.
    channel: UnixStream,
    /// The same socket, for the reports written from anywhere without
    /// waiting (not through the runtime's readiness).
    reports: Arc<StdUnixStream>,
    local: Address,
}

impl Handoff {
    /// Takes over the worker's end of a channel and tells the supervisor
    /// this worker is ready.
    pub(crate) fn new(channel: StdUnixStream, local: Address) -> Result<Handoff, TransportError> {
        let err = |source| TransportError::Bind {
            addr: format!("{local} (handed over)"),
            source,
        };
        channel.set_nonblocking(true).map_err(err)?;
        let reports = Arc::new(channel.try_clone().map_err(err)?);
        report(&reports, READY).map_err(err)?;
        let channel = UnixStream::from_std(channel).map_err(err)?;
        Ok(Handoff {
            channel,
            reports,
            local,
        })
    }

    pub(crate) fn local_address(&self) -> Address {
        self.local.clone()
    }

    /// Waits for the next connection handed over. Once the supervisor is
    /// gone this never returns (the worker is stopped another way).
    pub(crate) async fn accept(&self) -> Result<(Stream, PeerInfo), TransportError> {
        let fd = loop {
            match self
                .channel
                .async_io(Interest::READABLE, || recv_fd(&self.channel))
                .await
            {
                Ok(Some(fd)) => break fd,
                Ok(None) => {
                    tracing::debug!("the supervisor's end of the hand-off closed");
                    std::future::pending::<()>().await;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(TransportError::Accept(e)),
            }
        };
        match &self.local {
            Address::Tcp { .. } => {
                let s = std::net::TcpStream::from(fd);
                s.set_nonblocking(true).map_err(TransportError::Accept)?;
                let peer = s.peer_addr().map_err(TransportError::Accept)?;
                let s = tokio::net::TcpStream::from_std(s).map_err(TransportError::Accept)?;
                Ok((Stream::from_tcp(s), PeerInfo::Tcp(peer)))
            }
            Address::Unix(_) => {
                let s = StdUnixStream::from(fd);
                s.set_nonblocking(true).map_err(TransportError::Accept)?;
                let s = UnixStream::from_std(s).map_err(TransportError::Accept)?;
                Ok((Stream::Unix(s), PeerInfo::Unix))
            }
        }
    }

    /// A report to send when the connection just handed over closes.
    pub(crate) fn close_report(&self) -> CloseReport {
        CloseReport {
            channel: Some(Arc::clone(&self.reports)),
        }
    }
}

/// Tells the supervisor, when dropped, that a handed connection closed.
/// From [`Listener::close_report`](crate::Listener::close_report); does
/// nothing for a listener that binds its own socket.
#[derive(Debug, Default)]
pub struct CloseReport {
    channel: Option<Arc<StdUnixStream>>,
}

impl Drop for CloseReport {
    fn drop(&mut self) {
        if let Some(channel) = &self.channel {
            // Best effort: a supervisor that stopped reading has stopped.
            let _ = report(channel, CLOSED);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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

    async fn burst_splits_evenly(unix: bool) {
        let r = running(unix, 2).await;
        let workers = [r.worker(0), r.worker(1)];
        let mut clients = r.connect(8).await;
        let mut served = accept_n(&workers[0], 4).await;
        served.extend(accept_n(&workers[1], 4).await);
        assert_eq!(r.balancer.open_counts(), vec![Some(4), Some(4)]);
        // The handed sockets are the clients' own connections.
        for (i, c) in clients.iter_mut().enumerate() {
            c.write_all(&[i as u8]).await.unwrap();
        }
        let mut seen = Vec::new();
        for s in &mut served {
            let mut got = [0u8; 1];
            s.read_exact(&mut got).await.unwrap();
            seen.push(got[0]);
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..8).collect::<Vec<u8>>());
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
    async fn a_worker_not_ready_gets_nothing_while_another_is() {
        let r = running(false, 2).await;
        let ready = r.worker(0);
        // Worker 1 is attached but has not started serving.
        let _pending = r.balancer.attach(1).unwrap();
        let _clients = r.connect(3).await;
        let _a = accept_n(&ready, 3).await;
        assert_eq!(r.balancer.open_counts(), vec![Some(3), None]);
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
}
