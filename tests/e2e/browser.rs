//! A real browser through the gateway: headless Chromium (Debian's `chromium`) opens
//! `new WebSocket(url, ["base64url.bearer.authorization.k8s.io.<token>", "chat"])` from a page
//! served on loopback, to a route that requires a bearer token, and exchanges a message with an
//! echo backend. The token authenticates the handshake and never reaches the backend.
//!
//! Without Chromium the test is skipped, except under CI (`CI` set), where it fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Notify;

const ISSUER: &str = "https://idp.browser.test";
const SECRET: &str = "browser-hmac-secret-0123456789abcdef-012345";
const TOKEN_PREFIX: &str = "base64url.bearer.authorization.k8s.io.";

fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PORTICO_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser", "google-chrome"] {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// Runs headless Chromium on `url` and returns the DOM it dumps once the page has loaded.
fn dump_dom(binary: &Path, url: &str) -> String {
    let profile = tempfile::tempdir().expect("profile dir");
    let mut child = Command::new(binary)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-quic",
            "--no-first-run",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut text);
        text
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        match child.try_wait().expect("wait for chromium") {
            Some(_) => break,
            None if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("chromium did not finish within 90 s on {url}");
            }
            None => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    reader.join().expect("reader thread")
}

fn chat_spec(endpoint: &str) -> String {
    format!(
        r#"asyncapi: 2.6.0
info: {{title: Chat, version: 1.0.0, description: Chat.}}
x-gateway: {{context: /chat, endpoints: {{production: '{endpoint}'}}}}
channels:
  /rooms:
    publish:
      message: {{payload: {{type: string}}}}
"#
    )
}

fn token() -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({"iss": ISSUER, "sub": "browser", "exp": exp}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// The page: opens the WebSocket with the token as a subprotocol, sends one message, and reports
/// what came back to `/result`. The image `/wait` holds the page's load event (and so the DOM
/// dump) until a result was reported.
fn page(ws_url: &str, jwt: &str) -> String {
    format!(
        r#"<!doctype html><html><head><title>pending</title></head><body>
<script>
function report(text) {{
  document.title = text;
  fetch('/result?r=' + encodeURIComponent(text));
}}
const jwt = {jwt:?};
const encoded = btoa(jwt).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
try {{
  const ws = new WebSocket({ws_url:?}, ['{TOKEN_PREFIX}' + encoded, 'chat']);
  ws.onopen = () => ws.send('hello from the browser');
  ws.onmessage = (e) => {{ report('echo:' + e.data + '|protocol:' + ws.protocol); ws.close(1000); }};
  ws.onerror = () => report('error');
  ws.onclose = (e) => {{ if (document.title === 'pending') report('closed:' + e.code); }};
}} catch (e) {{ report('exception:' + e); }}
</script>
<img src="/wait" alt="">
</body></html>"#
    )
}

/// A tiny loopback HTTP server: `/` is the page, `/result?r=…` records the result, `/wait`
/// answers once a result is recorded (or after 30 s).
async fn serve_page(html: String) -> (u16, Arc<Mutex<Option<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let result = Arc::new(Mutex::new(None::<String>));
    let reported = Arc::new(Notify::new());
    let (r, n) = (result.clone(), reported.clone());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let (html, result, reported) = (html.clone(), r.clone(), n.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let Ok(n) = stream.read(&mut buf).await else {
                    return;
                };
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let target = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let (kind, body) = if let Some(query) = target.strip_prefix("/result?r=") {
                    *result.lock().unwrap() = Some(percent_decode(query));
                    reported.notify_waiters();
                    ("text/plain", String::new())
                } else if target == "/wait" {
                    let waiting = reported.notified();
                    if result.lock().unwrap().is_none() {
                        let _ = tokio::time::timeout(Duration::from_secs(30), waiting).await;
                    }
                    (
                        "image/svg+xml",
                        "<svg xmlns='http://www.w3.org/2000/svg'/>".into(),
                    )
                } else if target == "/" {
                    ("text/html", html)
                } else {
                    ("text/plain", String::new())
                };
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    (port, result)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => out.push(b),
                    Err(_) => out.extend_from_slice(&bytes[i..i + 3]),
                }
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_opens_a_websocket_with_a_bearer_subprotocol_through_the_gateway() {
    let Some(binary) = chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium is missing: scripts/setup-test-deps.sh installs it"
        );
        eprintln!("skipped: chromium is not installed (scripts/setup-test-deps.sh installs it)");
        return;
    };
    let backend = Backend::start_choosing(Mode::Echo, Some("chat")).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hmac.secret"), SECRET).unwrap();
    let config = dir.path().join("portico.toml");
    std::fs::write(
        &config,
        format!("[[auth.jwt.issuers]]\nissuer = \"{ISSUER}\"\nalgorithms = [\"HS256\"]\nhmac_secret_file = \"hmac.secret\"\n"),
    )
    .unwrap();
    let gateway = Gateway::builder()
        .spec("chat.yaml", chat_spec(&backend.endpoint()))
        .args(&["--config", config.to_str().unwrap()])
        .start()
        .await;
    let ws_url = gateway.url("/chat/1.0.0/rooms");
    // Without the token the route is closed: the browser's success is the token's doing.
    assert_eq!(refused_status(&ws_url).await, 401);

    let jwt = token();
    let (port, result) = serve_page(page(&ws_url, &jwt)).await;
    let page_url = format!("http://127.0.0.1:{port}/");
    let dom = tokio::task::spawn_blocking(move || dump_dom(&binary, &page_url))
        .await
        .unwrap();

    let reported = result.lock().unwrap().clone();
    let expected = "echo:hello from the browser|protocol:chat";
    assert_eq!(
        reported.as_deref(),
        Some(expected),
        "the page reported {reported:?}; DOM:\n{dom}\n{}",
        gateway.log()
    );
    assert!(dom.contains(&format!("<title>{expected}</title>")), "{dom}");

    let seen = backend.handshake(1).await;
    assert_eq!(
        seen.protocols,
        vec!["chat".to_string()],
        "offered to the backend"
    );
    for (name, value) in &seen.headers {
        assert!(
            !value.contains(&jwt) && !value.contains(TOKEN_PREFIX),
            "the token reached the backend in {name}: {value}"
        );
    }
    assert!(!seen.uri.contains(&jwt));
}
