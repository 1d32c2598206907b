//! `peer`: the published `rust-control-plane` crate (the Rust port of
//! go-control-plane) serving one snapshot to every node over ADS, for
//! edgeplane's fan-out benchmark. See README.md for the contract.
//!
//! ```text
//! peer --listen 127.0.0.1:PORT --resources FILE
//! stdout: "listening" once the socket accepts connections
//! stdin:  "load FILE" → "loaded <generation>"; EOF or SIGTERM → exit 0
//! ```

#[path = "../../peer-common/common.rs"]
mod common;
mod nodes;
mod resources;

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use data_plane_api::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryServiceServer;
use rust_control_plane::cache::Cache;
use rust_control_plane::service::common::Service;
use rust_control_plane::snapshot::Snapshot;

use crate::common::{parse_args, say, serve_commands};
use crate::nodes::{NodeHook, Nodes};
use crate::resources::Versions;

fn build(versions: &mut Versions, path: &Path, check: bool) -> Result<(Snapshot, u64)> {
    let (decoded, altered) = resources::read(path, check)?;
    if !altered.is_empty() {
        eprintln!(
            "peer: WARNING: {} resource(s) of {} are not served byte for byte (fields data-plane-api 0.1.1 does not know are dropped): {}",
            altered.len(),
            path.display(),
            altered.join(", ")
        );
    }
    Ok(versions.next(decoded))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = parse_args("peer")?;
    // rust-control-plane `unwrap()`s inside its tasks (every stream that
    // ends panics its task): one line each, no backtrace even when
    // RUST_BACKTRACE is set, so a thousand closing streams stay cheap.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("peer: task panicked at {at}: {msg}");
    }));
    let mut versions = Versions::default();
    let (snapshot, _) = build(&mut versions, &args.resources, true)?;

    // `ads = false`, as the crate's own test harness runs ADS: in 0.1.2 the
    // `ads = true` consistency check holds back every response whose request
    // names all (or none) of the snapshot's resources, i.e. all of them.
    let cache = Arc::new(Cache::new(false));
    let nodes = Arc::new(Nodes::new(cache.clone(), snapshot));
    let ads = NodeHook::new(
        AggregatedDiscoveryServiceServer::new(Service::new(cache)),
        nodes.clone(),
    );

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("bind {}", args.listen))?;
    // Same socket setup as edgeplane's `serve` (a TcpListenerStream, tonic's
    // defaults otherwise: no HTTP/2 stream limit, no message size limit in
    // tonic 0.8).
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let server = tonic::transport::Server::builder()
        .add_service(ads)
        .serve_with_incoming(incoming);
    let server = tokio::spawn(server);
    say("listening");

    serve_commands("peer", server, async |file: &Path| {
        let (snapshot, generation) = build(&mut versions, file, false)?;
        nodes.replace(snapshot).await;
        Ok(generation.to_string())
    })
    .await?;
    // Open streams and the stdin thread end with the process.
    std::process::exit(0)
}
