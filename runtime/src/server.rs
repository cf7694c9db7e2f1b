//! The WebSocket listener: accept, read the handshake, decide, connect the backend, upgrade, relay.
//!
//! Every refusal is an HTTP status with a short plain-text reason, decided in this order:
//! 400 (not HTTP), 405 (not GET), 404 (no API or topic; also CREATED APIs), 410 (RETIRED),
//! 503 (BLOCKED, not ready, or over a connection limit), 426 (not a WebSocket upgrade),
//! 502/504 (backend unreachable / too slow).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use portico_compiler::plan::{Lifecycle, PlanApi, Route};
use tokio::net::{TcpListener, TcpStream};

use crate::tls_listener::{ClientStream, ServerCertificate};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::WebSocketStream;
use tracing::{info, warn};

use crate::backend::{self, BackendRequest, BackendSocket, Connected};
use crate::connections::{LimitError, Registration};
use crate::frame_relay::{relay_frames, Endpoint, FrameLimits, FrameSource, Stashed};
use crate::http::{read_head, write_text, HeadError, RequestHead};
use crate::metrics::{CloseLabels, ConnectionMetrics, StatusLabels};
use crate::policy::grant::{Grant, KeyType};
use crate::policy::message::{Admission, Checked, MessageGate};
use crate::policy::throttle::ConnectionSlot;
use crate::refusal::Refusal;
use crate::relay::{relay, RelayOptions, RelayReport};
use crate::routes::{backend_url, ApiEntry, Lookup, Match};
use crate::served::Served;
use crate::Gateway;

/// Descriptors kept free for the admin listener, log and spec files, the reload watcher and
/// the runtime itself: the WebSocket listener stops admitting connections before it takes them.
const RESERVED_FDS: u64 = 48;

/// Most refusals sent at once by the accept loop itself (each holds a descriptor briefly).
const MAX_BUSY_REFUSALS: usize = 64;

/// Accepts connections until `stop` resolves; with `tls`, each connection is a TLS one (the
/// `wss://` listener), whose TLS handshake counts as part of the WebSocket handshake.
///
/// Connections in their handshake count against `--max-pending-handshakes`, and every
/// connection (two descriptors once proxied) against the open-file limit less `RESERVED_FDS`;
/// beyond either, a connection is answered 503 at once. When `accept` itself fails for lack of
/// descriptors (EMFILE), a spare descriptor is given up to take the connection off the backlog,
/// answer it 503 and close it, instead of leaving it to time out while the loop spins.
pub async fn serve(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    tls: Option<Arc<ServerCertificate>>,
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
                            tokio::spawn(handle(gateway.clone(), stream, tls.clone(), peer, permit));
                        }
                        // A TLS client cannot read a plain-text 503: it is closed.
                        Err(why) if tls.is_none() => refuse_busy(&gateway, &refusals, ClientStream::Plain(stream), why),
                        Err(_) => drop(stream),
                    }
                }
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                    if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                        warn!(error = %e, "out of file descriptors: refusing connections with 503");
                        last_warning = Some(Instant::now());
                    }
                    drop(spare.take());
                    if let Ok((stream, _)) = listener.accept().await {
                        if tls.is_some() {
                            drop(stream);
                        } else {
                            refuse_busy(&gateway, &refusals, ClientStream::Plain(stream), "the gateway is out of file descriptors: try again later");
                        }
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
    mut stream: ClientStream,
    why: &'static str,
) {
    let Ok(permit) = refusals.clone().try_acquire_owned() else {
        return;
    };
    let gateway = gateway.clone();
    tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_millis(500), read_head(&mut stream)).await;
        respond(
            &gateway,
            &mut stream,
            &Refusal::new(503, why).header("retry-after", "5"),
        )
        .await;
        drop(permit);
    });
}

