//! Manifests: Gloo-shaped YAML documents turned into typed, located values.
//!
//! This stage knows YAML and Gloo's field names, nothing about Envoy. Every
//! field it does not know is an error naming the field (serde's
//! `deny_unknown_fields`), never silently dropped: a dropped field is a
//! setting the user believes is in force and is not.

pub mod cache;
pub mod kind;
pub mod parse;
pub mod raw;
mod route_cut;
pub mod schema;
mod single_pass;

pub use cache::{ParseCache, ParseStats};
pub use kind::Kind;
pub use parse::{Document, DocumentBody, parse_files};

/// The namespace Gloo puts resources in when `metadata.namespace` is unset.
pub const DEFAULT_NAMESPACE: &str = "gloo-system";
/// The proxy a Gateway feeds when `proxyNames` is empty.
pub const DEFAULT_PROXY_NAME: &str = "gateway-proxy";
