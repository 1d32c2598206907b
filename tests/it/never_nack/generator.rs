//! A generator of varied, valid-looking Gloo manifests over the surface
//! edgeplane supports, for the never-NACK oracle.
//!
//! Each case is a whole config directory (Gateways, Upstreams,
//! VirtualServices, RouteTables) built from one seed, so a failing case is
//! reproduced by its seed alone. Values come from pools that are mostly
//! valid and sometimes at an edge (limits, odd characters, zero, huge
//! numbers, malformed text): edgeplane must refuse what Envoy would refuse,
//! and whatever it accepts Envoy must accept too. Documents are written as
//! JSON, which is YAML.

use serde_json::{Map, Value, json};

/// splitmix64: tiny, seedable, good enough to spread choices.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    fn pick<T: Clone>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())].clone()
    }

    /// Mostly from `good`, sometimes (`p_bad`) from `bad`.
    fn mostly<T: Clone>(&mut self, good: &[T], bad: &[T], p_bad: f64) -> T {
        if !bad.is_empty() && self.chance(p_bad) {
            self.pick(bad)
        } else {
            self.pick(good)
        }
    }
}

const BAD: f64 = 0.012;

const DURATIONS: &[&str] = &["1s", "0s", "30s", "1.5s", "100ms", "10m", "1h", "0.001s"];
const POSITIVE_DURATIONS: &[&str] = &["1s", "30s", "1.5s", "100ms", "10m", "0.001s"];
const BAD_DURATIONS: &[&str] = &["-1s", "abc", "1", "315576000001s", "1.0000000001s", ""];
const HEADERS: &[&str] = &[
    "x-a",
    "x-user",
    "X-Mixed-Case",
    "x_under",
    "content-type",
    "x.dot",
];
const BAD_HEADERS: &[&str] = &[
    ":authority",
    "host",
    "Host",
    "",
    "x a",
    "x\ny",
    ":path",
    "ü",
];
const VALUES: &[&str] = &["a", "", "some value", "%REQ(x-a)%", "v=1;w=2"];
const BAD_VALUES: &[&str] = &["a\r\nb", "\u{0}", "%BOGUS%", "100%"];
const PATHS: &[&str] = &[
    "/",
    "/a",
    "/api/v1",
    "/ws",
    "/a-b_c.d~e",
    "/x/%20y",
    "/a:b@c",
];
const BAD_PATHS: &[&str] = &[
    "", "a", "/a//b", "/a/../b", "/a b", "/%2f", "/a#b", "/a?b", "/ü", "/a/.", "/%zz", "/x/%20y",
];
const REGEXES: &[&str] = &[
    "/r/[0-9]+",
    ".*",
    "^/a$",
    "/(v1|v2)/.*",
    "(?i)/case",
    "\\d+",
];
const BAD_REGEXES: &[&str] = &["(", "[a-", "a{100000}", "(?P<x>a)(?P<x>b)", "\\", "a**"];
const HOSTS: &[&str] = &["example.com", "a.example.com", "localhost", "x.y.z"];
const BAD_HOSTS: &[&str] = &["", "a b", "exa mple", "ü.com", "a/b"];
const DOMAINS: &[&str] = &[
    "*",
    "a.com",
    "*.b.com",
    "c.com:8080",
    "d.example.org",
    "*-e.com",
];
const BAD_DOMAINS: &[&str] = &["", "a b", "*.*.com", "a.*.com", "[::1", "x\ny"];
const FORMATS: &[&str] = &[
    "%START_TIME% %REQ(:METHOD)% %RESPONSE_CODE%\n",
    "[%START_TIME(%s)%] %UPSTREAM_HOST% %DURATION%\n",
    "%REQ(X-A):10% %RESP(content-type)% 100%%\n",
    "%ROUTE_NAME% %DOWNSTREAM_REMOTE_ADDRESS%\n",
    "",
];
const BAD_FORMATS: &[&str] = &["%NOPE%", "%REQ(x-a", "50% off", "%START_TIME(%s%"];
const STATUSES: &[i64] = &[200, 204, 301, 404, 418, 503, 599];
const BAD_STATUSES: &[i64] = &[0, 99, 600, 1000, -1];
const PERCENTS: &[f64] = &[0.0, 1.0, 12.5, 50.0, 100.0];
const BAD_PERCENTS: &[f64] = &[-1.0, 100.5, 1e9];
const U32S: &[i64] = &[1, 2, 10, 100, 1024, 65535];
const BAD_U32S: &[i64] = &[0, -1, 4_294_967_296];

