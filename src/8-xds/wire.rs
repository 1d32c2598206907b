//! Responses that share the snapshot's encoded bytes.
//!
//! Envoy's generated `DiscoveryResponse` owns its resources (`Any` with a
//! `Vec<u8>`), so every stream would copy every resource before prost copies
//! it again into the gRPC frame. These two types hold `Arc<Encoded>` instead:
//! a resource is encoded once per change (`snapshot`), and each stream's
//! frame is a list of chunks in which large resource bodies are the
//! snapshot's own bytes. A queued response costs a few pointers, not a copy
//! of the config.
//!
//! On the wire they are exactly `DiscoveryResponse` and
//! `DeltaDiscoveryResponse` (field numbers from
//! `envoy/service/discovery/v3/discovery.proto`); the tests below check the
//! bytes against the generated types. They are only ever written.

use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::ControlPlane;
use prost::bytes::{BufMut, Bytes, BytesMut};
use prost::encoding::{self, WireType};

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

/// Resource bodies at least this large go out as their own chunk of the
/// shared bytes; smaller ones are copied into the frame (a chunk per small
/// cluster would cost more in HTTP/2 framing than the copy).
const SHARE_FROM: usize = 2048;

/// gRPC's frame header: a compression flag and a big-endian length.
pub const GRPC_HEADER: usize = 5;

/// A response as one length-prefixed, uncompressed gRPC message.
pub trait WireResponse: Send + 'static {
    /// The message's encoded length (without the gRPC header).
    fn encoded_len(&self) -> usize;

    /// The frame in chunks: small fields copied into fresh buffers, large
    /// resource bodies shared with the snapshot (`Encoded::bytes`).
    fn frame_chunks(&self) -> Vec<Bytes>;
}

/// Length of a length-delimited field holding `len` bytes.
fn field_len(tag: u32, len: usize) -> usize {
    encoding::key_len(tag) + encoding::encoded_len_varint(len as u64) + len
}

/// Length of a proto3 string field (absent when empty).
fn string_len(tag: u32, s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        field_len(tag, s.len())
    }
}

/// `Any { type_url = 1, value = 2 }`: body length.
fn any_len(e: &Encoded) -> usize {
    string_len(1, &e.type_url)
        + if e.bytes.is_empty() {
            0
        } else {
            field_len(2, e.bytes.len())
        }
}

/// `Resource { version = 1, resource = 2, name = 3 }`: body length.
fn delta_resource_len(e: &Encoded) -> usize {
    string_len(1, &e.hash) + field_len(2, any_len(e)) + string_len(3, &e.name)
}

fn control_plane_len(tag: u32, cp: &Option<ControlPlane>) -> usize {
    cp.as_ref()
        .map_or(0, |cp| encoding::message::encoded_len(tag, cp))
}

/// Writes one frame: fields go into `head`, which is cut into a chunk
/// whenever a large body is shared.
struct Framer {
    chunks: Vec<Bytes>,
    head: BytesMut,
}

