//! The built `pyrpc` binary against a real server: every command, and an exit
//! code for each class of failure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Output};
use std::time::Duration;

use pyrpc_proto::{Args, RemoteError, Value};
use pyrpc_server::{Methods, Server, ServerHandle};
use pyrpc_transport::Address;

/// A server on its own runtime, for the length of a test.
struct TestServer {
    rt: tokio::runtime::Runtime,
    handle: ServerHandle,
    _dir: Option<tempfile::TempDir>,
}

impl TestServer {
    fn start(unix: bool) -> TestServer {
        Self::start_with(unix, None)
    }

    fn start_with(unix: bool, tls: Option<pyrpc_transport::ServerTls>) -> TestServer {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let methods = Methods::new()
            .add("echo", |args: Args| {
                let (a, k) = args.into_values();
                Ok(Value::tuple([a, k]))
            })
            .describe(
                "echo",
                "(*args, **kwargs)",
                "Returns (args, kwargs).\nAs the original README's server.",
            )
            .add("fail", |args: Args| {
                Err(RemoteError::exception("ValueError", "builtins", args.args).with_traceback(
                    "Traceback (most recent call last):\n  File \"server.py\", line 9, in fail\n",
                ))
            })
            .add_async("sleep", |args: Args| async move {
                let s = args.args.first().and_then(Value::as_f64).unwrap_or(0.0);
                tokio::time::sleep(Duration::from_secs_f64(s)).await;
                Ok(Value::None)
            });
        let (addr, dir) = if unix {
            let dir = tempfile::tempdir().unwrap();
            (Address::unix(dir.path().join("s.sock")), Some(dir))
        } else {
            (Address::tcp("127.0.0.1", 0), None)
        };
        let handle = rt
            .block_on(
                Server::builder(methods)
                    .config(pyrpc_server::ServerConfig {
                        nonblocking: true,
                        tls,
                        ..Default::default()
                    })
                    .build()
                    .bind(&addr),
            )
            .unwrap();
        TestServer {
            rt,
            handle,
            _dir: dir,
        }
    }

    fn addr(&self) -> String {
        match self.handle.local_address() {
            Address::Unix(p) => format!("unix:{}", p.display()),
            other => other.to_string(),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.handle.shutdown();
        let handle = self.handle.clone();
        self.rt.block_on(async move {
            let _ = tokio::time::timeout(Duration::from_secs(5), handle.wait()).await;
        });
    }
}

fn pyrpc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pyrpc"))
        .args(args)
        .output()
        .expect("run pyrpc")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn assert_exit(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        stdout(o),
        stderr(o)
    );
}

#[test]
fn ping_answers_over_tcp_and_unix() {
    for unix in [false, true] {
        let s = TestServer::start(unix);
        let o = pyrpc(&["ping", &s.addr()]);
        assert_exit(&o, 0);
        assert!(stdout(&o).starts_with("ok "), "{}", stdout(&o));
    }
}

