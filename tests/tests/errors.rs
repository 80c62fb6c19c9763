//! Remote errors keep their type, args, message and traceback; runtime refusals
//! are clear.

use pyrpc_client::{CallError, Client};
use pyrpc_proto::{Args, ErrorKind, Value};
use pyrpc_tests::{spawn_server, spawn_server_with, KINDS};

fn remote(e: CallError) -> pyrpc_proto::RemoteError {
    match e {
        CallError::Remote(r) => r,
        other => panic!("expected a remote error, got {other:?}"),
    }
}

#[tokio::test]
async fn remote_exception_fidelity() {
    for kind in KINDS {
        let server = spawn_server(kind).await;
        let client = Client::new(server.addr.clone());
        let e = remote(
            client
                .call("raise_", Args::new().arg("KeyError").arg("missing").arg(3))
                .await
                .unwrap_err(),
        );
        assert_eq!(e.kind, ErrorKind::Exception);
        assert_eq!(e.type_name, "KeyError");
        assert_eq!(e.module, "builtins");
        assert_eq!(e.args, vec![Value::from("missing"), Value::from(3)]);
        assert_eq!(e.message, "('missing', 3)");
        assert!(e.traceback.contains("in raise_"), "{}", e.traceback);
        // the connection is still good
        assert_eq!(
            client.call("add", Args::new().arg(2).arg(3)).await.unwrap(),
            Value::from(5)
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn unknown_and_private_methods_are_refused_clearly() {
    let server = spawn_server(pyrpc_tests::Kind::Tcp).await;
    let client = Client::new(server.addr.clone());
    for name in ["no_such_method", "_private", "__init__"] {
        let e = remote(client.call(name, Args::new()).await.unwrap_err());
        assert_eq!(e.kind, ErrorKind::NoSuchMethod, "{name}");
        assert_eq!(e.type_name, "AttributeError");
        assert!(e.message.contains(name), "{name}: {}", e.message);
    }
    server.stop().await;
}

#[tokio::test]
async fn wrong_arguments_are_a_type_error() {
    let server = spawn_server(pyrpc_tests::Kind::Tcp).await;
    let client = Client::new(server.addr.clone());
    let e = remote(client.call("add", Args::new().arg(1)).await.unwrap_err());
    assert_eq!(e.kind, ErrorKind::BadArguments);
    assert_eq!(e.type_name, "TypeError");
    assert_eq!(
        e.message,
        "add() takes 2 positional arguments but 1 were given"
    );
    server.stop().await;
}

#[tokio::test]
async fn nb_call_on_a_blocking_server_is_refused() {
    let server = spawn_server_with(pyrpc_tests::Kind::Tcp, |b| b).await;
    let client = Client::new(server.addr.clone());
    let e = remote(client.nb_call("echo", Args::new()).await.unwrap_err());
    assert_eq!(e.kind, ErrorKind::NotNonblocking);
    server.stop().await;
}

#[tokio::test]
async fn too_deep_values_are_refused_before_sending() {
    let server = spawn_server(pyrpc_tests::Kind::Tcp).await;
    let client = Client::new(server.addr.clone());
    let mut v = Value::from(1);
    for _ in 0..pyrpc_proto::MAX_VALUE_DEPTH {
        v = Value::list([v]);
    }
    let e = client.call("echo", Args::new().arg(v)).await.unwrap_err();
    assert!(matches!(e, CallError::Value(_)), "{e:?}");
    assert!(client.call("echo", Args::new()).await.is_ok());
    server.stop().await;
}
