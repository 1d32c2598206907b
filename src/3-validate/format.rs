//! Access-log format strings, parsed as Envoy 1.40 parses them, so a
//! format Envoy would refuse (and NACK the whole Listener for) is refused
//! here, with its position, before anything is served.
//!
//! Envoy's substitution format parser reads `%%` as a literal `%` and
//! otherwise needs a command operator at every `%`:
//! `%NAME%`, `%NAME(params)%`, `%NAME(params):LENGTH%`. It then refuses
//! unknown names ("Not supported field in StreamInfo"), parameters or a
//! length where the operator takes none, and missing required parameters.
//! The table below is Envoy 1.40's operators (with the two formatter
//! extensions Gloo's als plugin always adds, `REQ_WITHOUT_QUERY` and
//! `METADATA`), each probed against the Envoy binary with and without
//! parameters and a length. `CEL` is left out on purpose: its expressions
//! cannot be checked here, and a bad one would be NACKed.

/// What an operator takes between the parentheses.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Params {
    None,
    Optional,
    Required,
}

/// (name, parameters, whether `:LENGTH` is allowed).
const OPERATORS: &[(&str, Params, bool)] = &[
    ("ACCESS_LOG_TYPE", Params::None, false),
    ("BYTES_RECEIVED", Params::None, false),
    ("BYTES_RETRANSMITTED", Params::None, false),
    ("BYTES_SENT", Params::None, false),
    ("CLUSTER_METADATA", Params::Required, false),
    ("COMMON_DURATION", Params::Required, false),
    ("CONNECTION_ID", Params::None, false),
    ("CONNECTION_TERMINATION_DETAILS", Params::None, false),
    ("CUSTOM_FLAGS", Params::None, false),
    ("DOWNSTREAM_CX_RTT", Params::None, false),
    (
        "DOWNSTREAM_DECOMPRESSED_HEADER_BYTES_RECEIVED",
        Params::None,
        false,
    ),
    (
        "DOWNSTREAM_DECOMPRESSED_HEADER_BYTES_SENT",
        Params::None,
        false,
    ),
    ("DOWNSTREAM_DETECTED_CLOSE_TYPE", Params::None, false),
    ("DOWNSTREAM_DIRECT_LOCAL_ADDRESS", Params::None, false),
    (
        "DOWNSTREAM_DIRECT_LOCAL_ADDRESS_ENDPOINT_ID",
        Params::None,
        false,
    ),
    (
        "DOWNSTREAM_DIRECT_LOCAL_ADDRESS_WITHOUT_PORT",
        Params::Optional,
        false,
    ),
    ("DOWNSTREAM_DIRECT_LOCAL_PORT", Params::None, false),
    ("DOWNSTREAM_DIRECT_REMOTE_ADDRESS", Params::None, false),
    (
        "DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT",
        Params::Optional,
        false,
    ),
    ("DOWNSTREAM_DIRECT_REMOTE_PORT", Params::None, false),
    ("DOWNSTREAM_HANDSHAKE_DURATION", Params::None, false),
    ("DOWNSTREAM_HEADER_BYTES_RECEIVED", Params::None, false),
    ("DOWNSTREAM_HEADER_BYTES_SENT", Params::None, false),
    ("DOWNSTREAM_LOCAL_ADDRESS", Params::None, false),
    ("DOWNSTREAM_LOCAL_ADDRESS_ENDPOINT_ID", Params::None, false),
    (
        "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT",
        Params::Optional,
        false,
    ),
    ("DOWNSTREAM_LOCAL_CLOSE_REASON", Params::None, false),
    ("DOWNSTREAM_LOCAL_DNS_SAN", Params::None, false),
    ("DOWNSTREAM_LOCAL_EMAIL_SAN", Params::None, false),
    ("DOWNSTREAM_LOCAL_IP_SAN", Params::None, false),
    ("DOWNSTREAM_LOCAL_OTHERNAME_SAN", Params::None, false),
    ("DOWNSTREAM_LOCAL_PORT", Params::None, false),
    ("DOWNSTREAM_LOCAL_SUBJECT", Params::None, false),
    ("DOWNSTREAM_LOCAL_URI_SAN", Params::None, false),
    ("DOWNSTREAM_PEER_CERT", Params::None, false),
    ("DOWNSTREAM_PEER_CERT_V_END", Params::Optional, false),
    ("DOWNSTREAM_PEER_CERT_V_START", Params::Optional, false),
    ("DOWNSTREAM_PEER_CHAIN_FINGERPRINTS_1", Params::None, false),
    (
        "DOWNSTREAM_PEER_CHAIN_FINGERPRINTS_256",
        Params::None,
        false,
    ),
    ("DOWNSTREAM_PEER_CHAIN_SERIALS", Params::None, false),
    ("DOWNSTREAM_PEER_DNS_SAN", Params::None, false),
    ("DOWNSTREAM_PEER_EMAIL_SAN", Params::None, false),
    ("DOWNSTREAM_PEER_FINGERPRINT_1", Params::None, false),
    ("DOWNSTREAM_PEER_FINGERPRINT_256", Params::None, false),
    ("DOWNSTREAM_PEER_IP_SAN", Params::None, false),
    ("DOWNSTREAM_PEER_ISSUER", Params::None, false),
    (
        "DOWNSTREAM_PEER_ISSUER_FINGERPRINT_256",
        Params::None,
        false,
    ),
    ("DOWNSTREAM_PEER_ISSUER_SERIAL", Params::None, false),
    ("DOWNSTREAM_PEER_OTHERNAME_SAN", Params::None, false),
    ("DOWNSTREAM_PEER_SERIAL", Params::None, false),
    ("DOWNSTREAM_PEER_SUBJECT", Params::None, false),
    ("DOWNSTREAM_PEER_URI_SAN", Params::None, false),
    ("DOWNSTREAM_REMOTE_ADDRESS", Params::None, false),
    (
        "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT",
        Params::Optional,
        false,
    ),
    ("DOWNSTREAM_REMOTE_PORT", Params::None, false),
    ("DOWNSTREAM_TLS_CIPHER", Params::None, false),
    ("DOWNSTREAM_TLS_GROUP", Params::None, false),
    ("DOWNSTREAM_TLS_SESSION_ID", Params::None, false),
    ("DOWNSTREAM_TLS_VERSION", Params::None, false),
    ("DOWNSTREAM_TRANSPORT_FAILURE_REASON", Params::None, false),
    ("DOWNSTREAM_WIRE_BYTES_RECEIVED", Params::None, false),
    ("DOWNSTREAM_WIRE_BYTES_SENT", Params::None, false),
    ("DURATION", Params::None, false),
    ("DYNAMIC_METADATA", Params::Required, true),
    ("EMIT_TIME", Params::Optional, false),
    ("EMIT_TIME_LOCAL", Params::Optional, false),
    ("ENVIRONMENT", Params::Required, true),
    ("FILTER_STATE", Params::Required, true),
    ("GRPC_STATUS", Params::None, false),
    ("GRPC_STATUS_NUMBER", Params::None, false),
    ("HOSTNAME", Params::None, false),
    ("LISTENER_NAME", Params::None, false),
    ("METADATA", Params::Required, true),
    ("PATH", Params::Optional, true),
    ("PROTOCOL", Params::None, false),
    ("QUERY_PARAM", Params::Required, true),
    ("QUERY_PARAMS", Params::None, true),
    ("REQ", Params::Required, true),
    ("REQUESTED_SERVER_NAME", Params::None, false),
    ("REQUEST_DURATION", Params::None, false),
    ("REQUEST_HEADER", Params::Required, true),
    ("REQUEST_HEADERS_BYTES", Params::None, false),
    ("REQUEST_TX_DURATION", Params::None, false),
    ("REQ_WITHOUT_QUERY", Params::Required, true),
    ("RESP", Params::Required, true),
    ("RESPONSE_CODE", Params::None, false),
    ("RESPONSE_CODE_DETAILS", Params::Optional, false),
    ("RESPONSE_DURATION", Params::None, false),
    ("RESPONSE_FLAGS", Params::None, false),
    ("RESPONSE_FLAGS_LONG", Params::None, false),
    ("RESPONSE_HEADER", Params::Required, true),
    ("RESPONSE_HEADERS_BYTES", Params::None, false),
    ("RESPONSE_TRAILER", Params::Required, true),
    ("RESPONSE_TRAILERS_BYTES", Params::None, false),
    ("RESPONSE_TX_DURATION", Params::None, false),
    ("ROUNDTRIP_DURATION", Params::None, false),
    ("ROUTE_NAME", Params::None, false),
    ("ROUTE_RESOLUTION_COUNT", Params::None, false),
    ("ROUTE_RESOLUTION_TIME_US", Params::None, false),
    ("START_TIME", Params::Optional, false),
    ("START_TIME_LOCAL", Params::Optional, false),
    ("STREAM_ID", Params::None, false),
    ("TLS_JA3_FINGERPRINT", Params::None, false),
    ("TLS_JA4_FINGERPRINT", Params::None, false),
    ("TRACE_ID", Params::None, false),
    ("TRAILER", Params::Required, true),
    ("UNIQUE_ID", Params::None, false),
    ("UPSTREAM_CLUSTER", Params::None, false),
    ("UPSTREAM_CLUSTER_RAW", Params::None, false),
    ("UPSTREAM_CONNECTION_ID", Params::None, false),
    ("UPSTREAM_CONNECTION_IDS_ATTEMPTED", Params::None, false),
    (
        "UPSTREAM_CONNECTION_POOL_READY_DURATION",
        Params::None,
        false,
    ),
    (
        "UPSTREAM_DECOMPRESSED_HEADER_BYTES_RECEIVED",
        Params::None,
        false,
    ),
    (
        "UPSTREAM_DECOMPRESSED_HEADER_BYTES_SENT",
        Params::None,
        false,
    ),
    ("UPSTREAM_DETECTED_CLOSE_TYPE", Params::None, false),
    ("UPSTREAM_FILTER_STATE", Params::Required, true),
    ("UPSTREAM_HEADER_BYTES_RECEIVED", Params::None, false),
    ("UPSTREAM_HEADER_BYTES_SENT", Params::None, false),
    ("UPSTREAM_HOST", Params::None, false),
    ("UPSTREAM_HOSTS_ATTEMPTED", Params::None, false),
    ("UPSTREAM_HOSTS_ATTEMPTED_WITHOUT_PORT", Params::None, false),
    ("UPSTREAM_HOST_NAME", Params::None, false),
    ("UPSTREAM_HOST_NAMES_ATTEMPTED", Params::None, false),
    (
        "UPSTREAM_HOST_NAMES_ATTEMPTED_WITHOUT_PORT",
        Params::None,
        false,
    ),
    ("UPSTREAM_HOST_NAME_WITHOUT_PORT", Params::None, false),
    ("UPSTREAM_LOCAL_ADDRESS", Params::None, false),
    (
        "UPSTREAM_LOCAL_ADDRESS_WITHOUT_PORT",
        Params::Optional,
        false,
    ),
    ("UPSTREAM_LOCAL_CLOSE_REASON", Params::None, false),
    ("UPSTREAM_LOCAL_DNS_SAN", Params::None, false),
    ("UPSTREAM_LOCAL_IP_SAN", Params::None, false),
    ("UPSTREAM_LOCAL_PORT", Params::None, false),
    ("UPSTREAM_LOCAL_URI_SAN", Params::None, false),
    ("UPSTREAM_METADATA", Params::Required, false),
    ("UPSTREAM_PEER_CERT", Params::None, false),
    ("UPSTREAM_PEER_CERT_V_END", Params::Optional, false),
    ("UPSTREAM_PEER_CERT_V_START", Params::Optional, false),
    ("UPSTREAM_PEER_DNS_SAN", Params::None, false),
    ("UPSTREAM_PEER_IP_SAN", Params::None, false),
    ("UPSTREAM_PEER_ISSUER", Params::None, false),
    ("UPSTREAM_PEER_SUBJECT", Params::None, false),
    ("UPSTREAM_PEER_URI_SAN", Params::None, false),
    ("UPSTREAM_PROTOCOL", Params::None, false),
    ("UPSTREAM_REMOTE_ADDRESS", Params::None, false),
    ("UPSTREAM_REMOTE_ADDRESS_ENDPOINT_ID", Params::None, false),
    (
        "UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT",
        Params::Optional,
        false,
    ),
    ("UPSTREAM_REMOTE_PORT", Params::None, false),
    ("UPSTREAM_REQUEST_ATTEMPT_COUNT", Params::None, false),
    ("UPSTREAM_SERVER_NAME", Params::None, false),
    ("UPSTREAM_TLS_CIPHER", Params::None, false),
    ("UPSTREAM_TLS_GROUP", Params::None, false),
    ("UPSTREAM_TLS_SESSION_ID", Params::None, false),
    ("UPSTREAM_TLS_VERSION", Params::None, false),
    ("UPSTREAM_TRANSPORT_FAILURE_REASON", Params::None, false),
    ("UPSTREAM_WIRE_BYTES_RECEIVED", Params::None, false),
    ("UPSTREAM_WIRE_BYTES_SENT", Params::None, false),
    ("VIRTUAL_CLUSTER_NAME", Params::None, false),
];

