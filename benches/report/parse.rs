//! Section `parse`: parse + validate of one VirtualService holding every
//! route (a common Gloo layout), against a plain serde deserialization of
//! the same text; its re-parse after a one-route edit; and the peak memory
//! of `edgeplane validate` on it.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use edgeplane::manifest::ParseCache;
use edgeplane::source::SourceFile;

use crate::r#gen::{self, Shape};
use crate::procs::{mib, ms, percentile};
use crate::stack::write_all;
use crate::{Ctx, Section};

const TARGET_TIME: Duration = Duration::from_millis(100);
const TARGET_PEAK_KIB: u64 = 40 * 1024;

struct Row {
    routes: usize,
    bytes: usize,
    reps: usize,
    /// `parse_files` + `validate` (cold: nothing cached).
    cold: Duration,
    /// The baseline: every document deserialized into an untyped value.
    plain: Duration,
    /// `ParseCache::parse` after a one-route edit + `validate`.
    edit: Duration,
    routes_reused: usize,
    /// `edgeplane validate <dir>`: wall time and peak RSS (KiB).
    cli: Duration,
    cli_peak_kib: u64,
}

fn mbps(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64().max(1e-12)
}

pub async fn run(ctx: &Ctx) -> Result<Section> {
    let sizes: &[usize] = if ctx.quick {
        &[1_000]
    } else {
        &[1_000, 10_000]
    };
    let budget = Duration::from_secs(if ctx.quick { 1 } else { 4 });
    let mut rows = Vec::new();
    for &routes in sizes {
        let row = measure(ctx, routes, budget)
            .await
            .with_context(|| format!("parse at {routes} routes"))?;
        eprintln!(
            "parse: {routes} routes: {} ({:.1} MB/s) vs plain {} ({:.1} MB/s); after an edit {}; validate CLI {} peak {}",
            ms(row.cold),
            mbps(row.bytes, row.cold),
            ms(row.plain),
            mbps(row.bytes, row.plain),
            ms(row.edit),
            ms(row.cli),
            mib(row.cli_peak_kib)
        );
        rows.push(row);
    }
    Ok(Section {
        title: "Parse + validate of one big VirtualService".into(),
        body: render(&rows, budget),
    })
}

