//! `edgeplane export DIR`: every document stored in etcd written to
//! `DIR/<plural>/<namespace>/<name>.yaml` (Gloo's directory layout), as
//! stored, so `serve --config-dir DIR` serves what `serve
//! --etcd-endpoints` serves. Checked before it returns: DIR is read back
//! and built, and its snapshot generation must equal the store's (exit 1
//! otherwise, naming what differs).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use super::etcd_flags::EtcdArgs;
use crate::manifest::Kind;
use crate::source::etcd::files_of;
use crate::source::etcd::layout::parse_key;

#[derive(clap::Args)]
pub struct Args {
    /// The directory to write (created if needed; must be empty unless --force).
    dir: PathBuf,
    /// Write into a non-empty directory (files of the same names are replaced).
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    etcd: EtcdArgs,
}

/// The file a key's document is exported to, relative to the directory.
pub fn export_path(prefix: &str, key: &str) -> Option<PathBuf> {
    let parts = parse_key(prefix, key).ok()?;
    let kind: Kind = parts.kind.parse().ok()?;
    let safe = |s: &str| !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\\']);
    (safe(parts.namespace) && safe(parts.name)).then(|| {
        Path::new(kind.plural())
            .join(parts.namespace)
            .join(format!("{}.yaml", parts.name))
    })
}

fn is_empty_dir(dir: &Path) -> anyhow::Result<bool> {
    match std::fs::read_dir(dir) {
        Ok(mut it) => Ok(it.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", dir.display())),
    }
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    if !a.force && !is_empty_dir(&a.dir)? {
        eprintln!(
            "{}: not empty; export writes into an empty directory (--force writes anyway)",
            a.dir.display()
        );
        return Ok(ExitCode::from(1));
    }
    let (prefix, listing) = super::get::list(a.etcd)?;
    let mut written = 0;
    let mut skipped = 0;
    for (key, e) in &listing.entries {
        let Some(rel) = export_path(&prefix, key) else {
            eprintln!("skipped: {key} is no manifest key edgeplane reads");
            skipped += 1;
            continue;
        };
        let path = a.dir.join(&rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, &e.value)
            .with_context(|| format!("cannot write {}", path.display()))?;
        written += 1;
    }
    // Read back: the directory must build to the store's snapshot.
    let (files, diags) = files_of(&prefix, &listing.entries);
    let stored = crate::pipeline::build(files, diags);
    let exported = crate::pipeline::load_dir(&a.dir);
    let generation = |l: &crate::pipeline::Load| l.snapshot.as_ref().map(|s| s.generation());
    eprintln!(
        "exported {written} document(s) from revision {} to {}{}",
        listing.revision,
        a.dir.display(),
        if skipped > 0 {
            format!(" ({skipped} key(s) skipped)")
        } else {
            String::new()
        }
    );
    if generation(&stored) != generation(&exported) {
        super::report(&exported);
        eprintln!(
            "the exported directory does not build to what the store serves (generation {:?} vs {:?}): a flat-form document without metadata.name cannot be expressed in a directory",
            generation(&exported),
            generation(&stored)
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
