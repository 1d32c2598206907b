//! VirtualServices and RouteTables → flat, ordered route lists.
//!
//! Delegation is resolved here, depth first, the way Gloo's converter does
//! it: a delegating route's single prefix matcher becomes the parent of the
//! table's routes (each child path must start with it; violations are
//! warnings that drop the child route), parent options fill only the fields
//! a child leaves empty, tables are taken in ascending `weight` (routes of
//! tables sharing a weight are re-sorted as Gloo's `SortRoutesByPath`
//! does), and a table
//! met again on the same branch is a cycle, reported with its path.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_saphyr::Spanned;

use super::upstream::{Dests, ref_key, weighted};
use super::{Ctx, Index};
use crate::diag::Diagnostic;
use crate::manifest::Document;
use crate::manifest::raw;
use crate::model::*;

/// The delegating route, as seen by its children.
struct Parent {
    matcher: Matcher,
    options: RouteOptions,
    inherit_matchers: bool,
    inherit_path: bool,
    /// Gloo's converter name of this delegating route, without the
    /// `vs:<gateway>_<proxy>_` head (see `model::Route::name`).
    name: String,
    /// Whether this route or one above it is named (Gloo keeps the
    /// converter name only then).
    named: bool,
    /// Where `options.upgrades` was set: `<owner>/<index>` of this route or
    /// of the delegating route it inherited them from; `None` when empty.
    upgrades_from: Option<String>,
}

/// What `ValidateMemo` keeps of one call: per VirtualService, the body of
/// each plain route, by its raw route's allocation (held, so the address
/// cannot be reused by another route while it is a key).
pub(super) type Memo = HashMap<Key, VsMemo>;
pub(super) type VsMemo =
    HashMap<usize, (Arc<raw::RouteFields>, Arc<RouteBody>), foldhash::fast::FixedState>;

struct Walker<'a> {
    index: &'a Index<'a>,
    /// The last call's bodies of this VirtualService's plain routes (only
    /// when the index is unchanged since), and this call's, when recording.
    prior: Option<&'a VsMemo>,
    recorded: Option<VsMemo>,
    /// Diagnostics that belong to other resources (route tables, upstream
    /// groups) found while walking.
    other: Vec<Diagnostic>,
    /// Route tables on the current branch, for cycle detection.
    chain: Vec<Key>,
    /// Checking a route table without its parent: what depends on the
    /// parent (path inheritance) cannot be judged, and its own delegations
    /// are not followed (the walks from VirtualServices do that).
    standalone: bool,
    /// Route tables expanded so far below one VirtualService; bounded, since
    /// tables that select each other make the number of paths explode.
    expansions: usize,
    /// RouteOption resources merged into routes so far.
    route_option_refs: std::collections::BTreeSet<Key>,
}

/// Resolves one `optionsConfigRefs.delegateOptions` entry the way Gloo's
/// `mergeDelegatedVirtualHostOptions` and converter do: the namespace is
/// taken as written (none: the empty namespace, which finds nothing), a
/// missing resource is only a warning with Gloo's text (so resources can
/// be applied in any order), and the caller merges what is found. One that
/// is rejected rejects the referrer too, so both keep their last accepted
/// versions rather than serve without the options asked for.
fn option_ref<'i, T>(
    cx: &mut Ctx<'_>,
    index: &Index<'_>,
    r: &Spanned<raw::OptionsRef>,
    what: &str,
    found: &'i BTreeMap<Key, Result<T, String>>,
) -> Option<(Key, &'i T)> {
    let pos = cx.at(r);
    let k = Key::new(r.value.namespace.clone().unwrap_or_default(), &r.value.name);
    match found.get(&k) {
        Some(Ok(o)) => Some((k, o)),
        Some(Err(msg)) => {
            let kind = if what == "routeOption" {
                "RouteOption"
            } else {
                "VirtualHostOption"
            };
            cx.error(pos, format!("on {kind} {k}: {msg}"));
            None
        }
        None => {
            let mut d = Diagnostic::warning(
                pos,
                Some(cx.id.clone()),
                format!("list did not find {what} {k}"),
            );
            if r.value.namespace.is_none() {
                d = d.with_hint(format!(
                    "Gloo does not default the namespace of a delegateOptions ref; add `namespace: {}`",
                    cx.id.namespace
                ));
            } else if let Some(near) = index.suggest.closest_among(&k, found.keys()) {
                d = d.with_hint(format!("did you mean `{near}`?"));
            }
            cx.diags.push(d);
            None
        }
    }
}

/// At most this many route table expansions below one VirtualService.
const MAX_EXPANSIONS: usize = 1000;

pub(super) fn virtual_service(
    cx: &mut Ctx<'_>,
    key: Key,
    labels: &BTreeMap<String, String>,
    spec: &raw::VirtualServiceSpec,
    index: &Index<'_>,
    memo: Option<(&Memo, &mut Memo)>,
) -> (Option<VirtualService>, Vec<Diagnostic>) {
    // Checked even without a virtual host, so its mistakes show.
    let ssl = spec
        .ssl_config
        .as_ref()
        .and_then(|c| super::gateway::ssl_config(cx, c, index));
    let Some(vh) = &spec.virtual_host else {
        cx.warn(
            cx.doc_pos.clone(),
            format!("virtual service [{key}] does not specify a virtual host"),
        );
        return (None, Vec::new());
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
        } else if !header_value_ok(&d.value) {
            // Envoy's VirtualHost domains: no NUL, CR or LF.
            let pos = cx.at(d);
            cx.error(
                pos,
                format!(
                    "virtual host {}_{} has a domain with a NUL, CR or LF in it: {:?}",
                    key.namespace, key.name, d.value
                ),
            );
        } else if !d.value.is_empty() {
            domains.push(d.value.clone());
        }
    }
    let (prior, next) = match memo {
        Some((prior, next)) => (prior.get(&key), Some(next)),
        None => (None, None),
    };
    let mut w = Walker {
        index,
        prior,
        recorded: next
            .as_ref()
            .map(|_| VsMemo::with_capacity_and_hasher(vh.routes.len(), Default::default())),
        other: Vec::new(),
        chain: Vec::new(),
        standalone: false,
        expansions: 0,
        route_option_refs: Default::default(),
    };
    let mut routes = Vec::new();
    w.routes(cx, &key, &vh.routes, None, &mut routes);
    if let (Some(next), Some(rec)) = (next, w.recorded.take()) {
        next.insert(key.clone(), rec);
    }
    let mut options = vh
        .options
        .as_deref()
        .map(|o| virtual_host_options(cx, &key, o))
        .unwrap_or_default();
    let mut vhost_option_refs = Vec::new();
    for r in vh
        .options_config_refs
        .iter()
        .flat_map(|c| &c.delegate_options)
    {
        match option_ref(cx, index, r, "virtualHostOption", &index.vhost_options) {
            Some((k, o)) => {
                options.inherit(o);
                vhost_option_refs.push(k);
            }
            None => continue,
        }
    }
    vhost_option_refs.sort();
    vhost_option_refs.dedup();
    let vs = VirtualService {
        key,
        labels: labels.clone(),
        domains,
        routes,
        ssl,
        options,
        vhost_option_refs,
        route_option_refs: w.route_option_refs.into_iter().collect(),
    };
    (Some(vs), w.other)
}

/// Checks a RouteTable on its own (no parent), for mistakes that do not
/// depend on who delegates to it.
pub(super) fn route_table_alone(
    doc: &Document,
    spec: &raw::RouteTableSpec,
    index: &Index<'_>,
) -> Vec<Diagnostic> {
    let mut cx = Ctx::new(doc);
    let key = super::key_of(&doc.id);
    let mut w = Walker {
        index,
        prior: None,
        recorded: None,
        other: Vec::new(),
        chain: vec![key.clone()],
        standalone: true,
        expansions: 0,
        route_option_refs: Default::default(),
    };
    let mut sink = Vec::new();
    w.routes(&mut cx, &key, &spec.routes, None, &mut sink);
    let mut out = cx.diags;
    out.extend(w.other);
    out
}

