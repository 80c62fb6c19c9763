//! A raw pyrpc client for tests: frames `ClientFrame`s out and `ServerFrame`s
//! in with `pyrpc_framing::Codec`, nothing more.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use pyrpc_framing::Codec;
use pyrpc_proto::wire::{self, client_frame, request, response, server_frame};
use pyrpc_proto::{Args, RemoteError, Value};
use pyrpc_server::{Methods, Server, ServerConfig};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::{Decoder, Encoder};

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// What a response said.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    Value(Value),
    Error(RemoteError),
    Ack,
    Pending,
}

impl Outcome {
    pub fn value(self) -> Value {
        match self {
            Outcome::Value(v) => v,
            other => panic!("expected a value, got {other:?}"),
        }
    }

    pub fn error(self) -> RemoteError {
        match self {
            Outcome::Error(e) => e,
            other => panic!("expected an error, got {other:?}"),
        }
    }
}

pub struct Peer {
    io: Box<dyn Io>,
    codec: Codec<wire::ServerFrame, wire::ClientFrame>,
    buf: BytesMut,
    /// The server's task for this connection, when made by [`Peer::raw`].
    pub task: Option<tokio::task::JoinHandle<()>>,
}

impl Peer {
    pub fn new(io: impl Io + 'static) -> Self {
        Peer {
            io: Box::new(io),
            codec: Codec::new(),
            buf: BytesMut::new(),
            task: None,
        }
    }

    /// A duplex connection to `server`, without the hello.
    pub fn raw(server: &Server) -> Self {
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let task = server.serve_stream(theirs, "test peer".into());
        let mut p = Peer::new(ours);
        p.task = Some(task);
        p
    }

    /// A duplex connection to `server`, hello done.
    pub async fn connect(server: &Server) -> Self {
        let mut p = Peer::raw(server);
        let hello = p.hello(0).await;
        assert!(hello.error.is_none(), "{:?}", hello.error);
        p
    }

    pub async fn send(&mut self, frame: wire::ClientFrame) {
        let mut buf = BytesMut::new();
        self.codec.encode(frame, &mut buf).unwrap();
        self.send_bytes(&buf).await;
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.unwrap();
        self.io.flush().await.unwrap();
    }

