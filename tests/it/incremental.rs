//! Incremental loads, through a real `edgeplane serve` and a real Envoy: a
//! save re-reads and re-parses only the file that changed, encodes only the
//! resources whose content changed, and everything else keeps its bytes and
//! versions, so Envoy sees no Cluster or Listener change at all.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use crate::support::*;
use serde_json::Value;

const VIRTUAL_SERVICES: usize = 4;
const ROUTES_PER_VS: usize = 5;
const UPSTREAMS: usize = 3;

/// VirtualService `j`: domain `*` for the first (so plain requests reach
/// it), `vs-<j>.test` for the others; routes `/vs<j>/r<i>` plus `extra`.
fn vs(j: usize, extra: &[&str]) -> String {
    let domain = if j == 0 {
        "'*'".to_string()
    } else {
        format!("vs-{j}.test")
    };
    let mut routes = String::new();
    for p in extra {
        routes.push_str(&route(p, "u0", ""));
    }
    for i in 0..ROUTES_PER_VS {
        routes.push_str(&route(
            &format!("/vs{j}/r{i}"),
            &format!("u{}", i % UPSTREAMS),
            "",
        ));
    }
    let body = routes
        .lines()
        .map(|l| format!("    {l}\n"))
        .collect::<String>();
    format!(
        "apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata:\n  name: vs-{j}\n  namespace: gloo-system\nspec:\n  virtualHost:\n    domains: [{domain}]\n    routes:\n{body}"
    )
}

