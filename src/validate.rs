//! Parsed documents → the validated `Model`, collecting every problem.
//!
//! Rules and error texts follow Gloo's translator where Gloo has one (so users
//! can search them), with file, line and column added. Problems never stop
//! the pass: each is recorded and the pass goes on, so one run shows all.
//! A resource with an error is left out of the model; the caller decides
//! what that means for serving (today: keep the last good snapshot).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_saphyr::Spanned;

use crate::diag::{Diagnostic, Pos, ResourceId};
use crate::manifest::model as raw;
use crate::manifest::{DEFAULT_PROXY_NAME, Document, DocumentBody};
use crate::model::*;

/// The outcome of validation: the model of everything valid, and the
/// diagnostics (errors and warnings) for the rest.
pub struct Validated {
    pub model: Model,
    pub diagnostics: Vec<Diagnostic>,
}

/// Collects diagnostics for one resource.
struct Ctx<'a> {
    id: &'a ResourceId,
    file: &'a Path,
    doc_pos: &'a Pos,
    diags: Vec<Diagnostic>,
}

impl<'a> Ctx<'a> {
    fn new(doc: &'a Document) -> Self {
        Ctx {
            id: &doc.id,
            file: &doc.pos.file,
            doc_pos: &doc.pos,
            diags: Vec::new(),
        }
    }

    fn at<T>(&self, s: &Spanned<T>) -> Pos {
        let loc = s.referenced;
        if loc.line() == 0 {
            return self.doc_pos.clone();
        }
        Pos::new(self.file, loc.line() as usize, loc.column() as usize)
    }

    fn error(&mut self, pos: Pos, msg: impl Into<String>) {
        self.diags
            .push(Diagnostic::error(pos, Some(self.id.clone()), msg));
    }

    fn warn(&mut self, pos: Pos, msg: impl Into<String>) {
        self.diags
            .push(Diagnostic::warning(pos, Some(self.id.clone()), msg));
    }

    fn ok(&self) -> bool {
        !crate::diag::has_errors(&self.diags)
    }

    fn duration(&mut self, s: &Option<Spanned<String>>) -> Option<Duration> {
        let s = s.as_ref()?;
        match Duration::parse(&s.value) {
            Ok(d) => Some(d),
            Err(e) => {
                let pos = self.at(s);
                self.error(pos, e);
                None
            }
        }
    }

    /// Validates an `upgrades` list: one type per entry, each type once.
    fn upgrades(&mut self, entries: &[Spanned<raw::UpgradeEntry>]) -> Vec<Upgrade> {
        let mut out: Vec<Upgrade> = Vec::new();
        for e in entries {
            let pos = self.at(e);
            let set: Vec<(UpgradeKind, &raw::UpgradeSpec)> = [
                (UpgradeKind::WebSocket, e.value.websocket.as_ref()),
                (UpgradeKind::Connect, e.value.connect.as_ref()),
            ]
            .into_iter()
            .filter_map(|(k, s)| s.map(|s| (k, s)))
            .collect();
            match set.as_slice() {
                [(kind, spec)] => {
                    if out.iter().any(|u| u.kind == *kind) {
                        self.error(
                            pos,
                            format!("upgrade config {} is not unique", kind.envoy_name()),
                        );
                    } else {
                        out.push(Upgrade {
                            kind: *kind,
                            enabled: spec.enabled,
                        });
                    }
                }
                [] => self.error(
                    pos,
                    "unimplemented upgrade type: the entry sets none of `websocket`, `connect`",
                ),
                _ => self.error(
                    pos,
                    "an upgrades entry sets more than one upgrade type; use one entry per type",
                ),
            }
        }
        out
    }
}

/// Validates all documents into a model.
pub fn validate(docs: &[Document]) -> Validated {
    let mut diags = Vec::new();
    let mut model = Model::default();
    let key_of = |id: &ResourceId| Key::new(&id.namespace, &id.name);

    let vs_keys: BTreeSet<Key> = docs
        .iter()
        .filter(|d| matches!(d.body, DocumentBody::VirtualService(_)))
        .map(|d| key_of(&d.id))
        .collect();
    let upstream_keys: BTreeSet<Key> = docs
        .iter()
        .filter(|d| matches!(d.body, DocumentBody::Upstream(_)))
        .map(|d| key_of(&d.id))
        .collect();

    let mut gw_pos: BTreeMap<Key, (Pos, ResourceId)> = BTreeMap::new();
    let mut vs_pos: BTreeMap<Key, (Pos, ResourceId)> = BTreeMap::new();
    for doc in docs {
        let mut cx = Ctx::new(doc);
        let key = key_of(&doc.id);
        match &doc.body {
            DocumentBody::Gateway(spec) => {
                let gw = gateway(&mut cx, key.clone(), spec, &vs_keys);
                if let (Some(gw), true) = (gw, cx.ok()) {
                    gw_pos.insert(key.clone(), (doc.pos.clone(), doc.id.clone()));
                    model.gateways.insert(key, gw);
                }
            }
            DocumentBody::VirtualService(spec) => {
                let vs = virtual_service(&mut cx, key.clone(), spec, &upstream_keys);
                if let (Some(vs), true) = (vs, cx.ok()) {
                    vs_pos.insert(key.clone(), (doc.pos.clone(), doc.id.clone()));
                    model.virtual_services.insert(key, vs);
                }
            }
            DocumentBody::Upstream(spec) => {
                if let (Some(up), true) = (upstream(&mut cx, key.clone(), spec), cx.ok()) {
                    model.upstreams.insert(key, up);
                }
            }
        }
        diags.extend(cx.diags);
    }
    check_bind_addresses(&model, &gw_pos, &mut diags);
    check_domains(&model, &gw_pos, &vs_pos, &mut diags);
    diags.sort();
    Validated {
        model,
        diagnostics: diags,
    }
}

