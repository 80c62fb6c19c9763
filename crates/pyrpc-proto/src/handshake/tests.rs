//! The handshake machines, frame by frame: no sockets, no clock.

use super::*;
use crate::auth::Secret;
use crate::wire::{self, client_frame, server_frame, ClientFrame, ServerFrame};
use crate::{ErrorKind, RemoteError, PROTOCOL_VERSION};

const NC: Nonce = [7; crate::auth::NONCE_LEN];
const NS: Nonce = [9; crate::auth::NONCE_LEN];

fn caps() -> wire::Capabilities {
    wire::Capabilities {
        nonblocking: true,
        max_frame_len: 4096,
        max_value_depth: 32,
        pickle: false,
        max_in_flight_per_connection: 8,
    }
}

fn server(secret: Option<&str>, challenge: Option<Nonce>) -> ServerHandshake {
    let settings =
        ServerSettings::new("server/1", caps(), 4096).with_secret(secret.map(Secret::from));
    ServerHandshake::new(settings, challenge)
}

fn client(secret: Option<&str>, nonce: Option<Nonce>) -> (ClientHandshake, ClientFrame) {
    let settings = ClientSettings::new("client/1", 1 << 20).with_secret(secret.map(Secret::from));
    ClientHandshake::new(settings, nonce)
}

fn hello_of(frame: &ClientFrame) -> &wire::ClientHello {
    match &frame.kind {
        Some(client_frame::Kind::Hello(h)) => h,
        other => panic!("not a hello: {other:?}"),
    }
}

fn as_frame(hello: wire::ServerHello) -> ServerFrame {
    ServerFrame {
        kind: Some(server_frame::Kind::Hello(hello)),
    }
}

fn ping() -> ClientFrame {
    ClientFrame {
        kind: Some(client_frame::Kind::Request(wire::Request {
            id: 1,
            kind: Some(wire::request::Kind::Ping(wire::Ping {})),
        })),
    }
}

