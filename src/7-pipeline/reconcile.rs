//! Last-known-good per resource, and each resource's status.
//!
//! Gloo's rule: a rejected Gateway, VirtualService or RouteTable (and here
//! also Upstream, UpstreamGroup, VirtualHostOption and RouteOption) keeps
//! its last accepted version in the served config, while every valid edit elsewhere still goes out; a resource
//! that never was valid is simply absent. A file that cannot be read or
//! parsed at all keeps every resource it last provided.
//!
//! `Reconciler::reconcile` runs the pure pipeline (parse → validate) on what
//! the user wrote, substitutes last accepted versions for rejected resources,
//! validates that mix again (a kept old version can clash with new
//! neighbours; then it is dropped too) until nothing is in error, and only
//! then translates. Statuses come out of the same pass; no clock is read.
//!
//! It is also where work is carried over between loads: a file whose text
//! is unchanged keeps its parse (`manifest::ParseCache`), and a translated
//! resource equal to the one built last time keeps its encoding
//! (`Snapshot::from_output_reusing`). Validation and translation always see
//! the whole set; the result is the same as a build from scratch.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use crate::diag::{Diagnostic, ResourceId, Severity};
use crate::manifest::{Document, Kind};
use crate::manifest::{ParseCache, ParseStats};
use crate::model::Model;
use crate::snapshot::{EncodeStats, Snapshot};
use crate::source::SourceFile;
use crate::translate::names;
use crate::translate::{self, Output};
use crate::validate;

/// A resource's state, as in Gloo.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    Pending,
    Accepted,
    Warning,
    Rejected,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "Pending",
            State::Accepted => "Accepted",
            State::Warning => "Warning",
            State::Rejected => "Rejected",
        }
    }
}

/// What is served for a resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Serving {
    /// The version in the files.
    Current,
    /// The last accepted version (the one in the files is rejected).
    LastAccepted,
    /// Nothing (never valid, or its last version no longer fits).
    Nothing,
}

impl Serving {
    /// As the status API shows it: `current`, `last-accepted`, `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            Serving::Current => "current",
            Serving::LastAccepted => "last-accepted",
            Serving::Nothing => "none",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ResourceStatus {
    pub id: ResourceId,
    /// Where the resource is written (the version in the files, else the
    /// last accepted one).
    pub file: PathBuf,
    pub line: u32,
    pub state: State,
    pub serving: Serving,
    /// Errors and warnings about this resource, in file order.
    pub reasons: Vec<Diagnostic>,
    /// Proxy keys (`<ns>~<name>`) this resource is part of.
    pub proxies: Vec<String>,
}

/// The outcome of one reconcile.
pub struct Reconciled {
    /// Which resources each served Envoy resource comes from.
    pub owners: Owners,
    pub files: Vec<SourceFile>,
    /// Every problem in what the user wrote.
    pub diagnostics: Vec<Diagnostic>,
    pub statuses: Vec<ResourceStatus>,
    pub output: Option<Arc<Output>>,
    /// The validated model `output` was translated from (with the last
    /// accepted version of every rejected resource): what is served.
    pub model: Option<Arc<Model>>,
    /// `None` only when no consistent config could be built at all (then the
    /// caller keeps serving what it has).
    pub snapshot: Option<Snapshot>,
    /// How much was parsed and encoded, and how much carried over.
    pub work: Work,
    /// What this load replaced: drop it after publishing.
    pub retired: Retired,
}

/// What a load replaced and no longer needs: the last translation's model
/// and route encodings, the last snapshot, the last accepted documents.
/// Freeing a 10,000-route config takes about a millisecond; a caller
/// serving a save drops this after publishing, anyone else just drops it.
#[derive(Default)]
pub struct Retired(Vec<Box<dyn Send>>);

impl Retired {
    fn keep<T: Send + 'static>(&mut self, t: T) {
        self.0.push(Box::new(t));
    }
}

impl std::fmt::Debug for Retired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Retired({} parts)", self.0.len())
    }
}

/// The work one reconcile did and the work it carried over from the last.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Work {
    pub parse: ParseStats,
    /// Empty when nothing was built.
    pub encode: EncodeStats,
    /// Envoy routes encoded, and taken from the last translation.
    pub routes: crate::translate::route_memo::MemoStats,
}

impl Reconciled {
    pub fn has_errors(&self) -> bool {
        crate::diag::has_errors(&self.diagnostics)
    }
}

/// Holds the last accepted version of every resource, and what the last
/// load parsed and built, to be reused by the next.
#[derive(Default)]
pub struct Reconciler {
    last_good: BTreeMap<ResourceId, Arc<Document>>,
    parse: ParseCache,
    /// The last translation and the snapshot encoded from it.
    built: Option<Snapshot>,
    /// Each route's encoding in the last translation.
    routes: translate::RouteMemo,
    /// The route bodies the last validation built.
    validated: validate::ValidateMemo,
    /// What the current reconcile replaced.
    retired: Retired,
}

