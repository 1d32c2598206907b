//! SSL gateways and VirtualService `sslConfig`, checked on whole manifests
//! through the pure pipeline.

use std::path::PathBuf;

use envoy_types::pb::envoy::config::core::v3::{data_source, transport_socket};
use envoy_types::pb::envoy::config::listener::v3::{FilterChain, Listener, filter};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    DownstreamTlsContext, common_tls_context, tls_parameters::TlsProtocol,
};
use prost::Message;

use crate::pipeline::{Load, build};
use crate::snapshot::ResourceType;
use crate::source::SourceFile;

use crate::translate::proto::{TLS_INSPECTOR, TLS_TRANSPORT_SOCKET};

const PROXY: &str = "gloo-system~gateway-proxy";

fn load(docs: &[String]) -> Load {
    let files = docs
        .iter()
        .enumerate()
        .map(|(i, text)| SourceFile {
            path: PathBuf::from(format!("m{i}.yaml")),
            text: text.clone(),
        })
        .collect();
    build(files, Vec::new())
}

fn gateway(name: &str, port: u16, ssl: bool) -> String {
    format!(
        "apiVersion: gateway.solo.io/v1\nkind: Gateway\nmetadata: {{name: {name}, namespace: gloo-system}}\nspec:\n  bindPort: {port}\n  ssl: {ssl}\n  httpGateway: {{}}\n"
    )
}

const UPSTREAM: &str = "apiVersion: gloo.solo.io/v1\nkind: Upstream\nmetadata: {name: echo, namespace: gloo-system}\nspec: {static: {hosts: [{addr: 127.0.0.1, port: 8081}]}}\n";

/// A VirtualService `name` in `apps` with one route to `prefix`; `ssl` is
/// the `sslConfig` in YAML flow style (empty: none).
fn vs(name: &str, domain: &str, prefix: &str, ssl: &str) -> String {
    let ssl = if ssl.is_empty() {
        String::new()
    } else {
        format!("  sslConfig: {ssl}\n")
    };
    format!(
        "apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata: {{name: {name}, namespace: apps}}\nspec:\n{ssl}  virtualHost:\n    domains: ['{domain}']\n    routes: [{{matchers: [{{prefix: {prefix}}}], routeAction: {{single: {{upstream: {{name: echo, namespace: gloo-system}}}}}}}}]\n"
    )
}

const FILES: &str = "sslFiles: {tlsCert: /certs/tls.crt, tlsKey: /certs/tls.key}";

fn ssl(extra: &str) -> String {
    if extra.is_empty() {
        format!("{{{FILES}}}")
    } else {
        format!("{{{FILES}, {extra}}}")
    }
}

fn valid(docs: &[String]) -> crate::translate::ProxyResources {
    let l = load(docs);
    assert!(!l.has_errors(), "{}", l.render_diagnostics());
    l.output.expect("valid config")[PROXY].clone()
}

