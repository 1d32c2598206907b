//! The state-of-the-world ADS protocol of one stream (driven by `session`).
//!
//! Per type it tracks what was last sent (version, nonce), what Envoy asked
//! for (RDS names) and what Envoy ACKed or NACKed. The rules (see the xDS
//! protocol notes in `ARCHITECTURE.md`):
//! - answer each type's first request on a stream, then only on change;
//! - LDS/CDS carry the full set, RDS and SDS the requested names;
//! - a request whose nonce is not the latest we sent for its type is stale
//!   and ignored (debug log, `StreamObserver::stale_nonce`);
//! - an ACK or NACK counts once: the first answer to the latest nonce
//!   moves the registry; a later NACK with the same nonce is stale, a
//!   later request without `error_detail` only updates the subscription
//!   (Envoy re-requests with its latest nonce when its RDS names change);
//! - NACK messages are escaped and capped (`registry::clean_message`)
//!   before they are logged or kept;
//! - RDS/SDS names are bounded per type and in total
//!   (`StreamLimits::max_subscribed_names`);
//! - a NACK (`error_detail` set) is logged with node, type and Envoy's
//!   message, and the rejected version is never sent again: we only send
//!   when the version differs from the last one sent;
//! - when several types are due, clusters go first, then listeners, then
//!   routes and secrets (make before break).

use std::collections::BTreeSet;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;

use super::XdsMode;
use super::registry::clean_message;
use super::session::{OverLimit, Protocol, Session};
use super::wire::SotwResponse;
use crate::snapshot::{Encoded, PUSH_ORDER, ProxySnapshot, ResourceType, version_of};

#[derive(Debug, Default)]
struct TypeStream {
    /// Envoy has asked for this type on this stream.
    subscribed: bool,
    /// RDS, SDS: the names Envoy asked for.
    names: BTreeSet<String>,
    /// Last response sent: (version, nonce).
    sent: Option<(String, String)>,
    /// Envoy's request had no nonce: it wants an answer even if unchanged.
    force: bool,
    /// The last response sent has been ACKed or NACKed: its nonce counts
    /// no more.
    answered: bool,
}

/// State of the world: per type, what was sent and what Envoy asked for.
#[derive(Default)]
pub struct Sotw {
    types: crate::xds::per_type::PerType<TypeStream>,
}

impl Protocol for Sotw {
    type Request = DiscoveryRequest;
    type Response = SotwResponse;
    const MODE: XdsMode = XdsMode::Sotw;

    fn node(req: &DiscoveryRequest) -> Option<&Node> {
        req.node.as_ref()
    }

    fn on_request(&mut self, s: &mut Session, req: DiscoveryRequest) -> Result<(), OverLimit> {
        let Some(t) = ResourceType::from_type_url(&req.type_url) else {
            tracing::debug!(type_url = %clean_message(&req.type_url), "request for a type edgeplane does not serve");
            return Ok(());
        };
        let limit = s.limits.max_subscribed_names;
        if !t.is_full_state() {
            let count = req.resource_names.len();
            if count > limit {
                return Err(OverLimit::PerType {
                    what: "subscribed names",
                    type_: t.short(),
                    count,
                    limit,
                });
            }
            let others: usize = self
                .types
                .iter()
                .filter(|(k, _)| **k != t)
                .map(|(_, st)| st.names.len())
                .sum();
            if others + count > limit {
                return Err(OverLimit::Total {
                    count: others + count,
                    limit,
                });
            }
        }
        let st = self.types.or_default(t);
        if !req.response_nonce.is_empty() {
            let latest = st.sent.as_ref().map(|(_, n)| n.as_str());
            if latest != Some(req.response_nonce.as_str()) {
                // Stale (xDS): an answer to an older response, or to one
                // never sent. Ignored entirely.
                s.stale_nonce(
                    t,
                    Self::MODE,
                    &req.response_nonce,
                    "not the latest nonce sent",
                );
                return Ok(());
            }
            if st.answered {
                if req.error_detail.is_some() {
                    s.stale_nonce(t, Self::MODE, &req.response_nonce, "NACK already counted");
                    return Ok(());
                }
                // Envoy asks again with the latest nonce when its
                // subscription changes (new RDS names): a subscription
                // update, not a second ACK.
                tracing::debug!(type_ = t.short(), nonce = %req.response_nonce, "subscription update");
            } else {
                st.answered = true;
                let sent_version = st.sent.as_ref().map(|(v, _)| v.clone()).unwrap_or_default();
                if let Some(err) = &req.error_detail {
                    let msg = clean_message(&err.message);
                    tracing::warn!(
                        peer = %s.peer,
                        node = %s.node_desc(),
                        type_ = t.short(),
                        rejected_version = %sent_version,
                        kept_version = %clean_message(&req.version_info),
                        message = %msg,
                        "Envoy rejected (NACKed) the config; it keeps its previous config, and this version will not be sent again"
                    );
                    s.registry.observer().nacked(t, Self::MODE);
                    s.registry
                        .update(s.id, |n| n.types.or_default(t).record_nack(msg));
                } else {
                    tracing::debug!(type_ = t.short(), version = %clean_message(&req.version_info), "ACK");
                    s.registry.observer().acked(t, Self::MODE);
                    // What Envoy now runs is what we sent under this nonce.
                    s.registry
                        .update(s.id, |n| n.types.or_default(t).record_ack(sent_version));
                }
            }
        } else {
            st.force = true;
        }
        st.subscribed = true;
        if !t.is_full_state() {
            st.names = req.resource_names.iter().cloned().collect();
        }
        Ok(())
    }

    fn names_kept(&self) -> usize {
        self.types.values().map(|st| st.names.len()).sum()
    }

    /// Every subscribed type whose content differs from what was sent
    /// (or that Envoy asked for anew), in push order.
    fn due(&mut self, s: &mut Session, ps: &ProxySnapshot) -> Vec<SotwResponse> {
        let mut out = Vec::new();
        for t in PUSH_ORDER {
            let Some(st) = self.types.get_mut(&t) else {
                continue;
            };
            if !st.subscribed {
                continue;
            }
            let resources: Vec<&Arc<Encoded>> = if t.is_full_state() {
                ps.resources(t).collect()
            } else {
                if st.names.is_empty() {
                    continue;
                }
                st.names.iter().filter_map(|n| ps.get(t, n)).collect()
            };
            let version = version_of(resources.iter().copied());
            let unchanged = st.sent.as_ref().is_some_and(|(v, _)| *v == version);
            if unchanged && !st.force {
                continue;
            }
            st.force = false;
            let nonce = s.next_nonce();
            let resp = SotwResponse {
                version_info: version.clone(),
                resources: resources.iter().map(|e| Arc::clone(e)).collect(),
                type_url: t.type_url().to_string(),
                nonce: nonce.clone(),
                control_plane: Some(super::control_plane()),
            };
            tracing::info!(
                node = %s.node_id(),
                type_ = t.short(),
                version = %version,
                resources = resources.len(),
                "push"
            );
            s.registry.observer().pushed(t, Self::MODE);
            let sent_version = version.clone();
            st.sent = Some((version, nonce));
            st.answered = false;
            let sent = super::registry::set_of(resources.iter().copied());
            s.registry.update(s.id, |n| {
                let ts = n.types.or_default(t);
                ts.responses += 1;
                ts.sent = sent;
                ts.sent_version = sent_version;
            });
            out.push(resp);
        }
        out
    }
}
