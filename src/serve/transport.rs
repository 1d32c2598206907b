//! Limits on the xDS port (ADS, the status API and the stats sink share
//! it): how many connections, how long one may sit without opening a
//! stream, and how large an inbound gRPC message may be. Streams per
//! connection and HTTP/2 keepalive are the HTTP/2 server's (`http2`, set
//! in `serve`); the TLS handshake timeout is `tls::HANDSHAKE_TIMEOUT`.
//!
//! - `incoming`: accepts connections (a plain accept loop would end the
//!   server on EMFILE), backs off on accept errors, and wraps each socket
//!   in a `LimitedIo` holding a connection permit for the connection's
//!   whole life (TLS included: TLS wraps the `LimitedIo`). Over the cap,
//!   a new connection is closed at once with a rate-limited WARN.
//! - `GuardLayer`: a tower layer in front of every gRPC service. It reads
//!   the gRPC frame headers of the request body and ends a request whose
//!   message declares more than `max_request_bytes` before the message is
//!   buffered, answering `RESOURCE_EXHAUSTED`; it also marks the connection
//!   as having opened a stream, which disarms its idle timeout.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::Frame;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Sleep;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// The inbound and connection limits of `serve` (flags in `cli::serve`).
#[derive(Clone, Debug)]
pub struct Limits {
    /// Live connections on the xDS port, all clients together.
    pub max_connections: usize,
    /// HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS per connection; streams over
    /// it are refused by HTTP/2 (REFUSED_STREAM).
    pub max_streams_per_connection: u32,
    /// Largest inbound gRPC message (ADS, status API, stats sink).
    pub max_request_bytes: usize,
    pub http2_keepalive_interval: Duration,
    pub http2_keepalive_timeout: Duration,
    /// A connection that opens no stream this long after accept is closed.
    pub idle_timeout: Duration,
    /// Live connections on the admin HTTP port.
    pub admin_max_connections: usize,
    /// Host header values the admin server accepts besides loopback names
    /// and its own address (`--admin-allowed-hosts`).
    pub admin_allowed_hosts: Vec<String>,
}

pub const DEFAULT_MAX_REQUEST_BYTES: usize = 4 << 20;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1024,
            max_streams_per_connection: 100,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            http2_keepalive_interval: Duration::from_secs(30),
            http2_keepalive_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            admin_max_connections: 64,
            admin_allowed_hosts: Vec::new(),
        }
    }
}

/// A WARN at most once per interval; the lines skipped in between are
/// counted in the next one.
pub struct RateLimited {
    interval_ms: u64,
    epoch: Instant,
    last_ms: AtomicU64,
    skipped: AtomicU64,
}

impl RateLimited {
    pub fn per_second() -> Self {
        RateLimited {
            interval_ms: 1000,
            epoch: Instant::now(),
            // Far enough back that the first call logs.
            last_ms: AtomicU64::new(u64::MAX),
            skipped: AtomicU64::new(0),
        }
    }

    /// `Some(lines skipped since the last one)` when this one may log.
    pub fn allow(&self) -> Option<u64> {
        let now = self.epoch.elapsed().as_millis() as u64;
        let last = self.last_ms.load(Ordering::Relaxed);
        let due = last == u64::MAX || now.saturating_sub(last) >= self.interval_ms;
        if due
            && self
                .last_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.skipped.swap(0, Ordering::Relaxed));
        }
        self.skipped.fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// Growing sleeps after accept errors (EMFILE, ENFILE, ENOMEM: the error
/// repeats at once until a descriptor is freed), 5 ms doubling to 1 s.
pub struct AcceptBackoff {
    next: Duration,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(5);
    const MAX: Duration = Duration::from_secs(1);

    pub fn new() -> Self {
        AcceptBackoff { next: Self::FIRST }
    }

    pub fn reset(&mut self) {
        self.next = Self::FIRST;
    }

    /// The delay to sleep now; the next one is twice as long (capped).
    pub fn delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        d
    }
}

impl Default for AcceptBackoff {
    fn default() -> Self {
        Self::new()
    }
}

