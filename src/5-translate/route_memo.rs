//! RouteConfigurations as bytes, spliced from each route's own encoding,
//! and the memo that keeps those encodings from one translation to the next.
//!
//! Why: a RouteConfiguration is most of what a big configuration sends, and
//! one edit changes a few of its routes. Building every route's protos and
//! encoding them again per change cost more than Envoy's own reload of the
//! same file. Here each Envoy route is encoded once, without its name (the
//! name holds the route's index and the proxy's name, which shift while the
//! route stays the same), and kept with the model route it came from. The
//! next translation compares each model route with the last one in its
//! place (a common prefix and suffix of a VirtualService's routes, then
//! position by position), takes the encoding of the equal ones, writes the
//! names in, and splices the virtual hosts and the RouteConfiguration around
//! them.
//!
//! The bytes are the canonical encoding of the whole message (`canonical`:
//! prost's field order, map entries sorted): `RouteConfig::decode` and a
//! canonical re-encoding give them back byte for byte (the tests check it
//! on every manifest of the repository), with or without the memo.

use std::collections::HashMap;
use std::sync::Arc;

use envoy_types::pb::envoy::config::route::v3::{Route, RouteConfiguration};
use prost::Message;
use prost::bytes::Bytes;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};

use super::canonical;
use crate::model::{self, Key, Model};

/// `Route.name`'s field number.
const ROUTE_NAME: u32 = 14;

/// One RouteConfiguration as translated: its name and canonical encoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteConfig {
    pub name: String,
    pub bytes: Bytes,
}

impl RouteConfig {
    /// The RouteConfiguration itself (a decoding of its bytes).
    pub fn decode(&self) -> Result<RouteConfiguration, prost::DecodeError> {
        RouteConfiguration::decode(&self.bytes[..])
    }

    /// `decode`, for tests: translation wrote the bytes.
    #[cfg(test)]
    pub(crate) fn proto(&self) -> RouteConfiguration {
        self.decode().expect("translation's bytes decode")
    }
}

/// One Envoy route's encoding without its name, and where its name goes.
#[derive(Debug)]
pub(super) struct Unnamed {
    bytes: Box<[u8]>,
    name_at: usize,
}

impl Unnamed {
    /// `route` (whose name is empty) encoded canonically.
    pub(super) fn encode(route: &Route) -> Unnamed {
        let bytes = canonical::encode(route);
        // prost always writes bytes the descriptors read; if not, the name
        // goes last, which Envoy reads just the same.
        let name_at = canonical::field_offset::<Route>(&bytes, ROUTE_NAME).unwrap_or(bytes.len());
        Unnamed {
            bytes: bytes.into_boxed_slice(),
            name_at,
        }
    }

    /// The length of the encoding (without the name).
    pub(super) fn len(&self) -> usize {
        self.bytes.len()
    }

    /// The route named `name`, as field `field` of its parent (a virtual
    /// host's `routes`), appended to `out`.
    pub(super) fn write_named(&self, field: u32, name: &str, out: &mut Vec<u8>) {
        let name_field = if name.is_empty() {
            0
        } else {
            1 + encoded_len_varint(name.len() as u64) + name.len()
        };
        encode_key(field, WireType::LengthDelimited, out);
        encode_varint((self.bytes.len() + name_field) as u64, out);
        out.extend_from_slice(&self.bytes[..self.name_at]);
        if !name.is_empty() {
            encode_key(ROUTE_NAME, WireType::LengthDelimited, out);
            encode_varint(name.len() as u64, out);
            out.extend_from_slice(name.as_bytes());
        }
        out.extend_from_slice(&self.bytes[self.name_at..]);
    }
}

/// The Envoy routes of one model route: one per matcher, in order.
pub(super) type Pieces = Arc<[Unnamed]>;

/// Which encodings one VirtualService has: per model route, in order. The
/// key's flag is whether its gateway has an auth server (per-route extauth
/// configs depend on it).
type HostKey = (Key, bool);
type Host = Arc<[Pieces]>;

/// What the last translation encoded: the model it translated, and each of
/// its virtual hosts' route encodings. Only a cache: a translation with an
/// empty memo gives the same bytes.
#[derive(Debug, Default)]
pub struct RouteMemo {
    model: Option<Arc<Model>>,
    hosts: HashMap<HostKey, Host>,
    /// Envoy routes encoded by the last translation, and taken from the
    /// memo (or from another gateway's copy of the same VirtualService).
    pub stats: MemoStats,
    /// What the last translation replaced, until the caller takes it.
    retired: Retired,
}

