//! The names of Envoy resources, exactly as Gloo gives them, so a Gloo
//! user's dashboards, access logs and `/config_dump` reading carry over:
//! listener `listener-<bindAddress>-<bindPort>`, route configuration
//! `<listener>-routes`, virtual host `<namespace>_<name>` (dots made
//! underscores), cluster
//! `<name>_<namespace>`. They belong to the builders (as Contour's
//! `Clustername` does), not to the Envoy-free model.

use crate::model::{Gateway, Key, TlsSecret, UpgradeKind, VirtualService};

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

/// A TLS Secret's certificate and key, served over SDS:
/// `<name>_<namespace>`, after Gloo's cluster names (Gloo itself inlines
/// `secretRef` certificates into the listener and so names no SDS secret;
/// edgeplane serves them over SDS so a rotation leaves the listener be).
pub fn secret_cert_name(key: &Key) -> String {
    format!("{}_{}", key.name, key.namespace)
}

/// A TLS Secret's `rootCa`, as its own SDS validation context:
/// `<name>_<namespace>_root-ca` (`_` cannot occur in Kubernetes names, so
/// no other Secret's certificate can take it).
pub fn secret_ca_name(key: &Key) -> String {
    format!("{}_root-ca", secret_cert_name(key))
}

/// The SDS resources one Secret becomes: its certificate, and its CA when
/// it has one.
pub fn secret_names(key: &Key, secret: Option<&TlsSecret>) -> Vec<String> {
    let mut out = vec![secret_cert_name(key)];
    if secret.is_some_and(|s| s.root_ca.is_some()) {
        out.push(secret_ca_name(key));
    }
    out
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
