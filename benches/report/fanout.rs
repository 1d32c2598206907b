//! Section `fanout`: 1,000 concurrent ADS streams (SotW and delta) receiving
//! one route edit: time until every client has ACKed the new
//! RouteConfiguration, and resident memory per stream; side by side with a
//! peer control plane serving the same resources to the same clients.
//!
//! Per (server, protocol) a fresh server process serves a generated config
//! (1,000 routes / 100 upstreams); the in-process clients (`adsclient`)
//! connect, one TCP connection each, and ACK the initial config; the
//! server's VmRSS before and after gives the cost per stream. Then one route
//! is added: edgeplane gets the edited VirtualService file (temp file +
//! rename in its watched directory), the peer a `load FILE` line with the
//! re-encoded resources, and the clock runs until the last client has
//! handed its ACK of the new RouteConfiguration to its stream.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::time::Instant;

use crate::adsclient::{ClientLog, Expect, Fleet, Mode};
use crate::r#gen::{self, Shape};
use crate::procs::{self, mib, ms, percentile};
use crate::servers::{self, Edgeplane, Peer, Server};
use crate::stack::write_all;
use crate::{Ctx, Section};

const ROUTES: usize = 1_000;
const UPSTREAMS: usize = 100;
/// Targets: every stream ACKed within this of the save; memory per stream.
const TARGET_TIME: Duration = Duration::from_secs(1);
const TARGET_KIB_PER_STREAM: f64 = 20.0;
/// Bounds on the waits.
const READY_WITHIN: Duration = Duration::from_secs(180);
const EDIT_WITHIN: Duration = Duration::from_secs(60);
/// Responses arriving this long after the last ACK still count as part of
/// the edit (a server that sends more than the one RouteConfiguration).
const TRAILING: Duration = Duration::from_millis(300);
/// Streams per HTTP/2 connection in the run that separates per-connection
/// from per-stream memory.
const SHARE: usize = 10;

/// What one (server, protocol) run measured.
struct Case {
    n: usize,
    connections: usize,
    /// Server VmRSS (KiB) before the clients connected, after they ACKed
    /// the initial config, and after the edit; VmHWM at the end.
    rss_idle: u64,
    rss_streams: u64,
    rss_after_edit: u64,
    hwm: u64,
    /// From the first connect until every client had ACKed everything.
    initial_sync: Duration,
    edit: Edit,
}

struct Edit {
    /// Clients that ACKed the new RouteConfiguration before the deadline.
    acked: usize,
    /// From the save (edgeplane) or the `load` line (peer) …
    to_first_received: Option<Duration>,
    to_last_ack: Option<Duration>,
    /// … and per client, until its ACK.
    per_client: Vec<Duration>,
    /// The peer's `loaded` line.
    to_loaded_line: Option<Duration>,
    /// edgeplane's own account of the reload the edit caused (`/status`
    /// `lastLoad`): its duration, and files read / resources encoded.
    reload: Option<String>,
    /// Per client, what arrived for the edit: responses, resources,
    /// removals, bytes, and the types seen.
    responses: Spread,
    resources: Spread,
    removed: Spread,
    bytes: Spread,
    types: Vec<String>,
}

impl Edit {
    fn fanout_alone(&self) -> Option<Duration> {
        Some(self.to_last_ack?.saturating_sub(self.to_first_received?))
    }
}

/// Min and max over the clients.
#[derive(Clone, Copy, Default)]
struct Spread(usize, usize);

impl Spread {
    fn of(v: impl Iterator<Item = usize>) -> Spread {
        let mut s: Option<Spread> = None;
        for x in v {
            s = Some(match s {
                None => Spread(x, x),
                Some(Spread(a, b)) => Spread(a.min(x), b.max(x)),
            });
        }
        s.unwrap_or_default()
    }

    fn show(self, unit: &str) -> String {
        let f = |x: usize| format!("{}{unit}", thousands(x));
        if self.0 == self.1 {
            f(self.0)
        } else {
            format!("{}–{}", f(self.0), f(self.1))
        }
    }
}

