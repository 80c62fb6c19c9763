//! [`PyCallee`]: the [`Callee`] that runs calls of the served Python object
//! on the server's Python worker threads ([`Pool`]), or on tokio's blocking
//! pool when they are all busy.

use std::sync::Arc;

use pyo3::prelude::*;
use pyrpc_proto::{Args, ErrorKind, MethodInfo, RemoteError, Value};
use pyrpc_server::{CallContext, CallDone, CallFuture, Callee};

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

    /// Arguments are decoded within the decoded-size budget
    /// (`convert::from_args`, decision 0019), so the server does not scan
    /// request frames first.
    fn bounds_decoded_size(&self) -> bool {
        true
    }

    /// Calls are answered from the worker thread that ran them
    /// (`CallDone`): one hand-off from the connection's reader to the
    /// worker, one from the worker to the connection's writer.
    fn answers_directly(&self) -> bool {
        true
    }

    fn call_then(&self, ctx: CallContext, method: &str, args: Args, done: CallDone) {
        let handle = tokio::runtime::Handle::current();
        let job = self.job(ctx, method, args, Reply::Direct { done, handle });
        // A worker that waits for this connection's next request runs it
        // itself; otherwise an idle worker is woken.
        let job = match crate::pool::run_here(job) {
            Ok(()) => return,
            Err(job) => job,
        };
        if let Err(job) = self.pool.submit(job) {
            // Every worker is busy: a blocking-pool thread, attached for
            // this call only. A job that cannot run (the interpreter is
            // exiting) drops its `done`, which answers the call.
            tokio::task::spawn_blocking(move || {
                let _ = crate::exit::attach(job);
            });
        }
    }

    fn call(&self, ctx: CallContext, method: &str, args: Args) -> CallFuture {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let running = aio::Running::default();
        let cancel = aio::CancelOnDrop::new(Arc::clone(&running));
        let job = self.job_with(ctx, method, args, Reply::Task(tx), running);
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

/// Where a call's outcome goes.
enum Reply {
    /// Back to the task that awaits the call's future ([`Callee::call`]).
    Task(Sender),
    /// Straight to the server's answer ([`Callee::call_then`]); the runtime
    /// waits for an `async def` method's coroutine.
    Direct {
        done: CallDone,
        handle: tokio::runtime::Handle,
    },
}

type Sender = tokio::sync::oneshot::Sender<Result<Value, RemoteError>>;

impl Reply {
    fn send(self, outcome: Result<Value, RemoteError>) {
        match self {
            Reply::Task(tx) => drop(tx.send(outcome)),
            Reply::Direct { done, .. } => done.finish(outcome),
        }
    }
}

impl PyCallee {
    /// The job that runs one call on a worker and sends its outcome.
    fn job(&self, ctx: CallContext, method: &str, args: Args, reply: Reply) -> Job {
        let running = aio::CallState::new(ctx.clone());
        self.job_with(ctx, method, args, reply, running)
    }

    fn job_with(
        &self,
        ctx: CallContext,
        method: &str,
        args: Args,
        reply: Reply,
        running: aio::Running,
    ) -> Job {
        let target = Arc::clone(&self.target);
        let method = method.to_owned();
        Box::new(move |py: Python<'_>| {
            // This thread's arena keeps what the call frees until the server
            // goes quiet (decision 0025).
            crate::warm::arm();
            // The call may have waited for a worker and the GIL: one whose
            // caller has given up meanwhile is not started
            // (docs/PROTOCOL.md, "Deadlines").
            if ctx.deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                return reply.send(Err(RemoteError::new(
                    ErrorKind::DeadlineExceeded,
                    format!(
                        "{method}() did not run: the caller's timeout passed before it could start"
                    ),
                )));
            }
            // Cancelled while it waited for a worker: never started.
            if running.is_cancelled() {
                return reply.send(Err(RemoteError::new(
                    ErrorKind::Cancelled,
                    format!("{method}() did not run: it was cancelled before it could start"),
                )));
            }
            match aio::with_current(&running, || target.run(py, &method, args)) {
                Ran::Done(outcome, leftovers) => {
                    reply.send(outcome);
                    // The arguments and the result are freed once the reply
                    // is on its way (a big value takes as long to free as to
                    // make), still with the GIL held.
                    drop(leftovers);
                }
                Ran::Coroutine(coro, finish) => {
                    let complete: aio::Complete = Box::new(move |py, out| finish.complete(py, out));
                    let coro = coro.into_bound(py);
                    match reply {
                        Reply::Task(tx) => {
                            aio::schedule(py, &target.event_loop, coro, complete, tx, &running)
                        }
                        Reply::Direct { done, handle } => {
                            let (tx, rx) = tokio::sync::oneshot::channel();
                            aio::schedule(py, &target.event_loop, coro, complete, tx, &running);
                            let cancel = aio::CancelOnDrop::new(Arc::clone(&running));
                            handle.spawn(async move {
                                tokio::select! {
                                    outcome = rx => {
                                        cancel.finished();
                                        done.finish(outcome.unwrap_or_else(|_| Err(finalizing())));
                                    }
                                    _ = ctx.cancelled() => {
                                        // Cancels the coroutine at its `await`.
                                        drop(cancel);
                                        // Answered by whoever cancelled it
                                        // unless this comes first.
                                        done.finish(Err(RemoteError::new(
                                            ErrorKind::Cancelled,
                                            "the call was cancelled by its caller",
                                        )));
                                    }
                                }
                            });
                        }
                    }
                }
                Ran::Generator(gen) => {
                    let gen = gen.into_bound(py);
                    let answer = move |item| reply.send(item);
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
        })
    }
}
