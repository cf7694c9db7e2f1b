//! Helpers shared by the end-to-end tests (`tests/e2e/*.rs`).
//!
//! The tests drive the real `runtime` binary as a child process (the one Cargo built for this
//! test target; see [`runtime_binary`]), talk to it with real WebSocket clients and put
//! real WebSocket backends behind it, all on 127.0.0.1 with ephemeral ports. Every await is
//! bounded ([`within`], [`STEP`]), every test has its own temporary spec folder and its own ports,
//! and child processes are killed when their handle drops (their log is printed if the test
//! failed).
//!
//! * [`Gateway`] — a running `runtime` (`Gateway::builder()...start()`), with admin helpers
//!   (`plan`, `metrics`, `wait_for_new_plan`, `wait_watching`) and spec editing.
//! * [`spec`] / [`SpecBuilder`] — small AsyncAPI 3.0 documents with an `x-gateway` object.
//! * [`Backend`] (echo, close, vanish, flood; records handshakes and messages), [`Silent`],
//!   [`closed_port`] — what the gateway relays to.
//! * [`connect`], [`recv_data`], [`expect_close`], [`echo_text`] — client helpers; [`http`],
//!   [`upgrade`] — raw HTTP; [`RawClient`] — frame by frame, for what libraries will not send.
//!
//! Run with `cargo test -p portico-runtime --test e2e` (the Python interop test needs
//! `scripts/setup-test-deps.sh` first).

// A toolkit: not every test uses every helper.
#![allow(dead_code)]

use std::fmt::Display;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use futures_util::{SinkExt, StreamExt};
pub use serde_json::Value;
pub use tokio_tungstenite::tungstenite;
pub use tokio_tungstenite::tungstenite::Message;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request as ClientRequest;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A WebSocket client connected to the gateway.
pub type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The default bound on a single await.
pub const STEP: Duration = Duration::from_secs(10);

/// Awaits `fut` for at most `limit`; panics naming `what` when it takes longer.
pub async fn within<F: Future>(limit: Duration, what: impl Display, fut: F) -> F::Output {
    match tokio::time::timeout(limit, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {limit:?}: {what}"),
    }
}

/// Polls `check` every 20 ms until it returns `Some`, for at most `limit`.
pub async fn eventually<T>(
    limit: Duration,
    what: impl Display,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("not within {limit:?}: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value of one series in a Prometheus text exposition, e.g.
/// `metric(text, "portico_handshakes_total{status=\"404\"}")`.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        line.strip_prefix(series)
            .filter(|rest| rest.starts_with(' '))
            .and_then(|rest| rest.trim().parse().ok())
    })
}

/// The workspace root (the parent of the `runtime` package that owns these tests).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives in the workspace")
        .to_path_buf()
}

/// The Python interpreter of the venv that `scripts/setup-test-deps.sh` creates.
pub fn python() -> PathBuf {
    let python = workspace_root().join("target/ci/venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup-test-deps.sh (it creates the venv with `websockets`)",
        python.display()
    );
    python
}

/// The `runtime` binary Cargo built for this test target (the way Cargo intends: it cannot be
/// stale, and no test runs `cargo build` itself).
pub fn runtime_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_runtime"))
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("an ephemeral port")
        .port()
}

/// A port nothing listens on (connections to it are refused).
pub fn closed_port() -> u16 {
    free_port()
}

// ---------------------------------------------------------------------------------------------
// Specs

struct ChannelSpec {
    address: String,
    mapping: Option<String>,
}

/// Builds a small AsyncAPI 3.0 document with an `x-gateway` object; every channel is open
/// (`x-auth-type: None`) and every `{parameter}` of an address is declared.
pub struct SpecBuilder {
    title: String,
    version: String,
    context: String,
    endpoint: String,
    description: String,
    default_version: bool,
    lifecycle: Option<String>,
    limits: Vec<(String, u64)>,
    channels: Vec<ChannelSpec>,
}

