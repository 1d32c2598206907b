//! Secrets and `secretRef`, through the pure pipeline and the reconciler:
//! Gloo's wording, positions, and no key material in any message.

use std::path::PathBuf;

use crate::pipeline::reconcile::{Reconciler, Serving, State};
use crate::pipeline::{Load, build};
use crate::snapshot::ResourceType;
use crate::source::SourceFile;
use crate::translate::tls::sds_tests::{secret_doc, self_signed};

const GW: &str = "apiVersion: gateway.solo.io/v1\nkind: Gateway\nmetadata: {name: secure, namespace: gloo-system}\nspec: {bindPort: 8443, ssl: true, httpGateway: {}}\n";
const UP: &str = "apiVersion: gloo.solo.io/v1\nkind: Upstream\nmetadata: {name: echo, namespace: gloo-system}\nspec: {static: {hosts: [{addr: 127.0.0.1, port: 8081}]}}\n";

fn vs(secret: &str) -> String {
    format!(
        "apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata: {{name: web, namespace: gloo-system}}\nspec:\n  sslConfig: {{secretRef: {{name: {secret}, namespace: gloo-system}}}}\n  virtualHost:\n    routes: [{{matchers: [{{prefix: /}}], routeAction: {{single: {{upstream: {{name: echo}}}}}}}}]\n"
    )
}

fn files(list: &[(&str, String)]) -> Vec<SourceFile> {
    list.iter()
        .map(|(p, t)| SourceFile {
            path: PathBuf::from(p),
            text: t.clone(),
        })
        .collect()
}

fn load(list: &[(&str, String)]) -> Load {
    build(files(list), Vec::new())
}

/// (resource name, message) of every error.
fn errors(l: &Load) -> Vec<(String, String)> {
    l.diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| {
            let who = d
                .resource
                .as_ref()
                .map(|r| r.name.clone())
                .unwrap_or_default();
            (who, d.message.clone())
        })
        .collect()
}

/// No key material anywhere a user or log can see it.
fn assert_no_key_material(l: &Load) {
    let shown = format!(
        "{}\n{:?}\n{:?}",
        l.render_diagnostics(),
        l.diagnostics,
        l.model
    );
    for needle in ["PRIVATE KEY", "MII", "MC4C", "MIG"] {
        assert!(!shown.contains(needle), "{needle} shown:\n{shown}");
    }
}

#[test]
fn a_missing_secret_is_gloos_error_naming_the_ref() {
    let l = load(&[
        ("gw.yaml", GW.to_string()),
        ("up.yaml", UP.to_string()),
        ("vs.yaml", vs("tls")),
    ]);
    assert_eq!(
        errors(&l),
        [(
            "web".to_string(),
            "SSL secret not found: list did not find secret gloo-system.tls".to_string()
        )]
    );
    let d = l.diagnostics.iter().find(|d| d.is_error()).expect("error");
    assert_eq!(d.pos.line, 5, "at the secretRef");

    // A near miss is suggested.
    let (cert, key) = self_signed("one");
    let l = load(&[
        ("gw.yaml", GW.to_string()),
        ("up.yaml", UP.to_string()),
        ("vs.yaml", vs("tsl")),
        ("s.yaml", secret_doc("tls", &cert, &key, None)),
    ]);
    let d = l.diagnostics.iter().find(|d| d.is_error()).expect("error");
    assert_eq!(d.hint.as_deref(), Some("did you mean `gloo-system.tls`?"));
}

#[test]
fn broken_pem_is_refused_without_quoting_it() {
    let (cert, key) = self_signed("one");
    let (_, other_key) = self_signed("two");
    let garbled_key = key.replace("-----END PRIVATE KEY-----", "-----END PRIVATE KEY");
    let cases: Vec<(String, &str)> = vec![
        (
            secret_doc("tls", "not a certificate", &key, None),
            "gloo-system.tls is not a valid TLS secret: tls.certChain holds no PEM certificate",
        ),
        (
            secret_doc("tls", &cert, &garbled_key, None),
            "gloo-system.tls is not a valid TLS secret: tls.privateKey is not a PEM private key",
        ),
        (
            secret_doc("tls", &cert, &other_key, None),
            "gloo-system.tls is not a valid TLS secret: tls: private key does not match public key",
        ),
        (
            secret_doc("tls", &cert, &key, Some("junk")),
            "gloo-system.tls is not a valid TLS secret: tls.rootCa holds no PEM certificate",
        ),
        (
            format!(
                "apiVersion: gloo.solo.io/v1\nkind: Secret\nmetadata: {{name: tls, namespace: gloo-system}}\ntls: {{certChain: {:?}}}\n",
                cert
            ),
            "gloo-system.tls is not a valid TLS secret: both or none of cert chain and private key must be provided",
        ),
        (
            // A key where an object belongs: the parser's message would
            // quote it.
            format!(
                "apiVersion: gloo.solo.io/v1\nkind: Secret\nmetadata: {{name: tls, namespace: gloo-system}}\ntls: {:?}\n",
                key
            ),
            "expected mapping start",
        ),
    ];
    for (doc, want) in cases {
        let l = load(&[
            ("gw.yaml", GW.to_string()),
            ("up.yaml", UP.to_string()),
            ("vs.yaml", vs("tls")),
            ("s.yaml", doc),
        ]);
        let errs = errors(&l);
        assert!(
            errs.iter()
                .any(|(who, m)| who == "tls" && m.starts_with(want)),
            "want {want:?} in {errs:?}"
        );
        assert_no_key_material(&l);
    }
}

