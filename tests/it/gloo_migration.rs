//! Moving from Gloo Edge's docker-compose file mode: what carries over as is.
//!
//! A Gloo Edge user running the docker-compose "file" install keeps two
//! things on disk: the config tree Gloo reads (`<plural>/<namespace>/<name>.yaml`
//! with the spec fields at the top level, plus the `status` and
//! `resourceVersion` Gloo itself wrote there), and the Envoy bootstrap that
//! points the gateway proxy at Gloo's xDS port. This test proves edgeplane
//! is a drop-in for both, through a real Envoy 1.40:
//!
//! 1. The fixture `tests/fixtures/gloo-file-layout/input/` is copied as is;
//!    only ports change (the Gateway's `bindPort` to a free loopback port,
//!    the Upstream's host port to the test backend's), in the copies.
//! 2. Envoy starts from a bootstrap shaped like Gloo's compose bootstrap:
//!    node `docker-compose-node` in cluster `gateway` with role
//!    `gloo-system~gateway-proxy`, one static STRICT_DNS `xds_cluster` using
//!    the legacy cluster-level `http2_protocol_options`, state-of-the-world
//!    gRPC ADS for CDS and LDS (RDS follows through the listener's own
//!    `ads` config source), and an admin block with `access_log_path`. Only
//!    the xDS address differs (Gloo's says `gloo:9977`). Envoy 1.40 accepts
//!    every one of these fields; the two legacy ones only earn a
//!    "Deprecated field" warning in Envoy's log
//!    (`envoy.config.cluster.v3.Cluster.http2_protocol_options` and
//!    `envoy.config.bootstrap.v3.Admin.access_log_path`), so nothing is left
//!    out.
//! 3. Envoy ends up with Gloo's names (listener `listener-<addr>-<port>`,
//!    route config `<listener>-routes`, virtual host `<ns>_<name>`, cluster
//!    `<name>_<ns>`), serves HTTP and WebSocket (upgrades on by default, as
//!    in Gloo) through the listener, and edgeplane's `/status` lists the
//!    node under Gloo's proxy key.
//! 4. Unlike Gloo's file mode, which writes `status` back into the
//!    manifests and adds a `proxies/` folder, edgeplane never writes into
//!    the config tree: after a live edit, and after edgeplane exits, every
//!    file is byte-identical to what the test wrote and no file appeared.
//!
//! Gloo's bootstrap speaks state-of-the-world ADS (`api_type: GRPC`) by
//! definition, so this test keeps it even when `EDGEPLANE_TEST_XDS=delta`
//! selects delta for the rest of the suite: the point is that the file is
//! used unchanged. It runs (and passes) the same under both settings.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use crate::support::*;
use serde_json::Value;

const NODE_ID: &str = "docker-compose-node";
const PROXY_KEY: &str = "gloo-system~gateway-proxy";
const BACKEND: &str = "petstore-backend";

/// Path of the fixture's Gloo config tree.
fn fixture_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gloo-file-layout/input")
}

/// Every entry under `root`, hidden ones included: relative path → file
/// bytes (`None` for a directory).
type Tree = BTreeMap<PathBuf, Option<Vec<u8>>>;

fn walk(root: &Path) -> Tree {
    fn go(root: &Path, dir: &Path, out: &mut Tree) {
        let entries =
            std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
        for e in entries {
            let p = e
                .unwrap_or_else(|e| panic!("entry in {}: {e}", dir.display()))
                .path();
            let rel = p
                .strip_prefix(root)
                .expect("entry under root")
                .to_path_buf();
            if p.is_dir() {
                out.insert(rel, None);
                go(root, &p, out);
            } else {
                let bytes =
                    std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
                out.insert(rel, Some(bytes));
            }
        }
    }
    let mut out = Tree::new();
    go(root, root, &mut out);
    out
}

/// Replaces the number after `key:` on every line that starts (after
/// indentation) with `key:`; panics unless exactly `expected` lines matched.
fn rewrite_port(text: &str, key: &str, port: u16, expected: usize, file: &Path) -> String {
    let re = regex::Regex::new(&format!(r"(?m)^(\s*(?:- )?{key}:\s*)\d+\s*$")).expect("port regex");
    let hits = re.find_iter(text).count();
    assert_eq!(
        hits,
        expected,
        "{}: expected {expected} `{key}:` line(s) to rewrite",
        file.display()
    );
    re.replace_all(text, |c: &regex::Captures| format!("{}{port}", &c[1]))
        .into_owned()
}