fn d(r: &mut Rng) -> Value {
    json!(r.mostly(DURATIONS, BAD_DURATIONS, BAD))
}

/// A duration that must be above zero (intervals), sometimes not.
fn pd(r: &mut Rng) -> Value {
    json!(r.mostly(POSITIVE_DURATIONS, &["0s", "-1s"], BAD))
}

fn header(r: &mut Rng) -> String {
    r.mostly(HEADERS, BAD_HEADERS, BAD).to_string()
}

fn value(r: &mut Rng) -> String {
    r.mostly(VALUES, BAD_VALUES, BAD).to_string()
}

fn obj(pairs: Vec<(&str, Value)>) -> Value {
    Value::Object(
        pairs
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect::<Map<_, _>>(),
    )
}

/// Some of `fields`, each kept with probability `p`.
fn some(fields: Vec<(&str, Value)>, r: &mut Rng, p: f64) -> Value {
    obj(fields.into_iter().filter(|_| r.chance(p)).collect())
}

fn meta(name: &str) -> Value {
    json!({"name": name, "namespace": "gloo-system"})
}

fn doc(api: &str, kind: &str, name: &str, spec: Value) -> String {
    let d = json!({"apiVersion": api, "kind": kind, "metadata": meta(name), "spec": spec});
    d.to_string()
}

fn hcm(r: &mut Rng) -> Value {
    let upgrades = if r.chance(0.3) {
        json!([{"websocket": {"enabled": r.chance(0.5)}}])
    } else {
        json!([])
    };
    some(
        vec![
            ("upgrades", upgrades),
            ("streamIdleTimeout", d(r)),
            ("idleTimeout", d(r)),
            ("requestTimeout", d(r)),
            ("drainTimeout", d(r)),
            ("useRemoteAddress", json!(r.chance(0.5))),
            (
                "serverName",
                json!(r.mostly(&["edge", "x"], &["", "a\nb"], BAD)),
            ),
            ("xffNumTrustedHops", json!(r.mostly(U32S, BAD_U32S, BAD))),
            (
                "maxRequestHeadersKb",
                json!(r.mostly(&[1, 60, 96, 8192], &[0, 8193], 0.2)),
            ),
            ("maxHeadersCount", json!(r.mostly(U32S, BAD_U32S, BAD))),
            ("normalizePath", json!(r.chance(0.5))),
            ("mergeSlashes", json!(r.chance(0.5))),
            ("via", json!(r.mostly(&["edge"], &["a\nb"], BAD))),
            (
                "codecType",
                json!(r.mostly(&["AUTO", "HTTP1", "HTTP2"], &["HTTP4"], BAD)),
            ),
            (
                "headersWithUnderscoresAction",
                json!(
                    ({
                        let choices = ["ALLOW", "REJECT_CLIENT_REQUEST", "DROP_HEADER"];
                        r.pick(&choices)
                    })
                ),
            ),
            ("properCaseHeaderKeyFormat", json!(r.chance(0.5))),
            ("stripAnyHostPort", json!(r.chance(0.5))),
        ],
        r,
        0.25,
    )
}

fn access_logs(r: &mut Rng) -> Value {
    let sink = if r.chance(0.5) {
        json!({"path": "/dev/null", "stringFormat": r.mostly(FORMATS, BAD_FORMATS, 0.15)})
    } else {
        json!({"path": "/dev/null", "jsonFormat": {
            "method": "%REQ(:METHOD)%",
            "code": r.mostly(&["%RESPONSE_CODE%", "%DURATION%"], &["%NOPE%"], 0.15),
        }})
    };
    let mut log = json!({"fileSink": sink});
    if r.chance(0.3) {
        log["filter"] = json!({"statusCodeFilter": {"comparison": {
            "op": ({ let choices = ["EQ", "GE", "LE"]; r.pick(&choices) }),
            "value": {"defaultValue": r.mostly(&[200, 400, 500], &[-1], BAD), "runtimeKey": "k"},
        }}});
    }
    json!({"accessLog": [log]})
}

