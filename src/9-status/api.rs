//! edgeplane's own gRPC API (`proto/edgeplane/v1/status.proto`), generated
//! by `build.rs`. The messages also serialize to JSON (camelCase, as
//! `/status` has always shown them), so one typed report backs the gRPC
//! API, `/status` and `edgeplane status --output json`.

tonic::include_proto!("edgeplane.v1");

/// `"error"` or `"warning"`, for a `Diagnostic.severity`.
pub fn severity_name(severity: i32) -> &'static str {
    if severity == diagnostic::Severity::Error as i32 {
        "error"
    } else {
        "warning"
    }
}

/// Serializes a `Diagnostic.severity` by name (`build.rs` points the
/// field's serde attribute here).
pub(crate) fn serialize_severity<S: serde::Serializer>(
    severity: &i32,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(severity_name(*severity))
}

impl From<&crate::diag::Diagnostic> for Diagnostic {
    fn from(d: &crate::diag::Diagnostic) -> Self {
        let (kind, namespace, name) = match &d.resource {
            Some(r) => (r.kind.clone(), r.namespace.clone(), r.name.clone()),
            None => Default::default(),
        };
        Diagnostic {
            severity: match d.severity {
                crate::diag::Severity::Error => diagnostic::Severity::Error as i32,
                crate::diag::Severity::Warning => diagnostic::Severity::Warning as i32,
            },
            file: d.pos.file.display().to_string(),
            line: d.pos.line,
            column: d.pos.column,
            kind,
            namespace,
            name,
            message: d.message.clone(),
            hint: d.hint.clone(),
        }
    }
}
