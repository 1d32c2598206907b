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
    /// Under mTLS: a YAML policy binding client certificate identities
    /// (SAN DNS names, URIs, SPIFFE IDs) to the `namespace~proxy` roles
    /// they may claim, and who may read the status API. Without it any
    /// client certificate may claim any role (a WARN says so).
    #[arg(long, env = "EDGEPLANE_XDS_AUTHZ_POLICY", value_name = "FILE")]
    xds_authz_policy: Option<PathBuf>,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let tls_files = XdsTlsFiles {
        cert: a.xds_tls_cert,
        key: a.xds_tls_key,
        client_ca: a.xds_tls_client_ca,
    };
    let xds_tls = tls_files.load()?;
    let authz_policy =
        crate::serve::tls::load_policy(tls_files.security(), a.xds_authz_policy.as_deref())?;
    let cfg = ServeConfig {
        config_dir: a.config_dir,
        xds_address: a.xds_address,
        admin_address: a.admin_address,
        debounce: Debounce {
            poll: a.poll_interval,
            ..Debounce::default()
        },
        xds_tls,
        authz_policy,
    };
    super::runtime()?.block_on(serve(cfg))?;
    Ok(ExitCode::SUCCESS)
}
