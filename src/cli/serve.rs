//! `edgeplane serve`: flags to `serve::ServeConfig`, and the daemon run on
//! a multi-threaded runtime.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::serve::tls::XdsTlsFiles;
use crate::serve::{ServeConfig, serve};
use crate::source::watch::Debounce;

#[derive(clap::Args)]
pub struct Args {
    /// Directory of Gloo manifests (*.yaml, *.yml; read recursively, never written).
    #[arg(long, env = "EDGEPLANE_CONFIG_DIR")]
    config_dir: PathBuf,
    /// Address of the xDS (ADS, gRPC) server; Gloo's port is 9977.
    #[arg(long, default_value = "127.0.0.1:9977", env = "EDGEPLANE_XDS_ADDRESS")]
    xds_address: SocketAddr,
    /// Address of the admin HTTP server (/healthz, /readyz, /status, /metrics, /config_dump); off when unset.
    #[arg(long, env = "EDGEPLANE_ADMIN_ADDRESS")]
    admin_address: Option<SocketAddr>,
    /// Also re-read the directory this often (e.g. `2s`), for mounts that deliver no file events.
    #[arg(long, env = "EDGEPLANE_POLL_INTERVAL", value_parser = super::parse_duration)]
    poll_interval: Option<Duration>,
    /// Serve xDS (ADS and the status API) over TLS with this certificate
    /// chain (PEM, leaf first); needs --xds-tls-key.
    #[arg(long, env = "EDGEPLANE_XDS_TLS_CERT", value_name = "PEM")]
    xds_tls_cert: Option<PathBuf>,
    /// Private key of --xds-tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "EDGEPLANE_XDS_TLS_KEY", value_name = "PEM")]
    xds_tls_key: Option<PathBuf>,
    /// Require a client certificate signed by this CA (PEM) on the xDS
    /// port (mutual TLS); connections without one fail the handshake.
    #[arg(long, env = "EDGEPLANE_XDS_TLS_CLIENT_CA", value_name = "PEM")]
    xds_tls_client_ca: Option<PathBuf>,
    /// Most resource names one ADS stream may subscribe to, per type and in
    /// total (SotW resource_names; delta subscriptions and
    /// initial_resource_versions); over it the stream ends with RESOURCE_EXHAUSTED.
    #[arg(long, default_value_t = crate::xds::session::DEFAULT_MAX_SUBSCRIBED_NAMES, env = "EDGEPLANE_MAX_SUBSCRIBED_NAMES")]
    max_subscribed_names: usize,
    /// Largest Envoy node (encoded bytes; B, KiB, MiB) an ADS request may
    /// carry; over it the stream ends with RESOURCE_EXHAUSTED.
    #[arg(long, default_value = "256KiB", env = "EDGEPLANE_MAX_NODE_BYTES", value_parser = parse_byte_size)]
    max_node_bytes: usize,
}

/// `4096`, `4096B`, `256KiB`, `4MiB`.
fn parse_byte_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let (digits, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: usize = digits
        .parse()
        .map_err(|_| format!("{s:?}: expected a size such as 4096, 256KiB or 4MiB"))?;
    let mult = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" | "k" => 1024,
        "MiB" | "M" => 1024 * 1024,
        u => return Err(format!("{s:?}: unknown unit {u:?} (use B, KiB or MiB)")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?}: too large"))
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let xds_tls = XdsTlsFiles {
        cert: a.xds_tls_cert,
        key: a.xds_tls_key,
        client_ca: a.xds_tls_client_ca,
    }
    .load()?;
    let cfg = ServeConfig {
        config_dir: a.config_dir,
        xds_address: a.xds_address,
        admin_address: a.admin_address,
        debounce: Debounce {
            poll: a.poll_interval,
            ..Debounce::default()
        },
        xds_tls,
        stream_limits: crate::xds::session::StreamLimits {
            max_subscribed_names: a.max_subscribed_names,
            max_node_bytes: a.max_node_bytes,
        },
    };
    super::runtime()?.block_on(serve(cfg))?;
    Ok(ExitCode::SUCCESS)
}
