//! The state-of-the-world ADS protocol as an Envoy sees it.
//!
//! Each test starts `edgeplane serve` as a subprocess on its own temporary
//! manifests directory and free loopback ports, talks ADS to it with a plain
//! tonic client (playing Envoy), and cross-checks what it receives with the
//! admin `/status` JSON. Every wait is bounded; readiness is polled, never
//! slept for.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::core::v3::{address, socket_address};
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::{
    RouteConfiguration, route, route_action, route_match,
};
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use prost::Message;
use serde_json::Value as Json;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};
use tokio_stream::wrappers::ReceiverStream;

use crate::support::{free_port, write_atomic};

const CDS: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const LDS: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
const RDS: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";

/// The proxy the test manifests define, and the role a matching Envoy sends.
const PROXY_KEY: &str = "gloo-system~gateway-proxy";
/// The Gateway's port; never bound (there is no Envoy), only named.
const GATEWAY_PORT: u16 = 18080;
/// The Upstream's cluster name: `<name>_<namespace>`.
const CLUSTER_NAME: &str = "echo_gloo-system";

/// Bound on every single wait (one message, one status condition).
const STEP: Duration = Duration::from_secs(10);
/// How often `/status` is polled while waiting for a condition.
const POLL: Duration = Duration::from_millis(20);

// ---------------------------------------------------------------------------
// Manifests
// ---------------------------------------------------------------------------

fn gateway_yaml() -> String {
    gateway_yaml_with_idle_timeout(None)
}

/// The Gateway; a stream idle timeout changes the Listener (its HCM) but
/// not its name.
fn gateway_yaml_with_idle_timeout(stream_idle_timeout: Option<&str>) -> String {
    let http_gateway = match stream_idle_timeout {
        None => "  httpGateway: {}\n".to_string(),
        Some(t) => format!(
            "  httpGateway:
    options:
      httpConnectionManagerSettings:
        streamIdleTimeout: {t}
"
        ),
    };
    format!(
        "apiVersion: gateway.solo.io/v1
kind: Gateway
metadata:
  name: gateway-proxy
  namespace: gloo-system
spec:
  bindAddress: 127.0.0.1
  bindPort: {GATEWAY_PORT}
  proxyNames:
    - gateway-proxy
{http_gateway}"
    )
}

fn upstream_yaml(port: u16) -> String {
    format!(
        "apiVersion: gloo.solo.io/v1
kind: Upstream
metadata:
  name: echo
  namespace: gloo-system
spec:
  static:
    hosts:
      - addr: 127.0.0.1
        port: {port}
"
    )
}

fn virtual_service_yaml(prefix: &str) -> String {
    format!(
        "apiVersion: gateway.solo.io/v1
kind: VirtualService
metadata:
  name: app
  namespace: gloo-system
spec:
  virtualHost:
    domains:
      - '*'
    routes:
      - matchers:
          - prefix: {prefix}
        routeAction:
          single:
            upstream:
              name: echo
              namespace: gloo-system
"
    )
}

/// A VirtualService with a field edgeplane does not know: a load error.
fn invalid_virtual_service_yaml() -> String {
    virtual_service_yaml("/").replace(
        "  virtualHost:\n",
        "  virtualHost:\n    notAGlooField: true\n",
    )
}

fn listener_name() -> String {
    format!("listener-127.0.0.1-{GATEWAY_PORT}")
}

fn route_config_name() -> String {
    format!("{}-routes", listener_name())
}

// ---------------------------------------------------------------------------
// The edgeplane subprocess
// ---------------------------------------------------------------------------

/// A running `edgeplane serve`; killed on drop. When the test panics, the
/// child's log is printed (the test harness shows it with the failure).
struct Edgeplane {
    child: Child,
    config: TempDir,
    /// Kept apart from `config`: writes there would wake the file watcher.
    logs: TempDir,
    xds_port: u16,
    admin_port: u16,
}

impl Drop for Edgeplane {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(300)..];
            eprintln!(
                "---- edgeplane log (last {} lines) ----\n{}\n---- end of edgeplane log ----",
                tail.len(),
                tail.join("\n")
            );
        }
    }
}

impl Edgeplane {
    /// Starts on three manifests (Gateway, Upstream on port 1, VirtualService
    /// routing `/`), one file each.
    async fn start() -> Edgeplane {
        Edgeplane::start_with(vec![
            ("gateway.yaml", gateway_yaml()),
            ("upstream.yaml", upstream_yaml(1)),
            ("virtualservice.yaml", virtual_service_yaml("/")),
        ])
        .await
    }

