//! The relay: messages, control frames, subprotocols, closes, failures and limits.

use std::time::{Duration, Instant};

use crate::harness::*;

/// A gateway serving one API at /svc/v1 with the topic /t, relaying to `endpoint`.
async fn gateway_to(endpoint: &str, args: &[&str]) -> Gateway {
    Gateway::builder()
        .spec(
            "svc.yaml",
            spec("Svc", "v1", "/svc", endpoint).channel("/t").yaml(),
        )
        .args(args)
        .start()
        .await
}

async fn send(client: &mut Client, message: Message) {
    within(STEP, "sending a message", client.send(message))
        .await
        .expect("send");
}

#[tokio::test]
async fn text_and_binary_are_relayed_both_ways() {
    let backend = Backend::start(Mode::Echo).await;
    let g = gateway_to(&backend.endpoint(), &[]).await;
    let mut c = connect(&g.url("/svc/v1/t")).await;

    send(&mut c, Message::text("héllo, wörld")).await;
    assert_eq!(recv_data(&mut c).await, Message::text("héllo, wörld"));
    let blob: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    send(&mut c, Message::binary(blob.clone())).await;
    assert_eq!(recv_data(&mut c).await, Message::binary(blob.clone()));
    send(&mut c, Message::binary(Vec::new())).await;
    assert_eq!(recv_data(&mut c).await, Message::binary(Vec::new()));

    let data: Vec<Message> = backend
        .received()
        .into_iter()
        .filter(|m| m.is_text() || m.is_binary())
        .collect();
    assert_eq!(
        data,
        vec![
            Message::text("héllo, wörld"),
            Message::binary(blob),
            Message::binary(Vec::new())
        ]
    );
}

