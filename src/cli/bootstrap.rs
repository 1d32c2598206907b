//! `edgeplane bootstrap`: the Envoy bootstrap that connects to `serve`.
//!
//! It matches Gloo's file-mode bootstrap where it matters (ADS over gRPC,
//! `node.metadata.role: <namespace>~<proxyName>`), so a Gloo user's own
//! bootstrap also works against edgeplane unchanged.

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Envoy node id.
    #[arg(long)]
    node_id: String,
    /// Proxy name, as in a Gateway's proxyNames.
    #[arg(long, default_value = "gateway-proxy")]
    proxy_name: String,
    /// Namespace of the Gateway(s) feeding that proxy.
    #[arg(long, default_value = "gloo-system")]
    namespace: String,
    /// edgeplane's xDS address as Envoy reaches it (host:port; host may be a DNS name).
    /// Repeat it for replicas serving the same manifests, most preferred first:
    /// Envoy uses the first that accepts connections and fails over to the next.
    #[arg(long, default_value = "127.0.0.1:9977", num_args = 1, action = clap::ArgAction::Append)]
    xds_address: Vec<String>,
    /// Envoy admin port.
    #[arg(long, default_value_t = 19000)]
    admin_port: u16,
    /// Envoy admin bind address.
    #[arg(long, default_value = "127.0.0.1")]
    admin_address: String,
    /// Use incremental (delta) ADS (`api_type: DELTA_GRPC`): only changed
    /// resources are sent. The default is state of the world (`GRPC`).
    #[arg(long)]
    delta: bool,
    /// Connect to xDS over TLS, trusting this CA (PEM file as Envoy sees
    /// it) for edgeplane's certificate.
    #[arg(long, value_name = "PEM")]
    xds_tls_ca: Option<String>,
    /// Client certificate Envoy presents (mutual TLS); needs --xds-tls-key.
    #[arg(long, value_name = "PEM", requires_all = ["xds_tls_ca", "xds_tls_key"])]
    xds_tls_cert: Option<String>,
    /// Private key of --xds-tls-cert.
    #[arg(long, value_name = "PEM", requires_all = ["xds_tls_ca", "xds_tls_cert"])]
    xds_tls_key: Option<String>,
    /// SNI, and the DNS name edgeplane's certificate must carry; default:
    /// the host of --xds-address when it is a DNS name (for an IP address,
    /// no SNI and the certificate must carry that IP).
    #[arg(long, value_name = "NAME", requires = "xds_tls_ca")]
    xds_tls_sni: Option<String>,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let xds_tls = a.xds_tls_ca.map(|ca| XdsClientTls {
        ca,
        cert: a.xds_tls_cert,
        key: a.xds_tls_key,
        sni: a.xds_tls_sni,
    });
    let mut xds_addresses = a.xds_address.into_iter();
    let xds_address = xds_addresses.next().unwrap_or_default();
    let yaml = render(&BootstrapParams {
        node_id: a.node_id,
        proxy_name: a.proxy_name,
        namespace: a.namespace,
        xds_address,
        xds_failover_addresses: xds_addresses.collect(),
        admin_address: a.admin_address,
        admin_port: a.admin_port,
        delta: a.delta,
        xds_tls,
    })?;
    super::out(&yaml)?;
    Ok(ExitCode::SUCCESS)
}

/// What the bootstrap needs to know.
#[derive(Clone, Debug)]
pub struct BootstrapParams {
    pub node_id: String,
    pub proxy_name: String,
    pub namespace: String,
    /// `host:port` of edgeplane's xDS server; host may be a DNS name.
    pub xds_address: String,
    /// Further replicas of edgeplane on the same manifests (`host:port`),
    /// in order of preference after `xds_address`: Envoy talks to the
    /// first one that accepts connections and fails over to the next.
    pub xds_failover_addresses: Vec<String>,
    pub admin_address: String,
    pub admin_port: u16,
    /// Incremental (delta) ADS instead of state of the world.
    pub delta: bool,
    /// TLS to edgeplane's xDS port (`serve --xds-tls-*`); `None`: plaintext.
    pub xds_tls: Option<XdsClientTls>,
}