/// Waits until every file below `dir` was last changed long enough ago
/// that edgeplane trusts its timestamps (`source::fs::SETTLE_TIME`): a file
/// read sooner after it was written is read again at the next load.
async fn wait_settled(dir: &Path) -> anyhow::Result<()> {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let mut all = true;
        for e in std::fs::read_dir(dir)? {
            let meta = e?.metadata()?;
            all &= edgeplane::source::fs::is_settled(&meta, SystemTime::now());
        }
        if all {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < end, "manifests never settled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn by_type(v: &Value) -> [u64; 3] {
    ["CDS", "LDS", "RDS"].map(|t| v[t].as_u64().unwrap_or(u64::MAX))
}

/// The served version of each type (CDS, LDS, RDS) from `/status`.
fn served_versions(status: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for p in status["proxies"].as_array().into_iter().flatten() {
        for t in p["types"].as_array().into_iter().flatten() {
            out.push(format!("{}={}", t["typeUrl"], t["version"]));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_file_edit_reads_parses_and_encodes_only_what_changed() -> anyhow::Result<()> {
    let port = free_port();
    let backend = Backend::start("b1").await;
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("manifests");
    std::fs::create_dir(&dir)?;
    let mut files = vec![("gateway.yaml".to_string(), gateway(port, ""))];
    for u in 0..UPSTREAMS {
        files.push((
            format!("up-{u}.yaml"),
            upstream(&format!("u{u}"), &[backend.port]),
        ));
    }
    for j in 0..VIRTUAL_SERVICES {
        files.push((format!("vs-{j}.yaml"), vs(j, &[])));
    }
    let n = files.len() as u64;
    for (name, text) in &files {
        write_atomic(&dir, name, text);
    }
    wait_settled(&dir).await?;

    let cp = ControlPlane::start(&dir, 0, tmp.path()).await;
    let envoy = Envoy::start(cp.xds_port, "test-node", tmp.path()).await;
    cp.wait_connected_in_mode("test-node").await;
    let logs = || {
        format!(
            "--- edgeplane log ---\n{}\n--- envoy log ---\n{}",
            cp.log_text(),
            envoy.log_text()
        )
    };
    envoy.wait_serving(port, "/vs0/r1").await;

    // The first load read and encoded everything.
    let first = cp.status().await;
    let l = &first["lastLoad"];
    assert_eq!(first["loads"], 1, "{first}");
    assert_eq!(
        (l["filesRead"].as_u64(), l["filesReused"].as_u64()),
        (Some(n), Some(0)),
        "{l}"
    );
    assert_eq!(
        by_type(&l["resourcesEncoded"]),
        [UPSTREAMS as u64, 1, 1],
        "{l}"
    );

    let route_name = format!("listener-127.0.0.1-{port}-routes");
    let (lds0, cds0, rds0) = envoy.versions(&route_name).await;
    assert!(!lds0.is_empty() && !cds0.is_empty() && !rds0.is_empty());
    let stat = |name: &'static str| {
        let envoy = &envoy;
        async move { envoy.stat(name).await.unwrap_or(u64::MAX) }
    };
    let clusters_modified = stat("cluster_manager.cluster_modified").await;
    let listeners_modified = stat("listener_manager.listener_modified").await;
    let listeners_added = stat("listener_manager.listener_added").await;
    let versions0 = served_versions(&first);

    // Edit one VirtualService out of four: a route added.
    write_atomic(&dir, "vs-0.yaml", &vs(0, &["/probe"]));
    let body = envoy.wait_serving(port, "/probe").await;
    assert!(body.contains("b1"), "the demo backend answered: {body}");
    let edited = cp.wait_load_after(1).await;
    let l = &edited["lastLoad"];
    assert_eq!(
        edited["loads"],
        2,
        "one save, one load: {edited}\n{}",
        logs()
    );
    assert_eq!(l["load"], 2, "{l}");
    assert_eq!(l["filesRead"], 1, "only the edited file is read: {l}");
    assert_eq!(l["filesReused"].as_u64(), Some(n - 1), "{l}");
    assert_eq!(l["filesParsed"], 1, "{l}");
    assert_eq!(l["parsesReused"].as_u64(), Some(n - 1), "{l}");
    assert_eq!(
        by_type(&l["resourcesEncoded"]),
        [0, 0, 1],
        "only the RouteConfiguration is encoded: {l}"
    );
    assert_eq!(
        by_type(&l["resourcesReused"]),
        [UPSTREAMS as u64, 1, 0],
        "clusters and the listener keep their encoding: {l}"
    );
    assert!(l["durationMs"].as_f64().is_some_and(|ms| ms > 0.0), "{l}");
    let versions1 = served_versions(&edited);
    assert_eq!(versions0.len(), 3);
    assert_eq!(
        versions0[..2],
        versions1[..2],
        "CDS and LDS versions unchanged"
    );
    assert_ne!(versions0[2], versions1[2], "the RDS version changed");

    // Envoy: same CDS and LDS versions, a new RDS one, nothing modified.
    let (lds1, cds1, rds1) = envoy.versions(&route_name).await;
    assert_eq!((&lds1, &cds1), (&lds0, &cds0), "{}", logs());
    assert_ne!(rds1, rds0);
    assert_eq!(
        stat("cluster_manager.cluster_modified").await,
        clusters_modified
    );
    assert_eq!(
        stat("listener_manager.listener_modified").await,
        listeners_modified
    );
    assert_eq!(
        stat("listener_manager.listener_added").await,
        listeners_added
    );

    // A save that changes nothing (same bytes, new inode): read again, but
    // nothing parsed or encoded, and nothing sent. vs-0.yaml may be read
    // once more too: it was read right after it was written, when its
    // timestamps could not be trusted yet.
    write_atomic(&dir, "vs-1.yaml", &vs(1, &[]));
    let same = cp.wait_load_after(2).await;
    let l = &same["lastLoad"];
    let read = l["filesRead"].as_u64().unwrap_or(0);
    assert!((1..=2).contains(&read), "{l}");
    assert_eq!(l["filesReused"].as_u64(), Some(n - read), "{l}");
    assert_eq!(l["filesParsed"], 0, "{l}");
    assert_eq!(l["parsesReused"].as_u64(), Some(n), "{l}");
    assert_eq!(by_type(&l["resourcesEncoded"]), [0, 0, 0], "{l}");
    assert_eq!(served_versions(&same), versions1);
    assert_eq!(envoy.versions(&route_name).await, (lds1, cds1, rds1));
    Ok(())
}
