//! Parsed documents → the validated `Model`, collecting every problem.
//!
//! Rules and error texts follow Gloo's translator where Gloo has one (so users
//! can search them), with file, line and column added. Problems never stop
//! the pass: each is recorded and the pass goes on, so one run shows all.
//! A resource with an error is left out of the model; the caller decides
//! what that means for serving (today: keep the last good snapshot).
//!
//! Delegation is resolved here: RouteTables are flattened into their
//! VirtualService's routes, so the model (and translation) never sees them.

mod format;
mod gateway;
mod http_options;
mod listener_options;
mod routes;
mod secret;
mod suggest;
mod tcp;
mod upstream;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_saphyr::Spanned;

use crate::diag::{Diagnostic, Pos, ResourceId};
use crate::manifest::raw;
use crate::manifest::{Document, DocumentBody};
use crate::model::*;

/// The outcome of validation: the model of everything valid, and the
/// diagnostics (errors and warnings) for the rest.
pub struct Validated {
    pub model: Model,
    pub diagnostics: Vec<Diagnostic>,
}

/// Collects diagnostics for one resource.
pub(crate) struct Ctx<'a> {
    id: &'a ResourceId,
    file: &'a std::sync::Arc<Path>,
    doc_pos: &'a Pos,
    line_offset: usize,
    diags: Vec<Diagnostic>,
}

impl<'a> Ctx<'a> {
    fn new(doc: &'a Document) -> Self {
        Ctx {
            id: &doc.id,
            file: &doc.pos.file,
            doc_pos: &doc.pos,
            line_offset: doc.line_offset,
            diags: Vec::new(),
        }
    }

    fn at<T>(&self, s: &Spanned<T>) -> Pos {
        let loc = s.referenced;
        if loc.line() == 0 {
            return self.doc_pos.clone();
        }
        Pos::in_shared(
            self.file,
            loc.line() as usize + self.line_offset,
            loc.column() as usize,
        )
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
                (
                    UpgradeKind::ConnectTerminate,
                    e.value.connect_terminate.as_ref(),
                ),
            ]
            .into_iter()
            .filter_map(|(k, s)| s.map(|s| (k, s)))
            .collect();
            match set.as_slice() {
                [(kind, spec)] => {
                    if out.iter().any(|u| u.kind.name() == kind.name()) {
                        self.error(
                            pos,
                            format!("upgrade config {} is not unique", kind.name()),
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
                    "unimplemented upgrade type: the entry sets none of `websocket`, `connect`, `connectTerminate`",
                ),
                _ => self.error(
                    pos,
                    "an upgrades entry sets more than one upgrade type; use one entry per type",
                ),
            }
        }
        out
    }

    /// Label expressions, checked.
    fn expressions(&mut self, pos: &Pos, exprs: &[raw::Expression]) -> Vec<LabelExpression> {
        let mut out = Vec::new();
        for e in exprs {
            match LabelOp::parse(&e.operator) {
                Some(op) => out.push(LabelExpression {
                    key: e.key.clone(),
                    op,
                    values: e.values.clone(),
                }),
                None => self.error(
                    pos.clone(),
                    format!(
                        "unknown expression operator `{}`; use Equals, NotEquals, In, NotIn, Exists, DoesNotExist, GreaterThan or LessThan",
                        e.operator
                    ),
                ),
            }
        }
        out
    }
}

/// A set of keys, in order for "did you mean" (the first match in key
/// order is the one suggested) and hashed for membership: a route's
/// upstream is looked up once per route, 10,000 times for a big
/// VirtualService, where an ordered set compares the shared namespace over
/// and over.
#[derive(Default)]
pub(crate) struct KeySet {
    sorted: BTreeSet<Key>,
    hashed: std::collections::HashSet<Key, foldhash::fast::RandomState>,
}

impl KeySet {
    pub fn insert(&mut self, k: Key) {
        self.hashed.insert(k.clone());
        self.sorted.insert(k);
    }

    pub fn contains(&self, k: &Key) -> bool {
        self.hashed.contains(k)
    }

    /// In key order.
    pub fn iter(&self) -> std::collections::btree_set::Iter<'_, Key> {
        self.sorted.iter()
    }
}

