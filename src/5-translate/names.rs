//! The names of Envoy resources, exactly as Gloo gives them, so a Gloo
//! user's dashboards, access logs and `/config_dump` reading carry over:
//! listener `listener-<bindAddress>-<bindPort>`, route configuration
//! `<listener>-routes`, virtual host `<namespace>_<name>` (dots made
//! underscores), cluster
//! `<name>_<namespace>`. They belong to the builders (as Contour's
//! `Clustername` does), not to the Envoy-free model.

use crate::model::{Gateway, Key, UpgradeKind, VirtualService};

/// A Gateway's Listener: `listener-<bindAddress>-<bindPort>`.
pub fn listener_name(gw: &Gateway) -> String {
    format!("listener-{}-{}", gw.bind_address, gw.bind_port)
}

/// A Gateway's RouteConfiguration: `<listener>-routes`.
pub fn route_config_name(gw: &Gateway) -> String {
    format!("{}-routes", listener_name(gw))
}

/// A VirtualService's virtual host: Gloo's `<namespace>.<name>` with every
/// `.` made `_` (Gloo's `SanitizeForEnvoy`, `projects/gloo/pkg/utils/
/// sanitize.go`: a dot would split Envoy's stats tree), so `gloo-system_web`,
/// and `gloo-system_shop_v2` for a VirtualService named `shop.v2`.
pub fn vhost_name(vs: &VirtualService) -> String {
    format!("{}.{}", vs.key.namespace, vs.key.name).replace('.', "_")
}

/// An Upstream's Cluster: `<name>_<namespace>`.
pub fn cluster_name(key: &Key) -> String {
    format!("{}_{}", key.name, key.namespace)
}

/// The cluster a route to a missing UpstreamGroup points at. Gloo sets
/// `cluster: ""` there (`projects/gloo/pkg/translator/route_config.go`),
/// which real Envoy refuses (the field needs at least one character) and
/// would NACK the whole RouteConfiguration; a name no cluster has gives the
/// route Gloo means: kept, answered 503 by Envoy (cluster not found). The
/// `:` keeps it apart from every Upstream's `<name>_<namespace>`
/// (Kubernetes names have no `:`).
pub fn missing_upstream_group_cluster(key: &Key) -> String {
    format!("upstream-group-not-found:{}", cluster_name(key))
}

/// HTTP CONNECT tunnelling (Gloo's tunneling plugin, `projects/gloo/pkg/
/// plugins/tunneling/plugin.go`): the Upstream's own cluster is renamed
/// `<cluster>_original` and still reaches its hosts (the proxy)…
pub fn tunnel_original_cluster(cluster: &str) -> String {
    format!("{cluster}_original")
}

/// … the cluster under the Upstream's name forwards over the abstract unix
/// socket `@/<cluster>` …
pub fn tunnel_pipe(cluster: &str) -> String {
    format!("@/{cluster}")
}

/// The prefix of the tunnelling listeners' names.
pub const TUNNEL_LISTENER_PREFIX: &str = "solo_io_generated_self_listener_";

/// … to the listener `solo_io_generated_self_listener_<cluster>`, whose TCP
/// proxy asks the proxy to `CONNECT` and carries the bytes through.
pub fn tunnel_listener(cluster: &str) -> String {
    format!("{TUNNEL_LISTENER_PREFIX}{cluster}")
}

/// The tunnelling TCP proxy's `stat_prefix`: `soloioTcpStats<cluster>`.
pub fn tunnel_stat_prefix(cluster: &str) -> String {
    format!("soloioTcpStats{cluster}")
}

/// The `upgrade_type` Envoy is given (Gloo's constants).
pub fn upgrade_type(kind: UpgradeKind) -> &'static str {
    match kind {
        UpgradeKind::WebSocket => "websocket",
        UpgradeKind::Connect | UpgradeKind::ConnectTerminate => "CONNECT",
    }
}