enum Outcome {
    Measured(Box<Case>),
    Unsupported(String),
    Failed(String),
    NotRun,
}

/// Everything a case needs.
struct Setup {
    n: usize,
    connections: usize,
    files: Vec<(String, String)>,
    edit: (String, String),
    initial_pb: std::path::PathBuf,
    edited_pb: std::path::PathBuf,
    expect: Arc<Expect>,
}

pub async fn run(ctx: &Ctx) -> Result<Section> {
    let n: usize = if ctx.quick { 100 } else { 1_000 };
    let shape = Shape {
        routes: ROUTES,
        upstreams: UPSTREAMS,
        port: 18080,
        backend_port: 18081,
        per_vs: r#gen::ROUTES_PER_VS,
    };
    let base = ctx.work.join("fanout");
    let files = r#gen::manifests(shape);
    let (edit_file, edit_text, _probe) = r#gen::probe_edit(shape, 1);
    let initial = servers::write_and_translate(&base.join("expect-initial"), &files)?;
    let edited = servers::write_and_translate(
        &base.join("expect-edited"),
        &r#gen::manifests_edited(shape, Some(1)),
    )?;
    let expect = Arc::new(Expect::new(&initial, Some(&edited))?);
    let initial_pb = base.join("initial.pb");
    let edited_pb = base.join("edited.pb");
    servers::write_resources_file(&initial_pb, &initial)?;
    servers::write_resources_file(&edited_pb, &edited)?;
    let (resources, bytes) = servers::resource_totals(&initial);
    let rc_bytes = servers::route_config_bytes(&initial);
    let edited_rc_bytes = servers::route_config_bytes(&edited);

    // One connection per client needs about n descriptors in this process
    // and n in the server (which inherits the limit).
    let need = n as u64 + 512;
    let soft = servers::ensure_nofile(need);
    let connections = if soft >= need {
        n
    } else {
        let per = n
            .div_ceil(soft.saturating_sub(512).max(1) as usize)
            .min(100);
        n.div_ceil(per)
    };

    let setup = Setup {
        n,
        connections,
        files,
        edit: (edit_file, edit_text),
        initial_pb,
        edited_pb,
        expect,
    };
    let load = procs::loadavg();
    let mut rows = Vec::new();
    for mode in [Mode::Sotw, Mode::Delta] {
        eprintln!("   fanout: edgeplane {} ({n} streams)", mode.label());
        let ep = classify(edgeplane_case(ctx, &setup, &base, mode).await);
        let peer = match &ctx.peer_bin {
            Some(bin) => {
                eprintln!("   fanout: peer {} ({n} streams)", mode.label());
                classify(peer_case(bin, &setup, &base, mode).await)
            }
            None => Outcome::NotRun,
        };
        rows.push((mode, ep, peer));
    }

    let mut body = format!(
        "**Method.** {n} ADS clients in the benchmark process (tonic, playing Envoy: node `bench-<i>` with `metadata.role: gloo-system~gateway-proxy`, node on the first request only; wildcard CDS and LDS, then RDS for the route config the listener's HTTP connection manager names; every response ACKed at once, SotW with its version and nonce, delta with its nonce; HTTP/2 windows of 256 MiB, Envoy's default) on {} TCP connection(s){}, against a server in its own process on loopback. Config: generated, {} routes / {} upstreams ({} resources, {} bytes encoded; the one RouteConfiguration is {} bytes, {} after the edit). Each client checks every resource it receives byte for byte against edgeplane's own translation, which is also what the peer serves (a file of the same encoded `Any`s), so both serve identical bytes. A fresh server process for each server and protocol; its VmRSS is read after its config is loaded and before any client connects, then after every client has ACKed the whole initial config: the difference over {n} is the memory per extra stream. The edit adds one route to one VirtualService: edgeplane gets the edited file written atomically (temp file + rename) into its watched directory, and its clock starts at the write, so it includes the file watcher's debounce (`{:?}`, `src/1-source/watch.rs`) and the reload (read, parse, validate, translate, encode); the peer gets `load FILE` on its stdin (resources already encoded) and its clock starts at that line. The clock stops when the last client has handed its ACK of the new RouteConfiguration to its stream; \"fan-out alone\" runs from the first client receiving it to that last ACK. Clients and server share the machine's cores{}.\n\n",
        connections,
        if connections == n {
            " (one per client, like real Envoys)".to_string()
        } else {
            format!(
                " (the open-files limit, {soft}, is too low for one each: several streams share each connection's HTTP/2)"
            )
        },
        thousands(ROUTES),
        thousands(UPSTREAMS),
        thousands(resources),
        thousands(bytes),
        thousands(rc_bytes),
        thousands(edited_rc_bytes),
        edgeplane::source::watch::Debounce::default(),
        load.map(|l| format!(" (1-minute load average when the section started: {l:.2})"))
            .unwrap_or_default(),
    );
    // Per-connection vs per-stream memory: the same SotW clients, with
    // SHARE streams on each HTTP/2 connection.
    let split = if matches!(rows.first(), Some((_, Outcome::Measured(_), _))) {
        eprintln!("   fanout: edgeplane SotW, {SHARE} streams per connection");
        Some(
            shared_connections_case(ctx, &setup, &base)
                .await
                .map_err(|e| format!("{e:#}")),
        )
    } else {
        None
    };
    body.push_str(&table(&rows, n));
    if let Some(sp) = &split {
        body.push_str(&match sp {
            Ok(kib) => format!(
                "With {SHARE} streams sharing each TCP connection ({} connections, otherwise the same SotW run), edgeplane's RSS per extra stream is {kib:.1} KiB.\n\n",
                n.div_ceil(SHARE)
            ),
            Err(e) => format!(
                "The run with {SHARE} streams per TCP connection failed: {}\n\n",
                one_line(e)
            ),
        });
    }
    body.push_str(&targets(&rows, n, split.and_then(Result::ok)));
    Ok(Section {
        title: format!("Fan-out: one route edit to {} ADS streams", thousands(n)),
        body,
    })
}

