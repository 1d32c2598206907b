//! Canonical protobuf bytes: prost encodes a map field in the order of a
//! `HashMap`, which is random per process, so a route with two per-filter
//! configs (or two metadata namespaces, or a `Struct` of two fields) would
//! encode differently on every run, and its content-hash version with it.
//! Envoy would see a "new" RouteConfiguration after every restart, and
//! replicas would disagree.
//!
//! `encode` re-writes prost's bytes with every map's entries sorted (by
//! their encoded bytes), walking the message by the embedded descriptors;
//! everything else is copied as is. Subtrees whose types can hold no map are
//! copied without being parsed, so a RouteConfiguration costs about one more
//! pass over its route actions. `Any` payloads are opaque bytes here: what
//! translation packs into them holds no multi-entry maps.

use std::collections::HashSet;
use std::sync::OnceLock;

use prost::encoding::{WireType, decode_key, decode_varint, encode_key, encode_varint};
use prost::{Message, Name};
use prost_reflect::{DescriptorPool, Kind, MessageDescriptor};

use super::json;

/// `msg`'s protobuf encoding with map entries in a fixed order; prost's own
/// encoding when the type holds no map (or, defensively, when the
/// descriptors are unusable or the bytes do not parse, neither of which
/// happens for bytes prost wrote).
pub fn encode<M: Message + Name>(msg: &M) -> Vec<u8> {
    let bytes = msg.encode_to_vec();
    let Some((pool, maps)) = index() else {
        return bytes;
    };
    let Some(desc) = pool.get_message_by_name(&M::full_name()) else {
        return bytes;
    };
    if !maps.contains(desc.full_name()) {
        return bytes;
    }
    let mut out = Vec::with_capacity(bytes.len());
    match rewrite(&desc, maps, &bytes, &mut out) {
        Some(()) => out,
        None => bytes,
    }
}

/// The byte ranges of every length-delimited field `number` at the top
/// level of the message `msg`, in order; `None` if the bytes do not parse.
/// Nothing below the top level is decoded.
pub fn length_delimited(msg: &[u8], number: u32) -> Option<Vec<std::ops::Range<usize>>> {
    let mut ranges = Vec::new();
    let mut buf = msg;
    while !buf.is_empty() {
        let (field, wire) = decode_key(&mut buf).ok()?;
        if wire != WireType::LengthDelimited {
            skip(wire, &mut buf)?;
            continue;
        }
        let len = usize::try_from(decode_varint(&mut buf).ok()?).ok()?;
        if len > buf.len() {
            return None;
        }
        let start = msg.len() - buf.len();
        if field == number {
            ranges.push(start..start + len);
        }
        buf = &buf[len..];
    }
    Some(ranges)
}

/// Where prost writes field `number` of an `M` in `msg`, the encoding of an
/// `M` in which that field is empty: before the first top-level field that
/// prost writes after it. prost writes fields in tag order, a oneof at its
/// lowest tag (a `Route`'s action, tags 2, 3, 7, 17 and 18, comes before its
/// name, 14, whichever it is). `None` if `M` is unknown to the embedded
/// descriptors or the bytes do not parse.
pub fn field_offset<M: Name>(msg: &[u8], number: u32) -> Option<usize> {
    let (pool, _) = index()?;
    let desc = pool.get_message_by_name(&M::full_name())?;
    let order = |tag: u32| -> u32 {
        desc.get_field(tag)
            .and_then(|f| f.containing_oneof())
            .and_then(|o| o.fields().map(|f| f.number()).min())
            .unwrap_or(tag)
    };
    let after = order(number);
    let mut buf = msg;
    while !buf.is_empty() {
        let start = msg.len() - buf.len();
        let (field, wire) = decode_key(&mut buf).ok()?;
        if order(field) > after {
            return Some(start);
        }
        if wire == WireType::LengthDelimited {
            let len = usize::try_from(decode_varint(&mut buf).ok()?).ok()?;
            buf = buf.get(len..)?;
        } else {
            skip(wire, &mut buf)?;
        }
    }
    Some(msg.len())
}

/// The descriptor pool and the names of the message types that hold a map
/// field themselves or in some nested message (not through `Any`).
fn index() -> Option<(&'static DescriptorPool, &'static HashSet<String>)> {
    static MAPS: OnceLock<Option<HashSet<String>>> = OnceLock::new();
    let pool = json::pool().ok()?;
    let maps = MAPS
        .get_or_init(|| {
            let all: Vec<MessageDescriptor> = pool.all_messages().collect();
            let mut set: HashSet<String> = all
                .iter()
                .filter(|m| m.fields().any(|f| f.is_map()))
                .map(|m| m.full_name().to_string())
                .collect();
            // Grow to a fixpoint: a type holding a map-holding type.
            loop {
                let before = set.len();
                for m in &all {
                    if set.contains(m.full_name()) {
                        continue;
                    }
                    let holds = m.fields().any(|f| match f.kind() {
                        Kind::Message(inner) => set.contains(inner.full_name()),
                        _ => false,
                    });
                    if holds {
                        set.insert(m.full_name().to_string());
                    }
                }
                if set.len() == before {
                    break;
                }
            }
            Some(set)
        })
        .as_ref()?;
    Some((pool, maps))
}

