//! What each connected Envoy has ACKed and NACKed, per resource type.
//!
//! Written by the streams, read by the status API. A plain mutex: updates
//! are a few per push, and readers copy out. Every change bumps a `watch`
//! counter, so status watchers learn of a NACK at once.
//!
//! NACK attribution: per type, the stream records what it sent and what
//! Envoy last ACKed, as pointers to the snapshot's encoded resources (no
//! copies: a thousand streams cost a thousand small vectors). When Envoy
//! NACKs, the resources (and, for routes, virtual hosts) whose hash differs
//! from the ACKed set are the ones the rejection concerns.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::XdsMode;
use crate::snapshot::{Encoded, ResourceType};

/// The resources of one type a stream last sent, or Envoy last ACKed,
/// shared with the snapshot they came from.
pub type ResourceSet = Arc<[Arc<Encoded>]>;

pub fn set_of<'a>(resources: impl IntoIterator<Item = &'a Arc<Encoded>>) -> ResourceSet {
    resources.into_iter().cloned().collect()
}

/// Name → hash of a set's resources, plus `rc/vhost` → hash for the
/// virtual hosts of route configurations.
fn hashes(set: &[Arc<Encoded>]) -> BTreeMap<String, &str> {
    let mut h = BTreeMap::new();
    for e in set {
        h.insert(e.name.to_string(), e.hash.as_str());
        for (vh, hash) in &e.parts {
            h.insert(format!("{}/{vh}", e.name), hash.as_str());
        }
    }
    h
}

#[derive(Clone, Debug, Default)]
pub struct TypeState {
    pub acked_version: String,
    pub nacked_version: String,
    pub nack_message: String,
    /// The type version of the last response sent.
    pub sent_version: String,
    /// How many responses of this type the stream has sent.
    pub responses: u64,
    /// What was last sent and what Envoy last accepted.
    pub sent: ResourceSet,
    pub acked: ResourceSet,
    /// Resource (and `rc/vhost`) names the current NACK concerns; empty
    /// when the last answer was an ACK.
    pub nacked_names: BTreeSet<String>,
    /// When Envoy last ACKed / NACKed this type (Unix milliseconds; 0:
    /// never on this stream).
    pub last_ack_unix_ms: u64,
    pub last_nack_unix_ms: u64,
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl TypeState {
    /// Names that changed between what Envoy accepted and what it rejected.
    pub fn changed_names(&self) -> BTreeSet<String> {
        let acked = hashes(&self.acked);
        hashes(&self.sent)
            .into_iter()
            .filter(|(n, h)| acked.get(n) != Some(h))
            .map(|(n, _)| n)
            .collect()
    }

    /// Every resource (and `rc/vhost`) name of the last response set.
    pub fn sent_names(&self) -> BTreeSet<String> {
        hashes(&self.sent).into_keys().collect()
    }

    /// Records a NACK of the last sent set with Envoy's message.
    pub fn record_nack(&mut self, message: String) {
        self.nacked_version = self.sent_version.clone();
        self.nack_message = message;
        self.last_nack_unix_ms = now_unix_ms();
        let changed = self.changed_names();
        self.nacked_names = if changed.is_empty() {
            self.sent_names()
        } else {
            changed
        };
    }

    /// Records an ACK of the last sent set.
    pub fn record_ack(&mut self, version: String) {
        self.acked_version = version;
        self.last_ack_unix_ms = now_unix_ms();
        self.acked = self.sent.clone();
        self.nacked_names.clear();
        self.nack_message.clear();
        self.nacked_version.clear();
    }
}

/// The most of a NACK's `error_detail.message` edgeplane keeps (bytes,
/// after escaping); the rest is cut with a marker.
pub const NACK_MESSAGE_MAX_BYTES: usize = 4096;

/// Characters that reorder text on a terminal or page (bidirectional
/// overrides and isolates): escaped like control characters.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Envoy's NACK message (or any client-chosen text) made safe to log, keep
/// and show: control and bidi characters escaped as `\u001b`, and at most
/// `NACK_MESSAGE_MAX_BYTES` kept, cut on a character boundary, followed by
/// a marker saying how many bytes were cut. Idempotent on its own output
/// below the cap (an escape is plain ASCII).
pub fn clean_message(raw: &str) -> String {
    clean_capped(raw, NACK_MESSAGE_MAX_BYTES)
}

/// `clean_message` with a given cap.
pub fn clean_capped(raw: &str, max: usize) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(raw.len().min(max));
    for (i, c) in raw.char_indices() {
        let before = out.len();
        if c.is_control() || is_bidi_control(c) {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
        if out.len() > max {
            out.truncate(before);
            let _ = write!(out, "… [{} more bytes cut]", raw.len() - i);
            return out;
        }
    }
    out
}

#[derive(Clone, Debug, Default)]
pub struct NodeState {
    pub node_id: String,
    /// The stream's peer address (`ip:port`), for the stats sink's binding.
    pub peer: String,
    pub proxy: String,
    pub mode: XdsMode,
    pub types: crate::xds::per_type::PerType<TypeState>,
}

/// What the streams tell whoever counts them (go-control-plane's
/// `Callbacks`): the daemon's metrics implement it, so the protocol code
/// knows no metrics library. Every method defaults to doing nothing.
pub trait StreamObserver: Send + Sync {
    fn stream_opened(&self, _mode: XdsMode) {}
    fn stream_closed(&self, _mode: XdsMode) {}
    /// A response of type `t` was sent.
    fn pushed(&self, _t: ResourceType, _mode: XdsMode) {}
    /// Envoy accepted (ACK) or rejected (NACK) a response of type `t`.
    fn acked(&self, _t: ResourceType, _mode: XdsMode) {}
    fn nacked(&self, _t: ResourceType, _mode: XdsMode) {}
    /// A request answered (ACK/NACK) a nonce this stream never sent for
    /// `t`, or one already answered: it was ignored.
    fn stale_nonce(&self, _t: ResourceType, _mode: XdsMode) {}
}

/// Counts the ACKs, NACKs and stale nonces it observes (for tests and the
/// ADS session fuzz target).
#[derive(Debug, Default)]
pub struct AnswerCounts {
    acks: std::sync::atomic::AtomicU64,
    nacks: std::sync::atomic::AtomicU64,
    stale: std::sync::atomic::AtomicU64,
}

impl AnswerCounts {
    /// (ACKs, NACKs, stale nonces) so far.
    pub fn get(&self) -> (u64, u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.acks.load(Relaxed),
            self.nacks.load(Relaxed),
            self.stale.load(Relaxed),
        )
    }
}