/// Errors of one connection that do not concern the listener.
fn per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// Accepts `listener`'s connections forever, sleeping with `backoff` on
/// listener errors. `label` names the port in logs.
pub async fn accept(
    listener: &TcpListener,
    backoff: &mut AcceptBackoff,
    label: &str,
) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(conn) => {
                backoff.reset();
                return conn;
            }
            Err(e) if per_connection(&e) => continue,
            Err(e) => {
                let delay = backoff.delay();
                tracing::warn!(port = label, error = %e, delay_ms = delay.as_millis() as u64, "accept failed; backing off");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// What the layer knows of one connection.
#[derive(Default)]
pub struct ConnMark {
    /// A stream was opened (the idle timeout no longer applies).
    opened: AtomicBool,
    /// Streams open now.
    streams: AtomicU32,
    /// The stream limit was reached and said so once.
    warned: AtomicBool,
}

/// The live connections of the xDS port, by peer address.
#[derive(Clone, Default)]
pub struct Conns(Arc<Mutex<HashMap<SocketAddr, Arc<ConnMark>>>>);

impl Conns {
    fn open(&self, peer: SocketAddr) -> Arc<ConnMark> {
        let mark = Arc::new(ConnMark::default());
        if let Ok(mut m) = self.0.lock() {
            m.insert(peer, mark.clone());
        }
        mark
    }

    fn close(&self, peer: SocketAddr) {
        if let Ok(mut m) = self.0.lock() {
            m.remove(&peer);
        }
    }

    fn stream_opened(&self, peer: SocketAddr) -> Option<Arc<ConnMark>> {
        let mark = self.0.lock().ok()?.get(&peer)?.clone();
        mark.opened.store(true, Ordering::Relaxed);
        Some(mark)
    }

    /// Live connections.
    pub fn len(&self) -> usize {
        self.0.lock().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The xDS port's listen backlog (the kernel caps it at
/// `net.core.somaxconn`). When many Envoys connect at once (edgeplane
/// restarted under a fleet, a fleet rolling out), connections the accept
/// loop has not reached yet wait here; with the 128 a plain bind gives,
/// the kernel dropped their SYNs instead, and each drop cost its Envoy a
/// 1 s (then 3 s) retransmit: 1,000 clients connecting 32 at a time took
/// 1.3 to 3.3 s to sync instead of a few hundred milliseconds.
pub const XDS_LISTEN_BACKLOG: u32 = 4096;

/// Binds the xDS port with `XDS_LISTEN_BACKLOG`.
pub fn bind_xds(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As a plain bind does on Unix: a restart can bind at once while the
    // old process's connections linger in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(XDS_LISTEN_BACKLOG)
}

/// Accepted connections waiting for the server to take them: the accept
/// loop keeps draining the backlog while the server's task is busy.
const ACCEPTED_QUEUE: usize = 64;

/// The connections of `listener` for the server, within `limits`. The
/// channel ends when the server drops it (shutdown), which closes the
/// listener.
pub fn incoming(listener: TcpListener, limits: &Limits, conns: Conns) -> mpsc::Receiver<LimitedIo> {
    let (tx, rx) = mpsc::channel(ACCEPTED_QUEUE);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let max = limits.max_connections;
    let idle = limits.idle_timeout;
    tokio::spawn(async move {
        let over_cap = RateLimited::per_second();
        let idle_warn = Arc::new(RateLimited::per_second());
        let mut backoff = AcceptBackoff::new();
        loop {
            let (sock, peer) = tokio::select! {
                c = accept(&listener, &mut backoff, "xds") => c,
                () = tx.closed() => return,
            };
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                if let Some(skipped) = over_cap.allow() {
                    tracing::warn!(%peer, max_connections = max, refused_since_last_warning = skipped,
                        "xDS connection refused: --max-connections reached");
                }
                drop(sock);
                continue;
            };
            // TCP_NODELAY: without it, Nagle holds the tail of a response
            // just past a segment boundary until Envoy's delayed ACK
            // (40 ms on Linux), which measurably delayed pushes of
            // mid-sized RouteConfigurations.
            let _ = sock.set_nodelay(true);
            let io = LimitedIo::new(sock, peer, permit, idle, conns.clone(), idle_warn.clone());
            if tx.send(io).await.is_err() {
                return;
            }
        }
    });
    rx
}

/// A TCP connection of the xDS port holding its connection permit (given
/// back on drop) and closed if it opens no stream within the idle timeout.
pub struct LimitedIo {
    io: TcpStream,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    _permit: OwnedSemaphorePermit,
    opened: Arc<ConnMark>,
    idle: Option<Pin<Box<Sleep>>>,
    idle_warn: Arc<RateLimited>,
    conns: Conns,
}

impl LimitedIo {
    fn new(
        io: TcpStream,
        peer: SocketAddr,
        permit: OwnedSemaphorePermit,
        idle: Duration,
        conns: Conns,
        idle_warn: Arc<RateLimited>,
    ) -> Self {
        let opened = conns.open(peer);
        LimitedIo {
            local: io.local_addr().ok(),
            io,
            peer,
            _permit: permit,
            opened,
            idle: Some(Box::pin(tokio::time::sleep(idle))),
            idle_warn,
            conns,
        }
    }
}

impl LimitedIo {
    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }
}

impl Drop for LimitedIo {
    fn drop(&mut self) {
        self.conns.close(self.peer);
    }
}

impl Connected for LimitedIo {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        TcpConnectInfo {
            local_addr: self.local,
            remote_addr: Some(self.peer),
        }
    }
}

