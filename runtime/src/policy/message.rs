//! The per-message entry point of the traffic policies: the relay calls
//! [`MessageGate::inspect`] for every data message in either direction and acts on the
//! [`Verdict`]. Cheapest first: the credential's per-direction scopes (a flag), then throttling
//! (an atomic operation per bucket), then validation (parsing and a schema check), so a throttled
//! flood costs no parsing.
//!
//! Everything here is built once per plan ([`ApiTraffic`], one per API) and once per connection
//! ([`MessageGate`]); a connection whose route has no throttling, no validation and no direction
//! its credential lacks the scopes for gets no gate at all, so with no policy the relay pays
//! nothing.

use std::collections::HashMap;
use std::sync::Arc;

use portico_compiler::plan::{
    Bucket, MessageDirection, OnThrottle, Plan, PlanApi, RouteSecurity, ValidationPolicy,
};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio_tungstenite::tungstenite::Message;

use crate::http::RequestHead;
use crate::policy::grant::Grant;
use crate::policy::handshake_contract::HandshakeContract;
use crate::policy::origin::check_origin;
use crate::policy::throttle::{
    resolve_bucket, BucketId, BucketSpec, Charge, ConnectionSlot, Decision, HandshakeCaps, Limiter,
    LocalLimiter, ResolvedBucket, ThrottlingConfig, Unit,
};
use crate::policy::validate::{Outcome, RouteValidator};
use crate::refusal::Refusal;

/// The way a message travels, from the client's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    ClientToServer,
    ServerToClient,
}

impl Direction {
    /// The metrics label, as the relay's own message counters name directions.
    pub fn label(self) -> &'static str {
        match self {
            Direction::ClientToServer => "client_to_backend",
            Direction::ServerToClient => "backend_to_client",
        }
    }
}

/// What the relay does with a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Forward,
    /// Do not relay it; send `frame` (a text frame) to the client instead.
    Drop {
        frame: String,
    },
    /// Close both sides with `code` and `reason`.
    Close {
        code: u16,
        reason: String,
    },
}

/// WSO2's close code and error frame text for throttling.
pub const THROTTLED_CODE: u16 = 4003;
pub const THROTTLED_TEXT: &str = "Websocket frame throttled out";
/// WSO2's code for a forbidden operation: sent in the error frame that replaces a message whose
/// direction needs scopes the credential lacks.
pub const FORBIDDEN_CODE: u16 = 4002;
pub const FORBIDDEN_TEXT: &str = "the credential lacks the scopes this direction requires";
/// Invalid payload data (RFC 6455): `enforce` closes with it.
pub const INVALID_CODE: u16 = 1007;
/// Policy violation (RFC 6455): a `strict` route closes with it for an undeclared direction.
pub const UNDECLARED_CODE: u16 = 1008;

fn error_frame(code: u16, message: &str) -> String {
    serde_json::json!({"error": {"code": code, "message": message}}).to_string()
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ThrottledLabels {
    pub api: String,
    pub route: String,
    pub direction: &'static str,
    /// The tier of the client bucket (`x-gateway.throttling.client`), `custom` or `none`.
    pub tier: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InvalidLabels {
    pub api: String,
    pub route: String,
    pub direction: &'static str,
    /// The JSON Schema keyword that failed, or `undeclared`.
    pub failure: String,
    pub policy: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabels {
    pub api: String,
    /// `origin`, `handshake_contract`, `connections_per_client` or `handshakes_per_second`.
    pub reason: &'static str,
}

/// Counters of the traffic policies. Labels are bounded: API names and route patterns come from
/// the plan, tiers from the plan, failures from JSON Schema's keywords.
#[derive(Default)]
pub struct PolicyMetrics {
    pub throttled: Family<ThrottledLabels, Counter>,
    pub invalid: Family<InvalidLabels, Counter>,
    pub refused: Family<RefusedLabels, Counter>,
}

impl PolicyMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "messages_throttled",
            "Messages dropped or closed on by throttling",
            self.throttled.clone(),
        );
        registry.register(
            "messages_invalid",
            "Messages that failed their direction's schemas (or came in an undeclared direction)",
            self.invalid.clone(),
        );
        registry.register(
            "handshakes_refused_by_policy",
            "Handshakes refused by origin, handshake contract or per-client caps",
            self.refused.clone(),
        );
    }
}

/// One route's compiled policies.
pub struct RoutePolicies {
    pattern: String,
    contract: Option<HandshakeContract>,
    validator: Option<RouteValidator>,
    /// Per-operation buckets by direction (client → server first).
    operation_buckets: [Vec<(BucketId, Unit)>; 2],
}

/// One API's traffic policies for one plan, built on load and reload.
pub struct ApiTraffic<L: Limiter = LocalLimiter> {
    api: String,
    origins: Vec<String>,
    caps: Option<HandshakeCaps>,
    limiter: L,
    /// API-wide and per-client buckets, charged by every message of every route.
    api_buckets: Vec<(BucketId, Unit)>,
    tier: String,
    on_throttle: OnThrottle,
    routes: HashMap<String, Arc<RoutePolicies>>,
    metrics: Arc<PolicyMetrics>,
}

