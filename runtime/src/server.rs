//! The WebSocket listener: accept, read the handshake, decide, connect the backend, upgrade, relay.
//!
//! Every refusal is an HTTP status with a short plain-text reason, decided in this order:
//! 400 (not HTTP), 405 (not GET), 404 (no API or topic; also CREATED APIs), 410 (RETIRED),
//! 503 (BLOCKED, not ready, or over a connection limit), 426 (not a WebSocket upgrade),
//! 502/504 (backend unreachable / too slow).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use portico_compiler::plan::Lifecycle;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;
use tracing::{info, warn};

use crate::backend::{self, BackendRequest, BackendSocket};
use crate::connections::{LimitError, Registration};
use crate::http::{read_head, write_text, HeadError, RequestHead};
use crate::metrics::{CloseLabels, ConnectionMetrics, StatusLabels};
use crate::relay::{relay, RelayOptions, RelayReport};
use crate::routes::{backend_url, Lookup};
use crate::Gateway;

/// Accepts connections until `stop` resolves.
pub async fn serve(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let gateway = gateway.clone();
                    tokio::spawn(handle(gateway, stream, peer));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

async fn refuse(
    gateway: &Gateway,
    stream: &mut TcpStream,
    status: u16,
    headers: &[(&str, String)],
    text: &str,
) {
    gateway
        .metrics
        .handshakes
        .get_or_create(&StatusLabels { status })
        .inc();
    let _ = write_text(stream, status, headers, text).await;
}

fn is_upgrade(head: &RequestHead) -> bool {
    head.header_has_token("connection", "upgrade")
        && head.header_has_token("upgrade", "websocket")
        && head.header("sec-websocket-version").map(str::trim) == Some("13")
        && head
            .header("sec-websocket-key")
            .is_some_and(|k| k.trim().len() == 24)
}

/// Headers sent to the backend: Origin, the configured allowlist, and the forwarding headers.
fn backend_headers(
    gateway: &Gateway,
    head: &RequestHead,
    peer: SocketAddr,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, value) in &head.headers {
        let lower = name.to_ascii_lowercase();
        if lower == "origin"
            || gateway
                .config
                .forward_headers
                .iter()
                .any(|h| h.eq_ignore_ascii_case(&lower))
        {
            out.push((lower, value.clone()));
        }
    }
    let client_ip = peer.ip().to_string();
    let xff = match head.header("x-forwarded-for") {
        Some(prior) => format!("{prior}, {client_ip}"),
        None => client_ip.clone(),
    };
    out.push(("x-forwarded-for".into(), xff));
    out.push(("x-forwarded-proto".into(), "http".into()));
    let host = head.header("host").unwrap_or_default();
    let for_value = if peer.is_ipv6() {
        format!("\"[{client_ip}]\"")
    } else {
        client_ip
    };
    let mut forwarded = format!("for={for_value};proto=http");
    if !host.is_empty()
        && host.chars().all(|c| c.is_ascii_graphic())
        && !host.contains(['"', ';', ','])
    {
        forwarded.push_str(&format!(";host=\"{host}\""));
    }
    out.push(("forwarded".into(), forwarded));
    out
}

/// A connection's first task: the handshake. Once upgraded, the relay runs in a task of its own,
/// so that what stays allocated for the connection's life is the relay's state and nothing else
/// (an async fn's future is as large as its largest state; measured with massif, this keeps an
/// idle proxied connection near 15 KiB instead of 29 KiB).
async fn handle(gateway: Arc<Gateway>, stream: TcpStream, peer: SocketAddr) {
    if let Some(session) = Box::pin(handshake(&gateway, stream, peer)).await {
        session.start(gateway);
    }
}

