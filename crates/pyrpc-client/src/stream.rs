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
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use pyrpc_proto::raw::{self, response, RawArgs};
use pyrpc_proto::{Args, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::client::{deadline_after, raw_value_of, unexpected, wire_call};
use crate::config::Timeouts;
use crate::connection::{Connection, SharedHandle};
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

/// The reply of [`Client::call_streaming_raw_with`]: as [`Reply`], with a
/// returned value as the bytes of its `Value` message (for callers that
/// convert values themselves, as the Python binding does).
#[derive(Debug)]
pub enum RawReply {
    /// The method returned the value these bytes encode.
    Value(Bytes),
    /// The method streams its reply; take its items with
    /// [`ReplyStream::next_raw`].
    Stream(Box<ReplyStream>),
}

/// The items of a streamed reply, as they arrive: a [`Stream`] of
/// `Result<Value, CallError>` (or their encoded bytes, with
/// [`ReplyStream::next_raw`]). An `Err` (the method raised mid-stream, the
/// connection broke, the call timed out) is the last item. Dropping it
/// before the end cancels the call on the server.
pub struct ReplyStream {
    id: u64,
    items: Option<mpsc::UnboundedReceiver<Bytes>>,
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
    first: Option<Bytes>,
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
    fn finish(&mut self, end: Result<response::Kind, CallError>) -> Option<CallError> {
        self.done = true;
        self.end = None;
        match end {
            Ok(response::Kind::StreamEnd(_)) => None,
            Ok(response::Kind::Error(e)) => Some(CallError::Remote(e.into())),
            Ok(other) => Some(unexpected(&other, "streamed call")),
            Err(e) => {
                if matches!(e, CallError::Timeout { .. }) {
                    if let Some(shared) = &self.shared {
                        shared.queue_cancel(self.id);
                    }
                }
                Some(e)
            }
        }
    }

    fn item(&mut self, v: Bytes) -> Result<Bytes, CallError> {
        self.took_one();
        Ok(v)
    }

    /// The next item as the bytes of its `Value` message; `None` after the
    /// last. An item made from a value reply ([`Reply::into_stream`]) is
    /// encoded here.
    pub async fn next_raw(&mut self) -> Option<Result<Bytes, CallError>> {
        std::future::poll_fn(|cx| self.poll_raw(cx)).await
    }

    /// [`ReplyStream::next_raw`] if an item (or the end) is already here.
    pub fn try_next_raw(&mut self) -> Option<Option<Result<Bytes, CallError>>> {
        let waker = futures::task::noop_waker();
        match self.poll_raw(&mut Context::from_waker(&waker)) {
            Poll::Ready(r) => Some(r),
            Poll::Pending => None,
        }
    }

    fn poll_raw(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, CallError>>> {
        let this = self;
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(v) = this.single.take() {
            this.done = true;
            return Poll::Ready(Some(Ok(raw::encode_value(v))));
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
        Poll::Ready(this.finish(end).map(Err))
    }
}

impl Stream for ReplyStream {
    type Item = Result<Value, CallError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(v) = this.single.take() {
            this.done = true;
            return Poll::Ready(Some(Ok(v)));
        }
        let max_depth = this.max_depth;
        this.poll_raw(cx)
            .map(|item| item.map(|r| r.and_then(|b| Ok(raw::decode_value(b, max_depth)?))))
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
        let conn = self.prepare(&args, t.connect).await?;
        let call = wire_call(method, args, t.call_timeout_ms());
        match self.streaming_on(conn, call, &t).await? {
            RawReply::Value(b) => Ok(Reply::Value(raw::decode_value(
                b,
                self.config().max_value_depth,
            )?)),
            RawReply::Stream(s) => Ok(Reply::Stream(s)),
        }
    }

    /// [`Client::call_streaming_with`] with the arguments and a returned
    /// value as encoded `pyrpc.v1.Value` messages, as
    /// [`Client::call_raw_with`] (take a stream's items with
    /// [`ReplyStream::next_raw`]). The arguments are not checked against the
    /// depth limit here: the encoder must.
    ///
    /// # Errors
    ///
    /// As [`Client::call`].
    pub async fn call_streaming_raw_with(
        &self,
        method: &str,
        args: RawArgs,
        opts: &CallOptions,
    ) -> Result<RawReply, CallError> {
        let t = Timeouts::new(self.config(), opts);
        let conn = self.connection(t.connect).await?;
        let call = args.into_call(method, t.call_timeout_ms());
        self.streaming_on(conn, call, &t).await
    }

    /// Sends `call` on `conn`, offering the server a stream window, and
    /// waits for its first item or its response.
    async fn streaming_on(
        &self,
        conn: Arc<Connection>,
        mut call: raw::Call,
        t: &Timeouts,
    ) -> Result<RawReply, CallError> {
        let deadline = t.call.and_then(deadline_after);
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
        let stream = |first: Option<Bytes>, end: Option<EndFuture>, ended| {
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
            Some(Ok(v)) => Ok(RawReply::Stream(Box::new(stream(Some(v), Some(end), None)))),
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
        conn: &Connection,
        stream: F,
    ) -> Result<RawReply, CallError>
    where
        F: FnOnce(
            Option<Bytes>,
            Option<EndFuture>,
            Option<Result<response::Kind, CallError>>,
        ) -> ReplyStream,
    {
        match r {
            Ok(response::Kind::StreamEnd(e)) => Ok(RawReply::Stream(Box::new(stream(
                None,
                None,
                Some(Ok(response::Kind::StreamEnd(e))),
            )))),
            Ok(other) => match raw_value_of(other, "call") {
                Ok(v) => Ok(RawReply::Value(v)),
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
