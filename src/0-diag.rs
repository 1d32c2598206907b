//! Diagnostics: every problem edgeplane finds in the user's manifests.
//!
//! A diagnostic always says where (file, line, column) and, once the document
//! is known, which resource (kind, namespace, name). Stages collect them
//! instead of stopping at the first, so one `validate` run shows everything.
//! Rendering is compiler-like: a header line, then the source line and a caret.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// How bad a problem is. Errors keep the last good config serving; warnings
/// are reported and the config still goes out (as in Gloo).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// A position in a manifest file. Lines and columns count from 1; 0 means
/// "unknown" (e.g. a file that could not be read at all). The file name is
/// shared: validation records a position for every route and matcher of a
/// document (tens of thousands in a big VirtualService), each a reference
/// count rather than a copy of the path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub file: Arc<Path>,
    pub line: u32,
    pub column: u32,
}

impl Default for Pos {
    fn default() -> Self {
        Pos::new(Path::new(""), 0, 0)
    }
}

impl Pos {
    pub fn new(file: &Path, line: usize, column: usize) -> Self {
        Pos::in_shared(&Arc::from(file), line, column)
    }

    /// A position in `file`, sharing its name.
    pub fn in_shared(file: &Arc<Path>, line: usize, column: usize) -> Self {
        Pos {
            file: Arc::clone(file),
            line: u32::try_from(line).unwrap_or(u32::MAX),
            column: u32::try_from(column).unwrap_or(u32::MAX),
        }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// The resource a diagnostic is about.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceId {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}.{}", self.kind, self.namespace, self.name)
    }
}

/// What kind of problem a diagnostic is, for the code that must tell
/// problems apart (never by message text). Most diagnostics need none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Code {
    /// The file (or directory) could not be read.
    Unreadable,
    /// The document is not YAML (a tab in the indentation, an unclosed
    /// quote): nothing in it could be read, not even which resource it is.
    Syntax,
    /// A resource defined a second time; the first definition wins.
    Duplicate,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diagnostic {
    pub pos: Pos,
    pub severity: Severity,
    pub resource: Option<ResourceId>,
    pub message: String,
    /// A short suggestion, when there is an obvious fix.
    pub hint: Option<String>,
    /// Last, so the derived order stays file, line, column, severity.
    pub code: Option<Code>,
}

impl Diagnostic {
    pub fn error(pos: Pos, resource: Option<ResourceId>, message: impl Into<String>) -> Self {
        Diagnostic {
            pos,
            severity: Severity::Error,
            resource,
            message: message.into(),
            hint: None,
            code: None,
        }
    }

    pub fn warning(pos: Pos, resource: Option<ResourceId>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(pos, resource, message)
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_code(mut self, code: Code) -> Self {
        self.code = Some(code);
        self
    }

    /// True for a problem of the whole file: it could not be read or is not
    /// YAML, so what it held is unknown (`pipeline::reconcile` keeps what it
    /// last provided).
    pub fn is_file_level(&self) -> bool {
        self.is_error() && self.resource.is_none()
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Renders the diagnostic with the offending source line and a caret, the
    /// way compilers do. `source` is the file's text, when available.
    /// Control characters (a manifest may hold terminal escape sequences)
    /// are shown escaped, never sent to the terminal.
    ///
    /// A line of a Secret, or of any file holding a private key, is never
    /// shown: it may be key material.
    pub fn render(&self, source: Option<&str>) -> String {
        let mut out = printable(&self.to_string());
        let sensitive = self.resource.as_ref().is_some_and(|r| r.kind == "Secret")
            || source.is_some_and(|s| s.contains("PRIVATE KEY"));
        let line = source.filter(|_| !sensitive).and_then(|s| {
            let idx = usize::try_from(self.pos.line).ok()?.checked_sub(1)?;
            s.lines().nth(idx)
        });
        if let Some(text) = line {
            let num = self.pos.line.to_string();
            let pad = " ".repeat(num.len());
            let col = usize::try_from(self.pos.column.max(1)).unwrap_or(1);
            let before: String = text.chars().take(col - 1).collect();
            let caret_pad: String = printable(&before)
                .chars()
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            let shown = printable(text);
            out.push_str(&format!("\n{pad} |\n{num} | {shown}\n{pad} | {caret_pad}^"));
        }
        if let Some(hint) = &self.hint {
            out.push_str(&format!("\n  = hint: {hint}"));
        }
        out
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: ", self.pos, self.severity)?;
        if let Some(r) = &self.resource {
            write!(f, "{r}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// `s` with control characters (other than tab) escaped.
pub fn printable(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_control() && c != '\t' {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// True when any diagnostic is an error.
pub fn has_errors(diags: &[Diagnostic]) -> bool {
    diags.iter().any(Diagnostic::is_error)
}
