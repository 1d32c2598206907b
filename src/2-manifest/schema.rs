//! JSON Schemas for the manifests edgeplane reads (`edgeplane schema`).
//!
//! Generated with `schemars` from the same serde types the parser uses
//! (`crate::manifest::raw`), so a field the parser knows is a field the
//! schema knows: `deny_unknown_fields` becomes `additionalProperties: false`.
//! Only `apiVersion` and `kind` are pinned here, to the constants the parser
//! checks. What the parser checks beyond the types (references, durations,
//! `metadata` inside `spec`, Gloo features it refuses by name) is left to
//! `edgeplane validate`.
//!
//! `edgeplane schema --fields` walks the same schemas into a Markdown list of
//! the fields edgeplane reads and the Gloo features it refuses by name
//! (`docs/FIELDS.md`, kept in step by `tests/it/fields_doc.rs`).

use std::collections::BTreeMap;

use schemars::{JsonSchema, Schema, SchemaGenerator, generate::SchemaSettings};
use serde_json::{Map, Value, json};

use super::kind::Kind;
use super::raw::{
    Envelope, GatewaySpec, RouteOptionSpec, RouteTableSpec, SecretSpec, UpstreamGroupSpec,
    UpstreamSpec, VirtualHostOptionSpec, VirtualServiceSpec,
};

const DIALECT: &str = "http://json-schema.org/draft-07/schema#";

fn generator() -> SchemaGenerator {
    // Draft 7: the dialect yaml-language-server understands best.
    SchemaSettings::draft07().into_generator()
}

fn generate<T: JsonSchema>() -> Value {
    let schema: Schema = generator().into_root_schema_for::<T>();
    schema.to_value()
}

/// The schema of a whole document (`apiVersion`, `kind`, `metadata`,
/// `spec`) of `kind`.
pub fn document_schema(kind: Kind) -> Value {
    let api = kind.api_version();
    let mut schema = match kind {
        Kind::Gateway => generate::<Envelope<GatewaySpec>>(),
        Kind::VirtualService => generate::<Envelope<VirtualServiceSpec>>(),
        Kind::RouteTable => generate::<Envelope<RouteTableSpec>>(),
        Kind::Upstream => generate::<Envelope<UpstreamSpec>>(),
        Kind::UpstreamGroup => generate::<Envelope<UpstreamGroupSpec>>(),
        Kind::VirtualHostOption => generate::<Envelope<VirtualHostOptionSpec>>(),
        Kind::RouteOption => generate::<Envelope<RouteOptionSpec>>(),
        // Gloo's Secret has no `spec`: its fields sit beside `metadata`.
        Kind::Secret => generate::<SecretSpec>(),
    };
    if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        props.insert("apiVersion".into(), json!({ "const": api }));
        props.insert("kind".into(), json!({ "const": kind.as_str() }));
    }
    if kind == Kind::Secret
        && let Some(obj) = schema.as_object_mut()
    {
        obj.insert("required".into(), json!(["apiVersion", "kind", "metadata"]));
    }
    set_title(&mut schema, &format!("edgeplane {api} {kind}"));
    schema
}

/// The schema of a document of `kind` in Gloo's flat file layout
/// (`<plural>/<namespace>/<name>.yaml`: the spec's fields at the top level
/// beside `metadata`, no `kind`; `Kind::of_flat_path` says which).
pub fn flat_schema(kind: Kind) -> Value {
    let mut schema = match kind {
        Kind::Gateway => generate::<GatewaySpec>(),
        Kind::VirtualService => generate::<VirtualServiceSpec>(),
        Kind::RouteTable => generate::<RouteTableSpec>(),
        Kind::Upstream => generate::<UpstreamSpec>(),
        Kind::UpstreamGroup => generate::<UpstreamGroupSpec>(),
        Kind::VirtualHostOption => generate::<VirtualHostOptionSpec>(),
        Kind::RouteOption => generate::<RouteOptionSpec>(),
        Kind::Secret => generate::<SecretSpec>(),
    };
    set_title(
        &mut schema,
        &format!("edgeplane {} {kind} (Gloo file layout)", kind.api_version()),
    );
    schema
}

