//! Decodes arbitrary bytes as every top-level message and converts what
//! decodes into pyrpc's own types: never a panic, never unbounded recursion.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use prost::Message;
use pyrpc_proto::{wire, RemoteError, Value};

fuzz_target!(|data: &[u8]| {
    let bytes = Bytes::copy_from_slice(data);
    if let Ok(frame) = wire::ClientFrame::decode(bytes.clone()) {
        if let Some(wire::client_frame::Kind::Request(r)) = frame.kind {
            if let Some(wire::request::Kind::Call(c)) = r.kind {
                for v in c.args {
                    let _ = Value::try_from(v);
                }
                for kw in c.kwargs {
                    let _ = kw.value.map(Value::try_from);
                }
            }
        }
    }
    if let Ok(frame) = wire::ServerFrame::decode(bytes.clone()) {
        if let Some(wire::server_frame::Kind::Response(r)) = frame.kind {
            match r.kind {
                Some(wire::response::Kind::Value(v)) => {
                    if let Ok(v) = Value::try_from(v) {
                        // what converts, re-encodes and converts back the same
                        let again = Value::try_from(wire::Value::from(v.clone()));
                        assert!(again.is_ok());
                        let _ = v.to_string();
                    }
                }
                Some(wire::response::Kind::Error(e)) => {
                    let _ = RemoteError::from(e).to_string();
                }
                _ => {}
            }
        }
    }
    if let Ok(v) = wire::Value::decode(bytes) {
        let _ = Value::try_from(v);
    }
});