impl Walker<'_> {
    fn routes(
        &mut self,
        cx: &mut Ctx<'_>,
        owner: &Key,
        routes: &[Spanned<raw::Route>],
        parent: Option<&Parent>,
        out: &mut Vec<Route>,
    ) {
        out.reserve(routes.len());
        for (i, r) in routes.iter().enumerate() {
            // A route parsed on its own has positions relative to its text.
            let base = cx.line_offset;
            cx.line_offset = base + r.value.line_shift;
            self.route(cx, owner, i, r, parent, out);
            cx.line_offset = base;
        }
    }

    fn route(
        &mut self,
        cx: &mut Ctx<'_>,
        owner: &Key,
        index: usize,
        sr: &Spanned<raw::Route>,
        parent: Option<&Parent>,
        out: &mut Vec<Route>,
    ) {
        let pos = cx.at(sr);
        let r = &sr.value;
        // A plain route (a VirtualService's own, without options or
        // delegation) depends on nothing but its fields, its owner and the
        // index; one validated without a diagnostic last time is taken as
        // it was (`ValidateMemo`).
        let memo_key = (parent.is_none()
            && !self.standalone
            && r.options.is_none()
            && r.options_config_refs.is_none()
            && r.delegate_action.is_none())
        .then(|| Arc::as_ptr(r.shared_fields()) as usize);
        if let Some(k) = memo_key
            && let Some((fields, body)) = self.prior.and_then(|p| p.get(&k))
        {
            if let Some(rec) = &mut self.recorded {
                rec.insert(k, (fields.clone(), body.clone()));
            }
            out.push(Route {
                body: body.clone(),
                origin: RouteOrigin {
                    pos: Some(pos),
                    upgrades_from: None,
                },
            });
            return;
        }
        let diags_before = (cx.diags.len(), self.other.len());
        let inherit_matchers = r
            .inheritable_matchers
            .or(parent.map(|p| p.inherit_matchers))
            .unwrap_or(false);
        let inherit_path = r
            .inheritable_path_matchers
            .or(parent.map(|p| p.inherit_path))
            .unwrap_or(false);
        // Gloo: a leaf matcher must name a path; a delegating route's
        // matcher without one means `/`, and a child inheriting its
        // parent's path needs none.
        let path_optional = r.delegate_action.is_some()
            || (parent.is_some() && inherit_path)
            || (self.standalone && parent.is_none());
        let mut matchers = Vec::with_capacity(r.matchers.len().max(1));
        for m in &r.matchers {
            match matcher(cx, owner, m, path_optional) {
                Some(m) => matchers.push(m),
                None => return,
            }
        }
        if matchers.is_empty() {
            matchers.push(Matcher::path(PathMatch::Prefix("/".into())));
        }
        if let Some(p) = parent {
            for m in &mut matchers {
                if inherit_path {
                    m.path = p.matcher.path.clone();
                    m.case_sensitive = p.matcher.case_sensitive;
                }
                if inherit_matchers {
                    let mut h = p.matcher.headers.clone();
                    h.append(&mut m.headers);
                    m.headers = h;
                    let mut q = p.matcher.query_parameters.clone();
                    q.append(&mut m.query_parameters);
                    m.query_parameters = q;
                    let mut ms = p.matcher.methods.clone();
                    ms.append(&mut m.methods);
                    m.methods = ms;
                }
            }
            for m in &matchers {
                if let Err(msg) = check_child(&p.matcher, m) {
                    cx.warn(pos.clone(), msg);
                    return;
                }
            }
        }
        // Most routes of a big VirtualService have no options of any kind:
        // they get the one shared empty set, without building (~1 KiB) and
        // comparing a default per route.
        let plain = r.options.is_none() && r.options_config_refs.is_none() && parent.is_none();
        let mut options = RouteOptions::default();
        if plain {
            debug_assert!({
                let empty = raw::RouteOptions::default();
                let before = cx.diags.len();
                route_options(cx, owner, &empty, self.index) == options && cx.diags.len() == before
            });
        } else {
            static EMPTY: std::sync::LazyLock<raw::RouteOptions> =
                std::sync::LazyLock::new(raw::RouteOptions::default);
            options = route_options(
                cx,
                owner,
                r.options.as_deref().unwrap_or(&EMPTY),
                self.index,
            );
            // Gloo's converter: RouteOption resources fill what the route's
            // own options leave unset, earlier refs first, before any
            // parent's.
            for o in r
                .options_config_refs
                .iter()
                .flat_map(|c| &c.delegate_options)
            {
                let index = self.index;
                if let Some((k, ro)) = option_ref(cx, index, o, "routeOption", &index.route_options)
                {
                    options.inherit(ro);
                    self.route_option_refs.insert(k);
                }
            }
        }
        // Gloo's validatePrefixRewrite, on the rewrite of a forwarding route.
        if let Some(p) = options.prefix_rewrite.clone()
            && (r.route_action.is_some() || r.delegate_action.is_some())
            && !check_prefix_rewrite(cx, &pos, &p)
        {
            return;
        }
        let own_upgrades = !options.upgrades.is_empty();
        let upgrades_from = if own_upgrades {
            Some(format!("{owner}/{index}"))
        } else {
            parent.and_then(|p| p.upgrades_from.clone())
        };
        if let Some(p) = parent {
            options.inherit(&p.options);
        }
        if options.prefix_rewrite.is_some() && options.regex_rewrite.is_some() {
            // Envoy: "Specify only one of prefix_rewrite, regex_rewrite or
            // path_rewrite_policy" (Gloo passes both on).
            cx.error(
                pos,
                "route options: set only one of prefixRewrite and regexRewrite (on the route or inherited through delegation)",
            );
            return;
        }
        // Gloo's converter name (`projects/gateway/pkg/translator/
        // converter.go`, routeName): `<ns>_<vs>_route:<name>` for a
        // VirtualService's route, then `_rt:<ns>_<table>_route:<name>` per
        // delegation; an unnamed route is `<unnamed-<index>>`. The name is
        // kept only when a route on the branch is named (so it is written
        // only then, or for a delegating route's children).
        let converter_name = || {
            let display = match &r.name {
                Some(n) => n.clone(),
                None => format!("<unnamed-{index}>"),
            };
            match parent {
                Some(p) => format!(
                    "{}_rt:{}_{}_route:{display}",
                    p.name, owner.namespace, owner.name
                ),
                None => format!("{}_{}_route:{display}", owner.namespace, owner.name),
            }
        };
        let named = r.name.is_some() || parent.is_some_and(|p| p.named);

        let set = super::count_set(&[
            r.route_action.is_some(),
            r.redirect_action.is_some(),
            r.direct_response_action.is_some(),
            r.delegate_action.is_some(),
        ]);
        if set == 0 {
            cx.error(pos, "invalid route: route must specify an action");
            return;
        }
        if set > 1 {
            cx.error(
                pos,
                "invalid route: set only one of routeAction, redirectAction, directResponseAction and delegateAction",
            );
            return;
        }
        if let Some(da) = &r.delegate_action {
            if r.matchers.len() > 1 {
                cx.error(
                    pos,
                    "invalid route: routes with delegate actions must omit or specify a single matcher",
                );
                return;
            }
            if !matches!(matchers[0].path, PathMatch::Prefix(_)) {
                cx.error(
                    pos,
                    "invalid route: routes with delegate actions must use a prefix matcher",
                );
                return;
            }
            let me = Parent {
                matcher: matchers.remove(0),
                options,
                inherit_matchers,
                inherit_path,
                name: converter_name(),
                named,
                upgrades_from,
            };
            self.delegate(cx, owner, da, &me, out);
            return;
        }
        let action = if let Some(ra) = &r.route_action {
            match self.route_action(cx, owner, &pos, ra) {
                Some(a) => a,
                None => return,
            }
        } else if let Some(rd) = &r.redirect_action {
            match redirect(cx, &pos, rd) {
                Some(a) => a,
                None => return,
            }
        } else if let Some(dr) = &r.direct_response_action {
            if !(200..=599).contains(&dr.status) {
                cx.error(
                    pos,
                    format!(
                        "directResponseAction status {} is not an HTTP status (200-599)",
                        dr.status
                    ),
                );
                return;
            }
            Action::DirectResponse {
                status: dr.status,
                body: dr.body.clone(),
            }
        } else {
            return;
        };
        // Gloo's cors plugin (`projects/gloo/pkg/plugins/cors/plugin.go`):
        // a forwarding route needs an origin; a direct response gets the
        // CORS headers instead, unless disabled there; other actions cannot
        // carry CORS.
        if let Some(c) = &options.cors {
            let forwards = action.forwards();
            let direct = matches!(action, Action::DirectResponse { .. });
            if forwards && c.allow_origin.is_empty() && c.allow_origin_regex.is_empty() {
                cx.error(
                    pos,
                    "invalid cors config: must provide at least one of AllowOrigin or AllowOriginRegex",
                );
                return;
            }
            if !forwards && (!direct || c.disable_for_route) {
                cx.error(
                    pos,
                    "cannot use cors plugin on non-Route_Route route actions",
                );
                return;
            }
        }
        if !action.forwards() {
            // Gloo's shadowing and lbhash plugins fail on redirects and
            // direct responses (there is no RouteAction to put them on).
            for (set, plugin) in [
                (options.shadowing.is_some(), "shadowing"),
                (!options.hash_policies.is_empty(), "lbhash"),
            ] {
                if set {
                    cx.error(
                        pos.clone(),
                        format!("cannot use {plugin} plugin on non-Route_Route route actions"),
                    );
                }
            }
            if options.shadowing.is_some() || !options.hash_policies.is_empty() {
                return;
            }
        }
        let body = Arc::new(RouteBody {
            name: named.then(converter_name),
            matchers,
            action,
            options: if plain {
                RouteOptions::empty()
            } else {
                options.shared()
            },
        });
        if let (Some(k), Some(rec)) = (memo_key, &mut self.recorded)
            && diags_before == (cx.diags.len(), self.other.len())
        {
            rec.insert(k, (r.shared_fields().clone(), body.clone()));
        }
        out.push(Route {
            body,
            origin: RouteOrigin {
                pos: Some(pos),
                upgrades_from: upgrades_from.filter(|_| !own_upgrades),
            },
        });
    }

    fn route_action(
        &mut self,
        cx: &mut Ctx<'_>,
        owner: &Key,
        pos: &crate::diag::Pos,
        ra: &raw::RouteAction,
    ) -> Option<Action> {
        let set = super::count_set(&[
            ra.single.is_some(),
            ra.multi.is_some(),
            ra.upstream_group.is_some(),
        ]);
        if set == 0 {
            // Gloo's `ValidateRouteDestinations`
            // (`projects/gloo/pkg/translator/route_config.go`).
            cx.error(
                pos.clone(),
                "routeAction: must specify either 'singleDestination', 'multipleDestinations', 'upstreamGroup', 'clusterHeader', or 'dynamicForwardProxy' for action; edgeplane implements single, multi and upstreamGroup",
            );
            return None;
        }
        if set > 1 {
            cx.error(
                pos.clone(),
                "routeAction must set exactly one of single, multi and upstreamGroup",
            );
            return None;
        }
        if let Some(single) = &ra.single {
            let Some(up) = &single.upstream else {
                cx.error(
                    pos.clone(),
                    "routeAction.single must set upstream (kube and consul destinations are not implemented by edgeplane yet)",
                );
                return None;
            };
            let k = ref_key(&up.value, &owner.namespace);
            if !self.index.upstreams.contains(&k) {
                let p = cx.at(up);
                self.index.missing_upstream(cx, p, &k);
            }
            return Some(Action::Upstream(k));
        }
        if let Some(multi) = &ra.multi {
            return weighted(cx, owner, &multi.destinations, self.index, Dests::Multi)
                .map(Action::Weighted);
        }
        let group = ra.upstream_group.as_ref()?;
        let k = ref_key(&group.value, &owner.namespace);
        let Some((doc, spec)) = self.index.upstream_groups.get(&k) else {
            // Gloo (`projects/gloo/pkg/translator/route_config.go`,
            // `pluginutils.NewUpstreamGroupNotFoundErr`): a warning, the
            // route kept with a cluster that does not exist.
            let p = cx.at(group);
            self.index.missing_upstream_group(cx, p, &k);
            return Some(Action::UpstreamGroupNotFound(k));
        };
        let mut gcx = Ctx::new(doc);
        let dests = weighted(
            &mut gcx,
            &k,
            &spec.destinations,
            self.index,
            Dests::GroupFromRoute,
        );
        if !gcx.ok() {
            cx.error(pos.clone(), format!("upstream group {k} is invalid"));
        }
        self.other.extend(gcx.diags);
        // Gloo's route translation (`route_config.go`, `validateUpstreamGroup`):
        // a missing upstream of the group is a warning on the route, wrapped
        // as for `multi`; the group's own report has the error.
        let dests = dests?;
        for (up, _) in &dests {
            if !self.index.upstreams.contains(up) {
                let p = cx.at(group);
                cx.warn(
                    p,
                    format!(
                        "invalid destination in weighted destination list: *v1.Upstream {{ {up} }} not found"
                    ),
                );
            }
        }
        Some(Action::Weighted(dests))
    }

    fn delegate(
        &mut self,
        cx: &mut Ctx<'_>,
        owner: &Key,
        da: &Spanned<raw::DelegateAction>,
        me: &Parent,
        out: &mut Vec<Route>,
    ) {
        let pos = cx.at(da);
        let tables = self.select_tables(cx, owner, &pos, &da.value);
        if self.standalone {
            return;
        }
        let mut by_weight: BTreeMap<i32, Vec<Key>> = BTreeMap::new();
        for k in tables {
            let w = self
                .index
                .route_tables
                .get(&k)
                .and_then(|(_, s)| s.weight)
                .unwrap_or(0);
            by_weight.entry(w).or_default().push(k);
        }
        for (_, group) in by_weight {
            let mut group_routes = Vec::new();
            for k in &group {
                if let Some(i) = self.chain.iter().position(|c| c == k) {
                    let mut path: Vec<String> =
                        self.chain[i..].iter().map(|c| format!("[{c}]")).collect();
                    path.push(format!("[{k}]"));
                    let msg = format!(
                        "invalid route: delegation cycle detected: {}",
                        path.join(" -> ")
                    );
                    if let Some((doc, _)) = self.index.route_tables.get(k) {
                        self.other.push(Diagnostic::error(
                            doc.pos.clone(),
                            Some(doc.id.clone()),
                            msg.clone(),
                        ));
                    }
                    cx.error(pos.clone(), format!("on sub route table {k}: {msg}"));
                    continue;
                }
                let Some((doc, spec)) = self.index.route_tables.get(k) else {
                    continue;
                };
                self.expansions += 1;
                if self.expansions > MAX_EXPANSIONS {
                    if self.expansions == MAX_EXPANSIONS + 1 {
                        cx.error(
                            pos.clone(),
                            format!("invalid route: delegation expands more than {MAX_EXPANSIONS} route tables below this virtual service; check for route tables that select each other"),
                        );
                    }
                    continue;
                }
                let mut rcx = Ctx::new(doc);
                self.chain.push(k.clone());
                self.routes(&mut rcx, k, &spec.routes, Some(me), &mut group_routes);
                self.chain.pop();
                if let Some(e) = rcx.diags.iter().find(|d| d.is_error()) {
                    cx.error(
                        pos.clone(),
                        format!("on sub route table {k}: {}", e.message),
                    );
                }
                self.other.extend(rcx.diags);
            }
            if group.len() > 1 {
                group_routes.sort_by(gloo_route_order);
            }
            out.extend(group_routes);
        }
    }

    fn select_tables(
        &mut self,
        cx: &mut Ctx<'_>,
        owner: &Key,
        pos: &crate::diag::Pos,
        da: &raw::DelegateAction,
    ) -> Vec<Key> {
        // Expressions are parsed (and bad operators reported) only where
        // they decide: a selector without a reference or labels.
        let exprs = match &da.selector {
            Some(sel) if by_ref(owner, da).is_none() && sel.labels.is_empty() => {
                cx.expressions(pos, &sel.expressions)
            }
            _ => Vec::new(),
        };
        match delegation(self.index, owner, da, &exprs) {
            Delegation::Tables(found) => {
                if found.is_empty() {
                    cx.warn(pos.clone(), "no route table matches the given selector");
                }
                found.into_iter().cloned().collect()
            }
            Delegation::Missing(k) => {
                cx.warn(pos.clone(), format!("route table {k} missing"));
                Vec::new()
            }
            Delegation::NoTarget => {
                // Gloo's `MissingRefAndSelectorWarning`
                // (`projects/gateway/pkg/translator/route_table_selector.go`).
                cx.error(
                    pos.clone(),
                    "cannot determine delegation target: you must specify a route table either via a resource reference or a selector",
                );
                Vec::new()
            }
            Delegation::LabelsAndExpressions => {
                cx.warn(
                    pos.clone(),
                    "cannot use both labels and expressions within the same selector",
                );
                Vec::new()
            }
        }
    }
}

