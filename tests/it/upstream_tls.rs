//! Upstream `sslConfig`, `httpProxyHostname` and a route to a missing
//! UpstreamGroup through real Envoy 1.40, all on loopback.
//!
//! - `sslConfig` with `rootCa`, `sni` and `verifySubjectAltName`: Envoy
//!   verifies a TLS backend (tokio-rustls, certificate from a CA made here
//!   by rcgen) and sends the SNI, which the backend records
//!   (`projects/gloo/pkg/utils/ssl.go`, `ResolveUpstreamSslConfig`).
//! - A SAN the certificate does not have: the handshake fails, Envoy
//!   answers 503 and counts `ssl.fail_verify_san`.
//! - `httpProxyHostname`: Gloo's tunneling plugin
//!   (`projects/gloo/pkg/plugins/tunneling/plugin.go`) sends the route's
//!   bytes through the self listener to a tiny HTTP CONNECT proxy run here,
//!   which must see `CONNECT <hostname>` and the `httpConnectHeaders`; the
//!   `sslConfig` TLS runs end to end inside the tunnel.
//! - A route to a missing UpstreamGroup: a warning in `/status` (Gloo's
//!   `NewUpstreamGroupNotFoundErr` is a warning), the route answered 503.
//!
//! - `sslConfig.secretRef`: Envoy presents the Secret's client certificate
//!   to a backend that requires one and verifies the backend against the
//!   Secret's `rootCa`, both over SDS; a new certificate in the Secret is
//!   used by the next connection while the cluster stays as it was.
//!
//! Envoy rejects nothing: no CDS/LDS `update_rejected`, no NACK recorded.
//! Names carry the Gateway's port: the tunnel listener binds an abstract
//! unix socket named after its cluster, shared by every process on the host.

use std::sync::{Arc, Mutex};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::LazyConfigAcceptor;

use crate::support::*;

/// The name on the backend's certificate, and the SNI asked for.
const BACKEND_NAME: &str = "backend.example";

/// A self-signed test CA named `cn`.
fn test_ca(cn: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, cn);
    CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key"))
        .expect("CA certificate")
}

/// The backend's certificate for `BACKEND_NAME`, signed by `ca`, and its key.
fn backend_cert(
    ca: &CertifiedIssuer<'static, KeyPair>,
) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let mut leaf = CertificateParams::new(vec![BACKEND_NAME.to_string()]).expect("leaf");
    leaf.distinguished_name
        .push(DnType::CommonName, BACKEND_NAME);
    let key = KeyPair::generate().expect("leaf key");
    let cert = leaf.signed_by(&key, ca).expect("leaf certificate");
    (
        CertificateDer::from(cert.der().to_vec()),
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
}

/// A CA (written to `ca.crt` in a temp dir) and a server certificate for
/// `BACKEND_NAME` signed by it.
struct Pki {
    dir: tempfile::TempDir,
    server: ServerConfig,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().expect("tempdir for certificates");
        let ca = test_ca("edgeplane upstream test CA");
        let (cert, key) = backend_cert(&ca);
        std::fs::write(dir.path().join("ca.crt"), ca.pem()).expect("write CA");
        let server =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("TLS versions")
                .with_no_client_auth()
                .with_single_cert(vec![cert], key)
                .expect("server certificate");
        Pki { dir, server }
    }

    fn ca_path(&self) -> String {
        self.dir.path().join("ca.crt").display().to_string()
    }
}

