//! Envoy resources as proto3 JSON, in the form Envoy's `/config_dump` uses
//! (proto field names, `Any` rendered with `"@type"`, default values
//! omitted). Backs `edgeplane translate` and the golden-fixture tests.
//!
//! envoy-types has no serde support, so the messages are rendered by
//! reflection: `build.rs` compiles the Envoy `.proto` files shipped in the
//! envoy-types package into a descriptor set that is embedded here; each
//! resource is encoded with prost, decoded as a `prost_reflect` dynamic
//! message and serialized. Output is deterministic: `serde_json` maps are
//! sorted by key, and resource lists keep the translation's (name) order.

use std::sync::OnceLock;

use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use prost::{Message, Name};
use prost_reflect::{DescriptorPool, DynamicMessage, ReflectMessage, SerializeOptions, Value};
use serde_json::Map;

use crate::translate::{Output, ProxyResources, ProxySelectError};

/// The encoded `FileDescriptorSet` of the Envoy messages edgeplane emits.
static ENVOY_DESCRIPTORS: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/envoy_descriptors.bin"));

const ANY: &str = "google.protobuf.Any";

#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    #[error("the embedded Envoy descriptors are unusable: {0}")]
    Descriptors(String),
    #[error(transparent)]
    Proxy(#[from] ProxySelectError),
    #[error("{kind} `{name}` of proxy {proxy}: {message}")]
    Resource {
        proxy: String,
        kind: &'static str,
        name: String,
        message: String,
    },
}

/// The descriptor pool, decoded once per process.
pub(super) fn pool() -> Result<&'static DescriptorPool, JsonError> {
    static POOL: OnceLock<Result<DescriptorPool, String>> = OnceLock::new();
    POOL.get_or_init(|| DescriptorPool::decode(ENVOY_DESCRIPTORS).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| JsonError::Descriptors(e.clone()))
}

/// Every proxy's resources (or only `proxy`'s) as
/// `{"<ns~name>": {"clusters": [...], "listeners": [...], "routeConfigs": [...]}}`.
///
/// `proxy` is a full key `<namespace>~<proxyName>` or a bare proxy name
/// that matches exactly one key.
pub fn resources_json(
    output: &Output,
    proxy: Option<&str>,
) -> Result<serde_json::Value, JsonError> {
    let pool = pool()?;
    let keys: Vec<&String> = match proxy {
        None => output.keys().collect(),
        Some(p) => vec![crate::translate::select_proxy(output, p)?],
    };
    let mut out = Map::new();
    for key in keys {
        if let Some(res) = output.get(key) {
            out.insert(key.clone(), proxy_json(pool, key, res)?);
        }
    }
    Ok(serde_json::Value::Object(out))
}

fn proxy_json(
    pool: &DescriptorPool,
    key: &str,
    res: &ProxyResources,
) -> Result<serde_json::Value, JsonError> {
    let mut m = Map::new();
    m.insert(
        "clusters".into(),
        render_all(pool, key, "Cluster", &res.clusters, |c| &c.name)?,
    );
    m.insert(
        "listeners".into(),
        render_all(pool, key, "Listener", &res.listeners, |l| &l.name)?,
    );
    m.insert(
        "routeConfigs".into(),
        render_encoded(
            pool,
            key,
            "RouteConfiguration",
            &RouteConfiguration::full_name(),
            res.route_configs.iter().map(|r| (&r.name, &r.bytes)),
        )?,
    );
    // Only when there are some: the output of configs without
    // `secretRef` keeps its shape.
    if !res.secrets.is_empty() {
        let mut secrets = render_all(pool, key, "Secret", &res.secrets, |s| &s.name)?;
        redact_private_keys(&mut secrets);
        m.insert("secrets".into(), secrets);
    }
    Ok(serde_json::Value::Object(m))
}

/// What Envoy's own `/config_dump` shows for a private key.
pub const REDACTED: &str = "[redacted]";

/// Replaces every `private_key` data source below `v` with Envoy's
/// `[redacted]`: `translate` output, edgeplane's `/config_dump` and the
/// golden files show which secret is served, never its key.
pub fn redact_private_keys(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, child) in m.iter_mut() {
                if k == "private_key" {
                    *child = serde_json::json!({ "inline_string": REDACTED });
                } else {
                    redact_private_keys(child);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_private_keys),
        _ => {}
    }
}

fn render_all<M: Message + Name>(
    pool: &DescriptorPool,
    proxy: &str,
    kind: &'static str,
    items: &[M],
    name: impl Fn(&M) -> &String,
) -> Result<serde_json::Value, JsonError> {
    render_encoded(
        pool,
        proxy,
        kind,
        &M::full_name(),
        items.iter().map(|m| (name(m).as_str(), m.encode_to_vec())),
    )
}

