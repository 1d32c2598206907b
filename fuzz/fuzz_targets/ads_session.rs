//! Fuzz target 3: one ADS stream's state machine, in process.
//!
//! The input is a program for a hostile (or merely odd) Envoy: the first
//! byte picks the protocol (state of the world or delta) and the stream's
//! limits; then each op is either a snapshot change (one of four small
//! proxy snapshots, then whatever responses are due) or a request: a type
//! URL (the four served ones or an unknown one), resource names from a
//! small pool (with `*`, empty and long names), a nonce (none, one this
//! stream sent, the latest, or made up), a version, an optional NACK
//! message (with control characters and long text), an optional node
//! (small or oversized), and for delta subscribe/unsubscribe lists and
//! `initial_resource_versions`. Requests go through `Session::note_node`
//! and `Protocol::on_request`, then `Protocol::due`, as `session::run`
//! does.
//!
//! Invariants checked beyond "no panic":
//! - an ACK or NACK is counted (observer and registry) only for a nonce
//!   this stream sent for that type, and at most once per nonce; in state
//!   of the world only for the latest nonce of the type;
//! - a request with an unknown or replayed nonce changes no ACK/NACK state;
//! - the names a stream keeps never exceed `max_subscribed_names`; a
//!   request over a limit is refused only when it really is over it;
//! - every kept NACK message is at most 4 KiB plus the cut marker and
//!   holds no control character;
//! - every response's nonce is new on the stream.

#![no_main]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use edgeplane::snapshot::{Encoded, ProxySnapshot, ResourceType};
use edgeplane::xds::delta::Delta;
use edgeplane::xds::registry::{NACK_MESSAGE_MAX_BYTES, Registry};
use edgeplane::xds::session::{OverLimit, Protocol, Session, StreamLimits};
use edgeplane::xds::sotw::Sotw;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};
use envoy_types::pb::google::protobuf::{Any, Struct, Value, value::Kind};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use libfuzzer_sys::fuzz_target;
use prost::Message;

const TYPES: [ResourceType; 4] = [
    ResourceType::Cluster,
    ResourceType::Listener,
    ResourceType::Route,
    ResourceType::Secret,
];

type Counts = edgeplane::xds::registry::AnswerCounts;

/// ACKs and NACKs counted so far.
fn answers(c: &Counts) -> u64 {
    let (acks, nacks, _) = c.get();
    acks + nacks
}

/// Reads the input a byte at a time; zeros once it is used up.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn done(&self) -> bool {
        self.0.is_empty()
    }
    fn text(&mut self, max: usize) -> String {
        let n = usize::from(self.byte()) % (max + 1);
        let take = n.min(self.0.len());
        let (t, rest) = self.0.split_at(take);
        self.0 = rest;
        String::from_utf8_lossy(t).into_owned()
    }
}

fn encoded(t: ResourceType, name: &str, generation: u8) -> Arc<Encoded> {
    let body = format!("{name}@{generation}").into_bytes();
    let hash = format!("{:x}", u64::from(generation) * 7919 + name.len() as u64);
    let parts = if t == ResourceType::Route {
        vec![(format!("vh-{generation}"), hash.clone())]
    } else {
        Vec::new()
    };
    Arc::new(Encoded::new(
        name.to_string(),
        hash,
        Any {
            type_url: t.type_url().to_string(),
            value: body,
        },
        parts,
    ))
}

/// Four small snapshots: names overlap, versions differ.
fn snapshots() -> Vec<ProxySnapshot> {
    (0u8..4)
        .map(|g| {
            let mut ps = ProxySnapshot::default();
            for t in TYPES {
                let m = ps.types.entry(t).or_default();
                for i in 0..(g % 3 + 1) {
                    let name = format!("{}{i}", t.short());
                    m.insert(name.clone(), encoded(t, &name, g / 2 + i));
                }
            }
            ps
        })
        .collect()
}

fn name_pool(b: &mut Bytes) -> String {
    match b.byte() % 8 {
        0 => "*".into(),
        1 => String::new(),
        2 => "x".repeat(300),
        3 => b.text(12),
        n => format!("{}{}", TYPES[usize::from(n) % 4].short(), n % 3),
    }
}

fn names(b: &mut Bytes, limit: usize) -> Vec<String> {
    // Sometimes well over the limit.
    let n = match b.byte() % 8 {
        0 => limit + 1 + usize::from(b.byte() % 4),
        k => usize::from(k) - 1,
    };
    (0..n).map(|_| name_pool(b)).collect()
}

