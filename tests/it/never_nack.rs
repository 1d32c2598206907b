//! Never NACKed: anything edgeplane accepts, Envoy accepts.
//!
//! Envoy is the oracle. A generator (`generator`) writes varied, valid-looking
//! config directories over the supported surface, each from one seed.
//! edgeplane's own pipeline (parse, validate, translate) judges each; every
//! configuration it accepts is handed to the real Envoy binary as a static
//! bootstrap (each proxy's Listeners with their RouteConfigurations
//! inlined, and its Clusters) and checked with `envoy --mode validate`,
//! which runs the same config factories an xDS update does. A configuration
//! edgeplane accepts and Envoy refuses is a missing validation rule.
//!
//! A sample runs in every test run. The long run is a documented command:
//!
//! ```text
//! EDGEPLANE_NEVER_NACK_CASES=10000 EDGEPLANE_NEVER_NACK_SEED=1 \
//!   cargo test --release --test it -- never_nack:: --nocapture
//! ```
//!
//! Failing cases are written under `target/never-nack/<seed>/` with
//! Envoy's message, so each becomes a reproducible test.

mod generator;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use edgeplane::source::SourceFile;
use envoy_types::pb::envoy::config::bootstrap::v3::{Bootstrap, bootstrap};
use envoy_types::pb::envoy::config::listener::v3::filter;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CommonTlsContext, DownstreamTlsContext, UpstreamTlsContext,
    common_tls_context::ValidationContextType,
};
use envoy_types::pb::google::protobuf::Any;
use prost::Message;
use rcgen::{CertificateParams, KeyPair};

use crate::support::envoy_bin;

const HCM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";

/// Cases in an ordinary test run (about a second of Envoy each per core).
const DEFAULT_CASES: u64 = 60;
/// The sample's first seed; `EDGEPLANE_NEVER_NACK_SEED` picks another.
const DEFAULT_SEED: u64 = 0x5eed;
/// One `envoy --mode validate` run may take this long at most.
const ENVOY_DEADLINE: Duration = Duration::from_secs(60);

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One proxy's resources as a static bootstrap: each HCM's RDS reference
/// replaced by the RouteConfiguration it names, so Envoy validates routes
/// with their listener as it would after RDS.
fn bootstrap(res: &edgeplane::translate::ProxyResources) -> Result<Bootstrap, String> {
    let mut listeners = res.listeners.clone();
    for l in &mut listeners {
        for chain in &mut l.filter_chains {
            for f in &mut chain.filters {
                let Some(filter::ConfigType::TypedConfig(any)) = &mut f.config_type else {
                    continue;
                };
                if any.type_url != HCM_TYPE {
                    continue;
                }
                let mut hcm = HttpConnectionManager::decode(any.value.as_slice())
                    .map_err(|e| format!("HCM of {} does not decode: {e}", l.name))?;
                if let Some(http_connection_manager::RouteSpecifier::Rds(rds)) =
                    &hcm.route_specifier
                {
                    let rc = res
                        .route_configs
                        .iter()
                        .find(|r| r.name == rds.route_config_name)
                        .ok_or_else(|| {
                            format!("no RouteConfiguration {}", rds.route_config_name)
                        })?;
                    // Over RDS, Envoy does not check that route clusters
                    // exist (`validate_clusters` defaults to false there,
                    // to true inline): keep RDS's semantics.
                    let mut rc = rc
                        .decode()
                        .map_err(|e| format!("{} does not decode: {e}", rc.name))?;
                    rc.validate_clusters =
                        Some(envoy_types::pb::google::protobuf::BoolValue { value: false });
                    hcm.route_specifier =
                        Some(http_connection_manager::RouteSpecifier::RouteConfig(rc));
                }
                *any = Any {
                    type_url: HCM_TYPE.to_string(),
                    value: hcm.encode_to_vec(),
                };
            }
        }
    }
    // SDS over ADS → the bootstrap's static secrets: a reference without
    // a config source names a static secret.
    for l in &mut listeners {
        for chain in &mut l.filter_chains {
            static_sds::<DownstreamTlsContext>(&mut chain.transport_socket, |t| {
                t.common_tls_context.as_mut()
            })?;
        }
    }
    let mut clusters = res.clusters.clone();
    for c in &mut clusters {
        static_sds::<UpstreamTlsContext>(&mut c.transport_socket, |t| {
            t.common_tls_context.as_mut()
        })?;
        for m in &mut c.transport_socket_matches {
            static_sds::<UpstreamTlsContext>(&mut m.transport_socket, |t| {
                t.common_tls_context.as_mut()
            })?;
        }
    }
    Ok(Bootstrap {
        static_resources: Some(bootstrap::StaticResources {
            listeners,
            clusters,
            secrets: res.secrets.clone(),
        }),
        ..Default::default()
    })
}

