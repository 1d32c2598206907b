//! Envoy's stats, streamed to edgeplane: `envoy.service.metrics.v3.
//! MetricsService/StreamMetrics` on the xDS port.
//!
//! The bootstrap `edgeplane bootstrap` prints configures Envoy's
//! `envoy.stat_sinks.metrics_service` sink on `xds_cluster`, flushing every
//! second. Each flush carries every stat Envoy has used; edgeplane keeps only
//! the listeners' `downstream_cx_active` gauges (`drain::EnvoyStats`), so it
//! can say how many connections a listener change drains, and the HTTP
//! connection managers' `downstream_cx_upgrades_active` gauge and
//! `downstream_cx_upgrades_total` counter, so it can show the live
//! WebSockets (upgraded connections) a drain would close.
//!
//! Who may report: a stats stream's node id must be connected over ADS
//! right now from the same peer IP address (`bound_node`), waiting up to
//! `BIND_WAIT` for Envoy's ADS stream to say who it is; under mTLS the
//! stream's certificate must also be allowed the role that node's ADS
//! stream was matched to (`xds::authz`). Anything else ends the stream with
//! `PERMISSION_DENIED` and one WARN naming the peer. Flushes are capped at
//! `--max-request-bytes`, and `drain::EnvoyStats` caps what it keeps.
//!
//! Requests are decoded with slim messages of our own, wire-compatible with
//! Envoy's `StreamMetricsMessage` and Prometheus' `MetricFamily` but with
//! only the fields read here: prost skips the rest (labels, counters,
//! histograms, help texts) without allocating.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::watch;
use tonic::codegen::{Body, BoxFuture, StdError, http};
use tonic::{Request, Response, Status, Streaming};
use tonic_prost::ProstCodec;

use crate::serve::metrics::Metrics;
use crate::status::drain::{EnvoyStats, Upgrades};
use crate::xds::authz::{Access, Identity, Policy};
use crate::xds::registry::Registry;

/// How long a stats stream waits for its node to connect over ADS (Envoy
/// opens both at start, in no set order) before it is refused.
pub const BIND_WAIT: Duration = Duration::from_secs(5);

/// The method Envoy's metrics service sink calls.
pub const STREAM_METRICS_PATH: &str = "/envoy.service.metrics.v3.MetricsService/StreamMetrics";

/// `envoy.service.metrics.v3.StreamMetricsMessage`, the fields read.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StatsMessage {
    /// Sent on the first message of a stream only.
    #[prost(message, optional, tag = "1")]
    pub identifier: Option<Identifier>,
    #[prost(message, repeated, tag = "2")]
    pub envoy_metrics: Vec<MetricFamily>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Identifier {
    #[prost(message, optional, tag = "1")]
    pub node: Option<NodeId>,
}

/// `envoy.config.core.v3.Node`, its `id` only.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeId {
    #[prost(string, tag = "1")]
    pub id: String,
}

/// `io.prometheus.client.MetricFamily`: name and metrics.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricFamily {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, repeated, tag = "4")]
    pub metric: Vec<Metric>,
}

/// `io.prometheus.client.Metric`: its gauge and counter only.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Metric {
    #[prost(message, optional, tag = "2")]
    pub gauge: Option<Gauge>,
    #[prost(message, optional, tag = "3")]
    pub counter: Option<Counter>,
}

/// `io.prometheus.client.Counter`: its value (cumulative: the bootstrap
/// leaves `report_counters_as_deltas` off).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Counter {
    #[prost(double, tag = "1")]
    pub value: f64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Gauge {
    #[prost(double, tag = "1")]
    pub value: f64,
}

/// `envoy.service.metrics.v3.StreamMetricsResponse` (empty).
#[derive(Clone, PartialEq, prost::Message)]
pub struct StatsResponse {}

/// The listeners' active connection gauges of one flush: stat prefix →
/// count (`listener.<prefix>.downstream_cx_active`; per-thread gauges
/// (`.worker_<n>`, `.main_thread`) and the admin listener left out).
pub fn listener_gauges(families: &[MetricFamily]) -> Vec<(String, u64)> {
    families
        .iter()
        .filter_map(|f| {
            let prefix = f
                .name
                .strip_prefix("listener.")?
                .strip_suffix(".downstream_cx_active")?;
            if prefix == "admin"
                || prefix.starts_with("admin.")
                || prefix.contains(".worker_")
                || prefix.ends_with(".main_thread")
            {
                return None;
            }
            let value = f.metric.first()?.gauge.as_ref()?.value;
            Some((prefix.to_string(), value.max(0.0) as u64))
        })
        .collect()
}

