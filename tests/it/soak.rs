//! Edits under load: 100 live WebSockets through Envoy, each
//! echoing every 100 ms, and at least 500 HTTP requests/s over keep-alive
//! connections, while edits mixed across VirtualServices, RouteTables and
//! Upstreams (endpoints included) are applied one after another, each
//! waited for until edgeplane serves it. Result: no WebSocket closed, every
//! echo answered, no failed or non-2xx request, Envoy's listener never
//! modified.
//!
//! `soak` runs the short plan in CI (200 edits); with `EDGEPLANE_SOAK=long`
//! it is the documented long run (`scripts/soak`: 1,000 edits, release
//! build, both ADS variants, figures into `bench/SOAK.md`); the
//! `EDGEPLANE_SOAK_*` variables below change its size, and
//! `EDGEPLANE_SOAK_OUT=FILE` writes its figures as Markdown.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::load::{Load, LoadReport, LoadSpec};
use crate::support::*;
use anyhow::{Context, Result, bail, ensure};

/// How long one edit may take to be served before the run fails.
const EDIT_DEADLINE: Duration = Duration::from_secs(10);
const WITHIN: Duration = Duration::from_secs(30);
/// The floor for the HTTP load.
const MIN_HTTP_RATE: f64 = 500.0;

#[derive(Clone, Debug)]
struct Plan {
    edits: usize,
    ws_clients: usize,
    http_rate: f64,
    http_conns: usize,
    /// The load runs at least this long (edits permitting, longer).
    min_duration: Duration,
    /// After an edit is served, the load runs this long before the next.
    edit_gap: Duration,
}

impl Plan {
    /// The CI run: about 10 s per ADS variant.
    fn short() -> Plan {
        Plan {
            edits: 200,
            ws_clients: 100,
            http_rate: 600.0,
            http_conns: 4,
            min_duration: Duration::from_secs(10),
            edit_gap: Duration::ZERO,
        }
    }

    /// The long run, sized by `EDGEPLANE_SOAK_EDITS` (1000),
    /// `EDGEPLANE_SOAK_WS` (100), `EDGEPLANE_SOAK_HTTP_RATE` (600),
    /// `EDGEPLANE_SOAK_HTTP_CONNS` (4), `EDGEPLANE_SOAK_MIN_SECS` (30),
    /// `EDGEPLANE_SOAK_EDIT_GAP_MS` (100).
    fn long() -> Result<Plan> {
        fn var<T: std::str::FromStr>(name: &str, default: T) -> Result<T> {
            match std::env::var(name) {
                Ok(v) => v
                    .parse()
                    .map_err(|_| anyhow::anyhow!("{name}={v}: not a number")),
                Err(_) => Ok(default),
            }
        }
        Ok(Plan {
            edits: var("EDGEPLANE_SOAK_EDITS", 1000)?,
            ws_clients: var("EDGEPLANE_SOAK_WS", 100)?,
            http_rate: var("EDGEPLANE_SOAK_HTTP_RATE", 600.0)?,
            http_conns: var("EDGEPLANE_SOAK_HTTP_CONNS", 4)?,
            min_duration: Duration::from_secs(var("EDGEPLANE_SOAK_MIN_SECS", 30)?),
            edit_gap: Duration::from_millis(var("EDGEPLANE_SOAK_EDIT_GAP_MS", 100)?),
        })
    }
}

/// The short plan by default (CI); `EDGEPLANE_SOAK=long` runs the long one
/// (`scripts/soak`, minutes; figures in bench/SOAK.md). Either way it runs
/// and fails like any other test: nothing is skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak() -> Result<()> {
    let plan = match std::env::var("EDGEPLANE_SOAK").as_deref() {
        Ok("long") => Plan::long()?,
        Ok("short") | Err(_) => Plan::short(),
        Ok(other) => bail!("EDGEPLANE_SOAK={other}: expected `short` or `long`"),
    };
    run_soak(plan).await
}

// === the manifests and the edits ===