    /// The next frame; `None` once the server closed the connection.
    pub async fn recv(&mut self) -> Option<wire::ServerFrame> {
        loop {
            if let Some(f) = self.codec.decode(&mut self.buf).unwrap() {
                return Some(f);
            }
            match self.io.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Sends a hello (version 1) and returns the server's.
    pub async fn hello(&mut self, max_frame_len: u64) -> wire::ServerHello {
        self.hello_version(1, max_frame_len).await
    }

    pub async fn hello_version(&mut self, version: u32, max_frame_len: u64) -> wire::ServerHello {
        self.send(wire::ClientFrame {
            kind: Some(client_frame::Kind::Hello(wire::ClientHello {
                protocol_version: version,
                peer_name: "raw-test-peer".into(),
                max_frame_len,
                ..Default::default()
            })),
        })
        .await;
        match self.recv().await {
            Some(wire::ServerFrame {
                kind: Some(server_frame::Kind::Hello(h)),
            }) => h,
            other => panic!("expected a hello, got {other:?}"),
        }
    }

    pub async fn request(&mut self, id: u64, kind: request::Kind) {
        self.send(wire::ClientFrame {
            kind: Some(client_frame::Kind::Request(wire::Request {
                id,
                kind: Some(kind),
            })),
        })
        .await;
    }

    /// Sends several requests in one write, so the server reads them
    /// together (pipelined: none waits for an answer to the one before).
    pub async fn requests(&mut self, reqs: Vec<(u64, request::Kind)>) {
        let mut buf = BytesMut::new();
        for (id, kind) in reqs {
            let frame = wire::ClientFrame {
                kind: Some(client_frame::Kind::Request(wire::Request {
                    id,
                    kind: Some(kind),
                })),
            };
            self.codec.encode(frame, &mut buf).unwrap();
        }
        self.send_bytes(&buf).await;
    }

    pub async fn call(&mut self, id: u64, method: &str, args: Args) {
        self.request(id, request::Kind::Call(call(method, args, 0)))
            .await;
    }

    /// The next response: (id, outcome).
    pub async fn response(&mut self) -> (u64, Outcome) {
        match self.recv().await {
            Some(wire::ServerFrame {
                kind: Some(server_frame::Kind::Response(r)),
            }) => (r.id, outcome(r)),
            other => panic!("expected a response, got {other:?}"),
        }
    }

    /// Sends a request and waits for its answer (no other request in flight).
    pub async fn ask(&mut self, id: u64, kind: request::Kind) -> Outcome {
        self.request(id, kind).await;
        let (got, out) = self.response().await;
        assert_eq!(got, id);
        out
    }

    pub async fn call_wait(&mut self, method: &str, args: Args) -> Outcome {
        self.ask(1, request::Kind::Call(call(method, args, 0)))
            .await
    }

    pub async fn ping(&mut self) -> Outcome {
        self.ask(99, request::Kind::Ping(wire::Ping {})).await
    }
}

pub fn outcome(r: wire::Response) -> Outcome {
    match r.kind {
        Some(response::Kind::Value(v)) => Outcome::Value(Value::try_from(v).unwrap()),
        Some(response::Kind::Error(e)) => Outcome::Error(e.into()),
        Some(response::Kind::Ack(_)) => Outcome::Ack,
        Some(response::Kind::Pending(_)) => Outcome::Pending,
        Some(other) => panic!("response {} of an unexpected kind: {other:?}", r.id),
        None => panic!("response {} with no kind", r.id),
    }
}

pub fn call(method: &str, args: Args, timeout_ms: u64) -> wire::Call {
    wire::Call {
        method: method.into(),
        args: args.args.into_iter().map(Into::into).collect(),
        kwargs: args
            .kwargs
            .into_iter()
            .map(|(name, v)| wire::Kwarg {
                name,
                value: Some(v.into()),
            })
            .collect(),
        timeout_ms,
        stream_window: 0,
    }
}

pub fn submit(call_id: [u8; 16], method: &str, args: Args, keep_ms: u64) -> request::Kind {
    request::Kind::Submit(wire::Submit {
        call_id: Bytes::copy_from_slice(&call_id),
        call: Some(call(method, args, 0)),
        keep_ms,
    })
}

pub fn fetch(call_id: [u8; 16], wait_ms: u64) -> request::Kind {
    request::Kind::Fetch(wire::Fetch {
        call_id: Bytes::copy_from_slice(&call_id),
        wait_ms,
    })
}

pub fn release(call_id: [u8; 16]) -> request::Kind {
    request::Kind::Release(wire::Release {
        call_id: Bytes::copy_from_slice(&call_id),
    })
}

/// A gate a test method waits at until the test opens it.
#[derive(Clone)]
pub struct Gate {
    open: Arc<tokio::sync::Semaphore>,
    /// One permit per method that reached the gate.
    pub reached: Arc<tokio::sync::Semaphore>,
}

impl Gate {
    pub fn new() -> Self {
        Gate {
            open: Arc::new(tokio::sync::Semaphore::new(0)),
            reached: Arc::new(tokio::sync::Semaphore::new(0)),
        }
    }

    /// Called by the method: signals arrival, waits for the gate.
    pub async fn pass(&self) {
        self.reached.add_permits(1);
        let p = self.open.acquire().await.unwrap();
        p.forget();
    }

    /// Waits until `n` methods reached the gate.
    pub async fn wait_reached(&self, n: u32) {
        self.reached.acquire_many(n).await.unwrap().forget();
    }

    /// Lets `n` waiting methods through.
    pub fn open(&self, n: usize) {
        self.open.add_permits(n);
    }
}

/// A table with `echo`, `fail`, `add_one`, `deep`, `pickle`, `panic` and
/// `gated` (waits at `gate`, returns "gated").
pub fn methods(gate: &Gate) -> Methods {
    let gate = gate.clone();
    Methods::new()
        .add("echo", |args: Args| {
            let (a, k) = args.into_values();
            Ok(Value::tuple([a, k]))
        })
        .add("fail", |_| {
            Err(
                RemoteError::exception("ValueError", "builtins", vec![Value::from("bad")])
                    .with_traceback("Traceback (most recent call last): ..."),
            )
        })
        .add("add_one", |args: Args| {
            args.expect_exactly("add_one", 1)?;
            let n = args.args[0]
                .as_i64()
                .ok_or_else(|| RemoteError::bad_arguments("add_one() needs an int"))?;
            Ok(Value::from(n + 1))
        })
        .add("deep", |args: Args| {
            let n = args.args.first().and_then(Value::as_i64).unwrap_or(0);
            let mut v = Value::None;
            for _ in 0..n {
                v = Value::list([v]);
            }
            Ok(v)
        })
        .add("pickle", |_| {
            Ok(Value::Pickle(Bytes::from_static(b"\x80\x04N.")))
        })
        .add("panic", |_| panic!("kaboom"))
        .add_async("gated", move |_| {
            let gate = gate.clone();
            async move {
                gate.pass().await;
                Ok(Value::from("gated"))
            }
        })
        .add_blocking("blocking", |args: Args| {
            std::thread::sleep(std::time::Duration::from_millis(1));
            Ok(args.args.into_iter().next().unwrap_or_default())
        })
}

pub fn server(gate: &Gate, config: ServerConfig) -> Server {
    Server::builder(methods(gate)).config(config).build()
}

/// A value nested `n` levels deep (a scalar is 1).
pub fn nested(n: usize) -> Value {
    let mut v = Value::from(1);
    for _ in 1..n {
        v = Value::list([v]);
    }
    v
}
