//! Watching WebSockets through real Envoy 1.40: the HCM upgrade stats
//! Envoy streams to edgeplane (`http.http.downstream_cx_upgrades_active`,
//! `http.http.downstream_cx_upgrades_total`: Gloo's HCM `stat_prefix` is
//! `http`) show in `/status`, `/metrics` and `edgeplane status --output
//! json`, per node and per listener, as sockets open and close.

use std::collections::BTreeMap;

use crate::support::*;
use anyhow::{Context, Result};
use serde_json::Value;

const UP: &str = "backend";
const NODE: &str = "test-node";

fn files(port: u16, backend: u16) -> Vec<(&'static str, String)> {
    vec![
        ("gateway.yaml", gateway(port, "")),
        ("upstream.yaml", upstream(UP, &[backend])),
        ("vs.yaml", virtual_service(&route("/", UP, ""))),
    ]
}

/// (node upgrades active, node total, listener active, listener total) in a
/// status report (`/status` or `status --output json`).
fn upgrades(status: &Value, listener: &str) -> Option<(u64, u64, u64, u64)> {
    let node = status_node(status, NODE)?;
    let l = status_entry(node, "listeners", "listener", listener)?;
    Some((
        node["upgradesActive"].as_u64()?,
        node["upgradesTotal"].as_u64()?,
        l["upgradesActive"].as_u64()?,
        l["upgradesTotal"].as_u64()?,
    ))
}

fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

async fn status_cli_json(xds_port: u16) -> Result<Value> {
    let out = tokio::process::Command::new(edgeplane_bin())
        .args(["status", "--server", &format!("127.0.0.1:{xds_port}")])
        .args(["--output", "json"])
        .output()
        .await
        .context("run edgeplane status")?;
    anyhow::ensure!(out.status.success(), "edgeplane status failed: {out:?}");
    serde_json::from_slice(&out.stdout).context("status --output json")
}

/// Waits (bounded) until `/status`, `/metrics` and `status --output json`
/// all show `active` open WebSockets (and at least `total` since Envoy
/// started) on the listener and the node.
async fn wait_for(s: &Stack, listener: &str, active: u64, total: u64) -> Result<()> {
    let cp = &s.cp;
    let want =
        |u: (u64, u64, u64, u64)| u.0 == active && u.2 == active && u.1 >= total && u.3 >= total;
    eventually(&format!("/status shows {active} WebSocket(s)"), || async {
        upgrades(&cp.status().await, listener)
            .filter(|u| want(*u))
            .map(|_| ())
    })
    .await;
    let series = format!("{{node=\"{NODE}\",listener=\"{listener}\"}}");
    let node_series = format!("{{node=\"{NODE}\",listener=\"\"}}");
    eventually(&format!("/metrics shows {active} WebSocket(s)"), || async {
        let (code, body) = cp.admin_get("/metrics").await.ok()?;
        if code != 200 {
            return None;
        }
        let m = samples(&body);
        let v = |name: &str, labels: &str| m.get(&format!("{name}{labels}")).copied();
        (v("edgeplane_envoy_websockets_active", &series) == Some(active as f64)
            && v("edgeplane_envoy_websockets_active", &node_series) == Some(active as f64)
            && v("edgeplane_envoy_websockets_total", &series)? >= total as f64
            && v("edgeplane_envoy_websockets_total", &node_series)? >= total as f64)
            .then_some(())
    })
    .await;
    let xds = cp.xds_port;
    eventually(
        &format!("status --output json shows {active} WebSocket(s)"),
        || async {
            let st = status_cli_json(xds).await.ok()?;
            upgrades(&st, listener).filter(|u| want(*u)).map(|_| ())
        },
    )
    .await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_websockets_show_per_node_and_listener_in_status_metrics_and_cli() -> Result<()> {
    let s = Stack::serving(files).await;
    let listener = format!("listener-127.0.0.1-{}", s.port);

    let mut a = ws_connect(s.port, "/chat")
        .await
        .map_err(|code| anyhow::anyhow!("expected 101, got {code}\n{}", s.logs()))?;
    let mut b = ws_connect(s.port, "/chat")
        .await
        .map_err(|code| anyhow::anyhow!("expected 101, got {code}\n{}", s.logs()))?;
    echo(&mut a, "a").await;
    echo(&mut b, "b").await;

    // Envoy's own names for what edgeplane shows.
    let active = s
        .envoy
        .stat("http.http.downstream_cx_upgrades_active")
        .await;
    assert_eq!(active, Some(2), "{}", s.logs());
    let total = s.envoy.stat("http.http.downstream_cx_upgrades_total").await;
    assert_eq!(total, Some(2), "{}", s.logs());

    wait_for(&s, &listener, 2, 2).await?;
    let st = s.cp.status().await;
    let node = status_node(&st, NODE).context("node in /status")?;
    assert_eq!(node["statsReported"], true, "{node}");

    // Close one: 1 open, still 2 since Envoy started.
    a.close(None).await.ok();
    drop(a);
    wait_for(&s, &listener, 1, 2).await?;
    echo(&mut b, "still there").await;
    Ok(())
}
