//! Several `serve` replicas on one etcd store see each other's Envoys
//! (`shared/reference/etcd.md` §4.4): no leader, no contention.
//!
//! - Each replica writes only its own key `<prefix>-status/replicas/<id>`
//!   (the `edgeplane.v1.ReplicaStatus` proto: its source revision,
//!   generation and connected nodes with ACK/NACK per type), attached to a
//!   lease of `LEASE_TTL` kept alive every `KEEP_ALIVE`. It is written when
//!   it changes, at most once per `MIN_WRITE_INTERVAL`. A dead replica's key
//!   is deleted by etcd when its lease expires; a replica that shuts down
//!   revokes its lease, so its entries go at once.
//! - Each replica lists and watches `<prefix>-status/replicas/` and keeps
//!   the others' views in `status::Peers`, which the status report merges
//!   (each node marked with its replica id).

use std::collections::BTreeMap;
use std::time::Duration;

use etcd_client::{EventType, PutOptions, WatchOptions};
use prost::Message;

use crate::source::etcd::{Store, layout, store};
use crate::status::State;
use crate::status::api::ReplicaStatus;

pub const LEASE_TTL: i64 = 10;
pub const KEEP_ALIVE: Duration = Duration::from_secs(3);
pub const MIN_WRITE_INTERVAL: Duration = Duration::from_secs(1);
/// After a failure, before the next member is tried.
const RETRY: Duration = Duration::from_secs(1);
/// How long a shutting-down replica tries to revoke its lease.
pub const REVOKE_WITHIN: Duration = Duration::from_secs(1);

/// The root of the replicas' keys: `<prefix>-status/replicas`.
pub fn root(prefix: &str) -> String {
    format!("{}-status/replicas", layout::normalize_prefix(prefix))
}

/// This process's replica id: the host name and the process id.
pub fn replica_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "edgeplane".to_string());
    format!("{host}-{}", std::process::id())
}

/// This replica's view, as it publishes it.
fn own_view(id: &str, state: &State, revision: i64) -> ReplicaStatus {
    let report = crate::status::view::current_status(state);
    let generation = state
        .snapshots
        .borrow()
        .as_ref()
        .map(|s| s.generation().to_string())
        .unwrap_or_default();
    ReplicaStatus {
        replica_id: id.to_string(),
        source_revision: revision,
        generation,
        nodes: report
            .nodes
            .into_iter()
            .filter(|n| n.replica.is_empty())
            .collect(),
        drains: crate::status::view::own_drains(state),
    }
}

/// Publishes this replica's view under a lease until `shutdown` turns
/// true, then revokes the lease (its entries vanish at once, not a TTL
/// later) and returns.
pub async fn publish(
    mut store: Store,
    prefix: String,
    id: String,
    state: State,
    revision: tokio::sync::watch::Receiver<crate::source::etcd::Connection>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let key = format!("{}/{id}", root(&prefix));
    let mut registry = state.registry.subscribe();
    let mut snapshots = state.snapshots.clone();
    let mut warned = false;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let r = publish_once(
            &mut store,
            &key,
            &id,
            &state,
            &revision,
            &mut registry,
            &mut snapshots,
            &mut shutdown,
        )
        .await;
        match r {
            Ok(()) => return,
            Err(e) => {
                if !warned {
                    tracing::warn!(error = %e, "etcd: cannot publish this replica's status; retrying");
                    warned = true;
                }
                store.fail_over();
                tokio::select! {
                    () = tokio::time::sleep(RETRY) => {}
                    () = stopped(&mut shutdown) => return,
                }
            }
        }
    }
}

