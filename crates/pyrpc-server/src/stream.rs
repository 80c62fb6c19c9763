//! Streamed replies: a method answers with a [`ValueStream`] of items
//! instead of one value (docs/PROTOCOL.md, "Streamed replies").
//!
//! A handler hands its stream over with [`CallContext::reply_stream`] (or is
//! added with [`Methods::add_stream`](crate::Methods::add_stream)). Once its
//! future has finished, dispatch [`pump`]s the stream: it sends each item
//! after taking one unit of the client's credit (`Call.stream_window` plus
//! every `Credit`), so a consumer that stops reading stops the method,
//! bounding the server's memory. The method is asked for at most one item
//! beyond the credit: the server must poll the stream to learn that it has
//! ended, and the end (`stream_end` or an error) is no item and needs no
//! credit (decision 0064). The item so polled waits for credit in the pump.
//!
//! ```text
//!   client                         server
//!   Call{id, stream_window: W} --> method returns a stream
//!                              <-- StreamItem{id}   (up to W)
//!   Credit{id, items: n}       --> room for n more
//!                              <-- StreamItem{id} ...
//!                              <-- Response{id, stream_end | error}
//! ```

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use futures::{Stream, StreamExt};
use pyrpc_proto::{raw, ErrorKind, RemoteError, Value};
use tokio::sync::Semaphore;

/// A stream of items for a streamed reply: each `Ok` is sent as one
/// `StreamItem`; an `Err` ends the stream with that error (after the items
/// sent so far).
pub type ValueStream = Pin<Box<dyn Stream<Item = Result<Value, RemoteError>> + Send + 'static>>;

/// The most credit a stream may hold at once; a client granting more is
/// capped here (it only matters to a client that never reads).
pub(crate) const MAX_CREDIT: usize = 1 << 20;

/// Where a handler leaves its stream for dispatch to pump. Present in a
/// [`CallContext`](crate::CallContext) only when the call may stream.
#[derive(Clone, Default)]
pub(crate) struct StreamSlot(Arc<Mutex<Option<ValueStream>>>);

impl std::fmt::Debug for StreamSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamSlot")
    }
}

impl StreamSlot {
    pub(crate) fn put(&self, s: ValueStream) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(s);
    }

    pub(crate) fn take(&self) -> Option<ValueStream> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// The error for a stream offered on a call that cannot stream: a
/// non-blocking call, or a client that did not offer a stream window. The
/// message reads after the method's name ("count() streams its reply, but
/// ...").
pub(crate) fn cannot_stream(nonblocking: bool) -> RemoteError {
    let why = if nonblocking {
        "non-blocking (nb_) calls cannot stream; call it without nb_"
    } else {
        "the client does not take streamed replies (Call.stream_window is 0)"
    };
    RemoteError::new(
        ErrorKind::UnsupportedValue,
        format!("streams its reply, but {why}"),
    )
}

/// Adds `n` to a stream's credit, capped at [`MAX_CREDIT`].
pub(crate) fn grant(credit: &Semaphore, n: u32) {
    let room = MAX_CREDIT.saturating_sub(credit.available_permits());
    let n = (n as usize).min(room);
    if n > 0 {
        credit.add_permits(n);
    }
}

/// Sends the items of `stream` as `StreamItem`s of request `id`, each after
/// taking one unit of `credit`, through `send`; returns the response that
/// ends the stream, without waiting for credit. `check` refuses an item the
/// client could not take (ending the stream with that error). Dropping the
/// future drops the stream, which stops the method.
pub(crate) async fn pump<S, C>(
    id: u64,
    mut stream: ValueStream,
    credit: Arc<Semaphore>,
    send: S,
    check: C,
) -> Result<u64, RemoteError>
where
    S: AsyncSend,
    C: Fn(Value) -> Result<Value, RemoteError>,
{
    let mut items: u64 = 0;
    loop {
        // The stream is polled before credit is taken: only an item needs
        // credit. The end (or an error) is sent at once, so a stream of
        // exactly the client's credit ends without asking for more; out of
        // credit, the item polled waits here (the one item beyond the
        // credit the method is asked for) until the client grants room.
        let Some(next) = stream.next().await else {
            return Ok(items);
        };
        let value = check(next?)?;
        match credit.acquire().await {
            Ok(permit) => permit.forget(),
            Err(_) => return Err(RemoteError::new(ErrorKind::Cancelled, "stream closed")),
        }
        let item = raw::StreamItem {
            id,
            value: raw::EncodedValue::from_value(value),
        };
        if !send.send(item).await {
            // The connection is gone: nobody to answer.
            return Ok(items);
        }
        items += 1;
    }
}

/// Queues one stream item for the connection's writer; false when the
/// connection is gone.
pub(crate) trait AsyncSend {
    fn send(&self, item: raw::StreamItem) -> impl std::future::Future<Output = bool> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    struct Collect(Arc<Mutex<Vec<u64>>>);
    impl AsyncSend for Collect {
        async fn send(&self, item: raw::StreamItem) -> bool {
            self.0.lock().unwrap().push(item.id);
            true
        }
    }

