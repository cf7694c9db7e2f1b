//! API documentation for consumers, rendered from the same specs as the plan: one HTML and one
//! Markdown page per API, and an index.
//!
//! Pure: [`collect`] takes what a [`Compilation`] found, [`render`] turns it (with the plan, when
//! there is one) into [`Page`]s through minijinja templates; writing them is the caller's business
//! (`compile --out`, or the runtime's admin listener). The built-in templates live in the
//! workspace's `templates/` folder and are compiled into the binary; [`Templates::set`] overrides
//! them one by one. The variables templates see are documented in `docs/docs-generation.md`.
//!
//! Three sources are supported:
//!
//! * specs **and** a plan (`compile --out`, the runtime serving specs): descriptions, messages and
//!   parameters come from the specs, gateway URLs, lifecycle, limits and access from the plan;
//! * specs only ([`render`] with no plan, e.g. `--lint`-style documents that are not gateway
//!   APIs): plain AsyncAPI docs, without gateway URLs;
//! * a plan only (the runtime serving `--plan`): everything the plan knows, without prose.
//!
//! ```
//! use portico_compiler::docs::{render, Collected, Options, Templates};
//! use portico_compiler::plan::Plan;
//! let pages = render(&Collected::default(), Some(&Plan::new(vec![])), &Options::default(),
//!     &Templates::builtin()).unwrap();
//! assert_eq!(pages[0].path, "index.html");
//! ```

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value as JinjaValue};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::compile::Compilation;
use crate::model::{self, Direction};
use crate::plan::{slug, Lifecycle, Plan, PlanApi, Route, RouteAuth};

/// The gateway address used in URLs when none is given (`compile --docs-base-url`).
pub const DEFAULT_BASE_URL: &str = "ws://localhost:9099";

/// Characters encoded in a parameter value placed in an example URL.
const PARAM: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Most rows a payload table gets (a huge schema is summarised, not dumped).
const MAX_ROWS: usize = 400;
/// Deepest nesting a payload table follows.
const MAX_DEPTH: usize = 8;

/// How pages are rendered.
#[derive(Clone, Debug)]
pub struct Options {
    /// `ws://host:port` or `wss://host:port` of the gateway, without a trailing `/`. Both the `ws`
    /// and the `wss` variant of it are shown.
    pub base_url: String,
    /// Link each API page to its raw spec at `../specs/<api>/<version>.yaml` (as the runtime's
    /// admin listener serves them).
    pub spec_links: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            base_url: DEFAULT_BASE_URL.to_string(),
            spec_links: false,
        }
    }
}

/// Checks and normalizes a gateway base URL: `ws://` or `wss://` (or `http(s)://`, read as the
/// matching WebSocket scheme), a host, optionally a port and a path prefix; no query or fragment.
pub fn normalize_base_url(text: &str) -> Result<String, String> {
    let text = text.trim();
    let (scheme, rest) = text
        .split_once("://")
        .ok_or_else(|| format!("`{text}` is not a URL: write it like {DEFAULT_BASE_URL}"))?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "ws" | "http" => "ws",
        "wss" | "https" => "wss",
        other => {
            return Err(format!(
                "`{other}://` is not a WebSocket scheme: use ws:// or wss://"
            ))
        }
    };
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("`{text}` has no host"));
    }
    if rest.contains(['?', '#', ' ', '"', '\'', '<', '>', '\\']) {
        return Err(format!(
            "`{text}` may not contain a query, a fragment, spaces or quotes"
        ));
    }
    Ok(format!("{scheme}://{}", rest.trim_end_matches('/')))
}

/// The `ws://` and `wss://` variants of a base URL.
fn base_variants(base: &str) -> (String, String) {
    let rest = base.split_once("://").map(|(_, r)| r).unwrap_or(base);
    (format!("ws://{rest}"), format!("wss://{rest}"))
}

// ---------------------------------------------------------------------------------------------
// Templates

/// The built-in templates, by name.
pub const BUILTIN_TEMPLATES: [(&str, &str); 5] = [
    (
        "index.html.j2",
        include_str!("../../templates/index.html.j2"),
    ),
    ("api.html.j2", include_str!("../../templates/api.html.j2")),
    ("api.md.j2", include_str!("../../templates/api.md.j2")),
    ("style.css.j2", include_str!("../../templates/style.css.j2")),
    (
        "macros.html.j2",
        include_str!("../../templates/macros.html.j2"),
    ),
];

/// The templates pages are rendered with: the built-ins, each replaceable, plus any extra partials.
#[derive(Clone, Debug)]
pub struct Templates {
    sources: BTreeMap<String, String>,
    overridden: Vec<String>,
}

impl Templates {
    pub fn builtin() -> Templates {
        Templates {
            sources: BUILTIN_TEMPLATES
                .iter()
                .map(|(n, s)| (n.to_string(), s.to_string()))
                .collect(),
            overridden: Vec::new(),
        }
    }

    /// Replaces a built-in template, or adds a partial the others may `include`.
    pub fn set(&mut self, name: impl Into<String>, source: impl Into<String>) {
        let name = name.into();
        self.overridden.push(name.clone());
        self.sources.insert(name, source.into());
    }

    /// Names set with [`Templates::set`], in order.
    pub fn overridden(&self) -> &[String] {
        &self.overridden
    }

    pub fn is_builtin(name: &str) -> bool {
        BUILTIN_TEMPLATES.iter().any(|(n, _)| *n == name)
    }

    fn environment(&self) -> Result<Environment<'static>, String> {
        let mut env = Environment::new();
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .build()
                .map_err(|e| e.to_string())?,
        );
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(auto_escape);
        env.set_recursion_limit(64);
        for (name, source) in &self.sources {
            env.add_template_owned(name.clone(), source.clone())
                .map_err(|e| describe_error(&e))?;
        }
        env.add_filter("markdown", |text: Option<String>| {
            JinjaValue::from_safe_string(markdown_to_html(text.as_deref().unwrap_or_default()))
        });
        env.add_filter("markdown_inline", |text: Option<String>| {
            JinjaValue::from_safe_string(markdown_inline(text.as_deref().unwrap_or_default()))
        });
        env.add_filter("url", |text: Option<String>| {
            JinjaValue::from_safe_string(breakable_url(text.as_deref().unwrap_or_default()))
        });
        env.add_filter("md", |text: Option<String>| {
            escape_markdown_html(text.as_deref().unwrap_or_default())
        });
        env.add_filter("cell", |text: Option<String>| {
            markdown_cell(text.as_deref().unwrap_or_default())
        });
        env.add_filter("code", |text: Option<String>| {
            markdown_code(text.as_deref().unwrap_or_default())
        });
        Ok(env)
    }
}

/// HTML escaping for `*.html`, `*.htm` and `*.xml` templates (also with a `.j2` or `.jinja`
/// suffix); none elsewhere (Markdown templates escape with the `md` and `cell` filters).
fn auto_escape(name: &str) -> AutoEscape {
    let base = name
        .strip_suffix(".j2")
        .or_else(|| name.strip_suffix(".jinja"))
        .or_else(|| name.strip_suffix(".jinja2"))
        .unwrap_or(name);
    match base.rsplit('.').next() {
        Some("html" | "htm" | "xml" | "svg") => AutoEscape::Html,
        _ => AutoEscape::None,
    }
}

fn describe_error(e: &minijinja::Error) -> String {
    let mut text = format!("template error: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let _ = write!(text, ": {s}");
        source = s.source();
    }
    text
}

// ---------------------------------------------------------------------------------------------
// What the specs say (owned, so the runtime can keep it between compiling and rendering)

/// What the docs need from the specs of one compilation.
#[derive(Clone, Debug, Default)]
pub struct Collected {
    pub apis: Vec<SourceApi>,
}

/// One AsyncAPI document, as the docs see it.
#[derive(Clone, Debug)]
pub struct SourceApi {
    /// The spec file's path as it was compiled.
    pub path: String,
    /// `sha256:<hex>` of the file (what the plan's `source.sha256` names).
    pub sha256: String,
    /// The spec as written (served by the runtime at `/specs/<api>/<version>.yaml`).
    pub text: String,
    title: String,
    version: Option<String>,
    spec_version: String,
    description: Option<String>,
    info: InfoView,
    default_content_type: Option<String>,
    servers: Vec<ServerView>,
    security: Vec<SchemeDoc>,
    channels: Vec<ChannelDoc>,
    /// Messages under `components.messages` (and 3.x channels) that no operation uses.
    unused_messages: Vec<MessageDoc>,
    gateway: Option<Value>,
}

#[derive(Clone, Debug)]
struct SchemeDoc {
    name: String,
    kind: String,
    scheme: Option<String>,
    bearer_format: Option<String>,
    location: Option<String>,
    param_name: Option<String>,
    description: Option<String>,
    scopes: Vec<(String, String)>,
}

#[derive(Clone, Debug)]
struct ChannelDoc {
    id: String,
    address: Option<String>,
    title: Option<String>,
    description: Option<String>,
    parameters: Vec<ParamDoc>,
    ws_binding: Option<Value>,
    auth_type: Option<String>,
    operations: Vec<OperationDoc>,
}

#[derive(Clone, Debug)]
struct ParamDoc {
    name: String,
    description: Option<String>,
    schema: Option<Value>,
}

#[derive(Clone, Debug)]
struct OperationDoc {
    id: Option<String>,
    direction: Direction,
    summary: Option<String>,
    description: Option<String>,
    scopes: Vec<String>,
    messages: Vec<MessageDoc>,
}

#[derive(Clone, Debug, PartialEq)]
struct MessageDoc {
    name: String,
    title: Option<String>,
    summary: Option<String>,
    description: Option<String>,
    content_type: Option<String>,
    payload: Option<Value>,
    headers: Option<Value>,
    examples: Vec<Value>,
}

