//! Gateway `options` (Gloo's `ListenerOptions`) and
//! `httpGateway.options.connectionLimit`, through real Envoy: the access
//! logs Envoy writes, what their filters leave out, and the connection
//! limit closing a connection over it. What is expected is what Gloo's
//! plugins configure (`projects/gloo/pkg/plugins/als/plugin.go`:
//! `accessLoggingService` on the HTTP connection manager, one
//! `envoy.access_loggers.file` per `fileSink`, the filter passed through;
//! `projects/gloo/pkg/plugins/connection_limit/plugin.go`: the
//! `connection_limit` stat prefix) and what Envoy then does. A
//! `grpcService` log (`projects/gloo/pkg/plugins/als/converter.go`,
//! `copyGrpcSettings`) streams entries to a gRPC access log service in the
//! test.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

/// A Gateway on 127.0.0.1:`port` with `options` and `httpGateway` as YAML
/// flow text.
fn gateway_with(port: u16, options: &str, http: &str) -> String {
    format!(
        "apiVersion: gateway.solo.io/v1\nkind: Gateway\nmetadata:\n  name: gw\n  namespace: gloo-system\nspec:\n  bindAddress: 127.0.0.1\n  bindPort: {port}\n  options: {options}\n  httpGateway: {http}\n"
    )
}

/// Envoy took every Listener and RouteConfiguration it was sent.
async fn assert_no_nack(s: &Stack) {
    assert_eq!(
        s.envoy.stat("listener_manager.lds.update_rejected").await,
        Some(0),
        "{}",
        s.logs()
    );
    let rds = s.envoy.stat(&s.rds_stat("update_rejected")).await;
    assert_eq!(rds.unwrap_or(0), 0, "{}", s.logs());
}

/// The text of `path`, once `done` holds for it (Envoy flushes its access
/// logs on a timer, 1 s by default); bounded by the harness deadline.
async fn log_when(path: &Path, what: &str, done: impl Fn(&str) -> bool) -> String {
    eventually(what, || async {
        let text = std::fs::read_to_string(path).ok()?;
        done(&text).then_some(text)
    })
    .await
}

/// A `stringFormat` log filtered by `statusCodeFilter` (>= 400) and a
/// `jsonFormat` log without a filter: Envoy writes the text lines only for
/// the 404, and a JSON object with the configured keys for both requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_writes_the_configured_access_logs_and_filters_them() -> Result<()> {
    let logs = tempfile::tempdir()?;
    let text_log = logs.path().join("text.log");
    let json_log = logs.path().join("json.log");
    let options = format!(
        "{{accessLoggingService: {{accessLog: [
            {{fileSink: {{path: '{}', stringFormat: \"text %REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE% %RESPONSE_FLAGS%\\n\"}},
             filter: {{statusCodeFilter: {{comparison: {{op: GE, value: {{defaultValue: 400, runtimeKey: access_log.status_min}}}}}}}}}},
            {{fileSink: {{path: '{}', jsonFormat: {{path: '%REQ(:PATH)%', code: '%RESPONSE_CODE%', method: '%REQ(:METHOD)%'}}}}}}]}}}}",
        text_log.display(),
        json_log.display(),
    );
    let s = Stack::serving(|port, backend| {
        vec![
            ("gw.yaml", gateway_with(port, &options, "{}")),
            ("up.yaml", upstream("b1", &[backend])),
            ("vs.yaml", virtual_service(&route("/plain", "b1", ""))),
        ]
    })
    .await;
    assert_no_nack(&s).await;

    // Envoy holds the access logs on the connection manager, as Gloo puts them.
    let dump = s.envoy.config_dump().await.to_string();
    assert!(dump.contains("envoy.access_loggers.file"), "{dump}");
    assert!(dump.contains("access_log.status_min"), "{dump}");

    let (code, _) = http_get(s.port, "/plain/ok")
        .await
        .context("GET /plain/ok")?;
    assert_eq!(code, 200);
    let (code, _) = http_get(s.port, "/nowhere").await.context("GET /nowhere")?;
    assert_eq!(code, 404);

    // No route: 404 with Envoy's NR flag, logged by the filtered text log.
    let text = log_when(&text_log, "the 404 in the text log", |t| {
        t.contains("text GET /nowhere 404 NR\n")
    })
    .await;
    let json = log_when(&json_log, "both requests in the JSON log", |t| {
        t.contains("/plain/ok") && t.contains("/nowhere")
    })
    .await;
    // Logs are flushed in order, so the 200 (first) was written by now:
    // the status filter kept it out of the text log.
    assert!(
        !text.contains("/plain"),
        "the 200 passed the filter: {text}"
    );
    let lines: Vec<serde_json::Value> = json
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .with_context(|| format!("JSON log lines: {json}"))?;
    let ok = lines
        .iter()
        .find(|l| l["path"] == "/plain/ok")
        .context("the 200's line")?;
    assert_eq!(ok["method"], "GET");
    assert_eq!(ok["code"], 200);
    let missing = lines
        .iter()
        .find(|l| l["path"] == "/nowhere")
        .context("the 404's line")?;
    assert_eq!(missing["code"], 404);
    Ok(())
}