impl ApiTraffic<LocalLimiter> {
    /// Compiles an API's policies. An error (an unknown tier, a schema that does not compile)
    /// means the API cannot be served as its spec says.
    pub fn compile(
        api: &PlanApi,
        config: &ThrottlingConfig,
        metrics: Arc<PolicyMetrics>,
    ) -> Result<ApiTraffic<LocalLimiter>, String> {
        let mut specs: Vec<BucketSpec> = Vec::new();
        let mut add =
            |bucket: &Bucket, per_client: bool| -> Result<Vec<(BucketId, Unit)>, String> {
                let ResolvedBucket {
                    messages,
                    bytes,
                    burst,
                } = resolve_bucket(bucket, config)?;
                let mut ids = Vec::new();
                for (rate, unit) in [(messages, Unit::Messages), (bytes, Unit::Bytes)] {
                    let Some(rate) = rate else { continue };
                    let burst = match unit {
                        Unit::Messages => burst.unwrap_or(rate.limit),
                        Unit::Bytes => rate.limit,
                    };
                    ids.push((BucketId(specs.len() as u32), unit));
                    specs.push(BucketSpec {
                        rate,
                        burst,
                        per_client,
                        unit,
                    });
                }
                Ok(ids)
            };
        let throttling = api.throttling.clone().unwrap_or_default();
        let mut api_buckets = Vec::new();
        if let Some(b) = &throttling.api {
            api_buckets.extend(add(b, false)?);
        }
        if let Some(b) = &throttling.client {
            api_buckets.extend(add(b, true)?);
        }
        let tier = match &throttling.client {
            Some(Bucket { tier: Some(t), .. }) => t.clone(),
            Some(_) => "custom".to_string(),
            None => "none".to_string(),
        };
        let mut routes = HashMap::new();
        for route in &api.routes {
            let mut operation_buckets: [Vec<(BucketId, Unit)>; 2] = Default::default();
            if let Some(t) = &route.throttling {
                for (i, list) in [&t.client_to_server, &t.server_to_client]
                    .into_iter()
                    .enumerate()
                {
                    for op in list {
                        operation_buckets[i].extend(add(&op.bucket, true)?);
                    }
                }
            }
            let contract = route
                .handshake
                .as_ref()
                .map(HandshakeContract::compile)
                .transpose()
                .map_err(|e| format!("{}: {e}", route.pattern))?;
            routes.insert(
                route.pattern.clone(),
                Arc::new(RoutePolicies {
                    pattern: route.pattern.clone(),
                    contract,
                    validator: RouteValidator::compile(route)?,
                    operation_buckets,
                }),
            );
        }
        let caps = (throttling.max_connections_per_client.is_some()
            || throttling.handshakes_per_second_per_client.is_some())
        .then(|| {
            HandshakeCaps::new(
                throttling.max_connections_per_client,
                throttling.handshakes_per_second_per_client,
            )
        });
        Ok(ApiTraffic {
            api: api.name.clone(),
            origins: api.origins.clone(),
            caps,
            limiter: LocalLimiter::new(&specs, config.max_tracked_clients),
            api_buckets,
            tier,
            on_throttle: throttling.on_throttle,
            routes,
            metrics,
        })
    }
}

/// The parts a gate is built from, kept until the credential is known.
type GateParts<L> = (Arc<ApiTraffic<L>>, Arc<RoutePolicies>, Arc<str>);

/// What a connection holds from the handshake: its per-client slot and its message gate.
pub struct Admission<L: Limiter = LocalLimiter> {
    pub slot: Option<ConnectionSlot>,
    /// `None` when the route has no per-message policy: nothing to call per message.
    pub gate: Option<MessageGate<L>>,
    /// For [`Admission::restrict_directions`].
    route: Option<GateParts<L>>,
}

impl<L: Limiter> Default for Admission<L> {
    fn default() -> Self {
        Admission {
            slot: None,
            gate: None,
            route: None,
        }
    }
}

/// Every API's traffic policies for one plan, by context; built on load and reload.
pub struct TrafficTable {
    apis: HashMap<String, Result<Arc<ApiTraffic>, String>>,
}

impl std::fmt::Debug for TrafficTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut apis: Vec<(&String, bool)> =
            self.apis.iter().map(|(k, v)| (k, v.is_ok())).collect();
        apis.sort();
        f.debug_struct("TrafficTable")
            .field("apis_ready", &apis)
            .finish()
    }
}

impl TrafficTable {
    /// Compiles each API's policies. An API whose policies cannot be built (an unknown tier, a
    /// schema that does not compile) is logged and refused with 503 rather than served without
    /// them.
    pub fn build(
        plan: &Plan,
        config: &ThrottlingConfig,
        metrics: &Arc<PolicyMetrics>,
    ) -> TrafficTable {
        let apis = plan
            .apis
            .iter()
            .map(|api| {
                let compiled = ApiTraffic::compile(api, config, metrics.clone()).map(Arc::new);
                if let Err(e) = &compiled {
                    tracing::error!(api = %api.name, version = %api.version, "not serving the API, its traffic policies cannot be set up: {e}");
                }
                (api.context.clone(), compiled)
            })
            .collect();
        TrafficTable { apis }
    }

    /// The handshake checks of the API at `context` for the route `pattern`.
    pub fn admit(
        &self,
        context: &str,
        pattern: &str,
        head: &RequestHead,
        client: Arc<str>,
    ) -> Result<Admission, Refusal> {
        self.check(context, pattern, head)?.admit(client)
    }

