//! Credentials end to end: a real runtime with `--config`, real clients, a recording backend.
//! Refusals before any backend connection, credentials stripped from what the backend sees,
//! fail-closed without a verifier, and no credential in logs or `/plan`.

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
components:
  securitySchemes:
    oauth2:
      type: oauth2
      flows:
        implicit:
          authorizationUrl: https://idp.e2e.test/authorize
          scopes: {{chat:write: Post.}}
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
    let config = dir.join("portico.toml");
    std::fs::write(
        &config,
        format!(
            "[[auth.jwt.issuers]]\nissuer = \"{ISSUER}\"\nalgorithms = [\"HS256\"]\nhmac_secret_file = \"hmac.secret\"\n\n[auth.api_keys]\nfile = \"keys.toml\"\n"
        ),
    )
    .unwrap();
    config.display().to_string()
}

fn token(scope: &str) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({"iss": ISSUER, "sub": "alice", "exp": exp, "scope": scope}),
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

    // No credential or secret in the log, /plan or metrics.
    let exposed = [good.as_str(), SECRET, API_KEY];
    let plan = g.plan().await.to_string();
    let metrics = g.metrics().await;
    let log = g.log();
    for secret in exposed {
        assert!(!plan.contains(secret), "the plan exposes a credential");
        assert!(!metrics.contains(secret), "metrics expose a credential");
        assert!(!log.contains(secret), "the log exposes a credential");
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
