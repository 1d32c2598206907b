//! Several `serve --etcd-endpoints` replicas on one real 3-member etcd,
//! each with its own real Envoy: identical versions in both Envoys after an
//! `apply` and a route edit by `apply` (WebSockets through each stay open), and a
//! replica started after a rejected write serving the same last-known-good
//! as the one that saw the good version (the shared accepted record).
//!
//! Both Envoys get the same listener (127.0.0.1:`port`): Envoy binds it with
//! SO_REUSEPORT, so the kernel spreads connections over both processes.
//! Each Envoy's own counters say which sockets it carries.

use std::time::Duration;

use etcd_client::TxnOp;
use serde_json::Value;

use crate::support::etcd::EtcdCluster;
use crate::support::{
    Backend, ControlPlane, Envoy, Ws, direct_vs, echo, free_port, gateway, http_get, node_synced,
    poll, route, upstream, virtual_service, ws_connect,
};

const GW: &str = "edgeplane/gateway.solo.io/v1/Gateway/gloo-system/gw";
const UP: &str = "edgeplane/gloo.solo.io/v1/Upstream/gloo-system/backend";
const VS: &str = "edgeplane/gateway.solo.io/v1/VirtualService/gloo-system/vs";

/// One replica and the Envoy it serves.
struct Replica {
    cp: ControlPlane,
    envoy: Envoy,
    node: String,
}

impl Replica {
    async fn start(cluster: &EtcdCluster, node: &str, tmp: &std::path::Path) -> Replica {
        let cp = ControlPlane::start_etcd(&cluster.endpoints(), tmp, &[]).await;
        let envoy = Envoy::start(cp.xds_port, node, tmp).await;
        cp.wait_connected_in_mode(node).await;
        Replica {
            cp,
            envoy,
            node: node.to_string(),
        }
    }

    fn logs(&self) -> String {
        self.cp.logs_with(&self.envoy.log_text())
    }

    /// The versions this Envoy ACKed, once it has ACKed everything its
    /// replica serves.
    async fn synced_versions(&self, route_name: &str) -> Option<(String, String, String)> {
        let st = self.cp.status().await;
        if !node_synced(&st, &self.node) {
            return None;
        }
        Some(self.envoy.versions(route_name).await)
    }
}

fn route_name(port: u16) -> String {
    format!("listener-127.0.0.1-{port}-routes")
}

/// Waits (30 s) until both Envoys hold every version their replicas serve,
/// the same in both and accepted by `ok`; returns them.
async fn same_versions(
    a: &Replica,
    b: &Replica,
    port: u16,
    ok: impl Fn(&(String, String, String)) -> bool,
) -> (String, String, String) {
    let rn = route_name(port);
    let r = poll(
        "both Envoys synced to the same versions",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || async {
            let va = a.synced_versions(&rn).await?;
            let vb = b.synced_versions(&rn).await?;
            (va == vb && !va.0.is_empty() && ok(&va)).then_some(va)
        },
    )
    .await;
    r.unwrap_or_else(|e| panic!("{e:#}\n{}\n{}", a.logs(), b.logs()))
}

/// Whether an Envoy's route configuration mentions `prefix`.
fn dump_has_prefix(dump: &Value, prefix: &str) -> bool {
    dump.to_string()
        .contains(&format!("\"prefix\":\"{prefix}\""))
}

