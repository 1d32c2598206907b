//! HTTP/2 framing (RFC 9113 §4 and §6): the 9-byte frame header, the
//! frame types, flags, error codes and settings this server reads and
//! writes, and builders for the frames it sends. No state: `conn` owns
//! the connection.

use bytes::{BufMut, Bytes, BytesMut};

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub const HEADER_LEN: usize = 9;

// Frame types (§6).
pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const PRIORITY: u8 = 0x2;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PUSH_PROMISE: u8 = 0x5;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;

// Flags.
pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
pub const PADDED: u8 = 0x8;
pub const PRIORITY_FLAG: u8 = 0x20;

// Settings identifiers (§6.5.2).
pub const SETTINGS_HEADER_TABLE_SIZE: u16 = 0x1;
pub const SETTINGS_ENABLE_PUSH: u16 = 0x2;
pub const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
pub const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;
pub const SETTINGS_MAX_FRAME_SIZE: u16 = 0x5;
pub const SETTINGS_MAX_HEADER_LIST_SIZE: u16 = 0x6;

/// The smallest and largest frame payload a peer may allow (§6.5.2).
pub const MIN_MAX_FRAME_SIZE: u32 = 16_384;
pub const MAX_MAX_FRAME_SIZE: u32 = (1 << 24) - 1;
/// The window before any SETTINGS or WINDOW_UPDATE (§6.9.2).
pub const DEFAULT_WINDOW: u32 = 65_535;
/// The largest flow-control window (§6.9.1).
pub const MAX_WINDOW: u32 = (1 << 31) - 1;

/// Error codes (§7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Reason {
    NoError = 0x0,
    ProtocolError = 0x1,
    InternalError = 0x2,
    FlowControlError = 0x3,
    StreamClosed = 0x5,
    FrameSizeError = 0x6,
    RefusedStream = 0x7,
    Cancel = 0x8,
    CompressionError = 0x9,
    EnhanceYourCalm = 0xb,
}

/// A frame's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    pub len: usize,
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
}

impl Head {
    /// The header at the start of `buf`, if all 9 bytes are there.
    pub fn parse(buf: &[u8]) -> Option<Head> {
        let b: &[u8; HEADER_LEN] = buf.get(..HEADER_LEN)?.try_into().ok()?;
        Some(Head {
            len: (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]),
            kind: b[3],
            flags: b[4],
            // The reserved bit is ignored on receipt (§4.1).
            stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff,
        })
    }

    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// Writes a frame header for a payload of `len` bytes.
pub fn put_head(out: &mut BytesMut, len: usize, kind: u8, flags: u8, stream: u32) {
    debug_assert!(len <= MAX_MAX_FRAME_SIZE as usize);
    out.reserve(HEADER_LEN + len);
    out.put_uint(len as u64, 3);
    out.put_u8(kind);
    out.put_u8(flags);
    out.put_u32(stream & 0x7fff_ffff);
}

pub fn settings(values: &[(u16, u32)]) -> Bytes {
    let mut out = BytesMut::new();
    put_head(&mut out, values.len() * 6, SETTINGS, 0, 0);
    for &(id, v) in values {
        out.put_u16(id);
        out.put_u32(v);
    }
    out.freeze()
}

pub fn settings_ack() -> Bytes {
    let mut out = BytesMut::new();
    put_head(&mut out, 0, SETTINGS, ACK, 0);
    out.freeze()
}

pub fn ping(flags: u8, opaque: [u8; 8]) -> Bytes {
    let mut out = BytesMut::new();
    put_head(&mut out, 8, PING, flags, 0);
    out.put_slice(&opaque);
    out.freeze()
}

pub fn goaway(last_stream: u32, reason: Reason, debug: &str) -> Bytes {
    let mut out = BytesMut::new();
    put_head(&mut out, 8 + debug.len(), GOAWAY, 0, 0);
    out.put_u32(last_stream & 0x7fff_ffff);
    out.put_u32(reason as u32);
    out.put_slice(debug.as_bytes());
    out.freeze()
}

