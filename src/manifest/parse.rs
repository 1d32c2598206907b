//! YAML text → typed documents, with a diagnostic for everything wrong.
//!
//! A file may hold several documents (`---`). Each document is parsed twice:
//! first loosely, for `apiVersion`, `kind` and `metadata` (so later errors can
//! name the resource), then strictly into the kind's spec type. Each document
//! is parsed on its own, padded with blank lines to its place in the file, so
//! every line number the YAML parser reports is already the file's line.

use std::path::Path;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_saphyr::Spanned;

use super::DEFAULT_NAMESPACE;
use super::model::{Envelope, GatewaySpec, UpstreamSpec, VirtualServiceSpec};
use crate::diag::{Diagnostic, Pos, ResourceId};
use crate::source::SourceFile;

pub const GATEWAY_API: &str = "gateway.solo.io/v1";
pub const GLOO_API: &str = "gloo.solo.io/v1";

/// One parsed resource and where it came from.
#[derive(Debug)]
pub struct Document {
    pub id: ResourceId,
    /// Where the document's `kind:` is written.
    pub pos: Pos,
    pub labels: std::collections::BTreeMap<String, String>,
    pub body: DocumentBody,
}

#[derive(Debug)]
pub enum DocumentBody {
    Gateway(Box<GatewaySpec>),
    VirtualService(VirtualServiceSpec),
    Upstream(UpstreamSpec),
}

/// Loose first pass: enough to know what the document is.
#[derive(Deserialize)]
struct Header {
    #[serde(rename = "apiVersion", default)]
    api_version: Option<String>,
    #[serde(default)]
    kind: Option<Spanned<String>>,
    #[serde(default)]
    metadata: Option<HeaderMeta>,
}

#[derive(Deserialize)]
struct HeaderMeta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
}

/// Parses every document of every file. Documents with errors are left out;
/// the returned diagnostics say why.
pub fn parse_files(files: &[SourceFile]) -> (Vec<Document>, Vec<Diagnostic>) {
    let mut docs = Vec::new();
    let mut diags = Vec::new();
    for f in files {
        for (start_line, text) in split_documents(&f.text) {
            if is_blank_document(&text) {
                continue;
            }
            // Pad so the parser's line numbers are the file's.
            let padded = format!("{}{}", "\n".repeat(start_line), text);
            if let Some(doc) = parse_document(&f.path, start_line + 1, &padded, &mut diags) {
                docs.push(doc);
            }
        }
    }
    check_duplicates(&docs, &mut diags);
    (docs, diags)
}

/// Splits a YAML stream at document markers (`---` at column 0). Returns each
/// document's text and the 0-based line it starts on.
fn split_documents(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut cur = String::new();
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end_matches(['\n', '\r']);
        let is_marker = bare == "---"
            || bare.starts_with("--- ")
            || bare.starts_with("---\t")
            || bare == "..."
            || bare.starts_with("... ");
        if is_marker && !cur.is_empty() {
            out.push((start, std::mem::take(&mut cur)));
            start = i;
        } else if is_marker {
            start = i;
        }
        if bare == "..." || bare.starts_with("... ") {
            // End marker: belongs to no document.
            start = i + 1;
            continue;
        }
        cur.push_str(line);
    }
    if !cur.is_empty() {
        out.push((start, cur));
    }
    out
}

fn is_blank_document(text: &str) -> bool {
    text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "---"
    })
}

fn yaml_pos(file: &Path, err: &serde_saphyr::Error, fallback_line: usize) -> Pos {
    match err.location() {
        Some(loc) if loc.line() > 0 => Pos::new(file, loc.line() as usize, loc.column() as usize),
        _ => Pos::new(file, fallback_line, 1),
    }
}

fn yaml_message(err: &serde_saphyr::Error) -> String {
    // The error's own text may carry a rendered snippet and a location; we
    // print both ourselves, so keep only the first line of the message.
    let text = err.without_snippet().to_string();
    let first = text.lines().next().unwrap_or("invalid YAML").trim();
    strip_location_suffix(first).to_string()
}