#[test]
fn shapes_gloo_does_not_have_are_named() {
    let (cert, key) = self_signed("one");
    // A Kubernetes Secret: the hint says which form edgeplane reads.
    let l = load(&[(
        "k.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: tls}\ntype: kubernetes.io/tls\ndata: {tls.crt: eA==, tls.key: eA==}\n".to_string(),
    )]);
    let d = l.diagnostics.iter().find(|d| d.is_error()).expect("error");
    assert!(d.message.contains("expected `gloo.solo.io/v1`"), "{d:?}");
    assert!(
        d.hint.as_deref().unwrap_or("").contains("tls: {certChain"),
        "{d:?}"
    );
    // `spec` is not where Gloo's Secret keeps its fields.
    let doc = secret_doc("tls", &cert, &key, None).replace("tls:\n", "spec:\n tls:\n");
    let l = load(&[("s.yaml", doc)]);
    let d = l
        .diagnostics
        .iter()
        .find(|d| d.message.starts_with("unknown field `spec`"))
        .expect("error");
    assert!(
        d.hint.as_deref().unwrap_or("").contains("has no `spec`"),
        "{d:?}"
    );
    assert_no_key_material(&l);
    // A secret of another kind is accepted with a warning, and cannot serve TLS.
    let aws = "apiVersion: gloo.solo.io/v1\nkind: Secret\nmetadata: {name: tls, namespace: gloo-system}\naws: {accessKey: a, secretKey: b}\n";
    let l = load(&[
        ("gw.yaml", GW.to_string()),
        ("up.yaml", UP.to_string()),
        ("vs.yaml", vs("tls")),
        ("s.yaml", aws.to_string()),
    ]);
    assert_eq!(
        errors(&l),
        [(
            "web".to_string(),
            "gloo-system.tls is not a TLS secret".to_string()
        )]
    );
    assert!(l.diagnostics.iter().any(|d| !d.is_error()
        && d.message
            == "secret gloo-system.tls is a `aws` secret; edgeplane uses only TLS secrets (`tls`), so it is not served"));
}

/// Gloo's last-known-good rule for Secrets: a broken edit keeps the last
/// good certificate serving, with the error in the Secret's status; the
/// VirtualService using it stays accepted.
#[test]
fn a_broken_secret_keeps_its_last_good_version_serving() {
    let (cert, key) = self_signed("one");
    let mut rc = Reconciler::new();
    let good = [
        ("gw.yaml", GW.to_string()),
        ("up.yaml", UP.to_string()),
        ("vs.yaml", vs("tls")),
        ("s.yaml", secret_doc("tls", &cert, &key, None)),
    ];
    let r1 = rc.reconcile(files(&good), vec![]);
    assert!(!r1.has_errors());
    let s1 = r1.snapshot.expect("snapshot");
    let proxy = "gloo-system~gateway-proxy";
    let secret_version = s1.proxies[proxy].version(ResourceType::Secret);

    let mut broken = good.clone();
    broken[3].1 = secret_doc("tls", &cert, "-----BEGIN PRIVATE KEY-----\nnope\n", None);
    let r2 = rc.reconcile(files(&broken), vec![]);
    let s2 = r2.snapshot.as_ref().expect("still served");
    assert_eq!(
        s2.proxies[proxy].version(ResourceType::Secret),
        secret_version
    );
    let status = |kind: &str| {
        r2.statuses
            .iter()
            .find(|s| s.id.kind == kind)
            .unwrap_or_else(|| panic!("no {kind} status"))
    };
    let st = status("Secret");
    assert_eq!(
        (st.state, st.serving),
        (State::Rejected, Serving::LastAccepted)
    );
    assert!(st.reasons[0].message.contains("is not a valid TLS secret"));
    assert_eq!(st.proxies, [proxy]);
    let web = status("VirtualService");
    assert_eq!(
        (web.state, web.serving),
        (State::Accepted, Serving::Current)
    );
    // NACKs of the secret are laid at the Secret's door.
    assert_eq!(
        r2.owners
            .get(&(ResourceType::Secret, "tls_gloo-system".to_string()))
            .map(|v| v[0].kind.as_str()),
        Some("Secret")
    );

    // A Secret that never was valid is simply absent; its user is rejected.
    let mut fresh = Reconciler::new();
    let r = fresh.reconcile(files(&broken), vec![]);
    let web = r
        .statuses
        .iter()
        .find(|s| s.id.kind == "VirtualService")
        .expect("vs status");
    assert_eq!(web.state, State::Rejected);
    assert!(
        web.reasons
            .iter()
            .any(|d| d.message == "SSL secret not found: list did not find secret gloo-system.tls"),
        "{:?}",
        web.reasons
    );
}