fn validate_shared(docs: &[Arc<Document>]) -> validate::Validated {
    validate::validate_refs(&docs.iter().map(Arc::as_ref).collect::<Vec<_>>())
}

fn error_ids(diags: &[Diagnostic]) -> BTreeSet<ResourceId> {
    diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .filter_map(|d| d.resource.clone())
        .collect()
}

impl Reconciler {
    pub fn new() -> Self {
        Self::default()
    }

    /// What a reload must not lose if it fails half-way: every resource's
    /// last accepted version and the last built snapshot (the parse cache
    /// is left out: it is only a cache). Cheap: shared pointers.
    pub fn checkpoint(&self) -> Reconciler {
        Reconciler {
            last_good: self.last_good.clone(),
            parse: ParseCache::default(),
            built: self.built.clone(),
            routes: translate::RouteMemo::default(),
            validated: validate::ValidateMemo::default(),
            retired: Retired::default(),
        }
    }

    /// Takes `priors` (documents accepted elsewhere: another replica's
    /// shared record) as the last accepted version of every resource this
    /// reconciler has none for; its own history always wins. Documents
    /// that do not parse are ignored. Returns how many were taken.
    pub fn adopt(&mut self, priors: &[SourceFile]) -> usize {
        if priors.is_empty() {
            return 0;
        }
        let (docs, _, _) = ParseCache::default().parse(priors);
        let mut taken = 0;
        for d in docs {
            if let std::collections::btree_map::Entry::Vacant(v) =
                self.last_good.entry(d.id.clone())
            {
                v.insert(d);
                taken += 1;
            }
        }
        taken
    }

    pub fn reconcile(
        &mut self,
        files: Vec<SourceFile>,
        mut diagnostics: Vec<Diagnostic>,
    ) -> Reconciled {
        let (docs, parse_diags, parse_stats) = self.parse.parse(&files);
        let mut work = Work {
            parse: parse_stats,
            ..Work::default()
        };
        diagnostics.extend(parse_diags);
        let (first, replaced) = validate::validate_reusing(&docs, &mut self.validated);
        self.retired.keep(replaced);
        diagnostics.extend(first.diagnostics.iter().cloned());
        diagnostics.sort();
        diagnostics.dedup();

        // Files (or directories) that failed as a whole: whatever they last
        // provided is kept, since we cannot tell edits from breakage.
        let broken: Vec<PathBuf> = diagnostics
            .iter()
            .filter(|d| d.is_file_level())
            .map(|d| d.pos.file.to_path_buf())
            .collect();
        let current_ids: BTreeSet<ResourceId> = docs.iter().map(|d| d.id.clone()).collect();
        let kept_from_broken: BTreeSet<ResourceId> = self
            .last_good
            .iter()
            .filter(|(id, d)| {
                !current_ids.contains(*id) && broken.iter().any(|b| d.pos.file.starts_with(b))
            })
            .map(|(id, _)| id.clone())
            .collect();

        // The common case: nothing rejected, nothing kept. The first pass
        // is the answer.
        if !crate::diag::has_errors(&diagnostics) && kept_from_broken.is_empty() {
            let model = Arc::new(first.model);
            let (output, snapshot) = self.build(&model, &mut work);
            let none = BTreeSet::new();
            let statuses = self.statuses(
                &docs,
                &diagnostics,
                &[],
                Judged {
                    rejected: &none,
                    dropped: &none,
                    kept: &none,
                },
                Some(&model),
            );
            let last_good = docs.into_iter().map(|d| (d.id.clone(), d)).collect();
            let old = std::mem::replace(&mut self.last_good, last_good);
            self.retired.keep(old);
            return Reconciled {
                owners: owners(&model),
                files,
                diagnostics,
                statuses,
                output: Some(output),
                model: Some(model),
                snapshot: Some(snapshot),
                work,
                retired: std::mem::take(&mut self.retired),
            };
        }
        let mut rejected = error_ids(&diagnostics);
        let mut dropped: BTreeSet<ResourceId> = BTreeSet::new();
        let mut later_diags: Vec<Diagnostic> = Vec::new();
        let mut result: Option<(Vec<Arc<Document>>, Model)> = None;
        // Each round only grows `rejected`/`dropped`, so this ends.
        for _ in 0..=(current_ids.len() + self.last_good.len() + 1) {
            let set = self.compose(&docs, &rejected, &dropped, &kept_from_broken);
            let v = validate_shared(&set);
            let errs = error_ids(&v.diagnostics);
            if errs.is_empty() && !crate::diag::has_errors(&v.diagnostics) {
                result = Some((set, v.model));
                break;
            }
            // Blame what the user just wrote before what we kept: reject
            // current versions first; drop kept versions only when they are
            // the only ones left in error.
            let (kept_errs, current_errs): (Vec<ResourceId>, Vec<ResourceId>) = errs
                .into_iter()
                .partition(|id| rejected.contains(id) || kept_from_broken.contains(id));
            let mut progress = false;
            if current_errs.is_empty() {
                for id in kept_errs {
                    progress |= dropped.insert(id);
                }
            } else {
                for id in current_errs {
                    progress |= rejected.insert(id);
                }
            }
            later_diags.extend(v.diagnostics.into_iter().filter(Diagnostic::is_error));
            if !progress {
                break;
            }
        }

        let Some((set, model)) = result else {
            let statuses = self.statuses(
                &docs,
                &diagnostics,
                &later_diags,
                Judged {
                    rejected: &rejected,
                    dropped: &dropped,
                    kept: &kept_from_broken,
                },
                None,
            );
            return Reconciled {
                owners: Owners::new(),
                files,
                diagnostics,
                statuses,
                output: None,
                model: None,
                snapshot: None,
                work,
                retired: std::mem::take(&mut self.retired),
            };
        };
        let model = Arc::new(model);
        let (output, snapshot) = self.build(&model, &mut work);
        let statuses = self.statuses(
            &docs,
            &diagnostics,
            &later_diags,
            Judged {
                rejected: &rejected,
                dropped: &dropped,
                kept: &kept_from_broken,
            },
            Some(&model),
        );
        // Remember what is now accepted; forget what was deleted or no
        // longer fits.
        let served: BTreeSet<ResourceId> = set.iter().map(|d| d.id.clone()).collect();
        for d in &docs {
            if !rejected.contains(&d.id) && served.contains(&d.id) {
                self.last_good.insert(d.id.clone(), d.clone());
            }
        }
        self.last_good.retain(|id, _| served.contains(id));
        Reconciled {
            owners: owners(&model),
            files,
            diagnostics,
            statuses,
            output: Some(output),
            model: Some(model),
            snapshot: Some(snapshot),
            work,
            retired: std::mem::take(&mut self.retired),
        }
    }

