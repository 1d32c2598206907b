//! Test harness: real processes on loopback.
//!
//! `ControlPlane` runs the `edgeplane` binary, `Envoy` runs the real Envoy
//! (from `ENVOY_BIN` or the project's `.venv`; a missing Envoy fails the
//! test, never skips it), `Backend` is the demo echo server (real HTTP and
//! WebSocket). Every wait polls an observable (Envoy's admin, edgeplane's
//! `/status`) with a deadline.

pub mod etcd;
pub mod load;

use std::future::Future;
use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const DEADLINE: Duration = Duration::from_secs(20);

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A loopback port that is free now, for a process to bind soon.
///
/// Taken below Linux's ephemeral range (32768 and up), not from the kernel
/// (`bind :0`): a port handed out by the kernel and released is soon
/// free game as the local port of any outgoing connection the tests make,
/// and one was seen taken that way before Envoy could bind its listener.
/// A counter keeps the ports of one test binary apart.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000; // up to 31999
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    // Start where the process id says, so consecutive test binaries do not
    // walk the same ports.
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id() % SPAN,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed) % SPAN;
        let Ok(port) = u16::try_from(FIRST + n) else {
            continue;
        };
        if StdListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {FIRST}..{}", FIRST + SPAN)
}

/// Polls `f` until it returns `Some`, or panics with `what` at the deadline.
pub async fn eventually<T, F, Fut>(what: &str, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    poll(what, DEADLINE, Duration::from_millis(25), f)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Polls `f` every `every` until it returns `Some`; an error naming `what`
/// once `within` has passed.
pub async fn poll<T, F, Fut>(what: &str, within: Duration, every: Duration, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let end = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if Instant::now() >= end {
            bail!("timed out after {within:?} waiting for: {what}");
        }
        tokio::time::sleep(every).await;
    }
}

/// Writes a file the way editors save: a temp file, then a rename.
pub fn write_atomic(dir: &Path, name: &str, content: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, content).expect("write temp manifest");
    std::fs::rename(&tmp, dir.join(name)).expect("rename manifest into place");
}

/// The input files of fixture `name` (`tests/fixtures/<name>/input`), with
/// the Gateway's `bindPort: 8080` moved to `port`.
pub fn fixture_files(name: &str, port: u16) -> Vec<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .join("input");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&src)
        .unwrap_or_else(|e| panic!("read fixture {}: {e}", src.display()))
        .map(|e| e.expect("fixture entry").path())
        .map(|p| {
            let file = p.file_name().expect("name").to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&p).expect("read fixture file");
            (
                file,
                text.replace("bindPort: 8080", &format!("bindPort: {port}")),
            )
        })
        .collect();
    files.sort();
    files
}

/// A temp dir with a `manifests` dir in it holding `files` (name,
/// content); logs and bootstraps go into the temp dir beside it.
pub fn manifests_dir<N: AsRef<str>>(files: &[(N, String)]) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("manifests");
    std::fs::create_dir(&dir).expect("mkdir manifests");
    for (name, content) in files {
        write_atomic(&dir, name.as_ref(), content);
    }
    (tmp, dir)
}

/// A plain HTTP/1.1 GET; returns status and body.
pub async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let req = format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n");
    parse_response(try_raw_request(port, &req).await?.as_bytes())
}

/// Decodes an HTTP/1.1 chunked body (Envoy's admin sends large ones so).
fn dechunk(mut rest: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size_line, after) = rest.split_once("\r\n")?;
        let size = usize::from_str_radix(size_line.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(after.get(..size)?);
        rest = after.get(size + 2..)?;
    }
}

/// Opens a WebSocket; `Err(status)` when the server answered without 101.
pub async fn ws_connect(port: u16, path: &str) -> Result<Ws, u16> {
    let url = format!("ws://127.0.0.1:{port}{path}");
    match tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(url),
    )
    .await
    {
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(resp))) => Err(resp.status().as_u16()),
        Ok(Err(e)) => panic!("websocket connect to {path} failed: {e}"),
        Err(_) => panic!("websocket connect to {path} timed out"),
    }
}

/// Sends `text` and waits (bounded) for the same text back.
pub async fn echo(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text))
        .await
        .expect("send on websocket");
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("echo timed out")
            .expect("websocket closed while waiting for echo")
            .expect("websocket error while waiting for echo");
        match msg {
            Message::Text(t) => {
                assert_eq!(t.as_str(), text, "echo mismatch");
                return;
            }
            Message::Close(c) => panic!("websocket closed: {c:?}"),
            _ => {}
        }
    }
}

