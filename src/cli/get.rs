//! `edgeplane get [KIND [NAMESPACE [NAME]]] [-o yaml|json]`: the documents
//! stored in etcd, as stored. YAML: a multi-document stream of the stored
//! texts, each after a `# <key>` comment; JSON: an array of key, kind,
//! namespace, name, modRevision and the parsed document.

use std::process::ExitCode;

use anyhow::Context;
use clap::ValueEnum;

use super::etcd_flags::EtcdArgs;
use crate::source::etcd::layout::parse_key;
use crate::source::etcd::{Store, store::Listing};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum GetFormat {
    Yaml,
    Json,
}

#[derive(clap::Args)]
pub struct Args {
    /// Only this kind (`Upstream`, `upstreams`, any case).
    kind: Option<String>,
    /// Only this namespace.
    namespace: Option<String>,
    /// Only this name.
    name: Option<String>,
    #[arg(short = 'o', long, value_enum, default_value = "yaml")]
    output: GetFormat,
    #[command(flatten)]
    etcd: EtcdArgs,
}

/// Lists the store (each member tried once).
pub(crate) fn list(etcd: EtcdArgs) -> anyhow::Result<(String, Listing)> {
    let cfg = etcd.require()?;
    let prefix = cfg.prefix.clone();
    let mut store = Store::new(&cfg)?;
    let (listing, _) = super::runtime()?
        .block_on(super::apply::read(&mut store, &prefix))
        .with_context(|| format!("cannot read {prefix}/ from etcd"))?;
    Ok((prefix, listing))
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let kind = a
        .kind
        .as_deref()
        .map(super::apply::parse_kind)
        .transpose()?;
    let (prefix, listing) = list(a.etcd)?;
    let mut yaml = String::new();
    let mut json = Vec::new();
    for (key, e) in &listing.entries {
        let Ok(parts) = parse_key(&prefix, key) else {
            continue;
        };
        if kind.is_some_and(|k| k.as_str() != parts.kind)
            || a.namespace.as_ref().is_some_and(|n| n != parts.namespace)
            || a.name.as_ref().is_some_and(|n| n != parts.name)
        {
            continue;
        }
        let text = String::from_utf8_lossy(&e.value);
        match a.output {
            GetFormat::Yaml => {
                yaml.push_str(&format!("---\n# {key}\n{text}"));
                if !text.ends_with('\n') {
                    yaml.push('\n');
                }
            }
            GetFormat::Json => {
                let (document, error) = match serde_saphyr::from_str::<serde_json::Value>(&text) {
                    Ok(v) => (v, None),
                    Err(err) => (serde_json::Value::Null, Some(err.to_string())),
                };
                let mut o = serde_json::json!({
                    "key": key,
                    "kind": parts.kind,
                    "namespace": parts.namespace,
                    "name": parts.name,
                    "modRevision": e.mod_revision,
                    "document": document,
                });
                if let (Some(err), Some(m)) = (error, o.as_object_mut()) {
                    m.insert("error".into(), err.into());
                }
                json.push(o);
            }
        }
    }
    match a.output {
        GetFormat::Yaml => super::out(&yaml)?,
        GetFormat::Json => super::outln(&serde_json::to_string_pretty(&json)?)?,
    }
    Ok(ExitCode::SUCCESS)
}
