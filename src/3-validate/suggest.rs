//! "Did you mean …?" for a reference to a resource that does not exist:
//! the same name in another namespace, or a name in the same namespace a
//! typo or two away. The search is bounded: each reference compares names
//! only within a small edit distance (a banded comparison), and only the
//! first `MAX_SUGGESTIONS` missing references of a validation are looked
//! up, so thousands of broken references cost nothing noticeable.

use std::cell::Cell;

use crate::model::Key;

/// At most this many references get a suggestion per validation.
const MAX_SUGGESTIONS: usize = 100;
/// Names this many edits apart (or fewer) count as close.
const MAX_EDITS: usize = 2;

/// Hands out suggestions until its budget is spent.
#[derive(Default)]
pub(crate) struct Suggester {
    used: Cell<usize>,
}

impl Suggester {
    /// The key in `known` that `missing` most likely meant, if any.
    pub(crate) fn closest<'k, K>(&self, missing: &Key, known: K) -> Option<&'k Key>
    where
        K: IntoIterator<Item = &'k Key>,
        K::IntoIter: Clone,
    {
        self.closest_among(missing, known.into_iter())
    }

    /// As `closest`, over any list of keys (an index's map keys).
    pub(crate) fn closest_among<'k, I>(&self, missing: &Key, known: I) -> Option<&'k Key>
    where
        I: Iterator<Item = &'k Key> + Clone,
    {
        if self.used.get() >= MAX_SUGGESTIONS {
            return None;
        }
        self.used.set(self.used.get() + 1);
        // The right name in another namespace is the likeliest slip.
        if let Some(k) = known.clone().find(|k| k.name == missing.name) {
            return Some(k);
        }
        // Short names have too many neighbours for a guess to help.
        if missing.name.chars().count() <= MAX_EDITS {
            return None;
        }
        known
            .filter(|k| k.namespace == missing.namespace)
            .filter_map(|k| edits_within(&missing.name, &k.name, MAX_EDITS).map(|d| (d, k)))
            .min_by_key(|(d, _)| *d)
            .map(|(_, k)| k)
    }
}

/// The edit distance (insertions, deletions, substitutions) between `a`
/// and `b` when it is at most `max`, else `None`. Only the band of width
/// `2·max+1` around the diagonal is computed.
fn edits_within(a: &str, b: &str, max: usize) -> Option<usize> {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len().abs_diff(b.len()) > max {
        return None;
    }
    let big = max + 1;
    // row[j]: distance between a[..i] and b[..j], `big` outside the band.
    let mut prev: Vec<usize> = (0..=b.len()).map(|j| j.min(big)).collect();
    for i in 1..=a.len() {
        let mut row = vec![big; b.len() + 1];
        row[0] = i.min(big);
        let lo = i.saturating_sub(max).max(1);
        let hi = (i + max).min(b.len());
        for j in lo..=hi {
            let substitute = prev[j - 1] + usize::from(a[i - 1] != b[j - 1]);
            row[j] = substitute.min(prev[j] + 1).min(row[j - 1] + 1).min(big);
        }
        prev = row;
    }
    let d = prev[b.len()];
    (d <= max).then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(list: &[(&str, &str)]) -> std::collections::BTreeSet<Key> {
        list.iter().map(|(ns, n)| Key::new(*ns, *n)).collect()
    }

    #[test]
    fn distances_within_the_band() {
        assert_eq!(edits_within("backend", "backend", 2), Some(0));
        assert_eq!(edits_within("backnd", "backend", 2), Some(1));
        assert_eq!(edits_within("bakcend", "backend", 2), Some(2));
        assert_eq!(edits_within("frontend", "backend", 2), None);
        assert_eq!(edits_within("b", "backend", 2), None);
    }

    #[test]
    fn suggests_another_namespace_or_a_near_name_and_stops_at_its_budget() {
        let known = keys(&[("gloo-system", "backend"), ("web", "shop")]);
        let s = Suggester::default();
        let near = s.closest(&Key::new("gloo-system", "backnd"), &known);
        assert_eq!(
            near.map(|k| k.to_string()).as_deref(),
            Some("gloo-system.backend")
        );
        let moved = s.closest(&Key::new("gloo-system", "shop"), &known);
        assert_eq!(moved.map(|k| k.to_string()).as_deref(), Some("web.shop"));
        assert_eq!(s.closest(&Key::new("web", "cart"), &known), None);
        let spent = Suggester::default();
        for _ in 0..MAX_SUGGESTIONS {
            spent.closest(&Key::new("x", "none"), &known);
        }
        assert_eq!(
            spent.closest(&Key::new("gloo-system", "backnd"), &known),
            None
        );
    }
}
