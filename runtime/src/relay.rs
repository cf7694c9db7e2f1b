//! The relay: two pumps, client→backend and backend→client, running concurrently in one task.
//!
//! Each pump owns the read half of one side and the write half of the other, so that a slow reader
//! only slows the writer that feeds it (backpressure; memory stays bounded by the write buffer plus
//! one message). Writes are fed without flushing while more input is ready and flushed when the
//! source goes idle, batching small messages into fewer syscalls.
//!
//! Closing is explicit:
//! * a Close from one side is forwarded with its code and reason; the other side's reply completes
//!   the handshake, and both pumps keep reading until their side has closed (no unclean closes);
//! * a side that vanishes without a Close makes the gateway close the other with 1011, and a side
//!   that breaks the protocol is closed with 1002 (1007 for bad UTF-8, 1009 for too large);
//! * reload, shutdown, idle and keepalive timeouts close both sides through [`CloseCommand`]s.
//!
//! Pings are forwarded both ways; since each protocol endpoint already answers the pings it receives,
//! the pong that comes back for a forwarded ping is dropped instead of being delivered twice.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{FutureExt, Sink, SinkExt, Stream, StreamExt};
use tokio::sync::{mpsc, watch, Notify};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message};

use crate::metrics::ConnectionMetrics;
use crate::policy::message::{Direction, MessageGate, Verdict};

/// A request to close one side with a code and reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseCommand {
    pub code: u16,
    pub reason: String,
}

impl CloseCommand {
    pub fn new(code: u16, reason: impl Into<String>) -> Self {
        CloseCommand {
            code,
            reason: reason.into(),
        }
    }

    fn frame(&self) -> CloseFrame {
        CloseFrame {
            code: CloseCode::from(self.code),
            reason: self.reason.clone().into(),
        }
    }
}

pub struct RelayOptions {
    pub idle_timeout: Option<Duration>,
    pub keepalive: Option<Duration>,
    /// How long the close handshake may take once started.
    pub close_grace: Duration,
    /// Longest a single write may block (`--write-timeout`); `None`: no limit.
    pub write_timeout: Option<Duration>,
}

/// Who closed first, with which code: for the connection's log line and metrics.
#[derive(Clone, Debug, Default)]
pub struct RelayReport {
    pub initiator: &'static str,
    pub code: Option<u16>,
    pub reason: String,
    pub messages_up: u64,
    pub bytes_up: u64,
    pub messages_down: u64,
    pub bytes_down: u64,
}

/// State both pumps look at.
struct Shared {
    /// Payloads of pings forwarded client→backend (their pongs from the backend are dropped).
    client_pings: VecDeque<Bytes>,
    /// Payloads of pings forwarded backend→client, and of the gateway's own keepalive pings.
    backend_pings: VecDeque<Bytes>,
    last_data: Instant,
    last_from_client: Instant,
    /// The close owed to a side that broke the protocol, sent once the other side has closed.
    fault: [Option<CloseCommand>; 2],
    report: RelayReport,
}

const MAX_TRACKED_PINGS: usize = 32;

fn remember(queue: &mut VecDeque<Bytes>, payload: &Bytes) {
    if queue.len() == MAX_TRACKED_PINGS {
        queue.pop_front();
    }
    queue.push_back(payload.clone());
}

fn forget(queue: &mut VecDeque<Bytes>, payload: &Bytes) -> bool {
    match queue.iter().position(|p| p == payload) {
        Some(i) => {
            queue.remove(i);
            true
        }
        None => false,
    }
}

/// The two ends of a relayed connection (both relays use it).
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub(crate) enum Side {
    Client,
    Backend,
}

impl Side {
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    pub(crate) fn other(self) -> Side {
        match self {
            Side::Client => Side::Backend,
            Side::Backend => Side::Client,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Backend => "backend",
        }
    }
}