/// Reads an HTTP/1 request or CONNECT head (up to the blank line); returns
/// it and whatever came after it.
async fn read_head<S: AsyncReadExt + Unpin>(s: &mut S) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Some((String::from_utf8_lossy(&buf).into_owned(), rest));
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A TLS backend on loopback: records each handshake's SNI and answers
/// every request `200 tls backend`.
struct TlsBackend {
    port: u16,
    snis: Arc<Mutex<Vec<Option<String>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl TlsBackend {
    async fn start(config: ServerConfig) -> TlsBackend {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind backend");
        let port = listener.local_addr().expect("backend addr").port();
        let snis = Arc::new(Mutex::new(Vec::new()));
        let config = Arc::new(config);
        let seen = snis.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (config, seen) = (config.clone(), seen.clone());
                tokio::spawn(async move {
                    let acceptor =
                        LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp);
                    let Ok(start) = acceptor.await else { return };
                    let sni = start.client_hello().server_name().map(str::to_string);
                    if let Ok(mut seen) = seen.lock() {
                        seen.push(sni);
                    }
                    let Ok(mut tls) = start.into_stream(config).await else {
                        return;
                    };
                    while let Some((_, _)) = read_head(&mut tls).await {
                        let body = "tls backend\n";
                        let resp = format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\ncontent-type: text/plain\r\n\r\n{body}",
                            body.len()
                        );
                        if tls.write_all(resp.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        TlsBackend { port, snis, task }
    }

    fn snis(&self) -> Vec<Option<String>> {
        self.snis.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for TlsBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An HTTP CONNECT proxy on loopback: records each CONNECT head, then
/// joins the client to `127.0.0.1:<port of the CONNECT target>`.
struct ConnectProxy {
    port: u16,
    heads: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl ConnectProxy {
    async fn start() -> ConnectProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = heads.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    let Some((head, rest)) = read_head(&mut client).await else {
                        return;
                    };
                    if let Ok(mut seen) = seen.lock() {
                        seen.push(head.clone());
                    }
                    let target_port = head
                        .lines()
                        .next()
                        .and_then(|l| l.strip_prefix("CONNECT "))
                        .and_then(|l| l.split_whitespace().next())
                        .and_then(|t| t.rsplit_once(':'))
                        .and_then(|(_, p)| p.parse::<u16>().ok());
                    let Some(target_port) = target_port else {
                        let _ = client
                            .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                            .await;
                        return;
                    };
                    let Ok(mut upstream) = TcpStream::connect(("127.0.0.1", target_port)).await
                    else {
                        let _ = client
                            .write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n")
                            .await;
                        return;
                    };
                    if client.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.is_err()
                        || upstream.write_all(&rest).await.is_err()
                    {
                        return;
                    }
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                });
            }
        });
        ConnectProxy { port, heads, task }
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().map(|h| h.clone()).unwrap_or_default()
    }
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A static Upstream `name` on 127.0.0.1:`port`, TLS with the test CA,
/// `sni` and `san` to verify; `extra` is more spec (YAML, 2-space indent).
fn tls_upstream(name: &str, port: u16, ca: &str, san: &str, extra: &str) -> String {
    format!(
        "apiVersion: gloo.solo.io/v1
kind: Upstream
metadata:
  name: {name}
  namespace: gloo-system
spec:
  static:
    autoSniRewrite: false
    hosts:
    - addr: 127.0.0.1
      port: {port}
  sslConfig:
    sni: {BACKEND_NAME}
    sslFiles:
      rootCa: '{ca}'
    verifySubjectAltName: [{san}]
{extra}"
    )
}

fn dumped<'a>(dump: &'a Value, section: &str, list: &str) -> Vec<&'a Value> {
    dump["configs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["@type"].as_str().unwrap_or("").ends_with(section))
        .flat_map(|c| c[list].as_array().into_iter().flatten())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_tls_sni_san_tunnel_and_missing_group_through_envoy() {
    let pki = Pki::new();
    let backend = TlsBackend::start(pki.server.clone()).await;
    let proxy = ConnectProxy::start().await;
    let port = free_port();
    let ca = pki.ca_path();
    // Unique per run: the tunnel's abstract socket is host-wide.
    let (tls, wrong, tunnel) = (
        format!("tls-{port}"),
        format!("wrong-san-{port}"),
        format!("tunnel-{port}"),
    );
    let tunnel_target = format!("{BACKEND_NAME}:{}", backend.port);
    let routes = format!(
        "{}{}{}- matchers:\n  - prefix: /group\n  routeAction:\n    upstreamGroup:\n      name: missing\n      namespace: gloo-system\n",
        route("/tls", &tls, ""),
        route("/wrong", &wrong, ""),
        route("/tunnel", &tunnel, ""),
    );
    let files = vec![
        ("gateway.yaml", gateway(port, "")),
        (
            "tls.yaml",
            tls_upstream(&tls, backend.port, &ca, BACKEND_NAME, ""),
        ),
        (
            "wrong.yaml",
            tls_upstream(&wrong, backend.port, &ca, "someone-else.example", ""),
        ),
        (
            "tunnel.yaml",
            tls_upstream(
                &tunnel,
                proxy.port,
                &ca,
                BACKEND_NAME,
                &format!(
                    "  httpProxyHostname: '{tunnel_target}'\n  httpConnectHeaders:\n  - key: x-tunnel-token\n    value: t0k3n\n"
                ),
            ),
        ),
        ("vs.yaml", virtual_service(&routes)),
    ];
    let s = Stack::start(port, Backend::start("unused").await, &files).await;

    // sslConfig: verified against rootCa, with the SNI.
    let body = s.envoy.wait_serving(port, "/tls").await;
    assert_eq!(body, "tls backend\n", "{}", s.logs());
    assert!(
        backend.snis().contains(&Some(BACKEND_NAME.to_string())),
        "backend saw SNIs {:?}\n{}",
        backend.snis(),
        s.logs()
    );

    // A SAN the certificate lacks: no connection, 503, counted by Envoy.
    assert_eq!(
        http_get(port, "/wrong").await.map(|(code, _)| code),
        Some(503),
        "{}",
        s.logs()
    );
    let stat = format!("cluster.{wrong}_gloo-system.ssl.fail_verify_san");
    eventually(&format!("{stat} counts the failure"), || async {
        s.envoy.stat(&stat).await.filter(|n| *n >= 1)
    })
    .await;

    // httpProxyHostname: through the CONNECT proxy, TLS inside the tunnel.
    let snis_before = backend.snis().len();
    let body = s.envoy.wait_serving(port, "/tunnel").await;
    assert_eq!(body, "tls backend\n", "{}", s.logs());
    let heads = proxy.heads();
    let head = heads
        .iter()
        .find(|h| h.starts_with(&format!("CONNECT {tunnel_target} HTTP/1.1\r\n")))
        .unwrap_or_else(|| panic!("proxy saw {heads:?}\n{}", s.logs()));
    assert!(
        head.to_ascii_lowercase()
            .contains("\r\nx-tunnel-token: t0k3n\r\n"),
        "{head}"
    );
    assert!(
        backend.snis()[snis_before..].contains(&Some(BACKEND_NAME.to_string())),
        "the tunnelled TLS carries the SNI: {:?}",
        backend.snis()
    );

    // The route to the missing UpstreamGroup: kept, answered 503.
    assert_eq!(
        http_get(port, "/group").await.map(|(code, _)| code),
        Some(503),
        "{}",
        s.logs()
    );
    let status = s.cp.status().await;
    let warning = status["diagnostics"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d["message"] == "*v1.UpstreamGroup { gloo-system.missing } not found")
        .unwrap_or_else(|| panic!("no UpstreamGroup warning in /status: {status}"));
    assert_eq!(warning["severity"], "warning", "{warning}");
    assert_eq!(warning["kind"], "VirtualService", "{warning}");
    assert!(warning["line"].as_u64().is_some_and(|l| l > 0), "{warning}");

    // Envoy has Gloo's tunnel resources and rejected nothing.
    let dump = s.envoy.config_dump().await;
    let listeners: Vec<&str> = dumped(&dump, "ListenersConfigDump", "dynamic_listeners")
        .into_iter()
        .filter_map(|l| l["name"].as_str())
        .collect();
    let self_listener = format!("solo_io_generated_self_listener_{tunnel}_gloo-system");
    assert!(listeners.contains(&self_listener.as_str()), "{listeners:?}");
    let clusters: Vec<&str> = dumped(&dump, "ClustersConfigDump", "dynamic_active_clusters")
        .into_iter()
        .filter_map(|c| c["cluster"]["name"].as_str())
        .collect();
    for name in [
        format!("{tunnel}_gloo-system"),
        format!("{tunnel}_gloo-system_original"),
        format!("{tls}_gloo-system"),
    ] {
        assert!(clusters.contains(&name.as_str()), "{name}: {clusters:?}");
    }
    for stat in [
        "cluster_manager.cds.update_rejected",
        "listener_manager.lds.update_rejected",
    ] {
        assert_eq!(
            s.envoy.stat(stat).await.unwrap_or(0),
            0,
            "{stat}\n{}",
            s.logs()
        );
    }
    for n in status["nodes"].as_array().into_iter().flatten() {
        for t in n["types"].as_array().into_iter().flatten() {
            assert_eq!(
                t["nackMessage"].as_str().unwrap_or(""),
                "",
                "{} NACKed: {status}",
                t["typeUrl"]
            );
        }
    }
}

/// A client certificate for `cn`, signed by the test CA, as PEM.
fn client_cert(ca: &CertifiedIssuer<'static, KeyPair>, cn: &str) -> (String, String, Vec<u8>) {
    let mut params = CertificateParams::new(vec![format!("{cn}.client.example")]).expect("params");
    params.distinguished_name.push(DnType::CommonName, cn);
    let key = KeyPair::generate().expect("client key");
    let cert = params.signed_by(&key, ca).expect("client certificate");
    (cert.pem(), key.serialize_pem(), cert.der().to_vec())
}

/// A gloo `Secret` with a client certificate and the CA to verify the
/// backend with.
fn client_secret(name: &str, cert: &str, key: &str, ca: &str) -> String {
    let block = |t: &str| -> String { t.lines().map(|l| format!("    {l}\n")).collect() };
    format!(
        "apiVersion: gloo.solo.io/v1\nkind: Secret\nmetadata: {{name: {name}, namespace: gloo-system}}\ntls:\n  certChain: |\n{}  privateKey: |\n{}  rootCa: |\n{}",
        block(cert),
        block(key),
        block(ca)
    )
}

/// A backend that requires a client certificate signed by the test CA,
/// records the one presented, answers one request and closes (so every
/// request is a new connection and a new handshake).
struct MtlsBackend {
    port: u16,
    seen: Arc<Mutex<Vec<Vec<u8>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl MtlsBackend {
    async fn start(config: ServerConfig) -> MtlsBackend {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind backend");
        let port = listener.local_addr().expect("backend addr").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let record = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, record) = (acceptor.clone(), record.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let leaf = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .map(|c| c.as_ref().to_vec());
                    if let (Some(leaf), Ok(mut r)) = (leaf, record.lock()) {
                        r.push(leaf);
                    }
                    if read_head(&mut tls).await.is_some() {
                        let body = "mtls backend\n";
                        let resp = format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = tls.write_all(resp.as_bytes()).await;
                        let _ = tls.shutdown().await;
                    }
                });
            }
        });
        MtlsBackend { port, seen, task }
    }

    fn last(&self) -> Option<Vec<u8>> {
        self.seen.lock().ok().and_then(|s| s.last().cloned())
    }
}

