//! Fuzz target 2: the whole pure pipeline, parse → validate → translate →
//! snapshot encode (`edgeplane::pipeline::build`), plus the proto3 JSON
//! rendering behind `edgeplane translate`.
//!
//! Input format: up to `MAX_FILES` files separated by NUL bytes (`\0`, which
//! YAML text cannot contain). The first byte of each file picks its path, so
//! Gloo's `<plural>/<namespace>/<name>.yaml` layout is exercised too:
//!
//! | byte % 6 | path (file number `i`)                      |
//! |----------|---------------------------------------------|
//! | 0        | `m<i>.yaml` (kind from the document)        |
//! | 1        | `cfg/gateways/<ns>/x<i>.yaml`               |
//! | 2        | `cfg/virtualservices/<ns>/x<i>.yaml`        |
//! | 3        | `cfg/routetables/<ns>/x<i>.yaml`            |
//! | 4        | `cfg/upstreams/<ns>/x<i>.yaml`              |
//! | 5        | `cfg/upstreamgroups/<ns>/x<i>.yaml`         |
//!
//! `<ns>` is `gloo-system` when `(byte / 6)` is even, else `default`; the
//! ASCII digits `0`..`5` thus pick `gloo-system`. The rest of the file is
//! its text (invalid UTF-8 replaced: the file reader rejects it before
//! parsing). Seeds are made by `fuzz/seed.sh`.
//!
//! Invariants checked beyond "no panic":
//! - `has_errors()` ⇔ no snapshot ⇔ no translation output;
//! - building twice from the same files gives equal diagnostics and an equal
//!   snapshot (bytes, hashes, versions);
//! - every diagnostic names one of the input files;
//! - no two resources of one type and proxy share a name (the snapshot is
//!   keyed by name, so a duplicate would be dropped silently);
//! - a successful build renders as JSON (`edgeplane translate`);
//! - diagnostics render without panicking.

#![no_main]

use std::path::PathBuf;

use edgeplane::pipeline::{self, Load};
use edgeplane::snapshot::ResourceType;
use edgeplane::source::SourceFile;
use libfuzzer_sys::fuzz_target;

const MAX_FILES: usize = 8;

const DIRS: [&str; 5] = [
    "gateways",
    "virtualservices",
    "routetables",
    "upstreams",
    "upstreamgroups",
];

fn path_for(i: usize, selector: u8) -> PathBuf {
    let ns = if (selector / 6) % 2 == 0 {
        "gloo-system"
    } else {
        "default"
    };
    match usize::from(selector % 6) {
        0 => PathBuf::from(format!("m{i}.yaml")),
        k => PathBuf::from(format!("cfg/{}/{ns}/x{i}.yaml", DIRS[k - 1])),
    }
}

fn files_of(data: &[u8]) -> Vec<SourceFile> {
    data.split(|&b| b == 0)
        .take(MAX_FILES)
        .enumerate()
        .filter_map(|(i, part)| {
            let (&selector, text) = part.split_first()?;
            Some(SourceFile {
                path: path_for(i, selector),
                text: String::from_utf8_lossy(text).into_owned(),
            })
        })
        .collect()
}

fn check(load: &Load, files: &[SourceFile]) {
    assert_eq!(
        load.has_errors(),
        load.snapshot.is_none(),
        "has_errors() must hold exactly when there is no snapshot:\n{}",
        load.render_diagnostics()
    );
    assert_eq!(load.output.is_some(), load.snapshot.is_some());
    for d in &load.diagnostics {
        assert!(
            files.iter().any(|f| *f.path == *d.pos.file),
            "diagnostic names a file that was not given: {d}"
        );
    }
    let _ = load.render_diagnostics();

    if let (Some(output), Some(snapshot)) = (&load.output, &load.snapshot) {
        assert_eq!(output.len(), snapshot.proxies.len());
        for (key, res) in output {
            let p = &snapshot.proxies[key];
            let count = |t| p.types.get(&t).map_or(0, |m| m.len());
            assert_eq!(
                count(ResourceType::Listener),
                res.listeners.len(),
                "{key}: two listeners share a name"
            );
            assert_eq!(
                count(ResourceType::Route),
                res.route_configs.len(),
                "{key}: two route configurations share a name"
            );
            assert_eq!(
                count(ResourceType::Cluster),
                res.clusters.len(),
                "{key}: two clusters share a name"
            );
        }
        let _ = snapshot.generation();
        if let Err(e) = edgeplane::translate::json::resources_json(output, None) {
            panic!("translation does not render as JSON: {e}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let files = files_of(data);

    let first = pipeline::build(files.clone(), Vec::new());
    check(&first, &files);

    let second = pipeline::build(files.clone(), Vec::new());
    assert_eq!(
        first.diagnostics, second.diagnostics,
        "diagnostics differ between two builds"
    );
    assert_eq!(
        first.snapshot, second.snapshot,
        "snapshot differs between two builds"
    );
});
