//! The worker's side of the hand-off: the channel inside a
//! [`Listener`](crate::Listener) made by `Listener::from_handoff`, and the
//! reports it writes back.

use std::io::{self, ErrorKind, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::sync::Arc;

use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendFlags};
use tokio::io::Interest;
use tokio::net::UnixStream;

use super::{CLOSED, READY};
use crate::address::Address;
use crate::error::TransportError;
use crate::stream::{PeerInfo, Stream};

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