/// The table a delegateAction names by reference, if it names one. The
/// deprecated name/namespace form wins when set, as in Gloo.
fn by_ref(owner: &Key, da: &raw::DelegateAction) -> Option<Key> {
    match (&da.name, &da.reference) {
        (Some(name), _) => Some(Key::new(
            da.namespace
                .clone()
                .unwrap_or_else(|| owner.namespace.clone()),
            name,
        )),
        (None, Some(r)) => Some(ref_key(r, &owner.namespace)),
        (None, None) => None,
    }
}

/// What a delegateAction of `owner` delegates to.
enum Delegation<'i> {
    /// The tables it selects (by reference: the one named).
    Tables(Vec<&'i Key>),
    /// It names a table that does not exist.
    Missing(Key),
    /// Neither a reference nor a selector.
    NoTarget,
    /// A selector with both labels and expressions, which Gloo refuses.
    LabelsAndExpressions,
}

/// Resolves a delegateAction, the one way both the route walk and the
/// cycle check do. `exprs` are the selector's expressions, parsed.
fn delegation<'i>(
    index: &'i Index<'_>,
    owner: &Key,
    da: &raw::DelegateAction,
    exprs: &[LabelExpression],
) -> Delegation<'i> {
    if let Some(k) = by_ref(owner, da) {
        return match index.route_tables.get_key_value(&k) {
            Some((k, _)) => Delegation::Tables(vec![k]),
            None => Delegation::Missing(k),
        };
    }
    let Some(sel) = &da.selector else {
        return Delegation::NoTarget;
    };
    if !sel.labels.is_empty() && !sel.expressions.is_empty() {
        return Delegation::LabelsAndExpressions;
    }
    Delegation::Tables(
        index
            .route_tables
            .iter()
            .filter(|(k, (doc, _))| {
                namespace_selected(&sel.namespaces, &owner.namespace, &k.namespace, false)
                    && sel.labels.iter().all(|(l, v)| doc.labels.get(l) == Some(v))
                    && exprs.iter().all(|e| e.matches(&doc.labels))
            })
            .map(|(k, _)| k)
            .collect(),
    )
}

