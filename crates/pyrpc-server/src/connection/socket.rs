//! [`PlainSocket`]: a plain TCP or Unix connection whose registration with
//! the runtime's poller can be dropped while a worker thread waits on the
//! socket itself (`linger.rs`), so that the next request wakes that thread
//! and not the runtime's too.
//!
//! Reads are registered for readability only: registering for writability
//! too would wake the runtime whenever the peer drains a reply (a Unix
//! socket signals room on every read). A write that finds the socket full
//! registers a second descriptor (a `dup` of the socket) for writability
//! until the socket takes bytes again.

use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{ready, Context, Poll};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::runtime::Handle;

/// A plain socket shared by the connection's read and write halves and its
/// [`Linger`](super::Linger).
#[derive(Clone)]
pub(crate) struct PlainSocket {
    inner: Arc<Inner>,
}

struct Inner {
    /// Dropped before `fd` (fields drop in order): deregistered, then
    /// closed.
    read: Mutex<Option<AsyncFd<RawFd>>>,
    write: Mutex<Option<AsyncFd<OwnedFd>>>,
    fd: OwnedFd,
    handle: Handle,
}

impl PlainSocket {
    /// Takes over a connected socket (non-blocking) on the current runtime.
    pub(crate) fn new(fd: OwnedFd) -> Self {
        PlainSocket {
            inner: Arc::new(Inner {
                read: Mutex::new(None),
                write: Mutex::new(None),
                fd,
                handle: Handle::current(),
            }),
        }
    }

    /// A handle that does not keep the socket open.
    pub(crate) fn downgrade(&self) -> WeakSocket {
        WeakSocket(Arc::downgrade(&self.inner))
    }

    /// The socket's descriptor, open as long as this.
    pub(crate) fn fd(&self) -> RawFd {
        self.inner.fd.as_raw_fd()
    }

    /// Enters the socket's runtime (for registering it, or a reader's
    /// timer, from a thread outside it).
    pub(crate) fn enter(&self) -> tokio::runtime::EnterGuard<'_> {
        self.inner.handle.enter()
    }

    /// The socket's reads are registered with the runtime.
    #[cfg(test)]
    pub(crate) fn reads_registered(&self) -> bool {
        lock(&self.inner.read).is_some()
    }

    /// Drops the read registration: data that arrives no longer wakes the
    /// runtime (nor the reader task) until the next read registers again.
    pub(crate) fn unregister_reads(&self) {
        let reg = lock(&self.inner.read).take();
        if let Some(reg) = reg {
            let _entered = self.inner.handle.enter();
            drop(reg);
        }
    }
}

/// A [`PlainSocket`] that does not keep it open.
pub(crate) struct WeakSocket(std::sync::Weak<Inner>);

