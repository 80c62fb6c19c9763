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
    /// A TCP stream after a TLS handshake ([`ServerTls::accept`] or
    /// [`ClientTls::connect`]).
    ///
    /// [`ServerTls::accept`]: crate::ServerTls::accept
    /// [`ClientTls::connect`]: crate::ClientTls::connect
    Tls(Box<tokio_rustls::TlsStream<TcpStream>>),
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

    /// True for a TLS stream.
    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    /// Waits for the peer's first byte without consuming it and tells
    /// whether it starts a TLS handshake record (`0x16`), so a server can
    /// tell a TLS client from a plain one. False for a Unix socket (never
    /// TLS), a TLS stream (already past its handshake) and a peer that
    /// closed without sending anything.
    ///
    /// # Errors
    ///
    /// The socket's error.
    pub async fn starts_with_tls_handshake(&self) -> io::Result<bool> {
        match self {
            Stream::Tcp(s) => {
                let mut first = [0u8; 1];
                let n = s.peek(&mut first).await?;
                Ok(n == 1 && first[0] == crate::tls::TLS_HANDSHAKE_RECORD)
            }
            Stream::Unix(_) | Stream::Tls(_) => Ok(false),
        }
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
            Stream::Tls($s) => {
                let $s = Pin::new($s.as_mut());
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