impl<'k> IntoIterator for &'k KeySet {
    type Item = &'k Key;
    type IntoIter = std::collections::btree_set::Iter<'k, Key>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Documents indexed by kind, for reference resolution.
pub(crate) struct Index<'a> {
    pub virtual_services: BTreeSet<Key>,
    pub upstreams: KeySet,
    pub upstream_groups: BTreeMap<Key, (&'a Document, &'a raw::UpstreamGroupSpec)>,
    pub route_tables: BTreeMap<Key, (&'a Document, &'a raw::RouteTableSpec)>,
    /// VirtualHostOption and RouteOption resources, each validated once on
    /// its own: its options, or the first error that rejects it.
    pub vhost_options: BTreeMap<Key, Result<VirtualHostOptions, String>>,
    pub route_options: BTreeMap<Key, Result<RouteOptions, String>>,
    /// Every Secret document, valid or not: `secretRef` checks existence
    /// and kind here (a broken Secret rejects itself, not its users).
    pub secrets: BTreeMap<Key, secret::SecretInfo>,
    /// "Did you mean" for missing references.
    pub suggest: suggest::Suggester,
}

impl Index<'_> {
    /// Gloo's warning for a reference to an Upstream that does not exist,
    /// with the closest existing one as a hint.
    /// Gloo's warning for a route to an UpstreamGroup that does not exist.
    pub(crate) fn missing_upstream_group(&self, cx: &mut Ctx<'_>, pos: Pos, k: &Key) {
        let mut d = Diagnostic::warning(
            pos,
            Some(cx.id.clone()),
            format!("*v1.UpstreamGroup {{ {k} }} not found"),
        );
        if let Some(near) = self.suggest.closest_among(k, self.upstream_groups.keys()) {
            d = d.with_hint(format!("did you mean `{near}`?"));
        } else {
            d = d
                .with_hint("the route stays, and Envoy answers it with 503 until the group exists");
        }
        cx.diags.push(d);
    }

    pub(crate) fn missing_upstream(&self, cx: &mut Ctx<'_>, pos: Pos, k: &Key) {
        let mut d = Diagnostic::warning(
            pos,
            Some(cx.id.clone()),
            format!("*v1.Upstream {{ {k} }} not found"),
        );
        if let Some(near) = self.suggest.closest(k, &self.upstreams) {
            d = d.with_hint(format!("did you mean `{near}`?"));
        }
        cx.diags.push(d);
    }

    /// An UpstreamGroup destination naming an Upstream that does not
    /// exist: an error on the group, in the words of Gloo's
    /// `verifyUpstreamGroups` (`projects/gloo/pkg/translator/upstream_groups.go`,
    /// wrapping the `list did not find upstream` of `upstream.sk.go`'s `Find`).
    pub(crate) fn missing_group_upstream(&self, cx: &mut Ctx<'_>, pos: Pos, n: usize, k: &Key) {
        let mut d = Diagnostic::error(
            pos,
            Some(cx.id.clone()),
            format!(
                "destination # {n}: upstream not found: list did not find upstream {}.{}",
                k.namespace, k.name
            ),
        );
        if let Some(near) = self.suggest.closest(k, &self.upstreams) {
            d = d.with_hint(format!("did you mean `{near}`?"));
        }
        cx.diags.push(d);
    }
}

/// The message of the first error collected so far.
fn first_error(cx: &Ctx<'_>) -> Option<String> {
    cx.diags
        .iter()
        .find(|d| d.is_error())
        .map(|d| d.message.clone())
}

/// How many of a oneof's fields are set (Gloo's oneofs: exactly one, or at
/// most one).
pub(super) fn count_set(fields: &[bool]) -> usize {
    fields.iter().filter(|set| **set).count()
}

pub(crate) fn key_of(id: &ResourceId) -> Key {
    Key::new(&id.namespace, &id.name)
}

/// Validates all documents into a model.
pub fn validate(docs: &[Document]) -> Validated {
    validate_refs(&docs.iter().collect::<Vec<_>>())
}

/// As `validate`, over documents held elsewhere (the reconciler shares
/// them between its caches instead of copying them).
pub fn validate_refs(docs: &[&Document]) -> Validated {
    validate_with(docs, None)
}

/// What `validate_reusing` keeps from one call to the next: the route
/// bodies it built, by VirtualService and by the raw route they were built
/// from, and the documents they could depend on besides their own.
///
/// Why: after a one-route edit of a VirtualService of 10,000 routes, the
/// other 9,999 are the very raw routes of the last parse (`ParseCache`
/// keeps unchanged route texts' parses), and validating them again was a
/// third of a reload. Only a cache: `validate_reusing` with any memo gives
/// what `validate_refs` gives.
#[derive(Debug, Default)]
pub struct ValidateMemo {
    /// Every document but the VirtualServices, as the last call saw them.
    /// A plain route's body depends on its own fields, its VirtualService's
    /// key and what the index holds (Upstreams, UpstreamGroups); while
    /// these documents are the same allocations, the index is the same.
    context: Vec<std::sync::Arc<Document>>,
    routes: routes::Memo,
}