fn strip_location_suffix(s: &str) -> &str {
    match s.rfind(" at line ") {
        Some(i) => &s[..i],
        None => s,
    }
}

fn parse_document(
    file: &Path,
    first_line: usize,
    padded: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<Document> {
    let header: Header = match serde_saphyr::from_str(padded) {
        Ok(h) => h,
        Err(e) => {
            diags.push(Diagnostic::error(
                yaml_pos(file, &e, first_line),
                None,
                yaml_message(&e),
            ));
            return None;
        }
    };
    let Some(kind) = header.kind else {
        diags.push(
            Diagnostic::error(
                Pos::new(file, first_line, 1),
                None,
                "document has no `kind`",
            )
            .with_hint("every manifest needs apiVersion, kind, metadata and spec"),
        );
        return None;
    };
    let kind_pos = Pos::new(
        file,
        kind.referenced.line() as usize,
        kind.referenced.column() as usize,
    );
    let meta = header.metadata.unwrap_or(HeaderMeta {
        name: None,
        namespace: None,
    });
    let id = ResourceId {
        kind: kind.value.clone(),
        namespace: meta
            .namespace
            .clone()
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string()),
        name: meta.name.clone().unwrap_or_default(),
    };
    let api = header.api_version.unwrap_or_default();
    let expected_api = match kind.value.as_str() {
        "Gateway" | "VirtualService" => GATEWAY_API,
        "Upstream" => GLOO_API,
        "RouteTable"
        | "UpstreamGroup"
        | "MatchableHttpGateway"
        | "RouteOption"
        | "VirtualHostOption"
        | "Settings"
        | "Proxy"
        | "AuthConfig"
        | "RateLimitConfig" => {
            diags.push(Diagnostic::error(
                kind_pos,
                Some(id),
                format!("kind {} is not implemented by edgeplane yet", kind.value),
            ));
            return None;
        }
        other => {
            diags.push(
                Diagnostic::error(kind_pos, Some(id), format!("unknown kind `{other}`"))
                    .with_hint("edgeplane reads Gateway and VirtualService (gateway.solo.io/v1) and Upstream (gloo.solo.io/v1)"),
            );
            return None;
        }
    };
    if api != expected_api {
        diags.push(Diagnostic::error(
            kind_pos,
            Some(id),
            format!(
                "apiVersion `{api}` does not serve kind {}; expected `{expected_api}`",
                kind.value
            ),
        ));
        return None;
    }
    if meta.name.as_deref().unwrap_or("").is_empty() {
        diags.push(Diagnostic::error(
            kind_pos,
            Some(id),
            "metadata.name is required",
        ));
        return None;
    }
    let labels;
    let body = match kind.value.as_str() {
        "Gateway" => {
            let env: Envelope<GatewaySpec> = strict(file, padded, &id, first_line, diags)?;
            labels = env.metadata.labels;
            DocumentBody::Gateway(Box::new(env.spec))
        }
        "VirtualService" => {
            let env: Envelope<VirtualServiceSpec> = strict(file, padded, &id, first_line, diags)?;
            labels = env.metadata.labels;
            DocumentBody::VirtualService(env.spec)
        }
        _ => {
            let env: Envelope<UpstreamSpec> = strict(file, padded, &id, first_line, diags)?;
            labels = env.metadata.labels;
            DocumentBody::Upstream(env.spec)
        }
    };
    Some(Document {
        id,
        pos: kind_pos,
        labels,
        body,
    })
}

fn strict<T: DeserializeOwned>(
    file: &Path,
    padded: &str,
    id: &ResourceId,
    first_line: usize,
    diags: &mut Vec<Diagnostic>,
) -> Option<T> {
    match serde_saphyr::from_str::<T>(padded) {
        Ok(v) => Some(v),
        Err(e) => {
            let msg = yaml_message(&e);
            let mut d = Diagnostic::error(yaml_pos(file, &e, first_line), Some(id.clone()), msg);
            if d.message.contains("unknown field") {
                d = d.with_hint("edgeplane rejects fields it does not implement rather than ignore them; check the spelling against Gloo's API");
            }
            diags.push(d);
            None
        }
    }
}

