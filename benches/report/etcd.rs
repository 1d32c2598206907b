//! Section `etcd`: edgeplane's etcd source (`serve --etcd-endpoints`)
//! against its directory source (`serve --config-dir`) in the same run, on
//! a real 3-member etcd cluster on loopback (Debian's `etcd`: `ETCD_BIN`,
//! else the PATH) and real Envoys.
//!
//! - apply → served: each edit rewrites one VirtualService's direct-response
//!   body. etcd side: the clock starts with `edgeplane apply -f DIR`;
//!   directory side: at the rename of the file into the watched folder.
//!   Each stops when that side's Envoy answers the new body. The sides
//!   alternate edit by edit.
//! - listing: N Upstreams (plus a Gateway and a VirtualService using one)
//!   as etcd keys, put in transactions of at most `TXN_OPS` operations,
//!   against the same documents as files: the read itself (edgeplane's
//!   library), and `serve` start → `/readyz` 200 → its Envoy answering
//!   through the listener (Envoy takes the listener only after the N
//!   clusters).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use edgeplane::pipeline::apply::given_documents;
use edgeplane::source::SourceFile;
use edgeplane::source::etcd::{EtcdConfig, Store, accepted};
use etcd_client::{Client, ConnectOptions, GetOptions, Txn, TxnOp};

use crate::fanout::thousands;
use crate::r#gen::{self, ROUTES_PER_VS, Shape};
use crate::procs::{ms, percentile};
use crate::stack::{
    Backend, Edgeplane, Envoy, Probe, Proc, free_ports, http_get, listen_ports, spawn, write_all,
    write_atomic,
};
use crate::{Ctx, Section};

const MEMBERS: usize = 3;
/// The key roots of the two parts (`--etcd-prefix`).
const APPLY_PREFIX: &str = "bench-apply";
const LIST_PREFIX: &str = "bench-list";
/// The Host of the VirtualService whose body the edits change.
const PROBE_HOST: &str = "probe.bench";
const PROBE_FILE: &str = "probe.yaml";
/// Longest a single edit may take to be served before it counts as lost.
const SAMPLE_DEADLINE: Duration = Duration::from_secs(20);
/// Time between probe requests while waiting for an edit.
const PROBE_EVERY: Duration = Duration::from_millis(2);
/// Time between checks while a server starts.
const START_POLL: Duration = Duration::from_millis(5);
/// How long a server and its Envoy may take to start and serve.
const START_DEADLINE: Duration = Duration::from_secs(180);
/// How long one `edgeplane apply` (or `validate`) may run.
const CLI_DEADLINE: Duration = Duration::from_secs(90);
/// How long the first etcd start may take to record what it accepted.
const RECORDS_DEADLINE: Duration = Duration::from_secs(300);
/// Operations per transaction when loading etcd (its `--max-txn-ops`
/// defaults to 128).
const TXN_OPS: usize = 100;

pub async fn run(ctx: &Ctx) -> Result<Section> {
    let (routes, edits, upstreams, reps) = if ctx.quick {
        (100, 10, 1_000, 1)
    } else {
        (1_000, 50, 10_000, 3)
    };
    let base = ctx.work.join("etcd");
    std::fs::create_dir_all(&base).with_context(|| format!("mkdir {}", base.display()))?;
    let cluster = Cluster::start(&base.join("cluster"), MEMBERS).await?;
    let backend = Backend::start().await?;
    let e = apply_to_served(ctx, &cluster, &backend, &base, routes, edits)
        .await
        .context("apply → served")?;
    eprintln!(
        "etcd: apply → served p50 {} p99 {} (apply {}), directory p50 {} p99 {}",
        ms(percentile(&e.etcd, 50.0)),
        ms(percentile(&e.etcd, 99.0)),
        ms(percentile(&e.apply, 50.0)),
        ms(percentile(&e.dir, 50.0)),
        ms(percentile(&e.dir, 99.0)),
    );
    let l = listing(ctx, &cluster, &backend, &base, upstreams, reps)
        .await
        .with_context(|| format!("listing {upstreams} resources"))?;
    eprintln!(
        "etcd: {} keys: list {}, readyz {}, serving {}; directory: read {}, readyz {}, serving {}",
        l.keys,
        ms(median(&l.etcd.read)),
        ms(median(&l.etcd.ready)),
        ms(median(&l.etcd.serving)),
        ms(median(&l.dir.read)),
        ms(median(&l.dir.ready)),
        ms(median(&l.dir.serving)),
    );
    let body = render(&cluster, &e, &l);
    drop((backend, cluster));
    let _ = std::fs::remove_dir_all(&base);
    Ok(Section {
        title: format!(
            "etcd source: apply → served, and listing {} resources",
            thousands(upstreams)
        ),
        body,
    })
}

/// The `etcd` binary: `ETCD_BIN`, else `etcd` on the PATH.
fn etcd_bin() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("ETCD_BIN") {
        return Ok(PathBuf::from(p));
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("etcd"))
                .find(|p| p.is_file())
        })
        .context("etcd not found (scripts/setup --with-etcd installs Debian's etcd-server; or set ETCD_BIN)")
}

/// A real etcd cluster on loopback: members on free ports, each with its
/// own data directory, killed when dropped (their `Proc`s).
struct Cluster {
    members: Vec<Proc>,
    endpoints: Vec<String>,
    /// `etcd --version`'s version.
    version: String,
    /// The filesystem of the data directories (etcd syncs every commit).
    fs_type: String,
}