impl Drop for MtlsBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_secret_ref_presents_and_rotates_the_client_certificate_over_sds() {
    let ca = test_ca("edgeplane upstream mTLS test CA");
    let (server_cert, server_key) = backend_cert(&ca);
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca.der().to_vec()))
        .expect("CA into the backend's roots");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .expect("client verifier");
    let server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![server_cert], server_key)
        .expect("server certificate");
    let backend = MtlsBackend::start(server).await;

    let port = free_port();
    let name = format!("mtls-{port}");
    let (cert1, key1, der1) = client_cert(&ca, "one");
    let upstream = format!(
        "apiVersion: gloo.solo.io/v1
kind: Upstream
metadata:
  name: {name}
  namespace: gloo-system
spec:
  static:
    autoSniRewrite: false
    hosts:
    - addr: 127.0.0.1
      port: {}
  sslConfig:
    sni: {BACKEND_NAME}
    secretRef: {{name: client, namespace: gloo-system}}
    verifySubjectAltName: [{BACKEND_NAME}]
",
        backend.port
    );
    let files = vec![
        ("gateway.yaml", gateway(port, "")),
        ("upstream.yaml", upstream),
        (
            "secret.yaml",
            client_secret("client", &cert1, &key1, &ca.pem()),
        ),
        ("vs.yaml", virtual_service(&route("/mtls", &name, ""))),
    ];
    let s = Stack::start(port, Backend::start("unused").await, &files).await;

    // The backend accepts only a certificate from the CA: a 200 proves
    // Envoy presented the Secret's, and verified the backend with its CA.
    let body = s.envoy.wait_serving(port, "/mtls").await;
    assert_eq!(body, "mtls backend\n", "{}", s.logs());
    assert_eq!(
        backend.last(),
        Some(der1),
        "the Secret's certificate was presented"
    );

    let modified = s
        .envoy
        .stat("cluster_manager.cluster_modified")
        .await
        .unwrap_or(0);
    let secret_updates = s
        .envoy
        .stat("sds.client_gloo-system.update_success")
        .await
        .unwrap_or(0);
    assert!(
        secret_updates >= 1,
        "the certificate came over SDS\n{}",
        s.logs()
    );

    // Rotation: a new certificate in the Secret.
    let (cert2, key2, der2) = client_cert(&ca, "two");
    let loads = s.cp.loads().await;
    write_atomic(
        &s.dir,
        "secret.yaml",
        &client_secret("client", &cert2, &key2, &ca.pem()),
    );
    s.cp.wait_load_after(loads).await;
    eventually(
        "the next connection presents the new certificate",
        || async {
            let served = http_get(port, "/mtls").await;
            (served.map(|(c, _)| c) == Some(200) && backend.last().as_ref() == Some(&der2))
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        s.envoy
            .stat("cluster_manager.cluster_modified")
            .await
            .unwrap_or(0),
        modified,
        "the cluster was not replaced by the rotation\n{}",
        s.logs()
    );
    assert!(
        s.envoy
            .stat("sds.client_gloo-system.update_success")
            .await
            .unwrap_or(0)
            > secret_updates,
        "the rotation came over SDS"
    );
    for stat in [
        "cluster_manager.cds.update_rejected",
        "listener_manager.lds.update_rejected",
    ] {
        assert_eq!(
            s.envoy.stat(stat).await.unwrap_or(0),
            0,
            "{stat}\n{}",
            s.logs()
        );
    }
}