impl AsyncRead for LimitedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(sleep) = this.idle.as_mut() {
            if this.opened.opened.load(Ordering::Relaxed) {
                this.idle = None;
            } else if sleep.as_mut().poll(cx).is_ready() {
                this.idle = None;
                if let Some(skipped) = this.idle_warn.allow() {
                    tracing::warn!(peer = %this.peer, closed_since_last_warning = skipped,
                        "xDS connection closed: no stream opened within --idle-timeout");
                }
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no stream opened within the idle timeout",
                )));
            }
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for LimitedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Reads gRPC's length-prefixed framing (1 flag byte, 4 length bytes, the
/// message) across body chunks, to see each message's declared length
/// before its bytes arrive.
#[derive(Default)]
struct FrameScan {
    header: [u8; 5],
    have: usize,
    remaining: u64,
}

impl FrameScan {
    /// `Err(declared length)` at the first message longer than `max`.
    fn feed(&mut self, mut data: &[u8], max: usize) -> Result<(), u64> {
        while !data.is_empty() {
            if self.remaining > 0 {
                let n = (self.remaining.min(data.len() as u64)) as usize;
                self.remaining -= n as u64;
                data = &data[n..];
                continue;
            }
            let n = (5 - self.have).min(data.len());
            self.header[self.have..self.have + n].copy_from_slice(&data[..n]);
            self.have += n;
            data = &data[n..];
            if self.have == 5 {
                self.have = 0;
                let len = u64::from(u32::from_be_bytes([
                    self.header[1],
                    self.header[2],
                    self.header[3],
                    self.header[4],
                ]));
                if len > max as u64 {
                    return Err(len);
                }
                self.remaining = len;
            }
        }
        Ok(())
    }
}

/// What the layer saw of one request: the `RESOURCE_EXHAUSTED` message once
/// the request went over the limit.
type Over = Arc<OnceLock<String>>;

/// The tower layer in front of the gRPC services (see the module doc).
#[derive(Clone)]
pub struct GuardLayer {
    max_request_bytes: usize,
    max_streams: u32,
    conns: Conns,
    warn: Arc<RateLimited>,
}

impl GuardLayer {
    pub fn new(max_request_bytes: usize, max_streams: u32, conns: Conns) -> Self {
        GuardLayer {
            max_request_bytes,
            max_streams,
            conns,
            warn: Arc::new(RateLimited::per_second()),
        }
    }
}

impl<S> tower_layer::Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Guard<S> {
        Guard {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Guard<S> {
    inner: S,
    layer: GuardLayer,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S, ResBody> tower_service::Service<http::Request<tonic::body::Body>> for Guard<S>
where
    S: tower_service::Service<http::Request<tonic::body::Body>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let peer = req
            .extensions()
            .get::<TcpConnectInfo>()
            .and_then(|c| c.remote_addr());
        let stream = peer.and_then(|p| {
            let mark = self.layer.conns.stream_opened(p)?;
            let n = mark.streams.fetch_add(1, Ordering::Relaxed) + 1;
            if n >= self.layer.max_streams && !mark.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(peer = %p, max_streams = self.layer.max_streams,
                    "xDS connection reached --max-streams-per-connection; further streams are refused (REFUSED_STREAM)");
            }
            Some(OpenStream(mark))
        });
        let over: Over = Arc::default();
        let path = req.uri().path().to_string();
        let capped = CappedBody {
            max: self.layer.max_request_bytes,
            scan: FrameScan::default(),
            over: over.clone(),
            ended: false,
            peer,
            path,
            warn: self.layer.warn.clone(),
        };
        let req = req.map(|inner| {
            tonic::body::Body::new(CappedBodyWith {
                inner,
                state: capped,
            })
        });
        let fut = self.inner.call(req);
        Box::pin(async move {
            let resp = fut.await?;
            let (mut parts, body) = resp.into_parts();
            let mut trailers_only = false;
            if let Some(msg) = over.get()
                && parts.headers.contains_key("grpc-status")
            {
                set_status(&mut parts.headers, msg);
                trailers_only = true;
            }
            Ok(http::Response::from_parts(
                parts,
                tonic::body::Body::new(StatusBody {
                    inner: Box::pin(body),
                    over,
                    done: trailers_only,
                    _stream: stream,
                }),
            ))
        })
    }
}

