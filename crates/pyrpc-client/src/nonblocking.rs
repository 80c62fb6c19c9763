//! [`NbCall`]: a non-blocking call, submitted once and polled until done,
//! across as many reconnections as it takes.
//!
//! ```text
//!  Submit(id) + Fetch(id, wait=tick) ──ack, pending──▶ Fetch ... ──done──▶ Release(id)
//!      ▲                        │                                   (ack not awaited)
//!      └── connection failed, or no answer within tick + nb_fetch_timeout
//! ```
//!
//! The first `Fetch` goes right behind the `Submit`, on the same connection,
//! without waiting for the submit's ack: the server handles a `Submit` before
//! it reads the connection's next request (a guarantee of docs/PROTOCOL.md),
//! so a call that finishes within a tick costs one round trip plus a
//! `Release` nobody waits for.
//!
//! Submit is idempotent per call id, so resubmitting after a reconnection
//! starts nothing on a server that still knows the call, and the poll picks
//! up where it left off.

use std::time::Duration;

use bytes::Bytes;
use pyrpc_proto::raw::{self, request, response};
use pyrpc_proto::wire;
use pyrpc_proto::{ErrorKind, RemoteError, Value};
use tracing::debug;

use crate::client::{deadline_after, expect_ack, unexpected, Client};
use crate::config::{duration_ms_ceil, Timeouts};
use crate::error::{CallError, TimeoutStage};

/// The shortest pause between failed reconnection attempts, so that a zero
/// `nb_fetch_tick` does not spin on a server that refuses connections.
const MIN_RETRY_PAUSE: Duration = Duration::from_millis(10);

/// One non-blocking call in progress.
pub(crate) struct NbCall<'a> {
    client: &'a Client,
    /// 16 random bytes naming the call on the server, across connections.
    call_id: Bytes,
    call: raw::Call,
    t: Timeouts,
    /// Connection failures in a row; the first retry is immediate, later ones
    /// wait a tick.
    failures: u32,
}

impl<'a> NbCall<'a> {
    pub(crate) fn new(client: &'a Client, call: raw::Call, t: Timeouts) -> Self {
        NbCall {
            client,
            call_id: Bytes::copy_from_slice(uuid::Uuid::new_v4().as_bytes()),
            call,
            t,
            failures: 0,
        }
    }

