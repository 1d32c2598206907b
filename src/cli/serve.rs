//! `edgeplane serve`: flags to `serve::ServeConfig`, and the daemon run on
//! a multi-threaded runtime.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::serve::tls::XdsTlsFiles;
use crate::serve::{ServeConfig, Source, serve};
use crate::source::etcd::{EtcdConfig, TlsFiles};
use crate::source::watch::Debounce;

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["config_dir", "etcd_endpoints"])))]
pub struct Args {
    /// Directory of Gloo manifests (*.yaml, *.yml; read recursively, never written).
    #[arg(long, env = "EDGEPLANE_CONFIG_DIR")]
    config_dir: Option<PathBuf>,
    /// Read the manifests from etcd instead: its members' client URLs,
    /// comma-separated (`http://10.0.0.1:2379,http://10.0.0.2:2379`).
    #[arg(
        long,
        env = "EDGEPLANE_ETCD_ENDPOINTS",
        value_delimiter = ',',
        value_name = "URL,…"
    )]
    etcd_endpoints: Option<Vec<String>>,
    /// The etcd key root: manifests are the keys
    /// `<prefix>/<group>/<version>/<Kind>/<namespace>/<name>` (`gloo`: Gloo's Consul layout).
    #[arg(long, env = "EDGEPLANE_ETCD_PREFIX", default_value = crate::source::etcd::layout::DEFAULT_PREFIX, conflicts_with = "config_dir")]
    etcd_prefix: String,
    /// CA (PEM) that signed the etcd members' certificates (use https:// endpoints).
    #[arg(
        long,
        env = "EDGEPLANE_ETCD_CA",
        value_name = "PEM",
        requires = "etcd_endpoints"
    )]
    etcd_ca: Option<PathBuf>,
    /// Client certificate (PEM) for etcd's --client-cert-auth; needs --etcd-key.
    #[arg(
        long,
        env = "EDGEPLANE_ETCD_CERT",
        value_name = "PEM",
        requires = "etcd_key"
    )]
    etcd_cert: Option<PathBuf>,
    /// Private key (PEM) of --etcd-cert.
    #[arg(
        long,
        env = "EDGEPLANE_ETCD_KEY",
        value_name = "PEM",
        requires = "etcd_cert"
    )]
    etcd_key: Option<PathBuf>,
    /// etcd user (simple auth); the password comes from --etcd-password or EDGEPLANE_ETCD_PASSWORD.
    #[arg(long, env = "EDGEPLANE_ETCD_USER", requires = "etcd_password")]
    etcd_user: Option<String>,
    #[arg(
        long,
        env = "EDGEPLANE_ETCD_PASSWORD",
        hide_env_values = true,
        requires = "etcd_user"
    )]
    etcd_password: Option<String>,
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
    let source = match (a.config_dir, a.etcd_endpoints) {
        (Some(dir), _) => Source::Dir(dir),
        (None, Some(endpoints)) => {
            let tls = (a.etcd_ca.is_some() || a.etcd_cert.is_some()).then_some(TlsFiles {
                ca: a.etcd_ca,
                cert: a.etcd_cert,
                key: a.etcd_key,
            });
            Source::Etcd(EtcdConfig {
                endpoints: endpoints
                    .into_iter()
                    .map(|e| e.trim().to_string())
                    .filter(|e| !e.is_empty())
                    .collect(),
                prefix: crate::source::etcd::layout::normalize_prefix(&a.etcd_prefix),
                tls,
                user: a.etcd_user.zip(a.etcd_password),
            })
        }
        (None, None) => anyhow::bail!("give --config-dir or --etcd-endpoints"),
    };
    let cfg = ServeConfig {
        source,
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