#[test]
fn call_sends_json_and_prints_json_or_repr() {
    let s = TestServer::start(false);
    let a = s.addr();
    let o = pyrpc(&["call", &a, "echo", "1", "\"foo\"", "--kw", "bar=[1, 2.5]"]);
    assert_exit(&o, 0);
    assert_eq!(
        stdout(&o),
        "{\"$tuple\":[{\"$tuple\":[1,\"foo\"]},{\"bar\":[1,2.5]}]}\n"
    );

    let o = pyrpc(&[
        "call",
        &a,
        "echo",
        r#"{"$tuple": [{"$bytes": "AAH/"}, {"$int": "123456789012345678901234567890"}]}"#,
        r#"{"$dict": [[[1, 2], {"$set": [3]}]]}"#,
        "-4",
        "--repr",
    ]);
    assert_exit(&o, 0);
    assert_eq!(
        stdout(&o),
        "(((b'\\x00\\x01\\xff', 123456789012345678901234567890), {(1, 2): {3}}, -4), {})\n"
    );

    // What --repr prints, JSON says in tags.
    let o = pyrpc(&["call", &a, "echo", r#"{"$bytes": "AAH/"}"#]);
    assert_eq!(
        stdout(&o),
        "{\"$tuple\":[{\"$tuple\":[{\"$bytes\":\"AAH/\"}]},{}]}\n"
    );
}

#[test]
fn nb_calls_poll_for_the_result() {
    let s = TestServer::start(false);
    let o = pyrpc(&["call", &s.addr(), "sleep", "0.2", "--nb", "--tick", "0.05"]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), "null\n");
}

#[test]
fn a_remote_exception_exits_1_with_the_traceback_on_stderr() {
    let s = TestServer::start(false);
    let o = pyrpc(&["call", &s.addr(), "fail", "\"bad\""]);
    assert_exit(&o, 1);
    assert_eq!(stdout(&o), "");
    assert_eq!(
        stderr(&o),
        "Traceback (most recent call last):\n  File \"server.py\", line 9, in fail\nValueError: bad\n"
    );
    let o = pyrpc(&["call", &s.addr(), "nope"]);
    assert_exit(&o, 1);
    assert!(stderr(&o).starts_with("AttributeError: "), "{}", stderr(&o));
}

#[test]
fn a_timeout_exits_3() {
    let s = TestServer::start(false);
    let o = pyrpc(&["call", &s.addr(), "sleep", "5", "--timeout", "0.2"]);
    assert_exit(&o, 3);
    assert!(stderr(&o).contains("timed out"), "{}", stderr(&o));
}

#[test]
fn no_server_exits_4() {
    // A port nobody listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let o = pyrpc(&["ping", &format!("127.0.0.1:{port}")]);
    assert_exit(&o, 4);
    assert!(stderr(&o).contains("cannot connect"), "{}", stderr(&o));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("none.sock");
    let o = pyrpc(&["methods", path.to_str().unwrap()]);
    assert_exit(&o, 4);
}

#[test]
fn a_peer_that_breaks_the_protocol_exits_5() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        // A frame of 3 bytes that are no ServerFrame.
        let _ = conn.write_all(&[0, 0, 0, 3, 0xff, 0xff, 0xff]);
        std::thread::sleep(Duration::from_millis(500));
    });
    let o = pyrpc(&["ping", &addr.to_string()]);
    assert_exit(&o, 5);
    assert!(stderr(&o).contains("protocol error"), "{}", stderr(&o));
    peer.join().unwrap();
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["call", "127.0.0.1:1", "echo", "foo"][..],
        &["call", "127.0.0.1:1", "echo", "--kw", "novalue"],
        &["call", "127.0.0.1:1", "echo", r#"{"$int": "x"}"#],
        &["ping", "no-port-here"],
        &["call", "127.0.0.1:1"],
        &["frobnicate"],
        &["call", "127.0.0.1:1", "echo", "--tick", "1"],
    ] {
        let o = pyrpc(args);
        assert_exit(&o, 2);
    }
    let o = pyrpc(&["call", "127.0.0.1:1", "echo", "foo"]);
    assert!(
        stderr(&o).contains("argument 1 is not a JSON value"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn what_is_not_an_address_is_refused_with_the_reason() {
    // `http://h:1` contains a `/` but is no Unix socket path (issue #17).
    for (addr, reason) in [
        ("http://127.0.0.1:1", "unknown scheme"),
        ("127.0.0.1:99999", "out of range (0-65535)"),
        ("tcp://127.0.0.1:port", "not a number"),
        ("sock", "./name"),
    ] {
        let o = pyrpc(&["ping", addr]);
        assert_exit(&o, 2);
        assert!(stderr(&o).contains(reason), "{addr}: {}", stderr(&o));
    }
}

#[test]
fn methods_lists_signatures_and_docs() {
    let s = TestServer::start(true);
    let o = pyrpc(&["methods", &s.addr()]);
    assert_exit(&o, 0);
    assert_eq!(
        stdout(&o),
        "echo(*args, **kwargs)\n    Returns (args, kwargs).\n    As the original README's server.\n\
         fail(...)\nsleep(...)\n\
         connected()\n    Built in: returns True (the server is up).\n\
         shutdown()\n    Built in: shuts the server down gracefully.\n"
    );
}

#[test]
fn stats_show_the_counts() {
    let s = TestServer::start(false);
    let a = s.addr();
    assert_exit(&pyrpc(&["call", &a, "echo"]), 0);
    assert_exit(&pyrpc(&["call", &a, "fail"]), 1);
    let o = pyrpc(&["stats", &a, "--json"]);
    assert_exit(&o, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["calls"], 2);
    assert_eq!(v["errors"], 1);
    assert_eq!(v["in_flight"], 0);
    assert!(v["latency_us"]["p50"].as_u64().unwrap() <= v["latency_us"]["max"].as_u64().unwrap());
    let o = pyrpc(&["stats", &a]);
    assert_exit(&o, 0);
    let text = stdout(&o);
    assert!(
        text.starts_with("calls         2\nerrors        1\n"),
        "{text}"
    );
    assert!(text.contains("latency       p50 "), "{text}");
}

#[test]
fn help_has_examples_and_the_encoding() {
    let o = pyrpc(&["--help"]);
    assert_exit(&o, 0);
    assert!(stdout(&o).contains("EXAMPLES:"));
    assert!(stdout(&o).contains("EXIT CODES:"));
    let o = pyrpc(&["call", "--help"]);
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains("{\"$tuple\": [1, 2]}"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn tls_flags_connect_with_tls_and_a_tls_failure_exits_4() {
    let pki = pyrpc_tests::certs::TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    pki.write_to(dir.path()).unwrap();
    let file = |n: &str| dir.path().join(n).display().to_string();
    let s = TestServer::start_with(false, Some(pki.server_tls(true)));
    let addr = s.addr();
    let (ca, cert, key) = (file("ca.pem"), file("client.pem"), file("client.key"));
    let o = pyrpc(&[
        "call",
        &addr,
        "echo",
        "1",
        "--tls-ca",
        &ca,
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
    ]);
    assert_exit(&o, 0);
    assert_eq!(stdout(&o), "{\"$tuple\":[{\"$tuple\":[1]},{}]}\n");
    // No client certificate: the server requires one.
    let o = pyrpc(&["ping", &addr, "--tls-ca", &ca]);
    assert_exit(&o, 4);
    assert!(
        stderr(&o).contains("requires a client certificate"),
        "{}",
        stderr(&o)
    );
    // The wrong CA.
    let o = pyrpc(&["ping", &addr, "--tls-ca", &file("other-ca.pem")]);
    assert_exit(&o, 4);
    assert!(stderr(&o).contains("not signed by a CA"), "{}", stderr(&o));
    // A certificate without its key is a usage error.
    let o = pyrpc(&["ping", &addr, "--tls-ca", &ca, "--tls-cert", &cert]);
    assert_exit(&o, 2);
}
