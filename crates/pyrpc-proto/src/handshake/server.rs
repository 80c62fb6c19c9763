//! The server's side of the handshake: [`ServerHandshake`].

use bytes::Bytes;

use super::Nonce;
use crate::auth::Secret;
use crate::wire::{self, client_frame, server_frame, ClientFrame, ServerFrame};
use crate::{ErrorKind, RemoteError, MIN_MAX_FRAME_LEN, PROTOCOL_VERSION};

/// What a server says about itself in its hello, and its secret.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServerSettings {
    /// The server's self-description (`ServerHello.peer_name`).
    pub name: String,
    /// The capabilities announced in the hello.
    pub capabilities: wire::Capabilities,
    /// The longest frame the server accepts (and sends), in bytes.
    pub max_frame_len: usize,
    /// The shared secret: when set, every admitted client is challenged.
    pub secret: Option<Secret>,
}

impl ServerSettings {
    /// Settings with no secret.
    pub fn new(
        name: impl Into<String>,
        capabilities: wire::Capabilities,
        max_frame_len: usize,
    ) -> Self {
        ServerSettings {
            name: name.into(),
            capabilities,
            max_frame_len,
            secret: None,
        }
    }

    /// The same settings, challenging clients with `secret`.
    #[must_use]
    pub fn with_secret(mut self, secret: Option<Secret>) -> Self {
        self.secret = secret;
        self
    }
}

/// Whether the server takes a connection, decided by the caller when the
/// client's hello arrives (its connection count, TLS, shutdown).
#[derive(Clone, Debug, PartialEq)]
pub enum Admission {
    /// Go on (to authentication, if the server holds a secret).
    Admit,
    /// Refuse with this error in the answer to the hello.
    Refuse(RemoteError),
}

/// Why a server refused a connection in the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefusalCause {
    /// The first frame was not a hello.
    NotHello,
    /// The client speaks another protocol version.
    Version,
    /// The caller's [`Admission::Refuse`].
    Admission,
    /// The server holds a secret but was given no nonce to challenge with.
    NoChallenge,
    /// The client's answer to the challenge is wrong.
    BadAnswer,
    /// The client sent something else than the answer to the challenge.
    NoAnswer,
    /// The client did not answer the challenge in time.
    Timeout,
    /// The client announced a max frame length under
    /// [`MIN_MAX_FRAME_LEN`](crate::MIN_MAX_FRAME_LEN).
    FrameLimit,
}

/// What the server does after feeding in a frame.
#[derive(Debug)]
pub enum ServerStep {
    /// Send this hello (with a challenge), then feed in the next frame.
    Send(wire::ServerHello),
    /// Send this hello (carrying `error`), then close the connection.
    Refuse {
        /// The hello to send, whose `error` says why.
        hello: wire::ServerHello,
        /// Why, for the server's logs.
        cause: RefusalCause,
        /// The error sent.
        error: RemoteError,
    },
    /// Send this hello, then go on to requests.
    Ready {
        /// The hello to send (the capabilities, or the proof).
        hello: wire::ServerHello,
        /// What was agreed.
        established: ServerEstablished,
    },
}

impl ServerStep {
    /// The hello this step sends.
    pub fn hello(&self) -> &wire::ServerHello {
        match self {
            ServerStep::Send(h) => h,
            ServerStep::Refuse { hello, .. } | ServerStep::Ready { hello, .. } => hello,
        }
    }

    /// This step's hello as the frame to send.
    pub fn frame(&self) -> ServerFrame {
        ServerFrame {
            kind: Some(server_frame::Kind::Hello(self.hello().clone())),
        }
    }
}

/// What a server learnt in a successful handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerEstablished {
    /// The client's self-description.
    pub client_name: String,
    /// The longest frame to send this client: the smaller of its limit and
    /// ours, or `None` when it announced none.
    pub max_encode_len: Option<usize>,
    /// True when the client proved that it holds the shared secret.
    pub authenticated: bool,
}

