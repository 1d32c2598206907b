//! Section `scale`: 100,000 routes / 10,000 upstreams served to a real
//! Envoy (issue 17), beside 10,000 routes / 1,000 upstreams in the same run
//! (the ratios show how it scales) and beside Envoy alone loading the same
//! configuration from files (`latency`'s baseline: static Listener and
//! Clusters, the RouteConfiguration by a filesystem subscription).
//!
//! Per size and layout (VirtualServices of 100 routes, or one VirtualService
//! holding every route): the manifests are written, then read by
//! edgeplane's own reader (`pipeline::load_dir`, what `serve` runs), so a
//! refusal is reported as such with its diagnostics. Then, from nothing:
//! `edgeplane serve` is started and, once its admin answers, an Envoy
//! bootstrapped by `edgeplane bootstrap`; the clock runs from edgeplane's
//! start until a probe GET for the last route of the last VirtualService
//! answers 200 through that Envoy (`/readyz` is polled beside it: the first
//! snapshot built). Memory of both processes from `/proc` once served;
//! Envoy's acceptance from its `/stats` (RDS/CDS/LDS `update_success` and
//! `update_rejected`, active clusters). Then the file-fed Envoy is started
//! the same way (its start → the same probe answering 200), and edits
//! (one route added to VirtualService `vs-0`) alternate between the two
//! sides exactly as in `latency`: save → the probe of the new route
//! answers 200.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use prost::Message;

use crate::fanout::thousands;
use crate::r#gen::{self, Shape};
use crate::latency::{self, baseline_bootstrap, discovery_response, sample};
use crate::procs::{self, mib, ms, percentile};
use crate::stack::{
    Backend, Edgeplane, Envoy, Probe, http_get, listen_ports, write_all, write_atomic,
};
use crate::{Ctx, Section};

/// Longest from edgeplane's start to the probe's first 200.
const SERVE_WITHIN: Duration = Duration::from_secs(300);
/// Longest a single edit may take before it counts as lost.
const SAMPLE_DEADLINE: Duration = Duration::from_secs(60);
/// Time between polls while starting.
const POLL: Duration = Duration::from_millis(10);
/// The figures of issue 17's second target.
const TARGET_ROUTES: usize = 100_000;
const TARGET_UPSTREAMS: usize = 10_000;

#[derive(Clone, Copy, Debug)]
struct Size {
    routes: usize,
    upstreams: usize,
}

/// What Envoy's `/stats` says of its xDS updates.
#[derive(Clone, Copy, Debug, Default)]
struct Stats {
    rds_ok: u64,
    rds_rejected: u64,
    cds_ok: u64,
    cds_rejected: u64,
    lds_ok: u64,
    lds_rejected: u64,
    clusters: u64,
    listeners: u64,
}

impl Stats {
    fn rejected(&self) -> u64 {
        self.rds_rejected + self.cds_rejected + self.lds_rejected
    }

    fn show(&self) -> String {
        format!(
            "RDS {} / {}, CDS {} / {}, LDS {} / {}; {} active clusters, {} listener(s)",
            self.rds_ok,
            self.rds_rejected,
            self.cds_ok,
            self.cds_rejected,
            self.lds_ok,
            self.lds_rejected,
            thousands(self.clusters as usize),
            self.listeners
        )
    }
}

/// One size and layout, measured.
struct Row {
    files: usize,
    manifest_bytes: usize,
    clusters: usize,
    /// The RouteConfiguration, encoded; the whole RDS response around it.
    rc_bytes: usize,
    rds_bytes: usize,
    /// `max_receive_message_length` of the ADS gRPC service in the
    /// bootstrap `edgeplane bootstrap` writes.
    envoy_grpc_limit: Option<String>,
    /// edgeplane's start → its admin answers (Envoy is started then).
    envoy_started: Duration,
    /// edgeplane's start → `/readyz` 200 (its first snapshot is served).
    ready: Option<Duration>,
    /// `/status` `lastLoad.durationMs` of that first load.
    first_load: Option<Duration>,
    /// edgeplane's start → the last route answers 200 through Envoy.
    served: Duration,
    /// CPU time until then: edgeplane, Envoy.
    cpu_ep: Duration,
    cpu_envoy: Duration,
    /// KiB once served: edgeplane's VmRSS and VmHWM, Envoy's VmRSS.
    ep_rss: u64,
    ep_hwm: u64,
    envoy_rss: u64,
    stats: Stats,
    /// The baseline Envoy: its start → the last route answers 200; its CPU
    /// time until then and VmRSS (KiB).
    file_served: Duration,
    file_cpu: Duration,
    file_rss: u64,
    /// Save → served per edit, both sides; lost samples.
    ep: Vec<Duration>,
    file: Vec<Duration>,
    ep_lost: usize,
    file_lost: usize,
    /// edgeplane's own duration of each reload (`/status` `lastLoad`), and
    /// its account of the last one's work.
    reload: Vec<Duration>,
    last_reload: Option<String>,
    /// Reloads after the first load (`/status` `loads` − 1).
    reloads: u64,
    /// After the edits: edgeplane's VmRSS and VmHWM (KiB), Envoy's stats.
    ep_rss_end: u64,
    ep_hwm_end: u64,
    stats_end: Stats,
}