fn gateways(r: &mut Rng, certs: &Certs) -> (Vec<String>, bool) {
    let mut out = Vec::new();
    let mut options = some(vec![("httpConnectionManagerSettings", hcm(r))], r, 0.4);
    if r.chance(0.2) {
        options["connectionLimit"] = json!({"maxActiveConnections": r.mostly(U32S, BAD_U32S, BAD)});
    }
    if r.chance(0.2) {
        options["gzip"] = some(
            vec![
                (
                    "compressionLevel",
                    json!(r.mostly(&["BEST", "SPEED", "DEFAULT"], &["LOUD"], BAD)),
                ),
                ("memoryLevel", json!(r.mostly(&[1, 5, 9], &[0, 10], BAD))),
                ("windowBits", json!(r.mostly(&[9, 12, 15], &[8, 16], BAD))),
                (
                    "contentType",
                    json!([r.mostly(&["text/plain", "application/json"], &[""], BAD)]),
                ),
                ("removeAcceptEncodingHeader", json!(r.chance(0.5))),
            ],
            r,
            0.5,
        );
    }
    if r.chance(0.15) {
        options["healthCheck"] = json!({"path": r.mostly(PATHS, &["", "x"], BAD)});
    }
    if r.chance(0.1) {
        options["grpcWeb"] = json!({"disable": r.chance(0.5)});
    }
    let mut spec = json!({
        "bindAddress": ({ let choices = ["::", "127.0.0.1", "0.0.0.0"]; r.pick(&choices) }),
        "bindPort": 8080,
        "httpGateway": {"options": options},
    });
    if r.chance(0.25) {
        spec["options"] = some(
            vec![
                ("accessLoggingService", access_logs(r)),
                (
                    "perConnectionBufferLimitBytes",
                    json!(r.mostly(&[1024, 1_048_576], &[-1], BAD)),
                ),
                ("connectionBalanceConfig", json!({"exactBalance": {}})),
            ],
            r,
            0.5,
        );
    }
    out.push(doc("gateway.solo.io/v1", "Gateway", "gw", spec));
    if r.chance(0.15) {
        // A TCP gateway: plain hosts, or TLS passthrough by SNI.
        let hosts: Vec<Value> = (0..1 + r.below(2))
            .map(|i| {
                let mut h = json!({"name": format!("h{i}"), "destination": {"single": {"upstream": {"name": "up0", "namespace": "gloo-system"}}}});
                if r.chance(0.6) {
                    h["sslConfig"] = json!({"sniDomains": [r.mostly(&[format!("t{i}.example.com")], &[String::new()], BAD)]});
                }
                h
            })
            .collect();
        out.push(doc(
            "gateway.solo.io/v1",
            "Gateway",
            "gw-tcp",
            json!({"bindAddress": "::", "bindPort": 9000, "tcpGateway": {"tcpHosts": hosts}}),
        ));
    }
    let ssl = r.chance(0.2);
    if ssl {
        let _ = certs;
        out.push(doc(
            "gateway.solo.io/v1",
            "Gateway",
            "gw-ssl",
            json!({"bindAddress": "::", "bindPort": 8443, "ssl": true, "httpGateway": {}}),
        ));
    }
    (out, ssl)
}

