//! In-process ADS clients that behave like Envoy on the wire, many at once
//! (a `Fleet`), recording what they receive and when.
//!
//! Each client is one ADS stream, state of the world or delta:
//! - node `bench-<i>` with `metadata.role` = `gloo-system~gateway-proxy`
//!   (a protobuf Struct), sent on the stream's first request only (as
//!   `edgeplane bootstrap` configures Envoy: `set_node_on_first_message_only`);
//! - subscribes CDS and LDS as wildcards (SotW: empty names; delta: `*`),
//!   then RDS for the route config names the listeners' HTTP connection
//!   managers ask for (`rds.route_config_name`), as Envoy does;
//! - ACKs every response at once: SotW with its `version_info` and nonce
//!   (and, for RDS, the names), delta with its nonce; delta also keeps every
//!   resource's version;
//! - HTTP/2 windows of 256 MiB, Envoy's defaults, so flow control costs
//!   the same round trips it would with Envoy.
//!
//! Every resource received is compared, byte for byte, with edgeplane's own
//! translation of the same manifests (`Expect`): a client that gets anything
//! else fails. The edit the benchmark times is recognised by the edited
//! RouteConfiguration's bytes, so the same check works for any server.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use edgeplane::snapshot::{PUSH_ORDER, ProxySnapshot, ResourceType};
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::listener::v3::{Listener, filter};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};
use envoy_types::pb::google::protobuf::{Any, Struct, Value, value::Kind};
use futures_util::StreamExt;
use prost::Message;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};

use crate::r#gen::PROXY_KEY;

/// Envoy's default HTTP/2 stream and connection windows (256 MiB).
const WINDOW: u32 = 256 * 1024 * 1024;
/// Largest response a client accepts (edgeplane's own limit).
const MAX_MESSAGE: usize = 256 * 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Sotw,
    Delta,
}

impl Mode {
    pub fn label(self) -> &'static str {
        match self {
            Mode::Sotw => "SotW",
            Mode::Delta => "delta",
        }
    }
}

// === what the clients should receive ===

/// The resources a client should end up with, and the one edit.
pub struct Expect {
    /// Per type: name → encoded bytes of the initial config.
    initial: BTreeMap<ResourceType, BTreeMap<String, Vec<u8>>>,
    /// Per type: encoded length → names (SotW `Any`s carry no name).
    by_len: BTreeMap<ResourceType, BTreeMap<usize, Vec<String>>>,
    /// The RouteConfiguration the edit changes: name and new bytes.
    edited: Option<(String, Vec<u8>)>,
}

impl Expect {
    /// From edgeplane's translation before and (optionally) after the edit,
    /// which must change exactly one RouteConfiguration and nothing else.
    pub fn new(initial: &ProxySnapshot, after: Option<&ProxySnapshot>) -> Result<Expect> {
        let mut map = BTreeMap::new();
        let mut by_len: BTreeMap<ResourceType, BTreeMap<usize, Vec<String>>> = BTreeMap::new();
        for t in PUSH_ORDER {
            let mut m = BTreeMap::new();
            for e in initial.resources(t) {
                m.insert(e.name.to_string(), e.bytes.to_vec());
                by_len
                    .entry(t)
                    .or_default()
                    .entry(e.bytes.len())
                    .or_default()
                    .push(e.name.to_string());
            }
            map.insert(t, m);
        }
        let edited = match after {
            None => None,
            Some(after) => {
                let mut changed = Vec::new();
                for t in PUSH_ORDER {
                    let names: BTreeSet<&String> = initial
                        .types
                        .get(&t)
                        .into_iter()
                        .chain(after.types.get(&t))
                        .flat_map(|m| m.keys())
                        .collect();
                    for n in names {
                        let a = initial.get(t, n).map(|e| &e.bytes);
                        let b = after.get(t, n).map(|e| &e.bytes);
                        if a != b {
                            changed.push((t, n.clone(), b.map(|b| b.to_vec())));
                        }
                    }
                }
                match changed.as_slice() {
                    [(ResourceType::Route, name, Some(bytes))] => {
                        Some((name.clone(), bytes.clone()))
                    }
                    other => bail!(
                        "the edit should change exactly one RouteConfiguration; it changes {:?}",
                        other
                            .iter()
                            .map(|(t, n, _)| format!("{} {n}", t.short()))
                            .collect::<Vec<_>>()
                    ),
                }
            }
        };
        Ok(Expect {
            initial: map,
            by_len,
            edited,
        })
    }

