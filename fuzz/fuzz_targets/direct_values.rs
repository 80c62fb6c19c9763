//! The one-walk value decoder and encoder (`raw::decode_value` and
//! `raw::encode_value`, decision 0075) against the generated path, on
//! arbitrary bytes: the same value or a refusal by both, never a panic; and
//! what decodes is written back as the generated encoder writes it.
//!
//! The first byte picks the depth limit (1-80), the rest is the value.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use prost::Message;
use pyrpc_proto::{raw, wire, Value};

fuzz_target!(|data: &[u8]| {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let depth = usize::from(first % 80) + 1;
    let bytes = Bytes::copy_from_slice(body);
    let direct = raw::decode_value(bytes.clone(), depth);
    let generated = wire::Value::decode(bytes)
        .ok()
        .and_then(|w| Value::from_wire(w, depth).ok());
    match (direct, generated) {
        (Ok(a), Some(b)) => {
            let ours = raw::encode_value(a);
            let theirs = Bytes::from(wire::Value::from(b).encode_to_vec());
            assert_eq!(ours, theirs, "the same value, written differently");
        }
        (Err(_), None) => {}
        (direct, generated) => {
            panic!("the paths disagree: direct {direct:?}, generated {generated:?}")
        }
    }
});
