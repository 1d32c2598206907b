//! The incremental (delta) ADS protocol of one stream (driven by `session`).
//!
//! Per type the stream keeps what Envoy subscribed to (wildcard and/or
//! names) and what Envoy holds: name → version, seeded from
//! `initial_resource_versions` on reconnect and updated when a response is
//! sent. A response carries only resources whose version differs from what
//! Envoy holds, and `removed_resources` for names Envoy holds that no longer
//! exist or are no longer subscribed. The rules, after the xDS protocol
//! (notes in `ARCHITECTURE.md`):
//! - subscription changes always count, whatever the nonce; every newly
//!   subscribed name gets an answer (the resource, or a removal when it does
//!   not exist, so Envoy need not wait for its fetch timeout), unless Envoy
//!   already holds exactly our version;
//! - the first request of a type with empty lists is a (legacy) wildcard;
//! - versions are recorded when sent, not when ACKed, so a NACKed resource
//!   is never sent again until it changes; the NACK is logged and reported
//!   with the resources it concerns;
//! - an ACK or NACK counts once, and only for the latest response of its
//!   type; any other nonce changes nothing (`StreamObserver::stale_nonce`);
//!   NACK messages are escaped and capped (`registry::clean_message`);
//! - names are bounded (`StreamLimits::max_subscribed_names`) per type and
//!   in total: explicit subscriptions, or the names
//!   `initial_resource_versions` claimed, whichever is more per type;
//! - several types due at once go clusters, listeners, routes (make before
//!   break), as in state of the world.
//!
//! A resource's version is the SHA-256 of its bytes, the same in every
//! process: a reconnect to a restarted or other replica with the same
//! manifests sends nothing new.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryRequest;

use super::XdsMode;
use super::registry::ResourceSet;
use super::registry::clean_message;
use super::session::{OverLimit, Protocol, Session};
use super::wire::DeltaResponse;
use crate::snapshot::{Encoded, PUSH_ORDER, ProxySnapshot, ResourceType, version_of};

const WILDCARD: &str = "*";

/// What Envoy holds of one resource.
#[derive(Debug)]
enum Held {
    /// What this stream sent: a pointer into the snapshot, not a copy of
    /// its version string.
    Sent(Arc<Encoded>),
    /// A version Envoy named in `initial_resource_versions`.
    Claimed(String),
}

impl Held {
    fn version(&self) -> &str {
        match self {
            Held::Sent(e) => &e.hash,
            Held::Claimed(v) => v,
        }
    }
}

#[derive(Debug, Default)]
struct TypeStream {
    /// Envoy has sent a request for this type on this stream.
    seen: bool,
    /// Subscribed to every resource of the type.
    wildcard: bool,
    /// Names subscribed explicitly.
    names: BTreeSet<String>,
    /// What Envoy holds, as far as we know: name → version.
    held: BTreeMap<Arc<str>, Held>,
    /// Names that must be answered in the next response even when Envoy
    /// seems to hold them (new subscriptions).
    answer: BTreeSet<String>,
    /// Send a response even if it would be empty (a subscription request
    /// whose names all turned out current): Envoy counts the type as
    /// fetched only when answered.
    must_answer: bool,
    /// Nonce of the last response sent for this type, until Envoy ACKs
    /// or NACKs it (then `None`: an answer counts once).
    last_nonce: Option<String>,
    /// How many names `initial_resource_versions` claimed (counted against
    /// the stream's limit of subscribed names).
    claimed: usize,
}

impl TypeStream {
    /// What this type counts against the stream's limit of names: its
    /// explicit subscriptions or the names Envoy claimed on connecting,
    /// whichever is more (they mostly overlap).
    fn weight(&self) -> usize {
        self.names.len().max(self.claimed)
    }

    fn subscribed(&self, name: &str) -> bool {
        self.wildcard || self.names.contains(name)
    }
}

/// Incremental: per type, the subscription and what Envoy holds.
#[derive(Default)]
pub struct Delta {
    types: crate::xds::per_type::PerType<TypeStream>,
}