/// The close code for a read error: what the offending peer is told.
fn error_code(e: &WsError) -> Option<u16> {
    match e {
        WsError::Utf8(_) => Some(1007),
        WsError::Capacity(_) => Some(1009),
        // A peer that drops TCP without a Close has vanished; it did not break the protocol.
        WsError::Protocol(
            tokio_tungstenite::tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
        ) => None,
        WsError::Protocol(_) | WsError::AttackAttempt => Some(1002),
        _ => None,
    }
}

/// Relays until both sides are closed. `commands` delivers external close requests (reload,
/// shutdown); the value is applied to both sides.
pub async fn relay<C, B>(
    client: C,
    backend: B,
    options: RelayOptions,
    metrics: ConnectionMetrics,
    mut commands: watch::Receiver<Option<CloseCommand>>,
    gate: Option<MessageGate>,
) -> RelayReport
where
    C: Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Unpin,
    B: Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Unpin,
{
    let now = Instant::now();
    let shared = Arc::new(Mutex::new(Shared {
        client_pings: VecDeque::new(),
        backend_pings: VecDeque::new(),
        last_data: now,
        last_from_client: now,
        fault: [None, None],
        report: RelayReport::default(),
    }));
    let (client_tx, client_rx) = client.split();
    let (backend_tx, backend_rx) = backend.split();
    // Requests to close the side a pump writes to.
    let (close_backend, close_backend_rx) = watch::channel(None::<CloseCommand>);
    let (close_client, close_client_rx) = watch::channel(None::<CloseCommand>);
    let close_started = Notify::new();
    let [(up_hook, up_injected), (down_hook, down_injected)] =
        PolicyHook::pair(gate.as_ref(), &close_client, &close_backend);

    let up = pump(
        Pump {
            side: Side::Client,
            closing: close_backend_rx,
            close_source: &close_client,
            close_started: &close_started,
            shared: &shared,
            metrics: &metrics,
            write_timeout: options.write_timeout,
            hook: up_hook,
            injected: up_injected,
        },
        client_rx,
        backend_tx,
    );
    let down = pump(
        Pump {
            side: Side::Backend,
            closing: close_client_rx,
            close_source: &close_backend,
            close_started: &close_started,
            shared: &shared,
            metrics: &metrics,
            write_timeout: options.write_timeout,
            hook: down_hook,
            injected: down_injected,
        },
        backend_rx,
        client_tx,
    );
    let supervise = async {
        // Idle timeout, keepalive and external commands; returns once a close has started.
        let tick = options
            .keepalive
            .into_iter()
            .chain(options.idle_timeout)
            .min()
            .map(|d| (d / 4).clamp(Duration::from_millis(50), Duration::from_secs(1)))
            .unwrap_or(Duration::from_secs(3600));
        let mut interval = tokio::time::interval(tick);
        interval.tick().await;
        // When the last keepalive ping went out, while the client has said nothing since.
        let mut ping_pending: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = close_started.notified() => return,
                changed = commands.changed() => {
                    if changed.is_err() { continue_forever().await; }
                    let cmd = commands.borrow_and_update().clone();
                    if let Some(cmd) = cmd {
                        note_initiator(&shared, "gateway", &cmd);
                        let _ = close_client.send(Some(cmd.clone()));
                        let _ = close_backend.send(Some(cmd));
                        return;
                    }
                }
                _ = interval.tick() => {
                    let (idle_for, silent_for) = {
                        let s = shared.lock().expect("relay state");
                        (s.last_data.elapsed(), s.last_from_client.elapsed())
                    };
                    if let Some(idle) = options.idle_timeout {
                        if idle_for >= idle {
                            let cmd = CloseCommand::new(1001, "idle timeout");
                            note_initiator(&shared, "gateway", &cmd);
                            let _ = close_client.send(Some(cmd.clone()));
                            let _ = close_backend.send(Some(cmd));
                            return;
                        }
                    }
                    if let Some(every) = options.keepalive {
                        // The client answered (or said anything) since the ping: it is alive.
                        if ping_pending.is_some_and(|sent| silent_for < sent.elapsed()) {
                            ping_pending = None;
                        }
                        if ping_pending.is_some_and(|sent| sent.elapsed() >= every) {
                            let cmd = CloseCommand::new(1011, "keepalive timeout");
                            note_initiator(&shared, "gateway", &cmd);
                            let _ = close_client.send(Some(cmd.clone()));
                            let _ = close_backend.send(Some(cmd));
                            return;
                        }
                        if ping_pending.is_none() && silent_for >= every {
                            ping_pending = Some(Instant::now());
                            keepalive_ping(&shared);
                            // A change without a value wakes the down pump to send the ping.
                            close_client.send_modify(|_| {});
                        }
                    }
                }
            }
        }
    };
    let pumps = async {
        tokio::join!(up, down);
    };
    tokio::pin!(pumps);
    tokio::select! {
        _ = &mut pumps => {}
        _ = supervise => {
            // A close has been requested; give the handshake its grace period.
            let _ = tokio::time::timeout(options.close_grace, &mut pumps).await;
        }
    }
    let report = shared.lock().expect("relay state").report.clone();
    report
}

