//! Gloo's routing surface through real Envoy: delegation carrying parent
//! upgrades, weighted splits, redirects and direct responses.

use crate::support::*;

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
    // 3:1 → 750/250 expected. Over 1,000 requests the count of b2 has a
    // standard deviation of √(1000·¼·¾) ≈ 13.7; ±70 is 5σ (a false
    // failure about once in 1.7 million runs), and still tells 3:1 from
    // 1:1 (500) or from a split that sends everything one way.
    assert_eq!(n1 + n2, 1000);
    assert!((180..=320).contains(&n2), "b1 got {n1}, b2 got {n2}");

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
    raw_request(
        port,
        &format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n"),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hcm_setting_and_route_option_is_accepted() {
    let port = free_port();
    let be = Backend::start("b1").await;
    let bport = be.port;
    let hcm = "\
upgrades:
- connect: {}
streamIdleTimeout: 10m
idleTimeout: 1h
requestTimeout: 0s
requestHeadersTimeout: 10s
drainTimeout: 5s
delayedCloseTimeout: 1s
useRemoteAddress: true
serverName: edgeplane-test
skipXffAppend: false
via: edge
xffNumTrustedHops: 1
generateRequestId: true
proxy100Continue: true
maxRequestHeadersKb: 80
normalizePath: true
mergeSlashes: true
preserveExternalRequestId: true
maxStreamDuration: 0s
maxHeadersCount: 200
maxRequestsPerConnection: 1000
headersWithUnderscoresAction: REJECT_CLIENT_REQUEST
serverHeaderTransformation: OVERWRITE
pathWithEscapedSlashesAction: KEEP_UNCHANGED
codecType: AUTO
forwardClientCertDetails: SANITIZE_SET
setCurrentClientCertDetails: {subject: true, dns: true}
acceptHttp10: true
defaultHostForHttp10: example.com
allowChunkedLength: true
enableTrailers: true
properCaseHeaderKeyFormat: true
stripAnyHostPort: true
appendXForwardedPort: true
uuidRequestIdConfig: {packTraceReason: false, useRequestIdForTraceSampling: true}
http2ProtocolOptions: {initialStreamWindowSize: 65536, initialConnectionWindowSize: 1048576, maxConcurrentStreams: 100}
internalAddressConfig: {unixSockets: false, cidrRanges: [{addressPrefix: 127.0.0.1, prefixLen: 32}]}
";
    let opts = "\
timeout: 20s
idleTimeout: 0s
prefixRewrite: /rewritten
hostRewrite: backend.local
maxStreamDuration: {maxStreamDuration: 0s, grpcTimeoutHeaderMax: 5s}
retries: {retryOn: 5xx, numRetries: 2, perTryTimeout: 3s, retryBackOff: {baseInterval: 0.1s, maxInterval: 1s}}
headerManipulation:
  requestHeadersToAdd: [{header: {key: x-added, value: yes}}]
  responseHeadersToAdd: [{header: {key: x-edge, value: on}, append: false}]
  responseHeadersToRemove: [x-backend]
cors: {allowOrigin: [https://app.example], allowMethods: [GET, POST], allowHeaders: [x-token], maxAge: '600', allowCredentials: true}
upgrades: [{websocket: {}}]
";
    let matcher_route = format!(
        "- matchers:\n  - prefix: /api\n    headers: [{{name: x-team, value: blue}}, {{name: x-debug, invertMatch: true}}]\n    queryParameters: [{{name: v, value: '[0-9]+', regex: true}}]\n    methods: [GET, OPTIONS]\n    caseSensitive: false\n  routeAction:\n    single:\n      upstream: {{name: backend, namespace: gloo-system}}\n  options:\n{}",
        opts.lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    );
    let regex_route = "- matchers:\n  - regex: /re/[a-z]+\n  routeAction:\n    single:\n      upstream: {name: backend, namespace: gloo-system}\n  options:\n    regexRewrite: {pattern: {regex: '^/re/(.*)$'}, substitution: '/from-regex/\\1'}\n    autoHostRewrite: true\n";
    let files = vec![
        ("gateway.yaml", gateway(port, hcm)),
        ("upstream.yaml", upstream("backend", &[bport])),
        (
            "vs.yaml",
            virtual_service(&format!(
                "{matcher_route}{regex_route}{}",
                route("/", "backend", "")
            )),
        ),
    ];
    let s = Stack::start(port, be, &files).await;
    s.envoy.wait_serving(port, "/plain").await;
    for stat in [
        "listener_manager.lds.update_rejected".to_string(),
        s.rds_stat("update_rejected"),
    ] {
        assert_eq!(
            s.envoy.stat(&stat).await.unwrap_or(0),
            0,
            "{stat}\n{}",
            s.logs()
        );
    }

    // Every matcher condition holds: rewritten path reaches the backend,
    // response headers are manipulated.
    let ok = raw_request(
        port,
        "GET /API/x?v=42 HTTP/1.1\r\nhost: a\r\nx-team: blue\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(ok.contains("b1 GET /rewritten/x?v=42"), "{ok}");
    let lower = ok.to_lowercase();
    assert!(lower.contains("x-edge: on"), "{ok}");
    assert!(!lower.contains("x-backend:"), "{ok}");
    // A failed condition falls through to the catch-all route.
    let other = raw_request(
        port,
        "GET /api/x?v=abc HTTP/1.1\r\nhost: a\r\nx-team: blue\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(other.contains("b1 GET /api/x?v=abc"), "{other}");
    // CORS preflight is answered by Envoy.
    let pre = raw_request(
        port,
        "OPTIONS /api/x?v=1 HTTP/1.1\r\nhost: a\r\nx-team: blue\r\norigin: https://app.example\r\naccess-control-request-method: POST\r\nconnection: close\r\n\r\n",
    )
    .await
    .to_lowercase();
    assert!(
        pre.contains("access-control-allow-origin: https://app.example"),
        "{pre}"
    );
    // Regex rewrite.
    let re = raw_request(
        port,
        "GET /re/abc HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(re.contains("b1 GET /from-regex/abc"), "{re}");
}