/// How Envoy's `xds_cluster` speaks TLS to `serve --xds-tls-*`. Paths are
/// files as Envoy sees them (they are not read here); Envoy resolves
/// relative ones against its working directory.
#[derive(Clone, Debug, Default)]
pub struct XdsClientTls {
    /// CA certificate(s) edgeplane's server certificate must chain to.
    pub ca: String,
    /// Client certificate chain and its key, for `--xds-tls-client-ca`.
    pub cert: Option<String>,
    pub key: Option<String>,
    /// SNI sent, and the DNS name the server certificate must carry;
    /// default: the xDS host when it is a DNS name (for an IP address no
    /// SNI is sent and the certificate must carry that IP address).
    pub sni: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("--xds-address `{0}` is not host:port")]
    BadXdsAddress(String),
    #[error("--xds-tls-cert and --xds-tls-key go together: give both or neither")]
    CertKeyPair,
    #[error("{0} is empty")]
    Empty(&'static str),
    #[error(
        "the --xds-address hosts differ ({0}): with TLS give --xds-tls-sni, a name every replica's certificate carries"
    )]
    TlsReplicasNeedSni(String),
}

fn quote(s: &str) -> String {
    // JSON strings are valid YAML flow scalars, and escape everything.
    serde_json::Value::String(s.to_string()).to_string()
}

/// Renders the bootstrap as YAML.
pub fn render(p: &BootstrapParams) -> Result<String, BootstrapError> {
    let (host, _) = host_port(&p.xds_address)?;
    let replicas = std::iter::once(&p.xds_address)
        .chain(&p.xds_failover_addresses)
        .map(|a| host_port(a))
        .collect::<Result<Vec<_>, _>>()?;
    let cluster_type = if replicas
        .iter()
        .all(|(h, _)| h.parse::<std::net::IpAddr>().is_ok())
    {
        "STATIC"
    } else {
        "STRICT_DNS"
    };
    let role = crate::translate::proxy_key(&p.namespace, &p.proxy_name);
    let transport_socket = match &p.xds_tls {
        Some(tls) => {
            if tls.sni.is_none() && replicas.iter().any(|(h, _)| *h != host) {
                let hosts: Vec<&str> = replicas.iter().map(|(h, _)| *h).collect();
                return Err(BootstrapError::TlsReplicasNeedSni(hosts.join(", ")));
            }
            tls_transport_socket(tls, host)?
        }
        None => String::new(),
    };
    let endpoints = xds_endpoints(&replicas);
    Ok(format!(
        r#"# Envoy bootstrap generated by `edgeplane bootstrap`.
# node.metadata.role must be <namespace>~<proxyName> of a Gateway's proxyNames
# (Gloo's convention): it decides which listeners and routes this Envoy gets.
node:
  id: {node_id}
  cluster: {cluster}
  metadata:
    role: {role}
dynamic_resources:
  ads_config:
    # GRPC = state of the world; DELTA_GRPC = incremental (only changed
    # resources travel). edgeplane serves both.
    api_type: {api_type}
    transport_api_version: V3
    set_node_on_first_message_only: true
    grpc_services:
    - envoy_grpc:
        cluster_name: xds_cluster
        # Large route tables exceed gRPC's customary 4 MiB per message.
        max_receive_message_length: {max_message}
        # Reconnect soon after edgeplane restarts (Envoy's default backoff
        # grows to 30 s): jittered, 100 ms doubling up to 1 s.
        retry_policy:
          retry_back_off:
            base_interval: 0.1s
            max_interval: 1s
  cds_config:
    ads: {{}}
    resource_api_version: V3
  lds_config:
    ads: {{}}
    resource_api_version: V3
static_resources:
  clusters:
  - name: xds_cluster
    type: {cluster_type}
    connect_timeout: 1s
    load_assignment:
      cluster_name: xds_cluster
      endpoints:
{endpoints}    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config:
          http2_protocol_options:
            connection_keepalive:
              interval: 10s
              timeout: 5s
{transport_socket}{stats_sink}admin:
  address:
    socket_address:
      address: {admin_address}
      port_value: {admin_port}
"#,
        node_id = quote(&p.node_id),
        cluster = quote(&p.proxy_name),
        role = quote(&role),
        admin_address = quote(&p.admin_address),
        admin_port = p.admin_port,
        api_type = if p.delta { "DELTA_GRPC" } else { "GRPC" },
        max_message = crate::xds::MAX_XDS_MESSAGE_BYTES,
        stats_sink = STATS_SINK,
    ))
}