/// Drops the ADS config source of every SDS reference in a TLS transport
/// socket of type `T`, so Envoy looks the secret up among the static ones.
fn static_sds<T: Message + Default>(
    socket: &mut Option<envoy_types::pb::envoy::config::core::v3::TransportSocket>,
    common: impl Fn(&mut T) -> Option<&mut CommonTlsContext>,
) -> Result<(), String> {
    use envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType;
    let Some(ConfigType::TypedConfig(any)) = socket.as_mut().and_then(|t| t.config_type.as_mut())
    else {
        return Ok(());
    };
    let Ok(mut ctx) = T::decode(any.value.as_slice()) else {
        // Not this context type (e.g. a non-TLS socket).
        return Ok(());
    };
    let Some(c) = common(&mut ctx) else {
        return Ok(());
    };
    for s in &mut c.tls_certificate_sds_secret_configs {
        s.sds_config = None;
    }
    match &mut c.validation_context_type {
        Some(ValidationContextType::ValidationContextSdsSecretConfig(s)) => s.sds_config = None,
        Some(ValidationContextType::CombinedValidationContext(v)) => {
            if let Some(s) = &mut v.validation_context_sds_secret_config {
                s.sds_config = None;
            }
        }
        _ => {}
    }
    any.value = ctx.encode_to_vec();
    Ok(())
}

/// Envoy's verdict on a binary bootstrap: `None` when it accepts it.
fn envoy_refuses(envoy: &Path, pb: &Path) -> Option<String> {
    let mut child = match Command::new(envoy)
        .args(["--mode", "validate", "--log-level", "error", "-c"])
        .arg(pb)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return Some(format!("cannot run {}: {e}", envoy.display())),
    };
    let end = Instant::now() + ENVOY_DEADLINE;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < end => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Some(format!(
                    "envoy --mode validate took over {ENVOY_DEADLINE:?}"
                ));
            }
        }
    }
    let out = match child.wait_with_output() {
        Ok(o) => o,
        Err(e) => return Some(format!("envoy output unreadable: {e}")),
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (!out.status.success() || !text.contains("OK")).then_some(text)
}

#[derive(Default)]
struct Tally {
    accepted: u64,
    /// Accepted cases that serve Secrets over SDS.
    with_secrets: u64,
    refused: u64,
    /// Why edgeplane refused: each case's first error, by message.
    reasons: std::collections::BTreeMap<String, u64>,
    /// `(seed, proxy, Envoy's message)` of each mismatch.
    mismatches: Vec<(u64, String, String)>,
}

fn run_case(seed: u64, certs: &generator::Certs, envoy: &Path, work: &Path, tally: &mut Tally) {
    let files = generator::case(seed, certs);
    let load = edgeplane::pipeline::build(
        files
            .iter()
            .map(|(name, text)| SourceFile {
                path: PathBuf::from(name),
                text: text.clone(),
            })
            .collect(),
        Vec::new(),
    );
    let Some(output) = load.output.as_ref().filter(|_| !load.has_errors()) else {
        tally.refused += 1;
        if let Some(d) = load.diagnostics.iter().find(|d| d.is_error()) {
            let key: String = d.message.chars().take(70).collect();
            *tally.reasons.entry(key).or_default() += 1;
        }
        return;
    };
    tally.accepted += 1;
    if output.values().any(|p| !p.secrets.is_empty()) {
        tally.with_secrets += 1;
    }
    for (proxy, res) in output {
        let verdict = bootstrap(res).map_err(|e| e.to_string()).and_then(|b| {
            let pb = work.join(format!("case-{seed}.pb"));
            std::fs::write(&pb, b.encode_to_vec()).map_err(|e| e.to_string())?;
            let v = envoy_refuses(envoy, &pb);
            let _ = std::fs::remove_file(&pb);
            v.map_or(Ok(()), Err)
        });
        if let Err(msg) = verdict {
            // Keep the case for reproduction.
            let keep = Path::new(env!("CARGO_TARGET_TMPDIR"))
                .join("never-nack")
                .join(seed.to_string());
            let _ = std::fs::create_dir_all(&keep);
            for (name, text) in &files {
                let _ = std::fs::write(keep.join(name), text);
            }
            let _ = std::fs::write(keep.join("envoy.txt"), &msg);
            tally.mismatches.push((seed, proxy.clone(), msg));
        }
    }
}