fn errors(docs: &[String]) -> Vec<(String, String)> {
    let l = load(docs);
    assert!(l.snapshot.is_none(), "expected errors");
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

fn listener(p: &crate::translate::ProxyResources, port: u16) -> &Listener {
    let name = format!("listener-::-{port}");
    p.listeners
        .iter()
        .find(|l| l.name == name)
        .unwrap_or_else(|| panic!("no listener {name}"))
}

fn hcm_bytes(chain: &FilterChain) -> Vec<u8> {
    let Some(filter::ConfigType::TypedConfig(any)) = &chain.filters[0].config_type else {
        panic!("chain without a typed HCM");
    };
    any.value.clone()
}

fn tls_context(chain: &FilterChain) -> DownstreamTlsContext {
    let ts = chain.transport_socket.as_ref().expect("transport socket");
    assert_eq!(ts.name, TLS_TRANSPORT_SOCKET);
    let Some(transport_socket::ConfigType::TypedConfig(any)) = &ts.config_type else {
        panic!("transport socket without typed config");
    };
    assert!(any.type_url.ends_with("DownstreamTlsContext"));
    DownstreamTlsContext::decode(any.value.as_slice()).expect("DownstreamTlsContext decodes")
}

fn filename(ds: &Option<envoy_types::pb::envoy::config::core::v3::DataSource>) -> Option<&str> {
    match ds.as_ref()?.specifier.as_ref()? {
        data_source::Specifier::Filename(f) => Some(f),
        _ => None,
    }
}

#[test]
fn ssl_gateways_take_only_ssl_virtual_services_and_plain_ones_only_plain() {
    let p = valid(&[
        gateway("plain", 8080, false),
        gateway("secure", 8443, true),
        UPSTREAM.to_string(),
        vs("web", "web.example.com", "/", ""),
        vs(
            "shop",
            "shop.example.com",
            "/",
            &ssl("sniDomains: [shop.example.com]"),
        ),
    ]);
    let vhosts = |port: u16| -> Vec<String> {
        let name = format!("listener-::-{port}-routes");
        let rc = p
            .route_configs
            .iter()
            .find(|r| r.name == name)
            .expect("routes");
        rc.proto()
            .virtual_hosts
            .iter()
            .map(|v| v.name.clone())
            .collect()
    };
    assert_eq!(vhosts(8080), ["apps_web"]);
    assert_eq!(vhosts(8443), ["apps_shop"]);

    let plain = listener(&p, 8080);
    assert!(plain.listener_filters.is_empty());
    assert_eq!(plain.filter_chains.len(), 1);
    assert!(plain.filter_chains[0].transport_socket.is_none());
    assert!(plain.filter_chains[0].filter_chain_match.is_none());

    let secure = listener(&p, 8443);
    assert_eq!(secure.listener_filters.len(), 1);
    assert_eq!(secure.listener_filters[0].name, TLS_INSPECTOR);
    assert_eq!(secure.filter_chains.len(), 1);
    let chain = &secure.filter_chains[0];
    // Gloo's newSslFilterChain leaves chains unnamed.
    assert_eq!(chain.name, "");
    assert_eq!(
        chain
            .filter_chain_match
            .as_ref()
            .map(|m| m.server_names.clone()),
        Some(vec!["shop.example.com".to_string()])
    );
    let tls = tls_context(chain);
    let common = tls.common_tls_context.expect("common tls context");
    assert_eq!(
        filename(&common.tls_certificates[0].certificate_chain),
        Some("/certs/tls.crt")
    );
    assert_eq!(
        filename(&common.tls_certificates[0].private_key),
        Some("/certs/tls.key")
    );
    // Gloo's default ALPN for HTTP chains.
    assert_eq!(common.alpn_protocols, ["h2", "http/1.1"]);
    assert!(common.validation_context_type.is_none());
    assert!(common.tls_params.is_none());
    assert!(tls.require_client_certificate.is_none());
}

#[test]
fn one_chain_per_ssl_config_sorted_with_the_same_hcm() {
    let p = valid(&[
        gateway("plain", 8080, false),
        gateway("secure", 8443, true),
        UPSTREAM.to_string(),
        vs("web", "web.example.com", "/", ""),
        vs(
            "zeta",
            "z.example.com",
            "/",
            "{sslFiles: {tlsCert: /certs/z.crt, tlsKey: /certs/z.key}, sniDomains: [z.example.com, '*.z.example.com']}",
        ),
        vs("alpha", "*", "/", &ssl("")),
    ]);
    let secure = listener(&p, 8443);
    // In VirtualService order (apps_alpha, apps_zeta); the one without
    // sniDomains matches any SNI.
    let snis: Vec<Vec<String>> = secure
        .filter_chains
        .iter()
        .map(|c| {
            c.filter_chain_match
                .as_ref()
                .map(|m| m.server_names.clone())
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(
        snis,
        [
            vec![],
            vec!["z.example.com".to_string(), "*.z.example.com".to_string()]
        ]
    );
    // Every chain carries the same HCM, taking routes from the gateway's
    // one RouteConfiguration.
    let a = hcm_bytes(&secure.filter_chains[0]);
    assert_eq!(a, hcm_bytes(&secure.filter_chains[1]));
    let h = HttpConnectionManager::decode(a.as_slice()).expect("HCM decodes");
    let Some(http_connection_manager::RouteSpecifier::Rds(rds)) = &h.route_specifier else {
        panic!("RDS expected");
    };
    assert_eq!(rds.route_config_name, "listener-::-8443-routes");
    // ... which is the plain gateway's HCM but for the route config name.
    let plain =
        HttpConnectionManager::decode(hcm_bytes(&listener(&p, 8080).filter_chains[0]).as_slice())
            .expect("HCM decodes");
    let mut h2 = h.clone();
    h2.route_specifier = plain.route_specifier.clone();
    assert_eq!(h2, plain);
}

#[test]
fn tls_context_follows_gloo() {
    let p = valid(&[
        gateway("secure", 8443, true),
        UPSTREAM.to_string(),
        vs(
            "mtls",
            "a.example.com",
            "/",
            "{sslFiles: {tlsCert: /c.pem, tlsKey: /k.pem, rootCa: /ca.pem}, sniDomains: [a.example.com], alpnProtocols: [http/1.1], parameters: {minimumProtocolVersion: TLSv1_2, maximumProtocolVersion: 4, cipherSuites: [ECDHE-RSA-AES128-GCM-SHA256], ecdhCurves: [X25519]}}",
        ),
        vs(
            "oneway",
            "b.example.com",
            "/",
            "{sslFiles: {tlsCert: /c.pem, tlsKey: /k.pem, rootCa: /ca.pem}, oneWayTls: true, sniDomains: [b.example.com], alpnProtocols: [allow_empty]}",
        ),
    ]);
    let secure = listener(&p, 8443);
    let mtls = tls_context(&secure.filter_chains[0]);
    assert_eq!(mtls.require_client_certificate.map(|b| b.value), Some(true));
    let c = mtls.common_tls_context.expect("common");
    let Some(common_tls_context::ValidationContextType::ValidationContext(v)) =
        &c.validation_context_type
    else {
        panic!("validation context expected");
    };
    assert_eq!(filename(&v.trusted_ca), Some("/ca.pem"));
    assert_eq!(c.alpn_protocols, ["http/1.1"]);
    let params = c.tls_params.expect("tls params");
    assert_eq!(
        params.tls_minimum_protocol_version,
        TlsProtocol::TlSv12 as i32
    );
    assert_eq!(
        params.tls_maximum_protocol_version,
        TlsProtocol::TlSv13 as i32
    );
    assert_eq!(params.cipher_suites, ["ECDHE-RSA-AES128-GCM-SHA256"]);
    assert_eq!(params.ecdh_curves, ["X25519"]);

    let oneway = tls_context(&secure.filter_chains[1]);
    assert!(oneway.require_client_certificate.is_none());
    let c = oneway.common_tls_context.expect("common");
    assert!(c.validation_context_type.is_some());
    assert!(c.alpn_protocols.is_empty());
}

#[test]
fn an_ssl_gateway_without_ssl_virtual_services_has_no_listener() {
    let p = valid(&[
        gateway("plain", 8080, false),
        gateway("secure", 8443, true),
        UPSTREAM.to_string(),
        vs("web", "*", "/", ""),
    ]);
    let names: Vec<&str> = p.listeners.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["listener-::-8080"]);
    let names: Vec<&str> = p.route_configs.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["listener-::-8080-routes"]);
}

#[test]
fn ssl_config_mistakes_are_errors_naming_the_field() {
    let base = || vec![gateway("secure", 8443, true), UPSTREAM.to_string()];
    // One of the pair alone: Gloo's ResolveCommonSslConfig message
    // (projects/gloo/pkg/utils/ssl.go).
    let cases: [(&str, &str); 10] = [
        (
            "{sslFiles: {tlsKey: /k.pem}}",
            "sslConfig.sslFiles: both or none of cert chain and private key must be provided",
        ),
        (
            "{sslFiles: {tlsCert: /c.pem}}",
            "sslConfig.sslFiles: both or none of cert chain and private key must be provided",
        ),
        (
            "{sslFiles: {rootCa: /ca.pem}}",
            "sslConfig.sslFiles.tlsCert is missing",
        ),
        (
            "{sslFiles: {tlsCert: '', tlsKey: /k.pem}}",
            "sslConfig.sslFiles.tlsCert is an empty path",
        ),
        (
            "{sslFiles: {tlsCert: /c.pem, tlsKey: /k.pem, rootCa: ''}}",
            "sslConfig.sslFiles.rootCa is an empty path",
        ),
        (
            "{secretRef: {name: tls, namespace: gloo-system}}",
            "SSL secret not found: list did not find secret gloo-system.tls",
        ),
        (
            "{sds: {targetUri: unix:/sds}}",
            "sslConfig.sds is not implemented by edgeplane yet",
        ),
        ("{}", "sslConfig has no sslFiles"),
        (
            "{sslFiles: {tlsCert: /c.pem, tlsKey: /k.pem}, sniDomains: [a.com, a.com]}",
            "sslConfig.sniDomains lists `a.com` more than once",
        ),
        (
            "{sslFiles: {tlsCert: /c.pem, tlsKey: /k.pem}, parameters: {minimumProtocolVersion: TLSv1_3, maximumProtocolVersion: TLSv1_2}}",
            "sslConfig.parameters: minimumProtocolVersion TLSv1_3 is above maximumProtocolVersion TLSv1_2",
        ),
    ];
    for (cfg, want) in cases {
        let mut docs = base();
        docs.push(vs("web", "*", "/", cfg));
        let errs = errors(&docs);
        assert!(
            errs.iter()
                .any(|(who, m)| who == "web" && m.starts_with(want)),
            "{cfg}: want {want:?} in {errs:?}"
        );
    }
    // A bad version name lists the valid ones.
    let mut docs = base();
    docs.push(vs(
        "web",
        "*",
        "/",
        &ssl("parameters: {minimumProtocolVersion: TLSv9}"),
    ));
    let errs = errors(&docs);
    assert!(
        errs.iter()
            .any(|(_, m)| m.contains("TLS_AUTO, TLSv1_0, TLSv1_1, TLSv1_2, TLSv1_3")),
        "{errs:?}"
    );
    // An Upstream's sslConfig is its own shape (cluster/tests.rs); its
    // secretRef must name an existing Secret, as a listener's must.
    let errs = errors(&[
        gateway("plain", 8080, false),
        "apiVersion: gloo.solo.io/v1\nkind: Upstream\nmetadata: {name: echo, namespace: gloo-system}\nspec: {static: {hosts: [{addr: 127.0.0.1, port: 8081}]}, sslConfig: {secretRef: {name: x}}}\n".to_string(),
    ]);
    assert!(
        errs.iter()
            .any(|(_, m)| m == "SSL secret not found: list did not find secret gloo-system.x"),
        "{errs:?}"
    );
}

/// Gloo's ConsolidateSslConfigurations
/// (`projects/gloo/pkg/translator/ssl_configuration.go`): sslConfigs that
/// differ only in `sniDomains` become one filter chain, whose SNI domains
/// are the union, or none when one of them has none. So several
/// VirtualServices on one certificate without `sniDomains` (Gloo's common
/// wildcard-certificate layout) are served by one catch-all chain.
#[test]
fn ssl_configs_differing_only_in_sni_share_one_chain() {
    let p = valid(&[
        gateway("secure", 8443, true),
        UPSTREAM.to_string(),
        vs("one", "a.example.com", "/", &ssl("")),
        vs("two", "b.example.com", "/", &ssl("")),
        vs(
            "three",
            "c.example.com",
            "/",
            &ssl("sniDomains: [c.example.com]"),
        ),
    ]);
    let secure = listener(&p, 8443);
    assert_eq!(secure.filter_chains.len(), 1, "{secure:?}");
    let m = secure.filter_chains[0].filter_chain_match.as_ref();
    assert!(m.is_none_or(|m| m.server_names.is_empty()));

    let p = valid(&[
        gateway("secure", 8443, true),
        UPSTREAM.to_string(),
        vs(
            "one",
            "a.example.com",
            "/",
            &ssl("sniDomains: [a.example.com, x.example.com]"),
        ),
        vs(
            "two",
            "b.example.com",
            "/",
            &ssl("sniDomains: [b.example.com, a.example.com]"),
        ),
        vs(
            "other",
            "o.example.com",
            "/",
            "{sslFiles: {tlsCert: /certs/o.crt, tlsKey: /certs/o.key}, sniDomains: [o.example.com]}",
        ),
    ]);
    let secure = listener(&p, 8443);
    let snis: Vec<Vec<String>> = secure
        .filter_chains
        .iter()
        .map(|c| {
            c.filter_chain_match
                .as_ref()
                .map(|m| m.server_names.clone())
                .unwrap_or_default()
        })
        .collect();
    // VirtualService order: apps_one, apps_other, apps_two.
    assert_eq!(
        snis,
        [
            vec![
                "a.example.com".to_string(),
                "x.example.com".to_string(),
                "b.example.com".to_string()
            ],
            vec!["o.example.com".to_string()],
        ]
    );
}

/// Two *different* sslConfigs on one match would make Envoy refuse the
/// listener; each VirtualService involved gets the error.
#[test]
fn sni_conflicts_on_one_ssl_gateway_are_errors_on_each_virtual_service() {
    let other = |extra: &str| {
        format!("{{sslFiles: {{tlsCert: /certs/o.crt, tlsKey: /certs/o.key}}{extra}}}")
    };
    let errs = errors(&[
        gateway("secure", 8443, true),
        UPSTREAM.to_string(),
        vs("one", "a.example.com", "/", &ssl("")),
        vs("two", "b.example.com", "/", &other("")),
    ]);
    for who in ["one", "two"] {
        assert!(
            errs.iter()
                .any(|(w, m)| w == who && m.starts_with("ssl conflict: other virtual services on the same SSL Gateway gloo-system.secure")),
            "{who}: {errs:?}"
        );
    }
    let errs = errors(&[
        gateway("secure", 8443, true),
        UPSTREAM.to_string(),
        vs(
            "one",
            "a.example.com",
            "/",
            &ssl("sniDomains: [x.com, y.com]"),
        ),
        vs("two", "b.example.com", "/", &other(", sniDomains: [y.com]")),
    ]);
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs.iter()
            .all(|(_, m)| m.starts_with("ssl conflict: the [y.com] SNI domain"))
    );
    // Different configs on different SNI, and one catch-all beside
    // SNI-matched ones, are fine.
    valid(&[
        gateway("secure", 8443, true),
        UPSTREAM.to_string(),
        vs("one", "a.example.com", "/", &ssl("")),
        vs(
            "two",
            "b.example.com",
            "/",
            &other(", sniDomains: [b.example.com]"),
        ),
    ]);
}

