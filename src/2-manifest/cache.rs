//! The incremental form of the parse stage, which `serve` uses (through
//! `pipeline::reconcile::Reconciler`): a file whose text is unchanged keeps
//! its documents and diagnostics; duplicates are checked across all files
//! on every call, so the result always equals `parse_files` on the same
//! files.

use std::cell::{Cell, OnceCell};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde_saphyr::Spanned;

use super::parse::{Document, RouteText, duplicates, parse_file};
use super::raw::Route;
use crate::diag::{Code, Diagnostic};
use crate::source::SourceFile;

/// Each file's parse result, kept while its text is unchanged. Parsing is
/// per file except for duplicate names, which are checked across all files
/// on every call, so the result equals `parse_files` on the same
/// files: the same documents and the same diagnostics.
#[derive(Debug, Default)]
pub struct ParseCache {
    files: HashMap<PathBuf, ParsedFile>,
}

#[derive(Debug)]
struct ParsedFile {
    text: String,
    docs: Vec<Arc<Document>>,
    /// The file's own diagnostics (duplicates excluded).
    diagnostics: Vec<Diagnostic>,
    /// Its routes parsed one by one: when the file changes, a route whose
    /// text did not is taken from here rather than parsed again.
    routes: Vec<RouteText>,
}

impl ParsedFile {
    /// `f` parsed, with how many of its routes came from `prior`.
    fn parse(f: &SourceFile, prior: Option<&ParsedFile>) -> (ParsedFile, usize) {
        let known = prior.map(PriorRoutes::new).unwrap_or_default();
        let lookup = |text: &str| known.find(text);
        let (docs, diagnostics, routes) =
            parse_file(f, (!known.routes.is_empty()).then_some(&lookup as _));
        let file = ParsedFile {
            text: f.text.clone(),
            docs: docs.into_iter().map(Arc::new).collect(),
            diagnostics: diagnostics
                .into_iter()
                .filter(|d| d.code != Some(Code::Duplicate))
                .collect(),
            routes,
        };
        (file, known.hits.get())
    }

    fn route(&self, t: &RouteText) -> Option<&Spanned<Route>> {
        self.docs.get(t.doc)?.body.routes()?.get(t.route)
    }
}

/// A file's previous routes, found by their text. Routes are looked up in
/// file order, and an edit keeps most of them in that order: each lookup
/// first tries the route after the last one found (and a few beyond it,
/// for deleted routes), a string comparison. Only after two routes in a
/// row were not found that way (routes moved around) is every text hashed
/// into an index, once; from then on every miss asks it.
#[derive(Default)]
struct PriorRoutes<'p> {
    routes: Vec<(&'p str, &'p Spanned<Route>)>,
    /// Where the next route is expected.
    next: Cell<usize>,
    /// The last lookup found nothing.
    missed: Cell<bool>,
    index: OnceCell<HashMap<&'p str, usize, foldhash::fast::RandomState>>,
    hits: Cell<usize>,
}

/// Routes past the expected one tried before the index: that many deleted
/// in one place are still found in order.
const LOOKAHEAD: usize = 8;

impl<'p> PriorRoutes<'p> {
    fn new(p: &'p ParsedFile) -> Self {
        PriorRoutes {
            routes: p
                .routes
                .iter()
                .filter_map(|t| Some((p.text.get(t.range.clone())?, p.route(t)?)))
                .collect(),
            ..Default::default()
        }
    }

    fn find(&self, text: &str) -> Option<Spanned<Route>> {
        let from = self.next.get();
        let in_order = self
            .routes
            .get(from..)
            .unwrap_or_default()
            .iter()
            .take(1 + LOOKAHEAD)
            .position(|(t, _)| *t == text)
            .map(|k| from + k);
        let at = match in_order {
            Some(at) => Some(at),
            // Once routes have moved, the index is asked at every miss.
            None if self.missed.get() || self.index.get().is_some() => self
                .index
                .get_or_init(|| {
                    // The first of equal texts wins, as its route is equal.
                    let mut m = HashMap::with_capacity_and_hasher(
                        self.routes.len(),
                        foldhash::fast::RandomState::default(),
                    );
                    for (i, (t, _)) in self.routes.iter().enumerate() {
                        m.entry(*t).or_insert(i);
                    }
                    m
                })
                .get(text)
                .copied(),
            None => None,
        };
        match at {
            Some(at) => {
                self.next.set(at + 1);
                self.missed.set(false);
                self.hits.set(self.hits.get() + 1);
                self.routes.get(at).map(|(_, r)| (*r).clone())
            }
            None => {
                self.missed.set(true);
                None
            }
        }
    }
}