impl ValidateMemo {
    /// Replaces what the memo holds with what the last call built, and
    /// returns what it held (its caller frees that later, outside a load's
    /// timed part).
    fn replace(
        &mut self,
        context: Vec<std::sync::Arc<Document>>,
        routes: routes::Memo,
    ) -> ValidateMemo {
        ValidateMemo {
            context: std::mem::replace(&mut self.context, context),
            routes: std::mem::replace(&mut self.routes, routes),
        }
    }
}

/// `validate_refs`, taking the body of every plain route (no options, no
/// delegation, no diagnostics) whose raw route and context are unchanged
/// since the last call from `memo`, then remembering this call's. Returns
/// what the memo held before, for the caller to drop.
pub fn validate_reusing(
    docs: &[std::sync::Arc<Document>],
    memo: &mut ValidateMemo,
) -> (Validated, ValidateMemo) {
    let context: Vec<std::sync::Arc<Document>> = docs
        .iter()
        .filter(|d| !matches!(d.body, DocumentBody::VirtualService(_)))
        .cloned()
        .collect();
    let same_context = context.len() == memo.context.len()
        && context
            .iter()
            .zip(&memo.context)
            .all(|(a, b)| std::sync::Arc::ptr_eq(a, b));
    let empty = routes::Memo::default();
    let prior = if same_context { &memo.routes } else { &empty };
    let mut next = routes::Memo::default();
    let refs: Vec<&Document> = docs.iter().map(std::sync::Arc::as_ref).collect();
    let v = validate_with(&refs, Some((prior, &mut next)));
    let old = memo.replace(context, next);
    (v, old)
}