fn classify(r: Result<Outcome>) -> Outcome {
    match r {
        Ok(o) => o,
        Err(e) => Outcome::Failed(format!("{e:#}")),
    }
}

/// Connects the fleet and waits for the initial config; an UNIMPLEMENTED
/// answer (or a delta stream failing before any response) is "not
/// supported".
async fn connect_fleet(
    mode: Mode,
    port: u16,
    s: &Setup,
) -> Result<std::result::Result<(Fleet, Duration), Outcome>> {
    let started = Instant::now();
    let mut fleet = Fleet::start(mode, port, s.n, s.connections, s.expect.clone()).await?;
    if let Err(e) = fleet.wait_ready(READY_WITHIN).await {
        if fleet.unimplemented() || (mode == Mode::Delta && fleet.responses() == 0) {
            let msg = fleet.first_error().unwrap_or_else(|| format!("{e:#}"));
            return Ok(Err(Outcome::Unsupported(msg)));
        }
        return Err(e);
    }
    Ok(Ok((fleet, started.elapsed())))
}

/// What a case does to its server besides what `Server` offers: the edit,
/// and the server's own account of it.
trait Edits: Server {
    /// Makes the edit (the clock started at `t0`, just before); returns
    /// once every client ACKed it or `EDIT_WITHIN` passed: how many did,
    /// and when (after `t0`) the peer printed its `loaded` line.
    async fn edit(
        &mut self,
        s: &Setup,
        fleet: &mut Fleet,
        t0: Instant,
    ) -> Result<(usize, Option<Duration>)>;

    /// edgeplane's `lastLoad` after the edit, described.
    async fn reload(&self) -> Option<String>;
}