pub fn rst_stream(stream: u32, reason: Reason) -> Bytes {
    let mut out = BytesMut::new();
    put_head(&mut out, 4, RST_STREAM, 0, stream);
    out.put_u32(reason as u32);
    out.freeze()
}

pub fn window_update(stream: u32, increment: u32) -> Bytes {
    let mut out = BytesMut::new();
    put_head(&mut out, 4, WINDOW_UPDATE, 0, stream);
    out.put_u32(increment & 0x7fff_ffff);
    out.freeze()
}

/// The header of a DATA frame whose payload (`len` bytes) goes out as its
/// own buffer.
pub fn data_head(stream: u32, len: usize, end_stream: bool) -> Bytes {
    let mut out = BytesMut::new();
    put_head(
        &mut out,
        len,
        DATA,
        if end_stream { END_STREAM } else { 0 },
        stream,
    );
    out.freeze()
}

/// A header block as HEADERS and, when it is larger than `max_frame`,
/// CONTINUATION frames.
pub fn header_block(stream: u32, block: &[u8], end_stream: bool, max_frame: usize) -> Bytes {
    let mut out = BytesMut::with_capacity(block.len() + HEADER_LEN);
    let mut chunks = block.chunks(max_frame.max(1)).peekable();
    let mut kind = HEADERS;
    let mut flags = if end_stream { END_STREAM } else { 0 };
    if block.is_empty() {
        put_head(&mut out, 0, HEADERS, flags | END_HEADERS, stream);
        return out.freeze();
    }
    while let Some(chunk) = chunks.next() {
        if chunks.peek().is_none() {
            flags |= END_HEADERS;
        }
        put_head(&mut out, chunk.len(), kind, flags, stream);
        out.put_slice(chunk);
        kind = CONTINUATION;
        flags = 0;
    }
    out.freeze()
}

/// Strips padding (§6.1, §6.2) from a DATA or HEADERS payload: `None` when
/// the pad length is larger than the payload (a connection error).
pub fn unpad(head: &Head, payload: &[u8]) -> Option<(usize, usize)> {
    if !head.has(PADDED) {
        return Some((0, payload.len()));
    }
    let pad = usize::from(*payload.first()?);
    let end = payload.len().checked_sub(pad)?;
    (end >= 1).then_some((1, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_round_trips_and_ignores_the_reserved_bit() {
        let mut out = BytesMut::new();
        put_head(&mut out, 70_000, HEADERS, END_HEADERS | END_STREAM, 7);
        let h = Head::parse(&out).expect("complete");
        assert_eq!(
            h,
            Head {
                len: 70_000,
                kind: HEADERS,
                flags: END_HEADERS | END_STREAM,
                stream: 7
            }
        );
        // RFC 9113 §4.1: the reserved bit MUST be ignored when received.
        let mut raw = out.to_vec();
        raw[5] |= 0x80;
        assert_eq!(Head::parse(&raw).map(|h| h.stream), Some(7));
        assert_eq!(Head::parse(&raw[..8]), None);
    }

    #[test]
    fn a_large_header_block_is_split_into_continuations() {
        let block = vec![0x42u8; 40];
        let out = header_block(3, &block, true, 16);
        // HEADERS(16, END_STREAM), CONTINUATION(16), CONTINUATION(8, END_HEADERS).
        let mut at = 0;
        let mut seen = Vec::new();
        while let Some(h) = Head::parse(&out[at..]) {
            seen.push((h.kind, h.flags, h.len));
            at += HEADER_LEN + h.len;
        }
        assert_eq!(at, out.len());
        assert_eq!(
            seen,
            vec![
                (HEADERS, END_STREAM, 16),
                (CONTINUATION, 0, 16),
                (CONTINUATION, END_HEADERS, 8)
            ]
        );
    }

    #[test]
    fn padding_is_stripped_and_bad_padding_refused() {
        let padded = Head {
            len: 6,
            kind: DATA,
            flags: PADDED,
            stream: 1,
        };
        // Pad length 2, data "abc", padding "\0\0".
        assert_eq!(unpad(&padded, b"\x02abc\0\0"), Some((1, 4)));
        assert_eq!(unpad(&padded, b"\x09abc"), None);
        assert_eq!(unpad(&padded, b""), None);
    }
}