/// Gloo's child-matcher rules for delegated routes, in its words
/// (`projects/gateway/pkg/translator/converter.go`: `InvalidPrefixErr` and
/// the others, wrapped the way Gloo's `eris.Wrapf` prints them: the detail
/// first, then the error). Gloo's detail for headers, query parameters and
/// case sensitivity prints Go protobuf values, so only the sentence is kept.
fn check_child(parent: &Matcher, child: &Matcher) -> Result<(), String> {
    let prefix = parent.path.text();
    if !child.path.text().starts_with(prefix) {
        return Err(format!(
            "required prefix: {prefix}, prefix: {}: invalid route: route table matchers must begin with the prefix of their parent route's matcher",
            child.path.text()
        ));
    }
    if parent.case_sensitive != child.case_sensitive {
        return Err("invalid route: route table matchers must have the same case sensitivity of their parent route's matcher".into());
    }
    if !parent.headers.iter().all(|h| child.headers.contains(h)) {
        return Err("invalid route: route table matchers must have all headers that were specified on their parent route's matcher".into());
    }
    if !parent
        .query_parameters
        .iter()
        .all(|q| child.query_parameters.contains(q))
    {
        return Err("invalid route: route table matchers must have all query params that were specified on their parent route's matcher".into());
    }
    if !parent.methods.is_empty() && !parent.methods.iter().all(|m| child.methods.contains(m)) {
        return Err(format!(
            "required methods: [{}], methods: [{}]: invalid route: route table matchers must have all methods that were specified on their parent route's matcher",
            parent.methods.join(" "),
            child.methods.join(" ")
        ));
    }
    Ok(())
}

/// Gloo's order for the routes of route tables sharing a weight
/// (`SortRoutesByPath` in Gloo's `projects/gloo/pkg/utils/sort_routes.go`,
/// a stable sort): each route is keyed by its most specific matcher, the
/// first one no other of its matchers sorts before; then more `methods`
/// first, exact before regex before prefix, and the lexicographically
/// greater path first.
fn gloo_route_order(a: &Route, b: &Route) -> std::cmp::Ordering {
    fn key(r: &Route) -> Option<&Matcher> {
        r.matchers.iter().fold(None, |best, m| match best {
            Some(b) if matcher_order(m, b).is_lt() => Some(m),
            None => Some(m),
            keep => keep,
        })
    }
    match (key(a), key(b)) {
        (Some(x), Some(y)) => matcher_order(x, y),
        // A route always has a matcher (`/` by default); keep the order.
        _ => std::cmp::Ordering::Equal,
    }
}

/// Gloo's `lessMatcher`, as an ordering: `Less` sorts first.
fn matcher_order(a: &Matcher, b: &Matcher) -> std::cmp::Ordering {
    fn kind(p: &PathMatch) -> u8 {
        match p {
            PathMatch::Exact(_) => 1,
            PathMatch::Regex(_) => 2,
            PathMatch::Prefix(_) => 3,
        }
    }
    b.methods
        .len()
        .cmp(&a.methods.len())
        .then_with(|| kind(&a.path).cmp(&kind(&b.path)))
        .then_with(|| b.path.text().cmp(a.path.text()))
}

/// RE2 (Envoy's engine) refuses counted repetitions above 1000, which
/// Rust's engine allows; returns the first such count.
pub(super) fn re2_repetition_over_limit(re: &str) -> Option<u32> {
    use regex_syntax::ast::{Ast, RepetitionKind, RepetitionRange};
    let ast = regex_syntax::ast::parse::Parser::new().parse(re).ok()?;
    let mut stack = vec![&ast];
    while let Some(node) = stack.pop() {
        match node {
            Ast::Repetition(r) => {
                if let RepetitionKind::Range(range) = &r.op.kind {
                    let n = match range {
                        RepetitionRange::Exactly(n) | RepetitionRange::AtLeast(n) => *n,
                        RepetitionRange::Bounded(a, b) => (*a).max(*b),
                    };
                    if n > 1000 {
                        return Some(n);
                    }
                }
                stack.push(&r.ast);
            }
            Ast::Group(g) => stack.push(&g.ast),
            Ast::Alternation(a) => stack.extend(a.asts.iter()),
            Ast::Concat(c) => stack.extend(c.asts.iter()),
            _ => {}
        }
    }
    None
}

/// RE2 refuses a repetition operator applied straight to another (`a**`,
/// `a+*`, `a{2}{3}`), which Rust's parser accepts; returns the operators as
/// RE2 names them. `(a*)*` and lazy `a*?` are fine.
pub(super) fn re2_double_repetition(re: &str) -> Option<String> {
    use regex_syntax::ast::Ast;
    let ast = regex_syntax::ast::parse::Parser::new().parse(re).ok()?;
    let mut stack = vec![&ast];
    while let Some(node) = stack.pop() {
        match node {
            Ast::Repetition(r) => {
                if let Ast::Repetition(inner) = r.ast.as_ref() {
                    return re
                        .get(inner.op.span.start.offset..r.op.span.end.offset)
                        .map(str::to_string);
                }
                stack.push(&r.ast);
            }
            Ast::Group(g) => stack.push(&g.ast),
            Ast::Alternation(a) => stack.extend(a.asts.iter()),
            Ast::Concat(c) => stack.extend(c.asts.iter()),
            _ => {}
        }
    }
    None
}

pub(super) fn check_regex(cx: &mut Ctx<'_>, owner: &Key, pos: crate::diag::Pos, re: &str) -> bool {
    if re.is_empty() {
        // Envoy's RegexMatcher requires a non-empty regex.
        cx.error(
            pos,
            format!("virtual service [{owner}] has a regex matcher with an empty regex"),
        );
        return false;
    }
    if let Some(ops) = re2_double_repetition(re) {
        cx.error(
            pos,
            format!("virtual service [{owner}] has a regex matcher with invalid regex, bad repetition operator: {ops}"),
        );
        return false;
    }
    if let Some(n) = re2_repetition_over_limit(re) {
        cx.error(
            pos,
            format!("virtual service [{owner}] has a regex matcher with invalid regex, bad repetition operator: {{{n}}} (RE2, Envoy's regex engine, allows at most 1000)"),
        );
        return false;
    }
    match regex::Regex::new(re) {
        Ok(_) => true,
        Err(e) => {
            let text = e.to_string();
            let last = text.lines().last().unwrap_or("").trim().to_string();
            cx.error(
                pos,
                format!("virtual service [{owner}] has a regex matcher with invalid regex, {last}"),
            );
            false
        }
    }
}

fn matcher(
    cx: &mut Ctx<'_>,
    owner: &Key,
    m: &Spanned<raw::Matcher>,
    path_optional: bool,
) -> Option<Matcher> {
    let pos = cx.at(m);
    let v = &m.value;
    let paths = [
        v.prefix.clone().map(PathMatch::Prefix),
        v.exact.clone().map(PathMatch::Exact),
        v.regex.as_ref().map(|s| PathMatch::Regex(s.value.clone())),
    ];
    let mut set: Vec<PathMatch> = paths.into_iter().flatten().collect();
    let path = match set.len() {
        0 if path_optional => PathMatch::Prefix("/".into()),
        0 => {
            cx.error(
                pos,
                "invalid matcher: no path specifier provided (prefix, exact or regex)",
            );
            return None;
        }
        1 => set.remove(0),
        _ => {
            cx.error(
                pos,
                "invalid matcher: set only one of prefix, exact and regex",
            );
            return None;
        }
    };
    if let PathMatch::Prefix(p) | PathMatch::Exact(p) = &path
        && !check_route_path(cx, &pos, p)
    {
        return None;
    }
    if let (PathMatch::Regex(re), Some(sp)) = (&path, &v.regex) {
        let p = cx.at(sp);
        if !check_regex(cx, owner, p, re) {
            return None;
        }
    }
    let mut headers = Vec::new();
    for h in &v.headers {
        let hp = cx.at(h);
        // Envoy's HeaderMatcher: a name without NUL, CR or LF.
        let name = &h.value.name;
        if !header_name_ok(name) {
            cx.error(
                hp,
                format!("invalid matcher: header name {name:?} is empty or holds a NUL, CR or LF"),
            );
            return None;
        }
        let regex = h.value.regex.unwrap_or(false);
        if regex && !check_regex(cx, owner, hp, h.value.value.as_deref().unwrap_or("")) {
            return None;
        }
        headers.push(HeaderMatch {
            name: h.value.name.clone(),
            value: h.value.value.clone().filter(|s| !s.is_empty()),
            regex,
            invert: h.value.invert_match.unwrap_or(false),
        });
    }
    let mut query_parameters = Vec::new();
    for q in &v.query_parameters {
        let qp = cx.at(q);
        if q.value.name.is_empty() {
            // Envoy's QueryParameterMatcher requires a name.
            cx.error(
                qp,
                "invalid matcher: a queryParameters matcher needs a name",
            );
            return None;
        }
        let regex = q.value.regex.unwrap_or(false);
        if regex && !check_regex(cx, owner, qp, q.value.value.as_deref().unwrap_or("")) {
            return None;
        }
        query_parameters.push(QueryMatch {
            name: q.value.name.clone(),
            value: q.value.value.clone().filter(|s| !s.is_empty()),
            regex,
        });
    }
    if let Some(m) = v.methods.iter().find(|m| {
        m.is_empty()
            || !m
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    }) {
        // Gloo matches methods with a `:method` regex alternation, written
        // as given: an empty method or one with regex syntax in it would
        // make a regex Envoy refuses or one that matches other methods.
        cx.error(
            pos,
            format!("invalid matcher: method {m:?} is not an HTTP method name (letters, digits, `-`, `_`)"),
        );
        return None;
    }
    Some(Matcher {
        path,
        case_sensitive: v.case_sensitive,
        headers,
        query_parameters,
        methods: v.methods.clone(),
    })
}

