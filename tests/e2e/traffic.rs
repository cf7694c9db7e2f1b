//! Traffic policies end to end: origins and the ws binding's contract at the handshake,
//! throttling and validation per message, through a real runtime and the built-in echo backend.

use crate::harness::*;

/// A 3.0 API served by `echo:` at `/{name}/1/room` with `extra` under `x-gateway`: the API
/// receives `post` (client → backend) and sends `event` (backend → client), both `chat` messages,
/// and the channel's ws binding requires a `lang` query parameter.
fn api(name: &str, extra: &str) -> String {
    api_to(name, "echo:", extra)
}

/// [`api`] relaying to `endpoint`.
fn api_to(name: &str, endpoint: &str, extra: &str) -> String {
    let extra: String = extra.lines().map(|l| format!("  {l}\n")).collect();
    format!(
        r#"asyncapi: 3.0.0
info:
  title: {name}
  version: '1'
  description: Traffic policies.
x-gateway:
  context: /{name}
  endpoints:
    production: '{endpoint}'
{extra}channels:
  room:
    address: /room
    x-auth-type: None
    bindings:
      ws:
        query:
          type: object
          properties:
            lang: {{type: string, enum: [en, fr]}}
          required: [lang]
    messages:
      chat:
        payload:
          type: object
          properties:
            text: {{type: string}}
          required: [text]
operations:
  post:
    action: receive
    channel: {{$ref: '#/channels/room'}}
    messages: [{{$ref: '#/channels/room/messages/chat'}}]
  event:
    action: send
    channel: {{$ref: '#/channels/room'}}
    messages: [{{$ref: '#/channels/room/messages/chat'}}]
"#
    )
}

async fn send(client: &mut Client, text: &str) {
    within(STEP, "sending", client.send(Message::text(text)))
        .await
        .expect("send");
}

async fn recv_text(client: &mut Client) -> String {
    match recv_data(client).await {
        Message::Text(t) => t.as_str().to_string(),
        other => panic!("expected text, got {other:?}"),
    }
}

const THROTTLED: &str = r#"{"error":{"code":4003,"message":"Websocket frame throttled out"}}"#;

#[tokio::test]
async fn origins_and_the_binding_contract_are_checked_at_the_handshake() {
    let g = Gateway::builder()
        .spec(
            "o.yaml",
            api("origins", "origins: ['https://*.example.com']"),
        )
        .start()
        .await;
    let ok = upgrade(
        g.addr,
        "/origins/1/room?lang=en",
        &[("origin", "https://app.example.com")],
    )
    .await;
    assert_eq!(ok.status, 101, "{}", ok.body);
    let refused = upgrade(
        g.addr,
        "/origins/1/room?lang=en",
        &[("origin", "https://evil.io")],
    )
    .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("origin"), "{}", refused.body);
    let no_origin = upgrade(g.addr, "/origins/1/room?lang=en", &[]).await;
    assert_eq!(no_origin.status, 403, "{}", no_origin.body);

    let missing = upgrade(
        g.addr,
        "/origins/1/room",
        &[("origin", "https://app.example.com")],
    )
    .await;
    assert_eq!(missing.status, 400, "{}", missing.body);
    assert!(
        missing.body.contains("\"lang\"") && missing.body.contains("/query"),
        "{}",
        missing.body
    );
    let mistyped = upgrade(
        g.addr,
        "/origins/1/room?lang=de",
        &[("origin", "https://app.example.com")],
    )
    .await;
    assert_eq!(mistyped.status, 400, "{}", mistyped.body);
    assert!(mistyped.body.contains("/query/lang"), "{}", mistyped.body);

    let metrics = g.metrics().await;
    assert!(metrics.contains("reason=\"origin\""), "{metrics}");
    assert!(
        metrics.contains("reason=\"handshake_contract\""),
        "{metrics}"
    );
}

