//! The HTTP/2 body of one ADS response stream.
//!
//! tonic's generic encoder keeps one growable buffer per stream, sized by
//! the largest message that stream ever sent: with a thousand Envoys and a
//! large RouteConfiguration that is a thousand copies of the config kept
//! alive for nothing. Here each response becomes one gRPC frame in a buffer
//! of its own, handed to HTTP/2 and freed once written; an idle stream holds
//! no response memory at all.

use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::Frame;
use prost::Message;
use prost::bytes::Bytes;
use tokio::sync::mpsc;
use tonic::Status;
use tonic::codegen::http::HeaderMap;

/// gRPC's frame header: a compression flag and a big-endian length.
const GRPC_HEADER: usize = 5;

/// One length-prefixed gRPC message (uncompressed).
pub fn grpc_frame<M: Message>(msg: &M) -> Result<Bytes, Status> {
    let len = msg.encoded_len();
    let len32 = u32::try_from(len)
        .map_err(|_| Status::resource_exhausted(format!("response of {len} bytes")))?;
    let mut buf = Vec::with_capacity(GRPC_HEADER + len);
    buf.push(0);
    buf.extend_from_slice(&len32.to_be_bytes());
    msg.encode_raw(&mut buf);
    Ok(Bytes::from(buf))
}

/// Streams the responses a stream task queues as gRPC frames; ends with
/// `grpc-status` trailers when the task ends (status OK) or sends an error.
pub struct AdsBody<M> {
    rx: mpsc::Receiver<Result<M, Status>>,
    max_message: usize,
    done: bool,
}

impl<M> AdsBody<M> {
    pub fn new(rx: mpsc::Receiver<Result<M, Status>>, max_message: usize) -> Self {
        AdsBody {
            rx,
            max_message,
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

impl<M: Message + Unpin> http_body::Body for AdsBody<M> {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let next = match self.rx.poll_recv(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(next) => next,
        };
        let frame = match next {
            Some(Ok(msg)) => match grpc_frame(&msg) {
                Ok(bytes) if bytes.len() - GRPC_HEADER <= self.max_message => Frame::data(bytes),
                Ok(bytes) => {
                    self.done = true;
                    trailers(Status::resource_exhausted(format!(
                        "an xDS response of {} bytes exceeds the {} byte limit",
                        bytes.len() - GRPC_HEADER,
                        self.max_message
                    )))
                }
                Err(status) => {
                    self.done = true;
                    trailers(status)
                }
            },
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
        self.done
    }
}
