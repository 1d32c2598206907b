//! The etcd flags every command that talks to etcd shares (`serve
//! --etcd-endpoints`, `apply`, `delete`, `get`, `export`), with their
//! environment twins, and their `EtcdConfig`.

use std::path::PathBuf;

use crate::source::etcd::layout::{DEFAULT_PREFIX, normalize_prefix};
use crate::source::etcd::{EtcdConfig, TlsFiles};

#[derive(clap::Args, Clone, Debug)]
pub struct EtcdArgs {
    /// etcd members' client URLs, comma-separated
    /// (`http://10.0.0.1:2379,http://10.0.0.2:2379`).
    #[arg(
        long,
        env = "EDGEPLANE_ETCD_ENDPOINTS",
        value_delimiter = ',',
        value_name = "URL,…"
    )]
    pub etcd_endpoints: Option<Vec<String>>,
    /// The etcd key root: manifests are the keys
    /// `<prefix>/<group>/<version>/<Kind>/<namespace>/<name>` (`gloo`: Gloo's Consul layout).
    #[arg(long, env = "EDGEPLANE_ETCD_PREFIX", default_value = DEFAULT_PREFIX)]
    pub etcd_prefix: String,
    /// CA (PEM) that signed the etcd members' certificates (use https:// endpoints).
    #[arg(
        long,
        env = "EDGEPLANE_ETCD_CA",
        value_name = "PEM",
        requires = "etcd_endpoints"
    )]
    pub etcd_ca: Option<PathBuf>,
    /// Client certificate (PEM) for etcd's --client-cert-auth; needs --etcd-key.
    #[arg(
        long,
        env = "EDGEPLANE_ETCD_CERT",
        value_name = "PEM",
        requires = "etcd_key"
    )]
    pub etcd_cert: Option<PathBuf>,
    /// Private key (PEM) of --etcd-cert.
    #[arg(
        long,
        env = "EDGEPLANE_ETCD_KEY",
        value_name = "PEM",
        requires = "etcd_cert"
    )]
    pub etcd_key: Option<PathBuf>,
    /// etcd user (simple auth); the password comes from --etcd-password or EDGEPLANE_ETCD_PASSWORD.
    #[arg(long, env = "EDGEPLANE_ETCD_USER", requires = "etcd_password")]
    pub etcd_user: Option<String>,
    #[arg(
        long,
        env = "EDGEPLANE_ETCD_PASSWORD",
        hide_env_values = true,
        requires = "etcd_user"
    )]
    pub etcd_password: Option<String>,
}

/// The commands that only talk to etcd were given no endpoints.
#[derive(Debug, thiserror::Error)]
#[error("no etcd endpoints: give --etcd-endpoints URL[,URL…] or set EDGEPLANE_ETCD_ENDPOINTS")]
pub struct NoEndpoints;

impl EtcdArgs {
    /// The configuration, when endpoints were given.
    pub fn config(self) -> Option<EtcdConfig> {
        let endpoints = self.etcd_endpoints?;
        let tls = (self.etcd_ca.is_some() || self.etcd_cert.is_some()).then_some(TlsFiles {
            ca: self.etcd_ca,
            cert: self.etcd_cert,
            key: self.etcd_key,
        });
        Some(EtcdConfig {
            endpoints: endpoints
                .into_iter()
                .map(|e| e.trim().to_string())
                .filter(|e| !e.is_empty())
                .collect(),
            prefix: normalize_prefix(&self.etcd_prefix),
            tls,
            user: self.etcd_user.zip(self.etcd_password),
        })
    }

    /// As `config`, endpoints required.
    pub fn require(self) -> Result<EtcdConfig, NoEndpoints> {
        self.config().ok_or(NoEndpoints)
    }
}
