//! The shared accepted record, so every replica serves the same
//! last-known-good (`shared/reference/etcd.md` §4.4 (2)).
//!
//! When a replica accepts the document of key
//! `<prefix>/<group>/<version>/<Kind>/<ns>/<name>` at mod_revision m, it
//! records the text under `<prefix>-accepted/<group>/<version>/<Kind>/<ns>/<name>`
//! (JSON: the revision and the text), only if the stored record's revision
//! is below m: a compare-and-swap on the record's own mod_revision, so the
//! record only moves forward, writing it twice changes nothing, and no
//! replica leads. The records live outside `<prefix>/`, so the manifest
//! watch never sees them.
//!
//! A replica reads the records when it lists. A resource that is rejected
//! and that the replica never accepted itself is then served at the
//! recorded version, as on the replicas that saw it (`priors_of` picks the
//! records that still belong to the current key).

use std::collections::BTreeMap;

use etcd_client::{Compare, CompareOp, Txn, TxnOp};

use super::layout;
use super::store::{Entry, Store, StoreError};
use crate::source::SourceFile;

/// CAS attempts per record before giving up until the next change.
const ATTEMPTS: usize = 5;

/// One accepted document.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    /// The mod_revision of the manifest key the text was accepted at.
    pub revision: i64,
    pub text: String,
}

/// The root of the records: `<prefix>-accepted`.
pub fn root(prefix: &str) -> String {
    format!("{}-accepted", layout::normalize_prefix(prefix))
}

/// The record key of a manifest key (`None`: not below `<prefix>/`).
pub fn record_key(prefix: &str, key: &str) -> Option<String> {
    let rest = key.strip_prefix(layout::range_start(prefix).as_str())?;
    Some(format!("{}/{rest}", root(prefix)))
}

/// The manifest key of a record key.
pub fn manifest_key(prefix: &str, record_key: &str) -> Option<String> {
    let rest = record_key.strip_prefix(&format!("{}/", root(prefix)))?;
    Some(format!("{}{rest}", layout::range_start(prefix)))
}

/// Every record, by manifest key. Undecodable records are skipped (and
/// logged): they are only a fallback.
pub async fn read_all(
    store: &mut Store,
    prefix: &str,
) -> Result<BTreeMap<String, Record>, StoreError> {
    Ok(read_stored(store, prefix)
        .await?
        .into_iter()
        .map(|(k, s)| (k, s.record))
        .collect())
}

/// A record as stored, with the mod_revision of its own key (what a
/// compare-and-swap on it compares).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    pub record: Record,
    pub mod_revision: i64,
}

/// Every record with its key's mod_revision, by manifest key.
pub async fn read_stored(
    store: &mut Store,
    prefix: &str,
) -> Result<BTreeMap<String, Stored>, StoreError> {
    let listing = store.list(&root(prefix)).await?;
    let mut out = BTreeMap::new();
    for (k, e) in listing.entries {
        let Some(key) = manifest_key(prefix, &k) else {
            continue;
        };
        match serde_json::from_slice::<Record>(&e.value) {
            Ok(record) => {
                out.insert(
                    key,
                    Stored {
                        record,
                        mod_revision: e.mod_revision,
                    },
                );
            }
            Err(err) => {
                tracing::warn!(key = %k, error = %err, "etcd: ignoring an undecodable accepted record")
            }
        }
    }
    Ok(out)
}

/// Records per transaction in `write_batch` (etcd allows 128 operations:
/// one compare and one put each).
pub const BATCH: usize = 64;

/// Writes `records` (manifest key, record; at most `BATCH`) in one
/// transaction, each guarded by what `stored` says of its key (its
/// mod_revision, or absent). True when it committed; `stored` then holds
/// the new records. False (nothing written) when some key moved since it
/// was read: `write` each one instead, which reads before it writes.
pub async fn write_batch(
    store: &mut Store,
    prefix: &str,
    records: &[(&str, &Record)],
    stored: &mut BTreeMap<String, Stored>,
) -> Result<bool, StoreError> {
    let mut guards = Vec::with_capacity(records.len());
    let mut puts = Vec::with_capacity(records.len());
    for (key, rec) in records {
        let Some(rk) = record_key(prefix, key) else {
            continue;
        };
        guards.push(match stored.get(*key) {
            Some(s) => Compare::mod_revision(rk.as_str(), CompareOp::Equal, s.mod_revision),
            None => Compare::create_revision(rk.as_str(), CompareOp::Equal, 0),
        });
        puts.push(TxnOp::put(
            rk.as_str(),
            serde_json::to_vec(rec).unwrap_or_default(),
            None,
        ));
    }
    if puts.is_empty() {
        return Ok(true);
    }
    let mut client = store.client().await?;
    let endpoint = store.endpoint().to_string();
    let resp = client
        .txn(Txn::new().when(guards).and_then(puts))
        .await
        .map_err(|source| StoreError::Etcd { endpoint, source })?;
    if !resp.succeeded() {
        return Ok(false);
    }
    let revision = resp.header().map_or(0, |h| h.revision());
    for (key, rec) in records {
        stored.insert(
            (*key).to_string(),
            Stored {
                record: (*rec).clone(),
                mod_revision: revision,
            },
        );
    }
    Ok(true)
}

