//! What the server and client log, captured from `tracing`: one startup
//! line, failed TLS handshakes at WARN on `pyrpc.auth` and rate-limited,
//! connections at DEBUG, the client's failures.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use pyrpc_client::{Client, ClientConfig};
use pyrpc_proto::Args;
use pyrpc_tests::certs::TestPki;
use pyrpc_tests::{spawn_server_with, Kind};
use pyrpc_transport::ClientTls;

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

// A current-thread runtime: every task logs on this thread, where the
// subscriber is the default.
#[tokio::test(flavor = "current_thread")]
async fn the_operator_sees_startup_tls_failures_rate_limited_and_connections() {
    let out = Captured::default();
    let writer = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let pki = TestPki::new();
    let server = spawn_server_with(Kind::Tcp, |b| {
        b.tls(pki.server_tls(false)).nonblocking(true)
    })
    .await;
    let good = Client::with_config(
        server.addr.clone(),
        ClientConfig {
            tls: Some(pki.client_tls(false)),
            ..ClientConfig::default()
        },
    );
    good.call("add", Args::new().arg(1).arg(2)).await.unwrap();
    let wrong = ClientTls::from_pem(Some(pki.other_ca.as_bytes()), None).unwrap();
    for _ in 0..30 {
        let c = Client::with_config(
            server.addr.clone(),
            ClientConfig {
                tls: Some(wrong.clone()),
                ..ClientConfig::default()
            },
        );
        assert!(c.call("add", Args::new().arg(1).arg(2)).await.is_err());
    }
    server.stop().await;

    let lines = out.lines();
    let startup: Vec<_> = lines
        .iter()
        .filter(|l| l.contains("pyrpc server listening on"))
        .collect();
    assert_eq!(startup.len(), 1, "{lines:#?}");
    assert!(
        startup[0].contains("INFO") && startup[0].contains("pyrpc.server"),
        "{}",
        startup[0]
    );
    assert!(
        startup[0].contains("(TLS on, auth off, nonblocking on)"),
        "{}",
        startup[0]
    );
    let handshakes: Vec<_> = lines
        .iter()
        .filter(|l| {
            l.contains("WARN") && l.contains("pyrpc.auth") && l.contains("TLS handshake failed")
        })
        .collect();
    assert!(
        !handshakes.is_empty() && handshakes.len() <= 10,
        "30 failed handshakes gave {} warnings (rate limit 10 per 10 s)",
        handshakes.len()
    );
    assert!(
        handshakes[0].contains("does not trust this server's certificate"),
        "{}",
        handshakes[0]
    );
    let client_failures = lines
        .iter()
        .filter(|l| {
            l.contains("WARN") && l.contains("pyrpc.client") && l.contains("not signed by a CA")
        })
        .count();
    assert_eq!(
        client_failures, 30,
        "every failed connect is logged by its client"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("DEBUG") && l.contains("connection opened")),
        "{lines:#?}"
    );
    assert!(lines.iter().any(|l| l.contains("shut down")), "{lines:#?}");
}
