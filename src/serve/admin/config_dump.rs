//! `/config_dump`: what edgeplane serves, decoded from the very bytes sent
//! to Envoy and rendered as `edgeplane translate` renders a translation.

use serde_json::json;

use crate::snapshot::ResourceType;
use crate::status::State;
use crate::translate::ProxySelectError;
use crate::translate::json::JsonError;

/// `/config_dump`: what edgeplane serves, per proxy and type.
pub(super) fn config_dump(
    state: &State,
    proxy: Option<std::borrow::Cow<'_, str>>,
) -> (u16, String) {
    let Some(snap) = state.snapshots.borrow().clone() else {
        let body = json!({"error": "no valid configuration has been loaded yet (see /readyz)"});
        return (503, body.to_string());
    };
    match config_dump_json(&snap, proxy.as_deref()) {
        Ok(v) => (200, v.to_string()),
        Err(JsonError::Proxy(ProxySelectError::Unknown { given, known })) => (
            404,
            json!({"error": format!("unknown proxy `{given}`"), "proxies": known}).to_string(),
        ),
        Err(JsonError::Proxy(e @ ProxySelectError::Ambiguous { .. })) => {
            (404, json!({"error": e.to_string()}).to_string())
        }
        Err(e) => (500, json!({"error": e.to_string()}).to_string()),
    }
}

/// The snapshot as JSON: `{"generation", "proxies": {KEY: {"clusters" |
/// "listeners" | "routeConfigs" | "secrets" (when any; keys redacted):
/// {"typeUrl", "version", "resources":
/// [{"name", "hash", "resource": <proto3 JSON>}]}}}}`. The resources are
/// decoded from the bytes served and rendered as `edgeplane translate`
/// renders them (`json.rs`).
pub fn config_dump_json(
    snap: &crate::snapshot::Snapshot,
    proxy: Option<&str>,
) -> Result<serde_json::Value, JsonError> {
    use crate::translate::{Output, ProxyResources};
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use envoy_types::pb::envoy::config::listener::v3::Listener;
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
    use prost::Message;

    fn decode_all<M: Message + Default>(
        p: &crate::snapshot::ProxySnapshot,
        key: &str,
        t: ResourceType,
    ) -> Result<Vec<M>, JsonError> {
        p.resources(t)
            .map(|e| {
                M::decode(&e.bytes[..]).map_err(|err| JsonError::Resource {
                    proxy: key.to_string(),
                    kind: t.short(),
                    name: e.name.to_string(),
                    message: format!("cannot decode the served bytes: {err}"),
                })
            })
            .collect()
    }

    let mut output = Output::new();
    for (key, p) in &snap.proxies {
        output.insert(
            key.clone(),
            ProxyResources {
                listeners: decode_all::<Listener>(p, key, ResourceType::Listener)?,
                // Rendered from the served bytes as they are.
                route_configs: p
                    .resources(ResourceType::Route)
                    .map(|e| crate::translate::RouteConfig {
                        name: e.name.to_string(),
                        bytes: e.bytes.clone(),
                    })
                    .collect(),
                clusters: decode_all::<Cluster>(p, key, ResourceType::Cluster)?,
                secrets: decode_all::<Secret>(p, key, ResourceType::Secret)?,
            },
        );
    }
    let rendered = crate::translate::json::resources_json(&output, proxy)?;
    let mut proxies = serde_json::Map::new();
    for (key, by_kind) in rendered.as_object().into_iter().flatten() {
        let Some(p) = snap.proxies.get(key) else {
            continue;
        };
        let mut kinds = serde_json::Map::new();
        for (kind, t) in [
            ("clusters", ResourceType::Cluster),
            ("listeners", ResourceType::Listener),
            ("routeConfigs", ResourceType::Route),
            ("secrets", ResourceType::Secret),
        ] {
            // Private keys already redacted by the rendering; a proxy
            // without secrets shows none.
            if t == ResourceType::Secret && p.resources(t).next().is_none() {
                continue;
            }
            let json_items = by_kind[kind].as_array().cloned().unwrap_or_default();
            // Both in name order: the snapshot's maps and the vectors
            // built from them.
            let resources: Vec<serde_json::Value> = p
                .resources(t)
                .zip(json_items)
                .map(
                    |(e, resource)| json!({"name": &*e.name, "hash": e.hash, "resource": resource}),
                )
                .collect();
            kinds.insert(
                kind.to_string(),
                json!({"typeUrl": t.type_url(), "version": p.version(t), "resources": resources}),
            );
        }
        proxies.insert(key.clone(), serde_json::Value::Object(kinds));
    }
    Ok(json!({"generation": snap.generation(), "proxies": proxies}))
}