fn check_duplicates(docs: &[Document], diags: &mut Vec<Diagnostic>) {
    let mut seen: std::collections::BTreeMap<&ResourceId, &Pos> = Default::default();
    for d in docs {
        if let Some(first) = seen.get(&d.id) {
            diags.push(Diagnostic::error(
                d.pos.clone(),
                Some(d.id.clone()),
                format!("duplicate resource: already defined at {first}"),
            ));
        } else {
            seen.insert(&d.id, &d.pos);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn file(text: &str) -> Vec<SourceFile> {
        vec![SourceFile {
            path: PathBuf::from("m.yaml"),
            text: text.to_string(),
        }]
    }

    #[test]
    fn splits_documents_with_their_lines() {
        let docs = split_documents("a: 1\n---\nb: 2\n--- \nc: 3\n...\n");
        let starts: Vec<usize> = docs.iter().map(|d| d.0).collect();
        assert_eq!(starts, vec![0, 1, 3]);
    }

    #[test]
    fn multi_document_file_parses_each_kind() {
        let (docs, diags) = parse_files(&file(
            "apiVersion: gloo.solo.io/v1\nkind: Upstream\nmetadata: {name: a}\nspec: {static: {hosts: [{addr: 127.0.0.1, port: 80}]}}\n---\n# comment only\n---\napiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata: {name: v, namespace: web}\nspec: {virtualHost: {domains: ['*']}}\n",
        ));
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].id.namespace, "gloo-system");
        assert_eq!(docs[1].id.namespace, "web");
        assert_eq!(docs[1].pos.line, 9);
    }

    #[test]
    fn unknown_field_is_an_error_with_line_and_resource() {
        let (docs, diags) = parse_files(&file(
            "apiVersion: gloo.solo.io/v1\nkind: Upstream\nmetadata: {name: a}\nspec: {static: {hosts: []}}\n---\napiVersion: gateway.solo.io/v1\nkind: Gateway\nmetadata:\n  name: gw\nspec:\n  bindPort: 8080\n  bindAdress: '::'\n",
        ));
        assert_eq!(docs.len(), 1);
        assert_eq!(diags.len(), 1, "{diags:?}");
        let d = &diags[0];
        assert!(d.message.contains("bindAdress"), "{}", d.message);
        assert_eq!(d.pos.line, 12);
        assert_eq!(d.resource.as_ref().map(|r| r.name.as_str()), Some("gw"));
    }

    #[test]
    fn syntax_error_names_file_and_line() {
        let (_, diags) = parse_files(&file("kind: Upstream\nmetadata: {name: a\nspec: x\n"));
        assert_eq!(diags.len(), 1);
        assert!(diags[0].pos.line >= 2, "{:?}", diags[0]);
        assert_eq!(diags[0].pos.file, PathBuf::from("m.yaml"));
    }

    #[test]
    fn duplicate_names_are_reported() {
        let up = "apiVersion: gloo.solo.io/v1\nkind: Upstream\nmetadata: {name: a}\nspec: {}\n";
        let (_, diags) = parse_files(&file(&format!("{up}---\n{up}")));
        assert_eq!(diags.len(), 1);
        assert!(diags[0].message.contains("duplicate resource"));
        assert_eq!(diags[0].pos.line, 7);
    }

    #[test]
    fn unknown_kind_and_wrong_api() {
        let (_, diags) = parse_files(&file(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: gateway.solo.io/v1\nkind: Upstream\nmetadata: {name: b}\nspec: {}\n",
        ));
        assert_eq!(diags.len(), 2);
        assert!(diags[0].message.contains("unknown kind"));
        assert!(diags[1].message.contains("expected `gloo.solo.io/v1`"));
    }
}