/// Copies the fixture tree to `to`, rewriting only ports, and returns what
/// was written (the reference for "edgeplane never writes here").
fn copy_gloo_tree(to: &Path, gateway_port: u16, backend_port: u16) -> Tree {
    let source = walk(&fixture_root());
    assert!(
        source.keys().any(|p| p.starts_with("gateways")),
        "fixture has no gateways/ folder"
    );
    let mut written = Tree::new();
    for (rel, content) in source {
        let target = to.join(&rel);
        let Some(bytes) = content else {
            std::fs::create_dir_all(&target).expect("create fixture dir copy");
            written.insert(rel, None);
            continue;
        };
        let text = String::from_utf8(bytes).expect("fixture files are UTF-8");
        let text = match rel.components().next().and_then(|c| c.as_os_str().to_str()) {
            Some("gateways") => rewrite_port(&text, "bindPort", gateway_port, 1, &rel),
            Some("upstreams") => rewrite_port(&text, "port", backend_port, 1, &rel),
            _ => text,
        };
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).expect("create fixture dir copy");
        }
        std::fs::write(&target, text.as_bytes())
            .unwrap_or_else(|e| panic!("write {}: {e}", target.display()));
        written.insert(rel, Some(text.into_bytes()));
    }
    written
}

/// The Gateway's `bindAddress` as written in the fixture.
fn bind_address(tree: &Tree) -> String {
    let re = regex::Regex::new(r"(?m)^bindAddress:\s*'?([^'\s]+)'?\s*$").expect("address regex");
    tree.iter()
        .filter(|(p, _)| p.starts_with("gateways"))
        .find_map(|(_, c)| {
            let text = std::str::from_utf8(c.as_deref()?).ok()?;
            Some(re.captures(text)?[1].to_string())
        })
        .expect("the fixture's Gateway has a bindAddress")
}

/// A bootstrap shaped like Gloo's docker-compose one (our own rendering of
/// its fields); only the xDS address and the admin port are this test's.
fn gloo_style_bootstrap(xds_port: u16, admin_port: u16) -> String {
    format!(
        r#"node:
  cluster: gateway
  id: {NODE_ID}
  metadata:
    role: "{PROXY_KEY}"
static_resources:
  clusters:
  - name: xds_cluster
    type: STRICT_DNS
    connect_timeout: 5s
    # Legacy cluster-level field (deprecated, still accepted by Envoy 1.40
    # with a "Deprecated field" warning).
    http2_protocol_options: {{}}
    load_assignment:
      cluster_name: xds_cluster
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address:
                address: 127.0.0.1
                port_value: {xds_port}
dynamic_resources:
  ads_config:
    transport_api_version: V3
    api_type: GRPC
    grpc_services:
    - envoy_grpc:
        cluster_name: xds_cluster
  cds_config:
    resource_api_version: V3
    ads: {{}}
  lds_config:
    resource_api_version: V3
    ads: {{}}
admin:
  # Deprecated too, and likewise still accepted by Envoy 1.40.
  access_log_path: /dev/null
  address:
    socket_address:
      address: 127.0.0.1
      port_value: {admin_port}
"#
    )
}

/// Envoy started from a given bootstrap file; killed on drop.
struct GlooEnvoy {
    child: Mutex<Option<Child>>,
    admin_port: u16,
    log: PathBuf,
}