impl Edits for Edgeplane {
    async fn edit(
        &mut self,
        s: &Setup,
        fleet: &mut Fleet,
        _t0: Instant,
    ) -> Result<(usize, Option<Duration>)> {
        servers::write_atomic(&self.dir, &s.edit.0, s.edit.1.as_bytes())?;
        Ok((fleet.wait_edited(EDIT_WITHIN).await, None))
    }

    async fn reload(&self) -> Option<String> {
        self.last_load().await.map(|l| describe_load(&l))
    }
}

impl Edits for Peer {
    async fn edit(
        &mut self,
        s: &Setup,
        fleet: &mut Fleet,
        t0: Instant,
    ) -> Result<(usize, Option<Duration>)> {
        self.send_load(&s.edited_pb).await?;
        let (loaded, acked) = tokio::join!(
            async {
                let r = self.wait_loaded().await;
                (r, Instant::now())
            },
            fleet.wait_edited(EDIT_WITHIN)
        );
        let (loaded, loaded_at) = loaded;
        loaded.context("the peer's `loaded` line")?;
        Ok((acked, Some(loaded_at - t0)))
    }

    async fn reload(&self) -> Option<String> {
        None
    }
}

/// One case on a started server, the same steps for both: its memory idle,
/// the fleet's initial sync, its memory with the streams, the edit, its
/// memory after.
async fn measure(server: &mut impl Edits, s: &Setup, mode: Mode) -> Result<Outcome> {
    let rss_idle = server.rss_kib()?;
    let (mut fleet, initial_sync) = match connect_fleet(mode, server.xds_port(), s).await? {
        Ok(f) => f,
        Err(o) => return Ok(o),
    };
    server.check_alive()?;
    let rss_streams = server.rss_kib()?;
    let t0 = Instant::now();
    let (acked, loaded) = server.edit(s, &mut fleet, t0).await?;
    wait_quiet(&fleet).await;
    server.check_alive()?;
    let rss_after_edit = server.rss_kib()?;
    let hwm = server.hwm_kib().unwrap_or(0);
    let mut edit = edit_of(&fleet.logs(), acked, t0, loaded);
    edit.reload = server.reload().await;
    drop(fleet);
    Ok(Outcome::Measured(Box::new(Case {
        n: s.n,
        connections: s.connections,
        rss_idle,
        rss_streams,
        rss_after_edit,
        hwm,
        initial_sync,
        edit,
    })))
}

async fn edgeplane_case(ctx: &Ctx, s: &Setup, base: &Path, mode: Mode) -> Result<Outcome> {
    let dir = base.join(format!("edgeplane-{}", mode.label()));
    write_all(&dir, &s.files)?;
    let logf = base.join(format!("edgeplane-{}.log", mode.label()));
    let mut ep = Edgeplane::start(&ctx.edgeplane_bin, &dir, logf).await?;
    let (gw_name, gw_text) = &s.files[0];
    ep.wait_watching(gw_name, gw_text).await?;
    measure(&mut ep, s, mode).await
}

async fn peer_case(bin: &Path, s: &Setup, base: &Path, mode: Mode) -> Result<Outcome> {
    let logf = base.join(format!("peer-{}.log", mode.label()));
    let mut peer = Peer::start(bin, &s.initial_pb, logf).await?;
    measure(&mut peer, s, mode).await
}

/// edgeplane, SotW, the same clients with `SHARE` streams per connection:
/// RSS per extra stream (KiB). No edit.
async fn shared_connections_case(ctx: &Ctx, s: &Setup, base: &Path) -> Result<f64> {
    let dir = base.join("edgeplane-shared");
    write_all(&dir, &s.files)?;
    let mut ep =
        Edgeplane::start(&ctx.edgeplane_bin, &dir, base.join("edgeplane-shared.log")).await?;
    let idle = ep.rss_kib()?;
    let mut fleet = Fleet::start(
        Mode::Sotw,
        ep.xds_port,
        s.n,
        s.n.div_ceil(SHARE),
        s.expect.clone(),
    )
    .await?;
    fleet.wait_ready(READY_WITHIN).await?;
    ep.check_alive()?;
    let with = ep.rss_kib()?;
    Ok(procs::kib_per_stream(idle, with, s.n))
}