/// What a translation replaced in the memo: the translation before it
/// (its model and route encodings). Freeing 10,000 routes takes about a
/// millisecond, which a caller serving a save would rather spend after
/// publishing (`RouteMemo::take_retired`); dropped, it frees them.
#[derive(Debug, Default)]
pub struct Retired {
    _model: Option<Arc<Model>>,
    _hosts: HashMap<HostKey, Host>,
}

/// How many Envoy routes the last translation encoded, and how many it took
/// from the one before.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoStats {
    pub encoded: usize,
    pub reused: usize,
}

/// One translation's use of the memo.
pub(super) struct Build<'m> {
    prev_model: Option<&'m Model>,
    prev: Option<&'m HashMap<HostKey, Host>>,
    next: HashMap<HostKey, Host>,
    stats: MemoStats,
}

impl<'m> Build<'m> {
    /// A translation without a memo.
    pub(super) fn fresh() -> Build<'static> {
        Build {
            prev_model: None,
            prev: None,
            next: HashMap::new(),
            stats: MemoStats::default(),
        }
    }

    pub(super) fn reusing(memo: &'m RouteMemo) -> Build<'m> {
        Build {
            prev_model: memo.model.as_deref(),
            prev: Some(&memo.hosts),
            next: HashMap::new(),
            stats: MemoStats::default(),
        }
    }

    /// The encodings of `vs`'s routes: those of equal routes the last
    /// translation (or this one, for another gateway) made, the others
    /// made by `encode`.
    pub(super) fn host(
        &mut self,
        vs: &model::VirtualService,
        ext_authz: bool,
        encode: impl Fn(&model::Route) -> Pieces,
    ) -> Host {
        let key = (vs.key.clone(), ext_authz);
        if let Some(h) = self.next.get(&key) {
            self.stats.reused += h.iter().map(|p| p.len()).sum::<usize>();
            return h.clone();
        }
        let old = self
            .prev_model
            .and_then(|m| m.virtual_services.get(&vs.key))
            .zip(self.prev.and_then(|p| p.get(&key)))
            // Every route's encoding depends on its virtual host's options.
            .filter(|(ovs, pieces)| ovs.options == vs.options && ovs.routes.len() == pieces.len());
        let new = &vs.routes;
        let mut out: Vec<Option<Pieces>> = vec![None; new.len()];
        if let Some((ovs, pieces)) = old {
            let old = &ovs.routes;
            let prefix = new
                .iter()
                .zip(old.iter())
                .take_while(|(a, b)| same(a, b))
                .count();
            let rest = new.len().min(old.len()) - prefix;
            let suffix = new
                .iter()
                .rev()
                .zip(old.iter().rev())
                .take(rest)
                .take_while(|(a, b)| same(a, b))
                .count();
            for (slot, p) in out.iter_mut().zip(pieces.iter()).take(prefix) {
                *slot = Some(p.clone());
            }
            for (slot, p) in out.iter_mut().rev().zip(pieces.iter().rev()).take(suffix) {
                *slot = Some(p.clone());
            }
            // The middle (routes added, removed, edited or moved): each
            // route looked up among the old middle's by its first path,
            // then compared whole; an old route serves once.
            let mut by_path: HashMap<&str, Vec<usize>> = HashMap::new();
            for (k, r) in old.iter().enumerate().take(old.len() - suffix).skip(prefix) {
                by_path.entry(path_hint(r)).or_default().push(k);
            }
            for (i, slot) in out
                .iter_mut()
                .enumerate()
                .take(new.len() - suffix)
                .skip(prefix)
            {
                let Some(candidates) = by_path.get_mut(path_hint(&new[i])) else {
                    continue;
                };
                if let Some(at) = candidates.iter().position(|&k| same(&new[i], &old[k])) {
                    let k = candidates.swap_remove(at);
                    *slot = Some(pieces[k].clone());
                }
            }
        }
        let host: Host = new
            .iter()
            .zip(out)
            .map(|(r, p)| match p {
                Some(p) => {
                    self.stats.reused += p.len();
                    p
                }
                None => {
                    let p = encode(r);
                    self.stats.encoded += p.len();
                    p
                }
            })
            .collect();
        self.next.insert(key, host.clone());
        host
    }
}

impl Build<'_> {
    /// What this translation encoded, and its figures.
    pub(super) fn finish(self) -> (HashMap<HostKey, Host>, MemoStats) {
        (self.next, self.stats)
    }
}

