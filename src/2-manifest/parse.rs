//! YAML text → typed documents, with a diagnostic for everything wrong.
//!
//! A file may hold several documents (`---`). A whole manifest with `kind`
//! before `spec` is parsed once (`single_pass`). Any other document, and
//! every document with an error, is parsed twice: first loosely, for
//! `apiVersion`, `kind` and `metadata` (so later errors can name the
//! resource), then strictly into the kind's spec type. Each document
//! is parsed on its own, and its line offset in the file is added to every
//! position the YAML parser reports (parsing each document against the
//! whole file's line count would cost documents × lines).

use std::path::Path;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_saphyr::Spanned;

use super::DEFAULT_NAMESPACE;
use super::kind::{Kind, UNIMPLEMENTED_KINDS};
use super::raw::{
    Envelope, FlatFields, GatewaySpec, Route, RouteOptionSpec, RouteTableSpec, SecretSpec,
    UpstreamGroupSpec, UpstreamSpec, VirtualHostOptionSpec, VirtualServiceSpec,
};
use super::route_cut;
use crate::diag::{Code, Diagnostic, Pos, ResourceId};
use crate::source::SourceFile;

/// One parsed resource and where it came from.
#[derive(Clone, Debug)]
pub struct Document {
    pub id: ResourceId,
    /// Where the document's `kind:` is written.
    pub pos: Pos,
    /// Lines before the document in its file: add to positions of values
    /// inside it (`Spanned` locations are document-relative).
    pub line_offset: usize,
    pub labels: std::collections::BTreeMap<String, String>,
    pub body: DocumentBody,
}

#[derive(Clone, Debug)]
pub enum DocumentBody {
    Gateway(Box<GatewaySpec>),
    VirtualService(VirtualServiceSpec),
    RouteTable(RouteTableSpec),
    Upstream(Box<UpstreamSpec>),
    UpstreamGroup(UpstreamGroupSpec),
    VirtualHostOption(Box<VirtualHostOptionSpec>),
    RouteOption(Box<RouteOptionSpec>),
    /// Holds key material: never print it whole (`TlsSecret`'s `Debug`
    /// redacts the key).
    Secret(Box<SecretSpec>),
}

impl DocumentBody {
    /// A VirtualService's or RouteTable's routes (`None`: another kind, or
    /// a VirtualService without `virtualHost`).
    pub(crate) fn routes(&self) -> Option<&Vec<Spanned<Route>>> {
        match self {
            DocumentBody::VirtualService(s) => Some(&s.virtual_host.as_ref()?.routes),
            DocumentBody::RouteTable(s) => Some(&s.routes),
            _ => None,
        }
    }

    fn routes_mut(&mut self) -> Option<&mut Vec<Spanned<Route>>> {
        match self {
            DocumentBody::VirtualService(s) => Some(&mut s.virtual_host.as_mut()?.routes),
            DocumentBody::RouteTable(s) => Some(&mut s.routes),
            _ => None,
        }
    }
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

#[derive(Default, Deserialize)]
struct HeaderMeta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    labels: std::collections::BTreeMap<String, String>,
}

/// Parses every document of every file. Documents with errors are left out;
/// the returned diagnostics say why.
pub fn parse_files(files: &[SourceFile]) -> (Vec<Document>, Vec<Diagnostic>) {
    let mut docs = Vec::new();
    let mut diags = Vec::new();
    for f in files {
        let (d, g, _) = parse_file(f, None);
        docs.extend(d);
        diags.extend(g);
    }
    diags.extend(duplicates(&docs));
    (docs, diags)
}

/// Where the text of a route parsed on its own (`route_cut`) sits in its
/// file: route `route` of document `doc`, bytes `range`. `ParseCache`
/// finds a file's unchanged routes through these.
#[derive(Clone, Debug)]
pub(crate) struct RouteText {
    pub doc: usize,
    pub route: usize,
    pub range: std::ops::Range<usize>,
}

/// A route parsed before, found by its exact text (positions relative to
/// that text, as `route_cut::parse_item` gives them).
pub(crate) type Prior<'a> = &'a dyn Fn(&str) -> Option<Spanned<Route>>;

/// One file's documents and diagnostics (duplicates not checked), and
/// where its routes parsed one by one are; `prior` supplies routes whose
/// text was parsed before.
pub(crate) fn parse_file(
    f: &SourceFile,
    prior: Option<Prior<'_>>,
) -> (Vec<Document>, Vec<Diagnostic>, Vec<RouteText>) {
    let mut docs = Vec::new();
    let mut diags = Vec::new();
    let mut texts = Vec::new();
    for (start_line, range) in document_ranges(&f.text) {
        let text = &f.text[range.clone()];
        if is_blank_document(text) {
            continue;
        }
        // Each document is parsed on its own; its line offset in the
        // file is added to every position reported.
        if let Some((doc, items)) = parse_cut(&f.path, start_line + 1, text, prior) {
            texts.extend(items.iter().enumerate().map(|(route, it)| RouteText {
                doc: docs.len(),
                route,
                range: range.start + it.start..range.start + it.start + it.text.len(),
            }));
            docs.push(doc);
        } else if let Some(doc) = parse_document(&f.path, start_line + 1, text, &mut diags) {
            docs.push(doc);
        }
    }
    (docs, diags, texts)
}

