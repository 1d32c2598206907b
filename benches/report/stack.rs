//! Real processes on loopback for the sections that drive Envoy: the demo
//! echo backend (in this process), `edgeplane serve`, Envoy; a keep-alive
//! HTTP/1.1 probe; atomic file writes. Every child is killed on drop and
//! every wait is bounded by a deadline.
//!
//! Also the loopback plumbing `servers` shares: free ports, the one-shot
//! HTTP GET, edgeplane's admin `/status`, log tails, writing a manifests
//! directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::Ctx;

/// A child process, killed (and reaped) when dropped.
pub struct Proc {
    child: Option<Child>,
    pub log: PathBuf,
}

impl Proc {
    /// The last lines of its log, for error messages.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log)
    }

    /// Its process id (`None` once reaped).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// CPU time it has used so far (zero when unknown).
    pub fn cpu(&self) -> Duration {
        self.pid()
            .and_then(crate::procs::cpu_time)
            .unwrap_or_default()
    }

    /// Fails when the process has exited.
    pub fn check_alive(&mut self, what: &str) -> Result<()> {
        if let Some(c) = self.child.as_mut()
            && let Ok(Some(status)) = c.try_wait()
        {
            bail!("{what} exited ({status}); log tail:\n{}", self.log_tail());
        }
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // `EDGEPLANE_BENCH_KEEP_LOGS=DIR` keeps every log, for diagnosis.
        if let (Some(dir), Some(name)) = (
            std::env::var_os("EDGEPLANE_BENCH_KEEP_LOGS"),
            self.log.file_name(),
        ) {
            let dest = std::path::Path::new(&dir).join(name);
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::fs::copy(&self.log, dest);
        }
    }
}

/// The last lines of the log at `path`, for error messages.
pub fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Starts `cmd` with its stderr in `log` (stdin and stdout closed).
pub fn spawn(mut cmd: Command, log: PathBuf, what: &str) -> Result<Proc> {
    let logf = std::fs::File::create(&log).with_context(|| format!("create {}", log.display()))?;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(logf)
        .spawn()
        .with_context(|| format!("start {what}"))?;
    Ok(Proc {
        child: Some(child),
        log,
    })
}

pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("bind a free loopback port")?;
    Ok(l.local_addr().context("local addr")?.port())
}

/// `n` distinct free loopback ports (all bound at once, then released).
pub fn free_ports(n: usize) -> Result<Vec<u16>> {
    let held = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").context("bind a free loopback port"))
        .collect::<Result<Vec<_>>>()?;
    held.iter()
        .map(|l| Ok(l.local_addr().context("local addr")?.port()))
        .collect()
}

/// `n` distinct free loopback ports for listeners that bind much later
/// (Envoy binds a Gateway's port only once its clusters are in, seconds
/// into a large config): below the kernel's ephemeral range, so that none
/// is taken meanwhile as the local port of one of the run's many client
/// connections, as a `free_ports` port can be. Falls back to `free_ports`
/// when that range starts too low.
pub fn listen_ports(n: usize) -> Result<Vec<u16>> {
    const FROM: u32 = 10_000;
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768);
    let span = ephemeral.saturating_sub(FROM);
    if span < 1_000 {
        return free_ports(n);
    }
    // Start somewhere else each run (no two runs pick alike), then step
    // through the range by a prime.
    let start = std::process::id()
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
    let mut held = Vec::with_capacity(n);
    for i in 0..span {
        let port = FROM + start.wrapping_add(i.wrapping_mul(7_919)) % span;
        if let Ok(l) = std::net::TcpListener::bind(("127.0.0.1", port as u16)) {
            held.push(l);
            if held.len() == n {
                break;
            }
        }
    }
    ensure!(
        held.len() == n,
        "fewer than {n} free loopback ports below {ephemeral}"
    );
    held.iter()
        .map(|l| Ok(l.local_addr().context("local addr")?.port()))
        .collect()
}

