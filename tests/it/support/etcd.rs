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
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
    data_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Member {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

pub struct EtcdCluster {
    pub members: Vec<Member>,
    initial_cluster: String,
    _dir: tempfile::TempDir,
}

impl EtcdCluster {
    /// Starts `n` members and waits until the cluster has a leader and
    /// answers a linearizable read.
    pub async fn start(n: usize) -> EtcdCluster {
        let bin = etcd_bin();
        assert!(bin.is_file(), "etcd binary {} missing", bin.display());
        let dir = tempfile::tempdir().expect("etcd temp dir");
        let members: Vec<Member> = (0..n)
            .map(|i| Member {
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
        let m = &mut self.members[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log)
            .expect("etcd log file");
        let client = m.url();
        let peer = format!("http://127.0.0.1:{}", m.peer_port);
        let child = Command::new(etcd_bin())
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
        let opts = ConnectOptions::new()
            .with_timeout(Duration::from_secs(3))
            .with_connect_timeout(Duration::from_secs(1));
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