/// Copies the fields of one message (`input`, of type `desc`) to `out`,
/// sorting each run of map entries and rewriting nested messages that may
/// hold maps.
fn rewrite(
    desc: &MessageDescriptor,
    maps: &HashSet<String>,
    input: &[u8],
    out: &mut Vec<u8>,
) -> Option<()> {
    // Entries of the map field being read: (field number, encoded entries).
    let mut run: Option<(u32, Vec<Vec<u8>>)> = None;
    let mut buf = input;
    while !buf.is_empty() {
        let start = input.len() - buf.len();
        let (number, wire) = decode_key(&mut buf).ok()?;
        let field = desc.get_field(number);
        if wire != WireType::LengthDelimited {
            flush(&mut run, out);
            skip(wire, &mut buf)?;
            out.extend_from_slice(&input[start..input.len() - buf.len()]);
            continue;
        }
        let len = usize::try_from(decode_varint(&mut buf).ok()?).ok()?;
        let payload = buf.get(..len)?;
        buf = &buf[len..];
        let end = input.len() - buf.len();
        let nested = field.as_ref().and_then(|f| match f.kind() {
            Kind::Message(m) if maps.contains(m.full_name()) => Some(m),
            _ => None,
        });
        let is_map = field.as_ref().is_some_and(|f| f.is_map());
        // The field's bytes, with a nested message rewritten if need be.
        let mut bytes = Vec::new();
        match &nested {
            Some(m) => {
                let mut inner = Vec::with_capacity(payload.len());
                rewrite(m, maps, payload, &mut inner)?;
                encode_key(number, WireType::LengthDelimited, &mut bytes);
                encode_varint(inner.len() as u64, &mut bytes);
                bytes.extend_from_slice(&inner);
            }
            None => bytes.extend_from_slice(&input[start..end]),
        }
        if is_map {
            match &mut run {
                Some((n, entries)) if *n == number => entries.push(bytes),
                _ => {
                    flush(&mut run, out);
                    run = Some((number, vec![bytes]));
                }
            }
        } else {
            flush(&mut run, out);
            out.extend_from_slice(&bytes);
        }
    }
    flush(&mut run, out);
    Some(())
}

fn flush(run: &mut Option<(u32, Vec<Vec<u8>>)>, out: &mut Vec<u8>) {
    if let Some((_, mut entries)) = run.take() {
        entries.sort();
        for e in entries {
            out.extend_from_slice(&e);
        }
    }
}

/// Steps over a value of a non-length-delimited wire type.
fn skip(wire: WireType, buf: &mut &[u8]) -> Option<()> {
    let n = match wire {
        WireType::Varint => {
            decode_varint(buf).ok()?;
            0
        }
        WireType::SixtyFourBit => 8,
        WireType::ThirtyTwoBit => 4,
        WireType::LengthDelimited | WireType::StartGroup | WireType::EndGroup => return None,
    };
    *buf = buf.get(n..)?;
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::Metadata;
    use envoy_types::pb::envoy::config::route::v3::{Route, RouteConfiguration, VirtualHost};
    use envoy_types::pb::google::protobuf::{Any, Struct, Value, value};

    fn route_with_maps(order: &[usize]) -> RouteConfiguration {
        let names = ["a.filter", "b.filter", "c.filter", "d.filter", "e.filter"];
        let mut typed = std::collections::HashMap::new();
        let mut meta = std::collections::HashMap::new();
        for &i in order {
            typed.insert(
                names[i].to_string(),
                Any {
                    type_url: format!("type.googleapis.com/x.{i}"),
                    value: vec![i as u8],
                },
            );
            let fields = order
                .iter()
                .map(|j| {
                    (
                        format!("k{j}"),
                        Value {
                            kind: Some(value::Kind::NumberValue(*j as f64)),
                        },
                    )
                })
                .collect();
            meta.insert(names[i].to_string(), Struct { fields });
        }
        RouteConfiguration {
            name: "rc".into(),
            virtual_hosts: vec![VirtualHost {
                name: "vh".into(),
                domains: vec!["*".into()],
                routes: vec![Route {
                    name: "r".into(),
                    typed_per_filter_config: typed,
                    metadata: Some(Metadata {
                        filter_metadata: meta,
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn maps_encode_the_same_whatever_their_hash_order() {
        let first = encode(&route_with_maps(&[0, 1, 2, 3, 4]));
        for order in [[4, 3, 2, 1, 0], [2, 0, 4, 1, 3], [1, 3, 0, 4, 2]] {
            // Fresh HashMaps (fresh random seeds) each time.
            for _ in 0..8 {
                assert_eq!(encode(&route_with_maps(&order)), first);
            }
        }
        // Still the same message.
        let back = RouteConfiguration::decode(first.as_slice()).expect("decodes");
        assert_eq!(back, route_with_maps(&[0, 1, 2, 3, 4]));
    }

    #[test]
    fn types_without_maps_keep_prosts_bytes() {
        let m = envoy_types::pb::envoy::config::route::v3::RouteMatch::default();
        assert_eq!(encode(&m), m.encode_to_vec());
    }
}