#[tokio::test]
async fn pings_are_relayed_and_answered_exactly_once() {
    let backend = Backend::start(Mode::Echo).await;
    let g = gateway_to(&backend.endpoint(), &[]).await;
    let mut c = connect(&g.url("/svc/v1/t")).await;

    // Client → backend. The echo of the text sent after the ping comes back after any pong the
    // ping caused, so counting pongs up to it counts them all.
    send(&mut c, Message::Ping(b"c1".to_vec().into())).await;
    send(&mut c, Message::text("after the ping")).await;
    let mut pongs = 0;
    loop {
        match next_message(&mut c).await {
            Some(Ok(Message::Pong(p))) => {
                assert_eq!(&p[..], b"c1");
                pongs += 1;
            }
            Some(Ok(Message::Text(t))) if t.as_str() == "after the ping" => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(pongs, 1, "the client's ping must be answered exactly once");
    backend
        .wait_received("the client's ping", |m| {
            *m == Message::Ping(b"c1".to_vec().into())
        })
        .await;

    // Backend → client: the backend pings (on request), the client sees the ping and answers it.
    send(&mut c, Message::text("ping:b1")).await;
    loop {
        match next_message(&mut c).await {
            Some(Ok(Message::Ping(p))) => {
                assert_eq!(&p[..], b"b1");
                break;
            }
            Some(Ok(Message::Pong(_))) => continue,
            other => panic!("expected the backend's ping, got {other:?}"),
        }
    }
    // The library sends our pong together with the next message we send (after it, in the same
    // write); one more message after that, once at the backend, means every pong is there too.
    echo_text(&mut c, "after the pong").await;
    echo_text(&mut c, "sync").await;
    backend
        .wait_received("the text after the pong", |m| *m == Message::text("sync"))
        .await;
    let pongs = backend
        .received()
        .iter()
        .filter(|m| **m == Message::Pong(b"b1".to_vec().into()))
        .count();
    assert_eq!(pongs, 1, "the backend's ping must be answered exactly once");
}

#[tokio::test]
async fn subprotocol_offer_and_choice_pass_through() {
    let backend = Backend::start_choosing(Mode::Echo, Some("chat.v2")).await;
    let g = gateway_to(&backend.endpoint(), &[]).await;
    let request = client_request(
        &g.url("/svc/v1/t"),
        &[("sec-websocket-protocol", "chat.v1, chat.v2")],
    );
    let (mut c, response) = try_connect_request(request).await.expect("handshake");
    assert_eq!(
        response
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok()),
        Some("chat.v2")
    );
    assert_eq!(backend.handshake(1).await.protocols, ["chat.v1", "chat.v2"]);
    echo_text(&mut c, "with a subprotocol").await;
}

#[tokio::test]
async fn subprotocol_declined_by_the_backend_is_declined_to_the_client() {
    // RFC 6455 4.2.2: a server may accept none of the offered subprotocols; the client then
    // decides. Directly connected, this client would get a 101 without Sec-WebSocket-Protocol.
    let backend = Backend::start(Mode::Echo).await;
    let g = gateway_to(&backend.endpoint(), &[]).await;
    let r = upgrade(
        g.addr,
        "/svc/v1/t",
        &[("sec-websocket-protocol", "chat.v1")],
    )
    .await;
    assert_eq!(r.status, 101, "{}", r.body);
    assert!(r.header("sec-websocket-protocol").is_none());
}

#[tokio::test]
async fn close_code_and_reason_propagate_client_to_backend() {
    let backend = Backend::start(Mode::Echo).await;
    let g = gateway_to(&backend.endpoint(), &[]).await;
    let mut c = connect(&g.url("/svc/v1/t")).await;
    echo_text(&mut c, "hi").await;
    within(
        STEP,
        "closing",
        c.close(Some(close_frame(4001, "client bye"))),
    )
    .await
    .expect("close");
    // The close handshake completes: our Close is answered and the stream ends.
    let mut answered = false;
    while let Some(m) = next_message(&mut c).await {
        if let Ok(Message::Close(Some(f))) = m {
            assert_eq!(u16::from(f.code), 4001);
            answered = true;
        }
    }
    assert!(answered, "the client's Close was not answered");
    backend
        .wait_received("the client's Close 4001", |m| {
            matches!(m, Message::Close(Some(f)) if u16::from(f.code) == 4001 && f.reason == "client bye")
        })
        .await;
}

#[tokio::test]
async fn close_code_and_reason_propagate_backend_to_client() {
    let backend = Backend::start(Mode::CloseAfterFirst(4002, "backend bye".into())).await;
    let g = gateway_to(&backend.endpoint(), &[]).await;
    let mut c = connect(&g.url("/svc/v1/t")).await;
    send(&mut c, Message::text("hi")).await;
    assert_eq!(
        expect_close(&mut c).await,
        (4002, "backend bye".to_string())
    );
    // The backend got the close answered.
    backend
        .wait_received("the answer to its Close", |m| {
            matches!(m, Message::Close(_))
        })
        .await;
}

#[tokio::test]
async fn a_vanishing_backend_closes_the_client_with_1011() {
    let backend = Backend::start(Mode::DropAfterFirst).await;
    let g = gateway_to(&backend.endpoint(), &[]).await;
    let mut c = connect(&g.url("/svc/v1/t")).await;
    send(&mut c, Message::text("hi")).await;
    let (code, _) = expect_close(&mut c).await;
    assert_eq!(code, 1011);
}

#[tokio::test]
async fn an_unreachable_backend_is_502_and_a_silent_one_504() {
    let port = closed_port();
    let down = gateway_to(&format!("ws://127.0.0.1:{port}"), &[]).await;
    let r = upgrade(down.addr, "/svc/v1/t", &[]).await;
    assert_eq!(r.status, 502, "{}", r.body);
    assert!(
        !r.body.contains(&port.to_string()),
        "the reason leaks the backend address: {}",
        r.body
    );

    let silent = Silent::start().await;
    let slow = gateway_to(&silent.endpoint(), &["--connect-timeout", "0.5"]).await;
    let r = upgrade(slow.addr, "/svc/v1/t", &[]).await;
    assert_eq!(r.status, 504, "{}", r.body);
    assert!(
        !r.body.contains(&silent.addr.port().to_string()),
        "{}",
        r.body
    );
    assert!(slow
        .metrics()
        .await
        .contains("portico_handshakes_total{status=\"504\"} 1"),);
}

#[tokio::test]
async fn a_message_over_max_message_bytes_closes_with_1009() {
    let backend = Backend::start(Mode::Echo).await;
    let g = gateway_to(&backend.endpoint(), &["--max-message-bytes", "1024"]).await;
    let mut c = connect(&g.url("/svc/v1/t")).await;
    echo_text(&mut c, &"a".repeat(1000)).await;
    send(&mut c, Message::text("b".repeat(2048))).await;
    let (code, _) = expect_close(&mut c).await;
    assert_eq!(code, 1009);
    assert!(
        !backend
            .received()
            .iter()
            .any(|m| m.is_text() && m.len() > 1024),
        "the oversized message reached the backend"
    );
}

#[tokio::test]
async fn a_frame_over_max_frame_bytes_closes_with_1009_while_small_fragments_pass() {
    let backend = Backend::start(Mode::Echo).await;
    let g = gateway_to(&backend.endpoint(), &["--max-frame-bytes", "1024"]).await;
    // 2,400 bytes in three 800-byte frames: every frame is under the limit, so it passes.
    let mut raw = RawClient::connect(g.addr, "/svc/v1/t").await;
    let part = vec![b'a'; 800];
    raw.send_frame(false, opcode::TEXT, &part, true).await;
    raw.send_frame(false, opcode::CONTINUATION, &part, true)
        .await;
    raw.send_frame(true, opcode::CONTINUATION, &part, true)
        .await;
    match raw.read_frame().await {
        Some((true, opcode::TEXT, p)) => assert_eq!(p.len(), 2400),
        other => panic!("expected the echo, got {other:?}"),
    }
    // One 2,048-byte frame is over it.
    raw.send_frame(true, opcode::TEXT, &[b'b'; 2048], true)
        .await;
    assert_eq!(raw.expect_close().await, 1009);
    assert!(
        !backend
            .received()
            .iter()
            .any(|m| m.is_text() && m.len() == 2048),
        "the oversized frame reached the backend"
    );
}

#[tokio::test]
async fn per_api_max_message_bytes_closes_with_1009() {
    let g = Gateway::builder()
        .spec(
            "svc.yaml",
            spec("Svc", "v1", "/svc", "echo:")
                .limit("maxMessageBytes", 1024)
                .channel("/t")
                .yaml(),
        )
        .start()
        .await;
    let mut c = connect(&g.url("/svc/v1/t")).await;
    echo_text(&mut c, &"a".repeat(1000)).await;
    send(&mut c, Message::binary(vec![7u8; 2048])).await;
    assert_eq!(expect_close(&mut c).await.0, 1009);
}

#[tokio::test]
async fn a_slow_client_backpressures_a_flooding_backend() {
    const MIB: u64 = 1024 * 1024;
    const MESSAGE: usize = 64 * 1024;
    let backend = Backend::start(Mode::Flood {
        message_bytes: MESSAGE,
        limit_bytes: 512 * MIB,
    })
    .await;
    let g = gateway_to(&backend.endpoint(), &[]).await;
    let before = g.rss_bytes();
    // Connect and do not read: the backend starts flooding right away.
    let mut c = connect(&g.url("/svc/v1/t")).await;

    // Wait until the backend is stuck (no progress for a second) or has pushed 200 MiB.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = (0, Instant::now());
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let pushed = backend.pushed();
        if pushed >= 200 * MIB {
            break;
        }
        if pushed != last.0 {
            last = (pushed, Instant::now());
        } else if pushed > 0 && last.1.elapsed() >= Duration::from_secs(1) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the flood neither stalled nor finished"
        );
    }
    let pushed = backend.pushed();
    let grown = g.rss_bytes().saturating_sub(before);
    eprintln!(
        "flood: backend pushed {} KiB, gateway RSS grew {} KiB",
        pushed / 1024,
        grown / 1024
    );
    assert!(
        grown < 64 * MIB,
        "the gateway grew by {} MiB while the backend pushed {} MiB to a client that does not read",
        grown / MIB,
        pushed / MIB
    );

    // Nothing was dropped to keep memory low: every message pushed so far arrives, in order.
    let expected = pushed / MESSAGE as u64;
    let mut seq = 0u64;
    within(Duration::from_secs(60), "reading the backlog", async {
        while seq < expected {
            match c.next().await {
                Some(Ok(Message::Binary(b))) => {
                    assert_eq!(b.len(), MESSAGE);
                    let got = u64::from_be_bytes(b[..8].try_into().unwrap());
                    assert_eq!(got, seq, "message {seq} is missing");
                    seq += 1;
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                other => panic!("after {seq} messages: {other:?}"),
            }
        }
    })
    .await;
}

