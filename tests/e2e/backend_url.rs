//! What the backend is asked for: URL (mapping, parameters, query) and headers.

use crate::harness::*;

async fn gateway(backend: &Backend, extra_args: &[&str]) -> Gateway {
    Gateway::builder()
        .spec(
            "svc.yaml",
            spec("Svc", "v1", "/svc", &format!("{}/base", backend.endpoint()))
                .mapped("/rooms/{roomID}", "/rooms?room={uri.var.roomID}")
                .channel("/files/{name}")
                .channel("/plain/topic")
                .channel("/*")
                .yaml(),
        )
        .args(extra_args)
        .start()
        .await
}

/// Opens `target` with a raw upgrade request and returns what the backend was asked for.
async fn backend_sees(
    g: &Gateway,
    backend: &Backend,
    target: &str,
    headers: &[(&str, &str)],
) -> Handshake {
    let before = backend.handshakes().len();
    let r = upgrade(g.addr, target, headers).await;
    assert_eq!(r.status, 101, "{target}: {} {}", r.status, r.body);
    backend.handshake(before + 1).await
}

#[tokio::test]
async fn uri_mapping_and_hostile_parameters() {
    let backend = Backend::start(Mode::Echo).await;
    let g = gateway(&backend, &[]).await;
    let uri = |h: Handshake| h.uri;

    assert_eq!(
        uri(backend_sees(&g, &backend, "/svc/v1/rooms/lobby", &[]).await),
        "/base/rooms?room=lobby"
    );
    // Values that would add a segment, a query, a fragment or climb up arrive encoded, in place.
    for (raw, encoded) in [
        ("a%2Fb", "a%2Fb"),
        ("a%3Fx%3D1", "a%3Fx%3D1"),
        ("a%26evil%3D1", "a%26evil%3D1"),
        ("%23frag", "%23frag"),
        ("..", "%2E%2E"),
        ("%2E%2E", "%2E%2E"),
        ("sp%20ace", "sp%20ace"),
    ] {
        let mapped = uri(backend_sees(&g, &backend, &format!("/svc/v1/rooms/{raw}"), &[]).await);
        assert_eq!(mapped, format!("/base/rooms?room={encoded}"), "{raw}");
        let plain = uri(backend_sees(&g, &backend, &format!("/svc/v1/files/{raw}"), &[]).await);
        assert_eq!(plain, format!("/base/files/{encoded}"), "{raw}");
        assert_eq!(
            plain.matches('/').count(),
            3,
            "{raw} added a segment: {plain}"
        );
        assert!(
            !plain.contains('?') && !plain.contains('#'),
            "{raw}: {plain}"
        );
    }
    // In a `/*` remainder, every segment is encoded on its own: `..` cannot climb.
    assert_eq!(
        uri(backend_sees(&g, &backend, "/svc/v1/x/../y", &[]).await),
        "/base/x/%2E%2E/y"
    );
}

#[tokio::test]
async fn topics_without_mapping_and_wildcards() {
    let backend = Backend::start(Mode::Echo).await;
    let g = gateway(&backend, &[]).await;
    // No mapping: endpoint + the channel address.
    assert_eq!(
        backend_sees(&g, &backend, "/svc/v1/plain/topic", &[])
            .await
            .uri,
        "/base/plain/topic"
    );
    // `/*`: endpoint + the rest of the path.
    assert_eq!(
        backend_sees(&g, &backend, "/svc/v1/deep/er/path", &[])
            .await
            .uri,
        "/base/deep/er/path"
    );
    assert_eq!(
        backend_sees(&g, &backend, "/svc/v1/one", &[]).await.uri,
        "/base/one"
    );
}

#[tokio::test]
async fn query_is_forwarded_without_credentials() {
    let backend = Backend::start(Mode::Echo).await;
    let g = gateway(&backend, &[]).await;
    assert_eq!(
        backend_sees(
            &g,
            &backend,
            "/svc/v1/plain/topic?a=1&access_token=s3cret&b=x%20y&apikey=k3y&APIKEY=k4y",
            &[]
        )
        .await
        .uri,
        "/base/plain/topic?a=1&b=x%20y"
    );
    // Appended to a mapping that has a query of its own.
    assert_eq!(
        backend_sees(&g, &backend, "/svc/v1/rooms/lobby?apikey=k&since=5", &[])
            .await
            .uri,
        "/base/rooms?room=lobby&since=5"
    );
    // Only credentials: no query at all.
    assert_eq!(
        backend_sees(&g, &backend, "/svc/v1/plain/topic?access_token=t", &[])
            .await
            .uri,
        "/base/plain/topic"
    );
    let everything = format!("{:?}", backend.handshakes());
    assert!(!everything.contains("s3cret") && !everything.contains("k3y"));
}

