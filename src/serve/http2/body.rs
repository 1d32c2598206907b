//! A request's body: DATA payloads the connection received, handed to the
//! service that reads them.
//!
//! Flow control follows the reader: bytes count against the stream's and
//! the connection's receive windows until the service takes them, and only
//! then are they given back to the client (WINDOW_UPDATE). A client can so
//! never make a stream buffer more than its window, however slowly the
//! service reads.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http_body::Frame;

/// State shared by the connection (writer) and the body (reader).
#[derive(Default)]
pub struct Shared {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    queue: VecDeque<Bytes>,
    /// Taken by the reader and not yet given back to the client.
    released: usize,
    /// The client ended the stream (END_STREAM).
    ended: bool,
    /// The stream was reset or the connection closed.
    reset: bool,
    /// The body was dropped: nothing will read what arrives.
    dropped: bool,
    reader: Option<Waker>,
    /// The connection's task, woken when bytes are released.
    conn: Option<Waker>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves plain data behind.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a DATA payload. Returns `false` when nobody reads (the
    /// bytes are released at once by the caller).
    pub fn push(&self, data: Bytes, end: bool) -> bool {
        let mut g = self.lock();
        if end {
            g.ended = true;
        }
        let reading = !g.dropped;
        if reading && !data.is_empty() {
            g.queue.push_back(data);
        }
        if let Some(w) = g.reader.take() {
            w.wake();
        }
        reading
    }

    /// The client reset the stream or the connection went away.
    pub fn reset(&self) {
        let mut g = self.lock();
        g.reset = true;
        g.queue = VecDeque::new();
        if let Some(w) = g.reader.take() {
            w.wake();
        }
    }

    /// Bytes the reader took since the last call, and registers the
    /// connection's waker for the next release.
    pub fn take_released(&self, conn: &Waker) -> usize {
        let mut g = self.lock();
        if !g.conn.as_ref().is_some_and(|w| w.will_wake(conn)) {
            g.conn = Some(conn.clone());
        }
        std::mem::take(&mut g.released)
    }

    /// Whether the reader is gone (the service dropped the body); the
    /// connection learns it from `push`.
    #[cfg(test)]
    pub fn is_dropped(&self) -> bool {
        self.lock().dropped
    }
}

/// The request body given to the service.
pub struct RequestBody {
    shared: Arc<Shared>,
}

impl RequestBody {
    pub fn new(shared: Arc<Shared>) -> Self {
        RequestBody { shared }
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        let mut g = self.shared.lock();
        g.dropped = true;
        // Whatever was queued is given back to the client's windows.
        g.released += g.queue.iter().map(Bytes::len).sum::<usize>();
        g.queue = VecDeque::new();
        if let Some(w) = g.conn.take() {
            w.wake();
        }
    }
}

/// The client reset the stream before the body ended.
#[derive(Debug, thiserror::Error)]
#[error("the client reset the HTTP/2 stream")]
pub struct StreamReset;

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = StreamReset;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamReset>>> {
        let mut g = self.shared.lock();
        if let Some(data) = g.queue.pop_front() {
            g.released += data.len();
            if g.queue.is_empty() && g.queue.capacity() > 4 {
                g.queue = VecDeque::new();
            }
            if let Some(w) = g.conn.take() {
                w.wake();
            }
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        if g.reset {
            return Poll::Ready(Some(Err(StreamReset)));
        }
        if g.ended {
            return Poll::Ready(None);
        }
        if !g.reader.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            g.reader = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        let g = self.shared.lock();
        g.queue.is_empty() && g.ended && !g.reset
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Body as _;

    fn poll(body: &mut RequestBody) -> Poll<Option<Result<Frame<Bytes>, StreamReset>>> {
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        Pin::new(body).poll_frame(&mut cx)
    }

    #[test]
    fn bytes_are_released_as_the_reader_takes_them() {
        let shared = Arc::new(Shared::default());
        let mut body = RequestBody::new(shared.clone());
        let waker = futures_util::task::noop_waker();
        assert!(poll(&mut body).is_pending());
        assert!(shared.push(Bytes::from_static(b"abc"), false));
        assert!(shared.push(Bytes::from_static(b"de"), true));
        assert_eq!(shared.take_released(&waker), 0, "nothing read yet");
        let Poll::Ready(Some(Ok(f))) = poll(&mut body) else {
            panic!("a frame")
        };
        assert_eq!(f.into_data().ok(), Some(Bytes::from_static(b"abc")));
        assert_eq!(shared.take_released(&waker), 3);
        assert!(matches!(poll(&mut body), Poll::Ready(Some(Ok(_)))));
        assert!(matches!(poll(&mut body), Poll::Ready(None)));
        assert_eq!(shared.take_released(&waker), 2);
    }

    #[test]
    fn a_dropped_body_gives_its_queue_back_and_a_reset_ends_the_reader() {
        let shared = Arc::new(Shared::default());
        let body = RequestBody::new(shared.clone());
        assert!(shared.push(Bytes::from_static(b"12345"), false));
        drop(body);
        let waker = futures_util::task::noop_waker();
        assert_eq!(shared.take_released(&waker), 5);
        assert!(!shared.push(Bytes::from_static(b"678"), false));
        assert!(shared.is_dropped());

        let shared = Arc::new(Shared::default());
        let mut body = RequestBody::new(shared.clone());
        shared.reset();
        assert!(matches!(poll(&mut body), Poll::Ready(Some(Err(_)))));
    }
}
