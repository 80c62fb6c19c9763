//! Mirrors of the frames that carry values, with every `Value` field declared
//! as `bytes`: the same wire format, but a value stays its encoded bytes.
//!
//! A `Value` field and a `bytes` field are both length-delimited on the wire,
//! so a frame decoded into these types holds each value as a zero-copy slice
//! of the frame ([`bytes::Bytes`]), and a frame encoded from them is
//! byte-for-byte what the generated [`crate::wire`] types write for the same
//! values. A peer that converts values itself (the Python binding, which
//! writes Python objects straight into protobuf bytes and reads them back
//! without building a [`crate::Value`] tree) uses these; Rust callers decode a
//! value's bytes with [`decode_value`].
//!
//! Messages that carry no value are the generated ones ([`crate::wire`]).
//!
//! # Examples
//!
//! ```
//! use prost::Message;
//! use pyrpc_proto::{raw, wire, Value};
//!
//! let value = raw::encode_value(Value::from("hi"));
//! let call = raw::Call { method: "echo".into(), args: vec![value], ..Default::default() };
//! // The same bytes as the generated message holding the decoded value.
//! let generated = wire::Call::decode(call.encode_to_vec().as_slice()).unwrap();
//! assert_eq!(Value::try_from(generated.args[0].clone()).unwrap(), Value::from("hi"));
//! assert_eq!(generated.encode_to_vec(), call.encode_to_vec());
//! ```

use bytes::Bytes;
use prost::Message;

use crate::{wire, Args, Value, ValueError};

mod encoded;
mod response_kind;

pub use encoded::{EncodedValue, SPLIT_MIN};

/// Encodes a [`Value`] as the bytes of a `pyrpc.v1.Value` message (a
/// [`Value::Encoded`] is those bytes already).
pub fn encode_value(value: Value) -> Bytes {
    match value {
        Value::Encoded(b) => b,
        // The common kinds straight to bytes (the same bytes); others the
        // generated way.
        v => match crate::value::direct::encode(&v) {
            Some(b) => b,
            None => Bytes::from(wire::Value::from(v).encode_to_vec()),
        },
    }
}

/// A call's arguments as encoded `pyrpc.v1.Value` messages.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RawArgs {
    /// Positional arguments, in order.
    pub args: Vec<Bytes>,
    /// Keyword arguments, in the caller's order.
    pub kwargs: Vec<(String, Bytes)>,
}

impl RawArgs {
    /// The `Call` of `method` with these arguments.
    pub fn into_call(self, method: &str, timeout_ms: u64) -> Call {
        Call {
            method: method.to_owned(),
            args: self.args,
            kwargs: self
                .kwargs
                .into_iter()
                .map(|(name, value)| Kwarg { name, value })
                .collect(),
            timeout_ms,
            stream_window: 0,
        }
    }
}

impl From<Args> for RawArgs {
    fn from(args: Args) -> Self {
        RawArgs {
            args: args.args.into_iter().map(encode_value).collect(),
            kwargs: args
                .kwargs
                .into_iter()
                .map(|(name, v)| (name, encode_value(v)))
                .collect(),
        }
    }
}

/// Decodes the bytes of a `pyrpc.v1.Value` message, refusing values nested
/// deeper than `max_depth`.
///
/// # Errors
///
/// A [`ValueError`] when the bytes are not a valid value.
pub fn decode_value(bytes: Bytes, max_depth: usize) -> Result<Value, ValueError> {
    if max_depth == 0 {
        return Err(ValueError::TooDeep { max: 0 });
    }
    // The common kinds in one walk; anything else (and any doubt) the
    // generated way, which decides the value or the error.
    let left = max_depth.min(crate::VALUE_DEPTH_CEILING);
    if let Some(v) = crate::value::direct::decode(&bytes, left) {
        return Ok(v);
    }
    let wire = wire::Value::decode(bytes).map_err(|e| ValueError::Undecodable(e.to_string()))?;
    Value::from_wire(wire, max_depth)
}

