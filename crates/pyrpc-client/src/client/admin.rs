//! The requests of a [`Client`] other than calls: ping, introspection,
//! statistics, shutdown.

use super::*;

impl Client {
    /// True when the server answers a ping within `timeout` (connecting
    /// included). Never fails: any error is `false`.
    pub async fn connected(&self, timeout: Duration) -> bool {
        let opts = CallOptions {
            call_timeout: Some(Some(timeout)),
            ..CallOptions::default()
        };
        let t = Timeouts::new(&self.inner.config, &opts);
        let ping = self.ack_request(request::Kind::Ping(wire::Ping {}), &t, "ping");
        match tokio::time::timeout(timeout, ping).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                debug!(error = %pyrpc_proto::Report(&e), "not connected");
                false
            }
            Err(_) => false,
        }
    }

    /// Pings the server (connecting first if needed).
    ///
    /// # Errors
    ///
    /// Why the ping was not answered, as for [`Client::call`].
    pub async fn ping(&self) -> Result<(), CallError> {
        let t = Timeouts::new(&self.inner.config, &CallOptions::default());
        self.ack_request(request::Kind::Ping(wire::Ping {}), &t, "ping")
            .await
    }

    /// The callable public methods of the server's object, with their
    /// signatures and docstrings where the server knows them (a Python server
    /// does), sorted by name, followed by the built-ins `connected` and
    /// `shutdown`.
    ///
    /// # Errors
    ///
    /// As [`Client::call`].
    pub async fn list_methods(&self) -> Result<Vec<MethodInfo>, CallError> {
        let outcome = self
            .request(request::Kind::ListMethods(wire::ListMethods {}))
            .await?;
        match outcome {
            response::Kind::Methods(list) => {
                Ok(list.methods.into_iter().map(MethodInfo::from).collect())
            }
            response::Kind::Error(e) => Err(CallError::Remote(e.into())),
            other => Err(unexpected(&other, "method listing")),
        }
    }

    /// The server's statistics: calls, errors, calls in flight, kept
    /// non-blocking results, connections and latency percentiles.
    ///
    /// # Errors
    ///
    /// As [`Client::call`].
    pub async fn stats(&self) -> Result<ServerStats, CallError> {
        let outcome = self.request(request::Kind::Stats(wire::Stats {})).await?;
        match outcome {
            response::Kind::Stats(s) => Ok(s.into()),
            response::Kind::Error(e) => Err(CallError::Remote(e.into())),
            other => Err(unexpected(&other, "stats request")),
        }
    }

    /// Sends a request with the client's timeouts and returns the reply.
    async fn request(&self, kind: request::Kind) -> Result<response::Kind, CallError> {
        let t = Timeouts::new(&self.inner.config, &CallOptions::default());
        let deadline = t.call.and_then(deadline_after);
        let conn = self.connection(t.connect).await?;
        conn.send(kind, t.send).await?.wait(deadline).await
    }

    /// Asks the server to shut down gracefully; returns once the server has
    /// acknowledged (or closed the connection right after the request was
    /// sent, which also means it is going down).
    ///
    /// # Errors
    ///
    /// Why the request could not be delivered, or the server's refusal.
    pub async fn shutdown(&self) -> Result<(), CallError> {
        let t = Timeouts::new(&self.inner.config, &CallOptions::default());
        let deadline = t.call.and_then(deadline_after);
        let conn = self.connection(t.connect).await?;
        let reply = conn
            .send(request::Kind::Shutdown(wire::Shutdown {}), t.send)
            .await?;
        match reply.wait(deadline).await {
            Ok(outcome) => expect_ack(outcome, "shutdown"),
            Err(CallError::Closed) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
