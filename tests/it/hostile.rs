//! Bad input costs nothing: hostile and broken manifests, each
//! through real edgeplane, real Envoy 1.40 and a real backend.
//!
//! For every input (the corpus is `tests/hostile/`, documented in its
//! README; large and special files are generated here, in the test's temp
//! dir):
//! (a) the right diagnostic appears, in `/status` and from `edgeplane
//!     validate` (exit code 1 on errors);
//! (b) nothing served changes: Envoy's `/config_dump` versions stay the same
//!     and `listener_manager.lds.update_success` /
//!     `cluster_manager.cds.update_success` do not move;
//! (c) traffic flows: HTTP 200, and a WebSocket echo both on a socket opened
//!     before the input and on a new one;
//! (d) no panic, no hang: every wait is bounded and edgeplane still answers
//!     `/healthz` afterwards.
//! Inputs that do not interfere share one stack: each is written, checked,
//! then removed again, waiting on `/status` `loads` to know it was read.
//!
//! The tests at the end are regressions for blow-ups found while writing
//! this file (exponential delegation walks, quadratic conflict messages and
//! per-document padding); their deadlines guard against hangs, not speed.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::*;
use serde_json::Value;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/hostile");
const UP: &str = "backend";

// === what must be said ===

/// A diagnostic that must be in `/status` (and in `validate`'s output).
#[derive(Clone, Debug)]
struct Want {
    severity: &'static str,
    /// Relative to the config dir.
    file: String,
    line: u32,
    column: u32,
    kind: &'static str,
    namespace: &'static str,
    name: &'static str,
    /// A part of the message.
    message: String,
}

fn want(
    severity: &'static str,
    file: &str,
    (line, column): (u32, u32),
    (kind, name): (&'static str, &'static str),
    message: &str,
) -> Want {
    Want {
        severity,
        file: file.to_string(),
        line,
        column,
        kind,
        namespace: if kind.is_empty() { "" } else { "gloo-system" },
        name,
        message: message.to_string(),
    }
}

fn error(file: &str, at: (u32, u32), res: (&'static str, &'static str), msg: &str) -> Want {
    want("error", file, at, res, msg)
}

fn warning(file: &str, at: (u32, u32), res: (&'static str, &'static str), msg: &str) -> Want {
    want("warning", file, at, res, msg)
}

/// No resource: the file (or document) could not be read that far.
const NONE: (&str, &str) = ("", "");

impl Want {
    fn matches(&self, d: &Value, dir: &Path) -> bool {
        let file = dir.join(&self.file);
        d["severity"] == self.severity
            && d["file"].as_str() == file.to_str()
            && d["line"] == self.line
            && d["column"] == self.column
            && d["kind"] == self.kind
            && d["namespace"] == self.namespace
            && d["name"] == self.name
            && d["message"]
                .as_str()
                .is_some_and(|m| m.contains(&self.message))
    }

    /// How `edgeplane validate` starts the diagnostic's line.
    fn validate_prefix(&self, dir: &Path) -> String {
        format!(
            "{}:{}:{}: {}: ",
            dir.join(&self.file).display(),
            self.line,
            self.column,
            self.severity
        )
    }
}

/// What an input may change in what is served.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Serves {
    /// Nothing: the input only breaks things.
    Nothing,
    /// Valid with warnings: routes (RDS) may change, listeners and
    /// clusters may not.
    RoutesOnly,
}

struct Case {
    name: &'static str,
    /// Written into the config dir, replacing a base file of that name.
    files: Vec<(String, Vec<u8>)>,
    want: Vec<Want>,
    /// `edgeplane validate`'s exit code.
    exit: i32,
    serves: Serves,
}

/// A corpus case: every file of `tests/hostile/<name>/`.
fn corpus(name: &'static str, port: u16, backend: u16) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(CORPUS).join(name);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus case {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| {
            let text = std::fs::read_to_string(e.path()).expect("corpus file is text");
            let text = text
                .replace("{{PORT}}", &port.to_string())
                .replace("{{BACKEND_PORT}}", &backend.to_string());
            (
                e.file_name().to_string_lossy().into_owned(),
                text.into_bytes(),
            )
        })
        .collect();
    out.sort();
    out
}

// === generated inputs ===

/// Deterministic "random" bytes (xorshift), with NULs guaranteed.
fn random_bytes(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out: Vec<u8> = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    for i in (0..n).step_by(97) {
        out[i] = 0;
    }
    out
}

/// Where the first invalid UTF-8 byte is, as 1-based line and column.
fn utf8_error_at(bytes: &[u8]) -> (u32, u32) {
    let bad = std::str::from_utf8(bytes)
        .err()
        .map_or(0, |e| e.valid_up_to());
    let before = &bytes[..bad];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    (line as u32, (bad - line_start + 1) as u32)
}

const DEEP: usize = 1000;

fn upstream_head(name: &str) -> String {
    format!(
        "apiVersion: gloo.solo.io/v1\nkind: Upstream\nmetadata:\n  name: {name}\n  namespace: gloo-system\n"
    )
}

