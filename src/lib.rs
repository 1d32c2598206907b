//! edgeplane: an xDS control plane for Envoy that serves Gloo Edge-style
//! manifests.
//!
//! Data flows one way: `source` (files) → `manifest` (parse) → `validate`
//! (checked `model`) → `translate` (Envoy resources) → `snapshot` (encoded,
//! versioned) → `xds` (ADS streams to Envoy). `pipeline` runs the pure part
//! end to end; `server` wires it to the watcher and the network. See
//! `ARCHITECTURE.md`.

pub mod admin;
pub mod api;
pub mod bootstrap;
pub mod demo;
pub mod diag;
pub mod drain;
pub mod explain;
pub mod json;
pub mod manifest;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod reconcile;
pub mod routes_cli;
pub mod schema;
pub mod server;
pub mod snapshot;
pub mod source;
pub mod stats_sink;
pub mod status_cli;
pub mod translate;
pub mod validate;
pub mod xds;
pub mod xds_tls;
