//! Opening the backend side of a connection: `ws://`, `wss://` (rustls), or a built-in backend.
//!
//! The gateway connects to the backend *before* it answers the client's upgrade, so that a client
//! never holds a socket that leads nowhere: an unreachable backend becomes HTTP 502, a slow one 504.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, DuplexStream};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

use crate::builtin;
use portico_compiler::plan::Route;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// A connected backend, remote or in-process.
///
/// Plain and TLS backends are separate variants because the relay keeps the stream for the
/// connection's whole life: a TLS stream is much larger than a plain TCP stream (1.4 KB against
/// 0.3 KB), which every plain connection would otherwise pay.
pub enum BackendSocket {
    Plain(Upgraded<TcpStream>),
    Tls(Box<Upgraded<TlsStream<TcpStream>>>),
    Builtin(WebSocketStream<DuplexStream>),
}

/// A remote backend's socket just after its upgrade: the frame relay reads its frames as bytes,
/// the message relay wraps it in a [`WebSocketStream`].
pub struct Upgraded<S> {
    pub stream: S,
    /// What the backend sent right after its 101 response.
    pub leftover: Vec<u8>,
    config: WebSocketConfig,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Upgraded<S> {
    /// The socket as a message stream, with the connection's limits.
    pub async fn into_websocket(self) -> WebSocketStream<S> {
        WebSocketStream::from_partially_read(
            self.stream,
            self.leftover,
            Role::Client,
            Some(self.config),
        )
        .await
    }
}

pub struct Connected {
    pub socket: BackendSocket,
    /// The subprotocol the backend chose, returned to the client.
    pub protocol: Option<String>,
}

#[derive(Debug)]
pub enum ConnectError {
    /// Refused, reset, DNS failure, TLS failure: HTTP 502.
    Unreachable(String),
    /// No answer in time: HTTP 504.
    Timeout,
    /// The backend answered the upgrade with an HTTP status: HTTP 502, saying which.
    Rejected(u16),
    /// The gateway has no file descriptor left for the backend socket: HTTP 503 (the gateway's
    /// condition, not the backend's).
    NoDescriptors,
}

impl ConnectError {
    /// A failed socket operation: out of descriptors (EMFILE, ENFILE) or unreachable.
    fn from_io(e: &std::io::Error) -> ConnectError {
        match e.raw_os_error() {
            Some(libc::EMFILE | libc::ENFILE) => ConnectError::NoDescriptors,
            _ => ConnectError::Unreachable(e.kind().to_string()),
        }
    }
}

impl ConnectError {
    pub fn status(&self) -> u16 {
        match self {
            ConnectError::Timeout => 504,
            ConnectError::NoDescriptors => 503,
            _ => 502,
        }
    }

    /// A short reason for the client and the log; never contains the backend URL (internal).
    pub fn reason(&self) -> String {
        match self {
            ConnectError::Unreachable(why) => format!("backend unreachable: {why}"),
            ConnectError::Timeout => "backend did not answer in time".to_string(),
            ConnectError::Rejected(status) => {
                format!("backend refused the connection (HTTP {status})")
            }
            ConnectError::NoDescriptors => {
                "the gateway is out of file descriptors: try again later".to_string()
            }
        }
    }
}

/// What the backend connection needs from the handshake.
pub struct BackendRequest<'a> {
    pub url: &'a str,
    pub headers: Vec<(String, String)>,
    /// The client's `Sec-WebSocket-Protocol` offer, passed on as is.
    pub protocols: Option<&'a str>,
    pub route: &'a Route,
}