#[test]
fn plain_hellos_agree_on_limits_and_names() {
    let (mut c, hello) = client(None, Some(NC));
    let h = hello_of(&hello);
    assert_eq!(h.protocol_version, PROTOCOL_VERSION);
    assert_eq!(h.peer_name, "client/1");
    assert_eq!(h.max_frame_len, 1 << 20);
    assert!(h.auth_nonce.is_empty(), "no secret, no nonce on the wire");

    let mut s = server(None, None);
    let ServerStep::Ready { hello, established } = s.on_frame(hello, Admission::Admit) else {
        panic!("admitted")
    };
    assert_eq!(hello.capabilities, Some(caps()));
    assert!(hello.error.is_none() && hello.auth_challenge.is_empty());
    assert_eq!(
        established,
        ServerEstablished {
            client_name: "client/1".into(),
            // The client accepts 1 MiB; the server sends at most its own 4096.
            max_encode_len: Some(4096),
            authenticated: false,
        }
    );
    match c.on_frame(as_frame(hello)) {
        Ok(ClientStep::Ready(done)) => {
            assert_eq!(done.max_send_len, 4096, "the server's limit");
            assert_eq!(done.server.peer_name, "server/1");
            assert!(!done.authenticated);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        c.on_frame(as_frame(wire::ServerHello::default())).err(),
        Some(ClientHandshakeError::Finished)
    );
}

#[test]
fn a_client_without_a_limit_gets_none_and_a_server_without_one_gets_ours() {
    let mut s = server(None, None);
    let hello = ClientFrame {
        kind: Some(client_frame::Kind::Hello(wire::ClientHello {
            protocol_version: PROTOCOL_VERSION,
            ..Default::default()
        })),
    };
    let ServerStep::Ready { established, .. } = s.on_frame(hello, Admission::Admit) else {
        panic!("admitted")
    };
    assert_eq!(established.max_encode_len, None);

    let (mut c, _) = client(None, None);
    let bare = wire::ServerHello {
        protocol_version: PROTOCOL_VERSION,
        ..Default::default()
    };
    match c.on_frame(as_frame(bare)) {
        Ok(ClientStep::Ready(done)) => assert_eq!(done.max_send_len, 1 << 20),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_limit_under_the_protocol_minimum_is_refused_on_both_sides() {
    let hello_with = |limit: usize| {
        let (_, mut frame) = ClientHandshake::new(ClientSettings::new("c", limit), None);
        if let Some(client_frame::Kind::Hello(h)) = &mut frame.kind {
            h.max_frame_len = limit as u64;
        }
        frame
    };
    match server(None, None).on_frame(hello_with(crate::MIN_MAX_FRAME_LEN - 1), Admission::Admit) {
        ServerStep::Refuse { cause, error, .. } => {
            assert_eq!(cause, RefusalCause::FrameLimit);
            assert_eq!(error.kind, ErrorKind::Protocol);
            assert!(error.message.contains("1023"), "{}", error.message);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        server(None, None).on_frame(hello_with(crate::MIN_MAX_FRAME_LEN), Admission::Admit),
        ServerStep::Ready { established, .. } if established.max_encode_len == Some(1024)
    ));

    let tiny = |limit: u64| wire::ServerHello {
        protocol_version: PROTOCOL_VERSION,
        capabilities: Some(wire::Capabilities {
            max_frame_len: limit,
            ..caps()
        }),
        ..Default::default()
    };
    let (mut c, _) = client(None, None);
    assert_eq!(
        c.on_frame(as_frame(tiny(100))).err(),
        Some(ClientHandshakeError::FrameLimit { theirs: 100 })
    );
    let (mut c, _) = client(None, None);
    assert!(matches!(
        c.on_frame(as_frame(tiny(1024))),
        Ok(ClientStep::Ready(done)) if done.max_send_len == 1024
    ));
}

#[test]
fn the_server_refuses_a_first_frame_that_is_no_hello() {
    let mut s = server(None, None);
    match s.on_frame(ping(), Admission::Admit) {
        ServerStep::Refuse {
            cause,
            error,
            hello,
        } => {
            assert_eq!(cause, RefusalCause::NotHello);
            assert_eq!(error.kind, ErrorKind::Protocol);
            assert_eq!(hello.error.map(RemoteError::from), Some(error));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_version_is_checked_before_admission() {
    let mut s = server(None, None);
    let hello = ClientFrame {
        kind: Some(client_frame::Kind::Hello(wire::ClientHello {
            protocol_version: 2,
            ..Default::default()
        })),
    };
    let busy = RemoteError::new(ErrorKind::Overloaded, "busy");
    match s.on_frame(hello, Admission::Refuse(busy)) {
        ServerStep::Refuse { cause, error, .. } => {
            assert_eq!(cause, RefusalCause::Version);
            assert!(error.message.contains("version 2"), "{}", error.message);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_admission_refusal_reaches_the_client_as_the_remote_error() {
    let (mut c, hello) = client(None, None);
    let mut s = server(None, None);
    let busy = RemoteError::new(ErrorKind::Overloaded, "busy");
    let step = s.on_frame(hello, Admission::Refuse(busy.clone()));
    assert!(matches!(
        &step,
        ServerStep::Refuse {
            cause: RefusalCause::Admission,
            ..
        }
    ));
    assert_eq!(
        c.on_frame(step.frame()).err(),
        Some(ClientHandshakeError::Refused(busy))
    );
}

#[test]
fn a_tls_refusal_is_told_apart() {
    let (mut c, hello) = client(None, None);
    let mut s = server(None, None);
    let tls = RemoteError::new(ErrorKind::Protocol, "this server requires TLS");
    let step = s.on_frame(hello, Admission::Refuse(tls));
    assert!(matches!(
        c.on_frame(step.frame()),
        Err(ClientHandshakeError::TlsRequired(m)) if m.contains("requires TLS")
    ));
}

#[test]
fn the_client_refuses_another_version_and_a_non_hello() {
    let (mut c, _) = client(None, None);
    let v2 = wire::ServerHello {
        protocol_version: 2,
        ..Default::default()
    };
    assert_eq!(
        c.on_frame(as_frame(v2)).err(),
        Some(ClientHandshakeError::Version {
            theirs: 2,
            ours: PROTOCOL_VERSION
        })
    );
    let (mut c, _) = client(None, None);
    let response = ServerFrame {
        kind: Some(server_frame::Kind::Response(wire::Response::default())),
    };
    assert_eq!(
        c.on_frame(response).err(),
        Some(ClientHandshakeError::NotHello)
    );
}

#[cfg(feature = "auth")]
mod auth {
    use super::*;

    /// Runs a whole exchange; returns the client's and the server's outcome.
    fn exchange(
        client_secret: Option<&str>,
        server_secret: Option<&str>,
    ) -> (
        Result<ClientEstablished, ClientHandshakeError>,
        Option<ServerStep>,
    ) {
        let (mut c, hello) = client(client_secret, Some(NC));
        let mut s = server(server_secret, Some(NS));
        let mut step = s.on_frame(hello, Admission::Admit);
        loop {
            match c.on_frame(step.frame()) {
                Ok(ClientStep::Send(answer)) => step = s.on_frame(answer, Admission::Admit),
                Ok(ClientStep::Ready(done)) => return (Ok(done), Some(step)),
                Err(e) => return (Err(e), Some(step)),
            }
        }
    }

    #[test]
    fn the_same_secret_authenticates_both_ways() {
        let (done, last) = exchange(Some("s3cret"), Some("s3cret"));
        let done = done.expect("authenticated");
        assert!(done.authenticated);
        // The capabilities come from the first hello, not the bare verdict.
        assert_eq!(done.server.capabilities, Some(caps()));
        match last {
            Some(ServerStep::Ready { established, hello }) => {
                assert!(established.authenticated);
                assert_eq!(hello.auth_proof.len(), 32);
                assert!(hello.capabilities.is_none(), "the verdict is bare");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_client_nonce_travels_and_the_challenge_is_the_servers() {
        let (_, hello) = client(Some("k"), Some(NC));
        assert_eq!(hello_of(&hello).auth_nonce.as_ref(), &NC);
        let mut s = server(Some("k"), Some(NS));
        match s.on_frame(hello, Admission::Admit) {
            ServerStep::Send(h) => assert_eq!(h.auth_challenge.as_ref(), &NS),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            s.waiting_for(),
            "the answer to the authentication challenge"
        );
        match s.on_timeout() {
            Some(ServerStep::Refuse { cause, hello, .. }) => {
                assert_eq!(cause, RefusalCause::Timeout);
                assert!(hello.error.is_some(), "the client is told why");
            }
            other => panic!("{other:?}"),
        }
        assert!(
            server(Some("k"), Some(NS)).on_timeout().is_none(),
            "no hello: no word"
        );
    }

    #[test]
    fn a_wrong_secret_is_refused_by_the_server() {
        let (done, last) = exchange(Some("wrong"), Some("s3cret"));
        match done {
            Err(ClientHandshakeError::Refused(e)) => {
                assert_eq!(e.kind, ErrorKind::Unauthenticated);
                assert!(e.message.starts_with("authentication failed"), "{e:?}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            last,
            Some(ServerStep::Refuse {
                cause: RefusalCause::BadAnswer,
                ..
            })
        ));
    }

    #[test]
    fn a_missing_secret_on_either_side_fails_on_the_client() {
        let (done, _) = exchange(None, Some("s3cret"));
        let e = done.expect_err("no secret");
        assert_eq!(e, ClientHandshakeError::SecretRequired);
        assert!(e.is_authentication());
        let (done, _) = exchange(Some("s3cret"), None);
        assert_eq!(
            done.expect_err("server cannot prove"),
            ClientHandshakeError::ServerNotAuthenticating
        );
    }

    #[test]
    fn a_server_with_a_wrong_proof_is_caught() {
        let (mut c, hello) = client(Some("k"), Some(NC));
        let mut s = server(Some("k"), Some(NS));
        let step = s.on_frame(hello, Admission::Admit);
        let Ok(ClientStep::Send(_answer)) = c.on_frame(step.frame()) else {
            panic!("answers the challenge")
        };
        // A server that does not know the secret cannot make the proof.
        let fake = wire::ServerHello {
            protocol_version: PROTOCOL_VERSION,
            auth_proof: vec![0; 32].into(),
            ..Default::default()
        };
        assert_eq!(
            c.on_frame(as_frame(fake)).err(),
            Some(ClientHandshakeError::BadProof)
        );
    }

    #[test]
    fn a_request_instead_of_the_answer_is_refused() {
        let (_, hello) = client(Some("k"), Some(NC));
        let mut s = server(Some("k"), Some(NS));
        assert!(matches!(
            s.on_frame(hello, Admission::Admit),
            ServerStep::Send(_)
        ));
        match s.on_frame(ping(), Admission::Admit) {
            ServerStep::Refuse { cause, error, .. } => {
                assert_eq!(cause, RefusalCause::NoAnswer);
                assert_eq!(error.kind, ErrorKind::Unauthenticated);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn no_nonce_means_no_authentication_on_either_side() {
        let (_, hello) = client(Some("k"), Some(NC));
        let mut s = server(Some("k"), None);
        match s.on_frame(hello, Admission::Admit) {
            ServerStep::Refuse { cause, error, .. } => {
                assert_eq!(cause, RefusalCause::NoChallenge);
                assert_eq!(error.kind, ErrorKind::Overloaded);
            }
            other => panic!("{other:?}"),
        }
        let (mut c, hello) = client(Some("k"), None);
        assert!(hello_of(&hello).auth_nonce.is_empty());
        let challenge = wire::ServerHello {
            protocol_version: PROTOCOL_VERSION,
            auth_challenge: NS.to_vec().into(),
            ..Default::default()
        };
        assert_eq!(
            c.on_frame(as_frame(challenge)).err(),
            Some(ClientHandshakeError::NoNonce)
        );
    }
}