fn set_title(schema: &mut Value, title: &str) {
    if let Some(obj) = schema.as_object_mut() {
        obj.insert("title".into(), Value::String(title.to_string()));
    }
}

/// The file name of `kind`'s schema: `gateway.solo.io.v1.VirtualService.json`.
pub fn file_name(kind: Kind) -> String {
    format!("{}.{kind}.json", kind.api_version().replace('/', "."))
}

/// The file name of `kind`'s flat-layout schema.
pub fn flat_file_name(kind: Kind) -> String {
    format!("{}.{kind}.flat.json", kind.api_version().replace('/', "."))
}

/// One schema for any document edgeplane parses: each kind's schema under
/// `definitions`, chosen by `kind` (`if`/`then`, so an editor reports the
/// errors of the kind written, not of every kind), and `kind` limited to
/// the kinds edgeplane reads.
pub fn all_schema() -> Value {
    let mut defs = Map::new();
    let mut branches = Vec::new();
    for kind in Kind::ALL {
        let mut schema = document_schema(kind);
        // Each kind's own definitions move up into the shared ones, named
        // per kind: `#/definitions/X` becomes `#/definitions/Kind.X`.
        let prefix = format!("{kind}.");
        if let Some(Value::Object(own)) =
            schema.as_object_mut().and_then(|o| o.remove("definitions"))
        {
            for (name, mut def) in own {
                prefix_refs(&mut def, &prefix);
                defs.insert(format!("{prefix}{name}"), def);
            }
        }
        prefix_refs(&mut schema, &prefix);
        if let Some(obj) = schema.as_object_mut() {
            obj.remove("$schema");
        }
        defs.insert(kind.to_string(), schema);
        branches.push(json!({
            "if": { "properties": { "kind": { "const": kind.as_str() } }, "required": ["kind"] },
            "then": { "$ref": format!("#/definitions/{kind}") },
        }));
    }
    let kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
    json!({
        "$schema": DIALECT,
        "title": "edgeplane manifest",
        "type": "object",
        // Each kind's own schema requires `spec` where it has one (a
        // Secret has none).
        "required": ["apiVersion", "kind", "metadata"],
        "properties": { "kind": { "enum": kinds } },
        "allOf": branches,
        "definitions": defs,
    })
}

fn prefix_refs(v: &mut Value, prefix: &str) {
    match v {
        Value::Object(obj) => {
            for (key, val) in obj.iter_mut() {
                if key == "$ref"
                    && let Value::String(r) = val
                    && let Some(name) = r.strip_prefix("#/definitions/")
                {
                    *r = format!("#/definitions/{prefix}{name}");
                } else {
                    prefix_refs(val, prefix);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| prefix_refs(i, prefix)),
        _ => {}
    }
}

/// Every schema file: `(file name, schema)`, per kind (document and flat
/// layout) and `all.json`.
pub fn all_files() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for kind in Kind::ALL {
        out.push((file_name(kind), document_schema(kind)));
        out.push((flat_file_name(kind), flat_schema(kind)));
    }
    out.push(("all.json".to_string(), all_schema()));
    out
}

// === The field list (`edgeplane schema --fields`) ===

/// Objects nested deeper than this are not listed (the model nests far
/// less; this only bounds the walk).
const MAX_DEPTH: usize = 16;

/// A type whose fields an earlier kind's section already listed is referred
/// to there, rather than listed again, when its fields take more rows than
/// this (a route, not a resource reference).
const SHARED_MIN_ROWS: usize = 8;

/// One field of the list.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    /// Dotted path below the walked object: `[]` for an array's items,
    /// `.<key>` for a map's values.
    path: String,
    /// `string`, `array of object`, `map of string`, `integer or string`…
    ty: String,
    required: bool,
    /// First sentence of the doc comment of the field (or of its type).
    description: Option<String>,
    /// Any value is accepted by the schema (`Option<IgnoredAny>` in the
    /// model): read only so it can be refused or ignored.
    any: bool,
    /// Its fields are those listed under this path (recursion, or a large
    /// type an earlier kind listed), as `Kind `path`` or `` `path` ``.
    same_as: Option<String>,
    /// Its fields are nested deeper than `MAX_DEPTH`.
    too_deep: bool,
}