impl RouteMemo {
    /// Remembers what a translation of `model` encoded.
    pub(super) fn keep(
        &mut self,
        model: &Arc<Model>,
        (hosts, stats): (HashMap<HostKey, Host>, MemoStats),
    ) {
        self.stats = stats;
        self.retired = Retired {
            _model: self.model.replace(model.clone()),
            _hosts: std::mem::replace(&mut self.hosts, hosts),
        };
    }

    /// What the last translation replaced, for the caller to drop.
    pub fn take_retired(&mut self) -> Retired {
        std::mem::take(&mut self.retired)
    }
}

/// Whether two model routes translate to the same Envoy routes but for
/// their names (which translation writes in): their matchers, action and
/// options. Where the route was written (`origin`) is never translated.
fn same(a: &model::Route, b: &model::Route) -> bool {
    // One body (`validate::ValidateMemo` took it from the last load) is the
    // common case after an edit of a big VirtualService.
    Arc::ptr_eq(&a.body, &b.body)
        || (a.matchers == b.matchers && a.action == b.action && a.options == b.options)
}

/// What the middle of a VirtualService's routes is looked up by: the path
/// of its first matcher (routes are told apart by their paths).
fn path_hint(r: &model::Route) -> &str {
    r.matchers.first().map_or("", |m| m.path.text())
}

/// `shell`, the canonical encoding of an `M` whose repeated field `field`
/// is empty, with `children` (each an encoded element of that field, key
/// and length included) written in where prost writes that field.
pub(super) fn splice<M: prost::Name>(shell: &[u8], field: u32, children: &[u8]) -> Vec<u8> {
    let at = canonical::field_offset::<M>(shell, field).unwrap_or(shell.len());
    let mut out = Vec::with_capacity(shell.len() + children.len());
    out.extend_from_slice(&shell[..at]);
    out.extend_from_slice(children);
    out.extend_from_slice(&shell[at..]);
    out
}