/// A connection's first task: the handshake. Once upgraded, the relay runs in a task of its own,
/// so that what stays allocated for the connection's life is the relay's state and nothing else
/// (an async fn's future is as large as its largest state; measured with massif, this keeps an
/// idle proxied connection near 15 KiB instead of 29 KiB).
async fn handle(
    gateway: Arc<Gateway>,
    stream: TcpStream,
    tls: Option<Arc<ServerCertificate>>,
    peer: SocketAddr,
    pending: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let mut stream = match tls {
        None => ClientStream::Plain(stream),
        Some(certificate) => {
            // Bounded by the handshake timeout like the HTTP head; a failed TLS handshake has no
            // one to answer (rustls has already sent its alert).
            let accepting = certificate.acceptor().accept(stream);
            match tokio::time::timeout(gateway.config.handshake_timeout(), accepting).await {
                Ok(Ok(tls_stream)) => ClientStream::Tls(Box::new(tls_stream)),
                Ok(Err(e)) => {
                    tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => return,
            }
        }
    };
    // The handshake and the backend connection are boxed: an async fn's future is as large as its
    // largest state, and theirs (buffers, TLS state) would otherwise stay inside every connection's
    // task for its whole life (measured with massif: 15 KiB per connection).
    let decided = Box::pin(handshake(&gateway, &mut stream, peer)).await;
    // No longer in the handshake: the `--max-pending-handshakes` slot is free again.
    drop(pending);
    match decided {
        Ok(upgrade) => {
            if let Some(session) = upgrade.complete(&gateway, stream, peer).await {
                session.start(gateway);
            }
        }
        Err(Failed::Refused(refusal)) => respond(&gateway, &mut stream, &refusal).await,
        Err(Failed::Gone) => {}
    }
}

/// Why a handshake ended without an upgrade.
enum Failed {
    /// Answered with this status and reason.
    Refused(Refusal),
    /// The client went away (or stopped sending): there is no one to answer.
    Gone,
}

impl From<Refusal> for Failed {
    fn from(refusal: Refusal) -> Failed {
        Failed::Refused(refusal)
    }
}

/// The one writer of refusals: counts the status and sends the plain-text reason.
async fn respond(gateway: &Gateway, stream: &mut ClientStream, refusal: &Refusal) {
    gateway
        .metrics
        .handshakes
        .get_or_create(&StatusLabels {
            status: refusal.status,
        })
        .inc();
    let headers: Vec<(&str, String)> = refusal
        .headers
        .iter()
        .map(|(k, v)| (*k, v.clone()))
        .collect();
    let _ = write_text(stream, refusal.status, &headers, &refusal.text).await;
}

/// The handshake as one sequence of decisions, cheapest and unauthenticated first; the backend is
/// connected last, before the client's upgrade is answered (so an unreachable backend is a 502,
/// never a socket that leads nowhere).
async fn handshake(
    gateway: &Gateway,
    stream: &mut ClientStream,
    peer: SocketAddr,
) -> Result<Upgrade, Failed> {
    let (mut head, leftover) = read_request(gateway, stream).await?;
    require_get(&head)?;
    require_running(gateway)?;
    let served = current(gateway)?;
    let matched = find_route(&served, &head.path)?;
    require_upgrade(&head)?;
    let checked = check_traffic(&served, &matched, &head)?;
    // Credentials: verified before any backend connection, and stripped from what it sees. An
    // address that keeps failing them is refused before they are looked at.
    gateway.credential_failures.check(peer.ip())?;
    let grant = authenticate(gateway, &matched, &mut head)
        .await
        .inspect_err(|refusal| {
            if refusal.status == 401 {
                gateway.credential_failures.record(peer.ip());
            }
        })?;
    // Per-client caps and buckets count the verified identity, else the address.
    let admission = checked.admit(grant.client_key(peer.ip()))?;
    let registration = register(gateway, &served, &matched, &head.path, &grant)?;
    let admission = admission.restrict_directions(&grant, &matched.route().security);
    let backend = connect_backend(gateway, &head, peer, stream.is_tls(), &matched, &grant).await?;
    Ok(Upgrade {
        head,
        leftover,
        matched,
        admission,
        registration,
        backend,
    })
}

/// The traffic policies' unauthenticated handshake checks: origin (403), the ws binding's
/// contract (400). The per-client caps (429) follow the credential stage, keyed by its identity.
fn check_traffic(
    served: &Served,
    matched: &Matched,
    head: &RequestHead,
) -> Result<Checked, Refusal> {
    served
        .traffic
        .check(&matched.plan_api().context, &matched.route().pattern, head)
}

/// Reads the request head, bounded in size and time.
async fn read_request(
    gateway: &Gateway,
    stream: &mut ClientStream,
) -> Result<(RequestHead, Vec<u8>), Failed> {
    match tokio::time::timeout(gateway.config.handshake_timeout(), read_head(stream)).await {
        Err(_) => Err(Refusal::new(408, "handshake timeout").into()),
        Ok(Err(HeadError::Io)) => Err(Failed::Gone),
        Ok(Err(HeadError::Malformed(why))) => Err(Refusal::new(400, why).into()),
        Ok(Ok(pair)) => Ok(pair),
    }
}

fn require_get(head: &RequestHead) -> Result<(), Refusal> {
    if head.method == "GET" {
        Ok(())
    } else {
        Err(Refusal::new(405, "only GET can open a WebSocket").header("allow", "GET"))
    }
}

fn require_running(gateway: &Gateway) -> Result<(), Refusal> {
    if *gateway.shutting_down.borrow() {
        Err(Refusal::new(503, "the gateway is shutting down"))
    } else {
        Ok(())
    }
}

fn current(gateway: &Gateway) -> Result<Arc<Served>, Refusal> {
    gateway
        .served
        .load_full()
        .ok_or_else(|| Refusal::new(503, "no plan loaded yet"))
}

/// A route matched in the served table, owned (no borrow of the table), so the handshake can
/// keep it across awaits.
struct Matched {
    api: Arc<ApiEntry>,
    /// Index of the route in `api` (see [`ApiEntry::route`]).
    index: usize,
    params: Vec<(String, String)>,
    rest: Vec<String>,
}

impl Matched {
    fn route(&self) -> &Route {
        self.api
            .route(self.index)
            .expect("the index came from this API's lookup")
    }

    fn plan_api(&self) -> &PlanApi {
        &self.api.api
    }

    /// The backend URL on `endpoint` for this match and the client's query.
    fn backend_url(&self, endpoint: &str, query: Option<&str>) -> String {
        let m = Match {
            api: &self.api,
            route: self.route(),
            index: self.index,
            params: self.params.clone(),
            rest: self.rest.clone(),
        };
        backend_url(endpoint, &m, query)
    }
}

/// Matches the path. The API's lifecycle is checked before its topics, so an unpublished API
/// discloses nothing (not even that it exists) and a retired one answers 410 on every path.
fn find_route(served: &Served, path: &str) -> Result<Matched, Refusal> {
    let no_api = || Refusal::new(404, "no API is served at this path");
    let m = match served.table.lookup(path) {
        Lookup::NoApi => return Err(no_api()),
        Lookup::NoTopic { api } => {
            admit(&api.api)?;
            return Err(Refusal::new(
                404,
                format!(
                    "{} {} has no topic at this path",
                    api.api.title, api.api.version
                ),
            ));
        }
        Lookup::Found(m) => m,
    };
    admit(&m.api.api)?;
    Ok(Matched {
        api: m.api.clone(),
        index: m.index,
        params: m.params,
        rest: m.rest,
    })
}

/// The handshake's side of the lifecycle rule ([`Lifecycle::admits`], which reloads follow too).
fn admit(api: &PlanApi) -> Result<(), Refusal> {
    if api.lifecycle.admits() {
        return Ok(());
    }
    Err(match api.lifecycle {
        Lifecycle::Retired => {
            Refusal::new(410, format!("{} {} is retired", api.title, api.version))
        }
        Lifecycle::Blocked => {
            Refusal::new(503, format!("{} {} is blocked", api.title, api.version))
        }
        _ => Refusal::new(404, "no API is served at this path"),
    })
}

/// RFC 6455 §4.2.1 (see [`crate::upgrade`]): 426 for a request that is no upgrade at all, 400
/// for a malformed one.
fn require_upgrade(head: &RequestHead) -> Result<(), Refusal> {
    crate::upgrade::check_upgrade_request(head)
}

/// Registers the connection against the global and per-API limits. A reload may have swapped the
/// table since the route was matched; it closes the vanished routes' connections *after* the swap,
/// so a connection registered after that sweep must check the current table itself, or it would
/// live on a route that no longer exists. The registry keeps what of `grant` can revoke or expire
/// (see [`crate::policy::live_credentials`]).
fn register(
    gateway: &Gateway,
    matched_in: &Served,
    matched: &Matched,
    path: &str,
    grant: &Grant,
) -> Result<Registration, Refusal> {
    let (api, route, plan_api) = (&matched.api, matched.route(), matched.plan_api());
    let api_limit = plan_api
        .limits
        .max_connections
        .map(|n| n as usize)
        .unwrap_or(gateway.config.max_connections_per_api);
    let verifiers = gateway.verifiers.load();
    let credential =
        crate::connections::LiveCredential::of(grant, &plan_api.name, verifiers.skew_seconds());
    let registration = gateway
        .connections
        .register_with(
            api.key(),
            &route.pattern,
            credential,
            gateway.config.max_connections,
            api_limit,
        )
        .map_err(|e| {
            let text = match e {
                LimitError::Global(n) => format!("the gateway is at its limit of {n} connections"),
                LimitError::PerApi(n) => format!(
                    "{} {} is at its limit of {n} connections",
                    plan_api.title, plan_api.version
                ),
            };
            Refusal::new(503, text).header("retry-after", "5")
        })?;
    let now = current(gateway)?;
    if now.generation != matched_in.generation {
        // Matched in an older table: the route must still exist, unchanged, in the current one.
        let still = find_route(&now, path)?;
        if still.api.key() != api.key() || still.route().pattern != route.pattern {
            return Err(
                Refusal::new(503, "the route changed during the handshake: try again")
                    .header("retry-after", "1"),
            );
        }
    }
    // A revocation read between the credential stage and the registration swept without us.
    if verifiers.revoked(grant, &plan_api.name) {
        return Err(crate::policy::credential::unauthorized(
            "the credential was revoked",
        ));
    }
    Ok(registration)
}

/// The credential stage ([`crate::policy::auth::authenticate`]).
async fn authenticate(
    gateway: &Gateway,
    matched: &Matched,
    head: &mut RequestHead,
) -> Result<Grant, Refusal> {
    let verifiers = gateway.verifiers.load();
    crate::policy::auth::authenticate(&verifiers, matched.plan_api(), matched.route(), head).await
}

/// Connects the backend before the client's upgrade is answered: the sandbox endpoint for
/// sandbox credentials (the credential stage refused them when the API has none).
async fn connect_backend(
    gateway: &Gateway,
    head: &RequestHead,
    peer: SocketAddr,
    over_tls: bool,
    matched: &Matched,
    grant: &Grant,
) -> Result<Connected, Refusal> {
    let (api, route, plan_api) = (&matched.api, matched.route(), matched.plan_api());
    let endpoint = match grant.key_type {
        KeyType::Sandbox => plan_api
            .endpoints
            .sandbox
            .as_deref()
            .unwrap_or(&plan_api.endpoints.production),
        KeyType::Production => &plan_api.endpoints.production,
    };
    let url = matched.backend_url(endpoint, head.query.as_deref());
    let backend_config = backend_ws_config(gateway, plan_api);
    let started = Instant::now();
    let connected = Box::pin(backend::connect(
        BackendRequest {
            url: &url,
            headers: {
                let mut headers = crate::forwarding::backend_headers(
                    head,
                    peer,
                    &gateway.config.forward_headers,
                    over_tls,
                );
                headers.extend(grant.forwarded_header.clone());
                headers
            },
            protocols: head.header("sec-websocket-protocol"),
            route,
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
            api: api.key().to_string(),
        })
        .observe(started.elapsed().as_secs_f64());
    connected.map_err(|e| {
        warn!(api = %plan_api.context, route = %route.pattern, status = e.status(), reason = %e.reason(), "backend connection failed");
        Refusal::new(e.status(), e.reason())
    })
}

/// The client side's limits: the gateway's, narrowed by the API's `x-gateway.limits`.
fn client_ws_config(gateway: &Gateway, api: &PlanApi) -> WebSocketConfig {
    let mut ws_config = gateway.ws_config;
    if let Some(max) = api.limits.max_message_bytes {
        ws_config = ws_config.max_message_size(Some(max as usize));
    }
    if let Some(max) = api.limits.max_frame_bytes {
        ws_config = ws_config.max_frame_size(Some(max as usize));
    }
    ws_config
}

/// The frame limit protects the gateway from clients. The relay re-frames messages (a message of
/// several small client frames goes to the backend as one frame, and may come back as one), so on
/// the backend side frames are bounded by the message limit only.
fn backend_ws_config(gateway: &Gateway, api: &PlanApi) -> WebSocketConfig {
    let ws_config = client_ws_config(gateway, api);
    ws_config.max_frame_size(ws_config.max_message_size)
}

/// A handshake that passed every check: what is needed to answer 101 and start relaying.
struct Upgrade {
    head: RequestHead,
    leftover: Vec<u8>,
    matched: Matched,
    /// The connection's per-client slot and message gate.
    admission: Admission,
    registration: Registration,
    backend: Connected,
}

impl Upgrade {
    /// Answers 101 with the backend's subprotocol choice (if the client offered it).
    async fn complete(
        self,
        gateway: &Gateway,
        mut stream: ClientStream,
        peer: SocketAddr,
    ) -> Option<Session> {
        let Upgrade {
            head,
            leftover,
            matched,
            admission,
            registration,
            backend,
        } = self;
        let (api, route, plan_api) = (&matched.api, matched.route(), matched.plan_api());
        let key = crate::upgrade::client_key(&head);
        let mut headers = vec![
            ("upgrade", "websocket".to_string()),
            ("connection", "Upgrade".to_string()),
            ("sec-websocket-accept", derive_accept_key(key.as_bytes())),
        ];
        if let Some(chosen) = &backend.protocol {
            let offered = head.header("sec-websocket-protocol").unwrap_or_default();
            if offered.split(',').map(str::trim).any(|p| p == chosen) {
                headers.push(("sec-websocket-protocol", chosen.clone()));
            }
        }
        if plan_api.lifecycle == Lifecycle::Deprecated {
            headers.push(("deprecation", "true".to_string()));
            warn!(api = %plan_api.context, "serving a DEPRECATED API");
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
        let metrics = ConnectionMetrics::new(&gateway.metrics, api.key(), &route.pattern);
        metrics.open.inc();
        info!(api = %api.key(), route = %route.pattern, peer = %peer, "connection opened");
        let client_config = client_ws_config(gateway, plan_api);
        let idle_timeout = plan_api
            .limits
            .idle_timeout_seconds
            .map(Duration::from_secs)
            .or(gateway.config.idle_timeout());
        Some(Session {
            client: stream,
            leftover,
            client_config,
            backend: backend.socket,
            admission,
            registration,
            metrics,
            api: api.key().to_string(),
            route: route.pattern.clone(),
            idle_timeout,
        })
    }
}

/// An upgraded connection: everything the relay phase keeps for the connection's life.
struct Session {
    client: ClientStream,
    /// What the client sent after its request head.
    leftover: Vec<u8>,
    /// The client side's limits (the backend side's follow from them).
    client_config: WebSocketConfig,
    backend: BackendSocket,
    /// Held for the connection's life: its per-client slot and its message gate.
    admission: Admission,
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
            leftover,
            client_config,
            backend,
            admission,
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
        let Admission { slot, gate, .. } = admission;
        let m = metrics.clone();
        let end = Ended {
            gateway,
            registration,
            metrics,
            api,
            route,
            opened: Instant::now(),
            _slot: slot,
        };
        let client_limits = FrameLimits {
            max_frame: client_config.max_frame_size,
            max_message: client_config.max_message_size,
        };
        let backend_limits = FrameLimits {
            max_frame: client_config.max_message_size,
            max_message: client_config.max_message_size,
        };
        // Policies that need whole messages (validation, bytes buckets) take the message relay;
        // everything else, scopes and message buckets included, the frame relay, which decides
        // each message on its first frame. Each pairing of streams is its own task type, so a
        // connection's task is only as large as its relay, and each relay is awaited where it is
        // made (a future passed in and then awaited would take its space twice). The gate is
        // boxed: a pointer in every connection's task instead of the gate itself.
        let gate = match gate {
            Some(gate) if !gate.decides_on_first_frame() => Err(gate),
            gate => Ok(gate.map(Box::new)),
        };
        let (gate, backend, client) = match (gate, backend, client) {
            (Ok(gate), BackendSocket::Plain(mut backend), ClientStream::Plain(mut client)) => {
                tokio::spawn(async move {
                    let backend_leftover = std::mem::take(&mut backend.leftover);
                    let (cr, cw) = client.split();
                    let (br, bw) = backend.stream.split();
                    let report = relay_frames(
                        Endpoint {
                            read: cr,
                            write: cw,
                            leftover,
                            limits: client_limits,
                        },
                        Endpoint {
                            read: br,
                            write: bw,
                            leftover: backend_leftover,
                            limits: backend_limits,
                        },
                        options,
                        m,
                        commands,
                        gate.as_deref(),
                    )
                    .await;
                    end.finish(report);
                });
                return;
            }
            (Ok(gate), BackendSocket::Plain(mut backend), ClientStream::Tls(mut client)) => {
                tokio::spawn(async move {
                    let backend_leftover = std::mem::take(&mut backend.leftover);
                    let (cr, cw) = tokio::io::split(client.as_mut());
                    let (br, bw) = backend.stream.split();
                    let report = relay_frames(
                        Endpoint {
                            read: Stashed::new(cr),
                            write: cw,
                            leftover,
                            limits: client_limits,
                        },
                        Endpoint {
                            read: br,
                            write: bw,
                            leftover: backend_leftover,
                            limits: backend_limits,
                        },
                        options,
                        m,
                        commands,
                        gate.as_deref(),
                    )
                    .await;
                    end.finish(report);
                });
                return;
            }
            (Ok(gate), backend @ BackendSocket::Tls(_), client) => {
                // A TLS backend: owned halves (tokio's split, a lock per call, is what a TLS
                // stream needs to be read and written at once).
                match (client, backend) {
                    (ClientStream::Plain(c), BackendSocket::Tls(b)) => {
                        let (cr, cw) = c.into_split();
                        let b = *b;
                        let (br, bw) = tokio::io::split(b.stream);
                        let backend = Endpoint {
                            read: Stashed::new(br),
                            write: bw,
                            leftover: b.leftover,
                            limits: backend_limits,
                        };
                        spawn_frames(
                            Endpoint {
                                read: cr,
                                write: cw,
                                leftover,
                                limits: client_limits,
                            },
                            backend,
                            options,
                            m,
                            commands,
                            gate,
                            end,
                        );
                    }
                    (ClientStream::Tls(c), BackendSocket::Tls(b)) => {
                        let (cr, cw) = tokio::io::split(*c);
                        let b = *b;
                        let (br, bw) = tokio::io::split(b.stream);
                        let backend = Endpoint {
                            read: Stashed::new(br),
                            write: bw,
                            leftover: b.leftover,
                            limits: backend_limits,
                        };
                        spawn_frames(
                            Endpoint {
                                read: Stashed::new(cr),
                                write: cw,
                                leftover,
                                limits: client_limits,
                            },
                            backend,
                            options,
                            m,
                            commands,
                            gate,
                            end,
                        );
                    }
                    _ => unreachable!("a TLS backend is matched here"),
                }
                return;
            }
            (Ok(gate), backend, client) => (gate.map(|gate| *gate), backend, client),
            (Err(gate), backend, client) => (Some(gate), backend, client),
        };
        spawn_relay(
            async move {
                let client = WebSocketStream::from_partially_read(
                    client,
                    leftover,
                    Role::Server,
                    Some(client_config),
                )
                .await;
                match backend {
                    BackendSocket::Plain(b) => {
                        relay(client, b.into_websocket().await, options, m, commands, gate).await
                    }
                    BackendSocket::Tls(b) => {
                        relay(client, b.into_websocket().await, options, m, commands, gate).await
                    }
                    BackendSocket::Builtin(b) => relay(client, b, options, m, commands, gate).await,
                }
            },
            end,
        )
    }
}

/// Spawns the frame relay over owned halves, then the connection's close accounting.
fn spawn_frames<CR, CW, BR, BW>(
    client: Endpoint<CR, CW>,
    backend: Endpoint<BR, BW>,
    options: RelayOptions,
    metrics: ConnectionMetrics,
    commands: tokio::sync::watch::Receiver<Option<crate::relay::CloseCommand>>,
    gate: Option<Box<MessageGate>>,
    end: Ended,
) where
    CR: FrameSource + 'static,
    BR: FrameSource + 'static,
    CW: tokio::io::AsyncWrite + Unpin + Send + 'static,
    BW: tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let report =
            relay_frames(client, backend, options, metrics, commands, gate.as_deref()).await;
        end.finish(report);
    });
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
    /// The per-client connection slot, released when the connection ends.
    _slot: Option<ConnectionSlot>,
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

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::config::Config;
    use crate::docs_site::DocsSite;
    use crate::reload::{apply, Loaded};

    fn plan(topics: &[&str]) -> portico_compiler::Plan {
        let dir = tempfile::tempdir().unwrap();
        let channels: String = topics
            .iter()
            .map(|t| {
                format!(
                    "  {t}:\n    subscribe:\n      message:\n        payload: {{type: string}}\n"
                )
            })
            .collect();
        let spec = format!(
            "asyncapi: 2.6.0\ninfo: {{title: Svc, version: v1}}\n\
             x-gateway: {{context: /svc, endpoints: {{production: 'echo:'}}}}\nchannels:\n{channels}"
        );
        let path = dir.path().join("svc.yaml");
        std::fs::write(&path, spec).unwrap();
        let out = portico_compiler::compile(&[path], &portico_compiler::Options::default());
        out.plan.unwrap_or_else(|| panic!("{:?}", out.diagnostics))
    }

    fn serve(gateway: &Gateway, plan: portico_compiler::Plan) {
        apply(
            gateway,
            Loaded {
                plan,
                docs: DocsSite::default(),
                files_read: Vec::new(),
            },
        );
    }

    /// A reload that removes a route between the handshake's match and its registration must not
    /// leave a connection on the vanished route: the registration re-checks the current table.
    #[test]
    fn a_handshake_racing_a_reload_cannot_keep_a_vanished_route() {
        let gateway = Gateway::new(Config::parse_from([
            "runtime",
            "--allow-unauthenticated",
            "x",
        ]))
        .unwrap();
        serve(&gateway, plan(&["/keep", "/gone"]));
        let old = current(&gateway).unwrap();
        let gone = find_route(&old, "/svc/v1/gone").unwrap();
        let keep = find_route(&old, "/svc/v1/keep").unwrap();
        // The reload lands (and sweeps the registry) before the handshake registers.
        serve(&gateway, plan(&["/keep"]));
        let refused = register(&gateway, &old, &gone, "/svc/v1/gone", &Grant::anonymous())
            .err()
            .expect("registered on a vanished route");
        assert_eq!(refused.status, 404, "{}", refused.text);
        assert_eq!(
            gateway.connections.count(),
            0,
            "the refused one is not left registered"
        );
        // A route that survived the reload registers fine.
        let ok = register(&gateway, &old, &keep, "/svc/v1/keep", &Grant::anonymous());
        assert!(ok.is_ok());
        assert_eq!(gateway.connections.count(), 1);
    }

    #[test]
    fn lifecycle_refusals_follow_the_one_rule() {
        let mut p = plan(&["/t"]);
        for (state, status) in [
            (Lifecycle::Created, Some(404)),
            (Lifecycle::Retired, Some(410)),
            (Lifecycle::Blocked, Some(503)),
            (Lifecycle::Published, None),
            (Lifecycle::Deprecated, None),
            (Lifecycle::Prototyped, None),
        ] {
            p.apis[0].lifecycle = state;
            assert_eq!(
                admit(&p.apis[0]).err().map(|r| r.status),
                status,
                "{state:?}"
            );
            assert_eq!(state.admits(), status.is_none());
        }
    }
}
