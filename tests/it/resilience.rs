//! Never lose a connection. Through real Envoy 1.40 under live
//! WebSocket and HTTP load: edgeplane killed with SIGKILL and restarted, a
//! fresh Envoy, two edgeplane replicas with a fail-over, and SIGTERM.
//! Every figure measured here is printed (`--nocapture` shows them).

use std::time::{Duration, Instant};

use crate::support::load::{Load, LoadReport, LoadSpec};
use crate::support::*;
use anyhow::{Context, Result, ensure};
use serde_json::Value;

const UP: &str = "echo";
/// Generous bounds for waits; the figures reported are what matters.
const WITHIN: Duration = Duration::from_secs(20);
const WS_CLIENTS: usize = 20;

fn manifests(port: u16, backend: u16) -> Vec<(&'static str, String)> {
    vec![
        ("gateway.yaml", gateway(port, "")),
        ("upstream.yaml", upstream(UP, &[backend])),
        ("vs.yaml", virtual_service(&route("/", UP, ""))),
    ]
}

/// Light load: 20 WebSockets echoing every 100 ms, 200 HTTP requests/s
/// over two keep-alive connections.
fn light_load(port: u16) -> LoadSpec {
    LoadSpec {
        port,
        ws_clients: WS_CLIENTS,
        ws_path: "/ws".into(),
        ws_period: Duration::from_millis(100),
        http_conns: 2,
        http_rate: 200.0,
        http_paths: vec!["/plain".into()],
    }
}

/// The node's entry in edgeplane's `/status`, if it is connected.
async fn node_entry(admin_port: u16, node_id: &str) -> Option<Value> {
    let s = admin_status(admin_port).await.ok()?;
    status_node(&s, node_id).cloned()
}

/// Whether `node_id` is connected (over this run's ADS variant) and has
/// ACKed, for every type, the version edgeplane serves its proxy.
async fn node_synced_in_mode(admin_port: u16, node_id: &str) -> bool {
    admin_status(admin_port).await.is_ok_and(|s| {
        status_node(&s, node_id).is_some_and(|n| n["xdsMode"] == xds_mode())
            && node_synced(&s, node_id)
    })
}

/// What must not move in Envoy across a control-plane event: every
/// `version_info` in `/config_dump` (per type and per resource) and the
/// listener/cluster modification counters.
#[derive(Debug, PartialEq)]
struct EnvoyState {
    versions: Vec<String>,
    listener_modified: Option<u64>,
    cluster_modified: Option<u64>,
}

impl EnvoyState {
    async fn read(envoy: &Envoy) -> Result<EnvoyState> {
        let (code, body) = envoy
            .get("/config_dump")
            .await
            .context("Envoy /config_dump")?;
        ensure!(code == 200, "Envoy /config_dump answered {code}");
        let dump: Value = serde_json::from_str(&body).context("config_dump is JSON")?;
        let mut versions = Vec::new();
        for c in dump["configs"].as_array().into_iter().flatten() {
            let t = c["@type"].as_str().unwrap_or("");
            if let Some(v) = c["version_info"].as_str() {
                versions.push(format!("{t} {v}"));
            }
            for l in c["dynamic_listeners"].as_array().into_iter().flatten() {
                versions.push(format!(
                    "listener {} {} warming={}",
                    l["name"],
                    l["active_state"]["version_info"],
                    !l["warming_state"].is_null()
                ));
            }
            for cl in c["dynamic_active_clusters"]
                .as_array()
                .into_iter()
                .flatten()
            {
                versions.push(format!(
                    "cluster {} {}",
                    cl["cluster"]["name"], cl["version_info"]
                ));
            }
            for r in c["dynamic_route_configs"].as_array().into_iter().flatten() {
                versions.push(format!(
                    "routes {} {}",
                    r["route_config"]["name"], r["version_info"]
                ));
            }
        }
        versions.sort();
        ensure!(
            versions.iter().any(|v| v.starts_with("listener "))
                && versions.iter().any(|v| v.starts_with("cluster "))
                && versions.iter().any(|v| v.starts_with("routes ")),
            "Envoy holds no dynamic config: {versions:?}"
        );
        Ok(EnvoyState {
            versions,
            listener_modified: envoy.stat("listener_manager.listener_modified").await,
            cluster_modified: envoy.stat("cluster_manager.cluster_modified").await,
        })
    }
}