#[derive(Debug)]
enum ServerState {
    AwaitHello,
    AwaitAnswer {
        challenge: Bytes,
        client_nonce: Bytes,
        established: ServerEstablished,
    },
    Over,
}

/// The server's side of the handshake.
///
/// Each client frame goes into [`on_frame`](ServerHandshake::on_frame)
/// until it returns [`ServerStep::Ready`] or [`ServerStep::Refuse`].
#[derive(Debug)]
pub struct ServerHandshake {
    settings: ServerSettings,
    challenge: Option<Bytes>,
    state: ServerState,
}

impl ServerHandshake {
    /// Starts a handshake. `challenge` is a fresh nonce, needed when
    /// `settings.secret` is set (without one, every client is refused as
    /// overloaded: the server cannot authenticate it).
    pub fn new(settings: ServerSettings, challenge: Option<Nonce>) -> Self {
        ServerHandshake {
            challenge: challenge.map(|n| Bytes::copy_from_slice(&n)),
            settings,
            state: ServerState::AwaitHello,
        }
    }

    /// The server's hello: capabilities, and `error` when refusing.
    fn hello(&self, error: Option<RemoteError>) -> wire::ServerHello {
        wire::ServerHello {
            protocol_version: PROTOCOL_VERSION,
            peer_name: self.settings.name.clone(),
            capabilities: Some(self.settings.capabilities),
            error: error.map(Into::into),
            ..Default::default()
        }
    }

    /// The verdict on an answer to the challenge: a bare hello (version and
    /// name) with the proof or the error.
    fn verdict(&self) -> wire::ServerHello {
        wire::ServerHello {
            protocol_version: PROTOCOL_VERSION,
            peer_name: self.settings.name.clone(),
            ..Default::default()
        }
    }

    /// Refuses in the answer to the hello (with the capabilities).
    fn refuse(&mut self, cause: RefusalCause, error: RemoteError) -> ServerStep {
        self.state = ServerState::Over;
        ServerStep::Refuse {
            hello: self.hello(Some(error.clone())),
            cause,
            error,
        }
    }

    /// Refuses in the verdict on the answer to the challenge.
    fn refuse_answer(&mut self, cause: RefusalCause, error: RemoteError) -> ServerStep {
        self.state = ServerState::Over;
        let mut hello = self.verdict();
        hello.error = Some(error.clone().into());
        ServerStep::Refuse {
            hello,
            cause,
            error,
        }
    }

    /// Feeds in a frame the client sent. `admission` is asked only of a
    /// hello of the right version.
    pub fn on_frame(&mut self, frame: ClientFrame, admission: Admission) -> ServerStep {
        match std::mem::replace(&mut self.state, ServerState::Over) {
            ServerState::AwaitHello => self.on_hello(frame, admission),
            ServerState::AwaitAnswer {
                challenge,
                client_nonce,
                established,
            } => self.on_answer(frame, &challenge, &client_nonce, established),
            ServerState::Over => self.refuse(
                RefusalCause::NotHello,
                RemoteError::new(ErrorKind::Protocol, "the handshake is over"),
            ),
        }
    }

