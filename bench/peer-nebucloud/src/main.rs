//! `peer-nebucloud`: the published `nebucloud-xds` crate (its
//! `ShardedCache` and its ADS service, SotW and delta) serving one snapshot
//! to every node, for edgeplane's fan-out benchmark. The same command-line
//! contract as `bench/peer`; see README.md.
//!
//! ```text
//! peer-nebucloud --listen 127.0.0.1:PORT --resources FILE
//! stdout: "listening" once the socket accepts connections
//! stdin:  "load FILE" → "loaded <generation>"; EOF, SIGTERM or SIGINT → exit 0
//! ```

#[path = "../../peer-common/common.rs"]
mod common;
mod nodes;
mod resources;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use nebucloud_xds::cache::{ShardedCache, Snapshot};
use nebucloud_xds::core::ResourceRegistry;
use nebucloud_xds::server::services::AdsService;

use crate::common::{parse_args, say, serve_commands};
use crate::nodes::{NodeHook, Nodes};
use crate::resources::Versions;

fn build(versions: &mut Versions, path: &Path) -> Result<(Snapshot, u64)> {
    Ok(versions.next(resources::read(path)?))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = parse_args("peer-nebucloud")?;
    let mut versions = Versions::default();
    let (snapshot, _) = build(&mut versions, &args.resources)?;

    let cache = Arc::new(ShardedCache::new());
    let nodes = Arc::new(Nodes::new(cache.clone(), snapshot));
    // The crate's ADS service as `XdsServer` builds it (`AdsService::new`:
    // SotW and delta), with its registry of Envoy types.
    let ads = AdsService::new(cache, Arc::new(ResourceRegistry::with_envoy_types()));
    let ads = NodeHook::new(ads.into_service(), nodes.clone());

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("bind {}", args.listen))?;
    // The transport settings the crate's `XdsServer` applies by default
    // (its router is private, so they are set here): HTTP/2 keepalive every
    // 30 s with a 10 s timeout, at most 100 concurrent requests per
    // connection. tonic 0.12's defaults otherwise, one TCP listener.
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let server = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .concurrency_limit_per_connection(100)
        .add_service(ads)
        .serve_with_incoming(incoming);
    let server = tokio::spawn(server);
    say("listening");

    serve_commands("peer-nebucloud", server, async |file: &Path| {
        let (snapshot, generation) = build(&mut versions, file)?;
        let nodes = nodes.clone();
        // Synchronous work (a snapshot per known node): off the runtime's
        // worker threads.
        tokio::task::spawn_blocking(move || nodes.replace(snapshot))
            .await
            .context("setting the snapshot")?;
        Ok(generation.to_string())
    })
    .await?;
    // Open streams and the stdin thread end with the process.
    std::process::exit(0)
}
