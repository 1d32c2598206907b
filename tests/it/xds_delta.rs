//! The incremental (delta) ADS protocol as an Envoy sees it.
//!
//! Each test starts `edgeplane serve` on its own manifests directory and
//! talks delta ADS to it with a plain tonic client playing Envoy: wildcard
//! CDS/LDS, named RDS, ACKs by nonce. The real-Envoy suite runs in delta
//! mode too (`EDGEPLANE_TEST_XDS=delta`, see `scripts/test`); these tests
//! pin down what travels on the wire, which Envoy's stats cannot show.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::{self, ControlPlane, eventually, manifests_dir, write_atomic};
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse,
};
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use prost::Message;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_stream::wrappers::ReceiverStream;

const CDS: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const LDS: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
const RDS: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
const PORT: u16 = 18181;
const STEP: Duration = Duration::from_secs(10);

fn route_config() -> String {
    format!("listener-127.0.0.1-{PORT}-routes")
}

fn gateway() -> String {
    support::gateway(PORT, "")
}

fn vs(prefixes: &[&str]) -> String {
    let routes: String = prefixes
        .iter()
        .map(|p| support::route(p, "echo", ""))
        .collect();
    support::virtual_service(&routes)
}

/// The manifests: a Gateway, Upstream `echo` and a VirtualService.
fn manifests() -> Vec<(&'static str, String)> {
    vec![
        ("gateway.yaml", gateway()),
        ("upstream.yaml", support::upstream("echo", &[9])),
        ("vs.yaml", vs(&["/a", "/b"])),
    ]
}

struct Delta {
    _client: AggregatedDiscoveryServiceClient<tonic::transport::Channel>,
    tx: mpsc::Sender<DeltaDiscoveryRequest>,
    rx: tonic::Streaming<DeltaDiscoveryResponse>,
}

impl Delta {
    async fn connect(port: u16) -> Delta {
        let url = format!("http://127.0.0.1:{port}");
        let mut client = eventually("xDS port accepts", || {
            let url = url.clone();
            async move { AggregatedDiscoveryServiceClient::connect(url).await.ok() }
        })
        .await;
        let (tx, rx) = mpsc::channel(16);
        let resp = timeout(
            STEP,
            client.delta_aggregated_resources(ReceiverStream::new(rx)),
        )
        .await
        .expect("opening the delta stream timed out")
        .expect("opening the delta stream failed");
        Delta {
            _client: client,
            tx,
            rx: resp.into_inner(),
        }
    }

    async fn send(&self, req: DeltaDiscoveryRequest) {
        timeout(STEP, self.tx.send(req))
            .await
            .expect("sending a delta request timed out")
            .expect("the delta request stream is closed");
    }

    async fn recv(&mut self, what: &str) -> DeltaDiscoveryResponse {
        match timeout(STEP, self.rx.message()).await {
            Ok(Ok(Some(r))) => r,
            Ok(Ok(None)) => panic!("delta stream ended while waiting for {what}"),
            Ok(Err(s)) => panic!("delta stream failed while waiting for {what}: {s}"),
            Err(_) => panic!("no delta response within {STEP:?} while waiting for {what}"),
        }
    }

    async fn ack(&self, r: &DeltaDiscoveryResponse) {
        self.send(DeltaDiscoveryRequest {
            type_url: r.type_url.clone(),
            response_nonce: r.nonce.clone(),
            ..Default::default()
        })
        .await;
    }

    /// Subscribes like a fresh Envoy (wildcard CDS and LDS, RDS by name),
    /// ACKing each response; returns the three responses.
    async fn initial(&mut self, node_id: &str) -> [DeltaDiscoveryResponse; 3] {
        self.initial_with(node_id, BTreeMap::new()).await
    }

    async fn initial_with(
        &mut self,
        node_id: &str,
        held: BTreeMap<String, String>,
    ) -> [DeltaDiscoveryResponse; 3] {
        self.send(sub(CDS, &["*"], Some(node(node_id)), &held))
            .await;
        let cds = self.recv("CDS").await;
        assert_eq!(cds.type_url, CDS);
        self.ack(&cds).await;
        self.send(sub(LDS, &["*"], None, &held)).await;
        let lds = self.recv("LDS").await;
        assert_eq!(lds.type_url, LDS);
        self.ack(&lds).await;
        self.send(sub(RDS, &[&route_config()], None, &held)).await;
        let rds = self.recv("RDS").await;
        assert_eq!(rds.type_url, RDS);
        self.ack(&rds).await;
        [cds, lds, rds]
    }
}