const UPGRADES: &str = "http.http.downstream_cx_upgrades_active";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_serve_identical_versions_and_keep_websockets_across_an_edit() {
    let cluster = EtcdCluster::start(3).await;
    let be = Backend::start("b1").await;
    let port = free_port();
    let tmp = tempfile::tempdir().expect("temp dir");
    // The manifests reach etcd the way users write them: `edgeplane apply`.
    let manifests = tmp.path().join("manifests");
    std::fs::create_dir_all(&manifests).expect("manifests dir");
    let write = |name: &str, text: &str| {
        std::fs::write(manifests.join(name), text).expect("write manifest");
    };
    write("gateway.yaml", &gateway(port, ""));
    write("upstream.yaml", &upstream("backend", &[be.port]));
    write("vs.yaml", &virtual_service(&route("/", "backend", "")));
    let out = cluster.apply(&manifests).await;
    out.unwrap_or_else(|e| panic!("{e:#}\n{}", cluster.logs()));
    let a = Replica::start(&cluster, "envoy-a", tmp.path()).await;
    let b = Replica::start(&cluster, "envoy-b", tmp.path()).await;
    let before = same_versions(&a, &b, port, |_| true).await;
    // The replicas report the same versions too.
    let pa = a.cp.status().await["proxies"].clone();
    let pb = b.cp.status().await["proxies"].clone();
    assert_eq!(pa, pb, "both replicas serve the same proxies and versions");

    // WebSockets until each Envoy carries at least one.
    let mut sockets: Vec<Ws> = Vec::new();
    let end = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ua = a.envoy.stat(UPGRADES).await.unwrap_or(0);
        let ub = b.envoy.stat(UPGRADES).await.unwrap_or(0);
        if ua >= 1 && ub >= 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < end && sockets.len() < 64,
            "no WebSocket through each Envoy after {} sockets ({ua} on a, {ub} on b)\n{}\n{}",
            sockets.len(),
            a.logs(),
            b.logs()
        );
        let ws = ws_connect(port, "/chat")
            .await
            .unwrap_or_else(|code| panic!("expected 101, got {code}"));
        sockets.push(ws);
    }
    for (i, ws) in sockets.iter_mut().enumerate() {
        echo(ws, &format!("before {i}")).await;
    }

    // A route edit reaches both Envoys with the same versions.
    let edited = format!(
        "{}{}",
        route("/edited", "backend", ""),
        route("/", "backend", "")
    );
    write("vs.yaml", &virtual_service(&edited));
    let out = cluster.apply(&manifests).await;
    let out = out.unwrap_or_else(|e| panic!("{e:#}\n{}", cluster.logs()));
    assert!(
        out.contains("1 changed"),
        "one VirtualService changed: {out}"
    );
    let after = same_versions(&a, &b, port, |v| v.2 != before.2).await;
    assert_eq!(after.0, before.0, "a route edit changes no listener");
    assert_eq!(after.1, before.1, "a route edit changes no cluster");
    for r in [&a, &b] {
        assert!(
            dump_has_prefix(&r.envoy.config_dump().await, "/edited"),
            "{}",
            r.logs()
        );
    }
    for _ in 0..10 {
        let got = http_get(port, "/edited/x").await.map(|(s, _)| s);
        assert_eq!(got, Some(200), "{}\n{}", a.logs(), b.logs());
    }
    // Every socket stayed open through the edit, on both Envoys.
    for (i, ws) in sockets.iter_mut().enumerate() {
        echo(ws, &format!("after {i}")).await;
    }
    assert!(a.envoy.stat(UPGRADES).await.unwrap_or(0) >= 1);
    assert!(b.envoy.stat(UPGRADES).await.unwrap_or(0) >= 1);
    assert_eq!(
        a.envoy.rejected_updates(&route_name(port)).await,
        0,
        "{}",
        a.logs()
    );
    assert_eq!(
        b.envoy.rejected_updates(&route_name(port)).await,
        0,
        "{}",
        b.logs()
    );
}

