//! The one place edgeplane writes to etcd (`apply`, `delete`): a single
//! transaction guarded so that any concurrent writer makes it fail rather
//! than be overwritten (`shared/reference/etcd.md` §4.3):
//!
//! - `mod_revision(<prefix>/ range) < R+1`: nothing under the prefix was
//!   created or modified since the read at R;
//! - `mod_revision(k) == m_k` for each key changed or deleted,
//!   `create_revision(k) == 0` for each key created;
//! - `mod_revision(<prefix>-meta/generation) == g`: the range compare
//!   cannot see deletes, every edgeplane write bumps this key, so two
//!   appliers cannot miss each other's deletes.
//!
//! A write is never split: over etcd's limits (`--max-txn-ops`, 128 by
//! default; `--max-request-bytes`, 1.5 MiB) it is refused whole. Nothing is
//! ever written below `<prefix>/` except the manifests themselves.

use etcd_client::{Compare, CompareOp, GetOptions, Txn, TxnOp};

use super::layout::{normalize_prefix, range_start};
use super::store::{Store, StoreError, prefix_end};

/// etcd's default `--max-txn-ops`.
pub const DEFAULT_MAX_TXN_OPS: usize = 128;
/// etcd's default `--max-request-bytes` (1.5 MiB).
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 1536 * 1024;

/// The key every edgeplane write bumps: outside the config range, so it
/// neither wakes config watchers nor moves the range's mod revision.
pub fn generation_key(prefix: &str) -> String {
    format!("{}-meta/generation", normalize_prefix(prefix))
}

/// One key to write and what it must still be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyWrite {
    /// Create: the key must not exist (`create_revision == 0`).
    Create {
        key: String,
        value: Vec<u8>,
    },
    /// Overwrite: the key's `mod_revision` must still be `mod_revision`.
    Update {
        key: String,
        value: Vec<u8>,
        mod_revision: i64,
    },
    Delete {
        key: String,
        mod_revision: i64,
    },
}

impl KeyWrite {
    pub fn key(&self) -> &str {
        match self {
            KeyWrite::Create { key, .. }
            | KeyWrite::Update { key, .. }
            | KeyWrite::Delete { key, .. } => key,
        }
    }

    fn value_len(&self) -> usize {
        match self {
            KeyWrite::Create { value, .. } | KeyWrite::Update { value, .. } => value.len(),
            KeyWrite::Delete { .. } => 0,
        }
    }
}

/// A whole apply: what was read (revision and generation) and the writes.
#[derive(Clone, Debug, Default)]
pub struct Write {
    /// The revision the store was read (and validated) at.
    pub revision: i64,
    /// The generation key's `mod_revision` at `revision` (0: absent).
    pub generation: i64,
    /// The generation key's new value (who, when, digest).
    pub generation_value: Vec<u8>,
    pub keys: Vec<KeyWrite>,
}

/// etcd's per-request limits the transaction must fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxnLimits {
    pub max_txn_ops: usize,
    pub max_request_bytes: usize,
}

impl Default for TxnLimits {
    fn default() -> Self {
        TxnLimits {
            max_txn_ops: DEFAULT_MAX_TXN_OPS,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
        }
    }
}

/// The transaction does not fit etcd's limits; it is refused, never split.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TooLarge {
    #[error(
        "this apply needs {ops} operations and {compares} compares in one etcd transaction, over the limit of {limit} (etcd --max-txn-ops); it is not split, since that would lose its atomicity: apply fewer documents at a time, or raise --max-txn-ops on every etcd member and pass the same --max-txn-ops here"
    )]
    Ops {
        ops: usize,
        compares: usize,
        limit: usize,
    },
    #[error(
        "this apply is about {bytes} bytes in one etcd transaction, over the limit of {limit} bytes (etcd --max-request-bytes, 1.5 MiB by default); it is not split, since that would lose its atomicity: apply fewer documents at a time, or raise --max-request-bytes on every etcd member and pass the same --max-request-bytes here"
    )]
    Bytes { bytes: usize, limit: usize },
}

impl Write {
    /// Puts and deletes, plus the generation put.
    pub fn ops(&self) -> usize {
        self.keys.len() + 1
    }

    /// One per key, the range compare and the generation compare.
    pub fn compares(&self) -> usize {
        self.keys.len() + 2
    }

    /// An upper estimate of the request's encoded size: keys (twice: compare
    /// and op), values, and a few bytes of framing per entry.
    pub fn request_bytes(&self, prefix: &str) -> usize {
        const FRAMING: usize = 32;
        let keys: usize = self
            .keys
            .iter()
            .map(|k| 2 * k.key().len() + k.value_len() + 2 * FRAMING)
            .sum();
        keys + 2 * (generation_key(prefix).len() + FRAMING)
            + self.generation_value.len()
            + 2 * range_start(prefix).len()
            + FRAMING
    }