/// Envoy streams its stats to edgeplane (the MetricsService on the xDS
/// port, `stats_sink.rs`) every second, so edgeplane can say how many
/// connections a listener change drains (`drain.rs`). Top-level bootstrap
/// fields, placed after `static_resources`.
const STATS_SINK: &str = r#"# Envoy streams its stats to edgeplane every second (gRPC MetricsService on
# the xDS port), so edgeplane can say how many connections of which listener
# a Gateway edit drains.
stats_sinks:
- name: envoy.stat_sinks.metrics_service
  typed_config:
    "@type": type.googleapis.com/envoy.config.metrics.v3.MetricsServiceConfig
    transport_api_version: V3
    # Summaries are smaller than histograms; edgeplane reads gauges only.
    histogram_emit_mode: SUMMARY
    grpc_service:
      envoy_grpc:
        cluster_name: xds_cluster
stats_flush_interval: 1s
"#;

/// Splits `host:port` (IPv6 hosts in brackets).
fn host_port(address: &str) -> Result<(&str, u16), BootstrapError> {
    address
        .rsplit_once(':')
        .and_then(|(h, port)| Some((h.trim_matches(['[', ']']), port.parse::<u16>().ok()?)))
        .ok_or_else(|| BootstrapError::BadXdsAddress(address.to_string()))
}

/// The `xds_cluster`'s `load_assignment.endpoints` items, and, for several
/// replicas, what makes Envoy fail over between them; ends in a newline.
///
/// Replica `i` is alone at priority `i`, so every Envoy uses the first
/// replica that works: replicas serve identical versions (content hashes),
/// so which one it is never matters, and a preferred replica keeps streams
/// predictable. A replica that refuses a connection (killed, stopped,
/// restarting) is ejected at once by outlier detection
/// (`consecutive_local_origin_failure: 1`), and the next stream attempt,
/// after the retry backoff, goes to the next priority. Ejections are short
/// (250 ms, growing to 2 s while a replica keeps failing) so that a
/// restarted replica is back in line within a moment, and
/// `update_merge_window: 0s` makes every ejection and return count at once
/// (Envoy's default of 1 s delayed a fail-back by about a second, measured).
/// No active health checks: they would cost every replica a connection per
/// Envoy per interval. Envoy stays on the replica it is connected to until
/// that one fails.
fn xds_endpoints(replicas: &[(&str, u16)]) -> String {
    let endpoint = |host: &str, port: u16| {
        format!(
            "        - endpoint:\n            address:\n              socket_address:\n                address: {}\n                port_value: {port}\n",
            quote(host)
        )
    };
    if let [(host, port)] = replicas {
        return format!("      - lb_endpoints:\n{}", endpoint(host, *port));
    }
    let mut out = String::new();
    for (priority, (host, port)) in replicas.iter().enumerate() {
        let note = if priority == 0 {
            "preferred"
        } else {
            "used while the ones before it refuse connections"
        };
        out.push_str(&format!(
            "      # replica {}: {note}\n      - priority: {priority}\n        lb_endpoints:\n{}",
            priority + 1,
            endpoint(host, *port)
        ));
    }
    // The cluster's own fields, after `load_assignment`.
    out.push_str(
        r#"    # A replica that refuses a connection is skipped (ejected) at once, for
    # 250 ms to 2 s, so the next attempt goes to the next one; when all are
    # skipped Envoy tries them anyway (panic mode).
    outlier_detection:
      consecutive_local_origin_failure: 1
      enforcing_consecutive_local_origin_failure: 100
      split_external_local_origin_errors: true
      interval: 0.25s
      base_ejection_time: 0.25s
      max_ejection_time: 2s
      max_ejection_percent: 100
    # Health changes take effect at once (the default merges them for 1 s).
    common_lb_config:
      update_merge_window: 0s
"#,
    );
    out
}

