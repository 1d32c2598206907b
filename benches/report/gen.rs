//! Generated manifests of a chosen size, and the one-route edits applied
//! to them.
//!
//! Shape: one Gateway on 127.0.0.1:`port`, VirtualServices of at most
//! `per_vs` routes each (`ROUTES_PER_VS`, or all routes in one) (domain `vs-<j>.bench`), route `i` of VS `j`
//! matching the prefix `/vs<j>/r<i>` and going to upstream `u<n % upstreams>`,
//! every Upstream a static host on 127.0.0.1:`backend_port`. One file per
//! VirtualService, as users keep them.

use std::path::PathBuf;

use edgeplane::source::SourceFile;

pub const ROUTES_PER_VS: usize = 100;

/// The proxy the generated Gateway belongs to (no `proxyNames`: Gloo's
/// default): the key of its resources in a translation, and the
/// `node.metadata.role` the ADS clients send.
pub const PROXY_KEY: &str = "gloo-system~gateway-proxy";

/// What to generate.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub routes: usize,
    pub upstreams: usize,
    /// The Gateway's port (Envoy listens there).
    pub port: u16,
    /// Where every Upstream points.
    pub backend_port: u16,
    /// Routes per VirtualService: `ROUTES_PER_VS`, or `usize::MAX` for
    /// all of them in one (a common Gloo layout).
    pub per_vs: usize,
}

/// `(file name, content)` of every manifest.
pub fn manifests(s: Shape) -> Vec<(String, String)> {
    let mut files = vec![("gateway.yaml".to_string(), gateway(s.port))];
    let mut ups = String::new();
    for u in 0..s.upstreams.max(1) {
        ups.push_str(&upstream(&format!("u{u}"), s.backend_port));
    }
    files.push(("upstreams.yaml".to_string(), ups));
    let per_vs = s.per_vs.clamp(1, s.routes.max(1));
    let vss = s.routes.div_ceil(per_vs).max(1);
    for j in 0..vss {
        let first = j * per_vs;
        let count = per_vs.min(s.routes.saturating_sub(first)).max(1);
        files.push((
            vs_file(j),
            virtual_service(j, first, count, s.upstreams, &[]),
        ));
    }
    files
}

/// `manifests(s)` with `probe_edit(s, k)` applied (`None`: as generated).
pub fn manifests_edited(s: Shape, edit: Option<usize>) -> Vec<(String, String)> {
    let mut files = manifests(s);
    if let Some(k) = edit {
        let (name, content, _) = probe_edit(s, k);
        if let Some(f) = files.iter_mut().find(|(n, _)| *n == name) {
            f.1 = content;
        }
    }
    files
}

/// `manifests_edited(s, edit)` as the library reads them, under
/// `/bench/manifests`.
pub fn source_files(s: Shape, edit: Option<usize>) -> Vec<SourceFile> {
    manifests_edited(s, edit)
        .into_iter()
        .map(|(name, text)| SourceFile {
            path: PathBuf::from("/bench/manifests").join(name),
            text,
        })
        .collect()
}

pub fn vs_file(j: usize) -> String {
    format!("vs-{j}.yaml")
}

/// The host header that selects VirtualService `j`.
pub fn vs_domain(j: usize) -> String {
    format!("vs-{j}.bench")
}

/// Edit number `k`: VirtualService 0 rewritten with one extra route,
/// `/probe-<k>` → `u0`, ahead of its others. Returns (file name, content,
/// probe path). A request for the probe path with host `vs_domain(0)` gets
/// the backend's 200 once the edit is served, Envoy's 404 before.
pub fn probe_edit(s: Shape, k: usize) -> (String, String, String) {
    let probe = format!("/probe-{k}");
    let count = s.per_vs.min(s.routes).max(1);
    let content = virtual_service(0, 0, count, s.upstreams, &[probe.as_str()]);
    (vs_file(0), content, probe)
}

/// The Gateway on 127.0.0.1:`port` (one document, ending in `---`).
pub fn gateway(port: u16) -> String {
    format!(
        "apiVersion: gateway.solo.io/v1\nkind: Gateway\nmetadata:\n  name: gw\n  namespace: gloo-system\nspec:\n  bindAddress: 127.0.0.1\n  bindPort: {port}\n  httpGateway: {{}}\n---\n"
    )
}

/// Upstream `name` in `gloo-system`, a static host on
/// 127.0.0.1:`backend_port` (one document, ending in `---`).
pub fn upstream(name: &str, backend_port: u16) -> String {
    format!(
        "apiVersion: gloo.solo.io/v1\nkind: Upstream\nmetadata:\n  name: {name}\n  namespace: gloo-system\nspec:\n  static:\n    hosts:\n    - addr: 127.0.0.1\n      port: {backend_port}\n---\n"
    )
}

fn virtual_service(
    j: usize,
    first: usize,
    count: usize,
    upstreams: usize,
    extra: &[&str],
) -> String {
    let mut s = format!(
        "apiVersion: gateway.solo.io/v1\nkind: VirtualService\nmetadata:\n  name: vs-{j}\n  namespace: gloo-system\nspec:\n  virtualHost:\n    domains: ['{}']\n    routes:\n",
        vs_domain(j)
    );
    let route = |s: &mut String, prefix: &str, up: usize| {
        s.push_str(&format!(
            "    - matchers:\n      - prefix: {prefix}\n      routeAction:\n        single:\n          upstream:\n            name: u{up}\n            namespace: gloo-system\n"
        ));
    };
    for p in extra {
        route(&mut s, p, 0);
    }
    for i in 0..count {
        let n = first + i;
        route(&mut s, &format!("/vs{j}/r{i}"), n % upstreams.max(1));
    }
    s
}