    /// The unauthenticated handshake checks of the API at `context` for the route `pattern`
    /// (origin, contract); the per-client ones follow with [`Checked::admit`].
    pub fn check(
        &self,
        context: &str,
        pattern: &str,
        head: &RequestHead,
    ) -> Result<Checked, Refusal> {
        match self.apis.get(context) {
            Some(Ok(traffic)) => traffic.check(pattern, head),
            Some(Err(_)) => Err(Refusal::new(
                503,
                "this API's traffic policies could not be set up; the gateway's log says why",
            )),
            // The plan is being swapped: fail closed, briefly.
            None => {
                Err(Refusal::new(503, "the gateway is reloading; retry").header("retry-after", "1"))
            }
        }
    }
}

impl<L: Limiter> ApiTraffic<L> {
    /// All the handshake checks at once ([`ApiTraffic::check`] then [`Checked::admit`]), for a
    /// caller that already knows the client's key.
    pub fn admit(
        self: &Arc<Self>,
        route: &str,
        head: &RequestHead,
        client: Arc<str>,
    ) -> Result<Admission<L>, Refusal> {
        self.check(route, head)?.admit(client)
    }

    /// The checks that need no identity, so they run before the credential is verified: origin
    /// (403), then the ws binding's contract (400). `route` is the matched route's pattern.
    pub fn check(self: &Arc<Self>, route: &str, head: &RequestHead) -> Result<Checked<L>, Refusal> {
        check_origin(&self.origins, head.header("origin"))
            .map_err(|r| self.refused("origin", r))?;
        let policies = self.routes.get(route).cloned();
        if let Some(contract) = policies.as_ref().and_then(|p| p.contract.as_ref()) {
            contract
                .check(head)
                .map_err(|r| self.refused("handshake_contract", r))?;
        }
        Ok(Checked {
            api: self.clone(),
            policies,
        })
    }

    fn refused(&self, reason: &'static str, refusal: Refusal) -> Refusal {
        self.metrics
            .refused
            .get_or_create(&RefusedLabels {
                api: self.api.clone(),
                reason,
            })
            .inc();
        refusal
    }
}

/// A handshake that passed its API's unauthenticated checks, waiting for the client's key
/// (known once the credential is verified) for the per-client caps and buckets.
pub struct Checked<L: Limiter = LocalLimiter> {
    api: Arc<ApiTraffic<L>>,
    policies: Option<Arc<RoutePolicies>>,
}

impl<L: Limiter> Checked<L> {
    /// The per-client caps (429) for `client` (the credential's identity, or the peer's address
    /// for an anonymous client; see [`Grant::client_key`]), and the connection's message gate,
    /// whose per-client buckets are `client`'s.
    pub fn admit(self, client: Arc<str>) -> Result<Admission<L>, Refusal> {
        let Checked { api, policies } = self;
        let slot = match &api.caps {
            Some(caps) => Some(caps.admit(&client).map_err(|r| {
                let reason = if r.text.contains("handshakes") {
                    "handshakes_per_second"
                } else {
                    "connections_per_client"
                };
                api.refused(reason, r)
            })?),
            None => None,
        };
        let gate = policies
            .as_ref()
            .and_then(|route| api.gate(route.clone(), client.clone(), [false; 2], false));
        let route = policies.map(|route| (api, route, client));
        Ok(Admission { slot, gate, route })
    }
}

impl<L: Limiter> ApiTraffic<L> {
    /// The gate of a connection to `route`, or `None` when it would have nothing to do (no
    /// throttling, no validation, no forbidden direction): then the relay pays nothing per message.
    fn gate(
        self: &Arc<Self>,
        route: Arc<RoutePolicies>,
        client: Arc<str>,
        forbidden: [bool; 2],
        always: bool,
    ) -> Option<MessageGate<L>> {
        let charges = |i: usize| -> Vec<(BucketId, Unit)> {
            self.api_buckets
                .iter()
                .chain(route.operation_buckets[i].iter())
                .copied()
                .collect()
        };
        let charges = [charges(0), charges(1)];
        let needed = always
            || forbidden.iter().any(|f| *f)
            || route.validator.is_some()
            || charges.iter().any(|c| !c.is_empty());
        needed.then(|| MessageGate {
            api: self.clone(),
            client,
            throttled: [Direction::ClientToServer, Direction::ServerToClient].map(|d| {
                self.metrics
                    .throttled
                    .get_or_create(&ThrottledLabels {
                        api: self.api.clone(),
                        route: route.pattern.clone(),
                        direction: d.label(),
                        tier: self.tier.clone(),
                    })
                    .clone()
            }),
            route,
            charges,
            forbidden,
        })
    }
}