/// Open-source Gloo's `extauth.Settings` on the Gateway, mostly valid.
fn extauth_server(r: &mut Rng) -> Value {
    let mut e = json!({
        "extauthzServerRef": {"name": r.mostly(&["up0"], &["missing"], BAD), "namespace": "gloo-system"},
        "requestTimeout": r.mostly(&["0.2s", "1s", "250ms"], &["-1s", "abc"], BAD),
        "failureModeAllow": r.chance(0.5),
        "clearRouteCache": r.chance(0.5),
        "statusOnError": r.mostly(&[0, 403, 401, 503, 200], &[999, 1, 600], BAD),
        "statPrefix": r.mostly(&["", "auth"], &[], 0.0),
    });
    if r.chance(0.5) {
        e["httpService"] = json!({
            "pathPrefix": r.mostly(&["", "/", "/check/", "/a/b"], &["check", "x y"], BAD),
            "request": {
                "allowedHeaders": [r.mostly(&["x-ticket", "cookie"], &["", "a\nb"], BAD)],
                "allowedHeadersRegex": [r.mostly(&["x-.*", "^a[bc]$"], &["(", "a{1001}"], BAD)],
                "headersToAdd": {r.mostly(&["x-from"], &[""], BAD): r.mostly(&["edge", ""], &["a\rb"], BAD)},
            },
            "response": {"allowedUpstreamHeaders": ["x-user"], "allowedClientHeaders": ["x-deny"], "allowedUpstreamHeadersToAppend": ["x-g"]},
        });
    } else if r.chance(0.5) {
        e["grpcService"] = json!({"authority": r.mostly(&["auth.local", ""], &[], 0.0)});
    }
    if r.chance(0.3) {
        e["requestBody"] = json!({"maxRequestBytes": r.mostly(&[0, 1, 8192], &[], 0.0), "allowPartialMessage": true, "packAsBytes": r.chance(0.5)});
    }
    e
}

/// `extauth` on a virtual host: disable, or context extensions.
fn extauth_extension(r: &mut Rng) -> Value {
    if r.chance(0.3) {
        json!({"disable": r.chance(0.7)})
    } else {
        json!({"customAuth": {"contextExtensions": {"tenant": value(r), "k": value(r)}}})
    }
}

/// Paths of a real certificate and key, so Envoy's validate mode can load
/// the SSL gateways' files.
pub struct Certs {
    /// Paths (for `sslFiles`).
    pub cert: String,
    pub key: String,
    /// The same certificate and key as PEM text (for Secrets).
    pub cert_pem: String,
    pub key_pem: String,
}

fn upstream(r: &mut Rng, name: &str) -> String {
    let n = 1 + r.below(3);
    let hosts: Vec<Value> = (0..n)
        .map(|_| {
            let mut h = json!({
                "addr": r.mostly(&["127.0.0.1", "10.0.0.2", "::1", "backend.local", "a.example.com"], BAD_HOSTS, BAD),
                "port": r.mostly(&[80, 443, 8080, 65535], &[0, 70000], BAD),
            });
            if r.chance(0.2) {
                h["loadBalancingWeight"] = json!(r.mostly(U32S, BAD_U32S, BAD));
            }
            if r.chance(0.15) {
                h["sniAddr"] = json!(r.mostly(HOSTS, BAD_HOSTS, BAD));
            }
            h
        })
        .collect();
    let mut st = json!({"hosts": hosts});
    if r.chance(0.2) {
        st["useTls"] = json!(r.chance(0.5));
    }
    if r.chance(0.1) {
        st["autoSniRewrite"] = json!(false);
    }
    let lb = {
        let choices = [
            json!({"roundRobin": {}}),
            json!({"leastRequest": {"choiceCount": r.mostly(&[2, 3], &[0, 1], BAD)}}),
            json!({"random": {}}),
            json!({"ringHash": {"ringHashConfig": {"minimumRingSize": 1024, "maximumRingSize": r.mostly(&[4096, 8_388_608], &[512, 9_000_000], BAD)}}}),
            json!({"maglev": {}}),
        ];
        r.pick(&choices)
    };
    let mut spec = some(
        vec![
            ("useHttp2", json!(r.chance(0.5))),
            (
                "connectionConfig",
                some(
                    vec![
                        (
                            "maxRequestsPerConnection",
                            json!(r.mostly(U32S, BAD_U32S, BAD)),
                        ),
                        ("connectTimeout", d(r)),
                        (
                            "perConnectionBufferLimitBytes",
                            json!(r.mostly(U32S, BAD_U32S, BAD)),
                        ),
                        (
                            "commonHttpProtocolOptions",
                            json!({"idleTimeout": d(r), "maxHeadersCount": r.mostly(U32S, BAD_U32S, BAD)}),
                        ),
                    ],
                    r,
                    0.5,
                ),
            ),
            (
                "circuitBreakers",
                some(
                    vec![
                        ("maxConnections", json!(r.mostly(U32S, BAD_U32S, BAD))),
                        ("maxRequests", json!(r.mostly(U32S, BAD_U32S, BAD))),
                    ],
                    r,
                    0.5,
                ),
            ),
            (
                "healthChecks",
                json!([{
                    "timeout": pd(r), "interval": pd(r),
                    "healthyThreshold": r.mostly(U32S, BAD_U32S, BAD),
                    "unhealthyThreshold": r.mostly(U32S, BAD_U32S, BAD),
                    "httpHealthCheck": {"path": r.mostly(PATHS, BAD_PATHS, BAD), "host": r.mostly(HOSTS, BAD_HOSTS, BAD)},
                }]),
            ),
            ("loadBalancerConfig", lb),
            (
                "outlierDetection",
                json!({"consecutive5xx": r.mostly(U32S, BAD_U32S, BAD), "interval": pd(r), "maxEjectionPercent": r.mostly(&[10, 100], &[101], BAD)}),
            ),
        ],
        r,
        0.25,
    );
    spec["static"] = st;
    if r.chance(0.15) {
        spec["sslConfig"] = some(
            vec![
                ("sni", json!(r.mostly(HOSTS, BAD_HOSTS, BAD))),
                (
                    "alpnProtocols",
                    json!([r.mostly(&["h2", "http/1.1"], &[""], BAD)]),
                ),
                ("allowRenegotiation", json!(r.chance(0.5))),
            ],
            r,
            0.6,
        );
    }
    doc("gloo.solo.io/v1", "Upstream", name, spec)
}