/// A document whose routes `route_cut` could cut, parsed route by route;
/// `None` (parse it whole) when it has no such routes or anything about
/// the cut does not parse cleanly.
fn parse_cut<'t>(
    file: &Path,
    first_line: usize,
    text: &'t str,
    prior: Option<Prior<'_>>,
) -> Option<(Document, Vec<route_cut::Item<'t>>)> {
    let cut = route_cut::cut(text)?;
    // The items are one run of the document's text: one search.
    let items_text = match (cut.items.first(), cut.items.last()) {
        (Some(a), Some(z)) => text.get(a.start..z.start + z.text.len()).unwrap_or(text),
        _ => "",
    };
    if has_nbsp(items_text) {
        // The whole-document parse points at a misplaced one.
        return None;
    }
    let mut scratch = Vec::new();
    let mut doc = parse_document(file, first_line, &cut.skeleton, &mut scratch)?;
    if !scratch.is_empty() {
        return None;
    }
    let routes = doc.body.routes_mut()?;
    if !route_cut::is_sentinel(routes) {
        return None;
    }
    // Each item's route: the prior parse's where its text is unchanged,
    // else parsed now, in place; then the options unwrapped in place too
    // (`Option<Spanned<Route>>` has `Spanned<Route>`'s size, so the collect
    // reuses the allocation): one vector of routes at any time.
    let mut found: Vec<Option<Spanned<Route>>> = cut
        .items
        .iter()
        .map(|it| prior.and_then(|p| p(it.text)))
        .collect();
    let texts: Vec<&str> = cut.items.iter().map(|it| it.text).collect();
    if !route_cut::parse_items(&texts, &mut found) {
        return None;
    }
    *routes = found
        .into_iter()
        .zip(&cut.items)
        .map(|(r, it)| {
            r.map(|mut r| {
                r.value.line_shift = it.line;
                r
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some((doc, cut.items))
}

/// Splits a YAML stream at document markers (`---` at column 0). Returns each
/// document's text and the 0-based line it starts on.
pub fn split_documents(text: &str) -> Vec<(usize, String)> {
    document_ranges(text)
        .into_iter()
        .map(|(line, r)| (line, text[r].to_string()))
        .collect()
}

/// `split_documents` as byte ranges of `text` (each document is a run of
/// whole lines).
fn document_ranges(text: &str) -> Vec<(usize, std::ops::Range<usize>)> {
    let bytes = text.as_bytes();
    // Only a line starting with `---` or `...` can be a marker: those are
    // found with two substring searches, and lines are counted between
    // them (a big VirtualService is tens of thousands of lines and usually
    // one document).
    let mut candidates: Vec<usize> = memchr::memmem::find_iter(bytes, b"\n---")
        .chain(memchr::memmem::find_iter(bytes, b"\n..."))
        .map(|nl| nl + 1)
        .collect();
    if bytes.starts_with(b"---") || bytes.starts_with(b"...") {
        candidates.push(0);
    }
    candidates.sort_unstable();
    let mut out = Vec::new();
    let mut start = 0;
    let mut from = 0;
    let (mut line, mut counted) = (0, 0);
    for line_start in candidates {
        line += memchr::memchr_iter(b'\n', &bytes[counted..line_start]).count();
        counted = line_start;
        let next =
            memchr::memchr(b'\n', &bytes[line_start..]).map_or(bytes.len(), |k| line_start + k + 1);
        let bare = text[line_start..next].trim_end_matches(['\n', '\r']);
        let is_end = bare == "..." || bare.starts_with("... ");
        let is_marker =
            bare == "---" || bare.starts_with("--- ") || bare.starts_with("---\t") || is_end;
        if is_marker && line_start > from {
            out.push((start, from..line_start));
            start = line;
            from = line_start;
        } else if is_marker {
            start = line;
        }
        if is_end {
            // End marker: belongs to no document.
            start = line + 1;
            from = next;
        }
    }
    if bytes.len() > from {
        out.push((start, from..bytes.len()));
    }
    out
}

pub fn is_blank_document(text: &str) -> bool {
    text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "---"
    })
}

/// The file position of a parser error in a document starting at
/// `first_line` (1-based).
fn yaml_pos(file: &Path, err: &serde_saphyr::Error, first_line: usize) -> Pos {
    match err.location() {
        Some(loc) if loc.line() > 0 => Pos::new(
            file,
            loc.line() as usize + first_line - 1,
            loc.column() as usize,
        ),
        _ => Pos::new(file, first_line, 1),
    }
}

fn yaml_message(err: &serde_saphyr::Error) -> String {
    // The error's own text may carry a rendered snippet and a location; we
    // print both ourselves, so keep only the first line of the message.
    let text = err.without_snippet().to_string();
    let first = text.lines().next().unwrap_or("invalid YAML").trim();
    strip_location_suffix(first).to_string()
}

/// A hint for the parser's resource limits (nesting depth, alias expansion).
fn limit_hint(msg: &str) -> Option<&'static str> {
    (msg.starts_with("budget breached") || msg.starts_with("recursion limit exceeded")).then_some(
        "the document nests too deeply or expands (through aliases) to too many nodes; edgeplane refuses it rather than spend unbounded time and memory",
    )
}

fn strip_location_suffix(s: &str) -> &str {
    // A value reached through an alias also says where the anchor was
    // defined and used: `… at line 1, column 3 (defined at line 5, …) (used …)`.
    let s = s.find(" (defined at line ").map_or(s, |i| &s[..i]);
    match s.rfind(" at line ") {
        Some(i) => &s[..i],
        None => s,
    }
}

const NBSP: char = '\u{a0}';

/// Whether `text` holds a no-break space anywhere (one vectorized search:
/// a big VirtualService is a megabyte of text).
fn has_nbsp(text: &str) -> bool {
    memchr::memmem::find(text.as_bytes(), "\u{a0}".as_bytes()).is_some()
}

/// A no-break space (U+00A0, common in text pasted from web pages and
/// chat) where YAML needs a plain space: in a line's indentation, or right
/// after a `:` or `-` indicator. YAML reads it as part of a key or value,
/// and the parser's own complaint then points somewhere else entirely.
/// Block scalar content (`|`, `>`) may hold one legitimately and is skipped.
/// Returns the 1-based line and column within `text`.
fn misplaced_nbsp(text: &str) -> Option<(usize, usize)> {
    if !has_nbsp(text) {
        return None;
    }
    // Indentation of the line that opened a block scalar, while inside it.
    let mut block: Option<usize> = None;
    for (i, line) in text.lines().enumerate() {
        let indent = line.len() - line.trim_start_matches(' ').len();
        let rest = line.trim_start_matches(' ');
        if let Some(open) = block {
            if rest.is_empty() || indent > open {
                continue;
            }
            block = None;
        }
        if rest.starts_with('#') {
            continue;
        }
        let mut prev: Option<char> = None;
        let mut leading = true;
        for (col, c) in line.chars().enumerate() {
            if c == NBSP && (leading || matches!(prev, Some(':' | '-'))) {
                return Some((i + 1, col + 1));
            }
            if !matches!(c, ' ' | '\t' | NBSP) {
                leading = false;
            }
            prev = Some(c);
        }
        let body = rest.split(" #").next().unwrap_or(rest).trim_end();
        let opens_block = body
            .trim_end_matches(|c: char| c == '+' || c == '-' || c.is_ascii_digit())
            .ends_with(['|', '>']);
        if opens_block {
            block = Some(indent);
        }
    }
    None
}

/// The column of the first tab on 1-based `line` of `text`: the parser
/// reports a tab in indentation one column past it.
fn tab_column(text: &str, line: usize) -> Option<usize> {
    let l = text.lines().nth(line.checked_sub(1)?)?;
    l.chars().position(|c| c == '\t').map(|c| c + 1)
}

fn parse_document(
    file: &Path,
    first_line: usize,
    doc_text: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<Document> {
    if let Some((line, column)) = misplaced_nbsp(doc_text) {
        diags.push(
            Diagnostic::error(
                Pos::new(file, line + first_line - 1, column),
                None,
                "a no-break space (U+00A0) where YAML needs a plain space",
            )
            .with_code(Code::Syntax)
            .with_hint("text pasted from a web page or chat often carries these; retype the spaces of this line"),
        );
        return None;
    }
    // The common case in one pass; anything else (and every error) takes
    // the two passes below.
    let mut one_pass = super::single_pass::parse(doc_text);
    let parsed_header = match &one_pass {
        Some(p) => Ok(Header {
            api_version: Some(p.api_version.clone()),
            kind: Some(p.kind.clone()),
            metadata: Some(HeaderMeta {
                name: Some(p.metadata.name.clone()),
                namespace: p.metadata.namespace.clone(),
                labels: p.metadata.labels.clone(),
            }),
        }),
        None => serde_saphyr::from_str(doc_text),
    };
    let header: Header = match parsed_header {
        Ok(h) => h,
        Err(e) => {
            let msg = yaml_message(&e);
            let mut pos = yaml_pos(file, &e, first_line);
            let tab = msg.contains("tabs disallowed");
            if tab
                && let Some(c) =
                    tab_column(doc_text, (pos.line as usize + 1).saturating_sub(first_line))
            {
                pos.column = u32::try_from(c).unwrap_or(pos.column);
            }
            let mut d = Diagnostic::error(pos, None, msg).with_code(Code::Syntax);
            if tab {
                d = d.with_hint("YAML indents with spaces only; replace the tab with spaces");
            }
            if let Some(h) = limit_hint(&d.message) {
                d = d.with_hint(h);
            }
            diags.push(d);
            return None;
        }
    };
    // An etcd key names kind, namespace and name; a Gloo directory path
    // kind and namespace.
    let key = Kind::of_key_path(file);
    let flat = match &key {
        Some((k, ns, _)) => Some((*k, ns.clone())),
        None => Kind::of_flat_path(file),
    };
    let (kind, kind_pos, flat_mode) = match (&header.kind, &flat) {
        (Some(k), _) => (
            k.value.clone(),
            Pos::new(
                file,
                k.referenced.line() as usize + first_line - 1,
                k.referenced.column() as usize,
            ),
            false,
        ),
        (None, Some((k, _))) => (k.as_str().to_string(), Pos::new(file, first_line, 1), true),
        (None, None) => {
            diags.push(
                Diagnostic::error(Pos::new(file, first_line, 1), None, "document has no `kind`")
                    .with_hint("every manifest needs apiVersion, kind, metadata and spec (or use Gloo's <plural>/<namespace>/<name>.yaml layout)"),
            );
            return None;
        }
    };
    let meta = header.metadata.unwrap_or_default();
    let default_ns = match &flat {
        Some((_, ns)) if flat_mode => ns.clone(),
        _ => DEFAULT_NAMESPACE.to_string(),
    };
    let default_ns = match &key {
        Some((_, ns, _)) => ns.clone(),
        None => default_ns,
    };
    let default_name = key.as_ref().map(|(_, _, n)| n.clone()).unwrap_or_default();
    let id = ResourceId {
        kind: kind.clone(),
        namespace: meta.namespace.clone().unwrap_or(default_ns),
        name: meta.name.clone().unwrap_or(default_name),
    };
    if let Some((kk, kns, kname)) = &key {
        // The key is the resource's identity: a document saying otherwise
        // is refused, never silently renamed.
        let mut mismatch = |what: &str, found: &str, want: &str| {
            diags.push(
                Diagnostic::error(
                    kind_pos.clone(),
                    Some(id.clone()),
                    format!("{what} `{found}` does not match the key's `{want}`"),
                )
                .with_hint("the key is <prefix>/<group>/<version>/<Kind>/<namespace>/<name>; write the document under the key its kind, namespace and name give"),
            );
        };
        if kind != kk.as_str() {
            mismatch("kind", &kind, kk.as_str());
        }
        if id.namespace != *kns {
            mismatch("metadata.namespace", &id.namespace, kns);
        }
        if id.name != *kname {
            mismatch("metadata.name", &id.name, kname);
        }
        if kind != kk.as_str() || id.namespace != *kns || id.name != *kname {
            return None;
        }
    }
    let Ok(known) = kind.parse::<Kind>() else {
        let msg = if UNIMPLEMENTED_KINDS.contains(&kind.as_str()) {
            format!("kind {kind} is not implemented by edgeplane yet")
        } else {
            format!("unknown kind `{kind}`")
        };
        diags.push(Diagnostic::error(kind_pos, Some(id), msg).with_hint(
            "edgeplane reads Gateway, VirtualService, RouteTable, VirtualHostOption, RouteOption (gateway.solo.io/v1), Upstream, UpstreamGroup and Secret (gloo.solo.io/v1)",
        ));
        return None;
    };
    let expected_api = known.api_version();
    let api = header.api_version.unwrap_or_default();
    if !flat_mode && api != expected_api {
        let mut d = Diagnostic::error(
            kind_pos,
            Some(id),
            format!("apiVersion `{api}` does not serve kind {kind}; expected `{expected_api}`"),
        );
        if known == Kind::Secret {
            d = d.with_hint("edgeplane reads Gloo's Secret (as Gloo's file mode stores it), not a Kubernetes one: `apiVersion: gloo.solo.io/v1`, `kind: Secret`, `metadata`, and `tls: {certChain, privateKey, rootCa}` beside it");
        }
        diags.push(d);
        return None;
    }
    if id.name.is_empty() {
        diags.push(Diagnostic::error(
            kind_pos,
            Some(id),
            "metadata.name is required",
        ));
        return None;
    }
    let labels = meta.labels.clone();
    let cx = Strict {
        file,
        doc_text,
        id: &id,
        first_line,
        flat: flat_mode,
    };
    let body = match one_pass.take() {
        Some(p) if !flat_mode => p.body,
        _ => cx.body(known, diags)?,
    };
    Some(Document {
        id,
        pos: kind_pos,
        line_offset: first_line - 1,
        labels,
        body,
    })
}

impl Strict<'_> {
    /// The strict second pass: the document as `known`'s type.
    fn body(&self, known: Kind, diags: &mut Vec<Diagnostic>) -> Option<DocumentBody> {
        let cx = self;
        Some(match known {
            Kind::Gateway => DocumentBody::Gateway(Box::new(cx.spec::<GatewaySpec>(diags)?)),
            Kind::VirtualService => {
                DocumentBody::VirtualService(cx.spec::<VirtualServiceSpec>(diags)?)
            }
            Kind::RouteTable => DocumentBody::RouteTable(cx.spec::<RouteTableSpec>(diags)?),
            Kind::Upstream => DocumentBody::Upstream(Box::new(cx.spec::<UpstreamSpec>(diags)?)),
            Kind::UpstreamGroup => {
                DocumentBody::UpstreamGroup(cx.spec::<UpstreamGroupSpec>(diags)?)
            }
            Kind::VirtualHostOption => {
                DocumentBody::VirtualHostOption(Box::new(cx.spec::<VirtualHostOptionSpec>(diags)?))
            }
            Kind::RouteOption => {
                DocumentBody::RouteOption(Box::new(cx.spec::<RouteOptionSpec>(diags)?))
            }
            // No `spec`: Gloo's Secret keeps its fields beside `metadata` in
            // both forms, so one strict parse serves both.
            Kind::Secret => DocumentBody::Secret(Box::new(strict::<SecretSpec>(
                cx.file,
                cx.doc_text,
                cx.id,
                cx.first_line,
                diags,
            )?)),
        })
    }
}

/// The strict second pass for one document.
struct Strict<'a> {
    file: &'a Path,
    doc_text: &'a str,
    id: &'a ResourceId,
    first_line: usize,
    flat: bool,
}

