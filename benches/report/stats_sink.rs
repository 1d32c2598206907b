//! Section `sink`: what Envoy's stats stream to edgeplane costs. The
//! bootstrap `edgeplane bootstrap` writes has Envoy flush its stats to
//! edgeplane's MetricsService every second (`stats_sinks` on the xDS
//! cluster, `stats_flush_interval: 1s`). On generated manifests with 1,000
//! upstreams, a real Envoy runs once with that bootstrap and once with the
//! sink's two fields removed (the baseline), against the same `edgeplane
//! serve`, rounds alternating; each is measured over a fixed window once
//! served and warm: Envoy's and edgeplane's CPU, the bytes Envoy sends on
//! its connection to edgeplane, and how many stats Envoy has.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use crate::fanout::thousands;
use crate::r#gen::{self, Shape};
use crate::procs;
use crate::stack::{Backend, Edgeplane, Envoy, http_get, listen_ports, write_all};
use crate::{Ctx, Section};

/// Envoy's stats flush interval in `edgeplane bootstrap`.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// A flush is a burst of at least this many bytes written; Envoy's other
/// writes while nothing changes (HTTP/2 pings and their ACKs) are tens of
/// bytes.
const FLUSH_BYTES: u64 = 1024;
/// A burst of writes has ended once nothing more was written for this long.
const SETTLE: Duration = Duration::from_millis(20);
const POLL: Duration = Duration::from_millis(5);
const READY_WITHIN: Duration = Duration::from_secs(120);
/// The Envoy stat the bytes figure is read from.
const TX_BYTES: &str = "cluster.xds_cluster.upstream_cx_tx_bytes_total";

struct Plan {
    upstreams: usize,
    /// Rounds; in each, both variants are measured, one after the other.
    rounds: usize,
    /// Served and warm → measurement window: discarded.
    warmup: Duration,
    /// One measurement window.
    window: Duration,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// `edgeplane bootstrap`'s output as it is.
    Sink,
    /// The same without `stats_sinks` and `stats_flush_interval`.
    Baseline,
}

impl Variant {
    fn slug(self) -> &'static str {
        match self {
            Variant::Sink => "sink",
            Variant::Baseline => "nosink",
        }
    }
}

/// One Envoy's measurement window.
struct Window {
    /// Length of the CPU window (with the sink: from just after a flush to
    /// just after the flush that ends it, so it holds whole flushes).
    secs: f64,
    /// CPU used in it (`/proc/<pid>/stat`, 10 ms ticks).
    envoy_cpu: Duration,
    ep_cpu: Duration,
    /// The same from the processes' CPU clocks (nanoseconds), when readable.
    envoy_clock: Option<Duration>,
    ep_clock: Option<Duration>,
    /// Stats flushes written in the CPU window.
    flushes: usize,
    /// Bytes Envoy wrote in the CPU window (`/proc/<pid>/io` `wchar`).
    written: u64,
    /// Growth of `TX_BYTES` between two reads outside the CPU window, and
    /// the time between them.
    tx_bytes: u64,
    tx_secs: f64,
    /// `/stats` lines, and those of `/stats?usedonly`.
    stats: usize,
    used: usize,
}

