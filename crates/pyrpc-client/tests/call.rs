//! Calls against a scripted fake server: hello, values, remote errors,
//! concurrency on one connection, reply timeouts, local refusals.

mod support;

use std::time::Duration;

use pyrpc_client::{
    CallError, CallOptions, Client, ClientConfig, ClientHandshakeError, ProtocolError, Report,
    TimeoutStage,
};
use pyrpc_proto::wire::{self, request};
use pyrpc_proto::{Args, ErrorKind, RemoteError, RemoteErrorInfo, Value};
use support::{
    ack, call_of, echo_script, error, next, report, server_hello, value, FakeServer, Net, Peer,
    PIPE,
};

#[tokio::test]
async fn hello_exchange_announces_us_and_records_the_server() {
    let (tx, mut seen) = report();
    let server = FakeServer::start(Net::Tcp, move |mut peer: Peer| {
        let tx = tx.clone();
        async move {
            let hello = peer.hello().await;
            let _ = tx.send(hello);
            peer.echo_until_closed().await;
        }
    })
    .await;
    let config = ClientConfig {
        max_frame_len: 12345,
        ..ClientConfig::default()
    };
    let client = Client::with_config(server.addr.clone(), config);
    assert_eq!(client.server_info(), None, "lazy: no connection yet");
    assert_eq!(server.accepted(), 0);

    client.ping().await.expect("ping");

    let hello = next(&mut seen).await;
    assert_eq!(hello.protocol_version, 1);
    assert!(
        hello.peer_name.starts_with("pyrpc-rust/"),
        "{}",
        hello.peer_name
    );
    assert_eq!(hello.max_frame_len, 12345);
    let info = client.server_info().expect("server info after connecting");
    assert_eq!(info.name, "fake-server/1");
    assert!(info.nonblocking);
    assert_eq!(info.max_frame_len, 1 << 20);
    assert_eq!(info.max_value_depth, 32);
    assert_eq!(info.max_in_flight_per_connection, 16);
}

async fn call_returns_value(net: Net) {
    let server = FakeServer::start(net, echo_script).await;
    let client = Client::new(server.addr.clone());
    let ret = client
        .call("echo", Args::new().arg(1).arg("foo").arg(u128::MAX))
        .await
        .expect("call");
    assert_eq!(
        ret,
        Value::tuple([Value::from(1), Value::from("foo"), Value::from(u128::MAX)])
    );
    // The connection is reused.
    client.call("echo", Args::new()).await.expect("second call");
    assert_eq!(server.accepted(), 1);
}

#[tokio::test]
async fn call_returns_value_over_tcp() {
    call_returns_value(Net::Tcp).await;
}

#[tokio::test]
async fn call_returns_value_over_a_unix_socket() {
    call_returns_value(Net::Unix).await;
}

#[tokio::test]
async fn call_sends_method_args_kwargs_and_timeout() {
    let (tx, mut seen) = report();
    let server = FakeServer::start(Net::Tcp, move |mut peer: Peer| {
        let tx = tx.clone();
        async move {
            peer.hello().await;
            let req = peer.expect().await;
            let _ = tx.send(call_of(&req).clone());
            peer.reply(req.id, value(())).await;
        }
    })
    .await;
    let client = Client::new(server.addr.clone());
    let opts = CallOptions {
        call_timeout: Some(Some(Duration::from_millis(2500))),
        ..CallOptions::default()
    };
    let ret = client
        .call_with("greet", Args::new().arg(7).kwarg("name", "bob"), &opts)
        .await
        .expect("call");
    assert_eq!(ret, Value::None);
    let call = next(&mut seen).await;
    assert_eq!(call.method, "greet");
    assert_eq!(call.args, vec![wire::Value::from(Value::from(7))]);
    assert_eq!(call.kwargs.len(), 1);
    assert_eq!(call.kwargs[0].name, "name");
    assert_eq!(call.kwargs[0].value, Some(Value::from("bob").into()));
    assert_eq!(call.timeout_ms, 2500);
}

