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
