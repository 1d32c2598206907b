//! The JSON Schemas of `edgeplane schema` accept every sample and fixture
//! manifest and refuse a misspelled field.
//!
//! The check is a small validator written here for the keywords schemars
//! emits (listed in `KNOWN`); a keyword it does not know fails the test
//! rather than being skipped, so it cannot silently check less than the
//! schema says.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use edgeplane::manifest::Kind;
use edgeplane::manifest::schema;

const KNOWN: &[&str] = &[
    "$ref",
    "$schema",
    "additionalProperties",
    "allOf",
    "anyOf",
    "oneOf",
    "const",
    "default",
    "definitions",
    "description",
    "enum",
    "format",
    "if",
    "then",
    "else",
    "items",
    "minimum",
    "maximum",
    "properties",
    "required",
    "title",
    "type",
];

/// Errors of `value` against `schema` (empty when valid), each with its
/// JSON path.
fn check(root: &Value, schema: &Value, value: &Value, path: &str, errs: &mut Vec<String>) {
    let obj = match schema {
        Value::Bool(true) => return,
        Value::Bool(false) => {
            errs.push(format!("{path}: not allowed"));
            return;
        }
        Value::Object(o) => o,
        _ => {
            errs.push(format!("{path}: schema is not an object"));
            return;
        }
    };
    for key in obj.keys() {
        if !KNOWN.contains(&key.as_str()) {
            errs.push(format!(
                "{path}: schema keyword `{key}` unknown to this checker"
            ));
        }
    }
    if let Some(Value::String(r)) = obj.get("$ref") {
        match r
            .strip_prefix("#/definitions/")
            .and_then(|n| root.get("definitions")?.get(n))
        {
            Some(target) => check(root, target, value, path, errs),
            None => errs.push(format!("{path}: unresolvable $ref {r}")),
        }
    }
    if let Some(t) = obj.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        if !types.iter().any(|t| has_type(value, t)) {
            errs.push(format!("{path}: expected {types:?}, got {value}"));
            return;
        }
    }
    if let Some(c) = obj.get("const")
        && c != value
    {
        errs.push(format!("{path}: expected {c}, got {value}"));
    }
    if let Some(Value::Array(options)) = obj.get("enum")
        && !options.contains(value)
    {
        errs.push(format!("{path}: {value} is not one of {options:?}"));
    }
    if let Some(min) = obj.get("minimum").and_then(Value::as_f64)
        && let Some(v) = value.as_f64()
        && v < min
    {
        errs.push(format!("{path}: {v} < minimum {min}"));
    }
    if let Some(max) = obj.get("maximum").and_then(Value::as_f64)
        && let Some(v) = value.as_f64()
        && v > max
    {
        errs.push(format!("{path}: {v} > maximum {max}"));
    }
    if let Some(Value::Array(all)) = obj.get("allOf") {
        for s in all {
            check(root, s, value, path, errs);
        }
    }
    if let Some(Value::Array(any)) = obj.get("anyOf") {
        // Every branch's errors are kept, so a misspelled field deep inside
        // an `Option<…>` (anyOf: [{$ref}, {type: null}]) is still named.
        let mut branch_errs = Vec::new();
        let ok = any.iter().any(|s| {
            let mut e = Vec::new();
            check(root, s, value, path, &mut e);
            let ok = e.is_empty();
            branch_errs.extend(e);
            ok
        });
        if !ok {
            errs.push(format!(
                "{path}: matches none of anyOf: {}",
                branch_errs.join("; ")
            ));
        }
    }
    if let Some(Value::Array(one)) = obj.get("oneOf") {
        let n = one
            .iter()
            .filter(|s| {
                let mut e = Vec::new();
                check(root, s, value, path, &mut e);
                e.is_empty()
            })
            .count();
        if n != 1 {
            errs.push(format!("{path}: matches {n} of oneOf"));
        }
    }
    if let Some(cond) = obj.get("if") {
        let mut e = Vec::new();
        check(root, cond, value, path, &mut e);
        let branch = if e.is_empty() {
            obj.get("then")
        } else {
            obj.get("else")
        };
        if let Some(b) = branch {
            check(root, b, value, path, errs);
        }
    }
    if let Value::Object(map) = value {
        if let Some(Value::Array(req)) = obj.get("required") {
            for r in req.iter().filter_map(Value::as_str) {
                if !map.contains_key(r) {
                    errs.push(format!("{path}: missing required field `{r}`"));
                }
            }
        }
        let props = obj.get("properties").and_then(Value::as_object);
        for (k, v) in map {
            let sub = format!("{path}.{k}");
            match props.and_then(|p| p.get(k)) {
                Some(s) => check(root, s, v, &sub, errs),
                None => match obj.get("additionalProperties") {
                    Some(Value::Bool(false)) => errs.push(format!("{path}: unknown field `{k}`")),
                    Some(s) => check(root, s, v, &sub, errs),
                    None => {}
                },
            }
        }
    }
    if let (Value::Array(items), Some(s)) = (value, obj.get("items")) {
        for (i, v) in items.iter().enumerate() {
            check(root, s, v, &format!("{path}[{i}]"), errs);
        }
    }
}

fn has_type(v: &Value, t: &str) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "string" => v.is_string(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        _ => false,
    }
}

fn errors(schema: &Value, doc: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    check(schema, schema, doc, "$", &mut errs);
    errs
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            yaml_files(&path, out)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            out.push(path);
        }
    }
    Ok(())
}

fn manifest_files() -> Result<Vec<PathBuf>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    yaml_files(&root.join("examples"), &mut files)?;
    yaml_files(&root.join("deploy/compose/manifests"), &mut files)?;
    for fixture in std::fs::read_dir(root.join("tests/fixtures"))? {
        let input = fixture?.path().join("input");
        if input.is_dir() {
            yaml_files(&input, &mut files)?;
        }
    }
    files.sort();
    Ok(files)
}

