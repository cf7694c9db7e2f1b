//! The `wss://` listener: a client trusting the gateway's CA exchanges messages, one that does
//! not is refused, and a certificate swapped on disk is picked up by new connections while open
//! ones keep going.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::harness::*;
use futures_util::{SinkExt, StreamExt};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// A test certificate authority.
struct Authority {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Authority {
    fn new(name: &str) -> Authority {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Authority { issuer }
    }

    /// A server certificate for 127.0.0.1 and localhost: (certificate PEM, key PEM, DER).
    fn server_cert(&self) -> (String, String, CertificateDer<'static>) {
        let params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().clone())
    }

    fn connector(&self) -> TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.issuer.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        TlsConnector::from(Arc::new(config))
    }
}

/// Writes the pair as the gateway's files, each replaced whole (written aside, then renamed).
fn install(dir: &Path, cert_pem: &str, key_pem: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("server.crt"), dir.join("server.key"));
    for (path, text) in [(&key, key_pem), (&cert, cert_pem)] {
        let aside = path.with_extension("new");
        std::fs::write(&aside, text).unwrap();
        std::fs::rename(&aside, path).unwrap();
    }
    (cert, key)
}

type WssClient = WebSocketStream<TlsStream<TcpStream>>;

/// Opens `wss://127.0.0.1:<port><path>` with `connector`; returns the socket and the certificate
/// the gateway presented.
async fn wss(
    connector: &TlsConnector,
    port: u16,
    path: &str,
) -> Result<(WssClient, CertificateDer<'static>), String> {
    within(Duration::from_secs(10), "the wss handshake", async {
        let tcp = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| e.to_string())?;
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        let presented = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
        let url = format!("wss://127.0.0.1:{port}{path}");
        let (socket, _) = tokio_tungstenite::client_async(url, tls)
            .await
            .map_err(|e| format!("WebSocket: {e}"))?;
        Ok((socket, presented))
    })
    .await
}

async fn echo(socket: &mut WssClient, text: &str) {
    socket.send(Message::text(text)).await.unwrap();
    let back = within(Duration::from_secs(10), "the echo", socket.next()).await;
    match back {
        Some(Ok(Message::Text(t))) => assert_eq!(t.as_str(), text),
        other => panic!("expected {text:?} back, got {other:?}"),
    }
}

async fn tls_gateway(backend: &Backend, cert: &Path, key: &Path) -> (Gateway, u16) {
    let port = free_port();
    let port_arg = format!("127.0.0.1:{port}");
    let gateway = Gateway::builder()
        .spec(
            "echo.yaml",
            spec("Echo", "v1", "/echo", &backend.endpoint())
                .channel("/room")
                .yaml(),
        )
        .args(&[
            "--tls-listen",
            &port_arg,
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ])
        .start()
        .await;
    (gateway, port)
}

#[tokio::test]
async fn a_client_trusting_the_ca_exchanges_messages_and_an_untrusting_one_is_refused() {
    let backend = Backend::start(Mode::Echo).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new("Portico test CA");
    let (cert_pem, key_pem, der) = ca.server_cert();
    let (cert, key) = install(dir.path(), &cert_pem, &key_pem);
    let (gateway, port) = tls_gateway(&backend, &cert, &key).await;

    let (mut socket, presented) = wss(&ca.connector(), port, "/echo/v1/room")
        .await
        .expect("the wss handshake");
    assert_eq!(presented, der);
    echo(&mut socket, "over tls").await;
    let seen = backend.handshake(1).await;
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
    assert!(
        seen.header("forwarded")
            .is_some_and(|f| f.contains("proto=https")),
        "{:?}",
        seen.header("forwarded")
    );

    let stranger = Authority::new("Another CA");
    let refused = wss(&stranger.connector(), port, "/echo/v1/room").await;
    let Err(why) = refused else {
        panic!("a client not trusting the CA connected");
    };
    assert!(why.starts_with("TLS:"), "{why}");

    // The plain listener still speaks ws:// and tells the backend so.
    let mut plain = connect(&gateway.url("/echo/v1/room")).await;
    echo_text(&mut plain, "plain").await;
    assert_eq!(
        backend.handshake(2).await.header("x-forwarded-proto"),
        Some("http")
    );
}

#[tokio::test]
async fn a_swapped_certificate_serves_new_connections_and_keeps_open_ones() {
    let backend = Backend::start(Mode::Echo).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new("Portico test CA");
    let (cert_pem, key_pem, first) = ca.server_cert();
    let (cert, key) = install(dir.path(), &cert_pem, &key_pem);
    let (gateway, port) = tls_gateway(&backend, &cert, &key).await;
    let connector = ca.connector();

    let (mut open, presented) = wss(&connector, port, "/echo/v1/room").await.unwrap();
    assert_eq!(presented, first);
    echo(&mut open, "before").await;

    // A broken pair is refused; the current certificate stays.
    install(dir.path(), "not a certificate", &key_pem);
    eventually(
        Duration::from_secs(10),
        "the bad certificate refused",
        || {
            gateway
                .log()
                .contains("TLS certificate not reloaded")
                .then_some(())
        },
    )
    .await;
    let (_, still) = wss(&connector, port, "/echo/v1/room").await.unwrap();
    assert_eq!(still, first);

    let (cert_pem, key_pem, second) = ca.server_cert();
    assert_ne!(first, second);
    install(dir.path(), &cert_pem, &key_pem);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (mut fresh, presented) = wss(&connector, port, "/echo/v1/room").await.unwrap();
        if presented == second {
            echo(&mut fresh, "new certificate").await;
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new certificate was not served within 10 s\n{}",
            gateway.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The connection opened under the first certificate is still relayed.
    echo(&mut open, "after").await;
}