fn content_cases(port: u16, backend: u16) -> Vec<Case> {
    let c = |name| corpus(name, port, backend);
    let bin = random_bytes(64 * 1024);
    let bin_at = utf8_error_at(&bin);
    let latin1 = [
        upstream_head("caf").as_bytes(),
        b"  labels:\n    owner: caf\xe9\n",
        b"spec:\n  static:\n    hosts:\n    - addr: 127.0.0.1\n      port: 1\n",
    ]
    .concat();
    let latin1_at = utf8_error_at(&latin1);
    vec![
        Case {
            name: "syntax-unclosed-quote",
            files: c("syntax-unclosed-quote"),
            want: vec![error("vs.yaml", (4, 9), NONE, "unclosed quote")],
            exit: 1,
            serves: Serves::Nothing,
        },
        Case {
            name: "syntax-bad-indent",
            files: c("syntax-bad-indent"),
            want: vec![error(
                "vs.yaml",
                (5, 2),
                NONE,
                "while parsing a block mapping, did not find expected key",
            )],
            exit: 1,
            serves: Serves::Nothing,
        },
        Case {
            name: "syntax-tab-indent",
            files: c("syntax-tab-indent"),
            // The parser points at the scalar it was reading when it met
            // the tab (the line above it).
            want: vec![error("vs.yaml", (4, 9), NONE, "found a tab")],
            exit: 1,
            serves: Serves::Nothing,
        },
        Case {
            name: "syntax-unclosed-flow",
            files: c("syntax-unclosed-flow"),
            want: vec![error(
                "vs.yaml",
                (9, 11),
                NONE,
                "illegal placement of ':' indicator",
            )],
            exit: 1,
            serves: Serves::Nothing,
        },
        Case {
            name: "type-string-for-number",
            files: c("type-string-for-number"),
            want: vec![error(
                "upstream.yaml",
                (10, 13),
                ("Upstream", UP),
                "invalid u32",
            )],
            exit: 1,
            serves: Serves::Nothing,
        },
        Case {
            name: "type-list-for-map",
            files: c("type-list-for-map"),
            want: vec![error(
                "gateway.yaml",
                (10, 5),
                ("Gateway", "gw"),
                "expected mapping start",
            )],
            exit: 1,
            serves: Serves::Nothing,
        },
        Case {
            name: "unknown-field",
            files: c("unknown-field"),
            want: vec![error(
                "vs.yaml",
                (18, 9),
                ("VirtualService", "vs"),
                "unknown field `timeoutt`",
            )],
            exit: 1,
            serves: Serves::Nothing,
        },
        Case {
            name: "unknown-kind",
            files: c("unknown-kind"),
            want: vec![
                error(
                    "kinds.yaml",
                    (2, 7),
                    ("Frobnicator", "frob"),
                    "unknown kind `Frobnicator`",
                ),
                error(
                    "kinds.yaml",
                    (9, 7),
                    ("AuthConfig", "opts"),
                    "kind AuthConfig is not implemented by edgeplane yet",
                ),
            ],
            exit: 1,
            serves: Serves::Nothing,
        },
        Case {
            name: "missing-upstream",
            files: c("missing-upstream"),
            want: vec![warning(
                "vs.yaml",
                (15, 13),
                ("VirtualService", "vs"),
                "*v1.Upstream { gloo-system.nosuch } not found",
            )],
            exit: 0,
            serves: Serves::RoutesOnly,
        },
        Case {
            name: "missing-vs-ref",
            files: c("missing-vs-ref"),
            want: vec![error(
                "gateway.yaml",
                (11, 7),
                ("Gateway", "gw"),
                "invalid virtual service ref gloo-system.nosuch",
            )],
            exit: 1,
            serves: Serves::Nothing,
        },
        Case {
            name: "duplicate-name",
            files: c("duplicate-name"),
            want: vec![error(
                "zz-dup.yaml",
                (2, 7),
                ("Upstream", UP),
                "duplicate resource: already defined at ",
            )],
            exit: 1,
            serves: Serves::Nothing,
        },
        Case {
            name: "delegation-cycle",
            files: c("delegation-cycle"),
            want: vec![
                error(
                    "cycle.yaml",
                    (2, 7),
                    ("RouteTable", "rt-a"),
                    "delegation cycle detected: [gloo-system.rt-a] -> [gloo-system.rt-b] -> [gloo-system.rt-a]",
                ),
                error(
                    "cycle.yaml",
                    (16, 7),
                    ("RouteTable", "rt-b"),
                    "delegation cycle detected: [gloo-system.rt-b] -> [gloo-system.rt-a] -> [gloo-system.rt-b]",
                ),
            ],
            exit: 1,
            serves: Serves::Nothing,
        },
        Case {
            name: "domain-conflict",
            files: c("domain-conflict"),
            want: vec![
                error(
                    "vs2.yaml",
                    (2, 7),
                    ("VirtualService", "vs2"),
                    "domain conflict: the [*] domain is present in other virtual services that belong to the same Gateway as this one: [gloo-system.vs]",
                ),
                error(
                    "vs.yaml",
                    (2, 7),
                    ("VirtualService", "vs"),
                    "domain conflict: the [*] domain is present in other virtual services that belong to the same Gateway as this one: [gloo-system.vs2]",
                ),
            ],
            exit: 1,
            serves: Serves::Nothing,
        },
        Case {
            name: "bind-port-conflict",
            files: c("bind-port-conflict"),
            want: ["gateway.yaml", "gw2.yaml"]
                .iter()
                .zip(["gw", "gw2"])
                .map(|(file, name)| {
                    error(
                        file,
                        (2, 7),
                        ("Gateway", name),
                        &format!(
                            "bind-address 127.0.0.1:{port} is not unique in a proxy. gateways: gloo-system.gw,gloo-system.gw2"
                        ),
                    )
                })
                .collect(),
            exit: 1,
            serves: Serves::Nothing,
        },
        Case {
            name: "duplicate-upgrade",
            files: c("duplicate-upgrade"),
            want: vec![error(
                "vs.yaml",
                (20, 11),
                ("VirtualService", "vs"),
                "upgrade config websocket is not unique",
            )],
            exit: 1,
            serves: Serves::Nothing,
        },
        Case {
            name: "invalid-regex",
            files: c("invalid-regex"),
            want: vec![
                error(
                    "vs.yaml",
                    (11, 16),
                    ("VirtualService", "vs"),
                    "has a regex matcher with invalid regex, error: unclosed group",
                ),
                error(
                    "vs.yaml",
                    (18, 16),
                    ("VirtualService", "vs"),
                    "has a regex matcher with invalid regex, bad repetition operator: {1001}",
                ),
            ],
            exit: 1,
            serves: Serves::Nothing,
        },
        Case {
            name: "alias-bomb",
            files: c("alias-bomb"),
            want: vec![error("bomb.yaml", (10, 22), NONE, "budget breached: Nodes")],
            exit: 1,
            serves: Serves::Nothing,
        },
        Case {
            name: "binary-random-bytes",
            files: vec![("binary.yaml".into(), bin)],
            want: vec![error(
                "binary.yaml",
                bin_at,
                NONE,
                "file is not valid UTF-8 text",
            )],
            exit: 1,
            serves: Serves::Nothing,
        },
        Case {
            name: "binary-nul-in-utf8",
            files: vec![(
                "nul.yaml".into(),
                format!(
                    "{}\0\0\0spec: {{}}\n\0",
                    upstream_head("nul").replace("Upstream", "Upstream\0\u{1}")
                )
                .into_bytes(),
            )],
            want: vec![error(
                "nul.yaml",
                (2, 15),
                NONE,
                "unexpected character: `\\u{0}'",
            )],
            exit: 1,
            serves: Serves::Nothing,
        },
        Case {
            name: "non-utf8-latin1",
            files: vec![("latin1.yaml".into(), latin1)],
            want: vec![error(
                "latin1.yaml",
                latin1_at,
                NONE,
                "file is not valid UTF-8 text",
            )],
            exit: 1,
            serves: Serves::Nothing,
        },
        Case {
            name: "deep-sequence",
            files: vec![(
                "deep-seq.yaml".into(),
                format!(
                    "{}spec: {}{}\n",
                    upstream_head("deep"),
                    "[".repeat(DEEP),
                    "]".repeat(DEEP)
                )
                .into_bytes(),
            )],
            want: vec![error(
                "deep-seq.yaml",
                (6, 262),
                NONE,
                "recursion limit exceeded",
            )],
            exit: 1,
            serves: Serves::Nothing,
        },
        Case {
            name: "deep-flow-map",
            files: vec![(
                "deep-map.yaml".into(),
                format!(
                    "{}spec: {}1{}\n",
                    upstream_head("deep"),
                    "{a: ".repeat(DEEP),
                    "}".repeat(DEEP)
                )
                .into_bytes(),
            )],
            want: vec![error(
                "deep-map.yaml",
                (6, 259),
                NONE,
                "budget breached: Depth",
            )],
            exit: 1,
            serves: Serves::Nothing,
        },
        Case {
            name: "deep-block-map",
            files: vec![(
                "deep-block.yaml".into(),
                format!(
                    "{}spec:\n{}{}b: 1\n",
                    upstream_head("deep"),
                    (1..=DEEP)
                        .map(|i| format!("{}a:\n", " ".repeat(i)))
                        .collect::<String>(),
                    " ".repeat(DEEP + 1)
                )
                .into_bytes(),
            )],
            want: vec![error(
                "deep-block.yaml",
                (70, 65),
                NONE,
                "budget breached: Depth",
            )],
            exit: 1,
            serves: Serves::Nothing,
        },
    ]
}

