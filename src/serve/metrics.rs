//! Prometheus metrics, served on the admin port as `/metrics` (Prometheus
//! text format 0.0.4).
//!
//! One `Metrics` per `serve`, shared (`Arc`) by the reload loop, the xDS
//! streams (as the registry's `xds::registry::StreamObserver`), the stats sink and
//! the admin server. Every metric is a lock-free atomic or a small family
//! map; recording costs nothing next to the work it counts.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `edgeplane_build_info` | gauge (1) | `version` |
//! | `edgeplane_reloads_total` | counter | `result`: `published`, `unchanged`, `rejected`, `panicked` |
//! | `edgeplane_snapshots_published_total` | counter | — |
//! | `edgeplane_diagnostics` | gauge | `severity`: `error`, `warning` (the last load's) |
//! | `edgeplane_snapshot_build_seconds` | histogram | — |
//! | `edgeplane_resources` | gauge | `proxy`, `type` (served now) |
//! | `edgeplane_xds_streams` | gauge | `mode`: `sotw`, `delta` |
//! | `edgeplane_xds_pushes_total` | counter | `type`, `mode` |
//! | `edgeplane_xds_acks_total` | counter | `type`, `mode` |
//! | `edgeplane_xds_nacks_total` | counter | `type`, `mode` |
//! | `edgeplane_xds_stale_nonces_total` | counter | `type`, `mode` |
//! | `edgeplane_stats_sink_streams` | gauge | — |
//! | `edgeplane_source_connected` | gauge (0/1) | — (a directory: always 1) |
//! | `edgeplane_source_revision` | gauge | — (etcd's revision of what was last read; 0 for a directory) |
//! | `edgeplane_source_lists_total` | counter | — (etcd: whole-prefix lists; one, plus one per compaction) |
//! | `edgeplane_source_watches_total` | counter | — (etcd: watches opened; one per list plus one per resume) |
//! | `edgeplane_source_events_total` | counter | — (etcd: watch events applied; with one list, every put and delete once) |
//! | `edgeplane_listener_drains_total` | counter | — |
//! | `edgeplane_listener_drain_connections_total` | counter | — |
//! | `edgeplane_envoy_websockets_active` | gauge | `node`, `listener` |
//! | `edgeplane_envoy_websockets_total` | counter | `node`, `listener` |
//!
//! The WebSocket series are Envoy's HCM upgrade stats
//! (`http.<stat_prefix>.downstream_cx_upgrades_active` / `_total`, streamed
//! to the stats sink) per connected node and listener of its proxy, taken
//! from the status report at each scrape (`set_websockets`): a node that
//! disconnects or a listener that goes loses its series, so their number
//! stays that of the nodes streaming stats (at most `MAX_WEBSOCKET_NODES`)
//! times their proxy's listeners.
//! Envoy counts upgrades per HCM stat prefix; listeners sharing one (Gloo's
//! `http`) carry the same value, and a series with `listener=""` carries
//! the node's count (each prefix once) for sums.

use std::collections::BTreeSet;
use std::sync::Mutex;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::snapshot::{PUSH_ORDER, ResourceType, Snapshot};
use crate::xds::XdsMode;
use crate::xds::registry::StreamObserver;

/// The `Content-Type` of `/metrics`.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The outcome of one load of the manifests directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReloadResult {
    /// Valid, and a new snapshot went out.
    Published,
    /// Valid, and equal to the served snapshot: nothing was pushed.
    Unchanged,
    /// Some resource or file was rejected (the valid rest may still have
    /// been published: `edgeplane_snapshots_published_total`).
    Rejected,
    /// The load panicked; the last good config and versions were kept.
    Panicked,
}