#[test]
fn what_edgeplane_accepts_envoy_accepts() {
    let envoy = envoy_bin();
    let cases = env_u64("EDGEPLANE_NEVER_NACK_CASES", DEFAULT_CASES);
    let first = env_u64("EDGEPLANE_NEVER_NACK_SEED", DEFAULT_SEED);
    let work = tempfile::tempdir().expect("tempdir");
    let key = KeyPair::generate().expect("key");
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .expect("params")
        .self_signed(&key)
        .expect("certificate");
    let certs = generator::Certs {
        cert: work.path().join("tls.crt").display().to_string(),
        key: work.path().join("tls.key").display().to_string(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    };
    std::fs::write(&certs.cert, cert.pem()).expect("write cert");
    std::fs::write(&certs.key, key.serialize_pem()).expect("write key");

    let started = Instant::now();
    // Two workers: the seeds are split by parity.
    let tallies: Vec<Tally> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2u64)
            .map(|w| {
                let (envoy, certs, work) = (&envoy, &certs, work.path());
                s.spawn(move || {
                    let mut t = Tally::default();
                    for seed in (first..first + cases).filter(|s| s % 2 == w) {
                        run_case(seed, certs, envoy, work, &mut t);
                    }
                    t
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker"))
            .collect()
    });
    let accepted: u64 = tallies.iter().map(|t| t.accepted).sum();
    let refused: u64 = tallies.iter().map(|t| t.refused).sum();
    let with_secrets: u64 = tallies.iter().map(|t| t.with_secrets).sum();
    let mismatches: Vec<&(u64, String, String)> =
        tallies.iter().flat_map(|t| &t.mismatches).collect();
    println!(
        "never-NACK oracle: {cases} configurations from seed {first}: {accepted} accepted by edgeplane (each checked by Envoy; {with_secrets} with SDS Secrets), {refused} refused by edgeplane, {} accepted by edgeplane but refused by Envoy; {:.1} s",
        mismatches.len(),
        started.elapsed().as_secs_f64()
    );
    let mut reasons: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
    for t in &tallies {
        for (k, n) in &t.reasons {
            *reasons.entry(k.as_str()).or_default() += n;
        }
    }
    let mut top: Vec<(&str, u64)> = reasons.into_iter().collect();
    top.sort_by_key(|t| std::cmp::Reverse(t.1));
    for (why, n) in top.iter().take(12) {
        println!("  refused {n:>5}: {why}");
    }
    // The generator must reach Envoy often enough to mean something.
    assert!(
        accepted * 4 >= cases,
        "only {accepted} of {cases} generated configurations were valid: the generator is too hostile to test Envoy's side"
    );
    let shown: Vec<String> = mismatches
        .iter()
        .take(5)
        .map(|(seed, proxy, msg)| {
            let tail: String = msg.lines().rev().take(4).collect::<Vec<_>>().join("\n");
            format!("seed {seed}, proxy {proxy}:\n{tail}")
        })
        .collect();
    assert!(
        mismatches.is_empty(),
        "{} configurations edgeplane accepts were refused by Envoy (cases kept under {}/never-nack):\n{}",
        mismatches.len(),
        env!("CARGO_TARGET_TMPDIR"),
        shown.join("\n\n")
    );
}
