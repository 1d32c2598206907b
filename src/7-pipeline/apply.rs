//! The write path's pure part (`edgeplane apply`, `delete`): the documents
//! of the files given mapped to their etcd keys, the desired store (the
//! current one with those documents applied or removed), the SAME
//! `build` run on the whole desired config, and the diff to write. The
//! etcd transaction itself is `source::etcd::write`.
//!
//! Diagnostics of documents from the files given point at those files;
//! the documents already stored (and not replaced) are named
//! `etcd:<key>`, as `serve --etcd-endpoints` names them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::{Load, build};
use crate::diag::Diagnostic;
use crate::manifest::{self, Kind};
use crate::source::SourceFile;
use crate::source::etcd::files_of;
use crate::source::etcd::layout::key_for;
use crate::source::etcd::store::Entry;
use crate::source::etcd::write::KeyWrite;

/// One document of the files given, and the key it is stored under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Given {
    pub key: String,
    /// The document's own text (its file's lines from its start to the next
    /// `---`), stored as the key's value.
    pub text: String,
    pub path: PathBuf,
    /// 1-based line of the document in `path`.
    pub line: usize,
}

/// The key of a resource of `kind` (`<prefix>/<group>/<version>/<Kind>/<ns>/<name>`).
pub fn key_of(prefix: &str, kind: Kind, namespace: &str, name: &str) -> String {
    key_for(prefix, kind.api_version(), kind.as_str(), namespace, name)
}

/// The documents the files hold, each with its key. Documents that do not
/// parse are left out (`build` on the same files reports them).
pub fn given_documents(prefix: &str, files: &[SourceFile]) -> Vec<Given> {
    let (docs, _) = manifest::parse_files(files);
    // Each file split once, its documents by first line (splitting again
    // per document made a file of n documents cost n²).
    let split: std::collections::HashMap<
        &std::path::Path,
        (&SourceFile, std::collections::HashMap<usize, String>),
    > = files
        .iter()
        .map(|f| {
            let by_line = manifest::parse::split_documents(&f.text)
                .into_iter()
                .collect();
            (f.path.as_path(), (f, by_line))
        })
        .collect();
    let mut out = Vec::with_capacity(docs.len());
    for d in docs {
        let Ok(kind) = d.id.kind.parse::<Kind>() else {
            continue;
        };
        let Some((file, by_line)) = split.get(&*d.pos.file) else {
            continue;
        };
        let Some(text) = by_line.get(&d.line_offset) else {
            continue;
        };
        out.push(Given {
            key: key_of(prefix, kind, &d.id.namespace, &d.id.name),
            text: strip_marker(text),
            path: file.path.clone(),
            line: d.line_offset + 1,
        });
    }
    out
}

/// A document's text without its leading `---` line.
fn strip_marker(text: &str) -> String {
    let first = text.lines().next().unwrap_or("");
    if first.trim_end() == "---" || first.starts_with("--- ") {
        text.split_once('\n')
            .map_or(String::new(), |(_, rest)| rest.to_string())
    } else {
        text.to_string()
    }
}

/// What one key goes through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub key: String,
    /// Absent: created.
    pub old: Option<Vec<u8>>,
    /// Absent: deleted.
    pub new: Option<Vec<u8>>,
    /// The key's `mod_revision` as read (0 when created).
    pub mod_revision: i64,
}

impl Change {
    pub fn verb(&self) -> &'static str {
        match (&self.old, &self.new) {
            (None, _) => "created",
            (Some(_), None) => "deleted",
            (Some(_), Some(_)) => "changed",
        }
    }

    /// The guarded write of this change.
    pub fn key_write(&self) -> KeyWrite {
        match (&self.old, &self.new) {
            (None, new) => KeyWrite::Create {
                key: self.key.clone(),
                value: new.clone().unwrap_or_default(),
            },
            (Some(_), Some(v)) => KeyWrite::Update {
                key: self.key.clone(),
                value: v.clone(),
                mod_revision: self.mod_revision,
            },
            (Some(_), None) => KeyWrite::Delete {
                key: self.key.clone(),
                mod_revision: self.mod_revision,
            },
        }
    }
}