/// Converts a message to another with the same wire format (a mirror of
/// this module and its generated message, either way) by encoding it and
/// decoding the bytes: exact, and cheap for small frames such as the
/// handshake's, which [`crate::handshake`] reads and writes as generated
/// types.
///
/// # Errors
///
/// A [`prost::DecodeError`] when the bytes are not a valid `B` (a raw value
/// that is not a valid `Value`, decoded into a generated message).
///
/// # Examples
///
/// ```
/// use pyrpc_proto::{raw, wire};
///
/// let hello = wire::ClientFrame {
///     kind: Some(wire::client_frame::Kind::Hello(wire::ClientHello {
///         protocol_version: 1,
///         ..Default::default()
///     })),
/// };
/// let mirrored: raw::ClientFrame = raw::transcode(&hello).unwrap();
/// assert!(matches!(mirrored.kind, Some(raw::client_frame::Kind::Hello(_))));
/// let back: wire::ClientFrame = raw::transcode(&mirrored).unwrap();
/// assert_eq!(back, hello);
/// ```
pub fn transcode<B: Message + Default>(from: &impl Message) -> Result<B, prost::DecodeError> {
    B::decode(from.encode_to_vec().as_slice())
}

/// `ClientFrame` with raw values.
#[derive(Clone, PartialEq, Message)]
pub struct ClientFrame {
    /// As `wire::ClientFrame::kind`.
    #[prost(oneof = "client_frame::Kind", tags = "1, 2, 3, 4")]
    pub kind: Option<client_frame::Kind>,
}

/// The kinds of [`ClientFrame`].
pub mod client_frame {
    use crate::wire;

    /// As `wire::client_frame::Kind`.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Kind {
        /// The first frame on every connection.
        #[prost(message, tag = "1")]
        Hello(wire::ClientHello),
        /// A request.
        #[prost(message, tag = "2")]
        Request(super::Request),
        /// The answer to the server's authentication challenge.
        #[prost(message, tag = "3")]
        Auth(wire::AuthResponse),
        /// More room for the items of a streamed reply.
        #[prost(message, tag = "4")]
        Credit(wire::Credit),
    }
}

/// `Request` with raw values.
#[derive(Clone, PartialEq, Message)]
pub struct Request {
    /// As `wire::Request::id`.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// As `wire::Request::kind`.
    #[prost(oneof = "request::Kind", tags = "2, 3, 4, 5, 6, 7, 8, 9, 10")]
    pub kind: Option<request::Kind>,
}

/// The kinds of [`Request`].
pub mod request {
    use crate::wire;

    /// As `wire::request::Kind`.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Kind {
        /// Run a method and answer with its result.
        #[prost(message, tag = "2")]
        Call(super::Call),
        /// Start a method without waiting for it.
        #[prost(message, tag = "3")]
        Submit(super::Submit),
        /// Ask for the result of a submitted call.
        #[prost(message, tag = "4")]
        Fetch(wire::Fetch),
        /// Forget the result of a submitted call.
        #[prost(message, tag = "5")]
        Release(wire::Release),
        /// Liveness check.
        #[prost(message, tag = "6")]
        Ping(wire::Ping),
        /// Graceful shutdown.
        #[prost(message, tag = "7")]
        Shutdown(wire::Shutdown),
        /// Cancel a running call of this connection.
        #[prost(message, tag = "8")]
        Cancel(wire::Cancel),
        /// List the callable methods.
        #[prost(message, tag = "9")]
        ListMethods(wire::ListMethods),
        /// Server statistics.
        #[prost(message, tag = "10")]
        Stats(wire::Stats),
    }
}

/// `Call` with each argument as the bytes of its `Value` message.
#[derive(Clone, PartialEq, Message)]
pub struct Call {
    /// The method's name.
    #[prost(string, tag = "1")]
    pub method: String,
    /// Positional arguments, each an encoded `Value`.
    #[prost(bytes = "bytes", repeated, tag = "2")]
    pub args: Vec<Bytes>,
    /// Keyword arguments, in the caller's order.
    #[prost(message, repeated, tag = "3")]
    pub kwargs: Vec<Kwarg>,
    /// As `wire::Call::timeout_ms`.
    #[prost(uint64, tag = "4")]
    pub timeout_ms: u64,
    /// As `wire::Call::stream_window`: 0 takes no streamed reply.
    #[prost(uint32, tag = "5")]
    pub stream_window: u32,
}

/// `Kwarg` with its value as the bytes of its `Value` message (empty bytes
/// read as `None`, as an unset value does).
#[derive(Clone, PartialEq, Message)]
pub struct Kwarg {
    /// The keyword.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The encoded `Value`.
    #[prost(bytes = "bytes", tag = "2")]
    pub value: Bytes,
}

/// `Submit` with a raw [`Call`].
#[derive(Clone, PartialEq, Message)]
pub struct Submit {
    /// As `wire::Submit::call_id`.
    #[prost(bytes = "bytes", tag = "1")]
    pub call_id: Bytes,
    /// The call to run.
    #[prost(message, optional, tag = "2")]
    pub call: Option<Call>,
    /// As `wire::Submit::keep_ms`.
    #[prost(uint64, tag = "3")]
    pub keep_ms: u64,
}

