//! Section `translate`: translate + encode (what edgeplane does per change,
//! after validation) against the bare prost encoding of the same output.
//!
//! For each size the generated manifests are parsed and validated once
//! (timed as context); then, in each repetition: the serving path for a
//! one-route edit (`translate::translate_reusing` with the memo of the
//! translation before the edit + `Snapshot::from_output_reusing`), a cold
//! translation (`translate::translate` + `Snapshot::from_output`: nothing
//! remembered), and the baseline, `prost::Message::encode_to_vec` of every
//! Listener, RouteConfiguration and Cluster of the same output (as protos,
//! decoded once outside the timing). Medians over the repetitions.

use std::hint::black_box;
use std::time::{Duration, Instant};

use std::sync::Arc;

use anyhow::{Context, Result, ensure};
use edgeplane::model::Model;
use edgeplane::snapshot::Snapshot;
use edgeplane::source::SourceFile;
use edgeplane::translate::{Output, RouteMemo};
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
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
    /// `translate_reusing` + `from_output_reusing` after a one-route edit:
    /// the figure.
    edit: Duration,
    edit_translate: Duration,
    edit_snapshot: Duration,
    /// `translate` + `from_output`, nothing remembered.
    cold: Duration,
    translate: Duration,
    snapshot: Duration,
    baseline: Duration,
    hash: Duration,
}

impl Row {
    fn ratio(&self) -> f64 {
        self.t.edit.as_secs_f64() / self.t.baseline.as_secs_f64().max(1e-12)
    }

