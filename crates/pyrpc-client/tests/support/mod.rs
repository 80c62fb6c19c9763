//! A scripted fake pyrpc server for the client's tests: real sockets (TCP on
//! 127.0.0.1:0 or a Unix socket in a temporary directory) or in-memory pipes
//! (`tokio::io::duplex`, through the client's `Connector` seam, so that a
//! test can run on a paused clock), frames decoded with the real codec, and a
//! per-connection script written by each test.

#![allow(dead_code)]

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use pyrpc_client::{Client, ClientConfig};
use pyrpc_framing::Codec;
use pyrpc_proto::wire::{
    self, client_frame, request, response, server_frame, ClientFrame, ServerFrame,
};
use pyrpc_proto::{RemoteError, Value};
use pyrpc_transport::{Address, Listener};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::codec::Framed;

/// How long a test waits for something that must happen soon.
pub(crate) const SOON: Duration = Duration::from_secs(5);

/// Which kind of socket the fake server listens on.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Net {
    Tcp,
    Unix,
    /// In-memory pipes of this many bytes each way; the client must be
    /// made with [`FakeServer::client`].
    Memory(usize),
}

/// The in-memory pipe size for tests that do not care.
pub(crate) const PIPE: Net = Net::Memory(64 * 1024);

/// Any stream a script's peer talks over.
pub(crate) trait Io: AsyncRead + AsyncWrite + Send + Unpin {}

impl<S: AsyncRead + AsyncWrite + Send + Unpin> Io for S {}

/// A running fake server; stops when dropped.
pub(crate) struct FakeServer {
    pub(crate) addr: Address,
    /// How many connections were accepted so far.
    pub(crate) accepted: Arc<AtomicUsize>,
    /// For [`Net::Memory`]: hands the server's end of each new pipe to the
    /// accept loop.
    pipes: Option<(usize, mpsc::UnboundedSender<tokio::io::DuplexStream>)>,
    task: JoinHandle<()>,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeServer {
    /// Starts a server running `script` on each accepted connection; the
    /// script gets a [`Peer`] knowing its connection's index (0, 1, ...).
    pub(crate) async fn start<F, Fut>(net: Net, script: F) -> FakeServer
    where
        F: Fn(Peer) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        let script = Arc::new(script);
        let run = move |io: Box<dyn Io>| {
            let conn = counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(script(Peer::new(conn, io)));
        };
        if let Net::Memory(size) = net {
            let (tx, mut rx) = mpsc::unbounded_channel::<tokio::io::DuplexStream>();
            let task = tokio::spawn(async move {
                while let Some(io) = rx.recv().await {
                    run(Box::new(io));
                }
            });
            return FakeServer {
                addr: Address::unix("memory"),
                accepted,
                pipes: Some((size, tx)),
                task,
                _dir: None,
            };
        }
        let (bind, dir) = match net {
            Net::Tcp => (Address::tcp("127.0.0.1", 0), None),
            Net::Unix | Net::Memory(_) => {
                let dir = tempfile::tempdir().expect("tempdir");
                (Address::unix(dir.path().join("fake.sock")), Some(dir))
            }
        };
        let listener = Listener::bind(&bind).await.expect("bind");
        let addr = listener.local_address().expect("local address");
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                run(Box::new(stream));
            }
        });
        FakeServer {
            addr,
            accepted,
            pipes: None,
            task,
            _dir: dir,
        }
    }

    /// A client of this server: over a socket, or over in-memory pipes for
    /// [`Net::Memory`].
    pub(crate) fn client(&self, config: ClientConfig) -> Client {
        let Some((size, tx)) = self.pipes.clone() else {
            return Client::with_config(self.addr.clone(), config);
        };
        let connector = move || {
            let (ours, theirs) = tokio::io::duplex(size);
            let sent = tx.send(theirs);
            async move {
                sent.map_err(|_| std::io::Error::from(std::io::ErrorKind::ConnectionRefused))?;
                Ok(ours)
            }
        };
        Client::with_connector(self.addr.clone(), config, connector)
    }

    pub(crate) fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// The server's side of one connection.
pub(crate) struct Peer {
    /// The connection's index, in accept order.
    pub(crate) conn: usize,
    framed: Framed<Box<dyn Io>, Codec<ClientFrame, ServerFrame>>,
}

impl Peer {
    fn new(conn: usize, stream: Box<dyn Io>) -> Peer {
        Peer {
            conn,
            framed: Framed::new(stream, Codec::new()),
        }
    }

    /// Reads the client's hello.
    pub(crate) async fn read_hello(&mut self) -> wire::ClientHello {
        match self.framed.next().await {
            Some(Ok(ClientFrame {
                kind: Some(client_frame::Kind::Hello(h)),
            })) => h,
            other => panic!("expected a client hello, got {other:?}"),
        }
    }

