//! Processes and machine facts shared by the sections: the machine
//! description, resident memory of a process, percentiles.

use std::time::Duration;

use crate::Ctx;

/// Markdown bullet lines describing the machine, Envoy and the commit.
pub fn machine_description(ctx: &Ctx) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string())
        })
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| format!("{:.1} GiB", kb as f64 / 1024.0 / 1024.0))
        .unwrap_or_else(|| "unknown".into());
    let envoy = std::process::Command::new(&ctx.envoy_bin)
        .arg("--version")
        .output()
        .ok()
        .map(|o| repo_relative(String::from_utf8_lossy(&o.stdout).trim()))
        .unwrap_or_default();
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    format!(
        "- CPU: {cpu}, {cores} cores available\n- memory: {mem}\n- kernel: Linux {kernel}\n- Envoy: {envoy}\n- edgeplane commit: {commit}\n"
    )
}

/// `text` with this repository's absolute path made relative, so a report
/// names no machine path (`/…/edgeplane/.venv/bin/envoy` → `.venv/bin/envoy`).
pub fn repo_relative(text: &str) -> String {
    text.replace(concat!(env!("CARGO_MANIFEST_DIR"), "/"), "")
}

/// Resident set size of a process in KiB (`VmRSS`), Linux only.
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

/// Peak resident set size of a process in KiB (`VmHWM`), Linux only.
pub fn hwm_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM:")
}

/// The KiB figure of the `field` line of `/proc/<pid>/status`.
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let t = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    t.lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// CPU time (user + system) a process has used, Linux only: fields 14
/// and 15 of `/proc/<pid>/stat`, in USER_HZ (100 a second on Linux).
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let t = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command (field 2) may hold spaces: count from after it.
    let f: Vec<&str> = t.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// CPU ticks of the whole machine since boot, (busy, total), from the
/// `cpu` line of `/proc/stat` (idle and iowait are the idle part; user,
/// nice, system, irq, softirq and steal the busy one). Two readings give
/// how busy the machine was in between, whoever kept it busy.
pub fn machine_ticks() -> Option<(u64, u64)> {
    let t = std::fs::read_to_string("/proc/stat").ok()?;
    let line = t.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .take(8)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 5 {
        return None;
    }
    let total: u64 = v.iter().sum();
    let idle = v[3] + v[4];
    Some((total - idle, total))
}

/// The busy fraction of the machine between two `machine_ticks` readings.
pub fn busy_between(a: Option<(u64, u64)>, b: Option<(u64, u64)>) -> Option<f64> {
    let ((b0, t0), (b1, t1)) = (a?, b?);
    let total = t1.checked_sub(t0).filter(|t| *t > 0)?;
    Some(b1.saturating_sub(b0) as f64 / total as f64)
}

/// Resident memory each of `n` streams added (KiB): from `idle` to `with`
/// (both KiB).
pub fn kib_per_stream(idle: u64, with: u64, n: usize) -> f64 {
    (with as f64 - idle as f64) / n as f64
}

/// The `p`-th percentile (0..=100) of `samples` (sorted here), nearest rank.
pub fn percentile(samples: &[Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let mut v = samples.to_vec();
    v.sort();
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// KiB as MiB with one decimal, e.g. `41.3 MiB`.
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// The 1-minute load average (`/proc/loadavg`), as context for timings on
/// a shared machine.
pub fn loadavg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
