//! `edgeplane apply -f PATH…` and `edgeplane delete`: the write path to
//! etcd, Gloo's validating webhook with the check and the write as one
//! step. Read the whole store at revision R, apply (or remove) the
//! documents, run the same parse → validate → translate `build` on the
//! whole resulting config, refuse on errors (and with `--strict` on
//! warnings), then write every change in ONE transaction guarded against
//! any concurrent writer (`source::etcd::write`). A failed guard means the
//! store moved: read, validate and try again, `--retries` times.
//!
//! Exit codes: 0 written (or nothing to write, or `--dry-run`); 1 refused
//! (invalid, not found, or over etcd's transaction limits); 2 could not
//! run (etcd unreachable, unreadable input); 3 conflict: the store kept
//! changing under the apply through every retry, nothing was written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context;

use super::etcd_flags::EtcdArgs;
use crate::diag::{Code, Diagnostic, Pos};
use crate::manifest::Kind;
use crate::pipeline::apply::{
    Plan, given_documents, key_of, plan_apply, plan_delete, render_changes,
};
use crate::source::SourceFile;
use crate::source::etcd::store::Entry;
use crate::source::etcd::write::{
    DEFAULT_MAX_REQUEST_BYTES, DEFAULT_MAX_TXN_OPS, TxnLimits, Write,
};
use crate::source::etcd::{EtcdConfig, Store, StoreError};

/// Exit code of a conflict that outlived every retry.
pub const EXIT_CONFLICT: u8 = 3;

/// Test hook: before its first commit, `apply` writes `<dir>/validated`
/// (holding the revision it read) and waits for `<dir>/go`, so a test can
/// put another writer between the read and the write deterministically.
pub const PAUSE_ENV: &str = "EDGEPLANE_TEST_APPLY_PAUSE_DIR";

/// What `apply` and `delete` share besides the etcd flags.
#[derive(clap::Args, Clone, Debug)]
pub struct WriteArgs {
    /// Refuse on warnings too (Gloo's strict validation).
    #[arg(long)]
    strict: bool,
    /// Validate and print the diff (created, changed, deleted keys); write nothing.
    #[arg(long)]
    dry_run: bool,
    /// When another writer changed the store since the read: read, validate
    /// and try again this many times, then give up (exit 3).
    #[arg(long, default_value_t = 3)]
    retries: u32,
    /// etcd's --max-txn-ops (most operations, and compares, in one
    /// transaction). Raise it here only once every member runs with it.
    #[arg(long, default_value_t = DEFAULT_MAX_TXN_OPS, env = "EDGEPLANE_ETCD_MAX_TXN_OPS")]
    max_txn_ops: usize,
    /// etcd's --max-request-bytes (1.5 MiB by default), e.g. `4MiB`.
    /// Raise it here only once every member runs with it.
    #[arg(long, default_value_t = DEFAULT_MAX_REQUEST_BYTES, env = "EDGEPLANE_ETCD_MAX_REQUEST_BYTES",
          value_parser = super::serve::parse_bytes)]
    max_request_bytes: usize,
}

#[derive(clap::Args)]
pub struct Args {
    /// Manifest files or directories (directories are read as `serve
    /// --config-dir` reads them).
    #[arg(short = 'f', long = "filename", required = true, num_args = 1.., value_name = "PATH")]
    files: Vec<PathBuf>,
    #[command(flatten)]
    write: WriteArgs,
    #[command(flatten)]
    etcd: EtcdArgs,
}

#[derive(clap::Args)]
pub struct DeleteArgs {
    /// Delete the resources these manifest files or directories name.
    #[arg(short = 'f', long = "filename", num_args = 1.., value_name = "PATH",
          required_unless_present = "resource", conflicts_with = "resource")]
    files: Vec<PathBuf>,
    /// Or one resource: KIND NAMESPACE NAME (e.g. `Upstream gloo-system echo`).
    #[arg(num_args = 3, value_names = ["KIND", "NAMESPACE", "NAME"])]
    resource: Vec<String>,
    /// Skip resources that are not stored instead of refusing.
    #[arg(long)]
    ignore_not_found: bool,
    /// Delete even when what remains refers to what is deleted (by default
    /// that is refused, as Gloo's validating webhook refuses it).
    #[arg(long)]
    allow_broken_references: bool,
    #[command(flatten)]
    write: WriteArgs,
    #[command(flatten)]
    etcd: EtcdArgs,
}

/// Reads the paths given with `-f`: directories as `serve --config-dir`
/// reads them, files as they are. Problems are diagnostics.
pub(crate) fn read_paths(paths: &[PathBuf]) -> (Vec<SourceFile>, Vec<Diagnostic>) {
    let mut files = Vec::new();
    let mut diags = Vec::new();
    for p in paths {
        if p.is_dir() {
            let (f, d) = crate::source::load_dir(p);
            files.extend(f);
            diags.extend(d);
        } else {
            match std::fs::read_to_string(p) {
                Ok(text) => files.push(SourceFile {
                    path: p.clone(),
                    text,
                }),
                Err(e) => diags.push(
                    Diagnostic::error(Pos::new(p, 0, 0), None, format!("cannot read: {e}"))
                        .with_code(Code::Unreadable),
                ),
            }
        }
    }
    (files, diags)
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let cfg = a.etcd.require()?;
    let (files, diags) = read_paths(&a.files);
    if files.is_empty() && diags.is_empty() {
        anyhow::bail!("no manifests found in the paths given");
    }
    let prefix = cfg.prefix.clone();
    super::runtime()?.block_on(write_loop(&cfg, &a.write, "apply", |current| {
        Ok(plan_apply(&prefix, current, files.clone(), diags.clone()))
    }))
}

