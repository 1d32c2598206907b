//! `sslConfig.secretRef` over SDS, through the pure pipeline: the listener
//! names the secret, the secret is its own resource sent only to the
//! proxies that use it, and a rotation changes the secret alone.

use std::path::PathBuf;

use envoy_types::pb::envoy::config::core::v3::{config_source, data_source};
use envoy_types::pb::envoy::config::listener::v3::{FilterChain, Listener};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    DownstreamTlsContext, common_tls_context, secret,
};
use prost::Message;

use crate::pipeline::{Load, build};
use crate::snapshot::{ResourceType, Snapshot};
use crate::source::SourceFile;

const PROXY: &str = "gloo-system~gateway-proxy";

/// A self-signed certificate for `localhost` and its key, as PEM.
pub(crate) fn self_signed(cn: &str) -> (String, String) {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let cert = params.self_signed(&key).expect("cert");
    (cert.pem(), key.serialize_pem())
}

/// YAML block-scalar lines for `text`, indented by `indent` spaces.
fn block(text: &str, indent: usize) -> String {
    let pad = " ".repeat(indent);
    text.lines().map(|l| format!("{pad}{l}\n")).collect()
}

/// A TLS Secret in the envelope form.
pub(crate) fn secret_doc(name: &str, cert: &str, key: &str, ca: Option<&str>) -> String {
    let mut s = format!(
        "apiVersion: gloo.solo.io/v1\nkind: Secret\nmetadata: {{name: {name}, namespace: gloo-system}}\ntls:\n  certChain: |\n{}  privateKey: |\n{}",
        block(cert, 4),
        block(key, 4)
    );
    if let Some(ca) = ca {
        s.push_str(&format!("  rootCa: |\n{}", block(ca, 4)));
    }
    s
}

fn gateway(name: &str, port: u16, proxy: &str) -> String {
    format!(
        "apiVersion: gateway.solo.io/v1\nkind: Gateway\nmetadata: {{name: {name}, namespace: gloo-system}}\nspec: {{bindPort: {port}, ssl: true, proxyNames: [{proxy}], httpGateway: {{}}}}\n"
    )
}

const PLAIN: &str = "apiVersion: gateway.solo.io/v1\nkind: Gateway\nmetadata: {name: plain, namespace: gloo-system}\nspec: {bindPort: 8080, httpGateway: {}}\n";
const UPSTREAM: &str = "apiVersion: gloo.solo.io/v1\nkind: Upstream\nmetadata: {name: echo, namespace: gloo-system}\nspec: {static: {hosts: [{addr: 127.0.0.1, port: 8081}]}}\n";

fn vs(name: &str, secret: &str, extra: &str) -> String {
    format!(
        "apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata: {{name: {name}, namespace: gloo-system}}\nspec:\n  sslConfig: {{secretRef: {{name: {secret}, namespace: gloo-system}}{extra}}}\n  virtualHost:\n    domains: ['{name}.example.com']\n    routes: [{{matchers: [{{prefix: /}}], routeAction: {{single: {{upstream: {{name: echo}}}}}}}}]\n"
    )
}

fn load(files: &[(&str, String)]) -> Load {
    let files = files
        .iter()
        .map(|(p, t)| SourceFile {
            path: PathBuf::from(p),
            text: t.clone(),
        })
        .collect();
    build(files, Vec::new())
}

fn valid(files: &[(&str, String)]) -> Load {
    let l = load(files);
    assert!(!l.has_errors(), "{}", l.render_diagnostics());
    l
}

fn tls_context(chain: &FilterChain) -> DownstreamTlsContext {
    let ts = chain.transport_socket.as_ref().expect("transport socket");
    let Some(envoy_types::pb::envoy::config::core::v3::transport_socket::ConfigType::TypedConfig(
        any,
    )) = &ts.config_type
    else {
        panic!("untyped transport socket");
    };
    DownstreamTlsContext::decode(any.value.as_slice()).expect("decodes")
}

fn ssl_listener(l: &Load) -> Listener {
    l.output.as_ref().expect("output")[PROXY]
        .listeners
        .iter()
        .find(|l| l.name == "listener-::-8443")
        .expect("ssl listener")
        .clone()
}

