//! Fuzz target 1: manifest parsing alone.
//!
//! The input is the text of one manifest file (`m.yaml`), as a user would
//! write it. Invalid UTF-8 is replaced (`from_utf8_lossy`): the file reader
//! rejects it before parsing, so the parser only ever sees `&str`.
//!
//! Invariants checked beyond "no panic":
//! - every diagnostic names the input file;
//! - parsing is deterministic (same documents and diagnostics twice);
//! - every diagnostic renders (source line and caret) without panicking.

#![no_main]

use std::path::{Path, PathBuf};

use edgeplane::manifest::parse_files;
use edgeplane::source::SourceFile;
use libfuzzer_sys::fuzz_target;

const PATH: &str = "m.yaml";

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    let files = vec![SourceFile {
        path: PathBuf::from(PATH),
        text,
    }];

    let (docs, diags) = parse_files(&files);

    for d in &diags {
        assert_eq!(
            &*d.pos.file,
            Path::new(PATH),
            "diagnostic names a file that was not given: {d}"
        );
        let _ = d.render(Some(&files[0].text));
    }
    for doc in &docs {
        assert_eq!(
            &*doc.pos.file,
            Path::new(PATH),
            "document position: {:?}",
            doc.pos
        );
    }

    let (docs2, diags2) = parse_files(&files);
    assert_eq!(diags, diags2, "diagnostics differ between two parses");
    // `Document` has no `PartialEq`; its `Debug` text covers every field.
    assert_eq!(
        format!("{docs:?}"),
        format!("{docs2:?}"),
        "documents differ between two parses"
    );
});
