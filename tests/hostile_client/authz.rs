//! Under mTLS with `--xds-authz-policy`: a client with a valid certificate
//! that claims a role outside the policy gets `PERMISSION_DENIED` and no
//! resources (SotW and delta), and forged stats (another node's id, or a
//! node id not connected over ADS) are refused, while the real Envoy, whose
//! certificate the policy allows its role, keeps its config, its stats and
//! receives an edit within one second. The status API answers only the
//! policy's `statusReaders`, and at most `MAX_WATCHERS` watch at once.
//!
//! Certificates are made at test time (rcgen): a CA, a server certificate
//! for 127.0.0.1/localhost, the gateway's client certificate (a SPIFFE ID)
//! and an intruder's (a DNS name the policy allows another role only).

use std::time::Duration;

use anyhow::{Context, Result};
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};
use envoy_types::pb::envoy::service::metrics::v3::metrics_service_client::MetricsServiceClient;
use envoy_types::pb::envoy::service::metrics::v3::{StreamMetricsMessage, stream_metrics_message};
use envoy_types::pb::google::protobuf::{Struct, Value as PbValue, value::Kind};
use envoy_types::pb::io::prometheus::client as prom;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use crate::support::*;

const UP: &str = "backend";
const ROLE: &str = "gloo-system~gateway-proxy";
const NODE: &str = "gw-1";
const GW_SPIFFE: &str = "spiffe://edgeplane.test/ns/gloo-system/sa/gateway-proxy";
const INTRUDER_DNS: &str = "intruder.envoy.test";
/// edgeplane's resident memory bound through these tests.
const RSS_BOUND_KIB: u64 = 200 * 1024;

const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";

fn policy() -> String {
    format!(
        "rules:\n  - identities: [\"{GW_SPIFFE}\"]\n    roles: [\"{ROLE}\"]\n  - identities: [\"{INTRUDER_DNS}\"]\n    roles: [\"gloo-system~other-*\"]\nstatusReaders: [\"spiffe://edgeplane.test/ns/gloo-system/*\"]\n"
    )
}

struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Result<Pki> {
        let dir = tempfile::tempdir().context("tempdir for certificates")?;
        let write = |name: &str, pem: String| {
            std::fs::write(dir.path().join(name), pem).with_context(|| format!("write {name}"))
        };
        let mut p = CertificateParams::new(Vec::<String>::new()).context("CA params")?;
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(DnType::CommonName, "hostile-client test CA");
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(p, KeyPair::generate()?).context("CA")?;
        let leaf = |dns: &[&str], uri: Option<&str>, usage| -> Result<(String, String)> {
            let mut p =
                CertificateParams::new(dns.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                    .context("leaf params")?;
            if let Some(u) = uri {
                p.subject_alt_names
                    .push(SanType::URI(u.try_into().context("URI SAN")?));
            }
            p.distinguished_name.push(DnType::CommonName, "leaf");
            p.extended_key_usages = vec![usage];
            let key = KeyPair::generate()?;
            let cert = p.signed_by(&key, &ca).context("leaf")?;
            Ok((cert.pem(), key.serialize_pem()))
        };
        let (c, k) = leaf(
            &["127.0.0.1", "localhost"],
            None,
            ExtendedKeyUsagePurpose::ServerAuth,
        )?;
        write("server.crt", c)?;
        write("server.key", k)?;
        let (c, k) = leaf(&[], Some(GW_SPIFFE), ExtendedKeyUsagePurpose::ClientAuth)?;
        write("gw.crt", c)?;
        write("gw.key", k)?;
        let (c, k) = leaf(&[INTRUDER_DNS], None, ExtendedKeyUsagePurpose::ClientAuth)?;
        write("intruder.crt", c)?;
        write("intruder.key", k)?;
        write("ca.crt", ca.pem())?;
        write("policy.yaml", policy())?;
        Ok(Pki { dir })
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn read(&self, name: &str) -> Result<String> {
        std::fs::read_to_string(self.dir.path().join(name)).with_context(|| format!("read {name}"))
    }

    /// A gRPC channel to edgeplane presenting `client`'s certificate.
    async fn channel(&self, port: u16, client: &str) -> Result<Channel> {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(self.read("ca.crt")?))
            .identity(Identity::from_pem(
                self.read(&format!("{client}.crt"))?,
                self.read(&format!("{client}.key"))?,
            ))
            .domain_name("localhost");
        Channel::from_shared(format!("https://127.0.0.1:{port}"))?
            .tls_config(tls)?
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .context("connect to edgeplane over mTLS")
    }
}