// === demo backend ===

pub struct Backend {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Backend {
    pub async fn start(name: &str) -> Backend {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind backend");
        let port = l.local_addr().expect("backend addr").port();
        let task = tokio::spawn(edgeplane::cli::demo::serve_echo(l, name.to_string()));
        Backend { port, task }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// === edgeplane ===

/// The binary under test: `EDGEPLANE_BIN` when set (several worktrees
/// building into one shared target directory overwrite its uplifted
/// `debug/edgeplane`; point this at `debug/deps/edgeplane-<hash>`), else
/// cargo's.
pub fn edgeplane_bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var("EDGEPLANE_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_edgeplane").to_string())
    })
}

pub struct ControlPlane {
    child: Option<Child>,
    pub xds_port: u16,
    pub admin_port: u16,
    pub dir: PathBuf,
    pub log: PathBuf,
}

impl ControlPlane {
    /// Starts `edgeplane serve` on `dir`; `xds_port` 0 picks a free port.
    pub async fn start(dir: &Path, xds_port: u16, logdir: &Path) -> ControlPlane {
        Self::start_with_args(dir, xds_port, logdir, &[]).await
    }

    /// As `start`, with `extra` arguments for `edgeplane serve` (e.g.
    /// `--xds-tls-cert`).
    pub async fn start_with_args(
        dir: &Path,
        xds_port: u16,
        logdir: &Path,
        extra: &[String],
    ) -> ControlPlane {
        let source = ["--config-dir".to_string(), dir.display().to_string()];
        Self::start_source(&source, dir, xds_port, logdir, extra).await
    }

    /// `edgeplane serve --etcd-endpoints …` (`extra`: e.g. `--etcd-prefix`).
    pub async fn start_etcd(endpoints: &[String], logdir: &Path, extra: &[String]) -> ControlPlane {
        let source = ["--etcd-endpoints".to_string(), endpoints.join(",")];
        Self::start_source(&source, logdir, 0, logdir, extra).await
    }

    /// Starts `edgeplane serve` with `source` (the source flags); `dir` is
    /// kept as `ControlPlane::dir`.
    pub async fn start_source(
        source: &[String],
        dir: &Path,
        xds_port: u16,
        logdir: &Path,
        extra: &[String],
    ) -> ControlPlane {
        let xds_port = if xds_port == 0 { free_port() } else { xds_port };
        let admin_port = free_port();
        let log = logdir.join(format!("edgeplane-{admin_port}.log"));
        let logf = std::fs::File::create(&log).expect("create log file");
        let child = Command::new(edgeplane_bin())
            .arg("serve")
            .args(source)
            .args(["--xds-address", &format!("127.0.0.1:{xds_port}")])
            .args(["--admin-address", &format!("127.0.0.1:{admin_port}")])
            .args(extra)
            .env("RUST_LOG", "info,edgeplane=debug")
            .stdout(Stdio::null())
            .stderr(logf)
            .spawn()
            .expect("start edgeplane");
        let cp = ControlPlane {
            child: Some(child),
            xds_port,
            admin_port,
            dir: dir.to_path_buf(),
            log,
        };
        eventually("edgeplane admin answers", || async {
            http_get(admin_port, "/healthz")
                .await
                .filter(|(s, _)| *s == 200)
        })
        .await;
        cp
    }

