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

// The pipeline, in the order data flows (blank lines keep rustfmt from
// sorting it).
pub mod source;

pub mod manifest;

pub mod diag;

pub mod validate;

pub mod model;

pub mod translate;

pub mod snapshot;

pub mod pipeline;

// To Envoy.
pub mod xds;

// What is shown about it.
pub mod status;

// The edges.
pub mod serve;

pub mod cli;
