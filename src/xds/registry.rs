//! What each connected Envoy has ACKed and NACKed, per resource type.
//!
//! Written by the streams, read by the status API. A plain mutex: updates
//! are a few per push, and readers copy out.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::snapshot::ResourceType;

#[derive(Clone, Debug, Default)]
pub struct TypeState {
    pub acked_version: String,
    pub nacked_version: String,
    pub nack_message: String,
    /// How many responses of this type the stream has sent.
    pub responses: u64,
}

#[derive(Clone, Debug, Default)]
pub struct NodeState {
    pub node_id: String,
    pub proxy: String,
    pub types: BTreeMap<ResourceType, TypeState>,
}

#[derive(Debug, Default)]
pub struct Registry {
    streams: Mutex<BTreeMap<u64, NodeState>>,
    next_id: Mutex<u64>,
}

impl Registry {
    pub fn open(&self) -> u64 {
        let mut n = self.next_id.lock().unwrap_or_else(|e| e.into_inner());
        *n += 1;
        let id = *n;
        self.streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, NodeState::default());
        id
    }

    pub fn close(&self, id: u64) {
        self.streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
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
