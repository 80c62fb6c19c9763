//! The hello exchange and the shared-secret authentication as two state
//! machines, one per side, that do no I/O (docs/PROTOCOL.md, "Hello" and
//! "Authentication").
//!
//! In the style of quinn-proto: the caller reads frames, feeds each one in,
//! and carries out the [`ClientStep`] or [`ServerStep`] it gets back (send a
//! frame, wait for the next one, close, or go on to requests). Everything a
//! machine needs from the outside world (the random nonces, whether the
//! server admits the connection, the time) is an argument, so the machines
//! are tested frame by frame without sockets or clocks, and the client and
//! the server cannot disagree on the rules.
//!
//! ```text
//! client                                   server
//!   ClientHello { version, nonce }  ---->  ServerHandshake::on_frame
//!                                          (version, admission, challenge)
//! ClientHandshake::on_frame  <----  ServerHello { caps, challenge | error }
//!   ClientFrame.auth { mac }        ---->  ServerHandshake::on_frame
//! ClientHandshake::on_frame  <----  ServerHello { proof | error }
//! ```
//!
//! # Examples
//!
//! A whole exchange without a secret, frames passed by hand:
//!
//! ```
//! use pyrpc_proto::handshake::{
//!     Admission, ClientHandshake, ClientSettings, ClientStep, ServerHandshake, ServerSettings,
//!     ServerStep,
//! };
//! use pyrpc_proto::wire;
//!
//! let (mut client, hello) = ClientHandshake::new(ClientSettings::new("client/1", 1 << 20), None);
//! let mut server = ServerHandshake::new(
//!     ServerSettings::new("server/1", wire::Capabilities::default(), 1 << 20),
//!     None,
//! );
//! let step = server.on_frame(hello, Admission::Admit);
//! let ServerStep::Ready { established, .. } = &step else {
//!     panic!("{step:?}");
//! };
//! assert_eq!(established.client_name, "client/1");
//! match client.on_frame(step.frame()) {
//!     Ok(ClientStep::Ready(done)) => assert_eq!(done.server.peer_name, "server/1"),
//!     other => panic!("{other:?}"),
//! }
//! ```

use bytes::Bytes;

use crate::auth::Secret;
use crate::wire::{self, client_frame, server_frame, ClientFrame, ServerFrame};
use crate::{ErrorKind, RemoteError, PROTOCOL_VERSION};

/// A nonce as the machines take it: fresh random bytes from the caller
/// ([`auth::nonce`](crate::auth::nonce)).
pub type Nonce = [u8; crate::auth::NONCE_LEN];

// ===== client =====

/// What a client says about itself in its hello.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClientSettings {
    /// The client's self-description (`ClientHello.peer_name`).
    pub name: String,
    /// The longest frame the client accepts, in bytes.
    pub max_frame_len: usize,
    /// The shared secret, if the client authenticates.
    pub secret: Option<Secret>,
}

impl ClientSettings {
    /// Settings with no secret.
    pub fn new(name: impl Into<String>, max_frame_len: usize) -> Self {
        ClientSettings {
            name: name.into(),
            max_frame_len,
            secret: None,
        }
    }

    /// The same settings, authenticating with `secret`.
    #[must_use]
    pub fn with_secret(mut self, secret: Option<Secret>) -> Self {
        self.secret = secret;
        self
    }
}

