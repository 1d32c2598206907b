//! The write path against a real 3-member etcd cluster on loopback
//! (`support::etcd`): `apply` of a directory served through `serve
//! --etcd-endpoints` and a real Envoy; `export` read back by `serve
//! --config-dir` to the same versions; an invalid apply and `--dry-run`
//! leave the store's revision unchanged; a delete that breaks a route is
//! refused; two applies from the same base race deterministically through
//! the `EDGEPLANE_TEST_APPLY_PAUSE_DIR` hook (the first waits between its
//! read and its write while the second commits).

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::etcd::EtcdCluster;
use crate::support::{
    ControlPlane, Envoy, edgeplane_bin, free_port, gateway, http_get, poll, upstream,
};

const VS_KEY: &str = "edgeplane/gateway.solo.io/v1/VirtualService/gloo-system/vs";
const U_KEY: &str = "edgeplane/gloo.solo.io/v1/Upstream/gloo-system/u";

/// A VirtualService answering `/` with `body`, and `/u` through Upstream `u`.
fn vs(body: &str) -> String {
    format!(
        "apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata:\n  name: vs\n  namespace: gloo-system\nspec:\n  virtualHost:\n    domains: ['*']\n    routes:\n    - matchers:\n      - prefix: /u\n      routeAction:\n        single:\n          upstream: {{name: u, namespace: gloo-system}}\n    - matchers:\n      - prefix: /\n      directResponseAction:\n        status: 200\n        body: {body}\n"
    )
}

/// A manifests directory: Gateway, Upstream `u`, a flat-form Upstream in
/// Gloo's layout, and the VirtualService in its own file.
fn write_dir(dir: &Path, port: u16, body: &str) {
    let w = |rel: &str, text: &str| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write manifest");
    };
    w(
        "base.yaml",
        &format!("{}---\n{}", gateway(port, ""), upstream("u", &[9])),
    );
    w(
        "upstreams/gloo-system/flat.yaml",
        "metadata:\n  name: flat\nstatic:\n  hosts:\n  - addr: 127.0.0.1\n    port: 9\n",
    );
    w("vs.yaml", &vs(body));
}

