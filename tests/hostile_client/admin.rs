//! The admin HTTP server under a hostile client: slow clients holding many
//! connections (slowloris), DNS rebinding (a foreign `Host`).

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::transport::Hostile;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_cannot_keep_healthz_from_answering() {
    let mut h = Hostile::start(&[]).await;
    let port = h.cp.admin_port;
    // 500 connections (the cap is 64), each sending its request head one
    // byte at a time, never finishing it.
    let dribblers = tokio::spawn(async move {
        let mut socks = Vec::new();
        for _ in 0..500 {
            if let Ok(Ok(mut s)) = tokio::time::timeout(
                Duration::from_secs(2),
                TcpStream::connect(("127.0.0.1", port)),
            )
            .await
            {
                let _ = s.write_all(b"GET /status HTTP/1.1\r\nHo").await;
                socks.push(s);
            }
        }
        // Dribble for 5 s.
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            for s in &mut socks {
                let _ = s.write_all(b"x").await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        socks.len()
    });
    // Meanwhile every /healthz answers within 3 s: its SYN may be dropped
    // by the kernel while the flood fills the listen queue, and Linux sends
    // it again after 1 s (the initial retransmission timeout; measured here:
    // answers take under 50 ms, or just over 1 s after such a retransmit).
    let mut answered = 0;
    while !dribblers.is_finished() {
        let started = Instant::now();
        let r = tokio::time::timeout(Duration::from_secs(3), http_get(port, "/healthz")).await;
        match r {
            Ok(Some((200, _))) => answered += 1,
            other => panic!(
                "/healthz under slowloris: {other:?} after {:?}\n{}",
                started.elapsed(),
                h.logs()
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let opened = dribblers.await.expect("dribblers");
    assert!(
        opened >= 400,
        "the hostile client opened {opened} connections"
    );
    assert!(answered >= 20, "only {answered} /healthz checks ran");
    h.assert_rss_under_mib(80, "500 slow admin connections");
    h.assert_edit_within_1s().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_host_is_refused_and_allowed_hosts_are_served() {
    let mut h = Hostile::start(&["--admin-allowed-hosts", "ops.example.com"]).await;
    let port = h.cp.admin_port;
    let get = |host: &str| {
        format!("GET /config_dump HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
    };
    for bad in [
        "attacker.example",
        "attacker.example:9091",
        "localhost.attacker.example",
    ] {
        let resp = raw_request(port, &get(bad)).await;
        assert!(resp.starts_with("HTTP/1.1 421 "), "{bad}: {resp}");
        assert!(resp.contains("--admin-allowed-hosts"), "{bad}: {resp}");
        assert!(!resp.contains("\"proxies\""), "no config leaks: {resp}");
    }
    for good in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "ops.example.com".to_string(),
        format!("ops.example.com:{port}"),
    ] {
        let resp = raw_request(port, &get(&good)).await;
        assert!(
            resp.starts_with("HTTP/1.1 200 "),
            "{good}: {}",
            &resp[..resp.len().min(300)]
        );
    }
    // An oversized head gets 431, not a buffer.
    let huge = format!(
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(64 << 10)
    );
    let resp = raw_request(port, &huge).await;
    assert!(
        resp.starts_with("HTTP/1.1 431 "),
        "{}",
        &resp[..resp.len().min(200)]
    );
    assert!(
        h.cp.log_text().contains("Host not allowed"),
        "a WARN\n{}",
        h.logs()
    );
    h.assert_rss_under_mib(80, "refused admin requests");
    h.assert_edit_within_1s().await;
}