#[test]
fn secret_ref_names_the_secret_over_ads_and_serves_it_as_its_own_resource() {
    let (cert, key) = self_signed("one");
    let l = valid(&[
        ("gw.yaml", gateway("secure", 8443, "gateway-proxy")),
        ("up.yaml", UPSTREAM.to_string()),
        ("vs.yaml", vs("web", "tls", "")),
        ("secret.yaml", secret_doc("tls", &cert, &key, None)),
    ]);
    let listener = ssl_listener(&l);
    let common = tls_context(&listener.filter_chains[0])
        .common_tls_context
        .expect("common");
    assert!(common.tls_certificates.is_empty(), "nothing inlined");
    assert_eq!(common.tls_certificate_sds_secret_configs.len(), 1);
    let sds = &common.tls_certificate_sds_secret_configs[0];
    assert_eq!(sds.name, "tls_gloo-system");
    let source = sds.sds_config.as_ref().expect("sds config");
    assert_eq!(source.resource_api_version, 2, "V3");
    assert!(matches!(
        source.config_source_specifier,
        Some(config_source::ConfigSourceSpecifier::Ads(_))
    ));
    assert!(common.validation_context_type.is_none());
    // The listener's bytes hold the name only, never key material.
    let bytes = listener.encode_to_vec();
    let needle = b"PRIVATE KEY";
    assert!(!bytes.windows(needle.len()).any(|w| w == needle));

    let secrets = &l.output.as_ref().expect("output")[PROXY].secrets;
    assert_eq!(secrets.len(), 1);
    assert_eq!(secrets[0].name, "tls_gloo-system");
    let Some(secret::Type::TlsCertificate(tc)) = &secrets[0].r#type else {
        panic!("not a TLS certificate: {:?}", secrets[0].r#type);
    };
    let inline = |ds: &Option<envoy_types::pb::envoy::config::core::v3::DataSource>| match ds
        .as_ref()
        .and_then(|d| d.specifier.as_ref())
    {
        Some(data_source::Specifier::InlineString(s)) => s.clone(),
        other => panic!("not inline: {other:?}"),
    };
    assert_eq!(inline(&tc.certificate_chain), cert);
    assert_eq!(inline(&tc.private_key), key);

    // The JSON of `translate` shows the secret, never its key.
    let json = crate::translate::json::resources_json(l.output.as_ref().expect("output"), None)
        .expect("json");
    let text = json.to_string();
    assert!(text.contains("BEGIN CERTIFICATE"), "{text}");
    assert!(!text.contains("PRIVATE KEY"), "{text}");
    assert!(text.contains("[redacted]"));
}

#[test]
fn a_root_ca_becomes_a_validation_context_secret_and_requires_client_certificates() {
    let (cert, key) = self_signed("one");
    let (ca, _) = self_signed("ca");
    for (extra, required) in [("", true), (", oneWayTls: true", false)] {
        let l = valid(&[
            ("gw.yaml", gateway("secure", 8443, "gateway-proxy")),
            ("up.yaml", UPSTREAM.to_string()),
            ("vs.yaml", vs("web", "tls", extra)),
            ("secret.yaml", secret_doc("tls", &cert, &key, Some(&ca))),
        ]);
        let ctx = tls_context(&ssl_listener(&l).filter_chains[0]);
        assert_eq!(
            ctx.require_client_certificate.map(|b| b.value),
            required.then_some(true),
            "{extra}"
        );
        let common = ctx.common_tls_context.expect("common");
        let Some(common_tls_context::ValidationContextType::ValidationContextSdsSecretConfig(v)) =
            &common.validation_context_type
        else {
            panic!(
                "no SDS validation context: {:?}",
                common.validation_context_type
            );
        };
        assert_eq!(v.name, "tls_gloo-system_root-ca");
        let names: Vec<&str> = l.output.as_ref().expect("output")[PROXY]
            .secrets
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(names, ["tls_gloo-system", "tls_gloo-system_root-ca"]);
    }
}