pub async fn run(ctx: &Ctx) -> Result<Section> {
    let plan = if ctx.quick {
        Plan {
            upstreams: 100,
            rounds: 1,
            warmup: Duration::from_secs(1),
            window: Duration::from_secs(3),
        }
    } else {
        Plan {
            upstreams: 1_000,
            rounds: 2,
            warmup: Duration::from_secs(3),
            window: Duration::from_secs(10),
        }
    };
    let base = ctx.work.join("sink");
    let dir = base.join("config");
    let backend = Backend::start().await?;
    let port = *listen_ports(1)?
        .first()
        .context("no free port for the Gateway")?;
    // One route per upstream, so every cluster is routed to.
    let shape = Shape {
        routes: plan.upstreams,
        upstreams: plan.upstreams,
        port,
        backend_port: backend.port,
        per_vs: r#gen::ROUTES_PER_VS,
    };
    let files = r#gen::manifests(shape);
    write_all(&dir, &files)?;
    let mut ep = Edgeplane::start(ctx, &dir, &base).await?;
    wait_ready(&mut ep).await?;
    let load_before = procs::loadavg();

    // Rounds alternate which variant goes first, so drift on the shared
    // machine hits both alike.
    let (mut sink, mut baseline) = (Vec::new(), Vec::new());
    for round in 0..plan.rounds {
        let order = if round % 2 == 0 {
            [Variant::Sink, Variant::Baseline]
        } else {
            [Variant::Baseline, Variant::Sink]
        };
        for v in order {
            let w = measure(ctx, &mut ep, &base, shape, &plan, v, round)
                .await
                .with_context(|| format!("{}, round {}", v.slug(), round + 1))?;
            eprintln!(
                "   sink: round {} {}: Envoy {:.2} %, edgeplane {:.3} % of a core, {} flushes, {:.0} B/s on xds_cluster",
                round + 1,
                v.slug(),
                pct(w.envoy_cpu, w.secs),
                pct(w.ep_cpu, w.secs),
                w.flushes,
                w.tx_bytes as f64 / w.tx_secs
            );
            match v {
                Variant::Sink => sink.push(w),
                Variant::Baseline => baseline.push(w),
            }
        }
    }
    ep.proc.check_alive("edgeplane serve")?;
    let load_after = procs::loadavg();
    drop((ep, backend));
    let _ = std::fs::remove_dir_all(&base);
    Ok(Section {
        title: "Stats sink cost".into(),
        body: render(&plan, &files, &sink, &baseline, (load_before, load_after)),
    })
}

