//! Gateway-level edits drain, and say so.
//!
//! Envoy drains a listener's connections (WebSockets included) when the
//! Listener changes or goes away: it stops giving them new requests and,
//! after its drain time (`--drain-time-s`, default 600 s), closes those
//! still open. When only filter chains changed (an SSL gateway's
//! VirtualService `sslConfig`), Envoy updates the listener in place and
//! drains the connections of the changed chains only.
//!
//! edgeplane does not see Envoy's connections; Envoy tells it. The bootstrap
//! `edgeplane bootstrap` prints streams Envoy's stats to edgeplane every
//! second (`envoy.stat_sinks.metrics_service`, served by `stats_sink` on the
//! xDS port), and `EnvoyStats` keeps, per node, each listener's
//! `listener.<address>_<port>.downstream_cx_active`, and each HTTP
//! connection manager's upgraded connections (WebSockets:
//! `http.<stat_prefix>.downstream_cx_upgrades_active` / `_total`), which
//! Envoy counts per HCM stat prefix, not per listener. When a reload changes
//! or removes a Listener, `listener_changes` says which, per proxy; the
//! daemon (`serve::drains`) then logs, for every connected Envoy of that
//! proxy, how many connections will drain, records a `DrainRecord` in the
//! `DrainLog` (the status API's and `/status`'s drains) and counts it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Mutex;

use envoy_types::pb::envoy::config::core::v3::{address, socket_address};
use envoy_types::pb::envoy::config::listener::v3::Listener;
use prost::Message;
use tokio::sync::watch;

use crate::snapshot::{Encoded, ProxySnapshot, ResourceType};

/// Nodes whose stats are kept at once; a stats stream of one more is
/// refused (`EnvoyStats::stream_opened`). Stats streams are bound to ADS
/// streams (`serve::stats_sink`), so this is a backstop.
pub const MAX_STATS_NODES: usize = 4096;

/// Listener (and HCM) stat prefixes kept per node; later new prefixes of a
/// full node are dropped. A Gateway per port: Envoys have a few.
pub const MAX_PREFIXES_PER_NODE: usize = 512;

/// The longest stat prefix kept (bytes); longer names are dropped.
pub const MAX_PREFIX_BYTES: usize = 256;

/// What the drain log keeps: the most recent drains, newest last.
pub const DRAIN_LOG_LEN: usize = 100;

/// The sentence every drain log line and status entry carries.
pub const DRAIN_TIME_NOTE: &str =
    "Envoy closes connections still open after its drain time (--drain-time-s, default 600 s)";

/// The name Envoy gives a listener's stats scope: `stat_prefix` when set,
/// else the address as Envoy prints it (`127.0.0.1:8080`, `[::]:8080`) with
/// `:` turned into `_` (`listener.127.0.0.1_8080.downstream_cx_active`).
pub fn stat_prefix(listener: &Listener) -> Option<String> {
    if !listener.stat_prefix.is_empty() {
        return Some(listener.stat_prefix.clone());
    }
    let address::Address::SocketAddress(sa) = listener.address.as_ref()?.address.as_ref()? else {
        return None;
    };
    let port = match sa.port_specifier.as_ref()? {
        socket_address::PortSpecifier::PortValue(p) => *p,
        socket_address::PortSpecifier::NamedPort(_) => return None,
    };
    let host = match sa.address.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(ip)) => format!("[{ip}]"),
        Ok(std::net::IpAddr::V4(ip)) => ip.to_string(),
        Err(_) => sa.address.clone(),
    };
    Some(format!("{host}:{port}").replace(':', "_"))
}

/// The `stat_prefix`es of the HTTP connection managers on the listener's
/// filter chains (default chain included), sorted and deduplicated: the
/// scopes Envoy counts its upgrades (WebSockets) under
/// (`http.<prefix>.downstream_cx_upgrades_active`). Empty for a TCP-only
/// listener or one that does not decode.
pub fn encoded_hcm_stat_prefixes(e: &Encoded) -> Vec<String> {
    use envoy_types::pb::envoy::config::listener::v3::filter;
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
    let Ok(l) = Listener::decode(&e.bytes[..]) else {
        return Vec::new();
    };
    let prefixes: BTreeSet<String> = l
        .filter_chains
        .iter()
        .chain(l.default_filter_chain.iter())
        .flat_map(|c| c.filters.iter())
        .filter_map(|f| match f.config_type.as_ref()? {
            filter::ConfigType::TypedConfig(any)
                if any.type_url.ends_with(".HttpConnectionManager") =>
            {
                HttpConnectionManager::decode(&any.value[..]).ok()
            }
            _ => None,
        })
        .map(|h| h.stat_prefix)
        .collect();
    prefixes.into_iter().collect()
}

