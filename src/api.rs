//! edgeplane's own gRPC API (`proto/edgeplane/v1/status.proto`): what is
//! served, what the last load found, which Envoys are connected.

use tonic::{Request, Response, Status};

use crate::diag::Severity;
use crate::server::Shared;
use crate::snapshot::PUSH_ORDER;

tonic::include_proto!("edgeplane.v1");

pub struct StatusApi {
    shared: Shared,
}

impl StatusApi {
    pub fn new(shared: Shared) -> Self {
        StatusApi { shared }
    }
}

/// Builds the status message from the shared state; also used by the admin
/// endpoint.
pub fn current_status(shared: &Shared) -> GetStatusResponse {
    let snap = shared.snapshots.borrow().clone();
    let load = shared.load.lock().map(|l| l.clone()).unwrap_or_default();
    let proxies = snap
        .as_ref()
        .map(|s| {
            s.proxies
                .iter()
                .map(|(key, p)| ProxySnapshot {
                    key: key.clone(),
                    types: PUSH_ORDER
                        .iter()
                        .map(|t| TypeVersion {
                            type_url: t.type_url().to_string(),
                            version: p.version(*t),
                            resource_names: p.resources(*t).map(|e| e.name.clone()).collect(),
                        })
                        .collect(),
                })
                .collect()
        })
        .unwrap_or_default();
    let diagnostics = load
        .diagnostics
        .iter()
        .map(|d| Diagnostic {
            severity: match d.severity {
                Severity::Error => diagnostic::Severity::Error as i32,
                Severity::Warning => diagnostic::Severity::Warning as i32,
            },
            file: d.pos.file.display().to_string(),
            line: d.pos.line,
            column: d.pos.column,
            kind: d
                .resource
                .as_ref()
                .map(|r| r.kind.clone())
                .unwrap_or_default(),
            namespace: d
                .resource
                .as_ref()
                .map(|r| r.namespace.clone())
                .unwrap_or_default(),
            name: d
                .resource
                .as_ref()
                .map(|r| r.name.clone())
                .unwrap_or_default(),
            message: d.message.clone(),
        })
        .collect();
    let nodes = shared
        .registry
        .list()
        .into_iter()
        .map(|n| ConnectedNode {
            node_id: n.node_id,
            proxy: n.proxy,
            types: n
                .types
                .into_iter()
                .map(|(t, s)| NodeTypeState {
                    type_url: t.type_url().to_string(),
                    acked_version: s.acked_version,
                    nacked_version: s.nacked_version,
                    nack_message: s.nack_message,
                    responses: s.responses,
                })
                .collect(),
        })
        .collect();
    GetStatusResponse {
        serving: snap.is_some(),
        last_load_failed: load.last_load_failed,
        proxies,
        diagnostics,
        nodes,
        loads: load.loads,
    }
}

#[tonic::async_trait]
impl status_service_server::StatusService for StatusApi {
    async fn get_status(
        &self,
        _request: Request<GetStatusRequest>,
    ) -> Result<Response<GetStatusResponse>, Status> {
        Ok(Response::new(current_status(&self.shared)))
    }
}
