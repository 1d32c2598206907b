//! The effective routing table of each listener, read back from the
//! translated Envoy resources: what `edgeplane routes` prints and the admin
//! status page shows.
//!
//! Per route: domains, matcher, destination, and whether a WebSocket
//! upgrade is accepted, with the reason. The state is read from the
//! translated resources, following Envoy's rule: a route's own
//! `upgrade_configs` entry for `websocket` decides; without one, the
//! listener's (HCM) entry does, and no HCM entry means refused. The reason
//! and the source file and line come from the validated model (which knows
//! whether the route inherited its `upgrades` through delegation). Pure: no
//! I/O, so the server can run it on what it serves.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::listener::v3::{Listener, filter};
use envoy_types::pb::envoy::config::route::v3::{
    Route, RouteMatch, header_matcher, route, route_action, route_match,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager,
};
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher;
use prost::Message;
use serde::Serialize;

use crate::model::{Model, VirtualService};
use crate::translate::{Output, names};

/// Why a routing table cannot be explained.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error(transparent)]
    Proxy(#[from] crate::translate::ProxySelectError),
    #[error("listener {listener}: {what}")]
    Listener { listener: String, what: String },
    #[error("virtual host {vhost} has {envoy} routes but its VirtualService {model}")]
    RouteCount {
        vhost: String,
        envoy: usize,
        model: usize,
    },
    #[error("route configuration {name}: cannot decode its bytes: {error}")]
    Decode {
        name: String,
        error: prost::DecodeError,
    },
}

/// The Envoy `upgrade_type` of WebSocket.
const WEBSOCKET: &str = "websocket";

/// One listener's routing table.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerRoutes {
    /// `<namespace>~<proxyName>`.
    pub proxy: String,
    /// `<namespace>.<name>` of the Gateway that makes this listener.
    pub gateway: Option<String>,
    pub listener: String,
    pub route_config: String,
    /// The listener's WebSocket default: `true` when its HCM allows it.
    pub websocket_default: bool,
    pub routes: Vec<RouteRow>,
}

/// One Envoy route (one matcher of a Gloo route).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteRow {
    /// The Envoy route name.
    pub name: String,
    /// `<namespace>.<name>` of the VirtualService.
    pub virtual_service: String,
    pub domains: Vec<String>,
    pub matcher: String,
    pub destination: String,
    /// Whether Envoy upgrades a WebSocket request on this route.
    pub websocket: bool,
    /// `on: listener default`, `off: gateway upgrades`, `on: route
    /// override`, `off: route override`, or `on|off: inherited from
    /// delegate route <namespace>.<name>/<index>`.
    pub websocket_reason: String,
    pub file: Option<String>,
    pub line: Option<u32>,
}

/// The routing tables of every proxy (or only `proxy`: a full key or an
/// unambiguous proxy name), one per listener.
pub fn routes(
    out: &Output,
    model: &Model,
    proxy: Option<&str>,
) -> Result<Vec<ListenerRoutes>, ExplainError> {
    let keys: Vec<&String> = match proxy {
        None => out.keys().collect(),
        Some(p) => vec![crate::translate::select_proxy(out, p)?],
    };
    let by_vhost: BTreeMap<String, &VirtualService> = model
        .virtual_services
        .values()
        .map(|vs| (names::vhost_name(vs), vs))
        .collect();
    let mut tables = Vec::new();
    for key in keys {
        let Some(res) = out.get(key) else { continue };
        // A TCP listener (tunnelling ones for `httpProxyHostname` too) has
        // no connection manager, so no table; a hybrid one has one per
        // matched HTTP gateway.
        let hcms = res.listeners.iter().map(|l| {
            hcms_of(l)
                .map(|hs| hs.into_iter().map(move |h| (l, h)))
                .map_err(|what| ExplainError::Listener {
                    listener: l.name.clone(),
                    what: what.to_string(),
                })
        });
        for (l, hcm) in hcms.collect::<Result<Vec<_>, _>>()?.into_iter().flatten() {
            let rc_name = match &hcm.route_specifier {
                Some(http_connection_manager::RouteSpecifier::Rds(rds)) => {
                    rds.route_config_name.clone()
                }
                _ => {
                    return Err(ExplainError::Listener {
                        listener: l.name.clone(),
                        what: "takes no routes over RDS".to_string(),
                    });
                }
            };
            let hcm_ws = hcm
                .upgrade_configs
                .iter()
                .find(|u| u.upgrade_type == WEBSOCKET)
                .map(|u| u.enabled.is_none_or(|b| b.value));
            let websocket_default = hcm_ws.unwrap_or(false);
            let mut rows = Vec::new();
            if let Some(rc) = res.route_configs.iter().find(|r| r.name == rc_name) {
                let rc = rc.decode().map_err(|error| ExplainError::Decode {
                    name: rc.name.clone(),
                    error,
                })?;
                for vh in &rc.virtual_hosts {
                    let vs = by_vhost.get(&vh.name).copied();
                    // The translation emits one Envoy route per matcher of
                    // each model route, in order.
                    let origins: Vec<&crate::model::Route> = vs
                        .map(|vs| {
                            vs.routes
                                .iter()
                                .flat_map(|r| r.matchers.iter().map(move |_| r))
                                .collect()
                        })
                        .unwrap_or_default();
                    if origins.len() != vh.routes.len() {
                        return Err(ExplainError::RouteCount {
                            vhost: vh.name.clone(),
                            envoy: vh.routes.len(),
                            model: origins.len(),
                        });
                    }
                    for (er, mr) in vh.routes.iter().zip(origins) {
                        rows.push(row(er, mr, vs, &vh.domains, websocket_default));
                    }
                }
            }
            let gateway = model
                .gateways
                .values()
                .find(|g| {
                    names::listener_name(g) == l.name
                        && g.proxy_names
                            .iter()
                            .any(|p| crate::translate::proxy_key(&g.key.namespace, p) == *key)
                })
                .map(|g| g.key.to_string());
            tables.push(ListenerRoutes {
                proxy: key.clone(),
                gateway,
                listener: l.name.clone(),
                route_config: rc_name,
                websocket_default,
                routes: rows,
            });
        }
    }
    Ok(tables)
}

