//! The Python settings for TLS and remote shutdown, turned into the Rust
//! ones: `Server.tls_cert`/`tls_key`/`tls_client_ca`,
//! `Client.tls_ca`/`tls_cert`/`tls_key`/`tls_server_name`, and
//! `Server.allow_remote_shutdown`.

use std::path::PathBuf;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyrpc_server::RemoteShutdown;
use pyrpc_transport::{ClientTls, ServerTls};

fn tls_err(e: pyrpc_transport::TlsError) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// The server's TLS from PEM file paths: none when no certificate is set.
pub(crate) fn server_tls(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
) -> PyResult<Option<ServerTls>> {
    match (cert, key) {
        (None, None) if client_ca.is_none() => Ok(None),
        (Some(cert), Some(key)) => ServerTls::from_pem_files(cert, key, client_ca.as_deref())
            .map(Some)
            .map_err(tls_err),
        _ => Err(PyValueError::new_err(
            "TLS on a server needs both tls_cert (the certificate chain, PEM) and tls_key \
             (its private key, PEM)",
        )),
    }
}

/// The client's TLS: on when any setting is given. `ca` is a PEM file path,
/// or `True` for the system's root certificates.
pub(crate) fn client_tls(
    ca: Option<&Bound<'_, PyAny>>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    server_name: Option<String>,
) -> PyResult<Option<ClientTls>> {
    let ca_path: Option<PathBuf> = match ca {
        None => None,
        Some(v) if v.is_none() => None,
        Some(v) if v.is_instance_of::<pyo3::types::PyBool>() => {
            if v.extract::<bool>()? {
                None
            } else {
                return Err(PyValueError::new_err(
                    "tls_ca is a CA bundle path (PEM), True for the system's root \
                     certificates, or None",
                ));
            }
        }
        Some(v) => Some(v.extract::<PathBuf>()?),
    };
    let on = ca.is_some_and(|v| !v.is_none())
        || cert.is_some()
        || key.is_some()
        || server_name.is_some();
    if !on {
        return Ok(None);
    }
    let tls = ClientTls::from_pem_files(ca_path.as_deref(), cert.as_deref(), key.as_deref())
        .map_err(tls_err)?;
    Ok(Some(match server_name {
        Some(n) => tls.with_server_name(n),
        None => tls,
    }))
}

/// `allow_remote_shutdown`: None for the default policy, True or False.
pub(crate) fn remote_shutdown(allow: Option<bool>) -> RemoteShutdown {
    match allow {
        None => RemoteShutdown::Auto,
        Some(true) => RemoteShutdown::Allow,
        Some(false) => RemoteShutdown::Refuse,
    }
}
