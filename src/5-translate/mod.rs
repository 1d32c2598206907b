//! Validated model → Envoy resources, per proxy. Pure and deterministic.
//!
//! No I/O, clock, randomness or logging here: the same model always gives
//! the same resources in the same order (every collection is sorted by name;
//! protobuf maps, a route's per-filter configs, are encoded canonically by
//! `canonical`), so content hashes of the output are stable across runs and
//! processes. The submodules are small builders, one per
//! Envoy resource type. RouteConfigurations leave translation encoded
//! (`route_memo`): each route is encoded on its own, so `translate_reusing`
//! can take an unchanged route's bytes from the last translation.
//!
//! Gloo's shape is kept: per proxy, one Listener per Gateway whose HCM takes
//! its routes over RDS from `<listener>-routes` (a `tcpGateway` has no
//! routes; a `hybridGateway` has one HCM and RouteConfiguration
//! `<listener>-routes-<matcher hash>` per matched HTTP gateway); one virtual
//! host per VirtualService; one Cluster per Upstream (every proxy gets all
//! clusters), two and a tunnelling Listener for one with `httpProxyHostname`.
//! A Listener depends only on its Gateway (for an SSL gateway, also on the
//! `sslConfig` of the VirtualServices it serves, one TLS filter chain each),
//! so editing routes, domains or upstreams never changes Listener bytes
//! (which would drain the listener's open WebSockets in Envoy). A
//! `secretRef` certificate is a separate SDS `Secret` resource, sent only
//! to the proxies whose listeners name it: rotating it changes that
//! resource, never the Listener.

mod access_log;
pub mod canonical;
mod cluster;
mod http_filters;
pub mod json;
mod listener;
pub mod names;
pub mod proto;
mod route;
pub mod route_memo;
mod tcp;
pub(crate) mod tls;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;

use crate::model::{CertSource, GatewayKind, Key, Model};
use route_memo::Build;
pub use route_memo::{Retired, RouteConfig, RouteMemo};

/// The resources for one proxy, each list sorted by resource name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProxyResources {
    pub listeners: Vec<Listener>,
    /// Encoded: translation builds them route by route (`route_memo`).
    pub route_configs: Vec<RouteConfig>,
    pub clusters: Vec<Cluster>,
    /// SDS secrets the listeners name (`secretRef` certificates).
    pub secrets: Vec<Secret>,
}

/// Every proxy's resources, keyed `<namespace>~<proxyName>` (Gloo's xDS key,
/// which Envoy sends as `node.metadata.role`).
pub type Output = BTreeMap<String, ProxyResources>;

/// A `--proxy` argument that names no proxy of an `Output`, or several.
#[derive(Debug, thiserror::Error)]
pub enum ProxySelectError {
    #[error("unknown proxy `{given}`; known proxies: {}", list(.known))]
    Unknown { given: String, known: Vec<String> },
    #[error("proxy name `{given}` is ambiguous, use one of: {}", list(.matches))]
    Ambiguous { given: String, matches: Vec<String> },
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".to_string()
    } else {
        items.join(", ")
    }
}

/// The output key `given` names: itself when it is a key, else the one key
/// whose proxy name (after `~`) it is.
pub fn select_proxy<'a>(output: &'a Output, given: &str) -> Result<&'a String, ProxySelectError> {
    if let Some((key, _)) = output.get_key_value(given) {
        return Ok(key);
    }
    let matches: Vec<&String> = output
        .keys()
        .filter(|k| k.split_once('~').is_some_and(|(_, name)| name == given))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(ProxySelectError::Unknown {
            given: given.to_string(),
            known: output.keys().cloned().collect(),
        }),
        _ => Err(ProxySelectError::Ambiguous {
            given: given.to_string(),
            matches: matches.into_iter().cloned().collect(),
        }),
    }
}

/// The xDS key of a proxy: `<namespace>~<proxyName>`, what Envoy sends as
/// `node.metadata.role`.
pub fn proxy_key(namespace: &str, proxy_name: &str) -> String {
    format!("{namespace}~{proxy_name}")
}

/// Translates the model into every proxy's resources.
pub fn translate(model: &Model) -> Output {
    translate_with(model, &mut Build::fresh())
}

/// As `translate`, taking the encoding of every route equal to one of the
/// last translation `memo` remembers; `memo` then remembers this one. The
/// output is the same as `translate`'s.
pub fn translate_reusing(model: &Arc<Model>, memo: &mut RouteMemo) -> Output {
    let mut build = Build::reusing(memo);
    let out = translate_with(model, &mut build);
    let done = build.finish();
    memo.keep(model, done);
    out
}