/// Reads and answers the handshake; `None` when the connection was refused (already answered).
async fn handshake(gateway: &Gateway, mut stream: TcpStream, peer: SocketAddr) -> Option<Session> {
    let _ = stream.set_nodelay(true);
    // The handshake and the backend connection are boxed: an async fn's future is as large as its
    // largest state, and theirs (buffers, TLS state) would otherwise stay inside every connection's
    // task for its whole life (measured with massif: 15 KiB per connection).
    let head = match tokio::time::timeout(
        gateway.config.handshake_timeout(),
        Box::pin(read_head(&mut stream)),
    )
    .await
    {
        Err(_) => {
            refuse(gateway, &mut stream, 408, &[], "handshake timeout").await;
            return None;
        }
        Ok(Err(HeadError::Io)) => return None,
        Ok(Err(HeadError::Malformed(why))) => {
            refuse(gateway, &mut stream, 400, &[], why).await;
            return None;
        }
        Ok(Ok(pair)) => pair,
    };
    let (mut head, leftover) = head;
    if head.method != "GET" {
        refuse(
            gateway,
            &mut stream,
            405,
            &[("allow", "GET".into())],
            "only GET can open a WebSocket",
        )
        .await;
        return None;
    }
    if *gateway.shutting_down.borrow() {
        refuse(
            gateway,
            &mut stream,
            503,
            &[],
            "the gateway is shutting down",
        )
        .await;
        return None;
    }
    let Some(table) = gateway.table.load_full() else {
        refuse(gateway, &mut stream, 503, &[], "no plan loaded yet").await;
        return None;
    };
    let m = match table.lookup(&head.path) {
        Lookup::NoApi => {
            refuse(
                gateway,
                &mut stream,
                404,
                &[],
                "no API is served at this path",
            )
            .await;
            return None;
        }
        Lookup::NoTopic { api } => {
            let text = format!(
                "{} {} has no topic at this path",
                api.api.title, api.api.version
            );
            refuse(gateway, &mut stream, 404, &[], &text).await;
            return None;
        }
        Lookup::Found(m) => m,
    };
    let api = &m.api.api;
    match api.lifecycle {
        Lifecycle::Created => {
            refuse(
                gateway,
                &mut stream,
                404,
                &[],
                "no API is served at this path",
            )
            .await;
            return None;
        }
        Lifecycle::Retired => {
            let text = format!("{} {} is retired", api.title, api.version);
            refuse(gateway, &mut stream, 410, &[], &text).await;
            return None;
        }
        Lifecycle::Blocked => {
            let text = format!("{} {} is blocked", api.title, api.version);
            refuse(gateway, &mut stream, 503, &[], &text).await;
            return None;
        }
        Lifecycle::Published | Lifecycle::Deprecated | Lifecycle::Prototyped => {}
    }
    if !is_upgrade(&head) {
        refuse(
            gateway,
            &mut stream,
            426,
            &[
                ("upgrade", "websocket".into()),
                ("sec-websocket-version", "13".into()),
            ],
            "this is a WebSocket endpoint: connect with a WebSocket client",
        )
        .await;
        return None;
    }
    // Credentials: verified before any backend connection, and stripped from what it sees.
    let grant = {
        let verifiers = gateway.verifiers.load();
        match crate::policy::auth::authenticate(&verifiers, api, m.route, &mut head).await {
            Ok(grant) => grant,
            Err(refusal) => {
                refuse(
                    gateway,
                    &mut stream,
                    refusal.status,
                    &refusal.headers,
                    &refusal.text,
                )
                .await;
                return None;
            }
        }
    };
    let endpoint = match grant.key_type {
        crate::policy::grant::KeyType::Sandbox => api
            .endpoints
            .sandbox
            .as_deref()
            .unwrap_or(&api.endpoints.production),
        crate::policy::grant::KeyType::Production => &api.endpoints.production,
    };
    let api_limit = api
        .limits
        .max_connections
        .map(|n| n as usize)
        .unwrap_or(gateway.config.max_connections_per_api);
    let registration = match gateway.connections.register(
        m.api.key(),
        &m.route.pattern,
        gateway.config.max_connections,
        api_limit,
    ) {
        Ok(r) => r,
        Err(LimitError::Global(n)) => {
            let text = format!("the gateway is at its limit of {n} connections");
            refuse(
                gateway,
                &mut stream,
                503,
                &[("retry-after", "5".into())],
                &text,
            )
            .await;
            return None;
        }
        Err(LimitError::PerApi(n)) => {
            let text = format!(
                "{} {} is at its limit of {n} connections",
                api.title, api.version
            );
            refuse(
                gateway,
                &mut stream,
                503,
                &[("retry-after", "5".into())],
                &text,
            )
            .await;
            return None;
        }
    };
    let url = backend_url(endpoint, &m, head.query.as_deref());
    let offered = head.header("sec-websocket-protocol");
    let mut ws_config = gateway.ws_config;
    if let Some(max) = api.limits.max_message_bytes {
        ws_config = ws_config.max_message_size(Some(max as usize));
    }
    if let Some(max) = api.limits.max_frame_bytes {
        ws_config = ws_config.max_frame_size(Some(max as usize));
    }
    // The frame limit protects the gateway from clients. The relay re-frames messages (a message
    // of several small client frames goes to the backend as one frame, and may come back as one),
    // so on the backend side frames are bounded by the message limit only.
    let backend_config = ws_config.max_frame_size(ws_config.max_message_size);
    let started = Instant::now();
    let connected = Box::pin(backend::connect(
        BackendRequest {
            url: &url,
            headers: {
                let mut headers = backend_headers(gateway, &head, peer);
                headers.extend(grant.forwarded_header.clone());
                headers
            },
            protocols: offered,
            route: m.route,
        },
        backend_config,
        &gateway.tls,
        gateway.config.connect_timeout(),
    ))
    .await;
    gateway
        .metrics
        .backend_connect_seconds
        .get_or_create(&crate::metrics::ApiLabels {
            api: m.api.key().to_string(),
        })
        .observe(started.elapsed().as_secs_f64());
    let connected = match connected {
        Ok(c) => c,
        Err(e) => {
            warn!(api = %api.context, route = %m.route.pattern, status = e.status(), reason = %e.reason(), "backend connection failed");
            refuse(gateway, &mut stream, e.status(), &[], &e.reason()).await;
            return None;
        }
    };
    // Complete the client's upgrade, returning the backend's subprotocol choice if the client offered it.
    let key = head.header("sec-websocket-key").unwrap_or_default().trim();
    let mut headers = vec![
        ("upgrade", "websocket".to_string()),
        ("connection", "Upgrade".to_string()),
        ("sec-websocket-accept", derive_accept_key(key.as_bytes())),
    ];
    if let Some(chosen) = &connected.protocol {
        let offered_list: Vec<&str> = offered
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .collect();
        if offered_list.contains(&chosen.as_str()) {
            headers.push(("sec-websocket-protocol", chosen.clone()));
        }
    }
    if api.lifecycle == Lifecycle::Deprecated {
        headers.push(("deprecation", "true".to_string()));
        warn!(api = %api.context, "serving a DEPRECATED API");
    }
    let mut response = String::from("HTTP/1.1 101 Switching Protocols\r\n");
    for (k, v) in &headers {
        response.push_str(&format!("{k}: {v}\r\n"));
    }
    response.push_str("\r\n");
    if tokio::io::AsyncWriteExt::write_all(&mut stream, response.as_bytes())
        .await
        .is_err()
    {
        return None;
    }
    gateway
        .metrics
        .handshakes
        .get_or_create(&StatusLabels { status: 101 })
        .inc();
    let api_idle = m.api.api.limits.idle_timeout_seconds;
    let metrics = ConnectionMetrics::new(&gateway.metrics, m.api.key(), &m.route.pattern);
    metrics.open.inc();
    let api = m.api.key().to_string();
    let route = m.route.pattern.clone();
    info!(api = %api, route = %route, peer = %peer, "connection opened");
    let client =
        WebSocketStream::from_partially_read(stream, leftover, Role::Server, Some(ws_config)).await;
    let idle_timeout = api_idle
        .map(Duration::from_secs)
        .or(gateway.config.idle_timeout());
    Some(Session {
        client,
        backend: connected.socket,
        registration,
        metrics,
        api,
        route,
        idle_timeout,
    })
}

