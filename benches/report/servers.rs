//! The xDS servers the `fanout` and `memory` sections measure, as separate
//! processes on loopback: `edgeplane serve` on a manifests directory, and
//! the peer control planes (`bench/peer`, `bench/peer-nebucloud`) on a file
//! of encoded resources.
//! Both are killed on drop; every wait is bounded by a deadline.
//!
//! Also: the resources file the peer reads (built from edgeplane's own
//! translation, so both servers serve the same bytes), atomic file writes
//! and the open-files limit the clients need (raised with `setrlimit`). Ports, GETs, log tails and
//! manifest writing are `stack`'s.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use edgeplane::snapshot::{PUSH_ORDER, ProxySnapshot, ResourceType, Snapshot};
use prost::Message;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::time::Instant;

use crate::r#gen::PROXY_KEY;
use crate::procs;
use crate::stack::{admin_loads, admin_status, free_port, http_get, log_tail, write_all};

/// How long a server may take to start and load its config.
const START: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(20);

/// Replaces `dir/name` atomically: a hidden temporary file (which the
/// watcher ignores), then a rename over the target.
pub fn write_atomic(dir: &Path, name: &str, content: &[u8]) -> Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, content).with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, dir.join(name)).with_context(|| format!("rename onto {name}"))
}

/// Writes `files` into a fresh `dir` and translates them with edgeplane's
/// library (exactly what `serve` reads and builds); the proxy's resources.
pub fn write_and_translate(dir: &Path, files: &[(String, String)]) -> Result<Arc<ProxySnapshot>> {
    write_all(dir, files)?;
    translate_dir(dir)
}

pub fn translate_dir(dir: &Path) -> Result<Arc<ProxySnapshot>> {
    let load = edgeplane::pipeline::load_dir(dir);
    if load.has_errors() {
        bail!(
            "generated manifests do not validate:\n{}",
            load.render_diagnostics()
        );
    }
    let snap: Snapshot = load.snapshot.context("no snapshot from a valid load")?;
    snap.proxies
        .get(PROXY_KEY)
        .cloned()
        .with_context(|| format!("the translation has no proxy {PROXY_KEY}"))
}

/// Encoded size of every resource of a proxy: (count, bytes).
pub fn resource_totals(ps: &ProxySnapshot) -> (usize, usize) {
    PUSH_ORDER
        .iter()
        .flat_map(|t| ps.resources(*t))
        .fold((0, 0), |(n, b), e| (n + 1, b + e.bytes.len()))
}

/// Encoded size of a proxy's RouteConfigurations (bytes).
pub fn route_config_bytes(ps: &ProxySnapshot) -> usize {
    ps.resources(ResourceType::Route)
        .map(|e| e.bytes.len())
        .sum()
}

/// The peer's resources file: every resource of the proxy as a
/// length-delimited `google.protobuf.Any`, clusters, listeners, routes.
pub fn write_resources_file(path: &Path, ps: &ProxySnapshot) -> Result<()> {
    let mut buf = Vec::new();
    for t in PUSH_ORDER {
        for e in ps.resources(t) {
            e.any()
                .encode_length_delimited(&mut buf)
                .context("encode an Any")?;
        }
    }
    let dir = path.parent().context("resources file has no parent")?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .context("resources file name")?;
    write_atomic(dir, name, &buf)
}

/// A child killed (SIGKILL) on drop; tokio reaps it.
struct Guard(Child);

