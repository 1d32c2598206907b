//! The demo backend and a tiny WebSocket client, for the sample stack and
//! the tests.
//!
//! The backend speaks plain HTTP/1.1 (answering `<name> <METHOD> <path>`, so
//! you can see which upstream and path a request reached) and, on the same
//! port, WebSocket (echoing every text and binary message back unchanged).
//! It is a real server on a real socket: Envoy proxies to it exactly as it
//! would to a user's service.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

const MAX_HEAD: usize = 64 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("i/o")]
    Io(#[from] std::io::Error),
    #[error("websocket")]
    Ws(#[from] tokio_tungstenite::tungstenite::Error),
    /// The server answered the upgrade request without `101`: Envoy says
    /// 403 when upgrades are off for the route.
    #[error("the server refused the WebSocket upgrade: HTTP {0}")]
    Refused(u16),
    #[error("no reply from the server before the connection closed")]
    NoReply,
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
                        tracing::debug!(error = %e, "backend connection ended");
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

async fn handle(mut sock: TcpStream, name: Arc<str>) -> Result<(), DemoError> {
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

async fn echo(mut ws: WebSocketStream<TcpStream>) -> Result<(), DemoError> {
    while let Some(msg) = ws.next().await {
        match msg? {
            m @ (Message::Text(_) | Message::Binary(_)) => ws.send(m).await?,
            Message::Close(_) => break,
            _ => {}
        }
    }
    Ok(())
}

/// Connects to `url`, sends `text`, and returns the first text reply.
pub async fn ws_round_trip(url: &str, text: &str) -> Result<String, DemoError> {
    let (mut ws, _) = match tokio_tungstenite::connect_async(url).await {
        Ok(c) => c,
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            return Err(DemoError::Refused(resp.status().as_u16()));
        }
        Err(e) => return Err(e.into()),
    };
    ws.send(Message::text(text)).await?;
    while let Some(msg) = ws.next().await {
        if let Message::Text(t) = msg? {
            let _ = ws.close(None).await;
            return Ok(t.to_string());
        }
    }
    Err(DemoError::NoReply)
}