impl MessageDoc {
    fn from_model(m: &model::Message) -> MessageDoc {
        MessageDoc {
            name: m.name.clone(),
            title: m.title.clone(),
            summary: m.summary.clone(),
            description: m.description.clone(),
            content_type: m.content_type.clone(),
            payload: m.payload.clone(),
            headers: m.headers.clone(),
            examples: m.examples.clone(),
        }
    }
}

/// Gathers what the docs need from a compilation (every document, gateway API or not).
pub fn collect(compilation: &Compilation) -> Collected {
    let mut apis = Vec::new();
    for api in &compilation.apis {
        let source = compilation.files.sources.get(api.file);
        let raw = compilation
            .files
            .tree(api.file)
            .map(crate::source::Node::to_json)
            .unwrap_or(Value::Null);
        let channels: Vec<ChannelDoc> = api
            .channels
            .iter()
            .map(|c| ChannelDoc {
                id: c.id.clone(),
                address: c.address.clone(),
                title: str_at(&raw, &["channels", &c.id, "title"]),
                description: c.description.clone(),
                parameters: c
                    .parameters
                    .iter()
                    .map(|p| ParamDoc {
                        name: p.name.clone(),
                        description: p.description.clone(),
                        schema: p.schema.clone(),
                    })
                    .collect(),
                ws_binding: c.ws_binding.clone(),
                auth_type: c.auth_type.as_ref().map(|a| a.value.clone()),
                operations: c
                    .operations
                    .iter()
                    .map(|o| OperationDoc {
                        id: o.id.clone(),
                        direction: o.direction,
                        summary: o.summary.clone(),
                        description: o.description.clone(),
                        scopes: o.scopes.iter().map(|s| s.value.clone()).collect(),
                        messages: o.messages.iter().map(MessageDoc::from_model).collect(),
                    })
                    .collect(),
            })
            .collect();
        let channels: Vec<ChannelDoc> = channels.into_iter().map(replies_after_requests).collect();
        let used: HashSet<&str> = channels
            .iter()
            .flat_map(|c| &c.operations)
            .flat_map(|o| &o.messages)
            .map(|m| m.name.as_str())
            .collect();
        let unused_messages = unused_messages(&raw, &used);
        let security = api
            .security_schemes
            .iter()
            .map(|s| {
                let raw_scheme = resolve_local(
                    &raw,
                    raw.pointer(&format!(
                        "/components/securitySchemes/{}",
                        crate::source::escape_pointer_token(&s.name)
                    ))
                    .unwrap_or(&Value::Null),
                );
                let mut scopes: Vec<(String, String)> = Vec::new();
                let mut add_scopes = |map: Option<&Value>| {
                    for (k, v) in map.and_then(Value::as_object).into_iter().flatten() {
                        if !scopes.iter().any(|(n, _)| n == k) {
                            scopes.push((k.clone(), v.as_str().unwrap_or_default().to_string()));
                        }
                    }
                };
                if let Some(flows) = raw_scheme.get("flows").and_then(Value::as_object) {
                    for flow in flows.values() {
                        add_scopes(flow.get("scopes"));
                        add_scopes(flow.get("availableScopes"));
                    }
                }
                for name in &s.scopes {
                    if !scopes.iter().any(|(n, _)| n == name) {
                        scopes.push((name.clone(), String::new()));
                    }
                }
                SchemeDoc {
                    name: s.name.clone(),
                    kind: s.kind.clone(),
                    scheme: raw_scheme
                        .get("scheme")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    bearer_format: raw_scheme
                        .get("bearerFormat")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    location: s.location.clone(),
                    param_name: s.param_name.clone(),
                    description: s.description.clone(),
                    scopes,
                }
            })
            .collect();
        apis.push(SourceApi {
            path: source.path.display().to_string(),
            sha256: format!("sha256:{:x}", Sha256::digest(source.text.as_bytes())),
            text: source.text.clone(),
            title: api.title.clone(),
            version: api.version.as_ref().map(|v| v.value.clone()),
            spec_version: str_at(&raw, &["asyncapi"]).unwrap_or_default(),
            description: api.description.clone(),
            info: info_view(&raw),
            default_content_type: str_at(&raw, &["defaultContentType"]),
            servers: api
                .servers
                .iter()
                .map(|s| ServerView {
                    name: s.name.clone(),
                    url: s.url.clone(),
                    protocol: s.protocol.clone(),
                    description: str_at(&raw, &["servers", &s.name, "description"]),
                    kind: "spec",
                })
                .collect(),
            security,
            channels,
            unused_messages,
            gateway: api.gateway.as_ref().map(crate::source::Node::to_json),
        });
    }
    Collected { apis }
}

/// A 3.x reply (lowered as an operation `<id>Reply` going the other way) is listed right after the
/// operation it answers, and says so.
fn replies_after_requests(mut channel: ChannelDoc) -> ChannelDoc {
    let mut i = 0;
    while i < channel.operations.len() {
        let reply_of = channel.operations[i]
            .id
            .as_deref()
            .and_then(|id| id.strip_suffix("Reply"))
            .map(str::to_string);
        if let Some(request) = reply_of {
            let found = channel.operations[i + 1..]
                .iter()
                .position(|o| o.id.as_deref() == Some(request.as_str()));
            if let Some(offset) = found {
                let mut reply = channel.operations.remove(i);
                if reply.summary.is_none() {
                    reply.summary = Some(format!("The reply to `{request}`."));
                }
                // The request was at i + 1 + offset; after the removal it is at i + offset.
                channel.operations.insert(i + offset + 1, reply);
                continue;
            }
        }
        i += 1;
    }
    channel
}

fn str_at(value: &Value, path: &[&str]) -> Option<String> {
    let mut v = value;
    for key in path {
        v = v.get(key)?;
    }
    v.as_str().map(str::to_string)
}

fn info_view(raw: &Value) -> InfoView {
    let info = raw.get("info").cloned().unwrap_or(Value::Null);
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let contact = info.get("contact").map(|c| ContactView {
        name: s(c, "name"),
        url: s(c, "url").filter(|u| safe_url(u)),
        email: s(c, "email"),
    });
    let license = info.get("license").map(|l| LinkView {
        name: s(l, "name").unwrap_or_default(),
        url: s(l, "url").filter(|u| safe_url(u)),
    });
    let docs = info
        .get("externalDocs")
        .or_else(|| raw.get("externalDocs"))
        .map(|d| LinkView {
            name: s(d, "description").unwrap_or_else(|| "More documentation".into()),
            url: s(d, "url").filter(|u| safe_url(u)),
        });
    InfoView {
        terms_of_service: s(&info, "termsOfService").filter(|u| safe_url(u)),
        contact,
        license,
        external_docs: docs,
    }
}

/// Replaces local `$ref`s (`#/...`) in `value` by their targets, leaving recursive and external
/// ones in place. Bounded, so a hostile document cannot make it explode.
fn resolve_local(root: &Value, value: &Value) -> Value {
    fn go(root: &Value, v: &Value, stack: &mut Vec<String>, budget: &mut usize) -> Value {
        if *budget == 0 {
            return Value::Null;
        }
        *budget -= 1;
        match v {
            Value::Object(map) => {
                if let Some(r) = map.get("$ref").and_then(Value::as_str) {
                    if let Some(pointer) = r.strip_prefix('#') {
                        if !stack.iter().any(|s| s == pointer) && stack.len() < 32 {
                            if let Some(target) = root.pointer(pointer) {
                                stack.push(pointer.to_string());
                                let out = go(root, target, stack, budget);
                                stack.pop();
                                return out;
                            }
                        }
                    }
                    return v.clone();
                }
                Value::Object(
                    map.iter()
                        .map(|(k, x)| (k.clone(), go(root, x, stack, budget)))
                        .collect(),
                )
            }
            Value::Array(items) => {
                Value::Array(items.iter().map(|x| go(root, x, stack, budget)).collect())
            }
            other => other.clone(),
        }
    }
    let mut budget = 200_000;
    go(root, value, &mut Vec::new(), &mut budget)
}

/// Messages defined in `components.messages` (and, in 3.x, under channels) that no operation
/// uses: the AsyncAPI html-template leaves them out, we list them.
fn unused_messages(raw: &Value, used: &HashSet<&str>) -> Vec<MessageDoc> {
    let mut candidates: Vec<(String, &Value)> = Vec::new();
    if let Some(map) = raw
        .pointer("/components/messages")
        .and_then(Value::as_object)
    {
        candidates.extend(map.iter().map(|(k, v)| (k.clone(), v)));
    }
    if raw
        .get("asyncapi")
        .and_then(Value::as_str)
        .is_some_and(|v| v.starts_with('3'))
    {
        for channel in raw
            .get("channels")
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|m| m.values())
        {
            if let Some(map) = channel.get("messages").and_then(Value::as_object) {
                candidates.extend(map.iter().map(|(k, v)| (k.clone(), v)));
            }
        }
    }
    let mut out: Vec<MessageDoc> = Vec::new();
    for (key, node) in candidates {
        let message = resolve_local(raw, node);
        if !message.is_object() {
            continue;
        }
        let text = |k: &str| message.get(k).and_then(Value::as_str).map(str::to_string);
        let name = text("name").or_else(|| text("messageId")).unwrap_or(key);
        if used.contains(name.as_str()) || out.iter().any(|m| m.name == name) {
            continue;
        }
        let schema_format = text("schemaFormat").unwrap_or_default();
        let payload = message.get("payload").and_then(|p| {
            if let (Some(format), Some(schema)) = (p.get("schemaFormat"), p.get("schema")) {
                return model::is_json_schema_format(format.as_str().unwrap_or_default())
                    .then(|| schema.clone());
            }
            model::is_json_schema_format(&schema_format).then(|| p.clone())
        });
        out.push(MessageDoc {
            title: text("title"),
            summary: text("summary"),
            description: text("description"),
            content_type: text("contentType"),
            payload,
            headers: message.get("headers").cloned(),
            examples: message
                .get("examples")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|e| e.get("payload").cloned())
                .collect(),
            name,
        });
    }
    out
}