impl StreamObserver for AnswerCounts {
    fn acked(&self, _t: ResourceType, _mode: XdsMode) {
        self.acks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    fn nacked(&self, _t: ResourceType, _mode: XdsMode) {
        self.nacks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    fn stale_nonce(&self, _t: ResourceType, _mode: XdsMode) {
        self.stale
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Observes nothing.
struct Unobserved;

impl StreamObserver for Unobserved {}

pub struct Registry {
    streams: Mutex<BTreeMap<u64, NodeState>>,
    next_id: Mutex<u64>,
    changes: watch::Sender<u64>,
    observer: Arc<dyn StreamObserver>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("streams", &self.streams)
            .finish_non_exhaustive()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Registry::with_observer(Arc::new(Unobserved))
    }
}

impl Registry {
    /// A registry that tells `observer` of streams, pushes, ACKs and NACKs.
    pub fn with_observer(observer: Arc<dyn StreamObserver>) -> Self {
        Registry {
            streams: Mutex::default(),
            next_id: Mutex::default(),
            changes: watch::channel(0).0,
            observer,
        }
    }

    pub fn observer(&self) -> &dyn StreamObserver {
        &*self.observer
    }

    /// A receiver that sees a new value whenever any stream's state changes.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn bump(&self) {
        self.changes.send_modify(|n| *n += 1);
    }

    pub fn open(&self, mode: XdsMode) -> u64 {
        let mut n = self.next_id.lock().unwrap_or_else(|e| e.into_inner());
        *n += 1;
        let id = *n;
        self.streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                id,
                NodeState {
                    mode,
                    ..NodeState::default()
                },
            );
        self.observer.stream_opened(mode);
        self.bump();
        id
    }

    pub fn close(&self, id: u64) {
        let closed = self
            .streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        if let Some(s) = closed {
            self.observer.stream_closed(s.mode);
        }
        self.bump();
    }

    pub fn update(&self, id: u64, f: impl FnOnce(&mut NodeState)) {
        if let Some(s) = self
            .streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&id)
        {
            f(s);
        }
        self.bump();
    }

    pub fn list(&self) -> Vec<NodeState> {
        self.streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_message_escapes_controls_and_bidi_and_cuts_on_a_char_boundary() {
        assert_eq!(clean_message("plain text"), "plain text");
        assert_eq!(
            clean_message("\u{1b}[31mred\u{7}\u{9b}\u{202e}x\ny"),
            "\\u001b[31mred\\u0007\\u009b\\u202ex\\u000ay"
        );
        // Idempotent: an escape is plain ASCII.
        let once = clean_message("a\u{1b}b");
        assert_eq!(clean_message(&once), once);

        let long = "é".repeat(3000); // 6000 bytes
        let cut = clean_message(&long);
        let kept = cut.split('…').next().unwrap_or("");
        assert!(kept.len() <= NACK_MESSAGE_MAX_BYTES);
        assert_eq!(kept.len() % 2, 0, "cut inside a character");
        assert_eq!(
            cut,
            format!("{kept}… [{} more bytes cut]", 6000 - kept.len())
        );
        // An escape is never split by the cut.
        let controls = "\u{1}".repeat(5000);
        let cut = clean_capped(&controls, 10);
        assert_eq!(cut, "\\u0001… [4999 more bytes cut]");
    }
}