#[tokio::test]
async fn idle_connections_are_closed_with_1001() {
    let backend = Backend::start(Mode::Echo).await;
    let g = gateway_to(&backend.endpoint(), &["--idle-timeout", "1"]).await;
    let mut c = connect(&g.url("/svc/v1/t")).await;
    // Traffic keeps it open past the timeout...
    for i in 0..12 {
        echo_text(&mut c, &format!("busy {i}")).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // ...silence closes it.
    let (code, reason) = expect_close(&mut c).await;
    assert_eq!(code, 1001, "{reason}");
    backend
        .wait_received(
            "the idle Close",
            |m| matches!(m, Message::Close(Some(f)) if u16::from(f.code) == 1001),
        )
        .await;
}

#[tokio::test]
async fn per_api_idle_timeout_closes_with_1001() {
    let g = Gateway::builder()
        .spec(
            "svc.yaml",
            spec("Svc", "v1", "/svc", "echo:")
                .limit("idleTimeoutSeconds", 1)
                .channel("/t")
                .yaml(),
        )
        .start()
        .await;
    let mut c = connect(&g.url("/svc/v1/t")).await;
    echo_text(&mut c, "then silence").await;
    assert_eq!(expect_close(&mut c).await.0, 1001);
}

/// Connects, retrying while the gateway answers 503 (a closed connection is released
/// asynchronously).
async fn connect_when_released(url: &str) -> Client {
    let deadline = Instant::now() + STEP;
    loop {
        match try_connect_request(client_request(url, &[])).await {
            Ok((c, _)) => return c,
            Err(tungstenite::Error::Http(r)) if r.status() == 503 && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{url}: {e}"),
        }
    }
}

#[tokio::test]
async fn max_connections_refuses_the_third_with_503() {
    let g = gateway_to("echo:", &["--max-connections", "2"]).await;
    let url = g.url("/svc/v1/t");
    let mut a = connect(&url).await;
    let mut b = connect(&url).await;
    let r = upgrade(g.addr, "/svc/v1/t", &[]).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.header("retry-after").is_some());
    // The two keep working; closing one makes room.
    echo_text(&mut b, "b").await;
    within(STEP, "closing", a.close(None)).await.expect("close");
    while let Some(Ok(_)) = next_message(&mut a).await {}
    let mut c = connect_when_released(&url).await;
    echo_text(&mut c, "c").await;
}

