//! Runtime configuration: every flag has a `PORTICO_*` environment fallback (see `runtime --help`
//! and `docs/runtime.md`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// Serve AsyncAPI-described WebSocket APIs: route, limit and relay each client connection to its
/// backend. Recompiles and swaps the routing plan when the specs change (with --watch).
#[derive(Parser, Debug, Clone)]
#[command(name = "runtime", version)]
pub struct Config {
    /// Spec files or folders to compile and serve (as `compile` reads them).
    #[arg(
        value_name = "SPECS",
        required_unless_present = "plan",
        conflicts_with = "plan"
    )]
    pub specs: Vec<PathBuf>,

    /// Serve a compiled plan (`compile --out DIR` writes DIR/plan.json) instead of specs.
    #[arg(long, env = "PORTICO_PLAN", value_name = "FILE")]
    pub plan: Option<PathBuf>,

    /// Recompile and swap the plan when the specs (or the plan file) change.
    #[arg(long, env = "PORTICO_WATCH")]
    pub watch: bool,

    /// A folder besides the spec folders that the specs' `$ref`s may read (as `compile
    /// --allow-root`; repeatable, or comma-separated in the environment).
    #[arg(
        long = "allow-root",
        env = "PORTICO_ALLOW_ROOTS",
        value_name = "DIR",
        value_delimiter = ','
    )]
    pub allow_roots: Vec<PathBuf>,

    /// Context for specs that name none (as `compile --context`).
    #[arg(long, env = "PORTICO_CONTEXT")]
    pub context: Option<String>,

    /// Address of the WebSocket listener.
    #[arg(long, env = "PORTICO_LISTEN", default_value = "0.0.0.0:9099")]
    pub listen: SocketAddr,

    /// Address of the `wss://` listener, served only when `--tls-cert` and `--tls-key` are given
    /// (8099 is WSO2's wss port).
    #[arg(long, env = "PORTICO_TLS_LISTEN", default_value = "0.0.0.0:8099")]
    pub tls_listen: SocketAddr,

    /// PEM certificate chain (leaf first) of the `wss://` listener; reloaded when the file changes.
    #[arg(
        long,
        env = "PORTICO_TLS_CERT",
        value_name = "PEM",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of the `wss://` listener; reloaded when the file changes.
    #[arg(
        long,
        env = "PORTICO_TLS_KEY",
        value_name = "PEM",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

    /// Address of the admin listener (/healthz, /readyz, /metrics, /plan). Keep it private.
    #[arg(long, env = "PORTICO_ADMIN_LISTEN", default_value = "127.0.0.1:9090")]
    pub admin_listen: SocketAddr,

    /// Host names the admin listener answers to, besides IP addresses and `localhost`
    /// (repeatable). Other names get 403, so a web page cannot read the admin listener through
    /// DNS rebinding.
    #[arg(
        long = "admin-host",
        env = "PORTICO_ADMIN_HOSTS",
        value_delimiter = ',',
        value_name = "NAME"
    )]
    pub admin_hosts: Vec<String>,

    /// Log format.
    #[arg(long, env = "PORTICO_LOG_FORMAT", value_enum, default_value = "pretty")]
    pub log_format: LogFormat,

    /// Largest message accepted from either side, in bytes (larger: close 1009).
    #[arg(long, env = "PORTICO_MAX_MESSAGE_BYTES", default_value_t = 1 << 20)]
    pub max_message_bytes: usize,

    /// Largest single frame accepted, in bytes.
    #[arg(long, env = "PORTICO_MAX_FRAME_BYTES", default_value_t = 1 << 20)]
    pub max_frame_bytes: usize,

    /// Most concurrent client connections in total (more: HTTP 503 at the handshake).
    #[arg(long, env = "PORTICO_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Most concurrent connections per API, unless the spec's x-gateway.limits says otherwise.
    #[arg(
        long,
        env = "PORTICO_MAX_CONNECTIONS_PER_API",
        default_value_t = 10_000
    )]
    pub max_connections_per_api: usize,

    /// Most connections still in their handshake at once (more: HTTP 503 right away). Bounds what
    /// slow or half-open clients can hold before a route and a limit are checked.
    #[arg(long, env = "PORTICO_MAX_PENDING_HANDSHAKES", default_value_t = 1024)]
    pub max_pending_handshakes: usize,

    /// Time a client has to send its handshake, in seconds.
    #[arg(long, env = "PORTICO_HANDSHAKE_TIMEOUT", default_value_t = 10.0)]
    pub handshake_timeout: f64,

    /// Time the backend has to accept a connection, in seconds (exceeded: HTTP 504).
    #[arg(long, env = "PORTICO_CONNECT_TIMEOUT", default_value_t = 10.0)]
    pub connect_timeout: f64,

    /// Close a connection after this many seconds without a data message either way (0: never).
    #[arg(long, env = "PORTICO_IDLE_TIMEOUT", default_value_t = 0.0)]
    pub idle_timeout: f64,

    /// Send a ping to idle clients this often, in seconds, and close those that stay silent for
    /// two intervals (0: no keepalive).
    #[arg(long, env = "PORTICO_KEEPALIVE", default_value_t = 30.0)]
    pub keepalive: f64,

    /// Longest a write to a client or a backend may block, in seconds (a peer that stops reading
    /// for longer is dropped, and the other side closed with 1011; 0: no limit).
    #[arg(long, env = "PORTICO_WRITE_TIMEOUT", default_value_t = 30.0)]
    pub write_timeout: f64,

    /// How long shutdown waits for connections to close, in seconds.
    #[arg(long, env = "PORTICO_DRAIN_TIMEOUT", default_value_t = 10.0)]
    pub drain_timeout: f64,

    /// Quiet period before a change of the watched files is compiled, in milliseconds.
    #[arg(long, env = "PORTICO_RELOAD_DEBOUNCE_MS", default_value_t = 300)]
    pub reload_debounce_ms: u64,

    /// Request headers forwarded to the backend besides Origin (repeatable; case-insensitive).
    #[arg(
        long = "forward-header",
        env = "PORTICO_FORWARD_HEADERS",
        value_delimiter = ',',
        default_values_t = ["user-agent".to_string(), "accept-language".to_string(), "x-request-id".to_string()]
    )]
    pub forward_headers: Vec<String>,

    /// Extra CA certificates (PEM) trusted for wss:// backends, besides the webpki roots.
    #[arg(long, env = "PORTICO_BACKEND_CA", value_name = "PEM")]
    pub backend_ca: Option<PathBuf>,

    /// Where clients reach the gateway, as the served docs show it: a `ws://` URL, a `wss://` URL
    /// or both (repeat the flag, or separate with commas), e.g. the public address of a proxy in
    /// front. Only these are shown. Default: the listeners this gateway really has (`ws://` and
    /// `--listen`, plus `wss://` and `--tls-listen` when TLS is on).
    #[arg(
        long = "public-url",
        visible_alias = "docs-base-url",
        env = "PORTICO_PUBLIC_URL",
        value_name = "URL",
        value_delimiter = ','
    )]
    pub public_urls: Vec<String>,

    /// Per-socket read buffer, in bytes. Small keeps idle connections cheap.
    #[arg(long, env = "PORTICO_READ_BUFFER_BYTES", default_value_t = 1024)]
    pub read_buffer_bytes: usize,

    /// Runtime configuration (YAML, or TOML by extension): credentials' verifiers and other
    /// deployment material. Every key can also be set as `PORTICO_<SECTION>__<KEY>`.
    #[arg(long, env = "PORTICO_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Failed credential checks (401) one client address may make per second; beyond them, its
    /// handshakes are refused with 429 for a second before any credential is checked (bounds
    /// guessing; 0: no limit).
    #[arg(
        long,
        env = "PORTICO_MAX_CREDENTIAL_FAILURES_PER_IP",
        default_value_t = 10
    )]
    pub max_credential_failures_per_ip: u32,

    /// Serve routes that require a credential even when no verifier can check it (logged at
    /// every start). Never in production.
    #[arg(long, env = "PORTICO_ALLOW_UNAUTHENTICATED")]
    pub allow_unauthenticated: bool,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

fn secs(s: f64) -> Option<Duration> {
    (s > 0.0 && s.is_finite()).then(|| Duration::from_secs_f64(s))
}

impl Config {
    /// The certificate and key files of the `wss://` listener, when it is enabled.
    pub fn tls_files(&self) -> Option<(&Path, &Path)> {
        Some((self.tls_cert.as_deref()?, self.tls_key.as_deref()?))
    }
    pub fn handshake_timeout(&self) -> Duration {
        secs(self.handshake_timeout).unwrap_or(Duration::from_secs(10))
    }
    pub fn connect_timeout(&self) -> Duration {
        secs(self.connect_timeout).unwrap_or(Duration::from_secs(10))
    }
    pub fn idle_timeout(&self) -> Option<Duration> {
        secs(self.idle_timeout)
    }
    pub fn keepalive(&self) -> Option<Duration> {
        secs(self.keepalive)
    }
    pub fn write_timeout(&self) -> Option<Duration> {
        secs(self.write_timeout)
    }
    pub fn drain_timeout(&self) -> Duration {
        secs(self.drain_timeout).unwrap_or(Duration::ZERO)
    }
}