/// Lets responses that trail the last ACK arrive: returns once no client
/// has received anything for `TRAILING`.
async fn wait_quiet(fleet: &Fleet) {
    let end = Instant::now() + Duration::from_secs(10);
    let mut last = fleet.responses();
    loop {
        tokio::time::sleep(TRAILING).await;
        let now = fleet.responses();
        if now == last || Instant::now() > end {
            return;
        }
        last = now;
    }
}

fn edit_of(logs: &[ClientLog], acked: usize, t0: Instant, loaded: Option<Duration>) -> Edit {
    let received: Vec<Duration> = logs
        .iter()
        .filter_map(|l| l.edit_received.map(|t| t - t0))
        .collect();
    let per_client: Vec<Duration> = logs
        .iter()
        .filter_map(|l| l.edit_acked.map(|t| t - t0))
        .collect();
    let after = |l: &ClientLog| -> Vec<crate::adsclient::Received> {
        l.received.iter().filter(|r| r.at >= t0).cloned().collect()
    };
    let per: Vec<Vec<crate::adsclient::Received>> = logs.iter().map(after).collect();
    let mut types: Vec<String> = per
        .iter()
        .flatten()
        .map(|r| r.type_.short().to_string())
        .collect();
    types.sort();
    types.dedup();
    Edit {
        acked,
        to_first_received: received.iter().min().copied(),
        to_last_ack: if acked == logs.len() {
            per_client.iter().max().copied()
        } else {
            None
        },
        per_client,
        to_loaded_line: loaded,
        reload: None,
        responses: Spread::of(per.iter().map(Vec::len)),
        resources: Spread::of(per.iter().map(|v| v.iter().map(|r| r.resources).sum())),
        removed: Spread::of(per.iter().map(|v| v.iter().map(|r| r.removed).sum())),
        bytes: Spread::of(per.iter().map(|v| v.iter().map(|r| r.bytes).sum())),
        types,
    }
}

/// `lastLoad` as text: `12.3 ms (1 file read, 1 RDS encoded)`.
fn describe_load(l: &serde_json::Value) -> String {
    let mut s = match l["durationMs"].as_f64() {
        Some(d) => format!("{d:.2} ms"),
        None => "?".into(),
    };
    let mut parts = Vec::new();
    if let Some(n) = l["filesRead"].as_u64() {
        parts.push(format!("{n} file(s) read"));
    }
    if let Some(m) = l["resourcesEncoded"].as_object() {
        let enc: Vec<String> = m
            .iter()
            .filter_map(|(t, n)| n.as_u64().filter(|n| *n > 0).map(|n| format!("{n} {t}")))
            .collect();
        parts.push(if enc.is_empty() {
            "nothing encoded".into()
        } else {
            format!("{} encoded", enc.join(", "))
        });
    }
    if !parts.is_empty() {
        s.push_str(&format!(" ({})", parts.join(", ")));
    }
    s
}

// === rendering ===

pub fn thousands(x: usize) -> String {
    let s = x.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn per_stream_kib(c: &Case) -> f64 {
    procs::kib_per_stream(c.rss_idle, c.rss_streams, c.n)
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "–".into(),
    }
}

fn cell(o: &Outcome, f: &dyn Fn(&Case) -> Option<String>) -> String {
    match o {
        Outcome::Measured(c) => f(c).unwrap_or_else(|| "–".into()),
        Outcome::Unsupported(_) => "not supported".into(),
        Outcome::Failed(_) => "failed".into(),
        Outcome::NotRun => "not run".into(),
    }
}

fn num(o: &Outcome, f: &dyn Fn(&Case) -> Option<f64>) -> Option<f64> {
    match o {
        Outcome::Measured(c) => f(c),
        _ => None,
    }
}

