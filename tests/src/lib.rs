//! Helpers for pyrpc's cross-crate tests: servers on real sockets, a test
//! service, a loopback proxy that cuts connections, and a raw protocol peer.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

pub mod certs;
pub mod process;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use pyrpc_framing::Codec;
use pyrpc_proto::{wire, Args, RemoteError, Value};
use pyrpc_server::{Methods, Server, ServerBuilder, ServerHandle};
use pyrpc_transport::{connect, Address, Stream};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::codec::Framed;

/// Which transport a test runs over.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Tcp,
    Unix,
}

/// Both transports, for tests that run over each.
pub const KINDS: [Kind; 2] = [Kind::Tcp, Kind::Unix];

/// Installs a tracing subscriber once (RUST_LOG picks the level).
pub fn trace_init() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A running server and what keeps its socket path alive.
pub struct TestServer {
    pub handle: ServerHandle,
    pub addr: Address,
    pub service: Arc<Service>,
    _dir: Option<tempfile::TempDir>,
}

impl TestServer {
    /// Shuts the server down and waits for it.
    pub async fn stop(self) {
        self.handle.shutdown();
        self.handle.wait().await;
    }
}

/// Counters and gates the test service shares with the test.
#[derive(Default)]
pub struct Service {
    /// How many times `count` ran.
    pub counted: AtomicUsize,
    /// Signalled when `gated` starts.
    pub gate_entered: Notify,
    /// `gated` waits for this before returning.
    pub gate_open: Notify,
}

/// The test service: `echo`, `sleep(s)`, `raise_(type, *args)`, `big(n)`,
/// `count()`, `gated()`, `add(a, b)`.
pub fn methods(service: Arc<Service>) -> Methods {
    let s1 = service.clone();
    let s2 = service;
    Methods::new()
        .add("echo", |args: Args| {
            let (a, k) = args.into_values();
            Ok(Value::tuple([a, k]))
        })
        .add("add", |args: Args| {
            args.expect_exactly("add", 2)?;
            match (args.args[0].as_i64(), args.args[1].as_i64()) {
                (Some(a), Some(b)) => Ok(Value::from(a + b)),
                _ => Err(RemoteError::bad_arguments("add() takes two ints")),
            }
        })
        .add_async("sleep", |args: Args| async move {
            let secs = args.args.first().and_then(Value::as_f64).unwrap_or(0.0);
            tokio::time::sleep(Duration::from_secs_f64(secs)).await;
            Ok(Value::from(secs))
        })
        .add("raise_", |args: Args| {
            let mut args = args.args.into_iter();
            let ty = args
                .next()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| "ValueError".into());
            Err(RemoteError::exception(ty, "builtins", args.collect())
                .with_traceback("Traceback (most recent call last):\n  in raise_\n"))
        })
        .add("big", |args: Args| {
            let n = args.args.first().and_then(Value::as_i64).unwrap_or(0);
            Ok(Value::Bytes(Bytes::from(vec![b'1'; n as usize])))
        })
        .add("count", move |_args: Args| {
            Ok(Value::from(
                s1.counted.fetch_add(1, Ordering::SeqCst) as i64 + 1,
            ))
        })
        .add_async("gated", move |_args: Args| {
            let s = s2.clone();
            async move {
                let opened = s.gate_open.notified();
                s.gate_entered.notify_one();
                opened.await;
                s.counted.fetch_add(1, Ordering::SeqCst);
                Ok(Value::from("done"))
            }
        })
}

/// Starts the test service on a fresh address of the given kind, configured by `tune`.
pub async fn spawn_server_with(
    kind: Kind,
    tune: impl FnOnce(ServerBuilder) -> ServerBuilder,
) -> TestServer {
    let service = Arc::new(Service::default());
    let (addr, dir) = match kind {
        Kind::Tcp => (Address::tcp("127.0.0.1", 0), None),
        Kind::Unix => {
            let dir = tempfile::tempdir().unwrap();
            (Address::unix(dir.path().join("pyrpc.sock")), Some(dir))
        }
    };
    let builder = tune(Server::builder(methods(service.clone())));
    let handle = builder.build().bind(&addr).await.unwrap();
    let addr = handle.local_address().clone();
    TestServer {
        handle,
        addr,
        service,
        _dir: dir,
    }
}