/// The demo echo backend (HTTP + WebSocket) on a free port of this process.
pub struct Backend {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Backend {
    pub async fn start() -> Result<Backend> {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("bind the echo backend")?;
        let port = l.local_addr().context("backend addr")?.port();
        let task = tokio::spawn(edgeplane::cli::demo::serve_echo(l, "echo".to_string()));
        Ok(Backend { port, task })
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `edgeplane serve` (the binary this `cargo bench` built), `RUST_LOG=warn`.
pub struct Edgeplane {
    pub proc: Proc,
    pub xds_port: u16,
    pub admin_port: u16,
}

impl Edgeplane {
    pub async fn start(ctx: &Ctx, config_dir: &Path, workdir: &Path) -> Result<Edgeplane> {
        Edgeplane::start_source(
            ctx,
            &["--config-dir".as_ref(), config_dir.as_os_str()],
            workdir,
        )
        .await
    }

    /// `edgeplane serve` with `source` as its source flags (`--config-dir
    /// DIR`, `--etcd-endpoints URLS …`); returns once its admin answers.
    pub async fn start_source(
        ctx: &Ctx,
        source: &[&std::ffi::OsStr],
        workdir: &Path,
    ) -> Result<Edgeplane> {
        let xds_port = free_port()?;
        let admin_port = free_port()?;
        let mut cmd = Command::new(&ctx.edgeplane_bin);
        cmd.arg("serve")
            .args(source)
            .args(["--xds-address", &format!("127.0.0.1:{xds_port}")])
            .args(["--admin-address", &format!("127.0.0.1:{admin_port}")])
            // `EDGEPLANE_BENCH_RUST_LOG` overrides the level, for diagnosis.
            .env(
                "RUST_LOG",
                std::env::var("EDGEPLANE_BENCH_RUST_LOG").unwrap_or_else(|_| "warn".into()),
            );
        let proc = spawn(
            cmd,
            workdir.join(format!("edgeplane-{admin_port}.log")),
            "edgeplane",
        )?;
        let mut ep = Edgeplane {
            proc,
            xds_port,
            admin_port,
        };
        let end = Instant::now() + Duration::from_secs(120);
        loop {
            ep.proc.check_alive("edgeplane serve")?;
            if http_get(admin_port, "127.0.0.1", "/healthz")
                .await
                .is_some_and(|(s, _)| s == 200)
            {
                break;
            }
            if Instant::now() >= end {
                bail!("edgeplane admin did not answer /healthz within 120 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(ep)
    }

    /// The admin `/status` JSON.
    pub async fn status(&self) -> Result<serde_json::Value> {
        admin_status(self.admin_port).await
    }

    /// Loads completed since start (`/status`).
    pub async fn loads(&self) -> Result<u64> {
        admin_loads(self.admin_port).await
    }

    /// The bootstrap `edgeplane bootstrap` prints for a server on
    /// `xds_port`.
    pub fn bootstrap(ctx: &Ctx, xds_port: u16, node_id: &str) -> Result<String> {
        let out = Command::new(&ctx.edgeplane_bin)
            .args(["bootstrap", "--node-id", node_id])
            .args(["--xds-address", &format!("127.0.0.1:{xds_port}")])
            .args(["--admin-port", "0"])
            .output()
            .context("run edgeplane bootstrap")?;
        if !out.status.success() {
            bail!(
                "edgeplane bootstrap failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        String::from_utf8(out.stdout).context("bootstrap is not UTF-8")
    }
}

/// The `/status` JSON of the edgeplane admin on `admin_port`.
pub async fn admin_status(admin_port: u16) -> Result<serde_json::Value> {
    let (status, body) = http_get(admin_port, "127.0.0.1", "/status")
        .await
        .context("edgeplane /status")?;
    ensure!(status == 200, "edgeplane /status answered {status}");
    serde_json::from_str(&body).context("/status is not JSON")
}

/// Loads completed since start, from the `/status` of the edgeplane admin
/// on `admin_port`.
pub async fn admin_loads(admin_port: u16) -> Result<u64> {
    admin_status(admin_port).await?["loads"]
        .as_u64()
        .context("/status has no loads")
}

/// Envoy (`ctx.envoy_bin`) with `--concurrency 1 --disable-hot-restart -l
/// warning`, its admin on a port it picks.
pub struct Envoy {
    pub proc: Proc,
    pub admin_port: u16,
}

impl Envoy {
    /// `config` is the bootstrap file (Envoy picks the format by extension).
    pub async fn start(ctx: &Ctx, config: &Path, workdir: &Path, name: &str) -> Result<Envoy> {
        let admin_file = workdir.join(format!("envoy-{name}.admin"));
        let _ = std::fs::remove_file(&admin_file);
        let mut cmd = Command::new(&ctx.envoy_bin);
        cmd.arg("-c")
            .arg(config)
            .arg("--admin-address-path")
            .arg(&admin_file)
            .args(["--concurrency", "1", "--disable-hot-restart"])
            .args(["--drain-time-s", "2", "-l", "warning"]);
        let mut proc = spawn(cmd, workdir.join(format!("envoy-{name}.log")), "envoy")?;
        let end = Instant::now() + Duration::from_secs(60);
        let admin_port = loop {
            proc.check_alive("envoy")?;
            if let Some(p) = std::fs::read_to_string(&admin_file)
                .ok()
                .and_then(|t| t.trim().rsplit(':').next()?.parse::<u16>().ok())
            {
                break p;
            }
            if Instant::now() >= end {
                bail!(
                    "envoy wrote no admin address within 60 s; log tail:\n{}",
                    proc.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        Ok(Envoy { proc, admin_port })
    }

    /// An Envoy fed by the edgeplane on `xds_port`: bootstrapped by
    /// `edgeplane bootstrap` with node `node_id`, written to
    /// `workdir/envoy-{name}.yaml`.
    pub async fn start_for(
        ctx: &Ctx,
        xds_port: u16,
        node_id: &str,
        workdir: &Path,
        name: &str,
    ) -> Result<Envoy> {
        let boot = workdir.join(format!("envoy-{name}.yaml"));
        std::fs::write(&boot, Edgeplane::bootstrap(ctx, xds_port, node_id)?)
            .with_context(|| format!("write {}", boot.display()))?;
        Envoy::start(ctx, &boot, workdir, name).await
    }

    /// The RouteConfiguration named `name` from `/config_dump`, with the
    /// version it came with.
    pub async fn route_config(&self, name: &str) -> Result<(String, serde_json::Value)> {
        let (status, body) = http_get(
            self.admin_port,
            "127.0.0.1",
            "/config_dump?resource=dynamic_route_configs",
        )
        .await
        .context("envoy /config_dump")?;
        ensure!(status == 200, "envoy /config_dump answered {status}");
        let dump: serde_json::Value =
            serde_json::from_str(&body).context("config_dump is not JSON")?;
        for c in dump["configs"].as_array().into_iter().flatten() {
            if c["route_config"]["name"] == name {
                let version = c["version_info"].as_str().unwrap_or("").to_string();
                return Ok((version, c["route_config"].clone()));
            }
        }
        bail!("envoy holds no RouteConfiguration {name}")
    }

    /// Waits until `GET path` with `host` on `port` answers 200.
    pub async fn wait_serving(
        &mut self,
        port: u16,
        host: &str,
        path: &str,
        deadline: Duration,
    ) -> Result<()> {
        let end = Instant::now() + deadline;
        loop {
            self.proc.check_alive("envoy")?;
            if http_get(port, host, path)
                .await
                .is_some_and(|(s, _)| s == 200)
            {
                return Ok(());
            }
            if Instant::now() >= end {
                bail!(
                    "envoy did not serve {host}{path} on port {port} within {deadline:?}; log tail:\n{}",
                    self.proc.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// One HTTP/1.1 GET on a fresh connection (`connection: close`); status
/// and body. `None` on any failure (bounded by timeouts).
pub async fn http_get(port: u16, host: &str, path: &str) -> Option<(u16, String)> {
    let mut s = tokio::time::timeout(
        Duration::from_secs(2),
        TcpStream::connect(("127.0.0.1", port)),
    )
    .await
    .ok()?
    .ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let chunked = head.lines().any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("transfer-encoding") && v.trim() == "chunked"
        })
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_string()
    };
    Some((status, body))
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

/// A keep-alive HTTP/1.1 client for probing one host: each `status` call
/// sends one GET and returns the response status (reconnecting as needed).
pub struct Probe {
    port: u16,
    host: String,
    conn: Option<TcpStream>,
    buf: Vec<u8>,
}

impl Probe {
    pub fn new(port: u16, host: &str) -> Probe {
        Probe {
            port,
            host: host.to_string(),
            conn: None,
            buf: Vec::new(),
        }
    }

    /// The status of `GET path`; `None` when the request failed (the next
    /// call reconnects).
    pub async fn status(&mut self, path: &str) -> Option<u16> {
        self.get(path).await.map(|(status, _)| status)
    }

    /// The status and body of `GET path`; `None` when the request failed
    /// (the next call reconnects).
    pub async fn get(&mut self, path: &str) -> Option<(u16, Vec<u8>)> {
        let r = tokio::time::timeout(Duration::from_secs(5), self.exchange(path)).await;
        match r {
            Ok(Some(s)) => Some(s),
            _ => {
                self.conn = None;
                None
            }
        }
    }

    async fn exchange(&mut self, path: &str) -> Option<(u16, Vec<u8>)> {
        if self.conn.is_none() {
            let s = TcpStream::connect(("127.0.0.1", self.port)).await.ok()?;
            s.set_nodelay(true).ok()?;
            self.conn = Some(s);
            self.buf.clear();
        }
        let conn = self.conn.as_mut()?;
        let req = format!("GET {path} HTTP/1.1\r\nhost: {}\r\n\r\n", self.host);
        conn.write_all(req.as_bytes()).await.ok()?;
        let (status, body, keep) = read_response(conn, &mut self.buf).await?;
        if !keep {
            self.conn = None;
        }
        Some((status, body))
    }
}

/// Reads one response (head + `content-length` body) from `conn`; bytes
/// past it stay in `buf`. Returns the status, the body and whether the
/// connection can be reused.
async fn read_response(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(u16, Vec<u8>, bool)> {
    let mut chunk = [0u8; 8192];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let status: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
    let mut len = 0usize;
    let mut keep = true;
    for line in head.lines().skip(1) {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if k.eq_ignore_ascii_case("content-length") {
            len = v.parse().ok()?;
        } else if k.eq_ignore_ascii_case("transfer-encoding") {
            // Not expected from Envoy's 404 or the echo backend: give up
            // on the connection rather than parse chunks.
            keep = false;
        } else if k.eq_ignore_ascii_case("connection") && v.eq_ignore_ascii_case("close") {
            keep = false;
        }
    }
    while buf.len() < end + len {
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf.drain(..(end + len).min(buf.len())).skip(end).collect();
    Some((status, body, keep))
}

/// Writes `content` as `dir/name` the way editors save: a temp file in
/// `staging` (same filesystem, outside the watched directory), then a
/// rename into place. Returns the instant just before the rename.
pub fn write_atomic(staging: &Path, dir: &Path, name: &str, content: &[u8]) -> Result<Instant> {
    let tmp = staging.join(format!("{name}.tmp"));
    std::fs::write(&tmp, content).with_context(|| format!("write {}", tmp.display()))?;
    let dest = dir.join(name);
    let at = Instant::now();
    std::fs::rename(&tmp, &dest).with_context(|| format!("rename into {}", dest.display()))?;
    Ok(at)
}

/// Writes every `(name, content)` into `dir` (created).
pub fn write_all(dir: &Path, files: &[(String, String)]) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("mkdir {}", dir.display()))?;
    for (name, content) in files {
        let p = dir.join(name);
        std::fs::write(&p, content).with_context(|| format!("write {}", p.display()))?;
    }
    Ok(())
}