/// The HTTP connection managers' upgrade stats of one flush: HCM stat
/// prefix → (`http.<prefix>.downstream_cx_upgrades_active` gauge,
/// `http.<prefix>.downstream_cx_upgrades_total` counter). Envoy's admin
/// HCM (`http.admin.`) is left out; a prefix whose gauge or counter is
/// missing from the flush reads 0 for it.
pub fn hcm_upgrades(families: &[MetricFamily]) -> Vec<(String, Upgrades)> {
    let mut out: std::collections::BTreeMap<String, Upgrades> = Default::default();
    for f in families {
        let Some(rest) = f.name.strip_prefix("http.") else {
            continue;
        };
        let (prefix, active) = if let Some(p) = rest.strip_suffix(".downstream_cx_upgrades_active")
        {
            (p, true)
        } else if let Some(p) = rest.strip_suffix(".downstream_cx_upgrades_total") {
            (p, false)
        } else {
            continue;
        };
        if prefix == "admin" {
            continue;
        }
        let Some(m) = f.metric.first() else {
            continue;
        };
        let value = if active {
            m.gauge.as_ref().map(|g| g.value)
        } else {
            m.counter.as_ref().map(|c| c.value)
        };
        let Some(value) = value else {
            continue;
        };
        let n = value.max(0.0) as u64;
        let u = out.entry(prefix.to_string()).or_default();
        if active {
            u.active = n;
        } else {
            u.total = n;
        }
    }
    out.into_iter().collect()
}

/// The tower service tonic's router calls for the metrics service.
#[derive(Clone)]
pub struct StatsSinkService {
    stats: Arc<EnvoyStats>,
    metrics: Arc<Metrics>,
    max_message: usize,
    shutdown: watch::Receiver<bool>,
    /// The ADS streams a stats stream must belong to; `None`: unbound
    /// (unit tests only).
    registry: Option<Arc<Registry>>,
    /// Under mTLS, who may report for which role.
    policy: Option<Arc<Policy>>,
}

impl StatsSinkService {
    /// `max_message` caps one decoded flush (bytes); streams end when
    /// `shutdown` turns true (Envoy's never end on their own, and a
    /// graceful shutdown waits for open streams).
    pub fn new(
        stats: Arc<EnvoyStats>,
        metrics: Arc<Metrics>,
        max_message: usize,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        StatsSinkService {
            stats,
            metrics,
            max_message,
            shutdown,
            registry: None,
            policy: None,
        }
    }

    /// Binds every stats stream to an ADS stream of the same node id from
    /// the same peer IP, and under mTLS (`policy`) to an identity allowed
    /// that node's role.
    pub fn with_binding(mut self, registry: Arc<Registry>, policy: Option<Arc<Policy>>) -> Self {
        self.registry = Some(registry);
        self.policy = policy;
        self
    }

    /// Whether `node_id`'s stats may come from `peer` with `identity`:
    /// waits (at most `BIND_WAIT`) for an ADS stream of that node id from
    /// the same IP (under mTLS: one matched to a proxy), then checks the
    /// policy for that proxy.
    async fn bind(
        &self,
        node_id: &str,
        peer: Option<SocketAddr>,
        identity: Option<Arc<Identity>>,
    ) -> Result<(), Status> {
        let Some(registry) = &self.registry else {
            return Ok(());
        };
        let peer_desc = peer.map(|p| p.to_string()).unwrap_or_default();
        let refuse = |why: &str| {
            tracing::warn!(peer = %peer_desc, node = %node_id, "Envoy stats stream refused: {why}");
            Status::permission_denied(format!(
                "edgeplane: stats for node {node_id:?} refused: {why}"
            ))
        };
        let Some(ip) = peer.map(|p| p.ip()) else {
            return Err(refuse("no peer address"));
        };
        let mut changes = registry.subscribe();
        let deadline = tokio::time::Instant::now() + BIND_WAIT;
        let proxy = loop {
            if let Some(p) = bound_node(registry, node_id, ip, self.policy.is_some()) {
                break p;
            }
            tokio::select! {
                r = changes.changed() => if r.is_err() {
                    return Err(refuse("the server is shutting down"));
                },
                () = tokio::time::sleep_until(deadline) => {
                    return Err(refuse("no ADS stream of this node id is connected from the same IP address"));
                }
            }
        };
        if let Some(policy) = &self.policy {
            let access = Access {
                identity,
                policy: policy.clone(),
            };
            access
                .check_role(&peer_desc, "Envoy stats stream", &proxy)
                .map_err(|st| {
                    Status::permission_denied(format!(
                        "edgeplane: stats for node {node_id:?} refused: {}",
                        st.message()
                    ))
                })?;
        }
        Ok(())
    }

