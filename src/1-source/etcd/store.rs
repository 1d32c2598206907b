//! Talking to etcd: one connection at a time to one member, moved to the
//! next member on failure (a dead member is skipped, never retried
//! forever), and the paged, linearizable list of the whole prefix at one
//! revision.
//!
//! Why one member at a time rather than the client's balanced channel: the
//! balancer keeps picking a dead endpoint (etcdv3/etcd-client#39), so
//! 18 % of requests failed while one member of three was down (see
//! `shared/reference/etcd.md` §3). A sticky connection that fails over is
//! what Go's clientv3 does too.
//!
//! Reusable by the write path (`apply`, `get`, `export`): `Store::client`
//! hands out a connected client, `list` reads everything at one revision.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, GetOptions};

/// Keys per page of a list.
pub const PAGE: i64 = 1000;
/// The largest response edgeplane decodes (a page of large manifests, or a
/// watch catching up over many writes): etcd-client's default is 4 MiB.
pub const MAX_DECODE_BYTES: usize = 256 * 1024 * 1024;
/// HTTP/2 keep-alive: at least etcd's `--grpc-keepalive-min-time` (5 s),
/// else etcd closes the connection ("too_many_pings").
pub const KEEP_ALIVE: Duration = Duration::from_secs(10);
pub const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Per request (a list page, a status call).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How to reach the cluster.
#[derive(Clone, Debug, Default)]
pub struct EtcdConfig {
    /// `http://host:port` or `https://host:port`, one per member.
    pub endpoints: Vec<String>,
    /// The root of the manifest keys (`--etcd-prefix`).
    pub prefix: String,
    pub tls: Option<TlsFiles>,
    /// User and password (etcd's simple auth).
    pub user: Option<(String, String)>,
}

/// PEM files for TLS to etcd.
#[derive(Clone, Debug, Default)]
pub struct TlsFiles {
    /// The CA that signed the members' certificates.
    pub ca: Option<PathBuf>,
    /// A client certificate and its key (etcd `--client-cert-auth`).
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no etcd endpoints given (--etcd-endpoints)")]
    NoEndpoints,
    #[error("cannot read {what} {}", .path.display())]
    ReadTls {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--etcd-cert and --etcd-key go together")]
    CertWithoutKey,
    #[error("etcd {endpoint}: {source}")]
    Etcd {
        endpoint: String,
        #[source]
        source: etcd_client::Error,
    },
    #[error("etcd {endpoint}: revision {revision} has been compacted")]
    Compacted { endpoint: String, revision: i64 },
}

impl StoreError {
    /// `source` from `endpoint`, read at `revision`: `Compacted` when etcd
    /// no longer has that revision.
    pub fn read_at(endpoint: &str, source: etcd_client::Error, revision: i64) -> StoreError {
        if compacted(&source) {
            StoreError::Compacted {
                endpoint: endpoint.to_string(),
                revision,
            }
        } else {
            StoreError::Etcd {
                endpoint: endpoint.to_string(),
                source,
            }
        }
    }

    /// The list or watch asked for a revision etcd no longer has.
    pub fn is_compacted(&self) -> bool {
        matches!(self, StoreError::Compacted { .. })
    }
}

/// True when etcd says the revision asked for is compacted.
pub fn compacted(e: &etcd_client::Error) -> bool {
    e.to_string()
        .contains("required revision has been compacted")
}

/// One value as listed or watched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// When the key was (last) created: a delete and a put start over.
    pub create_revision: i64,
    pub mod_revision: i64,
    pub value: Vec<u8>,
}

impl Entry {
    /// A key's value and revisions as etcd returned them.
    pub fn of(kv: &etcd_client::KeyValue) -> Entry {
        Entry {
            create_revision: kv.create_revision(),
            mod_revision: kv.mod_revision(),
            value: kv.value().to_vec(),
        }
    }
}

/// Everything under the prefix at one revision.
#[derive(Clone, Debug, Default)]
pub struct Listing {
    pub revision: i64,
    /// By key (byte order, as etcd sorts).
    pub entries: BTreeMap<String, Entry>,
}

/// The cluster's members, one connected at a time.
pub struct Store {
    endpoints: Vec<String>,
    options: ConnectOptions,
    /// The member in use (an index into `endpoints`).
    current: usize,
    client: Option<Client>,
}

impl Store {
    /// Checks the configuration (TLS files are read here); connects
    /// nothing yet.
    pub fn new(cfg: &EtcdConfig) -> Result<Store, StoreError> {
        if cfg.endpoints.is_empty() {
            return Err(StoreError::NoEndpoints);
        }
        let mut options = ConnectOptions::new()
            .with_keep_alive(KEEP_ALIVE, KEEP_ALIVE_TIMEOUT)
            .with_timeout(REQUEST_TIMEOUT)
            .with_connect_timeout(CONNECT_TIMEOUT)
            // A watch on a member without quorum fails (about 4 s later)
            // instead of staying silent.
            .with_require_leader(true);
        if let Some(t) = &cfg.tls {
            options = options.with_tls(tls_options(t)?);
        }
        if let Some((user, password)) = &cfg.user {
            options = options
                .with_user(user.clone(), password.clone())
                .with_auto_token_refresh(true);
        }
        Ok(Store {
            endpoints: cfg.endpoints.clone(),
            options,
            current: 0,
            client: None,
        })
    }

    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// The member in use.
    pub fn endpoint(&self) -> &str {
        self.endpoints.get(self.current).map_or("", String::as_str)
    }

