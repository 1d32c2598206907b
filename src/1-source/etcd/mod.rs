//! Manifests in etcd: keys `<prefix>/<group>/<version>/<Kind>/<namespace>/<name>`
//! (`layout`), one YAML document per key, read by a paged list at one
//! revision and kept current by a watch from the next one (`store`,
//! `watch`). Each change hands the reload the same `Vec<SourceFile>` the
//! directory source does, sorted by key, each with the path `etcd:<key>`.

pub mod accepted;
pub mod layout;
pub mod store;
pub mod watch;
pub mod write;

use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::diag::{Code, Diagnostic, Pos};

use super::SourceFile;
pub use store::{EtcdConfig, Store, StoreError, TlsFiles};

/// What the reload reads: the whole prefix at one revision.
#[derive(Clone, Debug, Default)]
pub struct Update {
    pub revision: i64,
    pub files: Vec<SourceFile>,
    /// Keys that are no manifest's key, values that are not UTF-8.
    pub diagnostics: Vec<Diagnostic>,
    /// Keys put or deleted since the update before (all of them after a
    /// list).
    pub changed: usize,
    /// Each file's key's mod_revision (by path, `etcd:<key>`): what an
    /// accepted record names.
    pub revisions: BTreeMap<std::path::PathBuf, i64>,
    /// Documents other replicas accepted earlier than the current ones
    /// (`accepted::priors_of`): the last-known-good of a replica that did
    /// not see them itself.
    pub priors: Vec<SourceFile>,
}

/// Whether the source reaches etcd, and how far it has read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    pub connected: bool,
    /// When `connected` last changed (or the source started).
    pub since: SystemTime,
    /// The store revision the served manifests were read at (0: none yet).
    pub revision: i64,
    /// The member in use (or last tried).
    pub endpoint: String,
    /// Why it is not connected.
    pub error: Option<String>,
    /// Whole-prefix lists so far (one at start, one more per compaction).
    pub lists: u64,
    /// Watch events applied so far: with one list, exactly the puts and
    /// deletes made under the prefix since it (a lost event makes it
    /// smaller, one applied twice larger).
    pub events: u64,
    /// Watches opened: one after each list, one more per resume (from the
    /// last revision seen + 1, without a list) after a failure.
    pub watches: u64,
}

impl Default for Connection {
    fn default() -> Self {
        Connection {
            connected: false,
            since: SystemTime::now(),
            revision: 0,
            endpoint: String::new(),
            error: None,
            lists: 0,
            events: 0,
            watches: 0,
        }
    }
}

/// The reload's input from the entries under `prefix`.
pub fn files_of(
    prefix: &str,
    entries: &BTreeMap<String, store::Entry>,
) -> (Vec<SourceFile>, Vec<Diagnostic>) {
    let mut files = Vec::with_capacity(entries.len());
    let mut diags = Vec::new();
    for (key, e) in entries {
        let path = layout::path_of_key(key);
        if let Err(err) = layout::parse_key(prefix, key) {
            diags.push(
                Diagnostic::error(Pos::new(&path, 1, 1), None, err.to_string())
                    .with_hint("edgeplane reads keys <prefix>/<group>/<version>/<Kind>/<namespace>/<name>, e.g. edgeplane/gateway.solo.io/v1/VirtualService/gloo-system/default"),
            );
            continue;
        }
        match std::str::from_utf8(&e.value) {
            Ok(text) => files.push(SourceFile {
                path,
                text: text.to_string(),
            }),
            Err(err) => diags.push(
                Diagnostic::error(
                    Pos::new(&path, 1, 1),
                    None,
                    format!("value is not UTF-8 text ({err})"),
                )
                .with_code(Code::Unreadable),
            ),
        }
    }
    (files, diags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stray_keys_and_binary_values_are_diagnostics() {
        let mut entries = BTreeMap::new();
        let e = |v: &[u8]| store::Entry {
            create_revision: 1,
            mod_revision: 1,
            value: v.to_vec(),
        };
        entries.insert(
            "p/gloo.solo.io/v1/Upstream/ns/u".to_string(),
            e(b"metadata: {}"),
        );
        entries.insert("p/stray".to_string(), e(b"x"));
        entries.insert(
            "p/gloo.solo.io/v1/Upstream/ns/bin".to_string(),
            e(&[0xff, 0xfe]),
        );
        let (files, diags) = files_of("p", &entries);
        assert_eq!(files.len(), 1);
        assert_eq!(
            files[0].path.display().to_string(),
            "etcd:p/gloo.solo.io/v1/Upstream/ns/u"
        );
        assert_eq!(diags.len(), 2);
        assert!(
            diags
                .iter()
                .any(|d| d.pos.file.display().to_string() == "etcd:p/stray")
        );
        assert!(diags.iter().any(|d| d.code == Some(Code::Unreadable)));
    }
}