    async fn stream(
        &self,
        mut inbound: Streaming<StatsMessage>,
        peer: Option<SocketAddr>,
        identity: Option<Arc<Identity>>,
    ) -> Result<StatsResponse, Status> {
        let mut node: Option<String> = None;
        let mut shutdown = self.shutdown.clone();
        self.metrics.sink_stream_opened();
        let result = loop {
            // Cancelling `message()` drops at most a partial flush, and
            // only when the stream ends anyway.
            let next = tokio::select! {
                m = inbound.message() => m,
                _ = shutdown.wait_for(|s| *s) => Ok(None),
            };
            match next {
                Ok(Some(msg)) => {
                    if node.is_none() {
                        let id = msg
                            .identifier
                            .as_ref()
                            .and_then(|i| i.node.as_ref())
                            .map(|n| n.id.clone())
                            .unwrap_or_default();
                        if let Err(status) = self.bind(&id, peer, identity.clone()).await {
                            break Err(status);
                        }
                        if !self.stats.stream_opened(&id) {
                            tracing::warn!(peer = ?peer, node = %id, "Envoy stats stream refused: too many nodes report stats");
                            break Err(Status::resource_exhausted(
                                "edgeplane: too many nodes report stats",
                            ));
                        }
                        tracing::debug!(node = %id, "Envoy stats stream opened");
                        node = Some(id);
                    }
                    if let Some(id) = &node {
                        self.stats.update(id, listener_gauges(&msg.envoy_metrics));
                        self.stats
                            .update_upgrades(id, hcm_upgrades(&msg.envoy_metrics));
                    }
                }
                Ok(None) => break Ok(StatsResponse {}),
                Err(e) => {
                    tracing::debug!(error = %e, "Envoy stats stream ended with an error");
                    break Err(e);
                }
            }
        };
        if let Some(id) = &node {
            self.stats.stream_closed(id);
            tracing::debug!(node = %id, "Envoy stats stream closed");
        }
        self.metrics.sink_stream_closed();
        result
    }
}

impl tonic::server::NamedService for StatsSinkService {
    const NAME: &'static str = "envoy.service.metrics.v3.MetricsService";
}

struct StreamMetrics(StatsSinkService);

impl tonic::server::ClientStreamingService<StatsMessage> for StreamMetrics {
    type Response = StatsResponse;
    type Future = BoxFuture<Response<StatsResponse>, Status>;

    fn call(&mut self, request: Request<Streaming<StatsMessage>>) -> Self::Future {
        let svc = self.0.clone();
        let peer = request.remote_addr();
        let identity = request
            .peer_certs()
            .and_then(|c| Identity::from_chain(Some(c.as_slice())))
            .and_then(Result::ok)
            .map(Arc::new);
        Box::pin(async move {
            svc.stream(request.into_inner(), peer, identity)
                .await
                .map(Response::new)
        })
    }
}

impl<B> tonic::codegen::Service<http::Request<B>> for StatsSinkService
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let svc = self.clone();
        if req.uri().path() != STREAM_METRICS_PATH {
            let status = Status::unimplemented(format!(
                "edgeplane's metrics service has StreamMetrics only, not {}",
                req.uri().path()
            ));
            return Box::pin(async move { Ok(status.into_http()) });
        }
        Box::pin(async move {
            let codec = ProstCodec::<StatsResponse, StatsMessage>::default();
            let mut grpc = tonic::server::Grpc::new(codec)
                .apply_max_message_size_config(Some(svc.max_message), None);
            Ok(grpc.client_streaming(StreamMetrics(svc), req).await)
        })
    }
}