/// One Envoy of `variant`: started, served and warm, then measured.
async fn measure(
    ctx: &Ctx,
    ep: &mut Edgeplane,
    base: &Path,
    shape: Shape,
    plan: &Plan,
    variant: Variant,
    round: usize,
) -> Result<Window> {
    let node = format!("bench-{}-{}", variant.slug(), round + 1);
    let boot = base.join(format!("envoy-{node}.json"));
    let yaml = Edgeplane::bootstrap(ctx, ep.xds_port, &node)?;
    std::fs::write(&boot, bootstrap_json(&yaml, variant == Variant::Sink)?)
        .with_context(|| format!("write {}", boot.display()))?;
    let mut envoy = Envoy::start(ctx, &boot, base, &node).await?;
    let envoy_pid = envoy.proc.pid().context("envoy has no pid")?;
    let ep_pid = ep.proc.pid().context("edgeplane has no pid")?;

    // Served and warm: a route answers through Envoy, every cluster is
    // active, and edgeplane sees the node (with the sink: its stats).
    envoy
        .wait_serving(shape.port, &r#gen::vs_domain(0), "/vs0/r0", READY_WITHIN)
        .await?;
    wait_clusters(&mut envoy, shape.upstreams + 1).await?;
    wait_node(ep, &mut envoy, &node, variant == Variant::Sink).await?;
    tokio::time::sleep(plan.warmup).await;
    envoy.proc.check_alive("envoy")?;
    ep.proc.check_alive("edgeplane serve")?;

    // The window. Envoy's admin is read only outside it; with the sink it
    // starts and ends just after a flush has been written.
    let aligned = variant == Variant::Sink;
    let deadline = Instant::now() + plan.window + Duration::from_secs(30);
    if aligned {
        follow_writes(envoy_pid, Instant::now(), true, deadline).await?;
    }
    let tx0 = tx_bytes(&envoy).await?;
    let tx_t0 = Instant::now();
    if aligned {
        follow_writes(envoy_pid, Instant::now(), true, deadline).await?;
    }
    let cpu0 = Cpu::read(envoy_pid, ep_pid)?;
    let w0 = written(envoy_pid)?;
    let flushes = follow_writes(envoy_pid, cpu0.at + plan.window, aligned, deadline).await?;
    let cpu1 = Cpu::read(envoy_pid, ep_pid)?;
    let w1 = written(envoy_pid)?;
    let tx_t1 = Instant::now();
    let tx1 = tx_bytes(&envoy).await?;
    envoy.proc.check_alive("envoy")?;
    ep.proc.check_alive("edgeplane serve")?;

    let stats = count_stats(&envoy, "/stats").await?;
    let used = count_stats(&envoy, "/stats?usedonly").await?;
    let since = |a: Option<Duration>, b: Option<Duration>| Some(b?.saturating_sub(a?));
    Ok(Window {
        secs: (cpu1.at - cpu0.at).as_secs_f64(),
        envoy_cpu: cpu1.envoy.saturating_sub(cpu0.envoy),
        ep_cpu: cpu1.ep.saturating_sub(cpu0.ep),
        envoy_clock: since(cpu0.envoy_clock, cpu1.envoy_clock),
        ep_clock: since(cpu0.ep_clock, cpu1.ep_clock),
        flushes,
        written: w1.saturating_sub(w0),
        tx_bytes: tx1.saturating_sub(tx0),
        tx_secs: (tx_t1 - tx_t0).as_secs_f64(),
        stats,
        used,
    })
}

/// `edgeplane bootstrap`'s YAML as JSON, with the stats sink (`sink`) or
/// without it: no `stats_sinks`, no `stats_flush_interval` (Envoy's default
/// flush interval, 5 s, then applies to no sink).
fn bootstrap_json(yaml: &str, sink: bool) -> Result<String> {
    let mut v: serde_json::Value =
        serde_saphyr::from_str(yaml).context("parse edgeplane bootstrap's output")?;
    let top = v
        .as_object_mut()
        .context("edgeplane bootstrap's output is not a mapping")?;
    ensure!(
        top.contains_key("stats_sinks") && top.contains_key("stats_flush_interval"),
        "edgeplane bootstrap wrote no stats_sinks / stats_flush_interval"
    );
    if !sink {
        top.remove("stats_sinks");
        top.remove("stats_flush_interval");
    }
    serde_json::to_string_pretty(&v).context("bootstrap as JSON")
}

/// Both processes' CPU time at one instant.
struct Cpu {
    at: Instant,
    envoy: Duration,
    ep: Duration,
    envoy_clock: Option<Duration>,
    ep_clock: Option<Duration>,
}

impl Cpu {
    fn read(envoy: u32, ep: u32) -> Result<Cpu> {
        let at = Instant::now();
        let envoy_clock = cpu_clock(envoy);
        let ep_clock = cpu_clock(ep);
        Ok(Cpu {
            at,
            envoy: procs::cpu_time(envoy).context("read Envoy's /proc/<pid>/stat")?,
            ep: procs::cpu_time(ep).context("read edgeplane's /proc/<pid>/stat")?,
            envoy_clock,
            ep_clock,
        })
    }
}

/// The CPU time of process `pid` from its CPU clock
/// (`clock_getcpuclockid`): the total `/proc/<pid>/stat` splits into
/// utime and stime, to the nanosecond rather than the 10 ms tick.
fn cpu_clock(pid: u32) -> Option<Duration> {
    let pid = libc::pid_t::try_from(pid).ok()?;
    let mut clock: libc::clockid_t = 0;
    // SAFETY: `clock` is a valid out-parameter for the call's duration.
    if unsafe { libc::clock_getcpuclockid(pid, &mut clock) } != 0 {
        return None;
    }
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-parameter for the call's duration.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return None;
    }
    Some(Duration::new(
        u64::try_from(ts.tv_sec).ok()?,
        u32::try_from(ts.tv_nsec).ok()?,
    ))
}

