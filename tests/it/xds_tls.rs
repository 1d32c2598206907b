//! The xDS port over TLS and mutual TLS, with real Envoy 1.40: an Envoy
//! whose bootstrap (`edgeplane bootstrap --xds-tls-*`) presents a client
//! certificate gets its config and routes traffic (HTTP and WebSocket); one
//! without a client certificate, one speaking plaintext and one expecting
//! another server name are refused in the handshake and never get a
//! listener; `edgeplane status --tls-*` works with a client certificate and
//! fails without one.
//!
//! Certificates are made at test time (rcgen): a CA, a server certificate
//! for `127.0.0.1` and `localhost`, a client certificate, and a client
//! certificate from another CA.

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use crate::support::*;

const UP: &str = "backend";

/// A throwaway PKI written as PEM files into its own temp dir.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> anyhow::Result<Pki> {
        let dir = tempfile::tempdir().context("tempdir for certificates")?;
        let write = |name: &str, pem: String| {
            std::fs::write(dir.path().join(name), pem).with_context(|| format!("write {name}"))
        };
        let ca = issuer("edgeplane xDS test CA")?;
        let rogue = issuer("another CA")?;
        let (server, server_key) = leaf(
            &ca,
            &["127.0.0.1", "localhost"],
            ExtendedKeyUsagePurpose::ServerAuth,
        )?;
        let (client, client_key) = leaf(&ca, &["envoy.test"], ExtendedKeyUsagePurpose::ClientAuth)?;
        let (other, other_key) =
            leaf(&rogue, &["envoy.test"], ExtendedKeyUsagePurpose::ClientAuth)?;
        write("ca.crt", ca.pem())?;
        write("server.crt", server.pem())?;
        write("server.key", server_key.serialize_pem())?;
        write("client.crt", client.pem())?;
        write("client.key", client_key.serialize_pem())?;
        write("rogue-client.crt", other.pem())?;
        write("rogue-client.key", other_key.serialize_pem())?;
        Ok(Pki { dir })
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// `serve` flags: TLS, and with `mtls` a required client certificate.
    fn serve_args(&self, mtls: bool) -> Vec<String> {
        let mut a = vec![
            "--xds-tls-cert".to_string(),
            self.path("server.crt"),
            "--xds-tls-key".into(),
            self.path("server.key"),
        ];
        if mtls {
            a.extend(["--xds-tls-client-ca".into(), self.path("ca.crt")]);
        }
        a
    }

    /// `bootstrap` flags: trust the CA, and present `client` (`client` or
    /// `rogue-client`) when given.
    fn bootstrap_args(&self, client: Option<&str>) -> Vec<String> {
        let mut a = vec!["--xds-tls-ca".to_string(), self.path("ca.crt")];
        a.extend(self.client_args("--xds-tls", client));
        a
    }

    /// `bootstrap` flags: trust the CA, no client certificate, and expect
    /// the server to be `name`.
    fn bootstrap_sni_args(&self, name: &str) -> Vec<String> {
        let mut a = self.bootstrap_args(None);
        a.extend(["--xds-tls-sni".into(), name.into()]);
        a
    }

    /// `<flag>-cert` and `<flag>-key` for `client` (none without one).
    fn client_args(&self, flag: &str, client: Option<&str>) -> Vec<String> {
        client
            .map(|c| {
                vec![
                    format!("{flag}-cert"),
                    self.path(&format!("{c}.crt")),
                    format!("{flag}-key"),
                    self.path(&format!("{c}.key")),
                ]
            })
            .unwrap_or_default()
    }
}

fn issuer(name: &str) -> anyhow::Result<CertifiedIssuer<'static, KeyPair>> {
    let mut p = CertificateParams::new(Vec::<String>::new()).context("CA params")?;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().context("CA key")?;
    CertifiedIssuer::self_signed(p, key).context("CA certificate")
}