    pub async fn status(&self) -> Value {
        admin_status(self.admin_port)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// `GET path` on the admin port.
    pub async fn admin_get(&self, path: &str) -> Result<(u16, String)> {
        http_get(self.admin_port, path)
            .await
            .with_context(|| format!("GET {path}"))
    }

    pub async fn loads(&self) -> u64 {
        self.status().await["loads"].as_u64().unwrap_or(0)
    }

    /// Waits until edgeplane has finished a load after `after` loads.
    pub async fn wait_load_after(&self, after: u64) -> Value {
        eventually("edgeplane reloaded", || async {
            let s = self.status().await;
            (s["loads"].as_u64().unwrap_or(0) > after).then_some(s)
        })
        .await
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// This edgeplane's log and an Envoy's, as context for a failure.
    pub fn logs_with(&self, envoy_log: &str) -> String {
        format!(
            "--- edgeplane log ---\n{}\n--- envoy log ---\n{envoy_log}",
            self.log_text()
        )
    }

    /// Waits until `node_id` is connected over this run's ADS variant
    /// (`xds_mode()`), as edgeplane's `/status` reports it.
    pub async fn wait_connected_in_mode(&self, node_id: &str) {
        let mode = xds_mode();
        eventually(&format!("{node_id} connected over {mode} ADS"), || async {
            let s = self.status().await;
            (status_node(&s, node_id)?["xdsMode"] == mode).then_some(())
        })
        .await;
    }

    /// Stops the process (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.kill();
    }
}

// === edgeplane's /status ===

/// edgeplane's `/status` on `admin_port`, which must answer 200 with JSON.
pub async fn admin_status(admin_port: u16) -> Result<Value> {
    let (code, body) = http_get(admin_port, "/status")
        .await
        .context("edgeplane /status")?;
    ensure!(code == 200, "edgeplane /status answered {code}");
    serde_json::from_str(&body).context("edgeplane /status is JSON")
}

/// The entry of the `/status` array `list` whose `key` is `want` (e.g.
/// `nodes` by `nodeId`).
pub fn status_entry<'a>(status: &'a Value, list: &str, key: &str, want: &str) -> Option<&'a Value> {
    status[list].as_array()?.iter().find(|e| e[key] == want)
}

/// `node_id`'s entry in a `/status`, if it is connected.
pub fn status_node<'a>(status: &'a Value, node_id: &str) -> Option<&'a Value> {
    status_entry(status, "nodes", "nodeId", node_id)
}

/// Whether, in a `/status`, `node_id` has ACKed for every type the version
/// edgeplane serves its proxy (and some type is served).
pub fn node_synced(status: &Value, node_id: &str) -> bool {
    let Some(node) = status_node(status, node_id) else {
        return false;
    };
    let Some(proxy) = status["proxies"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["key"] == node["proxy"]))
    else {
        return false;
    };
    let served = proxy["types"].as_array().cloned().unwrap_or_default();
    let acked = node["types"].as_array().cloned().unwrap_or_default();
    !served.is_empty()
        && served.iter().all(|t| {
            acked
                .iter()
                .any(|a| a["typeUrl"] == t["typeUrl"] && a["ackedVersion"] == t["version"])
        })
}

// === edgeplane: signals and exit ===

impl ControlPlane {
    /// The process id while the process runs (not yet killed or reaped).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends SIGTERM (`kill -TERM`); false when there is no process or
    /// `kill` failed.
    pub fn terminate(&self) -> bool {
        self.pid().is_some_and(|pid| {
            Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .is_ok_and(|s| s.success())
        })
    }

    /// Waits up to `within` for the process to exit and reaps it; `None`
    /// when it is still running then (or there is no process).
    pub async fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let end = Instant::now() + within;
        loop {
            let status = self.child.as_mut()?.try_wait().ok()?;
            if let Some(status) = status {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= end {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

// === Envoy ===

/// The Envoy binary: `ENVOY_BIN`, else the project's `.venv`. Panics (the
/// test fails) when neither exists: these tests are never skipped.
pub fn envoy_bin() -> PathBuf {
    if let Ok(p) = std::env::var("ENVOY_BIN") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "ENVOY_BIN={} does not exist", p.display());
        return p;
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/envoy");
    assert!(
        p.is_file(),
        "Envoy not found at {} and ENVOY_BIN is unset: run scripts/setup",
        p.display()
    );
    p
}

/// Whether this run's Envoys speak incremental (delta) ADS: set
/// `EDGEPLANE_TEST_XDS=delta` (scripts/test runs the real-Envoy suite in
/// both modes). Anything else, or unset, is state of the world.
pub fn delta_mode() -> bool {
    match std::env::var("EDGEPLANE_TEST_XDS").as_deref() {
        Ok("delta") => true,
        Ok("sotw") | Err(_) => false,
        Ok(other) => panic!("EDGEPLANE_TEST_XDS={other}: expected `sotw` or `delta`"),
    }
}

/// This run's ADS variant as edgeplane names it (`xdsMode` in `/status`,
/// the `mode` label in `/metrics`): `delta` or `sotw`.
pub fn xds_mode() -> &'static str {
    if delta_mode() { "delta" } else { "sotw" }
}

pub struct Envoy {
    child: Option<Child>,
    pub admin_port: u16,
    pub log: PathBuf,
}

impl Envoy {
    /// Starts Envoy with the bootstrap `edgeplane bootstrap` prints.
    pub async fn start(xds_port: u16, node_id: &str, workdir: &Path) -> Envoy {
        Self::start_with_args(xds_port, node_id, workdir, &[]).await
    }

    /// As `start`, with `extra` arguments for `edgeplane bootstrap` (e.g.
    /// `--xds-tls-ca`).
    pub async fn start_with_args(
        xds_port: u16,
        node_id: &str,
        workdir: &Path,
        extra: &[String],
    ) -> Envoy {
        Self::start_with_bootstrap_args(
            xds_port,
            node_id,
            "gloo-system",
            "gateway-proxy",
            workdir,
            extra,
        )
        .await
    }

    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.admin_port, path).await
    }

