//! etcd failing under edgeplane, on a real 3-member cluster on loopback
//! with real Envoys:
//! - 200 `edgeplane apply`s while a follower and then the leader are
//!   killed with `-9` and restarted, followed by two replicas (each with
//!   its own Envoy): both end at the final state with the same versions,
//!   every put arrives exactly once (the source's event count equals the
//!   puts made: a lost event makes it smaller, one applied twice larger)
//!   and there is never more than one reload per revision.
//! - etcd stopped entirely for 10 s under HTTP and WebSocket load: not one
//!   request fails, not one socket closes, and an edit made once etcd is
//!   back is served.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::etcd::EtcdCluster;
use crate::support::load::{Load, LoadSpec};
use crate::support::{
    Backend, ControlPlane, Envoy, direct_vs, free_port, gateway, http_get, node_synced, poll,
    route, upstream, virtual_service,
};

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write manifest");
}

/// The value of the sample `series` in a Prometheus text page.
fn sample(text: &str, series: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
}

async fn metrics(cp: &ControlPlane) -> String {
    match cp.admin_get("/metrics").await {
        Ok((200, body)) => body,
        other => panic!("GET /metrics: {other:?}"),
    }
}

/// A replica with the Envoy it serves.
struct Replica {
    cp: ControlPlane,
    envoy: Envoy,
    node: &'static str,
}

impl Replica {
    async fn start(endpoints: &[String], node: &'static str, tmp: &Path) -> Replica {
        let cp = ControlPlane::start_etcd(endpoints, tmp, &[]).await;
        let envoy = Envoy::start(cp.xds_port, node, tmp).await;
        cp.wait_connected_in_mode(node).await;
        Replica { cp, envoy, node }
    }