fn shape(routes: usize) -> Shape {
    Shape {
        routes,
        upstreams: (routes / r#gen::ROUTES_PER_VS).max(1),
        port: 8080,
        backend_port: 8081,
        per_vs: usize::MAX,
    }
}

async fn measure(ctx: &Ctx, routes: usize, budget: Duration) -> Result<Row> {
    let s = shape(routes);
    let files = r#gen::source_files(s, None);
    let edited = r#gen::source_files(s, Some(0));
    let bytes: usize = files.iter().map(|f| f.text.len()).sum();
    let timed = tokio::task::spawn_blocking(move || in_process(&files, &edited, budget)).await??;
    // The CLI a user runs, as a process of its own: its peak RSS.
    let dir = ctx.work.join(format!("parse-{routes}"));
    let manifests = dir.join("manifests");
    std::fs::create_dir_all(&manifests)?;
    write_all(&manifests, &r#gen::manifests(s))?;
    let mut cli = Vec::new();
    let mut peak = 0;
    for _ in 0..3 {
        let (d, kib) = run_cli(ctx, &manifests)?;
        cli.push(d);
        peak = peak.max(kib);
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Row {
        routes,
        bytes,
        reps: timed.0,
        cold: timed.1,
        plain: timed.2,
        edit: timed.3,
        routes_reused: timed.4,
        cli: percentile(&cli, 50.0),
        cli_peak_kib: peak,
    })
}

type Timed = (usize, Duration, Duration, Duration, usize);

fn in_process(files: &[SourceFile], edited: &[SourceFile], budget: Duration) -> Result<Timed> {
    let (mut cold, mut plain, mut edit) = (Vec::new(), Vec::new(), Vec::new());
    let mut reused = 0;
    let start = Instant::now();
    while cold.len() < 5 || (start.elapsed() < budget && cold.len() < 100) {
        let t = Instant::now();
        let (docs, diags) = edgeplane::manifest::parse_files(files);
        let v = edgeplane::validate::validate(&docs);
        cold.push(t.elapsed());
        ensure!(
            !edgeplane::diag::has_errors(&diags) && !edgeplane::diag::has_errors(&v.diagnostics),
            "generated manifests do not validate"
        );
        drop((docs, v));

        let t = Instant::now();
        for f in files {
            for (_, doc) in edgeplane::manifest::parse::split_documents(&f.text) {
                let value: serde_json::Value =
                    serde_saphyr::from_str(&doc).context("plain deserialization")?;
                std::hint::black_box(&value);
            }
        }
        plain.push(t.elapsed());

        // The serving path's parse: the last load cached, one route added.
        let mut cache = ParseCache::new();
        cache.parse(files);
        let t = Instant::now();
        let (docs, _, stats) = cache.parse(edited);
        let refs: Vec<&edgeplane::manifest::Document> = docs.iter().map(|d| d.as_ref()).collect();
        let v = edgeplane::validate::validate_refs(&refs);
        edit.push(t.elapsed());
        reused = stats.routes_reused;
        drop(v);
        drop(refs);
        drop((docs, cache));
    }
    Ok((
        cold.len(),
        percentile(&cold, 50.0),
        percentile(&plain, 50.0),
        percentile(&edit, 50.0),
        reused,
    ))
}

/// `edgeplane validate <dir>`: wall time and the process's peak RSS (KiB).
/// The peak is `wait4`'s `ru_maxrss`, taken by a small copy of this binary
/// started between (`--peak-rss-of`, `peak_rss_main`): a child spawned
/// straight from this process (already hundreds of MiB after the other
/// sections) would report this process's peak, which Linux records as the
/// child's at its `exec`. The wall time includes that copy's start (about a
/// millisecond).
fn run_cli(ctx: &Ctx, dir: &std::path::Path) -> Result<(Duration, u64)> {
    let exe = std::env::current_exe().context("the benchmark's own path")?;
    let t = Instant::now();
    let out = std::process::Command::new(exe)
        .arg(PEAK_RSS_OF)
        .arg(&ctx.edgeplane_bin)
        .arg("validate")
        .arg(dir)
        .stderr(std::process::Stdio::null())
        .output()
        .context("spawn edgeplane validate")?;
    let d = t.elapsed();
    ensure!(
        out.status.success(),
        "edgeplane validate failed ({})",
        out.status
    );
    let kib = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse::<u64>()
        .context("the peak RSS printed by --peak-rss-of")?;
    Ok((d, kib))
}

/// The flag that makes this binary run `peak_rss_main`.
pub const PEAK_RSS_OF: &str = "--peak-rss-of";

/// `report --peak-rss-of CMD ARGS…`: runs the command (its output
/// discarded), prints its peak RSS in KiB (`wait4`'s `ru_maxrss`) and
/// exits with its status. Started fresh, this process is small, so the
/// figure is the command's own.
pub fn peak_rss_main(cmd: &[String]) -> Result<()> {
    let (program, args) = cmd.split_first().context("--peak-rss-of: no command")?;
    let child = std::process::Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("spawn {program}"))?;
    let pid = i32::try_from(child.id()).context("pid")?;
    let mut status = 0;
    // SAFETY: rusage is plain data, zeroed is a valid value; wait4 fills it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own child, not yet waited for.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    ensure!(r == pid, "wait4 failed");
    println!("{}", usage.ru_maxrss);
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        1
    };
    std::process::exit(code)
}