    /// Refuses a transaction etcd would refuse.
    pub fn check(&self, prefix: &str, limits: TxnLimits) -> Result<(), TooLarge> {
        if self.ops().max(self.compares()) > limits.max_txn_ops {
            return Err(TooLarge::Ops {
                ops: self.ops(),
                compares: self.compares(),
                limit: limits.max_txn_ops,
            });
        }
        let bytes = self.request_bytes(prefix);
        if bytes > limits.max_request_bytes {
            return Err(TooLarge::Bytes {
                bytes,
                limit: limits.max_request_bytes,
            });
        }
        Ok(())
    }

    /// The guarded transaction.
    pub fn txn(&self, prefix: &str) -> Txn {
        let start = range_start(prefix);
        let mut compares = vec![
            Compare::mod_revision(start.as_bytes(), CompareOp::Less, self.revision + 1)
                .with_range(prefix_end(start.as_bytes())),
            Compare::mod_revision(generation_key(prefix), CompareOp::Equal, self.generation),
        ];
        let mut ops = Vec::with_capacity(self.ops());
        for k in &self.keys {
            match k {
                KeyWrite::Create { key, value } => {
                    compares.push(Compare::create_revision(key.as_str(), CompareOp::Equal, 0));
                    ops.push(TxnOp::put(key.as_str(), value.clone(), None));
                }
                KeyWrite::Update {
                    key,
                    value,
                    mod_revision,
                } => {
                    compares.push(Compare::mod_revision(
                        key.as_str(),
                        CompareOp::Equal,
                        *mod_revision,
                    ));
                    ops.push(TxnOp::put(key.as_str(), value.clone(), None));
                }
                KeyWrite::Delete { key, mod_revision } => {
                    compares.push(Compare::mod_revision(
                        key.as_str(),
                        CompareOp::Equal,
                        *mod_revision,
                    ));
                    ops.push(TxnOp::delete(key.as_str(), None));
                }
            }
        }
        ops.push(TxnOp::put(
            generation_key(prefix),
            self.generation_value.clone(),
            None,
        ));
        Txn::new().when(compares).and_then(ops)
    }
}

impl Store {
    /// The generation key's `mod_revision` at `revision` (0: absent).
    pub async fn generation(&mut self, prefix: &str, revision: i64) -> Result<i64, StoreError> {
        let mut kv = self.client().await?.kv_client();
        let endpoint = self.endpoint().to_string();
        let resp = kv
            .get(
                generation_key(prefix),
                Some(GetOptions::new().with_revision(revision)),
            )
            .await
            .map_err(|source| StoreError::read_at(&endpoint, source, revision))?;
        Ok(resp.kvs().first().map_or(0, |kv| kv.mod_revision()))
    }

    /// Runs the guarded transaction: `Some(revision)` when it committed,
    /// `None` when a compare failed (someone else wrote since the read).
    pub async fn commit(&mut self, prefix: &str, w: &Write) -> Result<Option<i64>, StoreError> {
        let mut kv = self.client().await?.kv_client();
        let endpoint = self.endpoint().to_string();
        let resp = kv
            .txn(w.txn(prefix))
            .await
            .map_err(|source| StoreError::Etcd { endpoint, source })?;
        Ok(resp
            .succeeded()
            .then(|| resp.header().map_or(0, |h| h.revision())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(n: usize, value_len: usize) -> Write {
        Write {
            revision: 7,
            generation: 3,
            generation_value: b"{}".to_vec(),
            keys: (0..n)
                .map(|i| KeyWrite::Create {
                    key: format!("p/gloo.solo.io/v1/Upstream/ns/u{i}"),
                    value: vec![b'x'; value_len],
                })
                .collect(),
        }
    }

    #[test]
    fn the_generation_key_is_outside_the_config_range() {
        assert_eq!(generation_key("edgeplane/"), "edgeplane-meta/generation");
        assert!(!generation_key("edgeplane").starts_with(&range_start("edgeplane")));
    }

    #[test]
    fn limits_count_ops_compares_and_bytes() {
        let limits = TxnLimits::default();
        // 126 keys: 127 ops, 128 compares: fits.
        assert_eq!(write(126, 10).check("p", limits), Ok(()));
        assert!(matches!(
            write(127, 10).check("p", limits),
            Err(TooLarge::Ops {
                ops: 128,
                compares: 129,
                limit: 128
            })
        ));
        let big = write(2, 800 * 1024);
        let err = big.check("p", limits).expect_err("over 1.5 MiB");
        assert!(matches!(err, TooLarge::Bytes { .. }));
        assert!(err.to_string().contains("--max-request-bytes"));
        assert_eq!(
            big.check(
                "p",
                TxnLimits {
                    max_request_bytes: 4 << 20,
                    ..limits
                }
            ),
            Ok(())
        );
    }
}