    fn count(&self, t: ResourceType) -> usize {
        self.initial.get(&t).map_or(0, BTreeMap::len)
    }

    /// The initial resource with exactly these bytes.
    fn name_of(&self, t: ResourceType, bytes: &[u8]) -> Option<&str> {
        let names = self.by_len.get(&t)?.get(&bytes.len())?;
        names
            .iter()
            .find(|n| {
                self.initial
                    .get(&t)
                    .and_then(|m| m.get(*n))
                    .is_some_and(|b| b.as_slice() == bytes)
            })
            .map(String::as_str)
    }

    fn is_initial(&self, t: ResourceType, name: &str, bytes: &[u8]) -> bool {
        self.initial
            .get(&t)
            .and_then(|m| m.get(name))
            .is_some_and(|b| b.as_slice() == bytes)
    }

    fn is_edit(&self, t: ResourceType, bytes: &[u8]) -> bool {
        t == ResourceType::Route
            && self
                .edited
                .as_ref()
                .is_some_and(|(_, b)| b.len() == bytes.len() && b.as_slice() == bytes)
    }
}

// === what they record ===

/// One response as received.
#[derive(Clone, Debug)]
pub struct Received {
    pub at: Instant,
    pub type_: ResourceType,
    pub resources: usize,
    pub removed: usize,
    /// Encoded size of the whole response message.
    pub bytes: usize,
}

#[derive(Clone, Debug, Default)]
pub struct ClientLog {
    pub received: Vec<Received>,
    /// When the client had ACKed the whole initial config.
    pub ready_at: Option<Instant>,
    /// When the edited RouteConfiguration arrived, and when its ACK was
    /// handed to the stream.
    pub edit_received: Option<Instant>,
    pub edit_acked: Option<Instant>,
    /// Why the client stopped, and whether the server said UNIMPLEMENTED.
    pub error: Option<String>,
    pub unimplemented: bool,
    /// Delta: per type, name → the version the server gave it.
    pub versions: BTreeMap<ResourceType, BTreeMap<String, String>>,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Progress {
    pub ready: usize,
    pub edited: usize,
    pub failed: usize,
}

// === the fleet ===

/// `n` clients on `connections` TCP connections (one each when they are
/// equal; otherwise consecutive clients share a connection's HTTP/2).
pub struct Fleet {
    pub n: usize,
    logs: Vec<Arc<Mutex<ClientLog>>>,
    progress: watch::Receiver<Progress>,
    /// Dropping it aborts every client.
    _tasks: JoinSet<()>,
}

impl Fleet {
    pub async fn start(
        mode: Mode,
        port: u16,
        n: usize,
        connections: usize,
        expect: Arc<Expect>,
    ) -> Result<Fleet> {
        let connections = connections.clamp(1, n.max(1));
        let endpoint = Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .context("endpoint")?
            .connect_timeout(Duration::from_secs(10))
            .tcp_nodelay(true)
            .initial_stream_window_size(WINDOW)
            .initial_connection_window_size(WINDOW);
        // Connect a bounded number at a time (the listen backlog is finite).
        let channels: Vec<Channel> = futures_util::stream::iter(0..connections)
            .map(|_| {
                let ep = endpoint.clone();
                async move { connect(&ep).await }
            })
            .buffered(32)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_>>()?;
        let per_conn = n.div_ceil(connections);
        let (ptx, prx) = watch::channel(Progress::default());
        let ptx = Arc::new(ptx);
        let mut tasks = JoinSet::new();
        let mut logs = Vec::with_capacity(n);
        for i in 0..n {
            let log = Arc::new(Mutex::new(ClientLog::default()));
            logs.push(log.clone());
            let t = Tracker {
                expect: expect.clone(),
                log,
                progress: ptx.clone(),
                matched: BTreeMap::new(),
                ready: false,
                edit_at: None,
                edited: false,
            };
            let ch = channels[(i / per_conn).min(channels.len() - 1)].clone();
            tasks.spawn(async move {
                // A client ends only by failing (recorded in its log) or by
                // being aborted with the fleet.
                let mut t = t;
                let ended = match mode {
                    Mode::Sotw => sotw(i, ch, &mut t).await,
                    Mode::Delta => delta(i, ch, &mut t).await,
                };
                if let Err(e) = ended {
                    t.fail(&e);
                }
            });
        }
        Ok(Fleet {
            n,
            logs,
            progress: prx,
            _tasks: tasks,
        })
    }

