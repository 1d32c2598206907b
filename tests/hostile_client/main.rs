//! The hostile client: real `edgeplane serve`, a real Envoy served
//! throughout, and a client that misbehaves. Each module is one attack;
//! each test asserts the limit holds, edgeplane's RSS stays bounded and
//! the real Envoy still gets an edit within one second.

#[path = "../it/support/mod.rs"]
#[allow(dead_code)]
mod support;

// mTLS role claims outside the policy; forged stats.
mod authz;