fn leaf(
    ca: &CertifiedIssuer<'static, KeyPair>,
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> anyhow::Result<(rcgen::Certificate, KeyPair)> {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut p = CertificateParams::new(names.clone()).context("leaf params")?;
    p.distinguished_name.push(DnType::CommonName, &names[0]);
    p.extended_key_usages = vec![usage];
    let key = KeyPair::generate().context("leaf key")?;
    let cert = p.signed_by(&key, ca).context("leaf certificate")?;
    Ok((cert, key))
}

/// A control plane whose xDS port speaks TLS (`mtls`: and requires a
/// client certificate), serving a Gateway on `port` that routes
/// everything to the backend.
struct TlsServer {
    pki: Pki,
    tmp: tempfile::TempDir,
    _backend: Backend,
    port: u16,
    cp: ControlPlane,
}

impl TlsServer {
    async fn start(mtls: bool) -> anyhow::Result<TlsServer> {
        let pki = Pki::new()?;
        let backend = Backend::start("tls-backend").await;
        let port = free_port();
        let (tmp, dir) = manifests_dir(&[
            ("gateway.yaml", gateway(port, "")),
            ("upstream.yaml", upstream(UP, &[backend.port])),
            ("vs.yaml", virtual_service(&route("/", UP, ""))),
        ]);
        let cp = ControlPlane::start_with_args(&dir, 0, tmp.path(), &pki.serve_args(mtls)).await;
        let (security, name) = if mtls {
            ("security=mtls", "mTLS")
        } else {
            ("security=tls", "TLS")
        };
        // The log line may reach the file a moment after the port is up.
        let said = poll(
            "the startup log names the xDS security",
            std::time::Duration::from_secs(5),
            std::time::Duration::from_millis(20),
            || async { cp.log_text().contains(security).then_some(()) },
        )
        .await;
        assert!(said.is_ok(), "startup log says {name}:\n{}", cp.log_text());
        Ok(TlsServer {
            pki,
            tmp,
            _backend: backend,
            port,
            cp,
        })
    }

    /// An Envoy as `node` with `extra` bootstrap flags.
    async fn envoy(&self, node: &str, extra: &[String]) -> Envoy {
        Envoy::start_with_args(self.cp.xds_port, node, self.tmp.path(), extra).await
    }
}

/// The node ids in edgeplane's `/status`.
async fn status_nodes(cp: &ControlPlane) -> Vec<String> {
    cp.status().await["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["nodeId"].as_str().map(str::to_string))
        .collect()
}

/// Waits until Envoy's xDS connection has failed in the TLS handshake
/// (`counter` ≥ 1), then checks it holds no listener and is not connected.
async fn assert_refused(cp: &ControlPlane, envoy: &Envoy, node: &str, counter: &str) {
    let name = format!("cluster.xds_cluster.{counter}");
    eventually(&format!("{node}: {name} ≥ 1"), || async {
        envoy.stat(&name).await.filter(|n| *n >= 1)
    })
    .await;
    // Read each gauge until the admin answers (a loaded machine may drop
    // one request): a missing stat is not a zero.
    let stat = |name: &'static str| async move {
        eventually(&format!("{node}: Envoy reports {name}"), || {
            envoy.stat(name)
        })
        .await
    };
    // Envoy sets `connected_state` to 1 the moment it opens each retried
    // stream, before the transport answers, and back to 0 when the server
    // closes it; a single read can land in that window. Not connected
    // means it settles at 0 (and, below, that no config ever arrived).
    eventually(
        &format!("{node}: control_plane.connected_state = 0"),
        || async {
            envoy
                .stat("control_plane.connected_state")
                .await
                .filter(|n| *n == 0)
        },
    )
    .await;
    assert_eq!(
        stat("listener_manager.total_listeners_active").await,
        0,
        "{node} must have no listener"
    );
    assert_eq!(stat("cluster_manager.cds.update_success").await, 0);
    assert!(
        !status_nodes(cp).await.iter().any(|n| n == node),
        "edgeplane /status must not list {node}"
    );
}

/// Runs `edgeplane status` (bounded), returning (success, stdout, stderr).
async fn status_cli(args: &[String]) -> anyhow::Result<(bool, String, String)> {
    let out = tokio::time::timeout(
        DEADLINE,
        tokio::process::Command::new(edgeplane_bin())
            .arg("status")
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .context("edgeplane status timed out")?
    .context("run edgeplane status")?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_admits_envoy_with_client_cert_and_refuses_the_rest() -> anyhow::Result<()> {
    let t = TlsServer::start(true).await?;
    let (pki, cp, port) = (&t.pki, &t.cp, t.port);

    // (a) With the client certificate: config, HTTP and WebSocket.
    let good = t
        .envoy("mtls-node", &pki.bootstrap_args(Some("client")))
        .await;
    cp.wait_connected_in_mode("mtls-node").await;
    let body = good.wait_serving(port, "/hello").await;
    assert!(body.contains("tls-backend"), "{body}");
    let mut ws = ws_connect(port, "/ws")
        .await
        .map_err(|s| anyhow::anyhow!("websocket upgrade answered {s}"))?;
    echo(&mut ws, "over mtls xds").await;
    assert_eq!(good.stat("control_plane.connected_state").await, Some(1));
    let handshakes = good.stat("cluster.xds_cluster.ssl.handshake").await;
    assert!(handshakes.is_some_and(|n| n >= 1), "{handshakes:?}");

    // (b) Without a client certificate: refused in the handshake.
    let nocert = t.envoy("nocert-node", &pki.bootstrap_args(None)).await;
    // (d) Plaintext: refused too.
    let plain = t.envoy("plain-node", &[]).await;
    // A client certificate from another CA: refused.
    let rogue = t
        .envoy("rogue-node", &pki.bootstrap_args(Some("rogue-client")))
        .await;
    assert_refused(cp, &nocert, "nocert-node", "ssl.connection_error").await;
    assert_refused(cp, &rogue, "rogue-node", "ssl.connection_error").await;
    // The server answers a plaintext HTTP/2 request with a TLS alert and
    // closes the connection under Envoy's open ADS request.
    assert_refused(
        cp,
        &plain,
        "plain-node",
        "upstream_cx_destroy_remote_with_active_rq",
    )
    .await;
    assert_eq!(plain.stat("cluster.xds_cluster.ssl.handshake").await, None);
    for (e, node) in [(&nocert, "nocert-node"), (&rogue, "rogue-node")] {
        assert_eq!(
            e.stat("cluster.xds_cluster.ssl.handshake").await,
            Some(0),
            "{node}"
        );
    }
    // The admitted Envoy is unaffected by the refused ones.
    assert_eq!(good.stat("control_plane.connected_state").await, Some(1));
    assert_eq!(status_nodes(cp).await, vec!["mtls-node".to_string()]);

    // (c) `edgeplane status` over mTLS.
    let server = format!("127.0.0.1:{}", cp.xds_port);
    let tls_args = |client: Option<&str>| {
        let mut a = vec![
            "--server".to_string(),
            server.clone(),
            "--output".into(),
            "json".into(),
            "--tls-ca".into(),
            pki.path("ca.crt"),
        ];
        a.extend(pki.client_args("--tls", client));
        a
    };
    let (ok, out, err) = status_cli(&tls_args(Some("client"))).await?;
    assert!(ok, "status over mTLS failed: {err}");
    let json: serde_json::Value = serde_json::from_str(&out).context("status --output json")?;
    let kinds: Vec<&str> = json["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"VirtualService"), "{out}");
    for (args, what, hint) in [
        (
            tls_args(None),
            "no client certificate",
            "give --tls-cert and --tls-key",
        ),
        (
            tls_args(Some("rogue-client")),
            "a client certificate of another CA",
            "refused the client certificate",
        ),
        (
            vec!["--server".to_string(), server.clone()],
            "plaintext",
            "give --tls-ca",
        ),
    ] {
        let (ok, out, err) = status_cli(&args).await?;
        assert!(!ok, "status with {what} must fail: {out}");
        assert!(
            err.contains(&format!("edgeplane at {server} closed the connection"))
                && err.contains(hint),
            "status with {what}: a clear error: {err}"
        );
    }
    Ok(())
}

/// TLS without client certificates: an Envoy that trusts the CA connects;
/// one that expects another server name refuses the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_checks_the_server_name_and_needs_no_client_cert() -> anyhow::Result<()> {
    let t = TlsServer::start(false).await?;
    let (pki, cp) = (&t.pki, &t.cp);

    // The bootstrap checks the IP SAN 127.0.0.1 of the server certificate.
    let envoy = t.envoy("tls-node", &pki.bootstrap_args(None)).await;
    cp.wait_connected_in_mode("tls-node").await;
    let body = envoy.wait_serving(t.port, "/hello").await;
    assert!(body.contains("tls-backend"), "{body}");

    // The certificate carries localhost, so `--xds-tls-sni localhost`
    // passes; another name fails Envoy's SAN check.
    let _by_name = t
        .envoy("sni-node", &pki.bootstrap_sni_args("localhost"))
        .await;
    cp.wait_connected_in_mode("sni-node").await;
    let wrong = t
        .envoy(
            "wrong-name-node",
            &pki.bootstrap_sni_args("xds.elsewhere.test"),
        )
        .await;
    assert_refused(cp, &wrong, "wrong-name-node", "ssl.fail_verify_san").await;

    // `edgeplane status` with only the CA.
    let server = format!("127.0.0.1:{}", cp.xds_port);
    let (ok, out, err) = status_cli(&[
        "--server".into(),
        server,
        "--tls-ca".into(),
        pki.path("ca.crt"),
    ])
    .await?;
    assert!(ok, "status over TLS failed: {err}");
    assert!(out.contains("tls-node"), "{out}");
    Ok(())
}

/// Bad TLS files stop `serve` before it listens, naming the file.
#[tokio::test]
async fn serve_refuses_unusable_tls_files() -> anyhow::Result<()> {
    let pki = Pki::new()?;
    let tmp = tempfile::tempdir().context("tempdir")?;
    let missing = tmp.path().join("missing.crt").display().to_string();
    let cases: Vec<(Vec<String>, String)> = vec![
        (
            vec![
                "--xds-tls-cert".into(),
                missing.clone(),
                "--xds-tls-key".into(),
                pki.path("server.key"),
            ],
            format!("cannot read server certificate {missing}"),
        ),
        (
            vec![
                "--xds-tls-cert".into(),
                pki.path("server.crt"),
                "--xds-tls-key".into(),
                pki.path("client.key"),
            ],
            format!(
                "private key {} does not belong to certificate {}",
                pki.path("client.key"),
                pki.path("server.crt")
            ),
        ),
        (
            vec![
                "--xds-tls-cert".into(),
                pki.path("server.crt"),
                "--xds-tls-key".into(),
                pki.path("server.key"),
                "--xds-tls-client-ca".into(),
                pki.path("server.key"),
            ],
            format!(
                "client CA {}: no PEM certificate (BEGIN CERTIFICATE) in it",
                pki.path("server.key")
            ),
        ),
        (
            vec!["--xds-tls-cert".into(), pki.path("server.crt")],
            "--xds-tls-cert and --xds-tls-key go together".into(),
        ),
        (
            vec!["--xds-tls-client-ca".into(), pki.path("ca.crt")],
            "--xds-tls-client-ca needs a server certificate".into(),
        ),
    ];
    for (args, expected) in cases {
        let out = tokio::time::timeout(
            DEADLINE,
            tokio::process::Command::new(edgeplane_bin())
                .args(["serve", "--config-dir"])
                .arg(tmp.path())
                .args(["--xds-address", "127.0.0.1:0"])
                .args(&args)
                .kill_on_drop(true)
                .output(),
        )
        .await
        .context("edgeplane serve did not stop")?
        .context("run edgeplane serve")?;
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(&expected),
            "{args:?}: expected `{expected}` in: {err}"
        );
    }
    Ok(())
}