/// How many files were parsed and how many kept their cached parse.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ParseStats {
    pub parsed: usize,
    pub reused: usize,
    /// Routes of parsed files taken from the file's previous parse.
    pub routes_reused: usize,
}

impl ParseCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// `parse_files(files)`, parsing only files whose text
    /// changed since the last call. Files not given are forgotten.
    /// Documents are shared (`Arc`), not copied, between the cache and
    /// its callers.
    pub fn parse(
        &mut self,
        files: &[SourceFile],
    ) -> (Vec<Arc<Document>>, Vec<Diagnostic>, ParseStats) {
        let mut docs = Vec::new();
        let mut diags = Vec::new();
        let mut stats = ParseStats::default();
        let mut next = HashMap::with_capacity(files.len());
        for f in files {
            let entry = match self.files.remove(&f.path) {
                Some(e) if e.text == f.text => {
                    stats.reused += 1;
                    e
                }
                prior => {
                    stats.parsed += 1;
                    let (p, reused) = ParsedFile::parse(f, prior.as_ref());
                    stats.routes_reused += reused;
                    p
                }
            };
            docs.extend(entry.docs.iter().cloned());
            diags.extend(entry.diagnostics.iter().cloned());
            // A path given twice is parsed twice, as parse_files would.
            next.entry(f.path.clone()).or_insert(entry);
        }
        self.files = next;
        diags.extend(duplicates(docs.iter().map(Arc::as_ref)));
        (docs, diags, stats)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::manifest::parse_files;

    fn file(path: &str, text: &str) -> SourceFile {
        SourceFile {
            path: PathBuf::from(path),
            text: text.to_string(),
        }
    }

    /// Cached and uncached parses agree: documents (by their debug form)
    /// and diagnostics, in order.
    fn same_as_uncached(cache: &mut ParseCache, files: &[SourceFile]) -> ParseStats {
        let (docs, diags, stats) = cache.parse(files);
        let (want_docs, want_diags) = parse_files(files);
        assert_eq!(diags, want_diags);
        assert_eq!(format!("{docs:?}"), format!("{want_docs:?}"));
        stats
    }

    const UP: &str = "apiVersion: gloo.solo.io/v1\nkind: Upstream\nmetadata: {name: a}\nspec: {static: {hosts: [{addr: 127.0.0.1, port: 80}]}}\n";

    #[test]
    fn parse_cache_equals_parse_files_including_duplicates() {
        let mut c = ParseCache::new();
        let bad = "apiVersion: gloo.solo.io/v1\nkind: Upstream\nmetadata: {name: b\n";
        let twice = format!("{UP}---\n{UP}");
        let mut files = vec![
            file("a.yaml", UP),
            file("b.yaml", bad),
            file("c.yaml", &twice),
            file("d.yaml", "kind: Nope\nmetadata: {name: x}\n"),
        ];
        assert_eq!(
            same_as_uncached(&mut c, &files),
            ParseStats {
                parsed: 4,
                reused: 0,
                routes_reused: 0
            }
        );
        assert_eq!(
            same_as_uncached(&mut c, &files),
            ParseStats {
                parsed: 0,
                reused: 4,
                routes_reused: 0
            }
        );
        // a.yaml goes: c.yaml's first copy is no longer a duplicate, its
        // second is a duplicate of its first.
        files.remove(0);
        assert_eq!(
            same_as_uncached(&mut c, &files),
            ParseStats {
                parsed: 0,
                reused: 3,
                routes_reused: 0
            }
        );
        files[0].text = UP.to_string();
        assert_eq!(
            same_as_uncached(&mut c, &files),
            ParseStats {
                parsed: 1,
                reused: 2,
                routes_reused: 0
            }
        );
        assert_eq!(c.files.len(), 3);
    }

    fn big_vs(routes: &[&str]) -> String {
        let mut s = String::from(
            "apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata: {name: v}\nspec:\n  virtualHost:\n    domains: ['*']\n    routes:\n",
        );
        for p in routes {
            s.push_str(&format!(
                "    - matchers:\n      - prefix: {p}\n      options: {{timeout: 1x}}\n      directResponseAction: {{status: 200}}\n"
            ));
        }
        s
    }

    /// An edit to one route of a big VirtualService parses that route only;
    /// the others come from the last parse, at their new lines.
    #[test]
    fn an_edited_file_parses_only_its_changed_routes() {
        let mut c = ParseCache::new();
        let mut files = vec![file("vs.yaml", &big_vs(&["/a", "/b", "/c"]))];
        assert_eq!(same_as_uncached(&mut c, &files).routes_reused, 0);
        // One route added ahead of the others, one changed.
        files[0].text = big_vs(&["/new", "/a", "/b2", "/c"]);
        let stats = same_as_uncached(&mut c, &files);
        assert_eq!((stats.parsed, stats.routes_reused), (1, 2));
        // The invalid timeout of route `/c` is reported on its new line.
        let (docs, _, _) = c.parse(&files);
        let v = crate::validate::validate(&docs.iter().map(|d| (**d).clone()).collect::<Vec<_>>());
        let lines: Vec<u32> = v.diagnostics.iter().map(|d| d.pos.line).collect();
        let want: Vec<u32> = files[0]
            .text
            .lines()
            .enumerate()
            .filter(|(_, l)| l.contains("timeout: 1x"))
            .map(|(i, _)| i as u32 + 1)
            .collect();
        assert_eq!(want.len(), 4);
        assert_eq!(lines, want, "{:?}", v.diagnostics);
    }

    /// Routes deleted, moved and repeated are still taken from the last
    /// parse (found in order, past deleted ones, or by the index), and the
    /// result equals a parse from scratch every time.
    #[test]
    fn routes_deleted_moved_or_repeated_are_reused() {
        let mut c = ParseCache::new();
        let paths: Vec<String> = (0..20).map(|i| format!("/r{i}")).collect();
        let all: Vec<&str> = paths.iter().map(String::as_str).collect();
        let mut files = vec![file("vs.yaml", &big_vs(&all))];
        same_as_uncached(&mut c, &files);
        // Three deleted in one place, one elsewhere.
        let fewer: Vec<&str> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| ![3, 4, 5, 12].contains(i))
            .map(|(_, p)| *p)
            .collect();
        files[0].text = big_vs(&fewer);
        assert_eq!(same_as_uncached(&mut c, &files).routes_reused, 16);
        // Reversed: nothing is where it was. The first miss is taken for
        // a new route (parsed again); from the second on the index finds
        // the rest.
        let reversed: Vec<&str> = fewer.iter().rev().copied().collect();
        files[0].text = big_vs(&reversed);
        assert_eq!(same_as_uncached(&mut c, &files).routes_reused, 15);
        // Two new routes in a row, then a route repeated.
        let mut more = vec!["/n1", "/n2"];
        more.extend(reversed.iter().copied());
        more.push(reversed[0]);
        files[0].text = big_vs(&more);
        assert_eq!(same_as_uncached(&mut c, &files).routes_reused, 17);
    }

    /// Every fixture and hostile case of the repository, cold and warm.
    #[test]
    fn parse_cache_equals_parse_files_on_the_test_corpora() -> Result<(), Box<dyn std::error::Error>>
    {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
        let mut dirs = Vec::new();
        for corpus in ["fixtures", "hostile"] {
            for e in std::fs::read_dir(root.join(corpus))? {
                let p = e?.path();
                if p.is_dir() {
                    dirs.push(p);
                }
            }
        }
        dirs.sort();
        assert!(dirs.len() > 20, "{dirs:?}");
        let mut c = ParseCache::new();
        for d in &dirs {
            let (files, _) = crate::source::load_dir(d);
            let n = files.len();
            assert_eq!(
                same_as_uncached(&mut c, &files).parsed,
                n,
                "{}",
                d.display()
            );
            assert_eq!(
                same_as_uncached(&mut c, &files).reused,
                n,
                "{}",
                d.display()
            );
        }
        Ok(())
    }
}
