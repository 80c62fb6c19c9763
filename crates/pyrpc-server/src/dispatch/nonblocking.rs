//! The non-blocking requests: `Submit` (a call whose result is kept in the
//! result store) and the waiting `Fetch`.

use crate::results::{CallId, Lookup, Submitted};
use crate::server::Shared;
use crate::store::{self, StoreError};
use pyrpc_proto::raw::{self, response};
use pyrpc_proto::wire;
use pyrpc_proto::{ErrorKind, RemoteError, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tracing::Instrument;

use super::*;

// ===== non-blocking =====

/// The call id of a Submit/Fetch/Release, if this server takes them.
pub(super) fn nb_call_id(shared: &Shared, raw: &[u8]) -> Result<CallId, RemoteError> {
    if !shared.config.nonblocking {
        return Err(RemoteError::new(
            ErrorKind::NotNonblocking,
            "this server was not started with nonblocking=True",
        ));
    }
    CallId::try_from(raw).map_err(|_| {
        RemoteError::new(
            ErrorKind::Protocol,
            format!("call id must be 16 bytes, got {}", raw.len()),
        )
    })
}

/// Registers a submitted call and starts it, detached from the connection.
/// A call the reader runs inline ([`runs_inline`]) is run right here, so a
/// `Fetch` right behind the `Submit` finds it done.
pub(super) async fn submit(
    shared: &Arc<Shared>,
    conn: &ConnCtx,
    id: u64,
    s: raw::Submit,
    received: Instant,
) -> Result<(), RemoteError> {
    let call_id = nb_call_id(shared, &s.call_id)?;
    let call = s
        .call
        .ok_or_else(|| RemoteError::new(ErrorKind::Protocol, "submit without a call"))?;
    let (method, body) = CallBody::split(call, received);
    let prepared = prepare(shared, &method, body).inspect_err(|_| {
        count(shared, &method, received, true);
    })?;
    let keep = match s.keep_ms {
        0 => shared.config.result_keep,
        ms => Duration::from_millis(ms),
    };
    match shared.store().submit(call_id, keep).await {
        Err(e) => {
            count(shared, &method, received, true);
            return Err(e.to_remote());
        }
        Ok(Submitted::Known) => return Ok(()),
        Ok(Submitted::Full) => {
            return Err(RemoteError::new(
                ErrorKind::Overloaded,
                format!(
                    "the server already keeps {} non-blocking calls; release some or retry later",
                    shared.config.max_kept_results
                ),
            ))
        }
        Ok(Submitted::New) => {}
    }
    let span = tracing::info_span!("rpc", id, method = %method, nonblocking = true);
    if runs_inline(shared, &method) {
        let received = prepared.received;
        let work = run_prepared(
            shared,
            &conn.peer,
            &method,
            prepared,
            true,
            Default::default(),
            None,
        );
        let result = store::run_holding_lease(shared.store(), call_id, work)
            .instrument(span)
            .await;
        count(shared, &method, received, result.is_err());
        store_result(shared, call_id, result).await;
        return Ok(());
    }
    let shared2 = Arc::clone(shared);
    let peer = Arc::clone(&conn.peer);
    // Not tied to the connection: the result must survive it being dropped.
    shared.calls.spawn(
        async move {
            let shared = shared2;
            let received = prepared.received;
            let cancel = shared.close.child_token();
            let work = run_prepared(&shared, &peer, &method, prepared, true, cancel, None);
            let result = tokio::select! {
                r = store::run_holding_lease(shared.store(), call_id, work) => r,
                _ = shared.close.cancelled() => return,
            };
            count(&shared, &method, received, result.is_err());
            store_result(&shared, call_id, result).await;
        }
        .instrument(span),
    );
    Ok(())
}

/// Stores the outcome of a non-blocking call this server ran and wakes the
/// fetches waiting for it. A store that fails loses the result: the call's
/// lease runs out and fetches are answered `CALL_LOST`.
pub(super) async fn store_result(
    shared: &Shared,
    call_id: CallId,
    result: Result<Value, RemoteError>,
) {
    match shared.store().complete(call_id, result).await {
        Ok(true) => shared.store_changed.notify_waiters(),
        Ok(false) => {}
        Err(e) => tracing::error!(error = %e, "cannot store a non-blocking result; it is lost"),
    }
}

/// The state of `call_id`, waiting up to `wait` for a running call to finish
/// (or until the server shuts down). A shared store wakes it through
/// `watch` when another server finishes the call, and is read again every
/// `poll_interval` (a lost lease sends no message).
pub(super) async fn wait_for_result(
    shared: &Shared,
    call_id: CallId,
    wait: Duration,
) -> Result<Lookup, StoreError> {
    let deadline = Instant::now() + wait;
    let watch = shared.store().watch(call_id);
    loop {
        // Register for the wake-ups before looking, so a completion between
        // the look and the wait is not missed.
        let notified = shared.store_changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let mut elsewhere = watch.as_deref().map(|n| Box::pin(n.notified()));
        if let Some(f) = elsewhere.as_mut() {
            f.as_mut().enable();
        }
        match shared.store().get(call_id).await? {
            Lookup::Pending if Instant::now() < deadline && !shared.shutdown.is_cancelled() => {}
            other => return Ok(other),
        }
        let next = match shared.store().poll_interval() {
            Some(every) => deadline.min(Instant::now() + every),
            None => deadline,
        };
        let finished_elsewhere = async {
            match elsewhere {
                Some(f) => f.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = notified => {}
            () = finished_elsewhere => {}
            _ = tokio::time::sleep_until(next) => {}
            _ = shared.shutdown.cancelled() => {}
        }
    }
}

pub(super) fn fetched(id: u64, lookup: Result<Lookup, StoreError>) -> raw::Response {
    let lookup = match lookup {
        Ok(lookup) => lookup,
        Err(e) => return error(id, e.to_remote()),
    };
    match lookup {
        Lookup::Lost => error(
            id,
            RemoteError::new(
                ErrorKind::CallLost,
                "the call was lost: the server running it stopped renewing its lease \
                 (it died or lost the result store); it may have run partly and will not run again",
            ),
        ),
        Lookup::Done(Ok(v)) => value(id, v),
        Lookup::Done(Err(e)) => error(id, e),
        Lookup::Pending => response(id, response::Kind::Pending(wire::Pending {})),
        Lookup::Unknown => error(
            id,
            RemoteError::new(
                ErrorKind::UnknownCall,
                "unknown call id (never submitted, released, or past its keep-time)",
            ),
        ),
    }
}
