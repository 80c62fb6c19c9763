//! Golden vectors: the frames in `proto/testdata/*.bin`, byte for byte.
//!
//! Each vector is built here from Rust values (through [`Value`] where the
//! message carries values), encoded with [`Codec`] and compared with the
//! committed file; the file is also decoded and compared with the message. The
//! same files are checked by the independent Python peer
//! (`tests/interop/independent_peer.py golden`), which builds each message from
//! its `.txtpb` description with the official protobuf runtime. So neither
//! prost, our value model nor the framing can drift without a test failing.
//!
//! To rewrite the `.bin` files after a deliberate change of a vector:
//! `PYRPC_BLESS_GOLDEN=1 cargo test -p pyrpc-framing --test golden`, then review
//! the diff and update the `.txtpb` next to it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use pyrpc_framing::Codec;
use pyrpc_proto::auth::Secret;
use pyrpc_proto::wire::{self, client_frame, request, response, server_frame};
use pyrpc_proto::{Dtype, ErrorKind, NdArray, RemoteError, Value};
use tokio_util::codec::{Decoder, Encoder};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto/testdata")
}

const CALL_ID: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

fn client_request(id: u64, kind: request::Kind) -> wire::ClientFrame {
    wire::ClientFrame {
        kind: Some(client_frame::Kind::Request(wire::Request {
            id,
            kind: Some(kind),
        })),
    }
}

fn server_response(id: u64, kind: response::Kind) -> wire::ServerFrame {
    wire::ServerFrame {
        kind: Some(server_frame::Kind::Response(wire::Response {
            id,
            kind: Some(kind),
        })),
    }
}

/// The positional args of `call.bin`, as our value model holds them.
fn call_args() -> Vec<Value> {
    vec![
        Value::from(1),
        Value::from(-2),
        Value::from(1u128 << 64),
        Value::from(-(1i128 << 63) - 1),
        Value::from(-(1i128 << 71)),
        Value::from(1.5),
        Value::from("héllo"),
        Value::from(&b"\x00\xff"[..]),
        Value::from(true),
        Value::from(false),
        Value::from(0),
        Value::None,
        Value::tuple([Value::from(1), Value::tuple([])]),
        Value::list([Value::from("a"), Value::list([])]),
        Value::Set(vec![Value::from(1), Value::from(2)]),
        Value::FrozenSet(vec![Value::from("x")]),
        Value::dict([
            (Value::from("a"), Value::from(1)),
            (Value::tuple([Value::from(1), Value::from(2)]), Value::None),
        ]),
    ]
}

/// The positional args of `call_kinds.bin`: one of each kind beyond the
/// builtin containers (the independent peer's `GOLDEN_KINDS_CALL`).
fn kinds_args() -> Vec<Value> {
    use pyrpc_proto::{Date, DateTime, Fraction, Record, RecordKind, Time, TimeDelta};
    let dt = |year, month, day, hour, minute, second, microsecond, utc_offset_us| DateTime {
        year,
        month,
        day,
        hour,
        minute,
        second,
        microsecond,
        utc_offset_us,
        fold: 0,
    };
    vec![
        Value::ByteArray(Bytes::from_static(b"\x00ab")),
        Value::from(dt(2024, 2, 29, 23, 59, 58, 123_456, None)),
        Value::from(dt(2024, 1, 2, 3, 4, 5, 6, Some(-17_999_999_993))),
        Value::from(Date {
            year: 1,
            month: 1,
            day: 1,
        }),
        Value::from(Time {
            hour: 23,
            minute: 59,
            second: 59,
            microsecond: 999_999,
            utc_offset_us: Some(0),
            fold: 0,
        }),
        Value::from(TimeDelta {
            days: -1,
            seconds: 86_399,
            microseconds: 999_999,
        }),
        Value::Decimal("-0".into()),
        Value::Decimal("1E+999999999".into()),
        Value::Decimal("NaN".into()),
        Value::Uuid([
            0x12, 0x34, 0x56, 0x78, 0x12, 0x34, 0x56, 0x78, 0x12, 0x34, 0x56, 0x78, 0x12, 0x34,
            0x56, 0x78,
        ]),
        Value::Complex { re: 1.5, im: -2.0 },
        Value::from(
            Fraction::new(-num_bigint::BigInt::from(2).pow(100), 3.into()).expect("nonzero"),
        ),
        Value::from(
            Record::new("shop.models:Order", RecordKind::Dataclass)
                .field("id", 7)
                .field("items", Value::list([Value::from("a")])),
        ),
        Value::from(Record::new("shop:Color", RecordKind::Enum).field("RED", "red")),
    ]
}

