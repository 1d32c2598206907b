//! `edgeplane validate`: the manifests checked exactly as `serve` would
//! load them. Text on stderr (compiler-style, with source lines) or JSON on
//! stdout; exit 0 valid, 1 invalid, 2 could not run. A directory with no
//! manifests at all is an error too (a wrong path must not pass CI), and
//! `--strict` fails on warnings, as Gloo's strict validation does.

use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;

use super::Format;
use crate::diag::{Diagnostic, Pos};
use crate::status::api;

#[derive(clap::Args)]
pub struct Args {
    /// Directory of Gloo manifests.
    dir: PathBuf,
    /// `text` (compiler-style, on stderr) or `json` (on stdout).
    #[arg(long, value_enum, default_value = "text")]
    output: Format,
    /// Fail on warnings too (Gloo's strict validation), e.g. a route to an
    /// Upstream that does not exist.
    #[arg(long)]
    strict: bool,
    /// Accept a directory without any manifest (by default that fails: a
    /// wrong path must not pass as valid).
    #[arg(long)]
    allow_empty: bool,
}

/// `validate --output json`: the diagnostics in the shape `/status` and
/// the status API use.
#[derive(Serialize)]
struct Report {
    valid: bool,
    files: usize,
    diagnostics: Vec<api::Diagnostic>,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let mut load = super::load(&a.dir)?;
    if load.documents == 0 && !load.has_errors() && !a.allow_empty {
        load.diagnostics.push(
            Diagnostic::error(
                Pos::new(&a.dir, 0, 0),
                None,
                format!(
                    "no manifests: {} YAML file(s) and not one Gloo resource in them",
                    load.files.len()
                ),
            )
            .with_hint("is this the right directory? --allow-empty accepts an empty one"),
        );
    }
    let errors = load.diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = load.diagnostics.len() - errors;
    let valid = errors == 0 && !(a.strict && warnings > 0);
    match a.output {
        Format::Json => {
            let report = Report {
                valid,
                files: load.files.len(),
                diagnostics: load.diagnostics.iter().map(Into::into).collect(),
            };
            super::outln(&serde_json::to_string(&report)?)?;
        }
        Format::Text => {
            super::report(&load);
            let verdict = match (valid, a.strict && warnings > 0) {
                (true, _) => "valid",
                (false, true) if errors == 0 => "invalid (--strict: warnings fail)",
                (false, _) => "invalid",
            };
            let counts = if errors > 0 {
                format!("{errors} error(s), {warnings} warning(s)")
            } else {
                format!("{warnings} warning(s)")
            };
            eprintln!("{} file(s): {counts}: {verdict}", load.files.len());
        }
    }
    Ok(if valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