fn node(id: &str) -> Node {
    let mut metadata = Struct::default();
    metadata.fields.insert(
        "role".into(),
        Value {
            kind: Some(Kind::StringValue("gloo-system~gateway-proxy".into())),
        },
    );
    Node {
        id: id.into(),
        cluster: "gateway-proxy".into(),
        metadata: Some(metadata),
        ..Default::default()
    }
}

fn sub(
    type_url: &str,
    names: &[&str],
    node: Option<Node>,
    held: &BTreeMap<String, String>,
) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        node,
        type_url: type_url.into(),
        resource_names_subscribe: names.iter().map(|s| s.to_string()).collect(),
        initial_resource_versions: held.clone().into_iter().collect(),
        ..Default::default()
    }
}

fn names(r: &DeltaDiscoveryResponse) -> Vec<String> {
    r.resources.iter().map(|x| x.name.clone()).collect()
}

fn sha256_hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

fn decode_rc(r: &DeltaDiscoveryResponse) -> RouteConfiguration {
    let any = r.resources[0].resource.as_ref().expect("resource body");
    RouteConfiguration::decode(any.value.as_slice()).expect("RouteConfiguration decodes")
}

fn prefixes(rc: &RouteConfiguration) -> Vec<String> {
    use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
    rc.virtual_hosts
        .iter()
        .flat_map(|vh| &vh.routes)
        .filter_map(|r| match r.r#match.as_ref()?.path_specifier.as_ref()? {
            PathSpecifier::Prefix(p) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

async fn start() -> (tempfile::TempDir, ControlPlane) {
    start_with(&[]).await
}

async fn start_with(extra: &[(&'static str, String)]) -> (tempfile::TempDir, ControlPlane) {
    let mut files = manifests();
    files.extend_from_slice(extra);
    let (tmp, dir) = manifests_dir(&files);
    let cp = ControlPlane::start(&dir, 0, tmp.path()).await;
    (tmp, cp)
}

/// Waits until `pred` holds for the first node's `types` in `/status`.
async fn wait_types(cp: &ControlPlane, what: &str, pred: impl Fn(&[serde_json::Value]) -> bool) {
    eventually(what, || async {
        let s = cp.status().await;
        pred(s["nodes"][0]["types"].as_array()?).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_fetch_gives_each_resource_with_its_content_hash_as_version() {
    let (_tmp, cp) = start().await;
    let mut ads = Delta::connect(cp.xds_port).await;
    let [cds, lds, rds] = ads.initial("n1").await;
    assert_eq!(names(&cds), ["echo_gloo-system"]);
    assert_eq!(names(&lds), [format!("listener-127.0.0.1-{PORT}")]);
    assert_eq!(names(&rds), [route_config()]);
    let mut nonces = Vec::new();
    for r in [&cds, &lds, &rds] {
        assert!(r.removed_resources.is_empty(), "nothing to remove: {r:?}");
        assert!(!r.nonce.is_empty(), "delta responses carry a nonce");
        nonces.push(r.nonce.clone());
        for res in &r.resources {
            let body = res.resource.as_ref().expect("resource body");
            assert_eq!(body.type_url, r.type_url);
            assert_eq!(res.version, sha256_hex(&body.value), "version = SHA-256");
        }
    }
    nonces.sort();
    nonces.dedup();
    assert_eq!(nonces.len(), 3, "each response has its own nonce");
    assert_eq!(prefixes(&decode_rc(&rds)), ["/a", "/b"]);
    // The ACKs reach the status API.
    wait_types(&cp, "status shows the delta ACKs", |types| {
        types.len() == 3
            && types
                .iter()
                .all(|t| t["ackedVersion"].as_str().is_some_and(|v| !v.is_empty()))
    })
    .await;
}

/// The acceptance point: a one-route edit sends exactly one
/// RouteConfiguration and nothing else. Proven by ordering, not by waiting
/// for silence: a second edit touches only the Upstream, and the very next
/// message must be its CDS response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_route_edit_sends_only_the_changed_route_configuration() {
    let (_tmp, cp) = start().await;
    let mut ads = Delta::connect(cp.xds_port).await;
    let [cds0, lds0, _] = ads.initial("n1").await;

    write_atomic(&cp.dir, "vs.yaml", &vs(&["/a", "/b", "/c"]));
    let r = ads.recv("RDS after a route edit").await;
    assert_eq!(r.type_url, RDS, "only RDS changes: {r:?}");
    assert_eq!(
        names(&r),
        [route_config()],
        "exactly one RouteConfiguration"
    );
    assert!(r.removed_resources.is_empty());
    assert_eq!(prefixes(&decode_rc(&r)), ["/a", "/b", "/c"]);
    ads.ack(&r).await;

    write_atomic(&cp.dir, "upstream.yaml", &support::upstream("echo", &[10]));
    let c = ads.recv("CDS after an Upstream edit").await;
    assert_eq!(c.type_url, CDS, "the route edit sent nothing else: {c:?}");
    assert_eq!(names(&c), ["echo_gloo-system"]);
    let cluster = Cluster::decode(
        c.resources[0]
            .resource
            .as_ref()
            .expect("body")
            .value
            .as_slice(),
    )
    .expect("Cluster decodes");
    assert!(format!("{cluster:?}").contains("PortValue(10)"));
    assert_ne!(c.resources[0].version, cds0.resources[0].version);
    ads.ack(&c).await;
    // And the listener was never re-sent: the next edit is again RDS only.
    write_atomic(&cp.dir, "vs.yaml", &vs(&["/a"]));
    let r2 = ads.recv("RDS after a second route edit").await;
    assert_eq!(r2.type_url, RDS, "{r2:?} (LDS {:?})", names(&lds0));
    assert_eq!(names(&r2), [route_config()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_with_initial_versions_resends_only_what_differs() {
    let (_tmp, cp) = start().await;
    let mut ads = Delta::connect(cp.xds_port).await;
    let [cds, lds, rds] = ads.initial("n1").await;
    drop(ads);
    // Held: current CDS and LDS, a stale RDS version.
    let mut held = BTreeMap::new();
    for r in [&cds, &lds] {
        for x in &r.resources {
            held.insert(x.name.clone(), x.version.clone());
        }
    }
    held.insert(route_config(), "stale".into());
    let mut ads = Delta::connect(cp.xds_port).await;
    let [cds2, lds2, rds2] = ads.initial_with("n1", held).await;
    assert!(
        cds2.resources.is_empty(),
        "CDS current: answered, nothing resent"
    );
    assert!(lds2.resources.is_empty(), "LDS current: nothing resent");
    assert_eq!(names(&rds2), [route_config()], "the stale RDS is resent");
    assert_eq!(rds2.resources[0].version, rds.resources[0].version);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_and_unknown_resources_are_removed_explicitly() {
    let (_tmp, cp) = start_with(&[("extra.yaml", support::upstream("extra", &[11]))]).await;
    let mut ads = Delta::connect(cp.xds_port).await;
    let [cds, _, _] = ads.initial("n1").await;
    assert_eq!(names(&cds), ["echo_gloo-system", "extra_gloo-system"]);

    std::fs::remove_file(cp.dir.join("extra.yaml")).expect("rm extra.yaml");
    let c = ads.recv("CDS removal").await;
    assert_eq!(c.type_url, CDS);
    assert!(c.resources.is_empty(), "{c:?}");
    assert_eq!(c.removed_resources, ["extra_gloo-system"]);
    ads.ack(&c).await;

    // Subscribing to a route configuration that does not exist: told at once.
    ads.send(DeltaDiscoveryRequest {
        type_url: RDS.into(),
        resource_names_subscribe: vec!["no-such-routes".into()],
        ..Default::default()
    })
    .await;
    let r = ads.recv("RDS answer for an unknown name").await;
    assert_eq!(r.type_url, RDS);
    assert!(r.resources.is_empty(), "{r:?}");
    assert_eq!(r.removed_resources, ["no-such-routes"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nacked_version_is_not_resent_and_is_reported() {
    let (_tmp, cp) = start().await;
    let mut ads = Delta::connect(cp.xds_port).await;
    ads.initial("n1").await;
    write_atomic(&cp.dir, "vs.yaml", &vs(&["/a", "/b", "/nacked"]));
    let r = ads.recv("RDS to reject").await;
    assert_eq!(r.type_url, RDS);
    ads.send(DeltaDiscoveryRequest {
        type_url: RDS.into(),
        response_nonce: r.nonce.clone(),
        error_detail: Some(RpcStatus {
            code: 13,
            message: "test says no".into(),
            details: vec![],
        }),
        ..Default::default()
    })
    .await;
    wait_types(&cp, "status shows the delta NACK", |types| {
        types
            .iter()
            .any(|t| t["typeUrl"] == RDS && t["nackMessage"] == "test says no")
    })
    .await;
    // A re-subscription of the same name (as after a NACK, Envoy may ask
    // again) is answered; what matters is that no push repeats the
    // rejected version on its own. The next edit is what comes next.
    write_atomic(&cp.dir, "vs.yaml", &vs(&["/a", "/fixed"]));
    let r2 = ads.recv("RDS after the fix").await;
    assert_eq!(r2.type_url, RDS);
    assert_eq!(prefixes(&decode_rc(&r2)), ["/a", "/fixed"]);
    ads.ack(&r2).await;
    wait_types(&cp, "the ACK clears the NACK", |types| {
        types
            .iter()
            .any(|t| t["typeUrl"] == RDS && t["nackMessage"] == "")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribed_route_configuration_is_no_longer_sent() {
    let (_tmp, cp) = start().await;
    let mut ads = Delta::connect(cp.xds_port).await;
    ads.initial("n1").await;
    ads.send(DeltaDiscoveryRequest {
        type_url: RDS.into(),
        resource_names_unsubscribe: vec![route_config()],
        ..Default::default()
    })
    .await;
    // A route edit now concerns nothing this client watches; an Upstream
    // edit after it must be the next message.
    write_atomic(&cp.dir, "vs.yaml", &vs(&["/z"]));
    let loads = cp.loads().await;
    write_atomic(&cp.dir, "upstream.yaml", &support::upstream("echo", &[12]));
    cp.wait_load_after(loads).await;
    let c = ads.recv("CDS").await;
    assert_eq!(c.type_url, CDS, "no RDS after unsubscribing: {c:?}");
}

/// A stuck Envoy (connected, subscribed, never reading) must not delay
/// anyone else: each stream waits on its own queue. The config is large
/// enough (~2,000 routes, ~150 KB per RouteConfiguration) that the stuck
/// stream's HTTP/2 window and queue fill after the first edits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_envoy_does_not_delay_the_others() {
    let (_tmp, cp) = start().await;
    let many: Vec<String> = (0..2000).map(|i| format!("/route-number-{i:05}")).collect();
    let refs = |extra: &str| {
        let mut v: Vec<&str> = many.iter().map(String::as_str).collect();
        v.push(extra);
        vs(&v)
    };
    let loads = cp.loads().await;
    write_atomic(&cp.dir, "vs.yaml", &refs("/edit-0"));
    cp.wait_load_after(loads).await;

    let mut stuck = Delta::connect(cp.xds_port).await;
    stuck.initial("stuck").await;
    let mut live = Delta::connect(cp.xds_port).await;
    live.initial("live").await;
    // From here on `stuck` never reads again.
    for k in 1..=8 {
        write_atomic(&cp.dir, "vs.yaml", &refs(&format!("/edit-{k}")));
        let r = live.recv(&format!("RDS for edit {k}")).await;
        assert_eq!(r.type_url, RDS);
        let p = prefixes(&decode_rc(&r));
        assert!(
            p.contains(&format!("/edit-{k}")),
            "the live Envoy got edit {k} while another Envoy was stuck"
        );
        live.ack(&r).await;
    }
    drop(stuck);
}