#[test]
fn route_edits_never_change_ssl_listener_bytes_but_ssl_config_edits_do() {
    let docs = |prefix: &str, domain: &str, cert: &str| {
        vec![
            gateway("plain", 8080, false),
            gateway("secure", 8443, true),
            UPSTREAM.to_string(),
            vs("web", "web.example.com", prefix, ""),
            vs(
                "shop",
                domain,
                prefix,
                &format!(
                    "{{sslFiles: {{tlsCert: {cert}, tlsKey: /k.pem}}, sniDomains: [shop.example.com]}}"
                ),
            ),
        ]
    };
    let snap = |d: Vec<String>| load(&d).snapshot.expect("valid");
    let a = snap(docs("/", "shop.example.com", "/c.pem"));
    let b = snap(docs("/other", "shop2.example.com", "/c.pem"));
    let c = snap(docs("/", "shop.example.com", "/c2.pem"));
    let listener_of = |s: &crate::snapshot::Snapshot, name: &str| {
        s.proxies[PROXY]
            .get(ResourceType::Listener, name)
            .expect("listener")
            .clone()
    };
    for name in ["listener-::-8080", "listener-::-8443"] {
        assert_eq!(listener_of(&a, name), listener_of(&b, name), "{name}");
    }
    assert_ne!(
        a.proxies[PROXY].version(ResourceType::Route),
        b.proxies[PROXY].version(ResourceType::Route)
    );
    // A certificate path change touches the SSL listener only.
    assert_eq!(
        listener_of(&a, "listener-::-8080"),
        listener_of(&c, "listener-::-8080")
    );
    assert_ne!(
        listener_of(&a, "listener-::-8443"),
        listener_of(&c, "listener-::-8443")
    );
}