/// Everything an edit can change. Every field feeds exactly one file, and
/// every edit changes exactly one field, so every edit rewrites one file
/// and changes what is served.
#[derive(Clone, Debug, Default)]
struct Config {
    /// The `/ws` route's upstream: echo-a or echo-b (same backends).
    ws_on_b: bool,
    /// The `/` route's upstream (HTTP load on `/plain`).
    http_on_b: bool,
    /// rt-api's `/api/load` route's upstream (HTTP load on `/api/load`).
    api_on_b: bool,
    /// Extra `/extra-N` routes in vs-load, 0..=3.
    load_extras: usize,
    /// Extra `/api/extra-N` routes in rt-api, 0..=3.
    api_extras: usize,
    /// Routes in rt-team, 1..=4.
    team_routes: usize,
    /// Whether echo-a / echo-b also list the second backend.
    a_second: bool,
    b_second: bool,
    /// Which backend each spare upstream points at.
    spare_second: [bool; 2],
    /// The generation of each other VirtualService's route prefix.
    other_gen: [u32; 3],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    VirtualService,
    RouteTable,
    Upstream,
}

impl Config {
    fn new() -> Config {
        Config {
            team_routes: 1,
            ..Config::default()
        }
    }

    /// Edit number `i`: what changes, and of which kind it is.
    fn edit(&mut self, i: usize) -> Kind {
        let round = i / 10;
        match i % 10 {
            0 => self.ws_on_b = !self.ws_on_b,
            1 => self.api_extras = (self.api_extras + 1) % 4,
            2 => self.a_second = !self.a_second,
            3 => self.other_gen[round % 3] += 1,
            4 => self.team_routes = self.team_routes % 4 + 1,
            5 => self.load_extras = (self.load_extras + 1) % 4,
            6 => self.b_second = !self.b_second,
            7 => self.api_on_b = !self.api_on_b,
            8 => self.spare_second[round % 2] = !self.spare_second[round % 2],
            _ => self.http_on_b = !self.http_on_b,
        }
        match i % 10 {
            0 | 3 | 5 | 9 => Kind::VirtualService,
            1 | 4 | 7 => Kind::RouteTable,
            _ => Kind::Upstream,
        }
    }

    fn files(&self, port: u16, b1: u16, b2: u16) -> Vec<(String, String)> {
        let ab = |b: bool| if b { "echo-b" } else { "echo-a" };
        let (one, both) = ([b1], [b1, b2]);
        let mut f = vec![
            ("gateway.yaml".to_string(), gateway(port, "")),
            (
                "up-echo-a.yaml".into(),
                upstream("echo-a", if self.a_second { &both } else { &one }),
            ),
            (
                "up-echo-b.yaml".into(),
                upstream("echo-b", if self.b_second { &both } else { &one }),
            ),
        ];
        for (i, second) in self.spare_second.iter().enumerate() {
            f.push((
                format!("up-spare-{i}.yaml"),
                upstream(&format!("spare-{i}"), &[if *second { b2 } else { b1 }]),
            ));
        }
        // The VirtualService the load goes through. Extra routes come first
        // and never match the load's paths.
        let mut routes = String::new();
        for k in 0..self.load_extras {
            routes.push_str(&single(&format!("/extra-{k}"), &format!("spare-{}", k % 2)));
        }
        routes.push_str(&single("/ws", ab(self.ws_on_b)));
        routes.push_str(&delegate("/api", "rt-api"));
        routes.push_str(&single("/", ab(self.http_on_b)));
        f.push(("vs-load.yaml".into(), vs("vs-load", "'*'", &routes)));
        let mut api = String::new();
        for k in 0..self.api_extras {
            api.push_str(&single(
                &format!("/api/extra-{k}"),
                &format!("spare-{}", k % 2),
            ));
        }
        api.push_str(&single("/api/load", ab(self.api_on_b)));
        f.push(("rt-api.yaml".into(), route_table("rt-api", &api)));
        // Other teams' VirtualServices and a RouteTable: no load, but the
        // same RouteConfiguration.
        for (i, generation) in self.other_gen.iter().enumerate() {
            let mut routes = single(&format!("/svc-{generation}"), &format!("spare-{}", i % 2));
            if i == 0 {
                routes.push_str(&delegate("/team", "rt-team"));
            }
            f.push((
                format!("vs-other-{i}.yaml"),
                vs(
                    &format!("vs-other-{i}"),
                    &format!("other-{i}.example.com"),
                    &routes,
                ),
            ));
        }
        let mut team = String::new();
        for k in 0..self.team_routes {
            team.push_str(&single(&format!("/team/r{k}"), &format!("spare-{}", k % 2)));
        }
        f.push(("rt-team.yaml".into(), route_table("rt-team", &team)));
        f
    }
}

