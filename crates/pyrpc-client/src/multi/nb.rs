//! [`MultiNb`]: a non-blocking call of a [`MultiClient`], followed across
//! servers.
//!
//! ```text
//!  Submit(id)+Fetch ─▶ server A (the first that takes a connection)
//!  Fetch ... on A ─ A fails ─▶ Fetch(id, wait 0) on B, C, ...:
//!      one knows the id (shared store) ─▶ follow it there
//!      none does ─▶ Submit(id) on A again (idempotent there), with a pause;
//!                   A unreachable for tick + nb_fetch_timeout ─▶ CALL_LOST
//! ```
//!
//! Only `Fetch` goes to a server other than the one that took the submit, so
//! a server that does not share A's store never starts the call: it answers
//! `UNKNOWN_CALL` and is passed over. A `Submit` is only ever resent to A,
//! as the single-server client does.

use bytes::Bytes;
use pyrpc_proto::raw::{self, request, response};
use pyrpc_proto::wire;
use pyrpc_proto::{ErrorKind, RemoteError};
use tokio::time::Instant;
use tracing::debug;

use super::{not_sent, refused_unrun, MultiClient};
use crate::client::{deadline_after, expect_ack, unexpected};
use crate::config::{duration_ms_ceil, Timeouts};
use crate::error::{CallError, TimeoutStage};

/// The shortest pause between rounds when the call's server is unreachable.
const MIN_PAUSE: std::time::Duration = std::time::Duration::from_millis(20);

pub(crate) struct MultiNb<'a> {
    multi: &'a MultiClient,
    call_id: Bytes,
    call: raw::Call,
    t: Timeouts,
}

/// An answer to a fetch, or why none came.
type Fetched = Result<response::Kind, CallError>;

impl<'a> MultiNb<'a> {
    pub(crate) fn new(multi: &'a MultiClient, call: raw::Call, t: Timeouts) -> Self {
        MultiNb {
            multi,
            call_id: Bytes::copy_from_slice(uuid::Uuid::new_v4().as_bytes()),
            call,
            t,
        }
    }

    /// Submits, follows and releases; unbounded except when the call's
    /// server is gone (the caller applies the call timeout).
    pub(crate) async fn run(self) -> Result<Bytes, CallError> {
        let (mut at, mut fetched) = self.first_submit().await?;
        // Since when the server we follow has not answered, if it has not.
        let mut failing_since: Option<Instant> = None;
        loop {
            match fetched {
                Ok(response::Kind::Pending(_)) => failing_since = None,
                Ok(response::Kind::Value(v)) => {
                    self.release(at).await;
                    self.multi.member(at).count_served();
                    return Ok(v.into_bytes());
                }
                Ok(response::Kind::Error(e)) => {
                    let e = RemoteError::from(e);
                    if e.kind != ErrorKind::UnknownCall {
                        self.release(at).await;
                        self.multi.member(at).count_served();
                    }
                    return Err(CallError::Remote(e));
                }
                Ok(other) => return Err(unexpected(&other, "fetch")),
                Err(e) if e.is_nb_retryable() => {
                    debug!(call_id = %self.id_text(), server = %self.multi.member(at).client.address(),
                        error = %pyrpc_proto::Report(&e), "non-blocking call: server failed; asking the others");
                    if let Some((j, got)) = self.find_elsewhere(at).await {
                        at = j;
                        fetched = got;
                        continue;
                    }
                    let since = *failing_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > self.t.nb_request_timeout() {
                        return Err(CallError::Remote(self.lost(at)));
                    }
                    tokio::time::sleep(self.t.nb_tick.max(MIN_PAUSE)).await;
                    // Back to the call's server: the submit is idempotent there.
                    fetched = self.submit_and_fetch(at).await.and_then(|f| f);
                    continue;
                }
                Err(e) => return Err(e),
            }
            fetched = self.request(at, self.fetch(self.t.nb_tick)).await;
        }
    }