    /// Writes `files`, starts the server, and returns once it serves a
    /// snapshot and its file watcher demonstrably reacts to edits.
    async fn start_with(files: Vec<(&str, String)>) -> Edgeplane {
        let config = tempfile::tempdir().expect("create the manifests tempdir");
        let logs = tempfile::tempdir().expect("create the log tempdir");
        for (name, text) in &files {
            write_atomic(config.path(), name, text);
        }
        let (xds_port, admin_port) = (free_port(), free_port());
        let log = File::create(logs.path().join("edgeplane.log")).expect("create the log file");
        let log2 = log.try_clone().expect("clone the log file handle");
        let child = Command::new(env!("CARGO_BIN_EXE_edgeplane"))
            .arg("serve")
            .arg("--config-dir")
            .arg(config.path())
            .arg("--xds-address")
            .arg(format!("127.0.0.1:{xds_port}"))
            .arg("--admin-address")
            .arg(format!("127.0.0.1:{admin_port}"))
            .env("RUST_LOG", "info,edgeplane=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .spawn()
            .expect("spawn edgeplane serve");
        let mut ep = Edgeplane {
            child,
            config,
            logs,
            xds_port,
            admin_port,
        };
        ep.wait_until_serving().await;
        let (probe_name, probe_text) = &files[0];
        ep.wait_until_watching(probe_name, probe_text).await;
        ep
    }

    fn log_path(&self) -> PathBuf {
        self.logs.path().join("edgeplane.log")
    }

    async fn wait_until_serving(&mut self) {
        let deadline = Instant::now() + STEP;
        loop {
            if let Some(code) = self.child.try_wait().expect("poll the edgeplane child") {
                panic!("edgeplane exited during startup with {code}");
            }
            if let Ok(s) = self.try_status().await
                && s["serving"] == Json::Bool(true)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "edgeplane did not report serving=true on /status within {STEP:?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// The watcher is armed by a task spawned after the first load; an edit
    /// made before that would go unseen. Rewrite a manifest unchanged until
    /// a load is counted.
    async fn wait_until_watching(&self, name: &str, text: &str) {
        let deadline = Instant::now() + STEP;
        let base = loads(&self.status().await);
        loop {
            self.write(name, text);
            let retry_at = Instant::now() + Duration::from_secs(1);
            while Instant::now() < retry_at {
                if loads(&self.status().await) > base {
                    return;
                }
                tokio::time::sleep(POLL).await;
            }
            assert!(
                Instant::now() < deadline,
                "edgeplane's file watcher never reloaded after manifest writes (loads stuck at {base})"
            );
        }
    }

    /// Replaces a manifest atomically (hidden temp file, then rename).
    fn write(&self, name: &str, text: &str) {
        write_atomic(self.config.path(), name, text);
    }

    async fn try_status(&self) -> Result<Json, String> {
        let fut = async {
            let mut sock = tokio::net::TcpStream::connect(("127.0.0.1", self.admin_port))
                .await
                .map_err(|e| format!("connect to admin: {e}"))?;
            sock.write_all(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                .await
                .map_err(|e| format!("write the request: {e}"))?;
            let mut raw = Vec::new();
            sock.read_to_end(&mut raw)
                .await
                .map_err(|e| format!("read the response: {e}"))?;
            let text = String::from_utf8(raw).map_err(|e| format!("response is not UTF-8: {e}"))?;
            let (head, body) = text
                .split_once("\r\n\r\n")
                .ok_or_else(|| format!("malformed HTTP response: {text:?}"))?;
            if !head.starts_with("HTTP/1.1 200") {
                return Err(format!("/status answered {head:?}"));
            }
            serde_json::from_str::<Json>(body)
                .map_err(|e| format!("/status is not JSON: {e}: {body}"))
        };
        timeout(STEP, fut)
            .await
            .map_err(|_| format!("GET /status took longer than {STEP:?}"))?
    }

    async fn status(&self) -> Json {
        match self.try_status().await {
            Ok(s) => s,
            Err(e) => panic!("GET /status failed: {e}"),
        }
    }

    /// Polls `/status` until `pred` holds; returns that status.
    async fn wait_status(&self, what: &str, pred: impl Fn(&Json) -> bool) -> Json {
        let deadline = Instant::now() + STEP;
        loop {
            let s = self.status().await;
            if pred(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {STEP:?} waiting for /status: {what}; last status: {s:#}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Polls `/status` until `loads` exceeds `base`.
    async fn wait_loads_above(&self, base: u64, what: &str) -> Json {
        self.wait_status(&format!("loads > {base} ({what})"), |s| loads(s) > base)
            .await
    }

    /// Polls `/status` until the node's acked version of `type_url` is `version`.
    async fn wait_acked(&self, node_id: &str, type_url: &str, version: &str) -> Json {
        self.wait_status(
            &format!("node {node_id} ACKed {type_url} version {version}"),
            |s| {
                node_type(s, node_id, type_url)
                    .is_some_and(|t| t["ackedVersion"] == Json::String(version.into()))
            },
        )
        .await
    }

    async fn ads(&self) -> Ads {
        Ads::connect(self.xds_port).await
    }
}

// ---------------------------------------------------------------------------
// /status accessors
// ---------------------------------------------------------------------------

fn loads(s: &Json) -> u64 {
    s["loads"]
        .as_u64()
        .unwrap_or_else(|| panic!("/status has no numeric `loads`: {s}"))
}

/// The served version of `type_url` for `proxy`.
fn proxy_version(s: &Json, proxy: &str, type_url: &str) -> String {
    let p = s["proxies"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["key"] == Json::String(proxy.into())))
        .unwrap_or_else(|| panic!("/status lists no proxy {proxy}: {s:#}"));
    let t = p["types"]
        .as_array()
        .and_then(|ts| {
            ts.iter()
                .find(|t| t["typeUrl"] == Json::String(type_url.into()))
        })
        .unwrap_or_else(|| panic!("/status proxy {proxy} has no type {type_url}: {s:#}"));
    t["version"]
        .as_str()
        .unwrap_or_else(|| panic!("/status version of {type_url} is not a string: {t}"))
        .to_string()
}

fn node_entry<'a>(s: &'a Json, node_id: &str) -> Option<&'a Json> {
    s["nodes"]
        .as_array()?
        .iter()
        .find(|n| n["nodeId"] == Json::String(node_id.into()))
}

fn node_type<'a>(s: &'a Json, node_id: &str, type_url: &str) -> Option<&'a Json> {
    node_entry(s, node_id)?["types"]
        .as_array()?
        .iter()
        .find(|t| t["typeUrl"] == Json::String(type_url.into()))
}

fn responses(s: &Json, node_id: &str, type_url: &str) -> u64 {
    node_type(s, node_id, type_url)
        .and_then(|t| t["responses"].as_u64())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------
// The ADS client (playing Envoy)
// ---------------------------------------------------------------------------

struct Ads {
    _client: AggregatedDiscoveryServiceClient<tonic::transport::Channel>,
    tx: mpsc::Sender<DiscoveryRequest>,
    rx: tonic::Streaming<DiscoveryResponse>,
}

impl Ads {
    async fn connect(port: u16) -> Ads {
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + STEP;
        // The xDS port is bound just after the admin port: retry briefly.
        let mut client = loop {
            match timeout(STEP, AggregatedDiscoveryServiceClient::connect(url.clone())).await {
                Ok(Ok(c)) => break c,
                Ok(Err(_)) if Instant::now() < deadline => tokio::time::sleep(POLL).await,
                Ok(Err(e)) => panic!("cannot connect the ADS client to {url}: {e}"),
                Err(_) => panic!("connecting the ADS client to {url} took over {STEP:?}"),
            }
        };
        let (tx, rx) = mpsc::channel(16);
        let resp = timeout(
            STEP,
            client.stream_aggregated_resources(ReceiverStream::new(rx)),
        )
        .await
        .unwrap_or_else(|_| panic!("opening the ADS stream took over {STEP:?}"))
        .unwrap_or_else(|status| panic!("opening the ADS stream failed: {status}"));
        Ads {
            _client: client,
            tx,
            rx: resp.into_inner(),
        }
    }

    async fn send(&self, req: DiscoveryRequest) {
        let what = format!(
            "{} request (nonce {:?})",
            short(&req.type_url),
            req.response_nonce
        );
        match timeout(STEP, self.tx.send(req)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => panic!("the ADS request stream is closed; cannot send the {what}"),
            Err(_) => panic!("sending the {what} took over {STEP:?}"),
        }
    }

    /// The next response; fails the test on timeout, error or end of stream.
    async fn recv(&mut self, what: &str) -> DiscoveryResponse {
        match timeout(STEP, self.rx.message()).await {
            Ok(Ok(Some(r))) => r,
            Ok(Ok(None)) => panic!("ADS stream ended while waiting for {what}"),
            Ok(Err(status)) => panic!("ADS stream failed while waiting for {what}: {status}"),
            Err(_) => panic!("no ADS response within {STEP:?} while waiting for {what}"),
        }
    }

    /// Fails the test if any response arrives within `window`.
    async fn expect_nothing(&mut self, window: Duration, why: &str) {
        match timeout(window, self.rx.message()).await {
            Err(_) => {}
            Ok(Ok(Some(r))) => panic!(
                "expected no ADS response ({why}), got {} version {:?} nonce {:?} with {} resource(s)",
                short(&r.type_url),
                r.version_info,
                r.nonce,
                r.resources.len()
            ),
            Ok(Ok(None)) => panic!("ADS stream ended ({why})"),
            Ok(Err(status)) => panic!("ADS stream failed ({why}): {status}"),
        }
    }
}

fn short(type_url: &str) -> &str {
    match type_url {
        CDS => "CDS",
        LDS => "LDS",
        RDS => "RDS",
        other => other,
    }
}

fn node(id: &str, role: &str, cluster: &str) -> Node {
    let mut metadata = Struct::default();
    metadata.fields.insert(
        "role".to_string(),
        Value {
            kind: Some(Kind::StringValue(role.to_string())),
        },
    );
    Node {
        id: id.to_string(),
        cluster: cluster.to_string(),
        metadata: Some(metadata),
        ..Default::default()
    }
}

fn gateway_node(id: &str) -> Node {
    node(id, PROXY_KEY, "gateway-proxy")
}

/// A first request for a type: no version, no nonce.
fn subscribe(type_url: &str, names: &[String], node: Option<Node>) -> DiscoveryRequest {
    DiscoveryRequest {
        node,
        type_url: type_url.to_string(),
        resource_names: names.to_vec(),
        ..Default::default()
    }
}

/// ACK: echo the response's version and nonce.
fn ack(resp: &DiscoveryResponse, names: &[String]) -> DiscoveryRequest {
    DiscoveryRequest {
        type_url: resp.type_url.clone(),
        version_info: resp.version_info.clone(),
        response_nonce: resp.nonce.clone(),
        resource_names: names.to_vec(),
        ..Default::default()
    }
}

/// NACK: the response's nonce, the previously accepted version, and an error.
fn nack(resp: &DiscoveryResponse, previous_version: &str, message: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        type_url: resp.type_url.clone(),
        version_info: previous_version.to_string(),
        response_nonce: resp.nonce.clone(),
        error_detail: Some(RpcStatus {
            code: 13,
            message: message.to_string(),
            details: vec![],
        }),
        ..Default::default()
    }
}

/// Decodes every resource of a response, checking each Any's type URL.
fn decode_all<M: Message + Default>(resp: &DiscoveryResponse) -> Vec<M> {
    resp.resources
        .iter()
        .map(|any| {
            assert_eq!(
                any.type_url, resp.type_url,
                "a resource's Any type_url differs from the response type_url"
            );
            M::decode(any.value.as_slice()).unwrap_or_else(|e| {
                panic!("cannot decode a {} resource: {e}", short(&resp.type_url))
            })
        })
        .collect()
}

/// The port of a STATIC cluster's only endpoint.
fn cluster_port(c: &Cluster) -> u32 {
    let ep = c
        .load_assignment
        .as_ref()
        .and_then(|la| la.endpoints.first())
        .and_then(|e| e.lb_endpoints.first())
        .and_then(|lb| match &lb.host_identifier {
            Some(lb_endpoint::HostIdentifier::Endpoint(ep)) => Some(ep),
            _ => None,
        })
        .unwrap_or_else(|| panic!("cluster {} has no inline endpoint: {c:?}", c.name));
    match ep.address.as_ref().and_then(|a| a.address.as_ref()) {
        Some(address::Address::SocketAddress(sa)) => match sa.port_specifier {
            Some(socket_address::PortSpecifier::PortValue(p)) => p,
            ref other => panic!("cluster {} endpoint has port {other:?}", c.name),
        },
        other => panic!("cluster {} endpoint has address {other:?}", c.name),
    }
}

/// (prefix, cluster) of every route of a RouteConfiguration.
fn route_targets(rc: &RouteConfiguration) -> Vec<(String, String)> {
    rc.virtual_hosts
        .iter()
        .flat_map(|vh| vh.routes.iter())
        .map(|r| {
            let prefix = match r.r#match.as_ref().and_then(|m| m.path_specifier.as_ref()) {
                Some(route_match::PathSpecifier::Prefix(p)) => p.clone(),
                other => panic!("route {} has no prefix match: {other:?}", r.name),
            };
            let cluster = match &r.action {
                Some(route::Action::Route(ra)) => match &ra.cluster_specifier {
                    Some(route_action::ClusterSpecifier::Cluster(c)) => c.clone(),
                    other => panic!("route {} has cluster specifier {other:?}", r.name),
                },
                other => panic!("route {} has action {other:?}", r.name),
            };
            (prefix, cluster)
        })
        .collect()
}

fn assert_response(resp: &DiscoveryResponse, type_url: &str, status: &Json) {
    assert_eq!(
        resp.type_url,
        type_url,
        "expected a {} response, got {} (version {:?})",
        short(type_url),
        short(&resp.type_url),
        resp.version_info
    );
    assert!(
        !resp.nonce.is_empty(),
        "{} response has an empty nonce",
        short(type_url)
    );
    assert!(
        !resp.version_info.is_empty(),
        "{} response has an empty version_info",
        short(type_url)
    );
    assert_eq!(
        resp.version_info,
        proxy_version(status, PROXY_KEY, type_url),
        "{} response version differs from the version /status shows for {PROXY_KEY}",
        short(type_url)
    );
}

/// The responses of a completed, fully ACKed first exchange.
struct Initial {
    cds: DiscoveryResponse,
    lds: DiscoveryResponse,
    rds: DiscoveryResponse,
}

/// CDS + LDS, ACK both, RDS for the listener's routes, ACK it; returns once
/// /status shows all three ACKs.
async fn initial_exchange(ep: &Edgeplane, ads: &mut Ads, node_id: &str) -> Initial {
    ads.send(subscribe(CDS, &[], Some(gateway_node(node_id))))
        .await;
    ads.send(subscribe(LDS, &[], None)).await;
    let cds = ads.recv("the first CDS response").await;
    let lds = ads.recv("the first LDS response").await;
    let status = ep.status().await;
    assert_response(&cds, CDS, &status);
    assert_response(&lds, LDS, &status);
    ads.send(ack(&cds, &[])).await;
    ads.send(ack(&lds, &[])).await;
    let names = vec![route_config_name()];
    ads.send(subscribe(RDS, &names, None)).await;
    let rds = ads.recv("the first RDS response").await;
    assert_response(&rds, RDS, &ep.status().await);
    ads.send(ack(&rds, &names)).await;
    for r in [&cds, &lds, &rds] {
        ep.wait_acked(node_id, &r.type_url, &r.version_info).await;
    }
    Initial { cds, lds, rds }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_requests_get_cds_lds_rds_in_order_with_versions_and_nonces() {
    let ep = Edgeplane::start().await;
    let mut ads = ep.ads().await;
    let node_id = "envoy-first";

    ads.send(subscribe(CDS, &[], Some(gateway_node(node_id))))
        .await;
    ads.send(subscribe(LDS, &[], None)).await;

    let cds = ads.recv("the first CDS response").await;
    let lds = ads.recv("the first LDS response").await;
    let status = ep.status().await;

    assert_response(&cds, CDS, &status);
    let clusters: Vec<Cluster> = decode_all(&cds);
    assert_eq!(
        clusters.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        [CLUSTER_NAME],
        "CDS must carry exactly the Upstream's cluster"
    );
    assert_eq!(cluster_port(&clusters[0]), 1);

    assert_response(&lds, LDS, &status);
    let listeners: Vec<Listener> = decode_all(&lds);
    assert_eq!(
        listeners.iter().map(|l| l.name.clone()).collect::<Vec<_>>(),
        [listener_name()],
        "LDS must carry exactly the Gateway's listener"
    );
    assert_ne!(cds.nonce, lds.nonce, "CDS and LDS responses share a nonce");

    ads.send(ack(&cds, &[])).await;
    ads.send(ack(&lds, &[])).await;
    ep.wait_acked(node_id, CDS, &cds.version_info).await;
    ep.wait_acked(node_id, LDS, &lds.version_info).await;

    let names = vec![route_config_name()];
    ads.send(subscribe(RDS, &names, None)).await;
    let rds = ads.recv("the first RDS response").await;
    let status = ep.status().await;
    assert_response(&rds, RDS, &status);
    let rcs: Vec<RouteConfiguration> = decode_all(&rds);
    assert_eq!(
        rcs.iter().map(|r| r.name.clone()).collect::<Vec<_>>(),
        names,
        "RDS must carry exactly the requested route configuration"
    );
    assert_eq!(
        route_targets(&rcs[0]),
        [("/".to_string(), CLUSTER_NAME.to_string())],
        "the route configuration must route / to the Upstream's cluster"
    );
    assert!(
        rds.nonce != cds.nonce && rds.nonce != lds.nonce,
        "RDS nonce {:?} repeats an earlier nonce (CDS {:?}, LDS {:?})",
        rds.nonce,
        cds.nonce,
        lds.nonce
    );

    ads.send(ack(&rds, &names)).await;
    let status = ep.wait_acked(node_id, RDS, &rds.version_info).await;
    let n = node_entry(&status, node_id).expect("node listed in /status");
    assert_eq!(n["proxy"], Json::String(PROXY_KEY.into()));
    for t in [CDS, LDS, RDS] {
        assert_eq!(
            responses(&status, node_id, t),
            1,
            "{} must have been answered exactly once: {status:#}",
            short(t)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nack_is_logged_and_never_resent() {
    let ep = Edgeplane::start().await;
    let mut ads = ep.ads().await;
    let node_id = "envoy-nack";

    ads.send(subscribe(CDS, &[], Some(gateway_node(node_id))))
        .await;
    ads.send(subscribe(LDS, &[], None)).await;
    let cds = ads.recv("the first CDS response").await;
    let lds = ads.recv("the first LDS response").await;
    let status = ep.status().await;
    assert_response(&cds, CDS, &status);
    assert_response(&lds, LDS, &status);

    ads.send(ack(&cds, &[])).await;
    ads.send(nack(&lds, "", "test rejection")).await;
    ep.wait_status("the LDS NACK is recorded", |s| {
        node_type(s, node_id, LDS)
            .is_some_and(|t| t["nackedVersion"] == Json::String(lds.version_info.clone()))
    })
    .await;

    // A CDS-only change: the server pushes, and must not resend the
    // rejected listener version along with it.
    ep.write("upstream.yaml", &upstream_yaml(2));
    let next = ads.recv("a CDS push after the Upstream edit").await;
    let status = ep.status().await;
    assert_response(&next, CDS, &status);
    assert_ne!(
        next.version_info, cds.version_info,
        "CDS push after an Upstream edit carries the old version"
    );
    let clusters: Vec<Cluster> = decode_all(&next);
    assert_eq!(clusters.len(), 1);
    assert_eq!(cluster_port(&clusters[0]), 2, "CDS push lacks the edit");
    assert_eq!(
        proxy_version(&status, PROXY_KEY, LDS),
        lds.version_info,
        "a CDS-only edit changed the listener version"
    );

    // Once the ACK of this push is processed, the push is complete.
    ads.send(ack(&next, &[])).await;
    let status = ep.wait_acked(node_id, CDS, &next.version_info).await;
    let t = node_type(&status, node_id, LDS).expect("LDS state listed for the node");
    assert_eq!(t["nackedVersion"], Json::String(lds.version_info.clone()));
    assert_eq!(t["nackMessage"], Json::String("test rejection".into()));
    assert_eq!(
        t["ackedVersion"],
        Json::String(String::new()),
        "a NACK must not be recorded as an ACK"
    );
    assert_eq!(
        responses(&status, node_id, LDS),
        1,
        "the NACKed LDS version was sent again: {status:#}"
    );
    assert_eq!(responses(&status, node_id, CDS), 2);
    let log = std::fs::read_to_string(ep.log_path()).unwrap_or_default();
    assert!(
        log.lines()
            .any(|l| l.contains("NACK") && l.contains("test rejection")),
        "the NACK and Envoy's message are not in edgeplane's log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_response_when_nothing_changes() {
    let ep = Edgeplane::start().await;
    let mut ads = ep.ads().await;
    let node_id = "envoy-noop";
    let init = initial_exchange(&ep, &mut ads, node_id).await;

    // The same bytes again.
    let base = loads(&ep.status().await);
    ep.write("gateway.yaml", &gateway_yaml());
    let s = ep.wait_loads_above(base, "identical rewrite").await;

    // A comment only.
    let base = loads(&s);
    ep.write(
        "virtualservice.yaml",
        &format!("# only a comment changed\n{}", virtual_service_yaml("/")),
    );
    let s = ep.wait_loads_above(base, "comment-only edit").await;
    for (t, r) in [(CDS, &init.cds), (LDS, &init.lds), (RDS, &init.rds)] {
        assert_eq!(
            proxy_version(&s, PROXY_KEY, t),
            r.version_info,
            "a no-op save changed the {} version",
            short(t)
        );
    }

    // A real change: the very next message must be its CDS push, proving
    // nothing was sent for the no-op saves.
    ep.write("upstream.yaml", &upstream_yaml(2));
    let next = ads.recv("a CDS push after the Upstream edit").await;
    assert_response(&next, CDS, &ep.status().await);
    assert_ne!(
        next.version_info, init.cds.version_info,
        "the first push after no-op saves repeats the served CDS version"
    );

    ads.send(ack(&next, &[])).await;
    let status = ep.wait_acked(node_id, CDS, &next.version_info).await;
    assert_eq!(responses(&status, node_id, CDS), 2, "{status:#}");
    assert_eq!(responses(&status, node_id, LDS), 1, "{status:#}");
    assert_eq!(responses(&status, node_id, RDS), 1, "{status:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_node_gets_nothing() {
    let ep = Edgeplane::start().await;
    let mut ads = ep.ads().await;
    let node_id = "envoy-unknown";

    ads.send(subscribe(
        CDS,
        &[],
        Some(node(node_id, "gloo-system~nope", "nope")),
    ))
    .await;
    let s = ep
        .wait_status("the unknown node is listed", |s| {
            node_entry(s, node_id).is_some()
        })
        .await;
    let cds_before = proxy_version(&s, PROXY_KEY, CDS);
    let base = loads(&s);

    // A real change, so the stream has a reason to push if it would.
    ep.write("upstream.yaml", &upstream_yaml(2));
    ep.wait_status("the Upstream edit is loaded and served", |s| {
        loads(s) > base && proxy_version(s, PROXY_KEY, CDS) != cds_before
    })
    .await;

    ads.expect_nothing(
        Duration::from_secs(1),
        "the node's role and cluster match no proxy",
    )
    .await;

    let s = ep.status().await;
    let n = node_entry(&s, node_id).unwrap_or_else(|| panic!("node {node_id} missing: {s:#}"));
    assert_eq!(
        n["proxy"],
        Json::String(String::new()),
        "an unknown node was matched to a proxy: {n}"
    );
    for t in [CDS, LDS, RDS] {
        assert_eq!(
            responses(&s, node_id, t),
            0,
            "an unknown node was sent {}: {n}",
            short(t)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_nonce_request_is_ignored() {
    let ep = Edgeplane::start().await;
    let mut ads = ep.ads().await;
    let node_id = "envoy-stale";
    let init = initial_exchange(&ep, &mut ads, node_id).await;

    // An ACK-shaped and a NACK-shaped LDS request with a nonce the server
    // never sent: both stale, both to be ignored.
    ads.send(DiscoveryRequest {
        type_url: LDS.to_string(),
        version_info: "bogus-version".to_string(),
        response_nonce: "bogus".to_string(),
        ..Default::default()
    })
    .await;
    ads.send(DiscoveryRequest {
        type_url: LDS.to_string(),
        version_info: "bogus-version".to_string(),
        response_nonce: "bogus".to_string(),
        error_detail: Some(RpcStatus {
            code: 13,
            message: "stale rejection".to_string(),
            details: vec![],
        }),
        ..Default::default()
    })
    .await;

    // A CDS-only change: the next message must be CDS (a stale request
    // treated as new would have produced an LDS response first).
    ep.write("upstream.yaml", &upstream_yaml(2));
    let next = ads.recv("a CDS push after the Upstream edit").await;
    assert_response(&next, CDS, &ep.status().await);
    assert_ne!(next.version_info, init.cds.version_info);

    ads.send(ack(&next, &[])).await;
    let status = ep.wait_acked(node_id, CDS, &next.version_info).await;
    let t = node_type(&status, node_id, LDS).expect("LDS state listed for the node");
    assert_eq!(
        t["ackedVersion"],
        Json::String(init.lds.version_info.clone()),
        "a stale-nonce request changed the ACKed LDS version"
    );
    assert_eq!(
        t["nackedVersion"],
        Json::String(String::new()),
        "a stale-nonce NACK was recorded"
    );
    assert_eq!(t["nackMessage"], Json::String(String::new()));
    assert_eq!(responses(&status, node_id, LDS), 1, "{status:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_edit_keeps_serving_and_sends_nothing() {
    let ep = Edgeplane::start().await;
    let mut ads = ep.ads().await;
    let node_id = "envoy-invalid";
    let init = initial_exchange(&ep, &mut ads, node_id).await;

    ep.write("virtualservice.yaml", &invalid_virtual_service_yaml());
    let s = ep
        .wait_status("lastLoadFailed after the invalid edit", |s| {
            s["lastLoadFailed"] == Json::Bool(true)
        })
        .await;
    assert_eq!(
        s["serving"],
        Json::Bool(true),
        "an invalid edit stopped serving"
    );
    for (t, r) in [(CDS, &init.cds), (LDS, &init.lds), (RDS, &init.rds)] {
        assert_eq!(
            proxy_version(&s, PROXY_KEY, t),
            r.version_info,
            "an invalid edit changed the served {} version",
            short(t)
        );
    }

    // Fixed, with a real route change: the next message must be this RDS.
    ep.write("virtualservice.yaml", &virtual_service_yaml("/v2"));
    let next = ads.recv("an RDS push after the fix").await;
    let s = ep.status().await;
    assert_response(&next, RDS, &s);
    assert_ne!(next.version_info, init.rds.version_info);
    let rcs: Vec<RouteConfiguration> = decode_all(&next);
    assert_eq!(rcs.len(), 1, "RDS push must carry the one requested config");
    assert_eq!(rcs[0].name, route_config_name());
    assert_eq!(
        route_targets(&rcs[0]),
        [("/v2".to_string(), CLUSTER_NAME.to_string())],
        "RDS push lacks the fixed route"
    );

    ads.send(ack(&next, &[route_config_name()])).await;
    let s = ep.wait_acked(node_id, RDS, &next.version_info).await;
    assert_eq!(s["lastLoadFailed"], Json::Bool(false), "{s:#}");
    assert_eq!(responses(&s, node_id, CDS), 1, "{s:#}");
    assert_eq!(responses(&s, node_id, LDS), 1, "{s:#}");
    assert_eq!(responses(&s, node_id, RDS), 2, "{s:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_edit_changing_every_type_is_pushed_cds_then_lds_then_rds() {
    // One multi-document file, so a single atomic write changes all three
    // types in one load, and one push is due for each.
    let all = |idle: Option<&str>, port: u16, prefix: &str| {
        format!(
            "{}---\n{}---\n{}",
            gateway_yaml_with_idle_timeout(idle),
            upstream_yaml(port),
            virtual_service_yaml(prefix)
        )
    };
    let ep = Edgeplane::start_with(vec![("all.yaml", all(None, 1, "/"))]).await;
    let mut ads = ep.ads().await;
    let node_id = "envoy-order";
    let init = initial_exchange(&ep, &mut ads, node_id).await;

    ep.write("all.yaml", &all(Some("30s"), 2, "/v2"));
    let first = ads.recv("the first push after the edit").await;
    let second = ads.recv("the second push after the edit").await;
    let third = ads.recv("the third push after the edit").await;
    let order: Vec<&str> = [&first, &second, &third]
        .iter()
        .map(|r| short(&r.type_url))
        .collect();
    assert_eq!(
        order,
        ["CDS", "LDS", "RDS"],
        "make before break: clusters, then listeners, then routes"
    );
    let s = ep.status().await;
    for (r, before) in [
        (&first, &init.cds),
        (&second, &init.lds),
        (&third, &init.rds),
    ] {
        assert_response(r, &before.type_url, &s);
        assert_ne!(
            r.version_info,
            before.version_info,
            "{} was pushed with an unchanged version",
            short(&r.type_url)
        );
    }
    let listeners: Vec<Listener> = decode_all(&second);
    assert_eq!(
        listeners.iter().map(|l| l.name.clone()).collect::<Vec<_>>(),
        [listener_name()]
    );
    let rcs: Vec<RouteConfiguration> = decode_all(&third);
    assert_eq!(
        route_targets(&rcs[0]),
        [("/v2".to_string(), CLUSTER_NAME.to_string())]
    );
}
