//! A document's routes parsed one by one, so an edit re-parses only the
//! routes whose text changed.
//!
//! Why: parsing is most of a load's cost, and one VirtualService (or
//! RouteTable) holding thousands of routes is a common Gloo layout; adding
//! one route re-parsed all of them. Here the block sequence under
//! `spec.virtualHost.routes` (VirtualService) or `spec.routes` (RouteTable)
//! is cut at its items, the lines at the items' indentation that start
//! with `- `. The rest of the document, the skeleton, keeps every line where
//! it was: the items become blank lines and `routes:` gets a one-route flow
//! sequence holding a sentinel name. The skeleton is parsed as usual, each
//! item on its own (its positions relative to the item; `Route::line_shift`
//! moves them back), or taken from the previous parse of the file when its
//! text is unchanged (`cache`).
//!
//! The cut is checked, never trusted: the skeleton must parse with its
//! routes being exactly the sentinel (a `routes:` line inside a block or
//! quoted scalar would leave the sentinel in that scalar), and each item
//! must parse cleanly into exactly one route. An item holding `&` (anchors:
//! an alias could reach across items, and alias budgets would be per item)
//! also stops the cut. Any of that gives `None`, and the caller parses the
//! whole document as before, which reports every problem as before.

use serde_saphyr::Spanned;

use super::raw::Route;

/// The name the skeleton's placeholder route carries. It is a route name
/// no manifest has reason to use, and it only ever meets the skeleton's
/// own placeholder: a match on a real route of that name still needs the
/// cut to have found that route's `routes:` line.
pub(super) const SENTINEL: &str = "edgeplane.route-cut.sentinel";

/// A document cut at its routes.
pub(super) struct Cut<'t> {
    /// The document with its route items blanked and `routes:` holding the
    /// sentinel; every other line (and so every position) where it was.
    pub skeleton: String,
    pub items: Vec<Item<'t>>,
}

/// One route's text: from its `- ` line to the next item (or the end of
/// the sequence), trailing blank and comment lines included.
pub(super) struct Item<'t> {
    pub text: &'t str,
    /// Byte offset of `text` in the document.
    pub start: usize,
    /// 0-based line of `text`'s first line in the document.
    pub line: usize,
}

/// One line of the document.
struct Line<'t> {
    start: usize,
    /// The line without its line break.
    body: &'t str,
}

impl<'t> Line<'t> {
    /// Leading spaces.
    fn indent(&self) -> usize {
        self.body.bytes().take_while(|&b| b == b' ').count()
    }

    /// Blank or comment only: not part of any node.
    fn is_filler(&self) -> bool {
        let t = self.body[self.indent()..].trim_end();
        t.is_empty() || t.starts_with('#')
    }

    /// `key:` with nothing after it (a block mapping's key), as `key`.
    fn block_key(&self) -> Option<&'t str> {
        let body: &'t str = self.body;
        let t = body[self.indent()..].trim_end();
        let key = t.strip_suffix(':')?;
        (!key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
            .then_some(key)
    }

    /// Indented by more than `n` spaces; reads at most `n + 1` bytes.
    fn deeper_than(&self, n: usize) -> bool {
        self.body
            .as_bytes()
            .get(..=n)
            .is_some_and(|b| b.iter().all(|&c| c == b' '))
    }

    /// Starts a block sequence item (`- …` or a lone `-`).
    fn is_item(&self) -> bool {
        let t = &self.body[self.indent()..];
        t.starts_with("- ") || t.trim_end() == "-"
    }
}

/// The document's lines in order, each with its 0-based number. Newlines
/// are found with `memchr` (a big VirtualService is tens of thousands of
/// short lines, and a per-line char search was most of the cut's time).
fn lines(text: &str) -> impl Iterator<Item = (usize, Line<'_>)> {
    let bytes = text.as_bytes();
    let mut newlines = memchr::memchr_iter(b'\n', bytes);
    let mut start = 0;
    let mut number = 0;
    std::iter::from_fn(move || {
        if start >= bytes.len() {
            return None;
        }
        let next = newlines.next().map_or(bytes.len(), |nl| nl + 1);
        let mut end = next;
        while end > start && matches!(bytes[end - 1], b'\n' | b'\r') {
            end -= 1;
        }
        // Both ends are at ASCII bytes (or the text's ends): char
        // boundaries.
        let line = Line {
            start,
            body: text.get(start..end).unwrap_or_default(),
        };
        start = next;
        number += 1;
        Some((number - 1, line))
    })
}

