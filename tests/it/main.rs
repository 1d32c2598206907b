//! Every integration test, in one binary (ripgrep's layout): the crate and
//! `support` are compiled and linked once instead of once per topic. Each
//! module is one topic; real processes on loopback (edgeplane, Envoy 1.40,
//! the demo backend, Chromium), every wait bounded.
//!
//! Run one topic with `cargo test --test it <module>::`, e.g.
//! `cargo test --test it websocket::`.

// Shared harness: edgeplane, Envoy and backend processes, waits, clients.
mod support;

// The admin status page, driven in headless Chromium.
mod browser;
// The command line: bootstraps, exit codes, error messages, closed pipes.
mod cli;
// Listener drains announced with the Envoys' connection counts.
mod drain;
// Open-source Gloo extauth: an HTTP auth server checks WebSocket upgrades.
mod extauth;
// docs/FIELDS.md equals `edgeplane schema --fields`.
mod fields_doc;
// Several serve replicas on one etcd: identical versions, shared last-known-good.
mod etcd_replicas;
// Manifests in etcd: a real 3-member cluster, members killed, compaction.
mod etcd_source;
// `edgeplane apply`, `delete`, `get`, `export` against a real etcd cluster.
mod etcd_apply;
// etcd failing under load: members killed during 200 applies, etcd stopped.
mod etcd_chaos;
// Gateway options: access logs Envoy writes, the connection limit.
mod gateway_options;
// Gloo's docker-compose file mode, carried over as is.
mod gloo_migration;
// Golden translations, served to real Envoy without a NACK.
mod golden;
// HTTP gateway options: gzip, health check, listener CSRF, gRPC-Web, tracing.
mod http_gateway_options;
// Hostile and broken manifests cost nothing.
mod hostile;
// A save re-reads, re-parses and re-encodes only what changed.
mod incremental;
// RouteConfigurations beyond gRPC's 4 MiB default.
mod large_config;
// The module graph is the DAG ARCHITECTURE.md draws.
mod layers;
// /metrics, /readyz, /config_dump.
mod metrics;
// A config Envoy NACKs, attributed to its manifest.
mod nack;

// Whatever edgeplane accepts, Envoy accepts: generated configs, Envoy as oracle.
mod never_nack;
// The README is true to the binary.
mod readme;
// Kill, restart, replicas, SIGTERM: no connection lost.
mod resilience;
// Gloo route options: shadowing, faults, lbHash, buffer, CSRF, metadata.
mod route_options_more;
// `edgeplane routes` against what Envoy does.
mod routes_cli;
// Delegation, weighted splits, redirects, direct responses.
mod routing;
// JSON Schemas accept every sample and refuse typos.
mod schema;
// Gloo Secrets over SDS: certificate rotation without a listener drain.
mod sds;
// Edits under WebSocket and HTTP load.
mod soak;
// SSL gateways: wss:// and HTTPS terminated by Envoy.
mod ssl_gateways;
// Per-resource last-known-good and statuses, `status` and `check`.
mod status;
// tcpGateway (echo, TLS passthrough by SNI, live edits) and hybridGateway.
mod tcp_gateways;
// Upstream sslConfig, HTTP CONNECT tunnelling, a missing UpstreamGroup.
mod upstream_tls;
// Upstream features through Envoy.
mod upstreams;
// virtualHost.options, VirtualHostOption and RouteOption refs, merged as Gloo does.
mod vhost_options;
// The directory watcher.
mod watch;
// Gloo's WebSocket semantics and live edits that keep sockets open.
mod websocket;
// Live WebSockets (Envoy's HCM upgrade stats) in /status, /metrics, the CLI.
mod ws_watch;
// Delta ADS as an Envoy sees it.
mod xds_delta;
// State-of-the-world ADS as an Envoy sees it.
mod xds_protocol;
// The xDS port over TLS and mutual TLS.
mod xds_tls;
