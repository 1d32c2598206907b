//! A config edgeplane accepts but Envoy rejects: a valid regex whose RE2
//! program is larger than Envoy's default limit (100). Envoy NACKs the
//! RouteConfiguration; edgeplane reports it (log and `/status`) and never
//! sends that version again, and Envoy keeps serving the previous routes.

use crate::support::*;

const UP: &str = "backend";

fn regex_route(re: &str) -> String {
    format!(
        "- matchers:\n  - regex: '{re}'\n  routeAction:\n    single:\n      upstream:\n        name: {UP}\n        namespace: gloo-system\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_nack_is_reported_once_and_not_resent() {
    let port = free_port();
    let be = Backend::start("b1").await;
    let bport = be.port;
    let files = vec![
        ("gateway.yaml", gateway(port, "")),
        ("upstream.yaml", upstream(UP, &[bport])),
        ("vs.yaml", virtual_service(&route("/", UP, ""))),
    ];
    let s = Stack::start(port, be, &files).await;
    s.envoy.wait_serving(port, "/ok").await;
    let good = s.envoy.versions(&s.route_name()).await;
    let rejected_before = s
        .envoy
        .stat(&s.rds_stat("update_rejected"))
        .await
        .unwrap_or(0);

    let loads = s.cp.loads().await;
    let bad = virtual_service(&format!(
        "{}{}",
        regex_route("/a{1,500}"),
        route("/", UP, "")
    ));
    write_atomic(&s.dir, "vs.yaml", &bad);
    let status = s.cp.wait_load_after(loads).await;
    assert_eq!(
        status["lastLoadFailed"], false,
        "edgeplane accepts it: {status}"
    );

    // Envoy rejects it, and edgeplane attributes the NACK to the node/type.
    let node = eventually("edgeplane records Envoy's NACK", || async {
        let st = s.cp.status().await;
        let nodes = st["nodes"].as_array()?.clone();
        let route_type = nodes.first()?["types"]
            .as_array()?
            .iter()
            .find(|t| {
                t["typeUrl"]
                    .as_str()
                    .unwrap_or("")
                    .ends_with("RouteConfiguration")
            })?
            .clone();
        (!route_type["nackMessage"].as_str()?.is_empty()).then_some(route_type)
    })
    .await;
    let msg = node["nackMessage"].as_str().unwrap_or("");
    assert!(msg.contains("program size"), "Envoy's own message: {msg}");
    assert_eq!(
        s.envoy.stat(&s.rds_stat("update_rejected")).await,
        Some(rejected_before + 1)
    );
    assert!(s.cp.log_text().contains("NACKed"), "{}", s.logs());

    // Envoy still serves the last good routes.
    assert_eq!(s.envoy.versions(&s.route_name()).await, good);
    assert_eq!(http_get(port, "/ok").await.map(|r| r.0), Some(200));

    // The rejected version is not sent again: a CDS-only change goes out and
    // is applied, and the RDS response count has not moved.
    let rds_sent = node["responses"].as_u64().unwrap_or(0);
    let cds_before = s
        .envoy
        .stat("cluster_manager.cds.update_success")
        .await
        .unwrap_or(0);
    write_atomic(&s.dir, "extra.yaml", &upstream("extra", &[1]));
    eventually("CDS change applied", || async {
        (s.envoy
            .stat("cluster_manager.cds.update_success")
            .await
            .unwrap_or(0)
            > cds_before)
            .then_some(())
    })
    .await;
    let st = s.cp.status().await;
    let route_type = st["nodes"][0]["types"]
        .as_array()
        .and_then(|ts| {
            ts.iter()
                .find(|t| {
                    t["typeUrl"]
                        .as_str()
                        .unwrap_or("")
                        .ends_with("RouteConfiguration")
                })
                .cloned()
        })
        .expect("route type state");
    assert_eq!(route_type["responses"].as_u64(), Some(rds_sent), "{st}");
    assert_eq!(
        s.envoy.stat(&s.rds_stat("update_rejected")).await,
        Some(rejected_before + 1)
    );

    // Fixing the manifest sends a new version, which Envoy accepts.
    write_atomic(
        &s.dir,
        "vs.yaml",
        &virtual_service(&format!("{}{}", regex_route("/a{3}"), route("/", UP, ""))),
    );
    eventually("the fixed routes are applied", || async {
        let v = s.envoy.versions(&s.route_name()).await;
        (v.2 != good.2).then_some(())
    })
    .await;
    assert_eq!(http_get(port, "/aaa").await.map(|r| r.0), Some(200));
}
