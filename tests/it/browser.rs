//! The admin status page in a real browser: headless Chromium (Debian's
//! `chromium`, installed by `scripts/setup`), driven over the DevTools
//! protocol, against a real edgeplane serving a real Envoy.
//!
//! Load the page, check its routing table against what Envoy does (101 or
//! 403), break a manifest and see the error appear with file:line while the
//! last good routes stay listed, fix it and see the error clear. Each step
//! leaves a screenshot in `target/test-output/browser/`.
//!
//! A missing Chromium fails the test (never skips it): run `scripts/setup`.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// Chromium from `CHROMIUM_BIN`, else the first of Debian's names on PATH.
fn chromium_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("CHROMIUM_BIN") {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser", "google-chrome"] {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "Chromium is not installed: run scripts/setup (it installs Debian's `chromium`), \
         or set CHROMIUM_BIN"
    );
}

/// A headless Chromium with one page, driven over the DevTools protocol.
/// A child leading its own process group; dropping it kills the group.
struct ProcessGroup(Child);

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // `kill -KILL -PGID`: the browser and all its helpers.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Browser {
    _process: ProcessGroup,
    ws: crate::support::Ws,
    next_id: u64,
    /// Errors the page reported: exceptions, console errors, blocked
    /// resources and policy violations (DevTools events seen so far).
    errors: Vec<String>,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start(logdir: &Path) -> Browser {
        let profile = tempfile::tempdir().expect("browser profile dir");
        let log = logdir.join("chromium.log");
        eprintln!("chromium log: {}", log.display());
        let logf = std::fs::File::create(&log).expect("create chromium log");
        // Its own process group, so Drop can end the browser and every
        // helper process it forked (renderers, GPU, network service).
        let child = Command::new(chromium_bin())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                // The machine's network is closed: no background fetches.
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--window-size=1280,1000",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(logf)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromium_bin().display()));
        // Owned from here on: a failure below still ends the browser.
        let guard = ProcessGroup(child);
        // Chromium writes its DevTools port into the profile once listening.
        let port_file = profile.path().join("DevToolsActivePort");
        let port: u16 = eventually("Chromium's DevTools port", || async {
            let text = std::fs::read_to_string(&port_file).ok()?;
            text.lines().next()?.trim().parse().ok()
        })
        .await;
        let page_url = eventually("Chromium's page target", || async {
            // The port in `host`: DevTools builds the page's WebSocket URL
            // from it.
            let req = format!("GET /json/list HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n\r\n");
            let (status, body) = parse_response(try_raw_request(port, &req).await?.as_bytes())?;
            (status == 200).then_some(())?;
            let targets: Value = serde_json::from_str(&body).ok()?;
            targets.as_array()?.iter().find(|t| t["type"] == "page")?["webSocketDebuggerUrl"]
                .as_str()
                .map(str::to_string)
        })
        .await;
        let (ws, _) = tokio::time::timeout(
            Duration::from_secs(10),
            tokio_tungstenite::connect_async(page_url.as_str()),
        )
        .await
        .expect("DevTools connect timed out")
        .expect("DevTools connect");
        Browser {
            _process: guard,
            ws,
            next_id: 0,
            errors: Vec::new(),
            _profile: profile,
        }
    }

    /// Sends one DevTools command and returns its `result` (events in
    /// between are skipped); panics on a protocol error or after 20 s.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({"id": id, "method": method, "params": params});
        self.ws
            .send(Message::text(msg.to_string()))
            .await
            .expect("send a DevTools command");
        let end = Instant::now() + DEADLINE;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let frame = tokio::time::timeout(left, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no DevTools answer to {method}"))
                .unwrap_or_else(|| panic!("DevTools closed during {method}"))
                .expect("DevTools read");
            let Message::Text(text) = frame else { continue };
            let v: Value = serde_json::from_str(text.as_str()).expect("DevTools sends JSON");
            match v["method"].as_str() {
                Some("Runtime.exceptionThrown") => {
                    self.errors
                        .push(v["params"]["exceptionDetails"].to_string());
                }
                Some("Log.entryAdded") if v["params"]["entry"]["level"] == "error" => {
                    self.errors.push(v["params"]["entry"]["text"].to_string());
                }
                Some("Runtime.consoleAPICalled") if v["params"]["type"] == "error" => {
                    self.errors.push(v["params"]["args"].to_string());
                }
                _ => {}
            }
            if v["id"] != id {
                continue;
            }
            if let Some(err) = v.get("error") {
                panic!("DevTools {method} failed: {err}");
            }
            return v["result"].clone();
        }
    }

    async fn navigate(&mut self, url: &str) {
        self.call("Page.enable", json!({})).await;
        self.call("Runtime.enable", json!({})).await;
        self.call("Log.enable", json!({})).await;
        self.call("Page.navigate", json!({"url": url})).await;
    }

    /// Evaluates `expr` in the page; `None` when the page has no context
    /// yet or the script threw.
    async fn eval(&mut self, expr: &str) -> Option<Value> {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expr, "returnByValue": true}),
            )
            .await;
        if r.get("exceptionDetails").is_some() {
            return None;
        }
        r["result"].get("value").cloned()
    }

    /// Polls `expr` until it yields something other than null/false/"",
    /// or panics at the deadline with the page's text for context.
    async fn wait_for(&mut self, what: &str, expr: &str) -> Value {
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(v) = self.eval(expr).await
                && !(v.is_null() || v == false || v == "")
            {
                return v;
            }
            if Instant::now() >= end {
                let text = self
                    .eval("document.body ? document.body.innerText : ''")
                    .await
                    .unwrap_or_default();
                panic!("timed out waiting for the page to show: {what}\n--- page ---\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Saves a full-page PNG to `target/test-output/browser/<name>.png`.
    async fn screenshot(&mut self, name: &str) -> PathBuf {
        let r = self
            .call(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true}),
            )
            .await;
        let data = r["data"].as_str().expect("screenshot data");
        let png = base64_decode(data).expect("screenshot is base64");
        assert!(png.starts_with(b"\x89PNG"), "screenshot is a PNG");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-output/browser");
        std::fs::create_dir_all(&dir).expect("create screenshot dir");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        eprintln!("screenshot: {}", path.display());
        path
    }
}

