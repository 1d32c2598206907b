//! Gateway-level edits drain, and say so: after a publish, each Listener
//! the new snapshot changes or removes (`status::drain::listener_changes`)
//! is logged per connected Envoy of its proxy with how many connections
//! will drain (WARN when some will), recorded in the `DrainLog` the status
//! API shows, and counted in `/metrics`.

use crate::serve::metrics::Metrics;
use crate::snapshot::{ResourceType, Snapshot};
use crate::status::drain::{
    Change, DRAIN_TIME_NOTE, DrainLog, DrainRecord, EnvoyStats, listener_changes,
};
use crate::xds::registry::NodeState;

/// Logs, records and counts the drains `new` causes on the Envoys
/// connected now (`nodes`), given what was served before (`old`). Returns
/// the records.
pub fn report(
    old: &Snapshot,
    new: &Snapshot,
    nodes: &[NodeState],
    stats: &EnvoyStats,
    log: &DrainLog,
    metrics: &Metrics,
) -> Vec<DrainRecord> {
    let mut out = Vec::new();
    let at = crate::xds::registry::now_unix_ms();
    for (proxy, before) in &old.proxies {
        let after = new.proxies.get(proxy).map(|p| p.as_ref());
        let changes = listener_changes(before, after);
        if changes.is_empty() {
            continue;
        }
        let version = after
            .map(|p| p.version(ResourceType::Listener))
            .unwrap_or_default();
        let envoys: Vec<&NodeState> = nodes
            .iter()
            .filter(|n| n.proxy == *proxy && !n.node_id.is_empty())
            .collect();
        for c in &changes {
            if envoys.is_empty() {
                tracing::info!(
                    listener = %c.listener, proxy = %proxy, change = c.change.as_str(),
                    "listener change; no Envoy of this proxy is connected, so none drains"
                );
                continue;
            }
            for n in &envoys {
                let active = c
                    .stat_prefix
                    .as_deref()
                    .and_then(|p| stats.active(&n.node_id, p));
                let record = DrainRecord {
                    listener: c.listener.clone(),
                    proxy: proxy.clone(),
                    node_id: n.node_id.clone(),
                    change: c.change.clone(),
                    active_connections: active,
                    at_unix_ms: at,
                    version: version.clone(),
                };
                log_drain(&record);
                metrics.drain(active);
                log.push(record.clone());
                out.push(record);
            }
        }
    }
    out
}

fn log_drain(r: &DrainRecord) {
    let what = match &r.change {
        Change::Modified { filter_chains } if !filter_chains.is_empty() => format!(
            "listener {} changed its filter chains {} (Envoy updates it in place and drains the connections of those chains only)",
            r.listener,
            filter_chains.join(", ")
        ),
        Change::Modified { .. } => format!(
            "listener {} changed: Envoy drains all its connections",
            r.listener
        ),
        Change::Removed => format!(
            "listener {} removed: Envoy drains all its connections",
            r.listener
        ),
    };
    match r.active_connections {
        Some(0) => tracing::info!(
            listener = %r.listener, node = %r.node_id, proxy = %r.proxy, connections = 0,
            "{what}; node {:?} had no active connection on it", r.node_id
        ),
        Some(n) => tracing::warn!(
            listener = %r.listener, node = %r.node_id, proxy = %r.proxy, connections = n,
            "{what}; {n} active connection(s) on node {:?} will drain; {DRAIN_TIME_NOTE}",
            r.node_id
        ),
        None => tracing::warn!(
            listener = %r.listener, node = %r.node_id, proxy = %r.proxy, connections = "unknown",
            "{what}; how many connections on node {:?} will drain is unknown (it streams no stats to edgeplane: use the stats sink of `edgeplane bootstrap`); {DRAIN_TIME_NOTE}",
            r.node_id
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::status::drain::tests::{listener, proxy};

    #[test]
    fn report_records_one_drain_per_connected_envoy() {
        let old = Snapshot {
            proxies: [(
                "ns~gw".to_string(),
                Arc::new(proxy(&[listener("a", "127.0.0.1", 1, &[("", "1")])])),
            )]
            .into(),
        };
        let new = Snapshot {
            proxies: [(
                "ns~gw".to_string(),
                Arc::new(proxy(&[listener("a", "127.0.0.1", 1, &[("", "2")])])),
            )]
            .into(),
        };
        let nodes = vec![
            NodeState {
                node_id: "with-stats".into(),
                proxy: "ns~gw".into(),
                ..Default::default()
            },
            NodeState {
                node_id: "without".into(),
                proxy: "ns~gw".into(),
                ..Default::default()
            },
            NodeState {
                node_id: "other".into(),
                proxy: "ns~other".into(),
                ..Default::default()
            },
        ];
        let stats = EnvoyStats::default();
        stats.stream_opened("with-stats");
        stats.update("with-stats", [("127.0.0.1_1".to_string(), 3)]);
        let log = DrainLog::default();
        let metrics = Metrics::new();
        let r = report(&old, &new, &nodes, &stats, &log, &metrics);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].node_id, "with-stats");
        assert_eq!(r[0].active_connections, Some(3));
        assert_eq!(r[1].node_id, "without");
        assert_eq!(r[1].active_connections, None);
        assert_eq!(log.list(), r);
        assert!(
            metrics
                .render()
                .contains("edgeplane_listener_drain_connections_total 3")
        );
        // Nothing changed: nothing drains.
        assert!(report(&new, &new, &nodes, &stats, &log, &metrics).is_empty());
    }
}