impl Strict<'_> {
    fn spec<S: DeserializeOwned + FlatFields>(&self, diags: &mut Vec<Diagnostic>) -> Option<S> {
        if self.flat {
            return strict::<S>(self.file, self.doc_text, self.id, self.first_line, diags);
        }
        let env: Envelope<S> = strict(self.file, self.doc_text, self.id, self.first_line, diags)?;
        if env.spec.has_flat_fields() {
            diags.push(Diagnostic::error(
                Pos::new(self.file, self.first_line, 1),
                Some(self.id.clone()),
                "unknown field `metadata` or `status` inside `spec` (they belong at the top level)",
            ));
            return None;
        }
        Some(env.spec)
    }
}

/// Gloo features edgeplane deliberately does not implement. A manifest
/// using one is rejected with a message saying so: serving a route without
/// the auth or limit it asked for would expose the backend.
pub(crate) const UNIMPLEMENTED_FIELDS: &[&str] = &[
    "extAuth",
    "jwt",
    "jwtStaged",
    "jwtProvidersStaged",
    "rbac",
    "waf",
    "dlp",
    "ratelimit",
    "ratelimitBasic",
    "ratelimitEarly",
    "ratelimitRegular",
    "ratelimitServer",
    "rateLimitConfigs",
    "rateLimitEarlyConfigs",
    "rateLimitRegularConfigs",
    "transformations",
    "stagedTransformations",
    "wasm",
    "extProc",
    "earlyHeaderManipulation",
    // Read on `httpConnectionManagerSettings`; a route's `tracing` is not
    // implemented.
    "tracing",
    "kube",
    "aws",
    "azure",
    "consul",
    "awsEc2",
    "gcp",
    "pipe",
    "ai",
    "sslConfig",
    "tcpGateway",
    "hybridGateway",
    "options",
    // Gloo's stats plugin (virtual clusters) on virtual hosts.
    "stats",
    "extensions",
    "extProcEarly",
    "extProcLate",
    // RouteOption / VirtualHostOption attachment in Kubernetes Gateway API
    // mode, which edgeplane does not serve.
    "targetRefs",
    "graphql",
    "caching",
    "headerValidationSettings",
    "dynamicForwardProxy",
    "httpLocalRatelimit",
    "networkLocalRatelimit",
    "grpcJsonTranscoder",
    "routeOptions",
    "matchableHttpGateways",
    "connectMatcher",
    "clusterHeader",
    // Upstream fields (spec, static, hosts, loadBalancerConfig).
    "failover",
    "protocolSelection",
    "proxyProtocolVersion",
    "preconnectPolicy",
    "dnsRefreshRate",
    "respectDnsTtl",
    "ignoreHealthOnHostRemoval",
    "initialStreamWindowSize",
    "initialConnectionWindowSize",
    "maxConcurrentStreams",
    "overrideStreamErrorOnInvalidHttpMessage",
    "serviceSpec",
    "healthCheckConfig",
    "slowStartConfig",
    "localityWeightedLbConfig",
    "useHostnameForHashing",
    "closeConnectionsOnHostSetChange",
    "http1ProtocolOptions",
];

