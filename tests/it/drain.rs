//! Gateway-level edits drain, and say so, through real Envoy 1.40 (run with
//! `--drain-time-s 2` by the harness): edgeplane learns the listener's open
//! connections from the stats Envoy streams to it, names the listener and
//! the count when an edit changes the Listener (log and `/status`), and
//! Envoy keeps the open WebSocket working until its drain time, then closes
//! it.

use std::time::{Duration, Instant};

use crate::support::*;
use anyhow::{Context, Result};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

const UP: &str = "backend";
const NODE: &str = "test-node";

fn files(port: u16, backend: u16) -> Vec<(&'static str, String)> {
    vec![
        ("gateway.yaml", gateway(port, "")),
        ("upstream.yaml", upstream(UP, &[backend])),
        ("vs.yaml", virtual_service(&route("/", UP, ""))),
    ]
}

/// The node's active connections on `listener`, per edgeplane's `/status`.
fn active_connections(status: &Value, listener: &str) -> Option<u64> {
    let node = status_node(status, NODE)?;
    status_entry(node, "listeners", "listener", listener)?["activeConnections"].as_u64()
}

enum Echo {
    Ok,
    Closed,
}

/// Sends `text` and waits (bounded) for it back; `Closed` when the socket
/// closes (or fails) instead.
async fn try_echo(ws: &mut Ws, text: &str) -> Result<Echo> {
    if ws.send(Message::text(text)).await.is_err() {
        return Ok(Echo::Closed);
    }
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .context("no echo and no close within 5 s")?;
        match msg {
            Some(Ok(Message::Text(t))) => {
                anyhow::ensure!(t.as_str() == text, "echo mismatch: {t}");
                return Ok(Echo::Ok);
            }
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return Ok(Echo::Closed),
            Some(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turning_listener_upgrades_off_drains_the_open_websocket_and_says_so() -> Result<()> {
    let s = Stack::serving(files).await;
    let port = s.port;
    let listener = format!("listener-127.0.0.1-{port}");

    let mut ws = ws_connect(port, "/chat")
        .await
        .map_err(|code| anyhow::anyhow!("expected 101, got {code}\n{}", s.logs()))?;
    echo(&mut ws, "before the edit").await;

    // Envoy's stats reach edgeplane: one connection on the listener.
    let cp = &s.cp;
    let l = listener.as_str();
    eventually("edgeplane sees 1 connection on the listener", || async {
        let st = cp.status().await;
        (active_connections(&st, l) == Some(1)).then_some(())
    })
    .await;
    let modified_before = s
        .envoy
        .stat("listener_manager.listener_modified")
        .await
        .unwrap_or(0);

    // The Gateway edit that changes the Listener: upgrades off.
    let loads = s.cp.loads().await;
    let hcm = "upgrades:\n- websocket:\n    enabled: false\n";
    write_atomic(&s.dir, "gateway.yaml", &gateway(port, hcm));
    s.cp.wait_load_after(loads).await;

    // edgeplane names the listener, the node and the one connection.
    let drain = eventually("a drain in /status", || async {
        status_entry(&cp.status().await, "drains", "listener", l).cloned()
    })
    .await;
    assert_eq!(drain["nodeId"], NODE, "{drain}");
    assert_eq!(drain["proxy"], "gloo-system~gateway-proxy");
    assert_eq!(drain["change"], "modified");
    assert_eq!(drain["activeConnections"], 1, "{drain}\n{}", s.logs());
    assert_eq!(drain["filterChains"], serde_json::json!([]));
    let log = s.cp.log_text();
    let line = log
        .lines()
        .find(|line| line.contains("WARN") && line.contains(&listener) && line.contains("drain"))
        .with_context(|| format!("no drain warning in the log:\n{log}"))?;
    assert!(line.contains("1 active connection(s)"), "{line}");
    assert!(line.contains(&format!("{NODE:?}")), "{line}");
    assert!(line.contains("--drain-time-s"), "{line}");

    // Envoy takes the new Listener...
    let envoy = &s.envoy;
    eventually("Envoy modified the listener", || async {
        let n = envoy.stat("listener_manager.listener_modified").await?;
        (n > modified_before).then_some(())
    })
    .await;
    let applied = Instant::now();
    assert_eq!(
        envoy.stat("listener_manager.listener_modified").await,
        Some(modified_before + 1)
    );

    // ...keeps the open WebSocket working during the drain window, then
    // closes it after its drain time (2 s).
    let mut echoes_during_drain = 0;
    let closed_after = loop {
        anyhow::ensure!(
            applied.elapsed() < Duration::from_secs(10),
            "the WebSocket was not closed within 10 s of the listener change\n{}",
            s.logs()
        );
        match try_echo(&mut ws, "during the drain").await? {
            Echo::Ok => echoes_during_drain += 1,
            Echo::Closed => break applied.elapsed(),
        }
        // The probing interval of a bounded loop: an echo every 200 ms
        // until Envoy closes the socket.
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        echoes_during_drain >= 1,
        "the WebSocket stopped working at once ({closed_after:?})"
    );
    assert!(
        closed_after >= Duration::from_secs(1),
        "closed after {closed_after:?}, before the 2 s drain time"
    );
    eprintln!(
        "WebSocket closed {closed_after:?} after Envoy took the new listener ({echoes_during_drain} echoes during the drain)"
    );

    // New upgrades on the default route are refused now.
    assert_eq!(
        ws_connect(port, "/chat").await.err(),
        Some(403),
        "{}",
        s.logs()
    );

    // And the drain is counted.
    let (_, metrics) = s.cp.admin_get("/metrics").await?;
    assert!(
        metrics.contains("edgeplane_listener_drains_total 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("edgeplane_listener_drain_connections_total 1\n"),
        "{metrics}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_edits_drain_nothing() -> Result<()> {
    let s = Stack::serving(files).await;
    let mut ws = ws_connect(s.port, "/chat")
        .await
        .map_err(|code| anyhow::anyhow!("expected 101, got {code}"))?;
    echo(&mut ws, "hi").await;

    let (_, _, rds_before) = s.envoy.versions(&s.route_name()).await;
    let loads = s.cp.loads().await;
    write_atomic(
        &s.dir,
        "vs.yaml",
        &virtual_service(&route("/", UP, "timeout: 9s\n")),
    );
    s.cp.wait_load_after(loads).await;
    let envoy = &s.envoy;
    let rn = s.route_name();
    eventually("Envoy took the new routes", || async {
        let (_, _, rds) = envoy.versions(&rn).await;
        (rds != rds_before).then_some(())
    })
    .await;
    let st = s.cp.status().await;
    assert_eq!(st["drains"], serde_json::json!([]), "{st}");
    echo(&mut ws, "still open").await;
    Ok(())
}
