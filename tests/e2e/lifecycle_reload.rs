//! Changing an API's lifecycle state in its spec acts on live connections and new handshakes.

use crate::harness::*;

fn svc(lifecycle: &str) -> String {
    spec("Svc", "v1", "/svc", "echo:")
        .lifecycle(lifecycle)
        .channel("/t")
        .yaml()
}

#[tokio::test]
async fn blocking_an_api_closes_its_connections_and_refuses_new_ones() {
    let backend = Backend::start(Mode::Echo).await;
    let g = Gateway::builder()
        .spec("svc.yaml", svc("PUBLISHED"))
        .spec(
            "other.yaml",
            spec("Other", "v1", "/other", &backend.endpoint())
                .channel("/t")
                .yaml(),
        )
        .start()
        .await;
    g.wait_watching().await;
    let mut live = Vec::new();
    for i in 0..3 {
        let mut c = connect(&g.url("/svc/v1/t")).await;
        echo_text(&mut c, &format!("client {i}")).await;
        live.push(c);
    }
    let mut other = connect(&g.url("/other/v1/t")).await;
    echo_text(&mut other, "other").await;
    let before = g.plan_hash().await;

    g.write_spec("svc.yaml", &svc("BLOCKED"));
    g.wait_for_new_plan(&before).await;
    for c in &mut live {
        let (code, reason) = expect_close(c).await;
        assert_eq!(code, 1001, "{reason}");
        assert!(!reason.is_empty());
    }
    let r = upgrade(g.addr, "/svc/v1/t", &[]).await;
    assert_eq!(r.status, 503, "{}", r.body);
    // Another API's connection is untouched.
    echo_text(&mut other, "still open").await;
    assert!(
        !backend.received().iter().any(|m| m.is_close()),
        "the other API's backend saw a Close"
    );

    // Unblocked: served again.
    let blocked = g.plan_hash().await;
    g.write_spec("svc.yaml", &svc("PUBLISHED"));
    g.wait_for_new_plan(&blocked).await;
    let mut c = connect(&g.url("/svc/v1/t")).await;
    echo_text(&mut c, "back").await;
}

#[tokio::test]
async fn retiring_an_api_closes_its_connections_and_answers_410() {
    let g = Gateway::builder()
        .spec("svc.yaml", svc("DEPRECATED"))
        .start()
        .await;
    g.wait_watching().await;
    let mut c = connect(&g.url("/svc/v1/t")).await;
    echo_text(&mut c, "soon gone").await;
    let before = g.plan_hash().await;
    g.write_spec("svc.yaml", &svc("RETIRED"));
    g.wait_for_new_plan(&before).await;
    assert_eq!(expect_close(&mut c).await.0, 1001);
    assert_eq!(upgrade(g.addr, "/svc/v1/t", &[]).await.status, 410);
}

/// The lifecycle is checked before the topic: an unknown topic of a CREATED API discloses nothing
/// (the same 404 as a path no API serves), and every path of a RETIRED API answers 410.
#[tokio::test]
async fn lifecycle_is_checked_before_the_topic() {
    let g = Gateway::builder()
        .spec("created.yaml", {
            spec("Hidden Thing", "v1", "/hidden", "echo:")
                .lifecycle("CREATED")
                .channel("/t")
                .yaml()
        })
        .spec("retired.yaml", {
            spec("Old Thing", "v1", "/old", "echo:")
                .lifecycle("RETIRED")
                .channel("/t")
                .yaml()
        })
        .start()
        .await;
    let nowhere = upgrade(g.addr, "/nothing/here", &[]).await;
    assert_eq!(nowhere.status, 404);
    for path in ["/hidden/v1/t", "/hidden/v1/unknown"] {
        let r = upgrade(g.addr, path, &[]).await;
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.body, nowhere.body, "{path} discloses the API");
        assert!(!r.body.contains("Hidden Thing"), "{}", r.body);
    }
    for path in ["/old/v1/t", "/old/v1/unknown"] {
        let r = upgrade(g.addr, path, &[]).await;
        assert_eq!(r.status, 410, "{path}: {}", r.body);
    }
}
