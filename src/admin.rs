//! A tiny admin HTTP server for humans and probes.
//!
//! Endpoints: `/healthz` (process up), `/readyz` (200 once a valid snapshot
//! is served, else 503), `/status` (JSON: the same data as the gRPC
//! `StatusService`, plus `lastLoad`: the work of the most recent load,
//! files read vs reused, resources encoded vs reused, durations). Plain
//! HTTP/1.1, one request per connection: it is for
//! curl and health checks, not traffic.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::api::current_status;
use crate::server::Shared;
use crate::snapshot::{PUSH_ORDER, ResourceType};

pub async fn run(listener: TcpListener, shared: Shared) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let n = match tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf)).await {
                Ok(Ok(n)) => n,
                _ => return,
            };
            let req = String::from_utf8_lossy(&buf[..n]);
            let path = req.split_whitespace().nth(1).unwrap_or("/");
            let (code, body) = respond(path, &shared);
            let reason = match code {
                200 => "OK",
                404 => "Not Found",
                _ => "Service Unavailable",
            };
            let resp = format!(
                "HTTP/1.1 {code} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
        });
    }
}

fn respond(path: &str, shared: &Shared) -> (u16, String) {
    match path {
        "/healthz" => (200, "{\"status\":\"ok\"}".into()),
        "/readyz" => {
            if shared.snapshots.borrow().is_some() {
                (200, "{\"ready\":true}".into())
            } else {
                (503, "{\"ready\":false}".into())
            }
        }
        "/status" => {
            let s = current_status(shared);
            let last_load = last_load(shared);
            let body = json!({
                "lastLoad": last_load,
                "serving": s.serving,
                "lastLoadFailed": s.last_load_failed,
                "loads": s.loads,
                "proxies": s.proxies.iter().map(|p| json!({
                    "key": p.key,
                    "types": p.types.iter().map(|t| json!({
                        "typeUrl": t.type_url, "version": t.version, "resources": t.resource_names,
                    })).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
                "diagnostics": s.diagnostics.iter().map(|d| json!({
                    "severity": if d.severity == crate::api::diagnostic::Severity::Error as i32 { "error" } else { "warning" },
                    "file": d.file, "line": d.line, "column": d.column,
                    "kind": d.kind, "namespace": d.namespace, "name": d.name, "message": d.message,
                })).collect::<Vec<_>>(),
                "resources": s.resources.iter().map(|r| json!({
                    "kind": r.kind, "namespace": r.namespace, "name": r.name,
                    "state": r.state, "serving": r.serving, "file": r.file, "line": r.line,
                    "reasons": r.reasons.iter().map(|d| json!({
                        "severity": if d.severity == crate::api::diagnostic::Severity::Error as i32 { "error" } else { "warning" },
                        "file": d.file, "line": d.line, "column": d.column, "message": d.message,
                    })).collect::<Vec<_>>(),
                    "proxies": r.proxies.iter().map(|p| json!({
                        "proxy": p.proxy, "state": p.state, "reason": p.reason,
                    })).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
                "nodes": s.nodes.iter().map(|n| json!({
                    "nodeId": n.node_id, "proxy": n.proxy, "xdsMode": n.xds_mode,
                    "types": n.types.iter().map(|t| json!({
                        "typeUrl": t.type_url, "ackedVersion": t.acked_version,
                        "nackedVersion": t.nacked_version, "nackMessage": t.nack_message,
                        "responses": t.responses,
                    })).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            });
            (200, body.to_string())
        }
        _ => (404, "{\"error\":\"not found\"}".into()),
    }
}

/// The work of the most recent load, with the number of that load.
fn last_load(shared: &Shared) -> serde_json::Value {
    let Ok(l) = shared.load.lock() else {
        return serde_json::Value::Null;
    };
    let w = &l.work;
    let by_type = |m: &std::collections::BTreeMap<ResourceType, usize>| {
        PUSH_ORDER
            .iter()
            .map(|t| (t.short().to_string(), json!(m.get(t).copied().unwrap_or(0))))
            .collect::<serde_json::Map<_, _>>()
    };
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    json!({
        "load": l.loads,
        "filesRead": w.files_read,
        "filesReused": w.files_reused,
        "filesParsed": w.files_parsed,
        "parsesReused": w.parses_reused,
        "resourcesEncoded": by_type(&w.encode.encoded),
        "resourcesReused": by_type(&w.encode.reused),
        "readMs": ms(w.read),
        "buildMs": ms(w.build),
        "durationMs": ms(w.total),
    })
}