/// Writes `rec` for manifest `key` unless the stored record is at least
/// as recent. True when this call wrote it.
pub async fn write(
    store: &mut Store,
    prefix: &str,
    key: &str,
    rec: &Record,
) -> Result<bool, StoreError> {
    let Some(rk) = record_key(prefix, key) else {
        return Ok(false);
    };
    let value = serde_json::to_vec(rec).unwrap_or_default();
    let mut client = store.client().await?;
    let endpoint = store.endpoint().to_string();
    let err = |source| StoreError::Etcd {
        endpoint: endpoint.clone(),
        source,
    };
    for _ in 0..ATTEMPTS {
        let got = client.get(rk.as_str(), None).await.map_err(err)?;
        let stored = got.kvs().first();
        if let Some(kv) = stored
            && let Ok(old) = serde_json::from_slice::<Record>(kv.value())
            && old.revision >= rec.revision
        {
            return Ok(false);
        }
        // Unchanged since read (absent: never created).
        let guard = match stored {
            Some(kv) => Compare::mod_revision(rk.as_str(), CompareOp::Equal, kv.mod_revision()),
            None => Compare::create_revision(rk.as_str(), CompareOp::Equal, 0),
        };
        let txn = Txn::new()
            .when([guard])
            .and_then([TxnOp::put(rk.as_str(), value.clone(), None)]);
        if client.txn(txn).await.map_err(err)?.succeeded() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The recorded documents a reload may fall back on: the records of keys
/// that exist now, accepted at or after the key's creation (a key deleted
/// and written again starts without a last-known-good, as on a replica
/// that saw the delete), each as the key's file.
pub fn priors_of(
    entries: &BTreeMap<String, Entry>,
    records: &BTreeMap<String, Record>,
) -> Vec<SourceFile> {
    records
        .iter()
        .filter(|(key, r)| {
            entries
                .get(*key)
                .is_some_and(|e| r.revision >= e.create_revision && r.revision < e.mod_revision)
        })
        .map(|(key, r)| SourceFile {
            path: layout::path_of_key(key),
            text: r.text.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_keys_sit_beside_the_prefix() {
        let k = "edgeplane/gateway.solo.io/v1/VirtualService/ns/vs";
        let rk = record_key("edgeplane", k).expect("below the prefix");
        assert_eq!(
            rk,
            "edgeplane-accepted/gateway.solo.io/v1/VirtualService/ns/vs"
        );
        // Outside `edgeplane/`: the manifest watch never sees it.
        assert!(layout::parse_key("edgeplane", &rk).is_err());
        assert_eq!(manifest_key("edgeplane", &rk).as_deref(), Some(k));
        assert_eq!(record_key("edgeplane", "other/x"), None);
    }

    #[test]
    fn priors_are_records_of_the_current_incarnation_older_than_it() {
        let e = |c, m| Entry {
            create_revision: c,
            mod_revision: m,
            value: b"x".to_vec(),
        };
        let r = |rev| Record {
            revision: rev,
            text: format!("text {rev}"),
        };
        let mut entries = BTreeMap::new();
        let mut records = BTreeMap::new();
        // Edited after the accepted version: a prior.
        entries.insert("p/a".to_string(), e(2, 9));
        records.insert("p/a".to_string(), r(5));
        // Deleted and created again after the record: none.
        entries.insert("p/b".to_string(), e(7, 9));
        records.insert("p/b".to_string(), r(5));
        // The current version is the accepted one: nothing to fall back on.
        entries.insert("p/c".to_string(), e(2, 5));
        records.insert("p/c".to_string(), r(5));
        // The key is gone.
        records.insert("p/d".to_string(), r(5));
        let priors = priors_of(&entries, &records);
        assert_eq!(priors.len(), 1);
        assert_eq!(priors[0].path.display().to_string(), "etcd:p/a");
        assert_eq!(priors[0].text, "text 5");
    }
}
