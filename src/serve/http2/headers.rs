//! Header blocks (RFC 9113 §8, RFC 7541): a request's block decoded into
//! `http` types, and a response's headers or trailers encoded.
//!
//! Decoding uses `loona-hpack` (the dynamic table and Huffman codes).
//! Encoding needs no state: every field goes out as a literal without
//! indexing and without Huffman coding, so the connection keeps no
//! encoder table. gRPC responses carry a handful of short fields, so the
//! few bytes a table would save are not worth its memory per connection.

use bytes::{BufMut, BytesMut};
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Response, Uri};

/// What a request's header block held.
#[derive(Debug)]
pub struct RequestHead {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
}

/// Why a header block is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum HeadError {
    /// Undecodable HPACK: the connection's table is lost (a connection
    /// error, COMPRESSION_ERROR).
    Compression,
    /// Decoded, but not a valid request (a stream error, PROTOCOL_ERROR).
    Malformed(&'static str),
    /// More than the advertised SETTINGS_MAX_HEADER_LIST_SIZE.
    TooLarge,
}

/// Decodes `block` with the connection's `decoder`. The whole block is
/// always decoded, even once it is known to be refused, to keep the
/// dynamic table in step with the peer's.
pub fn decode_request(
    decoder: &mut loona_hpack::Decoder<'static>,
    block: &[u8],
    max_list: usize,
) -> Result<RequestHead, HeadError> {
    let mut method = None;
    let mut scheme = None;
    let mut authority = None;
    let mut path = None;
    let mut headers = HeaderMap::new();
    let mut size = 0usize;
    let mut bad: Option<HeadError> = None;
    let mut regular_seen = false;
    let decoded = decoder.decode_with_cb(block, |name, value| {
        // RFC 7541 §4.1: a field's size counts 32 octets of overhead.
        size = size.saturating_add(name.len() + value.len() + 32);
        if bad.is_some() {
            return;
        }
        if size > max_list {
            bad = Some(HeadError::TooLarge);
            return;
        }
        if let Some(pseudo) = name.strip_prefix(b":") {
            if regular_seen {
                bad = Some(HeadError::Malformed("pseudo-header after a regular header"));
                return;
            }
            let slot = match pseudo {
                b"method" => &mut method,
                b"scheme" => &mut scheme,
                b"authority" => &mut authority,
                b"path" => &mut path,
                _ => {
                    bad = Some(HeadError::Malformed("unknown pseudo-header"));
                    return;
                }
            };
            if slot.is_some() {
                bad = Some(HeadError::Malformed("repeated pseudo-header"));
                return;
            }
            *slot = Some(value.into_owned());
            return;
        }
        regular_seen = true;
        // §8.2.2: connection-specific fields are malformed in HTTP/2, and
        // TE may only say "trailers".
        if matches!(
            &name[..],
            b"connection" | b"keep-alive" | b"proxy-connection" | b"transfer-encoding" | b"upgrade"
        ) || (&name[..] == b"te" && &value[..] != b"trailers")
        {
            bad = Some(HeadError::Malformed("connection-specific header"));
            return;
        }
        // Field names must be lowercase in HTTP/2 (§8.2.1).
        if name.iter().any(u8::is_ascii_uppercase) {
            bad = Some(HeadError::Malformed("uppercase header name"));
            return;
        }
        match (
            HeaderName::from_bytes(&name),
            HeaderValue::from_bytes(&value),
        ) {
            (Ok(n), Ok(v)) => {
                headers.append(n, v);
            }
            _ => bad = Some(HeadError::Malformed("invalid header field")),
        }
    });
    if decoded.is_err() {
        return Err(HeadError::Compression);
    }
    if let Some(e) = bad {
        return Err(e);
    }
    let (Some(method), Some(path)) = (method, path) else {
        return Err(HeadError::Malformed(
            "a request needs :method and :path (CONNECT is not served)",
        ));
    };
    if scheme.is_none() {
        return Err(HeadError::Malformed("a request needs :scheme"));
    }
    let method =
        Method::from_bytes(&method).map_err(|_| HeadError::Malformed("invalid :method"))?;
    if path.is_empty() {
        return Err(HeadError::Malformed("empty :path"));
    }
    let mut uri = Uri::builder();
    if let (Some(s), Some(a)) = (&scheme, &authority) {
        uri = uri.scheme(&s[..]).authority(&a[..]);
    }
    let uri = uri
        .path_and_query(&path[..])
        .build()
        .map_err(|_| HeadError::Malformed("invalid :path, :scheme or :authority"))?;
    Ok(RequestHead {
        method,
        uri,
        headers,
    })
}

impl RequestHead {
    /// The `http` request with `body`.
    pub fn into_request<B>(self, body: B) -> Request<B> {
        let mut req = Request::new(body);
        *req.method_mut() = self.method;
        *req.uri_mut() = self.uri;
        *req.headers_mut() = self.headers;
        *req.version_mut() = http::Version::HTTP_2;
        req
    }
}

/// HPACK integer with an `n`-bit prefix (RFC 7541 §5.1), the first byte's
/// high bits from `flags`.
fn put_int(out: &mut BytesMut, flags: u8, n: u32, mut value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.put_u8(flags | value as u8);
        return;
    }
    out.put_u8(flags | max as u8);
    value -= max;
    while value >= 128 {
        out.put_u8((value % 128) as u8 | 0x80);
        value /= 128;
    }
    out.put_u8(value as u8);
}