fn check_clean(what: &str, report: &LoadReport) -> Result<()> {
    println!("{what}: load: {}", report.summary());
    let failures = report.failures();
    ensure!(
        failures.is_empty(),
        "{what}: traffic was lost: {}",
        failures.join("; ")
    );
    ensure!(
        report.echoes_answered > 0 && report.http_ok > 0,
        "{what}: no traffic flowed"
    );
    Ok(())
}

/// The light load through Envoy, warmed up, and what Envoy held when it
/// began.
struct UnderLoad {
    load: Load,
    before: EnvoyState,
}

impl UnderLoad {
    async fn start(port: u16, envoy: &Envoy) -> Result<UnderLoad> {
        let load = Load::start(light_load(port)).await?;
        load.warm_up(50, WITHIN).await?;
        let before = EnvoyState::read(envoy).await?;
        Ok(UnderLoad { load, before })
    }

    /// Stops the load; checks that no traffic was lost and that Envoy's
    /// config did not move.
    async fn stop_unchanged(self, what: &str, envoy: &Envoy) -> Result<()> {
        let report = self.load.stop().await?;
        check_clean(what, &report)?;
        let before = self.before;
        let after = EnvoyState::read(envoy).await?;
        ensure!(
            after == before,
            "Envoy's config moved:\nbefore {before:#?}\nafter {after:#?}"
        );
        Ok(())
    }

