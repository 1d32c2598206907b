//! `edgeplane routes`: the effective routing table of each listener
//! (`status::explain`), from the same validation and translation `serve`
//! sends to Envoy, printed as text or JSON.

use std::path::PathBuf;
use std::process::ExitCode;

use super::Format;
use super::table::table;
use crate::status::explain::{ListenerRoutes, routes};

#[derive(clap::Args)]
pub struct Args {
    /// Directory of Gloo manifests.
    dir: PathBuf,
    /// Only this proxy: `<namespace>~<proxyName>`, or a proxy name that is unambiguous.
    #[arg(long)]
    proxy: Option<String>,
    /// `text` (one table per listener) or `json`.
    #[arg(long, value_enum, default_value = "text")]
    output: Format,
}

/// Prints the tables; exit 1 when the manifests are invalid.
pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let load = super::load(&a.dir)?;
    super::report(&load);
    if let Err(code) = super::require_valid(&load) {
        return Ok(code);
    }
    let (Some(out), Some(model)) = (load.output.as_ref(), load.model.as_ref()) else {
        anyhow::bail!("the manifests are valid but produced no translation");
    };
    let tables = routes(out, model, a.proxy.as_deref())?;
    match a.output {
        Format::Json => {
            let v = serde_json::json!({ "listeners": tables });
            super::outln(&serde_json::to_string_pretty(&v)?)?;
        }
        Format::Text => super::out(&render_text(&tables))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// One table per listener.
pub fn render_text(tables: &[ListenerRoutes]) -> String {
    let mut out = String::new();
    for (i, t) in tables.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!(
            "{} {} (gateway {}; routes {}; websocket {} by default)\n",
            t.proxy,
            t.listener,
            t.gateway.as_deref().unwrap_or("?"),
            t.route_config,
            if t.websocket_default { "on" } else { "off" }
        ));
        let mut rows = vec![[
            "DOMAINS".to_string(),
            "MATCHER".into(),
            "DESTINATION".into(),
            "WEBSOCKET".into(),
            "SOURCE".into(),
        ]];
        for r in &t.routes {
            let source = match (&r.file, r.line) {
                (Some(f), Some(l)) => format!("{f}:{l}"),
                _ => String::new(),
            };
            rows.push([
                r.domains.join(","),
                r.matcher.clone(),
                r.destination.clone(),
                r.websocket_reason.clone(),
                source,
            ]);
        }
        out.push_str(&table(&rows));
    }
    out
}