fn redirect(cx: &mut Ctx<'_>, pos: &crate::diag::Pos, r: &raw::RedirectAction) -> Option<Action> {
    let response_code = match &r.response_code {
        None => RedirectCode::default(),
        Some(code) => {
            const CODES: [(RedirectCode, &str); 5] = [
                (RedirectCode::MovedPermanently, "MOVED_PERMANENTLY"),
                (RedirectCode::Found, "FOUND"),
                (RedirectCode::SeeOther, "SEE_OTHER"),
                (RedirectCode::TemporaryRedirect, "TEMPORARY_REDIRECT"),
                (RedirectCode::PermanentRedirect, "PERMANENT_REDIRECT"),
            ];
            let found = match code {
                raw::EnumValue::Number(n) => usize::try_from(*n).ok().and_then(|i| CODES.get(i)),
                raw::EnumValue::Name(s) => CODES.iter().find(|(_, name)| name == s),
            };
            match (found, code) {
                (Some((c, _)), _) => *c,
                (None, raw::EnumValue::Name(other)) => {
                    cx.error(
                        pos.clone(),
                        format!("unknown redirect responseCode `{other}`; use MOVED_PERMANENTLY, FOUND, SEE_OTHER, TEMPORARY_REDIRECT or PERMANENT_REDIRECT"),
                    );
                    return None;
                }
                (None, raw::EnumValue::Number(n)) => {
                    cx.error(
                        pos.clone(),
                        format!("redirect responseCode {n} is not one of 0-4"),
                    );
                    return None;
                }
            }
        }
    };
    if r.path_redirect.is_some() && r.prefix_rewrite.is_some() {
        cx.error(
            pos.clone(),
            "redirectAction: set only one of pathRedirect and prefixRewrite",
        );
        return None;
    }
    // Gloo's validateEnvoyRoute checks the redirect's path and host as paths.
    let paths_ok = [&r.path_redirect, &r.host_redirect]
        .into_iter()
        .flatten()
        .all(|p| check_route_path(cx, pos, p));
    let rewrite_ok = r
        .prefix_rewrite
        .as_ref()
        .is_none_or(|p| check_prefix_rewrite(cx, pos, p));
    if !(paths_ok && rewrite_ok) {
        return None;
    }
    Some(Action::Redirect(Redirect {
        host: r.host_redirect.clone(),
        path: r.path_redirect.clone(),
        prefix_rewrite: r.prefix_rewrite.clone(),
        response_code,
        https: r.https_redirect.unwrap_or(false),
        strip_query: r.strip_query.unwrap_or(false),
        port: r.port_redirect,
    }))
}

pub(super) fn route_options(
    cx: &mut Ctx<'_>,
    owner: &Key,
    o: &raw::RouteOptions,
    index: &Index<'_>,
) -> RouteOptions {
    let regex_rewrite = o.regex_rewrite.as_ref().and_then(|rr| {
        let p = cx.at(rr);
        check_regex(cx, owner, p, &rr.value.pattern.regex).then(|| {
            (
                rr.value.pattern.regex.clone(),
                rr.value.substitution.clone(),
            )
        })
    });
    let max_stream_duration = o.max_stream_duration.as_ref().map(|m| MaxStreamDuration {
        max_stream_duration: cx.duration(&m.max_stream_duration),
        grpc_timeout_header_max: cx.duration(&m.grpc_timeout_header_max),
        grpc_timeout_header_offset: cx.duration(&m.grpc_timeout_header_offset),
    });
    let retries = o.retries.as_ref().map(|r| retries(cx, r));
    let header_manipulation = o
        .header_manipulation
        .as_ref()
        .map(|h| header_manipulation(cx, h));
    if o.host_rewrite.is_some() && o.auto_host_rewrite.is_some() {
        cx.error(
            cx.doc_pos.clone(),
            "route options: set only one of hostRewrite and autoHostRewrite",
        );
    }
    let cors = o.cors.as_ref().map(|c| cors(cx, owner, c));
    RouteOptions {
        cors,
        shadowing: o
            .shadowing
            .as_ref()
            .and_then(|sh| shadowing(cx, owner, sh, index)),
        faults: o.faults.as_ref().and_then(|f| faults(cx, f)),
        hash_policies: o
            .lb_hash
            .as_ref()
            .map(|h| hash_policies(cx, h))
            .unwrap_or_default(),
        buffer_per_route: o
            .buffer_per_route
            .as_ref()
            .and_then(|b| buffer_per_route(cx, b)),
        csrf: o.csrf.as_ref().and_then(|c| csrf(cx, owner, c)),
        extauth: o
            .extauth
            .as_ref()
            .and_then(|e| super::http_options::ext_auth_extension(cx, e)),
        envoy_metadata: o
            .envoy_metadata
            .as_ref()
            .map(|m| envoy_metadata(cx, m))
            .unwrap_or_default(),
        upgrades: cx.upgrades(&o.upgrades),
        timeout: cx.duration(&o.timeout),
        idle_timeout: cx.duration(&o.idle_timeout),
        prefix_rewrite: o.prefix_rewrite.clone(),
        regex_rewrite,
        host_rewrite: o.host_rewrite.clone(),
        auto_host_rewrite: o.auto_host_rewrite,
        max_stream_duration,
        retries,
        header_manipulation,
    }
}

/// `virtualHost.options` (Gloo's `VirtualHostOptions`), through the same
/// checks as the route options of the same message types. Gloo's plugins:
/// `headers` (vhost headers), `cors` (a vhost policy needs an origin;
/// `disableForRoute` only means something on routes, so Gloo logs and
/// ignores it), `basicroute` (`applyRetriesVhost`), `csrf`, `buffer`,
/// `virtualhost` (the attempt-count flags).
pub(super) fn virtual_host_options(
    cx: &mut Ctx<'_>,
    owner: &Key,
    o: &raw::VirtualHostOptions,
) -> VirtualHostOptions {
    let cors = o.cors.as_ref().map(|c| {
        let pos = cx.at(c);
        if c.value.allow_origin.is_empty() && c.value.allow_origin_regex.is_empty() {
            cx.error(
                pos.clone(),
                "invalid cors config: must provide at least one of AllowOrigin or AllowOriginRegex",
            );
        }
        if c.value.disable_for_route == Some(true) {
            cx.warn(
                pos,
                "invalid virtual host cors policy: DisableForRoute only pertains to cors policies on routes",
            );
        }
        let mut out = cors(cx, owner, c);
        out.disable_for_route = false;
        out
    });
    let cors_merge = o.cors_policy_merge_settings.as_ref().map(|m| {
        let union = match m.value.expose_headers.as_ref().map(|e| &e.value) {
            None | Some(raw::EnumValue::Number(0)) => false,
            Some(raw::EnumValue::Name(n)) if n == "DEFAULT" => false,
            Some(raw::EnumValue::Number(1)) => true,
            Some(raw::EnumValue::Name(n)) if n == "UNION" => true,
            Some(other) => {
                let at = m.value.expose_headers.as_ref().map_or(cx.at(m), |e| cx.at(e));
                let shown = match other {
                    raw::EnumValue::Number(n) => n.to_string(),
                    raw::EnumValue::Name(n) => n.clone(),
                };
                cx.error(
                    at,
                    format!("corsPolicyMergeSettings.exposeHeaders `{shown}` is not one of DEFAULT, UNION"),
                );
                false
            }
        };
        CorsMergeSettings {
            union_expose_headers: union,
        }
    });
    VirtualHostOptions {
        header_manipulation: o
            .header_manipulation
            .as_ref()
            .map(|h| header_manipulation(cx, h)),
        cors,
        cors_merge,
        retries: o.retries.as_ref().map(|r| retries(cx, r)),
        csrf: o.csrf.as_ref().and_then(|c| csrf(cx, owner, c)),
        buffer_per_route: o
            .buffer_per_route
            .as_ref()
            .and_then(|b| buffer_per_route(cx, b)),
        include_request_attempt_count: o.include_request_attempt_count,
        include_attempt_count_in_response: o.include_attempt_count_in_response,
        extauth: o
            .extauth
            .as_ref()
            .and_then(|e| super::http_options::ext_auth_extension(cx, e)),
    }
}

