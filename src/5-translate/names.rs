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

/// The `upgrade_type` Envoy is given (Gloo's constants).
pub fn upgrade_type(kind: UpgradeKind) -> &'static str {
    match kind {
        UpgradeKind::WebSocket => "websocket",
        UpgradeKind::Connect | UpgradeKind::ConnectTerminate => "CONNECT",
    }
}