pub fn run_delete(a: DeleteArgs) -> anyhow::Result<ExitCode> {
    let cfg = a.etcd.require()?;
    let prefix = cfg.prefix.clone();
    let keys: Vec<(String, String)> = if a.resource.is_empty() {
        let (files, diags) = read_paths(&a.files);
        let check = crate::pipeline::build(files.clone(), diags);
        if crate::diag::has_errors(&check.diagnostics) {
            super::report(&check);
            eprintln!("cannot tell which resources to delete: the files given have errors");
            return Ok(ExitCode::from(1));
        }
        given_documents(&prefix, &files)
            .into_iter()
            .map(|g| (g.key.clone(), format!("{}:{}", g.path.display(), g.line)))
            .collect()
    } else {
        let [kind, ns, name] = &a.resource[..] else {
            anyhow::bail!("give KIND NAMESPACE NAME");
        };
        let kind: Kind = parse_kind(kind)?;
        vec![(
            key_of(&prefix, kind, ns, name),
            format!("{kind} {ns}.{name}"),
        )]
    };
    let ignore = a.ignore_not_found;
    let allow_broken = a.allow_broken_references;
    super::runtime()?.block_on(write_loop(&cfg, &a.write, "delete", |current| {
        let missing: Vec<_> = keys
            .iter()
            .filter(|(k, _)| !current.contains_key(k))
            .collect();
        if !missing.is_empty() && !ignore {
            for (k, what) in &missing {
                eprintln!("not found: {what} (no key {k})");
            }
            eprintln!("nothing deleted (--ignore-not-found skips missing resources)");
            return Err(ExitCode::from(1));
        }
        let ks: Vec<String> = keys.iter().map(|(k, _)| k.clone()).collect();
        let mut plan = plan_delete(&prefix, current, &ks);
        if !allow_broken {
            // A delete that breaks a reference (an Upstream a route still
            // uses) is refused, as Gloo's webhook refuses it: the warnings
            // the delete introduces count as errors.
            let before = plan_delete(&prefix, current, &[]);
            let had: std::collections::BTreeSet<_> = before
                .load
                .diagnostics
                .iter()
                .map(|d| (d.resource.clone(), d.message.clone()))
                .collect();
            let new: Vec<_> = plan
                .load
                .diagnostics
                .iter()
                .filter(|d| !d.is_error() && !had.contains(&(d.resource.clone(), d.message.clone())))
                .cloned()
                .collect();
            if !new.is_empty() {
                plan.load.diagnostics = new;
                super::report(&plan.load);
                eprintln!(
                    "refused: deleting would break {} reference(s) still in use; nothing deleted (--allow-broken-references deletes anyway)",
                    plan.load.diagnostics.len()
                );
                return Err(ExitCode::from(1));
            }
        }
        Ok(plan)
    }))
}

/// A kind by its name or Gloo's plural, any case (`upstream`, `Upstream`, `upstreams`).
pub(crate) fn parse_kind(s: &str) -> anyhow::Result<Kind> {
    Kind::ALL
        .into_iter()
        .find(|k| k.as_str().eq_ignore_ascii_case(s) || k.plural().eq_ignore_ascii_case(s))
        .with_context(|| {
            format!(
                "unknown kind `{s}` (one of: {})",
                Kind::ALL.map(Kind::as_str).join(", ")
            )
        })
}

/// How long a read keeps going round the members when none answers: a
/// leader election takes 1.5–2 s (`shared/reference/etcd.md` §3), a
/// restarted member a few seconds.
const READ_WAIT: Duration = Duration::from_secs(15);