/// YAML 1.2 scalars, as yaml-language-server reads them: `yes` is a string
/// (the matchers-actions fixture has `value: yes`), not YAML 1.1's `true`.
fn yaml12() -> serde_saphyr::Options {
    serde_saphyr::options! { strict_booleans: true }
}

fn documents(path: &Path) -> Result<Vec<Value>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let docs: Vec<Value> = serde_saphyr::from_multiple_with_options(&text, yaml12())
        .with_context(|| format!("parsing {}", path.display()))?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

/// The schema `doc` (from `path`) is checked against, as the parser picks
/// its kind: `kind:` when written, else Gloo's flat file layout.
fn schema_for(path: &Path, doc: &Value) -> Result<(String, Value)> {
    if let Some(kind) = doc.get("kind").and_then(Value::as_str) {
        let kind: Kind = kind.parse()?;
        return Ok((kind.to_string(), schema::document_schema(kind)));
    }
    let (kind, _) =
        Kind::of_flat_path(path).with_context(|| format!("{}: no kind", path.display()))?;
    Ok((format!("{kind} (flat)"), schema::flat_schema(kind)))
}

#[test]
fn every_sample_and_fixture_manifest_passes() -> Result<()> {
    let all = schema::all_schema();
    let mut checked = 0;
    let mut flat = 0;
    let mut failures = Vec::new();
    for path in manifest_files()? {
        for doc in documents(&path)? {
            let (kind, s) = schema_for(&path, &doc)?;
            let mut errs = errors(&s, &doc);
            if kind.ends_with("(flat)") {
                flat += 1;
            } else {
                // The combined schema agrees with the per-kind one.
                errs.extend(
                    errors(&all, &doc)
                        .into_iter()
                        .map(|e| format!("all.json: {e}")),
                );
            }
            checked += 1;
            for e in errs {
                failures.push(format!("{} [{kind}]: {e}", path.display()));
            }
        }
    }
    if !failures.is_empty() {
        bail!("schema check failed:\n{}", failures.join("\n"));
    }
    eprintln!("{checked} documents checked ({flat} in Gloo's flat file layout)");
    // Samples, compose manifests and the 12 fixtures hold well over this.
    assert!(checked >= 30, "only {checked} documents checked");
    assert!(flat >= 4, "only {flat} flat-layout documents checked");
    Ok(())
}

const MISSPELLED: &str = r#"
apiVersion: gateway.solo.io/v1
kind: VirtualService
metadata:
  name: demo
spec:
  virtualHost:
    domains: ['*']
    routes:
      - matchers:
          - prefx: /
        routeAction:
          single:
            upstream: { name: echo }
"#;

#[test]
fn a_misspelled_field_fails() -> Result<()> {
    let doc: Value = serde_saphyr::from_str(MISSPELLED).context("parsing")?;
    let vs = schema::document_schema(Kind::VirtualService);
    let errs = errors(&vs, &doc);
    assert!(
        errs.iter().any(|e| e.contains("unknown field `prefx`")),
        "{errs:?}"
    );
    let errs = errors(&schema::all_schema(), &doc);
    assert!(
        errs.iter().any(|e| e.contains("unknown field `prefx`")),
        "{errs:?}"
    );
    // Corrected, it passes.
    let fixed: Value = serde_saphyr::from_str(&MISSPELLED.replace("prefx", "prefix"))?;
    assert_eq!(errors(&vs, &fixed), Vec::<String>::new());
    Ok(())
}

#[test]
fn wrong_kind_or_api_version_fails() -> Result<()> {
    let doc: Value = serde_saphyr::from_str(&MISSPELLED.replace("prefx", "prefix"))?;
    let mut wrong_api = doc.clone();
    wrong_api["apiVersion"] = Value::from("gloo.solo.io/v1");
    let vs = schema::document_schema(Kind::VirtualService);
    assert!(!errors(&vs, &wrong_api).is_empty());
    let mut unknown_kind = doc;
    unknown_kind["kind"] = Value::from("Settings");
    assert!(!errors(&schema::all_schema(), &unknown_kind).is_empty());
    Ok(())
}

#[test]
fn schema_files_are_named_per_kind() {
    let names: Vec<String> = schema::all_files().into_iter().map(|(n, _)| n).collect();
    for expected in [
        "gateway.solo.io.v1.Gateway.json",
        "gateway.solo.io.v1.VirtualService.json",
        "gateway.solo.io.v1.RouteTable.json",
        "gateway.solo.io.v1.VirtualHostOption.json",
        "gateway.solo.io.v1.RouteOption.json",
        "gloo.solo.io.v1.Upstream.json",
        "gloo.solo.io.v1.UpstreamGroup.json",
        "all.json",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing: {names:?}"
        );
    }
}

#[test]
fn the_command_writes_every_file() -> Result<()> {
    let dir = tempfile::tempdir().context("tempdir")?;
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_edgeplane"))
        .args(["schema", "--out"])
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .status()
        .context("running edgeplane schema")?;
    assert!(status.success(), "{status}");
    for (name, schema) in schema::all_files() {
        let path = dir.path().join(&name);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let written: Value = serde_json::from_str(&text).context("parsing the written schema")?;
        assert_eq!(written, schema, "{name}");
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_edgeplane"))
        .arg("schema")
        .output()
        .context("running edgeplane schema")?;
    assert!(out.status.success());
    let printed: Value = serde_json::from_slice(&out.stdout).context("stdout is not JSON")?;
    assert_eq!(printed, schema::all_schema());
    Ok(())
}
