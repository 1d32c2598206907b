//! Build-time protobuf work, all with the pure-Rust `protox` compiler, so
//! building needs no `protoc` on the machine:
//!
//! 1. edgeplane's own gRPC API (`proto/`) → Rust code via tonic-prost-build.
//! 2. The Envoy messages edgeplane emits → a `FileDescriptorSet` in OUT_DIR
//!    (`envoy_descriptors.bin`), which `src/json.rs` embeds to print the
//!    resources as proto3 JSON. The `.proto` sources are read from the
//!    `envoy-types` crate's own package (its `proto/` directory); nothing is
//!    copied into this repository.

use std::path::{Path, PathBuf};
use std::process::Command;

type BoxError = Box<dyn std::error::Error>;

/// The Envoy root messages we emit (or will), with their imports. Anything
/// that can sit in an `Any` of an emitted resource must be reachable from
/// here, or JSON rendering of that resource fails.
const ENVOY_ROOTS: &[&str] = &[
    "envoy/config/listener/v3/listener.proto",
    "envoy/config/route/v3/route.proto",
    "envoy/config/cluster/v3/cluster.proto",
    "envoy/config/endpoint/v3/endpoint.proto",
    "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto",
    "envoy/extensions/filters/http/router/v3/router.proto",
    "envoy/extensions/upstreams/http/v3/http_protocol_options.proto",
    "envoy/extensions/transport_sockets/tls/v3/tls.proto",
    "envoy/extensions/filters/http/cors/v3/cors.proto",
    "envoy/extensions/filters/http/fault/v3/fault.proto",
    "envoy/extensions/filters/http/buffer/v3/buffer.proto",
    "envoy/extensions/filters/http/csrf/v3/csrf.proto",
    "envoy/extensions/filters/http/ext_authz/v3/ext_authz.proto",
    "envoy/extensions/filters/http/compressor/v3/compressor.proto",
    "envoy/extensions/compression/gzip/compressor/v3/gzip.proto",
    "envoy/extensions/filters/http/health_check/v3/health_check.proto",
    "envoy/extensions/filters/http/grpc_web/v3/grpc_web.proto",
    "envoy/config/trace/v3/zipkin.proto",
    "envoy/config/trace/v3/opentelemetry.proto",
    "envoy/config/core/v3/health_check.proto",
    "envoy/extensions/http/header_formatters/preserve_case/v3/preserve_case.proto",
    "envoy/extensions/request_id/uuid/v3/uuid.proto",
    "envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.proto",
    "envoy/extensions/access_loggers/file/v3/file.proto",
    "envoy/extensions/access_loggers/grpc/v3/als.proto",
    "envoy/extensions/formatter/req_without_query/v3/req_without_query.proto",
    "envoy/extensions/formatter/metadata/v3/metadata.proto",
    "envoy/extensions/filters/listener/proxy_protocol/v3/proxy_protocol.proto",
    "envoy/extensions/filters/network/connection_limit/v3/connection_limit.proto",
    "envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto",
    "envoy/extensions/filters/network/sni_cluster/v3/sni_cluster.proto",
];

/// Subdirectories of envoy-types' `proto/` that are include roots.
const ENVOY_INCLUDES: &[&str] = &[
    "data-plane-api",
    "xds",
    "googleapis",
    "protoc-gen-validate",
    "cel-spec/proto",
    "opentelemetry-proto",
    "client_model",
];

fn main() -> Result<(), BoxError> {
    println!("cargo:rerun-if-changed=build.rs");
    // A different envoy-types version means different protos.
    println!("cargo:rerun-if-changed=Cargo.lock");
    println!("cargo:rerun-if-env-changed=CARGO_HOME");

    let protos = ["proto/edgeplane/v1/status.proto"];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = protox::compile(protos, ["proto"])?;
    // The messages serialize to JSON as `/status` shows them (camelCase;
    // severity by name; `resource_names` as `resources`), so one typed
    // report backs the gRPC API, `/status` and `status --output json`.
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .message_attribute(
            ".edgeplane.v1",
            "#[derive(serde::Serialize)] #[serde(rename_all = \"camelCase\")]",
        )
        .field_attribute(
            ".edgeplane.v1.Diagnostic.severity",
            "#[serde(serialize_with = \"crate::status::api::serialize_severity\")]",
        )
        .field_attribute(
            ".edgeplane.v1.TypeVersion.resource_names",
            "#[serde(rename = \"resources\")]",
        )
        .compile_fds(fds)?;

    envoy_descriptors()?;
    Ok(())
}