async fn continue_forever() {
    std::future::pending::<()>().await
}

/// Queues a keepalive ping for the down pump to send (it owns the client's write half).
fn keepalive_ping(shared: &Arc<Mutex<Shared>>) {
    let mut s = shared.lock().expect("relay state");
    let payload = Bytes::from_static(b"portico-keepalive");
    if !s.backend_pings.contains(&payload) {
        remember(&mut s.backend_pings, &payload);
    }
}

fn note_initiator(shared: &Arc<Mutex<Shared>>, who: &'static str, cmd: &CloseCommand) {
    let mut s = shared.lock().expect("relay state");
    if s.report.initiator.is_empty() {
        s.report.initiator = who;
        s.report.code = Some(cmd.code);
        s.report.reason = cmd.reason.clone();
    }
}

/// What one direction needs besides its two stream halves.
struct Pump<'a> {
    side: Side,
    /// Asks the pump to close the side it writes (a `None` value is a wake-up to send a
    /// keepalive ping).
    closing: watch::Receiver<Option<CloseCommand>>,
    /// Asks the *other* pump to close the side this one reads (after a write timeout).
    close_source: &'a watch::Sender<Option<CloseCommand>>,
    /// Tells the supervisor that the close handshake has begun.
    close_started: &'a Notify,
    shared: &'a Arc<Mutex<Shared>>,
    metrics: &'a ConnectionMetrics,
    write_timeout: Option<Duration>,
    /// The traffic policies, when the route has any (see [`PolicyHook`]).
    hook: Option<PolicyHook<'a>>,
    /// Error frames for the side this pump writes (the client), from the other pump's hook.
    injected: Option<mpsc::Receiver<Message>>,
}

/// A read result of the source, as the stream yields it.
type Item = Option<Result<Message, WsError>>;

/// How a write that may block ended.
enum Written {
    Ok,
    /// The sink failed: the side written to is gone.
    Failed,
    /// The source ended, failed or sent a Close while the write was blocked: the write is
    /// abandoned, and what was read is in `held`.
    SourceLeft,
    /// The write blocked longer than `--write-timeout`.
    TimedOut,
}