fn row(
    er: &Route,
    mr: &crate::model::Route,
    vs: Option<&VirtualService>,
    domains: &[String],
    websocket_default: bool,
) -> RouteRow {
    let route_ws = match &er.action {
        Some(route::Action::Route(ra)) => ra
            .upgrade_configs
            .iter()
            .find(|u| u.upgrade_type == WEBSOCKET)
            .map(|u| u.enabled.is_none_or(|b| b.value)),
        _ => None,
    };
    let on_off = |b: bool| if b { "on" } else { "off" };
    let (websocket, websocket_reason) = match route_ws {
        Some(b) => match &mr.origin.upgrades_from {
            Some(from) => (
                b,
                format!("{}: inherited from delegate route {from}", on_off(b)),
            ),
            None => (b, format!("{}: route override", on_off(b))),
        },
        None if websocket_default => (true, "on: listener default".to_string()),
        None => (false, "off: gateway upgrades".to_string()),
    };
    RouteRow {
        name: er.name.clone(),
        virtual_service: vs.map(|v| v.key.to_string()).unwrap_or_default(),
        domains: domains.to_vec(),
        matcher: er.r#match.as_ref().map(matcher_text).unwrap_or_default(),
        destination: destination(er),
        websocket,
        websocket_reason,
        file: mr.origin.pos.as_ref().map(|p| p.file.display().to_string()),
        line: mr.origin.pos.as_ref().map(|p| p.line),
    }
}

fn hcms_of(l: &Listener) -> Result<Vec<HttpConnectionManager>, &'static str> {
    let mut out: Vec<HttpConnectionManager> = Vec::new();
    for any in l
        .filter_chains
        .iter()
        .flat_map(|c| c.filters.iter())
        .filter_map(|f| match &f.config_type {
            Some(filter::ConfigType::TypedConfig(a))
                if a.type_url.ends_with("HttpConnectionManager") =>
            {
                Some(a)
            }
            _ => None,
        })
    {
        let hcm = HttpConnectionManager::decode(any.value.as_slice())
            .map_err(|_| "the HTTP connection manager does not decode")?;
        // SSL chains repeat one connection manager.
        if !out.contains(&hcm) {
            out.push(hcm);
        }
    }
    Ok(out)
}

fn string_match(m: Option<&string_matcher::MatchPattern>) -> String {
    match m {
        Some(string_matcher::MatchPattern::Exact(s)) => format!("={s}"),
        Some(string_matcher::MatchPattern::Prefix(s)) => format!("^={s}"),
        Some(string_matcher::MatchPattern::Suffix(s)) => format!("$={s}"),
        Some(string_matcher::MatchPattern::Contains(s)) => format!("*={s}"),
        Some(string_matcher::MatchPattern::SafeRegex(r)) => format!("~={}", r.regex),
        _ => String::new(),
    }
}

fn matcher_text(m: &RouteMatch) -> String {
    let mut parts = vec![match &m.path_specifier {
        Some(route_match::PathSpecifier::Prefix(p)) => format!("prefix {p}"),
        Some(route_match::PathSpecifier::Path(p)) => format!("exact {p}"),
        Some(route_match::PathSpecifier::SafeRegex(r)) => format!("regex {}", r.regex),
        _ => "other".to_string(),
    }];
    if m.case_sensitive.is_some_and(|b| !b.value) {
        parts.push("(case-insensitive)".to_string());
    }
    for h in &m.headers {
        let cond = match &h.header_match_specifier {
            Some(header_matcher::HeaderMatchSpecifier::PresentMatch(_)) => String::new(),
            Some(header_matcher::HeaderMatchSpecifier::StringMatch(s)) => {
                string_match(s.match_pattern.as_ref())
            }
            _ => "?".to_string(),
        };
        let not = if h.invert_match { "!" } else { "" };
        parts.push(format!("header {not}{}{cond}", h.name));
    }
    for q in &m.query_parameters {
        parts.push(format!("query {}", q.name));
    }
    parts.join(" ")
}

fn destination(r: &Route) -> String {
    match &r.action {
        Some(route::Action::Route(ra)) => match &ra.cluster_specifier {
            Some(route_action::ClusterSpecifier::Cluster(c)) => c.clone(),
            Some(route_action::ClusterSpecifier::WeightedClusters(w)) => w
                .clusters
                .iter()
                .map(|c| format!("{}({})", c.name, c.weight.map(|x| x.value).unwrap_or(0)))
                .collect::<Vec<_>>()
                .join(", "),
            _ => "route".to_string(),
        },
        Some(route::Action::Redirect(rd)) => {
            if rd.host_redirect.is_empty() {
                "redirect".to_string()
            } else {
                format!("redirect {}", rd.host_redirect)
            }
        }
        Some(route::Action::DirectResponse(d)) => format!("direct response {}", d.status),
        _ => String::new(),
    }
}
