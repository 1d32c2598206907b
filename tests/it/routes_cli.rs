//! `edgeplane routes` on the sample manifests
//! (examples/websocket-reasons) reports every WebSocket reason, and each
//! route's reported state is what real Envoy does on it: 101 and an echo
//! when on, 403 when off.

use std::path::Path;
use std::process::Command;

use crate::support::*;
use anyhow::Context;
use serde_json::Value;

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/websocket-reasons");

/// The example's files, with its ports (8080, 8090, backend 8081) replaced.
fn example_files(open: u16, closed: u16, backend: u16) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(EXAMPLE).context("read the example dir")? {
        let path = e.context("read the example dir")?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .context("file name")?
            .to_string();
        if !name.ends_with(".yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).with_context(|| format!("read {name}"))?;
        let text = text
            .replace("bindPort: 8080", &format!("bindPort: {open}"))
            .replace("bindPort: 8090", &format!("bindPort: {closed}"))
            .replace("port: 8081", &format!("port: {backend}"));
        out.push((name, text));
    }
    out.sort();
    Ok(out)
}

fn routes_cmd(args: &[&str], dir: &Path) -> anyhow::Result<std::process::Output> {
    Command::new(edgeplane_bin())
        .arg("routes")
        .args(args)
        .arg(dir)
        .output()
        .context("run edgeplane routes")
}

fn routes_json(dir: &Path) -> anyhow::Result<Value> {
    let out = routes_cmd(&["--output", "json"], dir)?;
    anyhow::ensure!(
        out.status.success(),
        "edgeplane routes failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).context("routes JSON")
}

/// Every reason the example is written to show.
const REASONS: [&str; 6] = [
    "on: listener default",
    "off: gateway upgrades",
    "on: route override",
    "off: route override",
    "off: inherited from delegate route gloo-system.open/1",
    "on: inherited from delegate route gloo-system.closed/1",
];

#[test]
fn text_output_on_the_example_shows_every_reason() -> anyhow::Result<()> {
    let out = routes_cmd(&[], Path::new(EXAMPLE))?;
    anyhow::ensure!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).context("utf-8")?;
    for r in REASONS {
        anyhow::ensure!(text.contains(r), "missing {r:?} in\n{text}");
    }
    anyhow::ensure!(text.contains("listener-127.0.0.1-8080"), "{text}");
    anyhow::ensure!(text.contains("open.yaml:10"), "source line: {text}");
    // An unknown proxy is a usage error.
    let bad = routes_cmd(&["--proxy", "nope"], Path::new(EXAMPLE))?;
    anyhow::ensure!(bad.status.code() == Some(2), "{bad:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reported_websocket_state_is_what_envoy_does() -> anyhow::Result<()> {
    let open = free_port();
    let closed = free_port();
    let be = Backend::start("b1").await;
    let files = example_files(open, closed, be.port)?;
    let refs: Vec<(&str, String)> = files.iter().map(|(n, t)| (n.as_str(), t.clone())).collect();
    let s = Stack::start(open, be, &refs).await;
    s.envoy.wait_serving(open, "/").await;
    s.envoy.wait_serving(closed, "/").await;

    let v = routes_json(&s.dir)?;
    let listeners = v["listeners"].as_array().context("listeners")?;
    anyhow::ensure!(listeners.len() == 2, "{v}");
    let mut seen = Vec::new();
    let mut checked = 0;
    for l in listeners {
        let name = l["listener"].as_str().context("listener name")?;
        let port: u16 = name
            .rsplit('-')
            .next()
            .and_then(|p| p.parse().ok())
            .context("listener port")?;
        for r in l["routes"].as_array().context("routes")? {
            let reason = r["websocketReason"].as_str().context("reason")?;
            let on = r["websocket"].as_bool().context("websocket")?;
            let matcher = r["matcher"].as_str().context("matcher")?;
            let path = matcher
                .strip_prefix("prefix ")
                .with_context(|| format!("example matchers are prefixes: {matcher}"))?;
            anyhow::ensure!(
                r["file"].as_str().is_some() && r["line"].as_u64().is_some(),
                "no source for {r}"
            );
            seen.push(reason.to_string());
            match ws_connect(port, path).await {
                Ok(mut ws) => {
                    anyhow::ensure!(
                        on,
                        "{name} {path}: reported {reason:?} but Envoy upgraded\n{}",
                        s.logs()
                    );
                    echo(&mut ws, &format!("via {path}")).await;
                }
                Err(code) => {
                    anyhow::ensure!(
                        !on && code == 403,
                        "{name} {path}: reported {reason:?} but Envoy answered {code}\n{}",
                        s.logs()
                    );
                }
            }
            checked += 1;
        }
    }
    anyhow::ensure!(checked == 6, "checked {checked} routes: {v}");
    for r in REASONS {
        anyhow::ensure!(seen.iter().any(|s| s == r), "missing {r:?} in {seen:?}");
    }
    Ok(())
}