/// Runs one write, bounded by `timeout`, while watching the source: a pump blocked on a write
/// would otherwise never read, and so never notice, that the side it reads has left. At most one
/// message is read ahead into `held` (memory stays bounded); after that, only the timeout applies.
async fn guarded<R, F>(
    write: F,
    from: &mut R,
    held: &mut Option<Item>,
    timeout: Option<Duration>,
) -> Written
where
    R: Stream<Item = Result<Message, WsError>> + Unpin,
    F: std::future::Future<Output = Result<(), WsError>>,
{
    tokio::pin!(write);
    let deadline = async {
        match timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            biased;
            result = &mut write => {
                return if result.is_ok() { Written::Ok } else { Written::Failed };
            }
            item = from.next(), if held.is_none() => {
                let leaving = !matches!(
                    &item,
                    Some(Ok(Message::Text(_) | Message::Binary(_) | Message::Ping(_) | Message::Pong(_)))
                );
                *held = Some(item);
                if leaving {
                    return Written::SourceLeft;
                }
            }
            _ = &mut deadline => return Written::TimedOut,
        }
    }
}

/// One direction: reads `from`, writes `to`.
async fn pump<R, W>(mut p: Pump<'_>, mut from: R, mut to: W)
where
    R: Stream<Item = Result<Message, WsError>> + Unpin,
    W: Sink<Message, Error = WsError> + Unpin,
{
    let side = p.side;
    let (messages, bytes) = match side {
        Side::Client => (&p.metrics.up_messages, &p.metrics.up_bytes),
        Side::Backend => (&p.metrics.down_messages, &p.metrics.down_bytes),
    };
    let shared = p.shared;
    let close_started = p.close_started;
    let timeout = p.write_timeout;
    // Whether `to` can still take messages (false once a Close was sent to it).
    let mut to_open = true;
    let mut dirty = false;
    let mut failed = false;
    let mut signal_open = true;
    // What the source yielded while a write was blocked; handled before reading again.
    let mut held: Option<Item> = None;

    // The outcome of a write: `to` stays usable only if it completed.
    macro_rules! guarded_write {
        ($write:expr) => {{
            match guarded($write, &mut from, &mut held, timeout).await {
                Written::Ok => true,
                Written::Failed => {
                    to_open = false;
                    false
                }
                // What the source did is handled next; `to` may still take a Close.
                Written::SourceLeft => false,
                Written::TimedOut => {
                    to_open = false;
                    let cmd =
                        CloseCommand::new(1011, format!("{} write timeout", side.other().name()));
                    note_initiator(shared, "gateway", &cmd);
                    close_started.notify_one();
                    let _ = p.close_source.send(Some(cmd));
                    false
                }
            }
        }};
    }

    loop {
        // The close and keepalive signal is looked at on every iteration, not only when the
        // source is idle: a backend flooding a slower client must not keep the keepalive ping
        // (or a close) from going out.
        let signalled = signal_open && p.closing.has_changed().unwrap_or(false);
        let next = if signalled {
            None
        } else if let Some(item) = held.take() {
            Some(item)
        } else {
            match from.next().now_or_never() {
                Some(item) => Some(item),
                None => {
                    if dirty && to_open {
                        guarded_write!(to.flush());
                        dirty = false;
                    }
                    // What was read while the flush blocked comes first, in order.
                    if let Some(item) = held.take() {
                        Some(item)
                    } else {
                        let woke = tokio::select! {
                            biased;
                            changed = p.closing.changed(), if signal_open => {
                                if changed.is_err() {
                                    signal_open = false;
                                }
                                Woke::Signal
                            }
                            Some(frame) = next_injected(&mut p.injected) => Woke::Inject(frame),
                            item = from.next() => Woke::Source(item),
                        };
                        match woke {
                            Woke::Signal => None,
                            Woke::Source(item) => Some(item),
                            Woke::Inject(frame) => {
                                // An error frame for the client, about a message it sent.
                                if to_open {
                                    guarded_write!(to.send(frame));
                                }
                                continue;
                            }
                        }
                    }
                }
            }
        };
        let Some(next) = next else {
            if !signal_open {
                continue;
            }
            let cmd = p.closing.borrow_and_update().clone();
            match cmd {
                Some(cmd) if to_open => {
                    close_started.notify_one();
                    to_open = false;
                    guarded_write!(to.send(Message::Close(Some(cmd.frame()))));
                }
                Some(_) => {}
                None => {
                    // A wake-up for a keepalive ping (down pump only).
                    if side == Side::Backend && to_open {
                        let payload = Bytes::from_static(b"portico-keepalive");
                        guarded_write!(to.send(Message::Ping(payload)));
                    }
                }
            }
            continue;
        };
        let message = match next {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                close_started.notify_one();
                if failed {
                    return;
                }
                failed = true;
                // A peer that broke the protocol is told why, but only once the other side has
                // closed: what the other side still sends (say, the echo of the offender's last
                // valid message) is delivered first. The other pump sends it (it owns the writer).
                let told = error_code(&e);
                if let Some(code) = told {
                    let reason = match code {
                        1007 => "invalid UTF-8",
                        1009 => "message too large",
                        _ => "protocol error",
                    };
                    let cmd = CloseCommand::new(code, reason);
                    note_initiator(shared, "gateway", &cmd);
                    shared.lock().expect("relay state").fault[side.index()] = Some(cmd);
                }
                if to_open {
                    to_open = false;
                    let cmd = CloseCommand::new(1011, format!("{} connection lost", side.name()));
                    note_initiator(shared, side.name(), &cmd);
                    guarded_write!(to.send(Message::Close(Some(cmd.frame()))));
                }
                if told.is_none() {
                    return;
                }
                // Keep reading until the offender's close handshake completes or it goes away.
                continue;
            }
            None => {
                close_started.notify_one();
                if to_open {
                    let fault =
                        shared.lock().expect("relay state").fault[side.other().index()].take();
                    let cmd = fault.unwrap_or_else(|| {
                        CloseCommand::new(1011, format!("{} connection lost", side.name()))
                    });
                    note_initiator(shared, side.name(), &cmd);
                    let close = to.send(Message::Close(Some(cmd.frame())));
                    guarded(close, &mut from, &mut held, timeout).await;
                }
                return;
            }
        };
        if let Message::Close(frame) = &message {
            let cmd = frame
                .as_ref()
                .map(|f| CloseCommand::new(f.code.into(), f.reason.to_string()));
            let fault = {
                let mut s = shared.lock().expect("relay state");
                if s.report.initiator.is_empty() {
                    s.report.initiator = side.name();
                    s.report.code = cmd.as_ref().map(|c| c.code);
                    s.report.reason = cmd.as_ref().map(|c| c.reason.clone()).unwrap_or_default();
                }
                // If `to` broke the protocol, this Close completes the drain: now tell it why.
                s.fault[side.other().index()].take()
            };
            close_started.notify_one();
            if to_open {
                to_open = false;
                let reply = match fault {
                    Some(cmd) => Message::Close(Some(cmd.frame())),
                    None => Message::Close(frame.clone()),
                };
                guarded_write!(to.send(reply));
            }
            // Keep reading: the protocol layer completes this side's close handshake.
            continue;
        }
        // One lock and one clock read per message: this is the per-message path.
        let now = Instant::now();
        let forward = {
            let mut s = shared.lock().expect("relay state");
            if side == Side::Client {
                s.last_from_client = now;
            }
            match &message {
                Message::Text(_) | Message::Binary(_) => {
                    let len = message.len() as u64;
                    messages.inc();
                    bytes.inc_by(len);
                    s.last_data = now;
                    match side {
                        Side::Client => {
                            s.report.messages_up += 1;
                            s.report.bytes_up += len;
                        }
                        Side::Backend => {
                            s.report.messages_down += 1;
                            s.report.bytes_down += len;
                        }
                    }
                    Some(message)
                }
                Message::Ping(payload) => {
                    match side {
                        Side::Client => remember(&mut s.client_pings, payload),
                        Side::Backend => remember(&mut s.backend_pings, payload),
                    }
                    Some(message)
                }
                Message::Pong(payload) => {
                    // A pong answering a ping we forwarded (or our keepalive) was already answered.
                    let answered = match side {
                        Side::Client => forget(&mut s.backend_pings, payload),
                        Side::Backend => forget(&mut s.client_pings, payload),
                    };
                    (!answered).then_some(message)
                }
                Message::Close(_) | Message::Frame(_) => None,
            }
        };
        let forward = match (forward, &p.hook) {
            (Some(message @ (Message::Text(_) | Message::Binary(_))), Some(hook)) => {
                match hook.apply(message, shared).await {
                    Ok(forward) => forward,
                    Err(cmd) => {
                        close_started.notify_one();
                        if to_open {
                            to_open = false;
                            guarded_write!(to.send(Message::Close(Some(cmd.frame()))));
                        }
                        None
                    }
                }
            }
            (forward, _) => forward,
        };
        if let Some(message) = forward {
            if to_open && guarded_write!(to.feed(message)) {
                dirty = true;
            }
        }
    }
}