impl Cluster {
    /// Starts `n` members under `dir` and waits until each answers a
    /// linearizable read.
    async fn start(dir: &Path, n: usize) -> Result<Cluster> {
        let bin = etcd_bin()?;
        let out = Command::new(&bin)
            .arg("--version")
            .output()
            .with_context(|| format!("run {} --version", bin.display()))?;
        let version = String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("etcd Version: ").map(str::to_string))
            .unwrap_or_else(|| "unknown".into());
        std::fs::create_dir_all(dir).with_context(|| format!("mkdir {}", dir.display()))?;
        let url = |port: u16| format!("http://127.0.0.1:{port}");
        let ports: Vec<(u16, u16)> = free_ports(2 * n)?.chunks(2).map(|p| (p[0], p[1])).collect();
        let initial = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("m{i}={}", url(*peer)))
            .collect::<Vec<_>>()
            .join(",");
        let mut members = Vec::with_capacity(n);
        for (i, (client, peer)) in ports.iter().enumerate() {
            let (client, peer) = (url(*client), url(*peer));
            let mut cmd = Command::new(&bin);
            cmd.args(["--name", &format!("m{i}")])
                .arg("--data-dir")
                .arg(dir.join(format!("m{i}.data")))
                .args([
                    "--listen-client-urls",
                    &client,
                    "--advertise-client-urls",
                    &client,
                ])
                .args([
                    "--listen-peer-urls",
                    &peer,
                    "--initial-advertise-peer-urls",
                    &peer,
                ])
                .args([
                    "--initial-cluster",
                    &initial,
                    "--initial-cluster-state",
                    "new",
                ])
                .args(["--initial-cluster-token", "edgeplane-bench"])
                .args(["--logger", "zap", "--log-outputs", "stderr"])
                // Loopback: elections in well under a second.
                .args(["--heartbeat-interval", "50", "--election-timeout", "500"]);
            let log = dir.join(format!("etcd-m{i}-{}.log", ports[i].0));
            members.push(spawn(cmd, log, "etcd")?);
        }
        let mut c = Cluster {
            members,
            endpoints: ports.iter().map(|(client, _)| url(*client)).collect(),
            version,
            fs_type: fs_type(dir),
        };
        c.wait_healthy().await?;
        Ok(c)
    }

    async fn wait_healthy(&mut self) -> Result<()> {
        let end = Instant::now() + Duration::from_secs(60);
        loop {
            for (i, m) in self.members.iter_mut().enumerate() {
                m.check_alive(&format!("etcd member m{i}"))?;
            }
            let mut healthy = true;
            for e in &self.endpoints {
                let read = async {
                    let mut c = connect(std::slice::from_ref(e)).await?;
                    c.get("health-probe", None).await?;
                    anyhow::Ok(())
                };
                healthy &= read.await.is_ok();
            }
            if healthy {
                return Ok(());
            }
            if Instant::now() >= end {
                bail!(
                    "etcd did not answer on every member within 60 s; m0's log tail:\n{}",
                    self.members[0].log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// CPU time the members have used so far.
    fn cpu(&self) -> Duration {
        self.members.iter().map(Proc::cpu).sum()
    }

    /// `--etcd-endpoints`' value.
    fn endpoints_flag(&self) -> String {
        self.endpoints.join(",")
    }

    /// Puts every `(key, value)`, `TXN_OPS` to a transaction.
    async fn put_all(&self, kvs: &[(String, String)]) -> Result<()> {
        let mut c = connect(&self.endpoints).await?;
        for chunk in kvs.chunks(TXN_OPS) {
            let ops: Vec<TxnOp> = chunk
                .iter()
                .map(|(k, v)| TxnOp::put(k.as_str(), v.as_str(), None))
                .collect();
            c.txn(Txn::new().and_then(ops))
                .await
                .context("etcd put transaction")?;
        }
        Ok(())
    }

    /// Keys below `root/`.
    async fn count(&self, root: &str) -> Result<i64> {
        let mut c = connect(&self.endpoints).await?;
        let r = c
            .get(
                format!("{root}/"),
                Some(GetOptions::new().with_prefix().with_count_only()),
            )
            .await
            .with_context(|| format!("count the keys below {root}/"))?;
        Ok(r.count())
    }
}

/// Two distinct ports for the two sides' Gateways.
fn two_ports() -> Result<[u16; 2]> {
    let p = listen_ports(2)?;
    Ok([p[0], p[1]])
}

/// A client of `endpoints`, every request bounded.
async fn connect(endpoints: &[String]) -> Result<Client> {
    let opts = ConnectOptions::new()
        .with_timeout(Duration::from_secs(5))
        .with_connect_timeout(Duration::from_secs(2));
    Client::connect(endpoints, Some(opts))
        .await
        .context("connect to etcd")
}

/// The type of the filesystem holding `dir` (`/proc/mounts`, longest
/// mount point that contains it).
fn fs_type(dir: &Path) -> String {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, at, ty) = (f.next()?, f.next()?, f.next()?);
            dir.starts_with(at).then(|| (at.len(), ty.to_string()))
        })
        .max()
        .map_or_else(|| "unknown".into(), |(_, ty)| ty)
}