/// `grpc-status: RESOURCE_EXHAUSTED` and its message in `headers`.
fn set_status(headers: &mut http::HeaderMap, msg: &str) {
    headers.insert("grpc-status", http::HeaderValue::from_static("8"));
    // The message is ours (ASCII, no '%'), so it needs no percent-encoding.
    if let Ok(v) = http::HeaderValue::from_str(msg) {
        headers.insert("grpc-message", v);
    }
}

struct CappedBody {
    max: usize,
    scan: FrameScan,
    over: Over,
    ended: bool,
    peer: Option<SocketAddr>,
    path: String,
    warn: Arc<RateLimited>,
}

/// The request body, ended with `RESOURCE_EXHAUSTED` at the first message
/// declaring more than `max` bytes.
struct CappedBodyWith {
    inner: tonic::body::Body,
    state: CappedBody,
}

impl http_body::Body for CappedBodyWith {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let this = self.get_mut();
        if this.state.ended {
            return Poll::Ready(None);
        }
        let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(f))) => f,
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        let st = &mut this.state;
        if let Some(data) = frame.data_ref()
            && let Err(len) = st.scan.feed(data, st.max)
        {
            st.ended = true;
            let msg = format!(
                "request message of {len} bytes is over the limit of {} bytes (--max-request-bytes)",
                st.max
            );
            if let Some(skipped) = st.warn.allow() {
                let peer = st.peer.map(|p| p.to_string()).unwrap_or_default();
                tracing::warn!(%peer, path = %st.path, bytes = len, limit = st.max,
                    refused_since_last_warning = skipped, "gRPC request over --max-request-bytes refused");
            }
            let _ = st.over.set(msg.clone());
            return Poll::Ready(Some(Err(tonic::Status::resource_exhausted(msg))));
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.state.ended || self.inner.is_end_stream()
    }
}

/// The response body, ending with `RESOURCE_EXHAUSTED` trailers instead of
/// the service's own once the request went over the limit.
struct StatusBody<B> {
    inner: Pin<Box<B>>,
    over: Over,
    done: bool,
    _stream: Option<OpenStream>,
}

