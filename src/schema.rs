//! JSON Schemas for the manifests edgeplane reads (`edgeplane schema`).
//!
//! Generated with `schemars` from the same serde types the parser uses
//! (`crate::manifest::model`), so a field the parser knows is a field the
//! schema knows: `deny_unknown_fields` becomes `additionalProperties: false`.
//! Only `apiVersion` and `kind` are pinned here, to the constants the parser
//! checks. What the parser checks beyond the types (references, durations,
//! `metadata` inside `spec`, Gloo features it refuses by name) is left to
//! `edgeplane validate`.

use std::path::Path;

use schemars::{JsonSchema, Schema, SchemaGenerator, generate::SchemaSettings};
use serde_json::{Map, Value, json};

use crate::manifest::model::{
    Envelope, GatewaySpec, RouteTableSpec, UpstreamGroupSpec, UpstreamSpec, VirtualServiceSpec,
};
use crate::manifest::parse::{GATEWAY_API, GLOO_API};

/// The kinds edgeplane parses: `(kind, apiVersion, plural used by Gloo's
/// flat file layout)`.
pub const KINDS: &[(&str, &str, &str)] = &[
    ("Gateway", GATEWAY_API, "gateways"),
    ("VirtualService", GATEWAY_API, "virtualservices"),
    ("RouteTable", GATEWAY_API, "routetables"),
    ("Upstream", GLOO_API, "upstreams"),
    ("UpstreamGroup", GLOO_API, "upstreamgroups"),
];

const DIALECT: &str = "http://json-schema.org/draft-07/schema#";

fn generator() -> SchemaGenerator {
    // Draft 7: the dialect yaml-language-server understands best.
    SchemaSettings::draft07().into_generator()
}

fn generate<T: JsonSchema>() -> Value {
    let schema: Schema = generator().into_root_schema_for::<T>();
    schema.to_value()
}

fn api_of(kind: &str) -> Option<&'static str> {
    KINDS
        .iter()
        .find(|(k, _, _)| *k == kind)
        .map(|(_, a, _)| *a)
}

/// The schema of a whole document (`apiVersion`, `kind`, `metadata`,
/// `spec`) of `kind`, or `None` for a kind edgeplane does not parse.
pub fn document_schema(kind: &str) -> Option<Value> {
    let api = api_of(kind)?;
    let mut schema = match kind {
        "Gateway" => generate::<Envelope<GatewaySpec>>(),
        "VirtualService" => generate::<Envelope<VirtualServiceSpec>>(),
        "RouteTable" => generate::<Envelope<RouteTableSpec>>(),
        "Upstream" => generate::<Envelope<UpstreamSpec>>(),
        "UpstreamGroup" => generate::<Envelope<UpstreamGroupSpec>>(),
        _ => return None,
    };
    if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        props.insert("apiVersion".into(), json!({ "const": api }));
        props.insert("kind".into(), json!({ "const": kind }));
    }
    set_title(&mut schema, &format!("edgeplane {api} {kind}"));
    Some(schema)
}

/// The schema of a document of `kind` in Gloo's flat file layout
/// (`<plural>/<namespace>/<name>.yaml`: the spec's fields at the top level
/// beside `metadata`, no `kind`).
pub fn flat_schema(kind: &str) -> Option<Value> {
    let api = api_of(kind)?;
    let mut schema = match kind {
        "Gateway" => generate::<GatewaySpec>(),
        "VirtualService" => generate::<VirtualServiceSpec>(),
        "RouteTable" => generate::<RouteTableSpec>(),
        "Upstream" => generate::<UpstreamSpec>(),
        "UpstreamGroup" => generate::<UpstreamGroupSpec>(),
        _ => return None,
    };
    set_title(
        &mut schema,
        &format!("edgeplane {api} {kind} (Gloo file layout)"),
    );
    Some(schema)
}

/// The kind Gloo's flat file layout implies for `path`, as the parser reads it.
pub fn flat_kind(path: &Path) -> Option<&'static str> {
    let plural = path.parent()?.parent()?.file_name()?.to_str()?;
    KINDS
        .iter()
        .find(|(_, _, p)| *p == plural)
        .map(|(k, _, _)| *k)
}

fn set_title(schema: &mut Value, title: &str) {
    if let Some(obj) = schema.as_object_mut() {
        obj.insert("title".into(), Value::String(title.to_string()));
    }
}

/// The file name of `kind`'s schema: `gateway.solo.io.v1.VirtualService.json`.
pub fn file_name(kind: &str) -> Option<String> {
    let api = api_of(kind)?;
    Some(format!("{}.{kind}.json", api.replace('/', ".")))
}

/// The file name of `kind`'s flat-layout schema.
pub fn flat_file_name(kind: &str) -> Option<String> {
    let api = api_of(kind)?;
    Some(format!("{}.{kind}.flat.json", api.replace('/', ".")))
}

/// One schema for any document edgeplane parses: each kind's schema under
/// `definitions`, chosen by `kind` (`if`/`then`, so an editor reports the
/// errors of the kind written, not of every kind), and `kind` limited to
/// the kinds edgeplane reads.
pub fn all_schema() -> Value {
    let mut defs = Map::new();
    let mut branches = Vec::new();
    for (kind, _, _) in KINDS {
        let Some(mut schema) = document_schema(kind) else {
            continue;
        };
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
        defs.insert((*kind).to_string(), schema);
        branches.push(json!({
            "if": { "properties": { "kind": { "const": kind } }, "required": ["kind"] },
            "then": { "$ref": format!("#/definitions/{kind}") },
        }));
    }
    let kinds: Vec<&str> = KINDS.iter().map(|(k, _, _)| *k).collect();
    json!({
        "$schema": DIALECT,
        "title": "edgeplane manifest",
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
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
    for (kind, _, _) in KINDS {
        if let (Some(name), Some(schema)) = (file_name(kind), document_schema(kind)) {
            out.push((name, schema));
        }
        if let (Some(name), Some(schema)) = (flat_file_name(kind), flat_schema(kind)) {
            out.push((name, schema));
        }
    }
    out.push(("all.json".to_string(), all_schema()));
    out
}

/// `edgeplane schema`: writes every schema file into `out`, or prints
/// `all.json` to stdout when `out` is `None`.
pub fn run(out: Option<&Path>) -> anyhow::Result<()> {
    use anyhow::Context;
    match out {
        None => {
            let text = serde_json::to_string_pretty(&all_schema())?;
            println!("{text}");
        }
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            for (name, schema) in all_files() {
                let path = dir.join(&name);
                let mut text = serde_json::to_string_pretty(&schema)?;
                text.push('\n');
                std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?;
                println!("{}", path.display());
            }
        }
    }
    Ok(())
}