/// A parser message without the string value it may quote (serde's
/// `invalid type: string "…"`): in a Secret that value can be a key.
fn hide_values(msg: &str) -> String {
    match (msg.find("string \""), msg.rfind("\", expected")) {
        (Some(start), Some(end)) if end > start => format!(
            "{}string (value not shown){}",
            &msg[..start],
            &msg[end + 1..]
        ),
        _ => msg.to_string(),
    }
}

fn unknown_field_name(msg: &str) -> Option<&str> {
    let rest = msg.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

/// At most this many problems are reported per document.
const MAX_ERRORS_PER_DOCUMENT: usize = 25;

/// The strict parse, reporting every problem of the document rather than
/// the first: after an error at a known line, that line and the block under
/// it are blanked (line numbers stay) and the parse runs again. A document
/// with any error is still returned when the rest parses, so validation can
/// report its other problems too; its diagnostics reject it.
fn strict<T: DeserializeOwned>(
    file: &Path,
    doc_text: &str,
    id: &ResourceId,
    first_line: usize,
    diags: &mut Vec<Diagnostic>,
) -> Option<T> {
    let mut text = std::borrow::Cow::Borrowed(doc_text);
    let mut reported = 0;
    let mut last_line = 0;
    loop {
        let e = match serde_saphyr::from_str::<T>(&text) {
            Ok(v) => return Some(v),
            Err(e) => e,
        };
        let msg = yaml_message(&e);
        let pos = yaml_pos(file, &e, first_line);
        // Errors move forward through the document; one that does not, or a
        // field missing only because we blanked its block, is an echo of
        // our blanking, not news.
        if reported > 0 && (msg.starts_with("missing field") || pos.line as usize <= last_line) {
            return None;
        }
        last_line = pos.line as usize;
        let mut d = match unknown_field_name(&msg) {
            Some(f) if UNIMPLEMENTED_FIELDS.contains(&f) => Diagnostic::error(
                pos.clone(),
                Some(id.clone()),
                format!(
                    "`{f}` is a Gloo feature edgeplane does not implement here; {} is rejected rather than served without it",
                    id
                ),
            ),
            _ if id.kind == Kind::Secret.as_str() => {
                Diagnostic::error(pos.clone(), Some(id.clone()), hide_values(&msg))
            }
            _ => Diagnostic::error(pos.clone(), Some(id.clone()), msg),
        };
        if let Some(h) = limit_hint(&d.message) {
            d = d.with_hint(h);
        }
        if id.kind == Kind::Secret.as_str() && unknown_field_name(&d.message) == Some("spec") {
            d = d.with_hint("a Gloo Secret has no `spec`: write `tls: {certChain, privateKey, rootCa}` beside `metadata`");
        } else if d.message.contains("unknown field") {
            d = d.with_hint("edgeplane rejects fields it does not implement rather than ignore them; check the spelling against Gloo's API");
        }
        diags.push(d);
        reported += 1;
        let has_location = e.location().is_some_and(|l| l.line() > 0);
        if !has_location || reported >= MAX_ERRORS_PER_DOCUMENT {
            return None;
        }
        let local_line = (pos.line as usize + 1).saturating_sub(first_line);
        match blank_block(&text, local_line, pos.column as usize) {
            Some(t) => text = std::borrow::Cow::Owned(t),
            None => return None,
        }
    }
}

/// Blanks line `line` (1-based) and the lines indented under it, keeping
/// every line's number. `None` when nothing would change.
fn blank_block(text: &str, line: usize, column: usize) -> Option<String> {
    let mut lines: Vec<&str> = text.split('\n').collect();
    let idx = line.checked_sub(1)?;
    let target = *lines.get(idx)?;
    if target.trim().is_empty() {
        return None;
    }
    let indent = |l: &str| l.len() - l.trim_start().len();
    let base = indent(target);
    // Only a problem with the key that starts the line (block style) can be
    // set aside this way; inside a flow collection we would lose too much.
    if column > base + 3 {
        return None;
    }
    // A list item keeps its dash (as an empty map), so the list around it
    // stays a list.
    let item = format!("{}- {{}}", &target[..base]);
    lines[idx] = if target.trim_start().starts_with("- ") {
        item.as_str()
    } else {
        ""
    };
    let mut i = idx + 1;
    while i < lines.len() {
        let l = lines[i];
        let t = l.trim();
        if !t.is_empty() && !t.starts_with('#') && indent(l) <= base {
            break;
        }
        lines[i] = "";
        i += 1;
    }
    Some(lines.join("\n"))
}

/// A diagnostic for every document whose resource an earlier document
/// already defined (the first definition is the one used).
pub(crate) fn duplicates<'a>(docs: impl IntoIterator<Item = &'a Document>) -> Vec<Diagnostic> {
    let mut seen: std::collections::BTreeMap<&ResourceId, &Pos> = Default::default();
    let mut out = Vec::new();
    for d in docs {
        match seen.get(&d.id) {
            Some(first) => out.push(
                Diagnostic::error(
                    d.pos.clone(),
                    Some(d.id.clone()),
                    format!("duplicate resource: already defined at {first}"),
                )
                .with_code(Code::Duplicate),
            ),
            None => {
                seen.insert(&d.id, &d.pos);
            }
        }
    }
    out
}