/// The VirtualService the edits change: `/` answers `body` directly, `/u`
/// goes to Upstream `u0`.
fn probe_vs(body: &str) -> String {
    format!(
        "apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata:\n  name: probe\n  namespace: gloo-system\nspec:\n  virtualHost:\n    domains: ['{PROBE_HOST}']\n    routes:\n    - matchers:\n      - prefix: /u\n      routeAction:\n        single:\n          upstream: {{name: u0, namespace: gloo-system}}\n    - matchers:\n      - prefix: /\n      directResponseAction:\n        status: 200\n        body: {body}\n"
    )
}

/// `serve`'s flags for the cluster under `prefix`.
fn etcd_source<'a>(endpoints: &'a str, prefix: &'a str) -> [&'a OsStr; 4] {
    [
        "--etcd-endpoints".as_ref(),
        endpoints.as_ref(),
        "--etcd-prefix".as_ref(),
        prefix.as_ref(),
    ]
}

/// Runs `edgeplane <args>` (bounded by `CLI_DEADLINE`); the instant it
/// exited. An error, with its output, unless it exits 0.
async fn edgeplane_cli(bin: PathBuf, args: Vec<String>) -> Result<Instant> {
    let run = tokio::process::Command::new(&bin)
        .args(&args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(CLI_DEADLINE, run)
        .await
        .with_context(|| format!("edgeplane {args:?} did not finish within {CLI_DEADLINE:?}"))?
        .with_context(|| format!("run edgeplane {args:?}"))?;
    let exited = Instant::now();
    ensure!(
        out.status.success(),
        "edgeplane {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(exited)
}

fn apply_args(cluster: &Cluster, prefix: &str, dir: &Path) -> Vec<String> {
    vec![
        "apply".into(),
        "-f".into(),
        dir.display().to_string(),
        "--etcd-endpoints".into(),
        cluster.endpoints_flag(),
        "--etcd-prefix".into(),
        prefix.into(),
    ]
}

/// Polls `GET /` until it answers 200 with `body`: the time since `t0`,
/// `None` once `deadline` has passed since `t0`.
async fn wait_body(
    probe: &mut Probe,
    body: &str,
    t0: Instant,
    every: Duration,
    deadline: Duration,
) -> Option<Duration> {
    loop {
        if probe
            .get("/")
            .await
            .is_some_and(|(s, b)| s == 200 && b == body.as_bytes())
        {
            return Some(t0.elapsed());
        }
        if t0.elapsed() > deadline {
            return None;
        }
        tokio::time::sleep(every).await;
    }
}

/// edgeplane's own duration of its last reload (`/status` `lastLoad`).
async fn last_reload(ep: &Edgeplane) -> Option<Duration> {
    let v = ep.status().await.ok()?;
    let d = v.pointer("/lastLoad/durationMs")?.as_f64()?;
    Some(Duration::from_secs_f64(d / 1000.0))
}

/// One side of the apply → served comparison: its server, Envoy and probe.
struct Side {
    ep: Edgeplane,
    envoy: Envoy,
    probe: Probe,
    served: Vec<Duration>,
    lost: usize,
    reload: Vec<Duration>,
}

impl Side {
    async fn start(ctx: &Ctx, ep: Edgeplane, base: &Path, name: &str, port: u16) -> Result<Side> {
        let mut envoy =
            Envoy::start_for(ctx, ep.xds_port, &format!("bench-{name}"), base, name).await?;
        envoy
            .wait_serving(port, PROBE_HOST, "/", START_DEADLINE)
            .await
            .with_context(|| format!("the Envoy of the {name} side"))?;
        Ok(Side {
            ep,
            envoy,
            probe: Probe::new(port, PROBE_HOST),
            served: Vec::new(),
            lost: 0,
            reload: Vec::new(),
        })
    }

    /// Checks this side's Envoy answers `body` now (before an edit).
    async fn expect(&mut self, body: &str) -> Result<()> {
        let now = Instant::now();
        ensure!(
            wait_body(
                &mut self.probe,
                body,
                now,
                Duration::from_millis(10),
                SAMPLE_DEADLINE
            )
            .await
            .is_some(),
            "Envoy does not answer {body:?} before the next edit"
        );
        Ok(())
    }

    /// Waits for `body` (since `t0`) and records the sample, then the
    /// server's own reload time.
    async fn record(&mut self, body: &str, t0: Instant) -> Result<()> {
        match wait_body(&mut self.probe, body, t0, PROBE_EVERY, SAMPLE_DEADLINE).await {
            Some(d) => self.served.push(d),
            None => self.lost += 1,
        }
        if let Some(d) = last_reload(&self.ep).await {
            self.reload.push(d);
        }
        self.envoy.proc.check_alive("envoy")?;
        self.ep.proc.check_alive("edgeplane serve")
    }
}

/// The apply → served figures.
struct Edits {
    routes: usize,
    edits: usize,
    /// etcd side: `apply` started → Envoy answers the new body.
    etcd: Vec<Duration>,
    /// Of that: `apply` started → its process exited.
    apply: Vec<Duration>,
    /// `edgeplane validate DIR` on the same files (outside the clock).
    validate: Vec<Duration>,
    /// One put transaction of the edited document from a connected client
    /// (outside the clock).
    txn: Vec<Duration>,
    /// Directory side: rename → Envoy answers the new body.
    dir: Vec<Duration>,
    etcd_lost: usize,
    dir_lost: usize,
    etcd_reload: Vec<Duration>,
    dir_reload: Vec<Duration>,
    /// Reloads after the initial load.
    etcd_reloads: u64,
    dir_reloads: u64,
}

impl Edits {
    fn ratio(&self, q: f64) -> f64 {
        ratio(percentile(&self.etcd, q), percentile(&self.dir, q))
    }
}

async fn apply_to_served(
    ctx: &Ctx,
    cluster: &Cluster,
    backend: &Backend,
    base: &Path,
    routes: usize,
    edits: usize,
) -> Result<Edits> {
    let shape = |port| Shape {
        routes,
        upstreams: (routes / ROUTES_PER_VS).max(1),
        port,
        backend_port: backend.port,
        per_vs: r#gen::ROUTES_PER_VS,
    };
    let files = |port, body: &str| {
        let mut f = r#gen::manifests(shape(port));
        f.push((PROBE_FILE.to_string(), probe_vs(body)));
        f
    };
    let [etcd_port, dir_port] = two_ports()?;
    let etcd_dir = base.join("apply-etcd");
    let dir_dir = base.join("apply-dir");
    let staging = base.join("apply-staging");
    write_all(&etcd_dir, &files(etcd_port, "initial"))?;
    write_all(&dir_dir, &files(dir_port, "initial"))?;
    std::fs::create_dir_all(&staging).with_context(|| format!("mkdir {}", staging.display()))?;

    // The etcd side's store, written by one apply (not timed).
    let apply = apply_args(cluster, APPLY_PREFIX, &etcd_dir);
    edgeplane_cli(ctx.edgeplane_bin.clone(), apply.clone()).await?;
    let endpoints = cluster.endpoints_flag();
    let ep = Edgeplane::start_source(ctx, &etcd_source(&endpoints, APPLY_PREFIX), base).await?;
    let mut etcd = Side::start(ctx, ep, base, "etcd", etcd_port).await?;
    let ep = Edgeplane::start(ctx, &dir_dir, base).await?;
    let mut dir = Side::start(ctx, ep, base, "dir", dir_port).await?;

    let mut apply_wall = Vec::with_capacity(edits);
    let mut validate = Vec::with_capacity(edits);
    let mut txn = Vec::with_capacity(edits);
    let mut client = connect(&cluster.endpoints).await?;
    let mut before = "initial".to_string();
    for k in 0..edits {
        let body = format!("edit-{k}");
        let content = probe_vs(&body);
        // Alternate which side goes first, so neither always follows the
        // other's work.
        for etcd_side in [k % 2 == 0, k % 2 == 1] {
            if etcd_side {
                etcd.expect(&before).await?;
                let file = etcd_dir.join(PROBE_FILE);
                std::fs::write(&file, &content)
                    .with_context(|| format!("write {}", file.display()))?;
                let t0 = Instant::now();
                let run = tokio::spawn(edgeplane_cli(ctx.edgeplane_bin.clone(), apply.clone()));
                etcd.record(&body, t0).await?;
                let exited = run.await.context("the apply task")??;
                apply_wall.push(exited - t0);
            } else {
                dir.expect(&before).await?;
                let t0 = write_atomic(&staging, &dir_dir, PROBE_FILE, content.as_bytes())?;
                dir.record(&body, t0).await?;
            }
        }
        // The parse and validation `apply` runs, without etcd (outside
        // the clock).
        let t0 = Instant::now();
        let args = vec!["validate".to_string(), etcd_dir.display().to_string()];
        validate.push(edgeplane_cli(ctx.edgeplane_bin.clone(), args).await? - t0);
        // One etcd write of the same size, without a process or a read.
        let t0 = Instant::now();
        client
            .txn(Txn::new().and_then([TxnOp::put("bench-scratch/probe", content.as_str(), None)]))
            .await
            .context("etcd put transaction")?;
        txn.push(t0.elapsed());
        before = body;
    }
    let e = Edits {
        routes,
        edits,
        etcd_reloads: etcd.ep.loads().await?.saturating_sub(1),
        dir_reloads: dir.ep.loads().await?.saturating_sub(1),
        etcd: etcd.served,
        apply: apply_wall,
        validate,
        txn,
        dir: dir.served,
        etcd_lost: etcd.lost,
        dir_lost: dir.lost,
        etcd_reload: etcd.reload,
        dir_reload: dir.reload,
    };
    ensure!(
        !e.etcd.is_empty() && !e.dir.is_empty(),
        "no edit was served (lost: etcd {}, directory {})",
        e.etcd_lost,
        e.dir_lost
    );
    Ok(e)
}

/// One source's listing figures, one entry per repetition.
#[derive(Default)]
struct Starts {
    /// Reading every document (edgeplane's library, in this process).
    read: Vec<Duration>,
    /// `serve` started → `/readyz` 200.
    ready: Vec<Duration>,
    /// `serve` started → its Envoy answers through the listener.
    serving: Vec<Duration>,
    /// Envoy's `cluster_manager.active_clusters` once serving.
    clusters: Vec<u64>,
    /// CPU time from start to ready and serving: edgeplane, its Envoy, the
    /// etcd members.
    cpu_ep: Vec<Duration>,
    cpu_envoy: Vec<Duration>,
    cpu_etcd: Vec<Duration>,
}

/// The shared accepted records the first etcd start wrote.
struct Records {
    /// Records there when the wait ended.
    count: i64,
    /// When (since the start) there were as many as documents; `None`:
    /// not within `RECORDS_DEADLINE`.
    done: Option<Duration>,
    /// CPU time from the start to the end of the wait: the etcd members,
    /// edgeplane.
    cpu_etcd: Duration,
    cpu_ep: Duration,
}

struct Listing {
    upstreams: usize,
    reps: usize,
    /// Keys (documents) stored.
    keys: usize,
    bytes: usize,
    /// Loading the store: etcd puts against writing the files.
    put: Duration,
    write_files: Duration,
    etcd: Starts,
    dir: Starts,
    records: Option<Records>,
}

async fn listing(
    ctx: &Ctx,
    cluster: &Cluster,
    backend: &Backend,
    base: &Path,
    upstreams: usize,
    reps: usize,
) -> Result<Listing> {
    let [etcd_port, dir_port] = two_ports()?;
    let docs = |port| {
        let mut files = vec![
            ("gateway.yaml".to_string(), r#gen::gateway(port)),
            (PROBE_FILE.to_string(), probe_vs("listed")),
        ];
        for u in 0..upstreams {
            let name = format!("u{u}");
            files.push((
                format!("upstreams/{name}.yaml"),
                r#gen::upstream(&name, backend.port),
            ));
        }
        files
    };
    // What `apply` would store: each document's own text under its key.
    let source: Vec<SourceFile> = docs(etcd_port)
        .into_iter()
        .map(|(name, text)| SourceFile {
            path: PathBuf::from(name),
            text,
        })
        .collect();
    let kvs: Vec<(String, String)> = given_documents(LIST_PREFIX, &source)
        .into_iter()
        .map(|g| (g.key, g.text))
        .collect();
    ensure!(
        kvs.len() == upstreams + 2,
        "{} documents, expected {}",
        kvs.len(),
        upstreams + 2
    );
    let bytes = kvs.iter().map(|(k, v)| k.len() + v.len()).sum();
    let t = Instant::now();
    cluster.put_all(&kvs).await?;
    let put = t.elapsed();
    let dir = base.join("list-dir");
    let t = Instant::now();
    std::fs::create_dir_all(dir.join("upstreams"))
        .with_context(|| format!("mkdir {}/upstreams", dir.display()))?;
    write_all(&dir, &docs(dir_port))?;
    let write_files = t.elapsed();

    let endpoints = cluster.endpoints_flag();
    let cfg = EtcdConfig {
        endpoints: cluster.endpoints.clone(),
        prefix: LIST_PREFIX.into(),
        ..Default::default()
    };
    let mut l = Listing {
        upstreams,
        reps,
        keys: kvs.len(),
        bytes,
        put,
        write_files,
        etcd: Starts::default(),
        dir: Starts::default(),
        records: None,
    };
    for rep in 0..reps {
        // The read alone, with edgeplane's library: the paged list
        // `serve` runs (connected first), against reading the directory.
        let mut store = Store::new(&cfg)?;
        store.client().await.context("connect to etcd")?;
        let t = Instant::now();
        let listed = store.list(LIST_PREFIX).await.context("list")?;
        l.etcd.read.push(t.elapsed());
        ensure!(
            listed.entries.len() == l.keys,
            "listed {} keys",
            listed.entries.len()
        );
        let d = dir.clone();
        let (read, n) = tokio::task::spawn_blocking(move || {
            let t = Instant::now();
            let (files, _) = edgeplane::source::load_dir(&d);
            (t.elapsed(), files.len())
        })
        .await
        .context("read the directory")?;
        l.dir.read.push(read);
        ensure!(n == l.keys, "read {n} files");

        for etcd_side in [rep % 2 == 0, rep % 2 == 1] {
            if etcd_side {
                let source = etcd_source(&endpoints, LIST_PREFIX);
                let etcd_cpu = cluster.cpu();
                let (ep, envoy, t0) = start_serving(
                    ctx,
                    cluster,
                    &source,
                    base,
                    "list-etcd",
                    etcd_port,
                    &mut l.etcd,
                )
                .await
                .context("etcd source")?;
                if rep == 0 {
                    let (count, done) = wait_records(cluster, l.keys, t0).await?;
                    l.records = Some(Records {
                        count,
                        done,
                        cpu_etcd: cluster.cpu().saturating_sub(etcd_cpu),
                        cpu_ep: ep.proc.cpu(),
                    });
                }
                drop((envoy, ep));
            } else {
                let source = ["--config-dir".as_ref(), dir.as_os_str()];
                start_serving(
                    ctx, cluster, &source, base, "list-dir", dir_port, &mut l.dir,
                )
                .await
                .context("directory source")?;
            }
        }
    }
    Ok(l)
}

/// Starts `serve` with `source` and, once its admin answers, an Envoy
/// for it; records start → `/readyz` 200 and start → Envoy answering
/// through its listener on `port` (polled side by side), Envoy's active
/// clusters then, and the CPU time edgeplane, Envoy and the etcd members
/// used meanwhile. Returns both processes and the start instant.
async fn start_serving(
    ctx: &Ctx,
    cluster: &Cluster,
    source: &[&OsStr],
    base: &Path,
    name: &str,
    port: u16,
    out: &mut Starts,
) -> Result<(Edgeplane, Envoy, Instant)> {
    let etcd_cpu = cluster.cpu();
    let t0 = Instant::now();
    let mut ep = Edgeplane::start_source(ctx, source, base).await?;
    let (admin_port, xds_port) = (ep.admin_port, ep.xds_port);
    let ready = async {
        loop {
            ep.proc.check_alive("edgeplane serve")?;
            if http_get(admin_port, "127.0.0.1", "/readyz")
                .await
                .is_some_and(|(s, _)| s == 200)
            {
                return Ok(t0.elapsed());
            }
            if t0.elapsed() > START_DEADLINE {
                bail!(
                    "{name}: /readyz not 200 within {START_DEADLINE:?}; edgeplane log tail:\n{}",
                    ep.proc.log_tail()
                );
            }
            tokio::time::sleep(START_POLL).await;
        }
    };
    let served = async {
        let mut envoy =
            Envoy::start_for(ctx, xds_port, &format!("bench-{name}"), base, name).await?;
        let mut probe = Probe::new(port, PROBE_HOST);
        loop {
            envoy.proc.check_alive("envoy")?;
            if probe
                .get("/")
                .await
                .is_some_and(|(s, b)| s == 200 && b == b"listed")
            {
                return Ok((envoy, t0.elapsed()));
            }
            if t0.elapsed() > START_DEADLINE {
                bail!(
                    "{name}: Envoy did not serve within {START_DEADLINE:?}; its log tail:\n{}",
                    envoy.proc.log_tail()
                );
            }
            tokio::time::sleep(START_POLL).await;
        }
    };
    let (ready, served): (Result<Duration>, Result<(Envoy, Duration)>) =
        tokio::join!(ready, served);
    let (envoy, serving) = served?;
    out.cpu_etcd.push(cluster.cpu().saturating_sub(etcd_cpu));
    out.cpu_ep.push(ep.proc.cpu());
    out.cpu_envoy.push(envoy.proc.cpu());
    out.ready.push(ready?);
    out.serving.push(serving);
    out.clusters.push(active_clusters(&envoy).await?);
    Ok((ep, envoy, t0))
}

/// Envoy's `cluster_manager.active_clusters`.
async fn active_clusters(envoy: &Envoy) -> Result<u64> {
    let stat = "cluster_manager.active_clusters";
    let (status, body) = http_get(
        envoy.admin_port,
        "127.0.0.1",
        &format!("/stats?filter={stat}"),
    )
    .await
    .context("envoy /stats")?;
    ensure!(status == 200, "envoy /stats answered {status}");
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{stat}: "))?.trim().parse().ok())
        .with_context(|| format!("no {stat} in envoy /stats"))
}

/// Waits until the accepted records (`<prefix>-accepted/`) number `keys`:
/// how many there were at the end, and when (since `t0`) they were all
/// there.
async fn wait_records(
    cluster: &Cluster,
    keys: usize,
    t0: Instant,
) -> Result<(i64, Option<Duration>)> {
    let root = accepted::root(LIST_PREFIX);
    loop {
        let n = cluster.count(&root).await?;
        if n >= keys as i64 {
            return Ok((n, Some(t0.elapsed())));
        }
        if t0.elapsed() > RECORDS_DEADLINE {
            return Ok((n, None));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn median(v: &[Duration]) -> Duration {
    percentile(v, 50.0)
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-9)
}

/// Seconds with two decimals, e.g. `1.25 s`.
fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn list_ms(v: &[Duration]) -> String {
    v.iter().map(|d| ms(*d)).collect::<Vec<_>>().join(", ")
}

fn list_secs(v: &[Duration]) -> String {
    v.iter().map(|d| secs(*d)).collect::<Vec<_>>().join(", ")
}

fn render(c: &Cluster, e: &Edits, l: &Listing) -> String {
    let mut s = format!(
        "A real etcd {} cluster of {} members on loopback (Debian's `etcd`, each member on its own free ports and data directory on {}; `--heartbeat-interval 50 --election-timeout 500`, every other setting etcd's default, so each commit is synced to disk on a quorum), `edgeplane serve --etcd-endpoints <the {} members>` (release build, `RUST_LOG=warn`), each server with its own Envoy bootstrapped by `edgeplane bootstrap` (`--concurrency 1 --disable-hot-restart -l warning`). Baseline in the same run: `edgeplane serve --config-dir` on the same documents as files, with its own Envoy.\n\n",
        c.version,
        c.endpoints.len(),
        c.fs_type,
        c.endpoints.len(),
    );
    s.push_str("### apply → served\n\n");
    s.push_str(&format!(
        "Generated manifests of {} routes (as in the latency section: one Gateway, VirtualServices of {ROUTES_PER_VS} routes, one Upstream per VirtualService) plus VirtualService `probe` (`Host: {PROBE_HOST}`), whose `/` answers a direct response. One sample = one edit of `probe`'s body (`edit-<k>`), {} edits per side, the sides alternating (which goes first alternates too). etcd side: the file is written in the folder `apply` reads, then the clock starts and `edgeplane apply -f <folder>` runs (a fresh process: it reads the whole prefix, validates the whole resulting config, and commits the one changed key in one guarded transaction), and it stops when a keep-alive HTTP/1.1 probe (`GET /`, one request per ~{} ms) gets the new body from Envoy. Directory side: the file is written in a staging folder, the clock starts at its rename into the watched folder and stops the same way. The `apply` row is the apply process's wall time (start → exit) inside each etcd sample; `validate` is `edgeplane validate <folder>` on the same files after each edit, outside the clock (the parse and validation `apply` runs, without etcd), and the put row one etcd transaction writing the edited document under a scratch key from the bench's own connected client, also outside the clock. Percentiles are nearest-rank.\n\n",
        thousands(e.routes),
        e.edits,
        PROBE_EVERY.as_millis(),
    ));
    s.push_str("| | samples | p50 | p99 | max |\n|---|---:|---:|---:|---:|\n");
    let max = |v: &[Duration]| v.iter().max().copied().unwrap_or_default();
    let row = |s: &mut String, what: &str, v: &[Duration], lost: usize| {
        let lost = if lost > 0 {
            format!(" ({lost} lost after {} s)", SAMPLE_DEADLINE.as_secs())
        } else {
            String::new()
        };
        s.push_str(&format!(
            "| {what} | {}{lost} | {} | {} | {} |\n",
            v.len(),
            ms(percentile(v, 50.0)),
            ms(percentile(v, 99.0)),
            ms(max(v)),
        ));
    };
    row(
        &mut s,
        "**etcd**: `apply` started → Envoy answers the edit",
        &e.etcd,
        e.etcd_lost,
    );
    row(
        &mut s,
        "… of which the `apply` process (start → exit)",
        &e.apply,
        0,
    );
    row(
        &mut s,
        "`edgeplane validate` on the same files (context, outside the clock)",
        &e.validate,
        0,
    );
    row(
        &mut s,
        "one etcd put transaction of the edited document, connected client (context, outside the clock)",
        &e.txn,
        0,
    );
    row(
        &mut s,
        "edgeplane's reload on the etcd side (its `/status` `lastLoad`)",
        &e.etcd_reload,
        0,
    );
    row(
        &mut s,
        "**directory (baseline)**: rename → Envoy answers the edit",
        &e.dir,
        e.dir_lost,
    );
    row(
        &mut s,
        "edgeplane's reload on the directory side (its `/status` `lastLoad`)",
        &e.dir_reload,
        0,
    );
    s.push_str(&format!(
        "| **ratio etcd / directory** | | {:.2}× | {:.2}× | {:.2}× |\n\n",
        e.ratio(50.0),
        e.ratio(99.0),
        ratio(max(&e.etcd), max(&e.dir)),
    ));
    let (p50, apply, validate, dir) = (
        percentile(&e.etcd, 50.0),
        percentile(&e.apply, 50.0),
        percentile(&e.validate, 50.0),
        percentile(&e.dir, 50.0),
    );
    s.push_str(&format!(
        "Reloads after the initial load: {} on the etcd side, {} on the directory side, for {} edits each (one per edit means each apply, and each save, became exactly one reload).\n\n",
        e.etcd_reloads, e.dir_reloads, e.edits
    ));
    s.push_str(&format!(
        "Reading: an edit through etcd is served in {} at the median, {:.2}× the directory source's {}. The `apply` process is {} of that ({:.0} %): a fresh process that connects, reads the whole prefix, parses, validates and translates the whole config and commits ({} is what `validate` takes on the same files, process start included, and {} one etcd put transaction from a connected client); the remaining {} (median etcd sample minus median apply) is the commit reaching edgeplane's watch, edgeplane's reload ({} median) and the push to Envoy, against {} for the directory source's whole path (its debounce, reload and push). The etcd path has no debounce: the watch hands each transaction to the reload as one update.\n\n",
        ms(p50),
        e.ratio(50.0),
        ms(dir),
        ms(apply),
        100.0 * ratio(apply, p50),
        ms(validate),
        ms(percentile(&e.txn, 50.0)),
        ms(p50.saturating_sub(apply)),
        ms(percentile(&e.etcd_reload, 50.0)),
        ms(dir),
    ));

    s.push_str(&format!(
        "### Listing {} resources\n\n",
        thousands(l.upstreams)
    ));
    s.push_str(&format!(
        "{} Upstreams (static hosts), a Gateway and VirtualService `probe` (whose `/u` uses `u0`, whose `/` answers a direct response): {} documents, {:.1} MiB of keys and values. etcd side: each document under its key (`{LIST_PREFIX}/<group>/<version>/<Kind>/<namespace>/<name>`), its value the document's own text, exactly what `edgeplane apply` stores (`pipeline::apply::given_documents`), put {TXN_OPS} to a transaction (etcd's `--max-txn-ops` is 128 by default, so one `apply` cannot write them). Directory side: the same documents, one file each (`upstreams/u<i>.yaml`, …). For each of {} repetition(s): the read alone, in this process with edgeplane's library (etcd: `Store::list`, the paged list `serve` runs, {} keys a page, on an open connection; directory: `source::load_dir`, the read `serve --config-dir` runs); then for each side (alternating which goes first) `serve` is started, its admin polled for `/readyz` 200 and, as soon as its admin answers, an Envoy started for it and polled through its listener (`GET /`, `Host: {PROBE_HOST}`, every {} ms) until it answers: Envoy takes the listener only after the clusters (its ADS orders CDS first), so that is Envoy holding the whole config. Each figure is the median of the repetitions.\n\n",
        thousands(l.upstreams),
        thousands(l.keys),
        l.bytes as f64 / 1024.0 / 1024.0,
        l.reps,
        thousands(edgeplane::source::etcd::store::PAGE as usize),
        START_POLL.as_millis(),
    ));
    s.push_str("| | etcd | directory (baseline) | ratio |\n|---|---:|---:|---:|\n");
    let line = |s: &mut String, what: &str, a: Duration, b: Duration| {
        s.push_str(&format!(
            "| {what} | {} | {} | {:.2}× |\n",
            ms(a),
            ms(b),
            ratio(a, b)
        ));
    };
    line(
        &mut s,
        &format!(
            "store the {} documents (bench: etcd transactions of {TXN_OPS} puts / write the files)",
            thousands(l.keys)
        ),
        l.put,
        l.write_files,
    );
    line(
        &mut s,
        "read them all (library, in process)",
        median(&l.etcd.read),
        median(&l.dir.read),
    );
    line(
        &mut s,
        "`serve` start → `/readyz` 200",
        median(&l.etcd.ready),
        median(&l.dir.ready),
    );
    line(
        &mut s,
        "`serve` start → Envoy answers through its listener",
        median(&l.etcd.serving),
        median(&l.dir.serving),
    );
    let cpu = |s: &mut String, what: &str, a: &[Duration], b: &[Duration]| {
        let (a, b) = (median(a), median(b));
        s.push_str(&format!(
            "| {what} | {} | {} | {:.2}× |\n",
            secs(a),
            secs(b),
            ratio(a, b)
        ));
    };
    cpu(
        &mut s,
        "CPU time, start → ready and serving: `edgeplane serve`",
        &l.etcd.cpu_ep,
        &l.dir.cpu_ep,
    );
    cpu(&mut s, "… its Envoy", &l.etcd.cpu_envoy, &l.dir.cpu_envoy);
    cpu(
        &mut s,
        "… the etcd members (idle but for heartbeats on the directory side)",
        &l.etcd.cpu_etcd,
        &l.dir.cpu_etcd,
    );
    let clusters = |v: &[u64]| {
        v.iter()
            .map(|n| thousands(*n as usize))
            .collect::<Vec<_>>()
            .join(", ")
    };
    s.push_str(&format!(
        "| Envoy's `cluster_manager.active_clusters` then (each repetition) | {} | {} | |\n\n",
        clusters(&l.etcd.clusters),
        clusters(&l.dir.clusters),
    ));
    s.push_str(&format!(
        "Every repetition: etcd `/readyz` {}, served {}, etcd members' CPU {}; directory `/readyz` {}, served {}, etcd members' CPU {}. Reads: etcd {}; directory {}. The machine has {} cores, shared by the three etcd members, edgeplane, Envoy and this bench.\n\n",
        list_ms(&l.etcd.ready),
        list_ms(&l.etcd.serving),
        list_secs(&l.etcd.cpu_etcd),
        list_ms(&l.dir.ready),
        list_ms(&l.dir.serving),
        list_secs(&l.dir.cpu_etcd),
        list_ms(&l.etcd.read),
        list_ms(&l.dir.read),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    ));
    s.push_str(&format!(
        "Reading: listing {} keys from etcd takes {} against {} to read as many files ({:.2}×); from start to `/readyz` the etcd source takes {:.2}× the directory's, and to Envoy serving {:.2}× (Envoy's own CDS of {} clusters is in both). Each etcd start also lists `{LIST_PREFIX}-accepted/` (the shared accepted records) before its first load: empty on the first start, as many records as documents on the later ones.",
        thousands(l.keys),
        ms(median(&l.etcd.read)),
        ms(median(&l.dir.read)),
        ratio(median(&l.etcd.read), median(&l.dir.read)),
        ratio(median(&l.etcd.ready), median(&l.dir.ready)),
        ratio(median(&l.etcd.serving), median(&l.dir.serving)),
        thousands(l.upstreams),
    ));
    if let Some(r) = &l.records {
        let when = match r.done {
            Some(d) => format!(
                "all {} were there {} after its start",
                thousands(r.count as usize),
                secs(d)
            ),
            None => format!(
                "only {} of {} were there {} s after its start",
                thousands(r.count as usize),
                thousands(l.keys),
                RECORDS_DEADLINE.as_secs()
            ),
        };
        s.push_str(&format!(
            " Once its first load is accepted, a replica records every accepted document under `{LIST_PREFIX}-accepted/…` (so other replicas share its last-known-good): it reads the records once, then writes what is newer in guarded transactions of {} records: after the first etcd start {when}, against {} for the bench's own load of as many keys in transactions of {TXN_OPS}; from its start to then the etcd members used {} of CPU and edgeplane {}. Later starts read the {} records once and find them current: nothing is written.",
            accepted::BATCH,
            secs(l.put),
            secs(r.cpu_etcd),
            secs(r.cpu_ep),
            thousands(l.keys),
        ));
        let (etcd_cpu, dir_cpu) = (median(&l.etcd.cpu_etcd), median(&l.dir.cpu_etcd));
        let slower = ratio(median(&l.etcd.serving), median(&l.dir.serving));
        s.push_str(&if ratio(etcd_cpu, dir_cpu) > 3.0 && slower > 1.1 {
            format!(
                " That writer runs while Envoy takes the clusters: from start to serving the etcd members used {} of CPU on the etcd side against {} on the directory side, and edgeplane {} against {}, on cores Envoy shares: the likely cause of the etcd side's later serving ({slower:.2}×).",
                secs(etcd_cpu),
                secs(dir_cpu),
                secs(median(&l.etcd.cpu_ep)),
                secs(median(&l.dir.cpu_ep)),
            )
        } else {
            format!(
                " That writer runs while Envoy takes the clusters (the etcd members used {} of CPU from start to serving, against {} on the directory side) without delaying Envoy measurably here ({slower:.2}×).",
                secs(etcd_cpu),
                secs(dir_cpu),
            )
        });
    }
    s.push('\n');
    s
}