// === the stack and its checks ===

/// What Envoy holds, and the counters that move when it takes an update.
#[derive(Clone, Debug, PartialEq)]
struct Served {
    /// (LDS, CDS, RDS) versions from `/config_dump`.
    versions: (String, String, String),
    lds_ok: Option<u64>,
    cds_ok: Option<u64>,
}

struct Hostile {
    s: Stack,
    base: Vec<(String, Vec<u8>)>,
    /// A WebSocket opened before any input, kept through all of them.
    ws: Ws,
    baseline: Served,
}

impl Hostile {
    async fn start() -> Hostile {
        let port = free_port();
        let be = Backend::start("b1").await;
        let base = corpus("base", port, be.port);
        let files: Vec<(&str, String)> = base
            .iter()
            .map(|(n, b)| (n.as_str(), String::from_utf8_lossy(b).into_owned()))
            .collect();
        let s = Stack::start(port, be, &files).await;
        s.envoy.wait_serving(port, "/ready").await;
        let mut ws = ws_connect(port, "/ws/long-lived")
            .await
            .unwrap_or_else(|code| panic!("no websocket upgrade ({code})\n{}", s.logs()));
        echo(&mut ws, "before any input").await;
        let mut h = Hostile {
            s,
            base,
            ws,
            baseline: Served {
                versions: Default::default(),
                lds_ok: None,
                cds_ok: None,
            },
        };
        h.baseline = h.served().await;
        let (lds, cds, rds) = &h.baseline.versions;
        assert!(
            !lds.is_empty() && !cds.is_empty() && !rds.is_empty(),
            "{:?}",
            h.baseline
        );
        assert!(h.baseline.lds_ok >= Some(1) && h.baseline.cds_ok >= Some(1));
        h
    }

    fn dir(&self) -> &Path {
        &self.s.dir
    }

