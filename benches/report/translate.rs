//! Section `translate`: translate + encode (what edgeplane does per change,
//! after validation) against the bare prost encoding of the same output.
//!
//! For each size the generated manifests are parsed and validated once
//! (timed as context); then, in each repetition, `translate::translate` +
//! `Snapshot::from_output` (translation, prost encoding, SHA-256 hashes and
//! versions) is timed, and right after it, on that repetition's output,
//! the baseline: `prost::Message::encode_to_vec` of every Listener,
//! RouteConfiguration and Cluster. Medians over the repetitions.

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use edgeplane::model::Model;
use edgeplane::snapshot::Snapshot;
use edgeplane::source::SourceFile;
use edgeplane::translate::Output;
use prost::Message;
use sha2::{Digest, Sha256};

use crate::r#gen::{self, Shape};
use crate::procs::percentile;
use crate::{Ctx, Section};

const TARGET_RATIO: f64 = 2.0;

struct Row {
    routes: usize,
    upstreams: usize,
    resources: usize,
    bytes: usize,
    reps: usize,
    parse_validate: Duration,
    /// The medians of the repetitions' timings.
    t: Sample,
}

/// One repetition's timings (in a `Row`: their medians).
struct Sample {
    /// translate + `from_output`.
    figure: Duration,
    baseline: Duration,
    translate: Duration,
    snapshot: Duration,
    hash: Duration,
    /// A deep clone + drop of the output's RouteConfigurations.
    clone: Duration,
    /// translate + `from_output_reusing` after a one-route edit.
    edit: Duration,
}

impl Row {
    fn ratio(&self) -> f64 {
        self.t.figure.as_secs_f64() / self.t.baseline.as_secs_f64().max(1e-12)
    }
}

pub async fn run(ctx: &Ctx) -> Result<Section> {
    let sizes: &[usize] = if ctx.quick {
        &[100, 1_000]
    } else {
        &[100, 1_000, 10_000, 50_000]
    };
    let budget = if ctx.quick {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(4)
    };
    let mut rows = Vec::new();
    for &routes in sizes {
        // Measured on a blocking thread: this is CPU work, and the runtime's
        // own threads should stay free.
        let row = tokio::task::spawn_blocking(move || measure(routes, budget)).await??;
        eprintln!(
            "translate: {routes} routes: {} vs {} ({:.2}x)",
            ms(row.t.figure),
            ms(row.t.baseline),
            row.ratio()
        );
        rows.push(row);
    }
    Ok(Section {
        title: "Translate + encode".into(),
        body: render(&rows, budget),
    })
}

/// Parses and validates `files`, timed (the error check outside the
/// timing): the model, and whether there were errors.
fn parse_validate(files: &[SourceFile]) -> (Duration, Model, bool) {
    let t = Instant::now();
    let (docs, parse_diags) = edgeplane::manifest::parse_files(files);
    let v = edgeplane::validate::validate(&docs);
    let d = t.elapsed();
    let errors =
        edgeplane::diag::has_errors(&parse_diags) || edgeplane::diag::has_errors(&v.diagnostics);
    (d, v.model, errors)
}

/// Repeats `f` at least `min` times and until `budget` has passed (at most
/// `max` times); returns its results.
fn repeat<T>(min: usize, max: usize, budget: Duration, mut f: impl FnMut() -> T) -> Vec<T> {
    let start = Instant::now();
    let mut out = Vec::new();
    while out.len() < max && (out.len() < min || start.elapsed() < budget) {
        out.push(f());
    }
    out
}

fn bare_encode(out: &Output) -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    for p in out.values() {
        v.extend(p.clusters.iter().map(Message::encode_to_vec));
        v.extend(p.listeners.iter().map(Message::encode_to_vec));
        v.extend(p.route_configs.iter().map(Message::encode_to_vec));
    }
    v
}