#[tokio::test]
async fn per_api_max_connections_from_the_spec() {
    let g = Gateway::builder()
        .spec(
            "one.yaml",
            spec("One", "v1", "/one", "echo:")
                .limit("maxConnections", 1)
                .channel("/t")
                .yaml(),
        )
        .spec(
            "two.yaml",
            spec("Two", "v1", "/two", "echo:").channel("/t").yaml(),
        )
        .start()
        .await;
    let mut first = connect(&g.url("/one/v1/t")).await;
    let r = upgrade(g.addr, "/one/v1/t", &[]).await;
    assert_eq!(r.status, 503, "{}", r.body);
    // Other APIs are not affected.
    let mut x = connect(&g.url("/two/v1/t")).await;
    let mut y = connect(&g.url("/two/v1/t")).await;
    echo_text(&mut x, "x").await;
    echo_text(&mut y, "y").await;
    echo_text(&mut first, "first").await;
}

#[tokio::test]
async fn fragments_are_reassembled_and_a_ping_between_them_is_answered() {
    let backend = Backend::start(Mode::Echo).await;
    let g = gateway_to(&backend.endpoint(), &[]).await;
    let mut raw = RawClient::connect(g.addr, "/svc/v1/t").await;
    raw.send_frame(false, opcode::TEXT, b"hel", true).await;
    raw.send_frame(true, opcode::PING, b"mid", true).await;
    raw.send_frame(false, opcode::CONTINUATION, b"lo ", true)
        .await;
    raw.send_frame(true, opcode::CONTINUATION, "wörld".as_bytes(), true)
        .await;
    let mut got_pong = false;
    loop {
        match raw.read_frame().await {
            Some((true, opcode::PONG, p)) => {
                assert_eq!(p, b"mid");
                assert!(!got_pong, "two pongs for one ping");
                got_pong = true;
            }
            Some((true, opcode::TEXT, p)) => {
                assert_eq!(String::from_utf8(p).unwrap(), "hello wörld");
                break;
            }
            other => panic!("unexpected frame {other:?}"),
        }
    }
    assert!(got_pong, "the ping between fragments was not answered");
    backend
        .wait_received("the reassembled message", |m| {
            *m == Message::text("hello wörld")
        })
        .await;
}

#[tokio::test]
async fn invalid_utf8_text_closes_with_1007() {
    let backend = Backend::start(Mode::Echo).await;
    let g = gateway_to(&backend.endpoint(), &[]).await;
    let mut raw = RawClient::connect(g.addr, "/svc/v1/t").await;
    raw.send_frame(true, opcode::TEXT, &[0x61, 0xff, 0xfe], true)
        .await;
    assert_eq!(raw.expect_close().await, 1007);
    assert!(
        !backend.received().iter().any(|m| m.is_text()),
        "invalid text reached the backend"
    );
}

#[tokio::test]
async fn an_unmasked_client_frame_closes_with_1002() {
    let backend = Backend::start(Mode::Echo).await;
    let g = gateway_to(&backend.endpoint(), &[]).await;
    let mut raw = RawClient::connect(g.addr, "/svc/v1/t").await;
    raw.send_frame(true, opcode::TEXT, b"unmasked", false).await;
    assert_eq!(raw.expect_close().await, 1002);
    // The backend learns that its client is gone.
    backend
        .wait_received("a Close", |m| matches!(m, Message::Close(_)))
        .await;
}

#[tokio::test]
async fn a_vanishing_client_closes_the_backend_with_1011() {
    let backend = Backend::start(Mode::Echo).await;
    let g = gateway_to(&backend.endpoint(), &[]).await;
    let mut c = connect(&g.url("/svc/v1/t")).await;
    echo_text(&mut c, "then gone").await;
    // Drop the TCP connection without a Close.
    drop(c);
    backend
        .wait_received(
            "Close 1011",
            |m| matches!(m, Message::Close(Some(f)) if u16::from(f.code) == 1011),
        )
        .await;
}