    /// Sends a server hello.
    pub(crate) async fn send_hello(&mut self, hello: wire::ServerHello) {
        let frame = ServerFrame {
            kind: Some(server_frame::Kind::Hello(hello)),
        };
        self.framed.send(frame).await.expect("send hello");
    }

    /// Reads the client's hello and answers with [`server_hello`].
    pub(crate) async fn hello(&mut self) -> wire::ClientHello {
        let h = self.read_hello().await;
        self.send_hello(server_hello()).await;
        h
    }

    /// The next request, or `None` when the client closed the connection.
    pub(crate) async fn recv(&mut self) -> Option<wire::Request> {
        match self.framed.next().await {
            Some(Ok(ClientFrame {
                kind: Some(client_frame::Kind::Request(r)),
            })) => Some(r),
            Some(Ok(other)) => panic!("expected a request, got {other:?}"),
            Some(Err(_)) | None => None,
        }
    }

    /// The next request, which must come.
    pub(crate) async fn expect(&mut self) -> wire::Request {
        self.recv().await.expect("the client sent a request")
    }

    /// Sends any frame (a stream item, say).
    pub(crate) async fn send(&mut self, frame: ServerFrame) {
        let _ = self.framed.send(frame).await;
    }

    /// The next frame of any kind, or `None` when the client closed.
    pub(crate) async fn next_frame(&mut self) -> Option<ClientFrame> {
        self.framed.next().await.and_then(Result::ok)
    }

    /// Answers request `id`.
    pub(crate) async fn reply(&mut self, id: u64, kind: response::Kind) {
        let frame = ServerFrame {
            kind: Some(server_frame::Kind::Response(wire::Response {
                id,
                kind: Some(kind),
            })),
        };
        // The client may be gone already; scripts do not care.
        let _ = self.framed.send(frame).await;
    }

    /// Answers every request like a plain echo server until the client
    /// closes: a call returns its positional args as a tuple, ping and
    /// shutdown are acked.
    pub(crate) async fn echo_until_closed(&mut self) {
        while let Some(req) = self.recv().await {
            let answer = match req.kind {
                Some(request::Kind::Call(c)) => echo_value(c),
                Some(request::Kind::Ping(_)) | Some(request::Kind::Shutdown(_)) => ack(),
                _ => error(RemoteError::new(
                    pyrpc_proto::ErrorKind::NotNonblocking,
                    "no",
                )),
            };
            self.reply(req.id, answer).await;
        }
    }
}

/// The capabilities the fake server announces.
pub(crate) fn capabilities() -> wire::Capabilities {
    wire::Capabilities {
        nonblocking: true,
        max_frame_len: 1 << 20,
        max_value_depth: 32,
        pickle: false,
        max_in_flight_per_connection: 16,
    }
}

/// The hello the fake server answers with.
pub(crate) fn server_hello() -> wire::ServerHello {
    wire::ServerHello {
        protocol_version: 1,
        peer_name: "fake-server/1".into(),
        capabilities: Some(capabilities()),
        error: None,
        ..Default::default()
    }
}

/// A script that answers the hello and then echoes.
pub(crate) async fn echo_script(mut peer: Peer) {
    peer.hello().await;
    peer.echo_until_closed().await;
}

pub(crate) fn ack() -> response::Kind {
    response::Kind::Ack(wire::Ack {})
}

pub(crate) fn pending() -> response::Kind {
    response::Kind::Pending(wire::Pending {})
}

pub(crate) fn value(v: impl Into<Value>) -> response::Kind {
    response::Kind::Value(v.into().into())
}

pub(crate) fn error(e: RemoteError) -> response::Kind {
    response::Kind::Error(e.into())
}

/// A call's positional args, as a tuple value.
pub(crate) fn echo_value(c: wire::Call) -> response::Kind {
    let args = c
        .args
        .into_iter()
        .map(|v| Value::try_from(v).expect("valid value"))
        .collect::<Vec<_>>();
    value(Value::Tuple(args))
}

/// The call of a request that must be a call.
pub(crate) fn call_of(req: &wire::Request) -> &wire::Call {
    match &req.kind {
        Some(request::Kind::Call(c)) => c,
        other => panic!("expected a call, got {other:?}"),
    }
}

/// A channel for scripts to report what they saw to the test.
pub(crate) fn report<T>() -> (mpsc::UnboundedSender<T>, mpsc::UnboundedReceiver<T>) {
    mpsc::unbounded_channel()
}

/// The next report, which must come soon.
pub(crate) async fn next<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(SOON, rx.recv())
        .await
        .expect("a report in time")
        .expect("the script is still running")
}
