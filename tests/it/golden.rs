//! Golden fixtures: `tests/fixtures/<case>/input/` (manifests) and
//! `tests/fixtures/<case>/expected.json` (what `edgeplane translate` prints
//! for them: every proxy's resources as proto3 JSON).
//!
//! - `golden_outputs_match`: the pure pipeline + `json::resources_json`
//!   equals `expected.json` (as parsed JSON). On a mismatch both are printed
//!   and the actual output is written to `target/golden-actual/<case>.json`.
//! - `every_fixture_is_accepted_by_envoy`: each case is served by
//!   `edgeplane serve` to real Envoys (one per proxy) and none is NACKed;
//!   SDS secrets (`secretRef`, e.g. `sds-secrets`, whose Secrets sit in
//!   the input tree like any manifest) are active in Envoy.
//! - `translate_cli_*`: the `edgeplane translate` command and its exit codes.
//!
//! To add a case or accept a deliberate change, run
//! `EDGEPLANE_BLESS=1 cargo test --test it golden::golden_outputs_match`, which
//! (re)writes `expected.json` instead of comparing. Blessed output is NOT
//! correct by construction: read the diff (`git diff tests/fixtures`)
//! against what Envoy should get before committing it.
//!
//! Fixtures should use `bindAddress: 127.0.0.1`: the Envoy test rewrites
//! every `bindAddress` to 127.0.0.1 and every `bindPort` to a free loopback
//! port, and inserts nothing (an absent bindAddress means `::`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::*;
use serde_json::Value;

fn fixtures_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Every `(case name, case dir)` with an `input/` directory, sorted.
fn cases() -> Vec<(String, PathBuf)> {
    let root = fixtures_root();
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("read {}: {e}", root.display()))
        .map(|e| e.expect("fixture dir entry").path())
        .filter(|p| p.join("input").is_dir())
        .map(|p| {
            let name = p
                .file_name()
                .expect("fixture dir has a name")
                .to_string_lossy()
                .into_owned();
            (name, p)
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no fixtures under {}", root.display());
    out
}

/// Loads `dir` with the pure pipeline; panics with the rendered diagnostics
/// when it has errors.
fn load_valid(case: &str, dir: &Path) -> edgeplane::translate::Output {
    let load = edgeplane::pipeline::load_dir(dir);
    assert!(
        !load.has_errors(),
        "fixture {case}: manifests are invalid:\n{}",
        load.render_diagnostics()
    );
    load.output
        .unwrap_or_else(|| panic!("fixture {case}: no output without errors"))
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).expect("JSON value prints") + "\n"
}

#[test]
fn golden_outputs_match() {
    let bless = std::env::var("EDGEPLANE_BLESS").is_ok_and(|v| v == "1");
    let actual_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/golden-actual");
    let mut failed = Vec::new();
    for (case, dir) in cases() {
        let output = load_valid(&case, &dir.join("input"));
        let actual = edgeplane::translate::json::resources_json(&output, None)
            .unwrap_or_else(|e| panic!("fixture {case}: JSON rendering failed: {e}"));
        let expected_path = dir.join("expected.json");
        if bless {
            // Blessing only records what the code does now: review the
            // diff by hand before committing it.
            std::fs::write(&expected_path, pretty(&actual))
                .unwrap_or_else(|e| panic!("write {}: {e}", expected_path.display()));
            eprintln!("blessed {}", expected_path.display());
            continue;
        }
        let expected: Value = match std::fs::read_to_string(&expected_path) {
            Ok(text) => serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not JSON: {e}", expected_path.display())),
            Err(e) => {
                eprintln!(
                    "fixture {case}: cannot read {}: {e} (EDGEPLANE_BLESS=1 writes it)",
                    expected_path.display()
                );
                Value::Null
            }
        };
        if actual != expected {
            std::fs::create_dir_all(&actual_dir).expect("create target/golden-actual");
            let out = actual_dir.join(format!("{case}.json"));
            std::fs::write(&out, pretty(&actual)).expect("write actual output");
            eprintln!(
                "=== fixture {case}: output differs from {}\n--- expected ---\n{}--- actual (also in {}) ---\n{}",
                expected_path.display(),
                pretty(&expected),
                out.display(),
                pretty(&actual),
            );
            failed.push(case);
        }
    }
    assert!(
        failed.is_empty(),
        "golden mismatch in {failed:?}: compare with `diff -u tests/fixtures/<case>/expected.json target/golden-actual/<case>.json`; \
         if the change is intended, rerun with EDGEPLANE_BLESS=1 and review the diff"
    );
}

