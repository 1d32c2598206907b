//! Gloo `Secret`s served to real Envoy 1.40 over SDS on the ADS stream: a
//! VirtualService's `sslConfig.secretRef` terminates `wss://` and HTTPS
//! with the secret's certificate, and rewriting only the Secret file (a
//! certificate rotation) changes only the Secret resource: Envoy swaps the
//! certificate under the running listener (no LDS update, no drain), an
//! open `wss://` socket keeps echoing, and a new handshake sees the new
//! certificate.
//!
//! Certificates are made at test time (rcgen): a CA and two server
//! certificates for `localhost` (different keys and serials); the client
//! is rustls with the CA as its only root.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

const SECRET: &str = "tls_gloo-system";

/// A CA and two `localhost` certificates it signed, as (PEM chain, PEM
/// key, DER) each.
struct Pki {
    ca: CertificateDer<'static>,
    leaves: Vec<(String, String, CertificateDer<'static>)>,
}

impl Pki {
    fn new() -> Pki {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "edgeplane sds test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key"))
            .expect("CA certificate");
        let leaves = ["first", "second"]
            .into_iter()
            .map(|cn| {
                let mut p = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
                p.distinguished_name.push(DnType::CommonName, cn);
                let key = KeyPair::generate().expect("leaf key");
                let cert = p.signed_by(&key, &ca).expect("leaf certificate");
                (cert.pem(), key.serialize_pem(), cert.der().clone())
            })
            .collect();
        Pki {
            ca: ca.der().clone(),
            leaves,
        }
    }

    fn client(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone()).expect("add CA");
        Arc::new(
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("TLS versions")
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }

    /// Leaf `i` as a Secret in Gloo's file layout (flat: no `kind`).
    fn secret_file(&self, i: usize) -> String {
        let (cert, key, _) = &self.leaves[i];
        let block = |t: &str| -> String { t.lines().map(|l| format!("    {l}\n")).collect() };
        format!(
            "metadata:\n  name: tls\n  namespace: gloo-system\ntls:\n  certChain: |\n{}  privateKey: |\n{}",
            block(cert),
            block(key)
        )
    }
}

fn manifests(port: u16, backend: u16) -> Vec<(&'static str, String)> {
    vec![
        (
            "gateway.yaml",
            format!(
                "apiVersion: gateway.solo.io/v1\nkind: Gateway\nmetadata: {{name: gw-ssl, namespace: gloo-system}}\nspec: {{bindAddress: 127.0.0.1, bindPort: {port}, ssl: true, httpGateway: {{}}}}\n"
            ),
        ),
        ("upstream.yaml", upstream("backend", &[backend])),
        (
            "vs.yaml",
            format!(
                "apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata: {{name: vs, namespace: gloo-system}}\nspec:\n  sslConfig: {{secretRef: {{name: tls, namespace: gloo-system}}}}\n  virtualHost:\n    domains: ['*']\n    routes:\n{}",
                indent_lines(&route("/", "backend", ""), 4)
            ),
        ),
    ]
}

fn indent_lines(text: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    text.lines().map(|l| format!("{pad}{l}\n")).collect()
}

async fn tls_connect(port: u16, cfg: Arc<ClientConfig>) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    let name = ServerName::try_from("localhost").expect("server name");
    tokio::time::timeout(
        Duration::from_secs(10),
        TlsConnector::from(cfg).connect(name, tcp),
    )
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out"))?
}

/// A new TLS handshake's leaf certificate, and the answer to a GET over it.
async fn https_get(port: u16, cfg: Arc<ClientConfig>) -> Option<(Vec<u8>, u16, String)> {
    let mut s = tls_connect(port, cfg).await.ok()?;
    let leaf = s.get_ref().1.peer_certificates()?.first()?.to_vec();
    s.write_all(b"GET /plain HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    let (code, body) = parse_response(&buf)?;
    Some((leaf, code, body))
}

async fn echo_over(ws: &mut WebSocketStream<TlsStream<TcpStream>>, text: &str) {
    ws.send(Message::text(text)).await.expect("send on wss");
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("echo timed out")
            .expect("wss closed while waiting for echo")
            .expect("wss error while waiting for echo");
        match msg {
            Message::Text(t) => {
                assert_eq!(t.as_str(), text, "echo mismatch");
                return;
            }
            Message::Close(c) => panic!("wss closed: {c:?}"),
            _ => {}
        }
    }
}