/// Why a client's handshake failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientHandshakeError {
    /// The server refused the connection in its hello (version, overload,
    /// shutting down, authentication): its error, as it sent it.
    #[error("the server refused the connection")]
    Refused(#[source] RemoteError),
    /// The server refused a plain connection because it requires TLS.
    #[error("the server requires TLS: {0}")]
    TlsRequired(String),
    /// The server sent a frame that is not a hello during the handshake.
    #[error("the server sent something other than a hello during the handshake")]
    NotHello,
    /// The server speaks another protocol version.
    #[error("the server speaks protocol version {theirs}, this client speaks {ours}")]
    Version {
        /// The server's version.
        theirs: u32,
        /// Ours ([`PROTOCOL_VERSION`]).
        ours: u32,
    },
    /// The server challenges us and we hold no secret.
    #[error(
        "the server requires authentication: give the client its shared secret \
         (ClientConfig::secret)"
    )]
    SecretRequired,
    /// We hold a secret and the server does not challenge us: it cannot
    /// prove that it knows the secret.
    #[error(
        "the server does not authenticate (it has no shared secret) but this \
         client holds one: refusing to talk to a server that cannot prove it \
         knows the secret"
    )]
    ServerNotAuthenticating,
    /// The server's proof of the secret is wrong.
    #[error(
        "the server's authentication proof is wrong: it does not hold the \
         shared secret"
    )]
    BadProof,
    /// A secret is set but no nonce was given to [`ClientHandshake::new`].
    #[error("no random nonce to authenticate with")]
    NoNonce,
    /// A frame arrived after the handshake had ended.
    #[error("the handshake is over")]
    Finished,
}

impl ClientHandshakeError {
    /// True for the failures of authentication (either side's refusal):
    /// these are reported like the server's own refusal, as kind
    /// `UNAUTHENTICATED`.
    pub fn is_authentication(&self) -> bool {
        match self {
            ClientHandshakeError::Refused(e) => e.kind == ErrorKind::Unauthenticated,
            ClientHandshakeError::SecretRequired
            | ClientHandshakeError::ServerNotAuthenticating
            | ClientHandshakeError::BadProof
            | ClientHandshakeError::NoNonce => true,
            _ => false,
        }
    }
}

/// What the client does after feeding in a frame.
#[derive(Debug)]
pub enum ClientStep {
    /// Send this frame (the answer to the challenge), then feed in the next
    /// frame from the server.
    Send(ClientFrame),
    /// The handshake is done: go on to requests.
    Ready(ClientEstablished),
}

/// What a client learnt in a successful handshake.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClientEstablished {
    /// The server's (first) hello: its name, version and capabilities.
    pub server: wire::ServerHello,
    /// The longest request frame the server accepts: its announced limit,
    /// or ours when it announced none.
    pub max_send_len: usize,
    /// True when both sides proved that they hold the shared secret.
    pub authenticated: bool,
}

#[derive(Debug)]
enum ClientState {
    /// The hello is sent; the server's comes next.
    AwaitHello,
    /// The answer to the challenge is sent; the server's verdict comes next.
    AwaitVerdict {
        hello: Box<wire::ServerHello>,
        challenge: Bytes,
    },
    /// Done or failed: no more frames are expected.
    Over,
}

/// The client's side of the handshake.
///
/// Made with the hello to send; then each server frame goes into
/// [`on_frame`](ClientHandshake::on_frame) until it returns
/// [`ClientStep::Ready`] or an error (after which the connection is closed).
#[derive(Debug)]
pub struct ClientHandshake {
    settings: ClientSettings,
    nonce: Bytes,
    state: ClientState,
}

impl ClientHandshake {
    /// Starts a handshake; returns it and the hello to send first.
    ///
    /// `nonce` is the client's fresh nonce: needed when `settings.secret` is
    /// set (without one, authentication fails with
    /// [`ClientHandshakeError::NoNonce`]), unused otherwise.
    pub fn new(settings: ClientSettings, nonce: Option<Nonce>) -> (Self, ClientFrame) {
        let nonce = match (&settings.secret, nonce) {
            (Some(_), Some(n)) => Bytes::copy_from_slice(&n),
            _ => Bytes::new(),
        };
        let hello = ClientFrame {
            kind: Some(client_frame::Kind::Hello(wire::ClientHello {
                protocol_version: PROTOCOL_VERSION,
                peer_name: settings.name.clone(),
                max_frame_len: settings.max_frame_len as u64,
                auth_nonce: nonce.clone(),
            })),
        };
        let machine = ClientHandshake {
            settings,
            nonce,
            state: ClientState::AwaitHello,
        };
        (machine, hello)
    }