fn matcher(r: &mut Rng) -> Value {
    let mut m = match r.below(3) {
        0 => json!({"prefix": r.mostly(PATHS, BAD_PATHS, BAD)}),
        1 => json!({"exact": r.mostly(PATHS, BAD_PATHS, BAD)}),
        _ => json!({"regex": r.mostly(REGEXES, BAD_REGEXES, BAD)}),
    };
    if r.chance(0.2) {
        m["headers"] =
            json!([{"name": header(r), "value": value(r), "invertMatch": r.chance(0.2)}]);
    }
    if r.chance(0.1) {
        m["headers"] = json!([{"name": header(r), "value": r.mostly(REGEXES, BAD_REGEXES, BAD), "regex": true}]);
    }
    if r.chance(0.15) {
        m["queryParameters"] =
            json!([{"name": r.mostly(&["q", "page"], &[""], BAD), "value": value(r)}]);
    }
    if r.chance(0.15) {
        m["methods"] =
            json!([r.mostly(&["GET", "POST", "PUT"], &["get", "NOT A METHOD", ""], BAD)]);
    }
    if r.chance(0.1) {
        m["caseSensitive"] = json!(r.chance(0.5));
    }
    m
}

fn header_manipulation(r: &mut Rng) -> Value {
    some(
        vec![
            (
                "requestHeadersToAdd",
                json!([{"header": {"key": header(r), "value": value(r)}, "append": r.chance(0.5)}]),
            ),
            ("requestHeadersToRemove", json!([header(r)])),
            (
                "responseHeadersToAdd",
                json!([{"header": {"key": header(r), "value": value(r)}}]),
            ),
            ("responseHeadersToRemove", json!([header(r)])),
        ],
        r,
        0.5,
    )
}