/// The list at R and the generation key's mod revision at R, moving to
/// the next member on failure; once every member has failed, round again
/// after a growing pause, for `READ_WAIT` at most.
pub(crate) async fn read(
    store: &mut Store,
    prefix: &str,
) -> Result<(crate::source::etcd::store::Listing, i64), StoreError> {
    let mut compactions = 0;
    let end = tokio::time::Instant::now() + READ_WAIT;
    let mut pause = Duration::from_millis(100);
    loop {
        let r = async {
            let l = store.list(prefix).await?;
            let g = store.generation(prefix, l.revision).await?;
            Ok::<_, StoreError>((l, g))
        }
        .await;
        match r {
            Ok(x) => return Ok(x),
            Err(e) if e.is_compacted() && compactions < 3 => compactions += 1,
            Err(e) => {
                tracing::warn!(endpoint = store.endpoint(), error = %e, "etcd read failed");
                if store.fail_over() {
                    if tokio::time::Instant::now() + pause > end {
                        return Err(e);
                    }
                    eprintln!(
                        "no etcd member answered ({e}); trying again in {} ms",
                        pause.as_millis()
                    );
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
}

fn generation_value(command: &str, digest: &str, changes: usize) -> Vec<u8> {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let when = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    serde_json::json!({
        "who": format!("{user}@{host}"),
        "when": when,
        "command": command,
        "changes": changes,
        "digest": format!("sha256:{digest}"),
    })
    .to_string()
    .into_bytes()
}

async fn pause_for_test(revision: i64) {
    let Some(dir) = std::env::var_os(PAUSE_ENV) else {
        return;
    };
    let dir = Path::new(&dir);
    if let Err(e) = std::fs::write(dir.join("validated"), revision.to_string()) {
        tracing::warn!(error = %e, "test hook: cannot write {}", dir.display());
        return;
    }
    for _ in 0..3000 {
        if dir.join("go").exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Read → plan (validate) → guarded write, retried on conflicts.
async fn write_loop(
    cfg: &EtcdConfig,
    opts: &WriteArgs,
    command: &str,
    mut plan: impl FnMut(&BTreeMap<String, Entry>) -> Result<Plan, ExitCode>,
) -> anyhow::Result<ExitCode> {
    let mut store = Store::new(cfg)?;
    let prefix = cfg.prefix.as_str();
    let limits = TxnLimits {
        max_txn_ops: opts.max_txn_ops,
        max_request_bytes: opts.max_request_bytes,
    };
    for attempt in 0..=opts.retries {
        let (listing, generation) = read(&mut store, prefix)
            .await
            .with_context(|| format!("cannot read {prefix}/ from etcd"))?;
        let p = match plan(&listing.entries) {
            Ok(p) => p,
            Err(code) => return Ok(code),
        };
        let errors = p.load.diagnostics.iter().filter(|d| d.is_error()).count();
        let warnings = p.load.diagnostics.len() - errors;
        if errors > 0 || (opts.strict && warnings > 0) {
            super::report(&p.load);
            let why = if errors > 0 {
                format!("{errors} error(s), {warnings} warning(s)")
            } else {
                format!("{warnings} warning(s) (--strict)")
            };
            eprintln!(
                "refused: the resulting config (revision {}) has {why}; nothing written",
                listing.revision
            );
            return Ok(ExitCode::from(1));
        }
        if attempt == 0 {
            super::report(&p.load);
        }
        let (created, deleted) = (
            p.changes.iter().filter(|c| c.old.is_none()).count(),
            p.changes.iter().filter(|c| c.new.is_none()).count(),
        );
        let changed = p.changes.len() - created - deleted;
        let counts = format!("{created} created, {changed} changed, {deleted} deleted");
        if p.changes.is_empty() {
            eprintln!(
                "no changes: the store at revision {} already holds this; nothing written",
                listing.revision
            );
            return Ok(ExitCode::SUCCESS);
        }
        if opts.dry_run {
            super::out(&render_changes(&p.changes))?;
            eprintln!(
                "dry run against revision {}: {counts}; valid; nothing written",
                listing.revision
            );
            return Ok(ExitCode::SUCCESS);
        }
        let w = Write {
            revision: listing.revision,
            generation,
            generation_value: generation_value(command, &p.digest(), p.changes.len()),
            keys: p.changes.iter().map(|c| c.key_write()).collect(),
        };
        if let Err(e) = w.check(prefix, limits) {
            eprintln!("refused: {e}; nothing written");
            return Ok(ExitCode::from(1));
        }
        if attempt == 0 {
            pause_for_test(listing.revision).await;
        }
        match store.commit(prefix, &w).await {
            Ok(Some(revision)) => {
                for c in &p.changes {
                    eprintln!("{} {}", c.verb(), c.key);
                }
                eprintln!("{command}: {counts}; committed at revision {revision}");
                tracing::debug!(revision, "committed");
                return Ok(ExitCode::SUCCESS);
            }
            Ok(None) => {
                eprintln!(
                    "conflict: the store changed after revision {} (another writer); {}",
                    listing.revision,
                    if attempt < opts.retries {
                        "reading it again and re-validating"
                    } else {
                        "giving up"
                    }
                );
            }
            Err(e) if attempt < opts.retries => {
                // Safe to retry: had it committed, the guard now fails or
                // the new read shows nothing left to write.
                eprintln!(
                    "the etcd transaction failed ({e}); whether it committed is unknown: reading the store again"
                );
                store.fail_over();
            }
            Err(e) => {
                return Err(anyhow::Error::new(e).context(
                    "the etcd transaction failed; whether it committed is unknown (`edgeplane apply --dry-run` shows what is left to write)",
                ));
            }
        }
    }
    eprintln!(
        "conflict: the store kept changing through {} attempt(s); nothing written (exit {EXIT_CONFLICT})",
        opts.retries + 1
    );
    Ok(ExitCode::from(EXIT_CONFLICT))
}
