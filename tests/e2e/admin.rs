//! The admin listener: health, readiness, metrics and the plan summary.

use std::time::Duration;

use crate::harness::*;

#[tokio::test]
async fn health_and_readiness() {
    let g = Gateway::builder()
        .spec(
            "svc.yaml",
            spec("Svc", "v1", "/svc", "echo:").channel("/t").yaml(),
        )
        .start()
        .await;
    let r = g.admin_get("/healthz").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = g.admin_get("/readyz").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = g.admin_get("/nothing-here").await;
    assert_eq!(r.status, 404, "{}", r.body);
    // The admin listener is not the WebSocket listener, and vice versa.
    assert_eq!(http(g.addr, &get_request("/healthz")).await.status, 404);
    assert_eq!(upgrade(g.admin, "/svc/v1/t", &[]).await.status, 404);
}

#[tokio::test]
async fn metrics_count_connections_handshakes_and_the_plan() {
    let g = Gateway::builder()
        .spec(
            "svc.yaml",
            spec("Svc", "v1", "/svc", "echo:").channel("/t").yaml(),
        )
        .start()
        .await;
    let open = "portico_connections_open{api=\"/svc/v1\",route=\"/svc/v1/t\"}";

    let mut c = connect(&g.url("/svc/v1/t")).await;
    echo_text(&mut c, "counted").await;
    assert_eq!(upgrade(g.addr, "/missing/v1/t", &[]).await.status, 404);
    assert_eq!(upgrade(g.addr, "/missing/v1/t", &[]).await.status, 404);

    let m = g.metrics().await;
    assert_eq!(metric(&m, open), Some(1.0), "{m}");
    assert_eq!(
        metric(&m, "portico_handshakes_total{status=\"404\"}"),
        Some(2.0),
        "{m}"
    );
    assert_eq!(
        metric(&m, "portico_handshakes_total{status=\"101\"}"),
        Some(1.0),
        "{m}"
    );
    // The backend connect latency is observed for every backend connection.
    assert!(
        metric(&m, "portico_backend_connect_seconds_count{api=\"/svc/v1\"}")
            .is_some_and(|n| n >= 1.0),
        "{m}"
    );
    let hash = g.plan_hash().await;
    assert_eq!(
        metric(&m, &format!("portico_plan_info{{hash=\"{hash}\"}}")),
        Some(1.0),
        "{m}"
    );

    // Closed: the gauge goes back to 0 and the close is counted.
    within(STEP, "closing", c.close(None)).await.expect("close");
    while let Some(Ok(_)) = next_message(&mut c).await {}
    let deadline = std::time::Instant::now() + STEP;
    loop {
        let m = g.metrics().await;
        if metric(&m, open) == Some(0.0) {
            assert!(
                m.contains("portico_closes_total{initiator=\"client\",code=\"1005\"} 1")
                    || m.contains("portico_closes_total{initiator=\"client\",code=\"1000\"} 1"),
                "{m}"
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still open:\n{m}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn plan_summary_has_the_hash_and_apis_but_never_a_backend_url() {
    let backend = Backend::start(Mode::Echo).await;
    let endpoint = format!("{}/internal-base-path", backend.endpoint());
    let g = Gateway::builder()
        .spec(
            "svc.yaml",
            spec("Svc", "v1", "/svc", &endpoint)
                .default_version()
                .mapped("/rooms/{id}", "/secret-mapping?room={id}")
                .yaml(),
        )
        .spec(
            "other.yaml",
            spec("Other", "2", "/other/{version}", "echo:")
                .channel("/x")
                .yaml(),
        )
        .start()
        .await;
    let r = g.admin_get("/plan").await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type").is_some_and(|t| t.contains("json")),
        "{:?}",
        r.headers
    );
    let plan: Value = serde_json::from_str(&r.body).expect("JSON");
    assert!(
        plan["hash"]
            .as_str()
            .is_some_and(|h| h.starts_with("sha256:")),
        "{plan:#}"
    );
    let mut contexts: Vec<&str> = plan["apis"]
        .as_array()
        .expect("apis")
        .iter()
        .map(|a| a["context"].as_str().expect("context"))
        .collect();
    contexts.sort();
    assert_eq!(contexts, ["/other/2", "/svc/v1"]);
    let svc = plan["apis"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["context"] == "/svc/v1")
        .unwrap();
    assert_eq!(svc["title"], "Svc");
    assert_eq!(svc["routes"][0]["pattern"], "/svc/v1/rooms/{id}");

    for secret in [
        "ws://",
        "echo:",
        "127.0.0.1",
        &backend.addr.port().to_string(),
        "internal-base-path",
        "secret-mapping",
    ] {
        assert!(
            !r.body.contains(secret),
            "/plan shows {secret:?}:\n{}",
            r.body
        );
    }
}