/// The metadata types `%METADATA(TYPE:…)%` takes.
const METADATA_TYPES: [&str; 7] = [
    "DYNAMIC",
    "CLUSTER",
    "ROUTE",
    "UPSTREAM_HOST",
    "LISTENER",
    "VIRTUAL_HOST",
    "LISTENER_FILTER_CHAIN",
];

/// Checks one format string; the error names the operator and its
/// position (counted in characters from 0, as Envoy counts).
pub(super) fn check(format: &str) -> Result<(), String> {
    let chars: Vec<char> = format.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '%' {
            i += 1;
            continue;
        }
        if chars.get(i + 1) == Some(&'%') {
            i += 2;
            continue;
        }
        let start = i;
        let bad = || {
            format!(
                "no valid command operator at position {start} (`%NAME%`, `%NAME(params)%` or `%NAME(params):LENGTH%`; write `%%` for a literal %)"
            )
        };
        i += 1;
        let name_start = i;
        while i < chars.len()
            && (chars[i].is_ascii_uppercase() || chars[i].is_ascii_digit() || chars[i] == '_')
        {
            i += 1;
        }
        if i == name_start {
            return Err(bad());
        }
        let name: String = chars[name_start..i].iter().collect();
        let mut params: Option<String> = None;
        if chars.get(i) == Some(&'(') {
            let p_start = i + 1;
            let Some(close) = chars[p_start..].iter().position(|c| *c == ')') else {
                return Err(bad());
            };
            params = Some(chars[p_start..p_start + close].iter().collect());
            i = p_start + close + 1;
        }
        let mut length = false;
        if chars.get(i) == Some(&':') {
            let l_start = i + 1;
            let mut j = l_start;
            while j < chars.len() && chars[j].is_ascii_digit() {
                j += 1;
            }
            if j == l_start {
                return Err(bad());
            }
            length = true;
            i = j;
        }
        if chars.get(i) != Some(&'%') {
            return Err(bad());
        }
        i += 1;
        operator(&name, params.as_deref(), length)?;
    }
    Ok(())
}

