//! Envoy resources as proto3 JSON (placeholder; see `edgeplane translate`).