fn edgeplane(cluster: &EtcdCluster, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut c = Command::new(edgeplane_bin());
    c.args(args)
        .args(["--etcd-endpoints", &cluster.endpoints().join(",")])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run edgeplane")
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The cluster's current revision.
async fn revision(cluster: &EtcdCluster) -> i64 {
    let mut c = cluster.client(0).await.expect("etcd client");
    let r = c.get("probe", None).await.expect("etcd get");
    r.header().map_or(0, |h| h.revision())
}

async fn value(cluster: &EtcdCluster, key: &str) -> Option<String> {
    let mut c = cluster.client(0).await.expect("etcd client");
    let r = c.get(key, None).await.expect("etcd get");
    r.kvs()
        .first()
        .map(|kv| String::from_utf8_lossy(kv.value()).into_owned())
}

async fn generation(cp: &ControlPlane) -> Option<String> {
    let (code, body) = cp.admin_get("/config_dump").await.ok()?;
    if code != 200 {
        return None;
    }
    let v: Value = serde_json::from_str(&body).ok()?;
    v["generation"].as_str().map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_apply_of_a_directory_is_served_and_export_reads_back_identically() {
    let cluster = EtcdCluster::start(3).await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("cfg");
    let port = free_port();
    write_dir(&dir, port, "v1");
    let dir_s = dir.display().to_string();

    let o = edgeplane(&cluster, &["apply", "-f", &dir_s], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("4 created, 0 changed, 0 deleted"),
        "{}",
        text(&o)
    );
    // The generation key is written beside the prefix, never below it.
    let g = value(&cluster, "edgeplane-meta/generation")
        .await
        .expect("generation key");
    assert!(g.contains("\"digest\":\"sha256:"), "{g}");

    // The same apply again writes nothing.
    let before = revision(&cluster).await;
    let o = edgeplane(&cluster, &["apply", "-f", &dir_s], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("no changes"), "{}", text(&o));
    assert_eq!(revision(&cluster).await, before);

    // Served from etcd through a real Envoy.
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&logs).expect("mkdir logs");
    let cp = ControlPlane::start_etcd(&cluster.endpoints(), &logs, &[]).await;
    let envoy = Envoy::start(cp.xds_port, "test-node", &logs).await;
    cp.wait_connected_in_mode("test-node").await;
    let r = poll(
        "envoy answers v1",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || async {
            http_get(port, "/")
                .await
                .filter(|(s, b)| *s == 200 && b == "v1")
        },
    )
    .await;
    if let Err(e) = r {
        panic!("{e:#}\n{}", cp.logs_with(&envoy.log_text()));
    }

    // get: JSON with the parsed documents; YAML as stored.
    let o = edgeplane(&cluster, &["get", "-o", "json"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let got: Value = serde_json::from_slice(&o.stdout).expect("get -o json is JSON");
    let items = got.as_array().expect("an array");
    assert_eq!(items.len(), 4, "{got}");
    let vs_item = items
        .iter()
        .find(|i| i["key"] == VS_KEY)
        .expect("the VirtualService");
    assert_eq!(vs_item["kind"], "VirtualService");
    assert!(vs_item["modRevision"].as_i64().unwrap_or(0) > 0);
    assert_eq!(vs_item["document"]["metadata"]["name"], "vs");
    let o = edgeplane(&cluster, &["get", "upstream", "gloo-system", "u"], &[]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(out, format!("---\n# {U_KEY}\n{}", upstream("u", &[9])));

    // export → serve --config-dir: the same generation as from etcd.
    let exported = tmp.path().join("exported");
    let o = edgeplane(&cluster, &["export", &exported.display().to_string()], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        exported
            .join("virtualservices/gloo-system/vs.yaml")
            .is_file()
    );
    let o = edgeplane(&cluster, &["export", &exported.display().to_string()], &[]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "a non-empty directory: {}",
        text(&o)
    );
    let from_dir = ControlPlane::start(&exported, 0, &logs).await;
    let want = generation(&cp).await.expect("etcd serve generation");
    let r = poll(
        "the exported directory's generation",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || async { generation(&from_dir).await.filter(|g| *g == want) },
    )
    .await;
    if let Err(e) = r {
        panic!("{e:#}: want {want}, got {:?}", generation(&from_dir).await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_invalid_apply_and_dry_run_write_nothing_and_a_used_upstream_is_not_deleted() {
    let cluster = EtcdCluster::start(3).await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("cfg");
    write_dir(&dir, free_port(), "v1");
    let o = edgeplane(&cluster, &["apply", "-f", &dir.display().to_string()], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let base = revision(&cluster).await;

    // Invalid: refused with file:line:col, nothing written.
    let bad = tmp.path().join("bad.yaml");
    std::fs::write(&bad, vs("v2").replace("domains:", "domainz:")).expect("write");
    let o = edgeplane(&cluster, &["apply", "-f", &bad.display().to_string()], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(err.contains(&format!("{}:8:5", bad.display())), "{err}");
    assert!(err.contains("nothing written"), "{err}");
    assert_eq!(revision(&cluster).await, base, "the store is untouched");

    // --strict refuses warnings (a route to a missing Upstream).
    let warn = tmp.path().join("warn.yaml");
    std::fs::write(&warn, vs("v2").replace("name: u,", "name: nope,")).expect("write");
    let o = edgeplane(
        &cluster,
        &["apply", "--strict", "-f", &warn.display().to_string()],
        &[],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("{}:14:21", warn.display())),
        "{}",
        text(&o)
    );
    assert_eq!(revision(&cluster).await, base);

    // --dry-run: the diff, nothing written.
    let edit = tmp.path().join("edit.yaml");
    std::fs::write(&edit, vs("v2")).expect("write");
    let o = edgeplane(
        &cluster,
        &["apply", "--dry-run", "-f", &edit.display().to_string()],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        out.starts_with(&format!("changed {VS_KEY}\n--- {VS_KEY}\n+++ {VS_KEY}\n")),
        "{out}"
    );
    assert!(
        out.contains("\n-        body: v1\n+        body: v2\n"),
        "{out}"
    );
    assert_eq!(revision(&cluster).await, base);

    // Over etcd's default limit of 128 operations: refused whole, never split.
    let many = tmp.path().join("many.yaml");
    let docs: Vec<String> = (0..127).map(|i| upstream(&format!("m{i}"), &[9])).collect();
    std::fs::write(&many, docs.join("---\n")).expect("write");
    let o = edgeplane(&cluster, &["apply", "-f", &many.display().to_string()], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("etcd --max-txn-ops"), "{}", text(&o));
    assert_eq!(revision(&cluster).await, base);

    // Deleting the Upstream a route uses is refused; the unused one goes.
    let o = edgeplane(&cluster, &["delete", "Upstream", "gloo-system", "u"], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("etcd:{VS_KEY}:14:21")),
        "{}",
        text(&o)
    );
    assert_eq!(revision(&cluster).await, base);
    let o = edgeplane(
        &cluster,
        &["delete", "upstreams", "gloo-system", "flat"],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        value(
            &cluster,
            "edgeplane/gloo.solo.io/v1/Upstream/gloo-system/flat"
        )
        .await
        .is_none()
    );
    let o = edgeplane(
        &cluster,
        &["delete", "Upstream", "gloo-system", "flat"],
        &[],
    );
    assert_eq!(o.status.code(), Some(1), "not found: {}", text(&o));
    // Deleting by file: the VirtualService, then its Upstream is free to go.
    let o = edgeplane(
        &cluster,
        &["delete", "-f", &edit.display().to_string()],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = edgeplane(&cluster, &["delete", "Upstream", "gloo-system", "u"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

/// Starts `apply -f <file>` paused between its read and its write; returns
/// the child and the hook directory once it has read and validated.
async fn paused_apply(
    cluster: &EtcdCluster,
    file: &Path,
    hook: &Path,
    extra: &[&str],
) -> std::process::Child {
    std::fs::create_dir_all(hook).expect("mkdir hook");
    let child = Command::new(edgeplane_bin())
        .args(["apply", "-f", &file.display().to_string()])
        .args(extra)
        .args(["--etcd-endpoints", &cluster.endpoints().join(",")])
        .env("RUST_LOG", "warn")
        .env("EDGEPLANE_TEST_APPLY_PAUSE_DIR", hook)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn apply");
    poll(
        "the first apply has read and validated",
        Duration::from_secs(30),
        Duration::from_millis(20),
        || async { hook.join("validated").exists().then_some(()) },
    )
    .await
    .expect("the paused apply reads the store");
    child
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_concurrent_applies_never_clobber() {
    let cluster = EtcdCluster::start(3).await;
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("cfg");
    write_dir(&dir, free_port(), "v1");
    let o = edgeplane(&cluster, &["apply", "-f", &dir.display().to_string()], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // A adds an Upstream, B edits the VirtualService, both from the same base.
    let a_file = tmp.path().join("a.yaml");
    std::fs::write(&a_file, upstream("x", &[9])).expect("write");
    let b_file = tmp.path().join("b.yaml");
    std::fs::write(&b_file, vs("v2")).expect("write");
    let x_key = "edgeplane/gloo.solo.io/v1/Upstream/gloo-system/x";

    // Without retries: A reports the conflict (exit 3); only B committed.
    let hook = tmp.path().join("hook1");
    let a = paused_apply(&cluster, &a_file, &hook, &["--retries", "0"]).await;
    let o = edgeplane(
        &cluster,
        &["apply", "-f", &b_file.display().to_string()],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let after_b = revision(&cluster).await;
    std::fs::write(hook.join("go"), "").expect("go");
    let o = a.wait_with_output().expect("wait A");
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("conflict"), "{}", text(&o));
    assert_eq!(revision(&cluster).await, after_b, "the loser wrote nothing");
    assert!(value(&cluster, x_key).await.is_none());
    assert!(
        value(&cluster, VS_KEY)
            .await
            .is_some_and(|v| v.contains("body: v2"))
    );

    // With retries: A re-reads, re-validates and commits on B's result.
    let b2_file = tmp.path().join("b2.yaml");
    std::fs::write(&b2_file, vs("v3")).expect("write");
    let hook = tmp.path().join("hook2");
    let a = paused_apply(&cluster, &a_file, &hook, &[]).await;
    let o = edgeplane(
        &cluster,
        &["apply", "-f", &b2_file.display().to_string()],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    std::fs::write(hook.join("go"), "").expect("go");
    let o = a.wait_with_output().expect("wait A");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("conflict"), "{}", text(&o));
    assert!(value(&cluster, x_key).await.is_some(), "A's change");
    assert!(
        value(&cluster, VS_KEY)
            .await
            .is_some_and(|v| v.contains("body: v3")),
        "B's change is kept"
    );

    // A delete racing an apply is seen through the generation key: the
    // apply's range compare alone would miss it.
    let hook = tmp.path().join("hook3");
    let a = paused_apply(&cluster, &b_file, &hook, &["--retries", "0"]).await;
    let o = edgeplane(&cluster, &["delete", "Upstream", "gloo-system", "x"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    std::fs::write(hook.join("go"), "").expect("go");
    let o = a.wait_with_output().expect("wait A");
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
}