    /// A counter or gauge by exact name; `None` when Envoy has not created it.
    pub async fn stat(&self, name: &str) -> Option<u64> {
        let filter = format!("^{}$", regex_escape(name));
        let (_, body) = self.get(&format!("/stats?filter={filter}")).await?;
        body.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .and_then(|v| v.trim().parse().ok())
    }

    pub async fn config_dump(&self) -> Value {
        let (_, body) = self.get("/config_dump").await.expect("envoy /config_dump");
        serde_json::from_str(&body).expect("config_dump is JSON")
    }

    /// The (LDS, CDS, RDS of `route_name`) versions Envoy holds.
    /// Envoy's count of rejected LDS, CDS and RDS (`route_name`) updates.
    pub async fn rejected_updates(&self, route_name: &str) -> u64 {
        let mut n = 0;
        for s in [
            "listener_manager.lds.update_rejected".to_string(),
            "cluster_manager.cds.update_rejected".to_string(),
            format!("http.http.rds.{route_name}.update_rejected"),
        ] {
            n += self.stat(&s).await.unwrap_or(0);
        }
        n
    }

    pub async fn versions(&self, route_name: &str) -> (String, String, String) {
        let dump = self.config_dump().await;
        let mut lds = String::new();
        let mut cds = String::new();
        let mut rds = String::new();
        for c in dump["configs"].as_array().into_iter().flatten() {
            let t = c["@type"].as_str().unwrap_or("");
            if t.ends_with("ListenersConfigDump") {
                lds = c["version_info"].as_str().unwrap_or("").to_string();
            } else if t.ends_with("ClustersConfigDump") {
                cds = c["version_info"].as_str().unwrap_or("").to_string();
            } else if t.ends_with("RoutesConfigDump") {
                for r in c["dynamic_route_configs"].as_array().into_iter().flatten() {
                    if r["route_config"]["name"] == route_name {
                        rds = r["version_info"].as_str().unwrap_or("").to_string();
                    }
                }
            }
        }
        (lds, cds, rds)
    }

    /// Waits until Envoy is LIVE and serves `GET path` on `port` with 200.
    pub async fn wait_serving(&self, port: u16, path: &str) -> String {
        eventually(&format!("envoy serves {path} on {port}"), || async {
            http_get(port, path)
                .await
                .filter(|(s, _)| *s == 200)
                .map(|(_, b)| b)
        })
        .await
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                vec![c]
            } else {
                vec!['\\', c]
            }
        })
        .collect()
}

// === manifests ===

/// A Gateway on 127.0.0.1:`port`; `hcm` is YAML inserted under
/// `httpGateway.options.httpConnectionManagerSettings` (empty: none).
pub fn gateway(port: u16, hcm: &str) -> String {
    let options = if hcm.is_empty() {
        String::new()
    } else {
        format!(
            "    options:\n      httpConnectionManagerSettings:\n{}",
            indent(hcm, 8)
        )
    };
    format!(
        "apiVersion: gateway.solo.io/v1\nkind: Gateway\nmetadata:\n  name: gw\n  namespace: gloo-system\nspec:\n  bindAddress: 127.0.0.1\n  bindPort: {port}\n  httpGateway:\n{}",
        if options.is_empty() {
            "    {}\n".to_string()
        } else {
            options
        }
    )
}