impl<L: Limiter> Admission<L> {
    /// Applies the credential's per-direction scopes (known after the handshake's credential
    /// stage): a direction whose operations need scopes `grant` lacks is forbidden, and its
    /// messages are answered with a 4002 error frame instead of being relayed. A gate is added
    /// only when a direction is forbidden and the route had none.
    /// An anonymous grant (no credential checked) is not restricted.
    pub fn restrict_directions(mut self, grant: &Grant, security: &RouteSecurity) -> Self {
        if security.operations.is_empty() || grant.is_anonymous() {
            return self;
        }
        let forbidden = [
            MessageDirection::ClientToServer,
            MessageDirection::ServerToClient,
        ]
        .map(|d| !grant.may_send(security, d));
        if !forbidden.iter().any(|f| *f) {
            return self;
        }
        match (&mut self.gate, &self.route) {
            (Some(gate), _) => gate.forbidden = forbidden,
            (None, Some((api, route, client))) => {
                self.gate = api.gate(route.clone(), client.clone(), forbidden, true);
            }
            // No policies for the route (the table is being swapped): fail closed.
            (None, None) => {}
        }
        self
    }
}

/// One connection's per-message policies.
pub struct MessageGate<L: Limiter = LocalLimiter> {
    api: Arc<ApiTraffic<L>>,
    route: Arc<RoutePolicies>,
    client: Arc<str>,
    /// Buckets each direction's messages draw from (client → server first).
    charges: [Vec<(BucketId, Unit)>; 2],
    /// Counters looked up once, so a throttled message costs an atomic add.
    throttled: [Counter; 2],
    /// Directions the credential's scopes do not cover (client → server first).
    forbidden: [bool; 2],
}

/// Why a message the frame relay decided on is dropped; the client gets this error frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    Throttled,
    Forbidden,
}

impl DropReason {
    /// The text frame sent to the client in place of (or, client to server, for) the message.
    pub fn error_frame(self) -> String {
        match self {
            DropReason::Throttled => error_frame(THROTTLED_CODE, THROTTLED_TEXT),
            DropReason::Forbidden => error_frame(FORBIDDEN_CODE, FORBIDDEN_TEXT),
        }
    }
}

/// What the frame relay does with a message, decided on its first frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameVerdict {
    Forward,
    Drop(DropReason),
    Close { code: u16, reason: &'static str },
}

impl MessageGate<LocalLimiter> {
    /// Whether the frame relay can apply this gate: it decides a message on its first frame,
    /// before the payload is read, so the gate may need neither validation (the message whole)
    /// nor a bytes bucket (its length, unknown until its last fragment).
    pub fn decides_on_first_frame(&self) -> bool {
        self.route.validator.is_none()
            && self
                .charges
                .iter()
                .flatten()
                .all(|(_, unit)| *unit == Unit::Messages)
    }

    /// [`MessageGate::inspect`] for the frame relay: the direction's scopes, then its message
    /// buckets, for a message known only by its direction. Only for gates that
    /// [decide on the first frame](Self::decides_on_first_frame).
    pub fn admit_message(&self, direction: Direction) -> FrameVerdict {
        let side = match direction {
            Direction::ClientToServer => 0,
            Direction::ServerToClient => 1,
        };
        if self.forbidden[side] {
            return FrameVerdict::Drop(DropReason::Forbidden);
        }
        let plan = &self.charges[side];
        if plan.is_empty() {
            return FrameVerdict::Forward;
        }
        let charges: Vec<Charge<'_>> = plan
            .iter()
            .map(|(bucket, _)| Charge {
                bucket: *bucket,
                client: &self.client,
                cells: 1,
            })
            .collect();
        match self.api.limiter.decide_now(&charges) {
            Decision::Allow => FrameVerdict::Forward,
            Decision::Deny(_) => {
                self.throttled[side].inc();
                match self.api.on_throttle {
                    OnThrottle::Drop => FrameVerdict::Drop(DropReason::Throttled),
                    OnThrottle::Close => FrameVerdict::Close {
                        code: THROTTLED_CODE,
                        reason: THROTTLED_TEXT,
                    },
                }
            }
        }
    }
}

