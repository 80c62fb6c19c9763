//! The raw mirror of `ServerFrame` (`raw::ServerFrame`), whose `Response`
//! kinds and `StreamItem` have protobuf code written by hand for their
//! `EncodedValue` (`raw/response_kind.rs`, decision 0022), against the same
//! messages with the value as a plain `bytes` field, which prost's derive
//! writes: on any bytes, both accept or both refuse, and what they accept
//! they encode to the same bytes, of the length `encoded_len` says. Never a
//! panic. Clients read every server frame this way.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use prost::Message;
use pyrpc_proto::{raw, wire};

/// `ServerFrame` as prost derives it, the value a `bytes` field.
#[derive(Clone, PartialEq, Message)]
struct RefFrame {
    #[prost(oneof = "RefFrameKind", tags = "1, 2, 3")]
    kind: Option<RefFrameKind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum RefFrameKind {
    #[prost(message, tag = "1")]
    Hello(wire::ServerHello),
    #[prost(message, tag = "2")]
    Response(RefResponse),
    #[prost(message, tag = "3")]
    Item(RefItem),
}

#[derive(Clone, PartialEq, Message)]
struct RefResponse {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(oneof = "RefResponseKind", tags = "2, 3, 4, 5, 6, 7, 8")]
    kind: Option<RefResponseKind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum RefResponseKind {
    #[prost(bytes = "bytes", tag = "2")]
    Value(Bytes),
    #[prost(message, tag = "3")]
    Error(wire::RemoteError),
    #[prost(message, tag = "4")]
    Ack(wire::Ack),
    #[prost(message, tag = "5")]
    Pending(wire::Pending),
    #[prost(message, tag = "6")]
    Methods(wire::MethodList),
    #[prost(message, tag = "7")]
    Stats(wire::ServerStats),
    #[prost(message, tag = "8")]
    StreamEnd(wire::StreamEnd),
}

#[derive(Clone, PartialEq, Message)]
struct RefItem {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(bytes = "bytes", tag = "2")]
    value: Bytes,
}

fuzz_target!(|data: &[u8]| {
    let bytes = Bytes::copy_from_slice(data);
    let ours = raw::ServerFrame::decode(bytes.clone());
    let reference = RefFrame::decode(bytes);
    assert_eq!(
        ours.is_ok(),
        reference.is_ok(),
        "the hand-written decoder and prost's disagree on accepting the frame"
    );
    if let (Ok(ours), Ok(reference)) = (ours, reference) {
        let written = ours.encode_to_vec();
        assert_eq!(written, reference.encode_to_vec(), "encoded differently");
        assert_eq!(written.len(), ours.encoded_len(), "encoded_len is wrong");
    }
});