/// The listener's stat prefix read off its encoded bytes.
pub fn encoded_stat_prefix(e: &Encoded) -> Option<String> {
    Listener::decode(&e.bytes[..])
        .ok()
        .and_then(|l| stat_prefix(&l))
}

/// How a Listener changed between two snapshots of one proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// The Listener changed; `filter_chains` empty: as a whole (every
    /// connection drains), else only these filter chains (by name, or
    /// `#<index>` when unnamed), which Envoy updates in place, draining
    /// their connections only.
    Modified { filter_chains: Vec<String> },
    /// The Listener is gone: every connection drains.
    Removed,
}

impl Change {
    pub fn as_str(&self) -> &'static str {
        match self {
            Change::Modified { .. } => "modified",
            Change::Removed => "removed",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerChange {
    pub listener: String,
    /// Envoy's stats scope of the old listener (see `stat_prefix`).
    pub stat_prefix: Option<String>,
    pub change: Change,
}

/// The listeners of `old` that `new` changes or removes (added ones drain
/// nothing).
pub fn listener_changes(old: &ProxySnapshot, new: Option<&ProxySnapshot>) -> Vec<ListenerChange> {
    let mut out = Vec::new();
    for (name, before) in old.types.get(&ResourceType::Listener).into_iter().flatten() {
        let after = new.and_then(|n| n.get(ResourceType::Listener, name));
        let change = match after {
            Some(a) if a.hash == before.hash => continue,
            Some(a) => Change::Modified {
                filter_chains: changed_filter_chains(before, a),
            },
            None => Change::Removed,
        };
        out.push(ListenerChange {
            listener: name.clone(),
            stat_prefix: encoded_stat_prefix(before),
            change,
        });
    }
    out
}

/// When only filter chains differ, the old chains that have no identical
/// chain in the new Listener; empty when the Listener itself changed (or
/// every chain did, which drains everything just the same).
fn changed_filter_chains(before: &Encoded, after: &Encoded) -> Vec<String> {
    let (Ok(mut b), Ok(mut a)) = (
        Listener::decode(&before.bytes[..]),
        Listener::decode(&after.bytes[..]),
    ) else {
        return Vec::new();
    };
    let b_chains = std::mem::take(&mut b.filter_chains);
    let a_chains = std::mem::take(&mut a.filter_chains);
    let b_default = b.default_filter_chain.take();
    let a_default = a.default_filter_chain.take();
    if a != b {
        return Vec::new();
    }
    let kept: BTreeSet<Vec<u8>> = a_chains.iter().map(|c| c.encode_to_vec()).collect();
    let mut changed: Vec<String> = b_chains
        .iter()
        .enumerate()
        .filter(|(_, c)| !kept.contains(&c.encode_to_vec()))
        .map(|(i, c)| {
            if c.name.is_empty() {
                format!("#{i}")
            } else {
                c.name.clone()
            }
        })
        .collect();
    let default_changed = b_default.is_some() && b_default != a_default;
    if default_changed {
        changed.push("default".to_string());
    }
    let all = changed.len() == b_chains.len() + usize::from(b_default.is_some());
    if all { Vec::new() } else { changed }
}

/// An HTTP connection manager's upgraded connections (WebSockets), as
/// Envoy counts them per HCM `stat_prefix`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Upgrades {
    /// `http.<prefix>.downstream_cx_upgrades_active`: open now.
    pub active: u64,
    /// `http.<prefix>.downstream_cx_upgrades_total`: since Envoy started.
    pub total: u64,
}

/// What one Envoy last reported about its listeners.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Stat prefix (e.g. `127.0.0.1_8080`) → `downstream_cx_active`.
    pub active: BTreeMap<String, u64>,
    /// HCM stat prefix (Gloo's is `http` on every listener) → upgrades.
    pub upgrades: BTreeMap<String, Upgrades>,
    /// When the last stats message arrived.
    pub updated_unix_ms: u64,
    /// Open stats streams of this node id.
    streams: u32,
}

/// The stats connected Envoys stream to edgeplane, per node id.
#[derive(Debug)]
pub struct EnvoyStats {
    nodes: Mutex<BTreeMap<String, NodeStats>>,
    /// Bumped when a node's connection counts change (not on every flush).
    changes: watch::Sender<u64>,
}

