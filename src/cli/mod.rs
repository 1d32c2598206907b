//! The `edgeplane` command line: one module per subcommand, each with its
//! clap `Args` and a `run`. What they share is here: the one way to load a
//! manifests directory and report its diagnostics (`load`, `report`),
//! `--output` formats as clap `ValueEnum`s, stdout that ends quietly when
//! the reader goes away (`out`), and error chains printed once per cause
//! (`error_chain`).

pub mod apply;
pub mod bootstrap;
pub mod check;
pub mod demo;
pub mod etcd_flags;
pub mod export;
pub mod get;
pub mod routes;
pub mod schema;
pub mod serve;
pub mod status;
mod table;
pub mod translate;
pub mod validate;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use crate::pipeline::Load;

#[derive(Parser)]
#[command(
    name = "edgeplane",
    version,
    about = "An xDS control plane for Envoy that serves Gloo Edge-style manifests"
)]
pub struct Cli {
    /// Log as JSON lines instead of text (verbosity: RUST_LOG, default info).
    #[arg(long, global = true)]
    pub log_json: bool,
    #[command(subcommand)]
    pub command: Command,
}

// `Serve`'s flags are large next to the others; parsed once at start, so
// the size of the enum does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum Command {
    /// Watch a manifests directory and serve it to Envoy over ADS.
    Serve(serve::Args),
    /// Check a manifests directory; exit 0 when valid, 1 when not, 2 when it could not run.
    Validate(validate::Args),
    /// Print the Envoy resources generated from a manifests directory, as proto3 JSON
    /// (as Envoy's /config_dump shows them); exit 1 when the manifests are invalid.
    Translate(translate::Args),
    /// Print each listener's effective routing table: domains, matcher,
    /// destination, WebSocket state and why, and each route's source line
    /// (exit 1 when the manifests are invalid).
    Routes(routes::Args),
    /// Print an Envoy bootstrap that connects to `edgeplane serve`.
    Bootstrap(bootstrap::Args),
    /// Run the demo backend: plain HTTP answers and a WebSocket echo on one port.
    EchoBackend(demo::EchoArgs),
    /// Show every resource's status (Accepted, Warning, Rejected) and the
    /// connected Envoys' ACKs and NACKs, like `glooctl get`.
    Status(status::Args),
    /// Exit 0 only when every resource is Accepted and no connected Envoy
    /// holds a NACK (1 otherwise, with the problems; 2 when edgeplane cannot
    /// be reached), like `glooctl check`: a gate for CI and deploys.
    Check(check::Args),
    /// Write JSON Schemas of the manifests (one per kind, and `all.json`)
    /// for editors; prints `all.json` to stdout without --out.
    Schema(schema::Args),
    /// Write manifests to etcd: validate the whole resulting config, then
    /// one guarded transaction (exit 0 written, 1 refused, 2 could not
    /// run, 3 conflict after retries).
    Apply(apply::Args),
    /// Delete resources from etcd (by file or KIND NAMESPACE NAME), validated
    /// like `apply` (exit codes as `apply`).
    Delete(apply::DeleteArgs),
    /// List the documents stored in etcd (`-o yaml|json`).
    Get(get::Args),
    /// Write the documents stored in etcd to a directory `serve --config-dir` reads.
    Export(export::Args),
    /// Send one WebSocket message and print the reply; with --interactive,
    /// keep the connection open and send each line read from stdin.
    WsClient(demo::WsClientArgs),
}

/// `--output` of the commands that print text or JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

pub fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Runs one subcommand. `Err` is a failure to run at all (exit 2); a
/// finding (invalid manifests, a Rejected resource) is an exit code.
pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Serve(a) => serve::run(a),
        Command::Validate(a) => validate::run(a),
        Command::Translate(a) => translate::run(a),
        Command::Routes(a) => routes::run(a),
        Command::Bootstrap(a) => bootstrap::run(a),
        Command::EchoBackend(a) => demo::run_echo(a),
        Command::Status(a) => status::run(a),
        Command::Check(a) => check::run(a),
        Command::Schema(a) => schema::run(a),
        Command::WsClient(a) => demo::run_ws_client(a),
        Command::Apply(a) => apply::run(a),
        Command::Delete(a) => apply::run_delete(a),
        Command::Get(a) => get::run(a),
        Command::Export(a) => export::run(a),
    }
}

/// What `main` makes of a failed command: the exit code and what to print.
pub fn exit_for(e: &anyhow::Error) -> (ExitCode, Option<String>) {
    if is_closed_stdout(e) {
        // The reader went away (`| head`): nothing is wrong.
        return (ExitCode::SUCCESS, None);
    }
    (ExitCode::from(2), Some(error_chain(e)))
}