/// The document cut at its routes, or `None` when it has no block
/// sequence of routes where a VirtualService or RouteTable keeps them
/// (then it is parsed whole). One pass over the lines, keeping only where
/// each item starts: a big VirtualService is mostly its routes' lines.
pub(super) fn cut(doc: &str) -> Option<Cut<'_>> {
    // Most documents (Upstreams, Gateways, small files) have no routes
    // block: one substring search first.
    if !doc.contains("routes:") {
        return None;
    }
    let mut lines = lines(doc);
    // Block mapping keys enclosing the current line: (indent, key).
    let mut path: Vec<(usize, &str)> = Vec::new();
    let key = loop {
        let (_, l) = lines.next()?;
        if l.is_filler() {
            continue;
        }
        let indent = l.indent();
        while path.last().is_some_and(|&(ind, _)| ind >= indent) {
            path.pop();
        }
        let Some(key) = l.block_key() else {
            continue;
        };
        let top = path.first().is_some_and(|&(ind, _)| ind == 0);
        let under = |keys: &[&str]| {
            path.len() == keys.len() && path.iter().zip(keys).all(|(&(_, k), want)| k == *want)
        };
        if key == "routes" && top && (under(&["spec"]) || under(&["spec", "virtualHost"])) {
            break l;
        }
        path.push((indent, key));
    };
    // The items: the first content line after `routes:` sets their indent.
    let (first_line, first) = lines.by_ref().find(|(_, l)| !l.is_filler())?;
    let indent = first.indent();
    if indent < key.indent() || !first.is_item() {
        return None;
    }
    // (line, byte) where each item starts; then where the sequence ends.
    let mut starts = vec![(first_line, first.start)];
    let mut end = doc.len();
    for (i, l) in lines {
        if l.deeper_than(indent) || l.is_filler() {
            continue;
        }
        if l.indent() == indent && l.is_item() {
            starts.push((i, l.start));
        } else {
            end = l.start;
            break;
        }
    }
    let items: Vec<Item<'_>> = starts
        .iter()
        .enumerate()
        .map(|(k, &(line, s))| {
            let e = starts.get(k + 1).map_or(end, |&(_, b)| b);
            Item {
                text: &doc[s..e],
                start: s,
                line,
            }
        })
        .collect();
    let (cut_from, cut_to) = (first.start, end);
    if memchr::memchr(b'&', &doc.as_bytes()[cut_from..cut_to]).is_some() {
        return None;
    }
    let blanked = memchr::memchr_iter(b'\n', &doc.as_bytes()[cut_from..cut_to]).count();
    let mut skeleton = String::with_capacity(doc.len() - (cut_to - cut_from) + blanked + 64);
    skeleton.push_str(&doc[..key.start + key.body.trim_end().len()]);
    skeleton.push_str(" [{name: ");
    skeleton.push_str(SENTINEL);
    skeleton.push_str("}]");
    skeleton.push_str(&doc[key.start + key.body.len()..cut_from]);
    skeleton.extend(std::iter::repeat_n('\n', blanked));
    skeleton.push_str(&doc[cut_to..]);
    Some(Cut { skeleton, items })
}

/// The skeleton's routes are exactly its placeholder.
pub(super) fn is_sentinel(routes: &[Spanned<Route>]) -> bool {
    matches!(routes, [r] if r.value.name.as_deref() == Some(SENTINEL))
}

/// One item's route, its positions relative to the item's text; `None`
/// when the item does not parse cleanly into exactly one route.
pub(super) fn parse_item(text: &str) -> Option<Spanned<Route>> {
    let mut routes: Vec<Spanned<Route>> = serde_saphyr::from_str(text).ok()?;
    if routes.len() != 1 {
        return None;
    }
    routes.pop()
}

