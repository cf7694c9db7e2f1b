//! What templates see: the serialised view of a site and of each API page (documented, field by
//! field, in `docs/docs-generation.md`).

use serde::Serialize;

#[derive(Serialize, Clone, Debug)]
pub(super) struct SiteView {
    pub(super) title: String,
    pub(super) generator: String,
    pub(super) plan_hash: Option<String>,
    pub(super) gateway: bool,
    pub(super) base_url: BaseUrlView,
    pub(super) spec_links: bool,
    pub(super) apis: Vec<ApiSummary>,
}

#[derive(Serialize, Clone, Debug)]
pub(super) struct BaseUrlView {
    pub(super) ws: Option<String>,
    pub(super) wss: Option<String>,
}

#[derive(Serialize, Clone, Debug)]
pub(super) struct ApiSummary {
    pub(super) name: String,
    pub(super) title: String,
    pub(super) version: String,
    pub(super) html: String,
    pub(super) md: String,
    pub(super) summary: Option<String>,
    pub(super) lifecycle: Option<LifecycleView>,
    pub(super) context: Option<String>,
    pub(super) default_context: Option<String>,
    pub(super) url: Option<String>,
    pub(super) channels: usize,
    pub(super) operations: usize,
    pub(super) messages: usize,
    pub(super) spec: Option<String>,
}

#[derive(Serialize, Clone, Debug, Default)]
pub(super) struct InfoView {
    pub(super) terms_of_service: Option<String>,
    pub(super) contact: Option<ContactView>,
    pub(super) license: Option<LinkView>,
    pub(super) external_docs: Option<LinkView>,
}

#[derive(Serialize, Clone, Debug)]
pub(super) struct ContactView {
    pub(super) name: Option<String>,
    pub(super) url: Option<String>,
    pub(super) email: Option<String>,
}

#[derive(Serialize, Clone, Debug)]
pub(super) struct LinkView {
    pub(super) name: String,
    pub(super) url: Option<String>,
}

#[derive(Serialize, Clone, Debug)]
pub(super) struct LifecycleView {
    pub(super) state: &'static str,
    pub(super) label: &'static str,
    /// `ok`, `info`, `warn` or `danger`: how loudly to show it.
    pub(super) level: &'static str,
    pub(super) served: bool,
    pub(super) note: &'static str,
    /// A newer served version of the same API, for deprecated ones.
    pub(super) successor: Option<ApiRef>,
}

#[derive(Serialize, Clone, Debug)]
pub(super) struct ApiRef {
    pub(super) title: String,
    pub(super) version: String,
    pub(super) html: String,
    pub(super) md: String,
}

#[derive(Serialize, Clone, Debug)]
pub(super) struct ServerView {
    pub(super) name: String,
    pub(super) url: String,
    pub(super) protocol: String,
    pub(super) description: Option<String>,
    /// `gateway` (where clients connect) or `spec` (a server as the document declares it).
    pub(super) kind: &'static str,
}

#[derive(Serialize, Clone, Debug)]
pub(super) struct ApiView {
    pub(super) name: String,
    pub(super) title: String,
    pub(super) version: String,
    pub(super) html: String,
    pub(super) md: String,
    pub(super) spec_version: Option<String>,
    pub(super) description: Option<String>,
    pub(super) info: InfoView,
    pub(super) default_content_type: Option<String>,
    pub(super) lifecycle: Option<LifecycleView>,
    pub(super) gateway: bool,
    pub(super) context: Option<String>,
    pub(super) default_context: Option<String>,
    pub(super) servers: Vec<ServerView>,
    pub(super) security: Vec<SecurityView>,
    pub(super) limits: Vec<LimitView>,
    pub(super) throttling: Option<String>,
    pub(super) validation: ValidationView,
    pub(super) channels: Vec<ChannelView>,
    pub(super) operations: Vec<OperationView>,
    pub(super) messages: Vec<MessageView>,
    pub(super) source: SourceView,
    pub(super) hash: Option<String>,
}

#[derive(Serialize, Clone, Debug)]
pub(super) struct SourceView {
    pub(super) file: Option<String>,
    pub(super) sha256: Option<String>,
    pub(super) spec: Option<String>,
}

#[derive(Serialize, Clone, Debug)]
pub(super) struct SecurityView {
    pub(super) name: String,
    pub(super) kind: String,
    pub(super) description: Option<String>,
    pub(super) ways: Vec<WayView>,
    pub(super) scopes: Vec<ScopeView>,
}

#[derive(Serialize, Clone, Debug)]
pub(super) struct WayView {
    /// `header`, `query`, `subprotocol`, `cookie` or `other`.
    pub(super) place: &'static str,
    pub(super) name: String,
    pub(super) example: String,
    pub(super) note: Option<String>,
}

#[derive(Serialize, Clone, Debug)]
pub(super) struct ScopeView {
    pub(super) name: String,
    pub(super) description: String,
}

#[derive(Serialize, Clone, Debug)]
pub(super) struct LimitView {
    pub(super) name: &'static str,
    pub(super) value: String,
    pub(super) meaning: &'static str,
}

#[derive(Serialize, Clone, Debug)]
pub(super) struct ValidationView {
    pub(super) policy: String,
    pub(super) config: Option<String>,
}

