//! TLS for TCP connections, with rustls and its `ring` provider
//! (docs/decisions/0050-tls-in-the-transport-with-rustls-ring.md).
//!
//! * [`ServerTls`] — a certificate chain and key, and optionally a CA that
//!   client certificates must be signed by (mutual TLS).
//! * [`ClientTls`] — the CAs the server is verified against (a PEM bundle or
//!   the system's roots), an optional server-name override, and optionally a
//!   client certificate and key.
//!
//! Both speak ALPN `pyrpc/1`. The handshake runs on the connection's own task
//! (never in the accept loop), so a slow or hostile handshake holds up no one
//! else. [`describe_handshake_error`] turns what rustls reports into a
//! sentence that says what is wrong (expired certificate, unknown CA, missing
//! client certificate, a peer that does not speak TLS).

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{AlertDescription, CertificateError, RootCertStore};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::address::Address;
use crate::error::TlsError;
use crate::stream::Stream;

/// The ALPN protocol name pyrpc speaks over TLS.
pub const ALPN: &[u8] = b"pyrpc/1";

/// The first byte of a TLS record carrying a handshake message (a
/// ClientHello starts with it); a pyrpc frame starts with a big-endian
/// length, whose first byte is 0x16 only for frames of 352 MiB or more.
pub(crate) const TLS_HANDSHAKE_RECORD: u8 = 0x16;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads `path`, naming it in the error.
fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

fn certs(pem: &[u8], what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what,
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            what,
            reason: "no CERTIFICATE section found".into(),
        });
    }
    Ok(certs)
}

fn key(pem: &[u8], what: &'static str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| TlsError::Pem {
        what,
        reason: e.to_string(),
    })
}

fn roots(pem: &[u8], what: &'static str) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for cert in certs(pem, what)? {
        store.add(cert).map_err(|e| TlsError::Pem {
            what,
            reason: e.to_string(),
        })?;
    }
    Ok(store)
}

// ===== ServerTls =====

/// A server's TLS settings, ready to accept connections.
///
/// Cloning is cheap (the rustls configuration is shared).
///
/// # Examples
///
/// ```
/// use pyrpc_transport::ServerTls;
///
/// let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
/// let tls = ServerTls::from_pem(
///     cert.cert.pem().as_bytes(),
///     cert.signing_key.serialize_pem().as_bytes(),
///     None,
/// )
/// .unwrap();
/// assert!(!tls.requires_client_cert());
/// ```
#[derive(Clone)]
pub struct ServerTls {
    acceptor: TlsAcceptor,
    mutual: bool,
}

impl ServerTls {
    /// A server that presents `cert_chain` (PEM, leaf first) signed with
    /// `key` (PEM: PKCS#8, PKCS#1 or SEC1). With `client_ca` (PEM), every
    /// client must present a certificate signed by one of its CAs.
    ///
    /// # Errors
    ///
    /// [`TlsError::Pem`] when a PEM text holds nothing usable, and
    /// [`TlsError::Config`] when rustls refuses the combination (e.g. a key
    /// that does not match the certificate).
    pub fn from_pem(
        cert_chain: &[u8],
        key_pem: &[u8],
        client_ca: Option<&[u8]>,
    ) -> Result<Self, TlsError> {
        let chain = certs(cert_chain, "server certificate chain")?;
        let key = key(key_pem, "server private key")?;
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?;
        let builder = match client_ca {
            Some(pem) => {
                let roots = Arc::new(roots(pem, "client CA bundle")?);
                let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider())
                    .build()
                    .map_err(|e| TlsError::Pem {
                        what: "client CA bundle",
                        reason: e.to_string(),
                    })?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(chain, key)
            .map_err(TlsError::Config)?;
        config.alpn_protocols = vec![ALPN.to_vec()];
        Ok(ServerTls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            mutual: client_ca.is_some(),
        })
    }

    /// As [`ServerTls::from_pem`], reading the PEM files at these paths.
    ///
    /// # Errors
    ///
    /// [`TlsError::Read`] for a file that cannot be read, and as
    /// [`ServerTls::from_pem`].
    pub fn from_pem_files(
        cert_chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
        client_ca: Option<&Path>,
    ) -> Result<Self, TlsError> {
        let chain = read(cert_chain.as_ref(), "server certificate chain")?;
        let key = read(key.as_ref(), "server private key")?;
        let ca = client_ca.map(|p| read(p, "client CA bundle")).transpose()?;
        Self::from_pem(&chain, &key, ca.as_deref())
    }

