//! Streamed replies on the client: [`Client::call_streaming`] and
//! [`ReplyStream`] (docs/PROTOCOL.md, "Streamed replies").
//!
//! Every streaming call offers the server a window of
//! [`STREAM_WINDOW`] items (`Call.stream_window`). As the caller takes items
//! from the [`ReplyStream`], it grants the server room for as many more
//! (`Credit`), in batches of half a window, so a caller that stops reading
//! stops the server after at most a window of items: the client holds at
//! most that many unread. Dropping the stream before its end cancels the
//! call on the server (`Cancel`), which stops the method.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use pyrpc_proto::wire::{self, response};
use pyrpc_proto::{Args, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::client::{deadline_after, unexpected, wire_call};
use crate::config::Timeouts;
use crate::connection::SharedHandle;
use crate::{CallError, CallOptions, Client, TimeoutStage};

/// The items a streaming call lets the server send ahead of the caller
/// (`Call.stream_window`); the caller grants more as it reads.
pub const STREAM_WINDOW: u32 = 128;

/// The reply of [`Client::call_streaming`]: a value, or a stream of items
/// (a method that streams), as the server chose.
#[derive(Debug)]
pub enum Reply {
    /// The method returned this value.
    Value(Value),
    /// The method streams its reply (boxed: a stream's state is larger than
    /// a value).
    Stream(Box<ReplyStream>),
}

impl Reply {
    /// The items of a streamed reply; a value becomes a stream of that one
    /// item.
    pub fn into_stream(self) -> ReplyStream {
        match self {
            Reply::Stream(s) => *s,
            Reply::Value(v) => ReplyStream::single(v),
        }
    }
}

type EndFuture = Pin<Box<dyn Future<Output = Result<response::Kind, CallError>> + Send>>;

/// The items of a streamed reply, as they arrive: a [`Stream`] of
/// `Result<Value, CallError>`. An `Err` (the method raised mid-stream, the
/// connection broke, the call timed out) is the last item. Dropping it
/// before the end cancels the call on the server.
pub struct ReplyStream {
    id: u64,
    items: Option<mpsc::UnboundedReceiver<wire::Value>>,
    /// The call's one response, which ends the stream.
    end: Option<EndFuture>,
    /// The response, once it came, held until the items before it are taken.
    ended: Option<Result<response::Kind, CallError>>,
    shared: Option<SharedHandle>,
    /// Items taken since the last `Credit`.
    taken: u32,
    max_depth: usize,
    /// A value reply made into a stream ([`Reply::into_stream`]).
    single: Option<Value>,
    /// The first item, read to tell a stream from a value.
    first: Option<wire::Value>,
    done: bool,
}

impl std::fmt::Debug for ReplyStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplyStream")
            .field("id", &self.id)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl ReplyStream {
    fn single(v: Value) -> Self {
        ReplyStream {
            id: 0,
            items: None,
            end: None,
            ended: None,
            shared: None,
            taken: 0,
            max_depth: 0,
            single: Some(v),
            first: None,
            done: false,
        }
    }

    /// Counts one item taken, granting the server room for more every half
    /// window.
    fn took_one(&mut self) {
        self.taken += 1;
        if self.taken >= STREAM_WINDOW / 2 {
            if let Some(shared) = &self.shared {
                shared.queue_credit(self.id, self.taken);
            }
            self.taken = 0;
        }
    }

    /// The stream's end, from the call's response.
    fn finish(
        &mut self,
        end: Result<response::Kind, CallError>,
    ) -> Option<Result<Value, CallError>> {
        self.done = true;
        self.end = None;
        match end {
            Ok(response::Kind::StreamEnd(_)) => None,
            Ok(response::Kind::Error(e)) => Some(Err(CallError::Remote(e.into()))),
            Ok(other) => Some(Err(unexpected(&other, "streamed call"))),
            Err(e) => {
                if matches!(e, CallError::Timeout { .. }) {
                    if let Some(shared) = &self.shared {
                        shared.queue_cancel(self.id);
                    }
                }
                Some(Err(e))
            }
        }
    }

    fn item(&mut self, v: wire::Value) -> Result<Value, CallError> {
        self.took_one();
        Ok(Value::from_wire(v, self.max_depth)?)
    }
}

impl Stream for ReplyStream {
    type Item = Result<Value, CallError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(v) = this.single.take() {
            this.done = true;
            return Poll::Ready(Some(Ok(v)));
        }
        if let Some(v) = this.first.take() {
            return Poll::Ready(Some(this.item(v)));
        }
        let Some(items) = this.items.as_mut() else {
            this.done = true;
            return Poll::Ready(None);
        };
        if let Poll::Ready(Some(v)) = items.poll_recv(cx) {
            return Poll::Ready(Some(this.item(v)));
        }
        if this.ended.is_none() {
            if let Some(end) = this.end.as_mut() {
                match end.as_mut().poll(cx) {
                    Poll::Ready(r) => this.ended = Some(r),
                    Poll::Pending => return Poll::Pending,
                }
            }
        }
        // The response came: the items sent before it are all in the
        // channel by now.
        if let Ok(v) = items.try_recv() {
            return Poll::Ready(Some(this.item(v)));
        }
        let end = this.ended.take().unwrap_or(Err(CallError::Closed));
        Poll::Ready(this.finish(end))
    }
}

