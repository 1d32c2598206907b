//! Upstream → `model::Upstream`; UpstreamGroup checks (its destinations are
//! resolved where a route uses it).

use super::{Ctx, Index};
use crate::manifest::model as raw;
use crate::model::*;

pub(super) fn upstream(cx: &mut Ctx<'_>, key: Key, spec: &raw::UpstreamSpec) -> Option<Upstream> {
    let Some(st) = &spec.static_ else {
        cx.error(
            cx.doc_pos.clone(),
            "upstream has no `static` spec; kube, aws and other upstream types are not implemented by edgeplane yet",
        );
        return None;
    };
    if st.hosts.is_empty() {
        cx.error(cx.doc_pos.clone(), "static upstream has no hosts");
    }
    let mut hosts = Vec::new();
    for h in &st.hosts {
        let pos = cx.at(h);
        if h.value.addr.is_empty() {
            cx.error(pos.clone(), "host has an empty addr");
        }
        if h.value.port == 0 || h.value.port > 65535 {
            cx.error(
                pos,
                format!("host port {} is not a valid port (1-65535)", h.value.port),
            );
        }
        hosts.push(HostPort {
            addr: h.value.addr.clone(),
            port: h.value.port,
        });
    }
    Some(Upstream { key, hosts })
}

pub(super) fn upstream_group(
    cx: &mut Ctx<'_>,
    key: &Key,
    spec: &raw::UpstreamGroupSpec,
    index: &Index<'_>,
) {
    let _ = weighted(cx, key, &spec.destinations, index);
}

/// Resolves weighted destinations (`multi` or an UpstreamGroup's list).
/// Missing upstreams are warnings (Envoy answers 503), as in Gloo; a total
/// weight below 1 is an error.
pub(super) fn weighted(
    cx: &mut Ctx<'_>,
    owner: &Key,
    dests: &[serde_saphyr::Spanned<raw::WeightedDestination>],
    index: &Index<'_>,
) -> Option<Vec<(Key, u32)>> {
    let mut out = Vec::new();
    for d in dests {
        let pos = cx.at(d);
        let Some(up) = &d.value.destination.upstream else {
            cx.error(pos, "destination must set upstream (kube and consul destinations are not implemented by edgeplane yet)");
            continue;
        };
        let k = ref_key(&up.value, &owner.namespace);
        if !index.upstreams.contains(&k) {
            let p = cx.at(up);
            cx.warn(p, format!("*v1.Upstream {{ {k} }} not found"));
        }
        out.push((k, d.value.weight.unwrap_or(0)));
    }
    let total: u64 = out.iter().map(|(_, w)| u64::from(*w)).sum();
    if total < 1 {
        cx.error(
            cx.doc_pos.clone(),
            "invalid route: the sum of all weights in a multi destination must be greater than 0",
        );
        return None;
    }
    Some(out)
}

/// A reference's key; the namespace defaults to the referrer's.
pub(super) fn ref_key(r: &raw::ResourceRef, owner_ns: &str) -> Key {
    Key::new(
        r.namespace.clone().unwrap_or_else(|| owner_ns.to_string()),
        &r.name,
    )
}
