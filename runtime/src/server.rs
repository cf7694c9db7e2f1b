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
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;
use tracing::{info, warn};

use crate::backend::{self, BackendRequest, BackendSocket};
use crate::connections::{LimitError, Registration};
use crate::http::{read_head, write_text, HeadError};
use crate::metrics::{CloseLabels, ConnectionMetrics, StatusLabels};
use crate::relay::{relay, RelayOptions, RelayReport};
use crate::routes::{backend_url, Lookup};
use crate::Gateway;

/// Descriptors kept free for the admin listener, log and spec files, the reload watcher and
/// the runtime itself: the WebSocket listener stops admitting connections before it takes them.
const RESERVED_FDS: u64 = 48;

/// Most refusals sent at once by the accept loop itself (each holds a descriptor briefly).
const MAX_BUSY_REFUSALS: usize = 64;

/// Accepts connections until `stop` resolves.
///
/// Connections in their handshake count against `--max-pending-handshakes`, and every
/// connection (two descriptors once proxied) against the open-file limit less [`RESERVED_FDS`];
/// beyond either, a connection is answered 503 at once. When `accept` itself fails for lack of
/// descriptors (EMFILE), a spare descriptor is given up to take the connection off the backlog,
/// answer it 503 and close it, instead of leaving it to time out while the loop spins.
pub async fn serve(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    let max_pending = gateway.config.max_pending_handshakes.max(1);
    let pending = Arc::new(Semaphore::new(max_pending));
    let refusals = Arc::new(Semaphore::new(MAX_BUSY_REFUSALS));
    let mut spare = std::fs::File::open("/dev/null").ok();
    let mut last_warning: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let in_flight = gateway.connections.count() + max_pending - pending.available_permits();
                    let permit = if over_fd_budget(in_flight) {
                        Err("the gateway is out of file descriptors: try again later")
                    } else {
                        pending.clone().try_acquire_owned().map_err(|_| "too many handshakes in progress: try again later")
                    };
                    match permit {
                        Ok(permit) => {
                            tokio::spawn(handle(gateway.clone(), stream, peer, permit));
                        }
                        Err(why) => refuse_busy(&gateway, &refusals, stream, why),
                    }
                }
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                    if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                        warn!(error = %e, "out of file descriptors: refusing connections with 503");
                        last_warning = Some(Instant::now());
                    }
                    drop(spare.take());
                    if let Ok((stream, _)) = listener.accept().await {
                        refuse_busy(&gateway, &refusals, stream, "the gateway is out of file descriptors: try again later");
                    }
                    if spare.is_none() {
                        spare = std::fs::File::open("/dev/null").ok();
                    }
                    // Let connections finish and free their descriptors.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

/// Whether one more connection could leave too few descriptors for the rest of the runtime.
fn over_fd_budget(in_flight: usize) -> bool {
    match rlimit::getrlimit(rlimit::Resource::NOFILE) {
        Ok((soft, _)) => {
            (in_flight as u64 + 1).saturating_mul(2) > soft.saturating_sub(RESERVED_FDS)
        }
        Err(_) => false,
    }
}

/// Answers 503 to a connection the accept loop will not serve: reads its head briefly (closing
/// with unread input would reset the connection and lose the answer), then closes.
fn refuse_busy(
    gateway: &Arc<Gateway>,
    refusals: &Arc<Semaphore>,
    mut stream: TcpStream,
    why: &'static str,
) {
    let Ok(permit) = refusals.clone().try_acquire_owned() else {
        return;
    };
    let gateway = gateway.clone();
    tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_millis(500), read_head(&mut stream)).await;
        refuse(
            &gateway,
            &mut stream,
            503,
            &[("retry-after", "5".into())],
            why,
        )
        .await;
        drop(permit);
    });
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

/// A connection's first task: the handshake. Once upgraded, the relay runs in a task of its own,
/// so that what stays allocated for the connection's life is the relay's state and nothing else
/// (an async fn's future is as large as its largest state; measured with massif, this keeps an
/// idle proxied connection near 15 KiB instead of 29 KiB).
async fn handle(
    gateway: Arc<Gateway>,
    stream: TcpStream,
    peer: SocketAddr,
    pending: OwnedSemaphorePermit,
) {
    let session = Box::pin(handshake(&gateway, stream, peer)).await;
    drop(pending);
    if let Some(session) = session {
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
    let (head, leftover) = head;
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
    if let Err(r) = crate::upgrade::check_upgrade_request(&head) {
        refuse(gateway, &mut stream, r.status, &r.headers, &r.text).await;
        return None;
    }
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
    let url = backend_url(&api.endpoints.production, &m, head.query.as_deref());
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
            headers: crate::forwarding::backend_headers(
                &head,
                peer,
                &gateway.config.forward_headers,
            ),
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
    let key = crate::upgrade::client_key(&head);
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
            write_timeout: gateway.config.write_timeout(),
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
                code: crate::metrics::close_code_label(report.code.unwrap_or(1005)),
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