/// Starts a spec: `title`, `info.version`, `x-gateway.context`, `x-gateway.endpoints.production`.
pub fn spec(title: &str, version: &str, context: &str, endpoint: &str) -> SpecBuilder {
    SpecBuilder {
        title: title.into(),
        version: version.into(),
        context: context.into(),
        endpoint: endpoint.into(),
        description: format!("{title}, served in an end-to-end test."),
        default_version: false,
        lifecycle: None,
        limits: Vec::new(),
        channels: Vec::new(),
    }
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

impl SpecBuilder {
    /// A channel at `address` (no `x-uri-mapping`).
    pub fn channel(mut self, address: &str) -> Self {
        self.channels.push(ChannelSpec {
            address: address.into(),
            mapping: None,
        });
        self
    }

    /// A channel at `address` with an `x-uri-mapping`.
    pub fn mapped(mut self, address: &str, mapping: &str) -> Self {
        self.channels.push(ChannelSpec {
            address: address.into(),
            mapping: Some(mapping.into()),
        });
        self
    }

    pub fn default_version(mut self) -> Self {
        self.default_version = true;
        self
    }

    pub fn lifecycle(mut self, state: &str) -> Self {
        self.lifecycle = Some(state.into());
        self
    }

    /// An `x-gateway.limits` field, e.g. `("maxConnections", 1)`.
    pub fn limit(mut self, name: &str, value: u64) -> Self {
        self.limits.push((name.into(), value));
        self
    }

    pub fn description(mut self, text: &str) -> Self {
        self.description = text.into();
        self
    }

    pub fn yaml(&self) -> String {
        let mut out = String::new();
        out.push_str("asyncapi: 3.0.0\ninfo:\n");
        out.push_str(&format!("  title: {}\n", quote(&self.title)));
        out.push_str(&format!("  version: {}\n", quote(&self.version)));
        out.push_str(&format!("  description: {}\n", quote(&self.description)));
        out.push_str("x-gateway:\n");
        out.push_str(&format!("  context: {}\n", quote(&self.context)));
        if self.default_version {
            out.push_str("  defaultVersion: true\n");
        }
        if let Some(state) = &self.lifecycle {
            out.push_str(&format!("  lifecycle: {state}\n"));
        }
        out.push_str(&format!(
            "  endpoints:\n    production: {}\n",
            quote(&self.endpoint)
        ));
        if !self.limits.is_empty() {
            out.push_str("  limits:\n");
            for (name, value) in &self.limits {
                out.push_str(&format!("    {name}: {value}\n"));
            }
        }
        if self.channels.is_empty() {
            out.push_str("channels: {}\n");
        } else {
            out.push_str("channels:\n");
        }
        for (i, ch) in self.channels.iter().enumerate() {
            out.push_str(&format!("  channel{i}:\n"));
            out.push_str(&format!("    address: {}\n", quote(&ch.address)));
            out.push_str("    x-auth-type: None\n");
            if let Some(mapping) = &ch.mapping {
                out.push_str(&format!("    x-uri-mapping: {}\n", quote(mapping)));
            }
            let params: Vec<&str> = ch
                .address
                .split('/')
                .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
                .collect();
            if !params.is_empty() {
                out.push_str("    parameters:\n");
                for p in params {
                    out.push_str(&format!("      {p}: {{}}\n"));
                }
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// The gateway process

type Setup = Box<dyn FnOnce(&Path)>;

/// Starts a [`Gateway`].
pub struct GatewayBuilder {
    specs: Vec<(String, String)>,
    env: Vec<(String, Option<String>)>,
    fd_limit: Option<u64>,
    setup: Option<Setup>,
    args: Vec<String>,
    watch: bool,
    paths: Option<Vec<PathBuf>>,
}

impl GatewayBuilder {
    /// A spec file written into the gateway's spec folder before it starts.
    pub fn spec(mut self, name: &str, text: impl Into<String>) -> Self {
        self.specs.push((name.into(), text.into()));
        self
    }

    /// Extra command-line arguments.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|s| s.to_string()));
        self
    }

    /// Sets (`Some`) or removes (`None`) an environment variable of the runtime process.
    pub fn env(mut self, key: &str, value: Option<&str>) -> Self {
        self.env.push((key.to_string(), value.map(str::to_string)));
        self
    }

    /// Starts the runtime under `prlimit --nofile=N:N` (soft and hard open-file limit).
    pub fn fd_limit(mut self, n: u64) -> Self {
        self.fd_limit = Some(n);
        self
    }

    /// Whether to pass `--watch` (default: yes).
    pub fn watch(mut self, on: bool) -> Self {
        self.watch = on;
        self
    }

    /// Serve these paths (relative ones are taken in the spec folder) instead of the spec folder.
    pub fn paths(mut self, paths: &[&str]) -> Self {
        self.paths = Some(paths.iter().map(PathBuf::from).collect());
        self
    }

    /// Prepares the spec folder (symlinks and the like) after the specs are written.
    pub fn setup(mut self, prepare: impl FnOnce(&Path) + 'static) -> Self {
        self.setup = Some(Box::new(prepare));
        self
    }

    pub async fn start(mut self) -> Gateway {
        let binary = runtime_binary();
        let dir = tempfile::Builder::new()
            .prefix("portico-e2e-")
            .tempdir()
            .expect("a temporary folder");
        let specs = dir.path().join("specs");
        std::fs::create_dir(&specs).expect("the spec folder");
        for (name, text) in &self.specs {
            let path = specs.join(name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).expect("spec subfolder");
            }
            std::fs::write(&path, text).expect("writing a spec");
        }
        if let Some(prepare) = self.setup.take() {
            prepare(&specs);
        }
        let paths = match &self.paths {
            Some(paths) => paths.iter().map(|p| specs.join(p)).collect(),
            None => vec![specs.clone()],
        };
        // The log lives outside the watched folder, so writing it triggers no reload.
        let log = dir.path().join("runtime.log");
        let mut attempt = 0;
        loop {
            attempt += 1;
            let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            // prlimit execs the runtime, so the child's pid is the runtime's.
            let mut command = match self.fd_limit {
                Some(n) => {
                    let mut c = Command::new("prlimit");
                    c.arg(format!("--nofile={n}:{n}")).arg(&binary);
                    c
                }
                None => Command::new(&binary),
            };
            command
                .arg("--listen")
                .arg(addr.to_string())
                .arg("--admin-listen")
                .arg(admin.to_string());
            if self.watch {
                command.arg("--watch");
            }
            command.args(&paths).args(&self.args);
            for (key, _) in std::env::vars() {
                if key.starts_with("PORTICO_") {
                    command.env_remove(key);
                }
            }
            command.env("NO_COLOR", "1");
            for (key, value) in &self.env {
                match value {
                    Some(v) => command.env(key, v),
                    None => command.env_remove(key),
                };
            }
            let file = std::fs::File::create(&log).expect("the log file");
            command
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(file));
            let child = command
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
            let mut gateway = Gateway {
                child: Some(child),
                addr,
                admin,
                log: log.clone(),
                specs: specs.clone(),
                tempdir: None,
            };
            match gateway.wait_ready().await {
                Ok(()) => {
                    gateway.tempdir = Some(dir);
                    return gateway;
                }
                // Somebody took a port between our probe and the bind: try others.
                Err(text) if attempt < 3 && text.contains("cannot listen") => continue,
                Err(text) => panic!("the runtime did not become ready: {text}"),
            }
        }
    }
}

/// A running `runtime` process. Killed when dropped; its log is printed if the test panicked.
pub struct Gateway {
    child: Option<Child>,
    /// The WebSocket listener.
    pub addr: SocketAddr,
    /// The admin listener.
    pub admin: SocketAddr,
    log: PathBuf,
    specs: PathBuf,
    tempdir: Option<tempfile::TempDir>,
}

impl Gateway {
    pub fn builder() -> GatewayBuilder {
        GatewayBuilder {
            specs: Vec::new(),
            env: Vec::new(),
            fd_limit: None,
            setup: None,
            args: Vec::new(),
            watch: true,
            paths: None,
        }
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(format!("exited with {status}\n{}", self.log()));
            }
            if let Ok(Ok(r)) = tokio::time::timeout(
                Duration::from_secs(2),
                try_http(self.admin, &get_request("/readyz")),
            )
            .await
            {
                if r.status == 200 {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(format!("/readyz not 200 within 30 s\n{}", self.log()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `ws://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// The folder the gateway serves (and watches).
    pub fn specs_dir(&self) -> &Path {
        &self.specs
    }

    /// What the runtime wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Writes a spec file in place.
    pub fn write_spec(&self, name: &str, text: &str) {
        std::fs::write(self.specs.join(name), text).expect("writing a spec");
    }

    /// Saves a spec as editors do: write a hidden temporary file, then rename it over the spec.
    pub fn save_spec_like_editor(&self, name: &str, text: &str) {
        let tmp = self.specs.join(format!(".{name}.swp"));
        std::fs::write(&tmp, text).expect("writing the temporary file");
        std::fs::rename(&tmp, self.specs.join(name)).expect("renaming over the spec");
    }

    pub fn remove_spec(&self, name: &str) {
        std::fs::remove_file(self.specs.join(name)).expect("removing a spec");
    }

    /// GET on the admin listener.
    pub async fn admin_get(&self, path: &str) -> HttpResponse {
        http(self.admin, &get_request(path)).await
    }

    /// `/plan`, parsed.
    pub async fn plan(&self) -> Value {
        let r = self.admin_get("/plan").await;
        assert_eq!(r.status, 200, "/plan: {}", r.body);
        serde_json::from_str(&r.body)
            .unwrap_or_else(|e| panic!("/plan is not JSON ({e}): {}", r.body))
    }

    pub async fn plan_hash(&self) -> String {
        self.plan().await["hash"]
            .as_str()
            .expect("/plan has a hash")
            .to_string()
    }

    /// `/metrics`.
    pub async fn metrics(&self) -> String {
        let r = self.admin_get("/metrics").await;
        assert_eq!(r.status, 200, "/metrics: {}", r.body);
        r.body
    }

    /// Everything the admin listener shows of the served plan, as (path, body): `/plan`,
    /// `/metrics`, `/docs/` and every page it links to (and those pages link to), and every spec
    /// `/specs/` serves. For tests that no secret is shown anywhere.
    pub async fn admin_exposure(&self) -> Vec<(String, String)> {
        let mut shown = vec![
            ("/plan".to_string(), self.admin_get("/plan").await.body),
            ("/metrics".to_string(), self.metrics().await),
        ];
        let mut pages = vec![String::new()];
        let mut seen = std::collections::HashSet::new();
        while let Some(page) = pages.pop() {
            if !seen.insert(page.clone()) {
                continue;
            }
            let path = format!("/docs/{page}");
            let r = self.admin_get(&path).await;
            assert_eq!(r.status, 200, "{path}: {}", r.body);
            for link in r.body.split("href=\"").skip(1) {
                let target = link.split(['"', '#']).next().unwrap_or("");
                let local = !target.is_empty() && !target.contains(['/', ':']);
                if local && (target.ends_with(".html") || target.ends_with(".md")) {
                    pages.push(target.to_string());
                }
            }
            shown.push((path, r.body));
        }
        assert!(seen.len() > 1, "/docs/ links to no page");
        // A spec that is not served answers with the list of those that are.
        let listing = self.admin_get("/specs/none.yaml").await.body;
        for spec in listing
            .split([' ', ',', '\n'])
            .filter(|w| w.starts_with("/specs/") && w.ends_with(".yaml"))
        {
            let r = self.admin_get(spec).await;
            assert_eq!(r.status, 200, "{spec}: {}", r.body);
            shown.push((spec.to_string(), r.body));
        }
        shown
    }

    /// Polls `/plan` until `check` accepts it (at most 20 s); returns it.
    pub async fn wait_for_plan(&self, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let plan = self.plan().await;
            if check(&plan) {
                return plan;
            }
            if Instant::now() >= deadline {
                let metrics = self.metrics().await;
                let reloads: Vec<&str> = metrics
                    .lines()
                    .filter(|l| l.starts_with("portico_reloads"))
                    .collect();
                panic!(
                    "/plan never showed {what}; reload metrics {reloads:?}; last plan:\n{plan:#}"
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the file watcher reacts to a change in the spec folder (a hidden file, which
    /// the compiler skips, so the plan stays the same). `/readyz` says the plan is loaded, not that
    /// the watcher is armed: tests that change specs call this first.
    pub async fn wait_watching(&self) {
        let unchanged =
            |m: &str| metric(m, "portico_reloads_total{result=\"unchanged\"}").unwrap_or(0.0);
        let before = unchanged(&self.metrics().await);
        let deadline = Instant::now() + Duration::from_secs(15);
        for attempt in 0.. {
            std::fs::write(self.specs.join(".e2e-probe"), format!("{attempt}"))
                .expect("writing the probe");
            let retry = Instant::now() + Duration::from_secs(1);
            while Instant::now() < retry {
                if unchanged(&self.metrics().await) > before {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(
                Instant::now() < deadline,
                "the watcher never reacted to a change in {}",
                self.specs.display()
            );
        }
    }

    /// Waits until the plan hash differs from `old`; returns the new plan.
    pub async fn wait_for_new_plan(&self, old: &str) -> Value {
        self.wait_for_plan("a new plan", |p| {
            p["hash"].as_str().is_some_and(|h| h != old)
        })
        .await
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -TERM failed: {status}");
    }

    /// Waits for the process to exit, at most `limit`.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The process's resident set size, from `/proc/<pid>/status` (`VmRSS`).
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("/proc/<pid>/status");
        let line = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .expect("a VmRSS line");
        let kib: u64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .expect("VmRSS in kB");
        kib * 1024
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- runtime log ({}) ----\n{}---- end of runtime log ----",
                self.log.display(),
                self.log()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP

#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    /// A header's first value, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A GET request head for `target`.
pub fn get_request(target: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
}

/// A WebSocket upgrade request head for `target`, with extra headers.
pub fn upgrade_request(target: &str, extra: &[(&str, &str)]) -> String {
    let mut req = format!(
        "GET {target} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\
         sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    );
    for (k, v) in extra {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req
}

async fn try_http(addr: SocketAddr, request: &str) -> std::io::Result<HttpResponse> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(request.as_bytes()).await?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "connection closed before a full response head: {:?}",
                    String::from_utf8_lossy(&buf)
                ),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("bad status line {status_line:?}"),
            )
        })?;
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = buf[head_end..].to_vec();
    if status != 101 {
        let length = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse::<usize>().ok());
        loop {
            if length.is_some_and(|n| body.len() >= n) {
                break;
            }
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else {
        body.clear();
    }
    Ok(HttpResponse {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Sends a raw request head and reads the response (the head only, for a 101).
pub async fn http(addr: SocketAddr, request: &str) -> HttpResponse {
    let first_line = request.lines().next().unwrap_or_default().to_string();
    match within(STEP, format!("HTTP {first_line}"), try_http(addr, request)).await {
        Ok(r) => r,
        Err(e) => panic!("HTTP {first_line} to {addr}: {e}"),
    }
}

/// Sends a WebSocket upgrade request for `target` over a raw socket; returns the response head.
pub async fn upgrade(addr: SocketAddr, target: &str, extra: &[(&str, &str)]) -> HttpResponse {
    http(addr, &upgrade_request(target, extra)).await
}

// ---------------------------------------------------------------------------------------------
// Clients

/// A client handshake request for `url` with extra headers.
pub fn client_request(url: &str, headers: &[(&str, &str)]) -> ClientRequest {
    let mut request = url.into_client_request().expect("a valid URL");
    for (name, value) in headers {
        request.headers_mut().append(
            tungstenite::http::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_str(value).expect("header value"),
        );
    }
    request
}

/// Connects with a full request; errors are returned (an HTTP refusal is `Error::Http`).
pub async fn try_connect_request(
    request: ClientRequest,
) -> Result<(Client, tungstenite::handshake::client::Response), tungstenite::Error> {
    let uri = request.uri().to_string();
    within(
        STEP,
        format!("WebSocket handshake with {uri}"),
        tokio_tungstenite::connect_async(request),
    )
    .await
}

/// Connects to `url` or panics.
pub async fn connect(url: &str) -> Client {
    match try_connect_request(client_request(url, &[])).await {
        Ok((c, _)) => c,
        Err(e) => panic!("connecting to {url}: {e}"),
    }
}

/// The HTTP status a refused handshake got (panics if the handshake succeeded).
pub async fn refused_status(url: &str) -> u16 {
    match try_connect_request(client_request(url, &[])).await {
        Ok(_) => panic!("{url}: the handshake succeeded, expected a refusal"),
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("{url}: expected an HTTP refusal, got {e}"),
    }
}

/// The next message of any kind (None when the stream ended), bounded by [`STEP`].
pub async fn next_message(client: &mut Client) -> Option<Result<Message, tungstenite::Error>> {
    within(STEP, "the next message", client.next()).await
}

/// The next data (text or binary) message, skipping pings and pongs; panics on anything else.
pub async fn recv_data(client: &mut Client) -> Message {
    loop {
        match next_message(client).await {
            Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => return m,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a data message, got {other:?}"),
        }
    }
}

/// Reads until the peer's Close arrives, skipping data; returns (code, reason). Keeps reading after
/// it so the close handshake completes. Panics if the stream ends without a Close.
pub async fn expect_close(client: &mut Client) -> (u16, String) {
    let frame = loop {
        match next_message(client).await {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            other => panic!("expected a Close, got {other:?}"),
        }
    };
    // Let the protocol layer send its reply; the stream then ends.
    let _ = within(STEP, "the end of the stream after a Close", async {
        while let Some(Ok(_)) = client.next().await {}
    })
    .await;
    match frame {
        Some(f) => (u16::from(f.code), f.reason.to_string()),
        None => (1005, String::new()),
    }
}

/// A close frame.
pub fn close_frame(code: u16, reason: &str) -> CloseFrame {
    CloseFrame {
        code: CloseCode::from(code),
        reason: reason.to_string().into(),
    }
}

/// Sends `text`, expects it back.
pub async fn echo_text(client: &mut Client, text: &str) {
    within(STEP, "sending", client.send(Message::text(text)))
        .await
        .expect("send");
    match recv_data(client).await {
        Message::Text(t) => assert_eq!(t.as_str(), text),
        other => panic!("expected the text {text:?} back, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Backends

/// What a backend did at the handshake.
#[derive(Clone, Debug)]
pub struct Handshake {
    /// Path and query, exactly as requested.
    pub uri: String,
    /// Headers, names lowercase, in order.
    pub headers: Vec<(String, String)>,
    /// The subprotocols the gateway offered.
    pub protocols: Vec<String>,
}

impl Handshake {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What a backend does with a connection.
#[derive(Clone, Debug)]
pub enum Mode {
    /// Echoes text and binary messages. A text message `ping:<payload>` makes it send a Ping with
    /// that payload instead of an echo.
    Echo,
    /// Closes with this code and reason after the first data message.
    CloseAfterFirst(u16, String),
    /// Drops its TCP connection (no Close) after the first data message.
    DropAfterFirst,
    /// Sends binary messages of `message_bytes` (the first 8 bytes a big-endian sequence number)
    /// as fast as it can, until `limit_bytes` are sent.
    Flood {
        message_bytes: usize,
        limit_bytes: u64,
    },
    /// Completes the handshake, then never reads nor writes (a backend that hangs mid-stream).
    Stall,
    /// Sends one binary message of this many bytes (what the gateway takes of it within a second),
    /// then aborts its TCP connection (a reset: no Close, and no FIN queued behind unsent bytes).
    SendThenVanish(usize),
}

#[derive(Default)]
struct BackendState {
    handshakes: Mutex<Vec<Handshake>>,
    /// Every message received, control frames included, in order (all connections).
    received: Mutex<Vec<Message>>,
    /// Bytes of data sent and accepted by the socket (flood).
    pushed: AtomicU64,
}

/// Makes dropping `tcp` reset the connection, as a crashed peer with bytes unsent or unread does.
/// A graceful close would queue its FIN behind the unsent bytes, which a blocked receiver never
/// reaches.
pub fn abort(tcp: &TcpStream) {
    tcp.set_zero_linger().expect("SO_LINGER");
}

/// An in-process WebSocket backend on 127.0.0.1.
pub struct Backend {
    pub addr: SocketAddr,
    state: Arc<BackendState>,
    task: JoinHandle<()>,
}

impl Backend {
    pub async fn start(mode: Mode) -> Backend {
        Backend::start_choosing(mode, None).await
    }

    /// A backend that picks `protocol` when the gateway offers it.
    pub async fn start_choosing(mode: Mode, protocol: Option<&str>) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding a backend");
        let addr = listener.local_addr().expect("backend address");
        let state = Arc::new(BackendState::default());
        let protocol = protocol.map(str::to_string);
        let st = state.clone();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let st = st.clone();
                let mode = mode.clone();
                let protocol = protocol.clone();
                connections.spawn(async move {
                    let _ = stream.set_nodelay(true);
                    serve_backend(stream, st, mode, protocol).await;
                });
            }
        });
        Backend { addr, state, task }
    }

    /// `ws://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("ws://{}", self.addr)
    }

    pub fn handshakes(&self) -> Vec<Handshake> {
        self.state.handshakes.lock().unwrap().clone()
    }

    /// Waits for the `n`th handshake (1-based).
    pub async fn handshake(&self, n: usize) -> Handshake {
        eventually(STEP, format!("handshake #{n} at the backend"), || {
            self.state.handshakes.lock().unwrap().get(n - 1).cloned()
        })
        .await
    }

    pub fn received(&self) -> Vec<Message> {
        self.state.received.lock().unwrap().clone()
    }

    /// Waits until a received message satisfies `check`; returns it.
    pub async fn wait_received(&self, what: &str, check: impl Fn(&Message) -> bool) -> Message {
        eventually(STEP, format!("the backend receiving {what}"), || {
            self.state
                .received
                .lock()
                .unwrap()
                .iter()
                .find(|m| check(m))
                .cloned()
        })
        .await
    }

    /// Bytes of data the backend has sent (flood mode).
    pub fn pushed(&self) -> u64 {
        self.state.pushed.load(Ordering::Relaxed)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// The handshake callback's error type is tungstenite's (a whole HTTP response).
#[allow(clippy::result_large_err)]
async fn serve_backend(
    stream: TcpStream,
    state: Arc<BackendState>,
    mode: Mode,
    protocol: Option<String>,
) {
    let st = state.clone();
    let callback = move |request: &Request, mut response: Response| {
        let headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let protocols: Vec<String> = request
            .headers()
            .get_all("sec-websocket-protocol")
            .iter()
            .flat_map(|v| v.to_str().unwrap_or_default().split(','))
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect();
        if let Some(p) = &protocol {
            if protocols.contains(p) {
                response.headers_mut().insert(
                    "sec-websocket-protocol",
                    HeaderValue::from_str(p).expect("protocol"),
                );
            }
        }
        let uri = request
            .uri()
            .path_and_query()
            .map(|pq| pq.as_str().to_string())
            .unwrap_or_default();
        st.handshakes.lock().unwrap().push(Handshake {
            uri,
            headers,
            protocols,
        });
        Ok(response)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    if let Mode::Stall = mode {
        // Hold the socket open, unread, until the test ends.
        std::future::pending::<()>().await;
    }
    if let Mode::SendThenVanish(bytes) = mode {
        // The gateway forwards a large frame as it arrives, so toward a client that does not
        // read, the send blocks once the socket buffers are full.
        let sending = ws.send(Message::binary(vec![0x5a; bytes]));
        let _ = tokio::time::timeout(Duration::from_secs(1), sending).await;
        abort(ws.get_ref());
        drop(ws);
        return;
    }
    if let Mode::Flood {
        message_bytes,
        limit_bytes,
    } = mode
    {
        let mut seq: u64 = 0;
        while state.pushed.load(Ordering::Relaxed) < limit_bytes {
            let mut payload = vec![0x5a; message_bytes.max(8)];
            payload[..8].copy_from_slice(&seq.to_be_bytes());
            if ws.send(Message::binary(payload)).await.is_err() {
                return;
            }
            seq += 1;
            state
                .pushed
                .fetch_add(message_bytes.max(8) as u64, Ordering::Relaxed);
        }
        while let Some(Ok(_)) = ws.next().await {}
        return;
    }
    while let Some(Ok(message)) = ws.next().await {
        state.received.lock().unwrap().push(message.clone());
        let is_data = matches!(message, Message::Text(_) | Message::Binary(_));
        match &mode {
            Mode::Echo if is_data => {
                let reply = match &message {
                    Message::Text(t) if t.as_str().starts_with("ping:") => {
                        Message::Ping(t.as_bytes()["ping:".len()..].to_vec().into())
                    }
                    _ => message,
                };
                if ws.send(reply).await.is_err() {
                    return;
                }
            }
            Mode::CloseAfterFirst(code, reason) if is_data => {
                let _ = ws.close(Some(close_frame(*code, reason))).await;
                // Read until the gateway answers the close.
                while let Some(Ok(m)) = ws.next().await {
                    state.received.lock().unwrap().push(m);
                }
                return;
            }
            Mode::DropAfterFirst if is_data => {
                // Vanish: the TCP connection closes without a WebSocket Close.
                drop(ws);
                return;
            }
            _ => {}
        }
    }
}

/// A TCP listener that accepts connections and never answers (a backend that hangs).
pub struct Silent {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Silent {
    pub async fn start() -> Silent {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding a silent listener");
        let addr = listener.local_addr().expect("address");
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        Silent { addr, task }
    }

    pub fn endpoint(&self) -> String {
        format!("ws://{}", self.addr)
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---------------------------------------------------------------------------------------------
// A raw client, for frames a well-behaved library would not send

/// A WebSocket connection driven frame by frame over a raw socket.
pub struct RawClient {
    stream: TcpStream,
    buffer: Vec<u8>,
}

/// WebSocket opcodes.
pub mod opcode {
    pub const CONTINUATION: u8 = 0x0;
    pub const TEXT: u8 = 0x1;
    pub const BINARY: u8 = 0x2;
    pub const CLOSE: u8 = 0x8;
    pub const PING: u8 = 0x9;
    pub const PONG: u8 = 0xA;
}

/// One WebSocket frame, masked with a fixed key if `masked`.
pub fn encode_frame(fin: bool, opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut frame = vec![if fin { 0x80 } else { 0 } | opcode];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => frame.push(mask_bit | n as u8),
        n if n <= u16::MAX as usize => {
            frame.push(mask_bit | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(mask_bit | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        let key = [0x12, 0x34, 0x56, 0x78];
        frame.extend_from_slice(&key);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        frame.extend_from_slice(payload);
    }
    frame
}

impl RawClient {
    /// Upgrades `target` on a raw socket; panics unless the answer is 101.
    pub async fn connect(addr: SocketAddr, target: &str) -> RawClient {
        RawClient::connect_pipelined(addr, target, &[]).await
    }

    /// Like [`RawClient::connect`], sending `first` (frames) in the same write as the upgrade
    /// request, before any answer.
    pub async fn connect_pipelined(addr: SocketAddr, target: &str, first: &[u8]) -> RawClient {
        let mut stream = within(STEP, "connecting", TcpStream::connect(addr))
            .await
            .expect("connect");
        let mut request = upgrade_request(target, &[]).into_bytes();
        request.extend_from_slice(first);
        within(STEP, "sending the upgrade", stream.write_all(&request))
            .await
            .expect("write");
        let mut buffer = Vec::new();
        let mut chunk = [0u8; 4096];
        let end = loop {
            if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = within(STEP, "reading the 101", stream.read(&mut chunk))
                .await
                .expect("read");
            assert!(n > 0, "closed before answering the upgrade");
            buffer.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        buffer.drain(..end);
        RawClient { stream, buffer }
    }

    /// Sends bytes as they are: part of a frame, or several.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        within(STEP, "sending bytes", self.stream.write_all(bytes))
            .await
            .expect("write");
    }

    /// Sends one frame; `masked` should be true for a client (false breaks the protocol).
    pub async fn send_frame(&mut self, fin: bool, opcode: u8, payload: &[u8], masked: bool) {
        let frame = encode_frame(fin, opcode, payload, masked);
        within(STEP, "sending a frame", self.stream.write_all(&frame))
            .await
            .expect("write");
    }

    async fn fill(&mut self, n: usize) -> bool {
        let mut chunk = [0u8; 4096];
        while self.buffer.len() < n {
            let read = within(STEP, "reading a frame", self.stream.read(&mut chunk))
                .await
                .unwrap_or(0);
            if read == 0 {
                return false;
            }
            self.buffer.extend_from_slice(&chunk[..read]);
        }
        true
    }

    /// The next frame from the gateway as (fin, opcode, payload); None when the socket closed.
    pub async fn read_frame(&mut self) -> Option<(bool, u8, Vec<u8>)> {
        if !self.fill(2).await {
            return None;
        }
        let fin = self.buffer[0] & 0x80 != 0;
        let op = self.buffer[0] & 0x0f;
        assert_eq!(
            self.buffer[1] & 0x80,
            0,
            "a server frame must not be masked"
        );
        let (len, header) = match self.buffer[1] & 0x7f {
            126 => {
                if !self.fill(4).await {
                    return None;
                }
                (
                    u16::from_be_bytes([self.buffer[2], self.buffer[3]]) as usize,
                    4,
                )
            }
            127 => {
                if !self.fill(10).await {
                    return None;
                }
                let mut b = [0u8; 8];
                b.copy_from_slice(&self.buffer[2..10]);
                (u64::from_be_bytes(b) as usize, 10)
            }
            n => (n as usize, 2),
        };
        if !self.fill(header + len).await {
            return None;
        }
        let payload = self.buffer[header..header + len].to_vec();
        self.buffer.drain(..header + len);
        Some((fin, op, payload))
    }

    /// Reads frames until a Close; returns its code (1005 if it had none).
    pub async fn expect_close(&mut self) -> u16 {
        loop {
            match self.read_frame().await {
                Some((_, opcode::CLOSE, payload)) => {
                    return if payload.len() >= 2 {
                        u16::from_be_bytes([payload[0], payload[1]])
                    } else {
                        1005
                    };
                }
                Some(_) => continue,
                None => panic!("the connection ended without a Close"),
            }
        }
    }
}