#[tokio::test]
async fn throttling_counts_both_directions_and_refuses_at_exactly_the_limit() {
    let g = Gateway::builder()
        .spec(
            "up.yaml",
            api("up", "throttling:\n  client: {messages: 4/hour}"),
        )
        .spec(
            "down.yaml",
            api("down", "throttling:\n  client: {messages: 3/hour}"),
        )
        .start()
        .await;

    // 4 draws: two messages and their two echoes pass; the third message is refused on its way up.
    let mut c = connect(&g.url("/up/1/room?lang=en")).await;
    for text in ["a", "b"] {
        send(&mut c, text).await;
        assert_eq!(recv_text(&mut c).await, text);
    }
    send(&mut c, "c").await;
    assert_eq!(recv_text(&mut c).await, THROTTLED);

    // 3 draws: a, its echo, b pass; b's echo is refused on its way down.
    let mut c = connect(&g.url("/down/1/room?lang=en")).await;
    send(&mut c, "a").await;
    assert_eq!(recv_text(&mut c).await, "a");
    send(&mut c, "b").await;
    assert_eq!(recv_text(&mut c).await, THROTTLED);

    let metrics = g.metrics().await;
    assert!(
        metrics.contains("direction=\"client_to_backend\",tier=\"custom\""),
        "{metrics}"
    );
    assert!(
        metrics.contains("direction=\"backend_to_client\",tier=\"custom\""),
        "{metrics}"
    );
}