#[tokio::test]
async fn vanished_peers_are_counted_as_lost_not_as_protocol_errors() {
    let backend = Backend::start(Mode::DropAfterFirst).await;
    let g = gateway_to(&backend.endpoint(), &[]).await;
    // The backend vanishes.
    let mut c = connect(&g.url("/svc/v1/t")).await;
    within(STEP, "send", c.send(Message::text("x")))
        .await
        .expect("send");
    assert_eq!(expect_close(&mut c).await.0, 1011);
    // The client vanishes.
    let echo = Backend::start(Mode::Echo).await;
    let g2 = gateway_to(&echo.endpoint(), &[]).await;
    let mut c = connect(&g2.url("/svc/v1/t")).await;
    echo_text(&mut c, "then gone").await;
    drop(c);

    for (gateway, side) in [(&g, "backend"), (&g2, "client")] {
        let expected = format!("portico_closes_total{{initiator=\"{side}\",code=\"1011\"}} 1");
        let deadline = Instant::now() + STEP;
        loop {
            let m = gateway.metrics().await;
            if m.contains("portico_closes_total{") {
                assert!(m.contains(&expected), "expected {expected}:\n{m}");
                assert!(!m.contains("code=\"1002\""), "{m}");
                break;
            }
            assert!(Instant::now() < deadline, "no close counted:\n{m}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test]
async fn a_frame_sent_right_behind_the_handshake_is_not_lost() {
    let backend = Backend::start(Mode::Echo).await;
    let g = gateway_to(&backend.endpoint(), &[]).await;
    let first = encode_frame(true, opcode::TEXT, b"eager", true);
    let mut raw = RawClient::connect_pipelined(g.addr, "/svc/v1/t", &first).await;
    match raw.read_frame().await {
        Some((true, opcode::TEXT, p)) => assert_eq!(p, b"eager"),
        other => panic!("expected the echo of the pipelined frame, got {other:?}"),
    }
}

#[tokio::test]
async fn a_backend_refusing_the_upgrade_is_502() {
    // A backend that answers every upgrade with 403.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
                .await;
        }
    });
    let g = gateway_to(&format!("ws://{addr}"), &[]).await;
    let r = upgrade(g.addr, "/svc/v1/t", &[]).await;
    assert_eq!(r.status, 502, "{}", r.body);
    assert!(
        r.body.contains("403"),
        "the reason names the backend's status: {}",
        r.body
    );
    server.abort();
}

/// Reads for `quiet` without sending anything (the library answers pings); returns how many pings
/// arrived. Panics if anything but pings arrives.
async fn listen_quietly(client: &mut Client, quiet: Duration) -> usize {
    let mut pings = 0;
    let until = tokio::time::Instant::now() + quiet;
    loop {
        match tokio::time::timeout_at(until, client.next()).await {
            Err(_) => return pings,
            Ok(Some(Ok(Message::Ping(_)))) => pings += 1,
            Ok(other) => panic!("a client answering pings got {other:?} after {pings} pings"),
        }
    }
}

#[tokio::test]
async fn keepalive_pings_idle_clients_and_closes_the_silent_ones() {
    let backend = Backend::start(Mode::Echo).await;
    let g = gateway_to(&backend.endpoint(), &["--keepalive", "2"]).await;
    // A client that never answers pings...
    let mut deaf = RawClient::connect(g.addr, "/svc/v1/t").await;
    // ...and one that does (the library answers them), silent otherwise.
    let mut polite = connect(&g.url("/svc/v1/t")).await;
    let pings = listen_quietly(&mut polite, Duration::from_secs(5)).await;
    assert!(pings >= 1, "no keepalive ping in 5 s with --keepalive 2");
    echo_text(&mut polite, "still here").await;
    // The deaf one is closed with 1011 (after two intervals).
    assert_eq!(deaf.expect_close().await, 1011);

    // The keepalive is the gateway's: the backend never sees its pings or their pongs.
    assert!(
        !backend
            .received()
            .iter()
            .any(|m| matches!(m, Message::Pong(_) | Message::Ping(_))),
        "{:?}",
        backend.received()
    );
}

#[tokio::test]
async fn a_one_second_keepalive_never_closes_clients_that_answer() {
    let g = gateway_to("echo:", &["--keepalive", "1"]).await;
    let mut clients = Vec::new();
    for _ in 0..20 {
        clients.push(connect(&g.url("/svc/v1/t")).await);
    }
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            tokio::spawn(async move {
                let pings = listen_quietly(&mut c, Duration::from_millis(3500)).await;
                echo_text(&mut c, "alive").await;
                pings
            })
        })
        .collect();
    for t in tasks {
        let pings = within(STEP, "a quiet client", t)
            .await
            .expect("client task");
        assert!(pings >= 1);
    }
}

