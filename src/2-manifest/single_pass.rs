//! One pass over a whole manifest (`apiVersion`, `kind`, `metadata`, then
//! `spec`), for the common case: parsing is most of a load's cost, and the
//! loose header pass of `parse` walks the whole document a first time just
//! to learn its kind (about 40 % of parsing a 10,000-route VirtualService).
//!
//! Here the kind, read before `spec`, picks the spec's type while the
//! document is walked once. Anything else — `spec` before `kind`, an
//! unknown kind, a Secret (no `spec`), Gloo's flat form, or any error at
//! all — gives `None`, and `parse` takes its two-pass path, which produces
//! every diagnostic exactly as before. On success the result is what that
//! path's strict `Envelope<S>` parse would give: the same fields, required
//! and unknown alike, in the same document.

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_saphyr::Spanned;

use super::kind::Kind;
use super::parse::DocumentBody;
use super::raw::{
    FlatFields, GatewaySpec, Metadata, RouteOptionSpec, RouteTableSpec, UpstreamGroupSpec,
    UpstreamSpec, VirtualHostOptionSpec, VirtualServiceSpec,
};

/// A whole-manifest document, walked once.
pub(super) struct Parsed {
    pub api_version: String,
    pub kind: Spanned<String>,
    pub metadata: Metadata,
    pub body: DocumentBody,
}

/// The document in one pass, or `None` (then the two-pass path decides).
pub(super) fn parse(doc_text: &str) -> Option<Parsed> {
    serde_saphyr::from_str::<OnePass>(doc_text)
        .ok()
        .map(|p| p.0)
}

/// The envelope's fields, as `raw::Envelope` names them.
const FIELDS: &[&str] = &["apiVersion", "kind", "metadata", "spec", "status"];

struct OnePass(Parsed);

impl<'de> Deserialize<'de> for OnePass {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_struct("Envelope", FIELDS, EnvelopeVisitor)
    }
}

struct EnvelopeVisitor;

impl<'de> Visitor<'de> for EnvelopeVisitor {
    type Value = OnePass;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a manifest: apiVersion, kind, metadata, spec")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OnePass, A::Error> {
        let mut api_version: Option<String> = None;
        let mut kind: Option<Spanned<String>> = None;
        let mut metadata: Option<Metadata> = None;
        let mut body: Option<DocumentBody> = None;
        let mut status = false;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "apiVersion" if api_version.is_none() => api_version = Some(map.next_value()?),
                "kind" if kind.is_none() => kind = Some(map.next_value()?),
                "metadata" if metadata.is_none() => metadata = Some(map.next_value()?),
                "spec" if body.is_none() => {
                    let k = kind
                        .as_ref()
                        .ok_or_else(|| de::Error::custom("`spec` before `kind`"))?;
                    let known: Kind = k
                        .value
                        .parse()
                        .map_err(|_| de::Error::custom("unknown kind"))?;
                    body = Some(map.next_value_seed(SpecOf(known))?);
                }
                "status" if !status => {
                    map.next_value::<IgnoredAny>()?;
                    status = true;
                }
                other => return Err(de::Error::unknown_field(other, FIELDS)),
            }
        }
        match (api_version, kind, metadata, body) {
            (Some(api_version), Some(kind), Some(metadata), Some(body)) => Ok(OnePass(Parsed {
                api_version,
                kind,
                metadata,
                body,
            })),
            _ => Err(de::Error::custom("a field is missing")),
        }
    }
}

/// `spec` parsed as `Kind`'s spec type.
struct SpecOf(Kind);

/// `S` from `d`, unless it carries `metadata`/`status` (the two-pass path
/// reports that).
fn spec<'de, S, D>(d: D) -> Result<S, D::Error>
where
    S: Deserialize<'de> + FlatFields,
    D: Deserializer<'de>,
{
    let s = S::deserialize(d)?;
    if s.has_flat_fields() {
        return Err(de::Error::custom("`metadata` or `status` inside `spec`"));
    }
    Ok(s)
}