/// Route options; those Gloo allows only on forwarding routes only when
/// `forwards`.
fn options(r: &mut Rng, upstreams: &[String], forwards: bool) -> Value {
    let fraction = |r: &mut Rng| json!({"defaultValue": {"numerator": r.mostly(&[0, 1, 100], &[-1], BAD), "denominator": ({ let choices = ["HUNDRED", "TEN_THOUSAND", "MILLION"]; r.pick(&choices) })}});
    let shadow = r.pick(upstreams);
    let mut opts = some(
        vec![
            ("timeout", d(r)),
            ("idleTimeout", d(r)),
            ("prefixRewrite", json!(r.mostly(PATHS, BAD_PATHS, BAD))),
            (
                "regexRewrite",
                json!({"pattern": {"regex": r.mostly(REGEXES, BAD_REGEXES, BAD)}, "substitution": ({ let choices = ["/", "\\1", "/x"]; r.pick(&choices) })}),
            ),
            ("hostRewrite", json!(r.mostly(HOSTS, BAD_HOSTS, BAD))),
            (
                "retries",
                json!({
                    "retryOn": r.mostly(&["5xx", "connect-failure,refused-stream", "retriable-status-codes"], &["", "sometimes"], BAD),
                    "numRetries": r.mostly(&[1, 3], &[-1], BAD),
                    "perTryTimeout": d(r),
                }),
            ),
            ("headerManipulation", header_manipulation(r)),
            (
                "cors",
                json!({"allowOrigin": [r.mostly(&["https://a.com", "*"], &[], 0.0)], "allowMethods": ["GET"], "maxAge": r.mostly(&["3600", "0"], &["abc", "-1"], BAD)}),
            ),
            (
                "upgrades",
                json!([({
                    let choices = [
                        json!({"websocket": {}}),
                        json!({"websocket": {"enabled": false}}),
                        json!({"connect": {}}),
                    ];
                    r.pick(&choices)
                })]),
            ),
            (
                "faults",
                json!({"abort": {"percentage": r.mostly(PERCENTS, BAD_PERCENTS, BAD), "httpStatus": r.mostly(STATUSES, BAD_STATUSES, BAD)}}),
            ),
            (
                "shadowing",
                json!({"upstream": {"name": shadow, "namespace": "gloo-system"}, "percentage": r.mostly(PERCENTS, BAD_PERCENTS, BAD)}),
            ),
            (
                "lbHash",
                json!({"hashPolicies": [({ let choices = [
                    json!({"header": header(r)}),
                    json!({"cookie": {"name": r.mostly(&["session"], &[""], BAD), "ttl": d(r)}}),
                    json!({"sourceIp": true}),
                ]; r.pick(&choices) })]}),
            ),
            (
                "bufferPerRoute",
                json!({"buffer": {"maxRequestBytes": r.mostly(U32S, BAD_U32S, BAD)}}),
            ),
            ("csrf", json!({"filterEnabled": fraction(r)})),
            (
                "envoyMetadata",
                obj(vec![(
                    r.mostly(&["io.solo.x", "envoy.lb"], &[""], BAD),
                    json!({"k": value(r)}),
                )]),
            ),
            (
                "maxStreamDuration",
                json!({"maxStreamDuration": d(r), "grpcTimeoutHeaderMax": d(r)}),
            ),
        ],
        r,
        0.15,
    );
    if !forwards && let Some(o) = opts.as_object_mut() {
        // Gloo refuses these on redirects and direct responses (tested
        // elsewhere); keep the case about Envoy.
        for k in [
            "shadowing",
            "lbHash",
            "cors",
            "faults",
            "timeout",
            "retries",
        ] {
            if !r.chance(BAD) {
                o.remove(k);
            }
        }
    }
    opts
}