/// Opens a connection and has one keep-alive request answered on it, so
/// Envoy has certainly accepted it (and counted it).
async fn open_and_use(port: u16) -> Result<TcpStream> {
    let mut c = TcpStream::connect(("127.0.0.1", port)).await?;
    c.write_all(b"GET /plain HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        .await?;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(crate::support::load::IO_TIMEOUT, c.read(&mut buf))
        .await
        .context("no response within the I/O timeout")??;
    let head = String::from_utf8_lossy(&buf[..n]);
    anyhow::ensure!(
        head.starts_with("HTTP/1.1 200"),
        "unexpected response: {head}"
    );
    Ok(c)
}

/// `maxActiveConnections: 1`: while one connection is open, Envoy closes
/// the next one without an answer, and counts it in
/// `connection_limit.connection_limit.limited_connections` (Gloo's stat
/// prefix).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_closes_connections_over_the_limit() -> Result<()> {
    let s = Stack::serving(|port, backend| {
        vec![
            (
                "gw.yaml",
                gateway_with(
                    port,
                    "{}",
                    "{options: {connectionLimit: {maxActiveConnections: 1}}}",
                ),
            ),
            ("up.yaml", upstream("b1", &[backend])),
            ("vs.yaml", virtual_service(&route("/plain", "b1", ""))),
        ]
    })
    .await;
    assert_no_nack(&s).await;

    // `wait_serving`'s connections are closed, but Envoy may not have
    // counted them out yet: retry until one is held open.
    let first = poll(
        "one connection held open",
        DEADLINE,
        Duration::from_millis(50),
        || async { open_and_use(s.port).await.ok() },
    )
    .await?;

    let mut second = TcpStream::connect(("127.0.0.1", s.port)).await?;
    // The request may or may not be written before Envoy closes it.
    let _ = second
        .write_all(b"GET /plain HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        .await;
    let mut buf = vec![0u8; 1024];
    let read = tokio::time::timeout(crate::support::load::IO_TIMEOUT, second.read(&mut buf))
        .await
        .context("the second connection was neither answered nor closed")?;
    match read {
        Ok(0) | Err(_) => {}
        Ok(n) => anyhow::bail!(
            "the second connection was answered: {}",
            String::from_utf8_lossy(&buf[..n])
        ),
    }
    let limited = eventually("limited_connections counted", || async {
        s.envoy
            .stat("connection_limit.connection_limit.limited_connections")
            .await
            .filter(|n| *n >= 1)
    })
    .await;
    assert!(limited >= 1);
    drop(first);
    Ok(())
}

/// What a test access log service received: (log name of the stream,
/// request path) per HTTP entry.
type Received = std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>;

/// A loopback `envoy.service.accesslog.v3.AccessLogService`.
struct Als(Received);

#[tonic::async_trait]
impl envoy_types::pb::envoy::service::accesslog::v3::access_log_service_server::AccessLogService
    for Als
{
    async fn stream_access_logs(
        &self,
        request: tonic::Request<
            tonic::Streaming<
                envoy_types::pb::envoy::service::accesslog::v3::StreamAccessLogsMessage,
            >,
        >,
    ) -> Result<
        tonic::Response<envoy_types::pb::envoy::service::accesslog::v3::StreamAccessLogsResponse>,
        tonic::Status,
    > {
        use envoy_types::pb::envoy::service::accesslog::v3::stream_access_logs_message::LogEntries;
        let mut stream = request.into_inner();
        // The identifier (with the log name) comes with the first message.
        let mut log_name = String::new();
        while let Some(msg) = stream.message().await? {
            if let Some(id) = &msg.identifier {
                log_name = id.log_name.clone();
            }
            if let Some(LogEntries::HttpLogs(http)) = msg.log_entries {
                let mut got = self
                    .0
                    .lock()
                    .map_err(|_| tonic::Status::internal("poisoned"))?;
                for e in http.log_entry {
                    let path = e.request.map(|r| r.path).unwrap_or_default();
                    got.push((log_name.clone(), path));
                }
            }
        }
        Ok(tonic::Response::new(Default::default()))
    }
}

/// `grpcService: {logName, staticClusterName: als_gloo-system}` with an
/// Upstream `als` (`useHttp2: true`) pointing at a gRPC access log service
/// in the test: a request through Envoy arrives there as an HTTP entry of
/// the configured log name with the request's path; the status filter
/// keeps the 200 out, as it does for file sinks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_streams_grpc_access_logs_to_the_service() -> Result<()> {
    use envoy_types::pb::envoy::service::accesslog::v3::access_log_service_server::AccessLogServiceServer;
    let received: Received = Default::default();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let als_port = listener.local_addr()?.port();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(AccessLogServiceServer::new(Als(received.clone())))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let options = "{accessLoggingService: {accessLog: [
        {grpcService: {logName: edge-http, staticClusterName: als_gloo-system}},
        {grpcService: {logName: errors-only, staticClusterName: als_gloo-system},
         filter: {statusCodeFilter: {comparison: {op: GE, value: {defaultValue: 400, runtimeKey: access_log.status_min}}}}}]}}";
    let als_upstream = format!(
        "apiVersion: gloo.solo.io/v1\nkind: Upstream\nmetadata:\n  name: als\n  namespace: gloo-system\nspec:\n  useHttp2: true\n  static:\n    hosts:\n    - addr: 127.0.0.1\n      port: {als_port}\n"
    );
    let s = Stack::serving(|port, backend| {
        vec![
            ("gw.yaml", gateway_with(port, options, "{}")),
            ("up.yaml", upstream("b1", &[backend])),
            ("als.yaml", als_upstream),
            ("vs.yaml", virtual_service(&route("/plain", "b1", ""))),
        ]
    })
    .await;
    assert_no_nack(&s).await;
    let dump = s.envoy.config_dump().await.to_string();
    assert!(dump.contains("envoy.access_loggers.http_grpc"), "{dump}");

    let (code, _) = http_get(s.port, "/plain/grpc-logged")
        .await
        .context("GET /plain/grpc-logged")?;
    assert_eq!(code, 200);
    let (code, _) = http_get(s.port, "/grpc-missing")
        .await
        .context("GET /grpc-missing")?;
    assert_eq!(code, 404);

    let has = |name: &str, path: &str| {
        received
            .lock()
            .map(|g| g.iter().any(|(n, p)| n == name && p == path))
            .unwrap_or(false)
    };
    // Envoy flushes its gRPC log buffers on a timer (1 s by default).
    eventually("both requests in the edge-http stream", || async {
        (has("edge-http", "/plain/grpc-logged") && has("edge-http", "/grpc-missing")).then_some(())
    })
    .await;
    eventually("the 404 in the errors-only stream", || async {
        has("errors-only", "/grpc-missing").then_some(())
    })
    .await;
    assert!(
        !has("errors-only", "/plain/grpc-logged"),
        "the 200 passed the status filter: {:?}",
        received.lock().map(|g| g.clone()).unwrap_or_default()
    );
    server.abort();
    Ok(())
}
