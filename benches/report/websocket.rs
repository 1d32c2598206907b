//! Section `websocket`: WebSocket echo round trips and messages per second
//! through Envoy (configured by edgeplane from generated manifests),
//! against the same client talking to the echo backend directly.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::http::header::HOST;

use crate::r#gen::{self, Shape};
use crate::procs::{ms, percentile};
use crate::stack::{Backend, Edgeplane, Envoy, free_port, write_all};
use crate::{Ctx, Section};

type Ws = WebSocketStream<TcpStream>;

/// 32 bytes of text, the echoed message.
const MESSAGE: &str = "edgeplane-bench-websocket-echo-0";
const ROUTES: usize = 10;
const WINDOW: usize = 32;
const PARALLEL: usize = 8;
const IO_TIMEOUT: Duration = Duration::from_secs(10);

struct Plan {
    /// Echoes per target per round.
    echoes: usize,
    warmup: usize,
    /// Length of one throughput measurement.
    duration: Duration,
    /// Rounds; in each, both targets are measured, one after the other.
    rounds: usize,
}

/// Where the client connects: a port and the Host header.
#[derive(Clone)]
struct Target {
    port: u16,
    host: String,
    path: String,
}

#[derive(Default)]
struct Figures {
    rtt: Vec<Duration>,
    /// Messages per second, one value per round.
    one: Vec<f64>,
    many: Vec<f64>,
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

pub async fn run(ctx: &Ctx) -> Result<Section> {
    let plan = if ctx.quick {
        Plan {
            echoes: 250,
            warmup: 50,
            duration: Duration::from_millis(500),
            rounds: 2,
        }
    } else {
        Plan {
            echoes: 400,
            warmup: 200,
            duration: Duration::from_secs(1),
            rounds: 5,
        }
    };
    let base = ctx.work.join("websocket");
    let manifests = base.join("manifests");
    let backend = Backend::start().await?;
    let shape = Shape {
        routes: ROUTES,
        upstreams: 1,
        port: free_port()?,
        backend_port: backend.port,
        per_vs: r#gen::ROUTES_PER_VS,
    };
    write_all(&manifests, &r#gen::manifests(shape))?;
    let ep = Edgeplane::start(ctx, &manifests, &base).await?;
    let mut envoy = Envoy::start_for(ctx, ep.xds_port, "bench-websocket", &base, "ws").await?;
    let host = r#gen::vs_domain(0);
    envoy
        .wait_serving(shape.port, &host, "/vs0/r0", Duration::from_secs(60))
        .await?;

    let via_envoy = Target {
        port: shape.port,
        host: host.clone(),
        path: "/vs0/r0/ws".into(),
    };
    let direct = Target {
        port: backend.port,
        host: format!("127.0.0.1:{}", backend.port),
        path: "/vs0/r0/ws".into(),
    };

    // Rounds alternate the two targets (and which goes first), so drift
    // on the shared machine hits both alike.
    let mut e = Figures::default();
    let mut d = Figures::default();
    let mut ws_envoy = connect(&via_envoy).await.context("connect through Envoy")?;
    let mut ws_direct = connect(&direct).await.context("connect direct")?;
    warm_up(&mut ws_envoy, plan.warmup).await?;
    warm_up(&mut ws_direct, plan.warmup).await?;
    for round in 0..plan.rounds {
        for envoy_side in [round % 2 == 0, round % 2 == 1] {
            let (ws, f) = if envoy_side {
                (&mut ws_envoy, &mut e)
            } else {
                (&mut ws_direct, &mut d)
            };
            f.rtt
                .extend(rtt(ws, plan.echoes).await.context("round trips")?);
        }
    }
    let _ = ws_envoy.close(None).await;
    let _ = ws_direct.close(None).await;
    for round in 0..plan.rounds {
        for conns in [1, PARALLEL] {
            for envoy_side in [round % 2 == 0, round % 2 == 1] {
                let (t, f) = if envoy_side {
                    (&via_envoy, &mut e)
                } else {
                    (&direct, &mut d)
                };
                let r = throughput(t, conns, plan.duration)
                    .await
                    .with_context(|| format!("throughput, {conns} connection(s)"))?;
                if conns == 1 {
                    f.one.push(r);
                } else {
                    f.many.push(r);
                }
            }
        }
    }
    envoy.proc.check_alive("envoy")?;
    eprintln!(
        "websocket: RTT p50 {} vs {}, 1 conn {:.0} vs {:.0} msg/s, {PARALLEL} conns {:.0} vs {:.0} msg/s",
        ms(percentile(&e.rtt, 50.0)),
        ms(percentile(&d.rtt, 50.0)),
        median(&e.one),
        median(&d.one),
        median(&e.many),
        median(&d.many)
    );
    drop((envoy, ep, backend));
    let _ = std::fs::remove_dir_all(&base);
    Ok(Section {
        title: "WebSocket".into(),
        body: render(&plan, &e, &d),
    })
}

async fn connect(t: &Target) -> Result<Ws> {
    let mut req = format!("ws://127.0.0.1:{}{}", t.port, t.path)
        .into_client_request()
        .context("websocket request")?;
    req.headers_mut()
        .insert(HOST, HeaderValue::from_str(&t.host).context("host header")?);
    let tcp = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(("127.0.0.1", t.port)))
        .await
        .context("connect timed out")?
        .context("connect")?;
    tcp.set_nodelay(true).context("TCP_NODELAY")?;
    let (ws, _) = tokio::time::timeout(IO_TIMEOUT, tokio_tungstenite::client_async(req, tcp))
        .await
        .context("websocket handshake timed out")?
        .context("websocket handshake")?;
    Ok(ws)
}

/// One echo: send, wait for the same text back.
async fn echo(ws: &mut Ws) -> Result<()> {
    ws.send(Message::text(MESSAGE)).await.context("send")?;
    loop {
        let msg = tokio::time::timeout(IO_TIMEOUT, ws.next())
            .await
            .context("echo timed out")?
            .context("connection closed")?
            .context("websocket error")?;
        match msg {
            Message::Text(text) => {
                ensure!(text.as_str() == MESSAGE, "echo mismatch");
                return Ok(());
            }
            Message::Close(c) => bail!("closed by the server: {c:?}"),
            _ => {}
        }
    }
}

async fn warm_up(ws: &mut Ws, n: usize) -> Result<()> {
    for _ in 0..n {
        echo(ws).await.context("warm-up echo")?;
    }
    Ok(())
}

/// `n` sequential echoes, each timed from send to the echo's arrival.
async fn rtt(ws: &mut Ws, n: usize) -> Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        echo(ws).await?;
        samples.push(start.elapsed());
    }
    Ok(samples)
}