fn validate_with(
    docs: &[&Document],
    mut memo: Option<(&routes::Memo, &mut routes::Memo)>,
) -> Validated {
    let mut diags = Vec::new();
    let mut model = Model::default();
    let mut index = Index {
        virtual_services: BTreeSet::new(),
        upstreams: KeySet::default(),
        upstream_groups: BTreeMap::new(),
        route_tables: BTreeMap::new(),
        vhost_options: BTreeMap::new(),
        route_options: BTreeMap::new(),
        secrets: BTreeMap::new(),
        suggest: suggest::Suggester::default(),
    };
    for &d in docs {
        let k = key_of(&d.id);
        match &d.body {
            DocumentBody::VirtualService(_) => {
                index.virtual_services.insert(k);
            }
            DocumentBody::Upstream(_) => {
                index.upstreams.insert(k);
            }
            DocumentBody::UpstreamGroup(spec) => {
                index.upstream_groups.insert(k, (d, spec));
            }
            DocumentBody::RouteTable(spec) => {
                index.route_tables.insert(k, (d, spec));
            }
            DocumentBody::Secret(spec) => {
                index.secrets.insert(k, secret::SecretInfo::of(spec));
            }
            DocumentBody::Gateway(_)
            | DocumentBody::VirtualHostOption(_)
            | DocumentBody::RouteOption(_) => {}
        }
    }
    // Option resources are validated on their own, once, with diagnostics
    // of their own; who references them only merges the result.
    let mut vhost_options = BTreeMap::new();
    let mut route_options = BTreeMap::new();
    for &doc in docs {
        let mut cx = Ctx::new(doc);
        let key = key_of(&doc.id);
        match &doc.body {
            DocumentBody::VirtualHostOption(spec) => {
                let o = spec
                    .options
                    .as_deref()
                    .map(|o| routes::virtual_host_options(&mut cx, &key, o))
                    .unwrap_or_default();
                vhost_options.insert(key, first_error(&cx).map_or(Ok(o), Err));
            }
            DocumentBody::RouteOption(spec) => {
                let o = spec
                    .options
                    .as_ref()
                    .map(|o| routes::route_options(&mut cx, &key, o, &index))
                    .unwrap_or_default();
                route_options.insert(key, first_error(&cx).map_or(Ok(o), Err));
            }
            _ => continue,
        }
        diags.extend(cx.diags);
    }
    index.vhost_options = vhost_options;
    index.route_options = route_options;

    let mut gw_pos: BTreeMap<Key, (Pos, ResourceId)> = BTreeMap::new();
    let mut vs_pos: BTreeMap<Key, (Pos, ResourceId)> = BTreeMap::new();
    for &doc in docs {
        let mut cx = Ctx::new(doc);
        let key = key_of(&doc.id);
        match &doc.body {
            DocumentBody::Gateway(spec) => {
                let gw = gateway::gateway(&mut cx, key.clone(), spec, &index);
                if let Some(g) = &gw
                    && g.hcm
                        .upgrades
                        .iter()
                        .any(|u| u.kind == UpgradeKind::ConnectTerminate)
                {
                    cx.error(
                        cx.doc_pos.clone(),
                        "connect_terminate is not supported at HCM level; use 'connect' at HCM level and 'connect_terminate' at route level",
                    );
                }
                if let (Some(gw), true) = (gw, cx.ok()) {
                    gw_pos.insert(key.clone(), (doc.pos.clone(), doc.id.clone()));
                    model.gateways.insert(key, gw);
                }
            }
            DocumentBody::VirtualService(spec) => {
                let (vs, rt_diags) = routes::virtual_service(
                    &mut cx,
                    key.clone(),
                    &doc.labels,
                    spec,
                    &index,
                    memo.as_mut().map(|(prior, next)| (*prior, &mut **next)),
                );
                let rt_failed = crate::diag::has_errors(&rt_diags);
                diags.extend(rt_diags);
                if let (Some(vs), true, false) = (vs, cx.ok(), rt_failed) {
                    vs_pos.insert(key.clone(), (doc.pos.clone(), doc.id.clone()));
                    model.virtual_services.insert(key, vs);
                }
            }
            DocumentBody::RouteTable(spec) => {
                // Checked on its own too, so a table no VirtualService uses
                // yet still reports its mistakes.
                diags.extend(routes::route_table_alone(doc, spec, &index));
            }
            DocumentBody::Upstream(spec) => {
                if let (Some(up), true) = (
                    upstream::upstream(&mut cx, key.clone(), spec, &index),
                    cx.ok(),
                ) {
                    model.upstreams.insert(key, up);
                }
            }
            DocumentBody::UpstreamGroup(spec) => {
                upstream::upstream_group(&mut cx, &key, spec, &index);
            }
            // Validated above.
            DocumentBody::VirtualHostOption(_) | DocumentBody::RouteOption(_) => {}
            DocumentBody::Secret(spec) => {
                if let (Some(s), true) = (secret::secret(&mut cx, &key, spec), cx.ok()) {
                    model.secrets.insert(key, s);
                }
            }
        }
        diags.extend(cx.diags);
    }
    diags.extend(routes::check_cycles(&index));
    check_bind_addresses(&model, &gw_pos, &mut diags);
    check_log_clusters(&model, &gw_pos, &mut diags);
    check_domains(&model, &gw_pos, &vs_pos, &mut diags);
    gateway::check_sni_conflicts(&model, &vs_pos, &mut diags);
    http_options::warn_http_context_extensions(&model, &vs_pos, &mut diags);
    tcp::check_filter_chain_matches(&model, &gw_pos, &mut diags);
    diags.sort();
    diags.dedup();
    Validated {
        model,
        diagnostics: diags,
    }
}

/// Gloo: two gateways of one proxy may not bind the same address and port.
fn check_bind_addresses(
    model: &Model,
    pos: &BTreeMap<Key, (Pos, ResourceId)>,
    diags: &mut Vec<Diagnostic>,
) {
    let mut by_bind: BTreeMap<(String, String, String, u32), Vec<&Key>> = BTreeMap::new();
    for gw in model.gateways.values() {
        for p in &gw.proxy_names {
            by_bind
                .entry((
                    gw.key.namespace.clone(),
                    p.clone(),
                    gw.bind_address.clone(),
                    gw.bind_port,
                ))
                .or_default()
                .push(&gw.key);
        }
    }
    for ((_, _, addr, port), keys) in by_bind {
        if keys.len() < 2 {
            continue;
        }
        let names = name_list(keys.iter().map(|k| k.to_string()), ",");
        for k in &keys {
            if let Some((p, id)) = pos.get(k) {
                diags.push(Diagnostic::error(
                    p.clone(),
                    Some(id.clone()),
                    format!(
                        "bind-address {addr}:{port} is not unique in a proxy. gateways: {}",
                        names
                    ),
                ));
            }
        }
    }
}