fn gateway(
    cx: &mut Ctx<'_>,
    key: Key,
    spec: &raw::GatewaySpec,
    vs_keys: &BTreeSet<Key>,
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
    let virtual_services = if http.virtual_services.is_empty() {
        None
    } else {
        let mut set = BTreeSet::new();
        for r in &http.virtual_services {
            let k = Key::new(
                r.value
                    .namespace
                    .clone()
                    .unwrap_or_else(|| key.namespace.clone()),
                &r.value.name,
            );
            if !vs_keys.contains(&k) {
                let pos = cx.at(r);
                cx.error(pos, format!("invalid virtual service ref {k}"));
            }
            set.insert(k);
        }
        Some(set)
    };
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
        virtual_services,
        hcm,
    })
}

fn virtual_service(
    cx: &mut Ctx<'_>,
    key: Key,
    spec: &raw::VirtualServiceSpec,
    upstream_keys: &BTreeSet<Key>,
) -> Option<VirtualService> {
    let Some(vh) = &spec.virtual_host else {
        cx.warn(
            cx.doc_pos.clone(),
            format!("virtual service [{key}] does not specify a virtual host"),
        );
        return None;
    };
    let mut domains = Vec::new();
    for d in &vh.domains {
        if d.value.is_empty() && vh.domains.len() > 1 {
            let pos = cx.at(d);
            cx.error(
                pos,
                format!(
                    "virtual host {}_{} has an empty domain",
                    key.namespace, key.name
                ),
            );
        } else if !d.value.is_empty() {
            domains.push(d.value.clone());
        }
    }
    let mut routes = Vec::new();
    for r in &vh.routes {
        if let Some(route) = route(cx, &key, r, upstream_keys) {
            routes.push(route);
        }
    }
    Some(VirtualService {
        key,
        domains,
        routes,
    })
}

fn route(
    cx: &mut Ctx<'_>,
    vs: &Key,
    r: &Spanned<raw::Route>,
    upstream_keys: &BTreeSet<Key>,
) -> Option<Route> {
    let route_pos = cx.at(r);
    let r = &r.value;
    let mut matchers = Vec::new();
    for m in &r.matchers {
        let pos = cx.at(m);
        let paths = [
            m.value.prefix.clone().map(PathMatch::Prefix),
            m.value.exact.clone().map(PathMatch::Exact),
            m.value
                .regex
                .as_ref()
                .map(|s| PathMatch::Regex(s.value.clone())),
        ];
        let mut set: Vec<PathMatch> = paths.into_iter().flatten().collect();
        match set.len() {
            0 => {
                // Gloo: a matcher without a path specifier is an error.
                cx.error(
                    pos,
                    "invalid matcher: no path specifier provided (prefix, exact or regex)",
                );
                continue;
            }
            1 => {}
            _ => {
                cx.error(
                    pos,
                    "invalid matcher: set only one of prefix, exact and regex",
                );
                continue;
            }
        }
        let path = set.remove(0);
        if let (PathMatch::Regex(re), Some(sp)) = (&path, &m.value.regex)
            && let Err(e) = regex::Regex::new(re)
        {
            let pos = cx.at(sp);
            let first = e
                .to_string()
                .lines()
                .last()
                .unwrap_or("")
                .trim()
                .to_string();
            cx.error(
                pos,
                format!("virtual service [{vs}] has a regex matcher with invalid regex, {first}"),
            );
            continue;
        }
        matchers.push(Matcher {
            path,
            case_sensitive: m.value.case_sensitive,
        });
    }
    if r.matchers.is_empty() {
        matchers.push(Matcher {
            path: PathMatch::Prefix("/".into()),
            case_sensitive: None,
        });
    }
    let action = match (&r.route_action, &r.direct_response_action) {
        (Some(_), Some(_)) => {
            cx.error(
                route_pos,
                "invalid route: set only one of routeAction and directResponseAction",
            );
            return None;
        }
        (None, None) => {
            cx.error(route_pos, "invalid route: route must specify an action");
            return None;
        }
        (Some(ra), None) => {
            let Some(up) = ra.single.as_ref().and_then(|s| s.upstream.as_ref()) else {
                cx.error(
                    route_pos,
                    "routeAction must set single.upstream (multi, upstreamGroup and kube destinations are not implemented by edgeplane yet)",
                );
                return None;
            };
            let k = Key::new(
                up.value
                    .namespace
                    .clone()
                    .unwrap_or_else(|| vs.namespace.clone()),
                &up.value.name,
            );
            if !upstream_keys.contains(&k) {
                let pos = cx.at(up);
                cx.warn(pos, format!("*v1.Upstream {{ {k} }} not found"));
            }
            Action::Upstream(k)
        }
        (None, Some(dr)) => {
            if !(200..=599).contains(&dr.status) {
                cx.error(
                    route_pos,
                    format!(
                        "directResponseAction status {} is not an HTTP status (200-599)",
                        dr.status
                    ),
                );
                return None;
            }
            Action::DirectResponse {
                status: dr.status,
                body: dr.body.clone(),
            }
        }
    };
    let empty = raw::RouteOptions::default();
    let o = r.options.as_ref().unwrap_or(&empty);
    let options = RouteOptions {
        upgrades: cx.upgrades(&o.upgrades),
        timeout: cx.duration(&o.timeout),
        idle_timeout: cx.duration(&o.idle_timeout),
        prefix_rewrite: o.prefix_rewrite.clone(),
    };
    Some(Route {
        matchers,
        action,
        options,
    })
}

