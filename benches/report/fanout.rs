//! Section `fanout`: one route edit to many concurrent ADS streams (SotW
//! and delta): time until every client has ACKed the new
//! RouteConfiguration, and resident memory per stream. At 1,000 streams
//! side by side with two peer control planes serving the same resources to
//! the same clients (nebucloud-xds, the baseline the text compares with;
//! rust-control-plane 0.1.2 as context); at 10,000 streams (the scale of
//! issue 17's targets) edgeplane alone, with its 1,000-stream run as the
//! baseline (the peers are run at 1,000 only: rust-control-plane keeps a
//! decoded snapshot per node id and already needs gigabytes there).
//!
//! Per (server, protocol, size) a fresh server process serves a generated
//! config (1,000 routes / 100 upstreams); the in-process clients
//! (`adsclient`) connect, one TCP connection each, and ACK the initial
//! config; the server's VmRSS before and after gives the cost per stream.
//! Then one route is added: edgeplane gets the edited VirtualService file
//! (temp file + rename in its watched directory), a peer a `load FILE`
//! line with the re-encoded resources, and the clock runs until the last
//! client has handed its ACK of the new RouteConfiguration to its stream.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::time::Instant;

use crate::adsclient::{ClientLog, Expect, Fleet, Mode};
use crate::r#gen::{self, Shape};
use crate::procs::{self, mib, ms, percentile};
use crate::servers::{
    self, Edgeplane, NEBUCLOUD, NEBUCLOUD_VERSION, Peer, RCP, RCP_VERSION, Server,
};
use crate::stack::write_all;
use crate::{Ctx, PeerBin, Section};

/// Outcomes of a 1,000-stream row, in this order (`Row::1`).
const EP: usize = 0;
const NEB: usize = 1;
const RCP_AT: usize = 2;

/// Per protocol, the outcomes of the servers a table compares.
type Row = (Mode, Vec<Outcome>);

const ROUTES: usize = 1_000;
const UPSTREAMS: usize = 100;
/// Streams of the comparison with the peers, and of edgeplane's run at
/// scale (`--quick`: a tenth of each).
const STREAMS: usize = 1_000;
const STREAMS_AT_SCALE: usize = 10_000;
/// Targets (issue 17): every stream ACKed within this of the save …
const TARGET_TIME: Duration = Duration::from_secs(1);
/// … and resident memory per extra stream (KiB), SotW and delta.
const TARGET_KIB_SOTW: f64 = 16.0;
const TARGET_KIB_DELTA: f64 = 24.0;
/// Bounds on the waits: edgeplane's 10,000 streams sync within seconds;
/// a peer's 1,000 within a few (rust-control-plane, the slowest that
/// answers, ~4 s), so a peer that has not answered in a minute never will.
const READY_WITHIN: Duration = Duration::from_secs(180);
const PEER_READY_WITHIN: Duration = Duration::from_secs(60);
/// The slowest server that delivers the edit (rust-control-plane at 1,000
/// streams) takes ~4 s.
const EDIT_WITHIN: Duration = Duration::from_secs(20);
/// Responses arriving this long after the last ACK still count as part of
/// the edit (a server that sends more than the one RouteConfiguration).
const TRAILING: Duration = Duration::from_millis(300);
/// Streams per HTTP/2 connection in the run that separates per-connection
/// from per-stream memory.
const SHARE: usize = 10;
/// Open files needed besides one per client connection (in this process,
/// and in the server, which inherits the limit).
const FD_MARGIN: u64 = 512;

fn target_kib(mode: Mode) -> f64 {
    match mode {
        Mode::Sotw => TARGET_KIB_SOTW,
        Mode::Delta => TARGET_KIB_DELTA,
    }
}

/// edgeplane's `--idle-timeout` here (see `edgeplane_case`).
const IDLE_TIMEOUT: &str = "300s";

/// edgeplane's `--max-connections` for `connections` clients: its default
/// (1,024) unless more are needed.
fn max_connections(connections: usize) -> usize {
    (connections + 64).max(1_024)
}

/// What one (server, protocol) run measured.
#[derive(Clone)]
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

impl Case {
    fn per_stream_kib(&self) -> f64 {
        procs::kib_per_stream(self.rss_idle, self.rss_streams, self.n)
    }
}

#[derive(Clone)]
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
    /// CPU time used from the edit until every client ACKed it (or the
    /// deadline): by the server, and by this process (the clients).
    cpu_server: Option<Duration>,
    cpu_clients: Option<Duration>,
    /// That span's wall time, and how busy the machine's cores were over
    /// it (all processes, `/proc/stat`).
    wall: Duration,
    machine_busy: Option<f64>,
    /// Its duration alone (`lastLoad.durationMs`).
    reload_time: Option<Duration>,
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

#[derive(Clone)]
enum Outcome {
    Measured(Box<Case>),
    Unsupported(String),
    Failed(String),
    /// Not run, and why (no peer given, the open-files limit).
    NotRun(String),
    /// A peer whose build failed (`scripts/bench`), and why.
    NotBuilt(String),
}

