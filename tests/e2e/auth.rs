//! Credentials end to end: a real runtime with `--config`, real clients, a recording backend.
//! Refusals before any backend connection, credentials stripped from what the backend sees,
//! fail-closed without a verifier, and no credential in logs or `/plan`; live connections closed
//! with 4001 when their credential expires or is revoked, and 4002 error frames for a direction
//! the credential's scopes do not cover.

use crate::harness::*;
use sha2::Digest;
use tokio_tungstenite::tungstenite;

const ISSUER: &str = "https://idp.e2e.test";
const SECRET: &str = "e2e-hmac-secret-0123456789abcdef-0123456789";
const API_KEY: &str = "e2e-api-key-4f1c2b9a";

fn spec(endpoint: &str) -> String {
    format!(
        r#"asyncapi: 2.6.0
info: {{title: Chat, version: 1.0.0, description: Chat.}}
x-gateway: {{context: /chat, endpoints: {{production: '{endpoint}'}}}}
channels:
  /rooms:
    publish:
      x-scopes: [chat:write]
      message: {{payload: {{type: string}}}}
  /open:
    x-auth-type: None
    publish:
      message: {{payload: {{type: string}}}}
  /lobby:
    publish:
      message: {{payload: {{type: string}}}}
  /feed:
    publish:
      x-scopes: [chat:write]
      message: {{payload: {{type: string}}}}
    subscribe:
      x-scopes: [chat:read]
      message: {{payload: {{type: string}}}}
components:
  securitySchemes:
    oauth2:
      type: oauth2
      flows:
        implicit:
          authorizationUrl: https://idp.e2e.test/authorize
          scopes: {{chat:write: Post., chat:read: Read.}}
"#
    )
}

