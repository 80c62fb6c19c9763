//! Values keep their Python shapes across a real Rust client and server.

use bytes::Bytes;
use num_bigint::BigInt;
use pyrpc_client::Client;
use pyrpc_proto::{Args, Value};
use pyrpc_tests::{spawn_server, trace_init, KINDS};

fn nested() -> Value {
    Value::dict([
        (
            Value::tuple([Value::from(1), Value::from("a")]),
            Value::list([Value::from(1.5), Value::None, Value::from(false)]),
        ),
        (
            Value::from("bytes"),
            Value::Bytes(Bytes::from_static(b"\x00\x01\xff")),
        ),
        (Value::from("big"), Value::from(BigInt::from(2).pow(100))),
        (Value::from("neg"), Value::from(-BigInt::from(3).pow(70))),
        (Value::from("u64max"), Value::from(u64::MAX)),
        (
            Value::from("sets"),
            Value::tuple([
                Value::Set(vec![Value::from(1), Value::from(2)]),
                Value::FrozenSet(vec![Value::from("x")]),
                Value::tuple([]),
                Value::tuple([Value::tuple([Value::from(1)])]),
            ]),
        ),
        (Value::from(7), Value::from("int key")),
    ])
}

#[tokio::test]
async fn nested_values_round_trip_with_their_shapes() {
    trace_init();
    for kind in KINDS {
        let server = spawn_server(kind).await;
        let client = Client::new(server.addr.clone());
        let v = nested();
        let ret = client
            .call("echo", Args::new().arg(v.clone()).kwarg("k", v.clone()))
            .await
            .unwrap();
        let want = Value::tuple([
            Value::tuple([v.clone()]),
            Value::dict([(Value::from("k"), v)]),
        ]);
        assert_eq!(ret, want, "{kind:?}");
        server.stop().await;
    }
}

/// One value of each kind beyond the builtin containers.
fn kinds() -> Value {
    use pyrpc_proto::{Date, DateTime, Fraction, Record, RecordKind, Time, TimeDelta};
    Value::list([
        Value::ByteArray(Bytes::from_static(b"ab")),
        Value::from(DateTime {
            year: 9999,
            month: 12,
            day: 31,
            hour: 23,
            minute: 59,
            second: 59,
            microsecond: 999_999,
            utc_offset_us: Some(19_800_000_000),
            fold: 0,
        }),
        Value::from(Date {
            year: 2024,
            month: 2,
            day: 29,
        }),
        Value::from(Time {
            hour: 0,
            minute: 0,
            second: 0,
            microsecond: 1,
            utc_offset_us: None,
            fold: 1,
        }),
        Value::from(TimeDelta {
            days: -999_999_999,
            seconds: 0,
            microseconds: 0,
        }),
        Value::Decimal("-sNaN12".into()),
        Value::Uuid([0xab; 16]),
        Value::Complex {
            re: f64::INFINITY,
            im: -0.5,
        },
        Value::from(Fraction::new(BigInt::from(2).pow(80), BigInt::from(7)).expect("nonzero")),
        Value::from(
            Record::new("m:Point", RecordKind::NamedTuple)
                .field("x", 1)
                .field("y", Value::tuple([])),
        ),
    ])
}

#[tokio::test]
async fn new_kinds_round_trip() {
    for kind in KINDS {
        let server = spawn_server(kind).await;
        let client = Client::new(server.addr.clone());
        let v = kinds();
        let ret = client
            .call("echo", Args::new().arg(v.clone()))
            .await
            .unwrap();
        assert_eq!(
            ret,
            Value::tuple([Value::tuple([v]), Value::dict([])]),
            "{kind:?}"
        );
        server.stop().await;
    }
}

/// A value `levels` deep: lists, dicts, tuples and records in turn.
fn deep(levels: usize) -> Value {
    let mut v = Value::from("bottom");
    for i in 0..levels {
        v = match i % 4 {
            0 => Value::list([v]),
            1 => Value::dict([(Value::from(i), v)]),
            2 => Value::tuple([Value::None, v]),
            _ => Value::from(
                pyrpc_proto::Record::new("m:R", pyrpc_proto::RecordKind::Dataclass).field("f", v),
            ),
        };
    }
    v
}

#[tokio::test]
async fn values_a_thousand_levels_deep_round_trip() {
    for kind in KINDS {
        let server = spawn_server(kind).await;
        let client = Client::new(server.addr.clone());
        // The echo wraps the arg in two tuples: 1,000 + 1 + 2 <= 1024.
        let v = deep(1000);
        let ret = client
            .call("echo", Args::new().arg(v.clone()))
            .await
            .unwrap();
        assert_eq!(
            ret,
            Value::tuple([Value::tuple([v]), Value::dict([])]),
            "{kind:?}"
        );
        server.stop().await;
    }
}

/// A client allowing deeper values than the server refuses, before sending,
/// what the server announced it would refuse (the server's own refusal of
/// such a frame is in hostile.rs).
#[tokio::test]
async fn a_value_past_the_servers_depth_limit_is_a_clear_error() {
    use pyrpc_client::{CallError, ClientConfig};
    let server = spawn_server(pyrpc_tests::Kind::Tcp).await;
    let config = ClientConfig {
        max_value_depth: 5000,
        ..ClientConfig::default()
    };
    let client = Client::with_config(server.addr.clone(), config);
    assert!(client.call("echo", Args::new()).await.is_ok());
    let e = client
        .call("echo", Args::new().arg(deep(2000)))
        .await
        .unwrap_err();
    assert!(matches!(e, CallError::Value(_)), "{e:?}");
    // The reason is in the error's chain of causes.
    let chain: Vec<String> =
        std::iter::successors(Some(&e as &dyn std::error::Error), |e| e.source())
            .map(ToString::to_string)
            .collect();
    assert!(chain.join(": ").contains("deeper than 1024"), "{chain:?}");
    assert!(client.call("echo", Args::new().arg(1)).await.is_ok());
    server.stop().await;
}

#[tokio::test]
async fn original_readme_echo() {
    for kind in KINDS {
        let server = spawn_server(kind).await;
        let client = Client::new(server.addr.clone());
        let ret = client
            .call("echo", Args::new().arg(1).kwarg("foo", "foo"))
            .await
            .unwrap();
        assert_eq!(ret.to_string(), "((1,), {'foo': 'foo'})", "{kind:?}");
        server.stop().await;
    }
}

#[tokio::test]
async fn large_bytes_arrive_whole() {
    let server = spawn_server(pyrpc_tests::Kind::Unix).await;
    let client = Client::new(server.addr.clone());
    let n = 32 * 1024 * 1024;
    let ret = client.call("big", Args::new().arg(n)).await.unwrap();
    let bytes = ret.as_bytes().expect("bytes");
    assert_eq!(bytes.len(), n as usize);
    assert!(bytes.iter().all(|&b| b == b'1'));
    server.stop().await;
}