fn secs(d: Option<Duration>) -> Option<f64> {
    d.map(|d| d.as_secs_f64())
}

fn table(rows: &[(Mode, Outcome, Outcome)], n: usize) -> String {
    let mut t = String::from(
        "| figure | edgeplane | peer (baseline) | ratio edgeplane / peer |\n|---|---|---|---|\n",
    );
    type Text = dyn Fn(&Case) -> Option<String>;
    type Num = dyn Fn(&Case) -> Option<f64>;
    let lines: Vec<(String, Box<Text>, Option<Box<Num>>)> = vec![
        (
            format!(
                "edit → all {} clients ACKed (edgeplane: from the file save; peer: from `load`)",
                thousands(n)
            ),
            Box::new(|c: &Case| {
                Some(match c.edit.to_last_ack {
                    Some(d) => ms(d),
                    None => format!("{} of {} within {:?}", c.edit.acked, c.n, EDIT_WITHIN),
                })
            }),
            Some(Box::new(|c: &Case| secs(c.edit.to_last_ack))),
        ),
        (
            "edit → first client has the new RouteConfiguration".into(),
            Box::new(|c: &Case| c.edit.to_first_received.map(ms)),
            Some(Box::new(|c: &Case| secs(c.edit.to_first_received))),
        ),
        (
            "edgeplane's reload for the edit (`/status` `lastLoad`)".into(),
            Box::new(|c: &Case| c.edit.reload.clone()),
            None,
        ),
        (
            "fan-out alone: first client has it → last ACK".into(),
            Box::new(|c: &Case| c.edit.fanout_alone().map(ms)),
            Some(Box::new(|c: &Case| secs(c.edit.fanout_alone()))),
        ),
        (
            "per-client ACK after the edit, p50 / p99".into(),
            Box::new(|c: &Case| {
                (!c.edit.per_client.is_empty()).then(|| {
                    format!(
                        "{} / {}",
                        ms(percentile(&c.edit.per_client, 50.0)),
                        ms(percentile(&c.edit.per_client, 99.0))
                    )
                })
            }),
            None,
        ),
        (
            "peer's `loaded` line after `load`".into(),
            Box::new(|c: &Case| c.edit.to_loaded_line.map(ms)),
            None,
        ),
        (
            "per client for the edit: responses / resources (removals) / bytes [types]; ratio of bytes".into(),
            Box::new(|c: &Case| {
                let e = &c.edit;
                Some(format!(
                    "{} / {} ({}) / {} [{}]",
                    e.responses.show(""),
                    e.resources.show(""),
                    e.removed.show(""),
                    e.bytes.show(" B"),
                    e.types.join(", ")
                ))
            }),
            Some(Box::new(|c: &Case| Some(c.edit.bytes.1 as f64))),
        ),
        (
            "server RSS per extra stream".into(),
            Box::new(|c: &Case| Some(format!("{:.1} KiB", per_stream_kib(c)))),
            Some(Box::new(|c: &Case| Some(per_stream_kib(c)))),
        ),
        (
            format!(
                "server VmRSS: idle → {} streams → after the edit (VmHWM)",
                thousands(n)
            ),
            Box::new(|c: &Case| {
                Some(format!(
                    "{} → {} → {} ({})",
                    mib(c.rss_idle),
                    mib(c.rss_streams),
                    mib(c.rss_after_edit),
                    mib(c.hwm)
                ))
            }),
            Some(Box::new(|c: &Case| Some(c.rss_streams as f64))),
        ),
        (
            format!(
                "initial sync: first connect → all {} ACKed everything",
                thousands(n)
            ),
            Box::new(|c: &Case| {
                Some(format!(
                    "{} ({} connections)",
                    ms(c.initial_sync),
                    c.connections
                ))
            }),
            Some(Box::new(|c: &Case| Some(c.initial_sync.as_secs_f64()))),
        ),
    ];
    for (mode, ep, peer) in rows {
        for (label, text, value) in &lines {
            let r = match value {
                Some(v) => ratio(num(ep, v.as_ref()), num(peer, v.as_ref())),
                None => "–".into(),
            };
            t.push_str(&format!(
                "| {}: {} | {} | {} | {} |\n",
                mode.label(),
                label,
                cell(ep, text.as_ref()),
                cell(peer, text.as_ref()),
                r
            ));
        }
    }
    for (mode, ep, peer) in rows {
        for (who, o) in [("edgeplane", ep), ("peer", peer)] {
            match o {
                Outcome::Unsupported(m) => t.push_str(&format!(
                    "\n{who}, {}: not supported: {}\n",
                    mode.label(),
                    one_line(m)
                )),
                Outcome::Failed(m) => t.push_str(&format!(
                    "\n{who}, {}: **failed**: {}\n",
                    mode.label(),
                    one_line(m)
                )),
                _ => {}
            }
        }
    }
    t.push('\n');
    t
}

