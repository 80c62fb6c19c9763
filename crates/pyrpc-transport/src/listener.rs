//! [`Listener`]: accepts connections on a TCP or Unix socket address.

use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::net::{TcpListener, UnixListener};

use crate::address::Address;
use crate::error::TransportError;
use crate::handoff::{CloseReport, Handoff};
use crate::stream::{PeerInfo, Stream};

/// Options for [`Listener::bind_with`].
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ListenerOptions {
    /// The permission bits of a Unix socket file, e.g. `0o600` so that only
    /// the owner can connect. The default value is `None`: the process umask
    /// decides.
    pub unix_mode: Option<u32>,
}

impl ListenerOptions {
    /// Sets [`ListenerOptions::unix_mode`].
    pub fn unix_mode(mut self, mode: u32) -> Self {
        self.unix_mode = Some(mode);
        self
    }
}

/// A bound TCP or Unix listener.
///
/// A Unix listener removes the socket file it created when it is dropped (if
/// the file at that path is still a socket).
#[derive(Debug)]
pub struct Listener {
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    Tcp(TcpListener),
    Unix {
        listener: UnixListener,
        path: PathBuf,
        /// (device, inode) of the socket file we created: on drop we remove
        /// the file at `path` only if it is still ours, never a socket another
        /// server has put there since. `None` for a listener taken over
        /// from elsewhere ([`Listener::from_std_unix`]): the file is not ours.
        id: Option<(u64, u64)>,
    },
    /// Connections accepted by a supervisor process and handed over
    /// (`handoff/`).
    Handoff(Handoff),
}

impl Listener {
    /// Binds `addr` with default options.
    ///
    /// # Errors
    ///
    /// See [`Listener::bind_with`].
    pub async fn bind(addr: &Address) -> Result<Listener, TransportError> {
        Self::bind_with(addr, &ListenerOptions::default()).await
    }

    /// Binds `addr`.
    ///
    /// For a Unix socket path where a file already exists: a socket that
    /// nobody listens on (left by a crashed server) is replaced; a socket
    /// someone listens on is [`TransportError::InUse`]; any other file is
    /// [`TransportError::NotASocket`] and is left alone.
    ///
    /// # Errors
    ///
    /// As above, and [`TransportError::Bind`] when the OS refuses.
    pub async fn bind_with(
        addr: &Address,
        options: &ListenerOptions,
    ) -> Result<Listener, TransportError> {
        let bind_err = |source| TransportError::Bind {
            addr: addr.to_string(),
            source,
        };
        let inner = match addr {
            Address::Tcp { host, port } => {
                let l = TcpListener::bind(Address::bind_target(host, *port))
                    .await
                    .map_err(bind_err)?;
                Inner::Tcp(l)
            }
            Address::Unix(path) => {
                clear_stale_socket(path).await?;
                let listener = match options.unix_mode {
                    None => UnixListener::bind(path).map_err(bind_err)?,
                    Some(mode) => bind_with_mode(path, mode).map_err(bind_err)?,
                };
                let meta = std::fs::symlink_metadata(path).map_err(bind_err)?;
                Inner::Unix {
                    listener,
                    path: path.clone(),
                    id: Some((meta.dev(), meta.ino())),
                }
            }
        };
        tracing::debug!(%addr, "listening");
        Ok(Listener { inner })
    }

    /// Takes over a listening TCP socket made elsewhere (e.g. inherited from
    /// a parent process that shares it among worker processes). Must be
    /// called inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// [`TransportError::Bind`] when the socket cannot be registered with
    /// the runtime.
    pub fn from_std_tcp(listener: std::net::TcpListener) -> Result<Listener, TransportError> {
        let err = |source| TransportError::Bind {
            addr: "inherited tcp listener".into(),
            source,
        };
        listener.set_nonblocking(true).map_err(err)?;
        let l = TcpListener::from_std(listener).map_err(err)?;
        Ok(Listener {
            inner: Inner::Tcp(l),
        })
    }

    /// Takes over a listening Unix socket made elsewhere. Its socket file
    /// belongs to whoever bound it: it is not removed when this listener is
    /// dropped. Must be called inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// [`TransportError::Bind`] when the socket has no path or cannot be
    /// registered with the runtime.
    pub fn from_std_unix(
        listener: std::os::unix::net::UnixListener,
    ) -> Result<Listener, TransportError> {
        let err = |source| TransportError::Bind {
            addr: "inherited unix listener".into(),
            source,
        };
        let path = listener
            .local_addr()
            .map_err(err)?
            .as_pathname()
            .map(Path::to_path_buf)
            .ok_or_else(|| err(std::io::Error::other("an unnamed unix socket")))?;
        listener.set_nonblocking(true).map_err(err)?;
        let listener = UnixListener::from_std(listener).map_err(err)?;
        Ok(Listener {
            inner: Inner::Unix {
                listener,
                path,
                id: None,
            },
        })
    }

