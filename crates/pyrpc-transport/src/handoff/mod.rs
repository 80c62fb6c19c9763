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

use std::io::{self, ErrorKind, IoSlice};
use std::mem::MaybeUninit;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rustix::net::{RecvFlags, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};

use crate::listener::Listener;
use crate::stream::{PeerInfo, Stream};

mod worker;

pub use worker::CloseReport;
pub(crate) use worker::Handoff;

/// The byte a worker sends once its listener takes connections.
pub const READY: u8 = b'r';
/// The byte a worker sends each time a handed connection closes.
pub const CLOSED: u8 = b'c';
/// The byte each handed connection travels with.
const CONNECTION: u8 = b'C';

/// A supervisor's side of the hand-off: accepts on one listener and hands
/// each connection to the worker (a channel made by [`Balancer::attach`])
/// with the fewest open connections (ties in turn). Cloning gives another
/// handle to the same balancer.
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

    /// Hands `stream` to the live worker with the fewest open connections,
    /// ready or still starting (then it waits in the channel until the
    /// worker serves: a burst made while one worker starts still splits
    /// evenly, and keeps to its workers for the connections' lifetime).
    /// Our copy of the socket closes when `stream` is dropped.
    fn hand_over(&self, stream: &Stream, peer: &PeerInfo) {
        let fd = match stream {
            Stream::Tcp(s) => s.as_fd(),
            Stream::Unix(s) => s.as_fd(),
            Stream::Tls(_) => return,
        };
        // Logged once the lock is let go: a log line may wait for another
        // lock (Python's GIL, in a Python server) whose holder may be
        // waiting for this one (`attach`).
        let (outcome, skipped) = self.choose_and_send(fd);
        for (worker, e) in skipped {
            if e.kind() == ErrorKind::WouldBlock {
                tracing::debug!(%peer, worker, "a worker's channel is full; trying another");
            } else {
                tracing::warn!(%peer, worker, error = %e, "a worker refused a connection");
            }
        }
        if outcome.is_none() {
            tracing::warn!(%peer, "no worker to hand the connection to; closing it");
        }
    }

    /// Under the lock: sends `fd` to the best worker that takes it. Returns
    /// the worker that did (`None`: none could) and the workers that
    /// refused it, with why.
    fn choose_and_send(
        &self,
        fd: std::os::fd::BorrowedFd<'_>,
    ) -> (Option<usize>, Vec<(usize, io::Error)>) {
        let mut slots = self.slots();
        for slot in slots.iter_mut().flatten() {
            slot.read_reports();
        }
        let n = slots.len().max(1);
        let turn = self.turn.load(Ordering::Relaxed) % n;
        // Workers whose channel is full for now (a worker not reading yet):
        // skipped for this connection only.
        let mut full = vec![false; slots.len()];
        let mut skipped = Vec::new();
        loop {
            let best = slots
                .iter_mut()
                .enumerate()
                .filter_map(|(i, s)| s.as_mut().map(|s| (i, s)))
                .filter(|(i, s)| !s.gone && !full[*i])
                .min_by_key(|(i, s)| (s.open, (i + n - turn) % n));
            let Some((i, slot)) = best else {
                return (None, skipped);
            };
            match send_fd(&slot.channel, fd) {
                Ok(()) => {
                    slot.open += 1;
                    self.turn.store(i + 1, Ordering::Relaxed);
                    return (Some(i), skipped);
                }
                Err(e) => {
                    if e.kind() == ErrorKind::WouldBlock {
                        full[i] = true;
                    } else {
                        // Its channel is closed: a worker that exited gets
                        // no more until replaced.
                        slot.gone = true;
                    }
                    skipped.push((i, e));
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

#[cfg(test)]
mod tests;
