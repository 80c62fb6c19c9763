//! [`Address`]: a TCP or Unix socket address, as text.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::error::TransportError;

/// Where a server listens or a client connects.
///
/// Parsed from text:
///
/// | text                           | address                            |
/// |--------------------------------|------------------------------------|
/// | `tcp://host:port`, `host:port` | TCP                                |
/// | `[::1]:port`                   | TCP over IPv6                      |
/// | `:port`                        | TCP, empty host                    |
/// | `unix:/path`, `unix:path`      | Unix socket                        |
/// | `/path`, `./path`, `~/...`     | Unix socket (anything with a `/`)  |
///
/// An empty host means all interfaces (`0.0.0.0`) for a listener and the local
/// host (`127.0.0.1`) for a connector, like the original pyrpc's `('', port)`.
///
/// Anything else is refused with the reason: another scheme (`http://h:1` is
/// not a Unix socket path even though it contains a `/`), a port outside
/// 0-65535 or not a number, a bare word without a port. The same syntax is
/// used by the `pyrpc` command and by the Python package for `str` addresses.
///
/// # Examples
///
/// ```
/// use pyrpc_transport::Address;
///
/// let a: Address = "tcp://localhost:50300".parse().unwrap();
/// assert_eq!(a, Address::tcp("localhost", 50300));
/// assert_eq!(a.to_string(), "localhost:50300");
///
/// let u: Address = "/tmp/echo_server_socket".parse().unwrap();
/// assert_eq!(u.to_string(), "unix:/tmp/echo_server_socket");
/// assert_eq!(u, "unix:/tmp/echo_server_socket".parse().unwrap());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Address {
    /// A TCP address.
    Tcp {
        /// Host name or IP literal (no brackets); empty for "any"/"local".
        host: String,
        /// Port; 0 asks the listener for a free one.
        port: u16,
    },
    /// A Unix stream socket path.
    Unix(PathBuf),
}

impl Address {
    /// A TCP address.
    pub fn tcp(host: impl Into<String>, port: u16) -> Self {
        Address::Tcp {
            host: host.into(),
            port,
        }
    }

    /// A Unix socket address.
    pub fn unix(path: impl Into<PathBuf>) -> Self {
        Address::Unix(path.into())
    }

    /// True for a Unix socket address.
    pub fn is_unix(&self) -> bool {
        matches!(self, Address::Unix(_))
    }

    /// The `host:port` to bind for a TCP listener (empty host: all interfaces).
    pub(crate) fn bind_target(host: &str, port: u16) -> String {
        join_host_port(if host.is_empty() { "0.0.0.0" } else { host }, port)
    }

    /// The `host:port` to connect to (empty host: the local host).
    pub(crate) fn connect_target(host: &str, port: u16) -> String {
        join_host_port(if host.is_empty() { "127.0.0.1" } else { host }, port)
    }
}

fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp { host, port } => f.write_str(&join_host_port(host, *port)),
            Address::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

impl FromStr for Address {
    type Err = TransportError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = |reason| TransportError::InvalidAddress {
            text: text.to_owned(),
            reason,
        };
        if let Some(path) = text.strip_prefix("unix:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(invalid("empty socket path"));
            }
            return Ok(Address::Unix(PathBuf::from(path)));
        }
        if let Some(rest) = text.strip_prefix("tcp://") {
            return parse_tcp(rest).map_err(invalid);
        }
        if let Some((scheme, _)) = text.split_once("://") {
            if !scheme.is_empty() && !scheme.contains('/') {
                return Err(invalid(
                    "unknown scheme: the schemes are tcp://host:port and unix:/path",
                ));
            }
        }
        if text.contains('/') {
            return Ok(Address::Unix(PathBuf::from(text)));
        }
        if !text.contains(':') {
            return Err(invalid(
                "neither host:port nor a path: write tcp://host:port for TCP, \
                 unix:name or ./name for a Unix socket in the current directory",
            ));
        }
        parse_tcp(text).map_err(invalid)
    }
}

/// `host:port`, `[v6]:port` or `:port`, or why not.
fn parse_tcp(text: &str) -> Result<Address, &'static str> {
    let (host, port) = text
        .rsplit_once(':')
        .ok_or("expected host:port (tcp://host:port)")?;
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err("the port is not a number (expected host:port)");
    }
    let port: u16 = port
        .parse()
        .map_err(|_| "the port is out of range (0-65535)")?;
    let host = if let Some(inner) = host.strip_prefix('[') {
        inner
            .strip_suffix(']')
            .ok_or("an IPv6 host needs closing brackets: [::1]:port")?
    } else if host.contains(':') {
        return Err("an IPv6 host needs brackets: [::1]:port");
    } else {
        host
    };
    Ok(Address::tcp(host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        let cases = [
            ("127.0.0.1:80", Address::tcp("127.0.0.1", 80)),
            (
                "tcp://example.com:50300",
                Address::tcp("example.com", 50300),
            ),
            (":50300", Address::tcp("", 50300)),
            ("[::1]:9", Address::tcp("::1", 9)),
            ("tcp://[::1]:9", Address::tcp("::1", 9)),
            ("unix:/tmp/s", Address::unix("/tmp/s")),
            ("unix:///tmp/s", Address::unix("/tmp/s")),
            ("unix:rel/s", Address::unix("rel/s")),
            (
                "/tmp/echo_server_socket",
                Address::unix("/tmp/echo_server_socket"),
            ),
            ("./s.sock", Address::unix("./s.sock")),
        ];
        for (text, want) in cases {
            assert_eq!(text.parse::<Address>().unwrap(), want, "{text}");
        }
    }

    #[test]
    fn display_parses_back() {
        for a in [
            Address::tcp("localhost", 1),
            Address::tcp("", 2),
            Address::tcp("::1", 3),
            Address::unix("/tmp/x y"),
        ] {
            assert_eq!(a.to_string().parse::<Address>().unwrap(), a);
        }
    }

    #[test]
    fn rejects_nonsense() {
        for text in [
            "",
            "localhost",
            "host:port",
            "host:99999",
            "::1:80",
            "unix:",
            "tcp://x",
            "http://h:1",
            "https://example.com:443/x",
            "tcp://h:-1",
        ] {
            let err = text.parse::<Address>().unwrap_err();
            assert!(
                matches!(err, TransportError::InvalidAddress { .. }),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let reason = |text: &str| match text.parse::<Address>() {
            Err(TransportError::InvalidAddress { reason, .. }) => reason,
            other => panic!("{text}: {other:?}"),
        };
        assert!(reason("h:99999").contains("out of range (0-65535)"));
        assert!(reason("tcp://h:70000").contains("out of range"));
        assert!(reason("http://h:1").contains("unknown scheme"));
        assert!(reason("h:x").contains("not a number"));
        assert!(reason("sock").contains("./name"));
        assert!(reason("::1:80").contains("brackets"));
    }

    #[test]
    fn empty_host_means_any_for_bind_and_local_for_connect() {
        assert_eq!(Address::bind_target("", 5), "0.0.0.0:5");
        assert_eq!(Address::connect_target("", 5), "127.0.0.1:5");
        assert_eq!(Address::connect_target("::1", 5), "[::1]:5");
    }
}