/// Writes the runtime configuration and its files into `dir`; returns the config path.
fn write_config(dir: &std::path::Path) -> String {
    std::fs::write(dir.join("hmac.secret"), SECRET).unwrap();
    let hash = format!("{:x}", sha2::Sha256::digest(API_KEY.as_bytes()));
    std::fs::write(
        dir.join("keys.toml"),
        format!("[[keys]]\nname = \"e2e\"\nsha256 = \"{hash}\"\ntype = \"production\"\napis = [\"*\"]\n"),
    )
    .unwrap();
    std::fs::write(dir.join("deny.txt"), "# revoked tokens\n").unwrap();
    let config = dir.join("portico.toml");
    std::fs::write(
        &config,
        format!(
            "[auth.jwt]\nskew_seconds = 1\n\n[[auth.jwt.issuers]]\nissuer = \"{ISSUER}\"\nalgorithms = [\"HS256\"]\nhmac_secret_file = \"hmac.secret\"\n\n[auth.api_keys]\nfile = \"keys.toml\"\n\n[auth.denylist]\nfile = \"deny.txt\"\n"
        ),
    )
    .unwrap();
    config.display().to_string()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn token(scope: &str) -> String {
    token_with(scope, now() + 600, "t-default")
}

fn token_with(scope: &str, exp: u64, jti: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({"iss": ISSUER, "sub": "alice", "exp": exp, "jti": jti, "scope": scope}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

async fn status_of(url: &str, headers: &[(&str, &str)]) -> u16 {
    match try_connect_request(client_request(url, headers)).await {
        Ok(_) => 101,
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("{url}: expected an HTTP answer, got {e}"),
    }
}

#[tokio::test]
async fn credentials_are_checked_at_the_handshake_and_never_reach_the_backend() {
    let backend = Backend::start(Mode::Echo).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let g = Gateway::builder()
        .spec("chat.yaml", spec(&backend.endpoint()))
        .args(&["--config", &config])
        .start()
        .await;
    let rooms = g.url("/chat/1.0.0/rooms");
    assert_eq!(status_of(&rooms, &[]).await, 401, "no credential");
    let forged = format!("Bearer {}", token("chat:write").replace('.', ".x"));
    assert_eq!(status_of(&rooms, &[("Authorization", &forged)]).await, 401);
    let unscoped = format!("Bearer {}", token("other"));
    assert_eq!(
        status_of(&rooms, &[("Authorization", &unscoped)]).await,
        403
    );
    assert_eq!(status_of(&format!("{rooms}?apikey=guess"), &[]).await, 401);
    // A token that would never expire is refused (the issuer does not allow it).
    let endless = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({"iss": ISSUER, "sub": "alice", "scope": "chat:write"}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let endless = format!("Bearer {endless}");
    assert_eq!(status_of(&rooms, &[("Authorization", &endless)]).await, 401);
    assert!(
        backend.handshakes().is_empty(),
        "refusals happen before any backend connection"
    );

    // A valid token in the query: connected, relayed, and stripped.
    let good = token("chat:write");
    let mut client = connect(&format!("{rooms}?access_token={good}&room=a")).await;
    echo_text(&mut client, "hello").await;
    let seen = backend.handshake(1).await;
    assert!(
        !seen.uri.contains(&good) && !seen.uri.contains("access_token"),
        "{}",
        seen.uri
    );
    assert!(
        seen.uri.contains("room=a"),
        "other parameters stay: {}",
        seen.uri
    );

    // A valid token in the Authorization header.
    let bearer = format!("Bearer {good}");
    let (mut client, _) =
        try_connect_request(client_request(&rooms, &[("Authorization", &bearer)]))
            .await
            .unwrap();
    echo_text(&mut client, "again").await;
    let seen = backend.handshake(2).await;
    assert!(seen.header("authorization").is_none());

    // The open topic needs nothing.
    let mut open = connect(&g.url("/chat/1.0.0/open")).await;
    echo_text(&mut open, "open").await;

    // No credential or secret in the log, /plan, metrics, the docs (/docs/), the specs served
    // (/specs/), or the plan file `compile --out` writes (`Plan::to_json`, its bytes).
    let exposed = [good.as_str(), SECRET, API_KEY];
    let mut shown = g.admin_exposure().await;
    assert!(
        shown.iter().any(|(path, _)| path.ends_with(".html"))
            && shown.iter().any(|(path, _)| path.ends_with(".md"))
            && shown.iter().any(|(path, _)| path.starts_with("/specs/")),
        "every kind of page is checked: {:?}",
        shown.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    let compiled = portico_compiler::compile(
        &[g.specs_dir().join("chat.yaml")],
        &portico_compiler::Options::default(),
    );
    let plan_file = compiled.plan.expect("the spec compiles").to_json();
    shown.push(("plan.json".to_string(), plan_file));
    shown.push(("the log".to_string(), g.log()));
    for (path, body) in &shown {
        for secret in exposed {
            assert!(!body.contains(secret), "{path} exposes a credential");
        }
    }
}

#[tokio::test]
async fn an_api_whose_credentials_cannot_be_checked_is_not_served() {
    let g = Gateway::builder()
        .spec("chat.yaml", spec("echo:"))
        .start()
        .await;
    assert_eq!(status_of(&g.url("/chat/1.0.0/rooms"), &[]).await, 404);
    let log = eventually_log(&g, "is not served").await;
    assert!(
        log.contains("--allow-unauthenticated"),
        "the error says what to do"
    );

    let g = Gateway::builder()
        .spec("chat.yaml", spec("echo:"))
        .args(&["--allow-unauthenticated"])
        .start()
        .await;
    let mut client = connect(&g.url("/chat/1.0.0/rooms")).await;
    echo_text(&mut client, "unchecked").await;
    assert!(
        g.log().contains("--allow-unauthenticated"),
        "logged at start"
    );
}

async fn eventually_log(g: &Gateway, needle: &str) -> String {
    for _ in 0..50 {
        let log = g.log();
        if log.contains(needle) {
            return log;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the log never said `{needle}`:\n{}", g.log());
}

async fn chat_gateway(backend: &Backend) -> (Gateway, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let g = Gateway::builder()
        .spec("chat.yaml", spec(&backend.endpoint()))
        .args(&["--config", &config])
        .start()
        .await;
    (g, dir)
}

async fn bearer_client(url: &str, token: &str) -> Client {
    let bearer = format!("Bearer {token}");
    try_connect_request(client_request(url, &[("Authorization", &bearer)]))
        .await
        .expect("connected")
        .0
}

/// The close code the client receives, and how long after `since` it came.
async fn close_code(client: &mut Client, since: std::time::Instant) -> (u16, std::time::Duration) {
    let (code, _) = expect_close(client).await;
    (code, since.elapsed())
}

#[tokio::test]
async fn a_connection_is_closed_with_4001_when_its_token_expires() {
    let backend = Backend::start(Mode::Echo).await;
    let (g, _dir) = chat_gateway(&backend).await;
    let rooms = g.url("/chat/1.0.0/rooms");
    // Expires in 2 s; the configured skew is 1 s.
    let exp = now() + 2;
    let mut short = bearer_client(&rooms, &token_with("chat:write", exp, "t-short")).await;
    let mut long = bearer_client(&rooms, &token("chat:write")).await;
    echo_text(&mut short, "before expiry").await;
    let (code, _) = close_code(&mut short, std::time::Instant::now()).await;
    assert_eq!(code, 4001);
    assert!(now() > exp + 1, "not closed before exp plus the skew");
    echo_text(&mut long, "a token with time left stays open").await;
}

#[tokio::test]
async fn removing_a_key_from_the_key_file_closes_its_live_connection_with_4001() {
    let backend = Backend::start(Mode::Echo).await;
    let (g, dir) = chat_gateway(&backend).await;
    // API keys carry no scopes: a route whose operations need none.
    let rooms = g.url("/chat/1.0.0/lobby");
    let mut keyed = connect(&format!("{rooms}?apikey={API_KEY}")).await;
    let mut other = bearer_client(&rooms, &token("chat:write")).await;
    echo_text(&mut keyed, "while the key is listed").await;
    let removed = std::time::Instant::now();
    std::fs::write(dir.path().join("keys.toml"), "# all keys revoked\n").unwrap();
    let (code, after) = close_code(&mut keyed, removed).await;
    assert_eq!(code, 4001);
    // Polled twice a second: within a second, with slack for a loaded machine.
    assert!(after < std::time::Duration::from_secs(3), "{after:?}");
    echo_text(&mut other, "a JWT is not touched").await;
    assert_eq!(
        status_of(&format!("{rooms}?apikey={API_KEY}"), &[]).await,
        401
    );
}

#[tokio::test]
async fn a_denylisted_jti_closes_its_live_connection_with_4001() {
    let backend = Backend::start(Mode::Echo).await;
    let (g, dir) = chat_gateway(&backend).await;
    let rooms = g.url("/chat/1.0.0/rooms");
    let mut stolen =
        bearer_client(&rooms, &token_with("chat:write", now() + 600, "t-stolen")).await;
    let mut kept = bearer_client(&rooms, &token_with("chat:write", now() + 600, "t-kept")).await;
    echo_text(&mut stolen, "before").await;
    let denied = std::time::Instant::now();
    std::fs::write(dir.path().join("deny.txt"), "jti:t-stolen\n").unwrap();
    let (code, after) = close_code(&mut stolen, denied).await;
    assert_eq!(code, 4001);
    assert!(after < std::time::Duration::from_secs(3), "{after:?}");
    echo_text(&mut kept, "another jti stays").await;
}

#[tokio::test]
async fn a_reader_receives_but_its_sends_get_a_4002_error_frame_and_it_stays_open() {
    // Receiving is allowed: a backend that pushes reaches the reader.
    let pusher = Backend::start(Mode::Flood {
        message_bytes: 16,
        limit_bytes: 32,
    })
    .await;
    let (g, _dir) = chat_gateway(&pusher).await;
    let mut reader = bearer_client(&g.url("/chat/1.0.0/feed"), &token("chat:read")).await;
    for _ in 0..2 {
        assert!(matches!(recv_data(&mut reader).await, Message::Binary(_)));
    }

    // Sending is not: each send is answered with an error frame instead of being relayed, and
    // the connection stays open.
    let backend = Backend::start(Mode::Echo).await;
    let (g, _dir) = chat_gateway(&backend).await;
    let feed = g.url("/chat/1.0.0/feed");
    let mut reader = bearer_client(&feed, &token("chat:read")).await;
    for n in 0..2 {
        within(
            STEP,
            "sending",
            reader.send(Message::text(format!("post {n}"))),
        )
        .await
        .expect("the connection is still open");
        match recv_data(&mut reader).await {
            Message::Text(t) => {
                let frame: serde_json::Value = serde_json::from_str(t.as_str())
                    .unwrap_or_else(|_| panic!("expected the 4002 error frame, got {t}"));
                assert_eq!(frame["error"]["code"], 4002, "{t}");
            }
            other => panic!("expected the 4002 error frame, got {other:?}"),
        }
    }
    // A writer on the same route is relayed both ways.
    let mut writer = bearer_client(&feed, &token("chat:read chat:write")).await;
    echo_text(&mut writer, "allowed").await;
    assert!(
        !backend
            .received()
            .iter()
            .any(|m| matches!(m, Message::Text(t) if t.as_str().starts_with("post"))),
        "nothing the reader sent reached the backend"
    );
}

/// The chat spec with per-client throttling: 2 messages an hour (both ways) and 1 connection.
fn throttled_spec() -> String {
    spec("echo:").replace(
        "endpoints: {production: 'echo:'}}",
        "endpoints: {production: 'echo:'}, throttling: {client: {messages: 2/hour}, maxConnectionsPerClient: 1}}",
    )
}

const SECOND_KEY: &str = "e2e-api-key-second-77aa0c";

#[tokio::test]
async fn per_client_limits_count_the_credential_not_the_address() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let mut keys = std::fs::read_to_string(dir.path().join("keys.toml")).unwrap();
    let hash = format!("{:x}", sha2::Sha256::digest(SECOND_KEY.as_bytes()));
    keys.push_str(&format!(
        "\n[[keys]]\nname = \"second\"\nsha256 = \"{hash}\"\ntype = \"production\"\napis = [\"*\"]\n"
    ));
    std::fs::write(dir.path().join("keys.toml"), keys).unwrap();
    let g = Gateway::builder()
        .spec("chat.yaml", throttled_spec())
        .args(&["--config", &config])
        .start()
        .await;
    let lobby = g.url("/chat/1.0.0/lobby");
    // Every client here shares 127.0.0.1: only the credential tells them apart.
    let mut first = connect(&format!("{lobby}?apikey={API_KEY}")).await;
    let mut second = connect(&format!("{lobby}?apikey={SECOND_KEY}")).await;
    assert_eq!(
        status_of(&format!("{lobby}?apikey={API_KEY}"), &[]).await,
        429,
        "the same key's second connection is over its cap"
    );
    // One message each way uses up the first key's bucket; the second key has its own.
    echo_text(&mut first, "one").await;
    within(STEP, "sending", first.send(Message::text("two")))
        .await
        .expect("send");
    match recv_data(&mut first).await {
        Message::Text(t) => assert!(t.as_str().contains("4003"), "{t}"),
        other => panic!("expected the 4003 error frame, got {other:?}"),
    }
    echo_text(&mut second, "its own bucket").await;
    // The client key is an identity, never the key itself.
    let metrics = g.metrics().await;
    assert!(
        !metrics.contains(API_KEY) && !metrics.contains("apikey:"),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_address_that_keeps_failing_credentials_is_refused_before_they_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let g = Gateway::builder()
        .spec("chat.yaml", spec("echo:"))
        .args(&["--config", &config, "--max-credential-failures-per-ip", "3"])
        .start()
        .await;
    let lobby = g.url("/chat/1.0.0/lobby");
    let mut statuses = Vec::new();
    // The budget refills at 3 a second: guessing as fast as a client can soon exceeds it.
    for n in 0..20 {
        let status = status_of(&format!("{lobby}?apikey=guess-{n}"), &[]).await;
        statuses.push(status);
        if status == 429 {
            break;
        }
    }
    assert_eq!(&statuses[..3], &[401, 401, 401], "{statuses:?}");
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    // Blocked: even the right key is not looked at for a second.
    assert_eq!(
        status_of(&format!("{lobby}?apikey={API_KEY}"), &[]).await,
        429
    );
}
