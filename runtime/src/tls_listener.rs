//! The `wss://` listener's TLS: the server certificate, reloaded when its files change, and the
//! client stream type that lets one handshake and relay serve plain and TLS clients alike.
//!
//! The certificate chain and key are PEM files (`--tls-cert`, `--tls-key`). They are polled
//! once a second; when either file's modification time or size changes, both are read again.
//! A pair that does not load (unreadable, not PEM, key not matching the chain) is refused with a
//! warning and the previous certificate stays in use. Open connections keep the TLS session they
//! negotiated; only new handshakes see the new certificate.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

/// How often the certificate files are checked for changes.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// A client connection: plain TCP (the `ws://` listener) or TLS over TCP (the `wss://` one).
pub enum ClientStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl ClientStream {
    /// Whether the client reached the gateway over TLS (the `proto` forwarded to backends).
    pub fn is_tls(&self) -> bool {
        matches!(self, ClientStream::Tls(_))
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_flush(cx),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The server certificate in use, swapped whole when the files change.
pub struct ServerCertificate {
    cert_path: PathBuf,
    key_path: PathBuf,
    config: ArcSwap<ServerConfig>,
}

impl ServerCertificate {
    /// Loads the pair once; an error here stops the runtime from starting.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Arc<ServerCertificate>, String> {
        let config = server_config(cert_path, key_path)?;
        Ok(Arc::new(ServerCertificate {
            cert_path: cert_path.to_path_buf(),
            key_path: key_path.to_path_buf(),
            config: ArcSwap::from_pointee(config),
        }))
    }

    /// An acceptor for one new connection, with the certificate current now.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config.load_full())
    }

    /// Re-reads the pair; on failure the current certificate stays and the reason is returned.
    pub fn reload(&self) -> Result<(), String> {
        let config = server_config(&self.cert_path, &self.key_path)?;
        self.config.store(Arc::new(config));
        Ok(())
    }

    /// Polls the files' modification time and size every second, reloading on a change, for as
    /// long as the returned task runs.
    pub fn watch(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut seen = self.stamps();
            let mut ticks = tokio::time::interval(POLL_INTERVAL);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let now = self.stamps();
                if now == seen {
                    continue;
                }
                seen = now;
                match self.reload() {
                    Ok(()) => info!(cert = %self.cert_path.display(), "TLS certificate reloaded"),
                    Err(why) => {
                        warn!("TLS certificate not reloaded, the previous one stays in use: {why}")
                    }
                }
            }
        })
    }

    fn stamps(&self) -> [Option<(SystemTime, u64)>; 2] {
        [stamp(&self.cert_path), stamp(&self.key_path)]
    }
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// A rustls server configuration from a PEM chain (leaf first) and a PEM private key.
fn server_config(cert_path: &Path, key_path: &Path) -> Result<ServerConfig, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| format!("--tls-cert {}: {e}", cert_path.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "--tls-cert {}: no CERTIFICATE in the file",
            cert_path.display()
        ));
    }
    // The key's bytes are never part of a message: only its path.
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|e| format!("--tls-key {}: {e}", key_path.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| {
            format!(
                "--tls-cert {} / --tls-key {}: {e}",
                cert_path.display(),
                key_path.display()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let cert = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&c, cert.cert.pem()).unwrap();
        std::fs::write(&k, cert.signing_key.serialize_pem()).unwrap();
        (c, k)
    }

    #[test]
    fn a_pair_that_does_not_load_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = write_pair(dir.path(), "localhost");
        let cert = ServerCertificate::load(&c, &k).expect("a good pair loads");
        let before = cert.config.load_full();

        std::fs::write(&c, "not a certificate").unwrap();
        let why = cert.reload().expect_err("garbage accepted");
        assert!(why.contains("--tls-cert"), "{why}");
        assert!(
            Arc::ptr_eq(&before, &cert.config.load_full()),
            "the old one stays"
        );

        // A key of another certificate does not match the chain.
        let other = tempfile::tempdir().unwrap();
        let (c2, _) = write_pair(other.path(), "other");
        std::fs::copy(&c2, &c).unwrap();
        let why = cert.reload().expect_err("mismatched key accepted");
        assert!(
            !why.contains("PRIVATE KEY-----"),
            "no key material in {why}"
        );
        assert!(Arc::ptr_eq(&before, &cert.config.load_full()));

        assert!(ServerCertificate::load(&dir.path().join("missing.pem"), &k).is_err());
    }

    #[test]
    fn a_good_pair_replaces_the_current_one() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = write_pair(dir.path(), "localhost");
        let cert = ServerCertificate::load(&c, &k).unwrap();
        let before = cert.config.load_full();
        write_pair(dir.path(), "localhost");
        cert.reload().unwrap();
        assert!(!Arc::ptr_eq(&before, &cert.config.load_full()));
    }
}