impl Default for EnvoyStats {
    fn default() -> Self {
        EnvoyStats {
            nodes: Mutex::default(),
            changes: watch::channel(0).0,
        }
    }
}

impl EnvoyStats {
    /// Sees a new value whenever some node's connection counts change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, NodeStats>> {
        self.nodes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A stats stream of `node_id` opened; `false` (nothing recorded) when
    /// it is a new node and `MAX_STATS_NODES` are already kept.
    pub fn stream_opened(&self, node_id: &str) -> bool {
        let mut nodes = self.lock();
        if !nodes.contains_key(node_id) && nodes.len() >= MAX_STATS_NODES {
            return false;
        }
        nodes.entry(node_id.to_string()).or_default().streams += 1;
        drop(nodes);
        self.changes.send_modify(|n| *n += 1);
        true
    }

    /// A stats stream of `node_id` ended; its counts go when its last does.
    pub fn stream_closed(&self, node_id: &str) {
        let mut nodes = self.lock();
        if let Some(s) = nodes.get_mut(node_id) {
            s.streams = s.streams.saturating_sub(1);
            if s.streams == 0 {
                nodes.remove(node_id);
            }
        }
        drop(nodes);
        self.changes.send_modify(|n| *n += 1);
    }

    /// Merges one flush: stat prefix → active connections. Envoy sends
    /// every gauge it has used on each flush, so merging keeps a batched
    /// flush (`batch_size`) whole.
    /// Only nodes with an open stream are kept; at most
    /// `MAX_PREFIXES_PER_NODE` prefixes of at most `MAX_PREFIX_BYTES`.
    pub fn update(&self, node_id: &str, active: impl IntoIterator<Item = (String, u64)>) {
        let mut nodes = self.lock();
        let Some(s) = nodes.get_mut(node_id) else {
            return;
        };
        s.updated_unix_ms = crate::xds::registry::now_unix_ms();
        let mut changed = false;
        for (prefix, n) in active {
            if !keep_prefix(&s.active, &prefix) {
                continue;
            }
            if s.active.insert(prefix, n) != Some(n) {
                changed = true;
            }
        }
        drop(nodes);
        if changed {
            self.changes.send_modify(|n| *n += 1);
        }
    }

    /// Merges one flush's HCM upgrade stats: HCM stat prefix → upgrades.
    /// Wakes status watchers only when a count changed.
    pub fn update_upgrades(
        &self,
        node_id: &str,
        upgrades: impl IntoIterator<Item = (String, Upgrades)>,
    ) {
        let mut nodes = self.lock();
        let Some(s) = nodes.get_mut(node_id) else {
            return;
        };
        let mut changed = false;
        for (prefix, u) in upgrades {
            if !keep_prefix(&s.upgrades, &prefix) {
                continue;
            }
            if s.upgrades.insert(prefix, u) != Some(u) {
                changed = true;
            }
        }
        drop(nodes);
        if changed {
            self.changes.send_modify(|n| *n += 1);
        }
    }

    /// What `node_id` last reported; `None` when it streams no stats.
    pub fn get(&self, node_id: &str) -> Option<NodeStats> {
        self.lock().get(node_id).cloned()
    }

    /// Active connections of `node_id` on the listener with `stat_prefix`:
    /// `None` when the node sends no stats, 0 when it never used that
    /// listener.
    pub fn active(&self, node_id: &str, stat_prefix: &str) -> Option<u64> {
        let nodes = self.lock();
        let s = nodes.get(node_id)?;
        (s.updated_unix_ms > 0).then(|| s.active.get(stat_prefix).copied().unwrap_or(0))
    }
}

/// Whether `prefix` may go into `map`: known already, or short enough and
/// the map not full.
fn keep_prefix<V>(map: &BTreeMap<String, V>, prefix: &str) -> bool {
    map.contains_key(prefix)
        || (prefix.len() <= MAX_PREFIX_BYTES && map.len() < MAX_PREFIXES_PER_NODE)
}

/// One Envoy's listener drained by a reload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrainRecord {
    pub listener: String,
    pub proxy: String,
    pub node_id: String,
    pub change: Change,
    /// Active connections on the listener as of Envoy's last stats flush;
    /// `None` when that Envoy sends no stats.
    pub active_connections: Option<u64>,
    pub at_unix_ms: u64,
    /// The proxy's LDS version that caused it.
    pub version: String,
}

