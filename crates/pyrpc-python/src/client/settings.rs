//! The settings a Python caller gives a client (or a server) as Rust
//! values: durations, addresses, secrets, the client's configuration.

use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};
use pyrpc_client::ClientConfig;
use pyrpc_proto::auth::Secret;
use pyrpc_transport::Address;

/// Seconds (a Python float) as a [`Duration`].
pub(crate) fn seconds(name: &str, secs: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(secs).map_err(|_| {
        PyValueError::new_err(format!(
            "{name} must be a non-negative number of seconds, got {secs}"
        ))
    })
}

/// Python's address forms as an [`Address`]: a `(host, port)` tuple is TCP;
/// a `str` is parsed in the syntax the `pyrpc` command and the Rust crates
/// share (`tcp://host:port`, `host:port`, `unix:/path`, a path with a `/`);
/// any other path-like (`pathlib.Path`) is a Unix socket path.
///
/// Errors say what is wrong: `ValueError` for a port out of range or a
/// string that is not an address, `TypeError` for other types.
pub(crate) fn address(obj: &Bound<'_, PyAny>) -> PyResult<Address> {
    if let Ok(s) = obj.cast::<PyString>() {
        let text = s.to_cow()?;
        return text
            .parse::<Address>()
            .map_err(|e| PyValueError::new_err(e.to_string()));
    }
    if let Ok((host, port)) = obj.extract::<(Bound<'_, PyAny>, Bound<'_, PyAny>)>() {
        let host: String = host.extract().map_err(|_| {
            pyo3::exceptions::PyTypeError::new_err(format!(
                "the host of a (host, port) address is a str, not {}",
                host.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            ))
        })?;
        let port: i128 = port.extract().map_err(|_| {
            pyo3::exceptions::PyTypeError::new_err(format!(
                "the port of a (host, port) address is an int, not {}",
                port.repr().map(|r| r.to_string()).unwrap_or_default()
            ))
        })?;
        let port = u16::try_from(port)
            .map_err(|_| PyValueError::new_err(format!("port {port} is out of range (0-65535)")))?;
        return Ok(Address::tcp(host, port));
    }
    if let Ok(path) = obj.extract::<std::path::PathBuf>() {
        return Ok(Address::unix(path));
    }
    Err(pyo3::exceptions::PyTypeError::new_err(format!(
        "an address is a (host, port) tuple, a str ('tcp://host:port', 'unix:/path', \
         '/path') or a path, not {}",
        obj.repr().map(|r| r.to_string()).unwrap_or_default()
    )))
}

/// Checks an address in any of Python's forms and returns it in the
/// canonical one: `(host, port)` for TCP, the path as a `str` for a Unix
/// socket. Raises `ValueError` or `TypeError` saying what is wrong.
#[pyfunction]
pub(super) fn parse_address(py: Python<'_>, address: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    address_to_py(py, &self::address(address)?)
}

/// A shared secret given as `bytes` or `str` (UTF-8), or `None`. An empty
/// one is refused: it would protect nothing.
pub(crate) fn secret(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Secret>> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok(None);
    };
    let bytes: Vec<u8> = if let Ok(b) = obj.cast::<PyBytes>() {
        b.as_bytes().to_vec()
    } else if let Ok(s) = obj.cast::<PyString>() {
        s.to_cow()?.as_bytes().to_vec()
    } else {
        return Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "a secret is bytes or str, not {}",
            obj.get_type().name()?
        )));
    };
    if bytes.is_empty() {
        return Err(PyValueError::new_err("the secret is empty"));
    }
    Ok(Some(Secret::new(bytes)))
}

/// An [`Address`] in Python's forms (the inverse of [`address`]).
pub(crate) fn address_to_py(py: Python<'_>, addr: &Address) -> PyResult<Py<PyAny>> {
    match addr {
        Address::Tcp { host, port } => Ok((host.as_str(), *port)
            .into_pyobject(py)?
            .into_any()
            .unbind()),
        Address::Unix(path) => Ok(path
            .to_string_lossy()
            .into_pyobject(py)?
            .into_any()
            .unbind()),
    }
}

/// The settings of `ClientCore` and `MultiClientCore`, from the keyword
/// arguments they take.
/// A client's or server's `max_frame_len`: `default` when not given, a
/// `ValueError` under the protocol's minimum (a peer limited to fewer bytes
/// could not be sent even the error saying a reply is too large).
pub(crate) fn frame_limit(given: Option<usize>, default: usize) -> PyResult<usize> {
    match given {
        None => Ok(default),
        Some(n) if n < pyrpc_proto::MIN_MAX_FRAME_LEN => Err(PyValueError::new_err(format!(
            "max_frame_len must be at least {} bytes (the protocol's minimum), got {n}",
            pyrpc_proto::MIN_MAX_FRAME_LEN
        ))),
        Some(n) => Ok(n),
    }
}

pub(crate) fn client_config(
    name: Option<String>,
    max_frame_len: Option<usize>,
    secret: Option<&Bound<'_, PyAny>>,
    tls_ca: Option<&Bound<'_, PyAny>>,
    tls_cert: Option<std::path::PathBuf>,
    tls_key: Option<std::path::PathBuf>,
    tls_server_name: Option<String>,
) -> PyResult<ClientConfig> {
    let d = ClientConfig::default();
    let max_frame_len = frame_limit(max_frame_len, d.max_frame_len)?;
    Ok(ClientConfig {
        name: name.unwrap_or_else(|| format!("pyrpc-python/{}", env!("CARGO_PKG_VERSION"))),
        max_frame_len,
        secret: self::secret(secret)?,
        tls: crate::tls::client_tls(tls_ca, tls_cert, tls_key, tls_server_name)?,
        ..d
    })
}
