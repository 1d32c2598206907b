//! `cargo bench --bench report`: edgeplane's benchmarks, written to
//! `bench/REPORT.md`.
//!
//! Every figure is printed beside a baseline measured in the same run
//! (bare prost encoding, Envoy's own filesystem xDS reload, two peer
//! control planes, a WebSocket client talking to the backend directly, edgeplane's
//! directory source for its etcd source, edgeplane itself at a tenth of the
//! size for the fan-out's 10,000 streams and the scale section's 100,000
//! routes), so the ratios mean something on
//! whatever machine runs it. Nothing here is a test: no figure is asserted;
//! targets missed are reported, with by how much.
//!
//! Run through `scripts/bench` (installs Envoy, builds the peers); plain
//! `cargo test --all-targets` builds this file but runs nothing (cargo passes
//! `--bench` only under `cargo bench`).

mod adsclient;
mod etcd;
mod fanout;
mod r#gen;
mod latency;
mod memory;
mod parse;
mod procs;
mod scale;
mod servers;
mod stack;
mod stats_sink;
mod translate;
mod websocket;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};

/// What every section gets.
pub struct Ctx {
    /// Smaller sizes and fewer repetitions (a smoke run of the harness).
    pub quick: bool,
    /// The `edgeplane` binary built by this `cargo bench`.
    pub edgeplane_bin: PathBuf,
    /// Envoy: `ENVOY_BIN`, else the project's `.venv/bin/envoy`.
    pub envoy_bin: PathBuf,
    /// The peer control plane (`bench/peer`: rust-control-plane 0.1.2,
    /// context only), when built.
    pub peer_bin: Option<PathBuf>,
    /// The stronger peer (`bench/peer-nebucloud`: nebucloud-xds), the one
    /// the report compares with: built, not built (and why), or not given.
    pub peer2: PeerBin,
    /// Scratch space, removed at the end.
    pub work: PathBuf,
}

/// A peer's binary as `scripts/bench` handed it over.
pub enum PeerBin {
    Built(PathBuf),
    /// Its build failed; the reason, as the report prints it.
    NotBuilt(String),
    NotGiven,
}

/// One section of the report.
pub struct Section {
    pub title: String,
    /// Markdown: how it was measured, a table of figures with baselines and
    /// ratios, and the targets (met, or missed by how much and why).
    pub body: String,
}

type SectionFn =
    fn(&Ctx) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Section>> + '_>>;

const SECTIONS: [(&str, SectionFn); 9] = [
    ("translate", |c| Box::pin(translate::run(c))),
    ("parse", |c| Box::pin(parse::run(c))),
    ("latency", |c| Box::pin(latency::run(c))),
    ("fanout", |c| Box::pin(fanout::run(c))),
    ("memory", |c| Box::pin(memory::run(c))),
    ("scale", |c| Box::pin(scale::run(c))),
    ("websocket", |c| Box::pin(websocket::run(c))),
    ("etcd", |c| Box::pin(etcd::run(c))),
    ("sink", |c| Box::pin(stats_sink::run(c))),
];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(parse::PEAK_RSS_OF) {
        return parse::peak_rss_main(&args[1..]);
    }
    if !args.iter().any(|a| a == "--bench") {
        println!(
            "report: a benchmark; run it with `scripts/bench` or `cargo bench --bench report`"
        );
        return Ok(());
    }
    let quick = args.iter().any(|a| a == "--quick");
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let only: Option<Vec<String>> =
        value("--only").map(|s| s.split(',').map(str::to_string).collect());
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = value("--out")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("bench/REPORT.md"));
    let envoy_bin = std::env::var_os("ENVOY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".venv/bin/envoy"));
    anyhow::ensure!(
        envoy_bin.is_file(),
        "Envoy not found at {} (run scripts/setup or set ENVOY_BIN)",
        envoy_bin.display()
    );
    let peer_bin = value("--peer").map(PathBuf::from);
    if let Some(p) = &peer_bin {
        anyhow::ensure!(p.is_file(), "--peer {} does not exist", p.display());
    }
    let peer2 = match (value("--peer2"), value("--peer2-not-built")) {
        (Some(p), _) => {
            let p = PathBuf::from(p);
            anyhow::ensure!(p.is_file(), "--peer2 {} does not exist", p.display());
            PeerBin::Built(p)
        }
        (None, Some(why)) => PeerBin::NotBuilt(why),
        (None, None) => PeerBin::NotGiven,
    };
    let work = std::env::temp_dir().join(format!("edgeplane-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work).with_context(|| format!("mkdir {}", work.display()))?;
    let ctx = Ctx {
        quick,
        edgeplane_bin: PathBuf::from(env!("CARGO_BIN_EXE_edgeplane")),
        envoy_bin,
        peer_bin,
        peer2,
        work: work.clone(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let started = Instant::now();
    let mut sections = Vec::new();
    for (name, f) in SECTIONS {
        if only.as_ref().is_some_and(|o| !o.iter().any(|x| x == name)) {
            continue;
        }
        eprintln!("== {name}");
        let t = Instant::now();
        let s = rt
            .block_on(f(&ctx))
            .with_context(|| format!("section {name}"))?;
        eprintln!("== {name} done in {:.1} s", t.elapsed().as_secs_f64());
        sections.push(s);
    }
    let report = render(&ctx, &args, &sections, started.elapsed().as_secs_f64());
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&out, report).with_context(|| format!("write {}", out.display()))?;
    eprintln!("wrote {}", out.display());
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

fn render(ctx: &Ctx, args: &[String], sections: &[Section], secs: f64) -> String {
    let mut s = String::from("# edgeplane benchmark report\n\n");
    s.push_str("Generated by `scripts/bench` (`cargo bench --bench report`); every figure comes from the one run described here, each beside its baseline from the same run. Targets are those of issues #6 and #17 (#17 raised them: translate + encode, parse, save → served in both layouts, 10,000 streams, 100,000 routes); where one is missed, its section says by how much and why. The soak (live WebSockets and HTTP load through Envoy during 1,000 edits, `scripts/soak`) writes `bench/SOAK.md`.\n\n");
    s.push_str("## Machine and run\n\n");
    s.push_str(&procs::machine_description(ctx));
    s.push_str(&format!(
        "- command: `cargo bench --bench report -- {}`\n- quick mode: {}\n- total time: {secs:.0} s\n\n",
        args.iter()
            .filter(|a| *a != "--bench")
            .map(|a| procs::repo_relative(a))
            .collect::<Vec<_>>()
            .join(" "),
        ctx.quick
    ));
    for sec in sections {
        s.push_str(&format!("## {}\n\n{}\n", sec.title, sec.body.trim_end()));
        s.push('\n');
    }
    // The soak is its own, long run (scripts/soak); its latest figures are
    // carried into the report as written, under their own date and commit.
    let soak = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench/SOAK.md");
    if let Ok(text) = std::fs::read_to_string(&soak) {
        s.push_str("## Soak (from `bench/SOAK.md`, written by `scripts/soak` in its own run)\n\n");
        for line in text.lines().skip_while(|l| l.starts_with("# ")) {
            // Its headings go one level down, under this section.
            if line.starts_with('#') {
                s.push('#');
            }
            s.push_str(line);
            s.push('\n');
        }
    }
    s
}