impl<L: Limiter> MessageGate<L> {
    /// Decides what happens to one message. Control frames are always forwarded.
    pub async fn inspect(&self, direction: Direction, message: &Message) -> Verdict {
        let (bytes, text) = match message {
            Message::Text(t) => (t.len(), Some(t.as_str())),
            Message::Binary(b) => (b.len(), None),
            _ => return Verdict::Forward,
        };
        let side = match direction {
            Direction::ClientToServer => 0,
            Direction::ServerToClient => 1,
        };
        if self.forbidden[side] {
            return Verdict::Drop {
                frame: error_frame(FORBIDDEN_CODE, FORBIDDEN_TEXT),
            };
        }
        let plan = &self.charges[side];
        if !plan.is_empty() {
            let cells = u32::try_from(bytes).unwrap_or(u32::MAX);
            let charges: Vec<Charge<'_>> = plan
                .iter()
                .map(|(bucket, unit)| Charge {
                    bucket: *bucket,
                    client: &self.client,
                    cells: match unit {
                        Unit::Messages => 1,
                        Unit::Bytes => cells,
                    },
                })
                .collect();
            if let Decision::Deny(_) = self.api.limiter.decide(&charges).await {
                self.throttled[side].inc();
                return match self.api.on_throttle {
                    OnThrottle::Drop => Verdict::Drop {
                        frame: error_frame(THROTTLED_CODE, THROTTLED_TEXT),
                    },
                    OnThrottle::Close => Verdict::Close {
                        code: THROTTLED_CODE,
                        reason: THROTTLED_TEXT.to_string(),
                    },
                };
            }
        }
        let (Some(validator), Some(text)) = (&self.route.validator, text) else {
            return Verdict::Forward;
        };
        let policy = validator.policy(direction);
        let (failure, code, reason) = match validator.check(direction, text) {
            Outcome::Valid | Outcome::Unchecked => return Verdict::Forward,
            Outcome::Invalid { pointer, keyword } => {
                let at = if pointer.is_empty() { "/" } else { &pointer };
                let reason = format!("invalid message at {at} ({keyword})");
                (keyword, INVALID_CODE, reason)
            }
            Outcome::Undeclared => (
                "undeclared".to_string(),
                UNDECLARED_CODE,
                format!(
                    "the API declares no message {}",
                    direction.label().replace('_', " ")
                ),
            ),
        };
        // A close reason must fit a control frame (123 bytes).
        let reason: String = clip(&reason, 123);
        self.api
            .metrics
            .invalid
            .get_or_create(&InvalidLabels {
                api: self.api.api.clone(),
                route: self.route.pattern.clone(),
                direction: direction.label(),
                failure: clip(&failure, 40),
                policy: match policy {
                    ValidationPolicy::Report => "report",
                    ValidationPolicy::Drop => "drop",
                    ValidationPolicy::Enforce => "enforce",
                },
            })
            .inc();
        match policy {
            ValidationPolicy::Report => {
                tracing::info!(api = %self.api.api, route = %self.route.pattern, direction = direction.label(), %reason, "message failed validation (reported, relayed)");
                Verdict::Forward
            }
            ValidationPolicy::Drop => Verdict::Drop {
                frame: error_frame(code, &reason),
            },
            ValidationPolicy::Enforce => Verdict::Close { code, reason },
        }
    }
}