/// A Gateway on `port` and VirtualService `vs` answering `v1`, in one
/// transaction (written as any etcd client may, past `apply`).
async fn seed_v1(cluster: &EtcdCluster, port: u16) {
    cluster
        .txn(vec![
            TxnOp::put(GW, gateway(port, ""), None),
            TxnOp::put(UP, upstream("backend", &[9]), None),
            TxnOp::put(VS, direct_vs("v1"), None),
        ])
        .await
        .expect("initial txn");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_started_after_a_rejected_write_serves_the_same_last_known_good() {
    let cluster = EtcdCluster::start(3).await;
    let port = free_port();
    seed_v1(&cluster, port).await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let a = Replica::start(&cluster, "envoy-early", tmp.path()).await;
    let rn = route_name(port);
    let good = poll(
        "the early replica serves v1",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || async {
            let v = a.synced_versions(&rn).await?;
            let body = http_get(port, "/").await.map(|(_, b)| b);
            (body.as_deref() == Some("v1") && !v.2.is_empty()).then_some(v)
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", a.logs()));

    // A broken edit lands (written past validation, as any etcd client can).
    let broken = direct_vs("v2").replace("domains:", "domainz:");
    let loads = a.cp.loads().await;
    cluster.put(VS, &broken).await.expect("put broken");
    let st = a.cp.wait_load_after(loads).await;
    let vs_status = st["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["kind"] == "VirtualService")
        .cloned()
        .unwrap_or_default();
    assert_eq!(vs_status["state"], "Rejected", "{vs_status}");

    // The late replica never saw v1 in the store, yet serves it.
    let b = Replica::start(&cluster, "envoy-late", tmp.path()).await;
    let late = same_versions(&a, &b, port, |_| true).await;
    assert_eq!(late, good, "the early replica's versions did not move");
    let pa = a.cp.status().await["proxies"].clone();
    let pb = b.cp.status().await["proxies"].clone();
    assert_eq!(pa, pb, "both replicas serve the same proxies and versions");
    let st = b.cp.status().await;
    let vs_status = st["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["kind"] == "VirtualService")
        .cloned()
        .unwrap_or_default();
    assert_eq!(vs_status["state"], "Rejected", "{vs_status}");
    assert_eq!(vs_status["serving"], "last-accepted", "{vs_status}");
    for _ in 0..10 {
        let body = http_get(port, "/").await.map(|(_, b)| b);
        assert_eq!(body.as_deref(), Some("v1"), "{}\n{}", a.logs(), b.logs());
    }

    // A good edit afterwards moves both.
    cluster.put(VS, &direct_vs("v3")).await.expect("put v3");
    same_versions(&a, &b, port, |v| v.2 != good.2).await;
}

/// `text`'s lines indented by four spaces (a list item under `routes:`).
fn indent4(text: &str) -> String {
    text.lines().map(|l| format!("    {l}\n")).collect()
}

/// The node `node_id` in a `/status`, if listed.
fn node<'a>(status: &'a Value, node_id: &str) -> Option<&'a Value> {
    status["nodes"]
        .as_array()?
        .iter()
        .find(|n| n["nodeId"] == node_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_replica_shows_the_others_envoys_until_its_lease_expires() {
    let cluster = EtcdCluster::start(3).await;
    let port = free_port();
    seed_v1(&cluster, port).await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let a = Replica::start(&cluster, "envoy-a", tmp.path()).await;
    let mut b = Replica::start(&cluster, "envoy-b", tmp.path()).await;
    same_versions(&a, &b, port, |_| true).await;

    // B's Envoy, with what it ACKed, in A's /status (and A's in B's).
    let served = b.cp.status().await;
    let b_node = node(&served, "envoy-b").cloned().unwrap_or_default();
    assert_eq!(b_node["replica"], "", "B's own node is unmarked: {b_node}");
    let r = poll(
        "envoy-b (on replica B) in replica A's /status",
        Duration::from_secs(5),
        Duration::from_millis(50),
        || async {
            let st = a.cp.status().await;
            let n = node(&st, "envoy-b")?.clone();
            (n["types"].as_array()?.len() == b_node["types"].as_array()?.len()).then_some(n)
        },
    )
    .await;
    let seen = r.unwrap_or_else(|e| panic!("{e:#}\n{}\n{}", a.logs(), b.logs()));
    let replica = seen["replica"].as_str().unwrap_or("").to_string();
    assert!(!replica.is_empty(), "marked with B's replica id: {seen}");
    for t in seen["types"].as_array().into_iter().flatten() {
        assert!(
            !t["ackedVersion"].as_str().unwrap_or("").is_empty(),
            "ACKs are published: {seen}"
        );
    }
    let st = a.cp.status().await;
    assert_eq!(
        node(&st, "envoy-a").map(|n| n["replica"].clone()),
        Some(Value::from("")),
        "A's own node: {st}"
    );
    poll(
        "envoy-a (on replica A) in replica B's /status",
        Duration::from_secs(5),
        Duration::from_millis(50),
        || async { node(&b.cp.status().await, "envoy-a").map(|_| ()) },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", b.logs()));

    // A route Envoy rejects (an RE2 program over Envoy's limit): B's Envoy
    // NACKs it, and A's /status says so soon after B's does.
    let nacked = |st: &Value, node_id: &str| {
        node(st, node_id)?["types"]
            .as_array()?
            .iter()
            .find(|t| !t["nackMessage"].as_str().unwrap_or("").is_empty())
            .cloned()
    };
    let regex = "- matchers:\n  - regex: '/a{1,500}'\n  directResponseAction:\n    status: 200\n    body: re\n";
    let bad = direct_vs("v1").replace("    routes:\n", &format!("    routes:\n{}", indent4(regex)));
    cluster
        .put(VS, &bad)
        .await
        .expect("put a route Envoy rejects");
    poll(
        "envoy-b's NACK in B's /status",
        Duration::from_secs(30),
        Duration::from_millis(20),
        || async { nacked(&b.cp.status().await, "envoy-b") },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", b.logs()));
    let on_b = std::time::Instant::now();
    let seen = poll(
        "envoy-b's NACK in A's /status",
        Duration::from_secs(5),
        Duration::from_millis(20),
        || async { nacked(&a.cp.status().await, "envoy-b") },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}\n{}", a.logs(), b.logs()));
    println!(
        "envoy-b's NACK: in B's /status, then in A's {:?} later",
        on_b.elapsed()
    );
    assert!(
        seen["nackMessage"]
            .as_str()
            .unwrap_or("")
            .contains("program size"),
        "{seen}"
    );

    // B dies without a word: its entries vanish with its lease (10 s TTL).
    b.cp.kill();
    let killed = std::time::Instant::now();
    poll(
        "envoy-b gone from A's /status after B's lease expired",
        Duration::from_secs(25),
        Duration::from_millis(100),
        || async {
            node(&a.cp.status().await, "envoy-b")
                .is_none()
                .then_some(())
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", a.logs()));
    let after = killed.elapsed();
    println!("replica B killed → its Envoy gone from A's /status after {after:?}");
    assert!(
        after >= Duration::from_secs(3),
        "gone by the lease, not at once ({after:?})"
    );
    assert!(
        node(&a.cp.status().await, "envoy-a").is_some(),
        "A's own Envoy stays"
    );

    // A replica that shuts down (SIGTERM) revokes its lease: its Envoy
    // leaves A's /status at once, not a TTL later.
    let c = Replica::start(&cluster, "envoy-c", tmp.path()).await;
    poll(
        "envoy-c (on replica C) in replica A's /status",
        Duration::from_secs(5),
        Duration::from_millis(50),
        || async { node(&a.cp.status().await, "envoy-c").map(|_| ()) },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}\n{}", a.logs(), c.logs()));
    let c_pid = c.cp.pid().expect("replica C runs");
    let c_key = |keys: &[String]| keys.iter().any(|k| k.ends_with(&format!("-{c_pid}")));
    assert!(c_key(&replica_keys(&cluster).await), "C publishes its key");
    assert!(c.cp.terminate(), "SIGTERM to replica C");
    let stopped = std::time::Instant::now();
    poll(
        "replica C's status key gone from etcd after C shut down",
        Duration::from_secs(25),
        Duration::from_millis(50),
        || async { (!c_key(&replica_keys(&cluster).await)).then_some(()) },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}\n{}", a.logs(), c.logs()));
    let after = stopped.elapsed();
    println!("replica C stopped → its status key gone from etcd after {after:?}");
    assert!(
        after < Duration::from_secs(3),
        "a stopped replica's key goes with its revoked lease, well before the 10 s TTL ({after:?})\n{}",
        c.logs()
    );
    poll(
        "envoy-c gone from A's /status",
        Duration::from_secs(5),
        Duration::from_millis(50),
        || async {
            node(&a.cp.status().await, "envoy-c")
                .is_none()
                .then_some(())
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", a.logs()));
    assert!(
        c.cp.log_text()
            .contains("revoked this replica's status lease"),
        "{}",
        c.logs()
    );
}

/// The replicas' status keys in etcd (`<prefix>-status/replicas/<host>-<pid>`).
async fn replica_keys(cluster: &EtcdCluster) -> Vec<String> {
    let mut c = cluster.client(0).await.expect("etcd client");
    let r = c
        .get(
            "edgeplane-status/replicas/",
            Some(
                etcd_client::GetOptions::new()
                    .with_prefix()
                    .with_keys_only(),
            ),
        )
        .await
        .expect("etcd get");
    r.kvs()
        .iter()
        .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
        .collect()
}