/// Starts the test service (non-blocking calls enabled).
pub async fn spawn_server(kind: Kind) -> TestServer {
    spawn_server_with(kind, |b| b.nonblocking(true)).await
}

/// A loopback TCP proxy in front of a server, which can cut every connection
/// passing through it (the client sees its connection drop, the server too).
pub struct Proxy {
    pub addr: Address,
    conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    accepted: Arc<AtomicUsize>,
    accepted_notify: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Starts a proxy forwarding to `target` (a TCP address).
    pub async fn start(target: Address) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let accepted = Arc::new(AtomicUsize::new(0));
        let accepted_notify = Arc::new(Notify::new());
        let task = {
            let conns = conns.clone();
            let accepted = accepted.clone();
            let accepted_notify = accepted_notify.clone();
            tokio::spawn(async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    let target = target.clone();
                    let t = tokio::spawn(async move {
                        let Ok(Stream::Tcp(mut outbound)) =
                            connect(&target, Duration::from_secs(5)).await
                        else {
                            return;
                        };
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    });
                    conns.lock().unwrap().push(t.abort_handle());
                    accepted.fetch_add(1, Ordering::SeqCst);
                    accepted_notify.notify_waiters();
                }
            })
        };
        Proxy {
            addr: Address::tcp("127.0.0.1", port),
            conns,
            accepted,
            accepted_notify,
            task,
        }
    }

    /// Drops every connection open through the proxy now.
    pub fn cut(&self) {
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    /// How many connections the proxy has accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Waits until the proxy has accepted more than `n` connections.
    pub async fn wait_accepted_more_than(&self, n: usize) {
        loop {
            let notified = self.accepted_notify.notified();
            if self.accepted() > n {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut();
    }
}

/// A raw protocol peer: frames and hello by hand, for what the client API hides.
pub struct RawPeer {
    framed: Framed<Stream, Codec<wire::ServerFrame, wire::ClientFrame>>,
    next_id: u64,
    pub hello: wire::ServerHello,
}

impl RawPeer {
    /// Connects and exchanges hellos.
    pub async fn connect(addr: &Address) -> RawPeer {
        let stream = connect(addr, Duration::from_secs(5)).await.unwrap();
        let mut framed = Framed::new(stream, Codec::new());
        framed
            .send(wire::ClientFrame {
                kind: Some(wire::client_frame::Kind::Hello(wire::ClientHello {
                    protocol_version: pyrpc_proto::PROTOCOL_VERSION,
                    peer_name: "raw test peer".into(),
                    max_frame_len: 0,
                    ..Default::default()
                })),
            })
            .await
            .unwrap();
        let hello = match framed.next().await {
            Some(Ok(wire::ServerFrame {
                kind: Some(wire::server_frame::Kind::Hello(h)),
            })) => h,
            other => panic!("expected a server hello, got {other:?}"),
        };
        RawPeer {
            framed,
            next_id: 1,
            hello,
        }
    }

    /// Sends one request and returns the response's kind.
    pub async fn request(&mut self, kind: wire::request::Kind) -> wire::response::Kind {
        let id = self.next_id;
        self.next_id += 1;
        self.framed
            .send(wire::ClientFrame {
                kind: Some(wire::client_frame::Kind::Request(wire::Request {
                    id,
                    kind: Some(kind),
                })),
            })
            .await
            .unwrap();
        match self.framed.next().await {
            Some(Ok(wire::ServerFrame {
                kind: Some(wire::server_frame::Kind::Response(r)),
            })) if r.id == id => r.kind.expect("response with a kind"),
            other => panic!("expected the response to {id}, got {other:?}"),
        }
    }
}

/// A `Call` message for `method` with no arguments.
pub fn call_msg(method: &str) -> wire::Call {
    wire::Call {
        method: method.into(),
        ..Default::default()
    }
}

/// The Rust code blocks of README.md, compiled (and run, unless marked
/// `no_run`) as doc tests of this crate by `cargo test`.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

/// The Rust code blocks of docs/guide-rust.md, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/guide-rust.md")]
pub struct GuideRustDoctests;
