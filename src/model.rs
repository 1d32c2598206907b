//! The validated model: what the manifests mean, with Envoy nowhere in sight.
//!
//! Everything here is checked (references resolved or reported, durations
//! parsed, upgrade lists unique) and ordered (maps keyed by namespace/name),
//! so translation can be a plain, total, deterministic function of it.

use std::collections::{BTreeMap, BTreeSet};

/// `namespace/name` of a resource; sorts namespace first.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub namespace: String,
    pub name: String,
}

impl Key {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Key {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.namespace, self.name)
    }
}

/// A protobuf-style duration (seconds + nanoseconds), non-negative.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration {
    pub seconds: i64,
    pub nanos: i32,
}

impl Duration {
    /// Parses Gloo's duration strings: proto-JSON `"1.5s"`, and for
    /// convenience `"250ms"`, `"2m"`, `"1h"`.
    pub fn parse(s: &str) -> Result<Duration, String> {
        let bad = || {
            format!(
                "invalid duration `{s}`: expected a number with a unit, e.g. `15s`, `1.5s`, `250ms`, `5m`"
            )
        };
        let s = s.trim();
        let (num, scale_nanos): (&str, u128) = if let Some(n) = s.strip_suffix("ms") {
            (n, 1_000_000)
        } else if let Some(n) = s.strip_suffix('s') {
            (n, 1_000_000_000)
        } else if let Some(n) = s.strip_suffix('m') {
            (n, 60_000_000_000)
        } else if let Some(n) = s.strip_suffix('h') {
            (n, 3_600_000_000_000)
        } else {
            return Err(bad());
        };
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        if int.is_empty() && frac.is_empty()
            || !int.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
            || frac.len() > 9
        {
            return Err(bad());
        }
        let int_v: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| bad())?
        };
        let frac_v: u128 = if frac.is_empty() {
            0
        } else {
            let padded = format!("{frac:0<9}");
            padded.parse().map_err(|_| bad())?
        };
        let total = int_v
            .checked_mul(scale_nanos)
            .and_then(|v| v.checked_add(frac_v * scale_nanos / 1_000_000_000))
            .ok_or_else(bad)?;
        let seconds = i64::try_from(total / 1_000_000_000).map_err(|_| bad())?;
        if seconds > 315_576_000_000 {
            return Err(format!(
                "duration `{s}` is longer than protobuf allows (10,000 years)"
            ));
        }
        Ok(Duration {
            seconds,
            nanos: (total % 1_000_000_000) as i32,
        })
    }
}

/// Upgrade types Gloo knows at both HCM and route level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum UpgradeKind {
    WebSocket,
    Connect,
}

impl UpgradeKind {
    /// The `upgrade_type` string Envoy is given (Gloo's constants).
    pub fn envoy_name(self) -> &'static str {
        match self {
            UpgradeKind::WebSocket => "websocket",
            UpgradeKind::Connect => "CONNECT",
        }
    }
}

/// One upgrade setting. `enabled: None` means Envoy's default (enabled).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Upgrade {
    pub kind: UpgradeKind,
    pub enabled: Option<bool>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Model {
    pub gateways: BTreeMap<Key, Gateway>,
    pub virtual_services: BTreeMap<Key, VirtualService>,
    pub upstreams: BTreeMap<Key, Upstream>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Gateway {
    pub key: Key,
    pub bind_address: String,
    pub bind_port: u32,
    pub proxy_names: Vec<String>,
    /// `None`: every VirtualService (Gloo's rule when no refs are given).
    pub virtual_services: Option<BTreeSet<Key>>,
    pub hcm: HcmSettings,
}

impl Gateway {
    /// Envoy listener name, Gloo's form: `listener-<bindAddress>-<bindPort>`.
    pub fn listener_name(&self) -> String {
        format!("listener-{}-{}", self.bind_address, self.bind_port)
    }

    /// RouteConfiguration name: `<listener>-routes`.
    pub fn route_config_name(&self) -> String {
        format!("{}-routes", self.listener_name())
    }

    /// True when this gateway serves `vs`.
    pub fn selects(&self, vs: &Key) -> bool {
        self.virtual_services
            .as_ref()
            .is_none_or(|set| set.contains(vs))
    }
}

/// HCM settings as given; `None` leaves Envoy's (or Gloo's) default.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HcmSettings {
    /// The user's upgrade list, in order, unique by type.
    pub upgrades: Vec<Upgrade>,
    pub stream_idle_timeout: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    pub request_timeout: Option<Duration>,
    pub request_headers_timeout: Option<Duration>,
    pub drain_timeout: Option<Duration>,
    pub delayed_close_timeout: Option<Duration>,
    pub use_remote_address: Option<bool>,
    pub server_name: Option<String>,
    pub skip_xff_append: Option<bool>,
    pub via: Option<String>,
    pub xff_num_trusted_hops: Option<u32>,
    pub generate_request_id: Option<bool>,
    pub proxy_100_continue: Option<bool>,
    pub max_request_headers_kb: Option<u32>,
    pub normalize_path: Option<bool>,
    pub merge_slashes: Option<bool>,
    pub preserve_external_request_id: Option<bool>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct VirtualService {
    pub key: Key,
    /// Empty means `*`.
    pub domains: Vec<String>,
    pub routes: Vec<Route>,
}

impl VirtualService {
    /// Envoy virtual host name: `<namespace>_<name>`.
    pub fn vhost_name(&self) -> String {
        format!("{}_{}", self.key.namespace, self.key.name)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Route {
    pub matchers: Vec<Matcher>,
    pub action: Action,
    pub options: RouteOptions,
}

#[derive(Clone, Debug, PartialEq)]
pub enum PathMatch {
    Prefix(String),
    Exact(String),
    Regex(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Matcher {
    pub path: PathMatch,
    pub case_sensitive: Option<bool>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Forward to an upstream's cluster (which may be missing: Envoy 503s).
    Upstream(Key),
    DirectResponse {
        status: u32,
        body: Option<String>,
    },
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct RouteOptions {
    pub upgrades: Vec<Upgrade>,
    pub timeout: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    pub prefix_rewrite: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Upstream {
    pub key: Key,
    pub hosts: Vec<HostPort>,
}

impl Upstream {
    /// Envoy cluster name: `<name>_<namespace>`.
    pub fn cluster_name(&self) -> String {
        cluster_name(&self.key)
    }
}

/// Envoy cluster name for an upstream key: `<name>_<namespace>`.
pub fn cluster_name(key: &Key) -> String {
    format!("{}_{}", key.name, key.namespace)
}

#[derive(Clone, Debug, PartialEq)]
pub struct HostPort {
    pub addr: String,
    pub port: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let d = |s| Duration::parse(s);
        assert_eq!(
            d("15s"),
            Ok(Duration {
                seconds: 15,
                nanos: 0
            })
        );
        assert_eq!(
            d("1.5s"),
            Ok(Duration {
                seconds: 1,
                nanos: 500_000_000
            })
        );
        assert_eq!(
            d("250ms"),
            Ok(Duration {
                seconds: 0,
                nanos: 250_000_000
            })
        );
        assert_eq!(
            d("0s"),
            Ok(Duration {
                seconds: 0,
                nanos: 0
            })
        );
        assert_eq!(
            d("2m"),
            Ok(Duration {
                seconds: 120,
                nanos: 0
            })
        );
        assert!(d("15").is_err());
        assert!(d("-1s").is_err());
        assert!(d("s").is_err());
        assert!(d("1.2.3s").is_err());
    }
}