/// An upgraded connection: everything the relay phase keeps for the connection's life.
struct Session {
    client: WebSocketStream<TcpStream>,
    backend: BackendSocket,
    registration: Registration,
    metrics: ConnectionMetrics,
    api: String,
    route: String,
    /// The API's `x-gateway.limits.idleTimeoutSeconds`, else `--idle-timeout`.
    idle_timeout: Option<Duration>,
}

impl Session {
    /// Spawns the relay and, after it, the connection's close accounting.
    fn start(self, gateway: Arc<Gateway>) {
        let Session {
            client,
            backend,
            registration,
            metrics,
            api,
            route,
            idle_timeout,
        } = self;
        let options = RelayOptions {
            idle_timeout,
            keepalive: gateway.config.keepalive(),
            close_grace: Duration::from_secs(5),
        };
        let commands = registration.commands.clone();
        let m = metrics.clone();
        let end = Ended {
            gateway,
            registration,
            metrics,
            api,
            route,
            opened: Instant::now(),
        };
        match backend {
            BackendSocket::Plain(b) => spawn_relay(relay(client, b, options, m, commands), end),
            BackendSocket::Tls(b) => spawn_relay(relay(client, *b, options, m, commands), end),
            BackendSocket::Builtin(b) => spawn_relay(relay(client, b, options, m, commands), end),
        }
    }
}

fn spawn_relay(relay: impl std::future::Future<Output = RelayReport> + Send + 'static, end: Ended) {
    tokio::spawn(async move {
        let report = relay.await;
        end.finish(report);
    });
}

/// What is needed once the relay is over: unregister, count, log.
struct Ended {
    gateway: Arc<Gateway>,
    registration: Registration,
    metrics: ConnectionMetrics,
    api: String,
    route: String,
    opened: Instant,
}

impl Ended {
    fn finish(self, report: RelayReport) {
        drop(self.registration);
        self.metrics.open.dec();
        self.gateway
            .metrics
            .closes
            .get_or_create(&CloseLabels {
                initiator: if report.initiator.is_empty() {
                    "unknown"
                } else {
                    report.initiator
                },
                code: report.code.unwrap_or(1005),
            })
            .inc();
        info!(
            api = %self.api,
            route = %self.route,
            duration_ms = self.opened.elapsed().as_millis() as u64,
            bytes_up = report.bytes_up,
            bytes_down = report.bytes_down,
            messages_up = report.messages_up,
            messages_down = report.messages_down,
            close_code = report.code.unwrap_or(1005),
            closed_by = report.initiator,
            "connection closed"
        );
    }
}
