//! The list/watch loop: list the prefix at revision R, hand it to the
//! reload, watch from R+1, and apply every event of one watch response
//! before the next hand-over (a transaction's documents arrive in one
//! response, so no edit is ever half applied).
//!
//! - The watch always names its start revision ("watch from now" is per
//!   member, and a follower may be behind a write already acknowledged).
//! - A watch cancelled with a compact revision: list again.
//! - Any other failure: the next member, then watch again from the last
//!   revision seen + 1 (no list), with a backoff that grows only once every
//!   member has failed, and jitter.
//! - Requests `require_leader` (set on the connection by `store`): a member
//!   that lost quorum fails the watch instead of staying silent.
//! - Connected/disconnected is logged once per transition, never per retry.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use etcd_client::{EventType, WatchOptions};
use tokio::sync::watch;

use super::accepted::{self, Record};
use super::store::{self, Entry, Listing, MAX_DECODE_BYTES, Store};
use super::{Connection, Update, files_of, layout};

/// Waits between attempts: short while other members are left to try,
/// growing (to `MAX_BACKOFF`) once all have failed.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Where the loop reports.
pub struct Outputs {
    /// The latest whole state (latest wins: the reload reads the newest).
    pub updates: watch::Sender<Option<Arc<Update>>>,
    pub connection: watch::Sender<Connection>,
}

/// Why a watch ended.
enum End {
    /// Its start revision was compacted: list again.
    Compacted(i64),
    Failed(String),
}

/// Runs until the update receivers are all gone.
pub async fn run(mut store: Store, prefix: String, out: Outputs) {
    let mut state: Option<Listing> = None;
    // The shared accepted records, read with every list.
    let mut records = BTreeMap::new();
    let mut failures: u32 = 0;
    loop {
        if out.updates.is_closed() {
            return;
        }
        if state.is_none() {
            match store.list(&prefix).await {
                Ok(listing) => {
                    tracing::info!(
                        revision = listing.revision,
                        keys = listing.entries.len(),
                        endpoint = store.endpoint(),
                        "etcd: listed the manifests"
                    );
                    records = read_records(&mut store, &prefix).await;
                    publish(&prefix, &listing, &records, listing.entries.len(), &out);
                    out.connection.send_modify(|c| c.lists += 1);
                    set_connected(&out, &store, true, listing.revision, None);
                    state = Some(listing);
                    failures = 0;
                }
                Err(e) => {
                    if !e.is_compacted() {
                        set_connected(&out, &store, false, 0, Some(&e.to_string()));
                    }
                    pause(&mut store, &mut failures, e.is_compacted()).await;
                    continue;
                }
            }
        }
        let Some(listing) = state.as_mut() else {
            continue;
        };
        match watch_from(&mut store, &prefix, listing, &records, &out, &mut failures).await {
            End::Compacted(at) => {
                tracing::warn!(
                    revision = listing.revision,
                    compacted = at,
                    "etcd: the watch's start revision was compacted; listing again"
                );
                state = None;
            }
            End::Failed(e) => {
                let revision = listing.revision;
                set_connected(&out, &store, false, revision, Some(&e));
                pause(&mut store, &mut failures, false).await;
            }
        }
    }
}

/// After a failure: the next member, and a wait.
async fn pause(store: &mut Store, failures: &mut u32, same_member: bool) {
    if same_member {
        return;
    }
    let wrapped = store.fail_over();
    if wrapped {
        *failures = failures.saturating_add(1);
    }
    let base = if *failures == 0 {
        FIRST_BACKOFF
    } else {
        (FIRST_BACKOFF * 2u32.saturating_pow(*failures)).min(MAX_BACKOFF)
    };
    tokio::time::sleep(base + jitter(base / 2)).await;
}

/// Up to `max`, from the clock's nanoseconds (no need for a random source).
fn jitter(max: Duration) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let max_ms = max.as_millis().max(1) as u32;
    Duration::from_millis(u64::from(nanos % max_ms))
}