    /// True when clients must present a certificate (mutual TLS).
    pub fn requires_client_cert(&self) -> bool {
        self.mutual
    }

    /// Runs the server side of the handshake on an accepted TCP stream.
    ///
    /// # Errors
    ///
    /// [`TlsError::Handshake`] with a description of what went wrong, and
    /// [`TlsError::NotTcp`] for a Unix socket stream.
    pub async fn accept(&self, stream: Stream) -> Result<Stream, TlsError> {
        let Stream::Tcp(tcp) = stream else {
            return Err(TlsError::NotTcp);
        };
        match self.acceptor.accept(tcp).await {
            Ok(tls) => Ok(Stream::Tls(Box::new(tokio_rustls::TlsStream::Server(tls)))),
            Err(e) => Err(TlsError::Handshake {
                peer: "client",
                reason: describe_handshake_error(&e, Side::Server),
            }),
        }
    }
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("requires_client_cert", &self.mutual)
            .finish_non_exhaustive()
    }
}

// ===== ClientTls =====

/// A client's TLS settings, ready to connect.
///
/// Cloning is cheap (the rustls configuration is shared). Two values are
/// equal when they are clones of one another.
///
/// # Examples
///
/// ```
/// use pyrpc_transport::ClientTls;
///
/// let ca = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
/// let tls = ClientTls::from_pem(Some(ca.cert.pem().as_bytes()), None)
///     .unwrap()
///     .with_server_name("localhost");
/// assert_eq!(tls.server_name(), Some("localhost"));
/// ```
#[derive(Clone)]
pub struct ClientTls {
    connector: TlsConnector,
    server_name: Option<String>,
}

impl ClientTls {
    /// A client that trusts the CAs in `ca_bundle` (PEM), or the system's
    /// root certificates when it is `None`, and presents `identity` (a
    /// certificate chain and its key, PEM) to servers that ask for one.
    ///
    /// # Errors
    ///
    /// [`TlsError::Pem`] for PEM text that holds nothing usable,
    /// [`TlsError::NoSystemRoots`] when the system has no root certificates,
    /// and [`TlsError::Config`] when rustls refuses the identity.
    pub fn from_pem(
        ca_bundle: Option<&[u8]>,
        identity: Option<(&[u8], &[u8])>,
    ) -> Result<Self, TlsError> {
        let store = match ca_bundle {
            Some(pem) => roots(pem, "CA bundle")?,
            None => system_roots()?,
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .with_root_certificates(store);
        let mut config = match identity {
            Some((chain, key_pem)) => builder
                .with_client_auth_cert(
                    certs(chain, "client certificate chain")?,
                    key(key_pem, "client private key")?,
                )
                .map_err(TlsError::Config)?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![ALPN.to_vec()];
        Ok(ClientTls {
            connector: TlsConnector::from(Arc::new(config)),
            server_name: None,
        })
    }

    /// As [`ClientTls::from_pem`], reading the PEM files at these paths; a
    /// client certificate needs both `cert` and `key`.
    ///
    /// # Errors
    ///
    /// [`TlsError::Read`] for a file that cannot be read,
    /// [`TlsError::Incomplete`] for a certificate without a key or the
    /// reverse, and as [`ClientTls::from_pem`].
    pub fn from_pem_files(
        ca_bundle: Option<&Path>,
        cert: Option<&Path>,
        key: Option<&Path>,
    ) -> Result<Self, TlsError> {
        let ca = ca_bundle.map(|p| read(p, "CA bundle")).transpose()?;
        let identity = match (cert, key) {
            (Some(c), Some(k)) => Some((
                read(c, "client certificate chain")?,
                read(k, "client private key")?,
            )),
            (None, None) => None,
            _ => return Err(TlsError::Incomplete),
        };
        Self::from_pem(
            ca.as_deref(),
            identity.as_ref().map(|(c, k)| (c.as_slice(), k.as_slice())),
        )
    }

    /// Verifies the server's certificate against `name` instead of the host
    /// of the address connected to (e.g. when connecting to an IP address
    /// whose certificate names a host).
    pub fn with_server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// The server-name override, if any.
    pub fn server_name(&self) -> Option<&str> {
        self.server_name.as_deref()
    }

    /// Runs the client side of the handshake on a TCP stream connected to
    /// `addr`, verifying the server's certificate for the override name or
    /// else the address's host (`127.0.0.1` for an empty host).
    ///
    /// # Errors
    ///
    /// [`TlsError::Handshake`] with a description of what went wrong,
    /// [`TlsError::ServerName`] for a name that is neither a DNS name nor an
    /// IP address, and [`TlsError::NotTcp`] for a Unix socket.
    pub async fn connect(&self, addr: &Address, stream: Stream) -> Result<Stream, TlsError> {
        let (Stream::Tcp(tcp), Address::Tcp { host, .. }) = (stream, addr) else {
            return Err(TlsError::NotTcp);
        };
        let name = match (&self.server_name, host.as_str()) {
            (Some(n), _) => n.clone(),
            (None, "") => "127.0.0.1".to_owned(),
            (None, h) => h.to_owned(),
        };
        let server_name =
            ServerName::try_from(name.clone()).map_err(|_| TlsError::ServerName { name })?;
        match self.connector.connect(server_name, tcp).await {
            Ok(tls) => Ok(Stream::Tls(Box::new(tokio_rustls::TlsStream::Client(tls)))),
            Err(e) => Err(TlsError::Handshake {
                peer: "server",
                reason: describe_handshake_error(&e, Side::Client),
            }),
        }
    }
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl PartialEq for ClientTls {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(self.connector.config(), other.connector.config())
            && self.server_name == other.server_name
    }
}

fn system_roots() -> Result<RootCertStore, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    let mut store = RootCertStore::empty();
    let (added, _) = store.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(TlsError::NoSystemRoots {
            errors: found.errors.iter().map(ToString::to_string).collect(),
        });
    }
    Ok(store)
}