/// `cors` as written: origin regexes checked (whether an origin is needed
/// depends on where the policy is used).
fn cors(cx: &mut Ctx<'_>, owner: &Key, c: &Spanned<raw::CorsPolicy>) -> Cors {
    let pos = cx.at(c);
    for re in &c.value.allow_origin_regex {
        check_regex(cx, owner, pos.clone(), re);
    }
    let c = &c.value;
    Cors {
        allow_origin: c.allow_origin.clone(),
        allow_origin_regex: c.allow_origin_regex.clone(),
        allow_methods: c.allow_methods.clone(),
        allow_headers: c.allow_headers.clone(),
        expose_headers: c.expose_headers.clone(),
        max_age: c.max_age.clone(),
        allow_credentials: c.allow_credentials,
        disable_for_route: c.disable_for_route.unwrap_or(false),
    }
}

/// `retries` (Gloo's `RetryPolicy`, `convertPolicy` in the basicroute
/// plugin), on routes and virtual hosts alike.
fn retries(cx: &mut Ctx<'_>, r: &Spanned<raw::Retries>) -> Retries {
    let pos = cx.at(r);
    let r = &r.value;
    let (base, max) = match &r.retry_back_off {
        Some(b) => (cx.duration(&b.base_interval), cx.duration(&b.max_interval)),
        None => (None, None),
    };
    let zero = Duration {
        seconds: 0,
        nanos: 0,
    };
    // Gloo's texts (`convertPolicy`, `projects/gloo/pkg/plugins/basicroute/
    // plugin.go`), which print the intervals in milliseconds.
    let ms = |d: Duration| d.seconds * 1000 + i64::from(d.nanos) / 1_000_000;
    if let (Some(b), Some(m)) = (base, max)
        && b > m
    {
        cx.error(
            pos.clone(),
            format!(
                "retries.retryBackOff: base interval: {} is > max interval: {}",
                ms(b),
                ms(m)
            ),
        );
    }
    if max.is_some() && base.is_none() {
        cx.error(
            pos.clone(),
            "retries.retryBackOff: max interval was defined, but the base interval was not",
        );
    }
    for (which, d) in [("base", base), ("max", max)] {
        if let Some(d) = d
            && d == zero
        {
            cx.error(
                pos.clone(),
                format!(
                    "retries.retryBackOff: {which} interval for retry backoff was <= than 0 | you provided: {}",
                    ms(d)
                ),
            );
        }
    }
    Retries {
        retry_on: r.retry_on.clone().unwrap_or_default(),
        // Gloo: an unset or zero count means one retry.
        num_retries: r.num_retries.filter(|n| *n > 0).unwrap_or(1),
        per_try_timeout: cx.duration(&r.per_try_timeout),
        base_interval: base,
        max_interval: max,
        retriable_status_codes: r.retriable_status_codes.clone(),
    }
}

/// Gloo's `ValidateRoutePath` (`projects/gloo/pkg/translator/
/// route_config.go`): RFC 3986 path characters (`pchar` and `/`) or `%XX`
/// escapes only, none of `//`, `/./`, `/../`, `%2f`, `%2F`, `#`, and no
/// trailing `/..` or `/.`. Gloo applies it to matcher paths, redirect paths
/// and hosts; the error texts are Gloo's.
pub(super) fn route_path_problem(s: &str) -> Option<String> {
    const PATTERN: &str = "^(?:([A-Za-z0-9/:@._~!$&'()*+,:=;-]*|[%][0-9a-fA-F]{2}))*$";
    /// The pattern's characters, as a table (checked for every byte of
    /// every route's path).
    const ALLOWED: [bool; 256] = {
        let mut t = [false; 256];
        let mut c = 0;
        while c < 256 {
            t[c] = (c as u8).is_ascii_alphanumeric();
            c += 1;
        }
        let extra = b"/:@._~!$&'()*+,=;-";
        let mut k = 0;
        while k < extra.len() {
            t[extra[k] as usize] = true;
            k += 1;
        }
        t
    };
    let b = s.as_bytes();
    let mut i = 0;
    // Whether the substring checks below can match at all: only with a
    // `%` escape or a `/` followed by `/` or `.` (`#` fails the pattern).
    let mut suspect = false;
    while i < b.len() {
        let c = b[i];
        if c == b'%' {
            if b.len() < i + 3 || !b[i + 1].is_ascii_hexdigit() || !b[i + 2].is_ascii_hexdigit() {
                return Some(format!(
                    "must only contain valid characters matching pattern {PATTERN}"
                ));
            }
            suspect = true;
            i += 3;
            continue;
        }
        if !ALLOWED[usize::from(c)] {
            return Some(format!(
                "must only contain valid characters matching pattern {PATTERN}"
            ));
        }
        if c == b'/' && matches!(b.get(i + 1), Some(b'/' | b'.')) {
            suspect = true;
        }
        i += 1;
    }
    if !suspect {
        return None;
    }
    for bad in ["//", "/./", "/../", "%2f", "%2F", "#"] {
        if s.contains(bad) {
            return Some(format!("path [{s}] cannot contain [{bad}]"));
        }
    }
    for bad in ["/..", "/."] {
        if s.ends_with(bad) {
            return Some(format!("path [{s}] cannot end with [{bad}]"));
        }
    }
    None
}

/// Gloo's `validatePath`: the error Gloo reports for a bad matcher path,
/// redirect path or redirect host.
fn check_route_path(cx: &mut Ctx<'_>, pos: &crate::diag::Pos, path: &str) -> bool {
    match route_path_problem(path) {
        Some(why) => {
            cx.error(pos.clone(), format!("the path is invalid: {path}: {why}"));
            false
        }
        None => true,
    }
}