    pub fn progress(&self) -> Progress {
        *self.progress.borrow()
    }

    /// Waits until every client ACKed the initial config. Fails on the
    /// first client failure (with its message) or at the deadline.
    pub async fn wait_ready(&mut self, within: Duration) -> Result<()> {
        let n = self.n;
        let ok = tokio::time::timeout(
            within,
            self.progress.wait_for(|p| p.ready >= n || p.failed > 0),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        let p = self.progress();
        if p.failed > 0 {
            bail!(
                "{} of {n} clients failed; first: {}",
                p.failed,
                self.first_error().unwrap_or_default()
            );
        }
        if !ok {
            bail!(
                "only {} of {n} clients had ACKed the initial config after {within:?}",
                p.ready
            );
        }
        Ok(())
    }

    /// Waits until every client ACKed the edited RouteConfiguration, or the
    /// deadline; returns how many did.
    pub async fn wait_edited(&mut self, within: Duration) -> usize {
        let n = self.n;
        let _ = tokio::time::timeout(
            within,
            self.progress
                .wait_for(|p| p.edited >= n || p.edited + p.failed >= n),
        )
        .await;
        self.progress().edited
    }

    pub fn first_error(&self) -> Option<String> {
        self.logs
            .iter()
            .find_map(|l| l.lock().ok().and_then(|l| l.error.clone()))
    }

    /// Whether a failed client was told UNIMPLEMENTED.
    pub fn unimplemented(&self) -> bool {
        self.logs
            .iter()
            .any(|l| l.lock().is_ok_and(|l| l.unimplemented))
    }

    /// Responses received by all clients together.
    pub fn responses(&self) -> usize {
        self.logs
            .iter()
            .map(|l| l.lock().map_or(0, |l| l.received.len()))
            .sum()
    }

    pub fn logs(&self) -> Vec<ClientLog> {
        self.logs
            .iter()
            .map(|l| l.lock().map(|l| l.clone()).unwrap_or_default())
            .collect()
    }
}

async fn connect(ep: &Endpoint) -> Result<Channel> {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        match ep.connect().await {
            Ok(c) => return Ok(c),
            Err(e) if Instant::now() > end => {
                return Err(e).context("connect an ADS client");
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

fn node(i: usize) -> Node {
    let mut metadata = Struct::default();
    metadata.fields.insert(
        "role".to_string(),
        Value {
            kind: Some(Kind::StringValue(PROXY_KEY.to_string())),
        },
    );
    Node {
        id: format!("bench-{i}"),
        cluster: "gateway-proxy".to_string(),
        metadata: Some(metadata),
        user_agent_name: "envoy".to_string(),
        ..Default::default()
    }
}

/// Route config names the listener's HTTP connection managers load by RDS.
fn rds_names(listener: &[u8]) -> Result<BTreeSet<String>> {
    let l = Listener::decode(listener).context("decode a Listener")?;
    let mut names = BTreeSet::new();
    for fc in l
        .filter_chains
        .iter()
        .chain(l.default_filter_chain.as_ref())
    {
        for f in &fc.filters {
            let Some(filter::ConfigType::TypedConfig(any)) = &f.config_type else {
                continue;
            };
            if !any.type_url.ends_with(".HttpConnectionManager") {
                continue;
            }
            let hcm = HttpConnectionManager::decode(any.value.as_slice())
                .context("decode an HttpConnectionManager")?;
            if let Some(RouteSpecifier::Rds(rds)) = hcm.route_specifier {
                names.insert(rds.route_config_name);
            }
        }
    }
    Ok(names)
}

/// Per-client bookkeeping shared by both protocols.
struct Tracker {
    expect: Arc<Expect>,
    log: Arc<Mutex<ClientLog>>,
    progress: Arc<watch::Sender<Progress>>,
    /// Per type, the names held whose bytes match the initial config.
    matched: BTreeMap<ResourceType, BTreeSet<String>>,
    ready: bool,
    /// The edited RouteConfiguration arrived at this time; ACK pending.
    edit_at: Option<Instant>,
    edited: bool,
}

impl Tracker {
    /// Records a response of `type_url` arriving now (`resources` and
    /// `removed` resource counts, `bytes` encoded); its type and arrival.
    fn record(
        &self,
        type_url: &str,
        resources: usize,
        removed: usize,
        bytes: usize,
    ) -> Result<(ResourceType, Instant)> {
        let at = Instant::now();
        let type_ = ResourceType::from_type_url(type_url)
            .with_context(|| format!("response of unexpected type {type_url}"))?;
        if let Ok(mut l) = self.log.lock() {
            l.received.push(Received {
                at,
                type_,
                resources,
                removed,
                bytes,
            });
        }
        Ok((type_, at))
    }

    /// One resource (`any`, of a response of `type_url`) received at
    /// `at`: the edit, or an initial resource.
    fn resource(
        &mut self,
        t: ResourceType,
        type_url: &str,
        name: Option<&str>,
        any: &Any,
        at: Instant,
        held: &mut BTreeSet<String>,
    ) -> Result<()> {
        anyhow::ensure!(
            any.type_url == type_url,
            "resource of type {} in a {type_url} response",
            any.type_url,
        );
        let bytes = any.value.as_slice();
        if self.expect.is_edit(t, bytes) {
            if !self.edited && self.edit_at.is_none() {
                self.edit_at = Some(at);
            }
            return Ok(());
        }
        let known = match name {
            Some(n) => self.expect.is_initial(t, n, bytes).then_some(n),
            None => self.expect.name_of(t, bytes),
        };
        match known {
            Some(n) => {
                held.insert(n.to_string());
                Ok(())
            }
            None => bail!(
                "received a {} resource{} that differs from edgeplane's translation ({} bytes)",
                t.short(),
                name.map(|n| format!(" {n}")).unwrap_or_default(),
                bytes.len()
            ),
        }
    }

    /// After the ACK of a response has been handed to the stream.
    fn acked(&mut self) {
        if let Some(at) = self.edit_at.take() {
            self.edited = true;
            if let Ok(mut l) = self.log.lock() {
                l.edit_received = Some(at);
                l.edit_acked = Some(Instant::now());
            }
            self.progress.send_modify(|p| p.edited += 1);
        }
        if !self.ready
            && PUSH_ORDER
                .iter()
                .all(|t| self.matched.get(t).map_or(0, BTreeSet::len) == self.expect.count(*t))
        {
            self.ready = true;
            if let Ok(mut l) = self.log.lock() {
                l.ready_at = Some(Instant::now());
            }
            self.progress.send_modify(|p| p.ready += 1);
        }
    }

    fn fail(&self, e: &anyhow::Error) {
        let unimplemented = e
            .chain()
            .filter_map(|c| c.downcast_ref::<tonic::Status>())
            .any(|s| s.code() == tonic::Code::Unimplemented);
        if let Ok(mut l) = self.log.lock() {
            l.error = Some(format!("{e:#}"));
            l.unimplemented = unimplemented;
        }
        self.progress.send_modify(|p| p.failed += 1);
    }
}

fn client(ch: Channel) -> AggregatedDiscoveryServiceClient<Channel> {
    AggregatedDiscoveryServiceClient::new(ch)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
}

/// Hands `req` to a client's request stream.
async fn request<T>(tx: &mpsc::Sender<T>, req: T) -> Result<()> {
    tx.send(req)
        .await
        .map_err(|_| anyhow::anyhow!("request stream closed"))
}

// === state of the world ===

async fn sotw(i: usize, ch: Channel, t: &mut Tracker) -> Result<()> {
    let (tx, rx) = mpsc::channel::<DiscoveryRequest>(64);
    let send = |req| request(&tx, req);
    send(DiscoveryRequest {
        node: Some(node(i)),
        type_url: ResourceType::Cluster.type_url().to_string(),
        ..Default::default()
    })
    .await?;
    send(DiscoveryRequest {
        type_url: ResourceType::Listener.type_url().to_string(),
        ..Default::default()
    })
    .await?;
    let mut inbound = client(ch)
        .stream_aggregated_resources(ReceiverStream::new(rx))
        .await
        .context("open the SotW ADS stream")?
        .into_inner();
    // RDS: the names asked for, and the last accepted version and nonce.
    let mut rds: BTreeSet<String> = BTreeSet::new();
    let (mut rds_version, mut rds_nonce) = (String::new(), String::new());
    while let Some(resp) = inbound.message().await.context("SotW ADS stream")? {
        let (ty, at) = t.record(&resp.type_url, resp.resources.len(), 0, resp.encoded_len())?;
        let mut held = BTreeSet::new();
        for any in &resp.resources {
            t.resource(ty, &resp.type_url, None, any, at, &mut held)?;
        }
        match ty {
            // Full state: what is not in the response is gone.
            ResourceType::Cluster | ResourceType::Listener => {
                t.matched.insert(ty, held);
            }
            ResourceType::Route | ResourceType::Secret => {
                t.matched.entry(ty).or_default().extend(held)
            }
        }
        let names = if ty == ResourceType::Route {
            rds_version = resp.version_info.clone();
            rds_nonce = resp.nonce.clone();
            rds.iter().cloned().collect()
        } else {
            Vec::new()
        };
        send(DiscoveryRequest {
            version_info: resp.version_info.clone(),
            resource_names: names,
            type_url: resp.type_url.clone(),
            response_nonce: resp.nonce.clone(),
            ..Default::default()
        })
        .await?;
        t.acked();
        if ty == ResourceType::Listener {
            let mut want = BTreeSet::new();
            for any in &resp.resources {
                want.extend(rds_names(&any.value)?);
            }
            if want != rds {
                rds = want;
                send(DiscoveryRequest {
                    version_info: rds_version.clone(),
                    resource_names: rds.iter().cloned().collect(),
                    type_url: ResourceType::Route.type_url().to_string(),
                    response_nonce: rds_nonce.clone(),
                    ..Default::default()
                })
                .await?;
            }
        }
    }
    bail!("the server closed the SotW ADS stream")
}

// === delta ===

async fn delta(i: usize, ch: Channel, t: &mut Tracker) -> Result<()> {
    let (tx, rx) = mpsc::channel::<DeltaDiscoveryRequest>(64);
    let send = |req| request(&tx, req);
    send(DeltaDiscoveryRequest {
        node: Some(node(i)),
        type_url: ResourceType::Cluster.type_url().to_string(),
        resource_names_subscribe: vec!["*".to_string()],
        ..Default::default()
    })
    .await?;
    send(DeltaDiscoveryRequest {
        type_url: ResourceType::Listener.type_url().to_string(),
        resource_names_subscribe: vec!["*".to_string()],
        ..Default::default()
    })
    .await?;
    let mut inbound = client(ch)
        .delta_aggregated_resources(ReceiverStream::new(rx))
        .await
        .context("open the delta ADS stream")?
        .into_inner();
    // Listener name → the route config names it loads; RDS names asked for.
    let mut listeners: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut rds: BTreeSet<String> = BTreeSet::new();
    while let Some(resp) = inbound.message().await.context("delta ADS stream")? {
        let (ty, at) = t.record(
            &resp.type_url,
            resp.resources.len(),
            resp.removed_resources.len(),
            resp.encoded_len(),
        )?;
        anyhow::ensure!(!resp.nonce.is_empty(), "delta response without a nonce");
        let mut held = std::mem::take(t.matched.entry(ty).or_default());
        let mut versions = BTreeMap::new();
        for r in &resp.resources {
            let any = r
                .resource
                .as_ref()
                .with_context(|| format!("resource {} without a body", r.name))?;
            held.remove(&r.name);
            t.resource(ty, &resp.type_url, Some(&r.name), any, at, &mut held)?;
            versions.insert(r.name.clone(), r.version.clone());
            if ty == ResourceType::Listener {
                listeners.insert(r.name.clone(), rds_names(&any.value)?);
            }
        }
        for name in &resp.removed_resources {
            held.remove(name);
            if ty == ResourceType::Listener {
                listeners.remove(name);
            }
        }
        t.matched.insert(ty, held);
        if let Ok(mut l) = t.log.lock() {
            let v = l.versions.entry(ty).or_default();
            for name in &resp.removed_resources {
                v.remove(name);
            }
            v.extend(versions);
        }
        send(DeltaDiscoveryRequest {
            type_url: resp.type_url.clone(),
            response_nonce: resp.nonce.clone(),
            ..Default::default()
        })
        .await?;
        t.acked();
        if ty == ResourceType::Listener {
            let want: BTreeSet<String> = listeners.values().flatten().cloned().collect();
            let subscribe: Vec<String> = want.difference(&rds).cloned().collect();
            let unsubscribe: Vec<String> = rds.difference(&want).cloned().collect();
            if !subscribe.is_empty() || !unsubscribe.is_empty() {
                rds = want;
                send(DeltaDiscoveryRequest {
                    type_url: ResourceType::Route.type_url().to_string(),
                    resource_names_subscribe: subscribe,
                    resource_names_unsubscribe: unsubscribe,
                    ..Default::default()
                })
                .await?;
            }
        }
    }
    bail!("the server closed the delta ADS stream")
}