/// An Upstream's `secretRef` follows the same rule: a broken edit of its
/// Secret keeps the last good certificate serving, the Upstream stays
/// accepted and its cluster unchanged; a deleted Secret rejects the
/// Upstream, which keeps its last accepted cluster and its Secret.
#[test]
fn an_upstreams_secret_keeps_its_last_good_version_and_its_cluster() {
    let (cert, key) = self_signed("one");
    let plain = "apiVersion: gateway.solo.io/v1\nkind: Gateway\nmetadata: {name: plain, namespace: gloo-system}\nspec: {bindPort: 8080, httpGateway: {}}\n";
    let up = "apiVersion: gloo.solo.io/v1\nkind: Upstream\nmetadata: {name: echo, namespace: gloo-system}\nspec: {static: {hosts: [{addr: 127.0.0.1, port: 8443}]}, sslConfig: {secretRef: {name: client}}}\n";
    let mut rc = Reconciler::new();
    let good = vec![
        ("gw.yaml", plain.to_string()),
        ("up.yaml", up.to_string()),
        ("s.yaml", secret_doc("client", &cert, &key, None)),
    ];
    let r1 = rc.reconcile(files(&good), vec![]);
    assert!(!r1.has_errors());
    let s1 = r1.snapshot.expect("snapshot");
    let proxy = "gloo-system~gateway-proxy";
    let versions = |s: &crate::snapshot::Snapshot| {
        (
            s.proxies[proxy].version(ResourceType::Cluster),
            s.proxies[proxy].version(ResourceType::Secret),
        )
    };
    let v1 = versions(&s1);
    assert!(
        s1.proxies[proxy]
            .get(ResourceType::Secret, "client_gloo-system")
            .is_some(),
        "the proxy gets the Upstream's Secret"
    );

    let mut broken = good.clone();
    broken[2].1 = secret_doc("client", &cert, "-----BEGIN PRIVATE KEY-----\nnope\n", None);
    let r2 = rc.reconcile(files(&broken), vec![]);
    assert_eq!(versions(r2.snapshot.as_ref().expect("served")), v1);
    let state = |r: &crate::pipeline::reconcile::Reconciled, kind: &str| {
        r.statuses
            .iter()
            .find(|s| s.id.kind == kind)
            .map(|s| (s.state, s.serving))
    };
    assert_eq!(
        state(&r2, "Upstream"),
        Some((State::Accepted, Serving::Current))
    );
    assert_eq!(
        state(&r2, "Secret"),
        Some((State::Rejected, Serving::LastAccepted))
    );

    // Deleting the Secret leaves the last accepted Upstream nothing to
    // stand on: it is rejected with Gloo's error and not served (its
    // cluster and the Secret leave the proxy), as a VirtualService whose
    // Secret is deleted.
    let r3 = rc.reconcile(files(&good[..2]), vec![]);
    assert_eq!(
        state(&r3, "Upstream"),
        Some((State::Rejected, Serving::Nothing))
    );
    let s3 = r3.snapshot.as_ref().expect("served");
    assert!(
        s3.proxies[proxy]
            .get(ResourceType::Cluster, "echo_gloo-system")
            .is_none()
    );
    assert!(
        s3.proxies[proxy]
            .get(ResourceType::Secret, "client_gloo-system")
            .is_none()
    );
}
