//! `edgeplane status`: the status API as a table, in the manner of
//! `glooctl get` (or as JSON with `--output json`).

use crate::api::{GetStatusRequest, GetStatusResponse, status_service_client::StatusServiceClient};

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("cannot reach edgeplane's status API at {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("status API call failed: {0}")]
    Call(#[from] tonic::Status),
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
    let mut out = table(&rows);
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
                n.node_id.clone(),
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
        out.push_str(&table(&nodes));
    }
    out
}

fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Connects to the status API at `addr` (`host:port`).
pub async fn connect(
    addr: &str,
) -> Result<StatusServiceClient<tonic::transport::Channel>, StatusError> {
    let url = format!("http://{addr}");
    StatusServiceClient::connect(url)
        .await
        .map_err(|source| StatusError::Connect {
            addr: addr.to_string(),
            source,
        })
}

/// One status snapshot.
pub async fn get(addr: &str) -> Result<GetStatusResponse, StatusError> {
    let mut c = connect(addr).await?;
    Ok(c.get_status(GetStatusRequest {}).await?.into_inner())
}

/// Calls `f` with every status update until the stream ends.
pub async fn watch(addr: &str, mut f: impl FnMut(&GetStatusResponse)) -> Result<(), StatusError> {
    let mut c = connect(addr).await?;
    let mut stream = c.watch_status(GetStatusRequest {}).await?.into_inner();
    while let Some(s) = stream.message().await? {
        f(&s);
    }
    Ok(())
}