impl WeakSocket {
    pub(crate) fn upgrade(&self) -> Option<PlainSocket> {
        self.0.upgrade().map(|inner| PlainSocket { inner })
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Inner {
    fn registered<T: AsRawFd>(
        &self,
        slot: &mut Option<AsyncFd<T>>,
        make: impl FnOnce() -> io::Result<T>,
        interest: Interest,
    ) -> io::Result<()> {
        if slot.is_none() {
            let _entered = self.handle.enter();
            // SAFETY: the descriptor is `self.fd` (or a `dup` of it the
            // `AsyncFd` owns); `self.fd` is closed only after the
            // registrations are dropped (`Inner`'s field order).
            #[allow(unsafe_code)]
            let reg = unsafe { AsyncFd::register_with_interest(make()?, interest) };
            *slot = Some(reg.map_err(|e| e.into_parts().1)?);
        }
        Ok(())
    }
}

impl AsyncRead for PlainSocket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let inner = &self.inner;
        let fd = inner.fd.as_raw_fd();
        let mut slot = lock(&inner.read);
        inner.registered(&mut slot, || Ok(fd), Interest::READABLE)?;
        let Some(reg) = slot.as_ref() else {
            return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
        };
        loop {
            let mut guard = ready!(reg.poll_read_ready(cx))?;
            // SAFETY: `recv` writes at most the length it is given and
            // returns how many bytes it wrote.
            #[allow(unsafe_code)]
            let unfilled = unsafe { buf.unfilled_mut() };
            match guard.try_io(|_| sys::recv(fd, unfilled)) {
                Ok(Ok(n)) => {
                    // SAFETY: `recv` initialised `n` bytes of `unfilled`.
                    #[allow(unsafe_code)]
                    unsafe {
                        buf.assume_init(n);
                    }
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for PlainSocket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let inner = &self.inner;
        let fd = inner.fd.as_raw_fd();
        let mut slot = lock(&inner.write);
        if slot.is_none() {
            // Unregistered: the socket had room last time; try at once.
            match sys::send(fd, bufs) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                r => return Poll::Ready(r),
            }
            inner.registered(&mut slot, || inner.fd.try_clone(), Interest::WRITABLE)?;
        }
        let Some(reg) = slot.as_ref() else {
            return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
        };
        let sent = loop {
            let mut guard = ready!(reg.poll_write_ready(cx))?;
            match guard.try_io(|_| sys::send(fd, bufs)) {
                Ok(r) => break r,
                Err(_would_block) => continue,
            }
        };
        if sent.is_ok() {
            // The socket took bytes: unregistered again, so that the peer's
            // reads do not wake the runtime; the next full socket registers.
            let _entered = inner.handle.enter();
            drop(slot.take());
        }
        Poll::Ready(sent)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(sys::shutdown_write(self.inner.fd.as_raw_fd()))
    }
}

/// The system calls on a plain socket.
#[allow(unsafe_code)]
pub(super) mod sys {
    use std::io::{self, IoSlice};
    use std::mem::MaybeUninit;
    use std::os::fd::RawFd;
    use std::time::Duration;

    /// Waits until `fd` is readable (or closed), for at most `max`; false
    /// when the time ran out.
    pub(crate) fn wait_readable(fd: RawFd, max: Duration) -> io::Result<bool> {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN | libc::POLLRDHUP,
            revents: 0,
        };
        let ms = max.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
        // SAFETY: one valid `pollfd`, whose fd the caller keeps open.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n > 0)
    }

    /// One non-blocking `recv` into `dst`.
    pub(crate) fn recv(fd: RawFd, dst: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
        // SAFETY: `dst` is valid for writes of its length; `recv` writes at
        // most that many bytes; the caller keeps `fd` open.
        let n = unsafe { libc::recv(fd, dst.as_mut_ptr().cast(), dst.len(), libc::MSG_DONTWAIT) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// One non-blocking vectored `sendmsg` (no `SIGPIPE`).
    pub(crate) fn send(fd: RawFd, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let n = bufs.len().min(1024);
        // SAFETY: `IoSlice` is ABI-compatible with `iovec` on Unix; the
        // message only points at `bufs`, which outlives the call.
        let sent = unsafe {
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
            msg.msg_iovlen = n as _;
            libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(sent as usize)
    }

    /// Shuts the socket's sending side down.
    pub(crate) fn shutdown_write(fd: RawFd) -> io::Result<()> {
        // SAFETY: a plain call on a descriptor the caller keeps open.
        let r = unsafe { libc::shutdown(fd, libc::SHUT_WR) };
        if r < 0 {
            let e = io::Error::last_os_error();
            // Already gone: nothing left to shut.
            if e.raw_os_error() == Some(libc::ENOTCONN) {
                return Ok(());
            }
            return Err(e);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Reads and writes on a real socket pair, across a dropped read
    /// registration: data that came while unregistered is read once the
    /// next read registers again, and a full socket's write waits for room.
    #[tokio::test]
    async fn reads_and_writes_across_a_dropped_registration() {
        let (ours, mut peer) = std::os::unix::net::UnixStream::pair().expect("pair");
        ours.set_nonblocking(true).expect("nonblocking");
        let mut sock = PlainSocket::new(OwnedFd::from(ours));
        peer.write_all(b"one").expect("peer writes");
        let mut buf = [0u8; 16];
        let n = sock.read(&mut buf).await.expect("reads");
        assert_eq!(&buf[..n], b"one");

        sock.unregister_reads();
        peer.write_all(b"two").expect("peer writes");
        assert!(sys::wait_readable(sock.fd(), Duration::from_secs(5)).expect("polls"));
        let n = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf))
            .await
            .expect("registered again, the waiting bytes are seen")
            .expect("reads");
        assert_eq!(&buf[..n], b"two");

        // Fill the socket, then let the peer drain it while we write.
        let big = vec![7u8; 4 << 20];
        let drain = std::thread::spawn(move || {
            let mut got = 0;
            let mut chunk = vec![0u8; 1 << 16];
            while got < 4 << 20 {
                got += peer.read(&mut chunk).expect("peer reads");
            }
            got
        });
        tokio::time::timeout(Duration::from_secs(20), sock.write_all(&big))
            .await
            .expect("the write waits for room and finishes")
            .expect("writes");
        assert_eq!(drain.join().expect("drain"), 4 << 20);
        sock.shutdown().await.expect("shuts down");
    }
}
