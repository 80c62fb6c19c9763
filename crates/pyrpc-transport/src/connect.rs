//! [`connect`]: open a [`Stream`] to an [`Address`] within a timeout.

use std::time::Duration;

use tokio::net::{TcpStream, UnixStream};

use crate::address::Address;
use crate::error::TransportError;
use crate::stream::Stream;

/// Connects to `addr`, giving up after `timeout`.
///
/// # Errors
///
/// [`TransportError::ConnectTimeout`] when the timeout passes first, and
/// [`TransportError::Connect`] when the connection is refused or the socket
/// file does not exist.
pub async fn connect(addr: &Address, timeout: Duration) -> Result<Stream, TransportError> {
    let attempt = async {
        match addr {
            Address::Tcp { host, port } => TcpStream::connect(Address::connect_target(host, *port))
                .await
                .map(Stream::from_tcp),
            Address::Unix(path) => UnixStream::connect(path).await.map(Stream::Unix),
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(source)) => Err(TransportError::Connect {
            addr: addr.to_string(),
            source,
        }),
        Err(_) => Err(TransportError::ConnectTimeout {
            addr: addr.to_string(),
        }),
    }
}