fn single(prefix: &str, upstream: &str) -> String {
    format!(
        "    - matchers: [{{prefix: {prefix}}}]\n      routeAction: {{single: {{upstream: {{name: {upstream}, namespace: gloo-system}}}}}}\n"
    )
}

fn delegate(prefix: &str, table: &str) -> String {
    format!(
        "    - matchers: [{{prefix: {prefix}}}]\n      delegateAction: {{ref: {{name: {table}, namespace: gloo-system}}}}\n"
    )
}

fn vs(name: &str, domain: &str, routes: &str) -> String {
    format!(
        "apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata: {{name: {name}, namespace: gloo-system}}\nspec:\n  virtualHost:\n    domains: [{domain}]\n    routes:\n{routes}"
    )
}

fn route_table(name: &str, routes: &str) -> String {
    // RouteTable routes sit one level less deep than a VirtualService's.
    let routes: String = routes
        .lines()
        .map(|l| format!("{}\n", l.strip_prefix("  ").unwrap_or(l)))
        .collect();
    format!(
        "apiVersion: gateway.solo.io/v1\nkind: RouteTable\nmetadata: {{name: {name}, namespace: gloo-system}}\nspec:\n  routes:\n{routes}"
    )
}

// === edgeplane and Envoy observables ===

/// The per-proxy versions edgeplane serves, and its load count.
async fn served(admin_port: u16) -> Result<(String, u64)> {
    let s = admin_status(admin_port).await?;
    Ok((s["proxies"].to_string(), s["loads"].as_u64().unwrap_or(0)))
}

async fn stat(envoy: &Envoy, name: &str) -> u64 {
    envoy.stat(name).await.unwrap_or(0)
}

/// Envoy counters read before and after the edits.
#[derive(Debug, Default)]
struct EnvoyCounts {
    listener_modified: u64,
    lds_updates: u64,
    cds_updates: u64,
    rds_updates: u64,
    cluster_modified: u64,
    rejected: u64,
}

impl EnvoyCounts {
    async fn read(envoy: &Envoy, route_name: &str) -> EnvoyCounts {
        let rds = format!("http.http.rds.{route_name}.");
        EnvoyCounts {
            listener_modified: stat(envoy, "listener_manager.listener_modified").await,
            lds_updates: stat(envoy, "listener_manager.lds.update_success").await,
            cds_updates: stat(envoy, "cluster_manager.cds.update_success").await,
            rds_updates: stat(envoy, &format!("{rds}update_success")).await,
            cluster_modified: stat(envoy, "cluster_manager.cluster_modified").await,
            rejected: stat(envoy, "listener_manager.lds.update_rejected").await
                + stat(envoy, "cluster_manager.cds.update_rejected").await
                + stat(envoy, &format!("{rds}update_rejected")).await,
        }
    }
}

// === the run ===

struct Outcome {
    plan: Plan,
    mode: &'static str,
    edits: usize,
    by_kind: [usize; 3],
    edits_took: Duration,
    edit_p50: Duration,
    edit_p99: Duration,
    before: EnvoyCounts,
    after: EnvoyCounts,
    load: LoadReport,
}

