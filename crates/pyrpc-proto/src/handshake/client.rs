//! The client's side of the handshake: [`ClientHandshake`].

use bytes::Bytes;

use super::Nonce;
use crate::auth::Secret;
use crate::wire::{self, client_frame, server_frame, ClientFrame, ServerFrame};
use crate::{ErrorKind, RemoteError, PROTOCOL_VERSION};

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
    /// The server announced a max frame length under
    /// [`MIN_MAX_FRAME_LEN`](crate::MIN_MAX_FRAME_LEN): it could not be sent
    /// a call.
    #[error(
        "the server's max_frame_len of {theirs} bytes is under the protocol's minimum \
         of {} bytes",
        crate::MIN_MAX_FRAME_LEN
    )]
    FrameLimit {
        /// The server's announced limit.
        theirs: u64,
    },
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
                return Err(ClientHandshakeError::TlsRequired(e.into_info().message));
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
        if theirs > 0 && theirs < crate::MIN_MAX_FRAME_LEN as u64 {
            return Err(ClientHandshakeError::FrameLimit { theirs });
        }
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
