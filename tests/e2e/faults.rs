//! The fault suite: a hostile or failing environment around the gateway. Peers that stop reading,
//! vanish mid-write or exhaust descriptors; logs written to a file; the admin listener addressed
//! by a foreign host name. Each scenario ends by itself within seconds.

use std::time::{Duration, Instant};

use crate::harness::*;

const OPEN: &str = "portico_connections_open{api=\"/svc/v1\",route=\"/svc/v1/t\"}";
/// Larger than the loopback socket buffers between the gateway and a peer, so that a write of
/// it blocks when the peer does not read.
const BIG: usize = 32 * 1024 * 1024;

async fn gateway_to(endpoint: &str, args: &[&str]) -> Gateway {
    Gateway::builder()
        .spec(
            "svc.yaml",
            spec("Svc", "v1", "/svc", endpoint).channel("/t").yaml(),
        )
        .args(
            &[
                &[
                    "--max-message-bytes",
                    "67108864",
                    "--max-frame-bytes",
                    "67108864",
                ][..],
                args,
            ]
            .concat(),
        )
        .start()
        .await
}

/// Waits (up to `limit`) until no connection is open; panics with what is left.
async fn wait_all_closed(g: &Gateway, limit: Duration, what: &str) {
    let deadline = Instant::now() + limit;
    loop {
        let open = metric(&g.metrics().await, OPEN).unwrap_or(0.0);
        if open == 0.0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {open} connection(s) still open after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn wait_open(g: &Gateway, n: f64) {
    let deadline = Instant::now() + STEP;
    while metric(&g.metrics().await, OPEN).unwrap_or(0.0) != n {
        assert!(Instant::now() < deadline, "{n} connection(s) never opened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_client_leaving_while_the_backend_stalls_frees_its_slot() {
    let backend = Backend::start(Mode::Stall).await;
    // No keepalive and no write timeout: only noticing the client's departure can end the relay.
    let g = gateway_to(&backend.endpoint(), &["--keepalive", "0"]).await;
    let mut c = connect(&g.url("/svc/v1/t")).await;
    wait_open(&g, 1.0).await;
    // The gateway forwards the message as it arrives until its write to the backend blocks; then
    // the client's send blocks too (everything between is bounded socket buffers).
    let sending = c.send(Message::binary(vec![1u8; BIG]));
    let blocked = tokio::time::timeout(Duration::from_secs(1), sending).await;
    assert!(blocked.is_err(), "a stalled backend took {BIG} bytes");
    // The client vanishes. Its FIN would wait behind its own unsent bytes, so it is a reset; a
    // client that closes gracefully with bytes still unsent is caught by the write timeout.
    match c.get_ref() {
        tokio_tungstenite::MaybeTlsStream::Plain(tcp) => abort(tcp),
        _ => unreachable!("a plain connection"),
    }
    drop(c);
    wait_all_closed(&g, Duration::from_secs(15), "client left, backend stalled").await;
}

#[tokio::test]
async fn a_backend_leaving_while_the_client_stalls_frees_its_slot() {
    let backend = Backend::start(Mode::SendThenVanish(BIG)).await;
    let g = gateway_to(&backend.endpoint(), &["--keepalive", "0"]).await;
    // A client that never reads: the gateway blocks writing the backend's message to it.
    let _deaf = RawClient::connect(g.addr, "/svc/v1/t").await;
    wait_open(&g, 1.0).await;
    wait_all_closed(&g, Duration::from_secs(15), "backend left, client stalled").await;
}

#[tokio::test]
async fn a_write_blocked_past_the_write_timeout_closes_with_1011() {
    let backend = Backend::start(Mode::Stall).await;
    let g = Gateway::builder()
        .spec(
            "svc.yaml",
            spec("Svc", "v1", "/svc", &backend.endpoint())
                .channel("/t")
                .yaml(),
        )
        .args(&[
            "--max-message-bytes",
            "67108864",
            "--max-frame-bytes",
            "67108864",
            "--keepalive",
            "0",
        ])
        // The environment fallback of --write-timeout.
        .env("PORTICO_WRITE_TIMEOUT", Some("1"))
        .start()
        .await;
    let mut c = connect(&g.url("/svc/v1/t")).await;
    within(
        STEP,
        "sending a large message",
        c.send(Message::binary(vec![1u8; BIG])),
    )
    .await
    .expect("send");
    let (code, reason) = expect_close(&mut c).await;
    assert_eq!((code, reason.as_str()), (1011, "backend write timeout"));
    wait_all_closed(&g, Duration::from_secs(10), "after the write timeout").await;
}

#[tokio::test]
async fn logs_written_to_a_file_carry_no_colour_codes() {
    // The default (pretty) format, and no NO_COLOR: only the terminal test decides.
    let g = Gateway::builder()
        .spec(
            "svc.yaml",
            spec("Svc", "v1", "/svc", "echo:").channel("/t").yaml(),
        )
        .env("NO_COLOR", None)
        .start()
        .await;
    let mut c = connect(&g.url("/svc/v1/t")).await;
    echo_text(&mut c, "hello").await;
    drop(c);
    let log = g.log();
    assert!(log.contains("serving"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "escape codes in a log file:\n{log:?}"
    );
}

#[tokio::test]
async fn the_admin_listener_answers_only_its_own_host_names() {
    let g = Gateway::builder()
        .spec(
            "svc.yaml",
            spec("Svc", "v1", "/svc", "echo:").channel("/t").yaml(),
        )
        .args(&["--admin-host", "gw.internal"])
        .start()
        .await;
    let get = |host: &str| format!("GET /plan HTTP/1.1\r\nhost: {host}\r\n\r\n");
    for host in ["evil.example", "evil.example:9090", "127.0.0.1.nip.io"] {
        assert_eq!(http(g.admin, &get(host)).await.status, 403, "{host}");
    }
    assert_eq!(
        http(g.admin, "GET /plan HTTP/1.1\r\n\r\n").await.status,
        403,
        "no Host"
    );
    for host in [
        g.admin.to_string(),
        format!("localhost:{}", g.admin.port()),
        "gw.internal".to_string(),
    ] {
        assert_eq!(http(g.admin, &get(&host)).await.status, 200, "{host}");
    }
}

#[tokio::test]
async fn out_of_descriptors_means_503_and_a_responsive_admin_listener() {
    let backend = Backend::start(Mode::Echo).await;
    // 128 descriptors: room for a few dozen proxied connections, not for 100.
    let g = Gateway::builder()
        .spec(
            "svc.yaml",
            spec("Svc", "v1", "/svc", &backend.endpoint())
                .channel("/t")
                .yaml(),
        )
        .fd_limit(128)
        .start()
        .await;
    let mut clients = Vec::new();
    let mut refused = Vec::new();
    for _ in 0..100 {
        match try_connect_request(client_request(&g.url("/svc/v1/t"), &[])).await {
            Ok((c, _)) => clients.push(c),
            Err(tungstenite::Error::Http(r)) => refused.push(r.status().as_u16()),
            Err(e) => panic!("after {} connections: {e}", clients.len()),
        }
    }
    eprintln!(
        "fd limit 128: {} connections served, {} refused",
        clients.len(),
        refused.len()
    );
    assert!(clients.len() >= 20, "only {} connections", clients.len());
    assert!(
        !refused.is_empty(),
        "100 connections fit in 128 descriptors?"
    );
    assert!(refused.iter().all(|s| *s == 503), "{refused:?}");
    // Every served connection still works, and the admin listener answers.
    for c in clients.iter_mut().take(5) {
        echo_text(c, "still here").await;
    }
    assert_eq!(g.admin_get("/healthz").await.status, 200);
    assert!(!g.log().contains("uncategorized"), "{}", g.log());
    // Once they are gone, connections are served again.
    drop(clients);
    wait_all_closed(&g, STEP, "clients dropped").await;
    let mut c = connect(&g.url("/svc/v1/t")).await;
    echo_text(&mut c, "again").await;
}