// === every fixture through real Envoy ===

/// Copies `from` to `to` (recursively), rewriting each `bindPort: N` to a
/// free loopback port (the same N to the same port) and each `bindAddress`
/// to 127.0.0.1.
fn copy_rewritten(from: &Path, to: &Path, ports: &mut BTreeMap<String, u16>) {
    let port_re = regex::Regex::new(r"(?m)^(\s*bindPort:\s*)(\d+)").expect("port regex");
    let addr_re = regex::Regex::new(r"(?m)^(\s*bindAddress:\s*)\S+").expect("address regex");
    std::fs::create_dir_all(to).expect("create rewritten dir");
    let mut entries: Vec<_> = std::fs::read_dir(from)
        .expect("read fixture input")
        .map(|e| e.expect("fixture input entry").path())
        .collect();
    entries.sort();
    for p in entries {
        let target = to.join(p.file_name().expect("entry has a name"));
        if p.is_dir() {
            copy_rewritten(&p, &target, ports);
            continue;
        }
        let text =
            std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
        let text = port_re.replace_all(&text, |c: &regex::Captures| {
            let used: BTreeSet<u16> = ports.values().copied().collect();
            let port = *ports.entry(c[2].to_string()).or_insert_with(|| {
                loop {
                    let p = free_port();
                    if !used.contains(&p) {
                        break p;
                    }
                }
            });
            format!("{}{port}", &c[1])
        });
        let text = addr_re.replace_all(&text, "${1}127.0.0.1");
        std::fs::write(&target, text.as_bytes())
            .unwrap_or_else(|e| panic!("write {}: {e}", target.display()));
    }
}

/// The resource names of one xDS type in Envoy's `/config_dump`.
fn dumped_names(dump: &Value, type_suffix: &str, lists: &[&str], inner: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for c in dump["configs"].as_array().into_iter().flatten() {
        if !c["@type"].as_str().unwrap_or("").ends_with(type_suffix) {
            continue;
        }
        for list in lists {
            for item in c[*list].as_array().into_iter().flatten() {
                // Listeners sit under active_state/warming_state; clusters
                // and routes directly under their field.
                let msg = inner.split('/').try_fold(item, |v, k| v.get(k));
                if let Some(name) = msg.and_then(|m| m["name"].as_str()) {
                    names.insert(name.to_string());
                }
            }
        }
    }
    names
}

/// What one Envoy must end up with, from the translation of the rewritten
/// fixture.
struct ProxyExpectation {
    key: String,
    node_id: String,
    listeners: BTreeSet<String>,
    clusters: BTreeSet<String>,
    routes: BTreeSet<String>,
    /// SDS secrets (`secretRef`): must be active in Envoy.
    secrets: BTreeSet<String>,
}

