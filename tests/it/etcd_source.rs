//! `serve --etcd-endpoints` against a real 3-member etcd cluster on
//! loopback (`support::etcd`) and a real Envoy: a transaction's manifests
//! served, edits and deletes, a broken document, a member killed mid-edits,
//! quorum lost, and a compaction while edgeplane's member was away.

use std::time::Duration;

use etcd_client::TxnOp;
use serde_json::Value;

use crate::support::etcd::EtcdCluster;
use crate::support::{
    ControlPlane, Envoy, direct_vs, free_port, gateway, http_get, poll, upstream,
};

const GW: &str = "edgeplane/gateway.solo.io/v1/Gateway/gloo-system/gw";
const UP: &str = "edgeplane/gloo.solo.io/v1/Upstream/gloo-system/u";
const VS: &str = "edgeplane/gateway.solo.io/v1/VirtualService/gloo-system/vs";

/// An Upstream in Gloo's flat form: kind, namespace and name from the key.
fn flat_upstream(port: u16) -> String {
    format!("metadata: {{}}\nstatic:\n  hosts:\n  - addr: 127.0.0.1\n    port: {port}\n")
}

fn up_key(name: &str) -> String {
    format!("edgeplane/gloo.solo.io/v1/Upstream/gloo-system/{name}")
}

/// The first manifests, in one transaction.
fn initial(port: u16, body: &str) -> Vec<TxnOp> {
    vec![
        TxnOp::put(GW, gateway(port, ""), None),
        TxnOp::put(UP, upstream("u", &[9]), None),
        TxnOp::put(up_key("flat"), flat_upstream(9), None),
        TxnOp::put(VS, direct_vs(body), None),
    ]
}

struct Served {
    cp: ControlPlane,
    envoy: Envoy,
    port: u16,
    _tmp: tempfile::TempDir,
}

impl Served {
    /// edgeplane on `endpoints` and an Envoy, serving `body` on `port`.
    async fn start(cluster: &EtcdCluster, endpoints: &[String], port: u16, body: &str) -> Served {
        let tmp = tempfile::tempdir().expect("temp dir");
        let cp = ControlPlane::start_etcd(endpoints, tmp.path(), &[]).await;
        let envoy = Envoy::start(cp.xds_port, "test-node", tmp.path()).await;
        cp.wait_connected_in_mode("test-node").await;
        let s = Served {
            cp,
            envoy,
            port,
            _tmp: tmp,
        };
        s.wait_body(body, cluster).await;
        s
    }

    /// Waits (30 s at most) until Envoy answers `GET /` with `body`.
    async fn wait_body(&self, body: &str, cluster: &EtcdCluster) {
        let port = self.port;
        let r = poll(
            &format!("envoy answers {body:?}"),
            Duration::from_secs(30),
            Duration::from_millis(50),
            || async {
                http_get(port, "/")
                    .await
                    .filter(|(s, b)| *s == 200 && b == body)
            },
        )
        .await;
        if let Err(e) = r {
            panic!("{e:#}\n{}\n{}", self.logs(), cluster.logs());
        }
    }

    /// Waits (30 s at most) until `/status` satisfies `f`.
    async fn wait_status(&self, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        let r = poll(
            what,
            Duration::from_secs(30),
            Duration::from_millis(50),
            || async {
                let s = self.cp.status().await;
                f(&s).then_some(s)
            },
        )
        .await;
        r.unwrap_or_else(|e| panic!("{e:#}\n{}", self.logs()))
    }

    fn logs(&self) -> String {
        self.cp.logs_with(&self.envoy.log_text())
    }

    fn route_name(&self) -> String {
        format!("listener-127.0.0.1-{}-routes", self.port)
    }

    /// Envoy's count of rejected LDS, CDS and RDS updates.
    async fn rejected(&self) -> u64 {
        self.envoy.rejected_updates(&self.route_name()).await
    }
}