/// The most recent drains (at most `DRAIN_LOG_LEN`).
#[derive(Debug, Default)]
pub struct DrainLog {
    recent: Mutex<VecDeque<DrainRecord>>,
}

impl DrainLog {
    pub fn push(&self, r: DrainRecord) {
        let mut q = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() == DRAIN_LOG_LEN {
            q.pop_front();
        }
        q.push_back(r);
    }

    /// Oldest first.
    pub fn list(&self) -> Vec<DrainRecord> {
        self.recent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Client-chosen names cannot grow the maps without bound: stats of a
    /// node without an open stream are dropped, prefixes are capped per
    /// node and in length, and nodes are capped.
    #[test]
    fn stats_maps_are_bounded() {
        let s = EnvoyStats::default();
        s.update("nobody", [("127.0.0.1_1".to_string(), 1)]);
        assert!(s.get("nobody").is_none());
        assert!(s.stream_opened("n"));
        let many = (0..MAX_PREFIXES_PER_NODE + 100).map(|i| (format!("p{i}"), 1));
        s.update("n", many);
        s.update("n", [("x".repeat(MAX_PREFIX_BYTES + 1), 1)]);
        let kept = s.get("n").map(|n| n.active.len());
        assert_eq!(kept, Some(MAX_PREFIXES_PER_NODE));
        // A kept prefix still updates when the node is full.
        s.update("n", [("p0".to_string(), 7)]);
        assert_eq!(s.active("n", "p0"), Some(7));
        for i in 1..MAX_STATS_NODES {
            assert!(s.stream_opened(&format!("n{i}")));
        }
        assert!(!s.stream_opened("one-too-many"));
        assert!(s.stream_opened("n"), "a known node may open another stream");
    }
    use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress};
    use envoy_types::pb::envoy::config::listener::v3::FilterChain;
    use std::sync::Arc;

