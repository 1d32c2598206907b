//! `edgeplane routes`: the effective routing table of each listener
//! (`crate::explain`), from the same validation and translation `serve`
//! sends to Envoy, printed as text or JSON.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

pub use crate::explain::{ListenerRoutes, RouteRow, routes};
use crate::status_cli::table;

/// `edgeplane routes`: prints the tables; exit 1 when the manifests are
/// invalid.
pub fn run(dir: &Path, proxy: Option<&str>, output: &str) -> anyhow::Result<ExitCode> {
    let json = match output {
        "json" => true,
        "text" => false,
        other => anyhow::bail!("--output {other}: expected text or json"),
    };
    if !dir.is_dir() {
        anyhow::bail!("{} is not a directory", dir.display());
    }
    let load = crate::pipeline::load_dir(dir);
    if !load.diagnostics.is_empty() {
        eprintln!("{}\n", load.render_diagnostics());
    }
    let (Some(out), Some(model)) = (
        load.output.as_ref().filter(|_| !load.has_errors()),
        load.model.as_ref(),
    ) else {
        let errors = load.diagnostics.iter().filter(|d| d.is_error()).count();
        eprintln!("{} file(s): {errors} error(s): invalid", load.files.len());
        return Ok(ExitCode::from(1));
    };
    let tables = routes(out, model, proxy)?;
    if json {
        let v = serde_json::json!({ "listeners": tables });
        let text = serde_json::to_string_pretty(&v).context("cannot print the JSON")?;
        println!("{text}");
    } else {
        print!("{}", render_text(&tables));
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
