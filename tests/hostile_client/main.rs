//! The hostile client: real `edgeplane serve` and a real Envoy 1.40 served
//! throughout, while a test plays a client that breaks the rules. Each
//! module asserts that the stated limit holds, that edgeplane's RSS stays
//! under a stated bound, and that the real Envoy still receives an edit
//! within one second.
//!
//! Run with `ENVOY_BIN=$PWD/.venv/bin/envoy cargo test --test hostile_client`
//! (`EDGEPLANE_TEST_XDS=delta` for the real Envoy on delta ADS); one module
//! with `… -- <module>::`.

// The shared harness of tests/it (edgeplane, Envoy, backend, waits).
#[allow(dead_code)]
#[path = "../it/support/mod.rs"]
mod support;

// The admin HTTP server: slow clients, DNS rebinding.
mod admin;
// mTLS role claims outside the policy; forged stats.
mod authz;
// The ADS session: subscribed-name and node limits, forged NACK floods.
mod session;
// The xDS port: streams per connection, connections, request size.
mod transport;