#[tokio::test]
async fn remote_error_comes_back_with_every_field() {
    let raised = RemoteError::from(RemoteErrorInfo {
        kind: ErrorKind::Exception,
        type_name: "KeyError".into(),
        module: "builtins".into(),
        args: vec![Value::from("k"), Value::from(3)],
        message: "('k', 3)".into(),
        traceback: "Traceback (most recent call last):\n  ...".into(),
        attributes: vec![("code".into(), Value::from(28))],
    });
    let sent = raised.clone();
    let server = FakeServer::start(Net::Tcp, move |mut peer: Peer| {
        let sent = sent.clone();
        async move {
            peer.hello().await;
            let req = peer.expect().await;
            peer.reply(req.id, error(sent)).await;
            peer.echo_until_closed().await;
        }
    })
    .await;
    let client = Client::new(server.addr.clone());
    match client.call("boom", Args::new()).await {
        Err(CallError::Remote(e)) => assert_eq!(e, raised),
        other => panic!("expected the remote error, got {other:?}"),
    }
    // A remote error leaves the connection usable.
    client.call("echo", Args::new()).await.expect("next call");
    assert_eq!(server.accepted(), 1);
}

#[tokio::test]
async fn concurrent_calls_answered_in_reverse_order_reach_their_callers() {
    const N: i64 = 8;
    let server = FakeServer::start(Net::Tcp, |mut peer: Peer| async move {
        peer.hello().await;
        let mut reqs = Vec::new();
        for _ in 0..N {
            reqs.push(peer.expect().await);
        }
        for req in reqs.into_iter().rev() {
            let arg = call_of(&req).args[0].clone();
            peer.reply(req.id, wire::response::Kind::Value(arg)).await;
        }
        peer.echo_until_closed().await;
    })
    .await;
    let client = Client::new(server.addr.clone());
    let calls = (0..N).map(|i| {
        let client = client.clone();
        tokio::spawn(async move { (i, client.call("id", Args::new().arg(i)).await) })
    });
    for handle in futures::future::join_all(calls).await {
        let (i, ret) = handle.expect("task");
        assert_eq!(ret.expect("call"), Value::from(i));
    }
    assert_eq!(server.accepted(), 1, "all calls shared one connection");
    assert_eq!(client.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn reply_timeout_names_the_stage_and_forgets_the_request() {
    let server = FakeServer::start(PIPE, |mut peer: Peer| async move {
        peer.hello().await;
        // Read calls but answer only pings.
        while let Some(req) = peer.recv().await {
            if let Some(request::Kind::Ping(_)) = req.kind {
                peer.reply(req.id, ack()).await;
            }
        }
    })
    .await;
    let config = ClientConfig {
        call_timeout: Some(Duration::from_millis(200)),
        ..ClientConfig::default()
    };
    let client = server.client(config);
    let started = tokio::time::Instant::now();
    let err = client
        .call("slow", Args::new())
        .await
        .expect_err("times out");
    let took = started.elapsed();
    assert_eq!(err.timeout_stage(), Some(TimeoutStage::Reply), "{err}");
    assert_eq!(
        err.to_string(),
        "timed out waiting for the reply (call_timeout)"
    );
    // On the paused clock: exactly the call timeout.
    assert_eq!(took, Duration::from_millis(200));
    assert_eq!(client.in_flight(), 0, "the pending entry was removed");
    // The connection survives a timed-out call.
    client.ping().await.expect("ping after the timeout");
    assert_eq!(server.accepted(), 1);
}

#[tokio::test]
async fn dropped_call_future_forgets_the_request() {
    let (tx, mut seen) = report();
    let server = FakeServer::start(Net::Tcp, move |mut peer: Peer| {
        let tx = tx.clone();
        async move {
            peer.hello().await;
            while let Some(req) = peer.recv().await {
                let _ = tx.send(req.id);
            }
        }
    })
    .await;
    let client = Client::new(server.addr.clone());
    let mut call = Box::pin(client.call("never", Args::new()));
    tokio::select! {
        r = &mut call => panic!("the fake server never answers, yet {r:?}"),
        _ = next(&mut seen) => {}
    }
    assert_eq!(client.in_flight(), 1, "the call waits for its reply");
    drop(call);
    assert_eq!(client.in_flight(), 0, "dropping the call removed its entry");
}

#[tokio::test]
async fn too_deep_arguments_are_refused_before_sending() {
    let (tx, mut seen) = report();
    let server = FakeServer::start(Net::Tcp, move |mut peer: Peer| {
        let tx = tx.clone();
        async move {
            peer.hello().await;
            while let Some(req) = peer.recv().await {
                let _ = tx.send(req.id);
                peer.reply(req.id, ack()).await;
            }
        }
    })
    .await;
    let config = ClientConfig {
        max_value_depth: 3,
        ..ClientConfig::default()
    };
    let client = Client::with_config(server.addr.clone(), config);
    let deep = Value::list([Value::list([Value::list([Value::from(1)])])]);
    assert_eq!(deep.depth(), 4);
    let err = client
        .call("f", Args::new().kwarg("x", deep))
        .await
        .expect_err("refused");
    assert!(
        matches!(
            err,
            CallError::Value(pyrpc_proto::ValueError::TooDeep { max: 3 })
        ),
        "{err:?}"
    );
    assert_eq!(server.accepted(), 0, "refused before connecting");
    // At the limit is fine; the ping's id is the first the server sees.
    let at_limit = Value::list([Value::list([Value::from(1)])]);
    client.ping().await.expect("ping");
    let first = next(&mut seen).await;
    let err = client.call("f", Args::new().arg(at_limit)).await;
    assert!(
        matches!(err, Err(CallError::Protocol(_))),
        "ack to a call: {err:?}"
    );
    assert_eq!(next(&mut seen).await, first + 1);
}

#[tokio::test]
async fn request_larger_than_the_server_accepts_is_refused_without_dropping_the_connection() {
    let server = FakeServer::start(Net::Tcp, |mut peer: Peer| async move {
        let mut hello = server_hello();
        if let Some(c) = hello.capabilities.as_mut() {
            c.max_frame_len = 1500;
        }
        peer.read_hello().await;
        peer.send_hello(hello).await;
        peer.echo_until_closed().await;
    })
    .await;
    let client = Client::new(server.addr.clone());
    let big = Value::from(bytes::Bytes::from(vec![0u8; 2000]));
    let err = client
        .call("echo", Args::new().arg(big))
        .await
        .expect_err("too large");
    match &err {
        CallError::Protocol(p) => {
            assert!(
                matches!(p, ProtocolError::RequestTooLarge { max: 1500, .. }),
                "{p:?}"
            )
        }
        other => panic!("expected a protocol error, got {other:?}"),
    }
    let small = Value::from(bytes::Bytes::from(vec![0u8; 500]));
    let ret = client.call("echo", Args::new().arg(small.clone())).await;
    assert_eq!(ret.expect("fits"), Value::tuple([small]));
    assert_eq!(server.accepted(), 1);
}

#[tokio::test]
async fn hello_with_an_error_is_the_remote_error() {
    let server = FakeServer::start(Net::Tcp, |mut peer: Peer| async move {
        peer.read_hello().await;
        let mut hello = server_hello();
        hello.error = Some(RemoteError::new(ErrorKind::Overloaded, "too many connections").into());
        peer.send_hello(hello).await;
    })
    .await;
    let client = Client::new(server.addr.clone());
    match client.call("echo", Args::new()).await {
        Err(CallError::Remote(e)) => {
            assert_eq!(e.kind, ErrorKind::Overloaded);
            assert_eq!(e.message, "too many connections");
        }
        other => panic!("expected OVERLOADED, got {other:?}"),
    }
}

#[tokio::test]
async fn hello_with_another_protocol_version_is_a_protocol_error() {
    let server = FakeServer::start(Net::Tcp, |mut peer: Peer| async move {
        peer.read_hello().await;
        let mut hello = server_hello();
        hello.protocol_version = 2;
        peer.send_hello(hello).await;
        peer.echo_until_closed().await;
    })
    .await;
    let client = Client::new(server.addr.clone());
    match client.ping().await {
        Err(CallError::Protocol(ProtocolError::Handshake(ClientHandshakeError::Version {
            theirs: 2,
            ..
        }))) => {}
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

#[tokio::test]
async fn garbage_from_the_server_fails_pending_calls_with_a_protocol_error() {
    use tokio::io::AsyncWriteExt;
    // A raw server: a proper hello, then bytes that are no frame.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.expect("accept");
        let mut peer = support_peer(stream);
        peer.hello().await;
        let _ = peer.expect().await;
        let mut raw = peer.into_inner();
        raw.write_all(&[0, 0, 0, 3, 0xff, 0xff, 0xff])
            .await
            .expect("write");
        // Keep the socket open until the client gives up.
        let mut buf = [0u8; 64];
        let _ = tokio::io::AsyncReadExt::read(&mut raw, &mut buf).await;
    });
    let client = Client::new(pyrpc_transport::Address::tcp("127.0.0.1", port));
    match client.call("echo", Args::new()).await {
        Err(e @ CallError::Protocol(ProtocolError::BadFrame(_))) => assert!(
            Report(&e).to_string().contains("bad frame from the server"),
            "{e:?}"
        ),
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

/// A [`Peer`]-like wrapper over a raw TCP stream.
fn support_peer(stream: tokio::net::TcpStream) -> RawPeer {
    RawPeer {
        framed: tokio_util::codec::Framed::new(stream, pyrpc_framing::Codec::new()),
    }
}

struct RawPeer {
    framed: tokio_util::codec::Framed<
        tokio::net::TcpStream,
        pyrpc_framing::Codec<wire::ClientFrame, wire::ServerFrame>,
    >,
}

impl RawPeer {
    async fn hello(&mut self) {
        use futures::{SinkExt, StreamExt};
        let _ = self.framed.next().await;
        let frame = wire::ServerFrame {
            kind: Some(wire::server_frame::Kind::Hello(server_hello())),
        };
        self.framed.send(frame).await.expect("hello");
    }

    async fn expect(&mut self) -> wire::ClientFrame {
        use futures::StreamExt;
        self.framed
            .next()
            .await
            .expect("a frame")
            .expect("a valid frame")
    }

    fn into_inner(self) -> tokio::net::TcpStream {
        self.framed.into_inner()
    }
}

#[tokio::test(start_paused = true)]
async fn server_that_stops_reading_is_a_send_timeout() {
    let (tx, mut seen) = report();
    let server = FakeServer::start(Net::Memory(64 * 1024), move |mut peer: Peer| {
        let tx = tx.clone();
        async move {
            peer.read_hello().await;
            let mut hello = server_hello();
            if let Some(c) = hello.capabilities.as_mut() {
                c.max_frame_len = 64 << 20;
            }
            peer.send_hello(hello).await;
            let _ = tx.send(());
            // Never read again, but keep the connection open.
            std::future::pending::<()>().await;
            drop(peer);
        }
    })
    .await;
    let config = ClientConfig {
        socket_send_timeout: Duration::from_millis(150),
        ..ClientConfig::default()
    };
    let client = server.client(config);
    // 1 MiB cannot fit in the 64 KiB pipe.
    let big = Value::from(bytes::Bytes::from(vec![0u8; 1 << 20]));
    let started = tokio::time::Instant::now();
    let err = client
        .call("echo", Args::new().arg(big))
        .await
        .expect_err("times out");
    next(&mut seen).await;
    assert_eq!(err.timeout_stage(), Some(TimeoutStage::Send), "{err}");
    assert_eq!(started.elapsed(), Duration::from_millis(150));
    assert_eq!(client.in_flight(), 0);
}