/// A string literal without Huffman coding (§5.2).
fn put_str(out: &mut BytesMut, s: &[u8]) {
    put_int(out, 0, 7, s.len());
    out.put_slice(s);
}

/// A field as a literal without indexing and with a literal name (§6.2.2).
fn put_field(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.put_u8(0);
    put_str(out, name);
    put_str(out, value);
}

/// The header fields of a response, `:status` first; fields HTTP/2 does
/// not carry (connection-specific ones) are left out.
pub fn encode_response<B>(resp: &Response<B>) -> BytesMut {
    let mut out = BytesMut::new();
    let status = resp.status().as_u16();
    if status == 200 {
        // Static table index 8: ":status: 200".
        out.put_u8(0x88);
    } else {
        // Literal without indexing, name index 8 (":status").
        put_int(&mut out, 0x00, 4, 8);
        put_str(&mut out, resp.status().as_str().as_bytes());
    }
    put_fields(&mut out, resp.headers());
    out
}

/// Trailers (or any header map) as a header block.
pub fn encode_fields(fields: &HeaderMap) -> BytesMut {
    let mut out = BytesMut::new();
    put_fields(&mut out, fields);
    out
}

fn put_fields(out: &mut BytesMut, fields: &HeaderMap) {
    for (name, value) in fields {
        if matches!(
            name.as_str(),
            "connection" | "keep-alive" | "proxy-connection" | "transfer-encoding" | "upgrade"
        ) {
            continue;
        }
        put_field(out, name.as_str().as_bytes(), value.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(block: &[u8]) -> Result<RequestHead, HeadError> {
        let mut d = loona_hpack::Decoder::new();
        decode_request(&mut d, block, 16 * 1024)
    }

    /// RFC 7541 Appendix C.3.1, the first request without Huffman coding:
    /// `:method GET`, `:scheme http`, `:path /`, `:authority
    /// www.example.com`.
    const C31: &[u8] = &[
        0x82, 0x86, 0x84, 0x41, 0x0f, 0x77, 0x77, 0x77, 0x2e, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c,
        0x65, 0x2e, 0x63, 0x6f, 0x6d,
    ];

    /// RFC 7541 Appendix C.4.1: the same request with Huffman coding.
    const C41: &[u8] = &[
        0x82, 0x86, 0x84, 0x41, 0x8c, 0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90,
        0xf4, 0xff,
    ];

    #[test]
    fn the_rfc_example_requests_decode() {
        for block in [C31, C41] {
            let head = decode(block).expect("the RFC's example decodes");
            assert_eq!(head.method, Method::GET);
            assert_eq!(head.uri.to_string(), "http://www.example.com/");
            assert!(head.headers.is_empty());
        }
    }

    #[test]
    fn malformed_requests_are_refused() {
        // No :path (":method GET", ":scheme http").
        assert!(matches!(
            decode(&[0x82, 0x86]),
            Err(HeadError::Malformed(_))
        ));
        // "connection: close" as a literal with a new name.
        let mut b = BytesMut::from(&[0x82u8, 0x86, 0x84][..]);
        put_field(&mut b, b"connection", b"close");
        assert!(matches!(decode(&b), Err(HeadError::Malformed(_))));
        // A pseudo-header after a regular one.
        let mut b = BytesMut::from(&[0x82u8, 0x86][..]);
        put_field(&mut b, b"x-a", b"1");
        b.put_u8(0x84);
        assert!(matches!(decode(&b), Err(HeadError::Malformed(_))));
        // An index past the tables: the HPACK state is lost.
        assert_eq!(decode(&[0xff, 0x7f]).err(), Some(HeadError::Compression));
    }

    #[test]
    fn a_header_list_over_the_limit_is_refused() {
        let mut b = BytesMut::from(C31);
        put_field(&mut b, b"x-big", &[b'a'; 200]);
        let mut d = loona_hpack::Decoder::new();
        assert_eq!(
            decode_request(&mut d, &b, 200).err(),
            Some(HeadError::TooLarge)
        );
    }

    #[test]
    fn encoded_responses_decode_to_the_same_fields() {
        let mut resp = Response::new(());
        resp.headers_mut()
            .insert("content-type", HeaderValue::from_static("application/grpc"));
        let long = HeaderValue::from_str(&"m".repeat(300)).expect("a valid value");
        resp.headers_mut().insert("grpc-message", long);
        let block = encode_response(&resp);
        let mut d = loona_hpack::Decoder::new();
        let fields = d.decode(&block).expect("decodes");
        let fields: Vec<(String, String)> = fields
            .into_iter()
            .map(|(n, v)| {
                (
                    String::from_utf8_lossy(&n).into_owned(),
                    String::from_utf8_lossy(&v).into_owned(),
                )
            })
            .collect();
        assert_eq!(fields[0], (":status".into(), "200".into()));
        assert_eq!(
            fields[1],
            ("content-type".into(), "application/grpc".into())
        );
        assert_eq!(fields[2], ("grpc-message".into(), "m".repeat(300)));

        *resp.status_mut() = http::StatusCode::NOT_FOUND;
        let block = encode_response(&resp);
        let fields = d.decode(&block).expect("decodes");
        assert_eq!(fields[0], (b":status".to_vec(), b"404".to_vec()));
    }
}
