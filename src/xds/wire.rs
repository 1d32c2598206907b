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
use prost::bytes::{Buf, BufMut, Bytes, BytesMut};
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

/// Resource bodies at least this large go out as their own chunk of the
/// shared bytes; smaller ones are copied into the frame (a chunk per small
/// cluster would cost more in HTTP/2 framing than the copy).
const SHARE_FROM: usize = 2048;

/// A response as one length-prefixed gRPC message, in chunks: the small
/// fields copied into fresh buffers, large resource bodies shared with the
/// snapshot (`Encoded::bytes`). Concatenated, the chunks are exactly
/// `grpc_frame` of the message (tests below).
pub trait WireResponse: Message {
    fn frame_chunks(&self) -> Vec<Bytes>;
}

struct Framer {
    chunks: Vec<Bytes>,
    head: BytesMut,
}

impl Framer {
    /// Starts a frame with gRPC's header for a `len`-byte message.
    fn new(len: u32) -> Framer {
        let mut head = BytesMut::with_capacity(512);
        head.put_u8(0);
        head.put_u32(len);
        Framer {
            chunks: Vec::new(),
            head,
        }
    }

    fn key(&mut self, tag: u32, len: usize) {
        encoding::encode_key(tag, WireType::LengthDelimited, &mut self.head);
        encoding::encode_varint(len as u64, &mut self.head);
    }

    fn string(&mut self, tag: u32, s: &str) {
        if !s.is_empty() {
            self.key(tag, s.len());
            self.head.put_slice(s.as_bytes());
        }
    }

    fn message<M: Message>(&mut self, tag: u32, m: &M) {
        encoding::message::encode(tag, m, &mut self.head);
    }

    /// An `Any` body: type URL copied, value shared when large.
    fn any(&mut self, e: &Encoded) {
        self.string(1, &e.any.type_url);
        if !e.bytes.is_empty() {
            self.key(2, e.bytes.len());
            if e.bytes.len() >= SHARE_FROM {
                if !self.head.is_empty() {
                    self.chunks.push(self.head.split().freeze());
                }
                self.chunks.push(e.bytes.clone());
            } else {
                self.head.put_slice(&e.bytes);
            }
        }
    }

    fn finish(mut self) -> Vec<Bytes> {
        if !self.head.is_empty() {
            self.chunks.push(self.head.freeze());
        }
        self.chunks
    }
}

/// The length of the whole frame's message, capped to what gRPC can carry
/// (the caller refuses larger messages before sending).
fn frame_len(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

impl WireResponse for SotwResponse {
    fn frame_chunks(&self) -> Vec<Bytes> {
        let mut f = Framer::new(frame_len(self.encoded_len()));
        f.string(1, &self.version_info);
        for e in &self.resources {
            f.key(2, e.any.encoded_len());
            f.any(e);
        }
        f.string(4, &self.type_url);
        f.string(5, &self.nonce);
        if let Some(cp) = &self.control_plane {
            f.message(6, cp);
        }
        f.finish()
    }
}

impl WireResponse for DeltaResponse {
    fn frame_chunks(&self) -> Vec<Bytes> {
        let mut f = Framer::new(frame_len(self.encoded_len()));
        f.string(1, &self.system_version_info);
        for e in &self.resources {
            f.key(2, delta_resource_len(e));
            f.string(1, &e.hash);
            f.key(2, e.any.encoded_len());
            f.any(e);
            f.string(3, &e.name);
        }
        f.string(4, &self.type_url);
        f.string(5, &self.nonce);
        for name in &self.removed_resources {
            f.key(6, name.len());
            f.head.put_slice(name.as_bytes());
        }
        if let Some(cp) = &self.control_plane {
            f.message(7, cp);
        }
        f.finish()
    }
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
        Arc::new(Encoded::new(
            name.into(),
            format!("hash-of-{name}"),
            Any {
                type_url: "type.googleapis.com/x.Y".into(),
                value: body.to_vec(),
            },
            vec![],
        ))
    }

    fn cp() -> Option<ControlPlane> {
        Some(ControlPlane {
            identifier: "edgeplane test".into(),
        })
    }

    fn concat(chunks: &[Bytes]) -> Vec<u8> {
        chunks.iter().flat_map(|c| c.iter().copied()).collect()
    }

    #[test]
    fn frame_chunks_are_the_grpc_frame_with_large_bodies_shared() {
        let big = encoded("big", &[5u8; 5000]);
        let small = encoded("small", b"\x08\x01");
        let empty = encoded("empty", b"");
        let rs = vec![small.clone(), big.clone(), empty];
        let sotw = SotwResponse {
            version_info: "v".into(),
            resources: rs.clone(),
            type_url: "t".into(),
            nonce: "1".into(),
            control_plane: cp(),
        };
        let delta = DeltaResponse {
            system_version_info: "s".into(),
            resources: rs,
            type_url: "t".into(),
            nonce: "2".into(),
            control_plane: cp(),
            removed_resources: vec!["gone".into()],
        };
        for (chunks, whole) in [
            (sotw.frame_chunks(), crate::xds::body::grpc_frame(&sotw)),
            (delta.frame_chunks(), crate::xds::body::grpc_frame(&delta)),
        ] {
            let whole = whole.expect("frame");
            assert_eq!(concat(&chunks), whole.to_vec());
            // The large body is the snapshot's own allocation, not a copy.
            assert!(
                chunks.iter().any(|c| c.as_ptr() == big.bytes.as_ptr()),
                "large body shared"
            );
            assert!(!chunks.iter().any(|c| c.as_ptr() == small.bytes.as_ptr()));
        }
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