#[tokio::test]
async fn keepalive_pings_reach_a_client_behind_a_flood() {
    let backend = Backend::start(Mode::Flood {
        message_bytes: 16 * 1024,
        limit_bytes: 4 * 1024 * 1024 * 1024,
    })
    .await;
    // Large read buffers: a whole message per read, so the gateway always has the next one ready.
    let g = gateway_to(
        &backend.endpoint(),
        &["--keepalive", "1", "--read-buffer-bytes", "262144"],
    )
    .await;
    let mut c = connect(&g.url("/svc/v1/t")).await;
    // The client reads as fast as it can, so the gateway is the bottleneck and always has more to
    // relay (a client that sleeps makes the kernel queue megabytes ahead of the ping, which then
    // measures the queue, not the gateway). It answers pings (the library does, while it reads) and
    // says nothing else.
    let started = Instant::now();
    let mut pings = 0;
    let mut messages = 0u64;
    while started.elapsed() < Duration::from_secs(4) {
        match next_message(&mut c).await {
            Some(Ok(Message::Ping(_))) => pings += 1,
            Some(Ok(Message::Binary(_))) => messages += 1,
            other => panic!("after {messages} messages and {pings} pings: {other:?}"),
        }
    }
    assert!(
        pings >= 2,
        "{pings} keepalive pings in 4 s of flood with --keepalive 1"
    );
}

#[tokio::test]
async fn peer_chosen_close_codes_are_bucketed_in_metrics() {
    let g = gateway_to("echo:", &[]).await;
    for code in [4321, 4999, 3456] {
        let mut c = connect(&g.url("/svc/v1/t")).await;
        send(&mut c, Message::Close(Some(close_frame(code, "bye")))).await;
        expect_close(&mut c).await;
    }
    let deadline = Instant::now() + STEP;
    let m = loop {
        let m = g.metrics().await;
        let counted: f64 = m
            .lines()
            .filter(|l| l.starts_with("portico_closes_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        if counted >= 3.0 {
            break m;
        }
        assert!(Instant::now() < deadline, "three closes never counted: {m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for code in ["4321", "4999", "3456"] {
        assert!(!m.contains(&format!("code=\"{code}\"")), "{m}");
    }
    assert_eq!(
        metric(
            &m,
            "portico_closes_total{initiator=\"client\",code=\"4xxx\"}"
        ),
        Some(2.0),
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "portico_closes_total{initiator=\"client\",code=\"3xxx\"}"
        ),
        Some(1.0),
        "{m}"
    );
}

/// A backend that completes the upgrade by hand, sends `hostile` (raw bytes) and returns the close
/// code of the first Close the gateway sends it (the gateway masks frames toward a backend).
/// Accepts one connection on `listener` and answers its WebSocket upgrade, byte by byte: a backend
/// that sees the gateway's frames exactly as they arrive.
async fn accept_raw_backend(listener: &tokio::net::TcpListener) -> Option<tokio::net::TcpStream> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut s, _) = listener.accept().await.ok()?;
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        s.read_exact(&mut byte).await.ok()?;
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let key = head.lines().find_map(|l| {
        l.to_ascii_lowercase()
            .strip_prefix("sec-websocket-key:")
            .map(|_| l[18..].trim().to_string())
    })?;
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let response = format!("HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: {accept}\r\n\r\n");
    s.write_all(response.as_bytes()).await.ok()?;
    Some(s)
}

async fn hostile_backend(hostile: Vec<u8>) -> (String, tokio::task::JoinHandle<Option<u16>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("ws://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut s = accept_raw_backend(&listener).await?;
        s.write_all(&hostile).await.ok()?;
        // The gateway's frames to this backend: skip until its Close.
        loop {
            let mut two = [0u8; 2];
            s.read_exact(&mut two).await.ok()?;
            assert_eq!(two[1] & 0x80, 0x80, "frames toward a backend are masked");
            let len = match two[1] & 0x7f {
                126 => s.read_u16().await.ok()? as usize,
                127 => s.read_u64().await.ok()? as usize,
                n => n as usize,
            };
            let mut mask = [0u8; 4];
            s.read_exact(&mut mask).await.ok()?;
            let mut payload = vec![0u8; len];
            s.read_exact(&mut payload).await.ok()?;
            if two[0] & 0x0f == opcode::CLOSE && payload.len() >= 2 {
                let (a, b) = (payload[0] ^ mask[0], payload[1] ^ mask[1]);
                return Some(u16::from_be_bytes([a, b]));
            }
        }
    });
    (endpoint, task)
}

