//! `edgeplane schema`: the manifests' JSON Schemas (`manifest::schema`)
//! written into a directory for editors, `all.json` on stdout, or the
//! Markdown field list (`docs/FIELDS.md`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::manifest::schema;

#[derive(clap::Args)]
pub struct Args {
    /// Directory to write the schema files into.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Print the list of supported and refused Gloo fields as Markdown
    /// (docs/FIELDS.md) instead.
    #[arg(long, conflicts_with = "out")]
    fields: bool,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    if a.fields {
        super::out(&schema::fields_markdown())?;
        return Ok(ExitCode::SUCCESS);
    }
    match a.out {
        None => super::outln(&serde_json::to_string_pretty(&schema::all_schema())?)?,
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            for (name, schema) in schema::all_files() {
                let path = dir.join(&name);
                let mut text = serde_json::to_string_pretty(&schema)?;
                text.push('\n');
                std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?;
                super::outln(&path.display().to_string())?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