/// Resolves once `shutdown` is true (or its sender is gone).
async fn stopped(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

/// One lease's life: grant, write on change, keep alive; returns an error
/// on failure, `Ok` once the lease is revoked at shutdown.
#[allow(clippy::too_many_arguments)]
async fn publish_once(
    store: &mut Store,
    key: &str,
    id: &str,
    state: &State,
    revision: &tokio::sync::watch::Receiver<crate::source::etcd::Connection>,
    registry: &mut tokio::sync::watch::Receiver<u64>,
    snapshots: &mut tokio::sync::watch::Receiver<Option<std::sync::Arc<crate::snapshot::Snapshot>>>,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
) -> Result<(), String> {
    let mut client = store.client().await.map_err(|e| e.to_string())?;
    let endpoint = store.endpoint().to_string();
    let err = |e: etcd_client::Error| format!("etcd {endpoint}: {e}");
    let lease = client.lease_grant(LEASE_TTL, None).await.map_err(err)?.id();
    let (mut keeper, mut responses) = client.lease_keep_alive(lease).await.map_err(err)?;
    let mut last: Option<Vec<u8>> = None;
    let mut tick = tokio::time::interval(KEEP_ALIVE);
    loop {
        if *shutdown.borrow() {
            break;
        }
        let view = own_view(id, state, revision.borrow().revision).encode_to_vec();
        if last.as_ref() != Some(&view) {
            client
                .put(key, view.clone(), Some(PutOptions::new().with_lease(lease)))
                .await
                .map_err(err)?;
            tracing::debug!(%key, "etcd: published this replica's status");
            last = Some(view);
            // At most one write per interval.
            tokio::select! {
                biased;
                () = stopped(shutdown) => break,
                () = tokio::time::sleep(MIN_WRITE_INTERVAL) => {}
            }
        }
        tokio::select! {
            biased;
            () = stopped(shutdown) => break,
            _ = tick.tick() => {
                keeper.keep_alive().await.map_err(err)?;
                match responses.message().await.map_err(err)? {
                    Some(r) if r.ttl() > 0 => {}
                    _ => return Err(format!("etcd {endpoint}: lease {lease} expired")),
                }
            }
            r = registry.changed() => { r.map_err(|e| e.to_string())?; }
            r = snapshots.changed() => { r.map_err(|e| e.to_string())?; }
        }
    }
    match tokio::time::timeout(REVOKE_WITHIN, client.lease_revoke(lease)).await {
        Ok(Ok(_)) => tracing::info!(%key, "etcd: revoked this replica's status lease"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "etcd: cannot revoke this replica's status lease; it expires on its own")
        }
        Err(_) => tracing::warn!(
            "etcd: revoking this replica's status lease timed out; it expires on its own"
        ),
    }
    Ok(())
}

/// Keeps `state.peers` equal to the other replicas' published views:
/// list, then watch from the next revision; on any failure, list again.
pub async fn follow(mut store: Store, prefix: String, own: String, state: State) {
    let root = root(&prefix);
    loop {
        if let Err(e) = follow_once(&mut store, &root, &own, &state).await {
            tracing::debug!(error = %e, "etcd: following the replicas' status failed; listing again");
            store.fail_over();
            tokio::time::sleep(RETRY).await;
        }
    }
}

fn decode(value: &[u8]) -> Option<ReplicaStatus> {
    ReplicaStatus::decode(value).ok()
}

/// The replica id of a key below `root/`.
fn id_of<'a>(root: &str, key: &'a str) -> Option<&'a str> {
    key.strip_prefix(root)?.strip_prefix('/')
}

async fn follow_once(
    store: &mut Store,
    root: &str,
    own: &str,
    state: &State,
) -> Result<(), String> {
    let listing = store.list(root).await.map_err(|e| e.to_string())?;
    let all: BTreeMap<String, ReplicaStatus> = listing
        .entries
        .iter()
        .filter_map(|(k, e)| {
            let id = id_of(root, k)?;
            (id != own).then(|| Some((id.to_string(), decode(&e.value)?)))?
        })
        .collect();
    state.peers.set_all(all);
    let client = store.client().await.map_err(|e| e.to_string())?;
    let endpoint = store.endpoint().to_string();
    let err = |e: etcd_client::Error| format!("etcd {endpoint}: {e}");
    let start = format!("{root}/");
    let opts = WatchOptions::new()
        .with_range(store::prefix_end(start.as_bytes()))
        .with_start_revision(listing.revision + 1);
    let mut wc = client.watch_client();
    let mut stream = wc.watch(start, Some(opts)).await.map_err(err)?;
    while let Some(resp) = stream.message().await.map_err(err)? {
        if resp.canceled() {
            return Err(format!("etcd {endpoint}: watch cancelled"));
        }
        for ev in resp.events() {
            let Some(kv) = ev.kv() else { continue };
            let key = String::from_utf8_lossy(kv.key());
            let Some(id) = id_of(root, &key) else {
                continue;
            };
            if id == own {
                continue;
            }
            match ev.event_type() {
                EventType::Put => state.peers.set(id, decode(kv.value())),
                EventType::Delete => {
                    tracing::info!(
                        replica = id,
                        "etcd: a replica's status is gone (lease expired or deleted)"
                    );
                    state.peers.set(id, None);
                }
            }
        }
    }
    Err(format!("etcd {endpoint}: watch stream ended"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_keys_sit_beside_the_prefix() {
        let r = root("edgeplane/");
        assert_eq!(r, "edgeplane-status/replicas");
        assert_eq!(id_of(&r, "edgeplane-status/replicas/h-1"), Some("h-1"));
        assert_eq!(id_of(&r, "edgeplane-status/replicasX"), None);
        assert!(layout::parse_key("edgeplane", &format!("{r}/a/b/c/d")).is_err());
        let s = ReplicaStatus {
            replica_id: "h-1".into(),
            source_revision: 7,
            ..Default::default()
        };
        assert_eq!(decode(&s.encode_to_vec()), Some(s));
        assert!(!replica_id().is_empty());
    }
}
