//! The one direction of data, end to end: files → parse → validate →
//! translate → snapshot.
//!
//! `build` is the whole pure part (text in, snapshot out); `load_dir` adds
//! the read from disk. The CLI (`validate`, `translate`, `routes`) and the
//! tests use them, so what `validate` accepts is exactly what `serve` would
//! serve. `reconcile` is what `serve` runs instead: the same stages, with
//! the last accepted version of each rejected resource kept, and the parse
//! and encoding of what did not change carried over between loads.

pub mod apply;
pub mod reconcile;

use std::path::Path;

use crate::diag::{self, Diagnostic};
use crate::manifest;
use crate::model::Model;
use crate::snapshot::Snapshot;
use crate::source::{self, SourceFile};
use crate::translate::{self, Output};
use crate::validate;

/// The result of one load of the manifests.
pub struct Load {
    pub files: Vec<SourceFile>,
    /// Resource documents read (those with errors included).
    pub documents: usize,
    /// Errors and warnings, in file order.
    pub diagnostics: Vec<Diagnostic>,
    /// The validated model, when there was no error.
    pub model: Option<Model>,
    /// The translation of `model`.
    pub output: Option<Output>,
    /// The encoded snapshot, when there was no error.
    pub snapshot: Option<Snapshot>,
}

impl Load {
    pub fn has_errors(&self) -> bool {
        diag::has_errors(&self.diagnostics)
    }

    /// Every diagnostic rendered with its source line, one block each.
    pub fn render_diagnostics(&self) -> String {
        self.diagnostics
            .iter()
            .map(|d| {
                let src = self
                    .files
                    .iter()
                    .find(|f| *f.path == *d.pos.file)
                    .map(|f| f.text.as_str());
                d.render(src)
            })
            .collect::<Vec<_>>()
            .join("\n\n")
    }
}

/// Parses, validates and translates the given files. Pure.
pub fn build(files: Vec<SourceFile>, mut diagnostics: Vec<Diagnostic>) -> Load {
    let (docs, parse_diags) = manifest::parse_files(&files);
    let documents = docs.len();
    diagnostics.extend(parse_diags);
    let v = validate::validate(&docs);
    // The model owns what it needs: the parsed documents (most of a big
    // load's memory) go before translation builds its protos.
    drop(docs);
    diagnostics.extend(v.diagnostics);
    diagnostics.sort();
    diagnostics.dedup();
    if diag::has_errors(&diagnostics) {
        return Load {
            files,
            documents,
            diagnostics,
            model: None,
            output: None,
            snapshot: None,
        };
    }
    let output = translate::translate(&v.model);
    let snapshot = Snapshot::from_output(&output);
    Load {
        files,
        documents,
        diagnostics,
        model: Some(v.model),
        output: Some(output),
        snapshot: Some(snapshot),
    }
}

/// Reads the directory and builds.
pub fn load_dir(dir: &Path) -> Load {
    let (files, diags) = source::load_dir(dir);
    build(files, diags)
}
