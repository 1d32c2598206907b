//! Through real Envoy: per-resource last-known-good and
//! statuses, `edgeplane status`, and Envoy NACKs attributed to the resource.

use std::time::{Duration, Instant};

use crate::support::*;

fn vs_named(name: &str, domain: &str, routes: &str) -> String {
    virtual_service(routes)
        .replace("name: vs\n", &format!("name: {name}\n"))
        .replace("domains: ['*']", &format!("domains: ['{domain}']"))
}

fn status_cli(xds_port: u16, json: bool) -> (Option<i32>, String) {
    let mut cmd = std::process::Command::new(edgeplane_bin());
    cmd.args(["status", "--server", &format!("127.0.0.1:{xds_port}")]);
    if json {
        cmd.args(["--output", "json"]);
    }
    let out = cmd.output().expect("run edgeplane status");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

async fn get_host(port: u16, host: &str, path: &str) -> Option<(u16, String)> {
    let req = format!("GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n");
    parse_response(try_raw_request(port, &req).await?.as_bytes())
}

/// A stack with one VirtualService per `(name, prefix)`, written to
/// `<name>.yaml`, serving `prefix` on the domain `<name>.test` from the
/// upstream `backend`; returns once Envoy routes every one of them.
async fn stack_of(vss: &[(&str, &str)]) -> Stack {
    let port = free_port();
    let be = Backend::start("b1").await;
    let mut files = vec![
        ("gateway.yaml".to_string(), gateway(port, "")),
        ("upstream.yaml".to_string(), upstream("backend", &[be.port])),
    ];
    for (name, prefix) in vss {
        files.push((
            format!("{name}.yaml"),
            vs_named(name, &format!("{name}.test"), &route(prefix, "backend", "")),
        ));
    }
    let files: Vec<(&str, String)> = files.iter().map(|(n, t)| (n.as_str(), t.clone())).collect();
    let s = Stack::start(port, be, &files).await;
    for (name, prefix) in vss {
        eventually(&format!("{name}.test serves {prefix}"), || async {
            get_host(port, &format!("{name}.test"), prefix)
                .await
                .filter(|r| r.0 == 200)
        })
        .await;
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_save_valid_edit_serves_invalid_one_keeps_its_routes() {
    let s = stack_of(&[("good", "/g1"), ("bad", "/b1")]).await;
    let port = s.port;

    // One save edits both: good gets a new route, bad gets a typo.
    let loads = s.cp.loads().await;
    write_atomic(
        &s.dir,
        "good.yaml",
        &vs_named("good", "good.test", &route("/g2", "backend", "")),
    );
    let bad = vs_named(
        "bad",
        "bad.test",
        &route("/b2", "backend", "timeoutt: 1s\n"),
    );
    write_atomic(&s.dir, "bad.yaml", &bad);
    s.cp.wait_load_after(loads).await;
    eventually("the valid edit serves", || async {
        get_host(port, "good.test", "/g2")
            .await
            .filter(|r| r.0 == 200)
    })
    .await;
    assert_eq!(
        get_host(port, "good.test", "/g1").await.map(|r| r.0),
        Some(404)
    );
    // The invalid one keeps its previous routes.
    assert_eq!(
        get_host(port, "bad.test", "/b1").await.map(|r| r.0),
        Some(200),
        "{}",
        s.logs()
    );
    assert_eq!(
        get_host(port, "bad.test", "/b2").await.map(|r| r.0),
        Some(404)
    );

    let (code, table) = status_cli(s.cp.xds_port, false);
    assert_eq!(code, Some(0), "{table}");
    let line_of = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with("VirtualService") && l.split_whitespace().nth(2) == Some(name))
            .unwrap_or_else(|| panic!("no row for {name} in\n{table}"))
            .to_string()
    };
    let good_row = line_of("good");
    assert!(
        good_row.contains("Accepted") && good_row.contains("current"),
        "{table}"
    );
    let bad_row = line_of("bad");
    let typo_line = bad
        .lines()
        .position(|l| l.contains("timeoutt"))
        .map(|i| i + 1)
        .unwrap_or(0);
    assert!(
        bad_row.contains("Rejected") && bad_row.contains("last-accepted"),
        "{table}"
    );
    assert!(
        bad_row.contains(&format!("bad.yaml:{typo_line}:")),
        "{table}"
    );
    assert!(bad_row.contains("timeoutt"), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_rejection_shows_as_rejected_and_is_sent_once() {
    let s = stack_of(&[("ok", "/"), ("re", "/")]).await;
    let port = s.port;
    let rds_responses = |st: &serde_json::Value| {
        st["nodes"][0]["types"]
            .as_array()
            .and_then(|ts| {
                ts.iter()
                    .find(|t| {
                        t["typeUrl"]
                            .as_str()
                            .unwrap_or("")
                            .ends_with("RouteConfiguration")
                    })
                    .and_then(|t| t["responses"].as_u64())
            })
            .unwrap_or(0)
    };
    let before = rds_responses(&s.cp.status().await);

    // Valid for edgeplane, refused by Envoy (RE2 program larger than 100).
    let re_routes = "- matchers:\n  - regex: '/a{1,500}'\n  routeAction:\n    single:\n      upstream: {name: backend, namespace: gloo-system}\n";
    let written = Instant::now();
    write_atomic(&s.dir, "re.yaml", &vs_named("re", "re.test", re_routes));
    let rejected = eventually("the NACK turns the VirtualService Rejected", || async {
        let st = s.cp.status().await;
        let r = st["resources"]
            .as_array()?
            .iter()
            .find(|r| r["name"] == "re")?
            .clone();
        (r["state"] == "Rejected").then_some(r)
    })
    .await;
    let took = written.elapsed();
    eprintln!("save -> Rejected (Envoy NACK) in {took:?}");
    assert!(took < Duration::from_secs(1), "took {took:?}");
    let reason = rejected["proxies"][0]["reason"].as_str().unwrap_or("");
    assert!(
        reason.contains("program size"),
        "Envoy's message expected: {rejected}"
    );
    // Only the VirtualService that changed is blamed.
    let st = s.cp.status().await;
    let ok = st["resources"]
        .as_array()
        .and_then(|v| v.iter().find(|r| r["name"] == "ok").cloned());
    assert_eq!(
        ok.as_ref().map(|r| r["state"].clone()),
        Some(serde_json::json!("Accepted")),
        "{st}"
    );
    // Sent exactly once.
    assert_eq!(rds_responses(&st), before + 1, "{st}");
    // `check` fails on it, naming the resource and the NACK.
    let (code, report) = check_cli(s.cp.xds_port);
    assert_eq!(code, Some(1), "{report}");
    assert!(
        report.contains("VirtualService gloo-system.re is Rejected"),
        "{report}"
    );
    assert!(report.contains("NACKed RouteConfiguration"), "{report}");

    // The next good version clears it.
    write_atomic(
        &s.dir,
        "re.yaml",
        &vs_named("re", "re.test", &route("/", "backend", "")),
    );
    eventually("the next ACK clears the rejection", || async {
        let st = s.cp.status().await;
        let r = st["resources"]
            .as_array()?
            .iter()
            .find(|r| r["name"] == "re")?
            .clone();
        (r["state"] == "Accepted").then_some(())
    })
    .await;
    assert_eq!(
        get_host(port, "re.test", "/x").await.map(|r| r.0),
        Some(200)
    );
}

/// `edgeplane check`: its exit code and what it printed.
fn check_cli(xds_port: u16) -> (Option<i32>, String) {
    let out = std::process::Command::new(edgeplane_bin())
        .args(["check", "--server", &format!("127.0.0.1:{xds_port}")])
        .output()
        .expect("run edgeplane check");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The `/status` resource entry named `name`, if any.
fn resource<'a>(status: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    status["resources"]
        .as_array()?
        .iter()
        .find(|r| r["name"] == name)
}

/// Deleting a manifest file removes its resources from what Envoy is
/// served, and from every view of the status with them: none shows them as
/// Rejected (or at all), and `check` passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_file_is_gone_from_status_as_from_envoy() {
    let s = stack_of(&[("keep", "/"), ("gone", "/")]).await;
    let port = s.port;

    let loads = s.cp.loads().await;
    std::fs::remove_file(s.dir.join("gone.yaml")).expect("delete gone.yaml");
    s.cp.wait_load_after(loads).await;
    eventually("Envoy no longer routes gone.test", || async {
        get_host(port, "gone.test", "/")
            .await
            .filter(|r| r.0 == 404)
    })
    .await;

    let st = s.cp.status().await;
    assert!(resource(&st, "gone").is_none(), "{st}");
    assert_eq!(
        resource(&st, "keep").map(|r| r["state"].clone()),
        Some(serde_json::json!("Accepted")),
        "{st}"
    );
    let (code, table) = status_cli(s.cp.xds_port, false);
    assert_eq!(code, Some(0), "{table}");
    assert!(!table.contains("gone"), "{table}");
    assert!(!table.contains("Rejected"), "{table}");
    let (_, json) = status_cli(s.cp.xds_port, true);
    let json: serde_json::Value = serde_json::from_str(&json).expect("status --output json");
    assert!(resource(&json, "gone").is_none(), "{json}");
    let (code, report) = check_cli(s.cp.xds_port);
    assert_eq!(code, Some(0), "{report}\n{}", s.logs());
    assert!(report.starts_with("ok: "), "{report}");
}

/// A file that is not YAML (a tab in the indentation) keeps serving what it
/// last provided, and each of its resources is Rejected with the parser's
/// reason at file:line:column, in `/status`, `edgeplane status` (table and
/// JSON, the same diagnostic shape as `validate --output json`) and
/// `edgeplane check`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_yaml_syntax_error_rejects_with_its_reason_everywhere() {
    let s = stack_of(&[("tabbed", "/")]).await;
    let port = s.port;
    let tabbed = std::fs::read_to_string(s.dir.join("tabbed.yaml")).expect("read tabbed.yaml");
    let (code, report) = check_cli(s.cp.xds_port);
    assert_eq!(code, Some(0), "{report}\n{}", s.logs());

    // A tab indents `namespace:` (YAML forbids tabs there).
    let broken = tabbed.replacen("  namespace:", "\tnamespace:", 1);
    assert_ne!(broken, tabbed, "the manifest has an indented namespace");
    let tab_line = broken
        .lines()
        .position(|l| l.starts_with('\t'))
        .map(|i| i as u64 + 1)
        .unwrap_or(0);
    let loads = s.cp.loads().await;
    write_atomic(&s.dir, "tabbed.yaml", &broken);
    let st = s.cp.wait_load_after(loads).await;

    let r = resource(&st, "tabbed").unwrap_or_else(|| panic!("no status for tabbed: {st}"));
    assert_eq!(r["state"], "Rejected", "{r}");
    assert_eq!(r["serving"], "last-accepted", "{r}");
    let reason = &r["reasons"][0];
    assert!(
        reason["file"]
            .as_str()
            .unwrap_or("")
            .ends_with("tabbed.yaml"),
        "{r}"
    );
    assert!(
        reason["message"].as_str().unwrap_or("").contains("tab"),
        "{r}"
    );
    // The parser reports the tab where it meets it: on its line, or at the
    // end of the scalar on the line above.
    let line = reason["line"].as_u64().unwrap_or(0);
    assert!(
        line == tab_line || line + 1 == tab_line,
        "tab on line {tab_line}: {r}"
    );
    assert!(reason["column"].as_u64().unwrap_or(0) > 0, "{r}");
    // What it serves is still the last accepted version.
    assert_eq!(
        get_host(port, "tabbed.test", "/").await.map(|r| r.0),
        Some(200),
        "{}",
        s.logs()
    );

    // The same reason, in the same shape, from the CLI and from validate.
    let (_, json) = status_cli(s.cp.xds_port, true);
    let json: serde_json::Value = serde_json::from_str(&json).expect("status --output json");
    let cli_reason = &resource(&json, "tabbed").expect("tabbed in status JSON")["reasons"][0];
    assert_eq!(cli_reason, reason);
    let validate = std::process::Command::new(edgeplane_bin())
        .args(["validate", "--output", "json"])
        .arg(&s.dir)
        .output()
        .expect("run edgeplane validate");
    assert_eq!(validate.status.code(), Some(1));
    let v: serde_json::Value =
        serde_json::from_slice(&validate.stdout).expect("validate --output json");
    let from_validate = v["diagnostics"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["message"] == reason["message"]))
        .unwrap_or_else(|| panic!("validate does not report {reason}: {v}"));
    let keys = |o: &serde_json::Value| {
        o.as_object()
            .map(|m| m.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    assert_eq!(keys(from_validate), keys(reason), "one diagnostic shape");
    assert!(keys(reason).contains(&"hint".to_string()), "{reason}");
    for k in ["file", "line", "column", "severity"] {
        assert_eq!(from_validate[k], reason[k], "{k}");
    }

    let (_, table) = status_cli(s.cp.xds_port, false);
    let row = table
        .lines()
        .find(|l| l.contains("tabbed"))
        .unwrap_or_else(|| panic!("no row for tabbed:\n{table}"));
    assert!(row.contains("Rejected"), "{table}");
    assert!(row.contains(&format!("tabbed.yaml:{line}:")), "{table}");
    let (code, report) = check_cli(s.cp.xds_port);
    assert_eq!(code, Some(1), "{report}");
    assert!(
        report.contains("VirtualService gloo-system.tabbed is Rejected"),
        "{report}"
    );
    assert!(report.contains(&format!("tabbed.yaml:{line}:")), "{report}");
}