/// A backend is as untrusted as a client: a frame that breaks the protocol, is not UTF-8 or is over
/// the message limit is not forwarded, the client is told the backend was lost (1011), and the
/// backend is told why (1002, 1007, 1009).
#[tokio::test]
async fn a_backend_breaking_the_protocol_is_closed_and_nothing_of_it_is_forwarded() {
    let mut rsv1 = encode_frame(true, opcode::TEXT, b"deflated?", false);
    rsv1[0] |= 0x40;
    // A binary frame header announcing 2 MiB, with no payload sent.
    let mut too_large = vec![0x80 | opcode::BINARY, 127];
    too_large.extend_from_slice(&(2u64 << 20).to_be_bytes());
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "a masked frame",
            encode_frame(true, opcode::TEXT, b"masked", true),
            1002,
        ),
        ("a reserved bit", rsv1, 1002),
        (
            "a reserved opcode",
            encode_frame(true, 0x3, b"x", false),
            1002,
        ),
        (
            "a continuation out of place",
            encode_frame(true, opcode::CONTINUATION, b"x", false),
            1002,
        ),
        (
            "text that is not UTF-8",
            encode_frame(true, opcode::TEXT, &[0x61, 0xff, 0xfe], false),
            1007,
        ),
        ("a message over the limit", too_large, 1009),
    ];
    for (what, hostile, told) in cases {
        let (endpoint, backend) = hostile_backend(hostile).await;
        let g = gateway_to(&endpoint, &["--max-message-bytes", "1048576"]).await;
        let mut c = connect(&g.url("/svc/v1/t")).await;
        match next_message(&mut c).await {
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(u16::from(frame.code), 1011, "{what}: {frame:?}")
            }
            other => panic!("{what}: the client got {other:?} instead of a Close"),
        }
        // Reading on sends the client's Close reply, which completes the drain toward the backend.
        while let Some(Ok(m)) = next_message(&mut c).await {
            assert!(matches!(m, Message::Close(_)), "{what}: forwarded {m:?}");
        }
        let code = within(STEP, what, backend).await.expect("backend task");
        assert_eq!(code, Some(told), "{what}");
    }
}

/// What a recording backend has received so far, and whether its connection ended.
#[derive(Default)]
struct Recorded {
    bytes: Vec<u8>,
    ended: bool,
}

/// A backend that records every byte the gateway sends it after the handshake, and never answers.
async fn recording_backend() -> (String, std::sync::Arc<std::sync::Mutex<Recorded>>) {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("ws://{}", listener.local_addr().unwrap());
    let recorded = std::sync::Arc::new(std::sync::Mutex::new(Recorded::default()));
    let record = recorded.clone();
    tokio::spawn(async move {
        if let Some(mut s) = accept_raw_backend(&listener).await {
            let mut chunk = vec![0u8; 64 * 1024];
            // Bounded: the test ends the connection, or the gateway does.
            while let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_secs(30), s.read(&mut chunk)).await
            {
                if n == 0 {
                    break;
                }
                record.lock().unwrap().bytes.extend_from_slice(&chunk[..n]);
            }
        }
        record.lock().unwrap().ended = true;
    });
    (endpoint, recorded)
}

/// Limits that admit the multi-megabyte frames of the cut-through tests.
const LARGE_FRAMES: [&str; 4] = [
    "--max-message-bytes",
    "4194304",
    "--max-frame-bytes",
    "4194304",
];

/// A large frame goes on as its payload arrives (cut-through), unchanged, instead of waiting in
/// the gateway until it is whole: the backend has the first part while the client still holds
/// the rest.
#[tokio::test]
async fn a_large_frame_is_forwarded_as_it_arrives() {
    let (endpoint, recorded) = recording_backend().await;
    let g = gateway_to(&endpoint, &LARGE_FRAMES).await;
    let mut c = RawClient::connect(g.addr, "/svc/v1/t").await;
    for (opcode, payload) in [
        (
            opcode::BINARY,
            (0..2_000_000u32)
                .map(|i| (i % 251) as u8)
                .collect::<Vec<u8>>(),
        ),
        (opcode::TEXT, "añ€😀 text ".repeat(120_000).into_bytes()),
    ] {
        let frame = encode_frame(true, opcode, &payload, true);
        let before = recorded.lock().unwrap().bytes.len();
        let first = 300_000;
        c.send_raw(&frame[..first]).await;
        let got = eventually(STEP, "the first part reaches the backend", || {
            let n = recorded.lock().unwrap().bytes.len() - before;
            (n >= first - 64 * 1024).then_some(n)
        })
        .await;
        assert!(got <= first, "more than was sent: {got}");
        c.send_raw(&frame[first..]).await;
        eventually(STEP, "the whole frame reaches the backend", || {
            (recorded.lock().unwrap().bytes.len() - before >= frame.len()).then_some(())
        })
        .await;
        let r = recorded.lock().unwrap();
        assert!(
            r.bytes[before..] == frame[..],
            "the frame reached the backend changed"
        );
    }
}