impl Delta {
    /// Refuses a request that would make this stream keep more than
    /// `limit` names for one type, or in total: explicit subscriptions plus
    /// the names `initial_resource_versions` claimed.
    fn check_limits(
        &self,
        t: ResourceType,
        req: &DeltaDiscoveryRequest,
        limit: usize,
    ) -> Result<(), OverLimit> {
        let per_type = |what, count: usize| {
            if count > limit {
                Err(OverLimit::PerType {
                    what,
                    type_: t.short(),
                    count,
                    limit,
                })
            } else {
                Ok(())
            }
        };
        per_type(
            "names in one subscribe list",
            req.resource_names_subscribe.len(),
        )?;
        let st = self.types.get(&t);
        let initial = if st.is_some_and(|st| st.seen) {
            0
        } else {
            req.initial_resource_versions.len()
        };
        per_type("initial resource versions", initial)?;
        // The peak: subscriptions are applied before unsubscriptions.
        let added: BTreeSet<&String> = req
            .resource_names_subscribe
            .iter()
            .filter(|n| *n != WILDCARD && st.is_none_or(|st| !st.names.contains(*n)))
            .collect();
        let names = st.map_or(0, |st| st.names.len()) + added.len();
        per_type("subscribed names", names)?;
        let this = names.max(st.map_or(0, |st| st.claimed) + initial);
        let others: usize = self
            .types
            .iter()
            .filter(|(k, _)| **k != t)
            .map(|(_, o)| o.weight())
            .sum();
        let count = others + this;
        if count > limit {
            return Err(OverLimit::Total { count, limit });
        }
        Ok(())
    }
}

impl Protocol for Delta {
    type Request = DeltaDiscoveryRequest;
    type Response = DeltaResponse;
    const MODE: XdsMode = XdsMode::Delta;

    fn node(req: &DeltaDiscoveryRequest) -> Option<&Node> {
        req.node.as_ref()
    }

    fn on_request(&mut self, s: &mut Session, req: DeltaDiscoveryRequest) -> Result<(), OverLimit> {
        let Some(t) = ResourceType::from_type_url(&req.type_url) else {
            tracing::debug!(type_url = %clean_message(&req.type_url), "delta request for a type edgeplane does not serve");
            return Ok(());
        };
        self.check_limits(t, &req, s.limits.max_subscribed_names)?;
        let st = self.types.or_default(t);
        if !req.response_nonce.is_empty() {
            on_ack_or_nack(st, t, &req, s);
        }
        let first = !st.seen;
        st.seen = true;
        if first {
            st.claimed = req.initial_resource_versions.len();
            st.held = req
                .initial_resource_versions
                .iter()
                .map(|(n, v)| (Arc::from(n.as_str()), Held::Claimed(v.clone())))
                .collect();
            // Legacy wildcard: a first request naming nothing.
            if req.resource_names_subscribe.is_empty() && req.resource_names_unsubscribe.is_empty()
            {
                st.wildcard = true;
                st.must_answer = true;
            }
        }
        for name in &req.resource_names_subscribe {
            st.must_answer = true;
            if name == WILDCARD {
                st.wildcard = true;
            } else {
                st.names.insert(name.clone());
                st.answer.insert(name.clone());
            }
        }
        for name in &req.resource_names_unsubscribe {
            if name == WILDCARD {
                st.wildcard = false;
            } else {
                st.names.remove(name);
                st.answer.remove(name);
            }
        }
        if !req.resource_names_unsubscribe.is_empty() {
            // Envoy dropped these; forget what it held, except what a
            // wildcard still covers (it stays held and current).
            let wildcard = st.wildcard;
            let names = &st.names;
            st.held.retain(|n, _| wildcard || names.contains(&**n));
        }
        Ok(())
    }

    fn names_kept(&self) -> usize {
        self.types.values().map(TypeStream::weight).sum()
    }