    /// Translates and encodes, sharing the encoding of every resource that
    /// equals the one built last time; remembers the result for next time.
    fn build(&mut self, model: &Arc<Model>, work: &mut Work) -> (Arc<Output>, Snapshot) {
        let output = Arc::new(translate::translate_reusing(model, &mut self.routes));
        self.retired.keep(self.routes.take_retired());
        work.routes = self.routes.stats;
        let (snapshot, encode) = Snapshot::from_output_reusing(&output, self.built.as_ref());
        work.encode = encode;
        if let Some(old) = self.built.replace(snapshot.clone()) {
            self.retired.keep(old);
        }
        (output, snapshot)
    }

    /// The documents to validate: current ones not rejected, last accepted
    /// versions of rejected ones, and what broken files last provided.
    fn compose(
        &self,
        docs: &[Arc<Document>],
        rejected: &BTreeSet<ResourceId>,
        dropped: &BTreeSet<ResourceId>,
        kept: &BTreeSet<ResourceId>,
    ) -> Vec<Arc<Document>> {
        let mut out: Vec<Arc<Document>> = docs
            .iter()
            .filter(|d| !rejected.contains(&d.id) && !dropped.contains(&d.id))
            .cloned()
            .collect();
        for id in rejected.iter().chain(kept.iter()) {
            if dropped.contains(id) {
                continue;
            }
            if let Some(d) = self.last_good.get(id) {
                out.push(d.clone());
            }
        }
        out
    }