/// A gRPC access log's cluster must be served: an Upstream that exists but
/// is rejected has no cluster, and Envoy would drop every entry.
fn check_log_clusters(
    model: &Model,
    pos: &BTreeMap<Key, (Pos, ResourceId)>,
    diags: &mut Vec<Diagnostic>,
) {
    let served: BTreeMap<String, &Upstream> = model
        .upstreams
        .iter()
        .map(|(k, u)| (listener_options::upstream_cluster(k), u))
        .collect();
    for gw in model.gateways.values() {
        let o = &gw.options;
        for log in o.access_logs.iter().chain(&o.listener_access_logs) {
            let (LogSink::Grpc(g), Some((p, id))) = (&log.sink, pos.get(&gw.key)) else {
                continue;
            };
            match served.get(&g.cluster) {
                None => diags.push(Diagnostic::error(
                    p.clone(),
                    Some(id.clone()),
                    format!(
                        "grpcService.staticClusterName: the Upstream of cluster `{}` is rejected, so edgeplane serves no such cluster (Envoy would drop every entry)",
                        g.cluster
                    ),
                )),
                // gRPC needs HTTP/2; Envoy's client speaks the cluster's
                // protocol, HTTP/1.1 unless the Upstream says otherwise.
                Some(u) if !u.use_http2 => diags.push(
                    Diagnostic::warning(
                        p.clone(),
                        Some(id.clone()),
                        format!(
                            "grpcService.staticClusterName: Upstream {} does not set useHttp2: true, so Envoy's gRPC access log client speaks HTTP/1.1 to it and no entry arrives",
                            u.key
                        ),
                    )
                    .with_hint("set `useHttp2: true` on the access log service's Upstream"),
                ),
                Some(_) => {}
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
    // Each HTTP gateway of a hybrid gateway has its own route config.
    for gw in model.gateways.values().flat_map(|g| g.http_parts()) {
        // Gloo's proxy-level check: no domains means `*`, so `[]` and
        // `['*']` collide there (Envoy would reject the duplicate too).
        let mut star: Vec<&Key> = Vec::new();
        let mut explicit_star = false;
        for vs in model.virtual_services.values().filter(|v| gw.selects(v)) {
            let has = vs.domains.iter().any(|d| d == "*");
            explicit_star |= has;
            if vs.domains.is_empty() || has {
                star.push(&vs.key);
            }
        }
        if star.len() > 1 && explicit_star {
            let names = name_list(
                star.iter().map(|k| format!("{}_{}", k.namespace, k.name)),
                " ",
            );
            for k in &star {
                if let Some((p, id)) = vs_pos.get(k) {
                    diags.push(Diagnostic::error(
                        p.clone(),
                        Some(id.clone()),
                        format!(
                            "VirtualHost Error: DomainsNotUniqueError. Reason: domain * is shared by the following virtual hosts: [{}]",
                            names
                        ),
                    ));
                }
            }
        }
        let mut by_domain: BTreeMap<&str, Vec<&Key>> = BTreeMap::new();
        for vs in model.virtual_services.values().filter(|v| gw.selects(v)) {
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
                let others = others_list(keys, k);
                let msg = if domain.is_empty() {
                    format!(
                        "domain conflict: other virtual services that belong to the same Gateway as this one don't specify a domain (and thus default to '*'): [{others}]"
                    )
                } else {
                    format!(
                        "domain conflict: the [{domain}] domain is present in other virtual services that belong to the same Gateway as this one: [{others}]"
                    )
                };
                if let Some((p, id)) = vs_pos.get(k) {
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

#[cfg(test)]
mod tests;

/// At most ten names, then how many more: conflict messages stay readable
/// (and linear in size) when thousands of resources collide.
fn name_list(names: impl Iterator<Item = String>, sep: &str) -> String {
    let mut shown = Vec::new();
    let mut total = 0usize;
    for n in names {
        if shown.len() < 10 {
            shown.push(n);
        }
        total += 1;
    }
    if total <= 10 {
        shown.join(sep)
    } else {
        format!("{} and {} more", shown.join(sep), total - 10)
    }
}

/// `name_list` of `keys` without `me`, in O(10) per call after the first
/// eleven keys.
/// The keys other than `me`, at most ten named (then "and N more").
fn others_list(keys: &[&Key], me: &Key) -> String {
    let shown: Vec<String> = keys
        .iter()
        .filter(|k| **k != me)
        .take(10)
        .map(|k| k.to_string())
        .collect();
    let total = keys.len() - 1;
    if total <= 10 {
        shown.join(" ")
    } else {
        format!("{} and {} more", shown.join(" "), total - 10)
    }
}