    /// As `stop_unchanged`, and every WebSocket of the load was still
    /// upgraded in Envoy at the end.
    async fn stop_unchanged_all_upgraded(self, what: &str, envoy: &Envoy) -> Result<()> {
        let upgrades = envoy.stat("http.http.downstream_cx_upgrades_active").await;
        self.stop_unchanged(what, envoy).await?;
        ensure!(
            upgrades == Some(WS_CLIENTS as u64),
            "upgrades active {upgrades:?}"
        );
        Ok(())
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn connected_state(envoy: &Envoy) -> Option<u64> {
    envoy.stat("control_plane.connected_state").await
}

/// Waits until Envoy's `control_plane.connected_state` is `want` (0: no
/// control plane, 1: connected).
async fn wait_connected_state(envoy: &Envoy, want: u64, what: &str) -> Result<()> {
    poll(what, WITHIN, Duration::from_millis(2), || async {
        (connected_state(envoy).await == Some(want)).then_some(())
    })
    .await
}

/// Waits until `node` is synced (`node_synced_in_mode`) on the edgeplane
/// at `admin_port`.
async fn wait_synced(what: &str, admin_port: u16, node: &str) -> Result<()> {
    poll(what, WITHIN, Duration::from_millis(2), || async {
        node_synced_in_mode(admin_port, node).await.then_some(())
    })
    .await
}

/// The stack with the one route, serving.
async fn serving_stack() -> Stack {
    Stack::serving(manifests).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_nothing_and_changes_nothing() -> Result<()> {
    let mut s = serving_stack().await;
    let under = UnderLoad::start(s.port, &s.envoy).await?;
    let proxies_before = s.cp.status().await["proxies"].clone();

    let killed = Instant::now();
    s.cp.kill();
    wait_connected_state(&s.envoy, 0, "Envoy sees edgeplane gone").await?;
    // About two seconds of traffic with no control plane at all.
    under
        .load
        .wait_echoes(WS_CLIENTS as u64 * 20, WITHIN)
        .await?;
    let down_for = killed.elapsed();

    // The same binary, xDS port and manifests.
    let restarted = Instant::now();
    let cp2 = ControlPlane::start(&s.dir, s.cp.xds_port, s.tmp.path()).await;
    wait_connected_state(&s.envoy, 1, "Envoy reconnects").await?;
    let reconnected = Instant::now();
    wait_synced(
        "Envoy ACKs the restarted edgeplane's versions",
        cp2.admin_port,
        "test-node",
    )
    .await?;
    let synced = Instant::now();
    // Traffic after the reconnect too.
    under
        .load
        .wait_echoes(WS_CLIENTS as u64 * 5, WITHIN)
        .await?;

    println!(
        "kill -9: down {:.0} ms; restart → Envoy connected {:.0} ms (kill → connected {:.0} ms), \
         restart → versions ACKed {:.0} ms",
        ms(down_for),
        ms(reconnected - restarted),
        ms(reconnected - killed),
        ms(synced - restarted),
    );
    under
        .stop_unchanged_all_upgraded("kill -9", &s.envoy)
        .await?;
    ensure!(
        cp2.status().await["proxies"] == proxies_before,
        "the restarted edgeplane serves other versions"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_envoy_serves_within_one_second_of_connecting() -> Result<()> {
    let port = free_port();
    let be = Backend::start("b1").await;
    let (tmp, dir) = manifests_dir(&manifests(port, be.port));
    let cp = ControlPlane::start(&dir, 0, tmp.path()).await;
    let first = Envoy::start(cp.xds_port, "first-envoy", tmp.path()).await;
    first.wait_serving(port, "/plain").await;
    let want = EnvoyState::read(&first).await?.versions;
    drop(first);

    let mut figures = Vec::new();
    for round in 0..3 {
        let node = format!("fresh-envoy-{round}");
        let admin = cp.admin_port;
        let n = node.clone();
        // Both observers run from before Envoy starts.
        let connected = tokio::spawn(async move {
            poll(
                "the fresh Envoy connects",
                WITHIN,
                Duration::from_millis(2),
                || async { node_entry(admin, &n).await.map(|_| Instant::now()) },
            )
            .await
        });
        let served = tokio::spawn(async move {
            poll(
                "the fresh Envoy serves",
                WITHIN,
                Duration::from_millis(2),
                || async {
                    http_get(port, "/plain")
                        .await
                        .filter(|(code, _)| *code == 200)
                        .map(|_| Instant::now())
                },
            )
            .await
        });
        let spawned = Instant::now();
        let envoy = Envoy::start(cp.xds_port, &node, tmp.path()).await;
        let t_connected = connected.await.context("connect observer")??;
        let t_served = served.await.context("serve observer")??;
        let connect_to_serve = t_served.saturating_duration_since(t_connected);
        println!(
            "fresh Envoy {round}: process start → xDS connected {:.1} ms, connected → first 200 {:.1} ms",
            ms(t_connected - spawned),
            ms(connect_to_serve),
        );
        figures.push(connect_to_serve);
        let got = EnvoyState::read(&envoy).await?.versions;
        ensure!(
            got == want,
            "the fresh Envoy holds other config:\n{got:#?}\nwant {want:#?}"
        );
        ensure!(
            node_synced_in_mode(cp.admin_port, &node).await,
            "the fresh Envoy has not ACKed every type"
        );
        drop(envoy);
        poll(
            "edgeplane sees that Envoy gone",
            WITHIN,
            Duration::from_millis(5),
            || async { node_entry(admin, &node).await.is_none().then_some(()) },
        )
        .await?;
    }
    let worst = figures.iter().max().copied().unwrap_or_default();
    println!(
        "fresh Envoy: connected → serving {:?} ms (worst {:.1} ms)",
        figures
            .iter()
            .map(|d| (ms(*d) * 10.0).round() / 10.0)
            .collect::<Vec<_>>(),
        ms(worst)
    );
    ensure!(
        worst < Duration::from_secs(1),
        "a fresh Envoy took {worst:?} from connecting to serving"
    );
    Ok(())
}

/// Where two replicas read the same manifests from.
enum Shared<'a> {
    Dir(&'a std::path::Path),
    Etcd(&'a crate::support::etcd::EtcdCluster),
}

impl Shared<'_> {
    /// A replica on this source (`xds_port` 0: a free one).
    async fn replica(&self, xds_port: u16, logdir: &std::path::Path) -> ControlPlane {
        match self {
            Shared::Dir(dir) => ControlPlane::start(dir, xds_port, logdir).await,
            Shared::Etcd(cluster) => {
                let source = [
                    "--etcd-endpoints".to_string(),
                    cluster.endpoints().join(","),
                ];
                let cp = ControlPlane::start_source(&source, logdir, xds_port, logdir, &[]).await;
                // Its first snapshot follows the first list: ready then.
                let ready = poll(
                    "the etcd replica is ready",
                    WITHIN,
                    Duration::from_millis(10),
                    || async {
                        matches!(cp.admin_get("/readyz").await, Ok((200, _))).then_some(())
                    },
                )
                .await;
                ready.unwrap_or_else(|e| panic!("{e:#}\n{}", cp.log_text()));
                cp
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_fail_over_without_a_config_change() -> Result<()> {
    let port = free_port();
    let be = Backend::start("b1").await;
    let (tmp, dir) = manifests_dir(&manifests(port, be.port));
    fail_over("replicas", &Shared::Dir(&dir), port, tmp.path()).await
}

/// The same with the manifests in a real 3-member etcd, written by
/// `edgeplane apply`: the replicas serve identical versions, so Envoy's
/// fail-over from one to the other changes nothing in Envoy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_etcd_replicas_fail_over_without_a_config_change() -> Result<()> {
    let port = free_port();
    let be = Backend::start("b1").await;
    let (tmp, dir) = manifests_dir(&manifests(port, be.port));
    let cluster = crate::support::etcd::EtcdCluster::start(3).await;
    cluster.apply(&dir).await?;
    fail_over("etcd replicas", &Shared::Etcd(&cluster), port, tmp.path()).await
}

/// Two replicas on `source`, one Envoy given both (`edgeplane bootstrap
/// --xds-address <1> --xds-address <2>`), under load: replica 1 killed,
/// then restarted and replica 2 killed. Envoy fails over each time, its
/// config does not move, no request fails and no socket closes.
async fn fail_over(
    what: &str,
    source: &Shared<'_>,
    port: u16,
    logdir: &std::path::Path,
) -> Result<()> {
    let mut cp1 = source.replica(0, logdir).await;
    let mut cp2 = source.replica(0, logdir).await;
    let node = "replicated-envoy";
    let envoy = Envoy::start_with_args(
        cp1.xds_port,
        node,
        logdir,
        &[
            "--xds-address".into(),
            format!("127.0.0.1:{}", cp2.xds_port),
        ],
    )
    .await;
    envoy.wait_serving(port, "/plain").await;
    // Versions are content hashes: equal on both replicas by construction.
    let p1 = cp1.status().await["proxies"].clone();
    let p2 = cp2.status().await["proxies"].clone();
    ensure!(
        p1 == p2 && p1.as_array().is_some_and(|a| !a.is_empty()),
        "replicas serve different versions:\n{p1}\n{p2}"
    );
    // Envoy prefers the first replica while it is up.
    wait_synced("Envoy on replica 1", cp1.admin_port, node).await?;
    ensure!(
        node_entry(cp2.admin_port, node).await.is_none(),
        "Envoy also talks to replica 2"
    );

    let under = UnderLoad::start(port, &envoy).await?;

    // Replica 1, the one Envoy uses, dies.
    let killed = Instant::now();
    cp1.kill();
    wait_synced("Envoy fails over to replica 2", cp2.admin_port, node).await?;
    let failover = killed.elapsed();
    under
        .load
        .wait_echoes(WS_CLIENTS as u64 * 5, WITHIN)
        .await?;

    // A rolling restart: replica 1 comes back, then replica 2 dies.
    let cp1b = source.replica(cp1.xds_port, logdir).await;
    let p1b = cp1b.status().await["proxies"].clone();
    ensure!(
        p1b == p1,
        "the restarted replica serves other versions:\n{p1b}\n{p1}"
    );
    let killed2 = Instant::now();
    cp2.kill();
    wait_synced("Envoy fails back to replica 1", cp1b.admin_port, node).await?;
    let failback = killed2.elapsed();
    under
        .load
        .wait_echoes(WS_CLIENTS as u64 * 5, WITHIN)
        .await?;

    println!(
        "{what}: kill replica 1 → Envoy synced on replica 2 in {:.0} ms; restart 1, kill 2 → synced on replica 1 in {:.0} ms",
        ms(failover),
        ms(failback)
    );
    under.stop_unchanged_all_upgraded(what, &envoy).await
}

/// Sends SIGTERM and waits for the exit, which must be status 0 within
/// 1 s; prints `what` with the figure and returns edgeplane's log.
async fn terminate_timed(cp: &mut ControlPlane, what: &str) -> Result<String> {
    let pid = cp.pid().context("edgeplane is not running")?;
    let sent = Instant::now();
    ensure!(cp.terminate(), "kill -TERM {pid} failed");
    let exit = cp
        .wait_exit(Duration::from_secs(10))
        .await
        .context("edgeplane still runs 10 s after SIGTERM")?;
    let took = sent.elapsed();
    println!("{what}: exited with {exit} after {:.0} ms", ms(took));
    let log = cp.log_text();
    ensure!(exit.code() == Some(0), "exit {exit}\n{log}");
    // The watch stream ends on shutdown itself; the 2 s grace period
    // `serve` allows for stragglers is not what ends it.
    ensure!(
        took < Duration::from_secs(1),
        "SIGTERM took {took:?} to exit"
    );
    Ok(log)
}

/// Envoy still answers a new `GET /plain` once edgeplane is gone.
async fn serves_after_sigterm(port: u16) -> Result<()> {
    let (code, _) = http_get(port, "/plain")
        .await
        .context("GET after SIGTERM")?;
    ensure!(code == 200, "GET after SIGTERM: {code}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_streams_exits_zero_and_envoy_keeps_serving() -> Result<()> {
    let mut s = serving_stack().await;
    let port = s.port;
    let under = UnderLoad::start(port, &s.envoy).await?;

    let log = terminate_timed(&mut s.cp, "SIGTERM: edgeplane").await?;
    ensure!(
        log.contains("shutting down") && log.contains("ADS stream closed"),
        "no clean stream close in the log:\n{log}"
    );
    ensure!(!log.contains("panicked"), "{log}");
    wait_connected_state(&s.envoy, 0, "Envoy sees edgeplane gone").await?;

    // Envoy keeps serving: the load runs on, new requests and sockets work.
    under
        .load
        .wait_echoes(WS_CLIENTS as u64 * 10, WITHIN)
        .await?;
    serves_after_sigterm(port).await?;
    let mut ws = ws_connect(port, "/ws/new")
        .await
        .map_err(|code| anyhow::anyhow!("WebSocket upgrade after SIGTERM: {code}"))?;
    echo(&mut ws, "after SIGTERM").await;
    // That extra WebSocket is open: the upgrade count is not the load's.
    under.stop_unchanged("SIGTERM", &s.envoy).await
}

/// A child process killed (and reaped) on every exit path.
struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_status_watcher_still_exits_in_bounded_time() -> Result<()> {
    let mut s = serving_stack().await;
    // `edgeplane status --watch` holds a WatchStatus stream open, which
    // never ends on its own.
    let out = s.tmp.path().join("watch.out");
    let _watcher = ChildGuard(
        std::process::Command::new(edgeplane_bin())
            .args(["status", "--watch", "--server"])
            .arg(format!("127.0.0.1:{}", s.cp.xds_port))
            .stdout(std::fs::File::create(&out).context("create watch.out")?)
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("start edgeplane status --watch")?,
    );
    poll(
        "the watcher prints a status",
        WITHIN,
        Duration::from_millis(10),
        || async {
            std::fs::metadata(&out)
                .ok()
                .filter(|m| m.len() > 0)
                .map(|_| ())
        },
    )
    .await?;

    terminate_timed(&mut s.cp, "SIGTERM with a status watcher open").await?;
    serves_after_sigterm(s.port).await
}