// ===== describing failures =====

/// Which end of the handshake we are, for [`describe_handshake_error`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// We connected.
    Client,
    /// We accepted.
    Server,
}

/// A sentence saying why a TLS handshake (or the first read after it) failed:
/// an expired or untrusted certificate, a missing client certificate, a peer
/// that closed or does not speak TLS. Returns `None` for an I/O error that
/// has nothing to do with TLS.
pub fn tls_failure(e: &io::Error, side: Side) -> Option<String> {
    let tls = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())?;
    Some(describe_rustls(tls, side))
}

/// As [`tls_failure`], falling back on the I/O error's own text.
pub fn describe_handshake_error(e: &io::Error, side: Side) -> String {
    if let Some(s) = tls_failure(e, side) {
        return s;
    }
    match (e.kind(), side) {
        (io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset, Side::Client) => {
            "the server closed the connection during the TLS handshake: \
             it may not speak TLS (a plain server), or it refused this client"
                .into()
        }
        (io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset, Side::Server) => {
            "the client closed the connection during the TLS handshake \
             (it may not trust this server's certificate)"
                .into()
        }
        _ => e.to_string(),
    }
}

fn describe_rustls(e: &rustls::Error, side: Side) -> String {
    let (them, us) = match side {
        Side::Client => ("server", "client"),
        Side::Server => ("client", "server"),
    };
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                format!("the {them}'s certificate has expired ({e})")
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                format!("the {them}'s certificate is not valid yet ({e})")
            }
            CertificateError::UnknownIssuer => format!(
                "the {them}'s certificate is not signed by a CA this {us} trusts \
                 (wrong CA bundle?)"
            ),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!(
                    "the {them}'s certificate is not valid for the name connected to \
                     (set the server-name override?): {e}"
                )
            }
            _ => format!("the {them}'s certificate was refused: {e}"),
        },
        rustls::Error::NoCertificatesPresented => {
            format!("the {them} presented no certificate, and this {us} requires one (mutual TLS)")
        }
        rustls::Error::AlertReceived(alert) => match alert {
            AlertDescription::CertificateRequired => format!(
                "the {them} requires a client certificate (mutual TLS) and this {us} \
                 presented none"
            ),
            AlertDescription::UnknownCA
            | AlertDescription::BadCertificate
            | AlertDescription::DecryptError => {
                format!("the {them} does not trust this {us}'s certificate ({alert:?})")
            }
            AlertDescription::CertificateExpired => {
                format!("the {them} says this {us}'s certificate has expired")
            }
            other => format!("the {them} aborted the TLS handshake ({other:?})"),
        },
        rustls::Error::InvalidMessage(_) => format!(
            "the {them} does not speak TLS (it sent something that is not a TLS record: \
             a plain pyrpc {them}?)"
        ),
        other => format!("TLS error: {other}"),
    }
}