/// Standard base64 (with padding), as DevTools sends screenshots.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for chunk in bytes.chunks(4) {
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        let mut n = 0u32;
        for &c in &chunk[..4 - pad] {
            n = (n << 6) | val(c)?;
        }
        n <<= 6 * pad as u32;
        let b = n.to_be_bytes();
        out.extend_from_slice(&b[1..4 - pad]);
    }
    Some(out)
}

/// The WebSocket column of the page's routing table, in order:
/// `[[matcher, reason], …]`.
const WS_COLUMN: &str = "JSON.stringify([...document.querySelectorAll('#routes tr.route')]\
    .map(tr => [tr.cells[0].innerText, tr.querySelector('td.websocket').innerText]))";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_shows_routes_errors_and_nodes_live() {
    let port = free_port();
    let be = Backend::start("b1").await;
    let routes = format!(
        "{}{}",
        route("/plain", "backend", ""),
        route(
            "/closed",
            "backend",
            "upgrades:\n- websocket:\n    enabled: false\n"
        ),
    );
    let vs = virtual_service(&routes);
    let files = vec![
        ("gateway.yaml", gateway(port, "")),
        ("upstream.yaml", upstream("backend", &[be.port])),
        ("vs.yaml", vs.clone()),
    ];
    let s = Stack::start(port, be, &files).await;
    s.envoy.wait_serving(port, "/plain").await;

    let mut browser = Browser::start(s.tmp.path()).await;
    let page = format!("http://127.0.0.1:{}/", s.cp.admin_port);
    browser.navigate(&page).await;

    // The routing table, each route's WebSocket state beside what Envoy does.
    let column = browser
        .wait_for(
            "two routes with their WebSocket reasons",
            &format!("(() => {{ const c = {WS_COLUMN}; return JSON.parse(c).length === 2 ? c : null; }})()"),
        )
        .await;
    let column: Vec<(String, String)> =
        serde_json::from_str(column.as_str().unwrap_or_default()).expect("column JSON");
    assert_eq!(
        column,
        [
            (
                "prefix /plain".to_string(),
                "on: listener default".to_string()
            ),
            (
                "prefix /closed".to_string(),
                "off: route override".to_string()
            ),
        ],
        "{}",
        s.logs()
    );
    assert!(
        ws_connect(port, "/plain").await.is_ok(),
        "the page says on; Envoy must upgrade"
    );
    assert_eq!(
        ws_connect(port, "/closed").await.err(),
        Some(403),
        "the page says off; Envoy must refuse with 403"
    );

    // The connected Envoy, with the RDS version it ACKed: the one served.
    let status = s.cp.status().await;
    let rds_version = status["proxies"][0]["types"]
        .as_array()
        .and_then(|ts| {
            ts.iter().find(|t| {
                t["typeUrl"]
                    .as_str()
                    .is_some_and(|u| u.ends_with("RouteConfiguration"))
            })
        })
        .and_then(|t| t["version"].as_str())
        .expect("the served RDS version in /status")
        .to_string();
    browser
        .wait_for(
            "the node's ACKed RDS version",
            &format!(
                "[...document.querySelectorAll('[data-node=\"test-node\"] tr')]\
                 .some(tr => tr.cells[0].innerText === 'RDS' && tr.cells[1].innerText === '{rds_version}')"
            ),
        )
        .await;
    // A live WebSocket shows on the node's listener (Envoy's HCM upgrade
    // stats, streamed to edgeplane).
    let ws = ws_connect(port, "/plain")
        .await
        .map_err(|code| format!("expected 101, got {code}"))
        .expect("a WebSocket through Envoy");
    browser
        .wait_for(
            "one open WebSocket on the listener",
            &format!(
                "[...document.querySelectorAll('[data-node=\"test-node\"] tr.websockets')]\
                 .some(tr => tr.dataset.listener === 'listener-127.0.0.1-{port}' \
                 && tr.querySelector('td.ws-active').innerText === '1')"
            ),
        )
        .await;
    drop(ws);
    browser
        .wait_for(
            "no manifest problems",
            "document.querySelector('#problems [data-empty]') !== null",
        )
        .await;
    let shot = browser.screenshot("1-serving").await;
    assert!(std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0) > 1000);

    // Break the VirtualService: a misspelled field, and a key that is
    // markup (it must show as text, never become part of the page).
    let broken = vs
        .replacen("  - prefix: /plain", "  - prefx: /plain", 1)
        .replacen(
            "    enabled: false",
            "    enabled: false\n      \"<b id=injected>x</b>\": true",
            1,
        );
    let bad_line = broken
        .lines()
        .position(|l| l.contains("prefx"))
        .map(|i| i + 1)
        .expect("typo line");
    let loads = s.cp.loads().await;
    write_atomic(&s.dir, "vs.yaml", &broken);
    s.cp.wait_load_after(loads).await;
    let problems = browser
        .wait_for(
            "the error naming vs.yaml and its line",
            &format!(
                "(() => {{ const t = document.querySelector('#problems').innerText; \
                 return t.includes('vs.yaml:{bad_line}:') ? t : null; }})()"
            ),
        )
        .await;
    let problems = problems.as_str().unwrap_or_default();
    assert!(problems.contains("prefx"), "{problems}");
    assert!(
        problems.contains("<b id=injected>x</b>"),
        "markup in a manifest shows as text: {problems}"
    );
    let injected = browser
        .eval("document.getElementById('injected') === null")
        .await;
    assert_eq!(
        injected,
        Some(Value::Bool(true)),
        "manifest text became markup"
    );
    browser
        .wait_for(
            "the VirtualService Rejected, its last accepted version served",
            "[...document.querySelectorAll('#resources tr.resource')].some(tr => \
             tr.cells[0].innerText === 'VirtualService' && tr.cells[2].innerText === 'Rejected' \
             && tr.cells[3].innerText === 'last-accepted')",
        )
        .await;
    browser
        .wait_for(
            "the header saying what is valid is served",
            "document.querySelector('#serving').innerText === 'serving what is valid; see the errors'",
        )
        .await;
    // The last good routes are still listed, and still served.
    let column_now = browser.eval(WS_COLUMN).await.unwrap_or_default();
    let column_now: Vec<(String, String)> =
        serde_json::from_str(column_now.as_str().unwrap_or_default()).expect("column JSON");
    assert_eq!(column_now, column);
    assert!(ws_connect(port, "/plain").await.is_ok());
    browser.screenshot("2-broken").await;

    // Fix it, adding a route: the error clears and the new route appears.
    let fixed = virtual_service(&format!("{routes}{}", route("/added", "backend", "")));
    let loads = s.cp.loads().await;
    write_atomic(&s.dir, "vs.yaml", &fixed);
    s.cp.wait_load_after(loads).await;
    browser
        .wait_for(
            "the error gone",
            "document.querySelector('#problems [data-empty]') !== null",
        )
        .await;
    browser
        .wait_for(
            "the added route listed",
            &format!(
                "(() => {{ const c = JSON.parse({WS_COLUMN}); return c.length === 3 \
                 && c[2][0] === 'prefix /added' && c[2][1] === 'on: listener default'; }})()"
            ),
        )
        .await;
    browser
        .wait_for(
            "the VirtualService Accepted",
            "[...document.querySelectorAll('#resources tr.resource')].some(tr => \
             tr.cells[0].innerText === 'VirtualService' && tr.cells[2].innerText === 'Accepted')",
        )
        .await;
    assert!(ws_connect(port, "/added").await.is_ok(), "{}", s.logs());
    browser.screenshot("3-fixed").await;
    // One more round trip collects any event still in flight.
    browser.eval("1").await;
    assert!(
        browser.errors.is_empty(),
        "the page reported errors (exceptions, blocked resources, policy violations): {:#?}",
        browser.errors
    );
}

