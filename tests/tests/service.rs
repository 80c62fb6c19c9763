//! `#[service]`: a trait is the contract of a typed client and a server,
//! over real TCP and Unix sockets; the untyped client stands in for a Python
//! caller (keyword arguments, the exception a Python client would see).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use pyrpc_client::{Args, CallError, CallOptions, ErrorKind, ServiceError, TimeoutStage, Value};
use pyrpc_server::{CallContext, Exception, Server};
use pyrpc_tests::{trace_init, Kind, KINDS};
use serde::{Deserialize, Serialize};

#[derive(Debug, PartialEq, Exception)]
#[exception(module = "bank")]
enum BankError {
    /// A Python client sees `bank.Overdrawn(balance, wanted)`.
    Overdrawn {
        balance: i64,
        wanted: i64,
    },
    /// A Python client sees a builtin `KeyError(account)`.
    #[exception(name = "KeyError")]
    NoAccount(String),
    Closed,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Statement {
    account: String,
    balance: i64,
    history: Vec<i64>,
}

#[pyrpc_server::service]
trait Bank {
    /// Adds `amount`; returns the new balance.
    async fn deposit(&self, account: String, amount: i64) -> Result<i64, BankError>;
    async fn withdraw(&self, account: String, amount: i64) -> Result<i64, BankError>;
    async fn statement(&self, account: String) -> Result<Statement, BankError>;
    async fn greet(&self, name: String, greeting: Option<String>) -> String;
    /// Milliseconds left until the caller's deadline, if it gave one.
    async fn time_left(&self) -> Option<u64>;
    async fn nap(&self, secs: f64);
}

/// One account, "alice", holding 100.
struct MemoryBank(std::sync::Mutex<i64>);

impl Bank for MemoryBank {
    async fn deposit(&self, account: String, amount: i64) -> Result<i64, BankError> {
        if account != "alice" {
            return Err(BankError::NoAccount(account));
        }
        let mut b = self.0.lock().unwrap();
        *b += amount;
        Ok(*b)
    }

    async fn withdraw(&self, account: String, amount: i64) -> Result<i64, BankError> {
        if account == "closed" {
            return Err(BankError::Closed);
        }
        let mut b = self.0.lock().unwrap();
        if amount > *b {
            return Err(BankError::Overdrawn {
                balance: *b,
                wanted: amount,
            });
        }
        *b -= amount;
        Ok(*b)
    }

    async fn statement(&self, account: String) -> Result<Statement, BankError> {
        let balance = *self.0.lock().unwrap();
        Ok(Statement {
            account,
            balance,
            history: vec![100],
        })
    }

    async fn greet(&self, name: String, greeting: Option<String>) -> String {
        format!("{}, {name}!", greeting.as_deref().unwrap_or("Hello"))
    }

    async fn time_left(&self) -> Option<u64> {
        let ctx = CallContext::current().expect("a call's context");
        ctx.deadline
            .map(|d| d.saturating_duration_since(Instant::now()).as_millis() as u64)
    }

