//! The watcher, through real Envoy: deletes, directory moves in and out,
//! ignored editor files, and a config directory that disappears and comes
//! back. Every step waits on what Envoy (or edgeplane's `/status`) shows.

use crate::support::*;

const UP: &str = "backend";

async fn stack() -> Stack {
    let port = free_port();
    let be = Backend::start("b1").await;
    let bport = be.port;
    let files = vec![
        ("gateway.yaml", gateway(port, "")),
        ("upstream.yaml", upstream(UP, &[bport])),
        ("vs.yaml", virtual_service(&route("/", UP, ""))),
    ];
    let s = Stack::start(port, be, &files).await;
    s.envoy.wait_serving(port, "/").await;
    s
}

async fn has_cluster(s: &Stack, name: &str) -> bool {
    let needle = format!(r#""name":"{name}""#);
    s.envoy.config_dump().await.to_string().contains(&needle)
}

async fn wait_cluster(s: &Stack, name: &str, present: bool) {
    eventually(
        &format!("cluster {name} present={present} in Envoy"),
        || async { (has_cluster(s, name).await == present).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_and_directory_moves_are_seen() {
    let s = stack().await;

    // A directory moved into the tree brings its manifests.
    let staging = s.tmp.path().join("staging");
    std::fs::create_dir_all(staging.join("sub/deeper")).expect("mkdir staging");
    std::fs::write(
        staging.join("sub/deeper/extra.yaml"),
        upstream("extra", &[1]),
    )
    .expect("write");
    std::fs::rename(staging.join("sub"), s.dir.join("sub")).expect("move dir in");
    wait_cluster(&s, "extra_gloo-system", true).await;

    // Moved out again: gone.
    std::fs::rename(s.dir.join("sub"), s.tmp.path().join("out")).expect("move dir out");
    wait_cluster(&s, "extra_gloo-system", false).await;

    // A plain delete.
    write_atomic(&s.dir, "more.yml", &upstream("more", &[2]));
    wait_cluster(&s, "more_gloo-system", true).await;
    std::fs::remove_file(s.dir.join("more.yml")).expect("delete");
    wait_cluster(&s, "more_gloo-system", false).await;

    // Editor droppings are ignored, even when they are not valid YAML.
    let loads = s.cp.loads().await;
    std::fs::write(s.dir.join(".vs.yaml.swp"), b"\x00\x01garbage").expect("swap file");
    std::fs::write(s.dir.join("vs.yaml~"), "not: [valid").expect("backup file");
    std::fs::write(s.dir.join(".#vs.yaml"), "kind: {").expect("lock file");
    let status = s.cp.wait_load_after(loads).await;
    assert_eq!(status["lastLoadFailed"], false, "{status}\n{}", s.logs());
    assert_eq!(
        status["diagnostics"].as_array().map(Vec::len),
        Some(0),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_dir_removed_and_restored() {
    let s = stack().await;
    let aside = s.tmp.path().join("aside");
    let loads = s.cp.loads().await;
    std::fs::rename(&s.dir, &aside).expect("move config dir away");
    let status = s.cp.wait_load_after(loads).await;
    assert_eq!(status["lastLoadFailed"], true, "{status}");
    // Nothing served changed: Envoy still routes.
    assert_eq!(http_get(s.port, "/x").await.map(|r| r.0), Some(200));
    assert!(has_cluster(&s, "backend_gloo-system").await);

    std::fs::rename(&aside, &s.dir).expect("move config dir back");
    eventually("edgeplane reads the restored directory", || async {
        (s.cp.status().await["lastLoadFailed"] == false).then_some(())
    })
    .await;
    // And watches it again: a new edit reaches Envoy.
    write_atomic(&s.dir, "late.yaml", &upstream("late", &[3]));
    wait_cluster(&s, "late_gloo-system", true).await;
}

/// Regression: reading the directory must not itself count as a change
/// (inotify reports opens), or edgeplane reloads forever after one save.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_causes_a_bounded_number_of_reloads() {
    let s = stack().await;
    let loads = s.cp.loads().await;
    write_atomic(&s.dir, "more.yaml", &upstream("more", &[2]));
    wait_cluster(&s, "more_gloo-system", true).await;
    let after = s.cp.loads().await;
    assert!(after > loads);
    // Longer than the debounce window (500 ms at most): no event is pending,
    // so the count must stay where it is. A bounded wait for a non-event.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let settled = s.cp.loads().await;
    assert!(
        settled - loads <= 2,
        "{loads} -> {after} -> {settled}: reloading without edits"
    );
}