/// The secrets Envoy has in force, by name, with the certificate chain it
/// shows (Envoy redacts the key itself).
fn active_secrets(dump: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for c in dump["configs"].as_array().into_iter().flatten() {
        if !c["@type"]
            .as_str()
            .unwrap_or("")
            .ends_with("SecretsConfigDump")
        {
            continue;
        }
        for s in c["dynamic_active_secrets"].as_array().into_iter().flatten() {
            let chain = s["secret"]["tls_certificate"]["certificate_chain"]["inline_string"]
                .as_str()
                .unwrap_or("")
                .to_string();
            out.push((s["name"].as_str().unwrap_or("").to_string(), chain));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_a_secret_swaps_the_certificate_without_draining_the_listener() {
    let pki = Pki::new();
    let port = free_port();
    let be = Backend::start("b1").await;
    let bport = be.port;
    let files = manifests(port, bport);
    let (tmp, dir) = manifests_dir(&files);
    let secret_dir = dir.join("secrets").join("gloo-system");
    std::fs::create_dir_all(&secret_dir).expect("mkdir secrets/gloo-system");
    write_atomic(&secret_dir, "tls.yaml", &pki.secret_file(0));
    let cp = ControlPlane::start(&dir, 0, tmp.path()).await;
    let envoy = Envoy::start(cp.xds_port, "test-node", tmp.path()).await;
    cp.wait_connected_in_mode("test-node").await;
    let logs = || cp.logs_with(&envoy.log_text());
    let cfg = pki.client();

    // HTTPS with the first certificate: the listener left warming only
    // once its secret came over SDS.
    let (leaf, code, body) = eventually("envoy serves https with the secret", || async {
        https_get(port, cfg.clone()).await
    })
    .await;
    assert_eq!((code, body.as_str()), (200, "b1 GET /plain\n"));
    assert_eq!(leaf, pki.leaves[0].2.to_vec(), "the first certificate");
    let secrets = active_secrets(&envoy.config_dump().await);
    assert_eq!(
        secrets.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        [SECRET],
        "{}",
        logs()
    );

    // An open wss:// socket.
    let tls = tls_connect(port, cfg.clone()).await.expect("TLS to Envoy");
    let (mut ws, resp) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::client_async(format!("wss://localhost:{port}/ws"), tls),
    )
    .await
    .expect("websocket handshake timed out")
    .expect("websocket handshake over TLS");
    assert_eq!(resp.status().as_u16(), 101);
    echo_over(&mut ws, "before the rotation").await;

    let stat = |name: &'static str| {
        let envoy = &envoy;
        async move { envoy.stat(name).await.unwrap_or(0) }
    };
    let lds_before = stat("listener_manager.lds.update_success").await;
    let modified_before = stat("listener_manager.listener_modified").await;
    let draining_before = stat("listener_manager.total_listeners_draining").await;
    let sds_stat = format!("sds.{SECRET}.update_success");
    let sds_before = envoy.stat(&sds_stat).await.unwrap_or(0);

    // Rotate: only the Secret file changes.
    write_atomic(&secret_dir, "tls.yaml", &pki.secret_file(1));
    let new_leaf = pki.leaves[1].2.to_vec();
    eventually("a new handshake sees the second certificate", || async {
        https_get(port, cfg.clone())
            .await
            .filter(|(leaf, code, _)| *leaf == new_leaf && *code == 200)
    })
    .await;
    let secrets = active_secrets(&envoy.config_dump().await);
    assert_eq!(secrets.len(), 1);
    assert_eq!(
        secrets[0].1.trim(),
        pki.leaves[1].0.trim(),
        "Envoy holds the new chain"
    );

    // The open socket still echoes; no listener update and no drain.
    echo_over(&mut ws, "after the rotation").await;
    assert_eq!(
        stat("listener_manager.lds.update_success").await,
        lds_before,
        "no LDS update\n{}",
        logs()
    );
    assert_eq!(
        stat("listener_manager.listener_modified").await,
        modified_before
    );
    assert_eq!(
        stat("listener_manager.total_listeners_draining").await,
        draining_before
    );
    assert_eq!(
        envoy.stat("http.http.downstream_cx_upgrades_active").await,
        Some(1)
    );
    assert!(
        envoy.stat(&sds_stat).await.unwrap_or(0) > sds_before,
        "{sds_stat} moved\n{}",
        logs()
    );
    assert_eq!(
        stat("listener_manager.lds.update_rejected").await,
        0,
        "{}",
        logs()
    );

    // edgeplane saw the Secret type acked, never NACKed, and shows no key.
    let status = eventually("edgeplane records the SDS ACK", || async {
        let st = cp.status().await;
        let node = status_node(&st, "test-node")?.clone();
        let sds = node["types"]
            .as_array()?
            .iter()
            .find(|t| {
                t["typeUrl"]
                    .as_str()
                    .unwrap_or("")
                    .ends_with("tls.v3.Secret")
            })?
            .clone();
        (!sds["ackedVersion"].as_str().unwrap_or("").is_empty()).then_some(sds)
    })
    .await;
    assert_eq!(status["nackMessage"].as_str().unwrap_or(""), "");
    let (code, dump) = cp.admin_get("/config_dump").await.expect("config_dump");
    assert_eq!(code, 200);
    assert!(dump.contains(SECRET), "{dump}");
    assert!(
        !dump.contains("PRIVATE KEY"),
        "key material in /config_dump"
    );
    let (_, st) = cp.admin_get("/status").await.expect("status");
    assert!(!st.contains("PRIVATE KEY"), "key material in /status");
}

/// A broken edit of the Secret keeps the last good certificate serving;
/// the Secret's status carries the error, without the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_secret_keeps_serving_the_last_good_certificate() {
    let pki = Pki::new();
    let port = free_port();
    let be = Backend::start("b1").await;
    let bport = be.port;
    let (tmp, dir) = manifests_dir(&manifests(port, bport));
    let secret_dir = dir.join("secrets").join("gloo-system");
    std::fs::create_dir_all(&secret_dir).expect("mkdir secrets/gloo-system");
    write_atomic(&secret_dir, "tls.yaml", &pki.secret_file(0));
    let cp = ControlPlane::start(&dir, 0, tmp.path()).await;
    let envoy = Envoy::start(cp.xds_port, "test-node", tmp.path()).await;
    cp.wait_connected_in_mode("test-node").await;
    let cfg = pki.client();
    eventually("envoy serves https with the secret", || async {
        https_get(port, cfg.clone()).await
    })
    .await;

    // The second key with the first certificate: not a pair.
    let (cert, _, _) = &pki.leaves[0];
    let (_, key, _) = &pki.leaves[1];
    let block = |t: &str| -> String { t.lines().map(|l| format!("    {l}\n")).collect() };
    let loads = cp.loads().await;
    write_atomic(
        &secret_dir,
        "tls.yaml",
        &format!(
            "metadata:\n  name: tls\n  namespace: gloo-system\ntls:\n  certChain: |\n{}  privateKey: |\n{}",
            block(cert),
            block(key)
        ),
    );
    let st = cp.wait_load_after(loads).await;
    let secret = status_entry(&st, "resources", "name", "tls")
        .cloned()
        .unwrap_or_else(|| panic!("no status for the secret: {st}"));
    let text = secret.to_string();
    assert!(text.contains("is not a valid TLS secret"), "{text}");
    assert!(text.contains("Rejected"), "{text}");
    assert!(!st.to_string().contains("PRIVATE KEY"), "key in /status");
    // Still the first certificate, still serving.
    let (leaf, code, _) = https_get(port, cfg.clone()).await.expect("https");
    assert_eq!((leaf, code), (pki.leaves[0].2.to_vec(), 200));
    drop(envoy);
}
