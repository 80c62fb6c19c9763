//! Timeouts fire and name their stage; a timed-out client keeps working.

use std::time::Duration;

use pyrpc_client::{CallError, CallOptions, Client, ClientConfig, TimeoutStage};
use pyrpc_proto::{Args, Value};
use pyrpc_tests::{spawn_server, Kind};
use pyrpc_transport::Address;

#[tokio::test]
async fn call_timeout_names_the_reply_stage() {
    let server = spawn_server(Kind::Tcp).await;
    let client = Client::new(server.addr.clone());
    let opts = CallOptions {
        call_timeout: Some(Some(Duration::from_millis(100))),
        ..Default::default()
    };
    let e = client
        .call_with("sleep", Args::new().arg(1.0), &opts)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            CallError::Timeout {
                stage: TimeoutStage::Reply
            }
        ),
        "{e:?}"
    );
    // the same client goes on working
    assert_eq!(
        client.call("add", Args::new().arg(1).arg(1)).await.unwrap(),
        Value::from(2)
    );
    server.stop().await;
}

#[tokio::test]
async fn nb_call_timeout_names_the_nb_stage() {
    let server = spawn_server(Kind::Unix).await;
    let config = ClientConfig {
        call_timeout: Some(Duration::from_millis(300)),
        nb_fetch_tick: Duration::from_millis(50),
        ..Default::default()
    };
    let client = Client::with_config(server.addr.clone(), config);
    let e = client
        .nb_call("sleep", Args::new().arg(1.0))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            CallError::Timeout {
                stage: TimeoutStage::Nb
            }
        ),
        "{e:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn nothing_listening_is_no_socket() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::new(Address::unix(dir.path().join("nobody")));
    let e = client.call("echo", Args::new()).await.unwrap_err();
    assert!(matches!(e, CallError::NoSocket { .. }), "{e:?}");
}
