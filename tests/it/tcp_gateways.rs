//! `tcpGateway` and `hybridGateway` through real Envoy 1.40, loopback only.
//!
//! - Bytes in = bytes out through a tcpGateway host (Gloo's tcp plugin:
//!   `tcp_proxy` to the host's Upstream, `projects/gloo/pkg/plugins/tcp/
//!   plugin.go`), and a live edit of the host's upstream moves new
//!   connections without restarting Envoy.
//! - TLS passthrough: hosts whose `sslConfig` has only `sniDomains` are
//!   matched by SNI and proxy the TLS bytes untouched (Gloo's
//!   `computeTcpFilterChain`), so the client sees the certificate of the
//!   backend its SNI names.
//! - A hybrid gateway (`projects/gateway/pkg/translator/
//!   hybrid_translator.go`): plain HTTP from 127.0.0.1/32 reaches the
//!   matched httpGateway's routes, while TLS with the TCP matcher's SNI is
//!   passed through (Envoy matches server names before source addresses).
//!
//! Every test ends with zero LDS/CDS rejections.

use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::support::*;

/// How long one connection attempt may take before it counts as failed.
const ATTEMPT: Duration = Duration::from_secs(3);

/// A loopback TCP server that answers each read with `<tag>:` and the
/// bytes read, so a test can tell which server it reached.
struct TagEcho {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl TagEcho {
    async fn start(tag: &'static str) -> TagEcho {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
        let port = l.local_addr().expect("echo addr").port();
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        let mut out = format!("{tag}:").into_bytes();
                        out.extend_from_slice(&buf[..n]);
                        if s.write_all(&out).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        TagEcho { port, task }
    }
}

impl Drop for TagEcho {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Sends `msg` to 127.0.0.1:`port` and returns the reply once it holds at
/// least `msg.len()` bytes; `None` on any failure or after `ATTEMPT`.
async fn tcp_roundtrip(port: u16, msg: &[u8]) -> Option<Vec<u8>> {
    tokio::time::timeout(ATTEMPT, async {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        s.write_all(msg).await.ok()?;
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while got.len() < msg.len() {
            let n = s.read(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            got.extend_from_slice(&buf[..n]);
        }
        // The tag comes first: read until the whole message is there.
        while !got.ends_with(msg) {
            let n = s.read(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            got.extend_from_slice(&buf[..n]);
        }
        Some(got)
    })
    .await
    .ok()
    .flatten()
}

/// A test CA and, per name, a TLS backend whose certificate names it and
/// which answers each read with its name.
struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
}

struct TlsBackend {
    port: u16,
    cert: CertificateDer<'static>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Pki {
    fn new() -> Pki {
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(DnType::CommonName, "edgeplane tcp test CA");
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("CA key");
        Pki {
            ca: CertifiedIssuer::self_signed(p, key).expect("CA certificate"),
        }
    }

    async fn backend(&self, name: &'static str) -> TlsBackend {
        let mut p = CertificateParams::new(vec![name.to_string()]).expect("leaf params");
        p.distinguished_name.push(DnType::CommonName, name);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().expect("leaf key");
        let cert = p.signed_by(&key, &self.ca).expect("leaf certificate");
        let der = cert.der().clone();
        let cfg = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![der.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .expect("server certificate");
        let acceptor = TlsAcceptor::from(Arc::new(cfg));
        let l = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind TLS backend");
        let port = l.local_addr().expect("TLS backend addr").port();
        let task = tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(s).await else {
                        return;
                    };
                    let mut buf = [0u8; 64];
                    if matches!(tls.read(&mut buf).await, Ok(n) if n > 0) {
                        let _ = tls.write_all(name.as_bytes()).await;
                        let _ = tls.shutdown().await;
                    }
                });
            }
        });
        TlsBackend {
            port,
            cert: der,
            task,
        }
    }

    fn client(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.der().clone()).expect("add CA");
        Arc::new(
            ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .expect("TLS versions")
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }
}

/// A TLS connection to 127.0.0.1:`port` with `sni`: the certificate the
/// server presented and what it answered to `hello`.
async fn tls_hello(
    port: u16,
    sni: &'static str,
    cfg: Arc<ClientConfig>,
) -> Option<(CertificateDer<'static>, String)> {
    tokio::time::timeout(ATTEMPT, async {
        let tcp = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        let name = ServerName::try_from(sni).ok()?;
        let mut tls = TlsConnector::from(cfg).connect(name, tcp).await.ok()?;
        let cert = tls.get_ref().1.peer_certificates()?.first()?.clone();
        tls.write_all(b"hello").await.ok()?;
        let mut out = Vec::new();
        let _ = tls.read_to_end(&mut out).await;
        Some((cert, String::from_utf8_lossy(&out).into_owned()))
    })
    .await
    .ok()
    .flatten()
}

fn tcp_gateway(port: u16, hosts: &str) -> String {
    format!(
        "apiVersion: gateway.solo.io/v1\nkind: Gateway\nmetadata: {{name: tcp, namespace: gloo-system}}\nspec:\n  bindAddress: 127.0.0.1\n  bindPort: {port}\n  tcpGateway:\n    tcpHosts:\n{hosts}"
    )
}