    /// Items wait for credit; the method is asked for one more (to learn
    /// whether the stream ended), which is held, not sent.
    #[tokio::test]
    async fn the_method_is_asked_for_at_most_one_item_beyond_the_credit() {
        let pulled = Arc::new(AtomicU64::new(0));
        let p = Arc::clone(&pulled);
        let stream: ValueStream = Box::pin(futures::stream::iter(0..1000).map(move |i| {
            p.fetch_add(1, Ordering::SeqCst);
            Ok(Value::from(i))
        }));
        let credit = Arc::new(Semaphore::new(0));
        grant(&credit, 5);
        let sent = Arc::new(Mutex::new(Vec::new()));
        let fut = pump(
            7,
            stream,
            Arc::clone(&credit),
            Collect(Arc::clone(&sent)),
            Ok,
        );
        tokio::pin!(fut);
        // Runs until it waits for credit.
        assert!(futures::poll!(fut.as_mut()).is_pending());
        assert_eq!(pulled.load(Ordering::SeqCst), 6);
        assert_eq!(sent.lock().unwrap().len(), 5);
        assert!(futures::poll!(fut.as_mut()).is_pending());
        assert_eq!(pulled.load(Ordering::SeqCst), 6);
        grant(&credit, 2000);
        assert_eq!(fut.await.expect("ends"), 1000);
        assert_eq!(pulled.load(Ordering::SeqCst), 1000);
    }

    /// A stream of exactly the credit's items ends with no more credit
    /// (decision 0064): the end is no item.
    #[tokio::test]
    async fn the_end_needs_no_credit() {
        for n in [0u64, 1, 4, 5] {
            let stream: ValueStream =
                Box::pin(futures::stream::iter(0..n).map(|i| Ok(Value::from(i as i64))));
            let credit = Arc::new(Semaphore::new(0));
            grant(&credit, 5);
            let sent = Arc::new(Mutex::new(Vec::new()));
            let fut = pump(7, stream, credit, Collect(Arc::clone(&sent)), Ok);
            tokio::pin!(fut);
            let done = futures::poll!(fut.as_mut());
            assert!(
                matches!(done, std::task::Poll::Ready(Ok(got)) if got == n),
                "{n} items: {done:?}"
            );
        }
    }

    /// An error after exactly the credit's items ends the stream at once.
    #[tokio::test]
    async fn a_final_error_needs_no_credit() {
        let stream: ValueStream = Box::pin(futures::stream::iter(vec![
            Ok(Value::from(1)),
            Err(RemoteError::new(ErrorKind::Exception, "boom")),
        ]));
        let credit = Arc::new(Semaphore::new(1));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let fut = pump(1, stream, credit, Collect(Arc::clone(&sent)), Ok);
        tokio::pin!(fut);
        match futures::poll!(fut.as_mut()) {
            std::task::Poll::Ready(Err(e)) => assert_eq!(e.message, "boom"),
            other => panic!("{other:?}"),
        }
        assert_eq!(sent.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn an_error_ends_the_stream_after_the_items_before_it() {
        let stream: ValueStream = Box::pin(futures::stream::iter(vec![
            Ok(Value::from(1)),
            Err(RemoteError::new(ErrorKind::Exception, "boom")),
            Ok(Value::from(2)),
        ]));
        let credit = Arc::new(Semaphore::new(10));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let err = pump(1, stream, credit, Collect(Arc::clone(&sent)), Ok)
            .await
            .expect_err("raised");
        assert_eq!(err.message, "boom");
        assert_eq!(sent.lock().unwrap().len(), 1);
    }

    struct Keep(Arc<Mutex<Vec<raw::StreamItem>>>);
    impl AsyncSend for Keep {
        async fn send(&self, item: raw::StreamItem) -> bool {
            self.0.lock().unwrap().push(item);
            true
        }
    }

    /// A large `bytes` item goes out as its own buffer, not a copy
    /// (decision 0022; tests/big_reply.rs checks the other replies).
    #[tokio::test]
    async fn a_large_bytes_item_is_not_copied() {
        let payload = bytes::Bytes::from(vec![5u8; raw::SPLIT_MIN]);
        let p = payload.clone();
        let stream: ValueStream =
            Box::pin(futures::stream::iter(0..2).map(move |_| Ok(Value::Bytes(p.clone()))));
        let kept = Arc::new(Mutex::new(Vec::new()));
        let n = pump(
            3,
            stream,
            Arc::new(Semaphore::new(10)),
            Keep(Arc::clone(&kept)),
            Ok,
        )
        .await
        .expect("ends");
        assert_eq!(n, 2);
        for item in kept.lock().unwrap().iter() {
            assert_eq!(item.value.payload().as_ptr(), payload.as_ptr());
            assert_eq!(item.value.payload().len(), payload.len());
        }
    }

    #[test]
    fn credit_is_capped() {
        let credit = Semaphore::new(0);
        grant(&credit, u32::MAX);
        grant(&credit, u32::MAX);
        assert_eq!(credit.available_permits(), MAX_CREDIT);
    }
}