impl Row {
    fn p50(v: &[Duration]) -> Option<Duration> {
        (!v.is_empty()).then(|| percentile(v, 50.0))
    }
    fn max(v: &[Duration]) -> Option<Duration> {
        v.iter().max().copied()
    }
}

enum Outcome {
    Measured(Box<Row>),
    /// edgeplane's reader refused the manifests: its diagnostics.
    Refused(String),
    Failed(String),
}

/// The prepared baseline: what edgeplane's pipeline makes of the
/// manifests, and the RDS responses of every edit.
struct Prepared {
    listeners: Vec<envoy_types::pb::envoy::config::listener::v3::Listener>,
    clusters: Vec<envoy_types::pb::envoy::config::cluster::v3::Cluster>,
    rc_bytes: usize,
    initial: Vec<u8>,
    responses: Vec<Vec<u8>>,
}

pub async fn run(ctx: &Ctx) -> Result<Section> {
    let (sizes, edits) = if ctx.quick {
        (
            [
                Size {
                    routes: 500,
                    upstreams: 50,
                },
                Size {
                    routes: 5_000,
                    upstreams: 500,
                },
            ],
            3,
        )
    } else {
        (
            [
                Size {
                    routes: TARGET_ROUTES / 10,
                    upstreams: TARGET_UPSTREAMS / 10,
                },
                Size {
                    routes: TARGET_ROUTES,
                    upstreams: TARGET_UPSTREAMS,
                },
            ],
            5,
        )
    };
    let backend = Backend::start().await?;
    let load = procs::loadavg();
    let mut results = Vec::new();
    for per_vs in [r#gen::ROUTES_PER_VS, usize::MAX] {
        let mut row = Vec::new();
        for size in sizes {
            eprintln!(
                "   scale: {} routes / {} upstreams, {}",
                size.routes,
                size.upstreams,
                layout(per_vs, size.routes)
            );
            let o = match measure(ctx, &backend, size, per_vs, edits).await {
                Ok(o) => o,
                Err(e) => Outcome::Failed(format!("{e:#}")),
            };
            if let Outcome::Measured(r) = &o {
                eprintln!(
                    "   scale: served in {}, edit p50 {} (Envoy from files {})",
                    ms(r.served),
                    Row::p50(&r.ep).map_or("–".into(), ms),
                    Row::p50(&r.file).map_or("–".into(), ms),
                );
            }
            row.push((size, o));
        }
        results.push((per_vs, row));
    }
    Ok(Section {
        title: format!(
            "Scale: {} routes / {} upstreams served to Envoy",
            thousands(sizes[1].routes),
            thousands(sizes[1].upstreams)
        ),
        body: render(&results, edits, load),
    })
}

