//! `edgeplane status`: the status API as a table, in the manner of
//! `glooctl get`, or as JSON with `--output json` (the report `/status`
//! shows, in the same shape). The client half is shared with `check`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::ValueEnum;

use super::table::table;
use crate::serve::tls::ClientTlsFiles;
use crate::status::api::{
    ConnectedNode, GetStatusRequest, GetStatusResponse, ListenerDrain,
    status_service_client::StatusServiceClient,
};
use crate::xds::registry::{NACK_MESSAGE_MAX_BYTES, clean_message};

/// `status --output`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StatusFormat {
    Table,
    Json,
}

/// Where edgeplane's status API is and how to reach it (`status`, `check`).
#[derive(clap::Args)]
pub struct Connection {
    /// edgeplane's xDS/status gRPC address.
    #[arg(long, default_value = "127.0.0.1:9977", env = "EDGEPLANE_XDS_ADDRESS")]
    pub server: String,
    /// Connect over TLS, trusting this CA (PEM) for the server's certificate.
    #[arg(long, env = "EDGEPLANE_TLS_CA", value_name = "PEM")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for a server that requires one; needs --tls-key.
    #[arg(long, env = "EDGEPLANE_TLS_CERT", value_name = "PEM", requires_all = ["tls_ca", "tls_key"])]
    pub tls_cert: Option<PathBuf>,
    /// Private key of --tls-cert (PEM).
    #[arg(long, env = "EDGEPLANE_TLS_KEY", value_name = "PEM", requires_all = ["tls_ca", "tls_cert"])]
    pub tls_key: Option<PathBuf>,
}

