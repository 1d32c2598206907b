//! Observability through real Envoy 1.40: `/metrics` counts streams,
//! pushes, ACKs and reloads as they happen; `/readyz` waits for the first
//! valid config; `/config_dump` holds what Envoy holds; `--log-json` logs
//! JSON lines with file, line, column and resource.

use std::collections::BTreeMap;

use crate::support::*;
use anyhow::{Context, Result};
use serde_json::Value;

const UP: &str = "backend";

fn files(port: u16, backend: u16) -> Vec<(&'static str, String)> {
    vec![
        ("gateway.yaml", gateway(port, "")),
        ("upstream.yaml", upstream(UP, &[backend])),
        ("vs.yaml", virtual_service(&route("/", UP, ""))),
    ]
}

/// Every sample of a Prometheus text exposition: series (name with its
/// labels, as written) → value.
fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

async fn scrape(cp: &ControlPlane) -> Result<BTreeMap<String, f64>> {
    let (code, body) = cp.admin_get("/metrics").await?;
    anyhow::ensure!(code == 200, "/metrics answered {code}: {body}");
    Ok(parse_metrics(&body))
}

fn value(m: &BTreeMap<String, f64>, series: &str) -> f64 {
    m.get(series).copied().unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_streams_pushes_acks_and_reloads() -> Result<()> {
    let s = Stack::serving(files).await;
    let m = xds_mode();

    // Envoy's stream shows up with its mode, each type pushed and ACKed.
    let cp = &s.cp;
    let metrics = eventually("every type pushed and ACKed", || async {
        let metrics = scrape(cp).await.ok()?;
        ["CDS", "LDS", "RDS"]
            .iter()
            .all(|t| {
                let labels = format!("{{type=\"{t}\",mode=\"{m}\"}}");
                value(&metrics, &format!("edgeplane_xds_pushes_total{labels}")) >= 1.0
                    && value(&metrics, &format!("edgeplane_xds_acks_total{labels}")) >= 1.0
            })
            .then_some(metrics)
    })
    .await;
    let other = if m == "delta" { "sotw" } else { "delta" };
    assert_eq!(
        value(&metrics, &format!("edgeplane_xds_streams{{mode=\"{m}\"}}")),
        1.0,
        "{metrics:#?}"
    );
    assert_eq!(
        value(
            &metrics,
            &format!("edgeplane_xds_streams{{mode=\"{other}\"}}")
        ),
        0.0
    );
    for t in ["CDS", "LDS", "RDS"] {
        assert_eq!(
            value(
                &metrics,
                &format!("edgeplane_xds_nacks_total{{type=\"{t}\",mode=\"{m}\"}}")
            ),
            0.0
        );
        assert_eq!(
            value(
                &metrics,
                &format!("edgeplane_resources{{proxy=\"gloo-system~gateway-proxy\",type=\"{t}\"}}")
            ),
            1.0,
            "{metrics:#?}"
        );
    }
    assert_eq!(
        value(
            &metrics,
            &format!(
                "edgeplane_build_info{{version=\"{}\"}}",
                env!("CARGO_PKG_VERSION")
            )
        ),
        1.0
    );
    assert_eq!(
        value(&metrics, "edgeplane_reloads_total{result=\"published\"}"),
        1.0
    );
    assert!(value(&metrics, "edgeplane_snapshot_build_seconds_count") >= 1.0);
    // Envoy streams its stats to edgeplane (the bootstrap's sink).
    eventually("Envoy's stats stream", || async {
        let metrics = scrape(cp).await.ok()?;
        (value(&metrics, "edgeplane_stats_sink_streams") == 1.0).then_some(())
    })
    .await;

    // A broken edit: a rejected reload, and the errors it found.
    let loads = s.cp.loads().await;
    let broken = virtual_service(&route("/", UP, "timeoutt: 1s\n"));
    write_atomic(&s.dir, "vs.yaml", &broken);
    s.cp.wait_load_after(loads).await;
    let metrics = scrape(cp).await?;
    assert_eq!(
        value(&metrics, "edgeplane_reloads_total{result=\"rejected\"}"),
        1.0,
        "{metrics:#?}\n{}",
        s.logs()
    );
    assert!(value(&metrics, "edgeplane_diagnostics{severity=\"error\"}") >= 1.0);
    assert_eq!(
        value(&metrics, "edgeplane_reloads_total{result=\"published\"}"),
        1.0
    );

    // Fixed with a real change: published again, the errors gone, and the
    // new RouteConfiguration pushed and ACKed.
    let rds = format!("{{type=\"RDS\",mode=\"{m}\"}}");
    let acked_before = value(&metrics, &format!("edgeplane_xds_acks_total{rds}"));
    let loads = s.cp.loads().await;
    let fixed = virtual_service(&route("/", UP, "timeout: 7s\n"));
    write_atomic(&s.dir, "vs.yaml", &fixed);
    s.cp.wait_load_after(loads).await;
    let metrics = eventually("the fixed routes pushed and ACKed", || async {
        let metrics = scrape(cp).await.ok()?;
        (value(&metrics, &format!("edgeplane_xds_acks_total{rds}")) > acked_before)
            .then_some(metrics)
    })
    .await;
    assert_eq!(
        value(&metrics, "edgeplane_reloads_total{result=\"published\"}"),
        2.0,
        "{metrics:#?}"
    );
    assert_eq!(
        value(&metrics, "edgeplane_diagnostics{severity=\"error\"}"),
        0.0
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_waits_for_the_first_valid_config() -> Result<()> {
    let port = free_port();
    // A Gateway that never was valid: nothing to serve.
    let (tmp, dir) = manifests_dir(&[("gateway.yaml", gateway(port, "upgradez: []\n"))]);
    let cp = ControlPlane::start(&dir, 0, tmp.path()).await;

    let (code, body) = cp.admin_get("/readyz").await?;
    assert_eq!(code, 503, "{body}");
    let v: Value = serde_json::from_str(&body).context("/readyz is JSON")?;
    assert_eq!(v["ready"], false);
    let reason = v["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("error"), "{body}");
    // Nothing is served: the dump is empty.
    let (code, body) = cp.admin_get("/config_dump").await?;
    assert_eq!(code, 200, "{body}");
    let dump: Value = serde_json::from_str(&body).context("/config_dump is JSON")?;
    assert_eq!(dump["proxies"], serde_json::json!({}), "{body}");
    let metrics = scrape(&cp).await?;
    assert_eq!(
        value(&metrics, "edgeplane_reloads_total{result=\"rejected\"}"),
        1.0
    );

    let loads = cp.loads().await;
    write_atomic(&dir, "gateway.yaml", &gateway(port, ""));
    cp.wait_load_after(loads).await;
    let (code, body) = cp.admin_get("/readyz").await?;
    assert_eq!(code, 200, "{body}\n{}", cp.log_text());

    // An empty directory is valid, but there is nothing to serve.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).context("mkdir empty")?;
    let cp = ControlPlane::start(&empty, 0, tmp.path()).await;
    let (code, body) = cp.admin_get("/readyz").await?;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("no Gateway"), "{body}");
    Ok(())
}

/// Every `(name, version_info)` of one kind in Envoy's `/config_dump`.
fn envoy_names(dump: &Value, section: &str, dynamic: &str, inner: &str) -> Vec<String> {
    let mut names: Vec<String> = dump["configs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["@type"].as_str().is_some_and(|t| t.ends_with(section)))
        .flat_map(|c| c[dynamic].as_array().cloned().unwrap_or_default())
        .filter_map(|d| {
            let v = if inner == "listener" {
                &d["active_state"][inner]
            } else {
                &d[inner]
            };
            v["name"].as_str().map(str::to_string)
        })
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_dump_holds_what_envoy_holds() -> Result<()> {
    let s = Stack::serving(files).await;
    let port = s.port;

    let (code, body) = s.cp.admin_get("/config_dump").await?;
    assert_eq!(code, 200, "{body}");
    let ours: Value = serde_json::from_str(&body).context("/config_dump is JSON")?;
    let proxy = &ours["proxies"]["gloo-system~gateway-proxy"];
    let names = |kind: &str| -> Vec<String> {
        let mut n: Vec<String> = proxy[kind]["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["name"].as_str().map(str::to_string))
            .collect();
        n.sort();
        n
    };
    let dump = s.envoy.config_dump().await;
    let envoy_listeners = envoy_names(
        &dump,
        "ListenersConfigDump",
        "dynamic_listeners",
        "listener",
    );
    let envoy_routes = envoy_names(
        &dump,
        "RoutesConfigDump",
        "dynamic_route_configs",
        "route_config",
    );
    let envoy_clusters = envoy_names(
        &dump,
        "ClustersConfigDump",
        "dynamic_active_clusters",
        "cluster",
    );
    assert_eq!(names("listeners"), envoy_listeners, "{ours:#}");
    assert_eq!(names("routeConfigs"), envoy_routes);
    assert_eq!(names("clusters"), envoy_clusters);
    assert_eq!(envoy_listeners, vec![format!("listener-127.0.0.1-{port}")]);
    assert_eq!(envoy_clusters, vec![format!("{UP}_gloo-system")]);

    // The versions are the ones Envoy ACKed, and each resource is there as
    // proto3 JSON, as Envoy shows it.
    let (lds, cds, rds) = s.envoy.versions(&s.route_name()).await;
    assert_eq!(proxy["listeners"]["version"], lds.as_str());
    assert_eq!(proxy["clusters"]["version"], cds.as_str());
    let route = &proxy["routeConfigs"]["resources"][0];
    assert!(!rds.is_empty());
    assert_eq!(route["resource"]["name"], s.route_name());
    assert_eq!(route["hash"].as_str().map(str::len), Some(64));
    let listener = &proxy["listeners"]["resources"][0]["resource"];
    assert_eq!(
        listener["address"]["socket_address"]["port_value"], port,
        "{listener:#}"
    );
    assert_eq!(
        proxy["listeners"]["typeUrl"],
        "type.googleapis.com/envoy.config.listener.v3.Listener"
    );

    // One proxy by name; an unknown one is a 404 that lists the known.
    let (code, body) = s.cp.admin_get("/config_dump?proxy=gateway-proxy").await?;
    assert_eq!(code, 200, "{body}");
    let (code, body) = s.cp.admin_get("/config_dump?proxy=nope").await?;
    assert_eq!(code, 404);
    assert!(body.contains("gloo-system~gateway-proxy"), "{body}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_json_lines_carry_file_line_column_and_resource() -> Result<()> {
    // The upstream's port 1: nothing is routed, only the log is read.
    let (tmp, dir) = manifests_dir(&files(free_port(), 1));
    let cp = ControlPlane::start_with_args(&dir, 0, tmp.path(), &["--log-json".to_string()]).await;

    let loads = cp.loads().await;
    write_atomic(
        &dir,
        "vs.yaml",
        &virtual_service(&route("/", UP, "timeoutt: 1s\n")),
    );
    cp.wait_load_after(loads).await;

    let log = cp.log_text();
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).with_context(|| format!("not a JSON line: {l}")))
        .collect::<Result<_>>()?;
    assert!(lines.len() >= 3, "{log}");
    for l in &lines {
        assert!(l["timestamp"].is_string(), "{l}");
        assert!(l["level"].is_string(), "{l}");
        assert!(l["fields"]["message"].is_string(), "{l}");
    }
    let error = lines
        .iter()
        .find(|l| l["level"] == "ERROR" && l["fields"]["file"].is_string())
        .with_context(|| format!("no error line with a file: {log}"))?;
    let f = &error["fields"];
    assert!(
        f["file"].as_str().is_some_and(|p| p.ends_with("vs.yaml")),
        "{error}"
    );
    assert!(f["line"].as_u64().is_some_and(|n| n > 1), "{error}");
    assert!(f["column"].as_u64().is_some_and(|n| n > 1), "{error}");
    assert_eq!(f["resource"], "VirtualService gloo-system.vs", "{error}");
    assert!(
        f["message"]
            .as_str()
            .is_some_and(|m| m.contains("timeoutt")),
        "{error}"
    );
    Ok(())
}
