//! `edgeplane translate`: the Envoy resources a manifests directory
//! translates to, as proto3 JSON (as Envoy's `/config_dump` shows them).

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Directory of Gloo manifests.
    dir: PathBuf,
    /// Only this proxy: `<namespace>~<proxyName>`, or a proxy name that is unambiguous.
    #[arg(long)]
    proxy: Option<String>,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let load = super::load(&a.dir)?;
    super::report(&load);
    if let Err(code) = super::require_valid(&load) {
        return Ok(code);
    }
    let Some(output) = load.output.as_ref() else {
        anyhow::bail!("the manifests are valid but produced no translation");
    };
    let json = crate::translate::json::resources_json(output, a.proxy.as_deref())?;
    super::outln(&serde_json::to_string_pretty(&json)?)?;
    Ok(ExitCode::SUCCESS)
}
