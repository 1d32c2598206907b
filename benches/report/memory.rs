//! Section `memory`: resident memory of `edgeplane serve` at 10,000 routes /
//! 1,000 upstreams with 100 connected SotW clients that have ACKed
//! everything, against the same process idle (config loaded, no client) and
//! the size of the encoded snapshot; the peer with the same clients when
//! one is given.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::time::Instant;

use crate::adsclient::{Expect, Fleet, Mode};
use crate::fanout::thousands;
use crate::r#gen::{self, Shape};
use crate::procs::{self, mib, ms};
use crate::servers::{self, Edgeplane, Peer};
use crate::{Ctx, Section};

const TARGET_MIB: f64 = 100.0;
const READY_WITHIN: Duration = Duration::from_secs(300);

/// VmRSS and VmHWM (KiB) idle and with the clients; time to sync them.
struct Mem {
    idle: u64,
    idle_hwm: u64,
    streams: u64,
    hwm: u64,
    sync: Duration,
}

pub async fn run(ctx: &Ctx) -> Result<Section> {
    let (routes, upstreams, n) = if ctx.quick {
        (1_000, 100, 10)
    } else {
        (10_000, 1_000, 100)
    };
    let shape = Shape {
        routes,
        upstreams,
        port: 18080,
        backend_port: 18081,
    };
    let base = ctx.work.join("memory");
    let dir = base.join("config");
    let files = gen::manifests(shape);
    let snapshot = servers::write_and_translate(&dir, &files)?;
    let (resources, bytes) = servers::resource_totals(&snapshot);
    let expect = Arc::new(Expect::new(&snapshot, None)?);
    servers::ensure_nofile(n as u64 + 512);

    eprintln!("   memory: edgeplane, {n} SotW streams");
    let ep = {
        let mut ep = Edgeplane::start(&ctx.edgeplane_bin, &dir, base.join("edgeplane.log")).await?;
        let idle = procs::rss_kib(ep.pid).context("edgeplane VmRSS")?;
        let idle_hwm = procs::hwm_kib(ep.pid).context("edgeplane VmHWM")?;
        let started = Instant::now();
        let mut fleet = Fleet::start(Mode::Sotw, ep.xds_port, n, n, expect.clone()).await?;
        fleet.wait_ready(READY_WITHIN).await?;
        let sync = started.elapsed();
        ep.check_alive()?;
        let streams = procs::rss_kib(ep.pid).context("edgeplane VmRSS")?;
        let hwm = procs::hwm_kib(ep.pid).context("edgeplane VmHWM")?;
        Mem {
            idle,
            idle_hwm,
            streams,
            hwm,
            sync,
        }
    };

    let peer: Option<Result<Mem>> = match &ctx.peer_bin {
        None => None,
        Some(bin) => {
            eprintln!("   memory: peer, {n} SotW streams");
            Some(
                async {
                    let file = base.join("resources.pb");
                    servers::write_resources_file(&file, &snapshot)?;
                    let peer = Peer::start(bin, &file, base.join("peer.log")).await?;
                    let idle = procs::rss_kib(peer.pid).context("peer VmRSS")?;
                    let idle_hwm = procs::hwm_kib(peer.pid).context("peer VmHWM")?;
                    let started = Instant::now();
                    let mut fleet =
                        Fleet::start(Mode::Sotw, peer.port, n, n, expect.clone()).await?;
                    fleet.wait_ready(READY_WITHIN).await?;
                    let sync = started.elapsed();
                    let streams = procs::rss_kib(peer.pid).context("peer VmRSS")?;
                    let hwm = procs::hwm_kib(peer.pid).context("peer VmHWM")?;
                    Ok(Mem {
                        idle,
                        idle_hwm,
                        streams,
                        hwm,
                        sync,
                    })
                }
                .await,
            )
        }
    };

    let per_stream = |m: &Mem| (m.streams as f64 - m.idle as f64) / n as f64;
    let r = |a: u64, b: u64| {
        if b > 0 {
            format!("{:.2}×", a as f64 / b as f64)
        } else {
            "–".into()
        }
    };
    let mut body = format!(
        "**Method.** `edgeplane serve` (RUST_LOG=warn) on generated manifests: {} routes in {} VirtualServices, {} upstreams ({} files); its translation is {} resources, {} bytes encoded (one proxy). Its VmRSS and VmHWM (peak) are read from `/proc` once the config is served and before any client connects (the baseline: the same process idle), then after {n} in-process SotW ADS clients (the `fanout` section's clients: one TCP connection each, wildcard CDS/LDS, RDS, every response ACKed, every resource checked byte for byte) have all ACKed the whole config.\n\n",
        thousands(routes),
        thousands(routes.div_ceil(gen::ROUTES_PER_VS)),
        thousands(upstreams),
        files.len(),
        thousands(resources),
        thousands(bytes),
    );
    body.push_str("| figure | value | baseline | ratio |\n|---|---|---|---|\n");
    body.push_str(&format!(
        "| edgeplane VmRSS with {n} streams ACKed | {} | {} idle, same process | {} |\n",
        mib(ep.streams),
        mib(ep.idle),
        r(ep.streams, ep.idle)
    ));
    body.push_str(&format!(
        "| edgeplane VmHWM (peak) with {n} streams | {} | {} idle (VmHWM: startup and first load) | {} |\n",
        mib(ep.hwm),
        mib(ep.idle_hwm),
        r(ep.hwm, ep.idle_hwm)
    ));
    body.push_str(&format!(
        "| edgeplane VmRSS idle | {} | encoded snapshot {} | {} |\n",
        mib(ep.idle),
        mib(bytes as u64 / 1024),
        r(ep.idle * 1024, bytes as u64)
    ));
    body.push_str(&format!(
        "| edgeplane RSS per extra stream | {:.1} KiB | encoded snapshot {:.1} KiB | {:.2}× |\n",
        per_stream(&ep),
        bytes as f64 / 1024.0,
        per_stream(&ep) * 1024.0 / bytes as f64
    ));
    body.push_str(&format!(
        "| edgeplane: first connect → all {n} ACKed everything | {} | – | – |\n",
        ms(ep.sync)
    ));
    match &peer {
        None => body.push_str("| peer VmRSS with the same clients | not run (no `--peer`) | – | – |\n"),
        Some(Err(e)) => body.push_str(&format!(
            "| peer VmRSS with the same clients | failed: {} | – | – |\n",
            format!("{e:#}").replace('|', "/").replace('\n', " ")
        )),
        Some(Ok(p)) => {
            body.push_str(&format!(
                "| edgeplane VmRSS with {n} streams vs the peer's | {} | peer {} (idle {}) | {} |\n",
                mib(ep.streams),
                mib(p.streams),
                mib(p.idle),
                r(ep.streams, p.streams)
            ));
            body.push_str(&format!(
                "| edgeplane VmHWM vs the peer's | {} | peer {} | {} |\n",
                mib(ep.hwm),
                mib(p.hwm),
                r(ep.hwm, p.hwm)
            ));
            body.push_str(&format!(
                "| RSS per extra stream vs the peer's | {:.1} KiB | peer {:.1} KiB | {} |\n",
                per_stream(&ep),
                per_stream(p),
                if per_stream(p) > 0.0 {
                    format!("{:.2}×", per_stream(&ep) / per_stream(p))
                } else {
                    "–".into()
                }
            ));
            body.push_str(&format!(
                "| peer: first connect → all {n} ACKed everything | {} | – | – |\n",
                ms(p.sync)
            ));
        }
    }
    body.push_str("\n**Target** ≤ 100 MiB resident");
    if ctx.quick {
        body.push_str(" (set for 10,000 routes / 1,000 upstreams / 100 streams; this quick run is smaller)");
    }
    body.push_str(":\n\n");
    for (what, kib) in [("VmRSS", ep.streams), ("VmHWM (peak)", ep.hwm)] {
        let m = kib as f64 / 1024.0;
        if m <= TARGET_MIB {
            body.push_str(&format!(
                "- {what}: **met** ({m:.1} MiB, {:.1} MiB to spare).\n",
                TARGET_MIB - m
            ));
        } else {
            body.push_str(&format!(
                "- {what}: **missed** by {:.1} MiB ({m:.1} MiB).\n",
                m - TARGET_MIB
            ));
        }
    }
    Ok(Section {
        title: format!(
            "Memory at {} routes / {} upstreams / {n} streams",
            thousands(routes),
            thousands(upstreams)
        ),
        body,
    })
}