/// What a property's schema comes to, once `$ref`s and `anyOf`s are followed.
struct Shape<'a> {
    label: String,
    any: bool,
    description: Option<&'a str>,
    /// Objects whose properties are listed under the field: (suffix after
    /// the field's path, definition name, the object schema).
    objects: Vec<(String, Option<&'a str>, &'a Map<String, Value>)>,
}

impl Shape<'_> {
    fn leaf(label: &str) -> Self {
        Shape {
            label: label.to_string(),
            any: false,
            description: None,
            objects: Vec::new(),
        }
    }

    fn any() -> Self {
        Shape {
            any: true,
            ..Shape::leaf("any")
        }
    }
}

fn is_null_schema(v: &Value) -> bool {
    v.get("type").and_then(Value::as_str) == Some("null")
}

/// Where a `$ref` points: the root (`#`) or a definition.
fn deref<'a>(root: &'a Value, r: &'a str) -> Option<(&'a str, &'a Value)> {
    if r == "#" {
        return Some(("#", root));
    }
    let name = r.strip_prefix("#/definitions/")?;
    Some((name, root.get("definitions")?.get(name)?))
}

/// The shape of `schema`. `suffix` is what is appended to the field's path
/// for the objects found (`[]`, `.<key>`); `def` is the definition `schema`
/// is, if it is one; `hops` bounds chains of references.
fn shape<'a>(
    root: &'a Value,
    schema: &'a Value,
    suffix: &str,
    def: Option<&'a str>,
    hops: usize,
) -> Shape<'a> {
    let o = match schema {
        Value::Object(o) => o,
        Value::Bool(true) => return Shape::any(),
        _ => return Shape::leaf("nothing"),
    };
    if hops > MAX_DEPTH {
        return Shape::leaf("unresolved");
    }
    let description = o.get("description").and_then(Value::as_str);
    if let Some(r) = o.get("$ref").and_then(Value::as_str) {
        let Some((name, target)) = deref(root, r) else {
            return Shape::leaf("unresolved");
        };
        let mut s = shape(root, target, suffix, Some(name), hops + 1);
        // A type's doc comment says what its fields are for; a scalar
        // type's (how a number may be written) adds nothing to its label.
        let structured = !s.objects.is_empty() || s.label == "object (empty)";
        s.description = description.or(if structured { s.description } else { None });
        return s;
    }
    for key in ["anyOf", "oneOf"] {
        let Some(Value::Array(variants)) = o.get(key) else {
            continue;
        };
        let mut shapes: Vec<Shape<'a>> = variants
            .iter()
            .filter(|v| !is_null_schema(v))
            .map(|v| shape(root, v, suffix, None, hops + 1))
            .collect();
        if shapes.len() == 1 {
            let mut s = shapes.remove(0);
            s.description = description.or(s.description);
            return s;
        }
        let mut labels: Vec<String> = Vec::new();
        for s in &shapes {
            if !labels.contains(&s.label) {
                labels.push(s.label.clone());
            }
        }
        return Shape {
            label: labels.join(" or "),
            any: !shapes.is_empty() && shapes.iter().all(|s| s.any),
            description,
            objects: shapes.into_iter().flat_map(|s| s.objects).collect(),
        };
    }
    let types: Vec<&str> = match o.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ if o.contains_key("properties") => vec!["object"],
        _ => Vec::new(),
    };
    let types: Vec<&str> = types.into_iter().filter(|t| *t != "null").collect();
    let mut s = match types.as_slice() {
        [] => Shape::any(),
        ["array"] => {
            let inner = match o.get("items") {
                Some(items) => shape(root, items, &format!("{suffix}[]"), None, hops + 1),
                None => Shape::any(),
            };
            Shape {
                label: format!("array of {}", inner.label),
                any: false,
                description: inner.description,
                objects: inner.objects,
            }
        }
        ["object"] => match o.get("additionalProperties") {
            Some(values @ Value::Object(_)) => {
                let inner = shape(root, values, &format!("{suffix}.<key>"), None, hops + 1);
                Shape {
                    label: format!("map of {}", inner.label),
                    any: false,
                    description: inner.description,
                    objects: inner.objects,
                }
            }
            closed => {
                let has_fields = o
                    .get("properties")
                    .and_then(Value::as_object)
                    .is_some_and(|p| !p.is_empty());
                if has_fields {
                    Shape {
                        objects: vec![(suffix.to_string(), def, o)],
                        ..Shape::leaf("object")
                    }
                } else if closed == Some(&Value::Bool(false)) {
                    Shape::leaf("object (empty)")
                } else {
                    Shape::leaf("object")
                }
            }
        },
        scalars => Shape::leaf(&scalars.join(" or ")),
    };
    s.description = description.or(s.description);
    s
}

