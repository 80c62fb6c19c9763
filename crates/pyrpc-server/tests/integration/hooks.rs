//! Call and exception hooks.

use std::sync::{Arc, Mutex};

use pyrpc_proto::{Args, ErrorKind};
use pyrpc_server::Server;

use crate::peer::{methods, Gate, Peer};

#[tokio::test]
async fn hooks_see_calls_and_exceptions_with_summaries() {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let excs = Arc::new(Mutex::new(Vec::new()));
    let (c, x) = (Arc::clone(&calls), Arc::clone(&excs));
    let s = Server::builder(methods(&Gate::new()))
        .on_call(move |r| c.lock().unwrap().push(r.summary()))
        .on_exception(move |r, e| x.lock().unwrap().push((r.summary(), e.kind)))
        .build();
    let mut p = Peer::connect(&s).await;
    p.call_wait("echo", Args::new().arg(1).kwarg("foo", "foo"))
        .await
        .value();
    p.call_wait("fail", Args::new()).await.error();
    p.call_wait("nope", Args::new().arg(1)).await.error();
    // refused before the callee: no hook
    p.call_wait("_private", Args::new()).await.error();

    assert_eq!(
        *calls.lock().unwrap(),
        vec!["echo(args=(1,), kwargs={'foo': 'foo'}) -> ((1,), {'foo': 'foo'})".to_string()]
    );
    let excs = excs.lock().unwrap();
    assert_eq!(excs.len(), 2, "{excs:?}");
    assert_eq!(
        excs[0],
        (
            "fail(args=(), kwargs={}) -> ValueError('bad')".to_string(),
            ErrorKind::Exception
        )
    );
    assert_eq!(excs[1].1, ErrorKind::NoSuchMethod);
    assert!(excs[1]
        .0
        .starts_with("nope(args=(1,), kwargs={}) -> AttributeError("));
}