/// Fills every empty slot of `routes` with `parse_item` of the text at the
/// same index; `false` (and the slots left as they are) when one does not
/// parse. Many items are split into one run per core and parsed on scoped
/// threads, each filling its own part of `routes` in place: items are
/// independent, the result is the same as one by one, and a cold load of a
/// big VirtualService is mostly this. In place, because a route with its
/// positions is ~750 bytes: a copy of 10,000 of them is 7.5 MB of peak.
pub(super) fn parse_items(texts: &[&str], routes: &mut [Option<Spanned<Route>>]) -> bool {
    /// Below this many items a thread costs more than it saves.
    const PER_THREAD: usize = 256;
    fn fill(texts: &[&str], routes: &mut [Option<Spanned<Route>>]) -> bool {
        for (slot, text) in routes.iter_mut().zip(texts) {
            if slot.is_none() {
                match parse_item(text) {
                    Some(r) => *slot = Some(r),
                    None => return false,
                }
            }
        }
        true
    }
    let empty = routes.iter().filter(|r| r.is_none()).count();
    // Asked only when there is enough to split: `available_parallelism`
    // reads the cgroup's CPU quota from /sys each time (tens of µs, as
    // much as parsing the one route a typical edit adds).
    let threads = if empty < 2 * PER_THREAD {
        1
    } else {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(empty / PER_THREAD)
            .clamp(1, 8)
    };
    if threads == 1 || texts.len() != routes.len() {
        return fill(texts, routes);
    }
    let run = texts.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = texts
            .chunks(run)
            .zip(routes.chunks_mut(run))
            .map(|(t, r)| s.spawn(move || fill(t, r)))
            .collect();
        let mut ok = true;
        for h in handles {
            match h.join() {
                Ok(done) => ok &= done,
                // A panicking parse is the parser's bug: re-raise it here,
                // where the reload's own panic guard expects it.
                Err(p) => std::panic::resume_unwind(p),
            }
        }
        ok
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const VS: &str = "apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata:\n  name: a\nspec:\n  virtualHost:\n    domains: ['*']\n    routes:\n    - matchers:\n      - prefix: /a\n      directResponseAction: {status: 200}\n    # a comment\n\n    - matchers: [{prefix: /b}]\n      directResponseAction:\n        status: 201\n    options:\n      cors: {}\n";

    #[test]
    fn cuts_at_items_and_keeps_every_line_in_place() {
        let c = cut(VS).expect("cut");
        assert_eq!(c.items.len(), 2);
        assert!(
            c.items[0]
                .text
                .starts_with("    - matchers:\n      - prefix: /a\n")
        );
        assert!(c.items[0].text.ends_with("# a comment\n\n"));
        assert_eq!(c.items[0].line, 8);
        assert_eq!(c.items[1].line, 13);
        assert!(c.items[1].text.ends_with("status: 201\n"));
        assert_eq!(&VS[c.items[1].start..][..6], "    - ");
        assert_eq!(c.skeleton.lines().count(), VS.lines().count());
        let line = |t: &str, n: usize| t.lines().nth(n).unwrap_or_default().to_string();
        assert_eq!(
            line(&c.skeleton, 7),
            format!("    routes: [{{name: {SENTINEL}}}]")
        );
        assert_eq!(line(&c.skeleton, 16), "    options:");
    }

    #[test]
    fn items_at_the_keys_indent_are_cut_too() {
        let doc = "kind: RouteTable\nspec:\n  routes:\n  - matchers: [{prefix: /a}]\n  - matchers: [{prefix: /b}]\n  weight: 3\n";
        let c = cut(doc).expect("cut");
        assert_eq!(c.items.len(), 2);
        assert_eq!(c.items[1].text, "  - matchers: [{prefix: /b}]\n");
        assert!(c.skeleton.ends_with("\n\n\n  weight: 3\n"));
    }

    #[test]
    fn no_cut_without_a_block_sequence_of_routes_or_with_anchors() {
        for doc in [
            "kind: VirtualService\nspec:\n  virtualHost:\n    routes: [{matchers: [{prefix: /}]}]\n",
            "kind: VirtualService\nspec:\n  virtualHost:\n    routes:\n",
            "kind: VirtualService\nspec:\n  virtualHost:\n    routes:\n    matchers: []\n",
            "kind: VirtualService\nspec:\n  other:\n    routes:\n    - a\n",
            "kind: VirtualService\nspec:\n  virtualHost:\n    routes:\n    - &r {matchers: []}\n    - *r\n",
        ] {
            assert!(cut(doc).is_none(), "{doc}");
        }
    }
}
