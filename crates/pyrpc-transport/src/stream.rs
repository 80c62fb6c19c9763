//! [`Stream`]: one stream type over TCP and Unix sockets, and [`PeerInfo`].

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

/// A connected TCP or Unix stream.
#[derive(Debug)]
pub enum Stream {
    /// A TCP stream (with `TCP_NODELAY` set: pyrpc frames are small and latency matters).
    Tcp(TcpStream),
    /// A Unix stream socket.
    Unix(UnixStream),
}

/// Who is on the other end of a connection, for logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerInfo {
    /// A TCP peer's address.
    Tcp(SocketAddr),
    /// A Unix socket peer (usually unnamed).
    Unix,
}

impl fmt::Display for PeerInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerInfo::Tcp(a) => write!(f, "{a}"),
            PeerInfo::Unix => f.write_str("unix peer"),
        }
    }
}

impl Stream {
    /// Wraps a TCP stream, turning off Nagle's algorithm.
    pub fn from_tcp(s: TcpStream) -> Self {
        // Best effort: a socket that refuses the option still works, only slower.
        let _ = s.set_nodelay(true);
        Stream::Tcp(s)
    }
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Stream::Tcp($s) => {
                let $s = Pin::new($s);
                $e
            }
            Stream::Unix($s) => {
                let $s = Pin::new($s);
                $e
            }
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => s.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_shutdown(cx))
    }
}