/// Watches from `listing.revision + 1`, applying events to `listing`,
/// until the watch ends.
async fn watch_from(
    store: &mut Store,
    prefix: &str,
    listing: &mut Listing,
    records: &BTreeMap<String, Record>,
    out: &Outputs,
    failures: &mut u32,
) -> End {
    let client = match store.client().await {
        Ok(c) => c,
        Err(e) => return End::Failed(e.to_string()),
    };
    let start = layout::range_start(prefix);
    let opts = WatchOptions::new()
        .with_range(store::prefix_end(start.as_bytes()))
        .with_start_revision(listing.revision + 1)
        .with_progress_notify();
    let mut wc = client
        .watch_client()
        .max_decoding_message_size(MAX_DECODE_BYTES);
    let mut stream = match wc.watch(start, Some(opts)).await {
        Ok(s) => s,
        Err(e) => return End::Failed(describe(store, &e)),
    };
    loop {
        let resp = match stream.message().await {
            Ok(Some(r)) => r,
            Ok(None) => {
                return End::Failed(format!("etcd {}: watch stream ended", store.endpoint()));
            }
            Err(e) => {
                if store::compacted(&e) {
                    return End::Compacted(0);
                }
                return End::Failed(describe(store, &e));
            }
        };
        if resp.canceled() {
            if resp.compact_revision() > 0 {
                return End::Compacted(resp.compact_revision());
            }
            let reason = resp.cancel_reason();
            return End::Failed(format!(
                "etcd {}: watch cancelled{}",
                store.endpoint(),
                if reason.is_empty() {
                    String::new()
                } else {
                    format!(": {reason}")
                }
            ));
        }
        if resp.created() {
            *failures = 0;
            out.connection.send_modify(|c| c.watches += 1);
            set_connected(out, store, true, listing.revision, None);
        }
        let events = resp.events();
        if events.is_empty() {
            // A progress notification: nothing under the prefix changed up
            // to the header's revision.
            if !resp.created()
                && let Some(h) = resp.header()
                && h.revision() > listing.revision
            {
                listing.revision = h.revision();
                set_connected(out, store, true, listing.revision, None);
            }
            continue;
        }
        for ev in events {
            let Some(kv) = ev.kv() else { continue };
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            match ev.event_type() {
                EventType::Put => {
                    listing.entries.insert(key, Entry::of(kv));
                }
                EventType::Delete => {
                    listing.entries.remove(&key);
                }
            }
            listing.revision = listing.revision.max(kv.mod_revision());
        }
        tracing::debug!(
            revision = listing.revision,
            events = events.len(),
            "etcd: applying watch events"
        );
        publish(prefix, listing, records, events.len(), out);
        out.connection
            .send_modify(|c| c.events += events.len() as u64);
        set_connected(out, store, true, listing.revision, None);
    }
}

fn describe(store: &Store, e: &etcd_client::Error) -> String {
    format!("etcd {}: {e}", store.endpoint())
}

/// The shared accepted records; none (logged) when they cannot be read:
/// they are only a fallback for resources rejected before this replica
/// started.
async fn read_records(store: &mut Store, prefix: &str) -> BTreeMap<String, Record> {
    match accepted::read_all(store, prefix).await {
        Ok(r) => {
            tracing::debug!(records = r.len(), "etcd: read the accepted records");
            r
        }
        Err(e) => {
            tracing::warn!(error = %e, "etcd: cannot read the accepted records; a resource rejected before this replica started is not served");
            BTreeMap::new()
        }
    }
}

fn publish(
    prefix: &str,
    listing: &Listing,
    records: &BTreeMap<String, Record>,
    changed: usize,
    out: &Outputs,
) {
    let (files, diagnostics) = files_of(prefix, &listing.entries);
    let revisions = listing
        .entries
        .iter()
        .map(|(k, e)| (layout::path_of_key(k), e.mod_revision))
        .collect();
    let _ = out.updates.send(Some(Arc::new(Update {
        revision: listing.revision,
        files,
        diagnostics,
        changed,
        revisions,
        priors: accepted::priors_of(&listing.entries, records),
    })));
}

/// Records the connection state; logs only when `connected` flips.
fn set_connected(
    out: &Outputs,
    store: &Store,
    connected: bool,
    revision: i64,
    error: Option<&str>,
) {
    out.connection.send_if_modified(|c| {
        let flipped = c.connected != connected;
        if flipped {
            c.since = SystemTime::now();
            if connected {
                tracing::info!(endpoint = store.endpoint(), revision, "etcd: connected");
            } else {
                tracing::warn!(
                    error = error.unwrap_or(""),
                    revision = c.revision,
                    "etcd: disconnected; Envoys keep the last config served, retrying every member"
                );
            }
        }
        let revision = if revision > 0 { revision } else { c.revision };
        let next = Connection {
            connected,
            revision,
            endpoint: store.endpoint().to_string(),
            error: error.map(str::to_string),
            ..c.clone()
        };
        if *c == next {
            return false;
        }
        *c = next;
        true
    });
}
