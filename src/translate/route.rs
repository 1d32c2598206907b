//! Gateway + its VirtualServices → one RouteConfiguration.

use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source};
use envoy_types::pb::envoy::config::route::v3::{
    DirectResponseAction, Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost, route,
    route_action, route_match,
};
use envoy_types::pb::envoy::r#type::matcher::v3::RegexMatcher;

use super::{bool_value, duration};
use crate::model::{self, Action, Gateway, Model, PathMatch};

pub fn route_configuration(gw: &Gateway, model: &Model) -> RouteConfiguration {
    let virtual_hosts = model
        .virtual_services
        .values()
        .filter(|vs| gw.selects(&vs.key))
        .map(virtual_host)
        .collect::<Vec<_>>();
    let mut virtual_hosts = virtual_hosts;
    virtual_hosts.sort_by(|a, b| a.name.cmp(&b.name));
    RouteConfiguration {
        name: gw.route_config_name(),
        virtual_hosts,
        ..Default::default()
    }
}

fn virtual_host(vs: &model::VirtualService) -> VirtualHost {
    let name = vs.vhost_name();
    let domains = if vs.domains.is_empty() {
        vec!["*".to_string()]
    } else {
        vs.domains.clone()
    };
    let mut routes = Vec::new();
    for (i, r) in vs.routes.iter().enumerate() {
        for (j, m) in r.matchers.iter().enumerate() {
            routes.push(envoy_route(format!("{name}-route-{i}-matcher-{j}"), m, r));
        }
    }
    VirtualHost {
        name,
        domains,
        routes,
        ..Default::default()
    }
}

fn envoy_route(name: String, m: &model::Matcher, r: &model::Route) -> Route {
    let path_specifier = match &m.path {
        PathMatch::Prefix(p) => route_match::PathSpecifier::Prefix(p.clone()),
        PathMatch::Exact(p) => route_match::PathSpecifier::Path(p.clone()),
        PathMatch::Regex(re) => route_match::PathSpecifier::SafeRegex(RegexMatcher {
            regex: re.clone(),
            ..Default::default()
        }),
    };
    let action = match &r.action {
        Action::Upstream(key) => route::Action::Route(route_action(key, &r.options)),
        // Gloo ignores route options (upgrades included) on direct responses.
        Action::DirectResponse { status, body } => {
            route::Action::DirectResponse(DirectResponseAction {
                status: *status,
                body: body.as_ref().map(|b| DataSource {
                    specifier: Some(data_source::Specifier::InlineString(b.clone())),
                    ..Default::default()
                }),
                ..Default::default()
            })
        }
    };
    Route {
        name,
        r#match: Some(RouteMatch {
            path_specifier: Some(path_specifier),
            case_sensitive: m.case_sensitive.map(bool_value),
            ..Default::default()
        }),
        action: Some(action),
        ..Default::default()
    }
}

fn route_action(up: &model::Key, o: &model::RouteOptions) -> RouteAction {
    RouteAction {
        cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(
            model::cluster_name(up),
        )),
        timeout: o.timeout.map(duration),
        idle_timeout: o.idle_timeout.map(duration),
        prefix_rewrite: o.prefix_rewrite.clone().unwrap_or_default(),
        upgrade_configs: o
            .upgrades
            .iter()
            .map(|u| route_action::UpgradeConfig {
                upgrade_type: u.kind.envoy_name().to_string(),
                enabled: u.enabled.map(bool_value),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}
