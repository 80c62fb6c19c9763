//! [`PyCallee`]: the [`Callee`] that runs calls of the served Python object
//! on the server's Python worker threads ([`Pool`]), or on tokio's blocking
//! pool when they are all busy.

// `Result<Value, RemoteError>` is what `Callee` returns (the server crate's
// contract); boxing the error here would only add a conversion.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use pyo3::prelude::*;
use pyrpc_proto::{Args, ErrorKind, MethodInfo, RemoteError};
use pyrpc_server::{CallContext, CallFuture, Callee};

use super::target::{Ran, Target};
use crate::aio;
use crate::pool::{Job, Pool};
use crate::stream;

/// A [`Callee`] calling methods of a Python object on the [`Pool`]'s
/// workers (or, when they are all busy, on tokio's blocking pool).
#[derive(Clone)]
pub(super) struct PyCallee {
    pub(super) target: Arc<Target>,
    pub(super) pool: Arc<Pool>,
}

/// The error of a call whose interpreter went away before it ran.
pub(super) fn finalizing() -> RemoteError {
    RemoteError::new(
        ErrorKind::ShuttingDown,
        "the server's Python interpreter is shutting down",
    )
}

impl Callee for PyCallee {
    /// Arguments and results are converted straight between Python objects
    /// and their encoded bytes (`crate::direct`).
    fn takes_encoded(&self) -> bool {
        true
    }

    fn call(&self, ctx: CallContext, method: &str, args: Args) -> CallFuture {
        let target = Arc::clone(&self.target);
        let method = method.to_owned();
        let deadline = ctx.deadline;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let ctx = ctx.clone();
        let running = aio::Running::default();
        let cancel = aio::CancelOnDrop::new(Arc::clone(&running));
        let job: Job = Box::new(move |py: Python<'_>| {
            // The call may have waited for a worker and the GIL: one whose
            // caller has given up meanwhile is not started
            // (docs/PROTOCOL.md, "Deadlines").
            if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                let _ = tx.send(Err(RemoteError::new(
                    ErrorKind::DeadlineExceeded,
                    format!(
                        "{method}() did not run: the caller's timeout passed before it could start"
                    ),
                )));
                return;
            }
            // Cancelled while it waited for a worker: never started.
            if running.is_cancelled() {
                let _ = tx.send(Err(RemoteError::new(
                    ErrorKind::Cancelled,
                    format!("{method}() did not run: it was cancelled before it could start"),
                )));
                return;
            }
            match aio::with_current(&running, || target.run(py, &method, args)) {
                Ran::Done(outcome) => {
                    let _ = tx.send(outcome);
                }
                Ran::Coroutine(coro, finish) => {
                    let complete: aio::Complete = Box::new(move |py, out| finish.complete(py, out));
                    aio::schedule(
                        py,
                        &target.event_loop,
                        coro.into_bound(py),
                        complete,
                        tx,
                        &running,
                    );
                }
                Ran::Generator(gen) => {
                    let gen = gen.into_bound(py);
                    let answer = move |item| drop(tx.send(item));
                    let opts = target.opts;
                    match stream::generator_kind(&gen) {
                        Some(stream::GenKind::Async) => stream::stream_async_generator(
                            py,
                            gen,
                            &ctx,
                            opts,
                            &method,
                            &target.event_loop,
                            answer,
                        ),
                        _ => stream::stream_generator(py, gen, &ctx, opts, &method, answer),
                    }
                }
            }
        });
        // `cancel` goes with the reply's future: dropped unfinished (the
        // client went away), it cancels an `async def` method's coroutine.
        match self.pool.submit(job) {
            Ok(()) => Box::pin(async move {
                let outcome = rx.await.unwrap_or_else(|_| Err(finalizing()));
                cancel.finished();
                outcome
            }),
            Err(job) => Box::pin(async move {
                // Every worker is busy: a blocking-pool thread, attached for
                // this call only.
                let joined = tokio::task::spawn_blocking(move || {
                    let _ = crate::exit::attach(job);
                })
                .await;
                match joined {
                    Ok(()) => {
                        let outcome = rx.await.unwrap_or_else(|_| Err(finalizing()));
                        cancel.finished();
                        outcome
                    }
                    Err(e) => Err(RemoteError::new(
                        ErrorKind::Exception,
                        format!("the call did not finish: {e}"),
                    )),
                }
            }),
        }
    }

    fn methods(&self) -> Vec<MethodInfo> {
        // Called on the blocking pool by the server. A failure (`dir()` that
        // raises) is reported as unraisable and lists nothing.
        crate::exit::attach(|py| {
            self.target.describe(py).unwrap_or_else(|e| {
                e.write_unraisable(py, None);
                Vec::new()
            })
        })
        .unwrap_or_default()
    }
}