    /// Submits to the first server (in the client's order) that takes a
    /// connection; returns it and the first fetch's answer (or why the
    /// connection failed after the submit was sent).
    async fn first_submit(&self) -> Result<(usize, Fetched), CallError> {
        let mut last = None;
        for i in self.multi.order() {
            let m = self.multi.member(i);
            match self.submit_and_fetch(i).await {
                Ok(fetched) => {
                    m.mark_up();
                    return Ok((i, fetched));
                }
                Err(e) if not_sent(&e) => {
                    m.mark_down();
                    last = Some(e);
                }
                Err(e) if refused_unrun(&e) => last = Some(e),
                // Sent, and the connection failed: the server may have it.
                Err(e) if e.is_nb_retryable() => return Ok((i, Err(e))),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or(CallError::Closed))
    }

    /// Asks every server but `at` whether it knows the call (a fetch that
    /// does not wait); the first that does, and its answer.
    async fn find_elsewhere(&self, at: usize) -> Option<(usize, Fetched)> {
        for j in self.multi.order() {
            if j == at {
                continue;
            }
            match self.request(j, self.fetch(std::time::Duration::ZERO)).await {
                Ok(response::Kind::Error(e)) if e.kind == ErrorKind::UnknownCall as i32 => {}
                Ok(kind) => {
                    self.multi.member(j).mark_up();
                    debug!(call_id = %self.id_text(), server = %self.multi.member(j).client.address(),
                        "non-blocking call: followed to another server");
                    return Some((j, Ok(kind)));
                }
                Err(e) => {
                    if not_sent(&e) {
                        self.multi.member(j).mark_down();
                    }
                }
            }
        }
        None
    }

    /// A `Fetch` held by the server for at most `wait`.
    fn fetch(&self, wait: std::time::Duration) -> request::Kind {
        request::Kind::Fetch(wire::Fetch {
            call_id: self.call_id.clone(),
            wait_ms: duration_ms_ceil(wait),
        })
    }

    /// `Submit` and the first `Fetch` in one write to server `i`. The outer
    /// error is the submit's (refused, or the connection failed); the inner
    /// result is the fetch's answer.
    async fn submit_and_fetch(&self, i: usize) -> Result<Fetched, CallError> {
        let client = &self.multi.member(i).client;
        let submit = request::Kind::Submit(raw::Submit {
            call_id: self.call_id.clone(),
            call: Some(self.call.clone()),
            keep_ms: duration_ms_ceil(self.t.nb_keep()),
        });
        let conn = client.connection(self.t.connect).await?;
        let (submitted, fetch) = match conn
            .send_pair(submit, self.fetch(self.t.nb_tick), self.t.send)
            .await
        {
            Ok(pair) => pair,
            Err(e) => {
                if matches!(e, CallError::Timeout { .. }) {
                    client.discard(&conn);
                }
                return Err(e);
            }
        };
        let deadline = deadline_after(self.t.nb_request_timeout());
        let ack = submitted.wait(deadline).await;
        if timed_out(&ack) {
            client.discard(&conn);
        }
        expect_ack(ack?, "submit")?;
        let fetched = fetch.wait(deadline).await;
        if timed_out(&fetched) {
            client.discard(&conn);
        }
        Ok(fetched)
    }

    /// One request to server `i`, answered within `nb_fetch_tick +
    /// nb_fetch_timeout` or its connection is dropped.
    async fn request(&self, i: usize, kind: request::Kind) -> Fetched {
        let client = &self.multi.member(i).client;
        let conn = client.connection(self.t.connect).await?;
        let result = match conn.send(kind, self.t.send).await {
            Ok(reply) => {
                reply
                    .wait(deadline_after(self.t.nb_request_timeout()))
                    .await
            }
            Err(e) => Err(e),
        };
        if timed_out(&result) {
            client.discard(&conn);
        }
        result
    }

    /// Tells server `i` it may forget the result; best effort, as the
    /// single-server client does.
    async fn release(&self, i: usize) {
        let Some(conn) = self.multi.member(i).client.current_open() else {
            return;
        };
        let release = request::Kind::Release(wire::Release {
            call_id: self.call_id.clone(),
        });
        if let Err(e) = conn.send(release, self.t.send).await {
            debug!(call_id = %self.id_text(), error = %pyrpc_proto::Report(&e), "release not sent");
        }
    }

    /// The error of a call whose server is gone and that no other server
    /// knows.
    fn lost(&self, at: usize) -> RemoteError {
        RemoteError::new(
            ErrorKind::CallLost,
            format!(
                "non-blocking call {} is lost: its server {} stopped answering and no other \
                 server knows the call (their result stores are not shared with it); it may \
                 or may not have run",
                self.id_text(),
                self.multi.member(at).client.address()
            ),
        )
    }

    fn id_text(&self) -> String {
        uuid::Uuid::from_slice(&self.call_id)
            .map(|u| u.to_string())
            .unwrap_or_default()
    }
}

fn timed_out(r: &Result<response::Kind, CallError>) -> bool {
    matches!(
        r,
        Err(CallError::Timeout {
            stage: TimeoutStage::Reply | TimeoutStage::Send,
        })
    )
}