impl Guard {
    /// Fails when the child has exited, with the tail of its `log`.
    fn check_alive(&mut self, what: &str, log: &Path) -> Result<()> {
        if let Ok(Some(status)) = self.0.try_wait() {
            bail!("{what} exited ({status}); log tail:\n{}", log_tail(log));
        }
        Ok(())
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

/// Either server as the `fanout` and `memory` sections measure it: its
/// process and the port its ADS clients connect to.
pub trait Server {
    /// `edgeplane` or the peer's name, for messages.
    fn name(&self) -> &'static str;
    fn pid(&self) -> u32;
    fn xds_port(&self) -> u16;
    /// Fails when the process has exited.
    fn check_alive(&mut self) -> Result<()>;

    /// Its VmRSS (KiB).
    fn rss_kib(&self) -> Result<u64> {
        procs::rss_kib(self.pid()).with_context(|| format!("{} VmRSS", self.name()))
    }

    /// Its VmHWM (KiB).
    fn hwm_kib(&self) -> Result<u64> {
        procs::hwm_kib(self.pid()).with_context(|| format!("{} VmHWM", self.name()))
    }
}

// === edgeplane ===

/// `EDGEPLANE_BENCH_SERVER_ENV=K=V;K=V`: extra environment for the
/// `edgeplane serve` processes only, for diagnosis (e.g. a heap profiler's
/// `LD_PRELOAD`); the figures of such a run are not the product's.
fn extra_env() -> Vec<(String, String)> {
    std::env::var("EDGEPLANE_BENCH_SERVER_ENV")
        .unwrap_or_default()
        .split(';')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A running `edgeplane serve` (RUST_LOG=warn).
pub struct Edgeplane {
    child: Guard,
    pid: u32,
    pub xds_port: u16,
    pub admin_port: u16,
    pub dir: PathBuf,
    log: PathBuf,
}

impl Edgeplane {
    /// Starts on `dir` and returns once `/readyz` says a snapshot is served.
    pub async fn start(bin: &Path, dir: &Path, log: PathBuf) -> Result<Edgeplane> {
        Edgeplane::start_with(bin, dir, log, &[], &[]).await
    }

    /// `start` with extra environment variables (diagnostic runs).
    pub async fn start_with_env(
        bin: &Path,
        dir: &Path,
        log: PathBuf,
        env: &[(&str, &str)],
    ) -> Result<Edgeplane> {
        Edgeplane::start_with(bin, dir, log, env, &[]).await
    }

    /// `start` with extra environment variables and extra `serve` flags
    /// (e.g. `--max-connections` above its default for many clients).
    pub async fn start_with(
        bin: &Path,
        dir: &Path,
        log: PathBuf,
        env: &[(&str, &str)],
        args: &[String],
    ) -> Result<Edgeplane> {
        let xds_port = free_port()?;
        let admin_port = free_port()?;
        let logf =
            std::fs::File::create(&log).with_context(|| format!("create {}", log.display()))?;
        let child = Command::new(bin)
            .arg("serve")
            .arg("--config-dir")
            .arg(dir)
            .args(["--xds-address", &format!("127.0.0.1:{xds_port}")])
            .args(["--admin-address", &format!("127.0.0.1:{admin_port}")])
            .args(args)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .envs(extra_env())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(logf)
            .kill_on_drop(true)
            .spawn()
            .context("start edgeplane serve")?;
        let pid = child.id().context("edgeplane has no pid")?;
        let mut ep = Edgeplane {
            child: Guard(child),
            pid,
            xds_port,
            admin_port,
            dir: dir.to_path_buf(),
            log,
        };
        let end = Instant::now() + START;
        loop {
            ep.check_alive()?;
            if http_get(admin_port, "127.0.0.1", "/readyz")
                .await
                .is_some_and(|(s, _)| s == 200)
            {
                return Ok(ep);
            }
            if Instant::now() > end {
                bail!(
                    "edgeplane not ready within {START:?}; log tail:\n{}",
                    log_tail(&ep.log)
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Completed loads, from `/status`.
    pub async fn loads(&self) -> Result<u64> {
        admin_loads(self.admin_port).await
    }

    /// `lastLoad` of `/status`: the work of the most recent load (files
    /// read, resources encoded, `durationMs`), when the server reports it.
    pub async fn last_load(&self) -> Option<serde_json::Value> {
        let v = admin_status(self.admin_port).await.ok()?;
        let l = v.get("lastLoad")?;
        (!l.is_null()).then(|| l.clone())
    }

    /// Makes the directory look like a user's before an edit: the watcher
    /// is armed (a task spawned after the first load; an edit before it
    /// would go unseen), and every manifest is old enough for edgeplane's
    /// file cache to trust (`source::fs::SETTLE_TIME`: a file changed just
    /// before a read is read again next time), as it was at the last load.
    ///
    /// Waits until every manifest is settled, then writes a hidden file
    /// (which the loader skips, but which wakes the watcher) until a reload
    /// is counted; if hidden files do not wake it, rewrites `name`
    /// unchanged instead. Neither publishes anything.
    pub async fn wait_watching(&mut self, name: &str, text: &str) -> Result<()> {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let now = std::time::SystemTime::now();
            let mut settled = true;
            for e in std::fs::read_dir(&self.dir).context("list the config dir")? {
                let e = e.context("list the config dir")?;
                if !e.file_name().to_string_lossy().starts_with('.') {
                    let meta = e.metadata().context("stat a manifest")?;
                    settled &= edgeplane::source::fs::is_settled(&meta, now);
                }
            }
            if settled {
                break;
            }
            if Instant::now() > end {
                bail!("manifests never settled (clock or file system timestamps?)");
            }
            tokio::time::sleep(POLL).await;
        }
        let base = self.loads().await?;
        let mut tries = 0;
        loop {
            tries += 1;
            if tries <= 2 {
                write_atomic(&self.dir, ".bench-wake", tries.to_string().as_bytes())?;
            } else {
                write_atomic(&self.dir, name, text.as_bytes())?;
            }
            let retry = Instant::now() + Duration::from_secs(1);
            while Instant::now() < retry {
                if self.loads().await? > base {
                    return Ok(());
                }
                tokio::time::sleep(POLL).await;
            }
            self.check_alive()?;
            if Instant::now() > end {
                bail!("edgeplane's watcher never reloaded (loads stuck at {base})");
            }
        }
    }
}

impl Server for Edgeplane {
    fn name(&self) -> &'static str {
        "edgeplane"
    }

    fn pid(&self) -> u32 {
        self.pid
    }

    fn xds_port(&self) -> u16 {
        self.xds_port
    }

    fn check_alive(&mut self) -> Result<()> {
        self.child.check_alive("edgeplane", &self.log)
    }
}

// === the peers ===

/// The peers, as the report names them: the baseline the text compares
/// with (`bench/peer-nebucloud`), and the weaker one kept as context
/// (`bench/peer`).
pub const NEBUCLOUD: &str = "nebucloud-xds";
pub const NEBUCLOUD_VERSION: &str = "nebucloud-xds 0.1.0";
pub const RCP: &str = "rust-control-plane";
pub const RCP_VERSION: &str = "rust-control-plane 0.1.2";

/// A peer control plane (`bench/peer`, `bench/peer-nebucloud`: the same
/// contract): `BIN --listen 127.0.0.1:PORT --resources FILE`, `listening`
/// on stdout when ready; `load FILE` on stdin → `loaded <v>`.
pub struct Peer {
    name: &'static str,
    child: Guard,
    pid: u32,
    port: u16,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    log: PathBuf,
}

impl Peer {
    /// Starts `bin`; `name` is the peer's in messages.
    pub async fn start(
        name: &'static str,
        bin: &Path,
        resources: &Path,
        log: PathBuf,
    ) -> Result<Peer> {
        let port = free_port()?;
        let logf =
            std::fs::File::create(&log).with_context(|| format!("create {}", log.display()))?;
        let mut child = Command::new(bin)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--resources")
            .arg(resources)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(logf)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start the peer {name} ({})", bin.display()))?;
        let pid = child.id().with_context(|| format!("{name} has no pid"))?;
        let stdin = child.stdin.take().context("peer stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("peer stdout")?);
        let mut peer = Peer {
            name,
            child: Guard(child),
            pid,
            port,
            stdin,
            stdout,
            log,
        };
        peer.expect_line("listening", START).await?;
        Ok(peer)
    }

    /// Reads stdout lines until one starts with `prefix`; returns it.
    async fn expect_line(&mut self, prefix: &str, within: Duration) -> Result<String> {
        let end = Instant::now() + within;
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout_at(end, self.stdout.read_line(&mut line))
                .await
                .with_context(|| format!("{} printed no `{prefix}` within {within:?}", self.name))?
                .context("read the peer's stdout")?;
            if n == 0 {
                let status = self.child.0.try_wait().ok().flatten();
                bail!(
                    "{} closed stdout before `{prefix}` (exit: {status:?}); log tail:\n{}",
                    self.name,
                    log_tail(&self.log)
                );
            }
            if line.trim_start().starts_with(prefix) {
                return Ok(line.trim().to_string());
            }
        }
    }

    /// Sends `load FILE`; returns when the line is written.
    pub async fn send_load(&mut self, file: &Path) -> Result<()> {
        self.stdin
            .write_all(format!("load {}\n", file.display()).as_bytes())
            .await
            .context("write to the peer's stdin")?;
        self.stdin.flush().await.context("flush the peer's stdin")
    }

    /// Waits for `loaded <version>`; returns the version.
    pub async fn wait_loaded(&mut self) -> Result<String> {
        let line = self.expect_line("loaded", START).await?;
        Ok(line.trim_start_matches("loaded").trim().to_string())
    }
}

impl Server for Peer {
    fn name(&self) -> &'static str {
        self.name
    }

    fn pid(&self) -> u32 {
        self.pid
    }

    fn xds_port(&self) -> u16 {
        self.port
    }

    fn check_alive(&mut self) -> Result<()> {
        self.child.check_alive(self.name, &self.log)
    }
}

// === open files ===

/// (soft, hard) `RLIMIT_NOFILE` of this process, from `/proc/self/limits`.
pub fn nofile_limit() -> Option<(u64, u64)> {
    let t = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = t.lines().find(|l| l.starts_with("Max open files"))?;
    let mut it = line["Max open files".len()..].split_whitespace();
    let parse = |s: Option<&str>| match s? {
        "unlimited" => Some(u64::MAX),
        v => v.parse().ok(),
    };
    Some((parse(it.next())?, parse(it.next())?))
}

/// Makes sure this process (and the servers it starts, which inherit the
/// limit) may open `need` files: raises the soft limit up to the hard one
/// (`setrlimit`) when needed. Returns the soft limit in force.
pub fn ensure_nofile(need: u64) -> u64 {
    let Some((soft, hard)) = nofile_limit() else {
        return 1024;
    };
    if soft >= need || hard <= soft {
        return soft;
    }
    let raised = libc::rlimit {
        rlim_cur: hard as libc::rlim_t,
        rlim_max: hard as libc::rlim_t,
    };
    // SAFETY: setrlimit reads the struct it is given and nothing else.
    let _ = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) };
    nofile_limit().map(|(s, _)| s).unwrap_or(soft)
}
