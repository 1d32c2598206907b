//! `edgeplane check`: a gate for CI and deploys, as `glooctl check` is for
//! Gloo. Exit 0 only when a configuration is served, every resource is
//! Accepted (a Warning fails too, as under Gloo's strict validation) and no
//! connected Envoy holds a NACK; exit 1 with one line per problem
//! otherwise; exit 2 when edgeplane cannot be reached.

use std::process::ExitCode;

use super::status::{Connection, get_with};
use crate::status::api::GetStatusResponse;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    connection: Connection,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let tls = a.connection.tls();
    let status = super::runtime()?.block_on(get_with(&a.connection.server, tls.as_ref()))?;
    let found = problems(&status);
    if found.is_empty() {
        super::outln(&format!(
            "ok: {} resource(s) Accepted; {} Envoy node(s) connected, none holds a NACK",
            status.resources.len(),
            status.nodes.len()
        ))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut text = found.join("\n");
    text.push_str(&format!("\n{} problem(s)", found.len()));
    super::outln(&text)?;
    Ok(ExitCode::from(1))
}

/// One line per problem the status report shows; empty when there is none.
pub fn problems(s: &GetStatusResponse) -> Vec<String> {
    let mut out = Vec::new();
    if !s.serving {
        out.push("nothing is served: no valid configuration has loaded yet".to_string());
    }
    // Problems of whole files (unreadable, not YAML) name no resource.
    for d in s.diagnostics.iter().filter(|d| d.kind.is_empty()) {
        out.push(format!(
            "{}:{}:{}: {}: {}",
            d.file,
            d.line,
            d.column,
            crate::status::api::severity_name(d.severity),
            d.message
        ));
    }
    for r in s.resources.iter().filter(|r| r.state != "Accepted") {
        let why = r
            .reasons
            .first()
            .map(|d| format!(": {}:{}:{}: {}", d.file, d.line, d.column, d.message))
            .or_else(|| {
                r.proxies
                    .iter()
                    .find(|p| !p.reason.is_empty())
                    .map(|p| format!(": {}", p.reason))
            })
            .unwrap_or_default();
        let more = r.reasons.len().saturating_sub(1);
        let more = if more > 0 {
            format!(" (+{more} more)")
        } else {
            String::new()
        };
        out.push(format!(
            "{} {}.{} is {} (serving {}){why}{more}",
            r.kind, r.namespace, r.name, r.state, r.serving
        ));
    }
    for n in &s.nodes {
        for t in n.types.iter().filter(|t| !t.nacked_version.is_empty()) {
            let short = t.type_url.rsplit('.').next().unwrap_or(&t.type_url);
            out.push(format!(
                "Envoy node {:?} ({}) NACKed {short} version {}: {}",
                n.node_id,
                n.proxy,
                t.nacked_version,
                t.nack_message.lines().next().unwrap_or("")
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::api::{ConnectedNode, Diagnostic, NodeTypeState, ResourceStatus};

    fn resource(name: &str, state: &str) -> ResourceStatus {
        ResourceStatus {
            kind: "VirtualService".into(),
            namespace: "gloo-system".into(),
            name: name.into(),
            state: state.into(),
            serving: "current".into(),
            ..Default::default()
        }
    }

    #[test]
    fn accepted_and_synced_is_no_problem_and_each_kind_of_problem_is_one_line() {
        let mut s = GetStatusResponse {
            serving: true,
            resources: vec![resource("a", "Accepted")],
            ..Default::default()
        };
        assert!(problems(&s).is_empty());

        let mut warned = resource("b", "Warning");
        warned.reasons.push(Diagnostic {
            file: "vs.yaml".into(),
            line: 7,
            column: 9,
            message: "Upstream gloo-system.nope not found".into(),
            ..Default::default()
        });
        s.resources.push(warned);
        s.nodes.push(ConnectedNode {
            node_id: "n1".into(),
            proxy: "gloo-system~gateway-proxy".into(),
            types: vec![NodeTypeState {
                type_url: "type.googleapis.com/envoy.config.route.v3.RouteConfiguration".into(),
                nacked_version: "v2".into(),
                nack_message: "bad route\nmore".into(),
                ..Default::default()
            }],
            ..Default::default()
        });
        let p = problems(&s);
        assert_eq!(
            p,
            [
                "VirtualService gloo-system.b is Warning (serving current): vs.yaml:7:9: Upstream gloo-system.nope not found",
                "Envoy node \"n1\" (gloo-system~gateway-proxy) NACKed RouteConfiguration version v2: bad route",
            ]
        );
        s.serving = false;
        assert_eq!(problems(&s).len(), 3);
    }
}
