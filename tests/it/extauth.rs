//! Open-source Gloo's extauth through real Envoy 1.40 with a WebSocket
//! client and echo backend, and a tiny loopback HTTP auth server written
//! here: the Gateway's `httpGateway.options.extauth.httpService` becomes
//! one `ext_authz` filter, a virtual host opts in with `customAuth`, a
//! route opts out with `disable: true`
//! (`projects/gloo/pkg/plugins/extauth/config_generator.go`). Statuses
//! are those `/work/shared/reference/websocket-auth.md` §3.2 verified on
//! Envoy 1.40: a denial is the auth server's 403, a dead auth server 403
//! (Envoy's default `status_on_error`).

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

/// An HTTP auth server: allows a request whose target carries
/// `ticket=good` (Envoy sends the path prefix plus the original path and
/// query), denies everything else with 403. Records every request line.
struct AuthServer {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl AuthServer {
    async fn start() -> AuthServer {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind auth server");
        let port = l.local_addr().expect("auth server addr").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut sock, _)) = l.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    // The request head, bounded in size and time.
                    let read = tokio::time::timeout(std::time::Duration::from_secs(5), async {
                        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 65536 {
                            match sock.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                    })
                    .await;
                    if read.is_err() {
                        return;
                    }
                    let head = String::from_utf8_lossy(&buf).to_string();
                    let line = head.lines().next().unwrap_or_default().to_string();
                    let allow = line.contains("ticket=good");
                    log.lock().expect("auth log").push(line);
                    let resp = if allow {
                        "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    } else {
                        "HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    };
                    let _ = sock.write_all(resp.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        AuthServer { port, seen, task }
    }

    /// Stops accepting: the listening socket is closed once this returns.
    async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

const UP: &str = "backend";

fn files(port: u16, backend: u16, auth: u16) -> Vec<(&'static str, String)> {
    let gw = format!(
        "apiVersion: gateway.solo.io/v1\nkind: Gateway\nmetadata:\n  name: gw\n  namespace: gloo-system\nspec:\n  bindAddress: 127.0.0.1\n  bindPort: {port}\n  httpGateway:\n    options:\n      extauth:\n        extauthzServerRef: {{name: auth, namespace: gloo-system}}\n        requestTimeout: 1s\n        httpService:\n          pathPrefix: /check/\n"
    );
    let routes = format!(
        "{}{}",
        route("/open", UP, "extauth: {disable: true}\n"),
        route("/", UP, "")
    );
    let vs = virtual_service(&routes).replace(
        "    domains: ['*']\n",
        "    domains: ['*']\n    options:\n      extauth:\n        customAuth:\n          contextExtensions: {tenant: acme}\n",
    );
    vec![
        ("gateway.yaml", gw),
        (
            "upstream.yaml",
            format!(
                "{}---\n{}",
                upstream(UP, &[backend]),
                upstream("auth", &[auth])
            ),
        ),
        ("vs.yaml", vs),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrades_are_checked_by_the_auth_server() {
    let port = free_port();
    let be = Backend::start("b1").await;
    let bport = be.port;
    let auth = AuthServer::start().await;
    let s = Stack::start(port, be, &files(port, bport, auth.port)).await;
    // The disabled route needs no auth: Envoy serves it once configured.
    s.envoy.wait_serving(port, "/open/plain").await;

    // The allowed ticket: 101 and an echo.
    let mut ws = ws_connect(port, "/chat?ticket=good")
        .await
        .unwrap_or_else(|code| panic!("expected 101, got {code}\n{}", s.logs()));
    echo(&mut ws, "authorized").await;
    // Envoy asked the path prefix (trailing `/` trimmed, as Gloo does)
    // plus the original path and query.
    let seen = auth.seen.lock().expect("auth log").clone();
    assert!(
        seen.iter()
            .any(|l| l.starts_with("GET /check/chat?ticket=good ")),
        "{seen:?}"
    );

    // No ticket: the auth server's 403.
    assert_eq!(
        ws_connect(port, "/chat").await.err(),
        Some(403),
        "{}",
        s.logs()
    );
    // A wrong ticket: 403 too.
    assert_eq!(ws_connect(port, "/chat?ticket=bad").await.err(), Some(403));

    // `extauth: {disable: true}` on the route: no ticket needed, and the
    // auth server is not asked.
    let before = auth.seen.lock().expect("auth log").len();
    let mut ws2 = ws_connect(port, "/open/ws")
        .await
        .unwrap_or_else(|code| panic!("expected 101 on /open, got {code}\n{}", s.logs()));
    echo(&mut ws2, "no auth here").await;
    assert_eq!(auth.seen.lock().expect("auth log").len(), before);

    // The auth server down, `failureModeAllow` unset: Envoy refuses the
    // upgrade with its default status_on_error, 403 (verified on 1.40,
    // websocket-auth.md §3.2), and counts an ext_authz error.
    auth.stop().await;
    assert_eq!(
        ws_connect(port, "/chat?ticket=good").await.err(),
        Some(403),
        "{}",
        s.logs()
    );
    let errors = s.envoy.stat("http.http.ext_authz.error").await;
    assert!(errors >= Some(1), "ext_authz.error = {errors:?}");
    // The open socket from before is untouched (auth is per upgrade).
    echo(&mut ws, "still open").await;
}

/// Gloo's opt-in rule and `statusOnError`: with the auth server down
/// (nothing listens on its port), a virtual host without `extauth` is
/// never checked (`ExtAuthzPerRoute{disabled: true}`), while one with
/// `customAuth` refuses the upgrade with the configured status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_hosts_opt_in_and_status_on_error_applies() {
    let port = free_port();
    let dead = free_port();
    let be = Backend::start("b1").await;
    let bport = be.port;
    let gw = format!(
        "apiVersion: gateway.solo.io/v1\nkind: Gateway\nmetadata:\n  name: gw\n  namespace: gloo-system\nspec:\n  bindAddress: 127.0.0.1\n  bindPort: {port}\n  httpGateway:\n    options:\n      extauth:\n        extauthzServerRef: {{name: auth, namespace: gloo-system}}\n        statusOnError: 503\n        httpService: {{}}\n"
    );
    // `http_get` sends `host: 127.0.0.1` (the open virtual host, `*`);
    // the WebSocket client sends `host: 127.0.0.1:<port>` (the secured one).
    let open = virtual_service(&route("/", UP, ""));
    let secured = virtual_service(&route("/", UP, ""))
        .replace("name: vs\n", "name: secured\n")
        .replace(
            "    domains: ['*']\n",
            &format!("    domains: ['127.0.0.1:{port}']\n    options:\n      extauth:\n        customAuth: {{}}\n"),
        );
    let files = vec![
        ("gateway.yaml", gw),
        (
            "upstream.yaml",
            format!(
                "{}---\n{}",
                upstream(UP, &[bport]),
                upstream("auth", &[dead])
            ),
        ),
        ("open.yaml", open),
        ("secured.yaml", secured),
    ];
    let s = Stack::start(port, be, &files).await;
    // Served although the auth server is down: not opted in.
    s.envoy.wait_serving(port, "/plain").await;
    assert_eq!(
        ws_connect(port, "/chat").await.err(),
        Some(503),
        "{}",
        s.logs()
    );
}