pub fn upstream(name: &str, ports: &[u16]) -> String {
    let hosts: String = ports
        .iter()
        .map(|p| format!("    - addr: 127.0.0.1\n      port: {p}\n"))
        .collect();
    format!(
        "apiVersion: gloo.solo.io/v1\nkind: Upstream\nmetadata:\n  name: {name}\n  namespace: gloo-system\nspec:\n  static:\n    hosts:\n{hosts}"
    )
}

/// A VirtualService named `vs` whose routes are the given YAML list items.
/// VirtualService `gloo-system/vs` answering every path with `body` (no backend needed).
pub fn direct_vs(body: &str) -> String {
    format!(
        "apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata:\n  name: vs\n  namespace: gloo-system\nspec:\n  virtualHost:\n    domains: ['*']\n    routes:\n    - matchers:\n      - prefix: /\n      directResponseAction:\n        status: 200\n        body: {body}\n"
    )
}

pub fn virtual_service(routes: &str) -> String {
    format!(
        "apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata:\n  name: vs\n  namespace: gloo-system\nspec:\n  virtualHost:\n    domains: ['*']\n    routes:\n{}",
        indent(routes, 4)
    )
}

/// A route item for `virtual_service`: prefix → upstream, with optional
/// YAML `options` body.
pub fn route(prefix: &str, upstream: &str, options: &str) -> String {
    let mut s = format!(
        "- matchers:\n  - prefix: {prefix}\n  routeAction:\n    single:\n      upstream:\n        name: {upstream}\n        namespace: gloo-system\n"
    );
    if !options.is_empty() {
        s.push_str("  options:\n");
        s.push_str(&indent(options, 4));
    }
    s
}

fn indent(text: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    text.lines().map(|l| format!("{pad}{l}\n")).collect()
}

/// A whole stack: a manifests dir, edgeplane, one Envoy, one backend.
pub struct Stack {
    pub tmp: tempfile::TempDir,
    pub dir: PathBuf,
    pub port: u16,
    pub backend: Backend,
    pub cp: ControlPlane,
    pub envoy: Envoy,
}

impl Stack {
    /// Starts everything with `files` (name, content) in the manifests dir.
    /// `port` is the Gateway's port, already used in `files`.
    pub async fn start(port: u16, backend: Backend, files: &[(&str, String)]) -> Stack {
        let (tmp, dir) = manifests_dir(files);
        let cp = ControlPlane::start(&dir, 0, tmp.path()).await;
        let envoy = Envoy::start(cp.xds_port, "test-node", tmp.path()).await;
        // Every stack proves which ADS variant this run exercises.
        cp.wait_connected_in_mode("test-node").await;
        Stack {
            tmp,
            dir,
            port,
            backend,
            cp,
            envoy,
        }
    }

    /// A stack on a free port with the demo backend `b1` and the files
    /// `files(port, backend_port)`; returns once Envoy serves `GET /plain`.
    pub async fn serving(files: impl FnOnce(u16, u16) -> Vec<(&'static str, String)>) -> Stack {
        let port = free_port();
        let backend = Backend::start("b1").await;
        let backend_port = backend.port;
        let s = Stack::start(port, backend, &files(port, backend_port)).await;
        s.envoy.wait_serving(port, "/plain").await;
        s
    }

    pub fn route_name(&self) -> String {
        format!("listener-127.0.0.1-{}-routes", self.port)
    }

    /// Envoy's RDS stat prefix for this stack's route config.
    pub fn rds_stat(&self, stat: &str) -> String {
        format!("http.http.rds.{}.{stat}", self.route_name())
    }

    /// Context to print when an assertion fails.
    pub fn logs(&self) -> String {
        self.cp.logs_with(&self.envoy.log_text())
    }
}

// === Envoy with a chosen node role (golden fixtures) ===

impl Envoy {
    /// Starts Envoy with the bootstrap `edgeplane bootstrap --namespace
    /// NAMESPACE --proxy-name PROXY_NAME` prints, so its
    /// `node.metadata.role` is `<namespace>~<proxy_name>`.
    pub async fn start_with_role(
        xds_port: u16,
        node_id: &str,
        namespace: &str,
        proxy_name: &str,
        workdir: &Path,
    ) -> Envoy {
        Self::start_with_bootstrap_args(xds_port, node_id, namespace, proxy_name, workdir, &[])
            .await
    }