/// Compiles `ENVOY_ROOTS` (with imports, without source info) and writes the
/// encoded `FileDescriptorSet` to `$OUT_DIR/envoy_descriptors.bin`.
fn envoy_descriptors() -> Result<(), BoxError> {
    let root = envoy_proto_dir()?;
    let includes: Vec<PathBuf> = ENVOY_INCLUDES
        .iter()
        .map(|d| root.join(d))
        .filter(|d| d.is_dir())
        .collect();
    let mut compiler = protox::Compiler::new(&includes)?;
    compiler.include_imports(true).include_source_info(false);
    compiler.open_files(ENVOY_ROOTS).map_err(|e| {
        format!(
            "compiling Envoy protos from {} failed: {e:?}",
            root.display()
        )
    })?;
    let bytes = compiler.encode_file_descriptor_set();
    let out = PathBuf::from(std::env::var("OUT_DIR")?).join("envoy_descriptors.bin");
    std::fs::write(&out, bytes)?;
    Ok(())
}

/// envoy-types' `proto/` directory: from `cargo metadata`, else by scanning
/// the cargo registry sources.
fn envoy_proto_dir() -> Result<PathBuf, BoxError> {
    let metadata_err = match from_cargo_metadata() {
        Ok(dir) => {
            eprintln!("envoy protos (from cargo metadata): {}", dir.display());
            return Ok(dir);
        }
        Err(e) => e,
    };
    match from_registry_scan() {
        Ok(dir) => {
            eprintln!(
                "envoy protos (registry scan; cargo metadata failed: {metadata_err}): {}",
                dir.display()
            );
            Ok(dir)
        }
        Err(scan_err) => Err(format!(
            "cannot find the envoy-types crate's proto/ directory: \
             cargo metadata: {metadata_err}; registry scan: {scan_err}"
        )
        .into()),
    }
}

fn proto_dir_of(package_dir: &Path) -> Result<PathBuf, BoxError> {
    let dir = package_dir.join("proto");
    if dir.join("data-plane-api").is_dir() {
        Ok(dir)
    } else {
        Err(format!("{} has no data-plane-api/", dir.display()).into())
    }
}

fn from_cargo_metadata() -> Result<PathBuf, BoxError> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR")?;
    let mut cmd = Command::new(cargo);
    cmd.args(["metadata", "--format-version", "1", "--offline"]);
    // Without a platform filter cargo wants the sources of every
    // platform's dependencies (e.g. Windows-only crates), which an offline
    // Linux machine does not have.
    if let Ok(target) = std::env::var("TARGET") {
        cmd.args(["--filter-platform", &target]);
    }
    let out = cmd.current_dir(&manifest_dir).output()?;
    if !out.status.success() {
        return Err(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let manifest = meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "envoy-types")
        .and_then(|p| p["manifest_path"].as_str())
        .ok_or("no envoy-types package in cargo metadata")?;
    let package_dir = Path::new(manifest)
        .parent()
        .ok_or("envoy-types manifest_path has no parent")?;
    proto_dir_of(package_dir)
}

fn from_registry_scan() -> Result<PathBuf, BoxError> {
    let cargo_home = match std::env::var_os("CARGO_HOME") {
        Some(h) => PathBuf::from(h),
        None => PathBuf::from(std::env::var_os("HOME").ok_or("neither CARGO_HOME nor HOME set")?)
            .join(".cargo"),
    };
    let version = envoy_types_version_from_lock().ok_or("envoy-types not found in Cargo.lock")?;
    let wanted = format!("envoy-types-{version}");
    let src = cargo_home.join("registry").join("src");
    let indexes =
        std::fs::read_dir(&src).map_err(|e| format!("cannot read {}: {e}", src.display()))?;
    for index in indexes {
        let candidate = index?.path().join(&wanted);
        if let Ok(dir) = proto_dir_of(&candidate) {
            return Ok(dir);
        }
    }
    Err(format!("no {wanted}/proto under {}", src.display()).into())
}

/// The locked envoy-types version (the registry holds every version ever
/// fetched; only the locked one matches the generated Rust types).
fn envoy_types_version_from_lock() -> Option<String> {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").ok()?;
    let lock = std::fs::read_to_string(Path::new(&manifest_dir).join("Cargo.lock")).ok()?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "name = \"envoy-types\"" {
            let v = lines.next()?.trim().strip_prefix("version = \"")?;
            return Some(v.trim_end_matches('"').to_string());
        }
    }
    None
}