/// A text frame streamed in part and then found not to be UTF-8: the client is closed with 1007,
/// and the backend, which has part of the frame, is cut off (no Close fits in a frame's middle).
#[tokio::test]
async fn bad_text_found_in_a_streamed_frame_closes_the_client_1007_and_cuts_off_the_backend() {
    let (endpoint, recorded) = recording_backend().await;
    let g = gateway_to(&endpoint, &LARGE_FRAMES).await;
    let mut c = RawClient::connect(g.addr, "/svc/v1/t").await;
    let mut payload = vec![b'a'; 1_000_000];
    payload[700_000] = 0xff;
    let frame = encode_frame(true, opcode::TEXT, &payload, true);
    c.send_raw(&frame[..300_000]).await;
    eventually(STEP, "the first part reaches the backend", || {
        (!recorded.lock().unwrap().bytes.is_empty()).then_some(())
    })
    .await;
    c.send_raw(&frame[300_000..]).await;
    assert_eq!(c.expect_close().await, 1007);
    eventually(STEP, "the backend's connection ends", || {
        recorded.lock().unwrap().ended.then_some(())
    })
    .await;
    let r = recorded.lock().unwrap();
    assert!(
        r.bytes.len() < frame.len() && r.bytes[..] == frame[..r.bytes.len()],
        "the backend got {} bytes, a prefix of the frame and nothing else",
        r.bytes.len()
    );
}

/// The keepalive ping never lands inside a frame being streamed to the client: it waits for the
/// frame's end, and its timeout counts from when it went out, so a client busy receiving one long
/// frame is not closed as silent.
#[tokio::test]
async fn a_keepalive_ping_waits_for_the_end_of_a_streamed_frame() {
    use tokio::io::AsyncWriteExt;
    let payload: Vec<u8> = (0..600_000u32).map(|i| (i % 253) as u8).collect();
    let frame = encode_frame(true, opcode::BINARY, &payload, false);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("ws://{}", listener.local_addr().unwrap());
    let sent = frame.clone();
    let backend = tokio::spawn(async move {
        let mut s = accept_raw_backend(&listener).await.expect("handshake");
        s.write_all(&sent[..200_000]).await.unwrap();
        // Longer than two keepalive intervals, with the client silent.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        s.write_all(&sent[200_000..]).await.unwrap();
        // Held open until the test ends.
        tokio::time::sleep(Duration::from_secs(20)).await;
    });
    let g = gateway_to(&endpoint, &["--keepalive", "1"]).await;
    let mut c = RawClient::connect(g.addr, "/svc/v1/t").await;
    let mut pings = 0;
    loop {
        match c.read_frame().await {
            Some((_, opcode::PING, _)) => pings += 1,
            Some((fin, opcode::BINARY, got)) => {
                assert!(fin && got == payload, "the frame arrived changed");
                break;
            }
            other => panic!("expected the frame, got {other:?}"),
        }
    }
    // The deferred ping follows the frame, and the connection is still open.
    match c.read_frame().await {
        Some((_, opcode::PING, ping)) => c.send_frame(true, opcode::PONG, &ping, true).await,
        other => panic!("expected the keepalive ping after the frame, got {other:?}"),
    }
    assert_eq!(pings, 0, "a ping went out before the frame began");
    backend.abort();
}

/// The same from a backend: text found not to be UTF-8 after part of a large frame reached the
/// client. The client, in the middle of a frame, is cut off (its connection ends without a Close);
/// the backend is told why (1007) once the client's side is gone.
#[tokio::test]
async fn a_backend_streaming_bad_text_is_told_1007_and_the_client_is_cut_off() {
    let mut payload = vec![b'a'; 1_000_000];
    payload[700_000] = 0xff;
    let (endpoint, backend) =
        hostile_backend(encode_frame(true, opcode::TEXT, &payload, false)).await;
    let g = gateway_to(&endpoint, &LARGE_FRAMES).await;
    let mut c = RawClient::connect(g.addr, "/svc/v1/t").await;
    // The client gets part of the frame, then its connection ends.
    assert_eq!(
        c.read_frame().await,
        None,
        "the client got a whole frame or a Close"
    );
    // A client whose connection ended closes its socket; then the backend is told.
    drop(c);
    let code = within(STEP, "the backend's close", backend)
        .await
        .expect("backend task");
    assert_eq!(code, Some(1007));
}
