//! edgeplane: an xDS control plane for Envoy that serves Gloo Edge-style
//! manifests.
//!
//! The modules are declared in the order data flows through them:
//!
//! - the pipeline, files in and encoded snapshot out, pure except `source`:
//!   `source` (files) → `manifest` (YAML → typed documents) → `validate`
//!   (meaning, every problem as a `diag::Diagnostic`) → `model` (the
//!   validated, Envoy-free model) → `translate` (Envoy resources) →
//!   `snapshot` (encoded once, content-hashed versions); `pipeline` runs
//!   those stages end to end and keeps the last accepted version of each
//!   resource;
//! - `xds`: ADS (state of the world and delta) to Envoy;
//! - `status`: the read model every edge renders (resource statuses merged
//!   with Envoy's ACKs and NACKs, routing tables, drains);
//! - the edges: `serve` (the daemon) and `cli` (every subcommand).
//!
//! Nothing imports an edge but `cli` (and `main`), so the dependencies run
//! one way: `cli → serve → status → {pipeline, xds} → … → source`. See
//! `ARCHITECTURE.md`.
//!
//! The directories carry the order too: `ls src/` lists the stages
//! numbered in the order data flows through them (`0-diag.rs` is the
//! vocabulary of problems the first stages share), then the crate root and
//! the two edges. The module names stay plain (`crate::source`, …); only
//! the paths below say where each lives.

// One per stage, in the order data flows (blank lines keep rustfmt from
// sorting them by name).
#[path = "0-diag.rs"]
pub mod diag;

#[path = "1-source/mod.rs"]
pub mod source;

#[path = "2-manifest/mod.rs"]
pub mod manifest;

#[path = "3-validate/mod.rs"]
pub mod validate;

#[path = "4-model.rs"]
pub mod model;

#[path = "5-translate/mod.rs"]
pub mod translate;

#[path = "6-snapshot.rs"]
pub mod snapshot;

#[path = "7-pipeline/mod.rs"]
pub mod pipeline;

#[path = "8-xds/mod.rs"]
pub mod xds;

#[path = "9-status/mod.rs"]
pub mod status;

// The edges.
pub mod cli;
pub mod serve;