/// True when `e` comes from writing to a stdout nobody reads any more.
fn is_closed_stdout(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// `e` and its causes, `: `-separated, each said once: a cause whose text
/// an outer message already contains (libraries often repeat their source
/// in their own message) is not repeated.
pub fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Writes `text` to stdout. A closed stdout is an error `main` turns into a
/// quiet exit, never a panic.
pub(crate) fn out(text: &str) -> anyhow::Result<()> {
    write_stdout(&[text])
}

/// `text` and a newline, to stdout (see `out`).
pub(crate) fn outln(text: &str) -> anyhow::Result<()> {
    write_stdout(&[text, "\n"])
}

fn write_stdout(parts: &[&str]) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    parts
        .iter()
        .try_for_each(|p| stdout.write_all(p.as_bytes()))
        .and_then(|()| stdout.flush())
        .context("cannot write to stdout")
}

/// A multi-threaded runtime for the commands that talk to the network.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// A manifests directory given on the command line.
#[derive(Debug, thiserror::Error)]
#[error("{}: not a directory (give the directory that holds the manifests)", .0.display())]
pub struct NotADirectory(pub PathBuf);

/// The one way the commands load manifests: read, parse, validate and
/// translate `dir` exactly as `serve` would.
pub(crate) fn load(dir: &Path) -> Result<Load, NotADirectory> {
    if !dir.is_dir() {
        return Err(NotADirectory(dir.to_path_buf()));
    }
    Ok(crate::pipeline::load_dir(dir))
}

/// Every diagnostic of `load`, with its source line, on stderr.
pub(crate) fn report(load: &Load) {
    if !load.diagnostics.is_empty() {
        eprintln!("{}\n", load.render_diagnostics());
    }
}

/// `Err(exit 1)` with the summary line on stderr when `load` has errors.
pub(crate) fn require_valid(load: &Load) -> Result<(), ExitCode> {
    if !load.has_errors() {
        return Ok(());
    }
    let errors = load.diagnostics.iter().filter(|d| d.is_error()).count();
    eprintln!("{} file(s): {errors} error(s): invalid", load.files.len());
    Err(ExitCode::from(1))
}

/// A duration flag: `2s`, `500ms`, `1m` (Gloo's duration syntax).
pub(crate) fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let d = crate::model::Duration::parse(s)?;
    Ok(std::time::Duration::new(
        d.seconds.max(0) as u64,
        d.nanos.max(0) as u32,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer: {0}")]
    struct Repeats(#[source] std::io::Error);

    #[test]
    fn each_cause_is_said_once() {
        let io = std::io::Error::new(std::io::ErrorKind::AddrInUse, "Address already in use");
        let e = anyhow::Error::new(Repeats(io)).context("cannot start");
        assert_eq!(
            error_chain(&e),
            "cannot start: outer: Address already in use"
        );
    }

    #[test]
    fn serve_takes_a_directory_or_etcd_never_both() {
        let parse = |args: &[&str]| Cli::try_parse_from(["edgeplane", "serve"].iter().chain(args));
        assert!(parse(&["--config-dir", "d"]).is_ok());
        assert!(parse(&["--etcd-endpoints", "http://a:2379,http://b:2379"]).is_ok());
        assert!(
            parse(&[
                "--etcd-endpoints",
                "http://a:2379",
                "--etcd-prefix",
                "gloo",
                "--etcd-user",
                "u",
                "--etcd-password",
                "p"
            ])
            .is_ok()
        );
        assert!(parse(&["--config-dir", "d", "--etcd-endpoints", "http://a:2379"]).is_err());
        assert!(parse(&[]).is_err(), "one source is required");
        // etcd options need etcd; a certificate needs its key.
        assert!(parse(&["--config-dir", "d", "--etcd-prefix", "gloo"]).is_err());
        assert!(parse(&["--etcd-endpoints", "http://a:2379", "--etcd-cert", "c.pem"]).is_err());
        assert!(parse(&["--etcd-endpoints", "http://a:2379", "--etcd-user", "u"]).is_err());
    }

    #[test]
    fn the_write_commands_share_the_etcd_flags() {
        let parse = |args: &[&str]| Cli::try_parse_from(["edgeplane"].iter().chain(args));
        let e = ["--etcd-endpoints", "http://a:2379", "--etcd-prefix", "gloo"];
        let with = |head: &[&'static str]| [head, &e[..]].concat();
        assert!(parse(&with(&["apply", "-f", "a.yaml", "b/"])).is_ok());
        assert!(parse(&with(&["apply", "--dry-run", "--strict", "-f", "a"])).is_ok());
        assert!(parse(&with(&["apply"])).is_err(), "-f is required");
        assert!(parse(&with(&["delete", "Upstream", "ns", "u"])).is_ok());
        assert!(parse(&with(&["delete", "-f", "a.yaml"])).is_ok());
        assert!(parse(&with(&["delete", "Upstream", "ns"])).is_err());
        assert!(parse(&with(&["delete", "Upstream", "ns", "u", "-f", "a"])).is_err());
        assert!(parse(&with(&["get", "Upstream", "-o", "json"])).is_ok());
        assert!(parse(&with(&["export", "out", "--force"])).is_ok());
        assert!(parse(&["get", "--etcd-cert", "c.pem"]).is_err());
    }

    #[test]
    fn a_closed_stdout_is_a_quiet_success() {
        let e = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
            .context("cannot write to stdout");
        let (code, message) = exit_for(&e);
        assert_eq!(code, ExitCode::SUCCESS);
        assert_eq!(message, None);
    }
}