/// The proxy of an ADS stream with `node_id` from `ip`, if one is
/// connected (with `matched`: only one already matched to a proxy).
fn bound_node(registry: &Registry, node_id: &str, ip: IpAddr, matched: bool) -> Option<String> {
    registry
        .list()
        .into_iter()
        .filter(|s| s.node_id == node_id && !node_id.is_empty())
        .filter(|s| s.peer.parse::<SocketAddr>().is_ok_and(|p| p.ip() == ip))
        .find(|s| !matched || !s.proxy.is_empty())
        .map(|s| s.proxy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::service::metrics::v3::{
        StreamMetricsMessage, stream_metrics_message,
    };
    use prost::Message;

    /// Envoy's own message types encode what the slim ones decode.
    #[test]
    fn slim_messages_read_envoys_encoding() {
        use envoy_types::pb::io::prometheus::client as prom;
        let gauge = |name: &str, v: f64| prom::MetricFamily {
            name: Some(name.into()),
            help: Some("h".into()),
            r#type: Some(prom::MetricType::Gauge as i32),
            metric: vec![prom::Metric {
                label: vec![prom::LabelPair {
                    name: Some("k".into()),
                    value: Some("v".into()),
                }],
                gauge: Some(prom::Gauge { value: Some(v) }),
                timestamp_ms: Some(1),
                ..Default::default()
            }],
            ..Default::default()
        };
        let counter = prom::MetricFamily {
            name: Some("listener.127.0.0.1_8080.downstream_cx_total".into()),
            metric: vec![prom::Metric {
                counter: Some(prom::Counter {
                    value: Some(9.0),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        };
        let msg = StreamMetricsMessage {
            identifier: Some(stream_metrics_message::Identifier {
                node: Some(envoy_types::pb::envoy::config::core::v3::Node {
                    id: "node-1".into(),
                    cluster: "c".into(),
                    ..Default::default()
                }),
            }),
            envoy_metrics: vec![
                gauge("listener.127.0.0.1_8080.downstream_cx_active", 2.0),
                gauge("listener.127.0.0.1_8080.worker_0.downstream_cx_active", 2.0),
                gauge("listener.admin.downstream_cx_active", 1.0),
                gauge("listener.admin.main_thread.downstream_cx_active", 1.0),
                gauge("listener.[__]_9090.downstream_cx_active", 0.0),
                gauge("server.live", 1.0),
                counter,
            ],
        };
        let slim = StatsMessage::decode(msg.encode_to_vec().as_slice()).expect("decode");
        assert_eq!(
            slim.identifier
                .and_then(|i| i.node)
                .map(|n| n.id)
                .as_deref(),
            Some("node-1")
        );
        assert_eq!(
            listener_gauges(&slim.envoy_metrics),
            vec![
                ("127.0.0.1_8080".to_string(), 2),
                ("[__]_9090".to_string(), 0)
            ]
        );
    }

    /// The HCM upgrade gauge and counter, as Envoy's own types encode them,
    /// become per-prefix upgrades; the admin HCM and other stats do not.
    #[test]
    fn hcm_upgrades_read_the_gauge_and_the_counter() {
        use envoy_types::pb::io::prometheus::client as prom;
        let gauge = |name: &str, v: f64| prom::MetricFamily {
            name: Some(name.into()),
            r#type: Some(prom::MetricType::Gauge as i32),
            metric: vec![prom::Metric {
                gauge: Some(prom::Gauge { value: Some(v) }),
                ..Default::default()
            }],
            ..Default::default()
        };
        let counter = |name: &str, v: f64| prom::MetricFamily {
            name: Some(name.into()),
            r#type: Some(prom::MetricType::Counter as i32),
            metric: vec![prom::Metric {
                counter: Some(prom::Counter {
                    value: Some(v),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        };
        let msg = StreamMetricsMessage {
            identifier: None,
            envoy_metrics: vec![
                gauge("http.http.downstream_cx_upgrades_active", 2.0),
                counter("http.http.downstream_cx_upgrades_total", 7.0),
                counter("http.http.downstream_cx_total", 9.0),
                gauge("http.admin.downstream_cx_upgrades_active", 1.0),
                counter("http.other.downstream_cx_upgrades_total", 3.0),
                gauge("listener.127.0.0.1_8080.downstream_cx_active", 2.0),
            ],
        };
        let slim = StatsMessage::decode(msg.encode_to_vec().as_slice()).expect("decode");
        assert_eq!(
            hcm_upgrades(&slim.envoy_metrics),
            vec![
                (
                    "http".to_string(),
                    Upgrades {
                        active: 2,
                        total: 7
                    }
                ),
                (
                    "other".to_string(),
                    Upgrades {
                        active: 0,
                        total: 3
                    }
                ),
            ]
        );
    }
}