/// Why a stream costs what it costs, from the split run: with `SHARE`
/// streams per connection a stream pays a tenth of the connection, so
/// `p1 = c + s` and `p10 = c / SHARE + s`.
fn memory_why(mode: Mode, kib: f64, shared_kib: Option<f64>) -> String {
    let mut w = String::from("Why: ");
    match shared_kib {
        Some(p10) if mode == Mode::Sotw && p10 < kib => {
            let k = SHARE as f64;
            let conn = (kib - p10) * k / (k - 1.0);
            let stream = (kib - conn).max(0.0);
            w.push_str(&format!(
                "the run with {SHARE} streams per connection puts about {conn:.1} KiB on each TCP connection and {stream:.1} KiB on each stream. The connection's share is the HTTP/2 transport (hyper/h2 keep a write buffer, a read buffer and HPACK state per connection, tonic a decode buffer per stream), paid once per Envoy since each Envoy has its own connection; "
            ));
            if stream > TARGET_KIB_PER_STREAM {
                w.push_str("edgeplane's own per-stream state (the stream task, its request and response channels, the ACK registry's entry) is over the target even without it.");
            } else {
                w.push_str(&format!(
                    "edgeplane's own per-stream state (the stream task, its request and response channels, the ACK registry's entry) fits the target, so the miss is the transport's: with one connection per Envoy, ≤ {TARGET_KIB_PER_STREAM:.0} KiB needs smaller HTTP/2 buffers than hyper/h2 allocate."
                ));
            }
        }
        _ if mode == Mode::Delta => w.push_str(
            "as SotW (the transport's buffers per connection, the stream's task and channels), plus what delta keeps per stream: the name and version of every resource the client holds, per type.",
        ),
        _ => w.push_str("the split run (streams sharing connections) did not complete, so the share of the transport is not known."),
    }
    w
}

fn one_line(s: &str) -> String {
    let s: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.len() > 400 {
        let mut end = 400;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    } else {
        s
    }
}