    /// Submits, polls and releases; unbounded (the caller applies the call
    /// timeout).
    pub(crate) async fn run(mut self) -> Result<Bytes, CallError> {
        'submit: loop {
            let mut fetched = match self.submit_and_fetch().await {
                Ok(fetched) => fetched,
                Err(e) if e.is_nb_retryable() => {
                    self.pause_before_retry(&e).await;
                    continue 'submit;
                }
                Err(e) => return Err(e),
            };
            debug!(call_id = %self.id_text(), method = %self.call.method, "non-blocking call submitted");
            self.failures = 0;
            loop {
                match fetched {
                    Ok(response::Kind::Pending(_)) => {
                        // The server already held the fetch for a tick.
                        self.failures = 0;
                    }
                    Ok(response::Kind::Value(v)) => {
                        self.release().await;
                        return Ok(v.into_bytes());
                    }
                    Ok(response::Kind::Error(e)) => {
                        let e = RemoteError::from(e);
                        if e.kind == ErrorKind::UnknownCall {
                            return Err(CallError::Remote(self.unknown_call(e)));
                        }
                        self.release().await;
                        return Err(CallError::Remote(e));
                    }
                    Ok(other) => return Err(unexpected(&other, "fetch")),
                    Err(e) if e.is_nb_retryable() => {
                        self.pause_before_retry(&e).await;
                        continue 'submit;
                    }
                    Err(e) => return Err(e),
                }
                fetched = self.request(self.fetch()).await;
            }
        }
    }

    /// A `Fetch` held by the server for at most a tick.
    fn fetch(&self) -> request::Kind {
        request::Kind::Fetch(wire::Fetch {
            call_id: self.call_id.clone(),
            wait_ms: duration_ms_ceil(self.t.nb_tick),
        })
    }

    /// Sends `Submit` and, right behind it on the same connection without
    /// waiting for its ack, the first `Fetch`; then waits for the ack, and
    /// returns the fetch's answer (the inner result). A server handles a
    /// `Submit` before it reads the next request of the connection
    /// (docs/PROTOCOL.md), so the fetch always finds the call, and a fast
    /// call is done in one round trip.
    ///
    /// # Errors
    ///
    /// The submit's failure (a refusal, a broken connection, a timeout).
    async fn submit_and_fetch(&self) -> Result<Result<response::Kind, CallError>, CallError> {
        let submit = request::Kind::Submit(raw::Submit {
            call_id: self.call_id.clone(),
            call: Some(self.call.clone()),
            keep_ms: duration_ms_ceil(self.t.nb_keep()),
        });
        let conn = self.client.connection(self.t.connect).await?;
        let timed_out = |r: &Result<response::Kind, CallError>| {
            matches!(
                r,
                Err(CallError::Timeout {
                    stage: TimeoutStage::Reply | TimeoutStage::Send,
                })
            )
        };
        // Both in one write; the ack is awaited before the fetch's answer.
        let sent = conn.send_pair(submit, self.fetch(), self.t.send).await;
        let deadline = deadline_after(self.t.nb_request_timeout());
        let (submitted, fetch) = match sent {
            Ok(pair) => pair,
            Err(e) => {
                if matches!(e, CallError::Timeout { .. }) {
                    self.client.discard(&conn);
                }
                return Err(e);
            }
        };
        let ack = submitted.wait(deadline).await;
        if timed_out(&ack) {
            self.client.discard(&conn);
        }
        expect_ack(ack?, "submit")?;
        let mut fetched = fetch.wait(deadline).await;
        if let Ok(response::Kind::Error(e)) = &fetched {
            if e.kind == ErrorKind::UnknownCall as i32 {
                // A server from before the ordering guarantee ran the fetch
                // ahead of the submit it acknowledged: ask again.
                fetched = self.request(self.fetch()).await;
            }
        }
        if timed_out(&fetched) {
            self.client.discard(&conn);
        }
        Ok(fetched)
    }

    /// Sends one request and waits for its answer for at most
    /// `nb_fetch_tick + nb_fetch_timeout`. A connection that lets that pass
    /// (or stalls the write) is dropped, so the retry gets a fresh one.
    async fn request(&self, kind: request::Kind) -> Result<response::Kind, CallError> {
        let conn = self.client.connection(self.t.connect).await?;
        let result = match conn.send(kind, self.t.send).await {
            Ok(reply) => {
                reply
                    .wait(deadline_after(self.t.nb_request_timeout()))
                    .await
            }
            Err(e) => Err(e),
        };
        if let Err(CallError::Timeout {
            stage: TimeoutStage::Reply | TimeoutStage::Send,
        }) = &result
        {
            self.client.discard(&conn);
        }
        result
    }

    async fn pause_before_retry(&mut self, e: &CallError) {
        self.failures += 1;
        debug!(call_id = %self.id_text(), error = %pyrpc_proto::Report(&e), failures = self.failures,
            "non-blocking call: connection failed; reconnecting");
        if self.failures > 1 {
            tokio::time::sleep(self.t.nb_tick.max(MIN_RETRY_PAUSE)).await;
        }
    }

    /// Tells the server it may forget the result. Best effort: the request is
    /// written but its ack is not awaited, and nothing is reconnected for it;
    /// an unreleased result is reaped after its keep-time anyway.
    async fn release(&self) {
        let Some(conn) = self.client.current_open() else {
            return;
        };
        let release = request::Kind::Release(wire::Release {
            call_id: self.call_id.clone(),
        });
        if let Err(e) = conn.send(release, self.t.send).await {
            debug!(call_id = %self.id_text(), error = %pyrpc_proto::Report(&e), "release not sent");
        }
    }

    /// The server's UNKNOWN_CALL, reworded to say what it means here.
    fn unknown_call(&self, mut e: RemoteError) -> RemoteError {
        let mut message = format!(
            "the server does not know non-blocking call {}: its result was \
             reaped or released, or the server restarted",
            self.id_text()
        );
        if !e.message.is_empty() {
            message = format!("{message} ({})", e.message);
        }
        e.args = vec![Value::Str(message.clone())];
        e.message = message;
        e
    }

    fn id_text(&self) -> String {
        uuid::Uuid::from_slice(&self.call_id)
            .map(|u| u.to_string())
            .unwrap_or_default()
    }
}