impl GlooEnvoy {
    fn start(config: &Path, admin_port: u16, workdir: &Path) -> GlooEnvoy {
        let log = workdir.join("envoy-gloo-bootstrap.log");
        let logf = std::fs::File::create(&log).expect("create envoy log");
        let child = Command::new(envoy_bin())
            .arg("-c")
            .arg(config)
            .arg("--disable-hot-restart")
            // Unique per run (the admin port is free on this machine now).
            // With hot restart disabled Envoy 1.40 logs `base id=0` and
            // uses no shared memory, so this only keeps to the convention.
            .args(["--base-id", &admin_port.to_string()])
            .args(["--drain-time-s", "2", "--concurrency", "1"])
            .args(["-l", "info"])
            .stdout(Stdio::null())
            .stderr(logf)
            .spawn()
            .expect("start envoy");
        GlooEnvoy {
            child: Mutex::new(Some(child)),
            admin_port,
            log,
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics, with Envoy's log, when Envoy has exited.
    fn assert_running(&self) {
        let mut guard = self.child.lock().expect("envoy child lock");
        if let Some(c) = guard.as_mut()
            && let Ok(Some(status)) = c.try_wait()
        {
            panic!(
                "envoy exited ({status}) with Gloo's bootstrap:\n{}",
                self.log_text()
            );
        }
    }

    async fn config_dump(&self) -> Option<Value> {
        self.assert_running();
        let (status, body) = http_get(self.admin_port, "/config_dump").await?;
        if status != 200 {
            return None;
        }
        serde_json::from_str(&body).ok()
    }
}

impl Drop for GlooEnvoy {
    fn drop(&mut self) {
        if let Ok(mut guard) = self.child.lock()
            && let Some(mut c) = guard.take()
        {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The config dump section of message type `name` (`ScopedRoutesConfigDump`
/// is not `RoutesConfigDump`).
fn section<'a>(dump: &'a Value, name: &str) -> Option<&'a Value> {
    let suffix = format!(".{name}");
    dump["configs"]
        .as_array()?
        .iter()
        .find(|c| c["@type"].as_str().is_some_and(|t| t.ends_with(&suffix)))
}

fn listener_names(dump: &Value) -> Vec<String> {
    section(dump, "ListenersConfigDump")
        .and_then(|s| s["dynamic_listeners"].as_array())
        .into_iter()
        .flatten()
        .filter_map(|l| l["name"].as_str().map(str::to_string))
        .collect()
}

/// Route config name → its virtual host names.
fn route_configs(dump: &Value) -> BTreeMap<String, Vec<String>> {
    section(dump, "RoutesConfigDump")
        .and_then(|s| s["dynamic_route_configs"].as_array())
        .into_iter()
        .flatten()
        .filter_map(|r| {
            let rc = &r["route_config"];
            let vhosts = rc["virtual_hosts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v["name"].as_str().map(str::to_string))
                .collect();
            Some((rc["name"].as_str()?.to_string(), vhosts))
        })
        .collect()
}

fn cluster_names(dump: &Value) -> Vec<String> {
    section(dump, "ClustersConfigDump")
        .and_then(|s| s["dynamic_active_clusters"].as_array())
        .into_iter()
        .flatten()
        .filter_map(|c| c["cluster"]["name"].as_str().map(str::to_string))
        .collect()
}

/// Waits until `GET path` through the listener answers `status`; returns
/// the body.
async fn wait_for(port: u16, path: &str, status: u16, envoy: &GlooEnvoy) -> String {
    eventually(
        &format!("GET {path} through envoy answers {status}"),
        || async {
            envoy.assert_running();
            http_get(port, path)
                .await
                .filter(|(s, _)| *s == status)
                .map(|(_, b)| b)
        },
    )
    .await
}

fn assert_tree_unchanged(dir: &Path, written: &Tree, when: &str) {
    let now = walk(dir);
    let added: Vec<_> = now.keys().filter(|p| !written.contains_key(*p)).collect();
    let removed: Vec<_> = written.keys().filter(|p| !now.contains_key(*p)).collect();
    assert!(
        added.is_empty() && removed.is_empty(),
        "{when}: config tree changed: added {added:?}, removed {removed:?}"
    );
    for (rel, content) in written {
        assert!(
            now.get(rel) == Some(content),
            "{when}: {} is not byte-identical to what the test wrote:\n--- wrote ---\n{}\n--- now ---\n{}",
            rel.display(),
            content
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default(),
            now.get(rel)
                .and_then(|c| c.as_deref())
                .map(String::from_utf8_lossy)
                .unwrap_or_default()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gloo_compose_file_mode_carries_over_unchanged() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = tmp.path().join("config");
    let backend = Backend::start(BACKEND).await;
    let port = free_port();

    // 1. Gloo's file layout, as is (ports only).
    let mut written = copy_gloo_tree(&config, port, backend.port);
    let listener = format!("listener-{}-{port}", bind_address(&written));
    let route_config = format!("{listener}-routes");

    let mut cp = ControlPlane::start(&config, 0, tmp.path()).await;

    // 2. Gloo's bootstrap, as is (addresses only).
    let admin_port = loop {
        let p = free_port();
        if p != port && p != cp.xds_port && p != cp.admin_port {
            break p;
        }
    };
    let bootstrap = tmp.path().join("envoy-config.yaml");
    std::fs::write(&bootstrap, gloo_style_bootstrap(cp.xds_port, admin_port))
        .expect("write bootstrap");
    let envoy = GlooEnvoy::start(&bootstrap, admin_port, tmp.path());
    let logs = || cp.logs_with(&envoy.log_text());

    // 3. Gloo's names in Envoy.
    let end = std::time::Instant::now() + DEADLINE;
    let dump = loop {
        let dump = envoy.config_dump().await;
        if let Some(d) = &dump
            && listener_names(d).contains(&listener)
            && route_configs(d).contains_key(&route_config)
            && !cluster_names(d).is_empty()
        {
            break dump.unwrap_or_default();
        }
        assert!(
            std::time::Instant::now() < end,
            "timed out waiting for {listener}, {route_config} and a cluster in Envoy; \
             Envoy holds listeners {:?}, route configs {:?}, clusters {:?}\n{}",
            dump.as_ref().map(listener_names),
            dump.as_ref().map(route_configs),
            dump.as_ref().map(cluster_names),
            logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(listener_names(&dump), vec![listener.clone()], "{}", logs());
    assert_eq!(
        route_configs(&dump).get(&route_config),
        Some(&vec!["gloo-system_default".to_string()]),
        "{}",
        logs()
    );
    assert_eq!(
        cluster_names(&dump),
        vec!["petstore_gloo-system".to_string()],
        "{}",
        logs()
    );

    // HTTP through the listener: the RouteTable's route and the
    // VirtualService's exact route with its prefix rewrite.
    let body = wait_for(port, "/petstore/api/pets", 200, &envoy).await;
    assert_eq!(body, format!("{BACKEND} GET /petstore/api/pets\n"));
    let (status, body) = http_get(port, "/all-pets")
        .await
        .expect("GET /all-pets through envoy");
    assert_eq!(
        (status, body.as_str()),
        (200, format!("{BACKEND} GET /api/pets\n").as_str()),
        "{}",
        logs()
    );

    // WebSocket: upgrades are on by default.
    let mut ws = ws_connect(port, "/petstore/api/stream")
        .await
        .unwrap_or_else(|code| panic!("expected 101, got {code}\n{}", logs()));
    echo(&mut ws, "hello from a gloo user").await;
    echo(&mut ws, "still here").await;
    drop(ws);

    // edgeplane's /status: Gloo's node id, under Gloo's proxy key, over
    // state-of-the-world ADS (Gloo's `api_type: GRPC`) in every run.
    let node = eventually("edgeplane lists docker-compose-node", || async {
        status_node(&cp.status().await, NODE_ID).cloned()
    })
    .await;
    assert_eq!(node["proxy"], PROXY_KEY, "{node}");
    assert_eq!(node["xdsMode"], "sotw", "{node}");

    // 4. A live edit (as an editor saves it), then no write by edgeplane.
    let rt_rel = PathBuf::from("routetables/gloo-system/petstore-routes.yaml");
    let rt_old = written
        .get(&rt_rel)
        .and_then(|c| c.as_deref())
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .expect("fixture has the petstore-routes RouteTable");
    assert!(rt_old.contains("- prefix: /petstore/api\n"), "{rt_old}");
    let rt_new = rt_old.replace("- prefix: /petstore/api\n", "- prefix: /petstore/v2\n");
    let rt_dir = config.join("routetables/gloo-system");
    write_atomic(&rt_dir, "petstore-routes.yaml", &rt_new);
    written.insert(rt_rel, Some(rt_new.into_bytes()));

    let body = wait_for(port, "/petstore/v2/pets", 200, &envoy).await;
    assert_eq!(body, format!("{BACKEND} GET /petstore/v2/pets\n"));
    wait_for(port, "/petstore/api/pets", 404, &envoy).await;

    assert_tree_unchanged(&config, &written, "while edgeplane serves");

    // Nor on the way out: a graceful stop writes nothing either.
    assert!(cp.terminate(), "SIGTERM to edgeplane");
    let exit = cp.wait_exit(Duration::from_secs(15)).await;
    assert!(
        exit.is_some(),
        "edgeplane did not exit on SIGTERM\n{}",
        cp.logs_with(&envoy.log_text())
    );
    assert_tree_unchanged(&config, &written, "after edgeplane exited");
    drop(envoy);
}