/// `ServerFrame` with raw values.
#[derive(Clone, PartialEq, Message)]
pub struct ServerFrame {
    /// As `wire::ServerFrame::kind`.
    #[prost(oneof = "server_frame::Kind", tags = "1, 2, 3")]
    pub kind: Option<server_frame::Kind>,
}

/// The kinds of [`ServerFrame`].
pub mod server_frame {
    use crate::wire;

    /// As `wire::server_frame::Kind`.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Kind {
        /// The server's hello.
        #[prost(message, tag = "1")]
        Hello(wire::ServerHello),
        /// The answer to one request.
        #[prost(message, tag = "2")]
        Response(super::Response),
        /// One item of a streamed reply.
        #[prost(message, tag = "3")]
        Item(super::StreamItem),
    }
}

/// `StreamItem` with its value as the bytes of its `Value` message (its
/// `prost::Message` is written out in `response_kind.rs`: an
/// [`EncodedValue`] is not a type prost's derive takes).
// prost-mirror: written by hand; `cargo xtask codegen` checks the `tag` comments.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StreamItem {
    /// The id of the call whose reply streams.
    pub id: u64, // tag = "1"
    /// The encoded `Value`.
    pub value: EncodedValue, // tag = "2"
}

/// `Response` with a returned value as the bytes of its `Value` message.
#[derive(Clone, PartialEq, Message)]
pub struct Response {
    /// The id of the request this answers.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// As `wire::Response::kind`.
    #[prost(oneof = "response::Kind", tags = "2, 3, 4, 5, 6, 7, 8")]
    pub kind: Option<response::Kind>,
}

/// The kinds of [`Response`]. The oneof's methods (`encode`, `merge`,
/// `encoded_len`, what prost's derive would write) are written out in
/// `response_kind.rs`, for the [`EncodedValue`] of `Value`.
pub mod response {
    use super::EncodedValue;
    use crate::wire;

    /// As `wire::response::Kind`, the value raw.
    // prost-mirror: written by hand; `cargo xtask codegen` checks the `tag` comments.
    #[derive(Clone, Debug, PartialEq)]
    pub enum Kind {
        /// The encoded `Value` the method returned (`bytes` on the wire).
        Value(EncodedValue), // tag = "2"
        /// The method raised, or the request was refused.
        Error(wire::RemoteError), // tag = "3"
        /// Done, nothing to return.
        Ack(wire::Ack), // tag = "4"
        /// `Fetch` of a call still running.
        Pending(wire::Pending), // tag = "5"
        /// The answer to `ListMethods`.
        Methods(wire::MethodList), // tag = "6"
        /// The answer to `Stats`.
        Stats(wire::ServerStats), // tag = "7"
        /// The end of a streamed reply.
        StreamEnd(wire::StreamEnd), // tag = "8"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_frames_are_the_generated_frames() {
        let v = Value::list([Value::from(1), Value::from("x"), Value::None]);
        let generated = wire::ServerFrame {
            kind: Some(wire::server_frame::Kind::Response(wire::Response {
                id: 7,
                kind: Some(wire::response::Kind::Value(v.clone().into())),
            })),
        };
        let bytes = generated.encode_to_vec();
        let raw = ServerFrame::decode(bytes.as_slice()).expect("decodes");
        assert_eq!(raw.encode_to_vec(), bytes);
        let Some(server_frame::Kind::Response(Response {
            id: 7,
            kind: Some(response::Kind::Value(value)),
        })) = raw.kind
        else {
            panic!("not a value response: {raw:?}");
        };
        assert_eq!(decode_value(value.into_bytes(), 10), Ok(v));
    }

    #[test]
    fn an_empty_kwarg_value_is_none() {
        let call = Call {
            method: "m".into(),
            args: vec![Bytes::new()],
            kwargs: vec![Kwarg {
                name: "k".into(),
                value: Bytes::new(),
            }],
            timeout_ms: 0,
            stream_window: 0,
        };
        let generated = wire::Call::decode(call.encode_to_vec().as_slice()).expect("decodes");
        assert_eq!(Value::try_from(generated.args[0].clone()), Ok(Value::None));
        assert_eq!(generated.kwargs[0].value, None);
        assert_eq!(decode_value(Bytes::new(), 1), Ok(Value::None));
    }
}