    pub(crate) fn listener(name: &str, addr: &str, port: u32, chains: &[(&str, &str)]) -> Listener {
        Listener {
            name: name.into(),
            address: Some(Address {
                address: Some(address::Address::SocketAddress(SocketAddress {
                    address: addr.into(),
                    port_specifier: Some(socket_address::PortSpecifier::PortValue(port)),
                    ..Default::default()
                })),
            }),
            filter_chains: chains
                .iter()
                .map(|(n, v)| FilterChain {
                    name: n.to_string(),
                    filters: vec![envoy_types::pb::envoy::config::listener::v3::Filter {
                        name: v.to_string(),
                        ..Default::default()
                    }],
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    pub(crate) fn proxy(listeners: &[Listener]) -> ProxySnapshot {
        use envoy_types::pb::google::protobuf::Any;
        let mut p = ProxySnapshot::default();
        let m = p.types.entry(ResourceType::Listener).or_default();
        for l in listeners {
            let bytes = l.encode_to_vec();
            m.insert(
                l.name.clone(),
                Arc::new(Encoded::new(
                    l.name.clone(),
                    format!("{:?}", bytes),
                    Any {
                        type_url: crate::snapshot::LISTENER_TYPE.into(),
                        value: bytes,
                    },
                    Vec::new(),
                )),
            );
        }
        p
    }

    #[test]
    fn stat_prefixes_follow_envoys_naming() {
        let l = listener("l", "127.0.0.1", 8080, &[]);
        assert_eq!(stat_prefix(&l).as_deref(), Some("127.0.0.1_8080"));
        let l = listener("l", "::", 8080, &[]);
        assert_eq!(stat_prefix(&l).as_deref(), Some("[__]_8080"));
        let mut l = listener("l", "::", 8080, &[]);
        l.stat_prefix = "mine".into();
        assert_eq!(stat_prefix(&l).as_deref(), Some("mine"));
    }

    #[test]
    fn changes_name_modified_and_removed_listeners_and_changed_chains() {
        let a = listener("a", "127.0.0.1", 1, &[("", "hcm")]);
        let b = listener("b", "127.0.0.1", 2, &[("x", "1"), ("y", "1")]);
        let c = listener("c", "127.0.0.1", 3, &[]);
        let old = proxy(&[a.clone(), b.clone(), c.clone()]);

        // Unchanged: nothing drains; an added listener drains nothing.
        let d = listener("d", "127.0.0.1", 4, &[]);
        let same = proxy(&[a.clone(), b.clone(), c.clone(), d]);
        assert!(listener_changes(&old, Some(&same)).is_empty());

        let a2 = listener("a", "127.0.0.1", 1, &[("", "hcm2")]);
        let b2 = listener("b", "127.0.0.1", 2, &[("x", "1"), ("y", "2")]);
        let new = proxy(&[a2, b2]);
        let ch = listener_changes(&old, Some(&new));
        assert_eq!(
            ch,
            vec![
                // Its only chain changed: the whole listener drains.
                ListenerChange {
                    listener: "a".into(),
                    stat_prefix: Some("127.0.0.1_1".into()),
                    change: Change::Modified {
                        filter_chains: vec![]
                    },
                },
                ListenerChange {
                    listener: "b".into(),
                    stat_prefix: Some("127.0.0.1_2".into()),
                    change: Change::Modified {
                        filter_chains: vec!["y".into()]
                    },
                },
                ListenerChange {
                    listener: "c".into(),
                    stat_prefix: Some("127.0.0.1_3".into()),
                    change: Change::Removed,
                },
            ]
        );
        // A listener-level change drains it all, whatever the chains do.
        let mut b3 = b.clone();
        b3.per_connection_buffer_limit_bytes =
            Some(envoy_types::pb::google::protobuf::UInt32Value { value: 1024 });
        let ch = listener_changes(&old, Some(&proxy(&[a, b3, c])));
        assert_eq!(
            ch[0].change,
            Change::Modified {
                filter_chains: vec![]
            }
        );
        // A proxy that disappears removes everything.
        assert_eq!(listener_changes(&old, None).len(), 3);
    }

    #[test]
    fn stats_merge_and_go_with_the_last_stream() {
        let s = EnvoyStats::default();
        assert_eq!(s.active("n", "127.0.0.1_1"), None);
        s.stream_opened("n");
        s.update("n", [("127.0.0.1_1".to_string(), 2)]);
        s.update("n", [("127.0.0.1_2".to_string(), 1)]);
        assert_eq!(s.active("n", "127.0.0.1_1"), Some(2));
        assert_eq!(s.active("n", "127.0.0.1_2"), Some(1));
        assert_eq!(s.active("n", "127.0.0.1_9"), Some(0));
        s.stream_closed("n");
        assert_eq!(s.active("n", "127.0.0.1_1"), None);
    }

    #[test]
    fn upgrades_merge_and_wake_watchers_only_on_change() {
        let s = EnvoyStats::default();
        let mut rx = s.subscribe();
        s.stream_opened("n");
        rx.borrow_and_update();
        let u = |active, total| Upgrades { active, total };
        s.update_upgrades("n", [("http".to_string(), u(2, 5))]);
        assert!(rx.has_changed().unwrap_or(false));
        rx.borrow_and_update();
        s.update_upgrades("n", [("http".to_string(), u(2, 5))]);
        assert!(!rx.has_changed().unwrap_or(true));
        s.update_upgrades("n", [("other".to_string(), u(1, 1))]);
        let got = s.get("n").map(|n| n.upgrades).unwrap_or_default();
        assert_eq!(got.get("http"), Some(&u(2, 5)));
        assert_eq!(got.get("other"), Some(&u(1, 1)));
    }

    #[test]
    fn hcm_stat_prefixes_are_read_off_the_filter_chains() {
        use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, filter};
        use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
        use envoy_types::pb::google::protobuf::Any;
        let hcm = |prefix: &str| {
            Filter {
            name: "envoy.filters.network.http_connection_manager".into(),
            config_type: Some(filter::ConfigType::TypedConfig(Any {
                type_url: "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager".into(),
                value: HttpConnectionManager {
                    stat_prefix: prefix.into(),
                    ..Default::default()
                }
                .encode_to_vec(),
            })),
        }
        };
        let mut l = listener("l", "127.0.0.1", 1, &[]);
        l.filter_chains = vec![
            FilterChain {
                filters: vec![hcm("http")],
                ..Default::default()
            },
            FilterChain {
                filters: vec![hcm("http")],
                ..Default::default()
            },
        ];
        l.default_filter_chain = Some(FilterChain {
            filters: vec![hcm("b")],
            ..Default::default()
        });
        let p = proxy(&[
            l,
            listener(
                "tcp",
                "127.0.0.1",
                2,
                &[("", "envoy.filters.network.tcp_proxy")],
            ),
        ]);
        let get = |name: &str| {
            p.get(ResourceType::Listener, name)
                .map(|e| encoded_hcm_stat_prefixes(e))
                .unwrap_or_default()
        };
        assert_eq!(get("l"), ["b", "http"]);
        assert!(get("tcp").is_empty());
    }
}