fn action(r: &mut Rng, upstreams: &[String], tables: &[String], depth: usize) -> (String, Value) {
    let n = if depth == 0 && !tables.is_empty() {
        5
    } else {
        4
    };
    match r.below(n) {
        0 | 1 => (
            "routeAction".into(),
            json!({"single": {"upstream": {"name": r.mostly(upstreams, &["missing".to_string()], BAD), "namespace": "gloo-system"}}}),
        ),
        2 => {
            let dests: Vec<Value> = (0..1 + r.below(3))
                .map(|_| json!({"weight": r.mostly(&[1, 5, 100], &[0, -1], BAD), "destination": {"upstream": {"name": r.pick(upstreams), "namespace": "gloo-system"}}}))
                .collect();
            (
                "routeAction".into(),
                json!({"multi": {"destinations": dests}}),
            )
        }
        3 => {
            if r.chance(0.5) {
                let mut rd = some(
                    vec![
                        ("hostRedirect", json!(r.mostly(HOSTS, BAD_HOSTS, BAD))),
                        (
                            "responseCode",
                            json!(r.mostly(
                                &["MOVED_PERMANENTLY", "FOUND", "PERMANENT_REDIRECT"],
                                &["NOPE"],
                                BAD
                            )),
                        ),
                        ("httpsRedirect", json!(r.chance(0.5))),
                        ("stripQuery", json!(r.chance(0.5))),
                        (
                            "portRedirect",
                            json!(r.mostly(&[443, 8443], &[0, 70000], BAD)),
                        ),
                    ],
                    r,
                    0.4,
                );
                if r.chance(0.4) {
                    rd["pathRedirect"] = json!(r.mostly(PATHS, BAD_PATHS, BAD));
                } else if r.chance(0.3) {
                    rd["prefixRewrite"] = json!(r.mostly(PATHS, BAD_PATHS, BAD));
                }
                ("redirectAction".into(), rd)
            } else {
                (
                    "directResponseAction".into(),
                    json!({"status": r.mostly(STATUSES, BAD_STATUSES, BAD), "body": value(r)}),
                )
            }
        }
        _ => (
            "delegateAction".into(),
            json!({"ref": {"name": r.pick(tables), "namespace": "gloo-system"}}),
        ),
    }
}

fn routes(
    r: &mut Rng,
    upstreams: &[String],
    tables: &[String],
    depth: usize,
    prefix: &str,
) -> Vec<Value> {
    (0..1 + r.below(4))
        .map(|i| {
            let (kind, act) = action(r, upstreams, tables, depth);
            let mut route = obj(vec![(kind.as_str(), act)]);
            if kind == "delegateAction" || depth > 0 {
                // Delegation: one prefix matcher under the parent's.
                let p = format!(
                    "{prefix}{}",
                    ({
                        let choices = ["", "a", "b/", "v1"];
                        r.pick(&choices)
                    })
                );
                route["matchers"] = json!([{"prefix": p}]);
            } else {
                route["matchers"] =
                    json!((0..1 + r.below(2)).map(|_| matcher(r)).collect::<Vec<_>>());
            }
            if r.chance(0.3) {
                route["name"] = json!(format!("r{i}"));
            }
            if r.chance(0.6) {
                route["options"] = options(r, upstreams, kind == "routeAction");
            }
            route
        })
        .collect()
}

/// One case: `(file name, text)` pairs of a whole config directory.
pub fn case(seed: u64, certs: &Certs) -> Vec<(String, String)> {
    let mut r = Rng::new(seed);
    // Draws for extauth come from a stream of their own, so the other
    // fields of every seed stay what they were before extauth existed.
    let mut x = Rng::new(seed ^ 0x0E47_A117);
    let mut files = Vec::new();
    let (mut gws, ssl) = gateways(&mut r, certs);
    if x.chance(0.4)
        && let Some(first) = gws.first_mut()
    {
        let mut d: Value = serde_json::from_str(first).expect("generated Gateway is JSON");
        d["spec"]["httpGateway"]["options"]["extauth"] = extauth_server(&mut x);
        *first = d.to_string();
    }
    for (i, g) in gws.into_iter().enumerate() {
        files.push((format!("gateway-{i}.yaml"), g));
    }
    let upstreams: Vec<String> = (0..1 + r.below(3)).map(|i| format!("up{i}")).collect();
    for u in &upstreams {
        let text = upstream(&mut r, u);
        files.push((format!("{u}.yaml"), text));
    }
    let tables: Vec<String> = (0..r.below(3)).map(|i| format!("rt{i}")).collect();
    for t in &tables {
        let spec = json!({"routes": routes(&mut r, &upstreams, &tables, 1, "/")});
        files.push((
            format!("{t}.yaml"),
            doc("gateway.solo.io/v1", "RouteTable", t, spec),
        ));
    }
    for i in 0..1 + r.below(3) {
        // Each VirtualService its own domains, mostly: shared ones are a
        // (tested) conflict, not what this oracle is after.
        let domains: Vec<Value> = (0..1 + r.below(2))
            .map(|j| {
                if r.chance(0.85) {
                    json!(format!("vs{i}-{j}.example.com"))
                } else {
                    json!(r.mostly(DOMAINS, BAD_DOMAINS, BAD))
                }
            })
            .collect();
        let mut spec = json!({"virtualHost": {
            "domains": domains,
            "routes": routes(&mut r, &upstreams, &tables, 0, "/"),
        }});
        if r.chance(0.3) {
            spec["virtualHost"]["options"] = some(
                vec![
                    ("headerManipulation", header_manipulation(&mut r)),
                    (
                        "retries",
                        json!({"retryOn": r.mostly(&["5xx", "reset"], &[""], BAD), "numRetries": r.mostly(&[1, 2], &[-1], BAD)}),
                    ),
                    (
                        "cors",
                        json!({"allowOrigin": ["https://a.com"], "exposeHeaders": [header(&mut r)]}),
                    ),
                    ("includeRequestAttemptCount", json!(r.chance(0.5))),
                    ("includeAttemptCountInResponse", json!(r.chance(0.5))),
                ],
                &mut r,
                0.4,
            );
        }
        if x.chance(0.5) {
            if !spec["virtualHost"]["options"].is_object() {
                spec["virtualHost"]["options"] = json!({});
            }
            spec["virtualHost"]["options"]["extauth"] = extauth_extension(&mut x);
        }
        if ssl && r.chance(0.5) {
            let mut s = json!({"sslFiles": {"tlsCert": certs.cert, "tlsKey": certs.key}});
            if r.chance(0.5) {
                s["sniDomains"] = json!([r.mostly(HOSTS, BAD_HOSTS, BAD)]);
            }
            spec["sslConfig"] = s;
        }
        files.push((
            format!("vs{i}.yaml"),
            doc(
                "gateway.solo.io/v1",
                "VirtualService",
                &format!("vs{i}"),
                spec,
            ),
        ));
    }
    secrets(seed, certs, &mut files);
    files
}

