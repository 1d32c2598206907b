//! Responses that share the snapshot's encoded bytes.
//!
//! Envoy's generated `DiscoveryResponse` owns its resources (`Any` with a
//! `Vec<u8>`), so every stream would copy every resource before prost copies
//! it again into the gRPC frame. These two types hold `Arc<Encoded>` instead:
//! a resource is encoded once per change (`snapshot`) and each stream only
//! writes those bytes into its own frame. A queued response costs a few
//! pointers, not a copy of the config.
//!
//! On the wire they are exactly `DiscoveryResponse` and
//! `DeltaDiscoveryResponse` (field numbers from
//! `envoy/service/discovery/v3/discovery.proto`); the tests below check the
//! bytes against the generated types. They are never decoded.

use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::ControlPlane;
use prost::bytes::{Buf, BufMut};
use prost::encoding::{self, DecodeContext, WireType};
use prost::{DecodeError, Message};

use crate::snapshot::Encoded;

/// `envoy.service.discovery.v3.DiscoveryResponse`, resources shared.
#[derive(Clone, Debug, Default)]
pub struct SotwResponse {
    pub version_info: String,
    pub resources: Vec<Arc<Encoded>>,
    pub type_url: String,
    pub nonce: String,
    pub control_plane: Option<ControlPlane>,
}

/// `envoy.service.discovery.v3.DeltaDiscoveryResponse`, resources shared.
/// Each resource goes out as a `Resource` named by `Encoded::name` whose
/// version is `Encoded::hash`.
#[derive(Clone, Debug, Default)]
pub struct DeltaResponse {
    pub system_version_info: String,
    pub resources: Vec<Arc<Encoded>>,
    pub type_url: String,
    pub nonce: String,
    pub control_plane: Option<ControlPlane>,
    pub removed_resources: Vec<String>,
}

fn string_len(tag: u32, s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        encoding::string::encoded_len(tag, &s.to_string())
    }
}

fn put_string(tag: u32, s: &str, buf: &mut impl BufMut) {
    if !s.is_empty() {
        encoding::encode_key(tag, WireType::LengthDelimited, buf);
        encoding::encode_varint(s.len() as u64, buf);
        buf.put_slice(s.as_bytes());
    }
}

/// `Resource { version = 1, resource = 2, name = 3 }`: body length.
fn delta_resource_len(e: &Encoded) -> usize {
    string_len(3, &e.name) + string_len(1, &e.hash) + encoding::message::encoded_len(2, &e.any)
}