impl ReloadResult {
    fn label(self) -> &'static str {
        match self {
            ReloadResult::Published => "published",
            ReloadResult::Unchanged => "unchanged",
            ReloadResult::Rejected => "rejected",
            ReloadResult::Panicked => "panicked",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SeverityLabel {
    severity: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModeLabel {
    mode: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeModeLabel {
    r#type: &'static str,
    mode: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProxyTypeLabel {
    proxy: String,
    r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeListenerLabel {
    node: String,
    listener: String,
}

/// The most nodes the WebSocket series name: node ids are the clients'
/// to choose, so a fleet (or a misbehaving client) cannot grow `/metrics`
/// without bound; `/status` still lists every node.
pub const MAX_WEBSOCKET_NODES: usize = 256;

/// One node's (or one of its listeners') WebSockets, as the status report
/// has them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebsocketSeries {
    pub node: String,
    /// Empty: the node's count.
    pub listener: String,
    pub active: u64,
    pub total: u64,
}

/// Renders the WebSocket series set at the last scrape; a collector, so the
/// set is replaced whole and gone nodes and listeners leave no stale series.
#[derive(Debug, Default)]
struct WebsocketCollector {
    series: std::sync::Arc<Mutex<Vec<WebsocketSeries>>>,
}

impl Collector for WebsocketCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let series = self
            .series
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let label = |s: &WebsocketSeries| NodeListenerLabel {
            node: s.node.clone(),
            listener: s.listener.clone(),
        };
        let mut family = encoder.encode_descriptor(
            "envoy_websockets_active",
            "Upgraded connections (WebSockets) open now on a connected Envoy, per listener (Envoy's http.<stat_prefix>.downstream_cx_upgrades_active; listeners sharing an HCM stat prefix show the same count; listener=\"\": the node's)",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for s in &series {
            let v = i64::try_from(s.active).unwrap_or(i64::MAX);
            ConstGauge::new(v).encode(family.encode_family(&label(s))?)?;
        }
        let mut family = encoder.encode_descriptor(
            "envoy_websockets",
            "Upgraded connections (WebSockets) since the Envoy started, per listener (Envoy's http.<stat_prefix>.downstream_cx_upgrades_total; listeners sharing an HCM stat prefix show the same count; listener=\"\": the node's)",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for s in &series {
            ConstCounter::new(s.total).encode(family.encode_family(&label(s))?)?;
        }
        Ok(())
    }
}

/// Every metric edgeplane exports.
pub struct Metrics {
    registry: Registry,
    reloads: Family<ResultLabel, Counter>,
    published: Counter,
    diagnostics: Family<SeverityLabel, Gauge>,
    build_seconds: Histogram,
    resources: Family<ProxyTypeLabel, Gauge>,
    /// The proxies `resources` has series for, so a proxy that disappears
    /// loses its series.
    resource_proxies: Mutex<BTreeSet<String>>,
    streams: Family<ModeLabel, Gauge>,
    pushes: Family<TypeModeLabel, Counter>,
    acks: Family<TypeModeLabel, Counter>,
    nacks: Family<TypeModeLabel, Counter>,
    /// ACKs/NACKs for nonces a stream never sent or already had answered.
    stale_nonces: Family<TypeModeLabel, Counter>,
    sink_streams: Gauge,
    source_connected: Gauge,
    source_revision: Gauge,
    source_lists: Counter,
    source_watches: Counter,
    source_events: Counter,
    drains: Counter,
    drain_connections: Counter,
    websockets: std::sync::Arc<Mutex<Vec<WebsocketSeries>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("edgeplane");
        let build_info = Family::<VersionLabel, Gauge>::default();
        build_info
            .get_or_create(&VersionLabel {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register("build_info", "edgeplane's version; always 1", build_info);
        let m = Metrics {
            reloads: Family::default(),
            published: Counter::default(),
            diagnostics: Family::default(),
            // 1 ms .. ~33 s.
            build_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            resources: Family::default(),
            resource_proxies: Mutex::default(),
            streams: Family::default(),
            pushes: Family::default(),
            acks: Family::default(),
            nacks: Family::default(),
            stale_nonces: Family::default(),
            sink_streams: Gauge::default(),
            source_connected: Gauge::default(),
            source_revision: Gauge::default(),
            source_lists: Counter::default(),
            source_watches: Counter::default(),
            source_events: Counter::default(),
            drains: Counter::default(),
            drain_connections: Counter::default(),
            websockets: std::sync::Arc::default(),
            registry: Registry::default(),
        };
        // Series that exist from the start, so rates and alerts see zeros
        // rather than absent series.
        for r in [
            ReloadResult::Published,
            ReloadResult::Unchanged,
            ReloadResult::Rejected,
            ReloadResult::Panicked,
        ] {
            drop(m.reloads.get_or_create(&ResultLabel { result: r.label() }));
        }
        for severity in ["error", "warning"] {
            drop(m.diagnostics.get_or_create(&SeverityLabel { severity }));
        }
        for mode in [XdsMode::Sotw, XdsMode::Delta] {
            drop(m.streams.get_or_create(&ModeLabel {
                mode: mode.as_str(),
            }));
            for t in PUSH_ORDER {
                for f in [&m.pushes, &m.acks, &m.nacks, &m.stale_nonces] {
                    drop(f.get_or_create(&type_mode(t, mode)));
                }
            }
        }
        registry.register(
            "reloads",
            "Loads of the manifests directory by result: published (a new snapshot went out), unchanged (valid, nothing to push), rejected (some resource or file was rejected)",
            m.reloads.clone(),
        );
        registry.register(
            "snapshots_published",
            "Snapshots published to the xDS streams",
            m.published.clone(),
        );
        registry.register(
            "diagnostics",
            "Problems found by the most recent load, by severity",
            m.diagnostics.clone(),
        );
        registry.register_with_unit(
            "snapshot_build",
            "Time to parse, validate, translate and encode one load (the reconcile)",
            Unit::Seconds,
            m.build_seconds.clone(),
        );
        registry.register(
            "resources",
            "Envoy resources served now, per proxy and type (CDS, LDS, RDS)",
            m.resources.clone(),
        );
        registry.register(
            "xds_streams",
            "Open ADS streams by mode (sotw: state of the world, delta: incremental)",
            m.streams.clone(),
        );
        registry.register(
            "xds_pushes",
            "ADS responses sent, by type and mode",
            m.pushes.clone(),
        );
        registry.register(
            "xds_acks",
            "ADS responses Envoy accepted (ACK), by type and mode",
            m.acks.clone(),
        );
        registry.register(
            "xds_nacks",
            "ADS responses Envoy rejected (NACK), by type and mode",
            m.nacks.clone(),
        );
        registry.register(
            "xds_stale_nonces",
            "ADS ACKs/NACKs ignored because their nonce was not the latest unanswered response of the type on that stream (never sent, superseded or already answered), by type and mode",
            m.stale_nonces.clone(),
        );
        registry.register(
            "stats_sink_streams",
            "Envoys streaming their stats to edgeplane (envoy.stat_sinks.metrics_service)",
            m.sink_streams.clone(),
        );
        registry.register(
            "source_connected",
            "1 while the manifest source is reachable (etcd: a watch is open; a directory: always)",
            m.source_connected.clone(),
        );
        registry.register(
            "source_revision",
            "The etcd revision the manifests were last read at (0 for a directory)",
            m.source_revision.clone(),
        );
        registry.register(
            "source_lists",
            "Whole-prefix lists of the etcd source (one at start, one more after each compaction past its revision)",
            m.source_lists.clone(),
        );
        registry.register(
            "source_watches",
            "Watches the etcd source opened (one after each list, one more per resume from the last revision seen)",
            m.source_watches.clone(),
        );
        registry.register(
            "source_events",
            "Watch events (puts and deletes under the prefix) the etcd source applied",
            m.source_events.clone(),
        );
        registry.register(
            "listener_drains",
            "Listener changes or removals that drain an Envoy's connections, per connected Envoy",
            m.drains.clone(),
        );
        registry.register(
            "listener_drain_connections",
            "Active connections reported (by Envoy's stats) on listeners at the moment a change drained them",
            m.drain_connections.clone(),
        );
        registry.register_collector(Box::new(WebsocketCollector {
            series: m.websockets.clone(),
        }));
        Metrics { registry, ..m }
    }

    /// Replaces the WebSocket series with the status report's nodes (the
    /// admin server calls this before each render of `/metrics`).
    pub fn set_websockets(&self, nodes: &[crate::status::api::ConnectedNode]) {
        let mut series = Vec::new();
        for n in nodes
            .iter()
            .filter(|n| n.stats_reported)
            .take(MAX_WEBSOCKET_NODES)
        {
            series.push(WebsocketSeries {
                node: n.node_id.clone(),
                listener: String::new(),
                active: n.upgrades_active,
                total: n.upgrades_total,
            });
            series.extend(n.listeners.iter().map(|l| WebsocketSeries {
                node: n.node_id.clone(),
                listener: l.listener.clone(),
                active: l.upgrades_active,
                total: l.upgrades_total,
            }));
        }
        *self.websockets.lock().unwrap_or_else(|e| e.into_inner()) = series;
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            tracing::error!(error = %e, "cannot render metrics");
        }
        out
    }

    /// Records a load that panicked (nothing else about it is known).
    pub fn record_panic(&self) {
        self.reloads
            .get_or_create(&ResultLabel {
                result: ReloadResult::Panicked.label(),
            })
            .inc();
    }

    /// Records one load: its result, its diagnostics, its build time.
    pub fn record_load(
        &self,
        result: ReloadResult,
        errors: usize,
        warnings: usize,
        build: std::time::Duration,
    ) {
        self.reloads
            .get_or_create(&ResultLabel {
                result: result.label(),
            })
            .inc();
        self.diagnostics
            .get_or_create(&SeverityLabel { severity: "error" })
            .set(errors as i64);
        self.diagnostics
            .get_or_create(&SeverityLabel {
                severity: "warning",
            })
            .set(warnings as i64);
        self.build_seconds.observe(build.as_secs_f64());
    }

    /// Records a published snapshot: counts and the resources it serves.
    pub fn record_publish(&self, snapshot: &Snapshot) {
        self.published.inc();
        let mut known = self
            .resource_proxies
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for gone in known.iter().filter(|p| !snapshot.proxies.contains_key(*p)) {
            for t in PUSH_ORDER {
                self.resources.remove(&ProxyTypeLabel {
                    proxy: gone.clone(),
                    r#type: t.short(),
                });
            }
        }
        known.clear();
        for (key, p) in &snapshot.proxies {
            for t in PUSH_ORDER {
                self.resources
                    .get_or_create(&ProxyTypeLabel {
                        proxy: key.clone(),
                        r#type: t.short(),
                    })
                    .set(p.resources(t).count() as i64);
            }
            known.insert(key.clone());
        }
    }

    /// The manifest source's reachability and revision.
    pub fn set_source(&self, connected: bool, revision: i64) {
        self.source_connected.set(i64::from(connected));
        self.source_revision.set(revision);
    }

    /// The etcd source's running totals (lists, watches, events): each
    /// counter moves up to the total reported.
    pub fn set_source_totals(&self, lists: u64, watches: u64, events: u64) {
        for (c, total) in [
            (&self.source_lists, lists),
            (&self.source_watches, watches),
            (&self.source_events, events),
        ] {
            let now = c.get();
            if total > now {
                c.inc_by(total - now);
            }
        }
    }

    pub fn sink_stream_opened(&self) {
        self.sink_streams.inc();
    }

    pub fn sink_stream_closed(&self) {
        self.sink_streams.dec();
    }

    /// One Envoy's listener drained, with the connections it had (when
    /// known).
    pub fn drain(&self, connections: Option<u64>) {
        self.drains.inc();
        if let Some(n) = connections {
            self.drain_connections.inc_by(n);
        }
    }
}

fn type_mode(t: ResourceType, mode: XdsMode) -> TypeModeLabel {
    TypeModeLabel {
        r#type: t.short(),
        mode: mode.as_str(),
    }
}

/// The ADS streams' events, counted (`xds::registry` calls these).
impl StreamObserver for Metrics {
    fn stream_opened(&self, mode: XdsMode) {
        self.streams
            .get_or_create(&ModeLabel {
                mode: mode.as_str(),
            })
            .inc();
    }

    fn stream_closed(&self, mode: XdsMode) {
        self.streams
            .get_or_create(&ModeLabel {
                mode: mode.as_str(),
            })
            .dec();
    }

    fn pushed(&self, t: ResourceType, mode: XdsMode) {
        self.pushes.get_or_create(&type_mode(t, mode)).inc();
    }

    fn acked(&self, t: ResourceType, mode: XdsMode) {
        self.acks.get_or_create(&type_mode(t, mode)).inc();
    }

    fn nacked(&self, t: ResourceType, mode: XdsMode) {
        self.nacks.get_or_create(&type_mode(t, mode)).inc();
    }

    fn stale_nonce(&self, t: ResourceType, mode: XdsMode) {
        self.stale_nonces.get_or_create(&type_mode(t, mode)).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample `series` (name with labels, exactly as
    /// rendered).
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    }

    #[test]
    fn names_follow_prometheus_conventions_and_series_start_at_zero() {
        let m = Metrics::new();
        let text = m.render();
        assert_eq!(
            sample(&text, "edgeplane_build_info{version=\"0.1.0\"}"),
            Some(1.0),
            "{text}"
        );
        for r in ["published", "unchanged", "rejected"] {
            let s = format!("edgeplane_reloads_total{{result=\"{r}\"}}");
            assert_eq!(sample(&text, &s), Some(0.0), "{s}\n{text}");
        }
        assert_eq!(
            sample(&text, "edgeplane_xds_streams{mode=\"delta\"}"),
            Some(0.0)
        );
        assert!(text.contains("# TYPE edgeplane_snapshot_build_seconds histogram"));
        assert!(text.contains("# TYPE edgeplane_xds_pushes_total counter"));
    }

    #[test]
    fn source_totals_follow_the_reported_totals_and_never_go_down() {
        let m = Metrics::new();
        m.set_source_totals(1, 1, 3);
        m.set_source_totals(1, 2, 7);
        // A stale report (lower totals) moves nothing.
        m.set_source_totals(1, 1, 5);
        let text = m.render();
        assert_eq!(sample(&text, "edgeplane_source_lists_total"), Some(1.0));
        assert_eq!(sample(&text, "edgeplane_source_watches_total"), Some(2.0));
        assert_eq!(sample(&text, "edgeplane_source_events_total"), Some(7.0));
    }

    #[test]
    fn records_loads_streams_and_protocol_events() {
        let m = Metrics::new();
        m.record_load(
            ReloadResult::Rejected,
            2,
            1,
            std::time::Duration::from_millis(3),
        );
        m.stream_opened(XdsMode::Sotw);
        m.stream_opened(XdsMode::Sotw);
        m.stream_closed(XdsMode::Sotw);
        m.pushed(ResourceType::Listener, XdsMode::Sotw);
        m.acked(ResourceType::Listener, XdsMode::Sotw);
        m.nacked(ResourceType::Route, XdsMode::Delta);
        m.drain(Some(3));
        let text = m.render();
        let v = |s: &str| sample(&text, s);
        assert_eq!(v("edgeplane_reloads_total{result=\"rejected\"}"), Some(1.0));
        assert_eq!(v("edgeplane_diagnostics{severity=\"error\"}"), Some(2.0));
        assert_eq!(v("edgeplane_diagnostics{severity=\"warning\"}"), Some(1.0));
        assert_eq!(v("edgeplane_snapshot_build_seconds_count"), Some(1.0));
        assert_eq!(v("edgeplane_xds_streams{mode=\"sotw\"}"), Some(1.0));
        assert_eq!(
            v("edgeplane_xds_pushes_total{type=\"LDS\",mode=\"sotw\"}"),
            Some(1.0)
        );
        assert_eq!(
            v("edgeplane_xds_acks_total{type=\"LDS\",mode=\"sotw\"}"),
            Some(1.0)
        );
        assert_eq!(
            v("edgeplane_xds_nacks_total{type=\"RDS\",mode=\"delta\"}"),
            Some(1.0)
        );
        assert_eq!(v("edgeplane_listener_drains_total"), Some(1.0));
        assert_eq!(v("edgeplane_listener_drain_connections_total"), Some(3.0));
    }

    #[test]
    fn websockets_follow_the_nodes_of_the_last_report() {
        use crate::status::api::{ConnectedNode, ListenerConnections};
        let m = Metrics::new();
        let node = |id: &str, active: u64| ConnectedNode {
            node_id: id.into(),
            stats_reported: true,
            upgrades_active: active,
            upgrades_total: active + 3,
            listeners: vec![ListenerConnections {
                listener: "listener-127.0.0.1-8080".into(),
                upgrades_active: active,
                upgrades_total: active + 3,
                ..Default::default()
            }],
            ..Default::default()
        };
        let silent = ConnectedNode {
            node_id: "silent".into(),
            ..Default::default()
        };
        m.set_websockets(&[node("n1", 2), silent]);
        let text = m.render();
        assert!(
            text.contains("# TYPE edgeplane_envoy_websockets_active gauge"),
            "{text}"
        );
        assert!(text.contains("# HELP edgeplane_envoy_websockets_active "));
        assert!(
            text.contains("# TYPE edgeplane_envoy_websockets_total counter"),
            "{text}"
        );
        let l = "node=\"n1\",listener=\"listener-127.0.0.1-8080\"";
        assert_eq!(
            sample(&text, &format!("edgeplane_envoy_websockets_active{{{l}}}")),
            Some(2.0),
            "{text}"
        );
        assert_eq!(
            sample(&text, &format!("edgeplane_envoy_websockets_total{{{l}}}")),
            Some(5.0)
        );
        assert_eq!(
            sample(
                &text,
                "edgeplane_envoy_websockets_active{node=\"n1\",listener=\"\"}"
            ),
            Some(2.0)
        );
        assert!(!text.contains("silent"), "{text}");
        // A node that goes loses its series.
        m.set_websockets(&[node("n2", 1)]);
        let text = m.render();
        assert!(!text.contains("node=\"n1\""), "{text}");
        assert!(text.contains("node=\"n2\""), "{text}");
        // At most MAX_WEBSOCKET_NODES nodes get series.
        let many: Vec<_> = (0..MAX_WEBSOCKET_NODES + 10)
            .map(|i| node(&format!("m{i}"), 0))
            .collect();
        m.set_websockets(&many);
        let text = m.render();
        let nodes = text
            .lines()
            .filter(|l| {
                l.starts_with("edgeplane_envoy_websockets_active{") && l.contains("listener=\"\"")
            })
            .count();
        assert_eq!(nodes, MAX_WEBSOCKET_NODES);
    }

    #[test]
    fn resources_follow_the_published_snapshot() {
        use std::sync::Arc;
        let m = Metrics::new();
        let mut snap = Snapshot::default();
        snap.proxies
            .insert("ns~a".into(), Arc::new(Default::default()));
        m.record_publish(&snap);
        let text = m.render();
        assert_eq!(
            sample(&text, "edgeplane_resources{proxy=\"ns~a\",type=\"LDS\"}"),
            Some(0.0),
            "{text}"
        );
        let mut next = Snapshot::default();
        next.proxies
            .insert("ns~b".into(), Arc::new(Default::default()));
        m.record_publish(&next);
        let text = m.render();
        assert!(!text.contains("proxy=\"ns~a\""), "{text}");
        assert!(text.contains("proxy=\"ns~b\""), "{text}");
        assert_eq!(
            sample(&text, "edgeplane_snapshots_published_total"),
            Some(2.0)
        );
    }
}