impl Client {
    /// Calls `method`, taking a streamed reply if the method streams: the
    /// [`Reply`] is its value, or a [`ReplyStream`] of its items as they are
    /// produced. The call's timeout, if any, bounds the whole stream.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use futures::StreamExt;
    /// use pyrpc_client::{Address, Args, Client};
    ///
    /// # async fn run() -> Result<(), pyrpc_client::CallError> {
    /// let client = Client::new(Address::tcp("127.0.0.1", 50300));
    /// let mut items = client.call_streaming("count", Args::new().arg(3)).await?.into_stream();
    /// while let Some(item) = items.next().await {
    ///     println!("{:?}", item?);
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Client::call`], for what happens before the first item.
    pub async fn call_streaming(&self, method: &str, args: Args) -> Result<Reply, CallError> {
        self.call_streaming_with(method, args, &CallOptions::default())
            .await
    }

    /// [`Client::call_streaming`] with `opts` overriding the client's
    /// settings for this call.
    ///
    /// # Errors
    ///
    /// As [`Client::call`].
    pub async fn call_streaming_with(
        &self,
        method: &str,
        args: Args,
        opts: &CallOptions,
    ) -> Result<Reply, CallError> {
        let t = Timeouts::new(self.config(), opts);
        let deadline = t.call.and_then(deadline_after);
        let conn = self.prepare(&args, t.connect).await?;
        let mut call = wire_call(method, args, t.call_timeout_ms());
        call.stream_window = STREAM_WINDOW;
        let (reply, mut items) = conn.send_streaming(call, t.send).await?;
        let id = reply.id;
        let mut end: EndFuture = Box::pin(reply.wait(deadline));
        let max_depth = self.config().max_value_depth;
        // The first frame tells: an item (a stream) or the response.
        let first = tokio::select! {
            biased;
            v = items.recv() => v.map(Ok),
            r = &mut end => Some(Err(r)),
        };
        let stream = |first: Option<wire::Value>, end: Option<EndFuture>, ended| {
            let mut s = ReplyStream {
                id,
                items: Some(items),
                end,
                ended,
                shared: Some(conn.shared_handle()),
                taken: 0,
                max_depth,
                single: None,
                first: None,
                done: false,
            };
            s.first = first;
            s
        };
        match first {
            Some(Ok(v)) => Ok(Reply::Stream(Box::new(stream(Some(v), Some(end), None)))),
            None => {
                // The item channel closed: the response came (or the
                // connection broke); `end` has it.
                let r = end.await;
                self.reply_of(r, deadline, id, &conn, stream)
            }
            Some(Err(r)) => self.reply_of(r, deadline, id, &conn, stream),
        }
    }

    fn reply_of<F>(
        &self,
        r: Result<response::Kind, CallError>,
        deadline: Option<Instant>,
        id: u64,
        conn: &crate::connection::Connection,
        stream: F,
    ) -> Result<Reply, CallError>
    where
        F: FnOnce(
            Option<wire::Value>,
            Option<EndFuture>,
            Option<Result<response::Kind, CallError>>,
        ) -> ReplyStream,
    {
        match r {
            Ok(response::Kind::StreamEnd(e)) => Ok(Reply::Stream(Box::new(stream(
                None,
                None,
                Some(Ok(response::Kind::StreamEnd(e))),
            )))),
            Ok(other) => match self.value_of(other, "call") {
                Ok(v) => Ok(Reply::Value(v)),
                Err(CallError::Remote(e))
                    if deadline.is_some() && e.kind == pyrpc_proto::ErrorKind::DeadlineExceeded =>
                {
                    Err(CallError::Timeout {
                        stage: TimeoutStage::Reply,
                    })
                }
                Err(e) => Err(e),
            },
            Err(e @ CallError::Timeout { .. }) => {
                conn.shared_handle().queue_cancel(id);
                Err(e)
            }
            Err(e) => Err(e),
        }
    }
}
