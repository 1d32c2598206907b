//! Reads every manifest file below the config directory, in a stable order.
//!
//! Stable order matters: it makes diagnostics and translation deterministic.
//! Hidden files and directories (editor swap files, `.git`) and anything that
//! is not `*.yaml`/`*.yml` are ignored. Links are followed only when they
//! stay inside the directory, so a manifests tree cannot pull in files from
//! elsewhere; linked directories are never entered (no loops).

use std::path::{Path, PathBuf};

use crate::diag::{Diagnostic, Pos};

/// Files larger than this are refused rather than parsed.
pub const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;
/// Directories nested deeper than this are not entered.
const MAX_DEPTH: usize = 32;

/// One manifest file as read from disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFile {
    /// The path as the user would open it: the config dir joined with the
    /// file's relative path.
    pub path: PathBuf,
    pub text: String,
}

/// True for names that edgeplane reads: `*.yaml`/`*.yml`, not hidden, not an
/// editor's temporary file.
pub fn is_manifest_name(name: &str) -> bool {
    if name.starts_with('.') || name.starts_with('#') || name.ends_with('~') {
        return false;
    }
    name.ends_with(".yaml") || name.ends_with(".yml")
}

/// Lists and reads all manifests under `root`. Problems with single files
/// are diagnostics; they never stop the others from being read.
pub fn load_dir(root: &Path) -> (Vec<SourceFile>, Vec<Diagnostic>) {
    let mut files = Vec::new();
    let mut diags = Vec::new();
    let canon_root = match std::fs::canonicalize(root) {
        Ok(p) => p,
        Err(e) => {
            diags.push(Diagnostic::error(
                Pos::new(root, 0, 0),
                None,
                format!("cannot read the config directory: {e}"),
            ));
            return (files, diags);
        }
    };
    walk(root, &canon_root, 0, &mut files, &mut diags);
    files.sort_by(|a, b| a.path.cmp(&b.path));
    (files, diags)
}

fn walk(
    dir: &Path,
    canon_root: &Path,
    depth: usize,
    files: &mut Vec<SourceFile>,
    diags: &mut Vec<Diagnostic>,
) {
    if depth > MAX_DEPTH {
        diags.push(Diagnostic::warning(
            Pos::new(dir, 0, 0),
            None,
            format!("directory nested deeper than {MAX_DEPTH} levels is not read"),
        ));
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            // A directory removed while we walk is an ordinary race.
            if e.kind() != std::io::ErrorKind::NotFound {
                diags.push(Diagnostic::error(
                    Pos::new(dir, 0, 0),
                    None,
                    format!("cannot list directory: {e}"),
                ));
            }
            return;
        }
    };
    let mut names: Vec<(String, PathBuf)> = entries
        .filter_map(Result::ok)
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .filter(|(name, _)| !name.starts_with('.'))
        .collect();
    names.sort();
    for (name, path) in names {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            walk(&path, canon_root, depth + 1, files, diags);
            continue;
        }
        if !is_manifest_name(&name) {
            continue;
        }
        if meta.file_type().is_symlink() {
            match std::fs::canonicalize(&path) {
                Ok(target) if target.starts_with(canon_root) && target.is_file() => {}
                Ok(_) => {
                    diags.push(Diagnostic::warning(
                        Pos::new(&path, 0, 0),
                        None,
                        "link points outside the config directory (or not to a file); not read",
                    ));
                    continue;
                }
                // Dangling link: nothing to read.
                Err(_) => continue,
            }
        }
        if let Some(f) = read_one(&path, diags) {
            files.push(f);
        }
    }
}

fn read_one(path: &Path, diags: &mut Vec<Diagnostic>) -> Option<SourceFile> {
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if size > MAX_FILE_BYTES {
        diags.push(Diagnostic::error(
            Pos::new(path, 0, 0),
            None,
            format!(
                "file is {size} bytes; manifests larger than {MAX_FILE_BYTES} bytes are not read"
            ),
        ));
        return None;
    }
    match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => Some(SourceFile {
                path: path.to_path_buf(),
                text,
            }),
            Err(e) => {
                let (line, column) = line_col_of_byte(e.as_bytes(), e.utf8_error().valid_up_to());
                diags.push(Diagnostic::error(
                    Pos::new(path, line, column),
                    None,
                    "file is not valid UTF-8 text",
                ));
                None
            }
        },
        // Deleted between listing and reading: the next event re-reads.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            diags.push(Diagnostic::error(
                Pos::new(path, 0, 0),
                None,
                format!("cannot read file: {e}"),
            ));
            None
        }
    }
}

fn line_col_of_byte(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = &bytes[..offset.min(bytes.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let col = before.iter().rev().take_while(|b| **b != b'\n').count() + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_and_ignored() {
        assert!(is_manifest_name("vs.yaml"));
        assert!(is_manifest_name("vs.yml"));
        assert!(!is_manifest_name(".vs.yaml.swp"));
        assert!(!is_manifest_name(".#vs.yaml"));
        assert!(!is_manifest_name("vs.yaml~"));
        assert!(!is_manifest_name("#vs.yaml#"));
        assert!(!is_manifest_name("notes.txt"));
    }

    #[test]
    fn reads_sorted_recursive_and_reports_bad_utf8() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir_all(dir.path().join("b/c"))?;
        std::fs::write(dir.path().join("b/c/z.yaml"), "z: 1\n")?;
        std::fs::write(dir.path().join("a.yml"), "a: 1\n")?;
        std::fs::write(dir.path().join(".hidden.yaml"), "h: 1\n")?;
        std::fs::write(dir.path().join("bad.yaml"), b"ok: 1\nx: \xff\n")?;
        let (files, diags) = load_dir(dir.path());
        let names: Vec<_> = files
            .iter()
            .map(|f| f.path.strip_prefix(dir.path()).map(Path::to_path_buf))
            .collect::<Result<_, _>>()?;
        assert_eq!(
            names,
            vec![PathBuf::from("a.yml"), PathBuf::from("b/c/z.yaml")]
        );
        assert_eq!(diags.len(), 1);
        assert_eq!((diags[0].pos.line, diags[0].pos.column), (2, 4));
        Ok(())
    }
}