/// Builds the TLS configuration for `wss://` backends: webpki roots plus an optional private CA.
pub fn tls_config(extra_ca_pem: Option<&[u8]>) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = extra_ca_pem {
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| format!("cannot read the CA file: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("the CA file holds an unusable certificate: {e}"))?;
            added += 1;
        }
        if added == 0 {
            return Err("the CA file holds no PEM certificate".to_string());
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Connects to the backend named by `request.url` within `timeout`.
pub async fn connect(
    request: BackendRequest<'_>,
    config: WebSocketConfig,
    tls: &Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> Result<Connected, ConnectError> {
    if let Some(kind) = builtin::Kind::from_url(request.url) {
        let protocol = request
            .protocols
            .and_then(|p| p.split(',').next())
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty());
        let (gateway_end, backend_end) = tokio::io::duplex(64 * 1024);
        let backend =
            WebSocketStream::from_raw_socket(backend_end, Role::Server, Some(config)).await;
        tokio::spawn(builtin::serve(kind, backend, request.route.clone()));
        let socket =
            WebSocketStream::from_raw_socket(gateway_end, Role::Client, Some(config)).await;
        return Ok(Connected {
            socket: BackendSocket::Builtin(socket),
            protocol,
        });
    }
    let mut http_request: Request = request
        .url
        .into_client_request()
        .map_err(|e| ConnectError::Unreachable(format!("invalid backend URL ({e})")))?;
    let headers = http_request.headers_mut();
    for (name, value) in &request.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(n, v);
        }
    }
    if let Some(p) = request.protocols {
        if let Ok(v) = HeaderValue::from_str(p) {
            headers.insert("sec-websocket-protocol", v);
        }
    }
    let secure = http_request.uri().scheme_str() == Some("wss");
    let host = http_request
        .uri()
        .host()
        .unwrap_or_default()
        .trim_matches(['[', ']'])
        .to_string();
    let port = http_request
        .uri()
        .port_u16()
        .unwrap_or(if secure { 443 } else { 80 });
    let attempt = async {
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| ConnectError::from_io(&e))?;
        let _ = tcp.set_nodelay(true);
        if secure {
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|_| ConnectError::Unreachable("invalid TLS server name".into()))?;
            let stream = tokio_rustls::TlsConnector::from(tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| ConnectError::Unreachable(format!("TLS: {e}")))?;
            let (socket, protocol) = upgrade(stream, &http_request, config).await?;
            Ok(Connected {
                socket: BackendSocket::Tls(Box::new(socket)),
                protocol,
            })
        } else {
            let (socket, protocol) = upgrade(tcp, &http_request, config).await?;
            Ok(Connected {
                socket: BackendSocket::Plain(socket),
                protocol,
            })
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Err(_) => Err(ConnectError::Timeout),
        Ok(result) => result,
    }
}

/// The client side of the upgrade (over TCP or TLS), done here rather than by tungstenite's client
/// handshake for two reasons: tungstenite leaves its 4 KiB handshake buffer as the socket's read
/// buffer for the connection's whole life (here the socket gets the configured small one), and it
/// fails the handshake when the backend picks none of the offered subprotocols, which is the
/// backend's right (the client then decides).
async fn upgrade<S: AsyncRead + AsyncWrite + Unpin>(
    mut tcp: S,
    request: &Request,
    config: WebSocketConfig,
) -> Result<(Upgraded<S>, Option<String>), ConnectError> {
    use tokio::io::AsyncWriteExt;
    let key = tokio_tungstenite::tungstenite::handshake::client::generate_key();
    let uri = request.uri();
    let target = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let host = match uri.port_u16() {
        Some(port) => format!("{}:{port}", uri.host().unwrap_or_default()),
        None => uri.host().unwrap_or_default().to_string(),
    };
    let mut head = format!(
        "GET {target} HTTP/1.1\r\nhost: {host}\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-key: {key}\r\nsec-websocket-version: 13\r\n"
    );
    for (name, value) in request.headers() {
        if matches!(
            name.as_str(),
            "host" | "upgrade" | "connection" | "sec-websocket-key" | "sec-websocket-version"
        ) {
            continue;
        }
        if let Ok(v) = value.to_str() {
            head.push_str(&format!("{name}: {v}\r\n"));
        }
    }
    head.push_str("\r\n");
    tcp.write_all(head.as_bytes())
        .await
        .map_err(|e| ConnectError::Unreachable(e.kind().to_string()))?;
    let (response, leftover) = crate::http::read_response_head(&mut tcp)
        .await
        .map_err(|_| ConnectError::Unreachable("the backend did not answer the upgrade".into()))?;
    if response.status != 101 {
        return Err(ConnectError::Rejected(response.status));
    }
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    if response.header("sec-websocket-accept").map(str::trim) != Some(accept.as_str()) {
        return Err(ConnectError::Unreachable(
            "the backend answered with a wrong Sec-WebSocket-Accept".into(),
        ));
    }
    let protocol = response
        .header("sec-websocket-protocol")
        .map(|p| p.trim().to_string());
    let socket = Upgraded {
        stream: tcp,
        leftover,
        config,
    };
    Ok((socket, protocol))
}