    /// A listener of connections that a supervisor process accepts at
    /// `local` and hands over through `channel` (the end of a channel made
    /// by [`Balancer::attach`](crate::Balancer::attach)); tells the
    /// supervisor at once that this worker is ready. Must be called inside
    /// a tokio runtime. See [`Balancer`](crate::Balancer) for an example.
    ///
    /// # Errors
    ///
    /// [`TransportError::Bind`] when the channel cannot be registered with
    /// the runtime or is already closed.
    pub fn from_handoff(
        channel: std::os::unix::net::UnixStream,
        local: Address,
    ) -> Result<Listener, TransportError> {
        Ok(Listener {
            inner: Inner::Handoff(Handoff::new(channel, local)?),
        })
    }

    /// What to drop when the connection [`accept`](Listener::accept) just
    /// returned closes: for a listener fed by a supervisor
    /// ([`Listener::from_handoff`]) it reports the close, so the supervisor
    /// counts the worker's open connections; otherwise it does nothing.
    pub fn close_report(&self) -> CloseReport {
        match &self.inner {
            Inner::Handoff(h) => h.close_report(),
            _ => CloseReport::default(),
        }
    }

    /// Waits for the next connection.
    ///
    /// # Errors
    ///
    /// [`TransportError::Accept`] when the OS reports an error (e.g. out of
    /// file descriptors); the listener stays usable.
    pub async fn accept(&self) -> Result<(Stream, PeerInfo), TransportError> {
        match &self.inner {
            Inner::Tcp(l) => {
                let (s, peer) = l.accept().await.map_err(TransportError::Accept)?;
                Ok((Stream::from_tcp(s), PeerInfo::Tcp(peer)))
            }
            Inner::Unix { listener, .. } => {
                let (s, _) = listener.accept().await.map_err(TransportError::Accept)?;
                Ok((Stream::Unix(s), PeerInfo::Unix))
            }
            Inner::Handoff(h) => h.accept().await,
        }
    }

    /// The address actually bound (with the port the OS chose for port 0).
    ///
    /// # Errors
    ///
    /// [`TransportError::Bind`] if the OS cannot say.
    pub fn local_address(&self) -> Result<Address, TransportError> {
        match &self.inner {
            Inner::Tcp(l) => {
                let a = l.local_addr().map_err(|source| TransportError::Bind {
                    addr: "tcp listener".into(),
                    source,
                })?;
                Ok(Address::tcp(a.ip().to_string(), a.port()))
            }
            Inner::Unix { path, .. } => Ok(Address::Unix(path.clone())),
            Inner::Handoff(h) => Ok(h.local_address()),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Inner::Unix {
            path, id: Some(id), ..
        } = &self.inner
        {
            let ours = std::fs::symlink_metadata(path)
                .map(|m| m.file_type().is_socket() && (m.dev(), m.ino()) == *id)
                .unwrap_or(false);
            if ours {
                let _ = std::fs::remove_file(path);
                tracing::debug!(path = %path.display(), "removed socket file");
            }
        }
    }
}

/// Binds a Unix socket that has permission bits `mode` from the moment it
/// appears at `path`: it is bound inside a fresh directory only we can enter,
/// given its mode there, then hard-linked into place (which, unlike a rename,
/// fails rather than replace a file that appeared at `path` meanwhile).
fn bind_with_mode(path: &Path, mode: u32) -> std::io::Result<UnixListener> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let private = parent.join(format!(".pyrpc-{}-{n}", std::process::id()));
    std::fs::DirBuilder::new().mode(0o700).create(&private)?;
    let staged = private.join("s");
    let result = (|| {
        let listener = UnixListener::bind(&staged)?;
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(mode))?;
        std::fs::hard_link(&staged, path)?;
        Ok(listener)
    })();
    let _ = std::fs::remove_file(&staged);
    let _ = std::fs::remove_dir(&private);
    result
}

#[cfg(test)]
fn is_socket(path: &Path) -> bool {
    std::fs::symlink_metadata(path)
        .map(|m| m.file_type().is_socket())
        .unwrap_or(false)
}

