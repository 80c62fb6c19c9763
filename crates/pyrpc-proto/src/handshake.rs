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

/// A nonce as the machines take it: fresh random bytes from the caller
/// ([`auth::nonce`](crate::auth::nonce)).
pub type Nonce = [u8; crate::auth::NONCE_LEN];

mod client;
mod server;

pub use client::*;
pub use server::*;

#[cfg(test)]
mod tests;