    fn cold_ratio(&self) -> f64 {
        self.t.cold.as_secs_f64() / self.t.baseline.as_secs_f64().max(1e-12)
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
            "translate: {routes} routes: per change {}, cold {} vs {} ({:.2}x, {:.2}x)",
            ms(row.t.edit),
            ms(row.t.cold),
            ms(row.t.baseline),
            row.ratio(),
            row.cold_ratio()
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

/// The baseline: every resource of `out` encoded by prost, its
/// RouteConfigurations as the protos `routes` (`out`'s, decoded).
fn bare_encode(out: &Output, routes: &[RouteConfiguration]) -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    for p in out.values() {
        v.extend(p.clusters.iter().map(Message::encode_to_vec));
        v.extend(p.listeners.iter().map(Message::encode_to_vec));
    }
    v.extend(routes.iter().map(Message::encode_to_vec));
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
    // one of the serving path. The baseline encodes the RouteConfigurations
    // as protos: translation gives them encoded, so they are decoded here,
    // once, outside every timing.
    let warm = edgeplane::translate::translate(&model);
    let prev = Snapshot::from_output(&warm);
    let protos: Vec<RouteConfiguration> = warm
        .values()
        .flat_map(|p| p.route_configs.iter())
        .map(|r| r.decode())
        .collect::<Result<_, _>>()
        .context("decoding the translated RouteConfigurations")?;
    let bytes: usize = bare_encode(&warm, &protos).iter().map(Vec::len).sum();
    let resources: usize = warm
        .values()
        .map(|p| p.clusters.len() + p.listeners.len() + p.route_configs.len())
        .sum();
    ensure!(
        prev.proxies.len() == 1 && resources >= 3,
        "unexpected translation of the generated manifests: {} proxies, {resources} resources",
        prev.proxies.len()
    );
    let model = Arc::new(model);
    let edited_model = Arc::new(edited_model);
    let mut memo = RouteMemo::default();

    let samples = repeat(5, 200, budget, || {
        // The serving path for a one-route edit: the memo holds the
        // translation before the edit (made untimed), the snapshot is the
        // one before the edit.
        let before = edgeplane::translate::translate_reusing(&model, &mut memo);
        drop(before);
        let t0 = Instant::now();
        let out = edgeplane::translate::translate_reusing(black_box(&edited_model), &mut memo);
        let t1 = Instant::now();
        let (snap, _) = Snapshot::from_output_reusing(black_box(&out), Some(&prev));
        let t2 = Instant::now();
        drop((out, snap));
        // Cold: nothing remembered.
        let t3 = Instant::now();
        let out = edgeplane::translate::translate(black_box(&model));
        let t4 = Instant::now();
        let snap = Snapshot::from_output(black_box(&out));
        let t5 = Instant::now();
        black_box(&snap);
        // The baseline, on the same output.
        let t6 = Instant::now();
        let encoded = bare_encode(black_box(&out), black_box(&protos));
        let t7 = Instant::now();
        black_box(&encoded);
        // Diagnosis only: what hashing every byte costs.
        let t8 = Instant::now();
        for b in &encoded {
            black_box(Sha256::digest(b));
        }
        let t9 = Instant::now();
        // Drops happen outside every timed span.
        drop((out, snap, encoded));
        Sample {
            edit: t2 - t0,
            edit_translate: t1 - t0,
            edit_snapshot: t2 - t1,
            cold: t5 - t3,
            translate: t4 - t3,
            snapshot: t5 - t4,
            baseline: t7 - t6,
            hash: t9 - t8,
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
            edit: med(|s| s.edit),
            edit_translate: med(|s| s.edit_translate),
            edit_snapshot: med(|s| s.edit_snapshot),
            cold: med(|s| s.cold),
            translate: med(|s| s.translate),
            snapshot: med(|s| s.snapshot),
            baseline: med(|s| s.baseline),
            hash: med(|s| s.hash),
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
        "Generated manifests (one Gateway, VirtualServices of {} routes each, one Upstream per VirtualService) are parsed and validated once, outside the timing (that time is shown as context). Then each repetition times what edgeplane does per change after validation: for a one-route edit of one VirtualService, `translate::translate_reusing` (the memo holding the translation before the edit: routes equal to one it holds take its encoding, `src/5-translate/route_memo.rs`) + `Snapshot::from_output_reusing` (given the snapshot before the edit: unchanged resources keep their hashes), the call `serve` makes per change. Then, as context, the same manifests translated cold, nothing remembered (`translate::translate` + `Snapshot::from_output`: every route built and encoded, SHA-256 per resource and per virtual host, per-type versions; what the first load does). Then the baseline: bare `prost::Message::encode_to_vec` of every Listener, RouteConfiguration and Cluster of that output (the RouteConfigurations as protos, decoded once outside the timing). Repetitions: at least 5 and until {:.0} s have passed (at most 200); the figures are medians. Drops are outside every timed span. Single thread.\n\n",
        r#gen::ROUTES_PER_VS,
        budget.as_secs_f64()
    ));
    s.push_str("| routes | upstreams | resources (encoded) | reps | parse + validate (context) | translate + encode after a one-route edit (edgeplane) | bare prost encode (baseline) | ratio | cold translate + encode (context) | cold ratio |\n|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} ({}) | {} | {} | {} | {} | {:.2}× | {} | {:.2}× |\n",
            r.routes,
            r.upstreams,
            r.resources,
            kib(r.bytes),
            r.reps,
            ms(r.parse_validate),
            ms(r.t.edit),
            ms(r.t.baseline),
            r.ratio(),
            ms(r.t.cold),
            r.cold_ratio(),
        ));
    }
    s.push_str("\nWhere the time goes (medians of the same repetitions; the SHA-256 column is a diagnostic timed separately on each repetition's output, over every encoded resource):\n\n");
    s.push_str("| routes | after the edit: translate | after the edit: snapshot | cold: translate (model → encoded routes) | cold: `Snapshot::from_output` | bare encode | SHA-256 of all bytes |\n|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in rows {
        let t = &r.t;
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            r.routes,
            ms(t.edit_translate),
            ms(t.edit_snapshot),
            ms(t.translate),
            ms(t.snapshot),
            ms(t.baseline),
            ms(t.hash),
        ));
    }
    s.push_str(&format!(
        "\nTarget: translate + encode ≤ {TARGET_RATIO}× the bare prost encoding at every size, for what edgeplane does per change.\n\n"
    ));
    for r in rows {
        let ratio = r.ratio();
        let cold = r.cold_ratio();
        let verdict = if ratio <= TARGET_RATIO {
            format!("**met** ({ratio:.2}× ≤ {TARGET_RATIO}×)")
        } else {
            format!(
                "**missed**: {ratio:.2}× against ≤ {TARGET_RATIO}× ({:.0} % over)",
                100.0 * (ratio / TARGET_RATIO - 1.0)
            )
        };
        let cold_verdict = if cold <= TARGET_RATIO {
            format!("within the target too ({cold:.2}×)")
        } else {
            format!(
                "{cold:.2}×, {:.0} % over the target",
                100.0 * (cold / TARGET_RATIO - 1.0)
            )
        };
        s.push_str(&format!(
            "- {} routes: {verdict}. Cold (first load, nothing remembered): {cold_verdict}.\n",
            r.routes
        ));
    }
    s.push_str("\nWhy the cold figure stays above the baseline: a cold translation builds every route's protos from the model (strings copied, names written), encodes each route on its own, canonically (map entries sorted), and splices the virtual hosts and the RouteConfiguration around them, then hashes each resource and each virtual host; the baseline only serialises finished protos. Per change, routes equal to the last translation's are neither built nor encoded: only their model routes are compared (matchers, action, options), so the work left is one pass over the model routes, the names written in, the bytes copied once, and the hashes.\n");
    s
}