impl Message for SotwResponse {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        put_string(1, &self.version_info, buf);
        for e in &self.resources {
            encoding::message::encode(2, &e.any, buf);
        }
        put_string(4, &self.type_url, buf);
        put_string(5, &self.nonce, buf);
        if let Some(cp) = &self.control_plane {
            encoding::message::encode(6, cp, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        // Send-only: nothing is ever decoded into this type.
        encoding::skip_field(wire_type, tag, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        string_len(1, &self.version_info)
            + self
                .resources
                .iter()
                .map(|e| encoding::message::encoded_len(2, &e.any))
                .sum::<usize>()
            + string_len(4, &self.type_url)
            + string_len(5, &self.nonce)
            + self
                .control_plane
                .as_ref()
                .map_or(0, |cp| encoding::message::encoded_len(6, cp))
    }

    fn clear(&mut self) {
        *self = SotwResponse::default();
    }
}

impl Message for DeltaResponse {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        put_string(1, &self.system_version_info, buf);
        for e in &self.resources {
            encoding::encode_key(2, WireType::LengthDelimited, buf);
            encoding::encode_varint(delta_resource_len(e) as u64, buf);
            put_string(1, &e.hash, buf);
            encoding::message::encode(2, &e.any, buf);
            put_string(3, &e.name, buf);
        }
        put_string(4, &self.type_url, buf);
        put_string(5, &self.nonce, buf);
        for name in &self.removed_resources {
            encoding::encode_key(6, WireType::LengthDelimited, buf);
            encoding::encode_varint(name.len() as u64, buf);
            buf.put_slice(name.as_bytes());
        }
        if let Some(cp) = &self.control_plane {
            encoding::message::encode(7, cp, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        encoding::skip_field(wire_type, tag, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        string_len(1, &self.system_version_info)
            + self
                .resources
                .iter()
                .map(|e| {
                    let len = delta_resource_len(e);
                    encoding::key_len(2) + encoding::encoded_len_varint(len as u64) + len
                })
                .sum::<usize>()
            + string_len(4, &self.type_url)
            + string_len(5, &self.nonce)
            + self
                .removed_resources
                .iter()
                .map(|n| {
                    encoding::key_len(6) + encoding::encoded_len_varint(n.len() as u64) + n.len()
                })
                .sum::<usize>()
            + self
                .control_plane
                .as_ref()
                .map_or(0, |cp| encoding::message::encoded_len(7, cp))
    }

    fn clear(&mut self) {
        *self = DeltaResponse::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::service::discovery::v3::{
        DeltaDiscoveryResponse, DiscoveryResponse, Resource,
    };
    use envoy_types::pb::google::protobuf::Any;

    fn encoded(name: &str, body: &[u8]) -> Arc<Encoded> {
        Arc::new(Encoded {
            name: name.into(),
            hash: format!("hash-of-{name}"),
            any: Any {
                type_url: "type.googleapis.com/x.Y".into(),
                value: body.to_vec(),
            },
            parts: vec![],
        })
    }

    fn cp() -> Option<ControlPlane> {
        Some(ControlPlane {
            identifier: "edgeplane test".into(),
        })
    }

    #[test]
    fn sotw_bytes_equal_the_generated_type() {
        let big = vec![7u8; 300];
        let rs = vec![encoded("a", b"\x08\x01"), encoded("b", &big)];
        let ours = SotwResponse {
            version_info: "v1".into(),
            resources: rs.clone(),
            type_url: "t".into(),
            nonce: "3".into(),
            control_plane: cp(),
        };
        let theirs = DiscoveryResponse {
            version_info: "v1".into(),
            resources: rs.iter().map(|e| e.any.clone()).collect(),
            type_url: "t".into(),
            nonce: "3".into(),
            control_plane: cp(),
            ..Default::default()
        };
        assert_eq!(ours.encode_to_vec(), theirs.encode_to_vec());
        assert_eq!(ours.encoded_len(), theirs.encoded_len());
        // Empty fields are omitted, as proto3 does.
        let empty = SotwResponse::default();
        assert_eq!(
            empty.encode_to_vec(),
            DiscoveryResponse::default().encode_to_vec()
        );
    }

    #[test]
    fn delta_bytes_equal_the_generated_type() {
        let rs = vec![encoded("a", b"\x08\x01"), encoded("b", &[9u8; 200])];
        let ours = DeltaResponse {
            system_version_info: "sv".into(),
            resources: rs.clone(),
            type_url: "t".into(),
            nonce: "4".into(),
            control_plane: cp(),
            removed_resources: vec!["gone".into(), "also".into()],
        };
        let theirs = DeltaDiscoveryResponse {
            system_version_info: "sv".into(),
            resources: rs
                .iter()
                .map(|e| Resource {
                    name: e.name.clone(),
                    version: e.hash.clone(),
                    resource: Some(e.any.clone()),
                    ..Default::default()
                })
                .collect(),
            type_url: "t".into(),
            nonce: "4".into(),
            control_plane: cp(),
            removed_resources: vec!["gone".into(), "also".into()],
            ..Default::default()
        };
        let bytes = ours.encode_to_vec();
        assert_eq!(bytes.len(), ours.encoded_len());
        // prost writes fields in tag order, as we do: identical bytes.
        assert_eq!(bytes, theirs.encode_to_vec());
        assert_eq!(
            DeltaDiscoveryResponse::decode(bytes.as_slice()).ok(),
            Some(theirs)
        );
    }
}