// ---------------------------------------------------------------------------------------------
// What templates see (documented in docs/docs-generation.md)

/// One rendered file, with its path relative to the docs folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    pub path: String,
    pub content: String,
}

impl Page {
    pub fn content_type(&self) -> &'static str {
        if self.path.ends_with(".html") {
            "text/html; charset=utf-8"
        } else if self.path.ends_with(".md") {
            "text/markdown; charset=utf-8"
        } else {
            "text/plain; charset=utf-8"
        }
    }
}

#[derive(Serialize, Clone, Debug)]
struct SiteView {
    title: String,
    generator: String,
    plan_hash: Option<String>,
    gateway: bool,
    base_url: BaseUrlView,
    spec_links: bool,
    apis: Vec<ApiSummary>,
}

#[derive(Serialize, Clone, Debug)]
struct BaseUrlView {
    ws: String,
    wss: String,
}

#[derive(Serialize, Clone, Debug)]
struct ApiSummary {
    name: String,
    title: String,
    version: String,
    html: String,
    md: String,
    summary: Option<String>,
    lifecycle: Option<LifecycleView>,
    context: Option<String>,
    default_context: Option<String>,
    url: Option<String>,
    channels: usize,
    operations: usize,
    messages: usize,
    spec: Option<String>,
}

#[derive(Serialize, Clone, Debug, Default)]
struct InfoView {
    terms_of_service: Option<String>,
    contact: Option<ContactView>,
    license: Option<LinkView>,
    external_docs: Option<LinkView>,
}

#[derive(Serialize, Clone, Debug)]
struct ContactView {
    name: Option<String>,
    url: Option<String>,
    email: Option<String>,
}

#[derive(Serialize, Clone, Debug)]
struct LinkView {
    name: String,
    url: Option<String>,
}

#[derive(Serialize, Clone, Debug)]
struct LifecycleView {
    state: &'static str,
    label: &'static str,
    /// `ok`, `info`, `warn` or `danger`: how loudly to show it.
    level: &'static str,
    served: bool,
    note: &'static str,
    /// A newer served version of the same API, for deprecated ones.
    successor: Option<ApiRef>,
}

#[derive(Serialize, Clone, Debug)]
struct ApiRef {
    title: String,
    version: String,
    html: String,
    md: String,
}

#[derive(Serialize, Clone, Debug)]
struct ServerView {
    name: String,
    url: String,
    protocol: String,
    description: Option<String>,
    /// `gateway` (where clients connect) or `spec` (a server as the document declares it).
    kind: &'static str,
}

#[derive(Serialize, Clone, Debug)]
struct ApiView {
    name: String,
    title: String,
    version: String,
    html: String,
    md: String,
    spec_version: Option<String>,
    description: Option<String>,
    info: InfoView,
    default_content_type: Option<String>,
    lifecycle: Option<LifecycleView>,
    gateway: bool,
    context: Option<String>,
    default_context: Option<String>,
    servers: Vec<ServerView>,
    security: Vec<SecurityView>,
    limits: Vec<LimitView>,
    throttling: Option<String>,
    validation: ValidationView,
    channels: Vec<ChannelView>,
    operations: Vec<OperationView>,
    messages: Vec<MessageView>,
    source: SourceView,
    hash: Option<String>,
}

#[derive(Serialize, Clone, Debug)]
struct SourceView {
    file: Option<String>,
    sha256: Option<String>,
    spec: Option<String>,
}

#[derive(Serialize, Clone, Debug)]
struct SecurityView {
    name: String,
    kind: String,
    description: Option<String>,
    ways: Vec<WayView>,
    scopes: Vec<ScopeView>,
}

#[derive(Serialize, Clone, Debug)]
struct WayView {
    /// `header`, `query`, `subprotocol`, `cookie` or `other`.
    place: &'static str,
    name: String,
    example: String,
    note: Option<String>,
}

#[derive(Serialize, Clone, Debug)]
struct ScopeView {
    name: String,
    description: String,
}

#[derive(Serialize, Clone, Debug)]
struct LimitView {
    name: &'static str,
    value: String,
    meaning: &'static str,
}

#[derive(Serialize, Clone, Debug)]
struct ValidationView {
    policy: String,
    config: Option<String>,
}

#[derive(Serialize, Clone, Debug)]
struct ChannelView {
    id: String,
    anchor: String,
    title: Option<String>,
    address: Option<String>,
    description: Option<String>,
    urls: Vec<UrlView>,
    example_url: Option<UrlView>,
    auth: Option<&'static str>,
    scopes: Vec<String>,
    parameters: Vec<ParamView>,
    method: Option<String>,
    query: Vec<FieldRow>,
    headers: Vec<FieldRow>,
    operations: Vec<OperationView>,
    snippets: Option<SnippetView>,
}

#[derive(Serialize, Clone, Debug)]
struct UrlView {
    label: &'static str,
    ws: String,
    wss: String,
}

#[derive(Serialize, Clone, Debug)]
struct ParamView {
    name: String,
    description: Option<String>,
    r#type: String,
    r#enum: Vec<String>,
    examples: Vec<String>,
    default: Option<String>,
    constraints: Vec<Constraint>,
}

#[derive(Serialize, Clone, Debug)]
struct SnippetView {
    websocat: String,
    javascript: String,
}

#[derive(Serialize, Clone, Debug)]
struct OperationView {
    id: String,
    anchor: String,
    /// `send` (the client sends) or `receive` (the client receives).
    action: &'static str,
    direction: &'static str,
    channel: ChannelRef,
    summary: Option<String>,
    description: Option<String>,
    scopes: Vec<String>,
    messages: Vec<MessageRef>,
}

#[derive(Serialize, Clone, Debug)]
struct ChannelRef {
    id: String,
    anchor: String,
    address: Option<String>,
}

#[derive(Serialize, Clone, Debug)]
struct MessageRef {
    name: String,
    title: Option<String>,
    anchor: String,
}

#[derive(Serialize, Clone, Debug)]
struct MessageView {
    name: String,
    anchor: String,
    title: Option<String>,
    summary: Option<String>,
    description: Option<String>,
    content_type: Option<String>,
    payload: Option<PayloadView>,
    headers: Vec<FieldRow>,
    examples: Vec<ExampleView>,
    used_by: Vec<OperationRef>,
}

#[derive(Serialize, Clone, Debug)]
struct OperationRef {
    id: String,
    anchor: String,
    direction: &'static str,
}

#[derive(Serialize, Clone, Debug)]
struct PayloadView {
    r#type: String,
    rows: Vec<FieldRow>,
    alternatives: Vec<AlternativeView>,
    /// `oneOf` or `anyOf` when the payload is a choice.
    choice: Option<&'static str>,
    truncated: bool,
}

#[derive(Serialize, Clone, Debug)]
struct AlternativeView {
    label: String,
    rows: Vec<FieldRow>,
}

#[derive(Serialize, Clone, Debug)]
struct FieldRow {
    path: String,
    depth: usize,
    r#type: String,
    required: bool,
    description: Option<String>,
    constraints: Vec<Constraint>,
}

#[derive(Serialize, Clone, Debug)]
struct Constraint {
    label: String,
    /// None for a flag (`unique items`), one or several values otherwise (`one of` a, b).
    values: Vec<String>,
}

#[derive(Serialize, Clone, Debug)]
struct ExampleView {
    json: String,
    generated: bool,
}

// ---------------------------------------------------------------------------------------------
// Rendering

/// Renders the index, and an HTML and a Markdown page per API.
///
/// With a plan, the pages document the plan's APIs (matched to `collected` by source file and
/// hash; an API without a match is documented from the plan alone). Without one, every collected
/// document is documented as plain AsyncAPI, without gateway URLs.
pub fn render(
    collected: &Collected,
    plan: Option<&Plan>,
    options: &Options,
    templates: &Templates,
) -> Result<Vec<Page>, String> {
    let env = templates.environment()?;
    let (ws, wss) = base_variants(&options.base_url);
    let mut used_names: HashSet<String> = HashSet::new();
    let mut views: Vec<ApiView> = Vec::new();
    match plan {
        Some(plan) => {
            for api in &plan.apis {
                let source = collected.apis.iter().find(|s| matches_source(s, api));
                let file_stem = unique_stem(&api.name, &api.version, &mut used_names);
                views.push(api_view(source, Some((api, plan)), &file_stem, options));
            }
        }
        None => {
            for source in &collected.apis {
                let version = source
                    .version
                    .clone()
                    .unwrap_or_else(|| "unversioned".into());
                let file_stem = unique_stem(&slug(&source.title), &version, &mut used_names);
                views.push(api_view(Some(source), None, &file_stem, options));
            }
        }
    }
    let site = SiteView {
        title: "API documentation".into(),
        generator: format!("Portico {}", env!("CARGO_PKG_VERSION")),
        plan_hash: plan.map(|p| p.hash.clone()),
        gateway: plan.is_some(),
        base_url: BaseUrlView { ws, wss },
        spec_links: options.spec_links,
        apis: views.iter().map(summary).collect(),
    };
    let mut pages = Vec::new();
    let index = env
        .get_template("index.html.j2")
        .and_then(|t| t.render(minijinja::context! { site => minijinja::value::Serde(&site) }))
        .map_err(|e| describe_error(&e))?;
    pages.push(Page {
        path: "index.html".into(),
        content: finish(index),
    });
    for view in &views {
        for (template, path) in [("api.html.j2", &view.html), ("api.md.j2", &view.md)] {
            let content = env
                .get_template(template)
                .and_then(|t| t.render(minijinja::context! { site => minijinja::value::Serde(&site), api => minijinja::value::Serde(view) }))
                .map_err(|e| format!("{} ({}): {}", view.title, path, describe_error(&e)))?;
            let content = if path.ends_with(".md") {
                collapse_blank_lines(&content)
            } else {
                content
            };
            pages.push(Page {
                path: path.clone(),
                content: finish(content),
            });
        }
    }
    Ok(pages)
}