/// Removes a socket file at `path` that nobody listens on; refuses anything else.
async fn clear_stale_socket(path: &Path) -> Result<(), TransportError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(TransportError::Bind {
                addr: path.display().to_string(),
                source,
            })
        }
    };
    if !meta.file_type().is_socket() {
        return Err(TransportError::NotASocket {
            path: path.to_owned(),
        });
    }
    match tokio::net::UnixStream::connect(path).await {
        Ok(_) => Err(TransportError::InUse {
            path: path.to_owned(),
        }),
        Err(_) => {
            tracing::info!(path = %path.display(), "replacing stale socket file");
            std::fs::remove_file(path).map_err(|source| TransportError::Bind {
                addr: path.display().to_string(),
                source,
            })
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

    async fn ping_pong(listener: &Listener) {
        let addr = listener.local_address().unwrap();
        let mut c = connect(&addr, T).await.unwrap();
        let (mut s, _) = listener.accept().await.unwrap();
        c.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
    }

    #[tokio::test]
    async fn tcp_listener_accepts_on_port_zero() {
        let l = Listener::bind(&Address::tcp("127.0.0.1", 0)).await.unwrap();
        match l.local_address().unwrap() {
            Address::Tcp { port, .. } => assert_ne!(port, 0),
            other => panic!("{other}"),
        }
        ping_pong(&l).await;
    }

    #[tokio::test]
    async fn unix_listener_removes_its_file_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let l = Listener::bind(&Address::unix(&path)).await.unwrap();
        ping_pong(&l).await;
        assert!(is_socket(&path));
        drop(l);
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn unix_stale_socket_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        // A socket file nobody listens on: bind with std and forget the listener.
        let stale = std::os::unix::net::UnixListener::bind(&path).unwrap();
        drop(stale);
        assert!(is_socket(&path));
        let l = Listener::bind(&Address::unix(&path)).await.unwrap();
        ping_pong(&l).await;
    }

    #[tokio::test]
    async fn unix_live_socket_is_not_stolen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let first = Listener::bind(&Address::unix(&path)).await.unwrap();
        let err = Listener::bind(&Address::unix(&path)).await.unwrap_err();
        assert!(matches!(err, TransportError::InUse { .. }), "{err}");
        // The probe that found it alive was a connection; the first server sees it close.
        let (mut probe, _) = first.accept().await.unwrap();
        let mut b = [0u8; 1];
        assert_eq!(probe.read(&mut b).await.unwrap(), 0);
        ping_pong(&first).await;
    }

    #[tokio::test]
    async fn unix_regular_file_is_never_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("important.txt");
        std::fs::write(&path, b"keep me").unwrap();
        let err = Listener::bind(&Address::unix(&path)).await.unwrap_err();
        assert!(matches!(err, TransportError::NotASocket { .. }), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"keep me");
    }

    #[tokio::test]
    async fn drop_leaves_a_socket_that_replaced_ours() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let first = Listener::bind(&Address::unix(&path)).await.unwrap();
        // Someone removes our file and a second server binds the same path.
        std::fs::remove_file(&path).unwrap();
        let second = Listener::bind(&Address::unix(&path)).await.unwrap();
        drop(first);
        assert!(
            is_socket(&path),
            "the first listener removed the second's socket"
        );
        ping_pong(&second).await;
        drop(second);
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn unix_mode_leaves_no_staging_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let l = Listener::bind_with(
            &Address::unix(&path),
            &ListenerOptions::default().unix_mode(0o660),
        )
        .await
        .unwrap();
        let entries: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(entries, vec![std::ffi::OsString::from("s.sock")]);
        ping_pong(&l).await;
        // A file that appears at the path is never replaced.
        drop(l);
        std::fs::write(&path, b"data").unwrap();
        let err = Listener::bind_with(
            &Address::unix(&path),
            &ListenerOptions::default().unix_mode(0o600),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, TransportError::NotASocket { .. }), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"data");
    }

    #[tokio::test]
    async fn unix_mode_is_applied() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let _l = Listener::bind_with(
            &Address::unix(&path),
            &ListenerOptions::default().unix_mode(0o600),
        )
        .await
        .unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[tokio::test]
    async fn connect_to_nothing_is_a_connect_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = connect(&Address::unix(dir.path().join("none")), T)
            .await
            .unwrap_err();
        assert!(matches!(err, TransportError::Connect { .. }), "{err}");
        // A port that was just free: bind, read the port, drop.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let err = connect(&Address::tcp("127.0.0.1", port), T)
            .await
            .unwrap_err();
        assert!(matches!(err, TransportError::Connect { .. }), "{err}");
    }

    #[tokio::test]
    async fn empty_host_listens_everywhere_and_connects_locally() {
        let l = Listener::bind(&Address::tcp("", 0)).await.unwrap();
        let Address::Tcp { port, .. } = l.local_address().unwrap() else {
            panic!("tcp expected")
        };
        let mut c = connect(&Address::tcp("", port), T).await.unwrap();
        let (mut s, peer) = l.accept().await.unwrap();
        assert!(matches!(peer, PeerInfo::Tcp(a) if a.ip().is_loopback()));
        c.write_all(b"x").await.unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await.unwrap();
    }
}