fn targets(rows: &[(Mode, Outcome, Outcome)], n: usize, shared_kib: Option<f64>) -> String {
    let mut s = String::from("**Targets.**\n\n");
    for (mode, ep, peer) in rows {
        let m = mode.label();
        let Outcome::Measured(c) = ep else {
            s.push_str(&format!(
                "- {m}: not measured on edgeplane ({}), so its targets are not met.\n",
                match ep {
                    Outcome::Unsupported(_) => "not supported",
                    Outcome::Failed(_) => "failed",
                    _ => "not run",
                }
            ));
            continue;
        };
        let e = &c.edit;
        match e.to_last_ack {
            Some(d) if d <= TARGET_TIME => s.push_str(&format!(
                "- {m}: all {} streams ACKed within 1 s of the save: **met** ({}, {} to spare; of it, save → first client {} and fan-out alone {}).\n",
                thousands(n),
                ms(d),
                ms(TARGET_TIME - d),
                e.to_first_received.map(ms).unwrap_or_default(),
                e.fanout_alone().map(ms).unwrap_or_default(),
            )),
            Some(d) => s.push_str(&format!(
                "- {m}: all {} streams ACKed within 1 s of the save: **missed** by {} ({}; save → first client {}, fan-out alone {}).\n",
                thousands(n),
                ms(d - TARGET_TIME),
                ms(d),
                e.to_first_received.map(ms).unwrap_or_default(),
                e.fanout_alone().map(ms).unwrap_or_default(),
            )),
            None => s.push_str(&format!(
                "- {m}: all {} streams ACKed within 1 s of the save: **missed**: only {} had ACKed after {:?}.\n",
                thousands(n),
                e.acked,
                EDIT_WITHIN
            )),
        }
        let kib = per_stream_kib(c);
        if kib <= TARGET_KIB_PER_STREAM {
            s.push_str(&format!(
                "- {m}: ≤ 20 KiB resident per extra stream: **met** ({kib:.1} KiB).\n"
            ));
        } else {
            s.push_str(&format!(
                "- {m}: ≤ 20 KiB resident per extra stream: **missed** by {:.1} KiB ({kib:.1} KiB, {:.0} % over). {}\n",
                kib - TARGET_KIB_PER_STREAM,
                (kib / TARGET_KIB_PER_STREAM - 1.0) * 100.0,
                memory_why(*mode, kib, shared_kib)
            ));
        }
        match peer {
            Outcome::Measured(p) => {
                let verdict = |a: f64, b: f64| if a < b { "**ahead**" } else { "**behind**" };
                if e
                    .to_first_received
                    .zip(p.edit.to_first_received)
                    .is_some_and(|(a, b)| a > b)
                {
                    s.push_str(&format!(
                        "- {m}: the peer's first client has the edit sooner ({} vs {}): edgeplane's clock includes the file watcher and the reload ({}), the peer's starts with resources already encoded.\n",
                        p.edit.to_first_received.map(ms).unwrap_or_default(),
                        e.to_first_received.map(ms).unwrap_or_default(),
                        e.reload.clone().unwrap_or_else(|| "not reported".into()),
                    ));
                }
                let (a, b) = (
                    secs(e.to_last_ack).unwrap_or(f64::INFINITY),
                    secs(p.edit.to_last_ack).unwrap_or(f64::INFINITY),
                );
                s.push_str(&format!(
                    "- {m}: ahead of the peer on time: {} (edgeplane {} from the save vs peer {} from `load`; fan-out alone {} vs {}).\n",
                    verdict(a, b),
                    e.to_last_ack.map(ms).unwrap_or_else(|| "–".into()),
                    p.edit.to_last_ack.map(ms).unwrap_or_else(|| "–".into()),
                    e.fanout_alone().map(ms).unwrap_or_else(|| "–".into()),
                    p.edit.fanout_alone().map(ms).unwrap_or_else(|| "–".into()),
                ));
                let (a, b) = (per_stream_kib(c), per_stream_kib(p));
                s.push_str(&format!(
                    "- {m}: ahead of the peer on memory per stream: {} ({a:.1} KiB vs {b:.1} KiB). The peer (rust-control-plane 0.1.2, `bench/peer/README.md`) keeps a decoded copy of the snapshot per node id and, on `load`, sets the snapshot node by node under one mutex and re-encodes every response, which is where its time and memory go.\n",
                    verdict(a, b)
                ));
            }
            Outcome::Unsupported(_) => s.push_str(&format!(
                "- {m}: ahead of the peer: the peer does not support {m}, so there is no baseline.\n"
            )),
            Outcome::Failed(_) => s.push_str(&format!(
                "- {m}: ahead of the peer: not known, the peer run failed (above).\n"
            )),
            Outcome::NotRun => s.push_str(&format!(
                "- {m}: ahead of the peer: not known, no peer given (`--peer`).\n"
            )),
        }
    }
    s
}