fn node(b: &mut Bytes, max_node_bytes: usize) -> Option<Node> {
    match b.byte() % 4 {
        0 | 1 => None,
        k => {
            let role = if k == 3 {
                "r".repeat(max_node_bytes + usize::from(b.byte()))
            } else {
                b.text(16)
            };
            let mut fields = BTreeMap::new();
            fields.insert(
                "role".to_string(),
                Value {
                    kind: Some(Kind::StringValue(role)),
                },
            );
            Some(Node {
                id: b.text(8),
                cluster: b.text(8),
                metadata: Some(Struct {
                    fields: fields.into_iter().collect(),
                }),
                ..Node::default()
            })
        }
    }
}

fn message(b: &mut Bytes) -> String {
    match b.byte() % 4 {
        0 => "\u{1b}[2J\u{1b}[31mforged\u{7}\r\n\u{202e}".repeat(usize::from(b.byte()) * 8),
        1 => "é".repeat(NACK_MESSAGE_MAX_BYTES / 2 + usize::from(b.byte())),
        _ => b.text(40),
    }
}

/// What the harness saw sent, per type.
#[derive(Default)]
struct Sent {
    all: BTreeMap<ResourceType, Vec<String>>,
    nonces: BTreeSet<String>,
    answered: BTreeSet<String>,
}

trait Req: Protocol {
    fn make(
        b: &mut Bytes,
        type_url: String,
        nonce: String,
        nack: Option<String>,
        node: Option<Node>,
        limit: usize,
    ) -> Self::Request;
    fn nonce_of(resp: &Self::Response) -> (String, String);
}

impl Req for Sotw {
    fn make(
        b: &mut Bytes,
        type_url: String,
        nonce: String,
        nack: Option<String>,
        node: Option<Node>,
        limit: usize,
    ) -> DiscoveryRequest {
        DiscoveryRequest {
            version_info: b.text(8),
            node,
            resource_names: names(b, limit),
            type_url,
            response_nonce: nonce,
            error_detail: nack.map(|message| RpcStatus {
                code: 3,
                message,
                details: Vec::new(),
            }),
            ..DiscoveryRequest::default()
        }
    }
    fn nonce_of(r: &Self::Response) -> (String, String) {
        (r.type_url.clone(), r.nonce.clone())
    }
}

impl Req for Delta {
    fn make(
        b: &mut Bytes,
        type_url: String,
        nonce: String,
        nack: Option<String>,
        node: Option<Node>,
        limit: usize,
    ) -> DeltaDiscoveryRequest {
        let initial = names(b, limit)
            .into_iter()
            .map(|n| {
                let v = b.text(4);
                (n, v)
            })
            .collect();
        DeltaDiscoveryRequest {
            node,
            type_url,
            resource_names_subscribe: names(b, limit),
            resource_names_unsubscribe: names(b, 3),
            initial_resource_versions: initial,
            response_nonce: nonce,
            error_detail: nack.map(|message| RpcStatus {
                code: 3,
                message,
                details: Vec::new(),
            }),
            ..DeltaDiscoveryRequest::default()
        }
    }
    fn nonce_of(r: &Self::Response) -> (String, String) {
        (r.type_url.clone(), r.nonce.clone())
    }
}

fn type_of(url: &str) -> ResourceType {
    ResourceType::from_type_url(url).expect("a response of a served type")
}