/// [`collect`] and [`render`] in one: the plan is the compilation's, when it has one.
pub fn render_compilation(
    compilation: &Compilation,
    options: &Options,
    templates: &Templates,
) -> Result<Vec<Page>, String> {
    render(
        &collect(compilation),
        compilation.plan.as_ref(),
        options,
        templates,
    )
}

/// The raw spec of each plan API that has one: `(api name, version, text)`.
pub fn spec_files<'a>(
    collected: &'a Collected,
    plan: &'a Plan,
) -> Vec<(&'a str, &'a str, &'a str)> {
    plan.apis
        .iter()
        .filter_map(|api| {
            collected
                .apis
                .iter()
                .find(|s| matches_source(s, api))
                .map(|s| (api.name.as_str(), api.version.as_str(), s.text.as_str()))
        })
        .collect()
}

/// Trailing whitespace trimmed, one final newline: stable files whatever the template does.
fn finish(mut text: String) -> String {
    let trimmed = text.trim_end().len();
    text.truncate(trimmed);
    text.push('\n');
    text
}

/// At most one blank line in a row outside fenced code blocks (templates are easier to write
/// when a skipped `{% if %}` may leave an extra one).
fn collapse_blank_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_fence = false;
    let mut blank_run = 0;
    for line in text.lines() {
        let trimmed = line.trim_end();
        if trimmed.trim_start().starts_with("```") {
            in_fence = !in_fence;
        }
        if trimmed.is_empty() && !in_fence {
            blank_run += 1;
            if blank_run > 1 {
                continue;
            }
        } else {
            blank_run = 0;
        }
        out.push_str(trimmed);
        out.push('\n');
    }
    out
}

fn matches_source(source: &SourceApi, api: &PlanApi) -> bool {
    source.sha256 == api.source.sha256
        && source.title == api.title
        && source.version.as_deref() == Some(api.version.as_str())
        && (source.path == api.source.file
            || source
                .path
                .replace('\\', "/")
                .ends_with(&format!("/{}", api.source.file)))
}

fn unique_stem(name: &str, version: &str, used: &mut HashSet<String>) -> String {
    let version: String = version
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._~-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let base = format!("{name}-{version}");
    let mut stem = base.clone();
    let mut n = 2;
    while !used.insert(stem.clone()) || stem == "index" {
        stem = format!("{base}-{n}");
        n += 1;
    }
    stem
}

fn summary(view: &ApiView) -> ApiSummary {
    ApiSummary {
        name: view.name.clone(),
        title: view.title.clone(),
        version: view.version.clone(),
        html: view.html.clone(),
        md: view.md.clone(),
        summary: view.description.as_deref().and_then(first_paragraph),
        lifecycle: view.lifecycle.clone(),
        context: view.context.clone(),
        default_context: view.default_context.clone(),
        url: view
            .servers
            .iter()
            .find(|s| s.kind == "gateway")
            .map(|s| s.url.clone()),
        channels: view.channels.len(),
        operations: view.operations.len(),
        messages: view.messages.len(),
        spec: view.source.spec.clone(),
    }
}

/// The first paragraph of a Markdown text, as plain text (for the index).
fn first_paragraph(text: &str) -> Option<String> {
    let para: Vec<&str> = text
        .trim()
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let joined = para.join(" ");
    (!joined.is_empty()).then_some(joined)
}

fn lifecycle_view(state: Lifecycle, successor: Option<ApiRef>) -> LifecycleView {
    let (label, level, served, note) = match state {
        Lifecycle::Created => (
            "Created",
            "info",
            false,
            "Not served yet: connections are refused with 404 Not Found.",
        ),
        Lifecycle::Prototyped => (
            "Prototype",
            "info",
            true,
            "Served without authentication, for trying the API out. It may still change.",
        ),
        Lifecycle::Published => ("Published", "ok", true, "Served."),
        Lifecycle::Deprecated => (
            "Deprecated",
            "warn",
            true,
            "This version is deprecated: it is still served, but will be retired. Handshake responses carry a `Deprecation: true` header. Move to a newer version.",
        ),
        Lifecycle::Blocked => (
            "Blocked",
            "danger",
            false,
            "Blocked: new connections are refused with 503 Service Unavailable.",
        ),
        Lifecycle::Retired => (
            "Retired",
            "danger",
            false,
            "Retired: connections are refused with 410 Gone.",
        ),
    };
    LifecycleView {
        state: state.as_str(),
        label,
        level,
        served,
        note,
        successor,
    }
}

fn version_key(v: &str) -> Vec<(u64, String)> {
    v.split(['.', '-', '_'])
        .map(|p| {
            let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
            (digits.parse().unwrap_or(0), p.to_string())
        })
        .collect()
}

/// The newest served version of the same API that is newer than `api`.
fn successor(api: &PlanApi, plan: &Plan) -> Option<ApiRef> {
    plan.apis
        .iter()
        .filter(|o| {
            o.name == api.name
                && matches!(o.lifecycle, Lifecycle::Published | Lifecycle::Prototyped)
                && version_key(&o.version) > version_key(&api.version)
        })
        .max_by(|a, b| version_key(&a.version).cmp(&version_key(&b.version)))
        .map(|o| {
            let stem = format!("{}-{}", o.name, o.version);
            ApiRef {
                title: o.title.clone(),
                version: o.version.clone(),
                html: format!("{stem}.html"),
                md: format!("{stem}.md"),
            }
        })
}

/// Hands out unique anchors.
#[derive(Default)]
struct Anchors(HashSet<String>);

impl Anchors {
    fn make(&mut self, prefix: &str, name: &str) -> String {
        let mut s = String::from(prefix);
        s.push('-');
        let mut dash = false;
        for c in name.chars() {
            if c.is_ascii_alphanumeric() || c == '_' {
                if dash && !s.ends_with('-') {
                    s.push('-');
                }
                s.push(c.to_ascii_lowercase());
                dash = false;
            } else {
                dash = true;
            }
        }
        while s.ends_with('-') {
            s.pop();
        }
        if s.len() == prefix.len() {
            s.push_str("-x");
        }
        let mut candidate = s.clone();
        let mut n = 2;
        while !self.0.insert(candidate.clone()) {
            candidate = format!("{s}-{n}");
            n += 1;
        }
        candidate
    }
}