/// Walks the properties of one schema into rows.
struct Walk<'a> {
    root: &'a Value,
    kind: &'a str,
    /// Definitions whose fields an earlier walk listed: name → (kind, the
    /// path they are listed under). `None`: list every field everywhere.
    shared: Option<&'a mut BTreeMap<String, (String, String)>>,
    rows: Vec<Row>,
}

impl<'a> Walk<'a> {
    /// Lists the properties of `obj`, each path starting with `prefix`.
    /// `stack` holds the definitions being listed (and where), so a type
    /// that contains itself is listed once.
    fn object(
        &mut self,
        obj: &'a Map<String, Value>,
        prefix: &str,
        stack: &mut Vec<(&'a str, String)>,
        depth: usize,
    ) {
        let required: Vec<&str> = obj
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let Some(Value::Object(props)) = obj.get("properties") else {
            return;
        };
        for (name, schema) in props {
            let path = format!("{prefix}{name}");
            let s = shape(self.root, schema, "", None, 0);
            let row = self.rows.len();
            self.rows.push(Row {
                path: path.clone(),
                ty: s.label,
                required: required.contains(&name.as_str()),
                description: s.description.and_then(first_sentence),
                any: s.any,
                same_as: None,
                too_deep: false,
            });
            for (suffix, def, child) in s.objects {
                let under = format!("{path}{suffix}");
                if let Some(d) = def
                    && let Some((_, at)) = stack.iter().find(|(n, _)| *n == d)
                {
                    self.rows[row].same_as = Some(if at.is_empty() {
                        "the top level".to_string()
                    } else {
                        format!("`{at}`")
                    });
                    continue;
                }
                if depth >= MAX_DEPTH {
                    self.rows[row].too_deep = true;
                    continue;
                }
                let start = self.rows.len();
                if let Some(d) = def {
                    stack.push((d, under.clone()));
                }
                self.object(child, &format!("{under}."), stack, depth + 1);
                if def.is_some() {
                    stack.pop();
                }
                let (Some(d), Some(shared)) = (def, self.shared.as_deref_mut()) else {
                    continue;
                };
                match shared.get(d) {
                    Some((k, at))
                        if k != self.kind && self.rows.len() - start > SHARED_MIN_ROWS =>
                    {
                        self.rows[row].same_as = Some(format!("{k} `{at}`"));
                        self.rows.truncate(start);
                    }
                    Some(_) => {}
                    None => {
                        shared.insert(d.to_string(), (self.kind.to_string(), under));
                    }
                }
            }
        }
    }
}

/// The rows of every property of `root` (a whole schema, with its
/// `definitions`), listed for `kind`.
fn rows_of(
    root: &Value,
    kind: &str,
    shared: Option<&mut BTreeMap<String, (String, String)>>,
) -> Vec<Row> {
    let mut walk = Walk {
        root,
        kind,
        shared,
        rows: Vec::new(),
    };
    if let Value::Object(obj) = root {
        let mut stack = vec![("#", String::new())];
        walk.object(obj, "", &mut stack, 0);
    }
    walk.rows
}

/// The first sentence of a doc comment, on one line; `None` when empty.
fn first_sentence(text: &str) -> Option<String> {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let sentence = match flat.find(". ") {
        Some(i) => &flat[..=i],
        None => flat.as_str(),
    };
    (!sentence.is_empty()).then(|| sentence.to_string())
}

/// Text for a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// The name a path ends in: `upgrades` for `a.upgrades[]`, `a` for `a.<key>`.
fn last_name(path: &str) -> &str {
    let mut p = path;
    loop {
        if let Some(rest) = p.strip_suffix("[]") {
            p = rest;
        } else if let Some(rest) = p.strip_suffix(".<key>") {
            p = rest;
        } else {
            break;
        }
    }
    p.rsplit('.').next().unwrap_or(p)
}

fn table(out: &mut String, heading: &str, rows: &[Row]) {
    out.push_str(&format!("| {heading} | Type | Notes |\n|---|---|---|\n"));
    for r in rows {
        let mut ty = r.ty.clone();
        if r.required {
            ty.push_str(", required");
        }
        let mut notes: Vec<String> = r.description.iter().map(|d| cell(d)).collect();
        if let Some(at) = &r.same_as {
            notes.push(format!("Its fields: as under {at}."));
        }
        if r.too_deep {
            notes.push("Its fields are nested too deep to list here.".to_string());
        }
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            r.path,
            cell(&ty),
            notes.join(" ")
        ));
    }
}