fn upstream(cx: &mut Ctx<'_>, key: Key, spec: &raw::UpstreamSpec) -> Option<Upstream> {
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

/// Gloo: two gateways of one proxy may not bind the same address and port.
fn check_bind_addresses(
    model: &Model,
    pos: &BTreeMap<Key, (Pos, ResourceId)>,
    diags: &mut Vec<Diagnostic>,
) {
    let mut by_bind: BTreeMap<(String, String, u32), Vec<&Key>> = BTreeMap::new();
    for gw in model.gateways.values() {
        for p in &gw.proxy_names {
            by_bind
                .entry((p.clone(), gw.bind_address.clone(), gw.bind_port))
                .or_default()
                .push(&gw.key);
        }
    }
    for ((_, addr, port), keys) in by_bind {
        if keys.len() < 2 {
            continue;
        }
        let names: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        for k in &keys {
            if let Some((p, id)) = pos.get(k) {
                diags.push(Diagnostic::error(
                    p.clone(),
                    Some(id.clone()),
                    format!(
                        "bind-address {addr}:{port} is not unique in a proxy. gateways: {}",
                        names.join(",")
                    ),
                ));
            }
        }
    }
}

/// Gloo: virtual services attached to the same gateway may not share a domain.
fn check_domains(
    model: &Model,
    gw_pos: &BTreeMap<Key, (Pos, ResourceId)>,
    vs_pos: &BTreeMap<Key, (Pos, ResourceId)>,
    diags: &mut Vec<Diagnostic>,
) {
    let mut seen = BTreeSet::new();
    for gw in model.gateways.values() {
        let mut by_domain: BTreeMap<&str, Vec<&Key>> = BTreeMap::new();
        for vs in model
            .virtual_services
            .values()
            .filter(|v| gw.selects(&v.key))
        {
            if vs.domains.is_empty() {
                by_domain.entry("").or_default().push(&vs.key);
            }
            for d in &vs.domains {
                by_domain.entry(d.as_str()).or_default().push(&vs.key);
            }
        }
        let conflicts: Vec<(&str, Vec<&Key>)> =
            by_domain.into_iter().filter(|(_, v)| v.len() > 1).collect();
        if conflicts.is_empty() {
            continue;
        }
        for (domain, keys) in &conflicts {
            for k in keys {
                let others: Vec<String> = keys
                    .iter()
                    .filter(|o| o != &k)
                    .map(|o| o.to_string())
                    .collect();
                let msg = if domain.is_empty() {
                    format!(
                        "domain conflict: other virtual services that belong to the same Gateway as this one don't specify a domain (and thus default to '*'): [{}]",
                        others.join(" ")
                    )
                } else {
                    format!(
                        "domain conflict: the [{domain}] domain is present in other virtual services that belong to the same Gateway as this one: [{}]",
                        others.join(" ")
                    )
                };
                if let Some((p, id)) = vs_pos.get(k)
                    && seen.insert((k.to_string(), msg.clone()))
                {
                    diags.push(Diagnostic::error(p.clone(), Some(id.clone()), msg));
                }
            }
        }
        if let Some((p, id)) = gw_pos.get(&gw.key) {
            let list: Vec<&str> = conflicts
                .iter()
                .map(|(d, _)| if d.is_empty() { "EMPTY_DOMAIN" } else { *d })
                .collect();
            diags.push(Diagnostic::error(
                p.clone(),
                Some(id.clone()),
                format!("domain conflict: the following domains are present in more than one of the virtual services associated with this gateway: [{}]", list.join(" ")),
            ));
        }
    }
}
