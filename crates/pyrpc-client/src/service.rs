//! [`ServiceError`], the error of a typed service method, and what the code
//! written by `#[service]` calls (`__private`, not a public API).

use std::fmt;

use pyrpc_proto::{Exception, Value};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::client::Client;
use crate::config::CallOptions;
use crate::error::CallError;

/// The error of a typed client's method whose trait method returns
/// `Result<T, E>`: the method's own error `E`, or the call's failure.
///
/// # Examples
///
/// ```
/// use pyrpc_client::{CallError, ServiceError};
///
/// let e: ServiceError<std::io::Error> = CallError::Closed.into();
/// assert!(e.call_error().is_some_and(CallError::is_connection_error));
/// ```
#[derive(Debug)]
pub enum ServiceError<E> {
    /// The method returned its error (the remote exception mapped back to
    /// `E` with [`Exception::from_remote`]).
    Service(E),
    /// The call failed: the server could not be reached, timed out, or
    /// answered an error that is no `E` (no such method, bad arguments).
    Call(CallError),
}

impl<E> ServiceError<E> {
    /// The method's own error, if it is one.
    pub fn service_error(&self) -> Option<&E> {
        match self {
            ServiceError::Service(e) => Some(e),
            ServiceError::Call(_) => None,
        }
    }

    /// The call's failure, if it is one.
    pub fn call_error(&self) -> Option<&CallError> {
        match self {
            ServiceError::Service(_) => None,
            ServiceError::Call(e) => Some(e),
        }
    }
}

impl<E> From<CallError> for ServiceError<E> {
    fn from(e: CallError) -> Self {
        ServiceError::Call(e)
    }
}

impl<E: fmt::Display> fmt::Display for ServiceError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceError::Service(e) => e.fmt(f),
            ServiceError::Call(e) => e.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for ServiceError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ServiceError::Service(e) => e.source(),
            ServiceError::Call(e) => e.source(),
        }
    }
}

/// The client inside a `#[service]` client: the untyped client and the
/// options its calls use.
#[derive(Clone, Debug)]
pub struct ServiceClient {
    client: Client,
    options: CallOptions,
}

impl ServiceClient {
    /// Calls through `client` with its settings.
    pub fn new(client: Client) -> Self {
        ServiceClient {
            client,
            options: CallOptions::default(),
        }
    }

    /// The same, with `options` for every call.
    pub fn with_options(&self, options: CallOptions) -> Self {
        ServiceClient {
            client: self.client.clone(),
            options,
        }
    }

    /// The untyped client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    async fn value(&self, method: &str, args: Vec<Value>, nb: bool) -> Result<Value, CallError> {
        let args = pyrpc_proto::Args::positional(args);
        if nb {
            self.client.nb_call_with(method, args, &self.options).await
        } else {
            self.client.call_with(method, args, &self.options).await
        }
    }

    /// A call of a method returning a plain `T`.
    pub async fn call_value<T: DeserializeOwned>(
        &self,
        method: &str,
        args: Vec<Value>,
        nb: bool,
    ) -> Result<T, CallError> {
        let v = self.value(method, args, nb).await?;
        Ok(pyrpc_proto::from_value(v)?)
    }

    /// A call of a method returning `Result<T, E>`.
    pub async fn call_result<T: DeserializeOwned, E: Exception>(
        &self,
        method: &str,
        args: Vec<Value>,
        nb: bool,
    ) -> Result<T, ServiceError<E>> {
        match self.value(method, args, nb).await {
            Ok(v) => Ok(pyrpc_proto::from_value(v).map_err(CallError::from)?),
            Err(CallError::Remote(e)) => Err(match E::from_remote(e) {
                Ok(mine) => ServiceError::Service(mine),
                Err(other) => ServiceError::Call(CallError::Remote(other)),
            }),
            Err(e) => Err(ServiceError::Call(e)),
        }
    }
}

/// The client inside a `#[service]` blocking client: the same calls, each
/// waited for on the blocking client's runtime.
#[derive(Clone, Debug)]
pub struct BlockingServiceClient {
    client: crate::blocking::Client,
    inner: ServiceClient,
}

impl BlockingServiceClient {
    /// Calls through `client` with its settings.
    pub fn new(client: crate::blocking::Client) -> Self {
        let inner = ServiceClient::new(client.as_async().clone());
        BlockingServiceClient { client, inner }
    }

    /// The same, with `options` for every call.
    pub fn with_options(&self, options: CallOptions) -> Self {
        BlockingServiceClient {
            client: self.client.clone(),
            inner: self.inner.with_options(options),
        }
    }

    /// The untyped blocking client.
    pub fn client(&self) -> &crate::blocking::Client {
        &self.client
    }

    /// [`ServiceClient::call_value`], blocking.
    pub fn call_value<T: DeserializeOwned>(
        &self,
        method: &str,
        args: Vec<Value>,
        nb: bool,
    ) -> Result<T, CallError> {
        self.client
            .block_on(self.inner.call_value(method, args, nb))
    }

    /// [`ServiceClient::call_result`], blocking.
    pub fn call_result<T: DeserializeOwned, E: Exception>(
        &self,
        method: &str,
        args: Vec<Value>,
        nb: bool,
    ) -> Result<T, ServiceError<E>> {
        self.client
            .block_on(self.inner.call_result(method, args, nb))
    }
}

/// One argument's value.
pub fn arg<T: Serialize + ?Sized>(v: &T) -> Result<Value, CallError> {
    Ok(pyrpc_proto::to_value(v)?)
}
