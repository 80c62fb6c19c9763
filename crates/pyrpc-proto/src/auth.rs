//! Shared-secret authentication: the HMAC-SHA256 challenge-response that
//! travels in the hello (docs/PROTOCOL.md, "Authentication").
//!
//! ```text
//! client                                   server (holds the secret)
//!   ClientHello { auth_nonce: Nc }  ---->
//!                                   <----  ServerHello { auth_challenge: Ns, .. }
//!   ClientFrame.auth { mac }        ---->  mac == HMAC(secret, "pyrpc-v1 client" || Ns || Nc) ?
//!                                   <----  ServerHello { auth_proof }   (or { error: UNAUTHENTICATED })
//! proof == HMAC(secret, "pyrpc-v1 server" || Ns || Nc) ?
//! ```
//!
//! Both nonces are fresh random bytes for every connection, so a recorded
//! answer is worthless on another connection; the two labels keep an answer
//! of one side from being replayed as the other's. Comparisons run in
//! constant time. Nothing here does I/O.
//!
//! All of it needs the `auth` cargo feature (on by default), which brings the
//! `hmac` and `sha2` crates. Without it [`Secret`] still exists, so that
//! configurations keep their `secret` field, but none can be made: a program
//! built without the feature can neither require nor answer a challenge.

use std::fmt;
#[cfg(feature = "auth")]
use std::sync::Arc;

#[cfg(feature = "auth")]
use hmac::{Hmac, Mac};
#[cfg(feature = "auth")]
use sha2::Sha256;

/// The length of each nonce, in bytes.
pub const NONCE_LEN: usize = 32;

#[cfg(feature = "auth")]
const CLIENT_LABEL: &[u8] = b"pyrpc-v1 client";
#[cfg(feature = "auth")]
const SERVER_LABEL: &[u8] = b"pyrpc-v1 server";

/// A shared secret. Its `Debug` output never shows the bytes.
///
/// # Examples
///
/// ```
/// use pyrpc_proto::auth::Secret;
///
/// let s = Secret::from("correct horse battery staple");
/// assert_eq!(format!("{s:?}"), "Secret(<28 bytes>)");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Bytes);

/// The bytes of a secret.
#[cfg(feature = "auth")]
type Bytes = Arc<[u8]>;

/// Without the `auth` feature no secret can be made: its bytes are of a type
/// without values, so the code using a secret compiles and never runs.
#[cfg(not(feature = "auth"))]
#[derive(Clone, PartialEq, Eq)]
enum Bytes {}

#[cfg(not(feature = "auth"))]
impl Secret {
    /// The secret's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self.0 {}
    }

    /// See the `auth` feature's version.
    pub fn client_mac(&self, _challenge: &[u8], _client_nonce: &[u8]) -> Vec<u8> {
        match self.0 {}
    }

    /// See the `auth` feature's version.
    pub fn server_proof(&self, _challenge: &[u8], _client_nonce: &[u8]) -> Vec<u8> {
        match self.0 {}
    }

    /// See the `auth` feature's version.
    pub fn verify_client(&self, _challenge: &[u8], _client_nonce: &[u8], _mac: &[u8]) -> bool {
        match self.0 {}
    }

    /// See the `auth` feature's version.
    pub fn verify_server(&self, _challenge: &[u8], _client_nonce: &[u8], _proof: &[u8]) -> bool {
        match self.0 {}
    }
}

#[cfg(feature = "auth")]
impl Secret {
    /// A secret of these bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Secret(Arc::from(bytes.into()))
    }

    /// The secret's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    fn mac(&self, label: &[u8], challenge: &[u8], client_nonce: &[u8]) -> Hmac<Sha256> {
        // HMAC takes keys of any length; this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(label);
        mac.update(challenge);
        mac.update(client_nonce);
        mac
    }

    /// The client's answer to `challenge`: `ClientFrame.auth.mac`.
    pub fn client_mac(&self, challenge: &[u8], client_nonce: &[u8]) -> Vec<u8> {
        self.mac(CLIENT_LABEL, challenge, client_nonce)
            .finalize()
            .into_bytes()
            .to_vec()
    }

    /// The server's proof that it holds the secret: `ServerHello.auth_proof`.
    pub fn server_proof(&self, challenge: &[u8], client_nonce: &[u8]) -> Vec<u8> {
        self.mac(SERVER_LABEL, challenge, client_nonce)
            .finalize()
            .into_bytes()
            .to_vec()
    }

    /// True when `mac` is the client's correct answer (constant time).
    pub fn verify_client(&self, challenge: &[u8], client_nonce: &[u8], mac: &[u8]) -> bool {
        self.mac(CLIENT_LABEL, challenge, client_nonce)
            .verify_slice(mac)
            .is_ok()
    }

    /// True when `proof` is the server's correct proof (constant time).
    pub fn verify_server(&self, challenge: &[u8], client_nonce: &[u8], proof: &[u8]) -> bool {
        self.mac(SERVER_LABEL, challenge, client_nonce)
            .verify_slice(proof)
            .is_ok()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<{} bytes>)", self.as_bytes().len())
    }
}

#[cfg(feature = "auth")]
impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret::new(s.as_bytes())
    }
}

#[cfg(feature = "auth")]
impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret::new(s.into_bytes())
    }
}

#[cfg(feature = "auth")]
impl From<&[u8]> for Secret {
    fn from(b: &[u8]) -> Self {
        Secret::new(b)
    }
}

#[cfg(feature = "auth")]
impl From<Vec<u8>> for Secret {
    fn from(b: Vec<u8>) -> Self {
        Secret::new(b)
    }
}

/// A fresh random nonce from the operating system.
///
/// # Errors
///
/// When the operating system's random source fails.
pub fn nonce() -> std::io::Result<[u8; NONCE_LEN]> {
    let mut n = [0u8; NONCE_LEN];
    getrandom::fill(&mut n).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(n)
}

#[cfg(all(test, feature = "auth"))]
mod tests {
    use super::*;

    #[test]
    fn the_right_secret_verifies_and_a_wrong_one_does_not() {
        let s = Secret::from("s3cret");
        let (ns, nc) = (nonce().unwrap(), nonce().unwrap());
        assert_ne!(ns, nc, "nonces are random");
        let mac = s.client_mac(&ns, &nc);
        assert_eq!(mac.len(), 32);
        assert!(s.verify_client(&ns, &nc, &mac));
        assert!(!Secret::from("s3creT").verify_client(&ns, &nc, &mac));
        assert!(
            !s.verify_client(&nc, &ns, &mac),
            "nonces are not interchangeable"
        );
        assert!(!s.verify_client(&ns, &nc, &mac[..31]), "a short mac fails");
        assert!(!s.verify_client(&ns, &nc, b""), "an empty mac fails");
        let proof = s.server_proof(&ns, &nc);
        assert!(s.verify_server(&ns, &nc, &proof));
        assert_ne!(proof, mac, "a client answer is no server proof");
        assert!(!s.verify_client(&ns, &nc, &proof));
    }

    #[test]
    fn matches_an_independent_hmac_sha256() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let s = Secret::from("Jefe");
        let mac = s.mac(b"what do ya want ", b"for nothing?", b"");
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn debug_hides_the_bytes() {
        assert_eq!(format!("{:?}", Secret::from("abc")), "Secret(<3 bytes>)");
    }
}