    fn logs(&self) -> String {
        self.cp.logs_with(&self.envoy.log_text())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_follow_200_applies_while_a_follower_then_the_leader_is_killed() {
    const APPLIES: usize = 200;
    let mut cluster = EtcdCluster::start(3).await;
    let leader = cluster.leader().await.expect("a leader");
    let f = (0..3).find(|i| *i != leader).expect("a follower");
    let other = 3 - leader - f;
    let url = |i: usize| cluster.members[i].url();
    let port = free_port();
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("manifests");
    std::fs::create_dir_all(&dir).expect("manifests dir");
    write(&dir, "gateway.yaml", &gateway(port, ""));
    write(&dir, "vs.yaml", &direct_vs("v0"));
    let applied = cluster.apply(&dir).await;
    applied.unwrap_or_else(|e| panic!("{e:#}\n{}", cluster.logs()));

    // Replica A starts on the follower that is killed first, B on the
    // leader that is killed later: each has its watch cut once.
    let a = Replica::start(&[url(f), url(other), url(leader)], "envoy-a", tmp.path()).await;
    let b = Replica::start(&[url(leader), url(f), url(other)], "envoy-b", tmp.path()).await;

    let started = Instant::now();
    let mut killed_leader = None;
    for i in 1..=APPLIES {
        match i {
            50 => cluster.kill(f),
            90 => cluster.restart(f),
            120 => {
                // The leader goes only once the follower is back, so a
                // quorum survives; it may have changed since the start.
                cluster
                    .wait_healthy()
                    .await
                    .unwrap_or_else(|e| panic!("{e:#}\n{}", cluster.logs()));
                let l = cluster.leader().await.expect("a leader");
                cluster.kill(l);
                killed_leader = Some(l);
            }
            160 => cluster.restart(killed_leader.expect("the leader was killed")),
            _ => {}
        }
        // Each apply: a new body and one more Upstream, in one transaction.
        write(&dir, "vs.yaml", &direct_vs(&format!("v{i}")));
        write(
            &dir,
            &format!("u{i}.yaml"),
            &upstream(&format!("u{i}"), &[9]),
        );
        let out = cluster.apply(&dir).await;
        if let Err(e) = out {
            panic!("apply {i}: {e:#}\n{}", cluster.logs());
        }
    }
    let took = started.elapsed();

    // Both Envoys end at the final state, with the same versions.
    let rn = format!("listener-127.0.0.1-{port}-routes");
    let versions = poll(
        "both Envoys synced to the final state",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || async {
            let mut vs = Vec::new();
            for r in [&a, &b] {
                let st = r.cp.status().await;
                let ups = st["resources"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|r| r["kind"] == "Upstream")
                    .count();
                if ups != APPLIES || !node_synced(&st, r.node) {
                    return None;
                }
                vs.push(r.envoy.versions(&rn).await);
            }
            (vs[0] == vs[1]).then(|| vs.remove(0))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}\n{}", a.logs(), b.logs()));
    assert!(!versions.2.is_empty());
    for _ in 0..10 {
        let got = http_get(port, "/").await.map(|(_, body)| body);
        assert_eq!(got.as_deref(), Some(format!("v{APPLIES}").as_str()));
    }
    for r in [&a, &b] {
        let dump = r.envoy.config_dump().await.to_string();
        assert!(
            dump.contains(&format!("\"u{APPLIES}_gloo-system\"")),
            "{}: the last Upstream's cluster\n{}",
            r.node,
            r.logs()
        );
    }

    // Every put arrived once: one list each, then exactly two events (the
    // VirtualService and the new Upstream) per apply, and at most one
    // reload per revision.
    for r in [&a, &b] {
        let m = metrics(&r.cp).await;
        let at = |s: &str| sample(&m, s).unwrap_or_else(|| panic!("{s} in\n{m}"));
        assert_eq!(
            at("edgeplane_source_lists_total"),
            1,
            "{}: resumed, never listed again\n{}",
            r.node,
            r.logs()
        );
        assert_eq!(
            at("edgeplane_source_events_total"),
            2 * APPLIES as u64,
            "{}: every put exactly once\n{}",
            r.node,
            r.logs()
        );
        assert!(
            at("edgeplane_source_watches_total") >= 2,
            "{}: its watch was cut and resumed\n{}",
            r.node,
            r.logs()
        );
        let reloads = at("edgeplane_reloads_total{result=\"published\"}")
            + at("edgeplane_reloads_total{result=\"unchanged\"}");
        assert!(
            (1..=APPLIES as u64 + 1).contains(&reloads),
            "{}: {reloads} reloads for {} revisions",
            r.node,
            APPLIES + 1
        );
        assert_eq!(at("edgeplane_reloads_total{result=\"rejected\"}"), 0);
        for s in [
            "listener_manager.lds.update_rejected".to_string(),
            "cluster_manager.cds.update_rejected".to_string(),
            format!("http.http.rds.{rn}.update_rejected"),
        ] {
            assert_eq!(r.envoy.stat(&s).await.unwrap_or(0), 0, "{s}");
        }
    }
    eprintln!("{APPLIES} applies through two member kills in {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_stopped_10s_under_load_fails_nothing_and_edits_after_it_are_served() {
    let mut cluster = EtcdCluster::start(3).await;
    let be = Backend::start("b1").await;
    let port = free_port();
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("manifests");
    std::fs::create_dir_all(&dir).expect("manifests dir");
    write(&dir, "gateway.yaml", &gateway(port, ""));
    write(&dir, "upstream.yaml", &upstream("backend", &[be.port]));
    write(
        &dir,
        "vs.yaml",
        &virtual_service(&route("/", "backend", "")),
    );
    let applied = cluster.apply(&dir).await;
    applied.unwrap_or_else(|e| panic!("{e:#}\n{}", cluster.logs()));
    let r = Replica::start(&cluster.endpoints(), "envoy", tmp.path()).await;
    let up = poll(
        "Envoy answers through the backend",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || async { http_get(port, "/plain/0").await.filter(|(s, _)| *s == 200) },
    )
    .await;
    up.unwrap_or_else(|e| panic!("{e:#}\n{}", r.logs()));
    let rn = format!("listener-127.0.0.1-{port}-routes");
    let before = r.envoy.versions(&rn).await;

    let load = Load::start(LoadSpec {
        port,
        ws_clients: 8,
        ws_path: "/ws".into(),
        ws_period: Duration::from_millis(100),
        http_conns: 2,
        http_rate: 100.0,
        http_paths: vec!["/plain".into()],
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", r.logs()));
    load.warm_up(50, Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", r.logs()));

    // Every member gone at once.
    for i in 0..3 {
        cluster.kill(i);
    }
    let down = poll(
        "/status says the source is disconnected",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || async { (r.cp.status().await["source"]["connected"] == false).then_some(()) },
    )
    .await;
    down.unwrap_or_else(|e| panic!("{e:#}\n{}", r.logs()));
    // The outage itself: the length of the experiment, not a wait.
    let echoes_before = load.echoes_answered();
    load.run_until(Instant::now() + Duration::from_secs(10))
        .await;
    let during = load.echoes_answered() - echoes_before;
    assert_eq!(
        r.envoy.versions(&rn).await,
        before,
        "Envoy kept its config while etcd was down"
    );
    let (code, _) = r.cp.admin_get("/readyz").await.expect("/readyz");
    assert_eq!(code, 200, "still ready while etcd is down");

    for i in 0..3 {
        cluster.restart(i);
    }
    cluster
        .wait_healthy()
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", cluster.logs()));
    // An edit made once etcd is back: a new route, served under the load.
    write(
        &dir,
        "vs.yaml",
        &virtual_service(&format!(
            "- matchers:\n  - prefix: /after\n  directResponseAction:\n    status: 200\n    body: after-etcd\n{}",
            route("/", "backend", "")
        )),
    );
    let applied = cluster.apply(&dir).await;
    applied.unwrap_or_else(|e| panic!("{e:#}\n{}", cluster.logs()));
    let served = poll(
        "the edit made after etcd returned is served",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || async {
            http_get(port, "/after")
                .await
                .filter(|(s, b)| *s == 200 && b == "after-etcd")
        },
    )
    .await;
    served.unwrap_or_else(|e| panic!("{e:#}\n{}", r.logs()));
    let st: Value = r.cp.status().await;
    assert_eq!(st["source"]["connected"], true, "{st}");

    let report = load.stop().await.expect("load report");
    assert!(
        report.failures().is_empty(),
        "{}\n{}",
        report.summary(),
        r.logs()
    );
    assert!(
        during >= 8 * 50,
        "the WebSockets kept echoing through the outage: {during} echoes in 10 s\n{}",
        report.summary()
    );
    eprintln!(
        "etcd down 10 s: {during} echoes meanwhile; {}",
        report.summary()
    );
}