/// `body` as length-delimited field `field`, appended to `out`.
pub(super) fn write_field(field: u32, body: &[u8], out: &mut Vec<u8>) {
    encode_key(field, WireType::LengthDelimited, out);
    encode_varint(body.len() as u64, out);
    out.extend_from_slice(body);
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::pipeline;
    use crate::source::SourceFile;
    use crate::translate::{translate, translate_reusing};

    #[test]
    fn route_configurations_are_the_canonical_encoding_of_what_they_decode_to() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut dirs: Vec<PathBuf> = Vec::new();
        for base in ["tests/fixtures", "examples"] {
            let Ok(entries) = std::fs::read_dir(root.join(base)) else {
                continue;
            };
            dirs.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
        }
        let mut checked = 0;
        for dir in dirs {
            let Some(out) = pipeline::load_dir(&dir).output else {
                continue;
            };
            for (proxy, res) in &out {
                for rc in &res.route_configs {
                    let decoded = rc.decode().expect("decodes");
                    assert_eq!(
                        canonical::encode(&decoded),
                        rc.bytes.to_vec(),
                        "{} {proxy} {}",
                        dir.display(),
                        rc.name
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked >= 10, "only {checked} route configurations");
    }

    const GATEWAYS: &str = "apiVersion: gateway.solo.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: gloo-system}\nspec: {bindAddress: '::', bindPort: 8080, httpGateway: {}}\n---\napiVersion: gateway.solo.io/v1\nkind: Gateway\nmetadata: {name: other, namespace: gloo-system}\nspec: {bindAddress: '::', bindPort: 8081, proxyNames: [edge], httpGateway: {}}\n---\napiVersion: gloo.solo.io/v1\nkind: Upstream\nmetadata: {name: echo, namespace: gloo-system}\nspec: {static: {hosts: [{addr: 127.0.0.1, port: 8081}]}}\n";

    /// Route `i` of a VirtualService: every fifth named, with two
    /// matchers, with options holding per-filter configs (a map), or a
    /// direct response.
    fn route(i: usize, tag: &str) -> String {
        let action = "routeAction: {single: {upstream: {name: echo, namespace: gloo-system}}}";
        match i % 5 {
            1 => format!(
                "    - name: n{i}{tag}\n      matchers: [{{prefix: /r{i}{tag}}}]\n      {action}\n"
            ),
            2 => format!(
                "    - matchers: [{{prefix: /r{i}{tag}}}, {{exact: /e{i}}}]\n      {action}\n"
            ),
            3 => format!(
                "    - matchers: [{{prefix: /r{i}{tag}}}]\n      {action}\n      options: {{timeout: {i}s, cors: {{allowOrigin: [a.com]}}, csrf: {{filterEnabled: {{defaultValue: {{numerator: 1, denominator: HUNDRED}}}}}}}}\n"
            ),
            4 => format!(
                "    - matchers: [{{prefix: /r{i}{tag}}}]\n      directResponseAction: {{status: 200, body: b{i}}}\n"
            ),
            _ => format!("    - matchers: [{{prefix: /r{i}{tag}}}]\n      {action}\n"),
        }
    }

    fn vs(vh_options: &str, routes: &[String]) -> String {
        format!(
            "apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata: {{name: big, namespace: gloo-system}}\nspec:\n  virtualHost:\n    domains: ['*']\n{vh_options}    routes:\n{}",
            routes.concat()
        )
    }

    fn model(vs_text: String) -> Model {
        let l = pipeline::build(
            vec![
                SourceFile {
                    path: PathBuf::from("gw.yaml"),
                    text: GATEWAYS.to_string(),
                },
                SourceFile {
                    path: PathBuf::from("vs.yaml"),
                    text: vs_text,
                },
            ],
            Vec::new(),
        );
        assert!(!l.has_errors(), "{}", l.render_diagnostics());
        l.model.expect("valid")
    }

    #[test]
    fn a_translation_reusing_the_memo_gives_the_bytes_of_a_fresh_one() {
        let base: Vec<String> = (0..40).map(|i| route(i, "")).collect();
        let edit = |f: &dyn Fn(&mut Vec<String>)| {
            let mut r = base.clone();
            f(&mut r);
            r
        };
        let cors = "    options: {cors: {allowOrigin: [b.com], exposeHeaders: [x]}}\n";
        // (what, vhost options, routes, Envoy routes encoded afresh when
        // the memo holds the base translation).
        let steps: Vec<(&str, &str, Vec<String>, usize)> = vec![
            ("unchanged", "", base.clone(), 0),
            (
                "one added first",
                "",
                edit(&|r| r.insert(0, route(5, "new"))),
                1,
            ),
            (
                "one added in the middle",
                "",
                edit(&|r| r.insert(17, route(3, "new"))),
                1,
            ),
            ("one added last", "", edit(&|r| r.push(route(2, "new"))), 2),
            (
                "one removed",
                "",
                edit(&|r| {
                    r.remove(9);
                }),
                0,
            ),
            (
                "five removed",
                "",
                edit(&|r| {
                    r.drain(10..15);
                }),
                0,
            ),
            (
                "one changed in place",
                "",
                edit(&|r| r[23] = route(23, "x")),
                1,
            ),
            (
                "two changed apart",
                "",
                edit(&|r| {
                    r[3] = route(3, "y");
                    r[30] = route(30, "y");
                }),
                2,
            ),
            (
                "one removed, one added",
                "",
                edit(&|r| {
                    r.remove(9);
                    r.push(route(4, "new"));
                }),
                1,
            ),
            (
                "options only",
                "",
                edit(&|r| r[3] = r[3].replace("timeout: 3s", "timeout: 9s")),
                1,
            ),
            (
                "action only",
                "",
                edit(&|r| r[4] = r[4].replace("body: b4", "body: c4")),
                1,
            ),
            (
                "a named route renamed",
                "",
                edit(&|r| r[1] = r[1].replace("name: n1", "name: m1")),
                0,
            ),
            ("reordered", "", edit(&|r| r.swap(0, 39)), 0),
            ("virtual host options", cors, base.clone(), 48),
        ];
        let mut memo = RouteMemo::default();
        let envoy_routes = |routes: &[String]| -> usize {
            routes
                .iter()
                .map(|r| r.matches("prefix:").count() + r.matches("exact:").count())
                .sum()
        };
        let mut check = |what: &str, opts: &str, routes: &[String]| {
            let m = Arc::new(model(vs(opts, routes)));
            let fresh = translate(&m);
            let reused = translate_reusing(&m, &mut memo);
            assert_eq!(reused, fresh, "{what}");
            for rc in fresh.values().flat_map(|p| &p.route_configs) {
                let proto = rc.decode().expect("decodes");
                assert_eq!(canonical::encode(&proto), rc.bytes.to_vec(), "{what}");
            }
            // Two gateways, two proxies: the second takes the first's.
            assert_eq!(
                memo.stats.encoded + memo.stats.reused,
                2 * envoy_routes(routes),
                "{what}"
            );
            memo.stats.encoded
        };
        assert_eq!(check("first", "", &base), 48);
        for (what, opts, routes, encoded) in steps {
            check("base", "", &base);
            assert_eq!(check(what, opts, &routes), encoded, "{what}");
        }
    }
}