#[derive(Serialize, Clone, Debug)]
pub(super) struct ChannelView {
    pub(super) id: String,
    pub(super) anchor: String,
    pub(super) title: Option<String>,
    pub(super) address: Option<String>,
    pub(super) description: Option<String>,
    pub(super) urls: Vec<UrlView>,
    pub(super) example_url: Option<UrlView>,
    pub(super) auth: Option<&'static str>,
    pub(super) scopes: Vec<String>,
    /// What the gateway really requires on this route (from the plan's `security`); none when
    /// the page is built from specs alone.
    pub(super) requirement: Option<RequirementView>,
    pub(super) parameters: Vec<ParamView>,
    pub(super) method: Option<String>,
    pub(super) query: Vec<FieldRow>,
    pub(super) headers: Vec<FieldRow>,
    pub(super) operations: Vec<OperationView>,
    pub(super) snippets: Option<SnippetView>,
}

/// A route's requirement as the gateway enforces it (the plan's `routes[].security`).
#[derive(Serialize, Clone, Debug, PartialEq)]
pub(super) struct RequirementView {
    /// `open` (no credential checked), `credential`, or `unserved` (only schemes the gateway
    /// cannot check on a WebSocket: the route is not served).
    pub(super) kind: &'static str,
    /// Why an open route is open, in plain words.
    pub(super) open_because: Option<&'static str>,
    /// The credentials accepted, one per scheme; empty with `kind: credential` means any
    /// credential the gateway is configured to verify (a JWT or an API key).
    pub(super) accepts: Vec<AcceptView>,
    /// To connect: the scopes of one of these alternatives (each the scopes of one operation).
    pub(super) connect: ScopeRuleView,
    /// To send a message (client to backend), and to receive one (backend to client).
    pub(super) send: ScopeRuleView,
    pub(super) receive: ScopeRuleView,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
pub(super) struct AcceptView {
    /// The scheme's key in `components.securitySchemes`.
    pub(super) scheme: String,
    /// What the client presents, in plain words (`a JWT bearer token`, `an API key`, ...).
    pub(super) credential: String,
}

/// Which scopes a step needs: none (`any_of` empty and `needed` false), or all the scopes of
/// one of the `any_of` sets.
#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub(super) struct ScopeRuleView {
    pub(super) needed: bool,
    pub(super) any_of: Vec<Vec<String>>,
}

#[derive(Serialize, Clone, Debug)]
pub(super) struct UrlView {
    pub(super) label: &'static str,
    /// Only the schemes the gateway is published under.
    pub(super) ws: Option<String>,
    pub(super) wss: Option<String>,
}

#[derive(Serialize, Clone, Debug)]
pub(super) struct ParamView {
    pub(super) name: String,
    pub(super) description: Option<String>,
    pub(super) r#type: String,
    pub(super) r#enum: Vec<String>,
    pub(super) examples: Vec<String>,
    pub(super) default: Option<String>,
    pub(super) constraints: Vec<Constraint>,
}

#[derive(Serialize, Clone, Debug)]
pub(super) struct SnippetView {
    pub(super) websocat: String,
    pub(super) javascript: String,
}

#[derive(Serialize, Clone, Debug)]
pub(super) struct OperationView {
    pub(super) id: String,
    pub(super) anchor: String,
    /// `send` (the client sends) or `receive` (the client receives).
    pub(super) action: &'static str,
    pub(super) direction: &'static str,
    pub(super) channel: ChannelRef,
    pub(super) summary: Option<String>,
    pub(super) description: Option<String>,
    pub(super) scopes: Vec<String>,
    pub(super) messages: Vec<MessageRef>,
}

#[derive(Serialize, Clone, Debug)]
pub(super) struct ChannelRef {
    pub(super) id: String,
    pub(super) anchor: String,
    pub(super) address: Option<String>,
}

#[derive(Serialize, Clone, Debug)]
pub(super) struct MessageRef {
    pub(super) name: String,
    pub(super) title: Option<String>,
    pub(super) anchor: String,
}

#[derive(Serialize, Clone, Debug)]
pub(super) struct MessageView {
    pub(super) name: String,
    pub(super) anchor: String,
    pub(super) title: Option<String>,
    pub(super) summary: Option<String>,
    pub(super) description: Option<String>,
    pub(super) content_type: Option<String>,
    pub(super) payload: Option<PayloadView>,
    pub(super) headers: Vec<FieldRow>,
    pub(super) examples: Vec<ExampleView>,
    pub(super) used_by: Vec<OperationRef>,
}

#[derive(Serialize, Clone, Debug)]
pub(super) struct OperationRef {
    pub(super) id: String,
    pub(super) anchor: String,
    pub(super) direction: &'static str,
}

#[derive(Serialize, Clone, Debug)]
pub(super) struct PayloadView {
    pub(super) r#type: String,
    pub(super) rows: Vec<FieldRow>,
    pub(super) alternatives: Vec<AlternativeView>,
    /// `oneOf` or `anyOf` when the payload is a choice.
    pub(super) choice: Option<&'static str>,
    pub(super) truncated: bool,
}

#[derive(Serialize, Clone, Debug)]
pub(super) struct AlternativeView {
    pub(super) label: String,
    pub(super) rows: Vec<FieldRow>,
}

#[derive(Serialize, Clone, Debug)]
pub(super) struct FieldRow {
    pub(super) path: String,
    pub(super) depth: usize,
    pub(super) r#type: String,
    pub(super) required: bool,
    pub(super) description: Option<String>,
    pub(super) constraints: Vec<Constraint>,
}

#[derive(Serialize, Clone, Debug)]
pub(super) struct Constraint {
    pub(super) label: String,
    /// None for a flag (`unique items`), one or several values otherwise (`one of` a, b).
    pub(super) values: Vec<String>,
}

#[derive(Serialize, Clone, Debug)]
pub(super) struct ExampleView {
    pub(super) json: String,
    pub(super) generated: bool,
}