fn upstreams(status: &Value) -> usize {
    status["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["kind"] == "Upstream")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_is_served_edits_and_deletes_follow_and_a_broken_key_is_named() {
    let cluster = EtcdCluster::start(3).await;
    let port = free_port();
    let rev = cluster.txn(initial(port, "v1")).await.expect("initial txn");
    let s = Served::start(&cluster, &cluster.endpoints(), port, "v1").await;

    let st = s.cp.status().await;
    let src = &st["source"];
    assert_eq!(src["kind"], "etcd", "{src}");
    assert_eq!(src["prefix"], "edgeplane");
    assert_eq!(src["connected"], true);
    assert!(src["revision"].as_i64().unwrap_or(0) >= rev, "{src}");
    assert_eq!(upstreams(&st), 2, "the flat Upstream is read too");
    let (code, metrics) = s.cp.admin_get("/metrics").await.expect("/metrics");
    assert_eq!(code, 200);
    assert!(
        metrics.contains("edgeplane_source_connected 1"),
        "{metrics}"
    );

    // An edit reaches Envoy.
    cluster.put(VS, &direct_vs("v2")).await.expect("put");
    s.wait_body("v2", &cluster).await;

    // A transaction of three documents is applied in one reload.
    let loads = s.cp.loads().await;
    cluster
        .txn(vec![
            TxnOp::put(VS, direct_vs("v2"), None),
            TxnOp::put(up_key("x"), upstream("x", &[9]), None),
            TxnOp::put(up_key("y"), flat_upstream(9), None),
        ])
        .await
        .expect("txn");
    let st = s
        .wait_status("the transaction's Upstreams", |st| upstreams(st) == 4)
        .await;
    assert_eq!(
        st["loads"].as_u64(),
        Some(loads + 1),
        "one reload for one transaction\n{}",
        s.logs()
    );

    // A broken document: named by key, line and column; v2 stays served.
    let broken = direct_vs("v3").replace("domains:", "domainz:");
    cluster.put(VS, &broken).await.expect("put broken");
    let file = format!("etcd:{VS}");
    let st = s
        .wait_status("a diagnostic for the broken key", |st| {
            st["diagnostics"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|d| d["file"] == file.as_str())
        })
        .await;
    let d = st["diagnostics"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d["file"] == file.as_str())
        .cloned()
        .unwrap_or_default();
    assert_eq!(d["line"], 8, "{d}");
    assert_eq!(d["column"], 5, "{d}");
    assert!(
        s.cp.log_text()
            .contains(&format!("file={file} line=8 column=5")),
        "the log names etcd:<key>:8:5\n{}",
        s.logs()
    );
    assert_eq!(
        http_get(port, "/").await.map(|(_, b)| b).as_deref(),
        Some("v2"),
        "the last good config stays served"
    );

    // A delete removes: no VirtualService, nothing served on the port (a
    // Gateway without virtual hosts has no listener).
    cluster.delete(VS).await.expect("delete");
    let r = poll(
        "the route is gone",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || async {
            match http_get(port, "/").await {
                Some((200, _)) => None,
                _ => Some(()),
            }
        },
    )
    .await;
    r.unwrap_or_else(|e| panic!("{e:#}\n{}", s.logs()));
    assert_eq!(s.rejected().await, 0, "{}", s.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_killed_mid_edits_loses_no_event() {
    let mut cluster = EtcdCluster::start(3).await;
    let leader = cluster.leader().await.expect("a leader");
    let followers: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let f = followers[0];
    // edgeplane starts on the follower that gets killed.
    let endpoints: Vec<String> = [f, followers[1], leader]
        .iter()
        .map(|i| cluster.members[*i].url())
        .collect();
    let port = free_port();
    cluster.txn(initial(port, "v0")).await.expect("initial txn");
    let s = Served::start(&cluster, &endpoints, port, "v0").await;
    assert_eq!(
        s.cp.status().await["source"]["endpoint"],
        cluster.members[f].url().as_str()
    );

    const EDITS: usize = 30;
    for i in 1..=EDITS {
        if i == 10 {
            cluster.kill(f);
        }
        if i == 20 {
            cluster.restart(f);
        }
        // Each edit: the body and one more Upstream, in one transaction.
        let ops = vec![
            TxnOp::put(VS, direct_vs(&format!("v{i}")), None),
            TxnOp::put(
                up_key(&format!("u{i}")),
                upstream(&format!("u{i}"), &[9]),
                None,
            ),
        ];
        cluster.txn(ops).await.expect("edit");
    }
    s.wait_body(&format!("v{EDITS}"), &cluster).await;
    // Every Upstream put arrived: none of the events was lost.
    s.wait_status("every edit's Upstream", |st| upstreams(st) == EDITS + 2)
        .await;
    let log = s.cp.log_text();
    assert!(
        log.contains("etcd: disconnected") && log.matches("etcd: connected").count() >= 2,
        "the watch broke and resumed on another member\n{}",
        s.logs()
    );
    assert_eq!(
        log.matches("etcd: listed the manifests").count(),
        1,
        "resumed by watching from the last revision, not by listing again"
    );
    assert_eq!(s.rejected().await, 0, "{}", s.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_lost_keeps_envoy_served_and_edits_after_it_are_served() {
    let mut cluster = EtcdCluster::start(3).await;
    let port = free_port();
    cluster.txn(initial(port, "v1")).await.expect("initial txn");
    let s = Served::start(&cluster, &cluster.endpoints(), port, "v1").await;
    let before = s.envoy.versions(&s.route_name()).await;

    cluster.kill(0);
    cluster.kill(1);
    let st = s
        .wait_status("/status says disconnected", |st| {
            st["source"]["connected"] == false
        })
        .await;
    assert_eq!(st["serving"], true);
    let (code, _) = s.cp.admin_get("/readyz").await.expect("/readyz");
    assert_eq!(code, 200, "still ready: the last snapshot is served");
    let (code, metrics) = s.cp.admin_get("/metrics").await.expect("/metrics");
    assert_eq!(code, 200);
    assert!(
        metrics.contains("edgeplane_source_connected 0"),
        "{metrics}"
    );
    // Envoy keeps its config: the same versions, nothing rejected, requests answered.
    for _ in 0..10 {
        let r = http_get(port, "/").await;
        assert_eq!(r.map(|(_, b)| b).as_deref(), Some("v1"), "{}", s.logs());
    }
    assert_eq!(s.envoy.versions(&s.route_name()).await, before);
    assert_eq!(s.rejected().await, 0, "{}", s.logs());
    assert_eq!(
        s.cp.log_text().matches("etcd: disconnected").count(),
        1,
        "logged once, not per retry\n{}",
        s.logs()
    );

    cluster.restart(0);
    cluster.restart(1);
    cluster
        .wait_healthy()
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", cluster.logs()));
    cluster
        .put(VS, &direct_vs("v2"))
        .await
        .expect("edit after the outage");
    s.wait_body("v2", &cluster).await;
    s.wait_status("/status says connected", |st| {
        st["source"]["connected"] == true
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_while_its_member_was_away_lists_again_and_converges() {
    let mut cluster = EtcdCluster::start(3).await;
    let port = free_port();
    cluster.txn(initial(port, "v1")).await.expect("initial txn");
    // edgeplane knows one member only, so it cannot move on.
    let only = vec![cluster.members[0].url()];
    let s = Served::start(&cluster, &only, port, "v1").await;

    cluster.kill(0);
    s.wait_status("/status says disconnected", |st| {
        st["source"]["connected"] == false
    })
    .await;
    let mut rev = 0;
    for i in 2..=6 {
        rev = cluster
            .put(VS, &direct_vs(&format!("v{i}")))
            .await
            .expect("edit");
    }
    cluster.delete(&up_key("flat")).await.expect("delete");
    rev = cluster
        .put(&up_key("late"), &upstream("late", &[9]))
        .await
        .unwrap_or(rev);
    cluster.compact(rev).await.expect("compact");
    cluster.restart(0);

    s.wait_body("v6", &cluster).await;
    let st = s
        .wait_status("the deleted and the new Upstream", |st| {
            let names: Vec<&str> = st["resources"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|r| r["kind"] == "Upstream")
                .filter_map(|r| r["name"].as_str())
                .collect();
            names.contains(&"late") && !names.contains(&"flat")
        })
        .await;
    assert!(st["source"]["revision"].as_i64().unwrap_or(0) >= rev);
    let log = s.cp.log_text();
    assert!(
        log.contains("compacted; listing again")
            && log.matches("etcd: listed the manifests").count() >= 2,
        "re-listed after the compaction\n{}",
        s.logs()
    );
}

/// A CA, a member certificate for 127.0.0.1 and a client certificate,
/// written as PEM files into `dir`.
fn etcd_pki(dir: &std::path::Path) -> crate::support::etcd::EtcdTls {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose,
    };
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(DnType::CommonName, "etcd test CA");
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(p, KeyPair::generate().expect("CA key"))
        .expect("CA certificate");
    let leaf = |names: &[&str], usages: Vec<ExtendedKeyUsagePurpose>| {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut p = CertificateParams::new(names.clone()).expect("leaf params");
        p.distinguished_name.push(DnType::CommonName, &names[0]);
        p.extended_key_usages = usages;
        let key = KeyPair::generate().expect("leaf key");
        let cert = p.signed_by(&key, &ca).expect("leaf certificate");
        (cert.pem(), key.serialize_pem())
    };
    // etcd's own gateway dials the member with its server certificate, so
    // it is a client certificate too.
    let (server, server_key) = leaf(
        &["127.0.0.1", "localhost"],
        vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
    );
    let (client, client_key) = leaf(&["edgeplane"], vec![ExtendedKeyUsagePurpose::ClientAuth]);
    let write = |name: &str, pem: &str| {
        let path = dir.join(name);
        std::fs::write(&path, pem).expect("write PEM");
        path
    };
    crate::support::etcd::EtcdTls {
        ca: write("ca.crt", &ca.pem()),
        server_cert: write("server.crt", &server),
        server_key: write("server.key", &server_key),
        client_cert: write("client.crt", &client),
        client_key: write("client.key", &client_key),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_client_certificates_and_passwords_reach_etcd() {
    let pki = tempfile::tempdir().expect("temp dir");
    let tls = etcd_pki(pki.path());
    let mut cluster = EtcdCluster::start_with(1, Some(tls.clone())).await;
    let port = free_port();
    cluster.txn(initial(port, "v1")).await.expect("initial txn");
    cluster.enable_auth("s3cret").await.expect("enable auth");
    let tmp = tempfile::tempdir().expect("temp dir");
    let path = |p: &std::path::Path| p.display().to_string();
    let tls_args = vec![
        "--etcd-ca".to_string(),
        path(&tls.ca),
        "--etcd-cert".into(),
        path(&tls.client_cert),
        "--etcd-key".into(),
        path(&tls.client_key),
    ];

    // Without the password: not connected, and the reason is shown.
    let refused = ControlPlane::start_etcd(&cluster.endpoints(), tmp.path(), &tls_args).await;
    let r = poll(
        "a refused login in /status",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || async {
            let st = refused.status().await;
            let src = &st["source"];
            (src["connected"] == false && !src["error"].as_str().unwrap_or("").is_empty())
                .then_some(())
        },
    )
    .await;
    r.unwrap_or_else(|e| panic!("{e:#}\n{}", refused.log_text()));
    drop(refused);

    let mut args = tls_args.clone();
    args.extend([
        "--etcd-user".into(),
        "root".into(),
        "--etcd-password".into(),
        "s3cret".into(),
    ]);
    let cp = ControlPlane::start_etcd(&cluster.endpoints(), tmp.path(), &args).await;
    let envoy = Envoy::start(cp.xds_port, "test-node", tmp.path()).await;
    let s = Served {
        cp,
        envoy,
        port,
        _tmp: tmp,
    };
    s.wait_body("v1", &cluster).await;
    cluster
        .put(VS, &direct_vs("v2"))
        .await
        .expect("edit over TLS as root");
    s.wait_body("v2", &cluster).await;
}