impl Outcome {
    fn short(&self) -> &'static str {
        match self {
            Outcome::Measured(_) => "measured",
            Outcome::Unsupported(_) => "not supported",
            Outcome::Failed(_) => "failed",
            Outcome::NotRun(_) => "not run",
            Outcome::NotBuilt(_) => "not built",
        }
    }
}

/// Everything a case needs.
#[derive(Clone)]
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
    let (n, big) = if ctx.quick {
        (STREAMS / 10, STREAMS_AT_SCALE / 10)
    } else {
        (STREAMS, STREAMS_AT_SCALE)
    };
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
    // and n in the server (which inherits the limit): raised to the hard
    // limit if the soft one is lower.
    let need_big = big as u64 + FD_MARGIN;
    let soft = servers::ensure_nofile(need_big);
    let hard = servers::nofile_limit().map_or(soft, |(_, h)| h);
    let need = n as u64 + FD_MARGIN;
    let connections = if soft >= need {
        n
    } else {
        let per = n
            .div_ceil(soft.saturating_sub(FD_MARGIN).max(1) as usize)
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
        let neb = match &ctx.peer2 {
            PeerBin::Built(bin) => {
                eprintln!("   fanout: {NEBUCLOUD} {} ({n} streams)", mode.label());
                classify(peer_case(NEBUCLOUD, bin, &setup, &base, mode).await)
            }
            PeerBin::NotBuilt(why) => Outcome::NotBuilt(why.clone()),
            PeerBin::NotGiven => Outcome::NotRun(format!("no {NEBUCLOUD} peer given (`--peer2`)")),
        };
        let rcp = match &ctx.peer_bin {
            Some(bin) => {
                eprintln!("   fanout: {RCP} {} ({n} streams)", mode.label());
                classify(peer_case(RCP, bin, &setup, &base, mode).await)
            }
            None => Outcome::NotRun(format!("no {RCP} peer given (`--peer`)")),
        };
        rows.push((mode, vec![ep, neb, rcp]));
    }
    // Per-connection vs per-stream memory: the same SotW clients, with
    // SHARE streams on each HTTP/2 connection.
    let shared = if matches!(rows.first(), Some((_, o)) if matches!(o[EP], Outcome::Measured(_))) {
        eprintln!("   fanout: edgeplane SotW, {SHARE} streams per connection");
        Some(
            shared_connections_case(ctx, &setup, &base)
                .await
                .map_err(|e| format!("{e:#}")),
        )
    } else {
        None
    };
    // edgeplane at scale: one connection per stream or not at all (shared
    // connections would measure something else).
    let big_setup = Setup {
        n: big,
        connections: big,
        ..setup.clone()
    };
    let mut big_rows = Vec::new();
    for mode in [Mode::Sotw, Mode::Delta] {
        let ep = if soft >= need_big {
            eprintln!("   fanout: edgeplane {} ({big} streams)", mode.label());
            classify(edgeplane_case(ctx, &big_setup, &base, mode).await)
        } else {
            Outcome::NotRun(format!(
                "{} streams on one TCP connection each need an open-files limit (`ulimit -n`, RLIMIT_NOFILE) of at least {need_big} in this process and in the server; it is {soft} here (hard limit {hard})",
                thousands(big)
            ))
        };
        let small = rows
            .iter()
            .find(|(m, _)| *m == mode)
            .map_or_else(|| Outcome::NotRun(String::new()), |(_, o)| o[EP].clone());
        big_rows.push((mode, vec![ep, small]));
    }

    let ns = thousands(n);
    let mut body = format!(
        "**Method.** ADS clients in the benchmark process (tonic, playing Envoy: node `bench-<i>` with `metadata.role: gloo-system~gateway-proxy`, node on the first request only; wildcard CDS and LDS, then RDS for the route config the listener's HTTP connection manager names; every response ACKed at once, SotW with its version and nonce, delta with its nonce; HTTP/2 windows of 256 MiB, Envoy's default), against a server in its own process on loopback: {ns} clients on {} TCP connection(s){} against edgeplane and two peer control planes built on published crates: **{NEBUCLOUD_VERSION}** (`bench/peer-nebucloud`: its `ShardedCache` and ADS service, SotW and delta, serving the file's encoded resources as they are; the baseline the verdicts compare with) and {RCP_VERSION} (`bench/peer`, kept as context: it has no delta, `unimplemented!()`, keeps a decoded copy of the snapshot per node id and re-encodes every response per node); then {} clients on one TCP connection each against edgeplane alone, with its {ns}-client run as the baseline (the peers are not run at {}). edgeplane runs with `--max-connections` at its default (1,024) or, for more clients, the number of clients + 64 (over the limit a new connection is closed at once) and `--idle-timeout {IDLE_TIMEOUT}` (the clients open every connection before any stream, unlike Envoy, which opens its stream at once: at 10,000 clients an early connection can wait longer than the default 30 s for its stream); its other flags are the defaults. The open-files limit of this process (which the servers inherit) is raised to its hard limit when lower; it is {soft} (hard {hard}), and {} clients need about {need_big} (one descriptor per connection on each side, plus {FD_MARGIN}). Config: generated, {} routes / {} upstreams ({} resources, {} bytes encoded; the one RouteConfiguration is {} bytes, {} after the edit). Each client checks every resource it receives byte for byte against edgeplane's own translation, which is also what the peers serve (a file of the same encoded `Any`s, served as they are by {NEBUCLOUD} and decoded then re-encoded by {RCP}), so a peer that served other bytes would fail its clients. A fresh server process for each server, protocol and size; its VmRSS is read after its config is loaded and before any client connects, then after every client has ACKed the whole initial config: the difference over the number of clients is the memory per extra stream. The edit adds one route to one VirtualService: edgeplane gets the edited file written atomically (temp file + rename) into its watched directory, and its clock starts at the write, so it includes the file watcher (`{:?}`, `src/1-source/watch.rs`: a complete save starts the reload at once) and the reload (read, parse, validate, translate, encode); a peer gets `load FILE` on its stdin (resources already encoded) and its clock starts at that line. The clock stops when the last client has handed its ACK of the new RouteConfiguration to its stream; \"fan-out alone\" runs from the first client receiving it to that last ACK. The CPU time of the server and of this process (the clients) over that span is read from `/proc` (10 ms ticks). Clients and server share the machine's {} cores{}.\n\n",
        thousands(connections),
        if connections == n {
            " (one per client, like real Envoys)".to_string()
        } else {
            format!(
                " (the open-files limit, {soft}, is too low for one each: several streams share each connection's HTTP/2)"
            )
        },
        thousands(big),
        thousands(big),
        thousands(big),
        thousands(ROUTES),
        thousands(UPSTREAMS),
        thousands(resources),
        thousands(bytes),
        thousands(rc_bytes),
        thousands(edited_rc_bytes),
        edgeplane::source::watch::Debounce::default(),
        cores(),
        load.map(|l| format!(" (1-minute load average when the section started: {l:.2})"))
            .unwrap_or_default(),
    );
    body.push_str(&format!(
        "**{} streams, edgeplane and the peers** (baseline: {NEBUCLOUD_VERSION}; {RCP_VERSION} as context).\n\n",
        thousands(n)
    ));
    body.push_str(&table(
        &rows,
        &[
            format!("edgeplane, {} streams", thousands(n)),
            format!("{NEBUCLOUD}, {} streams (baseline)", thousands(n)),
            format!("{RCP}, {} streams (context)", thousands(n)),
        ],
        &[
            (EP, NEB, format!("ratio edgeplane / {NEBUCLOUD}")),
            (EP, RCP_AT, format!("ratio edgeplane / {RCP}")),
        ],
        &["edgeplane", NEBUCLOUD, RCP],
    ));
    if let Some(sp) = &shared {
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
    body.push_str(&format!(
        "**{} streams, edgeplane alone** (one TCP connection each; baseline: its {}-stream run above).\n\n",
        thousands(big),
        thousands(n)
    ));
    let big_who = [
        format!("edgeplane at {}", thousands(big)),
        format!("edgeplane at {}", thousands(n)),
    ];
    let big_who = [big_who[0].as_str(), big_who[1].as_str()];
    if big_rows
        .iter()
        .any(|(_, o)| matches!(o[0], Outcome::Measured(_)))
    {
        body.push_str(&table(
            &big_rows,
            &[
                format!("edgeplane, {} streams", thousands(big)),
                format!("edgeplane, {} streams (baseline)", thousands(n)),
            ],
            &[(0, 1, format!("ratio {} / {}", thousands(big), thousands(n)))],
            &big_who,
        ));
    } else {
        body.push_str(&notes(&big_rows, &big_who));
    }
    let split = match (&shared, rows.first().map(|(_, o)| &o[EP])) {
        (Some(Ok(p10)), Some(Outcome::Measured(c))) if c.connections == c.n => Some(Split {
            n: c.n,
            p1: c.per_stream_kib(),
            p10: *p10,
        }),
        _ => None,
    };
    body.push_str(&targets(&rows, &big_rows, split));
    Ok(Section {
        title: format!(
            "Fan-out: one route edit to {} and {} ADS streams",
            thousands(n),
            thousands(big)
        ),
        body,
    })
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
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
    ready_within: Duration,
) -> Result<std::result::Result<(Fleet, Duration), Outcome>> {
    let started = Instant::now();
    let mut fleet = Fleet::start(mode, port, s.n, s.connections, s.expect.clone()).await?;
    if let Err(e) = fleet.wait_ready(ready_within).await {
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
    /// How long its clients may take to get the initial config.
    const READY_WITHIN: Duration;

    /// Makes the edit (the clock started at `t0`, just before); returns
    /// once every client ACKed it or `EDIT_WITHIN` passed: how many did,
    /// and when (after `t0`) the peer printed its `loaded` line.
    async fn edit(
        &mut self,
        s: &Setup,
        fleet: &mut Fleet,
        t0: Instant,
    ) -> Result<(usize, Option<Duration>)>;

    /// edgeplane's `lastLoad` after the edit (`/status`); none from the peer.
    async fn reload(&self) -> Option<serde_json::Value>;
}

impl Edits for Edgeplane {
    const READY_WITHIN: Duration = READY_WITHIN;

    async fn edit(
        &mut self,
        s: &Setup,
        fleet: &mut Fleet,
        _t0: Instant,
    ) -> Result<(usize, Option<Duration>)> {
        servers::write_atomic(&self.dir, &s.edit.0, s.edit.1.as_bytes())?;
        Ok((fleet.wait_edited(EDIT_WITHIN).await, None))
    }

    async fn reload(&self) -> Option<serde_json::Value> {
        self.last_load().await
    }
}

impl Edits for Peer {
    const READY_WITHIN: Duration = PEER_READY_WITHIN;

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

    async fn reload(&self) -> Option<serde_json::Value> {
        None
    }
}

/// One case on a started server, the same steps for both: its memory idle,
/// the fleet's initial sync, its memory with the streams, the edit, its
/// memory after.
async fn measure<S: Edits>(server: &mut S, s: &Setup, mode: Mode) -> Result<Outcome> {
    let rss_idle = server.rss_kib()?;
    let (mut fleet, initial_sync) =
        match connect_fleet(mode, server.xds_port(), s, S::READY_WITHIN).await? {
            Ok(f) => f,
            Err(o) => return Ok(o),
        };
    server.check_alive()?;
    let rss_streams = server.rss_kib()?;
    let me = std::process::id();
    let cpu0 = (procs::cpu_time(server.pid()), procs::cpu_time(me));
    let busy0 = procs::machine_ticks();
    let t0 = Instant::now();
    let (acked, loaded) = server.edit(s, &mut fleet, t0).await?;
    let wall = t0.elapsed();
    let cpu1 = (procs::cpu_time(server.pid()), procs::cpu_time(me));
    let machine_busy = procs::busy_between(busy0, procs::machine_ticks());
    wait_quiet(&fleet).await;
    server.check_alive()?;
    let rss_after_edit = server.rss_kib()?;
    let hwm = server.hwm_kib().unwrap_or(0);
    let mut edit = edit_of(&fleet.logs(), acked, t0, loaded);
    let reload = server.reload().await;
    edit.reload = reload.as_ref().map(describe_load);
    edit.reload_time = reload
        .as_ref()
        .and_then(|l| l["durationMs"].as_f64())
        .map(|d| Duration::from_secs_f64(d / 1000.0));
    edit.wall = wall;
    edit.machine_busy = machine_busy;
    edit.cpu_server = cpu1.0.zip(cpu0.0).map(|(b, a)| b.saturating_sub(a));
    edit.cpu_clients = cpu1.1.zip(cpu0.1).map(|(b, a)| b.saturating_sub(a));
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
    let dir = base.join(format!("edgeplane-{}-{}", mode.label(), s.n));
    write_all(&dir, &s.files)?;
    let logf = base.join(format!("edgeplane-{}-{}.log", mode.label(), s.n));
    // The fleet opens every connection before any stream (a real Envoy
    // opens its stream at once): at 10,000 clients an early connection can
    // wait longer than the default 30 s `--idle-timeout` for its stream.
    let flags = [
        "--max-connections".to_string(),
        max_connections(s.connections).to_string(),
        "--idle-timeout".to_string(),
        IDLE_TIMEOUT.to_string(),
    ];
    let mut ep = Edgeplane::start_with(&ctx.edgeplane_bin, &dir, logf, &[], &flags).await?;
    let (gw_name, gw_text) = &s.files[0];
    ep.wait_watching(gw_name, gw_text).await?;
    measure(&mut ep, s, mode).await
}

async fn peer_case(
    name: &'static str,
    bin: &Path,
    s: &Setup,
    base: &Path,
    mode: Mode,
) -> Result<Outcome> {
    let logf = base.join(format!("{name}-{}-{}.log", mode.label(), s.n));
    let mut peer = Peer::start(name, bin, &s.initial_pb, logf).await?;
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
        cpu_server: None,
        cpu_clients: None,
        wall: Duration::ZERO,
        machine_busy: None,
        reload: None,
        reload_time: None,
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

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "–".into(),
    }
}