fn api_view(
    source: Option<&SourceApi>,
    plan: Option<(&PlanApi, &Plan)>,
    file_stem: &str,
    options: &Options,
) -> ApiView {
    let plan_api = plan.map(|(a, _)| a);
    let (ws_base, wss_base) = base_variants(&options.base_url);
    let prototype = plan_api.is_some_and(|a| a.lifecycle == Lifecycle::Prototyped);
    // Channels: the spec's (matched to routes), else the plan's routes.
    let channels: Vec<(ChannelDoc, Option<&Route>)> = match (source, plan_api) {
        (Some(s), _) => s
            .channels
            .iter()
            .map(|c| {
                let route =
                    plan_api.and_then(|a| a.routes.iter().find(|r| r.channels.contains(&c.id)));
                (c.clone(), route)
            })
            .collect(),
        (None, Some(api)) => api
            .routes
            .iter()
            .map(|r| (channel_from_route(r), Some(r)))
            .collect(),
        (None, None) => Vec::new(),
    };
    let security: Vec<SchemeDoc> = source.map(|s| s.security.clone()).unwrap_or_default();
    let mut anchors = Anchors::default();
    let mut messages: Vec<(MessageDoc, MessageView)> = Vec::new();
    let mut channel_views = Vec::new();
    let mut all_operations = Vec::new();
    for (channel, route) in &channels {
        let anchor = anchors.make("channel", &channel.id);
        let address = route
            .map(|r| r.topic.clone())
            .or_else(|| channel.address.clone());
        let urls = match (plan_api, route) {
            (Some(api), Some(route)) => {
                let mut urls = vec![UrlView {
                    label: "this version",
                    ws: format!("{ws_base}{}", route.pattern),
                    wss: format!("{wss_base}{}", route.pattern),
                }];
                if let Some(default) = &api.default_context {
                    let rest = route.pattern.strip_prefix(&api.context).unwrap_or("");
                    urls.push(UrlView {
                        label: "default version",
                        ws: format!("{ws_base}{default}{rest}"),
                        wss: format!("{wss_base}{default}{rest}"),
                    });
                }
                urls
            }
            _ => Vec::new(),
        };
        let parameters: Vec<ParamView> = channel.parameters.iter().map(param_view).collect();
        let (query, headers, method) = ws_binding_rows(channel.ws_binding.as_ref());
        let example_url = route.map(|r| {
            let path = example_path(&r.pattern, &channel.parameters);
            let query_string = example_query(channel.ws_binding.as_ref());
            UrlView {
                label: "example",
                ws: format!("{ws_base}{path}{query_string}"),
                wss: format!("{wss_base}{path}{query_string}"),
            }
        });
        let auth = match (route, &channel.auth_type) {
            (Some(r), _) => Some(match r.auth {
                RouteAuth::Required if !prototype => "required",
                _ => "none",
            }),
            (None, Some(t)) if t.eq_ignore_ascii_case("none") => Some("none"),
            (None, Some(_)) => Some("required"),
            _ => None,
        };
        let channel_ref = ChannelRef {
            id: channel.id.clone(),
            anchor: anchor.clone(),
            address: address.clone(),
        };
        let mut operation_views = Vec::new();
        for op in &channel.operations {
            let (action, direction) = match op.direction {
                Direction::ClientToServer => ("send", "client sends"),
                Direction::ServerToClient => ("receive", "client receives"),
            };
            let id = op.id.clone().unwrap_or_else(|| {
                format!("{action} {}", address.clone().unwrap_or(channel.id.clone()))
            });
            let op_anchor = anchors.make("operation", &id);
            let mut refs = Vec::new();
            for m in &op.messages {
                let existing = messages.iter_mut().find(|(doc, _)| doc == m);
                let view = match existing {
                    Some((_, view)) => view,
                    None => {
                        let anchor = anchors.make("message", &m.name);
                        messages.push((m.clone(), message_view(m, anchor)));
                        &mut messages.last_mut().expect("just pushed").1
                    }
                };
                view.used_by.push(OperationRef {
                    id: id.clone(),
                    anchor: op_anchor.clone(),
                    direction,
                });
                refs.push(MessageRef {
                    name: view.name.clone(),
                    title: view.title.clone(),
                    anchor: view.anchor.clone(),
                });
            }
            operation_views.push(OperationView {
                id,
                anchor: op_anchor,
                action,
                direction,
                channel: channel_ref.clone(),
                summary: op.summary.clone(),
                description: op.description.clone(),
                scopes: op.scopes.clone(),
                messages: refs,
            });
        }
        let snippets = example_url.as_ref().map(|url| {
            let sent = channel
                .operations
                .iter()
                .filter(|o| o.direction == Direction::ClientToServer)
                .flat_map(|o| &o.messages)
                .next()
                .and_then(example_of);
            snippets(&url.ws, auth == Some("required"), &security, sent.as_ref())
        });
        all_operations.extend(operation_views.iter().cloned());
        channel_views.push(ChannelView {
            id: channel.id.clone(),
            anchor,
            title: channel.title.clone(),
            address,
            description: channel.description.clone(),
            urls,
            example_url,
            auth,
            scopes: route.map(|r| r.scopes.clone()).unwrap_or_else(|| {
                let mut s: Vec<String> = channel
                    .operations
                    .iter()
                    .flat_map(|o| o.scopes.iter().cloned())
                    .collect();
                s.dedup();
                s
            }),
            parameters,
            method,
            query,
            headers,
            operations: operation_views,
            snippets,
        });
    }
    for m in source.map(|s| s.unused_messages.as_slice()).unwrap_or(&[]) {
        let anchor = anchors.make("message", &m.name);
        messages.push((m.clone(), message_view(m, anchor)));
    }
    let name = plan_api
        .map(|a| a.name.clone())
        .unwrap_or_else(|| slug(source.map(|s| s.title.as_str()).unwrap_or("api")));
    let version = plan_api
        .map(|a| a.version.clone())
        .or_else(|| source.and_then(|s| s.version.clone()))
        .unwrap_or_default();
    let servers = match plan_api {
        Some(api) => {
            let mut servers = vec![ServerView {
                name: "gateway".into(),
                url: format!("{ws_base}{}", api.context),
                protocol: "ws".into(),
                description: Some("Plain WebSocket.".into()),
                kind: "gateway",
            }];
            servers.push(ServerView {
                name: "gateway (TLS)".into(),
                url: format!("{wss_base}{}", api.context),
                protocol: "wss".into(),
                description: Some("WebSocket over TLS.".into()),
                kind: "gateway",
            });
            if let Some(default) = &api.default_context {
                servers.push(ServerView {
                    name: "default version".into(),
                    url: format!("{ws_base}{default}"),
                    protocol: "ws".into(),
                    description: Some(format!(
                        "The same API without the version in the path (also `{wss_base}{default}`)."
                    )),
                    kind: "gateway",
                });
            }
            servers
        }
        None => source.map(|s| s.servers.clone()).unwrap_or_default(),
    };
    let gateway_ext = source.and_then(|s| s.gateway.as_ref());
    let spec_link = (options.spec_links && source.is_some() && plan_api.is_some())
        .then(|| format!("../specs/{name}/{version}.yaml"));
    ApiView {
        title: plan_api
            .map(|a| a.title.clone())
            .or_else(|| source.map(|s| s.title.clone()))
            .unwrap_or_default(),
        html: format!("{file_stem}.html"),
        md: format!("{file_stem}.md"),
        spec_version: source.map(|s| s.spec_version.clone()),
        description: source.and_then(|s| s.description.clone()),
        info: source.map(|s| s.info.clone()).unwrap_or_default(),
        default_content_type: source.and_then(|s| s.default_content_type.clone()),
        lifecycle: plan.map(|(api, plan)| {
            let next = (api.lifecycle == Lifecycle::Deprecated)
                .then(|| successor(api, plan))
                .flatten();
            lifecycle_view(api.lifecycle, next)
        }),
        gateway: plan_api.is_some(),
        context: plan_api.map(|a| a.context.clone()),
        default_context: plan_api.and_then(|a| a.default_context.clone()),
        servers,
        security: security_views(&security, prototype, plan_api.is_some()),
        limits: plan_api.map(limit_views).unwrap_or_default(),
        throttling: gateway_ext
            .and_then(|g| g.get("throttling"))
            .map(|t| serde_json::to_string_pretty(t).unwrap_or_default()),
        validation: ValidationView {
            policy: if plan_api.is_some() {
                "The gateway relays messages as they are: it does not validate payloads against the schemas below. They describe what the API expects and sends.".into()
            } else {
                "The schemas below describe what the API expects and sends.".into()
            },
            config: gateway_ext
                .and_then(|g| g.get("validation"))
                .map(|t| serde_json::to_string_pretty(t).unwrap_or_default()),
        },
        channels: channel_views,
        operations: all_operations,
        messages: messages.into_iter().map(|(_, v)| v).collect(),
        source: SourceView {
            file: plan_api
                .map(|a| a.source.file.clone())
                .or_else(|| source.map(|s| s.path.clone())),
            sha256: plan_api
                .map(|a| a.source.sha256.clone())
                .or_else(|| source.map(|s| s.sha256.clone())),
            spec: spec_link,
        },
        hash: plan.map(|(_, p)| p.hash.clone()),
        name,
        version,
    }
}

/// A channel as the plan alone describes it (runtime serving `--plan`).
fn channel_from_route(route: &Route) -> ChannelDoc {
    let plan_message = |m: &crate::plan::PlanMessage| MessageDoc {
        name: m.name.clone(),
        title: None,
        summary: None,
        description: None,
        content_type: None,
        payload: m.schema.clone(),
        headers: None,
        examples: m.examples.clone(),
    };
    let mut operations = Vec::new();
    for (direction, list) in [
        (Direction::ClientToServer, &route.messages.client_to_server),
        (Direction::ServerToClient, &route.messages.server_to_client),
    ] {
        if !list.is_empty() {
            operations.push(OperationDoc {
                id: None,
                direction,
                summary: None,
                description: None,
                scopes: route.scopes.clone(),
                messages: list.iter().map(plan_message).collect(),
            });
        }
    }
    ChannelDoc {
        id: route.channels.join(", "),
        address: Some(route.topic.clone()),
        title: None,
        description: None,
        parameters: route
            .parameters
            .iter()
            .map(|p| ParamDoc {
                name: p.name.clone(),
                description: None,
                schema: p.schema.clone(),
            })
            .collect(),
        ws_binding: None,
        auth_type: None,
        operations,
    }
}

fn limit_views(api: &PlanApi) -> Vec<LimitView> {
    let l = &api.limits;
    let mut out = Vec::new();
    let mut add = |name, value: Option<u64>, unit: &str, meaning| {
        if let Some(v) = value {
            out.push(LimitView {
                name,
                value: format!("{}{unit}", group_digits(v)),
                meaning,
            });
        }
    };
    add(
        "maxMessageBytes",
        l.max_message_bytes,
        " bytes",
        "Largest message, either way (larger: the connection is closed with 1009).",
    );
    add(
        "maxFrameBytes",
        l.max_frame_bytes,
        " bytes",
        "Largest single WebSocket frame.",
    );
    add(
        "maxConnections",
        l.max_connections,
        "",
        "Most concurrent connections to this API version (more: 503 at the handshake).",
    );
    add(
        "idleTimeoutSeconds",
        l.idle_timeout_seconds,
        " s",
        "A connection without traffic for this long is closed.",
    );
    out
}

