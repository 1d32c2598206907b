//! The HTTP/2 body of one ADS response stream.
//!
//! tonic's generic encoder keeps one growable buffer per stream, sized by
//! the largest message that stream ever sent: with a thousand Envoys and a
//! large RouteConfiguration that is a thousand copies of the config kept
//! alive for nothing. Here each response becomes one gRPC frame made of
//! chunks (`wire::WireResponse`): small fields in a fresh buffer, large
//! resource bodies as the snapshot's own shared bytes. Nothing of a
//! response outlives its write, and a thousand streams sending the same
//! RouteConfiguration send one allocation.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::Frame;
use prost::bytes::Bytes;
use tokio::sync::mpsc;
use tonic::Status;
use tonic::codegen::http::HeaderMap;

use super::wire::WireResponse;

/// Streams the responses a stream task queues as gRPC frames; ends with
/// `grpc-status` trailers when the task ends (status OK) or sends an error.
pub struct AdsBody<M> {
    rx: mpsc::Receiver<Result<Box<M>, Status>>,
    max_message: usize,
    /// Chunks of the frame being sent.
    pending: VecDeque<Bytes>,
    done: bool,
}

impl<M> AdsBody<M> {
    pub fn new(rx: mpsc::Receiver<Result<Box<M>, Status>>, max_message: usize) -> Self {
        AdsBody {
            rx,
            max_message,
            pending: VecDeque::new(),
            done: false,
        }
    }
}

fn trailers(status: Status) -> Frame<Bytes> {
    let mut map = HeaderMap::new();
    if let Err(e) = status.add_header(&mut map) {
        tracing::debug!(error = %e, "cannot encode gRPC status trailers");
    }
    Frame::trailers(map)
}

impl<M: WireResponse + Unpin> http_body::Body for AdsBody<M> {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if let Some(chunk) = self.pending.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        if self.done {
            return Poll::Ready(None);
        }
        let next = match self.rx.poll_recv(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(next) => next,
        };
        let frame = match next {
            Some(Ok(msg)) => {
                let len = msg.encoded_len();
                if len > self.max_message || u32::try_from(len).is_err() {
                    self.done = true;
                    trailers(Status::resource_exhausted(format!(
                        "an xDS response of {len} bytes exceeds the {} byte limit",
                        self.max_message
                    )))
                } else {
                    self.pending.extend(msg.frame_chunks());
                    match self.pending.pop_front() {
                        Some(chunk) => Frame::data(chunk),
                        None => return Poll::Ready(Some(Err(Status::internal("empty frame")))),
                    }
                }
            }
            Some(Err(status)) => {
                self.done = true;
                trailers(status)
            }
            None => {
                self.done = true;
                trailers(Status::ok(""))
            }
        };
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.pending.is_empty()
    }
}