/// Bytes process `pid` has passed to write calls (`wchar` of
/// `/proc/<pid>/io`): Envoy's writes to its sockets, read without asking
/// Envoy anything.
fn written(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/io");
    let text = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("wchar:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no wchar in {path}"))
}

/// Watches what Envoy (`pid`) writes until `end`, then, when `aligned`, on
/// until a stats flush has been written (a burst of `FLUSH_BYTES` or more,
/// followed by `SETTLE` of quiet). Returns the flushes completed.
async fn follow_writes(pid: u32, end: Instant, aligned: bool, deadline: Instant) -> Result<usize> {
    let mut base = written(pid)?;
    let mut last = base;
    let mut quiet_since = Instant::now();
    let mut flushes = 0;
    loop {
        let now = Instant::now();
        let w = written(pid)?;
        if w != last {
            last = w;
            quiet_since = now;
        } else if now - quiet_since >= SETTLE && w != base {
            // A burst has ended: a flush, or small writes absorbed.
            let flush = w - base >= FLUSH_BYTES;
            base = w;
            if flush {
                flushes += 1;
                if aligned && now >= end {
                    return Ok(flushes);
                }
            }
        }
        if !aligned && now >= end {
            return Ok(flushes);
        }
        if now >= deadline {
            bail!("Envoy wrote no stats flush (≥ {FLUSH_BYTES} bytes) in time");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits for `/readyz` (the config served).
async fn wait_ready(ep: &mut Edgeplane) -> Result<()> {
    let end = Instant::now() + READY_WITHIN;
    loop {
        ep.proc.check_alive("edgeplane serve")?;
        if http_get(ep.admin_port, "127.0.0.1", "/readyz")
            .await
            .is_some_and(|(s, _)| s == 200)
        {
            return Ok(());
        }
        if Instant::now() >= end {
            bail!(
                "edgeplane not ready within {READY_WITHIN:?}; log tail:\n{}",
                ep.proc.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until Envoy is live with `clusters` active clusters, none warming.
async fn wait_clusters(envoy: &mut Envoy, clusters: usize) -> Result<()> {
    let filter = r"^(cluster_manager\.(active|warming)_clusters|server\.state)$";
    let end = Instant::now() + READY_WITHIN;
    loop {
        envoy.proc.check_alive("envoy")?;
        let s = envoy_stats(envoy.admin_port, filter).await.ok();
        let stat = |name: &str| s.as_ref().and_then(|s| stat_value(s, name));
        if stat("cluster_manager.active_clusters").is_some_and(|n| n >= clusters as u64)
            && stat("cluster_manager.warming_clusters") == Some(0)
            && stat("server.state") == Some(0)
        {
            return Ok(());
        }
        if Instant::now() >= end {
            bail!("Envoy did not have {clusters} active clusters within {READY_WITHIN:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until edgeplane's `/status` lists `node`, reporting stats or not
/// as `sink` says, and `/metrics` counts that many stats streams (1 or 0).
async fn wait_node(ep: &mut Edgeplane, envoy: &mut Envoy, node: &str, sink: bool) -> Result<()> {
    let end = Instant::now() + READY_WITHIN;
    loop {
        ep.proc.check_alive("edgeplane serve")?;
        envoy.proc.check_alive("envoy")?;
        let reported = ep.status().await.ok().and_then(|s| {
            s["nodes"]
                .as_array()?
                .iter()
                .find(|n| n["nodeId"] == node)
                .map(|n| n["statsReported"].as_bool().unwrap_or(false))
        });
        let streams = sink_streams(ep.admin_port).await;
        if reported == Some(sink) && streams == Some(u64::from(sink)) {
            return Ok(());
        }
        if Instant::now() >= end {
            bail!(
                "edgeplane did not show node {node} with stats reported = {sink} within {READY_WITHIN:?} (reported: {reported:?}, stats streams: {streams:?})"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `edgeplane_stats_sink_streams` from edgeplane's `/metrics`.
async fn sink_streams(admin_port: u16) -> Option<u64> {
    let (status, body) = http_get(admin_port, "127.0.0.1", "/metrics").await?;
    if status != 200 {
        return None;
    }
    body.lines()
        .find_map(|l| l.strip_prefix("edgeplane_stats_sink_streams "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
}

/// Envoy's stats whose names match the regex `filter` (`/stats?filter=`),
/// as text lines `name: value`.
async fn envoy_stats(admin_port: u16, filter: &str) -> Result<String> {
    let path = format!("/stats?filter={}", percent_encode(filter));
    let (status, body) = http_get(admin_port, "127.0.0.1", &path)
        .await
        .context("envoy /stats")?;
    ensure!(status == 200, "envoy /stats answered {status}");
    Ok(body)
}

/// The integer value of stat `name` in `/stats` text.
fn stat_value(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
        .and_then(|v| v.trim().parse().ok())
}

/// `TX_BYTES`: bytes Envoy has sent on its connections to edgeplane.
async fn tx_bytes(envoy: &Envoy) -> Result<u64> {
    let filter = format!("^{}$", TX_BYTES.replace('.', r"\."));
    let text = envoy_stats(envoy.admin_port, &filter).await?;
    stat_value(&text, TX_BYTES).with_context(|| format!("Envoy has no {TX_BYTES}"))
}

/// The number of stats in Envoy's `path` (`/stats`, one a line).
async fn count_stats(envoy: &Envoy, path: &str) -> Result<usize> {
    let (status, body) = http_get(envoy.admin_port, "127.0.0.1", path)
        .await
        .with_context(|| format!("envoy {path}"))?;
    ensure!(status == 200, "envoy {path} answered {status}");
    Ok(body.lines().filter(|l| l.contains(": ")).count())
}

/// `s` for a URL query: everything but unreserved characters %-encoded.
fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `d` as % of one core over `secs`.
fn pct(d: Duration, secs: f64) -> f64 {
    if secs > 0.0 {
        d.as_secs_f64() / secs * 100.0
    } else {
        0.0
    }
}

/// Bytes a second, in the unit that suits.
fn rate(bytes_per_s: f64) -> String {
    if bytes_per_s >= 100_000.0 {
        format!("{:.2} MB/s", bytes_per_s / 1e6)
    } else if bytes_per_s >= 1_000.0 {
        format!("{:.1} kB/s", bytes_per_s / 1e3)
    } else {
        format!("{bytes_per_s:.0} B/s")
    }
}

/// `rate` with its sign.
fn signed_rate(bytes_per_s: f64) -> String {
    if bytes_per_s < 0.0 {
        format!("−{}", rate(-bytes_per_s))
    } else {
        format!("+{}", rate(bytes_per_s))
    }
}

/// The windows of one variant, summed (stats: the largest count).
struct Totals(Window);

impl std::ops::Deref for Totals {
    type Target = Window;

    fn deref(&self) -> &Window {
        &self.0
    }
}

impl Totals {
    fn of(ws: &[Window]) -> Totals {
        let sum_opt = |f: fn(&Window) -> Option<Duration>| -> Option<Duration> {
            ws.iter().map(f).sum::<Option<Duration>>()
        };
        Totals(Window {
            secs: ws.iter().map(|w| w.secs).sum(),
            envoy_cpu: ws.iter().map(|w| w.envoy_cpu).sum(),
            ep_cpu: ws.iter().map(|w| w.ep_cpu).sum(),
            envoy_clock: sum_opt(|w| w.envoy_clock),
            ep_clock: sum_opt(|w| w.ep_clock),
            flushes: ws.iter().map(|w| w.flushes).sum(),
            written: ws.iter().map(|w| w.written).sum(),
            tx_bytes: ws.iter().map(|w| w.tx_bytes).sum(),
            tx_secs: ws.iter().map(|w| w.tx_secs).sum(),
            stats: ws.iter().map(|w| w.stats).max().unwrap_or(0),
            used: ws.iter().map(|w| w.used).max().unwrap_or(0),
        })
    }

    fn envoy_pct(&self) -> f64 {
        pct(self.envoy_cpu, self.secs)
    }

    fn ep_pct(&self) -> f64 {
        pct(self.ep_cpu, self.secs)
    }

    fn tx_rate(&self) -> f64 {
        if self.tx_secs > 0.0 {
            self.tx_bytes as f64 / self.tx_secs
        } else {
            0.0
        }
    }
}

fn render(
    plan: &Plan,
    files: &[(String, String)],
    sink: &[Window],
    baseline: &[Window],
    load: (Option<f64>, Option<f64>),
) -> String {
    let s = Totals::of(sink);
    let b = Totals::of(baseline);
    let vss = plan.upstreams.div_ceil(r#gen::ROUTES_PER_VS);
    let fmt_load = |l: Option<f64>| l.map_or_else(|| "unknown".to_string(), |l| format!("{l:.2}"));
    let mut body = format!(
        "**Method.** `edgeplane serve` (release build, RUST_LOG=warn) on generated manifests, all on loopback: {} upstreams (static hosts: the in-process echo backend) and {} routes in {}, one route to each upstream ({} files). A real Envoy (`--concurrency 1`, `-l warning`) runs from the bootstrap `edgeplane bootstrap` prints, whose `stats_sinks` entry has Envoy stream its stats every second (`stats_flush_interval: 1s`) to edgeplane's gRPC MetricsService on the xDS port, over the same `xds_cluster` as ADS. The baseline is a second Envoy from the same bootstrap with `stats_sinks` and `stats_flush_interval` removed (it then flushes every 5 s, Envoy's default, to no sink); both bootstraps are written as JSON from one parse of its output. The two run one at a time against the same edgeplane process, {}, alternating which goes first. Each is measured once served and warm (a route answers through it with the backend's 200, all {} clusters are active and none warming, edgeplane's `/status` lists its node with `statsReported` true or false as expected and its `/metrics` counts 1 or 0 stats streams), {:.0} s later, over a {:.0} s window. With the sink the window starts and ends just after a stats flush has been written (`wchar` of Envoy's `/proc/<pid>/io` read every {} ms: a burst of at least {} bytes, then {} ms without writes), so it holds whole flushes. CPU: utime + stime from `/proc/<pid>/stat` (10 ms ticks) over the window, as % of one core; the processes' CPU clocks (`clock_getcpuclockid`, to the nanosecond) as a cross-check. Bytes: the growth of Envoy's `{TX_BYTES}` between two reads of its admin just outside the window (with the sink, each just after a flush), over the time between them: every byte Envoy sent on its connection to edgeplane (gRPC and HTTP/2 framing included, TCP/IP headers not). That connection carries ADS too, but nothing is pushed during the window, so ADS adds only its keep-alive pings, the baseline's figure; the difference is the sink stream. Envoy's admin is asked nothing inside the window. Load average (1 min): {} before, {} after; the machine is shared, so the figures are only as quiet as it was.\n\n",
        thousands(plan.upstreams),
        thousands(plan.upstreams),
        if vss == 1 {
            "one VirtualService".to_string()
        } else {
            format!("{} VirtualServices", thousands(vss))
        },
        files.len(),
        if plan.rounds == 1 {
            "one round of both".to_string()
        } else {
            format!("{} rounds of both", plan.rounds)
        },
        thousands(plan.upstreams + 1),
        plan.warmup.as_secs_f64(),
        plan.window.as_secs_f64(),
        POLL.as_millis(),
        thousands(FLUSH_BYTES as usize),
        SETTLE.as_millis(),
        fmt_load(load.0),
        fmt_load(load.1),
    );
    body.push_str(
        "| figure | with the sink | without (baseline) | difference |\n|---|---|---|---|\n",
    );
    body.push_str(&format!(
        "| Envoy CPU, % of a core | {:.2} % | {:.2} % | {:+.2} % |\n",
        s.envoy_pct(),
        b.envoy_pct(),
        s.envoy_pct() - b.envoy_pct()
    ));
    body.push_str(&format!(
        "| edgeplane CPU, % of a core | {:.3} % | {:.3} % | {:+.3} % |\n",
        s.ep_pct(),
        b.ep_pct(),
        s.ep_pct() - b.ep_pct()
    ));
    let clock_row =
        |what: &str, with: Option<Duration>, without: Option<Duration>| match (with, without) {
            (Some(w), Some(o)) => {
                let (w, o) = (pct(w, s.secs), pct(o, b.secs));
                format!("| {what} | {w:.3} % | {o:.3} % | {:+.3} % |\n", w - o)
            }
            _ => format!("| {what} | not readable | not readable | – |\n"),
        };
    body.push_str(&clock_row(
        "Envoy CPU, process CPU clock (cross-check)",
        s.envoy_clock,
        b.envoy_clock,
    ));
    body.push_str(&clock_row(
        "edgeplane CPU, process CPU clock (cross-check)",
        s.ep_clock,
        b.ep_clock,
    ));
    body.push_str(&format!(
        "| Envoy → edgeplane (`xds_cluster` bytes sent) | {} | {} | {} (the sink stream) |\n",
        rate(s.tx_rate()),
        rate(b.tx_rate()),
        signed_rate(s.tx_rate() - b.tx_rate())
    ));
    let per_flush = if s.flushes > 0 {
        format!("{:.0} kB", s.written as f64 / s.flushes as f64 / 1e3)
    } else {
        "–".into()
    };
    body.push_str(&format!(
        "| stats flushes written in the windows (bytes per flush) | {} in {:.1} s ({per_flush}) | {} in {:.1} s | – |\n",
        s.flushes, s.secs, b.flushes, b.secs
    ));
    body.push_str(&format!(
        "| Envoy's stats (`/stats` lines) | {} | {} | – |\n",
        thousands(s.stats),
        thousands(b.stats)
    ));
    body.push_str(&format!(
        "| of them used (`/stats?usedonly`; the sink sends these) | {} | {} | – |\n",
        thousands(s.used),
        thousands(b.used)
    ));
    let rounds = |ws: &[Window], f: fn(&Window) -> (Duration, f64)| {
        ws.iter()
            .map(|w| {
                let (d, secs) = f(w);
                format!("{:.2} %", pct(d, secs))
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    if plan.rounds > 1 {
        body.push_str(&format!(
            "| Envoy CPU per round | {} | {} | – |\n",
            rounds(sink, |w| (w.envoy_cpu, w.secs)),
            rounds(baseline, |w| (w.envoy_cpu, w.secs))
        ));
        body.push_str(&format!(
            "| edgeplane CPU per round | {} | {} | – |\n",
            rounds(sink, |w| (w.ep_cpu, w.secs)),
            rounds(baseline, |w| (w.ep_cpu, w.secs))
        ));
    }
    body.push_str(&format!(
        "\nOne flush every {:.0} s carries every used stat (counters, gauges and histogram summaries; `histogram_emit_mode: SUMMARY`); edgeplane decodes each flush into slim messages (every stat's name and its gauge or counter value; labels, summaries and help texts are skipped) and keeps only the listeners' active connections and the HTTP connection managers' upgrade stats (`src/serve/stats_sink.rs`). A 10 ms tick over a {:.0} s window is {:.2} % of a core: the CPU clock rows give the same figures without that rounding.\n",
        FLUSH_INTERVAL.as_secs_f64(),
        s.secs.max(b.secs),
        1.0 / s.secs.max(b.secs).max(1.0)
    ));
    body
}