    async fn nap(&self, secs: f64) {
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    }
}

struct Running {
    handle: pyrpc_server::ServerHandle,
    client: BankClient,
    _dir: Option<tempfile::TempDir>,
}

async fn start(kind: Kind) -> Running {
    let (addr, dir) = match kind {
        Kind::Tcp => (pyrpc_server::Address::tcp("127.0.0.1", 0), None),
        Kind::Unix => {
            let dir = tempfile::tempdir().unwrap();
            (
                pyrpc_server::Address::unix(dir.path().join("bank.sock")),
                Some(dir),
            )
        }
    };
    let service = BankServer::new(MemoryBank(std::sync::Mutex::new(100)));
    let handle = Server::builder(service)
        .nonblocking(true)
        .build()
        .bind(&addr)
        .await
        .unwrap();
    let client = BankClient::new(handle.local_address().clone());
    Running {
        handle,
        client,
        _dir: dir,
    }
}

#[tokio::test]
async fn typed_client_and_server_over_tcp_and_unix() {
    trace_init();
    for kind in KINDS {
        let r = start(kind).await;
        let c = &r.client;
        assert_eq!(c.deposit("alice".into(), 5).await.unwrap(), 105, "{kind:?}");
        assert_eq!(c.nb_withdraw("alice".into(), 5).await.unwrap(), 100);
        let s = c.statement("alice".into()).await.unwrap();
        assert_eq!(s.history, [100]);
        assert_eq!(c.greet("Rust".into(), None).await.unwrap(), "Hello, Rust!");
        assert_eq!(
            c.greet("Rust".into(), Some("Hi".into())).await.unwrap(),
            "Hi, Rust!"
        );
        c.nap(0.0).await.unwrap();

        // The method's own errors come back as themselves.
        match c.withdraw("alice".into(), 1000).await {
            Err(ServiceError::Service(e)) => assert_eq!(
                e,
                BankError::Overdrawn {
                    balance: 100,
                    wanted: 1000
                }
            ),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            c.deposit("bob".into(), 1).await,
            Err(ServiceError::Service(BankError::NoAccount(a))) if a == "bob"
        ));
        assert!(matches!(
            c.withdraw("closed".into(), 1).await,
            Err(ServiceError::Service(BankError::Closed))
        ));
        r.handle.shutdown();
        r.handle.wait().await;
    }
}

#[tokio::test]
async fn per_call_options_reach_the_server_and_time_out() {
    let r = start(Kind::Tcp).await;
    assert_eq!(r.client.time_left().await.unwrap(), None);
    let five = r
        .client
        .with_options(CallOptions::new().call_timeout(Duration::from_secs(5)));
    let left = five.time_left().await.unwrap().expect("a deadline");
    assert!(left > 1000 && left <= 5000, "{left}");

    let short = r
        .client
        .with_options(CallOptions::new().call_timeout(Duration::from_millis(50)));
    let e = short.nap(0.5).await.unwrap_err();
    assert_eq!(e.timeout_stage(), Some(TimeoutStage::Reply));
    assert!(
        !e.is_connection_error(),
        "a slow method is no connection failure"
    );
    r.handle.shutdown();
    r.handle.wait().await;
}

#[tokio::test]
async fn a_python_shaped_caller_uses_keywords_and_sees_exceptions() {
    let r = start(Kind::Unix).await;
    // What `c.greet(name="Py")` sends from Python.
    let raw = r.client.client();
    let v = raw
        .call("greet", Args::new().kwarg("name", "Py"))
        .await
        .unwrap();
    assert_eq!(v, Value::from("Hello, Py!"));
    let v = raw
        .call("greet", Args::new().arg("Py").kwarg("greeting", "Hey"))
        .await
        .unwrap();
    assert_eq!(v, Value::from("Hey, Py!"));

    // Bad calls are told like Python's TypeError.
    let bad = |args: Args| async move { raw.call("deposit", args).await.unwrap_err() };
    let e = bad(Args::new().arg("alice").arg("ten")).await;
    let e = e.remote().unwrap();
    assert_eq!(e.kind, ErrorKind::BadArguments);
    assert_eq!(
        e.message,
        "deposit(): argument 2 (amount): expected int, got str"
    );
    let e = bad(Args::new().arg("alice")).await;
    assert_eq!(
        e.remote().unwrap().message,
        "deposit() missing required argument 'amount'"
    );
    let e = bad(Args::new().arg("alice").kwarg("account", "bob")).await;
    assert_eq!(
        e.remote().unwrap().message,
        "deposit() got multiple values for argument 'account'"
    );

    // The exception a Python client gets: type, module and args.
    let e = raw
        .call("withdraw", Args::new().arg("alice").arg(1000))
        .await
        .unwrap_err();
    let e = e.remote().unwrap();
    assert_eq!(
        (e.type_name.as_str(), e.module.as_str()),
        ("Overdrawn", "bank")
    );
    assert_eq!(e.args, [Value::from(100), Value::from(1000)]);
    let e = raw
        .call("deposit", Args::new().arg("bob").arg(1))
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "remote error");
    assert_eq!(
        pyrpc_client::Report(&e).to_string(),
        "remote error: KeyError: 'bob'"
    );

    // A name the trait lacks; the listing has the trait's methods and docs.
    let e = raw.call("rob", Args::new()).await.unwrap_err();
    assert_eq!(e.remote().unwrap().kind, ErrorKind::NoSuchMethod);
    let listed = raw.list_methods().await.unwrap();
    let deposit = listed.iter().find(|m| m.name == "deposit").unwrap();
    assert_eq!(deposit.to_string(), "deposit(account, amount)");
    assert_eq!(
        deposit.doc.as_deref(),
        Some("Adds `amount`; returns the new balance.")
    );
    r.handle.shutdown();
    r.handle.wait().await;
}