fn measure(routes: usize, budget: Duration) -> Result<Row> {
    let upstreams = (routes / r#gen::ROUTES_PER_VS).max(1);
    let shape = Shape {
        routes,
        upstreams,
        port: 8080,
        backend_port: 8081,
        per_vs: r#gen::ROUTES_PER_VS,
    };
    let files = r#gen::source_files(shape, None);
    // The same manifests after a one-route edit (for the serving-path
    // column: a translation reusing the previous snapshot's encodings).
    let (_, edited_model, errors) = parse_validate(&r#gen::source_files(shape, Some(0)));
    ensure!(
        !errors,
        "edited manifests ({routes} routes) do not validate"
    );

    // Context: parse + validate (done once per change by edgeplane too).
    let mut model = None;
    let pv = repeat(3, 20, budget / 2, || {
        let (d, m, errors) = parse_validate(&files);
        model = Some((m, errors));
        d
    });
    let Some((model, errors)) = model else {
        anyhow::bail!("no validation ran");
    };
    ensure!(
        !errors,
        "generated manifests ({routes} routes) do not validate"
    );

    // Warm up (allocator, caches) once; the snapshot is the "previous"
    // one of the serving-path column.
    let warm = edgeplane::translate::translate(&model);
    let prev = Snapshot::from_output(&warm);
    let bytes: usize = bare_encode(&warm).iter().map(Vec::len).sum();
    let resources: usize = warm
        .values()
        .map(|p| p.clusters.len() + p.listeners.len() + p.route_configs.len())
        .sum();
    ensure!(
        prev.proxies.len() == 1 && resources >= 3,
        "unexpected translation of the generated manifests: {} proxies, {resources} resources",
        prev.proxies.len()
    );

    let samples = repeat(5, 200, budget, || {
        let t0 = Instant::now();
        let out = edgeplane::translate::translate(black_box(&model));
        let t1 = Instant::now();
        let snap = Snapshot::from_output(black_box(&out));
        let t2 = Instant::now();
        black_box(&snap);
        // The baseline, on the same output.
        let t3 = Instant::now();
        let encoded = bare_encode(black_box(&out));
        let t4 = Instant::now();
        black_box(&encoded);
        // Diagnosis only: what hashing every byte costs, and what a deep
        // clone + drop of the RouteConfigurations costs.
        let t5 = Instant::now();
        for b in &encoded {
            black_box(Sha256::digest(b));
        }
        let t6 = Instant::now();
        for p in out.values() {
            drop(black_box(p.route_configs.clone()));
        }
        let t7 = Instant::now();
        // Drops happen outside every timed span.
        drop((out, snap, encoded));
        // The serving path for a one-route edit: translate the edited
        // model, encode reusing the previous snapshot.
        let t8 = Instant::now();
        let out = edgeplane::translate::translate(black_box(&edited_model));
        let (snap, _) = Snapshot::from_output_reusing(black_box(&out), Some(&prev));
        let t9 = Instant::now();
        drop((out, snap));
        Sample {
            figure: t2 - t0,
            baseline: t4 - t3,
            translate: t1 - t0,
            snapshot: t2 - t1,
            hash: t6 - t5,
            clone: t7 - t6,
            edit: t9 - t8,
        }
    });
    let med = |f: fn(&Sample) -> Duration| {
        let v: Vec<Duration> = samples.iter().map(f).collect();
        percentile(&v, 50.0)
    };
    Ok(Row {
        routes,
        upstreams,
        resources,
        bytes,
        reps: samples.len(),
        parse_validate: percentile(&pv, 50.0),
        t: Sample {
            figure: med(|s| s.figure),
            baseline: med(|s| s.baseline),
            translate: med(|s| s.translate),
            snapshot: med(|s| s.snapshot),
            hash: med(|s| s.hash),
            clone: med(|s| s.clone),
            edit: med(|s| s.edit),
        },
    })
}

fn ms(d: Duration) -> String {
    let m = d.as_secs_f64() * 1000.0;
    if m < 1.0 {
        format!("{m:.3} ms")
    } else if m < 100.0 {
        format!("{m:.2} ms")
    } else {
        format!("{m:.0} ms")
    }
}

fn kib(b: usize) -> String {
    if b >= 1024 * 1024 {
        format!("{:.1} MiB", b as f64 / 1024.0 / 1024.0)
    } else {
        format!("{:.1} KiB", b as f64 / 1024.0)
    }
}

fn render(rows: &[Row], budget: Duration) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "Generated manifests (one Gateway, VirtualServices of {} routes each, one Upstream per VirtualService) are parsed and validated once, outside the timing (that time is shown as context). Then each repetition times what edgeplane does per change after validation, `translate::translate` + `Snapshot::from_output` (building the Envoy protos, prost-encoding each resource, SHA-256 per resource and per virtual host, per-type versions), and right after it, on that repetition's own output, the baseline: bare `prost::Message::encode_to_vec` of every Listener, RouteConfiguration and Cluster. Repetitions: at least 5 and until {:.0} s have passed (at most 200); the figures are medians. Drops are outside every timed span. Single thread. The last column is context: `translate` + `Snapshot::from_output_reusing` for the same manifests after a one-route edit of one VirtualService, given the snapshot before the edit (the call `serve` makes per change: every resource is still encoded, but unchanged ones keep their hashes), with its ratio to the same baseline.\n\n",
        r#gen::ROUTES_PER_VS,
        budget.as_secs_f64()
    ));
    s.push_str("| routes | upstreams | resources (encoded) | reps | parse + validate (context) | translate + encode (edgeplane) | bare prost encode (baseline) | ratio | serving path after a one-route edit (context) |\n|---:|---:|---|---:|---:|---:|---:|---:|---:|\n");
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} ({}) | {} | {} | {} | {} | {:.2}× | {} ({:.2}×) |\n",
            r.routes,
            r.upstreams,
            r.resources,
            kib(r.bytes),
            r.reps,
            ms(r.parse_validate),
            ms(r.t.figure),
            ms(r.t.baseline),
            r.ratio(),
            ms(r.t.edit),
            r.t.edit.as_secs_f64() / r.t.baseline.as_secs_f64().max(1e-12)
        ));
    }
    s.push_str("\nWhere the edgeplane time goes (medians of the same repetitions). The last three columns are diagnostics timed separately in each repetition on that repetition's output: the bare encoding (the baseline again), SHA-256 over every encoded resource, and a deep clone + drop of the output's RouteConfigurations:\n\n");
    s.push_str("| routes | translate (model → protos) | `Snapshot::from_output` | bare encode | SHA-256 of all bytes | clone + drop of the RouteConfigurations |\n|---:|---:|---:|---:|---:|---:|\n");
    for r in rows {
        let t = &r.t;
        let share = |d: Duration| 100.0 * d.as_secs_f64() / t.figure.as_secs_f64().max(1e-12);
        s.push_str(&format!(
            "| {} | {} ({:.0} %) | {} ({:.0} %) | {} | {} | {} |\n",
            r.routes,
            ms(t.translate),
            share(t.translate),
            ms(t.snapshot),
            share(t.snapshot),
            ms(t.baseline),
            ms(t.hash),
            ms(t.clone),
        ));
    }
    s.push_str(&format!(
        "\nTarget: translate + encode ≤ {TARGET_RATIO}× the bare prost encoding at every size.\n\n"
    ));
    for r in rows {
        let ratio = r.ratio();
        if ratio <= TARGET_RATIO {
            s.push_str(&format!(
                "- {} routes: **met** ({ratio:.2}× ≤ {TARGET_RATIO}×).\n",
                r.routes
            ));
        } else {
            s.push_str(&format!(
                "- {} routes: **missed**: {ratio:.2}× against ≤ {TARGET_RATIO}× ({:.0} % over).\n",
                r.routes,
                100.0 * (ratio / TARGET_RATIO - 1.0)
            ));
        }
    }
    let missed: Vec<&Row> = rows.iter().filter(|r| r.ratio() > TARGET_RATIO).collect();
    if !missed.is_empty() {
        s.push_str("\nWhy: ");
        s.push_str(&why(&missed));
        s.push('\n');
    }
    s
}