/// The `xds_cluster`'s `transport_socket` (indented for its place in the
/// cluster), ending in a newline.
fn tls_transport_socket(tls: &XdsClientTls, host: &str) -> Result<String, BootstrapError> {
    if tls.ca.is_empty() {
        return Err(BootstrapError::Empty("--xds-tls-ca"));
    }
    if tls.sni.as_deref() == Some("") {
        return Err(BootstrapError::Empty("--xds-tls-sni"));
    }
    let ip = host.parse::<std::net::IpAddr>().ok();
    // The server's identity: the SNI asked for, else the host dialled.
    let sni = tls
        .sni
        .clone()
        .or_else(|| ip.is_none().then(|| host.to_string()));
    let (san_type, san) = match (&sni, ip) {
        (None, Some(ip)) => ("IP_ADDRESS", ip.to_string()),
        _ => ("DNS", sni.clone().unwrap_or_else(|| host.to_string())),
    };
    let sni_line = sni
        .as_ref()
        .map(|n| format!("\n        sni: {}", quote(n)))
        .unwrap_or_default();
    let certificates = match (&tls.cert, &tls.key) {
        (None, None) => String::new(),
        (Some(cert), Some(key)) if !cert.is_empty() && !key.is_empty() => format!(
            r#"
          tls_certificates:
          - certificate_chain:
              filename: {cert}
            private_key:
              filename: {key}"#,
            cert = quote(cert),
            key = quote(key),
        ),
        _ => return Err(BootstrapError::CertKeyPair),
    };
    Ok(format!(
        r#"    # TLS to edgeplane (`serve --xds-tls-*`): the server certificate must
    # chain to trusted_ca and carry the expected name; with tls_certificates
    # Envoy presents a client certificate (mutual TLS).
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext{sni_line}
        common_tls_context:
          alpn_protocols: [h2]{certificates}
          validation_context:
            trusted_ca:
              filename: {ca}
            match_typed_subject_alt_names:
            - san_type: {san_type}
              matcher:
                exact: {san}
"#,
        ca = quote(&tls.ca),
        san = quote(&san),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(xds_address: &str, xds_tls: Option<XdsClientTls>) -> BootstrapParams {
        BootstrapParams {
            node_id: "n".into(),
            proxy_name: "gateway-proxy".into(),
            namespace: "gloo-system".into(),
            xds_address: xds_address.into(),
            xds_failover_addresses: Vec::new(),
            admin_address: "127.0.0.1".into(),
            admin_port: 0,
            delta: false,
            xds_tls,
        }
    }

    /// The `xds_cluster`'s transport socket, parsed.
    fn transport_socket(p: &BootstrapParams) -> serde_json::Value {
        let yaml = render(p).expect("render");
        let v: serde_json::Value = serde_saphyr::from_str(&yaml).expect("bootstrap is YAML");
        v["static_resources"]["clusters"][0]["transport_socket"].clone()
    }

    fn tls(cert: bool) -> XdsClientTls {
        XdsClientTls {
            ca: "/pki/ca.crt".into(),
            cert: cert.then(|| "/pki/client.crt".into()),
            key: cert.then(|| "/pki/client.key".into()),
            sni: None,
        }
    }

    #[test]
    fn stats_go_to_edgeplane_over_the_xds_cluster() {
        let yaml = render(&params("127.0.0.1:9977", None)).expect("render");
        let v: serde_json::Value = serde_saphyr::from_str(&yaml).expect("bootstrap is YAML");
        assert_eq!(v["stats_flush_interval"], "1s");
        let sink = &v["stats_sinks"][0];
        assert_eq!(sink["name"], "envoy.stat_sinks.metrics_service");
        assert_eq!(
            sink["typed_config"]["grpc_service"]["envoy_grpc"]["cluster_name"],
            "xds_cluster"
        );
        assert_eq!(sink["typed_config"]["transport_api_version"], "V3");
    }

    #[test]
    fn plaintext_has_no_transport_socket() {
        assert!(transport_socket(&params("127.0.0.1:9977", None)).is_null());
    }

    #[test]
    fn ip_host_checks_the_ip_san_and_sends_no_sni() {
        let t = transport_socket(&params("127.0.0.1:9977", Some(tls(true))));
        assert_eq!(t["name"], "envoy.transport_sockets.tls");
        let ctx = &t["typed_config"];
        assert!(ctx.get("sni").is_none(), "{ctx}");
        let common = &ctx["common_tls_context"];
        assert_eq!(common["alpn_protocols"], serde_json::json!(["h2"]));
        assert_eq!(
            common["tls_certificates"],
            serde_json::json!([{
                "certificate_chain": {"filename": "/pki/client.crt"},
                "private_key": {"filename": "/pki/client.key"},
            }])
        );
        assert_eq!(
            common["validation_context"],
            serde_json::json!({
                "trusted_ca": {"filename": "/pki/ca.crt"},
                "match_typed_subject_alt_names": [
                    {"san_type": "IP_ADDRESS", "matcher": {"exact": "127.0.0.1"}}
                ],
            })
        );
    }

    #[test]
    fn dns_host_is_the_sni_and_the_dns_san_unless_sni_is_given() {
        let t = transport_socket(&params("edgeplane:9977", Some(tls(false))));
        let ctx = &t["typed_config"];
        assert_eq!(ctx["sni"], "edgeplane");
        assert!(ctx["common_tls_context"].get("tls_certificates").is_none());
        let san = &ctx["common_tls_context"]["validation_context"]["match_typed_subject_alt_names"];
        assert_eq!(
            san,
            &serde_json::json!([{"san_type": "DNS", "matcher": {"exact": "edgeplane"}}])
        );

        let mut with_sni = tls(false);
        with_sni.sni = Some("xds.example.com".into());
        let t = transport_socket(&params("127.0.0.1:9977", Some(with_sni)));
        let ctx = &t["typed_config"];
        assert_eq!(ctx["sni"], "xds.example.com");
        assert_eq!(
            ctx["common_tls_context"]["validation_context"]["match_typed_subject_alt_names"][0]["san_type"],
            "DNS"
        );
    }

    #[test]
    fn client_cert_and_key_go_together() {
        let mut t = tls(true);
        t.key = None;
        let e = render(&params("127.0.0.1:9977", Some(t))).map(|_| ()).err();
        assert!(matches!(e, Some(BootstrapError::CertKeyPair)), "{e:?}");
        let mut t = tls(false);
        t.ca = String::new();
        let e = render(&params("127.0.0.1:9977", Some(t))).map(|_| ()).err();
        assert!(
            matches!(e, Some(BootstrapError::Empty("--xds-tls-ca"))),
            "{e:?}"
        );
    }

    fn parsed(p: &BootstrapParams) -> serde_json::Value {
        let yaml = render(p).expect("render");
        serde_saphyr::from_str(&yaml).expect("bootstrap is YAML")
    }

    #[test]
    fn one_address_is_one_endpoint_without_failover_settings() {
        let v = parsed(&params("127.0.0.1:9977", None));
        let cluster = &v["static_resources"]["clusters"][0];
        assert_eq!(cluster["type"], "STATIC");
        let endpoints = cluster["load_assignment"]["endpoints"]
            .as_array()
            .expect("endpoints");
        assert_eq!(endpoints.len(), 1);
        assert!(endpoints[0].get("priority").is_none());
        assert!(cluster.get("outlier_detection").is_none());
        let retry = &v["dynamic_resources"]["ads_config"]["grpc_services"][0]["envoy_grpc"]["retry_policy"]
            ["retry_back_off"];
        assert_eq!(retry["base_interval"], "0.1s");
        assert_eq!(retry["max_interval"], "1s");
    }

    #[test]
    fn replicas_are_priorities_in_order_with_ejection_on_connect_failure() {
        let mut p = params("127.0.0.1:9977", None);
        p.xds_failover_addresses = vec!["127.0.0.1:9978".into(), "edgeplane-2:9977".into()];
        let v = parsed(&p);
        let cluster = &v["static_resources"]["clusters"][0];
        // A DNS name among them: the cluster resolves.
        assert_eq!(cluster["type"], "STRICT_DNS");
        let endpoints = cluster["load_assignment"]["endpoints"]
            .as_array()
            .expect("endpoints");
        let got: Vec<(u64, String, u64)> = endpoints
            .iter()
            .map(|e| {
                let a = &e["lb_endpoints"][0]["endpoint"]["address"]["socket_address"];
                (
                    e["priority"].as_u64().unwrap_or(99),
                    a["address"].as_str().unwrap_or("").to_string(),
                    a["port_value"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (0, "127.0.0.1".to_string(), 9977),
                (1, "127.0.0.1".to_string(), 9978),
                (2, "edgeplane-2".to_string(), 9977),
            ]
        );
        let od = &cluster["outlier_detection"];
        assert_eq!(od["consecutive_local_origin_failure"], 1);
        assert_eq!(od["enforcing_consecutive_local_origin_failure"], 100);
        assert_eq!(od["split_external_local_origin_errors"], true);
        assert_eq!(od["max_ejection_percent"], 100);
        assert_eq!(cluster["common_lb_config"]["update_merge_window"], "0s");

        p.xds_failover_addresses = vec!["127.0.0.1:9978".into()];
        let v = parsed(&p);
        assert_eq!(v["static_resources"]["clusters"][0]["type"], "STATIC");
    }

    #[test]
    fn a_bad_replica_address_is_named() {
        let mut p = params("127.0.0.1:9977", None);
        p.xds_failover_addresses = vec!["nope".into()];
        let e = render(&p).map(|_| ()).err();
        assert!(
            matches!(&e, Some(BootstrapError::BadXdsAddress(a)) if a == "nope"),
            "{e:?}"
        );
    }

    #[test]
    fn tls_replicas_on_different_hosts_need_one_server_name() {
        let mut p = params("10.0.0.1:9977", Some(tls(false)));
        p.xds_failover_addresses = vec!["10.0.0.2:9977".into()];
        let e = render(&p).map(|_| ()).err();
        assert!(
            matches!(e, Some(BootstrapError::TlsReplicasNeedSni(_))),
            "{e:?}"
        );
        let mut with_sni = tls(false);
        with_sni.sni = Some("xds.example.com".into());
        p.xds_tls = Some(with_sni);
        assert_eq!(
            transport_socket(&p)["typed_config"]["sni"],
            "xds.example.com"
        );
        // The same host on other ports needs nothing more.
        let mut p = params("127.0.0.1:9977", Some(tls(false)));
        p.xds_failover_addresses = vec!["127.0.0.1:9978".into()];
        assert!(render(&p).is_ok());
    }
}
