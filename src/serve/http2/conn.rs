//! One HTTP/2 connection, server side: a single future that reads frames,
//! calls the service for each request stream, and writes the responses.
//!
//! Why not hyper/h2: their connection allocates a 16 KiB write buffer, an
//! 8 KiB read buffer and a 4 KiB HPACK buffer up front and keeps them for
//! the connection's life, and runs each stream as a task of its own. With
//! one connection per Envoy that was ~33 KiB per Envoy before any ADS
//! state. Here a connection at rest holds no buffer: frames are read
//! through a stack buffer, partial frames alone are kept, and responses go
//! out as the `Bytes` the service produced (the snapshot's own encoded
//! resources for ADS) behind 9-byte frame headers, written vectored.
//!
//! Bounds against a hostile peer: frames over 16 KiB, header blocks over
//! `max_header_list` (compressed or decoded), more than `max_streams`
//! streams (REFUSED_STREAM, and GOAWAY ENHANCE_YOUR_CALM after
//! `max_local_resets` refusals), streams reset before they were answered
//! (GOAWAY ENHANCE_YOUR_CALM past `max_pending_resets`), and receive windows
//! given back only as the service reads. While more than `PAUSE_READS`
//! bytes or `PAUSE_READS_FRAMES` frames wait to be written (the peer does
//! not read), no frame is read, so PING and SETTINGS floods cannot queue
//! replies without bound. A connection whose client closed its side (EOF)
//! ends at once, with its streams.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::{Request, Response};
use http_body::Body as _;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use super::body::{RequestBody, Shared};
use super::frame::{self, Head, Reason};
use super::headers::{self, HeadError};

/// What a connection allows.
#[derive(Clone, Debug)]
pub struct Config {
    /// SETTINGS_MAX_CONCURRENT_STREAMS.
    pub max_streams: u32,
    pub keepalive_interval: Duration,
    pub keepalive_timeout: Duration,
    /// Streams this side refused or reset before GOAWAY ENHANCE_YOUR_CALM.
    pub max_local_resets: usize,
    /// Streams the client reset before they were answered (rapid reset),
    /// net of those answered since, before GOAWAY ENHANCE_YOUR_CALM.
    pub max_pending_resets: usize,
    /// SETTINGS_MAX_HEADER_LIST_SIZE (decoded), also the bound on a
    /// compressed header block.
    pub max_header_list: usize,
}

/// Our SETTINGS_MAX_FRAME_SIZE: the protocol's minimum, so a frame is at
/// most 16 KiB + 9 bytes in memory while it is incomplete.
const MAX_FRAME: usize = frame::MIN_MAX_FRAME_SIZE as usize;

/// Reads pause while this many bytes wait to be written …
const PAUSE_READS: usize = 1024 * 1024;
/// … or this many frames (a PING flood's replies are small, but each is
/// an entry in the queue).
const PAUSE_READS_FRAMES: usize = 1024;
/// A response's DATA is framed only while fewer bytes than this wait (it
/// is the service's own `Bytes`, shared: this bounds the queue, not
/// copies).
const OUT_HIGH: usize = 256 * 1024;
/// How long, and how many bytes, a connection ended for the client's
/// errors is drained before it is closed (`linger`).
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 1024 * 1024;
/// Window owed to the client before it is announced: half the window.
const ANNOUNCE_FROM: usize = frame::DEFAULT_WINDOW as usize / 2;
/// Frames handled per wake-up before yielding to other tasks.
const READS_PER_POLL: usize = 32;

/// Why a connection ended other than by a clean close.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("HTTP/2 connection error {reason:?}: {detail}")]
    Protocol {
        reason: Reason,
        detail: &'static str,
    },
    #[error("no PING answer within the keepalive timeout")]
    KeepaliveTimeout,
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

fn conn_err(reason: Reason, detail: &'static str) -> ConnError {
    ConnError::Protocol { reason, detail }
}

type Resp = Response<tonic::body::Body>;

/// Serves one connection until the peer closes it, an error ends it, or
/// `shutdown` completes and its last stream has ended. `extensions` are
/// copied into every request (the connection's peer address and
/// certificates).
pub async fn serve<IO, S>(
    io: IO,
    service: S,
    config: Arc<Config>,
    extensions: http::Extensions,
    shutdown: Pin<Box<dyn Future<Output = ()> + Send>>,
) -> Result<(), ConnError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    S: Service<Request<tonic::body::Body>, Response = Resp, Error = Infallible> + Clone,
    S::Future: Send + 'static,
{
    let mut conn = Conn {
        io,
        service,
        keepalive: Box::pin(tokio::time::sleep(config.keepalive_interval)),
        config,
        extensions,
        shutdown: Some(shutdown),
        rbuf: BytesMut::new(),
        out: VecDeque::new(),
        out_len: 0,
        decoder: loona_hpack::Decoder::new(),
        streams: Vec::new(),
        preface: false,
        settings_seen: false,
        last_id: 0,
        peer_max_frame: MAX_FRAME,
        peer_initial_window: i64::from(frame::DEFAULT_WINDOW),
        send_window: i64::from(frame::DEFAULT_WINDOW),
        recv_window: i64::from(frame::DEFAULT_WINDOW),
        conn_release: 0,
        block: None,
        draining: false,
        read_closed: false,
        local_resets: 0,
        pending_resets: 0,
        ping_sent: None,
        failed: None,
    };
    conn.queue(frame::settings(&[
        (
            frame::SETTINGS_MAX_CONCURRENT_STREAMS,
            conn.config.max_streams,
        ),
        (
            frame::SETTINGS_MAX_HEADER_LIST_SIZE,
            u32::try_from(conn.config.max_header_list).unwrap_or(u32::MAX),
        ),
        // No dynamic table on our side once the client has seen this.
        (frame::SETTINGS_HEADER_TABLE_SIZE, 0),
    ]));
    let result = std::future::poll_fn(|cx| conn.poll(cx)).await;
    if matches!(result, Err(ConnError::Protocol { .. })) {
        // Boxed: its read buffer would otherwise be part of every
        // connection's task, lingering or not (4 KiB per Envoy).
        Box::pin(linger(&mut conn.io)).await;
    }
    result
}