/// Messages echoed per second over `conns` connections, each keeping up to
/// `WINDOW` messages in flight, for `duration`.
async fn throughput(t: &Target, conns: usize, duration: Duration) -> Result<f64> {
    let mut sockets = Vec::with_capacity(conns);
    for _ in 0..conns {
        sockets.push(connect(t).await?);
    }
    // All connections start together, after every handshake.
    let start = Instant::now();
    let stop = start + duration;
    let mut tasks = Vec::new();
    for ws in sockets {
        tasks.push(tokio::spawn(pipelined(ws, stop)));
    }
    let mut total = 0u64;
    for task in tasks {
        total += task.await.context("throughput task")??;
    }
    Ok(total as f64 / duration.as_secs_f64())
}

/// One connection: a sender keeps `WINDOW` messages in flight; the
/// receiver counts echoes until `stop`.
async fn pipelined(ws: Ws, stop: Instant) -> Result<u64> {
    let (mut sink, mut stream) = ws.split();
    let window = Arc::new(Semaphore::new(WINDOW));
    let permits = window.clone();
    let sender = tokio::spawn(async move {
        // Ends when the receiver closes the semaphore (at `stop`).
        while let Ok(p) = permits.acquire().await {
            p.forget();
            if sink.send(Message::text(MESSAGE)).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let mut received = 0u64;
    let deadline = tokio::time::Instant::from_std(stop);
    let result = loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => break Ok(received),
            Ok(None) => break Err(anyhow::anyhow!("connection closed during the run")),
            Ok(Some(Err(e))) => break Err(anyhow::anyhow!("websocket error: {e}")),
            Ok(Some(Ok(Message::Text(_)))) => {
                received += 1;
                window.add_permits(1);
            }
            Ok(Some(Ok(Message::Close(c)))) => {
                break Err(anyhow::anyhow!("closed by the server: {c:?}"));
            }
            Ok(Some(Ok(_))) => {}
        }
    };
    window.close();
    let _ = tokio::time::timeout(IO_TIMEOUT, sender).await;
    result
}

fn rate(r: f64) -> String {
    if r >= 10_000.0 {
        format!("{:.1} k msg/s", r / 1000.0)
    } else {
        format!("{r:.0} msg/s")
    }
}

fn render(plan: &Plan, e: &Figures, d: &Figures) -> String {
    let mut s = format!(
        "edgeplane serves generated manifests ({ROUTES} routes, one Upstream pointing at the demo echo backend; WebSocket upgrades are on by default on the listener) to a real Envoy (`--concurrency 1`). A tokio-tungstenite client (TCP_NODELAY) connects to `ws://…/vs0/r0/ws` with `Host: {}` through Envoy, and, as the baseline, the same client to the backend directly. The measurements run in {} rounds; each round measures both targets, alternating which goes first. Round trip: {} sequential echoes of a {}-byte text message per target and round on one connection per target (after {} warm-up echoes), each timed from send to the echo's arrival; percentiles over all {} samples per target. Throughput: messages echoed per second during {:.1} s, pipelined with up to {WINDOW} messages in flight per connection, on one connection and on {PARALLEL} connections at once (fresh connections each time); the median round is shown, with the range over rounds. The backend runs in the bench process, on the same tokio runtime as the client, for both paths.\n\n",
        r#gen::vs_domain(0),
        plan.rounds,
        plan.echoes,
        MESSAGE.len(),
        plan.warmup,
        plan.echoes * plan.rounds,
        plan.duration.as_secs_f64(),
    );
    s.push_str("| metric | through Envoy | direct to backend (baseline) | ratio (Envoy / direct) |\n|---|---:|---:|---:|\n");
    for (name, q) in [("round trip p50", 50.0), ("round trip p99", 99.0)] {
        let a = percentile(&e.rtt, q);
        let b = percentile(&d.rtt, q);
        s.push_str(&format!(
            "| {name} | {} | {} | {:.2}× |\n",
            ms3(a),
            ms3(b),
            a.as_secs_f64() / b.as_secs_f64().max(1e-9)
        ));
    }
    for (name, a, b) in [
        (
            format!("messages/s, 1 connection, window {WINDOW}"),
            &e.one,
            &d.one,
        ),
        (
            format!("messages/s, {PARALLEL} connections, window {WINDOW} each"),
            &e.many,
            &d.many,
        ),
    ] {
        s.push_str(&format!(
            "| {name} | {} ({}) | {} ({}) | {:.2}× |\n",
            rate(median(a)),
            range(a),
            rate(median(b)),
            range(b),
            median(a) / median(b).max(1e-9)
        ));
    }
    s.push_str(&format!("\nNo target in the issue; reported for reference. Through Envoy every message crosses two more loopback hops and Envoy's single worker thread; the client, the backend, Envoy and edgeplane share {} cores, so throughput measures the whole set (direct, client and backend alone compete for them; through Envoy, Envoy may also coalesce pipelined frames into fewer, larger writes).\n", std::thread::available_parallelism().map_or(0, |n| n.get())));
    s
}

fn range(v: &[f64]) -> String {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(0.0, f64::max);
    format!("{:.1}–{:.1} k", lo / 1000.0, hi / 1000.0)
}

fn ms3(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}
