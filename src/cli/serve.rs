//! `edgeplane serve`: flags to `serve::ServeConfig`, and the daemon run on
//! a multi-threaded runtime.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::serve::tls::XdsTlsFiles;
use crate::serve::transport::Limits;
use crate::serve::{ServeConfig, Source, serve};
use crate::source::watch::Debounce;

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["config_dir", "etcd_endpoints"])))]
#[command(group(clap::ArgGroup::new("etcd_options").multiple(true).args(["etcd_prefix", "etcd_ca", "etcd_cert", "etcd_user"]).conflicts_with("config_dir")))]
pub struct Args {
    /// Directory of Gloo manifests (*.yaml, *.yml; read recursively, never written).
    #[arg(long, env = "EDGEPLANE_CONFIG_DIR")]
    config_dir: Option<PathBuf>,
    /// Read the manifests from etcd instead (`--etcd-endpoints`; the
    /// other etcd flags need it).
    #[command(flatten)]
    etcd: super::etcd_flags::EtcdArgs,
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
    /// Most live connections on the xDS port, all clients together; over
    /// it, a new connection is closed at once.
    #[arg(long, default_value_t = 1024, env = "EDGEPLANE_MAX_CONNECTIONS",
          value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// Most concurrent gRPC streams on one xDS connection (HTTP/2
    /// SETTINGS_MAX_CONCURRENT_STREAMS; more are refused with REFUSED_STREAM).
    #[arg(long, default_value_t = 100, env = "EDGEPLANE_MAX_STREAMS_PER_CONNECTION",
          value_parser = clap::value_parser!(u32).range(1..))]
    max_streams_per_connection: u32,
    /// Largest inbound gRPC message on the xDS port (ADS, status API, stats
    /// sink), e.g. `4MiB`, `512KiB`, `65536`; larger ones get RESOURCE_EXHAUSTED.
    /// Responses may be up to 256 MiB.
    #[arg(long, default_value = "4MiB", env = "EDGEPLANE_MAX_REQUEST_BYTES", value_parser = parse_bytes)]
    max_request_bytes: usize,
    /// HTTP/2 PING interval on xDS connections.
    #[arg(long, default_value = "30s", env = "EDGEPLANE_HTTP2_KEEPALIVE_INTERVAL", value_parser = super::parse_duration)]
    http2_keepalive_interval: Duration,
    /// Close an xDS connection whose PING is not answered within this.
    #[arg(long, default_value = "10s", env = "EDGEPLANE_HTTP2_KEEPALIVE_TIMEOUT", value_parser = super::parse_duration)]
    http2_keepalive_timeout: Duration,
    /// Close an xDS connection that opens no stream within this of connecting.
    #[arg(long, default_value = "30s", env = "EDGEPLANE_IDLE_TIMEOUT", value_parser = super::parse_duration)]
    idle_timeout: Duration,
    /// Most live connections on the admin port; over it, the connection
    /// reading its request the longest is dropped for the next one.
    #[arg(long, default_value_t = 64, env = "EDGEPLANE_ADMIN_MAX_CONNECTIONS",
          value_parser = clap::value_parser!(u32).range(1..))]
    admin_max_connections: u32,
    /// Host header values the admin server answers besides loopback names
    /// and its own address (comma-separated, e.g. `edgeplane.example.com,10.0.0.5:9091`);
    /// any other Host gets 421 (DNS-rebinding protection).
    #[arg(long, env = "EDGEPLANE_ADMIN_ALLOWED_HOSTS", value_delimiter = ',')]
    admin_allowed_hosts: Vec<String>,
    /// Most resource names one ADS stream may subscribe to, per type and in
    /// total (SotW resource_names; delta subscriptions and
    /// initial_resource_versions); over it the stream ends with RESOURCE_EXHAUSTED.
    #[arg(long, default_value_t = crate::xds::session::DEFAULT_MAX_SUBSCRIBED_NAMES, env = "EDGEPLANE_MAX_SUBSCRIBED_NAMES")]
    max_subscribed_names: usize,
    /// Largest Envoy node (encoded bytes, e.g. `256KiB`) an ADS request may
    /// carry; over it the stream ends with RESOURCE_EXHAUSTED.
    #[arg(long, default_value = "256KiB", env = "EDGEPLANE_MAX_NODE_BYTES", value_parser = parse_bytes)]
    max_node_bytes: usize,
}

/// A byte size: a number with an optional `KiB`, `MiB` or `GiB` suffix.
pub(crate) fn parse_bytes(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let (num, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, ""),
    };
    let n: usize = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a size such as 4MiB, 512KiB or 65536"))?;
    let mult: usize = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        u => return Err(format!("{s:?}: unknown unit {u:?} (use KiB, MiB or GiB)")),
    };
    match n.checked_mul(mult) {
        Some(0) | None => Err(format!("{s:?}: must be between 1 byte and 4GiB")),
        Some(v) if v > u32::MAX as usize => Err(format!("{s:?}: must be between 1 byte and 4GiB")),
        Some(v) => Ok(v),
    }
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
    let source = match (a.config_dir, a.etcd.config()) {
        (Some(dir), _) => Source::Dir(dir),
        (None, Some(etcd)) => Source::Etcd(etcd),
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
        limits: Limits {
            max_connections: a.max_connections as usize,
            max_streams_per_connection: a.max_streams_per_connection,
            max_request_bytes: a.max_request_bytes,
            http2_keepalive_interval: a.http2_keepalive_interval,
            http2_keepalive_timeout: a.http2_keepalive_timeout,
            idle_timeout: a.idle_timeout,
            admin_max_connections: a.admin_max_connections as usize,
            admin_allowed_hosts: a.admin_allowed_hosts,
        },
        stream_limits: crate::xds::session::StreamLimits {
            max_subscribed_names: a.max_subscribed_names,
            max_node_bytes: a.max_node_bytes,
        },
    };
    super::runtime()?.block_on(serve(cfg))?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_bytes("4MiB"), Ok(4 << 20));
        assert_eq!(parse_bytes("512KiB"), Ok(512 << 10));
        assert_eq!(parse_bytes("65536"), Ok(65536));
        assert_eq!(parse_bytes("1 GiB"), Ok(1 << 30));
        assert!(parse_bytes("0").is_err());
        assert!(parse_bytes("5GiB").is_err());
        assert!(parse_bytes("4MB").is_err());
        assert!(parse_bytes("MiB").is_err());
    }
}
