//! Unit tests of `dispatch` (moved out of `dispatch.rs` to keep that file to its job).

use super::*;
use bytes::Bytes;
use futures::FutureExt;
use std::panic::AssertUnwindSafe;

#[test]
fn finds_nested_pickles() {
    assert!(!contains_pickle(&Value::from(1)));
    assert!(contains_pickle(&Value::Pickle(Bytes::new())));
    assert!(contains_pickle(&Value::list([Value::tuple([
        Value::Pickle(Bytes::new())
    ])])));
    assert!(contains_pickle(&Value::dict([(
        Value::from("k"),
        Value::Pickle(Bytes::new())
    )])));
    assert!(!contains_pickle(&Value::dict([(
        Value::from("k"),
        Value::from("v")
    )])));
    let record = pyrpc_proto::Record::new("m:T", pyrpc_proto::RecordKind::Dataclass)
        .field("x", Value::Pickle(Bytes::new()));
    assert!(contains_pickle(&Value::from(record)));
}

#[test]
fn catch_unwind_turns_a_panic_into_an_error() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let fut: crate::CallFuture = Box::pin(async { panic!("boom") });
    // As `run_call` does: a panic while polling is an `Err` with its payload.
    let out = rt.block_on(AssertUnwindSafe(fut).catch_unwind());
    let msg = panic_message(out.expect_err("panicked"));
    assert_eq!(msg, "boom");
}
