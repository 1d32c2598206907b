//! Gloo's routing surface through real Envoy: delegation carrying parent
//! upgrades, weighted splits, redirects and direct responses.

mod support;

use support::*;

fn rt(name: &str, routes: &str) -> String {
    format!(
        "apiVersion: gateway.solo.io/v1\nkind: RouteTable\nmetadata:\n  name: {name}\n  namespace: gloo-system\nspec:\n  routes:\n{}",
        routes
            .lines()
            .map(|l| format!("  {l}\n"))
            .collect::<String>()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delegated_route_gets_the_parent_upgrades() {
    let port = free_port();
    let be = Backend::start("b1").await;
    let bport = be.port;
    // Upgrades off on the listener; only the delegating parent turns them on.
    let hcm = "upgrades:\n- websocket:\n    enabled: false\n";
    let parent = "- matchers:\n  - prefix: /chat\n  delegateAction:\n    ref:\n      name: chat\n  options:\n    upgrades:\n    - websocket: {}\n";
    let files = vec![
        ("gateway.yaml", gateway(port, hcm)),
        ("upstream.yaml", upstream("backend", &[bport])),
        (
            "vs.yaml",
            virtual_service(&format!("{parent}{}", route("/", "backend", ""))),
        ),
        ("rt.yaml", rt("chat", &route("/chat/room", "backend", ""))),
    ];
    let s = Stack::start(port, be, &files).await;
    s.envoy.wait_serving(port, "/chat/room/1").await;
    let mut ws = ws_connect(port, "/chat/room/1").await.unwrap_or_else(|c| {
        panic!(
            "expected 101 through the delegated route, got {c}\n{}",
            s.logs()
        )
    });
    echo(&mut ws, "delegated").await;
    // Routes outside the table keep the listener's setting.
    assert_eq!(ws_connect(port, "/plain").await.err(), Some(403));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_split_redirect_and_direct_response() {
    let port = free_port();
    let b1 = Backend::start("b1").await;
    let b2 = Backend::start("b2").await;
    let (p1, p2) = (b1.port, b2.port);
    let multi = "- matchers:\n  - prefix: /split\n  routeAction:\n    multi:\n      destinations:\n      - destination:\n          upstream: {name: one, namespace: gloo-system}\n        weight: 3\n      - destination:\n          upstream: {name: two, namespace: gloo-system}\n        weight: 1\n";
    let redirect = "- matchers:\n  - exact: /old\n  redirectAction:\n    hostRedirect: example.com\n    pathRedirect: /new\n    responseCode: PERMANENT_REDIRECT\n";
    let direct = "- matchers:\n  - prefix: /teapot\n  directResponseAction:\n    status: 418\n    body: short and stout\n";
    let files = vec![
        ("gateway.yaml", gateway(port, "")),
        ("one.yaml", upstream("one", &[p1])),
        ("two.yaml", upstream("two", &[p2])),
        (
            "vs.yaml",
            virtual_service(&format!(
                "{multi}{redirect}{direct}{}",
                route("/", "one", "")
            )),
        ),
    ];
    let s = Stack::start(port, b1, &files).await;
    let _keep = b2;
    s.envoy.wait_serving(port, "/split").await;

    let (mut n1, mut n2) = (0u32, 0u32);
    for _ in 0..1000 {
        match http_get(port, "/split").await {
            Some((200, b)) if b.starts_with("b1 ") => n1 += 1,
            Some((200, b)) if b.starts_with("b2 ") => n2 += 1,
            other => panic!("unexpected answer {other:?}\n{}", s.logs()),
        }
    }
    // 3:1 → 750/250 expected; ±10% of each share.
    assert!((675..=825).contains(&n1), "b1 got {n1}, b2 got {n2}");
    assert!((225..=275).contains(&n2), "b1 got {n1}, b2 got {n2}");

    let raw = raw_get(port, "/old").await;
    assert!(raw.starts_with("HTTP/1.1 308"), "{raw}");
    assert!(
        raw.to_lowercase()
            .contains("location: http://example.com/new"),
        "{raw}"
    );

    assert_eq!(
        http_get(port, "/teapot").await,
        Some((418, "short and stout".to_string()))
    );
}

/// The whole response head and body, for header checks.
async fn raw_get(port: u16, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("read timed out")
        .expect("read");
    String::from_utf8_lossy(&buf).into_owned()
}
