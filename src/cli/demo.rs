//! `edgeplane echo-backend` and `edgeplane ws-client`: the demo backend and
//! a small WebSocket client, for the sample stack, the README's walkthroughs
//! and the tests.
//!
//! The backend speaks plain HTTP/1.1 (answering `<name> <METHOD> <path>`, so
//! you can see which upstream and path a request reached) and, on the same
//! port, WebSocket (echoing every text and binary message back unchanged).
//! It is a real server on a real socket: Envoy proxies to it exactly as it
//! would to a user's service.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

const MAX_HEAD: usize = 64 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(clap::Args)]
pub struct EchoArgs {
    #[arg(long, default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    /// Name put in every HTTP answer, to tell backends apart.
    #[arg(long, default_value = "echo")]
    name: String,
}

#[derive(clap::Args)]
pub struct WsClientArgs {
    /// e.g. ws://127.0.0.1:8080/ws
    url: String,
    /// The message to send (with --interactive: sent first, if given).
    message: Option<String>,
    /// Keep the connection open: send each line read from stdin, print
    /// each message received, until stdin ends (Ctrl-D) or the server
    /// closes the connection (then exit 1, saying how it closed).
    #[arg(long, short = 'i')]
    interactive: bool,
}

pub fn run_echo(a: EchoArgs) -> anyhow::Result<ExitCode> {
    super::runtime()?.block_on(async move {
        let l = TcpListener::bind(a.listen).await.with_context(|| {
            format!(
                "cannot listen on {} (choose another address with --listen)",
                a.listen
            )
        })?;
        tracing::info!(listen = %a.listen, name = %a.name, "echo backend listening (HTTP and WebSocket)");
        serve_echo(l, a.name).await;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

pub fn run_ws_client(a: WsClientArgs) -> anyhow::Result<ExitCode> {
    let rt = super::runtime()?;
    if a.interactive {
        return rt.block_on(interactive(&a.url, a.message.as_deref()));
    }
    let message = a.message.as_deref().unwrap_or("hello");
    let reply = rt.block_on(ws_round_trip(&a.url, message))?;
    super::outln(&reply)?;
    Ok(ExitCode::SUCCESS)
}

/// A WebSocket client's failure, saying at which step.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot connect to {url}")]
    Connect {
        url: String,
        #[source]
        source: tokio_tungstenite::tungstenite::Error,
    },
    /// The server answered the upgrade request without `101`: Envoy says
    /// 403 when upgrades are off for the route.
    #[error("the server refused the WebSocket upgrade: HTTP {0}")]
    Refused(u16),
    #[error("the WebSocket connection failed")]
    Stream(#[source] tokio_tungstenite::tungstenite::Error),
    #[error("no reply from the server before the connection closed")]
    NoReply,
}

/// Why the echo backend stopped serving one connection (logged at debug).
#[derive(Debug, thiserror::Error)]
enum BackendError {
    #[error("reading or writing the connection")]
    Io(#[from] std::io::Error),
    #[error("echoing WebSocket messages")]
    Ws(#[from] tokio_tungstenite::tungstenite::Error),
}

/// Serves forever on `listener`.
pub async fn serve_echo(listener: TcpListener, name: String) {
    let name: Arc<str> = name.into();
    loop {
        match listener.accept().await {
            Ok((sock, _)) => {
                let name = name.clone();
                tokio::spawn(async move {
                    if let Err(e) = handle(sock, name).await {
                        tracing::debug!(error = %e, cause = ?std::error::Error::source(&e), "backend connection ended");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

struct Head {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn parse_head(text: &str) -> Option<Head> {
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split_whitespace();
    let method = first.next()?.to_string();
    let path = first.next()?.to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Some(Head {
        method,
        path,
        headers,
    })
}

async fn handle(mut sock: TcpStream, name: Arc<str>) -> Result<(), BackendError> {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        // Read until the end of the request head.
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if buf.len() > MAX_HEAD {
                return Ok(());
            }
            let mut chunk = [0u8; 4096];
            let n = match tokio::time::timeout(READ_TIMEOUT, sock.read(&mut chunk)).await {
                Ok(r) => r?,
                Err(_) => return Ok(()),
            };
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let Some(head) = parse_head(&String::from_utf8_lossy(&buf[..end])) else {
            return Ok(());
        };
        let rest = buf.split_off(end);
        let is_ws = head
            .header("upgrade")
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
        if is_ws {
            let key = head.header("sec-websocket-key").unwrap_or("").to_string();
            let resp = format!(
                "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: {}\r\n\r\n",
                derive_accept_key(key.as_bytes())
            );
            sock.write_all(resp.as_bytes()).await?;
            let ws = WebSocketStream::from_partially_read(sock, rest, Role::Server, None).await;
            return echo(ws).await;
        }
        buf = rest;
        // Discard a body, if any.
        let len: usize = head
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < len {
            let mut chunk = [0u8; 4096];
            let n = sock.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        buf.drain(..len);
        let body = format!("{name} {} {}\n", head.method, head.path);
        let close = head
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let resp = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nx-backend: {name}\r\n{}\r\n{body}",
            body.len(),
            if close { "connection: close\r\n" } else { "" }
        );
        sock.write_all(resp.as_bytes()).await?;
        if close {
            return Ok(());
        }
    }
}

async fn echo(mut ws: WebSocketStream<TcpStream>) -> Result<(), BackendError> {
    while let Some(msg) = ws.next().await {
        match msg? {
            m @ (Message::Text(_) | Message::Binary(_)) => ws.send(m).await?,
            Message::Close(_) => break,
            _ => {}
        }
    }
    Ok(())
}

type ClientWs = WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

async fn connect(url: &str) -> Result<ClientWs, DemoError> {
    match tokio_tungstenite::connect_async(url).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            Err(DemoError::Refused(resp.status().as_u16()))
        }
        Err(source) => Err(DemoError::Connect {
            url: url.to_string(),
            source,
        }),
    }
}

/// Connects to `url`, sends `text`, and returns the first text reply.
pub async fn ws_round_trip(url: &str, text: &str) -> Result<String, DemoError> {
    let mut ws = connect(url).await?;
    ws.send(Message::text(text))
        .await
        .map_err(DemoError::Stream)?;
    while let Some(msg) = ws.next().await {
        if let Message::Text(t) = msg.map_err(DemoError::Stream)? {
            let _ = ws.close(None).await;
            return Ok(t.to_string());
        }
    }
    Err(DemoError::NoReply)
}

/// How long a closing client waits for the server's close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// `ws-client --interactive`: one connection held open; every stdin line
/// is sent as a text message and every message received is printed, one
/// per line. Ends when stdin does (exit 0, after a clean close) or when
/// the server closes the connection (exit 1, with how it closed).
async fn interactive(url: &str, first: Option<&str>) -> anyhow::Result<ExitCode> {
    use tokio::io::AsyncBufReadExt;

    let mut ws = connect(url).await?;
    eprintln!("connected to {url}; each line you type is sent, Ctrl-D closes");
    if let Some(text) = first {
        ws.send(Message::text(text))
            .await
            .map_err(DemoError::Stream)?;
    }
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            line = lines.next_line() => {
                match line.context("cannot read stdin")? {
                    Some(line) => ws.send(Message::text(line)).await.map_err(DemoError::Stream)?,
                    None => {
                        // Stdin ended: close, and wait (bounded) for the
                        // server's answer to the close.
                        let _ = ws.close(None).await;
                        let _ = tokio::time::timeout(CLOSE_WAIT, async {
                            while let Some(Ok(m)) = ws.next().await {
                                if let Message::Text(t) = m {
                                    let _ = super::outln(&t);
                                }
                            }
                        })
                        .await;
                        return Ok(ExitCode::SUCCESS);
                    }
                }
            }
            msg = ws.next() => {
                match msg {
                    Some(Ok(Message::Text(t))) => super::outln(&t)?,
                    Some(Ok(Message::Binary(b))) => super::outln(&format!("({} binary bytes)", b.len()))?,
                    Some(Ok(Message::Close(frame))) => {
                        let how = frame.map_or_else(
                            || "without a close code".to_string(),
                            |f| format!("with code {} {:?}", u16::from(f.code), f.reason.as_str()),
                        );
                        eprintln!("the server closed the connection {how}");
                        return Ok(ExitCode::from(1));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(DemoError::Stream(e).into()),
                    None => {
                        eprintln!("the connection ended without a close frame");
                        return Ok(ExitCode::from(1));
                    }
                }
            }
        }
    }
}
