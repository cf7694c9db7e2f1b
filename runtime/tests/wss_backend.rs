//! A `wss://` backend signed by a private CA: reachable with `--backend-ca`, refused without it.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use portico_compiler::plan::{Route, RouteAuth, RouteKind, RouteMessages};
use portico_runtime::backend::{self, BackendRequest, BackendSocket, ConnectError};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

fn route() -> Route {
    Route {
        topic: "/echo".into(),
        pattern: "/t/1/echo".into(),
        kind: RouteKind::Literal,
        backend_path: "/".into(),
        parameters: vec![],
        channels: vec!["echo".into()],
        messages: RouteMessages::default(),
        scopes: vec![],
        auth: RouteAuth::None,
        handshake: None,
        throttling: None,
        validation: None,
        security: Default::default(),
    }
}

/// Starts a TLS WebSocket echo server for `localhost` with a certificate from a fresh CA; returns
/// its port and the CA certificate (PEM).
async fn tls_echo_server() -> (u16, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut ws) = tokio_tungstenite::accept_async(tls).await else {
                    return;
                };
                while let Some(Ok(m)) = ws.next().await {
                    if m.is_text() && ws.send(m).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, ca.pem())
}

async fn connect(url: &str, ca: Option<&str>) -> Result<backend::Connected, ConnectError> {
    connect_offering(url, ca, None).await
}

async fn connect_offering(
    url: &str,
    ca: Option<&str>,
    protocols: Option<&str>,
) -> Result<backend::Connected, ConnectError> {
    let tls = backend::tls_config(ca.map(str::as_bytes)).unwrap();
    let route = route();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        backend::connect(
            BackendRequest {
                url,
                headers: vec![],
                protocols,
                route: &route,
            },
            WebSocketConfig::default(),
            &tls,
            std::time::Duration::from_secs(5),
        ),
    )
    .await
    .expect("connect finishes")
}

#[tokio::test]
async fn wss_backend_with_a_private_ca_is_reached_with_backend_ca_only() {
    let (port, ca_pem) = tls_echo_server().await;
    let url = format!("wss://localhost:{port}/");

    // Without the private CA the certificate is not trusted: 502 with a TLS reason.
    let refused = connect(&url, None)
        .await
        .err()
        .expect("untrusted certificate refused");
    assert_eq!(refused.status(), 502);
    assert!(
        refused.reason().contains("unreachable"),
        "{}",
        refused.reason()
    );

    // With it, the connection works end to end.
    let connected = connect(&url, Some(&ca_pem))
        .await
        .expect("trusted with --backend-ca");
    let BackendSocket::Tls(upgraded) = connected.socket else {
        panic!("a wss:// backend is a TLS socket")
    };
    let mut ws = upgraded.into_websocket().await;
    ws.send(Message::text("over tls")).await.unwrap();
    let echoed = tokio::time::timeout(std::time::Duration::from_secs(5), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(echoed, Message::text("over tls"));
}

#[tokio::test]
async fn a_wss_backend_may_decline_the_offered_subprotocols() {
    let (port, ca_pem) = tls_echo_server().await;
    let url = format!("wss://localhost:{port}/");
    let connected = connect_offering(&url, Some(&ca_pem), Some("chat.v1, chat.v2"))
        .await
        .expect("a backend that picks no subprotocol is still a backend");
    assert_eq!(connected.protocol, None);
}

#[test]
fn a_ca_file_without_certificates_is_refused() {
    assert!(backend::tls_config(Some(b"not a certificate")).is_err());
}