fn translate_with(model: &Model, build: &mut Build<'_>) -> Output {
    // One cluster per Upstream; a tunnelled one (`httpProxyHostname`)
    // becomes two clusters and a listener every proxy gets, as Gloo's
    // tunneling plugin adds them to every proxy.
    let mut clusters: Vec<Cluster> = Vec::with_capacity(model.upstreams.len());
    let mut tunnel_listeners: Vec<Listener> = Vec::new();
    for up in model.upstreams.values() {
        let c = cluster::cluster(up, &model.secrets);
        match &up.tunnel {
            None => clusters.push(c),
            Some(t) => {
                let (cs, l) = cluster::tunnel(c, t, &model.secrets);
                clusters.extend(cs);
                tunnel_listeners.push(l);
            }
        }
    }
    let mut out = Output::new();
    for gw in model.gateways.values() {
        for proxy in &gw.proxy_names {
            // Make sure every proxy named by a gateway exists, even if it
            // ends up without listeners: its Envoy then gets clusters only.
            out.entry(proxy_key(&gw.key.namespace, proxy))
                .or_insert_with(|| ProxyResources {
                    clusters: clusters.clone(),
                    listeners: tunnel_listeners.clone(),
                    ..Default::default()
                });
        }
        // Gloo: with no VirtualService at all, HTTP listeners are not built
        // (nor a hybrid gateway's HTTP parts); TCP ones are.
        if model.virtual_services.is_empty() && gw.kind == GatewayKind::Http {
            continue;
        }
        let http_parts = if model.virtual_services.is_empty() {
            Vec::new()
        } else {
            gw.http_parts()
        };
        let Some(listener) = listener::listener(gw, model) else {
            continue;
        };
        // Each proxy of the gateway gets the same listener (copies for all
        // but the last) and its own RouteConfiguration: named routes carry
        // the proxy's name.
        let targets: Vec<(&String, String)> = gw
            .proxy_names
            .iter()
            .map(|proxy| (proxy, proxy_key(&gw.key.namespace, proxy)))
            .filter(|(_, k)| out.contains_key(k))
            .collect();
        let mut listener = Some(listener);
        for (i, (proxy, key)) in targets.iter().enumerate() {
            let l = if i + 1 == targets.len() {
                match listener.take() {
                    Some(l) => l,
                    None => break,
                }
            } else {
                match &listener {
                    Some(l) => l.clone(),
                    None => break,
                }
            };
            // One RouteConfiguration per HTTP gateway (none for TCP, one
            // per matched HTTP gateway of a hybrid one).
            if let Some(p) = out.get_mut(key) {
                p.listeners.push(l);
                for part in &http_parts {
                    p.route_configs
                        .push(route::route_configuration(part, proxy, model, build));
                }
            }
        }
    }
    for (proxy, keys) in secrets_by_proxy(model) {
        if let Some(p) = out.get_mut(&proxy) {
            for key in keys {
                if let Some(s) = model.secrets.get(&key) {
                    p.secrets.extend(tls::secrets(&key, s));
                }
            }
        }
    }
    for p in out.values_mut() {
        p.listeners.sort_by(|a, b| a.name.cmp(&b.name));
        p.route_configs.sort_by(|a, b| a.name.cmp(&b.name));
        p.secrets.sort_by(|a, b| a.name.cmp(&b.name));
    }
    out
}

/// The Secrets each proxy's resources name: those of the VirtualServices
/// and TCP hosts its SSL gateways serve, and those of Upstream
/// `sslConfig`s (every proxy gets every cluster). A proxy gets no other
/// Secret, so a key never reaches an Envoy that does not use it.
pub fn secrets_by_proxy(model: &Model) -> BTreeMap<String, BTreeSet<Key>> {
    let secret_of = |ssl: &crate::model::SslConfig| match &ssl.certs {
        CertSource::Secret(k) => Some(k.clone()),
        CertSource::Files { .. } => None,
    };
    let upstream_keys: BTreeSet<Key> = model
        .upstreams
        .values()
        .flat_map(|up| {
            let proxy_ssl = up.tunnel.as_ref().and_then(|t| t.proxy_ssl.as_ref());
            [up.ssl.as_ref(), proxy_ssl]
        })
        .flatten()
        .filter_map(|ssl| Some(ssl.secret.as_ref()?.key.clone()))
        .collect();
    let mut out: BTreeMap<String, BTreeSet<Key>> = BTreeMap::new();
    for gw in model.gateways.values() {
        let mut keys: BTreeSet<Key> = upstream_keys.clone();
        // HTTP (and hybrid HTTP) SSL listeners exist only with some
        // VirtualService at all, as in Gloo.
        if !model.virtual_services.is_empty() {
            for part in gw.http_parts().into_iter().filter(|p| p.ssl) {
                keys.extend(
                    model
                        .virtual_services
                        .values()
                        .filter(|vs| part.selects(vs))
                        .filter_map(|vs| secret_of(vs.ssl.as_ref()?)),
                );
            }
        }
        // TCP hosts that terminate TLS with a Secret.
        let tcp: Vec<&crate::model::TcpGateway> = match &gw.kind {
            GatewayKind::Tcp(t) => vec![t],
            GatewayKind::Hybrid(list) => list
                .iter()
                .filter_map(|m| match m {
                    crate::model::MatchedGateway::Tcp { tcp, .. } => Some(tcp),
                    crate::model::MatchedGateway::Http(_) => None,
                })
                .collect(),
            GatewayKind::Http => Vec::new(),
        };
        for t in tcp {
            for h in &t.hosts {
                if let crate::model::TcpHostTls::Terminate(ssl) = &h.tls {
                    keys.extend(secret_of(ssl));
                }
            }
        }
        if keys.is_empty() {
            continue;
        }
        for proxy in &gw.proxy_names {
            out.entry(proxy_key(&gw.key.namespace, proxy))
                .or_default()
                .extend(keys.iter().cloned());
        }
    }
    out
}

#[cfg(test)]
mod tests;
