//! The command line: checked-in bootstraps are exactly what `edgeplane
//! bootstrap` prints (so they cannot drift), and `validate` exit codes.

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_edgeplane");

fn bootstrap(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("bootstrap")
        .args(args)
        .output()
        .expect("run edgeplane bootstrap");
    assert!(out.status.success());
    String::from_utf8(out.stdout).expect("utf-8 bootstrap")
}

fn checked_in(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel))
        .unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

#[test]
fn checked_in_bootstraps_match_the_generator() {
    let native = bootstrap(&[
        "--node-id",
        "native-node",
        "--xds-address",
        "127.0.0.1:9977",
    ]);
    assert_eq!(native, checked_in("envoy/bootstrap.native.yaml"));
    assert!(native.contains("type: STATIC"));
    let compose = bootstrap(&[
        "--node-id",
        "docker-compose-node",
        "--xds-address",
        "edgeplane:9977",
        "--admin-address",
        "0.0.0.0",
    ]);
    assert_eq!(compose, checked_in("deploy/compose/envoy.yaml"));
    assert!(compose.contains("type: STRICT_DNS"));
    assert!(compose.contains(r#"role: "gloo-system~gateway-proxy""#));
    // docker-compose.yml's profile etcd: one Envoy per replica.
    for n in 1..=2 {
        let node = format!("docker-compose-etcd-node-{n}");
        let xds = format!("edgeplane-etcd-{n}:9977");
        let etcd = bootstrap(&[
            "--node-id",
            &node,
            "--xds-address",
            &xds,
            "--admin-address",
            "0.0.0.0",
        ]);
        assert_eq!(
            etcd,
            checked_in(&format!("deploy/compose/envoy-etcd-{n}.yaml"))
        );
    }
}

#[test]
fn bad_xds_address_is_refused() {
    let out = Command::new(BIN)
        .args(["bootstrap", "--node-id", "n", "--xds-address", "nope"])
        .output()
        .expect("run edgeplane bootstrap");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not host:port"));
}

#[test]
fn validate_exit_codes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for dir in ["examples/manifests", "deploy/compose/manifests"] {
        let out = Command::new(BIN)
            .arg("validate")
            .arg(root.join(dir))
            .output()
            .expect("run validate");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{dir}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let missing = Command::new(BIN)
        .args(["validate", "/nonexistent/edgeplane-dir"])
        .output()
        .expect("run validate");
    assert_eq!(missing.status.code(), Some(2));
}

/// Runs `edgeplane args` with its stdout read by someone who stops after
/// `keep` lines (`| head -1`; 0: a reader gone before the first byte) and
/// returns the exit status and stderr.
fn with_stdout_closed_after(args: &[&str], keep: usize) -> (Option<i32>, String) {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run edgeplane");
    if let Some(stdout) = child.stdout.take() {
        let mut lines = BufReader::new(stdout).lines();
        for _ in 0..keep {
            let _ = lines.next();
        }
        // Dropped here: the read end closes, as when `head` exits.
    }
    let out = wait_bounded(child);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Waits for `child` for at most 30 s (then kills it and fails).
fn wait_bounded(mut child: std::process::Child) -> std::process::Output {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return child.wait_with_output().expect("collect output"),
            Ok(None) if std::time::Instant::now() < end => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            _ => {
                let _ = child.kill();
                panic!("edgeplane did not exit within 30 s");
            }
        }
    }
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    let examples = root().join("examples/websocket-reasons");
    let examples = examples.to_str().expect("utf-8 path");
    for (args, keep) in [
        (&["schema"][..], 1),
        (&["schema", "--fields"][..], 1),
        (&["translate", examples][..], 1),
        (&["translate", examples][..], 0),
        (&["routes", examples, "--output", "json"][..], 0),
        (&["routes", examples][..], 0),
        (&["bootstrap", "--node-id", "n"][..], 0),
    ] {
        let (code, stderr) = with_stdout_closed_after(args, keep);
        assert_eq!(code, Some(0), "edgeplane {args:?} | head: {stderr}");
        assert!(!stderr.contains("panicked"), "edgeplane {args:?}: {stderr}");
    }
}

/// Runs `edgeplane serve args` (logging at debug), which must fail to
/// start: exit 2. Returns its stderr.
fn serve_failing(args: &[&str]) -> String {
    let child = Command::new(BIN)
        .arg("serve")
        .args(args)
        .env("RUST_LOG", "debug")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run edgeplane serve");
    let out = wait_bounded(child);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    stderr
}

/// The `error: …` line a failed command printed.
fn error_line(stderr: &str) -> String {
    stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line in: {stderr}"))
        .to_string()
}

/// Each cause in an error line at most once.
fn assert_each_cause_once(line: &str) {
    let causes: Vec<&str> = line.trim_start_matches("error: ").split(": ").collect();
    for (i, c) in causes.iter().enumerate() {
        assert!(
            !causes[i + 1..]
                .iter()
                .any(|later| later.contains(c) || c.contains(later)),
            "`{c}` is said twice: {line}"
        );
    }
}

#[test]
fn a_taken_port_is_named_once_with_the_flag_that_moves_it() {
    let dir = root().join("examples/manifests");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let port = taken.local_addr().expect("local address").port();
    let free = crate::support::free_port();
    for (flag, args) in [
        (
            "--xds-address",
            vec![
                format!("--xds-address=127.0.0.1:{port}"),
                format!("--admin-address=127.0.0.1:{free}"),
            ],
        ),
        (
            "--admin-address",
            vec![
                format!("--xds-address=127.0.0.1:{free}"),
                format!("--admin-address=127.0.0.1:{port}"),
            ],
        ),
    ] {
        let dir = dir.to_str().expect("utf-8 path");
        let mut all = vec!["--config-dir", dir];
        all.extend(args.iter().map(String::as_str));
        let line = error_line(&serve_failing(&all));
        assert!(line.contains(flag), "{line}");
        assert!(line.contains(&format!("127.0.0.1:{port}")), "{line}");
        assert_eq!(line.matches("Address already in use").count(), 1, "{line}");
        assert_each_cause_once(&line);
    }
    drop(taken);
}

#[test]
fn an_unreachable_status_server_is_named_once() {
    let port = crate::support::free_port();
    for sub in ["status", "check"] {
        let out = Command::new(BIN)
            .args([sub, "--server", &format!("127.0.0.1:{port}")])
            .output()
            .expect("run edgeplane");
        assert_eq!(out.status.code(), Some(2), "{sub}");
        let line = error_line(&String::from_utf8_lossy(&out.stderr));
        assert!(line.contains("--server"), "{line}");
        assert_each_cause_once(&line);
    }
}

#[test]
fn serve_on_a_missing_directory_fails_before_binding_anything() {
    let port = crate::support::free_port();
    let stderr = serve_failing(&[
        "--config-dir",
        "/nonexistent/edgeplane-manifests",
        "--xds-address",
        &format!("127.0.0.1:{port}"),
    ]);
    let line = error_line(&stderr);
    assert!(line.contains("/nonexistent/edgeplane-manifests"), "{line}");
    assert!(line.contains("--config-dir"), "{line}");
    // Nothing was loaded, bound or listened on first.
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

fn validate(dir: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(BIN)
        .arg("validate")
        .arg(dir)
        .args(extra)
        .output()
        .expect("run edgeplane validate");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn validate_fails_on_a_directory_without_manifests_unless_allowed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (code, err) = validate(tmp.path(), &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("no manifests"), "{err}");
    assert!(err.contains("--allow-empty"), "{err}");
    // Files that hold no resource are no better.
    std::fs::write(tmp.path().join("notes.yaml"), "# nothing here\n").expect("write");
    assert_eq!(validate(tmp.path(), &[]).0, Some(1));
    let (code, err) = validate(tmp.path(), &["--allow-empty"]);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn validate_strict_fails_on_warnings_and_names_the_close_upstream() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let manifests = [
        (
            "gateway.yaml",
            "apiVersion: gateway.solo.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: gloo-system}\nspec: {bindPort: 8080, httpGateway: {}}\n",
        ),
        (
            "upstream.yaml",
            "apiVersion: gloo.solo.io/v1\nkind: Upstream\nmetadata: {name: backend, namespace: gloo-system}\nspec: {static: {hosts: [{addr: 127.0.0.1, port: 8081}]}}\n",
        ),
        // `backnd`: a typo of an Upstream that exists.
        (
            "vs.yaml",
            "apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata: {name: vs, namespace: gloo-system}\nspec:\n  virtualHost:\n    domains: ['*']\n    routes:\n    - matchers: [{prefix: /}]\n      routeAction: {single: {upstream: {name: backnd, namespace: gloo-system}}}\n",
        ),
    ];
    for (name, text) in manifests {
        std::fs::write(tmp.path().join(name), text).expect("write manifest");
    }
    let (code, err) = validate(tmp.path(), &[]);
    assert_eq!(code, Some(0), "a warning alone passes: {err}");
    assert!(err.contains("warning"), "{err}");
    assert!(err.contains("did you mean `gloo-system.backend`?"), "{err}");
    let (code, err) = validate(tmp.path(), &["--strict"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("--strict"), "{err}");
}