async fn start(port: u16, files: &[(&str, String)]) -> Stack {
    Stack::start(port, Backend::start("b1").await, files).await
}

async fn no_rejections(s: &Stack) {
    for stat in [
        "listener_manager.lds.update_rejected",
        "cluster_manager.cds.update_rejected",
    ] {
        assert_eq!(
            s.envoy.stat(stat).await.unwrap_or(0),
            0,
            "{stat}\n{}",
            s.logs()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_echo_then_live_upstream_edit() {
    let a = TagEcho::start("a").await;
    let b = TagEcho::start("b").await;
    let port = free_port();
    let host = |up: &str| {
        format!("    - name: echo\n      destination: {{single: {{upstream: {{name: {up}}}}}}}\n")
    };
    let s = start(
        port,
        &[
            ("gw.yaml", tcp_gateway(port, &host("echo-a"))),
            ("a.yaml", upstream("echo-a", &[a.port])),
            ("b.yaml", upstream("echo-b", &[b.port])),
        ],
    )
    .await;
    let got = eventually("bytes echo through the tcpGateway", || {
        tcp_roundtrip(port, b"hello over tcp")
    })
    .await;
    assert_eq!(got, b"a:hello over tcp", "{}", s.logs());
    // The listener's cluster is `<name>_<namespace>` and its stat prefix
    // Gloo's `tcp`.
    let dump = s.envoy.config_dump().await.to_string();
    assert!(dump.contains("\"stat_prefix\":\"tcp\""), "{dump}");
    assert!(
        dump.contains("\"cluster\":\"echo-a_gloo-system\""),
        "{dump}"
    );

    // Live edit: the host now goes to echo-b; the same Envoy picks it up.
    write_atomic(&s.dir, "gw.yaml", &tcp_gateway(port, &host("echo-b")));
    eventually("new connections reach echo-b", || async {
        tcp_roundtrip(port, b"after edit")
            .await
            .filter(|g| g.starts_with(b"b:"))
    })
    .await;
    no_rejections(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_passthrough_routes_by_sni() {
    let pki = Pki::new();
    let a = pki.backend("a.test").await;
    let b = pki.backend("b.test").await;
    let port = free_port();
    let hosts = "    - name: a\n      sslConfig: {sniDomains: [a.test]}\n      destination: {single: {upstream: {name: tls-a}}}\n    - name: b\n      sslConfig: {sniDomains: [b.test]}\n      destination: {single: {upstream: {name: tls-b}}}\n";
    let s = start(
        port,
        &[
            ("gw.yaml", tcp_gateway(port, hosts)),
            ("a.yaml", upstream("tls-a", &[a.port])),
            ("b.yaml", upstream("tls-b", &[b.port])),
        ],
    )
    .await;
    let cfg = pki.client();
    for (sni, backend) in [("a.test", &a), ("b.test", &b)] {
        let (cert, said) = eventually(&format!("TLS with SNI {sni} passes through"), || {
            tls_hello(port, sni, cfg.clone())
        })
        .await;
        assert_eq!(
            cert, backend.cert,
            "SNI {sni}: not the backend's certificate"
        );
        assert_eq!(said, sni, "{}", s.logs());
    }
    // No chain matches another SNI: Envoy closes the connection.
    assert!(tls_hello(port, "c.test", cfg.clone()).await.is_none());
    no_rejections(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_http_by_source_tls_by_sni() {
    let pki = Pki::new();
    let tls = pki.backend("tls.test").await;
    let port = free_port();
    let backend = Backend::start("b1").await;
    let gw = format!(
        "apiVersion: gateway.solo.io/v1\nkind: Gateway\nmetadata: {{name: hybrid, namespace: gloo-system}}\nspec:\n  bindAddress: 127.0.0.1\n  bindPort: {port}\n  hybridGateway:\n    matchedGateways:\n    - matcher:\n        sourcePrefixRanges: [{{addressPrefix: 127.0.0.1, prefixLen: 32}}]\n      httpGateway: {{}}\n    - matcher:\n        sslConfig: {{sniDomains: [tls.test]}}\n      tcpGateway:\n        tcpHosts:\n        - name: tls\n          destination: {{single: {{upstream: {{name: tls-up}}}}}}\n"
    );
    let files = [
        ("gw.yaml", gw),
        ("up.yaml", upstream("backend", &[backend.port])),
        ("tls.yaml", upstream("tls-up", &[tls.port])),
        ("vs.yaml", virtual_service(&route("/plain", "backend", ""))),
    ];
    let s = Stack::start(port, backend, &files).await;
    s.envoy.wait_serving(port, "/plain").await;
    let cfg = pki.client();
    let (cert, said) = eventually("TLS with the TCP matcher's SNI passes through", || {
        tls_hello(port, "tls.test", cfg.clone())
    })
    .await;
    assert_eq!(cert, tls.cert);
    assert_eq!(said, "tls.test");
    // The HTTP part's routes are named after Gloo's matcher hash.
    let dump = s.envoy.config_dump().await.to_string();
    assert!(
        dump.contains(&format!("listener-127.0.0.1-{port}-routes-")),
        "{dump}"
    );
    no_rejections(&s).await;
}