#[tokio::test]
async fn origin_allowlisted_and_forwarding_headers() {
    let backend = Backend::start(Mode::Echo).await;
    let g = gateway(&backend, &["--forward-header", "x-tenant"]).await;
    let h = backend_sees(
        &g,
        &backend,
        "/svc/v1/plain/topic",
        &[
            ("origin", "https://app.example"),
            ("x-tenant", "acme"),
            ("authorization", "Bearer secret-token"),
            ("cookie", "session=secret-cookie"),
            ("x-internal", "nope"),
        ],
    )
    .await;
    assert_eq!(h.header("origin"), Some("https://app.example"));
    assert_eq!(h.header("x-tenant"), Some("acme"));
    assert_eq!(h.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(h.header("x-forwarded-proto"), Some("http"));
    let forwarded = h.header("forwarded").expect("a Forwarded header");
    assert!(
        forwarded.contains("for=127.0.0.1")
            && forwarded.contains("proto=http")
            && forwarded.contains("host=\"127.0.0.1\""),
        "{forwarded}"
    );
    for name in ["authorization", "cookie", "x-internal"] {
        assert!(
            h.header(name).is_none(),
            "{name} was forwarded: {:?}",
            h.headers
        );
    }

    // Without the flag: the default allowlist (user-agent, accept-language, x-request-id).
    let backend2 = Backend::start(Mode::Echo).await;
    let g2 = gateway(&backend2, &[]).await;
    let h = backend_sees(
        &g2,
        &backend2,
        "/svc/v1/plain/topic",
        &[
            ("user-agent", "e2e/1.0"),
            ("accept-language", "fr"),
            ("x-request-id", "req-42"),
            ("x-tenant", "acme"),
            ("x-forwarded-for", "10.0.0.1"),
        ],
    )
    .await;
    assert_eq!(h.header("user-agent"), Some("e2e/1.0"));
    assert_eq!(h.header("accept-language"), Some("fr"));
    assert_eq!(h.header("x-request-id"), Some("req-42"));
    assert!(h.header("x-tenant").is_none());
    // A prior X-Forwarded-For is extended with the client's address.
    assert_eq!(h.header("x-forwarded-for"), Some("10.0.0.1, 127.0.0.1"));
}

#[tokio::test]
async fn a_client_query_cannot_override_the_mapping() {
    let backend = Backend::start(Mode::Echo).await;
    let g = gateway(&backend, &[]).await;
    for query in [
        "room=admin",
        "room=admin&room=root",
        "ROOM=admin",
        "room%5B%5D=admin",
    ] {
        assert_eq!(
            backend_sees(
                &g,
                &backend,
                &format!("/svc/v1/rooms/lobby?{query}&since=5"),
                &[]
            )
            .await
            .uri,
            "/base/rooms?room=lobby&since=5",
            "{query}"
        );
    }
}

#[tokio::test]
async fn empty_path_segments_never_reach_the_backend() {
    let backend = Backend::start(Mode::Echo).await;
    let g = gateway(&backend, &[]).await;
    for (path, expected) in [
        ("/svc/v1//evil.example/steal", "/base/evil.example/steal"),
        ("/svc/v1/a//b", "/base/a/b"),
        ("/svc/v1///x/", "/base/x"),
    ] {
        let uri = backend_sees(&g, &backend, path, &[]).await.uri;
        assert_eq!(uri, expected, "{path}");
        assert!(!uri.contains("//"), "{path}: {uri}");
    }
}

#[tokio::test]
async fn forwarding_headers_are_built_from_sanitised_parts() {
    let backend = Backend::start(Mode::Echo).await;
    let g = gateway(&backend, &[]).await;
    let before = backend.handshakes().len();
    // Two client X-Forwarded-For headers, one with a non-ASCII byte and a bogus entry.
    let request = upgrade_request("/svc/v1/plain/topic", &[]).replace(
        "host: 127.0.0.1\r\n",
        "host: 127.0.0.1\r\nx-forwarded-for: 10.0.0.1, b\u{e9}gus\r\nx-forwarded-for: 10.0.0.2\r\n",
    );
    assert_eq!(http(g.addr, &request).await.status, 101);
    let h = backend.handshake(before + 1).await;
    assert_eq!(
        h.header("x-forwarded-for"),
        Some("10.0.0.1, 10.0.0.2, 127.0.0.1")
    );
    assert_eq!(
        h.header("forwarded"),
        Some("for=127.0.0.1;proto=http;host=\"127.0.0.1\"")
    );
}

#[tokio::test]
async fn unsafe_query_bytes_are_encoded_not_a_backend_failure() {
    let backend = Backend::start(Mode::Echo).await;
    let g = gateway(&backend, &[]).await;
    for (raw, encoded) in [
        ("q=%22\"", "q=%22%22"),
        ("q=|", "q=%7C"),
        ("q=<>", "q=%3C%3E"),
        ("q=`", "q=%60"),
        ("q=\\", "q=%5C"),
        ("q=^", "q=%5E"),
        ("q={}", "q=%7B%7D"),
        ("q=100%", "q=100%25"),
    ] {
        assert_eq!(
            backend_sees(&g, &backend, &format!("/svc/v1/plain/topic?{raw}"), &[])
                .await
                .uri,
            format!("/base/plain/topic?{encoded}"),
            "{raw}"
        );
    }
    let metrics = g.metrics().await;
    assert_eq!(
        metric(&metrics, "portico_handshakes_total{status=\"502\"}"),
        None,
        "{metrics}"
    );
}

#[tokio::test]
async fn credential_spellings_are_all_stripped() {
    let backend = Backend::start(Mode::Echo).await;
    let g = gateway(&backend, &[]).await;
    for query in [
        "a=1;access_token=S3",
        "a=1&access_token[]=S3",
        "a=1&apikey[x]=S3",
        "a=1&%20access_token=S3",
        "a=1&access%255Ftoken=S3",
        "a=1&Access%5FToken=S3",
    ] {
        let uri = backend_sees(&g, &backend, &format!("/svc/v1/plain/topic?{query}"), &[])
            .await
            .uri;
        assert_eq!(uri, "/base/plain/topic?a=1", "{query}");
    }
    assert!(!format!("{:?}", backend.handshakes()).contains("S3"));
}