/// After a GOAWAY for the client's errors: closes our side, then reads and
/// drops what the client still sends, for at most `LINGER` and
/// `LINGER_BYTES`. Closing a socket with unread input makes the kernel send
/// RST, which can destroy the GOAWAY (and the refusals before it) in the
/// client's receive queue before the client reads them.
async fn linger<IO: AsyncRead + AsyncWrite + Unpin>(io: &mut IO) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = tokio::time::timeout(LINGER, async {
        let _ = io.shutdown().await;
        let mut buf = [0u8; 4096];
        let mut left = LINGER_BYTES;
        while left > 0 {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}

struct Conn<IO, S: Service<Request<tonic::body::Body>>> {
    io: IO,
    service: S,
    config: Arc<Config>,
    extensions: http::Extensions,
    shutdown: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    keepalive: Pin<Box<Sleep>>,
    /// An incomplete frame (empty, and unallocated, between frames).
    rbuf: BytesMut,
    /// Encoded frames waiting to be written.
    out: VecDeque<Bytes>,
    out_len: usize,
    decoder: loona_hpack::Decoder<'static>,
    streams: Vec<Stream<S::Future>>,
    preface: bool,
    settings_seen: bool,
    /// The highest stream id the client opened.
    last_id: u32,
    peer_max_frame: usize,
    peer_initial_window: i64,
    /// What we may still send on the connection.
    send_window: i64,
    /// What the client may still send on the connection.
    recv_window: i64,
    /// Connection window owed to the client, announced from
    /// `ANNOUNCE_FROM`.
    conn_release: usize,
    /// A header block awaiting its CONTINUATION frames.
    block: Option<PendingBlock>,
    /// GOAWAY sent: no new streams, close when the last one ends.
    draining: bool,
    /// The client closed its side (EOF).
    read_closed: bool,
    local_resets: usize,
    pending_resets: usize,
    ping_sent: Option<Instant>,
    /// A connection error to report once its GOAWAY is written.
    failed: Option<ConnError>,
}

struct PendingBlock {
    stream: u32,
    end_stream: bool,
    block: BytesMut,
}

struct Stream<F> {
    id: u32,
    /// The service's response, until it arrives.
    call: Option<Pin<Box<F>>>,
    /// The response body, once the headers are sent.
    body: Option<tonic::body::Body>,
    /// Body bytes not yet framed (flow control or `OUT_HIGH`).
    pending: Bytes,
    send_window: i64,
    recv_window: i64,
    /// Received and not yet taken by the reader.
    unreleased: usize,
    /// Taken by the reader, not yet announced (WINDOW_UPDATE).
    unannounced: usize,
    request: Arc<Shared>,
    /// The client sent END_STREAM.
    request_ended: bool,
    /// The response is complete (END_STREAM sent or the stream reset).
    done: bool,
}

impl<F> Stream<F> {
    /// Gives `n` bytes back to the stream's window; returns the
    /// WINDOW_UPDATE to send once half the window is owed (as h2 does:
    /// one update per ACK-sized request would double the frames an ADS
    /// client handles per push), none once the client ended the stream.
    fn release(&mut self, n: usize) -> Option<(u32, u32)> {
        self.unannounced += n;
        if self.request_ended || self.unannounced < ANNOUNCE_FROM {
            return None;
        }
        let n = std::mem::take(&mut self.unannounced);
        self.recv_window += n as i64;
        Some((self.id, n as u32))
    }
}

enum Step {
    Progress,
    Idle,
}

impl<IO, S> Conn<IO, S>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    S: Service<Request<tonic::body::Body>, Response = Resp, Error = Infallible> + Clone,
    S::Future: Send + 'static,
{
    fn queue(&mut self, b: Bytes) {
        self.out_len += b.len();
        self.out.push_back(b);
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ConnError>> {
        loop {
            let mut progress = false;
            // Also while a GOAWAY waits to be written: a peer that never
            // reads is dropped at the keepalive timeout.
            if let Err(e) = self.poll_timers(cx) {
                return Poll::Ready(Err(e));
            }
            if self.failed.is_none() {
                match self.poll_read(cx) {
                    Ok(Step::Progress) => progress = true,
                    Ok(Step::Idle) => {}
                    // The socket failed (or the idle timeout fired): no
                    // GOAWAY can be expected to arrive.
                    Err(e @ ConnError::Io(_)) => return Poll::Ready(Err(e)),
                    Err(e) => self.fail(e),
                }
                if self.read_closed {
                    // The client closed its side: nothing it asked for can
                    // be answered usefully (HTTP/2 clients do not
                    // half-close the TCP connection).
                    let streams = std::mem::take(&mut self.streams);
                    for s in streams {
                        self.forget(s);
                    }
                    return Poll::Ready(Ok(()));
                }
            }
            if self.failed.is_none() && matches!(self.poll_streams(cx), Step::Progress) {
                progress = true;
            }
            match self.poll_write(cx) {
                Ok(Step::Progress) => progress = true,
                Ok(Step::Idle) => {}
                Err(e) => return Poll::Ready(Err(e.into())),
            }
            if self.out.is_empty() {
                if let Some(e) = self.failed.take() {
                    return Poll::Ready(Err(e));
                }
                if self.draining && self.streams.is_empty() {
                    return Poll::Ready(Ok(()));
                }
            }
            if !progress {
                return Poll::Pending;
            }
        }
    }

    /// A connection error: GOAWAY with its reason, then close.
    fn fail(&mut self, e: ConnError) {
        let (reason, detail) = match &e {
            ConnError::Protocol { reason, detail } => (*reason, *detail),
            _ => (Reason::InternalError, ""),
        };
        self.queue(frame::goaway(self.last_id, reason, detail));
        for s in std::mem::take(&mut self.streams) {
            self.forget(s);
        }
        self.failed = Some(e);
    }

    fn poll_timers(&mut self, cx: &mut Context<'_>) -> Result<(), ConnError> {
        if let Some(shutdown) = self.shutdown.as_mut()
            && shutdown.as_mut().poll(cx).is_ready()
        {
            self.shutdown = None;
            if !self.draining {
                self.draining = true;
                self.queue(frame::goaway(self.last_id, Reason::NoError, ""));
            }
        }
        while self.keepalive.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            match self.ping_sent {
                Some(sent) if now >= sent + self.config.keepalive_timeout => {
                    return Err(ConnError::KeepaliveTimeout);
                }
                Some(sent) => {
                    let at = sent + self.config.keepalive_timeout;
                    self.keepalive.as_mut().reset(at);
                }
                None => {
                    self.queue(frame::ping(0, *b"edgeplan"));
                    self.ping_sent = Some(now);
                    let at = now + self.config.keepalive_timeout;
                    self.keepalive.as_mut().reset(at);
                }
            }
        }
        Ok(())
    }

    fn poll_read(&mut self, cx: &mut Context<'_>) -> Result<Step, ConnError> {
        let mut step = Step::Idle;
        for _ in 0..READS_PER_POLL {
            if self.read_closed
                || self.out_len >= PAUSE_READS
                || self.out.len() >= PAUSE_READS_FRAMES
            {
                return Ok(step);
            }
            let mut raw = [MaybeUninit::<u8>::uninit(); MAX_FRAME + frame::HEADER_LEN];
            let mut buf = ReadBuf::uninit(&mut raw);
            match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
                Poll::Pending => return Ok(step),
                Poll::Ready(Err(e)) => return Err(e.into()),
                Poll::Ready(Ok(())) => {}
            }
            step = Step::Progress;
            let got = buf.filled();
            if got.is_empty() {
                self.read_closed = true;
                return Ok(step);
            }
            self.rbuf.extend_from_slice(got);
            self.parse_frames()?;
            if self.rbuf.is_empty() && self.rbuf.capacity() > 0 {
                // Nothing is kept between frames.
                self.rbuf = BytesMut::new();
            }
        }
        // More may be readable: come back after others have run.
        cx.waker().wake_by_ref();
        Ok(Step::Idle)
    }

    fn parse_frames(&mut self) -> Result<(), ConnError> {
        if !self.preface {
            if self.rbuf.len() < frame::PREFACE.len() {
                return if frame::PREFACE.starts_with(&self.rbuf) {
                    Ok(())
                } else {
                    Err(conn_err(Reason::ProtocolError, "not an HTTP/2 preface"))
                };
            }
            if &self.rbuf[..frame::PREFACE.len()] != frame::PREFACE {
                return Err(conn_err(Reason::ProtocolError, "not an HTTP/2 preface"));
            }
            self.rbuf.advance(frame::PREFACE.len());
            self.preface = true;
        }
        while let Some(head) = Head::parse(&self.rbuf) {
            if head.len > MAX_FRAME {
                return Err(conn_err(Reason::FrameSizeError, "frame over 16 KiB"));
            }
            if self.rbuf.len() < frame::HEADER_LEN + head.len {
                self.rbuf
                    .reserve(frame::HEADER_LEN + head.len - self.rbuf.len());
                return Ok(());
            }
            self.rbuf.advance(frame::HEADER_LEN);
            let payload = self.rbuf.split_to(head.len).freeze();
            self.on_frame(head, payload)?;
            if self.failed.is_some() {
                return Ok(());
            }
        }
        Ok(())
    }

    fn on_frame(&mut self, head: Head, payload: Bytes) -> Result<(), ConnError> {
        if !self.settings_seen {
            if head.kind != frame::SETTINGS || head.has(frame::ACK) {
                return Err(conn_err(
                    Reason::ProtocolError,
                    "the first frame must be SETTINGS",
                ));
            }
            self.settings_seen = true;
        }
        if let Some(pending) = &self.block
            && (head.kind != frame::CONTINUATION || head.stream != pending.stream)
        {
            return Err(conn_err(
                Reason::ProtocolError,
                "a header block was interrupted",
            ));
        }
        match head.kind {
            frame::DATA => self.on_data(head, payload),
            frame::HEADERS => self.on_headers(head, payload),
            frame::CONTINUATION => self.on_continuation(head, payload),
            frame::PRIORITY => {
                if head.stream == 0 {
                    return Err(conn_err(Reason::ProtocolError, "PRIORITY on stream 0"));
                }
                Ok(())
            }
            frame::RST_STREAM => self.on_reset(head, &payload),
            frame::SETTINGS => self.on_settings(head, &payload),
            frame::PING => {
                let opaque: [u8; 8] = payload[..]
                    .try_into()
                    .map_err(|_| conn_err(Reason::FrameSizeError, "PING is 8 bytes"))?;
                if head.stream != 0 {
                    return Err(conn_err(Reason::ProtocolError, "PING on a stream"));
                }
                if head.has(frame::ACK) {
                    if self.ping_sent.take().is_some() {
                        let at = Instant::now() + self.config.keepalive_interval;
                        self.keepalive.as_mut().reset(at);
                    }
                } else {
                    self.queue(frame::ping(frame::ACK, opaque));
                }
                Ok(())
            }
            frame::GOAWAY => {
                if head.stream != 0 {
                    return Err(conn_err(Reason::ProtocolError, "GOAWAY on a stream"));
                }
                // The client will open no more streams; those open finish.
                self.draining = true;
                Ok(())
            }
            frame::WINDOW_UPDATE => self.on_window_update(head, &payload),
            frame::PUSH_PROMISE => Err(conn_err(
                Reason::ProtocolError,
                "a client may not send PUSH_PROMISE",
            )),
            // Unknown frame types are ignored (§4.1).
            _ => Ok(()),
        }
    }

    /// `n` bytes a stream gave back (`Stream::release`): owed to the
    /// connection window too, and the stream's WINDOW_UPDATE if one is due.
    fn credit(&mut self, n: usize, update: Option<(u32, u32)>) {
        self.conn_release += n;
        if let Some((id, n)) = update {
            self.queue(frame::window_update(id, n));
        }
    }

    fn stream_mut(&mut self, id: u32) -> Option<&mut Stream<S::Future>> {
        self.streams.iter_mut().find(|s| s.id == id)
    }

    fn on_data(&mut self, head: Head, payload: Bytes) -> Result<(), ConnError> {
        if head.stream == 0 {
            return Err(conn_err(Reason::ProtocolError, "DATA on stream 0"));
        }
        let len = payload.len();
        if len as i64 > self.recv_window {
            return Err(conn_err(
                Reason::FlowControlError,
                "DATA beyond the connection window",
            ));
        }
        self.recv_window -= len as i64;
        let (start, end) = frame::unpad(&head, &payload)
            .ok_or_else(|| conn_err(Reason::ProtocolError, "padding longer than the frame"))?;
        // Padding is flow-controlled, but nobody reads it: give it back now.
        let padding = len - (end - start);
        let last_id = self.last_id;
        let Some(s) = self.stream_mut(head.stream) else {
            if head.stream > last_id {
                return Err(conn_err(Reason::ProtocolError, "DATA on an idle stream"));
            }
            // A stream already closed here (its DATA was in flight): its
            // bytes go back at once, without a reset per frame.
            self.conn_release += len;
            return Ok(());
        };
        if s.request_ended {
            let id = s.id;
            self.conn_release += len;
            self.reset_stream(id, Reason::StreamClosed);
            return Ok(());
        }
        if len as i64 > s.recv_window {
            let id = s.id;
            self.conn_release += len;
            self.reset_stream(id, Reason::FlowControlError);
            return Ok(());
        }
        s.recv_window -= len as i64;
        let end_stream = head.has(frame::END_STREAM);
        s.request_ended |= end_stream;
        let data = payload.slice(start..end);
        let data_len = data.len();
        let released_now = if s.request.push(data, end_stream) {
            s.unreleased += data_len;
            padding
        } else {
            len
        };
        let update = s.release(released_now);
        self.credit(released_now, update);
        Ok(())
    }

    fn on_headers(&mut self, head: Head, payload: Bytes) -> Result<(), ConnError> {
        if head.stream == 0 {
            return Err(conn_err(Reason::ProtocolError, "HEADERS on stream 0"));
        }
        let (mut start, end) = frame::unpad(&head, &payload)
            .ok_or_else(|| conn_err(Reason::ProtocolError, "padding longer than the frame"))?;
        if head.has(frame::PRIORITY_FLAG) {
            start += 5;
            if start > end {
                return Err(conn_err(Reason::FrameSizeError, "HEADERS too short"));
            }
        }
        let fragment = &payload[start..end];
        if fragment.len() > self.config.max_header_list {
            return Err(conn_err(
                Reason::EnhanceYourCalm,
                "header block over SETTINGS_MAX_HEADER_LIST_SIZE",
            ));
        }
        let end_stream = head.has(frame::END_STREAM);
        if head.has(frame::END_HEADERS) {
            return self.on_header_block(head.stream, end_stream, fragment);
        }
        self.block = Some(PendingBlock {
            stream: head.stream,
            end_stream,
            block: BytesMut::from(fragment),
        });
        Ok(())
    }

    fn on_continuation(&mut self, head: Head, payload: Bytes) -> Result<(), ConnError> {
        let Some(mut pending) = self.block.take() else {
            return Err(conn_err(
                Reason::ProtocolError,
                "CONTINUATION without HEADERS",
            ));
        };
        if pending.block.len() + payload.len() > self.config.max_header_list {
            return Err(conn_err(
                Reason::EnhanceYourCalm,
                "header block over SETTINGS_MAX_HEADER_LIST_SIZE",
            ));
        }
        pending.block.extend_from_slice(&payload);
        if head.has(frame::END_HEADERS) {
            return self.on_header_block(pending.stream, pending.end_stream, &pending.block);
        }
        self.block = Some(pending);
        Ok(())
    }

    fn on_header_block(
        &mut self,
        id: u32,
        end_stream: bool,
        block: &[u8],
    ) -> Result<(), ConnError> {
        let decoded =
            headers::decode_request(&mut self.decoder, block, self.config.max_header_list);
        if let Some(s) = self.stream_mut(id) {
            // Trailers: gRPC clients send none; they end the request.
            if matches!(decoded, Err(HeadError::Compression)) {
                return Err(conn_err(
                    Reason::CompressionError,
                    "undecodable header block",
                ));
            }
            if !end_stream || s.request_ended {
                self.reset_stream(id, Reason::ProtocolError);
                return Ok(());
            }
            s.request_ended = true;
            s.request.push(Bytes::new(), true);
            return Ok(());
        }
        if id.is_multiple_of(2) || id <= self.last_id {
            return Err(conn_err(
                Reason::ProtocolError,
                "a new stream's id must be odd and increasing",
            ));
        }
        self.last_id = id;
        let head = match decoded {
            Err(HeadError::Compression) => {
                return Err(conn_err(
                    Reason::CompressionError,
                    "undecodable header block",
                ));
            }
            Err(_) => return self.refuse(id, Reason::ProtocolError),
            Ok(head) => head,
        };
        if self.draining {
            self.queue(frame::rst_stream(id, Reason::RefusedStream));
            return Ok(());
        }
        if self.streams.len() >= self.config.max_streams as usize {
            return self.refuse(id, Reason::RefusedStream);
        }
        let shared = Arc::new(Shared::default());
        if end_stream {
            shared.push(Bytes::new(), true);
        }
        let mut req = head.into_request(tonic::body::Body::new(RequestBody::new(shared.clone())));
        req.extensions_mut().extend(self.extensions.clone());
        let mut service = self.service.clone();
        // The stack's services are always ready (tonic's router); one that
        // is not gets the stream refused rather than a wait.
        let waker = futures_util::task::noop_waker();
        if !matches!(
            service.poll_ready(&mut Context::from_waker(&waker)),
            Poll::Ready(Ok(()))
        ) {
            shared.reset();
            return self.refuse(id, Reason::RefusedStream);
        }
        let call = service.call(req);
        self.streams.push(Stream {
            id,
            call: Some(Box::pin(call)),
            body: None,
            pending: Bytes::new(),
            send_window: self.peer_initial_window,
            recv_window: i64::from(frame::DEFAULT_WINDOW),
            unreleased: 0,
            unannounced: 0,
            request: shared,
            request_ended: end_stream,
            done: false,
        });
        Ok(())
    }

    /// Refuses or resets a stream this side never served; too many and
    /// the client is told to calm down.
    fn refuse(&mut self, id: u32, reason: Reason) -> Result<(), ConnError> {
        if self.local_resets >= self.config.max_local_resets {
            return Err(conn_err(
                Reason::EnhanceYourCalm,
                "too many refused streams",
            ));
        }
        self.local_resets += 1;
        self.queue(frame::rst_stream(id, reason));
        Ok(())
    }

    /// Resets a live stream (a stream error) and forgets it.
    fn reset_stream(&mut self, id: u32, reason: Reason) {
        self.queue(frame::rst_stream(id, reason));
        self.local_resets += 1;
        if let Some(at) = self.streams.iter().position(|s| s.id == id) {
            let s = self.streams.swap_remove(at);
            self.forget(s);
        }
    }

    /// Drops a stream's state, giving back what it held of the connection
    /// window.
    ///
    /// A service call still running is not cancelled: it goes on in a
    /// task of its own, its request body reset, so that a handler's code
    /// after its read loop (a stream counted closed, a node unbound) runs
    /// as it would when the client ends the stream itself.
    fn forget(&mut self, s: Stream<S::Future>) {
        s.request.reset();
        if let Some(call) = s.call {
            tokio::spawn(async move {
                let _ = call.await;
            });
        }
        self.conn_release += s.unreleased;
    }

    fn on_reset(&mut self, head: Head, payload: &[u8]) -> Result<(), ConnError> {
        if payload.len() != 4 {
            return Err(conn_err(Reason::FrameSizeError, "RST_STREAM is 4 bytes"));
        }
        if head.stream == 0 {
            return Err(conn_err(Reason::ProtocolError, "RST_STREAM on stream 0"));
        }
        if head.stream > self.last_id {
            return Err(conn_err(
                Reason::ProtocolError,
                "RST_STREAM on an idle stream",
            ));
        }
        if let Some(at) = self.streams.iter().position(|s| s.id == head.stream) {
            let s = self.streams.swap_remove(at);
            if s.call.is_some() {
                self.pending_resets += 1;
                if self.pending_resets > self.config.max_pending_resets {
                    self.forget(s);
                    return Err(conn_err(
                        Reason::EnhanceYourCalm,
                        "too many streams reset before their response",
                    ));
                }
            }
            self.forget(s);
        }
        Ok(())
    }

    fn on_settings(&mut self, head: Head, payload: &[u8]) -> Result<(), ConnError> {
        if head.stream != 0 {
            return Err(conn_err(Reason::ProtocolError, "SETTINGS on a stream"));
        }
        if head.has(frame::ACK) {
            if !payload.is_empty() {
                return Err(conn_err(
                    Reason::FrameSizeError,
                    "SETTINGS ACK with a payload",
                ));
            }
            // The client has our HEADER_TABLE_SIZE of 0.
            self.decoder.set_max_allowed_table_size(0);
            return Ok(());
        }
        if !payload.len().is_multiple_of(6) {
            return Err(conn_err(Reason::FrameSizeError, "SETTINGS length"));
        }
        for s in payload.chunks_exact(6) {
            let id = u16::from_be_bytes([s[0], s[1]]);
            let v = u32::from_be_bytes([s[2], s[3], s[4], s[5]]);
            match id {
                frame::SETTINGS_ENABLE_PUSH if v > 1 => {
                    return Err(conn_err(Reason::ProtocolError, "ENABLE_PUSH over 1"));
                }
                frame::SETTINGS_INITIAL_WINDOW_SIZE => {
                    if v > frame::MAX_WINDOW {
                        return Err(conn_err(
                            Reason::FlowControlError,
                            "INITIAL_WINDOW_SIZE over 2^31-1",
                        ));
                    }
                    let delta = i64::from(v) - self.peer_initial_window;
                    self.peer_initial_window = i64::from(v);
                    for st in &mut self.streams {
                        st.send_window += delta;
                    }
                }
                frame::SETTINGS_MAX_FRAME_SIZE => {
                    if !(frame::MIN_MAX_FRAME_SIZE..=frame::MAX_MAX_FRAME_SIZE).contains(&v) {
                        return Err(conn_err(
                            Reason::ProtocolError,
                            "MAX_FRAME_SIZE out of range",
                        ));
                    }
                    self.peer_max_frame = v as usize;
                }
                // Our encoder keeps no table; we push nothing; the peer's
                // header list limit is far above our few response fields.
                _ => {}
            }
        }
        self.queue(frame::settings_ack());
        Ok(())
    }

    fn on_window_update(&mut self, head: Head, payload: &[u8]) -> Result<(), ConnError> {
        let b: [u8; 4] = payload
            .try_into()
            .map_err(|_| conn_err(Reason::FrameSizeError, "WINDOW_UPDATE is 4 bytes"))?;
        let inc = i64::from(u32::from_be_bytes(b) & 0x7fff_ffff);
        if head.stream == 0 {
            if inc == 0 {
                return Err(conn_err(Reason::ProtocolError, "WINDOW_UPDATE of 0"));
            }
            self.send_window += inc;
            if self.send_window > i64::from(frame::MAX_WINDOW) {
                return Err(conn_err(
                    Reason::FlowControlError,
                    "connection window over 2^31-1",
                ));
            }
            return Ok(());
        }
        let Some(s) = self.stream_mut(head.stream) else {
            return Ok(());
        };
        let id = s.id;
        if inc == 0 {
            self.reset_stream(id, Reason::ProtocolError);
            return Ok(());
        }
        s.send_window += inc;
        if s.send_window > i64::from(frame::MAX_WINDOW) {
            self.reset_stream(id, Reason::FlowControlError);
        }
        Ok(())
    }

    /// Releases windows as services read, turns responses into frames.
    fn poll_streams(&mut self, cx: &mut Context<'_>) -> Step {
        let mut step = Step::Idle;
        let mut i = 0;
        while i < self.streams.len() {
            let s = &mut self.streams[i];
            let released = s.request.take_released(cx.waker()).min(s.unreleased);
            if released > 0 {
                s.unreleased -= released;
                let update = s.release(released);
                self.credit(released, update);
                step = Step::Progress;
            }
            let s = &mut self.streams[i];
            if let Some(call) = s.call.as_mut()
                && let Poll::Ready(result) = call.as_mut().poll(cx)
            {
                s.call = None;
                step = Step::Progress;
                self.pending_resets = self.pending_resets.saturating_sub(1);
                let Ok(resp) = result;
                let (id, max_frame) = (s.id, self.peer_max_frame);
                let block = headers::encode_response(&resp);
                let body = resp.into_body();
                let end = body.is_end_stream();
                let s = &mut self.streams[i];
                if end {
                    s.done = true;
                } else {
                    s.body = Some(body);
                }
                self.queue(frame::header_block(id, &block, end, max_frame));
            }
            if self.poll_body(i, cx) {
                step = Step::Progress;
            }
            let s = &self.streams[i];
            if s.done {
                let s = self.streams.swap_remove(i);
                if !s.request_ended {
                    // The response is complete; the request need not be.
                    self.queue(frame::rst_stream(s.id, Reason::NoError));
                }
                self.forget(s);
                continue;
            }
            i += 1;
        }
        if self.conn_release >= ANNOUNCE_FROM {
            let n = std::mem::take(&mut self.conn_release);
            self.recv_window += n as i64;
            self.queue(frame::window_update(0, n as u32));
        }
        step
    }

    /// Frames what stream `i`'s body has, within the windows. Returns
    /// whether anything happened.
    fn poll_body(&mut self, i: usize, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        loop {
            if self.out_len >= OUT_HIGH {
                return progress;
            }
            let s = &mut self.streams[i];
            if !s.pending.is_empty() {
                let n = s
                    .pending
                    .len()
                    .min(self.peer_max_frame)
                    .min(s.send_window.max(0) as usize)
                    .min(self.send_window.max(0) as usize);
                if n == 0 {
                    // Blocked on a window: a WINDOW_UPDATE will wake us.
                    return progress;
                }
                let chunk = s.pending.split_to(n);
                s.send_window -= n as i64;
                let id = s.id;
                self.send_window -= n as i64;
                self.queue(frame::data_head(id, n, false));
                self.queue(chunk);
                progress = true;
                continue;
            }
            let Some(body) = s.body.as_mut() else {
                return progress;
            };
            let id = s.id;
            match Pin::new(body).poll_frame(cx) {
                Poll::Pending => return progress,
                Poll::Ready(Some(Ok(f))) => {
                    progress = true;
                    match f.into_data() {
                        Ok(data) => self.streams[i].pending = data,
                        Err(f) => {
                            let fields = f.into_trailers().unwrap_or_default();
                            let block = headers::encode_fields(&fields);
                            let max = self.peer_max_frame;
                            self.queue(frame::header_block(id, &block, true, max));
                            self.finish(i);
                            return true;
                        }
                    }
                }
                Poll::Ready(None) => {
                    self.queue(frame::data_head(id, 0, true));
                    self.finish(i);
                    return true;
                }
                Poll::Ready(Some(Err(e))) => {
                    tracing::debug!(stream = id, error = %e, "HTTP/2 response body failed");
                    self.queue(frame::rst_stream(id, Reason::InternalError));
                    self.finish(i);
                    return true;
                }
            }
        }
    }

    fn finish(&mut self, i: usize) {
        let s = &mut self.streams[i];
        s.done = true;
        s.body = None;
    }

    fn poll_write(&mut self, cx: &mut Context<'_>) -> Result<Step, std::io::Error> {
        let mut step = Step::Idle;
        while !self.out.is_empty() {
            let mut slices = [IoSlice::new(&[]); 64];
            let mut n = 0;
            for (slot, b) in slices.iter_mut().zip(self.out.iter()) {
                *slot = IoSlice::new(b);
                n += 1;
            }
            let written = match Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..n]) {
                Poll::Pending => return Ok(step),
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Ready(Ok(0)) => return Err(std::io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(w)) => w,
            };
            step = Step::Progress;
            self.out_len -= written;
            let mut left = written;
            while left > 0 {
                let Some(front) = self.out.front_mut() else {
                    break;
                };
                if front.len() <= left {
                    left -= front.len();
                    self.out.pop_front();
                } else {
                    front.advance(left);
                    left = 0;
                }
            }
        }
        // TLS holds written bytes until flushed.
        match Pin::new(&mut self.io).poll_flush(cx) {
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Ready(Ok(())) | Poll::Pending => {}
        }
        if self.out.capacity() > 16 {
            self.out = VecDeque::new();
        }
        Ok(step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    /// Answers every request with 200 and no body, or never, when `hang`.
    #[derive(Clone)]
    struct Svc {
        hang: bool,
        /// Read the request body to its end first, then notify.
        read_done: Option<Arc<tokio::sync::Notify>>,
    }

    impl Service<Request<tonic::body::Body>> for Svc {
        type Response = Resp;
        type Error = Infallible;
        type Future = Pin<Box<dyn Future<Output = Result<Resp, Infallible>> + Send>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, req: Request<tonic::body::Body>) -> Self::Future {
            let hang = self.hang;
            let read_done = self.read_done.clone();
            let path = req.uri().path().to_string();
            let mut body = req.into_body();
            Box::pin(async move {
                if let Some(done) = read_done {
                    while let Some(Ok(_)) =
                        std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
                    {
                    }
                    done.notify_one();
                }
                if hang {
                    std::future::pending::<()>().await;
                }
                let mut resp = Response::new(tonic::body::Body::empty());
                resp.headers_mut().insert(
                    "x-path",
                    http::HeaderValue::from_str(&path).expect("a path is a valid value"),
                );
                Ok(resp)
            })
        }
    }

    fn config() -> Arc<Config> {
        Arc::new(Config {
            max_streams: 100,
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(10),
            max_local_resets: 1024,
            max_pending_resets: 20,
            max_header_list: 16 * 1024,
        })
    }

    fn start(hang: bool) -> DuplexStream {
        start_with(Svc {
            hang,
            read_done: None,
        })
    }

    fn start_with(svc: Svc) -> DuplexStream {
        let (client, server) = tokio::io::duplex(1 << 20);
        tokio::spawn(serve(
            server,
            svc,
            config(),
            http::Extensions::new(),
            Box::pin(std::future::pending()),
        ));
        client
    }

    fn raw(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        frame::put_head(&mut out, payload.len(), kind, flags, stream);
        out.extend_from_slice(payload);
        out.to_vec()
    }

    /// `POST /svc/m`, `:scheme http`, HPACK literals (RFC 7541 §6.2.2).
    fn request_block() -> Vec<u8> {
        let mut b = vec![0x83, 0x86, 0x04, 6];
        b.extend_from_slice(b"/svc/m");
        b
    }

    /// Frames read until `done` says so (bounded by a deadline).
    async fn read_until(
        c: &mut DuplexStream,
        mut done: impl FnMut(&[(Head, Vec<u8>)]) -> bool,
    ) -> Vec<(Head, Vec<u8>)> {
        let mut buf = Vec::new();
        let mut frames = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut chunk = [0u8; 4096];
        while !done(&frames) {
            let n = tokio::time::timeout_at(deadline, c.read(&mut chunk))
                .await
                .expect("the server answers within 5 s")
                .expect("read");
            assert!(n > 0, "the server closed early: {frames:?}");
            buf.extend_from_slice(&chunk[..n]);
            while let Some(h) = Head::parse(&buf) {
                if buf.len() < frame::HEADER_LEN + h.len {
                    break;
                }
                let payload = buf[frame::HEADER_LEN..frame::HEADER_LEN + h.len].to_vec();
                buf.drain(..frame::HEADER_LEN + h.len);
                frames.push((h, payload));
            }
        }
        frames
    }

    /// The error code of the GOAWAY the server sends.
    async fn goaway_reason(c: &mut DuplexStream) -> u32 {
        let frames = read_until(c, |f| f.iter().any(|(h, _)| h.kind == frame::GOAWAY)).await;
        let (_, p) = frames
            .iter()
            .find(|(h, _)| h.kind == frame::GOAWAY)
            .expect("GOAWAY");
        u32::from_be_bytes([p[4], p[5], p[6], p[7]])
    }

    #[tokio::test]
    async fn settings_ping_and_a_request_are_answered() {
        let mut c = start(false);
        let mut out = frame::PREFACE.to_vec();
        out.extend(raw(frame::SETTINGS, 0, 0, &[]));
        out.extend(raw(frame::PING, 0, 0, b"12345678"));
        out.extend(raw(
            frame::HEADERS,
            frame::END_HEADERS | frame::END_STREAM,
            1,
            &request_block(),
        ));
        c.write_all(&out).await.expect("write");
        let frames = read_until(&mut c, |f| {
            f.iter().any(|(h, _)| h.kind == frame::HEADERS)
                && f.iter().any(|(h, _)| h.kind == frame::PING)
                && f.iter()
                    .any(|(h, _)| h.kind == frame::SETTINGS && h.has(frame::ACK))
        })
        .await;
        // Our SETTINGS come first, announcing the stream limit.
        let (h, p) = &frames[0];
        assert_eq!((h.kind, h.flags), (frame::SETTINGS, 0));
        assert!(p.chunks_exact(6).any(|s| s == [0, 3, 0, 0, 0, 100]));
        let ping = frames
            .iter()
            .find(|(h, _)| h.kind == frame::PING)
            .expect("a PING");
        assert_eq!((ping.0.flags, &ping.1[..]), (frame::ACK, &b"12345678"[..]));
        let (h, block) = frames
            .iter()
            .find(|(h, _)| h.kind == frame::HEADERS)
            .expect("a response");
        assert_eq!(h.stream, 1);
        assert!(h.has(frame::END_STREAM) && h.has(frame::END_HEADERS));
        let fields = loona_hpack::Decoder::new().decode(block).expect("HPACK");
        assert_eq!(fields[0], (b":status".to_vec(), b"200".to_vec()));
        assert!(fields.contains(&(b"x-path".to_vec(), b"/svc/m".to_vec())));
    }

    #[tokio::test]
    async fn rapid_resets_end_the_connection_with_enhance_your_calm() {
        let mut c = start(true);
        let mut out = frame::PREFACE.to_vec();
        out.extend(raw(frame::SETTINGS, 0, 0, &[]));
        for i in 0..25u32 {
            let id = 1 + 2 * i;
            out.extend(raw(
                frame::HEADERS,
                frame::END_HEADERS,
                id,
                &request_block(),
            ));
            out.extend(raw(
                frame::RST_STREAM,
                0,
                id,
                &(Reason::Cancel as u32).to_be_bytes(),
            ));
        }
        c.write_all(&out).await.expect("write");
        assert_eq!(goaway_reason(&mut c).await, Reason::EnhanceYourCalm as u32);
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut rest)).await;
        assert!(closed.is_ok(), "the connection is closed after GOAWAY");
    }

    /// A handler reading its request when the client resets the stream
    /// runs to its end (as the stats sink's, which counts the stream
    /// closed there), not cancelled mid-await.
    #[tokio::test]
    async fn a_reset_stream_lets_its_handler_finish() {
        // A client that resets the stream, then one that goes away.
        for goes_away in [false, true] {
            let done = Arc::new(tokio::sync::Notify::new());
            let mut c = start_with(Svc {
                hang: false,
                read_done: Some(done.clone()),
            });
            let mut out = frame::PREFACE.to_vec();
            out.extend(raw(frame::SETTINGS, 0, 0, &[]));
            out.extend(raw(frame::HEADERS, frame::END_HEADERS, 1, &request_block()));
            out.extend(raw(frame::DATA, 0, 1, b"partial"));
            if !goes_away {
                let cancel = (Reason::Cancel as u32).to_be_bytes();
                out.extend(raw(frame::RST_STREAM, 0, 1, &cancel));
            }
            c.write_all(&out).await.expect("write");
            if goes_away {
                read_until(&mut c, |f| !f.is_empty()).await;
                drop(c);
            }
            tokio::time::timeout(Duration::from_secs(5), done.notified())
                .await
                .expect("the handler saw its body end and finished");
        }
    }

    #[tokio::test]
    async fn a_frame_over_16_kib_is_a_frame_size_error() {
        let mut c = start(false);
        let mut out = frame::PREFACE.to_vec();
        out.extend(raw(frame::SETTINGS, 0, 0, &[]));
        // Only the header, declaring 16,385 bytes: the length alone
        // condemns it.
        out.extend_from_slice(&[0x00, 0x40, 0x01, frame::DATA, 0, 0, 0, 0, 1]);
        c.write_all(&out).await.expect("write");
        assert_eq!(goaway_reason(&mut c).await, Reason::FrameSizeError as u32);
    }
}