    /// Per type, in push order: what changed since what Envoy holds, and
    /// what it holds that is gone or no longer subscribed.
    fn due(&mut self, s: &mut Session, ps: &ProxySnapshot) -> Vec<DeltaResponse> {
        let mut out = Vec::new();
        for t in PUSH_ORDER {
            let Some(st) = self.types.get_mut(&t) else {
                continue;
            };
            if !st.seen {
                continue;
            }
            // Everything Envoy should hold now, and what it lacks.
            let wanted: Vec<&Arc<Encoded>> =
                ps.resources(t).filter(|e| st.subscribed(&e.name)).collect();
            let changed: Vec<&Arc<Encoded>> = wanted
                .iter()
                .copied()
                .filter(|e| {
                    st.held.get(&*e.name).map(Held::version) != Some(e.hash.as_str())
                        || (st.answer.contains(&*e.name) && !st.held.contains_key(&*e.name))
                })
                .collect();
            let mut removed: BTreeSet<String> = st
                .held
                .keys()
                .filter(|n| !st.subscribed(n) || ps.get(t, n).is_none())
                .map(|n| n.to_string())
                .collect();
            // Subscribed names that do not exist: say so at once.
            removed.extend(st.answer.iter().filter(|n| ps.get(t, n).is_none()).cloned());
            if changed.is_empty() && removed.is_empty() && !st.must_answer {
                continue;
            }
            st.must_answer = false;
            st.answer.clear();
            let nonce = s.next_nonce();
            let system_version = version_of(wanted.iter().copied());
            for e in &changed {
                st.held.insert(e.name.clone(), Held::Sent(Arc::clone(e)));
            }
            for n in &removed {
                st.held.remove(n.as_str());
            }
            st.last_nonce = Some(nonce.clone());
            tracing::info!(
                node = %s.node_id(),
                type_ = t.short(),
                version = %system_version,
                changed = changed.len(),
                removed = removed.len(),
                "delta push"
            );
            s.registry.observer().pushed(t, Self::MODE);
            let sent: ResourceSet = super::registry::set_of(wanted.iter().copied());
            let sent_version = system_version.clone();
            s.registry.update(s.id, |n| {
                let ts = n.types.or_default(t);
                ts.responses += 1;
                ts.sent = sent;
                ts.sent_version = sent_version;
            });
            out.push(DeltaResponse {
                system_version_info: system_version,
                resources: changed.iter().map(|e| Arc::clone(e)).collect(),
                type_url: t.type_url().to_string(),
                removed_resources: removed.into_iter().collect(),
                nonce,
                control_plane: Some(super::control_plane()),
            });
        }
        out
    }
}

/// Records Envoy's answer to one of our responses: only the first answer
/// to the latest response of the type moves the reported state, once.
/// Answers to older responses (superseded), to responses never sent, or a
/// second answer to the same one change nothing (debug log and
/// `StreamObserver::stale_nonce`).
fn on_ack_or_nack(
    st: &mut TypeStream,
    t: ResourceType,
    req: &DeltaDiscoveryRequest,
    s: &mut Session,
) {
    if st.last_nonce.as_deref() != Some(req.response_nonce.as_str()) {
        s.stale_nonce(
            t,
            Delta::MODE,
            &req.response_nonce,
            "not the latest unanswered nonce sent",
        );
        return;
    }
    st.last_nonce = None;
    let (registry, id) = (&s.registry, s.id);
    if let Some(err) = &req.error_detail {
        let msg = clean_message(&err.message);
        tracing::warn!(
            peer = %s.peer,
            node = %s.node_desc(),
            type_ = t.short(),
            nonce = %req.response_nonce,
            message = %msg,
            "Envoy rejected (NACKed) the config; it keeps its previous resources, and these versions will not be sent again"
        );
        registry.observer().nacked(t, Delta::MODE);
        registry.update(id, |n| n.types.or_default(t).record_nack(msg));
    } else {
        tracing::debug!(type_ = t.short(), nonce = %req.response_nonce, "delta ACK");
        registry.observer().acked(t, Delta::MODE);
        registry.update(id, |n| {
            let ts = n.types.or_default(t);
            let v = ts.sent_version.clone();
            ts.record_ack(v);
        });
    }
}
