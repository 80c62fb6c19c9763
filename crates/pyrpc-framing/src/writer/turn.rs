//! [`Turn`]: the one writer's hold on the write half, and the writing
//! itself (awaited, or without waiting from any thread).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Buf;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::{Turn, WriterClosed, WRITE_BUF_KEEP};
use crate::FrameChunks;

pub(super) async fn sleep_some(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

impl<W, C> Turn<W, C>
where
    W: AsyncWrite + Send + Unpin + 'static,
    C: Send + 'static,
{
    /// Takes what was queued into `pending`; `false` (the write half given
    /// back) when there is nothing left to write.
    fn refill(&mut self) -> bool {
        let Some(io) = self.io.as_mut() else {
            return false;
        };
        let mut st = self.writer.lock();
        io.pending.append(&mut st.frames);
        io.permits += std::mem::take(&mut st.permits);
        if !io.pending.is_empty() {
            return true;
        }
        if io.pending.buffer_capacity() > WRITE_BUF_KEEP {
            io.pending = FrameChunks::new();
        }
        st.writing = false;
        if !st.done {
            st.io = self.io.take();
        } else {
            self.io = None;
        }
        drop(st);
        self.writer.idle.notify_waiters();
        false
    }

    /// The bytes of `pending` are written: their room goes back.
    fn written(&mut self) {
        if let Some(io) = self.io.as_mut() {
            let n = std::mem::take(&mut io.permits);
            if let (Some((sem, _)), true) = (&self.writer.room, n > 0) {
                sem.add_permits(n);
            }
            io.pending.clear();
        }
    }

    fn fail(&mut self, e: &io::Error) {
        tracing_debug(e);
        self.io = None;
        self.writer.fail();
    }

    /// Writes until nothing is queued, awaiting the socket.
    ///
    /// # Errors
    ///
    /// [`WriterClosed`] when a write fails, stalls or is killed (the
    /// writer is broken then).
    pub async fn write(self) -> Result<(), WriterClosed> {
        self.write_io().await.map_err(|_| WriterClosed)
    }

    async fn write_io(mut self) -> io::Result<()> {
        let writer = Arc::clone(&self.writer);
        let (stall, kill) = (writer.config.stall, &writer.config.kill);
        while self.refill() {
            let Some(io) = self.io.as_mut() else {
                return Err(io::ErrorKind::BrokenPipe.into());
            };
            let step = async {
                while io.pending.has_remaining() {
                    let n = with_stall(stall, io.wr.write_buf(&mut io.pending)).await?;
                    if n == 0 {
                        return Err(io::ErrorKind::WriteZero.into());
                    }
                }
                with_stall(stall, io.wr.flush()).await
            };
            let r = tokio::select! {
                biased;
                _ = kill.cancelled() => Err(io::Error::new(io::ErrorKind::ConnectionAborted, "killed")),
                r = step => r,
            };
            match r {
                Ok(()) => self.written(),
                Err(e) => {
                    self.fail(&e);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Writes what the socket takes now, without waiting (from any
    /// thread); on would-block hands the rest to a drain task on
    /// `handle`'s runtime.
    pub fn write_now(mut self, handle: &tokio::runtime::Handle) {
        let mut cx = Context::from_waker(Waker::noop());
        while self.refill() {
            if self.writer.config.kill.is_cancelled() {
                let e = io::Error::new(io::ErrorKind::ConnectionAborted, "killed");
                return self.fail(&e);
            }
            let Some(io) = self.io.as_mut() else { return };
            let mut wr = Pin::new(&mut io.wr);
            let r = loop {
                if !io.pending.has_remaining() {
                    break wr.as_mut().poll_flush(&mut cx);
                }
                match tokio_util::io::poll_write_buf(wr.as_mut(), &mut cx, &mut io.pending) {
                    Poll::Ready(Ok(0)) => break Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(_)) => {}
                    Poll::Ready(Err(e)) => break Poll::Ready(Err(e)),
                    Poll::Pending => break Poll::Pending,
                }
            };
            match r {
                Poll::Ready(Ok(())) => self.written(),
                Poll::Ready(Err(e)) => return self.fail(&e),
                Poll::Pending => {
                    // The socket is full: a task finishes when it drains.
                    self.drain = true;
                    handle.spawn(async move {
                        let _ = self.write().await;
                    });
                    return;
                }
            }
        }
    }
}

impl<W, C> Drop for Turn<W, C>
where
    W: AsyncWrite + Send + Unpin + 'static,
    C: Send + 'static,
{
    fn drop(&mut self) {
        // A writer dropped mid-write: the write half goes back with its
        // unwritten bytes in front of what was queued since, and someone
        // must write them.
        let Some(mut io) = self.io.take() else { return };
        let mut st = self.writer.lock();
        io.pending.append(&mut st.frames);
        std::mem::swap(&mut io.pending, &mut st.frames);
        st.permits += std::mem::take(&mut io.permits);
        let more = !st.frames.is_empty() && !st.done;
        if st.done {
            st.writing = false;
            drop(st);
            self.writer.idle.notify_waiters();
            return;
        }
        if more && !self.drain {
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                drop(st);
                let turn = Turn {
                    writer: Arc::clone(&self.writer),
                    io: Some(io),
                    drain: true,
                };
                handle.spawn(async move {
                    let _ = turn.write().await;
                });
                return;
            }
        }
        st.io = Some(io);
        st.writing = false;
        drop(st);
        self.writer.idle.notify_waiters();
    }
}

async fn with_stall<T>(
    stall: Option<Duration>,
    f: impl Future<Output = io::Result<T>>,
) -> io::Result<T> {
    let Some(d) = stall else { return f.await };
    // Most writes are done on their first poll (the socket has room): those
    // need no timer (a clock read, and a timer entry made and dropped, per
    // write). The stall time counts from the first poll that waits.
    let mut f = std::pin::pin!(f);
    let mut timer: Option<Pin<Box<tokio::time::Sleep>>> = None;
    std::future::poll_fn(|cx| {
        if let Poll::Ready(r) = f.as_mut().poll(cx) {
            return Poll::Ready(r);
        }
        let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(d)));
        timer.as_mut().poll(cx).map(|()| {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the peer read nothing for the stall timeout",
            ))
        })
    })
    .await
}

fn tracing_debug(e: &io::Error) {
    tracing::debug!(error = %e, "write failed; the connection's writer is broken");
}
