//! The direct decoder of a call's frame (`request::decode_call_frame`,
//! decision 0078) against prost's decode of `raw::ClientFrame`: on any
//! bytes, what the direct decoder reads prost reads to the same frame (and
//! whatever it leaves, prost decides). Never a panic.
//!
//! The first byte picks the input's use: even, the rest is a frame as it
//! is; odd, the rest describes a call (id, method, arguments, keywords,
//! timeout, window), written by prost and read back by both, which must
//! then both read it.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use prost::Message;
use pyrpc_proto::{raw, request};

fuzz_target!(|data: &[u8]| {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let bytes = if first % 2 == 0 {
        Bytes::copy_from_slice(body)
    } else {
        Bytes::from(described_call(body).encode_to_vec())
    };
    let direct = request::decode_call_frame(&bytes);
    let generated = raw::ClientFrame::decode(bytes.clone());
    if let Some(frame) = &direct {
        assert_eq!(
            generated.as_ref().ok(),
            Some(frame),
            "the direct decoder read a frame prost reads otherwise"
        );
    }
    if first % 2 == 1 {
        assert!(direct.is_some(), "a call written by prost is read directly");
    }
});

/// A call frame made from arbitrary bytes: chunks split at 0xff, the first
/// few the method, keywords and arguments.
fn described_call(body: &[u8]) -> raw::ClientFrame {
    let mut parts = body.split(|&b| b == 0xff);
    let num = |p: Option<&[u8]>| {
        p.unwrap_or_default()
            .iter()
            .fold(0u64, |n, &b| n.rotate_left(8) ^ u64::from(b))
    };
    let id = num(parts.next());
    let timeout_ms = num(parts.next());
    let stream_window = num(parts.next()) as u32;
    let method = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let mut args = Vec::new();
    let mut kwargs = Vec::new();
    for (i, p) in parts.enumerate() {
        if i % 3 == 2 {
            kwargs.push(raw::Kwarg {
                name: String::from_utf8_lossy(p).into_owned(),
                value: Bytes::copy_from_slice(p),
            });
        } else {
            args.push(Bytes::copy_from_slice(p));
        }
    }
    raw::ClientFrame {
        kind: Some(raw::client_frame::Kind::Request(raw::Request {
            id,
            kind: Some(raw::request::Kind::Call(raw::Call {
                method,
                args,
                kwargs,
                timeout_ms,
                stream_window,
            })),
        })),
    }
}