#[tokio::test]
async fn connections_per_client_are_capped_with_429() {
    let g = Gateway::builder()
        .spec(
            "c.yaml",
            api("caps", "throttling:\n  maxConnectionsPerClient: 1"),
        )
        .start()
        .await;
    let first = connect(&g.url("/caps/1/room?lang=en")).await;
    assert_eq!(refused_status(&g.url("/caps/1/room?lang=en")).await, 429);
    drop(first);
    // The slot is released when the gateway notices the close.
    let mut admitted = false;
    for _ in 0..50 {
        if try_connect_request(client_request(&g.url("/caps/1/room?lang=en"), &[]))
            .await
            .is_ok()
        {
            admitted = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(admitted, "a closed connection frees its slot");
}

#[tokio::test]
async fn invalid_payloads_under_each_policy() {
    let g = Gateway::builder()
        .spec("e.yaml", api("enforce", "validation: enforce"))
        .spec("d.yaml", api("drop", "validation: drop"))
        .spec(
            "r.yaml",
            api(
                "report",
                "validation:\n  policy: report\n  operations:\n    event: enforce",
            ),
        )
        .start()
        .await;

    // enforce: the invalid message closes the connection with 1007 and the pointer.
    let mut c = connect(&g.url("/enforce/1/room?lang=en")).await;
    send(&mut c, r#"{"text":"ok"}"#).await;
    assert_eq!(recv_text(&mut c).await, r#"{"text":"ok"}"#);
    send(&mut c, r#"{"text":5}"#).await;
    assert_eq!(
        expect_close(&mut c).await,
        (1007, "invalid message at /text (type)".into())
    );

    // drop: the client gets an error frame and the connection stays usable; non-JSON passes.
    let mut c = connect(&g.url("/drop/1/room?lang=en")).await;
    send(&mut c, r#"{"txt":"x"}"#).await;
    assert_eq!(
        recv_text(&mut c).await,
        r#"{"error":{"code":1007,"message":"invalid message at / (required)"}}"#
    );
    send(&mut c, "plain text").await;
    assert_eq!(recv_text(&mut c).await, "plain text");

    // report on the way up, enforce on the way down: the invalid message reaches the backend and
    // its echo is closed on.
    let mut c = connect(&g.url("/report/1/room?lang=en")).await;
    send(&mut c, r#"{"text":[]}"#).await;
    assert_eq!(
        expect_close(&mut c).await,
        (1007, "invalid message at /text (type)".into())
    );

    let metrics = g.metrics().await;
    for (direction, policy) in [
        ("client_to_backend", "enforce"),
        ("client_to_backend", "drop"),
        ("client_to_backend", "report"),
        ("backend_to_client", "enforce"),
    ] {
        assert!(
            metrics.contains(&format!("direction=\"{direction}\""))
                && metrics.contains(&format!("policy=\"{policy}\"")),
            "{direction} {policy}: {metrics}"
        );
    }
}

/// Message buckets and the throttle's close, on a remote backend: the frame relay decides each
/// message on its first frame, counts a fragmented message once, drops all of a refused one (the
/// backend never sees a stray fragment), and passes pings through, which shows it is the frame
/// relay (the message relay answers them itself).
#[tokio::test]
async fn the_frame_relay_throttles_messages_counted_by_their_last_fragment() {
    let backend = Backend::start(Mode::Echo).await;
    let endpoint = backend.endpoint();
    let g = Gateway::builder()
        .spec(
            "up.yaml",
            api_to("up", &endpoint, "throttling:\n  client: {messages: 4/hour}"),
        )
        .spec(
            "down.yaml",
            api_to(
                "down",
                &endpoint,
                "throttling:\n  client: {messages: 3/hour}",
            ),
        )
        .spec(
            "shut.yaml",
            api_to(
                "shut",
                &endpoint,
                "throttling:\n  client: {messages: 1/hour}\n  onThrottle: close",
            ),
        )
        .start()
        .await;

    // 4 draws: a fragmented message and its echo, then "c" and its echo.
    let mut c = RawClient::connect(g.addr, "/up/1/room?lang=en").await;
    c.send_frame(false, opcode::TEXT, b"a", true).await;
    c.send_frame(true, opcode::CONTINUATION, b"b", true).await;
    assert_eq!(
        c.read_frame().await,
        Some((true, opcode::TEXT, b"ab".to_vec()))
    );
    c.send_frame(true, opcode::TEXT, b"c", true).await;
    assert_eq!(
        c.read_frame().await,
        Some((true, opcode::TEXT, b"c".to_vec()))
    );
    // The next message is refused on its first fragment; none of it is forwarded.
    c.send_frame(false, opcode::TEXT, b"d", true).await;
    c.send_frame(false, opcode::CONTINUATION, b"e", true).await;
    c.send_frame(true, opcode::CONTINUATION, b"f", true).await;
    let (_, op, text) = c.read_frame().await.expect("the error frame");
    assert_eq!(
        (op, String::from_utf8_lossy(&text).as_ref()),
        (opcode::TEXT, THROTTLED)
    );
    // The connection goes on; the ping reaches the backend, which answers it.
    c.send_frame(true, opcode::PING, b"still here", true).await;
    assert_eq!(
        c.read_frame().await,
        Some((true, opcode::PONG, b"still here".to_vec()))
    );
    let texts: Vec<String> = backend
        .received()
        .iter()
        .filter_map(|m| match m {
            Message::Text(t) => Some(t.as_str().to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(texts, ["ab", "c"]);
    assert!(
        backend
            .received()
            .iter()
            .any(|m| matches!(m, Message::Ping(p) if &p[..] == b"still here")),
        "the ping was not passed through: not the frame relay"
    );

    // 3 draws: a, its echo, b pass; b's echo is replaced by the error frame on its way down.
    let mut c = connect(&g.url("/down/1/room?lang=en")).await;
    send(&mut c, "a").await;
    assert_eq!(recv_text(&mut c).await, "a");
    send(&mut c, "b").await;
    assert_eq!(recv_text(&mut c).await, THROTTLED);
    echo_ping(&mut c).await;

    // onThrottle: close closes both sides with 4003.
    let mut c = connect(&g.url("/shut/1/room?lang=en")).await;
    send(&mut c, "only one").await;
    let (code, reason) = expect_close(&mut c).await;
    assert_eq!(
        (code, reason.as_str()),
        (4003, "Websocket frame throttled out")
    );
    eventually(STEP, "the backend is closed with 4003", || {
        backend
            .received()
            .iter()
            .any(|m| matches!(m, Message::Close(Some(f)) if u16::from(f.code) == 4003))
            .then_some(())
    })
    .await;

    let metrics = g.metrics().await;
    for series in [
        "portico_messages_throttled_total{api=\"up\",route=\"/up/1/room\",direction=\"client_to_backend\",tier=\"custom\"}",
        "portico_messages_throttled_total{api=\"down\",route=\"/down/1/room\",direction=\"backend_to_client\",tier=\"custom\"}",
    ] {
        assert_eq!(metric(&metrics, series), Some(1.0), "{series}\n{metrics}");
    }
}

/// A ping answered: the connection is open and in order.
async fn echo_ping(c: &mut Client) {
    within(
        STEP,
        "pinging",
        c.send(Message::Ping(b"ok".to_vec().into())),
    )
    .await
    .expect("ping");
    loop {
        match within(STEP, "the pong", c.next()).await {
            Some(Ok(Message::Pong(p))) => {
                assert_eq!(&p[..], b"ok");
                return;
            }
            Some(Ok(Message::Ping(_))) => continue,
            other => panic!("expected the pong, got {other:?}"),
        }
    }
}