/// As `render_all`, for resources given encoded (name, bytes).
fn render_encoded<B: AsRef<[u8]>>(
    pool: &DescriptorPool,
    proxy: &str,
    kind: &'static str,
    full_name: &str,
    items: impl Iterator<Item = (impl AsRef<str>, B)>,
) -> Result<serde_json::Value, JsonError> {
    items
        .map(|(name, bytes)| {
            render(pool, full_name, bytes.as_ref()).map_err(|message| JsonError::Resource {
                proxy: proxy.to_string(),
                kind,
                name: name.as_ref().to_string(),
                message,
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(serde_json::Value::Array)
}

/// One encoded message of type `full_name` as proto3 JSON (proto field
/// names, defaults omitted).
fn render(
    pool: &DescriptorPool,
    full_name: &str,
    bytes: &[u8],
) -> Result<serde_json::Value, String> {
    let desc = pool
        .get_message_by_name(full_name)
        .ok_or_else(|| format!("message type {full_name} is not in the embedded descriptors"))?;
    let dynamic = DynamicMessage::decode(desc, bytes)
        .map_err(|e| format!("cannot decode as {full_name}: {e}"))?;
    check_no_unknown_fields(pool, &dynamic, full_name)?;
    let opts = SerializeOptions::new().use_proto_field_name(true);
    dynamic
        .serialize_with_options(serde_json::value::Serializer, &opts)
        .map_err(|e| format!("cannot render as JSON: {e}"))
}

/// Fails when some bytes of `msg` (or of a nested message, `Any` payloads
/// included) matched no field of the descriptors: the JSON would silently
/// leave them out.
fn check_no_unknown_fields(
    pool: &DescriptorPool,
    msg: &DynamicMessage,
    path: &str,
) -> Result<(), String> {
    let desc = msg.descriptor();
    if let Some(f) = msg.unknown_fields().next() {
        return Err(format!(
            "{path}: field number {} is unknown to the descriptors of {}",
            f.number(),
            desc.full_name()
        ));
    }
    if desc.full_name() == ANY {
        let type_url = msg
            .get_field_by_name("type_url")
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let value = msg
            .get_field_by_name("value")
            .and_then(|v| v.as_bytes().cloned())
            .unwrap_or_default();
        let type_name = type_url.rsplit('/').next().unwrap_or_default();
        let inner_desc = pool
            .get_message_by_name(type_name)
            .ok_or_else(|| format!("{path}: Any type {type_url} is not in the descriptors"))?;
        let inner = DynamicMessage::decode(inner_desc, value.as_ref())
            .map_err(|e| format!("{path}: cannot decode Any {type_url}: {e}"))?;
        return check_no_unknown_fields(pool, &inner, &format!("{path}.({type_name})"));
    }
    for (field, value) in msg.fields() {
        let here = format!("{path}.{}", field.name());
        check_value(pool, value, &here)?;
    }
    Ok(())
}

fn check_value(pool: &DescriptorPool, value: &Value, path: &str) -> Result<(), String> {
    match value {
        Value::Message(m) => check_no_unknown_fields(pool, m, path),
        Value::List(items) => items.iter().try_for_each(|v| check_value(pool, v, path)),
        Value::Map(entries) => entries
            .values()
            .try_for_each(|v| check_value(pool, v, path)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::ProxyResources;
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use envoy_types::pb::google::protobuf::Duration;

    fn output(keys: &[&str]) -> Output {
        keys.iter()
            .map(|k| {
                (
                    k.to_string(),
                    ProxyResources {
                        clusters: vec![Cluster {
                            name: format!("c-{k}"),
                            connect_timeout: Some(Duration {
                                seconds: 5,
                                nanos: 0,
                            }),
                            ..Default::default()
                        }],
                        ..Default::default()
                    },
                )
            })
            .collect()
    }

    #[test]
    fn descriptors_decode_and_cover_emitted_types() {
        let pool = pool().expect("descriptor pool");
        for name in [
            "envoy.config.listener.v3.Listener",
            "envoy.config.route.v3.RouteConfiguration",
            "envoy.config.cluster.v3.Cluster",
            "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "envoy.extensions.filters.http.router.v3.Router",
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "envoy.extensions.filters.http.cors.v3.Cors",
            "envoy.extensions.filters.http.fault.v3.HTTPFault",
            "envoy.extensions.filters.http.buffer.v3.BufferPerRoute",
            "envoy.extensions.filters.http.csrf.v3.CsrfPolicy",
            "envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
            "envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute",
            "envoy.config.core.v3.HealthCheck",
            "envoy.extensions.transport_sockets.tls.v3.Secret",
            "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
            "envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig",
        ] {
            assert!(pool.get_message_by_name(name).is_some(), "{name}");
        }
    }

    #[test]
    fn renders_proto_field_names_and_well_known_types() {
        let v = resources_json(&output(&["ns~p"]), None).expect("render");
        assert_eq!(
            v,
            serde_json::json!({"ns~p": {
                "clusters": [{"name": "c-ns~p", "connect_timeout": "5s"}],
                "listeners": [],
                "routeConfigs": [],
            }})
        );
    }

    #[test]
    fn proxy_selection() {
        let out = output(&["a~gw", "b~gw", "a~other"]);
        let full = resources_json(&out, Some("b~gw")).expect("full key");
        assert_eq!(
            full.as_object().map(|m| m.keys().collect::<Vec<_>>()),
            Some(vec![&"b~gw".to_string()])
        );
        let bare = resources_json(&out, Some("other")).expect("bare unique name");
        assert!(bare.get("a~other").is_some());
        let err = resources_json(&out, Some("gw")).expect_err("ambiguous");
        assert!(
            matches!(err, JsonError::Proxy(ProxySelectError::Ambiguous { .. })),
            "{err}"
        );
        let err = resources_json(&out, Some("nope")).expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "unknown proxy `nope`; known proxies: a~gw, a~other, b~gw"
        );
    }
}