/// Every manifest file the repository holds (fixtures, hostile inputs,
/// fuzz seeds, examples, deploy): the corpus the parse tests compare paths on.
#[cfg(test)]
pub(super) fn repository_manifests() -> Vec<std::path::PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                out.push(p);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for d in [
        "tests/fixtures",
        "tests/hostile",
        "fuzz/seeds",
        "examples",
        "deploy",
    ] {
        walk(&root.join(d), &mut files);
    }
    files.sort();
    files
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

    /// The `line: N` values of a debug form, in order.
    fn lines_of(debug: &str) -> Vec<usize> {
        debug
            .split("line: ")
            .skip(1)
            .filter_map(|s| {
                let n: String = s.chars().take_while(char::is_ascii_digit).collect();
                n.parse().ok()
            })
            .collect()
    }

    /// A debug form without lines and byte spans (columns kept).
    fn without_lines(debug: &str) -> String {
        let re =
            regex::Regex::new(r"line: \d+|span: Span \{[^}]*\}|line_shift: \d+").expect("regex");
        re.replace_all(debug, "").into_owned()
    }

    /// Over every manifest the repository holds, and a big generated one:
    /// whenever the route-by-route parse succeeds, the whole parse succeeds
    /// too and gives the same document, every route's positions included
    /// (a route's own line plus its `line_shift` is the whole parse's line).
    #[test]
    fn the_route_by_route_parse_equals_the_whole_parse() {
        let files = repository_manifests();
        let mut texts: Vec<(PathBuf, String)> = files
            .iter()
            .filter_map(|f| Some((f.clone(), std::fs::read_to_string(f).ok()?)))
            .collect();
        let mut big = String::from(
            "# many routes\napiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata:\n  name: big\nspec:\n  virtualHost:\n    domains: ['*']\n    routes:\n",
        );
        for i in 0..50 {
            big.push_str(&format!(
                "    - matchers:\n      - prefix: /r{i}\n        headers: [{{name: x, value: '{i}'}}]\n      # note\n      options:\n        timeout: {i}s\n        prefixRewrite: \"/a\\\"b\"\n      routeAction:\n        single: {{upstream: {{name: u{i}, namespace: ns}}}}\n\n"
            ));
        }
        big.push_str("    options:\n      cors: {allowOrigin: [a]}\n");
        texts.push((PathBuf::from("big.yaml"), big));
        let (mut cut, mut whole_only) = (0, 0);
        for (f, text) in &texts {
            for (line, range) in document_ranges(text) {
                let doc = &text[range];
                let mut diags = Vec::new();
                let whole = parse_document(f, line + 1, doc, &mut diags);
                let Some((c, items)) = parse_cut(f, line + 1, doc, None) else {
                    whole_only += 1;
                    continue;
                };
                cut += 1;
                let w = whole.unwrap_or_else(|| {
                    panic!("{}: cut parsed, whole did not: {diags:?}", f.display())
                });
                assert_eq!(
                    without_lines(&format!("{w:?}")),
                    without_lines(&format!("{c:?}")),
                    "{}",
                    f.display()
                );
                let none = Vec::new();
                let (wr, cr) = (
                    w.body.routes().unwrap_or(&none),
                    c.body.routes().unwrap_or(&none),
                );
                assert_eq!((wr.len(), cr.len()), (items.len(), items.len()));
                for (w, c) in wr.iter().zip(cr) {
                    let want = lines_of(&format!("{w:?}"));
                    let got: Vec<usize> = lines_of(&format!("{c:?}"))
                        .into_iter()
                        .map(|l| l + c.value.line_shift)
                        .collect();
                    assert_eq!(got, want, "{}", f.display());
                    assert!(!want.is_empty());
                }
            }
        }
        assert!(
            cut > 40 && whole_only > 100,
            "{cut} cut, {whole_only} whole"
        );
    }

    /// Positions a user sees, read off the file's text: a problem inside a
    /// route of a document parsed route by route names the route's own line.
    #[test]
    fn a_problem_in_a_cut_route_names_its_line_in_the_file() {
        let text = "apiVersion: gloo.solo.io/v1\nkind: Upstream\nmetadata: {name: u}\nspec: {static: {hosts: [{addr: 127.0.0.1, port: 80}]}}\n---\napiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata: {name: v}\nspec:\n  virtualHost:\n    domains: ['*']\n    routes:\n    - matchers: [{prefix: /a}]\n      routeAction: {single: {upstream: {name: u}}}\n    - matchers: [{prefix: /b}]\n      options:\n        timeout: soon\n      routeAction: {single: {upstream: {name: u}}}\n";
        let (docs, diags) = parse_files(&file(text));
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(docs.len(), 2);
        assert!(
            parse_cut(
                Path::new("m.yaml"),
                6,
                &text[text.find("apiVersion: gateway").unwrap_or(0)..],
                None
            )
            .is_some()
        );
        let v = crate::validate::validate(&docs);
        let e = v
            .diagnostics
            .iter()
            .find(|d| d.is_error())
            .unwrap_or_else(|| panic!("{:?}", v.diagnostics));
        let want = text
            .lines()
            .position(|l| l.contains("timeout: soon"))
            .map(|i| i + 1);
        assert_eq!(Some(e.pos.line as usize), want, "{e:?}");
        assert_eq!(e.pos.column, 18, "{e:?}");
    }

    #[test]
    fn splits_documents_with_their_lines() {
        let docs = split_documents("a: 1\n---\nb: 2\n--- \nc: 3\n...\n");
        let starts: Vec<usize> = docs.iter().map(|d| d.0).collect();
        assert_eq!(starts, vec![0, 1, 3]);
    }

    /// Markers per YAML 1.2 (§9.1.4, §9.2): `---` or `...` at column 0,
    /// alone or followed by white space; `...` ends a document and belongs
    /// to none. Each case: the text, then each document's (first line,
    /// text).
    #[test]
    fn document_markers_per_the_yaml_spec() {
        let cases: &[(&str, &[(usize, &str)])] = &[
            ("", &[]),
            ("a: 1", &[(0, "a: 1")]),
            ("---\na: 1\n", &[(0, "---\na: 1\n")]),
            (
                "a: 1\r\n---\r\nb: 2",
                &[(0, "a: 1\r\n"), (1, "---\r\nb: 2")],
            ),
            // Not markers: indented, glued to text, or `--` / `-- -`.
            (
                "a: |\n  ---\nb: ---x\n--\n-- -\n",
                &[(0, "a: |\n  ---\nb: ---x\n--\n-- -\n")],
            ),
            ("---x: 1\n", &[(0, "---x: 1\n")]),
            (
                "a: 1\n---\t# c\nb: 2\n",
                &[(0, "a: 1\n"), (1, "---\t# c\nb: 2\n")],
            ),
            // `...` ends the document; what follows up to `---` is the next.
            ("a: 1\n...\nb: 2\n", &[(0, "a: 1\n"), (2, "b: 2\n")]),
            (
                "a: 1\n... # end\n---\nb: 2",
                &[(0, "a: 1\n"), (2, "---\nb: 2")],
            ),
            ("a: 1\n...", &[(0, "a: 1\n")]),
            ("----\n- x\n", &[(0, "----\n- x\n")]),
        ];
        for (text, want) in cases {
            let got = split_documents(text);
            let got: Vec<(usize, &str)> = got.iter().map(|(l, t)| (*l, t.as_str())).collect();
            assert_eq!(&got, want, "{text:?}");
        }
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
        // The document still parses once the field is set aside (so its other
        // problems are reported too); its diagnostic rejects it.
        assert_eq!(docs.len(), 2);
        assert_eq!(diags.len(), 1, "{diags:?}");
        let d = &diags[0];
        assert!(d.message.contains("bindAdress"), "{}", d.message);
        assert_eq!(d.pos.line, 12);
        assert_eq!(d.resource.as_ref().map(|r| r.name.as_str()), Some("gw"));
    }

    #[test]
    fn every_field_problem_of_a_document_is_reported() {
        let (_, diags) = parse_files(&file(
            "apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata: {name: v}\nspec:\n  virtualHost:\n    domainz: [a]\n    routes:\n    - matchers:\n      - prefx: /\n        caseSensitive: maybe\n      routeAction: {single: {upstream: {name: u}}}\n      options:\n        timeoutt: 1s\n",
        ));
        let got: Vec<(u32, &str)> = diags
            .iter()
            .map(|d| (d.pos.line, d.message.split(',').next().unwrap_or("")))
            .collect();
        assert_eq!(got.len(), 3, "{diags:#?}");
        assert_eq!(got[0], (6, "unknown field `domainz`"));
        assert_eq!(got[1], (9, "unknown field `prefx`"));
        assert_eq!(got[2], (13, "unknown field `timeoutt`"));
    }

    /// A no-break space where YAML needs a space is named as such at its
    /// own line and column; one inside a block scalar or a value is text.
    #[test]
    fn no_break_spaces_and_tabs_are_named_where_they_are() {
        let up = "---\napiVersion: gloo.solo.io/v1\nkind: Upstream\nmetadata:\n  name: a\nspec:\n  static:\n";
        let nb = '\u{a0}';
        let cases = [
            (format!("{up}{nb}{nb}{nb}{nb}hosts: []\n"), (8, 1)),
            (format!("{up}    hosts:{nb}[]\n"), (8, 11)),
            (
                format!("{up}    hosts:\n    -{nb}{{addr: a, port: 1}}\n"),
                (9, 6),
            ),
        ];
        for (text, (line, column)) in cases {
            let (_, diags) = parse_files(&file(&text));
            assert_eq!(diags.len(), 1, "{diags:?}");
            let d = &diags[0];
            assert_eq!(
                d.message,
                "a no-break space (U+00A0) where YAML needs a plain space"
            );
            assert_eq!((d.pos.line, d.pos.column), (line, column), "{text:?}");
        }
        let fine = format!(
            "apiVersion: gloo.solo.io/v1\nkind: Upstream\nmetadata:\n  name: a\n  annotations:\n    note: |\n      {nb}{nb}indented text\n    other: a{nb}b\nspec: {{static: {{hosts: [{{addr: a, port: 1}}]}}}}\n"
        );
        let (docs, diags) = parse_files(&file(&fine));
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(docs.len(), 1);

        let tab = format!("{up}\thosts: []\n");
        let (_, diags) = parse_files(&file(&tab));
        assert_eq!(diags.len(), 1, "{diags:?}");
        assert!(diags[0].message.contains("tab"), "{}", diags[0].message);
        assert_eq!((diags[0].pos.line, diags[0].pos.column), (8, 1));
    }

    /// What `kubectl get -o yaml` adds to metadata, and Gloo's discovery
    /// data on Upstreams, are accepted and ignored.
    #[test]
    fn kubernetes_dump_metadata_is_ignored() {
        let text = "apiVersion: gloo.solo.io/v1\nkind: Upstream\nmetadata:\n  name: a\n  namespace: gloo-system\n  selfLink: /apis/gloo.solo.io/v1/namespaces/gloo-system/upstreams/a\n  ownerReferences: [{apiVersion: v1, kind: Service, name: a, uid: x}]\n  managedFields: [{manager: kubectl, operation: Update}]\n  finalizers: [x]\n  generateName: a-\n  deletionGracePeriodSeconds: 30\n  resourceVersion: '1'\n  uid: x\n  generation: 2\n  creationTimestamp: '2024-01-01T00:00:00Z'\nspec:\n  discoveryMetadata: {labels: {app: a}}\n  static: {hosts: [{addr: a, port: 1}]}\n";
        let (docs, diags) = parse_files(&file(text));
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(docs.len(), 1);
    }

    #[test]
    fn secret_messages_hide_quoted_values() {
        assert_eq!(
            hide_values(
                "invalid type: string \"-----BEGIN PRIVATE KEY-----\\nMII\", expected a map"
            ),
            "invalid type: string (value not shown), expected a map"
        );
        assert_eq!(hide_values("unknown field `x`"), "unknown field `x`");
    }

    #[test]
    fn syntax_error_names_file_and_line() {
        let (_, diags) = parse_files(&file("kind: Upstream\nmetadata: {name: a\nspec: x\n"));
        assert_eq!(diags.len(), 1);
        assert!(diags[0].pos.line >= 2, "{:?}", diags[0]);
        assert_eq!(&*diags[0].pos.file, Path::new("m.yaml"));
    }

    fn key(key: &str, text: &str) -> Vec<SourceFile> {
        vec![SourceFile {
            path: crate::source::etcd::layout::path_of_key(key),
            text: text.to_string(),
        }]
    }

    #[test]
    fn etcd_keys_take_envelope_and_flat_documents() {
        let k = "edgeplane/gloo.solo.io/v1/Upstream/web/u";
        let envelope = "apiVersion: gloo.solo.io/v1\nkind: Upstream\nmetadata: {name: u, namespace: web}\nspec: {static: {hosts: [{addr: 127.0.0.1, port: 9}]}}\n";
        // Gloo's flat form: kind, namespace (and here name) from the key.
        let flat = "metadata: {}\nstatic: {hosts: [{addr: 127.0.0.1, port: 9}]}\n";
        // An envelope without namespace lives in the key's.
        let no_ns = "apiVersion: gloo.solo.io/v1\nkind: Upstream\nmetadata: {name: u}\nspec: {static: {hosts: [{addr: 127.0.0.1, port: 9}]}}\n";
        for text in [envelope, flat, no_ns] {
            let (docs, diags) = parse_files(&key(k, text));
            assert!(diags.is_empty(), "{text}: {diags:?}");
            assert_eq!(docs.len(), 1);
            assert_eq!(docs[0].id.to_string(), "Upstream web.u");
        }
    }

    #[test]
    fn etcd_key_and_document_must_agree() {
        let k = "edgeplane/gloo.solo.io/v1/Upstream/web/u";
        for (text, what) in [
            (
                "metadata: {name: other}\nstatic: {}\n",
                "metadata.name `other`",
            ),
            (
                "metadata: {name: u, namespace: x}\nstatic: {}\n",
                "metadata.namespace `x`",
            ),
            (
                "apiVersion: gloo.solo.io/v1\nkind: UpstreamGroup\nmetadata: {name: u}\nspec: {destinations: []}\n",
                "kind `UpstreamGroup`",
            ),
        ] {
            let (docs, diags) = parse_files(&key(k, text));
            assert!(docs.is_empty(), "{text}");
            assert_eq!(diags.len(), 1, "{diags:?}");
            assert!(diags[0].message.starts_with(what), "{}", diags[0].message);
            assert_eq!(diags[0].pos.file.display().to_string(), format!("etcd:{k}"));
        }
        // A syntax error points into the key's text.
        let (_, diags) = parse_files(&key(k, "metadata: {}\nstatic: [\n"));
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].pos.file.display().to_string(), format!("etcd:{k}"));
        assert!(diags[0].pos.line >= 2, "{:?}", diags[0].pos);
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