/// One open stream of a connection, counted until the response ends.
struct OpenStream(Arc<ConnMark>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<B> StatusBody<B> {
    fn exhausted(&mut self) -> Option<Frame<Bytes>> {
        let msg = self.over.get()?;
        self.done = true;
        let mut t = http::HeaderMap::new();
        set_status(&mut t, msg);
        Some(Frame::trailers(t))
    }
}

impl<B> http_body::Body for StatusBody<B>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.done {
            return this.inner.as_mut().poll_frame(cx).map_err(Into::into);
        }
        if let Some(t) = this.exhausted() {
            return Poll::Ready(Some(Ok(t)));
        }
        match this.inner.as_mut().poll_frame(cx) {
            Poll::Ready(Some(Ok(f))) if f.is_trailers() => {
                Poll::Ready(Some(Ok(this.exhausted().unwrap_or(f))))
            }
            Poll::Ready(None) => Poll::Ready(this.exhausted().map(Ok)),
            other => other.map_err(Into::into),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Connections the accept loop has not reached yet wait in the
    /// backlog: 512 connects to a listener nobody accepts on all complete
    /// well within the 1 s a dropped SYN would cost (a plain bind's
    /// backlog of 128 drops every SYN past the first ~129).
    #[tokio::test]
    async fn the_xds_backlog_holds_a_burst_of_connects() {
        let listener = bind_xds("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let connects = (0..512)
            .map(|_| tokio::time::timeout(Duration::from_millis(900), TcpStream::connect(addr)));
        let results = futures_util::future::join_all(connects).await;
        let done = results.iter().filter(|r| matches!(r, Ok(Ok(_)))).count();
        assert_eq!(done, 512);
        drop(listener);
    }

    fn frame(len: u32) -> Vec<u8> {
        let mut v = vec![0u8];
        v.extend_from_slice(&len.to_be_bytes());
        v.extend(std::iter::repeat_n(7u8, len as usize));
        v
    }

    #[test]
    fn frame_scan_reads_lengths_across_chunks() {
        let mut bytes = frame(10);
        bytes.extend(frame(100));
        bytes.extend(frame(3));
        // Every split of the byte stream into two chunks sees the same.
        for cut in 0..bytes.len() {
            let mut s = FrameScan::default();
            assert_eq!(s.feed(&bytes[..cut], 100), Ok(()));
            assert_eq!(s.feed(&bytes[cut..], 100), Ok(()));
        }
        for cut in 0..bytes.len() {
            let mut s = FrameScan::default();
            let r = s
                .feed(&bytes[..cut], 99)
                .and_then(|()| s.feed(&bytes[cut..], 99));
            assert_eq!(r, Err(100), "cut at {cut}");
        }
        // One byte at a time.
        let mut s = FrameScan::default();
        let r: Result<(), u64> = bytes.iter().try_for_each(|b| s.feed(&[*b], 50));
        assert_eq!(r, Err(100));
    }

    #[test]
    fn frame_scan_refuses_a_huge_declared_length_from_its_header_alone() {
        let mut s = FrameScan::default();
        assert_eq!(
            s.feed(&[0, 0xff, 0xff, 0xff, 0xff], 4 << 20),
            Err(0xffff_ffff)
        );
    }

    #[test]
    fn backoff_grows_and_is_capped_and_resets() {
        let mut b = AcceptBackoff::new();
        let ds: Vec<_> = (0..12).map(|_| b.delay()).collect();
        assert_eq!(ds[0], Duration::from_millis(5));
        assert_eq!(ds[1], Duration::from_millis(10));
        assert!(ds.windows(2).all(|w| w[1] >= w[0]));
        assert_eq!(
            *ds.last().unwrap_or(&Duration::ZERO),
            Duration::from_secs(1)
        );
        b.reset();
        assert_eq!(b.delay(), Duration::from_millis(5));
    }

    #[test]
    fn rate_limited_logs_once_per_interval_and_counts_the_rest() {
        let r = RateLimited::per_second();
        assert_eq!(r.allow(), Some(0));
        assert_eq!(r.allow(), None);
        assert_eq!(r.allow(), None);
        r.last_ms.store(0, Ordering::Relaxed);
        // Long enough ago only if a second has passed since the epoch:
        // move the epoch back instead of sleeping.
        let r2 = RateLimited {
            epoch: Instant::now() - Duration::from_secs(5),
            ..r
        };
        assert_eq!(r2.allow(), Some(2));
    }

    #[tokio::test]
    async fn connections_over_the_cap_are_closed_and_permits_come_back() {
        use tokio::io::AsyncReadExt;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = Limits {
            max_connections: 2,
            ..Limits::default()
        };
        let conns = Conns::default();
        let mut inc = incoming(listener, &limits, conns.clone());
        let _c1 = TcpStream::connect(addr).await.unwrap();
        let a = inc.recv().await.expect("a connection");
        let _c2 = TcpStream::connect(addr).await.unwrap();
        let b = inc.recv().await.expect("a connection");
        assert_eq!(conns.len(), 2);
        // The third is closed by edgeplane at once: its read sees EOF.
        let mut c3 = TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(5), c3.read(&mut buf))
            .await
            .unwrap();
        assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
        // Dropping one connection gives its permit back.
        drop(a);
        assert_eq!(conns.len(), 1);
        let _c4 = TcpStream::connect(addr).await.unwrap();
        let d = tokio::time::timeout(Duration::from_secs(5), inc.recv())
            .await
            .unwrap();
        assert!(d.is_some());
        drop(b);
    }

    #[tokio::test]
    async fn a_connection_that_opens_no_stream_is_closed_after_the_idle_timeout() {
        use tokio::io::AsyncReadExt;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = Limits {
            idle_timeout: Duration::from_millis(100),
            ..Limits::default()
        };
        let conns = Conns::default();
        let mut inc = incoming(listener, &limits, conns.clone());
        let _idle = TcpStream::connect(addr).await.unwrap();
        let mut io = inc.recv().await.expect("a connection");
        let mut buf = [0u8; 1];
        let r = tokio::time::timeout(Duration::from_secs(5), io.read(&mut buf))
            .await
            .unwrap();
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::TimedOut);

        // One that opened a stream is not.
        let _busy = TcpStream::connect(addr).await.unwrap();
        let mut io = inc.recv().await.expect("a connection");
        conns.stream_opened(io.peer);
        let r = tokio::time::timeout(Duration::from_millis(400), io.read(&mut buf)).await;
        assert!(r.is_err(), "still open (read pending): {r:?}");
    }
}
