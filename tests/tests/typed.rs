//! Typed calls: serde types through a real Rust client and server.

use std::collections::BTreeMap;

use pyrpc_client::{CallError, Client};
use pyrpc_proto::{Args, ErrorKind, RemoteError, Value};
use pyrpc_server::{Methods, Server};
use pyrpc_tests::{spawn_server, trace_init, Kind};
use pyrpc_transport::Address;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Point {
    x: i64,
    y: i64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
enum Unit {
    Metres,
    Feet,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Track {
    name: String,
    points: Vec<Point>,
    unit: Unit,
    note: Option<String>,
    #[serde(with = "serde_bytes")]
    raw: Vec<u8>,
    id: u128,
}

fn track() -> Track {
    Track {
        name: "run".into(),
        points: vec![Point { x: 1, y: 2 }, Point { x: 3, y: -4 }],
        unit: Unit::Metres,
        note: None,
        raw: vec![0, 1, 255],
        id: u128::MAX,
    }
}

#[tokio::test]
async fn echo_returns_our_types_with_their_shapes() {
    trace_init();
    let server = spawn_server(Kind::Tcp).await;
    let client = Client::new(server.addr.clone());

    // The test service's echo returns (args, kwargs), like the Python one.
    type Echoed = ((Track, (i32, String)), BTreeMap<String, Value>);
    let (args, kwargs): Echoed = client
        .call_typed("echo", (track(), (7, "seven")))
        .await
        .expect("echo");
    assert_eq!(args.0, track());
    assert_eq!(args.1, (7, "seven".to_owned()));
    assert!(kwargs.is_empty());

    // The same call seen untyped: Python shapes on the wire.
    let raw = client
        .call(
            "echo",
            Args::new().arg(pyrpc_proto::to_value(&(1, "a")).expect("v")),
        )
        .await
        .expect("raw");
    assert_eq!(raw.to_string(), "(((1, 'a'),), {})");

    // A reply that does not fit names the path.
    let e = client
        .call_typed::<_, ((Point,), Value)>(
            "echo",
            (Value::dict([
                (Value::from("x"), Value::from(1)),
                (Value::from("y"), Value::from("two")),
            ]),),
        )
        .await
        .expect_err("y is a str");
    match e {
        CallError::Typed(e) => {
            assert_eq!(e.to_string(), "at [0][0].y: expected int, got str");
        }
        other => panic!("expected a typed error, got {other:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn typed_handlers_take_and_return_serde_types() {
    trace_init();
    let methods = Methods::new()
        .add_typed("shift", |(mut t, dx): (Track, i64)| {
            for p in &mut t.points {
                p.x += dx;
            }
            Ok(t)
        })
        .add_typed("checked_div", |(a, b): (i64, i64)| {
            a.checked_div(b).ok_or_else(|| {
                RemoteError::exception(
                    "ZeroDivisionError",
                    "builtins",
                    vec!["division by zero".into()],
                )
            })
        })
        .add_typed("nothing", |(): ()| Ok(()));
    let handle = Server::builder(methods)
        .build()
        .bind(&Address::tcp("127.0.0.1", 0))
        .await
        .expect("bind");
    let client = Client::new(handle.local_address().clone());

    let shifted: Track = client
        .call_typed("shift", (track(), 10))
        .await
        .expect("shift");
    assert_eq!(shifted.points[0], Point { x: 11, y: 2 });
    assert_eq!(shifted.id, u128::MAX);

    let q: i64 = client.call_typed("checked_div", (7, 2)).await.expect("div");
    assert_eq!(q, 3);
    let e = client
        .call_typed::<_, i64>("checked_div", (1, 0))
        .await
        .expect_err("zero");
    assert_eq!(
        e.remote().map(|e| e.type_name.as_str()),
        Some("ZeroDivisionError")
    );

    client
        .call_typed::<_, ()>("nothing", ())
        .await
        .expect("unit");

    // A Python-style caller sending a bad field gets BAD_ARGUMENTS naming it.
    let mut bad = pyrpc_proto::to_value(&track()).expect("v");
    if let Value::Dict(entries) = &mut bad {
        entries[1].1 = Value::list([Value::dict([
            (Value::from("x"), Value::from(1.5)),
            (Value::from("y"), Value::from(0)),
        ])]);
    }
    let e = client
        .call("shift", Args::new().arg(bad).arg(1))
        .await
        .expect_err("x is a float");
    let e = e.remote().expect("remote").clone();
    assert_eq!(e.kind, ErrorKind::BadArguments);
    assert_eq!(e.type_name, "TypeError");
    assert_eq!(
        e.message,
        "shift(): argument 1 at .points[0].x: expected int, got float"
    );
    let e = client
        .call("shift", Args::new().arg(1))
        .await
        .expect_err("one arg");
    assert_eq!(
        e.remote().map(|e| e.message.as_str()),
        Some("shift(): expected 2 items, got 1")
    );
    handle.shutdown();
    handle.wait().await;
}

#[test]
fn the_blocking_client_makes_typed_calls() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let methods = Methods::new().add_typed("norm1", |(p,): (Point,)| Ok(p.x.abs() + p.y.abs()));
    let handle = rt
        .block_on(
            Server::builder(methods)
                .build()
                .bind(&Address::tcp("127.0.0.1", 0)),
        )
        .expect("bind");
    let client =
        pyrpc_client::blocking::Client::new(handle.local_address().clone()).expect("client");
    let n: i64 = client
        .call_typed("norm1", (Point { x: -3, y: 4 },))
        .expect("norm1");
    assert_eq!(n, 7);
    handle.shutdown();
    rt.block_on(handle.wait());
}