impl Framer {
    /// Starts a frame with gRPC's header for a `len`-byte message.
    fn new(len: usize) -> Framer {
        let mut head = BytesMut::with_capacity(512);
        head.put_u8(0);
        // The caller refuses messages over its limit (far below 4 GiB)
        // before framing them.
        head.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
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

    fn control_plane(&mut self, tag: u32, cp: &Option<ControlPlane>) {
        if let Some(cp) = cp {
            encoding::message::encode(tag, cp, &mut self.head);
        }
    }

    /// An `Any` field: type URL copied, value shared when large.
    fn any(&mut self, tag: u32, e: &Encoded) {
        self.key(tag, any_len(e));
        self.string(1, &e.type_url);
        if e.bytes.is_empty() {
            return;
        }
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

    fn finish(mut self) -> Vec<Bytes> {
        if !self.head.is_empty() {
            self.chunks.push(self.head.freeze());
        }
        self.chunks
    }
}

impl WireResponse for SotwResponse {
    fn encoded_len(&self) -> usize {
        string_len(1, &self.version_info)
            + self
                .resources
                .iter()
                .map(|e| field_len(2, any_len(e)))
                .sum::<usize>()
            + string_len(4, &self.type_url)
            + string_len(5, &self.nonce)
            + control_plane_len(6, &self.control_plane)
    }

    fn frame_chunks(&self) -> Vec<Bytes> {
        let mut f = Framer::new(self.encoded_len());
        f.string(1, &self.version_info);
        for e in &self.resources {
            f.any(2, e);
        }
        f.string(4, &self.type_url);
        f.string(5, &self.nonce);
        f.control_plane(6, &self.control_plane);
        f.finish()
    }
}

impl WireResponse for DeltaResponse {
    fn encoded_len(&self) -> usize {
        string_len(1, &self.system_version_info)
            + self
                .resources
                .iter()
                .map(|e| field_len(2, delta_resource_len(e)))
                .sum::<usize>()
            + string_len(4, &self.type_url)
            + string_len(5, &self.nonce)
            + self
                .removed_resources
                .iter()
                .map(|n| field_len(6, n.len()))
                .sum::<usize>()
            + control_plane_len(7, &self.control_plane)
    }

    fn frame_chunks(&self) -> Vec<Bytes> {
        let mut f = Framer::new(self.encoded_len());
        f.string(1, &self.system_version_info);
        for e in &self.resources {
            f.key(2, delta_resource_len(e));
            f.string(1, &e.hash);
            f.any(2, e);
            f.string(3, &e.name);
        }
        f.string(4, &self.type_url);
        f.string(5, &self.nonce);
        for name in &self.removed_resources {
            // Repeated strings are written even when empty.
            f.key(6, name.len());
            f.head.put_slice(name.as_bytes());
        }
        f.control_plane(7, &self.control_plane);
        f.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::service::discovery::v3::{
        DeltaDiscoveryResponse, DiscoveryResponse, Resource,
    };
    use envoy_types::pb::google::protobuf::Any;
    use prost::Message;

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

    /// The message a frame carries, after checking its gRPC header.
    fn message_bytes<W: WireResponse>(w: &W) -> Vec<u8> {
        let frame: Vec<u8> = w
            .frame_chunks()
            .iter()
            .flat_map(|c| c.iter().copied())
            .collect();
        assert_eq!(frame[0], 0, "uncompressed");
        let len = u32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]) as usize;
        assert_eq!(len, w.encoded_len());
        assert_eq!(frame.len(), GRPC_HEADER + len);
        frame[GRPC_HEADER..].to_vec()
    }

    fn generated_sotw(ours: &SotwResponse) -> DiscoveryResponse {
        DiscoveryResponse {
            version_info: ours.version_info.clone(),
            resources: ours.resources.iter().map(|e| e.any()).collect(),
            type_url: ours.type_url.clone(),
            nonce: ours.nonce.clone(),
            control_plane: ours.control_plane.clone(),
            ..Default::default()
        }
    }

    fn generated_delta(ours: &DeltaResponse) -> DeltaDiscoveryResponse {
        DeltaDiscoveryResponse {
            system_version_info: ours.system_version_info.clone(),
            resources: ours
                .resources
                .iter()
                .map(|e| Resource {
                    name: e.name.to_string(),
                    version: e.hash.clone(),
                    resource: Some(e.any()),
                    ..Default::default()
                })
                .collect(),
            type_url: ours.type_url.clone(),
            nonce: ours.nonce.clone(),
            control_plane: ours.control_plane.clone(),
            removed_resources: ours.removed_resources.clone(),
            ..Default::default()
        }
    }

    #[test]
    fn large_bodies_are_shared_not_copied() {
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
        assert_eq!(message_bytes(&sotw), generated_sotw(&sotw).encode_to_vec());
        assert_eq!(
            message_bytes(&delta),
            generated_delta(&delta).encode_to_vec()
        );
        for chunks in [sotw.frame_chunks(), delta.frame_chunks()] {
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
        let theirs = generated_sotw(&ours);
        assert_eq!(message_bytes(&ours), theirs.encode_to_vec());
        assert_eq!(ours.encoded_len(), theirs.encoded_len());
        // Empty fields are omitted, as proto3 does.
        assert_eq!(
            message_bytes(&SotwResponse::default()),
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
        let theirs = generated_delta(&ours);
        let bytes = message_bytes(&ours);
        // prost writes fields in tag order, as we do: identical bytes.
        assert_eq!(bytes, theirs.encode_to_vec());
        assert_eq!(
            DeltaDiscoveryResponse::decode(bytes.as_slice()).ok(),
            Some(theirs)
        );
    }
}