#[tokio::test]
async fn an_error_that_is_not_the_methods_own_stays_a_call_error() {
    let r = start(Kind::Tcp).await;
    // A server without `deposit` (the test service): no such method.
    let other = pyrpc_tests::spawn_server(Kind::Tcp).await;
    let c = BankClient::new(other.addr.clone());
    match c.deposit("alice".into(), 1).await {
        Err(ServiceError::Call(CallError::Remote(e))) => {
            assert_eq!(e.kind, ErrorKind::NoSuchMethod)
        }
        other => panic!("{other:?}"),
    }
    other.stop().await;
    r.handle.shutdown();
    r.handle.wait().await;
    // Nobody listens any more: a connection error.
    let e = r.client.greet("x".into(), None).await.unwrap_err();
    assert!(e.is_connection_error(), "{e:?}");
}

/// A struct is one exception type; a remote exception of another type, or
/// whose args do not fit, stays a `RemoteError`.
#[derive(Debug, PartialEq, Exception)]
#[exception(name = "PermissionError")]
struct Refused {
    reason: String,
    code: i64,
}

#[test]
fn derived_exceptions_round_trip_and_refuse_what_is_not_theirs() {
    let e = Refused {
        reason: "no".into(),
        code: 3,
    }
    .into_remote();
    assert_eq!(e.kind, ErrorKind::Exception);
    assert_eq!(
        (e.type_name.as_str(), e.module.as_str()),
        ("PermissionError", "builtins")
    );
    assert_eq!(e.to_string(), "PermissionError: ('no', 3)");
    assert_eq!(
        Refused::from_remote(e),
        Ok(Refused {
            reason: "no".into(),
            code: 3
        })
    );
    let other =
        pyrpc_server::RemoteError::exception("PermissionError", "builtins", vec!["x".into()]);
    assert_eq!(Refused::from_remote(other.clone()), Err(other));
    let wrong = pyrpc_server::RemoteError::exception(
        "PermissionError",
        "builtins",
        vec![Value::from(1), Value::from(2)],
    );
    assert!(
        Refused::from_remote(wrong).is_err(),
        "args of the wrong types"
    );
    let refusal = pyrpc_server::RemoteError::no_such_method("m");
    assert!(BankError::from_remote(refusal).is_err());
}

#[test]
fn the_blocking_client_has_the_same_methods() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let r = rt.block_on(start(Kind::Unix));
    let c = BankBlockingClient::new(r.handle.local_address().clone()).unwrap();
    assert_eq!(c.deposit("alice".into(), 1).unwrap(), 101);
    assert_eq!(c.nb_withdraw("alice".into(), 1).unwrap(), 100);
    assert!(matches!(
        c.withdraw("closed".into(), 1),
        Err(ServiceError::Service(BankError::Closed))
    ));
    let quick = c.with_options(CallOptions::new().call_timeout(Duration::from_millis(50)));
    let e = quick.nap(0.5).unwrap_err();
    assert_eq!(e.timeout_stage(), Some(TimeoutStage::Reply));
    c.client().shutdown().unwrap();
    rt.block_on(r.handle.wait());
}