    /// A connected client to the member in use (connecting if needed).
    pub async fn client(&mut self) -> Result<Client, StoreError> {
        if let Some(c) = &self.client {
            return Ok(c.clone());
        }
        let endpoint = self.endpoint().to_string();
        let c = Client::connect([endpoint.as_str()], Some(self.options.clone()))
            .await
            .map_err(|source| StoreError::Etcd {
                endpoint: endpoint.clone(),
                source,
            })?;
        self.client = Some(c.clone());
        Ok(c)
    }

    /// Drops the connection and moves on to the next member: called after
    /// any failure, so no member is retried forever. True when the move
    /// wrapped around (every member was tried once since).
    pub fn fail_over(&mut self) -> bool {
        self.client = None;
        self.current = (self.current + 1) % self.endpoints.len();
        self.current == 0
    }

    /// Everything under `prefix` at one revision: linearizable pages of
    /// `PAGE` keys, every page at the first page's revision. A compaction
    /// racing the list is `StoreError::Compacted` (list again).
    pub async fn list(&mut self, prefix: &str) -> Result<Listing, StoreError> {
        let client = self.client().await?;
        let endpoint = self.endpoint().to_string();
        let err = |source, revision| StoreError::read_at(&endpoint, source, revision);
        let mut kv = client
            .kv_client()
            .max_decoding_message_size(MAX_DECODE_BYTES);
        let start = super::layout::range_start(prefix);
        let end = prefix_end(start.as_bytes());
        let mut listing = Listing::default();
        let mut from = start.clone().into_bytes();
        loop {
            let mut opts = GetOptions::new().with_range(end.clone()).with_limit(PAGE);
            if listing.revision > 0 {
                opts = opts.with_revision(listing.revision);
            }
            let resp = kv
                .get(from.clone(), Some(opts))
                .await
                .map_err(|e| err(e, listing.revision))?;
            if listing.revision == 0 {
                listing.revision = resp.header().map_or(0, |h| h.revision());
            }
            let kvs = resp.kvs();
            for kv in kvs {
                let key = String::from_utf8_lossy(kv.key()).into_owned();
                listing.entries.insert(key, Entry::of(kv));
            }
            match kvs.last() {
                Some(last) if resp.more() => {
                    // The next page starts just after the last key.
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => break,
            }
        }
        Ok(listing)
    }
}

/// The end of the range of keys starting with `start` (etcd's
/// `GetPrefixRangeEnd`).
pub fn prefix_end(start: &[u8]) -> Vec<u8> {
    let mut end = start.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff: every key from `start` on.
    vec![0]
}

fn tls_options(t: &TlsFiles) -> Result<etcd_client::TlsOptions, StoreError> {
    let read = |what: &'static str, path: &PathBuf| {
        std::fs::read(path).map_err(|source| StoreError::ReadTls {
            what,
            path: path.clone(),
            source,
        })
    };
    let mut tls = etcd_client::TlsOptions::new();
    if let Some(ca) = &t.ca {
        tls = tls.ca_certificate(etcd_client::Certificate::from_pem(read("--etcd-ca", ca)?));
    }
    match (&t.cert, &t.key) {
        (Some(cert), Some(key)) => {
            tls = tls.identity(etcd_client::Identity::from_pem(
                read("--etcd-cert", cert)?,
                read("--etcd-key", key)?,
            ));
        }
        (None, None) => {}
        _ => return Err(StoreError::CertWithoutKey),
    }
    Ok(tls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_range_ends_after_every_key_with_the_prefix() {
        assert_eq!(prefix_end(b"edgeplane/"), b"edgeplane0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff"), vec![0]);
    }

    #[test]
    fn a_store_needs_endpoints_and_whole_key_pairs() {
        assert!(matches!(
            Store::new(&EtcdConfig::default()),
            Err(StoreError::NoEndpoints)
        ));
        let cfg = EtcdConfig {
            endpoints: vec!["http://127.0.0.1:1".into()],
            tls: Some(TlsFiles {
                cert: Some("c.pem".into()),
                ..TlsFiles::default()
            }),
            ..EtcdConfig::default()
        };
        assert!(matches!(Store::new(&cfg), Err(StoreError::CertWithoutKey)));
    }

    #[test]
    fn fail_over_walks_every_member() {
        let cfg = EtcdConfig {
            endpoints: vec!["http://a:1".into(), "http://b:1".into()],
            ..EtcdConfig::default()
        };
        let mut s = Store::new(&cfg).expect("valid config");
        assert_eq!(s.endpoint(), "http://a:1");
        assert!(!s.fail_over());
        assert_eq!(s.endpoint(), "http://b:1");
        assert!(s.fail_over());
        assert_eq!(s.endpoint(), "http://a:1");
    }
}