    /// Every resource's status. Known resources are those in the files
    /// and those still served although their file is gone from view: kept
    /// from a file that could not be read or parsed, or rejected with a
    /// last accepted version. A resource whose file was deleted is simply
    /// gone, as it is from what Envoy is served.
    fn statuses(
        &self,
        docs: &[Arc<Document>],
        diags: &[Diagnostic],
        later: &[Diagnostic],
        judged: Judged<'_>,
        model: Option<&Model>,
    ) -> Vec<ResourceStatus> {
        let Judged {
            rejected,
            dropped,
            kept,
        } = judged;
        let mut by_id: BTreeMap<ResourceId, ResourceStatus> = BTreeMap::new();
        let still_known = self
            .last_good
            .iter()
            .filter(|(id, _)| kept.contains(*id) || rejected.contains(*id));
        let known = docs
            .iter()
            .map(|d| (d.id.clone(), d.pos.clone()))
            .chain(still_known.map(|(id, d)| (id.clone(), d.pos.clone())));
        for (id, pos) in known {
            by_id.entry(id.clone()).or_insert(ResourceStatus {
                id,
                file: pos.file.to_path_buf(),
                line: pos.line,
                state: State::Accepted,
                serving: Serving::Current,
                reasons: Vec::new(),
                proxies: Vec::new(),
            });
        }
        for d in diags.iter().chain(later.iter()) {
            if let Some(id) = &d.resource
                && let Some(s) = by_id.get_mut(id)
                && !s.reasons.contains(d)
            {
                s.reasons.push(d.clone());
            }
        }
        // A resource kept from a file that could not be read or parsed:
        // the reason is that file's error (it names no resource itself).
        for s in by_id.values_mut().filter(|s| kept.contains(&s.id)) {
            for d in diags
                .iter()
                .filter(|d| d.is_file_level() && s.file.starts_with(&d.pos.file))
            {
                if !s.reasons.contains(d) {
                    s.reasons.push(d.clone());
                }
            }
        }
        // Resources whose document did not even parse are known only from
        // their diagnostics.
        for d in diags {
            if let Some(id) = &d.resource {
                by_id.entry(id.clone()).or_insert(ResourceStatus {
                    id: id.clone(),
                    file: d.pos.file.to_path_buf(),
                    line: d.pos.line,
                    state: State::Rejected,
                    serving: Serving::Nothing,
                    reasons: vec![d.clone()],
                    proxies: Vec::new(),
                });
            }
        }
        let current: BTreeSet<&ResourceId> = docs.iter().map(|d| &d.id).collect();
        for s in by_id.values_mut() {
            let has_error = s.reasons.iter().any(Diagnostic::is_error);
            let in_files = current.contains(&s.id) || !self.last_good.contains_key(&s.id);
            s.state = if rejected.contains(&s.id) || dropped.contains(&s.id) || has_error {
                State::Rejected
            } else if !in_files {
                // Kept from a file that could not be read.
                State::Rejected
            } else if s.reasons.is_empty() {
                State::Accepted
            } else {
                State::Warning
            };
            s.serving = if model.is_none() || dropped.contains(&s.id) {
                Serving::Nothing
            } else if rejected.contains(&s.id) || !in_files {
                if self.last_good.contains_key(&s.id) {
                    Serving::LastAccepted
                } else {
                    Serving::Nothing
                }
            } else {
                Serving::Current
            };
            if let Some(m) = model {
                s.proxies = proxies_of(&s.id, m);
            }
        }
        by_id.into_values().collect()
    }
}

/// What one reconcile decided: resources whose version in the files is
/// rejected, last accepted versions dropped because they no longer fit,
/// and resources kept from files that could not be read or parsed.
#[derive(Clone, Copy)]
struct Judged<'a> {
    rejected: &'a BTreeSet<ResourceId>,
    dropped: &'a BTreeSet<ResourceId>,
    kept: &'a BTreeSet<ResourceId>,
}

/// Envoy resource (by type and name; `rc/vhost` for virtual hosts) → the
/// manifests' resources it is built from.
pub type Owners = BTreeMap<(crate::snapshot::ResourceType, String), Vec<ResourceId>>;

fn rid(kind: Kind, k: &crate::model::Key) -> ResourceId {
    ResourceId {
        kind: kind.as_str().to_string(),
        namespace: k.namespace.clone(),
        name: k.name.clone(),
    }
}

/// Who owns what, for attributing Envoy's NACKs to manifests.
pub fn owners(m: &Model) -> Owners {
    use crate::snapshot::ResourceType as T;
    let mut o = Owners::new();
    for gw in m.gateways.values() {
        let g = rid(Kind::Gateway, &gw.key);
        o.entry((T::Listener, names::listener_name(gw)))
            .or_default()
            .push(g.clone());
        // A TCP gateway has no route configuration; a hybrid one has one
        // per matched HTTP gateway.
        for part in gw.http_parts() {
            o.entry((T::Route, names::route_config_name(part)))
                .or_default()
                .push(g.clone());
            for vs in m.virtual_services.values().filter(|v| part.selects(v)) {
                let vhost = format!(
                    "{}/{}",
                    names::route_config_name(part),
                    names::vhost_name(vs)
                );
                let entry = o.entry((T::Route, vhost)).or_default();
                entry.push(rid(Kind::VirtualService, &vs.key));
                // The option resources merged into it share its NACKs.
                entry.extend(
                    vs.vhost_option_refs
                        .iter()
                        .map(|k| rid(Kind::VirtualHostOption, k)),
                );
                entry.extend(
                    vs.route_option_refs
                        .iter()
                        .map(|k| rid(Kind::RouteOption, k)),
                );
            }
        }
    }
    for secrets in translate::secrets_by_proxy(m).into_values() {
        for key in secrets {
            for name in names::secret_names(&key, m.secrets.get(&key)) {
                o.entry((T::Secret, name))
                    .or_default()
                    .push(rid(Kind::Secret, &key));
            }
        }
    }
    for up in m.upstreams.values() {
        let cluster = names::cluster_name(&up.key);
        if up.tunnel.is_some() {
            o.entry((T::Cluster, names::tunnel_original_cluster(&cluster)))
                .or_default()
                .push(rid(Kind::Upstream, &up.key));
            o.entry((T::Listener, names::tunnel_listener(&cluster)))
                .or_default()
                .push(rid(Kind::Upstream, &up.key));
        }
        o.entry((T::Cluster, cluster))
            .or_default()
            .push(rid(Kind::Upstream, &up.key));
    }
    for v in o.values_mut() {
        v.sort();
        v.dedup();
    }
    o
}