/// The keys whose value differs between `current` and `desired`, in key
/// order. An unchanged document is no change.
pub fn diff(current: &BTreeMap<String, Entry>, desired: &BTreeMap<String, Vec<u8>>) -> Vec<Change> {
    let mut out = Vec::new();
    for (key, e) in current {
        match desired.get(key) {
            Some(v) if *v == e.value => {}
            new => out.push(Change {
                key: key.clone(),
                old: Some(e.value.clone()),
                new: new.cloned(),
                mod_revision: e.mod_revision,
            }),
        }
    }
    for (key, v) in desired {
        if !current.contains_key(key) {
            out.push(Change {
                key: key.clone(),
                old: None,
                new: Some(v.clone()),
                mod_revision: 0,
            });
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

/// The outcome of planning one apply or delete.
pub struct Plan {
    /// The whole desired config, validated and translated.
    pub load: Load,
    pub desired: BTreeMap<String, Vec<u8>>,
    pub changes: Vec<Change>,
}

impl Plan {
    /// SHA-256 of the desired store (keys and values), hex.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        for (k, v) in &self.desired {
            h.update((k.len() as u64).to_be_bytes());
            h.update(k.as_bytes());
            h.update((v.len() as u64).to_be_bytes());
            h.update(v);
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

fn current_values(current: &BTreeMap<String, Entry>) -> BTreeMap<String, Vec<u8>> {
    current
        .iter()
        .map(|(k, e)| (k.clone(), e.value.clone()))
        .collect()
}

/// `current` with the documents of `files` written over it. Validation
/// reads the given files whole (so their diagnostics point at them) and
/// every stored key they do not replace as `etcd:<key>`.
pub fn plan_apply(
    prefix: &str,
    current: &BTreeMap<String, Entry>,
    files: Vec<SourceFile>,
    file_diagnostics: Vec<Diagnostic>,
) -> Plan {
    let given = given_documents(prefix, &files);
    let mut desired = current_values(current);
    let mut kept = current.clone();
    for g in &given {
        desired.insert(g.key.clone(), g.text.clone().into_bytes());
        kept.remove(&g.key);
    }
    let (stored, mut diags) = files_of(prefix, &kept);
    diags.extend(file_diagnostics);
    let mut all = files;
    all.extend(stored);
    let changes = diff(current, &desired);
    Plan {
        load: build(all, diags),
        desired,
        changes,
    }
}

/// `current` without `keys`.
pub fn plan_delete(prefix: &str, current: &BTreeMap<String, Entry>, keys: &[String]) -> Plan {
    let mut kept = current.clone();
    for k in keys {
        kept.remove(k);
    }
    let desired = current_values(&kept);
    let (files, diags) = files_of(prefix, &kept);
    let changes = diff(current, &desired);
    Plan {
        load: build(files, diags),
        desired,
        changes,
    }
}

/// A line diff of `old` and `new`: ` ` kept, `-` removed, `+` added, every
/// line shown (documents are small); a longest-common-subsequence diff,
/// or all removed then all added past 4 M line pairs.
pub fn line_diff(old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let mut out = String::new();
    if a.len().saturating_mul(b.len()) > 4_000_000 {
        a.iter().for_each(|l| out.push_str(&format!("-{l}\n")));
        b.iter().for_each(|l| out.push_str(&format!("+{l}\n")));
        return out;
    }
    // lcs[i][j]: the LCS length of a[i..] and b[j..].
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push_str(&format!(" {}\n", a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push_str(&format!("-{}\n", a[i]));
            i += 1;
        } else {
            out.push_str(&format!("+{}\n", b[j]));
            j += 1;
        }
    }
    out
}

/// The diff `--dry-run` prints: a header per key and its lines.
pub fn render_changes(changes: &[Change]) -> String {
    let text = |v: &Option<Vec<u8>>| {
        v.as_ref()
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default()
    };
    let mut out = String::new();
    for c in changes {
        let (from, to) = match (&c.old, &c.new) {
            (None, _) => ("/dev/null".to_string(), c.key.clone()),
            (_, None) => (c.key.clone(), "/dev/null".to_string()),
            _ => (c.key.clone(), c.key.clone()),
        };
        out.push_str(&format!("{} {}\n--- {from}\n+++ {to}\n", c.verb(), c.key));
        out.push_str(&line_diff(&text(&c.old), &text(&c.new)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(rev: i64, v: &str) -> Entry {
        Entry {
            create_revision: rev,
            mod_revision: rev,
            value: v.as_bytes().to_vec(),
        }
    }

    #[test]
    fn documents_map_to_their_keys() {
        let files = vec![
            SourceFile {
                path: "cfg/all.yaml".into(),
                text: "apiVersion: gloo.solo.io/v1\nkind: Upstream\nmetadata:\n  name: a\n  namespace: ns\nspec:\n  static:\n    hosts: [{addr: 127.0.0.1, port: 1}]\n---\napiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata:\n  name: vs\nspec:\n  virtualHost:\n    domains: ['*']\n".into(),
            },
            SourceFile {
                path: "cfg/upstreams/gloo-system/b.yaml".into(),
                text: "metadata:\n  name: b\nstatic:\n  hosts: [{addr: 127.0.0.1, port: 2}]\n".into(),
            },
        ];
        let given = given_documents("edgeplane", &files);
        let keys: Vec<_> = given.iter().map(|g| (g.key.as_str(), g.line)).collect();
        assert_eq!(
            keys,
            [
                ("edgeplane/gloo.solo.io/v1/Upstream/ns/a", 1),
                (
                    "edgeplane/gateway.solo.io/v1/VirtualService/gloo-system/vs",
                    9
                ),
                ("edgeplane/gloo.solo.io/v1/Upstream/gloo-system/b", 1),
            ]
        );
        // One document's text, without the marker.
        assert!(
            given[1]
                .text
                .starts_with("apiVersion: gateway.solo.io/v1\n")
        );
        assert!(!given[0].text.contains("VirtualService"));
    }

    #[test]
    fn diff_names_created_changed_and_deleted_keys_only() {
        let current: BTreeMap<_, _> = [
            ("k/a".to_string(), entry(5, "same")),
            ("k/b".to_string(), entry(6, "old")),
            ("k/c".to_string(), entry(7, "gone")),
        ]
        .into();
        let desired: BTreeMap<_, _> = [
            ("k/a".to_string(), b"same".to_vec()),
            ("k/b".to_string(), b"new".to_vec()),
            ("k/d".to_string(), b"born".to_vec()),
        ]
        .into();
        let d = diff(&current, &desired);
        let verbs: Vec<_> = d.iter().map(|c| (c.key.as_str(), c.verb())).collect();
        assert_eq!(
            verbs,
            [("k/b", "changed"), ("k/c", "deleted"), ("k/d", "created")]
        );
        assert_eq!(
            d[0].key_write(),
            KeyWrite::Update {
                key: "k/b".into(),
                value: b"new".to_vec(),
                mod_revision: 6
            }
        );
        assert_eq!(
            d[1].key_write(),
            KeyWrite::Delete {
                key: "k/c".into(),
                mod_revision: 7
            }
        );
        assert_eq!(
            d[2].key_write(),
            KeyWrite::Create {
                key: "k/d".into(),
                value: b"born".to_vec()
            }
        );
        let unchanged: BTreeMap<_, _> = current
            .iter()
            .map(|(k, e)| (k.clone(), e.value.clone()))
            .collect();
        assert!(diff(&current, &unchanged).is_empty());
    }

    #[test]
    fn line_diffs_keep_common_lines() {
        assert_eq!(
            line_diff("a\nb\nc\n", "a\nx\nc\nd\n"),
            " a\n-b\n+x\n c\n+d\n"
        );
        assert_eq!(line_diff("", "n\n"), "+n\n");
        let r = render_changes(&[Change {
            key: "k".into(),
            old: None,
            new: Some(b"v\n".to_vec()),
            mod_revision: 0,
        }]);
        assert_eq!(r, "created k\n--- /dev/null\n+++ k\n+v\n");
    }
}