/// The point of SDS: a new certificate in the Secret file changes the
/// Secret resource and nothing else, so Envoy does not drain the listener.
#[test]
fn rotating_a_secret_changes_the_secret_and_not_the_listener() {
    let (cert1, key1) = self_signed("one");
    let (cert2, key2) = self_signed("two");
    let files = |cert: &str, key: &str| {
        vec![
            ("gw.yaml", gateway("secure", 8443, "gateway-proxy")),
            ("up.yaml", UPSTREAM.to_string()),
            ("vs.yaml", vs("web", "tls", "")),
            ("secret.yaml", secret_doc("tls", cert, key, None)),
        ]
    };
    let a = valid(&files(&cert1, &key1)).snapshot.expect("snapshot");
    let b_out = valid(&files(&cert2, &key2)).output.expect("output");
    let (b, stats) = Snapshot::from_output_reusing(&b_out, Some(&a));
    let (pa, pb) = (&a.proxies[PROXY], &b.proxies[PROXY]);
    for t in [
        ResourceType::Listener,
        ResourceType::Route,
        ResourceType::Cluster,
    ] {
        assert_eq!(pa.version(t), pb.version(t), "{t:?}");
    }
    let name = "listener-::-8443";
    let (la, lb) = (
        pa.get(ResourceType::Listener, name).expect("listener"),
        pb.get(ResourceType::Listener, name).expect("listener"),
    );
    assert_eq!(la.bytes, lb.bytes, "listener bytes");
    assert_eq!(la.hash, lb.hash, "listener version");
    assert_ne!(
        pa.version(ResourceType::Secret),
        pb.version(ResourceType::Secret)
    );
    assert_eq!(
        stats.encoded.get(&ResourceType::Secret).copied(),
        Some(1),
        "{stats:?}"
    );
    assert_eq!(stats.encoded_total(), 1, "only the secret is re-encoded");
    // Deterministic: the same files give the same versions.
    let again = valid(&files(&cert2, &key2)).snapshot.expect("snapshot");
    assert_eq!(
        again.proxies[PROXY].version(ResourceType::Secret),
        pb.version(ResourceType::Secret)
    );
}

#[test]
fn each_proxy_gets_only_the_secrets_its_listeners_name() {
    let (c1, k1) = self_signed("one");
    let (c2, k2) = self_signed("two");
    let l = valid(&[
        ("gw.yaml", gateway("secure", 8443, "gateway-proxy")),
        ("gw2.yaml", gateway("other", 9443, "other-proxy")),
        (
            "plain.yaml",
            PLAIN.replace("8080", "8080, proxyNames: [plain-proxy]"),
        ),
        ("up.yaml", UPSTREAM.to_string()),
        ("vs.yaml", vs("web", "one", "")),
        (
            "vs2.yaml",
            vs("shop", "two", ", sniDomains: [shop.example.com]"),
        ),
        ("s1.yaml", secret_doc("one", &c1, &k1, None)),
        ("s2.yaml", secret_doc("two", &c2, &k2, None)),
        // Unused: served to no one.
        ("s3.yaml", secret_doc("unused", &c2, &k2, None)),
    ]);
    let out = l.output.expect("output");
    let names = |proxy: &str| -> Vec<String> {
        out[proxy].secrets.iter().map(|s| s.name.clone()).collect()
    };
    // Both VirtualServices are on both SSL gateways (no selectors).
    assert_eq!(names(PROXY), ["one_gloo-system", "two_gloo-system"]);
    assert_eq!(
        names("gloo-system~other-proxy"),
        ["one_gloo-system", "two_gloo-system"]
    );
    assert!(names("gloo-system~plain-proxy").is_empty());
}

#[test]
fn gloo_file_layout_secrets_are_read_without_kind() {
    let (cert, key) = self_signed("one");
    let flat = format!(
        "metadata:\n  name: tls\n  namespace: gloo-system\n  resourceVersion: '3'\ntls:\n  certChain: |\n{}  privateKey: |\n{}",
        block(&cert, 4),
        block(&key, 4)
    );
    let l = valid(&[
        ("gw.yaml", gateway("secure", 8443, "gateway-proxy")),
        ("up.yaml", UPSTREAM.to_string()),
        ("vs.yaml", vs("web", "tls", "")),
        ("secret/secrets/gloo-system/tls.yaml", flat),
    ]);
    assert_eq!(
        l.output.expect("output")[PROXY].secrets[0].name,
        "tls_gloo-system"
    );
}