/// The path Go's `url.Parse` finds in a prefix rewrite, unescaped, or Go's
/// error text. Gloo's `ValidatePrefixRewrite` parses the rewrite as a URL
/// and checks only its path: a query or fragment is not part of it.
pub(super) fn go_url_path(s: &str) -> Result<String, String> {
    let fail = |why: String| Err(format!("parse {s:?}: {why}"));
    if s.bytes().any(|c| c < 0x20 || c == 0x7f) {
        return fail("net/url: invalid control character in URL".into());
    }
    let rest = s.split('#').next().unwrap_or_default();
    let rest = rest.split('?').next().unwrap_or_default();
    // A scheme: letters first, then letters, digits, `+`, `-`, `.`, then `:`.
    let scheme_end = rest.bytes().enumerate().find_map(|(i, c)| match c {
        b'a'..=b'z' | b'A'..=b'Z' => None,
        b'0'..=b'9' | b'+' | b'-' | b'.' if i > 0 => None,
        b':' if i > 0 => Some(Some(i)),
        b':' => Some(None),
        _ => Some(None),
    });
    if rest.starts_with(':') {
        return fail("missing protocol scheme".into());
    }
    let (has_scheme, rest) = match scheme_end.flatten() {
        Some(i) => (true, &rest[i + 1..]),
        None => (false, rest),
    };
    let path = if has_scheme && !rest.starts_with('/') {
        // `scheme:opaque`: no path at all.
        ""
    } else if rest.starts_with("//") && (has_scheme || !rest.starts_with("///")) {
        let after = &rest[2..];
        match after.find('/') {
            Some(i) => &after[i..],
            None => "",
        }
    } else {
        if !has_scheme
            && let Some(first) = rest.split('/').next()
            && first.contains(':')
        {
            return fail("first path segment in URL cannot contain colon".into());
        }
        rest
    };
    let b = path.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = |c: u8| (c as char).to_digit(16);
            match (
                b.get(i + 1).and_then(|c| hex(*c)),
                b.get(i + 2).and_then(|c| hex(*c)),
            ) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => {
                    let esc: String = path[i..].chars().take(3).collect();
                    return fail(format!("invalid URL escape {esc:?}"));
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Gloo's `validatePrefixRewrite` for route and redirect prefix rewrites.
fn check_prefix_rewrite(cx: &mut Ctx<'_>, pos: &crate::diag::Pos, rewrite: &str) -> bool {
    let why = match go_url_path(rewrite) {
        Ok(path) => route_path_problem(&path),
        Err(e) => Some(e),
    };
    match why {
        Some(why) => {
            cx.error(
                pos.clone(),
                format!("the rewrite is invalid: {rewrite}: {why}"),
            );
            false
        }
        None => true,
    }
}

/// Which list of `headerManipulation` a header is in: Gloo and Envoy judge
/// request and response headers differently.
#[derive(Clone, Copy)]
enum HeaderList {
    RequestAdd,
    ResponseAdd,
    Remove,
}

/// Why Envoy (or Gloo before it) refuses a header manipulation entry, in
/// Gloo's words where Gloo has them: request headers in
/// `pkg/utils/api_conversion/type.go`, response headers in
/// `projects/gloo/pkg/plugins/headers/plugin.go`. Removing a `:`-prefixed
/// or `Host` header is refused by Envoy alone (Gloo passes it on and Envoy
/// rejects the whole RouteConfiguration), so Envoy's words are used there.
fn header_problem(list: HeaderList, key: &str, value: &str) -> Option<String> {
    let bad_char = |s: &str| !header_value_ok(s);
    if key.is_empty() {
        return Some("header key must not be empty".into());
    }
    if bad_char(key) {
        return Some(format!(
            "header key {key:?} contains a NUL, CR or LF character, which Envoy rejects"
        ));
    }
    if bad_char(value) {
        return Some(format!(
            "the value of header `{key}` contains a NUL, CR or LF character, which Envoy rejects"
        ));
    }
    if !matches!(list, HeaderList::Remove)
        && let Err(why) = super::format::check(value)
    {
        // Envoy reads added header values as substitution formats
        // (`%REQ(x)%`, `%%` for a literal %) and refuses the whole
        // RouteConfiguration over a bad one.
        return Some(format!(
            "the value of header `{key}` is not a valid Envoy header format: {why}"
        ));
    }
    let pseudo = key.starts_with(':');
    let host = key.eq_ignore_ascii_case("host");
    match list {
        HeaderList::RequestAdd if pseudo || host => Some(format!(
            ": -prefixed or host headers may not be modified. Received '{key}' header"
        )),
        HeaderList::ResponseAdd if pseudo => {
            Some(format!(":-prefixed headers cannot be set: '{key}'"))
        }
        HeaderList::ResponseAdd if host => {
            Some("cannot set Host header in response headers".into())
        }
        HeaderList::Remove if pseudo || host => Some(format!(
            ":-prefixed or host headers may not be removed: '{key}'"
        )),
        _ => None,
    }
}

fn header_manipulation(cx: &mut Ctx<'_>, h: &raw::HeaderManipulation) -> HeaderManipulation {
    let adds = |cx: &mut Ctx<'_>, list: HeaderList, v: &[Spanned<raw::HeaderValueOption>]| {
        let mut out = Vec::new();
        for x in v {
            let (key, value) = (&x.value.header.key, &x.value.header.value);
            match header_problem(list, key, value) {
                Some(msg) => cx.error(cx.at(x), msg),
                None => out.push((key.clone(), value.clone(), x.value.append.unwrap_or(true))),
            }
        }
        out
    };
    let request_headers_to_add = adds(cx, HeaderList::RequestAdd, &h.request_headers_to_add);
    let response_headers_to_add = adds(cx, HeaderList::ResponseAdd, &h.response_headers_to_add);
    let mut removes = |v: &[Spanned<String>]| {
        let mut out = Vec::new();
        for k in v {
            match header_problem(HeaderList::Remove, &k.value, "") {
                Some(msg) => cx.error(cx.at(k), msg),
                None => out.push(k.value.clone()),
            }
        }
        out
    };
    HeaderManipulation {
        request_headers_to_add,
        request_headers_to_remove: removes(&h.request_headers_to_remove),
        response_headers_to_add,
        response_headers_to_remove: removes(&h.response_headers_to_remove),
    }
}

/// A percentage as Gloo's float fields take it: 0 to 100.
pub(super) fn check_percentage(
    cx: &mut Ctx<'_>,
    pos: &crate::diag::Pos,
    field: &str,
    p: f32,
) -> bool {
    if (0.0..=100.0).contains(&p) {
        return true;
    }
    cx.error(
        pos.clone(),
        format!("{field} must be between 0 and 100, received {p}"),
    );
    false
}

/// `options.shadowing` (Gloo's `plugins/shadowing/plugin.go`): an upstream
/// is required and must exist, the percentage is 0-100.
fn shadowing(
    cx: &mut Ctx<'_>,
    owner: &Key,
    sh: &Spanned<raw::RouteShadowing>,
    index: &Index<'_>,
) -> Option<Shadowing> {
    let pos = cx.at(sh);
    let Some(up) = &sh.value.upstream else {
        // Gloo's `UnspecifiedUpstreamError` (`plugins/shadowing/plugin.go`).
        cx.error(
            pos,
            "shadowing: invalid plugin spec: must specify an upstream ref",
        );
        return None;
    };
    let ok = check_percentage(cx, &pos, "shadow percentage", sh.value.percentage);
    let k = ref_key(&up.value, &owner.namespace);
    if !index.upstreams.contains(&k) {
        // Unlike a route's destination (a warning, the route answers 500),
        // a mirror to nothing would silently drop the copies.
        let mut d = Diagnostic::error(
            cx.at(up),
            Some(cx.id.clone()),
            format!("shadowing upstream *v1.Upstream {{ {k} }} not found"),
        );
        if let Some(near) = index.suggest.closest(&k, &index.upstreams) {
            d = d.with_hint(format!("did you mean `{near}`?"));
        }
        cx.diags.push(d);
        return None;
    }
    ok.then_some(Shadowing {
        upstream: k,
        percentage: sh.value.percentage,
    })
}

/// `options.faults` (Gloo's `plugins/faultinjection/plugin.go`): an abort
/// status in [200, 600), a fixed delay of whole seconds > 0 (Gloo checks
/// the seconds), percentages 0-100. Neither set: no fault.
fn faults(cx: &mut Ctx<'_>, f: &Spanned<raw::RouteFaults>) -> Option<Faults> {
    let mut ok = true;
    let abort = f.value.abort.as_ref().map(|a| {
        let pos = cx.at(a);
        ok &= check_percentage(cx, &pos, "faults.abort.percentage", a.value.percentage);
        let status = a.value.http_status;
        if !(200..600).contains(&status) {
            cx.error(
                pos,
                format!("invalid abort status code '{status}', must be in range of [200,600)"),
            );
            ok = false;
        }
        (a.value.percentage, status)
    });
    let delay = match &f.value.delay {
        None => None,
        Some(d) => {
            let pos = cx.at(d);
            ok &= check_percentage(cx, &pos, "faults.delay.percentage", d.value.percentage);
            match cx.duration(&d.value.fixed_delay) {
                Some(fixed) if fixed.seconds > 0 => Some((d.value.percentage, fixed)),
                Some(_) => {
                    let at = d.value.fixed_delay.as_ref().map_or(pos, |s| cx.at(s));
                    // Gloo's `toEnvoyDelay` (`plugins/faultinjection/
                    // plugin.go`) checks the whole seconds.
                    cx.error(
                        at,
                        format!(
                            "invalid delay duration '{}', must be greater than 0; Gloo counts whole seconds: use at least 1s",
                            d.value.fixed_delay.as_ref().map_or("", |s| s.value.as_str())
                        ),
                    );
                    ok = false;
                    None
                }
                None => {
                    if d.value.fixed_delay.is_none() {
                        // Gloo's `toEnvoyDelay` prints the nil duration.
                        cx.error(
                            pos,
                            "invalid delay duration '<nil>', must be greater than 0; set faults.delay.fixedDelay",
                        );
                    }
                    ok = false;
                    None
                }
            }
        }
    };
    if !ok || (abort.is_none() && delay.is_none()) {
        return None;
    }
    Some(Faults { abort, delay })
}

/// A header name Envoy takes for hashing: non-empty, without NUL, CR or LF
/// (Envoy's non-strict `HTTP_HEADER_NAME` rule).
pub(super) fn header_name_ok(h: &str) -> bool {
    !h.is_empty() && header_value_ok(h)
}

/// What Envoy takes as a header value (and as a domain, `via`, a server
/// name: its `HTTP_HEADER_VALUE` rule, not strict): no NUL, CR or LF.
pub(super) fn header_value_ok(v: &str) -> bool {
    !v.contains(['\0', '\r', '\n'])
}

/// `options.lbHash` (Gloo's `plugins/loadbalancer/plugin.go`): each policy
/// hashes exactly one of a header, a cookie or the source IP.
fn hash_policies(cx: &mut Ctx<'_>, h: &Spanned<raw::RouteActionHashConfig>) -> Vec<HashPolicy> {
    let mut out = Vec::new();
    for p in &h.value.hash_policies {
        let pos = cx.at(p);
        let v = &p.value;
        let set = super::count_set(&[
            v.header.is_some(),
            v.cookie.is_some(),
            v.source_ip.is_some(),
        ]);
        if set != 1 {
            cx.error(
                pos,
                "lbHash hash policy must set exactly one of header, cookie and sourceIp",
            );
            continue;
        }
        let key = if let Some(name) = &v.header {
            if !header_name_ok(name) {
                cx.error(
                    pos,
                    format!("lbHash header {name:?} is not a valid header name"),
                );
                continue;
            }
            HashKey::Header(name.clone())
        } else if let Some(c) = &v.cookie {
            if c.name.is_empty() {
                cx.error(pos, "lbHash cookie needs a name");
                continue;
            }
            let ttl = cx.duration(&c.ttl);
            if c.ttl.is_some() && ttl.is_none() {
                continue;
            }
            HashKey::Cookie {
                name: c.name.clone(),
                ttl,
                path: c.path.clone().filter(|p| !p.is_empty()),
            }
        } else {
            HashKey::SourceIp(v.source_ip.unwrap_or(false))
        };
        out.push(HashPolicy {
            key,
            terminal: v.terminal.unwrap_or(false),
        });
    }
    out
}

/// `options.bufferPerRoute` (Gloo's `plugins/buffer/plugin.go`): disable
/// the listener's buffer filter here, or buffer at most `maxRequestBytes`
/// (> 0, Envoy's rule, which Gloo checks).
fn buffer_per_route(cx: &mut Ctx<'_>, b: &Spanned<raw::BufferPerRoute>) -> Option<BufferPerRoute> {
    let pos = cx.at(b);
    let v = &b.value;
    if v.disabled.is_some() && v.buffer.is_some() {
        cx.error(pos, "bufferPerRoute: set only one of disabled and buffer");
        return None;
    }
    if v.disabled == Some(true) {
        return Some(BufferPerRoute::Disabled);
    }
    let buf = v.buffer.as_ref()?;
    match buf.max_request_bytes {
        Some(n) if n > 0 => Some(BufferPerRoute::MaxRequestBytes(n)),
        _ => {
            cx.error(
                pos,
                "bufferPerRoute.buffer.maxRequestBytes must be greater than 0",
            );
            None
        }
    }
}

fn runtime_percent(
    cx: &mut Ctx<'_>,
    pos: &crate::diag::Pos,
    field: &str,
    r: &raw::RuntimeFractionalPercent,
) -> Option<RuntimePercent> {
    let dv = r.default_value.clone().unwrap_or_default();
    let denominator = match dv.denominator.as_ref().map(|d| &d.value) {
        None => Denominator::Hundred,
        Some(raw::EnumValue::Number(0)) => Denominator::Hundred,
        Some(raw::EnumValue::Number(1)) => Denominator::TenThousand,
        Some(raw::EnumValue::Number(2)) => Denominator::Million,
        Some(raw::EnumValue::Name(n)) if n == "HUNDRED" => Denominator::Hundred,
        Some(raw::EnumValue::Name(n)) if n == "TEN_THOUSAND" => Denominator::TenThousand,
        Some(raw::EnumValue::Name(n)) if n == "MILLION" => Denominator::Million,
        Some(other) => {
            let at = dv.denominator.as_ref().map_or(pos.clone(), |d| cx.at(d));
            let shown = match other {
                raw::EnumValue::Number(n) => n.to_string(),
                raw::EnumValue::Name(n) => n.clone(),
            };
            cx.error(
                at,
                format!("{field}.defaultValue.denominator `{shown}` is not one of HUNDRED, TEN_THOUSAND, MILLION"),
            );
            return None;
        }
    };
    Some(RuntimePercent {
        numerator: dv.numerator,
        denominator,
        runtime_key: r.runtime_key.clone().unwrap_or_default(),
    })
}

/// `options.csrf` (Gloo's `plugins/csrf/plugin.go`): Envoy's CSRF policy,
/// with extra origins as exact, prefix, suffix or regex matches.
pub(super) fn csrf(cx: &mut Ctx<'_>, owner: &Key, c: &Spanned<raw::CsrfPolicy>) -> Option<Csrf> {
    let pos = cx.at(c);
    let v = &c.value;
    let mut ok = true;
    let mut percent = |cx: &mut Ctx<'_>, field: &str, r: &Option<raw::RuntimeFractionalPercent>| {
        let r = r.as_ref()?;
        let out = runtime_percent(cx, &pos, field, r);
        ok &= out.is_some();
        out
    };
    let filter_enabled = percent(cx, "csrf.filterEnabled", &v.filter_enabled);
    let shadow_enabled = percent(cx, "csrf.shadowEnabled", &v.shadow_enabled);
    let mut additional_origins = Vec::new();
    for o in &v.additional_origins {
        let ignore_case = o.ignore_case.unwrap_or(false);
        let set = super::count_set(&[
            o.exact.is_some(),
            o.prefix.is_some(),
            o.suffix.is_some(),
            o.safe_regex.is_some(),
        ]);
        if set != 1 {
            cx.error(
                pos.clone(),
                "csrf.additionalOrigins: each entry must set exactly one of exact, prefix, suffix and safeRegex",
            );
            ok = false;
            continue;
        }
        let m = if let Some(e) = &o.exact {
            OriginMatch::Exact {
                value: e.clone(),
                ignore_case,
            }
        } else if let Some(p) = o.prefix.as_ref().filter(|p| !p.is_empty()) {
            OriginMatch::Prefix {
                value: p.clone(),
                ignore_case,
            }
        } else if let Some(sfx) = o.suffix.as_ref().filter(|p| !p.is_empty()) {
            OriginMatch::Suffix {
                value: sfx.clone(),
                ignore_case,
            }
        } else if let Some(re) = &o.safe_regex {
            if !check_regex(cx, owner, pos.clone(), &re.regex) {
                ok = false;
                continue;
            }
            OriginMatch::Regex(re.regex.clone())
        } else {
            // Envoy requires a non-empty prefix or suffix.
            cx.error(
                pos.clone(),
                "csrf.additionalOrigins: prefix and suffix must not be empty",
            );
            ok = false;
            continue;
        };
        additional_origins.push(m);
    }
    ok.then_some(Csrf {
        filter_enabled,
        shadow_enabled,
        additional_origins,
    })
}