fn group_digits(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn is_bearer(s: &SchemeDoc) -> bool {
    matches!(s.kind.as_str(), "oauth2" | "openIdConnect" | "httpBearer")
        || (s.kind == "http"
            && s.scheme
                .as_deref()
                .is_none_or(|x| x.eq_ignore_ascii_case("bearer")))
}

/// How a client passes the scheme's credential. `gateway`: through Portico (which also takes a
/// bearer token from the `access_token` query parameter, for browsers, and strips it).
fn ways(s: &SchemeDoc, gateway: bool) -> Vec<WayView> {
    let way = |place, name: &str, example: String, note: Option<&str>| WayView {
        place,
        name: name.to_string(),
        example,
        note: note.map(str::to_string),
    };
    if is_bearer(s) {
        let token = match &s.bearer_format {
            Some(f) => format!("YOUR_TOKEN ({f})"),
            None => "YOUR_TOKEN".to_string(),
        };
        let mut ways = vec![way(
            "header",
            "Authorization",
            format!("Bearer {token}"),
            None,
        )];
        if gateway {
            ways.push(way(
                "query",
                "access_token",
                "YOUR_TOKEN".into(),
                Some("For browsers, which cannot set headers on a WebSocket handshake. The gateway removes it before it connects the backend."),
            ));
        }
        return ways;
    }
    match (s.kind.as_str(), s.location.as_deref()) {
        ("http", _) => vec![way(
            "header",
            "Authorization",
            format!(
                "{} CREDENTIALS",
                capitalize(s.scheme.as_deref().unwrap_or("Basic"))
            ),
            None,
        )],
        ("httpApiKey", Some(place)) => {
            let name = s.param_name.clone().unwrap_or_else(|| "apikey".into());
            match place {
                "header" if name.eq_ignore_ascii_case("sec-websocket-protocol") => vec![way(
                    "subprotocol",
                    &name,
                    "YOUR_KEY".into(),
                    Some("Offered as a WebSocket subprotocol, which browsers can do: `new WebSocket(url, [key])`."),
                )],
                "header" => vec![way(
                    "header",
                    &name,
                    "YOUR_KEY".into(),
                    Some("Browsers cannot set headers on a WebSocket handshake: use it from a server-side client."),
                )],
                "query" => vec![way("query", &name, "YOUR_KEY".into(), None)],
                "cookie" => vec![way("cookie", &name, "YOUR_KEY".into(), None)],
                other => vec![way("other", &name, "YOUR_KEY".into(), Some(other))],
            }
        }
        ("apiKey", place) | ("userPassword", place) => vec![way(
            "other",
            place.unwrap_or("user"),
            "YOUR_KEY".into(),
            Some("In the connection's user or password."),
        )],
        ("X509", _) => vec![way(
            "other",
            "client certificate",
            "TLS client certificate".into(),
            Some("Connect with wss:// and present a client certificate."),
        )],
        _ => Vec::new(),
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn security_views(schemes: &[SchemeDoc], prototype: bool, gateway: bool) -> Vec<SecurityView> {
    schemes
        .iter()
        .map(|s| SecurityView {
            name: s.name.clone(),
            kind: s.kind.clone(),
            description: match (prototype, &s.description) {
                (true, _) => Some(
                    "This API is a prototype: it is served without authentication for now.".into(),
                ),
                (false, d) => d.clone(),
            },
            ways: ways(s, gateway),
            scopes: s
                .scopes
                .iter()
                .map(|(n, d)| ScopeView {
                    name: n.clone(),
                    description: d.clone(),
                })
                .collect(),
        })
        .collect()
}

fn example_of(m: &MessageDoc) -> Option<Value> {
    m.examples
        .first()
        .cloned()
        .or_else(|| m.payload.as_ref().map(crate::examples::from_schema))
}

/// websocat and browser JavaScript snippets that connect to `url` (and send `message`).
fn snippets(
    url: &str,
    auth_required: bool,
    schemes: &[SchemeDoc],
    message: Option<&Value>,
) -> SnippetView {
    let all_ways = || schemes.iter().flat_map(|s| ways(s, true));
    let way = all_ways().next();
    let bearer_default = auth_required && way.is_none();
    let mut header = None;
    let mut query = None;
    let mut subprotocol = None;
    let mut browser_note = None;
    if auth_required {
        match &way {
            Some(w) if w.place == "header" => {
                header = Some(format!("{}: {}", w.name, w.example));
                // Bearer schemes also accept the query parameter, which browsers can use.
                let schemes_query = all_ways().find(|w| w.place == "query");
                match schemes_query {
                    Some(q) => query = Some(format!("{}={}", q.name, q.example)),
                    None => {
                        browser_note = Some(format!(
                            "// This API wants the `{}` header, which browsers cannot set on a WebSocket.",
                            w.name
                        ))
                    }
                }
            }
            Some(w) if w.place == "query" => query = Some(format!("{}={}", w.name, w.example)),
            Some(w) if w.place == "subprotocol" => subprotocol = Some(w.example.clone()),
            _ if bearer_default => {
                header = Some("Authorization: Bearer YOUR_TOKEN".into());
                query = Some("access_token=YOUR_TOKEN".into());
            }
            _ => {}
        }
    }
    let with_query = |url: &str, q: &Option<String>| match q {
        Some(q) if url.contains('?') => format!("{url}&{q}"),
        Some(q) => format!("{url}?{q}"),
        None => url.to_string(),
    };
    let text = message.map(|m| match m {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    });
    let mut websocat = String::new();
    if text.is_some() {
        websocat.push_str("# prints what the API sends; each line you type is sent\n");
    } else {
        websocat.push_str("# prints what the API sends\n");
    }
    websocat.push_str("websocat");
    if let Some(h) = &header {
        let _ = write!(websocat, " -H '{h}'");
    }
    if let Some(p) = &subprotocol {
        let _ = write!(websocat, " --protocol '{p}'");
    }
    let ws_url = if header.is_some() {
        url.to_string()
    } else {
        with_query(url, &query)
    };
    let _ = writeln!(websocat, " '{ws_url}'");
    if let Some(t) = &text {
        // One line: websocat sends each line as one text message.
        websocat.push_str(&t.replace('\n', " "));
        websocat.push('\n');
    }
    let mut js = String::new();
    if let Some(note) = browser_note {
        js.push_str(&note);
        js.push('\n');
    }
    if query.is_some() && header.is_some() {
        js.push_str(
            "// Browsers cannot set headers on a WebSocket: the credential goes in the query.\n",
        );
    }
    let js_url = serde_json::to_string(&with_query(url, &query)).unwrap_or_default();
    match &subprotocol {
        Some(p) => {
            let _ = writeln!(
                js,
                "const socket = new WebSocket({js_url}, [{}]);",
                serde_json::to_string(p).unwrap_or_default()
            );
        }
        None => {
            let _ = writeln!(js, "const socket = new WebSocket({js_url});");
        }
    }
    match message {
        Some(Value::String(s)) => {
            let _ = writeln!(
                js,
                "socket.addEventListener(\"open\", () => {{\n  socket.send({});\n}});",
                serde_json::to_string(s).unwrap_or_default()
            );
        }
        Some(other) => {
            let _ = writeln!(
                js,
                "socket.addEventListener(\"open\", () => {{\n  socket.send(JSON.stringify({}));\n}});",
                other
            );
        }
        None => {}
    }
    js.push_str("socket.addEventListener(\"message\", (event) => {\n  console.log(\"received:\", event.data);\n});\n");
    js.push_str("socket.addEventListener(\"close\", (event) => {\n  console.log(\"closed:\", event.code, event.reason);\n});\n");
    SnippetView {
        websocat: websocat.trim_end().to_string(),
        javascript: js.trim_end().to_string(),
    }
}

/// The route pattern with each `{parameter}` replaced by an example value (percent-encoded), and
/// a wildcard's `*` by `example`.
fn example_path(pattern: &str, params: &[ParamDoc]) -> String {
    pattern
        .split('/')
        .map(|seg| {
            if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                let value = params
                    .iter()
                    .find(|p| p.name == name)
                    .and_then(|p| p.schema.as_ref())
                    .map(crate::examples::from_schema)
                    .map(|v| match v {
                        Value::String(s) if s == "string" => name.to_string(),
                        Value::String(s) => s,
                        Value::Null => name.to_string(),
                        other => other.to_string(),
                    })
                    .unwrap_or_else(|| name.to_string());
                utf8_percent_encode(&value, PARAM).to_string()
            } else if seg == "*" {
                "example".to_string()
            } else {
                seg.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// `?a=1&b=x` for the binding's required query parameters.
fn example_query(binding: Option<&Value>) -> String {
    let Some(query) = binding.and_then(|b| b.get("query")) else {
        return String::new();
    };
    let required: Vec<&str> = query
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let mut pairs = Vec::new();
    for (name, schema) in query
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        if !required.contains(&name.as_str()) {
            continue;
        }
        let value = match crate::examples::from_schema(schema) {
            Value::String(s) => s,
            other => other.to_string(),
        };
        pairs.push(format!(
            "{}={}",
            utf8_percent_encode(name, PARAM),
            utf8_percent_encode(&value, PARAM)
        ));
    }
    if pairs.is_empty() {
        String::new()
    } else {
        format!("?{}", pairs.join("&"))
    }
}

fn ws_binding_rows(binding: Option<&Value>) -> (Vec<FieldRow>, Vec<FieldRow>, Option<String>) {
    let Some(b) = binding else {
        return (Vec::new(), Vec::new(), None);
    };
    let rows = |key: &str| {
        b.get(key)
            .map(|schema| {
                let mut rows = Vec::new();
                let mut truncated = false;
                flatten_object(schema, "", 0, &mut rows, &mut truncated);
                rows
            })
            .unwrap_or_default()
    };
    (
        rows("query"),
        rows("headers"),
        b.get("method").and_then(Value::as_str).map(str::to_string),
    )
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn param_view(p: &ParamDoc) -> ParamView {
    let schema = p.schema.clone().unwrap_or(Value::Null);
    let list = |k: &str| -> Vec<String> {
        schema
            .get(k)
            .and_then(Value::as_array)
            .map(|a| a.iter().map(value_text).collect())
            .unwrap_or_default()
    };
    let mut examples = list("examples");
    if let Some(e) = schema.get("example") {
        examples.push(value_text(e));
    }
    let constraints = constraints(&schema);
    ParamView {
        name: p.name.clone(),
        description: p.description.clone().or_else(|| {
            schema
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_string)
        }),
        r#type: type_label(&schema),
        r#enum: list("enum"),
        examples,
        default: schema.get("default").map(value_text),
        constraints,
    }
}

fn message_view(m: &MessageDoc, anchor: String) -> MessageView {
    let mut examples: Vec<ExampleView> = m
        .examples
        .iter()
        .map(|e| ExampleView {
            json: serde_json::to_string_pretty(e).unwrap_or_default(),
            generated: false,
        })
        .collect();
    if examples.is_empty() {
        if let Some(p) = &m.payload {
            examples.push(ExampleView {
                json: serde_json::to_string_pretty(&crate::examples::from_schema(p))
                    .unwrap_or_default(),
                generated: true,
            });
        }
    }
    let headers = m
        .headers
        .as_ref()
        .map(|h| {
            let mut rows = Vec::new();
            let mut truncated = false;
            flatten_object(h, "", 0, &mut rows, &mut truncated);
            rows
        })
        .unwrap_or_default();
    MessageView {
        name: m.name.clone(),
        anchor,
        title: m.title.clone(),
        summary: m.summary.clone(),
        description: m.description.clone(),
        content_type: m.content_type.clone(),
        payload: m.payload.as_ref().map(payload_view),
        headers,
        examples,
        used_by: Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// Schemas as tables

/// `properties`/`required` of a schema with its `allOf` parts merged in.
fn merged_object(schema: &Value) -> (Vec<(String, Value)>, Vec<String>) {
    let mut props: Vec<(String, Value)> = Vec::new();
    let mut required: Vec<String> = Vec::new();
    fn add(
        schema: &Value,
        props: &mut Vec<(String, Value)>,
        required: &mut Vec<String>,
        depth: usize,
    ) {
        if depth > 8 {
            return;
        }
        if let Some(p) = schema.get("properties").and_then(Value::as_object) {
            for (k, v) in p {
                match props.iter_mut().find(|(n, _)| n == k) {
                    Some(existing) => existing.1 = v.clone(),
                    None => props.push((k.clone(), v.clone())),
                }
            }
        }
        for r in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !required.iter().any(|x| x == r) {
                required.push(r.to_string());
            }
        }
        for part in schema
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            add(part, props, required, depth + 1);
        }
    }
    add(schema, &mut props, &mut required, 0);
    (props, required)
}

fn is_objectish(schema: &Value) -> bool {
    !merged_object(schema).0.is_empty()
}

fn choice(schema: &Value) -> Option<(&'static str, &Vec<Value>)> {
    for key in ["oneOf", "anyOf"] {
        if let Some(list) = schema.get(key).and_then(Value::as_array) {
            if !list.is_empty() {
                return Some((key, list));
            }
        }
    }
    None
}

fn payload_view(schema: &Value) -> PayloadView {
    let mut truncated = false;
    if let Some((kind, list)) = choice(schema) {
        let alternatives = list
            .iter()
            .enumerate()
            .map(|(i, alt)| {
                let mut rows = Vec::new();
                root_rows(alt, &mut rows, &mut truncated);
                AlternativeView {
                    label: alternative_label(alt, i),
                    rows,
                }
            })
            .collect();
        // Properties shared by every alternative may sit next to the `oneOf`.
        let mut rows = Vec::new();
        if is_objectish(schema) {
            flatten_object(schema, "", 0, &mut rows, &mut truncated);
        }
        return PayloadView {
            r#type: type_label(schema),
            rows,
            alternatives,
            choice: Some(kind),
            truncated,
        };
    }
    let mut rows = Vec::new();
    root_rows(schema, &mut rows, &mut truncated);
    PayloadView {
        r#type: type_label(schema),
        rows,
        alternatives: Vec::new(),
        choice: None,
        truncated,
    }
}

fn alternative_label(schema: &Value, i: usize) -> String {
    let named = schema
        .get("title")
        .or_else(|| schema.get("$id"))
        .or_else(|| schema.get("name"))
        .and_then(Value::as_str);
    match named {
        Some(n) => format!("Option {}: {n}", i + 1),
        None => format!("Option {}: {}", i + 1, type_label(schema)),
    }
}

/// Rows for a whole payload: its properties, or one row for a non-object payload.
fn root_rows(schema: &Value, rows: &mut Vec<FieldRow>, truncated: &mut bool) {
    if is_objectish(schema) {
        flatten_object(schema, "", 0, rows, truncated);
    } else {
        rows.push(FieldRow {
            path: "(payload)".into(),
            depth: 0,
            r#type: type_label(schema),
            required: true,
            description: schema
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_string),
            constraints: constraints(schema),
        });
        if let Some(items) = schema.get("items") {
            if is_objectish(items) {
                flatten_object(items, "[].", 1, rows, truncated);
            }
        }
    }
}

fn flatten_object(
    schema: &Value,
    prefix: &str,
    depth: usize,
    rows: &mut Vec<FieldRow>,
    truncated: &mut bool,
) {
    if depth > MAX_DEPTH {
        return;
    }
    let (props, required) = merged_object(schema);
    for (name, sub) in props {
        if rows.len() >= MAX_ROWS {
            *truncated = true;
            return;
        }
        let path = format!("{prefix}{name}");
        rows.push(FieldRow {
            path: path.clone(),
            depth,
            r#type: type_label(&sub),
            required: required.contains(&name),
            description: sub
                .get("description")
                .or_else(|| sub.get("title"))
                .and_then(Value::as_str)
                .map(str::to_string),
            constraints: constraints(&sub),
        });
        nested_rows(&sub, &path, depth + 1, rows, truncated);
    }
}

/// Rows below a field: its properties (`a.b`), its items' properties (`a[].b`), or its
/// alternatives' properties.
fn nested_rows(
    sub: &Value,
    path: &str,
    depth: usize,
    rows: &mut Vec<FieldRow>,
    truncated: &mut bool,
) {
    if is_objectish(sub) {
        flatten_object(sub, &format!("{path}."), depth, rows, truncated);
    } else if let Some(items) = sub.get("items") {
        if is_objectish(items) {
            flatten_object(items, &format!("{path}[]."), depth, rows, truncated);
        }
    }
    if let Some((_, list)) = choice(sub) {
        for (i, alt) in list.iter().enumerate() {
            if is_objectish(alt) {
                let start = rows.len();
                flatten_object(alt, &format!("{path}."), depth, rows, truncated);
                for row in &mut rows[start..] {
                    row.constraints.insert(
                        0,
                        Constraint {
                            label: format!("only in option {}", i + 1),
                            values: Vec::new(),
                        },
                    );
                }
            }
        }
    }
}

/// `string`, `integer or null`, `array of string`, `one of: string | object`, ...
fn type_label(schema: &Value) -> String {
    type_label_at(schema, 0)
}

fn type_label_at(schema: &Value, depth: usize) -> String {
    if depth > 4 {
        return "…".into();
    }
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        return format!("recursive ({r})");
    }
    if let Some((kind, list)) = choice(schema) {
        let parts: Vec<String> = list
            .iter()
            .map(|s| match s.get("title").and_then(Value::as_str) {
                Some(title) => title.to_string(),
                None => type_label_at(s, depth + 1),
            })
            .collect();
        let word = if kind == "oneOf" { "one of" } else { "any of" };
        return format!("{word}: {}", parts.join(" | "));
    }
    let base = match schema.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" or "),
        _ => {
            if is_objectish(schema) {
                "object".into()
            } else if schema.get("items").is_some() {
                "array".into()
            } else if let Some(v) = schema.get("const") {
                json_type(v).into()
            } else if let Some(first) = schema
                .get("enum")
                .and_then(Value::as_array)
                .and_then(|a| a.first())
            {
                json_type(first).into()
            } else {
                "any".into()
            }
        }
    };
    let mut label = if base == "array" {
        match schema.get("items") {
            Some(items) if items.is_object() => {
                format!("array of {}", type_label_at(items, depth + 1))
            }
            _ => base,
        }
    } else {
        base
    };
    if let Some(f) = schema.get("format").and_then(Value::as_str) {
        let _ = write!(label, " ({f})");
    }
    if schema.get("nullable").and_then(Value::as_bool) == Some(true) {
        label.push_str(" or null");
    }
    label
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn constraints(schema: &Value) -> Vec<Constraint> {
    let mut out = Vec::new();
    let mut add = |label: &str, values: Vec<String>| {
        out.push(Constraint {
            label: label.to_string(),
            values,
        })
    };
    if let Some(list) = schema.get("enum").and_then(Value::as_array) {
        add("one of", list.iter().map(value_text).collect());
    }
    if let Some(v) = schema.get("const") {
        add("always", vec![value_text(v)]);
    }
    if let Some(v) = schema.get("default") {
        add("default", vec![value_text(v)]);
    }
    if let Some(v) = schema.get("pattern").and_then(Value::as_str) {
        add("pattern", vec![v.to_string()]);
    }
    for (key, label) in [
        ("minLength", "min length"),
        ("maxLength", "max length"),
        ("minimum", "≥"),
        ("exclusiveMinimum", ">"),
        ("maximum", "≤"),
        ("exclusiveMaximum", "<"),
        ("multipleOf", "multiple of"),
        ("minItems", "min items"),
        ("maxItems", "max items"),
        ("minProperties", "min fields"),
        ("maxProperties", "max fields"),
    ] {
        if let Some(v) = schema.get(key).filter(|v| v.is_number()) {
            add(label, vec![v.to_string()]);
        }
    }
    if schema.get("uniqueItems").and_then(Value::as_bool) == Some(true) {
        add("unique items", Vec::new());
    }
    if schema.get("additionalProperties") == Some(&Value::Bool(false)) {
        add("no other fields", Vec::new());
    }
    if let Some(not) = schema.get("not") {
        add("must not be", vec![type_label(not)]);
    }
    if schema.get("deprecated").and_then(Value::as_bool) == Some(true) {
        add("deprecated", Vec::new());
    }
    let mut examples: Vec<String> = schema
        .get("examples")
        .and_then(Value::as_array)
        .map(|a| a.iter().take(3).map(value_text).collect())
        .unwrap_or_default();
    if let Some(e) = schema.get("example") {
        examples.push(value_text(e));
    }
    if !examples.is_empty() {
        add("e.g.", examples);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Markdown

/// Whether a link target is safe to put in an `href`: http(s), mailto, or relative.
fn safe_url(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    match lower.find(':') {
        Some(colon) => {
            let before = &lower[..colon];
            before.contains(['/', '?', '#']) || matches!(before, "http" | "https" | "mailto")
        }
        None => true,
    }
}

/// Renders a description (CommonMark with tables) to HTML. Raw HTML in it is escaped, not passed
/// through; links other than http(s), mailto and relative ones are dropped; images become links
/// (a page never fetches anything); headings are moved below the page's own (h3 and lower).
pub fn markdown_to_html(text: &str) -> String {
    use pulldown_cmark::{html, Event, HeadingLevel, Parser, Tag, TagEnd};
    fn shift(level: HeadingLevel) -> HeadingLevel {
        match level {
            HeadingLevel::H1 => HeadingLevel::H3,
            HeadingLevel::H2 => HeadingLevel::H4,
            HeadingLevel::H3 => HeadingLevel::H5,
            _ => HeadingLevel::H6,
        }
    }
    let mut options = pulldown_cmark::Options::empty();
    options.insert(pulldown_cmark::Options::ENABLE_TABLES);
    options.insert(pulldown_cmark::Options::ENABLE_STRIKETHROUGH);
    let events = Parser::new_ext(text, options).map(|event| match event {
        Event::Html(s) | Event::InlineHtml(s) => Event::Text(s),
        Event::Start(Tag::HtmlBlock) => Event::Start(Tag::Paragraph),
        Event::End(TagEnd::HtmlBlock) => Event::End(TagEnd::Paragraph),
        Event::Start(Tag::Heading {
            level,
            id,
            classes,
            attrs,
        }) => Event::Start(Tag::Heading {
            level: shift(level),
            id,
            classes,
            attrs,
        }),
        Event::End(TagEnd::Heading(level)) => Event::End(TagEnd::Heading(shift(level))),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        })
        | Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Link {
            link_type,
            dest_url: if safe_url(&dest_url) {
                dest_url
            } else {
                "#".into()
            },
            title,
            id,
        }),
        Event::End(TagEnd::Image) => Event::End(TagEnd::Link),
        other => other,
    });
    let mut out = String::new();
    html::push_html(&mut out, events);
    out
}

/// [`markdown_to_html`] without the paragraph around a one-paragraph text (for table cells).
pub fn markdown_inline(text: &str) -> String {
    let html = markdown_to_html(text);
    let trimmed = html.trim_end();
    if let Some(inner) = trimmed
        .strip_prefix("<p>")
        .and_then(|s| s.strip_suffix("</p>"))
    {
        if !inner.contains("<p>") {
            return inner.to_string();
        }
    }
    html
}

/// A description for a Markdown page: kept as Markdown, but raw HTML in it is escaped (so it shows
/// as text on GitHub too) and ATX headings are moved two levels down.
pub fn escape_markdown_html(text: &str) -> String {
    use pulldown_cmark::{Event, Parser, Tag};
    let mut inserts: Vec<(usize, &str)> = Vec::new();
    let mut html_ranges: Vec<std::ops::Range<usize>> = Vec::new();
    for (event, range) in Parser::new(text).into_offset_iter() {
        match event {
            Event::Html(_) | Event::InlineHtml(_) => html_ranges.push(range),
            Event::Start(Tag::Heading { .. }) if text[range.start..].starts_with('#') => {
                inserts.push((range.start, "##"))
            }
            _ => {}
        }
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut pending = inserts.into_iter().peekable();
    for (i, c) in text.char_indices() {
        while pending.peek().is_some_and(|(at, _)| *at == i) {
            out.push_str(pending.next().expect("peeked").1);
        }
        let in_html = html_ranges.iter().any(|r| r.contains(&i));
        match c {
            '<' if in_html => out.push_str("&lt;"),
            '>' if in_html => out.push_str("&gt;"),
            _ => out.push(c),
        }
    }
    out
}

/// A URL as HTML (escaped) with line-break opportunities after each `/` and before `?` and `&`, so
/// a long URL wraps between its segments on a narrow screen.
pub fn breakable_url(url: &str) -> String {
    let mut out = String::with_capacity(url.len() + 32);
    for c in url.chars() {
        match c {
            '?' | '&' => out.push_str("<wbr>"),
            _ => {}
        }
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            other => out.push(other),
        }
        if c == '/' {
            out.push_str("<wbr>");
        }
    }
    out.replace("/<wbr>/<wbr>", "//<wbr>")
}

/// Text for a Markdown table cell: on one line, with `|` and HTML escaped.
pub fn markdown_cell(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    escape_markdown_html(&one_line).replace('|', "\\|")
}

/// Inline code for Markdown: backticks around, enough of them for the text.
pub fn markdown_code(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut longest = 0;
    let mut run = 0;
    for c in one_line.chars() {
        if c == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    let fence = "`".repeat(longest + 1);
    let pad = if one_line.starts_with('`') || one_line.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{}{pad}{fence}", one_line.replace('|', "\\|"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn raw_html_in_descriptions_is_text() {
        let html = markdown_to_html(
            "Hi <script>alert(1)</script> *there*\n\n<div onclick=x>block</div>\n",
        );
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<div"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(html.contains("<em>there</em>"), "{html}");
    }

    #[test]
    fn dangerous_links_and_images_are_defused() {
        let html = markdown_to_html("[a](javascript:alert(1)) ![b](https://example.com/x.png) [c](#x) [d](https://e.com/?a:b)");
        assert!(!html.contains("javascript:"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(
            html.contains("href=\"https://example.com/x.png\""),
            "{html}"
        );
        assert!(html.contains("href=\"#x\""), "{html}");
        assert!(html.contains("href=\"https://e.com/?a:b\""), "{html}");
    }

    #[test]
    fn headings_go_below_the_page() {
        assert_eq!(markdown_to_html("# A").trim(), "<h3>A</h3>");
        assert_eq!(
            escape_markdown_html("# A\ntext <b>x</b> `<i>`"),
            "### A\ntext &lt;b&gt;x&lt;/b&gt; `<i>`"
        );
    }

    #[test]
    fn markdown_cells_and_code() {
        assert_eq!(markdown_cell("a | b\nc"), "a \\| b c");
        assert_eq!(markdown_code("a`b"), "``a`b``");
        assert_eq!(
            breakable_url("ws://h/a?b=<x>&c"),
            "ws://<wbr>h/<wbr>a<wbr>?b=&lt;x&gt;<wbr>&amp;c"
        );
    }

    #[test]
    fn base_urls() {
        assert_eq!(
            normalize_base_url("wss://gw.example.com/").unwrap(),
            "wss://gw.example.com"
        );
        assert_eq!(
            normalize_base_url("https://gw:8443/ws").unwrap(),
            "wss://gw:8443/ws"
        );
        assert!(normalize_base_url("ftp://x").is_err());
        assert!(normalize_base_url("ws://x?y").is_err());
        assert!(normalize_base_url("localhost").is_err());
    }

    #[test]
    fn payload_tables_flatten_nested_objects_and_alternatives() {
        let schema = json!({
            "type": "object",
            "required": ["user"],
            "properties": {
                "user": {"type": "object", "required": ["id"], "properties": {
                    "id": {"type": "string", "format": "uuid"},
                    "tags": {"type": "array", "items": {"type": "object", "properties": {"k": {"type": "string"}}}}
                }},
                "n": {"type": "integer", "minimum": 1, "maximum": 9},
                "kind": {"oneOf": [{"type": "string"}, {"type": "object", "properties": {"x": {"type": "number"}}}]}
            }
        });
        let view = payload_view(&schema);
        let paths: Vec<&str> = view.rows.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "user",
                "user.id",
                "user.tags",
                "user.tags[].k",
                "n",
                "kind",
                "kind.x"
            ]
        );
        assert!(view.rows[0].required && view.rows[1].required && !view.rows[2].required);
        assert_eq!(view.rows[1].r#type, "string (uuid)");
        assert_eq!(view.rows[2].r#type, "array of object");
        assert_eq!(view.rows[5].r#type, "one of: string | object");
        assert_eq!(view.rows[6].constraints[0].label, "only in option 2");
        let one_of = payload_view(&json!({"oneOf": [
            {"title": "Ping", "type": "object", "properties": {"op": {"const": "ping"}}},
            {"type": "string"}
        ]}));
        assert_eq!(one_of.choice, Some("oneOf"));
        assert_eq!(one_of.alternatives[0].label, "Option 1: Ping");
        assert_eq!(one_of.alternatives[1].rows[0].path, "(payload)");
    }

    #[test]
    fn example_paths_fill_parameters() {
        let params = vec![ParamDoc {
            name: "room".into(),
            description: None,
            schema: Some(json!({"type": "string", "examples": ["a b"]})),
        }];
        assert_eq!(
            example_path("/c/1/rooms/{room}/*", &params),
            "/c/1/rooms/a%20b/example"
        );
        assert_eq!(example_path("/c/{other}", &params), "/c/other");
    }
}