fn operator(name: &str, params: Option<&str>, length: bool) -> Result<(), String> {
    if name == "CEL" {
        return Err(
            "%CEL(…)% is not accepted: edgeplane cannot check CEL expressions the way Envoy will, and a bad one would have the Listener rejected".into(),
        );
    }
    let Some((_, takes, len_ok)) = OPERATORS.iter().find(|(n, _, _)| *n == name) else {
        return Err(format!(
            "%{name}% is not a command operator Envoy knows (see Envoy's access log command operators)"
        ));
    };
    let has_params = params.is_some_and(|p| !p.is_empty());
    match (takes, has_params) {
        (Params::None, _) if params.is_some() => {
            return Err(format!("%{name}% takes no parameters"));
        }
        (Params::Required, false) => {
            return Err(format!("%{name}% requires parameters: %{name}(…)%"));
        }
        _ => {}
    }
    if length && !len_ok {
        return Err(format!("%{name}% does not take a length (`:N`)"));
    }
    let p = params.unwrap_or_default();
    match name {
        "METADATA" => {
            let kind = p.split(':').next().unwrap_or_default();
            if !METADATA_TYPES.contains(&kind) {
                return Err(format!(
                    "%METADATA({p})%: `{kind}` is not a metadata type; expected one of {}",
                    METADATA_TYPES.join(", ")
                ));
            }
        }
        "PATH" if params.is_some() => {
            let mut parts = p.split(':');
            let q = parts.next().unwrap_or_default();
            let which = parts.next();
            if !["WQ", "NQ"].contains(&q)
                || which.is_some_and(|w| !["ORIG", "PATH", "ORIG_OR_PATH"].contains(&w))
                || parts.next().is_some()
            {
                return Err(format!(
                    "%PATH({p})%: expected WQ or NQ, optionally followed by :ORIG, :PATH or :ORIG_OR_PATH"
                ));
            }
        }
        "COMMON_DURATION" => {
            let parts: Vec<&str> = p.split(':').collect();
            let precision_ok = parts.get(2).is_none_or(|x| ["ms", "us", "ns"].contains(x));
            if !(2..=3).contains(&parts.len())
                || parts.iter().any(|x| x.is_empty())
                || !precision_ok
            {
                return Err(format!(
                    "%COMMON_DURATION({p})%: expected START:END or START:END:PRECISION (ms, us or ns)"
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each case was fed to Envoy 1.40 (`envoy --mode validate`) and Envoy
    /// agreed: `true` accepted, `false` refused.
    #[test]
    fn formats_as_envoy_parses_them() {
        let cases = [
            ("%START_TIME% %REQ(:PATH)% %RESPONSE_CODE%\n", true),
            ("%%", true),
            ("100%%", true),
            ("%%RESPONSE_CODE%%", true),
            ("%START_TIME(%s)%", true),
            ("%REQ(:PATH):10%", true),
            ("%REQ_WITHOUT_QUERY(:PATH)%", true),
            ("%METADATA(ROUTE:a)%", true),
            ("%PATH(WQ:ORIG)%", true),
            ("%COMMON_DURATION(DS_RX_BEG:DS_RX_END:ms)%", true),
            ("plain text", true),
            ("", true),
            ("%FOO%", false),
            ("100%", false),
            ("a % b", false),
            ("%REQ(:PATH", false),
            ("%REQ(:PATH)", false),
            ("%DURATION", false),
            ("%RESPONSE_CODE%%", false),
            ("%response_code%", false),
            ("%%%", false),
            ("%REQ()%", false),
            ("%REQ%", false),
            ("%RESPONSE_CODE(x)%", false),
            ("%RESPONSE_CODE:10%", false),
            ("%CLUSTER_METADATA(ns:k):5%", false),
            ("%METADATA(HOST:ns)%", false),
            ("%PATH(XX)%", false),
            ("%COMMON_DURATION(DS_RX_BEG:DS_RX_END:s)%", false),
        ];
        for (f, ok) in cases {
            assert_eq!(check(f).is_ok(), ok, "{f:?}: {:?}", check(f));
        }
    }

    #[test]
    fn table_is_sorted_and_unique() {
        for w in OPERATORS.windows(2) {
            assert!(w[0].0 < w[1].0, "{} before {}", w[0].0, w[1].0);
        }
    }
}
