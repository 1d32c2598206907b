//! SSL gateways through real Envoy 1.40: `wss://` and HTTPS terminated by
//! Envoy with a VirtualService's `sslConfig.sslFiles`, SNI choosing the
//! filter chain, mTLS with `rootCa`, and route edits that keep an open
//! `wss://` socket (the Listener never changes for them).
//!
//! Certificates are made at test time (rcgen): a CA, a server certificate
//! for `localhost`, `mtls.localhost` and `127.0.0.1`, and a client
//! certificate; the clients are rustls with the CA as their only root.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

const UP: &str = "backend";

// === certificates ===

/// A throwaway PKI written as PEM files into its own temp dir.
struct Pki {
    dir: tempfile::TempDir,
    ca: CertificateDer<'static>,
    client_cert: CertificateDer<'static>,
    client_key: Vec<u8>,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().expect("tempdir for certificates");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "edgeplane test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate().expect("CA key");
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA certificate");

        let leaf = |names: &[&str], usage: ExtendedKeyUsagePurpose| {
            let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            let mut p = CertificateParams::new(names.clone()).expect("leaf params");
            p.distinguished_name.push(DnType::CommonName, &names[0]);
            p.extended_key_usages = vec![usage];
            let key = KeyPair::generate().expect("leaf key");
            let cert = p.signed_by(&key, &ca).expect("leaf certificate");
            (cert, key)
        };
        let (server, server_key) = leaf(
            &["localhost", "mtls.localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client, client_key) = leaf(&["client.test"], ExtendedKeyUsagePurpose::ClientAuth);

        let write = |name: &str, pem: String| {
            std::fs::write(dir.path().join(name), pem).expect("write PEM");
        };
        write("ca.crt", ca.pem());
        write("tls.crt", server.pem());
        write("tls.key", server_key.serialize_pem());
        Pki {
            ca: ca.der().clone(),
            client_cert: client.der().clone(),
            client_key: client_key.serialize_der(),
            dir,
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// A client that trusts only the test CA; with `client_cert`, it
    /// presents the test client certificate.
    fn client(&self, client_cert: bool) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone()).expect("add CA");
        let builder =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("TLS versions")
                .with_root_certificates(roots);
        let cfg = if client_cert {
            builder
                .with_client_auth_cert(
                    vec![self.client_cert.clone()],
                    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.client_key.clone())),
                )
                .expect("client certificate")
        } else {
            builder.with_no_client_auth()
        };
        Arc::new(cfg)
    }
}

// === manifests ===

/// An SSL Gateway on 127.0.0.1:`port`.
fn ssl_gateway(port: u16) -> String {
    format!(
        "apiVersion: gateway.solo.io/v1\nkind: Gateway\nmetadata:\n  name: gw-ssl\n  namespace: gloo-system\nspec:\n  bindAddress: 127.0.0.1\n  bindPort: {port}\n  ssl: true\n  httpGateway: {{}}\n"
    )
}

/// A VirtualService `name` with `domains`, the given `sslConfig` (YAML
/// flow) and routes (YAML list items, as `support::route` makes).
fn ssl_virtual_service(name: &str, domains: &str, ssl: &str, routes: &str) -> String {
    let routes: String = routes.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        "apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata:\n  name: {name}\n  namespace: gloo-system\nspec:\n  sslConfig: {ssl}\n  virtualHost:\n    domains: {domains}\n    routes:\n{routes}"
    )
}

fn ssl_files(pki: &Pki, root_ca: bool) -> String {
    let ca = if root_ca {
        format!(", rootCa: '{}'", pki.path("ca.crt"))
    } else {
        String::new()
    };
    format!(
        "sslFiles: {{tlsCert: '{}', tlsKey: '{}'{ca}}}",
        pki.path("tls.crt"),
        pki.path("tls.key")
    )
}

// === TLS clients ===

async fn tls_connect(
    port: u16,
    sni: &str,
    cfg: Arc<ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    let name = ServerName::try_from(sni.to_string())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    tokio::time::timeout(
        Duration::from_secs(10),
        TlsConnector::from(cfg).connect(name, tcp),
    )
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out"))?
}

/// An HTTPS GET with SNI `sni` and Host `host`; `None` when the TLS
/// connection or the response fails.
async fn https_get(
    port: u16,
    sni: &str,
    host: &str,
    path: &str,
    cfg: Arc<ClientConfig>,
) -> Option<(u16, String)> {
    let mut s = tls_connect(port, sni, cfg).await.ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut buf = Vec::new();
    // A peer that closes without close_notify still sent a whole response.
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    parse_response(&buf)
}

/// Opens `wss://<sni>:<port><path>`; the handshake must answer 101.
async fn wss_connect(
    port: u16,
    sni: &str,
    path: &str,
    cfg: Arc<ClientConfig>,
) -> WebSocketStream<TlsStream<TcpStream>> {
    let tls = tls_connect(port, sni, cfg).await.expect("TLS to Envoy");
    let url = format!("wss://{sni}:{port}{path}");
    let (ws, resp) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::client_async(url, tls),
    )
    .await
    .expect("websocket handshake timed out")
    .expect("websocket handshake over TLS");
    assert_eq!(resp.status().as_u16(), 101);
    ws
}

