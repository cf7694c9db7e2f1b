//! The routing plan: the only contract between the compiler and the runtime.
//!
//! One JSON document, versioned by [`PLAN_VERSION`], byte-identical for the same input (APIs and
//! routes are sorted, maps are ordered, paths are relative to the compiled folder), carrying a
//! SHA-256 of its own content so that logs, metrics and docs can name the plan they belong to.
//! The format is documented in `docs/plan-format.md` and by `docs/plan.schema.json`.
//!
//! ```
//! use portico_compiler::plan::{Plan, PLAN_VERSION};
//! let plan = Plan::new(vec![]);
//! assert_eq!(plan.plan_version, PLAN_VERSION);
//! let again = Plan::from_json(&plan.to_json()).unwrap();
//! assert_eq!(again.hash, plan.hash);
//! ```

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Bumped on every change a runtime of the previous version could misread.
pub const PLAN_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Plan {
    pub plan_version: u32,
    /// `sha256:<hex>` of the plan serialized with an empty `hash`.
    pub hash: String,
    pub apis: Vec<PlanApi>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Lifecycle {
    Created,
    Prototyped,
    Published,
    Deprecated,
    Blocked,
    Retired,
}

impl Lifecycle {
    pub const NAMES: [&'static str; 6] = [
        "CREATED",
        "PROTOTYPED",
        "PUBLISHED",
        "DEPRECATED",
        "BLOCKED",
        "RETIRED",
    ];

    /// Parses WSO2's names, case-insensitively (apictl writes `Published` in some versions).
    pub fn parse(text: &str) -> Option<Lifecycle> {
        Some(match text.to_ascii_uppercase().as_str() {
            "CREATED" => Lifecycle::Created,
            "PROTOTYPED" => Lifecycle::Prototyped,
            "PUBLISHED" => Lifecycle::Published,
            "DEPRECATED" => Lifecycle::Deprecated,
            "BLOCKED" => Lifecycle::Blocked,
            "RETIRED" => Lifecycle::Retired,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// Whether an API in this state accepts connections (and keeps its live ones). The one rule
    /// the runtime's handshake and a reload's [`crate::plan_diff::PlanDiff`] both follow, so they
    /// cannot disagree: PUBLISHED, DEPRECATED and PROTOTYPED are served; CREATED, BLOCKED and
    /// RETIRED are not.
    pub fn admits(self) -> bool {
        matches!(
            self,
            Lifecycle::Published | Lifecycle::Deprecated | Lifecycle::Prototyped
        )
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlanApi {
    /// URL- and file-safe name derived from the title (`Chat API` → `chat-api`).
    pub name: String,
    pub title: String,
    pub version: String,
    /// The context with `{version}` substituted: every route of this API starts with it.
    pub context: String,
    /// The context as written (may contain `{version}`).
    pub context_template: String,
    /// With `defaultVersion`: the context clients use without a version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_context: Option<String>,
    pub lifecycle: Lifecycle,
    pub endpoints: Endpoints,
    #[serde(default, skip_serializing_if = "ApiLimits::is_empty")]
    pub limits: ApiLimits,
    /// `x-gateway.origins`: the `Origin`s allowed to connect (`*` wildcards in the host); empty
    /// means any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub origins: Vec<String>,
    /// `x-gateway.throttling` without its per-operation part (that is on each route).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttling: Option<ApiThrottling>,
    pub source: SourceRef,
    pub routes: Vec<Route>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Endpoints {
    /// `ws://…`, `wss://…`, `echo:` or `mock:`; never ends with `/`.
    pub production: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_message_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_frame_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_seconds: Option<u64>,
}

impl ApiLimits {
    pub fn is_empty(&self) -> bool {
        *self == ApiLimits::default()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SourceRef {
    /// Path of the spec, relative to the folder that was compiled, with `/` separators.
    pub file: String,
    /// `sha256:<hex>` of the spec file's bytes.
    pub sha256: String,
}

/// How specific a route is; routes are matched most specific first.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RouteKind {
    /// Every segment is literal.
    Literal,
    /// Some segments are `{parameters}`.
    Template,
    /// Ends with `*` (WSO2's default topic `/*`): matches any remaining path.
    Wildcard,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Route {
    /// The channel address after the context (`/rooms/{roomId}`).
    pub topic: String,
    /// The full public path pattern (`/chat/1.0.0/rooms/{roomId}`).
    pub pattern: String,
    pub kind: RouteKind,
    /// Path of the backend URL after the endpoint, with `{name}` placeholders (always
    /// percent-encoded on substitution) and `{*}` for a wildcard's remainder.
    pub backend_path: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<RouteParameter>,
    /// Ids of the channels merged into this route (several channels may share one address).
    pub channels: Vec<String>,
    pub messages: RouteMessages,
    /// Scopes a credential needs for this route (union over its operations).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    pub auth: RouteAuth,
    /// The ws channel binding's `query` and `headers` schemas, checked at the handshake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handshake: Option<HandshakeContract>,
    /// Per-operation buckets of `x-gateway.throttling.operations`, by direction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttling: Option<RouteThrottling>,
    /// `x-gateway.validation` resolved for this route's operations; absent: messages are not
    /// validated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<RouteValidation>,
    /// Which credentials the route accepts and the scopes each operation needs, so the runtime
    /// can verify them. Never holds a secret: secrets live in the runtime configuration.
    #[serde(default, skip_serializing_if = "RouteSecurity::is_empty")]
    pub security: RouteSecurity,
}

/// What a route requires of a credential, lowered from the spec's security schemes, `security`
/// requirements and WSO2's `x-scopes`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteSecurity {
    /// The schemes a credential may satisfy; empty means any of the gateway's verifiers (WSO2
    /// exports name no scheme a gateway can act on).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schemes: Vec<SecurityRequirement>,
    /// Each operation's direction and scopes: the handshake needs the scopes of at least one
    /// operation; a message needs those of at least one operation of its direction.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<OperationScopes>,
}

impl RouteSecurity {
    pub fn is_empty(&self) -> bool {
        self.schemes.is_empty() && self.operations.is_empty()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecurityRequirement {
    /// The scheme's key in `components.securitySchemes`.
    pub name: String,
    pub kind: SchemeKind,
}

/// The credential a scheme asks for.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type", deny_unknown_fields)]
pub enum SchemeKind {
    /// `http` with `scheme: bearer`: a JWT in `Authorization: Bearer` (or its fallbacks).
    Bearer,
    /// `oauth2`: a JWT access token.
    Oauth2,
    /// `openIdConnect`: a JWT.
    OpenIdConnect,
    /// `httpApiKey` / `apiKey`: an API key, where the spec says (`header`, `query`, `user`,
    /// `password`, `cookie`) under `name` when it gives one.
    ApiKey {
        #[serde(rename = "in")]
        location: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// A scheme the gateway cannot verify on a WebSocket (`userPassword`, `X509`, `http` basic
    /// ...): a route that requires only such schemes is not served (fail closed).
    Unsupported {
        #[serde(rename = "scheme")]
        declared: String,
    },
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MessageDirection {
    ClientToServer,
    ServerToClient,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OperationScopes {
    pub direction: MessageDirection,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
}

/// What a client must send in its handshake (AsyncAPI `bindings.ws`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HandshakeContract {
    /// JSON Schema (type object) of the query parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<Value>,
    /// JSON Schema (type object) of the request headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Value>,
}

/// A rate: `limit` units per `periodSeconds` (`1000/min` → 1000 per 60).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rate {
    pub limit: u64,
    pub period_seconds: u64,
}

impl Rate {
    /// `1000/min`, `1M/day`, `50/s`, `10K/hour`, `5 / second`; `None` for anything else.
    pub fn parse(text: &str) -> Option<Rate> {
        let (count, unit) = text.split_once('/')?;
        let count = count.trim();
        let (digits, factor) = match count.char_indices().last()? {
            (i, 'k' | 'K') => (&count[..i], 1_000),
            (i, 'm' | 'M') => (&count[..i], 1_000_000),
            (i, 'g' | 'G') => (&count[..i], 1_000_000_000),
            _ => (count, 1),
        };
        if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let limit = digits.parse::<u64>().ok()?.checked_mul(factor)?;
        let period_seconds = match unit.trim() {
            "s" | "sec" | "second" => 1,
            "min" | "minute" => 60,
            "h" | "hour" => 3_600,
            "d" | "day" => 86_400,
            _ => return None,
        };
        (limit > 0).then_some(Rate {
            limit,
            period_seconds,
        })
    }
}

/// One token bucket: messages and/or bytes, or a tier named in the runtime configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Bucket {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<Rate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<Rate>,
    /// Most messages accepted at once; defaults to the rate's `limit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u64>,
}

/// What a throttled message costs the connection.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OnThrottle {
    /// Drop the message and send the sender WSO2's error frame (4003).
    #[default]
    Drop,
    /// Close the connection with 4003.
    Close,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiThrottling {
    /// Shared by every client of the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<Bucket>,
    /// Each client (credential subject or API key) on its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<Bucket>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections_per_client: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handshakes_per_second_per_client: Option<u64>,
    #[serde(default)]
    pub on_throttle: OnThrottle,
}

/// Per-operation buckets, counted per client, by the direction of their operation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteThrottling {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client_to_server: Vec<OperationBucket>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub server_to_client: Vec<OperationBucket>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OperationBucket {
    pub operation: String,
    pub bucket: Bucket,
}

/// What happens to a message that fails its direction's schemas.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ValidationPolicy {
    /// Relay it, count it, log it.
    Report,
    /// Drop it and send the sender an error frame.
    Drop,
    /// Close the connection with 1007 and the failing JSON pointer.
    Enforce,
}

impl ValidationPolicy {
    pub const NAMES: [&'static str; 3] = ["report", "drop", "enforce"];

    pub fn parse(text: &str) -> Option<ValidationPolicy> {
        Some(match text {
            "report" => ValidationPolicy::Report,
            "drop" => ValidationPolicy::Drop,
            "enforce" => ValidationPolicy::Enforce,
            _ => return None,
        })
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteValidation {
    pub client_to_server: ValidationPolicy,
    pub server_to_client: ValidationPolicy,
    /// A direction with no operation is refused (1008 under `enforce`) instead of relayed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub strict: bool,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RouteAuth {
    /// A credential is required (WSO2 `x-auth-type: Any`, the default).
    Required,
    /// Open (WSO2 `x-auth-type: None`).
    None,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteParameter {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteMessages {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client_to_server: Vec<PlanMessage>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub server_to_client: Vec<PlanMessage>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlanMessage {
    pub name: String,
    /// The payload's JSON Schema with every `$ref` resolved (absent for non-JSON-Schema formats).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    /// Examples from the spec, for the built-in mock backend.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<Value>,
    /// A value generated from `schema` when the spec gives no example, so the built-in mock
    /// backend plays something plausible without a compiler at run time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated_example: Option<Value>,
}

impl PlanMessage {
    /// A message as the plan carries it: with a generated example exactly when the spec has no
    /// example and the payload is a JSON Schema.
    pub fn new(name: String, schema: Option<Value>, examples: Vec<Value>) -> PlanMessage {
        let generated_example = match (&schema, examples.is_empty()) {
            (Some(schema), true) => Some(crate::examples::from_schema(schema)),
            _ => None,
        };
        PlanMessage {
            name,
            schema,
            examples,
            generated_example,
        }
    }
}

/// Why a plan file could not be loaded.
#[derive(Debug)]
pub enum PlanError {
    Json(serde_json::Error),
    Version(u32),
    Hash { stated: String, actual: String },
}

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlanError::Json(e) => write!(f, "not a valid plan: {e}"),
            PlanError::Version(v) => write!(
                f,
                "plan version {v} is not supported (this build reads version {PLAN_VERSION}); recompile the specs"
            ),
            PlanError::Hash { stated, actual } => write!(
                f,
                "the plan's hash {stated} does not match its content ({actual}): it was edited by hand or truncated"
            ),
        }
    }
}

impl std::error::Error for PlanError {}

impl Plan {
    /// Builds a plan, sorting APIs by context so that the output is deterministic.
    pub fn new(mut apis: Vec<PlanApi>) -> Plan {
        apis.sort_by(|a, b| a.context.cmp(&b.context).then(a.version.cmp(&b.version)));
        let mut plan = Plan {
            plan_version: PLAN_VERSION,
            hash: String::new(),
            apis,
        };
        plan.hash = plan.compute_hash();
        plan
    }

    fn compute_hash(&self) -> String {
        let mut unhashed = self.clone();
        unhashed.hash = String::new();
        let bytes = serde_json::to_vec(&unhashed).expect("plan serializes");
        format!("sha256:{:x}", Sha256::digest(&bytes))
    }

    /// Pretty JSON with a trailing newline: the artifact written to `plan.json`.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("plan serializes");
        s.push('\n');
        s
    }

    /// Reads a plan, checking its version and that its hash matches its content.
    pub fn from_json(text: &str) -> Result<Plan, PlanError> {
        let value: Value = serde_json::from_str(text).map_err(PlanError::Json)?;
        let version = value
            .get("planVersion")
            .and_then(Value::as_u64)
            .unwrap_or(0) as u32;
        if version != PLAN_VERSION {
            return Err(PlanError::Version(version));
        }
        let plan: Plan = serde_json::from_value(value).map_err(PlanError::Json)?;
        let actual = plan.compute_hash();
        if actual != plan.hash {
            return Err(PlanError::Hash {
                stated: plan.hash,
                actual,
            });
        }
        Ok(plan)
    }
}

/// `Chat API` → `chat-api`: lowercase ASCII letters and digits joined by single dashes.
pub fn slug(title: &str) -> String {
    let mut out = String::new();
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    if out.is_empty() {
        out.push_str("api");
    }
    out
}

/// The kind of a path pattern (`/a/{b}` → template).
pub fn route_kind(pattern: &str) -> RouteKind {
    if pattern.ends_with("/*") || pattern == "*" {
        RouteKind::Wildcard
    } else if pattern.contains('{') {
        RouteKind::Template
    } else {
        RouteKind::Literal
    }
}

/// The shape of a pattern with parameter names erased (`/a/{x}` and `/a/{y}` are one route).
pub fn route_shape(pattern: &str) -> String {
    pattern
        .split('/')
        .map(|seg| {
            if seg.starts_with('{') && seg.ends_with('}') {
                "{}"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The order routes are matched in: literal before template before wildcard; more segments first;
/// then alphabetical, for determinism.
pub fn route_order(a: &Route, b: &Route) -> std::cmp::Ordering {
    let segments = |r: &Route| r.pattern.split('/').count();
    let literal_segments = |r: &Route| {
        r.pattern
            .split('/')
            .filter(|s| !s.contains('{') && *s != "*")
            .count()
    };
    a.kind
        .cmp(&b.kind)
        .then(segments(b).cmp(&segments(a)))
        .then(literal_segments(b).cmp(&literal_segments(a)))
        .then(a.pattern.cmp(&b.pattern))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(slug("Chat API"), "chat-api");
        assert_eq!(slug("  Kraken — WebSockets  "), "kraken-websockets");
        assert_eq!(slug("!!!"), "api");
    }

    #[test]
    fn a_tampered_plan_is_refused() {
        let plan = Plan::new(vec![]);
        let text = plan.to_json().replace("\"apis\": []", "\"apis\": [ ]");
        assert!(Plan::from_json(&text).is_ok(), "whitespace does not matter");
        let tampered = plan.to_json().replace(&plan.hash, "sha256:00");
        assert!(matches!(
            Plan::from_json(&tampered),
            Err(PlanError::Hash { .. })
        ));
        let old = plan
            .to_json()
            .replace("\"planVersion\": 1", "\"planVersion\": 0");
        assert!(matches!(Plan::from_json(&old), Err(PlanError::Version(0))));
    }

    #[test]
    fn rates() {
        let r = |t: &str| Rate::parse(t).map(|r| (r.limit, r.period_seconds));
        assert_eq!(r("1000/min"), Some((1000, 60)));
        assert_eq!(r("1M/day"), Some((1_000_000, 86_400)));
        assert_eq!(r("10K / hour"), Some((10_000, 3_600)));
        assert_eq!(r("5/s"), Some((5, 1)));
        for bad in [
            "0/s",
            "1000/minutes",
            "x/s",
            "1000",
            "-1/s",
            "1.5/s",
            "/s",
            "99999999999999999999/s",
        ] {
            assert_eq!(r(bad), None, "{bad}");
        }
    }

    #[test]
    fn kinds_and_shapes() {
        assert_eq!(route_kind("/c/1/rooms"), RouteKind::Literal);
        assert_eq!(route_kind("/c/1/rooms/{id}"), RouteKind::Template);
        assert_eq!(route_kind("/c/1/*"), RouteKind::Wildcard);
        assert_eq!(route_shape("/a/{x}/b"), route_shape("/a/{y}/b"));
    }
}