    async fn served(&self) -> Served {
        Served {
            versions: self.s.envoy.versions(&self.s.route_name()).await,
            lds_ok: self
                .s
                .envoy
                .stat("listener_manager.lds.update_success")
                .await,
            cds_ok: self
                .s
                .envoy
                .stat("cluster_manager.cds.update_success")
                .await,
        }
    }

    async fn status(&self) -> Option<Value> {
        let (code, body) = http_get(self.s.cp.admin_port, "/status").await?;
        (code == 200).then_some(())?;
        serde_json::from_str(&body).ok()
    }

    async fn loads(&self, case: &str) -> u64 {
        match self.status().await {
            Some(s) => s["loads"].as_u64().unwrap_or(0),
            None => panic!(
                "[{case}] edgeplane /status does not answer\n{}",
                self.tail()
            ),
        }
    }

    /// Waits for a load after `after` whose status satisfies `ok`; panics
    /// with the last status seen at the deadline.
    async fn wait_status(
        &self,
        case: &str,
        what: &str,
        after: u64,
        ok: impl Fn(&Value) -> bool,
    ) -> Value {
        let end = Instant::now() + DEADLINE;
        let mut last = Value::Null;
        loop {
            if let Some(s) = self.status().await {
                if s["loads"].as_u64().unwrap_or(0) > after && ok(&s) {
                    return s;
                }
                last = s;
            }
            assert!(
                Instant::now() < end,
                "[{case}] timed out waiting for {what}; last /status: {last}\n{}",
                self.tail()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn wait_clean(&self, case: &str, after: u64) -> Value {
        self.wait_status(case, "a clean load (no diagnostics)", after, |s| {
            s["lastLoadFailed"] == false && s["diagnostics"].as_array().is_some_and(Vec::is_empty)
        })
        .await
    }

    /// Waits until every wanted diagnostic is in `/status`.
    async fn wait_diagnostics(&self, case: &str, after: u64, want: &[Want]) -> Value {
        let dir = self.dir().to_path_buf();
        self.wait_status(case, &format!("diagnostics {want:#?}"), after, |s| {
            let diags = s["diagnostics"].as_array().cloned().unwrap_or_default();
            want.iter()
                .all(|w| diags.iter().any(|d| w.matches(d, &dir)))
        })
        .await
    }

    /// (b): what Envoy holds is what it held before any input.
    async fn assert_unchanged(&self, case: &str, serves: Serves) {
        let now = self.served().await;
        match serves {
            Serves::Nothing => assert_eq!(
                now,
                self.baseline,
                "[{case}] the served config changed\n{}",
                self.tail()
            ),
            Serves::RoutesOnly => {
                assert_eq!(
                    (&now.versions.0, &now.versions.1, now.lds_ok, now.cds_ok),
                    (
                        &self.baseline.versions.0,
                        &self.baseline.versions.1,
                        self.baseline.lds_ok,
                        self.baseline.cds_ok
                    ),
                    "[{case}] listeners or clusters changed\n{}",
                    self.tail()
                );
            }
        }
    }

    /// (c): HTTP and WebSockets through Envoy.
    async fn assert_traffic(&mut self, case: &str) {
        let path = format!("/hostile/{case}");
        let got = http_get(self.s.port, &path).await;
        assert_eq!(
            got,
            Some((200, format!("b1 GET {path}\n"))),
            "[{case}] plain HTTP through Envoy\n{}",
            self.tail()
        );
        echo(&mut self.ws, &format!("long-lived, after {case}")).await;
        let mut fresh = ws_connect(self.s.port, &format!("/ws/{case}"))
            .await
            .unwrap_or_else(|code| panic!("[{case}] new websocket refused: {code}"));
        echo(&mut fresh, &format!("fresh, after {case}")).await;
    }

    /// (d): the process answers and never panicked.
    async fn assert_alive(&self, case: &str) {
        let health = http_get(self.s.cp.admin_port, "/healthz").await;
        assert_eq!(
            health.map(|r| r.0),
            Some(200),
            "[{case}] edgeplane /healthz\n{}",
            self.tail()
        );
        let log = self.s.cp.log_text();
        assert!(
            !log.contains("panicked"),
            "[{case}] edgeplane panicked:\n{log}"
        );
    }

    /// `edgeplane validate DIR`, bounded.
    async fn validate(&self, case: &str) -> (i32, String, Duration) {
        let started = Instant::now();
        let out = tokio::time::timeout(
            DEADLINE,
            tokio::process::Command::new(edgeplane_bin())
                .arg("validate")
                .arg(self.dir())
                .kill_on_drop(true)
                .output(),
        )
        .await
        .unwrap_or_else(|_| panic!("[{case}] `edgeplane validate` hung"))
        .unwrap_or_else(|e| panic!("[{case}] cannot run `edgeplane validate`: {e}"));
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code().unwrap_or(-1), stderr, started.elapsed())
    }

    async fn assert_validate(&self, case: &str, exit: i32, want: &[Want]) -> Duration {
        let (code, stderr, took) = self.validate(case).await;
        assert_eq!(
            code, exit,
            "[{case}] `edgeplane validate` exit code:\n{stderr}"
        );
        for w in want {
            let prefix = w.validate_prefix(self.dir());
            let found = stderr
                .lines()
                .any(|l| l.starts_with(&prefix) && l.contains(&w.message));
            assert!(
                found,
                "[{case}] `edgeplane validate` does not say `{prefix}…{}`:\n{stderr}",
                w.message
            );
        }
        took
    }

    /// Writes the case's files, checks (a)–(d), restores the base files and
    /// checks again (a late push would show in the counters).
    async fn run(&mut self, case: Case) {
        let name = case.name;
        let before = self.loads(name).await;
        for (file, bytes) in &case.files {
            write_bytes_atomic(self.dir(), file, bytes);
        }
        let started = Instant::now();
        let status = self.wait_diagnostics(name, before, &case.want).await;
        let read_in = started.elapsed();
        assert_eq!(
            status["lastLoadFailed"],
            case.exit != 0,
            "[{name}] lastLoadFailed: {status}"
        );
        self.assert_unchanged(name, case.serves).await;
        self.assert_traffic(name).await;
        if case.serves == Serves::RoutesOnly {
            self.assert_missing_route(name).await;
        }
        self.assert_validate(name, case.exit, &case.want).await;
        self.assert_alive(name).await;

        let before = self.loads(name).await;
        for (file, _) in &case.files {
            match self.base.iter().find(|(n, _)| n == file) {
                Some((_, bytes)) => write_bytes_atomic(self.dir(), file, bytes),
                None => std::fs::remove_file(self.dir().join(file))
                    .unwrap_or_else(|e| panic!("[{name}] remove {file}: {e}")),
            }
        }
        self.wait_clean(name, before).await;
        self.wait_baseline(name).await;
        self.assert_unchanged(name, case.serves).await;
        eprintln!("[{name}] diagnosed {} in {read_in:?}", case.want.len());
    }

    /// After an input that may change routes: back to the first versions.
    async fn wait_baseline(&self, case: &str) {
        let end = Instant::now() + DEADLINE;
        loop {
            let now = self.served().await;
            if now.versions == self.baseline.versions {
                return;
            }
            assert!(
                Instant::now() < end,
                "[{case}] Envoy did not get the base config back: {now:?} != {:?}\n{}",
                self.baseline,
                self.tail()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The `missing-upstream` route: Envoy answers it without a cluster.
    async fn assert_missing_route(&self, case: &str) {
        let end = Instant::now() + DEADLINE;
        loop {
            let got = http_get(self.s.port, "/missing").await.map(|r| r.0);
            if got == Some(503) {
                return;
            }
            assert!(
                Instant::now() < end,
                "[{case}] /missing: {got:?}, want 503 (no cluster)\n{}",
                self.tail()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The end of both logs, for failure messages.
    fn tail(&self) -> String {
        let cut = |t: String| {
            let lines: Vec<&str> = t.lines().collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        };
        format!(
            "--- edgeplane log (end) ---\n{}\n--- envoy log (end) ---\n{}",
            cut(self.s.cp.log_text()),
            cut(self.s.envoy.log_text())
        )
    }

    /// edgeplane's process id (found by its command line: our config dir).
    fn pid(&self) -> u32 {
        let dir = self.dir().to_string_lossy().into_owned();
        std::fs::read_dir("/proc")
            .expect("/proc")
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .find(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                    let args: Vec<String> = c
                        .split(|b| *b == 0)
                        .map(|a| String::from_utf8_lossy(a).into_owned())
                        .collect();
                    args.iter().any(|a| a == "serve") && args.contains(&dir)
                })
            })
            .expect("edgeplane's process")
    }
}

/// A field of `/proc/PID/status`, in kB (e.g. `VmHWM`, the peak RSS).
fn proc_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(&format!("{field}:")))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// How many inotify watches the process holds.
fn inotify_watches(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fdinfo"))
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| {
                    std::fs::read_to_string(e.path())
                        .unwrap_or_default()
                        .lines()
                        .filter(|l| l.starts_with("inotify wd:"))
                        .count()
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Like `support::write_atomic`, for any bytes.
fn write_bytes_atomic(dir: &Path, name: &str, bytes: &[u8]) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).expect("write temp manifest");
    std::fs::rename(&tmp, dir.join(name)).expect("rename manifest into place");
}

// === the tests ===

/// Every content input of the corpus, one after another on one stack.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_manifests_cost_nothing() {
    let mut h = Hostile::start().await;
    let port = h.s.port;
    let backend = h.s.backend.port;
    for case in content_cases(port, backend) {
        h.run(case).await;
    }
    h.assert_unchanged("all content inputs", Serves::Nothing)
        .await;
}

/// A FIFO named `x.yaml`, a directory named `y.yaml`, a unix socket named
/// `z.yaml`: only regular files are opened (a FIFO would block the read
/// forever), the others are named in warnings.
async fn unreadable_files(h: &mut Hostile) {
    let case = "unreadable-files";
    let before = h.loads(case).await;
    let fifo = h.dir().join("x.yaml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(made.success(), "[{case}] mkfifo");
    std::fs::create_dir(h.dir().join("y.yaml")).expect("mkdir y.yaml");
    let sock = std::os::unix::net::UnixListener::bind(h.dir().join("z.yaml")).expect("bind z.yaml");
    let want = [
        warning(
            "x.yaml",
            (0, 0),
            NONE,
            "a FIFO, not a regular file; not read",
        ),
        warning(
            "z.yaml",
            (0, 0),
            NONE,
            "a socket, not a regular file; not read",
        ),
    ];
    let status = h.wait_diagnostics(case, before, &want).await;
    assert_eq!(
        status["diagnostics"].as_array().map(Vec::len),
        Some(2),
        "[{case}] the directory y.yaml is read as a directory, silently: {status}"
    );
    h.assert_unchanged(case, Serves::Nothing).await;
    h.assert_traffic(case).await;
    h.assert_validate(case, 0, &want).await;
    h.assert_alive(case).await;

    let before = h.loads(case).await;
    drop(sock);
    for f in ["x.yaml", "z.yaml"] {
        std::fs::remove_file(h.dir().join(f)).expect("remove special file");
    }
    std::fs::remove_dir(h.dir().join("y.yaml")).expect("rmdir y.yaml");
    h.wait_clean(case, before).await;
}

/// Directory links pointing at each other, file links in a loop, a file
/// link to /etc/passwd named `x.yaml`, directory links to `/` and `/usr`.
/// None is followed (by the reader or the watcher), each is named.
async fn links(h: &mut Hostile) {
    let case = "symlink-loops-and-escapes";
    let pid = h.pid();
    let watches_before = inotify_watches(pid);
    let before = h.loads(case).await;
    let d = h.dir().to_path_buf();
    let link = |target: &str, at: &str| {
        std::os::unix::fs::symlink(target, d.join(at))
            .unwrap_or_else(|e| panic!("[{case}] link {at} -> {target}: {e}"));
    };
    std::fs::create_dir(d.join("loop1")).expect("mkdir");
    std::fs::create_dir(d.join("loop2")).expect("mkdir");
    link("../loop2", "loop1/next");
    link("../loop1", "loop2/next");
    link("lb.yaml", "la.yaml");
    link("la.yaml", "lb.yaml");
    link("/etc/passwd", "x.yaml");
    link("/", "root");
    link("/usr", "usr");
    let dir_link = "link to a directory is not followed";
    let want = [
        warning("loop1/next", (0, 0), NONE, dir_link),
        warning("loop2/next", (0, 0), NONE, dir_link),
        warning("la.yaml", (0, 0), NONE, "link cannot be resolved"),
        warning("lb.yaml", (0, 0), NONE, "link cannot be resolved"),
        warning(
            "x.yaml",
            (0, 0),
            NONE,
            "link points outside the config directory",
        ),
        warning("root", (0, 0), NONE, dir_link),
        warning("usr", (0, 0), NONE, dir_link),
    ];
    h.wait_diagnostics(case, before, &want).await;
    h.assert_unchanged(case, Serves::Nothing).await;
    h.assert_traffic(case).await;
    h.assert_validate(case, 0, &want).await;
    h.assert_alive(case).await;

    // The watcher did not walk into the links: a reload (which re-arms it)
    // stays quick and the watches stay those of our own directories.
    let before = h.loads(case).await;
    let started = Instant::now();
    write_bytes_atomic(&d, "touch.yaml", b"# a comment-only manifest\n");
    h.wait_status(case, "a reload after touch.yaml", before, |_| true)
        .await;
    let reload = started.elapsed();
    let watches = inotify_watches(pid);
    assert!(
        watches <= watches_before + 2,
        "[{case}] the watcher followed links: {watches_before} -> {watches} inotify watches"
    );
    assert!(
        reload < Duration::from_secs(5),
        "[{case}] a reload took {reload:?} with links to / and /usr"
    );
    eprintln!("[{case}] reload with links present: {reload:?}, {watches} inotify watches");

    let before = h.loads(case).await;
    for f in [
        "loop1/next",
        "loop2/next",
        "la.yaml",
        "lb.yaml",
        "x.yaml",
        "root",
        "usr",
        "touch.yaml",
    ] {
        std::fs::remove_file(d.join(f)).expect("remove link");
    }
    std::fs::remove_dir(d.join("loop1")).expect("rmdir");
    std::fs::remove_dir(d.join("loop2")).expect("rmdir");
    h.wait_clean(case, before).await;
}

/// A 100 MB file: refused from its size, without reading it.
async fn huge_file(h: &mut Hostile) {
    let case = "100MB-file";
    let pid = h.pid();
    let d = h.dir().to_path_buf();
    // Real bytes (not a sparse file): YAML comment lines, 100 MiB.
    let size: u64 = 100 * 1024 * 1024;
    let write = {
        let d = d.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            use std::io::Write;
            let tmp = d.join(".big.yaml.tmp");
            let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
            let line = format!("# {}\n", "x".repeat(1021));
            for _ in 0..size / 1024 {
                f.write_all(line.as_bytes())?;
            }
            f.flush()?;
            Ok(())
        })
    };
    tokio::time::timeout(DEADLINE, write)
        .await
        .expect("[100MB-file] writing timed out")
        .expect("join")
        .expect("write the 100 MB file");
    let hwm_before = proc_kb(pid, "VmHWM");
    let before = h.loads(case).await;
    let started = Instant::now();
    std::fs::rename(d.join(".big.yaml.tmp"), d.join("big.yaml")).expect("rename big.yaml");
    let want = [error(
        "big.yaml",
        (0, 0),
        NONE,
        &format!("file is {size} bytes; manifests larger than 8388608 bytes are not read"),
    )];
    h.wait_diagnostics(case, before, &want).await;
    let took = started.elapsed();
    let hwm_after = proc_kb(pid, "VmHWM");
    h.assert_unchanged(case, Serves::Nothing).await;
    h.assert_traffic(case).await;
    let validate_took = h.assert_validate(case, 1, &want).await;
    h.assert_alive(case).await;
    eprintln!(
        "[{case}] refused in {took:?} (rename to /status); edgeplane peak RSS {hwm_before} kB -> {hwm_after} kB; validate took {validate_took:?}"
    );
    assert!(
        hwm_after.saturating_sub(hwm_before) < 32 * 1024,
        "[{case}] edgeplane's peak RSS grew {hwm_before} kB -> {hwm_after} kB: the file was read"
    );
    assert!(
        took < Duration::from_secs(5),
        "[{case}] refusing took {took:?}"
    );

    let before = h.loads(case).await;
    std::fs::remove_file(d.join("big.yaml")).expect("remove big.yaml");
    h.wait_clean(case, before).await;
}

/// A manifest written in place in two halves while its writer keeps it
/// open: the half-written state (at a line break it is a valid VirtualService
/// without routes; mid-line it is broken YAML) must never be served.
async fn truncated_mid_write(h: &mut Hostile) {
    use std::io::Write;
    let vs = h
        .base
        .iter()
        .find(|(n, _)| n == "vs.yaml")
        .map(|(_, b)| b.clone())
        .expect("base vs.yaml");
    let text = String::from_utf8(vs.clone()).expect("utf8");
    let at_line = text.find("    routes:").expect("routes line");
    let mid_line = text.find("prefix: /").expect("prefix") + 3;
    for (case, cut) in [
        ("truncated-at-a-line-break", at_line),
        ("truncated-mid-line", mid_line),
    ] {
        let before = h.loads(case).await;
        let path = h.dir().join("vs.yaml");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .expect("open vs.yaml in place");
        f.write_all(&vs[..cut]).expect("write the first half");
        f.sync_data().expect("sync");
        // Longer than the debounce (500 ms at most): edgeplane would have
        // read the half by now if it did not wait for the writer. A bounded
        // wait for a non-event, checked every 100 ms.
        let end = Instant::now() + Duration::from_millis(900);
        while Instant::now() < end {
            h.assert_unchanged(case, Serves::Nothing).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let half_read = h.loads(case).await > before;
        h.assert_traffic(case).await;
        f.write_all(&vs[cut..]).expect("write the rest");
        drop(f);
        h.wait_clean(case, before).await;
        h.assert_unchanged(case, Serves::Nothing).await;
        h.assert_traffic(case).await;
        h.assert_alive(case).await;
        assert!(
            !half_read,
            "[{case}] edgeplane read the file while its writer still had it open"
        );
    }
}

/// A file deleted and recreated in a tight loop while edgeplane reloads:
/// each load sees it or not, never an error of its own making.
async fn deleted_while_read(h: &mut Hostile) {
    let case = "deleted-while-read";
    let d = h.dir().to_path_buf();
    // A RouteTable nothing delegates to: whether a load sees it or not,
    // nothing served changes.
    let table = "apiVersion: gateway.solo.io/v1\nkind: RouteTable\nmetadata:\n  name: flappy\n  namespace: gloo-system\nspec:\n  routes:\n  - matchers:\n    - prefix: /flappy\n    routeAction:\n      single:\n        upstream:\n          name: backend\n          namespace: gloo-system\n";
    std::fs::write(d.join("flappy.yaml"), table).expect("write flappy.yaml");
    let before = h.loads(case).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flapper = {
        let (d, stop) = (d.clone(), stop.clone());
        tokio::task::spawn_blocking(move || {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = std::fs::remove_file(d.join("flappy.yaml"));
                let _ = std::fs::write(d.join("flappy.yaml"), table);
                n += 1;
            }
            n
        })
    };
    // A fixed 2.5 s of flapping (the experiment's length, not a wait for
    // readiness), sampling the diagnostics every 20 ms.
    let mut seen = Vec::new();
    let end = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < end {
        if let Some(s) = h.status().await {
            for diag in s["diagnostics"].as_array().into_iter().flatten() {
                if !seen.contains(diag) {
                    seen.push(diag.clone());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let cycles = tokio::time::timeout(DEADLINE, flapper)
        .await
        .expect("[deleted-while-read] the flapping loop did not stop")
        .expect("join");
    let during = h.loads(case).await - before;
    // Anything but a read of a half-written file (legitimately broken
    // YAML) is edgeplane's own doing.
    let own: Vec<&Value> = seen
        .iter()
        .filter(|d| {
            !(d["file"]
                .as_str()
                .is_some_and(|f| f.ends_with("flappy.yaml"))
                && d["kind"] == ""
                && d["line"].as_u64() > Some(0))
        })
        .collect();
    assert!(
        own.is_empty(),
        "[{case}] diagnostics during {cycles} delete/recreate cycles: {own:?}"
    );
    assert!(
        during >= 2,
        "[{case}] only {during} loads during {cycles} delete/recreate cycles"
    );
    eprintln!(
        "[{case}] {cycles} delete/recreate cycles, {during} loads, {} diagnostics",
        seen.len()
    );
    let before = h.loads(case).await;
    std::fs::remove_file(d.join("flappy.yaml")).expect("remove flappy.yaml");
    h.wait_clean(case, before).await;
    h.assert_unchanged(case, Serves::Nothing).await;
    h.assert_traffic(case).await;
    h.assert_alive(case).await;
}

/// The directory itself turns hostile: special files, links, a huge file,
/// writes in progress, files vanishing under the reader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_files_cost_nothing() {
    let mut h = Hostile::start().await;
    unreadable_files(&mut h).await;
    links(&mut h).await;
    huge_file(&mut h).await;
    truncated_mid_write(&mut h).await;
    deleted_while_read(&mut h).await;
    h.assert_unchanged("all file inputs", Serves::Nothing).await;
}

/// 10,000 small valid Upstreams written at once: loaded within the
/// deadline, and Envoy gets them all; the listener is not touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_files_load_within_the_deadline() {
    const N: usize = 10_000;
    let case = "10000-files";
    let mut h = Hostile::start().await;
    let before = h.loads(case).await;
    let d = h.dir().to_path_buf();
    let started = Instant::now();
    let write = tokio::task::spawn_blocking(move || {
        for i in 0..N {
            let name = format!("u{i:05}");
            std::fs::write(
                d.join(format!("{name}.yaml")),
                format!(
                    "{}spec:\n  static:\n    hosts:\n    - addr: 127.0.0.1\n      port: {}\n",
                    upstream_head(&name),
                    1024 + i
                ),
            )
            .expect("write upstream");
        }
    });
    tokio::time::timeout(DEADLINE, write)
        .await
        .expect("[10000-files] writing timed out")
        .expect("join");
    let written = started.elapsed();
    let files = h.base.len() + N;
    let log_has_load = |log: &str| {
        log.lines()
            .find(|l| {
                l.contains("config loaded and published") && l.contains(&format!("files={files} "))
            })
            .map(str::to_string)
    };
    let line = eventually("edgeplane publishes all 10,000 files", || async {
        log_has_load(&h.s.cp.log_text())
    })
    .await;
    let published = started.elapsed();
    let status = h.wait_clean(case, before).await;
    let clusters = eventually("Envoy holds 10,000+ clusters", || async {
        h.s.envoy
            .stat("cluster_manager.active_clusters")
            .await
            .filter(|n| *n > N as u64)
    })
    .await;
    let in_envoy = started.elapsed();
    let load_ms = line
        .split("elapsed_ms=")
        .nth(1)
        .and_then(|v| v.split_whitespace().next())
        .unwrap_or("?")
        .to_string();
    let cds = status["proxies"][0]["types"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| {
            t["typeUrl"]
                .as_str()
                .is_some_and(|u| u.ends_with("Cluster"))
        })
        .and_then(|t| t["resources"].as_array().map(Vec::len));
    assert_eq!(cds, Some(N + 1), "[{case}] clusters in /status");
    eprintln!(
        "[{case}] written in {written:?}; published after {published:?} (the full load took {load_ms} ms); \
         {clusters} active clusters in Envoy after {in_envoy:?}; {} loads",
        status["loads"].as_u64().unwrap_or(0) - before
    );
    // The listener was not touched; traffic and the old socket survive.
    let now = h.served().await;
    assert_eq!(
        (&now.versions.0, now.lds_ok),
        (&h.baseline.versions.0, h.baseline.lds_ok),
        "[{case}] the listener changed"
    );
    assert_ne!(
        now.versions.1, h.baseline.versions.1,
        "[{case}] CDS did not move"
    );
    h.assert_traffic(case).await;
    h.assert_alive(case).await;
}

// === known blow-ups elsewhere (reproductions; see tests/hostile/README.md) ===

/// Runs `files` through a stack and demands the load within `limit`.
async fn bounded_load(case: &str, files: Vec<(String, Vec<u8>)>, limit: Duration) {
    let mut h = Hostile::start().await;
    let before = h.loads(case).await;
    let started = Instant::now();
    let stage = h.s.tmp.path().join("stage");
    std::fs::create_dir(&stage).expect("mkdir stage");
    for (name, bytes) in &files {
        std::fs::write(stage.join(name), bytes).expect("write");
    }
    // Moved in at once: one event, one load.
    std::fs::rename(&stage, h.dir().join("in")).expect("move in");
    let end = Instant::now() + limit;
    loop {
        if h.status()
            .await
            .is_some_and(|s| s["loads"].as_u64() > Some(before))
        {
            break;
        }
        assert!(
            Instant::now() < end,
            "[{case}] no load within {limit:?}; edgeplane is still working on it"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("[{case}] loaded in {:?}", started.elapsed());
    h.assert_traffic(case).await;
    h.assert_alive(case).await;
}

/// Regression: walking every path of the delegation graph made nine route
/// tables that each select all tables (`namespaces: ['*']`) take minutes
/// and gigabytes; expansions are now bounded and cycles found on the graph.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dense_delegation_cycle_is_bounded() {
    let tables: String = (0..9)
        .map(|i| format!("---\napiVersion: gateway.solo.io/v1\nkind: RouteTable\nmetadata:\n  name: t{i}\n  namespace: gloo-system\nspec:\n  routes:\n  - matchers:\n    - prefix: /a\n    delegateAction:\n      selector:\n        namespaces: ['*']\n"))
        .collect();
    bounded_load(
        "dense-delegation-cycle",
        vec![("tables.yaml".into(), tables.into_bytes())],
        Duration::from_secs(30),
    )
    .await;
}

/// Regression: every conflicting VirtualService's message listed all the
/// others, so n VirtualServices sharing a domain cost O(n²) text (3,000:
/// ~360 MB of diagnostics); lists now stop at ten names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_virtual_services_sharing_a_domain_are_bounded() {
    let files = (0..3000)
        .map(|i| {
            let vs = format!("apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata:\n  name: vs{i}\n  namespace: gloo-system\nspec:\n  virtualHost:\n    domains: ['*']\n");
            (format!("vs{i}.yaml"), vs.into_bytes())
        })
        .collect();
    bounded_load(
        "3000-virtual-services-one-domain",
        files,
        Duration::from_secs(30),
    )
    .await;
}

/// Regression: padding each document with one newline per line before it
/// made a file of many small documents parse in quadratic time (16,000
/// documents, 2 MB: ~16 s); documents now carry a line offset instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_documents_in_one_file_parse_in_linear_time() {
    let docs: Vec<String> = (0..16_000)
        .map(|i| {
            format!(
                "{}spec: {{static: {{hosts: [{{addr: 127.0.0.1, port: 1}}]}}}}\n",
                upstream_head(&format!("m{i}"))
            )
        })
        .collect();
    bounded_load(
        "16000-documents-one-file",
        vec![("many.yaml".into(), docs.join("---\n").into_bytes())],
        Duration::from_secs(30),
    )
    .await;
}