fn cell(o: &Outcome, f: &dyn Fn(&Case) -> Option<String>) -> String {
    match o {
        Outcome::Measured(c) => f(c).unwrap_or_else(|| "–".into()),
        other => other.short().into(),
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

/// The CPU both sides used over the edit, as text: `server / clients (x %
/// of the cores' time)`.
fn cpu_text(e: &Edit) -> Option<String> {
    let (srv, cli) = (e.cpu_server?, e.cpu_clients?);
    let avail = e.wall.as_secs_f64() * cores() as f64;
    Some(format!(
        "{} / {} ({:.0} % of {} cores × {})",
        ms(srv),
        ms(cli),
        if avail > 0.0 {
            100.0 * (srv + cli).as_secs_f64() / avail
        } else {
            0.0
        },
        cores(),
        ms(e.wall)
    ))
}

/// One table: per protocol, every figure for each outcome of a row side by
/// side (`heads`: their columns' titles), then the ratios of pairs of them
/// (`ratios`: the two outcomes' indexes and the column's title; `who`: the
/// outcomes' names in the notes under the table).
fn table(
    rows: &[Row],
    heads: &[String],
    ratios: &[(usize, usize, String)],
    who: &[&str],
) -> String {
    let cols: Vec<&str> = heads
        .iter()
        .map(String::as_str)
        .chain(ratios.iter().map(|(_, _, h)| h.as_str()))
        .collect();
    let mut t = format!(
        "| figure | {} |\n|---|{}\n",
        cols.join(" | "),
        "---|".repeat(cols.len())
    );
    type Text = dyn Fn(&Case) -> Option<String>;
    type Num = dyn Fn(&Case) -> Option<f64>;
    /// A figure: its label, its text and the value its ratio compares.
    type Line = (&'static str, Box<Text>, Option<Box<Num>>);
    let lines: Vec<Line> = vec![
        (
            "edit → every client ACKed (edgeplane: from the file save; peer: from `load`)",
            Box::new(|c: &Case| {
                Some(match c.edit.to_last_ack {
                    Some(d) => ms(d),
                    None => format!(
                        "{} of {} within {:?}",
                        thousands(c.edit.acked),
                        thousands(c.n),
                        EDIT_WITHIN
                    ),
                })
            }),
            Some(Box::new(|c: &Case| secs(c.edit.to_last_ack))),
        ),
        (
            "edit → first client has the new RouteConfiguration",
            Box::new(|c: &Case| c.edit.to_first_received.map(ms)),
            Some(Box::new(|c: &Case| secs(c.edit.to_first_received))),
        ),
        (
            "edgeplane's reload for the edit (`/status` `lastLoad`)",
            Box::new(|c: &Case| c.edit.reload.clone()),
            None,
        ),
        (
            "fan-out alone: first client has it → last ACK",
            Box::new(|c: &Case| c.edit.fanout_alone().map(ms)),
            Some(Box::new(|c: &Case| secs(c.edit.fanout_alone()))),
        ),
        (
            "per-client ACK after the edit, p50 / p99",
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
            "the peer's `loaded` line after `load`",
            Box::new(|c: &Case| c.edit.to_loaded_line.map(ms)),
            None,
        ),
        (
            "per client for the edit: responses / resources (removals) / bytes [types]; ratio of bytes",
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
            "CPU time from the edit to the last ACK: server / clients (this process); ratio of the server's",
            Box::new(|c: &Case| cpu_text(&c.edit)),
            // Compared only for an edit every client ACKed: a server that
            // never delivered it spent its time on something else.
            Some(Box::new(|c: &Case| {
                c.edit.to_last_ack.and(secs(c.edit.cpu_server))
            })),
        ),
        (
            "server RSS per extra stream",
            Box::new(|c: &Case| Some(format!("{:.1} KiB", c.per_stream_kib()))),
            Some(Box::new(|c: &Case| Some(c.per_stream_kib()))),
        ),
        (
            "server VmRSS: idle → with the streams → after the edit (VmHWM)",
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
            "initial sync: first connect → every client ACKed everything",
            Box::new(|c: &Case| {
                Some(format!(
                    "{} ({} clients, {} connections)",
                    ms(c.initial_sync),
                    thousands(c.n),
                    thousands(c.connections)
                ))
            }),
            Some(Box::new(|c: &Case| Some(c.initial_sync.as_secs_f64()))),
        ),
    ];
    for (mode, outs) in rows {
        for (label, text, value) in &lines {
            // A figure no server has (the peers' line, in a table without
            // a peer) is left out.
            let has = |o: &Outcome| matches!(o, Outcome::Measured(c) if text(c).is_some());
            if !outs.iter().any(has) {
                continue;
            }
            let mut cells: Vec<String> = outs.iter().map(|o| cell(o, text.as_ref())).collect();
            for (a, b, _) in ratios {
                cells.push(match (value, outs.get(*a), outs.get(*b)) {
                    (Some(v), Some(a), Some(b)) => ratio(num(a, v.as_ref()), num(b, v.as_ref())),
                    _ => "–".into(),
                });
            }
            t.push_str(&format!(
                "| {}: {} | {} |\n",
                mode.label(),
                label,
                cells.join(" | ")
            ));
        }
    }
    t.push_str(&notes(rows, who));
    t
}

/// What was not measured, and why: one line each.
fn notes(rows: &[Row], who: &[&str]) -> String {
    let mut t = String::new();
    for (mode, outs) in rows {
        for (who, o) in who.iter().zip(outs) {
            let m = mode.label();
            match o {
                Outcome::Unsupported(msg) => {
                    t.push_str(&format!("\n{who}, {m}: not supported: {}\n", one_line(msg)))
                }
                Outcome::Failed(msg) => {
                    t.push_str(&format!("\n{who}, {m}: **failed**: {}\n", one_line(msg)))
                }
                Outcome::NotRun(msg) if !msg.is_empty() => {
                    t.push_str(&format!("\n{who}, {m}: not run: {}\n", one_line(msg)))
                }
                Outcome::NotBuilt(msg) => {
                    t.push_str(&format!("\n{who}, {m}: not built: {}\n", one_line(msg)))
                }
                _ => {}
            }
        }
    }
    t.push('\n');
    t
}

/// The run that separates per-connection from per-stream memory: at `n`
/// SotW streams, KiB per extra stream with one connection each (`p1`) and
/// with `SHARE` streams per connection (`p10`).
#[derive(Clone, Copy)]
struct Split {
    n: usize,
    p1: f64,
    p10: f64,
}

/// Why a stream costs what it costs, from the split run: with `SHARE`
/// streams per connection a stream pays a tenth of the connection, so
/// `p1 = c + s` and `p10 = c / SHARE + s`.
fn memory_why(mode: Mode, split: Option<Split>) -> String {
    let target = target_kib(mode);
    let mut w = String::from("Why: ");
    match split {
        _ if mode == Mode::Delta => w.push_str(
            "as SotW (the connection's task and state, the stream's task, its response queue and 1 KiB request buffer), plus what delta keeps per stream: which resources the client holds and at which version, per type (the names are the snapshot's, shared, not copied).",
        ),
        Some(Split { n, p1, p10 }) if p10 < p1 => {
            let k = SHARE as f64;
            let conn = (p1 - p10) * k / (k - 1.0);
            let stream = (p1 - conn).max(0.0);
            w.push_str(&format!(
                "at {} streams, a stream costs {p1:.1} KiB with a connection of its own and {p10:.1} KiB with {SHARE} streams per connection, which puts about {conn:.1} KiB on each TCP connection and {stream:.1} KiB on each stream. The connection's share is the HTTP/2 transport (edgeplane's own server, `src/serve/http2`: the connection's task with its socket, timers and HPACK table; it keeps no read or write buffer between frames), paid once per Envoy since each Envoy has its own connection; ",
                thousands(n)
            ));
            if stream > target {
                w.push_str("edgeplane's own per-stream state (the stream's task, which reads its requests itself, its response queue of boxed responses, a request buffer starting at 1 KiB where tonic's default is 8, the ACK registry's entry) is over the target even without it.");
            } else {
                w.push_str(&format!(
                    "edgeplane's own per-stream state (the stream's task, which reads its requests itself, its response queue of boxed responses, a request buffer starting at 1 KiB where tonic's default is 8, the ACK registry's entry) fits the target, so the miss is the transport's: with one connection per Envoy, ≤ {target:.0} KiB needs a smaller connection."
                ));
            }
        }
        Some(Split { n, p1, p10 }) => w.push_str(&format!(
            "the split run did not separate a per-connection share (at {} streams, {p10:.1} KiB a stream with {SHARE} streams per connection against {p1:.1} KiB with one each), so the cost is in the streams themselves: the stream's task, its response queue, the ACK registry's entry, its request buffer.",
            thousands(n)
        )),
        None => w.push_str("the split run (streams sharing connections) did not complete, so the share of the transport is not known."),
    }
    w
}

/// Where the time of an edit went, from the measurements: the reload, the
/// fan-out, the bytes pushed and the CPU both sides used; against the
/// same figures of `base` (the smaller run) when given.
fn time_why(c: &Case, base: Option<&Case>) -> String {
    let e = &c.edit;
    let mut w = format!(
        "save → first client {} (of which edgeplane's reload {}), fan-out alone {}",
        e.to_first_received.map(ms).unwrap_or_else(|| "–".into()),
        e.reload_time.map_or_else(|| "not reported".into(), ms),
        e.fanout_alone().map(ms).unwrap_or_else(|| "–".into()),
    );
    let total = e.bytes.1 as f64 * e.acked as f64 / (1024.0 * 1024.0);
    if let Some(f) = e.fanout_alone().filter(|f| !f.is_zero()) {
        w.push_str(&format!(
            ": {} clients × {} = {total:.0} MiB pushed ({:.0} MiB/s), each response decoded and checked byte for byte by its client in this process",
            thousands(e.acked),
            e.bytes.show(" B"),
            total / f.as_secs_f64()
        ));
    }
    if let Some(b) = base
        && let (Some(f), Some(fb)) = (e.fanout_alone(), b.edit.fanout_alone())
        && !fb.is_zero()
    {
        w.push_str(&format!(
            "; at {} streams fan-out alone took {} ({:.1}× the time for {:.0}× the streams)",
            thousands(b.n),
            ms(fb),
            f.as_secs_f64() / fb.as_secs_f64(),
            c.n as f64 / b.n as f64
        ));
    }
    if let (Some(srv), Some(cli)) = (e.cpu_server, e.cpu_clients) {
        let avail = e.wall.as_secs_f64() * cores() as f64;
        let ours = if avail > 0.0 {
            (srv + cli).as_secs_f64() / avail
        } else {
            0.0
        };
        w.push_str(&format!(
            ". Over the {} from the save to the last ACK, edgeplane used {} of CPU and the clients {}, {:.0} % of what the {} cores offer",
            ms(e.wall),
            ms(srv),
            ms(cli),
            100.0 * ours,
            cores()
        ));
        if let Some(busy) = e.machine_busy {
            w.push_str(&format!(
                "; the cores were {:.0} % busy in all (`/proc/stat`)",
                100.0 * busy
            ));
            if busy >= 0.9 && busy - ours >= 0.1 {
                w.push_str(&format!(
                    ", so other processes on this shared machine took about {:.0} % of them meanwhile",
                    100.0 * (busy - ours)
                ));
            }
        }
        if srv >= TARGET_TIME {
            w.push_str(&format!(
                ": edgeplane's own CPU time alone ({}) is over the second, so the miss is the server's (each stream's response framed and written through HTTP/2 on its own connection)",
                ms(srv)
            ));
        } else if e.to_last_ack.is_none_or(|d| d > TARGET_TIME) {
            w.push_str(&format!(
                ": edgeplane's own CPU time ({}) fits in the second; the wall time is the cores shared with the clients, which stand in for {} separate Envoys on other machines{}",
                ms(srv),
                thousands(c.n),
                if e.machine_busy.is_some_and(|b| b >= 0.9 && b - ours >= 0.1) {
                    ", and with the machine's other load"
                } else {
                    ""
                }
            ));
        }
    }
    w.push('.');
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

/// The verdicts of one edgeplane case against the targets; with the why
/// of each (`explain`), or only of a time missed.
fn case_targets(
    s: &mut String,
    mode: Mode,
    c: &Case,
    base: Option<&Case>,
    split: Option<Split>,
    explain: bool,
) {
    let m = mode.label();
    let n = thousands(c.n);
    let e = &c.edit;
    match e.to_last_ack {
        Some(d) if d <= TARGET_TIME => s.push_str(&format!(
            "- {m}, {n} streams: all ACKed within 1 s of the save: **met** ({}, {} to spare).{}\n",
            ms(d),
            ms(TARGET_TIME - d),
            if explain {
                format!(" Where the time goes: {}", time_why(c, base))
            } else {
                String::new()
            },
        )),
        Some(d) => s.push_str(&format!(
            "- {m}, {n} streams: all ACKed within 1 s of the save: **missed** by {} ({}). Why: {}\n",
            ms(d - TARGET_TIME),
            ms(d),
            time_why(c, base),
        )),
        None => s.push_str(&format!(
            "- {m}, {n} streams: all ACKed within 1 s of the save: **missed**: only {} had ACKed after {:?}. Why: {}\n",
            thousands(e.acked),
            EDIT_WITHIN,
            time_why(c, base),
        )),
    }
    let kib = c.per_stream_kib();
    let target = target_kib(mode);
    let scaled = base
        .map(|b| {
            format!(
                "; {:.1} KiB at {} streams",
                b.per_stream_kib(),
                thousands(b.n)
            )
        })
        .unwrap_or_default();
    if kib <= target {
        let how = match split {
            Some(Split { n, p1, p10 }) if explain && mode == Mode::Sotw && p10 < p1 => {
                let k = SHARE as f64;
                let conn = (p1 - p10) * k / (k - 1.0);
                format!(
                    " At {} streams a stream costs {p1:.1} KiB with a connection of its own and {p10:.1} KiB with {SHARE} streams per connection: about {conn:.1} KiB per TCP connection (edgeplane's own HTTP/2 server, `src/serve/http2`, which keeps no read or write buffer between frames and runs a connection's streams in its one task) and {:.1} KiB per stream.",
                    thousands(n),
                    (p1 - conn).max(0.0)
                )
            }
            _ => String::new(),
        };
        s.push_str(&format!(
            "- {m}, {n} streams: ≤ {target:.0} KiB resident per extra stream: **met** ({kib:.1} KiB{scaled}).{how}\n"
        ));
    } else {
        s.push_str(&format!(
            "- {m}, {n} streams: ≤ {target:.0} KiB resident per extra stream: **missed** by {:.1} KiB ({kib:.1} KiB, {:.0} % over{scaled}).{}\n",
            kib - target,
            (kib / target - 1.0) * 100.0,
            if explain {
                format!(" {}", memory_why(mode, split))
            } else {
                String::new()
            }
        ));
    }
}

fn targets(rows: &[Row], big: &[Row], split: Option<Split>) -> String {
    let mut s = format!(
        "**Targets** (issue 17): with {} ADS streams on one replica, one TCP connection each, every stream has ACKed a route edit within {} s of the save, and each extra stream costs ≤ {TARGET_KIB_SOTW:.0} KiB resident (SotW) or ≤ {TARGET_KIB_DELTA:.0} KiB (delta). The same targets are shown for the smaller run, beside the comparison with the peers ({NEBUCLOUD_VERSION} the baseline, {RCP_VERSION} context).\n\n",
        thousands(STREAMS_AT_SCALE),
        TARGET_TIME.as_secs()
    );
    for (mode, outs) in big {
        let base = match outs.get(1) {
            Some(Outcome::Measured(b)) => Some(b.as_ref()),
            _ => None,
        };
        match &outs[0] {
            Outcome::Measured(c) => case_targets(&mut s, *mode, c, base, split, true),
            other => s.push_str(&format!(
                "- {}: not measured at scale on edgeplane ({}), so its targets are not known to be met.\n",
                mode.label(),
                other.short()
            )),
        }
    }
    for (mode, outs) in rows {
        let m = mode.label();
        let Outcome::Measured(c) = &outs[EP] else {
            s.push_str(&format!(
                "- {m}: not measured on edgeplane at {} streams ({}).\n",
                thousands(STREAMS),
                outs[EP].short()
            ));
            continue;
        };
        // Explained above when the run at scale was measured.
        let explained = big
            .iter()
            .any(|(m, o)| m == mode && matches!(o[0], Outcome::Measured(_)));
        case_targets(&mut s, *mode, c, None, split, !explained);
        peer_verdicts(&mut s, *mode, c, &outs[NEB], NEBUCLOUD);
        peer_verdicts(&mut s, *mode, c, &outs[RCP_AT], RCP);
    }
    s
}

/// How a case's every client fared with the edit, as text.
fn all_acked(c: &Case) -> String {
    match c.edit.to_last_ack {
        Some(d) => ms(d),
        None => format!(
            "{} of {} ACKed within {:?}",
            thousands(c.edit.acked),
            thousands(c.n),
            EDIT_WITHIN
        ),
    }
}

/// What is known of a peer, for its verdicts: its README, and what the
/// report says of it beside its figures (`p`: its measured case).
fn peer_about(who: &str, mode: Mode, p: Option<&Case>) -> String {
    if who == RCP {
        return format!(
            "{RCP_VERSION} is context only (`bench/peer/README.md`): it has no delta (`unimplemented!()`), keeps a decoded copy of the snapshot per node id and re-encodes every response per node, and on `load` sets the snapshot node by node under one mutex, which is where its time and memory go."
        );
    }
    let mut w = format!(
        "{NEBUCLOUD_VERSION} (`bench/peer-nebucloud/README.md`) shares one encoded copy of each resource between nodes but keeps a snapshot (its name → resource maps) per node id, since its cache has no snapshot for all nodes"
    );
    match p {
        None if mode == Mode::Delta => w.push_str(
            "; its delta handler takes the clients' explicit wildcard subscription (`*`, the xDS protocol's wildcard name, which the benchmark's clients send) for a resource named `*`, so a wildcard CDS or LDS subscription gets no response (xds-server 0.1.0 `delta.rs`: a stream is wildcard only when its first request subscribes to nothing); and like its SotW it would not push a later change.",
        ),
        Some(p) if p.edit.acked == 0 => w.push_str(&format!(
            "; no {} client received the edit: its ADS service answers requests only and never watches its cache, so a snapshot set after a client's last request reaches no open stream (the crate's `ShardedCache` has watches, but its server does not use them).",
            mode.label()
        )),
        _ => w.push('.'),
    }
    w
}

/// The verdicts of edgeplane's case `c` against a peer's outcome.
fn peer_verdicts(s: &mut String, mode: Mode, c: &Case, peer: &Outcome, who: &str) {
    let m = mode.label();
    let e = &c.edit;
    match peer {
        Outcome::Measured(p) => {
            let verdict = |a: f64, b: f64| {
                if a.is_infinite() && b.is_infinite() {
                    "**not known**"
                } else if a < b {
                    "**ahead**"
                } else {
                    "**behind**"
                }
            };
            if e
                .to_first_received
                .zip(p.edit.to_first_received)
                .is_some_and(|(a, b)| a > b)
            {
                s.push_str(&format!(
                    "- {m}: {who}'s first client has the edit sooner ({} vs {}): edgeplane's clock includes the file watcher and the reload ({}), the peer's starts with resources already encoded.\n",
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
                "- {m}: ahead of {who} on time: {} (edgeplane {} from the save vs {who} {} from `load`; fan-out alone {} vs {}).\n",
                verdict(a, b),
                all_acked(c),
                all_acked(p),
                e.fanout_alone().map(ms).unwrap_or_else(|| "–".into()),
                p.edit.fanout_alone().map(ms).unwrap_or_else(|| "–".into()),
            ));
            let (a, b) = (c.per_stream_kib(), p.per_stream_kib());
            s.push_str(&format!(
                "- {m}: ahead of {who} on memory per stream: {} ({a:.1} KiB vs {b:.1} KiB). {}\n",
                verdict(a, b),
                peer_about(who, mode, Some(p))
            ));
            let (a, b) = (
                c.initial_sync.as_secs_f64(),
                p.initial_sync.as_secs_f64(),
            );
            s.push_str(&format!(
                "- {m}: ahead of {who} on the initial sync: {} ({} vs {}).\n",
                verdict(a, b),
                ms(c.initial_sync),
                ms(p.initial_sync)
            ));
        }
        Outcome::Unsupported(msg) => s.push_str(&format!(
            "- {m}: ahead of {who}: {who} did not serve {m} here ({}), so there is no baseline. {}\n",
            one_line(msg),
            peer_about(who, mode, None)
        )),
        Outcome::Failed(_) => s.push_str(&format!(
            "- {m}: ahead of {who}: not known, the {who} run failed (above).\n"
        )),
        Outcome::NotRun(why) => s.push_str(&format!(
            "- {m}: ahead of {who}: not known, {who} was not run ({why}).\n"
        )),
        Outcome::NotBuilt(why) => s.push_str(&format!(
            "- {m}: ahead of {who}: not known, {who} was not built: {}.\n",
            one_line(why)
        )),
    }
}