    /// Feeds in a frame the server sent.
    ///
    /// # Errors
    ///
    /// Why the handshake failed; the connection is then closed.
    pub fn on_frame(&mut self, frame: ServerFrame) -> Result<ClientStep, ClientHandshakeError> {
        let state = std::mem::replace(&mut self.state, ClientState::Over);
        let Some(server_frame::Kind::Hello(hello)) = frame.kind else {
            return match state {
                ClientState::Over => Err(ClientHandshakeError::Finished),
                _ => Err(ClientHandshakeError::NotHello),
            };
        };
        match state {
            ClientState::AwaitHello => self.on_hello(hello),
            ClientState::AwaitVerdict {
                hello: first,
                challenge,
            } => self.on_verdict(*first, &challenge, hello),
            ClientState::Over => Err(ClientHandshakeError::Finished),
        }
    }

    fn on_hello(&mut self, hello: wire::ServerHello) -> Result<ClientStep, ClientHandshakeError> {
        if let Some(e) = hello.error {
            let e = RemoteError::from(e);
            // A TLS server answers a plain client this way (docs/PROTOCOL.md, 1.).
            if e.kind == ErrorKind::Protocol && e.message.contains("requires TLS") {
                return Err(ClientHandshakeError::TlsRequired(e.message));
            }
            return Err(ClientHandshakeError::Refused(e));
        }
        match (&self.settings.secret, hello.auth_challenge.is_empty()) {
            (None, true) => self.established(hello, false),
            (None, false) => Err(ClientHandshakeError::SecretRequired),
            (Some(_), true) => Err(ClientHandshakeError::ServerNotAuthenticating),
            (Some(_), false) if self.nonce.is_empty() => Err(ClientHandshakeError::NoNonce),
            (Some(secret), false) => {
                let challenge = hello.auth_challenge.clone();
                let answer = ClientFrame {
                    kind: Some(client_frame::Kind::Auth(wire::AuthResponse {
                        mac: secret.client_mac(&challenge, &self.nonce).into(),
                    })),
                };
                self.state = ClientState::AwaitVerdict {
                    hello: Box::new(hello),
                    challenge,
                };
                Ok(ClientStep::Send(answer))
            }
        }
    }

    fn on_verdict(
        &mut self,
        first: wire::ServerHello,
        challenge: &[u8],
        verdict: wire::ServerHello,
    ) -> Result<ClientStep, ClientHandshakeError> {
        if let Some(e) = verdict.error {
            return Err(ClientHandshakeError::Refused(e.into()));
        }
        let proven = self
            .settings
            .secret
            .as_ref()
            .is_some_and(|s| s.verify_server(challenge, &self.nonce, &verdict.auth_proof));
        if !proven {
            return Err(ClientHandshakeError::BadProof);
        }
        self.established(first, true)
    }

    fn established(
        &mut self,
        hello: wire::ServerHello,
        authenticated: bool,
    ) -> Result<ClientStep, ClientHandshakeError> {
        if hello.protocol_version != PROTOCOL_VERSION {
            return Err(ClientHandshakeError::Version {
                theirs: hello.protocol_version,
                ours: PROTOCOL_VERSION,
            });
        }
        let theirs = hello.capabilities.map_or(0, |c| c.max_frame_len);
        let max_send_len = match theirs {
            0 => self.settings.max_frame_len,
            n => usize::try_from(n).unwrap_or(usize::MAX),
        };
        Ok(ClientStep::Ready(ClientEstablished {
            server: hello,
            max_send_len,
            authenticated,
        }))
    }
}

// ===== server =====

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

#[cfg(test)]
#[path = "handshake_tests.rs"]
mod tests;
