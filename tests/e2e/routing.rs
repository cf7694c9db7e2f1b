//! Which API and route a request path reaches, and how refusals look.

use crate::harness::*;

/// Makes a WebSocket handshake for `path` and returns the URI the backend was asked for.
async fn routed(gateway: &Gateway, backend: &Backend, path: &str) -> String {
    let before = backend.handshakes().len();
    let response = upgrade(gateway.addr, path, &[]).await;
    assert_eq!(
        response.status, 101,
        "{path}: expected 101, got {} {}",
        response.status, response.body
    );
    backend.handshake(before + 1).await.uri
}

async fn routing_gateway(backend: &Backend) -> Gateway {
    let b = backend.endpoint();
    Gateway::builder()
        .spec(
            "alpha.yaml",
            spec("Alpha", "v1", "/{version}/alpha", &format!("{b}/alpha"))
                .default_version()
                .mapped("/rooms/lobby", "/literal")
                .mapped("/rooms/{roomID}", "/template?room={uri.var.roomID}")
                .channel("/*")
                .yaml(),
        )
        .spec(
            "beta.yaml",
            spec("Beta", "2.0", "/beta/{version}", &format!("{b}/beta"))
                .channel("/feed")
                .yaml(),
        )
        .spec(
            "gamma.yaml",
            spec("Gamma", "3", "/gamma", &format!("{b}/gamma"))
                .default_version()
                .channel("/feed")
                .yaml(),
        )
        .spec(
            "delta.yaml",
            spec(
                "Delta",
                "v1",
                "/{version}/alpha/admin",
                &format!("{b}/delta"),
            )
            .channel("/*")
            .yaml(),
        )
        .start()
        .await
}

#[tokio::test]
async fn contexts_versions_and_route_precedence() {
    let backend = Backend::start(Mode::Echo).await;
    let g = routing_gateway(&backend).await;

    // `{version}` as the first segment, and as the last one.
    assert_eq!(
        routed(&g, &backend, "/v1/alpha/rooms/lobby").await,
        "/alpha/literal"
    );
    assert_eq!(routed(&g, &backend, "/beta/2.0/feed").await, "/beta/feed");
    // No `{version}` in the context: the version is appended.
    assert_eq!(routed(&g, &backend, "/gamma/3/feed").await, "/gamma/feed");

    // defaultVersion: the same API without the version in the path.
    assert_eq!(
        routed(&g, &backend, "/alpha/rooms/lobby").await,
        "/alpha/literal"
    );
    assert_eq!(
        routed(&g, &backend, "/alpha/rooms/kitchen").await,
        "/alpha/template?room=kitchen"
    );
    assert_eq!(routed(&g, &backend, "/gamma/feed").await, "/gamma/feed");
    // ...and only for the API that asked for it.
    assert_eq!(upgrade(g.addr, "/beta/feed", &[]).await.status, 404);

    // Literal beats template beats `/*`.
    assert_eq!(
        routed(&g, &backend, "/v1/alpha/rooms/lobby").await,
        "/alpha/literal"
    );
    assert_eq!(
        routed(&g, &backend, "/v1/alpha/rooms/kitchen").await,
        "/alpha/template?room=kitchen"
    );
    assert_eq!(
        routed(&g, &backend, "/v1/alpha/rooms/kitchen/sink").await,
        "/alpha/rooms/kitchen/sink"
    );
    assert_eq!(
        routed(&g, &backend, "/v1/alpha/elsewhere").await,
        "/alpha/elsewhere"
    );

    // The longest context wins: /v1/alpha/admin is Delta's, although Alpha has `/*`.
    assert_eq!(
        routed(&g, &backend, "/v1/alpha/admin/users").await,
        "/delta/users"
    );
    assert_eq!(
        routed(&g, &backend, "/v1/alpha/administrators").await,
        "/alpha/administrators"
    );

    // Path parameters are percent-decoded exactly once (and encoded again for the backend):
    // `%2541` is the value `%41`, not `A`.
    assert_eq!(
        routed(&g, &backend, "/v1/alpha/rooms/%2541").await,
        "/alpha/template?room=%2541"
    );
    assert_eq!(
        routed(&g, &backend, "/v1/alpha/rooms/caf%C3%A9").await,
        "/alpha/template?room=caf%C3%A9"
    );
}