async fn run_soak(plan: Plan) -> Result<()> {
    let mode = xds_mode();
    let port = free_port();
    let b1 = Backend::start("echo-1").await;
    let b2 = Backend::start("echo-2").await;
    let mut config = Config::new();
    let files = config.files(port, b1.port, b2.port);
    let refs: Vec<(&str, String)> = files.iter().map(|(n, c)| (n.as_str(), c.clone())).collect();
    // `Stack` checks that Envoy talks this run's ADS variant.
    let s = Stack::start(port, b1, &refs).await;
    s.envoy.wait_serving(port, "/plain/ready").await;
    s.envoy.wait_serving(port, "/api/load/ready").await;
    let route_name = s.route_name();

    let load = Load::start(LoadSpec {
        port,
        ws_clients: plan.ws_clients,
        ws_path: "/ws".into(),
        ws_period: Duration::from_millis(100),
        http_conns: plan.http_conns,
        http_rate: plan.http_rate,
        http_paths: vec!["/plain".into(), "/api/load".into()],
    })
    .await?;
    load.warm_up(100, WITHIN).await?;
    let before = EnvoyCounts::read(&s.envoy, &route_name).await;

    // Edits, one at a time: each is written atomically, then waited for
    // until edgeplane serves new versions.
    let started = Instant::now();
    let mut by_kind = [0usize; 3];
    let mut took = Vec::with_capacity(plan.edits);
    let mut current = files;
    for i in 0..plan.edits {
        let kind = config.edit(i);
        by_kind[kind as usize] += 1;
        let next = config.files(port, s.backend.port, b2.port);
        let changed: Vec<&(String, String)> =
            next.iter().filter(|f| !current.contains(f)).collect();
        ensure!(
            changed.len() == 1,
            "edit {i} changes {} files",
            changed.len()
        );
        let (before_versions, before_loads) = served(s.cp.admin_port).await?;
        let t = Instant::now();
        write_atomic(&s.dir, &changed[0].0, &changed[0].1);
        loop {
            let (v, loads) = served(s.cp.admin_port).await?;
            if v != before_versions && loads > before_loads {
                break;
            }
            if t.elapsed() > EDIT_DEADLINE {
                bail!(
                    "edit {i} ({kind:?}, {}) not served after {EDIT_DEADLINE:?}\n{}",
                    changed[0].0,
                    s.cp.log_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        took.push(t.elapsed());
        current = next;
        load.run_until(Instant::now() + plan.edit_gap).await;
    }
    let edits_took = started.elapsed();

    // Envoy catches up with the last edit, the load runs its minimum.
    let admin = s.cp.admin_port;
    poll(
        "Envoy to ACK the last edit",
        WITHIN,
        Duration::from_millis(10),
        || async {
            let st = admin_status(admin).await.ok()?;
            node_synced(&st, "test-node").then_some(())
        },
    )
    .await?;
    load.run_until(started + plan.min_duration).await;
    let after = EnvoyCounts::read(&s.envoy, &route_name).await;
    let upgrades = s
        .envoy
        .stat("http.http.downstream_cx_upgrades_active")
        .await;
    let report = load.stop().await?;
    // The final config really is in Envoy, and serves.
    let (code, body) = http_get(port, "/api/load/final")
        .await
        .context("GET after the soak")?;
    ensure!(
        code == 200 && body.ends_with(" GET /api/load/final\n"),
        "{code} {body}"
    );

    took.sort();
    let pick = |p: f64| {
        took.get(((took.len().saturating_sub(1)) as f64 * p).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    let outcome = Outcome {
        edit_p50: pick(0.5),
        edit_p99: pick(0.99),
        plan: plan.clone(),
        mode,
        edits: plan.edits,
        by_kind,
        edits_took,
        before,
        after,
        load: report,
    };
    let text = outcome.markdown();
    println!("{text}");
    if let Ok(path) = std::env::var("EDGEPLANE_SOAK_OUT") {
        std::fs::write(Path::new(&path), &text).with_context(|| format!("write {path}"))?;
    }

    let r = &outcome.load;
    let failures = r.failures();
    ensure!(
        failures.is_empty(),
        "traffic was lost: {}",
        failures.join("; ")
    );
    ensure!(
        r.echoes_answered >= plan.ws_clients as u64,
        "no echoes: {}",
        r.summary()
    );
    ensure!(
        r.http_rate() >= MIN_HTTP_RATE.min(plan.http_rate * 0.95),
        "HTTP load reached {:.0}/s only",
        r.http_rate()
    );
    ensure!(
        upgrades == Some(plan.ws_clients as u64),
        "Envoy holds {upgrades:?} upgraded connections, want {}",
        plan.ws_clients
    );
    let (b, a) = (&outcome.before, &outcome.after);
    ensure!(
        a.listener_modified == b.listener_modified && a.lds_updates == b.lds_updates,
        "the listener changed: {b:?} → {a:?}"
    );
    ensure!(a.rejected == b.rejected, "Envoy rejected updates: {a:?}");
    ensure!(
        a.cds_updates > b.cds_updates && a.rds_updates > b.rds_updates,
        "edits never reached Envoy: {b:?} → {a:?}"
    );
    Ok(())
}

impl Outcome {
    fn markdown(&self) -> String {
        let r = &self.load;
        let (b, a) = (&self.before, &self.after);
        let mode = match self.mode {
            "delta" => "incremental (delta) ADS, `EDGEPLANE_TEST_XDS=delta`",
            _ => "state of the world ADS, `EDGEPLANE_TEST_XDS=sotw`",
        };
        let mut t = String::new();
        let _ = writeln!(t, "### {mode}\n");
        let _ = writeln!(t, "| figure | value |\n|---|---|");
        let mut row = |k: &str, v: String| {
            let _ = writeln!(t, "| {k} | {v} |");
        };
        let p = &self.plan;
        row(
            "plan",
            format!(
                "{} edits ({} ms apart once served), {} WebSockets, {:.0} HTTP requests/s over {} connections, at least {} s of load",
                p.edits,
                p.edit_gap.as_millis(),
                p.ws_clients,
                p.http_rate,
                p.http_conns,
                p.min_duration.as_secs()
            ),
        );
        row(
            "load duration",
            format!("{:.1} s", r.duration.as_secs_f64()),
        );
        row(
            "edits applied",
            format!(
                "{} (VirtualService {}, RouteTable {}, Upstream {}) in {:.1} s: {:.1} edits/s, each waited for until served (p50 {:.1} ms, p99 {:.1} ms from write to new versions in /status)",
                self.edits,
                self.by_kind[0],
                self.by_kind[1],
                self.by_kind[2],
                self.edits_took.as_secs_f64(),
                self.edits as f64 / self.edits_took.as_secs_f64().max(1e-9),
                self.edit_p50.as_secs_f64() * 1000.0,
                self.edit_p99.as_secs_f64() * 1000.0,
            ),
        );
        row(
            "Envoy updates accepted",
            format!(
                "CDS {}, RDS {}, LDS {}; clusters modified {}; rejected {}",
                a.cds_updates - b.cds_updates,
                a.rds_updates - b.rds_updates,
                a.lds_updates - b.lds_updates,
                a.cluster_modified - b.cluster_modified,
                a.rejected - b.rejected,
            ),
        );
        row(
            "listener modified",
            format!("{} times", a.listener_modified - b.listener_modified),
        );
        row(
            "WebSockets",
            format!(
                "{}, one echo every {} ms each",
                r.ws_clients,
                r.ws_period.as_millis()
            ),
        );
        row(
            "echoes sent / answered",
            format!("{} / {}", r.echoes_sent, r.echoes_answered),
        );
        row(
            "WebSocket closes / errors / echo timeouts / wrong echoes",
            format!(
                "{} / {} / {} / {}",
                r.ws_closed, r.ws_errors, r.echo_timeouts, r.echo_mismatches
            ),
        );
        row(
            "echo round trip p50 / p99 / max",
            p50_p99_max(r.echo_p50_us, r.echo_p99_us, r.echo_max_us),
        );
        row(
            "HTTP load",
            format!(
                "{} keep-alive connections, target {:.0}/s, achieved {:.0}/s",
                r.http_conns,
                r.http_target_rate,
                r.http_rate()
            ),
        );
        row(
            "HTTP requests / 2xx / non-2xx / failed",
            format!(
                "{} / {} / {} / {}",
                r.http_requests, r.http_ok, r.http_non2xx, r.http_failed
            ),
        );
        row(
            "keep-alive connections closed by Envoy",
            r.http_conn_closed.to_string(),
        );
        row(
            "HTTP latency p50 / p99 / max",
            p50_p99_max(r.http_p50_us, r.http_p99_us, r.http_max_us),
        );
        t
    }
}

/// Latencies in µs as `p50 / p99 / max ms`.
fn p50_p99_max(p50: u32, p99: u32, max: u32) -> String {
    use crate::support::load::ms;
    format!("{:.2} / {:.2} / {:.2} ms", ms(p50), ms(p99), ms(max))
}