/// What woke an idle pump.
enum Woke {
    Signal,
    Source(Item),
    Inject(Message),
}

/// The traffic policies' hook in one pump: the connection's [`MessageGate`] decides each data
/// message. Error frames always go to the client (a backend that echoes would otherwise bounce
/// them back forever): the down pump puts one in place of the dropped message, the up pump hands
/// it to the down pump, which owns the client's writer. A close closes the side this pump reads
/// through its close channel (this pump closes its own writer). Without a gate: no hook, no channel.
struct PolicyHook<'a> {
    gate: &'a MessageGate,
    direction: Direction,
    /// Closes the side this pump reads from.
    close_sender: &'a watch::Sender<Option<CloseCommand>>,
    /// The up pump's way to the client's writer.
    to_client: Option<mpsc::Sender<Message>>,
}

type HookAndInjected<'a> = (Option<PolicyHook<'a>>, Option<mpsc::Receiver<Message>>);

impl<'a> PolicyHook<'a> {
    /// The up pump's and the down pump's hooks; the down pump also gets the frames to inject.
    fn pair(
        gate: Option<&'a MessageGate>,
        close_client: &'a watch::Sender<Option<CloseCommand>>,
        close_backend: &'a watch::Sender<Option<CloseCommand>>,
    ) -> [HookAndInjected<'a>; 2] {
        let Some(gate) = gate else {
            return [(None, None), (None, None)];
        };
        // Small and lossy: error frames beyond it are not sent (the messages are still dropped).
        let (to_client, for_client) = mpsc::channel(8);
        [
            (
                Some(PolicyHook {
                    gate,
                    direction: Direction::ClientToServer,
                    close_sender: close_client,
                    to_client: Some(to_client),
                }),
                None,
            ),
            (
                Some(PolicyHook {
                    gate,
                    direction: Direction::ServerToClient,
                    close_sender: close_backend,
                    to_client: None,
                }),
                Some(for_client),
            ),
        ]
    }

    /// `Ok(Some)`: write this; `Ok(None)`: dropped; `Err`: close both sides with this command.
    async fn apply(
        &self,
        message: Message,
        shared: &Arc<Mutex<Shared>>,
    ) -> Result<Option<Message>, CloseCommand> {
        match self.gate.inspect(self.direction, &message).await {
            Verdict::Forward => Ok(Some(message)),
            Verdict::Drop { frame } => match &self.to_client {
                Some(to_client) => {
                    let _ = to_client.try_send(Message::text(frame));
                    Ok(None)
                }
                None => Ok(Some(Message::text(frame))),
            },
            Verdict::Close { code, reason } => {
                let cmd = CloseCommand::new(code, reason);
                note_initiator(shared, "gateway", &cmd);
                let _ = self.close_sender.send(Some(cmd.clone()));
                Err(cmd)
            }
        }
    }
}

async fn next_injected(injected: &mut Option<mpsc::Receiver<Message>>) -> Option<Message> {
    match injected {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