fn code_list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `edgeplane schema --fields`: the Gloo fields edgeplane reads, per kind,
/// walked from the same schemas (so from the parser's types), and the Gloo
/// features it refuses by name, as Markdown (`docs/FIELDS.md`).
pub fn fields_markdown() -> String {
    use super::kind::UNIMPLEMENTED_KINDS;
    use super::parse::UNIMPLEMENTED_FIELDS;

    let mut out = String::new();
    out.push_str(
        "<!-- Generated by `edgeplane schema --fields` from the parser's types: do not edit by hand. \
         Regenerate with `cargo run -q -- schema --fields > docs/FIELDS.md`. -->\n\n",
    );
    out.push_str("# Gloo fields edgeplane reads\n\n");
    out.push_str(
        "Generated by `edgeplane schema --fields` from the types the manifest parser \
         reads (the same ones `edgeplane schema` turns into JSON Schemas); do not edit \
         by hand.\n\n\
         Each table lists, per kind, every field edgeplane accepts under `spec`, as a \
         path: `a.b` is field `b` of object `a`, `a[]` an item of list `a`, and \
         `a.<key>` a value of map `a`. Fields not listed are rejected (see the end).\n\n",
    );

    // The metadata every kind shares.
    {
        let doc = document_schema(Kind::Gateway);
        let rows = rows_of(&doc, "", None);
        let (ignored, read): (Vec<Row>, Vec<Row>) = rows
            .into_iter()
            .filter(|r| r.path.starts_with("metadata."))
            .partition(|r| r.any);
        out.push_str("## `metadata` (every kind)\n\n");
        table(&mut out, "Field", &read);
        let ignored: Vec<String> = ignored.into_iter().map(|r| r.path).collect();
        if !ignored.is_empty() {
            out.push_str(&format!(
                "\nAccepted and ignored (written by Kubernetes or Gloo): {}.\n",
                code_list(&ignored)
            ));
        }
        out.push_str(
            "\nA top-level `status` (as written by Gloo or kubectl) is accepted and ignored.\n\n",
        );
    }

    let mut shared = BTreeMap::new();
    // Every listed path per kind, with shared types expanded, for the
    // "also listed at" column below.
    let mut everywhere: Vec<(&str, Vec<Row>)> = Vec::new();
    for kind in Kind::ALL {
        let (api, plural) = (kind.api_version(), kind.plural());
        let spec = flat_schema(kind);
        let rows = rows_of(&spec, kind.as_str(), Some(&mut shared));
        everywhere.push((kind.as_str(), rows_of(&spec, kind.as_str(), None)));
        let (top_any, rows): (Vec<Row>, Vec<Row>) = rows
            .into_iter()
            .partition(|r| r.any && !r.path.contains('.') && !r.path.contains('['));
        let (refused, rows): (Vec<Row>, Vec<Row>) = rows.into_iter().partition(|r| r.any);
        out.push_str(&format!(
            "## {kind}\n\n`apiVersion: {api}`, `kind: {kind}`; in Gloo's file layout, \
             `{plural}/<namespace>/<name>.yaml`.\n\n"
        ));
        if kind == Kind::Secret {
            out.push_str(
                "A Secret has no `spec`: as in Gloo, its fields sit beside `metadata` \
                 (`apiVersion` and `kind` only outside the file layout). Only `tls` is \
                 served (to Envoy over SDS, for `sslConfig.secretRef`).\n\n",
            );
            table(&mut out, "Field", &rows);
        } else {
            table(&mut out, "Field under `spec`", &rows);
        }
        if !refused.is_empty() {
            let paths: Vec<String> = refused.into_iter().map(|r| r.path).collect();
            out.push_str(&format!(
                "\nRead only to be refused, with an error naming the field (Gloo has them; \
                 edgeplane does not implement them): {}.\n",
                code_list(&paths)
            ));
        }
        if kind == Kind::Secret {
            let names: Vec<String> = top_any
                .into_iter()
                .map(|r| r.path)
                .filter(|p| p != "status" && p != "metadata")
                .collect();
            out.push_str(&format!(
                "\nOther kinds of Gloo secret, {}: accepted with a warning and not served \
                 (edgeplane has no feature that uses them); a Secret sets exactly one kind. \
                 `metadata` is as for every kind; `status` is ignored.\n",
                code_list(&names)
            ));
        } else if !top_any.is_empty() {
            let names: Vec<String> = top_any.into_iter().map(|r| r.path).collect();
            out.push_str(&format!(
                "\n{}: only in Gloo's file layout, where they sit beside the fields above \
                 (`status` is ignored); inside `spec` they are an error.\n",
                code_list(&names)
            ));
        }
        out.push('\n');
    }

    out.push_str(
        "## Refused by name\n\n\
         Gloo features edgeplane does not implement. Where one of these names appears at a \
         place the tables above do not list, the error names the feature and the resource is \
         rejected rather than served without it: a route served without the authentication, \
         authorization or rate limit it asked for would leave its backend exposed.\n\n\
         | Field | Accepted only at |\n|---|---|\n",
    );
    let mut fields: Vec<&str> = UNIMPLEMENTED_FIELDS.to_vec();
    fields.sort_by_key(|f| (f.to_ascii_lowercase(), *f));
    fields.dedup();
    for f in fields {
        let mut at = Vec::new();
        for (kind, rows) in &everywhere {
            for r in rows.iter().filter(|r| !r.any && last_name(&r.path) == f) {
                at.push(format!("{kind} `{}`", r.path));
            }
        }
        let at = if at.is_empty() {
            "(nowhere)".to_string()
        } else {
            at.join("; ")
        };
        out.push_str(&format!("| `{f}` | {at} |\n"));
    }
    let mut kinds: Vec<String> = UNIMPLEMENTED_KINDS.iter().map(|k| k.to_string()).collect();
    kinds.sort();
    kinds.dedup();
    out.push_str(&format!(
        "\nKinds Gloo has and edgeplane does not serve; a document of one of them is \
         rejected: {}.\n\n",
        code_list(&kinds)
    ));

    out.push_str(
        "## Anything else\n\n\
         A field listed nowhere here is unknown to edgeplane: `edgeplane validate` and the \
         server reject the manifest with the file:line:column of the field, rather than \
         ignore it.\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(rows: &[Row]) -> Vec<&str> {
        rows.iter().map(|r| r.path.as_str()).collect()
    }

    #[test]
    fn a_type_containing_itself_is_listed_once() {
        let root = json!({
            "type": "object",
            "properties": {
                "tree": { "$ref": "#/definitions/Node" },
                "again": { "$ref": "#" },
            },
            "definitions": {
                "Node": {
                    "type": "object",
                    "properties": {
                        "name": { "type": "string" },
                        "children": { "type": "array", "items": { "$ref": "#/definitions/Node" } },
                        "next": { "anyOf": [{ "$ref": "#/definitions/Node" }, { "type": "null" }] },
                    },
                },
            },
        });
        let rows = rows_of(&root, "K", None);
        assert_eq!(
            paths(&rows),
            ["again", "tree", "tree.children", "tree.name", "tree.next"]
        );
        let by = |p: &str| rows.iter().find(|r| r.path == p).map(|r| r.same_as.clone());
        assert_eq!(by("again"), Some(Some("the top level".to_string())));
        assert_eq!(by("tree.children"), Some(Some("`tree`".to_string())));
        assert_eq!(by("tree.next"), Some(Some("`tree`".to_string())));
        assert_eq!(by("tree.name"), Some(None));
        assert_eq!(rows[2].ty, "array of object");
    }

    #[test]
    fn reference_cycles_and_deep_nesting_end() {
        // `$ref`s that only point at each other.
        let root = json!({
            "properties": { "a": { "$ref": "#/definitions/A" } },
            "definitions": {
                "A": { "$ref": "#/definitions/B" },
                "B": { "$ref": "#/definitions/A" },
            },
        });
        let rows = rows_of(&root, "K", None);
        assert_eq!(paths(&rows), ["a"]);
        assert_eq!(rows[0].ty, "unresolved");

        // A chain of distinct types deeper than the walk goes.
        let mut defs = Map::new();
        for i in 0..3 * MAX_DEPTH {
            defs.insert(
                format!("D{i}"),
                json!({ "type": "object", "properties": { "d": { "$ref": format!("#/definitions/D{}", i + 1) } } }),
            );
        }
        defs.insert(format!("D{}", 3 * MAX_DEPTH), json!({ "type": "string" }));
        let root = json!({
            "properties": { "d": { "$ref": "#/definitions/D0" } },
            "definitions": defs,
        });
        let rows = rows_of(&root, "K", None);
        assert_eq!(rows.len(), MAX_DEPTH + 1);
        assert!(rows.last().is_some_and(|r| r.too_deep));
    }

    #[test]
    fn arrays_maps_and_alternatives_are_named() {
        let root = json!({
            "type": "object",
            "required": ["m"],
            "properties": {
                "m": { "type": "object", "additionalProperties": { "$ref": "#/definitions/V" } },
                "n": { "anyOf": [{ "type": "integer" }, { "type": "string" }] },
                "x": true,
                "e": { "type": "object", "additionalProperties": false },
            },
            "definitions": {
                "V": {
                    "description": "A value. Second sentence.",
                    "type": "object",
                    "properties": { "l": { "type": ["array", "null"], "items": { "type": "string" } } },
                },
            },
        });
        let rows = rows_of(&root, "K", None);
        let row = |p: &str| rows.iter().find(|r| r.path == p).cloned();
        let m = row("m").expect("m");
        assert_eq!((m.ty.as_str(), m.required), ("map of object", true));
        assert_eq!(m.description.as_deref(), Some("A value."));
        assert_eq!(
            row("m.<key>.l").map(|r| r.ty),
            Some("array of string".into())
        );
        assert_eq!(row("n").map(|r| r.ty), Some("integer or string".into()));
        assert_eq!(row("x").map(|r| r.any), Some(true));
        assert_eq!(row("e").map(|r| r.ty), Some("object (empty)".into()));
        assert_eq!(last_name("a.b[]"), "b");
        assert_eq!(last_name("a.<key>"), "a");
    }

    #[test]
    fn the_field_list_is_deterministic_and_complete() {
        let a = fields_markdown();
        assert_eq!(a, fields_markdown());
        // Every kind has its section, and a route's fields are listed once.
        for kind in Kind::ALL {
            assert!(a.contains(&format!("\n## {kind}\n")), "{kind}");
        }
        assert_eq!(
            a.matches("routes[].options.upgrades[].websocket.enabled`")
                .count(),
            1
        );
        assert!(a.contains("| `routes` | array of object | Its fields: as under VirtualService `virtualHost.routes[]`. |"));
        // A field the walk lists for a kind is one the kind's schema has.
        let spec = flat_schema(Kind::Upstream);
        let rows = rows_of(&spec, "Upstream", None);
        assert!(paths(&rows).contains(&"static.hosts[].addr"));
        assert!(paths(&rows).contains(&"sslConfig.sni"));
        assert!(!paths(&rows).iter().any(|p| p.contains("failover")));
    }
}