fn call_kinds_frame() -> wire::ClientFrame {
    client_request(
        13,
        request::Kind::Call(wire::Call {
            method: "echo".into(),
            args: kinds_args().into_iter().map(wire::Value::from).collect(),
            kwargs: vec![],
            timeout_ms: 0,
            stream_window: 0,
        }),
    )
}

/// The value of `call_deep.bin`: `{'k': (1,)}` inside 38 nested lists, 41
/// levels deep, so it travels flat.
fn deep_arg() -> Value {
    let mut v = Value::dict([(Value::from("k"), Value::tuple([Value::from(1)]))]);
    for _ in 0..38 {
        v = Value::list([v]);
    }
    v
}

fn call_deep_frame() -> wire::ClientFrame {
    client_request(
        14,
        request::Kind::Call(wire::Call {
            method: "echo".into(),
            args: vec![wire::Value::from(deep_arg())],
            kwargs: vec![],
            timeout_ms: 0,
            stream_window: 0,
        }),
    )
}

/// The args of `call_ndarray.bin` (the independent peer's `ARRAY_ARGS`):
/// numpy's `np.array([[0.5, 1, 1.5], [2, -0.0, inf]])`, `np.int16(-2)`,
/// `np.zeros(0, bool)`, `np.array([1.5-2j], complex64)` and
/// `np.array([2**64-1], uint64)`.
fn ndarray_args() -> Vec<Value> {
    let f64s: Vec<u8> = [0.5f64, 1.0, 1.5, 2.0, -0.0, f64::INFINITY]
        .iter()
        .flat_map(|f| f.to_le_bytes())
        .collect();
    let c64: Vec<u8> = [1.5f32, -2.0]
        .iter()
        .flat_map(|f| f.to_le_bytes())
        .collect();
    [
        NdArray::new(Dtype::Float64, vec![2, 3], f64s.into()),
        NdArray::scalar(Dtype::Int16, (-2i16).to_le_bytes().to_vec().into()),
        NdArray::new(Dtype::Bool, vec![0], Bytes::new()),
        NdArray::new(Dtype::Complex64, vec![1], c64.into()),
        NdArray::new(
            Dtype::Uint64,
            vec![1],
            u64::MAX.to_le_bytes().to_vec().into(),
        ),
    ]
    .into_iter()
    .map(|a| Value::from(a.unwrap()))
    .collect()
}

fn call_ndarray_frame() -> wire::ClientFrame {
    client_request(
        15,
        request::Kind::Call(wire::Call {
            method: "echo".into(),
            args: ndarray_args().into_iter().map(wire::Value::from).collect(),
            kwargs: vec![],
            timeout_ms: 0,
            stream_window: 0,
        }),
    )
}

/// The args of `call_packed.bin`: two lists sent packed (PROTOCOL.md §5,
/// "Packed lists") and four that are not (empty, a big int, a bool, mixed).
fn packed_args() -> Vec<Value> {
    vec![
        Value::list([Value::from(1), Value::from(-2), Value::from(300)]),
        Value::list([Value::from(0.5), Value::from(-1.5)]),
        Value::list([]),
        Value::list([
            Value::from(1),
            Value::from(num_bigint::BigInt::from(2).pow(64)),
        ]),
        Value::list([Value::Bool(true), Value::from(1)]),
        Value::list([Value::from(1), Value::from(1.5)]),
    ]
}

fn call_packed_frame() -> wire::ClientFrame {
    client_request(
        15,
        request::Kind::Call(wire::Call {
            method: "echo".into(),
            args: packed_args().into_iter().map(wire::Value::from).collect(),
            kwargs: vec![],
            timeout_ms: 0,
            stream_window: 0,
        }),
    )
}