    fn on_hello(&mut self, frame: ClientFrame, admission: Admission) -> ServerStep {
        let Some(client_frame::Kind::Hello(h)) = frame.kind else {
            return self.refuse(
                RefusalCause::NotHello,
                RemoteError::new(
                    ErrorKind::Protocol,
                    "the first frame of a connection must be a hello",
                ),
            );
        };
        if h.protocol_version != PROTOCOL_VERSION {
            return self.refuse(
                RefusalCause::Version,
                RemoteError::new(
                    ErrorKind::Protocol,
                    format!(
                        "unsupported protocol version {}; this server speaks {PROTOCOL_VERSION}",
                        h.protocol_version
                    ),
                ),
            );
        }
        if h.max_frame_len > 0 && h.max_frame_len < MIN_MAX_FRAME_LEN as u64 {
            return self.refuse(
                RefusalCause::FrameLimit,
                RemoteError::new(
                    ErrorKind::Protocol,
                    format!(
                        "the client's max_frame_len of {} bytes is under the protocol's \
                         minimum of {MIN_MAX_FRAME_LEN} bytes",
                        h.max_frame_len
                    ),
                ),
            );
        }
        if let Admission::Refuse(e) = admission {
            return self.refuse(RefusalCause::Admission, e);
        }
        let max_encode_len = (h.max_frame_len > 0).then(|| {
            usize::try_from(h.max_frame_len)
                .unwrap_or(usize::MAX)
                .min(self.settings.max_frame_len)
        });
        let established = ServerEstablished {
            client_name: h.peer_name,
            max_encode_len,
            authenticated: false,
        };
        if self.settings.secret.is_none() {
            return ServerStep::Ready {
                hello: self.hello(None),
                established,
            };
        }
        let Some(challenge) = self.challenge.clone() else {
            return self.refuse(
                RefusalCause::NoChallenge,
                RemoteError::new(
                    ErrorKind::Overloaded,
                    "the server cannot make an authentication challenge",
                ),
            );
        };
        let mut hello = self.hello(None);
        hello.auth_challenge = challenge.clone();
        self.state = ServerState::AwaitAnswer {
            challenge,
            client_nonce: h.auth_nonce,
            established,
        };
        ServerStep::Send(hello)
    }

    fn on_answer(
        &mut self,
        frame: ClientFrame,
        challenge: &[u8],
        client_nonce: &[u8],
        mut established: ServerEstablished,
    ) -> ServerStep {
        let Some(secret) = self.settings.secret.clone() else {
            return self.refuse_answer(
                RefusalCause::NoChallenge,
                RemoteError::new(ErrorKind::Protocol, "no challenge was sent"),
            );
        };
        let mac = match frame.kind {
            Some(client_frame::Kind::Auth(a)) => a.mac,
            _ => {
                return self.refuse_answer(
                    RefusalCause::NoAnswer,
                    RemoteError::new(
                        ErrorKind::Unauthenticated,
                        "authentication required: this server holds a shared secret; \
                         answer its challenge (ClientFrame.auth) before anything else",
                    ),
                )
            }
        };
        if !secret.verify_client(challenge, client_nonce, &mac) {
            return self.refuse_answer(
                RefusalCause::BadAnswer,
                RemoteError::new(
                    ErrorKind::Unauthenticated,
                    "authentication failed: the client does not hold the server's secret",
                ),
            );
        }
        established.authenticated = true;
        // The verdict is a bare hello: version, name and the proof.
        let mut hello = self.verdict();
        hello.auth_proof = secret.server_proof(challenge, client_nonce).into();
        ServerStep::Ready { hello, established }
    }

    /// The handshake's time ran out (the caller keeps the clock). Waiting
    /// for the hello, the server closes without a word (`None`); waiting
    /// for the answer to its challenge, it says why it refuses.
    pub fn on_timeout(&mut self) -> Option<ServerStep> {
        match std::mem::replace(&mut self.state, ServerState::Over) {
            ServerState::AwaitAnswer { .. } => Some(self.refuse_answer(
                RefusalCause::Timeout,
                RemoteError::new(
                    ErrorKind::Unauthenticated,
                    "no answer to the authentication challenge within the handshake timeout",
                ),
            )),
            ServerState::AwaitHello | ServerState::Over => None,
        }
    }

    /// What the server waits for, for its log when the handshake's time runs
    /// out (it then closes without a word).
    pub fn waiting_for(&self) -> &'static str {
        match self.state {
            ServerState::AwaitHello => "the hello",
            ServerState::AwaitAnswer { .. } => "the answer to the authentication challenge",
            ServerState::Over => "nothing",
        }
    }
}
