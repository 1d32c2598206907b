//! The hostile client: real `edgeplane serve`, a real Envoy served
//! throughout, and a client that misbehaves on purpose. Each test states a
//! limit, checks that it holds (the gRPC status or refusal), that
//! edgeplane's RSS stays under a stated bound, and that the real Envoy still
//! receives an edit within one second.
//!
//! Run with `ENVOY_BIN=$PWD/.venv/bin/envoy cargo test --test hostile_client`
//! (`EDGEPLANE_TEST_XDS=delta` for the real Envoy on delta ADS).

#[path = "../it/support/mod.rs"]
#[allow(dead_code)]
mod support;

// The ADS session: subscribed-name and node limits, forged NACK floods.
mod session;
