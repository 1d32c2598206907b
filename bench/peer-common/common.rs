//! What both benchmark peers (`bench/peer`, `bench/peer-nebucloud`) share:
//! their command line, their stdout protocol, and finding the node of an
//! ADS stream in its first gRPC message. Included by each with `#[path]`:
//! the peers are separate Cargo workspaces on different tonic generations,
//! and this needs nothing from either (std, anyhow, tokio's mpsc).

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use tokio::sync::mpsc;

pub struct Args {
    pub listen: SocketAddr,
    pub resources: PathBuf,
}

/// `NAME --listen 127.0.0.1:PORT --resources FILE`; loopback only.
pub fn parse_args(name: &str) -> Result<Args> {
    let usage = format!("usage: {name} --listen 127.0.0.1:PORT --resources FILE");
    let mut listen = None;
    let mut resources = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--listen" => listen = Some(it.next().context("--listen needs ADDR:PORT")?),
            "--resources" => resources = Some(it.next().context("--resources needs FILE")?),
            "-h" | "--help" => {
                println!("{usage}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} ({usage})"),
        }
    }
    let listen: SocketAddr = listen
        .context("--listen is required")?
        .parse()
        .context("--listen: not an ADDR:PORT")?;
    anyhow::ensure!(
        listen.ip().is_loopback(),
        "--listen {listen}: the benchmark peer serves on loopback only"
    );
    Ok(Args {
        listen,
        resources: resources.context("--resources is required")?.into(),
    })
}

/// One line on stdout, flushed.
pub fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    // A harness that went away is not our problem; EOF on stdin ends us.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// stdin's lines, read on a plain thread: tokio's stdin would keep the
/// runtime from shutting down while a read is pending. Ends at EOF.
fn stdin_lines() -> mpsc::Receiver<String> {
    let (line_tx, lines) = mpsc::channel::<String>(16);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if line_tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    lines
}

/// The stdin protocol, until EOF, SIGTERM or SIGINT (then `Ok`): `load
/// FILE` answers `loaded <version>` with what `load` returns, or `error
/// <message>`; anything else `error unknown command`. An error if the gRPC
/// server task ends first.
pub async fn serve_commands<E>(
    name: &str,
    mut server: tokio::task::JoinHandle<Result<(), E>>,
    mut load: impl AsyncFnMut(&Path) -> Result<String>,
) -> Result<()>
where
    E: std::error::Error + Send + Sync + 'static,
{
    use tokio::signal::unix::{SignalKind, signal};
    let mut lines = stdin_lines();
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    loop {
        tokio::select! {
            line = lines.recv() => {
                let Some(line) = line else { return Ok(()) };
                let line = line.trim();
                if line.is_empty() {
                    continue;
                }
                match line.split_once(' ') {
                    Some(("load", file)) => match load(Path::new(file.trim())).await {
                        Ok(version) => say(&format!("loaded {version}")),
                        Err(e) => {
                            eprintln!("{name}: load {file}: {e:#}");
                            say(&format!("error {e:#}"));
                        }
                    },
                    _ => {
                        eprintln!("{name}: unknown command {line:?} (want: load FILE)");
                        say("error unknown command");
                    }
                }
            }
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
            r = &mut server => {
                return match r {
                    Ok(Ok(())) => bail!("gRPC server stopped"),
                    Ok(Err(e)) => Err(e).context("gRPC server"),
                    Err(e) => Err(e).context("gRPC server task"),
                };
            }
        }
    }
}

/// The largest first message looked into (a `Node` is far smaller).
const MAX_FIRST_MESSAGE: usize = 4 << 20;

/// Collects the first gRPC length-prefixed message of a request body.
#[derive(Default)]
pub struct FirstMessage {
    buf: Vec<u8>,
    done: bool,
}

impl FirstMessage {
    /// Feeds one chunk; returns the first message's payload once, when it
    /// is complete. Gives up (returns nothing, ever) on a compressed or
    /// oversized first message.
    pub fn push(&mut self, chunk: &[u8]) -> Option<Vec<u8>> {
        if self.done {
            return None;
        }
        self.buf.extend_from_slice(chunk);
        let header: [u8; 5] = self.buf.get(..5)?.try_into().ok()?;
        let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        if header[0] != 0 || len > MAX_FIRST_MESSAGE {
            self.done = true;
            self.buf = Vec::new();
            eprintln!(
                "peer: first ADS message compressed or over {MAX_FIRST_MESSAGE} bytes; its node gets no snapshot"
            );
            return None;
        }
        let message = self.buf.get(5..5 + len)?.to_vec();
        self.done = true;
        self.buf = Vec::new();
        Some(message)
    }
}

#[cfg(test)]
mod tests {
    use super::FirstMessage;

    #[test]
    fn first_message_across_chunks() {
        let mut f = FirstMessage::default();
        let mut framed = vec![0, 0, 0, 0, 3, b'a', b'b', b'c'];
        framed.extend_from_slice(&[0, 0, 0, 0, 1, b'z']);
        assert_eq!(f.push(&framed[..3]), None);
        assert_eq!(f.push(&framed[3..7]), None);
        assert_eq!(f.push(&framed[7..]), Some(b"abc".to_vec()));
        assert_eq!(f.push(b"more"), None);
    }

    #[test]
    fn compressed_first_message_is_skipped() {
        let mut f = FirstMessage::default();
        assert_eq!(f.push(&[1, 0, 0, 0, 1, b'a']), None);
        assert_eq!(f.push(&[0, 0, 0, 0, 1, b'a']), None);
    }
}