async fn check_case_in_envoy(case: &str, input: &Path) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("manifests");
    let mut ports = BTreeMap::new();
    copy_rewritten(input, &dir, &mut ports);
    let output = load_valid(case, &dir);
    let expectations: Vec<ProxyExpectation> = output
        .iter()
        .map(|(key, res)| ProxyExpectation {
            key: key.clone(),
            node_id: format!("golden-{case}-{}", key.replace('~', "-")),
            listeners: res.listeners.iter().map(|l| l.name.clone()).collect(),
            clusters: res.clusters.iter().map(|c| c.name.clone()).collect(),
            routes: res.route_configs.iter().map(|r| r.name.clone()).collect(),
            secrets: res.secrets.iter().map(|s| s.name.clone()).collect(),
        })
        .collect();
    assert!(!expectations.is_empty(), "fixture {case}: no proxy");

    let cp = ControlPlane::start(&dir, 0, tmp.path()).await;
    let mut envoys = Vec::new();
    for exp in &expectations {
        let (namespace, proxy_name) = exp
            .key
            .split_once('~')
            .unwrap_or_else(|| panic!("proxy key {} is not ns~name", exp.key));
        envoys.push(
            Envoy::start_with_role(cp.xds_port, &exp.node_id, namespace, proxy_name, tmp.path())
                .await,
        );
    }
    let logs = |envoys: &[Envoy]| {
        let mut s = format!("--- edgeplane log ---\n{}", cp.log_text());
        for e in envoys {
            s.push_str(&format!("\n--- envoy log ---\n{}", e.log_text()));
        }
        s
    };

    for (exp, envoy) in expectations.iter().zip(&envoys) {
        let what = format!("fixture {case}, proxy {}", exp.key);
        // Envoy has applied (or rejected) LDS, CDS and every RDS, and its
        // listeners are active; a rejection is reported by the asserts
        // below.
        poll(
            &format!("{what}: Envoy took LDS, CDS and RDS"),
            DEADLINE,
            Duration::from_millis(25),
            || async {
                let lds = envoy.stat("listener_manager.lds.update_success").await? >= 1
                    || envoy.stat("listener_manager.lds.update_rejected").await? >= 1;
                let cds = envoy.stat("cluster_manager.cds.update_success").await? >= 1
                    || envoy.stat("cluster_manager.cds.update_rejected").await? >= 1;
                let dump = envoy.config_dump().await;
                let routes = dumped_names(
                    &dump,
                    "RoutesConfigDump",
                    &["dynamic_route_configs"],
                    "route_config",
                );
                let mut rds = true;
                for r in exp.routes.iter().filter(|r| !routes.contains(*r)) {
                    let stat = format!("http.http.rds.{r}.update_rejected");
                    rds &= envoy.stat(&stat).await.unwrap_or(0) >= 1;
                }
                // Listeners leave warming once their routes are in.
                let active = dumped_names(
                    &dump,
                    "ListenersConfigDump",
                    &["dynamic_listeners"],
                    "active_state/listener",
                );
                let listeners = exp.listeners.is_subset(&active)
                    || envoy
                        .stat("listener_manager.lds.update_rejected")
                        .await
                        .unwrap_or(0)
                        >= 1;
                (lds && cds && rds && listeners).then_some(())
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&envoys)));

        let mut rejected = vec![
            "listener_manager.lds.update_rejected".to_string(),
            "cluster_manager.cds.update_rejected".to_string(),
        ];
        rejected.extend(
            exp.routes
                .iter()
                .map(|r| format!("http.http.rds.{r}.update_rejected")),
        );
        for stat in &rejected {
            let n = envoy.stat(stat).await.unwrap_or(0);
            assert_eq!(
                n,
                0,
                "{what}: Envoy rejected: {stat} = {n}\n{}",
                logs(&envoys)
            );
        }

        // Everything is in force: listeners active, clusters present.
        let dump = envoy.config_dump().await;
        let active = dumped_names(
            &dump,
            "ListenersConfigDump",
            &["dynamic_listeners"],
            "active_state/listener",
        );
        assert_eq!(active, exp.listeners, "{what}: active listeners");
        let clusters = dumped_names(
            &dump,
            "ClustersConfigDump",
            &["dynamic_active_clusters", "dynamic_warming_clusters"],
            "cluster",
        );
        assert_eq!(clusters, exp.clusters, "{what}: clusters");
        // Secrets come in before their listeners leave warming.
        let secrets = dumped_names(
            &dump,
            "SecretsConfigDump",
            &["dynamic_active_secrets"],
            "secret",
        );
        assert_eq!(secrets, exp.secrets, "{what}: SDS secrets");
    }

    // edgeplane saw ACKs only: every type acked, none nacked.
    let status = eventually(
        &format!("fixture {case}: edgeplane records every ACK"),
        || async {
            let st = cp.status().await;
            let nodes = st["nodes"].as_array()?;
            let all_acked = expectations.iter().all(|exp| {
                let Some(node) = nodes.iter().find(|n| n["nodeId"] == exp.node_id.as_str()) else {
                    return false;
                };
                let acked = |suffix: &str| {
                    node["types"].as_array().into_iter().flatten().any(|t| {
                        t["typeUrl"].as_str().unwrap_or("").ends_with(suffix)
                            && !t["ackedVersion"].as_str().unwrap_or("").is_empty()
                    })
                };
                acked("Listener")
                    && acked("Cluster")
                    && (exp.routes.is_empty() || acked("RouteConfiguration"))
            });
            all_acked.then_some(st)
        },
    )
    .await;
    for node in status["nodes"].as_array().into_iter().flatten() {
        for t in node["types"].as_array().into_iter().flatten() {
            let msg = t["nackMessage"].as_str().unwrap_or("");
            let nacked = t["nackedVersion"].as_str().unwrap_or("");
            assert!(
                msg.is_empty() && nacked.is_empty(),
                "fixture {case}: node {} NACKed {}: {msg}\n{}",
                node["nodeId"],
                t["typeUrl"],
                logs(&envoys)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_is_accepted_by_envoy() {
    // Fail, never skip, without Envoy.
    let _ = envoy_bin();
    for (case, dir) in cases() {
        check_case_in_envoy(&case, &dir.join("input")).await;
    }
}

// === the `translate` command ===

#[test]
fn translate_cli_prints_the_json_of_a_valid_dir() {
    let (case, dir) = cases().into_iter().next().expect("a fixture");
    let out = Command::new(edgeplane_bin())
        .arg("translate")
        .arg(dir.join("input"))
        .output()
        .expect("run edgeplane translate");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{case}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout).expect("translate prints JSON");
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("expected.json")).expect("read expected.json"),
    )
    .expect("expected.json is JSON");
    assert_eq!(json, expected, "{case}: CLI output equals the golden file");
}