impl Connection {
    pub fn tls(&self) -> Option<ClientTlsFiles> {
        self.tls_ca.clone().map(|ca| ClientTlsFiles {
            ca,
            cert: self.tls_cert.clone(),
            key: self.tls_key.clone(),
            server_name: None,
        })
    }
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    connection: Connection,
    /// Keep printing as the status changes.
    #[arg(long)]
    watch: bool,
    /// `table` or `json`.
    #[arg(long, value_enum, default_value = "table")]
    output: StatusFormat,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let tls = a.connection.tls();
    let server = &a.connection.server;
    let print = |s: &GetStatusResponse| -> anyhow::Result<()> {
        match a.output {
            StatusFormat::Json => super::outln(&json_terminal_safe(&serde_json::to_string(s)?)),
            StatusFormat::Table => super::outln(&render_table(s)),
        }
    };
    super::runtime()?.block_on(async {
        if a.watch {
            watch_with(server, tls.as_ref(), print).await
        } else {
            let s = get_with(server, tls.as_ref()).await?;
            print(&s)
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("cannot reach edgeplane's status API at {addr} (give its xDS address with --server)")]
    Connect {
        addr: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("status API call failed")]
    Call(#[from] tonic::Status),
    #[error("edgeplane at {addr} closed the connection ({reason}); {hint}")]
    Closed {
        addr: String,
        reason: String,
        hint: &'static str,
    },
    #[error(transparent)]
    Tls(#[from] crate::serve::tls::TlsError),
}

/// Every cell made safe for a terminal: what the server sends (Envoy's NACK
/// messages, node ids, reasons) may hold escape sequences, whichever server
/// sent it. Control and bidi characters are escaped (`\u001b`) and each cell
/// is capped at 4 KiB (`xds::registry::clean_message`).
fn terminal_safe<const N: usize>(mut rows: Vec<[String; N]>) -> Vec<[String; N]> {
    for r in &mut rows {
        for c in r.iter_mut() {
            if c.chars().any(|ch| ch.is_control())
                || c.len() > NACK_MESSAGE_MAX_BYTES
                || !c.is_ascii()
            {
                *c = clean_message(c);
            }
        }
    }
    rows
}

/// `serde_json` escapes U+0000..U+001F but writes DEL, the C1 controls
/// (U+0080..U+009F: CSI is U+009B) and bidi overrides as they are; in JSON
/// text they can only be inside strings, where `\uXXXX` means the same.
fn json_terminal_safe(json: &str) -> String {
    if json.is_ascii() && !json.contains('\u{7f}') {
        return json.to_string();
    }
    let mut out = String::with_capacity(json.len());
    for ch in json.chars() {
        if ch.is_control()
            || matches!(ch, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        {
            out.push_str(&format!("\\u{:04x}", u32::from(ch)));
        } else {
            out.push(ch);
        }
    }
    out
}

/// Renders resources and connected nodes as aligned text tables.
pub fn render_table(s: &GetStatusResponse) -> String {
    let mut rows = vec![[
        "KIND".to_string(),
        "NAMESPACE".into(),
        "NAME".into(),
        "STATUS".into(),
        "SERVING".into(),
        "PROXIES".into(),
        "DETAILS".into(),
    ]];
    for r in &s.resources {
        let mut details: Vec<String> = r
            .reasons
            .iter()
            .map(|d| format!("{}:{}:{}: {}", d.file, d.line, d.column, d.message))
            .collect();
        details.extend(
            r.proxies
                .iter()
                .filter(|p| p.state != "Accepted")
                .map(|p| format!("{}: {}", p.proxy, p.reason)),
        );
        let detail = match details.len() {
            0 => String::new(),
            1 => details.remove(0),
            n => format!("{} (+{} more)", details.remove(0), n - 1),
        };
        rows.push([
            r.kind.clone(),
            r.namespace.clone(),
            r.name.clone(),
            r.state.clone(),
            r.serving.clone(),
            r.proxies
                .iter()
                .map(|p| p.proxy.as_str())
                .collect::<Vec<_>>()
                .join(","),
            detail,
        ]);
    }
    let mut out = table(&terminal_safe(rows));
    let mut nodes = vec![[
        "NODE".to_string(),
        "PROXY".into(),
        "ADS".into(),
        "TYPE".into(),
        "ACKED".into(),
        "NACKED".into(),
        "NACK MESSAGE".into(),
    ]];
    for n in &s.nodes {
        for t in &n.types {
            nodes.push([
                node_label(n),
                n.proxy.clone(),
                n.xds_mode.clone(),
                t.type_url.rsplit('.').next().unwrap_or("").to_string(),
                t.acked_version.clone(),
                t.nacked_version.clone(),
                t.nack_message.lines().next().unwrap_or("").to_string(),
            ]);
        }
    }
    if nodes.len() > 1 {
        out.push('\n');
        out.push_str(&table(&terminal_safe(nodes)));
    }
    if s.nodes.iter().any(|n| n.stats_reported) {
        out.push('\n');
        out.push_str(&connections_table(&s.nodes));
    }
    if !s.drains.is_empty() {
        out.push('\n');
        let now = i64::try_from(crate::xds::registry::now_unix_ms()).unwrap_or(i64::MAX);
        out.push_str(&drains_table(&s.drains, now));
    }
    out
}

/// A node as the tables name it: with the replica it is connected to when
/// that is another `serve` replica on the same etcd store.
fn node_label(n: &ConnectedNode) -> String {
    if n.replica.is_empty() {
        n.node_id.clone()
    } else {
        format!("{} (replica {})", n.node_id, n.replica)
    }
}

/// Per node that streams its stats: its live WebSockets (upgraded
/// connections) and upgrades since Envoy started, then a line per listener
/// with its connections and its WebSockets (`(shared)` when Envoy counts
/// them for several listeners at once: one HCM stat prefix).
fn connections_table(nodes: &[ConnectedNode]) -> String {
    let mut rows = vec![[
        "NODE".to_string(),
        "LISTENER".into(),
        "CONNECTIONS".into(),
        "WEBSOCKETS".into(),
        "UPGRADES TOTAL".into(),
    ]];
    for n in nodes.iter().filter(|n| n.stats_reported) {
        rows.push([
            node_label(n),
            "(all)".into(),
            n.listeners
                .iter()
                .map(|l| l.active_connections)
                .sum::<u64>()
                .to_string(),
            n.upgrades_active.to_string(),
            n.upgrades_total.to_string(),
        ]);
        for l in &n.listeners {
            let shared = if l.upgrades_shared { " (shared)" } else { "" };
            rows.push([
                node_label(n),
                l.listener.clone(),
                l.active_connections.to_string(),
                format!("{}{shared}", l.upgrades_active),
                format!("{}{shared}", l.upgrades_total),
            ]);
        }
    }
    table(&terminal_safe(rows))
}

/// The most recent listener drains (newest last, at most 10), with their
/// age at `now_ms`.
fn drains_table(drains: &[ListenerDrain], now_ms: i64) -> String {
    let mut rows = vec![[
        "DRAINED".to_string(),
        "LISTENER".into(),
        "NODE".into(),
        "CONNECTIONS".into(),
        "CHANGE".into(),
    ]];
    for d in drains.iter().skip(drains.len().saturating_sub(10)) {
        let change = if d.filter_chains.is_empty() {
            d.change.clone()
        } else {
            format!(
                "{} (filter chains {})",
                d.change,
                d.filter_chains.join(", ")
            )
        };
        rows.push([
            format!("{}s ago", (now_ms - d.at_unix_ms).max(0) / 1000),
            d.listener.clone(),
            d.node_id.clone(),
            d.active_connections
                .map_or_else(|| "unknown".to_string(), |n| n.to_string()),
            change,
        ]);
    }
    table(&terminal_safe(rows))
}

/// Connects to the status API at `addr` (`host:port`); over TLS with `tls`
/// (the `status --tls-*` files), for `serve --xds-tls-*`.
pub async fn connect_with(
    addr: &str,
    tls: Option<&ClientTlsFiles>,
) -> Result<StatusServiceClient<tonic::transport::Channel>, StatusError> {
    let err = |source| StatusError::Connect {
        addr: addr.to_string(),
        source,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut endpoint =
        tonic::transport::Endpoint::from_shared(format!("{scheme}://{addr}")).map_err(err)?;
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls.load()?).map_err(err)?;
    }
    let channel = endpoint.connect().await.map_err(err)?;
    Ok(StatusServiceClient::new(channel))
}

/// The error of the first call on a connection. A server that refuses the
/// client's certificate (or its absence) shows up only here: under TLS 1.3
/// it checks the certificate after the client has finished its side of the
/// handshake, and the client then sees its connection closed. A plaintext
/// client of a TLS server gets a TLS alert where HTTP/2 was expected.
fn first_call_error(
    addr: &str,
    tls: Option<&ClientTlsFiles>,
    status: tonic::Status,
) -> StatusError {
    // A failure of the connection itself, not an answer from the server.
    let transport =
        std::error::Error::source(&status).is_some_and(|e| e.is::<tonic::transport::Error>());
    if !transport {
        return StatusError::Call(status);
    }
    let hint = match tls {
        None => "if it serves TLS (serve --xds-tls-cert), give --tls-ca",
        Some(t) if t.cert.is_none() => {
            "if it requires a client certificate (serve --xds-tls-client-ca), give --tls-cert and --tls-key"
        }
        Some(_) => {
            "it may have refused the client certificate: is it signed by the server's --xds-tls-client-ca?"
        }
    };
    StatusError::Closed {
        addr: addr.to_string(),
        reason: innermost(&status),
        hint,
    }
}

/// The last error in `e`'s source chain, e.g. hyper's "connection closed"
/// below tonic's "transport error".
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut e = e;
    while let Some(next) = e.source() {
        e = next;
    }
    e.to_string()
}

/// One status snapshot, over TLS with `tls`.
pub async fn get_with(
    addr: &str,
    tls: Option<&ClientTlsFiles>,
) -> Result<GetStatusResponse, StatusError> {
    let mut c = connect_with(addr, tls).await?;
    match c.get_status(GetStatusRequest {}).await {
        Ok(r) => Ok(r.into_inner()),
        Err(status) => Err(first_call_error(addr, tls, status)),
    }
}

/// Calls `f` with every status update until the stream ends or `f` fails
/// (over TLS with `tls`).
pub async fn watch_with(
    addr: &str,
    tls: Option<&ClientTlsFiles>,
    mut f: impl FnMut(&GetStatusResponse) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut c = connect_with(addr, tls).await?;
    let mut stream = match c.watch_status(GetStatusRequest {}).await {
        Ok(r) => r.into_inner(),
        Err(status) => return Err(first_call_error(addr, tls, status).into()),
    };
    while let Some(s) = stream.message().await.map_err(StatusError::Call)? {
        f(&s)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::api::ListenerConnections;

    #[test]
    fn connections_show_websockets_per_node_and_listener() {
        let l = |name: &str, conns, ws, shared| ListenerConnections {
            listener: name.into(),
            active_connections: conns,
            upgrades_active: ws,
            upgrades_total: ws + 1,
            upgrades_shared: shared,
        };
        let nodes = [
            ConnectedNode {
                node_id: "n1".into(),
                stats_reported: true,
                listeners: vec![l("listener-a", 3, 2, false), l("listener-b", 1, 0, true)],
                upgrades_active: 2,
                upgrades_total: 3,
                ..Default::default()
            },
            ConnectedNode {
                node_id: "quiet".into(),
                ..Default::default()
            },
            // On another replica: every row of it says so.
            ConnectedNode {
                node_id: "n2".into(),
                replica: "host-7".into(),
                stats_reported: true,
                listeners: vec![l("listener-a", 1, 1, false)],
                upgrades_active: 1,
                upgrades_total: 2,
                ..Default::default()
            },
        ];
        let text = connections_table(&nodes);
        let rows: Vec<Vec<&str>> = text
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            rows[0],
            [
                "NODE",
                "LISTENER",
                "CONNECTIONS",
                "WEBSOCKETS",
                "UPGRADES",
                "TOTAL"
            ]
        );
        assert_eq!(rows[1], ["n1", "(all)", "4", "2", "3"]);
        assert_eq!(rows[2], ["n1", "listener-a", "3", "2", "3"]);
        assert_eq!(
            rows[3],
            ["n1", "listener-b", "1", "0", "(shared)", "1", "(shared)"]
        );
        assert_eq!(
            rows[4],
            ["n2", "(replica", "host-7)", "(all)", "1", "1", "2"]
        );
        assert_eq!(
            rows[5],
            ["n2", "(replica", "host-7)", "listener-a", "1", "1", "2"]
        );
        assert_eq!(rows.len(), 6, "{text}");
    }

    #[test]
    fn server_text_is_escaped_before_the_terminal() {
        let s = GetStatusResponse {
            nodes: vec![ConnectedNode {
                node_id: "evil\u{1b}]0;title\u{7}".into(),
                types: vec![crate::status::api::NodeTypeState {
                    type_url: "type.googleapis.com/envoy.config.route.v3.RouteConfiguration".into(),
                    nack_message: format!("\u{1b}[2J\u{9b}31m{}", "x".repeat(10_000)),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let text = render_table(&s);
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{text:?}"
        );
        assert!(text.contains("evil\\u001b]0;title\\u0007"), "{text}");
        assert!(text.contains("\\u001b[2J\\u009b31m"), "{text}");
        assert!(text.len() < 2 * NACK_MESSAGE_MAX_BYTES, "{}", text.len());
        let json = json_terminal_safe("{\"m\":\"a\u{9b}b\u{202e}c\"}");
        assert_eq!(json, "{\"m\":\"a\\u009bb\\u202ec\"}");
    }

    #[test]
    fn drains_show_listener_node_connections_and_age() {
        let d = |conns: Option<u64>, chains: &[&str]| ListenerDrain {
            listener: "listener-::-8080".into(),
            proxy: "gloo-system~gateway-proxy".into(),
            node_id: "n1".into(),
            change: "modified".into(),
            filter_chains: chains.iter().map(|c| c.to_string()).collect(),
            active_connections: conns,
            at_unix_ms: 1_000,
            version: "v".into(),
        };
        let text = drains_table(&[d(Some(3), &[]), d(None, &["a_vs"])], 13_500);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            ["12s", "ago", "listener-::-8080", "n1", "3", "modified"]
        );
        assert!(lines[2].contains("unknown"), "{text}");
        assert!(lines[2].contains("modified (filter chains a_vs)"), "{text}");
    }
}