fn call_frame() -> wire::ClientFrame {
    client_request(
        7,
        request::Kind::Call(wire::Call {
            method: "echo".into(),
            args: call_args().into_iter().map(wire::Value::from).collect(),
            kwargs: vec![
                wire::Kwarg {
                    name: "foo".into(),
                    value: Some(Value::from("foo").into()),
                },
                wire::Kwarg {
                    name: "n".into(),
                    value: Some(Value::None.into()),
                },
            ],
            timeout_ms: 1500,
            stream_window: 0,
        }),
    )
}

/// The shared secret and nonces of the `auth_*` vectors.
const AUTH_SECRET: &str = "golden secret";

fn client_nonce() -> Vec<u8> {
    (0..32).collect()
}

fn server_challenge() -> Vec<u8> {
    (32..64).collect()
}

fn golden_capabilities() -> Option<wire::Capabilities> {
    Some(wire::Capabilities {
        nonblocking: true,
        max_frame_len: 671_088_640,
        max_value_depth: 32,
        pickle: false,
        max_in_flight_per_connection: 64,
    })
}

/// Named messages, each checked against `proto/testdata/<name>.bin`.
type Vectors<M> = Vec<(&'static str, M)>;

/// The four frames of an authenticated hello, in order.
fn auth_vectors() -> (Vectors<wire::ClientFrame>, Vectors<wire::ServerFrame>) {
    let secret = Secret::from(AUTH_SECRET);
    let (nc, ns) = (client_nonce(), server_challenge());
    let client = vec![
        (
            "auth_client_hello",
            wire::ClientFrame {
                kind: Some(client_frame::Kind::Hello(wire::ClientHello {
                    protocol_version: pyrpc_proto::PROTOCOL_VERSION,
                    peer_name: "golden-client/1.0".into(),
                    auth_nonce: nc.clone().into(),
                    ..Default::default()
                })),
            },
        ),
        (
            "auth_response",
            wire::ClientFrame {
                kind: Some(client_frame::Kind::Auth(wire::AuthResponse {
                    mac: secret.client_mac(&ns, &nc).into(),
                })),
            },
        ),
    ];
    let server_hello = |challenge: Vec<u8>, proof: Vec<u8>| wire::ServerFrame {
        kind: Some(server_frame::Kind::Hello(wire::ServerHello {
            protocol_version: pyrpc_proto::PROTOCOL_VERSION,
            peer_name: "golden-server/1.0".into(),
            capabilities: golden_capabilities(),
            auth_challenge: challenge.into(),
            auth_proof: proof.into(),
            ..Default::default()
        })),
    };
    let server = vec![
        ("auth_server_hello", server_hello(ns.clone(), Vec::new())),
        (
            "auth_server_proof",
            server_hello(Vec::new(), secret.server_proof(&ns, &nc)),
        ),
    ];
    (client, server)
}

fn client_vectors() -> Vec<(&'static str, wire::ClientFrame)> {
    vec![
        (
            "client_hello",
            wire::ClientFrame {
                kind: Some(client_frame::Kind::Hello(wire::ClientHello {
                    protocol_version: pyrpc_proto::PROTOCOL_VERSION,
                    peer_name: "golden-client/1.0".into(),
                    max_frame_len: 671_088_640,
                    ..Default::default()
                })),
            },
        ),
        (
            "ping",
            client_request(1, request::Kind::Ping(wire::Ping {})),
        ),
        ("call", call_frame()),
        ("call_kinds", call_kinds_frame()),
        ("call_deep", call_deep_frame()),
        ("call_ndarray", call_ndarray_frame()),
        ("call_packed", call_packed_frame()),
        (
            "submit",
            client_request(
                9,
                request::Kind::Submit(wire::Submit {
                    call_id: Bytes::from_static(&CALL_ID),
                    call: Some(wire::Call {
                        method: "sleep".into(),
                        args: vec![Value::from(0.5).into()],
                        ..Default::default()
                    }),
                    keep_ms: 60_000,
                }),
            ),
        ),
        (
            "fetch",
            client_request(
                10,
                request::Kind::Fetch(wire::Fetch {
                    call_id: Bytes::from_static(&CALL_ID),
                    wait_ms: 100,
                }),
            ),
        ),
        (
            "release",
            client_request(
                11,
                request::Kind::Release(wire::Release {
                    call_id: Bytes::from_static(&CALL_ID),
                }),
            ),
        ),
        (
            "shutdown",
            client_request(0, request::Kind::Shutdown(wire::Shutdown {})),
        ),
        (
            "list_methods",
            client_request(12, request::Kind::ListMethods(wire::ListMethods {})),
        ),
        (
            "stats",
            client_request(13, request::Kind::Stats(wire::Stats {})),
        ),
        (
            "cancel",
            client_request(14, request::Kind::Cancel(wire::Cancel { id: 7 })),
        ),
        (
            "call_stream",
            client_request(
                15,
                request::Kind::Call(wire::Call {
                    method: "count".into(),
                    args: vec![Value::from(3).into()],
                    stream_window: 128,
                    ..Default::default()
                }),
            ),
        ),
        (
            "credit",
            wire::ClientFrame {
                kind: Some(client_frame::Kind::Credit(wire::Credit {
                    id: 15,
                    items: 64,
                })),
            },
        ),
    ]
}

fn server_vectors() -> Vec<(&'static str, wire::ServerFrame)> {
    let refused = RemoteError::new(ErrorKind::Protocol, "unsupported protocol version 2");
    // The message is Python's str(KeyError('k')): the key's repr, 'k'.
    let key_error = RemoteError::exception("KeyError", "builtins", vec![Value::from("k")])
        .with_traceback(
            "Traceback (most recent call last):\n  File \"server.py\", line 3, in raise_\nKeyError: 'k'\n",
        );
    vec![
        (
            "server_hello",
            wire::ServerFrame {
                kind: Some(server_frame::Kind::Hello(wire::ServerHello {
                    protocol_version: pyrpc_proto::PROTOCOL_VERSION,
                    peer_name: "golden-server/1.0".into(),
                    capabilities: Some(wire::Capabilities {
                        nonblocking: true,
                        max_frame_len: 671_088_640,
                        max_value_depth: 32,
                        pickle: false,
                        max_in_flight_per_connection: 64,
                    }),
                    error: None,
                    ..Default::default()
                })),
            },
        ),
        (
            "server_hello_refused",
            wire::ServerFrame {
                kind: Some(server_frame::Kind::Hello(wire::ServerHello {
                    protocol_version: pyrpc_proto::PROTOCOL_VERSION,
                    peer_name: "golden-server/1.0".into(),
                    capabilities: None,
                    error: Some(refused.into()),
                    ..Default::default()
                })),
            },
        ),
        (
            "response_value",
            server_response(
                7,
                response::Kind::Value(
                    Value::tuple([
                        Value::tuple([Value::from(1)]),
                        Value::dict([(Value::from("foo"), Value::from("foo"))]),
                    ])
                    .into(),
                ),
            ),
        ),
        (
            "response_error",
            server_response(8, response::Kind::Error(key_error.into())),
        ),
        (
            "response_ack",
            server_response(9, response::Kind::Ack(wire::Ack {})),
        ),
        (
            "response_pending",
            server_response(10, response::Kind::Pending(wire::Pending {})),
        ),
        (
            "response_methods",
            server_response(
                12,
                response::Kind::Methods(wire::MethodList {
                    methods: vec![
                        wire::MethodInfo {
                            name: "echo".into(),
                            signature: "(*args, **kwargs)".into(),
                            doc: "Returns (args, kwargs).".into(),
                        },
                        wire::MethodInfo {
                            name: "connected".into(),
                            ..Default::default()
                        },
                        wire::MethodInfo {
                            name: "shutdown".into(),
                            ..Default::default()
                        },
                    ],
                }),
            ),
        ),
        (
            "response_stats",
            server_response(
                13,
                response::Kind::Stats(wire::ServerStats {
                    calls: 1000,
                    errors: 3,
                    in_flight: 0,
                    kept_results: 2,
                    connections: 1,
                    uptime_ms: 60_000,
                    latency_p50_us: 45,
                    latency_p90_us: 80,
                    latency_p99_us: 250,
                    latency_max_us: 1200,
                }),
            ),
        ),
        (
            "stream_item",
            wire::ServerFrame {
                kind: Some(server_frame::Kind::Item(wire::StreamItem {
                    id: 15,
                    value: Some(Value::from(0).into()),
                })),
            },
        ),
        (
            "response_stream_end",
            server_response(15, response::Kind::StreamEnd(wire::StreamEnd { items: 3 })),
        ),
    ]
}

fn bless() -> bool {
    std::env::var_os("PYRPC_BLESS_GOLDEN").is_some()
}

/// Encodes `msg` as a frame, compares it with `<name>.bin` (or writes it when
/// blessing), and decodes the file back into an equal message.
fn check<M>(name: &str, msg: M)
where
    M: prost::Message + Default + PartialEq + Clone + std::fmt::Debug,
{
    let path = testdata().join(format!("{name}.bin"));
    let mut encoded = BytesMut::new();
    Codec::<M, M>::new()
        .encode(msg.clone(), &mut encoded)
        .unwrap();
    if bless() {
        std::fs::write(&path, &encoded).unwrap();
    }
    let committed = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (bless with PYRPC_BLESS_GOLDEN=1)", path.display()));
    assert_eq!(
        hex(&encoded),
        hex(&committed),
        "{name}: our encoding differs from proto/testdata/{name}.bin"
    );
    let mut buf = BytesMut::from(&committed[..]);
    let decoded = Codec::<M, M>::new().decode(&mut buf).unwrap();
    assert_eq!(decoded.as_ref(), Some(&msg), "{name}: decoding the file");
    assert!(buf.is_empty(), "{name}: bytes left after the frame");
}

fn hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn client_frames_match_the_golden_files() {
    for (name, msg) in client_vectors() {
        check(name, msg);
    }
}

#[test]
fn server_frames_match_the_golden_files() {
    for (name, msg) in server_vectors() {
        check(name, msg);
    }
}

#[test]
fn auth_frames_match_the_golden_files() {
    let (client, server) = auth_vectors();
    for (name, msg) in client {
        check(name, msg);
    }
    for (name, msg) in server {
        check(name, msg);
    }
    let secret = Secret::from(AUTH_SECRET);
    let (nc, ns) = (client_nonce(), server_challenge());
    assert!(secret.verify_client(&ns, &nc, &secret.client_mac(&ns, &nc)));
    assert!(!secret.verify_client(&nc, &ns, &secret.client_mac(&ns, &nc)));
}

#[test]
fn ping_is_the_example_of_the_protocol_doc() {
    let bytes = std::fs::read(testdata().join("ping.bin")).unwrap();
    assert_eq!(hex(&bytes), "00 00 00 06 12 04 08 01 32 00");
}

#[test]
fn call_values_decode_to_python_shapes() {
    let bytes = std::fs::read(testdata().join("call.bin")).unwrap();
    let frame = Codec::<wire::ClientFrame, wire::ClientFrame>::new()
        .decode(&mut BytesMut::from(&bytes[..]))
        .unwrap()
        .unwrap();
    let Some(client_frame::Kind::Request(wire::Request {
        kind: Some(request::Kind::Call(call)),
        ..
    })) = frame.kind
    else {
        panic!("call.bin is not a Call: {frame:?}");
    };
    let args: Vec<Value> = call
        .args
        .into_iter()
        .map(|v| Value::try_from(v).unwrap())
        .collect();
    assert_eq!(args, call_args());
    assert!(matches!(args[2], Value::BigInt(_)), "2**64 is a big int");
    assert!(matches!(args[10], Value::Int(0)), "0 is present, an int");
    assert_eq!(
        args[16].to_string(),
        "{'a': 1, (1, 2): None}",
        "dict with a tuple key"
    );
}

#[test]
fn call_kinds_decode_to_the_new_kinds() {
    let bytes = std::fs::read(testdata().join("call_kinds.bin")).unwrap();
    let frame = Codec::<wire::ClientFrame, wire::ClientFrame>::new()
        .decode(&mut BytesMut::from(&bytes[..]))
        .unwrap()
        .unwrap();
    let Some(client_frame::Kind::Request(wire::Request {
        kind: Some(request::Kind::Call(call)),
        ..
    })) = frame.kind
    else {
        panic!("call_kinds.bin is not a Call: {frame:?}");
    };
    let args: Vec<Value> = call
        .args
        .into_iter()
        .map(|v| Value::try_from(v).unwrap())
        .collect();
    assert_eq!(args, kinds_args());
    assert_eq!(
        args[2].to_string(),
        "datetime.datetime(2024, 1, 2, 3, 4, 5, 6, \
         tzinfo=datetime.timezone(datetime.timedelta(days=-1, seconds=68400, microseconds=7)))"
    );
}

#[test]
fn call_ndarray_decodes_to_checked_arrays() {
    let bytes = std::fs::read(testdata().join("call_ndarray.bin")).unwrap();
    let frame = Codec::<wire::ClientFrame, wire::ClientFrame>::new()
        .decode(&mut BytesMut::from(&bytes[..]))
        .unwrap()
        .unwrap();
    let Some(client_frame::Kind::Request(wire::Request {
        kind: Some(request::Kind::Call(call)),
        ..
    })) = frame.kind
    else {
        panic!("call_ndarray.bin is not a Call: {frame:?}");
    };
    let args: Vec<Value> = call
        .args
        .into_iter()
        .map(|v| Value::try_from(v).unwrap())
        .collect();
    assert_eq!(args, ndarray_args());
    assert_eq!(
        args[0].to_string(),
        "array([[0.5, 1.0, 1.5], [2.0, -0.0, inf]], dtype=float64)"
    );
    assert_eq!(args[1].to_string(), "array(-2, dtype=int16)");
}

#[test]
fn call_deep_is_flat_and_decodes() {
    let bytes = std::fs::read(testdata().join("call_deep.bin")).unwrap();
    let frame = Codec::<wire::ClientFrame, wire::ClientFrame>::new()
        .decode(&mut BytesMut::from(&bytes[..]))
        .unwrap()
        .unwrap();
    let Some(client_frame::Kind::Request(wire::Request {
        kind: Some(request::Kind::Call(call)),
        ..
    })) = frame.kind
    else {
        panic!("call_deep.bin is not a Call: {frame:?}");
    };
    let arg = call.args.into_iter().next().unwrap();
    assert!(matches!(arg.kind, Some(wire::value::Kind::Flat(_))));
    assert_eq!(Value::try_from(arg).unwrap(), deep_arg());
}

/// Every vector has a `.bin`, a `.txtpb` and a line in the README; no file is
/// left unchecked.
#[test]
fn every_vector_is_described_and_checked() {
    let mut names: Vec<&str> = client_vectors().iter().map(|(n, _)| *n).collect();
    names.extend(server_vectors().iter().map(|(n, _)| *n));
    let (auth_client, auth_server) = auth_vectors();
    names.extend(auth_client.iter().map(|(n, _)| *n));
    names.extend(auth_server.iter().map(|(n, _)| *n));
    names.sort_unstable();
    let readme = std::fs::read_to_string(testdata().join("README.md")).unwrap();
    let mut files: Vec<String> = Vec::new();
    for entry in std::fs::read_dir(testdata()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".bin") {
            files.push(stem.to_owned());
        }
    }
    files.sort_unstable();
    assert_eq!(
        files, names,
        "the .bin files are exactly the vectors checked here"
    );
    for name in names {
        assert!(
            testdata().join(format!("{name}.txtpb")).exists(),
            "{name}.txtpb describes {name}.bin"
        );
        assert!(
            readme.contains(&format!("`{name}.bin`")),
            "proto/testdata/README.md lists {name}.bin"
        );
    }
}