fn render(rows: &[Row], budget: Duration) -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut s = format!(
        "Generated manifests: one Gateway, one Upstream per 100 routes, and every route in ONE VirtualService file (a common Gloo layout; route `i`: a prefix matcher and a single upstream destination, 7 lines of YAML). In process (release build, {cores} cores), repeated at least 5 times and until {:.0} s have passed (at most 100), medians: edgeplane's `manifest::parse_files` + `validate::validate` of the files (positions kept, unknown fields refused, every reference checked; the route items of a big VirtualService are parsed on up to one thread per core), and, as the baseline, a plain serde deserialization of each of the same documents into an untyped value (`serde_saphyr::from_str::<serde_json::Value>`: the same YAML parser, no types, no positions, no validation). \"After a one-route edit\" is the serving path's parse: `ParseCache::parse` of the files with one route added at the top of the VirtualService, given the cache of the load before, then `validate`. The last two columns are `edgeplane validate <dir>` as a process (it also translates and encodes, as it checks what Envoy would get): median wall time of 3 runs, and the largest peak RSS (`wait4`'s `ru_maxrss`).\n\n",
        budget.as_secs_f64()
    );
    s.push_str("| routes | manifest text | reps | parse + validate (edgeplane) | MB/s | plain serde deserialization (baseline) | MB/s | ratio | after a one-route edit (routes reused) | `edgeplane validate` wall | its peak RSS |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in rows {
        s.push_str(&format!(
            "| {} | {:.2} MB | {} | {} | {:.1} | {} | {:.1} | {:.2}× | {} ({}) | {} | {} |\n",
            r.routes,
            r.bytes as f64 / 1e6,
            r.reps,
            ms(r.cold),
            mbps(r.bytes, r.cold),
            ms(r.plain),
            mbps(r.bytes, r.plain),
            r.cold.as_secs_f64() / r.plain.as_secs_f64().max(1e-12),
            ms(r.edit),
            r.routes_reused,
            ms(r.cli),
            mib(r.cli_peak_kib),
        ));
    }
    s.push_str(&format!(
        "\nTargets: parse + validate of the 10,000-route single file ≤ {} ms and ≤ {} peak.\n\n",
        TARGET_TIME.as_millis(),
        mib(TARGET_PEAK_KIB)
    ));
    match rows.iter().find(|r| r.routes == 10_000) {
        Some(r) => {
            let verdict = |ok: bool| if ok { "**met**" } else { "**missed**" };
            s.push_str(&format!(
                "- time: {} in process: {} (target ≤ {} ms); the `edgeplane validate` process, which also translates and encodes, {}.\n",
                ms(r.cold),
                verdict(r.cold <= TARGET_TIME),
                TARGET_TIME.as_millis(),
                ms(r.cli),
            ));
            s.push_str(&format!(
                "- peak memory: `edgeplane validate` {}: {} (target ≤ {}).\n",
                mib(r.cli_peak_kib),
                verdict(r.cli_peak_kib <= TARGET_PEAK_KIB),
                mib(TARGET_PEAK_KIB)
            ));
            s.push_str(&format!(
                "\nHow: the YAML parser itself is most of the time (the plain deserialization, with no positions and no validation, runs at {:.1} MB/s here; edgeplane's typed parse keeps two source positions on every located field). Big VirtualServices are cut at their route items and the items parsed in parallel, which is what brings the cold figure {} the baseline on {cores} cores; an edit re-parses only the routes whose text changed, which is the serving path's figure. Memory: the parsed routes (~750 bytes each with their positions) exist once, filled in place by the parsing threads; each list is kept at its length (serde grows a route's one matcher into room for four); the validated model's routes share one empty options value (options are ~900 of a route's ~1,100 bytes, and most routes have none).\n",
                mbps(r.bytes, r.plain),
                if r.cold <= r.plain { "below" } else { "near" },
            ));
        }
        None => s.push_str("- 10,000 routes: not measured in this run (quick mode).\n"),
    }
    s
}