/// Gloo `Secret`s and the `secretRef`s that use them: an Upstream's
/// `sslConfig` (certificate, CA or both; SANs, one-way TLS) and SSL
/// VirtualServices' certificates. Draws come from a stream of their own,
/// so every other field of a seed stays what it was before.
fn secrets(seed: u64, certs: &Certs, files: &mut Vec<(String, String)>) {
    let mut s = Rng::new(seed ^ 0x5EC2_E75E);
    if !s.chance(0.4) {
        return;
    }
    let with_cert = s.chance(0.7);
    let with_ca = !with_cert || s.chance(0.5);
    let mut tls = Map::new();
    if with_cert {
        tls.insert("certChain".into(), json!(certs.cert_pem));
        tls.insert("privateKey".into(), json!(certs.key_pem));
    }
    if with_ca {
        tls.insert("rootCa".into(), json!(certs.cert_pem));
    }
    let secret = json!({"apiVersion": "gloo.solo.io/v1", "kind": "Secret", "metadata": meta("sec"), "tls": tls});
    let name = if s.chance(BAD * 4.0) {
        "missing"
    } else {
        "sec"
    };
    for (_, text) in files.iter_mut() {
        let Ok(mut d) = serde_json::from_str::<Value>(text) else {
            continue;
        };
        match d["kind"].as_str() {
            Some("Upstream") if s.chance(0.6) => {
                let mut ssl = json!({"secretRef": {"name": name}});
                if s.chance(0.3) {
                    ssl["verifySubjectAltName"] = json!([s.pick(&["localhost", "spiffe://x/y"])]);
                }
                if s.chance(0.3) {
                    ssl["oneWayTls"] = json!(s.chance(0.5));
                }
                if s.chance(0.3) {
                    ssl["sni"] = json!("localhost");
                }
                d["spec"]["sslConfig"] = ssl;
            }
            Some("VirtualService")
                if d["spec"]["sslConfig"]["sslFiles"].is_object() && s.chance(0.6) =>
            {
                let ssl = d["spec"]["sslConfig"]
                    .as_object_mut()
                    .expect("sslConfig is an object");
                ssl.remove("sslFiles");
                ssl.insert("secretRef".into(), json!({"name": name}));
            }
            _ => continue,
        }
        *text = d.to_string();
    }
    files.push(("secret.yaml".to_string(), secret.to_string()));
}