/// Decodes one frame of `bytes` as `M`.
fn decode_frame<M>(bytes: &[u8]) -> Result<M, String>
where
    M: prost::Message + Default,
{
    let mut buf = BytesMut::from(bytes);
    match Codec::<M, M>::new().decode(&mut buf) {
        Ok(Some(m)) if buf.is_empty() => Ok(m),
        Ok(Some(_)) => Err("bytes left after the frame".into()),
        Ok(None) => Err("an incomplete frame".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// `noncanonical/NAME--VARIANT.bin` is another valid encoding of the message
/// of `NAME.bin`, as other protobuf runtimes write it (a default written out,
/// fields in another order, unknown fields, a scalar field repeated):
/// docs/PROTOCOL.md says every receiver accepts them. Ours must decode each to
/// the golden message.
#[test]
fn noncanonical_encodings_decode_to_the_golden_messages() {
    let dir = testdata().join("noncanonical");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let file = entry.unwrap().file_name().to_string_lossy().into_owned();
        let Some(stem) = file.strip_suffix(".bin") else {
            continue;
        };
        let (golden, _variant) = stem
            .split_once("--")
            .unwrap_or_else(|| panic!("{file}: name it GOLDEN--VARIANT.bin"));
        let variant = std::fs::read(dir.join(&file)).unwrap();
        let want = std::fs::read(testdata().join(format!("{golden}.bin"))).unwrap();
        assert_ne!(hex(&variant), hex(&want), "{file}: not another encoding");
        let described =
            std::fs::read_to_string(testdata().join(format!("{golden}.txtpb"))).unwrap();
        if described.contains("# proto-message: pyrpc.v1.ClientFrame") {
            let got = decode_frame::<wire::ClientFrame>(&variant);
            let want = decode_frame::<wire::ClientFrame>(&want);
            assert_eq!(got, want, "{file} decodes to the message of {golden}.bin");
        } else {
            let got = decode_frame::<wire::ServerFrame>(&variant);
            let want = decode_frame::<wire::ServerFrame>(&want);
            assert_eq!(got, want, "{file} decodes to the message of {golden}.bin");
        }
        seen += 1;
    }
    assert!(seen >= 16, "only {seen} non-canonical vectors");
}

/// What docs/PROTOCOL.md says a receiver refuses: a field running past the
/// end of its message, a string that is not UTF-8; and a wire type that does
/// not match the field, which the doc lets a receiver refuse or skip (prost
/// refuses it, Python's runtime skips it).
#[test]
fn malformed_encodings_are_refused() {
    let frame = |body: &[u8]| {
        let mut f = (body.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(body);
        f
    };
    let cases: [(&str, &[u8]); 4] = [
        // Call.method claims 9 bytes, 4 follow (inside a well-formed Request).
        (
            "truncated string",
            &[0x12, 0x08, 0x08, 0x01, 0x12, 0x04, 0x0a, 0x09, b'e', b'c'],
        ),
        // Request claims 6 bytes, 4 follow.
        ("truncated message", &[0x12, 0x06, 0x08, 0x01, 0x32, 0x00]),
        // Call.method holds 0xff, not UTF-8.
        (
            "invalid UTF-8",
            &[0x12, 0x07, 0x08, 0x01, 0x12, 0x03, 0x0a, 0x01, 0xff],
        ),
        // Request.id (a varint) sent as a length-delimited field.
        (
            "wrong wire type",
            &[0x12, 0x05, 0x0a, 0x01, 0x01, 0x32, 0x00],
        ),
    ];
    for (what, body) in cases {
        let got = decode_frame::<wire::ClientFrame>(&frame(body));
        assert!(got.is_err(), "{what}: decoded to {got:?}");
    }
}

#[test]
fn call_packed_holds_packed_lists_and_decodes_to_plain_lists() {
    let bytes = std::fs::read(testdata().join("call_packed.bin")).unwrap();
    let frame = Codec::<wire::ClientFrame, wire::ClientFrame>::new()
        .decode(&mut BytesMut::from(&bytes[..]))
        .unwrap()
        .unwrap();
    let Some(client_frame::Kind::Request(wire::Request {
        kind: Some(request::Kind::Call(call)),
        ..
    })) = frame.kind
    else {
        panic!("call_packed.bin is not a Call: {frame:?}");
    };
    use wire::value::Kind;
    let kinds: Vec<&str> = call
        .args
        .iter()
        .map(|v| match v.kind {
            Some(Kind::IntList(_)) => "int_list",
            Some(Kind::FloatList(_)) => "float_list",
            Some(Kind::List(_)) => "list",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        ["int_list", "float_list", "list", "list", "list", "list"]
    );
    let args: Vec<Value> = call
        .args
        .into_iter()
        .map(|v| Value::try_from(v).unwrap())
        .collect();
    assert_eq!(args, packed_args());
    // The example of PROTOCOL.md.
    let first = pyrpc_proto::raw::encode_value(packed_args().swap_remove(0));
    assert_eq!(
        &first[..],
        &[0x82, 0x02, 0x06, 0x0a, 0x04, 0x02, 0x03, 0xd8, 0x04]
    );
}
