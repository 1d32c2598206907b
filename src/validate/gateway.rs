//! Gateway → `model::Gateway`: bind address and port, proxies, which
//! VirtualServices it serves, and its HTTP connection manager settings.

use std::collections::BTreeSet;

use super::{Ctx, Index};
use crate::manifest::DEFAULT_PROXY_NAME;
use crate::manifest::model as raw;
use crate::model::*;

pub(super) fn gateway(
    cx: &mut Ctx<'_>,
    key: Key,
    spec: &raw::GatewaySpec,
    index: &Index<'_>,
) -> Option<Gateway> {
    let port = spec.bind_port.value;
    if port == 0 || port > 65535 {
        let pos = cx.at(&spec.bind_port);
        cx.error(
            pos,
            format!("bindPort {port} is not a valid port (1-65535)"),
        );
    }
    if let Some(ssl) = &spec.ssl
        && ssl.value
    {
        let pos = cx.at(ssl);
        cx.error(pos, "ssl gateways are not implemented by edgeplane yet");
    }
    let Some(http) = &spec.http_gateway else {
        cx.error(
            cx.doc_pos.clone(),
            "gateway has no httpGateway; tcpGateway and hybridGateway are not implemented by edgeplane yet",
        );
        return None;
    };
    let selection = selection(cx, &key, http, index);
    let empty = raw::HcmSettings::default();
    let h = http
        .options
        .as_ref()
        .and_then(|o| o.http_connection_manager_settings.as_ref())
        .unwrap_or(&empty);
    let hcm = HcmSettings {
        upgrades: cx.upgrades(&h.upgrades),
        stream_idle_timeout: cx.duration(&h.stream_idle_timeout),
        idle_timeout: cx.duration(&h.idle_timeout),
        request_timeout: cx.duration(&h.request_timeout),
        request_headers_timeout: cx.duration(&h.request_headers_timeout),
        drain_timeout: cx.duration(&h.drain_timeout),
        delayed_close_timeout: cx.duration(&h.delayed_close_timeout),
        use_remote_address: h.use_remote_address,
        server_name: h.server_name.clone(),
        skip_xff_append: h.skip_xff_append,
        via: h.via.clone(),
        xff_num_trusted_hops: h.xff_num_trusted_hops,
        generate_request_id: h.generate_request_id,
        proxy_100_continue: h.proxy_100_continue,
        max_request_headers_kb: h.max_request_headers_kb,
        normalize_path: h.normalize_path,
        merge_slashes: h.merge_slashes,
        preserve_external_request_id: h.preserve_external_request_id,
    };
    let proxy_names = if spec.proxy_names.is_empty() {
        vec![DEFAULT_PROXY_NAME.to_string()]
    } else {
        let mut names = spec.proxy_names.clone();
        names.sort();
        names.dedup();
        names
    };
    let bind_address = spec
        .bind_address
        .clone()
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| "::".to_string());
    Some(Gateway {
        key,
        bind_address,
        bind_port: port,
        proxy_names,
        selection,
        hcm,
    })
}

/// Gloo's precedence: expressions, then the label selector, then refs.
fn selection(
    cx: &mut Ctx<'_>,
    key: &Key,
    http: &raw::HttpGateway,
    index: &Index<'_>,
) -> VsSelection {
    let namespaces = http.virtual_service_namespaces.clone();
    if let Some(e) = &http.virtual_service_expressions
        && !e.expressions.is_empty()
    {
        let pos = cx.doc_pos.clone();
        let expressions = cx.expressions(&pos, &e.expressions);
        return VsSelection::Expressions {
            expressions,
            namespaces,
        };
    }
    if !http.virtual_service_selector.is_empty() {
        return VsSelection::Labels {
            labels: http.virtual_service_selector.clone(),
            namespaces,
        };
    }
    if http.virtual_services.is_empty() {
        return VsSelection::All { namespaces };
    }
    let mut set = BTreeSet::new();
    for r in &http.virtual_services {
        let k = Key::new(
            r.value
                .namespace
                .clone()
                .unwrap_or_else(|| key.namespace.clone()),
            &r.value.name,
        );
        if !index.virtual_services.contains(&k) {
            let pos = cx.at(r);
            cx.error(pos, format!("invalid virtual service ref {k}"));
        }
        set.insert(k);
    }
    VsSelection::Refs(set)
}
