//! The connection of a [`Client`]: opened on demand, replaced when it
//! closes.

use super::*;

impl Client {
    /// The open connection, if there is one; never connects.
    pub(crate) fn current_open(&self) -> Option<Arc<Connection>> {
        lock(&self.inner.current)
            .as_ref()
            .filter(|c| c.is_open())
            .cloned()
    }

    /// The open connection, connecting (within `timeout`) if there is none.
    pub(crate) async fn connection(&self, timeout: Duration) -> Result<Arc<Connection>, CallError> {
        if let Some(c) = self.current_open() {
            return Ok(c);
        }
        let Some(deadline) = deadline_after(timeout) else {
            return self
                .connect(Instant::now() + Duration::from_secs(86400 * 365))
                .await;
        };
        match tokio::time::timeout_at(deadline, self.connect(deadline)).await {
            Ok(result) => result,
            Err(_) => Err(CallError::Timeout {
                stage: TimeoutStage::Connect,
            }),
        }
    }

    async fn connect(&self, deadline: Instant) -> Result<Arc<Connection>, CallError> {
        let _turn = self.inner.connecting.lock().await;
        // Someone else may have connected while we waited for our turn.
        if let Some(c) = self.current_open() {
            return Ok(c);
        }
        let inner = &self.inner;
        let reconnect = lock(&inner.current).is_some();
        if reconnect {
            tracing::info!(target: "pyrpc.client", "reconnecting to {}", inner.addr);
        } else {
            debug!(target: "pyrpc.client", addr = %inner.addr, "connecting");
        }
        let conn = match Connection::open(
            &inner.addr,
            inner.connector.as_deref(),
            &inner.config,
            deadline,
        )
        .await
        {
            Ok(c) => {
                let c = Arc::new(c);
                c.start_canceller();
                c
            }
            Err(e) => {
                // What the caller must fix (TLS, authentication, protocol) is
                // a warning; a server that is not (yet) there is not.
                match &e {
                    CallError::Tls { .. } | CallError::Protocol(_) | CallError::Remote(_) => {
                        tracing::warn!(target: "pyrpc.client", "connecting to {} failed: {}", inner.addr, pyrpc_proto::Report(&e));
                    }
                    _ => {
                        tracing::info!(target: "pyrpc.client", "connecting to {} failed: {}", inner.addr, pyrpc_proto::Report(&e));
                    }
                }
                return Err(e);
            }
        };
        debug!(target: "pyrpc.client", addr = %inner.addr, server = %conn.info().name, tls = inner.config.tls.is_some(), "connected");
        *lock(&inner.server_info) = Some(conn.info().clone());
        let old = lock(&inner.current).replace(Arc::clone(&conn));
        // Dropped outside the lock: dropping a connection fails its waiters.
        drop(old);
        Ok(conn)
    }

    /// Drops `conn` (failing its waiters) so that the next request connects
    /// again; used when a connection stopped answering.
    pub(crate) fn discard(&self, conn: &Arc<Connection>) {
        debug!(addr = %self.inner.addr, "dropping an unresponsive connection");
        conn.close();
        let mut current = lock(&self.inner.current);
        if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn)) {
            let old = current.take();
            drop(current);
            drop(old);
        }
    }
}