/// edgeplane under mTLS with the policy, and the real Envoy `NODE` whose
/// certificate (the SPIFFE ID) may claim `ROLE`, serving on `port`.
struct Setup {
    pki: Pki,
    tmp: tempfile::TempDir,
    _backend: Backend,
    port: u16,
    cp: ControlPlane,
    envoy: Envoy,
}

impl Setup {
    async fn start() -> Result<Setup> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let pki = Pki::new()?;
        let backend = Backend::start("authz-backend").await;
        let port = free_port();
        let (tmp, dir) = manifests_dir(&[
            ("gateway.yaml", gateway(port, "")),
            ("upstream.yaml", upstream(UP, &[backend.port])),
            ("vs.yaml", virtual_service(&route("/", UP, ""))),
        ]);
        let args: Vec<String> = [
            "--xds-tls-cert",
            &pki.path("server.crt"),
            "--xds-tls-key",
            &pki.path("server.key"),
            "--xds-tls-client-ca",
            &pki.path("ca.crt"),
            "--xds-authz-policy",
            &pki.path("policy.yaml"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let cp = ControlPlane::start_with_args(&dir, 0, tmp.path(), &args).await;
        let boot: Vec<String> = [
            "--xds-tls-ca",
            &pki.path("ca.crt"),
            "--xds-tls-cert",
            &pki.path("gw.crt"),
            "--xds-tls-key",
            &pki.path("gw.key"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let envoy = Envoy::start_with_args(cp.xds_port, NODE, tmp.path(), &boot).await;
        envoy.wait_serving(port, "/").await;
        Ok(Setup {
            pki,
            tmp,
            _backend: backend,
            port,
            cp,
            envoy,
        })
    }

    fn rss_kib(&self) -> u64 {
        let pid = self.cp.pid().expect("edgeplane runs");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// Edits the VirtualService (a new route prefix) and asserts Envoy has
    /// it within one second of the load completing.
    async fn assert_edit_within_1s(&self, prefix: &str) {
        let loads = self.cp.loads().await;
        write_atomic(
            &self.cp.dir,
            "vs.yaml",
            &virtual_service(&format!("{}{}", route(prefix, UP, ""), route("/", UP, ""))),
        );
        self.cp.wait_load_after(loads).await;
        let envoy = &self.envoy;
        let got = poll(
            "Envoy has the edited route",
            Duration::from_secs(1),
            Duration::from_millis(20),
            || async {
                let (_, body) = envoy
                    .get("/config_dump?resource=dynamic_route_configs")
                    .await?;
                body.contains(prefix).then_some(())
            },
        )
        .await;
        assert!(
            got.is_ok(),
            "edit not in Envoy within 1 s: {got:?}\n{}",
            self.cp.logs_with(&self.envoy.log_text())
        );
    }
}

fn node(id: &str, role: &str) -> Node {
    let mut fields = std::collections::BTreeMap::new();
    fields.insert(
        "role".to_string(),
        PbValue {
            kind: Some(Kind::StringValue(role.to_string())),
        },
    );
    Node {
        id: id.to_string(),
        cluster: "gateway-proxy".to_string(),
        metadata: Some(Struct {
            fields: fields.into_iter().collect(),
        }),
        ..Default::default()
    }
}

/// Opens an ADS stream (SotW or delta) as the intruder claiming `ROLE`,
/// and returns the status it ends with; any response is a failure.
async fn claim_role(ch: Channel, delta: bool) -> Result<tonic::Status> {
    let mut ads = AggregatedDiscoveryServiceClient::new(ch);
    let n = node("intruder", ROLE);
    let first = if delta {
        let req = DeltaDiscoveryRequest {
            node: Some(n),
            type_url: LISTENER.into(),
            ..Default::default()
        };
        let resp = ads
            .delta_aggregated_resources(tokio_stream::iter(vec![req]).chain(pending()))
            .await;
        match resp {
            Err(s) => return Ok(s),
            Ok(r) => r
                .into_inner()
                .message()
                .await
                .map(|m| m.map(|m| m.resources.len())),
        }
    } else {
        let req = DiscoveryRequest {
            node: Some(n),
            type_url: LISTENER.into(),
            ..Default::default()
        };
        let resp = ads
            .stream_aggregated_resources(tokio_stream::iter(vec![req]).chain(pending()))
            .await;
        match resp {
            Err(s) => return Ok(s),
            Ok(r) => r
                .into_inner()
                .message()
                .await
                .map(|m| m.map(|m| m.resources.len())),
        }
    };
    match first {
        Err(s) => Ok(s),
        Ok(got) => anyhow::bail!("the intruder's stream was answered: {got:?} resources"),
    }
}

/// A request stream that stays open (the client never half-closes).
fn pending<T>() -> impl tokio_stream::Stream<Item = T> {
    futures_util::stream::pending()
}

use tokio_stream::StreamExt as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_claim_outside_the_policy_is_denied_and_gets_nothing() -> Result<()> {
    let s = Setup::start().await?;
    for delta in [false, true] {
        let ch = s.pki.channel(s.cp.xds_port, "intruder").await?;
        let status = tokio::time::timeout(Duration::from_secs(5), claim_role(ch, delta))
            .await
            .context("no answer to the intruder within 5 s")??;
        assert_eq!(
            status.code(),
            tonic::Code::PermissionDenied,
            "delta={delta}: {status:?}"
        );
        assert!(status.message().contains(ROLE), "{status:?}");
        assert!(status.message().contains(INTRUDER_DNS), "{status:?}");
    }
    let log = s.cp.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains("refused") && l.contains(INTRUDER_DNS)),
        "no WARN naming the intruder:\n{log}"
    );
    // The intruder never appears as a node; the real Envoy still does.
    let st = s.cp.status().await;
    assert!(status_node(&st, "intruder").is_none(), "{st}");
    assert!(status_node(&st, NODE).is_some(), "{st}");
    let rss = s.rss_kib();
    assert!(rss > 0 && rss < RSS_BOUND_KIB, "edgeplane RSS {rss} KiB");
    s.assert_edit_within_1s("/after-role-claim").await;
    drop(s.tmp);
    Ok(())
}

fn forged_stats(node_id: &str, listener_prefix: &str) -> StreamMetricsMessage {
    StreamMetricsMessage {
        identifier: Some(stream_metrics_message::Identifier {
            node: Some(Node {
                id: node_id.to_string(),
                ..Default::default()
            }),
        }),
        envoy_metrics: vec![prom::MetricFamily {
            name: Some(format!("listener.{listener_prefix}.downstream_cx_active")),
            r#type: Some(prom::MetricType::Gauge as i32),
            metric: vec![prom::Metric {
                gauge: Some(prom::Gauge { value: Some(999.0) }),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// The node's active connections per listener, per edgeplane's `/status`.
fn node_listeners(st: &serde_json::Value, id: &str) -> Option<serde_json::Value> {
    status_node(st, id).map(|n| n["listeners"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_stats_are_refused_and_the_real_counts_stand() -> Result<()> {
    let s = Setup::start().await?;
    let prefix = format!("127.0.0.1_{}", s.port);
    let cp = &s.cp;
    // The real Envoy's stats arrive (its listener's count is known).
    let before = eventually("the real node's listener counts in /status", || async {
        let l = node_listeners(&cp.status().await, NODE)?;
        l.as_array()?
            .iter()
            .any(|e| e["activeConnections"].is_u64())
            .then_some(l)
    })
    .await;

    // Another identity reporting for the real node, and anybody reporting
    // for a node id no ADS stream has.
    for (forged_id, why) in [
        (NODE, "may not claim role"),
        ("ghost", "no ADS stream of this node id"),
    ] {
        let ch = s.pki.channel(s.cp.xds_port, "intruder").await?;
        let mut sink = MetricsServiceClient::new(ch);
        let r = tokio::time::timeout(
            Duration::from_secs(15),
            sink.stream_metrics(tokio_stream::iter(vec![forged_stats(forged_id, &prefix)])),
        )
        .await
        .context("no answer to the forged stats within 15 s")?;
        let status = r.expect_err("forged stats accepted");
        assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
        assert!(status.message().contains(forged_id), "{status:?}");
        let log = s.cp.log_text();
        assert!(
            log.lines()
                .any(|l| l.contains("WARN") && l.contains("stats stream refused")),
            "{why}: no WARN:\n{log}"
        );
    }
    let st = s.cp.status().await;
    assert_eq!(node_listeners(&st, NODE), Some(before), "{st}");
    assert!(status_node(&st, "ghost").is_none(), "{st}");
    // No node shows the forged count anywhere (a bare substring check
    // would also match hashes and timings).
    let forged_shown = st["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|n| n["listeners"].as_array().into_iter().flatten())
        .any(|l| l["activeConnections"].as_u64() == Some(999));
    assert!(!forged_shown, "{st}");
    let rss = s.rss_kib();
    assert!(rss > 0 && rss < RSS_BOUND_KIB, "edgeplane RSS {rss} KiB");
    s.assert_edit_within_1s("/after-forged-stats").await;
    Ok(())
}

/// The status API under a policy with `statusReaders`: an identity outside
/// it gets `PERMISSION_DENIED` on both calls; a reader is answered, and of
/// its `WatchStatus` streams the one past edgeplane's cap (64) gets
/// `RESOURCE_EXHAUSTED` while the others keep their stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_api_answers_only_its_readers_and_caps_watchers() -> Result<()> {
    use edgeplane::status::api::GetStatusRequest;
    use edgeplane::status::api::status_service_client::StatusServiceClient;
    const MAX_WATCHERS: usize = 64;
    let s = Setup::start().await?;

    let mut intruder = StatusServiceClient::new(s.pki.channel(s.cp.xds_port, "intruder").await?);
    let denied = intruder
        .get_status(GetStatusRequest::default())
        .await
        .expect_err("the intruder read the status");
    assert_eq!(denied.code(), tonic::Code::PermissionDenied, "{denied:?}");
    let denied = intruder
        .watch_status(GetStatusRequest::default())
        .await
        .expect_err("the intruder watched the status");
    assert_eq!(denied.code(), tonic::Code::PermissionDenied, "{denied:?}");

    let mut reader = StatusServiceClient::new(s.pki.channel(s.cp.xds_port, "gw").await?);
    let status = reader
        .get_status(GetStatusRequest::default())
        .await
        .context("a status reader is answered")?
        .into_inner();
    assert!(!status.nodes.is_empty(), "the real Envoy is listed");

    let mut watchers = Vec::new();
    for i in 0..MAX_WATCHERS {
        let mut stream = tokio::time::timeout(
            Duration::from_secs(10),
            reader.watch_status(GetStatusRequest::default()),
        )
        .await
        .with_context(|| format!("watcher {i} not answered within 10 s"))?
        .with_context(|| format!("watcher {i} refused"))?
        .into_inner();
        let first = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .with_context(|| format!("watcher {i}: no first report within 10 s"))?;
        assert!(matches!(first, Ok(Some(_))), "watcher {i}: {first:?}");
        watchers.push(stream);
    }
    let over = tokio::time::timeout(
        Duration::from_secs(10),
        reader.watch_status(GetStatusRequest::default()),
    )
    .await
    .context("the watcher over the cap not answered within 10 s")?;
    let over = match over {
        Err(status) => status,
        Ok(resp) => {
            // The refusal may come as the stream's first item.
            let mut stream = resp.into_inner();
            match tokio::time::timeout(Duration::from_secs(10), stream.message()).await {
                Ok(Err(status)) => status,
                other => panic!("watcher {MAX_WATCHERS} was served: {other:?}"),
            }
        }
    };
    assert_eq!(over.code(), tonic::Code::ResourceExhausted, "{over:?}");

    // The watchers still open see the edit; the real Envoy gets it in 1 s.
    s.assert_edit_within_1s("/after-status-watchers").await;
    let rss = s.rss_kib();
    assert!(rss > 0 && rss < RSS_BOUND_KIB, "edgeplane RSS {rss} KiB");
    drop(watchers);
    Ok(())
}