fn clip(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use portico_compiler::plan::{
        ApiThrottling, Endpoints, HandshakeContract as PlanContract, Lifecycle, OperationBucket,
        Rate, Route, RouteAuth, RouteKind, RouteMessages, RouteThrottling, RouteValidation,
        SourceRef,
    };
    use prometheus_client::encoding::text::encode;
    use serde_json::json;

    fn route() -> Route {
        Route {
            topic: "/t".into(),
            pattern: "/a/1/t".into(),
            kind: RouteKind::Literal,
            backend_path: "/t".into(),
            parameters: vec![],
            channels: vec!["t".into()],
            messages: RouteMessages {
                client_to_server: vec![portico_compiler::plan::PlanMessage {
                    name: "post".into(),
                    schema: Some(json!({"type": "object", "required": ["text"]})),
                    examples: vec![],
                    generated_example: None,
                }],
                server_to_client: vec![],
            },
            scopes: vec![],
            auth: RouteAuth::None,
            handshake: None,
            throttling: None,
            validation: None,
            security: Default::default(),
        }
    }

    fn api(route: Route, throttling: Option<ApiThrottling>, origins: &[&str]) -> PlanApi {
        PlanApi {
            name: "a".into(),
            title: "A".into(),
            version: "1".into(),
            context: "/a/1".into(),
            context_template: "/a".into(),
            default_context: None,
            lifecycle: Lifecycle::Published,
            endpoints: Endpoints {
                production: "echo:".into(),
                sandbox: None,
            },
            limits: Default::default(),
            origins: origins.iter().map(|s| s.to_string()).collect(),
            throttling,
            source: SourceRef {
                file: "a.yaml".into(),
                sha256: "x".into(),
            },
            routes: vec![route],
        }
    }

    fn messages(limit: u64) -> Bucket {
        Bucket {
            messages: Some(Rate {
                limit,
                period_seconds: 3600,
            }),
            ..Bucket::default()
        }
    }

    fn head(headers: &[(&str, &str)]) -> RequestHead {
        RequestHead {
            method: "GET".into(),
            version: 1,
            path: "/a/1/t".into(),
            query: None,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn traffic(api: &PlanApi) -> (Arc<ApiTraffic>, Arc<PolicyMetrics>) {
        let metrics = Arc::new(PolicyMetrics::default());
        let t = ApiTraffic::compile(api, &ThrottlingConfig::default(), metrics.clone())
            .expect("compiles");
        (Arc::new(t), metrics)
    }

    fn gate(t: &Arc<ApiTraffic>, client: &str) -> MessageGate {
        t.admit("/a/1/t", &head(&[]), Arc::from(client))
            .expect("admitted")
            .gate
            .expect("a gate")
    }

    fn text(s: &str) -> Message {
        Message::text(s)
    }

    fn run<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn no_policy_means_no_gate() {
        let (t, _) = traffic(&api(route(), None, &[]));
        let admission = t
            .admit("/a/1/t", &head(&[]), Arc::from("c"))
            .expect("admitted");
        assert!(admission.gate.is_none() && admission.slot.is_none());
    }

    #[test]
    fn a_direction_the_scopes_do_not_cover_is_answered_with_4002() {
        use portico_compiler::plan::OperationScopes;
        let security = RouteSecurity {
            schemes: vec![],
            operations: vec![
                OperationScopes {
                    direction: MessageDirection::ClientToServer,
                    scopes: vec!["chat:write".into()],
                },
                OperationScopes {
                    direction: MessageDirection::ServerToClient,
                    scopes: vec!["chat:read".into()],
                },
            ],
        };
        let grant = |scopes: &[&str]| Grant {
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            ..Grant::default()
        };
        let (t, _) = traffic(&api(route(), None, &[]));
        let admit = || t.admit("/a/1/t", &head(&[]), Arc::from("c")).unwrap();
        // Both directions covered, or no scopes at all: still no gate, nothing per message.
        let both = admit().restrict_directions(&grant(&["chat:read", "chat:write"]), &security);
        assert!(both.gate.is_none());
        let open = admit().restrict_directions(&grant(&[]), &RouteSecurity::default());
        assert!(open.gate.is_none());
        let unchecked = admit().restrict_directions(&Grant::anonymous(), &security);
        assert!(
            unchecked.gate.is_none(),
            "an unchecked route is not restricted"
        );
        // A reader may receive; its sends are replaced by an error frame.
        let reader = admit()
            .restrict_directions(&grant(&["chat:read"]), &security)
            .gate
            .expect("a gate for the forbidden direction");
        run(async {
            assert_eq!(
                reader.inspect(Direction::ClientToServer, &text("hi")).await,
                Verdict::Drop {
                    frame: format!(r#"{{"error":{{"code":4002,"message":"{FORBIDDEN_TEXT}"}}}}"#)
                }
            );
            assert!(matches!(
                reader
                    .inspect(Direction::ClientToServer, &Message::binary(vec![1u8]))
                    .await,
                Verdict::Drop { .. }
            ));
            assert_eq!(
                reader
                    .inspect(Direction::ServerToClient, &text(r#"{"text":"x"}"#))
                    .await,
                Verdict::Forward
            );
            assert_eq!(
                reader
                    .inspect(Direction::ClientToServer, &Message::Ping(vec![].into()))
                    .await,
                Verdict::Forward,
                "control frames pass"
            );
        });
        // A route that already has a gate (validation) gets the restriction added to it.
        let mut validated = route();
        validated.validation = Some(RouteValidation {
            client_to_server: ValidationPolicy::Enforce,
            server_to_client: ValidationPolicy::Enforce,
            strict: false,
        });
        let (t, _) = traffic(&api(validated, None, &[]));
        let writer = t
            .admit("/a/1/t", &head(&[]), Arc::from("c"))
            .unwrap()
            .restrict_directions(&grant(&["chat:write"]), &security)
            .gate
            .expect("a gate");
        run(async {
            assert!(matches!(
                writer.inspect(Direction::ServerToClient, &text("x")).await,
                Verdict::Drop { .. }
            ));
        });
    }

    #[test]
    fn throttling_counts_both_directions_and_refuses_at_exactly_the_limit() {
        for first in [Direction::ClientToServer, Direction::ServerToClient] {
            let throttling = ApiThrottling {
                client: Some(messages(4)),
                ..ApiThrottling::default()
            };
            let (t, metrics) = traffic(&api(route(), Some(throttling), &[]));
            let g = gate(&t, "alice");
            run(async {
                let other = match first {
                    Direction::ClientToServer => Direction::ServerToClient,
                    Direction::ServerToClient => Direction::ClientToServer,
                };
                // 4 messages in all, 2 each way, pass; the 5th is refused, whichever its way.
                for d in [first, other, first, other] {
                    assert_eq!(
                        g.inspect(d, &text(r#"{"text":"x"}"#)).await,
                        Verdict::Forward
                    );
                }
                let v = g.inspect(first, &text(r#"{"text":"x"}"#)).await;
                assert_eq!(
                    v,
                    Verdict::Drop {
                        frame:
                            r#"{"error":{"code":4003,"message":"Websocket frame throttled out"}}"#
                                .into()
                    }
                );
                assert!(matches!(
                    g.inspect(other, &Message::binary(vec![1u8])).await,
                    Verdict::Drop { .. }
                ));
                // Control frames are never throttled.
                assert_eq!(
                    g.inspect(first, &Message::Ping(vec![].into())).await,
                    Verdict::Forward
                );
                // Another client has its own bucket.
                assert_eq!(
                    gate(&t, "bob").inspect(first, &text("x")).await,
                    Verdict::Forward
                );
            });
            let mut out = String::new();
            let mut registry = Registry::default();
            metrics.register(&mut registry);
            encode(&mut out, &registry).unwrap();
            assert!(
                out.contains(&format!("direction=\"{}\"", first.label())),
                "{out}"
            );
            assert!(out.contains("tier=\"custom\""), "{out}");
        }
    }

    #[test]
    fn the_frame_relay_takes_gates_that_decide_on_the_first_frame() {
        let throttling = ApiThrottling {
            client: Some(messages(2)),
            ..ApiThrottling::default()
        };
        let (t, _) = traffic(&api(route(), Some(throttling), &[]));
        let g = gate(&t, "alice");
        assert!(g.decides_on_first_frame());
        // The same buckets as `inspect`, one draw per message, both ways.
        assert_eq!(
            g.admit_message(Direction::ClientToServer),
            FrameVerdict::Forward
        );
        assert_eq!(
            g.admit_message(Direction::ServerToClient),
            FrameVerdict::Forward
        );
        assert_eq!(
            g.admit_message(Direction::ClientToServer),
            FrameVerdict::Drop(DropReason::Throttled)
        );
        assert_eq!(
            DropReason::Throttled.error_frame(),
            r#"{"error":{"code":4003,"message":"Websocket frame throttled out"}}"#
        );
        let closing = ApiThrottling {
            api: Some(messages(1)),
            on_throttle: OnThrottle::Close,
            ..ApiThrottling::default()
        };
        let (t, _) = traffic(&api(route(), Some(closing), &[]));
        let g = gate(&t, "a");
        assert_eq!(
            g.admit_message(Direction::ServerToClient),
            FrameVerdict::Forward
        );
        assert_eq!(
            g.admit_message(Direction::ServerToClient),
            FrameVerdict::Close {
                code: 4003,
                reason: THROTTLED_TEXT
            }
        );
        // A bytes bucket needs the message's length, validation the whole message: neither is
        // decided on a first frame.
        let bytes = ApiThrottling {
            client: Some(Bucket {
                bytes: Some(Rate {
                    limit: 1000,
                    period_seconds: 60,
                }),
                ..Bucket::default()
            }),
            ..ApiThrottling::default()
        };
        let (t, _) = traffic(&api(route(), Some(bytes), &[]));
        assert!(!gate(&t, "a").decides_on_first_frame());
        let (t, _) = validated(ValidationPolicy::Report, ValidationPolicy::Report, false);
        assert!(!gate(&t, "a").decides_on_first_frame());
    }

    #[test]
    fn close_on_throttle_closes_with_4003() {
        let throttling = ApiThrottling {
            api: Some(messages(1)),
            on_throttle: OnThrottle::Close,
            ..ApiThrottling::default()
        };
        let (t, _) = traffic(&api(route(), Some(throttling), &[]));
        let g = gate(&t, "a");
        run(async {
            assert_eq!(
                g.inspect(Direction::ServerToClient, &text("1")).await,
                Verdict::Forward
            );
            assert_eq!(
                g.inspect(Direction::ServerToClient, &text("2")).await,
                Verdict::Close {
                    code: 4003,
                    reason: THROTTLED_TEXT.into()
                }
            );
            // The API bucket is shared: another client is throttled too.
            assert!(matches!(
                gate(&t, "b")
                    .inspect(Direction::ClientToServer, &text("3"))
                    .await,
                Verdict::Close { .. }
            ));
        });
    }

    #[test]
    fn operation_buckets_count_only_their_direction() {
        let mut r = route();
        r.throttling = Some(RouteThrottling {
            client_to_server: vec![OperationBucket {
                operation: "post".into(),
                bucket: messages(2),
            }],
            server_to_client: vec![],
        });
        let (t, _) = traffic(&api(r, None, &[]));
        let g = gate(&t, "a");
        run(async {
            for _ in 0..5 {
                assert_eq!(
                    g.inspect(Direction::ServerToClient, &text("e")).await,
                    Verdict::Forward
                );
            }
            assert_eq!(
                g.inspect(Direction::ClientToServer, &text("1")).await,
                Verdict::Forward
            );
            assert_eq!(
                g.inspect(Direction::ClientToServer, &text("2")).await,
                Verdict::Forward
            );
            assert!(matches!(
                g.inspect(Direction::ClientToServer, &text("3")).await,
                Verdict::Drop { .. }
            ));
        });
    }

    fn validated(
        c2s: ValidationPolicy,
        s2c: ValidationPolicy,
        strict: bool,
    ) -> (Arc<ApiTraffic>, Arc<PolicyMetrics>) {
        let mut r = route();
        r.messages.server_to_client = r.messages.client_to_server.clone();
        if strict {
            r.messages.server_to_client.clear();
        }
        r.validation = Some(RouteValidation {
            client_to_server: c2s,
            server_to_client: s2c,
            strict,
        });
        traffic(&api(r, None, &[]))
    }

    #[test]
    fn each_validation_policy_in_each_direction() {
        use ValidationPolicy::*;
        for direction in [Direction::ClientToServer, Direction::ServerToClient] {
            for policy in [Enforce, Drop, Report] {
                let (t, metrics) = validated(policy, policy, false);
                let g = gate(&t, "a");
                let (valid, invalid, not_json) = run(async {
                    (
                        g.inspect(direction, &text(r#"{"text":"hi"}"#)).await,
                        g.inspect(direction, &text(r#"{"txt":"hi"}"#)).await,
                        g.inspect(direction, &text("hello")).await,
                    )
                });
                assert_eq!(valid, Verdict::Forward);
                assert_eq!(not_json, Verdict::Forward, "non-JSON passes");
                let expected = match policy {
                    Enforce => Verdict::Close {
                        code: 1007,
                        reason: "invalid message at / (required)".into(),
                    },
                    Drop => Verdict::Drop {
                        frame:
                            r#"{"error":{"code":1007,"message":"invalid message at / (required)"}}"#
                                .into(),
                    },
                    Report => Verdict::Forward,
                };
                assert_eq!(invalid, expected, "{policy:?} {direction:?}");
                let labels = InvalidLabels {
                    api: "a".into(),
                    route: "/a/1/t".into(),
                    direction: direction.label(),
                    failure: "required".into(),
                    policy: match policy {
                        Enforce => "enforce",
                        Drop => "drop",
                        Report => "report",
                    },
                };
                assert_eq!(metrics.invalid.get_or_create(&labels).get(), 1, "counted");
            }
        }
    }

    #[test]
    fn the_failing_pointer_is_in_the_close_reason() {
        let mut r = route();
        r.messages.client_to_server[0].schema =
            Some(json!({"type": "object", "properties": {"n": {"type": "integer"}}}));
        r.validation = Some(RouteValidation {
            client_to_server: ValidationPolicy::Enforce,
            server_to_client: ValidationPolicy::Enforce,
            strict: false,
        });
        let (t, _) = traffic(&api(r, None, &[]));
        let v = run(gate(&t, "a").inspect(Direction::ClientToServer, &text(r#"{"n":"x"}"#)));
        assert_eq!(
            v,
            Verdict::Close {
                code: 1007,
                reason: "invalid message at /n (type)".into()
            }
        );
    }

    #[test]
    fn an_undeclared_direction_is_relayed_unless_strict() {
        let (t, _) = validated(ValidationPolicy::Enforce, ValidationPolicy::Enforce, true);
        let v = run(gate(&t, "a").inspect(Direction::ServerToClient, &text(r#"{"text":"x"}"#)));
        assert!(matches!(v, Verdict::Close { code: 1008, .. }), "{v:?}");
        let (t, _) = validated(ValidationPolicy::Drop, ValidationPolicy::Drop, true);
        let v = run(gate(&t, "a").inspect(Direction::ServerToClient, &text(r#"{"text":"x"}"#)));
        assert!(matches!(v, Verdict::Drop { .. }), "{v:?}");
        let mut r = route();
        r.validation = Some(RouteValidation {
            client_to_server: ValidationPolicy::Enforce,
            server_to_client: ValidationPolicy::Enforce,
            strict: false,
        });
        let (t, _) = traffic(&api(r, None, &[]));
        let v = run(gate(&t, "a").inspect(Direction::ServerToClient, &text(r#"{"anything":1}"#)));
        assert_eq!(v, Verdict::Forward);
    }

    #[test]
    fn throttling_comes_before_validation() {
        let mut r = route();
        r.validation = Some(RouteValidation {
            client_to_server: ValidationPolicy::Enforce,
            server_to_client: ValidationPolicy::Enforce,
            strict: false,
        });
        let throttling = ApiThrottling {
            client: Some(messages(1)),
            ..ApiThrottling::default()
        };
        let (t, metrics) = traffic(&api(r, Some(throttling), &[]));
        let g = gate(&t, "a");
        run(async {
            assert_eq!(
                g.inspect(Direction::ClientToServer, &text(r#"{"text":"ok"}"#))
                    .await,
                Verdict::Forward
            );
            assert!(matches!(
                g.inspect(Direction::ClientToServer, &text(r#"{"bad":1}"#))
                    .await,
                Verdict::Drop { .. }
            ));
        });
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let mut out = String::new();
        encode(&mut out, &registry).unwrap();
        assert!(
            !out.contains("portico_messages_invalid_total{")
                && !out.contains("messages_invalid_total{"),
            "the throttled message was not parsed: {out}"
        );
    }

    #[test]
    fn the_handshake_checks_origin_contract_and_caps_in_order() {
        let mut r = route();
        r.handshake = Some(PlanContract {
            query: None,
            headers: Some(
                json!({"type": "object", "properties": {"x-room": {"type": "integer"}}, "required": ["x-room"]}),
            ),
        });
        let throttling = ApiThrottling {
            max_connections_per_client: Some(1),
            ..ApiThrottling::default()
        };
        let (t, metrics) = traffic(&api(r, Some(throttling), &["https://*.example.com"]));
        let client = || Arc::<str>::from("c");
        let refused = t
            .admit(
                "/a/1/t",
                &head(&[("origin", "https://evil.io"), ("x-room", "1")]),
                client(),
            )
            .err()
            .unwrap();
        assert_eq!(refused.status, 403);
        let refused = t
            .admit(
                "/a/1/t",
                &head(&[("origin", "https://app.example.com")]),
                client(),
            )
            .err()
            .unwrap();
        assert_eq!(refused.status, 400);
        let ok = head(&[("origin", "https://app.example.com"), ("x-room", "7")]);
        let first = t.admit("/a/1/t", &ok, client()).expect("admitted");
        assert!(first.slot.is_some());
        let refused = t.admit("/a/1/t", &ok, client()).err().unwrap();
        assert_eq!(refused.status, 429);
        drop(first);
        assert!(t.admit("/a/1/t", &ok, client()).is_ok());
        for reason in ["origin", "handshake_contract", "connections_per_client"] {
            assert_eq!(
                metrics
                    .refused
                    .get_or_create(&RefusedLabels {
                        api: "a".into(),
                        reason
                    })
                    .get(),
                1,
                "{reason}"
            );
        }
    }

    #[test]
    fn an_unknown_tier_is_an_error_at_load() {
        let throttling = ApiThrottling {
            client: Some(Bucket {
                tier: Some("Platinum".into()),
                ..Bucket::default()
            }),
            ..ApiThrottling::default()
        };
        let error = ApiTraffic::compile(
            &api(route(), Some(throttling), &[]),
            &ThrottlingConfig::default(),
            Arc::default(),
        )
        .err()
        .expect("an error");
        assert!(error.contains("Platinum"), "{error}");
    }
}
