//! A real etcd cluster on loopback: N members of Debian's `etcd` on free
//! ports, each with its own data directory, for the etcd source's tests.
//! Never mocked; a missing `etcd` binary fails the test (setup installs
//! `etcd-server`). Every member is killed by PID when the cluster drops.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use etcd_client::{Client, ConnectOptions, Txn, TxnOp};

use super::{free_port, poll};

/// The `etcd` binary: `$ETCD_BIN`, else `etcd` on the PATH.
pub fn etcd_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("ETCD_BIN") {
        return PathBuf::from(p);
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("etcd"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("etcd not found (set ETCD_BIN or install Debian's etcd-server: scripts/setup does)")
    })
}

pub struct Member {
    scheme: &'static str,
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
    data_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Member {
    pub fn url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme, self.client_port)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

/// PEM files for etcd's client port: the CA, the members' certificate
/// (for 127.0.0.1), and a client certificate the members require.
#[derive(Clone, Debug)]
pub struct EtcdTls {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

pub struct EtcdCluster {
    pub members: Vec<Member>,
    tls: Option<EtcdTls>,
    /// The credentials the harness's own clients use once auth is on.
    user: Option<(String, String)>,
    initial_cluster: String,
    _dir: tempfile::TempDir,
}

impl EtcdCluster {
    /// Starts `n` members and waits until the cluster has a leader and
    /// answers a linearizable read.
    pub async fn start(n: usize) -> EtcdCluster {
        Self::start_with(n, None).await
    }

    /// As `start`; with `tls`, the client port speaks TLS and requires a
    /// client certificate (`--client-cert-auth`).
    pub async fn start_with(n: usize, tls: Option<EtcdTls>) -> EtcdCluster {
        let scheme = if tls.is_some() { "https" } else { "http" };
        let bin = etcd_bin();
        assert!(bin.is_file(), "etcd binary {} missing", bin.display());
        let dir = tempfile::tempdir().expect("etcd temp dir");
        let members: Vec<Member> = (0..n)
            .map(|i| Member {
                scheme,
                name: format!("m{i}"),
                client_port: free_port(),
                peer_port: free_port(),
                data_dir: dir.path().join(format!("m{i}.data")),
                log: dir.path().join(format!("m{i}.log")),
                child: None,
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let mut c = EtcdCluster {
            members,
            tls,
            user: None,
            initial_cluster,
            _dir: dir,
        };
        for i in 0..n {
            c.spawn(i);
        }
        c.wait_healthy()
            .await
            .unwrap_or_else(|e| panic!("{e:#}\n{}", c.logs()));
        c
    }

    fn spawn(&mut self, i: usize) {
        let initial_cluster = self.initial_cluster.clone();
        let tls = self.tls.clone();
        let m = &mut self.members[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log)
            .expect("etcd log file");
        let client = m.url();
        let peer = format!("http://127.0.0.1:{}", m.peer_port);
        let mut cmd = Command::new(etcd_bin());
        if let Some(t) = &tls {
            cmd.arg("--cert-file")
                .arg(&t.server_cert)
                .arg("--key-file")
                .arg(&t.server_key)
                .arg("--trusted-ca-file")
                .arg(&t.ca)
                .arg("--client-cert-auth");
        }
        let child = cmd
            .args(["--name", &m.name])
            .arg("--data-dir")
            .arg(&m.data_dir)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &initial_cluster])
            .args(["--initial-cluster-token", "edgeplane-test"])
            .args(["--initial-cluster-state", "new"])
            .args(["--logger", "zap", "--log-outputs", "stderr"])
            // Loopback: elections in well under a second.
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start etcd");
        m.child = Some(child);
    }

    /// The client URLs of every member.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(Member::url).collect()
    }

    /// `kill -9` member `i` and wait for it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts member `i` again on its data directory and ports.
    pub fn restart(&mut self, i: usize) {
        assert!(!self.members[i].is_running(), "member {i} still runs");
        self.spawn(i);
    }

    /// A client connected to member `i` only.
    pub async fn client(&self, i: usize) -> Result<Client> {
        let mut opts = ConnectOptions::new()
            .with_timeout(Duration::from_secs(3))
            .with_connect_timeout(Duration::from_secs(1));
        if let Some(t) = &self.tls {
            let read =
                |p: &PathBuf| std::fs::read(p).with_context(|| format!("read {}", p.display()));
            opts = opts.with_tls(
                etcd_client::TlsOptions::new()
                    .ca_certificate(etcd_client::Certificate::from_pem(read(&t.ca)?))
                    .identity(etcd_client::Identity::from_pem(
                        read(&t.client_cert)?,
                        read(&t.client_key)?,
                    )),
            );
        }
        if let Some((user, password)) = &self.user {
            opts = opts.with_user(user.clone(), password.clone());
        }
        Client::connect([self.members[i].url()], Some(opts))
            .await
            .with_context(|| format!("connect to etcd member {i}"))
    }