#[test]
fn translate_cli_selects_a_proxy_by_key_or_name() {
    let dir = fixtures_root().join("two-proxies/input");
    for arg in ["gloo-system~internal-proxy", "internal-proxy"] {
        let out = Command::new(edgeplane_bin())
            .arg("translate")
            .arg(&dir)
            .args(["--proxy", arg])
            .output()
            .expect("run edgeplane translate --proxy");
        assert_eq!(out.status.code(), Some(0), "--proxy {arg}");
        let json: Value = serde_json::from_slice(&out.stdout).expect("translate prints JSON");
        let keys: Vec<&String> = json.as_object().expect("an object").keys().collect();
        assert_eq!(keys, ["gloo-system~internal-proxy"], "--proxy {arg}");
    }
}

#[test]
fn translate_cli_exit_codes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write_atomic(
        tmp.path(),
        "vs.yaml",
        &virtual_service(&route("/", "backend", "timeoutt: 30s")),
    );
    let invalid = Command::new(edgeplane_bin())
        .arg("translate")
        .arg(tmp.path())
        .output()
        .expect("run edgeplane translate on an invalid dir");
    let stderr = String::from_utf8_lossy(&invalid.stderr);
    assert_eq!(invalid.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("timeoutt"),
        "diagnostics on stderr: {stderr}"
    );
    assert!(invalid.stdout.is_empty(), "no JSON for an invalid dir");

    let dir = fixtures_root().join("two-proxies/input");
    let unknown = Command::new(edgeplane_bin())
        .arg("translate")
        .arg(&dir)
        .args(["--proxy", "no-such-proxy"])
        .output()
        .expect("run edgeplane translate --proxy no-such-proxy");
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert_eq!(unknown.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("gloo-system~internal-proxy")
            && stderr.contains("gloo-system~public-proxy"),
        "known proxies listed: {stderr}"
    );

    let missing = Command::new(edgeplane_bin())
        .args(["translate", "/nonexistent/edgeplane-dir"])
        .output()
        .expect("run edgeplane translate on a missing dir");
    assert_eq!(missing.status.code(), Some(2));
}