/// The proxies a resource contributes to.
fn proxies_of(id: &ResourceId, m: &Model) -> Vec<String> {
    let key = crate::model::Key::new(&id.namespace, &id.name);
    let mut out = BTreeSet::new();
    let gw_proxies = |gw: &crate::model::Gateway| {
        gw.proxy_names
            .iter()
            .map(|p| translate::proxy_key(&gw.key.namespace, p))
            .collect::<Vec<_>>()
    };
    let Ok(kind) = id.kind.parse::<Kind>() else {
        return Vec::new();
    };
    match kind {
        Kind::Gateway => {
            if let Some(gw) = m.gateways.get(&key) {
                out.extend(gw_proxies(gw));
            }
        }
        Kind::VirtualService => {
            if let Some(vs) = m.virtual_services.get(&key) {
                for gw in m
                    .gateways
                    .values()
                    .filter(|g| g.http_parts().iter().any(|p| p.selects(vs)))
                {
                    out.extend(gw_proxies(gw));
                }
            }
        }
        Kind::Upstream | Kind::UpstreamGroup => {
            for gw in m.gateways.values() {
                out.extend(gw_proxies(gw));
            }
        }
        Kind::VirtualHostOption | Kind::RouteOption => {
            let refs = |vs: &crate::model::VirtualService| {
                if kind == Kind::VirtualHostOption {
                    vs.vhost_option_refs.contains(&key)
                } else {
                    vs.route_option_refs.contains(&key)
                }
            };
            for vs in m.virtual_services.values().filter(|v| refs(v)) {
                for gw in m.gateways.values().filter(|g| g.selects(vs)) {
                    out.extend(gw_proxies(gw));
                }
            }
        }
        Kind::Secret => {
            for (proxy, secrets) in translate::secrets_by_proxy(m) {
                if secrets.contains(&key) {
                    out.insert(proxy);
                }
            }
        }
        Kind::RouteTable => {}
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::ResourceType;

    const GW: &str = "apiVersion: gateway.solo.io/v1\nkind: Gateway\nmetadata: {name: gw}\nspec: {bindPort: 8080, httpGateway: {}}\n";
    const UP: &str = "apiVersion: gloo.solo.io/v1\nkind: Upstream\nmetadata: {name: up}\nspec: {static: {hosts: [{addr: 127.0.0.1, port: 1}]}}\n";

    fn vs(name: &str, domain: &str, prefix: &str) -> String {
        format!(
            "apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata: {{name: {name}}}\nspec: {{virtualHost: {{domains: [{domain}], routes: [{{matchers: [{{prefix: {prefix}}}], routeAction: {{single: {{upstream: {{name: up}}}}}}}}]}}}}\n"
        )
    }

    fn files(list: &[(&str, &str)]) -> Vec<SourceFile> {
        list.iter()
            .map(|(p, t)| SourceFile {
                path: PathBuf::from(p),
                text: t.to_string(),
            })
            .collect()
    }

    fn prefixes(r: &Reconciled) -> Vec<String> {
        let out = r.output.as_ref().expect("served");
        let mut v: Vec<String> = out["gloo-system~gateway-proxy"].route_configs[0]
            .proto()
            .virtual_hosts
            .iter()
            .flat_map(|vh| vh.routes.iter())
            .filter_map(|r| match r.r#match.as_ref()?.path_specifier.as_ref()? {
                envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier::Prefix(
                    p,
                ) => Some(p.clone()),
                _ => None,
            })
            .collect();
        v.sort();
        v
    }

    fn status<'a>(r: &'a Reconciled, name: &str) -> &'a ResourceStatus {
        r.statuses
            .iter()
            .find(|s| s.id.name == name)
            .unwrap_or_else(|| panic!("no status for {name}"))
    }

    #[test]
    fn a_rejected_resource_keeps_its_last_version_while_others_move_on() {
        let mut rc = Reconciler::new();
        let a1 = vs("a", "a.com", "/a1");
        let b1 = vs("b", "b.com", "/b1");
        let r = rc.reconcile(
            files(&[
                ("gw.yaml", GW),
                ("up.yaml", UP),
                ("a.yaml", &a1),
                ("b.yaml", &b1),
            ]),
            vec![],
        );
        assert!(!r.has_errors());
        assert_eq!(prefixes(&r), ["/a1", "/b1"]);

        // One save: a is broken, b is edited, c is new and never valid.
        let a2 = vs("a", "a.com", "/a2").replace("routeAction", "routeActon");
        let b2 = vs("b", "b.com", "/b2");
        let c = vs("c", "c.com", "/c").replace("prefix", "prefx");
        let r = rc.reconcile(
            files(&[
                ("gw.yaml", GW),
                ("up.yaml", UP),
                ("a.yaml", &a2),
                ("b.yaml", &b2),
                ("c.yaml", &c),
            ]),
            vec![],
        );
        assert!(r.has_errors());
        assert_eq!(prefixes(&r), ["/a1", "/b2"]);
        let (sa, sb, sc) = (status(&r, "a"), status(&r, "b"), status(&r, "c"));
        assert_eq!(
            (sa.state, sa.serving),
            (State::Rejected, Serving::LastAccepted)
        );
        assert!(sa.reasons[0].message.contains("routeActon"));
        assert_eq!(sa.reasons[0].pos.line, 4);
        assert_eq!((sb.state, sb.serving), (State::Accepted, Serving::Current));
        assert_eq!((sc.state, sc.serving), (State::Rejected, Serving::Nothing));
        assert_eq!(sb.proxies, ["gloo-system~gateway-proxy"]);

        // Fixing a serves its new version.
        let a3 = vs("a", "a.com", "/a3");
        let r = rc.reconcile(
            files(&[
                ("gw.yaml", GW),
                ("up.yaml", UP),
                ("a.yaml", &a3),
                ("b.yaml", &b2),
            ]),
            vec![],
        );
        assert!(!r.has_errors());
        assert_eq!(prefixes(&r), ["/a3", "/b2"]);
    }

    /// A reconciler that never saw a rejected resource's good version,
    /// given it as a prior (another replica's accepted record), serves
    /// exactly what the one that saw it serves; its own history wins.
    #[test]
    fn an_adopted_prior_gives_a_fresh_reconciler_the_same_last_known_good() {
        let a1 = vs("a", "a.com", "/a1");
        let a_bad = vs("a", "a.com", "/a2").replace("routeAction", "routeActon");
        let good = [("gw.yaml", GW), ("up.yaml", UP), ("a.yaml", a1.as_str())];
        let bad = [("gw.yaml", GW), ("up.yaml", UP), ("a.yaml", a_bad.as_str())];
        let mut early = Reconciler::new();
        early.reconcile(files(&good), vec![]);
        let want = early.reconcile(files(&bad), vec![]);

        let mut late = Reconciler::new();
        assert_eq!(late.adopt(&files(&[("a.yaml", &a1)])), 1);
        let got = late.reconcile(files(&bad), vec![]);
        assert_eq!(prefixes(&got), ["/a1"]);
        assert_eq!(got.snapshot, want.snapshot);
        let sa = status(&got, "a");
        assert_eq!(
            (sa.state, sa.serving),
            (State::Rejected, Serving::LastAccepted)
        );

        // Without the prior: nothing served for a.
        let mut bare = Reconciler::new();
        assert_ne!(bare.reconcile(files(&bad), vec![]).snapshot, want.snapshot);

        // A reconciler's own last accepted version is never replaced.
        let a0 = vs("a", "a.com", "/a0");
        assert_eq!(early.adopt(&files(&[("a.yaml", &a0)])), 0);
        assert_eq!(prefixes(&early.reconcile(files(&bad), vec![])), ["/a1"]);
    }

    #[test]
    fn an_unparseable_file_keeps_what_it_provided_and_deletes_still_work() {
        let mut rc = Reconciler::new();
        let a = vs("a", "a.com", "/a");
        let b = vs("b", "b.com", "/b");
        let r = rc.reconcile(
            files(&[
                ("gw.yaml", GW),
                ("up.yaml", UP),
                ("a.yaml", &a),
                ("b.yaml", &b),
            ]),
            vec![],
        );
        let before = r.snapshot.expect("served");
        // up.yaml is truncated mid-write; b.yaml is deleted.
        let r = rc.reconcile(
            files(&[
                ("gw.yaml", GW),
                (
                    "up.yaml",
                    "apiVersion: gloo.solo.io/v1\nkind: Upstream\nmetadata: {name: up\n",
                ),
                ("a.yaml", &a),
            ]),
            vec![],
        );
        let after = r.snapshot.as_ref().expect("served");
        let p =
            |s: &Snapshot| s.proxies["gloo-system~gateway-proxy"].version(ResourceType::Cluster);
        assert_eq!(p(&before), p(after), "the upstream is still served");
        assert_eq!(prefixes(&r), ["/a"]);
        let up = status(&r, "up");
        assert_eq!(
            (up.state, up.serving),
            (State::Rejected, Serving::LastAccepted)
        );
    }

    /// Parses and encodings carried over from the last load change
    /// nothing: each result equals that of a reconciler with the same
    /// last accepted resources and no caches.
    #[test]
    fn carried_over_work_gives_the_result_of_a_fresh_reconcile() {
        let mut rc = Reconciler::new();
        let a1 = vs("a", "a.com", "/a1");
        let a2 = vs("a", "a.com", "/a2");
        let b1 = vs("b", "b.com", "/b1");
        let b_bad = b1.replace("prefix", "prefx");
        type Step<'a> = (&'a [(&'a str, &'a str)], Option<(ParseStats, [usize; 3])>);
        let steps: [Step; 5] = [
            (
                &[
                    ("gw.yaml", GW),
                    ("up.yaml", UP),
                    ("a.yaml", &a1),
                    ("b.yaml", &b1),
                ],
                None,
            ),
            // One file edited: one parse, one RouteConfiguration encoded.
            (
                &[
                    ("gw.yaml", GW),
                    ("up.yaml", UP),
                    ("a.yaml", &a2),
                    ("b.yaml", &b1),
                ],
                Some((
                    ParseStats {
                        parsed: 1,
                        reused: 3,
                        routes_reused: 0,
                    },
                    [0, 0, 1],
                )),
            ),
            // Nothing changed: nothing parsed or encoded.
            (
                &[
                    ("gw.yaml", GW),
                    ("up.yaml", UP),
                    ("a.yaml", &a2),
                    ("b.yaml", &b1),
                ],
                Some((
                    ParseStats {
                        parsed: 0,
                        reused: 4,
                        routes_reused: 0,
                    },
                    [0, 0, 0],
                )),
            ),
            // b broken: its last accepted version is served, unchanged.
            (
                &[
                    ("gw.yaml", GW),
                    ("up.yaml", UP),
                    ("a.yaml", &a2),
                    ("b.yaml", &b_bad),
                ],
                Some((
                    ParseStats {
                        parsed: 1,
                        reused: 3,
                        routes_reused: 0,
                    },
                    [0, 0, 0],
                )),
            ),
            // b deleted.
            (
                &[("gw.yaml", GW), ("up.yaml", UP), ("a.yaml", &a2)],
                Some((
                    ParseStats {
                        parsed: 0,
                        reused: 3,
                        routes_reused: 0,
                    },
                    [0, 0, 1],
                )),
            ),
        ];
        for (i, (list, want)) in steps.into_iter().enumerate() {
            let mut fresh = Reconciler {
                last_good: rc.last_good.clone(),
                ..Reconciler::default()
            };
            let r = rc.reconcile(files(list), vec![]);
            let f = fresh.reconcile(files(list), vec![]);
            assert_eq!(r.snapshot, f.snapshot, "step {i}");
            assert_eq!(r.output, f.output, "step {i}");
            assert_eq!(r.diagnostics, f.diagnostics, "step {i}");
            assert_eq!(r.statuses, f.statuses, "step {i}");
            assert_eq!(r.owners, f.owners, "step {i}");
            if let Some((parse, encoded)) = want {
                assert_eq!(r.work.parse, parse, "step {i}");
                let got = [
                    ResourceType::Cluster,
                    ResourceType::Listener,
                    ResourceType::Route,
                ]
                .map(|t| r.work.encode.encoded.get(&t).copied().unwrap_or(0));
                assert_eq!(got, encoded, "step {i}: {:?}", r.work.encode);
            }
        }
    }

    #[test]
    fn a_new_resource_clashing_with_a_kept_one_is_the_one_rejected() {
        let mut rc = Reconciler::new();
        let a = vs("a", "x.com", "/a");
        let r = rc.reconcile(
            files(&[("gw.yaml", GW), ("up.yaml", UP), ("a.yaml", &a)]),
            vec![],
        );
        assert!(!r.has_errors());
        // a breaks (kept at x.com); new b validly claims x.com too: the
        // conflict rejects both, b never was valid (absent), a stays.
        let a_bad = vs("a", "x.com", "/a").replace("prefix", "prefx");
        let b = vs("b", "x.com", "/b");
        let r = rc.reconcile(
            files(&[
                ("gw.yaml", GW),
                ("up.yaml", UP),
                ("a.yaml", &a_bad),
                ("b.yaml", &b),
            ]),
            vec![],
        );
        assert_eq!(prefixes(&r), ["/a"]);
        assert_eq!(status(&r, "b").state, State::Rejected);
        assert_eq!(status(&r, "b").serving, Serving::Nothing);
    }

    /// A VirtualHostOption is handled as a RouteTable is: when an edit
    /// breaks it, it and the VirtualServices referencing it keep their last
    /// accepted versions (so what is served keeps its options), each with
    /// a status of its own; a fix serves the new version.
    #[test]
    fn a_broken_virtual_host_option_keeps_the_last_good_config() {
        let vho = |opts: &str| {
            format!(
                "apiVersion: gateway.solo.io/v1\nkind: VirtualHostOption\nmetadata: {{name: opts}}\nspec: {{options: {opts}}}\n"
            )
        };
        let vs_ref = "apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata: {name: a}\nspec: {virtualHost: {optionsConfigRefs: {delegateOptions: [{name: opts, namespace: gloo-system}]}, routes: [{matchers: [{prefix: /a}], routeAction: {single: {upstream: {name: up}}}}]}}\n";
        let attempts = |r: &Reconciled| {
            r.output.as_ref().expect("served")["gloo-system~gateway-proxy"].route_configs[0]
                .proto()
                .virtual_hosts[0]
                .include_attempt_count_in_response
        };
        let mut rc = Reconciler::new();
        let good = vho("{includeAttemptCountInResponse: true}");
        let r = rc.reconcile(
            files(&[
                ("gw.yaml", GW),
                ("up.yaml", UP),
                ("o.yaml", &good),
                ("a.yaml", vs_ref),
            ]),
            vec![],
        );
        assert!(!r.has_errors(), "{:?}", r.diagnostics);
        assert!(attempts(&r));
        assert_eq!(status(&r, "opts").proxies, ["gloo-system~gateway-proxy"]);
        assert!(
            r.owners
                .values()
                .any(|ids| ids.iter().any(|i| i.kind == "VirtualHostOption")),
            "{:?}",
            r.owners
        );

        for broken in [
            vho("{includeAttemptCountInResponse: false, cors: {allowMethods: [GET]}}"),
            vho("{includeAttemptCountInResponse: false, cors: {alowOrigin: [x]}}"),
        ] {
            let r = rc.reconcile(
                files(&[
                    ("gw.yaml", GW),
                    ("up.yaml", UP),
                    ("o.yaml", &broken),
                    ("a.yaml", vs_ref),
                ]),
                vec![],
            );
            assert!(r.has_errors());
            assert!(attempts(&r), "the last good options are still served");
            let o = status(&r, "opts");
            assert_eq!(
                (o.state, o.serving),
                (State::Rejected, Serving::LastAccepted)
            );
            assert!(o.reasons.iter().any(Diagnostic::is_error), "{o:?}");
        }

        let fixed = vho("{includeAttemptCountInResponse: false}");
        let r = rc.reconcile(
            files(&[
                ("gw.yaml", GW),
                ("up.yaml", UP),
                ("o.yaml", &fixed),
                ("a.yaml", vs_ref),
            ]),
            vec![],
        );
        assert!(!r.has_errors(), "{:?}", r.diagnostics);
        assert!(!attempts(&r));
    }

    /// On every hostile input of the repository, written over the base
    /// config: each Rejected resource says why, with where (the NACK case
    /// is Envoy's and has its own test), and nothing the input does not
    /// define is shown at all.
    #[test]
    fn every_rejected_resource_carries_its_reason_on_the_hostile_corpus()
    -> Result<(), Box<dyn std::error::Error>> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile");
        let fill = |t: String| {
            t.replace("{{PORT}}", "8080")
                .replace("{{BACKEND_PORT}}", "9090")
        };
        let read = |dir: &std::path::Path| -> Result<Vec<SourceFile>, std::io::Error> {
            let mut out = Vec::new();
            for e in std::fs::read_dir(dir)? {
                let path = e?.path();
                if path.extension().is_some_and(|x| x == "yaml") {
                    out.push(SourceFile {
                        text: fill(std::fs::read_to_string(&path)?),
                        path: PathBuf::from(path.file_name().unwrap_or_default()),
                    });
                }
            }
            out.sort_by(|a, b| a.path.cmp(&b.path));
            Ok(out)
        };
        let base = read(&root.join("base"))?;
        let mut cases = 0;
        for e in std::fs::read_dir(&root)? {
            let dir = e?.path();
            if !dir.is_dir() || dir.ends_with("base") {
                continue;
            }
            let overlay = read(&dir)?;
            if overlay.is_empty() {
                continue;
            }
            cases += 1;
            let mut rc = Reconciler::new();
            assert!(!rc.reconcile(base.clone(), vec![]).has_errors());
            let mut files: Vec<SourceFile> = base
                .iter()
                .filter(|b| !overlay.iter().any(|o| o.path == b.path))
                .cloned()
                .collect();
            files.extend(overlay);
            let r = rc.reconcile(files, vec![]);
            for st in r.statuses.iter().filter(|s| s.state == State::Rejected) {
                assert!(
                    st.reasons.iter().any(|d| d.is_error()),
                    "{}: {} is Rejected without an error: {st:?}",
                    dir.display(),
                    st.id
                );
            }
        }
        assert!(cases >= 10, "{cases} cases");
        Ok(())
    }
}