/// `options.envoyMetadata`: each namespace's value must be a mapping (a
/// `google.protobuf.Struct`).
fn envoy_metadata(
    cx: &mut Ctx<'_>,
    m: &Spanned<BTreeMap<String, serde_json::Value>>,
) -> BTreeMap<String, serde_json::Map<String, serde_json::Value>> {
    let mut out = BTreeMap::new();
    for (ns, v) in &m.value {
        if ns.is_empty() {
            // Envoy's Metadata keys its namespaces by non-empty names.
            let pos = cx.at(m);
            cx.error(pos, "envoyMetadata: a namespace name must not be empty");
            continue;
        }
        match v {
            serde_json::Value::Object(fields) => {
                out.insert(ns.clone(), fields.clone());
            }
            _ => {
                let pos = cx.at(m);
                cx.error(
                    pos,
                    format!("envoyMetadata.{ns} must be a mapping (a google.protobuf.Struct)"),
                );
            }
        }
    }
    out
}

/// Delegation cycles among route tables, found once per load on the graph
/// of table → table references (so tables no VirtualService uses yet are
/// checked too, without walking every path). Each table on a cycle gets one
/// error naming the cycle from itself. Bounded work: at most `MAX_BFS`
/// searches of at most `MAX_EDGE_VISITS` edges in all.
pub(super) fn check_cycles(index: &Index<'_>) -> Vec<Diagnostic> {
    const MAX_BFS: usize = 500;
    const MAX_EDGE_VISITS: usize = 2_000_000;
    use std::collections::{BTreeSet, VecDeque};
    let keys: Vec<&Key> = index.route_tables.keys().collect();
    let mut edges: BTreeMap<&Key, BTreeSet<&Key>> = BTreeMap::new();
    for (k, (_, spec)) in &index.route_tables {
        let set = edges.entry(k).or_default();
        for r in &spec.routes {
            let Some(da) = &r.value.delegate_action else {
                continue;
            };
            // Invalid operators are reported by the route walk; here they
            // just select nothing more.
            let exprs: Vec<LabelExpression> = da
                .value
                .selector
                .iter()
                .flat_map(|sel| &sel.expressions)
                .filter_map(|e| {
                    Some(LabelExpression {
                        key: e.key.clone(),
                        op: LabelOp::parse(&e.operator)?,
                        values: e.values.clone(),
                    })
                })
                .collect();
            if let Delegation::Tables(found) = delegation(index, k, &da.value, &exprs) {
                set.extend(found);
            }
        }
    }
    let mut out = Vec::new();
    let mut visits = 0usize;
    for start in keys.into_iter().take(MAX_BFS) {
        // Shortest path from `start` back to itself, if any.
        let mut parent: BTreeMap<&Key, &Key> = BTreeMap::new();
        let mut queue: VecDeque<&Key> = VecDeque::new();
        let mut seen: BTreeSet<&Key> = BTreeSet::new();
        queue.push_back(start);
        let mut closing: Option<&Key> = None;
        'bfs: while let Some(n) = queue.pop_front() {
            for m in edges.get(n).into_iter().flatten() {
                visits += 1;
                if visits > MAX_EDGE_VISITS {
                    return out;
                }
                if *m == start {
                    closing = Some(n);
                    break 'bfs;
                }
                if seen.insert(m) {
                    parent.insert(m, n);
                    queue.push_back(m);
                }
            }
        }
        let Some(mut n) = closing else { continue };
        let mut path = vec![start];
        let mut back = vec![n];
        while n != start {
            match parent.get(n) {
                Some(p) => {
                    if *p != start {
                        back.push(p);
                    }
                    n = p;
                }
                None => break,
            }
        }
        back.retain(|k| *k != start);
        back.reverse();
        path.extend(back);
        path.push(start);
        let text: Vec<String> = path.iter().map(|k| format!("[{k}]")).collect();
        if let Some((doc, _)) = index.route_tables.get(start) {
            out.push(Diagnostic::error(
                doc.pos.clone(),
                Some(doc.id.clone()),
                format!(
                    "invalid route: delegation cycle detected: {}",
                    text.join(" -> ")
                ),
            ));
        }
    }
    out
}