    /// As `start_with_role`, with `extra` arguments for `edgeplane
    /// bootstrap` (e.g. `--xds-tls-ca`).
    pub async fn start_with_bootstrap_args(
        xds_port: u16,
        node_id: &str,
        namespace: &str,
        proxy_name: &str,
        workdir: &Path,
        extra: &[String],
    ) -> Envoy {
        let bootstrap = Command::new(edgeplane_bin())
            .args(["bootstrap", "--node-id", node_id])
            .args(["--namespace", namespace, "--proxy-name", proxy_name])
            .args(["--xds-address", &format!("127.0.0.1:{xds_port}")])
            .args(["--admin-port", "0"])
            .args(delta_mode().then_some("--delta"))
            .args(extra)
            .output()
            .expect("run edgeplane bootstrap");
        assert!(
            bootstrap.status.success(),
            "edgeplane bootstrap failed: {}",
            String::from_utf8_lossy(&bootstrap.stderr)
        );
        let cfg = workdir.join(format!("envoy-{node_id}.yaml"));
        std::fs::write(&cfg, &bootstrap.stdout).expect("write bootstrap");
        let admin_file = workdir.join(format!("envoy-{node_id}.admin"));
        let _ = std::fs::remove_file(&admin_file);
        let log = workdir.join(format!("envoy-{node_id}.log"));
        let logf = std::fs::File::create(&log).expect("create envoy log");
        let child = Command::new(envoy_bin())
            .arg("-c")
            .arg(&cfg)
            .arg("--admin-address-path")
            .arg(&admin_file)
            .args([
                "--disable-hot-restart",
                "--drain-time-s",
                "2",
                "--concurrency",
                "1",
            ])
            .args(["-l", "warning"])
            .stdout(Stdio::null())
            .stderr(logf)
            .spawn()
            .expect("start envoy");
        let mut envoy = Envoy {
            child: Some(child),
            admin_port: 0,
            log,
        };
        envoy.admin_port = eventually("envoy admin address file", || {
            let f = admin_file.clone();
            async move {
                let text = std::fs::read_to_string(&f).ok()?;
                text.trim().rsplit(':').next()?.parse::<u16>().ok()
            }
        })
        .await;
        envoy
    }
}

// === responses read by other clients (e.g. over TLS) ===

/// Parses a whole HTTP/1.1 response as `http_get` does: status and body
/// (chunked bodies decoded).
pub fn parse_response(buf: &[u8]) -> Option<(u16, String)> {
    let text = String::from_utf8_lossy(buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let chunked = head
        .lines()
        .any(|l| l.eq_ignore_ascii_case("transfer-encoding: chunked"));
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_string()
    };
    Some((status, body))
}

/// Sends a raw HTTP/1.1 request and returns the whole response text;
/// `None` when the connection or the read fails (bounded by a timeout).
pub async fn try_raw_request(port: u16, req: &str) -> Option<String> {
    let mut s = tokio::time::timeout(
        Duration::from_secs(5),
        TcpStream::connect(("127.0.0.1", port)),
    )
    .await
    .ok()?
    .ok()?;
    s.write_all(req.as_bytes()).await.ok()?;
    // Until the server closes or the response is complete: some servers
    // (Chromium's DevTools endpoint) keep the connection open whatever the
    // request says.
    let read = async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let n = s.read(&mut chunk).await.ok()?;
            if n == 0 {
                return Some(buf);
            }
            buf.extend_from_slice(&chunk[..n]);
            if response_complete(&buf) {
                return Some(buf);
            }
        }
    };
    let buf = tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .ok()??;
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// Whether `buf` holds a whole HTTP/1.1 response: its head, then as many
/// body bytes as `content-length` says, or a chunked body's last chunk.
fn response_complete(buf: &[u8]) -> bool {
    let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let body = &buf[head_end + 4..];
    if let Some(len) = head.lines().find_map(|l| {
        let v = l.strip_prefix("content-length:")?;
        v.trim().parse::<usize>().ok()
    }) {
        return body.len() >= len;
    }
    head.lines().any(|l| l == "transfer-encoding: chunked") && body.ends_with(b"0\r\n\r\n")
}

/// As `try_raw_request`, for when the listener must be up.
pub async fn raw_request(port: u16, req: &str) -> String {
    try_raw_request(port, req)
        .await
        .expect("raw HTTP request through Envoy failed")
}