fn run<P: Req>(mut b: Bytes, limits: StreamLimits) {
    let counts = Arc::new(Counts::default());
    let registry = Arc::new(Registry::with_observer(counts.clone()));
    let (_keep, rx) = tokio::sync::watch::channel(None);
    let mut s = Session::new("fuzz".into(), rx, registry.clone(), P::MODE, limits);
    let mut proto = P::default();
    let snaps = snapshots();
    let mut ps = &snaps[0];
    let mut sent = Sent::default();
    let due = |proto: &mut P, s: &mut Session, ps: &ProxySnapshot, sent: &mut Sent| {
        for r in proto.due(s, ps) {
            let (url, nonce) = P::nonce_of(&r);
            assert!(
                sent.nonces.insert(nonce.clone()),
                "nonce {nonce} sent twice"
            );
            sent.all.entry(type_of(&url)).or_default().push(nonce);
        }
    };
    for _ in 0..200 {
        if b.done() {
            break;
        }
        let op = b.byte();
        if op % 4 == 0 {
            ps = &snaps[usize::from(op / 4) % snaps.len()];
            due(&mut proto, &mut s, ps, &mut sent);
            continue;
        }
        let ti = usize::from(b.byte() % 5);
        let type_url = match TYPES.get(ti) {
            Some(t) => t.type_url().to_string(),
            None => b.text(20),
        };
        let t = ResourceType::from_type_url(&type_url);
        let of_type = t
            .and_then(|t| sent.all.get(&t))
            .cloned()
            .unwrap_or_default();
        let nonce = match b.byte() % 5 {
            0 => String::new(),
            1 => of_type.last().cloned().unwrap_or_default(),
            2 if !of_type.is_empty() => of_type[usize::from(b.byte()) % of_type.len()].clone(),
            3 if !sent.nonces.is_empty() => {
                let all: Vec<&String> = sent.nonces.iter().collect();
                all[usize::from(b.byte()) % all.len()].clone()
            }
            _ => b.text(6),
        };
        let nack = if b.byte() % 2 == 0 {
            Some(message(&mut b))
        } else {
            None
        };
        let node = node(&mut b, limits.max_node_bytes);
        let node_bytes = node.as_ref().map(Message::encoded_len);
        let req = P::make(
            &mut b,
            type_url,
            nonce.clone(),
            nack,
            node,
            limits.max_subscribed_names,
        );

        let before = answers(&counts);
        let state_before: Vec<_> = registry
            .list()
            .into_iter()
            .flat_map(|n| n.types.into_values())
            .map(|ts| (ts.acked_version, ts.nacked_version, ts.nack_message))
            .collect();
        let applied = s
            .note_node(P::node(&req), P::MODE)
            .and_then(|()| proto.on_request(&mut s, req));
        let after = answers(&counts);
        assert!(
            after <= before + 1,
            "one request counted as several answers"
        );
        if after == before + 1 {
            let t = t.expect("an answer counted for an unserved type");
            let of_type = sent.all.get(&t).cloned().unwrap_or_default();
            assert!(
                of_type.contains(&nonce),
                "answer counted for nonce {nonce:?} never sent for {t:?}"
            );
            // Both protocols count only an answer to the type's latest.
            assert_eq!(
                of_type.last(),
                Some(&nonce),
                "answer counted for a superseded nonce"
            );
            assert!(
                sent.answered.insert(nonce.clone()),
                "nonce {nonce:?} answered twice"
            );
        } else {
            let state_after: Vec<_> = registry
                .list()
                .into_iter()
                .flat_map(|n| n.types.into_values())
                .map(|ts| (ts.acked_version, ts.nacked_version, ts.nack_message))
                .collect();
            assert_eq!(
                state_before, state_after,
                "an uncounted request changed ACK/NACK state"
            );
        }
        match applied {
            Ok(()) => {
                assert!(
                    proto.names_kept() <= limits.max_subscribed_names,
                    "{} names kept, limit {}",
                    proto.names_kept(),
                    limits.max_subscribed_names
                );
                if let Some(nb) = node_bytes {
                    assert!(nb <= limits.max_node_bytes, "oversized node accepted");
                }
            }
            Err(OverLimit::Node { bytes, limit }) => {
                assert!(bytes > limit);
                assert_eq!(Some(bytes), node_bytes);
                return; // the stream ends
            }
            Err(OverLimit::PerType { count, limit, .. } | OverLimit::Total { count, limit }) => {
                assert!(count > limit);
                return;
            }
        }
        for n in registry.list() {
            for ts in n.types.values() {
                let m = &ts.nack_message;
                assert!(
                    m.len() <= NACK_MESSAGE_MAX_BYTES + 64,
                    "NACK message of {} bytes kept",
                    m.len()
                );
                assert!(
                    !m.chars().any(char::is_control),
                    "control character kept: {m:?}"
                );
            }
        }
        due(&mut proto, &mut s, ps, &mut sent);
    }
    s.registry.close(s.id);
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let first = b.byte();
    let limits = StreamLimits {
        max_subscribed_names: usize::from(first >> 1) % 8 + 1,
        max_node_bytes: 64 + usize::from(b.byte()),
    };
    if first & 1 == 0 {
        run::<Sotw>(b, limits);
    } else {
        run::<Delta>(b, limits);
    }
});