fn layout(per_vs: usize, routes: usize) -> String {
    if per_vs >= routes {
        "one VirtualService".into()
    } else {
        format!("VirtualServices of {per_vs} routes")
    }
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// The last route of the last VirtualService: (host, path).
fn last_route(s: Shape) -> (String, String) {
    let per_vs = s.per_vs.clamp(1, s.routes.max(1));
    let j = s.routes.div_ceil(per_vs).max(1) - 1;
    let i = s.routes.saturating_sub(j * per_vs).max(1) - 1;
    (r#gen::vs_domain(j), format!("/vs{j}/r{i}"))
}

/// Envoy's xDS update counters, active clusters and listeners.
async fn envoy_stats(admin_port: u16) -> Result<Stats> {
    // `rds\..*\.update_(success|rejected)$|(cds|lds)\.update_(success|rejected)$|
    // cluster_manager\.active_clusters$|listener_manager\.total_listeners_active$`,
    // URL-encoded (RDS counters are per route config: `….rds.<name>.update_success`).
    const FILTER: &str = concat!(
        "rds%5C..*%5C.update_%28success%7Crejected%29%24",
        "%7C%28cds%7Clds%29%5C.update_%28success%7Crejected%29%24",
        "%7Ccluster_manager%5C.active_clusters%24",
        "%7Clistener_manager%5C.total_listeners_active%24"
    );
    let (status, body) = http_get(admin_port, "127.0.0.1", &format!("/stats?filter={FILTER}"))
        .await
        .context("envoy /stats")?;
    ensure!(status == 200, "envoy /stats answered {status}");
    let mut s = Stats::default();
    let mut seen = 0;
    for line in body.lines() {
        let Some((name, value)) = line.rsplit_once(':') else {
            continue;
        };
        let Ok(v) = value.trim().parse::<u64>() else {
            continue;
        };
        seen += 1;
        let slot = if name.contains("rds.") && name.ends_with(".update_success") {
            &mut s.rds_ok
        } else if name.contains("rds.") && name.ends_with(".update_rejected") {
            &mut s.rds_rejected
        } else if name == "cluster_manager.cds.update_success" {
            &mut s.cds_ok
        } else if name == "cluster_manager.cds.update_rejected" {
            &mut s.cds_rejected
        } else if name == "listener_manager.lds.update_success" {
            &mut s.lds_ok
        } else if name == "listener_manager.lds.update_rejected" {
            &mut s.lds_rejected
        } else if name == "cluster_manager.active_clusters" {
            &mut s.clusters
        } else if name == "listener_manager.total_listeners_active" {
            &mut s.listeners
        } else {
            continue;
        };
        *slot += v;
    }
    ensure!(
        seen > 0,
        "envoy /stats matched none of the xDS counters (filter not applied?)"
    );
    Ok(s)
}

/// Polls `GET path` (Host `host`) on Envoy's `port` until 200; the time
/// since `t0`. Fails when either process exits or at `t0 + SERVE_WITHIN`.
async fn wait_probe(
    envoy: &mut Envoy,
    ep: Option<&mut Edgeplane>,
    port: u16,
    host: &str,
    path: &str,
    t0: Instant,
) -> Result<Duration> {
    let mut probe = Probe::new(port, host);
    let mut ep = ep;
    loop {
        if probe.status(path).await == Some(200) {
            return Ok(t0.elapsed());
        }
        envoy.proc.check_alive("envoy")?;
        if let Some(ep) = ep.as_deref_mut() {
            ep.proc.check_alive("edgeplane serve")?;
        }
        if t0.elapsed() > SERVE_WITHIN {
            bail!(
                "envoy did not serve {host}{path} within {SERVE_WITHIN:?}; envoy log tail:\n{}",
                envoy.proc.log_tail()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Polls edgeplane's `/readyz` until 200; the time since `t0` (`None` at
/// the deadline).
async fn wait_ready(admin_port: u16, t0: Instant) -> Option<Duration> {
    loop {
        if http_get(admin_port, "127.0.0.1", "/readyz")
            .await
            .is_some_and(|(s, _)| s == 200)
        {
            return Some(t0.elapsed());
        }
        if t0.elapsed() > SERVE_WITHIN {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

fn rss(pid: Option<u32>) -> u64 {
    pid.and_then(procs::rss_kib).unwrap_or(0)
}

/// edgeplane's `/status` `lastLoad`.
async fn last_load_json(ep: &Edgeplane) -> Option<serde_json::Value> {
    let v = ep.status().await.ok()?;
    v.get("lastLoad").filter(|l| !l.is_null()).cloned()
}

/// `lastLoad.durationMs` as a duration.
fn load_duration(l: &serde_json::Value) -> Option<Duration> {
    Some(Duration::from_secs_f64(l["durationMs"].as_f64()? / 1000.0))
}

/// edgeplane's `/status` `lastLoad.durationMs`.
async fn last_load(ep: &Edgeplane) -> Option<Duration> {
    load_duration(&last_load_json(ep).await?)
}

/// What a load did, from its `lastLoad`: its read and build times and the
/// work counted (the fields edgeplane reports; those absent are left out).
fn describe_load(l: &serde_json::Value) -> String {
    let mut parts = Vec::new();
    for (key, what) in [("readMs", "read"), ("buildMs", "build")] {
        if let Some(v) = l[key].as_f64() {
            parts.push(format!("{what}: {v:.1} ms"));
        }
    }
    for (key, what) in [
        ("filesRead", "files read"),
        ("filesParsed", "files parsed"),
        ("routesReused", "routes' parses reused"),
        ("envoyRoutesEncoded", "Envoy routes encoded"),
        ("envoyRoutesReused", "Envoy routes reused"),
    ] {
        if let Some(v) = l[key].as_u64() {
            parts.push(format!("{what}: {}", thousands(v as usize)));
        }
    }
    parts.join(", ")
}

async fn measure(
    ctx: &Ctx,
    backend: &Backend,
    size: Size,
    per_vs: usize,
    edits: usize,
) -> Result<Outcome> {
    let base = ctx
        .work
        .join(format!("scale-{}-{}", size.routes, per_vs.min(size.routes)));
    let manifests = base.join("manifests");
    let staging = base.join("staging");
    let rds_dir = base.join("rds");
    for d in [&manifests, &staging, &rds_dir] {
        std::fs::create_dir_all(d).with_context(|| format!("mkdir {}", d.display()))?;
    }
    // Envoy binds the Gateway's port only once its clusters are in: ports
    // below the ephemeral range, so no client connection takes them first.
    let ports = listen_ports(2)?;
    let shape = Shape {
        routes: size.routes,
        upstreams: size.upstreams,
        port: ports[0],
        backend_port: backend.port,
        per_vs,
    };
    let files = r#gen::manifests(shape);
    let manifest_bytes = files.iter().map(|(_, t)| t.len()).sum();
    let nfiles = files.len();
    write_all(&manifests, &files)?;
    drop(files);

    // edgeplane's reader on the directory (what `serve` reads), then the
    // baseline's files from the same pipeline, before any clock.
    let dir = manifests.clone();
    let prepared = tokio::task::spawn_blocking(move || -> Result<Result<Prepared, String>> {
        let load = edgeplane::pipeline::load_dir(&dir);
        if load.has_errors() {
            return Ok(Err(load.render_diagnostics()));
        }
        let (listeners, clusters, rc0) = latency::proxy_protos(load)?;
        let mut responses = Vec::with_capacity(edits);
        for k in 0..edits {
            let (_, _, rc) = latency::pipeline_output(r#gen::source_files(shape, Some(k)))?;
            responses.push(discovery_response(&format!("edit-{k}"), &rc));
        }
        Ok(Ok(Prepared {
            listeners,
            clusters,
            rc_bytes: rc0.encoded_len(),
            initial: discovery_response("initial", &rc0),
            responses,
        }))
    })
    .await
    .context("prepare the baseline")??;
    let p = match prepared {
        Ok(p) => p,
        // Paths relative to the manifests directory (no machine path in the
        // report).
        Err(diags) => {
            let dir = format!("{}/", manifests.display());
            return Ok(Outcome::Refused(diags.replace(&dir, "")));
        }
    };
    let (host, path) = last_route(shape);

    // edgeplane and its Envoy, from nothing.
    let t0 = Instant::now();
    let mut ep = Edgeplane::start(ctx, &manifests, &base).await?;
    let ready = tokio::spawn(wait_ready(ep.admin_port, t0));
    let envoy_started = t0.elapsed();
    let mut envoy = Envoy::start_for(ctx, ep.xds_port, "bench-scale", &base, "edgeplane").await?;
    let served = wait_probe(&mut envoy, Some(&mut ep), shape.port, &host, &path, t0)
        .await
        .context("Envoy fed by edgeplane")?;
    let (cpu_ep, cpu_envoy) = (ep.proc.cpu(), envoy.proc.cpu());
    let ready = ready.await.ok().flatten();
    let (ep_rss, ep_hwm) = (
        rss(ep.proc.pid()),
        ep.proc.pid().and_then(procs::hwm_kib).unwrap_or(0),
    );
    let envoy_rss = rss(envoy.proc.pid());
    let stats = envoy_stats(envoy.admin_port).await?;
    let first_load = if ep.loads().await? == 1 {
        last_load(&ep).await
    } else {
        None
    };
    let boot_text = std::fs::read_to_string(base.join("envoy-edgeplane.yaml"))
        .context("read the Envoy bootstrap")?;
    let envoy_grpc_limit = boot_text
        .lines()
        .find_map(|l| l.trim().strip_prefix("max_receive_message_length:"))
        .map(|v| v.trim().to_string());

    // The baseline: Envoy alone, the same configuration from files.
    let file_port = ports[1];
    let rds_file = rds_dir.join("rds.pb");
    std::fs::write(&rds_file, &p.initial)
        .with_context(|| format!("write {}", rds_file.display()))?;
    let boot_pb = base.join("envoy-file.pb");
    std::fs::write(
        &boot_pb,
        baseline_bootstrap(&p.listeners, &p.clusters, file_port, &rds_file, &rds_dir)?,
    )
    .with_context(|| format!("write {}", boot_pb.display()))?;
    let t1 = Instant::now();
    let mut file_envoy = Envoy::start(ctx, &boot_pb, &base, "file").await?;
    let file_served = wait_probe(&mut file_envoy, None, file_port, &host, &path, t1)
        .await
        .context("Envoy with a filesystem RDS subscription")?;
    let file_cpu = file_envoy.proc.cpu();
    let file_rss = rss(file_envoy.proc.pid());

    // Edits, alternating sides as in `latency`.
    let h0 = r#gen::vs_domain(0);
    let mut ep_probe = Probe::new(shape.port, &h0);
    let mut file_probe = Probe::new(file_port, &h0);
    let (mut ep_s, mut file_s, mut reload) = (Vec::new(), Vec::new(), Vec::new());
    let (mut ep_lost, mut file_lost) = (0, 0);
    let mut last_reload = None;
    for (k, response) in p.responses.iter().enumerate() {
        let (name, content, probe_path) = r#gen::probe_edit(shape, k);
        for side in [k % 2 == 0, k % 2 == 1] {
            if side {
                let s = sample(&mut ep_probe, &probe_path, SAMPLE_DEADLINE, || {
                    write_atomic(&staging, &manifests, &name, content.as_bytes())
                })
                .await
                .context("edgeplane sample")?;
                match s {
                    Some(d) => ep_s.push(d),
                    None => ep_lost += 1,
                }
                if let Some(l) = last_load_json(&ep).await {
                    reload.extend(load_duration(&l));
                    last_reload = Some(describe_load(&l));
                }
            } else {
                let s = sample(&mut file_probe, &probe_path, SAMPLE_DEADLINE, || {
                    write_atomic(&staging, &rds_dir, "rds.pb", response)
                })
                .await
                .context("file reload sample")?;
                match s {
                    Some(d) => file_s.push(d),
                    None => file_lost += 1,
                }
            }
        }
        envoy.proc.check_alive("envoy (edgeplane)")?;
        file_envoy.proc.check_alive("envoy (file)")?;
        ep.proc.check_alive("edgeplane serve")?;
    }
    let stats_end = envoy_stats(envoy.admin_port).await?;
    let reloads = ep.loads().await?.saturating_sub(1);
    let ep_rss_end = rss(ep.proc.pid());
    let ep_hwm_end = ep.proc.pid().and_then(procs::hwm_kib).unwrap_or(0);
    drop((envoy, file_envoy, ep));
    let _ = std::fs::remove_dir_all(&base);
    Ok(Outcome::Measured(Box::new(Row {
        files: nfiles,
        manifest_bytes,
        clusters: p.clusters.len(),
        rc_bytes: p.rc_bytes,
        rds_bytes: p.initial.len(),
        envoy_grpc_limit,
        envoy_started,
        ready,
        first_load,
        served,
        cpu_ep,
        cpu_envoy,
        ep_rss,
        ep_hwm,
        envoy_rss,
        stats,
        file_served,
        file_cpu,
        file_rss,
        ep: ep_s,
        file: file_s,
        ep_lost,
        file_lost,
        reload,
        last_reload,
        reloads,
        ep_rss_end,
        ep_hwm_end,
        stats_end,
    })))
}

// === rendering ===

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}×", a / b)
    } else {
        "–".into()
    }
}

/// Bytes in MiB, or KiB below one MiB.
fn mib_bytes(b: usize) -> String {
    if b < 1 << 20 {
        format!("{:.1} KiB", b as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
    }
}

/// A diagnostic (or error) on one line, at most `max` characters.
fn one_line(s: &str, max: usize) -> String {
    let s: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    } else {
        s
    }
}

type Text = dyn Fn(&Row) -> String;
type Num = dyn Fn(&Row) -> Option<f64>;

fn lines(edits: usize) -> Vec<(String, Box<Text>, Option<Box<Num>>)> {
    let d = |x: Option<Duration>| x.map_or("–".into(), ms);
    let secs = |x: Option<Duration>| x.map(|d| d.as_secs_f64());
    vec![
        (
            "manifests: files / size".into(),
            Box::new(|r: &Row| format!("{} / {}", thousands(r.files), mib_bytes(r.manifest_bytes))),
            Some(Box::new(|r: &Row| Some(r.manifest_bytes as f64))),
        ),
        (
            "RouteConfiguration encoded (RDS response); Clusters".into(),
            Box::new(|r: &Row| {
                format!(
                    "{} ({}); {}",
                    mib_bytes(r.rc_bytes),
                    mib_bytes(r.rds_bytes),
                    thousands(r.clusters)
                )
            }),
            Some(Box::new(|r: &Row| Some(r.rc_bytes as f64))),
        ),
        (
            "edgeplane start → `/readyz` (first snapshot served); its first load (`/status` `lastLoad`)".into(),
            Box::new(move |r: &Row| format!("{} ({})", d(r.ready), d(r.first_load))),
            Some(Box::new(move |r: &Row| secs(r.ready))),
        ),
        (
            "**edgeplane start → Envoy serves the last route** (Envoy started once edgeplane's admin answered)".into(),
            Box::new(|r: &Row| format!("**{}** (Envoy started at {})", ms(r.served), ms(r.envoy_started))),
            Some(Box::new(|r: &Row| Some(r.served.as_secs_f64()))),
        ),
        (
            "CPU time until served: edgeplane / Envoy".into(),
            Box::new(|r: &Row| format!("{} / {}", ms(r.cpu_ep), ms(r.cpu_envoy))),
            Some(Box::new(|r: &Row| Some(r.cpu_ep.as_secs_f64()))),
        ),
        (
            "baseline: Envoy alone from files, start → serves the last route (its CPU time); edgeplane + Envoy / it".into(),
            Box::new(|r: &Row| {
                format!(
                    "{} ({}); {}",
                    ms(r.file_served),
                    ms(r.file_cpu),
                    ratio(r.served.as_secs_f64(), r.file_served.as_secs_f64())
                )
            }),
            Some(Box::new(|r: &Row| Some(r.file_served.as_secs_f64()))),
        ),
        (
            "**edgeplane VmRSS once served (VmHWM, peak)**".into(),
            Box::new(|r: &Row| format!("**{}** ({})", mib(r.ep_rss), mib(r.ep_hwm))),
            Some(Box::new(|r: &Row| Some(r.ep_hwm as f64))),
        ),
        (
            format!("edgeplane VmRSS after the {edits} edits (VmHWM)"),
            Box::new(|r: &Row| format!("{} ({})", mib(r.ep_rss_end), mib(r.ep_hwm_end))),
            Some(Box::new(|r: &Row| Some(r.ep_hwm_end as f64))),
        ),
        (
            "Envoy VmRSS once served: fed by edgeplane / from files".into(),
            Box::new(|r: &Row| format!("{} / {}", mib(r.envoy_rss), mib(r.file_rss))),
            Some(Box::new(|r: &Row| Some(r.envoy_rss as f64))),
        ),
        (
            "Envoy fed by edgeplane once served, `/stats` update_success / update_rejected".into(),
            Box::new(|r: &Row| r.stats.show()),
            None,
        ),
        (
            format!("**edit save → served, p50 (max) of {edits}**"),
            Box::new(move |r: &Row| {
                let lost = if r.ep_lost > 0 {
                    format!(", {} lost after {:?}", r.ep_lost, SAMPLE_DEADLINE)
                } else {
                    String::new()
                };
                format!("**{}** ({}{lost})", d(Row::p50(&r.ep)), d(Row::max(&r.ep)))
            }),
            Some(Box::new(move |r: &Row| secs(Row::p50(&r.ep)))),
        ),
        (
            "baseline: Envoy's own file reload of the same RouteConfiguration, p50 (max); edgeplane / it".into(),
            Box::new(move |r: &Row| {
                let lost = if r.file_lost > 0 {
                    format!(", {} lost", r.file_lost)
                } else {
                    String::new()
                };
                let q = match (Row::p50(&r.ep), Row::p50(&r.file)) {
                    (Some(a), Some(b)) => ratio(a.as_secs_f64(), b.as_secs_f64()),
                    _ => "–".into(),
                };
                format!("{} ({}{lost}); {q}", d(Row::p50(&r.file)), d(Row::max(&r.file)))
            }),
            Some(Box::new(move |r: &Row| secs(Row::p50(&r.file)))),
        ),
        (
            "edgeplane's reload per edit, p50 (`/status` `lastLoad`); reloads counted".into(),
            Box::new(move |r: &Row| format!("{}; {}", d(Row::p50(&r.reload)), r.reloads)),
            Some(Box::new(move |r: &Row| secs(Row::p50(&r.reload)))),
        ),
        (
            "Envoy fed by edgeplane after the edits, `/stats`".into(),
            Box::new(|r: &Row| r.stats_end.show()),
            None,
        ),
    ]
}

fn render(results: &[(usize, Vec<(Size, Outcome)>)], edits: usize, load: Option<f64>) -> String {
    let mut s = format!(
        "**Method.** Generated manifests (`gen.rs`): one Gateway, one Upstream file, and the routes in one of two layouts, VirtualServices of {} routes (one file each) or one VirtualService holding every route; every Upstream a static host on the demo echo backend. At each size the manifests are first read by edgeplane's own reader and pipeline (`pipeline::load_dir`, what `serve` runs; a refusal is reported with its diagnostics). Then, from nothing: `edgeplane serve` (release build, `RUST_LOG=warn`, default flags) on the directory and, as soon as its admin answers `/healthz`, an Envoy bootstrapped by `edgeplane bootstrap` (`--concurrency 1`); the clock runs from edgeplane's start until a keep-alive probe (`GET` the last route of the last VirtualService, one request per {} ms) answers 200 through Envoy, while edgeplane's `/readyz` is polled beside it (200 once its first snapshot is served). Memory from `/proc` (VmRSS, VmHWM = peak since start) once served and after the edits; CPU time from `/proc/<pid>/stat`. Envoy's acceptance from its `/stats` (`update_success` / `update_rejected` of RDS, CDS and LDS, `cluster_manager.active_clusters`). Baseline in the same run: a second Envoy with the same Listener (another port) and Clusters in `static_resources` and the RouteConfiguration edgeplane's pipeline makes, by a filesystem subscription (`latency`'s baseline), its start → the same probe answering 200. Then {edits} edits (VirtualService `vs-0` rewritten with one more route, `/probe-<k>`), alternating between the two sides as in `latency`: save (rename into the watched folder) → the new route answers 200 (probed every {} ms). Message sizes: edgeplane sends responses up to {} MiB (`xds::MAX_XDS_MESSAGE_BYTES`; `--max-request-bytes`, 4 MiB by default, bounds only what Envoy sends, its requests and ACKs); Envoy's side is the ADS gRPC service's `max_receive_message_length` in the bootstrap (below). The ratio column is the larger size's figure over the baseline size's (the first figure of each cell). Everything shares the machine's {} cores{}.\n\n",
        r#gen::ROUTES_PER_VS,
        POLL.as_millis(),
        latency::PROBE_EVERY.as_millis().max(1),
        edgeplane::xds::MAX_XDS_MESSAGE_BYTES >> 20,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load.map(|l| format!(" (1-minute load average when the section started: {l:.2})"))
            .unwrap_or_default(),
    );
    if let Some(limit) = results
        .iter()
        .flat_map(|(_, r)| r)
        .find_map(|(_, o)| match o {
            Outcome::Measured(r) => r.envoy_grpc_limit.clone(),
            _ => None,
        })
    {
        s.push_str(&format!(
            "The bootstrap sets `max_receive_message_length: {limit}` on Envoy's ADS gRPC service (`edgeplane bootstrap`), so Envoy accepts RouteConfigurations far above gRPC's customary 4 MiB.\n\n"
        ));
    }
    for (per_vs, row) in results {
        let [(small, a), (big, b)] = row.as_slice() else {
            continue;
        };
        s.push_str(&format!(
            "**{}.**\n\n| figure | {} routes / {} upstreams (baseline) | {} routes / {} upstreams | ratio |\n|---|---|---|---|\n",
            capitalized(&layout(*per_vs, big.routes)),
            thousands(small.routes),
            thousands(small.upstreams),
            thousands(big.routes),
            thousands(big.upstreams),
        ));
        let cellf = |o: &Outcome, f: &Text| match o {
            Outcome::Measured(r) => f(r),
            Outcome::Refused(_) => "refused".into(),
            Outcome::Failed(_) => "failed".into(),
        };
        for (label, text, value) in lines(edits) {
            let q = match (&value, a, b) {
                (Some(v), Outcome::Measured(x), Outcome::Measured(y)) => match (v(x), v(y)) {
                    (Some(x), Some(y)) => ratio(y, x),
                    _ => "–".into(),
                },
                _ => "–".into(),
            };
            s.push_str(&format!(
                "| {label} | {} | {} | {q} |\n",
                cellf(a, text.as_ref()),
                cellf(b, text.as_ref())
            ));
        }
        for (size, o) in [(small, a), (big, b)] {
            match o {
                Outcome::Refused(d) => s.push_str(&format!(
                    "\n{} routes: **refused** by edgeplane's reader: `{}`\n",
                    thousands(size.routes),
                    one_line(d, 600).replace('`', "'")
                )),
                Outcome::Failed(e) => s.push_str(&format!(
                    "\n{} routes: **failed**: {}\n",
                    thousands(size.routes),
                    one_line(e, 600)
                )),
                Outcome::Measured(_) => {}
            }
        }
        s.push('\n');
    }
    s.push_str(&targets(results));
    s
}

fn targets(results: &[(usize, Vec<(Size, Outcome)>)]) -> String {
    let mut s = format!(
        "**Target** (issue 17): {} routes / {} upstreams served to a real Envoy by one edgeplane.\n\n",
        thousands(TARGET_ROUTES),
        thousands(TARGET_UPSTREAMS)
    );
    for (per_vs, row) in results {
        let Some((big, o)) = row.last() else {
            continue;
        };
        let base = row.first().and_then(|(sz, o)| match o {
            Outcome::Measured(r) => Some((sz, r.as_ref())),
            _ => None,
        });
        let what = format!(
            "{} routes / {} upstreams, {}",
            thousands(big.routes),
            thousands(big.upstreams),
            layout(*per_vs, big.routes)
        );
        match o {
            Outcome::Measured(r) => {
                let accepted = r.stats.rejected() == 0 && r.stats_end.rejected() == 0;
                let verdict = if big.routes < TARGET_ROUTES {
                    "not the target's size (quick mode)"
                } else if accepted {
                    "**met**"
                } else {
                    "**missed**"
                };
                s.push_str(&format!(
                    "- {what}: {verdict}: Envoy served the last route {} after edgeplane's start and {} (no rejection: {}). {}\n",
                    ms(r.served),
                    if accepted {
                        "accepted every update"
                    } else {
                        "**rejected** some"
                    },
                    r.stats_end.show(),
                    why(r, base),
                ));
            }
            Outcome::Refused(d) => s.push_str(&format!(
                "- {what}: **not served**: edgeplane's reader refuses the manifests before any translation: `{}`.{}\n",
                one_line(d, 400).replace('`', "'"),
                if d.contains(&edgeplane::source::fs::MAX_FILE_BYTES.to_string()) {
                    format!(
                        " The one VirtualService file is over edgeplane's per-manifest limit (`source::fs::MAX_FILE_BYTES`, {} MiB), which `serve` has no flag to raise; this layout is served only up to that file size (the {} layout above).",
                        edgeplane::source::fs::MAX_FILE_BYTES >> 20,
                        row.first().map_or(String::new(), |(sz, _)| format!("{}-route", thousands(sz.routes)))
                    )
                } else {
                    String::new()
                }
            )),
            Outcome::Failed(e) => s.push_str(&format!(
                "- {what}: **missed**: the run failed: {}\n",
                one_line(e, 400)
            )),
        }
    }
    s
}

/// Where the time went, from the measurements.
fn why(r: &Row, base: Option<(&Size, &Row)>) -> String {
    let mut w = String::from("Where the time goes: ");
    match (r.ready, r.first_load) {
        (Some(ready), Some(load)) => w.push_str(&format!(
            "edgeplane's first load (read, parse, validate, translate, encode) took {} of the {} until `/readyz`; Envoy then took {} more to serve the routes, using {} of CPU over the whole start (Envoy alone from files: {} to serve, {} CPU), ",
            ms(load),
            ms(ready),
            ms(r.served.saturating_sub(ready)),
            ms(r.cpu_envoy),
            ms(r.file_served),
            ms(r.file_cpu)
        )),
        _ => w.push_str(&format!(
            "edgeplane used {} of CPU and Envoy {} until served (Envoy alone from files: {} to serve), ",
            ms(r.cpu_ep),
            ms(r.cpu_envoy),
            ms(r.file_served)
        )),
    }
    if let (Some(e), Some(f)) = (Row::p50(&r.ep), Row::p50(&r.file)) {
        let reload = Row::p50(&r.reload).unwrap_or_default();
        w.push_str(&format!(
            "and a one-route edit is served in {} (p50), of which edgeplane's reload is {}{} and Envoy's own reload of the same {} RouteConfiguration from a file takes {}; the remaining {} is the event's delivery (the reload starts at the save), the push of the whole RouteConfiguration over ADS (against a local file read) and scheduling on the shared cores",
            ms(e),
            ms(reload),
            r.last_reload
                .as_ref()
                .map(|d| format!(" (the last one, from `/status` `lastLoad`: {d})"))
                .unwrap_or_default(),
            mib_bytes(r.rc_bytes),
            ms(f),
            ms(e.saturating_sub(reload).saturating_sub(f)),
        ));
    }
    if let Some((sz, b)) = base
        && let (Some(e), Some(eb)) = (Row::p50(&r.ep), Row::p50(&b.ep))
    {
        w.push_str(&format!(
            ". Against {} routes: served {} vs {} ({}), edit {} vs {} ({}), edgeplane's peak memory {} vs {} ({})",
            thousands(sz.routes),
            ms(r.served),
            ms(b.served),
            ratio(r.served.as_secs_f64(), b.served.as_secs_f64()),
            ms(e),
            ms(eb),
            ratio(e.as_secs_f64(), eb.as_secs_f64()),
            mib(r.ep_hwm_end.max(r.ep_hwm)),
            mib(b.ep_hwm_end.max(b.ep_hwm)),
            ratio(
                r.ep_hwm_end.max(r.ep_hwm) as f64,
                b.ep_hwm_end.max(b.ep_hwm) as f64
            ),
        ));
    }
    w.push('.');
    w
}