/// The page's files come from the binary with a policy that forbids any
/// script but its own; `/routes` is the JSON the page renders.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_assets_and_routes_json() {
    let port = free_port();
    let be = Backend::start("b1").await;
    let files = vec![
        ("gateway.yaml", gateway(port, "")),
        ("upstream.yaml", upstream("backend", &[be.port])),
        ("vs.yaml", virtual_service(&route("/", "backend", ""))),
    ];
    let s = Stack::start(port, be, &files).await;
    let admin = s.cp.admin_port;
    let req =
        |path: &str| format!("GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n");
    let page = raw_request(admin, &req("/")).await;
    let lower = page.to_ascii_lowercase();
    assert!(lower.starts_with("http/1.1 200"), "{page}");
    assert!(lower.contains("content-type: text/html"), "{page}");
    assert!(
        lower.contains("content-security-policy: default-src 'none'; script-src 'self'"),
        "{page}"
    );
    assert!(page.contains("<script src=\"/ui/app.js\""), "{page}");
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "no external assets"
    );
    for (path, ty) in [
        ("/ui/app.js", "text/javascript"),
        ("/ui/app.css", "text/css"),
    ] {
        let r = raw_request(admin, &req(path)).await.to_ascii_lowercase();
        assert!(r.starts_with("http/1.1 200"), "{path}: {r}");
        assert!(r.contains(&format!("content-type: {ty}")), "{path}: {r}");
    }
    let routes: Value = eventually("/routes lists the served route", || async {
        let (status, body) = http_get(admin, "/routes").await?;
        let v: Value = serde_json::from_str(&body).ok()?;
        (status == 200 && v["listeners"][0]["routes"].as_array()?.len() == 1).then_some(v)
    })
    .await;
    let status = s.cp.status().await;
    assert_eq!(routes["generation"], status["generation"]);
    let l = &routes["listeners"][0];
    assert_eq!(l["gateway"], "gloo-system.gw");
    assert_eq!(l["listener"], format!("listener-127.0.0.1-{port}"));
    assert_eq!(l["websocketDefault"], true);
    assert_eq!(l["routes"][0]["websocketReason"], "on: listener default");
    assert_eq!(
        l["routes"][0]["file"]
            .as_str()
            .map(|f| f.ends_with("vs.yaml")),
        Some(true)
    );
}