    /// Waits until every running member answers and a linearizable read
    /// succeeds (the cluster has a leader).
    pub async fn wait_healthy(&self) -> Result<()> {
        poll(
            "etcd members healthy",
            Duration::from_secs(30),
            Duration::from_millis(100),
            || async {
                for (i, m) in self.members.iter().enumerate() {
                    if !m.is_running() {
                        continue;
                    }
                    let mut c = self.client(i).await.ok()?;
                    c.status().await.ok()?;
                    c.get("health-probe", None).await.ok()?;
                }
                Some(())
            },
        )
        .await
    }

    /// The index of the leader (a member whose own id is the leader id
    /// it reports).
    pub async fn leader(&self) -> Result<usize> {
        for (i, m) in self.members.iter().enumerate() {
            if !m.is_running() {
                continue;
            }
            let Ok(mut c) = self.client(i).await else {
                continue;
            };
            if let Ok(st) = c.status().await
                && st.header().map(|h| h.member_id()) == Some(st.leader())
            {
                return Ok(i);
            }
        }
        bail!("no etcd leader found")
    }

    /// Runs `ops` as one transaction through any running member (the next
    /// one when a member refuses or fails), within 20 s. Returns the
    /// revision it committed at.
    pub async fn txn(&self, ops: Vec<TxnOp>) -> Result<i64> {
        let mut last = None;
        let end = tokio::time::Instant::now() + Duration::from_secs(20);
        while tokio::time::Instant::now() < end {
            for (i, m) in self.members.iter().enumerate() {
                if !m.is_running() {
                    continue;
                }
                let res = async {
                    let mut c = self.client(i).await?;
                    let r = c.txn(Txn::new().and_then(ops.clone())).await?;
                    anyhow::Ok(r.header().map_or(0, |h| h.revision()))
                }
                .await;
                match res {
                    Ok(rev) => return Ok(rev),
                    Err(e) => last = Some(e),
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no member running")))
    }

    /// Turns etcd's authentication on with user `root` (role `root`) and
    /// `password`; the harness's clients log in as root from then on.
    pub async fn enable_auth(&mut self, password: &str) -> Result<()> {
        let mut c = self.client(0).await?;
        c.user_add("root", password, None)
            .await
            .context("user add")?;
        c.user_grant_role("root", "root")
            .await
            .context("grant root")?;
        c.auth_enable().await.context("auth enable")?;
        self.user = Some(("root".into(), password.into()));
        Ok(())
    }

    /// Puts `key` = `value` (see `txn`).
    pub async fn put(&self, key: &str, value: &str) -> Result<i64> {
        self.txn(vec![TxnOp::put(key, value, None)]).await
    }

    pub async fn delete(&self, key: &str) -> Result<i64> {
        self.txn(vec![TxnOp::delete(key, None)]).await
    }

    /// Compacts the history up to `revision` through any running member.
    pub async fn compact(&self, revision: i64) -> Result<()> {
        for (i, m) in self.members.iter().enumerate() {
            if !m.is_running() {
                continue;
            }
            if let Ok(mut c) = self.client(i).await
                && c.compact(revision, None).await.is_ok()
            {
                return Ok(());
            }
        }
        bail!("compaction to {revision} failed on every member")
    }

    /// Runs `edgeplane <args> --etcd-endpoints <every member>` (bounded:
    /// 90 s), returning its exit status and output.
    pub async fn edgeplane(&self, args: &[&str]) -> Result<std::process::Output> {
        let run = tokio::process::Command::new(super::edgeplane_bin())
            .args(args)
            .args(["--etcd-endpoints", &self.endpoints().join(",")])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        tokio::time::timeout(Duration::from_secs(90), run)
            .await
            .with_context(|| format!("edgeplane {args:?} did not finish within 90 s"))?
            .with_context(|| format!("run edgeplane {args:?}"))
    }

    /// `edgeplane apply -f <path>`; an error (with its output) unless it
    /// exits 0.
    pub async fn apply(&self, path: &std::path::Path) -> Result<String> {
        let p = path.display().to_string();
        let o = self.edgeplane(&["apply", "-f", &p]).await?;
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        if !o.status.success() {
            bail!(
                "edgeplane apply -f {p}: exit {:?}\n{stderr}",
                o.status.code()
            );
        }
        Ok(stderr)
    }

    /// Every member's log, as context for a failure.
    pub fn logs(&self) -> String {
        self.members
            .iter()
            .map(|m| {
                let text = std::fs::read_to_string(&m.log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(20).collect();
                format!(
                    "--- etcd {} ---\n{}",
                    m.name,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}
