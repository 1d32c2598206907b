//! The module graph is a DAG in the order `ARCHITECTURE.md` draws: each
//! module uses only the modules listed for it below (read from its
//! `crate::…` paths, test code aside). A new upward import, the kind that
//! made `admin ↔ api ↔ server` a circle, fails here with the line.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Module → its directory or file under `src/` → the modules it may use.
const ALLOWED: &[(&str, &str, &[&str])] = &[
    ("diag", "0-diag.rs", &[]),
    ("source", "1-source", &["diag"]),
    ("manifest", "2-manifest", &["diag", "source"]),
    ("validate", "3-validate", &["diag", "manifest", "model"]),
    ("model", "4-model.rs", &["diag"]),
    ("translate", "5-translate", &["model"]),
    ("snapshot", "6-snapshot.rs", &["translate"]),
    (
        "pipeline",
        "7-pipeline",
        &[
            "diag",
            "manifest",
            "model",
            "snapshot",
            "source",
            "translate",
            "validate",
        ],
    ),
    ("xds", "8-xds", &["snapshot"]),
    (
        "status",
        "9-status",
        &[
            "diag",
            "manifest",
            "model",
            "pipeline",
            "snapshot",
            "translate",
            "xds",
        ],
    ),
    (
        "serve",
        "serve",
        &[
            "diag",
            "manifest",
            "model",
            "pipeline",
            "snapshot",
            "source",
            "status",
            "translate",
            "xds",
        ],
    ),
];

const MODULES: &[&str] = &[
    "diag",
    "source",
    "manifest",
    "validate",
    "model",
    "translate",
    "snapshot",
    "pipeline",
    "xds",
    "status",
    "serve",
    "cli",
];

fn rust_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_file() {
        out.push(path.to_path_buf());
        return;
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn modules_use_only_the_modules_below_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut checked = 0;
    for (module, path, allowed) in ALLOWED {
        let mut files = Vec::new();
        rust_files(&src.join(path), &mut files);
        assert!(!files.is_empty(), "{path}");
        for file in files {
            // Unit tests may build whole pipelines; only the code counts.
            if file.file_name().is_some_and(|n| n == "tests.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&file).expect("read source");
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            let mut used = BTreeSet::new();
            for (n, line) in code.lines().enumerate() {
                let line = line.trim_start();
                if line.starts_with("//") {
                    continue;
                }
                for m in MODULES {
                    if line.contains(&format!("crate::{m}::"))
                        || line.contains(&format!("crate::{m};"))
                    {
                        used.insert(*m);
                        assert!(
                            *m == *module || allowed.contains(m),
                            "{}:{}: `{module}` uses `{m}`, which it may not: {line}",
                            file.display(),
                            n + 1
                        );
                    }
                }
            }
            checked += used.len();
        }
    }
    assert!(
        checked > 30,
        "only {checked} uses found: is the scan reading the sources?"
    );
}
