//! Through real Envoy 1.40 with a real WebSocket client
//! and backend: Gloo's upgrade semantics, live edits that keep sockets open,
//! invalid edits that cost nothing, and stable versions across restarts.

use crate::support::*;

const UP: &str = "backend";

fn files(port: u16, backend: u16, hcm: &str, routes: &str) -> Vec<(&'static str, String)> {
    vec![
        ("gateway.yaml", gateway(port, hcm)),
        ("upstream.yaml", upstream(UP, &[backend])),
        ("vs.yaml", virtual_service(routes)),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_are_on_by_default() {
    let port = free_port();
    let be = Backend::start("b1").await;
    let bport = be.port;
    let s = Stack::start(port, be, &files(port, bport, "", &route("/", UP, ""))).await;
    s.envoy.wait_serving(port, "/plain").await;

    let mut ws = ws_connect(port, "/chat").await.unwrap_or_else(|code| {
        panic!("expected 101, got {code}\n{}", s.logs());
    });
    echo(&mut ws, "hello through envoy").await;
    echo(&mut ws, "and again").await;

    // The listener carries exactly Gloo's default: one websocket entry.
    let dump = s.envoy.config_dump().await.to_string();
    assert!(
        dump.contains(r#""upgrade_configs":[{"upgrade_type":"websocket"}]"#),
        "{dump}"
    );
    assert_eq!(
        s.envoy
            .stat("http.http.downstream_cx_upgrades_active")
            .await,
        Some(1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_off_route_on() {
    let port = free_port();
    let be = Backend::start("b1").await;
    let bport = be.port;
    let hcm = "upgrades:\n- websocket:\n    enabled: false\n";
    let routes = format!(
        "{}{}",
        route("/ws", UP, "upgrades:\n- websocket: {}\n"),
        route("/", UP, "")
    );
    let s = Stack::start(port, be, &files(port, bport, hcm, &routes)).await;
    s.envoy.wait_serving(port, "/plain").await;

    // A plain route on a listener with upgrades off refuses: Envoy's 403.
    assert_eq!(
        ws_connect(port, "/plain").await.err(),
        Some(403),
        "{}",
        s.logs()
    );
    assert!(
        s.envoy
            .stat("http.http.downstream_rq_ws_on_non_ws_route")
            .await
            >= Some(1)
    );
    // The route that turns them on upgrades and echoes.
    let mut ws = ws_connect(port, "/ws").await.unwrap_or_else(|code| {
        panic!("expected 101 on /ws, got {code}\n{}", s.logs());
    });
    echo(&mut ws, "route override").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_off_on_default_listener() {
    let port = free_port();
    let be = Backend::start("b1").await;
    let bport = be.port;
    let routes = format!(
        "{}{}",
        route("/nows", UP, "upgrades:\n- websocket:\n    enabled: false\n"),
        route("/", UP, "")
    );
    let s = Stack::start(port, be, &files(port, bport, "", &routes)).await;
    s.envoy.wait_serving(port, "/plain").await;

    assert_eq!(
        ws_connect(port, "/nows/x").await.err(),
        Some(403),
        "{}",
        s.logs()
    );
    // Plain HTTP on that route still works.
    let (code, body) = http_get(port, "/nows/x").await.expect("GET /nows/x");
    assert_eq!((code, body.as_str()), (200, "b1 GET /nows/x\n"));
    // Other routes still upgrade.
    let mut ws = ws_connect(port, "/other").await.expect("upgrade on /other");
    echo(&mut ws, "still on elsewhere").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_edits_keep_the_socket_and_the_listener() {
    let port = free_port();
    let be = Backend::start("b1").await;
    let bport = be.port;
    let s = Stack::start(port, be, &files(port, bport, "", &route("/", UP, ""))).await;
    s.envoy.wait_serving(port, "/plain").await;
    let mut ws = ws_connect(port, "/ws").await.expect("upgrade");
    echo(&mut ws, "before").await;

    let lds_before = s.envoy.stat("listener_manager.lds.update_success").await;
    let modified_before = s.envoy.stat("listener_manager.listener_modified").await;
    let rds_before = s
        .envoy
        .stat(&s.rds_stat("update_success"))
        .await
        .unwrap_or(0);

    // Edit the VirtualService: a new route, and a timeout changed.
    let be2 = Backend::start("b2").await;
    let mut f = vec![("upstream2.yaml", upstream("backend2", &[be2.port]))];
    f.push((
        "vs.yaml",
        virtual_service(&format!(
            "{}{}",
            route("/new", "backend2", "timeout: 7s\n"),
            route("/", UP, "timeout: 20s\n")
        )),
    ));
    for (name, content) in &f {
        write_atomic(&s.dir, name, content);
    }
    // Until RDS lands, `/new/thing` still matches `/` and reaches b1.
    eventually("the new route serves from backend2", || async {
        http_get(port, "/new/thing")
            .await
            .filter(|r| *r == (200, "b2 GET /new/thing\n".to_string()))
    })
    .await;
    assert!(
        s.envoy
            .stat(&s.rds_stat("update_success"))
            .await
            .unwrap_or(0)
            > rds_before
    );
    echo(&mut ws, "during").await;

    // Edit the Upstream: another endpoint (CDS only).
    let be3 = Backend::start("b1").await;
    let cds_before = s
        .envoy
        .stat("cluster_manager.cds.update_success")
        .await
        .unwrap_or(0);
    write_atomic(&s.dir, "upstream.yaml", &upstream(UP, &[bport, be3.port]));
    eventually("CDS update applied", || async {
        (s.envoy
            .stat("cluster_manager.cds.update_success")
            .await
            .unwrap_or(0)
            > cds_before)
            .then_some(())
    })
    .await;
    echo(&mut ws, "after").await;

    // The listener was never touched, and the socket never dropped.
    assert_eq!(
        s.envoy.stat("listener_manager.lds.update_success").await,
        lds_before,
        "{}",
        s.logs()
    );
    assert_eq!(
        s.envoy.stat("listener_manager.listener_modified").await,
        modified_before
    );
    assert_eq!(
        s.envoy
            .stat("http.http.downstream_cx_upgrades_active")
            .await,
        Some(1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_manifest_keeps_serving_and_validate_names_it() {
    let port = free_port();
    let be = Backend::start("b1").await;
    let bport = be.port;
    let s = Stack::start(port, be, &files(port, bport, "", &route("/", UP, ""))).await;
    s.envoy.wait_serving(port, "/plain").await;
    let mut ws = ws_connect(port, "/ws").await.expect("upgrade");
    let versions = s.envoy.versions(&s.route_name()).await;
    assert!(!versions.0.is_empty() && !versions.1.is_empty() && !versions.2.is_empty());

    let loads = s.cp.loads().await;
    let bad = virtual_service(&route("/", UP, "timeoutt: 5s\n"));
    write_atomic(&s.dir, "vs.yaml", &bad);
    let status = s.cp.wait_load_after(loads).await;
    assert_eq!(status["lastLoadFailed"], true, "{status}");
    let diag = &status["diagnostics"][0];
    assert_eq!(diag["name"], "vs");
    assert!(
        diag["file"].as_str().unwrap_or("").ends_with("vs.yaml"),
        "{diag}"
    );
    assert!(
        diag["message"].as_str().unwrap_or("").contains("timeoutt"),
        "{diag}"
    );

    // Envoy's config is untouched and traffic flows.
    assert_eq!(s.envoy.versions(&s.route_name()).await, versions);
    assert_eq!(http_get(port, "/plain").await.map(|r| r.0), Some(200));
    echo(&mut ws, "still here").await;

    // `edgeplane validate` exits 1 and names the file, line and column.
    let out = std::process::Command::new(edgeplane_bin())
        .arg("validate")
        .arg(&s.dir)
        .output()
        .expect("run validate");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let line = bad
        .lines()
        .position(|l| l.contains("timeoutt"))
        .map(|i| i + 1);
    let col = bad
        .lines()
        .find(|l| l.contains("timeoutt"))
        .and_then(|l| l.find('t'))
        .map(|c| c + 1);
    let want = format!("vs.yaml:{}:{}: error", line.unwrap_or(0), col.unwrap_or(0));
    assert!(stderr.contains(&want), "want {want} in:\n{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_yields_the_same_versions_and_no_listener_change() {
    let port = free_port();
    let be = Backend::start("b1").await;
    let bport = be.port;
    let mut s = Stack::start(port, be, &files(port, bport, "", &route("/", UP, ""))).await;
    s.envoy.wait_serving(port, "/plain").await;
    let mut ws = ws_connect(port, "/ws").await.expect("upgrade");
    let before_status = s.cp.status().await;
    let before = s.envoy.versions(&s.route_name()).await;
    let modified = s.envoy.stat("listener_manager.listener_modified").await;
    let cluster_modified = s.envoy.stat("cluster_manager.cluster_modified").await;
    let attempts = s
        .envoy
        .stat("listener_manager.lds.update_attempt")
        .await
        .unwrap_or(0);

    // Kill the control plane; Envoy keeps serving.
    s.cp.kill();
    eventually("envoy sees the control plane gone", || async {
        (s.envoy.stat("control_plane.connected_state").await == Some(0)).then_some(())
    })
    .await;
    echo(&mut ws, "control plane down").await;

    // A new process on the same port and manifests.
    let cp2 = ControlPlane::start(&s.dir, s.cp.xds_port, s.tmp.path()).await;
    eventually("envoy re-subscribed and got LDS again", || async {
        let attempts_now = s
            .envoy
            .stat("listener_manager.lds.update_attempt")
            .await
            .unwrap_or(0);
        (s.envoy.stat("control_plane.connected_state").await == Some(1) && attempts_now > attempts)
            .then_some(())
    })
    .await;
    let after_status = cp2.status().await;
    assert_eq!(before_status["proxies"], after_status["proxies"]);
    assert_eq!(s.envoy.versions(&s.route_name()).await, before);
    assert_eq!(
        s.envoy.stat("listener_manager.listener_modified").await,
        modified
    );
    assert_eq!(
        s.envoy.stat("cluster_manager.cluster_modified").await,
        cluster_modified
    );
    echo(&mut ws, "after restart").await;
}

/// `edgeplane ws-client --interactive`, the README's live-edit walkthrough:
/// one socket through Envoy held open across a route edit, each line typed
/// echoed back, a clean exit when input ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_client_interactive_holds_one_socket_across_an_edit() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    let port = free_port();
    let be = Backend::start("b1").await;
    let bport = be.port;
    let s = Stack::start(port, be, &files(port, bport, "", &route("/", UP, ""))).await;
    s.envoy.wait_serving(port, "/plain").await;

    let mut client = tokio::process::Command::new(edgeplane_bin())
        .args(["ws-client", "--interactive"])
        .arg(format!("ws://127.0.0.1:{port}/ws"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start ws-client");
    let mut stdin = client.stdin.take().expect("ws-client stdin");
    let mut replies = BufReader::new(client.stdout.take().expect("ws-client stdout")).lines();
    let mut say = async |text: &str| {
        stdin
            .write_all(format!("{text}\n").as_bytes())
            .await
            .expect("write to ws-client");
    };
    say("before the edit").await;
    let reply = tokio::time::timeout(DEADLINE, replies.next_line()).await;
    assert!(
        matches!(&reply, Ok(Ok(Some(l))) if l == "before the edit"),
        "{reply:?}\n{}",
        s.logs()
    );
    eventually("the socket is open in Envoy", || async {
        (s.envoy
            .stat("http.http.downstream_cx_upgrades_active")
            .await
            == Some(1))
        .then_some(())
    })
    .await;

    // A route edit, applied by Envoy, while the socket stays open.
    let be2 = Backend::start("b2").await;
    write_atomic(&s.dir, "upstream2.yaml", &upstream("backend2", &[be2.port]));
    write_atomic(
        &s.dir,
        "vs.yaml",
        &virtual_service(&format!(
            "{}{}",
            route("/new", "backend2", ""),
            route("/", UP, "")
        )),
    );
    eventually("the new route serves from backend2", || async {
        http_get(port, "/new/x")
            .await
            .filter(|r| *r == (200, "b2 GET /new/x\n".to_string()))
    })
    .await;
    say("after the edit").await;
    let reply = tokio::time::timeout(DEADLINE, replies.next_line()).await;
    assert!(
        matches!(&reply, Ok(Ok(Some(l))) if l == "after the edit"),
        "{reply:?}"
    );
    assert_eq!(
        s.envoy
            .stat("http.http.downstream_cx_upgrades_active")
            .await,
        Some(1),
        "the same socket, never reopened"
    );
    assert_eq!(
        s.envoy.stat("http.http.downstream_cx_upgrades_total").await,
        Some(1),
        "{}",
        s.logs()
    );

    // End of input: a clean close and exit 0.
    drop(stdin);
    let status = tokio::time::timeout(DEADLINE, client.wait())
        .await
        .expect("ws-client exits when its input ends")
        .expect("wait for ws-client");
    assert!(status.success(), "{status:?}");
}