/// A diagnosis from the measured split: which part exceeds what the
/// baseline allows.
fn why(missed: &[&Row]) -> String {
    let mut parts = Vec::new();
    for r in missed {
        let t = &r.t;
        let base = t.baseline.as_secs_f64().max(1e-12);
        parts.push(format!(
            "{} routes: translate {:.1}× the bare encoding (a deep clone + drop of its RouteConfigurations alone costs {:.1}×), `from_output` {:.1}× (of which encoding 1×, SHA-256 {:.2}×)",
            r.routes,
            t.translate.as_secs_f64() / base,
            t.clone.as_secs_f64() / base,
            t.snapshot.as_secs_f64() / base,
            t.hash.as_secs_f64() / base,
        ));
    }
    format!(
        "building the protos costs more than encoding them, and `from_output` alone is at or above the 2× budget. Measured: {}. The baseline only serialises finished protos; edgeplane has to build them (one `Route` per route, its name formatted and its strings copied from the model), then encodes them, hashes each resource and each virtual host, so the target leaves translation about one encoding's worth of time. (`translate::translate` copies a Gateway's RouteConfiguration only for its second and later proxies; with one proxy, as here, it is moved, so the clone + drop column is no longer part of the figure.) A perf profile of this section showed where the rest goes: route-name formatting, moves of the large prost `Route`/`RouteAction` structs and vector growth in `route::virtual_host`. What would meet the target is not doing the work per change at all: translating and encoding per virtual host and caching the bytes of unchanged ones, so a one-route edit rebuilds one virtual host and splices the RouteConfiguration's bytes (not done yet).",
        parts.join("; ")
    )
}