async fn echo_over<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>, text: &str) {
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

async fn wait_https(s: &Stack, sni: &str, path: &str, cfg: &Arc<ClientConfig>) -> String {
    eventually(&format!("envoy serves https://{sni}{path}"), || async {
        https_get(s.port, sni, sni, path, cfg.clone())
            .await
            .filter(|(code, _)| *code == 200)
            .map(|(_, body)| body)
    })
    .await
}

async fn no_rejections(s: &Stack) {
    assert_eq!(
        s.envoy
            .stat("listener_manager.lds.update_rejected")
            .await
            .unwrap_or(0),
        0,
        "{}",
        s.logs()
    );
    assert_eq!(
        s.envoy
            .stat(&s.rds_stat("update_rejected"))
            .await
            .unwrap_or(0),
        0,
        "{}",
        s.logs()
    );
}

fn manifest_files(port: u16, backend: u16, vs: String) -> Vec<(&'static str, String)> {
    vec![
        ("gateway.yaml", ssl_gateway(port)),
        ("upstream.yaml", upstream(UP, &[backend])),
        ("vs.yaml", vs),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_and_https_through_an_ssl_gateway_survive_route_edits() {
    let pki = Pki::new();
    let port = free_port();
    let be = Backend::start("b1").await;
    let bport = be.port;
    let ssl = format!("{{{}, sniDomains: [localhost]}}", ssl_files(&pki, false));
    let vs = |routes: &str| ssl_virtual_service("vs", "['*']", &ssl, routes);
    let s = Stack::start(
        port,
        be,
        &manifest_files(port, bport, vs(&route("/", UP, ""))),
    )
    .await;
    let cfg = pki.client(false);

    // Plain HTTPS through the listener reaches the backend.
    let body = wait_https(&s, "localhost", "/plain", &cfg).await;
    assert_eq!(body, "b1 GET /plain\n");
    no_rejections(&s).await;

    // wss:// upgrades (101) and echoes.
    let mut ws = wss_connect(port, "localhost", "/ws", cfg.clone()).await;
    echo_over(&mut ws, "hello over tls").await;
    assert_eq!(
        s.envoy
            .stat("http.http.downstream_cx_upgrades_active")
            .await,
        Some(1)
    );

    // A client without SNI matches no filter chain (the only one is for
    // `localhost`): Envoy closes the connection.
    assert!(
        https_get(port, "127.0.0.1", "localhost", "/plain", cfg.clone())
            .await
            .is_none(),
        "a connection without SNI must match no chain"
    );
    let no_match = format!("listener.127.0.0.1_{port}.no_filter_chain_match");
    eventually(
        "envoy counts the connection that matched no chain",
        || async { (s.envoy.stat(&no_match).await >= Some(1)).then_some(()) },
    )
    .await;

    // A route edit (new route to a new upstream, a timeout) goes by RDS
    // only: the listener is untouched and the open wss socket keeps going.
    let lds_before = s.envoy.stat("listener_manager.lds.update_success").await;
    let modified_before = s.envoy.stat("listener_manager.listener_modified").await;
    let be2 = Backend::start("b2").await;
    write_atomic(&s.dir, "upstream2.yaml", &upstream("backend2", &[be2.port]));
    write_atomic(
        &s.dir,
        "vs.yaml",
        &vs(&format!(
            "{}{}",
            route("/new", "backend2", "timeout: 7s\n"),
            route("/", UP, "timeout: 20s\n")
        )),
    );
    // Until RDS lands, `/new/thing` still matches `/` and reaches b1.
    eventually("the new route serves from backend2", || async {
        https_get(port, "localhost", "localhost", "/new/thing", cfg.clone())
            .await
            .filter(|r| *r == (200, "b2 GET /new/thing\n".to_string()))
    })
    .await;
    echo_over(&mut ws, "after the route edit").await;
    assert_eq!(
        s.envoy.stat("listener_manager.lds.update_success").await,
        lds_before,
        "{}",
        s.logs()
    );
    assert_eq!(
        s.envoy.stat("listener_manager.listener_modified").await,
        modified_before
    );
    assert_eq!(
        s.envoy
            .stat("http.http.downstream_cx_upgrades_active")
            .await,
        Some(1)
    );
    no_rejections(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_picks_the_chain_and_root_ca_requires_client_certificates() {
    let pki = Pki::new();
    let port = free_port();
    let be = Backend::start("b1").await;
    let bport = be.port;
    let open = ssl_virtual_service(
        "open",
        "['*']",
        &format!("{{{}, sniDomains: [localhost]}}", ssl_files(&pki, false)),
        &route("/", UP, ""),
    );
    let mtls = ssl_virtual_service(
        "mtls",
        "[mtls.localhost]",
        &format!(
            "{{{}, sniDomains: [mtls.localhost], alpnProtocols: [http/1.1], parameters: {{minimumProtocolVersion: TLSv1_2}}}}",
            ssl_files(&pki, true)
        ),
        &route("/", UP, ""),
    );
    let mut files = manifest_files(port, bport, open);
    files.push(("vs-mtls.yaml", mtls));
    let s = Stack::start(port, be, &files).await;
    let anonymous = pki.client(false);
    let with_cert = pki.client(true);

    assert_eq!(
        wait_https(&s, "localhost", "/a", &anonymous).await,
        "b1 GET /a\n"
    );
    // The mTLS chain answers only clients with a certificate from rootCa.
    assert_eq!(
        wait_https(&s, "mtls.localhost", "/b", &with_cert).await,
        "b1 GET /b\n"
    );
    assert_eq!(
        https_get(
            port,
            "mtls.localhost",
            "mtls.localhost",
            "/b",
            anonymous.clone()
        )
        .await,
        None,
        "{}",
        s.logs()
    );
    // Envoy counts it (the count may land just after the client saw the
    // connection fail).
    let no_cert = format!("listener.127.0.0.1_{port}.ssl.fail_verify_no_cert");
    eventually(
        "envoy counts the handshake without a client certificate",
        || async { (s.envoy.stat(&no_cert).await >= Some(1)).then_some(()) },
    )
    .await;
    let mut ws = wss_connect(port, "mtls.localhost", "/ws", with_cert.clone()).await;
    echo_over(&mut ws, "mutual").await;
    no_rejections(&s).await;
}