#[tokio::test]
async fn refusals_are_plain_http_statuses() {
    let backend = Backend::start(Mode::Echo).await;
    let g = routing_gateway(&backend).await;

    // No API at this path: 404 with a short plain-text reason.
    let r = upgrade(g.addr, "/nowhere/v1/feed", &[]).await;
    assert_eq!(r.status, 404);
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("text/plain")),
        "{:?}",
        r.headers
    );
    assert!(!r.body.trim().is_empty(), "a 404 explains itself");
    // The API exists, the topic does not: 404 too.
    let r = upgrade(g.addr, "/beta/2.0/nothing", &[]).await;
    assert_eq!(r.status, 404);
    assert!(r.body.contains("Beta"), "{}", r.body);

    // Not GET: 405 with Allow.
    let r = http(
        g.addr,
        "POST /beta/2.0/feed HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET"));

    // A plain GET on a valid route: 426 Upgrade Required.
    let r = http(g.addr, &get_request("/beta/2.0/feed")).await;
    assert_eq!(r.status, 426);
    assert_eq!(r.header("upgrade"), Some("websocket"));
    assert!(!r.body.trim().is_empty());

    // An unsupported version: 426 naming 13; a missing key: 400 (RFC 6455 §4.2.1).
    let r = http(
        g.addr,
        "GET /beta/2.0/feed HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\n\
         sec-websocket-version: 8\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 426);
    let r = http(
        g.addr,
        "GET /beta/2.0/feed HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\n\
         sec-websocket-version: 13\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 400);

    // Not HTTP at all: 400.
    let r = http(g.addr, "\x16\x03\x01 hello\r\n\r\n").await;
    assert_eq!(r.status, 400);

    // None of these reached the backend.
    assert!(
        backend.handshakes().is_empty(),
        "{:?}",
        backend.handshakes()
    );
}

#[tokio::test]
async fn a_client_too_slow_to_send_its_handshake_gets_408() {
    let g = Gateway::builder()
        .spec(
            "svc.yaml",
            spec("Svc", "v1", "/svc", "echo:").channel("/t").yaml(),
        )
        .args(&["--handshake-timeout", "0.5"])
        .start()
        .await;
    // Half a request head, then nothing.
    let r = http(g.addr, "GET /svc/v1/t HTTP/1.1\r\nhost: x\r\n").await;
    assert_eq!(r.status, 408);
}

#[tokio::test]
async fn lifecycle_states_decide_what_is_served() {
    let states = [
        "CREATED",
        "RETIRED",
        "BLOCKED",
        "DEPRECATED",
        "PROTOTYPED",
        "PUBLISHED",
    ];
    let mut builder = Gateway::builder();
    for state in states {
        let lower = state.to_ascii_lowercase();
        builder = builder.spec(
            &format!("{lower}.yaml"),
            spec(state, "v1", &format!("/{lower}"), "echo:")
                .lifecycle(state)
                .channel("/x")
                .yaml(),
        );
    }
    let g = builder.start().await;

    assert_eq!(upgrade(g.addr, "/created/v1/x", &[]).await.status, 404);
    let r = upgrade(g.addr, "/retired/v1/x", &[]).await;
    assert_eq!(r.status, 410, "{}", r.body);
    let r = upgrade(g.addr, "/blocked/v1/x", &[]).await;
    assert_eq!(r.status, 503, "{}", r.body);

    // DEPRECATED: served, with a Deprecation header.
    let (mut c, response) = try_connect_request(client_request(&g.url("/deprecated/v1/x"), &[]))
        .await
        .expect("a DEPRECATED API is served");
    assert!(
        response.headers().get("deprecation").is_some(),
        "{:?}",
        response.headers()
    );
    echo_text(&mut c, "still here").await;

    // PROTOTYPED and PUBLISHED: served, without a Deprecation header.
    for path in ["/prototyped/v1/x", "/published/v1/x"] {
        let (mut c, response) = try_connect_request(client_request(&g.url(path), &[]))
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(response.headers().get("deprecation").is_none(), "{path}");
        echo_text(&mut c, path).await;
    }
}

#[tokio::test]
async fn handshakes_follow_rfc_6455() {
    let backend = Backend::start(Mode::Echo).await;
    let g = routing_gateway(&backend).await;
    const KEY: &str = "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let request = |version: &str, headers: &str| {
        format!(
            "GET /beta/2.0/feed HTTP/{version}\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\
             sec-websocket-version: 13\r\n{headers}\r\n"
        )
    };
    let cases = [
        ("HTTP/1.0", request("1.0", &format!("host: x\r\n{KEY}"))),
        (
            "two keys",
            request("1.1", &format!("host: x\r\n{KEY}{KEY}")),
        ),
        (
            "a key of 15 bytes",
            request(
                "1.1",
                "host: x\r\nsec-websocket-key: AAAAAAAAAAAAAAAAAAAA\r\n",
            ),
        ),
        (
            "a key that is not base64",
            request(
                "1.1",
                "host: x\r\nsec-websocket-key: !!!!!!!!!!!!!!!!!!!!!!==\r\n",
            ),
        ),
        ("no Host", request("1.1", KEY)),
        (
            "two Hosts",
            request("1.1", &format!("host: x\r\nhost: y\r\n{KEY}")),
        ),
        ("Host a\\", request("1.1", &format!("host: a\\\r\n{KEY}"))),
    ];
    for (what, raw) in &cases {
        let r = http(g.addr, raw).await;
        assert_eq!(r.status, 400, "{what}: {} {}", r.status, r.body);
    }
    // The well-formed one still opens.
    let r = http(g.addr, &request("1.1", &format!("host: x\r\n{KEY}"))).await;
    assert_eq!(r.status, 101);
    assert_eq!(backend.handshakes().len(), 1, "{:?}", backend.handshakes());
}