impl<'de> DeserializeSeed<'de> for SpecOf {
    type Value = DocumentBody;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<DocumentBody, D::Error> {
        Ok(match self.0 {
            Kind::Gateway => DocumentBody::Gateway(Box::new(spec::<GatewaySpec, _>(d)?)),
            Kind::VirtualService => DocumentBody::VirtualService(spec::<VirtualServiceSpec, _>(d)?),
            Kind::RouteTable => DocumentBody::RouteTable(spec::<RouteTableSpec, _>(d)?),
            Kind::Upstream => DocumentBody::Upstream(Box::new(spec::<UpstreamSpec, _>(d)?)),
            Kind::UpstreamGroup => DocumentBody::UpstreamGroup(spec::<UpstreamGroupSpec, _>(d)?),
            Kind::VirtualHostOption => {
                DocumentBody::VirtualHostOption(Box::new(spec::<VirtualHostOptionSpec, _>(d)?))
            }
            Kind::RouteOption => {
                DocumentBody::RouteOption(Box::new(spec::<RouteOptionSpec, _>(d)?))
            }
            // Gloo's Secret has no `spec`: its fields sit beside `metadata`.
            Kind::Secret => return Err(de::Error::custom("a Secret has no `spec`")),
        })
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::manifest::parse::split_documents;
    use crate::manifest::raw::{Envelope, Metadata};

    /// The strict two-pass parse of `text` as `kind`, for comparison.
    fn two_pass(kind: Kind, text: &str) -> Option<String> {
        fn env<S: serde::de::DeserializeOwned + std::fmt::Debug>(text: &str) -> Option<String> {
            let e: Envelope<S> = serde_saphyr::from_str(text).ok()?;
            Some(format!("{:?}|{:?}|{:?}", e.api_version, e.kind, e.spec))
        }
        match kind {
            Kind::Gateway => env::<GatewaySpec>(text),
            Kind::VirtualService => env::<VirtualServiceSpec>(text),
            Kind::RouteTable => env::<RouteTableSpec>(text),
            Kind::Upstream => env::<UpstreamSpec>(text),
            Kind::UpstreamGroup => env::<UpstreamGroupSpec>(text),
            Kind::VirtualHostOption => env::<VirtualHostOptionSpec>(text),
            Kind::RouteOption => env::<RouteOptionSpec>(text),
            Kind::Secret => None,
        }
    }

    fn one_pass(p: &Parsed) -> String {
        let spec = match &p.body {
            DocumentBody::Gateway(s) => format!("{s:?}"),
            DocumentBody::VirtualService(s) => format!("{s:?}"),
            DocumentBody::RouteTable(s) => format!("{s:?}"),
            DocumentBody::Upstream(s) => format!("{s:?}"),
            DocumentBody::UpstreamGroup(s) => format!("{s:?}"),
            DocumentBody::VirtualHostOption(s) => format!("{s:?}"),
            DocumentBody::RouteOption(s) => format!("{s:?}"),
            DocumentBody::Secret(s) => format!("{s:?}"),
        };
        format!("{:?}|{:?}|{spec}", p.api_version, p.kind.value)
    }

    /// Over every manifest the repository holds (fixtures, fuzz seeds,
    /// examples): whenever the one pass succeeds, it gives what the strict
    /// two-pass parse gives, field for field (spans included), and the
    /// strict parse succeeds too.
    #[test]
    fn one_pass_equals_the_strict_two_pass_parse_on_every_manifest_in_the_repository() {
        let files = super::super::parse::repository_manifests();
        assert!(files.len() > 50, "{} manifest files", files.len());
        let (mut taken, mut declined) = (0, 0);
        for f in &files {
            let Ok(text) = std::fs::read_to_string(f) else {
                continue;
            };
            for (_, doc) in split_documents(&text) {
                match parse(&doc) {
                    Some(p) => {
                        taken += 1;
                        let kind: Kind = p.kind.value.parse().expect("a known kind");
                        let meta: Option<Metadata> =
                            serde_saphyr::from_str::<Envelope<IgnoredAny>>(&doc)
                                .ok()
                                .map(|e| e.metadata);
                        assert_eq!(
                            meta.map(|m| format!("{m:?}")),
                            Some(format!("{:?}", p.metadata)),
                            "{}",
                            f.display()
                        );
                        assert_eq!(
                            two_pass(kind, &doc),
                            Some(one_pass(&p)),
                            "{}:\n{doc}",
                            f.display()
                        );
                    }
                    None => declined += 1,
                }
            }
        }
        assert!(
            taken > 100 && declined > 10,
            "{taken} one-pass, {declined} declined"
        );
    }

    #[test]
    fn declines_what_the_two_pass_path_must_judge() {
        let vs = "apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata: {name: a}\nspec:\n  virtualHost: {domains: ['*']}\n";
        assert!(parse(vs).is_some());
        // `spec` before `kind`: the type is not known in time.
        let spec_first = "spec:\n  virtualHost: {domains: ['*']}\napiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata: {name: a}\n";
        assert!(parse(spec_first).is_none());
        for bad in [
            vs.replace("kind: VirtualService", "kind: Nope"),
            vs.replace("metadata:", "extra: 1\nmetadata:"),
            vs.replace("metadata: {name: a}", "metadata: {}"),
            vs.replace("domains:", "domainz:"),
            format!("{vs}kind: VirtualService\n"),
            format!("{vs}  metadata: {{name: b}}\n"),
        ] {
            assert!(parse(&bad).is_none(), "{bad}");
        }
        let secret =
            "apiVersion: gloo.solo.io/v1\nkind: Secret\nmetadata: {name: s}\ntls: {certChain: x}\n";
        assert!(parse(secret).is_none());
    }
}
